//! The Topic section of `shmq bench`: one publisher, every subscriber process receives every
//! message; each figure as a ratio against a baseline measured in the same run.
//!
//! - Publish cost (`topic_publish_ns`, 64 B; one job, two rows): the publisher is this
//!   process (CPU 0), publishing back to back into a [`Policy::Overwrite`] topic while 1 or 64
//!   subscriber processes (CPU 1) receive in [`WaitMode::Blocking`], copying and checking
//!   every message they can and sleeping when they catch up. Overwrite, because under Block
//!   the publisher goes at the pace of its slowest subscriber, and 64 processes sharing one
//!   CPU would make the figure about them, not about publishing. The figure is the
//!   publisher's time per message, in bursts alternating between the two topics (see
//!   [`publish_cost`]); the baseline of the 64-subscriber row is the 1-subscriber row.
//!   Afterwards every subscriber reports what it received and what it was told it lost: the
//!   two must add up to what was published.
//! - Delivery (`topic_delivery_msgs_per_s`, 64 B): one publisher process and 16 subscriber
//!   processes, all unpinned, [`WaitMode::Blocking`] everywhere. `shmq-topic`: one
//!   [`Policy::Block`] topic of 1024 slots; `shmq-rings` (the baseline): 16 SPSC rings of
//!   64 KiB, one per subscriber, the publisher sending each message into each ring in turn.
//!   The figure is messages per second delivered to all 16 subscribers, sampled from
//!   counters the subscribers publish in a control segment; afterwards every subscriber must
//!   have received every message sent, in order (count and sum of sequence numbers).
//! - Latency (`latency_p50_ns`, `latency_p99_ns` of `shmq-topic-busy`, 8 and 64 B): the
//!   ping-pong of the main table through a request topic and a reply topic, both sides in
//!   [`WaitMode::BusyPoll`], run right after `shmq-busy` (the SPSC ring in the same mode),
//!   its baseline.

use std::io::Read;
use std::process::{ChildStdout, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmq::{Policy, Publisher, Ring, Segment, Topic, TopicConfig, TopicRecvError, WaitMode};

use super::{
    Cell, PEER_PATIENCE, Peer, RoundTrip, all_cpus, check_seq, cpus, format_ns, format_rate,
    label_size, print_aligned, seg_name, spawn_peer_on,
};
use crate::cli::out::say;

/// Message size of the publish and delivery rows.
pub(super) const SIZE: usize = 64;
/// Subscriber counts of the publish rows.
pub(super) const PUBLISH_SUBSCRIBERS: [usize; 2] = [1, 64];
/// Subscribers of the delivery rows.
pub(super) const FANOUT: usize = 16;
/// Transports of the delivery rows: the topic and its baseline.
pub(super) const DELIVERY: [&str; 2] = ["shmq-topic", "shmq-rings"];
/// Sizes of the latency rows (each right after `shmq-busy`'s of the same size).
pub(super) const LATENCY_SIZES: [usize; 2] = [8, 64];
/// The latency rows' transport.
pub(super) const LATENCY: &str = "shmq-topic-busy";
/// Slots of the publish and delivery topics.
const SLOTS: usize = 1024;
/// Bytes of each `shmq-rings` ring: about as many 64-byte messages as the topic holds.
const RING_BYTES: usize = 64 << 10;
/// Publishers and subscribers look at the clock, the stop flag and publish their counts
/// every this many messages.
const EVERY: u64 = 256;

/// The baseline of a Topic-section cell and its figure over the baseline's: the 1-subscriber
/// publish cost, the `shmq-rings` delivery, `shmq-busy`'s latency of the same size.
pub(super) fn baseline<'a>(cells: &'a [Cell], c: &Cell) -> Option<(&'a Cell, f64)> {
    let (transport, pairs) = match (c.metric, c.transport) {
        ("topic_publish_ns", _) if c.pairs > 1 => ("shmq-topic", 1),
        ("topic_delivery_msgs_per_s", "shmq-topic") => ("shmq-rings", c.pairs),
        ("latency_p50_ns" | "latency_p99_ns", LATENCY) => ("shmq-busy", 1),
        _ => return None,
    };
    let b = cells.iter().find(|b| {
        b.metric == c.metric && b.size == c.size && b.pairs == pairs && b.transport == transport
    })?;
    Some((b, c.value / b.value))
}

