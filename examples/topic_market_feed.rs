//! A market-data feed on a [`Topic`]: one publisher process sends quotes, three subscriber
//! processes each receive the whole stream. Two keep up; one is deliberately slow, and
//! because the topic's policy is [`Policy::Overwrite`] the feed never waits for it: the slow
//! one is lapped, told how many quotes it lost (`TopicRecvError::Lagged(n)`), and carries
//! on from the oldest quote still in the log.
//!
//! ```text
//! cargo run --example topic_market_feed
//! # published 5000 quotes to 3 subscribers
//! # fast-1: received 5000, lost 0 (never lagged)
//! # fast-2: received 5000, lost 0 (never lagged)
//! # slow: received 882, lost 4118 (lagged 327 times, at most 24 quotes at once)
//! # every subscriber: received + lost = 5000
//! ```
//!
//! Once lapped, the slow subscriber reads at the tail of the log, where the feed soon
//! overwrites again: it is lapped over and over, a few quotes each time, as a consumer that
//! cannot keep up with a live feed should be. Its numbers vary from run to run (they depend
//! on how the processes are scheduled), and on a busy machine a fast one may fall behind now
//! and then too. What never varies: every subscriber accounts for every quote, received or
//! reported lost, and receives the ones it gets in order and whole.
//!
//! The parent creates the topic (named after its pid), re-executes itself three times as
//! `subscriber NAME LABEL`, waits until the three have joined (they start at the next quote,
//! so none misses the beginning), and then publishes: 5000 quotes, paced like a live feed
//! (a pause every few quotes, about a second in all). Each quote is 24 bytes: its tick
//! number, a symbol and a bid and ask in cents. Dropping the publisher ends the stream; each
//! subscriber then gets `Disconnected` once it has read what is left, prints one summary
//! line on its standard output (a pipe to the parent), and exits. The slow one spends 3 ms
//! on each quote, about fifteen times longer than the feed takes to publish one; the log
//! holds 512 quotes, so it has at most 1.5 s of catching up to do at the end.
//!
//! While it runs, `shmq inspect shmq-ex-feed-PID` in another terminal shows each
//! subscriber's process, position, lag and losses (`shmq ls` sums them up in one line).
//! No call waits more than 10 s.

use std::error::Error;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmq::{Policy, Topic, TopicConfig, TopicRecvError};

const QUOTES: u64 = 5000;
/// Quotes the log holds: how far a subscriber may fall behind before it loses any.
const SLOTS: usize = 512;
/// The feed publishes this many quotes, then pauses a millisecond.
const BURST: u64 = 5;
/// What the slow subscriber spends on each quote.
const SLOW: Duration = Duration::from_millis(3);
const SUBSCRIBERS: [&str; 3] = ["fast-1", "fast-2", "slow"];
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name, label] if role == "subscriber" => subscriber(name, label),
        [] => feed(),
        _ => Err("usage: topic_market_feed (no arguments)".into()),
    }
}

/// One quote, as it travels: `tick`, `symbol`, `bid`, `ask` (cents), little-endian.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Quote {
    tick: u64,
    symbol: [u8; 8],
    bid: u32,
    ask: u32,
}

impl Quote {
    const SIZE: usize = 24;

    /// The feed's quote number `tick`: three symbols in turn, prices wandering a little.
    fn at(tick: u64) -> Quote {
        let symbols = [*b"ACME\0\0\0\0", *b"BOLT\0\0\0\0", *b"CRUX\0\0\0\0"];
        let bid = 10_000 + (tick * 37 % 200) as u32;
        Quote {
            tick,
            symbol: symbols[(tick % 3) as usize],
            bid,
            ask: bid + 5,
        }
    }

