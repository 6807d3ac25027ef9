//! `Readiness`: shmq objects in an epoll loop beside OS file descriptors, across processes.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ARG, ROLE, assert_gone, cpu_ticks, rand, role, spawn, unique, wait};
use rustix::event::{PollFd, PollFlags, Timespec, epoll};
use shmq::{
    ByteQueue, Event, JoinableQueue, Mutex, Pipe, PriorityQueue, Queue, Readiness, ReadinessError,
    Ring, Semaphore, TryRecvError,
};

const LIMIT: Duration = Duration::from_secs(60);

/// Whether `fd` becomes readable within `timeout` (zero: is it readable now).
fn readable(fd: impl AsFd, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let ts = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    rustix::event::poll(&mut fds, Some(&ts)).unwrap() == 1
}

/// `epoll_wait` for at most `LIMIT`, returning the data of each ready descriptor.
fn epoll_wait(ep: impl AsFd) -> Vec<u64> {
    let mut events = Vec::with_capacity(8);
    let ts = Timespec {
        tv_sec: LIMIT.as_secs() as i64,
        tv_nsec: 0,
    };
    epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&ts)).unwrap();
    assert!(!events.is_empty(), "nothing became ready in {LIMIT:?}");
    events
        .iter()
        .map(|e| {
            let data = e.data;
            data.u64()
        })
        .collect()
}

const RING_MSGS: u64 = 3000;
const PIPE_MSGS: u64 = 600;