/// Prints the section: every topic figure, its baseline and the ratio.
pub(super) fn print(cells: &[Cell]) {
    say!("\nTopic: one publisher; every subscriber process receives every message.");
    say!("publish: the publisher's time per message (Overwrite; the subscribers, on the other");
    say!("CPU, copy and check what they can and sleep when caught up). delivery: messages/s to");
    say!(
        "all {FANOUT} subscriber processes (Block, blocking waits, 17 processes unpinned) against"
    );
    say!("16 SPSC rings, one per subscriber. latency: busy-poll ping-pong against the ring.");
    say!("ratio = the topic's figure over the baseline's.\n");
    let mut table = vec![vec![
        String::new(),
        "shmq-topic".to_string(),
        "baseline".to_string(),
        "ratio".to_string(),
    ]];
    let mut row = |label: String, c: Option<&Cell>| {
        let show = |c: &Cell| {
            if c.metric.ends_with("_ns") {
                format_ns(c.value)
            } else {
                format_rate(c.value, c.size)
            }
        };
        let (base, ratio) = match c.and_then(|c| baseline(cells, c)) {
            Some((b, r)) => {
                let what = match b.metric {
                    "topic_publish_ns" => "1 sub".to_string(),
                    _ => b.transport.to_string(),
                };
                (format!("{} ({what})", show(b)), format!("×{r:.2}"))
            }
            None => ("—".to_string(), "—".to_string()),
        };
        table.push(vec![label, c.map_or("—".to_string(), show), base, ratio]);
    };
    for n in PUBLISH_SUBSCRIBERS {
        let c = cells
            .iter()
            .find(|c| c.metric == "topic_publish_ns" && c.pairs == n);
        let subs = if n == 1 { "subscriber" } else { "subscribers" };
        row(format!("publish {}, {n} {subs}", label_size(SIZE)), c);
    }
    let c = cells.iter().find(|c| {
        c.metric == "topic_delivery_msgs_per_s" && c.transport == "shmq-topic" && c.pairs == FANOUT
    });
    row(format!("delivery to {FANOUT}, {}", label_size(SIZE)), c);
    for size in LATENCY_SIZES {
        for (p, metric) in [("p50", "latency_p50_ns"), ("p99", "latency_p99_ns")] {
            let c = cells
                .iter()
                .find(|c| c.metric == metric && c.size == size && c.transport == LATENCY);
            row(format!("latency {p} {}", label_size(size)), c);
        }
    }
    print_aligned(&table);
}

