//! Runs every program in `examples/` as a user would, checks what it prints, and checks that
//! it left none of its segments in `/dev/shm`.
//!
//! `cargo test --test examples` does not build examples (only a plain `cargo test` does), so
//! the first test to need them runs `cargo build --examples` once, with the test's profile; it
//! is a no-op when they are up to date. Each example runs under a 60 s watchdog that kills its
//! whole process group, children included.

#![cfg(all(target_os = "linux", not(miri)))]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

/// `target/<profile>/examples`, after building the examples there.
fn examples_dir() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(build_examples)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_examples() -> Result<PathBuf, String> {
    // This test is target/<profile>/deps/examples-HASH.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--examples", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
        None => return Err(format!("no profile in {}", profile_dir.display())),
    }
    let status = cargo.status().map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo build --examples` failed: {status}"));
    }
    Ok(profile_dir.join("examples"))
}

struct Run {
    stdout: String,
    stderr: String,
}

/// Runs example `name` with `args`, asserts that it exits successfully within the watchdog,
/// and that no `/dev/shm/shmq-ex-*` segment named after its pid is left.
fn run_example(name: &str, args: &[&str]) -> Run {
    let path = examples_dir().join(name);
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0) // so the watchdog can kill the example's children too
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", path.display()));
    let pid = child.id();
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("piped stderr")));

    let deadline = Instant::now() + WATCHDOG;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            // Kill the group: the example and every child it spawned.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            // A killed example cannot remove its segments: do it for it.
            for seg in leftover_segments(pid) {
                let _ = std::fs::remove_file(format!("/dev/shm/{seg}"));
            }
            panic!("example {name} ran longer than {WATCHDOG:?}; killed it");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    assert!(
        status.success(),
        "example {name} failed: {status}\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(
        leftover_segments(pid),
        Vec::<String>::new(),
        "left in /dev/shm"
    );
    run
}

/// Names in /dev/shm that an example run as `pid` made (`shmq-ex-...-PID`).
fn leftover_segments(pid: u32) -> Vec<String> {
    let pid = pid.to_string();
    std::fs::read_dir("/dev/shm")
        .expect("reading /dev/shm")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("shmq-ex-") && n.split('-').any(|part| part == pid))
        .collect()
}

#[test]
fn lock_counter() {
    let run = run_example("lock_counter", &[]);
    assert_eq!(run.stdout, "count = 2000000\n", "stderr:\n{}", run.stderr);
}

#[test]
fn lock_counter_with_count_argument() {
    let run = run_example("lock_counter", &["1000"]);
    assert_eq!(run.stdout, "count = 2000\n", "stderr:\n{}", run.stderr);
}

#[test]
fn event() {
    let run = run_example("event", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = |line: &str| {
        let found: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == line).collect();
        assert_eq!(found.len(), 1, "{line:?} once in {lines:?}");
        found[0]
    };
    let (waiting, setting, set) = (
        at("waiting for event..."),
        at("setting event..."),
        at("event has been set."),
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    // The waiter announces itself before it is woken, and only the setter's set() wakes it
    // (the setter prints before setting). Waiting/setting may come in either order.
    assert!(waiting < set && setting < set, "{lines:?}");
}

#[test]
fn value_array() {
    let run = run_example("value_array", &[]);
    assert_eq!(
        run.stdout, "1\n[1, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
        "stderr:\n{}",
        run.stderr
    );
}

#[test]
fn raw_segment_semaphore() {
    let run = run_example("raw_segment_semaphore", &[]);
    assert_eq!(run.stdout, "Hello, receiver!\n", "stderr:\n{}", run.stderr);
}

#[test]
fn pipe_parent_child() {
    let run = run_example("pipe_parent_child", &[]);
    // The child prints before it replies, the parent after the reply: always this order.
    assert_eq!(
        run.stdout,
        "Received: Hello from the main process!\nReceived Reply: Reply from the worker\n",
        "stderr:\n{}",
        run.stderr
    );
}

#[test]
fn pipe_sender_receiver() {
    let run = run_example("pipe_sender_receiver", &[]);
    // Both lines come from the receiver: the message, then Disconnected once it is drained.
    assert_eq!(
        run.stdout, "Hello, receiver!\nsender closed the pipe\n",
        "stderr:\n{}",
        run.stderr
    );
}

#[test]
fn pipe_workers() {
    let run = run_example("pipe_workers", &[]);
    // Only the parent prints, one result per request in request order.
    assert_eq!(
        run.stdout, "Result: 2\nResult: 12\nResult: 30\nAll results: [2, 12, 30]\n",
        "stderr:\n{}",
        run.stderr
    );
}
