//! `SerdeSender<T>` / `SerdeReceiver<T>`: the two ends of a ring that carries serde values.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    SerdeOptions, SerdeRecvError, SerdeSendError, decode, encode_into, encoded_len, until_end,
};
use crate::api::ring::{Consumer, Peer, Producer, ReadGuard, Ring, WriteGrant};
use crate::error::{
    AttachError, CreateError, OpenError, OpenOrCreateError, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
use crate::ring::wait::WaitMode;
use crate::segment::Options;

/// A role claim that failed on an opened ring, as the open's error.
pub(super) fn open_error(name: String, e: AttachError) -> OpenError {
    match e {
        AttachError::RoleTaken { pid, .. } => OpenError::Busy { name, pid },
        other => OpenError::Corrupted {
            name,
            reason: other.to_string(),
        },
    }
}

/// A role claim that failed on a ring just created (only corruption can do that).
pub(super) fn create_error(name: String, e: AttachError) -> CreateError {
    CreateError::Os {
        name,
        source: std::io::Error::other(e.to_string()),
    }
}

/// Creates the ring and claims a role (`Ring::producer` or `Ring::consumer`) in it.
fn created<R>(
    opts: &Options,
    capacity: usize,
    role: fn(&Ring) -> Result<R, AttachError>,
) -> Result<R, CreateError> {
    let ring = Ring::create(opts, capacity)?;
    role(&ring).map_err(|e| create_error(opts.label(), e))
}

/// Opens the ring and claims a role in it.
fn opened<R>(opts: &Options, role: fn(&Ring) -> Result<R, AttachError>) -> Result<R, OpenError> {
    let ring = Ring::open(opts)?;
    role(&ring).map_err(|e| open_error(ring.name(), e))
}

/// Opens or creates the ring and claims a role in it.
fn opened_or_created<R>(
    opts: &Options,
    capacity: usize,
    role: fn(&Ring) -> Result<R, AttachError>,
) -> Result<R, OpenOrCreateError> {
    let ring = Ring::open_or_create(opts, capacity)?;
    Ok(role(&ring).map_err(|e| open_error(ring.name(), e))?)
}

/// Sends values of `T` over a [`Ring`], each encoded with postcard straight into the ring
/// (feature `serde`). The receiving end is a [`SerdeReceiver<T>`].
///
/// ```
/// # use shmq::{SerdeReceiver, SerdeSender};
/// let name = format!("doc-serde-sender-{}", std::process::id());
/// let mut rx = SerdeReceiver::<(String, Option<u8>)>::create(name.as_str(), 4096)?;
/// let mut tx = SerdeSender::<(String, Option<u8>)>::open(name.as_str())?;
/// tx.send(&("one".to_string(), Some(1)))?;
/// assert_eq!(rx.recv()?, ("one".to_string(), Some(1)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Encoding, in place
/// A send measures the value's encoded size with postcard's size-counting serializer,
/// reserves exactly that many bytes in the ring (or queue), and serializes straight into the
/// reserved space; nothing is published unless the whole value was written. A value that
/// encodes to more than [`max_message`](SerdeSender::max_message) bytes is refused
/// ([`SerdeSendError::TooLarge`]) before anything is reserved. A receive deserializes
/// straight from the message in place and releases it after. The only allocations are those
/// of the value's own type (a `String`, a `Vec`).
///
/// # Bad messages
/// Every message is untrusted input. One that does not decode as the receiver's type (a peer
/// that sent another type, a raw sender that wrote garbage, bytes left over after a whole
/// value, a value nested more than 128 levels deep) is a [`DecodeError`](super::DecodeError) that names the type
/// and postcard's reason, never a panic; the message is consumed, so the next receive gets
/// the next message. Decoding never reads outside the message; serde caps what a length
/// prefix makes it preallocate, and the nesting limit keeps a hostile message for a recursive
/// type (one holding `Box<Self>` or `Vec<Self>`) from exhausting the stack.
///
/// # Identity
/// A serde end's identity is a user tag ([`SerdeOptions::tag`]) or, by default, its message
/// type's name ([`std::any::type_name`]) plus a schema version ([`SerdeOptions::schema`],
/// default 1): bump the version when the type changes in a way old peers cannot read. The
/// creator records the identity in the segment and every opener checks it. Type names are
/// stable only for one compiler version and crate graph: give a tag to ends built
/// separately. A pipe's identity is its creator's pair `(S, R)`, which its opener, a
/// `SerdePipe<R, S>`, names the other way round. Ends made with `new` from raw handles check
/// nothing.
///
/// # Crash safety
/// As [`Producer`]: a value being written when the process died is never seen.
pub struct SerdeSender<T> {
    inner: Producer,
    _t: PhantomData<fn(&T)>,
}

impl<T> fmt::Debug for SerdeSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeSender")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// Publishes `value` in `grant`, which holds exactly its encoded size.
fn fill<T: Serialize, E>(mut grant: WriteGrant<'_>, value: &T) -> Result<(), SerdeSendError<E>> {
    // Dropping the grant on an error publishes nothing.
    encode_into(value, &mut grant)?;
    grant.commit();
    Ok(())
}

impl<T: Serialize> SerdeSender<T> {
    /// Sends on a producer claimed elsewhere. No identity is checked: the ring's creator
    /// decided what it carries.
    pub fn new(inner: Producer) -> SerdeSender<T> {
        SerdeSender {
            inner,
            _t: PhantomData,
        }
    }

    /// Creates a ring of at least `capacity` bytes (as [`Ring::create`]) identified as
    /// carrying `T`, and claims its producer role.
    ///
    /// # Errors
    /// As [`Ring::create`].
    pub fn create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
    ) -> Result<SerdeSender<T>, CreateError> {
        created(&opts.into().for_type::<T>(), capacity, Ring::producer).map(SerdeSender::new)
    }

    /// Opens a ring created for `T` (by either end) and claims its producer role.
    ///
    /// # Errors
    /// As [`Ring::open`]; [`OpenError::Busy`] if a live process holds the producer role.
    pub fn open(opts: impl Into<SerdeOptions>) -> Result<SerdeSender<T>, OpenError> {
        opened(&opts.into().for_type::<T>(), Ring::producer).map(SerdeSender::new)
    }

    /// Opens the ring, creating it (as [`SerdeSender::create`]) if it does not exist, and
    /// claims its producer role.
    ///
    /// # Errors
    /// As [`SerdeSender::create`] and [`SerdeSender::open`].
    pub fn open_or_create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
    ) -> Result<SerdeSender<T>, OpenOrCreateError> {
        opened_or_created(&opts.into().for_type::<T>(), capacity, Ring::producer)
            .map(SerdeSender::new)
    }

    /// Encodes and sends `value`, waiting for room as long as needed.
    ///
    /// # Errors
    /// [`SerdeSendError::TooLarge`] if it encodes to more than
    /// [`max_message`](SerdeSender::max_message) bytes, [`SerdeSendError::Encode`] if it
    /// cannot be encoded, else the ring's error as for [`Producer::send`]. Nothing is sent.
    pub fn send(&mut self, value: &T) -> Result<(), SerdeSendError<SendError>> {
        let len = encoded_len(value, self.inner.max_message(), "ring")?;
        fill(
            self.inner.reserve(len).map_err(SerdeSendError::Send)?,
            value,
        )
    }

    /// Encodes and sends `value` if there is room now.
    ///
    /// # Errors
    /// As [`SerdeSender::send`], with the ring's errors of [`Producer::try_send`].
    pub fn try_send(&mut self, value: &T) -> Result<(), SerdeSendError<TrySendError>> {
        let len = encoded_len(value, self.inner.max_message(), "ring")?;
        fill(
            self.inner.try_reserve(len).map_err(SerdeSendError::Send)?,
            value,
        )
    }

    /// Encodes and sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`SerdeSender::send`], with the ring's errors of [`Producer::send_timeout`].
    pub fn send_timeout(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<(), SerdeSendError<SendTimeoutError>> {
        let len = encoded_len(value, self.inner.max_message(), "ring")?;
        let grant = self.inner.reserve_timeout(len, timeout);
        fill(grant.map_err(SerdeSendError::Send)?, value)
    }

    /// Encodes and sends `value`, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`SerdeSender::send_timeout`].
    pub fn send_deadline(
        &mut self,
        value: &T,
        deadline: Instant,
    ) -> Result<(), SerdeSendError<SendTimeoutError>> {
        let len = encoded_len(value, self.inner.max_message(), "ring")?;
        let grant = self.inner.reserve_deadline(len, deadline);
        fill(grant.map_err(SerdeSendError::Send)?, value)
    }

    /// Largest encoded value accepted, in bytes.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    /// Whether the receiver has let go or its process died.
    pub fn is_abandoned(&self) -> bool {
        self.inner.is_abandoned()
    }

    /// Where the receiver is (see [`Producer::peer`]).
    pub fn peer(&self) -> Peer {
        self.inner.peer()
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.inner.set_wait_mode(mode);
    }

    /// The untyped producer, for raw byte messages.
    pub fn into_inner(self) -> Producer {
        self.inner
    }
}

