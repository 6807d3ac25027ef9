//! Issue #10, "one verb set everywhere": iterators on every receiving end (across real
//! processes), `try_clone` of queue handles, one error name per queue state on both sides,
//! the verb forms that were missing, typed rings of over-aligned values, typed `try_drain`.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_gone, role, spawn, unique, wait};
use shmq::{
    AttachError, ByteQueue, Event, GetError, Interrupter, JoinError, JoinableQueue, OpenError,
    Pipe, PriorityQueue, PutError, Queue, Receiver, RecvError, RecvTimeoutError, Ring, Sender,
    Side, TryRecvError, Watching,
};

const LIMIT: Duration = Duration::from_secs(60);
/// Messages or items a child sends before it lets go.
const N: u64 = 500;

/// Interrupts this thread's blocking shmq calls if the test runs past `LIMIT`, so a test
/// that would hang (a child that never attaches, say) fails with `Interrupted` instead.
struct Watchdog {
    _watching: Watching,
    _cancel: mpsc::Sender<()>,
}

fn watchdog() -> Watchdog {
    let stop = Interrupter::new();
    let watching = stop.watch();
    let (cancel, cancelled) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(LIMIT) {
            stop.interrupt();
        }
    });
    Watchdog {
        _watching: watching,
        _cancel: cancel,
    }
}

/// Runs the child role `test` with `arg` and asserts it succeeded.
fn child_ok(mut kid: std::process::Child) {
    let status = wait(&mut kid, LIMIT);
    assert!(status.success(), "child failed: {status}");
}

// ----- iter(): a child sends N then lets go; the parent's iter() yields exactly N, ends -----

#[test]
fn ring_consumer_iter_yields_everything_then_ends() {
    const TEST: &str = "ring_consumer_iter_yields_everything_then_ends";
    if let Some(name) = role(TEST) {
        let mut tx = Ring::open(name.as_str()).unwrap().producer().unwrap();
        for i in 0..N {
            // Sizes vary, so a message's length is checked too.
            tx.send(&i.to_le_bytes()[..(i % 8) as usize + 1]).unwrap();
        }
        return;
    }
    let name = unique("verbs-ring-iter");
    {
        let ring = Ring::create(name.as_str(), 256).unwrap(); // small: the child waits for room
        let mut rx = ring.consumer().unwrap();
        let _dog = watchdog();
        let kid = spawn(TEST, &name);
        let got: Vec<Vec<u8>> = rx.iter().collect::<Result<_, _>>().unwrap();
        child_ok(kid);
        assert_eq!(got.len() as u64, N);
        for (i, msg) in (0..N).zip(&got) {
            assert_eq!(
                msg[..],
                i.to_le_bytes()[..(i % 8) as usize + 1],
                "message {i}"
            );
        }
        // Ended for good: the producer is gone and everything was received.
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Disconnected));
    }
    assert_gone(&name);
}

#[test]
fn typed_receiver_for_loop_yields_every_value_then_ends() {
    const TEST: &str = "typed_receiver_for_loop_yields_every_value_then_ends";
    if let Some(name) = role(TEST) {
        let ring = Ring::open(name.as_str()).unwrap();
        let mut tx = Sender::<u64>::new(ring.producer().unwrap()).unwrap();
        for i in 0..N {
            tx.send(&(i * 3)).unwrap();
        }
        return;
    }
    let name = unique("verbs-typed-iter");
    {
        let ring = Ring::create(name.as_str(), 256).unwrap();
        let mut rx = Receiver::<u64>::new(ring.consumer().unwrap());
        let _dog = watchdog();
        let kid = spawn(TEST, &name);
        let mut got = Vec::new();
        for v in &mut rx {
            got.push(v.unwrap());
        }
        child_ok(kid);
        assert_eq!(got, (0..N).map(|i| i * 3).collect::<Vec<_>>());
    }
    assert_gone(&name);
}

