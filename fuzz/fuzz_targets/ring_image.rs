//! A real ring whose shared memory holds arbitrary bytes: what a hostile or crashed peer
//! can leave there.
//!
//! Each input creates a ring (capacity 256 or 1024) in /dev/shm, attaches a producer and a
//! consumer, optionally sends (and receives) a few valid messages, then overwrites parts of
//! the segment through the file `/dev/shm/<name>` (which shares its pages with the mapping):
//! raw bytes, single words, or correctly stamped record headers at chosen positions (so the
//! fuzzer gets past the stamp check cheaply). In the default mode only the ring area (indices,
//! control block, buffer) is overwritten; in header mode the 256-byte segment header is fair
//! game too, and `Ring::open` must then fail cleanly or give a ring that behaves.
//!
//! Then at most 64 operations run: `try_send`, `try_reserve` (committed or dropped), batches,
//! `try_recv`, `try_drain`, more overwrites, and re-attaching either end (from the same handle
//! or from a fresh `Ring::open`). Every call must return `Ok` or `Err` without panicking;
//! received messages must be at most `max_message` bytes and, for endpoints on the creator's
//! mapping, lie inside the ring's buffer (checked by address, since AddressSanitizer does not
//! track shared mappings); grants must have the requested length and lie in the buffer; a
//! message above `max_message` must be refused (`TooLarge`, or `Disconnected` if the
//! consumer's role word says it left).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmq::{Consumer, Options, Producer, Ring, TrySendError};

/// Segment header bytes; the ring starts right after (payload offset, 64-byte aligned).
const HEADER: u64 = 256;
/// Bytes before the ring's buffer (tail, head, control block).
const DATA: u64 = 384;
const MAX_OPS: usize = 64;

#[derive(Arbitrary, Debug)]
enum Patch {
    /// Raw bytes at an offset (inside the ring area; inside the whole file in header mode).
    Bytes { off: u16, data: Vec<u8> },
    /// One 8-byte word of the ring area (tail is word 0, head word 16, control words 32..).
    Word { index: u16, value: u64 },
    /// The consumer's head (`head`) or the producer's published tail.
    Index { head: bool, value: u64 },
    /// Both indices set to one 8-aligned position: a consistent, empty ring at that point.
    Positions { value: u64 },
    /// A record header stamped for position `pos`, written where `pos` maps in the buffer.
    Record {
        pos: u64,
        len: u32,
        pad: bool,
        valid: bool,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Send { len: u16, fill: u8 },
    Reserve { len: u16, commit: bool },
    Batch { lens: Vec<u16>, publish: bool },
    Recv,
    Drain,
    ReattachProducer { reopen: bool },
    ReattachConsumer { reopen: bool },
    DropProducer,
    DropConsumer,
    Patch(Patch),
    Info,
}

#[derive(Arbitrary, Debug)]
struct Input {
    big: bool,
    header_mode: bool,
    /// Lengths of valid messages sent before the corruption (at most 8).
    pre_send: Vec<u16>,
    /// How many of them are received before the corruption.
    pre_recv: u8,
    patches: Vec<Patch>,
    ops: Vec<Op>,
}

/// An endpoint and whether it lives on the creator's mapping (so its slices can be checked
/// against the known buffer address).
struct End<T> {
    inner: T,
    on_main_map: bool,
}

struct Ctx {
    file: std::fs::File,
    file_len: u64,
    cap: u64,
    max: usize,
    header_mode: bool,
    /// Address of the buffer's first byte in the creator's mapping.
    buf_base: usize,
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

