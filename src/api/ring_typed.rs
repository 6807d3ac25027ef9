#![allow(unsafe_code)]
//! Typed ends of a ring: `Sender<T>` / `Receiver<T>` move plain-data values written in place.

use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::Pod;
use super::Waiting;
use super::ring::{Consumer, Fail, Producer, ReadGuard, WriteGrant};
use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

/// `msg` as a `T` in place, if it is exactly one `T` and aligned for it.
pub(crate) fn in_place<T: Pod>(msg: &[u8]) -> Option<&T> {
    let ptr = msg.as_ptr().cast::<T>();
    if msg.len() != size_of::<T>() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: `ptr` is aligned for `T` and points at `size_of::<T>()` bytes that `msg`
    // borrows, so they stay valid for the returned lifetime; any bit pattern is a valid `T`
    // (`T: Pod`), and `T` has no interior mutability (also `Pod`'s contract), so a shared
    // reference over bytes that are only read while `msg` lives is sound.
    Some(unsafe { &*ptr })
}

/// Calls `f` with the `T` in `msg` (exactly one `T`): in place if aligned, else a copy.
fn with_value<T: Pod>(msg: &[u8], f: impl FnOnce(&T)) {
    match in_place::<T>(msg) {
        Some(v) => f(v),
        None => {
            if let Ok(v) = T::read_from_bytes(msg) {
                f(&v)
            }
        }
    }
}

/// Sends values of `T` over a ring, each written in place as one message of `size_of::<T>()`
/// bytes.
///
/// Ring records are 8-byte aligned. A `T` aligned to more than 8 (`#[repr(align(64))]`, say)
/// is still accepted: where a record is not aligned for it, a [`TypedGrant`] and a
/// [`TypedGuard`] hold an aligned copy instead (written into the ring on
/// [`commit`](TypedGrant::commit), read out of it on receipt), so only such types lose the
/// zero-copy path, and only for those records.
///
/// ```
/// let name = format!("doc-typed-{}", std::process::id());
/// let ring = shmq::Ring::create(name.as_str(), 1024)?;
/// let mut tx = shmq::Sender::<[u32; 4]>::new(ring.producer()?)?;
/// let mut rx = shmq::Receiver::<[u32; 4]>::new(ring.consumer()?);
/// let mut slot = tx.reserve()?;
/// *slot = [1, 2, 3, 4];           // written straight into the ring
/// slot.commit();
/// assert_eq!(*rx.recv()?, [1, 2, 3, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sender<T: Pod> {
    inner: Producer,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: Pod> Sender<T> {
    /// Wraps a producer.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if a `T` is larger than the ring's maximum message.
    pub fn new(inner: Producer) -> Result<Self, SendError> {
        if size_of::<T>() > inner.max_message() {
            return Err(SendError::TooLarge {
                len: size_of::<T>(),
                max: inner.max_message(),
            });
        }
        Ok(Sender {
            inner,
            _t: PhantomData,
        })
    }

    /// Room for one `T` in the ring, waiting as needed; write it through the grant, then
    /// [`commit`](TypedGrant::commit).
    ///
    /// # Errors
    /// As [`Producer::reserve`].
    pub fn reserve(&mut self) -> Result<TypedGrant<'_, T>, SendError> {
        Ok(TypedGrant::new(self.inner.reserve(size_of::<T>())?))
    }

    /// Room for one `T` if there is room now.
    ///
    /// # Errors
    /// As [`Producer::try_reserve`].
    pub fn try_reserve(&mut self) -> Result<TypedGrant<'_, T>, TrySendError> {
        Ok(TypedGrant::new(self.inner.try_reserve(size_of::<T>())?))
    }

    /// Room for one `T`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Producer::reserve_timeout`].
    pub fn reserve_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<TypedGrant<'_, T>, SendTimeoutError> {
        Ok(TypedGrant::new(
            self.inner.reserve_timeout(size_of::<T>(), timeout)?,
        ))
    }

    /// Sends a copy of `value`, waiting as needed.
    ///
    /// # Errors
    /// As [`Producer::send`].
    pub fn send(&mut self, value: &T) -> Result<(), SendError> {
        self.inner.send(value.as_bytes())
    }

    /// Sends a copy of `value` if there is room now.
    ///
    /// # Errors
    /// As [`Producer::try_send`].
    pub fn try_send(&mut self, value: &T) -> Result<(), TrySendError> {
        self.inner.try_send(value.as_bytes())
    }

    /// Sends a copy of `value`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Producer::send_timeout`].
    pub fn send_timeout(&mut self, value: &T, timeout: Duration) -> Result<(), SendTimeoutError> {
        self.inner.send_timeout(value.as_bytes(), timeout)
    }

    /// Sends a copy of `value`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Producer::send_timeout`].
    pub fn send_deadline(&mut self, value: &T, deadline: Instant) -> Result<(), SendTimeoutError> {
        self.inner.send_deadline(value.as_bytes(), deadline)
    }

    /// Room for one `T`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Producer::reserve_timeout`].
    pub fn reserve_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<TypedGrant<'_, T>, SendTimeoutError> {
        Ok(TypedGrant::new(
            self.inner.reserve_deadline(size_of::<T>(), deadline)?,
        ))
    }

    /// The untyped producer.
    pub fn into_inner(self) -> Producer {
        self.inner
    }
}

