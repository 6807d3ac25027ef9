//! `Select`: one wait over rings, pipes, queues, events, semaphores and mutexes, across
//! processes.

mod common;

use std::time::{Duration, Instant};

use common::{assert_gone, cpu_ticks, rand, role, spawn, unique, wait};
use shmq::{
    ByteQueue, Event, Interrupter, JoinableQueue, Mutex, Pipe, PriorityQueue, Queue, Ring, Select,
    SelectError, Semaphore, TryRecvError,
};

const LIMIT: Duration = Duration::from_secs(60);
const RINGS: usize = 3;
const PER_RING: u64 = 2000;

#[test]
fn select_over_three_rings_and_an_event_fed_by_processes_at_random() {
    const TEST: &str = "select_over_three_rings_and_an_event_fed_by_processes_at_random";
    if let Some(arg) = role(TEST) {
        // A producer: PER_RING sequence numbers at random moments, then the event.
        let (name, k) = arg.split_once(',').unwrap();
        let k: u64 = k.parse().unwrap();
        let mut tx = Ring::open(format!("{name}-{k}").as_str())
            .unwrap()
            .producer()
            .unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (k + 1);
        for i in 0..PER_RING {
            match rand(&mut seed) % 64 {
                0 => std::thread::sleep(Duration::from_micros(rand(&mut seed) % 2000)),
                1..=8 => std::thread::yield_now(),
                _ => {}
            }
            tx.send_timeout(&i.to_le_bytes(), LIMIT).unwrap();
        }
        if k == 0 {
            // One of them also sets the event, at a random point after its stream.
            std::thread::sleep(Duration::from_millis(rand(&mut seed) % 20));
            Event::open(format!("{name}-stop").as_str()).unwrap().set();
        }
        return;
    }
    let name = unique("select-rings");
    {
        let rings: Vec<Ring> = (0..RINGS)
            .map(|k| Ring::create(format!("{name}-{k}").as_str(), 4096).unwrap())
            .collect();
        let mut rxs: Vec<_> = rings.iter().map(|r| r.consumer().unwrap()).collect();
        let stop = Event::create(format!("{name}-stop").as_str()).unwrap();
        let mut kids: Vec<_> = (0..RINGS)
            .map(|k| spawn(TEST, &format!("{name},{k}")))
            .collect();
        let mut next = [0u64; RINGS];
        let mut done = [false; RINGS];
        let mut stopped = false;
        let started = Instant::now();
        while !(stopped && done.iter().all(|&d| d)) {
            assert!(started.elapsed() < LIMIT, "stuck: {next:?} {done:?}");
            let mut sel = Select::new().unwrap();
            let on_ring: Vec<usize> = rxs
                .iter()
                .zip(&done)
                .filter(|(_, d)| !**d)
                .map(|(rx, _)| sel.recv(rx))
                .collect();
            let live: Vec<usize> = (0..RINGS).filter(|&k| !done[k]).collect();
            let on_stop = (!stopped).then(|| sel.wait(&stop));
            let i = sel.select_timeout(LIMIT).unwrap();
            drop(sel);
            if Some(i) == on_stop {
                stopped = true;
                continue;
            }
            let k = live[on_ring.iter().position(|&r| r == i).unwrap()];
            // Ready: a message, or the producer gone. Drain what is there.
            loop {
                match rxs[k].try_recv() {
                    Ok(msg) => {
                        let v = u64::from_le_bytes((&*msg).try_into().unwrap());
                        assert_eq!(v, next[k], "ring {k} out of order");
                        next[k] += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        done[k] = true;
                        break;
                    }
                    Err(e) => panic!("ring {k}: {e}"),
                }
            }
        }
        assert_eq!(next, [PER_RING; RINGS], "every message exactly once");
        for kid in &mut kids {
            assert!(wait(kid, LIMIT).success());
        }
    }
    for k in 0..RINGS {
        assert_gone(&format!("{name}-{k}"));
    }
}