    fn patch(&self, p: &Patch) {
        let ring_len = DATA + self.cap;
        match p {
            Patch::Bytes { off, data } => {
                let data = &data[..data.len().min(ring_len as usize)];
                if self.header_mode {
                    let end = HEADER + ring_len;
                    let off = u64::from(*off) % end;
                    let n = data.len().min((end - off) as usize);
                    self.write(off, &data[..n]);
                } else {
                    let off = u64::from(*off) % ring_len;
                    let n = data.len().min((ring_len - off) as usize);
                    self.write(HEADER + off, &data[..n]);
                }
            }
            Patch::Word { index, value } => {
                let off = (u64::from(*index) * 8) % ring_len;
                self.write(HEADER + off, &value.to_ne_bytes());
            }
            Patch::Index { head, value } => {
                let off = if *head { 128 } else { 0 };
                self.write(HEADER + off, &value.to_ne_bytes());
            }
            Patch::Positions { value } => {
                let v = (value & !7).to_ne_bytes();
                self.write(HEADER, &v);
                self.write(HEADER + 128, &v);
            }
            Patch::Record {
                pos,
                len,
                pad,
                valid,
            } => {
                let low = (len & ((1 << 30) - 1))
                    | if *valid { 1 << 30 } else { 0 }
                    | if *pad { 1 << 31 } else { 0 };
                let word = (u64::from((pos >> 3) as u32) << 32) | u64::from(low);
                let off = (pos & (self.cap - 1)) & !7;
                self.write(HEADER + DATA + off, &word.to_ne_bytes());
            }
        }
    }

