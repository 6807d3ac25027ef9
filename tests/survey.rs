//! `Survey`: read-only, complete, and safe on segments that were scribbled over.

mod common;

use std::os::unix::fs::FileExt;

use common::{assert_gone, unique};
use shmq::{Capacity, Kind, Options, Survey};

/// xorshift64: deterministic noise.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One segment of every kind, each holding something, named `prefix-KIND`.
fn one_of_each(prefix: &str) -> Vec<(String, Box<dyn std::any::Any>)> {
    let n = |k: &str| format!("{prefix}-{k}");
    let mut out: Vec<(String, Box<dyn std::any::Any>)> = Vec::new();
    let seg = shmq::Segment::create(n("raw").as_str(), 100).unwrap();
    seg.write(0, b"raw bytes").unwrap();
    out.push((n("raw"), Box::new(seg)));
    out.push((
        n("value"),
        Box::new(shmq::Value::<u64>::create(n("value").as_str(), 42).unwrap()),
    ));
    out.push((
        n("bigvalue"),
        Box::new(shmq::Value::<[u64; 4]>::create(n("bigvalue").as_str(), [1, 2, 3, 4]).unwrap()),
    ));
    out.push((
        n("array"),
        Box::new(shmq::Array::<u32>::create(n("array").as_str(), &[7; 10]).unwrap()),
    ));
    out.push((
        n("mutex"),
        Box::new(shmq::Mutex::create(n("mutex").as_str(), 5u32).unwrap()),
    ));
    out.push((
        n("sem"),
        Box::new(shmq::Semaphore::create(n("sem").as_str(), 3).unwrap()),
    ));
    out.push((
        n("event"),
        Box::new(shmq::Event::create(n("event").as_str()).unwrap()),
    ));
    let ring = shmq::Ring::create(n("ring").as_str(), 1024).unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0..20u8 {
        tx.send(&vec![i; usize::from(i) * 3]).unwrap();
    }
    out.push((n("ring"), Box::new((tx, ring))));
    let pipe = shmq::Pipe::create(n("pipe").as_str(), 1024).unwrap();
    out.push((n("pipe"), Box::new(pipe)));
    let q = shmq::Queue::<u32>::create(n("queue").as_str(), 6).unwrap();
    for i in 0..4 {
        q.put(i).unwrap();
    }
    out.push((n("queue"), Box::new(q)));
    let jq = shmq::JoinableQueue::<u16>::create(n("jqueue").as_str(), 4).unwrap();
    jq.put(1).unwrap();
    out.push((n("jqueue"), Box::new(jq)));
    let bq = shmq::ByteQueue::create(n("bqueue").as_str(), 4, 64).unwrap();
    bq.put(b"one").unwrap();
    bq.put(b"two!").unwrap();
    out.push((n("bqueue"), Box::new(bq)));
    let pq = shmq::PriorityQueue::<i64>::create(n("pqueue").as_str(), 8).unwrap();
    for v in [5, -3, 9] {
        pq.put(v).unwrap();
    }
    out.push((n("pqueue"), Box::new(pq)));
    let topic = shmq::Topic::create(n("topic").as_str(), 8, 32).unwrap();
    let mut ahead = topic.subscriber().unwrap();
    let behind = topic.subscriber().unwrap();
    let mut tx = topic.publisher().unwrap();
    for i in 0..6u8 {
        tx.publish(&vec![i; usize::from(i) + 1]).unwrap();
    }
    for _ in 0..4 {
        drop(ahead.recv().unwrap());
    }
    out.push((n("topic"), Box::new((ahead, behind, tx, topic))));
    out
}

