//! Issue 10, item 1: every public error type of the crate is `Send + Sync + 'static`, so `?`
//! turns it into a `Box<dyn Error + Send + Sync>` and into an `anyhow::Error` — including
//! the lock errors that own a guard, whose lock stays held inside the converted error until
//! that error is dropped (on any thread), and stays poisoned after.
//!
//! The list below is every error type `src/lib.rs` exports; a new one belongs here too.

mod common;

use std::error::Error;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::{assert_gone, unique};
use shmq::{
    Array, ArrayError, ArrayGuard, AttachError, CreateError, GetError, Interrupted, JanitorError,
    JoinError, LockError, LockTimeoutError, Mutex, MutexGuard, OpenError, OpenOrCreateError,
    OutOfBounds, OwnerDied, Poisoned, PublishError, PutError, RecvError, RecvTimeoutError, Ring,
    Semaphore, SemaphoreFull, SendError, SendTimeoutError, TaskDoneError, Topic, TopicAttachError,
    TopicConfig, TopicRecvError, TryLockError, TryRecvError, TrySendError, ValueError,
};

type BoxError = Box<dyn Error + Send + Sync>;

fn assert_send_sync<T: Send + Sync + 'static>() {}

fn assert_error<T: Error + Send + Sync + 'static>() {}

#[test]
fn every_public_error_type_is_send_sync_and_static() {
    macro_rules! each {
        ($($t:ty),* $(,)?) => {$(
            assert_send_sync::<$t>();
            assert_error::<$t>();
        )*};
    }
    each!(
        CreateError,
        OpenError,
        OpenOrCreateError,
        OutOfBounds,
        OwnerDied<MutexGuard<u64>>,
        OwnerDied<ArrayGuard<u32>>,
        Poisoned<MutexGuard<u64>>,
        Poisoned<ArrayGuard<u32>>,
        TryLockError<MutexGuard<u64>>,
        TryLockError<ArrayGuard<u32>>,
        LockError<MutexGuard<u64>>,
        LockError<MutexGuard<()>>,
        LockError<ArrayGuard<u32>>,
        LockTimeoutError<MutexGuard<u64>>,
        LockTimeoutError<ArrayGuard<u32>>,
        Interrupted,
        SemaphoreFull,
        AttachError,
        TrySendError,
        SendError,
        SendTimeoutError,
        TryRecvError,
        RecvError,
        RecvTimeoutError,
        PutError,
        PutError<u64>,
        PutError<[u8; 32]>,
        GetError,
        TaskDoneError,
        JoinError,
        ValueError,
        ValueError<[u64; 4]>,
        ArrayError,
        ArrayError<u32>,
        JanitorError,
        shmq::SelectError,
        shmq::ReadinessError,
        PublishError,
        TopicRecvError,
        TopicAttachError,
    );
    // And the guards themselves, which the lock errors carry.
    assert_send_sync::<MutexGuard<u64>>();
    assert_send_sync::<ArrayGuard<[u8; 3]>>();
}

/// Applies `?` to `Err(make())` in a function returning `Result<(), Box<dyn Error + Send +
/// Sync>>`, and to a second `Err(make())` in one returning `anyhow::Result<()>`; checks both
/// keep the message, and drops each (releasing any guard inside) before the next `make()`.
macro_rules! converts {
    ($make:expr) => {{
        let e = $make;
        let msg = e.to_string();
        let boxed: Result<(), BoxError> = (move || {
            Err::<(), _>(e)?;
            Ok(())
        })();
        assert_eq!(
            boxed.expect_err("`?` passed an error through").to_string(),
            msg
        );
        let e = $make;
        let any: anyhow::Result<()> = (move || {
            Err::<(), _>(e)?;
            Ok(())
        })();
        assert_eq!(
            any.expect_err("`?` passed an error through").to_string(),
            msg
        );
    }};
}

/// Writes a lock word naming a process that cannot exist (beyond pid_max), as if its holder
/// had died: the next locker takes it over.
fn forge_dead_holder(name: &str) {
    let payload = shmq::Segment::inspect(name).unwrap().payload_offset;
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap()
        .write_all_at(&(1u32 << 30).to_ne_bytes(), payload)
        .unwrap();
}

