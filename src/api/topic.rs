#![allow(unsafe_code)]
//! `Topic`, `Publisher`, `Subscriber`: broadcast, every subscriber reads every message.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Waiting;
use super::ensure;
use super::readiness::OwnedReg;
use super::ring::due;
use super::select::Reg;
use crate::error::{
    CreateError, OpenError, OpenOrCreateError, PublishError, TopicAttachError, TopicRecvError,
};
use crate::region::Region;
use crate::ring::spsc::Corrupt;
use crate::ring::topic::{self, Geometry, Raised, RawTopic, Slot};
use crate::ring::wait::{self, Ended, WaitMode};
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};

pub use crate::ring::topic::{Policy, StartAt};

/// The shape of a new [`Topic`]: how many messages it holds, how large each may be, how
/// many subscribers it has room for, and what publishers do when it is full.
///
/// ```
/// let config = shmq::TopicConfig::new(1024, 256)   // 1024 slots of up to 256 bytes
///     .subscribers(128)
///     .policy(shmq::Policy::Overwrite);
/// assert_eq!(config.slots, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicConfig {
    /// Messages the log holds (rounded up to a power of two, at least 2).
    pub slots: usize,
    /// Largest message in bytes. Every slot reserves this much, so a topic takes about
    /// `slots × (max_message + 16)` bytes.
    pub max_message: usize,
    /// Subscribers that can be attached at once (default 64, at most 4096).
    pub subscribers: usize,
    /// What publishers do when the slowest subscriber is a whole log behind (default Block).
    pub policy: Policy,
}

impl TopicConfig {
    /// `slots` messages of up to `max_message` bytes, 64 subscribers, [`Policy::Block`].
    pub fn new(slots: usize, max_message: usize) -> TopicConfig {
        TopicConfig {
            slots,
            max_message,
            subscribers: topic::DEFAULT_SUBSCRIBERS,
            policy: Policy::Block,
        }
    }

    /// Room for `n` subscribers at once.
    #[must_use]
    pub fn subscribers(mut self, n: usize) -> TopicConfig {
        self.subscribers = n;
        self
    }

    /// The policy when the log is full.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> TopicConfig {
        self.policy = policy;
        self
    }

    fn geometry(&self, opts: &Options) -> Result<Geometry, CreateError> {
        let invalid = |reason: String| CreateError::InvalidSize {
            name: opts.label(),
            reason,
        };
        let slots = self
            .slots
            .max(2)
            .checked_next_power_of_two()
            .filter(|&s| s as u64 <= topic::MAX_SLOTS)
            .ok_or_else(|| {
                invalid(format!(
                    "{} slots is above the limit of {}",
                    self.slots,
                    topic::MAX_SLOTS
                ))
            })?;
        if self.max_message as u64 > topic::MAX_MESSAGE {
            return Err(invalid(format!(
                "maximum message {} is above the limit of {}",
                self.max_message,
                topic::MAX_MESSAGE
            )));
        }
        if !(1..=topic::MAX_SUBSCRIBERS).contains(&self.subscribers) {
            return Err(invalid(format!(
                "{} subscribers: a topic has room for 1 to {}",
                self.subscribers,
                topic::MAX_SUBSCRIBERS
            )));
        }
        let g = Geometry {
            slots: slots as u64,
            max: self.max_message as u64,
            subs: self.subscribers,
            policy: self.policy,
        };
        if g.region_size().is_none() {
            return Err(invalid(format!(
                "{slots} slots of {} bytes do not fit in memory",
                g.stride()
            )));
        }
        Ok(g)
    }
}

/// A broadcast log of byte messages in a named segment: every [`Subscriber`] receives every
/// message, in the order publishers claimed them.
///
/// Any number of [`Publisher`]s (up to 64 at once, in any processes) publish; up to
/// [`TopicConfig::subscribers`] subscribers, attaching and leaving at any time, each read
/// with their own cursor. Publishing writes a message once, whatever the number of
/// subscribers, and never visits them (it learns the slowest cursor only when it reaches
/// it), so it costs the same for one subscriber or a thousand.
///
/// When the slowest subscriber is a whole log behind, the [`Policy`] decides:
/// - [`Policy::Block`] (lossless): publishers wait for it. A subscriber that dies stops
///   holding the log back within about 100 ms; one that is merely slow holds it back, as it
///   should. Subscribers read messages in place (zero-copy), publishers write them in place.
/// - [`Policy::Overwrite`]: publishers never wait for subscribers (only, rarely, for a
///   publisher that has not finished the message a whole log earlier, which writes the same
///   slot; one that died is skipped within about 40 ms); a subscriber that was lapped gets
///   [`TopicRecvError::Lagged`] with the number of messages it lost, then resumes at the
///   oldest message still held. A message overwritten while it is read is detected and never
///   delivered torn. Because a slot may be rewritten while a subscriber looks at it, a
///   zero-copy view of it could change under the reader (a data race): under this policy a
///   subscriber receives a *copy*, checked after copying, and publishers' grants are copied
///   in on commit.
///
/// # Examples
/// ```
/// let name = format!("doc-topic-{}", std::process::id());
/// let topic = shmq::Topic::create(name.as_str(), 1024, 64)?;
/// let mut a = topic.subscriber()?;   // in practice: other processes, Topic::open(name)
/// let mut b = topic.subscriber()?;
/// let mut tx = topic.publisher()?;
///
/// tx.publish(b"tick 1")?;
/// let mut grant = tx.reserve(6)?;     // or write in place
/// grant.copy_from_slice(b"tick 2");
/// grant.commit();
///
/// for sub in [&mut a, &mut b] {
///     assert_eq!(&*sub.recv()?, b"tick 1");
///     assert_eq!(&*sub.recv()?, b"tick 2");
/// }
/// assert_eq!(topic.latest()?.as_deref(), Some(&b"tick 2"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Topic {
    seg: Arc<Segment>,
    g: Geometry,
}

impl Topic {
    fn layout(g: &Geometry, ty: TypeInfo) -> Layout {
        Layout {
            kind: Kind::Topic,
            align: 128,
            ty,
            payload_size: g.region_size().expect("checked by TopicConfig::geometry"),
            param0: g.slots,
            param1: g.param1(),
        }
    }

    /// Creates a [`Policy::Block`] topic of `slots` messages (rounded up to a power of two)
    /// of up to `max_message` bytes each, with room for 64 subscribers.
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, sizes out of range.
    pub fn create(
        opts: impl Into<Options>,
        slots: usize,
        max_message: usize,
    ) -> Result<Topic, CreateError> {
        Topic::create_with(opts, &TopicConfig::new(slots, max_message))
    }