#[test]
fn pipe_iter_yields_what_the_other_end_sent_then_ends() {
    const TEST: &str = "pipe_iter_yields_what_the_other_end_sent_then_ends";
    if let Some(name) = role(TEST) {
        let mut end = Pipe::open(name.as_str()).unwrap();
        for i in 0..N {
            end.send(&i.to_le_bytes()).unwrap();
        }
        return;
    }
    let name = unique("verbs-pipe-iter");
    {
        let mut end = Pipe::create(name.as_str(), 256).unwrap();
        let _dog = watchdog();
        let kid = spawn(TEST, &name);
        let mut count = 0u64;
        for msg in &mut end {
            assert_eq!(msg.unwrap(), count.to_le_bytes(), "message {count}");
            count += 1;
        }
        child_ok(kid);
        assert_eq!(count, N);
    }
    assert_gone(&name);
}

/// Child role for the queue iterator tests: `KIND,NAME`; puts 0..N through a put-side
/// handle, closes the queue if KIND ends in `-close`, and exits (dropping the handle).
fn queue_child(arg: &str) {
    let (kind, name) = arg.split_once(',').unwrap();
    match kind {
        "queue" => {
            let q = Queue::<u64>::open_for(name, Side::Put).unwrap();
            (0..N).for_each(|i| q.put(i).unwrap());
        }
        "bytes" => {
            let q = ByteQueue::open_for(name, Side::Put).unwrap();
            (0..N).for_each(|i| q.put(&i.to_le_bytes()).unwrap());
        }
        "priority" => {
            let q = PriorityQueue::<u64>::open_for(name, Side::Put).unwrap();
            // Puts in descending order: the getter still sees the smallest first.
            (0..N).rev().for_each(|i| q.put(i).unwrap());
        }
        "joinable-close" => {
            let q = JoinableQueue::<u64>::open_for(name, Side::Put).unwrap();
            (0..N).for_each(|i| q.put(i).unwrap());
            q.close();
        }
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn queue_iterators_yield_every_item_then_end_when_the_putter_goes() {
    const TEST: &str = "queue_iterators_yield_every_item_then_end_when_the_putter_goes";
    if let Some(arg) = role(TEST) {
        queue_child(&arg);
        return;
    }
    let _dog = watchdog();

    let name = unique("verbs-queue-iter");
    {
        let q = Queue::<u64>::create(name.as_str(), 4).unwrap();
        q.set_side(Side::Get);
        let kid = spawn(TEST, &format!("queue,{name}"));
        let got: Vec<u64> = q.iter().collect::<Result<_, _>>().unwrap();
        child_ok(kid);
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "every item, in order");
        // It ended because the only putter left, not because the queue was closed.
        assert!(!q.is_closed());
        assert_eq!(q.get_timeout(LIMIT), Err(GetError::Disconnected));
    }
    assert_gone(&name);

    let name = unique("verbs-bytes-iter");
    {
        let q = ByteQueue::create(name.as_str(), 4, 16).unwrap();
        q.set_side(Side::Get);
        let kid = spawn(TEST, &format!("bytes,{name}"));
        let mut count = 0u64;
        for msg in &q {
            assert_eq!(msg.unwrap(), count.to_le_bytes(), "message {count}");
            count += 1;
        }
        child_ok(kid);
        assert_eq!(count, N);
    }
    assert_gone(&name);

    let name = unique("verbs-priority-iter");
    {
        let q = PriorityQueue::<u64>::create(name.as_str(), N as usize).unwrap();
        q.set_side(Side::Get);
        let kid = spawn(TEST, &format!("priority,{name}"));
        // Wait for the child to finish, so every item is in before the first get.
        child_ok(kid);
        let got: Vec<u64> = (&q).into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(got, (0..N).collect::<Vec<_>>(), "smallest first");
    }
    assert_gone(&name);
}

#[test]
fn joinable_queue_iter_ends_when_the_queue_is_closed_and_drained() {
    const TEST: &str = "joinable_queue_iter_ends_when_the_queue_is_closed_and_drained";
    if let Some(arg) = role(TEST) {
        queue_child(&arg);
        return;
    }
    let name = unique("verbs-joinable-iter");
    {
        // A Both handle: its own put side would never let it see Disconnected, so only the
        // child's close ends the iteration.
        let q = JoinableQueue::<u64>::create(name.as_str(), 8).unwrap();
        let _dog = watchdog();
        let kid = spawn(TEST, &format!("joinable-close,{name}"));
        let mut got = Vec::new();
        for item in &q {
            got.push(item.unwrap());
            q.task_done().unwrap();
        }
        child_ok(kid);
        assert_eq!(got, (0..N).collect::<Vec<_>>());
        assert_eq!(q.get(), Err(GetError::Closed));
        q.try_join().unwrap();
    }
    assert_gone(&name);
}

// ----- try_iter(): what is there now, never waiting -----

#[test]
fn try_iter_on_an_empty_end_ends_at_once() {
    let name = unique("verbs-try-iter-empty");
    let ring = Ring::create(format!("{name}-ring").as_str(), 256).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert!(rx.try_iter().next().is_none());

    let typed = Ring::create(format!("{name}-typed").as_str(), 256).unwrap();
    let mut ttx = Sender::<u32>::new(typed.producer().unwrap()).unwrap();
    let mut trx = Receiver::<u32>::new(typed.consumer().unwrap());
    assert!(trx.try_iter().next().is_none());

    let mut a = Pipe::create(format!("{name}-pipe").as_str(), 256).unwrap();
    let mut b = Pipe::open(format!("{name}-pipe").as_str()).unwrap();
    assert!(b.try_iter().next().is_none());

    let q = Queue::<u32>::create(format!("{name}-queue").as_str(), 4).unwrap();
    let jq = JoinableQueue::<u32>::create(format!("{name}-joinable").as_str(), 4).unwrap();
    let bq = ByteQueue::create(format!("{name}-bytes").as_str(), 4, 8).unwrap();
    let pq = PriorityQueue::<u32>::create(format!("{name}-priority").as_str(), 4).unwrap();
    assert!(q.try_iter().next().is_none());
    assert!(jq.try_iter().next().is_none());
    assert!(bq.try_iter().next().is_none());
    assert!(pq.try_iter().next().is_none());

    // What is there is yielded, then the iterator ends (and stays ended: it is fused).
    tx.send(b"x").unwrap();
    tx.send(b"yz").unwrap();
    let now: Vec<Vec<u8>> = rx.try_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(now, [b"x".to_vec(), b"yz".to_vec()]);
    ttx.send(&7).unwrap();
    assert_eq!(trx.try_iter().collect::<Result<Vec<_>, _>>().unwrap(), [7]);
    a.send(b"p").unwrap();
    assert_eq!(b.try_iter().collect::<Result<Vec<_>, _>>().unwrap(), [b"p"]);

    let mut it = q.try_iter();
    assert!(it.next().is_none());
    q.put(1).unwrap();
    assert!(it.next().is_none(), "an ended iterator stays ended");
    q.put(2).unwrap();
    assert_eq!(q.try_iter().collect::<Result<Vec<_>, _>>().unwrap(), [1, 2]);
    jq.put(3).unwrap();
    assert_eq!(jq.try_iter().collect::<Result<Vec<_>, _>>().unwrap(), [3]);
    bq.put(b"m").unwrap();
    assert_eq!(
        bq.try_iter().collect::<Result<Vec<_>, _>>().unwrap(),
        [b"m"]
    );
    pq.put(9).unwrap();
    pq.put(4).unwrap();
    assert_eq!(
        pq.try_iter().collect::<Result<Vec<_>, _>>().unwrap(),
        [4, 9]
    );

    drop((tx, rx, ring, ttx, trx, typed, a, b, q, jq, bq, pq));
    assert_gone(&name);
}

// ----- errors other than the end are yielded, not swallowed -----

#[test]
fn a_wrong_size_message_is_yielded_as_an_error_and_ends_the_iteration() {
    let name = unique("verbs-iter-corrupt");
    {
        let ring = Ring::create(name.as_str(), 256).unwrap();
        let mut raw = ring.producer().unwrap();
        let mut rx = Receiver::<u64>::new(ring.consumer().unwrap());
        raw.send(&1u64.to_le_bytes()).unwrap();
        raw.send(b"abc").unwrap(); // not a u64
        raw.send(&2u64.to_le_bytes()).unwrap();
        drop(raw);
        let mut it = rx.iter();
        assert_eq!(it.next(), Some(Ok(1)));
        assert!(matches!(it.next(), Some(Err(RecvError::Corrupted { .. }))));
        assert_eq!(it.next(), None, "the iterator ends after an error");
        // The bad message was skipped: a new iterator goes on.
        assert_eq!(rx.iter().collect::<Vec<_>>(), [Ok(2)]);
    }
    assert_gone(&name);
}

#[test]
fn an_interrupt_is_yielded_as_an_error_by_every_blocking_iterator() {
    let name = unique("verbs-iter-interrupt");
    {
        let ring = Ring::create(format!("{name}-ring").as_str(), 256).unwrap();
        let _tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let q = Queue::<u32>::create(format!("{name}-queue").as_str(), 4).unwrap();
        let bq = ByteQueue::create(format!("{name}-bytes").as_str(), 4, 8).unwrap();
        let pq = PriorityQueue::<u32>::create(format!("{name}-priority").as_str(), 4).unwrap();

        let stop = Interrupter::new();
        let _watching = stop.watch();
        stop.interrupt(); // sticky: every blocking call of this thread returns Interrupted
        let mut it = rx.iter();
        assert_eq!(it.next(), Some(Err(RecvError::Interrupted)));
        assert_eq!(it.next(), None);
        let mut it = q.iter();
        assert_eq!(it.next(), Some(Err(GetError::Interrupted)));
        assert_eq!(it.next(), None);
        assert_eq!(bq.iter().next(), Some(Err(GetError::Interrupted)));
        assert_eq!(pq.iter().next(), Some(Err(GetError::Interrupted)));
        // try_ forms are never interrupted: an empty end just ends.
        assert!(q.try_iter().next().is_none());
    }
    assert_gone(&name);
}

// ----- try_clone -----

#[test]
fn a_queue_clone_is_a_participant_of_its_own() {
    let name = unique("verbs-clone");
    {
        let q = Queue::<u32>::create(name.as_str(), 4).unwrap();
        let producer = q.try_clone().unwrap();
        assert_eq!(producer.side(), Side::Both, "a clone keeps the side");
        producer.set_side(Side::Put);
        q.set_side(Side::Get);
        assert_eq!(q.side(), Side::Get, "the original's side is its own");
        producer.put(5).unwrap();
        assert_eq!(q.get_timeout(LIMIT), Ok(5));
        // While the clone lives, a get waits for it; once it is gone, the queue is
        // disconnected — the clone counted as a putter of its own.
        assert_eq!(
            q.get_timeout(Duration::from_millis(20)),
            Err(GetError::Timeout)
        );
        drop(producer);
        assert_eq!(q.get_timeout(LIMIT), Err(GetError::Disconnected));

        // Dropping a clone leaves the original working, and the name in place.
        let other = q.try_clone().unwrap();
        drop(other);
        q.set_side(Side::Both);
        q.put(6).unwrap();
        assert_eq!(q.get(), Ok(6));
    }
    assert_gone(&name);
}

#[test]
fn try_clone_fails_when_the_participant_table_is_full() {
    let name = unique("verbs-clone-full");
    {
        let q = Queue::<u32>::create(format!("{name}-queue").as_str(), 4).unwrap();
        let mut clones = Vec::new();
        let err = loop {
            match q.try_clone() {
                Ok(c) => clones.push(c),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, OpenError::TooManyProcesses { max: 256, .. }),
            "{err}"
        );
        assert_eq!(clones.len(), 255, "the original holds the 256th entry");
        clones.pop();
        let again = q.try_clone().unwrap();
        again.put(1).unwrap();
        assert_eq!(clones[0].get(), Ok(1), "every clone reaches the same queue");
        drop((again, clones));

        let pq = PriorityQueue::<u32>::create(format!("{name}-priority").as_str(), 4).unwrap();
        let mut clones = Vec::new();
        let err = loop {
            match pq.try_clone() {
                Ok(c) => clones.push(c),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, OpenError::TooManyProcesses { .. }), "{err}");
        assert_eq!(clones.len(), 255);
    }
    assert_gone(&name);
}

#[test]
fn byte_priority_and_joinable_clones_share_the_queue() {
    let name = unique("verbs-clone-kinds");
    {
        let bq = ByteQueue::create(format!("{name}-bytes").as_str(), 4, 8).unwrap();
        let bc = bq.try_clone().unwrap();
        assert_eq!(bc.max_message(), 8);
        bc.put(b"hi").unwrap();
        assert_eq!(&*bq.get().unwrap(), b"hi");

        let pq = PriorityQueue::<u32>::create(format!("{name}-priority").as_str(), 4).unwrap();
        pq.set_side(Side::Get);
        let pc = pq.try_clone().unwrap();
        assert_eq!(pc.side(), Side::Get);
        pc.set_side(Side::Put);
        pc.put(3).unwrap();
        pc.put(1).unwrap();
        assert_eq!(pq.get(), Ok(1));
        drop(pc);
        assert_eq!(pq.get(), Ok(3));
        assert_eq!(pq.get_timeout(LIMIT), Err(GetError::Disconnected));

        let jq = JoinableQueue::<u32>::create(format!("{name}-joinable").as_str(), 4).unwrap();
        let worker = jq.try_clone().unwrap();
        jq.put(1).unwrap();
        assert_eq!(jq.try_join(), Err(JoinError::Unfinished { unfinished: 1 }));
        assert_eq!(worker.get(), Ok(1));
        worker.task_done().unwrap();
        assert_eq!(jq.try_join(), Ok(()));
        jq.join_timeout(LIMIT).unwrap();
    }
    assert_gone(&name);
}

// ----- one error name per state, both sides -----

#[test]
fn a_closed_queue_is_closed_on_both_sides_and_a_gone_peer_disconnected_on_both() {
    let name = unique("verbs-states");
    {
        // Closed: puts say Closed at once; gets take what is left, then say Closed.
        let q = Queue::<u32>::create(format!("{name}-q").as_str(), 2).unwrap();
        q.put(1).unwrap();
        q.close();
        assert_eq!(q.try_put(2), Err(PutError::Closed(2)));
        assert_eq!(q.put(2), Err(PutError::Closed(2)));
        assert_eq!(q.get(), Ok(1));
        assert_eq!(q.get(), Err(GetError::Closed));
        assert_eq!(q.try_get(), Err(GetError::Closed));
        assert_eq!(q.get_timeout(LIMIT), Err(GetError::Closed));

        let bq = ByteQueue::create(format!("{name}-b").as_str(), 2, 8).unwrap();
        bq.close();
        assert_eq!(bq.put(b"x"), Err(PutError::Closed(())));
        assert_eq!(bq.get().map(|m| m.len()), Err(GetError::Closed));

        let pq = PriorityQueue::<u32>::create(format!("{name}-p").as_str(), 2).unwrap();
        pq.close();
        assert_eq!(pq.put(1), Err(PutError::Closed(1)));
        assert_eq!(pq.get(), Err(GetError::Closed));

        // Disconnected: the other side is gone. A get on an empty queue whose last putter
        // left...
        let q = Queue::<u32>::create(format!("{name}-q2").as_str(), 1).unwrap();
        q.set_side(Side::Get);
        drop(Queue::<u32>::open_for(format!("{name}-q2").as_str(), Side::Put).unwrap());
        assert_eq!(q.get_timeout(LIMIT), Err(GetError::Disconnected));
        // ...and a put on a full queue whose last getter left.
        q.set_side(Side::Put);
        q.put(1).unwrap();
        drop(Queue::<u32>::open_for(format!("{name}-q2").as_str(), Side::Get).unwrap());
        assert_eq!(q.put_timeout(2, LIMIT), Err(PutError::Disconnected(2)));
    }
    assert_gone(&name);
}

// ----- the verb forms that were missing -----

#[test]
fn recv_into_has_every_form() {
    let name = unique("verbs-recv-into");
    {
        let mut a = Pipe::create(name.as_str(), 256).unwrap();
        let mut b = Pipe::open(name.as_str()).unwrap();
        let mut buf = vec![9; 4];
        assert_eq!(b.try_recv_into(&mut buf), Err(TryRecvError::Empty));
        assert_eq!(buf, [9; 4], "nothing received, nothing changed");
        assert_eq!(
            b.recv_into_timeout(&mut buf, Duration::from_millis(5)),
            Err(RecvTimeoutError::Timeout)
        );
        a.send(b"one").unwrap();
        a.send(b"three").unwrap();
        a.send(b"").unwrap();
        assert_eq!(b.try_recv_into(&mut buf), Ok(3));
        assert_eq!(buf, b"one");
        let deadline = Instant::now() + LIMIT;
        assert_eq!(b.recv_into_deadline(&mut buf, deadline), Ok(5));
        assert_eq!(buf, b"three");
        assert_eq!(b.consumer_mut().recv_into_timeout(&mut buf, LIMIT), Ok(0));
        assert!(buf.is_empty());

        // The renamed accessors reach the same directions.
        let mut g = a.producer_mut().reserve(2).unwrap();
        g.copy_from_slice(b"zc");
        g.commit();
        assert_eq!(&*b.consumer_mut().recv().unwrap(), b"zc");
        drop(a);
        assert_eq!(
            b.recv_into_deadline(&mut buf, deadline),
            Err(RecvTimeoutError::Disconnected)
        );
    }
    assert_gone(&name);
}

#[test]
fn drain_waits_for_the_first_message_then_takes_all_that_are_there() {
    let name = unique("verbs-drain");
    {
        let ring = Ring::create(name.as_str(), 256).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        assert_eq!(
            rx.drain_timeout(Duration::from_millis(5), |_| panic!("nothing there")),
            Err(RecvTimeoutError::Timeout)
        );
        for m in [&b"a"[..], b"bc", b"def"] {
            tx.send(m).unwrap();
        }
        let mut got = Vec::new();
        assert_eq!(rx.drain(|m| got.push(m.to_vec())), Ok(3));
        assert_eq!(got, [&b"a"[..], b"bc", b"def"]);
        tx.send(b"g").unwrap();
        let deadline = Instant::now() + LIMIT;
        assert_eq!(rx.drain_deadline(deadline, |m| assert_eq!(m, b"g")), Ok(1));
        drop(tx);
        assert_eq!(rx.drain(|_| {}), Err(RecvError::Disconnected));
    }
    assert_gone(&name);
}

#[test]
fn typed_try_drain_takes_every_waiting_value_and_reports_a_wrong_size_one() {
    let name = unique("verbs-typed-drain");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let mut raw = ring.producer().unwrap();
        let mut rx = Receiver::<u32>::new(ring.consumer().unwrap());
        assert_eq!(rx.try_drain(|_| panic!("nothing there")), Ok(0));
        for v in [1u32, 2, 3] {
            raw.send(&v.to_le_bytes()).unwrap();
        }
        raw.send(b"too long!").unwrap();
        raw.send(&4u32.to_le_bytes()).unwrap();

        let mut got = Vec::new();
        assert_eq!(
            rx.try_drain(|v| got.push(*v)),
            Ok(3),
            "stops before the bad one"
        );
        assert_eq!(got, [1, 2, 3]);
        assert!(matches!(
            rx.try_drain(|_| panic!("the bad message is not handed out")),
            Err(TryRecvError::Corrupted { .. })
        ));
        assert_eq!(
            rx.try_drain(|v| got.push(*v)),
            Ok(1),
            "skipped, the stream goes on"
        );
        assert_eq!(got, [1, 2, 3, 4]);

        raw.send(&5u32.to_le_bytes()).unwrap();
        assert_eq!(rx.drain_timeout(LIMIT, |v| got.push(*v)), Ok(1));
        assert_eq!(rx.try_recv_value(), Err(TryRecvError::Empty));
        raw.send(&6u32.to_le_bytes()).unwrap();
        assert_eq!(rx.recv_value_timeout(LIMIT), Ok(6));
        raw.send(&7u32.to_le_bytes()).unwrap();
        assert_eq!(rx.recv_value_deadline(Instant::now() + LIMIT), Ok(7));
        drop(raw);
        assert_eq!(rx.try_drain(|_| {}), Err(TryRecvError::Disconnected));
        assert_eq!(rx.drain(|_| {}), Err(RecvError::Disconnected));
    }
    assert_gone(&name);
}