/// Poisons `m` the std way: a thread panics holding the guard.
fn poison(m: &Mutex<u64>) {
    std::thread::scope(|s| {
        let r = s
            .spawn(|| {
                let _g = m.lock().unwrap();
                panic!("poisoning on purpose");
            })
            .join();
        assert!(r.is_err());
    });
}

#[test]
fn every_public_error_converts_with_question_mark() {
    let base = unique("errs");
    {
        let n = |s: &str| format!("{base}-{s}");

        // Select and Readiness.
        let e = shmq::Event::create(n("sel").as_str()).unwrap();
        let mut sel = shmq::Select::new().unwrap();
        sel.wait(&e);
        converts!(sel.try_select().unwrap_err());
        drop(sel);
        converts!(shmq::ReadinessError::TooMany {
            registered: 125,
            max: 125
        });

        // Creating and opening.
        let _taken = Mutex::<u64>::create(n("m").as_str(), 7).unwrap();
        converts!(Mutex::<u64>::create(n("m").as_str(), 0).unwrap_err());
        converts!(Mutex::<u64>::open(n("missing").as_str()).unwrap_err());
        converts!(Mutex::<u64>::open_or_create("no/slashes", 0).unwrap_err());
        let a = Array::<u32>::create(n("a").as_str(), &[1, 2, 3]).unwrap();
        converts!(a.set(3, 0).unwrap_err());

        // The lock errors, without a guard...
        let m = Mutex::<u64>::create(n("lock").as_str(), 7).unwrap();
        let held = m.lock().unwrap();
        converts!(m.try_lock().unwrap_err());
        converts!(m.lock_timeout(Duration::from_millis(1)).unwrap_err());
        drop(held);
        converts!(LockError::<MutexGuard<u64>>::Interrupted);

        // ... and with one: OwnerDied (a forged dead holder) and Poisoned.
        converts!({
            forge_dead_holder(&n("lock"));
            match m.try_lock() {
                Err(TryLockError::OwnerDied(e)) => e,
                other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
            }
        });
        converts!({
            forge_dead_holder(&n("lock"));
            m.lock_timeout(Duration::from_secs(30)).unwrap_err()
        });
        converts!(m.lock().unwrap_err()); // poisoned by the takeovers
        converts!(match m.lock() {
            Err(LockError::Poisoned(e)) => e,
            other => panic!("expected Poisoned, got {:?}", other.map(|_| ())),
        });
        converts!(m.try_lock().unwrap_err());
        let ga = a.lock().unwrap();
        converts!(a.try_lock().unwrap_err());
        converts!(a.try_set(0, 9).unwrap_err());
        converts!(a.lock_timeout(Duration::from_millis(1)).unwrap_err());
        drop(ga);
        converts!({
            forge_dead_holder(&n("a"));
            a.lock().unwrap_err()
        });
        converts!(match a.try_lock() {
            Err(TryLockError::Poisoned(e)) => e,
            other => panic!("expected Poisoned, got {:?}", other.map(|_| ())),
        });
        converts!({
            forge_dead_holder(&n("a"));
            match a.lock() {
                Err(LockError::OwnerDied(e)) => e,
                other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
            }
        });
        converts!(a.get_timeout(5, Duration::from_millis(1)).unwrap_err());

        // The other objects' errors.
        converts!(Interrupted);
        let sem = Semaphore::create_bounded(n("sem").as_str(), 1, 1).unwrap();
        converts!(sem.release().unwrap_err());
        let ring = Ring::create(n("ring").as_str(), 4096).unwrap();
        let _producer = ring.producer().unwrap();
        converts!(ring.producer().unwrap_err());
        converts!(TrySendError::Full);
        converts!(SendError::Disconnected);
        converts!(SendTimeoutError::Timeout);
        converts!(TryRecvError::Empty);
        converts!(RecvError::Disconnected);
        converts!(RecvTimeoutError::Timeout);
        converts!(PutError::Full(5u64));
        converts!(PutError::<()>::TooLarge { len: 9, max: 8 });
        converts!(GetError::Empty);
        converts!(TaskDoneError);
        converts!(JoinError::Timeout { unfinished: 1 });
        converts!(ValueError::WouldBlock([1u64, 2, 3, 4]));
        converts!(ValueError::<()>::Timeout(()));
        converts!(JanitorError::Interrupted);

        // The topic's: made for real where a call gives them.
        let topic = Topic::create_with(n("topic").as_str(), &TopicConfig::new(2, 8).subscribers(1))
            .unwrap();
        let mut sub = topic.subscriber().unwrap();
        converts!(topic.subscriber().unwrap_err());
        let mut publisher = topic.publisher().unwrap();
        converts!(publisher.try_publish(&[0; 9]).unwrap_err());
        publisher.publish(b"1").unwrap();
        publisher.publish(b"2").unwrap();
        converts!(publisher.try_publish(b"3").unwrap_err());
        drop(publisher);
        drop(sub.recv().unwrap());
        drop(sub.recv().unwrap());
        converts!(sub.try_recv().unwrap_err());
        converts!(TopicRecvError::Lagged(3));
    }
    assert_gone(&base);
}

