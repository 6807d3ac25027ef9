//! A real MPMC queue whose shared memory holds arbitrary bytes: what a hostile, buggy or
//! crashed peer can leave there.
//!
//! Each input creates a `Queue<u64>`, a `JoinableQueue<u64>` or a `ByteQueue` with a small
//! capacity (1, 3, 4, 5 or 8: the non-powers of two run with a limit below the slot count)
//! in /dev/shm, opens a second handle on it (standing for another process), puts and gets a
//! few valid items (checked exactly: FIFO, `len`, the JoinableQueue counts), then overwrites
//! parts of the queue region through the file `/dev/shm/<name>`, which shares its pages with
//! the mappings: raw bytes, control words (positions, closed flag, counters, limit, bells),
//! well-formed slot words with a chosen state, participant and sequence (so the fuzzer gets
//! past the lap check cheaply), participant-table entries (ours, dead, alive, reclaiming,
//! raw), and ByteQueue message lengths.
//!
//! Then at most 64 operations run on either handle: `try_put`, `put_timeout`/`get_timeout`
//! with timeouts up to 1 ms, `try_get`, ByteQueue loans (committed, dropped, or held across
//! later operations) and message guards (held or dropped), `close`, the queries, a fresh
//! `open` of the segment, `task_done`/`join_timeout`, more overwrites, and `Fresh`, which
//! writes a consistent empty image at an arbitrary position (near the 48-bit and 64-bit
//! wraps too) and checks that a put then a get round-trips exactly.
//!
//! Every call must return `Ok` or `Err` without panicking or hanging. Invariants:
//! `len() <= capacity()`; ByteQueue messages are at most `max_message` bytes; loans have
//! the requested length; for the two handles whose mapping base is known, loans and
//! messages lie inside the slot area (checked by address, since AddressSanitizer does not
//! track shared mappings).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmq::{ByteQueue, GetError, JoinableQueue, Loan, Message, Options, PutError, Queue, Segment};

// The queue region's layout (src/ring/mpmc.rs); offsets inside the payload.
const ENQ: u64 = 0;
const DEQ: u64 = 128;
const CLOSED: u64 = 256;
const UNFINISHED: u64 = 264;
const TAKEN: u64 = 272;
const LIMIT: u64 = 296;
/// The participant table starts at 512 with 64 bytes of counters; its entries follow, then
/// the sides and owed-task words (u32 each), then the slots.
const TABLE: u64 = 512;
const PARTICIPANTS: u64 = TABLE + 64;
const MAX_PARTICIPANTS: u64 = 256;
/// Tasks each participant owes `task_done` for (u32 each), after the entries and sides.
const OWED: u64 = PARTICIPANTS + MAX_PARTICIPANTS * 12;
const SLOTS: u64 = PARTICIPANTS + MAX_PARTICIPANTS * 16;
/// Control words a `Control` patch may hit: (offset, width in bytes).
const CONTROL: [(u64, usize); 13] = [
    (ENQ, 8),
    (DEQ, 8),
    (CLOSED, 4),
    (UNFINISHED, 8),
    (TAKEN, 8),
    (280, 4), // join bell
    (284, 4), // join waiters
    (288, 8), // dropped
    (LIMIT, 8),
    (384, 4), // items bell
    (388, 4), // items waiters
    (448, 4), // space bell
    (452, 4), // space waiters
];

// Slot words: state (2 bits) | participant (14 bits) | seq (48 bits).
const SEQ_MASK: u64 = (1 << 48) - 1;
const FREE: u64 = 0;
// Participant entries: pid << 40 | start time (40 bits); the top bit marks a reclaim.
const START_MASK: u64 = (1 << 40) - 1;
const RECLAIMING: u64 = 1 << 63;

/// Capacities asked for: the slot count is the next power of two, the limit the value.
const CAPACITIES: [usize; 5] = [1, 3, 4, 5, 8];
/// ByteQueue maximum message sizes (strides 24, 24, 32, 56).
const MAX_MESSAGES: [usize; 4] = [1, 8, 13, 40];
const MAX_OPS: usize = 64;
const MAX_PATCHES: usize = 16;
/// Loans or messages held at once.
const MAX_HELD: usize = 4;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Flavour {
    Typed,
    Joinable,
    Bytes,
}

/// A participant-table entry.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Entry {
    Free,
    /// This process (as `attach` writes it).
    Ours,
    /// This process, marked as being reclaimed.
    OursReclaiming,
    /// A process that cannot exist.
    Dead,
    /// pid 1 with an unknown start time: always alive.
    Init,
    Raw(u64),
}

