//! The queue family across real processes: exactly-once delivery with 4+4 and 8+8 processes,
//! producers and consumers SIGKILLed mid-operation, idle waiters, persistence, join, priority.

mod common;

use std::time::{Duration, Instant};

use common::{assert_gone, cpu_ticks, role, spawn, unique, wait, wait_all_ok};
use shmq::{GetError, JoinableQueue, OpenError, Options, PriorityQueue, PutError, Queue, Segment};

const LIMIT: Duration = Duration::from_secs(300);
const T: Duration = Duration::from_secs(30);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Item `i` of producer `p`.
fn item(p: u64, i: u64) -> u64 {
    (p << 32) | i
}

/// Producer role: puts `n` items of producer `p`, in order.
fn produce(arg: &str) {
    let v: Vec<&str> = arg.split(',').collect();
    let (name, p, n): (&str, u64, u64) = (v[0], v[1].parse().unwrap(), v[2].parse().unwrap());
    let q = Queue::<u64>::open(name).unwrap();
    for i in 0..n {
        q.put_timeout(item(p, i), T).unwrap();
    }
}

/// Consumer role: takes items until the queue is closed and drained; checks that each
/// producer's items arrive in order; adds its count and sum to the results segment.
fn consume(arg: &str) {
    let v: Vec<&str> = arg.split(',').collect();
    let (name, results) = (v[0], v[1]);
    let q = Queue::<u64>::open(name).unwrap();
    let res = Segment::open(results).unwrap();
    let mut last = vec![None::<u64>; 64];
    let (mut count, mut sum) = (0u64, 0u64);
    loop {
        match q.get_timeout(T) {
            Ok(x) => {
                let (p, i) = ((x >> 32) as usize, x & 0xffff_ffff);
                assert!(
                    last[p].is_none_or(|l| l < i),
                    "producer {p}: {i} after {:?}",
                    last[p]
                );
                last[p] = Some(i);
                count += 1;
                sum = sum.wrapping_add(x);
            }
            Err(GetError::Closed) => break,
            Err(e) => panic!("consumer: {e}"),
        }
    }
    let ord = std::sync::atomic::Ordering::SeqCst;
    res.atomic_u64(0).unwrap().fetch_add(count, ord);
    res.atomic_u64(8).unwrap().fetch_add(sum, ord);
}

fn exactly_once(test: &str, producers: u64, consumers: u64, per_producer: u64) {
    let name = unique("q-once");
    let results = unique("q-once-res");
    {
        let q = Queue::<u64>::create(name.as_str(), 1024).unwrap();
        let res = Segment::create(results.as_str(), 16).unwrap();
        let started = Instant::now();
        let mut cons: Vec<_> = (0..consumers)
            .map(|_| spawn(test, &format!("c,{name},{results}")))
            .collect();
        let mut prods: Vec<_> = (0..producers)
            .map(|p| spawn(test, &format!("p,{name},{p},{per_producer}")))
            .collect();
        wait_all_ok(&mut prods, LIMIT);
        q.close();
        wait_all_ok(&mut cons, LIMIT);
        let ord = std::sync::atomic::Ordering::SeqCst;
        let count = res.atomic_u64(0).unwrap().load(ord);
        let sum = res.atomic_u64(8).unwrap().load(ord);
        let expected: u64 = (0..producers)
            .flat_map(|p| (0..per_producer).map(move |i| item(p, i)))
            .fold(0u64, u64::wrapping_add);
        assert_eq!(count, producers * per_producer, "items delivered");
        assert_eq!(sum, expected, "sum of the distinct items delivered");
        assert!(q.is_empty());
        eprintln!(
            "{producers}P{consumers}C x {per_producer}: {:?}",
            started.elapsed()
        );
    }
    assert_gone(&name);
    assert_gone(&results);
}

fn dispatch(test: &str) -> bool {
    let Some(arg) = role(test) else {
        return false;
    };
    let (kind, rest) = arg.split_once(',').unwrap();
    match kind {
        "p" => produce(rest),
        "c" => consume(rest),
        _ => unreachable!(),
    }
    true
}

