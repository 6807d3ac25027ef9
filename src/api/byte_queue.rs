#![allow(unsafe_code)]
//! `ByteQueue`: the MPMC slot queue for variable-size byte messages, with zero-copy loans.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::api::Waiting;
use crate::api::queue::{Core, Failed, Side};
use crate::error::{CreateError, GetError, OpenError, OpenOrCreateError, PutError};
use crate::ring::mpmc::Claim;
use crate::ring::wait::WaitMode;
use crate::segment::{Kind, Options, TypeInfo};

/// Largest message a byte queue accepts (1 GiB).
const MAX_MESSAGE: u64 = 1 << 30;
/// Slot bytes before the message: the slot word, then the length.
const PREFIX: usize = 16;

/// Slot stride for messages of up to `max` bytes; `None` outside 1..=1 GiB.
pub(crate) fn stride_for(max: u64) -> Option<usize> {
    (1..=MAX_MESSAGE)
        .contains(&max)
        .then(|| (PREFIX + max as usize).div_ceil(8) * 8)
}

/// A named, bounded, multi-producer multi-consumer queue of byte messages of any length up to
/// a maximum fixed at creation. Same guarantees as [`Queue`](crate::Queue); each slot has room
/// for the maximum, so choose it to fit your messages.
///
/// Messages can be written in place ([`loan`](ByteQueue::loan) → fill → commit) and read in
/// place ([`get`](ByteQueue::get) returns a guard that derefs to `&[u8]`); nothing is copied
/// through the kernel, and the loan/guard forms copy nothing at all.
///
/// ```
/// let name = format!("doc-byte-queue-{}", std::process::id());
/// let q = shmq::ByteQueue::create(name.as_str(), 16, 1024)?;
/// q.put(b"hello")?;
/// let mut loan = q.loan(3)?; // room for a 3-byte message, in the queue's memory
/// loan.copy_from_slice(b"abc");
/// loan.commit()?;
///
/// let other = shmq::ByteQueue::open(name.as_str())?;
/// assert_eq!(&*other.get()?, b"hello");
/// let msg = other.try_get()?; // borrowed in place until dropped
/// assert_eq!(&*msg, b"abc");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ByteQueue {
    core: Core,
    max: usize,
}

impl fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl ByteQueue {
    /// Creates a queue of at most `capacity` messages of at most `max_message` bytes each
    /// (1 B to 1 GiB).
    ///
    /// # Errors
    /// [`CreateError`]: invalid name or sizes, it exists, no space.
    pub fn create(
        opts: impl Into<Options>,
        capacity: usize,
        max_message: usize,
    ) -> Result<Self, CreateError> {
        let opts = opts.into();
        let stride = ByteQueue::stride(&opts, max_message)?;
        let core = Core::create(
            opts,
            Kind::ByteQueue,
            TypeInfo::NONE,
            capacity,
            stride,
            max_message as u64,
        )?;
        Ok(ByteQueue {
            core,
            max: max_message,
        })
    }

    fn stride(opts: &Options, max_message: usize) -> Result<usize, CreateError> {
        stride_for(max_message as u64).ok_or_else(|| CreateError::InvalidSize {
            name: opts.label(),
            reason: format!("maximum message {max_message} is outside 1..={MAX_MESSAGE}"),
        })
    }

