//! Error types, one per operation.
//!
//! Every one is `Send + Sync + 'static` (the generic ones when their parameter is), so `?`
//! turns any of them into a `Box<dyn Error + Send + Sync>` or an `anyhow::Error`;
//! `tests/errors_send_sync.rs` checks each.

use std::fmt;
use std::io;

/// Creating a segment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The name breaks the naming rule.
    #[error(
        "invalid segment name {name:?}: {reason}; use 1-200 characters of A-Z a-z 0-9 . _ - not starting with '.'"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// A segment (or other file) of that name exists already.
    #[error("segment {name:?} already exists; open it, or remove it with `shmq rm {name}`")]
    AlreadyExists {
        /// The segment's name.
        name: String,
    },
    /// The filesystem behind the segment (tmpfs for /dev/shm) has no room for it.
    #[error(
        "no space for segment {name:?} of {size} bytes: /dev/shm (or the file's filesystem) is full or too small"
    )]
    NoSpace {
        /// The segment's name.
        name: String,
        /// Bytes asked for.
        size: u64,
    },
    /// The caller may not create the file.
    #[error("permission denied creating segment {name:?}")]
    PermissionDenied {
        /// The segment's name.
        name: String,
    },
    /// A size or count asked for is out of range.
    #[error("invalid size for segment {name:?}: {reason}")]
    InvalidSize {
        /// The segment's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another OS error.
    #[error("creating segment {name:?}: {source}")]
    Os {
        /// The segment's name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Opening (attaching to) an existing segment failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The name breaks the naming rule.
    #[error(
        "invalid segment name {name:?}: {reason}; use 1-200 characters of A-Z a-z 0-9 . _ - not starting with '.'"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// No segment of that name exists.
    #[error("no segment named {name:?}; is the creating process running?")]
    NotFound {
        /// The segment's name.
        name: String,
    },
    /// The caller may not open the file.
    #[error("permission denied opening segment {name:?}")]
    PermissionDenied {
        /// The segment's name.
        name: String,
    },
    /// The path is a symbolic link; shmq never follows one.
    #[error("segment {name:?} is a symbolic link, which shmq refuses to follow")]
    Symlink {
        /// The segment's name.
        name: String,
    },
    /// The file exists but is not a shmq segment.
    #[error("{name:?} is not a shmq segment (bad magic number)")]
    NotShmq {
        /// The segment's name.
        name: String,
    },
    /// Made by an incompatible version of shmq.
    #[error("segment {name:?} has layout version {found}, this shmq reads version {expected}")]
    VersionMismatch {
        /// The segment's name.
        name: String,
        /// Version in the segment.
        found: u32,
        /// Version this library writes.
        expected: u32,
    },
    /// The segment holds another kind of object (a Value opened as a Semaphore, say).
    #[error("segment {name:?} holds a {found}, not a {expected}")]
    KindMismatch {
        /// The segment's name.
        name: String,
        /// Kind found in the segment.
        found: String,
        /// Kind asked for.
        expected: String,
    },
    /// The object admits a fixed number of peers, and a live process already holds the place.
    #[error("segment {name:?} already has its peer attached (pid {pid})")]
    Busy {
        /// The segment's name.
        name: String,
        /// The pid holding the place.
        pid: u32,
    },
    /// Every place for an attached process is held by a live process.
    #[error("segment {name:?} already has {max} processes attached; close some handles first")]
    TooManyProcesses {
        /// The segment's name.
        name: String,
        /// How many processes (handles) may be attached at once.
        max: usize,
    },
    /// The payload type differs between creator and opener: another layout (see
    /// [`crate::pod`]), size or alignment, or another tag.
    #[error(
        "segment {name:?} was created for {found}, opened as {expected}; both processes must use the same layout (or tag)"
    )]
    TypeMismatch {
        /// The segment's name.
        name: String,
        /// The creator's type: its layout text or tag, size and alignment.
        found: String,
        /// The opener's type, the same way.
        expected: String,
    },
    /// The header or the kind-specific area is inconsistent.
    #[error("segment {name:?} is corrupted: {reason}")]
    Corrupted {
        /// The segment's name.
        name: String,
        /// What check failed.
        reason: String,
    },
    /// The creator is still initializing the segment after the open timeout.
    #[error(
        "segment {name:?} is still being initialized by its creator (pid {pid}; 0 if not yet recorded) after the open timeout; if that creator is gone, remove it with `shmq rm {name}`"
    )]
    InitTimeout {
        /// The segment's name.
        name: String,
        /// The creator's pid (0 if not yet recorded).
        pid: u32,
    },
    /// The creator died before it finished initializing the segment.
    #[error(
        "segment {name:?} was abandoned: its creator (pid {pid}) died during initialization; remove it with `shmq rm {name}`"
    )]
    Abandoned {
        /// The segment's name.
        name: String,
        /// The dead creator's pid.
        pid: u32,
    },
    /// An [`Interrupter`](crate::Interrupter) the thread watches fired while `open` waited
    /// for the creator to finish.
    #[error("interrupted while waiting for segment {name:?} to be ready")]
    Interrupted {
        /// The segment's name.
        name: String,
    },
    /// Another process held the segment's use lock exclusively (it was removing the
    /// segment) for the whole open timeout.
    #[error(
        "segment {name:?} is being removed by another process; create it anew or open it again"
    )]
    Removing {
        /// The segment's name.
        name: String,
    },
    /// Another OS error.
    #[error("opening segment {name:?}: {source}")]
    Os {
        /// The segment's name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// `open_or_create` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenOrCreateError {
    /// Creating failed (for a reason other than "it exists").
    #[error(transparent)]
    Create(#[from] CreateError),
    /// The segment existed, and opening it failed.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// An offset or index outside an object's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range {start}..{end} is out of bounds for length {len}")]
pub struct OutOfBounds {
    /// First position asked for.
    pub start: usize,
    /// One past the last position asked for.
    pub end: usize,
    /// The object's length.
    pub len: usize,
}

/// A lock was acquired from a holder that died while holding it.
///
/// The guard inside gives access all the same; the protected data may be half-updated by the
/// dead holder, so check or repair it before relying on it. Like `EOWNERDEAD` for robust
/// pthread mutexes. Only the first locker after the death is told `OwnerDied`; taking the lock
/// over also *poisons* it, so every later locker, in any process, gets [`Poisoned`] until
/// someone calls `clear_poison` ([`Mutex::clear_poison`](crate::Mutex::clear_poison),
/// [`Array::clear_poison`](crate::Array::clear_poison)) — the way a robust pthread mutex
/// unlocked without `pthread_mutex_consistent` turns `ENOTRECOVERABLE`, except that a poisoned
/// lock still works. So the news is not lost when the first locker gives up, is killed, or
/// hands this error up with `?`.
///
/// # Converting with `?`
/// `OwnerDied` (and every lock error holding it) is an `Error + Send + Sync + 'static` whenever
/// the guard is, which [`MutexGuard`](crate::MutexGuard) and [`ArrayGuard`](crate::ArrayGuard)
/// are for `Send + Sync` data: `?` turns it into a `Box<dyn Error + Send + Sync>` or an
/// `anyhow::Error`. The boxed error still owns the guard, so the lock stays held until that
/// error is dropped (never leaked, never released behind your back), and the poison mark
/// stays in shared memory after that.
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        OwnerDied { guard }
    }

    /// The guard: the lock is held.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// Borrows the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// Mutably borrows the guard.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the previous lock holder died while holding the lock; the data may be inconsistent: check it, then call clear_poison()",
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// A lock was acquired, but it is *poisoned*: a holder, in this or another process, panicked
/// while holding it (its guard was dropped during unwinding), or died holding it (the first
/// locker after that got [`OwnerDied`]), and nobody has cleared the mark since.
///
/// Like std's `PoisonError`: the guard inside gives access all the same
/// ([`Poisoned::into_inner`]); the data may be half-updated, so check or repair it, then call
/// `clear_poison` ([`Mutex::clear_poison`](crate::Mutex::clear_poison),
/// [`Array::clear_poison`](crate::Array::clear_poison)) so later lockers get a plain guard.
/// The mark lives in shared memory beside the lock word, so every process learns of it, and
/// dropping this error (or its guard) leaves it set. It converts with `?` as [`OwnerDied`]
/// does (see there); the boxed error owns the guard and so keeps the lock until dropped.
pub struct Poisoned<G> {
    guard: G,
}

impl<G> Poisoned<G> {
    pub(crate) fn new(guard: G) -> Self {
        Poisoned { guard }
    }

    /// The guard: the lock is held.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// Borrows the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// Mutably borrows the guard.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for Poisoned<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poisoned").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for Poisoned<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the lock is poisoned: a holder panicked or died while holding it; the data may be inconsistent: check it, then call clear_poison()",
        )
    }
}

