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
    // The features this test was built with, so examples that need one are built too (and
    // the library is not rebuilt without them).
    let features: Vec<&str> = [
        ("async", cfg!(feature = "async")),
        ("serde", cfg!(feature = "serde")),
    ]
    .into_iter()
    .filter_map(|(f, on)| on.then_some(f))
    .collect();
    if !features.is_empty() {
        cargo.args(["--features", &features.join(",")]);
    }
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
    /// The example's process id (named in its segments and temp files).
    pid: u32,
    stdout: String,
    stderr: String,
}

/// An example process that is running, its output being collected.
struct Started {
    name: String,
    child: std::process::Child,
    out: thread::JoinHandle<String>,
    err: thread::JoinHandle<String>,
}

/// Starts example `name` with `args` in a process group of its own, collecting its output.
fn start_example(name: &str, args: &[&str]) -> Started {
    let path = examples_dir().join(name);
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0) // so the watchdog can kill the example's children too
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", path.display()));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    Started {
        name: name.to_string(),
        child,
        out,
        err,
    }
}

impl Started {
    /// Kills the example and its process group (and removes its segments) if it runs past
    /// `deadline`, failing the test.
    fn check_watchdog(&mut self, deadline: Instant) {
        if Instant::now() < deadline {
            return;
        }
        let pid = self.child.id();
        // Kill the group: the example and every child it spawned.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A killed example cannot remove its segments: do it for it.
        for seg in leftover_segments(pid) {
            let _ = std::fs::remove_file(format!("/dev/shm/{seg}"));
        }
        panic!(
            "example {} ran longer than {WATCHDOG:?}; killed it",
            self.name
        );
    }

