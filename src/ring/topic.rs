//! The topic log: one stream of messages that every subscriber reads, each with its own cursor.
//!
//! Implementation notes. A log of `slots` fixed-size slots (a power of two), each holding one
//! message of up to `max` bytes, indexed by a 64-bit *sequence number* that only grows: message
//! `s` lives in slot `s % slots`. It follows the LMAX Disruptor (a claimed sequence, a commit
//! word per slot) and Aeron's publication (one log every reader follows with its own position;
//! the publisher learns the slowest position from a cached limit it refreshes only when it
//! reaches it), so publishing costs the same for one subscriber or a thousand.
//!
//! Each slot starts with two words:
//!
//! | word   | meaning                                                                       |
//! |--------|-------------------------------------------------------------------------------|
//! | `seq`  | `0`: never written; `2s + 1`: message `s` being written; `2s + 2`: committed   |
//! | `meta` | bits 0-31: payload length; bit 32: `SKIP` (nothing to deliver: an abandoned claim) |
//!
//! then the payload. A subscriber at cursor `c` reads slot `c % slots`: `seq == 2c + 2` is
//! its message; anything smaller is "not yet" (an earlier lap, or being written); anything
//! larger means a publisher has since reused the slot (the subscriber was lapped). The
//! sequence word is dedicated to that purpose, so stale bytes are never taken for a message.
//!
//! **Publishing.** A publisher records the sequence it is about to claim in its own table
//! entry (`claiming`), then claims it with a compare-exchange on `next`, writes `seq = 2s+1`,
//! the payload and `meta`, and stores `seq = 2s + 2` with Release. A claim is allowed only
//! below the publisher's cached *limit*: under [`Policy::Block`] the smallest live subscriber
//! cursor plus `slots` (so a slot is reused only after every subscriber has read it), under
//! [`Policy::Overwrite`] no limit. Under both, `s` is claimed only once its slot's previous
//! lap `s - slots` is committed (or skipped), so a slot has one writer at a time: a
//! publisher descheduled between its claim and its commit while others publish a whole log
//! holds them back (Overwrite too) until it commits, or, if it died, until a waiting
//! publisher skips its claim as a subscriber would (below).
//!
//! **Joining (Block).** A subscriber that joins behind a publisher's cached limit must not be
//! lapped. The joiner stores its cursor, bumps `joins` (SeqCst), then reads `next`; a
//! publisher reads `joins` (SeqCst) after every claim and refreshes its limit when it moved
//! — the store-buffer pattern, so one of the two sees the other. Claims the publisher made
//! without seeing the join are below the `next` the joiner read, so the joiner moves its
//! cursor to at least `next - slots`. A claim made after seeing it that turns out to be beyond
//! the refreshed limit is kept by the publisher as *pending*: its publish call reports the log
//! full (or waits, as its bound allows), and a later publish fills that sequence once the
//! joiner has moved on. A publisher dropped with a pending claim gives it up (`claiming` set
//! to none), and a waiting subscriber marks it skipped once there is room.
//!
//! **Reading under Overwrite.** A lapped subscriber may read a slot while a publisher rewrites
//! it, so it copies the payload with atomic loads and checks `seq` again afterwards (a
//! seqlock: the writer's `2s + 1` store and Release fence come before its payload stores);
//! a changed `seq` means the copy may be torn and is discarded. Under Block no publisher
//! writes a slot a subscriber may still read, so subscribers read in place.
//!
//! **Crashes.** A publisher that dies between its claim and its commit leaves slot `s`
//! uncommitted while `next > s`. A waiting subscriber looks (every `CHECK_EVERY`) for a live
//! publisher whose `claiming` is `s`; if there is none, it commits the slot as `SKIP`, which
//! every subscriber passes over. A dead subscriber's entry is freed by a publisher waiting
//! for room, so it stops holding the log back.
//!
//! Layout (offsets from the region start, 128-byte aligned):
//!
//! | offset            | contents                                                        |
//! |------------------:|-----------------------------------------------------------------|
//! | 0                 | `next` (`u64`): the next sequence to claim — its own block        |
//! | 128               | `joins` (`u64`), `pub_attaches` (`u64`), `sub_hwm`, `pub_hwm` (`u32`): read-mostly |
//! | 256               | subscribers' sleep flag and bell (`u32` each)                    |
//! | 384               | publishers' sleep flag and bell (`u32` each)                     |
//! | 512               | publisher table: `PUBLISHERS` entries of 128 bytes: owner, claiming |
//! | 512 + 128·P       | subscriber table: `subs` entries of 128 bytes: owner, cursor, lost |
//! | after the tables  | `slots` slots of `stride` bytes each                             |
//!
//! An owner word is `pid << 40 | start time` (0: free). Every word read from shared memory is
//! checked before use: lengths against `max`, positions against `POSITION_LIMIT`; a forged
//! value can make a subscriber see a lag, skip a message or wait (within its bounds), never
//! read out of bounds.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::region::Region;
use crate::ring::participants::Participants;
use crate::ring::spsc::Corrupt;
use crate::sys::fence as membar;
use crate::sys::process;

/// Publishers attached at once, at most.
pub(crate) const PUBLISHERS: usize = 64;
/// Subscribers a topic has room for unless asked otherwise.
pub(crate) const DEFAULT_SUBSCRIBERS: usize = 64;
/// Most subscribers a topic can be created for.
pub(crate) const MAX_SUBSCRIBERS: usize = 4096;
/// Most slots.
pub(crate) const MAX_SLOTS: u64 = 1 << 24;
/// Largest message.
pub(crate) const MAX_MESSAGE: u64 = 1 << 30;
/// Sequences at or above this are refused: the commit words `2s + 2` must not overflow.
const POSITION_LIMIT: u64 = 1 << 62;

const NEXT: usize = 0;
const JOINS: usize = 128;
const PUB_ATTACHES: usize = 136;
const SUB_HWM: usize = 144;
const PUB_HWM: usize = 148;
const DATA_SLEEPING: usize = 256;
const DATA_BELL: usize = 260;
const ROOM_SLEEPING: usize = 384;
const ROOM_BELL: usize = 388;
const PUB_TABLE: usize = 512;
const ENTRY: usize = 128;
const SLOT_HEADER: usize = 16;

/// Slot `meta` bit: the slot carries nothing (an abandoned claim).
const SKIP: u64 = 1 << 32;

/// What publishers do when the slowest subscriber is a whole log behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Policy {
    /// Lossless: publishers wait for the slowest live subscriber (a dead one is dropped
    /// within about 100 ms). Subscribers read messages in place.
    #[default]
    Block,
    /// Publishers never wait for subscribers: a subscriber that falls a whole log behind
    /// loses the oldest messages and is told how many
    /// ([`TopicRecvError::Lagged`](crate::TopicRecvError)). Subscribers receive copies (a
    /// slot may be rewritten while it is read). A publisher does wait for another publisher
    /// that has not finished the message a whole log earlier in the same slot.
    Overwrite,
}

impl Policy {
    pub(crate) fn code(self) -> u64 {
        match self {
            Policy::Block => 0,
            Policy::Overwrite => 1,
        }
    }

    pub(crate) fn from_code(c: u64) -> Option<Policy> {
        match c {
            0 => Some(Policy::Block),
            1 => Some(Policy::Overwrite),
            _ => None,
        }
    }
}