#[test]
fn a_sigkilled_producer_shows_as_ready_and_then_disconnected() {
    const TEST: &str = "a_sigkilled_producer_shows_as_ready_and_then_disconnected";
    if let Some(name) = role(TEST) {
        let _tx = Ring::open(name.as_str()).unwrap().producer().unwrap();
        std::thread::sleep(LIMIT);
        return;
    }
    let name = unique("select-killed");
    {
        let ring = Ring::create(name.as_str(), 4096).unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut kid = spawn(TEST, &name);
        // Wait until it holds the producer role.
        let t = Instant::now();
        while ring.producer().is_ok_and(|p| {
            drop(p);
            true
        }) {
            assert!(t.elapsed() < LIMIT);
            std::thread::sleep(Duration::from_millis(5));
        }
        let idle = Event::create(format!("{name}-never").as_str()).unwrap();
        let mut sel = Select::new().unwrap();
        let on_ring = sel.recv(&rx);
        sel.wait(&idle);
        assert_eq!(sel.try_select(), Err(SelectError::WouldBlock));
        kid.kill().unwrap();
        kid.wait().unwrap();
        assert_eq!(sel.select_timeout(LIMIT), Ok(on_ring));
        drop(sel);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }
    assert_gone(&name);
}

#[test]
fn an_idle_select_uses_no_cpu() {
    const TEST: &str = "an_idle_select_uses_no_cpu";
    if let Some(name) = role(TEST) {
        let ring = Ring::open(format!("{name}-r").as_str()).unwrap();
        let rx = ring.consumer().unwrap();
        let q = Queue::<u64>::open(format!("{name}-q").as_str()).unwrap();
        let e = Event::open(format!("{name}-e").as_str()).unwrap();
        let mut sel = Select::new().unwrap();
        sel.recv(&rx);
        sel.get(&q);
        let on_event = sel.wait(&e);
        assert_eq!(sel.select_timeout(LIMIT), Ok(on_event));
        return;
    }
    let name = unique("select-idle");
    {
        let ring = Ring::create(format!("{name}-r").as_str(), 1024).unwrap();
        let _tx = ring.producer().unwrap();
        let q = Queue::<u64>::create(format!("{name}-q").as_str(), 8).unwrap();
        let e = Event::create(format!("{name}-e").as_str()).unwrap();
        let mut kid = spawn(TEST, &name);
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_ticks(kid.id());
        std::thread::sleep(Duration::from_millis(500));
        let used = cpu_ticks(kid.id()) - before;
        e.set();
        assert!(wait(&mut kid, LIMIT).success());
        // Spinning would cost ~50 ticks (100 Hz) in 500 ms; one sleep ~0 (a liveness look
        // every 40 ms costs microseconds).
        assert!(used <= 2, "an idle Select used {used} ticks in 500 ms");
        drop(q);
    }
    assert_gone(&format!("{name}-r"));
}