    /// Waits for the example (under the watchdog, counted from `since`), asserts that it
    /// exited successfully and that no `/dev/shm/shmq-ex-*` segment named after its pid is
    /// left.
    fn finish(mut self, since: Instant) -> Run {
        let deadline = since + WATCHDOG;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            self.check_watchdog(deadline);
            thread::sleep(Duration::from_millis(20));
        };
        let pid = self.child.id();
        let run = Run {
            pid,
            stdout: self.out.join().expect("stdout reader"),
            stderr: self.err.join().expect("stderr reader"),
        };
        assert!(
            status.success(),
            "example {} failed: {status}\nstdout:\n{}\nstderr:\n{}",
            self.name,
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
}

/// Runs example `name` with `args`, asserts that it exits successfully within the watchdog,
/// and that no `/dev/shm/shmq-ex-*` segment named after its pid is left.
fn run_example(name: &str, args: &[&str]) -> Run {
    let started = Instant::now();
    start_example(name, args).finish(started)
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

/// `lines`, sorted: for output whose order between processes varies.
fn sorted(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    v.sort();
    v
}

/// The number after `prefix` on each line; panics on a line of another shape.
fn numbers(lines: &[&str], prefix: &str) -> Vec<i64> {
    lines
        .iter()
        .map(|l| {
            l.strip_prefix(prefix)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("expected {prefix:?} and a number, got {l:?}"))
        })
        .collect()
}

/// `"{prefix}{i}"` for each `i`, as owned lines.
fn numbered(prefix: &str, items: impl IntoIterator<Item = i64>) -> Vec<String> {
    items.into_iter().map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn queue_parent_child() {
    let run = run_example("queue_parent_child", &[]);
    // The child prints before it replies, the parent after the reply: always this order.
    assert_eq!(
        run.stdout,
        "Received: Hello from the main process!\nReceived Reply: Reply from the worker\n",
        "stderr:\n{}",
        run.stderr
    );
}

#[test]
fn queue_sentinel() {
    let run = run_example("queue_sentinel", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    // Producer and consumer lines interleave in any way, but each side's are in order, and
    // the consumer stops at the end marker having taken every number.
    let produced: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("Produced "))
        .collect();
    let consumed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("Consumed "))
        .collect();
    assert_eq!(produced, numbered("Produced ", 0..5), "{lines:?}");
    assert_eq!(consumed, numbered("Consumed ", 0..5), "{lines:?}");
    assert_eq!(lines.len(), 10, "{lines:?}\nstderr:\n{}", run.stderr);
}

#[test]
fn queue_workers() {
    let run = run_example("queue_workers", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}\nstderr:\n{}", run.stderr);
    // One product per request, in the order the workers delivered them...
    let results = numbers(&lines[..3], "Result: ");
    let mut products = results.clone();
    products.sort();
    assert_eq!(products, [2, 12, 30], "{lines:?}");
    // ...and the summary lists them in that same order.
    assert_eq!(lines[3], format!("All results: {results:?}"), "{lines:?}");
}

#[test]
fn queue_pool() {
    let run = run_example("queue_pool", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}\nstderr:\n{}", run.stderr);
    // Results arrive in the order the pool finishes them...
    let mut results = numbers(&lines[..3], "Received result: ");
    results.sort();
    assert_eq!(results, [2, 12, 30], "{lines:?}");
    // ...and are listed in submission order.
    assert_eq!(lines[3], "All results: [2, 12, 30]", "{lines:?}");
}

#[test]
fn pipe_pool() {
    let run = run_example("pipe_pool", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}\nstderr:\n{}", run.stderr);
    // Results arrive in the order the pool finishes them...
    let mut results = numbers(&lines[..3], "Received result: ");
    results.sort();
    assert_eq!(results, [2, 12, 30], "{lines:?}");
    // ...and are listed in submission order.
    assert_eq!(lines[3], "All results: [2, 12, 30]", "{lines:?}");
}

#[test]
fn named_pipe() {
    // The example starts the writer and the reader itself; only the reader prints.
    let run = run_example("named_pipe", &[]);
    assert_eq!(run.stdout, "Hello, receiver!\n", "stderr:\n{}", run.stderr);
}

/// Starts `named_pipe FIRST NAME`, waits until that process has created NAME, then runs
/// `named_pipe SECOND NAME`: two processes started separately, the first one the creator.
/// Returns what the reader printed.
fn named_pipe_roles(first: &str, second: &str) -> String {
    let name = format!("shmq-ex-fifo-test-{first}-first-{}", std::process::id());
    let segment = PathBuf::from(format!("/dev/shm/{name}"));
    let since = Instant::now();
    let mut one = start_example("named_pipe", &[first, &name]);
    while !segment.exists() {
        if let Some(status) = one.child.try_wait().expect("try_wait") {
            panic!("named_pipe {first} exited ({status}) before creating {name}");
        }
        one.check_watchdog(since + WATCHDOG);
        thread::sleep(Duration::from_millis(2));
    }
    let two = run_example("named_pipe", &[second, &name]);
    let one = one.finish(since);
    assert!(!segment.exists(), "{} was left behind", segment.display());
    let (reader, writer) = if first == "reader" {
        (one, two)
    } else {
        (two, one)
    };
    assert_eq!(writer.stdout, "", "the writer prints nothing");
    reader.stdout
}

#[test]
fn named_pipe_reader_first() {
    assert_eq!(named_pipe_roles("reader", "writer"), "Hello, receiver!\n");
}

#[test]
fn named_pipe_writer_first() {
    assert_eq!(named_pipe_roles("writer", "reader"), "Hello, receiver!\n");
}

#[test]
fn queue_maxsize() {
    let run = run_example("queue_maxsize", &[]);
    // One process at a time prints, so the order is fixed.
    assert_eq!(
        run.stdout,
        "队列已经满了: try_put gave 4 back\n\
         队列已经满了: put_timeout gave 4 back after 100ms\n\
         is_full: true\n\
         1\n\
         2\n\
         3\n\
         队列已经空了: try_get found nothing\n\
         队列已经空了: get_timeout found nothing after 100ms\n\
         is_empty: true\n\
         hello\n\
         hello big baby!\n",
        "stderr:\n{}",
        run.stderr
    );
}

#[test]
fn joinable_queue() {
    let run = run_example("joinable_queue", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{lines:?}\nstderr:\n{}", run.stderr);
    // Either worker may process any item, but every item is processed once, before the
    // parent's join returns.
    let processed: Vec<String> = (0..5).map(|i| format!("Processed {i} by worker")).collect();
    assert_eq!(sorted(&lines[..5]), processed, "{lines:?}");
    assert_eq!(lines[5], "All tasks completed.", "{lines:?}");
}

#[test]
fn priority_queue() {
    let run = run_example("priority_queue", &[]);
    // The low-priority message is put first but comes out last.
    assert_eq!(
        run.stdout,
        "Messages sent\n\
         Consumed high-priority message with priority 1\n\
         Consumed low-priority message with priority 2\n",
        "stderr:\n{}",
        run.stderr
    );
}

/// The lines `put DIR` prints, then those of the `get DIR` that takes its batch.
fn persistent_batch() -> (String, String) {
    let produced: String = (0..5).map(|i| format!("Produced {i}\n")).collect();
    let consumed: String = (0..5).map(|i| format!("Consumed {i}\n")).collect();
    (produced, consumed)
}

#[test]
fn persistent_queue() {
    let run = run_example("persistent_queue", &[]);
    let (produced, consumed) = persistent_batch();
    // The producer process has exited before the consumer process starts.
    assert_eq!(run.stdout, produced + &consumed, "stderr:\n{}", run.stderr);
    let dir = std::env::temp_dir().join(format!("shmq-ex-persistent-{}", run.pid));
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// Removes a directory on drop, also when the test fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn persistent_queue_put_and_get_in_separate_runs() {
    let dir = TempDir(
        std::env::temp_dir().join(format!("shmq-ex-test-persistent-{}", std::process::id())),
    );
    let arg = dir.0.to_str().expect("temp dir path is UTF-8");
    let (produced, consumed) = persistent_batch();

    // Two producer runs, each exiting before anything is taken: both batches stay in the file.
    for _ in 0..2 {
        let run = run_example("persistent_queue", &["put", arg]);
        assert_eq!(run.stdout, produced, "stderr:\n{}", run.stderr);
    }
    assert!(dir.0.join("queue.shmq").is_file());
    // Each later consumer run takes one batch, in order, up to its end marker.
    for _ in 0..2 {
        let run = run_example("persistent_queue", &["get", arg]);
        assert_eq!(run.stdout, consumed, "stderr:\n{}", run.stderr);
    }
    // The file stays (empty) until removed.
    assert!(dir.0.join("queue.shmq").is_file());
}

#[test]
fn epoll_ring_and_pipe() {
    let run = run_example("epoll_ring_and_pipe", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    // Each stream in its own order; how the two interleave depends on timing.
    let ring: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("ring: "))
        .collect();
    let pipe: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("pipe: "))
        .collect();
    assert_eq!(
        numbers(&ring, "ring: tick "),
        (0..5).collect::<Vec<_>>(),
        "{lines:?}"
    );
    assert_eq!(
        numbers(&pipe, "pipe: line "),
        (0..5).collect::<Vec<_>>(),
        "{lines:?}"
    );
    let at = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("no {l:?} in {lines:?}"))
    };
    assert!(
        at("ring closed after 5 messages") > at("ring: tick 4"),
        "{lines:?}"
    );
    assert!(
        at("pipe closed after 5 lines") > at("pipe: line 4"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 12, "{lines:?}");
}