/// Room for one `T` inside the ring; derefs to `T`. Publishes nothing unless committed.
///
/// The `T` is written in place, or, where the record is not aligned for a `T` aligned above
/// 8 bytes, into an aligned copy that [`commit`](TypedGrant::commit) writes into the ring.
#[must_use = "a grant publishes nothing unless committed"]
pub struct TypedGrant<'a, T: Pod> {
    grant: WriteGrant<'a>,
    /// The value being written when the record is not aligned for `T` (it starts as a copy
    /// of the record's bytes, as the in-place value does). `None`: the record is aligned.
    local: Option<T>,
}

impl<'a, T: Pod> TypedGrant<'a, T> {
    /// Wraps a grant of exactly `size_of::<T>()` bytes.
    fn new(grant: WriteGrant<'a>) -> Self {
        let local = if in_place::<T>(&grant).is_some() {
            None
        } else {
            T::read_from_bytes(&grant).ok()
        };
        TypedGrant { grant, local }
    }

    /// Publishes the value.
    pub fn commit(self) {
        let TypedGrant { mut grant, local } = self;
        if let Some(v) = local {
            let dst = grant.as_mut_ptr().cast::<T>();
            // SAFETY: the grant is `size_of::<T>()` writable bytes (reserved so), exclusively
            // ours until committed; `write_unaligned` needs no alignment.
            unsafe { std::ptr::write_unaligned(dst, v) };
        }
        grant.commit();
    }
}

impl<T: Pod> Deref for TypedGrant<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.local {
            Some(v) => v,
            // SAFETY: `local` is `None` only if the grant (exactly `size_of::<T>()` bytes, as
            // reserved) is aligned for `T` (checked in `new`); its bytes are exclusively ours
            // while the grant lives; any bit pattern is a valid `T` (`T: Pod`).
            None => unsafe { &*self.grant.as_ptr().cast::<T>() },
        }
    }
}

impl<T: Pod> DerefMut for TypedGrant<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.local {
            Some(v) => v,
            // SAFETY: as in `deref`; `&mut self` makes this the only reference.
            None => unsafe { &mut *self.grant.as_mut_ptr().cast::<T>() },
        }
    }
}

impl<T: Pod> fmt::Debug for TypedGrant<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedGrant").finish_non_exhaustive()
    }
}

/// Receives values of `T` sent by a [`Sender<T>`], in place.
pub struct Receiver<T: Pod> {
    inner: Consumer,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("inner", &self.inner)
            .finish()
    }
}

fn wrong_size(len: usize, want: usize) -> String {
    format!("message of {len} bytes where a value of {want} bytes was expected")
}

impl<T: Pod> Receiver<T> {
    /// Wraps a consumer.
    pub fn new(inner: Consumer) -> Self {
        Receiver {
            inner,
            _t: PhantomData,
        }
    }

