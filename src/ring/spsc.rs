#![allow(unsafe_code)]
//! A single-producer single-consumer ring of variable-size records in shared memory.
//!
//! Implementation notes. The shape is the classic SPSC ring with cached remote indices
//! (rigtorp's `SPSCQueue`, `rtrb`), but the consumer does not poll the producer's index: it
//! polls the *header word of the next record*, written last with a Release store (Aeron's log
//! buffer, the LMAX Disruptor's per-slot sequence). A small message therefore costs one cache
//! line moving from producer to consumer, not two.
//!
//! Records are 8-byte aligned: a `u64` header, then the payload padded to 8 bytes. The header
//! holds a stamp of the record's position (so a stale or misplaced header is detected) and the
//! length:
//!
//! | bits  | meaning                                                      |
//! |-------|--------------------------------------------------------------|
//! | 63-32 | stamp: `(position >> 3) as u32`                              |
//! | 31    | `PAD`: skip to the start of the buffer (wrap-around)         |
//! | 30    | `VALID`: always set, so a published header is never zero     |
//! | 29-0  | payload length in bytes                                      |
//!
//! Protocol invariant: **the header slot at the producer's tail is always zero.** Before the
//! producer publishes a record it zeroes the slot just after it (where the next header will
//! go); both stores precede the publishing Release store, so a consumer that acquired a record
//! and moves on sees either zero ("nothing yet") or the next real header, never stale bytes of
//! an earlier lap that could look like one. Keeping that slot free costs 8 bytes of slack.
//!
//! A record that does not fit before the end of the buffer is preceded by a `PAD` record
//! that covers the rest of the buffer, so every payload is one contiguous slice. Several
//! records can be published together: all but the first header are stored first, then the
//! first with Release.
//!
//! Positions (`head`, `tail`) are byte counts that only grow (`u64`, never wrap in practice);
//! `position & mask` is the offset in the buffer.
//!
//! Layout (offsets from the ring's base, which is 128-byte aligned):
//!
//! | offset | contents                                                                 |
//! |-------:|--------------------------------------------------------------------------|
//! | 0      | `tail` (`u64`): producer's published position — its own 128-byte block   |
//! | 128    | `head` (`u64`): consumer's released position — its own 128-byte block    |
//! | 256    | control block, written rarely: roles, sleep flags and futex "bells"      |
//! | 384    | the buffer: `capacity` bytes                                             |
//!
//! Control block (`u32` unless noted): 0 producer role, 4 consumer role, 8 producer owner
//! (`u64`: `pid << 40 | start time`), 16 consumer owner (`u64`), 24 producer sleeping, 28 consumer sleeping,
//! 32 producer bell, 36 consumer bell. A role word is `NEVER` (0), `DETACHED` (`u32::MAX`) or
//! the holder's pid.
//!
//! Every value read from shared memory is checked before use: headers against their stamp,
//! length bound and position; the consumer's `head` against the producer's own tail. A failed
//! check is [`Corrupt`], never an out-of-bounds access.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::region::Region;
use crate::sync::park;
use crate::sys::fence;
use crate::sys::process::{self, Liveness, ProcessId};

/// Bytes before the buffer.
pub(crate) const DATA: usize = 384;
/// Smallest buffer.
pub(crate) const MIN_CAPACITY: usize = 64;
/// Largest buffer (lengths must fit in 30 bits, and max message is at most half).
pub(crate) const MAX_CAPACITY: usize = 1 << 31;

const TAIL: usize = 0;
const HEAD: usize = 128;
const CTRL: usize = 256;
const PRODUCER_ROLE: usize = CTRL;
const CONSUMER_ROLE: usize = CTRL + 4;
const PRODUCER_START: usize = CTRL + 8;
const CONSUMER_START: usize = CTRL + 16;
const PRODUCER_SLEEPING: usize = CTRL + 24;
const CONSUMER_SLEEPING: usize = CTRL + 28;
const PRODUCER_BELL: usize = CTRL + 32;
const CONSUMER_BELL: usize = CTRL + 36;

const PAD: u32 = 1 << 31;
const VALID: u32 = 1 << 30;
const LEN_MASK: u32 = VALID - 1;

/// Positions above this are refused at attach: no ring moves 4 EiB, and the bound keeps every
/// position sum far from overflow whatever a peer wrote.
const POSITION_LIMIT: u64 = 1 << 62;

/// What a ring role's words say about its holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleState {
    /// Nobody has taken it yet.
    Never,
    /// A process that is (or may be) alive holds it.
    Held,
    /// Its holder let go or died.
    Gone,
}

/// Whether `capacity` is a ring geometry we accept.
pub(crate) fn valid_capacity(capacity: u64) -> bool {
    capacity.is_power_of_two() && (MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&capacity)
}

/// Bits of the start time kept in a role's owner word (`pid << 40 | start`).
const START_BITS: u32 = 40;
const START_MASK: u64 = (1 << START_BITS) - 1;