    fn check_slice(&self, on_main_map: bool, what: &str, s: &[u8]) {
        assert!(
            s.len() <= self.max,
            "{what}: {} bytes, above max_message {}",
            s.len(),
            self.max
        );
        if on_main_map {
            let start = s.as_ptr() as usize;
            let (lo, hi) = (self.buf_base, self.buf_base + self.cap as usize);
            assert!(
                start >= lo && start + s.len() <= hi,
                "{what}: slice {start:#x}+{} outside the buffer {lo:#x}..{hi:#x}",
                s.len()
            );
        }
    }
}

/// `max`: the producer's own maximum. A producer reattached through a fresh `Ring::open`
/// of a patched header may have another than the creator's (`ctx.max`).
fn check_send_err(max: usize, len: usize, r: &Result<(), TrySendError>) {
    if len > max {
        assert!(
            matches!(
                r,
                Err(TrySendError::TooLarge { .. } | TrySendError::Disconnected)
            ),
            "{len}-byte message above max {max}: {r:?}"
        );
    }
    if let Err(TrySendError::TooLarge { len: l, max: m }) = r {
        assert_eq!((*l, *m), (len, max), "TooLarge fields");
        assert!(len > max, "TooLarge for {len} <= max {max}");
    }
}

fn send(ctx: &Ctx, p: &mut End<Producer>, len: usize, fill: u8) {
    let msg = vec![fill; len];
    let r = p.inner.try_send(&msg);
    check_send_err(p.inner.max_message(), len, &r);
}

fn reserve(ctx: &Ctx, p: &mut End<Producer>, len: usize, commit: bool) {
    let on_main = p.on_main_map;
    let max = p.inner.max_message();
    let r = p.inner.try_reserve(len);
    match r {
        Ok(mut g) => {
            assert_eq!(g.len(), len, "grant length");
            ctx.check_slice(on_main, "grant", &g);
            g.fill(0x5a);
            if commit {
                g.commit();
            }
        }
        Err(e) => check_send_err(max, len, &Err(e)),
    }
}

fn batch(ctx: &Ctx, p: &mut End<Producer>, lens: &[u16], publish: bool) {
    let max = p.inner.max_message();
    let mut b = p.inner.batch();
    for &l in lens.iter().take(8) {
        let len = usize::from(l) % (ctx.max + 16);
        let r = b.try_push(&vec![0xb7; len]);
        check_send_err(max, len, &r);
        assert!(b.bytes() as u64 <= ctx.cap, "batch of {} bytes", b.bytes());
    }
    if publish {
        b.publish();
    }
}

fn recv(ctx: &Ctx, c: &mut End<Consumer>) {
    let on_main = c.on_main_map;
    if let Ok(g) = c.inner.try_recv() {
        ctx.check_slice(on_main, "received message", &g);
    }
}

fn drain(ctx: &Ctx, c: &mut End<Consumer>) {
    let on_main = c.on_main_map;
    let mut count = 0usize;
    if let Ok(n) = c.inner.try_drain(|m| {
        count += 1;
        ctx.check_slice(on_main, "drained message", m);
    }) {
        assert_eq!(n, count, "try_drain's count");
    }
}

/// Set while the library still has the known bug below, so the fuzzer can look past it.
/// Set to `false` to check that it is fixed (the minimized input is
/// `artifacts/ring_image/ring_open_param0_overflow.min`).
const SKIP_KNOWN_PARAM0_OVERFLOW: bool = false;

/// Set while the library still has the known bug below, so the fuzzer can look past it.
/// Set to `false` to check that it is fixed (minimized input:
/// `artifacts/ring_image/recover_tail_overflow.min`).
const SKIP_KNOWN_POSITION_OVERFLOW: bool = false;

/// Whether to attempt attaching an end now (see `SKIP_KNOWN_POSITION_OVERFLOW`).
fn attach_allowed(ctx: &Ctx) -> bool {
    if !SKIP_KNOWN_POSITION_OVERFLOW {
        return true;
    }
    // Known bug: `recover_tail` / `recover_head` accept published indices within a lap or
    // two of u64::MAX (e.g. head = tail = 2^64 - 8), and the position arithmetic that follows
    // (`recover_tail`'s walk, `try_reserve`, `peek`) overflows: a panic with overflow checks.
    let word = |off: u64| {
        let mut w = [0u8; 8];
        ctx.file.read_exact_at(&mut w, off).expect("read index");
        u64::from_ne_bytes(w)
    };
    let limit = u64::MAX - (1 << 32);
    word(HEADER) <= limit && word(HEADER + 128) <= limit
}

/// A fresh handle on the segment, opened without waiting (a corrupted init state must not
/// stall the fuzzer).
fn reopen(ctx: &Ctx, name: &str) -> Option<Ring> {
    if SKIP_KNOWN_PARAM0_OVERFLOW {
        // Known bug: `Ring::open` computes `384 + param0` (spsc::region_size via
        // ring_stride / ring_of) before validating param0, which overflows (a panic with
        // overflow checks) when the header's capacity word is within 511 of u64::MAX.
        let mut w = [0u8; 8];
        ctx.file.read_exact_at(&mut w, 64).expect("read param0");
        if u64::from_ne_bytes(w) > u64::MAX - 1024 {
            return None;
        }
    }
    Ring::open(Options::new(name).open_timeout(Duration::ZERO)).ok()
}

fn run(input: Input) {
    let name = common::Name::new("shmqfuzz-img");
    let cap: u64 = if input.big { 1024 } else { 256 };
    {
        let ring = Ring::create(name.as_str(), cap as usize).expect("create ring");
        assert_eq!(ring.capacity() as u64, cap);
        let max = ring.max_message();
        let mut producer = Some(End {
            inner: ring.producer().expect("attach producer"),
            on_main_map: true,
        });
        let mut consumer = Some(End {
            inner: ring.consumer().expect("attach consumer"),
            on_main_map: true,
        });

        // The buffer's address: a fresh ring's first grant starts right after the first
        // record header, at buffer offset 8.
        let buf_base = {
            let p = producer.as_mut().unwrap();
            let g = p.inner.try_reserve(0).expect("first reservation");
            g.as_ptr() as usize - 8
        };

        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.path())
            .expect("open the segment file");
        let file_len = file.metadata().expect("stat").len();
        assert!(
            file_len >= HEADER + DATA + cap,
            "segment file of {file_len} bytes"
        );
        let ctx = Ctx {
            file,
            file_len,
            cap,
            max,
            header_mode: input.header_mode,
            buf_base,
        };

        // A few valid messages first, so the corruption lands on a live ring.
        let mut sent = 0usize;
        for (i, &l) in input.pre_send.iter().take(8).enumerate() {
            let len = usize::from(l) % (max + 1);
            let p = producer.as_mut().unwrap();
            match p.inner.try_send(&vec![i as u8; len]) {
                Ok(()) => sent += 1,
                Err(TrySendError::Full) => {}
                Err(e) => panic!("sending a valid message: {e:?}"),
            }
        }
        for _ in 0..(usize::from(input.pre_recv) % 9).min(sent) {
            let c = consumer.as_mut().unwrap();
            match c.inner.try_recv() {
                Ok(g) => ctx.check_slice(true, "valid message", &g),
                Err(e) => panic!("receiving a valid message: {e:?}"),
            }
        }

        for p in input.patches.iter().take(16) {
            ctx.patch(p);
        }

        if input.header_mode {
            // Whatever the header says now, opening must fail cleanly or give a usable ring.
            if let Some(r) = reopen(&ctx, name.as_str()) {
                let _ = (
                    r.capacity(),
                    r.max_message(),
                    r.len(),
                    r.is_empty(),
                    r.name(),
                );
                let rmax = r.max_message();
                // Its geometry may differ from the creator's; its ends must still behave.
                if let Some(mut c) = attach_allowed(&ctx).then(|| r.consumer().ok()).flatten()
                    && let Ok(g) = c.try_recv()
                {
                    assert!(
                        g.len() <= rmax,
                        "reopened ring gave {} bytes > {rmax}",
                        g.len()
                    );
                }
                if let Some(mut p) = attach_allowed(&ctx).then(|| r.producer().ok()).flatten() {
                    let _ = p.try_send(&[1, 2, 3]);
                    let r = p.try_send(&vec![0; rmax + 1]);
                    assert!(
                        matches!(
                            r,
                            Err(TrySendError::TooLarge { .. } | TrySendError::Disconnected)
                        ),
                        "reopened ring accepted a message above its max: {r:?}"
                    );
                }
            }
        }

        for op in input.ops.into_iter().take(MAX_OPS) {
            match op {
                Op::Send { len, fill } => {
                    if let Some(p) = producer.as_mut() {
                        send(&ctx, p, usize::from(len) % (max + 16), fill);
                    }
                }
                Op::Reserve { len, commit } => {
                    if let Some(p) = producer.as_mut() {
                        reserve(&ctx, p, usize::from(len) % (max + 16), commit);
                    }
                }
                Op::Batch { lens, publish } => {
                    if let Some(p) = producer.as_mut() {
                        batch(&ctx, p, &lens, publish);
                    }
                }
                Op::Recv => {
                    if let Some(c) = consumer.as_mut() {
                        recv(&ctx, c);
                    }
                }
                Op::Drain => {
                    if let Some(c) = consumer.as_mut() {
                        drain(&ctx, c);
                    }
                }
                Op::DropProducer => producer = None,
                Op::DropConsumer => consumer = None,
                Op::ReattachProducer { reopen: fresh } => {
                    drop(producer.take()); // let go of the role first
                    producer = if !attach_allowed(&ctx) {
                        None
                    } else if fresh {
                        reopen(&ctx, name.as_str()).and_then(|r| {
                            r.producer().ok().map(|inner| End {
                                inner,
                                on_main_map: false,
                            })
                        })
                    } else {
                        ring.producer().ok().map(|inner| End {
                            inner,
                            on_main_map: true,
                        })
                    };
                    if let Some(p) = &producer {
                        let _ = (p.inner.is_abandoned(), p.inner.max_message());
                    }
                }
                Op::ReattachConsumer { reopen: fresh } => {
                    drop(consumer.take());
                    consumer = if !attach_allowed(&ctx) {
                        None
                    } else if fresh {
                        reopen(&ctx, name.as_str()).and_then(|r| {
                            r.consumer().ok().map(|inner| End {
                                inner,
                                on_main_map: false,
                            })
                        })
                    } else {
                        ring.consumer().ok().map(|inner| End {
                            inner,
                            on_main_map: true,
                        })
                    };
                    if let Some(c) = &consumer {
                        let _ = c.inner.is_abandoned();
                    }
                }
                Op::Patch(p) => ctx.patch(&p),
                Op::Info => {
                    assert!(
                        ring.len() <= cap as usize,
                        "Ring::len {} > capacity",
                        ring.len()
                    );
                    let _ = ring.is_empty();
                }
            }
        }
        drop(producer);
        drop(consumer);
        drop(ring);
        drop(ctx);
    }
    name.assert_unlinked();
}

fuzz_target!(|input: Input| run(input));
