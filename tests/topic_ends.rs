//! The topic's typed, serde and iterator forms, across processes: `TypedTopic<T>` values
//! every subscriber process receives, the type identity refused across processes, values
//! over-aligned for a slot, stray byte messages; `SerdeTopic<T>` values with garbage among
//! them and identities; iterators that end when the publishers are gone and go on past lags.
//!
//! The serde tests need `--features serde`.

mod common;

use std::time::Duration;

use common::{assert_gone, role, spawn, unique, wait_all_ok};
use shmq::{
    CreateError, OpenError, Policy, PublishError, StartAt, Topic, TopicConfig, TopicRecvError,
    TypedPublisher, TypedTopic,
};

const LIMIT: Duration = Duration::from_secs(120);

#[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Tick {
    seq: u64,
    px: f64,
    qty: u32,
    side: u32,
}

/// The same size and alignment as `Tick`, another layout.
#[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Other {
    a: u64,
    b: u64,
    c: u64,
}

/// Value `i` of the stream, checkable by any receiver.
fn tick(i: u64) -> Tick {
    Tick {
        seq: i,
        px: i as f64 * 0.25,
        qty: (i % 1000) as u32,
        side: (i % 2) as u32,
    }
}

/// Waits until `count()` reaches `n` (the subscriber processes attached).
fn until_attached(count: impl Fn() -> usize, n: usize) {
    let t = std::time::Instant::now();
    while count() < n {
        assert!(t.elapsed() < LIMIT, "only {} of {n} attached", count());
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn typed_values_reach_every_subscriber_process_and_another_type_is_refused() {
    const TEST: &str = "typed_values_reach_every_subscriber_process_and_another_type_is_refused";
    const N: u64 = 20_000;
    if let Some(arg) = role(TEST) {
        let (name, what) = arg.split_once(':').unwrap();
        match what {
            "pub" => {
                let topic = TypedTopic::<Tick>::open(name).unwrap();
                let mut tx = topic.publisher().unwrap();
                for i in 0..N {
                    if i % 2 == 0 {
                        tx.publish_timeout(&tick(i), LIMIT).unwrap();
                    } else {
                        // In place: field by field into the slot.
                        let mut slot = tx.reserve_timeout(LIMIT).unwrap();
                        let t = tick(i);
                        slot.seq = t.seq;
                        slot.px = t.px;
                        slot.qty = t.qty;
                        slot.side = t.side;
                        assert_eq!(slot.commit(), i);
                    }
                }
            }
            "sub" => {
                let topic = TypedTopic::<Tick>::open(name).unwrap();
                let mut rx = topic.subscriber_from(StartAt::Oldest).unwrap();
                for i in 0..N {
                    let v = rx.recv_timeout(LIMIT).unwrap();
                    assert_eq!(v.seq(), i);
                    assert_eq!(*v, tick(i), "value {i}");
                }
            }
            "wrong" => {
                // Another Pod type of the same size and alignment: refused, naming both.
                let e = TypedTopic::<Other>::open(name).unwrap_err();
                let OpenError::TypeMismatch {
                    found, expected, ..
                } = &e
                else {
                    panic!("expected TypeMismatch, got {e}");
                };
                assert!(
                    found.contains("{seq:0:u64,px:8:f64,qty:16:u32,side:20:u32}"),
                    "{e}"
                );
                assert!(expected.contains("{a:0:u64,b:8:u64,c:16:u64}"), "{e}");
                // The byte form and another size are refused too.
                assert!(matches!(
                    Topic::open(name),
                    Err(OpenError::TypeMismatch { .. })
                ));
                assert!(matches!(
                    TypedTopic::<[u64; 3]>::open(name),
                    Err(OpenError::TypeMismatch { .. })
                ));
                // An open_or_create with another type does not create a second topic.
                let e = TypedTopic::<Other>::open_or_create(name, &TopicConfig::of::<Other>(8))
                    .unwrap_err();
                assert!(e.to_string().contains("{a:0:u64"), "{e}");
            }
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let name = unique("topic-typed");
    {
        let topic = TypedTopic::<Tick>::create(name.as_str(), 64).unwrap();
        let mut wrong = spawn(TEST, &format!("{name}:wrong"));
        wait_all_ok(std::slice::from_mut(&mut wrong), LIMIT);

        let mut rx = topic.subscriber().unwrap();
        let mut kids: Vec<_> = (0..2)
            .map(|_| spawn(TEST, &format!("{name}:sub")))
            .collect();
        until_attached(|| topic.subscriber_count(), 3);
        kids.push(spawn(TEST, &format!("{name}:pub")));
        for i in 0..N {
            let v = rx.recv_timeout(LIMIT).unwrap();
            assert_eq!((v.seq(), v.value()), (i, tick(i)));
        }
        wait_all_ok(&mut kids, LIMIT);
        assert_eq!(topic.published(), N);
        assert_eq!(topic.latest().unwrap(), Some(tick(N - 1)));
    }
    assert_gone(&name);
}

/// Aligned to 64: a slot's payload (16 bytes into a 64-byte aligned slot) never is, so both
/// sides go through aligned copies.
#[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
struct Wide {
    v: [u64; 8],
}

#[test]
fn over_aligned_values_and_the_overwrite_policy_go_through_copies() {
    let name = unique("topic-typed-wide");
    {
        for policy in [Policy::Block, Policy::Overwrite] {
            let n = format!("{name}-{policy:?}");
            let config = TopicConfig::of::<Wide>(8).policy(policy);
            let topic = TypedTopic::<Wide>::create_with(n.as_str(), &config).unwrap();
            let mut rx = topic.subscriber().unwrap();
            let mut tx = topic.publisher().unwrap();
            for i in 0..6u64 {
                let mut g = tx.reserve().unwrap();
                g.v = [i; 8];
                g.v[7] = i * 100;
                g.commit();
            }
            // An uncommitted grant publishes nothing.
            let g = tx.reserve().unwrap();
            drop(g);
            tx.publish(&Wide { v: [9; 8] }).unwrap();
            for i in 0..6u64 {
                let got = rx.try_recv().unwrap();
                assert!((&*got as *const Wide).is_aligned());
                let mut want = [i; 8];
                want[7] = i * 100;
                assert_eq!(got.v, want, "{policy:?} value {i}");
            }
            assert_eq!(
                rx.try_recv().unwrap().v,
                [9; 8],
                "{policy:?}: the dropped grant skipped"
            );
            assert!(matches!(rx.try_recv(), Err(TopicRecvError::Empty)));

            if policy == Policy::Overwrite {
                // Lapped: the lag, then the oldest value still held.
                for i in 0..20u64 {
                    tx.publish(&Wide { v: [i; 8] }).unwrap();
                }
                assert_eq!(rx.try_recv().unwrap_err(), TopicRecvError::Lagged(12));
                assert_eq!(rx.try_recv().unwrap().v, [12; 8]);
            }
        }
    }
    assert_gone(&name);
}

#[test]
fn a_stray_byte_message_is_reported_and_skipped() {
    let name = unique("topic-typed-stray");
    {
        let topic = TypedTopic::<u64>::create(name.as_str(), 16).unwrap();
        let mut rx = topic.subscriber().unwrap();
        let mut typed = topic.publisher().unwrap();
        let mut bytes = topic.topic().publisher().unwrap();
        typed.publish(&1).unwrap();
        bytes.publish(b"abc").unwrap();
        typed.publish(&2).unwrap();
        assert_eq!(*rx.try_recv().unwrap(), 1);
        let e = rx.try_recv().unwrap_err();
        assert!(
            matches!(&e, TopicRecvError::Corrupted { reason } if reason.contains("3 bytes")),
            "{e}"
        );
        assert_eq!(*rx.try_recv().unwrap(), 2, "the stream goes on");
        // `latest` reports a stray last message the same way.
        bytes.publish(b"xy").unwrap();
        assert!(matches!(
            topic.latest(),
            Err(TopicRecvError::Corrupted { .. })
        ));
        // A typed publisher over a byte topic whose slots are too small for one T.
        let small = Topic::create(format!("{name}-small").as_str(), 4, 4).unwrap();
        assert_eq!(
            TypedPublisher::<u64>::new(small.publisher().unwrap()).unwrap_err(),
            PublishError::TooLarge { len: 8, max: 4 }
        );
        // A typed topic's configuration must be one T per message.
        let e = TypedTopic::<u64>::create_with(
            format!("{name}-cfg").as_str(),
            &TopicConfig::new(8, 16),
        )
        .unwrap_err();
        assert!(matches!(e, CreateError::InvalidSize { .. }), "{e}");
        assert!(e.to_string().contains("TopicConfig::of"), "{e}");
    }
    assert_gone(&name);
}

#[test]
fn iterators_end_when_the_publisher_process_is_gone() {
    const TEST: &str = "iterators_end_when_the_publisher_process_is_gone";
    const N: u64 = 5000;
    if let Some(name) = role(TEST) {
        let topic = TypedTopic::<u64>::open(name.as_str()).unwrap();
        let mut tx = topic.publisher().unwrap();
        let bytes = Topic::open(name.as_str());
        assert!(bytes.is_err(), "typed: no byte open");
        for i in 0..N {
            tx.publish_timeout(&i, LIMIT).unwrap();
        }
        return; // the publisher leaves: the iterators end after the last value
    }
    let name = unique("topic-iter");
    {
        // 16 slots for 5000 values: the publisher waits for the iterators all along.
        let topic = TypedTopic::<u64>::create(name.as_str(), 16).unwrap();
        let mut typed = topic.subscriber().unwrap();
        let mut raw = topic.topic().subscriber().unwrap();
        let mut kid = spawn(TEST, &name);
        let mut from_raw = Vec::new();
        let mut expect = 0u64;
        // Alternate between the two iterators (each borrows its subscriber for its turn).
        while expect < N {
            for v in typed.iter().take(7) {
                assert_eq!(v.unwrap(), expect);
                expect += 1;
                if expect == N {
                    break;
                }
            }
            from_raw.extend(raw.try_iter().map(|m| m.unwrap()));
        }
        assert_eq!(typed.iter().count(), 0, "ends: the publisher is gone");
        from_raw.extend(raw.iter().map(|m| m.unwrap()));
        let got: Vec<u64> = from_raw
            .iter()
            .map(|m| u64::from_ne_bytes(m[..].try_into().unwrap()))
            .collect();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
        wait_all_ok(std::slice::from_mut(&mut kid), LIMIT);
        assert_eq!(typed.try_iter().count(), 0);
    }
    assert_gone(&name);
}

#[test]
fn iterators_yield_a_lag_and_go_on() {
    let name = unique("topic-iter-lag");
    {
        let config = TopicConfig::new(4, 8).policy(Policy::Overwrite);
        let topic = Topic::create_with(name.as_str(), &config).unwrap();
        let mut a = topic.subscriber().unwrap();
        let mut b = topic.subscriber().unwrap();
        let mut tx = topic.publisher().unwrap();
        for i in 0..10u8 {
            tx.publish(&[i]).unwrap();
        }
        let got: Vec<_> = a.try_iter().collect();
        assert_eq!(got[0], Err(TopicRecvError::Lagged(6)));
        let rest: Vec<Vec<u8>> = got[1..].iter().map(|m| m.clone().unwrap()).collect();
        assert_eq!(rest, [[6], [7], [8], [9]]);
        // The blocking iterator too, ending once the publisher is gone.
        drop(tx);
        let got: Vec<_> = b.iter().collect();
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], Err(TopicRecvError::Lagged(6)));
        assert_eq!(got[4], Ok(vec![9]));
    }
    assert_gone(&name);
}

#[cfg(feature = "serde")]
mod serde_topic {
    use super::*;
    use serde::{Deserialize, Serialize};
    use shmq::{SerdeOptions, SerdeRecvError, SerdeSendError, SerdeTopic};

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    enum Event {
        Trade { seq: u64, sym: String, px: f64 },
        Book(u64, Vec<(u32, i64)>),
        Note(u64, Option<String>),
    }

    /// Event `i`, of a size that varies with `i`.
    fn event(i: u64) -> Event {
        match i % 3 {
            0 => Event::Trade {
                seq: i,
                sym: "X".repeat((i % 17) as usize),
                px: i as f64 / 8.0,
            },
            1 => Event::Book(
                i,
                (0..i % 9)
                    .map(|k| (k as u32, -(i as i64) * k as i64))
                    .collect(),
            ),
            _ => Event::Note(i, (i % 2 == 0).then(|| format!("note {i}"))),
        }
    }

    /// Raw messages injected every `GARBAGE_EVERY` values: not an `Event`.
    const GARBAGE_EVERY: u64 = 50;
    const N: u64 = 3000;

    /// Receives the stream: every value in order, and exactly the injected decode errors.
    fn receive_all(rx: &mut shmq::SerdeSubscriber<Event>) {
        let (mut next, mut bad) = (0u64, 0u64);
        for item in rx.iter() {
            match item {
                Ok(v) => {
                    assert_eq!(v, event(next));
                    next += 1;
                }
                Err(SerdeRecvError::Decode(e)) => {
                    assert!(e.type_name.contains("Event"), "{e}");
                    bad += 1;
                }
                Err(e) => panic!("after {next}: {e}"),
            }
        }
        assert_eq!(next, N);
        assert_eq!(bad, N / GARBAGE_EVERY);
    }

    #[test]
    fn serde_values_across_processes_with_garbage_among_them() {
        const TEST: &str = "serde_topic::serde_values_across_processes_with_garbage_among_them";
        if let Some(arg) = role(TEST) {
            let (name, what) = arg.split_once(':').unwrap();
            match what {
                "pub" => {
                    let topic = SerdeTopic::<Event>::open(name).unwrap();
                    let mut tx = topic.publisher().unwrap();
                    let mut raw = topic.topic().publisher().unwrap();
                    for i in 0..N {
                        tx.publish_timeout(&event(i), LIMIT).unwrap();
                        if i % GARBAGE_EVERY == 0 {
                            // A variant index no `Event` has.
                            raw.publish_timeout(&[0x7f, 1, 2], LIMIT).unwrap();
                        }
                    }
                }
                "sub" => {
                    let topic = SerdeTopic::<Event>::open(name).unwrap();
                    receive_all(&mut topic.subscriber_from(StartAt::Oldest).unwrap());
                }
                "wrong" => {
                    let refused = |e: OpenError| matches!(e, OpenError::TypeMismatch { .. });
                    assert!(refused(SerdeTopic::<String>::open(name).unwrap_err()));
                    let v2 = SerdeOptions::new(name).schema(2);
                    assert!(refused(SerdeTopic::<Event>::open(v2).unwrap_err()));
                    let tagged = SerdeOptions::new(name).tag("events");
                    assert!(refused(SerdeTopic::<Event>::open(tagged).unwrap_err()));
                    assert!(refused(Topic::open(name).unwrap_err()));
                }
                other => panic!("unknown role {other}"),
            }
            return;
        }
        let name = unique("topic-serde");
        {
            let topic =
                SerdeTopic::<Event>::create(name.as_str(), &TopicConfig::new(32, 256)).unwrap();
            let mut wrong = spawn(TEST, &format!("{name}:wrong"));
            wait_all_ok(std::slice::from_mut(&mut wrong), LIMIT);
            let mut rx = topic.subscriber().unwrap();
            let mut kids = vec![spawn(TEST, &format!("{name}:sub"))];
            until_attached(|| topic.subscriber_count(), 2);
            kids.push(spawn(TEST, &format!("{name}:pub")));
            receive_all(&mut rx);
            wait_all_ok(&mut kids, LIMIT);
            assert_eq!(topic.latest().unwrap(), Some(event(N - 1)));
            // A last message that is garbage is a decode error.
            topic.topic().publisher().unwrap().publish(&[0x7f]).unwrap();
            assert!(matches!(topic.latest(), Err(SerdeRecvError::Decode(_))));
        }
        assert_gone(&name);
    }

    #[test]
    fn a_value_too_large_publishes_nothing() {
        let name = unique("topic-serde-large");
        {
            let topic =
                SerdeTopic::<Event>::create(name.as_str(), &TopicConfig::new(8, 64)).unwrap();
            let mut rx = topic.subscriber().unwrap();
            let mut tx = topic.publisher().unwrap();
            let big = Event::Note(1, Some("y".repeat(200)));
            let e = tx.publish(&big).unwrap_err();
            assert!(
                matches!(
                    e,
                    SerdeSendError::TooLarge {
                        max: 64,
                        transport: "topic",
                        ..
                    }
                ),
                "{e}"
            );
            assert_eq!(topic.published(), 0, "nothing claimed");
            tx.try_publish(&event(4)).unwrap();
            assert_eq!(rx.try_recv().unwrap(), event(4));
            assert_eq!(topic.latest().unwrap(), Some(event(4)));
            assert_eq!(
                rx.try_recv().unwrap_err(),
                SerdeRecvError::Recv(TopicRecvError::Empty)
            );
        }
        assert_gone(&name);
    }
}
