//! Seed scenario "普通队列" (multiprocessing 模块中队列的使用及其类型): a producer process puts
//! the numbers 0 to 4 on a shmq [`Queue`] and prints "Produced i" after each; a consumer
//! process gets them and prints "Consumed i" until it gets the `None` end marker (哨兵). The
//! same producer/consumer pair, stopped by `None`, appears in the 内存队列 scenario and in the
//! worker of "实战示例:使用multiprocessing.Queue".
//!
//! ```text
//! cargo run --example queue_sentinel
//! # Produced 0
//! # Consumed 0
//! # Produced 1
//! # ...
//! # Produced 4
//! # Consumed 4
//! ```
//!
//! The two children run at the same time, so their lines interleave differently from run to
//! run; "Produced" lines always come in order 0 to 4, and so do "Consumed" lines.
//!
//! A queue item is plain data ([`shmq::Pod`]) and has no `None`, so the item is an
//! Option-like struct, [`Item`]: `Item::some(i)` or `Item::NONE`. As in the seed, the parent
//! puts the end marker after the producer has exited (`p1.join(); q.put(None)`), so it comes
//! after every number. The parent creates the queue (named after its pid) and re-executes
//! itself as `child-producer NAME` and `child-consumer NAME`; its handle removes the name from
//! /dev/shm on drop. No call waits more than 10 s.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::Queue;

const TIMEOUT: Duration = Duration::from_secs(10);

/// An `Option<u64>` that can live in shared memory: `#[repr(C)]`, no padding, any bits valid.
#[derive(shmq::Pod, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Item {
    /// 1 for `Some(value)`, 0 for `None`.
    is_some: u64,
    value: u64,
}

impl Item {
    /// Python's `None`: the end marker.
    const NONE: Item = Item {
        is_some: 0,
        value: 0,
    };

    fn some(value: u64) -> Item {
        Item { is_some: 1, value }
    }

    fn get(self) -> Option<u64> {
        (self.is_some != 0).then_some(self.value)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-producer" => producer(name),
        [role, name] if role == "child-consumer" => consumer(name),
        [] => parent(),
        _ => Err("usage: queue_sentinel (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-sentinel-{}", std::process::id());
    // q = multiprocessing.Queue(); this handle keeps the name alive until both children are done.
    let q = Queue::<Item>::create(name.as_str(), 8)?;

    let producer = spawn("child-producer", &name)?;
    let consumer = match spawn("child-consumer", &name) {
        Ok(c) => c,
        Err(e) => {
            let _ = join(producer);
            return Err(e.into());
        }
    };
    // p1.join(); q.put(None): the end marker goes after everything the producer put.
    let produced = join(producer);
    let marked = q.put_timeout(Item::NONE, TIMEOUT);
    if produced.is_err() || marked.is_err() {
        q.close(); // the consumer takes what is left, then sees Closed instead of waiting
    }
    let consumed = join(consumer);
    produced?;
    marked?;
    consumed
}

/// The seed's `producer(q)`.
fn producer(name: &str) -> Result<(), Box<dyn Error>> {
    let q = Queue::<Item>::open(name)?;
    for i in 0..5 {
        q.put_timeout(Item::some(i), TIMEOUT)?;
        println!("Produced {i}");
    }
    Ok(())
}

/// The seed's `consumer(q)`: prints items until the `None` end marker.
fn consumer(name: &str) -> Result<(), Box<dyn Error>> {
    let q = Queue::<Item>::open(name)?;
    loop {
        match q.get_timeout(TIMEOUT)?.get() {
            Some(i) => println!("Consumed {i}"),
            None => return Ok(()), // if item is None: break
        }
    }
}

fn spawn(role: &str, name: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([role, name])
        .spawn()
}

fn join(mut child: Child) -> Result<(), Box<dyn Error>> {
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("child {} failed: {status}", child.id()).into())
    }
}