impl<G> std::error::Error for Poisoned<G> {}

/// `try_lock` did not get the lock cleanly.
///
/// `Send + Sync + 'static` when the guard `G` is, so `?` converts it (see [`OwnerDied`]).
#[non_exhaustive]
pub enum TryLockError<G> {
    /// Another live holder has it.
    WouldBlock,
    /// Acquired, but the previous holder died holding it.
    OwnerDied(OwnerDied<G>),
    /// Acquired, but the lock is poisoned.
    Poisoned(Poisoned<G>),
}

/// `lock` did not get the lock cleanly.
///
/// `Send + Sync + 'static` when the guard `G` is, so `?` converts it (see [`OwnerDied`]).
#[non_exhaustive]
pub enum LockError<G> {
    /// An [`Interrupter`](crate::Interrupter) this thread watches fired while it waited.
    Interrupted,
    /// Acquired, but the previous holder died holding it.
    OwnerDied(OwnerDied<G>),
    /// Acquired, but the lock is poisoned.
    Poisoned(Poisoned<G>),
}

/// `lock_timeout` / `lock_deadline` did not get the lock cleanly.
///
/// `Send + Sync + 'static` when the guard `G` is, so `?` converts it (see [`OwnerDied`]).
#[non_exhaustive]
pub enum LockTimeoutError<G> {
    /// A live holder kept it past the deadline.
    Timeout,
    /// An [`Interrupter`](crate::Interrupter) this thread watches fired while it waited.
    Interrupted,
    /// Acquired, but the previous holder died holding it.
    OwnerDied(OwnerDied<G>),
    /// Acquired, but the lock is poisoned.
    Poisoned(Poisoned<G>),
}

