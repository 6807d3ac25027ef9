//! `Value<T>`: a named shared scalar (`multiprocessing.Value`).

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Pod, READ_PATIENCE, Waiting, ensure};
use crate::cell::seqlock::{self, SeqLock};
use crate::error::{CreateError, OpenError, OpenOrCreateError, ValueError};
use crate::segment::{Kind, Layout, Options, Segment};
use crate::sync::mutex::Stopped;
use crate::sync::park::deadline_after;
use crate::sys::interrupt::uninterruptible;

/// `param0`: the value is one atomic word.
const MODE_WORD: u64 = 1;
/// `param0`: the value is a double-buffered seqlock.
const MODE_SEQLOCK: u64 = 2;

/// A value of plain-data type `T` shared by name between processes, like
/// `multiprocessing.Value`.
///
/// A torn read is impossible while every process follows the protocol. Types of up to 8
/// bytes (integers, floats, small structs) are a single atomic word: every operation is
/// lock-free, and `update`/`fetch_add` are CAS loops. Larger types use a double-buffered
/// seqlock: reads never wait for a writer (they retry if two writes overlap one read, and
/// only under a storm of writes take the writer lock briefly) and never see a half-written
/// value; writes take a robust lock.
///
/// # Blocking and bounds
/// Word values (up to 8 bytes) never wait: every call below returns at once, and the bounded
/// forms always succeed. For seqlock values:
///
/// | call | waits for | at most |
/// |------|-----------|---------|
/// | [`load`](Value::load) | a consistent copy | 1 second, then returns the bytes as they are (see its docs) |
/// | [`load_timeout`](Value::load_timeout), [`load_deadline`](Value::load_deadline) | a consistent copy | the caller's bound, then [`ValueError::Timeout`] |
/// | [`store`](Value::store), [`swap`](Value::swap), [`update`](Value::update), [`compare_exchange`](Value::compare_exchange) | the writer lock | as long as a live process holds it |
/// | `try_store`, `try_swap`, `try_update`, `try_compare_exchange` | nothing | [`ValueError::WouldBlock`] at once |
/// | `store_timeout`/`_deadline`, `swap_…`, `update_…`, `compare_exchange_…` | the writer lock | the caller's bound, then [`ValueError::Timeout`] |
///
/// A writer lock held by a dead process is taken over (within about 50 ms), so only a
/// *live* holder makes writers wait: an honest one holds it for one copy (plus the closure,
/// in `update`). But the lock word lives in shared memory, and a buggy or hostile peer that
/// writes a live process's pid into it delays the plain writers for as long as that process
/// lives, like [`Mutex::lock`](crate::Mutex::lock); use the bounded forms where that
/// matters. The `fetch_*` helpers are atomic for the built-in number types; for a
/// user-defined [`Number`] over 8 bytes they wait as [`update`](Value::update) does.
///
/// The plain forms are not interruptible (they have no error to say so with); the bounded
/// forms return [`ValueError::Interrupted`] when an [`Interrupter`](crate::Interrupter) the
/// thread watches fires.
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
    // Exactly size_of::<T>() bytes and T: Pod, so this cannot fail; zero is a fallback
    // that keeps the code panic-free.
    T::read_from_bytes(&b[..size_of::<T>()]).unwrap_or_else(|_| T::new_zeroed())
}

