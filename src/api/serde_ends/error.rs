//! Errors of the serde ends: the transport's own error, or what encoding and decoding add.

use std::any::type_name;

/// A message could not be decoded as the receiver's type. It was consumed: the next receive
/// gets the next message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a {len}-byte message does not decode as {type_name}: {reason}; it was skipped, and the \
     next receive gets the next message (does the sender send this type?)"
)]
#[non_exhaustive]
pub struct DecodeError {
    /// The type the message was decoded as ([`std::any::type_name`]).
    pub type_name: &'static str,
    /// The message's length in bytes.
    pub len: usize,
    /// Why postcard refused it.
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new<T: ?Sized>(len: usize, reason: String) -> DecodeError {
        DecodeError {
            type_name: type_name::<T>(),
            len,
            reason,
        }
    }
}

/// A value could not be encoded (its `Serialize` impl failed, or postcard cannot express
/// it: a sequence of unknown length, for one). Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {type_name} could not be encoded: {reason}; nothing was sent")]
#[non_exhaustive]
pub struct EncodeError {
    /// The value's type ([`std::any::type_name`]).
    pub type_name: &'static str,
    /// Why postcard refused it.
    pub reason: String,
}

impl EncodeError {
    pub(crate) fn new<T: ?Sized>(reason: String) -> EncodeError {
        EncodeError {
            type_name: type_name::<T>(),
            reason,
        }
    }
}

/// A serde send failed; nothing was sent. `E` is the transport's error for the call:
/// [`SendError`](crate::SendError), [`TrySendError`](crate::TrySendError) or
/// [`SendTimeoutError`](crate::SendTimeoutError) for rings and pipes, [`PutError`](crate::PutError)
/// for queues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeSendError<E> {
    /// The transport failed (full, timed out, disconnected, interrupted, corrupted).
    #[error(transparent)]
    Send(E),
    /// The value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The encoded value is larger than the ring's or queue's largest message.
    #[error(
        "a {type_name} encodes to {len} bytes, more than the {transport}'s maximum message of \
         {max}; nothing was sent (create the {transport} with a larger maximum)"
    )]
    TooLarge {
        /// The value's type.
        type_name: &'static str,
        /// Its encoded length.
        len: usize,
        /// The largest message the transport takes.
        max: usize,
        /// "ring", "pipe" or "queue".
        transport: &'static str,
    },
}

/// A serde receive failed. `E` is the transport's error for the call:
/// [`RecvError`](crate::RecvError), [`TryRecvError`](crate::TryRecvError) or
/// [`RecvTimeoutError`](crate::RecvTimeoutError) for rings and pipes,
/// [`GetError`](crate::GetError) for queues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeRecvError<E> {
    /// The transport gave no message (empty, timed out, disconnected, interrupted,
    /// corrupted).
    #[error(transparent)]
    Recv(E),
    /// A message arrived but did not decode; it was consumed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl<E> SerdeRecvError<E> {
    /// The transport's error, if that is what this is.
    pub fn recv_error(&self) -> Option<&E> {
        match self {
            SerdeRecvError::Recv(e) => Some(e),
            SerdeRecvError::Decode(_) => None,
        }
    }
}