    /// Creates a topic as `config` describes.
    ///
    /// # Errors
    /// As [`Topic::create`].
    pub fn create_with(
        opts: impl Into<Options>,
        config: &TopicConfig,
    ) -> Result<Topic, CreateError> {
        Topic::create_typed(opts.into(), config, TypeInfo::NONE)
    }

    pub(crate) fn create_typed(
        opts: Options,
        config: &TopicConfig,
        ty: TypeInfo,
    ) -> Result<Topic, CreateError> {
        let g = config.geometry(&opts)?;
        let seg = Segment::create_kind(&opts, &Topic::layout(&g, ty), |_| {})?;
        Ok(Topic {
            seg: Arc::new(seg),
            g,
        })
    }

    /// Opens an existing topic.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a topic, corrupted geometry.
    pub fn open(opts: impl Into<Options>) -> Result<Topic, OpenError> {
        Topic::open_typed(opts.into(), TypeInfo::NONE)
    }

    pub(crate) fn open_typed(opts: Options, ty: TypeInfo) -> Result<Topic, OpenError> {
        Topic::checked(Segment::open_kind(&opts, Kind::Topic, ty)?)
    }

    /// Opens the topic, creating it as `config` describes if it does not exist. Safe when
    /// several processes race to do this: one creates, the others open (and get the topic as
    /// its creator made it).
    ///
    /// # Errors
    /// As [`Topic::create`] and [`Topic::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        config: &TopicConfig,
    ) -> Result<Topic, OpenOrCreateError> {
        Topic::open_or_create_typed(opts.into(), config, TypeInfo::NONE)
    }

    pub(crate) fn open_or_create_typed(
        opts: Options,
        config: &TopicConfig,
        ty: TypeInfo,
    ) -> Result<Topic, OpenOrCreateError> {
        let g = config.geometry(&opts)?;
        let seg = Segment::open_or_create_kind(&opts, &Topic::layout(&g, ty), |_| {})?;
        Ok(Topic::checked(seg)?)
    }

    fn checked(seg: Segment) -> Result<Topic, OpenError> {
        let seg = Arc::new(seg);
        let (p0, p1) = (seg.info().param0, seg.info().param1);
        let g = Geometry::from_params(p0, p1);
        ensure(&seg, g.is_some_and(|g| raw_of(&seg, g).is_some()), || {
            format!(
                "topic geometry: slots {p0}, parameters {p1:#x}, {} bytes",
                seg.info().payload_size
            )
        })?;
        Ok(Topic {
            g: g.expect("checked just above"),
            seg,
        })
    }

    fn raw(&self) -> RawTopic<'static> {
        raw_of(&self.seg, self.g).expect("topic geometry validated at create/open")
    }

    /// Attaches a publisher.
    ///
    /// # Errors
    /// [`TopicAttachError::TooManyPublishers`] when 64 live publishers are attached.
    pub fn publisher(&self) -> Result<Publisher, TopicAttachError> {
        let raw = self.raw();
        let index = raw
            .attach_publisher()
            .ok_or(TopicAttachError::TooManyPublishers {
                max: topic::PUBLISHERS,
            })?;
        let (limit, joins) = raw.limit(false);
        Ok(Publisher {
            raw,
            seg: Arc::clone(&self.seg),
            index,
            limit,
            joins,
            pending: None,
            mode: WaitMode::default(),
            scratch: Vec::new(),
            next_deep: Instant::now() + wait::CHECK_EVERY,
        })
    }

    /// Attaches a subscriber that receives the messages published after it joins.
    ///
    /// # Errors
    /// [`TopicAttachError::TooManySubscribers`] when every subscriber entry is held by a live
    /// process.
    pub fn subscriber(&self) -> Result<Subscriber, TopicAttachError> {
        self.subscriber_from(StartAt::Next)
    }

    /// Attaches a subscriber that starts where `start` says: the next message, the oldest
    /// one the log still holds (history for late joiners), or the latest one.
    ///
    /// # Errors
    /// As [`Topic::subscriber`].
    pub fn subscriber_from(&self, start: StartAt) -> Result<Subscriber, TopicAttachError> {
        let raw = self.raw();
        let (index, cursor) = raw
            .attach_subscriber(start)
            .map_err(|c| TopicAttachError::Corrupted { reason: c.0 })?
            .ok_or(TopicAttachError::TooManySubscribers { max: self.g.subs })?;
        Ok(Subscriber {
            raw,
            seg: Arc::clone(&self.seg),
            index,
            cursor,
            mode: WaitMode::default(),
            buf: Vec::new(),
            attaches: raw.publisher_attaches(),
            publisher_seen: raw.any_publisher(false),
            next_deep: Instant::now() + wait::CHECK_EVERY,
        })
    }

    /// The last message published, copied, without subscribing (a last-value cache).
    /// `None` if nothing was published yet (or the last few messages are being rewritten
    /// this very moment).
    ///
    /// # Errors
    /// [`TopicRecvError::Corrupted`] if shared memory fails a check.
    pub fn latest(&self) -> Result<Option<Vec<u8>>, TopicRecvError> {
        let mut buf = Vec::new();
        match self.raw().latest(&mut buf) {
            Ok(Some(_)) => Ok(Some(buf)),
            Ok(None) => Ok(None),
            Err(c) => Err(TopicRecvError::Corrupted { reason: c.0 }),
        }
    }

    /// Messages published so far (claimed sequence numbers; the next one to publish).
    pub fn published(&self) -> u64 {
        self.raw().next().unwrap_or(0)
    }

    /// Subscribers attached now.
    pub fn subscriber_count(&self) -> usize {
        self.raw().subscribers().len()
    }

    /// The policy the topic was created with.
    pub fn policy(&self) -> Policy {
        self.g.policy
    }

    /// Messages the log holds.
    pub fn slots(&self) -> usize {
        self.g.slots as usize
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.g.max as usize
    }

    /// Subscribers it has room for.
    pub fn max_subscribers(&self) -> usize {
        self.g.subs
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }

    /// The segment's validated header.
    pub fn info(&self) -> &crate::segment::SegmentInfo {
        self.seg.info()
    }
}

