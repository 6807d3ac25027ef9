#![allow(unsafe_code)]
//! `Array<T>`: a named fixed-length shared array (`multiprocessing.Array`).

use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::time::Duration;

use zerocopy::IntoBytes;

use super::{Pod, data_offset, ensure, lock_result, timeout_lock_result, try_lock_result};
use crate::error::{
    CreateError, LockError, LockTimeoutError, OpenError, OpenOrCreateError, OutOfBounds,
    TryLockError,
};
use crate::region::Region;
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};
use crate::sync::mutex::RawMutex;
use crate::sync::park::deadline_after;

/// A fixed-length array of plain-data `T` shared by name, like `multiprocessing.Array` with
/// its default `lock=True`: every access holds the array's robust lock, so element reads and
/// writes are never torn, and [`Array::lock`] gives whole-array access as a slice.
///
/// # Crash safety
/// Element accesses ([`get`](Array::get), [`set`](Array::set), [`to_vec`](Array::to_vec),
/// ...) take over the lock of a dead holder and carry on: whatever the dead process had
/// written stays (any bit pattern is a valid `T`). [`Array::lock`] reports such a takeover as
/// [`OwnerDied`] so that callers who update several elements together can repair them.
///
/// # Examples
/// ```
/// let name = format!("doc-array-{}", std::process::id());
/// let a = shmq::Array::<i32>::create(name.as_str(), &[0, 1, 2, 3])?;
/// a.set(0, 10)?;
/// assert_eq!(a.get(0), Some(10));
/// assert_eq!(a.get(4), None);
/// {
///     let mut all = a.lock().map_err(|e| e.to_string())?;
///     all.reverse();
/// }
/// assert_eq!(a.to_vec(), vec![3, 2, 1, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Array<T: Pod> {
    seg: Segment,
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

