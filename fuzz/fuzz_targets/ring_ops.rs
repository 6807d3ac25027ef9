//! A sequence of operations on a real `Ring` in /dev/shm, checked against a model.
//!
//! Each input creates a ring of 64..=4096 bytes under a fresh name, attaches a producer and
//! a consumer, and runs the decoded operations: `try_send`, reserve-then-commit,
//! reserve-then-abandon, `try_recv`, `try_drain`, write batches (published or dropped, with
//! consumer operations in between), and dropping / re-attaching either end. The model is a
//! `VecDeque` of committed messages plus the roles' states; the ring must match it exactly:
//! FIFO order and contents, `TooLarge` exactly above `max_message`, `Empty` exactly when the
//! model is empty, `Disconnected` exactly when the peer let go.
//!
//! Fullness is checked two ways:
//! - always (sound whatever the padding): never `Full` when nothing is in flight, and never
//!   `Ok` when the records in flight plus the new one plus the 8-byte slack exceed the
//!   capacity (that would overwrite unread data);
//! - with `EXACT_SPACE`: the model also tracks byte positions by the record format documented
//!   in src/ring/spsc.rs (8-byte header, payload rounded up to 8, a PAD record to the end of
//!   the buffer when a record does not fit before it, one free 8-byte slot after the tail),
//!   and `Full` must happen exactly when that layout says so; `Ring::len` and
//!   `WriteBatch::bytes` must match the positions too.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmq::{AttachError, Consumer, Ring, TryRecvError, TrySendError};

/// Also assert the exact space accounting (see the module docs).
const EXACT_SPACE: bool = true;
/// Bounds per input, to keep iterations fast.
const MAX_OPS: usize = 400;
const MAX_BATCH_ITEMS: usize = 48;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Msg {
    len: u16,
    fill: u8,
}

#[derive(Arbitrary, Debug)]
enum BatchItem {
    Push(Msg),
    Recv,
    Drain,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Send(Msg),
    ReserveCommit {
        msg: Msg,
        recv_between: bool,
    },
    ReserveAbandon {
        msg: Msg,
        scribble: bool,
        recv_between: bool,
    },
    Recv,
    Drain,
    Batch {
        items: Vec<BatchItem>,
        publish: bool,
    },
    DetachProducer,
    AttachProducer {
        reopen: bool,
    },
    DetachConsumer,
    AttachConsumer {
        reopen: bool,
    },
    Check,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Requested capacity: 64 + this % 4033 (rounded up to a power of two by the library).
    capacity: u16,
    /// `Some(s)`: `create_with_max` with a maximum `s` below the largest allowed.
    max_shrink: Option<u16>,
    producer_first: bool,
    ops: Vec<Op>,
}

/// A committed message and the position just after its record (the head once released).
struct Queued {
    bytes: Vec<u8>,
    end: u64,
}

struct Model {
    cap: u64,
    max: usize,
    /// Committed (published) messages not yet received.
    queue: VecDeque<Queued>,
    /// The consumer's head position.
    head: u64,
    /// The published tail position.
    tail: u64,
    /// The producer's tail: `tail` plus an unpublished batch.
    ptail: u64,
    /// Records of an unpublished batch.
    pending: Vec<Queued>,
    /// Sum of `record_size` over `queue` and `pending` (padding excluded).
    record_bytes: u64,
    producer_attached: bool,
    consumer_attached: bool,
    seq: u32,
}

fn record_size(len: usize) -> u64 {
    8 + (len as u64).div_ceil(8) * 8
}

/// What a reservation of `len` bytes must give.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Disconnected,
    TooLarge,
    /// Fits; the position after the record.
    Fits(u64),
    Full,
}

impl Model {
    fn message(&mut self, m: Msg) -> Vec<u8> {
        let len = usize::from(m.len) % (self.max + 9);
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        (0..len)
            .map(|i| (seq.wrapping_mul(131).wrapping_add(i as u32 * 7) as u8) ^ m.fill)
            .collect()
    }

