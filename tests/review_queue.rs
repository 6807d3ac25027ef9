//! Review of the queue family (mpmc, wait, Queue/JoinableQueue, ByteQueue, PriorityQueue):
//! each test demonstrates one defect found in review. Tests that fail today are marked in the
//! review report; the rest are guards for behaviour that was checked and holds.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{assert_gone, role, spawn, unique, wait};
use shmq::{ByteQueue, GetError, JoinableQueue, PriorityQueue, PutError, Queue, Segment};

/// Writes raw bytes into a segment's payload through /dev/shm, as a buggy or hostile peer
/// could.
fn poke(name: &str, payload_offset: u64, data: &[u8]) {
    let info = Segment::inspect(name).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    f.write_all_at(data, info.payload_offset + payload_offset)
        .unwrap();
}

/// Review finding 1: JoinableQueue: a producer SIGKILLed while it waits for room in `put` has already
/// counted its item as unfinished (`claim_put` adds before claiming), and nothing ever takes
/// the count back: `join()` then hangs forever although every item put was taken and marked
/// done.
#[test]
fn joinable_producer_killed_while_blocked_in_put_does_not_wedge_join() {
    const TEST: &str = "joinable_producer_killed_while_blocked_in_put_does_not_wedge_join";
    if let Some(name) = role(TEST) {
        let q = JoinableQueue::<u64>::open(name.as_str()).unwrap();
        let _ = q.put(2); // the queue is full: blocks until killed
        unreachable!();
    }
    let name = unique("rq-join-kill");
    {
        let q = JoinableQueue::<u64>::create(name.as_str(), 1).unwrap();
        q.put(1).unwrap();
        let mut child = spawn(TEST, &name);
        // Give the child time to open the queue and block in put; a put that is still waiting
        // for room has not counted its item.
        std::thread::sleep(Duration::from_millis(500));
        let unfinished = q.unfinished();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            unfinished, 1,
            "a put still waiting for room counted its item"
        );
        assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), 1);
        q.task_done().unwrap();
        // Every item that was put has been taken and marked done.
        let r = q.join_timeout(Duration::from_millis(500));
        assert!(
            r.is_ok(),
            "join wedged by a producer killed while blocked in put: {r:?}"
        );
    }
    assert_gone(&name);
}

