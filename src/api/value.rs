//! `Value<T>`: a named shared scalar (`multiprocessing.Value`).

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Pod, ensure};
use crate::cell::seqlock::{self, SeqLock};
use crate::error::{CreateError, OpenError, OpenOrCreateError};
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};

/// `param0`: the value is one atomic word.
const MODE_WORD: u64 = 1;
/// `param0`: the value is a double-buffered seqlock.
const MODE_SEQLOCK: u64 = 2;

/// A value of plain-data type `T` shared by name between processes, like
/// `multiprocessing.Value`.
///
/// A torn read is impossible. Types of up to 8 bytes (integers, floats, small structs) are a
/// single atomic word: every operation is lock-free, and `update`/`fetch_add` are CAS loops.
/// Larger types use a double-buffered seqlock: reads never wait for a writer (they retry if
/// two writes overlap one read, and only under a storm of writes take the writer lock
/// briefly) and never see a half-written value; writes take a robust lock.
///
/// # Crash safety
/// A process killed in the middle of any operation leaves the last completely stored value
/// readable: word values are written by one atomic store, and a seqlock writer only writes the
/// buffer readers are not looking at. A writer killed while holding the seqlock's writer lock
/// is detected (its pid is dead) and the lock is taken over by the next writer.
///
/// # Examples
/// ```
/// let name = format!("doc-value-{}", std::process::id());
/// let hits = shmq::Value::<u64>::create(name.as_str(), 0)?;
/// // In another process: shmq::Value::<u64>::open(name)?
/// hits.fetch_add(5);
/// assert_eq!(hits.load(), 5);
/// // Opening with another type is refused.
/// assert!(matches!(shmq::Value::<f32>::open(name.as_str()), Err(shmq::OpenError::TypeMismatch { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Value<T: Pod> {
    seg: Segment,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("name", &self.seg.name())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

fn mode<T>() -> u64 {
    if size_of::<T>() <= 8 && align_of::<T>() <= 8 {
        MODE_WORD
    } else {
        MODE_SEQLOCK
    }
}

fn payload_size<T>() -> usize {
    if mode::<T>() == MODE_WORD {
        64
    } else {
        seqlock::region_size(size_of::<T>())
    }
}

fn to_word<T: Pod>(v: &T) -> u64 {
    let mut b = [0u8; 8];
    b[..size_of::<T>()].copy_from_slice(v.as_bytes());
    u64::from_ne_bytes(b)
}

fn from_word<T: Pod>(w: u64) -> T {
    let b = w.to_ne_bytes();
    // Exactly size_of::<T>() bytes and T: FromBytes, so this cannot fail; zero is a fallback
    // that keeps the code panic-free.
    T::read_from_bytes(&b[..size_of::<T>()]).unwrap_or_else(|_| T::new_zeroed())
}

impl<T: Pod> Value<T> {
    fn layout() -> Layout {
        Layout {
            kind: Kind::Value,
            align: 64,
            ty: TypeInfo::of::<T>(),
            payload_size: payload_size::<T>(),
            param0: mode::<T>(),
            param1: 0,
        }
    }