#[test]
fn epoll_over_a_ring_and_an_os_pipe_fed_by_a_child_at_random() {
    const TEST: &str = "epoll_over_a_ring_and_an_os_pipe_fed_by_a_child_at_random";
    if let Some(name) = role(TEST) {
        // The child: sequence numbers on the ring and, at other moments, lines on its
        // stderr (an OS pipe to the parent), in a random mix with random pauses.
        let mut tx = Ring::open(name.as_str()).unwrap().producer().unwrap();
        let mut err = std::io::stderr();
        let (mut on_ring, mut on_pipe) = (0u64, 0u64);
        let mut seed = 0x2545_f491_4f6c_dd1d;
        while on_ring < RING_MSGS || on_pipe < PIPE_MSGS {
            match rand(&mut seed) % 64 {
                0 => std::thread::sleep(Duration::from_micros(rand(&mut seed) % 3000)),
                1..=4 => std::thread::yield_now(),
                _ => {}
            }
            let pipe_turn =
                on_ring == RING_MSGS || (on_pipe < PIPE_MSGS && rand(&mut seed) % 6 == 0);
            if pipe_turn {
                err.write_all(format!("pipe {on_pipe}\n").as_bytes())
                    .unwrap();
                on_pipe += 1;
            } else {
                tx.send_timeout(&on_ring.to_le_bytes(), LIMIT).unwrap();
                on_ring += 1;
            }
        }
        return; // dropping the producer: the ring ends with Disconnected
    }
    let name = unique("readiness-epoll");
    {
        let ring = Ring::create(name.as_str(), 4096).unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut kid = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE, TEST)
            .env(ARG, &name)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = kid.stderr.take().unwrap();

        let mut readiness = Readiness::new().unwrap();
        let on_ring = readiness.recv(&rx).unwrap();
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        epoll::add(
            &ep,
            &readiness,
            epoll::EventData::new_u64(1),
            epoll::EventFlags::IN,
        )
        .unwrap();
        epoll::add(
            &ep,
            &pipe,
            epoll::EventData::new_u64(2),
            epoll::EventFlags::IN,
        )
        .unwrap();

        let (mut next_ring, mut next_pipe) = (0u64, 0u64);
        let (mut ring_done, mut pipe_done) = (false, false);
        let mut text = Vec::new();
        let started = Instant::now();
        while !(ring_done && pipe_done) {
            assert!(
                started.elapsed() < LIMIT,
                "stuck at {next_ring} {next_pipe}"
            );
            for which in epoll_wait(&ep) {
                if which == 1 {
                    for i in readiness.ready() {
                        assert_eq!(i, on_ring);
                        loop {
                            match rx.try_recv() {
                                Ok(msg) => {
                                    let v = u64::from_le_bytes((&*msg).try_into().unwrap());
                                    assert_eq!(v, next_ring, "ring out of order");
                                    next_ring += 1;
                                }
                                Err(TryRecvError::Empty) => break,
                                Err(TryRecvError::Disconnected) => {
                                    ring_done = true;
                                    assert!(readiness.remove(on_ring));
                                    break;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                } else {
                    // Readable: one read does not block.
                    let mut buf = [0u8; 4096];
                    let n = pipe.read(&mut buf).unwrap();
                    if n == 0 {
                        pipe_done = true;
                        epoll::delete(&ep, &pipe).unwrap();
                    }
                    text.extend_from_slice(&buf[..n]);
                    while let Some(end) = text.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = text.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line);
                        let v: u64 = line
                            .trim_end()
                            .strip_prefix("pipe ")
                            .unwrap_or_else(|| panic!("child said: {line}"))
                            .parse()
                            .unwrap();
                        assert_eq!(v, next_pipe, "pipe out of order");
                        next_pipe += 1;
                    }
                }
            }
        }
        assert_eq!(
            (next_ring, next_pipe),
            (RING_MSGS, PIPE_MSGS),
            "each exactly once"
        );
        assert!(text.is_empty());
        assert!(wait(&mut kid, LIMIT).success());
        // Everything removed: the descriptor is clear and stays so.
        assert!(readiness.is_empty());
        assert!(readiness.ready().is_empty());
        assert!(!readable(&readiness, Duration::ZERO));
    }
    assert_gone(&name);
}

#[test]
fn a_sigkilled_producer_makes_the_fd_readable_and_the_ring_disconnected() {
    const TEST: &str = "a_sigkilled_producer_makes_the_fd_readable_and_the_ring_disconnected";
    if let Some(name) = role(TEST) {
        let _tx = Ring::open(name.as_str()).unwrap().producer().unwrap();
        std::thread::sleep(LIMIT);
        return;
    }
    let name = unique("readiness-killed");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let mut rx = ring.consumer().unwrap();
        let mut kid = spawn(TEST, &name);
        let t = Instant::now();
        while rx.peer() != shmq::Peer::Attached {
            assert!(t.elapsed() < LIMIT);
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut readiness = Readiness::new().unwrap();
        let on_ring = readiness.recv(&rx).unwrap();
        // Alive and silent: not readable, and `ready` finds nothing.
        assert!(!readable(&readiness, Duration::from_millis(100)));
        assert!(readiness.ready().is_empty());
        kid.kill().unwrap();
        kid.wait().unwrap();
        assert!(readable(&readiness, LIMIT), "a dead producer never showed");
        assert_eq!(readiness.ready(), vec![on_ring]);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
        // Still "ready" (for good) until removed, as a socket at end of file.
        assert!(readable(&readiness, Duration::ZERO));
        assert!(readiness.remove(on_ring));
        assert!(readiness.ready().is_empty());
        assert!(!readable(&readiness, Duration::ZERO));
    }
    assert_gone(&name);
}

#[test]
fn level_triggered_readable_exactly_while_something_is_ready() {
    let name = unique("readiness-level");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let stop = Event::create(format!("{name}-e").as_str()).unwrap();
        let mut readiness = Readiness::new().unwrap();
        let on_ring = readiness.recv(&rx).unwrap();
        let on_stop = readiness.wait(&stop).unwrap();
        assert!(!readable(&readiness, Duration::ZERO));
        assert!(readiness.ready().is_empty());
        assert!(!readable(&readiness, Duration::from_millis(100)));

        tx.send(b"one").unwrap();
        tx.send(b"two").unwrap();
        assert!(readable(&readiness, LIMIT));
        // Not acted on: it stays readable and keeps saying so.
        assert_eq!(readiness.ready(), vec![on_ring]);
        assert!(readable(&readiness, Duration::ZERO));
        assert_eq!(readiness.ready(), vec![on_ring]);
        // One taken, one left: still ready.
        assert_eq!(&*rx.try_recv().unwrap(), b"one");
        assert_eq!(readiness.ready(), vec![on_ring]);
        assert!(readable(&readiness, Duration::ZERO));
        // Drained: the next `ready` clears it.
        assert_eq!(&*rx.try_recv().unwrap(), b"two");
        assert!(
            readable(&readiness, Duration::ZERO),
            "cleared only by `ready`"
        );
        assert!(readiness.ready().is_empty());
        assert!(!readable(&readiness, Duration::ZERO));

        // Two at once, reported in index order.
        tx.send(b"three").unwrap();
        stop.set();
        assert!(readable(&readiness, LIMIT));
        assert_eq!(readiness.ready(), vec![on_ring, on_stop]);
        drop(rx.try_recv().unwrap());
        assert_eq!(readiness.ready(), vec![on_stop]);
        stop.clear();
        assert!(readiness.ready().is_empty());
        assert!(!readable(&readiness, Duration::ZERO));

        // A message held in a guard is still there: ready until released.
        tx.send(b"four").unwrap();
        assert!(readable(&readiness, LIMIT));
        let guard = rx.try_recv().unwrap();
        assert_eq!(readiness.ready(), vec![on_ring]);
        drop(guard);
        assert!(readiness.ready().is_empty());
        assert!(!readable(&readiness, Duration::ZERO));
    }
    assert_gone(&name);
}