/// The log of a topic segment, with the segment's lifetime erased: the caller keeps `seg`
/// alive as long as it uses the log.
pub(crate) fn raw_of(seg: &Arc<Segment>, g: Geometry) -> Option<RawTopic<'static>> {
    let payload = seg.payload();
    // SAFETY: the payload lies inside the segment's mapping, which stays mapped while any
    // `Arc<Segment>` lives; every `RawTopic<'static>` made here is stored next to a clone of
    // that Arc and never handed out with a longer lifetime than a borrow of its holder. All
    // access is atomic, or through grants and guards whose protocol excludes other writers.
    let region: Region<'static> = unsafe { Region::from_raw(payload.as_ptr(), payload.len()) };
    RawTopic::new(region, g)
}

/// `waiting`'s deadline (see [`Waiting::deadline`]), computed once: a relative timeout is
/// turned into its deadline the first time it is needed, so that a claim that waits more
/// than once waits no longer in all than asked (and the fast path reads no clock).
fn fixed_deadline(waiting: &mut Waiting) -> Option<Option<Instant>> {
    let deadline = waiting.deadline();
    if let Waiting::For(_) = waiting {
        *waiting = match deadline {
            Some(Some(at)) => Waiting::Until(at),
            _ => Waiting::Forever,
        };
    }
    deadline
}

/// Internal outcome of a publish or receive attempt.
enum Fail {
    Empty,
    Timeout,
    Interrupted,
    Lagged(u64),
    Disconnected,
    TooLarge(usize, usize),
    Corrupted(String),
}

impl From<Corrupt> for Fail {
    fn from(c: Corrupt) -> Fail {
        Fail::Corrupted(c.0)
    }
}

impl Fail {
    fn publish(self) -> PublishError {
        match self {
            Fail::Empty => PublishError::Full,
            Fail::Timeout => PublishError::Timeout,
            Fail::Interrupted => PublishError::Interrupted,
            Fail::TooLarge(len, max) => PublishError::TooLarge { len, max },
            Fail::Corrupted(reason) => PublishError::Corrupted { reason },
            Fail::Lagged(_) | Fail::Disconnected => {
                unreachable!("publishing never lags or disconnects")
            }
        }
    }

    fn recv(self) -> TopicRecvError {
        match self {
            Fail::Empty => TopicRecvError::Empty,
            Fail::Timeout => TopicRecvError::Timeout,
            Fail::Interrupted => TopicRecvError::Interrupted,
            Fail::Lagged(n) => TopicRecvError::Lagged(n),
            Fail::Disconnected => TopicRecvError::Disconnected,
            Fail::Corrupted(reason) => TopicRecvError::Corrupted { reason },
            Fail::TooLarge(..) => unreachable!("receiving has no size limit to exceed"),
        }
    }
}

/// The publishing end of a [`Topic`]. Lets go of its entry on drop.
///
/// # Crash safety
/// A publisher that dies mid-publish never has its half-written message delivered: once no
/// live publisher claims that message, the first subscriber to wait on it (within about
/// 40 ms), or a publisher a whole log later that needs its slot, marks it skipped, and
/// everyone moves on. Every message it committed stays.
pub struct Publisher {
    raw: RawTopic<'static>,
    seg: Arc<Segment>,
    index: usize,
    /// The cached claim limit (Block: slowest cursor + slots; `None`: no limit).
    limit: Option<u64>,
    /// `joins` when `limit` was computed.
    joins: u64,
    /// A sequence claimed but not yet free to write: a subscriber joined behind this
    /// publisher's stale limit and would be lapped (see `ring::topic` on joining). The next
    /// publish fills it once that subscriber has moved on; dropping the publisher lets it go.
    pending: Option<u64>,
    mode: WaitMode,
    /// Where grants are written under Overwrite (copied into the slot on commit).
    scratch: Vec<u8>,
    next_deep: Instant,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.seg.name())
            .field("index", &self.index)
            .finish()
    }
}