#[test]
fn try_join_reports_unfinished_and_lost_tasks() {
    const TEST: &str = "try_join_reports_unfinished_and_lost_tasks";
    if let Some(name) = role(TEST) {
        let q = JoinableQueue::<u32>::open(name.as_str()).unwrap();
        q.get_timeout(LIMIT).unwrap();
        // Dies owing the task: no destructor runs, so the handle is never let go.
        std::process::exit(0);
    }
    let name = unique("verbs-try-join");
    {
        let q = JoinableQueue::<u32>::create(name.as_str(), 4).unwrap();
        assert_eq!(q.try_join(), Ok(()));
        q.put(1).unwrap();
        q.put(2).unwrap();
        assert_eq!(q.try_join(), Err(JoinError::Unfinished { unfinished: 2 }));
        child_ok(spawn(TEST, &name));
        // One task died with its taker, one is still queued: not everything is lost yet.
        assert_eq!(q.try_join(), Err(JoinError::Unfinished { unfinished: 2 }));
        assert_eq!(q.get(), Ok(2));
        q.task_done().unwrap();
        assert_eq!(
            q.try_join(),
            Err(JoinError::Lost {
                lost: 1,
                unfinished: 1
            })
        );
        assert_eq!(q.forget_lost_tasks(), 1);
        assert_eq!(q.try_join(), Ok(()));
    }
    assert_gone(&name);
}