#[test]
fn a_converted_lock_error_keeps_its_guard_until_dropped_on_any_thread() {
    let name = unique("errs-guard");
    {
        let m = Mutex::<u64>::create(name.as_str(), 7).unwrap();
        let other = Mutex::<u64>::open(name.as_str()).unwrap();
        poison(&m);

        let locked_and_bailed = || -> Result<(), BoxError> {
            let mut g = m.lock()?; // Poisoned: `?` hands the guard-carrying error up
            *g += 1;
            Ok(())
        };
        let boxed = locked_and_bailed().unwrap_err();
        // The boxed error owns the guard: the lock is still held (by this process).
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        // 'static: it downcasts back to the concrete type, guard and all.
        let e = boxed
            .downcast::<LockError<MutexGuard<u64>>>()
            .expect("downcast to the lock error");
        let mut e = match *e {
            LockError::Poisoned(p) => p,
            other => panic!("expected Poisoned, got {other:?}"),
        };
        assert_eq!(**e.get_ref(), 7);
        **e.get_mut() = 8;
        // Send: dropped on another thread, it unlocks there (the lock is the process's).
        std::thread::spawn(move || drop(e)).join().unwrap();
        // Released, and still poisoned: dropping the error cleared nothing.
        match other.try_lock() {
            Err(TryLockError::Poisoned(p)) => assert_eq!(*p.into_inner(), 8),
            other => panic!("expected Poisoned, got {:?}", other.map(|_| ())),
        }

        // The same through anyhow, then `into_guard` to go on regardless.
        let via_anyhow = || -> anyhow::Result<u64> { Ok(*m.lock()?) };
        let e = via_anyhow().unwrap_err();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(e);
        let g = m.lock().or_else(LockError::into_guard).unwrap();
        assert_eq!(*g, 8);
        m.clear_poison();
        drop(g);
        assert_eq!(*other.lock().unwrap(), 8);
    }
    assert_gone(&name);
}

/// The serde ends' errors (feature `serde`), made for real: a value too large for the ring,
/// and a message that is not the receiver's type.
#[cfg(feature = "serde")]
#[test]
fn the_serde_errors_convert_with_question_mark_too() {
    use shmq::{
        DecodeError, EncodeError, SerdeReceiver, SerdeRecvError, SerdeSendError, SerdeSender,
    };
    assert_send_sync::<DecodeError>();
    assert_error::<DecodeError>();
    assert_send_sync::<EncodeError>();
    assert_error::<EncodeError>();
    assert_error::<SerdeSendError<SendError>>();
    assert_error::<SerdeSendError<PutError>>();
    assert_error::<SerdeRecvError<RecvError>>();
    assert_error::<SerdeRecvError<GetError>>();

    let name = unique("errs-serde");
    {
        let mut rx = SerdeReceiver::<(u8, String)>::create(name.as_str(), 4096).unwrap();
        let mut tx = SerdeSender::<(u8, String)>::open(name.as_str()).unwrap();
        converts!(tx.send(&(1, "x".repeat(1 << 20))).unwrap_err());
        // Bytes that are no (u8, String): a length prefix promising more than there is.
        let mut raw = SerdeSender::<Vec<u8>>::new(tx.into_inner());
        raw.send(&vec![1, 200]).unwrap();
        raw.send(&vec![1, 200]).unwrap();
        converts!(rx.try_recv().unwrap_err());
    }
    assert_gone(&name);
}