#[test]
fn removed_and_dropped_registrations_are_let_go_of() {
    let name = unique("readiness-drop");
    {
        let ring = Ring::create(name.as_str(), 1024).unwrap();
        let (mut tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let q = Queue::<u64>::create(format!("{name}-q").as_str(), 4).unwrap();
        let mut a = Readiness::new().unwrap();
        let mut b = Readiness::new().unwrap();
        let a_ring = a.recv(&rx).unwrap();
        let a_q = a.get(&q).unwrap();
        let b_ring = b.recv(&rx).unwrap();
        assert_eq!((a.len(), b.len()), (2, 1));

        // Removed from `a`: a message makes `b` readable, not `a`.
        assert!(a.remove(a_ring));
        assert!(!a.remove(a_ring), "removed twice");
        assert!(!a.remove(99));
        assert_eq!(a.len(), 1);
        tx.send(b"x").unwrap();
        assert!(readable(&b, LIMIT));
        assert_eq!(b.ready(), vec![b_ring]);
        assert!(!readable(&a, Duration::from_millis(200)));
        assert!(a.ready().is_empty());

        // `a` still watches the queue, under its old index.
        q.put(5).unwrap();
        assert!(readable(&a, LIMIT));
        assert_eq!(a.ready(), vec![a_q]);
        assert_eq!(q.try_get(), Ok(5));
        assert!(a.ready().is_empty());
        // A new registration takes the lowest free index.
        assert_eq!(a.put(&q).unwrap(), a_ring);
        assert_eq!(a.ready(), vec![a_ring], "room in the queue");
        assert!(a.remove(a_ring));

        // A dropped Readiness is out of the registry: a full process's worth of
        // registrations can be made again (the limit counts the whole process).
        drop(b);
        drop(a);
    }
    assert_gone(&name);
}

#[test]
fn registrations_own_what_they_read() {
    // A forgotten Readiness keeps its registrations, and the thread keeps looking at them,
    // after every handle of their objects in the process is gone: the registrations hold the
    // mappings, so this is sound (a thread reading unmapped memory would crash the child).
    // In a child, because the forgotten registrations keep the segments in use (their
    // names stay) until the process ends.
    const TEST: &str = "registrations_own_what_they_read";
    if let Some(name) = role(TEST) {
        let ring = Ring::open(format!("{name}-r").as_str()).unwrap();
        let rx = ring.consumer().unwrap();
        let e = Event::open(format!("{name}-e").as_str()).unwrap();
        let mut lost = Readiness::new().unwrap();
        lost.recv(&rx).unwrap();
        lost.wait(&e).unwrap();
        let fd = lost.as_fd().try_clone_to_owned().unwrap();
        assert!(lost.ready().is_empty());
        std::mem::forget(lost);
        drop((rx, ring, e));
        // Make the thread look at everything again, many times.
        let mine = Event::create(format!("{name}-mine").as_str()).unwrap();
        let mut other = Readiness::new().unwrap();
        for _ in 0..50 {
            let i = other.wait(&mine).unwrap();
            assert!(other.ready().is_empty());
            assert!(other.remove(i));
        }
        assert!(!readable(&fd, Duration::ZERO));
        // The parent sets the event: the thread reads it through the forgotten registration.
        Event::open(format!("{name}-dropped").as_str())
            .unwrap()
            .set();
        assert!(
            readable(&fd, LIMIT),
            "the forgotten registration never fired"
        );
        return;
    }
    let name = unique("readiness-forget");
    {
        let _ring = Ring::create(format!("{name}-r").as_str(), 1024).unwrap();
        let e = Event::create(format!("{name}-e").as_str()).unwrap();
        let dropped = Event::create(format!("{name}-dropped").as_str()).unwrap();
        let mut kid = spawn(TEST, &name);
        assert_eq!(dropped.wait_timeout(LIMIT), Ok(true));
        e.set();
        assert!(wait(&mut kid, LIMIT).success());
    }
    assert_gone(&name);
}

#[test]
fn too_many_registrations_in_a_process() {
    const TEST: &str = "too_many_registrations_in_a_process";
    if let Some(name) = role(TEST) {
        // A process of its own, so other tests' registrations do not count.
        let e = Event::open(name.as_str()).unwrap();
        let mut a = Readiness::new().unwrap();
        let mut b = Readiness::new().unwrap();
        for _ in 0..Readiness::MAX / 2 {
            a.wait(&e).unwrap();
        }
        while a.len() + b.len() < Readiness::MAX {
            b.wait(&e).unwrap();
        }
        match a.wait(&e) {
            Err(ReadinessError::TooMany { registered, max }) => {
                assert_eq!((registered, max), (Readiness::MAX, Readiness::MAX));
            }
            other => panic!("{other:?}"),
        }
        let msg = b.wait(&e).unwrap_err().to_string();
        assert!(msg.contains("futex_waitv"), "{msg}");
        // Every one of them works: set, all are ready.
        e.set();
        assert!(readable(&a, LIMIT));
        assert!(readable(&b, LIMIT));
        assert_eq!(a.ready().len() + b.ready().len(), Readiness::MAX);
        // One removed, one more fits.
        assert!(b.remove(0));
        let i = a.wait(&e).unwrap();
        assert!(a.ready().contains(&i));
        // Dropped, they all go.
        drop(a);
        drop(b);
        let mut c = Readiness::new().unwrap();
        for _ in 0..Readiness::MAX {
            c.wait(&e).unwrap();
        }
        return;
    }
    let name = unique("readiness-many");
    {
        let _e = Event::create(name.as_str()).unwrap();
        let mut kid = spawn(TEST, &name);
        assert!(wait(&mut kid, LIMIT).success());
    }
    assert_gone(&name);
}

#[test]
fn an_idle_readiness_uses_no_cpu() {
    const TEST: &str = "an_idle_readiness_uses_no_cpu";
    if let Some(name) = role(TEST) {
        let ring = Ring::open(format!("{name}-r").as_str()).unwrap();
        let mut rx = ring.consumer().unwrap();
        let q = Queue::<u64>::open(format!("{name}-q").as_str()).unwrap();
        let e = Event::open(format!("{name}-e").as_str()).unwrap();
        let mut readiness = Readiness::new().unwrap();
        let on_ring = readiness.recv(&rx).unwrap();
        readiness.get(&q).unwrap();
        readiness.wait(&e).unwrap();
        assert!(readiness.ready().is_empty());
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        epoll::add(
            &ep,
            &readiness,
            epoll::EventData::new_u64(1),
            epoll::EventFlags::IN,
        )
        .unwrap();
        Event::open(format!("{name}-armed").as_str()).unwrap().set();
        assert_eq!(epoll_wait(&ep), vec![1]);
        assert_eq!(readiness.ready(), vec![on_ring]);
        assert_eq!(&*rx.try_recv().unwrap(), b"wake up");
        return;
    }
    let name = unique("readiness-idle");
    {
        let ring = Ring::create(format!("{name}-r").as_str(), 1024).unwrap();
        let mut tx = ring.producer().unwrap();
        let _q = Queue::<u64>::create(format!("{name}-q").as_str(), 8).unwrap();
        let _e = Event::create(format!("{name}-e").as_str()).unwrap();
        let armed = Event::create(format!("{name}-armed").as_str()).unwrap();
        let mut kid = spawn(TEST, &name);
        assert_eq!(armed.wait_timeout(LIMIT), Ok(true));
        std::thread::sleep(Duration::from_millis(100));
        let before = cpu_ticks(kid.id());
        std::thread::sleep(Duration::from_millis(300));
        let used = cpu_ticks(kid.id()) - before;
        tx.send(b"wake up").unwrap();
        assert!(wait(&mut kid, LIMIT).success());
        // The whole child: its thread in epoll_wait and the readiness thread, which wakes
        // every 40 ms for the liveness looks (microseconds each). Spinning would cost ~30
        // ticks (100 Hz) in 300 ms.
        assert!(used <= 2, "an idle Readiness used {used} ticks in 300 ms");
    }
    assert_gone(&format!("{name}-r"));
}

#[test]
fn every_kind_becomes_ready_from_another_process() {
    const TEST: &str = "every_kind_becomes_ready_from_another_process";
    if let Some(arg) = role(TEST) {
        let (name, what) = arg.split_once(',').unwrap();
        let n = |s: &str| format!("{name}-{s}");
        if what != "mutex" {
            let go = Event::open(n("go").as_str()).unwrap();
            assert_eq!(go.wait_timeout(LIMIT), Ok(true));
        }
        // What the child opened stays open until the parent has looked: a handle let go of
        // would make other registrations ready (a pipe's sending side, say).
        let _keep: Box<dyn std::any::Any> = match what {
            "pipe" => {
                let mut p = Pipe::open(n("pipe").as_str()).unwrap();
                p.send(b"hi").unwrap();
                Box::new(p)
            }
            "pipe-room" => {
                // Reads the message that fills the parent's direction: room to send.
                let mut p = Pipe::open(n("pipe").as_str()).unwrap();
                assert_eq!(p.recv_timeout(LIMIT).unwrap().len(), 504);
                Box::new(p)
            }
            "queue" => {
                let q = Queue::<u64>::open(n("queue").as_str()).unwrap();
                q.put(7).unwrap();
                Box::new(q)
            }
            "joinable" => {
                let q = JoinableQueue::<u64>::open(n("joinable").as_str()).unwrap();
                q.put(7).unwrap();
                Box::new(q)
            }
            "bytes" => {
                let q = ByteQueue::open(n("bytes").as_str()).unwrap();
                q.put(b"x").unwrap();
                Box::new(q)
            }
            "priority" => {
                let q = PriorityQueue::<u64>::open(n("priority").as_str()).unwrap();
                q.put(7).unwrap();
                Box::new(q)
            }
            "priority-room" => {
                let q = PriorityQueue::<u64>::open(n("priority-full").as_str()).unwrap();
                q.get_timeout(LIMIT).unwrap();
                Box::new(q)
            }
            "semaphore" => {
                let s = Semaphore::open(n("semaphore").as_str()).unwrap();
                s.release().unwrap();
                Box::new(s)
            }
            "event" => {
                let e = Event::open(n("event").as_str()).unwrap();
                e.set();
                Box::new(e)
            }
            "mutex" => {
                let m = Mutex::<u64>::open(n("mutex").as_str()).unwrap();
                let g = m.lock().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                drop(g);
                Box::new(m)
            }
            "full" => {
                let q = Queue::<u64>::open(n("full").as_str()).unwrap();
                q.get_timeout(LIMIT).unwrap();
                Box::new(q)
            }
            other => panic!("{other}"),
        };
        // Stay until the parent has seen it (our drop must not be what makes it ready).
        std::thread::sleep(Duration::from_millis(300));
        return;
    }
    let name = unique("readiness-kinds");
    let n = |s: &str| format!("{name}-{s}");
    for what in [
        "pipe",
        "pipe-room",
        "queue",
        "joinable",
        "bytes",
        "priority",
        "priority-room",
        "semaphore",
        "event",
        "mutex",
        "full",
    ] {
        let mut pipe = Pipe::create(n("pipe").as_str(), 1024).unwrap();
        let queue = Queue::<u64>::create(n("queue").as_str(), 4).unwrap();
        let joinable = JoinableQueue::<u64>::create(n("joinable").as_str(), 4).unwrap();
        let bytes = ByteQueue::create(n("bytes").as_str(), 4, 16).unwrap();
        let priority = PriorityQueue::<u64>::create(n("priority").as_str(), 4).unwrap();
        let priority_full = PriorityQueue::<u64>::create(n("priority-full").as_str(), 1).unwrap();
        let semaphore = Semaphore::create(n("semaphore").as_str(), 0).unwrap();
        let event = Event::create(n("event").as_str()).unwrap();
        let mutex = Mutex::<u64>::create(n("mutex").as_str(), 0).unwrap();
        let full = Queue::<u64>::create(n("full").as_str(), 1).unwrap();
        let go = Event::create(n("go").as_str()).unwrap();
        full.put(1).unwrap();
        priority_full.put(1).unwrap();
        // Fills our sending direction of the pipe: a 1024-byte ring holds one message of
        // its largest size (504 bytes), not two.
        pipe.send(&[0u8; 504]).unwrap();
        assert!(pipe.try_send(&[0u8; 504]).is_err());
        let held = (what != "mutex").then(|| mutex.lock().unwrap());
        let mut kid = spawn(TEST, &format!("{name},{what}"));
        if what == "mutex" {
            let t = Instant::now();
            while mutex.try_lock().is_ok() {
                assert!(t.elapsed() < LIMIT);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut r = Readiness::new().unwrap();
        let idx = [
            ("pipe", r.recv_pipe(&pipe).unwrap()),
            ("pipe-room", r.send_pipe(&pipe, 504).unwrap()),
            ("queue", r.get(&queue).unwrap()),
            ("joinable", r.get(&joinable).unwrap()),
            ("bytes", r.get(&bytes).unwrap()),
            ("priority", r.get(&priority).unwrap()),
            ("priority-room", r.put(&priority_full).unwrap()),
            ("semaphore", r.acquire(&semaphore).unwrap()),
            ("event", r.wait(&event).unwrap()),
            ("mutex", r.lock(&mutex).unwrap()),
            ("full", r.put(&full).unwrap()),
        ];
        if what != "mutex" {
            assert_eq!(r.ready(), Vec::<usize>::new(), "{what}");
            assert!(!readable(&r, Duration::ZERO), "{what}");
            go.set();
        }
        assert!(readable(&r, LIMIT), "{what} never showed");
        let want = idx.iter().find(|(w, _)| *w == what).unwrap().1;
        assert_eq!(r.ready(), vec![want], "{what}");
        drop(held);
        assert!(wait(&mut kid, LIMIT).success(), "{what}");
        drop(r);
    }
    assert_gone(&name);
}

#[test]
fn the_error_and_the_object_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Readiness>();
    send_sync::<ReadinessError>();
    fn convert() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err(ReadinessError::TooMany {
            registered: Readiness::MAX,
            max: Readiness::MAX,
        })?
    }
    let e = convert().unwrap_err();
    assert!(e.to_string().contains("remove some"), "{e}");
    let e: anyhow::Error = ReadinessError::Unsupported.into();
    assert!(e.to_string().contains("Linux 5.16"), "{e}");
    // A Readiness moved to another thread works there (an event loop thread, say).
    let name = unique("readiness-thread");
    {
        let ev = Event::create(name.as_str()).unwrap();
        let mut r = Readiness::new().unwrap();
        let i = r.wait(&ev).unwrap();
        ev.set();
        let seen = std::thread::spawn(move || {
            assert!(readable(&r, LIMIT));
            r.ready()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![i]);
    }
    assert_gone(&name);
}
