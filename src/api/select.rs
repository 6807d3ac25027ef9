//! [`Select`]: wait for the first of many shmq objects to become ready, in one sleep.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use crate::ring::wait::{self, CHECK_EVERY, Ended, MAX_SOURCES, Sleeper, Source};

/// Waits for the first of many operations to become ready: receiving on ring consumers and
/// pipes, sending on ring producers and pipes, getting from and putting to every queue kind,
/// receiving from and publishing to a [`Topic`](crate::Topic), an [`Event`](crate::Event)
/// being set, a [`Semaphore`](crate::Semaphore) permit, a [`Mutex`](crate::Mutex) being free. As in crossbeam-channel, each registration returns
/// its index, the `select` calls return the index of a ready one, and the caller then
/// performs that operation itself with its `try_` form.
///
/// ```
/// use std::time::Duration;
/// use shmq::{Event, Ring, Select};
///
/// let id = std::process::id();
/// let ring = Ring::create(format!("doc-select-{id}"), 4096)?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// let stop = Event::create(format!("doc-select-stop-{id}"))?;
/// tx.send(b"tick")?;
///
/// let mut sel = Select::new()?;
/// let on_ring = sel.recv(&rx);
/// let on_stop = sel.wait(&stop);
/// let ready = sel.select_timeout(Duration::from_secs(1))?;
/// drop(sel); // the registrations borrow the objects; let them go before using them
/// assert_eq!(ready, on_ring);
/// assert_eq!(&*rx.try_recv()?, b"tick");
/// # let _ = on_stop;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Readiness, and the race after it
/// A registration is ready when its operation would not wait: a message or an item is there,
/// there is room, the event is set, a permit is free, the lock is free — or the operation
/// would fail at once for good: the peer is gone (a producer, consumer, every putter or
/// getter, also one killed with SIGKILL, noticed within about 40 ms), the queue is
/// closed, the memory is corrupt. Then the `try_` call tells which. Another process (or
/// thread) may take the item, the room, the permit or the lock between the select and the
/// call: the `try_` call then says `Empty`/`Full`/`WouldBlock`, and the caller selects again.
/// So loop:
///
/// ```no_run
/// # use shmq::{Queue, Select};
/// # fn run(q: &Queue<u64>, r: &Queue<u64>) -> Result<(), Box<dyn std::error::Error>> {
/// loop {
///     let mut sel = Select::new()?;
///     let (a, _b) = (sel.get(q), sel.get(r));
///     let i = sel.select()?;
///     drop(sel);
///     let q = if i == a { q } else { r };
///     match q.try_get() {
///         Ok(item) => println!("{item}"),
///         Err(shmq::GetError::Empty) => continue, // another consumer was faster
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # }
/// ```
///
/// # One sleep for everything
/// When nothing is ready, the select announces itself to every object (as a blocked call
/// would: the ring's sleeping flag, the queues' and the event's waiter counts, the mutex's
/// contended bit) and sleeps once, with `futex_waitv`, on all their futex words and the
/// [`Interrupter`](crate::Interrupter) words: no helper thread, no CPU while idle. That
/// needs Linux 5.16 or later; elsewhere [`Select::new`] fails with
/// [`SelectError::Unsupported`]. At most [`Select::MAX`] registrations (futex_waitv's 128
/// words, less the two interrupt words).
///
/// Queues and semaphores wake one sleeper per item or permit. A select woken by one of them
/// that returns another registration hands that wake-up on to the next sleeper, so nobody
/// misses an item; a caller that selects an item and then does not take it should do the
/// same by taking it or selecting again soon.
pub struct Select<'a> {
    regs: Vec<Reg<'a>>,
}

thread_local! {
    /// When this thread's selects next look at liveness (a `/proc` read per registration
    /// with a peer): shared by every `Select` of the thread, so one rebuilt per loop turn
    /// does not look each time.
    static NEXT_DEEP: Cell<Option<Instant>> = const { Cell::new(None) };
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("registrations", &self.regs.len())
            .finish()
    }
}

