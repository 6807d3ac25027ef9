//! `SerdePipe<S, R>`: a duplex pipe end that sends `S` and receives `R`.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ring::{SerdeReceiver, SerdeSender};
use super::{SerdeOptions, SerdeRecvError, SerdeSendError};
use crate::api::pipe::Pipe;
use crate::error::{
    CreateError, OpenError, OpenOrCreateError, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
use crate::ring::wait::WaitMode;
use crate::sync::park;

/// One end of a duplex [`Pipe`] that sends values of `S` and receives values of `R`, encoded
/// with postcard straight into and out of the pipe's rings (feature `serde`). The other end
/// is a `SerdePipe<R, S>`. Encoding, bad messages and identity: see [`SerdeSender`].
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use shmq::SerdePipe;
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Request { id: u32, query: String }
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// enum Reply { Found { id: u32, rows: Vec<u64> }, Missing(u32) }
///
/// let name = format!("doc-serde-pipe-{}", std::process::id());
/// let mut client = SerdePipe::<Request, Reply>::create(name.as_str(), 4096)?;
/// let mut server = SerdePipe::<Reply, Request>::open(name.as_str())?; // another process
///
/// client.send(&Request { id: 7, query: "x > 1".into() })?;
/// let req = server.recv()?;
/// server.send(&Reply::Found { id: req.id, rows: vec![2, 3] })?;
/// assert_eq!(client.recv()?, Reply::Found { id: 7, rows: vec![2, 3] });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Crash safety
/// As [`Pipe`].
pub struct SerdePipe<S, R = S> {
    tx: SerdeSender<S>,
    rx: SerdeReceiver<R>,
}

impl<S, R> fmt::Debug for SerdePipe<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdePipe")
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .finish()
    }
}

impl<S: Serialize, R: DeserializeOwned> SerdePipe<S, R> {
    /// Sends and receives on an end opened elsewhere. No identity is checked.
    pub fn new(pipe: Pipe) -> SerdePipe<S, R> {
        let (tx, rx) = pipe.split();
        SerdePipe {
            tx: SerdeSender::new(tx),
            rx: SerdeReceiver::new(rx),
        }
    }

    /// Creates the pipe (as [`Pipe::create`]), identified as carrying `S` from its creator
    /// and `R` back, and returns the creator's end.
    ///
    /// # Errors
    /// As [`Pipe::create`].
    pub fn create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
    ) -> Result<SerdePipe<S, R>, CreateError> {
        // Both ends name the pipe by (creator's S, creator's R): the opener swaps its pair.
        Ok(SerdePipe::new(Pipe::create(
            opts.into().for_type::<(S, R)>(),
            capacity,
        )?))
    }

    /// Opens the other end of a pipe created as a `SerdePipe<R, S>`.
    ///
    /// # Errors
    /// As [`Pipe::open`].
    pub fn open(opts: impl Into<SerdeOptions>) -> Result<SerdePipe<S, R>, OpenError> {
        Ok(SerdePipe::new(Pipe::open(
            opts.into().for_type::<(R, S)>(),
        )?))
    }

    /// Creates the pipe and returns its first end, or, if it exists, opens its other end:
    /// the two processes may start in any order (see [`Pipe::open_or_create`]).
    ///
    /// # Errors
    /// As [`SerdePipe::create`] and [`SerdePipe::open`].
    pub fn open_or_create(
        opts: impl Into<SerdeOptions>,
        capacity: usize,
    ) -> Result<SerdePipe<S, R>, OpenOrCreateError> {
        let opts = opts.into();
        let deadline = park::deadline_after(opts.options().open_timeout_value());
        loop {
            match SerdePipe::create(&opts, capacity) {
                Err(CreateError::AlreadyExists { .. }) => {}
                other => return Ok(other?),
            }
            match SerdePipe::open(&opts) {
                // Removed between our create and open: race again, within the open timeout.
                Err(OpenError::NotFound { .. }) if !park::passed(deadline) => {}
                other => return Ok(other?),
            }
        }
    }

    /// Encodes and sends `value`, waiting for room as long as needed.
    ///
    /// # Errors
    /// As [`SerdeSender::send`].
    pub fn send(&mut self, value: &S) -> Result<(), SerdeSendError<SendError>> {
        self.tx.send(value)
    }

    /// Encodes and sends `value` if there is room now.
    ///
    /// # Errors
    /// As [`SerdeSender::try_send`].
    pub fn try_send(&mut self, value: &S) -> Result<(), SerdeSendError<TrySendError>> {
        self.tx.try_send(value)
    }

    /// Encodes and sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`SerdeSender::send_timeout`].
    pub fn send_timeout(
        &mut self,
        value: &S,
        timeout: Duration,
    ) -> Result<(), SerdeSendError<SendTimeoutError>> {
        self.tx.send_timeout(value, timeout)
    }

    /// Encodes and sends `value`, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`SerdeSender::send_deadline`].
    pub fn send_deadline(
        &mut self,
        value: &S,
        deadline: Instant,
    ) -> Result<(), SerdeSendError<SendTimeoutError>> {
        self.tx.send_deadline(value, deadline)
    }

    /// The next value, waiting as long as needed.
    ///
    /// # Errors
    /// As [`SerdeReceiver::recv`].
    pub fn recv(&mut self) -> Result<R, SerdeRecvError<RecvError>> {
        self.rx.recv()
    }

    /// The next value, if one is waiting.
    ///
    /// # Errors
    /// As [`SerdeReceiver::try_recv`].
    pub fn try_recv(&mut self) -> Result<R, SerdeRecvError<TryRecvError>> {
        self.rx.try_recv()
    }

    /// The next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`SerdeReceiver::recv_timeout`].
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<R, SerdeRecvError<RecvTimeoutError>> {
        self.rx.recv_timeout(timeout)
    }

    /// The next value, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`SerdeReceiver::recv_deadline`].
    pub fn recv_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<R, SerdeRecvError<RecvTimeoutError>> {
        self.rx.recv_deadline(deadline)
    }

    /// Values as they arrive, until the other end is gone and everything it sent was
    /// received (see [`SerdeReceiver::iter`]).
    pub fn iter(&mut self) -> impl Iterator<Item = Result<R, SerdeRecvError<RecvError>>> + '_ {
        self.rx.iter()
    }

    /// Values waiting now (see [`SerdeReceiver::try_iter`]).
    pub fn try_iter(
        &mut self,
    ) -> impl Iterator<Item = Result<R, SerdeRecvError<TryRecvError>>> + '_ {
        self.rx.try_iter()
    }

    /// How blocking calls in both directions wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.tx.set_wait_mode(mode);
        self.rx.set_wait_mode(mode);
    }

    /// The sending direction.
    pub fn sender(&mut self) -> &mut SerdeSender<S> {
        &mut self.tx
    }

    /// The receiving direction.
    pub fn receiver(&mut self) -> &mut SerdeReceiver<R> {
        &mut self.rx
    }

    /// Splits the end into its two directions, for use from two threads.
    pub fn split(self) -> (SerdeSender<S>, SerdeReceiver<R>) {
        (self.tx, self.rx)
    }
}
