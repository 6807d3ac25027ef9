//! Cross-process behaviour of the foundation primitives: every test here runs real OS
//! processes (this test binary re-executed in a role) on uniquely named segments, and checks
//! that nothing is left in /dev/shm afterwards.

mod common;

use std::time::Duration;

use common::{assert_gone, cpu_ticks, role, spawn, unique, wait, wait_all_ok};
use shmq::{Event, Lock, Mutex, OpenError, Semaphore, Value};

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn mutex_counter_two_processes_exact() {
    const N: u64 = 1_000_000;
    if let Some(name) = role("mutex_counter_two_processes_exact") {
        let m = Mutex::<u64>::open(name.as_str()).unwrap();
        for _ in 0..N {
            let mut g = m.lock().unwrap();
            *g += 1;
        }
        return;
    }
    let name = unique("mutex");
    {
        let m = Mutex::<u64>::create(name.as_str(), 0).unwrap();
        let mut kids = [
            spawn("mutex_counter_two_processes_exact", &name),
            spawn("mutex_counter_two_processes_exact", &name),
        ];
        wait_all_ok(&mut kids, LIMIT);
        assert_eq!(*m.lock().unwrap(), 2 * N);
    }
    assert_gone(&name);
}

#[test]
fn event_set_in_one_process_wakes_waiter_in_another() {
    if let Some(name) = role("event_set_in_one_process_wakes_waiter_in_another") {
        let (ev, ack) = name.split_once(',').unwrap();
        let ev = Event::open(ev).unwrap();
        let ack = Event::open(ack).unwrap();
        ack.set();
        assert!(
            ev.wait_timeout(Duration::from_secs(60)).unwrap(),
            "event never set"
        );
        return;
    }
    let (ev_name, ack_name) = (unique("event"), unique("event-ack"));
    {
        let ev = Event::create(ev_name.as_str()).unwrap();
        let ack = Event::create(ack_name.as_str()).unwrap();
        let mut kid = spawn(
            "event_set_in_one_process_wakes_waiter_in_another",
            &format!("{ev_name},{ack_name}"),
        );
        assert!(
            ack.wait_timeout(Duration::from_secs(60)).unwrap(),
            "child never started"
        );
        // Give the child time to go to sleep on the futex, so this tests a real wake-up.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            kid.try_wait().unwrap(),
            None,
            "child returned before the event was set"
        );
        ev.set();
        assert!(wait(&mut kid, LIMIT).success());
    }
    assert_gone(&ev_name);
    assert_gone(&ack_name);
}

#[test]
fn semaphore_of_two_bounds_four_processes() {
    const ROUNDS: u32 = 25;
    if let Some(name) = role("semaphore_of_two_bounds_four_processes") {
        let sem = Semaphore::open(format!("{name}-sem")).unwrap();
        let inside = Value::<u32>::open(format!("{name}-inside")).unwrap();
        let most = Value::<u32>::open(format!("{name}-most")).unwrap();
        let entries = Value::<u32>::open(format!("{name}-entries")).unwrap();
        for _ in 0..ROUNDS {
            assert!(
                sem.acquire_timeout(Duration::from_secs(60)).unwrap(),
                "semaphore starved"
            );
            let now = inside.fetch_add(1) + 1;
            most.fetch_max(now);
            entries.fetch_add(1);
            std::thread::sleep(Duration::from_millis(2));
            inside.fetch_sub(1);
            sem.release().unwrap();
        }
        return;
    }
    let base = unique("sem");
    {
        let sem = Semaphore::create(format!("{base}-sem"), 2).unwrap();
        let _inside = Value::<u32>::create(format!("{base}-inside"), 0).unwrap();
        let most = Value::<u32>::create(format!("{base}-most"), 0).unwrap();
        let entries = Value::<u32>::create(format!("{base}-entries"), 0).unwrap();
        let mut kids: Vec<_> = (0..4)
            .map(|_| spawn("semaphore_of_two_bounds_four_processes", &base))
            .collect();
        wait_all_ok(&mut kids, LIMIT);
        assert_eq!(entries.load(), 4 * ROUNDS);
        assert!(
            most.load() <= 2,
            "{} processes were inside at once",
            most.load()
        );
        assert_eq!(most.load(), 2, "the semaphore never let two in together");
        assert_eq!(sem.value(), 2);
    }
    assert_gone(&base);
}

