//! A double-buffered seqlock: lock-free, never-torn reads of a value of any size, which a
//! writer dying mid-write cannot spoil.
//!
//! Implementation notes: a seqlock (Lameter; Boehm, "Can seqlocks get along with programming
//! language memory models?", for the fence placement) over *two* buffers. Writers serialise on
//! a robust [`RawMutex`], write the inactive buffer under its sequence word, then flip
//! `active`. Readers read the active buffer and retry if its sequence word was odd or changed.
//! Because a writer only ever writes the buffer readers are *not* directed to, a writer killed
//! mid-write leaves the active buffer whole: readers carry on, and the next writer rewrites
//! the half-written buffer (its odd sequence number is simply bumped past).
//!
//! Layout (offsets from the region start):
//!
//! | offset            | field                                   |
//! |-------------------|-----------------------------------------|
//! | 0                 | writer lock ([`RawMutex`], 16 bytes)     |
//! | 16                | `active`: 0 or 1 (`u32`)                 |
//! | 64                | buffer 0: `seq` (`u64`), then the value  |
//! | 64 + stride       | buffer 1: `seq` (`u64`), then the value  |
//!
//! `seq` is odd while a writer is inside that buffer. A reader that keeps failing (a writer
//! storm, or a hostile peer flipping the words) falls back to taking the writer lock, with a
//! short deadline, between further optimistic attempts.
//!
//! Bounds: every wait here takes a deadline. A peer can forge the lock word to name a live
//! process (which then seems to hold the lock forever) and leave the sequence words odd (so no
//! optimistic read succeeds): [`SeqLock::read`] then gives up at its deadline with
//! [`Stopped::TimedOut`], and [`SeqLock::lock`] likewise; an interrupt the thread watches
//! ends either with [`Stopped::Interrupted`]. A lock held by a *dead* process is taken over
//! (by [`RawMutex`]), so only a live holder, honest or forged, can make either wait.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use crate::region::Region;
use crate::sync::mutex::{Locked, RawMutex, Stopped};
use crate::sync::park;

const ACTIVE: usize = 16;
const BUFFERS: usize = 64;
/// Optimistic read attempts before falling back to the writer lock.
const READ_TRIES: u32 = 64;
/// Longest a reader waits for the writer lock before trying optimistically again.
const LOCK_SLICE: Duration = Duration::from_millis(10);

/// Bytes needed for a value of `size` bytes.
pub(crate) fn region_size(size: usize) -> usize {
    BUFFERS + 2 * stride(size)
}

fn stride(size: usize) -> usize {
    (8 + size).div_ceil(64) * 64
}

/// A seqlock cell over a region checked to be `region_size(size)` bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeqLock<'a> {
    lock: RawMutex<'a>,
    active: &'a AtomicU32,
    bufs: [(&'a AtomicU64, Region<'a>); 2],
}

impl<'a> SeqLock<'a> {
    /// The cell for a value of `size` bytes, if `region` is large enough.
    pub(crate) fn new(region: Region<'a>, size: usize) -> Option<Self> {
        let buf = |i: usize| -> Option<(&'a AtomicU64, Region<'a>)> {
            let at = BUFFERS + i * stride(size);
            Some((region.u64_at(at)?, region.sub(at + 8, size)?))
        };
        Some(SeqLock {
            lock: RawMutex::at(region, 0)?,
            active: region.u32_at(ACTIVE)?,
            bufs: [buf(0)?, buf(1)?],
        })
    }

    /// Initial value, before the segment is published: both buffers, so either may be active.
    pub(crate) fn init(&self, bytes: &[u8]) {
        for (_, data) in &self.bufs {
            data.write(0, bytes);
        }
    }

    /// Reads a consistent copy of the value into `out` (exactly `size` bytes), trying until
    /// the deadline that `deadline` returns (`None`: no limit). `deadline` is called only if
    /// the first attempt fails, so the uncontended read costs no clock read.
    ///
    /// Never returns a torn value from honest writers, and never waits for a writer that is
    /// stopped or dead (writers only touch the buffer readers are not sent to). Only a storm
    /// of writes, two or more during each attempt, makes it fall back to taking the writer
    /// lock, and then for at most `LOCK_SLICE` at a time between further optimistic attempts.
    ///
    /// # Errors
    /// [`Stopped::TimedOut`] if the deadline passed without a consistent copy: the writer lock stayed
    /// held by a live process (or a forged word naming one) while the active buffer kept
    /// changing or stayed odd. `out` then holds unspecified bytes.
    #[inline]
    pub(crate) fn read(
        &self,
        out: &mut [u8],
        deadline: impl FnOnce() -> Option<Instant>,
    ) -> Result<(), Stopped> {
        if self.try_read(out) {
            return Ok(());
        }
        self.read_contended(out, deadline())
    }

