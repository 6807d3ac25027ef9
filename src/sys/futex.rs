//! Futex wait/wake on an `AtomicU32` that may live in memory shared between processes.
//!
//! The futexes are *shared* (no `FUTEX_PRIVATE_FLAG`): the kernel keys them by the backing
//! page, so a waiter in one process is woken by a waker in another that maps the same segment.
//! Both functions are safe: a `&AtomicU32` is always a valid, aligned futex word, and the
//! kernel only ever compares and sleeps on it.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::interrupt;

use rustix::io::Errno;
use rustix::thread::futex;

/// Why a [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, or the word did not hold `expected`: the caller rechecks its state.
    Retry,
    /// The deadline passed.
    TimedOut,
    /// An interrupt word this thread watches fired (see [`interrupt`](super::interrupt)).
    Interrupted,
}

/// Sleeps while `*word == expected`, at most until `deadline` (`None`: no limit), and
/// returns early with [`Wake::Interrupted`] when the process's or this thread's interrupt
/// word fires (or already has).
///
/// One sleep covers the object's word and the interrupt words: `futex_waitv` (Linux 5.16+).
/// Where it is missing (Linux before 5.16, or refused by a seccomp filter), the plain futex
/// is used; if an interrupt could end the wait (the thread watches an interrupter, or the
/// process one is in use), the sleep is cut into slices of [`SLICE`] with the interrupt words
/// looked at between them, so an interrupt then takes up to a slice to be noticed.
///
/// Spurious wake-ups are possible and harmless: callers loop over their own condition.
/// `EINTR` comes back as [`Wake::Retry`], so a signal never ends a wait early as a timeout.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Wake {
    let (
        Interrupts {
            masked,
            watched,
            process,
            thread,
        },
        left,
    ) = match before_sleep(deadline) {
        Ok(v) => v,
        Err(wake) => return wake,
    };
    let mut waiters = [
        (word, expected),
        (&interrupt::PROCESS, process),
        (word, expected),
    ];
    let n = match (&watched, thread) {
        _ if masked => 1,
        (Some(w), Some(t)) => {
            waiters[2] = (w, t);
            3
        }
        _ => 2,
    };
    let slept = if WAITV_MISSING.load(Ordering::Relaxed) {
        Err(Errno::NOSYS)
    } else {
        waitv(&waiters[..n], left)
    };
    let result = match slept {
        Ok(()) => Ok(()),
        Err(e @ (Errno::AGAIN | Errno::INTR | Errno::TIMEDOUT)) => Err(e),
        // ENOSYS (Linux before 5.16), EPERM (a seccomp filter that does not know it), or
        // anything else: never again, and the plain futex for this wait.
        Err(_) => {
            WAITV_MISSING.store(true, Ordering::Relaxed);
            // Sliced only if an interrupt could end this wait, so an idle waiter otherwise
            // sleeps as long as asked.
            let can_interrupt =
                n > 1 && (watched.is_some() || interrupt::ARMED.load(Ordering::Relaxed));
            let timeout = match left {
                Some(l) if can_interrupt => Some(l.min(SLICE)),
                None if can_interrupt => Some(SLICE),
                other => other,
            };
            match futex::wait(
                word,
                futex::Flags::empty(),
                expected,
                timeout.map(timespec).as_ref(),
            ) {
                // Our own slice ran out, not necessarily the caller's deadline.
                Ok(()) | Err(Errno::TIMEDOUT) => Ok(()),
                Err(e) => Err(e),
            }
        }
    };
    if interrupt::pending() {
        return Wake::Interrupted;
    }
    match result {
        Err(Errno::TIMEDOUT) | Ok(()) => {
            // The kernel's clock and ours agree to within a tick; let the caller's own deadline
            // check decide, so a wait never ends before its deadline.
            match deadline {
                Some(d) if Instant::now() >= d => Wake::TimedOut,
                _ => Wake::Retry,
            }
        }
        // EAGAIN: a word changed before we slept. EINTR: a signal. Both mean "look again".
        Err(_) => Wake::Retry,
    }
}

/// The most words one [`wait_any`] sleeps on: futex_waitv's limit of 128, less the process's
/// and the thread's interrupt words.
pub(crate) const MAX_WORDS: usize = 126;

/// Whether `futex_waitv` (Linux 5.16+) works here: asked once, by a wait on a word that
/// does not hold the value given (which returns at once, `EAGAIN`, where the call exists).
pub(crate) fn waitv_available() -> bool {
    static ASKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ASKED.get_or_init(|| {
        if WAITV_MISSING.load(Ordering::Relaxed) {
            return false;
        }
        let word = AtomicU32::new(1);
        match waitv(&[(&word, 0)], Some(Duration::ZERO)) {
            Ok(()) | Err(Errno::AGAIN | Errno::TIMEDOUT | Errno::INTR) => true,
            Err(_) => {
                WAITV_MISSING.store(true, Ordering::Relaxed);
                false
            }
        }
    })
}

