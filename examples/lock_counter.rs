//! Seed scenario "共享变量" (shared variable guarded by a lock), with processes instead of
//! threads: two child processes each add 1 to a shared counter 1,000,000 times, taking a
//! shmq [`Mutex<u64>`](shmq::Mutex) around every increment, and the parent prints the total.
//!
//! ```text
//! cargo run --example lock_counter          # prints "count = 2000000"
//! cargo run --example lock_counter -- 1000  # 1000 increments per child: "count = 2000"
//! ```
//!
//! The parent creates the mutex (named after its pid), re-executes itself twice as
//! `child-increment NAME N`, and waits for both children. The children only open the mutex;
//! the name is removed from `/dev/shm` when the parent's handle drops.

use std::error::Error;
use std::process::{Child, Command};

use shmq::Mutex;

const DEFAULT_ITERATIONS: u64 = 1_000_000;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name, n] if role == "child-increment" => increment(name, n.parse()?),
        [] => parent(DEFAULT_ITERATIONS),
        [n] => parent(
            n.parse()
                .map_err(|e| format!("bad iteration count {n:?}: {e}"))?,
        ),
        _ => Err("usage: lock_counter [ITERATIONS]".into()),
    }
}

fn parent(iterations: u64) -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-lock-{}", std::process::id());
    let counter = Mutex::<u64>::create(name.as_str(), 0)?;

    let exe = std::env::current_exe()?;
    let n = iterations.to_string();
    let children: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["child-increment", &name, &n])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("child {} failed: {status}", child.id()).into());
        }
    }

    let count = *counter.lock()?;
    println!("count = {count}");
    if count != 2 * iterations {
        return Err(format!("expected {}, got {count}", 2 * iterations).into());
    }
    Ok(())
}

/// Child: `count += 1` under the lock, `iterations` times.
fn increment(name: &str, iterations: u64) -> Result<(), Box<dyn Error>> {
    let counter = Mutex::<u64>::open(name)?;
    for _ in 0..iterations {
        // `OwnerDied` (or `Poisoned`) means the other child died (or panicked) holding the
        // lock: the total can no longer come out right, so give up.
        let mut count = counter.lock()?;
        *count += 1;
    }
    Ok(())
}
