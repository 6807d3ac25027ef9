//! [`Readiness`]: the readiness of shmq objects as a file descriptor, for epoll, mio, tokio's
//! `AsyncFd` and Python's `selectors`.
//!
//! Implementation notes. Every [`Readiness`] of the process shares one background thread,
//! started with the first one. The thread keeps a snapshot of the process's registrations
//! (the registry below) and sleeps with one `futex_waitv` on the bells of the registrations
//! of every *armed* `Readiness` plus a private control word. Each registration is a
//! [`Select`](crate::Select) registration ([`Reg`]) built from an [`OwnedReg`], so the wake-up
//! protocol is `wait_any`'s: announce, then before every poll the barriers, the bells read,
//! the polls, and a sleep only while every word is unchanged (a change ends the sleep, so no
//! wake-up is lost). A registration found ready sets its `hit` flag, and if its `Readiness`
//! was armed, disarms it and adds one to its eventfd; the thread then withdraws its
//! announcements on that `Readiness`'s objects (so their peers stop paying for wake-ups) until
//! [`Readiness::ready`] finds nothing ready and re-arms it. While anything is armed the sleep
//! lasts at most `CHECK_EVERY`, after which the polls also look at the peers' liveness.
//!
//! The control word is bumped (and woken) whenever the registry changes or a `Readiness` is
//! re-armed. The thread reads it before it looks at the registry's generation and the armed
//! flags, so a change made after the read ends the sleep at once.
//!
//! Soundness does not rest on timing: the thread reads only what the registrations own
//! (each [`OwnedReg`] holds an `Arc<Segment>` and copies, never a borrow of a handle), so
//! however a `Readiness` or an object ends (`mem::forget` included), everything the thread
//! can touch stays mapped while it holds it. Dropping a registration also waits until the
//! thread has let go of it (the `acked` generation), so its announcements are withdrawn
//! before the drop returns.
//!
//! The arming state of one `Readiness`:
//!
//! | `armed` | eventfd | meaning                                                          |
//! |---------|---------|------------------------------------------------------------------|
//! | true    | 0       | watched by the thread; nothing found ready since it was armed    |
//! | false   | not 0   | the thread found something ready: the descriptor is readable     |
//! | false   | 0       | for an instant: the thread has disarmed it and is about to signal |
//! | true    | not 0   | `ready` re-armed it while the thread signalled: readable, perhaps |
//! |         |         | with nothing ready (the next `ready` then returns nothing and    |
//! |         |         | clears it), and watched                                          |
//!
//! Only the thread disarms (`swap(false)`, then signal) and only `ready` arms (drain, then
//! `swap(true)`, then poke the thread if it was disarmed).

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::api::select::{Reg, Selectable};
use crate::ring::wait::{self, CHECK_EVERY, MAX_SOURCES, Sleeper, Source};
use crate::segment::Segment;
use crate::sys::eventfd::EventFd;

