//! A robust mutex word in shared memory, futex-backed, that survives its holder's death.
//!
//! Implementation notes: the state machine is the classic three-state futex mutex (Drepper,
//! "Futexes Are Tricky", mutex 2; std's `sys/sync/mutex/futex.rs`), except that "locked" is
//! the holder's *pid*, so a waiter can notice a dead holder and take the lock over, the way
//! robust pthread mutexes report `EOWNERDEAD`. We do not use the kernel's robust-futex list:
//! glibc owns each thread's list, and registering our own would break its robust mutexes.
//!
//! State word (`u32`):
//!
//! | value              | meaning                                              |
//! |--------------------|------------------------------------------------------|
//! | `UNLOCKED` (0)     | free                                                 |
//! | `pid`              | held by process `pid`, nobody sleeping               |
//! | `pid \| CONTENDED` | held by `pid`, somebody may be sleeping on the word  |
//!
//! Poison word (`u32`, at offset 4), read and written only by the holder except for
//! [`RawMutex::clear_poison`], which anyone may call (as std's `Mutex::clear_poison`):
//!
//! | value          | meaning                                                          |
//! |----------------|------------------------------------------------------------------|
//! | `CLEAN` (0)    | the last holder let go normally                                  |
//! | `POISONED` (1) | a holder panicked or died holding the lock; data may be torn     |
//! | anything else  | forged or corrupted: read as poisoned, the cautious answer       |
//!
//! The poison word is only a flag for the layers above: the lock itself works the same
//! whatever it holds.
//!
//! Beside them, `owner` (`u64`) holds `pid << 40 | start time` of the holder (0 while unknown),
//! so a recycled pid is not taken for the dead holder. The holder writes it right after
//! acquiring and clears it before releasing. A waiter trusts the start time only when the pid
//! in `owner` matches the one in `state`; otherwise (a new holder that has not written it yet)
//! it checks the pid alone, which can only err towards "alive".
//!
//! Sleepers wake at least every `MAX_CHECK` to check the holder's liveness, so a holder
//! killed by SIGKILL is noticed within about that long; the first waiter to notice takes the
//! word over with a CAS and is told [`Locked::OwnerDied`].
//!
//! Known limits: a holder killed between its acquiring CAS and the store of `owner`, *and*
//! whose pid is then reused by a live process, is mistaken for that process (the waiters keep
//! waiting). And a waiter that judged the holder dead could, in theory, take over from a new
//! holder that happens to reuse the dead pid in the microseconds between its check and its
//! CAS. Both need a pid to be recycled within a few instructions.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::park::{self, Wake};
use crate::region::Region;
use crate::sys::process::{self, Liveness, ProcessId};

const UNLOCKED: u32 = 0;
const CONTENDED: u32 = 1 << 31;
const OWNER_MASK: u32 = !CONTENDED;

/// First liveness check of the holder, after this long asleep.
const FIRST_CHECK: Duration = Duration::from_millis(2);
/// Longest sleep between two liveness checks.
const MAX_CHECK: Duration = Duration::from_millis(50);

/// The poison word's "clean" value; every other value reads as poisoned.
const CLEAN: u32 = 0;
/// The value written to poison the lock.
const POISONED: u32 = 1;

/// Bytes a `RawMutex` occupies in a region.
pub(crate) const SIZE: usize = 16;

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Locked {
    /// From a live holder (or free).
    Clean,
    /// Taken over from a holder that died holding it.
    OwnerDied,
}

/// Why a waiting `lock` gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The deadline passed.
    TimedOut,
    /// An interrupt word the thread watches fired.
    Interrupted,
}

/// Bits of the start time kept in `owner` (at 100 ticks/s, 348 years of uptime).
const START_BITS: u32 = 40;

/// The mutex words: `state` at offset 0, `poison` at offset 4, `owner` at offset 8.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawMutex<'a> {
    state: &'a AtomicU32,
    poison: &'a AtomicU32,
    owner: &'a AtomicU64,
}

impl<'a> RawMutex<'a> {
    /// The mutex at `offset` in `region`, if its 16 bytes fit there (8-aligned).
    pub(crate) fn at(region: Region<'a>, offset: usize) -> Option<Self> {
        Some(RawMutex {
            state: region.u32_at(offset)?,
            poison: region.u32_at(offset.checked_add(4)?)?,
            owner: region.u64_at(offset.checked_add(8)?)?,
        })
    }

