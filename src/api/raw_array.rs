//! `RawArray<T>`: an array segment accessed without its lock (`multiprocessing.RawArray`).

use std::fmt;
use std::marker::PhantomData;

use super::Pod;
use super::array::{self, copy_in, copy_out};
use crate::error::{CreateError, OpenError, OpenOrCreateError, OutOfBounds};
use crate::region::Region;
use crate::segment::{Options, Segment};

/// A fixed-length array of plain-data `T` shared by name and accessed *without a lock*, like
/// Python's `multiprocessing.RawArray` (or `Array(lock=False)`).
///
/// It is the same kind of segment as an [`Array`](crate::Array): a `RawArray` opens an array
/// that an `Array` created and the other way round, with the same type, length and bounds
/// checks. Its calls never take, wait for or look at the array's lock, so they never block,
/// not even while another process holds an [`ArrayGuard`](crate::ArrayGuard) or has died
/// holding one.
///
/// # What "unlocked" gives you
/// - **No undefined behaviour, in any use of this type.** Elements are copied with relaxed
///   atomic loads and stores, never through a reference to the shared bytes, so threads and
///   processes may call any method at the same time.
/// - **Whole elements up to 8 bytes.** Each element is copied in units of the widest of 8, 4,
///   2 or 1 bytes that divides `size_of::<T>()`, and every element access shmq makes, locked
///   ([`Array::get`](crate::Array::get), [`Array::set`](crate::Array::set), ...) or not, uses
///   that unit. So an element of 1, 2, 4 or 8 bytes is always read whole: the value before or
///   after a racing write, never a mix.
/// - **Tearing above that.** A wider element (`[u64; 2]`, a struct of three `u32`) is several
///   units: a read that races with a write may return some units old and some new. A
///   multi-element read ([`read_into`](RawArray::read_into), [`to_vec`](RawArray::to_vec)) is
///   not a snapshot either. Use [`Array`](crate::Array)'s locked calls where that matters.
/// - **No ordering.** The copies are relaxed: writing an element does not publish anything
///   else. To hand data to another process, write it, then signal through something that
///   synchronizes ([`Event::set`](crate::Event::set), a [`Queue`](crate::Queue) item, a
///   [`Semaphore`](crate::Semaphore) release); the receiver reads after its wait returns.
///
/// # Data races with guards
/// An [`ArrayGuard`](crate::ArrayGuard) hands out a plain `&mut [T]` over the same bytes,
/// trusting that nothing writes them while the lock is held. A `RawArray` write to an array
/// while some process (or thread, through an `Array` handle) holds a guard on it breaks that
/// trust: by Rust's rules it is a data race in the guard's holder, which may see elements
/// change under its references. Either use only atomic accesses on an array that
/// `RawArray`s write (the `Array` element calls and `RawArray`), or coordinate so that no
/// guard is held while they write.
///
/// # Examples
/// ```
/// let name = format!("doc-raw-array-{}", std::process::id());
/// let locked = shmq::Array::<u32>::create(name.as_str(), &[1, 2, 3])?;
/// let raw = shmq::RawArray::<u32>::open(name.as_str())?;
///
/// let guard = locked.lock()?; // held: the locked calls would wait
/// raw.set(0, 10)?; // the unlocked ones do not
/// assert_eq!(raw.get(0), Some(10));
/// assert_eq!(raw.get(3), None);
/// drop(guard);
///
/// assert_eq!(locked.to_vec(), [10, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
pub struct RawArray<T: Pod> {
    seg: Segment,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("name", &self.seg.name())
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> RawArray<T> {
    fn from_parts((seg, len): (Segment, usize)) -> Self {
        RawArray {
            seg,
            len,
            _t: PhantomData,
        }
    }

    /// Creates an array holding a copy of `init` (its length is fixed from then on).
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, permissions.
    pub fn create(opts: impl Into<Options>, init: &[T]) -> Result<Self, CreateError> {
        array::create(&opts.into(), init).map(Self::from_parts)
    }

    /// Creates an array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`RawArray::create`].
    pub fn create_zeroed(opts: impl Into<Options>, len: usize) -> Result<Self, CreateError> {
        array::create_zeroed::<T>(&opts.into(), len).map(Self::from_parts)
    }

    /// Opens an existing array of `T`, made by [`RawArray::create`] or
    /// [`Array::create`](crate::Array::create).
    ///
    /// # Errors
    /// [`OpenError`]: not found, not an array, created for another element type, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        array::open::<T>(&opts.into()).map(Self::from_parts)
    }

    /// Opens the array, creating it from `init` if it does not exist. The length is the
    /// creator's; check [`RawArray::len`].
    ///
    /// # Errors
    /// As [`RawArray::create`] and [`RawArray::open`].
    pub fn open_or_create(opts: impl Into<Options>, init: &[T]) -> Result<Self, OpenOrCreateError> {
        array::open_or_create(&opts.into(), init).map(Self::from_parts)
    }

    fn data(&self) -> Region<'_> {
        array::data::<T>(&self.seg, self.len)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `index`, or `None` if out of bounds. Never waits.
    pub fn get(&self, index: usize) -> Option<T> {
        let mut v = T::new_zeroed();
        copy_out(self.data(), self.len, index, std::slice::from_mut(&mut v)).ok()?;
        Some(v)
    }

    /// Sets element `index`. Never waits.
    ///
    /// # Errors
    /// [`OutOfBounds`] if `index >= len`.
    pub fn set(&self, index: usize, value: T) -> Result<(), OutOfBounds> {
        copy_in(self.data(), self.len, index, std::slice::from_ref(&value))
    }

    /// Copies elements `start..start + out.len()` into `out`, element by element (not a
    /// snapshot: see [What "unlocked" gives you](RawArray#what-unlocked-gives-you)).
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the array; `out` is then untouched.
    pub fn read_into(&self, start: usize, out: &mut [T]) -> Result<(), OutOfBounds> {
        copy_out(self.data(), self.len, start, out)
    }

    /// Copies `values` into elements `start..start + values.len()`, element by element.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the array; nothing is written then.
    pub fn write_from(&self, start: usize, values: &[T]) -> Result<(), OutOfBounds> {
        copy_in(self.data(), self.len, start, values)
    }

    /// A copy of every element, element by element (not a snapshot).
    pub fn to_vec(&self) -> Vec<T> {
        let mut v: Vec<T> = (0..self.len).map(|_| T::new_zeroed()).collect();
        // Cannot fail: `v` has exactly `len` elements.
        let _ = copy_out(self.data(), self.len, 0, &mut v);
        v
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}