/// A file descriptor that is readable while a shmq object registered with it is ready, so
/// shmq rings, pipes, queues, topics, events, semaphores and mutexes sit in an event loop (epoll,
/// mio, tokio's `AsyncFd`, Python's `selectors`) beside sockets and pipes.
///
/// Registration mirrors [`Select`](crate::Select): [`recv`](Readiness::recv),
/// [`send`](Readiness::send), [`recv_pipe`](Readiness::recv_pipe),
/// [`send_pipe`](Readiness::send_pipe), [`get`](Readiness::get), [`put`](Readiness::put),
/// [`recv_topic`](Readiness::recv_topic), [`publish`](Readiness::publish),
/// [`wait`](Readiness::wait), [`acquire`](Readiness::acquire), [`lock`](Readiness::lock),
/// each returning the registration's index (the lowest free one);
/// [`remove`](Readiness::remove) takes one out, and dropping the `Readiness` removes all.
/// A registration is ready exactly when a `Select` over it would return it: the operation
/// would not wait, or would fail at once for good (the peer gone, also one killed with
/// SIGKILL, noticed within about 40 ms; the queue closed; the memory corrupt).
///
/// ```
/// use rustix::event::epoll;
/// use shmq::{Readiness, Ring, TryRecvError};
///
/// let ring = Ring::create(format!("doc-readiness-{}", std::process::id()), 4096)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
///
/// let mut readiness = Readiness::new()?;
/// let on_ring = readiness.recv(&rx)?;
/// let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
/// epoll::add(&ep, &readiness, epoll::EventData::new_u64(7), epoll::EventFlags::IN)?;
///
/// tx.send(b"hello")?; // in another process, usually
/// let mut events = Vec::with_capacity(4);
/// epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None)?;
/// let data = events[0].data;
/// assert_eq!(data.u64(), 7);
/// for i in readiness.ready() {
///     assert_eq!(i, on_ring);
///     loop {
///         match rx.try_recv() {
///             Ok(msg) => assert_eq!(&*msg, b"hello"),
///             Err(TryRecvError::Empty) => break,
///             Err(e) => return Err(e.into()),
///         }
///     }
/// }
/// // Drained: the next `ready` finds nothing, and the descriptor stops being readable.
/// assert!(readiness.ready().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Level-triggered, and how to clear it
/// The descriptor becomes readable when a registration is found ready, and stays readable
/// until a call to [`ready`](Readiness::ready) finds *no* registration ready: that call
/// clears it and hands the watch back to the background thread. So, as with a socket:
///
/// - **epoll, level-triggered (the default), `poll`, `select`, Python's `selectors`:** when
///   the descriptor is readable, call `ready()` and act on each index it returns (receive
///   until `Empty`, say). The loop comes back: still readable, so `ready()` runs again; once
///   it returns an empty list the descriptor is cleared and the loop sleeps.
/// - **epoll with `EPOLLET`, mio:** an edge comes only when the thread signals, which it does
///   only after `ready()` re-armed it; so after each wake-up call `ready()` until it returns
///   an empty list (as a socket is read until `EAGAIN`).
/// - **tokio's `AsyncFd`:** `let mut guard = fd.readable().await?;` then `ready()`; if it
///   returns an empty list call `guard.clear_ready()`, else act on the indices and loop (the
///   same rule as for a socket: clear only after seeing `WouldBlock`).
///
/// An empty list is never an error: a wake-up can be spurious (something became ready and
/// was taken by another process before you looked, or `ready()` raced the thread), and the
/// empty `ready()` is what clears it.
///
/// As with any readiness API the operation can still lose a race: another process may take
/// the item, the room, the permit or the lock between `ready()` and your `try_` call, which
/// then says `Empty`/`Full`/`WouldBlock`; go back to the event loop. Queues, semaphores and
/// mutexes wake one sleeper per item, permit or unlock, and the background thread counts as
/// one: act on what `ready()` reports soon, or other processes' waiters may wait for it.
///
/// # The background thread, and what it costs
/// All `Readiness` objects of a process share one thread, named `shmq-readiness`, started by
/// the first [`Readiness::new`] and then kept for the life of the process: when nothing is
/// registered (or every `Readiness` is already readable) it sleeps without a timeout and
/// uses no CPU. It costs a 256 KiB stack (mostly untouched, so a few pages of memory) and a
/// few hundred bytes per registration, plus one eventfd per `Readiness`.
///
/// It sleeps in one `futex_waitv` over the bells of every registration of every armed
/// `Readiness` and a private control word. It wakes when a watched object changes (a message
/// is published, an item put, the event set, ...), when a registration is added or removed or
/// a `Readiness` re-armed, and every 40 ms while any registration is watched, to look at the
/// peers' liveness (a `/proc` read per ring or queue registration): about 25 short wake-ups
/// a second while idle, no spinning (measured on one machine: 7 ms of CPU in 5 s with an
/// event registered, 19 ms with a ring, a queue and an event). A watched ring's producer pays a futex wake per message
/// (as it does for a consumer blocked in `recv`); once the descriptor is readable the thread
/// stops watching that `Readiness`, so a busy stream costs nothing more until `ready()`
/// re-arms it.
///
/// # Limits
/// - `futex_waitv` sleeps on at most 128 words, so the thread watches at most
///   [`Readiness::MAX`] registrations: that many in the whole **process**, all `Readiness`
///   objects together. One more fails with [`ReadinessError::TooMany`].
/// - `futex_waitv` needs Linux 5.16 or later; elsewhere [`Readiness::new`] fails with
///   [`ReadinessError::Unsupported`].
/// - A registration holds a reference to its object's segment, not to the handle: the
///   segment stays mapped (and a creator's name stays linked) until the registration is
///   removed. Remove a registration before you drop its object; until then it keeps
///   reporting on the object's shared memory.
/// - While an object is registered, use its `try_` forms from the event loop. A blocking call
///   (`recv`, `get`, ...) or a [`Select`](crate::Select) on a ring end or pipe that is also
///   registered shares the ring's single "sleeping" flag with the thread, so either may be
///   woken only by its 40 ms liveness timer; the result stays correct, only later.
/// - [`Interrupter`](crate::Interrupter)s do not reach the thread: an event loop handles
///   signals its own way (a signalfd, a self-pipe, tokio's signal streams).
/// - After `fork`, make new `Readiness` objects in the child (the first starts the child's
///   thread); those inherited share their descriptors with the parent's. Fork only while no
///   other thread of the parent makes, registers or removes (the process's registry lock
///   would stay taken in the child).
pub struct Readiness {
    shared: Arc<Shared>,
    /// Index = registration index; `None` once removed (free for the next registration).
    items: Vec<Option<Arc<Item>>>,
}

