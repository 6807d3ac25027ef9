//! Seed scenario "进程池中的简单通信" (示例 1: 使用管道(Pipe)进行进程池中的简单通信): a pool of
//! worker processes answers multiplication requests over pipes. The parent submits the pairs
//! (1, 2), (3, 4), (5, 6) to the pool, prints each product as it is received, shuts the pool
//! down and prints all the results.
//!
//! ```text
//! cargo run --example pipe_pool
//! # Received result: 2
//! # Received result: 12
//! # Received result: 30
//! # All results: [2, 12, 30]
//! ```
//!
//! The "Received result" lines come in the order the workers finish, which varies from run
//! to run; "All results" is always in submission order, as `[r.get() for r in results]` is
//! in the seed.
//!
//! shmq has no `Pool` type: the pool is [`POOL_SIZE`] worker processes (this program
//! re-executed as `child-worker PIPE DOORBELL`), each with a duplex [`Pipe`] of its own to
//! the parent, split into typed ends: the parent sends [`Task`]s and receives [`Done`]s, the
//! worker the other way round. Like `Pool.apply_async`, the parent hands each task to a
//! worker that is idle, and the next one to whichever worker answers first.
//!
//! To learn which pipe has an answer without polling them all, every worker rings a shared
//! [`Semaphore`] (the "doorbell") after each answer: the parent sleeps on the doorbell, and
//! each permit means one answer is waiting in some pipe.
//!
//! Differences from the seed:
//! - In the seed, every pool process writes into one shared `child_conn`. A shmq pipe end
//!   belongs to one process, so each worker answers over its own pipe (and the doorbell
//!   plays the part of the shared connection's "something arrived").
//! - The seed's `worker` computes one product per submitted call. Here each pool process
//!   runs a loop, `for task in &mut tasks`, which ends when the parent drops its sending end
//!   (`pool.close()`): the typed receiver's iterator ends once the other end is gone and
//!   every task it sent was answered.
//!
//! Only the parent prints. No call of the parent waits more than 10 s; the parent's handles
//! remove every name from /dev/shm on drop.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{Pipe, Receiver, Semaphore, Sender, TryRecvError};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Worker processes in the pool; fewer than the tasks, so a worker takes a second task.
const POOL_SIZE: usize = 2;

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
        [role, pipe, doorbell] if role == "child-worker" => worker(pipe, doorbell),
        [] => parent(),
        _ => Err("usage: pipe_pool (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    let doorbell_name = format!("shmq-ex-pipepool-doorbell-{pid}");
    let doorbell = Semaphore::create(doorbell_name.as_str(), 0)?;
    // One pipe per pool process; the parent's ends keep the names alive until it is done.
    let names: Vec<String> = (0..POOL_SIZE)
        .map(|i| format!("shmq-ex-pipepool-{i}-{pid}"))
        .collect();
    let mut tasks = Vec::new();
    let mut answers = Vec::new();
    for name in &names {
        let (tx, rx) = Pipe::create(name.as_str(), 4096)?.split();
        tasks.push(Sender::<Task>::new(tx)?);
        answers.push(Receiver::<Done>::new(rx));
    }

    // with multiprocessing.Pool() as pool: start the pool's processes.
    let exe = std::env::current_exe()?;
    let mut pool = Vec::new();
    for name in &names {
        match Command::new(&exe)
            .args(["child-worker", name, &doorbell_name])
            .spawn()
        {
            Ok(child) => pool.push(child),
            Err(e) => {
                drop(tasks); // lets the workers already started finish
                join_all(pool)?;
                return Err(e.into());
            }
        }
    }

    let collected = run_tasks(&mut tasks, &mut answers, &doorbell);
    // Leaving the `with` block: no more tasks (the workers' loops end), wait for the pool
    // (also after a failure, so that the workers stop).
    drop(tasks);
    let joined = join_all(pool);
    let collected = collected?;
    joined?;
    println!("All results: {collected:?}");
    Ok(())
}

/// Submits every request to an idle worker, receives one result per request as the
/// workers finish them, and returns the results in submission order.
fn run_tasks(
    tasks: &mut [Sender<Task>],
    answers: &mut [Receiver<Done>],
    doorbell: &Semaphore,
) -> Result<Vec<i64>, Box<dyn Error>> {
    let requests: [(i64, i64); 3] = [(1, 2), (3, 4), (5, 6)];
    let (workers, mut submitted) = (tasks.len(), 0);
    // pool.apply_async(...): hand a task to `worker`, if any is left.
    let mut submit = |worker: usize| -> Result<(), Box<dyn Error>> {
        if let Some(&(a, b)) = requests.get(submitted) {
            let id = submitted as u64;
            tasks[worker].send_timeout(&Task { id, a, b }, TIMEOUT)?;
            submitted += 1;
        }
        Ok(())
    };
    for worker in 0..workers {
        submit(worker)?; // every worker starts idle
    }

    let mut collected: Vec<Option<i64>> = vec![None; requests.len()];
    for _ in 0..requests.len() {
        // parent_conn.recv(): sleep until some worker has answered.
        if !doorbell.acquire_timeout(TIMEOUT)? {
            return Err("no worker answered within 10 s".into());
        }
        let (worker, done) = waiting_answer(answers)?;
        let slot = usize::try_from(done.id)
            .ok()
            .and_then(|i| collected.get_mut(i))
            .ok_or_else(|| format!("result for unknown task {}", done.id))?;
        if slot.replace(done.product).is_some() {
            return Err(format!("two results for task {}", done.id).into());
        }
        println!("Received result: {}", done.product);
        submit(worker)?; // that worker is idle again
    }
    // Every slot is filled: one result per task, none twice.
    Ok(collected.into_iter().flatten().collect())
}

/// The answer the doorbell announced: the first waiting one, and which worker sent it.
fn waiting_answer(answers: &mut [Receiver<Done>]) -> Result<(usize, Done), Box<dyn Error>> {
    for (worker, answer) in answers.iter_mut().enumerate() {
        match answer.try_recv_value() {
            Ok(done) => return Ok((worker, done)),
            Err(TryRecvError::Empty) => {}
            Err(e) => return Err(format!("worker {worker}: {e}").into()),
        }
    }
    Err("the doorbell rang but no answer is waiting".into())
}

/// One pool process: answers tasks until the parent closes its end of the pipe.
fn worker(pipe: &str, doorbell: &str) -> Result<(), Box<dyn Error>> {
    let doorbell = Semaphore::open(doorbell)?;
    let (tx, rx) = Pipe::open(pipe)?.split();
    let mut tasks = Receiver::<Task>::new(rx);
    let mut answers = Sender::<Done>::new(tx)?;
    // Ends once the parent has dropped its end and every task it sent was taken.
    for task in &mut tasks {
        let task = task?;
        let product = task
            .a
            .checked_mul(task.b)
            .ok_or_else(|| format!("{} * {} overflows i64", task.a, task.b))?;
        answers.send_timeout(
            &Done {
                id: task.id,
                product,
            },
            TIMEOUT,
        )?;
        doorbell.release()?; // the answer is in the pipe: ring
    }
    Ok(())
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
