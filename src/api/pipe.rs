//! `Pipe`: a duplex connection between two processes, two rings in one segment.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ensure;
use super::ring::{Consumer, Producer, ReadGuard, normalize_capacity, ring_of, ring_stride};
use crate::api::select::Reg;
use crate::error::{
    AttachError, CreateError, OpenError, OpenOrCreateError, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
use crate::ring::spsc;
use crate::ring::wait::WaitMode;
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};

/// A duplex pipe between two processes (`multiprocessing.Pipe()`): both ends send and
/// receive. One process [`create`](Pipe::create)s it and holds one end; another
/// [`open`](Pipe::open)s it and holds the other. Each direction is a [`Ring`](crate::Ring) of
/// its own; for a one-way pipe (`Pipe(duplex=False)`) use a `Ring` directly.
///
/// Dropping an end is "closing" it: the other end drains what was sent, then gets
/// `Disconnected`, and its sends fail with `Disconnected`.
///
/// # Examples
/// ```
/// let name = format!("doc-pipe-{}", std::process::id());
/// let mut parent = shmq::Pipe::create(name.as_str(), 4096)?;
/// let mut child = shmq::Pipe::open(name.as_str())?; // in another process, usually
/// parent.send(b"ping")?;
/// assert_eq!(&*child.recv()?, b"ping");
/// child.send(b"pong")?;
/// assert_eq!(&*parent.recv()?, b"pong");
/// drop(child);
/// assert_eq!(parent.recv().err(), Some(shmq::RecvError::Disconnected));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Crash safety
/// As for [`Producer`] and [`Consumer`]: if the other end's process dies, this end drains what
/// it had sent and then gets `Disconnected` (within about 40 ms of running dry).
#[derive(Debug)]
pub struct Pipe {
    tx: Producer,
    rx: Consumer,
}

fn layout(cap: u64, max: u64) -> Layout {
    Layout {
        kind: Kind::Pipe,
        align: 64,
        ty: TypeInfo::NONE,
        payload_size: 2 * ring_stride(cap),
        param0: cap,
        param1: max,
    }
}

impl Pipe {
    /// Creates the pipe and returns the creator's end. Each direction buffers at least
    /// `capacity` bytes (rounded up to a power of two); messages may be up to half of that,
    /// less 8 bytes.
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, capacity too large.
    pub fn create(opts: impl Into<Options>, capacity: usize) -> Result<Pipe, CreateError> {
        let opts = opts.into();
        let cap = normalize_capacity(&opts, capacity)?;
        let max = spsc::max_message_for(cap);
        let seg = Arc::new(Segment::create_kind(&opts, &layout(cap, max), |_| {})?);
        // A fresh segment: both roles are free, so claiming cannot fail but for corruption.
        Pipe::end(&seg, 0, cap, max).map_err(|e| CreateError::Os {
            name: opts.label(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Creates the pipe and returns its first end, or, if it exists, opens its other end: the
    /// two processes of a pipe can start in any order. Safe against a racing creator.
    ///
    /// # Errors
    /// As [`Pipe::create`] and [`Pipe::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        capacity: usize,
    ) -> Result<Pipe, OpenOrCreateError> {
        let opts = opts.into();
        let deadline = crate::sync::park::deadline_after(opts.open_timeout_value());
        loop {
            match Pipe::create(&opts, capacity) {
                Err(CreateError::AlreadyExists { .. }) => {}
                other => return Ok(other?),
            }
            match Pipe::open(&opts) {
                // Removed between our create and open: race again, within the open timeout.
                Err(OpenError::NotFound { .. }) if !crate::sync::park::passed(deadline) => {}
                other => return Ok(other?),
            }
        }
    }

    /// Opens the other end of a pipe someone created.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a pipe, corrupted; [`OpenError::Busy`] if a live
    /// process already holds the other end.
    pub fn open(opts: impl Into<Options>) -> Result<Pipe, OpenError> {
        let seg = Arc::new(Segment::open_kind(
            &opts.into(),
            Kind::Pipe,
            TypeInfo::NONE,
        )?);
        let (cap, max) = (seg.info().param0, seg.info().param1);
        ensure(&seg, ring_of(&seg, 1, cap, max).is_some(), || {
            format!(
                "pipe geometry: capacity {cap}, maximum message {max}, {} bytes",
                seg.info().payload_size
            )
        })?;
        Pipe::end(&seg, 1, cap, max).map_err(|e| match e {
            AttachError::RoleTaken { pid, .. } => OpenError::Busy {
                name: seg.name(),
                pid,
            },
            other => OpenError::Corrupted {
                name: seg.name(),
                reason: other.to_string(),
            },
        })
    }

    /// End `me` (0: creator, 1: opener) sends on ring `me` and receives on ring `1 - me`.
    fn end(seg: &Arc<Segment>, me: usize, cap: u64, max: u64) -> Result<Pipe, AttachError> {
        let ring = |i| {
            ring_of(seg, i, cap, max).ok_or(AttachError::Corrupted {
                reason: "pipe geometry".into(),
            })
        };
        let tx = Producer::attach(Arc::clone(seg), ring(me)?)?;
        let rx = Consumer::attach(Arc::clone(seg), ring(1 - me)?)?;
        Ok(Pipe { tx, rx })
    }

    /// How blocking calls on both directions wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.tx.set_wait_mode(mode);
        self.rx.set_wait_mode(mode);
    }

    /// The sending direction, for zero-copy [`reserve`](Producer::reserve) and batches.
    pub fn producer_mut(&mut self) -> &mut Producer {
        &mut self.tx
    }

    /// The receiving direction, for [`try_drain`](Consumer::try_drain) and friends.
    pub fn consumer_mut(&mut self) -> &mut Consumer {
        &mut self.rx
    }

    /// The old name of [`Pipe::producer_mut`] (it returns a [`Producer`], not a
    /// [`Sender`](crate::Sender)).
    #[deprecated(since = "0.1.0", note = "renamed to `producer_mut`")]
    pub fn sender(&mut self) -> &mut Producer {
        self.producer_mut()
    }

    /// The old name of [`Pipe::consumer_mut`] (it returns a [`Consumer`], not a
    /// [`Receiver`](crate::Receiver)).
    #[deprecated(since = "0.1.0", note = "renamed to `consumer_mut`")]
    pub fn receiver(&mut self) -> &mut Consumer {
        self.consumer_mut()
    }

    /// Splits the end into its two directions, for use from two threads.
    pub fn split(self) -> (Producer, Consumer) {
        (self.tx, self.rx)
    }

    /// [`Pipe::recv`] for async code (feature `async`); see [`Consumer::recv_async`].
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has taken nothing.
    ///
    /// # Errors
    /// As [`Pipe::recv`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn recv_async(&mut self) -> Result<ReadGuard<'_>, RecvError> {
        self.rx.recv_async().await
    }

    /// [`Pipe::send`] for async code (feature `async`); see [`Producer::send_async`].
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has sent nothing.
    ///
    /// # Errors
    /// As [`Pipe::send`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn send_async(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.tx.send_async(msg).await
    }

