//! Seed scenario "实战示例:使用multiprocessing.Queue" (Python IPC机制全攻略): the parent puts the
//! numbers 0 to 4 and then one `None` end marker per worker on a shmq [`JoinableQueue`];
//! worker processes take them, print "Processed i by worker" and mark each item done with
//! [`task_done`](JoinableQueue::task_done). The parent waits with
//! [`join_timeout`](JoinableQueue::join_timeout) until every item is done, waits for the
//! workers and prints "All tasks completed.".
//!
//! ```text
//! cargo run --example joinable_queue
//! # Processed 0 by worker
//! # Processed 1 by worker
//! # Processed 2 by worker
//! # Processed 3 by worker
//! # Processed 4 by worker
//! # All tasks completed.
//! ```
//!
//! The two workers take items from the same queue, so the "Processed" lines may come in
//! another order; "All tasks completed." always comes last, because every worker prints
//! before it calls `task_done`, and the parent's join returns only after the last of those.
//!
//! The parent creates the queue (named after its pid) and re-executes itself as
//! `child-worker NAME` [`WORKERS`] times; its handle removes the name from /dev/shm on drop.
//! Items are `u64`, and the end marker is [`NONE`] (`u64::MAX`).
//!
//! Differences from the seed:
//! - The seed calls `task_done()` and `join()` on a `multiprocessing.Queue`, which has
//!   neither; they belong to `multiprocessing.JoinableQueue`, the shape of [`JoinableQueue`].
//! - The seed's worker leaves the loop at `None` without calling `task_done()`, so the `None`
//!   stays unfinished and the seed's `q.join()` waits for ever. Here the worker marks the end
//!   marker done too.
//! - The seed has one worker; here there are two, to show that the count of unfinished items
//!   lives in the shared queue: any process may put, take, mark done or join.
//! - `q.join()` is `join_timeout` with a 10 s limit: a worker that died between `get` and
//!   `task_done` would otherwise make the parent wait for ever. No call waits more than 10 s.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{GetError, JoinableQueue};

const TIMEOUT: Duration = Duration::from_secs(10);
const WORKERS: usize = 2;
/// Python's `None`: the end marker, one per worker.
const NONE: u64 = u64::MAX;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-worker" => worker(name),
        [] => parent(),
        _ => Err("usage: joinable_queue (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-joinable-{}", std::process::id());
    let q = JoinableQueue::<u64>::create(name.as_str(), 16)?;

    let exe = std::env::current_exe()?;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        match Command::new(&exe).args(["child-worker", &name]).spawn() {
            Ok(child) => workers.push(child),
            Err(e) => {
                q.close(); // lets the workers already started finish
                join_all(workers)?;
                return Err(e.into());
            }
        }
    }

    let done = put_and_join(&q);
    if done.is_err() {
        q.close(); // workers still waiting for an item see Closed and stop
    }
    let joined = join_all(workers);
    done?;
    joined?;
    println!("All tasks completed.");
    Ok(())
}

/// Puts the work and one end marker per worker, then waits until every item is done.
fn put_and_join(q: &JoinableQueue<u64>) -> Result<(), Box<dyn Error>> {
    for i in 0..5 {
        q.put_timeout(i, TIMEOUT)?;
    }
    for _ in 0..WORKERS {
        q.put_timeout(NONE, TIMEOUT)?; // 发送结束信号
    }
    q.join_timeout(TIMEOUT)?; // 等待队列中所有项目被处理
    Ok(())
}

/// The seed's `worker(q)`: processes items until the end marker, marking each one done.
fn worker(name: &str) -> Result<(), Box<dyn Error>> {
    let q = JoinableQueue::<u64>::open(name)?;
    loop {
        let item = match q.get_timeout(TIMEOUT) {
            Ok(item) => item,
            Err(GetError::Closed) => return Ok(()), // the parent closed it after a failure
            Err(e) => return Err(e.into()),
        };
        if item == NONE {
            q.task_done()?; // the end marker counts as an item too
            return Ok(());
        }
        println!("Processed {item} by worker");
        q.task_done()?;
    }
}

/// Waits for every child, then reports the first that failed.
fn join_all(children: Vec<Child>) -> Result<(), Box<dyn Error>> {
    let mut first_failure = None;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() && first_failure.is_none() {
            first_failure = Some(format!("child {} failed: {status}", child.id()));
        }
    }
    match first_failure {
        Some(failure) => Err(failure.into()),
        None => Ok(()),
    }
}