/// Role word: nobody has held the role yet.
pub(crate) const NEVER: u32 = 0;
/// Role word: the holder let go (dropped its end).
pub(crate) const DETACHED: u32 = u32::MAX;

/// Bytes a ring of `capacity` occupies.
pub(crate) fn region_size(capacity: usize) -> usize {
    DATA + capacity
}

/// The largest message a ring of `capacity` bytes accepts: its record is half the ring.
pub(crate) fn max_message_for(capacity: u64) -> u64 {
    capacity / 2 - 8
}

/// Bytes a record with a payload of `len` bytes occupies.
#[inline]
pub(crate) fn record_size(len: usize) -> u64 {
    8 + (len as u64).div_ceil(8) * 8
}

#[inline]
fn stamp(pos: u64) -> u32 {
    (pos >> 3) as u32
}

#[inline]
fn encode(pos: u64, len: u32, pad: bool) -> u64 {
    (u64::from(stamp(pos)) << 32) | u64::from(VALID | if pad { PAD } else { 0 } | len)
}

/// Shared memory failed a check; the message says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) String);

/// Which side of the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Producer,
    Consumer,
}

/// A claimed space for one record, not yet published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    /// Where the first header goes (a PAD header if `start != pos`).
    pub(crate) pos: u64,
    /// Where this record's own header goes.
    pub(crate) start: u64,
    /// Payload length.
    pub(crate) len: u32,
    /// The next record's position (its header slot is zeroed on commit).
    pub(crate) end: u64,
}

/// Why a reservation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReserveFail {
    TooLarge,
    Full,
    Corrupt(Corrupt),
}

/// A record at the consumer's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// Position of the payload's first byte.
    pub(crate) data: u64,
    pub(crate) len: u32,
    /// Position after this record: the head once it is released.
    pub(crate) next: u64,
}

/// One ring inside a region: fixed geometry plus the base address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRing<'a> {
    region: Region<'a>,
    cap: u64,
    mask: u64,
    max: u32,
}

impl<'a> RawRing<'a> {
    /// The ring at the start of `region`, if the geometry is sound: capacity a power of two in
    /// range, a record of the largest message at most half of it (so it always fits once the
    /// ring drains, wherever the tail stands), and the region large enough.
    pub(crate) fn new(region: Region<'a>, capacity: u64, max_message: u64) -> Option<Self> {
        if !valid_capacity(capacity) {
            return None;
        }
        let cap = capacity as usize;
        if max_message > max_message_for(capacity) || region.len() < region_size(cap) {
            return None;
        }
        Some(RawRing {
            region,
            cap: capacity,
            mask: capacity - 1,
            max: max_message as u32,
        })
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

    pub(crate) fn max_message(&self) -> u32 {
        self.max
    }

    fn u32(&self, off: usize) -> &'a AtomicU32 {
        // Fixed offsets inside the first DATA bytes, which `new` checked the region holds.
        self.region
            .u32_at(off)
            .expect("ring control offsets are inside the checked region")
    }