/// Review finding 2: Queue with a capacity that is not a power of two: the `limit` check in
/// `try_claim_put` is made once, against the `enq` read before the claim loop; a producer that
/// loses the race for that position moves on to the next one without checking again, so
/// racing producers put more than `capacity` items.
#[test]
fn racing_producers_never_exceed_a_non_power_of_two_capacity() {
    const CAP: usize = 3; // 4 slots, limit 3
    const THREADS: usize = 4;
    let name = unique("rq-limit");
    {
        let q = Arc::new(Queue::<u64>::create(name.as_str(), CAP).unwrap());
        let start = Arc::new(Barrier::new(THREADS + 1));
        let end = Arc::new(Barrier::new(THREADS + 1));
        let stop = Arc::new(AtomicBool::new(false));
        let put = Arc::new(AtomicUsize::new(0));
        let kids: Vec<_> = (0..THREADS)
            .map(|_| {
                let (q, start, end, stop, put) = (
                    q.clone(),
                    start.clone(),
                    end.clone(),
                    stop.clone(),
                    put.clone(),
                );
                std::thread::spawn(move || {
                    loop {
                        start.wait();
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        while q.try_put(7).is_ok() {
                            put.fetch_add(1, Ordering::SeqCst);
                        }
                        end.wait();
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut worst = 0;
        let mut rounds = 0;
        while Instant::now() < deadline && worst <= CAP {
            start.wait();
            end.wait();
            let n = put.swap(0, Ordering::SeqCst);
            let mut got = 0;
            while q.try_get().is_ok() {
                got += 1;
            }
            assert_eq!(n, got);
            worst = worst.max(n);
            rounds += 1;
        }
        stop.store(true, Ordering::SeqCst);
        start.wait();
        for k in kids {
            k.join().unwrap();
        }
        assert!(
            worst <= CAP,
            "a queue of capacity {CAP} held {worst} items (round {rounds})"
        );
    }
    assert_gone(&name);
}

/// Review finding 3: PriorityQueue: `put` checks `closed` before taking the lock, not under it, so a put can
/// commit its item after a consumer saw "closed and empty" and returned `Disconnected`: the
/// put returned Ok, yet every consumer has been told there will be nothing more.
#[test]
fn priority_put_never_commits_after_a_consumer_saw_disconnected() {
    const PRODUCERS: usize = 4;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut rounds = 0;
    while Instant::now() < deadline {
        rounds += 1;
        let name = unique("rq-prio-close");
        let q = Arc::new(PriorityQueue::<u64>::create(name.as_str(), 4096).unwrap());
        let ok = Arc::new(AtomicU64::new(0));
        let go = Arc::new(Barrier::new(PRODUCERS + 1));
        let kids: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let (q, ok, go) = (q.clone(), ok.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    for i in 0.. {
                        match q.put(i) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(PutError::Closed(_)) => return,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        go.wait();
        std::thread::sleep(Duration::from_micros(200));
        q.close();
        let mut got = 0u64;
        loop {
            match q.get() {
                Ok(_) => got += 1,
                Err(GetError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        for k in kids {
            k.join().unwrap();
        }
        // After Disconnected, nothing more may ever arrive.
        let late = std::iter::from_fn(|| q.try_get().ok()).count() as u64;
        assert_eq!(
            late,
            0,
            "round {rounds}: {late} item(s) committed after get() returned Disconnected \
             ({} puts returned Ok, {got} got before Disconnected)",
            ok.load(Ordering::SeqCst)
        );
        assert_eq!(got, ok.load(Ordering::SeqCst));
        drop(q);
        assert_gone(&name);
    }
}

/// Review finding 4: PriorityQueue: `try_get`/`try_put` lock with no deadline (`Waiting::No` gives
/// `lock_deadline = None`), so a lock held by a live process that does not let go (stopped,
/// stuck, or a word a peer wrote) blocks the "non-blocking" call forever. Here the lock word
/// names pid 1, which is alive.
#[test]
fn priority_try_get_returns_while_a_live_process_holds_the_lock() {
    let name = unique("rq-prio-held");
    let q = PriorityQueue::<u64>::create(name.as_str(), 8).unwrap();
    poke(&name, 0, &1u32.to_ne_bytes()); // mutex state: held by pid 1
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = q.try_get();
        let _ = tx.send(format!("{r:?}"));
        drop(q);
    });
    let r = rx.recv_timeout(Duration::from_secs(2));
    if r.is_err() {
        // The thread is stuck for good; remove the name ourselves.
        let _ = Segment::unlink(name.as_str());
    }
    assert!(
        r.is_ok(),
        "try_get() still blocked after 2 s on a held lock"
    );
}

/// Review finding 5: Participant reclaim: `reap_dead` treats an entry already marked RECLAIMING as "finish
/// the job" and runs `give_back_all` without checking who else is doing it. Two processes
/// attaching at once after a participant died: the first marks, gives back, frees the entry;
/// a new live handle takes the freed index and claims a slot; the second reaper, still
/// scanning, finds that live claim under the index it reaps and gives it back. The live
/// owner's loan then fails to commit (and a live `Message` would have its bytes handed to
/// producers while it is being read).
#[test]
fn a_second_reaper_never_takes_a_slot_from_a_live_handle() {
    const TEST: &str = "a_second_reaper_never_takes_a_slot_from_a_live_handle";
    const SLOTS: usize = 1 << 19;
    const THREADS: usize = 16;
    if let Some(name) = role(TEST) {
        let _q = ByteQueue::open(name.as_str()).unwrap();
        // Die holding a participant entry (no destructors run).
        std::process::exit(0);
    }
    let name = unique("rq-reap");
    {
        let q = ByteQueue::create(name.as_str(), SLOTS, 8).unwrap();
        // Put the free positions at the end of the slot array, where reapers look last.
        for _ in 0..SLOTS - 64 {
            q.try_put(b"x").unwrap();
        }
        let mut child = spawn(TEST, &name);
        assert!(wait(&mut child, Duration::from_secs(30)).success());
        // Time one reap scan, to spread the attaching threads across it.
        let t = Instant::now();
        drop(ByteQueue::open(name.as_str()).unwrap());
        let scan = t.elapsed();
        let mut child = spawn(TEST, &name);
        assert!(wait(&mut child, Duration::from_secs(30)).success());
        let step = (scan / THREADS as u32).max(Duration::from_micros(20));
        let stolen = Arc::new(AtomicUsize::new(0));
        let kids: Vec<_> = (0..THREADS)
            .map(|k| {
                let (name, stolen) = (name.clone(), stolen.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(step * k as u32);
                    let h = ByteQueue::open(name.as_str()).unwrap();
                    let mut loan = h.loan_timeout(1, Duration::from_secs(5)).unwrap();
                    loan[0] = k as u8;
                    std::thread::sleep(Duration::from_millis(200));
                    if let Err(e) = loan.commit() {
                        eprintln!("thread {k}: {e}");
                        stolen.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for k in kids {
            k.join().unwrap();
        }
        assert_eq!(
            stolen.load(Ordering::SeqCst),
            0,
            "a live handle's claim was given back by a reaper (scan {scan:?})"
        );
    }
    assert_gone(&name);
}

/// Guard (holds today): the mpmc close protocol never lets an item be committed after a
/// consumer returned `Disconnected`.
#[test]
fn queue_put_never_commits_after_a_consumer_saw_disconnected() {
    const PRODUCERS: usize = 3;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let name = unique("rq-q-close");
        let q = Arc::new(Queue::<u64>::create(name.as_str(), 4096).unwrap());
        let ok = Arc::new(AtomicU64::new(0));
        let kids: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let (q, ok) = (q.clone(), ok.clone());
                std::thread::spawn(move || {
                    for i in 0.. {
                        match q.put(i) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(PutError::Closed(_)) => return,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(300));
        q.close();
        let mut got = 0u64;
        loop {
            match q.get() {
                Ok(_) => got += 1,
                Err(GetError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        for k in kids {
            k.join().unwrap();
        }
        assert_eq!(q.try_get(), Err(GetError::Closed));
        assert_eq!(got, ok.load(Ordering::SeqCst));
        drop(q);
        assert_gone(&name);
    }
}

/// Where a queue's slots start in its payload: after the control words (512 bytes) and the
/// participant table (64 bytes of counters, then 16 bytes per each of 256 participants).
const SLOTS_AT: usize = 512 + 64 + 16 * 256;

/// Guard (holds today): hostile geometry and positions give errors, not panics.
#[test]
fn hostile_queue_words_give_errors_not_panics() {
    let name = unique("rq-hostile");
    {
        let q = Queue::<u64>::create(name.as_str(), 4).unwrap();
        q.put(1).unwrap();
        // Slot 1's word: a sequence from nowhere.
        let slot1 = SLOTS_AT + 16;
        poke(&name, slot1 as u64, &0x0000_1234_5678_9abbu64.to_ne_bytes());
        assert!(matches!(q.try_put(2), Err(PutError::Corrupted { .. })));
        assert_eq!(q.try_get(), Ok(1));
        // Limit word out of range: a new handle refuses to open.
        poke(&name, 296, &0u64.to_ne_bytes());
        assert!(Queue::<u64>::open(name.as_str()).is_err());
        // ByteQueue: a length beyond the maximum is an error, not an out-of-bounds slice.
    }
    assert_gone(&name);
    let name = unique("rq-hostile-b");
    {
        let q = ByteQueue::create(name.as_str(), 4, 8).unwrap();
        q.put(b"abc").unwrap();
        poke(&name, (SLOTS_AT + 8) as u64, &u64::MAX.to_ne_bytes());
        assert!(matches!(q.try_get(), Err(GetError::Corrupted { .. })));
    }
    assert_gone(&name);
}

/// Review finding 6: Positions given back without an item (dropped loans; also dead producers' claims) stay
/// between `deq` and `enq` until a consumer walks over them, and both `len()` and the `limit`
/// check of a non-power-of-two capacity count them as items: an empty queue reports itself
/// full, and `try_put` fails with `Full` (a blocking `put` waits until some consumer happens
/// to call `get`).
#[test]
fn dropped_loans_do_not_fill_the_queue() {
    let name = unique("rq-holes");
    {
        let q = ByteQueue::create(name.as_str(), 3, 8).unwrap(); // 4 slots, limit 3
        for _ in 0..3 {
            drop(q.try_loan(1).unwrap()); // puts nothing
        }
        assert!(
            q.try_put(b"a").is_ok(),
            "an empty queue of capacity 3 refused a put"
        );
        assert_eq!(q.len(), 1, "one message was put");
    }
    assert_gone(&name);
}

/// Review finding 7: `try_claim_get` counts every position it skips as a "lost race" and reports corruption
/// after 2^22 of them, but a healthy queue can hold any number of skippable positions between
/// `deq` and `enq` (abandoned loans, dead producers' claims, with no consumer running): the
/// next `get` fails with `Corrupted` although nothing is wrong. (About 3 s in a debug build.)
#[test]
fn many_dropped_loans_are_not_corruption() {
    let name = unique("rq-many-holes");
    {
        let q = ByteQueue::create(name.as_str(), 1, 8).unwrap();
        for _ in 0..(1u32 << 22) + 16 {
            drop(q.try_loan(1).unwrap());
        }
        q.put(b"z").unwrap();
        let r = q.try_get().map(|m| m.to_vec());
        assert_eq!(r, Ok(b"z".to_vec()));
    }
    assert_gone(&name);
}
