//! Serde messages (feature `serde`): random values of a nontrivial type through a ring, a
//! pipe and a byte queue across real processes; garbage and leftover bytes give a decode
//! error naming the type and the stream goes on; values too large, or that fail to encode,
//! send nothing; identities.
//!
//! Run with `cargo test --features serde --test serde_msgs`. The cross-process tests draw
//! their values from a seed (printed in every failure; set `SHMQ_SERDE_SEED` to replay one):
//! the child process regenerates the same values from the seed and sends them, the parent
//! regenerates them too and compares what it receives.

mod common;

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::{assert_gone, role, spawn, unique, wait};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::{Deserialize, Serialize, Serializer};
use shmq::{
    ByteQueue, GetError, Options, Pipe, RecvError, RecvTimeoutError, Ring, SerdeOptions, SerdePipe,
    SerdeQueue, SerdeReceiver, SerdeRecvError, SerdeSendError, SerdeSender, Side, TryRecvError,
};

const LIMIT: Duration = Duration::from_secs(120);
/// Values per process pair and transport.
const CASES: usize = 32;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Msg {
    Ping,
    Text(String),
    Point { x: i64, y: i32, label: Option<char> },
    Batch(Vec<Item>),
    Nested(Box<Inner>),
    Pair(u8, bool),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Item {
    id: u32,
    ok: bool,
    tag: char,
    data: Vec<u8>,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Inner {
    name: String,
    flags: Vec<bool>,
    first: Option<Item>,
    wide: (i16, u64, i128),
    kind: Kind,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Kind {
    A,
    B(u16),
    C { s: String },
}

/// The pipe's answer to each `Msg`: its position and the value as received.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Reply {
    index: u32,
    echo: Msg,
}

fn item() -> impl Strategy<Value = Item> {
    (
        any::<u32>(),
        any::<bool>(),
        any::<char>(),
        prop::collection::vec(any::<u8>(), 0..40),
        prop::option::of("\\PC{0,12}"),
    )
        .prop_map(|(id, ok, tag, data, note)| Item {
            id,
            ok,
            tag,
            data,
            note,
        })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::A),
        any::<u16>().prop_map(Kind::B),
        "\\PC{0,8}".prop_map(|s| Kind::C { s }),
    ]
}

fn msg() -> impl Strategy<Value = Msg> {
    let inner = (
        "\\PC{0,16}",
        prop::collection::vec(any::<bool>(), 0..10),
        prop::option::of(item()),
        any::<(i16, u64, i128)>(),
        kind(),
    )
        .prop_map(|(name, flags, first, wide, kind)| Inner {
            name,
            flags,
            first,
            wide,
            kind,
        });
    prop_oneof![
        Just(Msg::Ping),
        "\\PC{0,32}".prop_map(Msg::Text),
        (any::<i64>(), any::<i32>(), prop::option::of(any::<char>()))
            .prop_map(|(x, y, label)| Msg::Point { x, y, label }),
        prop::collection::vec(item(), 0..6).prop_map(Msg::Batch),
        inner.prop_map(|i| Msg::Nested(Box::new(i))),
        any::<(u8, bool)>().prop_map(|(a, b)| Msg::Pair(a, b)),
    ]
}

