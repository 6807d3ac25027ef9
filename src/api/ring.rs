#![allow(unsafe_code)]
//! `Ring`, `Producer`, `Consumer`: the zero-copy single-producer single-consumer byte ring.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ensure;
use crate::api::Waiting;
use crate::api::readiness::OwnedReg;
use crate::api::select::Reg;
use crate::error::{
    AttachError, CreateError, OpenError, OpenOrCreateError, RecvError, RecvTimeoutError, SendError,
    SendTimeoutError, TryRecvError, TrySendError,
};
use crate::region::Region;
use crate::ring::spsc::{
    self, Corrupt, RawRing, Record, Reservation, ReserveFail, RoleState, Side,
};
use crate::ring::wait::{self, Ended, WaitMode};
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};

/// Rounds a requested capacity up to the ring's geometry (a power of two, at least 64).
pub(crate) fn normalize_capacity(name: &Options, capacity: usize) -> Result<u64, CreateError> {
    let cap = capacity.max(spsc::MIN_CAPACITY).checked_next_power_of_two();
    match cap {
        Some(c) if c <= spsc::MAX_CAPACITY => Ok(c as u64),
        _ => Err(CreateError::InvalidSize {
            name: name.label(),
            reason: format!("ring capacity {capacity} is above the 2 GiB limit"),
        }),
    }
}

/// Bytes one ring occupies in a segment, rounded to keep the next ring 128-byte aligned.
pub(crate) fn ring_stride(cap: u64) -> usize {
    spsc::region_size(cap as usize).div_ceil(128) * 128
}

/// Ring `index` of a segment holding ring(s) of this geometry, with the segment's lifetime
/// erased: the caller keeps `seg` alive for as long as it uses the ring.
pub(crate) fn ring_of(
    seg: &Arc<Segment>,
    index: usize,
    cap: u64,
    max: u64,
) -> Option<RawRing<'static>> {
    let payload = seg.payload();
    // SAFETY: the payload lies inside the segment's mapping, which stays mapped while any
    // `Arc<Segment>` lives. Every `RawRing<'static>` made here is stored in a handle (or an
    // `OwnedReg`) next to a clone of that Arc and is never handed out with a lifetime longer
    // than a borrow of that handle, so the memory outlives every use. Access is atomic or
    // through exclusive grants.
    let region: Region<'static> = unsafe { Region::from_raw(payload.as_ptr(), payload.len()) };
    ring_in(region, index, cap, max)
}

/// Ring `index` of a payload holding ring(s) of this geometry, if the geometry is valid and
/// fits (`cap` and `max` come from a header: checked before any arithmetic).
pub(crate) fn ring_in(
    payload: Region<'_>,
    index: usize,
    cap: u64,
    max: u64,
) -> Option<RawRing<'_>> {
    if !spsc::valid_capacity(cap) {
        return None;
    }
    RawRing::new(
        payload.sub(index * ring_stride(cap), spsc::region_size(cap as usize))?,
        cap,
        max,
    )
}

fn claim_new(raw: &RawRing<'_>, side: Side, role: &'static str) -> Result<(), AttachError> {
    raw.claim_new(side).map_err(|word| match word {
        spsc::DETACHED => AttachError::RoleUsed { role },
        pid if raw.role_holder_alive(side, pid) => AttachError::RoleTaken { role, pid },
        _ => AttachError::RoleUsed { role },
    })
}

/// Where the other end of a [`Ring`] is, from [`Producer::peer`] or [`Consumer::peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Nobody has taken the other role yet: it may still come.
    NotYet,
    /// A process that is alive (or cannot be shown dead) holds the other role.
    Attached,
    /// The other end let go or its process died. A new process may take the role later.
    Gone,
}

impl From<RoleState> for Peer {
    fn from(s: RoleState) -> Peer {
        match s {
            RoleState::Never => Peer::NotYet,
            RoleState::Held => Peer::Attached,
            RoleState::Gone => Peer::Gone,
        }
    }
}

/// A single-producer single-consumer ring of byte messages in a named segment.
///
/// One process [`create`](Ring::create)s it, any process [`open`](Ring::open)s it, and two
/// of them claim the roles: [`producer`](Ring::producer) and [`consumer`](Ring::consumer)
/// (in either order; the consumer may wait for a producer that has not come yet). A ring is
/// also the one-way form of a [`Pipe`](crate::Pipe) (`multiprocessing.Pipe(duplex=False)`).
///
/// Messages are 0 to [`max_message`](Ring::max_message) bytes; each is one contiguous slice,
/// written in place through a [`WriteGrant`] and read in place through a [`ReadGuard`].
///
/// # Examples
/// ```
/// let name = format!("doc-ring-{}", std::process::id());
/// let ring = shmq::Ring::create(name.as_str(), 4096)?;
/// let mut tx = ring.producer()?;
/// let mut rx = shmq::Ring::open(name.as_str())?.consumer()?;
///
/// let mut grant = tx.reserve(5)?;      // space in the ring, written in place
/// grant.copy_from_slice(b"hello");
/// grant.commit();                      // now the consumer can see it
/// tx.send(b"world")?;                  // or copy in one call
///
/// assert_eq!(&*rx.recv()?, b"hello");  // a guard over the bytes in the ring
/// let mut buf = Vec::new();
/// rx.recv_into(&mut buf)?;
/// assert_eq!(buf, b"world");
///
/// drop(tx);                            // the consumer drains, then sees Disconnected
/// assert_eq!(rx.try_recv().err(), Some(shmq::TryRecvError::Disconnected));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Ring {
    seg: Arc<Segment>,
    cap: u64,
    max: u64,
}

impl Ring {
    fn layout(cap: u64, max: u64) -> Layout {
        Layout {
            kind: Kind::Ring,
            align: 64,
            ty: TypeInfo::NONE,
            payload_size: ring_stride(cap),
            param0: cap,
            param1: max,
        }
    }

