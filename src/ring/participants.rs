//! The table of processes attached to a queue: who each is (pid + start time), which sides
//! of the queue it uses, and how many taken tasks it still owes `task_done` for.
//!
//! Layout (offsets from the table's start, bytes):
//!
//! | offset            | what                                                          |
//! |------------------:|---------------------------------------------------------------|
//! | 0                 | `attached[PUT]`: put-side attachments since the last reset    |
//! | 8                 | `attached[GET]`: get-side attachments since the last reset    |
//! | 16                | `departures`: bumped whenever an entry is let go or reaped    |
//! | 24                | `lost`: tasks owed by participants that died                  |
//! | 64                | `entry[MAX]`: `pid << 40 \| start time` (bit 63: reclaiming)  |
//! | 64 + 8·MAX        | `sides[MAX]`: `PUT \| GET` bits of each entry (u32)           |
//! | 64 + 12·MAX       | `owed[MAX]`: tasks taken and not yet marked done (u32)        |
//!
//! An entry is claimed by a CAS from 0, then its `sides` and `owed` are written; it is let go
//! by clearing `sides` and `owed` first, then the entry. A reader that sees a live entry with
//! no sides yet treats it as "not yet a putter or getter", as if it came a moment later.
//!
//! *Sides* answer "can anyone still put (get)?": a get on an empty queue is hopeless once no
//! live participant other than the caller's handle has the put side — but only if some
//! other put-side participant ever attached (since the table was last found empty), so a
//! consumer that starts before its producers waits for them instead of failing. Every value
//! is checked before use; a forged table can make those answers wrong (a wait ends early or
//! goes on), never make anything unsafe.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::region::Region;
use crate::sys::process::{self, Liveness, ProcessId};

/// Processes (handles) that may be attached at once.
pub(crate) const MAX: usize = 256;
/// Bytes the table occupies.
pub(crate) const SIZE: usize = 64 + 16 * MAX;

/// Side bit: the participant puts.
pub(crate) const PUT: u32 = 1;
/// Side bit: the participant gets.
pub(crate) const GET: u32 = 2;

const ATTACHED: usize = 0;
const DEPARTURES: usize = 16;
const LOST: usize = 24;
const ENTRIES: usize = 64;
const SIDES: usize = ENTRIES + 8 * MAX;
const OWED: usize = SIDES + 4 * MAX;

/// Entry: `pid << 40 | start time`; 0 = free.
const START_BITS: u32 = 40;
const START_MASK: u64 = (1 << START_BITS) - 1;
/// Set on an entry while its dead owner's claims are being given back.
pub(crate) const RECLAIMING: u64 = 1 << 63;

/// A view of the table at some offset of a region.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Participants<'a> {
    r: Region<'a>,
}

impl<'a> Participants<'a> {
    /// The table at `region`'s start; `None` if it does not fit.
    pub(crate) fn new(region: Region<'a>) -> Option<Self> {
        (region.len() >= SIZE && region.u64_at(0).is_some()).then_some(Participants { r: region })
    }