impl Publisher {
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
        self.raw.geometry().max as usize
    }

    /// Whether the next sequence may be claimed: below the cached limit, and its slot's
    /// previous lap committed.
    fn has_room(&self) -> Result<bool, Corrupt> {
        let n = self.raw.next()?;
        Ok(self.limit.is_none_or(|l| n < l) && self.raw.lap_settled(n))
    }

    /// Claims the next sequence, waiting for room as `waiting` allows.
    fn claim(&mut self, len: usize, mut waiting: Waiting) -> Result<u64, Fail> {
        let raw = self.raw;
        let max = raw.geometry().max as usize;
        if len > max {
            return Err(Fail::TooLarge(len, max));
        }
        loop {
            let fits = |limit: Option<u64>, s: u64| limit.is_none_or(|l| s < l);
            if let Some(s) = self.pending {
                if fits(self.limit, s) {
                    self.pending = None;
                    return Ok(s);
                }
            } else if let Some(s) = raw.try_claim(self.index, self.limit)? {
                if !raw.joins_moved(self.joins) {
                    return Ok(s);
                }
                (self.limit, self.joins) = raw.limit(false);
                if fits(self.limit, s) {
                    return Ok(s);
                }
                self.pending = Some(s);
                continue;
            } else {
                // We hold no claim now: one from an earlier grant that was leaked (never
                // committed nor dropped) is let go, so that it can be skipped (`unstick_lap`).
                raw.abandon_claim(self.index);
            }
            let deep = due(&mut self.next_deep);
            (self.limit, self.joins) = raw.limit(deep);
            let ready = match self.pending {
                Some(s) => fits(self.limit, s),
                None => {
                    if deep {
                        raw.unstick_lap();
                    }
                    self.has_room()?
                }
            };
            if ready {
                continue;
            }
            let Some(deadline) = fixed_deadline(&mut waiting) else {
                return Err(Fail::Empty);
            };
            self.wait_room(deadline, self.pending)?;
        }
    }

    /// Waits until the limit lets a claim through (or `seq`, already claimed, fits).
    fn wait_room(&mut self, deadline: Option<Instant>, seq: Option<u64>) -> Result<(), Fail> {
        let raw = self.raw;
        let (flag, bell) = raw.sleep_words(false);
        let found = wait::wait(
            self.mode,
            deadline,
            &Raised { flag, bell },
            true,
            || {
                let (limit, joins) = raw.limit(false);
                let (next, settled) = match seq {
                    Some(s) => (s, true),
                    None => {
                        let n = raw.next()?;
                        (n, raw.lap_settled(n))
                    }
                };
                Ok::<_, Corrupt>(
                    (settled && limit.is_none_or(|l| next < l)).then_some((limit, joins)),
                )
            },
            |deep| {
                if deep {
                    raw.limit(true);
                    if seq.is_none() {
                        raw.unstick_lap();
                    }
                }
                false
            },
        );
        match found {
            Ok((limit, joins)) => {
                (self.limit, self.joins) = (limit, joins);
                Ok(())
            }
            Err(Ended::TimedOut | Ended::PeerGone) => Err(Fail::Timeout),
            Err(Ended::Interrupted) => Err(Fail::Interrupted),
            Err(Ended::Failed(c)) => Err(c.into()),
        }
    }

    fn grant(&mut self, seq: u64, len: usize) -> TopicGrant<'_> {
        self.raw.begin_write(seq);
        if self.raw.geometry().policy == Policy::Overwrite {
            self.scratch.clear();
            self.scratch.resize(len, 0);
        }
        TopicGrant {
            publisher: self,
            seq,
            len,
            done: false,
        }
    }

    /// Reserves the next message's slot for `len` bytes without waiting. The grant derefs to
    /// `&mut [u8]` (in place under Block; under Overwrite a buffer copied in on commit).
    /// Dropping it uncommitted publishes nothing (subscribers skip the slot).
    ///
    /// # Errors
    /// [`PublishError`]: `Full` (Block: the slowest subscriber is a whole log behind),
    /// `TooLarge`, `Corrupted`.
    pub fn try_reserve(&mut self, len: usize) -> Result<TopicGrant<'_>, PublishError> {
        let s = self.claim(len, Waiting::No).map_err(Fail::publish)?;
        Ok(self.grant(s, len))
    }

    /// Reserves the next message's slot, waiting for room as long as needed (Block).
    ///
    /// # Errors
    /// [`PublishError`]: `TooLarge`, `Interrupted`, `Corrupted`.
    pub fn reserve(&mut self, len: usize) -> Result<TopicGrant<'_>, PublishError> {
        let s = self.claim(len, Waiting::Forever).map_err(Fail::publish)?;
        Ok(self.grant(s, len))
    }

    /// Reserves the next message's slot, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PublishError`]: `Timeout`, `TooLarge`, `Interrupted`, `Corrupted`.
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<TopicGrant<'_>, PublishError> {
        let s = self
            .claim(len, Waiting::For(timeout))
            .map_err(Fail::publish)?;
        Ok(self.grant(s, len))
    }

    /// Reserves the next message's slot, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Publisher::reserve_timeout`].
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Instant,
    ) -> Result<TopicGrant<'_>, PublishError> {
        let s = self
            .claim(len, Waiting::Until(deadline))
            .map_err(Fail::publish)?;
        Ok(self.grant(s, len))
    }

    fn publish_with(&mut self, msg: &[u8], waiting: Waiting) -> Result<u64, PublishError> {
        let s = self.claim(msg.len(), waiting).map_err(Fail::publish)?;
        let raw = self.raw;
        raw.begin_write(s);
        if raw.geometry().policy == Policy::Overwrite {
            raw.copy_in(s, msg);
        } else {
            // SAFETY: under Block no subscriber reads slot `s` before it is committed, and
            // no publisher writes it again before every subscriber has passed it (the claim
            // limit), so this process writes it alone; `payload` is `max >= msg.len()`
            // bytes inside the mapping, which `self.seg` keeps alive.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    msg.as_ptr(),
                    raw.payload(s).as_ptr().as_ptr(),
                    msg.len(),
                );
            }
        }
        raw.commit(s, msg.len() as u32, false);
        Ok(s)
    }

    /// Publishes a copy of `msg` without waiting; returns its sequence number.
    ///
    /// # Errors
    /// As [`Publisher::try_reserve`].
    #[inline]
    pub fn try_publish(&mut self, msg: &[u8]) -> Result<u64, PublishError> {
        self.publish_with(msg, Waiting::No)
    }

    /// Publishes a copy of `msg`, waiting for room as long as needed (Block); returns its
    /// sequence number.
    ///
    /// # Errors
    /// As [`Publisher::reserve`].
    #[inline]
    pub fn publish(&mut self, msg: &[u8]) -> Result<u64, PublishError> {
        self.publish_with(msg, Waiting::Forever)
    }

    /// Publishes a copy of `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Publisher::reserve_timeout`].
    pub fn publish_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<u64, PublishError> {
        self.publish_with(msg, Waiting::For(timeout))
    }

    /// Publishes a copy of `msg`, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`Publisher::reserve_timeout`].
    pub fn publish_deadline(&mut self, msg: &[u8], deadline: Instant) -> Result<u64, PublishError> {
        self.publish_with(msg, Waiting::Until(deadline))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.pending.is_some() {
            // A waiting subscriber marks it skipped once there is room for it.
            self.raw.abandon_claim(self.index);
        }
        self.raw.detach_publisher(self.index);
    }
}

/// A claimed slot for one message; derefs to `&mut [u8]` of the reserved length.
/// [`commit`](TopicGrant::commit) publishes it; dropping it publishes nothing (the slot is
/// marked skipped, so subscribers pass over it).
#[must_use = "a grant publishes nothing unless committed"]
pub struct TopicGrant<'a> {
    publisher: &'a mut Publisher,
    seq: u64,
    len: usize,
    done: bool,
}

impl TopicGrant<'_> {
    /// The message's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Publishes the message; returns its sequence number.
    pub fn commit(mut self) -> u64 {
        let raw = self.publisher.raw;
        if raw.geometry().policy == Policy::Overwrite {
            raw.copy_in(self.seq, &self.publisher.scratch);
        }
        raw.commit(self.seq, self.len as u32, false);
        self.done = true;
        self.seq
    }
}

impl Drop for TopicGrant<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.publisher.raw.commit(self.seq, 0, true);
        }
    }
}

impl Deref for TopicGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let p = &*self.publisher;
        if p.raw.geometry().policy == Policy::Overwrite {
            return &p.scratch;
        }
        // SAFETY: as in `DerefMut`: the slot's payload is ours alone until commit.
        unsafe { std::slice::from_raw_parts(p.raw.payload(self.seq).as_ptr().as_ptr(), self.len) }
    }
}

impl DerefMut for TopicGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let p = &mut *self.publisher;
        if p.raw.geometry().policy == Policy::Overwrite {
            return &mut p.scratch;
        }
        // SAFETY: under Block the claimed slot is written by this grant alone: no subscriber
        // reads it before the commit word says so, and no publisher claims it again before
        // every subscriber has passed it. `len <= max` was checked at the claim, and the
        // payload area is `max` bytes inside the mapping that `seg` keeps alive; the grant
        // borrows the publisher mutably, so there is one such slice at a time.
        unsafe {
            std::slice::from_raw_parts_mut(p.raw.payload(self.seq).as_ptr().as_ptr(), self.len)
        }
    }
}

