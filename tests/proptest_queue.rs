//! Property tests: `Queue`, `ByteQueue` and `JoinableQueue` against a model, one process,
//! several handles on one segment (a creator and `open`ed handles, standing for processes).
//!
//! Single-threaded, the queue is exact, so every answer is checked: FIFO order, `Full`,
//! `Empty`, `Closed`, `Disconnected`, `len`, and the JoinableQueue counts. The model keeps
//! the queue's positions, not just its items, because zero-copy loans and message guards
//! hold a slot: an uncommitted loan blocks consumers at its position (later items wait
//! behind it, in claim order), a held guard keeps its slot from the next lap's producer,
//! and a dropped loan leaves a hole that consumers skip.
//!
//! Two flags describe known divergences from the intended behaviour; with a flag set the
//! model reproduces today's behaviour, so the rest stays checked. The `#[ignore]`d tests at
//! the end show each one; set the flag to `false` once the library is fixed.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shmq::{ByteQueue, GetError, JoinableQueue, Loan, Message, PutError, Queue};

/// Known limit: positions that hold no item (holes: a dropped loan) count in `len()` and
/// against a non-power-of-two capacity while an item sits before them; only holes at the
/// head are skipped at once. So `len()` and `is_full()` over-count, and `try_put` can say `Full`
/// with fewer than `capacity` items.
const HOLES_COUNTED: bool = true;

/// Known (minor): on a closed queue with nothing left, a get still says `Empty` (not
/// `Closed`) while a guard from the slot's previous lap is held, because the slot
/// is still `READING`.
const HELD_GUARD_HIDES_CLOSE: bool = true;

const CAPACITIES: [usize; 5] = [1, 3, 4, 5, 8];
const CASES: u32 = 1024;

/// What a position of the queue holds.
#[derive(Debug, Clone, PartialEq)]
enum Entry<T> {
    Queued(T),
    /// Claimed by a loan, not yet committed or dropped.
    Pending,
    /// Taken by a guard that is still held.
    Held,
    /// Taken and handed back.
    Done,
    /// Holds nothing: a dropped loan, or a put refused on a closed queue.
    Hole,
}

#[derive(Debug, PartialEq)]
enum Put {
    Ok(usize),
    Full,
    Closed,
}

#[derive(Debug, PartialEq)]
enum Got<T> {
    Item(usize, T),
    Empty,
    Closed,
}

/// The queue by positions: `enq` is the next position to fill, `deq` the next to take.
#[derive(Debug)]
struct Model<T> {
    /// Slots (the next power of two) and the capacity asked for.
    slots: usize,
    limit: usize,
    enq: usize,
    deq: usize,
    at: Vec<Entry<T>>,
    closed: bool,
}

impl<T: Clone + PartialEq + std::fmt::Debug> Model<T> {
    fn new(capacity: usize) -> Self {
        Model {
            slots: capacity.next_power_of_two(),
            limit: capacity,
            enq: 0,
            deq: 0,
            at: Vec::new(),
            closed: false,
        }
    }

    /// Holes at the head are skipped as soon as they are made (or looked at).
    fn skip_head(&mut self) {
        while self.deq < self.enq && self.at[self.deq] == Entry::Hole {
            self.deq += 1;
        }
    }

    /// Items (committed or being written) between the consumers and the producers.
    fn items(&self) -> usize {
        (self.deq..self.enq)
            .filter(|&p| self.at[p] != Entry::Hole)
            .count()
    }

    /// What the queue counts as items: see `HOLES_COUNTED`.
    fn counted(&self) -> usize {
        if HOLES_COUNTED {
            self.enq - self.deq
        } else {
            self.items()
        }
    }

    fn len(&mut self) -> usize {
        self.skip_head();
        self.counted().min(self.slots).min(self.limit)
    }

    /// Whether the slot of position `enq` still holds its previous lap.
    fn slot_taken(&self) -> bool {
        self.enq >= self.slots
            && matches!(
                self.at[self.enq - self.slots],
                Entry::Queued(_) | Entry::Pending | Entry::Held
            )
    }

