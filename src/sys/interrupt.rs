#![allow(unsafe_code)]
//! Interrupt words: what lets another thread, or a signal, end a blocked shmq call.
//!
//! An interrupt word is a futex word in this process's memory. Its value counts transitions:
//! odd means "interrupted", even means "not". Firing makes it odd and wakes every futex
//! sleeper on it; resetting makes it even again. A blocked call sleeps with `futex_waitv` on
//! its object's word *and* on the interrupt words that apply to it (the process's, and the
//! one its thread watches), so a firing wakes it at once; it then sees an odd word and
//! returns `Interrupted`.
//!
//! | value | meaning                                  |
//! |-------|------------------------------------------|
//! | even  | not interrupted                          |
//! | odd   | interrupted (sticky until reset)         |
//!
//! The process word can be fired from a signal handler: firing is one atomic RMW and one
//! `futex` system call, both async-signal-safe.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The process-wide interrupt word: every blocking call in the process watches it.
pub(crate) static PROCESS: AtomicU32 = AtomicU32::new(0);

/// Set once anything can fire [`PROCESS`] (somebody asked for the process interrupter, or
/// installed the signal handlers). Only where `futex_waitv` is missing does it matter: a
/// wait then sleeps in slices only if some interrupt could end it.
pub(crate) static ARMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The interrupt word the current thread's blocking calls watch besides [`PROCESS`].
    static WATCHED: RefCell<Option<Arc<AtomicU32>>> = const { RefCell::new(None) };
    /// Set while the thread runs a call that must not be interrupted ([`uninterruptible`]).
    static MASKED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with interrupts masked on this thread: waits inside it end only as they would
/// without any interrupter. For calls whose signature has no way to report an interrupt.
pub(crate) fn uninterruptible<R>(f: impl FnOnce() -> R) -> R {
    struct Unmask(bool);
    impl Drop for Unmask {
        fn drop(&mut self) {
            let _ = MASKED.try_with(|m| m.set(self.0));
        }
    }
    let _restore = Unmask(MASKED.try_with(|m| m.replace(true)).unwrap_or(false));
    f()
}

/// Whether interrupts are masked on this thread (they are while its locals are destroyed).
pub(crate) fn masked() -> bool {
    MASKED.try_with(Cell::get).unwrap_or(true)
}

/// Whether the word says "interrupted".
pub(crate) fn is_set(word: &AtomicU32) -> bool {
    // Acquire: pairs with the AcqRel RMW in `fire`, so what the firing thread did before
    // is visible to the interrupted call.
    word.load(Ordering::Acquire) & 1 == 1
}

/// Makes the word odd (if it is not) and wakes every sleeper on it. Async-signal-safe.
pub(crate) fn fire(word: &AtomicU32) {
    let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        (v & 1 == 0).then_some(v.wrapping_add(1))
    });
    crate::sys::futex::wake_all(word);
}

/// Makes the word even (if it is not).
pub(crate) fn reset(word: &AtomicU32) {
    let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        (v & 1 == 1).then_some(v.wrapping_add(1))
    });
}

/// The word the current thread watches, if any (masking aside). None while the thread's
/// locals are being destroyed.
pub(crate) fn watched() -> Option<Arc<AtomicU32>> {
    WATCHED.try_with(|w| w.borrow().clone()).ok().flatten()
}

/// Makes the current thread watch `word` (or none); returns what it watched before.
pub(crate) fn set_watched(word: Option<Arc<AtomicU32>>) -> Option<Arc<AtomicU32>> {
    WATCHED
        .try_with(|w| std::mem::replace(&mut *w.borrow_mut(), word))
        .ok()
        .flatten()
}

/// Whether a blocking call on this thread must stop now: the process word or the thread's
/// watched word is set. Two loads (and a thread-local access); cheap enough for spin loops
/// that call it every few hundred polls.
pub(crate) fn pending() -> bool {
    !masked() && (is_set(&PROCESS) || watched().as_deref().is_some_and(is_set))
}

extern "C" fn on_signal(_: libc::c_int) {
    fire(&PROCESS);
}

/// Installs a handler for each of `signals` that fires [`PROCESS`] instead of the signal's
/// default action. Without `SA_RESTART`, so a blocking read elsewhere in the program sees
/// `EINTR` too.
pub(crate) fn fire_on_signals(signals: &[i32]) -> std::io::Result<()> {
    ARMED.store(true, Ordering::SeqCst);
    for &sig in signals {
        // SAFETY: an all-zero `sigaction` is a valid value of this plain C struct (no handler,
        // empty mask, no flags); every field we rely on is set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = 0;
        // SAFETY: `action.sa_mask` is a valid, writable sigset_t owned by this frame.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised; the handler only performs async-signal-safe
        // operations (an atomic RMW and the futex system call); a null old-action pointer is
        // allowed.
        let rc = unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_and_reset_toggle_parity() {
        let w = AtomicU32::new(0);
        assert!(!is_set(&w));
        fire(&w);
        fire(&w); // sticky: a second firing changes nothing
        assert!(is_set(&w));
        assert_eq!(w.load(Ordering::Relaxed), 1);
        reset(&w);
        reset(&w);
        assert!(!is_set(&w));
        assert_eq!(w.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn watched_word_is_per_thread() {
        let w = Arc::new(AtomicU32::new(1));
        let before = set_watched(Some(Arc::clone(&w)));
        assert!(before.is_none());
        assert!(pending());
        std::thread::spawn(|| assert!(!pending())).join().unwrap();
        set_watched(before);
        assert!(!pending());
    }
}