impl<T: Pod> Array<T> {
    fn layout(len: usize, name: &Options) -> Result<Layout, CreateError> {
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
            ty: TypeInfo::of::<T>(),
            payload_size,
            param0: len as u64,
            param1: data_offset::<T>() as u64,
        })
    }

    /// Creates an array holding a copy of `init` (its length is fixed from then on).
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, permissions.
    pub fn create(opts: impl Into<Options>, init: &[T]) -> Result<Self, CreateError> {
        let opts = opts.into();
        let seg = Segment::create_kind(&opts, &Self::layout(init.len(), &opts)?, |r| {
            r.write(data_offset::<T>(), init.as_bytes());
        })?;
        Ok(Array {
            seg,
            len: init.len(),
            _t: PhantomData,
        })
    }

    /// Creates an array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`Array::create`].
    pub fn create_zeroed(opts: impl Into<Options>, len: usize) -> Result<Self, CreateError> {
        let opts = opts.into();
        let seg = Segment::create_kind(&opts, &Self::layout(len, &opts)?, |_| {})?;
        Ok(Array {
            seg,
            len,
            _t: PhantomData,
        })
    }

    /// Opens an existing array of `T`.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not an array, created for another element type, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Self::check(Segment::open_kind(
            &opts.into(),
            Kind::Array,
            TypeInfo::of::<T>(),
        )?)
    }

    /// Opens the array, creating it from `init` if it does not exist. The length is the
    /// creator's; check [`Array::len`].
    ///
    /// # Errors
    /// As [`Array::create`] and [`Array::open`].
    pub fn open_or_create(opts: impl Into<Options>, init: &[T]) -> Result<Self, OpenOrCreateError> {
        let opts = opts.into();
        let layout = Self::layout(init.len(), &opts)?;
        let seg = Segment::open_or_create_kind(&opts, &layout, |r| {
            r.write(data_offset::<T>(), init.as_bytes());
        })?;
        Ok(Self::check(seg)?)
    }

    fn check(seg: Segment) -> Result<Self, OpenError> {
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
        Ok(Array {
            seg,
            len,
            _t: PhantomData,
        })
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
        RawMutex::at(self.seg.payload(), 0).expect("array area size validated at open")
    }

    fn data(&self) -> Region<'_> {
        self.seg
            .payload()
            .sub(data_offset::<T>(), self.len * size_of::<T>())
            .expect("array area size validated at open")
    }

    /// Runs `f` with the lock held, taking over from a dead holder if need be.
    fn with_lock<R>(&self, f: impl FnOnce(Region<'_>) -> R) -> R {
        let raw = self.raw();
        // TEMPORARY (until the bounded Array API lands): an interrupt cannot end this wait.
        while raw.lock(None).is_err() {
            std::thread::sleep(crate::sys::futex::SLICE);
        }
        let r = f(self.data());
        raw.unlock();
        r
    }

    fn check_range(&self, start: usize, n: usize) -> Result<(), OutOfBounds> {
        match start.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(OutOfBounds {
                start,
                end: start.saturating_add(n),
                len: self.len,
            }),
        }
    }

    /// Element `index`, or `None` if out of bounds.
    pub fn get(&self, index: usize) -> Option<T> {
        self.check_range(index, 1).ok()?;
        let mut v = T::new_zeroed();
        self.with_lock(|d| d.read(index * size_of::<T>(), v.as_mut_bytes()))?;
        Some(v)
    }

    /// Sets element `index`.
    ///
    /// # Errors
    /// [`OutOfBounds`] if `index >= len`.
    pub fn set(&self, index: usize, value: T) -> Result<(), OutOfBounds> {
        self.write_from(index, std::slice::from_ref(&value))
    }

    /// Copies elements `start..start + out.len()` into `out`, all under one lock.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the array.
    pub fn read_into(&self, start: usize, out: &mut [T]) -> Result<(), OutOfBounds> {
        self.check_range(start, out.len())?;
        self.with_lock(|d| d.read(start * size_of::<T>(), out.as_mut_bytes()));
        Ok(())
    }

    /// Copies `values` into elements `start..start + values.len()`, all under one lock.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the array.
    pub fn write_from(&self, start: usize, values: &[T]) -> Result<(), OutOfBounds> {
        self.check_range(start, values.len())?;
        self.with_lock(|d| d.write(start * size_of::<T>(), values.as_bytes()));
        Ok(())
    }

    /// A copy of the whole array.
    pub fn to_vec(&self) -> Vec<T> {
        let mut v: Vec<T> = (0..self.len).map(|_| T::new_zeroed()).collect();
        self.with_lock(|d| d.read(0, v.as_mut_slice().as_mut_bytes()));
        v
    }

    /// The guard for a lock this thread has just acquired.
    fn guard(&self) -> ArrayGuard<'_, T> {
        let ptr = self.data().as_ptr().cast::<T>();
        ArrayGuard {
            array: self,
            ptr,
            _not_send: PhantomData,
        }
    }

    /// Locks the whole array; the guard derefs to `[T]`.
    ///
    /// # Errors
    /// [`LockError::OwnerDied`] (holding the guard) if the previous holder died holding the
    /// lock; [`LockError::Interrupted`] if an [`Interrupter`](crate::Interrupter) the thread
    /// watches fired while it waited.
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, LockError<ArrayGuard<'_, T>>> {
        lock_result(self.raw().lock(None), || self.guard())
    }

    /// Locks the whole array if no live holder has it.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`], or [`TryLockError::OwnerDied`] as for [`Array::lock`].
    pub fn try_lock(&self) -> Result<ArrayGuard<'_, T>, TryLockError<ArrayGuard<'_, T>>> {
        try_lock_result(self.raw().try_lock(), || self.guard())
    }

    /// Locks the whole array, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`LockTimeoutError::Timeout`], or [`LockTimeoutError::OwnerDied`] as for
    /// [`Array::lock`].
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<ArrayGuard<'_, T>, LockTimeoutError<ArrayGuard<'_, T>>> {
        timeout_lock_result(self.raw().lock(deadline_after(timeout)), || self.guard())
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// Holds an [`Array`] locked; derefs to `[T]`; unlocks on drop.
#[must_use = "if unused the Array will immediately unlock"]
pub struct ArrayGuard<'a, T: Pod> {
    array: &'a Array<T>,
    ptr: NonNull<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` elements inside the mapping (validated at open),
        // aligned for T (page-aligned mapping, offset a multiple of align_of::<T>()), every bit
        // pattern is a valid T (T: FromBytes), and we hold the lock, so no process following
        // the protocol writes them while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.array.len) }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only borrow through this guard.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.array.len) }
    }
}

impl<T: Pod> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        self.array.raw().unlock();
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
