//! Seed scenario "进行父进程和子进程间的简单通信" (使用管道): the parent and a child process
//! talk over a duplex [`shmq::Pipe`]. The parent sends "Hello from the main process!", the
//! child prints it and replies "Reply from the worker", the parent prints the reply.
//!
//! ```text
//! cargo run --example pipe_parent_child
//! # Received: Hello from the main process!
//! # Received Reply: Reply from the worker
//! ```
//!
//! `multiprocessing.Pipe()` returns both ends in one process; with shmq the parent creates the
//! pipe (named after its pid) with [`Pipe::create`], which hands it one end, and the child,
//! re-executed as `child-worker NAME`, takes the other end with [`Pipe::open`]. The child
//! prints before it replies and the parent prints after the reply arrives, so the two lines
//! always come in this order. No call waits more than 10 s.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::Pipe;

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-worker" => worker(name),
        [] => parent(),
        _ => Err("usage: pipe_parent_child (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-pipe-{}", std::process::id());
    // parent_conn, child_conn = multiprocessing.Pipe(): the creator holds one end, and its
    // handle keeps the name alive until the child is done.
    let mut conn = Pipe::create(name.as_str(), 4096)?;

    let child = spawn("child-worker", &name)?;
    let talked = talk(&mut conn);
    if talked.is_err() {
        drop(conn); // closing our end tells a child still waiting on it to stop
    }
    // Wait for the child before reporting a failure, so that it is never left running.
    let joined = join(child);
    talked?;
    joined
    // `conn` drops here, removing the name from /dev/shm.
}

/// The seed's main process: send a greeting, print the reply.
fn talk(conn: &mut Pipe) -> Result<(), Box<dyn Error>> {
    conn.send_timeout(b"Hello from the main process!", TIMEOUT)?;
    let reply = String::from_utf8_lossy(&conn.recv_timeout(TIMEOUT)?).into_owned();
    println!("Received Reply: {reply}");
    Ok(())
}

/// The seed's `worker(conn)`.
fn worker(name: &str) -> Result<(), Box<dyn Error>> {
    let mut conn = Pipe::open(name)?;
    let msg = String::from_utf8_lossy(&conn.recv_timeout(TIMEOUT)?).into_owned();
    println!("Received: {msg}");
    conn.send_timeout(b"Reply from the worker", TIMEOUT)?;
    drop(conn); // conn.close(): the parent can still read the reply, then sees Disconnected
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