impl<T: Pod> Value<T> {
    fn layout() -> Layout {
        Layout {
            kind: Kind::Value,
            align: 64,
            ty: crate::api::type_info::<T>(),
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
            crate::api::type_info::<T>(),
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

    /// The current value. Never torn by honest writers, and bounded: it waits at most about
    /// a second, even against a hostile peer.
    ///
    /// Word values (up to 8 bytes) are one atomic load. Seqlock values are read optimistically
    /// (retrying if a write overlapped the read) and, under a storm of writes, by briefly
    /// taking the writer lock. If that yields no consistent copy within 1 second, which takes
    /// a live process keeping the writer lock for that whole second while the buffer readers
    /// are sent to is marked mid-write or keeps changing (a hostile or broken peer; honest
    /// writers hold the lock for one copy and never write that buffer), `load` returns the
    /// bytes of that buffer as they are then: a valid `T`, as every bit pattern is, but
    /// possibly a mix of two stores or whatever the peer wrote. Use [`Value::load_timeout`]
    /// to get an error instead.
    #[inline]
    pub fn load(&self) -> T {
        if let Some(w) = self.word() {
            // Acquire: pairs with the Release of `store`/`update`, so data the storer wrote
            // before the value is visible after reading it.
            return from_word(w.load(Ordering::Acquire));
        }
        let cell = self.cell();
        let mut v = T::new_zeroed();
        // Not interruptible: `load` has no error to report it with (`load_timeout` has).
        if uninterruptible(|| cell.read(v.as_mut_bytes(), || deadline_after(READ_PATIENCE)))
            .is_err()
        {
            cell.read_active(v.as_mut_bytes());
        }
        v
    }

    /// The current value, if a consistent copy can be read without waiting.
    ///
    /// # Errors
    /// [`ValueError::WouldBlock`] if a write was under way (seqlock values only: word values
    /// never fail).
    pub fn try_load(&self) -> Result<T, ValueError> {
        self.load_until(|| Some(Instant::now()))
            .map_err(|e| match e {
                ValueError::Timeout(()) => ValueError::WouldBlock(()),
                other => other,
            })
    }

    /// The current value, waiting at most `timeout` for a consistent copy.
    ///
    /// # Errors
    /// [`ValueError::Timeout`] if no consistent copy could be read in time: a live process
    /// (or a forged lock word naming one) held the writer lock while the value was marked
    /// mid-write or kept changing. Word values never fail.
    pub fn load_timeout(&self, timeout: Duration) -> Result<T, ValueError> {
        self.load_until(|| deadline_after(timeout))
    }

    /// The current value, waiting until `deadline` at most for a consistent copy.
    ///
    /// # Errors
    /// As [`Value::load_timeout`].
    pub fn load_deadline(&self, deadline: Instant) -> Result<T, ValueError> {
        self.load_until(|| Some(deadline))
    }

    fn load_until(&self, deadline: impl FnOnce() -> Option<Instant>) -> Result<T, ValueError> {
        if self.word().is_some() {
            return Ok(self.load());
        }
        let mut v = T::new_zeroed();
        self.cell()
            .read(v.as_mut_bytes(), deadline)
            .map_err(value_error)?;
        Ok(v)
    }

    /// Replaces the value. For seqlock values this waits for the writer lock as long as a
    /// live process holds it (see [Blocking and bounds](Value#blocking-and-bounds)).
    #[inline]
    pub fn store(&self, value: T) {
        self.swap(value);
    }

    /// Replaces the value if that needs no waiting.
    ///
    /// # Errors
    /// [`ValueError::WouldBlock`] (with `value`) if a live process holds the writer lock.
    pub fn try_store(&self, value: T) -> Result<(), ValueError<T>> {
        self.swap_with(value, Waiting::No).map(drop)
    }

    /// Replaces the value, waiting at most `timeout` for the writer lock.
    ///
    /// # Errors
    /// [`ValueError::Timeout`] (with `value`) if a live process held the writer lock
    /// throughout.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    ///
    /// let name = format!("doc-value-timeout-{}", std::process::id());
    /// let v = shmq::Value::create(name.as_str(), [0u64; 4])?;
    /// // A peer that keeps the writer lock (or forged its word) costs at most the timeout.
    /// if let Err(e) = v.store_timeout([1; 4], Duration::from_millis(100)) {
    ///     eprintln!("not stored: {e}");
    ///     let _given_back: [u64; 4] = e.into_inner();
    /// }
    /// assert_eq!(v.load_timeout(Duration::from_millis(100))?, [1; 4]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store_timeout(&self, value: T, timeout: Duration) -> Result<(), ValueError<T>> {
        self.swap_with(value, Waiting::For(timeout)).map(drop)
    }

    /// Replaces the value, waiting until `deadline` at most for the writer lock.
    ///
    /// # Errors
    /// As [`Value::store_timeout`].
    pub fn store_deadline(&self, value: T, deadline: Instant) -> Result<(), ValueError<T>> {
        self.swap_with(value, Waiting::Until(deadline)).map(drop)
    }

    /// Replaces the value, returning the previous one. Waits as [`Value::store`] does.
    pub fn swap(&self, value: T) -> T {
        // Not interruptible (no error to report it with): with no deadline and interrupts
        // masked, taking the lock cannot fail.
        match uninterruptible(|| self.swap_with(value, Waiting::Forever)) {
            Ok(prev) => prev,
            Err(e) => e.into_inner(),
        }
    }

    /// Replaces the value if that needs no waiting, returning the previous one.
    ///
    /// # Errors
    /// As [`Value::try_store`].
    pub fn try_swap(&self, value: T) -> Result<T, ValueError<T>> {
        self.swap_with(value, Waiting::No)
    }

    /// Replaces the value, returning the previous one; waits at most `timeout`.
    ///
    /// # Errors
    /// As [`Value::store_timeout`].
    pub fn swap_timeout(&self, value: T, timeout: Duration) -> Result<T, ValueError<T>> {
        self.swap_with(value, Waiting::For(timeout))
    }

    /// Replaces the value, returning the previous one; waits until `deadline` at most.
    ///
    /// # Errors
    /// As [`Value::store_timeout`].
    pub fn swap_deadline(&self, value: T, deadline: Instant) -> Result<T, ValueError<T>> {
        self.swap_with(value, Waiting::Until(deadline))
    }

    fn swap_with(&self, value: T, wait: Waiting) -> Result<T, ValueError<T>> {
        if let Some(w) = self.word() {
            // AcqRel: release for readers of the new value, acquire of the one replaced.
            return Ok(from_word(w.swap(to_word(&value), Ordering::AcqRel)));
        }
        match self.hold(wait) {
            Ok(held) => Ok(held.replace(|_| value)),
            Err(e) => Err(give_back(e, value)),
        }
    }

    /// Atomically replaces the value with `f(current)`, returning the previous value. `f` may
    /// be called more than once (word values retry on contention), so it should be pure.
    /// Waits as [`Value::store`] does; for seqlock values `f` runs with the writer lock held.
    pub fn update(&self, f: impl FnMut(T) -> T) -> T {
        // With no deadline and interrupts masked, taking the lock cannot fail; zero is a
        // panic-free fallback.
        uninterruptible(|| self.update_with(f, Waiting::Forever))
            .unwrap_or_else(|_| T::new_zeroed())
    }

    /// As [`Value::update`] if that needs no waiting for the writer lock.
    ///
    /// # Errors
    /// [`ValueError::WouldBlock`] if a live process holds the writer lock; `f` was not called.
    pub fn try_update(&self, f: impl FnMut(T) -> T) -> Result<T, ValueError> {
        self.update_with(f, Waiting::No)
    }

    /// As [`Value::update`], waiting at most `timeout` for the writer lock.
    ///
    /// # Errors
    /// [`ValueError::Timeout`] if a live process held the writer lock throughout; `f` was
    /// not called.
    pub fn update_timeout(
        &self,
        f: impl FnMut(T) -> T,
        timeout: Duration,
    ) -> Result<T, ValueError> {
        self.update_with(f, Waiting::For(timeout))
    }

    /// As [`Value::update`], waiting until `deadline` at most for the writer lock.
    ///
    /// # Errors
    /// As [`Value::update_timeout`].
    pub fn update_deadline(
        &self,
        f: impl FnMut(T) -> T,
        deadline: Instant,
    ) -> Result<T, ValueError> {
        self.update_with(f, Waiting::Until(deadline))
    }

    fn update_with(&self, mut f: impl FnMut(T) -> T, wait: Waiting) -> Result<T, ValueError> {
        if let Some(w) = self.word() {
            // AcqRel: as in `swap`. The closure always returns Some, so this cannot fail.
            let prev = w.fetch_update(Ordering::AcqRel, Ordering::Acquire, |x| {
                Some(to_word(&f(from_word(x))))
            });
            return Ok(from_word(prev.unwrap_or_else(|x| x)));
        }
        Ok(self.hold(wait)?.replace(f))
    }

    /// Stores `new` if the value is bytewise equal to `current`. Returns the previous value:
    /// `Ok` if it was replaced, `Err` with the value found if not. Waits as [`Value::store`]
    /// does.
    ///
    /// # Errors
    /// `Err(found)` when the value was not `current`.
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        // Unreachable error: with no deadline and interrupts masked, taking the lock cannot
        // fail.
        match uninterruptible(|| self.compare_exchange_with(current, new, Waiting::Forever)) {
            Ok(r) => r,
            Err(_) => Err(T::new_zeroed()),
        }
    }

