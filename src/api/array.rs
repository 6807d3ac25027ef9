#![allow(unsafe_code)]
//! `Array<T>`: a named fixed-length shared array (`multiprocessing.Array`).

use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::api::SliceBytes;

use super::{
    Pod, PoisonOnPanic, Waiting, data_offset, ensure, lock_result, timeout_lock_result,
    try_lock_result,
};
use crate::error::{
    ArrayError, CreateError, LockError, LockTimeoutError, OpenError, OpenOrCreateError,
    OutOfBounds, TryLockError,
};
use crate::region::{Region, unit_of};
use crate::segment::{Kind, Layout, Options, Segment};
use crate::sync::mutex::{Locked, RawMutex, Stopped};
use crate::sync::park::deadline_after;
use crate::sys::interrupt::uninterruptible;

/// A fixed-length array of plain-data `T` shared by name, like `multiprocessing.Array` with
/// its default `lock=True`: every access takes the array's robust lock, so element reads and
/// writes are never torn while every process follows the protocol, and [`Array::lock`] gives
/// whole-array access as a slice. For access without the lock (`Array(lock=False)`,
/// `RawArray`), open the same array as a [`RawArray`](crate::RawArray).
///
/// # Blocking and bounds
///
/// | call | waits for the lock | at most |
/// |------|--------------------|---------|
/// | [`get`](Array::get), [`read_into`](Array::read_into), [`to_vec`](Array::to_vec), [`set`](Array::set), [`write_from`](Array::write_from), [`lock`](Array::lock) | yes | as long as a live process holds it |
/// | [`get_timeout`](Array::get_timeout)/[`_deadline`](Array::get_deadline), [`read_into_timeout`](Array::read_into_timeout)/[`_deadline`](Array::read_into_deadline) | yes | the caller's bound, then [`ArrayError::Timeout`] |
/// | [`try_set`](Array::try_set), [`try_write_from`](Array::try_write_from), [`try_lock`](Array::try_lock) | no | [`ArrayError::WouldBlock`] / [`TryLockError::WouldBlock`] at once |
/// | `set_timeout`/`_deadline`, `write_from_timeout`/`_deadline`, [`lock_timeout`](Array::lock_timeout)/[`_deadline`](Array::lock_deadline) | yes | the caller's bound, then a `Timeout` error |
///
/// A lock held by a dead process is taken over (within about 50 ms), so only a *live*
/// holder makes a call wait: one holding an [`ArrayGuard`] for long, or a buggy or hostile
/// peer that wrote a live process's pid into the lock word, which delays the plain calls for
/// as long as that process lives, like [`Mutex::lock`](crate::Mutex::lock): use the bounded
/// forms where that matters. The plain element calls are not interruptible (they have no
/// error to say so with; [`lock`](Array::lock) is); the bounded forms return
/// [`ArrayError::Interrupted`] when an [`Interrupter`](crate::Interrupter) the thread
/// watches fires.
///
/// # Poisoning
/// The lock is poisoned, for every process, when an [`ArrayGuard`] is dropped while its
/// thread panics, or when any call takes the lock over from a dead holder. From then on
/// [`lock`](Array::lock) and its `try_`/`_timeout`/`_deadline` forms return their `Poisoned`
/// error, which holds the guard, until [`Array::clear_poison`]; the first `lock` after a death
/// returns `OwnerDied` instead. This is for callers who keep invariants *across* elements
/// under a guard, as with [`Mutex`](crate::Mutex#poisoning). The element calls copy whole
/// elements under the lock and run no code of yours while holding it; they neither report
/// nor clear the mark.
///
/// # Crash safety
/// Element accesses ([`get`](Array::get), [`set`](Array::set), [`to_vec`](Array::to_vec),
/// ...) take over the lock of a dead holder and carry on: whatever the dead process had
/// written stays (any bit pattern is a valid `T`). [`Array::lock`] reports such a takeover as
/// [`OwnerDied`](crate::OwnerDied), then as [`Poisoned`](crate::Poisoned), so that callers
/// who update several elements together can repair them.
///
/// # Examples
/// ```
/// let name = format!("doc-array-{}", std::process::id());
/// let a = shmq::Array::<i32>::create(name.as_str(), &[0, 1, 2, 3])?;
/// a.set(0, 10)?;
/// assert_eq!(a.get(0), Some(10));
/// assert_eq!(a.get(4), None);
/// {
///     let mut all = a.lock()?;
///     all.reverse();
/// }
/// assert_eq!(a.to_vec(), vec![3, 2, 1, 10]);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct Array<T: Pod> {
    /// Shared with every guard, which keeps the mapping alive and so needs no lifetime.
    seg: Arc<Segment>,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