macro_rules! lock_error_impls {
    ($t:ident, $($other:ident => $msg:expr),+) => {
        impl<G> $t<G> {
            /// The guard, if the lock was acquired after all (`OwnerDied` or `Poisoned`:
            /// the data may be inconsistent); otherwise the error back. The guard is the
            /// error's own, so nothing is unlocked or leaked on the way:
            /// `m.lock().or_else(LockError::into_guard)?` (or `try_lock` with `TryLockError`, ...)
            /// goes on whatever poisoned the lock.
            ///
            /// # Errors
            /// `self` when no lock is held (the other variants).
            pub fn into_guard(self) -> Result<G, Self> {
                match self {
                    $t::OwnerDied(e) => Ok(e.into_inner()),
                    $t::Poisoned(e) => Ok(e.into_inner()),
                    other => Err(other),
                }
            }
        }
        impl<G> fmt::Debug for $t<G> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($t::$other => f.write_str(stringify!($other)),)+
                    $t::OwnerDied(e) => fmt::Debug::fmt(e, f),
                    $t::Poisoned(e) => fmt::Debug::fmt(e, f),
                }
            }
        }
        impl<G> fmt::Display for $t<G> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($t::$other => f.write_str($msg),)+
                    $t::OwnerDied(e) => fmt::Display::fmt(e, f),
                    $t::Poisoned(e) => fmt::Display::fmt(e, f),
                }
            }
        }
        impl<G> std::error::Error for $t<G> {}
        impl<G> From<OwnerDied<G>> for $t<G> {
            fn from(e: OwnerDied<G>) -> Self {
                $t::OwnerDied(e)
            }
        }
        impl<G> From<Poisoned<G>> for $t<G> {
            fn from(e: Poisoned<G>) -> Self {
                $t::Poisoned(e)
            }
        }
    };
}
lock_error_impls!(
    TryLockError,
    WouldBlock => "the lock is held by another live process or thread"
);
lock_error_impls!(LockError, Interrupted => INTERRUPTED_LOCK);
lock_error_impls!(
    LockTimeoutError,
    Timeout => "timed out waiting for the lock",
    Interrupted => INTERRUPTED_LOCK
);