    #[cold]
    fn read_contended(&self, out: &mut [u8], deadline: Option<Instant>) -> Result<(), Stopped> {
        loop {
            for attempt in 0..READ_TRIES {
                if self.try_read(out) {
                    return Ok(());
                }
                if attempt < READ_TRIES / 2 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            // One slice of waiting for the lock, never past the caller's deadline. Even with
            // the deadline already passed, `RawMutex::lock` makes one attempt, so a reader that
            // was descheduled past its deadline still gets a last chance.
            let slice = park::earliest(deadline, park::deadline_after(LOCK_SLICE));
            match self.read_locked(out, slice) {
                Ok(()) => return Ok(()),
                Err(Stopped::Interrupted) => return Err(Stopped::Interrupted),
                Err(Stopped::TimedOut) => {}
            }
            if park::passed(deadline) {
                return Err(Stopped::TimedOut);
            }
        }
    }

    fn try_read(&self, out: &mut [u8]) -> bool {
        // Acquire: pairs with the Release store of `active` in `write_held`.
        let (seq, data) = self.bufs[(self.active.load(Ordering::Acquire) & 1) as usize];
        // Acquire: pairs with the Release store of the even sequence in `write_held`.
        let s1 = seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return false;
        }
        data.read(0, out);
        // Acquire fence: orders the data loads above before the re-check below (Boehm).
        fence(Ordering::Acquire);
        seq.load(Ordering::Relaxed) == s1
    }

    fn read_locked(&self, out: &mut [u8], deadline: Option<Instant>) -> Result<(), Stopped> {
        // Either way (clean or taken over from a dead writer) no honest writer is inside.
        self.lock.lock(deadline)?;
        self.read_active(out);
        self.lock.unlock();
        Ok(())
    }