    /// As [`Value::compare_exchange`] if that needs no waiting for the writer lock. The
    /// inner `Result` is `compare_exchange`'s.
    ///
    /// # Errors
    /// [`ValueError::WouldBlock`] (with `new`) if a live process holds the writer lock;
    /// nothing was compared.
    pub fn try_compare_exchange(&self, current: T, new: T) -> Result<Result<T, T>, ValueError<T>> {
        self.compare_exchange_with(current, new, Waiting::No)
    }

    /// As [`Value::compare_exchange`], waiting at most `timeout` for the writer lock. The
    /// inner `Result` is `compare_exchange`'s.
    ///
    /// # Errors
    /// [`ValueError::Timeout`] (with `new`) if a live process held the writer lock
    /// throughout; nothing was compared.
    pub fn compare_exchange_timeout(
        &self,
        current: T,
        new: T,
        timeout: Duration,
    ) -> Result<Result<T, T>, ValueError<T>> {
        self.compare_exchange_with(current, new, Waiting::For(timeout))
    }

    /// As [`Value::compare_exchange`], waiting until `deadline` at most for the writer lock.
    ///
    /// # Errors
    /// As [`Value::compare_exchange_timeout`].
    pub fn compare_exchange_deadline(
        &self,
        current: T,
        new: T,
        deadline: Instant,
    ) -> Result<Result<T, T>, ValueError<T>> {
        self.compare_exchange_with(current, new, Waiting::Until(deadline))
    }

