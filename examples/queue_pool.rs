//! Seed scenario "进程池中的简单通信" (示例 2: 使用队列(Queue)进行进程池中的简单通信): a pool
//! of worker processes takes multiplication requests from a task queue and puts the products
//! on a result queue. The parent submits the pairs (1, 2), (3, 4), (5, 6), prints each
//! product as it is received, shuts the pool down and prints all the results.
//!
//! ```text
//! cargo run --example queue_pool
//! # Received result: 2
//! # Received result: 12
//! # Received result: 30
//! # All results: [2, 12, 30]
//! ```
//!
//! The "Received result" lines come in the order the workers finish, which varies from run
//! to run; "All results" is always in submission order, as `[r.get() for r in results]` is in
//! the seed's 示例 1.
//!
//! shmq has no `Pool` type: a pool is just a fixed set of worker processes fed by a task
//! queue, which is what `multiprocessing.Pool` is inside. The parent creates a task
//! [`Queue`] and a result queue (named after its pid) and re-executes itself as
//! `child-worker TASKS RESULTS` [`POOL_SIZE`] times. Each [`Task`] carries its submission
//! index, and each [`Done`] carries it back, so results can be matched to their tasks
//! (the job of the seed's `AsyncResult`). Only the parent prints.
//!
//! Differences from the seed:
//! - The seed submits a single long-running `worker` task to the pool
//!   (`workers = [pool.apply_async(worker, ...)]`), so only one pool process ever does any
//!   work. Here every pool process runs the worker loop, and any of them may take any task.
//! - The seed's end signal is one `None` per submitted worker. Here the parent
//!   [closes](Queue::close) the task queue, like `pool.close()`: no more tasks are accepted,
//!   and each worker stops once the queue is drained. The parent then waits for every worker,
//!   like `pool.join()`.
//!
//! No call waits more than 10 s; the parent's handles remove both names from /dev/shm on
//! drop.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{GetError, Queue};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Worker processes in the pool (`multiprocessing.Pool(processes=3)`).
const POOL_SIZE: usize = 3;

/// A submitted task: multiply `a` by `b`. `id` is its submission index.
#[derive(shmq::Pod, Clone, Copy, Debug)]
#[repr(C)]
struct Task {
    id: u64,
    a: i64,
    b: i64,
}

/// A finished task: the product for task `id`.
#[derive(shmq::Pod, Clone, Copy, Debug)]
#[repr(C)]
struct Done {
    id: u64,
    product: i64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, tasks, results] if role == "child-worker" => worker(tasks, results),
        [] => parent(),
        _ => Err("usage: queue_pool (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    let tasks_name = format!("shmq-ex-pool-tasks-{pid}");
    let results_name = format!("shmq-ex-pool-results-{pid}");
    let tasks = Queue::<Task>::create(tasks_name.as_str(), 16)?;
    let results = Queue::<Done>::create(results_name.as_str(), 16)?;

    // with multiprocessing.Pool() as pool: start the pool's processes.
    let exe = std::env::current_exe()?;
    let mut pool = Vec::new();
    for _ in 0..POOL_SIZE {
        match Command::new(&exe)
            .args(["child-worker", &tasks_name, &results_name])
            .spawn()
        {
            Ok(child) => pool.push(child),
            Err(e) => {
                tasks.close(); // lets the workers already started finish
                join_all(pool)?;
                return Err(e.into());
            }
        }
    }

    let collected = run_tasks(&tasks, &results);
    // pool.close(); pool.join(): no more tasks, wait for every worker (also after a failure,
    // so that the workers stop instead of waiting out their timeout).
    tasks.close();
    let joined = join_all(pool);
    let collected = collected?;
    joined?;
    println!("All results: {collected:?}");
    Ok(())
}

/// Submits every request, receives one result per request as the workers finish them, and
/// returns the results in submission order.
fn run_tasks(tasks: &Queue<Task>, results: &Queue<Done>) -> Result<Vec<i64>, Box<dyn Error>> {
    let requests: [(i64, i64); 3] = [(1, 2), (3, 4), (5, 6)];
    // pool.apply_async(...) for each request
    for (id, &(a, b)) in (0u64..).zip(&requests) {
        tasks.put_timeout(Task { id, a, b }, TIMEOUT)?;
    }
    let mut collected: Vec<Option<i64>> = vec![None; requests.len()];
    for _ in 0..requests.len() {
        let done = results.get_timeout(TIMEOUT)?;
        let slot = usize::try_from(done.id)
            .ok()
            .and_then(|i| collected.get_mut(i))
            .ok_or_else(|| format!("result for unknown task {}", done.id))?;
        if slot.replace(done.product).is_some() {
            return Err(format!("two results for task {}", done.id).into());
        }
        println!("Received result: {}", done.product);
    }
    // Every slot is filled: one result per task, none twice.
    Ok(collected.into_iter().flatten().collect())
}

/// One pool process: runs tasks until the task queue is closed and drained.
fn worker(tasks: &str, results: &str) -> Result<(), Box<dyn Error>> {
    let tasks = Queue::<Task>::open(tasks)?;
    let results = Queue::<Done>::open(results)?;
    loop {
        let task = match tasks.get_timeout(TIMEOUT) {
            Ok(task) => task,
            Err(GetError::Closed) => return Ok(()), // the pool was closed
            Err(e) => return Err(e.into()),
        };
        let product = task
            .a
            .checked_mul(task.b)
            .ok_or_else(|| format!("{} * {} overflows i64", task.a, task.b))?;
        results.put_timeout(
            Done {
                id: task.id,
                product,
            },
            TIMEOUT,
        )?;
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
