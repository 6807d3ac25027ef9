//! Waiting on topic ends with the other objects, across processes: subscribers and
//! publishers in a `Select` among ring consumers, in a `Readiness` under epoll, and as
//! futures under tokio (`--features async`); SIGKILLed peers make them ready.

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::{assert_gone, rand, role, spawn, unique, wait_all_ok};
use rustix::event::{Timespec, epoll};
use shmq::{
    PublishError, Readiness, Ring, Select, SelectError, Topic, TopicRecvError, TryRecvError,
    TypedTopic,
};

const LIMIT: Duration = Duration::from_secs(120);

/// Sleeps now and then, at random, so waits happen at unpredictable points.
fn jitter(seed: &mut u64) {
    match rand(seed) % 64 {
        0 => std::thread::sleep(Duration::from_micros(rand(seed) % 2000)),
        1..=6 => std::thread::yield_now(),
        _ => {}
    }
}

/// Waits until `count()` reaches `n`.
fn until(count: impl Fn() -> usize, n: usize) {
    let t = Instant::now();
    while count() < n {
        assert!(t.elapsed() < LIMIT, "only {} of {n}", count());
        std::thread::sleep(Duration::from_millis(2));
    }
}

const TOPIC_MSGS: u64 = 6000;
const RING_MSGS: u64 = 2000;

#[test]
fn select_over_two_subscribers_and_two_rings_fed_by_processes() {
    const TEST: &str = "select_over_two_subscribers_and_two_rings_fed_by_processes";
    if let Some(arg) = role(TEST) {
        let (name, what) = arg.split_once(',').unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(what.as_bytes()[0]);
        if what == "topic" {
            let topic = TypedTopic::<u64>::open(name).unwrap();
            let mut tx = topic.publisher().unwrap();
            for i in 0..TOPIC_MSGS {
                jitter(&mut seed);
                tx.publish_timeout(&i, LIMIT).unwrap();
            }
        } else {
            let mut tx = Ring::open(format!("{name}-{what}").as_str())
                .unwrap()
                .producer()
                .unwrap();
            for i in 0..RING_MSGS {
                jitter(&mut seed);
                tx.send_timeout(&i.to_le_bytes(), LIMIT).unwrap();
            }
        }
        return;
    }
    let name = unique("topic-select");
    {
        // 8 slots: the publisher waits for the slower of the two subscribers all along.
        let topic = TypedTopic::<u64>::create(name.as_str(), 8).unwrap();
        let mut typed = topic.subscriber().unwrap();
        let mut bytes = topic.topic().subscriber().unwrap();
        let rings: Vec<Ring> = (0..2)
            .map(|k| Ring::create(format!("{name}-{k}").as_str(), 4096).unwrap())
            .collect();
        let mut rxs: Vec<_> = rings.iter().map(|r| r.consumer().unwrap()).collect();
        let mut kids: Vec<_> = ["topic", "0", "1"]
            .iter()
            .map(|w| spawn(TEST, &format!("{name},{w}")))
            .collect();
        // Ends: typed subscriber, byte subscriber, ring 0, ring 1.
        let mut next = [0u64; 4];
        let mut done = [false; 4];
        let started = Instant::now();
        while !done.iter().all(|&d| d) {
            assert!(started.elapsed() < LIMIT, "stuck: {next:?} {done:?}");
            let mut sel = Select::new().unwrap();
            let mut which = Vec::new();
            if !done[0] {
                which.push((sel.recv_topic(&typed), 0));
            }
            if !done[1] {
                which.push((sel.recv_topic(&bytes), 1));
            }
            for (k, rx) in rxs.iter().enumerate() {
                if !done[2 + k] {
                    which.push((sel.recv(rx), 2 + k));
                }
            }
            let i = sel.select_timeout(LIMIT).unwrap();
            drop(sel);
            let end = which.iter().find(|(r, _)| *r == i).unwrap().1;
            // Ready: a message, or the publisher gone. Drain what is there.
            loop {
                let got = match end {
                    0 => match typed.try_recv() {
                        Ok(v) => Ok(*v),
                        Err(TopicRecvError::Empty) => break,
                        Err(TopicRecvError::Disconnected) => Err(()),
                        Err(e) => panic!("typed: {e}"),
                    },
                    1 => match bytes.try_recv() {
                        Ok(m) => Ok(u64::from_ne_bytes((&*m).try_into().unwrap())),
                        Err(TopicRecvError::Empty) => break,
                        Err(TopicRecvError::Disconnected) => Err(()),
                        Err(e) => panic!("bytes: {e}"),
                    },
                    k => match rxs[k - 2].try_recv() {
                        Ok(m) => Ok(u64::from_le_bytes((&*m).try_into().unwrap())),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => Err(()),
                        Err(e) => panic!("ring {k}: {e}"),
                    },
                };
                match got {
                    Ok(v) => {
                        assert_eq!(v, next[end], "end {end} out of order");
                        next[end] += 1;
                    }
                    Err(()) => {
                        done[end] = true;
                        break;
                    }
                }
            }
        }
        assert_eq!(
            next,
            [TOPIC_MSGS, TOPIC_MSGS, RING_MSGS, RING_MSGS],
            "every message exactly once"
        );
        wait_all_ok(&mut kids, LIMIT);
    }
    assert_gone(&name);
}