    fn u64(&self, off: usize) -> &'a AtomicU64 {
        self.region
            .u64_at(off)
            .expect("ring control offsets are inside the checked region")
    }

    /// The header word at position `pos`.
    #[inline]
    fn word(&self, pos: u64) -> &'a AtomicU64 {
        let p = self.byte_ptr(pos & !7).cast::<AtomicU64>();
        // SAFETY: `byte_ptr` gives an address inside the buffer; with `pos & !7` it is 8-aligned
        // (the buffer starts 8-aligned) and `off + 8 <= cap` (cap is a multiple of 8), so the
        // whole word is inside the buffer, which is valid for `'a`. An AtomicU64 may alias
        // memory other processes change concurrently.
        unsafe { p.as_ref() }
    }

    /// Address of the byte at position `pos` (for payload slices).
    #[inline]
    pub(crate) fn byte_ptr(&self, pos: u64) -> NonNull<u8> {
        // SAFETY: `pos & mask < cap`, so DATA + that offset is inside the checked region.
        unsafe { self.region.as_ptr().add(DATA + (pos & self.mask) as usize) }
    }

    /// The buffer as a region (tests copy records in and out through it).
    #[cfg(test)]
    pub(crate) fn buffer(&self) -> Region<'a> {
        self.region
            .sub(DATA, self.cap as usize)
            .expect("checked in new")
    }

    pub(crate) fn published_tail(&self) -> u64 {
        self.u64(TAIL).load(Ordering::Acquire)
    }

    pub(crate) fn published_head(&self) -> u64 {
        self.u64(HEAD).load(Ordering::Acquire)
    }

    /// The consumer's released position as the shared word says, if it can be a position
    /// (8-aligned, below the limit every other check assumes): for readers that have no
    /// private copy of it (readiness checks), so arithmetic on it cannot overflow.
    pub(crate) fn shared_head(&self) -> Option<u64> {
        Some(self.published_head()).filter(|&h| h % 8 == 0 && h < POSITION_LIMIT)
    }

    /// The producer's published position, checked as [`RawRing::shared_head`].
    pub(crate) fn shared_tail(&self) -> Option<u64> {
        Some(self.published_tail()).filter(|&t| t % 8 == 0 && t < POSITION_LIMIT)
    }

    // ----- roles -----

    fn role_words(&self, side: Side) -> (&'a AtomicU32, &'a AtomicU64) {
        match side {
            Side::Producer => (self.u32(PRODUCER_ROLE), self.u64(PRODUCER_START)),
            Side::Consumer => (self.u32(CONSUMER_ROLE), self.u64(CONSUMER_START)),
        }
    }

    /// The holder recorded in the role words, as far as they agree: the start time is trusted
    /// only if the owner word was written by that very pid (a claimer writes it just after its
    /// CAS, so in between it still describes the previous holder).
    fn holder_of(role_pid: u32, owner: u64) -> ProcessId {
        let start_time = if (owner >> START_BITS) as u32 == role_pid {
            owner & START_MASK
        } else {
            0
        };
        ProcessId {
            pid: role_pid,
            start_time,
        }
    }

    fn owner_word(me: ProcessId) -> u64 {
        (u64::from(me.pid) << START_BITS) | (me.start_time & START_MASK)
    }

    /// Claims `side` for this process. `Err(pid)`: a live process holds it.
    pub(crate) fn claim(&self, side: Side) -> Result<(), u32> {
        let (role, owner) = self.role_words(side);
        let me = process::current();
        fence::register();
        let mut cur = role.load(Ordering::Acquire);
        loop {
            let free = cur == NEVER || cur == DETACHED || {
                let holder = Self::holder_of(cur, owner.load(Ordering::Relaxed));
                if cur == me.pid {
                    // Ours only if recorded by this very process: a previous process with the
                    // same pid (a restarted container) left it behind.
                    holder.start_time != 0 && holder.start_time != (me.start_time & START_MASK)
                } else {
                    process::liveness(holder) == Liveness::Dead
                }
            };
            if !free {
                return Err(cur);
            }
            // Acquire: see everything the previous holder did before letting go.
            match role.compare_exchange(cur, me.pid, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    owner.store(Self::owner_word(me), Ordering::Relaxed);
                    return Ok(());
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Claims `side` only if nobody ever held it (for single-use rings). `Err(word)`: the role
    /// word found, `DETACHED` or a pid (alive or not).
    pub(crate) fn claim_new(&self, side: Side) -> Result<(), u32> {
        let (role, owner) = self.role_words(side);
        let me = process::current();
        fence::register();
        role.compare_exchange(NEVER, me.pid, Ordering::AcqRel, Ordering::Acquire)?;
        owner.store(Self::owner_word(me), Ordering::Relaxed);
        Ok(())
    }

    /// Whether the holder recorded in a role word `pid` may be alive.
    pub(crate) fn role_holder_alive(&self, side: Side, pid: u32) -> bool {
        let (_, owner) = self.role_words(side);
        process::liveness(Self::holder_of(pid, owner.load(Ordering::Relaxed))) == Liveness::Alive
    }

    /// Lets go of `side` (held by this process).
    pub(crate) fn detach(&self, side: Side) {
        let (role, owner) = self.role_words(side);
        let me = process::current();
        if role.load(Ordering::Relaxed) != me.pid
            || owner.load(Ordering::Relaxed) != Self::owner_word(me)
        {
            return; // not ours (a forked child's inherited handle, or taken over)
        }
        owner.store(0, Ordering::Relaxed);
        // Release: everything published before is visible to whoever sees DETACHED.
        if role
            .compare_exchange(me.pid, DETACHED, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            // Whoever sleeps on the other side should notice at once.
            self.ring_bell(side.other());
        }
    }

    /// Whether the peer on `side` is gone: detached, or (with `deep`) its process dead. A
    /// role never yet taken is not "gone" (the peer may still come).
    pub(crate) fn peer_gone(&self, side: Side, deep: bool) -> bool {
        let (role, owner) = self.role_words(side);
        match role.load(Ordering::Acquire) {
            NEVER => false,
            DETACHED => true,
            pid if deep => {
                process::liveness(Self::holder_of(pid, owner.load(Ordering::Relaxed)))
                    == Liveness::Dead
            }
            _ => false,
        }
    }

    /// [`RawRing::peer_gone`] with `deep`, and if the holder on `side` is dead, records that
    /// in the role word (as if it had let go: `DETACHED`, by a compare-exchange from the dead
    /// holder's pid, so a process that claimed the role since is left alone), so every later
    /// cheap check on either side sees it too. For readiness checks (`Select`), whose caller
    /// then makes a non-waiting call that looks only at the cheap flag.
    pub(crate) fn peer_gone_recorded(&self, side: Side) -> bool {
        let (role, owner) = self.role_words(side);
        match role.load(Ordering::Acquire) {
            NEVER => false,
            DETACHED => true,
            pid => {
                let dead = process::liveness(Self::holder_of(pid, owner.load(Ordering::Relaxed)))
                    == Liveness::Dead;
                if dead
                    && role
                        .compare_exchange(pid, DETACHED, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    self.ring_bell(side.other());
                }
                dead
            }
        }
    }

    /// Whether the role on `side` was never taken, is held by a live process, or was let go
    /// (or its holder died).
    pub(crate) fn role_state(&self, side: Side) -> RoleState {
        let (role, owner) = self.role_words(side);
        match role.load(Ordering::Acquire) {
            NEVER => RoleState::Never,
            DETACHED => RoleState::Gone,
            pid => {
                let who = Self::holder_of(pid, owner.load(Ordering::Relaxed));
                if process::liveness(who) == Liveness::Dead {
                    RoleState::Gone
                } else {
                    RoleState::Held
                }
            }
        }
    }

    // ----- sleeping -----

    /// The sleep flag and bell of `side`.
    pub(crate) fn sleep_words(&self, side: Side) -> (&'a AtomicU32, &'a AtomicU32) {
        match side {
            Side::Producer => (self.u32(PRODUCER_SLEEPING), self.u32(PRODUCER_BELL)),
            Side::Consumer => (self.u32(CONSUMER_SLEEPING), self.u32(CONSUMER_BELL)),
        }
    }

    /// Wakes `side` if it may be asleep. The fast path is one relaxed load of a line that is
    /// written only when someone goes to sleep; see `sys::fence` for why no fence is needed.
    #[inline]
    fn wake_if_sleeping(&self, side: Side) {
        fence::light();
        let (sleeping, _) = self.sleep_words(side);
        if sleeping.load(Ordering::Relaxed) != 0 {
            self.ring_bell(side);
        }
    }

    #[cold]
    fn ring_bell(&self, side: Side) {
        let (_, bell) = self.sleep_words(side);
        // Release: pairs with the Acquire load of the bell by the sleeper.
        bell.fetch_add(1, Ordering::Release);
        park::wake_all(bell);
    }

    // ----- producer -----

    /// Finds the producer's true tail after attaching: the published tail, then any records a
    /// previous producer published but died before recording in `tail`.
    /// Returns the tail and the consumer head it was checked against.
    pub(crate) fn recover_tail(&self) -> Result<(u64, u64), Corrupt> {
        let head = self.published_head();
        let published = self.published_tail();
        if published % 8 != 0
            || head % 8 != 0
            || head.abs_diff(published) > self.cap
            || head.max(published) >= POSITION_LIMIT
        {
            return Err(Corrupt(format!(
                "indices head {head}, tail {published} out of order"
            )));
        }
        // A producer that died between publishing a record and storing `tail` leaves `tail`
        // behind; the consumer may even have read past it. Everything before `head` is
        // consumed, so the walk starts at whichever is further.
        let mut tail = published.max(head);
        for _ in 0..self.cap / 8 {
            let w = self.word(tail).load(Ordering::Acquire);
            if w == 0 || (w >> 32) as u32 != stamp(tail) || (w as u32) & VALID == 0 {
                break;
            }
            let len = u64::from(w as u32 & LEN_MASK);
            let next = if w as u32 & PAD != 0 {
                tail + (self.cap - (tail & self.mask))
            } else {
                tail + record_size(len as usize)
            };
            if next - head > self.cap {
                return Err(Corrupt(format!("record at {tail} runs past the ring")));
            }
            tail = next;
        }
        // Nothing is published at the tail: make sure the slot says so.
        self.word(tail).store(0, Ordering::Relaxed);
        self.u64(TAIL).store(tail, Ordering::Release);
        Ok((tail, head))
    }

    /// Claims space for a `len`-byte record after `tail`. `cached_head` is the producer's
    /// private copy of the consumer's head, refreshed only when the ring looks full.
    #[inline]
    pub(crate) fn try_reserve(
        &self,
        tail: u64,
        cached_head: &mut u64,
        len: usize,
    ) -> Result<Reservation, ReserveFail> {
        self.try_reserve_after(tail, tail, cached_head, len)
    }

    /// As [`RawRing::try_reserve`], for a record at `tail` after unpublished records of a
    /// batch that starts at `published`: the consumer's head can never be past `published`
    /// (it has not seen the batch), and a head word that says so is corruption. Without
    /// that bound a forged head inside the batch would let the batch grow past the ring's
    /// capacity and overwrite its own first records.
    #[inline]
    pub(crate) fn try_reserve_after(
        &self,
        tail: u64,
        published: u64,
        cached_head: &mut u64,
        len: usize,
    ) -> Result<Reservation, ReserveFail> {
        if len > self.max as usize {
            return Err(ReserveFail::TooLarge);
        }
        let need = record_size(len);
        let to_end = self.cap - (tail & self.mask);
        let start = if need > to_end { tail + to_end } else { tail };
        let end = start + need;
        // `end + 8`: the slot after the record is zeroed on commit, so it must be free too.
        if end + 8 > *cached_head + self.cap {
            self.refresh_head(published, cached_head)?;
            if end + 8 > *cached_head + self.cap {
                return Err(ReserveFail::Full);
            }
        }
        Ok(Reservation {
            pos: tail,
            start,
            len: len as u32,
            end,
        })
    }

    #[cold]
    fn refresh_head(&self, published: u64, cached_head: &mut u64) -> Result<(), ReserveFail> {
        // Acquire: pairs with the consumer's Release store of head, so the consumer is done
        // reading the bytes we are about to overwrite.
        let head = self.u64(HEAD).load(Ordering::Acquire);
        if head > published || published - head > self.cap || head < *cached_head {
            return Err(ReserveFail::Corrupt(Corrupt(format!(
                "consumer head {head} is not between {} and the producer's tail {published}",
                *cached_head
            ))));
        }
        *cached_head = head;
        Ok(())
    }

    /// Bytes still free after reservation `r`, given the consumer's head.
    pub(crate) fn free_after(&self, r: &Reservation, head: u64) -> u64 {
        (head + self.cap).saturating_sub(r.end + 8)
    }

    /// Room a producer that found the ring full waits for before it resumes.
    pub(crate) fn slack(&self) -> u64 {
        (self.cap / 4).min(64 * 1024)
    }

    /// Writes everything of `r` except its first header; returns that header word.
    #[inline]
    pub(crate) fn prepare(&self, r: &Reservation) -> u64 {
        self.word(r.end).store(0, Ordering::Relaxed);
        if r.start != r.pos {
            self.word(r.start)
                .store(encode(r.start, r.len, false), Ordering::Relaxed);
            encode(r.pos, (r.start - r.pos - 8) as u32, true)
        } else {
            encode(r.pos, r.len, false)
        }
    }

    /// Stores a prepared header without publishing (later records of a batch).
    #[inline]
    pub(crate) fn store_header(&self, pos: u64, word: u64) {
        self.word(pos).store(word, Ordering::Relaxed);
    }

    /// Publishes everything up to `end`: the first header at `pos` (Release), the tail, and
    /// a wake-up if the consumer sleeps.
    #[inline]
    pub(crate) fn publish(&self, pos: u64, word: u64, end: u64) {
        // Release: pairs with the Acquire load in `peek`: the payload, the zeroed next slot
        // and any later headers of the batch are visible to whoever sees this header.
        self.word(pos).store(word, Ordering::Release);
        self.u64(TAIL).store(end, Ordering::Release);
        self.wake_if_sleeping(Side::Consumer);
    }

    // ----- consumer -----

    /// The consumer's starting head after attaching.
    pub(crate) fn recover_head(&self) -> Result<u64, Corrupt> {
        let head = self.published_head();
        let tail = self.published_tail();
        if head % 8 != 0 || head >= POSITION_LIMIT || (tail >= head && tail - head > self.cap) {
            return Err(Corrupt(format!(
                "indices head {head}, tail {tail} out of order"
            )));
        }
        Ok(head)
    }

    /// The record at `head`, if one is published.
    #[inline]
    pub(crate) fn peek(&self, head: u64) -> Result<Option<Record>, Corrupt> {
        let mut pos = head;
        for _ in 0..2 {
            // Acquire: pairs with the Release store in `publish`.
            let w = self.word(pos).load(Ordering::Acquire);
            if w == 0 {
                return Ok(None);
            }
            let low = w as u32;
            if (w >> 32) as u32 != stamp(pos) || low & VALID == 0 {
                return Err(Corrupt(format!(
                    "bad record header {w:#018x} at position {pos}"
                )));
            }
            let len = low & LEN_MASK;
            let off = pos & self.mask;
            if low & PAD != 0 {
                if off == 0 || off + 8 + u64::from(len) != self.cap {
                    return Err(Corrupt(format!(
                        "padding record at {pos} does not end the buffer"
                    )));
                }
                pos += self.cap - off;
                continue;
            }
            let next = pos + record_size(len as usize);
            if len > self.max || off + record_size(len as usize) > self.cap {
                return Err(Corrupt(format!(
                    "record of {len} bytes at {pos} exceeds the ring's limits"
                )));
            }
            return Ok(Some(Record {
                data: pos + 8,
                len,
                next,
            }));
        }
        Err(Corrupt(format!("two padding records in a row at {head}")))
    }

    /// Frees everything before `next` and wakes the producer if it sleeps for space.
    #[inline]
    pub(crate) fn release(&self, next: u64) {
        // Release: pairs with the Acquire in `refresh_head`: we are done with those bytes.
        self.u64(HEAD).store(next, Ordering::Release);
        self.wake_if_sleeping(Side::Producer);
    }
}

/// What a ring holds, read with relaxed loads only (safe on a read-only mapping), for tools.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    /// The consumer's released position and the producer's published one.
    pub(crate) head: u64,
    pub(crate) tail: u64,
    /// `(role word, holder)` of the producer and the consumer.
    pub(crate) producer: (u32, Option<ProcessId>),
    pub(crate) consumer: (u32, Option<ProcessId>),
    /// The first waiting messages, each cut at the asked length, with their full lengths.
    pub(crate) messages: Vec<(usize, Vec<u8>)>,
    /// What is inconsistent, if anything.
    pub(crate) problem: Option<String>,
}

impl RawRing<'_> {
    /// Reads the ring without changing anything: positions, roles and up to `peek` waiting
    /// messages (each cut at `bytes`). Every word is checked as the consumer would.
    pub(crate) fn view(&self, peek: usize, bytes: usize) -> View {
        let role = |side| {
            let (role, owner) = self.role_words(side);
            let r = role.load(Ordering::Relaxed);
            let who = (r != NEVER && r != DETACHED)
                .then(|| Self::holder_of(r, owner.load(Ordering::Relaxed)));
            (r, who)
        };
        let mut v = View {
            head: self.u64(HEAD).load(Ordering::Relaxed),
            tail: self.u64(TAIL).load(Ordering::Relaxed),
            producer: role(Side::Producer),
            consumer: role(Side::Consumer),
            ..View::default()
        };
        if v.head > v.tail || v.tail - v.head > self.cap || v.tail > POSITION_LIMIT {
            v.problem = Some(format!(
                "positions head {} and tail {} are not within one buffer of each other",
                v.head, v.tail
            ));
            return v;
        }
        let mut pos = v.head;
        let mut pads = 0;
        while v.messages.len() < peek && pos < v.tail {
            let w = self.word(pos).load(Ordering::Relaxed);
            let low = w as u32;
            let (len, off) = (low & LEN_MASK, pos & self.mask);
            if w == 0 || (w >> 32) as u32 != stamp(pos) || low & VALID == 0 {
                v.problem = Some(format!("bad record header {w:#018x} at position {pos}"));
                break;
            }
            if low & PAD != 0 {
                pads += 1;
                if pads > 1 || off == 0 || off + 8 + u64::from(len) != self.cap {
                    v.problem = Some(format!("bad padding record at position {pos}"));
                    break;
                }
                pos += self.cap - off;
                continue;
            }
            pads = 0;
            if len > self.max || off + record_size(len as usize) > self.cap {
                v.problem = Some(format!(
                    "record of {len} bytes at position {pos} exceeds the ring's limits"
                ));
                break;
            }
            let mut buf = vec![0; (len as usize).min(bytes)];
            // In bounds: `off + 8 + len <= cap` was checked, and the buffer is `cap` bytes.
            if self
                .region
                .read(DATA + off as usize + 8, &mut buf)
                .is_none()
            {
                v.problem = Some(format!("record at position {pos} leaves the buffer"));
                break;
            }
            v.messages.push((len as usize, buf));
            pos += record_size(len as usize);
        }
        v
    }
}

