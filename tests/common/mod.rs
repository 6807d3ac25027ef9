//! Helpers for tests that run real processes: the test binary re-executes itself with a role.

#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the role a re-executed test binary plays.
pub const ROLE: &str = "SHMQ_TEST_ROLE";
/// Environment variable carrying the role's argument (a segment name, usually).
pub const ARG: &str = "SHMQ_TEST_ARG";

/// If this process was spawned to play a role in `test`, returns its argument.
pub fn role(test: &str) -> Option<String> {
    match std::env::var(ROLE) {
        Ok(r) if r == test => Some(std::env::var(ARG).unwrap_or_default()),
        _ => None,
    }
}

/// Spawns this test binary to run only `test`, in role mode, with `arg`.
pub fn spawn(test: &str, arg: &str) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, test)
        .env(ARG, arg)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn test binary")
}

/// Waits for `child`, killing it (and failing the test) if it runs past `limit`.
pub fn wait(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process {} hung for {limit:?}; killed", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for every child and asserts each succeeded.
pub fn wait_all_ok(children: &mut [Child], limit: Duration) {
    for c in children {
        let status = wait(c, limit);
        assert!(status.success(), "child {} failed: {status}", c.id());
    }
}

/// A segment name unique to this test run.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmq-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Entries of /dev/shm whose names start with `prefix`.
pub fn leftovers(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts nothing named `name` (or starting with it) is left in /dev/shm.
pub fn assert_gone(name: &str) {
    let left = leftovers(name);
    assert!(left.is_empty(), "segments left in /dev/shm: {left:?}");
}

/// CPU ticks (user + system) a process has used, from /proc/<pid>/stat.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A small xorshift step: varied pauses and choices in tests without a dependency.
pub fn rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