#[test]
fn select_on_a_publisher_follows_a_slow_subscriber_process() {
    const TEST: &str = "select_on_a_publisher_follows_a_slow_subscriber_process";
    const N: u64 = 2000;
    if let Some(name) = role(TEST) {
        let topic = Topic::open(name.as_str()).unwrap();
        let mut rx = topic.subscriber().unwrap();
        let mut seed = 77;
        for i in 0..N {
            jitter(&mut seed);
            let m = rx.recv_timeout(LIMIT).unwrap();
            assert_eq!(*m, i.to_le_bytes());
        }
        return;
    }
    let name = unique("topic-select-pub");
    {
        let topic = Topic::create(name.as_str(), 4, 8).unwrap();
        let mut kid = spawn(TEST, &name);
        until(|| topic.subscriber_count(), 1);
        let mut tx = topic.publisher().unwrap();
        let mut waited = 0u32;
        for i in 0..N {
            loop {
                match tx.try_publish(&i.to_le_bytes()) {
                    Ok(_) => break,
                    Err(PublishError::Full) => {
                        waited += 1;
                        let mut sel = Select::new().unwrap();
                        sel.publish(&tx);
                        sel.select_timeout(LIMIT).unwrap();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        assert!(waited > 0, "the log of 4 never filled");
        wait_all_ok(std::slice::from_mut(&mut kid), LIMIT);
    }
    assert_gone(&name);
}

#[test]
fn sigkilled_peers_make_topic_ends_ready() {
    const TEST: &str = "sigkilled_peers_make_topic_ends_ready";
    if let Some(arg) = role(TEST) {
        let (name, what) = arg.split_once(',').unwrap();
        let topic = Topic::open(name).unwrap();
        if what == "sub" {
            let _rx = topic.subscriber().unwrap();
            std::thread::sleep(LIMIT);
        } else {
            let mut tx = topic.publisher().unwrap();
            tx.publish(b"last words").unwrap();
            std::thread::sleep(LIMIT);
        }
        return;
    }
    let name = unique("topic-select-killed");
    {
        // A subscriber killed while the log is full frees the publisher.
        let topic = Topic::create(format!("{name}-a").as_str(), 2, 8).unwrap();
        let mut kid = spawn(TEST, &format!("{name}-a,sub"));
        until(|| topic.subscriber_count(), 1);
        let mut tx = topic.publisher().unwrap();
        tx.publish(b"1").unwrap();
        tx.publish(b"2").unwrap();
        assert_eq!(tx.try_publish(b"3"), Err(PublishError::Full));
        let mut sel = Select::new().unwrap();
        sel.publish(&tx);
        assert_eq!(sel.try_select(), Err(SelectError::WouldBlock));
        kid.kill().unwrap();
        kid.wait().unwrap();
        assert_eq!(sel.select_timeout(LIMIT), Ok(0));
        drop(sel);
        tx.try_publish(b"3").unwrap();

        // A publisher killed after its last message: the message, then Disconnected.
        let topic = Topic::create(format!("{name}-b").as_str(), 2, 16).unwrap();
        let mut rx = topic.subscriber().unwrap();
        let mut kid = spawn(TEST, &format!("{name}-b,pub"));
        let mut sel = Select::new().unwrap();
        sel.recv_topic(&rx);
        assert_eq!(sel.select_timeout(LIMIT), Ok(0));
        drop(sel);
        assert_eq!(&*rx.try_recv().unwrap(), b"last words");
        kid.kill().unwrap();
        kid.wait().unwrap();
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < LIMIT, "never disconnected");
            let mut sel = Select::new().unwrap();
            sel.recv_topic(&rx);
            sel.select_timeout(LIMIT).unwrap();
            drop(sel);
            match rx.try_recv() {
                Err(TopicRecvError::Disconnected) => break,
                Err(TopicRecvError::Empty) => {} // not yet looked at as deep: select again
                other => panic!("{:?}", other.map(|m| m.to_vec())),
            }
        }
    }
    assert_gone(&name);
}

/// `epoll_wait` for at most `LIMIT`; panics if nothing became ready.
fn epoll_wait(ep: impl AsFd) {
    let mut events = Vec::with_capacity(4);
    let ts = Timespec {
        tv_sec: LIMIT.as_secs() as i64,
        tv_nsec: 0,
    };
    epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&ts)).unwrap();
    assert!(!events.is_empty(), "nothing became ready in {LIMIT:?}");
}