    /// Creates a ring of at least `capacity` bytes (rounded up to a power of two, at least
    /// 64), accepting messages of up to half of it less an 8-byte header.
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, capacity too large.
    pub fn create(opts: impl Into<Options>, capacity: usize) -> Result<Ring, CreateError> {
        let opts = opts.into();
        let cap = normalize_capacity(&opts, capacity)?;
        Ring::create_with_max(opts, cap as usize, spsc::max_message_for(cap) as usize)
    }

    /// Creates a ring with a smaller maximum message size than [`Ring::create`] picks.
    ///
    /// # Errors
    /// As [`Ring::create`]; [`CreateError::InvalidSize`] if `max_message` is above the
    /// capacity's limit (half the capacity, less 8 bytes).
    pub fn create_with_max(
        opts: impl Into<Options>,
        capacity: usize,
        max_message: usize,
    ) -> Result<Ring, CreateError> {
        let opts = opts.into();
        let cap = normalize_capacity(&opts, capacity)?;
        if max_message as u64 > spsc::max_message_for(cap) {
            return Err(CreateError::InvalidSize {
                name: opts.label(),
                reason: format!(
                    "maximum message {max_message} is more than a {cap}-byte ring allows ({})",
                    spsc::max_message_for(cap)
                ),
            });
        }
        let seg = Segment::create_kind(&opts, &Ring::layout(cap, max_message as u64), |_| {})?;
        Ok(Ring {
            seg: Arc::new(seg),
            cap,
            max: max_message as u64,
        })
    }

    /// Opens an existing ring.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a ring, corrupted geometry.
    pub fn open(opts: impl Into<Options>) -> Result<Ring, OpenError> {
        let seg = Segment::open_kind(&opts.into(), Kind::Ring, TypeInfo::NONE)?;
        Ring::checked(seg)
    }

    /// Opens the ring, creating it with `capacity` bytes (as [`Ring::create`]) if it does
    /// not exist. Safe when several processes race to do this: exactly one creates, the
    /// others open (and get the ring as its creator made it, whatever capacity they asked).
    ///
    /// # Errors
    /// As [`Ring::create`] and [`Ring::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        capacity: usize,
    ) -> Result<Ring, OpenOrCreateError> {
        let opts = opts.into();
        let cap = normalize_capacity(&opts, capacity)?;
        let layout = Ring::layout(cap, spsc::max_message_for(cap));
        let seg = Segment::open_or_create_kind(&opts, &layout, |_| {})?;
        Ok(Ring::checked(seg)?)
    }

    /// A ring over an opened segment, its geometry checked.
    fn checked(seg: Segment) -> Result<Ring, OpenError> {
        let seg = Arc::new(seg);
        let (cap, max) = (seg.info().param0, seg.info().param1);
        ensure(&seg, ring_of(&seg, 0, cap, max).is_some(), || {
            format!(
                "ring geometry: capacity {cap}, maximum message {max}, {} bytes",
                seg.info().payload_size
            )
        })?;
        Ok(Ring { seg, cap, max })
    }

    fn raw(&self) -> RawRing<'static> {
        ring_of(&self.seg, 0, self.cap, self.max).expect("ring geometry validated at create/open")
    }

    /// Claims the producer role.
    ///
    /// # Errors
    /// [`AttachError::RoleTaken`] if a live process (this one included) holds it;
    /// [`AttachError::Corrupted`] if the ring's indices are inconsistent.
    pub fn producer(&self) -> Result<Producer, AttachError> {
        Producer::attach(Arc::clone(&self.seg), self.raw())
    }

    /// Claims the consumer role.
    ///
    /// # Errors
    /// As [`Ring::producer`].
    pub fn consumer(&self) -> Result<Consumer, AttachError> {
        Consumer::attach(Arc::clone(&self.seg), self.raw())
    }

    /// Claims the producer role only if this is the ring's first producer (no process ever
    /// held the role): for a ring that carries one stream, so a late producer never joins a
    /// stream that already ended.
    ///
    /// # Errors
    /// [`AttachError::RoleTaken`] if a live process holds it, [`AttachError::RoleUsed`] if
    /// it was held before; [`AttachError::Corrupted`] as [`Ring::producer`].
    pub fn first_producer(&self) -> Result<Producer, AttachError> {
        let raw = self.raw();
        claim_new(&raw, Side::Producer, "producer")?;
        Producer::claimed(Arc::clone(&self.seg), raw)
    }

    /// Claims the consumer role only if this is the ring's first consumer (see
    /// [`Ring::first_producer`]).
    ///
    /// # Errors
    /// As [`Ring::first_producer`].
    pub fn first_consumer(&self) -> Result<Consumer, AttachError> {
        let raw = self.raw();
        claim_new(&raw, Side::Consumer, "consumer")?;
        Consumer::claimed(Arc::clone(&self.seg), raw)
    }

    /// The old name of [`Ring::first_producer`] (it reads like a constructor).
    ///
    /// # Errors
    /// As [`Ring::first_producer`].
    #[deprecated(since = "0.1.0", note = "renamed to `first_producer`")]
    pub fn new_producer(&self) -> Result<Producer, AttachError> {
        self.first_producer()
    }

    /// The old name of [`Ring::first_consumer`].
    ///
    /// # Errors
    /// As [`Ring::first_producer`].
    #[deprecated(since = "0.1.0", note = "renamed to `first_consumer`")]
    pub fn new_consumer(&self) -> Result<Consumer, AttachError> {
        self.first_consumer()
    }

    /// Buffer size in bytes (records take 8 bytes of header plus the payload rounded to 8).
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Largest message accepted, in bytes.
    pub fn max_message(&self) -> usize {
        self.max as usize
    }

    /// Bytes published and not yet released (approximate while either side is active).
    pub fn len(&self) -> usize {
        let raw = self.raw();
        raw.published_tail()
            .saturating_sub(raw.published_head())
            .min(self.cap) as usize
    }

    /// Whether no message is waiting (approximate while either side is active).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }

    /// The segment's header as read when this handle was made (creator, creation time, ...).
    pub fn info(&self) -> &crate::segment::SegmentInfo {
        self.seg.info()
    }
}