    fn init(init: &T) -> impl FnOnce(crate::region::Region<'_>) + '_ {
        move |r| {
            if mode::<T>() == MODE_WORD {
                if let Some(w) = r.u64_at(0) {
                    w.store(to_word(init), Ordering::Relaxed);
                }
            } else if let Some(cell) = SeqLock::new(r, size_of::<T>()) {
                cell.init(init.as_bytes());
            }
        }
    }

    /// Creates the value, set to `init`.
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, permissions.
    pub fn create(opts: impl Into<Options>, init: T) -> Result<Self, CreateError> {
        let seg = Segment::create_kind(&opts.into(), &Self::layout(), Self::init(&init))?;
        Ok(Value {
            seg,
            _t: PhantomData,
        })
    }

    /// Opens an existing value of type `T`.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a value, [`OpenError::TypeMismatch`] if it was created
    /// with another type, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Self::check(Segment::open_kind(
            &opts.into(),
            Kind::Value,
            TypeInfo::of::<T>(),
        )?)
    }

    /// Opens the value, creating it set to `init` if it does not exist.
    ///
    /// # Errors
    /// As [`Value::create`] and [`Value::open`].
    pub fn open_or_create(opts: impl Into<Options>, init: T) -> Result<Self, OpenOrCreateError> {
        let seg = Segment::open_or_create_kind(&opts.into(), &Self::layout(), Self::init(&init))?;
        Ok(Self::check(seg)?)
    }

    fn check(seg: Segment) -> Result<Self, OpenError> {
        let info = seg.info();
        ensure(&seg, info.param0 == mode::<T>(), || {
            format!("value mode {} does not suit the type", info.param0)
        })?;
        ensure(
            &seg,
            info.payload_size >= payload_size::<T>() as u64,
            || "value area too small".into(),
        )?;
        Ok(Value {
            seg,
            _t: PhantomData,
        })
    }

    fn word(&self) -> Option<&AtomicU64> {
        if mode::<T>() == MODE_WORD {
            self.seg.payload().u64_at(0)
        } else {
            None
        }
    }

    fn cell(&self) -> SeqLock<'_> {
        SeqLock::new(self.seg.payload(), size_of::<T>()).expect("value area size validated at open")
    }

    /// The current value.
    #[inline]
    pub fn load(&self) -> T {
        if let Some(w) = self.word() {
            // Acquire: pairs with the Release of `store`/`update`, so data the storer wrote
            // before the value is visible after reading it.
            return from_word(w.load(Ordering::Acquire));
        }
        let mut v = T::new_zeroed();
        self.cell().read(v.as_mut_bytes());
        v
    }

    /// Replaces the value.
    #[inline]
    pub fn store(&self, value: T) {
        self.swap(value);
    }

    /// Replaces the value, returning the previous one.
    pub fn swap(&self, value: T) -> T {
        if let Some(w) = self.word() {
            // AcqRel: release for readers of the new value, acquire of the one replaced.
            return from_word(w.swap(to_word(&value), Ordering::AcqRel));
        }
        self.locked(|_| value)
    }

    /// Atomically replaces the value with `f(current)`, returning the previous value. `f` may
    /// be called more than once (word values retry on contention), so it should be pure.
    pub fn update(&self, mut f: impl FnMut(T) -> T) -> T {
        if let Some(w) = self.word() {
            // AcqRel: as in `swap`. The closure always returns Some, so this cannot fail.
            let prev = w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |x| {
                Some(to_word(&f(from_word(x))))
            });
            return from_word(prev.unwrap_or_else(|x| x));
        }
        self.locked(f)
    }

    /// Stores `new` if the value is bytewise equal to `current`. Returns the previous value:
    /// `Ok` if it was replaced, `Err` with the value found if not.
    ///
    /// # Errors
    /// `Err(found)` when the value was not `current`.
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        if let Some(w) = self.word() {
            // AcqRel/Acquire: as in `swap`.
            return w
                .compare_exchange(
                    to_word(&current),
                    to_word(&new),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map(from_word)
                .map_err(from_word);
        }
        let mut replaced = false;
        let prev = self.locked(|old| {
            if old.as_bytes() == current.as_bytes() {
                replaced = true;
                T::read_from_bytes(new.as_bytes()).unwrap_or_else(|_| T::new_zeroed())
            } else {
                old
            }
        });
        if replaced { Ok(prev) } else { Err(prev) }
    }

    /// Seqlock values: read-modify-write under the writer lock; returns the previous value.
    fn locked(&self, f: impl FnOnce(T) -> T) -> T {
        let cell = self.cell();
        // A writer that died holding the lock only ever wrote the inactive buffer, so the
        // active one is whole and we carry on either way.
        let _ = cell.lock();
        // Unlocks even if `f` panics, so a panicking closure cannot wedge every process.
        struct Unlock<'a>(SeqLock<'a>);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.unlock();
            }
        }
        let held = Unlock(cell);
        let mut old = T::new_zeroed();
        held.0.read_held(old.as_mut_bytes());
        let new = f(T::read_from_bytes(old.as_bytes()).unwrap_or_else(|_| T::new_zeroed()));
        held.0.write_held(new.as_bytes());
        drop(held);
        old
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// Types with `fetch_add` and `fetch_sub` on a [`Value`]: integers (wrapping) and floats.
pub trait Number: Pod + Copy + PartialOrd {
    /// `self + rhs` (wrapping for integers).
    fn add(self, rhs: Self) -> Self;
    /// `self - rhs` (wrapping for integers).
    fn sub(self, rhs: Self) -> Self;
}

/// Integer types, with bitwise `fetch_*` operations on a [`Value`].
pub trait Integer:
    Number
    + std::ops::BitAnd<Output = Self>
    + std::ops::BitOr<Output = Self>
    + std::ops::BitXor<Output = Self>
{
}

macro_rules! numbers {
    (int: $($i:ty),*; float: $($f:ty),*) => {
        $(impl Number for $i {
            fn add(self, rhs: Self) -> Self { self.wrapping_add(rhs) }
            fn sub(self, rhs: Self) -> Self { self.wrapping_sub(rhs) }
        }
        impl Integer for $i {})*
        $(impl Number for $f {
            fn add(self, rhs: Self) -> Self { self + rhs }
            fn sub(self, rhs: Self) -> Self { self - rhs }
        })*
    };
}
numbers!(int: u8, u16, u32, u64, i8, i16, i32, i64; float: f32, f64);

impl<T: Number> Value<T> {
    /// Adds `v` (wrapping for integers), returning the previous value.
    pub fn fetch_add(&self, v: T) -> T {
        self.update(|x| x.add(v))
    }

    /// Subtracts `v` (wrapping for integers), returning the previous value.
    pub fn fetch_sub(&self, v: T) -> T {
        self.update(|x| x.sub(v))
    }

    /// Stores the larger of the value and `v`, returning the previous value.
    pub fn fetch_max(&self, v: T) -> T {
        self.update(|x| if v > x { v } else { x })
    }

    /// Stores the smaller of the value and `v`, returning the previous value.
    pub fn fetch_min(&self, v: T) -> T {
        self.update(|x| if v < x { v } else { x })
    }
}

impl<T: Integer> Value<T> {
    /// Bitwise and with `v`, returning the previous value.
    pub fn fetch_and(&self, v: T) -> T {
        self.update(|x| x & v)
    }

    /// Bitwise or with `v`, returning the previous value.
    pub fn fetch_or(&self, v: T) -> T {
        self.update(|x| x | v)
    }

    /// Bitwise xor with `v`, returning the previous value.
    pub fn fetch_xor(&self, v: T) -> T {
        self.update(|x| x ^ v)
    }
}
