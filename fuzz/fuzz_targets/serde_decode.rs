//! Arbitrary bytes as messages on a ring read by a `SerdeReceiver` of a nontrivial type.
//!
//! Each input creates a ring under a fresh name and sends its messages raw, one at a time;
//! the serde receiver must return either a value or a decode error that names the type,
//! never a panic, and must consume the message either way (the ring is empty after each
//! receive). Every value that does decode is sent back through a `SerdeSender` on the same
//! ring and must decode to itself, and its encoding must be the bytes it was decoded from
//! unless postcard accepted a non-canonical form (an over-long varint), in which case the
//! re-encoding must be shorter.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use shmq::{Ring, SerdeReceiver, SerdeRecvError, SerdeSender, TryRecvError};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Msg {
    Empty,
    Text(String),
    Point { x: i64, y: i32, label: Option<char> },
    Batch(Vec<Item>),
    Nested(Box<Inner>),
    Raw(Vec<u8>, bool),
    /// Recursive: a hostile message may nest it without bound (the decoder's limit is 128).
    Wrapped(Option<Box<Msg>>),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Item {
    id: u32,
    ok: bool,
    tag: char,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Inner {
    name: String,
    counts: BTreeMap<String, u16>,
    first: Option<Item>,
    wide: (i16, u128),
    unit: (),
}

fuzz_target!(|messages: Vec<Vec<u8>>| {
    let name = common::Name::new("shmq-fuzz-serde");
    {
        let ring = Ring::create(name.as_str(), 64 * 1024).expect("create ring");
        let mut raw = ring.producer().expect("producer");
        let mut rx = SerdeReceiver::<Msg>::new(ring.consumer().expect("consumer"));
        for msg in messages.iter().take(64) {
            if msg.len() > raw.max_message() {
                continue;
            }
            raw.try_send(msg).expect("an empty ring has room");
            match rx.try_recv() {
                Ok(value) => {
                    let mut tx = SerdeSender::<Msg>::new(raw);
                    tx.try_send(&value).expect("re-encode into an empty ring");
                    raw = tx.into_inner();
                    let mut consumer = rx.into_inner();
                    let bytes = consumer.try_recv().expect("the re-encoding").to_vec();
                    rx = SerdeReceiver::new(consumer);
                    assert!(
                        bytes == *msg || bytes.len() < msg.len(),
                        "{value:?} decoded from {msg:?} re-encodes as {bytes:?}"
                    );
                    raw.try_send(&bytes).expect("an empty ring has room");
                    assert_eq!(rx.try_recv().expect("the re-encoding decodes"), value);
                }
                Err(SerdeRecvError::Decode(e)) => {
                    assert!(e.type_name.ends_with("Msg"), "{e}");
                    assert_eq!(e.len, msg.len());
                }
                Err(e) => panic!("not a decode error: {e}"),
            }
            assert_eq!(
                rx.try_recv(),
                Err(SerdeRecvError::Recv(TryRecvError::Empty)),
                "the message was consumed"
            );
        }
    }
    name.assert_unlinked();
});