/// Receives values of `T` sent by a [`SerdeSender<T>`], each decoded straight from the ring
/// (feature `serde`). A message that does not decode is consumed and reported as
/// [`SerdeRecvError::Decode`]; the next receive gets the next message. Encoding, bad
/// messages and identity: see [`SerdeSender`].
///
/// ```
/// # use shmq::{SerdeReceiver, SerdeSender, SerdeRecvError, TryRecvError};
/// let name = format!("doc-serde-receiver-{}", std::process::id());
/// let mut tx = SerdeSender::<Vec<i64>>::create(name.as_str(), 4096)?;
/// let mut rx = SerdeReceiver::<Vec<i64>>::open(name.as_str())?;
/// tx.send(&vec![1, -2, 3])?;
/// assert_eq!(rx.try_recv()?, [1, -2, 3]);
/// assert_eq!(rx.try_recv(), Err(SerdeRecvError::Recv(TryRecvError::Empty)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Crash safety
/// As [`Consumer`]: a message being decoded when the process died is delivered again to the
/// next receiver that claims the role.
pub struct SerdeReceiver<T> {
    inner: Consumer,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for SerdeReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeReceiver")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// Decodes the message in `guard`, then releases it (also when it does not decode).
fn take<T: DeserializeOwned, E>(guard: ReadGuard<'_>) -> Result<T, SerdeRecvError<E>> {
    let value = decode::<T>(&guard);
    drop(guard);
    Ok(value?)
}

impl<T: DeserializeOwned> SerdeReceiver<T> {
    /// Receives on a consumer claimed elsewhere. No identity is checked.
    pub fn new(inner: Consumer) -> SerdeReceiver<T> {
        SerdeReceiver {
            inner,
            _t: PhantomData,
        }
    }

