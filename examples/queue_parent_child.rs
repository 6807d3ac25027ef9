//! Seed scenario "进行父进程和子进程间的简单通信" (2. 使用队列(Queue), 示例代码): the parent and
//! a child process talk through shmq queues. The parent puts "Hello from the main process!",
//! the child gets and prints it and puts "Reply from the worker", the parent gets and prints
//! the reply.
//!
//! ```text
//! cargo run --example queue_parent_child
//! # Received: Hello from the main process!
//! # Received Reply: Reply from the worker
//! ```
//!
//! The messages are strings, so the queues are [`ByteQueue`]s (variable-size byte messages).
//! The parent creates them (named after its pid) and re-executes itself as
//! `child-worker TO_CHILD TO_PARENT`; the child opens them by name.
//!
//! Difference from the seed: the seed uses one queue for both directions. Its parent puts the
//! greeting and then gets from the same queue at once, so it can take its own greeting back
//! before the child does (and the child then waits forever). Here each direction has its own
//! queue, so each message can only reach the other side. The child prints before it replies
//! and the parent prints after the reply arrives, so the two lines always come in this order.
//! No call waits more than 10 s; the parent's handles remove both names from /dev/shm.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::ByteQueue;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages a queue holds, and the longest message in bytes.
const CAPACITY: usize = 4;
const MAX_MESSAGE: usize = 256;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, to_child, to_parent] if role == "child-worker" => worker(to_child, to_parent),
        [] => parent(),
        _ => Err("usage: queue_parent_child (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    let to_child_name = format!("shmq-ex-queue-to-child-{pid}");
    let to_parent_name = format!("shmq-ex-queue-to-parent-{pid}");
    // queue = multiprocessing.Queue(), once per direction. The creator's handles keep the
    // names alive until the child is done, and remove them on drop.
    let to_child = ByteQueue::create(to_child_name.as_str(), CAPACITY, MAX_MESSAGE)?;
    let to_parent = ByteQueue::create(to_parent_name.as_str(), CAPACITY, MAX_MESSAGE)?;

    let child = spawn(&["child-worker", &to_child_name, &to_parent_name])?;
    let talked = talk(&to_child, &to_parent);
    if talked.is_err() {
        to_child.close(); // a child still waiting for the greeting sees Closed and stops
    }
    // Wait for the child before reporting a failure, so that it is never left running.
    let joined = join(child);
    talked?;
    joined
}

/// The seed's main process: put a greeting, get and print the reply.
fn talk(to_child: &ByteQueue, to_parent: &ByteQueue) -> Result<(), Box<dyn Error>> {
    to_child.put_timeout(b"Hello from the main process!", TIMEOUT)?;
    let reply = String::from_utf8_lossy(&to_parent.get_timeout(TIMEOUT)?).into_owned();
    println!("Received Reply: {reply}");
    Ok(())
}

/// The seed's `worker(queue)`.
fn worker(to_child: &str, to_parent: &str) -> Result<(), Box<dyn Error>> {
    let inbox = ByteQueue::open(to_child)?;
    let outbox = ByteQueue::open(to_parent)?;
    let msg = String::from_utf8_lossy(&inbox.get_timeout(TIMEOUT)?).into_owned();
    println!("Received: {msg}");
    outbox.put_timeout(b"Reply from the worker", TIMEOUT)?;
    Ok(())
}

fn spawn(args: &[&str]) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?).args(args).spawn()
}

fn join(mut child: Child) -> Result<(), Box<dyn Error>> {
    let status = child.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("child {} failed: {status}", child.id()).into())
    }
}
