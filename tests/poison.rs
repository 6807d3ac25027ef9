//! Issue 10, item 2: poisoning across processes. A guard dropped while its thread panics
//! marks the lock poisoned in shared memory, and so does a holder's death; the next locker,
//! in any process, is told (`Poisoned`, holding the guard) until someone calls
//! `clear_poison`. For `Mutex` and for `Array`'s lock.

mod common;

use std::time::Duration;

use common::{assert_gone, role, spawn, unique, wait};
use shmq::{Array, Event, LockError, Mutex, TryLockError};

const LIMIT: Duration = Duration::from_secs(120);

/// Runs `f` on a thread of its own, which panics holding whatever `f` locked; the process
/// itself carries on (nothing catches the panic: the thread just ends with it). Only role
/// processes call this; they print no panic message.
fn panic_on_a_thread(f: impl FnOnce() + Send) {
    std::panic::set_hook(Box::new(|_| {}));
    std::thread::scope(|s| {
        let r = s.spawn(f).join();
        assert!(r.is_err(), "the thread was meant to panic");
    });
}

#[test]
fn a_panic_in_another_process_poisons_the_mutex_for_everyone() {
    let test = "a_panic_in_another_process_poisons_the_mutex_for_everyone";
    if let Some(arg) = role(test) {
        let (what, name) = arg.split_once(',').unwrap();
        let m = Mutex::<u64>::open(name).unwrap();
        match what {
            "panicker" => panic_on_a_thread(|| {
                let mut g = m.lock().unwrap();
                *g = 42; // half of an update...
                panic!("...that never completes");
            }),
            // Another process than the parent sees the mark, and leaves it.
            "checker" => match m.lock() {
                Err(LockError::Poisoned(p)) => assert_eq!(*p.into_inner(), 42),
                other => panic!("expected Poisoned, got {:?}", other.map(|g| *g)),
            },
            "clean" => assert_eq!(*m.lock().unwrap(), 43),
            _ => unreachable!(),
        }
        return; // exits normally
    }
    let name = unique("poison-m");
    {
        let m = Mutex::<u64>::create(name.as_str(), 0).unwrap();
        let run = |what: &str| {
            let mut kid = spawn(test, &format!("{what},{name}"));
            assert!(wait(&mut kid, LIMIT).success(), "{what} failed");
        };
        run("panicker");
        assert!(m.is_poisoned());
        run("checker");
        // The checker dropped its Poisoned guard: released, still poisoned.
        match m.try_lock() {
            Err(TryLockError::Poisoned(p)) => {
                let mut g = p.into_inner();
                assert_eq!(*g, 42, "not the value the panicking process wrote");
                *g = 43; // repaired
                m.clear_poison();
            }
            other => panic!("expected Poisoned, got {:?}", other.map(|g| *g)),
        }
        assert!(!m.is_poisoned());
        run("clean");
        assert_eq!(*m.lock().unwrap(), 43);
    }
    assert_gone(&name);
}

#[test]
fn a_killed_holder_poisons_the_mutex_after_owner_died() {
    let test = "a_killed_holder_poisons_the_mutex_after_owner_died";
    if let Some(name) = role(test) {
        let m = Mutex::<u64>::open(name.as_str()).unwrap();
        let held = Event::open(format!("{name}-held")).unwrap();
        let mut g = m.lock().unwrap();
        *g = 41;
        held.set();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let name = unique("poison-kill");
    {
        let m = Mutex::<u64>::create(name.as_str(), 0).unwrap();
        let held = Event::create(format!("{name}-held")).unwrap();
        let mut kid = spawn(test, &name);
        assert!(held.wait_timeout(LIMIT).unwrap(), "the child never locked");
        kid.kill().unwrap(); // SIGKILL: no destructor runs
        kid.wait().unwrap();
        // The first locker after the death is told OwnerDied, and gives up (drops it)...
        match m.lock_timeout(LIMIT) {
            Err(shmq::LockTimeoutError::OwnerDied(g)) => assert_eq!(*g.into_inner(), 41),
            other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g)),
        }
        // ...which does not lose the news: the lock stays poisoned.
        assert!(m.is_poisoned());
        let g = m.lock().or_else(LockError::into_guard).unwrap();
        assert_eq!(*g, 41);
        drop(g);
        assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
        m.clear_poison();
        assert_eq!(*m.try_lock().unwrap(), 41);
    }
    assert_gone(&name);
}

#[test]
fn array_lock_is_poisoned_by_a_panic_or_a_death_in_another_process() {
    let test = "array_lock_is_poisoned_by_a_panic_or_a_death_in_another_process";
    if let Some(arg) = role(test) {
        let (what, name) = arg.split_once(',').unwrap();
        let a = Array::<u32>::open(name).unwrap();
        match what {
            "panicker" => panic_on_a_thread(|| {
                let mut g = a.lock().unwrap();
                g[0] = 7;
                panic!("between two elements");
            }),
            "dier" => {
                let mut g = a.lock().unwrap();
                g[0] = 9;
                std::mem::forget(g);
                std::process::exit(0); // dies holding the lock
            }
            _ => unreachable!(),
        }
        return;
    }
    let name = unique("poison-a");
    {
        let a = Array::<u32>::create(name.as_str(), &[1, 2]).unwrap();
        let run = |what: &str| {
            let mut kid = spawn(test, &format!("{what},{name}"));
            assert!(wait(&mut kid, LIMIT).success(), "{what} failed");
        };
        run("panicker");
        assert!(a.is_poisoned());
        // The element calls neither report nor clear the mark.
        assert_eq!(a.get(0), Some(7));
        a.set(1, 3).unwrap();
        assert!(a.is_poisoned());
        match a.lock() {
            Err(LockError::Poisoned(p)) => assert_eq!(*p.into_inner(), [7, 3]),
            other => panic!("expected Poisoned, got {:?}", other.map(|g| g.to_vec())),
        }
        a.clear_poison();
        assert_eq!(*a.lock().unwrap(), [7, 3]);

        // A holder that dies: the element call that takes the lock over carries on, and
        // the mark it leaves tells the next `lock` (not OwnerDied: that was the takeover).
        run("dier");
        assert_eq!(a.get(0), Some(9));
        assert!(a.is_poisoned());
        assert!(matches!(a.try_lock(), Err(TryLockError::Poisoned(_))));
        a.clear_poison();
        assert!(a.try_lock().is_ok());
    }
    assert_gone(&name);
}
