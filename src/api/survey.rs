//! Read-only inspection of any shmq segment, for tools (`shmq ls`, `inspect`, `gc`).

use std::fmt;
use std::sync::atomic::Ordering;

use crate::api::ring::ring_in;
use crate::api::{byte_queue, priority, queue};
use crate::error::OpenError;
use crate::region::Region;
use crate::ring::spsc::Side;
use crate::ring::{mpmc, spsc};
use crate::segment::{Kind, Options, ReadOnly, Segment, SegmentInfo};
use crate::sync::event::RawEvent;
use crate::sync::mutex::RawMutex;
use crate::sync::semaphore::RawSemaphore;
use crate::sys::process::{self, Liveness, ProcessId};

/// Bytes before a byte-queue message in its slot's data: the length word.
const BYTE_QUEUE_LEN: usize = 8;

/// What a segment holds and who uses it, read without attaching and without writing a byte:
/// the segment is mapped read-only, so this is safe on a segment in use, a corrupted one, or
/// one a hostile process keeps rewriting (every index and length is checked first).
///
/// A survey is a snapshot: the segment may change while it is read, so counts and contents
/// are approximate for a segment in use.
///
/// ```
/// let name = format!("doc-survey-{}", std::process::id());
/// let q = shmq::Queue::<u32>::create(name.as_str(), 8)?;
/// q.put(7)?;
/// let s = shmq::Survey::of(name.as_str(), 4, 16)?;
/// assert_eq!(s.info.kind, shmq::Kind::Queue);
/// assert_eq!(s.fill, Some(1));
/// assert_eq!(s.contents[0].bytes, 7u32.to_ne_bytes());
/// assert!(s.in_use()); // we created it and we are alive
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Survey {
    /// The name (or file path) it was surveyed under.
    pub name: String,
    /// The validated header.
    pub info: SegmentInfo,
    /// The process that created it.
    pub creator: Process,
    /// Processes the segment records as attached (ring roles, queue participants, a lock's
    /// holder, a topic's publishers and subscribers), alive or not.
    pub attached: Vec<Process>,
    /// Processes found mapping the file or holding it open, from `/proc`; empty until
    /// [`Survey::find_users`] runs.
    pub users: Vec<Process>,
    /// How much it holds: items or bytes, where the kind has a capacity (a pipe: both
    /// directions together).
    pub capacity: Option<Capacity>,
    /// How much of that is in use now (items, or bytes of a ring; a topic: the slowest
    /// subscriber's lag, at most the capacity), where the kind has one.
    pub fill: Option<u64>,
    /// Kind-specific facts, as `(what, value)` pairs in display order.
    pub details: Vec<(String, String)>,
    /// The futex words processes sleep on ("bells"), with the sleepers each records, in
    /// display order: a queue's `items`, `space` (and `join`), a ring's `producer` and
    /// `consumer` sides, a lock's `lock`, a semaphore's `count`, an event's `flag`, a
    /// topic's `messages` and `room`.
    pub bells: Vec<Bell>,
    /// The first waiting messages (rings, queues; a priority queue's smallest item first),
    /// a topic's last messages (oldest first), or the first bytes of the data (other kinds),
    /// each cut to the asked length.
    pub contents: Vec<Peeked>,
    /// A topic's subscribers, each with its process, position, lag and losses, in entry
    /// order; empty for other kinds. Each also appears in [`Survey::attached`] (role
    /// `subscriber N (lag L, lost K)`).
    pub subscribers: Vec<SubscriberLag>,
    /// What failed a consistency check in the kind's own area (the header is valid, or the
    /// survey would have failed). Empty for a healthy segment.
    pub problems: Vec<String>,
    opts: Options,
    file: (u64, u64),
}

/// A process a segment records or that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Process {
    /// What it is to the segment: `creator`, `producer`, `consumer`, `participant 3`,
    /// `lock holder`, `publisher`, `subscriber 2 (lag 5, lost 0)`, `user` (found in
    /// `/proc`).
    pub role: String,
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks since boot, as recorded (0 if unknown).
    pub start_time: u64,
    /// Whether it may still run: `false` only when its pid is gone or now belongs to a
    /// process started at another time (so a recycled pid never counts as the old process).
    pub alive: bool,
}