    /// Creates a ring of at least `capacity` bytes identified as carrying `T`, and claims its
    /// consumer role.
    ///
    /// # Errors
    /// As [`Ring::create`].
    pub fn create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
    ) -> Result<SerdeReceiver<T>, CreateError> {
        created(&opts.into().for_type::<T>(), capacity, Ring::consumer).map(SerdeReceiver::new)
    }

    /// Opens a ring created for `T` (by either end) and claims its consumer role.
    ///
    /// # Errors
    /// As [`Ring::open`]; [`OpenError::Busy`] if a live process holds the consumer role.
    pub fn open(opts: impl Into<SerdeOptions>) -> Result<SerdeReceiver<T>, OpenError> {
        opened(&opts.into().for_type::<T>(), Ring::consumer).map(SerdeReceiver::new)
    }

    /// Opens the ring, creating it (as [`SerdeReceiver::create`]) if it does not exist, and
    /// claims its consumer role.
    ///
    /// # Errors
    /// As [`SerdeReceiver::create`] and [`SerdeReceiver::open`].
    pub fn open_or_create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
    ) -> Result<SerdeReceiver<T>, OpenOrCreateError> {
        opened_or_created(&opts.into().for_type::<T>(), capacity, Ring::consumer)
            .map(SerdeReceiver::new)
    }

    /// The next value, waiting as long as needed (also for a sender that has not attached
    /// yet).
    ///
    /// # Errors
    /// [`SerdeRecvError::Decode`] for a message that is not a `T` (consumed), else the ring's
    /// error as for [`Consumer::recv`].
    pub fn recv(&mut self) -> Result<T, SerdeRecvError<RecvError>> {
        take(self.inner.recv().map_err(SerdeRecvError::Recv)?)
    }

    /// The next value, if one is waiting.
    ///
    /// # Errors
    /// As [`SerdeReceiver::recv`], with the ring's errors of [`Consumer::try_recv`].
    pub fn try_recv(&mut self) -> Result<T, SerdeRecvError<TryRecvError>> {
        take(self.inner.try_recv().map_err(SerdeRecvError::Recv)?)
    }

    /// The next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`SerdeReceiver::recv`], with the ring's errors of [`Consumer::recv_timeout`].
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<T, SerdeRecvError<RecvTimeoutError>> {
        take(
            self.inner
                .recv_timeout(timeout)
                .map_err(SerdeRecvError::Recv)?,
        )
    }

    /// The next value, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`SerdeReceiver::recv_timeout`].
    pub fn recv_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<T, SerdeRecvError<RecvTimeoutError>> {
        take(
            self.inner
                .recv_deadline(deadline)
                .map_err(SerdeRecvError::Recv)?,
        )
    }

    /// Values as they arrive, waiting for each, until the sender is gone and the ring is
    /// drained. A message that does not decode comes as an `Err` and the iteration goes on; any
    /// other error (interrupted, corrupted) comes as an `Err` and ends it.
    pub fn iter(&mut self) -> impl Iterator<Item = Result<T, SerdeRecvError<RecvError>>> + '_ {
        until_end(
            move || self.recv(),
            |e| matches!(e, RecvError::Disconnected),
        )
    }

    /// Values waiting now, without waiting; ends when the ring is empty (or the sender is gone
    /// and the ring drained). Errors as in [`SerdeReceiver::iter`].
    pub fn try_iter(
        &mut self,
    ) -> impl Iterator<Item = Result<T, SerdeRecvError<TryRecvError>>> + '_ {
        until_end(
            move || self.try_recv(),
            |e| matches!(e, TryRecvError::Empty | TryRecvError::Disconnected),
        )
    }

    /// Whether the sender has let go or its process died (values may still be waiting).
    pub fn is_abandoned(&self) -> bool {
        self.inner.is_abandoned()
    }

    /// Where the sender is (see [`Consumer::peer`]).
    pub fn peer(&self) -> Peer {
        self.inner.peer()
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.inner.set_wait_mode(mode);
    }

    /// The untyped consumer, for raw byte messages.
    pub fn into_inner(self) -> Consumer {
        self.inner
    }
}
