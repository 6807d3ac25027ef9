//! Naming, creation, validation and clean-up of segments, including hostile contents.

mod common;

use std::time::{Duration, Instant};

use common::{assert_gone, unique};
use shmq::{Array, CreateError, Event, Lock, Mutex, OpenError, Options, Segment, Semaphore, Value};

#[test]
fn invalid_names_are_rejected_with_the_rule() {
    let long = "x".repeat(201);
    for bad in [
        "",
        ".hidden",
        "a/b",
        "..",
        "sp ace",
        "caf\u{e9}",
        long.as_str(),
    ] {
        match Value::<u32>::create(bad, 0) {
            Err(CreateError::InvalidName { name, reason }) => {
                assert_eq!(name, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: expected InvalidName, got {other:?}"),
        }
        assert!(
            matches!(Value::<u32>::open(bad), Err(OpenError::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(Event::create(bad), Err(CreateError::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(Semaphore::open(bad), Err(OpenError::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(
                Segment::create(bad, 8),
                Err(CreateError::InvalidName { .. })
            ),
            "{bad:?}"
        );
    }
    let msg = Value::<u32>::create("a/b", 0).unwrap_err().to_string();
    assert!(msg.contains("A-Z a-z 0-9 . _ -"), "{msg}");
}

#[test]
fn create_twice_fails_and_missing_open_fails() {
    let name = unique("dup");
    {
        let _v = Value::<u32>::create(name.as_str(), 1).unwrap();
        assert!(matches!(
            Value::<u32>::create(name.as_str(), 1),
            Err(CreateError::AlreadyExists { .. })
        ));
    }
    assert_gone(&name);
    assert!(matches!(
        Value::<u32>::open(name.as_str()),
        Err(OpenError::NotFound { .. })
    ));
}

#[test]
fn creator_drop_removes_but_persistent_keeps() {
    let name = unique("persist");
    {
        let _e = Event::create(Options::new(name.as_str()).persistent(true)).unwrap();
    }
    assert_eq!(common::leftovers(&name).len(), 1);
    {
        let e = Event::open(name.as_str()).unwrap();
        assert!(!e.is_set());
    }
    Segment::unlink(name.as_str()).unwrap();
    assert_gone(&name);
    // An opener's drop never removes the segment.
    {
        let v = Value::<u8>::create(name.as_str(), 3).unwrap();
        drop(Value::<u8>::open(name.as_str()).unwrap());
        assert_eq!(Value::<u8>::open(name.as_str()).unwrap().load(), 3);
        drop(v);
    }
    assert_gone(&name);
}

fn write_file(name: &str, bytes: &[u8]) {
    std::fs::write(format!("/dev/shm/{name}"), bytes).unwrap();
}

fn fake_header(creator_pid: u32, ready: bool) -> Vec<u8> {
    let mut h = vec![0u8; 4096];
    h[0..8].copy_from_slice(b"SHMQSEG\x01");
    h[16..20].copy_from_slice(&u32::from(ready).to_ne_bytes());
    h[80..84].copy_from_slice(&creator_pid.to_ne_bytes());
    h
}

#[test]
fn foreign_and_corrupt_files_give_clear_errors() {
    let name = unique("foreign");
    // Random-looking bytes: not shmq.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write_file(&name, &junk);
    assert!(matches!(
        Value::<u64>::open(name.as_str()),
        Err(OpenError::NotShmq { .. })
    ));
    assert!(matches!(
        Segment::inspect(name.as_str()),
        Err(OpenError::NotShmq { .. })
    ));

    // Ready, but the rest of the header is nonsense: Corrupted or VersionMismatch, no panic.
    write_file(&name, &fake_header(std::process::id(), true));
    match Value::<u64>::open(name.as_str()) {
        Err(OpenError::VersionMismatch { found: 0, .. }) => {}
        other => panic!("expected VersionMismatch, got {other:?}"),
    }

    // A real segment whose header is then truncated to a smaller file.
    let real = unique("trunc");
    {
        let _v = Value::<u64>::create(Options::new(real.as_str()).persistent(true), 1).unwrap();
    }
    let bytes = std::fs::read(format!("/dev/shm/{real}")).unwrap();
    write_file(&real, &bytes[..1024]);
    assert!(matches!(
        Value::<u64>::open(real.as_str()),
        Err(OpenError::Corrupted { .. })
    ));
    std::fs::remove_file(format!("/dev/shm/{real}")).unwrap();

    // A header that says the payload is much larger than the file.
    let mut big = bytes.clone();
    big[40..48].copy_from_slice(&(1u64 << 40).to_ne_bytes());
    write_file(&real, &big);
    assert!(matches!(
        Value::<u64>::open(real.as_str()),
        Err(OpenError::Corrupted { .. })
    ));
    std::fs::remove_file(format!("/dev/shm/{real}")).unwrap();
    std::fs::remove_file(format!("/dev/shm/{name}")).unwrap();
    assert_gone(&name);
    assert_gone(&real);
}

#[test]
fn creator_died_during_init_is_reported_abandoned() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let name = unique("abandoned");
    write_file(&name, &fake_header(dead, false));
    let started = Instant::now();
    match Mutex::<u64>::open(Options::new(name.as_str()).open_timeout(Duration::from_secs(30))) {
        Err(OpenError::Abandoned { pid, .. }) => assert_eq!(pid, dead),
        other => panic!("expected Abandoned, got {other:?}"),
    }
    // Detected from the dead creator, not by running out the 30 s timeout.
    assert!(started.elapsed() < Duration::from_secs(30));
    std::fs::remove_file(format!("/dev/shm/{name}")).unwrap();
}

#[test]
fn still_initializing_times_out_with_the_creator_pid() {
    let name = unique("init");
    // Our own pid: alive, "initializing" forever.
    write_file(&name, &fake_header(std::process::id(), false));
    let timeout = Duration::from_millis(100);
    let started = Instant::now();
    match Lock::open(Options::new(name.as_str()).open_timeout(timeout)) {
        Err(OpenError::InitTimeout { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected InitTimeout, got {other:?}"),
    }
    assert!(started.elapsed() >= timeout);
    // An empty file (creator has not sized it yet) also waits, then times out.
    write_file(&name, &[]);
    assert!(matches!(
        Lock::open(Options::new(name.as_str()).open_timeout(timeout)),
        Err(OpenError::InitTimeout { pid: 0, .. })
    ));
    std::fs::remove_file(format!("/dev/shm/{name}")).unwrap();
}

#[test]
fn symlinks_in_dev_shm_are_refused() {
    let target = unique("symlink-target");
    let link = unique("symlink");
    let _v = Value::<u32>::create(target.as_str(), 5).unwrap();
    std::os::unix::fs::symlink(format!("/dev/shm/{target}"), format!("/dev/shm/{link}")).unwrap();
    assert!(matches!(
        Value::<u32>::open(link.as_str()),
        Err(OpenError::Symlink { .. })
    ));
    assert!(matches!(
        Value::<u32>::create(link.as_str(), 1),
        Err(CreateError::AlreadyExists { .. })
    ));
    std::fs::remove_file(format!("/dev/shm/{link}")).unwrap();
}

#[test]
fn file_backed_segments_outlive_their_processes() {
    let dir = std::env::temp_dir().join(unique("filebacked"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("counter.shmq");
    {
        let v = Value::<u64>::create(Options::file(&path), 10).unwrap();
        v.fetch_add(5);
    }
    assert!(path.exists(), "file-backed segments are persistent");
    {
        let v = Value::<u64>::open(Options::file(&path)).unwrap();
        assert_eq!(v.load(), 15);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn raw_segment_bounds_and_round_trip() {
    let name = unique("raw");
    {
        let a = Segment::create(name.as_str(), 100).unwrap();
        assert_eq!(a.len(), 100);
        let b = Segment::open(name.as_str()).unwrap();
        a.write(95, b"hello").unwrap();
        let mut out = [0u8; 5];
        b.read(95, &mut out).unwrap();
        assert_eq!(&out, b"hello");
        let err = a.write(96, b"hello").unwrap_err();
        assert_eq!((err.start, err.end, err.len), (96, 101, 100));
        assert!(b.read(usize::MAX, &mut out).is_err());
        assert_eq!(
            Segment::inspect(name.as_str()).unwrap().kind,
            shmq::Kind::Raw
        );
    }
    assert_gone(&name);
}

#[test]
fn semaphore_bounds_and_array_bounds() {
    let name = unique("bounds");
    {
        let s = Semaphore::create_bounded(format!("{name}-s"), 1, 1).unwrap();
        assert_eq!(s.release(), Err(shmq::SemaphoreFull { max: 1 }));
        assert!(Semaphore::create_bounded(format!("{name}-t"), 2, 1).is_err());
        let a = Array::<u16>::create_zeroed(format!("{name}-a"), 3).unwrap();
        assert!(a.set(3, 1).is_err());
        assert!(a.write_from(2, &[1, 2]).is_err());
        a.write_from(1, &[1, 2]).unwrap();
        let mut out = [0u16; 3];
        a.read_into(0, &mut out).unwrap();
        assert_eq!(out, [0, 1, 2]);
        let opened = Array::<u16>::open(format!("{name}-a")).unwrap();
        assert_eq!(opened.len(), 3);
        assert!(matches!(
            Array::<u32>::open(format!("{name}-a")),
            Err(OpenError::TypeMismatch { .. })
        ));
    }
    assert_gone(&name);
}

#[test]
fn value_operations_word_and_seqlock() {
    #[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Big {
        a: [u32; 9],
    }
    let name = unique("valops");
    {
        let v = Value::<i32>::create(format!("{name}-i"), -5).unwrap();
        assert_eq!(v.fetch_add(10), -5);
        assert_eq!(v.fetch_sub(1), 5);
        assert_eq!(v.fetch_max(100), 4);
        assert_eq!(v.fetch_min(-1), 100);
        assert_eq!(v.fetch_or(0b110), -1);
        assert_eq!(v.compare_exchange(-1, 3), Ok(-1));
        assert_eq!(v.compare_exchange(-1, 4), Err(3));
        assert_eq!(v.swap(9), 3);
        let f = Value::<f64>::create(format!("{name}-f"), 1.5).unwrap();
        f.fetch_add(2.25);
        assert_eq!(f.load(), 3.75);
        let b = Value::<Big>::create(format!("{name}-b"), Big { a: [1; 9] }).unwrap();
        assert_eq!(
            b.update(|mut x| {
                x.a[8] = 7;
                x
            }),
            Big { a: [1; 9] }
        );
        assert_eq!(b.load().a[8], 7);
        assert!(
            b.compare_exchange(Big { a: [0; 9] }, Big { a: [2; 9] })
                .is_err()
        );
        let mut expect = [1; 9];
        expect[8] = 7;
        assert!(
            b.compare_exchange(Big { a: expect }, Big { a: [2; 9] })
                .is_ok()
        );
        assert_eq!(
            Value::<Big>::open(format!("{name}-b")).unwrap().load(),
            Big { a: [2; 9] }
        );
    }
    assert_gone(&name);
}
