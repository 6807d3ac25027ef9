//! Issue 9, item 5: a peer that forges the words of a cell in shared memory (a lock word
//! naming a live process, odd seqlock sequence words, garbage counts) must not make any call
//! hang without bound or panic. Bounded calls return their timeout error; plain calls that
//! are documented as bounded return.
//!
//! The forging is done the way a hostile process would: by writing the segment's file in
//! /dev/shm directly, not through shmq. The calls under test run either in a re-executed
//! copy of this test binary (the "victim", killed and failed if it hangs) or under an
//! in-process watchdog that aborts the test binary instead of letting it hang.
//!
//! Layouts (offsets from the payload, which the header's `payload_offset` locates):
//! - seqlock `Value` (`src/cell/seqlock.rs`): writer lock state `u32` at 0 and owner `u64` at
//!   8, `active` `u32` at 16, buffer 0's `seq` `u64` at 64, buffer 1's at `64 + stride`;
//! - `Array` and `Mutex`: lock state `u32` at 0, poison `u32` at 4, owner `u64` at 8
//!   (`src/sync/mutex.rs`);
//! - `Semaphore`: `count` `u32` at 0, `waiters` `u32` at 4 (`src/sync/semaphore.rs`);
//! - `Event`: `flag` `u32` at 0, `waiters` `u32` at 4 (`src/sync/event.rs`).

mod common;

use std::os::unix::fs::FileExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_gone, role, spawn, unique, wait};
use shmq::{
    Array, ArrayError, Event, LockTimeoutError, Mutex, OutOfBounds, Segment, Semaphore,
    TryLockError, Value, ValueError,
};

/// Longest any test here may run before its watchdog fails it.
const LIMIT: Duration = Duration::from_secs(120);
/// The bound given to every bounded call.
const SHORT: Duration = Duration::from_millis(50);

type Wide = [u64; 4];
const INIT: Wide = [1, 2, 3, 4];
/// `seqlock::stride` for a 32-byte value: the 8-byte sequence word plus the value, rounded up
/// to 64.
const STRIDE: u64 = 64;

/// Where the payload of segment `name` starts in its file.
fn payload(name: &str) -> u64 {
    Segment::inspect(name).unwrap().payload_offset
}

fn file(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap()
}

/// Writes `v` at payload offset `at` of segment `name`, as a hostile peer would.
fn forge_u32(name: &str, at: u64, v: u32) {
    file(name)
        .write_all_at(&v.to_ne_bytes(), payload(name) + at)
        .unwrap();
}

fn forge_u64(name: &str, at: u64, v: u64) {
    file(name)
        .write_all_at(&v.to_ne_bytes(), payload(name) + at)
        .unwrap();
}

fn read_u32(name: &str, at: u64) -> u32 {
    let mut b = [0; 4];
    file(name)
        .read_exact_at(&mut b, payload(name) + at)
        .unwrap();
    u32::from_ne_bytes(b)
}

/// Both seqlock buffers marked mid-write.
fn forge_odd_sequences(name: &str) {
    forge_u64(name, 64, 0x11);
    forge_u64(name, 64 + STRIDE, 0x23);
}

/// Runs the victim role of `test` with `arg` in a fresh process and checks it succeeded; a
/// victim that hangs is killed and fails the test.
fn run_victim(test: &str, arg: &str) {
    let mut kid = spawn(test, arg);
    let status = wait(&mut kid, LIMIT);
    assert!(status.success(), "victim of {test} failed: {status}");
}

/// Runs `f`, aborting the whole test binary (a failure, not a hang) if it runs past `LIMIT`.
fn watchdog<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let (done, rx) = mpsc::channel::<()>();
    let what = what.to_owned();
    let dog = thread::spawn(move || {
        if rx.recv_timeout(LIMIT) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("{what}: still running after {LIMIT:?}; aborting");
            std::process::abort();
        }
    });
    let r = f();
    drop(done);
    dog.join().unwrap();
    r
}

/// A live process that is neither this one nor a victim; killed on drop.
struct Bystander(Child);

