//! L4: the typed objects users create and open by name.

pub(crate) mod array;
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
pub(crate) mod ring;
pub(crate) mod ring_typed;
pub(crate) mod semaphore;
#[cfg(feature = "serde")]
pub(crate) mod serde_ends;
pub(crate) mod survey;
pub(crate) mod value;

use crate::error::{LockError, LockTimeoutError, OpenError, OwnerDied, TryLockError};
use crate::segment::Segment;
use crate::sync::mutex::{Locked, Stopped};

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

/// A guard, or the guard wrapped in `OwnerDied` if the lock was taken from a dead holder.
pub(crate) fn guard_result<G>(how: Locked, guard: G) -> Result<G, OwnerDied<G>> {
    match how {
        Locked::Clean => Ok(guard),
        Locked::OwnerDied => Err(OwnerDied::new(guard)),
    }
}

/// The outcome of `RawMutex::try_lock` as the public `try_lock` result.
pub(crate) fn try_lock_result<G>(
    how: Option<Locked>,
    guard: impl FnOnce() -> G,
) -> Result<G, TryLockError<G>> {
    let how = how.ok_or(TryLockError::WouldBlock)?;
    Ok(guard_result(how, guard())?)
}

/// The outcome of `RawMutex::lock` with a deadline as the public `lock_timeout` result.
pub(crate) fn timeout_lock_result<G>(
    how: Result<Locked, Stopped>,
    guard: impl FnOnce() -> G,
) -> Result<G, LockTimeoutError<G>> {
    let how = how.map_err(|s| match s {
        Stopped::TimedOut => LockTimeoutError::Timeout,
        Stopped::Interrupted => LockTimeoutError::Interrupted,
    })?;
    Ok(guard_result(how, guard())?)
}

/// The outcome of `RawMutex::lock` without a deadline as the public `lock` result.
pub(crate) fn lock_result<G>(
    how: Result<Locked, Stopped>,
    guard: impl FnOnce() -> G,
) -> Result<G, LockError<G>> {
    // Without a deadline the only way to stop is an interrupt.
    let how = how.map_err(|_| LockError::Interrupted)?;
    guard_result(how, guard()).map_err(LockError::OwnerDied)
}