/// `CASES` values drawn from `seed`: the same in every process.
fn cases(seed: u64) -> Vec<Msg> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = msg();
    (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn seed() -> u64 {
    match std::env::var("SHMQ_SERDE_SEED") {
        Ok(s) => s.parse().expect("SHMQ_SERDE_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// The child's argument: `name seed`.
fn parse(arg: &str) -> (String, u64) {
    let (name, seed) = arg.split_once(' ').unwrap();
    (name.to_string(), seed.parse().unwrap())
}

#[test]
fn ring_carries_random_values_between_processes() {
    const TEST: &str = "ring_carries_random_values_between_processes";
    if let Some(arg) = role(TEST) {
        let (name, seed) = parse(&arg);
        let mut tx = SerdeSender::<Msg>::open(name.as_str()).unwrap();
        for v in cases(seed) {
            tx.send(&v).unwrap();
        }
        return;
    }
    let (name, seed) = (unique("serde-ring"), seed());
    {
        // Small enough that the child waits for room now and then.
        let mut rx = SerdeReceiver::<Msg>::create(name.as_str(), 8 * 1024).unwrap();
        let mut kid = spawn(TEST, &format!("{name} {seed}"));
        let deadline = Instant::now() + LIMIT;
        let mut got = Vec::new();
        loop {
            match rx.recv_deadline(deadline) {
                Ok(v) => got.push(v),
                Err(SerdeRecvError::Recv(RecvTimeoutError::Disconnected)) => break,
                Err(e) => panic!("seed {seed}: after {} values: {e}", got.len()),
            }
        }
        assert!(
            wait(&mut kid, LIMIT).success(),
            "seed {seed}: sender failed"
        );
        assert_eq!(got, cases(seed), "seed {seed}");
    }
    assert_gone(&name);
}

#[test]
fn pipe_carries_random_values_both_ways_between_processes() {
    const TEST: &str = "pipe_carries_random_values_both_ways_between_processes";
    if let Some(arg) = role(TEST) {
        let (name, seed) = parse(&arg);
        let mut end = SerdePipe::<Msg, Reply>::open(name.as_str()).unwrap();
        let sent = cases(seed);
        for v in &sent {
            end.send(v).unwrap();
        }
        for (i, v) in sent.into_iter().enumerate() {
            let reply = end.recv_timeout(LIMIT).unwrap();
            assert_eq!(
                reply,
                Reply {
                    index: i as u32,
                    echo: v
                },
                "seed {seed}"
            );
        }
        return;
    }
    let (name, seed) = (unique("serde-pipe"), seed());
    {
        let mut end = SerdePipe::<Reply, Msg>::create(name.as_str(), 256 * 1024).unwrap();
        let mut kid = spawn(TEST, &format!("{name} {seed}"));
        let want = cases(seed);
        for (i, w) in want.iter().enumerate() {
            let v = end
                .recv_timeout(LIMIT)
                .unwrap_or_else(|e| panic!("seed {seed}: value {i}: {e}"));
            assert_eq!(&v, w, "seed {seed}: value {i}");
            end.send(&Reply {
                index: i as u32,
                echo: v,
            })
            .unwrap();
        }
        assert!(
            wait(&mut kid, LIMIT).success(),
            "seed {seed}: the child's check of the replies failed"
        );
        // The child is gone and sent nothing more.
        assert_eq!(end.iter().count(), 0, "seed {seed}");
    }
    assert_gone(&name);
}

#[test]
fn queue_carries_random_values_between_processes() {
    const TEST: &str = "queue_carries_random_values_between_processes";
    if let Some(arg) = role(TEST) {
        let (name, seed) = parse(&arg);
        let q = SerdeQueue::<Msg>::open_for(name.as_str(), Side::Put).unwrap();
        for v in cases(seed) {
            q.put(&v).unwrap();
        }
        return;
    }
    let (name, seed) = (unique("serde-queue"), seed());
    {
        // 4 slots: the child waits for room most of the time.
        let q = SerdeQueue::<Msg>::create(name.as_str(), 4, 4096).unwrap();
        q.set_side(Side::Get);
        let mut kid = spawn(TEST, &format!("{name} {seed}"));
        let deadline = Instant::now() + LIMIT;
        let mut got = Vec::new();
        loop {
            match q.get_deadline(deadline) {
                Ok(v) => got.push(v),
                Err(SerdeRecvError::Recv(GetError::Disconnected)) => break,
                Err(e) => panic!("seed {seed}: after {} values: {e}", got.len()),
            }
        }
        assert!(
            wait(&mut kid, LIMIT).success(),
            "seed {seed}: putter failed"
        );
        assert_eq!(got, cases(seed), "seed {seed}");
    }
    assert_gone(&name);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// In one process, with shrinking: any sequence of values comes out of a ring and a
    /// queue as it went in.
    #[test]
    fn values_round_trip_through_ring_and_queue(values in prop::collection::vec(msg(), 0..12)) {
        let name = unique("serde-prop");
        {
            let ring = Ring::create(name.as_str(), 64 * 1024).unwrap();
            let mut tx = SerdeSender::<Msg>::new(ring.producer().unwrap());
            let mut rx = SerdeReceiver::<Msg>::new(ring.consumer().unwrap());
            for v in &values {
                tx.try_send(v).unwrap();
            }
            let got: Vec<Msg> = rx.try_iter().map(Result::unwrap).collect();
            prop_assert_eq!(&got, &values);
        }
        let qname = format!("{name}-q");
        {
            let q = SerdeQueue::<Msg>::create(qname.as_str(), 16, 8192).unwrap();
            for v in &values {
                q.try_put(v).unwrap();
            }
            let got: Vec<Msg> = q.try_iter().map(Result::unwrap).collect();
            prop_assert_eq!(&got, &values);
        }
        assert_gone(&name);
    }
}

fn sample() -> Msg {
    Msg::Nested(Box::new(Inner {
        name: "ünïcode ✓".into(),
        flags: vec![true, false],
        first: Some(Item {
            id: 9,
            ok: true,
            tag: '∑',
            data: vec![1, 2, 3],
            note: None,
        }),
        wide: (-3, u64::MAX, i128::MIN),
        kind: Kind::C { s: "c".into() },
    }))
}

/// Messages no `Msg` encodes to: an unknown variant, a varint that never ends, nothing at
/// all, a string cut short, a `char` that is not a scalar value, invalid UTF-8.
const GARBAGE: &[&[u8]] = &[
    &[200],
    &[0xff; 12],
    &[],
    &[1, 10, b'a'],
    &[2, 0, 0, 1, 3, 0xed, 0xa0, 0x80],
    &[1, 2, 0xc3, 0x28],
];

fn assert_names_msg<E: std::fmt::Display>(err: &SerdeRecvError<E>, what: &str) {
    let SerdeRecvError::Decode(d) = err else {
        panic!("{what}: expected a decode error, got {err}");
    };
    assert!(d.type_name.ends_with("serde_msgs::Msg"), "{what}: {d}");
    let text = err.to_string();
    assert!(text.contains("serde_msgs::Msg"), "{what}: {text}");
    assert!(text.contains("skipped"), "{what}: {text}");
}

#[test]
fn garbage_on_a_ring_is_a_decode_error_naming_the_type_and_the_stream_goes_on() {
    let name = unique("serde-garbage-ring");
    {
        let ring = Ring::create(name.as_str(), 4096).unwrap();
        let mut raw = ring.producer().unwrap();
        let mut rx = SerdeReceiver::<Msg>::new(ring.consumer().unwrap());
        for (i, g) in GARBAGE.iter().enumerate() {
            raw.send(g).unwrap();
            let err = rx.try_recv().unwrap_err();
            assert_names_msg(&err, &format!("garbage {i}"));
        }
        // A whole value with one byte too many: read the encoding raw from a second ring.
        let other = unique("serde-garbage-ring2");
        let bytes = {
            let r2 = Ring::create(other.as_str(), 4096).unwrap();
            let mut tx2 = SerdeSender::<Msg>::new(r2.producer().unwrap());
            let mut raw_rx = r2.consumer().unwrap();
            tx2.send(&sample()).unwrap();
            raw_rx.try_recv().unwrap().to_vec()
        };
        let mut longer = bytes.clone();
        longer.push(0);
        raw.send(&longer).unwrap();
        let err = rx.try_recv().unwrap_err();
        assert_names_msg(&err, "trailing byte");
        assert!(err.to_string().contains("1 bytes left over"), "{err}");
        // The exact encoding, sent raw, decodes: the reader is not stuck.
        raw.send(&bytes).unwrap();
        assert_eq!(rx.try_recv().unwrap(), sample());

        // Garbage, then a good value through a serde sender, all waiting at once.
        raw.send(&[0xff; 3]).unwrap();
        let mut tx = SerdeSender::<Msg>::new(raw);
        tx.send(&Msg::Text("after".into())).unwrap();
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_names_msg(got[0].as_ref().unwrap_err(), "garbage before a value");
        assert_eq!(got[1], Ok(Msg::Text("after".into())));
        assert_eq!(
            rx.try_recv(),
            Err(SerdeRecvError::Recv(TryRecvError::Empty))
        );
        assert_gone(&other);
    }
    assert_gone(&name);
}

#[test]
fn garbage_on_a_byte_queue_is_a_decode_error_and_the_queue_goes_on() {
    let name = unique("serde-garbage-queue");
    {
        // The raw queue carries the serde ends' identity (a tag), so they attach to it.
        let id = SerdeOptions::new(name.as_str()).identity::<Msg>();
        let raw = ByteQueue::create(Options::new(name.as_str()).type_tag(id), 16, 256).unwrap();
        let q = SerdeQueue::<Msg>::open(name.as_str()).unwrap();
        for g in GARBAGE {
            raw.put(g).unwrap();
        }
        q.put(&sample()).unwrap();
        let mut got = q.try_iter();
        for i in 0..GARBAGE.len() {
            assert_names_msg(&got.next().unwrap().unwrap_err(), &format!("garbage {i}"));
        }
        assert_eq!(got.next().unwrap(), Ok(sample()));
        assert!(got.next().is_none());
        drop(got);
        assert!(q.is_empty());
    }
    assert_gone(&name);
}

#[test]
fn garbage_on_a_pipe_is_a_decode_error_and_the_pipe_goes_on() {
    let name = unique("serde-garbage-pipe");
    {
        let mut a = Pipe::create(name.as_str(), 4096).unwrap();
        let mut b = SerdePipe::<u64, Msg>::new(Pipe::open(name.as_str()).unwrap());
        a.send(&[3, 2, 1]).unwrap(); // Msg::Batch of 2 items, cut short in the first
        a.send(&[0]).unwrap(); // Msg::Ping
        assert_names_msg(&b.recv().unwrap_err(), "cut short");
        assert_eq!(b.recv().unwrap(), Msg::Ping);
    }
    assert_gone(&name);
}

/// A value larger than the small transports' maximum messages below.
fn too_large() -> Msg {
    Msg::Text("x".repeat(500))
}

fn assert_too_large<E: std::fmt::Debug>(err: SerdeSendError<E>, transport: &str) {
    match err {
        SerdeSendError::TooLarge {
            type_name,
            len,
            max,
            transport: t,
        } => {
            assert!(type_name.ends_with("serde_msgs::Msg"), "{type_name}");
            assert_eq!(len, 503); // variant, varint length (2 bytes), 500 bytes
            assert!(max < len);
            assert_eq!(t, transport);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn a_value_too_large_sends_nothing() {
    let name = unique("serde-large");
    {
        let mut tx = SerdeSender::<Msg>::create(name.as_str(), 256).unwrap();
        let mut rx = SerdeReceiver::<Msg>::open(name.as_str()).unwrap();
        assert_too_large(tx.send(&too_large()).unwrap_err(), "ring");
        assert_too_large(tx.try_send(&too_large()).unwrap_err(), "ring");
        assert_too_large(
            tx.send_timeout(&too_large(), Duration::from_millis(1))
                .unwrap_err(),
            "ring",
        );
        let text = tx.send(&too_large()).unwrap_err().to_string();
        assert!(
            text.contains("serde_msgs::Msg") && text.contains("503"),
            "{text}"
        );
        assert_eq!(
            rx.try_recv(),
            Err(SerdeRecvError::Recv(TryRecvError::Empty))
        );
        tx.send(&Msg::Pair(1, true)).unwrap();
        assert_eq!(rx.try_recv().unwrap(), Msg::Pair(1, true));
    }
    assert_gone(&name);

    let name = unique("serde-large-q");
    {
        let q = SerdeQueue::<Msg>::create(name.as_str(), 4, 100).unwrap();
        assert_too_large(q.put(&too_large()).unwrap_err(), "queue");
        assert_too_large(q.try_put(&too_large()).unwrap_err(), "queue");
        assert!(q.is_empty());
        q.put(&Msg::Ping).unwrap();
        assert_eq!(q.try_get().unwrap(), Msg::Ping);
    }
    assert_gone(&name);

    let name = unique("serde-large-p");
    {
        let mut a = SerdePipe::<Msg>::create(name.as_str(), 256).unwrap();
        let mut b = SerdePipe::<Msg>::open(name.as_str()).unwrap();
        assert_too_large(a.send(&too_large()).unwrap_err(), "ring");
        assert!(b.try_iter().next().is_none());
    }
    assert_gone(&name);
}

/// Fails to serialize, as a `Serialize` impl may.
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}

/// Serializes one byte longer (or shorter) each time: its measured size is wrong for the
/// second pass that writes it.
struct Drifting {
    len: Cell<usize>,
    grow: bool,
}

impl Serialize for Drifting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.len.get();
        self.len.set(if self.grow {
            n + 1
        } else {
            n.saturating_sub(1)
        });
        s.collect_seq(std::iter::repeat_n(7u8, n))
    }
}

#[test]
fn a_value_that_fails_to_encode_sends_nothing() {
    let name = unique("serde-encode");
    {
        let ring = Ring::create(name.as_str(), 4096).unwrap();
        let mut raw_rx = ring.consumer().unwrap();
        let mut tx = SerdeSender::<Refuses>::new(ring.producer().unwrap());
        match tx.send(&Refuses).unwrap_err() {
            SerdeSendError::Encode(e) => {
                assert!(e.type_name.ends_with("serde_msgs::Refuses"), "{e}");
                assert!(e.to_string().contains("nothing was sent"), "{e}");
            }
            other => panic!("expected Encode, got {other:?}"),
        }
        let mut tx = SerdeSender::<Drifting>::new(tx.into_inner());
        for grow in [true, false] {
            let v = Drifting {
                len: Cell::new(5),
                grow,
            };
            match tx.try_send(&v).unwrap_err() {
                SerdeSendError::Encode(e) => {
                    assert!(e.type_name.ends_with("serde_msgs::Drifting"), "{e}")
                }
                other => panic!("expected Encode, got {other:?}"),
            }
        }
        assert!(matches!(raw_rx.try_recv(), Err(TryRecvError::Empty)));
        // The ring still works after the abandoned reservations.
        let mut tx = SerdeSender::<Vec<u8>>::new(tx.into_inner());
        let mut rx = SerdeReceiver::<Vec<u8>>::new(raw_rx);
        tx.send(&vec![1, 2]).unwrap();
        assert_eq!(rx.try_recv().unwrap(), [1, 2]);

        let qname = format!("{name}-q");
        let q = SerdeQueue::<Vec<u8>>::create(qname.as_str(), 4, 64).unwrap();
        let id = SerdeOptions::new(qname.as_str()).identity::<Vec<u8>>();
        let raw = ByteQueue::open(Options::new(qname.as_str()).type_tag(id)).unwrap();
        let raw = SerdeQueue::<Drifting>::new(raw);
        let v = Drifting {
            len: Cell::new(5),
            grow: true,
        };
        assert!(matches!(raw.put(&v), Err(SerdeSendError::Encode(_))));
        assert_eq!(
            q.try_get(),
            Err(SerdeRecvError::Recv(GetError::Empty)),
            "an abandoned loan puts nothing"
        );
        q.put(&vec![3]).unwrap();
        assert_eq!(q.try_get().unwrap(), [3]);
    }
    assert_gone(&name);
}

#[test]
fn receive_verbs_report_the_transport_and_iter_ends_when_the_sender_is_gone() {
    let name = unique("serde-verbs");
    {
        let mut tx = SerdeSender::<String>::create(name.as_str(), 1024).unwrap();
        let mut rx = SerdeReceiver::<String>::open(name.as_str()).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(SerdeRecvError::Recv(RecvTimeoutError::Timeout))
        );
        assert_eq!(
            rx.recv_deadline(Instant::now()),
            Err(SerdeRecvError::Recv(RecvTimeoutError::Timeout))
        );
        tx.send_deadline(&"a".into(), Instant::now() + LIMIT)
            .unwrap();
        tx.send_timeout(&"b".into(), LIMIT).unwrap();
        tx.try_send(&"c".into()).unwrap();
        assert_eq!(rx.recv().unwrap(), "a");
        drop(tx);
        let rest: Result<Vec<String>, _> = rx.iter().collect();
        assert_eq!(rest.unwrap(), ["b", "c"]);
        assert_eq!(
            rx.recv(),
            Err(SerdeRecvError::Recv(RecvError::Disconnected))
        );
    }
    assert_gone(&name);
}

#[test]
fn ends_of_the_same_identity_attach() {
    let name = unique("serde-same-id");
    {
        let opts = SerdeOptions::new(name.as_str()).schema(3);
        let _tx = SerdeSender::<Msg>::create(&opts, 1024).unwrap();
        let _rx = SerdeReceiver::<Msg>::open(&opts).unwrap();
    }
    let pname = unique("serde-same-id-pipe");
    {
        // The opener of a pipe carries the creator's pair the other way round.
        let _a = SerdePipe::<Msg, u32>::create(pname.as_str(), 1024).unwrap();
        let _b = SerdePipe::<u32, Msg>::open(pname.as_str()).unwrap();
    }
    let qname = unique("serde-same-id-q");
    {
        let opts = SerdeOptions::new(qname.as_str()).tag("jobs");
        let _a = SerdeQueue::<Msg>::create(&opts, 4, 64).unwrap();
        let _b = SerdeQueue::<Msg>::open(&opts).unwrap();
    }
    assert_gone(&name);
    assert_gone(&pname);
    assert_gone(&qname);
}

#[test]
fn an_end_of_another_identity_is_refused() {
    let name = unique("serde-other-id");
    {
        let _tx = SerdeSender::<Msg>::create(name.as_str(), 1024).unwrap();
        let e = SerdeReceiver::<Reply>::open(name.as_str()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("serde_msgs::Msg") && text.contains("serde_msgs::Reply"),
            "{text}"
        );
        let e = SerdeReceiver::<Msg>::open(SerdeOptions::new(name.as_str()).schema(2));
        assert!(e.is_err(), "another schema version attached");
        let e = SerdeReceiver::<Msg>::open(SerdeOptions::new(name.as_str()).tag("x"));
        assert!(e.is_err(), "a tag attached to an untagged end");
        // The refusals claimed nothing: the right identity still attaches.
        let _rx = SerdeReceiver::<Msg>::open(name.as_str()).unwrap();
    }
    let pname = unique("serde-other-id-pipe");
    {
        let _a = SerdePipe::<Msg, u32>::create(pname.as_str(), 1024).unwrap();
        // Same pair, same order: both would send `Msg`.
        assert!(SerdePipe::<Msg, u32>::open(pname.as_str()).is_err());
    }
    let qname = unique("serde-other-id-q");
    {
        let _a =
            SerdeQueue::<Msg>::create(SerdeOptions::new(qname.as_str()).tag("a"), 4, 64).unwrap();
        assert!(SerdeQueue::<Msg>::open(SerdeOptions::new(qname.as_str()).tag("b")).is_err());
    }
    assert_gone(&name);
    assert_gone(&pname);
    assert_gone(&qname);
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

fn tree(depth: usize) -> Tree {
    (0..depth).fold(Tree::Leaf, |t, _| Tree::Node(Box::new(t)))
}

/// Without a nesting limit, decoding the hostile message as a `Tree` overflows any thread's
/// stack. Values up to the limit (128 levels: a leaf under 127 nodes) still decode.
#[test]
fn a_hostile_deeply_nested_message_is_a_decode_error_not_a_stack_overflow() {
    let name = unique("serde-deep");
    {
        let ring = Ring::create(name.as_str(), 1 << 20).unwrap();
        let mut raw = ring.producer().unwrap();
        let mut rx = SerdeReceiver::<Tree>::new(ring.consumer().unwrap());
        let mut hostile = vec![1u8; 400_000]; // Node(Node(Node(...
        hostile.push(0); // ... Leaf)))
        raw.send(&hostile).unwrap();
        let mut tx = SerdeSender::<Tree>::new(raw);
        tx.send(&tree(127)).unwrap();
        tx.send(&tree(128)).unwrap();
        tx.send(&tree(3)).unwrap();
        // On a thread with the default stack of spawned threads, 2 MiB.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for what in ["400 000 levels", "129 levels"] {
                    let err = rx.recv().unwrap_err();
                    let text = err.to_string();
                    assert!(matches!(err, SerdeRecvError::Decode(_)), "{what}: {text}");
                    assert!(text.contains("serde_msgs::Tree"), "{what}: {text}");
                    assert!(text.contains("more than 128 levels"), "{what}: {text}");
                    if what == "400 000 levels" {
                        assert_eq!(rx.recv().unwrap(), tree(127));
                    }
                }
                assert_eq!(rx.recv().unwrap(), tree(3));
            })
            .unwrap()
            .join()
            .unwrap();
    }
    assert_gone(&name);
}

#[test]
fn errors_and_ends_cross_threads() {
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    error::<shmq::DecodeError>();
    error::<shmq::EncodeError>();
    error::<SerdeSendError<shmq::SendError>>();
    error::<SerdeSendError<shmq::TrySendError>>();
    error::<SerdeSendError<shmq::SendTimeoutError>>();
    error::<SerdeSendError<shmq::PutError>>();
    error::<SerdeRecvError<RecvError>>();
    error::<SerdeRecvError<TryRecvError>>();
    error::<SerdeRecvError<RecvTimeoutError>>();
    error::<SerdeRecvError<GetError>>();
    fn send<T: Send>() {}
    send::<SerdeSender<Msg>>();
    send::<SerdeReceiver<Msg>>();
    send::<SerdePipe<Msg, Reply>>();
    send::<SerdeQueue<Msg>>();
}