/// A segment's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Items (queues, arrays).
    Items(u64),
    /// Bytes of buffer (rings, pipes: per direction).
    Bytes(u64),
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Capacity::Items(n) => write!(f, "{n} items"),
            Capacity::Bytes(n) => write!(f, "{n} B"),
        }
    }
}

/// A futex word processes sleep on (a "bell"), and how many sleep there as the segment
/// records it.
///
/// The counts are hints, read with relaxed loads: a sleeper announces itself before it
/// sleeps and withdraws after, so one that is about to sleep or has just woken counts too,
/// and a process killed while asleep leaves its count behind.
///
/// ```
/// let name = format!("doc-survey-bell-{}", std::process::id());
/// let q = shmq::Queue::<u32>::create(name.as_str(), 8)?;
/// let s = shmq::Survey::of(name.as_str(), 0, 0)?;
/// let items = s.bells.iter().find(|b| b.name == "items").unwrap();
/// assert_eq!(items.sleepers, 0); // no consumer waits for an item
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bell {
    /// Which word: `items` (consumers wait for an item), `space` (producers wait for room),
    /// `join` (`JoinableQueue::join`), `producer` / `consumer` (a ring side; a pipe's are
    /// prefixed with the direction), `lock` (a mutex; a seqlock value's writer lock),
    /// `count` (a semaphore), `flag` (an event), `messages` / `room` (a topic's subscribers
    /// wait for messages, its publishers for room).
    pub name: String,
    /// The sleepers it records: a count, or for a word that is only a flag (a ring side, at
    /// most one sleeper; a lock's "contended" bit; a topic's sleep flag) 0 or 1.
    pub sleepers: u32,
    /// Whether the word counts its sleepers. `false` for a lock or a topic, whose word says
    /// only that someone may sleep on it (`sleepers` 1), not how many.
    pub counted: bool,
}

impl Bell {
    fn new(name: impl Into<String>, sleepers: u32, counted: bool) -> Bell {
        Bell {
            name: name.into(),
            sleepers,
            counted,
        }
    }
}

/// One subscriber of a [`Topic`](crate::Topic), as a [`Survey`] finds it: which process
/// holds the entry, how far it has read, and how far behind the publishers it is.
///
/// The numbers are a snapshot read with relaxed loads from memory other processes write:
/// a subscriber reading at that moment may already be further on, and a forged entry can
/// show any numbers (never make the survey fail).
///
/// ```
/// let name = format!("doc-survey-sub-{}", std::process::id());
/// let topic = shmq::Topic::create(name.as_str(), 16, 64)?;
/// let mut sub = topic.subscriber()?;
/// let mut tx = topic.publisher()?;
/// for tick in 0..5u8 {
///     tx.publish(&[tick])?;
/// }
/// drop(sub.recv()?); // read one of five
/// let s = shmq::Survey::of(name.as_str(), 0, 0)?;
/// let lag = &s.subscribers[0];
/// assert_eq!(lag.pid, std::process::id());
/// assert!(lag.alive);
/// assert_eq!((lag.position, lag.lag, lag.lost), (1, 4, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberLag {
    /// Its entry in the topic's subscriber table (the `N` of `subscriber N`).
    pub index: usize,
    /// The pid of the process that attached it.
    pub pid: u32,
    /// That process's start time in clock ticks since boot, as recorded.
    pub start_time: u64,
    /// Whether that process may still run (as [`Process::alive`]). A dead subscriber's entry
    /// stays until a publisher waiting for room (or a new subscriber needing the entry)
    /// frees it; until then it holds a [`Policy::Block`](crate::Policy) topic back.
    pub alive: bool,
    /// The sequence number of the next message it will read.
    pub position: u64,
    /// Messages published that it has not read yet: `published - position` (0 if the
    /// recorded position is ahead). Under [`Policy::Overwrite`](crate::Policy) a lag above
    /// the capacity means it was lapped: its next receive reports the loss.
    pub lag: u64,
    /// Messages it lost to overwriting so far (the sum of the `Lagged(n)` it was told of).
    pub lost: u64,
}