    /// Whether the poison word says a holder panicked or died holding the lock. Any value
    /// but `CLEAN` counts: the word is untrusted, and "poisoned" is the cautious reading.
    ///
    /// Relaxed: a locker reads it after its Acquire CAS on `state`, which pairs with the
    /// Release that published the previous holder's `poison`; a reader without the lock
    /// gets a hint, as with std's `Mutex::is_poisoned`.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poison.load(Ordering::Relaxed) != CLEAN
    }

    /// Marks the lock poisoned. Called by the holder (before `unlock`, whose Release
    /// publishes it) or right after taking the lock over from a dead holder.
    pub(crate) fn poison(&self) {
        self.poison.store(POISONED, Ordering::Relaxed);
    }

    /// Whether the state word names this process as the holder (a forked child that
    /// inherited a guard does not hold its parent's lock).
    pub(crate) fn held_by_us(&self) -> bool {
        self.state.load(Ordering::Relaxed) & OWNER_MASK == process::current().pid
    }

    /// Marks the lock clean again.
    pub(crate) fn clear_poison(&self) {
        self.poison.store(CLEAN, Ordering::Relaxed);
    }

    fn took(&self, me: ProcessId) {
        let start = me.start_time & ((1 << START_BITS) - 1);
        self.owner
            .store((u64::from(me.pid) << START_BITS) | start, Ordering::Relaxed);
    }

    /// The uncontended path: takes the lock if it is free. `word` is what to store: our pid,
    /// plus CONTENDED when others may be asleep.
    #[inline]
    fn acquire_free(&self, me: ProcessId, word: u32) -> bool {
        // Acquire: pairs with the Release in `unlock`.
        let ok = self
            .state
            .compare_exchange(UNLOCKED, word, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if ok {
            self.took(me);
        }
        ok
    }

    /// Takes the lock if it is free, or if its holder is dead.
    pub(crate) fn try_lock(&self) -> Option<Locked> {
        let me = process::current();
        if self.acquire_free(me, me.pid) {
            return Some(Locked::Clean);
        }
        let state = self.state.load(Ordering::Relaxed);
        if state != UNLOCKED && self.take_over_if_dead(state, me) {
            return Some(Locked::OwnerDied);
        }
        None
    }

    /// Locks, waiting until `deadline` (`None`: as long as a live holder keeps it).
    #[inline]
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Locked, Stopped> {
        let me = process::current();
        if self.acquire_free(me, me.pid) {
            return Ok(Locked::Clean);
        }
        self.lock_contended(me, deadline)
    }

    #[cold]
    fn lock_contended(&self, me: ProcessId, deadline: Option<Instant>) -> Result<Locked, Stopped> {
        // Short spin while the holder is running and nobody sleeps yet.
        if park::spin_until(|| {
            self.state.load(Ordering::Relaxed) == UNLOCKED && self.acquire_free(me, me.pid)
        }) {
            return Ok(Locked::Clean);
        }
        let mut check_every = FIRST_CHECK;
        let mut next_check = Instant::now() + check_every;
        loop {
            // Checked on every round, also after a lost CAS: a peer rewriting the word all the
            // time must not keep a bounded lock looping past its deadline.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return self.try_lock().ok_or(Stopped::TimedOut);
            }
            let mut state = self.state.load(Ordering::Relaxed);
            if state == UNLOCKED {
                // Take it marked CONTENDED: others may be asleep and must be woken on unlock.
                if self.acquire_free(me, me.pid | CONTENDED) {
                    return Ok(Locked::Clean);
                }
                continue;
            }
            if state & CONTENDED == 0 {
                if self
                    .state
                    .compare_exchange(
                        state,
                        state | CONTENDED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
                {
                    continue;
                }
                state |= CONTENDED;
            }
            let now = Instant::now();
            if now >= next_check {
                if self.take_over_if_dead(state, me) {
                    return Ok(Locked::OwnerDied);
                }
                check_every = (check_every * 2).min(MAX_CHECK);
                next_check = now + check_every;
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(Stopped::TimedOut);
            }
            match park::sleep(
                self.state,
                state,
                park::earliest(deadline, Some(next_check)),
            ) {
                Wake::TimedOut if deadline.is_some_and(|d| Instant::now() >= d) => {
                    // One last look: the lock may have come free just as we gave up.
                    return self.try_lock().ok_or(Stopped::TimedOut);
                }
                Wake::Interrupted => return Err(Stopped::Interrupted),
                _ => {}
            }
        }
    }

    /// If the holder recorded in `state` is dead, takes the lock over (keeping CONTENDED set,
    /// since others may sleep). Returns whether we now hold it.
    fn take_over_if_dead(&self, state: u32, me: ProcessId) -> bool {
        let holder = state & OWNER_MASK;
        if holder == me.pid {
            // Another thread of ours holds it; we are alive.
            return false;
        }
        let owner = self.owner.load(Ordering::Relaxed);
        // Trust the recorded start time only if it was recorded by this very holder.
        let start_time = if (owner >> START_BITS) as u32 == holder {
            owner & ((1 << START_BITS) - 1)
        } else {
            0
        };
        if process::liveness(ProcessId {
            pid: holder,
            start_time,
        }) == Liveness::Alive
        {
            return false;
        }
        // Acquire: whatever the dead holder wrote is as visible as it will ever be.
        if self
            .state
            .compare_exchange(
                state,
                me.pid | CONTENDED,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.took(me);
            true
        } else {
            false
        }
    }

    /// Releases the lock held by this process. If the word no longer names us (a peer
    /// overwrote it), it is left alone rather than releasing someone else's lock.
    #[inline]
    pub(crate) fn unlock(&self) {
        let me = process::current().pid;
        if self.state.load(Ordering::Relaxed) & OWNER_MASK != me {
            return;
        }
        self.owner.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire of the next locker's CAS.
        if self
            .state
            .compare_exchange(me, UNLOCKED, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        self.unlock_contended(me);
    }

    #[cold]
    fn unlock_contended(&self, me: u32) {
        // Release: as in `unlock`.
        if self
            .state
            .compare_exchange(
                me | CONTENDED,
                UNLOCKED,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            park::wake(self.state, 1);
        }
    }

    /// The holder, with its start time when the owner word agrees, or `None` if free.
    /// Relaxed loads only (tools read segments mapped read-only).
    pub(crate) fn holder_process(&self) -> Option<ProcessId> {
        let pid = self.state.load(Ordering::Relaxed) & OWNER_MASK;
        let owner = self.owner.load(Ordering::Relaxed);
        let start_time = if (owner >> START_BITS) as u32 == pid {
            owner & ((1 << START_BITS) - 1)
        } else {
            0
        };
        (pid != 0).then_some(ProcessId { pid, start_time })
    }

    /// The lock word: a multi-wait (`Select`) sleeps on it.
    pub(crate) fn word(&self) -> &'a AtomicU32 {
        self.state
    }

    /// Marks a held lock `CONTENDED`, so that its unlock wakes whoever sleeps on the word (a
    /// multi-wait about to sleep on it, which does not lock).
    pub(crate) fn mark_contended(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if state & OWNER_MASK != 0 && state & CONTENDED == 0 {
            let _ = self.state.compare_exchange(
                state,
                state | CONTENDED,
                Ordering::SeqCst,
                Ordering::Relaxed,
            );
        }
    }

    /// Whether `lock` would go ahead without waiting: the lock is free, or (`deep`, which
    /// costs a look at the holder's liveness) its holder is dead and would be taken over.
    pub(crate) fn would_not_wait(&self, deep: bool) -> bool {
        let holder = self.state.load(Ordering::Acquire) & OWNER_MASK;
        if holder == 0 {
            return true;
        }
        if !deep || holder == process::current().pid {
            return false;
        }
        self.holder_process()
            .is_some_and(|p| process::liveness(p) != Liveness::Alive)
    }

    /// Whether the word says somebody may be sleeping on it (its `CONTENDED` bit). Relaxed
    /// load, for tools.
    pub(crate) fn contended(&self) -> bool {
        self.state.load(Ordering::Relaxed) & CONTENDED != 0
    }

    /// The holder's pid, or `None` if free. For diagnostics.
    pub(crate) fn holder(&self) -> Option<u32> {
        match self.state.load(Ordering::Relaxed) & OWNER_MASK {
            0 => None,
            pid => Some(pid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn lock_unlock_try() {
        let buf = heap(16);
        let m = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        assert_eq!(m.lock(None), Ok(Locked::Clean));
        assert_eq!(m.holder(), Some(std::process::id()));
        m.unlock();
        assert_eq!(m.holder(), None);
        assert_eq!(m.try_lock(), Some(Locked::Clean));
        m.unlock();
    }

    #[test]
    fn threads_exclude_each_other() {
        let buf = heap(16);
        let region = Region::from_words(&buf);
        let inside = AtomicUsize::new(0);
        let total = AtomicUsize::new(0);
        let n = if cfg!(miri) { 20 } else { 20_000 };
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let m = RawMutex::at(region, 0).unwrap();
                    for _ in 0..n {
                        m.lock(None).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::Relaxed), 0);
                        total.fetch_add(1, Ordering::Relaxed);
                        inside.fetch_sub(1, Ordering::Relaxed);
                        m.unlock();
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * n);
    }

    #[test]
    fn timeout_while_held_by_live_thread() {
        let buf = heap(16);
        let m = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        m.lock(None).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let deadline = Instant::now() + Duration::from_millis(30);
                assert_eq!(m.lock(Some(deadline)), Err(Stopped::TimedOut));
                assert!(Instant::now() >= deadline);
                assert_eq!(m.try_lock(), None);
            });
        });
        m.unlock();
    }

    #[test]
    #[cfg_attr(miri, ignore)] // reads /proc
    fn dead_holder_is_taken_over() {
        let buf = heap(16);
        let m = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        // A holder pid that cannot exist (above pid_max's ceiling of 2^22).
        m.state.store((1 << 30) | CONTENDED, Ordering::Relaxed);
        assert_eq!(
            m.lock(Some(Instant::now() + Duration::from_secs(5))),
            Ok(Locked::OwnerDied)
        );
        m.unlock();
        assert_eq!(m.lock(None), Ok(Locked::Clean));
        m.unlock();
        m.state.store(1 << 30, Ordering::Relaxed);
        assert_eq!(m.try_lock(), Some(Locked::OwnerDied));
        m.unlock();
    }

    #[test]
    #[cfg_attr(miri, ignore)] // spawns a process, reads /proc
    fn live_holder_with_stale_start_time_is_not_taken_over() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let buf = heap(16);
        let m = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        // The child holds the lock; `owner` still describes a previous, different holder.
        m.state.store(child.id() | CONTENDED, Ordering::Relaxed);
        m.owner.store(
            (u64::from(child.id() + 1) << START_BITS) | 12345,
            Ordering::Relaxed,
        );
        assert_eq!(m.try_lock(), None, "took the lock from a live holder");
        // A start time recorded by this very holder that does not match: a recycled pid.
        m.owner
            .store((u64::from(child.id()) << START_BITS) | 1, Ordering::Relaxed);
        assert_eq!(m.try_lock(), Some(Locked::OwnerDied));
        m.unlock();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn poison_word_survives_unlock_and_any_nonzero_value_is_poisoned() {
        let buf = heap(16);
        let m = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        assert!(!m.is_poisoned());
        m.lock(None).unwrap();
        m.poison();
        m.unlock();
        assert_eq!(m.holder(), None, "poisoning kept the lock held");
        assert!(m.is_poisoned());
        // Another thread's locker sees it (published by the unlock's Release).
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(m.lock(None), Ok(Locked::Clean));
                assert!(m.is_poisoned());
                m.clear_poison();
                m.unlock();
            });
        });
        assert!(!m.is_poisoned());
        for forged in [2, 0x8000_0000, u32::MAX] {
            m.poison.store(forged, Ordering::Relaxed);
            assert!(m.is_poisoned(), "poison word {forged:#x} read as clean");
        }
        // The poison word is beside the state word: the lock works whatever it holds.
        assert_eq!(m.try_lock(), Some(Locked::Clean));
        m.unlock();
        assert_eq!(m.holder(), None);
    }

    #[test]
    fn foreign_unlock_leaves_word_alone() {
        let buf = heap(16);
        let m = RawMutex::at(Region::from_words(&buf), 0).unwrap();
        m.state.store(1 << 30, Ordering::Relaxed);
        m.unlock();
        assert_eq!(m.holder(), Some(1 << 30));
    }
}