/// Internal outcome of a reserve/receive attempt, mapped to each method's error type.
pub(crate) enum Fail {
    Empty,
    Timeout,
    Interrupted,
    TooLarge(usize, usize),
    Disconnected,
    Corrupted(String),
}

impl Fail {
    /// The error of a non-waiting receive; `None`: nothing waiting.
    pub(crate) fn try_recv(self) -> Option<TryRecvError> {
        match self {
            Fail::Empty | Fail::Timeout | Fail::Interrupted | Fail::TooLarge(..) => None,
            Fail::Disconnected => Some(TryRecvError::Disconnected),
            Fail::Corrupted(reason) => Some(TryRecvError::Corrupted { reason }),
        }
    }

    /// The error of an unbounded receive (`recv`, `drain`).
    pub(crate) fn recv(self) -> RecvError {
        match self {
            Fail::Corrupted(reason) => RecvError::Corrupted { reason },
            Fail::Interrupted => RecvError::Interrupted,
            Fail::Empty | Fail::Timeout | Fail::TooLarge(..) | Fail::Disconnected => {
                RecvError::Disconnected
            }
        }
    }

    /// The error of a bounded receive (`recv_timeout`, `drain_deadline`, ...).
    /// The error of a blocking reserve or send.
    pub(crate) fn send(self) -> SendError {
        match self {
            Fail::TooLarge(len, max) => SendError::TooLarge { len, max },
            Fail::Interrupted => SendError::Interrupted,
            Fail::Empty | Fail::Timeout | Fail::Disconnected => SendError::Disconnected,
            Fail::Corrupted(reason) => SendError::Corrupted { reason },
        }
    }

    pub(crate) fn bounded_recv(self) -> RecvTimeoutError {
        match self {
            Fail::Empty | Fail::Timeout | Fail::TooLarge(..) => RecvTimeoutError::Timeout,
            Fail::Interrupted => RecvTimeoutError::Interrupted,
            Fail::Disconnected => RecvTimeoutError::Disconnected,
            Fail::Corrupted(reason) => RecvTimeoutError::Corrupted { reason },
        }
    }
}

impl From<Corrupt> for Fail {
    fn from(c: Corrupt) -> Fail {
        Fail::Corrupted(c.0)
    }
}

/// How long a waiting producer holds out for a good stretch of room before it takes whatever
/// room there is. Short, and spent spinning: a producer that parked takes any room on waking.
const HYSTERESIS: Duration = Duration::from_micros(20);

/// Whether a deep (liveness) check is due; if so, schedules the next one.
pub(crate) fn due(next: &mut Instant) -> bool {
    let now = Instant::now();
    if now < *next {
        return false;
    }
    *next = now + wait::CHECK_EVERY;
    true
}

/// The sending end of a [`Ring`] (or of a [`Pipe`](crate::Pipe)). Lets go of the role on
/// drop; the consumer then drains what was sent and gets `Disconnected`.
///
/// # Crash safety
/// If the producer process dies, a reservation it had not committed is never seen, every
/// committed message is delivered, and the consumer gets `Disconnected` once drained (within
/// about 40 ms of running dry, spinning or asleep). A new producer may then claim the role.
pub struct Producer {
    raw: RawRing<'static>,
    seg: Arc<Segment>,
    tail: u64,
    cached_head: u64,
    mode: WaitMode,
    /// When a call that finds the ring full next checks the consumer's liveness.
    next_deep: Instant,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("name", &self.seg.name())
            .field("tail", &self.tail)
            .finish()
    }
}

impl Producer {
    pub(crate) fn attach(
        seg: Arc<Segment>,
        raw: RawRing<'static>,
    ) -> Result<Producer, AttachError> {
        raw.claim(Side::Producer)
            .map_err(|pid| AttachError::RoleTaken {
                role: "producer",
                pid,
            })?;
        Producer::claimed(seg, raw)
    }

    /// Builds the handle once the role is ours.
    fn claimed(seg: Arc<Segment>, raw: RawRing<'static>) -> Result<Producer, AttachError> {
        match raw.recover_tail() {
            Ok((tail, head)) => Ok(Producer {
                raw,
                cached_head: head,
                tail,
                seg,
                mode: WaitMode::default(),
                next_deep: Instant::now() + wait::CHECK_EVERY,
            }),
            Err(c) => {
                raw.detach(Side::Producer);
                Err(AttachError::Corrupted { reason: c.0 })
            }
        }
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.mode = mode;
    }

    /// The current wait mode.
    pub fn wait_mode(&self) -> WaitMode {
        self.mode
    }

    /// Largest message accepted, in bytes.
    pub fn max_message(&self) -> usize {
        self.raw.max_message() as usize
    }

    /// Whether the consumer has let go or its process died.
    pub fn is_abandoned(&self) -> bool {
        self.raw.peer_gone(Side::Consumer, true)
    }

    /// Where the consumer is: not come yet, attached, or gone (let go or died). Checks the
    /// holder's liveness, so it costs a `/proc` read: call it while waiting, not per message.
    pub fn peer(&self) -> Peer {
        self.raw.role_state(Side::Consumer).into()
    }