/// One message (or the start of the data) as found in the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peeked {
    /// Its whole length in bytes.
    pub len: usize,
    /// Its first bytes (all of them if it is short).
    pub bytes: Vec<u8>,
}

impl Process {
    fn recorded(role: impl Into<String>, who: ProcessId) -> Process {
        Process {
            role: role.into(),
            pid: who.pid,
            start_time: who.start_time,
            alive: process::liveness(who) == Liveness::Alive,
        }
    }
}

impl Survey {
    /// Surveys the segment named by `opts`: its header and, by kind, capacity, fill, recorded
    /// processes, details and up to `peek` messages cut at `peek_bytes` bytes each.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a shmq segment (`NotShmq`), an invalid header
    /// (`Corrupted`, `VersionMismatch`), no permission. A header that is valid but a kind
    /// area that is not gives `Ok` with [`Survey::problems`] filled in.
    pub fn of(
        opts: impl Into<Options>,
        peek: usize,
        peek_bytes: usize,
    ) -> Result<Survey, OpenError> {
        let opts = opts.into();
        let seg = ReadOnly::open(&opts)?;
        let info = seg.info().clone();
        let mut s = Survey {
            name: seg.name(),
            creator: Process::recorded(
                "creator",
                ProcessId {
                    pid: info.creator_pid,
                    start_time: info.creator_start,
                },
            ),
            info,
            attached: Vec::new(),
            users: Vec::new(),
            capacity: None,
            fill: None,
            details: Vec::new(),
            bells: Vec::new(),
            contents: Vec::new(),
            subscribers: Vec::new(),
            problems: Vec::new(),
            opts,
            file: seg.inode(),
        };
        if s.info.creator_pid == 0 {
            s.creator.alive = false;
        }
        if !s.info.ready {
            s.problems
                .push("still initializing (or its creator died while creating it)".into());
            return Ok(s);
        }
        s.read_kind(seg.payload(), peek, peek_bytes);
        Ok(s)
    }

    fn detail(&mut self, what: &str, value: impl fmt::Display) {
        self.details.push((what.to_owned(), value.to_string()));
    }

    fn read_kind(&mut self, payload: Region<'_>, peek: usize, bytes: usize) {
        let info = self.info.clone();
        match info.kind {
            Kind::Raw => self.data(payload, 0, bytes),
            Kind::Value => {
                let mode = match info.param0 {
                    1 => "one atomic word",
                    2 => "double-buffered seqlock",
                    _ => "unknown",
                };
                self.detail("storage", mode);
                self.detail("type size", info.type_size);
                if info.param0 == 1 {
                    self.data(payload, 0, bytes.min(info.type_size as usize));
                } else if info.param0 == 2 {
                    // The seqlock's writer lock is its first word.
                    self.lock_holder(payload);
                }
            }
            Kind::Array => {
                self.capacity = Some(Capacity::Items(info.param0));
                self.lock_holder(payload);
                self.data(payload, info.param1 as usize, bytes);
            }
            Kind::Mutex => {
                self.lock_holder(payload);
                self.data(payload, info.param0 as usize, bytes);
            }
            Kind::Semaphore => match RawSemaphore::at(payload, 0) {
                Some(sem) => {
                    self.detail("value", sem.value());
                    self.detail("maximum", info.param0);
                    self.bells.push(Bell::new("count", sem.waiters(), true));
                }
                None => self.problems.push("semaphore area too small".into()),
            },
            Kind::Event => match RawEvent::at(payload, 0) {
                Some(ev) => {
                    self.detail("set", if ev.peek_set() { "yes" } else { "no" });
                    self.bells.push(Bell::new("flag", ev.waiters(), true));
                }
                None => self.problems.push("event area too small".into()),
            },
            Kind::Ring => self.ring(payload, 0, "", peek, bytes),
            Kind::Pipe => {
                self.ring(payload, 0, "creator→opener ", peek, bytes);
                self.ring(payload, 1, "opener→creator ", peek, bytes);
            }
            Kind::Queue | Kind::JoinableQueue | Kind::ByteQueue => {
                self.queue(payload, peek, bytes);
            }
            Kind::Topic => self.topic(payload, peek, bytes),
            Kind::PriorityQueue => match priority::view(payload, &info, peek, bytes) {
                Ok(v) => {
                    self.capacity = Some(Capacity::Items(v.cap));
                    self.fill = Some(v.len.min(v.cap));
                    self.detail("closed", if v.closed { "yes" } else { "no" });
                    if let Some(h) = v.holder {
                        self.attached.push(Process::recorded("lock holder", h));
                    }
                    self.bells.extend([
                        Bell::new("items", v.items_waiters, true),
                        Bell::new("space", v.space_waiters, true),
                        Bell::new("lock", u32::from(v.contended), false),
                    ]);
                    self.participants(v.participants);
                    self.contents = v
                        .items
                        .into_iter()
                        .map(|b| Peeked {
                            len: info.type_size as usize,
                            bytes: b,
                        })
                        .collect();
                    self.problems.extend(v.problem);
                }
                Err(e) => self.problems.push(e),
            },
        }
    }

