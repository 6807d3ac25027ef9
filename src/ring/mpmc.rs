//! The bounded multi-producer multi-consumer slot queue, robust against killed processes.
//!
//! # Algorithm
//! Vyukov's bounded MPMC queue: `capacity` (a power of two) slots, each with a sequence word,
//! and two positions, `enq` and `deq`, that only grow. Slot `pos % capacity` serves position
//! `pos` in lap `pos / capacity`. The difference from the textbook version is *who owns a
//! slot*: a claim is a compare-and-swap on the slot's word that records the claimant, so a
//! slot claimed by a process that then dies can be recognised and given back.
//!
//! A slot word is `state (2 bits) | participant (14 bits) | seq (48 bits)`:
//!
//! | state     | meaning for position `seq`                                    |
//! |-----------|---------------------------------------------------------------|
//! | `FREE`    | empty, waiting for the producer of position `seq`             |
//! | `WRITING` | claimed by producer `participant`, being filled               |
//! | `FULL`    | holds the item of position `seq`                              |
//! | `READING` | claimed by consumer `participant`, being copied out           |
//!
//! - put at `pos = enq`: the slot is `FREE(pos)` → CAS it to `WRITING(pos, me)`, help `enq`
//!   from `pos` to `pos + 1`, fill the slot, CAS it to `FULL(pos)` (the commit).
//! - get at `pos = deq`: the slot is `FULL(pos)` → CAS it to `READING(pos, me)`, help `deq`
//!   forward, copy the item out, CAS it to `FREE(pos + capacity)` (the slot's next lap).
//! - Anyone who finds position `pos` already claimed (or finished) moves the position on with
//!   a CAS from `pos` to `pos + 1`, so a claimant that dies before moving it stalls nobody.
//! - A slot left `WRITING` or `READING` by a dead participant is set to `FREE(seq + capacity)`:
//!   the dead producer's item was never committed (its `put` never returned) and is dropped;
//!   the dead consumer's item counts as taken. Every committed item not yet taken survives.
//!
//! Participants are the processes attached to the queue: each handle claims an entry in a
//! table (`pid << 40 | start time`, as the ring's roles), and the entry's index is what slot
//! words record. An entry whose process is dead is reclaimed only after all its slots were
//! given back, so a recycled index never makes a dead claim look alive.
//!
//! Sequence numbers are compared as 48-bit wrapping differences; in a healthy queue a slot's
//! seq is always `pos - capacity`, `pos` or beyond `pos` by a multiple of the capacity, so any
//! other value is reported as corruption. Every word read from shared memory is checked before
//! it is used: a hostile peer can make operations fail, never make them misbehave.
//!
//! # Waiting
//! Consumers sleep on the `items` bell, producers on the `space` bell, each with a waiter
//! count; the side that changes a slot rings the other side's bell only if someone waits
//! (`ring::wait`, the same spin-then-park strategy as the SPSC ring).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::region::Region;
use crate::ring::participants::{self, Participants};
use crate::ring::wait::{self, Counted};
use crate::sys::process::ProcessId;

/// Producer position; alone on its 128-byte block.
const ENQ: usize = 0;
/// Consumer position.
const DEQ: usize = 128;
/// 1 once the queue is closed.
const CLOSED: usize = 256;
/// Items put and not yet marked done (JoinableQueue).
const UNFINISHED: usize = 264;
/// Items taken and not yet marked done (JoinableQueue).
const TAKEN: usize = 272;
/// Bell rung when `UNFINISHED` reaches zero, and its waiter count.
const JOIN_BELL: usize = 280;
const JOIN_WAITERS: usize = 284;
/// Items given back from dead or abandoning producers (for `shmq inspect`).
const DROPPED: usize = 288;
/// Most items the queue holds at once (≤ capacity; a non-power-of-two `maxsize`).
const LIMIT: usize = 296;
/// Bell consumers sleep on, and how many do.
const ITEMS_BELL: usize = 384;
const ITEMS_WAITERS: usize = 388;
/// Bell producers sleep on, and how many do.
const SPACE_BELL: usize = 448;
const SPACE_WAITERS: usize = 452;
/// The participant table (`ring::participants`).
const PARTICIPANTS: usize = 512;
/// Processes (handles) that may be attached at once.
pub(crate) const MAX_PARTICIPANTS: usize = participants::MAX;
/// Where the slots start.
pub(crate) const SLOTS: usize = PARTICIPANTS + participants::SIZE;
const _: () = assert!(SLOTS % 64 == 0);

/// Largest capacity (slots).
pub(crate) const MAX_CAPACITY: u64 = 1 << 30;

const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const WHO_SHIFT: u32 = 48;
const WHO_MASK: u64 = (1 << 14) - 1;
const STATE_SHIFT: u32 = 62;

pub(crate) const FREE: u64 = 0;
pub(crate) const WRITING: u64 = 1;
pub(crate) const FULL: u64 = 2;
pub(crate) const READING: u64 = 3;