impl fmt::Debug for TopicGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicGrant")
            .field("seq", &self.seq)
            .field("len", &self.len)
            .finish()
    }
}

/// The receiving end of a [`Topic`], with its own cursor. Lets go of its entry on drop.
///
/// # Crash safety
/// A subscriber that dies stops holding a Block topic back within about 100 ms (a publisher
/// waiting for room looks at the liveness of the slowest subscriber every 40 ms).
pub struct Subscriber {
    raw: RawTopic<'static>,
    seg: Arc<Segment>,
    index: usize,
    /// The next sequence to read.
    cursor: u64,
    mode: WaitMode,
    /// Overwrite: the copy of the message being read.
    buf: Vec<u8>,
    /// Publisher attachments when we joined, and whether one was attached then.
    attaches: u64,
    publisher_seen: bool,
    next_deep: Instant,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.seg.name())
            .field("index", &self.index)
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// A message as received: `(sequence, length, whether it is read in place)`.
struct Got {
    seq: u64,
    len: u32,
}

impl Subscriber {
    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.mode = mode;
    }

    /// The current wait mode.
    pub fn wait_mode(&self) -> WaitMode {
        self.mode
    }

    /// The sequence number of the next message this subscriber will receive.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Messages published that this subscriber has not received yet (claimed ones included).
    pub fn pending(&self) -> u64 {
        self.raw.next().unwrap_or(0).saturating_sub(self.cursor)
    }

    /// Whether every publisher is gone (and one had attached since this subscriber joined,
    /// or was attached then). With `deep`, dead processes count as gone.
    fn publishers_gone(&mut self, deep: bool) -> bool {
        let raw = self.raw;
        if raw.any_publisher(deep) {
            self.publisher_seen = true;
            return false;
        }
        self.publisher_seen || raw.publisher_attaches() != self.attaches
    }

    fn advance(&mut self, to: u64) {
        self.cursor = to;
        self.raw.release(self.index, to);
    }

    /// Looks at the cursor's slot once: a message, a lag, or nothing yet (`Ok(None)`).
    fn look(&mut self) -> Result<Option<Got>, Fail> {
        let raw = self.raw;
        loop {
            let c = self.cursor;
            match raw.peek(c)? {
                Slot::NotYet => return Ok(None),
                Slot::Ready { skip: true, .. } => self.advance(c + 1),
                Slot::Ready { len, skip: false } => {
                    if raw.geometry().policy == Policy::Overwrite {
                        raw.copy_out(c, len, &mut self.buf);
                        if !raw.still(c) {
                            continue; // rewritten while copied: the next look says lagged
                        }
                    }
                    return Ok(Some(Got { seq: c, len }));
                }
                Slot::Overwritten => {
                    let to = raw.resume_point(c)?;
                    raw.add_lost(self.index, to - c);
                    self.advance(to);
                    return Err(Fail::Lagged(to - c));
                }
            }
        }
    }

    fn recv_inner(&mut self, waiting: Waiting) -> Result<Got, Fail> {
        if let Some(got) = self.look()? {
            return Ok(got);
        }
        // A claim abandoned by a dead publisher, and publishers that are all gone, are
        // noticed by non-waiting calls too (every CHECK_EVERY), as waiting ones notice them.
        if due(&mut self.next_deep) {
            self.raw.unstick(self.cursor);
            if let Some(got) = self.look()? {
                return Ok(got);
            }
            if self.publishers_gone(true) {
                return Err(Fail::Disconnected);
            }
        }
        let Some(deadline) = waiting.deadline() else {
            return Err(Fail::Empty);
        };
        let raw = self.raw;
        let (flag, bell) = raw.sleep_words(true);
        loop {
            let c = self.cursor;
            let (attaches, mut seen) = (self.attaches, self.publisher_seen);
            let ended = wait::wait(
                self.mode,
                deadline,
                &Raised { flag, bell },
                false,
                || Ok::<_, Corrupt>((!matches!(raw.peek(c)?, Slot::NotYet)).then_some(())),
                |deep| {
                    if !deep {
                        return false;
                    }
                    raw.unstick(c);
                    if raw.any_publisher(true) {
                        seen = true;
                        return false;
                    }
                    // Gone only if one was there since we joined: else one may still come.
                    (seen || raw.publisher_attaches() != attaches)
                        && matches!(raw.peek(c), Ok(Slot::NotYet))
                },
            );
            self.publisher_seen = seen;
            match ended {
                Ok(()) => {}
                Err(Ended::TimedOut) => return Err(Fail::Timeout),
                Err(Ended::Interrupted) => return Err(Fail::Interrupted),
                Err(Ended::Failed(c)) => return Err(c.into()),
                Err(Ended::PeerGone) => return Err(Fail::Disconnected),
            }
            // Ready, or a skip to pass over (then wait again).
            if let Some(got) = self.look()? {
                return Ok(got);
            }
        }
    }

    fn msg(&mut self, got: Got) -> TopicMsg<'_> {
        TopicMsg {
            seq: got.seq,
            len: got.len as usize,
            sub: self,
        }
    }

    /// The next message, if one is there.
    ///
    /// # Errors
    /// [`TopicRecvError`]: `Empty`, `Lagged` (Overwrite), `Disconnected` (every publisher
    /// gone and everything received), `Corrupted`.
    #[inline]
    pub fn try_recv(&mut self) -> Result<TopicMsg<'_>, TopicRecvError> {
        let got = self.recv_inner(Waiting::No).map_err(Fail::recv)?;
        Ok(self.msg(got))
    }

    /// The next message, waiting as long as needed (also for a first publisher).
    ///
    /// # Errors
    /// [`TopicRecvError`]: `Lagged`, `Disconnected`, `Interrupted`, `Corrupted`.
    #[inline]
    pub fn recv(&mut self) -> Result<TopicMsg<'_>, TopicRecvError> {
        let got = self.recv_inner(Waiting::Forever).map_err(Fail::recv)?;
        Ok(self.msg(got))
    }

    /// The next message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`TopicRecvError`]: `Timeout`, `Lagged`, `Disconnected`, `Interrupted`, `Corrupted`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<TopicMsg<'_>, TopicRecvError> {
        let got = self.recv_inner(Waiting::For(timeout)).map_err(Fail::recv)?;
        Ok(self.msg(got))
    }

    /// The next message, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Subscriber::recv_timeout`].
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<TopicMsg<'_>, TopicRecvError> {
        let got = self
            .recv_inner(Waiting::Until(deadline))
            .map_err(Fail::recv)?;
        Ok(self.msg(got))
    }

    /// Copies the next message into `buf` (replacing its contents), waiting as needed;
    /// returns its sequence number.
    ///
    /// # Errors
    /// As [`Subscriber::recv`].
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<u64, TopicRecvError> {
        let m = self.recv()?;
        buf.clear();
        buf.extend_from_slice(&m);
        Ok(m.seq())
    }

    /// Copies the next message into `buf` if one is there; returns its sequence number.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv`].
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<u64, TopicRecvError> {
        let m = self.try_recv()?;
        buf.clear();
        buf.extend_from_slice(&m);
        Ok(m.seq())
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.raw.detach_subscriber(self.index);
    }
}