    /// This producer's [`Select`](crate::Select) registration for a `len`-byte message:
    /// ready when it fits now (or never can, or the ring is corrupt), or the consumer is gone.
    pub(crate) fn writable(&self, len: usize) -> Reg<'_> {
        let (raw, tail, cached) = (self.raw, self.tail, self.cached_head);
        let (sleeping, bell) = raw.sleep_words(Side::Producer);
        Reg::new(
            wait::Flag { sleeping, bell },
            move |deep| {
                raw.peer_gone(Side::Consumer, false)
                    || !matches!(
                        raw.try_reserve(tail, &mut { cached }, len),
                        Err(ReserveFail::Full)
                    )
                    || (deep && raw.peer_gone_recorded(Side::Consumer))
            },
            None,
        )
    }

    /// [`Producer::writable`] for a [`Readiness`](crate::Readiness): it owns a clone of the
    /// segment and reads the positions from the ring's shared words (the producer's own
    /// copies stay in the handle, which may be gone by the time it looks).
    pub(crate) fn writable_owned(&self, len: usize) -> OwnedReg {
        OwnedReg::new(Arc::clone(&self.seg), (self.raw, len), writable_shared)
    }

    fn reserve_inner(&mut self, len: usize, waiting: Waiting) -> Result<Reservation, Fail> {
        let raw = self.raw;
        if raw.peer_gone(Side::Consumer, false) {
            return Err(Fail::Disconnected);
        }
        let map = |e: ReserveFail| match e {
            ReserveFail::TooLarge => Fail::TooLarge(len, raw.max_message() as usize),
            ReserveFail::Full => Fail::Empty,
            ReserveFail::Corrupt(c) => c.into(),
        };
        match raw.try_reserve(self.tail, &mut self.cached_head, len) {
            Ok(r) => return Ok(r),
            Err(ReserveFail::Full) => {}
            Err(e) => return Err(map(e)),
        }
        // Full: a consumer that died is noticed here even by non-waiting calls.
        if raw.peer_gone(Side::Consumer, due(&mut self.next_deep)) {
            return Err(Fail::Disconnected);
        }
        let Some(deadline) = waiting.deadline() else {
            return Err(Fail::Empty);
        };
        let (tail, cached) = (self.tail, &mut self.cached_head);
        let (sleeping, bell) = raw.sleep_words(Side::Producer);
        // Hysteresis: a producer that found the ring full waits (for a bounded number of
        // polls) until a good stretch is free, not just one record. Writing right behind a
        // consumer that is still reading the neighbouring lines makes those lines bounce
        // between the two cores on every message.
        let waiting_since = Instant::now();
        wait::wait(
            self.mode,
            deadline,
            &wait::Flag { sleeping, bell },
            true,
            || match raw.try_reserve(tail, cached, len) {
                Ok(r) => {
                    let spacious = raw.free_after(&r, *cached) >= raw.slack() || *cached == tail;
                    Ok((spacious || waiting_since.elapsed() > HYSTERESIS).then_some(r))
                }
                Err(ReserveFail::Full) => Ok(None),
                Err(e) => Err(e),
            },
            |deep| raw.peer_gone(Side::Consumer, deep),
        )
        .map_err(|e| match e {
            Ended::TimedOut => Fail::Timeout,
            Ended::PeerGone => Fail::Disconnected,
            Ended::Interrupted => Fail::Interrupted,
            Ended::Failed(e) => map(e),
        })
    }

    fn grant(&mut self, r: Reservation) -> WriteGrant<'_> {
        WriteGrant { producer: self, r }
    }

    /// Reserves room for a `len`-byte message without waiting.
    ///
    /// # Errors
    /// [`TrySendError`]: `Full`, `TooLarge`, `Disconnected` (the consumer let go), `Corrupted`.
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, TrySendError> {
        match self.reserve_inner(len, Waiting::No) {
            Ok(r) => Ok(self.grant(r)),
            Err(Fail::Empty | Fail::Timeout | Fail::Interrupted) => Err(TrySendError::Full),
            Err(Fail::TooLarge(len, max)) => Err(TrySendError::TooLarge { len, max }),
            Err(Fail::Disconnected) => Err(TrySendError::Disconnected),
            Err(Fail::Corrupted(reason)) => Err(TrySendError::Corrupted { reason }),
        }
    }

    /// Reserves room for a `len`-byte message, waiting for the consumer as long as needed.
    ///
    /// # Errors
    /// [`SendError`]: `TooLarge`, `Disconnected` (the consumer let go or died), `Corrupted`.
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, SendError> {
        match self.reserve_inner(len, Waiting::Forever) {
            Ok(r) => Ok(self.grant(r)),
            Err(f) => Err(f.send()),
        }
    }

    /// [`Producer::reserve`] for async code (feature `async`): tries at once, and only if
    /// the ring is full waits for room without blocking the thread (woken by the process's
    /// readiness thread, see [`Readiness`](crate::Readiness)); any executor.
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has reserved nothing.
    ///
    /// # Errors
    /// As [`Producer::reserve`], except `Interrupted` (cancel the future instead).
    #[cfg(feature = "async")]
    pub async fn reserve_async(&mut self, len: usize) -> Result<WriteGrant<'_>, SendError> {
        loop {
            match self.reserve_inner(len, Waiting::No) {
                Ok(r) => return Ok(self.grant(r)),
                Err(Fail::Empty) => {}
                Err(f) => return Err(f.send()),
            }
            // Hybrid (the default) and busy-poll modes spin a while first, as their blocking
            // calls do, so a peer that answers within microseconds costs no thread hop.
            let (raw, tail, cached) = (self.raw, self.tail, self.cached_head);
            let room = || {
                !matches!(
                    raw.try_reserve(tail, &mut { cached }, len),
                    Err(ReserveFail::Full)
                )
            };
            if self.mode != WaitMode::Blocking && wait::spin_for(wait::HYBRID_SPIN, room) {
                continue;
            }
            crate::api::readiness::until_ready(self.writable_owned(len)).await;
        }
    }

    /// [`Producer::send`] for async code (feature `async`): copies `msg` in once there is
    /// room.
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has sent nothing.
    ///
    /// # Errors
    /// As [`Producer::send`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn send_async(&mut self, msg: &[u8]) -> Result<(), SendError> {
        let mut g = self.reserve_async(msg.len()).await?;
        g.copy_from_slice(msg);
        g.commit();
        Ok(())
    }

    /// Reserves room for a `len`-byte message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError`]: `Timeout`, `TooLarge`, `Disconnected`, `Corrupted`.
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_>, SendTimeoutError> {
        self.reserve_bounded(len, Waiting::For(timeout))
    }

    /// Reserves room for a `len`-byte message, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Producer::reserve_timeout`].
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Instant,
    ) -> Result<WriteGrant<'_>, SendTimeoutError> {
        self.reserve_bounded(len, Waiting::Until(deadline))
    }

    fn reserve_bounded(
        &mut self,
        len: usize,
        waiting: Waiting,
    ) -> Result<WriteGrant<'_>, SendTimeoutError> {
        match self.reserve_inner(len, waiting) {
            Ok(r) => Ok(self.grant(r)),
            Err(Fail::Empty | Fail::Timeout) => Err(SendTimeoutError::Timeout),
            Err(Fail::Interrupted) => Err(SendTimeoutError::Interrupted),
            Err(Fail::TooLarge(len, max)) => Err(SendTimeoutError::TooLarge { len, max }),
            Err(Fail::Disconnected) => Err(SendTimeoutError::Disconnected),
            Err(Fail::Corrupted(reason)) => Err(SendTimeoutError::Corrupted { reason }),
        }
    }

    /// Copies `msg` into the ring without waiting.
    ///
    /// # Errors
    /// As [`Producer::try_reserve`].
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        let mut g = self.try_reserve(msg.len())?;
        g.copy_from_slice(msg);
        g.commit();
        Ok(())
    }

    /// Copies `msg` into the ring, waiting for room as long as needed.
    ///
    /// # Errors
    /// As [`Producer::reserve`].
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        let mut g = self.reserve(msg.len())?;
        g.copy_from_slice(msg);
        g.commit();
        Ok(())
    }

    /// Copies `msg` into the ring, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Producer::reserve_timeout`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendTimeoutError> {
        let mut g = self.reserve_timeout(msg.len(), timeout)?;
        g.copy_from_slice(msg);
        g.commit();
        Ok(())
    }

    /// Copies `msg` into the ring, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`Producer::reserve_timeout`].
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Instant) -> Result<(), SendTimeoutError> {
        let mut g = self.reserve_deadline(msg.len(), deadline)?;
        g.copy_from_slice(msg);
        g.commit();
        Ok(())
    }

    /// Starts a batch: several messages published together with one store.
    pub fn batch(&mut self) -> WriteBatch<'_> {
        let tail = self.tail;
        WriteBatch {
            producer: self,
            tail,
            first: None,
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.raw.detach(Side::Producer);
    }
}