    /// A put (`Some`) or a loan (`None`).
    fn put(&mut self, item: Option<T>) -> Put {
        self.skip_head();
        let at_limit = self.limit < self.slots && self.counted() >= self.limit;
        if self.slot_taken() || at_limit {
            return if self.closed { Put::Closed } else { Put::Full };
        }
        if self.closed {
            // A closed queue is refused before any slot is claimed (single-threaded, the
            // claim-then-back-out path never runs): no hole.
            return Put::Closed;
        }
        let pos = self.enq;
        self.enq += 1;
        self.at.push(match item {
            Some(v) => Entry::Queued(v),
            None => Entry::Pending,
        });
        Put::Ok(pos)
    }

    /// A get; the position is `Held` until `release`.
    fn get(&mut self) -> Got<T> {
        self.skip_head();
        if self.deq < self.enq {
            let pos = self.deq;
            return match self.at[pos].clone() {
                Entry::Queued(v) => {
                    self.at[pos] = Entry::Held;
                    self.deq += 1;
                    Got::Item(pos, v)
                }
                // The head is being written: nothing to take yet, closed or not.
                Entry::Pending => Got::Empty,
                e => panic!("model: {e:?} at the head {pos}"),
            };
        }
        let prev_lap_held = self.enq >= self.slots && self.at[self.enq - self.slots] == Entry::Held;
        if self.closed && !(HELD_GUARD_HIDES_CLOSE && prev_lap_held) {
            Got::Closed
        } else {
            Got::Empty
        }
    }

    fn release(&mut self, pos: usize) {
        assert_eq!(self.at[pos], Entry::Held, "model: release of {pos}");
        self.at[pos] = Entry::Done;
    }

    fn commit(&mut self, pos: usize, item: T) {
        assert_eq!(self.at[pos], Entry::Pending, "model: commit of {pos}");
        self.at[pos] = Entry::Queued(item);
    }

    fn abandon(&mut self, pos: usize) {
        assert_eq!(self.at[pos], Entry::Pending, "model: abandon of {pos}");
        self.at[pos] = Entry::Hole;
        self.skip_head();
    }

