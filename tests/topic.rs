//! Topic across processes: every subscriber process receives every message, in order.

mod common;

use std::time::Duration;

use common::{role, spawn, unique, wait_all_ok};
use shmq::{Policy, StartAt, Topic, TopicConfig, TopicRecvError};

/// Message `i`: its length (0..=max) and bytes follow from `i`, so any receiver can check it.
fn message(i: u64, max: usize) -> Vec<u8> {
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let len = ((x >> 40) as usize % (max - 7)) + 8;
    let mut m = vec![(x >> 8) as u8; len];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m
}

const MAX: usize = 200;

#[test]
fn block_every_subscriber_process_gets_every_message() {
    const N: u64 = 200_000;
    if let Some(arg) = role("block_every_subscriber_process_gets_every_message") {
        let (name, what) = arg.split_once(':').unwrap();
        let topic = Topic::open(name).unwrap();
        if what == "pub" {
            let mut p = topic.publisher().unwrap();
            for i in 0..N {
                p.publish(&message(i, MAX)).unwrap();
            }
        } else {
            let mut s = topic.subscriber_from(StartAt::Oldest).unwrap();
            for i in 0..N {
                let m = s.recv().unwrap();
                assert_eq!(*m, message(i, MAX)[..], "message {i}");
            }
            drop(s);
        }
        return;
    }
    let name = unique("topic-block");
    let topic = Topic::create(name.as_str(), 256, MAX).unwrap();
    // Subscribers first (they start at the oldest message: nothing is lost before they join).
    let mut kids: Vec<_> = (0..4)
        .map(|_| {
            spawn(
                "block_every_subscriber_process_gets_every_message",
                &format!("{name}:sub"),
            )
        })
        .collect();
    while topic.subscriber_count() < 4 {
        std::thread::sleep(Duration::from_millis(5));
    }
    kids.push(spawn(
        "block_every_subscriber_process_gets_every_message",
        &format!("{name}:pub"),
    ));
    wait_all_ok(&mut kids, Duration::from_secs(120));
    assert_eq!(topic.published(), N);
}

#[test]
fn overwrite_received_plus_lagged_equals_published() {
    const N: u64 = 100_000;
    if let Some(arg) = role("overwrite_received_plus_lagged_equals_published") {
        let topic = Topic::open(arg.as_str()).unwrap();
        let mut p = topic.publisher().unwrap();
        for i in 0..N {
            p.publish(&message(i, MAX)).unwrap();
        }
        return;
    }
    let name = unique("topic-over");
    let topic = Topic::create_with(
        name.as_str(),
        &TopicConfig::new(64, MAX).policy(Policy::Overwrite),
    )
    .unwrap();
    let mut s = topic.subscriber().unwrap();
    let mut kid = spawn("overwrite_received_plus_lagged_equals_published", &name);
    let (mut got, mut lost, mut expect) = (0u64, 0u64, 0u64);
    while got + lost < N {
        match s.recv_timeout(Duration::from_secs(30)) {
            Ok(m) => {
                let i = u64::from_le_bytes(m[..8].try_into().unwrap());
                assert_eq!(i, expect, "in order");
                assert_eq!(*m, message(i, MAX)[..], "never torn");
                got += 1;
                expect = i + 1;
                if got % 1000 == 0 {
                    std::thread::sleep(Duration::from_millis(1)); // be slow
                }
            }
            Err(TopicRecvError::Lagged(n)) => {
                lost += n;
                expect += n;
            }
            Err(e) => panic!("{e} after {got} received, {lost} lost"),
        }
    }
    assert_eq!(got + lost, N);
    wait_all_ok(std::slice::from_mut(&mut kid), Duration::from_secs(60));
    let _ = s;
}