    fn to_bytes(self) -> [u8; Quote::SIZE] {
        let mut b = [0; Quote::SIZE];
        b[..8].copy_from_slice(&self.tick.to_le_bytes());
        b[8..16].copy_from_slice(&self.symbol);
        b[16..20].copy_from_slice(&self.bid.to_le_bytes());
        b[20..].copy_from_slice(&self.ask.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Quote> {
        let b: &[u8; Quote::SIZE] = b.try_into().ok()?;
        Some(Quote {
            tick: u64::from_le_bytes(b[..8].try_into().ok()?),
            symbol: b[8..16].try_into().ok()?,
            bid: u32::from_le_bytes(b[16..20].try_into().ok()?),
            ask: u32::from_le_bytes(b[20..].try_into().ok()?),
        })
    }
}

/// The parent: creates the topic, starts the subscribers, publishes, prints their reports.
fn feed() -> Result<(), Box<dyn Error>> {
    let name = format!("shmq-ex-feed-{}", std::process::id());
    let config = TopicConfig::new(SLOTS, Quote::SIZE).policy(Policy::Overwrite);
    let topic = Topic::create_with(name.as_str(), &config)?;

    let exe = std::env::current_exe()?;
    let mut children: Vec<Child> = Vec::new();
    for label in SUBSCRIBERS {
        let child = Command::new(&exe)
            .args(["subscriber", &name, label])
            .stdout(Stdio::piped())
            .spawn()?;
        children.push(child);
    }
    // Publish only once all three listen: they start at the next quote.
    let deadline = Instant::now() + TIMEOUT;
    while topic.subscriber_count() < SUBSCRIBERS.len() {
        if Instant::now() > deadline {
            for child in &mut children {
                let _ = child.kill();
            }
            return Err("the subscribers did not join within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    let mut publisher = topic.publisher()?;
    for tick in 0..QUOTES {
        // Overwrite: never waits, however far behind a subscriber is.
        publisher.publish(&Quote::at(tick).to_bytes())?;
        if tick % BURST == BURST - 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(publisher); // the end of the stream: subscribers get Disconnected after the rest
    println!(
        "published {} quotes to {} subscribers",
        topic.published(),
        SUBSCRIBERS.len()
    );

    let mut failed = None;
    for (label, mut child) in SUBSCRIBERS.into_iter().zip(children) {
        let mut report = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut report)?;
        }
        let status = child.wait()?;
        match check(&report, topic.published()) {
            Some(()) if status.success() => print!("{report}"),
            _ => failed = Some(format!("subscriber {label} failed ({status}): {report:?}")),
        }
    }
    if let Some(failure) = failed {
        return Err(failure.into());
    }
    println!("every subscriber: received + lost = {}", topic.published());
    Ok(())
}

/// Whether a report `LABEL: received R, lost L (...)` adds up to `published`.
fn check(report: &str, published: u64) -> Option<()> {
    let (_, numbers) = report.split_once(": received ")?;
    let (received, rest) = numbers.split_once(", lost ")?;
    let lost = rest.split(' ').next()?;
    let sum = received.parse::<u64>().ok()? + lost.parse::<u64>().ok()?;
    (sum == published).then_some(())
}

/// A subscriber process: reads the whole stream (slowly, if it is the slow one), checking
/// every quote, and prints what it received and what it was told it lost.
fn subscriber(name: &str, label: &str) -> Result<(), Box<dyn Error>> {
    let topic = Topic::open(name)?;
    let mut sub = topic.subscriber()?;
    let slow = label == "slow";
    let (mut received, mut lost, mut lags, mut worst) = (0u64, 0u64, 0u64, 0u64);
    let mut expect = 0; // the next tick, in order
    loop {
        match sub.recv_timeout(TIMEOUT) {
            Ok(msg) => {
                let quote = Quote::from_bytes(&msg).ok_or("a quote of the wrong size")?;
                if quote != Quote::at(expect) || msg.seq() != expect {
                    return Err(format!("expected quote {expect}, got {quote:?}").into());
                }
                drop(msg); // done with the message: its slot may be reused
                received += 1;
                expect += 1;
                if slow {
                    std::thread::sleep(SLOW); // "analysing" the quote
                }
            }
            // Lapped: `n` quotes were overwritten before we read them; the next receive
            // returns the oldest one still in the log.
            Err(TopicRecvError::Lagged(n)) => {
                lost += n;
                lags += 1;
                worst = worst.max(n);
                expect += n;
            }
            Err(TopicRecvError::Disconnected) => break, // the feed ended, all read
            Err(e) => return Err(e.into()),
        }
    }
    let lagged = match lags {
        0 => "never lagged".to_owned(),
        1 => format!("lagged once, {worst} quotes"),
        _ => format!("lagged {lags} times, at most {worst} quotes at once"),
    };
    println!("{label}: received {received}, lost {lost} ({lagged})");
    Ok(())
}