const INTERRUPTED_LOCK: &str = "interrupted while waiting for the lock";

/// A blocking call was ended by an [`Interrupter`](crate::Interrupter) that the thread
/// watches (or the process-wide one), for calls whose other outcomes need no error type:
/// [`Event::wait`](crate::Event::wait), [`Semaphore::acquire`](crate::Semaphore::acquire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted while waiting")]
pub struct Interrupted;

/// `Semaphore::release` would raise the count above the semaphore's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("semaphore released too many times: its value is already at the maximum {max}")]
pub struct SemaphoreFull {
    /// The semaphore's maximum value.
    pub max: u32,
}

/// Claiming a ring's producer or consumer role failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// A live process already holds that role.
    #[error("the ring's {role} role is held by live process {pid}")]
    RoleTaken {
        /// "producer" or "consumer".
        role: &'static str,
        /// The holder's pid.
        pid: u32,
    },
    /// The role was held before and let go (or its holder died), and a fresh role was asked
    /// for ([`Ring::first_producer`](crate::Ring::first_producer)): the ring already carried
    /// a stream.
    #[error("the ring's {role} role was already used by an earlier process")]
    RoleUsed {
        /// "producer" or "consumer".
        role: &'static str,
    },
    /// The ring's indices are inconsistent.
    #[error("ring is corrupted: {reason}")]
    Corrupted {
        /// What check failed.
        reason: String,
    },
}