/// The registration of [`Producer::writable_owned`]: ready when a `len`-byte message fits
/// after the shared tail (or never can, or a shared word is corrupt), or the consumer is gone.
/// The `'static` ring is shortened to the borrow of the [`OwnedReg`] that holds it next to
/// its segment.
fn writable_shared<'s>(_: &'s Segment, &(raw, len): &'s (RawRing<'static>, usize)) -> Reg<'s> {
    let raw: RawRing<'s> = raw;
    let (sleeping, bell) = raw.sleep_words(Side::Producer);
    Reg::new(
        wait::Flag { sleeping, bell },
        move |deep| {
            let fits = || {
                // A forged tail is "ready": the producer's own calls then say what they see.
                let Some(tail) = raw.shared_tail() else {
                    return true;
                };
                // No cached head: `try_reserve` reads the shared one (and checks it).
                let mut head = tail.saturating_sub(raw.capacity());
                !matches!(
                    raw.try_reserve(tail, &mut head, len),
                    Err(ReserveFail::Full)
                )
            };
            raw.peer_gone(Side::Consumer, false)
                || fits()
                || (deep && raw.peer_gone_recorded(Side::Consumer))
        },
        None,
    )
}

/// The registration of [`Consumer::readable_owned`]: ready when a record is published at the
/// shared head (or the ring is corrupt), or the producer is gone. The `'static` ring is
/// shortened as in [`writable_shared`].
fn readable_shared<'s>(_: &'s Segment, &raw: &'s RawRing<'static>) -> Reg<'s> {
    let raw: RawRing<'s> = raw;
    let (sleeping, bell) = raw.sleep_words(Side::Consumer);
    Reg::new(
        wait::Flag { sleeping, bell },
        move |deep| {
            // A forged head is "ready": the consumer's own calls then say what they see.
            raw.shared_head()
                .is_none_or(|head| !matches!(raw.peek(head), Ok(None)))
                || raw.peer_gone(Side::Producer, false)
                || (deep && raw.peer_gone_recorded(Side::Producer))
        },
        None,
    )
}

/// Room for one message inside the ring; derefs to `&mut [u8]` of exactly the reserved length.
/// [`commit`](WriteGrant::commit) publishes it; dropping the grant publishes nothing.
#[must_use = "a grant publishes nothing unless committed"]
pub struct WriteGrant<'a> {
    producer: &'a mut Producer,
    r: Reservation,
}

impl WriteGrant<'_> {
    /// Publishes the message: the consumer can see it from now on.
    #[inline]
    pub fn commit(self) {
        let raw = self.producer.raw;
        let word = raw.prepare(&self.r);
        raw.publish(self.r.pos, word, self.r.end);
        self.producer.tail = self.r.end;
    }
}

impl Deref for WriteGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the payload `[start + 8, start + 8 + len)` is inside the buffer (a record
        // never wraps: `try_reserve` pads instead) and in free space: the consumer released it
        // (we read its head with Acquire) and cannot read it before we publish, and we hold the
        // only producer role of the ring, mutably borrowed by this grant. Any bytes are valid u8.
        unsafe {
            std::slice::from_raw_parts(
                self.producer.raw.byte_ptr(self.r.start + 8).as_ptr(),
                self.r.len as usize,
            )
        }
    }
}

