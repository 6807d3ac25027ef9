#![allow(unsafe_code)]
//! Typed ends of a ring: `Sender<T>` / `Receiver<T>` move plain-data values written in place.

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::Pod;
use super::ring::{Consumer, Producer, ReadGuard, WriteGrant};
use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};

/// Sends values of `T` over a ring, each written in place as one message of `size_of::<T>()`
/// bytes. `T` must be aligned to at most 8 bytes (records are 8-byte aligned).
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
    const ALIGNED: () = assert!(
        align_of::<T>() <= 8,
        "ring records are 8-byte aligned: T may be aligned to at most 8"
    );

    /// Wraps a producer.
    ///
    /// # Errors
    /// [`SendError::TooLarge`] if a `T` is larger than the ring's maximum message.
    pub fn new(inner: Producer) -> Result<Self, SendError> {
        let () = Self::ALIGNED;
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
        Ok(TypedGrant {
            grant: self.inner.reserve(size_of::<T>())?,
            _t: PhantomData,
        })
    }

    /// Room for one `T` if there is room now.
    ///
    /// # Errors
    /// As [`Producer::try_reserve`].
    pub fn try_reserve(&mut self) -> Result<TypedGrant<'_, T>, TrySendError> {
        Ok(TypedGrant {
            grant: self.inner.try_reserve(size_of::<T>())?,
            _t: PhantomData,
        })
    }

    /// Room for one `T`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Producer::reserve_timeout`].
    pub fn reserve_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<TypedGrant<'_, T>, SendTimeoutError> {
        Ok(TypedGrant {
            grant: self.inner.reserve_timeout(size_of::<T>(), timeout)?,
            _t: PhantomData,
        })
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
        Ok(TypedGrant {
            grant: self.inner.reserve_deadline(size_of::<T>(), deadline)?,
            _t: PhantomData,
        })
    }

    /// The untyped producer.
    pub fn into_inner(self) -> Producer {
        self.inner
    }
}

/// Room for one `T` inside the ring; derefs to `T`. Publishes nothing unless committed.
#[must_use = "a grant publishes nothing unless committed"]
pub struct TypedGrant<'a, T: Pod> {
    grant: WriteGrant<'a>,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> TypedGrant<'_, T> {
    /// Publishes the value.
    pub fn commit(self) {
        self.grant.commit();
    }
}

impl<T: Pod> Deref for TypedGrant<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the grant is exactly size_of::<T>() bytes (reserved so), 8-aligned (records
        // are, and align_of::<T>() <= 8 is asserted at compile time), exclusively ours while
        // the grant lives, and any bit pattern is a valid T (T: FromBytes).
        unsafe { &*self.grant.as_ptr().cast::<T>() }
    }
}

impl<T: Pod> DerefMut for TypedGrant<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.grant.as_mut_ptr().cast::<T>() }
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
    const ALIGNED: () = assert!(
        align_of::<T>() <= 8,
        "ring records are 8-byte aligned: T may be aligned to at most 8"
    );

    /// Wraps a consumer.
    pub fn new(inner: Consumer) -> Self {
        let () = Self::ALIGNED;
        Receiver {
            inner,
            _t: PhantomData,
        }
    }

    fn typed<'a>(guard: ReadGuard<'a>) -> Result<TypedGuard<'a, T>, String> {
        if guard.len() == size_of::<T>() {
            Ok(TypedGuard {
                guard,
                _t: PhantomData,
            })
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

    /// The untyped consumer.
    pub fn into_inner(self) -> Consumer {
        self.inner
    }
}

/// A received `T`, in place in the ring; released when dropped.
#[must_use = "the value is released as soon as the guard drops"]
pub struct TypedGuard<'a, T: Pod> {
    guard: ReadGuard<'a>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> Deref for TypedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the message is exactly size_of::<T>() bytes (checked in `typed`), 8-aligned
        // (records are; align_of::<T>() <= 8 asserted at compile time), stays ours until the
        // guard drops, and any bit pattern is a valid T (T: FromBytes).
        unsafe { &*self.guard.as_ptr().cast::<T>() }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for TypedGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