#[test]
fn four_producers_four_consumers_a_million_items_each_exactly_once() {
    const TEST: &str = "four_producers_four_consumers_a_million_items_each_exactly_once";
    if dispatch(TEST) {
        return;
    }
    exactly_once(TEST, 4, 4, 1_000_000);
}

#[test]
fn eight_producers_eight_consumers_exactly_once() {
    const TEST: &str = "eight_producers_eight_consumers_exactly_once";
    if dispatch(TEST) {
        return;
    }
    exactly_once(TEST, 8, 8, 1_000_000);
}

#[test]
fn killed_producers_never_wedge_the_queue() {
    const TEST: &str = "killed_producers_never_wedge_the_queue";
    if let Some(arg) = role(TEST) {
        let (name, p) = arg.split_once(',').unwrap();
        let q = Queue::<u64>::open(name).unwrap();
        let p: u64 = p.parse().unwrap();
        for i in 0.. {
            q.put(item(p, i)).unwrap();
        }
        unreachable!();
    }
    let name = unique("q-kill-p");
    {
        let q = Queue::<u64>::create(name.as_str(), 64).unwrap();
        let mut rng = Rng(7);
        let mut next_id = 0u64;
        let mut kids: Vec<_> = (0..3)
            .map(|_| {
                next_id += 1;
                spawn(TEST, &format!("{name},{next_id}"))
            })
            .collect();
        let mut received: Vec<Vec<u64>> = vec![vec![]; 64];
        let take = |q: &Queue<u64>, received: &mut Vec<Vec<u64>>, n: u64| {
            for _ in 0..n {
                match q.get_timeout(Duration::from_millis(300)) {
                    Ok(x) => received[(x >> 32) as usize].push(x & 0xffff_ffff),
                    // Disconnected: every producer is dead (the final drain).
                    Err(GetError::Timeout | GetError::Disconnected) => return,
                    Err(e) => panic!("{e}"),
                }
            }
        };
        for _ in 0..30 {
            take(&q, &mut received, rng.next() % 2000);
            let victim = (rng.next() % 3) as usize;
            kids[victim].kill().unwrap(); // SIGKILL, wherever it is in `put`
            kids[victim].wait().unwrap();
            next_id += 1;
            kids[victim] = spawn(TEST, &format!("{name},{next_id}"));
        }
        for k in &mut kids {
            k.kill().unwrap();
            k.wait().unwrap();
        }
        // Drain: slots a killed producer claimed but never committed are skipped.
        take(&q, &mut received, u64::MAX);
        let mut total = 0;
        for (p, got) in received.iter().enumerate() {
            // Everything a producer committed arrives, in order; only the item it was putting
            // when killed may be missing, and that is always its last.
            let want: Vec<u64> = (0..got.len() as u64).collect();
            assert_eq!(got, &want, "producer {p}");
            total += got.len();
        }
        assert!(total > 0);
        // Not wedged: a new producer and consumer still work.
        q.put_timeout(12345, T).unwrap();
        assert_eq!(q.get_timeout(T).unwrap(), 12345);
        eprintln!("{total} items from {next_id} producers, 33 of them killed");
    }
    assert_gone(&name);
}