/// Why a select returned no ready registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// `try_select`: nothing is ready now.
    #[error("no registration is ready")]
    WouldBlock,
    /// `select_timeout` / `select_deadline`: nothing became ready in time.
    #[error("timed out waiting for a registration to become ready")]
    Timeout,
    /// An [`Interrupter`](crate::Interrupter) the thread watches fired while it waited.
    #[error("interrupted while selecting")]
    Interrupted,
    /// Nothing was registered, so nothing could ever become ready.
    #[error("nothing is registered with this Select")]
    Empty,
    /// More registrations than one `futex_waitv` covers.
    #[error("{registered} registrations, more than the {max} one Select covers; split them")]
    TooMany {
        /// How many were registered.
        registered: usize,
        /// [`Select::MAX`].
        max: usize,
    },
    /// The kernel lacks `futex_waitv` (or a seccomp filter refuses it).
    #[error(
        "Select needs the futex_waitv system call (Linux 5.16 or later), which this kernel does not offer or a seccomp filter refuses; wait on one object at a time instead"
    )]
    Unsupported,
}

impl<'a> Select<'a> {
    /// The most registrations one `Select` covers.
    pub const MAX: usize = MAX_SOURCES;

    /// An empty select.
    ///
    /// # Errors
    /// [`SelectError::Unsupported`] where `futex_waitv` is missing (Linux before 5.16).
    pub fn new() -> Result<Select<'a>, SelectError> {
        if !wait::multi_wait_available() {
            return Err(SelectError::Unsupported);
        }
        Ok(Select { regs: Vec::new() })
    }

    fn add(&mut self, reg: Reg<'a>) -> usize {
        self.regs.push(reg);
        self.regs.len() - 1
    }

    /// Registers receiving on `consumer`: ready when a message is waiting, or its producer
    /// is gone. Returns the registration's index.
    pub fn recv(&mut self, consumer: &'a crate::Consumer) -> usize {
        self.add(consumer.readable())
    }

    /// Registers sending a `len`-byte message on `producer`: ready when there is room for it,
    /// or the consumer is gone (or `len` can never fit). Returns the index.
    pub fn send(&mut self, producer: &'a crate::Producer, len: usize) -> usize {
        self.add(producer.writable(len))
    }

    /// Registers receiving on `pipe` (its consumer end).
    pub fn recv_pipe(&mut self, pipe: &'a crate::Pipe) -> usize {
        self.add(pipe.readable())
    }

    /// Registers sending a `len`-byte message on `pipe` (its producer end).
    pub fn send_pipe(&mut self, pipe: &'a crate::Pipe, len: usize) -> usize {
        self.add(pipe.writable(len))
    }

    /// Registers getting from a queue of any kind ([`Queue`](crate::Queue),
    /// [`JoinableQueue`](crate::JoinableQueue), [`ByteQueue`](crate::ByteQueue),
    /// [`PriorityQueue`](crate::PriorityQueue)): ready when an item is waiting, or the queue
    /// is closed, or every putter is gone.
    pub fn get(&mut self, queue: &'a impl Selectable) -> usize {
        self.add(queue.registration(false))
    }

    /// Registers putting to a queue of any kind: ready when there is room, or the queue is
    /// closed, or every getter is gone.
    pub fn put(&mut self, queue: &'a impl Selectable) -> usize {
        self.add(queue.registration(true))
    }

    /// Registers waiting for `event` to be set.
    pub fn wait(&mut self, event: &'a crate::Event) -> usize {
        self.add(event.registration())
    }

    /// Registers acquiring a permit of `semaphore`.
    pub fn acquire(&mut self, semaphore: &'a crate::Semaphore) -> usize {
        self.add(semaphore.registration())
    }

    /// Registers locking `mutex`: ready when it is free or its holder died.
    pub fn lock<T: crate::Pod>(&mut self, mutex: &'a crate::Mutex<T>) -> usize {
        self.add(mutex.registration())
    }

    /// Registers receiving on a [`Topic`](crate::Topic) subscriber (a
    /// [`Subscriber`](crate::Subscriber), a [`TypedSubscriber`](crate::TypedSubscriber) or a
    /// serde one): ready when a message, a lag ([`Lagged`](crate::TopicRecvError::Lagged)) or
    /// corrupted memory waits at its cursor, or every publisher is gone (noticed within about
    /// 40 ms). Returns the index.
    ///
    /// ```
    /// use shmq::{Select, Topic};
    ///
    /// let topic = Topic::create(format!("doc-select-topic-{}", std::process::id()), 64, 32)?;
    /// let mut sub = topic.subscriber()?;
    /// let mut sel = Select::new()?;
    /// let on_topic = sel.recv_topic(&sub);
    /// assert!(sel.try_select().is_err()); // nothing published yet
    /// topic.publisher()?.publish(b"tick")?;
    /// assert_eq!(sel.try_select()?, on_topic);
    /// drop(sel);
    /// assert_eq!(&*sub.try_recv()?, b"tick");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_topic<S: AsRef<crate::Subscriber>>(&mut self, subscriber: &'a S) -> usize {
        self.add(subscriber.as_ref().readable())
    }

    /// Registers publishing on a [`Topic`](crate::Topic) publisher (a
    /// [`Publisher`](crate::Publisher), a [`TypedPublisher`](crate::TypedPublisher) or a serde
    /// one): ready when a publish would not wait (always under
    /// [`Policy::Overwrite`](crate::Policy::Overwrite); under `Block` when the slowest live
    /// subscriber is less than a whole log behind), or the memory is corrupt. Returns the
    /// index.
    pub fn publish<P: AsRef<crate::Publisher>>(&mut self, publisher: &'a P) -> usize {
        self.add(publisher.as_ref().writable())
    }

    /// How many registrations there are.
    pub fn len(&self) -> usize {
        self.regs.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty()
    }

    /// The index of a ready registration, waiting as long as needed.
    ///
    /// # Errors
    /// [`SelectError::Interrupted`], [`SelectError::Empty`], [`SelectError::TooMany`].
    pub fn select(&self) -> Result<usize, SelectError> {
        self.run(Some(None))
    }

    /// The index of a registration that is ready now.
    ///
    /// # Errors
    /// [`SelectError::WouldBlock`] if none is; [`SelectError::Empty`],
    /// [`SelectError::TooMany`].
    pub fn try_select(&self) -> Result<usize, SelectError> {
        self.run(None)
    }

    /// The index of a ready registration, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`SelectError::Timeout`], and as [`Select::select`].
    pub fn select_timeout(&self, timeout: Duration) -> Result<usize, SelectError> {
        self.run(Some(crate::sync::park::deadline_after(timeout)))
    }

    /// The index of a ready registration, waiting until `deadline` at most.
    ///
    /// # Errors
    /// [`SelectError::Timeout`], and as [`Select::select`].
    pub fn select_deadline(&self, deadline: Instant) -> Result<usize, SelectError> {
        self.run(Some(Some(deadline)))
    }

    /// `None`: do not wait; `Some(deadline)`: wait until it (`None` inside: no limit).
    fn run(&self, waiting: Option<Option<Instant>>) -> Result<usize, SelectError> {
        if self.regs.is_empty() {
            return Err(SelectError::Empty);
        }
        if self.regs.len() > Self::MAX {
            return Err(SelectError::TooMany {
                registered: self.regs.len(),
                max: Self::MAX,
            });
        }
        // The liveness checks (a `/proc` read each) run at most every CHECK_EVERY here too.
        let now = Instant::now();
        let deep = NEXT_DEEP.with(|next| {
            let due = next.get().is_none_or(|at| now >= at);
            if due {
                next.set(Some(now + CHECK_EVERY));
            }
            due
        });
        if let Some(i) = self.regs.iter().position(|r| r.ready(deep)) {
            return Ok(i);
        }
        let Some(deadline) = waiting else {
            return Err(SelectError::WouldBlock);
        };
        let sources: Vec<&dyn Source> = self.regs.iter().map(|r| r as &dyn Source).collect();
        wait::wait_any(&sources, deadline).map_err(|e| match e {
            Ended::TimedOut => SelectError::Timeout,
            Ended::Interrupted => SelectError::Interrupted,
            Ended::PeerGone => unreachable!("wait_any reports gone peers as ready"),
            Ended::Failed(never) => match never {},
        })
    }
}