/// Why a [`Readiness`] could not be made or take a registration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadinessError {
    /// The process already has [`Readiness::MAX`] registrations, all `Readiness` objects
    /// together.
    #[error(
        "this process already has {registered} Readiness registrations, the most one futex_waitv covers ({max}); remove some, or wait on the rest with a Select in a thread of its own"
    )]
    TooMany {
        /// How many registrations the process has.
        registered: usize,
        /// [`Readiness::MAX`].
        max: usize,
    },
    /// The kernel lacks `futex_waitv` (or a seccomp filter refuses it).
    #[error(
        "Readiness needs the futex_waitv system call (Linux 5.16 or later), which this kernel does not offer or a seccomp filter refuses; wait on one object at a time instead"
    )]
    Unsupported,
    /// The eventfd or the background thread could not be made (out of file descriptors,
    /// memory or threads).
    #[error("could not make the readiness eventfd or its thread: {0}")]
    Os(#[source] io::Error),
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("fd", &self.as_raw_fd())
            .field("registrations", &self.len())
            .finish()
    }
}

impl Readiness {
    /// The most registrations one process can have, all `Readiness` objects together:
    /// `futex_waitv`'s 128 words, less the thread's control word and the two words the
    /// library keeps for interrupts.
    pub const MAX: usize = MAX_SOURCES - 1;

    /// A `Readiness` with nothing registered (its descriptor is not readable). Starts the
    /// process's background thread if it is not running.
    ///
    /// # Errors
    /// [`ReadinessError::Unsupported`] where `futex_waitv` is missing (Linux before 5.16);
    /// [`ReadinessError::Os`] if the eventfd or the thread cannot be made.
    pub fn new() -> Result<Readiness, ReadinessError> {
        if !wait::multi_wait_available() {
            return Err(ReadinessError::Unsupported);
        }
        let efd = EventFd::new().map_err(ReadinessError::Os)?;
        ensure_thread(&mut registry())?;
        Ok(Readiness {
            shared: Arc::new(Shared {
                notify: Notify::Fd(efd),
                armed: AtomicBool::new(true),
            }),
            items: Vec::new(),
        })
    }