    fn u64(&self, offset: usize) -> &'a AtomicU64 {
        self.r
            .u64_at(offset)
            .expect("table size checked in Participants::new")
    }

    fn u32(&self, offset: usize) -> &'a AtomicU32 {
        self.r
            .u32_at(offset)
            .expect("table size checked in Participants::new")
    }

    pub(crate) fn entry(&self, i: usize) -> &'a AtomicU64 {
        self.u64(ENTRIES + i * 8)
    }

    fn sides_word(&self, i: usize) -> &'a AtomicU32 {
        self.u32(SIDES + i * 4)
    }

    fn owed_word(&self, i: usize) -> &'a AtomicU32 {
        self.u32(OWED + i * 4)
    }

    fn attached(&self, side: u32) -> &'a AtomicU64 {
        self.u64(ATTACHED + if side == PUT { 0 } else { 8 })
    }

    pub(crate) fn owner_word(p: ProcessId) -> u64 {
        (u64::from(p.pid) << START_BITS) | (p.start_time & START_MASK)
    }

    pub(crate) fn process_of(entry: u64) -> ProcessId {
        ProcessId {
            pid: ((entry & !RECLAIMING) >> START_BITS) as u32,
            start_time: entry & START_MASK,
        }
    }

    /// Whether the process recorded in entry word `e` lives (ours does, without asking).
    pub(crate) fn entry_alive(e: u64) -> bool {
        e != 0
            && e & RECLAIMING == 0
            && (e == Self::owner_word(process::current())
                || process::liveness(Self::process_of(e)) == Liveness::Alive)
    }

    /// Whether participant `i` is recorded and its process lives.
    pub(crate) fn alive(&self, i: usize) -> bool {
        Self::entry_alive(self.entry(i).load(Ordering::Acquire))
    }

    /// Takes a free entry for this process with `sides`. `None` if all are taken (reap dead
    /// ones first).
    pub(crate) fn attach(&self, sides: u32) -> Option<usize> {
        let me = Self::owner_word(process::current());
        // Read before scanning, so a reset below cannot erase an attachment that raced in.
        let seen = [PUT, GET].map(|s| self.attached(s).load(Ordering::SeqCst));
        let i = (0..MAX).find(|&i| {
            self.entry(i)
                .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        })?;
        self.owed_word(i).store(0, Ordering::Relaxed);
        self.sides_word(i)
            .store(sides & (PUT | GET), Ordering::SeqCst);
        let alone = (0..MAX).all(|j| j == i || !self.alive(j));
        for (k, side) in [PUT, GET].into_iter().enumerate() {
            let mine = u64::from(sides & side != 0);
            // Nobody else is here: forget who came before (a persistent queue reopened after
            // everybody left must not look "abandoned by its producers"). A CAS from the
            // value read before the scan: if anyone attached since, keep counting instead.
            if alone
                && self
                    .attached(side)
                    .compare_exchange(seen[k], mine, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                continue;
            }
            self.attached(side).fetch_add(mine, Ordering::SeqCst);
        }
        Some(i)
    }

    /// Changes the sides of entry `i` (ours).
    pub(crate) fn set_sides(&self, i: usize, sides: u32) {
        let old = self
            .sides_word(i)
            .swap(sides & (PUT | GET), Ordering::SeqCst);
        for side in [PUT, GET] {
            if sides & side != 0 && old & side == 0 {
                self.attached(side).fetch_add(1, Ordering::SeqCst);
            } else if sides & side == 0 && old & side != 0 {
                // Our own attachment with that side is withdrawn, not a departure: it must
                // not make others think a peer of that side came and went.
                let _ =
                    self.attached(side)
                        .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        }
        self.departures().fetch_add(1, Ordering::SeqCst);
    }

    /// Lets go of entry `i` (ours). Tasks it still owes are forgotten: the process did not
    /// die, and may mark them done through another handle.
    pub(crate) fn detach(&self, i: usize) {
        let me = Self::owner_word(process::current());
        if self.entry(i).load(Ordering::Relaxed) != me {
            return;
        }
        self.sides_word(i).store(0, Ordering::SeqCst);
        self.owed_word(i).store(0, Ordering::Relaxed);
        let _ = self
            .entry(i)
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::Relaxed);
        self.departures().fetch_add(1, Ordering::SeqCst);
    }

    /// Frees the entries of dead processes, calling `give_back(i, marked)` first for each
    /// so the owner can hand back what the dead one held (`marked` is the entry with
    /// `RECLAIMING`: the index is not reused meanwhile). Returns how many were freed.
    pub(crate) fn reap_dead(&self, mut give_back: impl FnMut(usize, u64)) -> usize {
        let mut reaped = 0;
        for i in 0..MAX {
            let e = self.entry(i).load(Ordering::Acquire);
            if e == 0 || (e & RECLAIMING == 0 && Self::entry_alive(e)) {
                continue;
            }
            // Mark it so no one takes the index while its claims are being given back; a
            // reclaimer that died half-way leaves the mark, and the next one finishes.
            let marked = e | RECLAIMING;
            if e != marked
                && self
                    .entry(i)
                    .compare_exchange(e, marked, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            give_back(i, marked);
            if self.release_dead(i, marked) {
                reaped += 1;
            }
        }
        reaped
    }

    /// Frees entry `i` of a dead process, found as `marked` (with `RECLAIMING`), after its
    /// claims were given back: its owed tasks count as lost. Returns whether it did.
    pub(crate) fn release_dead(&self, i: usize, marked: u64) -> bool {
        let owed = self.owed_word(i).swap(0, Ordering::SeqCst);
        self.sides_word(i).store(0, Ordering::SeqCst);
        self.u64(LOST).fetch_add(u64::from(owed), Ordering::SeqCst);
        let freed = self
            .entry(i)
            .compare_exchange(marked, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        self.departures().fetch_add(1, Ordering::SeqCst);
        freed
    }

    /// Bumped whenever an entry is let go, reaped or changes sides: waiters that saw it
    /// change look at the sides again.
    pub(crate) fn departures(&self) -> &'a AtomicU32 {
        self.u32(DEPARTURES)
    }

    /// Whether a get (`side == PUT`: is there a putter?) or a put (`GET`) by participant `me`
    /// can still hope: `false` only if some other participant with `side` attached at some
    /// point and none with `side` is alive now. With `deep`, reads `/proc` for each
    /// live-looking entry; without, counts every recorded entry as alive (a few hundred loads,
    /// no system call), which notices handles let go but not processes that died.
    pub(crate) fn other_side_may_come(&self, side: u32, me: usize, deep: bool) -> bool {
        let mine = u64::from(self.sides_word(me).load(Ordering::Relaxed) & side != 0);
        if self.attached(side).load(Ordering::SeqCst) <= mine {
            return true; // nobody else ever came: wait for the first one
        }
        (0..MAX).any(|j| {
            if j == me || self.sides_word(j).load(Ordering::SeqCst) & side == 0 {
                return false;
            }
            let e = self.entry(j).load(Ordering::Acquire);
            if deep {
                Self::entry_alive(e)
            } else {
                e != 0 && e & RECLAIMING == 0
            }
        })
    }

    /// Counts one task taken by participant `i`.
    pub(crate) fn owe(&self, i: usize) {
        self.owed_word(i).fetch_add(1, Ordering::SeqCst);
    }

    /// Marks one task owed by participant `i` done; if `i` owes none, one owed by another
    /// handle of this process (a process may take through one handle and mark done through
    /// another). Across processes the count cannot follow: whoever took a task should mark
    /// it done.
    pub(crate) fn settle(&self, i: usize) {
        let take_one = |j: usize| {
            self.owed_word(j)
                .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        };
        if take_one(i) {
            return;
        }
        let me = Self::owner_word(process::current());
        for j in (0..MAX).filter(|&j| j != i) {
            if self.entry(j).load(Ordering::Relaxed) == me && take_one(j) {
                return;
            }
        }
    }

    /// Tasks lost with dead takers: those of reaped entries, plus those still owed by
    /// entries whose process is dead (a `/proc` read per live-looking entry).
    pub(crate) fn lost(&self) -> u64 {
        let pending: u64 = (0..MAX)
            .filter(|&i| {
                let e = self.entry(i).load(Ordering::Acquire);
                e != 0 && !Self::entry_alive(e)
            })
            .map(|i| u64::from(self.owed_word(i).load(Ordering::SeqCst)))
            .sum();
        self.u64(LOST)
            .load(Ordering::SeqCst)
            .saturating_add(pending)
    }

    /// Forgets `n` lost tasks (they were accounted for).
    pub(crate) fn forget_lost(&self, n: u64) {
        let _ = self
            .u64(LOST)
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |l| {
                Some(l.saturating_sub(n))
            });
    }

    /// Every recorded entry: `(index, process, being reclaimed, sides)`.
    pub(crate) fn list(&self) -> Vec<(usize, ProcessId, bool, u32)> {
        (0..MAX)
            .filter_map(|i| {
                let e = self.entry(i).load(Ordering::Relaxed);
                (e != 0).then(|| {
                    (
                        i,
                        Self::process_of(e),
                        e & RECLAIMING != 0,
                        self.sides_word(i).load(Ordering::Relaxed),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;

    #[test]
    fn sides_decide_whether_the_other_side_may_come() {
        let buf = heap(SIZE);
        let t = Participants::new(Region::from_words(&buf)).unwrap();
        let getter = t.attach(GET).unwrap();
        // No putter ever came: a get waits for the first one.
        assert!(t.other_side_may_come(PUT, getter, true));
        let putter = t.attach(PUT).unwrap();
        assert!(t.other_side_may_come(PUT, getter, true));
        t.detach(putter);
        // A putter came and went: nothing more can come.
        assert!(!t.other_side_may_come(PUT, getter, true));
        // A handle with both sides does not wait on itself.
        let both = t.attach(PUT | GET).unwrap();
        assert!(t.other_side_may_come(PUT, getter, true));
        assert!(!t.other_side_may_come(PUT, both, true));
        t.detach(both);
        t.detach(getter);
        // Alone again: the history is forgotten on the next attach.
        let fresh = t.attach(GET).unwrap();
        assert!(t.other_side_may_come(PUT, fresh, true));
    }

    #[test]
    fn a_task_taken_through_one_handle_may_be_marked_done_through_another() {
        let buf = heap(SIZE);
        let t = Participants::new(Region::from_words(&buf)).unwrap();
        let taker = t.attach(GET).unwrap();
        let marker = t.attach(PUT | GET).unwrap();
        t.owe(taker);
        t.settle(marker);
        assert_eq!(t.owed_word(taker).load(Ordering::SeqCst), 0);
        // With nothing owed anywhere, settling changes nothing.
        t.settle(marker);
        assert_eq!(t.owed_word(marker).load(Ordering::SeqCst), 0);
    }

    #[test]
    fn dead_takers_tasks_are_lost() {
        let buf = heap(SIZE);
        let t = Participants::new(Region::from_words(&buf)).unwrap();
        let me = t.attach(GET).unwrap();
        t.owe(me);
        t.owe(me);
        t.settle(me);
        assert_eq!(t.lost(), 0);
        // A dead process owing 3 tasks (pid 0 is never a user process: dead, without asking
        // /proc, so this runs under Miri too).
        let dead = (0..MAX).find(|&i| i != me).unwrap();
        t.entry(dead).store(
            Participants::owner_word(ProcessId {
                pid: 0,
                start_time: 1,
            }),
            Ordering::SeqCst,
        );
        t.owed_word(dead).store(3, Ordering::SeqCst);
        assert_eq!(t.lost(), 3);
        let e = t.entry(dead).load(Ordering::SeqCst);
        t.entry(dead).store(e | RECLAIMING, Ordering::SeqCst);
        assert!(t.release_dead(dead, e | RECLAIMING));
        assert_eq!(t.lost(), 3);
        t.forget_lost(3);
        assert_eq!(t.lost(), 0);
    }
}