macro_rules! ring_errors {
    ($(#[$doc:meta] $name:ident { $($(#[$vdoc:meta])* $variant:ident $({ $($field:ident : $ty:ty),* })? => $msg:literal),* $(,)? })*) => {
        $(
            #[$doc]
            #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
            #[non_exhaustive]
            pub enum $name {
                $(
                    $(#[$vdoc])*
                    #[error($msg)]
                    $variant $({ $(#[allow(missing_docs)] $field: $ty),* })?,
                )*
            }
        )*
    };
}

ring_errors! {
    /// `try_send` / `try_reserve` failed; nothing was sent.
    TrySendError {
        /// No room now; the consumer has not caught up.
        Full => "ring is full",
        /// Larger than the ring's maximum message size.
        TooLarge { len: usize, max: usize } => "message of {len} bytes exceeds the ring's maximum of {max}",
        /// The consumer has let go of the ring (or its process died).
        Disconnected => "the receiving end is disconnected",
        /// Shared memory failed a check.
        Corrupted { reason: String } => "ring is corrupted: {reason}",
    }
    /// `send` / `reserve` failed; nothing was sent.
    SendError {
        /// Larger than the ring's maximum message size.
        TooLarge { len: usize, max: usize } => "message of {len} bytes exceeds the ring's maximum of {max}",
        /// The consumer has let go of the ring (or its process died).
        Disconnected => "the receiving end is disconnected",
        /// An [`Interrupter`](crate::Interrupter) this thread watches fired.
        Interrupted => "interrupted while waiting for room in the ring",
        /// Shared memory failed a check.
        Corrupted { reason: String } => "ring is corrupted: {reason}",
    }
    /// `send_timeout` / `reserve_timeout` failed; nothing was sent.
    SendTimeoutError {
        /// Still no room when the timeout passed.
        Timeout => "timed out waiting for room in the ring",
        /// Larger than the ring's maximum message size.
        TooLarge { len: usize, max: usize } => "message of {len} bytes exceeds the ring's maximum of {max}",
        /// The consumer has let go of the ring (or its process died).
        Disconnected => "the receiving end is disconnected",
        /// An [`Interrupter`](crate::Interrupter) this thread watches fired.
        Interrupted => "interrupted while waiting for room in the ring",
        /// Shared memory failed a check.
        Corrupted { reason: String } => "ring is corrupted: {reason}",
    }
    /// `try_recv` got no message.
    TryRecvError {
        /// Nothing waiting now.
        Empty => "ring is empty",
        /// The producer let go (or died) and every message it sent has been received.
        Disconnected => "the sending end is disconnected and the ring is drained",
        /// Shared memory failed a check.
        Corrupted { reason: String } => "ring is corrupted: {reason}",
    }
    /// `recv` got no message.
    RecvError {
        /// The producer let go (or died) and every message it sent has been received.
        Disconnected => "the sending end is disconnected and the ring is drained",
        /// An [`Interrupter`](crate::Interrupter) this thread watches fired.
        Interrupted => "interrupted while waiting for a message",
        /// Shared memory failed a check.
        Corrupted { reason: String } => "ring is corrupted: {reason}",
    }
    /// `recv_timeout` got no message.
    RecvTimeoutError {
        /// Nothing arrived before the timeout.
        Timeout => "timed out waiting for a message",
        /// The producer let go (or died) and every message it sent has been received.
        Disconnected => "the sending end is disconnected and the ring is drained",
        /// An [`Interrupter`](crate::Interrupter) this thread watches fired.
        Interrupted => "interrupted while waiting for a message",
        /// Shared memory failed a check.
        Corrupted { reason: String } => "ring is corrupted: {reason}",
    }
}

/// A put failed; the item is handed back in the variant (`PutError<()>` for byte queues).
#[non_exhaustive]
pub enum PutError<T = ()> {
    /// `try_put`: no room now.
    Full(T),
    /// `put_timeout`: still no room when the timeout passed.
    Timeout(T),
    /// The queue was closed; no more items are accepted. Gets see the same state, once
    /// drained, as [`GetError::Closed`].
    Closed(T),
    /// The queue is full and no process that gets from it is left: every handle opened for
    /// getting was dropped or its process died. Gets see the same state (the other way
    /// round) as [`GetError::Disconnected`].
    Disconnected(T),
    /// An [`Interrupter`](crate::Interrupter) this thread watches fired while it waited.
    Interrupted(T),
    /// A byte message larger than the queue's maximum.
    TooLarge {
        /// The message's length.
        len: usize,
        /// The queue's maximum message size.
        max: usize,
    },
    /// Shared memory failed a check (a peer wrote garbage); nothing was put.
    Corrupted {
        /// The item.
        value: T,
        /// What check failed.
        reason: String,
    },
}

impl<T> PutError<T> {
    /// The item that was not put, if the error carries it.
    pub fn into_inner(self) -> Option<T> {
        match self {
            PutError::Full(v)
            | PutError::Timeout(v)
            | PutError::Closed(v)
            | PutError::Disconnected(v)
            | PutError::Interrupted(v) => Some(v),
            PutError::Corrupted { value, .. } => Some(value),
            PutError::TooLarge { .. } => None,
        }
    }

    /// The same error without the item.
    pub fn without_value(&self) -> PutError {
        match self {
            PutError::Full(_) => PutError::Full(()),
            PutError::Timeout(_) => PutError::Timeout(()),
            PutError::Closed(_) => PutError::Closed(()),
            PutError::Disconnected(_) => PutError::Disconnected(()),
            PutError::Interrupted(_) => PutError::Interrupted(()),
            PutError::TooLarge { len, max } => PutError::TooLarge {
                len: *len,
                max: *max,
            },
            PutError::Corrupted { reason, .. } => PutError::Corrupted {
                value: (),
                reason: reason.clone(),
            },
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("queue is full"),
            PutError::Timeout(_) => f.write_str("timed out waiting for room in the queue"),
            PutError::Closed(_) => f.write_str("queue is closed"),
            PutError::Disconnected(_) => {
                f.write_str("queue is full and every process getting from it is gone")
            }
            PutError::Interrupted(_) => f.write_str("interrupted while waiting for room"),
            PutError::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes exceeds the queue's maximum of {max}"
                )
            }
            PutError::Corrupted { reason, .. } => write!(f, "queue is corrupted: {reason}"),
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Timeout(_) => f.write_str("Timeout(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Disconnected(_) => f.write_str("Disconnected(..)"),
            PutError::Interrupted(_) => f.write_str("Interrupted(..)"),
            PutError::TooLarge { len, max } => f
                .debug_struct("TooLarge")
                .field("len", len)
                .field("max", max)
                .finish(),
            PutError::Corrupted { reason, .. } => f
                .debug_struct("Corrupted")
                .field("reason", reason)
                .finish_non_exhaustive(),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

impl<T> PartialEq for PutError<T> {
    /// Compares the kind of error (and sizes or reason), not the items.
    fn eq(&self, other: &Self) -> bool {
        self.without_value().kind_eq(&other.without_value())
    }
}

impl PutError {
    fn kind_eq(&self, other: &PutError) -> bool {
        match (self, other) {
            (PutError::Full(()), PutError::Full(()))
            | (PutError::Timeout(()), PutError::Timeout(()))
            | (PutError::Closed(()), PutError::Closed(()))
            | (PutError::Disconnected(()), PutError::Disconnected(()))
            | (PutError::Interrupted(()), PutError::Interrupted(())) => true,
            (PutError::TooLarge { len: a, max: b }, PutError::TooLarge { len: c, max: d }) => {
                (a, b) == (c, d)
            }
            (PutError::Corrupted { reason: a, .. }, PutError::Corrupted { reason: b, .. }) => {
                a == b
            }
            _ => false,
        }
    }
}

/// A get failed; nothing was taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// `try_get`: nothing waiting now.
    #[error("queue is empty")]
    Empty,
    /// `get_timeout`: still nothing when the timeout passed.
    #[error("timed out waiting for an item")]
    Timeout,
    /// The queue was closed ([`Queue::close`](crate::Queue::close)) and every item put
    /// before has been taken: nothing more will ever come. The same state a put sees as
    /// [`PutError::Closed`].
    #[error("the queue is closed and drained")]
    Closed,
    /// The queue is empty and every handle opened for putting was dropped or its process
    /// died ([`Side`](crate::Side)). Not final: a process that opens the queue to put later
    /// makes gets succeed again. The same state a put sees (the other way round) as
    /// [`PutError::Disconnected`].
    #[error("the queue is empty and every process putting to it is gone")]
    Disconnected,
    /// An [`Interrupter`](crate::Interrupter) this thread watches fired while it waited.
    #[error("interrupted while waiting for an item")]
    Interrupted,
    /// Shared memory failed a check (a peer wrote garbage).
    #[error("queue is corrupted: {reason}")]
    Corrupted {
        /// What check failed.
        reason: String,
    },
}

/// `JoinableQueue::task_done` was called more times than items were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("task_done() called more times than items were taken from the queue")]
pub struct TaskDoneError;

/// `JoinableQueue::join` (or its `try_`/`_timeout`/`_deadline` forms) returned before every
/// item was marked done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// `try_join`: tasks are still unfinished now.
    #[error("{unfinished} task(s) still unfinished")]
    Unfinished {
        /// Items put and not yet marked done.
        unfinished: u64,
    },
    /// The timeout passed.
    #[error("timed out waiting for {unfinished} unfinished task(s) to be marked done")]
    Timeout {
        /// Items put and not yet marked done when the timeout passed.
        unfinished: u64,
    },
    /// Tasks were taken by processes that died before marking them done, so they never
    /// will be: `join` would wait forever. See
    /// [`JoinableQueue::lost_tasks`](crate::JoinableQueue::lost_tasks).
    #[error(
        "{lost} task(s) were taken by processes that died before task_done(); {unfinished} unfinished in all"
    )]
    Lost {
        /// Tasks lost with dead takers (since the queue was created or last cleared).
        lost: u64,
        /// Items put and not yet marked done.
        unfinished: u64,
    },
    /// An [`Interrupter`](crate::Interrupter) this thread watches fired while it waited.
    #[error("interrupted while waiting for unfinished tasks")]
    Interrupted,
}

/// A bounded [`Value`](crate::Value) call (`try_*`, `*_timeout`, `*_deadline`) did not get
/// its turn; nothing was stored. Store-like calls hand the value back in the variant
/// (`ValueError<()>` for loads and updates).
///
/// Only values over 8 bytes (the seqlock ones) can fail this way: their writes take a writer
/// lock, which a live process, or a peer that forged the lock word to name one, may keep.
#[non_exhaustive]
pub enum ValueError<T = ()> {
    /// `try_*`: another live process or thread holds the writer lock now.
    WouldBlock(T),
    /// `*_timeout` / `*_deadline`: the writer lock stayed held (and, for a load, no
    /// consistent copy could be read) until the deadline.
    Timeout(T),
    /// An [`Interrupter`](crate::Interrupter) the thread watches fired while it waited.
    Interrupted(T),
}

impl<T> ValueError<T> {
    /// The value that was not stored (`()` for loads and updates).
    pub fn into_inner(self) -> T {
        match self {
            ValueError::WouldBlock(v) | ValueError::Timeout(v) | ValueError::Interrupted(v) => v,
        }
    }

    /// The same error without the value.
    pub fn without_value(&self) -> ValueError {
        match self {
            ValueError::WouldBlock(_) => ValueError::WouldBlock(()),
            ValueError::Timeout(_) => ValueError::Timeout(()),
            ValueError::Interrupted(_) => ValueError::Interrupted(()),
        }
    }
}

impl<T> fmt::Display for ValueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::WouldBlock(_) => {
                f.write_str("the value's writer lock is held by another live process or thread")
            }
            ValueError::Timeout(_) => f.write_str("timed out waiting for the value's writer lock"),
            ValueError::Interrupted(_) => f.write_str("interrupted while waiting for the value"),
        }
    }
}

