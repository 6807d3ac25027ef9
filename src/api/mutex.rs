#![allow(unsafe_code)]
//! `Mutex<T>` and `Lock`: a robust lock across processes, guarding plain data in the segment.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    Pod, PoisonOnPanic, data_offset, ensure, lock_result, timeout_lock_result, try_lock_result,
};
use crate::error::{
    CreateError, LockError, LockTimeoutError, OpenError, OpenOrCreateError, TryLockError,
};
use crate::segment::{Kind, Layout, Options, Segment};
use crate::sync::mutex::{self, RawMutex};
use crate::sync::park::deadline_after;

/// A mutual-exclusion lock across processes, guarding a `T` that lives in the segment.
///
/// Robust: if the process holding it dies, the next locker gets the lock together with an
/// [`OwnerDied`](crate::OwnerDied) error that holds the guard, like `EOWNERDEAD` for robust
/// pthread mutexes, instead of waiting forever. A waiter sleeps on a futex after a short spin
/// and uses no CPU while it waits, apart from a liveness check of the holder every 50 ms at
/// most.
///
/// # Poisoning
/// As with std's `Mutex`, a guard dropped while its thread panics marks the lock *poisoned*,
/// and so does taking it over from a holder that died. The mark lives in the segment, so
/// every process sees it: each later `lock`, `try_lock`, `lock_timeout` and `lock_deadline`
/// returns its `Poisoned` error, which holds the guard ([`Poisoned::into_inner`](crate::Poisoned::into_inner)),
/// until someone calls [`Mutex::clear_poison`]. The first locker after a death is told
/// [`OwnerDied`](crate::OwnerDied) instead (it holds the guard too); both mean "the data may
/// be half-updated: check it". Handing either error up with `?` keeps the lock until the
/// error is dropped, and leaves the mark for the next locker.
///
/// ```
/// let name = format!("doc-mutex-poison-{}", std::process::id());
/// let m = shmq::Mutex::<u64>::create(name.as_str(), 0)?;
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let mut n = m.lock().unwrap();
///         *n = 1; // half of an update...
///         panic!("...that never completes");
///     })
///     .join()
///     .unwrap_err();
/// });
/// assert!(m.is_poisoned());
/// let n = match m.lock() {
///     Err(shmq::LockError::Poisoned(p)) => {
///         let mut n = p.into_inner(); // the lock is held
///         *n = 0; // repaired
///         m.clear_poison();
///         n
///     }
///     other => other?,
/// };
/// assert_eq!(*n, 0);
/// drop(n);
/// assert!(m.lock().is_ok());
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
///
/// # Guards and threads
/// The lock belongs to the *process*: the lock word records the holder's pid, never a
/// thread, so a [`MutexGuard`] may be sent to and dropped by another thread of the process
/// (it is `Send` when `T` is, and `'static`: it keeps the segment mapped). That is also what
/// lets every lock error convert with `?` into `Box<dyn Error + Send + Sync>` or
/// `anyhow::Error` while still owning its guard.
///
/// # Crash safety
/// A holder killed mid-update leaves `T` as it was at that instant (any bit pattern is a valid
/// `T`); the first locker after the death learns of it through
/// [`OwnerDied`](crate::OwnerDied), and later ones through [`Poisoned`](crate::Poisoned) until
/// the mark is cleared. A waiter killed while waiting leaves nothing behind.
///
/// # Examples
/// ```
/// let name = format!("doc-mutex-{}", std::process::id());
/// let m = shmq::Mutex::<u64>::create(name.as_str(), 0)?;
/// {
///     let mut n = m.lock()?;
///     *n += 1;
/// } // unlocked here
/// assert_eq!(*m.lock()?, 1);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct Mutex<T: Pod> {
    /// Shared with every guard, which keeps the mapping alive and so needs no lifetime.
    seg: Arc<Segment>,
    _t: PhantomData<fn() -> T>,
}

/// A lock guarding nothing (`multiprocessing.Lock`): `Lock::create(name, ())`.
pub type Lock = Mutex<()>;

// SAFETY: the handle only holds the segment (Send + Sync); `T` is reached only through a
// guard, which requires holding the lock, so sharing the handle between threads hands `T` from
// one thread to another just as std's Mutex does (hence `T: Send`).
unsafe impl<T: Pod + Send> Sync for Mutex<T> {}

impl<T: Pod> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("name", &self.seg.name())
            .field("holder_pid", &self.raw().holder())
            .field("poisoned", &self.raw().is_poisoned())
            .finish()
    }
}

