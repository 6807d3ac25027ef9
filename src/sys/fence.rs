//! A heavy memory barrier across processes, so that hot paths can skip their half of a
//! Dekker handshake (the "asymmetric fence" of `membarrier(2)`).
//!
//! Rings publish a message with a plain Release store and then read the peer's "I am about to
//! sleep" flag. Without a full fence between the two, the CPU may read the flag before the
//! store is visible, and a peer that set the flag and re-checked at that moment would sleep
//! through the message. Instead of a fence on every message, the *sleeper* calls [`heavy`]
//! between setting its flag and re-checking: `MEMBARRIER_CMD_GLOBAL_EXPEDITED` interrupts every
//! running thread of every process that [`register`]ed, forcing each through a full barrier.
//! Then either the publisher's flag read comes after the barrier (and sees the flag), or its
//! store came before it (and the sleeper's re-check sees the message).
//!
//! Where membarrier is unavailable, [`light`] becomes a real SeqCst fence on the hot path, so
//! the protocol stays correct, only slower.

use std::sync::atomic::{AtomicU8, Ordering, compiler_fence, fence};

use rustix::thread::{MembarrierCommand, membarrier};

const UNKNOWN: u8 = 0;
const EXPEDITED: u8 = 1;
const FALLBACK: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Registers this process for expedited global barriers; idempotent and cheap after the first
/// call. Every process that publishes on a ring calls this before its first publish.
pub(crate) fn register() {
    if STATE.load(Ordering::Relaxed) != UNKNOWN {
        return;
    }
    // Miri runs no membarrier: the fallback (a real fence in `light`) is correct, only slower.
    if cfg!(miri) {
        STATE.store(FALLBACK, Ordering::Relaxed);
        return;
    }
    let ok = membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
        && membarrier(MembarrierCommand::GlobalExpedited).is_ok();
    STATE.store(if ok { EXPEDITED } else { FALLBACK }, Ordering::Relaxed);
}

/// The publisher's half: free (a compiler fence) when membarrier works, else a full fence.
#[inline(always)]
pub(crate) fn light() {
    if STATE.load(Ordering::Relaxed) == EXPEDITED {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The sleeper's half: a barrier in every registered process (a few microseconds).
pub(crate) fn heavy() {
    register();
    fence(Ordering::SeqCst);
    if STATE.load(Ordering::Relaxed) == EXPEDITED
        && membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    {
        return;
    }
    if cfg!(miri) {
        return; // no membarrier under Miri; `light` is a real fence there (see `register`)
    }
    // The slow global barrier needs no registration (it waits for a grace period, about a
    // millisecond); sleeping is the slow path anyway. If even that is refused (seccomp), the
    // sleeper's bounded futex timeout is what remains.
    let _ = membarrier(MembarrierCommand::Global);
    fence(Ordering::SeqCst);
}