impl<T> fmt::Debug for ValueError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::WouldBlock(_) => f.write_str("WouldBlock(..)"),
            ValueError::Timeout(_) => f.write_str("Timeout(..)"),
            ValueError::Interrupted(_) => f.write_str("Interrupted(..)"),
        }
    }
}

impl<T> std::error::Error for ValueError<T> {}

impl<T> PartialEq for ValueError<T> {
    /// Compares the kind of error, not the values.
    fn eq(&self, other: &Self) -> bool {
        matches!(
            (self.without_value(), other.without_value()),
            (ValueError::WouldBlock(()), ValueError::WouldBlock(()))
                | (ValueError::Timeout(()), ValueError::Timeout(()))
                | (ValueError::Interrupted(()), ValueError::Interrupted(()))
        )
    }
}

impl<T> Eq for ValueError<T> {}

/// A bounded [`Array`](crate::Array) element call (`try_*`, `*_timeout`, `*_deadline`) did
/// nothing. `set` forms hand the element back in the variant (`ArrayError<()>` otherwise).
#[non_exhaustive]
pub enum ArrayError<T = ()> {
    /// The index or range leaves the array.
    OutOfBounds {
        /// The element that was not set (`()` for other calls).
        value: T,
        /// The range asked for and the array's length.
        range: OutOfBounds,
    },
    /// `try_*`: another live process or thread holds the array's lock now.
    WouldBlock(T),
    /// `*_timeout` / `*_deadline`: the array's lock stayed held until the deadline.
    Timeout(T),
    /// An [`Interrupter`](crate::Interrupter) the thread watches fired while it waited.
    Interrupted(T),
}