#[cfg(feature = "async")]
#[test]
fn tokio_service() {
    let run = run_example("tokio_service", &[]);
    let jobs: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("job "))
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("job {i} from the queue")).collect();
    assert_eq!(jobs, want, "{}", run.stdout);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("client got: \"jobs done so far: ")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("shutdown: 20 jobs served, 1 TCP client\n"),
        "{}",
        run.stdout
    );
}

/// `LABEL: received R, lost L (...)` as `(R, L)`.
fn received_lost(line: &str, label: &str) -> (u64, u64) {
    let parsed = line
        .strip_prefix(&format!("{label}: received "))
        .and_then(|rest| rest.split_once(", lost "))
        .and_then(|(r, rest)| {
            let (l, how) = rest.split_once(" (")?;
            how.ends_with(')').then_some(())?;
            Some((r.parse().ok()?, l.parse().ok()?))
        });
    parsed.unwrap_or_else(|| panic!("expected {label}'s report, got {line:?}"))
}

#[test]
fn topic_market_feed() {
    let run = run_example("topic_market_feed", &[]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{lines:?}\nstderr:\n{}", run.stderr);
    assert_eq!(lines[0], "published 5000 quotes to 3 subscribers");
    // Every subscriber accounts for every quote: received or reported lost.
    for (line, label) in lines[1..4].iter().zip(["fast-1", "fast-2", "slow"]) {
        let (received, lost) = received_lost(line, label);
        assert_eq!(received + lost, 5000, "{line}");
    }
    // The slow one reads at most one quote per 3 ms, so it receives at most one per 3 ms
    // of publishing plus the 512 the log holds at the end: it loses quotes unless the paced
    // feed (about 1 s) took over 13 s.
    let (_, lost) = received_lost(lines[3], "slow");
    assert!(lost > 0 && lines[3].contains("(lagged "), "{}", lines[3]);
    assert_eq!(lines[4], "every subscriber: received + lost = 5000");
}

#[test]
fn topic_sensor_history() {
    let run = run_example("topic_sensor_history", &[]);
    // The sensor waits for its listeners, so where each one joins is fixed.
    assert_eq!(
        run.stdout,
        "sensor: readings #0..#39 published before anyone listened (the log keeps the last 16)\n\
         latest() without subscribing: #39, 21.9 °C\n\
         history (StartAt::Oldest): 26 readings, #24 (20.4 °C) to #49 (20.9 °C), none missed\n\
         latest (StartAt::Latest): 11 readings, #39 (21.9 °C) to #49 (20.9 °C), none missed\n\
         live (StartAt::Next): 10 readings, #40 (20.0 °C) to #49 (20.9 °C), none missed\n",
        "stderr:\n{}",
        run.stderr
    );
}