    /// Locks out other writers, waiting until `deadline` (`None`: as long as a live holder
    /// keeps the lock). `Locked::OwnerDied` if a writer died holding the lock (the active
    /// buffer is whole regardless).
    ///
    /// # Errors
    /// [`Stopped::TimedOut`] if a live process (or a forged lock word naming one) held the lock until
    /// `deadline`.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Locked, Stopped> {
        self.lock.lock(deadline)
    }

    /// Locks out other writers if no live process holds the lock now.
    pub(crate) fn try_lock(&self) -> Option<Locked> {
        self.lock.try_lock()
    }

    pub(crate) fn unlock(&self) {
        self.lock.unlock();
    }

    /// Copies the active buffer as it is. With the lock held this is the current value;
    /// without it (the last resort of a bounded read) it is whatever the buffer holds, which
    /// a writer, honest or not, may be changing at the same time.
    pub(crate) fn read_active(&self, out: &mut [u8]) {
        // Acquire: pairs with the Release store of `active` in `write_held`, for the unlocked
        // last resort; under the lock, the lock's own Acquire already orders it.
        let (_, data) = self.bufs[(self.active.load(Ordering::Acquire) & 1) as usize];
        data.read(0, out);
    }

    /// Publishes a new value; call with the lock held.
    pub(crate) fn write_held(&self, bytes: &[u8]) {
        let next = 1 - (self.active.load(Ordering::Relaxed) & 1) as usize;
        let (seq, data) = self.bufs[next];
        let odd = seq.load(Ordering::Relaxed) | 1;
        seq.store(odd, Ordering::Relaxed);
        // Release fence: a reader that sees any of the data stores below also sees `odd`.
        fence(Ordering::Release);
        data.write(0, bytes);
        // Release: pairs with the Acquire load of `seq` in `try_read`.
        seq.store(odd.wrapping_add(1), Ordering::Release);
        // Release: pairs with the Acquire load of `active` in `try_read`.
        self.active.store(next as u32, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;

    /// No deadline: the old unbounded read, for honest-writer tests.
    fn read(cell: &SeqLock<'_>, out: &mut [u8]) {
        cell.read(out, || None).unwrap();
    }

    fn write(cell: &SeqLock<'_>, bytes: &[u8]) {
        cell.lock(None).unwrap();
        cell.write_held(bytes);
        cell.unlock();
    }

    /// Forges what a hostile peer would: the lock word naming a live process (this one, which
    /// `RawMutex` never takes over from) and odd sequence words on both buffers.
    fn forge(region: Region<'_>, lock: bool, odd: bool) {
        if lock {
            region
                .u32_at(0)
                .unwrap()
                .store(std::process::id(), Ordering::Relaxed);
        }
        if odd {
            let cell = SeqLock::new(region, 16).unwrap();
            for (seq, _) in cell.bufs {
                seq.store(7, Ordering::Relaxed);
            }
        }
    }

    fn soon() -> Option<Instant> {
        Some(Instant::now() + Duration::from_millis(if cfg!(miri) { 5 } else { 30 }))
    }

    #[test]
    fn concurrent_reads_are_never_torn() {
        const SIZE: usize = 40;
        let buf = heap(region_size(SIZE));
        let region = Region::from_words(&buf);
        let cell = SeqLock::new(region, SIZE).unwrap();
        cell.init(&[0; SIZE]);
        let rounds = if cfg!(miri) { 30 } else { 20_000 };
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=rounds {
                    write(&cell, &[(i % 251) as u8; SIZE]);
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    let mut out = [0u8; SIZE];
                    for _ in 0..rounds {
                        read(&cell, &mut out);
                        assert!(out.iter().all(|&b| b == out[0]), "torn read {out:?}");
                    }
                });
            }
        });
    }

    #[test]
    fn half_written_inactive_buffer_is_ignored() {
        let buf = heap(region_size(16));
        let cell = SeqLock::new(Region::from_words(&buf), 16).unwrap();
        cell.init(&[1; 16]);
        // A writer "dies" half-way through buffer 1: odd sequence, partial data.
        let (seq, data) = cell.bufs[1];
        seq.store(1, Ordering::Relaxed);
        data.write(0, &[9; 8]);
        let mut out = [0u8; 16];
        read(&cell, &mut out);
        assert_eq!(out, [1; 16]);
        write(&cell, &[2; 16]);
        read(&cell, &mut out);
        assert_eq!(out, [2; 16]);
    }

    #[test]
    fn too_small_region_is_refused() {
        let buf = heap(BUFFERS + stride(16) + 8 + 16 - 8);
        assert!(SeqLock::new(Region::from_words(&buf), 16).is_none());
    }

    #[test]
    fn read_times_out_on_forged_lock_and_odd_buffers() {
        let buf = heap(region_size(16));
        let region = Region::from_words(&buf);
        let cell = SeqLock::new(region, 16).unwrap();
        cell.init(&[3; 16]);
        forge(region, true, true);
        let mut out = [0u8; 16];
        assert_eq!(cell.read(&mut out, soon), Err(Stopped::TimedOut));
        // The last resort still copies the active buffer, whole here.
        cell.read_active(&mut out);
        assert_eq!(out, [3; 16]);
    }

    #[test]
    fn read_with_a_passed_deadline_still_tries_once() {
        let buf = heap(region_size(16));
        let region = Region::from_words(&buf);
        let cell = SeqLock::new(region, 16).unwrap();
        cell.init(&[4; 16]);
        let past = || Some(Instant::now());
        let mut out = [0u8; 16];
        // Uncontended: the optimistic read needs no deadline at all.
        assert_eq!(cell.read(&mut out, || unreachable!()), Ok(()));
        // Odd buffers but a free lock: the locked read succeeds even past the deadline.
        forge(region, false, true);
        out = [0; 16];
        assert_eq!(cell.read(&mut out, past), Ok(()));
        assert_eq!(out, [4; 16]);
    }

    #[test]
    fn forged_lock_alone_does_not_delay_reads() {
        let buf = heap(region_size(16));
        let region = Region::from_words(&buf);
        let cell = SeqLock::new(region, 16).unwrap();
        cell.init(&[5; 16]);
        forge(region, true, false);
        let mut out = [0u8; 16];
        // With no deadline at all: a regression would hang here (the test harness's own
        // timeout is the watchdog), since the optimistic read must succeed.
        assert_eq!(cell.read(&mut out, || None), Ok(()));
        assert_eq!(out, [5; 16]);
    }

    #[test]
    fn lock_with_deadline_times_out_on_forged_lock() {
        let buf = heap(region_size(16));
        let region = Region::from_words(&buf);
        let cell = SeqLock::new(region, 16).unwrap();
        forge(region, true, false);
        assert_eq!(cell.try_lock(), None);
        assert_eq!(cell.lock(soon()), Err(Stopped::TimedOut));
        // Freed, the lock works again.
        region.u32_at(0).unwrap().store(0, Ordering::Relaxed);
        assert_eq!(cell.try_lock(), Some(Locked::Clean));
        cell.write_held(&[6; 16]);
        cell.unlock();
        let mut out = [0u8; 16];
        read(&cell, &mut out);
        assert_eq!(out, [6; 16]);
    }

    #[test]
    fn reader_survives_a_writer_that_flips_words_at_random() {
        // A hostile writer rewrites `active` and both sequence words without the lock while a
        // bounded reader runs: the reader returns (Ok or TimedOut), never hangs or panics.
        let buf = heap(region_size(16));
        let region = Region::from_words(&buf);
        let cell = SeqLock::new(region, 16).unwrap();
        cell.init(&[8; 16]);
        let stop = AtomicU32::new(0);
        let rounds = if cfg!(miri) { 5 } else { 200 };
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut x = 1u64;
                while stop.load(Ordering::Relaxed) == 0 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    cell.active.store((x >> 33) as u32, Ordering::Relaxed);
                    cell.bufs[0].0.store(x >> 7, Ordering::Relaxed);
                    cell.bufs[1].0.store(x >> 11, Ordering::Relaxed);
                    std::hint::spin_loop();
                }
            });
            let mut out = [0u8; 16];
            for _ in 0..rounds {
                let deadline = Instant::now() + Duration::from_millis(2);
                let _ = cell.read(&mut out, || Some(deadline));
            }
            stop.store(1, Ordering::Relaxed);
        });
    }
}