    fn add(&mut self, source: OwnedReg) -> Result<usize, ReadinessError> {
        let item = Arc::new(Item {
            owner: Arc::clone(&self.shared),
            source,
            hit: AtomicBool::new(false),
        });
        register(&item)?;
        // The lowest free index, as file descriptors are numbered.
        match self.items.iter().position(Option::is_none) {
            Some(free) => {
                self.items[free] = Some(item);
                Ok(free)
            }
            None => {
                self.items.push(Some(item));
                Ok(self.items.len() - 1)
            }
        }
    }

    /// Registers receiving on `consumer`: ready when a message is waiting, or its producer
    /// is gone. Returns the registration's index.
    ///
    /// # Errors
    /// [`ReadinessError::TooMany`]; [`ReadinessError::Os`] if the thread had to be started
    /// anew (in a forked child) and could not.
    pub fn recv(&mut self, consumer: &crate::Consumer) -> Result<usize, ReadinessError> {
        self.add(consumer.readable_owned())
    }

    /// Registers sending a `len`-byte message on `producer`: ready when there is room for
    /// it, or the consumer is gone (or `len` can never fit). Returns the index.
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn send(
        &mut self,
        producer: &crate::Producer,
        len: usize,
    ) -> Result<usize, ReadinessError> {
        self.add(producer.writable_owned(len))
    }

    /// Registers receiving on `pipe` (its consumer end).
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn recv_pipe(&mut self, pipe: &crate::Pipe) -> Result<usize, ReadinessError> {
        self.add(pipe.readable_owned())
    }

    /// Registers sending a `len`-byte message on `pipe` (its producer end).
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn send_pipe(&mut self, pipe: &crate::Pipe, len: usize) -> Result<usize, ReadinessError> {
        self.add(pipe.writable_owned(len))
    }

    /// Registers getting from a queue of any kind ([`Queue`](crate::Queue),
    /// [`JoinableQueue`](crate::JoinableQueue), [`ByteQueue`](crate::ByteQueue),
    /// [`PriorityQueue`](crate::PriorityQueue)): ready when an item is waiting, or the queue
    /// is closed, or every putter is gone.
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn get(&mut self, queue: &impl Selectable) -> Result<usize, ReadinessError> {
        self.add(queue.registration_owned(false))
    }

    /// Registers putting to a queue of any kind: ready when there is room, or the queue is
    /// closed, or every getter is gone.
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn put(&mut self, queue: &impl Selectable) -> Result<usize, ReadinessError> {
        self.add(queue.registration_owned(true))
    }

    /// Registers waiting for `event` to be set.
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn wait(&mut self, event: &crate::Event) -> Result<usize, ReadinessError> {
        self.add(event.registration_owned())
    }

    /// Registers acquiring a permit of `semaphore`.
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn acquire(&mut self, semaphore: &crate::Semaphore) -> Result<usize, ReadinessError> {
        self.add(semaphore.registration_owned())
    }

    /// Registers locking `mutex`: ready when it is free or its holder died.
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn lock<T: crate::Pod>(
        &mut self,
        mutex: &crate::Mutex<T>,
    ) -> Result<usize, ReadinessError> {
        self.add(mutex.registration_owned())
    }