/// A received message; derefs to `&[u8]`. Under [`Policy::Block`] it is the message in place
/// in the log (the publishers cannot reuse its slot until the guard drops); under
/// [`Policy::Overwrite`] a checked copy. Dropping it moves the subscriber past it.
#[must_use = "the message is released as soon as the guard drops"]
pub struct TopicMsg<'a> {
    sub: &'a mut Subscriber,
    seq: u64,
    len: usize,
}

impl TopicMsg<'_> {
    /// The message's sequence number (its position in the topic's stream).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Deref for TopicMsg<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let sub = &*self.sub;
        if sub.raw.geometry().policy == Policy::Overwrite {
            return &sub.buf;
        }
        // SAFETY: `peek` acquired the slot's commit word for this sequence and checked
        // `len <= max`, so the publisher's payload writes are visible and the bytes lie in
        // the slot's `max`-byte payload area inside the mapping `seg` keeps alive. Under Block
        // no publisher reuses the slot before our cursor (stored when the guard drops) passes
        // it, so nothing writes those bytes while the guard lives. A peer that breaks the
        // protocol races with us; the crate docs ("Known limits") say zero-copy access trusts
        // the peers' protocol.
        unsafe { std::slice::from_raw_parts(sub.raw.payload(self.seq).as_ptr().as_ptr(), self.len) }
    }
}

impl Drop for TopicMsg<'_> {
    fn drop(&mut self) {
        self.sub.advance(self.seq + 1);
    }
}

impl fmt::Debug for TopicMsg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicMsg")
            .field("seq", &self.seq)
            .field("len", &self.len)
            .finish()
    }
}

// ----- Select, Readiness and async registration -----

/// What a subscriber's registration knows of its publishers when it is made: the attach
/// count when the subscriber joined, and whether it has seen one attached since.
#[derive(Debug, Clone, Copy)]
struct Watch {
    attaches: u64,
    seen: bool,
}

/// Whether a subscriber at cursor `c` (`None`: a forged cursor word, "ready" so that the
/// subscriber's own call says what it sees) would not wait: a message, a slot to skip, a lag
/// or corrupted memory is there; or, with `deep`, every publisher is gone (one having been
/// there since it joined) and nothing is left. With `deep` it also marks a dead publisher's
/// abandoned claim skipped, as a waiting `recv` does, so that claim cannot hold a select.
fn subscriber_ready(raw: RawTopic<'_>, c: Option<u64>, watch: Watch, deep: bool) -> bool {
    let Some(c) = c else {
        return true;
    };
    if !matches!(raw.peek(c), Ok(Slot::NotYet)) {
        return true;
    }
    if !deep {
        return false;
    }
    if raw.unstick(c) {
        return true;
    }
    !raw.any_publisher(true) && (watch.seen || raw.publisher_attaches() != watch.attaches)
}

/// Whether a publish would not wait: the claim limit (fresh, not a publisher's cached one)
/// lets the next sequence through, or the memory is corrupt. With `deep` a dead subscriber
/// holding the limit is dropped first, as a waiting publisher does.
fn publisher_ready(raw: RawTopic<'_>, index: usize, deep: bool) -> bool {
    let (limit, _) = raw.limit(deep);
    // A claim the publisher holds but could not yet fill is what its next publish needs room
    // for; else the next sequence.
    match raw.pending_claim(index).map_or_else(|| raw.next(), Ok) {
        Ok(n) => limit.is_none_or(|l| n < l),
        Err(_) => true,
    }
}

/// The registration of [`Subscriber::readable_owned`]: reads the cursor from the
/// subscriber's shared entry (equal to the handle's own copy whenever no call of the handle
/// runs). The `'static` log is shortened to the borrow of the segment that keeps it mapped.
fn readable_shared<'s>(
    _: &'s Segment,
    &(raw, index, watch): &'s (RawTopic<'static>, usize, Watch),
) -> Reg<'s> {
    let raw: RawTopic<'s> = raw;
    let (flag, bell) = raw.sleep_words(true);
    Reg::new(
        Raised { flag, bell },
        move |deep| subscriber_ready(raw, raw.cursor(index), watch, deep),
        None,
    )
}

/// The registration of [`Publisher::writable_owned`], shortened as in [`readable_shared`].
fn writable_shared<'s>(_: &'s Segment, &(raw, index): &'s (RawTopic<'static>, usize)) -> Reg<'s> {
    let raw: RawTopic<'s> = raw;
    let (flag, bell) = raw.sleep_words(false);
    Reg::new(
        Raised { flag, bell },
        move |deep| publisher_ready(raw, index, deep),
        None,
    )
}

impl Subscriber {
    fn watch(&self) -> Watch {
        Watch {
            attaches: self.attaches,
            seen: self.publisher_seen,
        }
    }

