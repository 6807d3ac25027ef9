//! The one wait strategy: spin briefly, yield a little, then sleep on the futex.
//!
//! On a 2-core machine a waiter that spins for long starves the very process it waits for, so
//! the spin is bounded (about a microsecond or two) and every blocking path ends in
//! [`sleep`], which uses no CPU until woken or until its deadline.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

pub(crate) use crate::sys::clock::{deadline_after, earliest};
pub(crate) use crate::sys::futex::{Wake, wake, wake_all};

/// A blocking call was ended by an interrupt word this thread watches
/// ([`crate::sys::interrupt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interrupted;

/// Spin rounds before yielding: round `i` spins `2^i` times (1 + 2 + ... + 64 = 127 pauses).
const SPIN_ROUNDS: u32 = 7;
/// `sched_yield` calls after spinning, before the caller parks.
const YIELDS: u32 = 2;

/// Polls `done` with a short bounded spin and a couple of yields. Returns whether `done`
/// became true; if not, the caller should [`sleep`].
#[inline]
pub(crate) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for round in 0..SPIN_ROUNDS {
        if done() {
            return true;
        }
        for _ in 0..(1u32 << round) {
            std::hint::spin_loop();
        }
    }
    for _ in 0..YIELDS {
        if done() {
            return true;
        }
        std::thread::yield_now();
    }
    done()
}

/// Whether `deadline` has passed.
pub(crate) fn passed(deadline: Option<Instant>) -> bool {
    crate::sys::clock::passed(deadline, Instant::now())
}

/// Sleeps while `*word == expected`, until woken or `deadline`.
#[inline]
pub(crate) fn sleep(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
    crate::sys::futex::wait(word, expected, deadline)
}