impl DerefMut for WriteGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to those bytes.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.producer.raw.byte_ptr(self.r.start + 8).as_ptr(),
                self.r.len as usize,
            )
        }
    }
}

impl fmt::Debug for WriteGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGrant")
            .field("len", &self.r.len)
            .finish()
    }
}

/// Messages published together: the consumer sees none of them until
/// [`publish`](WriteBatch::publish), then all of them, for the cost of one store. Dropping the
/// batch unpublished discards them all. Batches never wait: when the ring fills, publish and
/// start another.
#[must_use = "a batch publishes nothing unless published"]
pub struct WriteBatch<'a> {
    producer: &'a mut Producer,
    /// The batch's own tail: the producer's moves only on `publish`, so a batch that is
    /// dropped or forgotten leaves the producer exactly as it was.
    tail: u64,
    first: Option<(u64, u64)>,
}

impl WriteBatch<'_> {
    /// Adds a copy of `msg` to the batch.
    ///
    /// # Errors
    /// As [`Producer::try_send`]; on `Full`, publish what the batch holds and retry.
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), TrySendError> {
        let p = &mut *self.producer;
        if p.raw.peer_gone(Side::Consumer, false) {
            return Err(TrySendError::Disconnected);
        }
        let r = match p
            .raw
            .try_reserve_after(self.tail, p.tail, &mut p.cached_head, msg.len())
        {
            Ok(r) => r,
            Err(ReserveFail::Full) => return Err(TrySendError::Full),
            Err(ReserveFail::TooLarge) => {
                return Err(TrySendError::TooLarge {
                    len: msg.len(),
                    max: p.max_message(),
                });
            }
            Err(ReserveFail::Corrupt(c)) => return Err(TrySendError::Corrupted { reason: c.0 }),
        };
        // SAFETY: as in `WriteGrant::deref_mut`: the reserved payload is in free space that
        // only this producer (mutably borrowed through the batch) may write.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(p.raw.byte_ptr(r.start + 8).as_ptr(), msg.len())
        };
        dst.copy_from_slice(msg);
        let word = p.raw.prepare(&r);
        match self.first {
            None => self.first = Some((r.pos, word)),
            Some(_) => p.raw.store_header(r.pos, word),
        }
        self.tail = r.end;
        Ok(())
    }

    /// Messages in the batch so far, as bytes of ring used.
    pub fn bytes(&self) -> usize {
        (self.tail - self.producer.tail) as usize
    }

    /// Publishes every message of the batch with one Release store.
    pub fn publish(self) {
        if let Some((pos, word)) = self.first {
            self.producer.raw.publish(pos, word, self.tail);
            self.producer.tail = self.tail;
        }
        // Dropped unpublished, nothing changes: the header slot at the producer's tail is
        // still zero, so the consumer never sees the batch.
    }
}

impl fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBatch")
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// The receiving end of a [`Ring`] (or of a [`Pipe`](crate::Pipe)). Lets go of the role on
/// drop; the producer's later sends then fail with `Disconnected`.
///
/// # Crash safety
/// If the consumer process dies, a producer blocked on a full ring gets `Disconnected` within
/// about 40 ms. A message whose guard was held at the death is delivered again to the next
/// consumer that claims the role (it was never released).
pub struct Consumer {
    raw: RawRing<'static>,
    seg: Arc<Segment>,
    head: u64,
    mode: WaitMode,
    /// The last receive found its message already there: the producer is streaming.
    streaming: bool,
    /// When a non-waiting call that finds the ring empty next checks the producer's liveness.
    next_deep: Instant,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.seg.name())
            .field("head", &self.head)
            .finish()
    }
}

impl Consumer {
    pub(crate) fn attach(
        seg: Arc<Segment>,
        raw: RawRing<'static>,
    ) -> Result<Consumer, AttachError> {
        raw.claim(Side::Consumer)
            .map_err(|pid| AttachError::RoleTaken {
                role: "consumer",
                pid,
            })?;
        Consumer::claimed(seg, raw)
    }

    /// Builds the handle once the role is ours.
    fn claimed(seg: Arc<Segment>, raw: RawRing<'static>) -> Result<Consumer, AttachError> {
        match raw.recover_head() {
            Ok(head) => Ok(Consumer {
                raw,
                seg,
                head,
                mode: WaitMode::default(),
                streaming: false,
                next_deep: Instant::now() + wait::CHECK_EVERY,
            }),
            Err(c) => {
                raw.detach(Side::Consumer);
                Err(AttachError::Corrupted { reason: c.0 })
            }
        }
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.mode = mode;
    }

    /// The current wait mode.
    pub fn wait_mode(&self) -> WaitMode {
        self.mode
    }

    /// Whether the producer has let go or its process died (messages may still be waiting).
    pub fn is_abandoned(&self) -> bool {
        self.raw.peer_gone(Side::Producer, true)
    }

    /// Where the producer is: not come yet, attached, or gone (let go or died; messages may
    /// still be waiting). Costs a `/proc` read, like [`Producer::peer`].
    pub fn peer(&self) -> Peer {
        self.raw.role_state(Side::Producer).into()
    }

