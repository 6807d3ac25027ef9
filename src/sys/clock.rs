//! Deadlines.

use std::time::{Duration, Instant};

/// The deadline `timeout` from now; `None` (no limit) if that is beyond what `Instant` can
/// represent, so `Duration::MAX` means "forever" instead of overflowing.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Whether `deadline` has passed at `now` (`None` never passes).
pub(crate) fn passed(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
