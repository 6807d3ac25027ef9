//! # shmq: inter-process communication through named shared memory
//!
//! shmq gives Linux processes the shapes of Python's `multiprocessing` — [`Pipe`], [`Queue`],
//! [`JoinableQueue`], [`PriorityQueue`], [`Value`], [`Array`], [`Mutex`]/[`Lock`],
//! [`Semaphore`], [`Event`] — and a broadcast [`Topic`], living
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
//! *counter.lock()? += 1;
//! done.set();
//!
//! assert_eq!(*counter.lock()?, 1);
//! assert!(done.is_set());
//! // Dropping the last handles removes the names from /dev/shm.
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
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
//! ## Payload types
//! Typed objects hold plain data: `#[derive(shmq::Pod)]` on a `#[repr(C)]` struct of numbers,
//! arrays and other such structs, without padding (the derive checks it). A segment records
//! its type's *layout fingerprint* — field names, offsets and primitive kinds, not the type's
//! name or module — so separately built programs, other compilers and other languages agree
//! on it, and an open with another layout fails naming both; a tag
//! (`#[shmq(tag = "tick.v1")]`, [`Options::type_tag`]) versions a type by name instead. See
//! [`pod`] for the rules and the exact scheme.
//!
//! ```
//! #[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct Tick { px: f64, qty: u32, side: u32 }
//!
//! let name = format!("doc-tick-{}", std::process::id());
//! let q = shmq::Queue::<Tick>::create(name.as_str(), 1024)?;
//! q.put(Tick { px: 101.5, qty: 3, side: 1 })?;
//! assert_eq!(q.get()?.qty, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Lifecycle
//! A name lives while any process uses it. Every handle holds its segment's *use lock* (a
//! shared `flock` the kernel drops when the process dies, however it dies); the last handle
//! dropped, in any process, removes the name, and a process that opens the name later
//! attaches as long as someone still uses it. If every user was killed, `create` of the
//! name replaces the abandoned segment at once (never one any live process uses, never a
//! persistent one, never a file that is not a shmq segment), and `shmq gc --watch` removes it
//! within milliseconds. See [`segment`] for the protocol and [`Segment::remove_if_unused`].
//!
//! Queues know their sides ([`Side`]): a `get` on an empty queue returns `Disconnected` once
//! every handle that puts is gone (dropped, or its process dead), and a `put` on a full one
//! once every handle that gets is gone. A closed queue is `Closed` on both sides (a `get`
//! says so once it has drained the queue). [`JoinableQueue::join`] reports tasks lost with
//! dead workers instead of waiting for ever.
//!
//! ## Blocking calls and their bounds
//! Every blocking call returns its `Interrupted` error when an [`Interrupter`] the thread
//! watches fires (or the process-wide one, which [`interrupt_on_signals`] ties to SIGINT and
//! SIGTERM), except the plain `Value`/`Array` element calls, which have no error to say so
//! with (their bounded forms do).
//!
//! | call | waits for | bounded forms | a dead peer ends the wait |
//! |------|-----------|---------------|---------------------------|
//! | `open` of any kind | the creator to finish initializing | [`Options::open_timeout`] (default 1 s) | yes: `Abandoned` |
//! | `create` | only for another process that is judging the same name that moment (each look is sub-millisecond; bounded retries) | — | — |
//! | [`Producer`] `send`, `reserve`; [`Sender`] `send`, `reserve` | room in the ring | `try_`, `_timeout`, `_deadline` | consumer gone: `Disconnected` |
//! | [`Consumer`] `recv`, `recv_into`, `drain`; [`Receiver`] `recv`, `recv_value`, `drain`; [`Pipe`] `send`/`recv`/`recv_into` | a message / room | `try_`, `_timeout`, `_deadline` | peer gone and drained: `Disconnected` |
//! | [`Queue`], [`ByteQueue`], [`PriorityQueue`] `put`, `loan` | room | `try_`, `_timeout`, `_deadline` | every getter gone: `Disconnected` |
//! | [`Queue`], [`ByteQueue`], [`PriorityQueue`] `get` | an item | `try_`, `_timeout`, `_deadline` | every putter gone: `Disconnected` (closed and drained: `Closed`) |
//! | [`JoinableQueue::join`] | every task done | `try_`, `_timeout`, `_deadline` | taker died: `JoinError::Lost` |
//! | [`Mutex::lock`], [`Array::lock`] | the lock | `try_`, `_timeout`, `_deadline` | holder died: `OwnerDied`, then `Poisoned` |
//! | [`Semaphore::acquire`] | a permit | `try_`, `_timeout`, `_deadline` | no (permits are not owned) |
//! | [`Event::wait`] | the flag | `try_`, `_timeout`, `_deadline` | no (the flag is not owned) |
//! | [`Value`] `store`/`swap`/`update`/`compare_exchange` (over 8 bytes) | the writer lock | `try_`, `_timeout`, `_deadline` | holder died: taken over |
//! | [`Value::load`] (over 8 bytes) | a consistent copy | `try_load`, `load_timeout`, `load_deadline`; `load` itself gives up after 1 s | — |
//! | [`Array`] `get`/`set`/`read_into`/`write_from`/`to_vec` | the lock | `try_`, `_timeout`, `_deadline` | holder died: taken over |
//! | [`RawArray`] (any call) | nothing: no lock | — | — |
//! | [`Publisher`] `publish`, `reserve` (Block policy) | the slowest subscriber to make room | `try_`, `_timeout`, `_deadline` | a dead subscriber stops holding the topic back within ~100 ms |
//! | [`Subscriber`] `recv`, `recv_into` | a message | `try_`, `_timeout`, `_deadline` | every publisher gone and everything received: `Disconnected` |
//! | [`Select::select`] | any registration ready | `try_select`, `select_timeout`, `select_deadline` | the peer's registration becomes ready (the `try_` call then says `Disconnected`) |
//!
//! A live process that holds a lock (or a peer that forged a lock word to name one) delays
//! the unbounded forms as long as it lives; the bounded forms end at their bound. Nothing a
//! peer writes into shared memory makes a bounded call wait past its bound.
//!
//! ## Known limits
//! - **Data under a guard trusts the protocol.** A [`MutexGuard`], an [`ArrayGuard`] or a
//!   ring grant hands out `&T` / `&mut [u8]` over shared memory; that is sound while every
//!   process follows the locking (or ring) protocol. A peer that writes those bytes without
//!   holding the lock (a buggy one, or a [`RawArray`] writing an array that someone holds a
//!   guard on) can change the values you see (any bit pattern is a valid [`Pod`]), but that
//!   is a data race by Rust's rules, so only share segments with code you trust to follow
//!   the protocol.
//! - **Poisoning.** A guard dropped while its thread panics, or a lock taken over from a
//!   dead holder, poisons a [`Mutex`] or [`Array`] lock for every process until
//!   `clear_poison` ([`Poisoned`], [`OwnerDied`]). A process that dies by `panic = "abort"`
//!   or a signal drops nothing; its death is noticed instead.
//! - **Truncation.** A process with write access to the file can shrink it; touching the lost
//!   pages then raises SIGBUS in every process that maps it. Named shared memory cannot be
//!   sealed against this; keep segment permissions tight (the default is `0o600`).
//! - **Queues and crashes.** A process killed inside a `put` loses that item (its `put` never
//!   returned); one killed inside a `get` takes its item with it. Every committed item not yet
//!   taken survives, in order, and the queue keeps working; a [`JoinableQueue`] task taken by
//!   a consumer that dies before `task_done` stays unfinished, and `join` reports it
//!   ([`JoinError::Lost`]) once everything else is done — except a consumer killed in the
//!   few instructions between taking an item and recording it as owed, whose task stays
//!   unfinished unreported (use `join_timeout` where that matters).
//! - **Durability.** [`Options::file`] segments outlive every process; they survive an OS
//!   crash only up to the last `flush` (`msync`).
//! - **fork.** A forked child inherits handles and guards; it must not use a guard its parent
//!   held. It shares its parent's open file, and so its use lock: the kernel cannot tell
//!   the two apart, so when the parent drops its handle (or exits) first, the name is
//!   removed although the child still uses the segment (the child keeps working; later
//!   openers get `NotFound`). A child's drop never removes the name. Children that must keep
//!   the name alive open it themselves (as spawned processes do).
//!
//! ## Map
//! - Messages: [`Ring`] (single producer, single consumer, zero-copy: [`Producer`] /
//!   [`Consumer`], [`WriteGrant`] / [`ReadGuard`], [`WriteBatch`], typed [`Sender`] /
//!   [`Receiver`]) and [`Pipe`] (duplex, two rings). [`WaitMode`] picks busy-poll, blocking or
//!   hybrid waiting.
//! - Serde messages (feature `serde`, off by default): `SerdeSender` / `SerdeReceiver` (a
//!   ring), `SerdePipe` and `SerdeQueue` move any `Serialize + DeserializeOwned` type, encoded
//!   with postcard in place; `SerdeOptions` names what an end carries.
//! - Broadcast: [`Topic`] — any number of [`Publisher`]s, up to [`TopicConfig::subscribers`]
//!   [`Subscriber`]s that each receive every message with their own cursor; publishing costs
//!   the same whatever the number of subscribers. [`Policy::Block`] (lossless, zero-copy) or
//!   [`Policy::Overwrite`] (publishers never wait; a lapped subscriber gets
//!   [`TopicRecvError::Lagged`]); late joiners start at the oldest, latest or next message
//!   ([`StartAt`]); [`Topic::latest`] is a last-value cache.
//! - Queues (any number of producer and consumer processes): [`Queue`] of [`Pod`] items,
//!   [`ByteQueue`] of variable-size messages (zero-copy [`Loan`] / [`Message`]),
//!   [`JoinableQueue`] (`task_done` / `join`), [`PriorityQueue`] (smallest first). Queue
//!   handles make more handles of their own with `try_clone`.
//! - Iteration: every receiving end has `iter()` (blocking, ends when nothing more can
//!   come), `try_iter()` (what is there now) and `for` over a borrowed end: [`Iter`],
//!   [`TryIter`].
//! - Waiting on many: [`Select`] returns the first ready of any mix of ring and pipe ends,
//!   queue sides, events, semaphores and mutexes, with one `futex_waitv` sleep.
//! - Async (feature `async`, any executor): `recv_async`, `send_async`, `reserve_async`,
//!   `get_async`, `put_async`, `wait_async`, `acquire_async`, `lock_async` beside the
//!   blocking calls; cancellation-safe, woken by the [`Readiness`] thread.
//! - Event loops: [`Readiness`] is a file descriptor that is readable while any of its
//!   registrations (the same kinds) is ready, for epoll, mio, tokio's `AsyncFd` or `selectors`.
//! - Objects: [`Value`], [`Array`] (and [`RawArray`], the same array without the lock),
//!   [`Mutex`] and [`Lock`], [`Semaphore`], [`Event`], and raw [`Segment`]s of bytes
//!   (copied with `read`/`write`, or seen as a slice with the `unsafe`
//!   [`Segment::as_slice`]).
//! - Tools: [`Survey`] reads any segment without attaching or writing (header, capacity,
//!   fill, recorded processes and whether each lives, the first waiting messages); the
//!   `shmq` command's `ls`, `inspect` and `gc` are built on it. [`Peer`] says where the other
//!   end of a ring is. [`Janitor`] removes segments the moment their last user dies
//!   (`shmq gc --watch`).
//! - Payloads: [`Pod`] and `#[derive(shmq::Pod)]`, the layout fingerprint ([`pod`]).
//! - Naming and options: [`Options`] (name or file path, permissions, persistence, open
//!   timeout, type tag). Every constructor takes `impl Into<Options>`, so a `&str` name works.
//! - Errors: one type per operation, each `Send + Sync + 'static` so that `?` turns it into
//!   a `Box<dyn Error + Send + Sync>` or an `anyhow::Error` — [`CreateError`], [`OpenError`],
//!   [`OpenOrCreateError`], [`OwnerDied`], [`Poisoned`], [`LockError`], [`TryLockError`],
//!   [`LockTimeoutError`], [`SemaphoreFull`], [`Interrupted`],
//!   [`OutOfBounds`], [`AttachError`], [`TrySendError`], [`SendError`], [`SendTimeoutError`],
//!   [`TryRecvError`], [`RecvError`], [`RecvTimeoutError`]; for queues [`PutError`] (gives the
//!   item back), [`GetError`], [`TaskDoneError`], [`JoinError`]; for the bounded calls of
//!   [`Value`] and [`Array`], [`ValueError`] and [`ArrayError`] (give the value back); for
//!   the janitor [`JanitorError`]; for topics [`TopicAttachError`], [`PublishError`],
//!   [`TopicRecvError`].
//!   Blocking calls end with an `Interrupted` error when an [`Interrupter`] fires.
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
pub use api::interrupt::{Interrupter, Watching, interrupt_on_signals};
pub use api::iter::{Iter, TryIter};
pub use api::janitor::{Janitor, JanitorBuilder, JanitorError, JanitorEvent, Trigger};
pub use api::mutex::{Lock, Mutex, MutexGuard};
pub use api::pipe::Pipe;
pub use api::priority::PriorityQueue;
pub use api::queue::{JoinableQueue, Queue, Side};
pub use api::raw_array::RawArray;
#[doc(hidden)]
pub use api::readiness::OwnedReg;
pub use api::readiness::{Readiness, ReadinessError};
pub use api::ring::{Consumer, Peer, Producer, ReadGuard, Ring, WriteBatch, WriteGrant};
pub use api::ring_typed::{Receiver, Sender, TypedGrant, TypedGuard};
#[doc(hidden)]
pub use api::select::Reg;
pub use api::select::{Select, SelectError, Selectable};
pub use api::semaphore::{SEMAPHORE_MAX, Semaphore};
#[cfg(feature = "serde")]
pub use api::serde_ends::{
    DecodeError, EncodeError, SerdeOptions, SerdePipe, SerdeQueue, SerdeReceiver, SerdeRecvError,
    SerdeSendError, SerdeSender,
};
#[cfg(feature = "serde")]
pub use api::serde_ends::{SerdePublisher, SerdeSubscriber, SerdeTopic};
pub use api::survey::SubscriberLag;
pub use api::survey::{Bell, Capacity, Peeked, Process, Survey};
pub use api::topic::{
    Policy, Publisher, StartAt, Subscriber, Topic, TopicConfig, TopicGrant, TopicMsg,
};
pub use api::topic_typed::{
    TypedPublisher, TypedSubscriber, TypedTopic, TypedTopicGrant, TypedTopicMsg,
};
pub use api::value::{Integer, Number, Value};
pub use error::{ArrayError, ValueError};
pub use error::{
    AttachError, CreateError, GetError, Interrupted, JoinError, LockError, LockTimeoutError,
    OpenError, OpenOrCreateError, OutOfBounds, OwnerDied, Poisoned, PutError, RecvError,
    RecvTimeoutError, SemaphoreFull, SendError, SendTimeoutError, TaskDoneError, TryLockError,
    TryRecvError, TrySendError,
};
pub use error::{PublishError, TopicAttachError, TopicRecvError};
pub use ring::wait::WaitMode;
pub use segment::{Kind, Options, Segment, SegmentInfo};

pub use api::pod;
/// `#[derive(shmq::Pod)]`: see [`pod`].
pub use shmq_derive::Pod;

// The derive names `::shmq::...`; this lets the crate's own tests use it too.
extern crate self as shmq;