// SAFETY: the handle holds only the segment (Send + Sync) and a length; elements are reached
// under the array's lock, which hands `T` between threads like std's Mutex (hence T: Send).
unsafe impl<T: Pod + Send> Sync for Array<T> {}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("name", &self.seg.name())
            .field("len", &self.len)
            .finish()
    }
}

/// The segment layout of an array of `len` elements of `T`.
fn layout<T: Pod>(len: usize, name: &Options) -> Result<Layout, CreateError> {
    let bytes = len
        .checked_mul(size_of::<T>())
        .and_then(|b| b.checked_add(data_offset::<T>()));
    let Some(payload_size) = bytes else {
        return Err(CreateError::InvalidSize {
            name: name.label(),
            reason: format!("{len} elements overflow"),
        });
    };
    Ok(Layout {
        kind: Kind::Array,
        align: std::mem::align_of::<T>(),
        ty: crate::api::type_info::<T>(),
        payload_size,
        param0: len as u64,
        param1: data_offset::<T>() as u64,
    })
}

/// Creates an array segment holding a copy of `init`. Shared by [`Array`] and
/// [`RawArray`](crate::RawArray), which open the same segments.
pub(crate) fn create<T: Pod>(opts: &Options, init: &[T]) -> Result<(Segment, usize), CreateError> {
    let seg = Segment::create_kind(opts, &layout::<T>(init.len(), opts)?, |r| {
        r.write(data_offset::<T>(), init.as_bytes());
    })?;
    Ok((seg, init.len()))
}

/// Creates an array segment of `len` zeroed elements.
pub(crate) fn create_zeroed<T: Pod>(
    opts: &Options,
    len: usize,
) -> Result<(Segment, usize), CreateError> {
    let seg = Segment::create_kind(opts, &layout::<T>(len, opts)?, |_| {})?;
    Ok((seg, len))
}

/// Opens an array segment of `T` and validates its geometry; returns it with its length.
pub(crate) fn open<T: Pod>(opts: &Options) -> Result<(Segment, usize), OpenError> {
    check::<T>(Segment::open_kind(
        opts,
        Kind::Array,
        crate::api::type_info::<T>(),
    )?)
}

/// Opens the array segment, creating it from `init` if it does not exist.
pub(crate) fn open_or_create<T: Pod>(
    opts: &Options,
    init: &[T],
) -> Result<(Segment, usize), OpenOrCreateError> {
    let seg = Segment::open_or_create_kind(opts, &layout::<T>(init.len(), opts)?, |r| {
        r.write(data_offset::<T>(), init.as_bytes());
    })?;
    Ok(check::<T>(seg)?)
}

