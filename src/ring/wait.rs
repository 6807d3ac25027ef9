//! How a ring endpoint waits: the one spin-then-park strategy, in three modes.
//!
//! 1. Spin, polling the condition (with `spin_loop` hints); every 256 polls, read the clock
//!    to honour the deadline and, every [`CHECK_EVERY`], ask whether the peer is gone.
//! 2. Park: announce ourselves through a [`Sleeper`] (the ring raises a "sleeping" flag and
//!    runs the heavy barrier, `sys::fence::heavy`; the MPMC queue counts waiters), read the
//!    bell, poll once more, then sleep on the bell with a futex until someone rings it, the
//!    deadline passes, or [`CHECK_EVERY`] elapses (to look at the peers' liveness again).
//!
//! [`WaitMode::BusyPoll`] never parks, [`WaitMode::Blocking`] parks at once, and
//! [`WaitMode::Hybrid`] spins for [`HYBRID_SPIN`] first, so a steady stream of messages is
//! served at busy-poll speed while an idle endpoint costs no CPU.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::sync::park;
use crate::sys::fence;

/// How often a waiter checks whether its peer process is still there.
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(40);
/// Most `spin_loop` pauses between two polls of a backing-off waiter.
const MAX_BACKOFF: u32 = 64;
/// How long a hybrid waiter spins before it parks.
pub(crate) const HYBRID_SPIN: Duration = Duration::from_micros(50);

/// How a ring endpoint waits when it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitMode {
    /// Spin until the condition holds: the lowest latency, a whole core while waiting.
    BusyPoll,
    /// Sleep on a futex at once: no CPU while idle, a wake-up syscall per message when the
    /// peer is faster.
    Blocking,
    /// Spin for about 50 µs, then sleep: busy-poll speed while messages flow, no CPU while
    /// idle. The default.
    #[default]
    Hybrid,
}

/// How a waiter tells the other side it is about to sleep, and where it sleeps.
///
/// The contract that makes a wake-up impossible to miss: the waker makes its change visible,
/// then looks for sleepers (the ring: the flag; the queue: the waiter count) and, if it sees
/// one, increments the bell and wakes it. The sleeper announces itself, then before every
/// poll reads the bell, runs `barrier`, polls, and sleeps only while the bell is unchanged
/// since that read. (The bell is read *before* the barrier: a topic's waker lowers the
/// flag as it rings, so a ring seen after the barrier could be one that lowered the flag
/// just raised, and the next waker would then see no sleeper.)
pub(crate) trait Sleeper {
    /// The futex word the sleeper sleeps on.
    fn bell(&self) -> &AtomicU32;
    /// Tells wakers someone may sleep (before the first parked poll).
    fn announce(&self);
    /// Orders the announcement before the next poll (run before each parked poll).
    fn barrier(&self);
    /// Whether `barrier` is [`fence::heavy`] and nothing else. [`wait_any`] then runs one
    /// heavy barrier for all such sleepers instead of one each: it orders every store this
    /// thread made before it (each flag raised) before every load after it (each bell and
    /// poll), whichever words they touch.
    fn barrier_is_heavy(&self) -> bool {
        false
    }
    /// Withdraws the announcement.
    fn retract(&self);
}

/// The ring's sleeper: one flag (a single waiter per side) and the heavy barrier, so the
/// waker's fast path needs no fence.
pub(crate) struct Flag<'a> {
    pub(crate) sleeping: &'a AtomicU32,
    pub(crate) bell: &'a AtomicU32,
}

impl Sleeper for Flag<'_> {
    fn bell(&self) -> &AtomicU32 {
        self.bell
    }
    fn announce(&self) {
        self.sleeping.store(1, Ordering::Relaxed);
    }
    fn barrier(&self) {
        fence::heavy();
    }
    fn barrier_is_heavy(&self) -> bool {
        true
    }
    fn retract(&self) {
        self.sleeping.store(0, Ordering::Relaxed);
    }
}

/// The queues' sleeper: a bell with a count of waiters, for any number of sleepers. The waker
/// changes shared state with a SeqCst read-modify-write, then loads the count (SeqCst) and
/// rings only if it is not zero.
pub(crate) struct Counted<'a> {
    pub(crate) bell: &'a AtomicU32,
    pub(crate) waiters: &'a AtomicU32,
}