    /// The exact outcome by the documented layout.
    fn expect(&self, len: usize) -> Expect {
        if !self.consumer_attached {
            return Expect::Disconnected;
        }
        if len > self.max {
            return Expect::TooLarge;
        }
        let need = record_size(len);
        let to_end = self.cap - (self.ptail % self.cap);
        let start = if need > to_end {
            self.ptail + to_end
        } else {
            self.ptail
        };
        let end = start + need;
        if end + 8 > self.head + self.cap {
            Expect::Full
        } else {
            Expect::Fits(end)
        }
    }

    /// Checks a reservation's result against the model; returns the record's end on success.
    fn check_reserve<T>(&self, len: usize, got: &Result<T, TrySendError>) -> Option<u64> {
        let want = self.expect(len);
        let nothing_in_flight = self.ptail == self.head;
        match got {
            Ok(_) => {
                assert!(
                    self.record_bytes + record_size(len) + 8 <= self.cap,
                    "reserved {len} bytes with {} bytes of records in flight in a {}-byte ring \
                     (would overwrite unread data)",
                    self.record_bytes,
                    self.cap
                );
                match want {
                    Expect::Fits(end) => Some(end),
                    Expect::Full if !EXACT_SPACE => Some(u64::MAX),
                    other => panic!("reserve({len}) succeeded, model expected {other:?}"),
                }
            }
            Err(TrySendError::Full) => {
                assert!(
                    !nothing_in_flight,
                    "reserve({len}) is Full although nothing is in flight"
                );
                assert!(
                    want == Expect::Full || (!EXACT_SPACE && matches!(want, Expect::Fits(_))),
                    "reserve({len}) is Full, model expected {want:?} (head {}, tail {})",
                    self.head,
                    self.ptail
                );
                None
            }
            Err(TrySendError::TooLarge { len: l, max }) => {
                assert_eq!(want, Expect::TooLarge, "reserve({len}) is TooLarge");
                assert_eq!((*l, *max), (len, self.max), "TooLarge fields");
                None
            }
            Err(TrySendError::Disconnected) => {
                assert_eq!(want, Expect::Disconnected, "reserve({len}) is Disconnected");
                None
            }
            Err(e) => panic!("reserve({len}): unexpected error {e:?} (model expected {want:?})"),
        }
    }

    fn committed(&mut self, bytes: Vec<u8>, end: u64) {
        self.record_bytes += record_size(bytes.len());
        self.queue.push_back(Queued { bytes, end });
        self.tail = end;
        self.ptail = end;
    }

    fn received(&mut self, got: &[u8]) {
        let Some(want) = self.queue.pop_front() else {
            panic!(
                "received {} bytes from a ring the model says is empty",
                got.len()
            );
        };
        assert!(
            got == want.bytes.as_slice(),
            "received {:?}, model expected {:?}",
            got,
            want.bytes
        );
        self.record_bytes -= record_size(want.bytes.len());
        self.head = want.end;
    }

    /// `Empty` / `Disconnected` on a try_recv-style call that found nothing.
    fn check_nothing(&self, err: &TryRecvError) {
        assert!(
            self.queue.is_empty(),
            "{err:?} while the model holds {} messages",
            self.queue.len()
        );
        match err {
            TryRecvError::Empty => {
                assert!(
                    self.producer_attached,
                    "Empty although the producer detached"
                )
            }
            TryRecvError::Disconnected => assert!(
                !self.producer_attached,
                "Disconnected although the producer is attached"
            ),
            e => panic!("unexpected receive error {e:?}"),
        }
    }
}

fn recv(model: &mut Model, consumer: &mut Option<Consumer>) {
    let Some(c) = consumer else { return };
    match c.try_recv() {
        Ok(guard) => {
            assert!(guard.len() <= model.max, "message over max_message");
            model.received(&guard);
        }
        Err(e) => model.check_nothing(&e),
    }
}