/// How many times a put or get may lose a race before it reports corruption (a healthy queue
/// never comes near: each lost race is another process's progress).
const RACE_LIMIT: u32 = 1 << 22;
/// Positions one put or get may walk past (holes left by dropped claims) before it reports
/// corruption; far more than any healthy queue leaves, since holes at the head are skipped
/// as they are made.
const STEP_LIMIT: u64 = 1 << 24;
/// Holes `skip_holes` walks past at most per call.
const HOLE_WALK: u32 = 1024;

fn word(state: u64, who: u64, seq: u64) -> u64 {
    (state << STATE_SHIFT) | ((who & WHO_MASK) << WHO_SHIFT) | (seq & SEQ_MASK)
}
fn state_of(w: u64) -> u64 {
    w >> STATE_SHIFT
}
fn who_of(w: u64) -> usize {
    ((w >> WHO_SHIFT) & WHO_MASK) as usize
}
fn seq_of(w: u64) -> u64 {
    w & SEQ_MASK
}
/// `seq - pos` as a signed 48-bit difference.
fn diff(seq: u64, pos: u64) -> i64 {
    ((seq.wrapping_sub(pos) << (64 - SEQ_BITS)) as i64) >> (64 - SEQ_BITS)
}

/// What a queue holds, from [`Mpmc::view`].
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) enq: u64,
    pub(crate) deq: u64,
    pub(crate) limit: u64,
    pub(crate) closed: bool,
    pub(crate) unfinished: u64,
    pub(crate) taken: u64,
    pub(crate) dropped: u64,
    /// Sleepers announced on the items, space and join bells (hints: a process killed
    /// asleep leaves its count behind).
    pub(crate) items_waiters: u32,
    pub(crate) space_waiters: u32,
    pub(crate) join_waiters: u32,
    /// `(entry index, process, being reclaimed, sides)` of every recorded participant.
    pub(crate) participants: Vec<(usize, ProcessId, bool, u32)>,
    /// Positions of the first waiting items, oldest first (read them with [`Mpmc::data`]).
    pub(crate) waiting: Vec<u64>,
    pub(crate) problem: Option<String>,
}

/// Shared memory failed a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

/// A position claimed for writing or reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) pos: u64,
}

/// Why a claim could not be made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Full (put) or empty (get).
    Busy,
    /// Closed (put), or closed and drained (get).
    Closed,
    Corrupted(Corrupt),
}

impl From<Corrupt> for Fail {
    fn from(c: Corrupt) -> Fail {
        Fail::Corrupted(c)
    }
}

/// Bytes a queue of `capacity` slots of `stride` bytes needs.
pub(crate) fn region_size(capacity: u64, stride: usize) -> Option<usize> {
    usize::try_from(capacity)
        .ok()?
        .checked_mul(stride)?
        .checked_add(SLOTS)
}

/// Whether `capacity` is one the queue accepts: a power of two, 1 to 2^30.
pub(crate) fn valid_capacity(capacity: u64) -> bool {
    capacity.is_power_of_two() && capacity <= MAX_CAPACITY
}

/// The queue over a region laid out as above.
#[derive(Clone, Copy)]
pub(crate) struct Mpmc<'a> {
    region: Region<'a>,
    cap: u64,
    stride: usize,
    limit: u64,
}