    fn typed<'a>(guard: ReadGuard<'a>) -> Result<TypedGuard<'a, T>, String> {
        if guard.len() == size_of::<T>() {
            let local = if in_place::<T>(&guard).is_some() {
                None
            } else {
                T::read_from_bytes(&guard).ok()
            };
            Ok(TypedGuard { guard, local })
        } else {
            // Dropping the guard releases the stray message, so the stream can go on.
            Err(wrong_size(guard.len(), size_of::<T>()))
        }
    }

    /// The next value, in place, waiting as needed.
    ///
    /// # Errors
    /// As [`Consumer::recv`]; `Corrupted` for a message of the wrong size (it is skipped).
    pub fn recv(&mut self) -> Result<TypedGuard<'_, T>, RecvError> {
        Self::typed(self.inner.recv()?).map_err(|reason| RecvError::Corrupted { reason })
    }

    /// The next value if one is waiting.
    ///
    /// # Errors
    /// As [`Consumer::try_recv`]; `Corrupted` for a message of the wrong size (skipped).
    pub fn try_recv(&mut self) -> Result<TypedGuard<'_, T>, TryRecvError> {
        Self::typed(self.inner.try_recv()?).map_err(|reason| TryRecvError::Corrupted { reason })
    }

    /// The next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Consumer::recv_timeout`]; `Corrupted` for a message of the wrong size (skipped).
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<TypedGuard<'_, T>, RecvTimeoutError> {
        Self::typed(self.inner.recv_timeout(timeout)?)
            .map_err(|reason| RecvTimeoutError::Corrupted { reason })
    }

    /// The next value in place, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn recv_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<TypedGuard<'_, T>, RecvTimeoutError> {
        Self::typed(self.inner.recv_deadline(deadline)?)
            .map_err(|reason| RecvTimeoutError::Corrupted { reason })
    }

    /// A copy of the next value, waiting as needed.
    ///
    /// # Errors
    /// As [`Receiver::recv`].
    pub fn recv_value(&mut self) -> Result<T, RecvError> {
        let g = self.recv()?;
        Ok(T::read_from_bytes(g.guard.deref()).unwrap_or_else(|_| T::new_zeroed()))
    }

    /// A copy of the next value if one is waiting.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`].
    pub fn try_recv_value(&mut self) -> Result<T, TryRecvError> {
        Ok(self.try_recv()?.value())
    }

    /// A copy of the next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn recv_value_timeout(&mut self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        Ok(self.recv_timeout(timeout)?.value())
    }

    /// A copy of the next value, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn recv_value_deadline(&mut self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        Ok(self.recv_deadline(deadline)?.value())
    }

    /// Hands every value waiting now to `f`, in order (in place where aligned), then
    /// releases them all with one store. Returns how many there were (0: none waiting).
    /// Does not wait. See [`Consumer::try_drain`].
    ///
    /// ```
    /// let name = format!("doc-typed-drain-{}", std::process::id());
    /// let ring = shmq::Ring::create(name.as_str(), 1024)?;
    /// let mut tx = shmq::Sender::<u64>::new(ring.producer()?)?;
    /// let mut rx = shmq::Receiver::<u64>::new(ring.consumer()?);
    /// for i in 1..=3 {
    ///     tx.send(&i)?;
    /// }
    /// let mut sum = 0;
    /// assert_eq!(rx.try_drain(|v| sum += *v)?, 3);
    /// assert_eq!(sum, 6);
    /// assert_eq!(rx.try_drain(|_| {})?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// `Disconnected` when the producer is gone and nothing is left; `Corrupted` if the first
    /// record fails its checks or is not one `T` (that message is skipped; a later one ends
    /// the batch, and the next call reports it).
    pub fn try_drain(&mut self, f: impl FnMut(&T)) -> Result<usize, TryRecvError> {
        match self.drain_with(Waiting::No, f) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(reason)) => Err(TryRecvError::Corrupted { reason }),
            Err(fail) => fail.try_recv().map_or(Ok(0), Err),
        }
    }

    /// As [`Receiver::try_drain`], but first waits as long as needed for a value: returns
    /// at least 1.
    ///
    /// # Errors
    /// As [`Receiver::recv`].
    pub fn drain(&mut self, f: impl FnMut(&T)) -> Result<usize, RecvError> {
        match self.drain_with(Waiting::Forever, f) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(reason)) => Err(RecvError::Corrupted { reason }),
            Err(fail) => Err(fail.recv()),
        }
    }

    /// As [`Receiver::drain`], waiting at most `timeout` for the first value.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn drain_timeout(
        &mut self,
        timeout: Duration,
        f: impl FnMut(&T),
    ) -> Result<usize, RecvTimeoutError> {
        self.drain_bounded(Waiting::For(timeout), f)
    }

    /// As [`Receiver::drain`], waiting until `deadline` at most for the first value.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn drain_deadline(
        &mut self,
        deadline: Instant,
        f: impl FnMut(&T),
    ) -> Result<usize, RecvTimeoutError> {
        self.drain_bounded(Waiting::Until(deadline), f)
    }

    fn drain_bounded(
        &mut self,
        waiting: Waiting,
        f: impl FnMut(&T),
    ) -> Result<usize, RecvTimeoutError> {
        match self.drain_with(waiting, f) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(reason)) => Err(RecvTimeoutError::Corrupted { reason }),
            Err(fail) => Err(fail.bounded_recv()),
        }
    }

    /// Drains values while they are one `T` each. `Ok(Err(reason))`: the first message was
    /// not, and was skipped (so the stream goes on).
    fn drain_with(
        &mut self,
        waiting: Waiting,
        mut f: impl FnMut(&T),
    ) -> Result<Result<usize, String>, Fail> {
        let (n, refused) = self.inner.drain_with(waiting, |msg| {
            if msg.len() != size_of::<T>() {
                return false;
            }
            with_value(msg, &mut f);
            true
        })?;
        if n == 0 && refused {
            let len = self.inner.skip()?;
            return Ok(Err(wrong_size(len, size_of::<T>())));
        }
        Ok(Ok(n))
    }

    /// The untyped consumer.
    pub fn into_inner(self) -> Consumer {
        self.inner
    }
}

/// A received `T`, in place in the ring (or, for a `T` aligned above 8 bytes in a record not
/// aligned for it, an aligned copy); released when dropped.
#[must_use = "the value is released as soon as the guard drops"]
pub struct TypedGuard<'a, T: Pod> {
    guard: ReadGuard<'a>,
    /// A copy when the record is not aligned for `T`; `None`: read in place.
    local: Option<T>,
}

impl<T: Pod> TypedGuard<'_, T> {
    /// A copy of the value.
    pub(crate) fn value(&self) -> T {
        T::read_from_bytes(&self.guard).expect("the message is one T (checked in `typed`)")
    }
}

impl<T: Pod> Deref for TypedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.local {
            Some(v) => v,
            // SAFETY: `local` is `None` only if the message (exactly `size_of::<T>()` bytes,
            // checked in `typed`) is aligned for `T`; it stays ours until the guard drops, and
            // any bit pattern is a valid `T` (`T: Pod`).
            None => unsafe { &*self.guard.as_ptr().cast::<T>() },
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for TypedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