#[test]
fn killed_consumers_never_wedge_the_queue() {
    const TEST: &str = "killed_consumers_never_wedge_the_queue";
    const N: u64 = 200_000;
    let ord = std::sync::atomic::Ordering::SeqCst;
    if let Some(arg) = role(TEST) {
        let (name, seen) = arg.split_once(',').unwrap();
        let q = Queue::<u64>::open(name).unwrap();
        let seen = Segment::open(seen).unwrap();
        loop {
            let x = q.get().unwrap();
            seen.atomic_u64(x as usize * 8).unwrap().fetch_add(1, ord);
        }
    }
    let name = unique("q-kill-c");
    let seen_name = unique("q-kill-c-seen");
    {
        let q = Queue::<u64>::create(name.as_str(), 16).unwrap();
        let seen = Segment::create(seen_name.as_str(), N as usize * 8).unwrap();
        let arg = format!("{name},{seen_name}");
        let mut kids: Vec<_> = (0..3).map(|_| spawn(TEST, &arg)).collect();
        let mut rng = Rng(11);
        let mut kills = 0u64;
        for x in 0..N {
            // Full slots held by a killed consumer are given back, so this never times out.
            q.put_timeout(x, T).unwrap();
            if rng.next() % 5000 == 0 {
                let victim = (rng.next() % 3) as usize;
                kids[victim].kill().unwrap();
                kids[victim].wait().unwrap();
                kills += 1;
                kids[victim] = spawn(TEST, &arg);
            }
        }
        // Let the consumers drain, then stop them.
        let started = Instant::now();
        while !q.is_empty() && started.elapsed() < T {
            std::thread::sleep(Duration::from_millis(5));
        }
        for k in &mut kids {
            k.kill().unwrap();
            k.wait().unwrap();
            kills += 1;
        }
        while let Ok(x) = q.get_timeout(Duration::from_millis(200)) {
            seen.atomic_u64(x as usize * 8).unwrap().fetch_add(1, ord);
        }
        let mut missing = 0;
        for x in 0..N {
            let n = seen.atomic_u64(x as usize * 8).unwrap().load(ord);
            assert!(n <= 1, "item {x} delivered {n} times");
            missing += u64::from(n == 0);
        }
        // Only an item a consumer had taken when it was killed can be missing.
        assert!(missing <= kills, "{missing} items lost with {kills} kills");
        eprintln!("{kills} consumers killed, {missing} items lost with them");
        q.put_timeout(1, T).unwrap();
        assert_eq!(q.get_timeout(T).unwrap(), 1);
    }
    assert_gone(&name);
    assert_gone(&seen_name);
}

#[test]
fn blocked_producers_and_consumers_use_no_cpu() {
    const TEST: &str = "blocked_producers_and_consumers_use_no_cpu";
    if let Some(arg) = role(TEST) {
        let (kind, name) = arg.split_once(',').unwrap();
        let q = Queue::<u64>::open(name).unwrap();
        if kind == "get" {
            assert_eq!(
                q.get_timeout(Duration::from_secs(2)),
                Err(GetError::Timeout)
            );
        } else {
            assert_eq!(
                q.put_timeout(0, Duration::from_secs(2)),
                Err(PutError::Timeout(0))
            );
        }
        return;
    }
    let empty = unique("q-idle-e");
    let full = unique("q-idle-f");
    {
        let e = Queue::<u64>::create(empty.as_str(), 4).unwrap();
        let f = Queue::<u64>::create(full.as_str(), 4).unwrap();
        while f.try_put(1).is_ok() {}
        let mut kids: Vec<_> = (0..3)
            .map(|_| spawn(TEST, &format!("get,{empty}")))
            .chain((0..3).map(|_| spawn(TEST, &format!("put,{full}"))))
            .collect();
        std::thread::sleep(Duration::from_millis(300)); // past the spin phase
        let before: Vec<u64> = kids.iter().map(|k| cpu_ticks(k.id())).collect();
        std::thread::sleep(Duration::from_millis(500));
        for (k, b) in kids.iter().zip(before) {
            let used = cpu_ticks(k.id()) - b;
            assert!(used <= 5, "a blocked waiter used {used} ticks in 500 ms");
        }
        wait_all_ok(&mut kids, LIMIT);
        drop((e, f));
    }
    assert_gone(&empty);
    assert_gone(&full);
}