    /// This subscriber's [`Select`](crate::Select) registration: ready when a message, a
    /// lag or corrupted memory waits at its cursor, or every publisher is gone (noticed
    /// within about 40 ms, as by `recv`). Any number of sleepers share a topic's sleep flag,
    /// so a blocking `recv` elsewhere and a registration do not disturb each other.
    pub(crate) fn readable(&self) -> Reg<'_> {
        let (raw, c, watch) = (self.raw, self.cursor, self.watch());
        let (flag, bell) = raw.sleep_words(true);
        Reg::new(
            Raised { flag, bell },
            move |deep| subscriber_ready(raw, Some(c), watch, deep),
            None,
        )
    }

    /// [`Subscriber::readable`] for a [`Readiness`](crate::Readiness): it owns a clone of the
    /// segment and reads the cursor from the subscriber's shared entry.
    pub(crate) fn readable_owned(&self) -> OwnedReg {
        OwnedReg::new(
            Arc::clone(&self.seg),
            (self.raw, self.index, self.watch()),
            readable_shared,
        )
    }

    /// [`Subscriber::recv`] for async code (feature `async`): takes a waiting message at
    /// once; when there is none it spins for up to 50 µs in the hybrid and busy-poll
    /// [`WaitMode`]s (not in `Blocking`), then waits without blocking the thread, woken by
    /// the process's readiness thread (see [`Readiness`](crate::Readiness)); any executor.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// let name = format!("doc-topic-recv-async-{}", std::process::id());
    /// let topic = shmq::Topic::create(name.as_str(), 64, 32)?;
    /// let mut sub = topic.subscriber()?;
    /// topic.publisher()?.publish(b"tick")?;
    /// // Any executor; here a minimal one from the standard library's pieces.
    /// let msg = block_on(async { sub.recv_async().await.map(|m| m.to_vec()) })?;
    /// assert_eq!(msg, b"tick");
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
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
    /// Cancellation-safe: dropped before it completes, it has taken nothing (the message
    /// stays for the next receive).
    ///
    /// # Errors
    /// As [`Subscriber::recv`], except `Interrupted` (cancel the future instead).
    #[cfg(feature = "async")]
    pub async fn recv_async(&mut self) -> Result<TopicMsg<'_>, TopicRecvError> {
        let mut woken = false;
        loop {
            match self.recv_inner(Waiting::No) {
                Ok(got) => return Ok(self.msg(got)),
                Err(Fail::Empty) => {}
                Err(f) => return Err(f.recv()),
            }
            if std::mem::take(&mut woken) {
                // Woken, yet nothing to take: the thread's liveness look found the publishers
                // gone (or a dead one's claim to skip). Look as deep at once, so this try
                // reports it rather than our own next look, up to 40 ms later.
                self.next_deep = Instant::now();
                continue;
            }
            let (raw, c) = (self.raw, self.cursor);
            let waiting = || !matches!(raw.peek(c), Ok(Slot::NotYet));
            if self.mode != WaitMode::Blocking && wait::spin_for(wait::HYBRID_SPIN, waiting) {
                continue;
            }
            crate::api::readiness::until_ready(self.readable_owned()).await;
            woken = true;
        }
    }
}

impl Publisher {
    /// This publisher's [`Select`](crate::Select) registration: ready when a publish would
    /// not wait (always under [`Policy::Overwrite`]; under [`Policy::Block`] when the slowest
    /// live subscriber is less than a whole log behind, a dead one being dropped within
    /// about 40 ms), or the memory is corrupt.
    pub(crate) fn writable(&self) -> Reg<'_> {
        let (raw, index) = (self.raw, self.index);
        let (flag, bell) = raw.sleep_words(false);
        Reg::new(
            Raised { flag, bell },
            move |deep| publisher_ready(raw, index, deep),
            None,
        )
    }

    /// [`Publisher::writable`] for a [`Readiness`](crate::Readiness), owning a clone of the
    /// segment.
    pub(crate) fn writable_owned(&self) -> OwnedReg {
        OwnedReg::new(
            Arc::clone(&self.seg),
            (self.raw, self.index),
            writable_shared,
        )
    }

    /// [`Publisher::reserve`] for async code (feature `async`): claims at once if there is
    /// room; under [`Policy::Block`] with the log full it spins for up to 50 µs in the hybrid
    /// and busy-poll [`WaitMode`]s, then waits without blocking the thread, woken by the
    /// process's readiness thread (see [`Readiness`](crate::Readiness)); any executor.
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has claimed nothing.
    ///
    /// # Errors
    /// As [`Publisher::reserve`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn reserve_async(&mut self, len: usize) -> Result<TopicGrant<'_>, PublishError> {
        loop {
            match self.claim(len, Waiting::No) {
                Ok(s) => return Ok(self.grant(s, len)),
                Err(Fail::Empty) => {}
                Err(f) => return Err(f.publish()),
            }
            let (raw, index) = (self.raw, self.index);
            let room = || publisher_ready(raw, index, false);
            if self.mode != WaitMode::Blocking && wait::spin_for(wait::HYBRID_SPIN, room) {
                continue;
            }
            crate::api::readiness::until_ready(self.writable_owned()).await;
        }
    }

    /// [`Publisher::publish`] for async code (feature `async`): copies `msg` in once there
    /// is room; returns its sequence number.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// let name = format!("doc-topic-publish-async-{}", std::process::id());
    /// let topic = shmq::Topic::create(name.as_str(), 64, 32)?;
    /// let (mut tx, mut rx) = (topic.publisher()?, topic.subscriber()?);
    /// let seq = block_on(tx.publish_async(b"tick"))?;
    /// assert_eq!(rx.try_recv()?.seq(), seq);
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
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
    /// Cancellation-safe: dropped before it completes, it has published nothing.
    ///
    /// # Errors
    /// As [`Publisher::publish`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn publish_async(&mut self, msg: &[u8]) -> Result<u64, PublishError> {
        let mut grant = self.reserve_async(msg.len()).await?;
        grant.copy_from_slice(msg);
        Ok(grant.commit())
    }
}

/// So that [`Select::recv_topic`](crate::Select::recv_topic) and
/// [`Readiness::recv_topic`](crate::Readiness::recv_topic) take any subscriber: this one,
/// a typed one or a serde one.
impl AsRef<Subscriber> for Subscriber {
    fn as_ref(&self) -> &Subscriber {
        self
    }
}