/// The queue kinds a [`Select`] registers: [`Queue`](crate::Queue),
/// [`JoinableQueue`](crate::JoinableQueue), [`ByteQueue`](crate::ByteQueue),
/// [`PriorityQueue`](crate::PriorityQueue). Only shmq's types can implement it (its
/// registrations are built from their insides).
pub trait Selectable {
    #[doc(hidden)]
    fn registration(&self, put: bool) -> Reg<'_>;
    /// The same registration for a [`Readiness`](crate::Readiness), owning what it reads.
    #[doc(hidden)]
    fn registration_owned(&self, put: bool) -> crate::api::readiness::OwnedReg;
}

/// One registration: how to sleep on the object, whether its operation would go ahead, and
/// how to hand on a wake-up it took. Built by the objects themselves.
#[doc(hidden)]
pub struct Reg<'a> {
    /// The sleeper and the readiness test in one allocation: a `Select` is often rebuilt
    /// per message, so each registration's allocations count.
    inner: Box<dyn Source + 'a>,
}

impl fmt::Debug for Reg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reg")
    }
}

impl<'a> Reg<'a> {
    pub(crate) fn new(
        sleeper: impl Sleeper + 'a,
        ready: impl Fn(bool) -> bool + 'a,
        pass_on: Option<Box<dyn Fn() + 'a>>,
    ) -> Reg<'a> {
        Reg {
            inner: Box::new(Parts {
                sleeper,
                ready,
                pass_on,
            }),
        }
    }
}