/// A sequence number for a slot word.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Seq {
    /// 0: the stored enq, 1: the stored deq, 2: zero, else `raw`.
    base: u8,
    /// Laps (of the slot count) added.
    lap: i8,
    /// Whether to align it to the slot (`seq % cap == index`): passes the lap check.
    aligned: bool,
    off: u8,
    raw: u64,
}

/// A ByteQueue message length.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Max,
    MaxPlusOne,
    Small(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone)]
enum Patch {
    /// Raw bytes anywhere in the queue region.
    Bytes { off: u16, data: Vec<u8> },
    /// One control word set.
    Control { which: u8, value: u64 },
    /// One control word moved by a small amount.
    Nudge { which: u8, delta: i8 },
    /// A slot word with the given parts.
    Slot {
        index: u8,
        state: u8,
        who: u16,
        seq: Seq,
    },
    /// One participant entry.
    Participant { index: u8, entry: Entry },
    /// Every participant entry (a full table, or one of ghosts).
    AllParticipants { entry: Entry },
    /// A ByteQueue slot's message length.
    Length { index: u8, len: Len },
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    TryPut {
        value: u64,
        second: bool,
    },
    PutTimeout {
        value: u64,
        micros: u8,
        second: bool,
    },
    TryGet {
        second: bool,
    },
    GetTimeout {
        micros: u8,
        second: bool,
    },
    /// ByteQueue: a loan, committed, dropped, or held.
    Loan {
        len: u16,
        fill: u8,
        commit: bool,
        hold: bool,
        timeout: bool,
        second: bool,
    },
    CommitHeld {
        index: u8,
    },
    DropHeldLoan {
        index: u8,
    },
    /// ByteQueue: a message guard kept across later operations.
    HoldGet {
        second: bool,
    },
    DropHeldMessage {
        index: u8,
    },
    Close {
        second: bool,
    },
    Info,
    /// A fresh handle on the segment (`other_kind`: open it as the wrong kind).
    Reopen {
        value: u64,
        other_kind: bool,
    },
    TaskDone,
    Join {
        micros: u8,
    },
    Patch(Patch),
    /// A consistent empty image at position `base`, then a put/get round trip.
    Fresh {
        base: u64,
        value: u64,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    flavour: Flavour,
    capacity: u8,
    max_message: u8,
    /// Valid items put before the corruption (at most the capacity).
    pre_put: Vec<u16>,
    /// How many of them are taken before the corruption.
    pre_get: u8,
    /// How many of those are marked done (JoinableQueue).
    pre_done: u8,
    patches: Vec<Patch>,
    ops: Vec<Op>,
}

/// The segment file and the queue's geometry.
struct Ctx {
    file: std::fs::File,
    /// Where the queue region starts in the file, and its length.
    payload: u64,
    region: u64,
    /// Slots, slot stride, limit (the capacity asked for).
    cap: u64,
    stride: u64,
    limit: u64,
    /// This process's participant-entry word.
    me: u64,
}

impl Ctx {
    fn write(&self, off: u64, data: &[u8]) {
        if off >= self.region {
            return;
        }
        let n = data.len().min((self.region - off) as usize);
        self.file
            .write_all_at(&data[..n], self.payload + off)
            .expect("write into the segment file");
    }

    fn read(&self, off: u64) -> u64 {
        let mut w = [0u8; 8];
        self.file
            .read_exact_at(&mut w, self.payload + off)
            .expect("read from the segment file");
        u64::from_ne_bytes(w)
    }

    fn set(&self, off: u64, width: usize, value: u64) {
        self.write(off, &value.to_ne_bytes()[..width]);
    }

    fn get(&self, off: u64, width: usize) -> u64 {
        let v = self.read(off);
        if width == 4 { v & 0xffff_ffff } else { v }
    }

    fn slot(&self, index: u64) -> u64 {
        SLOTS + (index % self.cap) * self.stride
    }

    fn entry(&self, e: Entry) -> u64 {
        match e {
            Entry::Free => 0,
            Entry::Ours => self.me,
            Entry::OursReclaiming => self.me | RECLAIMING,
            Entry::Dead => (0x3f_ffff << 40) | 1,
            Entry::Init => 1 << 40,
            Entry::Raw(v) => v,
        }
    }

