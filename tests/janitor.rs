//! `Segment::remove_if_unused` and `Janitor` on file-backed segments in a directory of their own (so
//! nothing in /dev/shm is touched), with real processes killed mid-use.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ARG, ROLE, role, unique};
use shmq::segment::Removal;
use shmq::{Janitor, JanitorEvent, Options, Segment, Trigger};

/// A fresh directory under the temporary directory.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir(&dir).unwrap();
    dir
}

#[test]
fn remove_if_unused_removes_only_unused_shmq_segments_never_files_without_a_header() {
    let dir = temp_dir("reap");
    let empty = dir.join("empty");
    let zeros = dir.join("zeros");
    let text = dir.join("text");
    std::fs::write(&empty, b"").unwrap();
    std::fs::write(&zeros, [0u8; 4096]).unwrap();
    std::fs::write(&text, b"somebody's notes").unwrap();
    for f in [&empty, &zeros, &text] {
        assert_eq!(
            Segment::remove_if_unused(Options::file(f), true).unwrap(),
            Removal::Foreign
        );
        assert!(f.exists());
    }
    // A blank file that names its creator, now dead, is a shmq creator's leftover: removed.
    let dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    common::wait_all_ok(&mut [dead], Duration::from_secs(60));
    let mut leftover = vec![0u8; 4096];
    leftover[80..84].copy_from_slice(&dead_pid.to_le_bytes());
    leftover[88..96].copy_from_slice(&1u64.to_le_bytes());
    std::fs::write(&zeros, &leftover).unwrap();
    assert_eq!(
        Segment::remove_if_unused(Options::file(&zeros), false).unwrap(),
        Removal::Removed
    );

    let kept = Options::file(dir.join("kept")); // file-backed: persistent
    drop(shmq::Value::<u32>::create(&kept, 1).unwrap());
    let used = Options::file(dir.join("used")).persistent(false);
    let handle = shmq::Value::<u32>::create(&used, 2).unwrap();
    assert_eq!(
        Segment::remove_if_unused(&kept, false).unwrap(),
        Removal::Persistent
    );
    assert_eq!(
        Segment::remove_if_unused(&used, true).unwrap(),
        Removal::InUse
    );
    assert_eq!(
        Segment::remove_if_unused(&kept, true).unwrap(),
        Removal::Removed
    );
    assert!(matches!(
        Segment::remove_if_unused(&kept, true),
        Err(shmq::OpenError::NotFound { .. })
    ));
    drop(handle); // the last user: it removes the name itself
    assert!(!dir.join("used").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Role: creates the non-persistent file-backed segment at `ARG`, says so, and sleeps until
/// killed.
#[test]
fn janitor_removes_a_file_segment_when_its_user_is_killed_and_only_under_its_prefix() {
    const TEST: &str =
        "janitor_removes_a_file_segment_when_its_user_is_killed_and_only_under_its_prefix";
    if let Some(path) = role(TEST) {
        let _v = shmq::Value::<u64>::create(Options::file(path).persistent(false), 1).unwrap();
        println!("\nready");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
    let dir = temp_dir("janitor");
    let start_user = |file: &Path| {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE, TEST)
            .env(ARG, file)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Its output is read by a thread, so the wait for "ready" has a deadline.
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ready = out.lines().any(|l| l.is_ok_and(|l| l == "ready"));
            let _ = tx.send(ready);
        });
        if rx.recv_timeout(Duration::from_secs(30)) != Ok(true) {
            let _ = child.kill();
            panic!("the user never got ready: {:?}", child.wait());
        }
        child
    };
    let (ours, other) = (dir.join("app-queue"), dir.join("other-queue"));
    let mut users = [start_user(&ours), start_user(&other)];
    let mut janitor = Janitor::builder()
        .shm(false)
        .dir(&dir)
        .prefix("app-")
        .build()
        .unwrap();
    assert_eq!(janitor.dirs().collect::<Vec<_>>(), [dir.as_path()]);
    // The first step scans: both are in use, nothing happens.
    assert!(
        janitor
            .next_timeout(Duration::from_millis(200))
            .unwrap()
            .is_none()
    );
    let killed = Instant::now();
    for u in &mut users {
        u.kill().unwrap();
        u.wait().unwrap();
    }
    let event = janitor
        .next_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("nothing removed within 10 s");
    let JanitorEvent::Removed {
        name,
        trigger,
        after,
    } = event
    else {
        panic!("{event:?}");
    };
    eprintln!(
        "janitor removed {name} {:?} after the kill ({after:?} after the notification)",
        killed.elapsed()
    );
    assert_eq!(name, ours.display().to_string());
    assert_eq!(trigger, Trigger::Closed);
    assert!(!ours.exists());
    assert!(other.exists(), "a segment outside the prefix was removed");
    std::fs::remove_dir_all(&dir).unwrap();
}
