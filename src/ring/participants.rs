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
/// Set (with `RECLAIMING`) by the one reaper that frees the entry, so that no other reaper
/// clears the entry's words after it has been freed and taken by a new process.
const FREEING: u64 = 1 << 62;

/// What a handle saw when it attached: the attachment counts of each side (put, get) before
/// its own, and whether another live participant of that side was already there. A blocked
/// call compares the counts with these, so history from before it attached (a persistent
/// queue's earlier users) never makes it think the other side came and went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) before: [u64; 2],
    pub(crate) present: [bool; 2],
}

fn side_index(side: u32) -> usize {
    usize::from(side != PUT)
}

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
            pid: ((entry & !(RECLAIMING | FREEING)) >> START_BITS) as u32,
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

    /// Takes a free entry for this process with `sides`, and says what it saw (see
    /// [`Seen`]). `None` if all are taken (reap dead ones first).
    pub(crate) fn attach(&self, sides: u32) -> Option<(usize, Seen)> {
        let me = Self::owner_word(process::current());
        let before = [PUT, GET].map(|s| self.attached(s).load(Ordering::SeqCst));
        let i = (0..MAX).find(|&i| {
            self.entry(i)
                .compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        })?;
        self.owed_word(i).store(0, Ordering::Relaxed);
        self.sides_word(i)
            .store(sides & (PUT | GET), Ordering::SeqCst);
        for side in [PUT, GET] {
            self.attached(side)
                .fetch_add(u64::from(sides & side != 0), Ordering::SeqCst);
        }
        // One that attached before our read of the counts had recorded its sides before its
        // count went up (SeqCst), so this scan sees it.
        let present = [PUT, GET].map(|side| {
            (0..MAX).any(|j| {
                j != i && self.sides_word(j).load(Ordering::SeqCst) & side != 0 && self.alive(j)
            })
        });
        Some((i, Seen { before, present }))
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
    /// claims were given back: its owed tasks count as lost. Returns whether it did. Of
    /// several reapers, only the one that moves the entry to `FREEING` touches its words.
    pub(crate) fn release_dead(&self, i: usize, marked: u64) -> bool {
        let entry = self.entry(i);
        if marked & FREEING != 0 {
            // A reaper died while freeing it: finish (its owed tasks may go uncounted).
            return entry
                .compare_exchange(marked, 0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok();
        }
        let freeing = marked | FREEING;
        if entry
            .compare_exchange(marked, freeing, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return false; // another reaper frees it
        }
        let owed = self.owed_word(i).swap(0, Ordering::SeqCst);
        self.sides_word(i).store(0, Ordering::SeqCst);
        self.u64(LOST).fetch_add(u64::from(owed), Ordering::SeqCst);
        entry.store(0, Ordering::SeqCst);
        self.departures().fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Bumped whenever an entry is let go, reaped or changes sides: waiters that saw it
    /// change look at the sides again.
    pub(crate) fn departures(&self) -> &'a AtomicU32 {
        self.u32(DEPARTURES)
    }

    /// Whether a get (`side == PUT`: is there a putter?) or a put (`GET`) by participant `me`,
    /// which saw `seen` when it attached, can still hope: `false` only if some other
    /// participant with `side` was there or came since, and none with `side` is alive now.
    /// With `deep`, reads `/proc` for each live-looking entry; without, counts every recorded
    /// entry as alive (a few hundred loads, no system call), which notices handles let go but
    /// not processes that died.
    pub(crate) fn other_side_may_come(&self, side: u32, me: usize, seen: Seen, deep: bool) -> bool {
        let k = side_index(side);
        let mine = u64::from(self.sides_word(me).load(Ordering::Relaxed) & side != 0);
        let came = seen.present[k]
            || self.attached(side).load(Ordering::SeqCst) > seen.before[k].saturating_add(mine);
        if !came {
            return true; // nobody else came yet: wait for the first one
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
    /// entries whose process is dead (a `/proc` read per live-looking entry). Taken again if
    /// a reaper moved owed tasks into the lost count meanwhile, so none is counted twice.
    pub(crate) fn lost(&self) -> u64 {
        let mut total = 0;
        for _ in 0..4 {
            let d = self.departures().load(Ordering::SeqCst);
            let pending: u64 = (0..MAX)
                .filter(|&i| {
                    let e = self.entry(i).load(Ordering::Acquire);
                    e != 0 && !Self::entry_alive(e)
                })
                .map(|i| u64::from(self.owed_word(i).load(Ordering::SeqCst)))
                .sum();
            total = self
                .u64(LOST)
                .load(Ordering::SeqCst)
                .saturating_add(pending);
            if self.departures().load(Ordering::SeqCst) == d {
                break;
            }
        }
        total
    }

    /// Takes up to `n` tasks off the lost count (they are being marked done); returns how
    /// many it took.
    pub(crate) fn take_lost(&self, n: u64) -> u64 {
        match self
            .u64(LOST)
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some(l - l.min(n)))
        {
            Ok(l) | Err(l) => l.min(n),
        }
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
        let (getter, gs) = t.attach(GET).unwrap();
        // No putter ever came: a get waits for the first one.
        assert!(t.other_side_may_come(PUT, getter, gs, true));
        let (putter, _) = t.attach(PUT).unwrap();
        assert!(t.other_side_may_come(PUT, getter, gs, true));
        t.detach(putter);
        // A putter came and went: nothing more can come.
        assert!(!t.other_side_may_come(PUT, getter, gs, true));
        assert!(!t.other_side_may_come(PUT, getter, gs, false));
        // A handle with both sides does not wait on itself.
        let (both, bs) = t.attach(PUT | GET).unwrap();
        assert!(t.other_side_may_come(PUT, getter, gs, true));
        // Its own put side does not count: it waits for another putter...
        assert!(t.other_side_may_come(PUT, both, bs, true));
        let (putter, _) = t.attach(PUT).unwrap();
        t.detach(putter);
        // ...and once one came and went, its gets are hopeless.
        assert!(!t.other_side_may_come(PUT, both, bs, true));
        t.detach(both);
        t.detach(getter);
        // History from before a handle attached does not count against it (a persistent
        // queue reopened after its producers left): it waits for a putter.
        let (fresh, fs) = t.attach(GET).unwrap();
        assert!(t.other_side_may_come(PUT, fresh, fs, true));
        // Nor does it for two that attach side by side.
        let (second, ss) = t.attach(GET).unwrap();
        assert!(t.other_side_may_come(PUT, second, ss, true));
        assert!(t.other_side_may_come(PUT, fresh, fs, true));
    }

    #[test]
    fn a_task_taken_through_one_handle_may_be_marked_done_through_another() {
        let buf = heap(SIZE);
        let t = Participants::new(Region::from_words(&buf)).unwrap();
        let (taker, _) = t.attach(GET).unwrap();
        let (marker, _) = t.attach(PUT | GET).unwrap();
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
        let (me, _) = t.attach(GET).unwrap();
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
        // A second reaper of the same entry changes nothing.
        assert!(!t.release_dead(dead, e | RECLAIMING));
        assert_eq!(t.entry(dead).load(Ordering::SeqCst), 0);
        assert_eq!(t.lost(), 3);
        assert_eq!(t.take_lost(2), 2);
        assert_eq!(t.take_lost(5), 1);
        assert_eq!(t.lost(), 0);
    }
}
