//! L4: the typed objects users create and open by name.

pub(crate) mod array;
#[cfg(feature = "async")]
mod asynch;
pub(crate) mod byte_queue;
pub(crate) mod event;
pub(crate) mod interrupt;
pub(crate) mod iter;
pub(crate) mod janitor;
pub(crate) mod mutex;
pub(crate) mod pipe;
pub mod pod;
pub(crate) mod priority;
pub(crate) mod queue;
pub(crate) mod raw_array;
pub(crate) mod readiness;
pub(crate) mod ring;
pub(crate) mod ring_typed;
pub(crate) mod select;
pub(crate) mod semaphore;
#[cfg(feature = "serde")]
pub(crate) mod serde_ends;
pub(crate) mod survey;
pub(crate) mod topic;
pub(crate) mod topic_typed;
pub(crate) mod value;

use crate::error::{LockError, LockTimeoutError, OpenError, OwnerDied, Poisoned, TryLockError};
use crate::segment::Segment;
use crate::sync::mutex::{Locked, RawMutex, Stopped};

pub use pod::Pod;
pub(crate) use pod::{SliceBytes, type_info};

/// How long a call may wait. The clock is read only once waiting actually starts, so a call
/// that succeeds at once costs no clock read.
#[derive(Clone, Copy)]
pub(crate) enum Waiting {
    No,
    Forever,
    For(std::time::Duration),
    Until(std::time::Instant),
}

impl Waiting {
    /// `None` if the call must not wait; else the deadline (`None` inside: no limit).
    pub(crate) fn deadline(self) -> Option<Option<std::time::Instant>> {
        match self {
            Waiting::No => None,
            Waiting::Forever => Some(None),
            Waiting::For(t) => Some(crate::sync::park::deadline_after(t)),
            Waiting::Until(d) => Some(Some(d)),
        }
    }
}

/// How long [`Value::load`](crate::Value::load) keeps trying for a consistent copy before it
/// settles for the bytes as they are. Only a live process holding the writer lock that long
/// (a forged lock word, or a peer that keeps the lock) makes a load wait for it.
pub(crate) const READ_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Fails an open with `Corrupted` unless `ok`.
pub(crate) fn ensure(
    seg: &Segment,
    ok: bool,
    reason: impl FnOnce() -> String,
) -> Result<(), OpenError> {
    if ok {
        Ok(())
    } else {
        Err(OpenError::Corrupted {
            name: seg.name(),
            reason: reason(),
        })
    }
}

/// Offset of a `T` placed after a 16-byte lock word, aligned for `T` and to 64.
pub(crate) fn data_offset<T>() -> usize {
    std::mem::align_of::<T>().max(64)
}

/// A guard for a lock just taken, or the guard wrapped in `OwnerDied` (taken from a dead
/// holder: the lock is poisoned from now on) or `Poisoned` (an earlier holder panicked or
/// died, and nobody cleared the mark).
pub(crate) fn guard_result<G, E>(how: Locked, raw: RawMutex<'_>, guard: G) -> Result<G, E>
where
    E: From<OwnerDied<G>> + From<Poisoned<G>>,
{
    match how {
        Locked::OwnerDied => {
            // We hold the lock; the next holder's Acquire sees this through our unlock.
            raw.poison();
            Err(OwnerDied::new(guard).into())
        }
        Locked::Clean if raw.is_poisoned() => Err(Poisoned::new(guard).into()),
        Locked::Clean => Ok(guard),
    }
}

/// The outcome of `RawMutex::try_lock` as the public `try_lock` result.
pub(crate) fn try_lock_result<G>(
    how: Option<Locked>,
    raw: RawMutex<'_>,
    guard: impl FnOnce() -> G,
) -> Result<G, TryLockError<G>> {
    let how = how.ok_or(TryLockError::WouldBlock)?;
    guard_result(how, raw, guard())
}

/// The outcome of `RawMutex::lock` with a deadline as the public `lock_timeout` result.
pub(crate) fn timeout_lock_result<G>(
    how: Result<Locked, Stopped>,
    raw: RawMutex<'_>,
    guard: impl FnOnce() -> G,
) -> Result<G, LockTimeoutError<G>> {
    let how = how.map_err(|s| match s {
        Stopped::TimedOut => LockTimeoutError::Timeout,
        Stopped::Interrupted => LockTimeoutError::Interrupted,
    })?;
    guard_result(how, raw, guard())
}

/// The outcome of `RawMutex::lock` without a deadline as the public `lock` result.
pub(crate) fn lock_result<G>(
    how: Result<Locked, Stopped>,
    raw: RawMutex<'_>,
    guard: impl FnOnce() -> G,
) -> Result<G, LockError<G>> {
    // Without a deadline the only way to stop is an interrupt.
    let how = how.map_err(|_| LockError::Interrupted)?;
    guard_result(how, raw, guard())
}

/// Poisons the lock when a guard is dropped by a thread that is panicking, as std's
/// `MutexGuard` does: the holder may have left the data half-updated. A guard taken while
/// the thread was already panicking (inside a `Drop` during unwinding) does not poison.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoisonOnPanic {
    panicking_at_lock: bool,
}