/// Sleeps while every `(word, expected)` pair holds (each `*word == expected`), at most until
/// `deadline`: one `futex_waitv` over all of them and the interrupt words, so a change to
/// any, or an interrupt, ends it. At most [`MAX_WORDS`] pairs, and only where
/// [`waitv_available`] (callers check both first); otherwise it returns [`Wake::Retry`] at
/// once, which costs the caller a spin but never a missed wake-up.
pub(crate) fn wait_any(words: &[(&AtomicU32, u32)], deadline: Option<Instant>) -> Wake {
    if words.is_empty() || words.len() > MAX_WORDS || !waitv_available() {
        return if interrupt::pending() {
            Wake::Interrupted
        } else {
            Wake::Retry
        };
    }
    let (
        Interrupts {
            masked,
            watched,
            process,
            thread,
        },
        left,
    ) = match before_sleep(deadline) {
        Ok(v) => v,
        Err(wake) => return wake,
    };
    let mut all: Vec<(&AtomicU32, u32)> = Vec::with_capacity(words.len() + 2);
    all.extend_from_slice(words);
    if !masked {
        all.push((&interrupt::PROCESS, process));
        if let (Some(w), Some(t)) = (&watched, thread) {
            all.push((w, t));
        }
    }
    let result = waitv(&all, left);
    if interrupt::pending() {
        return Wake::Interrupted;
    }
    match (result, deadline) {
        (Ok(()) | Err(Errno::TIMEDOUT), Some(d)) if Instant::now() >= d => Wake::TimedOut,
        _ => Wake::Retry,
    }
}

/// The interrupt words a sleep watches, as read just before it.
struct Interrupts {
    /// The thread's interrupts are masked: watch none.
    masked: bool,
    /// The thread's own interrupt word, if it watches one.
    watched: Option<std::sync::Arc<AtomicU32>>,
    /// The process's interrupt word's value.
    process: u32,
    /// The thread's word's value.
    thread: Option<u32>,
}

/// What every sleep does first: reads the interrupt words (`Err(Interrupted)` if one has
/// fired) and the time left (`Err(TimedOut)` if none).
fn before_sleep(deadline: Option<Instant>) -> Result<(Interrupts, Option<Duration>), Wake> {
    let masked = interrupt::masked();
    let watched = if masked { None } else { interrupt::watched() };
    let process = interrupt::PROCESS.load(Ordering::Acquire);
    let thread = watched.as_deref().map(|w| w.load(Ordering::Acquire));
    if !masked && (process & 1 == 1 || thread.is_some_and(|t| t & 1 == 1)) {
        return Err(Wake::Interrupted);
    }
    let left = match deadline {
        None => None,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Wake::TimedOut);
            }
            Some(left)
        }
    };
    let interrupts = Interrupts {
        masked,
        watched,
        process,
        thread,
    };
    Ok((interrupts, left))
}

/// How long one sleep lasts where `futex_waitv` is missing and an interrupt could end it,
/// between two looks at the interrupt words.
pub(crate) const SLICE: Duration = Duration::from_millis(10);

/// Set once `futex_waitv` was refused (`ENOSYS`, a seccomp `EPERM`, ...): plain futexes
/// from then on.
static WAITV_MISSING: AtomicBool = AtomicBool::new(cfg!(miri));

/// `futex_waitv` over `(word, expected)` pairs (at most `MAX_WORDS + 2`), all shared 32-bit
/// futexes, for at most `left`. `Ok(())` when woken, `Err(TIMEDOUT)` when the time ran out.
fn waitv(waiters: &[(&AtomicU32, u32)], left: Option<Duration>) -> Result<(), Errno> {
    if waiters.len() > MAX_WORDS + 2 {
        return Err(Errno::INVAL);
    }
    // A single object's wait (the hot one) stays on the stack; a multi-wait allocates.
    let mut small = [futex::Wait::new(); 3];
    let mut large = Vec::new();
    let list: &mut [futex::Wait] = if waiters.len() <= small.len() {
        &mut small[..waiters.len()]
    } else {
        large.resize(waiters.len(), futex::Wait::new());
        &mut large
    };
    for (slot, (word, expected)) in list.iter_mut().zip(waiters) {
        slot.val = u64::from(*expected);
        slot.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
        slot.flags = futex::WaitFlags::SIZE_U32;
    }
    // futex_waitv takes an absolute time on the given clock; Instant is CLOCK_MONOTONIC.
    let timeout = left.map(|l| {
        let now = rustix::time::clock_gettime(futex::ClockId::Monotonic);
        let now = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
        timespec(now.saturating_add(l))
    });
    futex::waitv(
        list,
        futex::WaitvFlags::empty(),
        timeout.as_ref(),
        futex::ClockId::Monotonic,
    )
    .map(|_| ())
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