    /// Registers receiving on a [`Topic`](crate::Topic) subscriber (plain, typed or serde):
    /// ready when a message, a lag or corrupted memory waits at its cursor, or every
    /// publisher is gone. The registration reads the cursor from the subscriber's entry in
    /// the topic, so it follows the subscriber as it receives. Unlike a ring end's, a topic's
    /// sleep flag has room for any number of sleepers: a blocking `recv` on the same
    /// subscriber does not disturb the registration.
    ///
    /// ```
    /// use shmq::{Readiness, Topic};
    ///
    /// let topic = Topic::create(format!("doc-readiness-topic-{}", std::process::id()), 64, 32)?;
    /// let mut sub = topic.subscriber()?;
    /// let mut readiness = Readiness::new()?;
    /// let on_topic = readiness.recv_topic(&sub)?;
    /// assert!(readiness.ready().is_empty());
    /// topic.publisher()?.publish(b"tick")?;
    /// assert_eq!(readiness.ready(), [on_topic]);
    /// assert_eq!(&*sub.try_recv()?, b"tick");
    /// assert!(readiness.ready().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn recv_topic<S: AsRef<crate::Subscriber>>(
        &mut self,
        subscriber: &S,
    ) -> Result<usize, ReadinessError> {
        self.add(subscriber.as_ref().readable_owned())
    }

    /// Registers publishing on a [`Topic`](crate::Topic) publisher (plain, typed or serde):
    /// ready when a publish would not wait, or the memory is corrupt.
    ///
    /// # Errors
    /// As [`Readiness::recv`].
    pub fn publish<P: AsRef<crate::Publisher>>(
        &mut self,
        publisher: &P,
    ) -> Result<usize, ReadinessError> {
        self.add(publisher.as_ref().writable_owned())
    }

    /// Removes registration `index`; returns whether there was one. When it returns, the
    /// background thread no longer looks at it. Other indices do not change; the next
    /// registration takes the lowest free index (as file descriptors are numbered), so an
    /// index may come back for another object.
    pub fn remove(&mut self, index: usize) -> bool {
        let Some(item) = self.items.get_mut(index).and_then(Option::take) else {
            return false;
        };
        deregister(&[item]);
        true
    }

    /// How many registrations there are (removed ones not counted).
    pub fn len(&self) -> usize {
        self.items.iter().flatten().count()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The indices of the registrations that are ready now, in index order. If there are
    /// none, the descriptor is cleared (it stops being readable) and the background thread
    /// watches the registrations again, to make it readable when one becomes ready; if there
    /// are some, the descriptor stays readable. See the type's docs for how to use it with
    /// level- and edge-triggered event loops.
    ///
    /// The checks are those of [`Select::try_select`](crate::Select::try_select), made in the
    /// calling thread; a registration the thread found ready through a liveness check (a
    /// dead peer) gets that check here too.
    pub fn ready(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            let Some(item) = item else { continue };
            // Acquire: pairs with the thread's Release store, so what it saw is visible.
            let hit = item.hit.swap(false, Ordering::Acquire);
            let reg = item.source.reg();
            if reg.ready(false) || (hit && reg.ready(true)) {
                out.push(i);
            }
        }
        if out.is_empty() {
            // Clear, then arm: a registration that became ready after the checks above is
            // found by the thread's own look once armed (it looks before it sleeps).
            self.shared.fd().drain();
            // SeqCst: ordered before the thread's look at `armed` through `poke`'s
            // Release/Acquire pair on the control word.
            if !self.shared.armed.swap(true, Ordering::SeqCst) {
                poke();
            }
        }
        out
    }
}

impl Drop for Readiness {
    /// Removes every registration; when it returns the background thread no longer looks at
    /// any of them.
    fn drop(&mut self) {
        let gone: Vec<Arc<Item>> = self.items.drain(..).flatten().collect();
        if !gone.is_empty() {
            deregister(&gone);
        }
    }
}

impl AsFd for Readiness {
    /// The eventfd: readable while a registration is ready (see the type's docs).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.fd().as_fd()
    }
}

impl AsRawFd for Readiness {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// A registration that owns what it reads: a clone of its object's segment, and copies of
/// whatever the handle held (positions, its place in a queue), so the background thread may
/// keep it as long as it likes, whatever becomes of the handle. Built by the objects
/// (`readable_owned`, `registration_owned`, ...); [`OwnedReg::reg`] gives the registration
/// itself, borrowed from it.
#[doc(hidden)]
pub struct OwnedReg(Box<dyn MakeReg>);

impl fmt::Debug for OwnedReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedReg")
    }
}

trait MakeReg: Send + Sync {
    fn reg(&self) -> Reg<'_>;
}