    /// A topic: its geometry, publishers and subscribers (each with its lag), and its last
    /// `peek` messages.
    fn topic(&mut self, payload: Region<'_>, peek: usize, bytes: usize) {
        use crate::ring::topic::{Geometry, RawTopic, Slot};
        let Some(t) = Geometry::from_params(self.info.param0, self.info.param1)
            .and_then(|g| RawTopic::new(payload, g))
        else {
            self.problems.push(format!(
                "topic geometry: slots {}, parameters {:#x}, {} bytes",
                self.info.param0, self.info.param1, self.info.payload_size
            ));
            return;
        };
        let g = t.geometry();
        self.capacity = Some(Capacity::Items(g.slots));
        self.detail("policy", format!("{:?}", g.policy).to_lowercase());
        self.detail("maximum message", format!("{} B", g.max));
        let next = match t.next() {
            Ok(n) => n,
            Err(c) => {
                self.problems.push(c.0);
                return;
            }
        };
        self.detail("published", next);
        let subs = t.subscribers();
        self.detail("subscribers", format!("{} of {}", subs.len(), g.subs));
        for (who, _) in t.publishers() {
            self.attached.push(Process::recorded("publisher", who));
        }
        let mut slowest: Option<u64> = None;
        for sub in &subs {
            let lag = next.saturating_sub(sub.cursor);
            slowest = Some(slowest.map_or(lag, |s| s.max(lag)));
            let role = format!("subscriber {} (lag {lag}, lost {})", sub.index, sub.lost);
            let p = Process::recorded(role, sub.owner);
            self.subscribers.push(SubscriberLag {
                index: sub.index,
                pid: p.pid,
                start_time: p.start_time,
                alive: p.alive,
                position: sub.cursor,
                lag,
                lost: sub.lost,
            });
            self.attached.push(p);
        }
        self.fill = Some(slowest.unwrap_or(0).min(g.slots));
        let (data_flag, _) = t.sleep_words(true);
        let (room_flag, _) = t.sleep_words(false);
        self.bells.extend([
            Bell::new(
                "messages",
                u32::from(data_flag.load(Ordering::Relaxed) != 0),
                false,
            ),
            Bell::new(
                "room",
                u32::from(room_flag.load(Ordering::Relaxed) != 0),
                false,
            ),
        ]);
        let mut buf = Vec::new();
        for s in next
            .saturating_sub(peek as u64)
            .max(next.saturating_sub(g.slots))..next
        {
            if let Ok(Slot::Ready { len, skip: false }) = t.peek(s) {
                t.copy_out(s, len, &mut buf);
                if t.still(s) {
                    buf.truncate(bytes);
                    self.contents.push(Peeked {
                        len: len as usize,
                        bytes: std::mem::take(&mut buf),
                    });
                }
            }
        }
    }