impl Side {
    pub(crate) fn other(self) -> Side {
        match self {
            Side::Producer => Side::Consumer,
            Side::Consumer => Side::Producer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;
    use std::collections::VecDeque;

    fn ring(buf: &[AtomicU64], cap: u64) -> RawRing<'_> {
        RawRing::new(Region::from_words(buf), cap, max_message_for(cap)).unwrap()
    }

    #[test]
    fn a_forged_head_inside_an_unpublished_batch_is_corruption() {
        // Found by fuzz/ring_image: a head word past the producer's published tail let a
        // batch grow past the ring's capacity over its own first records.
        let buf = heap(region_size(256));
        let r = ring(&buf, 256);
        let (published, mut cached) = (0u64, 0u64);
        let mut tail = published;
        // Reserve (without publishing) until the ring looks full.
        while let Ok(res) = r.try_reserve_after(tail, published, &mut cached, 16) {
            tail = res.end;
        }
        // The consumer's head claims to have read half of the batch.
        r.u64(HEAD).store(tail / 2, Ordering::Release);
        assert!(matches!(
            r.try_reserve_after(tail, published, &mut cached, 16),
            Err(ReserveFail::Corrupt(_))
        ));
    }

    fn write(
        r: &RawRing<'_>,
        tail: &mut u64,
        head: &mut u64,
        msg: &[u8],
    ) -> Result<(), ReserveFail> {
        let res = r.try_reserve(*tail, head, msg.len())?;
        r.buffer()
            .write(((res.start + 8) & r.mask) as usize, msg)
            .unwrap();
        let w = r.prepare(&res);
        r.publish(res.pos, w, res.end);
        *tail = res.end;
        Ok(())
    }

    fn read(r: &RawRing<'_>, head: &mut u64) -> Option<Vec<u8>> {
        let rec = r.peek(*head).unwrap()?;
        let mut out = vec![0; rec.len as usize];
        r.buffer()
            .read((rec.data & r.mask) as usize, &mut out)
            .unwrap();
        r.release(rec.next);
        *head = rec.next;
        Some(out)
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Reserve `len` bytes, fill them, commit.
        Send(usize),
        /// Reserve `len` bytes, fill them, then drop the reservation.
        Abandon(usize),
        /// Receive one message.
        Recv,
        /// Publish several messages with one store.
        Batch(Vec<usize>),
    }

    fn op(max: usize) -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let len = prop_oneof![Just(0), Just(max), 0..=max, 0..16usize];
        prop_oneof![
            len.clone().prop_map(Op::Send),
            len.clone().prop_map(Op::Abandon),
            Just(Op::Recv),
            Just(Op::Recv),
            proptest::collection::vec(len, 1..5).prop_map(Op::Batch),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        #[cfg_attr(miri, ignore)] // too slow under Miri; the fixed model test above runs there
        fn operation_sequences_match_a_vecdeque(cap_log in 6u32..10, ops in proptest::collection::vec(op(56), 1..200)) {
            let cap = 1u64 << cap_log;
            let max = max_message_for(cap) as usize;
            let buf = heap(region_size(cap as usize));
            let r = ring(&buf, cap);
            let (mut tail, mut cached, mut head) = (0u64, 0u64, 0u64);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut n = 0u8;
            let mut next_msg = |len: usize| -> Vec<u8> {
                n = n.wrapping_add(1);
                (0..len).map(|i| n.wrapping_add(i as u8)).collect()
            };
            for op in ops {
                match op {
                    Op::Send(len) => {
                        let len = len.min(max);
                        let msg = next_msg(len);
                        match write(&r, &mut tail, &mut cached, &msg) {
                            Ok(()) => model.push_back(msg),
                            Err(ReserveFail::Full) => proptest::prop_assert!(!model.is_empty(), "full while empty"),
                            Err(e) => proptest::prop_assert!(false, "{e:?}"),
                        }
                    }
                    Op::Abandon(len) => {
                        if let Ok(res) = r.try_reserve(tail, &mut cached, len.min(max)) {
                            // Scribble over the reserved bytes, then walk away.
                            r.buffer().write(((res.start + 8) & r.mask) as usize, &vec![0xEE; res.len as usize]).unwrap();
                        }
                    }
                    Op::Recv => proptest::prop_assert_eq!(read(&r, &mut head), model.pop_front()),
                    Op::Batch(lens) => {
                        let mut first = None;
                        let mut pending = Vec::new();
                        for len in lens {
                            let msg = next_msg(len.min(max));
                            let Ok(res) = r.try_reserve(tail, &mut cached, msg.len()) else { break };
                            r.buffer().write(((res.start + 8) & r.mask) as usize, &msg).unwrap();
                            let w = r.prepare(&res);
                            if first.is_none() { first = Some((res.pos, w)); } else { r.store_header(res.pos, w); }
                            tail = res.end;
                            pending.push(msg);
                        }
                        // Nothing is visible before the batch is published.
                        if model.is_empty() {
                            proptest::prop_assert_eq!(r.peek(head).unwrap(), None);
                        }
                        if let Some((pos, w)) = first {
                            r.publish(pos, w, tail);
                        }
                        model.extend(pending);
                    }
                }
            }
            while let Some(m) = model.pop_front() {
                proptest::prop_assert_eq!(read(&r, &mut head), Some(m));
            }
            proptest::prop_assert_eq!(read(&r, &mut head), None);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // reads /proc, spawns a process
    fn roles_claimed_by_pid_and_start_time_together() {
        let buf = heap(region_size(256));
        let r = ring(&buf, 256);
        let me = process::current();
        let (role, owner) = r.role_words(Side::Producer);
        // Our pid, recorded by an earlier process that had it (a restarted container): free.
        role.store(me.pid, Ordering::Relaxed);
        owner.store(
            (u64::from(me.pid) << START_BITS) | ((me.start_time + 1) & START_MASK),
            Ordering::Relaxed,
        );
        assert_eq!(r.claim(Side::Producer), Ok(()));
        // Now truly ours: a second claim from this process is refused.
        assert_eq!(r.claim(Side::Producer), Err(me.pid));
        // A live holder whose owner word still describes the previous (dead) holder, as
        // between a claimer's CAS and its owner store: not taken over.
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        role.store(child.id(), Ordering::Relaxed);
        owner.store(
            (u64::from(child.id() + 1) << START_BITS) | 5,
            Ordering::Relaxed,
        );
        assert_eq!(r.claim(Side::Producer), Err(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(r.claim(Side::Producer), Ok(()));
    }

    #[test]
    fn geometry_is_checked() {
        let buf = heap(region_size(256));
        let region = Region::from_words(&buf);
        assert!(RawRing::new(region, 256, 120).is_some());
        assert!(RawRing::new(region, 256, 121).is_none());
        assert!(RawRing::new(region, 200, 64).is_none());
        assert!(RawRing::new(region, 512, 64).is_none());
        assert!(RawRing::new(region, 32, 16).is_none());
    }

    #[test]
    fn fifo_with_wraparound_matches_a_model() {
        let buf = heap(region_size(256));
        let r = ring(&buf, 256);
        let (mut tail, mut cached, mut head) = (0, 0, 0);
        let mut model = VecDeque::new();
        let mut n = 0u8;
        for step in 0..if cfg!(miri) { 200 } else { 5000 } {
            let len = (step * 7) % 121;
            let msg: Vec<u8> = (0..len).map(|i| n.wrapping_add(i as u8)).collect();
            if step % 3 != 2 {
                match write(&r, &mut tail, &mut cached, &msg) {
                    Ok(()) => {
                        model.push_back(msg);
                        n = n.wrapping_add(1);
                    }
                    Err(ReserveFail::Full) => {}
                    Err(e) => panic!("{e:?}"),
                }
            } else {
                assert_eq!(read(&r, &mut head), model.pop_front());
            }
        }
        while let Some(m) = model.pop_front() {
            assert_eq!(read(&r, &mut head), Some(m));
        }
        assert_eq!(read(&r, &mut head), None);
    }

    #[test]
    fn too_large_and_full() {
        let buf = heap(region_size(64));
        let r = ring(&buf, 64);
        let (mut tail, mut cached) = (0, 0);
        assert_eq!(
            r.try_reserve(0, &mut cached, 25),
            Err(ReserveFail::TooLarge)
        );
        write(&r, &mut tail, &mut cached, &[1; 24]).unwrap(); // a 32-byte record
        write(&r, &mut tail, &mut cached, &[]).unwrap(); // an 8-byte record
        // 24 more bytes would fit exactly, but not the zeroed slot after them.
        assert_eq!(
            write(&r, &mut tail, &mut cached, &[1; 16]),
            Err(ReserveFail::Full)
        );
        assert_eq!(write(&r, &mut tail, &mut cached, &[1; 8]), Ok(()));
    }

    #[test]
    fn corrupted_headers_and_indices_are_errors() {
        let buf = heap(region_size(128));
        let r = ring(&buf, 128);
        let (mut tail, mut cached) = (0, 0);
        write(&r, &mut tail, &mut cached, b"hello").unwrap();
        let w = r.word(0).load(Ordering::Relaxed);
        for bad in [
            w ^ (1 << 40),
            (w & !u64::from(LEN_MASK)) | 100,
            w & !u64::from(VALID),
            w | u64::from(PAD),
            u64::MAX,
        ] {
            r.word(0).store(bad, Ordering::Relaxed);
            assert!(r.peek(0).is_err(), "{bad:#x} accepted");
        }
        r.word(0).store(w, Ordering::Relaxed);
        assert!(r.peek(0).unwrap().is_some());
        // A consumer head beyond the producer's tail.
        r.u64(HEAD).store(1 << 20, Ordering::Relaxed);
        let mut cached = 0;
        assert!(matches!(
            r.refresh_head(tail, &mut cached),
            Err(ReserveFail::Corrupt(_))
        ));
        assert!(r.recover_tail().is_err());
    }

    #[test]
    fn recover_tail_when_the_consumer_read_past_a_stale_tail() {
        let buf = heap(region_size(256));
        let r = ring(&buf, 256);
        let (mut tail, mut cached, mut head) = (0, 0, 0);
        for _ in 0..3 {
            write(&r, &mut tail, &mut cached, b"abc").unwrap();
        }
        r.u64(TAIL).store(16, Ordering::Relaxed); // the producer died before storing it
        while read(&r, &mut head).is_some() {}
        assert_eq!(r.recover_tail().map(|(t, _)| t), Ok(tail));
    }

    #[test]
    fn recover_tail_finds_records_published_after_the_last_tail_store() {
        let buf = heap(region_size(256));
        let r = ring(&buf, 256);
        let (mut tail, mut cached) = (0, 0);
        for _ in 0..3 {
            write(&r, &mut tail, &mut cached, b"abc").unwrap();
        }
        r.u64(TAIL).store(16, Ordering::Relaxed); // as if the producer died before storing it
        assert_eq!(r.recover_tail().map(|(t, _)| t), Ok(tail));
    }

    #[test]
    fn two_threads_stream_in_order() {
        let buf = heap(region_size(1024));
        let r = ring(&buf, 1024);
        let n: u32 = if cfg!(miri) { 200 } else { 100_000 };
        std::thread::scope(|s| {
            s.spawn(|| {
                let (mut tail, mut cached) = (0, 0);
                for i in 0..n {
                    let len = (i % 37) as usize;
                    let mut msg = i.to_le_bytes().to_vec();
                    msg.resize(4 + len, (i % 251) as u8);
                    while write(&r, &mut tail, &mut cached, &msg).is_err() {
                        std::hint::spin_loop();
                    }
                }
            });
            s.spawn(|| {
                let mut head = 0;
                for i in 0..n {
                    let msg = loop {
                        if let Some(m) = read(&r, &mut head) {
                            break m;
                        }
                        std::hint::spin_loop();
                    };
                    assert_eq!(u32::from_le_bytes(msg[..4].try_into().unwrap()), i);
                    assert_eq!(msg.len(), 4 + (i % 37) as usize);
                    assert!(msg[4..].iter().all(|&b| b == (i % 251) as u8));
                }
            });
        });
    }
}
