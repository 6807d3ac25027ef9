//! A real topic whose shared memory holds arbitrary bytes: what a hostile, buggy or crashed
//! peer can leave there.
//!
//! Each input creates a topic (2, 4 or 8 slots of up to 0, 8, 24 or 40 bytes, room for 1, 2
//! or 4 subscribers, Block or Overwrite) in /dev/shm, attaches a publisher and a subscriber,
//! publishes and receives a few valid messages (checked exactly), then overwrites parts of
//! the topic area through the file `/dev/shm/<name>`, which shares its pages with the
//! mapping: raw bytes, words, the control words (`next`, `joins`, the high-water marks,
//! the sleep flags and bells), slot words stamped for a chosen sequence near the stored
//! `next` (being written, committed, skipped, with a chosen length: so the fuzzer gets past
//! the stamp check cheaply), and publisher and subscriber table entries (ours, dead, pid 1,
//! raw) with their claim or cursor. In header mode the segment header is fair game too, and
//! `Topic::open` must then fail cleanly or give a topic that behaves.
//!
//! Then at most 64 operations run: `try_publish`, `publish_timeout` (at most 1 ms),
//! `try_reserve` / `reserve_timeout` (committed or dropped), `try_recv`, `recv_timeout`,
//! attaching and dropping publishers and subscribers (on the creator's handle or a fresh
//! `Topic::open`), `latest`, the queries, and more overwrites. Every call must return `Ok`
//! or `Err` without panicking or hanging. Invariants: a message above the maximum is
//! refused (`TooLarge`); grants have the requested length; received messages and `latest`
//! are at most `max_message` bytes; under Block, for handles on the creator's mapping, a
//! received message lies inside one slot's payload area (checked by address, since
//! AddressSanitizer does not track shared mappings); `subscriber_count` is at most the
//! room for subscribers.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmq::{
    Options, Policy, PublishError, Publisher, StartAt, Subscriber, Topic, TopicConfig,
    TopicRecvError,
};

/// Segment header bytes: the topic area (128-byte aligned) starts right after.
const HEADER: u64 = 256;
/// The topic area's layout (src/ring/topic.rs).
const NEXT: u64 = 0;
const JOINS: u64 = 128;
const PUB_ATTACHES: u64 = 136;
const SUB_HWM: u64 = 144;
const PUB_HWM: u64 = 148;
const DATA_SLEEPING: u64 = 256;
const DATA_BELL: u64 = 260;
const ROOM_SLEEPING: u64 = 384;
const ROOM_BELL: u64 = 388;
const PUB_TABLE: u64 = 512;
const ENTRY: u64 = 128;
const PUBLISHERS: u64 = 64;
const SLOT_HEADER: u64 = 16;
/// Control words a `Control` patch may hit: (offset, width in bytes).
const CONTROL: [(u64, usize); 9] = [
    (NEXT, 8),
    (JOINS, 8),
    (PUB_ATTACHES, 8),
    (SUB_HWM, 4),
    (PUB_HWM, 4),
    (DATA_SLEEPING, 4),
    (DATA_BELL, 4),
    (ROOM_SLEEPING, 4),
    (ROOM_BELL, 4),
];
const SLOTS: [u64; 3] = [2, 4, 8];
const MAXES: [usize; 4] = [0, 8, 24, 40];
const SUBSCRIBERS: [usize; 3] = [1, 2, 4];
const START_MASK: u64 = (1 << 40) - 1;
const MAX_OPS: usize = 64;
const MAX_PATCHES: usize = 16;
/// Publishers and subscribers held at once.
const MAX_HELD: usize = 3;

/// A table entry's owner word.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Owner {
    Free,
    /// This process (as attaching writes it).
    Ours,
    /// A process that cannot exist.
    Dead,
    /// pid 1 with an unknown start time: always alive.
    Init,
    Raw(u64),
}

/// A sequence number: the stored `next` (or a raw value) moved by a little.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Seq {
    raw: bool,
    value: u64,
    delta: i8,
}

