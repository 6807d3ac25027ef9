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

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use crate::region::Region;
use crate::sync::mutex::{Locked, RawMutex};

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

    /// Reads the value into `out` (exactly `size` bytes). Never returns a torn value from
    /// honest writers, and never waits for a writer that is stopped or dead (writers only
    /// touch the buffer readers are not sent to). Only a storm of writes, two or more during
    /// each attempt, makes it fall back to taking the writer lock, and then for at most
    /// `LOCK_SLICE` at a time between further optimistic attempts.
    pub(crate) fn read(&self, out: &mut [u8]) {
        loop {
            for attempt in 0..READ_TRIES {
                if self.try_read(out) {
                    return;
                }
                if attempt < READ_TRIES / 2 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if self.read_locked(out) {
                return;
            }
        }
    }

    fn try_read(&self, out: &mut [u8]) -> bool {
        // Acquire: pairs with the Release store of `active` in `write`.
        let (seq, data) = self.bufs[(self.active.load(Ordering::Acquire) & 1) as usize];
        // Acquire: pairs with the Release store of the even sequence in `write`.
        let s1 = seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return false;
        }
        data.read(0, out);
        // Acquire fence: orders the data loads above before the re-check below (Boehm).
        fence(Ordering::Acquire);
        seq.load(Ordering::Relaxed) == s1
    }

    fn read_locked(&self, out: &mut [u8]) -> bool {
        // Either way (clean or taken over from a dead writer) no honest writer is inside.
        if self.lock.lock(Some(Instant::now() + LOCK_SLICE)).is_err() {
            return false;
        }
        let (_, data) = self.bufs[(self.active.load(Ordering::Relaxed) & 1) as usize];
        data.read(0, out);
        self.lock.unlock();
        true
    }

    /// Locks out other writers; `Locked::OwnerDied` if a writer died holding the lock (the
    /// active buffer is whole regardless).
    pub(crate) fn lock(&self) -> Locked {
        // TEMPORARY (until the bounded Value API lands): an interrupt cannot end this wait.
        loop {
            match self.lock.lock(None) {
                Ok(how) => return how,
                Err(_) => std::thread::sleep(crate::sys::futex::SLICE),
            }
        }
    }

    pub(crate) fn unlock(&self) {
        self.lock.unlock();
    }

    /// Reads the active buffer; call with the lock held.
    pub(crate) fn read_held(&self, out: &mut [u8]) {
        let (_, data) = self.bufs[(self.active.load(Ordering::Relaxed) & 1) as usize];
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
                    cell.lock();
                    cell.write_held(&[(i % 251) as u8; SIZE]);
                    cell.unlock();
                }
            });
            for _ in 0..2 {
                s.spawn(|| {
                    let mut out = [0u8; SIZE];
                    for _ in 0..rounds {
                        cell.read(&mut out);
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
        cell.read(&mut out);
        assert_eq!(out, [1; 16]);
        cell.lock();
        cell.write_held(&[2; 16]);
        cell.unlock();
        cell.read(&mut out);
        assert_eq!(out, [2; 16]);
    }

    #[test]
    fn too_small_region_is_refused() {
        let buf = heap(BUFFERS + stride(16) + 8 + 16 - 8);
        assert!(SeqLock::new(Region::from_words(&buf), 16).is_none());
    }
}