#[test]
fn epoll_over_a_subscriber_and_a_publisher_with_processes_at_the_other_ends() {
    const TEST: &str = "epoll_over_a_subscriber_and_a_publisher_with_processes_at_the_other_ends";
    const IN: u64 = 5000;
    const OUT: u64 = 3000;
    if let Some(arg) = role(TEST) {
        let (name, what) = arg.split_once(',').unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1d ^ u64::from(what.as_bytes()[0]);
        if what == "in" {
            let mut tx = Topic::open(format!("{name}-in").as_str())
                .unwrap()
                .publisher()
                .unwrap();
            for i in 0..IN {
                jitter(&mut seed);
                tx.publish_timeout(&i.to_le_bytes(), LIMIT).unwrap();
            }
        } else {
            let mut rx = Topic::open(format!("{name}-out").as_str())
                .unwrap()
                .subscriber()
                .unwrap();
            for i in 0..OUT {
                jitter(&mut seed);
                assert_eq!(*rx.recv_timeout(LIMIT).unwrap(), i.to_le_bytes());
            }
        }
        return;
    }
    let name = unique("topic-epoll");
    {
        let incoming = Topic::create(format!("{name}-in").as_str(), 8, 8).unwrap();
        let outgoing = Topic::create(format!("{name}-out").as_str(), 4, 8).unwrap();
        let mut rx = incoming.subscriber().unwrap();
        let mut kids = vec![spawn(TEST, &format!("{name},in"))];
        kids.push(spawn(TEST, &format!("{name},out")));
        until(|| outgoing.subscriber_count(), 1);
        let mut tx = outgoing.publisher().unwrap();

        let mut readiness = Readiness::new().unwrap();
        let mut on_rx = Some(readiness.recv_topic(&rx).unwrap());
        let mut on_tx = Some(readiness.publish(&tx).unwrap());
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        epoll::add(
            &ep,
            &readiness,
            epoll::EventData::new_u64(1),
            epoll::EventFlags::IN,
        )
        .unwrap();
        let (mut got, mut sent, mut full) = (0u64, 0u64, 0u32);
        let started = Instant::now();
        while on_rx.is_some() || on_tx.is_some() {
            assert!(started.elapsed() < LIMIT, "stuck at {got} in, {sent} out");
            epoll_wait(&ep);
            // Level-triggered: act on what is ready until nothing is.
            loop {
                let ready = readiness.ready();
                if ready.is_empty() {
                    break;
                }
                for i in ready {
                    if Some(i) == on_rx {
                        loop {
                            match rx.try_recv() {
                                Ok(m) => {
                                    assert_eq!(*m, got.to_le_bytes());
                                    got += 1;
                                }
                                Err(TopicRecvError::Empty) => break,
                                Err(TopicRecvError::Disconnected) => {
                                    readiness.remove(i);
                                    on_rx = None;
                                    break;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    } else if Some(i) == on_tx {
                        while sent < OUT {
                            match tx.try_publish(&sent.to_le_bytes()) {
                                Ok(_) => sent += 1,
                                Err(PublishError::Full) => {
                                    full += 1;
                                    break;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        if sent == OUT {
                            readiness.remove(i);
                            on_tx = None;
                        }
                    }
                }
            }
        }
        assert_eq!((got, sent), (IN, OUT));
        assert!(full > 0, "the outgoing log of 4 never filled");
        drop(readiness);
        wait_all_ok(&mut kids, LIMIT);
    }
    assert_gone(&name);
}

#[cfg(feature = "async")]
mod tokio_topic {
    use super::*;

    const IN: u64 = 6000;
    const OUT: u64 = 3000;

    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn one_task_receives_and_publishes_dropping_futures_at_random() {
        const TEST: &str =
            "tokio_topic::one_task_receives_and_publishes_dropping_futures_at_random";
        if let Some(arg) = role(TEST) {
            let (name, what) = arg.split_once(',').unwrap();
            let mut seed = 0x1234_5678 ^ u64::from(what.as_bytes()[0]);
            if what == "in" {
                let topic = TypedTopic::<u64>::open(format!("{name}-in").as_str()).unwrap();
                let mut tx = topic.publisher().unwrap();
                for i in 0..IN {
                    jitter(&mut seed);
                    tx.publish_timeout(&i, LIMIT).unwrap();
                }
            } else {
                let topic = TypedTopic::<u64>::open(format!("{name}-out").as_str()).unwrap();
                let mut rx = topic.subscriber().unwrap();
                for i in 0..OUT {
                    jitter(&mut seed);
                    assert_eq!(*rx.recv_timeout(LIMIT).unwrap(), i);
                }
            }
            return;
        }
        let name = unique("topic-tokio");
        {
            let incoming = TypedTopic::<u64>::create(format!("{name}-in").as_str(), 8).unwrap();
            let outgoing = TypedTopic::<u64>::create(format!("{name}-out").as_str(), 4).unwrap();
            let mut rx = incoming.subscriber().unwrap();
            let mut kids = vec![spawn(TEST, &format!("{name},in"))];
            kids.push(spawn(TEST, &format!("{name},out")));
            until(|| outgoing.subscriber_count(), 1);
            let mut tx = outgoing.publisher().unwrap();
            {
                let f = rx.recv_async();
                is_send(&f);
            }
            {
                let f = tx.publish_async(&0);
                is_send(&f);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (got, sent, timer_won) = rt.block_on(async {
                let (mut got, mut sent, mut in_done) = (0u64, 0u64, false);
                let mut seed = 5u64;
                let mut timer_won = 0u32;
                while !(in_done && sent == OUT) {
                    let value = sent;
                    let pick = rand(&mut seed) % 4;
                    let nap = Duration::from_micros(rand(&mut seed) % 100);
                    tokio::select! {
                        r = rx.recv_async(), if !in_done => match r {
                            Ok(v) => {
                                assert_eq!(*v, got);
                                got += 1;
                            }
                            Err(TopicRecvError::Disconnected) => in_done = true,
                            Err(e) => panic!("{e}"),
                        },
                        r = tx.publish_async(&value), if sent < OUT => {
                            assert_eq!(r.unwrap(), value);
                            sent += 1;
                        }
                        _ = tokio::time::sleep(nap), if pick == 0 => timer_won += 1,
                    }
                }
                (got, sent, timer_won)
            });
            assert_eq!((got, sent), (IN, OUT), "every value exactly once, in order");
            assert!(timer_won > 0, "no future was ever dropped while it waited");
            wait_all_ok(&mut kids, LIMIT);
        }
        assert_gone(&name);
    }
}
