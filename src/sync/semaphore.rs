//! A counting semaphore word in shared memory.
//!
//! Implementation notes: the count is the futex word; a separate waiter count lets `release`
//! skip the `futex_wake` syscall when nobody sleeps (the "waiter flag" of CloudWeGo shmipc and
//! of std's futex primitives). The waiter's `waiters += 1; load count` and the releaser's
//! `count += 1; load waiters` are all SeqCst, so at least one of them sees the other
//! (Dekker): no wake-up is lost.
//!
//! | word      | meaning                                                      |
//! |-----------|--------------------------------------------------------------|
//! | `count`   | permits available, `0..=max`                                  |
//! | `waiters` | processes/threads that may be asleep on `count` (a hint only) |
//!
//! Crash safety: a permit held by a process that dies is not returned (semaphores have no
//! owner, as in POSIX). A waiter that dies leaves `waiters` too high, which only costs later
//! releases a needless wake syscall; one that dies after being woken, before taking its
//! permit, delays the next waiter by at most `RECHECK` (waiters look again unsignalled).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::park::{self, Interrupted, Wake};
use crate::region::Region;

/// Longest a waiter sleeps before looking at the count again unsignalled.
const RECHECK: Duration = Duration::from_millis(50);

/// Bytes a `RawSemaphore` occupies in a region.
pub(crate) const SIZE: usize = 8;

/// The semaphore words: `count` at 0, `waiters` at 4.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawSemaphore<'a> {
    count: &'a AtomicU32,
    waiters: &'a AtomicU32,
}

impl<'a> RawSemaphore<'a> {
    pub(crate) fn at(region: Region<'a>, offset: usize) -> Option<Self> {
        Some(RawSemaphore {
            count: region.u32_at(offset)?,
            waiters: region.u32_at(offset.checked_add(4)?)?,
        })
    }

    pub(crate) fn init(&self, value: u32) {
        self.count.store(value, Ordering::Relaxed);
    }

    pub(crate) fn value(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Processes/threads announced asleep on the count (a hint), for tools: a relaxed load,
    /// safe on a read-only mapping.
    /// The count (a multi-wait sleeps on it) and the waiter count (it counts itself there).
    pub(crate) fn words(&self) -> (&'a AtomicU32, &'a AtomicU32) {
        (self.count, self.waiters)
    }

    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }

    /// Takes a permit if one is available.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let mut c = self.count.load(Ordering::Relaxed);
        while c > 0 {
            // Acquire: pairs with the release in `release`, so what the releaser wrote before
            // handing back the permit is visible.
            match self
                .count
                .compare_exchange_weak(c, c - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => c = now,
            }
        }
        false
    }

    /// Takes a permit, waiting until `deadline`. Returns whether one was taken.
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        if self.try_acquire() || park::spin_until(|| self.try_acquire()) {
            return Ok(true);
        }
        self.acquire_slow(deadline)
    }

    #[cold]
    fn acquire_slow(&self, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        // SeqCst: Dekker pairing with `release` (see the module notes).
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let got = loop {
            if self.count.load(Ordering::SeqCst) > 0 {
                if self.try_acquire() {
                    break Ok(true);
                }
                // Lost the race (or a peer keeps rewriting the count): never past the deadline.
                if park::passed(deadline) {
                    break Ok(false);
                }
                continue;
            }
            // Wake now and then even unsignalled: a waiter that was woken and then killed
            // before taking its permit must not strand the others.
            let nap = park::earliest(deadline, Some(Instant::now() + RECHECK));
            match park::sleep(self.count, 0, nap) {
                Wake::TimedOut if park::passed(deadline) => break Ok(self.try_acquire()),
                Wake::Interrupted => break Err(Interrupted),
                _ => {}
            }
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        got
    }

    /// Returns a permit, unless the count is already `max`.
    pub(crate) fn release(&self, max: u32) -> Result<(), ()> {
        // SeqCst: the RMW is the releaser's half of the Dekker pairing; it is also a release,
        // pairing with the Acquire in `try_acquire`.
        self.count
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |c| {
                (c < max).then(|| c + 1)
            })
            .map_err(|_| ())?;
        if self.waiters.load(Ordering::SeqCst) > 0 {
            park::wake(self.count, 1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;
    use std::time::Duration;

    #[test]
    fn counts_and_bounds() {
        let buf = heap(8);
        let s = RawSemaphore::at(Region::from_words(&buf), 0).unwrap();
        s.init(2);
        assert!(s.try_acquire());
        assert!(s.try_acquire());
        assert!(!s.try_acquire());
        assert_eq!(
            s.acquire(Some(Instant::now() + Duration::from_millis(5))),
            Ok(false)
        );
        s.release(2).unwrap();
        s.release(2).unwrap();
        assert_eq!(s.release(2), Err(()));
        assert_eq!(s.value(), 2);
    }

    #[test]
    fn waiter_notices_a_permit_that_came_without_a_wake() {
        // As after a woken waiter died before taking its permit: count 1, nobody rings.
        let buf = heap(8);
        let s = RawSemaphore::at(Region::from_words(&buf), 0).unwrap();
        std::thread::scope(|scope| {
            let t = scope.spawn(|| s.acquire(Some(Instant::now() + Duration::from_secs(20))));
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
            s.init(1);
            assert_eq!(t.join().unwrap(), Ok(true));
        });
    }

    #[test]
    fn release_wakes_sleeper() {
        let buf = heap(8);
        let s = RawSemaphore::at(Region::from_words(&buf), 0).unwrap();
        std::thread::scope(|scope| {
            let t = scope.spawn(|| s.acquire(Some(Instant::now() + Duration::from_secs(20))));
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
            s.release(u32::MAX).unwrap();
            assert_eq!(t.join().unwrap(), Ok(true));
        });
        assert_eq!(s.value(), 0);
    }
}
