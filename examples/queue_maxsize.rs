//! Seed scenario "队列" (python语法入门之进程间通信): a bounded queue, `Queue(3)`, and the
//! "基于队列实现进程间通信" snippets that follow it.
//!
//! 1. 代码实现 / 常用方法, in one process as in the seed: a [`Queue`] of capacity 3 takes three
//!    items and is then full, so a fourth `try_put` fails with `Full` and a `put_timeout`
//!    with `Timeout`, each handing the item back; the three items come out in order, and the
//!    empty queue makes `try_get` fail with `Empty` and `get_timeout` with `Timeout`.
//! 2. A child process puts "hello" on a queue, and the parent gets and prints it.
//! 3. A producer process puts "hello big baby!" on a queue, and a consumer process gets and
//!    prints it.
//!
//! ```text
//! cargo run --example queue_maxsize
//! # 队列已经满了: try_put gave 4 back
//! # 队列已经满了: put_timeout gave 4 back after 100ms
//! # is_full: true
//! # 1
//! # 2
//! # 3
//! # 队列已经空了: try_get found nothing
//! # 队列已经空了: get_timeout found nothing after 100ms
//! # is_empty: true
//! # hello
//! # hello big baby!
//! ```
//!
//! Parts 2 and 3 send strings, so their queues are [`ByteQueue`]s (variable-size byte
//! messages). The parent creates every queue (named after its pid) and re-executes itself as
//! `child-f NAME`, `child-producer NAME` and `child-consumer NAME`; its handles remove the
//! names from /dev/shm on drop.
//!
//! Differences from the seed:
//! - The seed puts `3` three times; here the items are 1, 2, 3, so their order shows.
//! - The seed's fourth `q.put(3)` and fourth `q.get()` block forever (its comments say so);
//!   here they are `put_timeout` and `get_timeout` with a 100 ms limit, which return the
//!   timeout instead. `put_nowait` and `get_nowait` are `try_put` and `try_get`; a failed put
//!   gives the item back instead of dropping it.
//! - The seed never waits for its producer and consumer; here the parent waits for both.
//!
//! No call waits more than 10 s.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{ByteQueue, GetError, PutError, Queue};

const TIMEOUT: Duration = Duration::from_secs(10);
/// How long the demonstrations of a full or empty queue wait.
const SHORT: Duration = Duration::from_millis(100);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-f" => f(name),
        [role, name] if role == "child-producer" => producer(name),
        [role, name] if role == "child-consumer" => consumer(name),
        [] => parent(),
        _ => Err("usage: queue_maxsize (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    bounded(&format!("shmq-ex-maxsize-{pid}"))?;
    child_puts(&format!("shmq-ex-maxsize-f-{pid}"))?;
    producer_consumer(&format!("shmq-ex-maxsize-pc-{pid}"))
}

/// Part 1: `q = Queue(3)` and its common methods.
fn bounded(name: &str) -> Result<(), Box<dyn Error>> {
    let q = Queue::<u64>::create(name, 3)?; // a queue that holds at most 3 items
    for i in 1..=3 {
        q.put_timeout(i, TIMEOUT)?;
    }
    // put_nowait on a full queue fails at once, and the item comes back.
    match q.try_put(4) {
        Err(PutError::Full(v)) => println!("队列已经满了: try_put gave {v} back"),
        other => return Err(format!("try_put on a full queue: {other:?}").into()),
    }
    // q.put(4) would wait for room for ever; put_timeout gives up.
    match q.put_timeout(4, SHORT) {
        Err(PutError::Timeout(v)) => {
            println!("队列已经满了: put_timeout gave {v} back after {SHORT:?}")
        }
        other => return Err(format!("put_timeout on a full queue: {other:?}").into()),
    }
    println!("is_full: {}", q.is_full());

    for _ in 1..=3 {
        println!("{}", q.get_timeout(TIMEOUT)?);
    }
    // get_nowait on an empty queue fails at once.
    match q.try_get() {
        Err(GetError::Empty) => println!("队列已经空了: try_get found nothing"),
        other => return Err(format!("try_get on an empty queue: {other:?}").into()),
    }
    // q.get() would wait for an item for ever; get_timeout gives up.
    match q.get_timeout(SHORT) {
        Err(GetError::Timeout) => {
            println!("队列已经空了: get_timeout found nothing after {SHORT:?}")
        }
        other => return Err(format!("get_timeout on an empty queue: {other:?}").into()),
    }
    println!("is_empty: {}", q.is_empty());
    Ok(())
}

/// Part 2: `p = Process(target=f, args=(q,))`; the parent prints what `f` put.
fn child_puts(name: &str) -> Result<(), Box<dyn Error>> {
    let q = ByteQueue::create(name, 4, 64)?;
    let child = spawn("child-f", name)?;
    let got = q
        .get_timeout(TIMEOUT)
        .map(|msg| String::from_utf8_lossy(&msg).into_owned());
    let joined = join(child);
    println!("{}", got?);
    joined
}

/// The seed's `f(q)`.
fn f(name: &str) -> Result<(), Box<dyn Error>> {
    let q = ByteQueue::open(name)?;
    q.put_timeout(b"hello", TIMEOUT)?;
    Ok(())
}

/// Part 3: a producer process and a consumer process share a queue.
fn producer_consumer(name: &str) -> Result<(), Box<dyn Error>> {
    let _q = ByteQueue::create(name, 4, 64)?; // kept until both children are done
    let producer = spawn("child-producer", name)?;
    let consumer = spawn("child-consumer", name);
    let produced = join(producer);
    let consumed = consumer.map_err(Box::from).and_then(join);
    produced?;
    consumed
}

/// The seed's `producer(q)`.
fn producer(name: &str) -> Result<(), Box<dyn Error>> {
    let q = ByteQueue::open(name)?;
    q.put_timeout(b"hello big baby!", TIMEOUT)?;
    Ok(())
}

/// The seed's `consumer(q)`.
fn consumer(name: &str) -> Result<(), Box<dyn Error>> {
    let q = ByteQueue::open(name)?;
    println!("{}", String::from_utf8_lossy(&q.get_timeout(TIMEOUT)?));
    Ok(())
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
