//! Seed scenario "进行多个进程间的简单通信" (示例 2: 使用队列(Queue)): two worker processes take
//! multiplication requests from one input [`Queue`] and put the products on one output
//! queue. The parent puts the pairs (1, 2), (3, 4), (5, 6), prints each product as it comes
//! back, sends the end signal and prints all the results.
//!
//! ```text
//! cargo run --example queue_workers
//! # Result: 2
//! # Result: 12
//! # Result: 30
//! # All results: [2, 12, 30]
//! ```
//!
//! Both workers take from the same queue, so which worker computes which product, and the
//! order the products come back in, vary from run to run; the "All results" list is in the
//! order the "Result" lines were printed. Only the parent prints.
//!
//! The parent creates both queues (named after its pid) and re-executes itself as
//! `child-worker INPUT OUTPUT` twice. A request is an `[i64; 2]` and a product an `i64`,
//! copied into and out of shared memory as they are, with no encoding.
//!
//! Difference from the seed: the seed's end signal is one `None` per worker
//! (`input_queue.put(None)`). Here the parent [closes](Queue::close) the input queue instead:
//! each worker's next `get` then reports `Closed` once the queue is drained, however many
//! workers there are (see the `queue_sentinel` example for the `None` style). No call waits
//! more than 10 s; the parent's handles remove both names from /dev/shm on drop.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{GetError, Queue};

const TIMEOUT: Duration = Duration::from_secs(10);
const WORKERS: usize = 2;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, input, output] if role == "child-worker" => worker(input, output),
        [] => parent(),
        _ => Err("usage: queue_workers (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    let input_name = format!("shmq-ex-workers-input-{pid}");
    let output_name = format!("shmq-ex-workers-output-{pid}");
    // input_queue = multiprocessing.Queue(); output_queue = multiprocessing.Queue()
    let input = Queue::<[i64; 2]>::create(input_name.as_str(), 16)?;
    let output = Queue::<i64>::create(output_name.as_str(), 16)?;

    let exe = std::env::current_exe()?;
    let mut processes = Vec::new();
    for _ in 0..WORKERS {
        match Command::new(&exe)
            .args(["child-worker", &input_name, &output_name])
            .spawn()
        {
            Ok(child) => processes.push(child),
            Err(e) => {
                input.close(); // lets the workers already started finish
                join_all(processes)?;
                return Err(e.into());
            }
        }
    }

    let results = exchange(&input, &output);
    // 发送结束信号: closing the input queue is the end signal (also after a failure, so that
    // the workers stop instead of waiting out their timeout).
    input.close();
    let joined = join_all(processes);
    let results = results?;
    joined?;
    println!("All results: {results:?}");
    Ok(())
}

/// Puts every request, then gets one product per request, in the order they come back.
fn exchange(input: &Queue<[i64; 2]>, output: &Queue<i64>) -> Result<Vec<i64>, Box<dyn Error>> {
    let requests: [[i64; 2]; 3] = [[1, 2], [3, 4], [5, 6]];
    for request in requests {
        input.put_timeout(request, TIMEOUT)?;
    }
    let mut results = Vec::new();
    for _ in 0..requests.len() {
        let result = output.get_timeout(TIMEOUT)?;
        println!("Result: {result}");
        results.push(result);
    }
    Ok(results)
}

/// The seed's `worker(input_queue, output_queue)`: answers `[a, b]` with `a * b` until the
/// input queue is closed and drained.
fn worker(input: &str, output: &str) -> Result<(), Box<dyn Error>> {
    let input = Queue::<[i64; 2]>::open(input)?;
    let output = Queue::<i64>::open(output)?;
    loop {
        let [a, b] = match input.get_timeout(TIMEOUT) {
            Ok(pair) => pair,
            Err(GetError::Closed) => return Ok(()), // the end signal
            Err(e) => return Err(e.into()),
        };
        let product = a
            .checked_mul(b)
            .ok_or_else(|| format!("{a} * {b} overflows i64"))?;
        output.put_timeout(product, TIMEOUT)?;
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
