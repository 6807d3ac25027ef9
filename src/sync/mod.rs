//! L2: futex-backed synchronisation state machines in shared memory.
//!
//! Each primitive is one or two `u32` words plus, for the mutex, the owner's start time; they
//! take their words from a [`Region`](crate::region::Region) and never open or map anything.
//! Sleeping goes through one seam, [`park`], so the spin-then-futex policy lives in one place.
//! The public handles built on these are [`crate::Mutex`], [`crate::Semaphore`] and
//! [`crate::Event`].

pub(crate) mod event;
pub(crate) mod mutex;
pub(crate) mod park;
pub(crate) mod semaphore;
