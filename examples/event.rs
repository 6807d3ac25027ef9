//! Seed scenario "事件(Event)", with processes instead of threads: one child process prints
//! "waiting for event...", blocks on a shmq [`Event`](shmq::Event) and prints
//! "event has been set." once another child has printed "setting event..." and set it.
//!
//! ```text
//! cargo run --example event
//! ```
//!
//! The parent creates the event (named after its pid), re-executes itself as `child-wait NAME`
//! and `child-set NAME`, and waits for both. The waiter gives up after 10 s rather than hang.

use std::error::Error;
use std::process::{Child, Command};
use std::time::Duration;

use shmq::Event;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "child-wait" => wait_event(name),
        [role, name] if role == "child-set" => set_event(name),
        [] => parent(),
        _ => Err("usage: event (no arguments)".into()),
    }
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-event-{}", std::process::id());
    let _event = Event::create(name.as_str())?; // kept until the children are done

    let waiter = spawn("child-wait", &name)?;
    let setter = spawn("child-set", &name)?;
    join(waiter)?;
    join(setter)
}

/// Child 1: wait for the event.
fn wait_event(name: &str) -> Result<(), Box<dyn Error>> {
    let event = Event::open(name)?;
    println!("waiting for event...");
    if !event.wait_timeout(Duration::from_secs(10))? {
        return Err("the event was not set within 10 s".into());
    }
    println!("event has been set.");
    Ok(())
}

/// Child 2: set the event.
fn set_event(name: &str) -> Result<(), Box<dyn Error>> {
    let event = Event::open(name)?;
    // Give the waiter time to block, so that the wake-up is a real one.
    std::thread::sleep(Duration::from_millis(200));
    println!("setting event...");
    event.set();
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
