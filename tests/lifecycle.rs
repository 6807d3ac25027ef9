//! Issue 9: names that live while anyone uses them and clean up after any death, queues that
//! notice their other side is gone, waits that an interrupt ends. Real processes throughout.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{assert_gone, role, spawn, unique, wait, wait_all_ok};
use shmq::{
    Array, ArrayError, ByteQueue, CreateError, Event, GetError, Interrupter, JoinError,
    JoinableQueue, LockError, Mutex, OpenError, Options, PriorityQueue, PutError, Queue, RecvError,
    Ring, Semaphore, SendError, Side, Value,
};

const LIMIT: Duration = Duration::from_secs(60);

fn shm(name: &str) -> std::path::PathBuf {
    Path::new("/dev/shm").join(name)
}

fn inode(name: &str) -> Option<u64> {
    std::fs::metadata(shm(name)).ok().map(|m| m.ino())
}

/// Polls `cond` until it holds, failing the test after `LIMIT`.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    let status = wait(child, LIMIT);
    assert_eq!(
        status.signal(),
        Some(9),
        "child was not SIGKILLed: {status}"
    );
}

#[test]
fn a_killed_creators_name_is_created_anew_at_once() {
    if let Some(name) = role("a_killed_creators_name_is_created_anew_at_once") {
        let v = Value::<u64>::create(name.as_str(), 7).unwrap();
        let _keep = v;
        std::thread::sleep(LIMIT * 2); // killed long before this ends
        return;
    }
    let name = unique("reclaim");
    let mut child = spawn("a_killed_creators_name_is_created_anew_at_once", &name);
    until("the child created its value", || {
        Value::<u64>::open(name.as_str()).is_ok()
    });
    kill(&mut child);
    assert!(
        shm(&name).exists(),
        "a killed creator cannot remove its name"
    );
    // The restarted program just starts: create replaces the abandoned segment.
    let v = Value::<u64>::create(name.as_str(), 1).unwrap();
    assert_eq!(v.load(), 1, "the new segment is fresh, not the dead one's");
    drop(v);
    assert_gone(&name);
}

#[test]
fn a_segment_in_use_is_never_replaced_by_create() {
    let name = unique("inuse");
    let v = Value::<u64>::create(name.as_str(), 7).unwrap();
    let other = Value::<u64>::open(name.as_str()).unwrap();
    drop(v); // the creator leaves; `other` still uses it
    match Value::<u64>::create(name.as_str(), 1) {
        Err(CreateError::AlreadyExists { .. }) => {}
        other => panic!("create over a live segment: {other:?}"),
    }
    assert_eq!(other.load(), 7);
    drop(other);
    assert_gone(&name);
}

#[test]
fn a_late_opener_attaches_after_the_creator_dropped() {
    if let Some(name) = role("a_late_opener_attaches_after_the_creator_dropped") {
        // Started after the creator let go: the name still lives, because the parent uses it.
        let q = Queue::<u64>::open(name.as_str()).unwrap();
        assert_eq!(q.get_timeout(LIMIT).unwrap(), 42);
        q.put(43).unwrap();
        return;
    }
    let name = unique("late");
    let creator = Queue::<u64>::create(name.as_str(), 4).unwrap();
    let user = Queue::<u64>::open(name.as_str()).unwrap();
    user.put(42).unwrap();
    drop(creator);
    assert!(
        shm(&name).exists(),
        "the creator's drop removed a name in use"
    );
    let mut child = spawn("a_late_opener_attaches_after_the_creator_dropped", &name);
    wait_all_ok(std::slice::from_mut(&mut child), LIMIT);
    assert_eq!(user.get_timeout(LIMIT).unwrap(), 43);
    // The last user's drop removes the name.
    drop(user);
    assert_gone(&name);
}

