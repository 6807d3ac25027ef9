//! Seed scenario "进行多个进程间的简单通信" (示例 1: 使用管道): two worker processes, each
//! with a duplex [`shmq::Pipe`] of its own to the parent, answer multiplication requests. The
//! parent sends the pairs (1, 2), (3, 4), (5, 6) to the workers in turn, prints each product
//! as it comes back, closes the pipes as the end signal and prints all the results.
//!
//! ```text
//! cargo run --example pipe_workers
//! # Result: 2
//! # Result: 12
//! # Result: 30
//! # All results: [2, 12, 30]
//! ```
//!
//! The parent creates one pipe per worker (named after its pid) and re-executes itself as
//! `child-worker NAME` for each. Each end is [`split`](shmq::Pipe::split) into its two
//! directions and wrapped in typed ends: the parent sends [`Sender<[i64; 2]>`](shmq::Sender)
//! requests and receives [`Receiver<i64>`](shmq::Receiver) products, the worker the other way
//! round. Every value is written in place in shared memory, with no encoding.
//!
//! Differences from the seed:
//! - The seed receives `len(requests) // len(parent_conns)` = 3 // 2 = 1 result per pipe, so
//!   it prints only `[2, 12]` and leaves the product of (5, 6) unread in the first pipe. Here
//!   the parent receives one result per request, from the pipe the request went to, in the
//!   order the requests were sent, so every result is printed, always in this order.
//! - The seed's end signal is `conn.send(None)`; here the parent drops its sending half, and
//!   the worker's next receive reports `Disconnected` once it has answered every request.
//!
//! Only the parent prints. No call waits more than 10 s.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{Pipe, Receiver, RecvTimeoutError, Sender};

const TIMEOUT: Duration = Duration::from_secs(10);
const WORKERS: usize = 2;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-worker" => worker(name),
        [] => parent(),
        _ => Err("usage: pipe_workers (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    // One pipe per worker; the parent's ends keep the names alive until the workers are done.
    let names: Vec<String> = (0..WORKERS)
        .map(|i| format!("shmq-ex-worker-{i}-{pid}"))
        .collect();
    let mut requests = Vec::new();
    let mut replies = Vec::new();
    for name in &names {
        let (tx, rx) = Pipe::create(name.as_str(), 4096)?.split();
        requests.push(Sender::<[i64; 2]>::new(tx)?);
        replies.push(Receiver::<i64>::new(rx));
    }

    let exe = std::env::current_exe()?;
    let mut processes = Vec::new();
    for name in &names {
        match Command::new(&exe).args(["child-worker", name]).spawn() {
            Ok(child) => processes.push(child),
            Err(e) => {
                drop(requests); // lets the workers already started finish
                join_all(processes)?;
                return Err(e.into());
            }
        }
    }

    let results = exchange(&mut requests, &mut replies);
    // 发送结束信号: closing the sending halves is the end signal (also after a failure, so
    // that the workers stop instead of waiting out their timeout).
    drop(requests);
    let joined = join_all(processes);
    let results = results?;
    joined?;
    println!("All results: {results:?}");
    Ok(())
    // `replies` drops here, removing the names from /dev/shm.
}

/// Sends the requests round-robin and collects one result per request, in request order.
fn exchange(
    requests: &mut [Sender<[i64; 2]>],
    replies: &mut [Receiver<i64>],
) -> Result<Vec<i64>, Box<dyn Error>> {
    let pairs: [[i64; 2]; 3] = [[1, 2], [3, 4], [5, 6]];
    for (i, pair) in pairs.iter().enumerate() {
        requests[i % requests.len()].send_timeout(pair, TIMEOUT)?;
    }
    let mut results = Vec::new();
    for i in 0..pairs.len() {
        let result = *replies[i % replies.len()].recv_timeout(TIMEOUT)?;
        println!("Result: {result}");
        results.push(result);
    }
    Ok(results)
}

/// The seed's `worker(conn)`: answers `[a, b]` with `a * b` until the parent closes its end.
fn worker(name: &str) -> Result<(), Box<dyn Error>> {
    let (tx, rx) = Pipe::open(name)?.split();
    let mut requests = Receiver::<[i64; 2]>::new(rx);
    let mut replies = Sender::<i64>::new(tx)?;
    loop {
        let [a, b] = match requests.recv_timeout(TIMEOUT) {
            Ok(pair) => *pair,
            Err(RecvTimeoutError::Disconnected) => return Ok(()), // the end signal
            Err(e) => return Err(e.into()),
        };
        let product = a
            .checked_mul(b)
            .ok_or_else(|| format!("{a} * {b} overflows i64"))?;
        replies.send_timeout(&product, TIMEOUT)?;
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
