#![allow(unsafe_code)]
//! `Mutex<T>` and `Lock`: a robust lock across processes, guarding plain data in the segment.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::{Pod, data_offset, ensure, lock_result, timeout_lock_result, try_lock_result};
use crate::error::{
    CreateError, LockError, LockTimeoutError, OpenError, OpenOrCreateError, TryLockError,
};
use crate::segment::{Kind, Layout, Options, Segment};
use crate::sync::mutex::{self, RawMutex};
use crate::sync::park::deadline_after;

/// A mutual-exclusion lock across processes, guarding a `T` that lives in the segment.
///
/// Robust: if the process holding it dies, the next locker gets the lock together with an
/// [`OwnerDied`](crate::OwnerDied) error that holds the guard, like `EOWNERDEAD` for robust pthread mutexes,
/// instead of waiting forever. A waiter sleeps on a futex after a short spin and uses no CPU
/// while it waits, apart from a liveness check of the holder every 50 ms at most.
///
/// # Crash safety
/// A holder killed mid-update leaves `T` as it was at that instant (any bit pattern is a valid
/// `T`); the first locker after the death learns of it through [`OwnerDied`](crate::OwnerDied). A waiter killed
/// while waiting leaves nothing behind.
///
/// # Examples
/// ```
/// let name = format!("doc-mutex-{}", std::process::id());
/// let m = shmq::Mutex::<u64>::create(name.as_str(), 0)?;
/// {
///     let mut n = m.lock().map_err(|e| e.to_string())?;
///     *n += 1;
/// } // unlocked here
/// assert_eq!(*m.lock().map_err(|e| e.to_string())?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mutex<T: Pod> {
    seg: Segment,
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
            seg,
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
            seg,
            _t: PhantomData,
        })
    }

    fn raw(&self) -> RawMutex<'_> {
        RawMutex::at(self.seg.payload(), 0).expect("mutex area size validated at open")
    }

    /// The guard for a lock this thread has just acquired.
    fn guard(&self) -> MutexGuard<'_, T> {
        let data = self.seg.payload().as_ptr();
        // SAFETY: data_offset::<T>() + size_of::<T>() <= payload size (validated at open), so
        // the pointer stays inside the payload.
        let ptr = unsafe { data.add(data_offset::<T>()) }.cast::<T>();
        MutexGuard {
            mutex: self,
            ptr,
            _not_send: PhantomData,
        }
    }

    /// Locks, waiting as long as a live holder keeps it.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (holding the guard: the lock *is* taken) if the previous
    /// holder died; [`LockError::Interrupted`] if an [`Interrupter`](crate::Interrupter) the
    /// thread watches fired while it waited.
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, LockError<MutexGuard<'_, T>>> {
        lock_result(self.raw().lock(None), || self.guard())
    }

    /// Locks if that needs no waiting (or the holder is dead).
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if a live holder has it; [`TryLockError::OwnerDied`] as
    /// for [`Mutex::lock`].
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError<MutexGuard<'_, T>>> {
        try_lock_result(self.raw().try_lock(), || self.guard())
    }

    /// Locks, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`], or [`LockTimeoutError::OwnerDied`] as for
    /// [`Mutex::lock`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<MutexGuard<'_, T>, LockTimeoutError<MutexGuard<'_, T>>> {
        timeout_lock_result(self.raw().lock(deadline_after(timeout)), || self.guard())
    }

    /// Locks, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Mutex::lock_timeout`].
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<MutexGuard<'_, T>, LockTimeoutError<MutexGuard<'_, T>>> {
        timeout_lock_result(self.raw().lock(Some(deadline)), || self.guard())
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// Holds a [`Mutex`] locked; derefs to the guarded `T`; unlocks on drop.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: Pod> {
    mutex: &'a Mutex<T>,
    ptr: NonNull<T>,
    /// Not Send, like std's guard: it is released by the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` is inside the mapping (checked at open), aligned for T (the mapping is
        // page-aligned and the offset is a multiple of align_of::<T>()), and holds *some* bit
        // pattern, all of which are valid T (T: Pod). We hold the lock, so no process
        // that follows the protocol writes it while this borrow lives.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Pod> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the `&mut self` borrow makes this the only reference made
        // through this guard, and the lock excludes every other guard.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Pod> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.raw().unlock();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

const _: () = assert!(mutex::SIZE <= 64);
