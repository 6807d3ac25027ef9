//! A manual-reset event word in shared memory (`multiprocessing.Event` semantics).
//!
//! | word      | meaning                                                 |
//! |-----------|---------------------------------------------------------|
//! | `flag`    | 0 clear, anything else set (the futex word)             |
//! | `waiters` | processes/threads that may be asleep on `flag` (a hint) |
//!
//! `set` wakes every sleeper, but only enters the kernel when `waiters` is non-zero; the
//! SeqCst pairing is the one described in [`super::semaphore`]. Crash safety: no state is
//! owned, so a process dying at any point leaves the event usable; a dead waiter only leaves
//! `waiters` too high, costing a needless wake syscall.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::park::{self, Interrupted, Wake};
use crate::region::Region;

/// Bytes a `RawEvent` occupies in a region.
pub(crate) const SIZE: usize = 8;

const CLEAR: u32 = 0;
const SET: u32 = 1;

/// The event words: `flag` at 0, `waiters` at 4.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawEvent<'a> {
    flag: &'a AtomicU32,
    waiters: &'a AtomicU32,
}

impl<'a> RawEvent<'a> {
    pub(crate) fn at(region: Region<'a>, offset: usize) -> Option<Self> {
        Some(RawEvent {
            flag: region.u32_at(offset)?,
            waiters: region.u32_at(offset.checked_add(4)?)?,
        })
    }

    /// Acquire: pairs with the SeqCst swap in `set`, so what the setter wrote first is visible.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire) != CLEAR
    }

    /// As [`RawEvent::is_set`] with a relaxed load, for tools (safe on read-only pages).
    pub(crate) fn peek_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed) != CLEAR
    }

    /// Processes/threads announced asleep on the flag (a hint), for tools: a relaxed load,
    /// safe on a read-only mapping.
    /// The flag (a multi-wait sleeps on it) and the waiter count (it counts itself there).
    pub(crate) fn words(&self) -> (&'a AtomicU32, &'a AtomicU32) {
        (self.flag, self.waiters)
    }

    pub(crate) fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self) {
        // SeqCst: Dekker pairing with `wait` (module notes); also a release for `is_set`.
        let was = self.flag.swap(SET, Ordering::SeqCst);
        if was == CLEAR && self.waiters.load(Ordering::SeqCst) > 0 {
            park::wake_all(self.flag);
        }
    }

    pub(crate) fn clear(&self) {
        self.flag.store(CLEAR, Ordering::Relaxed);
    }

    /// Waits until set or `deadline`; returns whether the event is set.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        if self.is_set() || park::spin_until(|| self.is_set()) {
            return Ok(true);
        }
        self.wait_slow(deadline)
    }

    #[cold]
    fn wait_slow(&self, deadline: Option<Instant>) -> Result<bool, Interrupted> {
        // SeqCst: Dekker pairing with `set`.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let set = loop {
            if self.flag.load(Ordering::SeqCst) != CLEAR {
                break Ok(true);
            }
            match park::sleep(self.flag, CLEAR, deadline) {
                Wake::TimedOut => break Ok(self.is_set()),
                Wake::Interrupted => break Err(Interrupted),
                Wake::Retry => {}
            }
        };
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;
    use std::time::Duration;

    #[test]
    fn set_clear_wait() {
        let buf = heap(8);
        let e = RawEvent::at(Region::from_words(&buf), 0).unwrap();
        assert!(!e.is_set());
        assert_eq!(
            e.wait(Some(Instant::now() + Duration::from_millis(5))),
            Ok(false)
        );
        e.set();
        assert!(e.is_set());
        assert_eq!(e.wait(None), Ok(true));
        e.clear();
        assert!(!e.is_set());
    }

    #[test]
    fn set_wakes_all_sleepers() {
        let buf = heap(8);
        let e = RawEvent::at(Region::from_words(&buf), 0).unwrap();
        std::thread::scope(|s| {
            let ts: Vec<_> = (0..3)
                .map(|_| s.spawn(|| e.wait(Some(Instant::now() + Duration::from_secs(20)))))
                .collect();
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
            e.set();
            for t in ts {
                assert_eq!(t.join().unwrap(), Ok(true));
            }
        });
    }
}
