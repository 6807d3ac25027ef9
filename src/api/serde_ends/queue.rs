//! `SerdeQueue<T>`: a multi-producer multi-consumer queue of serde values over a `ByteQueue`.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    SerdeOptions, SerdeRecvError, SerdeSendError, decode, encode_into, encoded_len, until_end,
};
use crate::api::Waiting;
use crate::api::byte_queue::ByteQueue;
use crate::api::queue::Side;
use crate::error::{CreateError, GetError, OpenError, OpenOrCreateError, PutError};
use crate::ring::wait::WaitMode;

/// A named, bounded, multi-producer multi-consumer queue of `T` values, each encoded with
/// postcard straight into a [`ByteQueue`] slot and decoded straight out of it (feature
/// `serde`). Any number of processes put and get through handles of their own. Encoding,
/// bad messages and identity: see [`SerdeSender`](crate::SerdeSender).
///
/// ```
/// use std::collections::BTreeMap;
/// use shmq::SerdeQueue;
///
/// let name = format!("doc-serde-queue-{}", std::process::id());
/// let q = SerdeQueue::<BTreeMap<String, u32>>::create(name.as_str(), 16, 256)?;
/// q.put(&BTreeMap::from([("apples".to_string(), 3)]))?;
///
/// let other = SerdeQueue::<BTreeMap<String, u32>>::open(name.as_str())?; // another process
/// assert_eq!(other.get()?["apples"], 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Crash safety
/// As [`ByteQueue`]: a value being put when its process died is never seen; one being taken
/// is lost with the process that took it.
pub struct SerdeQueue<T> {
    inner: ByteQueue,
    _t: PhantomData<fn(&T) -> T>,
}

impl<T> fmt::Debug for SerdeQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeQueue")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T> SerdeQueue<T> {
    /// Puts and gets through a byte queue opened elsewhere. No identity is checked.
    pub fn new(inner: ByteQueue) -> SerdeQueue<T> {
        SerdeQueue {
            inner,
            _t: PhantomData,
        }
    }

    /// Creates a queue of at most `capacity` values of at most `max_message` encoded bytes
    /// each (as [`ByteQueue::create`]), identified as carrying `T`.
    ///
    /// # Errors
    /// As [`ByteQueue::create`].
    pub fn create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
        max_message: usize,
    ) -> Result<SerdeQueue<T>, CreateError> {
        let opts = opts.into().for_type::<T>();
        Ok(SerdeQueue::new(ByteQueue::create(
            opts,
            capacity,
            max_message,
        )?))
    }

    /// Opens a queue created for `T`.
    ///
    /// # Errors
    /// As [`ByteQueue::open`].
    pub fn open(opts: impl Into<SerdeOptions>) -> Result<SerdeQueue<T>, OpenError> {
        SerdeQueue::open_for(opts, Side::Both)
    }

    /// Opens a queue created for `T`, for one [`Side`] (see
    /// [`Queue::open_for`](crate::Queue::open_for)).
    ///
    /// # Errors
    /// As [`ByteQueue::open`].
    pub fn open_for(opts: impl Into<SerdeOptions>, side: Side) -> Result<SerdeQueue<T>, OpenError> {
        let opts = opts.into().for_type::<T>();
        Ok(SerdeQueue::new(ByteQueue::open_for(opts, side)?))
    }

    /// Opens the queue, creating it (as [`SerdeQueue::create`]) if it does not exist.
    ///
    /// # Errors
    /// As [`SerdeQueue::create`] and [`SerdeQueue::open`].
    pub fn open_or_create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
        max_message: usize,
    ) -> Result<SerdeQueue<T>, OpenOrCreateError> {
        let opts = opts.into().for_type::<T>();
        Ok(SerdeQueue::new(ByteQueue::open_or_create(
            opts,
            capacity,
            max_message,
        )?))
    }

    /// Values waiting, approximately.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no value is waiting (approximate).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Most values the queue holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Largest encoded value, in bytes.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    /// Closes the queue: later puts fail; consumers drain, then get
    /// [`GetError::Disconnected`].
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Changes which [`Side`] of the queue this handle uses.
    pub fn set_side(&self, side: Side) {
        self.inner.set_side(side);
    }

    /// How blocking calls of this handle wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.inner.set_wait_mode(mode);
    }

    /// The name (or file path) of the queue.
    pub fn name(&self) -> String {
        self.inner.name()
    }

    /// The byte queue underneath, for raw byte messages.
    pub fn as_byte_queue(&self) -> &ByteQueue {
        &self.inner
    }

    /// The byte queue underneath.
    pub fn into_inner(self) -> ByteQueue {
        self.inner
    }
}