    /// The [`Select`](crate::Select) registration for receiving on this pipe.
    pub(crate) fn readable(&self) -> Reg<'_> {
        self.rx.readable()
    }

    /// The [`Select`](crate::Select) registration for sending a `len`-byte message.
    pub(crate) fn writable(&self, len: usize) -> Reg<'_> {
        self.tx.writable(len)
    }

    /// [`Pipe::readable`] for a [`Readiness`](crate::Readiness) (owning what it reads).
    pub(crate) fn readable_owned(&self) -> crate::api::readiness::OwnedReg {
        self.rx.readable_owned()
    }

    /// [`Pipe::writable`] for a [`Readiness`](crate::Readiness) (owning what it reads).
    pub(crate) fn writable_owned(&self, len: usize) -> crate::api::readiness::OwnedReg {
        self.tx.writable_owned(len)
    }

    /// Sends a copy of `msg`, waiting for room. See [`Producer::send`].
    ///
    /// # Errors
    /// [`SendError`]: too large, the other end closed or died, corrupted.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.tx.send(msg)
    }

    /// Sends a copy of `msg` if there is room now. See [`Producer::try_send`].
    ///
    /// # Errors
    /// [`TrySendError`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        self.tx.try_send(msg)
    }

    /// Sends a copy of `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendTimeoutError`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        self.tx.send_timeout(msg, timeout)
    }

    /// Sends a copy of `msg`, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`Pipe::send_timeout`].
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Instant) -> Result<(), SendTimeoutError> {
        self.tx.send_deadline(msg, deadline)
    }

    /// Receives the next message in place, waiting as needed. See [`Consumer::recv`].
    ///
    /// # Errors
    /// [`RecvError`]: the other end closed (or died) and everything was received; corrupted.
    pub fn recv(&mut self) -> Result<ReadGuard<'_>, RecvError> {
        self.rx.recv()
    }

    /// Receives the next message if one is waiting.
    ///
    /// # Errors
    /// [`TryRecvError`].
    pub fn try_recv(&mut self) -> Result<ReadGuard<'_>, TryRecvError> {
        self.rx.try_recv()
    }

    /// Receives the next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ReadGuard<'_>, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// Receives the next message in place, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Pipe::recv_timeout`].
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<ReadGuard<'_>, RecvTimeoutError> {
        self.rx.recv_deadline(deadline)
    }

    /// Copies the next message into `buf`, waiting as needed; returns its length.
    ///
    /// # Errors
    /// As [`Pipe::recv`].
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        self.rx.recv_into(buf)
    }

    /// Copies the next message into `buf` if one is waiting; returns its length.
    ///
    /// # Errors
    /// As [`Pipe::try_recv`].
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        self.rx.try_recv_into(buf)
    }

    /// Copies the next message into `buf`, waiting at most `timeout`; returns its length.
    ///
    /// # Errors
    /// As [`Pipe::recv_timeout`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        self.rx.recv_into_timeout(buf, timeout)
    }

    /// Copies the next message into `buf`, waiting until `deadline` at most; returns its
    /// length.
    ///
    /// # Errors
    /// As [`Pipe::recv_timeout`].
    pub fn recv_into_deadline(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        self.rx.recv_into_deadline(buf, deadline)
    }
}