impl<T> ArrayError<T> {
    /// The element that was not set (`()` for other calls).
    pub fn into_inner(self) -> T {
        match self {
            ArrayError::OutOfBounds { value, .. }
            | ArrayError::WouldBlock(value)
            | ArrayError::Timeout(value)
            | ArrayError::Interrupted(value) => value,
        }
    }

    /// The same error without the element.
    pub fn without_value(&self) -> ArrayError {
        match self {
            ArrayError::OutOfBounds { range, .. } => ArrayError::OutOfBounds {
                value: (),
                range: *range,
            },
            ArrayError::WouldBlock(_) => ArrayError::WouldBlock(()),
            ArrayError::Timeout(_) => ArrayError::Timeout(()),
            ArrayError::Interrupted(_) => ArrayError::Interrupted(()),
        }
    }
}

impl<T> fmt::Display for ArrayError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrayError::OutOfBounds { range, .. } => fmt::Display::fmt(range, f),
            ArrayError::WouldBlock(_) => {
                f.write_str("the array's lock is held by another live process or thread")
            }
            ArrayError::Timeout(_) => f.write_str("timed out waiting for the array's lock"),
            ArrayError::Interrupted(_) => {
                f.write_str("interrupted while waiting for the array's lock")
            }
        }
    }
}

