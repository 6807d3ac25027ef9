//! The `shmq` binary, run as a user would.

mod common;

use std::process::Command;

use common::{assert_gone, unique};

fn shmq(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(args)
        .output()
        .expect("run shmq")
}

#[test]
fn rm_removes_shmq_segments_and_leaves_foreign_files_alone() {
    let name = unique("cli-rm");
    {
        let _v = shmq::Value::<u32>::create(shmq::Options::new(name.as_str()).persistent(true), 1)
            .unwrap();
    }
    let out = shmq(&["rm", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("removed {name}")
    );
    assert_gone(&name);

    let foreign = unique("cli-foreign");
    std::fs::write(format!("/dev/shm/{foreign}"), b"not ours, hands off").unwrap();
    let out = shmq(&["rm", &foreign]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("shmq: ") && err.contains("not a shmq segment"),
        "{err}"
    );
    assert!(
        std::path::Path::new(&format!("/dev/shm/{foreign}")).exists(),
        "foreign file was removed"
    );
    std::fs::remove_file(format!("/dev/shm/{foreign}")).unwrap();

    let out = shmq(&["rm", "bad name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid segment name"));
}

#[test]
fn bench_runs_and_says_what_it_measures() {
    let out = shmq(&["bench"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not built yet"));
    let out = shmq(&["bench", "--json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with('{'));
}
