//! The `shmq` binary, run as a user would.

#[path = "../../tests/common/mod.rs"]
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
fn bench_measures_every_transport_and_cleans_up() {
    let out = shmq(&["bench", "--quick", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json = String::from_utf8_lossy(&out.stdout);
    // One row per (metric, size, pairs, transport): 8 transports x 3 latency sizes x p50/p99;
    // 6 transports x 5 stream sizes plus the raw ring's 8-byte stream and shmq-queue's 8 B,
    // 64 B and 1 KiB streams; and the MPMC section, 3 transports x 2P2C/4P4C.
    assert_eq!(
        json.matches("\"metric\":\"latency_p50_ns\"").count(),
        24,
        "{json}"
    );
    assert_eq!(json.matches("\"metric\":\"latency_p99_ns\"").count(), 24);
    assert_eq!(
        json.matches("\"metric\":\"throughput_msgs_per_s\"").count(),
        34
    );
    assert_eq!(
        json.matches("\"metric\":\"mpmc_throughput_msgs_per_s\"")
            .count(),
        6
    );
    for transport in [
        "raw",
        "shmq-busy",
        "shmq-hybrid",
        "shmq-blocking",
        "shmq-queue",
        "shmq-queue-blocking",
        "pipe",
        "unix",
        "tcp",
    ] {
        assert!(
            json.contains(&format!("\"transport\":\"{transport}\"")),
            "{transport} missing"
        );
    }
    // Every figure is a positive number.
    for value in json.split("\"value\":").skip(1) {
        let v: f64 = value.split(',').next().unwrap().parse().unwrap();
        assert!(v > 0.0, "non-positive figure in {json}");
    }
    // The table form has a header row naming every transport.
    let child = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["bench", "--quick"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.contains("shmq-busy") && l.contains("pipe") && l.contains("tcp")),
        "{table}"
    );
    assert!(table.contains("throughput 1 MiB"));
    assert!(table.contains("throughput 4P4C 8 B"));
    let left: Vec<String> = common::leftovers("shmq-bench-")
        .into_iter()
        .filter(|n| n.ends_with(&format!("-{pid}")))
        .collect();
    assert!(left.is_empty(), "bench left segments behind: {left:?}");
}