impl<T: Pod> Mutex<T> {
    fn layout() -> Layout {
        Layout {
            kind: Kind::Mutex,
            align: std::mem::align_of::<T>(),
            ty: crate::api::type_info::<T>(),
            payload_size: data_offset::<T>() + std::mem::size_of::<T>(),
            param0: data_offset::<T>() as u64,
            param1: 0,
        }
    }

    fn init(init: &T) -> impl FnOnce(crate::region::Region<'_>) + '_ {
        move |r| {
            r.write(data_offset::<T>(), init.as_bytes());
        }
    }

    /// Creates the mutex, unlocked, guarding `init`.
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, permissions.
    pub fn create(opts: impl Into<Options>, init: T) -> Result<Self, CreateError> {
        let seg = Segment::create_kind(&opts.into(), &Self::layout(), Self::init(&init))?;
        Ok(Mutex {
            seg: Arc::new(seg),
            _t: PhantomData,
        })
    }

    /// Opens an existing mutex guarding a `T`.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a mutex, created for another type, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Self::check(Segment::open_kind(
            &opts.into(),
            Kind::Mutex,
            crate::api::type_info::<T>(),
        )?)
    }

    /// Opens the mutex, creating it around `init` if it does not exist.
    ///
    /// # Errors
    /// As [`Mutex::create`] and [`Mutex::open`].
    pub fn open_or_create(opts: impl Into<Options>, init: T) -> Result<Self, OpenOrCreateError> {
        let seg = Segment::open_or_create_kind(&opts.into(), &Self::layout(), Self::init(&init))?;
        Ok(Self::check(seg)?)
    }

    fn check(seg: Segment) -> Result<Self, OpenError> {
        let info = seg.info();
        let need = (data_offset::<T>() + std::mem::size_of::<T>()) as u64;
        ensure(&seg, info.param0 == data_offset::<T>() as u64, || {
            format!("data offset {}", info.param0)
        })?;
        ensure(&seg, info.payload_size >= need, || {
            "mutex area too small".into()
        })?;
        let misaligned =
            (info.payload_offset as usize + data_offset::<T>()) % std::mem::align_of::<T>();
        ensure(&seg, misaligned == 0, || {
            format!("payload offset {} misaligns the data", info.payload_offset)
        })?;
        Ok(Mutex {
            seg: Arc::new(seg),
            _t: PhantomData,
        })
    }

    /// The [`Select`](crate::Select) registration: ready when the lock is free or its holder
    /// died. The select marks the held lock contended (as a blocked locker does), so its
    /// unlock wakes the select; an unlock wakes one sleeper, so a select that returns
    /// another registration wakes the next.
    pub(crate) fn registration(&self) -> crate::api::select::Reg<'_> {
        registration_in(&self.seg, &())
    }

    /// The same registration for a [`Readiness`](crate::Readiness): it owns a clone of the
    /// segment.
    pub(crate) fn registration_owned(&self) -> crate::api::readiness::OwnedReg {
        crate::api::readiness::OwnedReg::new(Arc::clone(&self.seg), (), registration_in)
    }

    fn raw(&self) -> RawMutex<'_> {
        raw(&self.seg)
    }

    /// The guard for a lock this thread has just acquired. Made before anything else is
    /// done with the lock, so that it is released even if what follows panicked.
    fn guard(&self) -> MutexGuard<T> {
        let data = self.seg.payload().as_ptr();
        // SAFETY: data_offset::<T>() + size_of::<T>() <= payload size (validated at open), so
        // the pointer stays inside the payload.
        let ptr = unsafe { data.add(data_offset::<T>()) }.cast::<T>();
        MutexGuard {
            seg: Arc::clone(&self.seg),
            ptr,
            poison: PoisonOnPanic::new(),
        }
    }

    /// Whether the lock is poisoned: a holder, in any process, panicked or died holding it
    /// and nobody has called [`Mutex::clear_poison`] since. Another process may change that
    /// at any moment; a locker learns it reliably from [`Mutex::lock`]'s result.
    pub fn is_poisoned(&self) -> bool {
        self.raw().is_poisoned()
    }

    /// Clears the poison mark, for every process: later lockers get a plain guard. Call it
    /// once the data is checked or repaired (usually while holding the guard that a
    /// `Poisoned` or `OwnerDied` error handed you, as std's `Mutex::clear_poison`).
    pub fn clear_poison(&self) {
        self.raw().clear_poison();
    }

    /// Locks, waiting as long as a live holder keeps it.
    ///
    /// # Errors
    /// Two errors hold the guard (the lock *is* taken, but the data may be inconsistent; see
    /// [Poisoning](Mutex#poisoning)): [`LockError::OwnerDied`] if the previous holder died,
    /// [`LockError::Poisoned`] if the lock is poisoned.
    /// [`LockError::Interrupted`] if an [`Interrupter`](crate::Interrupter) the thread
    /// watches fired while it waited.
    pub fn lock(&self) -> Result<MutexGuard<T>, LockError<MutexGuard<T>>> {
        let raw = self.raw();
        lock_result(raw.lock(None), raw, || self.guard())
    }

    /// Locks if that needs no waiting (or the holder is dead).
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if a live holder has it; [`TryLockError::OwnerDied`] and
    /// [`TryLockError::Poisoned`] as for [`Mutex::lock`].
    pub fn try_lock(&self) -> Result<MutexGuard<T>, TryLockError<MutexGuard<T>>> {
        let raw = self.raw();
        try_lock_result(raw.try_lock(), raw, || self.guard())
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`]; [`LockTimeoutError::Interrupted`];
    /// [`LockTimeoutError::OwnerDied`] and [`LockTimeoutError::Poisoned`] as for
    /// [`Mutex::lock`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<MutexGuard<T>, LockTimeoutError<MutexGuard<T>>> {
        let raw = self.raw();
        timeout_lock_result(raw.lock(deadline_after(timeout)), raw, || self.guard())
    }

    /// Locks, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Mutex::lock_timeout`].
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<MutexGuard<T>, LockTimeoutError<MutexGuard<T>>> {
        let raw = self.raw();
        timeout_lock_result(raw.lock(Some(deadline)), raw, || self.guard())
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// The mutex words at the start of a `Mutex` or `Array` payload.
/// A mutex's registration: ready when the lock is free or its holder died.
fn registration_in<'s>(seg: &'s Segment, _: &'s ()) -> crate::api::select::Reg<'s> {
    let raw = raw(seg);
    let word = raw.word();
    crate::api::select::Reg::new(
        Contending(raw),
        move |deep| raw.would_not_wait(deep),
        Some(Box::new(move || {
            crate::sync::park::wake(word, 1);
        })),
    )
}

pub(crate) fn raw(seg: &Segment) -> RawMutex<'_> {
    RawMutex::at(seg.payload(), 0).expect("lock area size validated at open")
}