#[test]
fn surveys_of_every_kind_report_contents_and_change_nothing() {
    let prefix = unique("survey-kinds");
    let handles = one_of_each(&prefix);
    for (name, _) in &handles {
        let path = format!("/dev/shm/{name}");
        let before = std::fs::read(&path).unwrap();
        let mut s = Survey::of(name.as_str(), 8, 64).unwrap();
        Survey::find_users(std::slice::from_mut(&mut s));
        assert!(s.problems.is_empty(), "{name}: {:?}", s.problems);
        assert!(s.creator.alive && s.in_use(), "{name}");
        assert!(
            s.users.iter().all(|u| u.pid != std::process::id()),
            "a process is not its own user"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name} changed");
        match s.info.kind {
            Kind::Queue => {
                assert_eq!(s.capacity, Some(Capacity::Items(6)));
                assert_eq!(s.fill, Some(4));
                let items: Vec<u32> = s
                    .contents
                    .iter()
                    .map(|m| u32::from_ne_bytes(m.bytes[..4].try_into().unwrap()))
                    .collect();
                assert_eq!(items, [0, 1, 2, 3]);
                assert_eq!(s.attached.len(), 1);
            }
            Kind::ByteQueue => {
                let msgs: Vec<&[u8]> = s.contents.iter().map(|m| &m.bytes[..]).collect();
                assert_eq!(msgs, [&b"one"[..], b"two!"]);
            }
            Kind::JoinableQueue => {
                assert!(s.details.iter().any(|(k, v)| k == "unfinished" && v == "1"));
            }
            Kind::PriorityQueue => {
                assert_eq!(s.fill, Some(3));
                let first = i64::from_ne_bytes(s.contents[0].bytes[..8].try_into().unwrap());
                assert_eq!(first, -3, "the smallest comes first");
            }
            Kind::Ring => {
                assert_eq!(s.contents.len(), 8);
                for (i, m) in s.contents.iter().enumerate() {
                    assert_eq!(m.len, i * 3);
                    assert!(m.bytes.iter().all(|&b| usize::from(b) == i));
                }
                assert!(
                    s.details
                        .iter()
                        .any(|(k, v)| k == "consumer" && v == "not attached yet")
                );
                assert!(s.attached.iter().any(|p| p.role == "producer"));
            }
            Kind::Semaphore => {
                assert!(s.details.iter().any(|(k, v)| k == "value" && v == "3"));
            }
            Kind::Event => assert!(s.details.iter().any(|(k, v)| k == "set" && v == "no")),
            Kind::Value if name.ends_with("-value") => {
                assert_eq!(s.contents[0].bytes, 42u64.to_ne_bytes());
            }
            Kind::Topic => {
                assert_eq!(s.capacity, Some(Capacity::Items(8)));
                assert_eq!(s.fill, Some(6), "the slowest subscriber's lag");
                let me = std::process::id();
                let subs: Vec<_> = s
                    .subscribers
                    .iter()
                    .map(|l| (l.index, l.pid, l.alive, l.position, l.lag, l.lost))
                    .collect();
                assert_eq!(subs, [(0, me, true, 4, 2, 0), (1, me, true, 0, 6, 0)]);
                assert!(s.attached.iter().any(|p| p.role == "publisher"));
                // The last messages, oldest first.
                let lens: Vec<usize> = s.contents.iter().map(|m| m.len).collect();
                assert_eq!(lens, [1, 2, 3, 4, 5, 6]);
                assert!(s.details.iter().any(|(k, v)| k == "published" && v == "6"));
            }
            Kind::Mutex => assert_eq!(s.contents[0].bytes[..4], 5u32.to_ne_bytes()),
            Kind::Raw => assert!(s.contents[0].bytes.starts_with(b"raw bytes")),
            _ => {}
        }
    }
    drop(handles);
    assert_gone(&prefix);
}