impl PoisonOnPanic {
    /// Records the thread's state as the lock is taken.
    pub(crate) fn new() -> Self {
        PoisonOnPanic {
            panicking_at_lock: std::thread::panicking(),
        }
    }

    /// To call as the guard is dropped, before unlocking. Poisons only a lock this process
    /// holds: a forked child dropping a guard it inherited leaves its parent's lock alone,
    /// as `unlock` does.
    pub(crate) fn done(self, raw: RawMutex<'_>) {
        if !self.panicking_at_lock && std::thread::panicking() && raw.held_by_us() {
            raw.poison();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::{Region, heap};
    use std::sync::atomic::Ordering;

    /// What `MutexGuard`/`ArrayGuard` do on drop, over a heap region.
    #[derive(Debug)]
    struct Held<'a> {
        raw: RawMutex<'a>,
        poison: PoisonOnPanic,
    }

    impl<'a> Held<'a> {
        fn take(raw: RawMutex<'a>) -> Result<Self, LockError<Self>> {
            let how = raw.lock(None).expect("no deadline, no interrupt");
            let held = Held {
                raw,
                poison: PoisonOnPanic::new(),
            };
            guard_result(how, raw, held)
        }
    }

    impl Drop for Held<'_> {
        fn drop(&mut self) {
            self.poison.done(self.raw);
            self.raw.unlock();
        }
    }

    /// Takes and drops the lock inside its own `Drop`, i.e. while its thread unwinds.
    struct LocksWhileUnwinding<'a>(RawMutex<'a>);

    impl Drop for LocksWhileUnwinding<'_> {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            let _held = Held::take(self.0);
        }
    }

    #[test]
    fn a_guard_dropped_while_panicking_poisons_and_unlocks() {
        let buf = heap(16);
        let raw = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        drop(Held::take(raw).expect("clean lock"));
        assert!(!raw.is_poisoned(), "a normal drop poisoned");

        std::thread::scope(|s| {
            let r = s.spawn(|| {
                let _held = Held::take(raw).expect("clean lock");
                panic!("poisoning on purpose");
            });
            assert!(r.join().is_err());
        });
        assert!(raw.is_poisoned());
        assert_eq!(raw.holder(), None, "the panicking drop did not unlock");
        match Held::take(raw) {
            Err(LockError::Poisoned(p)) => drop(p.into_inner()),
            other => panic!("expected Poisoned, got {:?}", other.map(|_| ())),
        }
        assert!(
            raw.is_poisoned(),
            "dropping the Poisoned guard cleared the mark"
        );
        raw.clear_poison();
        drop(Held::take(raw).expect("clean after clear_poison"));

        // A lock taken and dropped inside a Drop during unwinding: not the holder's panic.
        std::thread::scope(|s| {
            let r = s.spawn(|| {
                let _x = LocksWhileUnwinding(raw);
                panic!("unwinding on purpose");
            });
            assert!(r.join().is_err());
        });
        assert!(!raw.is_poisoned(), "a guard taken while unwinding poisoned");
    }

    #[test]
    fn a_panicking_drop_of_another_process_lock_poisons_nothing() {
        // As in a forked child dropping a guard of its parent's.
        let buf = heap(16);
        let region = Region::from_words(&buf);
        let raw = RawMutex::at(region, 0).unwrap();
        region.u32_at(0).unwrap().store(1 << 30, Ordering::Relaxed);
        std::thread::scope(|s| {
            let r = s.spawn(|| {
                let _held = Held {
                    raw,
                    poison: PoisonOnPanic::new(),
                };
                panic!("dropping a guard we do not hold");
            });
            assert!(r.join().is_err());
        });
        assert!(!raw.is_poisoned());
        assert_eq!(raw.holder(), Some(1 << 30));
    }

    #[test]
    fn owner_died_poisons_for_the_next_locker() {
        let buf = heap(16);
        let raw = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        raw.lock(None).unwrap();
        let r: Result<(), LockError<()>> = guard_result(Locked::OwnerDied, raw, ());
        assert!(matches!(r, Err(LockError::OwnerDied(_))));
        raw.unlock();
        assert!(raw.is_poisoned());
        match Held::take(raw) {
            Err(LockError::Poisoned(p)) => drop(p),
            other => panic!("expected Poisoned, got {:?}", other.map(|_| ())),
        }
    }
}