#[test]
fn the_last_user_removes_the_name_whoever_it_is() {
    if let Some(name) = role("the_last_user_removes_the_name_whoever_it_is") {
        let e = Event::open(name.as_str()).unwrap();
        e.set(); // "attached"
        // Stay until the parent closes our stdin; then drop, the last user.
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        drop(e);
        return;
    }
    let name = unique("lastuser");
    let e = Event::create(name.as_str()).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_last_user_removes_the_name_whoever_it_is",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(common::ROLE, "the_last_user_removes_the_name_whoever_it_is")
        .env(common::ARG, &name)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(e.wait_timeout(LIMIT).unwrap(), "the child never attached");
    drop(e); // the creator leaves first: the child still uses it
    assert!(
        shm(&name).exists(),
        "the creator's drop removed a name in use"
    );
    drop(child.stdin.take()); // the child leaves, last
    wait_all_ok(std::slice::from_mut(&mut child), LIMIT);
    assert_gone(&name);
}

#[test]
fn users_killed_while_one_lives_never_remove_or_replace_the_segment() {
    const ROUNDS: usize = 100;
    if let Some(name) = role("users_killed_while_one_lives_never_remove_or_replace_the_segment") {
        let q = Queue::<u64>::open(name.as_str()).unwrap();
        q.put(u64::from(std::process::id())).unwrap();
        std::thread::sleep(LIMIT * 2);
        return;
    }
    let name = unique("killusers");
    let holder = Queue::<u64>::create(name.as_str(), 1024).unwrap();
    let ino = inode(&name).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut live: Vec<Child> = Vec::new();
    for round in 0..ROUNDS {
        if live.len() < 3 || rand() % 2 == 0 {
            live.push(spawn(
                "users_killed_while_one_lives_never_remove_or_replace_the_segment",
                &name,
            ));
            // Let it attach (it puts its pid) before it may be killed. While it starts, the
            // earlier producers may all be dead: the get then says Disconnected, truly.
            let deadline = Instant::now() + LIMIT;
            loop {
                match holder.get_timeout(LIMIT) {
                    Ok(_) => break,
                    Err(GetError::Disconnected) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
        }
        // Kill a random one, at a random moment.
        std::thread::sleep(Duration::from_micros(rand() % 2000));
        let victim = (rand() % live.len() as u64) as usize;
        kill(&mut live.swap_remove(victim));
        assert_eq!(
            inode(&name),
            Some(ino),
            "round {round}: the segment was removed or replaced while a user lives"
        );
        // A create by someone else must fail: the segment is in use.
        assert!(
            matches!(
                Queue::<u64>::create(name.as_str(), 4),
                Err(CreateError::AlreadyExists { .. })
            ),
            "round {round}: create replaced a live segment"
        );
    }
    for mut c in live {
        kill(&mut c);
    }
    assert_eq!(inode(&name), Some(ino));
    drop(holder);
    assert_gone(&name);
}

#[test]
fn persistent_segments_outlive_their_users_and_are_not_reclaimed() {
    let name = unique("persist");
    let opts = Options::new(name.as_str()).persistent(true);
    let v = Value::<u64>::create(&opts, 5).unwrap();
    assert!(shmq::Segment::inspect(name.as_str()).unwrap().persistent);
    drop(v);
    assert!(
        shm(&name).exists(),
        "a persistent segment was removed on drop"
    );
    assert!(matches!(
        Value::<u64>::create(name.as_str(), 1),
        Err(CreateError::AlreadyExists { .. })
    ));
    assert_eq!(Value::<u64>::open(name.as_str()).unwrap().load(), 5);
    assert_eq!(
        shmq::Segment::remove_if_unused(name.as_str(), false).unwrap(),
        shmq::segment::Removal::Persistent
    );
    assert_eq!(
        shmq::Segment::remove_if_unused(name.as_str(), true).unwrap(),
        shmq::segment::Removal::Removed
    );
    assert_gone(&name);
}

#[test]
fn a_foreign_file_is_never_replaced() {
    let name = unique("foreign");
    std::fs::write(shm(&name), b"not a shmq segment, but someone's data").unwrap();
    assert!(matches!(
        Value::<u64>::create(name.as_str(), 1),
        Err(CreateError::AlreadyExists { .. })
    ));
    assert_eq!(
        std::fs::read(shm(&name)).unwrap(),
        b"not a shmq segment, but someone's data"
    );
    // Empty, or zeros where the header goes: every program's new shared-memory file looks
    // like that for a moment (shm_open + ftruncate). Not ours to replace either.
    for blank in [vec![], vec![0u8; 4096]] {
        std::fs::write(shm(&name), &blank).unwrap();
        assert!(matches!(
            Value::<u64>::create(name.as_str(), 1),
            Err(CreateError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(shm(&name)).unwrap(), blank);
    }
    // But a blank file that names its creator, a process now dead, is a shmq creator's
    // leftover (killed before it wrote its header): replaced.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    wait_all_ok(&mut [dead], LIMIT);
    let mut leftover = vec![0u8; 4096];
    leftover[80..84].copy_from_slice(&dead_pid.to_le_bytes());
    leftover[88..96].copy_from_slice(&1u64.to_le_bytes());
    std::fs::write(shm(&name), &leftover).unwrap();
    let v = Value::<u64>::create(name.as_str(), 3).unwrap();
    assert_eq!(v.load(), 3);
    drop(v);
    assert_gone(&name);
}

/// The worker pool of the issue: a parent that put tasks and gets results is SIGKILLed while
/// two workers block in `put` on a full results queue and two in `get` on an empty task
/// queue. All four must get Disconnected and exit; nothing is left in /dev/shm.
#[test]
fn workers_of_a_killed_parent_get_disconnected() {
    if let Some(arg) = role("workers_of_a_killed_parent_get_disconnected") {
        let (what, tasks, results) = {
            let mut it = arg.split(',');
            (
                it.next().unwrap().to_owned(),
                it.next().unwrap().to_owned(),
                it.next().unwrap().to_owned(),
            )
        };
        let ready = Semaphore::open(format!("{tasks}-ready").as_str()).unwrap();
        match what.as_str() {
            "parent" => {
                let t = Queue::<u64>::create(tasks.as_str(), 4).unwrap();
                let r = Queue::<u64>::create(results.as_str(), 1).unwrap();
                t.set_side(Side::Put);
                r.set_side(Side::Get);
                ready.release().unwrap();
                std::thread::sleep(LIMIT * 2); // killed while the workers block
                drop((t, r));
            }
            "getter" => {
                let t = Queue::<u64>::open_for(tasks.as_str(), Side::Get).unwrap();
                ready.release().unwrap();
                assert_eq!(t.get(), Err(GetError::Disconnected));
            }
            "putter" => {
                let r = Queue::<u64>::open_for(results.as_str(), Side::Put).unwrap();
                // One of the two putters fills the queue; both then block.
                let _ = r.try_put(1);
                ready.release().unwrap();
                assert_eq!(r.put(2), Err(PutError::Disconnected(2)));
            }
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let tasks = unique("pool-tasks");
    let results = unique("pool-results");
    let ready = Semaphore::create(format!("{tasks}-ready").as_str(), 0).unwrap();
    let role_of = |what: &str| format!("{what},{tasks},{results}");
    let mut parent = spawn(
        "workers_of_a_killed_parent_get_disconnected",
        &role_of("parent"),
    );
    assert!(ready.acquire_timeout(LIMIT).unwrap(), "parent never ready");
    let mut workers: Vec<Child> = ["getter", "getter", "putter", "putter"]
        .iter()
        .map(|w| spawn("workers_of_a_killed_parent_get_disconnected", &role_of(w)))
        .collect();
    for _ in 0..4 {
        assert!(
            ready.acquire_timeout(LIMIT).unwrap(),
            "a worker never ready"
        );
    }
    // Let them block, then kill the parent.
    std::thread::sleep(Duration::from_millis(100));
    let killed = Instant::now();
    kill(&mut parent);
    wait_all_ok(&mut workers, LIMIT);
    eprintln!(
        "workers released {:?} after the parent's SIGKILL",
        killed.elapsed()
    );
    drop(ready);
    // The workers were the last users: their exits removed the queues.
    assert_gone(&tasks);
    assert_gone(&results);
}

#[test]
fn a_consumer_that_starts_first_waits_for_its_producers() {
    let name = unique("first");
    let q = Queue::<u64>::create(name.as_str(), 4).unwrap();
    q.set_side(Side::Get);
    // No putter ever came: a timed get times out instead of reporting Disconnected.
    assert_eq!(
        q.get_timeout(Duration::from_millis(100)),
        Err(GetError::Timeout)
    );
    let producer = Queue::<u64>::open_for(name.as_str(), Side::Put).unwrap();
    producer.put(1).unwrap();
    drop(producer);
    // What the producer left is delivered, then the queue reports its end at once.
    assert_eq!(q.get_timeout(LIMIT), Ok(1));
    assert_eq!(q.get_timeout(LIMIT), Err(GetError::Disconnected));
    drop(q);
    assert_gone(&name);
}

#[test]
fn byte_and_priority_queues_notice_a_dropped_other_side() {
    let name = unique("sides");
    let b = ByteQueue::create(name.as_str(), 4, 64).unwrap();
    b.set_side(Side::Get);
    let p = ByteQueue::open_for(name.as_str(), Side::Put).unwrap();
    p.put(b"x").unwrap();
    drop(p);
    assert_eq!(&*b.get_timeout(LIMIT).unwrap(), b"x");
    assert!(matches!(b.get_timeout(LIMIT), Err(GetError::Disconnected)));
    drop(b);

    let name2 = unique("psides");
    let q = PriorityQueue::<u32>::create(name2.as_str(), 1).unwrap();
    q.set_side(Side::Put);
    q.put(1).unwrap();
    let getter = PriorityQueue::<u32>::open_for(name2.as_str(), Side::Get).unwrap();
    drop(getter);
    // Full, and the only getter left: the put reports it instead of waiting forever.
    assert_eq!(q.put_timeout(2, LIMIT), Err(PutError::Disconnected(2)));
    drop(q);
    assert_gone(&name);
    assert_gone(&name2);
}

#[test]
fn join_reports_tasks_lost_with_a_killed_worker() {
    if let Some(name) = role("join_reports_tasks_lost_with_a_killed_worker") {
        let q = JoinableQueue::<u64>::open_for(name.as_str(), Side::Get).unwrap();
        let task = q.get_timeout(LIMIT).unwrap();
        assert_eq!(task, 1);
        let done = Event::open(format!("{name}-took").as_str()).unwrap();
        done.set();
        std::thread::sleep(LIMIT * 2); // killed holding its task
        return;
    }
    let name = unique("lost");
    let took = Event::create(format!("{name}-took").as_str()).unwrap();
    let q = JoinableQueue::<u64>::create(name.as_str(), 8).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    let mut worker = spawn("join_reports_tasks_lost_with_a_killed_worker", &name);
    assert!(took.wait_timeout(LIMIT).unwrap());
    kill(&mut worker);
    // Task 2 is still to do: join waits for it, then reports the lost one.
    let joiner = std::thread::spawn({
        let name = name.clone();
        move || JoinableQueue::<u64>::open(name.as_str()).unwrap().join()
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(q.get_timeout(LIMIT), Ok(2));
    q.task_done().unwrap();
    assert_eq!(
        joiner.join().unwrap(),
        Err(JoinError::Lost {
            lost: 1,
            unfinished: 1
        })
    );
    assert_eq!(q.lost_tasks(), 1);
    assert_eq!(q.forget_lost_tasks(), 1);
    assert_eq!(q.join_timeout(LIMIT), Ok(()));
    drop((q, took));
    assert_gone(&name);
}

/// Runs `call` on a thread that watches a fresh interrupter, fires it after a pause, and
/// returns what the call returned and how long after the firing it came back.
fn interrupted<R: Send + 'static>(call: impl FnOnce() -> R + Send + 'static) -> (R, Duration) {
    let stop = Interrupter::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _w = stop.watch();
            tx.send(()).unwrap();
            let r = call();
            (r, Instant::now())
        })
    };
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50)); // let it block
    let fired = Instant::now();
    stop.interrupt();
    let (r, back) = t.join().unwrap();
    (r, back.saturating_duration_since(fired))
}

#[test]
fn every_kind_of_blocking_call_is_interrupted_from_another_thread() {
    let base = unique("intr");
    let n = |s: &str| format!("{base}-{s}");
    let mut delays = Vec::new();

    let ring = Ring::create(n("ring").as_str(), 4096).unwrap();
    let producer_side = Ring::open(n("ring").as_str()).unwrap();
    let _p = producer_side.producer().unwrap();
    let (r, d) = interrupted({
        let name = n("ring");
        move || {
            let ring = Ring::open(name.as_str()).unwrap();
            let mut c = ring.consumer().unwrap();
            c.recv().map(|m| m.len())
        }
    });
    assert_eq!(r, Err(RecvError::Interrupted));
    delays.push(("ring recv", d));
    drop(ring);

    let full = Ring::create(n("full").as_str(), 64).unwrap();
    let _c = full.consumer().unwrap();
    let (r, d) = interrupted({
        let name = n("full");
        move || {
            let ring = Ring::open(name.as_str()).unwrap();
            let mut p = ring.producer().unwrap();
            loop {
                match p.send(&[0u8; 16]) {
                    Ok(()) => continue,
                    other => return other,
                }
            }
        }
    });
    assert_eq!(r, Err(SendError::Interrupted));
    delays.push(("ring send", d));

    let q = Queue::<u64>::create(n("queue").as_str(), 1).unwrap();
    let (r, d) = interrupted({
        let name = n("queue");
        move || Queue::<u64>::open(name.as_str()).unwrap().get()
    });
    assert_eq!(r, Err(GetError::Interrupted));
    delays.push(("queue get", d));
    q.put(1).unwrap();
    let (r, d) = interrupted({
        let name = n("queue");
        move || Queue::<u64>::open(name.as_str()).unwrap().put(2)
    });
    assert_eq!(r, Err(PutError::Interrupted(2)));
    delays.push(("queue put", d));

    let pq = PriorityQueue::<u64>::create(n("pq").as_str(), 1).unwrap();
    let (r, d) = interrupted({
        let name = n("pq");
        move || PriorityQueue::<u64>::open(name.as_str()).unwrap().get()
    });
    assert_eq!(r, Err(GetError::Interrupted));
    delays.push(("priority get", d));

    let jq = JoinableQueue::<u64>::create(n("jq").as_str(), 4).unwrap();
    jq.put(1).unwrap();
    let (r, d) = interrupted({
        let name = n("jq");
        move || JoinableQueue::<u64>::open(name.as_str()).unwrap().join()
    });
    assert_eq!(r, Err(JoinError::Interrupted));
    delays.push(("join", d));

    let ev = Event::create(n("event").as_str()).unwrap();
    let (r, d) = interrupted({
        let name = n("event");
        move || Event::open(name.as_str()).unwrap().wait()
    });
    assert_eq!(r, Err(shmq::Interrupted));
    delays.push(("event wait", d));

    let sem = Semaphore::create(n("sem").as_str(), 0).unwrap();
    let (r, d) = interrupted({
        let name = n("sem");
        move || Semaphore::open(name.as_str()).unwrap().acquire()
    });
    assert_eq!(r, Err(shmq::Interrupted));
    delays.push(("semaphore acquire", d));

    let m = Mutex::<u64>::create(n("mutex").as_str(), 0).unwrap();
    let guard = m.lock().unwrap();
    let (r, d) = interrupted({
        let name = n("mutex");
        move || {
            let m = Mutex::<u64>::open(name.as_str()).unwrap();
            matches!(m.lock(), Err(LockError::Interrupted))
        }
    });
    assert!(r, "lock was not interrupted");
    delays.push(("mutex lock", d));
    drop(guard);

    let arr = Array::<u64>::create(n("array").as_str(), &[1, 2]).unwrap();
    let held = arr.lock().unwrap();
    let (r, d) = interrupted({
        let name = n("array");
        move || {
            let a = Array::<u64>::open(name.as_str()).unwrap();
            let locked = matches!(a.lock(), Err(LockError::Interrupted));
            (locked, a.get_timeout(0, LIMIT))
        }
    });
    assert!(r.0, "Array::lock was not interrupted");
    assert_eq!(r.1, Err(ArrayError::Interrupted(())));
    delays.push(("array lock", d));
    drop(held);

    let big = Value::<[u64; 4]>::create(n("value").as_str(), [0; 4]).unwrap();
    let (r, d) = interrupted({
        let name = n("value");
        move || {
            // A forged writer lock naming this (live) process: only an interrupt ends the
            // bounded store's wait before its minute.
            let v = Value::<[u64; 4]>::open(name.as_str()).unwrap();
            let path = format!("/dev/shm/{name}");
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            // The writer lock's state word: the payload's first word, at file offset 256.
            std::os::unix::fs::FileExt::write_at(&file, &std::process::id().to_le_bytes(), 256)
                .unwrap();
            v.store_timeout([1; 4], LIMIT)
                .map_err(|e| e.without_value())
        }
    });
    assert_eq!(r, Err(shmq::ValueError::Interrupted(())));
    delays.push(("value store_timeout", d));

    let bq = ByteQueue::create(n("bytes").as_str(), 2, 16).unwrap();
    let (r, d) = interrupted({
        let name = n("bytes");
        move || {
            let b = ByteQueue::open(name.as_str()).unwrap();
            b.get().map(|m| m.len())
        }
    });
    assert_eq!(r, Err(GetError::Interrupted));
    delays.push(("byte queue get", d));

    let pipe = shmq::Pipe::create(n("pipe").as_str(), 4096).unwrap();
    let (r, d) = interrupted({
        let name = n("pipe");
        move || {
            let mut p = shmq::Pipe::open(name.as_str()).unwrap();
            p.recv().map(|m| m.len())
        }
    });
    assert_eq!(r, Err(RecvError::Interrupted));
    delays.push(("pipe recv", d));

    for (what, d) in &delays {
        eprintln!("interrupt wake-up delay, {what}: {d:?}");
    }
    drop((_p, producer_side, _c, full, q, pq, jq, ev, sem, m));
    drop((arr, big, bq, pipe));
    assert_gone(&base);
}

#[test]
fn an_open_waiting_for_a_creator_is_interrupted() {
    // A file that looks like a creator still initializing: magic, creator = this process
    // (alive), init state 0. `open` waits for it, up to its open timeout.
    let name = unique("intr-open");
    let mut image = vec![0u8; 4096];
    image[0..8].copy_from_slice(b"SHMQSEG\x01");
    image[80..84].copy_from_slice(&std::process::id().to_le_bytes());
    std::fs::write(shm(&name), &image).unwrap();
    let opts = Options::new(name.as_str()).open_timeout(LIMIT);
    let (r, d) = interrupted(move || {
        matches!(
            Value::<u64>::open(&opts),
            Err(OpenError::Interrupted { .. })
        )
    });
    assert!(r, "open was not interrupted");
    eprintln!("interrupt wake-up delay, open: {d:?}");
    std::fs::remove_file(shm(&name)).unwrap();
}

#[test]
fn an_interrupter_is_sticky_until_reset_and_spares_non_blocking_calls() {
    let name = unique("sticky");
    let q = Queue::<u64>::create(name.as_str(), 2).unwrap();
    let stop = Interrupter::new();
    let _w = stop.watch();
    stop.interrupt();
    assert!(stop.is_interrupted());
    assert_eq!(q.get(), Err(GetError::Interrupted));
    assert_eq!(q.get_timeout(LIMIT), Err(GetError::Interrupted));
    // try_ forms never block, so they are never interrupted; ready data is still delivered.
    assert_eq!(q.try_get(), Err(GetError::Empty));
    q.put(5).unwrap();
    assert_eq!(q.get(), Ok(5));
    stop.reset();
    assert_eq!(
        q.get_timeout(Duration::from_millis(20)),
        Err(GetError::Timeout)
    );
    drop(q);
    assert_gone(&name);
}

#[test]
fn sigint_interrupts_a_blocked_get_with_the_opt_in() {
    if let Some(name) = role("sigint_interrupts_a_blocked_get_with_the_opt_in") {
        shmq::interrupt_on_signals().unwrap();
        let q = Queue::<u64>::open(name.as_str()).unwrap();
        let ready = Event::open(format!("{name}-ready").as_str()).unwrap();
        ready.set();
        assert_eq!(q.get(), Err(GetError::Interrupted));
        std::process::exit(42); // a distinct code: the handler ran and get returned
    }
    let name = unique("sigint");
    let q = Queue::<u64>::create(name.as_str(), 2).unwrap();
    let ready = Event::create(format!("{name}-ready").as_str()).unwrap();
    let mut child = spawn("sigint_interrupts_a_blocked_get_with_the_opt_in", &name);
    assert!(ready.wait_timeout(LIMIT).unwrap());
    std::thread::sleep(Duration::from_millis(50));
    let rc = unsafe_free_sigint(child.id());
    assert!(rc, "could not send SIGINT");
    let status = wait(&mut child, LIMIT);
    assert_eq!(
        status.code(),
        Some(42),
        "child did not see Interrupted: {status}"
    );
    drop((q, ready));
    assert_gone(&name);
}

/// Sends SIGINT with the `kill` command (the test crate has no libc of its own).
fn unsafe_free_sigint(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn open_of_a_removed_name_fails_cleanly() {
    let name = unique("gone");
    let v = Value::<u32>::create(name.as_str(), 1).unwrap();
    drop(v);
    assert!(matches!(
        Value::<u32>::open(name.as_str()),
        Err(OpenError::NotFound { .. })
    ));
}

#[test]
fn deadline_forms_end_at_their_deadline_and_deliver_when_they_can() {
    let base = unique("deadline");
    let n = |s: &str| format!("{base}-{s}");
    let soon = || Instant::now() + Duration::from_millis(20);

    let q = Queue::<u64>::create(n("q").as_str(), 1).unwrap();
    assert_eq!(q.get_deadline(soon()), Err(GetError::Timeout));
    q.put_deadline(1, soon()).unwrap();
    assert_eq!(q.put_deadline(2, soon()), Err(PutError::Timeout(2)));
    assert_eq!(q.get_deadline(soon()), Ok(1));

    let pq = PriorityQueue::<u64>::create(n("pq").as_str(), 1).unwrap();
    assert_eq!(pq.get_deadline(soon()), Err(GetError::Timeout));
    pq.put_deadline(5, soon()).unwrap();
    assert_eq!(pq.put_deadline(6, soon()), Err(PutError::Timeout(6)));
    assert_eq!(pq.get_deadline(soon()), Ok(5));

    let bq = ByteQueue::create(n("bq").as_str(), 1, 8).unwrap();
    assert!(matches!(bq.get_deadline(soon()), Err(GetError::Timeout)));
    bq.put_deadline(b"a", soon()).unwrap();
    assert_eq!(bq.put_deadline(b"b", soon()), Err(PutError::Timeout(())));
    assert!(bq.loan_deadline(1, soon()).is_err());
    assert_eq!(&*bq.get_deadline(soon()).unwrap(), b"a");

    let ring = Ring::create(n("ring").as_str(), 256).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert!(matches!(
        rx.recv_deadline(soon()),
        Err(shmq::RecvTimeoutError::Timeout)
    ));
    tx.send_deadline(b"hi", soon()).unwrap();
    assert_eq!(&*rx.recv_deadline(soon()).unwrap(), b"hi");
    let mut filled = 0;
    while tx.send_deadline(&[0; 32], soon()).is_ok() {
        filled += 1;
        assert!(filled < 100, "a 256-byte ring took {filled} messages");
    }
    assert!(matches!(
        tx.reserve_deadline(32, soon()),
        Err(shmq::SendTimeoutError::Timeout)
    ));
    drop((tx, rx, ring, q, pq, bq));
    assert_gone(&base);
}

#[test]
fn rings_and_pipes_open_or_create_from_either_side() {
    if let Some(name) = role("rings_and_pipes_open_or_create_from_either_side") {
        // The other process: whichever of the two runs first creates.
        let mut end = shmq::Pipe::open_or_create(name.as_str(), 4096).unwrap();
        end.send(b"ping").unwrap();
        assert_eq!(&*end.recv_timeout(LIMIT).unwrap(), b"pong");
        return;
    }
    let name = unique("ooc-pipe");
    let mut child = spawn("rings_and_pipes_open_or_create_from_either_side", &name);
    let mut end = shmq::Pipe::open_or_create(name.as_str(), 4096).unwrap();
    assert_eq!(&*end.recv_timeout(LIMIT).unwrap(), b"ping");
    end.send(b"pong").unwrap();
    wait_all_ok(std::slice::from_mut(&mut child), LIMIT);
    drop(end);
    assert_gone(&name);

    let ring_name = unique("ooc-ring");
    let first = Ring::open_or_create(ring_name.as_str(), 1024).unwrap();
    // The second gets the ring as the first made it, whatever capacity it asks for.
    let second = Ring::open_or_create(ring_name.as_str(), 64).unwrap();
    assert_eq!(second.capacity(), first.capacity());
    let mut tx = first.producer().unwrap();
    let mut rx = second.consumer().unwrap();
    tx.send(b"x").unwrap();
    assert_eq!(&*rx.recv_timeout(LIMIT).unwrap(), b"x");
    drop((tx, rx, first, second));
    assert_gone(&ring_name);
}

#[test]
fn open_can_wait_for_a_name_to_be_created() {
    if let Some(name) = role("open_can_wait_for_a_name_to_be_created") {
        std::thread::sleep(Duration::from_millis(100));
        let q = Queue::<u64>::create(name.as_str(), 4).unwrap();
        q.put(9).unwrap();
        // Stay until the opener took the item (the name lives while anyone uses it anyway).
        while !q.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
        return;
    }
    let name = unique("awaited");
    // Without the option: NotFound at once.
    assert!(matches!(
        Queue::<u64>::open(name.as_str()),
        Err(OpenError::NotFound { .. })
    ));
    // With it, but nobody creates: NotFound once the open timeout has passed.
    let short = Options::new(name.as_str())
        .wait_for_creation(true)
        .open_timeout(Duration::from_millis(30));
    assert!(matches!(
        Queue::<u64>::open(&short),
        Err(OpenError::NotFound { .. })
    ));
    // A creator in another process that starts after us.
    let mut child = spawn("open_can_wait_for_a_name_to_be_created", &name);
    let opts = Options::new(name.as_str())
        .wait_for_creation(true)
        .open_timeout(LIMIT);
    let q = Queue::<u64>::open(&opts).unwrap();
    assert_eq!(q.get_timeout(LIMIT), Ok(9));
    wait_all_ok(std::slice::from_mut(&mut child), LIMIT);
    drop(q);
    assert_gone(&name);
}