    fn patch(&self, p: &Patch) {
        match p {
            Patch::Bytes { off, data } => {
                let data = &data[..data.len().min(256)];
                self.write(u64::from(*off) % self.region, data);
            }
            Patch::Control { which, value } => {
                let (off, width) = CONTROL[usize::from(*which) % CONTROL.len()];
                self.set(off, width, *value);
            }
            Patch::Nudge { which, delta } => {
                let (off, width) = CONTROL[usize::from(*which) % CONTROL.len()];
                let v = self.get(off, width).wrapping_add(*delta as i64 as u64);
                self.set(off, width, v);
            }
            Patch::Slot {
                index,
                state,
                who,
                seq,
            } => {
                let index = u64::from(*index) % self.cap;
                let base = match seq.base % 4 {
                    0 => self.read(ENQ),
                    1 => self.read(DEQ),
                    2 => 0,
                    _ => seq.raw,
                };
                let laps = (i64::from(seq.lap) as u64).wrapping_mul(self.cap);
                let s = if seq.aligned {
                    (base & !(self.cap - 1)) | index
                } else {
                    base.wrapping_add(u64::from(seq.off))
                }
                .wrapping_add(laps);
                // Mostly the handles' own participants (0, 1) or free entries (2, 3).
                let who = if who & 0x8000 == 0 {
                    u64::from(who % 4)
                } else {
                    u64::from(*who)
                };
                let w = (u64::from(state % 4) << 62) | ((who & 0x3fff) << 48) | (s & SEQ_MASK);
                self.set(self.slot(index), 8, w);
            }
            Patch::Participant { index, entry } => {
                self.set(PARTICIPANTS + u64::from(*index) * 8, 8, self.entry(*entry));
            }
            Patch::AllParticipants { entry } => {
                let w = self.entry(*entry).to_ne_bytes();
                let table: Vec<u8> = (0..MAX_PARTICIPANTS).flat_map(|_| w).collect();
                self.write(PARTICIPANTS, &table);
            }
            Patch::Length { index, len } => {
                // Only meaningful for a ByteQueue (elsewhere it is the item: harmless).
                let v = match len {
                    Len::Max => self.stride - 16,
                    Len::MaxPlusOne => self.stride - 15,
                    Len::Small(n) => u64::from(*n),
                    Len::Raw(v) => *v,
                };
                self.set(self.slot(u64::from(*index)) + 8, 8, v);
            }
        }
    }