/// What [`Reg::new`] is given, kept together.
struct Parts<'a, S, F> {
    sleeper: S,
    ready: F,
    pass_on: Option<Box<dyn Fn() + 'a>>,
}

impl<S: Sleeper, F> Sleeper for Parts<'_, S, F> {
    fn bell(&self) -> &AtomicU32 {
        self.sleeper.bell()
    }
    fn announce(&self) {
        self.sleeper.announce();
    }
    fn barrier(&self) {
        self.sleeper.barrier();
    }
    fn barrier_is_heavy(&self) -> bool {
        self.sleeper.barrier_is_heavy()
    }
    fn retract(&self) {
        self.sleeper.retract();
    }
}

impl<S: Sleeper, F: Fn(bool) -> bool> Source for Parts<'_, S, F> {
    fn ready(&self, deep: bool) -> bool {
        (self.ready)(deep)
    }
    fn pass_on(&self) {
        if let Some(p) = &self.pass_on {
            p();
        }
    }
}

impl Sleeper for Reg<'_> {
    fn bell(&self) -> &AtomicU32 {
        self.inner.bell()
    }
    fn announce(&self) {
        self.inner.announce();
    }
    fn barrier(&self) {
        self.inner.barrier();
    }
    fn barrier_is_heavy(&self) -> bool {
        self.inner.barrier_is_heavy()
    }
    fn retract(&self) {
        self.inner.retract();
    }
}

impl Source for Reg<'_> {
    fn ready(&self, deep: bool) -> bool {
        self.inner.ready(deep)
    }
    fn pass_on(&self) {
        self.inner.pass_on();
    }
}