/// Putting: needs only `Serialize`.
impl<T: Serialize> SerdeQueue<T> {
    fn put_with(&self, value: &T, waiting: Waiting) -> Result<(), SerdeSendError<PutError>> {
        let len = encoded_len(value, self.inner.max_message(), "queue")?;
        let mut loan = match waiting {
            Waiting::No => self.inner.try_loan(len),
            Waiting::Forever => self.inner.loan(len),
            Waiting::For(t) => self.inner.loan_timeout(len, t),
            Waiting::Until(d) => self.inner.loan_deadline(len, d),
        }
        .map_err(SerdeSendError::Send)?;
        // Dropping the loan on an error puts nothing.
        encode_into(value, &mut loan)?;
        loan.commit().map_err(SerdeSendError::Send)
    }

    /// Encodes and puts `value`, waiting for a free slot as long as it takes.
    ///
    /// # Errors
    /// [`SerdeSendError::TooLarge`] if it encodes to more than
    /// [`max_message`](SerdeQueue::max_message) bytes, [`SerdeSendError::Encode`] if it
    /// cannot be encoded, else the queue's error as for [`ByteQueue::put`]. Nothing is put.
    pub fn put(&self, value: &T) -> Result<(), SerdeSendError<PutError>> {
        self.put_with(value, Waiting::Forever)
    }

    /// Encodes and puts `value` if a slot is free now.
    ///
    /// # Errors
    /// As [`SerdeQueue::put`], with the queue's errors of [`ByteQueue::try_put`].
    pub fn try_put(&self, value: &T) -> Result<(), SerdeSendError<PutError>> {
        self.put_with(value, Waiting::No)
    }

    /// Encodes and puts `value`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// As [`SerdeQueue::put`], with the queue's errors of [`ByteQueue::put_timeout`].
    pub fn put_timeout(
        &self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SerdeSendError<PutError>> {
        self.put_with(value, Waiting::For(timeout))
    }

    /// Encodes and puts `value`, waiting until `deadline` at most for a free slot.
    ///
    /// # Errors
    /// As [`SerdeQueue::put_timeout`].
    pub fn put_deadline(
        &self,
        value: &T,
        deadline: Instant,
    ) -> Result<(), SerdeSendError<PutError>> {
        self.put_with(value, Waiting::Until(deadline))
    }
}

/// Getting: needs only `DeserializeOwned`.
impl<T: DeserializeOwned> SerdeQueue<T> {
    fn get_with(&self, waiting: Waiting) -> Result<T, SerdeRecvError<GetError>> {
        let msg = match waiting {
            Waiting::No => self.inner.try_get(),
            Waiting::Forever => self.inner.get(),
            Waiting::For(t) => self.inner.get_timeout(t),
            Waiting::Until(d) => self.inner.get_deadline(d),
        }
        .map_err(SerdeRecvError::Recv)?;
        let value = decode::<T>(&msg);
        // The slot goes back to producers whether or not the value decoded.
        drop(msg);
        Ok(value?)
    }

    /// Takes and decodes the oldest value, waiting as long as it takes.
    ///
    /// # Errors
    /// [`SerdeRecvError::Decode`] for a message that is not a `T` (taken and dropped), else
    /// the queue's error as for [`ByteQueue::get`].
    pub fn get(&self) -> Result<T, SerdeRecvError<GetError>> {
        self.get_with(Waiting::Forever)
    }

    /// Takes and decodes the oldest value if one is waiting.
    ///
    /// # Errors
    /// As [`SerdeQueue::get`], with the queue's errors of [`ByteQueue::try_get`].
    pub fn try_get(&self) -> Result<T, SerdeRecvError<GetError>> {
        self.get_with(Waiting::No)
    }

    /// Takes and decodes the oldest value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`SerdeQueue::get`], with the queue's errors of [`ByteQueue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, SerdeRecvError<GetError>> {
        self.get_with(Waiting::For(timeout))
    }

    /// Takes and decodes the oldest value, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`SerdeQueue::get_timeout`].
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, SerdeRecvError<GetError>> {
        self.get_with(Waiting::Until(deadline))
    }

    /// Values as they come, waiting for each, until the queue is closed and drained or every
    /// process putting to it is gone. A message that does not decode comes as an `Err` and
    /// the iteration goes on; any other error ends it after being yielded.
    pub fn iter(&self) -> impl Iterator<Item = Result<T, SerdeRecvError<GetError>>> + '_ {
        until_end(move || self.get(), |e| matches!(e, GetError::Disconnected))
    }

    /// Values waiting now, without waiting; ends when the queue is empty. Errors as in
    /// [`SerdeQueue::iter`].
    pub fn try_iter(&self) -> impl Iterator<Item = Result<T, SerdeRecvError<GetError>>> + '_ {
        until_end(
            move || self.try_get(),
            |e| matches!(e, GetError::Empty | GetError::Disconnected),
        )
    }
}