    /// A consistent, empty, open queue whose next position is `base`; counters zeroed, the
    /// limit restored. Participant entries and bells are left as they are.
    fn fresh(&self, base: u64) {
        // The participant table as a fresh queue with only our handles attached would have
        // it: counters and owed tasks zero, every recorded entry ours (live).
        self.write(TABLE, &[0u8; 64]);
        for i in 0..MAX_PARTICIPANTS {
            let at = PARTICIPANTS + i * 8;
            if self.get(at, 8) != 0 {
                self.set(at, 8, self.me);
            }
            self.set(OWED + i * 4, 4, 0);
        }
        self.set(ENQ, 8, base);
        self.set(DEQ, 8, base);
        self.set(CLOSED, 4, 0);
        self.set(UNFINISHED, 8, 0);
        self.set(TAKEN, 8, 0);
        self.set(LIMIT, 8, self.limit);
        for i in 0..self.cap {
            // Slot `p % cap` serves position `p`: the next `cap` positions from `base`.
            let pos = base.wrapping_add(i);
            self.set(self.slot(pos), 8, (FREE << 62) | (pos & SEQ_MASK));
        }
    }
}

/// Set while the library still has the known slowness below, so the fuzzer can look past
/// it (it costs up to half a second per call under AddressSanitizer; an input of 64 such
/// calls stalls the fuzzer). Now `false`: a slot more than a lap ahead of an unmoved position
/// is reported as corruption at once.
///
/// Known issue: when every slot's sequence is a whole number of laps ahead of the position
/// (`d >= 0`, any multiple of the capacity is accepted), `try_claim_put`/`try_claim_get`
/// move the position one step per iteration until `RACE_LIMIT` (2^22) and only then
/// report `Corrupted`: about 27 ms per call in a release build, whatever the timeout. One
/// rewritten `deq` is enough on a one-slot queue (input:
/// `regressions/queue_image/slow_walk_from_rewritten_deq`, 5 s under ASan with the skip off).
const SKIP_KNOWN_SLOW_ADVANCE: bool = false;

/// Whether a claim from the stored `enq` or `deq` would walk more than 2^16 positions
/// before stopping (see `SKIP_KNOWN_SLOW_ADVANCE`). A walk stops at the first slot whose
/// sequence is not a whole number of laps ahead of the position it is visited for.
fn slow_advance(ctx: &Ctx) -> bool {
    let walk = |from: u64| {
        (0..ctx.cap).all(|k| {
            let pos = from.wrapping_add(k);
            let seq = ctx.read(ctx.slot(pos)) & SEQ_MASK;
            let d = ((seq.wrapping_sub(pos) << 16) as i64) >> 16;
            d >= 1 << 16 && d % ctx.cap as i64 == 0
        })
    };
    walk(ctx.read(ENQ)) || walk(ctx.read(DEQ))
}

/// Whether `op` claims a slot (a put, get, loan or a reopened handle's traffic) while the
/// image makes that slow; such ops are skipped.
fn skip_slow(ctx: &Ctx, op: &Op) -> bool {
    SKIP_KNOWN_SLOW_ADVANCE
        && matches!(
            op,
            Op::TryPut { .. }
                | Op::PutTimeout { .. }
                | Op::TryGet { .. }
                | Op::GetTimeout { .. }
                | Op::Loan { .. }
                | Op::HoldGet { .. }
                | Op::Reopen { .. }
        )
        && slow_advance(ctx)
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

fn micros(m: u8) -> Duration {
    // 0, 333, 666 or 999 µs: short enough that 64 waits cost at most 64 ms.
    Duration::from_micros(u64::from(m % 4) * 333)
}

/// A typed queue handle: plain or joinable.
enum Typed {
    Plain(Queue<u64>),
    Joinable(JoinableQueue<u64>),
}

impl Typed {
    fn q(&self) -> &Queue<u64> {
        match self {
            Typed::Plain(q) => q,
            Typed::Joinable(j) => j,
        }
    }

    fn joinable(&self) -> Option<&JoinableQueue<u64>> {
        match self {
            Typed::Plain(_) => None,
            Typed::Joinable(j) => Some(j),
        }
    }
}

/// `len() <= capacity()`; the capacity is the creator's `limit` for handles made before the
/// corruption, and at most the slot count `cap` for handles opened after it (the stored
/// limit may have been rewritten to any value the open check accepts).
fn check_len(what: &str, len: usize, capacity: usize, limit: Option<u64>, cap: u64) {
    assert!(len <= capacity, "{what}: len {len} > capacity {capacity}");
    match limit {
        Some(l) => assert_eq!(capacity as u64, l, "{what}: capacity changed"),
        None => assert!(
            (1..=cap).contains(&(capacity as u64)),
            "{what}: capacity {capacity} outside 1..={cap}"
        ),
    }
}

fn check_typed_info(q: &Queue<u64>, limit: Option<u64>, cap: u64) {
    let (len, capacity) = (q.len(), q.capacity());
    check_len("queue", len, capacity, limit, cap);
    let _ = (q.is_empty(), q.is_full(), q.is_closed(), q.name());
}

fn run_typed(input: Input, joinable: bool) {
    let name = common::Name::new("shmqfuzz-qimg");
    let capacity = CAPACITIES[usize::from(input.capacity) % CAPACITIES.len()];
    {
        let (main, second) = if joinable {
            let m = JoinableQueue::<u64>::create(name.as_str(), capacity).expect("create");
            let s = JoinableQueue::<u64>::open(name.as_str()).expect("open a second handle");
            (Typed::Joinable(m), Typed::Joinable(s))
        } else {
            let m = Queue::<u64>::create(name.as_str(), capacity).expect("create");
            let s = Queue::<u64>::open(name.as_str()).expect("open a second handle");
            (Typed::Plain(m), Typed::Plain(s))
        };
        let ctx = context(name.as_str(), capacity, 16);

        // Valid traffic first, checked exactly against a model.
        let mut model = std::collections::VecDeque::new();
        let (mut puts, mut dones, mut gets) = (0u64, 0u64, 0u64);
        for (i, &v) in input.pre_put.iter().take(capacity).enumerate() {
            let h = if i % 2 == 0 { &main } else { &second };
            let v = u64::from(v) << 8 | i as u64;
            h.q().try_put(v).expect("a put into a queue with room");
            model.push_back(v);
            puts += 1;
        }
        assert_eq!(main.q().len(), model.len(), "len after valid puts");
        assert_eq!(main.q().is_full(), model.len() == capacity, "is_full");
        let pre_get = usize::from(input.pre_get) % (model.len() + 1);
        for i in 0..pre_get {
            let h = if i % 2 == 0 { &second } else { &main };
            let got = h.q().try_get().expect("a get from a queue with items");
            assert_eq!(Some(got), model.pop_front(), "FIFO order");
            gets += 1;
        }
        if let Some(j) = main.joinable() {
            for _ in 0..usize::from(input.pre_done) % (pre_get + 2) {
                let r = j.task_done();
                assert_eq!(
                    r.is_ok(),
                    dones < gets,
                    "task_done with {gets} taken, {dones} done"
                );
                dones += u64::from(r.is_ok());
            }
            assert_eq!(j.unfinished(), puts - dones, "unfinished");
            assert_eq!(
                j.join_timeout(Duration::ZERO).is_ok(),
                puts == dones,
                "join"
            );
        }
        if model.is_empty() {
            assert_eq!(
                second.q().try_get(),
                Err(GetError::Empty),
                "get from an empty queue"
            );
        }

        for p in input.patches.iter().take(MAX_PATCHES) {
            ctx.patch(p);
        }

        for op in input.ops.into_iter().take(MAX_OPS) {
            if skip_slow(&ctx, &op) {
                continue;
            }
            let pick = |second_handle: bool| if second_handle { &second } else { &main };
            match op {
                Op::TryPut { value, second: s } => {
                    check_put(&pick(s).q().try_put(value));
                }
                Op::PutTimeout {
                    value,
                    micros: m,
                    second: s,
                } => check_put(&pick(s).q().put_timeout(value, micros(m))),
                Op::TryGet { second: s } => {
                    let _ = pick(s).q().try_get();
                }
                Op::GetTimeout {
                    micros: m,
                    second: s,
                } => {
                    let _ = pick(s).q().get_timeout(micros(m));
                }
                Op::Close { second: s } => {
                    pick(s).q().close();
                    assert!(pick(!s).q().is_closed(), "closed for the other handle too");
                }
                Op::Info => {
                    check_typed_info(main.q(), Some(ctx.limit), ctx.cap);
                    check_typed_info(second.q(), Some(ctx.limit), ctx.cap);
                    if let Some(j) = main.joinable() {
                        let _ = j.unfinished();
                    }
                }
                Op::Reopen { value, other_kind } => {
                    let opts = Options::new(name.as_str()).open_timeout(Duration::ZERO);
                    let fresh = if joinable != other_kind {
                        JoinableQueue::<u64>::open(opts).map(Typed::Joinable)
                    } else {
                        Queue::<u64>::open(opts).map(Typed::Plain)
                    };
                    if let Ok(h) = fresh {
                        assert!(!other_kind, "opened a queue as the wrong kind");
                        check_put(&h.q().try_put(value));
                        let _ = h.q().try_get();
                        check_typed_info(h.q(), None, ctx.cap);
                        if let Some(j) = h.joinable() {
                            let _ = j.task_done();
                        }
                    }
                }
                Op::TaskDone => {
                    if let Some(j) = main.joinable() {
                        let _ = j.task_done();
                    }
                }
                Op::Join { micros: m } => {
                    if let Some(j) = main.joinable()
                        && let Err(shmq::JoinError::Timeout { unfinished }) =
                            j.join_timeout(micros(m))
                    {
                        assert!(unfinished > 0, "join timed out with nothing unfinished");
                    }
                }
                Op::Patch(p) => ctx.patch(&p),
                Op::Fresh { base, value } => {
                    ctx.fresh(base);
                    let q = main.q();
                    assert!(!q.is_closed(), "closed after a fresh image");
                    assert_eq!(q.len(), 0, "len of a fresh image at {base:#x}");
                    q.try_put(value)
                        .unwrap_or_else(|e| panic!("put into a fresh image at {base:#x}: {e:?}"));
                    assert_eq!(q.len(), 1, "len after one put at {base:#x}");
                    if let Some(j) = main.joinable() {
                        assert_eq!(j.unfinished(), 1, "unfinished after one put");
                    }
                    let got = second.q().try_get();
                    assert_eq!(
                        got,
                        Ok(value),
                        "round trip through a fresh image at {base:#x}"
                    );
                    assert_eq!(q.len(), 0, "len after the round trip at {base:#x}");
                    if let Some(j) = main.joinable() {
                        assert!(j.task_done().is_ok(), "task_done after a get");
                        assert_eq!(j.unfinished(), 0, "unfinished after task_done");
                        assert!(
                            j.join_timeout(Duration::ZERO).is_ok(),
                            "join after all done"
                        );
                        assert!(j.task_done().is_err(), "a second task_done");
                    }
                }
                Op::Loan { .. }
                | Op::CommitHeld { .. }
                | Op::DropHeldLoan { .. }
                | Op::HoldGet { .. }
                | Op::DropHeldMessage { .. } => {}
            }
        }
        drop(second);
        drop(main);
        drop(ctx);
    }
    name.assert_unlinked();
}

fn check_put<T>(r: &Result<(), PutError<T>>) {
    assert!(
        !matches!(r, Err(PutError::TooLarge { .. })),
        "TooLarge from a typed queue"
    );
}

/// The segment file and geometry of the queue just created under `name`.
fn context(name: &str, capacity: usize, stride: u64) -> Ctx {
    let info = Segment::inspect(name).expect("inspect the queue");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(common::shm_path(name))
        .expect("open the segment file");
    let cap = (capacity as u64).next_power_of_two();
    assert!(
        info.payload_size >= SLOTS + cap * stride,
        "queue region of {} bytes for {cap} slots of {stride}",
        info.payload_size
    );
    assert!(
        file.metadata().expect("stat").len() >= info.payload_offset + info.payload_size,
        "segment file shorter than its payload"
    );
    Ctx {
        file,
        payload: info.payload_offset,
        region: info.payload_size,
        cap,
        stride,
        limit: capacity as u64,
        me: own_entry(),
    }
}

/// Where a ByteQueue handle's slots lie in its mapping, to check slices by address.
#[derive(Clone, Copy)]
struct Area {
    start: usize,
    len: usize,
}

impl Area {
    fn check(&self, what: &str, s: &[u8]) {
        let p = s.as_ptr() as usize;
        assert!(
            p >= self.start && p + s.len() <= self.start + self.len,
            "{what}: {p:#x}+{} outside the slots {:#x}+{}",
            s.len(),
            self.start,
            self.len
        );
    }
}

struct Bytes<'q> {
    ctx: &'q Ctx,
    max: usize,
    handles: [&'q ByteQueue; 2],
    areas: [Area; 2],
    loans: Vec<Loan<'q>>,
    messages: Vec<Message<'q>>,
}

impl<'q> Bytes<'q> {
    fn check_message(&self, h: usize, m: &Message<'_>) {
        assert!(
            m.len() <= self.max,
            "message of {} bytes > max {}",
            m.len(),
            self.max
        );
        self.areas[h].check("message", m);
    }

    fn check_put_err(&self, len: usize, r: &PutError) {
        if let PutError::TooLarge { len: l, max } = r {
            assert_eq!((*l, *max), (len, self.max), "TooLarge fields");
        }
        assert_eq!(
            len > self.max,
            matches!(r, PutError::TooLarge { .. }),
            "{len}-byte message, max {}: {r:?}",
            self.max
        );
    }

    fn put(&self, h: usize, len: usize, fill: u8, timeout: Option<Duration>) {
        let msg = vec![fill; len];
        let q = self.handles[h];
        let r = match timeout {
            None => q.try_put(&msg),
            Some(t) => q.put_timeout(&msg, t),
        };
        if let Err(e) = r {
            self.check_put_err(len, &e);
        } else {
            assert!(len <= self.max, "accepted {len} bytes > max {}", self.max);
        }
    }

    fn get(&mut self, h: usize, timeout: Option<Duration>, hold: bool) {
        let q = self.handles[h];
        let r = match timeout {
            None => q.try_get(),
            Some(t) => q.get_timeout(t),
        };
        if let Ok(m) = r {
            self.check_message(h, &m);
            if hold && self.messages.len() < MAX_HELD {
                self.messages.push(m);
            }
        }
    }

    fn loan(&mut self, h: usize, len: usize, fill: u8, commit: bool, hold: bool, t: bool) {
        let q = self.handles[h];
        let r = if t {
            q.loan_timeout(len, micros(fill))
        } else {
            q.try_loan(len)
        };
        match r {
            Ok(mut l) => {
                assert!(len <= self.max, "loaned {len} bytes > max {}", self.max);
                assert_eq!(l.len(), len, "loan length");
                self.areas[h].check("loan", &l);
                l.fill(fill);
                if commit {
                    if let Err(e) = l.commit() {
                        self.check_put_err(len, &e);
                    }
                } else if hold && self.loans.len() < MAX_HELD {
                    self.loans.push(l);
                }
            }
            Err(e) => self.check_put_err(len, &e),
        }
    }

    fn info(&self) {
        for q in self.handles {
            check_len(
                "byte queue",
                q.len(),
                q.capacity(),
                Some(self.ctx.limit),
                self.ctx.cap,
            );
            assert_eq!(q.max_message(), self.max, "max_message");
            let _ = (q.is_empty(), q.is_full(), q.is_closed(), q.name());
        }
    }
}

/// `false`: checked. Set to `true` only if the fix below is undone, so the fuzzer can look
/// past it (regression input: `regressions/queue_image/abandoned_loans_count_as_items`).
///
/// Bug (fixed by `Mpmc::skip_holes` for holes at the head): a loan dropped uncommitted
/// (`Mpmc::abandon`) frees its slot for the next lap but left `deq` behind the skipped
/// position, so `len()` (`enq - deq`) counted it as an item until some consumer's get moved
/// past it: an empty queue reported `len() > 0` and `is_full()`, and with a limit below the
/// slot count (capacity 3, 5) `try_put` said `Full` on an empty queue. Holes behind an item
/// still count (tests/proptest_queue.rs, `HOLES_COUNTED`); this check drops loans on an
/// empty queue only.
const SKIP_KNOWN_ABANDONED_LEN: bool = false;

/// The start of a ByteQueue handle's slot area, from a loan of position `pos` (message bytes
/// start 16 bytes into the slot).
fn area_of(q: &ByteQueue, pos: u64, ctx: &Ctx) -> Area {
    let l = q.try_loan(0).expect("a loan from a fresh queue");
    let slot = (pos % ctx.cap) * ctx.stride;
    let start = l.as_ptr() as usize - 16 - slot as usize;
    drop(l); // abandoned: position `pos` is skipped
    Area {
        start,
        len: (ctx.cap * ctx.stride) as usize,
    }
}

fn run_bytes(input: Input) {
    let name = common::Name::new("shmqfuzz-qimg");
    let capacity = CAPACITIES[usize::from(input.capacity) % CAPACITIES.len()];
    let max = MAX_MESSAGES[usize::from(input.max_message) % MAX_MESSAGES.len()];
    {
        let main = ByteQueue::create(name.as_str(), capacity, max).expect("create");
        let second = ByteQueue::open(name.as_str()).expect("open a second handle");
        assert_eq!(second.max_message(), max, "max_message of an opened handle");
        let stride = (16 + max as u64).div_ceil(8) * 8;
        let ctx = context(name.as_str(), capacity, stride);
        // Positions 0 and 1 are loaned and abandoned to find the slot areas.
        let areas = [area_of(&main, 0, &ctx), area_of(&second, 1, &ctx)];

        if SKIP_KNOWN_ABANDONED_LEN {
            // The two abandoned positions count in `len` until a consumer moves past them.
            assert_eq!(second.try_get().map(|m| m.len()), Err(GetError::Empty));
        }
        assert_eq!(main.len(), 0, "len after two abandoned loans");

        // Valid traffic first, checked exactly against a model.
        let mut model = std::collections::VecDeque::new();
        for (i, &l) in input.pre_put.iter().take(capacity).enumerate() {
            let q = if i % 2 == 0 { &main } else { &second };
            let msg = vec![i as u8; usize::from(l) % (max + 1)];
            q.try_put(&msg).expect("a put into a queue with room");
            model.push_back(msg);
        }
        assert_eq!(main.len(), model.len(), "len after valid puts");
        for i in 0..usize::from(input.pre_get) % (model.len() + 1) {
            let (q, h) = if i % 2 == 0 { (&second, 1) } else { (&main, 0) };
            let m = q.try_get().expect("a get from a queue with items");
            areas[h].check("valid message", &m);
            assert_eq!(Some(&*m), model.pop_front().as_deref(), "FIFO order");
        }
        if model.is_empty() {
            assert_eq!(
                main.try_get().map(|m| m.len()),
                Err(GetError::Empty),
                "get from an empty queue"
            );
        }

        for p in input.patches.iter().take(MAX_PATCHES) {
            ctx.patch(p);
        }

        let mut b = Bytes {
            ctx: &ctx,
            max,
            handles: [&main, &second],
            areas,
            loans: Vec::new(),
            messages: Vec::new(),
        };
        for op in input.ops.into_iter().take(MAX_OPS) {
            if skip_slow(&ctx, &op) {
                continue;
            }
            let h = |s: bool| usize::from(s);
            match op {
                Op::TryPut { value, second: s } => {
                    b.put(h(s), value as usize % (max + 4), (value >> 32) as u8, None)
                }
                Op::PutTimeout {
                    value,
                    micros: m,
                    second: s,
                } => b.put(
                    h(s),
                    value as usize % (max + 4),
                    (value >> 32) as u8,
                    Some(micros(m)),
                ),
                Op::TryGet { second: s } => b.get(h(s), None, false),
                Op::GetTimeout {
                    micros: m,
                    second: s,
                } => b.get(h(s), Some(micros(m)), false),
                Op::HoldGet { second: s } => b.get(h(s), None, true),
                Op::Loan {
                    len,
                    fill,
                    commit,
                    hold,
                    timeout,
                    second: s,
                } => b.loan(
                    h(s),
                    usize::from(len) % (max + 4),
                    fill,
                    commit,
                    hold,
                    timeout,
                ),
                Op::CommitHeld { index } => {
                    if !b.loans.is_empty() {
                        let l = b.loans.remove(usize::from(index) % b.loans.len());
                        let len = l.len();
                        if let Err(e) = l.commit() {
                            b.check_put_err(len, &e);
                        }
                    }
                }
                Op::DropHeldLoan { index } => {
                    if !b.loans.is_empty() {
                        drop(b.loans.remove(usize::from(index) % b.loans.len()));
                    }
                }
                Op::DropHeldMessage { index } => {
                    if !b.messages.is_empty() {
                        let m = b.messages.remove(usize::from(index) % b.messages.len());
                        assert!(m.len() <= max, "held message grew to {} bytes", m.len());
                        drop(m);
                    }
                }
                Op::Close { second: s } => {
                    b.handles[h(s)].close();
                    assert!(b.handles[h(!s)].is_closed(), "closed for the other handle");
                }
                Op::Info => b.info(),
                Op::Reopen { value, other_kind } => {
                    let opts = Options::new(name.as_str()).open_timeout(Duration::ZERO);
                    if other_kind {
                        assert!(
                            Queue::<u64>::open(opts).is_err(),
                            "opened a byte queue as a Queue<u64>"
                        );
                    } else if let Ok(q) = ByteQueue::open(opts) {
                        assert_eq!(q.max_message(), max, "max_message of a reopened handle");
                        let len = value as usize % (max + 4);
                        if let Err(e) = q.try_put(&vec![7; len]) {
                            b.check_put_err(len, &e);
                        }
                        if let Ok(m) = q.try_get() {
                            assert!(m.len() <= max, "reopened: {} bytes > max", m.len());
                        }
                        check_len("reopened byte queue", q.len(), q.capacity(), None, ctx.cap);
                    }
                }
                Op::TaskDone | Op::Join { .. } => {}
                Op::Patch(p) => ctx.patch(&p),
                Op::Fresh { base, value } => {
                    ctx.fresh(base);
                    let len = value as usize % (max + 1);
                    let msg: Vec<u8> = (0..len).map(|i| (value >> 8) as u8 ^ i as u8).collect();
                    assert_eq!(main.len(), 0, "len of a fresh image at {base:#x}");
                    // Loans dropped uncommitted put nothing: the queue stays empty.
                    let abandoned = (value >> 56) % (ctx.limit + 1);
                    for _ in 0..abandoned {
                        let l = second.try_loan(len).unwrap_or_else(|e| {
                            panic!("loan from an empty queue at {base:#x}: {e:?}")
                        });
                        drop(l);
                    }
                    if SKIP_KNOWN_ABANDONED_LEN {
                        assert_eq!(main.try_get().map(|m| m.len()), Err(GetError::Empty));
                    }
                    assert_eq!(
                        (main.len(), main.is_empty()),
                        (0, true),
                        "len after {abandoned} abandoned loans at {base:#x}"
                    );
                    main.try_put(&msg)
                        .unwrap_or_else(|e| panic!("put into a fresh image at {base:#x}: {e:?}"));
                    assert_eq!(main.len(), 1, "len after one put at {base:#x}");
                    let m = second
                        .try_get()
                        .unwrap_or_else(|e| panic!("get from a fresh image at {base:#x}: {e:?}"));
                    areas[1].check("round-trip message", &m);
                    assert_eq!(
                        &*m,
                        &msg[..],
                        "round trip through a fresh image at {base:#x}"
                    );
                    drop(m);
                    assert_eq!(main.len(), 0, "len after the round trip at {base:#x}");
                }
            }
        }
        drop(b);
        drop(second);
        drop(main);
        drop(ctx);
    }
    name.assert_unlinked();
}

fuzz_target!(|input: Input| match input.flavour {
    Flavour::Typed => run_typed(input, false),
    Flavour::Joinable => run_typed(input, true),
    Flavour::Bytes => run_bytes(input),
});
