//! Futex wait/wake on an `AtomicU32` that may live in memory shared between processes.
//!
//! The futexes are *shared* (no `FUTEX_PRIVATE_FLAG`): the kernel keys them by the backing
//! page, so a waiter in one process is woken by a waker in another that maps the same segment.
//! Both functions are safe: a `&AtomicU32` is always a valid, aligned futex word, and the
//! kernel only ever compares and sleeps on it.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::thread::futex;

/// Why a [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, interrupted, or the word did not hold `expected`: the caller rechecks its state.
    Retry,
    /// The deadline passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, at most until `deadline` (`None`: no limit).
///
/// Spurious wake-ups are possible and harmless: callers loop over their own condition.
/// `EINTR` comes back as [`Wake::Retry`], so a signal never ends a wait early as a timeout.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
    let timeout = match deadline {
        None => None,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::TimedOut;
            }
            Some(timespec(left))
        }
    };
    match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
        Ok(()) => Wake::Retry,
        Err(Errno::TIMEDOUT) => {
            // The kernel's clock and ours agree to within a tick; let the caller's own deadline
            // check decide, so a wait never ends before its deadline.
            match deadline {
                Some(d) if Instant::now() >= d => Wake::TimedOut,
                _ => Wake::Retry,
            }
        }
        // EAGAIN: the word changed before we slept. EINTR: a signal. Both mean "look again".
        Err(_) => Wake::Retry,
    }
}

/// Wakes up to `count` waiters sleeping on `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, count: u32) -> usize {
    // An error here can only be EFAULT/EINVAL, impossible for a valid `&AtomicU32`; nobody was
    // woken in that case.
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}

/// Wakes every waiter sleeping on `word`.
pub(crate) fn wake_all(word: &AtomicU32) -> usize {
    wake(word, i32::MAX as u32)
}

fn timespec(d: Duration) -> futex::Timespec {
    futex::Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_on_changed_value_returns_at_once() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), Wake::Retry);
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(20);
        let mut r = Wake::Retry;
        while r == Wake::Retry {
            r = wait(&w, 0, Some(deadline));
        }
        assert_eq!(r, Wake::TimedOut);
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn wake_wakes_a_sleeper() {
        use std::sync::atomic::Ordering;
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Some(Instant::now() + Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        wake_all(&w);
        t.join().unwrap();
    }
}