    /// Opens an existing byte queue.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a byte queue, corrupted, too many processes attached.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        ByteQueue::open_for(opts, Side::Both)
    }

    /// Opens an existing byte queue for one [`Side`] (see [`Queue::open_for`](crate::Queue::open_for)).
    ///
    /// # Errors
    /// As [`ByteQueue::open`].
    pub fn open_for(opts: impl Into<Options>, side: Side) -> Result<Self, OpenError> {
        let core = Core::open(opts, Kind::ByteQueue, TypeInfo::NONE, stride_for, side)?;
        let max = core.seg().info().param1 as usize;
        Ok(ByteQueue { core, max })
    }

    /// A second handle to the same queue, with a participant entry of its own for the same
    /// [`Side`]. Not `Clone`, for the reasons given at
    /// [`Queue::try_clone`](crate::Queue::try_clone); `ByteQueue` is `Sync`, so an
    /// [`Arc`](std::sync::Arc) shares one handle instead.
    ///
    /// # Errors
    /// [`OpenError::TooManyProcesses`] if every entry of the participant table is held.
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        Ok(ByteQueue {
            core: self.core.try_clone()?,
            max: self.max,
        })
    }

    /// Changes which [`Side`] of the queue this handle uses.
    pub fn set_side(&self, side: Side) {
        self.core.set_side(side);
    }

    /// Which [`Side`] of the queue this handle uses.
    pub fn side(&self) -> Side {
        self.core.side()
    }

    /// Opens the byte queue, creating it if it does not exist.
    ///
    /// # Errors
    /// As [`ByteQueue::create`] and [`ByteQueue::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        capacity: usize,
        max_message: usize,
    ) -> Result<Self, OpenOrCreateError> {
        let opts = opts.into();
        let stride = ByteQueue::stride(&opts, max_message)?;
        let core = Core::open_or_create(
            opts,
            Kind::ByteQueue,
            TypeInfo::NONE,
            capacity,
            stride,
            max_message as u64,
            stride_for,
        )?;
        let max = core.seg().info().param1 as usize;
        Ok(ByteQueue { core, max })
    }

    fn loan_with(&self, len: usize, waiting: Waiting) -> Result<Loan<'_>, PutError> {
        if len > self.max {
            return Err(PutError::TooLarge { len, max: self.max });
        }
        let (me, claim) = self.core.claim_put(waiting).map_err(|e| e.put(()))?;
        let data = self.core.q().data(claim.pos);
        data.u64_at(0)
            .expect("slot has room for the length (stride checked)")
            .store(len as u64, Ordering::Relaxed);
        // SAFETY: `data` is the slot's area (stride - 8 bytes, ≥ 8 + max ≥ 8 + len, checked
        // when the handle was made), so `ptr + 8 .. + len` lies inside the mapping, which lives
        // as long as `self`, which the loan borrows.
        let ptr = unsafe { data.as_ptr().add(8) };
        Ok(Loan {
            queue: self,
            me,
            claim: Some(claim),
            ptr,
            len,
        })
    }

    /// Room for one message of `len` bytes, in the queue's memory, waiting for a free slot as
    /// long as it takes. Fill it, then [`commit`](Loan::commit); dropping the loan puts
    /// nothing.
    ///
    /// # Errors
    /// [`PutError::TooLarge`], [`PutError::Closed`], [`PutError::Corrupted`].
    pub fn loan(&self, len: usize) -> Result<Loan<'_>, PutError> {
        self.loan_with(len, Waiting::Forever)
    }

    /// As [`ByteQueue::loan`], if a slot is free now.
    ///
    /// # Errors
    /// [`PutError::Full`], as for [`ByteQueue::loan`].
    pub fn try_loan(&self, len: usize) -> Result<Loan<'_>, PutError> {
        self.loan_with(len, Waiting::No)
    }

    /// As [`ByteQueue::loan`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PutError::Timeout`], as for [`ByteQueue::loan`].
    pub fn loan_timeout(&self, len: usize, timeout: Duration) -> Result<Loan<'_>, PutError> {
        self.loan_with(len, Waiting::For(timeout))
    }

    /// Room for a `len`-byte message, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`ByteQueue::loan_timeout`].
    pub fn loan_deadline(&self, len: usize, deadline: Instant) -> Result<Loan<'_>, PutError> {
        self.loan_with(len, Waiting::Until(deadline))
    }

    fn put_with(&self, msg: &[u8], waiting: Waiting) -> Result<(), PutError> {
        let mut loan = self.loan_with(msg.len(), waiting)?;
        loan.copy_from_slice(msg);
        loan.commit()
    }

    /// Puts a copy of `msg`, waiting for a free slot as long as it takes.
    ///
    /// # Errors
    /// As [`ByteQueue::loan`].
    pub fn put(&self, msg: &[u8]) -> Result<(), PutError> {
        self.put_with(msg, Waiting::Forever)
    }

    /// Puts a copy of `msg` if a slot is free now.
    ///
    /// # Errors
    /// As [`ByteQueue::try_loan`].
    pub fn try_put(&self, msg: &[u8]) -> Result<(), PutError> {
        self.put_with(msg, Waiting::No)
    }

    /// Puts a copy of `msg`, waiting at most `timeout` for a free slot.
    ///
    /// # Errors
    /// As [`ByteQueue::loan_timeout`].
    pub fn put_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), PutError> {
        self.put_with(msg, Waiting::For(timeout))
    }

    /// Copies `msg` in, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`ByteQueue::put_timeout`].
    pub fn put_deadline(&self, msg: &[u8], deadline: Instant) -> Result<(), PutError> {
        self.put_with(msg, Waiting::Until(deadline))
    }

    fn get_with(&self, waiting: Waiting) -> Result<Message<'_>, GetError> {
        let (me, claim) = self.core.claim(false, waiting).map_err(Failed::get)?;
        let data = self.core.q().data(claim.pos);
        let len = data
            .u64_at(0)
            .expect("slot has room for the length (stride checked)")
            .load(Ordering::Relaxed);
        if len > self.max as u64 {
            // Not a message any producer could have written: drop the slot, report it.
            let _ = self.core.release(me, claim);
            return Err(GetError::Corrupted {
                reason: format!(
                    "message length {len} exceeds the queue's maximum of {}",
                    self.max
                ),
            });
        }
        // SAFETY: as in `loan_with`; `len <= max` was just checked.
        let ptr = unsafe { data.as_ptr().add(8) };
        Ok(Message {
            queue: self,
            me,
            claim,
            ptr,
            len: len as usize,
        })
    }

    /// Takes the oldest message, in place, waiting as long as it takes. The slot is handed
    /// back to producers when the guard drops.
    ///
    /// # Errors
    /// [`GetError::Closed`] once closed and drained; [`GetError::Disconnected`] once empty
    /// with every other put-side handle gone ([`Side`]); [`GetError::Interrupted`];
    /// [`GetError::Corrupted`].
    pub fn get(&self) -> Result<Message<'_>, GetError> {
        self.get_with(Waiting::Forever)
    }

    /// Takes the oldest message if one is waiting.
    ///
    /// # Errors
    /// [`GetError::Empty`], as for [`ByteQueue::get`].
    pub fn try_get(&self) -> Result<Message<'_>, GetError> {
        self.get_with(Waiting::No)
    }

    /// Takes the oldest message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`], as for [`ByteQueue::get`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<Message<'_>, GetError> {
        self.get_with(Waiting::For(timeout))
    }

    /// Takes the oldest message, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`ByteQueue::get_timeout`].
    pub fn get_deadline(&self, deadline: Instant) -> Result<Message<'_>, GetError> {
        self.get_with(Waiting::Until(deadline))
    }

    /// Messages waiting, approximately.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no message is waiting (approximate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every slot is taken (approximate).
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Most messages the queue holds.
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Largest message, in bytes.
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// Closes the queue: later puts fail with [`PutError::Closed`]; consumers drain, then get
    /// [`GetError::Closed`].
    pub fn close(&self) {
        self.core.q().close();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.core.q().is_closed()
    }

    /// How blocking calls of this handle wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.core.mode = mode;
    }

    /// For a queue made with [`Options::file`]: writes its items to the file and waits until
    /// the device has them, so they survive an OS crash or power loss too (see
    /// [`Segment::flush`](crate::Segment::flush)). Process crashes need no flush.
    ///
    /// # Errors
    /// The OS error from `msync`.
    pub fn flush(&self) -> std::io::Result<()> {
        self.core.seg().flush()
    }

    /// The name (or file path) of the queue.
    pub fn name(&self) -> String {
        self.core.seg().name()
    }
}