/// A topic's fixed shape, as recorded in its segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) slots: u64,
    pub(crate) max: u64,
    pub(crate) subs: usize,
    pub(crate) policy: Policy,
}

impl Geometry {
    /// Whether the numbers are in range (they come from a header: checked before arithmetic).
    pub(crate) fn valid(&self) -> bool {
        self.slots.is_power_of_two()
            && (2..=MAX_SLOTS).contains(&self.slots)
            && self.max <= MAX_MESSAGE
            && (1..=MAX_SUBSCRIBERS).contains(&self.subs)
    }

    /// Bytes from one slot to the next: header and payload, rounded to a cache line.
    pub(crate) fn stride(&self) -> usize {
        (SLOT_HEADER + self.max as usize).div_ceil(64) * 64
    }

    fn sub_table(&self) -> usize {
        PUB_TABLE + ENTRY * PUBLISHERS
    }

    fn slots_at(&self) -> usize {
        self.sub_table() + ENTRY * self.subs
    }

    /// Bytes the whole log occupies (`None` if too large to address).
    pub(crate) fn region_size(&self) -> Option<usize> {
        (self.slots as usize)
            .checked_mul(self.stride())?
            .checked_add(self.slots_at())
    }

    /// Header parameter 1: the maximum message, the subscriber count and the policy.
    pub(crate) fn param1(&self) -> u64 {
        self.max | ((self.subs as u64) << 32) | (self.policy.code() << 48)
    }

    /// The geometry recorded as `(slots, param1)`, if it can be one.
    pub(crate) fn from_params(slots: u64, param1: u64) -> Option<Geometry> {
        let g = Geometry {
            slots,
            max: param1 & 0xffff_ffff,
            subs: ((param1 >> 32) & 0xffff) as usize,
            policy: Policy::from_code(param1 >> 48)?,
        };
        g.valid().then_some(g)
    }
}

/// The state of the slot a subscriber looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Nothing committed there yet for this sequence.
    NotYet,
    /// Committed: a message of `len` bytes, or nothing to deliver (`skip`).
    Ready { len: u32, skip: bool },
    /// A later message has taken the slot: the reader was lapped.
    Overwritten,
}

/// Where a new subscriber starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum StartAt {
    /// At the next message published after it joins.
    #[default]
    Next,
    /// At the oldest message the log still holds.
    Oldest,
    /// At the last message published (if any), then everything after it.
    Latest,
}

/// A view of one subscriber entry, for `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubscriberView {
    pub(crate) index: usize,
    pub(crate) owner: process::ProcessId,
    pub(crate) cursor: u64,
    pub(crate) lost: u64,
}

/// A topic log inside a region: geometry plus the base address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawTopic<'a> {
    region: Region<'a>,
    g: Geometry,
    stride: usize,
    mask: u64,
}

impl<'a> RawTopic<'a> {
    /// The log at the start of `region`, if the geometry is valid and the region holds it.
    pub(crate) fn new(region: Region<'a>, g: Geometry) -> Option<Self> {
        if !g.valid() || region.len() < g.region_size()? {
            return None;
        }
        Some(RawTopic {
            region,
            g,
            stride: g.stride(),
            mask: g.slots - 1,
        })
    }

    pub(crate) fn geometry(&self) -> Geometry {
        self.g
    }