impl Bystander {
    fn start() -> Self {
        Bystander(Command::new("sleep").arg("600").spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every writing call of a seqlock value whose lock is forged to a live process: the
/// bounded forms fail with the value handed back, nothing is written, `f` is never called.
fn assert_writers_time_out(v: &Value<Wide>) {
    let new = [9; 4];
    assert_eq!(v.try_store(new), Err(ValueError::WouldBlock(new)));
    assert_eq!(v.store_timeout(new, SHORT).unwrap_err().into_inner(), new);
    assert!(matches!(
        v.store_deadline(new, Instant::now() + SHORT),
        Err(ValueError::Timeout(_))
    ));
    assert!(matches!(v.try_swap(new), Err(ValueError::WouldBlock(_))));
    assert!(matches!(
        v.swap_timeout(new, SHORT),
        Err(ValueError::Timeout(_))
    ));
    assert!(matches!(
        v.swap_deadline(new, Instant::now() + SHORT),
        Err(ValueError::Timeout(_))
    ));
    let called = std::cell::Cell::new(false);
    let f = |x: Wide| {
        called.set(true);
        x
    };
    assert_eq!(v.try_update(f), Err(ValueError::WouldBlock(())));
    assert_eq!(v.update_timeout(f, SHORT), Err(ValueError::Timeout(())));
    assert_eq!(
        v.update_deadline(f, Instant::now() + SHORT),
        Err(ValueError::Timeout(()))
    );
    assert!(!called.get(), "update closure ran without the lock");
    assert!(matches!(
        v.try_compare_exchange(INIT, new),
        Err(ValueError::WouldBlock(_))
    ));
    assert_eq!(
        v.compare_exchange_timeout(INIT, new, SHORT)
            .unwrap_err()
            .into_inner(),
        new
    );
    assert!(matches!(
        v.compare_exchange_deadline(INIT, new, Instant::now() + SHORT),
        Err(ValueError::Timeout(_))
    ));
}

#[test]
fn value_with_forged_live_writer_lock_bounds_every_writer() {
    let test = "value_with_forged_live_writer_lock_bounds_every_writer";
    if let Some(name) = role(test) {
        let v = Value::<Wide>::open(name.as_str()).unwrap();
        assert_writers_time_out(&v);
        // Readers do not need the lock while the buffers are whole.
        assert_eq!(v.load(), INIT);
        assert_eq!(v.load_timeout(SHORT), Ok(INIT));
        return;
    }
    let name = unique("hv-lock");
    {
        let v = Value::create(name.as_str(), INIT).unwrap();
        // The lock names this (live) process; the victim is another one.
        forge_u32(&name, 0, std::process::id());
        run_victim(test, &name);
        assert_eq!(v.load(), INIT, "a timed-out writer wrote");
    }
    assert_gone(&name);
}

#[test]
fn value_with_forged_odd_sequences_alone_still_reads_and_writes() {
    let test = "value_with_forged_odd_sequences_alone_still_reads_and_writes";
    if let Some(name) = role(test) {
        let v = Value::<Wide>::open(name.as_str()).unwrap();
        // The lock is free, so the reader takes it and reads the active buffer.
        assert_eq!(v.load_timeout(SHORT), Ok(INIT));
        assert_eq!(v.load(), INIT);
        assert_eq!(v.store_timeout([5; 4], SHORT), Ok(()));
        assert_eq!(v.load(), [5; 4]);
        return;
    }
    let name = unique("hv-odd");
    {
        let v = Value::create(name.as_str(), INIT).unwrap();
        forge_odd_sequences(&name);
        run_victim(test, &name);
        assert_eq!(v.load(), [5; 4]);
    }
    assert_gone(&name);
}

#[test]
fn value_with_forged_lock_and_odd_sequences_bounds_every_reader() {
    let test = "value_with_forged_lock_and_odd_sequences_bounds_every_reader";
    if let Some(name) = role(test) {
        let v = Value::<Wide>::open(name.as_str()).unwrap();
        assert_eq!(v.load_timeout(SHORT), Err(ValueError::Timeout(())));
        assert_eq!(
            v.load_deadline(Instant::now() + SHORT),
            Err(ValueError::Timeout(()))
        );
        // A deadline already passed: one last try, then the error.
        assert_eq!(
            v.load_deadline(Instant::now()),
            Err(ValueError::Timeout(()))
        );
        // Documented: gives up after its patience and copies the active buffer as it is.
        assert_eq!(v.load(), INIT);
        assert_writers_time_out(&v);
        return;
    }
    let name = unique("hv-both");
    {
        let v = Value::create(name.as_str(), INIT).unwrap();
        forge_u32(&name, 0, std::process::id());
        forge_odd_sequences(&name);
        run_victim(test, &name);
        assert_eq!(v.load(), INIT);
    }
    assert_gone(&name);
}

#[test]
fn value_with_garbage_active_and_sequence_words_stays_usable() {
    let name = unique("hv-garbage");
    watchdog(&name, || {
        let v = Value::create(name.as_str(), INIT).unwrap();
        // `active` out of range, and the sequence words at the edge of wrapping around.
        forge_u32(&name, 16, u32::MAX);
        forge_u64(&name, 64, u64::MAX);
        forge_u64(&name, 64 + STRIDE, u64::MAX - 1);
        let _ = v.load();
        assert!(v.load_timeout(SHORT).is_ok(), "the lock is free");
        v.store([6; 4]);
        assert_eq!(v.load(), [6; 4]);
        v.store([7; 4]);
        assert_eq!(v.load(), [7; 4]);
    });
    assert_gone(&name);
}

#[test]
fn value_lock_forged_for_a_process_that_dies_is_taken_over() {
    let name = unique("hv-dies");
    watchdog(&name, || {
        let v = Value::create(name.as_str(), INIT).unwrap();
        let mut bystander = Bystander::start();
        forge_u32(&name, 0, bystander.pid());
        assert_eq!(
            v.store_timeout([8; 4], SHORT),
            Err(ValueError::Timeout([8; 4]))
        );
        bystander.kill();
        // The named holder is dead: the plain store takes the lock over and returns.
        v.store([8; 4]);
        assert_eq!(v.load(), [8; 4]);
        assert_eq!(read_u32(&name, 0), 0, "the lock was not released");
        assert_eq!(v.try_store(INIT), Ok(()));
    });
    assert_gone(&name);
}

#[test]
fn word_values_have_no_lock_to_forge() {
    let name = unique("hv-word");
    watchdog(&name, || {
        let v = Value::<u64>::create(name.as_str(), 3).unwrap();
        // The whole payload is garbage: any bits are a valid u64 and nothing waits.
        for at in (0..64).step_by(4) {
            forge_u32(&name, at, u32::MAX);
        }
        assert_eq!(v.load(), u64::MAX);
        assert_eq!(v.load_timeout(SHORT), Ok(u64::MAX));
        assert_eq!(v.try_store(4), Ok(()));
        assert_eq!(v.store_timeout(5, SHORT), Ok(()));
        assert_eq!(v.try_update(|x| x + 1), Ok(5));
        assert_eq!(v.fetch_add(1), 6);
        assert_eq!(v.try_compare_exchange(7, 8), Ok(Ok(7)));
        assert_eq!(v.compare_exchange_timeout(7, 9, SHORT), Ok(Err(8)));
    });
    assert_gone(&name);
}

#[test]
fn array_with_forged_live_lock_bounds_every_call() {
    let test = "array_with_forged_live_lock_bounds_every_call";
    if let Some(name) = role(test) {
        let a = Array::<u64>::open(name.as_str()).unwrap();
        let soon = || Instant::now() + SHORT;
        // Plain calls wait as long as the (forged) live holder lives, as documented; out of
        // bounds they answer at once. Everything else here is a bounded form.
        assert_eq!(a.get(4), None);
        let mut out = [12, 13];
        // Bounded reads.
        assert_eq!(a.get_timeout(0, SHORT), Err(ArrayError::Timeout(())));
        assert_eq!(a.get_deadline(1, soon()), Err(ArrayError::Timeout(())));
        let oob = OutOfBounds {
            start: 4,
            end: 5,
            len: 4,
        };
        assert_eq!(
            a.get_timeout(4, SHORT),
            Err(ArrayError::OutOfBounds {
                value: (),
                range: oob
            })
        );
        assert_eq!(
            a.read_into_timeout(0, &mut out, SHORT),
            Err(ArrayError::Timeout(()))
        );
        assert_eq!(
            a.read_into_deadline(0, &mut out, soon()),
            Err(ArrayError::Timeout(()))
        );
        assert_eq!(out, [12, 13], "a timed-out read wrote its output");
        // Bounded writes hand the element back.
        assert_eq!(a.try_set(0, 99), Err(ArrayError::WouldBlock(99)));
        assert_eq!(a.set_timeout(0, 98, SHORT).unwrap_err().into_inner(), 98);
        assert_eq!(a.set_deadline(0, 97, soon()), Err(ArrayError::Timeout(97)));
        assert_eq!(
            a.try_set(7, 96).unwrap_err().into_inner(),
            96,
            "out of bounds hands the element back too"
        );
        assert_eq!(
            a.try_write_from(0, &[1, 2]),
            Err(ArrayError::WouldBlock(()))
        );
        assert_eq!(
            a.write_from_timeout(0, &[1, 2], SHORT),
            Err(ArrayError::Timeout(()))
        );
        assert_eq!(
            a.write_from_deadline(0, &[1, 2], soon()),
            Err(ArrayError::Timeout(()))
        );
        assert!(matches!(a.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            a.lock_timeout(SHORT),
            Err(LockTimeoutError::Timeout)
        ));
        assert!(matches!(
            a.lock_deadline(soon()),
            Err(LockTimeoutError::Timeout)
        ));
        return;
    }
    let name = unique("ha-lock");
    {
        let a = Array::create(name.as_str(), &[10u64, 11, 12, 13]).unwrap();
        forge_u32(&name, 0, std::process::id());
        run_victim(test, &name);
        // Nothing was written; the forged word is still there.
        forge_u32(&name, 0, 0);
        assert_eq!(a.to_vec(), [10, 11, 12, 13]);
    }
    assert_gone(&name);
}

#[test]
fn array_lock_forged_for_a_process_that_dies_is_taken_over() {
    let name = unique("ha-dies");
    watchdog(&name, || {
        let a = Array::create(name.as_str(), &[1u32, 2]).unwrap();
        let mut bystander = Bystander::start();
        forge_u32(&name, 0, bystander.pid());
        assert_eq!(a.set_timeout(0, 5, SHORT), Err(ArrayError::Timeout(5)));
        bystander.kill();
        assert_eq!(a.set(0, 5), Ok(()));
        assert_eq!(a.get_timeout(0, SHORT), Ok(5));
        assert_eq!(read_u32(&name, 0), 0, "the lock was not released");
    });
    assert_gone(&name);
}

#[test]
fn array_plain_read_waits_for_a_guard_of_its_own_process() {
    // A guard held by another thread of this process: the plain read waits for the lock,
    // and sees what was written under it.
    let name = unique("ha-guard");
    watchdog(&name, || {
        let a = Array::create(name.as_str(), &[1u64]).unwrap();
        let (locked, rx) = mpsc::channel();
        thread::scope(|s| {
            let a = &a;
            s.spawn(move || {
                let mut g = a.lock().unwrap();
                g[0] = 2;
                locked.send(()).unwrap();
                thread::sleep(Duration::from_millis(1500));
                g[0] = 3;
            });
            rx.recv().unwrap();
            assert_eq!(a.get(0), Some(3), "read without the lock under a guard");
        });
    });
    assert_gone(&name);
}

#[test]
fn mutex_with_forged_words_never_hangs_a_bounded_lock() {
    let name = unique("hm");
    watchdog(&name, || {
        let m = Mutex::create(name.as_str(), 5u64).unwrap();
        let bystander = Bystander::start();
        // Held by a live process.
        forge_u32(&name, 0, bystander.pid());
        assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            m.lock_timeout(SHORT),
            Err(LockTimeoutError::Timeout)
        ));
        assert!(matches!(
            m.lock_deadline(Instant::now() + SHORT),
            Err(LockTimeoutError::Timeout)
        ));
        // Held by a live process and marked contended, with an owner word of another pid.
        forge_u32(&name, 0, bystander.pid() | 1 << 31);
        forge_u64(&name, 8, u64::MAX);
        assert!(matches!(
            m.lock_timeout(SHORT),
            Err(LockTimeoutError::Timeout)
        ));
        // Words naming no process at all: pid 0, a pid beyond pid_max, all ones. Each is
        // taken over as a dead holder's.
        for word in [1 << 31, 1 << 30, u32::MAX] {
            forge_u32(&name, 0, word);
            match m.lock_timeout(Duration::from_secs(30)) {
                Err(LockTimeoutError::OwnerDied(g)) => assert_eq!(*g.into_inner(), 5),
                Err(e) => panic!("lock word {word:#x}: {e}"),
                Ok(_) => panic!("lock word {word:#x}: taken over without OwnerDied"),
            }
        }
        // Released, and poisoned by the takeovers.
        assert!(
            matches!(m.try_lock(), Err(TryLockError::Poisoned(_))),
            "the lock was not released, or not poisoned"
        );
        m.clear_poison();
        assert!(m.try_lock().is_ok());
        // A forged poison word (at 4): any value but 0 reads as poisoned; the lock works.
        for word in [1, 2, 1 << 31, u32::MAX] {
            forge_u32(&name, 4, word);
            assert!(m.is_poisoned(), "poison word {word:#x}");
            match m.lock_timeout(SHORT) {
                Err(LockTimeoutError::Poisoned(g)) => assert_eq!(*g.into_inner(), 5),
                Err(e) => panic!("poison word {word:#x}: {e}"),
                Ok(_) => panic!("poison word {word:#x}: locked without Poisoned"),
            }
            assert_eq!(read_u32(&name, 0), 0, "the lock was not released");
        }
        m.clear_poison();
        assert_eq!(read_u32(&name, 4), 0);
    });
    assert_gone(&name);
}

#[test]
fn semaphore_with_forged_words_never_hangs_a_bounded_acquire() {
    let name = unique("hs");
    watchdog(&name, || {
        let s = Semaphore::create_bounded(name.as_str(), 0, 2).unwrap();
        // No permits, and a waiter count no release could ever satisfy.
        forge_u32(&name, 4, u32::MAX);
        assert!(!s.try_acquire());
        assert!(!s.acquire_timeout(SHORT).unwrap());
        assert!(!s.acquire_deadline(Instant::now() + SHORT).unwrap());
        assert_eq!(s.release(), Ok(()));
        assert!(s.acquire_timeout(SHORT).unwrap());
        // A count above the maximum: acquiring works, releasing is refused.
        forge_u32(&name, 0, u32::MAX);
        assert_eq!(s.value(), u32::MAX);
        assert!(s.release().is_err());
        assert!(s.try_acquire());
        assert!(s.acquire_timeout(SHORT).unwrap());
        s.acquire().unwrap();
    });
    assert_gone(&name);
}

#[test]
fn event_with_forged_words_never_hangs_a_bounded_wait() {
    let name = unique("he");
    watchdog(&name, || {
        let e = Event::create(name.as_str()).unwrap();
        // Clear, with a garbage waiter count: waits time out, `set` still wakes.
        forge_u32(&name, 4, u32::MAX);
        assert!(!e.wait_timeout(SHORT).unwrap());
        assert!(!e.wait_deadline(Instant::now() + SHORT).unwrap());
        e.set();
        assert!(e.wait_timeout(SHORT).unwrap());
        // Any non-zero flag reads as set.
        e.clear();
        forge_u32(&name, 0, 0xdead_beef);
        assert!(e.is_set());
        assert!(e.wait_timeout(SHORT).unwrap());
        e.wait().unwrap();
        e.clear();
        assert!(!e.is_set());
    });
    assert_gone(&name);
}