    /// Items still to be taken, in order.
    fn queued(&self) -> Vec<T> {
        self.at[self.deq..]
            .iter()
            .filter_map(|e| match e {
                Entry::Queued(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }
}

fn capacity() -> impl Strategy<Value = usize> {
    prop::sample::select(CAPACITIES.to_vec())
}

/// Runs `cases` cases of `strategy` through `test`, then checks that no segment with the
/// test's name prefix is left in /dev/shm.
fn run<S: Strategy>(
    tag: &str,
    strategy: S,
    test: impl Fn(String, S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| test(common::unique(tag), input));
    let prefix = format!("shmq-test-{tag}-{}-", std::process::id());
    common::assert_gone(&prefix);
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn check_put<T: PartialEq + std::fmt::Debug>(
    r: Result<(), PutError<T>>,
    want: &Put,
    value: T,
    timeout: bool,
) -> Result<(), TestCaseError> {
    let got = match r {
        Ok(()) => {
            prop_assert!(matches!(want, Put::Ok(_)), "put Ok, model {want:?}");
            return Ok(());
        }
        Err(e) => e,
    };
    let kind_ok = match (&got, want) {
        (PutError::Full(_), Put::Full) => !timeout,
        (PutError::Timeout(_), Put::Full) => timeout,
        (PutError::Closed(_), Put::Closed) => true,
        _ => false,
    };
    prop_assert!(kind_ok, "put {got:?}, model {want:?} (timeout: {timeout})");
    prop_assert_eq!(got.into_inner(), Some(value), "the value comes back");
    Ok(())
}

fn check_get<T: PartialEq + std::fmt::Debug>(
    r: Result<T, GetError>,
    want: &Got<T>,
    timeout: bool,
) -> Result<(), TestCaseError> {
    match (r, want) {
        (Ok(v), Got::Item(_, w)) => prop_assert_eq!(&v, w, "FIFO order"),
        (Err(GetError::Empty), Got::Empty) if !timeout => {}
        (Err(GetError::Timeout), Got::Empty) if timeout => {}
        (Err(GetError::Closed), Got::Closed) => {}
        (r, w) => prop_assert!(false, "get {r:?}, model {w:?} (timeout: {timeout})"),
    }
    Ok(())
}

// ----- Queue<u32> -----

#[derive(Debug, Clone)]
enum QOp {
    TryPut(usize, u32),
    PutTimeout0(usize, u32),
    TryGet(usize),
    GetTimeout0(usize),
    Close(usize),
    Len(usize),
    /// Drop an opened handle and open it again (a process restarting).
    Reopen(usize),
}

fn q_op() -> impl Strategy<Value = QOp> {
    let h = 0..3usize;
    prop_oneof![
        4 => (h.clone(), any::<u32>()).prop_map(|(h, v)| QOp::TryPut(h, v)),
        2 => (h.clone(), any::<u32>()).prop_map(|(h, v)| QOp::PutTimeout0(h, v)),
        4 => h.clone().prop_map(QOp::TryGet),
        2 => h.clone().prop_map(QOp::GetTimeout0),
        1 => h.clone().prop_map(QOp::Close),
        2 => h.clone().prop_map(QOp::Len),
        1 => (1..3usize).prop_map(QOp::Reopen),
    ]
}

fn queue_case(name: String, (capacity, ops): (usize, Vec<QOp>)) -> Result<(), TestCaseError> {
    let mut handles = vec![
        Queue::<u32>::create(name.as_str(), capacity).unwrap(),
        Queue::<u32>::open(name.as_str()).unwrap(),
        Queue::<u32>::open(name.as_str()).unwrap(),
    ];
    let mut model = Model::new(capacity);
    for op in ops {
        match op {
            QOp::TryPut(h, v) => {
                let want = model.put(Some(v));
                check_put(handles[h].try_put(v), &want, v, false)?;
            }
            QOp::PutTimeout0(h, v) => {
                let want = model.put(Some(v));
                check_put(handles[h].put_timeout(v, Duration::ZERO), &want, v, true)?;
            }
            QOp::TryGet(h) => {
                let want = model.get();
                if let Got::Item(pos, _) = want {
                    model.release(pos);
                }
                check_get(handles[h].try_get(), &want, false)?;
            }
            QOp::GetTimeout0(h) => {
                let want = model.get();
                if let Got::Item(pos, _) = want {
                    model.release(pos);
                }
                check_get(handles[h].get_timeout(Duration::ZERO), &want, true)?;
            }
            QOp::Close(h) => {
                handles[h].close();
                model.closed = true;
                for q in &handles {
                    prop_assert!(q.is_closed(), "closed for every handle");
                }
            }
            QOp::Len(h) => {
                let q = &handles[h];
                let len = model.len();
                prop_assert_eq!(q.len(), len, "len");
                prop_assert_eq!(q.is_empty(), len == 0, "is_empty");
                prop_assert_eq!(q.is_full(), len == capacity, "is_full");
                prop_assert_eq!(q.capacity(), capacity, "capacity");
                prop_assert_eq!(q.is_closed(), model.closed, "is_closed");
            }
            QOp::Reopen(h) => {
                handles[h] = Queue::<u32>::open(name.as_str()).unwrap();
            }
        }
    }
    // Close and drain: what is left comes out in order, then `Closed`.
    handles[0].close();
    model.closed = true;
    for (i, want) in model.queued().into_iter().enumerate() {
        prop_assert_eq!(handles[i % 3].try_get(), Ok(want), "drain");
    }
    prop_assert_eq!(handles[1].try_get(), Err(GetError::Closed), "drained");
    prop_assert_eq!(handles[2].len(), 0, "len when drained");
    drop(handles);
    common::assert_gone(&name);
    Ok(())
}

#[test]
fn queue_matches_a_model() {
    let ops = prop::collection::vec(q_op(), 0..48);
    run("pqueue", (capacity(), ops), queue_case);
}

// ----- ByteQueue: loans and guards -----

#[derive(Debug, Clone, Copy)]
enum LoanEnd {
    Commit,
    Drop,
    Hold,
}

#[derive(Debug, Clone)]
enum BOp {
    TryPut(usize, usize, u8),
    PutTimeout0(usize, usize, u8),
    /// A get; the guard is held (`true`) or dropped at once.
    TryGet(usize, bool),
    GetTimeout0(usize),
    Loan(usize, usize, u8, LoanEnd),
    CommitHeld(usize),
    DropHeldLoan(usize),
    DropGuard(usize),
    Close(usize),
    Len(usize),
}

fn b_op(max: usize) -> impl Strategy<Value = BOp> {
    let h = 0..2usize;
    // Lengths up to two past the maximum: those must be refused (`TooLarge`).
    let len = 0..=max + 2;
    let end = prop_oneof![
        Just(LoanEnd::Commit),
        Just(LoanEnd::Drop),
        Just(LoanEnd::Hold)
    ];
    prop_oneof![
        4 => (h.clone(), len.clone(), any::<u8>()).prop_map(|(h, l, f)| BOp::TryPut(h, l, f)),
        1 => (h.clone(), len.clone(), any::<u8>()).prop_map(|(h, l, f)| BOp::PutTimeout0(h, l, f)),
        4 => (h.clone(), any::<bool>()).prop_map(|(h, hold)| BOp::TryGet(h, hold)),
        1 => h.clone().prop_map(BOp::GetTimeout0),
        4 => (h.clone(), len, any::<u8>(), end).prop_map(|(h, l, f, e)| BOp::Loan(h, l, f, e)),
        2 => any::<usize>().prop_map(BOp::CommitHeld),
        2 => any::<usize>().prop_map(BOp::DropHeldLoan),
        3 => any::<usize>().prop_map(BOp::DropGuard),
        1 => h.clone().prop_map(BOp::Close),
        2 => h.prop_map(BOp::Len),
    ]
}

fn bytes_input() -> impl Strategy<Value = (usize, usize, Vec<BOp>)> {
    (capacity(), prop::sample::select(vec![1usize, 7, 16, 33]))
        .prop_flat_map(|(c, max)| (Just(c), Just(max), prop::collection::vec(b_op(max), 0..48)))
}

fn too_large(r: &PutError, len: usize, max: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(r, PutError::TooLarge { len: l, max: m } if (*l, *m) == (len, max)),
        "{len} bytes (max {max}): {r:?}"
    );
    Ok(())
}

fn bytes_case(
    name: String,
    (capacity, max, ops): (usize, usize, Vec<BOp>),
) -> Result<(), TestCaseError> {
    let a = ByteQueue::create(name.as_str(), capacity, max).unwrap();
    let b = ByteQueue::open(name.as_str()).unwrap();
    prop_assert_eq!(b.max_message(), max);
    let qs = [&a, &b];
    let mut model: Model<Vec<u8>> = Model::new(capacity);
    // Held loans (with their position and contents) and guards (with their position).
    let mut loans: Vec<(Loan<'_>, usize, Vec<u8>)> = Vec::new();
    let mut guards: Vec<(Message<'_>, usize, Vec<u8>)> = Vec::new();
    for op in ops {
        match op {
            BOp::TryPut(h, len, fill) | BOp::PutTimeout0(h, len, fill) => {
                let timeout = matches!(op, BOp::PutTimeout0(..));
                let msg = vec![fill; len];
                let r = if timeout {
                    qs[h].put_timeout(&msg, Duration::ZERO)
                } else {
                    qs[h].try_put(&msg)
                };
                if len > max {
                    too_large(&r.unwrap_err(), len, max)?;
                } else {
                    check_put(r, &model.put(Some(msg)), (), timeout)?;
                }
            }
            BOp::TryGet(h, hold) => {
                let want = model.get();
                match (qs[h].try_get(), want) {
                    (Ok(m), Got::Item(pos, w)) => {
                        prop_assert_eq!(&*m, &w[..], "FIFO order");
                        if hold {
                            guards.push((m, pos, w));
                        } else {
                            drop(m);
                            model.release(pos);
                        }
                    }
                    (r, w) => check_get(r.map(|m| m.to_vec()), &w, false)?,
                }
            }
            BOp::GetTimeout0(h) => {
                let want = model.get();
                if let Got::Item(pos, _) = want {
                    model.release(pos);
                }
                let r = qs[h].get_timeout(Duration::ZERO).map(|m| m.to_vec());
                check_get(r, &want, true)?;
            }
            BOp::Loan(h, len, fill, end) => {
                let r = qs[h].try_loan(len);
                if len > max {
                    too_large(&r.unwrap_err(), len, max)?;
                    continue;
                }
                let want = model.put(None);
                let mut loan = match (r, &want) {
                    (Ok(l), Put::Ok(_)) => l,
                    (r, w) => {
                        check_put(r.map(drop), w, (), false)?;
                        continue;
                    }
                };
                let Put::Ok(pos) = want else { unreachable!() };
                prop_assert_eq!(loan.len(), len, "loan length");
                loan.fill(fill);
                let msg = vec![fill; len];
                match end {
                    LoanEnd::Commit => {
                        prop_assert!(loan.commit().is_ok(), "commit");
                        model.commit(pos, msg);
                    }
                    LoanEnd::Drop => {
                        drop(loan);
                        model.abandon(pos);
                    }
                    LoanEnd::Hold => loans.push((loan, pos, msg)),
                }
            }
            BOp::CommitHeld(i) => {
                if !loans.is_empty() {
                    let (loan, pos, msg) = loans.remove(i % loans.len());
                    // Committing after a close still puts: the slot was claimed before it.
                    prop_assert!(loan.commit().is_ok(), "commit of a held loan");
                    model.commit(pos, msg);
                }
            }
            BOp::DropHeldLoan(i) => {
                if !loans.is_empty() {
                    let (loan, pos, _) = loans.remove(i % loans.len());
                    drop(loan);
                    model.abandon(pos);
                }
            }
            BOp::DropGuard(i) => {
                if !guards.is_empty() {
                    let (m, pos, w) = guards.remove(i % guards.len());
                    prop_assert_eq!(&*m, &w[..], "a held message is unchanged");
                    drop(m);
                    model.release(pos);
                }
            }
            BOp::Close(h) => {
                qs[h].close();
                model.closed = true;
                prop_assert!(qs[1 - h].is_closed(), "closed for the other handle");
            }
            BOp::Len(h) => {
                let q = qs[h];
                let len = model.len();
                prop_assert_eq!(q.len(), len, "len");
                prop_assert_eq!(q.is_empty(), len == 0, "is_empty");
                prop_assert_eq!(q.is_full(), len == capacity, "is_full");
                prop_assert_eq!(q.capacity(), capacity, "capacity");
            }
        }
    }
    // Let go of everything held, close, and drain.
    for (m, pos, w) in guards.drain(..) {
        prop_assert_eq!(&*m, &w[..], "a held message is unchanged");
        drop(m);
        model.release(pos);
    }
    for (loan, pos, _) in loans.drain(..) {
        drop(loan);
        model.abandon(pos);
    }
    a.close();
    model.closed = true;
    let mut left: VecDeque<Vec<u8>> = model.queued().into();
    while let Some(want) = left.pop_front() {
        let m = b.try_get();
        prop_assert_eq!(m.as_deref().ok(), Some(&want[..]), "drain");
    }
    prop_assert_eq!(
        a.try_get().map(|m| m.len()),
        Err(GetError::Closed),
        "drained"
    );
    drop(guards);
    drop(loans);
    drop((a, b));
    common::assert_gone(&name);
    Ok(())
}

#[test]
fn byte_queue_matches_a_model() {
    run("pbytes", bytes_input(), bytes_case);
}

// ----- JoinableQueue -----

#[derive(Debug, Clone)]
enum JOp {
    TryPut(usize, u32),
    TryGet(usize),
    TaskDone(usize),
    Join0(usize),
    Close(usize),
}

fn j_op() -> impl Strategy<Value = JOp> {
    let h = 0..2usize;
    prop_oneof![
        4 => (h.clone(), any::<u32>()).prop_map(|(h, v)| JOp::TryPut(h, v)),
        4 => h.clone().prop_map(JOp::TryGet),
        4 => h.clone().prop_map(JOp::TaskDone),
        2 => h.clone().prop_map(JOp::Join0),
        1 => h.prop_map(JOp::Close),
    ]
}

fn joinable_case(name: String, (capacity, ops): (usize, Vec<JOp>)) -> Result<(), TestCaseError> {
    let qs = [
        JoinableQueue::<u32>::create(name.as_str(), capacity).unwrap(),
        JoinableQueue::<u32>::open(name.as_str()).unwrap(),
    ];
    let mut model = Model::new(capacity);
    // Items put and not marked done; items taken and not marked done.
    let (mut unfinished, mut taken) = (0u64, 0u64);
    for op in ops {
        match op {
            JOp::TryPut(h, v) => {
                let want = model.put(Some(v));
                unfinished += u64::from(matches!(want, Put::Ok(_)));
                check_put(qs[h].try_put(v), &want, v, false)?;
            }
            JOp::TryGet(h) => {
                let want = model.get();
                if let Got::Item(pos, _) = want {
                    model.release(pos);
                    taken += 1;
                }
                check_get(qs[h].try_get(), &want, false)?;
            }
            JOp::TaskDone(h) => {
                let r = qs[h].task_done();
                prop_assert_eq!(r.is_ok(), taken > 0, "task_done with {} taken", taken);
                if r.is_ok() {
                    taken -= 1;
                    unfinished -= 1;
                }
            }
            JOp::Join0(h) => {
                let r = qs[h].join_timeout(Duration::ZERO);
                prop_assert_eq!(
                    r.is_ok(),
                    unfinished == 0,
                    "join with {} unfinished",
                    unfinished
                );
                if let Err(e) = r {
                    prop_assert_eq!(
                        e,
                        shmq::JoinError::Timeout { unfinished },
                        "JoinError::Timeout's count"
                    );
                }
            }
            JOp::Close(h) => {
                qs[h].close();
                model.closed = true;
            }
        }
        for q in &qs {
            prop_assert_eq!(q.unfinished(), unfinished, "unfinished = puts - task_dones");
        }
    }
    // Take the rest and mark everything done: join then succeeds.
    for want in model.queued() {
        prop_assert_eq!(qs[1].try_get(), Ok(want), "drain");
        taken += 1;
    }
    for _ in 0..taken {
        prop_assert!(qs[0].task_done().is_ok(), "task_done for a taken item");
    }
    prop_assert!(qs[1].task_done().is_err(), "one task_done too many");
    prop_assert_eq!(qs[1].unfinished(), 0, "all done");
    prop_assert!(
        qs[0].join_timeout(Duration::ZERO).is_ok(),
        "join when all done"
    );
    drop(qs);
    common::assert_gone(&name);
    Ok(())
}

#[test]
fn joinable_queue_counts_match_a_model() {
    let ops = prop::collection::vec(j_op(), 0..48);
    run("pjoin", (capacity(), ops), joinable_case);
}

// ----- The known divergences, minimised -----

#[test]
fn closed_puts_are_not_counted() {
    let name = common::unique("pq-closed-holes");
    let q = Queue::<u32>::create(name.as_str(), 4).unwrap();
    q.put(7).unwrap();
    q.close();
    for _ in 0..3 {
        assert_eq!(q.try_put(1), Err(PutError::Closed(1)));
    }
    let (len, full) = (q.len(), q.is_full());
    assert_eq!(q.try_get(), Ok(7));
    drop(q);
    common::assert_gone(&name);
    assert_eq!(
        (len, full),
        (1, false),
        "len and is_full of a closed queue with one item"
    );
}

#[test]
#[ignore = "known bug (HOLES_COUNTED): a dropped loan behind an item counts as an item"]
fn dropped_loan_behind_an_item_is_not_counted() {
    let name = common::unique("pq-loan-hole");
    let q = ByteQueue::create(name.as_str(), 3, 8).unwrap();
    q.put(b"a").unwrap();
    drop(q.try_loan(1).unwrap());
    q.put(b"c").unwrap();
    let (len, put) = (q.len(), q.try_put(b"d"));
    drop(q);
    common::assert_gone(&name);
    assert_eq!(
        (len, put),
        (2, Ok(())),
        "two items in a queue of capacity 3"
    );
}

#[test]
#[ignore = "known (HELD_GUARD_HIDES_CLOSE): a held guard hides the end of a closed queue"]
fn held_guard_does_not_hide_close() {
    let name = common::unique("pq-held-close");
    let q = ByteQueue::create(name.as_str(), 1, 8).unwrap();
    q.put(b"x").unwrap();
    q.close();
    let m = q.try_get().unwrap();
    let r = q.try_get().map(|m| m.len());
    drop(m);
    drop(q);
    common::assert_gone(&name);
    assert_eq!(r, Err(GetError::Closed), "closed and drained");
}