    fn u32(&self, off: usize) -> &'a AtomicU32 {
        self.region
            .u32_at(off)
            .expect("topic control offsets are inside the checked region")
    }

    fn u64(&self, off: usize) -> &'a AtomicU64 {
        self.region
            .u64_at(off)
            .expect("topic control offsets are inside the checked region")
    }

    fn pub_word(&self, i: usize, w: usize) -> &'a AtomicU64 {
        self.u64(PUB_TABLE + ENTRY * (i % PUBLISHERS) + 8 * w)
    }

    fn sub_word(&self, i: usize, w: usize) -> &'a AtomicU64 {
        self.u64(self.g.sub_table() + ENTRY * (i % self.g.subs) + 8 * w)
    }

    fn slot_off(&self, seq: u64) -> usize {
        self.g.slots_at() + (seq & self.mask) as usize * self.stride
    }

    fn seq_word(&self, seq: u64) -> &'a AtomicU64 {
        self.u64(self.slot_off(seq))
    }

    fn meta_word(&self, seq: u64) -> &'a AtomicU64 {
        self.u64(self.slot_off(seq) + 8)
    }

    /// The payload area of `seq`'s slot (`max` bytes, 16-byte aligned).
    pub(crate) fn payload(&self, seq: u64) -> Region<'a> {
        self.region
            .sub(self.slot_off(seq) + SLOT_HEADER, self.g.max as usize)
            .expect("slots are inside the checked region")
    }

    /// The next sequence to claim, if it is a sane one.
    pub(crate) fn next(&self) -> Result<u64, Corrupt> {
        let n = self.u64(NEXT).load(Ordering::Acquire);
        if n >= POSITION_LIMIT {
            return Err(Corrupt(format!("topic sequence {n} is out of range")));
        }
        Ok(n)
    }

    fn hwm(&self, off: usize, cap: usize) -> usize {
        (self.u32(off).load(Ordering::Acquire) as usize).min(cap)
    }

    // ----- publishers -----

    /// Takes a free publisher entry. `None`: all are held by live processes.
    pub(crate) fn attach_publisher(&self) -> Option<usize> {
        membar::register();
        let me = Participants::owner_word(process::current());
        let take = |i: usize| {
            let owner = self.pub_word(i, 0);
            let cur = owner.load(Ordering::Acquire);
            let free = cur == 0 || !Participants::entry_alive(cur);
            free && owner
                .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        };
        // Free entries first; a dead process's entry only when none is (a /proc read each).
        let i = (0..PUBLISHERS)
            .find(|&i| self.pub_word(i, 0).load(Ordering::Relaxed) == 0 && take(i))
            .or_else(|| (0..PUBLISHERS).find(|&i| take(i)))?;
        self.pub_word(i, 1).store(u64::MAX, Ordering::Relaxed);
        self.u32(PUB_HWM).fetch_max(i as u32 + 1, Ordering::AcqRel);
        self.u64(PUB_ATTACHES).fetch_add(1, Ordering::SeqCst);
        Some(i)
    }

    /// Lets go of publisher entry `i` (ours), and wakes subscribers so they notice.
    pub(crate) fn detach_publisher(&self, i: usize) {
        let me = Participants::owner_word(process::current());
        if self
            .pub_word(i, 0)
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.ring(DATA_SLEEPING, DATA_BELL, true);
        }
    }

    /// How many publishers have ever attached.
    pub(crate) fn publisher_attaches(&self) -> u64 {
        self.u64(PUB_ATTACHES).load(Ordering::SeqCst)
    }

    /// Whether a publisher entry is held, by a live process if `deep` (dead ones are freed).
    pub(crate) fn any_publisher(&self, deep: bool) -> bool {
        let mut any = false;
        for i in 0..self.hwm(PUB_HWM, PUBLISHERS) {
            let owner = self.pub_word(i, 0);
            let e = owner.load(Ordering::Acquire);
            if e == 0 {
                continue;
            }
            if deep && !Participants::entry_alive(e) {
                let _ = owner.compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed);
                continue;
            }
            any = true;
        }
        any
    }

    /// The processes holding publisher entries, with the sequence each last claimed.
    pub(crate) fn publishers(&self) -> Vec<(process::ProcessId, u64)> {
        (0..self.hwm(PUB_HWM, PUBLISHERS))
            .filter_map(|i| {
                let e = self.pub_word(i, 0).load(Ordering::Acquire);
                (e != 0).then(|| {
                    (
                        Participants::process_of(e),
                        self.pub_word(i, 1).load(Ordering::Relaxed),
                    )
                })
            })
            .collect()
    }

    /// The claim limit: the smallest live subscriber cursor plus `slots` under Block (`None`:
    /// no limit). With `reap`, frees the entry holding the minimum if its process is dead
    /// (and looks again). Also returns the `joins` count read before the scan.
    pub(crate) fn limit(&self, reap: bool) -> (Option<u64>, u64) {
        // SeqCst: pairs with a joiner's SeqCst bump (see the module notes).
        let joins = self.u64(JOINS).load(Ordering::SeqCst);
        if self.g.policy == Policy::Overwrite {
            return (None, joins);
        }
        loop {
            let mut min: Option<(u64, usize, u64)> = None;
            for i in 0..self.hwm(SUB_HWM, self.g.subs) {
                let e = self.sub_word(i, 0).load(Ordering::SeqCst);
                if e == 0 {
                    continue;
                }
                let c = self.sub_word(i, 1).load(Ordering::SeqCst);
                if min.is_none_or(|(m, _, _)| c < m) {
                    min = Some((c, i, e));
                }
            }
            match min {
                Some((_, i, e)) if reap && !Participants::entry_alive(e) => {
                    if self
                        .sub_word(i, 0)
                        .compare_exchange(e, 0, Ordering::AcqRel, Ordering::Relaxed)
                        .is_err()
                    {
                        continue;
                    }
                    // Wakes publishers waiting for room, the reaper too: its wait would
                    // otherwise sleep until its next liveness check before it looks again.
                    self.ring(ROOM_SLEEPING, ROOM_BELL, true);
                }
                Some((c, _, _)) => {
                    return (
                        Some(c.min(POSITION_LIMIT).saturating_add(self.g.slots)),
                        joins,
                    );
                }
                None => return (None, joins),
            }
        }
    }

    /// Whether `joins` moved since `seen` (SeqCst, after a claim).
    #[inline]
    pub(crate) fn joins_moved(&self, seen: u64) -> bool {
        self.u64(JOINS).load(Ordering::SeqCst) != seen
    }

    /// Claims the next sequence for publisher `i` if it is below `limit`. `Ok(None)`: the
    /// log is full at `limit` (the caller refreshes it and waits).
    #[inline]
    pub(crate) fn try_claim(&self, i: usize, limit: Option<u64>) -> Result<Option<u64>, Corrupt> {
        let next = self.u64(NEXT);
        let mut s = next.load(Ordering::Relaxed);
        loop {
            if s >= POSITION_LIMIT {
                return Err(Corrupt(format!("topic sequence {s} is out of range")));
            }
            if limit.is_some_and(|l| s >= l) || !self.lap_settled(s) {
                return Ok(None);
            }
            self.pub_word(i, 1).store(s, Ordering::Relaxed);
            // SeqCst (AcqRel at least): the `claiming` store above is visible to whoever
            // sees the new `next`; SeqCst for the join handshake.
            match next.compare_exchange_weak(s, s + 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => return Ok(Some(s)),
                Err(now) => s = now,
            }
        }
    }

    /// Whether `s`'s slot is done with its previous lap (`s - slots` committed, or skipped),
    /// so `s` may be claimed: one writer per slot at a time. A claim that old is still open
    /// only if its publisher was descheduled (or died) while others published a whole log.
    #[inline]
    pub(crate) fn lap_settled(&self, s: u64) -> bool {
        // Acquire: pairs with the previous lap's Release commit, so its writes to the slot
        // happen before ours.
        s < self.g.slots || self.seq_word(s).load(Ordering::Acquire) >= 2 * (s - self.g.slots) + 2
    }

    /// For a publisher that [`RawTopic::lap_settled`] holds back: skips the open claim a
    /// whole log behind `next` if its claimer is gone ([`RawTopic::unstick`]). Returns
    /// whether it did. Costs a `/proc` read: call it every `CHECK_EVERY`.
    pub(crate) fn unstick_lap(&self) -> bool {
        self.next()
            .is_ok_and(|n| n >= self.g.slots && self.unstick(n - self.g.slots))
    }

    /// Publisher `i` lets go of a claim it cannot fill: a waiting subscriber then marks it
    /// skipped ([`RawTopic::unstick`]) once there is room.
    pub(crate) fn abandon_claim(&self, i: usize) {
        self.pub_word(i, 1).store(u64::MAX, Ordering::Release);
    }

    /// The sequence publisher `i` claimed and has not committed (or began to write), if any.
    pub(crate) fn pending_claim(&self, i: usize) -> Option<u64> {
        let s = self.pub_word(i, 1).load(Ordering::Acquire);
        (self.next().is_ok_and(|n| s < n) && matches!(self.peek(s), Ok(Slot::NotYet))).then_some(s)
    }

    /// Marks `seq`'s slot as being written (before any payload store).
    #[inline]
    pub(crate) fn begin_write(&self, seq: u64) {
        self.seq_word(seq).store(2 * seq + 1, Ordering::Relaxed);
        // Orders the mark before the payload stores (the seqlock writer's fence).
        fence(Ordering::Release);
    }

    /// Publishes `seq` with a `len`-byte payload (or as a skip), and wakes sleeping
    /// subscribers.
    #[inline]
    pub(crate) fn commit(&self, seq: u64, len: u32, skip: bool) {
        self.meta_word(seq).store(
            u64::from(len) | if skip { SKIP } else { 0 },
            Ordering::Relaxed,
        );
        // Release: the payload and meta are visible to whoever acquires the commit word.
        self.seq_word(seq).store(2 * seq + 2, Ordering::Release);
        self.wake(DATA_SLEEPING, DATA_BELL);
    }

    // ----- subscribers -----

    /// Takes a free subscriber entry and places its cursor as `start` asks (see the module
    /// notes on joining). `Ok(None)`: every entry is held by a live process.
    pub(crate) fn attach_subscriber(
        &self,
        start: StartAt,
    ) -> Result<Option<(usize, u64)>, Corrupt> {
        membar::register();
        let me = Participants::owner_word(process::current());
        let take = |i: usize| {
            let owner = self.sub_word(i, 0);
            let cur = owner.load(Ordering::Acquire);
            let free = cur == 0 || !Participants::entry_alive(cur);
            free && owner
                .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        };
        let subs = self.g.subs;
        let Some(i) = (0..subs)
            .find(|&i| self.sub_word(i, 0).load(Ordering::Relaxed) == 0 && take(i))
            .or_else(|| (0..subs).find(|&i| take(i)))
        else {
            return Ok(None);
        };
        self.u32(SUB_HWM).fetch_max(i as u32 + 1, Ordering::SeqCst);
        let n = match self.next() {
            Ok(n) => n,
            Err(c) => {
                self.detach_subscriber(i);
                return Err(c);
            }
        };
        let oldest = n.saturating_sub(self.g.slots);
        let c0 = match start {
            StartAt::Next => n,
            StartAt::Oldest => oldest,
            StartAt::Latest => n.saturating_sub(1).max(oldest),
        };
        self.sub_word(i, 2).store(0, Ordering::Relaxed);
        self.sub_word(i, 1).store(c0, Ordering::SeqCst);
        self.u64(JOINS).fetch_add(1, Ordering::SeqCst);
        let n2 = self.u64(NEXT).load(Ordering::SeqCst).min(POSITION_LIMIT);
        let c = c0.max(n2.saturating_sub(self.g.slots));
        if c != c0 {
            self.sub_word(i, 1).store(c, Ordering::SeqCst);
        }
        Ok(Some((i, c)))
    }

    /// Lets go of subscriber entry `i` (ours); wakes publishers waiting for room.
    pub(crate) fn detach_subscriber(&self, i: usize) {
        let me = Participants::owner_word(process::current());
        if self
            .sub_word(i, 0)
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.ring(ROOM_SLEEPING, ROOM_BELL, true);
        }
    }

    /// The state of the slot for sequence `c`.
    #[inline]
    pub(crate) fn peek(&self, c: u64) -> Result<Slot, Corrupt> {
        let w = self.seq_word(c).load(Ordering::Acquire);
        let want = 2 * c + 2;
        if w == want {
            let meta = self.meta_word(c).load(Ordering::Relaxed);
            let len = meta as u32;
            if u64::from(len) > self.g.max || meta >> 33 != 0 {
                return Err(Corrupt(format!(
                    "message {c} has a bad length word {meta:#x} (maximum {})",
                    self.g.max
                )));
            }
            return Ok(Slot::Ready {
                len,
                skip: meta & SKIP != 0,
            });
        }
        Ok(if w < want {
            Slot::NotYet
        } else {
            Slot::Overwritten
        })
    }

    /// Whether sequence `c`'s slot still holds it (after a copy: the seqlock check).
    #[inline]
    pub(crate) fn still(&self, c: u64) -> bool {
        fence(Ordering::Acquire);
        self.seq_word(c).load(Ordering::Relaxed) == 2 * c + 2
    }

    /// Copies `len` bytes of `c`'s payload into `buf` (8-byte atomic loads; replaces its
    /// contents). The caller checks [`RawTopic::still`] afterwards.
    pub(crate) fn copy_out(&self, c: u64, len: u32, buf: &mut Vec<u8>) {
        let padded = (len as usize).div_ceil(8) * 8;
        buf.clear();
        buf.resize(padded, 0);
        // `len <= max` was checked by `peek`; the payload area is `max` bytes rounded to the
        // slot stride, which is a multiple of 64, so `padded` bytes fit.
        let ok = self
            .region
            .read_units(self.slot_off(c) + SLOT_HEADER, buf, 8);
        debug_assert!(ok.is_some());
        buf.truncate(len as usize);
    }

    /// Copies `msg` into `seq`'s payload with 8-byte atomic stores (a partial last word is
    /// padded with zeros), for slots that a lapped reader may be reading.
    pub(crate) fn copy_in(&self, seq: u64, msg: &[u8]) {
        let off = self.slot_off(seq) + SLOT_HEADER;
        let whole = msg.len() / 8 * 8;
        let _ = self.region.write_units(off, &msg[..whole], 8);
        if whole < msg.len() {
            let mut last = [0u8; 8];
            last[..msg.len() - whole].copy_from_slice(&msg[whole..]);
            let _ = self.region.write_units(off + whole, &last, 8);
        }
    }

    /// Subscriber `i` has read everything before `c`: stores its cursor and wakes publishers
    /// waiting for room.
    #[inline]
    pub(crate) fn release(&self, i: usize, c: u64) {
        // Release: the slot reads happen before a publisher that sees the cursor reuses them.
        self.sub_word(i, 1).store(c, Ordering::Release);
        self.wake(ROOM_SLEEPING, ROOM_BELL);
    }

    /// Subscriber `i`'s stored cursor, if it is a sane position (for a readiness
    /// registration, which may outlive the handle and so reads the shared word).
    pub(crate) fn cursor(&self, i: usize) -> Option<u64> {
        // Acquire: pairs with `release`'s Release store (as the subscriber's own copy).
        let c = self.sub_word(i, 1).load(Ordering::Acquire);
        (c < POSITION_LIMIT).then_some(c)
    }

    /// Records `n` messages lost by subscriber `i` (for `inspect`).
    pub(crate) fn add_lost(&self, i: usize, n: u64) {
        self.sub_word(i, 2).fetch_add(n, Ordering::Relaxed);
    }

    /// Where a subscriber lapped at `c` resumes: the oldest sequence the log may still hold.
    pub(crate) fn resume_point(&self, c: u64) -> Result<u64, Corrupt> {
        Ok(self.next()?.saturating_sub(self.g.slots).max(c + 1))
    }

    /// For a subscriber stuck at `c`: if `c` was claimed (`next > c`) but is not committed
    /// and no live publisher is claiming it, its claimer died (or never was): commits the
    /// slot as a skip so everyone moves on. Returns whether it did. Costs a `/proc` read per
    /// publisher entry that names `c`: call it every `CHECK_EVERY`, not per poll.
    pub(crate) fn unstick(&self, c: u64) -> bool {
        if self.next().is_ok_and(|n| n <= c) || !matches!(self.peek(c), Ok(Slot::NotYet)) {
            return false;
        }
        let claimed_by_live = (0..self.hwm(PUB_HWM, PUBLISHERS)).any(|i| {
            let e = self.pub_word(i, 0).load(Ordering::Acquire);
            e != 0
                && self.pub_word(i, 1).load(Ordering::Acquire) == c
                && Participants::entry_alive(e)
        });
        if claimed_by_live {
            return false;
        }
        // Under Block the slot may be rewritten only once every subscriber is past `c - slots`.
        if self.limit(false).0.is_some_and(|limit| c >= limit) {
            return false;
        }
        let w = self.seq_word(c).load(Ordering::Acquire);
        if w >= 2 * c + 2 {
            return false;
        }
        self.meta_word(c).store(SKIP, Ordering::Relaxed);
        let done = self
            .seq_word(c)
            .compare_exchange(w, 2 * c + 2, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if done {
            self.ring(DATA_SLEEPING, DATA_BELL, true);
        }
        done
    }

    /// Every held subscriber entry.
    pub(crate) fn subscribers(&self) -> Vec<SubscriberView> {
        (0..self.hwm(SUB_HWM, self.g.subs))
            .filter_map(|i| {
                let e = self.sub_word(i, 0).load(Ordering::Acquire);
                (e != 0).then(|| SubscriberView {
                    index: i,
                    owner: Participants::process_of(e),
                    cursor: self.sub_word(i, 1).load(Ordering::Relaxed),
                    lost: self.sub_word(i, 2).load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    // ----- sleeping -----

    /// The subscribers' (`data`) or publishers' sleep flag and bell.
    pub(crate) fn sleep_words(&self, data: bool) -> (&'a AtomicU32, &'a AtomicU32) {
        if data {
            (self.u32(DATA_SLEEPING), self.u32(DATA_BELL))
        } else {
            (self.u32(ROOM_SLEEPING), self.u32(ROOM_BELL))
        }
    }

    /// Rings the bell if someone announced sleep since it was last rung. The fast path is one
    /// relaxed load of a line written only by sleepers (the asymmetric fence of `sys::fence`).
    #[inline]
    fn wake(&self, flag: usize, bell: usize) {
        membar::light();
        if self.u32(flag).load(Ordering::Relaxed) != 0 {
            self.ring(flag, bell, false);
        }
    }

    /// Clears the sleep flag (sleepers raise it again before every sleep, so one ring per
    /// sleep, not per message) and wakes every sleeper.
    #[cold]
    fn ring(&self, flag: usize, bell: usize, always: bool) {
        if self.u32(flag).swap(0, Ordering::Relaxed) != 0 || always {
            let bell = self.u32(bell);
            // Release: pairs with the sleepers' Acquire load of the bell.
            bell.fetch_add(1, Ordering::Release);
            crate::sync::park::wake_all(bell);
        }
    }

    /// The last committed message, copied (`None`: nothing published, or every candidate was
    /// being rewritten). Looks back over at most one slot per publisher entry.
    pub(crate) fn latest(&self, buf: &mut Vec<u8>) -> Result<Option<u64>, Corrupt> {
        let n = self.next()?;
        let back = (self.hwm(PUB_HWM, PUBLISHERS) as u64 + 1).min(self.g.slots);
        for s in (n.saturating_sub(back)..n).rev() {
            if let Slot::Ready { len, skip: false } = self.peek(s)? {
                self.copy_out(s, len, buf);
                if self.still(s) {
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }
}

/// The topic's sleeper: a flag any number of sleepers raise before *every* sleep (a waker
/// clears it when it rings, so a stream of messages rings once per sleep, not per message)
/// and the heavy barrier, so the waker's fast path needs no fence. It relies on the wait
/// loops reading the bell *before* `barrier` (see `wait::Sleeper`): a ring that lowers the
/// flag just raised then changes the word the sleeper would sleep on.
pub(crate) struct Raised<'a> {
    pub(crate) flag: &'a AtomicU32,
    pub(crate) bell: &'a AtomicU32,
}

impl crate::ring::wait::Sleeper for Raised<'_> {
    fn bell(&self) -> &AtomicU32 {
        self.bell
    }
    fn announce(&self) {}
    fn barrier(&self) {
        self.flag.store(1, Ordering::Relaxed);
        membar::heavy();
    }
    fn retract(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;

    fn geometry(slots: u64, max: u64, policy: Policy) -> Geometry {
        Geometry {
            slots,
            max,
            subs: 4,
            policy,
        }
    }

    fn publish(t: &RawTopic<'_>, p: usize, limit: Option<u64>, msg: &[u8]) -> Option<u64> {
        let s = t.try_claim(p, limit).unwrap()?;
        t.begin_write(s);
        t.copy_in(s, msg);
        t.commit(s, msg.len() as u32, false);
        Some(s)
    }

    fn read(t: &RawTopic<'_>, c: &mut u64) -> Result<Option<Vec<u8>>, u64> {
        loop {
            match t.peek(*c).unwrap() {
                Slot::NotYet => return Ok(None),
                Slot::Overwritten => {
                    let r = t.resume_point(*c).unwrap();
                    let lost = r - *c;
                    *c = r;
                    return Err(lost);
                }
                Slot::Ready { skip: true, .. } => *c += 1,
                Slot::Ready { len, skip: false } => {
                    let mut buf = Vec::new();
                    t.copy_out(*c, len, &mut buf);
                    if !t.still(*c) {
                        continue;
                    }
                    *c += 1;
                    return Ok(Some(buf));
                }
            }
        }
    }

    #[test]
    fn geometry_round_trips_and_is_checked() {
        let g = geometry(8, 40, Policy::Overwrite);
        assert_eq!(Geometry::from_params(8, g.param1()), Some(g));
        assert_eq!(Geometry::from_params(6, g.param1()), None);
        assert_eq!(Geometry::from_params(8, g.param1() | (7 << 48)), None);
        assert_eq!(Geometry::from_params(8, g.param1() & !(0xffff << 32)), None);
        let buf = heap(g.region_size().unwrap());
        assert!(RawTopic::new(Region::from_words(&buf), g).is_some());
        let small = heap(g.region_size().unwrap() - 8);
        assert!(RawTopic::new(Region::from_words(&small), g).is_none());
    }

    #[test]
    fn block_waits_for_the_slowest_and_every_subscriber_sees_everything() {
        let g = geometry(4, 24, Policy::Block);
        let buf = heap(g.region_size().unwrap());
        let t = RawTopic::new(Region::from_words(&buf), g).unwrap();
        let p = t.attach_publisher().unwrap();
        let (a, mut ca) = t.attach_subscriber(StartAt::Next).unwrap().unwrap();
        let (b, mut cb) = t.attach_subscriber(StartAt::Next).unwrap().unwrap();
        assert_ne!(a, b);
        for i in 0..4u8 {
            let (limit, _) = t.limit(false);
            assert!(publish(&t, p, limit, &[i; 5]).is_some());
        }
        let (limit, _) = t.limit(false);
        assert_eq!(limit, Some(4));
        assert_eq!(
            publish(&t, p, limit, b"x"),
            None,
            "full at the slowest cursor"
        );
        assert_eq!(read(&t, &mut ca), Ok(Some(vec![0; 5])));
        t.release(a, ca);
        assert_eq!(t.limit(false).0, Some(4), "b still holds slot 0");
        assert_eq!(read(&t, &mut cb), Ok(Some(vec![0; 5])));
        t.release(b, cb);
        let (limit, _) = t.limit(false);
        assert_eq!(publish(&t, p, limit, b"four"), Some(4));
        for c in [&mut ca, &mut cb] {
            for i in 1..4u8 {
                assert_eq!(read(&t, c), Ok(Some(vec![i; 5])));
            }
            assert_eq!(read(&t, c), Ok(Some(b"four".to_vec())));
            assert_eq!(read(&t, c), Ok(None));
        }
        // A subscriber that leaves no longer holds the log back.
        t.detach_subscriber(b);
        t.release(a, ca);
        assert_eq!(t.limit(false).0, Some(ca + 4));
    }

    #[test]
    fn overwrite_laps_a_slow_reader_and_counts_what_it_lost() {
        let g = geometry(4, 16, Policy::Overwrite);
        let buf = heap(g.region_size().unwrap());
        let t = RawTopic::new(Region::from_words(&buf), g).unwrap();
        let p = t.attach_publisher().unwrap();
        let (_, mut c) = t.attach_subscriber(StartAt::Next).unwrap().unwrap();
        for i in 0..10u8 {
            assert!(publish(&t, p, None, &[i; 3]).is_some());
        }
        // 10 published into 4 slots: 0..6 are gone, 6..10 remain.
        assert_eq!(read(&t, &mut c), Err(6));
        for i in 6..10u8 {
            assert_eq!(read(&t, &mut c), Ok(Some(vec![i; 3])));
        }
        assert_eq!(read(&t, &mut c), Ok(None));
        let mut last = Vec::new();
        assert_eq!(t.latest(&mut last), Ok(Some(9)));
        assert_eq!(last, vec![9; 3]);
    }

    #[test]
    fn an_abandoned_claim_is_skipped_once_no_live_publisher_holds_it() {
        let g = geometry(8, 8, Policy::Block);
        let buf = heap(g.region_size().unwrap());
        let t = RawTopic::new(Region::from_words(&buf), g).unwrap();
        let p = t.attach_publisher().unwrap();
        let (_, mut c) = t.attach_subscriber(StartAt::Next).unwrap().unwrap();
        let s = t.try_claim(p, None).unwrap().unwrap();
        t.begin_write(s);
        let p2 = t.attach_publisher().unwrap();
        publish(&t, p2, None, b"after").unwrap();
        // Claimed by a live publisher (us): not touched.
        assert!(!t.unstick(s));
        assert_eq!(read(&t, &mut c), Ok(None));
        // Its claimer let go without committing (as if it died).
        t.detach_publisher(p);
        t.pub_word(p, 1).store(s, Ordering::Relaxed);
        assert!(t.unstick(s));
        assert_eq!(read(&t, &mut c), Ok(Some(b"after".to_vec())));
    }

    #[test]
    fn forged_words_are_errors_or_lags_never_out_of_bounds() {
        let g = geometry(4, 16, Policy::Overwrite);
        let buf = heap(g.region_size().unwrap());
        let t = RawTopic::new(Region::from_words(&buf), g).unwrap();
        t.seq_word(0).store(2, Ordering::Relaxed);
        t.meta_word(0).store(17, Ordering::Relaxed);
        assert!(t.peek(0).is_err());
        t.meta_word(0).store(u64::MAX, Ordering::Relaxed);
        assert!(t.peek(0).is_err());
        t.seq_word(1).store(u64::MAX, Ordering::Relaxed);
        assert_eq!(t.peek(1), Ok(Slot::Overwritten));
        t.u64(NEXT).store(u64::MAX, Ordering::Relaxed);
        assert!(t.next().is_err());
        assert!(t.resume_point(1).is_err());
        assert!(t.try_claim(0, None).is_err());
        t.u32(SUB_HWM).store(u32::MAX, Ordering::Relaxed);
        assert!(t.subscribers().is_empty());
    }

    // ----- the log protocol against a model -----

    /// What became of a claimed sequence, in the model.
    #[derive(Debug, Clone, PartialEq)]
    enum Fate {
        /// Claimed by publisher `by`, not committed; `begun`: its slot marked as being written.
        Claimed {
            by: usize,
            begun: bool,
        },
        /// Its claimer let go (abandoned the claim, or left) before committing.
        Abandoned {
            begun: bool,
        },
        Committed(Vec<u8>),
        Skipped,
    }

    impl Fate {
        fn begun(&self) -> bool {
            match self {
                Fate::Claimed { begun, .. } | Fate::Abandoned { begun } => *begun,
                Fate::Committed(_) | Fate::Skipped => true,
            }
        }
        fn settled(&self) -> bool {
            matches!(self, Fate::Committed(_) | Fate::Skipped)
        }
    }

    #[derive(Debug)]
    struct PubModel {
        index: usize,
        /// The sequence its table entry says it is claiming (`u64::MAX`: none).
        claiming: u64,
        /// A claim it holds and has not committed.
        holds: Option<u64>,
        /// The length of the message written into the held claim's slot.
        written: usize,
    }

    #[derive(Debug)]
    struct SubModel {
        index: usize,
        /// The real subscriber's cursor (stored in its entry after every step, as the API does).
        cursor: u64,
    }

    /// The model: every claimed sequence's fate, and the attached publishers and subscribers.
    /// It predicts each call's result from the protocol's rules (module notes), not from the
    /// slot words.
    struct Model {
        g: Geometry,
        fates: Vec<Fate>,
        pubs: Vec<PubModel>,
        subs: Vec<SubModel>,
        pub_hwm: usize,
    }

    /// One step of a test sequence (publisher and subscriber numbers are taken modulo the
    /// attached ones).
    #[derive(Debug, Clone)]
    enum Op {
        AttachPublisher,
        DetachPublisher(usize),
        /// Claim, write and commit a `len`-byte message in one go (`Publisher::publish`).
        Publish(usize, usize),
        /// Claim only (a publisher descheduled right after its compare-exchange).
        Claim(usize),
        /// Mark the held claim's slot as being written and copy a `len`-byte message in.
        Write(usize, usize),
        /// Commit the held claim (writing it first if not yet).
        Commit(usize, usize),
        /// Commit the held claim as a skip (a dropped grant).
        Drop(usize),
        /// Let go of the held claim without committing (as an interrupted joiner wait).
        Abandon(usize),
        Subscribe(StartAt),
        Unsubscribe(usize),
        Recv(usize),
        /// A waiting subscriber's periodic check for an abandoned claim at its cursor.
        Unstick(usize),
        Latest,
    }

    fn payload(seq: u64, p: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (seq as u8).wrapping_mul(31) ^ (p as u8) << 5 ^ i as u8)
            .collect()
    }

    /// A receive's outcome: a message with its sequence, nothing yet, or lagged by `n`.
    type Received = Result<Option<(u64, Vec<u8>)>, u64>;

    impl Model {
        fn new(g: Geometry) -> Model {
            Model {
                g,
                fates: Vec::new(),
                pubs: Vec::new(),
                subs: Vec::new(),
                pub_hwm: 0,
            }
        }

        fn next(&self) -> u64 {
            self.fates.len() as u64
        }

        fn fate(&self, s: u64) -> Option<&Fate> {
            self.fates.get(s as usize)
        }

        /// A later sequence took `c`'s slot: it began writing there.
        fn overwritten(&self, c: u64) -> bool {
            let mut s = c + self.g.slots;
            while s < self.next() {
                if self.fates[s as usize].begun() {
                    return true;
                }
                s += self.g.slots;
            }
            false
        }

        /// Block: the smallest subscriber cursor plus `slots` (`None`: no subscriber, or
        /// Overwrite).
        fn limit(&self) -> Option<u64> {
            if self.g.policy == Policy::Overwrite {
                return None;
            }
            self.subs.iter().map(|s| s.cursor + self.g.slots).min()
        }

        /// Whether the next sequence may be claimed: below the limit, and its slot's previous
        /// lap settled (one writer per slot at a time).
        fn may_claim(&self) -> bool {
            let s = self.next();
            self.limit().is_none_or(|l| s < l)
                && (s < self.g.slots || self.fates[(s - self.g.slots) as usize].settled())
        }

        /// What a receive at `cursor` gives: `Ok(Some)` a message, `Ok(None)` nothing yet,
        /// `Err(n)` lagged by `n`; and the cursor after it.
        fn recv(&self, mut c: u64) -> (Received, u64) {
            loop {
                if self.overwritten(c) {
                    let to = self.next().saturating_sub(self.g.slots).max(c + 1);
                    return (Err(to - c), to);
                }
                match self.fate(c) {
                    None | Some(Fate::Claimed { .. } | Fate::Abandoned { .. }) => {
                        return (Ok(None), c);
                    }
                    Some(Fate::Skipped) => c += 1,
                    Some(Fate::Committed(m)) => return (Ok(Some((c, m.clone()))), c + 1),
                }
            }
        }
    }

    /// Runs `ops` against a real log on heap memory and the model, asserting they agree at
    /// every step. Never reads /proc: every entry is ours or free.
    fn run_model(g: Geometry, ops: &[Op]) {
        let buf = heap(g.region_size().unwrap());
        let t = RawTopic::new(Region::from_words(&buf), g).unwrap();
        let mut m = Model::new(g);
        for (step, op) in ops.iter().enumerate() {
            let at = format!("step {step}: {op:?}");
            match *op {
                Op::AttachPublisher => {
                    let got = t.attach_publisher();
                    if m.pubs.len() < 3 {
                        let index = got.expect(&at);
                        assert!(m.pubs.iter().all(|p| p.index != index), "{at}");
                        m.pub_hwm = m.pub_hwm.max(index + 1);
                        m.pubs.push(PubModel {
                            index,
                            claiming: u64::MAX,
                            holds: None,
                            written: 0,
                        });
                    } else if let Some(i) = got {
                        t.detach_publisher(i); // stay at three
                    }
                }
                Op::DetachPublisher(k) if !m.pubs.is_empty() => {
                    let p = m.pubs.remove(k % m.pubs.len());
                    t.detach_publisher(p.index);
                    if let Some(s) = p.holds {
                        let begun = m.fates[s as usize].begun();
                        m.fates[s as usize] = Fate::Abandoned { begun };
                    }
                }
                Op::Publish(k, len)
                | Op::Write(k, len)
                | Op::Commit(k, len)
                | Op::Claim(k @ len)
                    if !m.pubs.is_empty() =>
                {
                    let k = k % m.pubs.len();
                    let len = len.min(g.max as usize);
                    if m.pubs[k].holds.is_none() {
                        if matches!(op, Op::Write(..) | Op::Commit(..)) {
                            continue;
                        }
                        let (limit, _) = t.limit(false);
                        assert_eq!(limit, m.limit(), "{at}: limit");
                        let got = t.try_claim(m.pubs[k].index, limit).expect(&at);
                        if !m.may_claim() {
                            assert_eq!(got, None, "{at}: claim refused");
                            continue;
                        }
                        let s = m.next();
                        assert_eq!(got, Some(s), "{at}: claim");
                        // Block is lossless: no subscriber still needs the slot's last lap.
                        if g.policy == Policy::Block {
                            assert!(m.subs.iter().all(|x| x.cursor + g.slots > s), "{at}");
                        }
                        m.fates.push(Fate::Claimed {
                            by: k,
                            begun: false,
                        });
                        m.pubs[k].claiming = s;
                        m.pubs[k].holds = Some(s);
                        if matches!(op, Op::Claim(_)) {
                            continue;
                        }
                    }
                    let s = m.pubs[k].holds.unwrap();
                    let p = m.pubs[k].index;
                    if let Fate::Claimed { begun: false, .. } = m.fates[s as usize] {
                        t.begin_write(s);
                        t.copy_in(s, &payload(s, p, len));
                        m.fates[s as usize] = Fate::Claimed { by: k, begun: true };
                        m.pubs[k].written = len;
                    }
                    if matches!(op, Op::Publish(..) | Op::Commit(..)) {
                        // Commits the length written (by this step or an earlier `Write`).
                        let len = m.pubs[k].written;
                        t.commit(s, len as u32, false);
                        m.fates[s as usize] = Fate::Committed(payload(s, p, len));
                        m.pubs[k].holds = None;
                    }
                }
                Op::Drop(k) if !m.pubs.is_empty() => {
                    let k = k % m.pubs.len();
                    if let Some(s) = m.pubs[k].holds.take() {
                        if !m.fates[s as usize].begun() {
                            t.begin_write(s); // a grant marks its slot when it is made
                        }
                        t.commit(s, 0, true);
                        m.fates[s as usize] = Fate::Skipped;
                    }
                }
                Op::Abandon(k) if !m.pubs.is_empty() => {
                    let k = k % m.pubs.len();
                    if let Some(s) = m.pubs[k].holds.take() {
                        t.abandon_claim(m.pubs[k].index);
                        m.pubs[k].claiming = u64::MAX;
                        let begun = m.fates[s as usize].begun();
                        m.fates[s as usize] = Fate::Abandoned { begun };
                    }
                }
                Op::Subscribe(start) => {
                    let got = t.attach_subscriber(start).expect(&at);
                    if m.subs.len() == g.subs {
                        assert_eq!(got, None, "{at}: every entry is held");
                        continue;
                    }
                    let (index, cursor) = got.expect(&at);
                    assert!(m.subs.iter().all(|x| x.index != index), "{at}");
                    let n = m.next();
                    let oldest = n.saturating_sub(g.slots);
                    let want = match start {
                        StartAt::Next => n,
                        StartAt::Oldest => oldest,
                        StartAt::Latest => n.saturating_sub(1).max(oldest),
                    };
                    assert_eq!(cursor, want, "{at}: where it starts");
                    m.subs.push(SubModel { index, cursor });
                }
                Op::Unsubscribe(j) if !m.subs.is_empty() => {
                    let x = m.subs.remove(j % m.subs.len());
                    t.detach_subscriber(x.index);
                }
                Op::Recv(j) if !m.subs.is_empty() => {
                    let j = j % m.subs.len();
                    let (want, to) = m.recv(m.subs[j].cursor);
                    let mut c = m.subs[j].cursor;
                    let got = read(&t, &mut c).map(|o| o.map(|v| (c - 1, v)));
                    assert_eq!(got, want, "{at}: received");
                    assert_eq!(c, to, "{at}: cursor after");
                    if g.policy == Policy::Block {
                        assert!(got.is_ok(), "{at}: Block never lags");
                    }
                    t.release(m.subs[j].index, c);
                    m.subs[j].cursor = c;
                }
                Op::Unstick(j) if !m.subs.is_empty() => {
                    let c = m.subs[j % m.subs.len()].cursor;
                    let claimed_by_live = m.pubs.iter().any(|p| p.claiming == c);
                    let want = c < m.next()
                        && !m.overwritten(c)
                        && !m.fates[c as usize].settled()
                        && !claimed_by_live
                        && m.limit().is_none_or(|l| c < l);
                    assert_eq!(t.unstick(c), want, "{at}: unstick");
                    if want {
                        m.fates[c as usize] = Fate::Skipped;
                    }
                }
                Op::Latest => {
                    let n = m.next();
                    let back = (m.pub_hwm as u64 + 1).min(g.slots);
                    let want = (n.saturating_sub(back)..n).rev().find_map(|s| {
                        match &m.fates[s as usize] {
                            Fate::Committed(msg) if !m.overwritten(s) => Some((s, msg.clone())),
                            _ => None,
                        }
                    });
                    let mut got = Vec::new();
                    let seq = t.latest(&mut got).expect(&at);
                    assert_eq!(seq.map(|s| (s, got)), want, "{at}: latest");
                }
                _ => {}
            }
            assert_eq!(t.next(), Ok(m.next()), "{at}: next");
        }
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let k = 0..4usize;
        let len = prop_oneof![Just(0usize), Just(24), 0..=24usize];
        let start = prop_oneof![
            Just(StartAt::Next),
            Just(StartAt::Oldest),
            Just(StartAt::Latest)
        ];
        prop_oneof![
            1 => Just(Op::AttachPublisher),
            1 => k.clone().prop_map(Op::DetachPublisher),
            6 => (k.clone(), len.clone()).prop_map(|(k, l)| Op::Publish(k, l)),
            2 => k.clone().prop_map(Op::Claim),
            1 => (k.clone(), len.clone()).prop_map(|(k, l)| Op::Write(k, l)),
            2 => (k.clone(), len).prop_map(|(k, l)| Op::Commit(k, l)),
            1 => k.clone().prop_map(Op::Drop),
            1 => k.clone().prop_map(Op::Abandon),
            1 => start.prop_map(Op::Subscribe),
            1 => k.clone().prop_map(Op::Unsubscribe),
            6 => k.clone().prop_map(Op::Recv),
            1 => k.prop_map(Op::Unstick),
            1 => Just(Op::Latest),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Random publish / claim (held, abandoned, dropped, left behind by a detaching
        /// publisher) / subscribe / unsubscribe / receive / unstick / latest sequences, with
        /// several publishers and subscribers, under both policies.
        #[test]
        #[cfg_attr(miri, ignore)] // too slow under Miri; the fixed sequences below run there
        fn operation_sequences_match_the_model(
            slots_log in 1u32..4,
            overwrite in proptest::bool::ANY,
            ops in proptest::collection::vec(op(), 1..160),
        ) {
            let policy = if overwrite { Policy::Overwrite } else { Policy::Block };
            // Start with a publisher and a subscriber so that most sequences do something.
            let mut all = vec![Op::AttachPublisher, Op::Subscribe(StartAt::Oldest)];
            all.extend(ops);
            run_model(geometry_for(1 << slots_log, policy), &all);
        }
    }

    /// Fixed sequences over every kind of step (under Miri, in place of the proptest).
    #[test]
    fn fixed_sequences_match_the_model() {
        use Op::*;
        let ops = [
            AttachPublisher,
            Subscribe(StartAt::Next),
            Publish(0, 5),
            Publish(0, 24),
            Subscribe(StartAt::Latest),
            AttachPublisher,
            Claim(1),
            Publish(0, 0),
            Recv(0),
            Recv(0),
            Recv(0), // behind the open claim: nothing yet
            Recv(1),
            Unstick(0), // its claimer is alive: not skipped
            Write(1, 9),
            Abandon(1),
            Unstick(0), // abandoned: skipped
            Recv(0),
            Recv(0),
            Claim(0),
            Drop(0),
            Claim(1),
            DetachPublisher(1),
            Publish(0, 3),
            Recv(1),
            Unstick(1),
            Recv(1),
            Recv(1),
            Latest,
            Subscribe(StartAt::Oldest),
            Subscribe(StartAt::Next), // a fourth: no room
            Unsubscribe(0),
            Subscribe(StartAt::Next),
            Publish(0, 1),
            Publish(0, 2),
            Publish(0, 3),
            Publish(0, 4),
            Publish(0, 5),
            Latest,
            Recv(0),
            Recv(0),
            Recv(1),
            Recv(2),
            Recv(2),
        ];
        for policy in [Policy::Block, Policy::Overwrite] {
            for slots in [2, 4] {
                run_model(geometry_for(slots, policy), &ops);
            }
        }
    }

    /// Two publisher threads and two subscriber threads on one heap log, under both
    /// policies: every message arrives whole (its bytes follow from its first word), each
    /// publisher's in order, and (Block) none is lost; under Miri, also free of data races.
    #[test]
    fn threads_publish_and_receive_whole_messages_in_order() {
        const PER: u64 = if cfg!(miri) { 30 } else { 20_000 };
        let msg = |p: u64, i: u64| -> Vec<u8> {
            let id = p << 32 | i;
            let mut m = id.to_le_bytes().to_vec();
            m.extend((0..(i % 17) as u8).map(|b| b ^ id as u8));
            m
        };
        for policy in [Policy::Block, Policy::Overwrite] {
            let g = geometry_for(4, policy);
            let buf = heap(g.region_size().unwrap());
            let t = RawTopic::new(Region::from_words(&buf), g).unwrap();
            let subs: Vec<_> = (0..2)
                .map(|_| t.attach_subscriber(StartAt::Oldest).unwrap().unwrap())
                .collect();
            std::thread::scope(|scope| {
                for p in 0..2u64 {
                    scope.spawn(move || {
                        let me = t.attach_publisher().unwrap();
                        // A failed subscriber thread never releases: give up, not hang.
                        let give_up =
                            std::time::Instant::now() + std::time::Duration::from_secs(120);
                        for i in 0..PER {
                            let m = msg(p, i);
                            let s = loop {
                                if let Some(s) = t.try_claim(me, t.limit(false).0).unwrap() {
                                    break s;
                                }
                                assert!(std::time::Instant::now() < give_up, "no room for 120 s");
                                std::thread::yield_now();
                            };
                            t.begin_write(s);
                            t.copy_in(s, &m);
                            t.commit(s, m.len() as u32, false);
                        }
                        t.detach_publisher(me);
                    });
                }
                for (index, cursor) in subs {
                    scope.spawn(move || {
                        let (mut c, mut next, mut got, mut lost) = (cursor, [0u64; 2], 0, 0);
                        // Every sequence is committed, so the cursor reaches the end.
                        while c < 2 * PER {
                            match read(&t, &mut c) {
                                Ok(Some(m)) => {
                                    let id = u64::from_le_bytes(m[..8].try_into().unwrap());
                                    let (p, i) = (id >> 32, id & 0xffff_ffff);
                                    assert_eq!(m, msg(p, i), "whole");
                                    assert!(i >= next[p as usize], "publisher {p} in order");
                                    if policy == Policy::Block {
                                        assert_eq!(i, next[p as usize], "none lost");
                                    }
                                    next[p as usize] = i + 1;
                                    got += 1;
                                }
                                Ok(None) => std::thread::yield_now(),
                                Err(n) => {
                                    assert_eq!(policy, Policy::Overwrite, "Block never lags");
                                    lost += n;
                                }
                            }
                            t.release(index, c);
                        }
                        assert_eq!(got + lost, 2 * PER, "received + lagged = published");
                    });
                }
            });
        }
    }

    fn geometry_for(slots: u64, policy: Policy) -> Geometry {
        Geometry {
            slots,
            max: 24,
            subs: 3,
            policy,
        }
    }

    /// A publisher descheduled between its claim and its write while others publish a whole
    /// log: its slot's previous lap is still its, so nobody may claim that slot again until
    /// it commits. Before claims waited for the slot's previous lap, a later publisher wrote
    /// the same slot (Overwrite: a reader at the later sequence waited forever, then skipped
    /// it as abandoned; a reader at the stale one received it after being lapped; with two
    /// writers at once, torn messages; Block, behind a subscriber that joined at `Next` past
    /// the claim: two writers of one slot read in place).
    #[test]
    fn a_claim_a_whole_log_old_keeps_its_slot_until_committed() {
        for policy in [Policy::Overwrite, Policy::Block] {
            let mut ops = vec![
                Op::AttachPublisher,
                Op::AttachPublisher,
                Op::Subscribe(StartAt::Oldest),
                Op::Claim(0),
                Op::Subscribe(StartAt::Next),
                Op::Unsubscribe(0),
            ];
            // The second publisher fills the log and tries to go on.
            ops.extend((0..6).map(|i| Op::Publish(1, 3 + i)));
            ops.extend([Op::Recv(0), Op::Recv(0), Op::Write(0, 7), Op::Recv(0)]);
            ops.extend((0..6).map(|_| Op::Recv(0)));
            ops.extend([Op::Commit(0, 7), Op::Publish(1, 9)]);
            ops.extend((0..6).map(|_| Op::Recv(0)));
            ops.extend([Op::Subscribe(StartAt::Oldest), Op::Latest]);
            ops.extend((0..6).map(|_| Op::Recv(1)));
            run_model(geometry_for(4, policy), &ops);
        }
    }
}