#[test]
fn event_try_wait_never_waits() {
    let name = unique("verbs-event");
    {
        let e = Event::create(name.as_str()).unwrap();
        assert!(!e.try_wait());
        e.set();
        assert!(e.try_wait());
        e.clear();
        assert!(!e.try_wait());
    }
    assert_gone(&name);
}

#[test]
fn first_producer_and_first_consumer_claim_only_an_unused_role() {
    let name = unique("verbs-first");
    {
        let ring = Ring::create(name.as_str(), 256).unwrap();
        drop(ring.first_producer().unwrap());
        assert!(matches!(
            ring.first_producer(),
            Err(AttachError::RoleUsed { role: "producer" })
        ));
        let rx = ring.first_consumer().unwrap();
        assert!(matches!(
            ring.first_consumer(),
            Err(AttachError::RoleTaken { .. })
        ));
        drop(rx);
        assert!(ring.producer().is_ok(), "the plain claim takes a used role");
    }
    assert_gone(&name);
}

// ----- typed rings of values aligned above 8 bytes -----

/// A cache line: aligned to 64, so a ring record (8-aligned, 72 bytes with its header) is
/// aligned for it only now and then; the others take the copying path.
#[derive(shmq::Pod, Debug, PartialEq, Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    words: [u64; 8],
}