/// Checks that the elements the header promises fit the payload, aligned; returns the
/// segment with its element count.
fn check<T: Pod>(seg: Segment) -> Result<(Segment, usize), OpenError> {
    let info = seg.info();
    ensure(&seg, info.param1 == data_offset::<T>() as u64, || {
        format!("data offset {}", info.param1)
    })?;
    let misaligned =
        (info.payload_offset as usize + data_offset::<T>()) % std::mem::align_of::<T>();
    ensure(&seg, misaligned == 0, || {
        format!("payload offset {} misaligns the data", info.payload_offset)
    })?;
    let len = usize::try_from(info.param0).unwrap_or(usize::MAX);
    let need = len
        .checked_mul(size_of::<T>())
        .and_then(|b| b.checked_add(data_offset::<T>()));
    ensure(
        &seg,
        need.is_some_and(|n| n as u64 <= info.payload_size),
        || {
            format!(
                "{len} elements of {} bytes do not fit in {} bytes",
                size_of::<T>(),
                info.payload_size
            )
        },
    )?;
    Ok((seg, len))
}

/// The elements of a validated array segment of `len` elements.
pub(crate) fn data<T>(seg: &Segment, len: usize) -> Region<'_> {
    seg.payload()
        .sub(data_offset::<T>(), len * size_of::<T>())
        .expect("array area size validated at open")
}

/// `start..start + n` as an element range of an array of `len`, if it fits.
pub(crate) fn check_range(start: usize, n: usize, len: usize) -> Result<(), OutOfBounds> {
    match start.checked_add(n) {
        Some(end) if end <= len => Ok(()),
        _ => Err(OutOfBounds {
            start,
            end: start.saturating_add(n),
            len,
        }),
    }
}

/// Copies elements `start..` of `data` (an array of `len`) into `out`, one atomic load per `unit_of::<T>()`
/// bytes: every element access shmq makes (locked or not) uses that same unit, so an
/// element of up to 8 bytes (a power of two) is read and written whole.
pub(crate) fn copy_out<T: Pod>(
    data: Region<'_>,
    len: usize,
    start: usize,
    out: &mut [T],
) -> Result<(), OutOfBounds> {
    check_range(start, out.len(), len)?;
    let oob = OutOfBounds {
        start,
        end: start + out.len(),
        len,
    };
    data.read_units(start * size_of::<T>(), out.as_mut_bytes(), unit_of::<T>())
        .ok_or(oob)
}

/// Copies `values` into elements `start..` of `data`; see [`copy_out`].
pub(crate) fn copy_in<T: Pod>(
    data: Region<'_>,
    len: usize,
    start: usize,
    values: &[T],
) -> Result<(), OutOfBounds> {
    check_range(start, values.len(), len)?;
    let oob = OutOfBounds {
        start,
        end: start + values.len(),
        len,
    };
    data.write_units(start * size_of::<T>(), values.as_bytes(), unit_of::<T>())
        .ok_or(oob)
}

impl<T: Pod> Array<T> {
    fn from_parts((seg, len): (Segment, usize)) -> Self {
        Array {
            seg: Arc::new(seg),
            len,
            _t: PhantomData,
        }
    }

    /// Creates an array holding a copy of `init` (its length is fixed from then on).
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, permissions.
    pub fn create(opts: impl Into<Options>, init: &[T]) -> Result<Self, CreateError> {
        create(&opts.into(), init).map(Self::from_parts)
    }

    /// Creates an array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`Array::create`].
    pub fn create_zeroed(opts: impl Into<Options>, len: usize) -> Result<Self, CreateError> {
        create_zeroed::<T>(&opts.into(), len).map(Self::from_parts)
    }