#[test]
fn a_file_backed_queue_outlives_its_processes() {
    const TEST: &str = "a_file_backed_queue_outlives_its_processes";
    if let Some(arg) = role(TEST) {
        let (phase, path) = arg.split_once(',').unwrap();
        match phase {
            "first" => {
                let q = Queue::<u64>::create(Options::file(path), 1000).unwrap();
                for i in 0..100 {
                    q.put(i).unwrap();
                }
                for i in 0..10 {
                    assert_eq!(q.get().unwrap(), i);
                }
                q.flush().unwrap(); // to the file's device: survives an OS crash too
            }
            _ => {
                let q = Queue::<u64>::open(Options::file(path)).unwrap();
                for i in 100.. {
                    q.put_timeout(i, T).unwrap(); // killed somewhere in here
                }
            }
        }
        return;
    }
    let dir = std::env::temp_dir().join(unique("q-file"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("queue");
    let p = path.to_str().unwrap();
    let mut first = spawn(TEST, &format!("first,{p}"));
    assert!(wait(&mut first, LIMIT).success());
    let mut second = spawn(TEST, &format!("second,{p}"));
    std::thread::sleep(Duration::from_millis(200));
    second.kill().unwrap();
    second.wait().unwrap();
    // Every process is gone; what was committed and not taken is still there, in order.
    let q = Queue::<u64>::open(Options::file(&path)).unwrap();
    let mut next = 10;
    while let Ok(x) = q.try_get() {
        assert_eq!(x, next);
        next += 1;
    }
    assert!(next > 100, "the second run's items are there too ({next})");
    drop(q);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn join_waits_for_task_done_in_other_processes() {
    const TEST: &str = "join_waits_for_task_done_in_other_processes";
    if let Some(name) = role(TEST) {
        let q = JoinableQueue::<u64>::open(name).unwrap();
        while let Ok(_x) = q.get_timeout(Duration::from_millis(500)) {
            std::thread::sleep(Duration::from_micros(200)); // "work"
            q.task_done().unwrap();
        }
        return;
    }
    let name = unique("q-join");
    {
        let q = JoinableQueue::<u64>::create(name.as_str(), 64).unwrap();
        let mut kids: Vec<_> = (0..2).map(|_| spawn(TEST, &name)).collect();
        for i in 0..500 {
            q.put_timeout(i, T).unwrap();
        }
        q.join_timeout(T).unwrap();
        assert_eq!(q.unfinished(), 0);
        assert!(q.is_empty());
        wait_all_ok(&mut kids, LIMIT);
        assert!(q.task_done().is_err());
        // join_timeout reports what is still unfinished.
        q.put(1).unwrap();
        assert_eq!(
            q.join_timeout(Duration::from_millis(20)),
            Err(shmq::JoinError::Timeout { unfinished: 1 })
        );
    }
    assert_gone(&name);
}

#[test]
fn priority_queue_orders_items_from_many_processes() {
    const TEST: &str = "priority_queue_orders_items_from_many_processes";
    if let Some(arg) = role(TEST) {
        let (name, seed) = arg.split_once(',').unwrap();
        let q = PriorityQueue::<u64>::open(name).unwrap();
        let mut rng = Rng(seed.parse().unwrap());
        for _ in 0..2000 {
            q.put_timeout(rng.next() % 1_000_000, T).unwrap();
        }
        return;
    }
    let name = unique("q-prio");
    {
        let q = PriorityQueue::<u64>::create(name.as_str(), 8000).unwrap();
        let mut kids: Vec<_> = (1..=4)
            .map(|s| spawn(TEST, &format!("{name},{s}")))
            .collect();
        wait_all_ok(&mut kids, LIMIT);
        let mut want: Vec<u64> = (1..=4)
            .flat_map(|s| {
                let mut rng = Rng(s);
                (0..2000).map(move |_| rng.next() % 1_000_000)
            })
            .collect();
        want.sort_unstable();
        let got: Vec<u64> = std::iter::from_fn(|| q.try_get().ok()).collect();
        assert_eq!(got, want);
    }
    assert_gone(&name);
}

#[test]
fn mismatched_opens_are_clear_errors() {
    let name = unique("q-mismatch");
    {
        let _q = Queue::<u64>::create(name.as_str(), 8).unwrap();
        assert!(matches!(
            Queue::<u32>::open(name.as_str()),
            Err(OpenError::TypeMismatch { .. })
        ));
        assert!(matches!(
            JoinableQueue::<u64>::open(name.as_str()),
            Err(OpenError::KindMismatch { .. })
        ));
        assert!(matches!(
            shmq::ByteQueue::open(name.as_str()),
            Err(OpenError::KindMismatch { .. })
        ));
        assert!(matches!(
            Queue::<u64>::create(name.as_str(), 8),
            Err(shmq::CreateError::AlreadyExists { .. })
        ));
        assert!(matches!(
            Queue::<u64>::create(unique("q-zero").as_str(), 0),
            Err(shmq::CreateError::InvalidSize { .. })
        ));
    }
    assert_gone(&name);
}