/// The segment, the state copied from the handle, and how to build the registration over
/// them. `make` sees both only through a borrow of this struct, so nothing it builds
/// outlives the segment.
struct Owned<S> {
    seg: Arc<Segment>,
    state: S,
    make: for<'s> fn(&'s Segment, &'s S) -> Reg<'s>,
}

impl<S: Send + Sync> MakeReg for Owned<S> {
    fn reg(&self) -> Reg<'_> {
        (self.make)(&self.seg, &self.state)
    }
}

impl OwnedReg {
    pub(crate) fn new<S: Send + Sync + 'static>(
        seg: Arc<Segment>,
        state: S,
        make: for<'s> fn(&'s Segment, &'s S) -> Reg<'s>,
    ) -> OwnedReg {
        OwnedReg(Box::new(Owned { seg, state, make }))
    }

    /// The registration, valid while this is borrowed.
    pub(crate) fn reg(&self) -> Reg<'_> {
        self.0.reg()
    }
}

/// How the thread tells the owner of a registration that it fired.
enum Notify {
    /// A [`Readiness`]: its eventfd.
    Fd(EventFd),
    /// An async wait ([`until_ready`]): the waker of the task that awaits it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Waker(std::sync::Mutex<Option<std::task::Waker>>),
}

/// What a `Readiness` (or an async wait) shares with the thread.
struct Shared {
    notify: Notify,
    /// Whether the thread watches this `Readiness` (see the state table above).
    armed: AtomicBool,
}

/// One registration, shared by its `Readiness` and (through the registry) the thread.
struct Item {
    owner: Arc<Shared>,
    source: OwnedReg,
    /// The thread found it ready (cleared by `ready`).
    hit: AtomicBool,
}

impl Shared {
    /// A `Readiness`'s eventfd.
    fn fd(&self) -> &EventFd {
        match &self.notify {
            Notify::Fd(efd) => efd,
            Notify::Waker(_) => unreachable!("only a Readiness asks for its descriptor"),
        }
    }