    /// Opens an existing array of `T`.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not an array, created for another element type, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        open::<T>(&opts.into()).map(Self::from_parts)
    }

    /// Opens the array, creating it from `init` if it does not exist. The length is the
    /// creator's; check [`Array::len`].
    ///
    /// # Errors
    /// As [`Array::create`] and [`Array::open`].
    pub fn open_or_create(opts: impl Into<Options>, init: &[T]) -> Result<Self, OpenOrCreateError> {
        open_or_create(&opts.into(), init).map(Self::from_parts)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn raw(&self) -> RawMutex<'_> {
        super::mutex::raw(&self.seg)
    }

    fn data(&self) -> Region<'_> {
        data::<T>(&self.seg, self.len)
    }

    /// Takes the lock as `wait` allows, taking over from a dead holder if need be (whatever
    /// the dead process had written stays: any bit pattern is a valid `T`; the takeover
    /// poisons the lock for [`Array::lock`]'s callers).
    fn acquire(&self, wait: Waiting) -> Result<(), ArrayError> {
        let raw = self.raw();
        let how = match wait.deadline() {
            None => raw.try_lock().ok_or(ArrayError::WouldBlock(()))?,
            Some(deadline) => raw.lock(deadline).map_err(|s| match s {
                Stopped::TimedOut => ArrayError::Timeout(()),
                Stopped::Interrupted => ArrayError::Interrupted(()),
            })?,
        };
        if how == Locked::OwnerDied {
            // We hold the lock: our unlock's Release publishes the mark.
            raw.poison();
        }
        Ok(())
    }

    /// Runs `f` with the lock held, taken as `wait` allows.
    fn with_lock<R>(
        &self,
        wait: Waiting,
        f: impl FnOnce(Region<'_>) -> R,
    ) -> Result<R, ArrayError> {
        self.acquire(wait)?;
        let r = f(self.data());
        self.raw().unlock();
        Ok(r)
    }

    /// The plain calls' way: under the lock, waiting as long as a live process holds it,
    /// not interruptible. (Taking it over from a dead holder cannot fail either.)
    fn with_lock_forever<R>(&self, f: impl FnOnce(Region<'_>) -> R) -> R {
        let mut f = Some(f);
        loop {
            if let Ok(r) = uninterruptible(|| {
                self.with_lock(Waiting::Forever, |d| (f.take().expect("runs once"))(d))
            }) {
                return r;
            }
        }
    }

    fn check_range(&self, start: usize, n: usize) -> Result<(), OutOfBounds> {
        check_range(start, n, self.len)
    }

    /// Element `index`, or `None` if out of bounds. Waits for the lock as long as a live
    /// process holds it (see [Blocking and bounds](Array#blocking-and-bounds));
    /// [`Array::get_timeout`] is the bounded form.
    pub fn get(&self, index: usize) -> Option<T> {
        self.check_range(index, 1).ok()?;
        let mut v = T::new_zeroed();
        self.with_lock_forever(|d| copy_out(d, self.len, index, std::slice::from_mut(&mut v)))
            .ok()?;
        Some(v)
    }

    /// Element `index`, read under the lock if that needs no waiting.
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if `index >= len`; [`ArrayError::WouldBlock`] if another
    /// live process or thread holds the lock now.
    pub fn try_get(&self, index: usize) -> Result<T, ArrayError> {
        self.get_with(index, Waiting::No)
    }

    /// Element `index`, read under the lock, waiting at most `timeout` for it.
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if `index >= len`; [`ArrayError::Timeout`] if a live
    /// process (or a forged lock word naming one) held the lock throughout.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let name = format!("doc-array-timeout-{}", std::process::id());
    /// let a = shmq::Array::<u32>::create(name.as_str(), &[7, 8])?;
    /// assert_eq!(a.get_timeout(1, Duration::from_millis(100)), Ok(8));
    /// assert!(matches!(
    ///     a.get_timeout(2, Duration::from_millis(100)),
    ///     Err(shmq::ArrayError::OutOfBounds { .. })
    /// ));
    /// a.set_timeout(0, 9, Duration::from_millis(100))?;
    /// assert_eq!(a.get(0), Some(9));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_timeout(&self, index: usize, timeout: Duration) -> Result<T, ArrayError> {
        self.get_with(index, Waiting::For(timeout))
    }

    /// Element `index`, read under the lock, waiting until `deadline` at most for it.
    ///
    /// # Errors
    /// As [`Array::get_timeout`].
    pub fn get_deadline(&self, index: usize, deadline: Instant) -> Result<T, ArrayError> {
        self.get_with(index, Waiting::Until(deadline))
    }

    fn get_with(&self, index: usize, wait: Waiting) -> Result<T, ArrayError> {
        let mut v = T::new_zeroed();
        self.read_with(index, std::slice::from_mut(&mut v), wait)?;
        Ok(v)
    }

    /// Sets element `index`, waiting for the lock as long as a live process holds it.
    ///
    /// # Errors
    /// [`OutOfBounds`] if `index >= len`.
    pub fn set(&self, index: usize, value: T) -> Result<(), OutOfBounds> {
        self.write_from(index, std::slice::from_ref(&value))
    }

    /// Sets element `index` if the lock is free (or its holder dead).
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if `index >= len`; [`ArrayError::WouldBlock`] if a live
    /// process holds the lock. Both hand `value` back.
    pub fn try_set(&self, index: usize, value: T) -> Result<(), ArrayError<T>> {
        self.set_with(index, value, Waiting::No)
    }

    /// Sets element `index`, waiting at most `timeout` for the lock.
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if `index >= len`; [`ArrayError::Timeout`] if a live
    /// process held the lock throughout. Both hand `value` back.
    pub fn set_timeout(
        &self,
        index: usize,
        value: T,
        timeout: Duration,
    ) -> Result<(), ArrayError<T>> {
        self.set_with(index, value, Waiting::For(timeout))
    }

    /// Sets element `index`, waiting until `deadline` at most for the lock.
    ///
    /// # Errors
    /// As [`Array::set_timeout`].
    pub fn set_deadline(
        &self,
        index: usize,
        value: T,
        deadline: Instant,
    ) -> Result<(), ArrayError<T>> {
        self.set_with(index, value, Waiting::Until(deadline))
    }

    fn set_with(&self, index: usize, value: T, wait: Waiting) -> Result<(), ArrayError<T>> {
        match self.write_with(index, std::slice::from_ref(&value), wait) {
            Ok(()) => Ok(()),
            Err(e) => Err(give_back(e, value)),
        }
    }

    /// Copies elements `start..start + out.len()` into `out`, all under one lock (see
    /// [Blocking and bounds](Array#blocking-and-bounds)).
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the array.
    pub fn read_into(&self, start: usize, out: &mut [T]) -> Result<(), OutOfBounds> {
        self.check_range(start, out.len())?;
        self.with_lock_forever(|d| copy_out(d, self.len, start, out))
    }

    /// Copies elements `start..start + out.len()` into `out` under one lock, if that needs
    /// no waiting.
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if the range leaves the array; [`ArrayError::WouldBlock`]
    /// if another live process or thread holds the lock now (`out` is then untouched).
    pub fn try_read_into(&self, start: usize, out: &mut [T]) -> Result<(), ArrayError> {
        self.read_with(start, out, Waiting::No)
    }

    /// Copies elements `start..start + out.len()` into `out` under one lock, waiting at
    /// most `timeout` for it.
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if the range leaves the array; [`ArrayError::Timeout`]
    /// if a live process held the lock throughout (`out` is then untouched).
    pub fn read_into_timeout(
        &self,
        start: usize,
        out: &mut [T],
        timeout: Duration,
    ) -> Result<(), ArrayError> {
        self.read_with(start, out, Waiting::For(timeout))
    }

    /// Copies elements `start..start + out.len()` into `out` under one lock, waiting until
    /// `deadline` at most for it.
    ///
    /// # Errors
    /// As [`Array::read_into_timeout`].
    pub fn read_into_deadline(
        &self,
        start: usize,
        out: &mut [T],
        deadline: Instant,
    ) -> Result<(), ArrayError> {
        self.read_with(start, out, Waiting::Until(deadline))
    }

    fn read_with(&self, start: usize, out: &mut [T], wait: Waiting) -> Result<(), ArrayError> {
        self.check_range(start, out.len()).map_err(out_of_bounds)?;
        self.with_lock(wait, |d| copy_out(d, self.len, start, out))?
            .map_err(out_of_bounds)
    }

    /// Copies `values` into elements `start..start + values.len()`, all under one lock,
    /// waiting for it as long as a live process holds it.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the array.
    pub fn write_from(&self, start: usize, values: &[T]) -> Result<(), OutOfBounds> {
        // With no deadline and interrupts masked, taking the lock cannot fail.
        match uninterruptible(|| self.write_with(start, values, Waiting::Forever)) {
            Err(ArrayError::OutOfBounds { range, .. }) => Err(range),
            _ => Ok(()),
        }
    }

    /// As [`Array::write_from`] if the lock is free (or its holder dead).
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if the range leaves the array; [`ArrayError::WouldBlock`]
    /// if a live process holds the lock. Nothing was written.
    pub fn try_write_from(&self, start: usize, values: &[T]) -> Result<(), ArrayError> {
        self.write_with(start, values, Waiting::No)
    }

    /// As [`Array::write_from`], waiting at most `timeout` for the lock.
    ///
    /// # Errors
    /// [`ArrayError::OutOfBounds`] if the range leaves the array; [`ArrayError::Timeout`] if
    /// a live process held the lock throughout. Nothing was written.
    pub fn write_from_timeout(
        &self,
        start: usize,
        values: &[T],
        timeout: Duration,
    ) -> Result<(), ArrayError> {
        self.write_with(start, values, Waiting::For(timeout))
    }

    /// As [`Array::write_from`], waiting until `deadline` at most for the lock.
    ///
    /// # Errors
    /// As [`Array::write_from_timeout`].
    pub fn write_from_deadline(
        &self,
        start: usize,
        values: &[T],
        deadline: Instant,
    ) -> Result<(), ArrayError> {
        self.write_with(start, values, Waiting::Until(deadline))
    }

    fn write_with(&self, start: usize, values: &[T], wait: Waiting) -> Result<(), ArrayError> {
        self.check_range(start, values.len())
            .map_err(out_of_bounds)?;
        self.with_lock(wait, |d| copy_in(d, self.len, start, values))?
            .map_err(out_of_bounds)
    }

    /// A copy of the whole array, under one lock, as [`Array::read_into`];
    /// [`Array::read_into_timeout`] is the bounded form.
    pub fn to_vec(&self) -> Vec<T> {
        let mut v: Vec<T> = (0..self.len).map(|_| T::new_zeroed()).collect();
        // Cannot fail: `v` has exactly `len` elements.
        let _ = self.with_lock_forever(|d| copy_out(d, self.len, 0, &mut v));
        v
    }

    /// The guard for a lock this thread has just acquired. Made before anything else is
    /// done with the lock, so that it is released even if what follows panicked.
    fn guard(&self) -> ArrayGuard<T> {
        let ptr = self.data().as_ptr().cast::<T>();
        ArrayGuard {
            seg: Arc::clone(&self.seg),
            ptr,
            len: self.len,
            poison: PoisonOnPanic::new(),
        }
    }

    /// Locks the whole array, waiting as long as a live process holds the lock; the guard
    /// derefs to `[T]`.
    ///
    /// # Errors
    /// Two errors hold the guard (the lock *is* taken; see [Poisoning](Array#poisoning)):
    /// [`LockError::OwnerDied`] if the previous holder died holding the lock,
    /// [`LockError::Poisoned`] if the lock is poisoned. [`LockError::Interrupted`] if an
    /// [`Interrupter`](crate::Interrupter) the thread watches fired while it waited.
    pub fn lock(&self) -> Result<ArrayGuard<T>, LockError<ArrayGuard<T>>> {
        let raw = self.raw();
        lock_result(raw.lock(None), raw, || self.guard())
    }

    /// Locks the whole array if no live holder has it.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`]; [`TryLockError::OwnerDied`] and
    /// [`TryLockError::Poisoned`] as for [`Array::lock`].
    pub fn try_lock(&self) -> Result<ArrayGuard<T>, TryLockError<ArrayGuard<T>>> {
        let raw = self.raw();
        try_lock_result(raw.try_lock(), raw, || self.guard())
    }

    /// Locks the whole array, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`]; [`LockTimeoutError::Interrupted`];
    /// [`LockTimeoutError::OwnerDied`] and [`LockTimeoutError::Poisoned`] as for
    /// [`Array::lock`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<T>, LockTimeoutError<ArrayGuard<T>>> {
        let raw = self.raw();
        timeout_lock_result(raw.lock(deadline_after(timeout)), raw, || self.guard())
    }

    /// Locks the whole array, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Array::lock_timeout`].
    pub fn lock_deadline(
        &self,
        deadline: Instant,
    ) -> Result<ArrayGuard<T>, LockTimeoutError<ArrayGuard<T>>> {
        let raw = self.raw();
        timeout_lock_result(raw.lock(Some(deadline)), raw, || self.guard())
    }

    /// Whether the lock is poisoned (see [Poisoning](Array#poisoning)). Another process may
    /// change that at any moment; a locker learns it reliably from [`Array::lock`]'s result.
    pub fn is_poisoned(&self) -> bool {
        self.raw().is_poisoned()
    }

    /// Clears the poison mark, for every process, once the elements are checked or
    /// repaired: later lockers get a plain guard.
    pub fn clear_poison(&self) {
        self.raw().clear_poison();
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// The out-of-bounds error of the bounded element calls.
fn out_of_bounds(range: OutOfBounds) -> ArrayError {
    ArrayError::OutOfBounds { value: (), range }
}

/// The element `v` handed back in an error.
fn give_back<T>(e: ArrayError, v: T) -> ArrayError<T> {
    match e {
        ArrayError::OutOfBounds { range, .. } => ArrayError::OutOfBounds { value: v, range },
        ArrayError::WouldBlock(()) => ArrayError::WouldBlock(v),
        ArrayError::Timeout(()) => ArrayError::Timeout(v),
        ArrayError::Interrupted(()) => ArrayError::Interrupted(v),
    }
}

/// Holds an [`Array`] locked; derefs to `[T]`; unlocks on drop, poisoning the lock first if
/// the thread is panicking.
///
/// `'static` (it shares the handle's segment, keeping it mapped) and `Send` when `T` is, as
/// [`MutexGuard`](crate::MutexGuard) (see [Guards and threads](crate::Mutex#guards-and-threads)).
#[must_use = "if unused the Array will immediately unlock"]
pub struct ArrayGuard<T: Pod> {
    seg: Arc<Segment>,
    ptr: NonNull<T>,
    len: usize,
    poison: PoisonOnPanic,
}

// SAFETY: as for `MutexGuard`: the lock is the process's (the state word holds only its pid)
// and `RawMutex::unlock` may run on any of its threads, publishing the writes made under the
// lock; sending the guard moves the exclusive access to the elements, hence `T: Send`. The
// `Arc` keeps the mapping alive.
unsafe impl<T: Pod + Send> Send for ArrayGuard<T> {}
// SAFETY: a shared `&ArrayGuard` gives only `&[T]` (hence `T: Sync`) and cannot unlock.
unsafe impl<T: Pod + Sync> Sync for ArrayGuard<T> {}

impl<T: Pod> Deref for ArrayGuard<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` elements inside the mapping (validated at open), which
        // the guard's `Arc` keeps alive, aligned for T (page-aligned mapping, offset a
        // multiple of align_of::<T>()), every bit pattern is a valid T (T: Pod), and we
        // hold the lock, so no process following the protocol writes them while this borrow
        // lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow through this guard.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Pod> Drop for ArrayGuard<T> {
    fn drop(&mut self) {
        let raw = super::mutex::raw(&self.seg);
        self.poison.done(raw);
        raw.unlock();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