    fn compare_exchange_with(
        &self,
        current: T,
        new: T,
        wait: Waiting,
    ) -> Result<Result<T, T>, ValueError<T>> {
        if let Some(w) = self.word() {
            // AcqRel/Acquire: as in `swap`.
            return Ok(w
                .compare_exchange(
                    to_word(&current),
                    to_word(&new),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .map(from_word)
                .map_err(from_word));
        }
        let held = match self.hold(wait) {
            Ok(held) => held,
            Err(e) => return Err(give_back(e, new)),
        };
        let mut replaced = false;
        let prev = held.replace(|old| {
            if old.as_bytes() == current.as_bytes() {
                replaced = true;
                new
            } else {
                old
            }
        });
        Ok(if replaced { Ok(prev) } else { Err(prev) })
    }

    /// Seqlock values: takes the writer lock as `wait` allows. A writer that died holding it
    /// only ever wrote the inactive buffer, so the active one is whole and we carry on
    /// either way.
    fn hold(&self, wait: Waiting) -> Result<Held<'_, T>, ValueError> {
        let cell = self.cell();
        match wait.deadline() {
            None => cell.try_lock().ok_or(ValueError::WouldBlock(()))?,
            Some(deadline) => cell.lock(deadline).map_err(value_error)?,
        };
        Ok(Held {
            cell,
            _t: PhantomData,
        })
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// The value `v` handed back in a lock error.
fn give_back<T>(e: ValueError, v: T) -> ValueError<T> {
    match e {
        ValueError::WouldBlock(()) => ValueError::WouldBlock(v),
        ValueError::Timeout(()) => ValueError::Timeout(v),
        ValueError::Interrupted(()) => ValueError::Interrupted(v),
    }
}

/// A seqlock value's writer lock, held; unlocks on drop, so a panicking `update` closure
/// cannot wedge every process.
struct Held<'a, T> {
    cell: SeqLock<'a>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> Held<'_, T> {
    /// Stores `f(current)` and returns the value replaced; unlocks.
    fn replace(self, f: impl FnOnce(T) -> T) -> T {
        let mut old = T::new_zeroed();
        self.cell.read_active(old.as_mut_bytes());
        let new = f(T::read_from_bytes(old.as_bytes()).unwrap_or_else(|_| T::new_zeroed()));
        self.cell.write_held(new.as_bytes());
        old
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        self.cell.unlock();
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

/// A seqlock wait that stopped, as the bounded calls' error.
fn value_error(s: Stopped) -> ValueError {
    match s {
        Stopped::TimedOut => ValueError::Timeout(()),
        Stopped::Interrupted => ValueError::Interrupted(()),
    }
}
