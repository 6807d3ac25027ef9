//! Seed scenario "管道的使用及其类型" (1、匿名管道): a sender process sends
//! 'Hello, receiver!' and closes its end; a receiver process receives it and prints it.
//!
//! ```text
//! cargo run --example pipe_sender_receiver
//! # Hello, receiver!
//! # sender closed the pipe
//! ```
//!
//! In the seed both ends of a `multiprocessing.Pipe()` are handed to two children. A shmq
//! [`Pipe`](shmq::Pipe) gives one end to its creator, so here the parent creates a one-way
//! pipe, a [`shmq::Ring`] (the form of `Pipe(duplex=False)`), named after its pid, and the two
//! children, re-executed as `child-sender NAME` and `child-receiver NAME`, open it and claim
//! its two roles: the sender takes the [`Producer`](shmq::Producer), the receiver the
//! [`Consumer`](shmq::Consumer). Either child may start first: the message waits in the ring.
//!
//! Closing is dropping the producer: the receiver then gets every message sent before, and
//! after them `Disconnected`, which it reports as "sender closed the pipe". Both lines come
//! from the receiver, in this order. No call waits more than 10 s.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{RecvTimeoutError, Ring};

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-sender" => sender(name),
        [role, name] if role == "child-receiver" => receiver(name),
        [] => parent(),
        _ => Err("usage: pipe_sender_receiver (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-ring-{}", std::process::id());
    // Kept until the children are done; dropping it removes the name. The parent claims
    // neither role.
    let _pipe = Ring::create(name.as_str(), 4096)?;

    let p1 = spawn("child-sender", &name)?;
    let p2 = spawn("child-receiver", &name)?;
    // Wait for both before reporting either failure, so that no child outlives the name.
    let (r1, r2) = (join(p1), join(p2));
    r1.and(r2)
}

/// The seed's `sender(conn)`.
fn sender(name: &str) -> Result<(), Box<dyn Error>> {
    let mut conn = Ring::open(name)?.producer()?;
    conn.send_timeout(b"Hello, receiver!", TIMEOUT)?;
    drop(conn); // conn.close()
    Ok(())
}

/// The seed's `receiver(conn)`, which also shows what it gets once the sender has closed.
fn receiver(name: &str) -> Result<(), Box<dyn Error>> {
    let mut conn = Ring::open(name)?.consumer()?;
    let msg = String::from_utf8_lossy(&conn.recv_timeout(TIMEOUT)?).into_owned();
    println!("{msg}");
    match conn.recv_timeout(TIMEOUT) {
        Err(RecvTimeoutError::Disconnected) => println!("sender closed the pipe"),
        Ok(extra) => {
            return Err(format!("unexpected second message of {} bytes", extra.len()).into());
        }
        Err(e) => return Err(e.into()),
    }
    drop(conn); // conn.close()
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