    /// The processes a queue's participant table records, with their sides.
    fn participants(&mut self, table: Vec<(usize, crate::sys::process::ProcessId, bool, u32)>) {
        for (i, who, reclaiming, sides) in table {
            let side = crate::api::queue::Side::from_bits(sides).map_or("", |s| s.label());
            let role = if reclaiming {
                format!("participant {i} {side} (being reclaimed)")
            } else {
                format!("participant {i} {side}")
            };
            self.attached.push(Process::recorded(role, who));
        }
    }

    /// The lock at the start of the payload: its holder and its bell.
    fn lock_holder(&mut self, payload: Region<'_>) {
        let Some(m) = RawMutex::at(payload, 0) else {
            self.problems.push("lock area too small".into());
            return;
        };
        if let Some(h) = m.holder_process() {
            self.attached.push(Process::recorded("lock holder", h));
        }
        self.bells
            .push(Bell::new("lock", u32::from(m.contended()), false));
    }

    /// The first `bytes` bytes of the data at `offset` in the payload.
    fn data(&mut self, payload: Region<'_>, offset: usize, bytes: usize) {
        let len = payload.len().saturating_sub(offset);
        let mut buf = vec![0; len.min(bytes)];
        if offset > payload.len() || payload.read(offset, &mut buf).is_none() {
            self.problems
                .push(format!("data offset {offset} lies outside the payload"));
            return;
        }
        self.contents.push(Peeked { len, bytes: buf });
    }

    fn ring(&mut self, payload: Region<'_>, index: usize, label: &str, peek: usize, bytes: usize) {
        let (cap, max) = (self.info.param0, self.info.param1);
        let Some(raw) = ring_in(payload, index, cap, max) else {
            self.problems.push(format!(
                "ring geometry: capacity {cap}, maximum message {max}, {} bytes",
                payload.len()
            ));
            return;
        };
        let v = raw.view(peek.saturating_sub(self.contents.len()), bytes);
        // A pipe's two directions add up, as their fill does.
        self.capacity = Some(Capacity::Bytes(match self.capacity {
            Some(Capacity::Bytes(c)) => c + cap,
            _ => cap,
        }));
        let used = v.tail.saturating_sub(v.head).min(cap);
        self.fill = Some(self.fill.unwrap_or(0) + used);
        if index == 0 {
            self.detail("maximum message", format!("{max} B"));
        }
        for (side, (word, who)) in [("producer", v.producer), ("consumer", v.consumer)] {
            let state = match (word, who) {
                (spsc::NEVER, _) => "not attached yet".to_owned(),
                (spsc::DETACHED, _) => "let go".to_owned(),
                (_, Some(p)) => {
                    let p = Process::recorded(format!("{label}{side}"), p);
                    let s = format!("pid {}{}", p.pid, if p.alive { "" } else { " (dead)" });
                    self.attached.push(p);
                    s
                }
                (_, None) => "unknown".to_owned(),
            };
            self.detail(&format!("{label}{side}"), state);
        }
        self.detail(
            &format!("{label}positions"),
            format!("head {} tail {}", v.head, v.tail),
        );
        // One sleeper per side at most: its flag says whether it sleeps.
        for (side, name) in [(Side::Producer, "producer"), (Side::Consumer, "consumer")] {
            let asleep = raw.sleep_words(side).0.load(Ordering::Relaxed) != 0;
            self.bells
                .push(Bell::new(format!("{label}{name}"), u32::from(asleep), true));
        }
        self.contents.extend(
            v.messages
                .into_iter()
                .map(|(len, bytes)| Peeked { len, bytes }),
        );
        self.problems
            .extend(v.problem.map(|p| format!("{label}ring: {p}")));
    }