#[derive(Arbitrary, Debug, Clone)]
enum Patch {
    /// Raw bytes anywhere in the topic area (the whole file in header mode).
    Bytes { off: u16, data: Vec<u8> },
    /// One 8-byte word of the topic area.
    Word { index: u16, value: u64 },
    /// One control word set, or moved by a little.
    Control { which: u8, value: u64, nudge: bool },
    /// The slot of sequence `seq`: its commit word (0: being written `2s + 1`, 1: committed
    /// `2s + 2`, 2: an older lap's, else raw) and its length word.
    Slot {
        seq: Seq,
        state: u8,
        raw: u64,
        len: u32,
        skip: bool,
        junk: bool,
    },
    /// A publisher entry: owner and the sequence it claims.
    Publisher {
        index: u8,
        owner: Owner,
        claiming: Seq,
    },
    /// A subscriber entry: owner, cursor, lost count.
    Subscriber {
        index: u8,
        owner: Owner,
        cursor: Seq,
        lost: u64,
    },
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Publish {
        which: u8,
        len: u8,
        fill: u8,
    },
    PublishTimeout {
        which: u8,
        len: u8,
        micros: u8,
    },
    Reserve {
        which: u8,
        len: u8,
        commit: bool,
        timeout: bool,
    },
    TryRecv {
        which: u8,
    },
    RecvTimeout {
        which: u8,
        micros: u8,
    },
    Subscribe {
        start: u8,
        fresh: bool,
    },
    Unsubscribe {
        which: u8,
    },
    AttachPublisher {
        fresh: bool,
    },
    DetachPublisher {
        which: u8,
    },
    Latest {
        fresh: bool,
    },
    Info,
    Patch(Patch),
}

#[derive(Arbitrary, Debug)]
struct Input {
    slots: u8,
    max: u8,
    subscribers: u8,
    overwrite: bool,
    header_mode: bool,
    /// Lengths of valid messages published (and received) before the corruption (at most 8).
    pre: Vec<u8>,
    patches: Vec<Patch>,
    ops: Vec<Op>,
}

/// An end and whether it lives on the creator's mapping (so its slices can be checked
/// against the known slot addresses), with the maximum of the handle it came from.
struct End<T> {
    inner: T,
    on_main_map: bool,
    max: usize,
}

struct Ctx {
    file: std::fs::File,
    file_len: u64,
    /// The topic area's length.
    area: u64,
    slots: u64,
    stride: u64,
    /// Where the slots start in the topic area.
    slots_at: u64,
    max: usize,
    header_mode: bool,
    /// Address of slot 0 in the creator's mapping (Block only: found through a grant).
    slot0: Option<usize>,
    me: u64,
}

impl Ctx {
    fn write(&self, off: u64, data: &[u8]) {
        if off >= self.file_len {
            return;
        }
        let n = data.len().min((self.file_len - off) as usize);
        self.file
            .write_all_at(&data[..n], off)
            .expect("write into the segment file");
    }

    /// Writes `data` at `off` inside the topic area (cut at its end).
    fn write_area(&self, off: u64, data: &[u8]) {
        if off >= self.area {
            return;
        }
        let n = data.len().min((self.area - off) as usize);
        self.write(HEADER + off, &data[..n]);
    }

    fn read(&self, off: u64) -> u64 {
        let mut w = [0u8; 8];
        self.file
            .read_exact_at(&mut w, HEADER + off)
            .expect("read from the segment file");
        u64::from_ne_bytes(w)
    }

    fn owner(&self, o: Owner) -> u64 {
        match o {
            Owner::Free => 0,
            Owner::Ours => self.me,
            Owner::Dead => (0x3f_ffff << 40) | 1,
            Owner::Init => 1 << 40,
            Owner::Raw(v) => v,
        }
    }

    fn seq(&self, s: Seq) -> u64 {
        let base = if s.raw { s.value } else { self.read(NEXT) };
        base.wrapping_add(i64::from(s.delta) as u64)
    }