#[test]
fn killed_lock_holder_gives_owner_died_and_nobody_hangs() {
    if let Some(arg) = role("killed_lock_holder_gives_owner_died_and_nobody_hangs") {
        let (what, name) = arg.split_once(',').unwrap();
        let m = Mutex::<u64>::open(format!("{name}-m")).unwrap();
        let held = Event::open(format!("{name}-held")).unwrap();
        if what == "holder" {
            let mut g = m.lock().unwrap();
            *g = 41; // half of an update that never completes
            held.set();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        } else {
            // A waiter already blocked when the holder dies must get the lock, not hang.
            assert!(held.wait_timeout(Duration::from_secs(60)).unwrap());
            match m.lock_timeout(Duration::from_secs(60)) {
                Err(shmq::LockTimeoutError::OwnerDied(g)) => {
                    let mut g = g.into_inner();
                    assert_eq!(*g, 41);
                    *g = 42; // repaired
                    m.clear_poison();
                }
                Err(e) => panic!("waiter: {e}"),
                Ok(_) => panic!("waiter was not told that the holder died"),
            }
        }
        return;
    }
    let name = unique("robust");
    {
        let m = Mutex::<u64>::create(format!("{name}-m"), 0).unwrap();
        let held = Event::create(format!("{name}-held")).unwrap();
        let test = "killed_lock_holder_gives_owner_died_and_nobody_hangs";
        let mut holder = spawn(test, &format!("holder,{name}"));
        assert!(
            held.wait_timeout(Duration::from_secs(60)).unwrap(),
            "holder never took the lock"
        );
        let mut waiter = spawn(test, &format!("waiter,{name}"));
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            matches!(m.try_lock(), Err(shmq::TryLockError::WouldBlock)),
            "lock free while holder alive"
        );
        holder.kill().unwrap(); // SIGKILL
        holder.wait().unwrap();
        assert!(wait(&mut waiter, LIMIT).success(), "waiter failed");
        // After the waiter's repair and clear_poison, the lock is clean and holds the
        // repaired value.
        let g = m
            .lock_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(*g, 42);
    }
    assert_gone(&name);
}

#[test]
fn killed_holder_of_unwatched_lock_is_recovered_by_next_locker() {
    if let Some(name) = role("killed_holder_of_unwatched_lock_is_recovered_by_next_locker") {
        let l = Lock::open(name.as_str()).unwrap();
        let g = l.lock().unwrap();
        std::mem::forget(g);
        // Exit without unlocking: the process dies holding the lock.
        std::process::exit(0);
    }
    let name = unique("lock-exit");
    {
        let l = Lock::create(name.as_str(), ()).unwrap();
        let mut kid = spawn(
            "killed_holder_of_unwatched_lock_is_recovered_by_next_locker",
            &name,
        );
        assert!(wait(&mut kid, LIMIT).success());
        assert!(matches!(
            l.try_lock(),
            Err(shmq::TryLockError::OwnerDied(_))
        ));
        // Recovered, but the death poisoned the lock: the next locker is told too (its guard
        // was released when the error was dropped), until the mark is cleared.
        assert!(matches!(l.try_lock(), Err(shmq::TryLockError::Poisoned(_))));
        l.clear_poison();
        assert!(l.try_lock().is_ok());
    }
    assert_gone(&name);
}

#[test]
fn value_opened_as_another_type_is_rejected_in_another_process() {
    if let Some(name) = role("value_opened_as_another_type_is_rejected_in_another_process") {
        match Value::<f64>::open(name.as_str()) {
            Err(OpenError::TypeMismatch {
                found, expected, ..
            }) => {
                assert!(found.contains("u64"), "{found}");
                assert!(expected.contains("f64"), "{expected}");
            }
            other => panic!("expected TypeMismatch, got {other:?}"),
        }
        assert!(matches!(
            Value::<u32>::open(name.as_str()),
            Err(OpenError::TypeMismatch { .. })
        ));
        assert!(matches!(
            Semaphore::open(name.as_str()),
            Err(OpenError::KindMismatch { .. })
        ));
        let v = Value::<u64>::open(name.as_str()).unwrap();
        assert_eq!(v.load(), 7);
        v.store(8);
        return;
    }
    let name = unique("typed");
    {
        let v = Value::<u64>::create(name.as_str(), 7).unwrap();
        let mut kid = spawn(
            "value_opened_as_another_type_is_rejected_in_another_process",
            &name,
        );
        assert!(wait(&mut kid, LIMIT).success());
        assert_eq!(v.load(), 8);
    }
    assert_gone(&name);
}

#[test]
fn open_or_create_race_between_processes_makes_one_segment() {
    if let Some(name) = role("open_or_create_race_between_processes_makes_one_segment") {
        let opts = shmq::Options::new(name.as_str()).persistent(true);
        let v = Value::<u64>::open_or_create(&opts, 0).unwrap();
        v.fetch_add(1);
        return;
    }
    let name = unique("race");
    let mut kids: Vec<_> = (0..6)
        .map(|_| {
            spawn(
                "open_or_create_race_between_processes_makes_one_segment",
                &name,
            )
        })
        .collect();
    wait_all_ok(&mut kids, LIMIT);
    let v = Value::<u64>::open(name.as_str()).unwrap();
    assert_eq!(v.load(), 6, "the processes did not all share one segment");
    shmq::Segment::unlink(name.as_str()).unwrap();
    drop(v);
    assert_gone(&name);
}