/// So that [`Select::publish`](crate::Select::publish) and
/// [`Readiness::publish`](crate::Readiness::publish) take any publisher.
impl AsRef<Publisher> for Publisher {
    fn as_ref(&self) -> &Publisher {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::wait::{Sleeper, Source};
    use std::sync::atomic::Ordering::Relaxed;

    /// A subscriber joining at the oldest message behind a publisher whose cached limit
    /// predates it: the publisher's next claim would lap the joiner, so the claim is held
    /// pending and `try_publish` says `Full` instead of waiting; once the joiner reads on, the
    /// pending sequence is filled; a publisher dropped with one pending gives it up and the
    /// subscribers skip it.
    #[test]
    #[cfg_attr(miri, ignore)] // a named segment
    fn a_claim_that_would_lap_a_joiner_is_held_pending_not_waited_for() {
        let name = format!("shmq-unit-topic-pending-{}", std::process::id());
        let topic = Topic::create(name.as_str(), 4, 8).unwrap();
        let mut a = topic.subscriber().unwrap();
        let mut p = topic.publisher().unwrap();
        for i in 0..4u8 {
            p.try_publish(&[i]).unwrap();
        }
        for i in 0..4u8 {
            assert_eq!(*a.try_recv().unwrap(), [i]);
        }
        assert_eq!(p.try_publish(&[4]), Ok(4)); // the cached limit is now a's cursor + 4
        let mut b = topic.subscriber_from(StartAt::Oldest).unwrap();
        assert_eq!(b.position(), 1);
        // Sequence 5 goes in slot 1, which b is about to read: held, not written, no wait.
        assert_eq!(p.try_publish(&[5]), Err(PublishError::Full));
        assert_eq!(*b.try_recv().unwrap(), [1]);
        assert_eq!(p.try_publish(&[5]), Ok(5));
        for i in 2..6u8 {
            assert_eq!(*b.try_recv().unwrap(), [i]);
        }
        assert_eq!(*a.try_recv().unwrap(), [4]);
        assert_eq!(*a.try_recv().unwrap(), [5]);
        // Again, and this time the publisher goes away with the claim pending.
        assert_eq!(p.try_publish(&[6]), Ok(6)); // a and b are level: the limit moves to 10
        assert_eq!(*a.try_recv().unwrap(), [6]);
        assert_eq!(*b.try_recv().unwrap(), [6]);
        let mut c = topic.subscriber_from(StartAt::Oldest).unwrap();
        assert_eq!(c.position(), 3);
        assert_eq!(p.try_publish(&[7]), Err(PublishError::Full));
        drop(p);
        let mut got = Vec::new();
        while let Ok(m) = c.recv_timeout(Duration::from_millis(300)) {
            got.push(m[0]);
        }
        assert_eq!(got, [3, 4, 5, 6], "sequence 7 was never written");
        let mut q = topic.publisher().unwrap();
        assert_eq!(q.try_publish(&[8]), Ok(8));
        for sub in [&mut a, &mut b, &mut c] {
            assert_eq!(
                *sub.recv_timeout(Duration::from_secs(5)).unwrap(),
                [8],
                "7 skipped"
            );
        }
    }

    /// The wake-up protocol the registrations rely on: a topic's sleep flag is cleared by the
    /// waker that rings, so a sleeper must raise it again before every sleep. `wait_any` and
    /// the readiness thread run a non-heavy sleeper's `barrier` before each look, and a
    /// registration's `barrier` raises the flag: each raise gets exactly one ring.
    #[test]
    #[cfg_attr(miri, ignore)] // a named segment
    fn every_barrier_of_a_registration_raises_the_flag_for_one_ring() {
        let name = format!("shmq-unit-topic-reg-{}", std::process::id());
        let topic = Topic::create(name.as_str(), 4, 8).unwrap();
        let mut sub = topic.subscriber().unwrap();
        let mut tx = topic.publisher().unwrap();
        // The borrowed and the owned registration sleep on the same words.
        let owned = sub.readable_owned();
        assert!(std::ptr::eq(sub.readable().bell(), owned.reg().bell()));
        let reg = owned.reg();
        let bell = reg.bell();
        let b0 = bell.load(Relaxed);
        tx.publish(b"x").unwrap(); // nobody raised the flag
        assert_eq!(bell.load(Relaxed), b0);
        reg.barrier();
        tx.publish(b"x").unwrap();
        assert_eq!(bell.load(Relaxed), b0 + 1, "a raised flag rings");
        drop(sub.try_recv().unwrap());
        drop(sub.try_recv().unwrap());
        tx.publish(b"x").unwrap();
        assert_eq!(bell.load(Relaxed), b0 + 1, "the ring cleared it");
        reg.barrier();
        tx.publish(b"x").unwrap();
        assert_eq!(bell.load(Relaxed), b0 + 2, "raised again: rings again");
        assert!(reg.ready(false));
        reg.retract();
        // The publishers' side: a subscriber moving on rings the room bell once per raise.
        let owned = tx.writable_owned();
        let w = owned.reg();
        let bell = w.bell();
        let b0 = bell.load(Relaxed);
        assert!(w.ready(false), "2 of 4 slots unread");
        tx.publish(b"x").unwrap();
        tx.publish(b"x").unwrap();
        assert!(!w.ready(false), "full");
        w.barrier();
        drop(sub.try_recv().unwrap());
        drop(sub.try_recv().unwrap());
        assert_eq!(bell.load(Relaxed), b0 + 1);
        assert!(w.ready(false));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // a named segment
    fn registrations_report_what_the_calls_then_do() {
        let name = format!("shmq-unit-topic-ready-{}", std::process::id());
        let topic = Topic::create(name.as_str(), 2, 8).unwrap();
        let mut sub = topic.subscriber().unwrap();
        assert!(
            !sub.readable().ready(true),
            "no publisher yet: one may come"
        );
        let mut tx = topic.publisher().unwrap();
        assert!(tx.writable().ready(false));
        tx.publish(b"1").unwrap();
        tx.publish(b"2").unwrap();
        assert!(!tx.writable().ready(true), "full at the subscriber");
        assert!(matches!(tx.try_publish(b"3"), Err(PublishError::Full)));
        assert!(sub.readable().ready(false));
        assert!(sub.readable_owned().reg().ready(false));
        drop(sub.try_recv().unwrap());
        assert!(tx.writable_owned().reg().ready(false), "room again");
        drop(sub.try_recv().unwrap());
        assert!(!sub.readable().ready(true));
        // A dropped grant leaves a slot to skip: ready, and the call passes it.
        drop(tx.reserve(1).unwrap());
        assert!(sub.readable().ready(false));
        assert!(matches!(sub.try_recv(), Err(TopicRecvError::Empty)));
        assert!(!sub.readable_owned().reg().ready(false));
        // Every publisher gone: ready at the deep look, and the call says Disconnected.
        drop(tx);
        assert!(!sub.readable().ready(false));
        assert!(sub.readable().ready(true));
        sub.next_deep = Instant::now();
        assert!(matches!(sub.try_recv(), Err(TopicRecvError::Disconnected)));
        // Lapped (Overwrite): ready, and the call reports the lag.
        let over = Topic::create_with(
            format!("{name}-o").as_str(),
            &TopicConfig::new(2, 8).policy(Policy::Overwrite),
        )
        .unwrap();
        let mut sub = over.subscriber().unwrap();
        let mut tx = over.publisher().unwrap();
        for _ in 0..5 {
            tx.publish(b"x").unwrap();
            assert!(tx.writable().ready(false), "Overwrite never waits");
        }
        assert!(sub.readable_owned().reg().ready(false));
        assert_eq!(sub.try_recv().unwrap_err(), TopicRecvError::Lagged(3));
    }
}
