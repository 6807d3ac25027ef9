//! L3: the lock-free single-producer single-consumer byte ring, and the one wait strategy.
//!
//! [`spsc`] is the algorithm over a [`Region`](crate::region::Region); [`wait`] is how either
//! side waits (spin, then yield, then futex). The public handles are in `api::ring`.

pub(crate) mod mpmc;
pub(crate) mod participants;
pub(crate) mod spsc;
pub(crate) mod topic;
pub(crate) mod wait;