fn line(i: u64) -> Line {
    Line {
        words: std::array::from_fn(|k| i * 8 + k as u64),
    }
}

fn assert_aligned(v: &Line) {
    assert_eq!(
        (v as *const Line as usize) % 64,
        0,
        "a &Line must be 64-aligned"
    );
}

#[test]
fn over_aligned_values_cross_processes_whole_and_aligned() {
    const TEST: &str = "over_aligned_values_cross_processes_whole_and_aligned";
    if let Some(name) = role(TEST) {
        let ring = Ring::open(name.as_str()).unwrap();
        let mut tx = Sender::<Line>::new(ring.producer().unwrap()).unwrap();
        for i in 0..N {
            if i % 2 == 0 {
                tx.send(&line(i)).unwrap();
            } else {
                // Written through the grant (in place or into its aligned copy).
                let mut g = tx.reserve().unwrap();
                assert_aligned(&g);
                g.words = line(i).words;
                g.commit();
            }
        }
        return;
    }
    let name = unique("verbs-aligned");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let mut rx = Receiver::<Line>::new(ring.consumer().unwrap());
        let _dog = watchdog();
        let kid = spawn(TEST, &name);
        let mut i = 0;
        while i < N {
            match i % 3 {
                0 => {
                    let g = rx.recv().unwrap();
                    assert_aligned(&g);
                    assert_eq!(*g, line(i), "value {i}");
                    i += 1;
                }
                1 => {
                    assert_eq!(rx.recv_value().unwrap(), line(i), "value {i}");
                    i += 1;
                }
                _ => {
                    rx.try_drain(|v| {
                        assert_aligned(v);
                        assert_eq!(*v, line(i), "value {i}");
                        i += 1;
                    })
                    .unwrap();
                }
            }
        }
        assert_eq!(rx.iter().count(), 0, "nothing more: the sender is gone");
        child_ok(kid);
    }
    assert_gone(&name);
}