#[test]
fn surveys_of_scribbled_segments_never_panic_or_read_out_of_bounds() {
    let prefix = unique("survey-noise");
    let handles = one_of_each(&prefix);
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    let mut problems = 0;
    for (name, _) in &handles {
        let path = format!("/dev/shm/{name}");
        let pristine = std::fs::read(&path).unwrap();
        let info = Survey::of(name.as_str(), 0, 0).unwrap().info;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for round in 0..200 {
            file.write_all_at(&pristine, 0).unwrap();
            // Mostly the kind's own area; now and then the header too.
            let (lo, hi) = if round % 10 == 0 {
                (0, info.total_size)
            } else {
                (info.payload_offset, info.payload_offset + info.payload_size)
            };
            for _ in 0..1 + noise.next() % 8 {
                let at = (lo + noise.next() % (hi - lo).max(1)) & !7;
                let word = match noise.next() % 4 {
                    0 => noise.next(),
                    1 => noise.next() % 64,
                    2 => u64::MAX - noise.next() % 4,
                    _ => 1 << (noise.next() % 64),
                };
                file.write_all_at(&word.to_ne_bytes(), at).unwrap();
            }
            match Survey::of(name.as_str(), 16, 4096) {
                Ok(s) => {
                    problems += usize::from(!s.problems.is_empty());
                    for m in &s.contents {
                        assert!(m.bytes.len() <= m.len.min(4096));
                    }
                }
                // Only the header can make the survey fail, and only as a clear error.
                Err(e) => assert!(
                    matches!(
                        e,
                        shmq::OpenError::NotShmq { .. }
                            | shmq::OpenError::Corrupted { .. }
                            | shmq::OpenError::VersionMismatch { .. }
                    ),
                    "{e}"
                ),
            }
        }
        file.write_all_at(&pristine, 0).unwrap();
    }
    assert!(
        problems > 0,
        "the noise never tripped a check: it tests nothing"
    );
    drop(handles);
    assert_gone(&prefix);
}

#[test]
fn remove_spares_a_newer_segment_of_the_same_name() {
    let name = unique("survey-remove");
    let old = shmq::Value::<u8>::create(Options::new(name.as_str()).persistent(true), 1).unwrap();
    let s = Survey::of(name.as_str(), 0, 0).unwrap();
    drop(old);
    shmq::Segment::unlink(name.as_str()).unwrap();
    let newer = shmq::Value::<u8>::create(name.as_str(), 2).unwrap();
    assert!(matches!(s.remove(), Err(shmq::OpenError::NotFound { .. })));
    assert_eq!(shmq::Value::<u8>::open(name.as_str()).unwrap().load(), 2);
    drop(newer);
    assert_gone(&name);
}

/// Polls the survey of `name` until the bell `bell` records `want` sleepers (a watchdog
/// fails the test after 20 s).
fn await_sleepers(name: &str, bell: &str, want: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let s = Survey::of(name, 0, 0).unwrap();
        let b = s
            .bells
            .iter()
            .find(|b| b.name == bell)
            .unwrap_or_else(|| panic!("{name} has no {bell} bell: {:?}", s.bells));
        assert!(b.counted, "{b:?}");
        if b.sleepers == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: {bell} never recorded {want} sleepers: {b:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn bells_record_the_threads_asleep_on_them() {
    use std::time::Duration;
    let patience = Duration::from_secs(30);
    let (sn, en, rn) = (unique("bell-sem"), unique("bell-ev"), unique("bell-ring"));
    let sem = shmq::Semaphore::create(sn.as_str(), 0).unwrap();
    let ev = shmq::Event::create(en.as_str()).unwrap();
    let ring = shmq::Ring::create(rn.as_str(), 4096).unwrap();
    let mut producer = ring.first_producer().unwrap();
    for (name, bell) in [(&sn, "count"), (&en, "flag"), (&rn, "consumer")] {
        await_sleepers(name, bell, 0);
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let sem = shmq::Semaphore::open(sn.as_str()).unwrap();
            assert!(sem.acquire_timeout(patience).unwrap());
        });
        await_sleepers(&sn, "count", 1);
        sem.release().unwrap();

        s.spawn(|| {
            let ev = shmq::Event::open(en.as_str()).unwrap();
            assert!(ev.wait_timeout(patience).unwrap());
        });
        await_sleepers(&en, "flag", 1);
        ev.set();

        s.spawn(|| {
            let ring = shmq::Ring::open(rn.as_str()).unwrap();
            let mut consumer = ring.first_consumer().unwrap();
            assert_eq!(&*consumer.recv_timeout(patience).unwrap(), b"wake up");
        });
        await_sleepers(&rn, "consumer", 1);
        await_sleepers(&rn, "producer", 0);
        producer.send(b"wake up").unwrap();
    });
    for (name, bell) in [(&sn, "count"), (&en, "flag"), (&rn, "consumer")] {
        await_sleepers(name, bell, 0);
    }
    drop((sem, ev, producer, ring));
    for n in [sn, en, rn] {
        assert_gone(&n);
    }
}