    fn patch(&self, p: &Patch) {
        match p {
            Patch::Bytes { off, data } => {
                let data = &data[..data.len().min(512)];
                if self.header_mode {
                    self.write(u64::from(*off) % (HEADER + self.area), data);
                } else {
                    self.write_area(u64::from(*off) % self.area, data);
                }
            }
            Patch::Word { index, value } => {
                let off = (u64::from(*index) * 8) % self.area;
                self.write_area(off, &value.to_ne_bytes());
            }
            Patch::Control {
                which,
                value,
                nudge,
            } => {
                let (off, width) = CONTROL[usize::from(*which) % CONTROL.len()];
                let v = if *nudge {
                    let delta = (*value as i8) as i64 as u64;
                    let cur = self.read(off & !7) >> (8 * (off % 8));
                    cur.wrapping_add(delta)
                } else {
                    *value
                };
                self.write_area(off, &v.to_ne_bytes()[..width]);
            }
            Patch::Slot {
                seq,
                state,
                raw,
                len,
                skip,
                junk,
            } => {
                let s = self.seq(*seq);
                let word = match state % 4 {
                    0 => s.wrapping_mul(2).wrapping_add(1),
                    1 => s.wrapping_mul(2).wrapping_add(2),
                    2 => s.wrapping_sub(self.slots).wrapping_mul(2).wrapping_add(2),
                    _ => *raw,
                };
                let meta = u64::from(*len)
                    | if *skip { 1 << 32 } else { 0 }
                    | if *junk { raw << 33 } else { 0 };
                let at = self.slots_at + (s % self.slots) * self.stride;
                self.write_area(at, &word.to_ne_bytes());
                self.write_area(at + 8, &meta.to_ne_bytes());
            }
            Patch::Publisher {
                index,
                owner,
                claiming,
            } => {
                let at = PUB_TABLE + ENTRY * (u64::from(*index) % PUBLISHERS);
                self.write_area(at, &self.owner(*owner).to_ne_bytes());
                self.write_area(at + 8, &self.seq(*claiming).to_ne_bytes());
            }
            Patch::Subscriber {
                index,
                owner,
                cursor,
                lost,
            } => {
                let subs = (self.slots_at - PUB_TABLE) / ENTRY - PUBLISHERS;
                let at = PUB_TABLE + ENTRY * (PUBLISHERS + u64::from(*index) % subs);
                self.write_area(at, &self.owner(*owner).to_ne_bytes());
                self.write_area(at + 8, &self.seq(*cursor).to_ne_bytes());
                self.write_area(at + 16, &lost.to_ne_bytes());
            }
        }
    }

    /// A received message of a handle: at most its maximum, and under Block, on the
    /// creator's mapping, inside one slot's payload area.
    fn check_message(&self, on_main_map: bool, max: usize, m: &[u8]) {
        assert!(
            m.len() <= max,
            "a {}-byte message, above max {max}",
            m.len()
        );
        if let (true, Some(slot0)) = (on_main_map, self.slot0) {
            let p = m.as_ptr() as usize;
            let end = slot0 + (self.slots * self.stride) as usize;
            assert!(
                p >= slot0 && p + m.len() <= end,
                "message {p:#x}+{} outside the slots {slot0:#x}..{end:#x}",
                m.len()
            );
            let within = ((p - slot0) as u64) % self.stride;
            assert!(
                within == SLOT_HEADER && within + m.len() as u64 <= SLOT_HEADER + self.max as u64,
                "message at {within} bytes into its slot, {} long",
                m.len()
            );
        }
    }
}

/// This process's entry word, as the library writes it: pid << 40 | start time (field 22
/// of /proc/self/stat).
fn own_entry() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("stat line") + 1..];
    let start: u64 = rest
        .split_ascii_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .expect("start time in /proc/self/stat");
    (u64::from(std::process::id()) << 40) | (start & START_MASK)
}

/// The held end number `which` (modulo how many are held).
fn pick<T>(ends: &mut [T], which: u8) -> Option<&mut T> {
    let n = ends.len();
    (n > 0).then(|| &mut ends[usize::from(which) % n])
}

fn micros(m: u8) -> Duration {
    // 0, 333, 666 or 999 µs: 64 waits cost at most 64 ms.
    Duration::from_micros(u64::from(m % 4) * 333)
}

/// A fresh handle on the segment, opened without waiting.
fn reopen(name: &str) -> Option<Topic> {
    Topic::open(Options::new(name).open_timeout(Duration::ZERO)).ok()
}

fn check_publish(max: usize, len: usize, r: &Result<u64, PublishError>) {
    if len > max {
        assert!(
            matches!(r, Err(PublishError::TooLarge { .. })),
            "{len}-byte message above max {max}: {r:?}"
        );
    }
    if let Err(PublishError::TooLarge { len: l, max: m }) = r {
        assert_eq!((*l, *m), (len, max), "TooLarge fields");
    }
}

