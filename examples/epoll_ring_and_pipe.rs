//! An epoll loop that serves a shmq [`Ring`](shmq::Ring) and an OS pipe side by side, through
//! a [`Readiness`](shmq::Readiness) file descriptor.
//!
//! ```text
//! cargo run --example epoll_ring_and_pipe
//! # ring: tick 0
//! # pipe: line 0
//! # ...               (the two streams interleave as they arrive)
//! # ring closed after 5 messages
//! # pipe closed after 5 lines
//! ```
//!
//! The parent creates the ring (named after its pid), re-executes itself as `child NAME` with
//! its stdout connected to an OS pipe, and puts both in one epoll set: the Readiness
//! descriptor and the pipe's read end. The child sends "tick N" on the ring and writes
//! "line N" to its stdout, alternately, with pauses, then exits, which closes both: the ring
//! reports `Disconnected` once drained, the pipe end of file. The parent waits at most 10 s
//! for anything.

use std::error::Error;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::event::{Timespec, epoll};
use shmq::{Readiness, Ring, TryRecvError};

const COUNT: usize = 5;
const RING: u64 = 1;
const PIPE: u64 = 2;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child" => child(name),
        [] => parent(),
        _ => Err("usage: epoll_ring_and_pipe (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-epoll-{}", std::process::id());
    let ring = Ring::create(name.as_str(), 4096)?;
    let mut rx = ring.consumer()?;
    let mut kid = Command::new(std::env::current_exe()?)
        .args(["child", &name])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut pipe = kid.stdout.take().ok_or("no pipe to the child")?;

    // The ring's readiness as a descriptor, beside the pipe, in one epoll set.
    let mut readiness = Readiness::new()?;
    let on_ring = readiness.recv(&rx)?;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let level = epoll::EventFlags::IN; // level-triggered, the default
    epoll::add(&ep, &readiness, epoll::EventData::new_u64(RING), level)?;
    epoll::add(&ep, &pipe, epoll::EventData::new_u64(PIPE), level)?;

    let (mut ticks, mut lines) = (0, 0);
    let (mut ring_open, mut pipe_open) = (true, true);
    let mut text = Vec::new();
    let mut events = Vec::with_capacity(4);
    while ring_open || pipe_open {
        events.clear();
        let ten_seconds = Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&ten_seconds),
        )?;
        if events.is_empty() {
            return Err("nothing happened for 10 s".into());
        }
        for event in &events {
            let data = event.data;
            if data.u64() == RING {
                // Which registrations are ready; none: the descriptor is cleared.
                for i in readiness.ready() {
                    assert_eq!(i, on_ring);
                    // Take everything there is now; the loop comes back if more arrives.
                    loop {
                        match rx.try_recv() {
                            Ok(msg) => {
                                println!("ring: {}", String::from_utf8_lossy(&msg));
                                ticks += 1;
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                println!("ring closed after {ticks} messages");
                                readiness.remove(on_ring);
                                ring_open = false;
                                break;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            } else {
                // Readable, so one read does not block.
                let mut buf = [0u8; 1024];
                let n = pipe.read(&mut buf)?;
                text.extend_from_slice(&buf[..n]);
                while let Some(end) = text.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = text.drain(..=end).collect();
                    println!("pipe: {}", String::from_utf8_lossy(&line).trim_end());
                    lines += 1;
                }
                if n == 0 {
                    println!("pipe closed after {lines} lines");
                    epoll::delete(&ep, pipe.as_fd())?;
                    pipe_open = false;
                }
            }
        }
    }
    let status = kid.wait()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    Ok(())
}

/// The child: ticks on the ring and lines on stdout, alternately, then exit.
fn child(name: &str) -> Result<(), Box<dyn Error>> {
    let mut tx = Ring::open(name)?.producer()?;
    let mut out = std::io::stdout();
    for i in 0..COUNT {
        tx.send(format!("tick {i}").as_bytes())?;
        std::thread::sleep(Duration::from_millis(20));
        writeln!(out, "line {i}")?;
        out.flush()?;
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