/// Holds a [`Mutex`] locked; derefs to the guarded `T`; unlocks on drop, poisoning the lock
/// first if the thread is panicking.
///
/// `'static` (it shares the handle's segment, keeping it mapped) and `Send` when `T` is: the
/// lock is the process's, so any thread of it may drop the guard. See [Guards and
/// threads](Mutex#guards-and-threads).
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<T: Pod> {
    seg: Arc<Segment>,
    ptr: NonNull<T>,
    poison: PoisonOnPanic,
}

// SAFETY: the lock is held by the process, not by a thread: the state word records only the
// holder's pid, and `RawMutex::unlock` releases it from any thread whose pid that is (it
// checks nothing else), with a Release that publishes the writes made under the lock. Sending
// the guard (which needs a synchronizing hand-over) moves the exclusive access to `T` to
// another thread, hence `T: Send`; the `Arc` keeps the mapping alive wherever the guard goes.
unsafe impl<T: Pod + Send> Send for MutexGuard<T> {}
// SAFETY: a shared `&MutexGuard` gives only `&T` (hence `T: Sync`) and cannot unlock.
unsafe impl<T: Pod + Sync> Sync for MutexGuard<T> {}

impl<T: Pod> Deref for MutexGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` is inside the mapping (checked at open), which the guard's `Arc`
        // keeps alive, aligned for T (the mapping is page-aligned and the offset is a
        // multiple of align_of::<T>()), and holds *some* bit pattern, all of which are valid
        // T (T: Pod). We hold the lock, so no process that follows the protocol writes
        // it while this borrow lives.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Pod> DerefMut for MutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the `&mut self` borrow makes this the only reference made
        // through this guard, and the lock excludes every other guard.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Pod> Drop for MutexGuard<T> {
    fn drop(&mut self) {
        let raw = raw(&self.seg);
        self.poison.done(raw);
        raw.unlock();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for MutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

const _: () = assert!(mutex::SIZE <= 64);

/// How a [`Select`](crate::Select) sleeps on a mutex: on its lock word, after marking a held
/// lock contended — again before every look, since an unlock and a new lock in between
/// clear the mark.
struct Contending<'a>(RawMutex<'a>);

impl crate::ring::wait::Sleeper for Contending<'_> {
    fn bell(&self) -> &std::sync::atomic::AtomicU32 {
        self.0.word()
    }
    fn announce(&self) {}
    fn barrier(&self) {
        self.0.mark_contended();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
    fn retract(&self) {}
}