impl<T> fmt::Debug for ArrayError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrayError::OutOfBounds { range, .. } => f
                .debug_struct("OutOfBounds")
                .field("range", range)
                .finish_non_exhaustive(),
            ArrayError::WouldBlock(_) => f.write_str("WouldBlock(..)"),
            ArrayError::Timeout(_) => f.write_str("Timeout(..)"),
            ArrayError::Interrupted(_) => f.write_str("Interrupted(..)"),
        }
    }
}

impl<T> std::error::Error for ArrayError<T> {}

impl<T> PartialEq for ArrayError<T> {
    /// Compares the kind of error (and the range), not the elements.
    fn eq(&self, other: &Self) -> bool {
        match (self.without_value(), other.without_value()) {
            (
                ArrayError::OutOfBounds { range: a, .. },
                ArrayError::OutOfBounds { range: b, .. },
            ) => a == b,
            (ArrayError::WouldBlock(()), ArrayError::WouldBlock(()))
            | (ArrayError::Timeout(()), ArrayError::Timeout(()))
            | (ArrayError::Interrupted(()), ArrayError::Interrupted(())) => true,
            _ => false,
        }
    }
}

impl<T> Eq for ArrayError<T> {}

/// Joining a [`Topic`](crate::Topic) as a publisher or subscriber failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicAttachError {
    /// Every publisher entry is held by a live process.
    #[error("the topic already has {max} publishers attached; drop one first")]
    TooManyPublishers {
        /// Publishers a topic holds at once.
        max: usize,
    },
    /// Every subscriber entry is held by a live process.
    #[error(
        "the topic already has {max} subscribers attached; drop one, or create the topic with more (TopicConfig::subscribers)"
    )]
    TooManySubscribers {
        /// Subscribers the topic was created for.
        max: usize,
    },
    /// Shared memory failed a check.
    #[error("topic is corrupted: {reason}")]
    Corrupted {
        /// What check failed.
        reason: String,
    },
}

/// Publishing to a [`Topic`](crate::Topic) failed; nothing was published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// `try_publish`: the log is full (Block policy: the slowest subscriber is a whole log
    /// behind; either policy, rarely: a publisher has not finished the message a whole log
    /// earlier, in the slot the next one needs).
    #[error(
        "topic is full: the slowest subscriber (or an unfinished message) is a whole log behind"
    )]
    Full,
    /// `publish_timeout`: still full when the timeout passed.
    #[error("timed out waiting for the slowest subscriber to make room")]
    Timeout,
    /// Larger than the topic's maximum message.
    #[error("message of {len} bytes exceeds the topic's maximum of {max}")]
    TooLarge {
        #[allow(missing_docs)]
        len: usize,
        #[allow(missing_docs)]
        max: usize,
    },
    /// An [`Interrupter`](crate::Interrupter) this thread watches fired while it waited.
    #[error("interrupted while waiting for room in the topic")]
    Interrupted,
    /// Shared memory failed a check.
    #[error("topic is corrupted: {reason}")]
    Corrupted {
        /// What check failed.
        reason: String,
    },
}

/// Receiving from a [`Topic`](crate::Topic) got no message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicRecvError {
    /// `try_recv`: nothing new now.
    #[error("no new message in the topic")]
    Empty,
    /// `recv_timeout`: nothing arrived before the timeout.
    #[error("timed out waiting for a message")]
    Timeout,
    /// Overwrite policy: publishers overwrote this many messages before this subscriber read
    /// them. The subscriber now stands at the oldest message still held; the next receive
    /// returns it.
    #[error("lagged behind the publishers: {0} messages were overwritten unread")]
    Lagged(u64),
    /// Every publisher is gone (dropped, or its process died) and every message they
    /// published has been received. Not final: a new publisher makes receives succeed again.
    #[error("every publisher is gone and every message has been received")]
    Disconnected,
    /// An [`Interrupter`](crate::Interrupter) this thread watches fired while it waited.
    #[error("interrupted while waiting for a message")]
    Interrupted,
    /// Shared memory failed a check.
    #[error("topic is corrupted: {reason}")]
    Corrupted {
        /// What check failed.
        reason: String,
    },
}