/// Room for one message in a [`ByteQueue`]'s memory; derefs to `&mut [u8]` of the loaned
/// length. [`commit`](Loan::commit) puts it; dropping the loan puts nothing (the slot is
/// skipped by consumers).
#[must_use = "a loan puts nothing unless committed"]
pub struct Loan<'a> {
    queue: &'a ByteQueue,
    me: usize,
    claim: Option<Claim>,
    ptr: NonNull<u8>,
    len: usize,
}

impl Loan<'_> {
    /// Puts the message.
    ///
    /// # Errors
    /// [`PutError::Corrupted`] if the slot was taken away meanwhile (only when this process
    /// was believed dead, or a peer wrote the slot word).
    pub fn commit(mut self) -> Result<(), PutError> {
        let claim = self.claim.take().expect("a loan commits once");
        self.queue
            .core
            .publish(self.me, claim)
            .map_err(|e| e.put(()))
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies in the slot we claimed (see `loan_with`); the claim
        // (slot word `WRITING` by us) keeps every process that follows the protocol away from
        // these bytes until we commit or drop, and the mapping outlives `'a`. A process that
        // ignores the protocol could race us: see "Known limits" in the crate docs.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the loan.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            self.queue.core.q().abandon(claim, self.me);
        }
    }
}

impl fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan").field("len", &self.len).finish()
    }
}

/// A message taken from a [`ByteQueue`], in place; derefs to `&[u8]`. Dropping it hands the
/// slot back to producers.
#[must_use = "the message is released as soon as the guard drops"]
pub struct Message<'a> {
    queue: &'a ByteQueue,
    me: usize,
    claim: Claim,
    ptr: NonNull<u8>,
    len: usize,
}

impl Deref for Message<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies in the slot we claimed (`len <= max` checked in
        // `get_with`); the claim (slot word `READING` by us) keeps producers that follow the
        // protocol off the slot until the guard drops; the mapping outlives `'a`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        // A failure means the slot was already handed on (we were believed dead): nothing to
        // give back.
        let _ = self.queue.core.release(self.me, self.claim);
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message").field("len", &self.len).finish()
    }
}

impl crate::api::select::Selectable for ByteQueue {
    fn registration(&self, put: bool) -> crate::api::select::Reg<'_> {
        self.core.registration(put)
    }
    fn registration_owned(&self, put: bool) -> crate::api::readiness::OwnedReg {
        self.core.registration_owned(put)
    }
}