#[test]
fn an_uncommitted_over_aligned_grant_publishes_nothing() {
    let name = unique("verbs-aligned-drop");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let mut tx = Sender::<Line>::new(ring.producer().unwrap()).unwrap();
        let mut rx = Receiver::<Line>::new(ring.consumer().unwrap());
        // Records sit 72 bytes apart, so over eight grants some are aligned in place and
        // some are copies: neither kind publishes when dropped.
        for i in 0..8 {
            let mut g = tx.try_reserve().unwrap();
            *g = line(i);
            drop(g);
            assert!(rx.try_recv().is_err(), "grant {i} published nothing");
            tx.try_send(&line(i)).unwrap();
            assert_eq!(*rx.try_recv().unwrap(), line(i));
        }
    }
    assert_gone(&name);
}

/// `Value` and `Array` have their `try_` forms too: a read that would wait for the lock
/// says so instead.
#[test]
fn value_and_array_reads_have_try_forms() {
    let name = unique("verbs-try-reads");
    {
        let a = shmq::Array::<u32>::create(format!("{name}-a").as_str(), &[5, 6, 7]).unwrap();
        assert_eq!(a.try_get(1), Ok(6));
        let mut out = [0u32; 2];
        a.try_read_into(1, &mut out).unwrap();
        assert_eq!(out, [6, 7]);
        assert!(matches!(
            a.try_get(3),
            Err(shmq::ArrayError::OutOfBounds { .. })
        ));
        let held = a.lock().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(a.try_get(0), Err(shmq::ArrayError::WouldBlock(())));
                let mut out = [9u32; 1];
                assert_eq!(
                    a.try_read_into(0, &mut out),
                    Err(shmq::ArrayError::WouldBlock(()))
                );
                assert_eq!(out, [9], "untouched");
            });
        });
        drop(held);
        assert_eq!(a.try_get(0), Ok(5));

        // A word value and a seqlock value: no write under way, so both read at once.
        let w = shmq::Value::<u64>::create(format!("{name}-w").as_str(), 11).unwrap();
        assert_eq!(w.try_load(), Ok(11));
        let big = shmq::Value::create(format!("{name}-big").as_str(), [3u64; 4]).unwrap();
        assert_eq!(big.try_load(), Ok([3; 4]));
    }
    assert_gone(&format!("{name}-a"));
}