#[test]
fn seqlock_value_is_never_torn_across_processes() {
    #[derive(shmq::Pod, Clone, Copy, Debug)]
    #[repr(C)]
    struct Wide {
        words: [u64; 16],
    }
    const WRITES: u64 = 20_000;
    if let Some(name) = role("seqlock_value_is_never_torn_across_processes") {
        let v = Value::<Wide>::open(name.as_str()).unwrap();
        for i in 1..=WRITES {
            v.store(Wide { words: [i; 16] });
        }
        return;
    }
    let name = unique("wide");
    {
        let v = Value::<Wide>::create(name.as_str(), Wide { words: [0; 16] }).unwrap();
        let mut kid = spawn("seqlock_value_is_never_torn_across_processes", &name);
        let mut last = 0;
        while kid.try_wait().unwrap().is_none() {
            let w = v.load();
            assert!(w.words.iter().all(|&x| x == w.words[0]), "torn read: {w:?}");
            assert!(w.words[0] >= last, "went backwards");
            last = w.words[0];
        }
        assert!(kid.wait().unwrap().success());
        assert_eq!(v.load().words, [WRITES; 16]);
    }
    assert_gone(&name);
}

#[test]
fn blocked_waiters_sleep_instead_of_spinning() {
    if let Some(name) = role("blocked_waiters_sleep_instead_of_spinning") {
        let ev = Event::open(format!("{name}-ev")).unwrap();
        let m = Mutex::<u64>::open(format!("{name}-m")).unwrap();
        let up = Semaphore::open(format!("{name}-up")).unwrap();
        up.release().unwrap();
        assert!(ev.wait_timeout(Duration::from_secs(60)).unwrap());
        drop(
            m.lock_timeout(Duration::from_secs(60))
                .map_err(|e| e.to_string())
                .unwrap(),
        );
        return;
    }
    let name = unique("idle");
    {
        let ev = Event::create(format!("{name}-ev")).unwrap();
        let m = Mutex::<u64>::create(format!("{name}-m"), 0).unwrap();
        let up = Semaphore::create(format!("{name}-up"), 0).unwrap();
        let guard = m.lock().unwrap();
        let mut kid = spawn("blocked_waiters_sleep_instead_of_spinning", &name);
        assert!(
            up.acquire_timeout(Duration::from_secs(60)).unwrap(),
            "child never started"
        );
        // Blocked on the event for a while...
        std::thread::sleep(Duration::from_millis(100));
        let t0 = cpu_ticks(kid.id());
        std::thread::sleep(Duration::from_millis(500));
        let on_event = cpu_ticks(kid.id()) - t0;
        ev.set();
        // ...then on the mutex we hold.
        std::thread::sleep(Duration::from_millis(100));
        let t1 = cpu_ticks(kid.id());
        std::thread::sleep(Duration::from_millis(500));
        let on_mutex = cpu_ticks(kid.id()) - t1;
        drop(guard);
        assert!(wait(&mut kid, LIMIT).success());
        // A spinning waiter would burn ~50 ticks (at 100 Hz) in 500 ms; a sleeping one ~0.
        // The mutex waiter wakes every 50 ms to check that the holder lives: still ~0.
        assert!(
            on_event <= 5,
            "event waiter used {on_event} ticks in 500 ms"
        );
        assert!(
            on_mutex <= 5,
            "mutex waiter used {on_mutex} ticks in 500 ms"
        );
    }
    assert_gone(&name);
}

#[test]
fn seqlock_writer_killed_mid_store_never_leaves_a_torn_value() {
    #[derive(shmq::Pod, Clone, Copy, Debug)]
    #[repr(C)]
    struct Wide {
        words: [u64; 512],
    }
    if let Some(name) = role("seqlock_writer_killed_mid_store_never_leaves_a_torn_value") {
        let v = Value::<Wide>::open(name.as_str()).unwrap();
        let mut i = 1u64;
        loop {
            v.store(Wide { words: [i; 512] });
            i += 1;
        }
    }
    let name = unique("killwide");
    {
        let v = Value::<Wide>::create(name.as_str(), Wide { words: [0; 512] }).unwrap();
        for round in 0..10u64 {
            let mut kid = spawn(
                "seqlock_writer_killed_mid_store_never_leaves_a_torn_value",
                &name,
            );
            // Let it write for a varying while, then kill it wherever it is.
            let started = std::time::Instant::now();
            while v.load().words[0] == 0 && started.elapsed() < Duration::from_secs(60) {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(1 + round * 3));
            kid.kill().unwrap();
            kid.wait().unwrap();
            let w = v.load();
            assert!(
                w.words.iter().all(|&x| x == w.words[0]),
                "torn after kill in round {round}"
            );
            // The next writer takes over a lock the dead one may have held, and stores whole.
            v.store(Wide { words: [0; 512] });
            assert_eq!(v.load().words, [0; 512]);
        }
    }
    assert_gone(&name);
}
