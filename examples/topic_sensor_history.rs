//! A sensor stream on a [`Topic`] with late joiners: the log keeps the last readings, so a
//! subscriber that joins late can start with history ([`StartAt::Oldest`]), with the last
//! reading ([`StartAt::Latest`]) or with the next one ([`StartAt::Next`]), and anyone can
//! read the last reading without subscribing ([`Topic::latest`], a last-value cache).
//!
//! ```text
//! cargo run --example topic_sensor_history
//! # sensor: readings #0..#39 published before anyone listened (the log keeps the last 16)
//! # latest() without subscribing: #39, 21.9 °C
//! # history (StartAt::Oldest): 26 readings, #24 (20.4 °C) to #49 (20.9 °C), none missed
//! # latest (StartAt::Latest): 11 readings, #39 (21.9 °C) to #49 (20.9 °C), none missed
//! # live (StartAt::Next): 10 readings, #40 (20.0 °C) to #49 (20.9 °C), none missed
//! ```
//!
//! The parent creates a [`Policy::Block`] topic of 16 readings (named after its pid) and
//! re-executes itself as `sensor NAME`. The sensor publishes readings #0 to #39 while nobody
//! listens (under Block, with no subscriber nothing holds it back; the log keeps the newest
//! 16), says so on its standard output, and waits for its three listeners. The parent then
//! reads the last value with `latest()` and starts the listeners, re-executed as
//! `listener NAME oldest|latest|next`: one joins at the oldest reading still held (#24), one
//! at the last reading published (#39), one at the next (#40). Once they are all there, the
//! sensor publishes #40 to #49, one every 20 ms, and stops; each listener reads until the
//! sensor is gone (`Disconnected`), checks that its readings came in order with none
//! missing (Block is lossless: the sensor waits for the slowest listener), and prints one
//! line, which the parent passes on in a fixed order. The sensor waits for its listeners
//! only so that every run prints the same lines. No call waits more than 10 s.

use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmq::{Policy, StartAt, Topic, TopicConfig, TopicRecvError};

/// Readings the log holds.
const HISTORY: usize = 16;
/// Readings published before anyone listens, and in all.
const BEFORE: u64 = 40;
const ALL: u64 = 50;
const LISTENERS: [&str; 3] = ["oldest", "latest", "next"];
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "sensor" => sensor(name),
        [role, name, start] if role == "listener" => listener(name, start),
        [] => parent(),
        _ => Err("usage: topic_sensor_history (no arguments)".into()),
    }
}

/// A reading as it travels: its number and the temperature, 12 bytes little-endian.
fn encode(n: u64, celsius: f32) -> [u8; 12] {
    let mut b = [0; 12];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8..].copy_from_slice(&celsius.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<(u64, f32)> {
    let b: &[u8; 12] = b.try_into().ok()?;
    let n = u64::from_le_bytes(b[..8].try_into().ok()?);
    Some((n, f32::from_le_bytes(b[8..].try_into().ok()?)))
}

/// The temperature the sensor reads at reading `n`: a slow sawtooth from 20.0 to 21.9 °C.
fn temperature(n: u64) -> f32 {
    20.0 + (n % 20) as f32 / 10.0
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-sensor-{}", std::process::id());
    let topic = Topic::create_with(
        name.as_str(),
        &TopicConfig::new(HISTORY, 12).policy(Policy::Block),
    )?;
    let exe = std::env::current_exe()?;
    let mut sensor = Command::new(&exe)
        .args(["sensor", &name])
        .stdout(Stdio::piped())
        .spawn()?;
    // The sensor's first line says the history is there.
    let mut from_sensor = BufReader::new(sensor.stdout.take().ok_or("no sensor output")?);
    let mut line = String::new();
    from_sensor.read_line(&mut line)?;
    if line.is_empty() {
        return Err(format!("the sensor stopped: {}", sensor.wait()?).into());
    }
    print!("{line}");

    // A last-value cache: no subscription, no cursor, just the newest reading.
    let last = topic.latest()?.ok_or("nothing published")?;
    let (n, celsius) = decode(&last).ok_or("a reading of the wrong size")?;
    println!("latest() without subscribing: #{n}, {celsius:.1} °C");

    let mut listeners: Vec<Child> = Vec::new();
    for start in LISTENERS {
        listeners.push(
            Command::new(&exe)
                .args(["listener", &name, start])
                .stdout(Stdio::piped())
                .spawn()?,
        );
    }
    let mut failed = Vec::new();
    for (start, mut child) in LISTENERS.into_iter().zip(listeners) {
        let mut report = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut report)?;
        }
        let status = child.wait()?;
        if status.success() {
            print!("{report}");
        } else {
            failed.push(format!("listener {start}: {status}"));
        }
    }
    let status = sensor.wait()?;
    if !status.success() {
        failed.push(format!("sensor: {status}"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; ").into())
    }
}

/// The sensor: history first, then (once three listen) the live readings.
fn sensor(name: &str) -> Result<(), Box<dyn Error>> {
    let topic = Topic::open(name)?;
    let mut publisher = topic.publisher()?;
    for n in 0..BEFORE {
        publisher.publish(&encode(n, temperature(n)))?;
    }
    println!(
        "sensor: readings #0..#{} published before anyone listened (the log keeps the last {})",
        BEFORE - 1,
        topic.slots()
    );
    let deadline = Instant::now() + TIMEOUT;
    while topic.subscriber_count() < LISTENERS.len() {
        if Instant::now() > deadline {
            return Err("the listeners did not come within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for n in BEFORE..ALL {
        std::thread::sleep(Duration::from_millis(20));
        // Block: waits (10 s at most) if the slowest listener is a whole log behind.
        publisher.publish_timeout(&encode(n, temperature(n)), TIMEOUT)?;
    }
    Ok(()) // dropping the publisher tells the listeners the stream ended
}

/// A late listener: joins where `start` says, reads until the sensor is gone.
fn listener(name: &str, start: &str) -> Result<(), Box<dyn Error>> {
    let (label, at) = match start {
        "oldest" => ("history (StartAt::Oldest)", StartAt::Oldest),
        "latest" => ("latest (StartAt::Latest)", StartAt::Latest),
        "next" => ("live (StartAt::Next)", StartAt::Next),
        _ => return Err(format!("no such start: {start}").into()),
    };
    let topic = Topic::open(name)?;
    let mut sub = topic.subscriber_from(at)?;
    let mut readings: Vec<(u64, f32)> = Vec::new();
    loop {
        match sub.recv_timeout(TIMEOUT) {
            Ok(msg) => readings.push(decode(&msg).ok_or("a reading of the wrong size")?),
            Err(TopicRecvError::Disconnected) => break, // the sensor is gone, all read
            Err(e) => return Err(e.into()),
        }
    }
    let (Some(&(first, t0)), Some(&(last, t1))) = (readings.first(), readings.last()) else {
        return Err("no readings".into());
    };
    let in_order = (readings.iter().zip(first..))
        .all(|(&(n, celsius), want)| n == want && celsius == temperature(n));
    if !in_order || last != ALL - 1 {
        return Err(format!("readings missing or out of order: {readings:?}").into());
    }
    println!(
        "{label}: {} readings, #{first} ({t0:.1} °C) to #{last} ({t1:.1} °C), none missed",
        readings.len()
    );
    Ok(())
}
