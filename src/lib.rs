//! # shmq: inter-process communication through named shared memory
//!
//! shmq gives Linux processes the shapes of Python's `multiprocessing` — [`Pipe`], [`Queue`],
//! [`JoinableQueue`], [`PriorityQueue`], [`Value`], [`Array`], [`Mutex`]/[`Lock`],
//! [`Semaphore`], [`Event`] — living
//! in named POSIX shared memory (`/dev/shm/NAME`) or a memory-mapped file, and synchronised
//! with futexes, so the cost of talking to another process is the cost of moving a cache line.
//!
//! Every object is created by one process and opened by name by others:
//!
//! ```
//! use shmq::{Event, Mutex};
//!
//! let id = std::process::id();
//! let counter = Mutex::<u64>::create(format!("doc-counter-{id}"), 0)?;
//! let done = Event::create(format!("doc-done-{id}"))?;
//!
//! // In another process: Mutex::<u64>::open(...) and Event::open(...) by the same names.
//! *counter.lock().map_err(|e| e.to_string())? += 1;
//! done.set();
//!
//! assert_eq!(*counter.lock().map_err(|e| e.to_string())?, 1);
//! assert!(done.is_set());
//! // Dropping the creator's handles removes the names from /dev/shm.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## When to use it, and when not
//! Use it between processes on one Linux machine that must survive each other's *crashes*:
//! a peer killed mid-operation never wedges or corrupts the others (see each type's "Crash
//! safety"). Every header field, index and length read from a segment is validated before
//! use, so a buggy or hostile peer that scribbles over the shared structures yields an error,
//! never an out-of-bounds access. Do not use it across machines, across pid namespaces
//! (liveness checks use pids), or for types with pointers: payloads must be [`Pod`].
//!
//! ## Known limits
//! - **Data under a guard trusts the protocol.** A [`MutexGuard`], an [`ArrayGuard`] or a
//!   ring grant hands out `&T` / `&mut [u8]` over shared memory; that is sound while every
//!   process follows the locking (or ring) protocol. A peer that writes those bytes without
//!   holding the lock can change the values you see (any bit pattern is a valid [`Pod`]),
//!   but that is a data race by Rust's rules, so only share segments with code you trust to
//!   follow the protocol.
//! - **Truncation.** A process with write access to the file can shrink it; touching the lost
//!   pages then raises SIGBUS in every process that maps it. Named shared memory cannot be
//!   sealed against this; keep segment permissions tight (the default is `0o600`).
//! - **Queues and crashes.** A process killed inside a `put` loses that item (its `put` never
//!   returned); one killed inside a `get` takes its item with it. Every committed item not yet
//!   taken survives, in order, and the queue keeps working; a [`JoinableQueue`] task taken by
//!   a consumer that dies before `task_done` stays unfinished (use `join_timeout`).
//! - **Durability.** [`Options::file`] segments outlive every process; they survive an OS
//!   crash only up to the last `flush` (`msync`).
//! - **fork.** A forked child inherits handles and guards; it must not use a guard its parent
//!   held. Segments are removed only by the process that created them.
//!
//! ## Map
//! - Messages: [`Ring`] (single producer, single consumer, zero-copy: [`Producer`] /
//!   [`Consumer`], [`WriteGrant`] / [`ReadGuard`], [`WriteBatch`], typed [`Sender`] /
//!   [`Receiver`]) and [`Pipe`] (duplex, two rings). [`WaitMode`] picks busy-poll, blocking or
//!   hybrid waiting.
//! - Queues (any number of producer and consumer processes): [`Queue`] of [`Pod`] items,
//!   [`ByteQueue`] of variable-size messages (zero-copy [`Loan`] / [`Message`]),
//!   [`JoinableQueue`] (`task_done` / `join`), [`PriorityQueue`] (smallest first).
//! - Objects: [`Value`], [`Array`], [`Mutex`] and [`Lock`], [`Semaphore`], [`Event`], and raw
//!   [`Segment`]s of bytes.
//! - Tools: [`Survey`] reads any segment without attaching or writing (header, capacity,
//!   fill, recorded processes and whether each lives, the first waiting messages); the
//!   `shmq` command's `ls`, `inspect` and `gc` are built on it. [`Peer`] says where the other
//!   end of a ring is. [`Janitor`] removes segments the moment their last user dies
//!   (`shmq gc --watch`).
//! - Naming and options: [`Options`] (name or file path, permissions, persistence, open
//!   timeout). Every constructor takes `impl Into<Options>`, so a `&str` name works.
//! - Errors: one type per operation — [`CreateError`], [`OpenError`], [`OpenOrCreateError`],
//!   [`OwnerDied`], [`TryLockError`], [`LockTimeoutError`], [`SemaphoreFull`],
//!   [`OutOfBounds`], [`AttachError`], [`TrySendError`], [`SendError`], [`SendTimeoutError`],
//!   [`TryRecvError`], [`RecvError`], [`RecvTimeoutError`]; for queues [`PutError`] (gives the
//!   item back), [`GetError`], [`TaskDoneError`], [`JoinTimeout`]; for the janitor
//!   [`JanitorError`].
//!
//! ## Layers
//! `sys` (the only code that calls the OS) → `segment` (the header, created and validated
//! there only) → `sync` (futex state machines) → `cell` and `ring` (algorithms, the wait strategy) → the
//! types above.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    clippy::multiple_unsafe_ops_per_block
)]

mod api;
mod cell;
mod error;
mod region;
mod ring;
pub mod segment;
mod sync;
mod sys;

pub use api::Pod;
pub use api::array::{Array, ArrayGuard};
pub use api::byte_queue::{ByteQueue, Loan, Message};
pub use api::event::Event;
pub use api::janitor::{Janitor, JanitorBuilder, JanitorError, JanitorEvent, Trigger};
pub use api::mutex::{Lock, Mutex, MutexGuard};
pub use api::pipe::Pipe;
pub use api::priority::PriorityQueue;
pub use api::queue::{JoinableQueue, Queue};
pub use api::ring::{Consumer, Peer, Producer, ReadGuard, Ring, WriteBatch, WriteGrant};
pub use api::ring_typed::{Receiver, Sender, TypedGrant, TypedGuard};
pub use api::semaphore::{SEMAPHORE_MAX, Semaphore};
pub use api::survey::{Capacity, Peeked, Process, Survey};
pub use api::value::{Integer, Number, Value};
pub use error::{
    AttachError, CreateError, GetError, JoinTimeout, LockTimeoutError, OpenError,
    OpenOrCreateError, OutOfBounds, OwnerDied, PutError, RecvError, RecvTimeoutError,
    SemaphoreFull, SendError, SendTimeoutError, TaskDoneError, TryLockError, TryRecvError,
    TrySendError,
};
pub use ring::wait::WaitMode;
pub use segment::{Kind, Options, Segment, SegmentInfo};

/// Re-exported so users can derive [`Pod`] without naming zerocopy in their own manifest.
pub use zerocopy;
