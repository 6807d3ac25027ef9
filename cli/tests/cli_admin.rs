//! `shmq ls`, `inspect`, `rm` and `gc`, run as a user would run them.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_gone, role, spawn, unique, wait};
use shmq::Options;

/// Runs the binary with its output going to pipes: no colour codes may appear.
fn shmq(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run shmq");
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "colour codes written to a pipe: {out:?}"
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts `o` failed cleanly: an exit code (no signal), and one `shmq: ` line on stderr.
fn assert_clean_failure(o: &Output) -> String {
    assert_eq!(o.status.signal(), None, "killed by a signal: {o:?}");
    assert!(!o.status.success(), "succeeded: {}", stdout(o));
    let err = stderr(o);
    assert!(err.starts_with("shmq: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

/// The table row that starts with `name`.
fn row<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
}

/// Overwrites bytes of a segment file at `offset`.
fn poke(path: &str, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

#[test]
fn ls_lists_segments_with_kind_fill_and_processes_and_skips_foreign_files() {
    let q = unique("cli-ls-q");
    let v = unique("cli-ls-v");
    let foreign = unique("cli-ls-foreign");
    let queue = shmq::Queue::<u64>::create(q.as_str(), 8).unwrap();
    queue.put(1).unwrap();
    queue.put(2).unwrap();
    queue.put(3).unwrap();
    let _value = shmq::Value::<u32>::create(v.as_str(), 5).unwrap();
    let foreign_path = format!("/dev/shm/{foreign}");
    std::fs::write(&foreign_path, b"somebody else's bytes").unwrap();
    let before = std::fs::metadata(&foreign_path)
        .unwrap()
        .modified()
        .unwrap();
    let dir = std::env::temp_dir().join(unique("cli-ls-dir"));
    std::fs::create_dir(&dir).unwrap();
    let file_q = shmq::Queue::<u8>::create(Options::file(dir.join("persist.q")), 4).unwrap();
    file_q.put(9).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a segment").unwrap();

    let out = shmq(&["ls", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    for col in [
        "NAME",
        "KIND",
        "TYPE",
        "CAPACITY",
        "FILL",
        "CREATOR",
        "PROCESSES",
        "AGE",
        "PERSISTENT",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let me = std::process::id().to_string();
    let r = row(&text, &q).unwrap_or_else(|| panic!("{q} missing:\n{text}"));
    let cells: Vec<&str> = r.split_whitespace().collect();
    assert_eq!(&cells[1..6], ["queue", "u64", "8", "3", me.as_str()], "{r}");
    assert!(
        cells[6].starts_with(&me),
        "our handle is a participant: {r}"
    );
    let r = row(&text, &v).unwrap();
    assert!(r.contains("value") && r.contains("u32"), "{r}");
    let file_row = row(&text, dir.join("persist.q").to_str().unwrap()).unwrap();
    assert!(
        file_row.contains("queue") && file_row.contains(" 1 "),
        "{file_row}"
    );
    // File-backed segments are persistent; named ones are not, unless asked.
    assert!(file_row.ends_with("yes"), "{file_row}");
    assert!(r.ends_with('-'), "{r}");
    // Columns line up: every row's KIND starts where the heading's does.
    let at = header.find("KIND").unwrap();
    assert_eq!(&r[at..at + 5], "value", "{text}");
    assert!(!text.contains(&foreign), "foreign file listed:\n{text}");
    assert!(!text.contains("notes.txt"));
    // Untouched: same bytes, same modification time.
    assert_eq!(
        std::fs::read(&foreign_path).unwrap(),
        b"somebody else's bytes"
    );
    assert_eq!(
        std::fs::metadata(&foreign_path)
            .unwrap()
            .modified()
            .unwrap(),
        before
    );
    std::fs::remove_file(&foreign_path).unwrap();
    drop(file_q);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_shows_header_validation_processes_and_waiting_messages() {
    let name = unique("cli-inspect");
    let q = shmq::ByteQueue::create(name.as_str(), 4, 100).unwrap();
    q.put(b"hello, inspector").unwrap();
    q.put(&[0xAB; 80]).unwrap();
    let out = shmq(&["inspect", &name, "--bytes", "32"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for field in [
        "kind",
        "version",
        "state",
        "total size",
        "payload",
        "type",
        "parameters",
        "creator",
        "created",
        "persistent",
        "in use",
        "capacity",
        "fill",
        "maximum message",
        "closed",
        "validation",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(field)),
            "no {field}:\n{text}"
        );
    }
    assert!(text.contains("byte-queue"), "{text}");
    assert!(row(&text, "validation").unwrap().ends_with("ok"), "{text}");
    assert!(row(&text, "persistent").unwrap().contains("no"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("in use") && l.contains("yes")),
        "{text}"
    );
    assert!(text.contains("first 2 waiting messages"), "{text}");
    assert!(text.contains("#0: 16 bytes"), "{text}");
    assert!(text.contains("|hello, inspector|"), "{text}");
    assert!(text.contains("#1: 80 bytes, first 32 shown"), "{text}");
    assert!(text.contains("ab ab ab ab"), "{text}");
    let me = std::process::id().to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&me) && l.contains("participant") && l.contains("alive")),
        "{text}"
    );
    // Read-only: the messages are all still there, in order.
    assert_eq!(&*q.try_get().unwrap(), b"hello, inspector");
    assert_eq!(q.len(), 1);
    drop(q);
    assert_gone(&name);
}

#[test]
fn inspect_on_random_bytes_or_a_forged_queue_is_an_error_or_a_report_never_a_crash() {
    // A file of random bytes: not a shmq segment.
    let junk = unique("cli-inspect-junk");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(format!("/dev/shm/{junk}"), &bytes).unwrap();
    let out = shmq(&["inspect", &junk]);
    let err = assert_clean_failure(&out);
    assert!(err.contains("not a shmq segment"), "{err}");
    std::fs::remove_file(format!("/dev/shm/{junk}")).unwrap();

    // A real queue whose positions and slots are overwritten with random bytes.
    let name = unique("cli-inspect-forged");
    let q = shmq::Queue::<u32>::create(name.as_str(), 16).unwrap();
    for i in 0..5 {
        q.put(i).unwrap();
    }
    let info = shmq::Segment::inspect(name.as_str()).unwrap();
    let path = format!("/dev/shm/{name}");
    poke(&path, info.payload_offset, &bytes[..8]); // enq
    poke(&path, info.payload_offset + 128, &bytes[8..16]); // deq
    let out = shmq(&["inspect", &name]);
    assert_eq!(out.status.signal(), None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let v = row(&text, "validation").unwrap();
    assert!(!v.ends_with(" ok") && v.contains("positions"), "{text}");
    // And with the slot area scribbled over, too.
    poke(&path, info.payload_offset + 2560, &bytes[..1024]);
    let out = shmq(&["inspect", &name]);
    assert_eq!(out.status.signal(), None);
    assert!(out.status.success(), "{}", stderr(&out));
    // A broken header is an error naming the check.
    poke(&path, 24, &1u64.to_ne_bytes()); // total size
    let err = assert_clean_failure(&shmq(&["inspect", &name]));
    assert!(err.contains("bytes"), "{err}");
    drop(q);
    assert_gone(&name);
}

#[test]
fn inspect_and_rm_report_missing_segments_in_one_line() {
    let name = unique("cli-missing");
    let err = assert_clean_failure(&shmq(&["inspect", &name]));
    assert!(err.contains(&name), "{err}");
    let err = assert_clean_failure(&shmq(&["rm", &name]));
    assert!(err.contains(&name), "{err}");
    assert_clean_failure(&shmq(&["inspect", "no/such/dir/file"]));
}

/// Role: creates segments named `ARG-dead-*` and exits without letting go of them (as a
/// killed process would), and a persistent one that outlives it by design.
#[test]
fn gc_removes_exactly_the_segments_nobody_uses() {
    if let Some(prefix) = role("gc_removes_exactly_the_segments_nobody_uses") {
        let name = |s: &str| format!("{prefix}-{s}");
        std::mem::forget(shmq::Value::<u64>::create(name("dead-value").as_str(), 1).unwrap());
        let q = shmq::Queue::<u32>::create(name("dead-queue").as_str(), 4).unwrap();
        q.put(7).unwrap();
        std::mem::forget(q);
        // Created by the dead process, but the parent opens it: in use.
        let q = shmq::Queue::<u32>::create(name("dead-creator-live-user").as_str(), 4).unwrap();
        q.put(7).unwrap();
        std::mem::forget(q);
        let opts = Options::new(name("dead-persistent")).persistent(true);
        drop(shmq::Event::create(opts).unwrap());
        return;
    }
    let prefix = unique("cli-gc");
    let mut child = spawn("gc_removes_exactly_the_segments_nobody_uses", &prefix);
    assert!(wait(&mut child, Duration::from_secs(30)).success());
    let live = shmq::Value::<u64>::create(format!("{prefix}-live").as_str(), 2).unwrap();
    let user_name = format!("{prefix}-dead-creator-live-user");
    let user = shmq::Queue::<u32>::open(user_name.as_str()).unwrap();

    let out = shmq(&["gc", "--dry-run", "--prefix", &prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut would: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("would remove "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    would.sort_unstable();
    let dead = [
        format!("{prefix}-dead-queue"),
        format!("{prefix}-dead-value"),
    ];
    assert_eq!(would, dead.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        text.contains("2 of 5 segments would be removed; 2 in use; 1 persistent kept"),
        "{text}"
    );
    for n in &dead {
        assert!(std::path::Path::new(&format!("/dev/shm/{n}")).exists());
    }

    let out = shmq(&["gc", "--prefix", &prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2 of 5 segments removed; 2 in use; 1 persistent kept"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "removed {prefix}-dead-value (value created by pid"
        )),
        "{text}"
    );
    for n in &dead {
        assert_gone(n);
    }
    // The live ones still work.
    live.store(3);
    assert_eq!(live.load(), 3);
    user.put(1).unwrap();
    assert_eq!(user.get().unwrap(), 7);
    // The last user of the dead creator's queue lets go: the name goes with it.
    drop(user);
    assert_gone(&user_name);

    // Persistent segments go only when asked for.
    let out = shmq(&["gc", "--prefix", &prefix]);
    assert!(
        stdout(&out).contains("0 of 2 segments removed; 1 in use; 1 persistent kept"),
        "{out:?}"
    );
    let out = shmq(&["gc", "--persistent", "--prefix", &prefix]);
    assert!(
        stdout(&out).contains("1 of 2 segments removed; 1 in use"),
        "{out:?}"
    );
    assert_gone(&format!("{prefix}-dead-persistent"));
    drop(live);
    assert_gone(&prefix);
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["ls", "inspect", "rm", "gc", "send", "recv", "bench"] {
        let out = shmq(&[sub, "--help"]);
        assert!(out.status.success(), "{sub}: {}", stderr(&out));
        assert!(stdout(&out).contains("Usage: shmq"), "{sub}");
    }
    // Usage errors come from clap: exit code 2, the flag named on the first line.
    let out = shmq(&["gc", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
    assert!(first.contains("--no-such-flag"), "{first}");
}

#[test]
fn rm_refuses_empty_and_foreign_files_anywhere() {
    let empty = unique("cli-rm-empty");
    let path = format!("/dev/shm/{empty}");
    std::fs::write(&path, b"").unwrap();
    let err = assert_clean_failure(&shmq(&["rm", &empty]));
    assert!(err.contains("empty file"), "{err}");
    assert!(
        std::path::Path::new(&path).exists(),
        "an empty file was removed"
    );
    std::fs::remove_file(&path).unwrap();

    let dir = std::env::temp_dir().join(unique("cli-rm-dir"));
    std::fs::create_dir(&dir).unwrap();
    let (e, f) = (dir.join("empty"), dir.join("notes.txt"));
    std::fs::write(&e, b"").unwrap();
    std::fs::write(&f, b"my notes, not a segment").unwrap();
    for p in [&e, &f] {
        assert_clean_failure(&shmq(&["rm", p.to_str().unwrap()]));
        assert!(p.exists(), "{} was removed", p.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Role: creates a raw segment `ARG` (raw segments record no processes) and exits without
/// letting go of it.
#[test]
fn gc_keeps_a_segment_that_only_a_mapping_process_uses() {
    if let Some(name) = role("gc_keeps_a_segment_that_only_a_mapping_process_uses") {
        std::mem::forget(shmq::Segment::create(name.as_str(), 64).unwrap());
        return;
    }
    let name = unique("cli-gc-mapped");
    let mut child = spawn("gc_keeps_a_segment_that_only_a_mapping_process_uses", &name);
    assert!(wait(&mut child, Duration::from_secs(30)).success());
    // Opened by a process of its own: only /proc shows that this segment is in use.
    let mut user = Command::new("sleep")
        .arg("60")
        .stdin(std::fs::File::open(format!("/dev/shm/{name}")).unwrap())
        .spawn()
        .unwrap();
    let out = shmq(&["gc", "--prefix", &name]);
    assert!(
        stdout(&out).contains("0 of 1 segments removed; 1 in use"),
        "{out:?}"
    );
    let text = stdout(&shmq(&["ls"]));
    let r = row(&text, &name).unwrap();
    assert!(
        r.contains(&user.id().to_string()),
        "the user is listed: {r}"
    );
    user.kill().unwrap();
    user.wait().unwrap();
    let out = shmq(&["gc", "--prefix", &name]);
    assert!(stdout(&out).contains("1 of 1 segments removed"), "{out:?}");
    assert_gone(&name);
}

#[test]
fn rm_refuses_a_segment_in_use_unless_forced() {
    let name = unique("cli-rm-used");
    let v = shmq::Value::<u32>::create(name.as_str(), 5).unwrap();
    let err = assert_clean_failure(&shmq(&["rm", &name]));
    let me = std::process::id();
    assert!(
        err.contains(&format!("{name} is in use by pid {me}")),
        "{err}"
    );
    assert!(err.contains(&format!("shmq rm --force {name}")), "{err}");
    assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());

    let out = shmq(&["rm", "--force", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("removed {name}\n"));
    assert_gone(&name);
    // Its user keeps its mapping.
    v.store(6);
    assert_eq!(v.load(), 6);
    drop(v);

    // A segment nobody uses goes without --force, persistent or not.
    let name = unique("cli-rm-unused");
    drop(shmq::Value::<u32>::create(Options::new(name.as_str()).persistent(true), 1).unwrap());
    let out = shmq(&["rm", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_gone(&name);
}

// ----- gc --watch -----

/// Lines of a child's standard output, read by a thread of their own, so that every wait
/// for one has a deadline.
struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) for which `want` holds; panics after 30 s or at EOF.
    fn wait_for(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no such line ({e}); saw {:#?}", self.seen),
            }
        }
    }

    /// Every line until the child closes its output (30 s at most).
    fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return self.seen.clone(),
                Err(e) => panic!("output never ended ({e}); saw {:#?}", self.seen),
            }
        }
    }
}

/// Starts `shmq gc --watch ARGS` and waits for its startup line.
fn start_watcher(args: &[&str]) -> (Child, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["gc", "--watch"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run shmq gc --watch");
    let mut lines = Lines::of(&mut child);
    let first = lines.wait_for(|_| true);
    assert!(first.starts_with("watching /dev/shm"), "{first}");
    (child, lines)
}

/// Ends a watcher started without `--for` as systemd does, with SIGTERM: it stops cleanly
/// (status 0) and prints its summary.
fn stop(mut watcher: Child, lines: &mut Lines) {
    let sent = Command::new("kill")
        .args(["-TERM", &watcher.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(sent, "could not send SIGTERM");
    let summary = lines.wait_for(|l| l.starts_with("stopped after"));
    assert!(summary.contains("segments removed"), "{summary}");
    let status = common::wait(&mut watcher, Duration::from_secs(30));
    assert!(status.success(), "gc --watch after SIGTERM: {status}");
}

/// Child role: `ARG` lists segments as `create:NAME`, `keep:NAME` (created persistent) or
/// `open:NAME`, comma-separated; it makes each, says `ready`, and sleeps until killed.
fn hold(arg: &str) -> ! {
    let mut held = Vec::new();
    for item in arg.split(',') {
        let (how, name) = item.split_once(':').expect("HOW:NAME");
        held.push(match how {
            "create" => shmq::Segment::create(name, 64).unwrap(),
            "keep" => shmq::Segment::create(Options::new(name).persistent(true), 64).unwrap(),
            "open" => shmq::Segment::open(name).unwrap(),
            other => panic!("no such way to hold a segment: {other}"),
        });
    }
    // After a newline: the test harness has begun a line of its own.
    println!("\nready");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Spawns this test binary in role `test` with `arg` and waits (30 s at most) until it says
/// `ready`.
fn spawn_holder(test: &str, arg: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(common::ROLE, test)
        .env(common::ARG, arg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match lines
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(l) if l == "ready" => return child,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("holder {arg} never got ready ({e}): {:?}", child.wait());
            }
        }
    }
}

/// Waits (10 s at most) until `/dev/shm/NAME` is gone; returns how long that took.
fn time_until_gone(name: &str) -> Duration {
    let started = Instant::now();
    let path = format!("/dev/shm/{name}");
    while std::path::Path::new(&path).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} is still there after 10 s"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    started.elapsed()
}

fn exists(name: &str) -> bool {
    std::path::Path::new(&format!("/dev/shm/{name}")).exists()
}

#[test]
fn gc_watch_removes_a_segment_as_soon_as_all_its_users_are_killed() {
    const TEST: &str = "gc_watch_removes_a_segment_as_soon_as_all_its_users_are_killed";
    if let Some(arg) = role(TEST) {
        hold(&arg);
    }
    let prefix = unique("cli-watch-kill");
    let name = format!("{prefix}-ring");
    let (watcher, mut lines) = start_watcher(&["--prefix", &prefix]);
    let mut creator = spawn_holder(TEST, &format!("create:{name}"));
    let mut opener = spawn_holder(TEST, &format!("open:{name}"));
    // One user dies: the segment stays, the other still uses it.
    creator.kill().unwrap();
    creator.wait().unwrap();
    std::thread::sleep(Duration::from_millis(600)); // past the janitor's rechecks
    assert!(exists(&name), "removed while a user was alive");
    // The last user dies: the janitor removes it.
    opener.kill().unwrap();
    let delay = time_until_gone(&name);
    opener.wait().unwrap();
    eprintln!("gc --watch removed {name} {delay:?} after SIGKILL of its last user");
    let line = lines.wait_for(|l| l.starts_with(&format!("removed {name}: ")));
    eprintln!("gc --watch said: {line}");
    assert!(line.ends_with("after its last user let go"), "{line}");
    stop(watcher, &mut lines);
    assert_gone(&prefix);
}

#[test]
fn gc_watch_keeps_a_persistent_segment_unless_told_and_gc_persistent_removes_it() {
    const TEST: &str =
        "gc_watch_keeps_a_persistent_segment_unless_told_and_gc_persistent_removes_it";
    if let Some(arg) = role(TEST) {
        hold(&arg);
    }
    let prefix = unique("cli-watch-keep");
    let (keep, drop_me) = (format!("{prefix}-keep"), format!("{prefix}-drop"));
    let (watcher, mut lines) = start_watcher(&["--prefix", &prefix, "--rescan", "100ms"]);
    let mut a = spawn_holder(TEST, &format!("keep:{keep},create:{drop_me}"));
    let mut b = spawn_holder(TEST, &format!("open:{keep},open:{drop_me}"));
    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    // The same deaths closed both; the persistent one stays through them and through
    // rescans.
    lines.wait_for(|l| l.starts_with(&format!("removed {drop_me}: ")));
    std::thread::sleep(Duration::from_millis(700));
    assert!(exists(&keep), "the watcher removed a persistent segment");
    stop(watcher, &mut lines);

    // One-shot gc keeps it too, and says so; --persistent removes it.
    let out = shmq(&["gc", "--prefix", &prefix]);
    assert!(
        stdout(&out).contains("0 of 1 segments removed; 0 in use; 1 persistent kept"),
        "{out:?}"
    );
    let out = shmq(&["gc", "--persistent", "--dry-run", "--prefix", &prefix]);
    assert!(
        stdout(&out).contains(&format!("would remove {keep}")),
        "{out:?}"
    );
    assert!(exists(&keep));

    // A watcher told to removes it when it starts.
    let (watcher, mut lines) =
        start_watcher(&["--prefix", &prefix, "--persistent", "--for", "20s"]);
    let line = lines.wait_for(|l| l.starts_with(&format!("removed {keep}")));
    assert!(line.contains("found unused by a scan"), "{line}");
    assert_gone(&prefix);
    stop(watcher, &mut lines);
}

#[test]
fn gc_watch_never_removes_a_live_segment_or_a_foreign_file() {
    const TEST: &str = "gc_watch_never_removes_a_live_segment_or_a_foreign_file";
    if let Some(arg) = role(TEST) {
        if let Some(name) = arg.strip_prefix("churn:") {
            // Opens and lets go of the segment again and again: a close event each time.
            for _ in 0..50 {
                drop(shmq::Segment::open(name).unwrap());
            }
            return;
        }
        hold(&arg);
    }
    let prefix = unique("cli-watch-live");
    let live = format!("{prefix}-live");
    let seg = shmq::Segment::create(live.as_str(), 64).unwrap();
    // Files with the prefix that are not shmq segments: empty, zeros, text.
    let foreign: Vec<String> = ["empty", "zeros", "text"]
        .iter()
        .map(|t| format!("{prefix}-foreign-{t}"))
        .collect();
    std::fs::write(format!("/dev/shm/{}", foreign[0]), b"").unwrap();
    std::fs::write(format!("/dev/shm/{}", foreign[1]), [0u8; 4096]).unwrap();
    std::fs::write(format!("/dev/shm/{}", foreign[2]), b"not a segment").unwrap();

    let mut watcher = Command::new(env!("CARGO_BIN_EXE_shmq"))
        .args(["gc", "--watch", "--prefix", &prefix])
        .args(["--rescan", "50ms", "--for", "1500ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::of(&mut watcher);
    lines.wait_for(|l| l.starts_with("watching"));
    // Users come and go, some killed, while we hold it; the foreign files are rewritten.
    let mut churn = spawn(TEST, &format!("churn:{live}"));
    for _ in 0..5 {
        let mut user = spawn_holder(TEST, &format!("open:{live}"));
        user.kill().unwrap();
        user.wait().unwrap();
        std::fs::write(format!("/dev/shm/{}", foreign[2]), b"still not a segment").unwrap();
    }
    assert!(wait(&mut churn, Duration::from_secs(30)).success());
    let out = lines.rest();
    let status = wait(&mut watcher, Duration::from_secs(30));
    assert!(status.success(), "{status}: {out:#?}");
    assert!(out.iter().all(|l| !l.starts_with("removed")), "{out:#?}");
    let last = out.last().unwrap();
    assert!(
        last.starts_with("stopped after") && last.contains(": 0 segments removed"),
        "{last}"
    );
    assert!(exists(&live), "a live segment was removed");
    seg.write(0, b"alive").unwrap();
    for f in &foreign {
        assert!(exists(f), "{f} was removed");
        std::fs::remove_file(format!("/dev/shm/{f}")).unwrap();
    }
    drop(seg);
    assert_gone(&prefix);
}

/// `shmq ARGS` parsed as JSON (it must succeed).
fn shmq_json(args: &[&str]) -> serde_json::Value {
    let out = shmq(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}):\n{}", stdout(&out)))
}

/// The names `ls --json` listed.
fn listed(ls: &serde_json::Value) -> Vec<String> {
    ls["segments"]
        .as_array()
        .expect("segments array")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn ls_json_lists_a_segment_with_its_file_facts_and_the_table_shows_them() {
    use std::os::unix::fs::MetadataExt;
    let name = unique("cli-ls-json");
    let q = shmq::Queue::<u64>::create(name.as_str(), 8).unwrap();
    for i in 0..3 {
        q.put(i).unwrap();
    }
    let meta = std::fs::metadata(format!("/dev/shm/{name}")).unwrap();
    let ls = shmq_json(&["ls", "--json", "--prefix", &name]);
    assert_eq!(listed(&ls), [name.as_str()], "{ls:#}");
    let s = &ls["segments"][0];
    let me = std::process::id();
    assert_eq!(s["path"], format!("/dev/shm/{name}"));
    assert_eq!(s["kind"], "queue");
    assert_eq!(s["type"], "u64");
    assert_eq!(s["capacity"], 8);
    assert_eq!(s["capacity_unit"], "items");
    assert_eq!(s["fill"], 3);
    assert_eq!(s["size_bytes"], meta.len());
    assert_eq!(s["owner_uid"], meta.uid());
    assert_eq!(s["mode"], format!("{:04o}", meta.mode() & 0o7777));
    assert_eq!(s["creator"]["pid"], me);
    assert_eq!(s["creator"]["alive"], true);
    assert_eq!(s["persistent"], false);
    assert_eq!(s["problems"], serde_json::json!([]));
    assert!(s["created_unix_ms"].as_u64().unwrap() > 0, "{s:#}");
    let procs = s["processes"].as_array().unwrap();
    assert!(
        procs.iter().any(|p| p["pid"] == me && p["alive"] == true),
        "{s:#}"
    );
    assert!(ls["invalid"].as_array().unwrap().is_empty(), "{ls:#}");

    // The table has the same facts in its MODE, OWNER and SIZE columns.
    let text = stdout(&shmq(&["ls", "--prefix", &name]));
    let header = text.lines().next().unwrap();
    for col in ["MODE", "OWNER", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let r = row(&text, &name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    let cell = |col: &str| {
        let at = header.find(col).unwrap();
        r[at..].split_whitespace().next().unwrap().to_owned()
    };
    assert_eq!(cell("SIZE"), meta.len().to_string(), "{text}");
    assert_eq!(
        cell("MODE"),
        format!("{:04o}", meta.mode() & 0o7777),
        "{text}"
    );
    let owner = s["owner"]
        .as_str()
        .map_or(meta.uid().to_string(), str::to_owned);
    assert_eq!(cell("OWNER"), owner, "{text}");
    drop(q);
    assert_gone(&name);
}

#[test]
fn ls_kind_and_prefix_keep_only_the_matching_segments() {
    let prefix = unique("cli-ls-filter");
    let (qn, vn) = (format!("{prefix}-q"), format!("{prefix}-v"));
    let other = unique("cli-ls-other");
    let _q = shmq::Queue::<u32>::create(qn.as_str(), 4).unwrap();
    let _v = shmq::Value::<u32>::create(vn.as_str(), 1).unwrap();
    let _o = shmq::Value::<u32>::create(other.as_str(), 1).unwrap();

    let mut both = listed(&shmq_json(&["ls", "--json", "--prefix", &prefix]));
    both.sort();
    assert_eq!(both, [qn.clone(), vn.clone()]);
    let values = listed(&shmq_json(&[
        "ls", "--json", "--prefix", &prefix, "--kind", "value",
    ]));
    assert_eq!(values, [vn.as_str()]);
    let mut either = listed(&shmq_json(&[
        "ls", "--json", "--prefix", &prefix, "--kind", "value", "--kind", "queue",
    ]));
    either.sort();
    assert_eq!(either, [qn.clone(), vn.clone()]);
    let none = listed(&shmq_json(&[
        "ls",
        "--json",
        "--prefix",
        &prefix,
        "--kind",
        "semaphore",
    ]));
    assert!(none.is_empty(), "{none:?}");
    // --kind alone: every value on the machine, ours among them, and no queue.
    let all_values = shmq_json(&["ls", "--json", "--kind", "value"]);
    let names = listed(&all_values);
    assert!(names.contains(&vn) && names.contains(&other) && !names.contains(&qn));
    assert!(
        all_values["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["kind"] == "value"),
        "{all_values:#}"
    );
    // The table filters the same way.
    let text = stdout(&shmq(&["ls", "--prefix", &prefix, "--kind", "queue"]));
    assert!(
        row(&text, &qn).is_some() && row(&text, &vn).is_none(),
        "{text}"
    );
    // A kind that does not exist is a usage error naming the valid ones.
    let out = shmq(&["ls", "--kind", "teapot"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("priority-queue"), "{}", stderr(&out));
}

#[test]
fn inspect_decodes_primitive_values_and_leaves_other_types_in_hex() {
    let (vn, an, qn, bn) = (
        unique("cli-inspect-u64"),
        unique("cli-inspect-i32s"),
        unique("cli-inspect-f64q"),
        unique("cli-inspect-bytes"),
    );
    let big = 0x0123_4567_89ab_cdefu64; // beyond 32 bits and 2^53 alike
    let v = shmq::Value::<u64>::create(vn.as_str(), big).unwrap();
    let mut init = [0i32; 20];
    init[..3].copy_from_slice(&[-7, 0, 2_000_000_000]);
    let a = shmq::Array::<i32>::create(an.as_str(), &init).unwrap();
    let q = shmq::Queue::<f64>::create(qn.as_str(), 4).unwrap();
    q.put(-0.5).unwrap();
    q.put(1e300).unwrap();
    let b = shmq::Value::<[u8; 8]>::create(bn.as_str(), *b"abcdefgh").unwrap();

    let j = shmq_json(&["inspect", "--json", &vn]);
    assert_eq!(j["kind"], "value");
    assert_eq!(j["type"], "u64");
    assert_eq!(j["values"], serde_json::json!([big]), "{j:#}");
    assert_eq!(j["values"][0].as_u64(), Some(big));
    assert_eq!(j["values_of"], 1);
    assert_eq!(j["contents"][0]["hex"], hex(&big.to_ne_bytes()));
    let text = stdout(&shmq(&["inspect", &vn]));
    assert_eq!(
        row(&text, "value").map(|r| r.split_whitespace().last().unwrap()),
        Some(big.to_string().as_str()),
        "{text}"
    );
    // The value changes: inspect reads it afresh.
    v.store(42);
    let j = shmq_json(&["inspect", "--json", &vn]);
    assert_eq!(j["values"], serde_json::json!([42]));

    // 64 bytes shown by default: the first 16 of the 20 elements.
    let j = shmq_json(&["inspect", "--json", &an]);
    let values = j["values"].as_array().unwrap();
    assert_eq!(values.len(), 16, "{j:#}");
    assert_eq!(
        values[..4],
        [-7, 0, 2_000_000_000, 0].map(serde_json::Value::from)
    );
    assert_eq!(j["values_of"], 20);
    let text = stdout(&shmq(&["inspect", &an, "--bytes", "8"]));
    assert!(
        text.contains("values") && text.contains("[-7, 0] (first 2 of 20"),
        "{text}"
    );

    let j = shmq_json(&["inspect", "--json", &qn]);
    assert_eq!(j["values"], serde_json::json!([-0.5, 1e300]), "{j:#}");
    let text = stdout(&shmq(&["inspect", &qn]));
    assert!(text.contains("#0: 8 bytes = -0.5"), "{text}");

    // Not a primitive: no numbers, the bytes in hex.
    let j = shmq_json(&["inspect", "--json", &bn]);
    assert_eq!(j["values"], serde_json::Value::Null, "{j:#}");
    assert_eq!(j["contents"][0]["hex"], hex(b"abcdefgh"));
    drop((v, a, q, b));
    for n in [vn, an, qn, bn] {
        assert_gone(&n);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Role: takes an item from the queue named ARG, sleeping until one comes, and exits.
#[test]
fn inspect_counts_the_processes_asleep_on_each_bell() {
    if let Some(name) = role("inspect_counts_the_processes_asleep_on_each_bell") {
        let q = shmq::Queue::<u32>::open(name.as_str()).unwrap();
        assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), 5);
        return;
    }
    let name = unique("cli-bells");
    let q = shmq::Queue::<u32>::create(name.as_str(), 4).unwrap();
    let sleepers = |bell: &str| {
        let j = shmq_json(&["inspect", "--json", &name]);
        let b = j["bells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == bell)
            .unwrap_or_else(|| panic!("no {bell} bell: {j:#}"))
            .clone();
        assert_eq!(b["counted"], true, "{j:#}");
        b["sleepers"].as_u64().unwrap()
    };
    assert_eq!(sleepers("items"), 0);
    assert_eq!(sleepers("space"), 0);
    let mut child = spawn("inspect_counts_the_processes_asleep_on_each_bell", &name);
    // The consumer announces itself on the items bell once it finds the queue empty.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sleepers("items") != 1 {
        assert!(
            Instant::now() < deadline,
            "the waiting consumer was never seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sleepers("space"), 0);
    let text = stdout(&shmq(&["inspect", &name]));
    let items = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("items"))
        .unwrap_or_else(|| panic!("no items bell:\n{text}"));
    assert!(items.ends_with(" 1"), "{text}");
    q.put(5).unwrap();
    assert!(wait(&mut child, Duration::from_secs(30)).success());
    assert_eq!(sleepers("items"), 0);
    drop(q);
    assert_gone(&name);
}

/// A stdout nobody reads: the write end of a pipe whose only reader has exited.
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let write_end = reader.stdin.take().unwrap();
    reader.wait().unwrap();
    Stdio::from(write_end)
}

#[test]
fn ls_and_inspect_end_quietly_when_stdout_is_closed() {
    let name = unique("cli-epipe");
    let _q = shmq::Queue::<u64>::create(name.as_str(), 4).unwrap();
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["inspect", &name],
        &["inspect", "--json", &name],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shmq"))
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}