fn recv(ctx: &Ctx, s: &mut End<Subscriber>, wait: Option<Duration>) {
    let (on_main, max) = (s.on_main_map, s.max);
    let r = match wait {
        None => s.inner.try_recv(),
        Some(d) => s.inner.recv_timeout(d),
    };
    match r {
        Ok(m) => ctx.check_message(on_main, max, &m),
        Err(TopicRecvError::Lagged(n)) => assert!(n > 0, "lagged by 0"),
        Err(_) => {}
    }
}

fn run(input: Input) {
    let name = common::Name::new("shmqfuzz-topic");
    let slots = SLOTS[usize::from(input.slots) % SLOTS.len()];
    let max = MAXES[usize::from(input.max) % MAXES.len()];
    let subs = SUBSCRIBERS[usize::from(input.subscribers) % SUBSCRIBERS.len()];
    let policy = if input.overwrite {
        Policy::Overwrite
    } else {
        Policy::Block
    };
    {
        let config = TopicConfig::new(slots as usize, max)
            .subscribers(subs)
            .policy(policy);
        let topic = Topic::create_with(name.as_str(), &config).expect("create topic");
        assert_eq!(
            (topic.slots(), topic.max_message(), topic.max_subscribers()),
            (slots as usize, max, subs)
        );
        let info = topic.info().clone();
        assert_eq!(info.payload_offset, HEADER, "topic area offset");
        let mut publishers: Vec<End<Publisher>> = vec![End {
            inner: topic.publisher().expect("attach publisher"),
            on_main_map: true,
            max,
        }];
        let mut subscribers: Vec<End<Subscriber>> = vec![End {
            inner: topic.subscriber().expect("attach subscriber"),
            on_main_map: true,
            max,
        }];
        // Under Block, slot 0's address: a zero-length grant at sequence 0 (dropped: a skip).
        let slot0 = (policy == Policy::Block).then(|| {
            let g = publishers[0]
                .inner
                .try_reserve(0)
                .expect("first reservation");
            assert_eq!(g.seq(), 0);
            g.as_ptr() as usize - SLOT_HEADER as usize
        });
        let stride = (SLOT_HEADER + max as u64).div_ceil(64) * 64;
        let slots_at = PUB_TABLE + ENTRY * (PUBLISHERS + subs as u64);
        assert!(
            info.payload_size >= slots_at + slots * stride,
            "topic area size"
        );
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.path())
            .expect("open the segment file");
        let file_len = file.metadata().expect("stat").len();
        let ctx = Ctx {
            file,
            file_len,
            area: info.payload_size,
            slots,
            stride,
            slots_at,
            max,
            header_mode: input.header_mode,
            slot0,
            me: own_entry(),
        };

        // A few valid messages first, received and checked exactly.
        for (i, &l) in input.pre.iter().take(8).enumerate() {
            let msg = vec![i as u8; usize::from(l) % (max + 1)];
            let p = &mut publishers[0].inner;
            let seq = p.try_publish(&msg).expect("publishing a valid message");
            let s = &mut subscribers[0];
            let m = s.inner.try_recv().expect("receiving a valid message");
            assert_eq!((m.seq(), &*m), (seq, &msg[..]), "a valid message");
            ctx.check_message(true, max, &m);
        }

        for p in input.patches.iter().take(MAX_PATCHES) {
            ctx.patch(p);
        }

        if ctx.header_mode {
            // Whatever the header says now, opening must fail cleanly or give a usable topic.
            if let Some(t) = reopen(name.as_str()) {
                let tmax = t.max_message();
                let _ = (t.published(), t.subscriber_count(), t.slots(), t.policy());
                if let Ok(Some(m)) = t.latest() {
                    assert!(m.len() <= tmax, "latest of {} bytes > {tmax}", m.len());
                }
                if let Ok(mut s) = t.subscriber() {
                    if let Ok(m) = s.try_recv() {
                        assert!(m.len() <= tmax, "reopened topic gave {} bytes", m.len());
                    }
                }
                if let Ok(mut p) = t.publisher() {
                    let r = p.try_publish(&vec![0; tmax + 1]);
                    check_publish(tmax, tmax + 1, &r);
                    let _ = p.try_publish(&[1, 2, 3][..3.min(tmax)]);
                }
            }
        }

        for op in input.ops.into_iter().take(MAX_OPS) {
            match op {
                Op::Publish { which, len, fill } => {
                    if let Some(p) = pick(&mut publishers, which) {
                        let len = usize::from(len) % (max + 8);
                        let r = p.inner.try_publish(&vec![fill; len]);
                        check_publish(p.max, len, &r);
                    }
                }
                Op::PublishTimeout {
                    which,
                    len,
                    micros: m,
                } => {
                    if let Some(p) = pick(&mut publishers, which) {
                        let len = usize::from(len) % (max + 8);
                        let r = p.inner.publish_timeout(&vec![0xa5; len], micros(m));
                        check_publish(p.max, len, &r);
                    }
                }
                Op::Reserve {
                    which,
                    len,
                    commit,
                    timeout,
                } => {
                    if let Some(p) = pick(&mut publishers, which) {
                        let len = usize::from(len) % (max + 8);
                        let pmax = p.max;
                        let r = if timeout {
                            p.inner.reserve_timeout(len, micros(len as u8))
                        } else {
                            p.inner.try_reserve(len)
                        };
                        match r {
                            Ok(mut g) => {
                                assert!(len <= pmax, "a grant of {len} > max {pmax}");
                                assert_eq!(g.len(), len, "grant length");
                                g.fill(0x5a);
                                if commit {
                                    g.commit();
                                }
                            }
                            Err(e) => check_publish(pmax, len, &Err(e)),
                        }
                    }
                }
                Op::TryRecv { which } => {
                    if let Some(s) = pick(&mut subscribers, which) {
                        recv(&ctx, s, None);
                        let _ = (s.inner.pending(), s.inner.position());
                    }
                }
                Op::RecvTimeout { which, micros: m } => {
                    if let Some(s) = pick(&mut subscribers, which) {
                        recv(&ctx, s, Some(micros(m)));
                    }
                }
                Op::Subscribe { start, fresh } => {
                    if subscribers.len() < MAX_HELD {
                        let start = [StartAt::Next, StartAt::Oldest, StartAt::Latest]
                            [usize::from(start) % 3];
                        let end = if fresh {
                            reopen(name.as_str()).and_then(|t| {
                                let max = t.max_message();
                                t.subscriber_from(start).ok().map(|inner| End {
                                    inner,
                                    on_main_map: false,
                                    max,
                                })
                            })
                        } else {
                            topic.subscriber_from(start).ok().map(|inner| End {
                                inner,
                                on_main_map: true,
                                max,
                            })
                        };
                        subscribers.extend(end);
                    }
                }
                Op::Unsubscribe { which } => {
                    if !subscribers.is_empty() {
                        subscribers.remove(usize::from(which) % subscribers.len());
                    }
                }
                Op::AttachPublisher { fresh } => {
                    if publishers.len() < MAX_HELD {
                        let end = if fresh {
                            reopen(name.as_str()).and_then(|t| {
                                let max = t.max_message();
                                t.publisher().ok().map(|inner| End {
                                    inner,
                                    on_main_map: false,
                                    max,
                                })
                            })
                        } else {
                            topic.publisher().ok().map(|inner| End {
                                inner,
                                on_main_map: true,
                                max,
                            })
                        };
                        publishers.extend(end);
                    }
                }
                Op::DetachPublisher { which } => {
                    if !publishers.is_empty() {
                        publishers.remove(usize::from(which) % publishers.len());
                    }
                }
                Op::Latest { fresh } => {
                    let (r, tmax) = if fresh {
                        match reopen(name.as_str()) {
                            Some(t) => (t.latest(), t.max_message()),
                            None => continue,
                        }
                    } else {
                        (topic.latest(), max)
                    };
                    if let Ok(Some(m)) = r {
                        assert!(m.len() <= tmax, "latest of {} bytes > {tmax}", m.len());
                    }
                }
                Op::Info => {
                    let _ = topic.published();
                    assert!(
                        topic.subscriber_count() <= subs,
                        "{} subscribers, room for {subs}",
                        topic.subscriber_count()
                    );
                    for s in &subscribers {
                        let _ = (s.inner.pending(), s.inner.position());
                    }
                }
                Op::Patch(p) => ctx.patch(&p),
            }
        }
        drop(publishers);
        drop(subscribers);
        drop(topic);
        drop(ctx);
    }
    name.assert_unlinked();
}

fuzz_target!(|input: Input| run(input));
