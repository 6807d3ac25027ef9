//! `shmq ls`, `inspect`, `rm` and `gc`, run as a user would run them.

mod common;

use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::time::Duration;

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

/// Role: creates segments named `ARG-dead-*` that outlive it (persistent), then exits.
#[test]
fn gc_removes_only_segments_whose_processes_are_all_dead() {
    if let Some(prefix) = role("gc_removes_only_segments_whose_processes_are_all_dead") {
        let opts = |s: &str| Options::new(format!("{prefix}-{s}")).persistent(true);
        shmq::Value::<u64>::create(opts("dead-value"), 1).unwrap();
        let q = shmq::Queue::<u32>::create(opts("dead-queue"), 4).unwrap();
        q.put(7).unwrap();
        // Created by the dead process, but the parent attaches to it: in use.
        let q = shmq::Queue::<u32>::create(opts("dead-creator-live-user"), 4).unwrap();
        q.put(7).unwrap();
        return;
    }
    let prefix = unique("cli-gc");
    let mut child = spawn(
        "gc_removes_only_segments_whose_processes_are_all_dead",
        &prefix,
    );
    assert!(wait(&mut child, Duration::from_secs(30)).success());
    let live = shmq::Value::<u64>::create(format!("{prefix}-live").as_str(), 2).unwrap();
    let user =
        shmq::Queue::<u32>::open(format!("{prefix}-dead-creator-live-user").as_str()).unwrap();
    // A segment whose creator pid is alive but recorded with another start time: a recycled
    // pid, so the creator is dead.
    let recycled = format!("{prefix}-recycled");
    {
        shmq::Event::create(Options::new(recycled.as_str()).persistent(true)).unwrap();
    }
    poke(
        &format!("/dev/shm/{recycled}"),
        80,
        &std::process::id().to_ne_bytes(),
    );
    poke(&format!("/dev/shm/{recycled}"), 88, &1u64.to_ne_bytes());

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
        recycled.clone(),
    ];
    assert_eq!(would, dead.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        text.contains("3 of 5 segments would be removed; 2 in use"),
        "{text}"
    );
    for n in &dead {
        assert!(std::path::Path::new(&format!("/dev/shm/{n}")).exists());
    }

    let out = shmq(&["gc", "--prefix", &prefix]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("3 of 5 segments removed; 2 in use"));
    for n in &dead {
        assert_gone(n);
    }
    // The live ones still work.
    live.store(3);
    assert_eq!(live.load(), 3);
    user.put(1).unwrap();
    assert_eq!(user.get().unwrap(), 7);
    drop(user);
    // Now nobody uses the queue its dead creator left: it goes too.
    let out = shmq(&["gc", "--prefix", &prefix]);
    assert!(stdout(&out).contains("1 of 2 segments removed; 1 in use"));
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

/// Role: creates a persistent raw segment `ARG` (raw segments record no processes), exits.
#[test]
fn gc_keeps_a_segment_that_only_a_mapping_process_uses() {
    if let Some(name) = role("gc_keeps_a_segment_that_only_a_mapping_process_uses") {
        shmq::Segment::create(Options::new(name).persistent(true), 64).unwrap();
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