    /// This consumer's [`Select`](crate::Select) registration: ready when a message waits
    /// (or the ring is corrupt), or the producer is gone.
    pub(crate) fn readable(&self) -> Reg<'_> {
        let (raw, head) = (self.raw, self.head);
        let (sleeping, bell) = raw.sleep_words(Side::Consumer);
        Reg::new(
            wait::Flag { sleeping, bell },
            move |deep| {
                !matches!(raw.peek(head), Ok(None))
                    || raw.peer_gone(Side::Producer, false)
                    || (deep && raw.peer_gone_recorded(Side::Producer))
            },
            None,
        )
    }

    /// [`Consumer::readable`] for a [`Readiness`](crate::Readiness): it owns a clone of the
    /// segment and reads the head from the ring's shared word (the consumer's own copy stays
    /// in the handle, which may be gone by the time it looks; the two are equal whenever no
    /// call of the consumer is running).
    pub(crate) fn readable_owned(&self) -> OwnedReg {
        OwnedReg::new(Arc::clone(&self.seg), self.raw, readable_shared)
    }

    fn recv_inner(&mut self, waiting: Waiting) -> Result<Record, Fail> {
        let (raw, head) = (self.raw, self.head);
        if let Some(r) = raw.peek(head)? {
            self.streaming = true;
            return Ok(r);
        }
        // Caught up with a streaming producer: back off between polls of the line it is
        // writing, so it can fill whole lines instead of handing each one over per message.
        // A consumer that waited last time (ping-pong) polls flat out, for the lowest latency.
        let backoff = std::mem::replace(&mut self.streaming, false);
        let drained = || match raw.peek(head) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(Fail::Disconnected),
            Err(c) => Err(c.into()),
        };
        // A dead producer is noticed by non-waiting and short-timeout calls too: their empty
        // path checks its liveness every CHECK_EVERY (waiting calls also check as they wait).
        if raw.peer_gone(Side::Producer, due(&mut self.next_deep)) {
            return drained();
        }
        let Some(deadline) = waiting.deadline() else {
            return Err(Fail::Empty);
        };
        let (sleeping, bell) = raw.sleep_words(Side::Consumer);
        match wait::wait(
            self.mode,
            deadline,
            &wait::Flag { sleeping, bell },
            backoff,
            || raw.peek(head),
            |deep| raw.peer_gone(Side::Producer, deep),
        ) {
            Ok(r) => Ok(r),
            Err(Ended::TimedOut) => Err(Fail::Timeout),
            Err(Ended::Interrupted) => Err(Fail::Interrupted),
            Err(Ended::PeerGone) => drained(),
            Err(Ended::Failed(c)) => Err(c.into()),
        }
    }

    fn guard(&mut self, rec: Record) -> ReadGuard<'_> {
        ReadGuard {
            consumer: self,
            rec,
        }
    }

    /// The next message, if one is waiting.
    ///
    /// # Errors
    /// [`TryRecvError`]: `Empty`, `Disconnected` (producer gone and ring drained), `Corrupted`.
    #[inline]
    pub fn try_recv(&mut self) -> Result<ReadGuard<'_>, TryRecvError> {
        match self.recv_inner(Waiting::No) {
            Ok(r) => Ok(self.guard(r)),
            Err(f) => Err(f.try_recv().unwrap_or(TryRecvError::Empty)),
        }
    }

    /// The next message, waiting as long as needed (also for a producer that has not yet
    /// attached).
    ///
    /// # Errors
    /// [`RecvError`]: `Disconnected` (producer gone and ring drained), `Corrupted`.
    #[inline]
    pub fn recv(&mut self) -> Result<ReadGuard<'_>, RecvError> {
        match self.recv_inner(Waiting::Forever) {
            Ok(r) => Ok(self.guard(r)),
            Err(f) => Err(f.recv()),
        }
    }

    /// [`Consumer::recv`] for async code (feature `async`): takes a waiting message at once;
    /// when the ring is empty it spins for up to 50 µs in the hybrid and busy-poll
    /// [`WaitMode`]s (not in `Blocking`), then waits without blocking the thread, woken by the
    /// process's readiness thread (see [`Readiness`](crate::Readiness)); any executor. While
    /// messages flow it never sleeps.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// let name = format!("doc-recv-async-{}", std::process::id());
    /// let ring = shmq::Ring::create(name.as_str(), 4096)?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send(b"hello")?;
    /// // Any executor; here a minimal one from the standard library's pieces.
    /// let msg = shmq_block_on(async { rx.recv_async().await.map(|m| m.to_vec()) })?;
    /// assert_eq!(msg, b"hello");
    /// # fn shmq_block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } }
    /// # }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has taken nothing (the message stays
    /// for the next receive).
    ///
    /// # Errors
    /// As [`Consumer::recv`], except `Interrupted` (cancel the future instead).
    #[cfg(feature = "async")]
    pub async fn recv_async(&mut self) -> Result<ReadGuard<'_>, RecvError> {
        loop {
            match self.recv_inner(Waiting::No) {
                Ok(r) => return Ok(self.guard(r)),
                Err(Fail::Empty) => {}
                Err(f) => return Err(f.recv()),
            }
            // Hybrid (the default) and busy-poll modes spin a while first, as their blocking
            // calls do, so a peer that answers within microseconds costs no thread hop.
            let (raw, head) = (self.raw, self.head);
            let waiting = || !matches!(raw.peek(head), Ok(None));
            if self.mode != WaitMode::Blocking && wait::spin_for(wait::HYBRID_SPIN, waiting) {
                continue;
            }
            crate::api::readiness::until_ready(self.readable_owned()).await;
        }
    }

    /// The next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError`]: `Timeout`, `Disconnected`, `Corrupted`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ReadGuard<'_>, RecvTimeoutError> {
        self.recv_bounded(Waiting::For(timeout))
    }

    /// The next message, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Consumer::recv_timeout`].
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<ReadGuard<'_>, RecvTimeoutError> {
        self.recv_bounded(Waiting::Until(deadline))
    }

    fn recv_bounded(&mut self, waiting: Waiting) -> Result<ReadGuard<'_>, RecvTimeoutError> {
        match self.recv_inner(waiting) {
            Ok(r) => Ok(self.guard(r)),
            Err(f) => Err(f.bounded_recv()),
        }
    }

    /// Copies the next message into `buf` (replacing its contents), waiting as needed.
    /// Returns the message length.
    ///
    /// # Errors
    /// As [`Consumer::recv`].
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        let msg = self.recv()?;
        Ok(copy_into(&msg, buf))
    }

    /// Copies the next message into `buf` if one is waiting.
    ///
    /// # Errors
    /// As [`Consumer::try_recv`].
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryRecvError> {
        let msg = self.try_recv()?;
        Ok(copy_into(&msg, buf))
    }

    /// Copies the next message into `buf`, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Consumer::recv_timeout`].
    pub fn recv_into_timeout(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, RecvTimeoutError> {
        let msg = self.recv_timeout(timeout)?;
        Ok(copy_into(&msg, buf))
    }

    /// Copies the next message into `buf`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Consumer::recv_timeout`].
    pub fn recv_into_deadline(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Instant,
    ) -> Result<usize, RecvTimeoutError> {
        let msg = self.recv_deadline(deadline)?;
        Ok(copy_into(&msg, buf))
    }

    /// Releases the next message unread, if one is waiting; returns its length.
    pub(crate) fn skip(&mut self) -> Result<usize, Fail> {
        let r = self.recv_inner(Waiting::No)?;
        Ok(self.guard(r).len())
    }

    /// Waits (as `waiting` allows) for a message, then hands it and every message after it
    /// that is already there to `take`, in order, while `take` accepts them, and releases the
    /// accepted ones with one store. Returns how many were accepted and whether `take`
    /// refused one (it stays in the ring, first in line).
    pub(crate) fn drain_with(
        &mut self,
        waiting: Waiting,
        mut take: impl FnMut(&[u8]) -> bool,
    ) -> Result<(usize, bool), Fail> {
        let raw = self.raw;
        let mut rec = self.recv_inner(waiting)?;
        let (mut n, mut end) = (0, self.head);
        let refused = loop {
            // SAFETY: as in `ReadGuard::deref`: a published record inside the buffer (checked
            // by `peek`) that the producer will not overwrite before we release it; `&mut
            // self` makes us the only reader.
            let msg = unsafe {
                std::slice::from_raw_parts(raw.byte_ptr(rec.data).as_ptr(), rec.len as usize)
            };
            if !take(msg) {
                break true;
            }
            n += 1;
            end = rec.next;
            match raw.peek(rec.next) {
                // Never more than one ring's worth in a batch, even if a producer that ignores
                // our head keeps writing ahead of us.
                Ok(Some(next)) if next.next - self.head <= raw.capacity() => rec = next,
                _ => break false,
            }
        };
        if n > 0 {
            self.head = end;
            raw.release(end);
        }
        Ok((n, refused))
    }

    /// Hands every message waiting now to `f`, in order, then releases them all with one
    /// store. Returns how many there were (0: none waiting). Does not wait.
    ///
    /// # Errors
    /// `Disconnected` when the producer is gone and nothing is left; `Corrupted` if the first
    /// record fails its checks (a later bad record ends the batch; the next call reports it).
    pub fn try_drain(&mut self, mut f: impl FnMut(&[u8])) -> Result<usize, TryRecvError> {
        match self.drain_with(Waiting::No, |m| {
            f(m);
            true
        }) {
            Ok((n, _)) => Ok(n),
            Err(f) => f.try_recv().map_or(Ok(0), Err),
        }
    }

    /// As [`Consumer::try_drain`], but first waits as long as needed for a message: returns
    /// at least 1.
    ///
    /// # Errors
    /// As [`Consumer::recv`].
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.drain_with(Waiting::Forever, |m| {
            f(m);
            true
        })
        .map(|(n, _)| n)
        .map_err(Fail::recv)
    }

    /// As [`Consumer::drain`], waiting at most `timeout` for the first message.
    ///
    /// # Errors
    /// As [`Consumer::recv_timeout`].
    pub fn drain_timeout(
        &mut self,
        timeout: Duration,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvTimeoutError> {
        self.drain_bounded(Waiting::For(timeout), f)
    }

    /// As [`Consumer::drain`], waiting until `deadline` at most for the first message.
    ///
    /// # Errors
    /// As [`Consumer::recv_timeout`].
    pub fn drain_deadline(
        &mut self,
        deadline: Instant,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvTimeoutError> {
        self.drain_bounded(Waiting::Until(deadline), f)
    }

    fn drain_bounded(
        &mut self,
        waiting: Waiting,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvTimeoutError> {
        self.drain_with(waiting, |m| {
            f(m);
            true
        })
        .map(|(n, _)| n)
        .map_err(Fail::bounded_recv)
    }
}

/// Replaces `buf`'s contents with `msg`; returns its length.
fn copy_into(msg: &[u8], buf: &mut Vec<u8>) -> usize {
    buf.clear();
    buf.extend_from_slice(msg);
    msg.len()
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.raw.detach(Side::Consumer);
    }
}

/// A received message, in place in the ring; derefs to `&[u8]`. Dropping it frees the space.
#[must_use = "the message is released as soon as the guard drops"]
pub struct ReadGuard<'a> {
    consumer: &'a mut Consumer,
    rec: Record,
}

impl Deref for ReadGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `peek` checked that the record lies inside the buffer without wrapping and
        // acquired its header, so the producer's writes to the payload are visible; the
        // producer will not reuse those bytes before we release them (its free-space check
        // reads our head), and the guard borrows the only consumer mutably. Any bytes are
        // valid u8. A producer that breaks the protocol and writes them anyway races with us;
        // the crate docs ("Known limits") say zero-copy access trusts the peer's protocol.
        unsafe {
            std::slice::from_raw_parts(
                self.consumer.raw.byte_ptr(self.rec.data).as_ptr(),
                self.rec.len as usize,
            )
        }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.consumer.head = self.rec.next;
        self.consumer.raw.release(self.rec.next);
    }
}

impl fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("len", &self.rec.len)
            .finish()
    }
}