impl Sleeper for Counted<'_> {
    fn bell(&self) -> &AtomicU32 {
        self.bell
    }
    fn announce(&self) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
    }
    fn barrier(&self) {
        // Orders the count (or the previous sleep) before the poll.
        std::sync::atomic::fence(Ordering::SeqCst);
    }
    fn retract(&self) {
        // Saturating: a count reset while we slept must not wrap.
        let _ = self
            .waiters
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// Rings `bell` if `waiters` says someone may sleep on it (wakes one sleeper, or all).
pub(crate) fn ring_counted(bell: &AtomicU32, waiters: &AtomicU32, all: bool) {
    if waiters.load(Ordering::SeqCst) != 0 {
        bell.fetch_add(1, Ordering::Release);
        if all {
            park::wake_all(bell);
        } else {
            park::wake(bell, 1);
        }
    }
}

/// Rings each bell and wakes every sleeper on it, whether or not anyone counts as waiting:
/// for changes every waiter must look at (a queue closed, a participant gone).
pub(crate) fn wake_everyone(bells: &[&AtomicU32]) {
    for bell in bells {
        // Release: pairs with the sleepers' Acquire load of the bell.
        bell.fetch_add(1, Ordering::Release);
        park::wake_all(bell);
    }
}

/// Why a wait ended without the condition.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended<E> {
    TimedOut,
    PeerGone,
    /// An interrupt word the thread watches fired (`sys::interrupt`).
    Interrupted,
    Failed(E),
}

/// Waits until `poll` yields `Some`, the deadline passes, `peer_gone` says so, or `poll`
/// fails. With `backoff`, the pause between polls doubles up to `MAX_BACKOFF`: for a waiter
/// whose poll reads a line the other side keeps writing (a producer watching the consumer's
/// head), polling less often lets the other side work on that line undisturbed.
/// `sleeper` announces the wait and holds the futex word. `peer_gone(deep)` must be cheap
/// when `deep` is false (a detach flag); `deep` asks it to check liveness too.
pub(crate) fn wait<R, E>(
    mode: WaitMode,
    deadline: Option<Instant>,
    sleeper: &impl Sleeper,
    backoff: bool,
    mut poll: impl FnMut() -> Result<Option<R>, E>,
    mut peer_gone: impl FnMut(bool) -> bool,
) -> Result<R, Ended<E>> {
    let started = Instant::now();
    let mut next_check = started + CHECK_EVERY;
    if mode != WaitMode::Blocking {
        let mut spun: u32 = 0;
        let mut pause: u32 = 1;
        loop {
            if let Some(r) = poll().map_err(Ended::Failed)? {
                return Ok(r);
            }
            for _ in 0..pause {
                std::hint::spin_loop();
            }
            spun += pause;
            if backoff {
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            if spun < 256 {
                continue;
            }
            spun = 0;
            let now = Instant::now();
            if let Some(end) = stop_at(now, deadline, &mut next_check, &mut peer_gone) {
                return Err(end);
            }
            if mode == WaitMode::Hybrid && now - started >= HYBRID_SPIN {
                break;
            }
        }
    }
    sleeper.announce();
    let bell = sleeper.bell();
    let result = loop {
        // The bell before the barrier: a waker that rings after this read changes the word
        // we would sleep on. Read after the barrier, a sleeper whose flag a waker clears as
        // it rings (a topic's) could see that ring, find nothing yet, and sleep through the
        // next waker, who finds the flag down.
        // Acquire: pairs with the waker's Release increment of the bell.
        let rung = bell.load(Ordering::Acquire);
        sleeper.barrier();
        match poll() {
            Ok(Some(r)) => break Ok(r),
            Ok(None) => {}
            Err(e) => break Err(Ended::Failed(e)),
        }
        if let Some(end) = stop_at(Instant::now(), deadline, &mut next_check, &mut peer_gone) {
            break Err(end);
        }
        if park::sleep(bell, rung, park::earliest(deadline, Some(next_check)))
            == park::Wake::Interrupted
        {
            break Err(Ended::Interrupted);
        }
    };
    sleeper.retract();
    result
}

/// The checks both phases make between polls: the deadline, interrupts, the cheap "peer let
/// go" flag, and every `CHECK_EVERY` the peer's liveness.
fn stop_at<E>(
    now: Instant,
    deadline: Option<Instant>,
    next_check: &mut Instant,
    peer_gone: &mut impl FnMut(bool) -> bool,
) -> Option<Ended<E>> {
    if crate::sys::clock::passed(deadline, now) {
        return Some(Ended::TimedOut);
    }
    if crate::sys::interrupt::pending() {
        return Some(Ended::Interrupted);
    }
    let deep = now >= *next_check;
    if deep {
        *next_check = now + CHECK_EVERY;
    }
    peer_gone(deep).then_some(Ended::PeerGone)
}

/// Polls `ready` with spin-loop hints for at most `limit` (the clock read every 256 polls):
/// the spinning phase of a hybrid wait, for async waits that spin before they hand the wait
/// to the readiness thread. Returns whether `ready` came true.
#[cfg(feature = "async")]
pub(crate) fn spin_for(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        for _ in 0..256 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if started.elapsed() >= limit {
            return false;
        }
    }
}