fn drain(model: &mut Model, consumer: &mut Option<Consumer>) {
    let Some(c) = consumer else { return };
    let mut got = Vec::new();
    match c.try_drain(|m| got.push(m.to_vec())) {
        Ok(n) => {
            assert_eq!(n, got.len(), "try_drain's count");
            if n == 0 {
                assert!(
                    model.queue.is_empty(),
                    "try_drain found nothing in a non-empty ring"
                );
                assert!(
                    model.producer_attached,
                    "try_drain returned Ok(0) although the producer detached"
                );
            } else {
                assert_eq!(
                    n,
                    model.queue.len(),
                    "try_drain must take every waiting message"
                );
            }
            for m in &got {
                model.received(m);
            }
        }
        Err(e) => model.check_nothing(&e),
    }
}

fn run(input: Input) {
    let name = common::Name::new("shmqfuzz-ops");
    let requested = 64 + usize::from(input.capacity) % 4033;
    let cap = requested.next_power_of_two();
    let max = match input.max_shrink {
        None => cap / 2 - 8,
        Some(s) => (cap / 2 - 8) - usize::from(s) % (cap / 2 - 7),
    };
    {
        let ring = match input.max_shrink {
            None => Ring::create(name.as_str(), requested),
            Some(_) => Ring::create_with_max(name.as_str(), requested, max),
        }
        .expect("create ring");
        assert_eq!(ring.capacity(), cap, "capacity rounding of {requested}");
        assert_eq!(ring.max_message(), max, "max_message");
        assert!(ring.is_empty());

        let (mut producer, mut consumer);
        if input.producer_first {
            producer = Some(ring.producer().expect("attach producer"));
            consumer = Some(ring.consumer().expect("attach consumer"));
        } else {
            consumer = Some(ring.consumer().expect("attach consumer"));
            producer = Some(ring.producer().expect("attach producer"));
        }
        let mut model = Model {
            cap: cap as u64,
            max,
            queue: VecDeque::new(),
            head: 0,
            tail: 0,
            ptail: 0,
            pending: Vec::new(),
            record_bytes: 0,
            producer_attached: true,
            consumer_attached: true,
            seq: 0,
        };

        for op in input.ops.into_iter().take(MAX_OPS) {
            match op {
                Op::Send(m) => {
                    let Some(p) = producer.as_mut() else { continue };
                    let msg = model.message(m);
                    let got = p.try_send(&msg);
                    if let Some(end) = model.check_reserve(msg.len(), &got) {
                        model.committed(msg, end);
                    }
                }
                Op::ReserveCommit {
                    msg: m,
                    recv_between,
                } => {
                    let Some(p) = producer.as_mut() else { continue };
                    let msg = model.message(m);
                    let got = p.try_reserve(msg.len());
                    let end = model.check_reserve(msg.len(), &got);
                    if let Ok(mut grant) = got {
                        assert_eq!(grant.len(), msg.len(), "grant length");
                        grant.copy_from_slice(&msg);
                        if recv_between {
                            // The consumer must not see the reserved, uncommitted record.
                            recv(&mut model, &mut consumer);
                        }
                        grant.commit();
                        model.committed(msg, end.expect("checked"));
                    }
                }
                Op::ReserveAbandon {
                    msg: m,
                    scribble,
                    recv_between,
                } => {
                    let Some(p) = producer.as_mut() else { continue };
                    let msg = model.message(m);
                    let got = p.try_reserve(msg.len());
                    model.check_reserve(msg.len(), &got);
                    if let Ok(mut grant) = got {
                        assert_eq!(grant.len(), msg.len(), "grant length");
                        if scribble {
                            grant.fill(0xff);
                        } else {
                            grant.copy_from_slice(&msg);
                        }
                        if recv_between {
                            recv(&mut model, &mut consumer);
                        }
                        drop(grant);
                    }
                }
                Op::Recv => recv(&mut model, &mut consumer),
                Op::Drain => drain(&mut model, &mut consumer),
                Op::Batch { items, publish } => {
                    let Some(p) = producer.as_mut() else { continue };
                    let start = model.ptail;
                    let mut batch = p.batch();
                    assert_eq!(batch.bytes(), 0, "fresh batch's bytes");
                    for item in items.into_iter().take(MAX_BATCH_ITEMS) {
                        match item {
                            BatchItem::Push(m) => {
                                let msg = model.message(m);
                                let got = batch.try_push(&msg);
                                if let Some(end) = model.check_reserve(msg.len(), &got) {
                                    model.record_bytes += record_size(msg.len());
                                    model.pending.push(Queued { bytes: msg, end });
                                    model.ptail = end;
                                }
                                if EXACT_SPACE {
                                    assert_eq!(
                                        batch.bytes() as u64,
                                        model.ptail - start,
                                        "WriteBatch::bytes"
                                    );
                                }
                            }
                            // Unpublished batch records must stay invisible.
                            BatchItem::Recv => recv(&mut model, &mut consumer),
                            BatchItem::Drain => drain(&mut model, &mut consumer),
                        }
                    }
                    if publish {
                        batch.publish();
                        for q in std::mem::take(&mut model.pending) {
                            model.queue.push_back(q);
                        }
                        model.tail = model.ptail;
                    } else {
                        drop(batch);
                        for q in std::mem::take(&mut model.pending) {
                            model.record_bytes -= record_size(q.bytes.len());
                        }
                        model.ptail = model.tail;
                    }
                }
                Op::DetachProducer => {
                    producer = None;
                    model.producer_attached = false;
                }
                Op::DetachConsumer => {
                    consumer = None;
                    model.consumer_attached = false;
                }
                Op::AttachProducer { reopen } => {
                    let got = if reopen {
                        Ring::open(name.as_str()).expect("reopen ring").producer()
                    } else {
                        ring.producer()
                    };
                    if producer.is_some() {
                        match got {
                            Err(AttachError::RoleTaken { role, pid }) => {
                                assert_eq!((role, pid), ("producer", std::process::id()))
                            }
                            other => panic!("second producer attach gave {other:?}"),
                        }
                    } else {
                        producer = Some(got.expect("re-attach producer"));
                        model.producer_attached = true;
                    }
                }
                Op::AttachConsumer { reopen } => {
                    let got = if reopen {
                        Ring::open(name.as_str()).expect("reopen ring").consumer()
                    } else {
                        ring.consumer()
                    };
                    if consumer.is_some() {
                        match got {
                            Err(AttachError::RoleTaken { role, pid }) => {
                                assert_eq!((role, pid), ("consumer", std::process::id()))
                            }
                            other => panic!("second consumer attach gave {other:?}"),
                        }
                    } else {
                        consumer = Some(got.expect("re-attach consumer"));
                        model.consumer_attached = true;
                    }
                }
                Op::Check => {
                    assert_eq!(ring.is_empty(), model.queue.is_empty(), "Ring::is_empty");
                    if EXACT_SPACE {
                        assert_eq!(
                            ring.len() as u64,
                            model.tail - model.head,
                            "Ring::len (published bytes, padding included)"
                        );
                    }
                    if let Some(p) = &producer {
                        assert_eq!(p.max_message(), max);
                        assert_eq!(
                            p.is_abandoned(),
                            !model.consumer_attached,
                            "Producer::is_abandoned"
                        );
                    }
                    if let Some(c) = &consumer {
                        assert_eq!(
                            c.is_abandoned(),
                            !model.producer_attached,
                            "Consumer::is_abandoned"
                        );
                    }
                }
            }
        }

        // Whatever is left must come out in order.
        if consumer.is_some() {
            while !model.queue.is_empty() {
                recv(&mut model, &mut consumer);
            }
            recv(&mut model, &mut consumer);
        }
        drop(producer);
        drop(consumer);
        drop(ring);
    }
    name.assert_unlinked();
}

fuzz_target!(|input: Input| run(input));
