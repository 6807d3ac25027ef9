//! Seed scenario "命名管道" (named pipe, `os.mkfifo`): two independent processes talk through
//! a pipe that has a name. The writer writes `Hello, receiver!`, the reader reads everything
//! until the writer closes its end and prints it.
//!
//! ```text
//! cargo run --example named_pipe                    # starts a writer and a reader itself
//! # Hello, receiver!
//!
//! cargo run --example named_pipe -- reader fifo_test   # or: two terminals, either first
//! cargo run --example named_pipe -- writer fifo_test
//! ```
//!
//! A named FIFO is a one-way pipe that any process can open by name; here that is a named
//! [`Ring`] in `/dev/shm`. Neither process is the other's parent and either may start first:
//! both call [`Ring::open_or_create`] (the seed's `if not os.path.exists(fifo_path):
//! os.mkfifo(fifo_path)`, without its race), so whichever comes first creates the ring and
//! the other opens it. A reader that must never create it would instead `open` with
//! [`Options::wait_for_creation`], which waits (up to the open timeout) for the writer to
//! create it.
//!
//! Like `open(fifo_path, 'w')`, which blocks until a reader has the FIFO open, the writer
//! waits until a reader holds the ring's receiving end before it writes and leaves: the
//! last process to let go of a name removes it, so a writer that left alone would take its
//! message with it. The reader reads until the writer lets go of its end (`f.read()` up to
//! end of file). Each claims its role with [`Ring::first_producer`] /
//! [`Ring::first_consumer`], so a late process never joins a conversation that already
//! ended.
//!
//! Differences from the seed: the seed starts both processes from one parent with
//! `multiprocessing.Process` (and never removes `fifo_test`); run without arguments, this
//! program does the same with two processes of its own, which share nothing but the name,
//! and the name disappears when both are done. No call waits more than 10 s.

use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

use shmq::{Options, Peer, RecvTimeoutError, Ring};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes the ring buffers (a FIFO's pipe buffer).
const CAPACITY: usize = 4096;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "writer" => writer(name),
        [role, name] if role == "reader" => reader(name),
        [] => both(),
        _ => Err("usage: named_pipe [writer NAME | reader NAME]".into()),
    }
}

/// The seed's `__main__`: a writer and a reader, started as separate processes.
fn both() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-fifo-{}", std::process::id());
    let exe = std::env::current_exe()?;
    let mut p1 = Command::new(&exe).args(["writer", &name]).spawn()?;
    let mut p2 = match Command::new(&exe).args(["reader", &name]).spawn() {
        Ok(p2) => p2,
        Err(e) => {
            let _ = p1.wait(); // the writer gives up after its timeout
            return Err(e.into());
        }
    };
    let (s1, s2) = (p1.wait()?, p2.wait()?);
    if !s1.success() || !s2.success() {
        return Err(format!("writer: {s1}, reader: {s2}").into());
    }
    Ok(())
}

fn open(name: &str) -> Result<Ring, Box<dyn Error>> {
    Ok(Ring::open_or_create(
        Options::new(name).open_timeout(TIMEOUT),
        CAPACITY,
    )?)
}

/// The seed's `sender()`: `with open(fifo_path, 'w') as f: f.write('Hello, receiver!')`.
fn writer(name: &str) -> Result<(), Box<dyn Error>> {
    let ring = open(name)?;
    let mut f = ring.first_producer()?;
    // open(fifo_path, 'w') returns once a reader has the FIFO open.
    let deadline = Instant::now() + TIMEOUT;
    while f.peer() == Peer::NotYet {
        if Instant::now() >= deadline {
            return Err("no reader came within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    f.send_timeout(b"Hello, receiver!", TIMEOUT)?;
    Ok(())
    // Leaving `with`: dropping `f` closes the writing end; the reader sees the end of the
    // stream once it has read the message.
}

/// The seed's `receiver()`: `with open(fifo_path, 'r') as f: print(f.read())`.
fn reader(name: &str) -> Result<(), Box<dyn Error>> {
    let ring = open(name)?;
    let mut f = ring.first_consumer()?;
    let mut text = Vec::new();
    let mut msg = Vec::new();
    loop {
        // Also waits for a writer that has not come yet.
        match f.recv_into_timeout(&mut msg, TIMEOUT) {
            Ok(_) => text.extend_from_slice(&msg),
            Err(RecvTimeoutError::Disconnected) => break, // the writer closed its end
            Err(e) => return Err(e.into()),
        }
    }
    println!("{}", String::from_utf8(text)?);
    Ok(())
}