    /// Tells the owner a registration fired.
    fn signal(&self) {
        match &self.notify {
            Notify::Fd(efd) => efd.signal(),
            Notify::Waker(waker) => {
                let waker = waker.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }
}

/// Adds `item` to the process's registry (starting the thread if needed).
fn register(item: &Arc<Item>) -> Result<(), ReadinessError> {
    let mut r = registry();
    if r.items.len() >= Readiness::MAX {
        return Err(ReadinessError::TooMany {
            registered: r.items.len(),
            max: Readiness::MAX,
        });
    }
    ensure_thread(&mut r)?;
    r.items.push(Arc::clone(item));
    r.changed();
    Ok(())
}

/// Resolves once `source` is ready (or at once if it is, or on the next poll if the thread
/// cannot take it: a kernel without `futex_waitv` or the process's registrations all used,
/// where async waits poll instead of sleeping). The registration lives from the first
/// pending poll until the future is dropped (or completes); dropping it removes the
/// registration and takes nothing, so every async operation built on it (try, then wait for
/// readiness, then try again) is cancellation-safe.
#[cfg(feature = "async")]
pub(crate) fn until_ready(source: OwnedReg) -> UntilReady {
    UntilReady {
        source: Some(source),
        item: None,
        yielded: false,
    }
}

/// The future of [`until_ready`].
#[cfg(feature = "async")]
pub(crate) struct UntilReady {
    source: Option<OwnedReg>,
    item: Option<Arc<Item>>,
    /// Registration failed and the future yielded once (polling fallback).
    yielded: bool,
}

#[cfg(feature = "async")]
impl std::future::Future for UntilReady {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        let this = &mut *self;
        if let Some(item) = &this.item {
            // Acquire: pairs with the thread's Release store of `hit`.
            if item.hit.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            if let Notify::Waker(w) = &item.owner.notify {
                *w.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
            }
            // The thread may have fired between the swap and the store, finding no waker.
            if item.hit.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
        if this.yielded {
            return Poll::Ready(());
        }
        let Some(source) = this.source.take() else {
            return Poll::Ready(());
        };
        if source.reg().ready(false) {
            return Poll::Ready(());
        }
        let item = Arc::new(Item {
            owner: Arc::new(Shared {
                notify: Notify::Waker(std::sync::Mutex::new(Some(cx.waker().clone()))),
                armed: AtomicBool::new(true),
            }),
            source,
            hit: AtomicBool::new(false),
        });
        if wait::multi_wait_available() && register(&item).is_ok() {
            this.item = Some(item);
        } else {
            // No thread to wake us: yield to the executor once, then let the caller try again.
            this.yielded = true;
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(feature = "async")]
impl Drop for UntilReady {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            // Waits for the thread to let go: the registration holds a clone of the object's
            // segment, and the last clone dropped is what removes a name (a process that
            // exits before the thread's next turn would leave it behind).
            deregister(&[item]);
        }
    }
}

/// Every registration of the process, and the thread's progress through its changes.
struct Registry {
    items: Vec<Arc<Item>>,
    /// Bumped on every change of `items`.
    generation: u64,
    /// The generation the thread works from: it no longer touches items removed before it.
    acked: u64,
    /// The process whose thread runs (0: none), so a forked child starts its own.
    thread_pid: u32,
}

impl Registry {
    /// Records a change of `items` and tells the thread.
    fn changed(&mut self) {
        self.generation += 1;
        // Release: pairs with the thread's Acquire load (it then takes the lock anyway).
        GENERATION.store(self.generation, Ordering::Release);
        poke();
    }
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    items: Vec::new(),
    generation: 0,
    acked: 0,
    thread_pid: 0,
});
/// Signalled when the thread moves to a new generation (or exits).
static ACKED: Condvar = Condvar::new();
/// `Registry::generation`, readable without the lock.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// The thread's control word: bumped and woken on every change the thread must see.
static CONTROL: AtomicU32 = AtomicU32::new(0);
/// The thread's stack: it only polls and sleeps.
const STACK: usize = 256 * 1024;

/// The registry, even if a thread panicked while holding it (its contents stay consistent:
/// every change is a single push, retain or assignment).
fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends the thread's sleep so it looks again.
fn poke() {
    // Release: pairs with the thread's Acquire load of the word.
    CONTROL.fetch_add(1, Ordering::Release);
    crate::sync::park::wake_all(&CONTROL);
}

/// Starts the thread unless this process's is running.
fn ensure_thread(r: &mut Registry) -> Result<(), ReadinessError> {
    let me = std::process::id();
    if r.thread_pid == me {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("shmq-readiness".into())
        .stack_size(STACK)
        .spawn(serve)
        .map_err(ReadinessError::Os)?;
    r.thread_pid = me;
    Ok(())
}

/// Takes `gone` out of the registry and waits until the thread no longer looks at them.
fn deregister(gone: &[Arc<Item>]) {
    let mut r = registry();
    r.items.retain(|i| !gone.iter().any(|g| Arc::ptr_eq(g, i)));
    r.changed();
    let generation = r.generation;
    let me = std::process::id();
    // An executor that polls a woken task inside `Waker::wake` would drop a finished async
    // wait on the thread itself: it must not wait for itself (its next turn drops the item).
    if ON_THREAD.with(Cell::get) {
        return;
    }
    while r.thread_pid == me && r.acked < generation {
        r = ACKED.wait(r).unwrap_or_else(PoisonError::into_inner);
    }
}

thread_local! {
    /// Whether this thread is the process's readiness thread.
    static ON_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// The background thread: serves one generation of the registry after another.
fn serve() {
    ON_THREAD.with(|t| t.set(true));
    /// Should the thread ever end (a panic), removals stop waiting for it and the next
    /// registration starts another.
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            let mut r = registry();
            if r.thread_pid == std::process::id() {
                r.thread_pid = 0;
            }
            ACKED.notify_all();
        }
    }
    let _exit = Exit;
    // Interrupters are for blocked calls of the user's threads; this one must not stop.
    crate::sys::interrupt::uninterruptible(|| {
        loop {
            let (items, generation) = {
                let mut r = registry();
                // The previous generation's registrations were let go of (announcements
                // withdrawn, references dropped) at the end of the previous turn.
                r.acked = r.generation;
                ACKED.notify_all();
                (r.items.clone(), r.generation)
            };
            serve_generation(&items, generation);
        }
    });
}

/// Watches `items` until the registry changes.
///
/// Registrations on the same bell (one side of one object, registered more than once) share
/// one announcement and one word of the sleep: the thread is one sleeper, and a ring's
/// "sleeping" flag is a single flag that a second withdrawal would clear under the first.
fn serve_generation(items: &[Arc<Item>], generation: u64) {
    let regs: Vec<Reg<'_>> = items.iter().map(|i| i.source.reg()).collect();
    let n = regs.len();
    // The first registration with the same bell, for each.
    let leader: Vec<usize> = (0..n)
        .map(|k| {
            (0..k)
                .find(|&j| std::ptr::eq(regs[j].bell(), regs[k].bell()))
                .unwrap_or(k)
        })
        .collect();
    let mut armed = vec![false; n];
    // Per leader: whether its bell is announced, and whether it should be.
    let mut announced = vec![false; n];
    let mut wanted = vec![false; n];
    let mut words: Vec<(&AtomicU32, u32)> = Vec::with_capacity(n + 1);
    let mut next_deep = Instant::now();
    loop {
        // Acquire: pairs with `poke`'s Release: the registry change or arming it announced
        // is seen below, and one made after this load changes the word we sleep on.
        let control = CONTROL.load(Ordering::Acquire);
        if GENERATION.load(Ordering::Acquire) != generation {
            break;
        }
        // Watch the registrations of armed `Readiness` objects; withdraw from the others.
        wanted.fill(false);
        for k in 0..n {
            armed[k] = items[k].owner.armed.load(Ordering::SeqCst);
            wanted[leader[k]] |= armed[k];
        }
        for g in 0..n {
            if wanted[g] != announced[g] {
                if wanted[g] {
                    regs[g].announce();
                } else {
                    regs[g].retract();
                }
                announced[g] = wanted[g];
            }
        }
        words.clear();
        // The bells first, then the barriers (see `wait::Sleeper`): a waker that rings
        // after a bell is read changes the word we sleep on.
        for g in (0..n).filter(|&g| announced[g]) {
            // Acquire: pairs with the waker's Release increment of the bell.
            words.push((regs[g].bell(), regs[g].bell().load(Ordering::Acquire)));
        }
        // One heavy barrier (a membarrier system call) covers every ring flag announced
        // before it, as in `wait::wait_any`; the others run their own.
        if (0..n).any(|g| announced[g] && regs[g].barrier_is_heavy()) {
            crate::sys::fence::heavy();
        }
        for g in (0..n).filter(|&g| announced[g] && !regs[g].barrier_is_heavy()) {
            regs[g].barrier();
        }
        let now = Instant::now();
        let deep = now >= next_deep;
        if deep {
            next_deep = now + CHECK_EVERY;
        }
        let mut fired = false;
        for k in (0..n).filter(|&k| armed[k]) {
            if regs[k].ready(deep) {
                let item = &items[k];
                // Release: pairs with the Acquire swap in `ready`.
                item.hit.store(true, Ordering::Release);
                if item.owner.armed.swap(false, Ordering::SeqCst) {
                    item.owner.signal();
                }
                fired = true;
            }
        }
        if fired {
            // Withdraw from what just fired before sleeping again.
            continue;
        }
        let watching = !words.is_empty();
        words.push((&CONTROL, control));
        // While anything is watched, wake up for the liveness checks.
        let deadline = watching.then_some(next_deep);
        let _ = crate::sys::futex::wait_any(&words, deadline);
    }
    for g in (0..n).filter(|&g| announced[g]) {
        regs[g].retract();
    }
}
