//! The async forms of the blocking calls of queues, events, semaphores and mutexes (feature
//! `async`; the ring and pipe ones live beside their types). Each tries the operation first
//! and, only if it would block, awaits readiness from the process's readiness thread (see
//! [`Readiness`](crate::Readiness)), then tries again: while items flow nothing sleeps, no
//! executor is assumed, and a future dropped before it completes has done nothing.

use crate::api::readiness::until_ready;
use crate::api::select::Selectable;
use crate::error::{GetError, LockError, PutError, TryLockError};
use crate::{ByteQueue, Event, Message, Mutex, MutexGuard, Pod, PriorityQueue, Queue, Semaphore};

/// `get_async` and `put_async` for a queue of `T` items (`Queue`, `PriorityQueue`).
macro_rules! item_queue_async {
    ($queue:ident, $($bound:tt)+) => {
        impl<T: $($bound)+> $queue<T> {
            #[doc = concat!("[`", stringify!($queue), "::get`] for async code (feature `async`), on any executor.")]
            ///
            /// # Cancel safety
            /// Cancellation-safe: dropped before it completes, it has taken nothing.
            ///
            /// # Errors
            #[doc = concat!("As [`", stringify!($queue), "::get`], except `Interrupted` (cancel the future instead).")]
            pub async fn get_async(&self) -> Result<T, GetError> {
                loop {
                    match self.try_get() {
                        Err(GetError::Empty) => until_ready(self.registration_owned(false)).await,
                        other => return other,
                    }
                }
            }

            #[doc = concat!("[`", stringify!($queue), "::put`] for async code (feature `async`), on any executor.")]
            ///
            /// # Cancel safety
            /// Cancellation-safe: dropped before it completes, it has put nothing (and `value` is
            /// dropped with it).
            ///
            /// # Errors
            #[doc = concat!("As [`", stringify!($queue), "::put`], except `Interrupted`.")]
            pub async fn put_async(&self, mut value: T) -> Result<(), PutError<T>> {
                loop {
                    match self.try_put(value) {
                        Err(PutError::Full(v)) => value = v,
                        other => return other,
                    }
                    until_ready(self.registration_owned(true)).await;
                }
            }
        }
    };
}

item_queue_async!(Queue, Pod);
item_queue_async!(PriorityQueue, Pod + Ord);

impl ByteQueue {
    /// [`ByteQueue::get`] for async code (feature `async`), on any executor.
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has taken nothing.
    ///
    /// # Errors
    /// As [`ByteQueue::get`], except `Interrupted`.
    pub async fn get_async(&self) -> Result<Message<'_>, GetError> {
        loop {
            match self.try_get() {
                Err(GetError::Empty) => until_ready(self.registration_owned(false)).await,
                other => return other,
            }
        }
    }

    /// [`ByteQueue::put`] for async code (feature `async`), on any executor.
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has put nothing.
    ///
    /// # Errors
    /// As [`ByteQueue::put`], except `Interrupted`.
    pub async fn put_async(&self, msg: &[u8]) -> Result<(), PutError> {
        loop {
            match self.try_put(msg) {
                Err(PutError::Full(())) => until_ready(self.registration_owned(true)).await,
                other => return other,
            }
        }
    }
}

impl Event {
    /// Waits for the event to be set, for async code (feature `async`), on any executor.
    ///
    /// # Cancel safety
    /// Cancellation-safe: it changes nothing.
    pub async fn wait_async(&self) {
        while !self.is_set() {
            until_ready(self.registration_owned()).await;
        }
    }
}

impl Semaphore {
    /// Takes a permit, for async code (feature `async`), on any executor.
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has taken no permit.
    pub async fn acquire_async(&self) {
        while !self.try_acquire() {
            until_ready(self.registration_owned()).await;
        }
    }
}

impl<T: Pod> Mutex<T> {
    /// Locks, for async code (feature `async`), on any executor. The guard may be held across
    /// `.await`s (and sent to other threads), but every moment it is held blocks the other
    /// processes: keep it short.
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it holds nothing.
    ///
    /// # Errors
    /// As [`Mutex::lock`] (`OwnerDied`, `Poisoned`, each with the guard), except
    /// `Interrupted`.
    pub async fn lock_async(&self) -> Result<MutexGuard<T>, LockError<MutexGuard<T>>> {
        loop {
            match self.try_lock() {
                Ok(g) => return Ok(g),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::OwnerDied(d)) => return Err(LockError::OwnerDied(d)),
                Err(TryLockError::Poisoned(p)) => return Err(LockError::Poisoned(p)),
            }
            until_ready(self.registration_owned()).await;
        }
    }
}
