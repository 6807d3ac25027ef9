//! Seed scenario "手动实现进程间通信" (hand-made IPC from shared memory and a semaphore): a
//! sender process writes `b"Hello, receiver!"` into a raw [`shmq::Segment`] and a receiver
//! process reads and prints it, coordinated by a [`shmq::Semaphore`].
//!
//! ```text
//! cargo run --example raw_segment_semaphore   # prints "Hello, receiver!"
//! ```
//!
//! The seed creates its semaphore with value 1, so its receiver may take it first and read an
//! empty buffer. Here the semaphore is bounded to 1 and starts at **0**: it counts messages
//! ready to read, so the receiver's `acquire` really waits until the sender has written and
//! called `release`. The message is stored as a 4-byte little-endian length and its bytes.
//!
//! The parent creates the segment and the semaphore (named after its pid), re-executes itself
//! as `child-receiver SEG SEM` and `child-sender SEG SEM`, and waits for both.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::{Segment, Semaphore};

const SIZE: usize = 64;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, seg, sem] if role == "child-sender" => sender(seg, sem),
        [role, seg, sem] if role == "child-receiver" => receiver(seg, sem),
        [] => parent(),
        _ => Err("usage: raw_segment_semaphore (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let pid = std::process::id();
    let (seg_name, sem_name) = (
        format!("shmq-ex-raw-{pid}"),
        format!("shmq-ex-rawsem-{pid}"),
    );
    // Kept until the children are done; dropping them removes the names.
    let _segment = Segment::create(seg_name.as_str(), SIZE)?;
    let _ready = Semaphore::create_bounded(sem_name.as_str(), 0, 1)?;

    // Receiver first: it blocks on the semaphore until the sender is done.
    let receiver = spawn("child-receiver", &seg_name, &sem_name)?;
    let sender = spawn("child-sender", &seg_name, &sem_name)?;
    join(receiver)?;
    join(sender)
}

fn sender(seg: &str, sem: &str) -> Result<(), Box<dyn Error>> {
    let (segment, ready) = (Segment::open(seg)?, Semaphore::open(sem)?);
    std::thread::sleep(Duration::from_millis(200)); // as the seed's time.sleep(1)
    let msg = b"Hello, receiver!";
    segment.write(0, &(msg.len() as u32).to_le_bytes())?;
    segment.write(4, msg)?;
    ready.release()?; // publishes the bytes above to whoever acquires
    Ok(())
}

fn receiver(seg: &str, sem: &str) -> Result<(), Box<dyn Error>> {
    let (segment, ready) = (Segment::open(seg)?, Semaphore::open(sem)?);
    if !ready.acquire_timeout(Duration::from_secs(10))? {
        return Err("no message within 10 s".into());
    }
    let mut len = [0u8; 4];
    segment.read(0, &mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > segment.len() - 4 {
        return Err(format!("bad message length {len}").into());
    }
    let mut msg = vec![0u8; len];
    segment.read(4, &mut msg)?;
    println!("{}", String::from_utf8_lossy(&msg));
    Ok(())
}

fn spawn(role: &str, seg: &str, sem: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([role, seg, sem])
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