    fn queue(&mut self, payload: Region<'_>, peek: usize, bytes: usize) {
        let info = self.info.clone();
        let byte_queue = info.kind == Kind::ByteQueue;
        // The same geometry checks as opening the queue: a forged maximum is refused there.
        let stride = if byte_queue {
            byte_queue::stride_for(info.param1)
        } else {
            Some(queue::stride_for_size(info.type_size as usize))
        };
        let q = stride.and_then(|s| mpmc::Mpmc::new(payload, info.param0, s));
        let Some(q) = q else {
            self.problems.push(format!(
                "queue geometry: {} slots, parameter {}, {} bytes",
                info.param0,
                info.param1,
                payload.len()
            ));
            return;
        };
        let v = q.view(peek);
        let limit = if (1..=info.param0).contains(&v.limit) {
            v.limit
        } else {
            self.problems
                .push(format!("limit {} is outside 1..={}", v.limit, info.param0));
            info.param0
        };
        self.capacity = Some(Capacity::Items(limit));
        self.fill = Some((v.enq.wrapping_sub(v.deq) as i64).clamp(0, limit as i64) as u64);
        if byte_queue {
            self.detail("maximum message", format!("{} B", info.param1));
        } else {
            self.detail("item size", format!("{} B", info.type_size));
        }
        self.detail("slots", info.param0);
        self.detail("closed", if v.closed { "yes" } else { "no" });
        self.detail("dropped", v.dropped);
        if info.kind == Kind::JoinableQueue {
            self.detail("unfinished", v.unfinished);
            self.detail("taken, not done", v.taken);
        }
        self.detail("positions", format!("put {} get {}", v.enq, v.deq));
        self.bells.extend([
            Bell::new("items", v.items_waiters, true),
            Bell::new("space", v.space_waiters, true),
        ]);
        if info.kind == Kind::JoinableQueue {
            self.bells.push(Bell::new("join", v.join_waiters, true));
        }
        self.participants(v.participants);
        for pos in v.waiting {
            let data = q.data(pos);
            let (len, start) = if byte_queue {
                let mut w = [0; 8];
                let n = data.read(0, &mut w).map(|()| u64::from_ne_bytes(w));
                match n.filter(|&n| n <= info.param1) {
                    Some(n) => (n as usize, BYTE_QUEUE_LEN),
                    None => {
                        self.problems
                            .push(format!("message at position {pos} has a bad length"));
                        break;
                    }
                }
            } else {
                (info.type_size as usize, 0)
            };
            let mut buf = vec![0; len.min(bytes)];
            if data.read(start, &mut buf).is_none() {
                self.problems
                    .push(format!("message at position {pos} leaves its slot"));
                break;
            }
            self.contents.push(Peeked { len, bytes: buf });
        }
        self.problems.extend(v.problem);
    }

    /// Fills [`Survey::users`] of every survey with the processes that map or hold open its
    /// file, in one pass over `/proc`. Returns how many processes could not be read (other
    /// users' processes unless run as root): those may use a segment unseen.
    pub fn find_users(surveys: &mut [Survey]) -> usize {
        let files: Vec<(u64, u64)> = surveys.iter().map(|s| s.file).collect();
        let (found, unreadable) = process::holders(&files);
        for s in surveys.iter_mut() {
            s.users = found
                .iter()
                .filter(|(f, _)| *f == s.file)
                .map(|(_, who)| Process {
                    role: "user".into(),
                    pid: who.pid,
                    start_time: who.start_time,
                    alive: true,
                })
                .collect();
        }
        unreadable
    }

    /// Whether anyone may still use the segment, as the records tell: its creator or a
    /// recorded process may be alive, or (after [`Survey::find_users`]) a process maps or
    /// holds it. A hint for display: whether a segment is garbage is decided by its use
    /// lock, which [`Segment::in_use`] probes and [`Segment::remove_if_unused`] (what
    /// `shmq gc` calls) takes.
    pub fn in_use(&self) -> bool {
        self.creator.alive || self.attached.iter().any(|p| p.alive) || !self.users.is_empty()
    }

    /// Removes the segment's name, only if it still names the very file surveyed (a segment
    /// created under the same name since is left alone).
    ///
    /// # Errors
    /// [`OpenError::NotFound`] if the name is gone or names another file now; others as
    /// [`Segment::unlink`].
    pub fn remove(&self) -> Result<(), OpenError> {
        Segment::unlink_if_same(&self.opts, self.file)
    }
}