/// One registration of a multi-wait ([`wait_any`]): whether its operation would go ahead now,
/// and (as a [`Sleeper`]) how to sleep until it may.
pub(crate) trait Source: Sleeper {
    /// Whether the operation would not block now: it would succeed, or fail for good (the
    /// peer gone, closed, corrupted). `deep` asks for the liveness checks that cost a `/proc`
    /// read (every [`CHECK_EVERY`]).
    fn ready(&self, deep: bool) -> bool;
    /// Hands on a wake-up this waiter may have taken from a bell that wakes one sleeper at a
    /// time (queues, semaphores), when the waiter returns another registration instead.
    fn pass_on(&self) {}
}

/// Whether [`wait_any`] can sleep on many words at once here (`futex_waitv`, Linux 5.16+).
pub(crate) fn multi_wait_available() -> bool {
    crate::sys::futex::waitv_available()
}

/// The most registrations one [`wait_any`] covers.
pub(crate) const MAX_SOURCES: usize = crate::sys::futex::MAX_WORDS;

/// Waits until one of `sources` is ready and returns the first ready one's index; one sleep
/// (`futex_waitv`) covers every bell, so an idle multi-wait uses no CPU. The same protocol as
/// [`wait`]'s parked phase, for each source: announce, then before every poll the barriers,
/// the bells read, the polls, and a sleep only while every bell is unchanged; every
/// [`CHECK_EVERY`] the polls look at liveness too, so a dead peer ends the wait. Ends with
/// `TimedOut` at the deadline and `Interrupted` when an interrupt word fires.
///
/// The sources whose barrier is the heavy one (rings, pipes) share one: a membarrier costs
/// several µs and the kernel runs them one at a time, so one per ring made a select over 62
/// rings take about a millisecond to fall asleep. Each source still sees its own order
/// (announce, a barrier, its bell, its poll): the one heavy barrier comes after every
/// announcement and before every bell read.
pub(crate) fn wait_any(
    sources: &[&dyn Source],
    deadline: Option<Instant>,
) -> Result<usize, Ended<std::convert::Infallible>> {
    let first = |deep: bool| sources.iter().position(|s| s.ready(deep));
    let mut found = first(false);
    if found.is_none() {
        park::spin_until(|| {
            found = first(false);
            found.is_some()
        });
    }
    if let Some(i) = found {
        return Ok(i);
    }
    for s in sources {
        s.announce();
    }
    // The caller looked at liveness just now if it was due: the next look in CHECK_EVERY.
    let mut next_check = Instant::now() + CHECK_EVERY;
    let mut words = Vec::with_capacity(sources.len());
    let heavy = sources.iter().any(|s| s.barrier_is_heavy());
    let result = loop {
        words.clear();
        // The bells before the barriers, as in `wait`.
        for s in sources {
            // Acquire: pairs with the waker's Release increment of the bell.
            words.push((s.bell(), s.bell().load(Ordering::Acquire)));
        }
        if heavy {
            fence::heavy();
        }
        for s in sources.iter().filter(|s| !s.barrier_is_heavy()) {
            s.barrier();
        }
        let now = Instant::now();
        let deep = now >= next_check;
        if deep {
            next_check = now + CHECK_EVERY;
        }
        if let Some(i) = first(deep) {
            break Ok(i);
        }
        if crate::sys::clock::passed(deadline, now) {
            break Err(Ended::TimedOut);
        }
        if crate::sys::futex::wait_any(&words, park::earliest(deadline, Some(next_check)))
            == park::Wake::Interrupted
        {
            break Err(Ended::Interrupted);
        }
    };
    for s in sources {
        s.retract();
    }
    if let Ok(chosen) = result {
        for (i, s) in sources.iter().enumerate() {
            if i != chosen && s.ready(false) {
                s.pass_on();
            }
        }
    }
    result
}
