//! `shmq send` / `shmq recv`, run as a user would: separate processes, real pipes and files.

use std::hash::{DefaultHasher, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long any one process may run before the test kills it and fails.
const LIMIT: Duration = Duration::from_secs(60);

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shmq-test-stream-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

fn assert_gone(name: &str) {
    assert!(!shm_path(name).exists(), "/dev/shm/{name} was left behind");
}

/// Waits (up to 10 s) until the named ring exists and is initialised: the side started first
/// has created it.
fn wait_created(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !shmq::Segment::inspect(name).is_ok_and(|info| info.ready) {
        assert!(
            Instant::now() < deadline,
            "{name} never appeared in /dev/shm"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn shmq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmq"))
}

/// Starts `shmq ARGS` with the given stdin and stdout; stderr is always piped.
fn spawn(args: &[&str], stdin: Stdio, stdout: Stdio) -> Child {
    shmq()
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmq")
}

/// Waits for `child`, killing it (and failing) if it runs past `LIMIT`; returns its stderr.
fn finish(child: &mut Child) -> (ExitStatus, String) {
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shmq ran for more than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("read stderr");
    }
    (status, err)
}

fn assert_ok(what: &str, (status, err): &(ExitStatus, String)) {
    assert!(status.success(), "{what} failed ({status}): {err}");
}

/// A failure is one line on stderr, starting with "shmq: " and containing `needle`.
fn assert_one_line_error(what: &str, (status, err): &(ExitStatus, String), needle: &str) {
    assert!(!status.success(), "{what} should have failed");
    assert!(
        err.starts_with("shmq: ") && err.ends_with('\n') && err.lines().count() == 1,
        "{what}: expected one error line, got {err:?}"
    );
    assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
}

/// Pseudo-random bytes (xorshift64*), reproducible from `seed`.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Runs `send` then `recv` (or the other way round with `recv_first`) on a fresh ring, feeds
/// `input` to the sender through a pipe and returns the receiver's output and both results.
fn round_trip(
    send_args: &[&str],
    recv_args: &[&str],
    input: &[u8],
    recv_first: bool,
) -> (Vec<u8>, (ExitStatus, String), (ExitStatus, String)) {
    let name = unique("rt");
    let send_cmd: Vec<&str> = ["send", name.as_str()]
        .iter()
        .chain(send_args)
        .copied()
        .collect();
    let recv_cmd: Vec<&str> = ["recv", name.as_str()]
        .iter()
        .chain(recv_args)
        .copied()
        .collect();
    let start_recv = || spawn(&recv_cmd, Stdio::null(), Stdio::piped());
    let start_send = || spawn(&send_cmd, Stdio::piped(), Stdio::null());
    let (mut send, mut recv) = if recv_first {
        let recv = start_recv();
        wait_created(&name);
        (start_send(), recv)
    } else {
        let send = start_send();
        wait_created(&name);
        (send, start_recv())
    };
    let mut stdin = send.stdin.take().expect("sender stdin");
    let mut stdout = recv.stdout.take().expect("receiver stdout");
    let output = std::thread::scope(|s| {
        s.spawn(move || {
            // The sender may fail early (that is for the caller to check): ignore EPIPE here.
            let _ = stdin.write_all(input);
        });
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).expect("read receiver output");
        out
    });
    let sent = finish(&mut send);
    let received = finish(&mut recv);
    assert_gone(&name);
    (output, sent, received)
}

#[test]
fn raw_100_mib_round_trip_recv_first_matches_by_hash() {
    let data = pseudo_random(100 << 20, 1);
    let started = Instant::now();
    let (out, sent, received) = round_trip(&["--timeout", "30s"], &[], &data, true);
    assert_ok("send", &sent);
    assert_ok("recv", &received);
    assert_eq!(out.len(), data.len(), "length differs");
    assert_eq!(hash(&out), hash(&data), "content differs");
    eprintln!("100 MiB send/recv took {:?}", started.elapsed());
}

#[test]
fn raw_round_trip_send_first_from_a_file_matches_by_hash() {
    let name = unique("file");
    let data = pseudo_random(24 << 20, 2);
    let path = std::env::temp_dir().join(format!("{name}.bin"));
    std::fs::write(&path, &data).unwrap();
    // A small ring: the sender fills it and blocks until the receiver comes.
    let mut send = spawn(
        &["send", &name, "--capacity", "256KiB"],
        Stdio::from(std::fs::File::open(&path).unwrap()),
        Stdio::null(),
    );
    wait_created(&name);
    std::thread::sleep(Duration::from_millis(50));
    let mut recv = spawn(
        &["recv", &name, "--timeout", "10s"],
        Stdio::null(),
        Stdio::piped(),
    );
    let mut out = Vec::new();
    recv.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let sent = finish(&mut send);
    let received = finish(&mut recv);
    std::fs::remove_file(&path).unwrap();
    assert_ok("send", &sent);
    assert_ok("recv", &received);
    assert_eq!(out.len(), data.len(), "length differs");
    assert_eq!(hash(&out), hash(&data), "content differs");
    assert_gone(&name);
}

#[test]
fn line_framing_count_stops_after_the_first_lines() {
    let name = unique("count");
    let mut send = spawn(
        &["send", &name, "--framing", "line"],
        Stdio::piped(),
        Stdio::null(),
    );
    send.stdin
        .take()
        .unwrap()
        .write_all(b"first\n\nthird\nlast without newline")
        .unwrap();
    wait_created(&name);
    let out = shmq()
        .args(["recv", &name, "--framing", "line", "--count", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"first\n\n");
    // The sender ends either way: it finished before the receiver left, or it is told the
    // receiver went away (like a writer to a closed FIFO).
    finish(&mut send);
    assert_gone(&name);
}

#[test]
fn line_framing_round_trips_exactly() {
    // Short, empty and very long lines (one longer than the sender's input buffer), and a
    // last line without a newline.
    let mut input = Vec::new();
    let noise = pseudo_random(1 << 20, 3);
    for (i, chunk) in noise.chunks(997).enumerate() {
        let line: Vec<u8> = chunk.iter().map(|b| b'a' + b % 26).take(i % 120).collect();
        input.extend_from_slice(&line);
        input.push(b'\n');
    }
    input.push(b'\n');
    input.extend(std::iter::repeat_n(b'L', 300_000));
    input.extend_from_slice(b"\nlast line, no newline");

    let (out, sent, received) = round_trip(&["--framing", "line"], &[], &input, true);
    assert_ok("send", &sent);
    assert_ok("recv", &received);
    assert!(out == input, "line -> raw changed the bytes");

    let (out, sent, received) = round_trip(
        &["--framing", "line"],
        &["--framing", "line"],
        &input,
        false,
    );
    assert_ok("send", &sent);
    assert_ok("recv", &received);
    let mut expected = input.clone();
    expected.push(b'\n'); // the receiver ends the last line
    assert!(out == expected, "line -> line output differs");
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

#[test]
fn length_framing_round_trips_exactly() {
    let big = pseudo_random(100_000, 4);
    let input: Vec<u8> = [&b"hello"[..], b"", &big, b"x"]
        .iter()
        .flat_map(|p| frame(p))
        .collect();
    let (out, sent, received) = round_trip(
        &["--framing", "length"],
        &["--framing", "length"],
        &input,
        true,
    );
    assert_ok("send", &sent);
    assert_ok("recv", &received);
    assert!(out == input, "length -> length changed the bytes");

    // Raw output: the payloads, concatenated.
    let (out, sent, received) = round_trip(&["--framing", "length"], &[], &input, false);
    assert_ok("send", &sent);
    assert_ok("recv", &received);
    assert!(out == [&b"hello"[..], &big, b"x"].concat());
}

#[test]
fn truncated_frame_fails_the_sender_and_the_receiver_keeps_what_came() {
    let mut input = frame(b"ok");
    input.extend_from_slice(&10u32.to_le_bytes());
    input.extend_from_slice(b"abc");
    let (out, sent, received) = round_trip(
        &["--framing", "length"],
        &["--framing", "length", "--timeout", "10s"],
        &input,
        true,
    );
    assert_one_line_error("send", &sent, "truncated frame");
    assert_one_line_error("recv", &received, "went away");
    assert_eq!(
        out,
        frame(b"ok"),
        "the complete frame is delivered, nothing of the cut one"
    );

    let mut oversized = frame(b"fine");
    oversized.extend_from_slice(&(1u32 << 20).to_le_bytes());
    oversized.extend(std::iter::repeat_n(0u8, 1 << 20));
    let name = unique("big-frame");
    let mut send = spawn(
        &["send", &name, "--framing", "length", "--capacity", "64KiB"],
        Stdio::piped(),
        Stdio::null(),
    );
    let _ = send.stdin.take().unwrap().write_all(&oversized);
    assert_one_line_error("send", &finish(&mut send), "larger than ring");
    assert_gone(&name);
}

#[test]
fn recv_times_out_without_a_sender() {
    let name = unique("recv-timeout");
    let started = Instant::now();
    let mut recv = spawn(
        &["recv", &name, "--timeout", "200ms"],
        Stdio::null(),
        Stdio::null(),
    );
    let result = finish(&mut recv);
    assert_one_line_error("recv", &result, "no sender came");
    assert!(result.1.contains("200ms"), "{}", result.1);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_gone(&name);
}

#[test]
fn send_times_out_without_a_receiver() {
    let name = unique("send-timeout");
    let started = Instant::now();
    let mut send = spawn(
        &["send", &name, "--timeout", "200ms"],
        Stdio::piped(),
        Stdio::null(),
    );
    send.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let result = finish(&mut send);
    assert_one_line_error("send", &result, "no receiver came");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_gone(&name);
}

#[test]
fn killed_sender_fails_the_receiver_after_what_arrived() {
    let name = unique("killed");
    let mut recv = spawn(
        &["recv", &name, "--timeout", "10s"],
        Stdio::null(),
        Stdio::piped(),
    );
    wait_created(&name);
    let mut send = spawn(&["send", &name], Stdio::piped(), Stdio::null());
    let data = pseudo_random(1 << 20, 5);
    let mut stdin = send.stdin.take().unwrap();
    stdin.write_all(&data).unwrap();
    // Everything written so far arrives while the sender waits for more input...
    let mut stdout = recv.stdout.take().unwrap();
    let mut got = vec![0u8; data.len()];
    stdout.read_exact(&mut got).unwrap();
    assert!(got == data);
    // ...then it dies without an end of stream (stdin still open).
    send.kill().unwrap();
    send.wait().unwrap();
    let result = finish(&mut recv);
    assert_one_line_error("recv", &result, "sender went away");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(stdin);
    assert_gone(&name);
}

/// Starts `shmq send NAME`, feeds it a line, waits until it has created the ring, and
/// SIGKILLs it: its ring stays behind, held by nobody.
fn leave_a_killed_senders_ring(name: &str) {
    let mut send = spawn(&["send", name], Stdio::piped(), Stdio::null());
    let mut stdin = send.stdin.take().unwrap();
    stdin.write_all(b"stale data\n").unwrap();
    wait_created(name);
    send.kill().unwrap();
    send.wait().unwrap();
    drop(stdin);
    assert!(
        shm_path(name).exists(),
        "a killed creator cannot remove its ring"
    );
}

#[test]
fn leftover_ring_of_a_killed_sender_is_replaced_unless_still_used() {
    let name = unique("stale");
    // Nobody uses the killed run's ring: the next run replaces it without a word (creating a
    // name nobody holds reclaims it), and none of its data leaks into the new stream.
    leave_a_killed_senders_ring(&name);
    let mut recv = spawn(
        &["recv", &name, "--timeout", "10s"],
        Stdio::null(),
        Stdio::piped(),
    );
    let mut send = spawn(
        &["send", &name, "--timeout", "10s"],
        Stdio::piped(),
        Stdio::null(),
    );
    send.stdin.take().unwrap().write_all(b"fresh\n").unwrap();
    let mut got = Vec::new();
    recv.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    let (r, s) = (finish(&mut recv), finish(&mut send));
    assert_ok("recv", &r);
    assert_ok("send", &s);
    assert_eq!(got, b"fresh\n", "stale data mixed into the new stream");
    assert_gone(&name);

    // While a live process holds the leftover, it is refused (never taken from under it, and
    // its data is not this run's).
    leave_a_killed_senders_ring(&name);
    let ring = shmq::Ring::open(name.as_str()).unwrap();
    let holder = ring.consumer().unwrap();
    for cmd in ["recv", "send"] {
        let out = shmq()
            .args([cmd, &name, "--timeout", "1s"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let result = (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert_one_line_error(cmd, &result, "another process still uses it");
        assert!(result.1.contains("ended abnormally"), "{}", result.1);
        assert!(out.stdout.is_empty(), "stale data was delivered");
    }
    assert!(shm_path(&name).exists(), "a held ring was removed");
    // We were its last user: letting go removes it.
    drop((holder, ring));
    assert_gone(&name);
}

#[test]
fn a_ring_whose_stream_already_had_a_sender_is_refused() {
    let name = unique("used");
    let ring = shmq::Ring::create(name.as_str(), 4096).unwrap();
    drop(ring.first_producer().unwrap()); // an earlier sender came and went
    let out = shmq()
        .args(["send", &name, "--timeout", "1s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let result = (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_one_line_error("send", &result, "already had a `shmq send`");
    assert!(matches!(
        ring.first_producer(),
        Err(shmq::AttachError::RoleUsed { role: "producer" })
    ));
    drop(ring);
    assert_gone(&name);
}

#[test]
fn a_name_that_is_not_a_ring_is_refused() {
    let name = unique("not-ring");
    let _value = shmq::Value::<u32>::create(name.as_str(), 7).unwrap();
    let out = shmq()
        .args(["send", &name])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let result = (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_one_line_error("send", &result, "not a ring");
}

#[test]
fn closed_stdout_ends_the_receiver_quietly_and_fails_the_sender() {
    let name = unique("epipe");
    let mut recv = spawn(
        &["recv", &name, "--timeout", "10s"],
        Stdio::null(),
        Stdio::piped(),
    );
    wait_created(&name);
    drop(recv.stdout.take()); // nobody reads the receiver's output
    let mut send = spawn(&["send", &name], Stdio::piped(), Stdio::null());
    let mut stdin = send.stdin.take().unwrap();
    let data = pseudo_random(32 << 20, 6); // more than the ring holds
    let _ = stdin.write_all(&data);
    drop(stdin);
    // Like `cat` into a closed pipe: the reader has had enough, which is no error.
    let (status, err) = finish(&mut recv);
    assert_eq!(status.code(), Some(0), "recv: {err}");
    assert_eq!(err, "", "recv wrote to stderr");
    // The stream did not reach its end, and the sender says so.
    assert_one_line_error("send", &finish(&mut send), "receiver went away");
    assert_gone(&name);
}

#[test]
fn recv_into_head_ends_quietly_after_the_first_line() {
    let name = unique("head");
    let mut recv = spawn(
        &["recv", &name, "--framing", "line"],
        Stdio::null(),
        Stdio::piped(),
    );
    wait_created(&name);
    // `shmq recv NAME --framing line | head -n 1`
    let mut head = Command::new("head")
        .args(["-n", "1"])
        .stdin(Stdio::from(recv.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn head");
    let mut send = spawn(
        &["send", &name, "--framing", "line"],
        Stdio::piped(),
        Stdio::null(),
    );
    let mut stdin = send.stdin.take().unwrap();
    // Far more than the ring and the pipe to head hold: recv is still writing when head
    // exits, so its next write finds standard output closed.
    let lines: String = (0..1_000_000).map(|i| format!("line {i}\n")).collect();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _ = stdin.write_all(lines.as_bytes()); // fails once the stream is cut short
        });
        let mut first = String::new();
        head.stdout
            .take()
            .unwrap()
            .read_to_string(&mut first)
            .unwrap();
        assert_eq!(first, "line 0\n");
    });
    assert!(head.wait().unwrap().success());
    let (status, err) = finish(&mut recv);
    assert_eq!(status.code(), Some(0), "recv: {err}");
    assert_eq!(err, "", "recv wrote to stderr");
    assert_one_line_error("send", &finish(&mut send), "receiver went away");
    assert_gone(&name);
}

#[test]
fn help_describes_the_flags() {
    for sub in ["send", "recv"] {
        let out: Output = shmq().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "--framing",
            "--timeout",
            "--capacity",
            "raw",
            "line",
            "length",
        ] {
            assert!(help.contains(flag), "{sub} --help lacks {flag}:\n{help}");
        }
    }
    let out = shmq().args(["recv", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--count"));
}

/// Sends SIGINT with the `kill` command (the test has no libc of its own).
fn sigint(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not send SIGINT");
}

#[test]
fn ctrl_c_on_a_waiting_recv_removes_its_ring_and_exits_130() {
    let name = unique("sigint-recv");
    let mut recv = spawn(&["recv", &name], Stdio::null(), Stdio::null());
    wait_created(&name);
    std::thread::sleep(Duration::from_millis(50)); // let it block waiting for a sender
    sigint(&recv);
    let result = finish(&mut recv);
    assert_eq!(result.0.code(), Some(130), "recv after Ctrl-C: {result:?}");
    assert_eq!(result.1, "shmq: interrupted\n");
    assert_gone(&name);
}

#[test]
fn ctrl_c_on_a_send_blocked_reading_its_input_removes_its_ring_and_exits_130() {
    let name = unique("sigint-send");
    // stdin is a pipe we keep open and silent: send blocks in read(2).
    let mut send = spawn(&["send", &name], Stdio::piped(), Stdio::null());
    let _input = send.stdin.take().unwrap();
    wait_created(&name);
    std::thread::sleep(Duration::from_millis(50));
    sigint(&send);
    let result = finish(&mut send);
    assert_eq!(result.0.code(), Some(130), "send after Ctrl-C: {result:?}");
    assert_eq!(result.1, "shmq: interrupted\n");
    assert_gone(&name);
}