fn e(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The stamp of message `seq`: its sequence number in its first and last 8 bytes.
fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// Checks that `msg` is message `seq`, whole (both copies of the number).
fn check(msg: &[u8], seq: u64) -> Result<(), String> {
    check_seq(msg, seq)?;
    check_seq(&msg[msg.len().saturating_sub(8)..], seq).map_err(|e| format!("torn: {e}"))
}

/// Spawns peers until one fails to start; each gets `args(i)`, runs on `pin` and reports on
/// its stdout.
fn spawn_all(
    n: usize,
    pin: Option<&str>,
    args: impl Fn(usize) -> Vec<String>,
) -> Result<Vec<(Peer, ChildStdout)>, String> {
    (0..n)
        .map(|i| {
            let mut child = spawn_peer_on(&args(i), pin, Stdio::null(), Stdio::piped())?;
            let out = child.stdout.take().ok_or("no stdout")?;
            Ok((Peer(child), out))
        })
        .collect()
}

/// Waits until `ready` holds, failing if a peer exits or [`PEER_PATIENCE`] passes.
fn wait_until(
    peers: &mut [(Peer, ChildStdout)],
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let since = Instant::now();
    while !ready() {
        for (p, _) in peers.iter_mut() {
            if let Ok(Some(status)) = p.0.try_wait() {
                return Err(format!("a peer exited early ({status})"));
            }
        }
        if since.elapsed() > PEER_PATIENCE {
            return Err(format!("{what} did not happen"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Reads the one line a peer prints before it exits, as numbers, and checks it succeeded.
fn report((mut p, mut out): (Peer, ChildStdout)) -> Result<Vec<u64>, String> {
    let mut line = String::new();
    let _ = out.read_to_string(&mut line);
    let status = p.0.wait().map_err(e)?;
    if !status.success() {
        return Err(format!("a peer failed ({status})"));
    }
    line.split_whitespace()
        .map(|w| {
            w.parse::<u64>()
                .map_err(|_| format!("bad peer report {line:?}"))
        })
        .collect()
}

/// An Overwrite topic that this process publishes into, with subscriber processes (on CPU 1)
/// draining it.
struct Drained {
    topic: Topic,
    tx: Option<Publisher>,
    peers: Vec<(Peer, ChildStdout)>,
    msg: [u8; SIZE],
    seq: u64,
}

impl Drained {
    fn open(subs: usize) -> Result<Drained, String> {
        let name = seg_name(&format!("topic-pub{subs}"));
        let topic = Topic::create_with(
            name.as_str(),
            &TopicConfig::new(SLOTS, SIZE)
                .subscribers(subs)
                .policy(Policy::Overwrite),
        )
        .map_err(e)?;
        let pin = (cpus() >= 2).then_some("1");
        let mut peers = spawn_all(subs, pin, |_| {
            vec![
                "shmq-topic".into(),
                "topic-drain".into(),
                name.clone(),
                SIZE.to_string(),
            ]
        })?;
        wait_until(&mut peers, "every subscriber attaching", || {
            topic.subscriber_count() == subs
        })?;
        let tx = topic.publisher().map_err(e)?;
        Ok(Drained {
            topic,
            tx: Some(tx),
            peers,
            msg: [0x5a; SIZE],
            seq: 0,
        })
    }

    /// Publishes for about `d`, looking at the clock every EVERY messages; returns the mean
    /// time per publish (ns).
    fn publish_for(&mut self, d: Duration) -> Result<f64, String> {
        let tx = self.tx.as_mut().ok_or("no publisher")?;
        let (first, start) = (self.seq, Instant::now());
        loop {
            for _ in 0..EVERY {
                stamp(&mut self.msg, self.seq);
                tx.publish(&self.msg).map_err(e)?;
                self.seq += 1;
            }
            let t = start.elapsed();
            if t >= d {
                return Ok(t.as_nanos() as f64 / (self.seq - first) as f64);
            }
        }
    }

    /// Lets go of the publisher; checks that every subscriber's received + lost adds up to
    /// what was published.
    fn finish(mut self) -> Result<(), String> {
        drop(self.tx.take()); // each subscriber finishes, sees Disconnected and reports
        let seq = self.seq;
        for p in self.peers.drain(..) {
            let r = report(p)?;
            let [received, lost] = r[..] else {
                return Err(format!("bad subscriber report {r:?}"));
            };
            if received + lost != seq || received == 0 {
                return Err(format!(
                    "a subscriber of {} received {received} and lost {lost} of {seq} messages",
                    self.topic.name()
                ));
            }
        }
        Ok(())
    }
}

/// Bursts per subscriber count in the publish measurement.
const PUBLISH_PAIRS: usize = 5;

/// The publisher's time per 64-byte message (ns) into an Overwrite topic with 1 and with 64
/// subscriber processes draining it. Both topics stay open and the bursts alternate (the
/// subscribers of the idle one catch up and sleep); the figures are those of the pair whose
/// ratio is the median, so a vCPU move on a VM, which changes every figure at once, skews
/// one pair rather than the ratio.
pub(super) fn publish_cost(budget: Duration) -> Result<[f64; 2], String> {
    let mut one = Drained::open(PUBLISH_SUBSCRIBERS[0])?;
    let mut many = Drained::open(PUBLISH_SUBSCRIBERS[1])?;
    let burst = budget / PUBLISH_PAIRS as u32;
    one.publish_for(burst)?;
    many.publish_for(burst)?;
    let mut pairs = Vec::with_capacity(PUBLISH_PAIRS);
    for _ in 0..PUBLISH_PAIRS {
        pairs.push((one.publish_for(burst)?, many.publish_for(burst)?));
    }
    one.finish()?;
    many.finish()?;
    pairs.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let (a, b) = pairs[PUBLISH_PAIRS / 2];
    Ok([a, b])
}

/// Control segment of a delivery run: the stop flag at 0; subscriber `i`'s count at
/// `slot(i)` and its "attached" flag 8 bytes later, each on its own 128-byte block.
fn slot(i: usize) -> usize {
    128 * (1 + i)
}

/// Messages per second delivered to all of `FANOUT` subscriber processes through a topic
/// (`shmq-topic`) or one ring each (`shmq-rings`).
pub(super) fn delivery(transport: &str, budget: Duration) -> Result<f64, String> {
    let subs = FANOUT;
    let ctl_name = seg_name("topic-ctl");
    let ctl = Segment::create(ctl_name.as_str(), slot(subs)).map_err(e)?;
    let word = |at: usize| ctl.atomic_u64(at).ok_or("control segment too small");
    let stop = word(0)?;
    let counts = (0..subs)
        .map(|i| word(slot(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let attached = (0..subs)
        .map(|i| word(slot(i) + 8))
        .collect::<Result<Vec<_>, _>>()?;
    let data = seg_name("topic-data");
    let (_topic, _rings) = match transport {
        "shmq-topic" => {
            let config = TopicConfig::new(SLOTS, SIZE).subscribers(subs);
            let topic = Topic::create_with(data.as_str(), &config).map_err(e)?;
            (Some(topic), Vec::new())
        }
        _ => {
            let rings = (0..subs)
                .map(|k| Ring::create(format!("{data}-{k}").as_str(), RING_BYTES))
                .collect::<Result<Vec<_>, _>>()
                .map_err(e)?;
            (None, rings)
        }
    };
    let pin = (cpus() >= 2).then(all_cpus);
    let args = |role: &str, i: usize| {
        vec![
            transport.to_string(),
            role.to_string(),
            format!("{data},{ctl_name},{i},{subs}"),
            SIZE.to_string(),
        ]
    };
    let mut peers = spawn_all(subs, pin, |i| args("topic-sub", i))?;
    wait_until(&mut peers, "every subscriber attaching", || {
        attached.iter().all(|a| a.load(Ordering::Relaxed) != 0)
    })?;
    let publisher = spawn_all(1, pin, |_| args("topic-pub", 0))?;
    peers.extend(publisher);
    let total = || {
        counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    wait_until(&mut peers, "the first message arriving", || total() > 0)?;
    std::thread::sleep(budget / 5);
    let (t0, c0) = (Instant::now(), total());
    std::thread::sleep(budget);
    // Counts move in steps of EVERY: past the budget, wait for a few steps at least.
    wait_until(&mut peers, "delivery making progress", || {
        total() - c0 >= 4 * EVERY * subs as u64
    })?;
    let (t1, c1) = (Instant::now(), total());
    stop.store(1, Ordering::Relaxed);
    let publisher = peers.pop().ok_or("no publisher")?;
    let sent = match report(publisher)?[..] {
        [n] => n,
        ref r => return Err(format!("bad publisher report {r:?}")),
    };
    let sum = (0..sent).fold(0u64, |a, s| a.wrapping_add(s));
    for p in peers {
        let r = report(p)?;
        if r[..] != [sent, sum] {
            return Err(format!(
                "a subscriber reported {r:?} of {sent} messages (sum {sum}): lost or reordered"
            ));
        }
    }
    Ok((c1 - c0) as f64 / subs as f64 / (t1 - t0).as_secs_f64())
}

/// Ping-pong through a request topic and a reply topic, both sides busy-polling.
pub(super) fn latency(
    peer_args: &dyn Fn(&str) -> Vec<String>,
    size: usize,
    timed: &mut dyn FnMut(RoundTrip<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let (req_name, rep_name) = (seg_name("topic-req"), seg_name("topic-rep"));
    let config = TopicConfig::new(64, size).subscribers(1);
    let req = Topic::create_with(req_name.as_str(), &config).map_err(e)?;
    let rep = Topic::create_with(rep_name.as_str(), &config).map_err(e)?;
    let mut rx = rep.subscriber().map_err(e)?;
    rx.set_wait_mode(WaitMode::BusyPoll);
    let pin = (cpus() >= 2).then_some("1");
    let child = spawn_peer_on(
        &peer_args(&format!("{req_name},{rep_name}")),
        pin,
        Stdio::null(),
        Stdio::null(),
    )?;
    let mut peer = Peer(child);
    let since = Instant::now();
    while req.subscriber_count() == 0 {
        if let Ok(Some(status)) = peer.0.try_wait() {
            return Err(format!("the peer exited early ({status})"));
        }
        if since.elapsed() > PEER_PATIENCE {
            return Err("the peer did not subscribe".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut tx = req.publisher().map_err(e)?;
    tx.set_wait_mode(WaitMode::BusyPoll);
    let result = timed(&mut |seq, msg| {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        tx.publish(msg).map_err(e)?;
        let back = rx.recv_timeout(PEER_PATIENCE).map_err(e)?;
        check_seq(&back, seq)
    });
    drop(tx); // the peer sees every publisher gone and exits
    result
}

/// `shmq __bench-peer shmq-topic|shmq-rings|shmq-topic-busy ROLE ENDPOINT SIZE`: the
/// section's peers.
pub(super) fn peer(transport: &str, role: &str, endpoint: &str, size: usize) -> Result<(), String> {
    match role {
        "echo" => echo(endpoint),
        "topic-drain" => drain(endpoint, size),
        "topic-sub" | "topic-pub" => {
            let mut f = endpoint.rsplitn(4, ',');
            let (subs, index, ctl, data) = (f.next(), f.next(), f.next(), f.next());
            let (Some(subs), Some(index), Some(ctl), Some(data)) = (subs, index, ctl, data) else {
                return Err("bad endpoint".into());
            };
            let subs: usize = subs.parse().map_err(|_| "bad subscriber count")?;
            let index: usize = index.parse().map_err(|_| "bad index")?;
            let ctl = Segment::open(ctl).map_err(e)?;
            if role == "topic-sub" {
                fan_sub(transport, data, &ctl, index, size)
            } else {
                fan_pub(transport, data, &ctl, subs, size)
            }
        }
        _ => Err(format!("bad role {role}")),
    }
}

/// Publish-cost subscriber: receives (Blocking) until every publisher is gone, checking every
/// message; prints `received lost`.
fn drain(name: &str, size: usize) -> Result<(), String> {
    let topic = Topic::open(name).map_err(e)?;
    let mut sub = topic.subscriber().map_err(e)?;
    sub.set_wait_mode(WaitMode::Blocking);
    let (mut received, mut lost) = (0u64, 0u64);
    let mut last: Option<u64> = None;
    loop {
        match sub.recv_timeout(PEER_PATIENCE) {
            Ok(m) => {
                let seq = m.seq();
                if m.len() != size || last.is_some_and(|l| seq <= l) {
                    return Err(format!("message {seq} after {last:?}, {} bytes", m.len()));
                }
                check(&m, seq)?;
                last = Some(seq);
                received += 1;
            }
            Err(TopicRecvError::Lagged(n)) => lost += n,
            Err(TopicRecvError::Disconnected) => break,
            Err(err) => return Err(e(err)),
        }
    }
    println!("{received} {lost}");
    Ok(())
}

/// Delivery subscriber: marks itself attached, then receives until the publisher is gone,
/// checking the order, publishing its count every `EVERY`; prints `count sum`.
fn fan_sub(
    transport: &str,
    data: &str,
    ctl: &Segment,
    index: usize,
    size: usize,
) -> Result<(), String> {
    let word = |at: usize| ctl.atomic_u64(at).ok_or("control segment too small");
    let count: &AtomicU64 = word(slot(index))?;
    let (mut n, mut sum) = (0u64, 0u64);
    let mut take = |msg: &[u8]| -> Result<(), String> {
        if msg.len() != size {
            return Err(format!("a {}-byte message", msg.len()));
        }
        check(msg, n)?;
        sum = sum.wrapping_add(n);
        n += 1;
        if n % EVERY == 0 {
            count.store(n, Ordering::Relaxed);
        }
        Ok(())
    };
    if transport == "shmq-topic" {
        let topic = Topic::open(data).map_err(e)?;
        let mut sub = topic.subscriber().map_err(e)?;
        sub.set_wait_mode(WaitMode::Blocking);
        word(slot(index) + 8)?.store(1, Ordering::Relaxed);
        loop {
            match sub.recv_timeout(PEER_PATIENCE) {
                Ok(m) => take(&m)?,
                Err(TopicRecvError::Disconnected) => break,
                Err(err) => return Err(e(err)),
            }
        }
    } else {
        let ring = Ring::open(format!("{data}-{index}").as_str()).map_err(e)?;
        let mut rx = ring.consumer().map_err(e)?;
        rx.set_wait_mode(WaitMode::Blocking);
        word(slot(index) + 8)?.store(1, Ordering::Relaxed);
        loop {
            match rx.recv_timeout(PEER_PATIENCE) {
                Ok(m) => take(&m)?,
                Err(shmq::RecvTimeoutError::Disconnected) => break,
                Err(err) => return Err(e(err)),
            }
        }
    }
    println!("{n} {sum}");
    Ok(())
}

/// Delivery publisher: sends numbered messages until the stop flag (or the bench is gone);
/// prints how many.
fn fan_pub(
    transport: &str,
    data: &str,
    ctl: &Segment,
    subs: usize,
    size: usize,
) -> Result<(), String> {
    let stop = ctl.atomic_u64(0).ok_or("control segment too small")?;
    let parent = std::os::unix::process::parent_id();
    let over =
        || stop.load(Ordering::Relaxed) != 0 || std::os::unix::process::parent_id() != parent;
    let mut msg = vec![0x5au8; size];
    let mut seq = 0u64;
    if transport == "shmq-topic" {
        let topic = Topic::open(data).map_err(e)?;
        let mut tx = topic.publisher().map_err(e)?;
        tx.set_wait_mode(WaitMode::Blocking);
        while seq % EVERY != 0 || !over() {
            stamp(&mut msg, seq);
            tx.publish_timeout(&msg, PEER_PATIENCE).map_err(e)?;
            seq += 1;
        }
    } else {
        let rings = (0..subs)
            .map(|k| Ring::open(format!("{data}-{k}").as_str()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let mut txs = Vec::with_capacity(subs);
        for r in &rings {
            let mut tx = r.producer().map_err(e)?;
            tx.set_wait_mode(WaitMode::Blocking);
            txs.push(tx);
        }
        while seq % EVERY != 0 || !over() {
            stamp(&mut msg, seq);
            for tx in &mut txs {
                tx.send_timeout(&msg, PEER_PATIENCE).map_err(e)?;
            }
            seq += 1;
        }
    }
    println!("{seq}");
    Ok(())
}

/// Latency peer: echoes each request (read in place) into a reserved reply slot until the
/// bench lets go of its publisher.
fn echo(endpoint: &str) -> Result<(), String> {
    let (req, rep) = endpoint.split_once(',').ok_or("bad endpoint")?;
    let (req, rep) = (Topic::open(req).map_err(e)?, Topic::open(rep).map_err(e)?);
    let mut tx = rep.publisher().map_err(e)?;
    tx.set_wait_mode(WaitMode::BusyPoll);
    let mut rx = req.subscriber().map_err(e)?;
    rx.set_wait_mode(WaitMode::BusyPoll);
    loop {
        match rx.recv_timeout(PEER_PATIENCE) {
            Ok(msg) => {
                let mut reply = tx.reserve(msg.len()).map_err(e)?;
                reply.copy_from_slice(&msg);
                reply.commit();
            }
            Err(TopicRecvError::Disconnected) => return Ok(()),
            Err(err) => return Err(e(err)),
        }
    }
}
