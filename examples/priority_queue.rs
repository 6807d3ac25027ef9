//! Seed scenario "优先级队列" (multiprocessing 模块中队列的使用及其类型): a producer process puts
//! a high-priority and a low-priority message on a shmq [`PriorityQueue`] and prints
//! "Messages sent"; a consumer process gets them smallest priority number first and prints
//! each until the `None` end marker.
//!
//! ```text
//! cargo run --example priority_queue
//! # Messages sent
//! # Consumed high-priority message with priority 1
//! # Consumed low-priority message with priority 2
//! ```
//!
//! An item is a [`Message`]: a priority and the text in a fixed 32-byte array (queue items
//! are plain data, [`shmq::Pod`], so no `String`). Its derived `Ord` compares the priority
//! first, like the seed's `(priority, text)` tuples. The end marker is [`Message::NONE`],
//! whose priority `u64::MAX` is larger than any real message's, so it comes out last. The
//! parent creates the queue (named after its pid) and re-executes itself as
//! `child-producer NAME` and `child-consumer NAME`; its handle removes the name from /dev/shm
//! on drop. No call waits more than 10 s.
//!
//! Differences from the seed:
//! - `multiprocessing` has no `PriorityQueue` (and Python could not compare the seed's `None`
//!   with its tuples); [`PriorityQueue`] is shmq's own.
//! - The producer puts the low-priority message first, so that the order they come out in
//!   shows the priorities at work.
//! - The seed starts the consumer together with the producer, so the consumer may take the
//!   first message before the second is put, and then prints them in the order they were put.
//!   Here the consumer starts once the producer has exited and the parent has put the end
//!   marker (`p1.join(); q.put(None)`), so it always finds both messages waiting and prints
//!   them smallest first.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::PriorityQueue;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A message with a priority: smaller numbers come out first.
#[derive(shmq::Pod, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C)]
struct Message {
    priority: u64,
    /// UTF-8 text, padded with zero bytes.
    text: [u8; 32],
}

impl Message {
    /// Python's `None`: the end marker, larger than every real message.
    const NONE: Message = Message {
        priority: u64::MAX,
        text: [0; 32],
    };

    /// A message; `text` must fit in 32 bytes.
    fn new(priority: u64, text: &str) -> Result<Message, String> {
        if priority == u64::MAX {
            return Err("priority u64::MAX is the end marker's".into());
        }
        let mut m = Message {
            priority,
            text: [0; 32],
        };
        m.text
            .get_mut(..text.len())
            .ok_or_else(|| format!("{text:?} is longer than 32 bytes"))?
            .copy_from_slice(text.as_bytes());
        Ok(m)
    }

    fn is_none(&self) -> bool {
        self.priority == u64::MAX
    }

    fn text(&self) -> String {
        let len = self.text.iter().position(|&b| b == 0).unwrap_or(32);
        String::from_utf8_lossy(&self.text[..len]).into_owned()
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-producer" => producer(name),
        [role, name] if role == "child-consumer" => consumer(name),
        [] => parent(),
        _ => Err("usage: priority_queue (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-priority-{}", std::process::id());
    // q = multiprocessing.PriorityQueue(); kept until both children are done.
    let q = PriorityQueue::<Message>::create(name.as_str(), 8)?;

    join(spawn("child-producer", &name)?)?; // p1.start(); p1.join()
    q.put_timeout(Message::NONE, TIMEOUT)?; // q.put(None)
    join(spawn("child-consumer", &name)?) // p2.start(); p2.join()
}

/// The seed's `producer(q)`, low priority first.
fn producer(name: &str) -> Result<(), Box<dyn Error>> {
    let q = PriorityQueue::<Message>::open(name)?;
    q.put_timeout(Message::new(2, "low-priority message")?, TIMEOUT)?;
    q.put_timeout(Message::new(1, "high-priority message")?, TIMEOUT)?;
    println!("Messages sent");
    Ok(())
}

/// The seed's `consumer(q)`: prints messages, smallest priority first, until the end marker.
fn consumer(name: &str) -> Result<(), Box<dyn Error>> {
    let q = PriorityQueue::<Message>::open(name)?;
    loop {
        let item = q.get_timeout(TIMEOUT)?;
        if item.is_none() {
            return Ok(()); // if item is None: break
        }
        println!("Consumed {} with priority {}", item.text(), item.priority);
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