impl std::fmt::Debug for Mpmc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpmc")
            .field("cap", &self.cap)
            .field("stride", &self.stride)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<'a> Mpmc<'a> {
    /// The queue in `region`, if the parameters fit it: a valid capacity, and a `stride` that
    /// is a multiple of 8 with room for the slot word.
    pub(crate) fn new(region: Region<'a>, cap: u64, stride: usize) -> Option<Self> {
        if !valid_capacity(cap) || stride % 8 != 0 || stride < 8 {
            return None;
        }
        if region_size(cap, stride)? > region.len() {
            return None;
        }
        Some(Mpmc {
            region,
            cap,
            stride,
            limit: cap,
        })
    }

    /// Writes the initial slot words (a fresh region is all zero otherwise) and the limit.
    pub(crate) fn init(&mut self, limit: u64) {
        for i in 0..self.cap {
            self.slot_word(i).store(word(FREE, 0, i), Ordering::Relaxed);
        }
        self.limit = limit.clamp(1, self.cap);
        self.u64(LIMIT).store(self.limit, Ordering::Relaxed);
    }

    /// Most items held at once, as stored by the creator; `None` if the stored value is out
    /// of range (corrupted). Read once per handle: views take it with [`Mpmc::with_limit`].
    pub(crate) fn stored_limit(&self) -> Option<u64> {
        let limit = self.u64(LIMIT).load(Ordering::Relaxed);
        (1..=self.cap).contains(&limit).then_some(limit)
    }

    /// This view with the limit given (checked once when the handle was made).
    pub(crate) fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit.clamp(1, self.cap);
        self
    }

    fn u64(&self, offset: usize) -> &'a AtomicU64 {
        self.region
            .u64_at(offset)
            .expect("control words lie inside the region (checked in new)")
    }

    fn u32(&self, offset: usize) -> &'a AtomicU32 {
        self.region
            .u32_at(offset)
            .expect("control words lie inside the region (checked in new)")
    }

    fn slot_offset(&self, pos: u64) -> usize {
        // `pos & (cap - 1) < cap`, and `cap * stride` fits the region (checked in new).
        SLOTS + (pos & (self.cap - 1)) as usize * self.stride
    }

    fn slot_word(&self, pos: u64) -> &'a AtomicU64 {
        self.u64(self.slot_offset(pos))
    }

    /// The `stride - 8` bytes of position `pos`'s slot after its word.
    pub(crate) fn data(&self, pos: u64) -> Region<'a> {
        self.region
            .sub(self.slot_offset(pos) + 8, self.stride - 8)
            .expect("slots lie inside the region (checked in new)")
    }

    // ----- participants -----

    /// The participant table.
    pub(crate) fn table(&self) -> Participants<'a> {
        Participants::new(
            self.region
                .sub(PARTICIPANTS, participants::SIZE)
                .expect("the table lies inside the region (checked in new)"),
        )
        .expect("the table has its size")
    }

    fn entry(&self, i: usize) -> &'a AtomicU64 {
        self.table().entry(i)
    }

    /// Gives back every slot of dead participants and frees their entries; then takes a free
    /// entry for this process with `sides` (`participants::PUT | GET`). `None` if all
    /// entries are held by live processes.
    pub(crate) fn attach(&self, sides: u32) -> Option<(usize, participants::Seen)> {
        self.reap_dead();
        self.table().attach(sides)
    }

    /// Lets go of entry `i` (ours), and wakes every sleeper so waiters on the other side
    /// look again at who is left.
    pub(crate) fn detach(&self, i: usize) {
        self.table().detach(i);
        self.wake_everyone();
    }

    /// Wakes every sleeper on both bells (and `join`).
    pub(crate) fn wake_everyone(&self) {
        wait::wake_everyone(&[
            self.u32(ITEMS_BELL),
            self.u32(SPACE_BELL),
            self.u32(JOIN_BELL),
        ]);
    }

    /// Live participants (for tools and for resetting stale waiter counts).
    pub(crate) fn live_participants(&self) -> Vec<ProcessId> {
        let t = self.table();
        (0..MAX_PARTICIPANTS)
            .filter(|&i| t.alive(i))
            .map(|i| Participants::process_of(t.entry(i).load(Ordering::Relaxed)))
            .collect()
    }

    /// Frees the entries of dead processes after giving back their slots. Returns how many.
    pub(crate) fn reap_dead(&self) -> usize {
        let reaped = self
            .table()
            .reap_dead(|i, marked| self.give_back_all(i, marked));
        if reaped > 0 {
            self.wake_everyone();
        }
        reaped
    }

    /// Gives back the slots of participant `who`, whose entry we found as `marked`. Stops as
    /// soon as the entry changes: another reaper finished, and the index may now belong to a
    /// live process whose claims look just like the dead one's.
    fn give_back_all(&self, who: usize, marked: u64) {
        for i in 0..self.cap {
            let w = self.slot_word(i).load(Ordering::Acquire);
            let st = state_of(w);
            if (st == WRITING || st == READING) && who_of(w) == who {
                // A new holder of the index attached (changed the entry) before making this
                // claim, and we read the claim with Acquire: so if the entry still reads
                // `marked` now, the claim is the dead participant's.
                if self.entry(who).load(Ordering::Acquire) != marked {
                    return;
                }
                self.give_back(i, w, true);
            }
        }
    }

    /// Sets a slot left `WRITING`/`READING` by a dead participant to its next lap. `uncount`:
    /// a dropped write also leaves the JoinableQueue's unfinished count.
    fn give_back(&self, pos: u64, w: u64, uncount: bool) -> bool {
        let next = word(FREE, 0, seq_of(w).wrapping_add(self.cap));
        if self
            .slot_word(pos)
            .compare_exchange(w, next, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if state_of(w) == WRITING {
            self.u64(DROPPED).fetch_add(1, Ordering::Relaxed);
            if uncount {
                self.unfinished_sub_one();
            }
        }
        // A hole at the head: move consumers past it now, so it is not counted as an item.
        self.skip_holes(HOLE_WALK);
        self.ring(SPACE_BELL, SPACE_WAITERS);
        self.ring(ITEMS_BELL, ITEMS_WAITERS);
        true
    }

    /// If the slot word `w` is claimed by a participant whose process is dead, gives it back.
    /// Returns whether it did. Costs a `/proc` read: call it on the slow path only.
    fn rescue(&self, pos: u64, w: u64) -> Result<bool, Corrupt> {
        let st = state_of(w);
        if st != WRITING && st != READING {
            return Ok(false);
        }
        let who = who_of(w);
        if who >= MAX_PARTICIPANTS {
            return Err(Corrupt(format!(
                "slot {} names participant {who}, beyond the table of {MAX_PARTICIPANTS}",
                pos & (self.cap - 1)
            )));
        }
        if self.table().alive(who) {
            return Ok(false);
        }
        Ok(self.give_back(pos, w, true))
    }

    // ----- positions -----

    fn check_lap(&self, w: u64, pos: u64) -> Result<i64, Corrupt> {
        let d = diff(seq_of(w), pos);
        if d.rem_euclid(self.cap as i64) != 0 || d < -(self.cap as i64) {
            return Err(Corrupt(format!(
                "slot {} has sequence {} where position {} was expected (capacity {})",
                pos & (self.cap - 1),
                seq_of(w),
                pos & SEQ_MASK,
                self.cap
            )));
        }
        Ok(d)
    }

    /// Moves `at` from `pos` to `pos + 1` if nobody has yet; returns the new value to retry
    /// with.
    fn advance(at: &AtomicU64, pos: u64) -> u64 {
        match at.compare_exchange(pos, pos.wrapping_add(1), Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => pos.wrapping_add(1),
            Err(now) => now,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.u32(CLOSED).load(Ordering::SeqCst) != 0
    }

    /// Closes the queue: later claims to put fail; consumers drain, then see `Closed`.
    pub(crate) fn close(&self) {
        self.u32(CLOSED).store(1, Ordering::SeqCst);
        self.wake_everyone();
    }

    /// Claims the next position for participant `me` to fill. With `deep`, a slot held by a
    /// dead participant is given back first (a `/proc` read; slow path only).
    /// `joinable`: count the item in the JoinableQueue's unfinished tasks, just before the
    /// claim (and uncount it if the claim fails), so a process killed while waiting for room
    /// leaves no count behind.
    pub(crate) fn try_claim_put(
        &self,
        me: usize,
        deep: bool,
        joinable: bool,
    ) -> Result<Claim, Fail> {
        let enq = self.u64(ENQ);
        let mut pos = enq.load(Ordering::Relaxed);
        let (mut lost, mut steps) = (0u32, 0u64);
        loop {
            steps += 1;
            if lost >= RACE_LIMIT || steps >= STEP_LIMIT {
                return Err(Fail::Corrupted(Corrupt(
                    "put made no progress in millions of steps: positions are being rewritten"
                        .into(),
                )));
            }
            let slot = self.slot_word(pos);
            let w = slot.load(Ordering::SeqCst);
            let d = self.check_lap(w, pos)?;
            if d == 0 && state_of(w) == FREE {
                if self.limit < self.cap && self.at_limit(pos) {
                    // A maxsize below the slot count: full at `limit` items.
                    return Err(if self.is_closed() {
                        Fail::Closed
                    } else {
                        Fail::Busy
                    });
                }
                if self.is_closed() {
                    return Err(Fail::Closed);
                }
                if joinable {
                    self.unfinished_add();
                }
                let mine = word(WRITING, me as u64, pos);
                if slot
                    .compare_exchange(w, mine, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
                {
                    if joinable {
                        self.unfinished_sub_one();
                    }
                    lost += 1;
                    continue;
                }
                Self::advance(enq, pos);
                if self.is_closed() {
                    // Closed before our claim was seen: hand the slot on, as if consumed.
                    self.give_back(pos, word(WRITING, me as u64, pos), true);
                    return Err(Fail::Closed);
                }
                return Ok(Claim { pos });
            }
            if d > self.cap as i64 {
                // More than a lap ahead: our position is stale, or the words are forged.
                pos = self.reload_or_corrupt(enq, pos, w)?;
                continue;
            }
            if d >= 0 {
                // Position `pos` is taken (or long done): move on.
                let next = Self::advance(enq, pos);
                lost += u32::from(next != pos.wrapping_add(1));
                pos = next;
                continue;
            }
            // The slot still holds lap `pos - cap`: full, unless `enq` moved meanwhile.
            let now = enq.load(Ordering::SeqCst);
            if now != pos {
                pos = now;
                continue;
            }
            if self.is_closed() {
                return Err(Fail::Closed);
            }
            if deep && self.rescue(pos, w)? {
                continue;
            }
            return Err(Fail::Busy);
        }
    }

    /// Commits a filled claim. `Err` if the claim was taken from us (we were believed dead).
    pub(crate) fn publish(&self, c: Claim, me: usize) -> Result<(), Corrupt> {
        let slot = self.slot_word(c.pos);
        slot.compare_exchange(
            word(WRITING, me as u64, c.pos),
            word(FULL, 0, c.pos),
            Ordering::SeqCst,
            Ordering::Relaxed,
        )
        .map_err(|now| {
            Corrupt(format!(
                "slot {} was taken from its writer (now {now:#x})",
                c.pos & (self.cap - 1)
            ))
        })?;
        self.ring(ITEMS_BELL, ITEMS_WAITERS);
        Ok(())
    }

    /// Gives up a claim to put without committing: the position is skipped (and a
    /// JoinableQueue's item uncounted).
    pub(crate) fn abandon(&self, c: Claim, me: usize) {
        let w = word(WRITING, me as u64, c.pos);
        self.give_back(c.pos, w, true);
    }

    /// Claims the next committed item for participant `me` to take.
    pub(crate) fn try_claim_get(&self, me: usize, deep: bool) -> Result<Claim, Fail> {
        let deq = self.u64(DEQ);
        let mut pos = deq.load(Ordering::Relaxed);
        let (mut lost, mut steps) = (0u32, 0u64);
        loop {
            steps += 1;
            if lost >= RACE_LIMIT || steps >= STEP_LIMIT {
                return Err(Fail::Corrupted(Corrupt(
                    "get made no progress in millions of steps: positions are being rewritten"
                        .into(),
                )));
            }
            let slot = self.slot_word(pos);
            let w = slot.load(Ordering::SeqCst);
            let d = self.check_lap(w, pos)?;
            if d == 0 && state_of(w) == FULL {
                let mine = word(READING, me as u64, pos);
                if slot
                    .compare_exchange(w, mine, Ordering::SeqCst, Ordering::Relaxed)
                    .is_err()
                {
                    lost += 1;
                    continue;
                }
                Self::advance(deq, pos);
                return Ok(Claim { pos });
            }
            // More than a lap ahead is legitimate here: a position left as a hole (a dropped
            // claim behind an item) can see its slot lapped again before consumers reach it.
            if d > 0 {
                // Every position below `enq - cap` is finished: a producer claimed the position
                // a lap later, which needs this one taken or dropped first. Jump there rather
                // than walking hole by hole (a forged `deq` far behind would walk for seconds).
                let floor = self.u64(ENQ).load(Ordering::SeqCst).wrapping_sub(self.cap);
                if (floor.wrapping_sub(pos) as i64) > 0 {
                    pos = match deq.compare_exchange(pos, floor, Ordering::SeqCst, Ordering::SeqCst)
                    {
                        Ok(_) => floor,
                        Err(now) => now,
                    };
                    continue;
                }
            }
            if d > 0 || (d == 0 && state_of(w) == READING) {
                let next = Self::advance(deq, pos);
                lost += u32::from(next != pos.wrapping_add(1));
                pos = next;
                continue;
            }
            // FREE(pos) or WRITING(pos): not there yet; or the slot's previous lap is still
            // being read.
            let now = deq.load(Ordering::SeqCst);
            if now != pos {
                pos = now;
                continue;
            }
            if deep && self.rescue(pos, w)? {
                continue;
            }
            if d == 0 && state_of(w) == FREE && self.is_closed() {
                // Closed, and nobody had claimed `pos` when we looked. Look again after seeing
                // the flag: a producer that claims later sees the flag and backs out, so if the
                // slot is still free now, nothing more will ever arrive.
                if slot.load(Ordering::SeqCst) == w && deq.load(Ordering::SeqCst) == pos {
                    return Err(Fail::Closed);
                }
                continue;
            }
            return Err(Fail::Busy);
        }
    }

    /// Hands a taken slot on to its next lap.
    pub(crate) fn release(&self, c: Claim, me: usize) -> Result<(), Corrupt> {
        self.slot_word(c.pos)
            .compare_exchange(
                word(READING, me as u64, c.pos),
                word(FREE, 0, c.pos.wrapping_add(self.cap)),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .map_err(|now| {
                Corrupt(format!(
                    "slot {} was taken from its reader (now {now:#x})",
                    c.pos & (self.cap - 1)
                ))
            })?;
        self.ring(SPACE_BELL, SPACE_WAITERS);
        Ok(())
    }

    /// A slot is more than a lap ahead of the producers' `pos`: fine if `at` has moved on (we
    /// read it long ago), impossible in a healthy queue if it has not (a slot is lapped only
    /// after its position was claimed, which moves `enq` past it).
    fn reload_or_corrupt(&self, at: &AtomicU64, pos: u64, w: u64) -> Result<u64, Corrupt> {
        let now = at.load(Ordering::SeqCst);
        if now != pos {
            return Ok(now);
        }
        Err(Corrupt(format!(
            "slot {} has sequence {}, more than a lap ahead of position {}",
            pos & (self.cap - 1),
            seq_of(w),
            pos & SEQ_MASK
        )))
    }

    /// Moves `deq` past positions at the head that hold no item any more (dropped claims), at
    /// most `max` of them, so they are not counted as items.
    fn skip_holes(&self, max: u32) {
        let deq = self.u64(DEQ);
        for _ in 0..max {
            let pos = deq.load(Ordering::SeqCst);
            let w = self.slot_word(pos).load(Ordering::SeqCst);
            let d = diff(seq_of(w), pos);
            if d <= 0 || self.check_lap(w, pos).is_err() {
                return;
            }
            Self::advance(deq, pos);
        }
    }

    /// Whether `limit` items sit between the consumers' position and `pos`.
    fn at_limit(&self, pos: u64) -> bool {
        let full = |q: &Self| {
            let deq = q.u64(DEQ).load(Ordering::SeqCst);
            (pos.wrapping_sub(deq) as i64) >= q.limit as i64
        };
        if !full(self) {
            return false;
        }
        self.skip_holes(HOLE_WALK);
        full(self)
    }

    /// Items committed and not yet taken, roughly (positions move while we read them).
    pub(crate) fn len(&self) -> u64 {
        self.skip_holes(64);
        let deq = self.u64(DEQ).load(Ordering::Relaxed);
        let enq = self.u64(ENQ).load(Ordering::Relaxed);
        (enq.wrapping_sub(deq) as i64).clamp(0, self.cap as i64) as u64
    }

    /// Reads the queue without changing anything (relaxed loads only, safe on a read-only
    /// mapping), for tools: counters, participants and up to `peek` waiting positions.
    pub(crate) fn view(&self, peek: usize) -> View {
        let load = |off| self.u64(off).load(Ordering::Relaxed);
        let (enq, deq) = (load(ENQ), load(DEQ));
        let mut v = View {
            enq,
            deq,
            limit: load(LIMIT),
            closed: self.u32(CLOSED).load(Ordering::Relaxed) != 0,
            unfinished: load(UNFINISHED),
            taken: load(TAKEN),
            dropped: load(DROPPED),
            items_waiters: self.u32(ITEMS_WAITERS).load(Ordering::Relaxed),
            space_waiters: self.u32(SPACE_WAITERS).load(Ordering::Relaxed),
            join_waiters: self.u32(JOIN_WAITERS).load(Ordering::Relaxed),
            participants: self.table().list(),
            waiting: Vec::new(),
            problem: None,
        };
        let ahead = enq.wrapping_sub(deq) as i64;
        if !(0..=(self.cap as i64).saturating_mul(2)).contains(&ahead) {
            v.problem = Some(format!(
                "positions enq {enq} and deq {deq} are not within a lap of each other"
            ));
            return v;
        }
        // Walk at most one lap from `deq`: items are the slots that are FULL for their position.
        let mut pos = deq;
        for _ in 0..ahead.min(self.cap as i64) {
            if v.waiting.len() >= peek {
                break;
            }
            let w = self.slot_word(pos).load(Ordering::Relaxed);
            match self.check_lap(w, pos) {
                Err(c) => {
                    v.problem = Some(c.0);
                    break;
                }
                Ok(0) if state_of(w) == FULL => v.waiting.push(pos),
                Ok(_) => {}
            }
            pos = pos.wrapping_add(1);
        }
        v
    }

    /// Items given back from dead or abandoning producers since creation.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.u64(DROPPED).load(Ordering::Relaxed)
    }

    /// The slot word at `pos`, split: `(state, participant, seq)`.
    #[cfg(test)]
    pub(crate) fn slot_state(&self, pos: u64) -> (u64, usize, u64) {
        let w = self.slot_word(pos).load(Ordering::Acquire);
        (state_of(w), who_of(w), seq_of(w))
    }

    // ----- bells -----

    fn ring(&self, bell: usize, waiters: usize) {
        wait::ring_counted(self.u32(bell), self.u32(waiters), false);
    }

    /// Where consumers (`items`) or producers (`!items`) sleep.
    pub(crate) fn sleeper(&self, items: bool) -> Counted<'a> {
        let (bell, waiters) = if items {
            (ITEMS_BELL, ITEMS_WAITERS)
        } else {
            (SPACE_BELL, SPACE_WAITERS)
        };
        Counted {
            bell: self.u32(bell),
            waiters: self.u32(waiters),
        }
    }

    /// Resets waiter counts left by processes that died asleep; call only when no other
    /// participant is alive.
    pub(crate) fn reset_waiters(&self) {
        for w in [ITEMS_WAITERS, SPACE_WAITERS, JOIN_WAITERS] {
            self.u32(w).store(0, Ordering::SeqCst);
        }
    }

    /// A sleeper woken by a waker that gave up (timeout) may leave an item unclaimed while
    /// another consumer sleeps; passing the wake-up on keeps it from waiting for the next
    /// liveness check.
    pub(crate) fn pass_on(&self, items: bool) {
        if items {
            self.ring(ITEMS_BELL, ITEMS_WAITERS);
        } else {
            self.ring(SPACE_BELL, SPACE_WAITERS);
        }
    }

    // ----- JoinableQueue counters -----

    /// Counts an item about to be put.
    pub(crate) fn unfinished_add(&self) {
        self.u64(UNFINISHED).fetch_add(1, Ordering::SeqCst);
    }

    /// Uncounts an item that was not put (or was dropped with its dead producer).
    pub(crate) fn unfinished_sub_one(&self) {
        let u = self.u64(UNFINISHED);
        let mut cur = u.load(Ordering::Relaxed);
        while cur > 0 {
            match u.compare_exchange(cur, cur - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => {
                    if cur == 1 {
                        wait::ring_counted(self.u32(JOIN_BELL), self.u32(JOIN_WAITERS), true);
                    }
                    return;
                }
                Err(now) => cur = now,
            }
        }
    }

    pub(crate) fn unfinished(&self) -> u64 {
        self.u64(UNFINISHED).load(Ordering::SeqCst)
    }

    /// Counts an item taken (to be marked done).
    pub(crate) fn taken_add(&self) {
        self.u64(TAKEN).fetch_add(1, Ordering::SeqCst);
    }

    /// Marks one taken item done. `false` if there is none (more `task_done`s than gets).
    pub(crate) fn task_done(&self) -> bool {
        let t = self.u64(TAKEN);
        let mut cur = t.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return false;
            }
            match t.compare_exchange(cur, cur - 1, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.unfinished_sub_one();
        true
    }

    /// Where `join` sleeps.
    pub(crate) fn join_sleeper(&self) -> Counted<'a> {
        Counted {
            bell: self.u32(JOIN_BELL),
            waiters: self.u32(JOIN_WAITERS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;

    fn queue(words: &[AtomicU64], cap: u64, stride: usize) -> Mpmc<'_> {
        let mut q = Mpmc::new(Region::from_words(words), cap, stride).unwrap();
        q.init(cap);
        q
    }

    #[test]
    fn fifo_through_laps() {
        let mem = heap(region_size(4, 16).unwrap());
        let q = queue(&mem, 4, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        let mut next_get = 0u64;
        for round in 0..10u64 {
            for i in 0..3 {
                let c = q.try_claim_put(me, false, false).unwrap();
                q.data(c.pos)
                    .write(0, &(round * 10 + i).to_ne_bytes())
                    .unwrap();
                q.publish(c, me).unwrap();
            }
            assert_eq!(q.len(), 3);
            for _ in 0..3 {
                let c = q.try_claim_get(me, false).unwrap();
                let mut b = [0u8; 8];
                q.data(c.pos).read(0, &mut b).unwrap();
                let v = u64::from_ne_bytes(b);
                assert_eq!(v, (next_get / 3) * 10 + next_get % 3);
                next_get += 1;
                q.release(c, me).unwrap();
            }
            assert_eq!(q.try_claim_get(me, false), Err(Fail::Busy));
        }
    }

    #[test]
    fn full_then_space() {
        let mem = heap(region_size(2, 16).unwrap());
        let q = queue(&mem, 2, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        for _ in 0..2 {
            let c = q.try_claim_put(me, false, false).unwrap();
            q.publish(c, me).unwrap();
        }
        assert_eq!(q.try_claim_put(me, false, false), Err(Fail::Busy));
        let c = q.try_claim_get(me, false).unwrap();
        // Still full while the item is being read.
        assert_eq!(q.try_claim_put(me, false, false), Err(Fail::Busy));
        q.release(c, me).unwrap();
        assert!(q.try_claim_put(me, false, false).is_ok());
    }

    #[test]
    fn limit_below_capacity() {
        let mem = heap(region_size(4, 16).unwrap());
        let mut q = Mpmc::new(Region::from_words(&mem), 4, 16).unwrap();
        q.init(3);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        for _ in 0..3 {
            let c = q.try_claim_put(me, false, false).unwrap();
            q.publish(c, me).unwrap();
        }
        assert_eq!(q.try_claim_put(me, false, false), Err(Fail::Busy));
        let c = q.try_claim_get(me, false).unwrap();
        q.release(c, me).unwrap();
        assert!(q.try_claim_put(me, false, false).is_ok());
    }

    #[test]
    fn abandoned_put_is_skipped() {
        let mem = heap(region_size(4, 16).unwrap());
        let q = queue(&mem, 4, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        let a = q.try_claim_put(me, false, false).unwrap();
        let b = q.try_claim_put(me, false, false).unwrap();
        q.publish(b, me).unwrap();
        // `a` blocks the head until it is committed or abandoned.
        assert_eq!(q.try_claim_get(me, false), Err(Fail::Busy));
        q.abandon(a, me);
        assert_eq!(q.try_claim_get(me, false).unwrap().pos, b.pos);
        assert_eq!(q.dropped(), 1);
    }

    #[test]
    fn a_hole_lapped_twice_is_skipped_not_corruption() {
        let mem = heap(region_size(4, 16).unwrap());
        let q = queue(&mem, 4, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        let put = |q: &Mpmc<'_>| {
            let c = q.try_claim_put(me, false, false).unwrap();
            q.publish(c, me).unwrap();
            c.pos
        };
        put(&q); // 0
        let hole = q.try_claim_put(me, false, false).unwrap(); // 1, dropped behind item 0
        q.abandon(hole, me);
        let (c2, c3) = (put(&q), put(&q));
        let c = q.try_claim_get(me, false).unwrap(); // takes 0
        q.release(c, me).unwrap();
        let c4 = put(&q);
        let again = q.try_claim_put(me, false, false).unwrap(); // 5: slot 1 lapped again
        q.abandon(again, me);
        for want in [c2, c3, c4] {
            let c = q.try_claim_get(me, false).unwrap();
            assert_eq!(c.pos, want);
            q.release(c, me).unwrap();
        }
        assert_eq!(q.try_claim_get(me, false), Err(Fail::Busy));
    }

    #[test]
    fn a_forged_deq_far_behind_jumps_to_a_lap_behind_enq() {
        let mem = heap(region_size(4, 16).unwrap());
        let q = queue(&mem, 4, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        for _ in 0..3 {
            let c = q.try_claim_put(me, false, false).unwrap();
            q.publish(c, me).unwrap();
        }
        let c = q.try_claim_get(me, false).unwrap(); // takes 0
        q.release(c, me).unwrap();
        // 2^40 positions behind: walking them one by one would hit STEP_LIMIT and report
        // corruption; the jump reaches the waiting items at once.
        q.u64(DEQ)
            .store(1u64.wrapping_sub(1 << 40), Ordering::SeqCst);
        for want in [1, 2] {
            let c = q.try_claim_get(me, false).unwrap();
            assert_eq!(c.pos, want);
            q.release(c, me).unwrap();
        }
        assert_eq!(q.try_claim_get(me, false), Err(Fail::Busy));
    }

    #[test]
    fn close_drains_then_reports_closed() {
        let mem = heap(region_size(4, 16).unwrap());
        let q = queue(&mem, 4, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        let c = q.try_claim_put(me, false, false).unwrap();
        q.publish(c, me).unwrap();
        q.close();
        assert_eq!(q.try_claim_put(me, false, false), Err(Fail::Closed));
        let c = q.try_claim_get(me, false).unwrap();
        q.release(c, me).unwrap();
        assert_eq!(q.try_claim_get(me, false), Err(Fail::Closed));
    }

    #[test]
    #[cfg_attr(miri, ignore = "asks /proc whether a process lives")]
    fn dead_participants_slots_are_given_back() {
        let mem = heap(region_size(4, 16).unwrap());
        let q = queue(&mem, 4, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        // A participant entry of a process that cannot exist (pid 0x3fffff, start 1).
        let ghost = me + 1;
        let dead = ProcessId {
            pid: 0x3f_ffff,
            start_time: 1,
        };
        q.entry(ghost)
            .store(Participants::owner_word(dead), Ordering::Relaxed);
        let w = q.try_claim_put(ghost, false, false).unwrap(); // the ghost's claim, never committed
        let c = q.try_claim_put(me, false, false).unwrap();
        q.publish(c, me).unwrap();
        assert_eq!(q.try_claim_get(me, false), Err(Fail::Busy));
        // The deep path notices the dead claimant and skips its slot.
        assert_eq!(q.try_claim_get(me, true).unwrap().pos, c.pos);
        assert_eq!(q.slot_state(w.pos).0, FREE);
        assert_eq!(q.reap_dead(), 1);
        assert_eq!(q.entry(ghost).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn hostile_words_are_errors() {
        let mem = heap(region_size(4, 16).unwrap());
        let q = queue(&mem, 4, 16);
        let me = q.attach(participants::PUT | participants::GET).unwrap().0;
        q.slot_word(0).store(word(FREE, 0, 3), Ordering::Relaxed);
        assert!(matches!(
            q.try_claim_put(me, false, false),
            Err(Fail::Corrupted(_))
        ));
        q.slot_word(0)
            .store(word(WRITING, 9999, 0), Ordering::Relaxed);
        assert!(matches!(q.try_claim_get(me, true), Err(Fail::Corrupted(_))));
        // Positions are compared with wrapping arithmetic: any starting value works.
        let mut q = q;
        q.init(4);
        q.u64(ENQ).store(u64::MAX - 1, Ordering::Relaxed);
        q.u64(DEQ).store(u64::MAX - 1, Ordering::Relaxed);
        for i in 0..6 {
            let c = q.try_claim_put(me, false, false).unwrap();
            q.data(c.pos).write(0, &[i]).unwrap();
            q.publish(c, me).unwrap();
            let c = q.try_claim_get(me, false).unwrap();
            let mut b = [0u8];
            q.data(c.pos).read(0, &mut b).unwrap();
            assert_eq!(b[0], i);
            q.release(c, me).unwrap();
        }
    }

    #[test]
    fn threads_exactly_once() {
        const PER: u64 = if cfg!(miri) { 40 } else { 20_000 };
        let mem = heap(region_size(8, 16).unwrap());
        let q = queue(&mem, 8, 16);
        let sum = AtomicU64::new(0);
        let count = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let q = &q;
                s.spawn(move || {
                    let me = q.attach(participants::PUT | participants::GET).unwrap().0;
                    for i in 0..PER {
                        let c = loop {
                            match q.try_claim_put(me, false, false) {
                                Ok(c) => break c,
                                Err(Fail::Busy) => std::thread::yield_now(),
                                Err(e) => panic!("{e:?}"),
                            }
                        };
                        q.data(c.pos)
                            .write(0, &(t * PER + i).to_ne_bytes())
                            .unwrap();
                        q.publish(c, me).unwrap();
                    }
                });
            }
            for _ in 0..2 {
                let (q, sum, count) = (&q, &sum, &count);
                s.spawn(move || {
                    let me = q.attach(participants::PUT | participants::GET).unwrap().0;
                    while count.load(Ordering::Relaxed) < 2 * PER {
                        match q.try_claim_get(me, false) {
                            Ok(c) => {
                                let mut b = [0u8; 8];
                                q.data(c.pos).read(0, &mut b).unwrap();
                                q.release(c, me).unwrap();
                                sum.fetch_add(u64::from_ne_bytes(b), Ordering::Relaxed);
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Fail::Busy) => std::thread::yield_now(),
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                });
            }
        });
        let n = 2 * PER;
        assert_eq!(count.load(Ordering::Relaxed), n);
        assert_eq!(sum.load(Ordering::Relaxed), n * (n - 1) / 2);
    }
}