#[test]
fn every_kind_becomes_ready_from_another_process() {
    const TEST: &str = "every_kind_becomes_ready_from_another_process";
    if let Some(arg) = role(TEST) {
        let (name, what) = arg.split_once(',').unwrap();
        let n = |s: &str| format!("{name}-{s}");
        // Acts only once the parent has checked that nothing is ready yet.
        if what != "mutex" {
            let go = Event::open(n("go").as_str()).unwrap();
            assert_eq!(go.wait_timeout(LIMIT), Ok(true));
        }
        match what {
            "pipe" => Pipe::open(n("pipe").as_str()).unwrap().send(b"hi").unwrap(),
            "queue" => Queue::<u64>::open(n("queue").as_str())
                .unwrap()
                .put(7)
                .unwrap(),
            "joinable" => JoinableQueue::<u64>::open(n("joinable").as_str())
                .unwrap()
                .put(7)
                .unwrap(),
            "bytes" => ByteQueue::open(n("bytes").as_str())
                .unwrap()
                .put(b"x")
                .unwrap(),
            "priority" => PriorityQueue::<u64>::open(n("priority").as_str())
                .unwrap()
                .put(7)
                .unwrap(),
            "semaphore" => Semaphore::open(n("semaphore").as_str())
                .unwrap()
                .release()
                .unwrap(),
            "mutex" => {
                // Holds the lock a while, then lets go.
                let m = Mutex::<u64>::open(n("mutex").as_str()).unwrap();
                let g = m.lock().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                drop(g);
            }
            "full" => {
                // Takes an item from the full queue: room for the selecting putter.
                let q = Queue::<u64>::open(n("full").as_str()).unwrap();
                q.get_timeout(LIMIT).unwrap();
            }
            other => panic!("{other}"),
        }
        // Stay until the parent has seen it (our drop must not be what makes it ready).
        std::thread::sleep(Duration::from_millis(300));
        return;
    }
    let name = unique("select-kinds");
    let n = |s: &str| format!("{name}-{s}");
    for what in [
        "pipe",
        "queue",
        "joinable",
        "bytes",
        "priority",
        "semaphore",
        "mutex",
        "full",
    ] {
        let pipe = Pipe::create(n("pipe").as_str(), 1024).unwrap();
        let queue = Queue::<u64>::create(n("queue").as_str(), 4).unwrap();
        let joinable = JoinableQueue::<u64>::create(n("joinable").as_str(), 4).unwrap();
        let bytes = ByteQueue::create(n("bytes").as_str(), 4, 16).unwrap();
        let priority = PriorityQueue::<u64>::create(n("priority").as_str(), 4).unwrap();
        let semaphore = Semaphore::create(n("semaphore").as_str(), 0).unwrap();
        let mutex = Mutex::<u64>::create(n("mutex").as_str(), 0).unwrap();
        let full = Queue::<u64>::create(n("full").as_str(), 1).unwrap();
        let go = Event::create(n("go").as_str()).unwrap();
        full.put(1).unwrap();
        // Held by this process (another thread's lock counts as held) unless the child is
        // the one to let it go.
        let held = (what != "mutex").then(|| mutex.lock().unwrap());
        let mut kid = spawn(TEST, &format!("{name},{what}"));
        if what == "mutex" {
            // The child must hold it first.
            let t = Instant::now();
            while mutex.try_lock().is_ok() {
                assert!(t.elapsed() < LIMIT);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut sel = Select::new().unwrap();
        let idx = [
            ("pipe", sel.recv_pipe(&pipe)),
            ("queue", sel.get(&queue)),
            ("joinable", sel.get(&joinable)),
            ("bytes", sel.get(&bytes)),
            ("priority", sel.get(&priority)),
            ("semaphore", sel.acquire(&semaphore)),
            ("mutex", sel.lock(&mutex)),
            ("full", sel.put(&full)),
        ];
        if what != "mutex" {
            assert_eq!(sel.try_select(), Err(SelectError::WouldBlock), "{what}");
            go.set();
        }
        let got = sel.select_timeout(LIMIT).unwrap();
        let want = idx.iter().find(|(w, _)| *w == what).unwrap().1;
        assert_eq!(
            got,
            want,
            "{what}: got {:?}",
            idx.iter().find(|(_, i)| *i == got)
        );
        drop(sel);
        match what {
            "queue" => assert_eq!(queue.try_get(), Ok(7)),
            "semaphore" => assert!(semaphore.try_acquire()),
            "mutex" => drop(mutex.try_lock().unwrap()),
            _ if held.is_some() => {}
            "full" => full.try_put(2).unwrap(),
            _ => {}
        }
        assert!(wait(&mut kid, LIMIT).success(), "{what}");
    }
}

#[test]
fn errors_and_interrupts() {
    let name = unique("select-errors");
    {
        let e = Event::create(name.as_str()).unwrap();
        let sel = Select::new().unwrap();
        assert_eq!(sel.select(), Err(SelectError::Empty));
        let mut sel = Select::new().unwrap();
        for _ in 0..=Select::MAX {
            sel.wait(&e);
        }
        assert!(matches!(
            sel.try_select(),
            Err(SelectError::TooMany { registered, max }) if registered == Select::MAX + 1 && max == Select::MAX
        ));
        let mut sel = Select::new().unwrap();
        sel.wait(&e);
        let t = Instant::now();
        assert_eq!(
            sel.select_timeout(Duration::from_millis(30)),
            Err(SelectError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        let stop = Interrupter::new();
        let _watch = stop.watch();
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            s2.interrupt();
        });
        assert_eq!(sel.select(), Err(SelectError::Interrupted));
        t.join().unwrap();
        stop.reset();
        e.set();
        assert_eq!(sel.select(), Ok(0));
    }
    assert_gone(&name);
}
