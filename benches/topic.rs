//! The broadcast [`Topic`] between real processes: what publishing costs as subscribers are
//! added, delivery to 16 subscriber processes against one SPSC ring per subscriber, and
//! one-way latency against the SPSC ring, all in the same run.
//!
//! `cargo bench --bench topic` (about 40 s; `-- latency` and the like for one group). The
//! bench binary re-executes itself for every other process (the `SHMQ_TOPIC_BENCH_PEER`
//! variable picks the role, so `main` runs the peer instead of criterion). Messages are 64 bytes (latency also 8)
//! and carry their sequence number in their first and last 8 bytes; every receiver checks both
//! copies, so a lost, repeated, reordered or torn message fails the run.
//!
//! - `publish/<n>sub-<what>/64`: the time of one [`Publisher::publish`] of a 64-byte message,
//!   the bench process publishing back to back (pinned to CPU 0) while `n` (1 or 64)
//!   subscriber processes are attached (pinned to CPU 1). What "publish cost" means on a
//!   2-CPU machine with 64 subscriber processes: under [`Policy::Block`] the publisher runs at
//!   the pace of its slowest subscriber, and 64 processes sharing one CPU are 64 times slower
//!   than one, so the figure would measure the subscribers, not the publish. So these topics
//!   use [`Policy::Overwrite`]: the publisher never waits and its time is its own, and the
//!   subscribers are real readers that fall behind and are told so (`Lagged`). With `drain`
//!   each subscriber receives in [`WaitMode::Blocking`]: it copies and checks every message it
//!   can, then sleeps on the topic's futex when it has caught up, so the publisher pays what
//!   subscribers make it pay: the cache lines they pull away, and the wake-up (one
//!   `FUTEX_WAKE` of every sleeper) the first message after someone fell asleep costs. With
//!   `idle` the subscribers are attached and never read (the publisher's cost with nobody
//!   reading). When the benchmark ends, each draining subscriber reports what it received and
//!   lost; received + lost must equal the messages published, and each must have received
//!   some. In `--bench` mode a line after each kind gives the 64-subscriber cost over the
//!   1-subscriber one (the target: at most 1.5), as the median of 9 pairs of 60 ms
//!   bursts into the two topics, both open, taken back to back (see `latency/` on why
//!   pairs).
//! - `delivery/16sub/<transport>/64`: one publisher process sends a stream of 64-byte
//!   messages that each of 16 subscriber processes receives, every process unpinned (17
//!   processes on however many CPUs the bench may use, so every side sleeps when it waits:
//!   [`WaitMode::Blocking`] everywhere). Per sample the bench tells each subscriber how many
//!   messages to expect and the publisher how many to send, and times until every subscriber
//!   has reported the count and the sum of the sequence numbers it received; the figure is
//!   per message delivered to all 16. `topic`: one [`Topic`] of 1024 slots, [`Policy::Block`];
//!   subscribers read in place. `rings`: 16 SPSC [`Ring`]s of 64 KiB (about 900 messages
//!   each), one per subscriber, the publisher sending each message into every ring in turn
//!   (the shape of a broadcast built from point-to-point queues, as iceoryx2 builds it);
//!   subscribers read in place. The iceoryx2 comparison is a separate crate,
//!   `benches/compare-iceoryx2`.
//! - `latency/<transport>/<size>`: ping-pong between the bench (CPU 0) and an echo peer
//!   (CPU 1), both in [`WaitMode::BusyPoll`]; the time is half a round trip. `topic-busy`: a
//!   request topic and a reply topic (64 slots, Block; each side publishes into one and
//!   subscribes to the other; the echo copies the message from its read guard into a reserved
//!   slot). `ring-busy`: the SPSC ring, as `shmq-busy` in `benches/ring.rs` (a [`Pipe`], the
//!   echo in place). In `--bench` mode a line after each gives p50/p99 of the one-way time,
//!   and after each size the topic's p50 over the ring's (the target: at most 1.3),
//!   as the median of 9 pairs of short measurements taken back to back (ring, then topic,
//!   each on a fresh pair of processes): on a VM the host may move the vCPUs mid-run,
//!   changing every figure at once (between ~100 and ~300 ns one way on the machine this
//!   was written on), and such a move skews one pair, not the median.
//!
//! Cleanup: every process is killed and reaped when its benchmark ends (also while unwinding
//! from a panic), the kernel kills a peer whose parent dies (`PR_SET_PDEATHSIG`), a peer whose
//! parent is gone exits, and the bench gives up (panics) if a peer does not report within
//! 20 s. Segments are created by the bench under a name holding its pid and removed when the
//! creating handle drops; those of a killed earlier run are removed at start.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

use common::{RoundTrip, readable_within, remove_stale, set_affinity};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use shmq::{
    Pipe, Policy, Publisher, Ring, StartAt, Subscriber, Topic, TopicConfig, TopicRecvError,
    WaitMode,
};

/// Set in a peer's environment: `role:transport:size:parent-pid:cpus:index:address`.
const PEER_ENV: &str = "SHMQ_TOPIC_BENCH_PEER";
/// Prefix of every name this bench puts in /dev/shm.
const PREFIX: &str = "shmq-benchtopic";
const BENCH_CPU: usize = 0;
const PEER_CPU: usize = 1;
/// The bench gives up (panics) when a peer is silent this long.
const BENCH_STALL: Duration = Duration::from_secs(20);
/// A peer gives up when the other side is silent this long in the middle of an exchange.
const PEER_STALL: Duration = Duration::from_secs(30);

/// Message size of the publish and delivery benchmarks.
const SIZE: usize = 64;
/// Slots of the publish and delivery topics.
const SLOTS: usize = 1024;
/// Bytes of each ring of the `rings` delivery transport: about as many messages as `SLOTS`.
const RING_BYTES: usize = 64 << 10;
/// Subscribers of the delivery benchmark.
const FANOUT: usize = 16;
/// Subscriber counts of the publish benchmark.
const PUBLISH_SUBS: [usize; 2] = [1, 64];
const LATENCY_SIZES: [usize; 2] = [8, 64];
/// Round trips (at most) for the p50/p99 line after each latency benchmark.
const PERCENTILE_TRIPS: usize = 200_000;
const PERCENTILE_BUDGET: Duration = Duration::from_millis(500);

fn main() {
    if let Ok(spec) = std::env::var(PEER_ENV) {
        peer::main(&spec);
        return;
    }
    // Every CPU the bench may use, read before it pins itself.
    let _ = cpu_list(None);
    if let Err(e) = set_affinity(&[BENCH_CPU]) {
        eprintln!("topic bench: not pinned to CPU {BENCH_CPU} ({e}); results will be noisier");
    }
    remove_stale(PREFIX, &["/dev/shm"]);
    benches();
    Criterion::default().configure_from_args().final_summary();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = publish, delivery, latency
}

// ---------------------------------------------------------------------------------------------
// Messages and names.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Topic,
    Rings,
    Ring,
}

use Transport as T;

impl Transport {
    fn name(self) -> &'static str {
        match self {
            T::Topic => "topic",
            T::Rings => "rings",
            T::Ring => "ring",
        }
    }

    fn parse(s: &str) -> Option<Transport> {
        [T::Topic, T::Rings, T::Ring]
            .into_iter()
            .find(|t| t.name() == s)
    }
}

/// Writes `seq` into the first and last 8 bytes of `msg`.
#[inline(always)]
fn stamp(msg: &mut [u8], seq: u64) {
    let n = msg.len();
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    msg[n - 8..].copy_from_slice(&seq.to_le_bytes());
}

/// The sequence number `msg` carries, or `None` if it is not `size` bytes or its two copies
/// differ (torn).
#[inline(always)]
fn seq_of(msg: &[u8], size: usize) -> Option<u64> {
    if msg.len() != size {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(msg[at..at + 8].try_into().expect("8 bytes"));
    let (a, b) = (word(0), word(size - 8));
    (a == b).then_some(a)
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}-{}-{n}-{tag}", std::process::id())
}

/// The `cpus` field of a peer's spec: one CPU, or every CPU the bench started with.
fn cpu_list(pinned: Option<usize>) -> String {
    common::cpu_list(pinned, &[BENCH_CPU, PEER_CPU])
}

// ---------------------------------------------------------------------------------------------
// Peer processes.

/// A peer process; killed and reaped on drop. Its stdin is its control channel and its
/// stdout its report channel.
struct Proc {
    child: Child,
    control: Option<ChildStdin>,
    report: Option<ChildStdout>,
}

struct Spec<'a> {
    role: &'a str,
    t: Transport,
    size: usize,
    /// `None`: any CPU the bench started with.
    cpu: Option<usize>,
    /// Delivery subscribers: which ring is theirs.
    index: usize,
    addr: &'a str,
}

impl Proc {
    fn spawn(s: Spec<'_>) -> Proc {
        let spec = format!(
            "{}:{}:{}:{}:{}:{}:{}",
            s.role,
            s.t.name(),
            s.size,
            std::process::id(),
            cpu_list(s.cpu),
            s.index,
            s.addr
        );
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .env(PEER_ENV, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn peer");
        Proc {
            control: child.stdin.take(),
            report: child.stdout.take(),
            child,
        }
    }

    /// Writes one word to the peer's control channel.
    fn tell(&mut self, v: u64) {
        let control = self.control.as_mut().expect("control pipe");
        if let Err(e) = control.write_all(&v.to_le_bytes()) {
            self.died(&format!("control write: {e}"));
        }
    }

    /// Reads one `N`-word report, giving up after `BENCH_STALL`.
    fn report<const N: usize>(&mut self) -> [u64; N] {
        let out = self.report.as_mut().expect("report pipe");
        if !readable_within(out.as_fd(), BENCH_STALL) {
            self.died("no report: messages lost or a process stalled");
        }
        let mut buf = [[0u8; 8]; N];
        if let Err(e) = out.read_exact(buf.as_flattened_mut()) {
            self.died(&format!("report read: {e}"));
        }
        buf.map(u64::from_le_bytes)
    }

    #[cold]
    fn died(&mut self, what: &str) -> ! {
        let status = self.child.try_wait().ok().flatten();
        panic!("topic bench peer failed ({what}); exit status {status:?}")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Publish cost.

/// An Overwrite topic, its publisher (this process) and `n` attached subscriber processes.
struct PublishGroup {
    subs: Vec<Proc>,
    draining: bool,
    publisher: Option<Publisher>,
    msg: Vec<u8>,
    published: u64,
    _topic: Topic,
}

impl PublishGroup {
    fn open(n: usize, draining: bool) -> PublishGroup {
        let name = unique("pub");
        let topic = Topic::create_with(
            name.as_str(),
            &TopicConfig::new(SLOTS, SIZE)
                .subscribers(n)
                .policy(Policy::Overwrite),
        )
        .expect("create topic");
        let mut subs: Vec<Proc> = (0..n)
            .map(|i| {
                Proc::spawn(Spec {
                    role: if draining { "drain" } else { "idle" },
                    t: T::Topic,
                    size: SIZE,
                    cpu: Some(PEER_CPU),
                    index: i,
                    addr: &name,
                })
            })
            .collect();
        // Every subscriber says it has joined before anything is published.
        for s in &mut subs {
            let [ready] = s.report::<1>();
            assert_eq!(ready, 1, "a subscriber did not join");
        }
        assert_eq!(topic.subscriber_count(), n);
        let publisher = topic.publisher().expect("publisher");
        PublishGroup {
            subs,
            draining,
            publisher: Some(publisher),
            msg: vec![0x5a; SIZE],
            published: 0,
            _topic: topic,
        }
    }

    fn timed(&mut self, iters: u64) -> Duration {
        let p = self.publisher.as_mut().expect("publisher");
        let start = Instant::now();
        for _ in 0..iters {
            stamp(&mut self.msg, self.published);
            let seq = p.publish(&self.msg).expect("publish");
            debug_assert_eq!(seq, self.published);
            self.published += 1;
        }
        start.elapsed()
    }

    /// Publishes for about `d`; returns the mean time per publish in ns.
    fn mean_for(&mut self, d: Duration) -> f64 {
        let (mut n, mut t) = (0u64, Duration::ZERO);
        while t < d {
            t += self.timed(4096);
            n += 4096;
        }
        t.as_nanos() as f64 / n as f64
    }

    /// Lets go of the publisher and checks every draining subscriber's account: received +
    /// lost = published, some received.
    fn finish(mut self) {
        drop(self.publisher.take());
        if !self.draining {
            return;
        }
        for s in &mut self.subs {
            let [received, lost] = s.report::<2>();
            assert_eq!(
                received + lost,
                self.published,
                "a subscriber received {received} and lost {lost} of {} messages",
                self.published
            );
            assert!(received > 0, "a subscriber received nothing");
        }
    }
}

fn publish(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for draining in [true, false] {
        // The pairs run only where the command line's filter let both benchmarks run.
        let mut ran = 0;
        for n in PUBLISH_SUBS {
            let what = if draining { "drain" } else { "idle" };
            let id = format!("{n}sub-{what}/{SIZE}");
            let mut group: Option<PublishGroup> = None;
            g.bench_function(&id, |b| {
                let grp = group.get_or_insert_with(|| PublishGroup::open(n, draining));
                b.iter_custom(|iters| grp.timed(iters))
            });
            if let Some(grp) = group.take() {
                grp.finish();
                ran += 1;
            }
        }
        if bench_mode && ran == PUBLISH_SUBS.len() {
            paired_publish(draining);
        }
    }
    g.finish();
}

/// The 64-subscriber publish cost over the 1-subscriber one, as the median over [`PAIRS`]
/// pairs of bursts: both topics stay open (the subscribers of the one not publishing catch
/// up and sleep) and the bench publishes [`PAIR_BUDGET`] into one, then into the other. As
/// with latency, a vCPU move skews one pair, not the median.
fn paired_publish(draining: bool) {
    let (mut one, mut many) = (
        PublishGroup::open(PUBLISH_SUBS[0], draining),
        PublishGroup::open(PUBLISH_SUBS[1], draining),
    );
    one.mean_for(PAIR_BUDGET);
    many.mean_for(PAIR_BUDGET);
    let mut pairs: Vec<(f64, f64)> = (0..PAIRS)
        .map(|_| (one.mean_for(PAIR_BUDGET), many.mean_for(PAIR_BUDGET)))
        .collect();
    one.finish();
    many.finish();
    pairs.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let (a, b) = pairs[PAIRS / 2];
    println!(
        "publish/{}: {} subscribers over {} = {:.2} (median of {PAIRS} back-to-back pairs; \
         that pair: {a:.1} ns and {b:.1} ns per publish; all ratios {:.2?})",
        if draining { "drain" } else { "idle" },
        PUBLISH_SUBS[1],
        PUBLISH_SUBS[0],
        b / a,
        pairs.iter().map(|(a, b)| b / a).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// Delivery to 16 subscribers.

/// One publisher process and `FANOUT` subscriber processes over a topic or 16 rings.
struct DeliveryGroup {
    publisher: Proc,
    subs: Vec<Proc>,
    next: u64,
    /// The topic or rings (removed when they drop, after the peers).
    _shm: Box<dyn std::any::Any>,
}

impl DeliveryGroup {
    fn open(t: Transport) -> DeliveryGroup {
        let name = unique("dlv");
        let shm: Box<dyn std::any::Any> = match t {
            T::Topic => Box::new(
                Topic::create_with(
                    name.as_str(),
                    &TopicConfig::new(SLOTS, SIZE).subscribers(FANOUT),
                )
                .expect("create topic"),
            ),
            T::Rings => Box::new(
                (0..FANOUT)
                    .map(|k| Ring::create(format!("{name}-{k}").as_str(), RING_BYTES))
                    .collect::<Result<Vec<_>, _>>()
                    .expect("create rings"),
            ),
            T::Ring => unreachable!("no single-ring delivery"),
        };
        let spawn = |role, index| {
            Proc::spawn(Spec {
                role,
                t,
                size: SIZE,
                cpu: None,
                index,
                addr: &name,
            })
        };
        let mut subs: Vec<Proc> = (0..FANOUT).map(|k| spawn("sub", k)).collect();
        for s in &mut subs {
            let [ready] = s.report::<1>();
            assert_eq!(ready, 1, "a subscriber did not attach");
        }
        let mut publisher = spawn("pub", 0);
        let [ready] = publisher.report::<1>();
        assert_eq!(ready, 1, "the publisher did not attach");
        DeliveryGroup {
            publisher,
            subs,
            next: 0,
            _shm: shm,
        }
    }

    /// Sends `iters` messages to every subscriber; checks what each got; returns the time
    /// from telling them to the last subscriber's report.
    fn timed(&mut self, iters: u64) -> Duration {
        let first = self.next;
        let expected = (first..first + iters).fold(0u64, |a, s| a.wrapping_add(s));
        let start = Instant::now();
        for s in &mut self.subs {
            s.tell(iters);
        }
        self.publisher.tell(iters);
        for s in &mut self.subs {
            let [count, sum] = s.report::<2>();
            assert_eq!(count, iters, "a subscriber got {count} of {iters} messages");
            assert_eq!(
                sum, expected,
                "a subscriber got other messages than were sent"
            );
        }
        let elapsed = start.elapsed();
        self.next += iters;
        elapsed
    }
}

fn delivery(c: &mut Criterion) {
    let mut g = c.benchmark_group("delivery");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    for t in [T::Topic, T::Rings] {
        let id = format!("{FANOUT}sub/{}/{SIZE}", t.name());
        let mut group: Option<DeliveryGroup> = None;
        g.bench_function(&id, |b| {
            let grp = group.get_or_insert_with(|| DeliveryGroup::open(t));
            b.iter_custom(|iters| grp.timed(iters))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Latency.

#[cold]
#[inline(never)]
fn bad_echo(got: Option<u64>, seq: u64) -> ! {
    panic!("expected echo of message {seq}, got {got:?}")
}

/// A request topic and a reply topic, both ends busy-polling.
struct TopicLat {
    _peer: Proc,
    tx: Publisher,
    rx: Subscriber,
    msg: Vec<u8>,
    seq: u64,
    _topics: (Topic, Topic),
}

impl RoundTrip for TopicLat {
    #[inline]
    fn trip(&mut self) {
        self.seq += 1;
        stamp(&mut self.msg, self.seq);
        self.tx.publish(&self.msg).expect("publish request");
        let echo = self.rx.recv().expect("receive reply");
        let got = seq_of(&echo, self.msg.len());
        if got != Some(self.seq) {
            bad_echo(got, self.seq);
        }
    }
}

/// The SPSC ring: a [`Pipe`], both ends busy-polling.
struct RingLat {
    _peer: Proc,
    pipe: Pipe,
    msg: Vec<u8>,
    seq: u64,
}

impl RoundTrip for RingLat {
    #[inline]
    fn trip(&mut self) {
        self.seq += 1;
        stamp(&mut self.msg, self.seq);
        self.pipe.send(&self.msg).expect("send request");
        let echo = self.pipe.recv().expect("receive reply");
        let got = seq_of(&echo, self.msg.len());
        if got != Some(self.seq) {
            bad_echo(got, self.seq);
        }
    }
}

fn open_latency(t: Transport, size: usize) -> Box<dyn RoundTrip> {
    let spawn = |addr: &str| {
        Proc::spawn(Spec {
            role: "echo",
            t,
            size,
            cpu: Some(PEER_CPU),
            index: 0,
            addr,
        })
    };
    match t {
        T::Topic => {
            let (req_name, rep_name) = (unique("req"), unique("rep"));
            let config = TopicConfig::new(64, size).subscribers(1);
            let req = Topic::create_with(req_name.as_str(), &config).expect("request topic");
            let rep = Topic::create_with(rep_name.as_str(), &config).expect("reply topic");
            let mut rx = rep.subscriber().expect("reply subscriber");
            rx.set_wait_mode(WaitMode::BusyPoll);
            let mut peer = spawn(&format!("{req_name},{rep_name}"));
            let [ready] = peer.report::<1>();
            assert_eq!(ready, 1, "the echo peer did not subscribe");
            let mut tx = req.publisher().expect("request publisher");
            tx.set_wait_mode(WaitMode::BusyPoll);
            Box::new(TopicLat {
                _peer: peer,
                tx,
                rx,
                msg: vec![0xa5; size],
                seq: 0,
                _topics: (req, rep),
            })
        }
        T::Ring => {
            let name = unique("lat");
            let mut pipe = Pipe::create(name.as_str(), 64 << 10).expect("create pipe");
            pipe.set_wait_mode(WaitMode::BusyPoll);
            let peer = spawn(&name);
            Box::new(RingLat {
                _peer: peer,
                pipe,
                msg: vec![0xa5; size],
                seq: 0,
            })
        }
        T::Rings => unreachable!("no fan-out latency"),
    }
}

fn latency(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut g = c.benchmark_group("latency");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30);
    for size in LATENCY_SIZES {
        let mut ran = 0;
        for t in [T::Ring, T::Topic] {
            let id = format!("{}-busy/{size}", t.name());
            let mut link: Option<Box<dyn RoundTrip>> = None;
            g.bench_function(&id, |b| {
                let l = link.get_or_insert_with(|| open_latency(t, size));
                b.iter_custom(|iters| l.timed(iters) / 2)
            });
            ran += usize::from(link.is_some());
            if let (Some(mut l), true) = (link.take(), bench_mode) {
                let (p50, p99, trips) = l.percentiles(PERCENTILE_TRIPS, PERCENTILE_BUDGET);
                println!(
                    "latency/{id}: one-way p50 {} ns, p99 {} ns ({trips} round trips)",
                    p50.as_nanos(),
                    p99.as_nanos(),
                );
            }
        }
        if bench_mode && ran == 2 {
            paired_ratio(size);
        }
    }
    g.finish();
}

/// Pairs of short back-to-back p50 measurements, ring then topic, each on a fresh link.
const PAIRS: usize = 9;
const PAIR_BUDGET: Duration = Duration::from_millis(60);

/// The topic's p50 over the ring's, as the median over [`PAIRS`] pairs measured back to
/// back: on a VM the host may move the vCPUs mid-run and change both figures at once, and a
/// move between the two benchmarks above would skew their ratio; one inside a pair skews
/// only that pair.
fn paired_ratio(size: usize) {
    let p50 = |t| {
        let mut l = open_latency(t, size);
        l.timed(1000);
        l.percentiles(PERCENTILE_TRIPS, PAIR_BUDGET).0.as_nanos() as f64
    };
    let mut pairs: Vec<(f64, f64)> = (0..PAIRS).map(|_| (p50(T::Ring), p50(T::Topic))).collect();
    pairs.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let (ring, topic) = pairs[PAIRS / 2];
    println!(
        "latency/{size}: topic p50 / ring p50 = {:.2} (median of {PAIRS} back-to-back pairs; \
         that pair: ring {ring:.0} ns, topic {topic:.0} ns; all ratios {:.2?})",
        topic / ring,
        pairs.iter().map(|(r, t)| t / r).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// The peer processes.

mod peer {
    use super::*;

    #[cold]
    fn fail(what: &str) -> ! {
        eprintln!("topic bench peer {}: {what}", std::process::id());
        std::process::exit(2)
    }

    pub(super) fn main(spec: &str) {
        let mut parts = spec.splitn(7, ':');
        let mut next = || parts.next().unwrap_or_else(|| fail("bad spec"));
        let (role, t, size, parent) = (next(), next(), next(), next());
        let (cpus, index, addr) = (next(), next(), next());
        let t = Transport::parse(t).unwrap_or_else(|| fail("bad transport"));
        let size: usize = size.parse().unwrap_or_else(|_| fail("bad size"));
        let parent: u32 = parent.parse().unwrap_or_else(|_| fail("bad parent pid"));
        let index: usize = index.parse().unwrap_or_else(|_| fail("bad index"));
        let cpus: Vec<usize> = cpus
            .split(',')
            .map(|c| c.parse().unwrap_or_else(|_| fail("bad cpu list")))
            .collect();

        // SAFETY: PR_SET_PDEATHSIG takes a signal number; it only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        if std::os::unix::process::parent_id() != parent {
            fail("the bench exited before the peer started");
        }
        // Placement failure is not fatal; the bench already warned about pinning.
        let _ = set_affinity(&cpus);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(0);
                }
            }
        });

        match (role, t) {
            ("drain", T::Topic) => drain(addr, size),
            ("idle", T::Topic) => idle(addr),
            ("sub", _) => subscribe(t, addr, index, size),
            ("pub", _) => publish(t, addr, size),
            ("echo", _) => echo(t, addr),
            _ => fail("bad role or transport"),
        }
    }

    fn stdio(fd: BorrowedFd<'_>) -> File {
        File::from(
            fd.try_clone_to_owned()
                .unwrap_or_else(|_| fail("dup stdio")),
        )
    }

    /// Writes words to the bench; exits quietly if it is gone.
    fn say(out: &mut File, words: &[u64]) {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        if out.write_all(&bytes).is_err() {
            std::process::exit(0);
        }
    }

    /// The control channel: one word per request; `None` once the bench hangs up.
    fn requests() -> impl FnMut() -> Option<u64> {
        let mut control = stdio(std::io::stdin().as_fd());
        move || {
            let mut w = [0u8; 8];
            control
                .read_exact(&mut w)
                .ok()
                .map(|()| u64::from_le_bytes(w))
        }
    }

    fn open_topic(addr: &str) -> Topic {
        Topic::open(addr).unwrap_or_else(|e| fail(&e.to_string()))
    }

    /// Publish benchmark, `drain`: receives (Blocking) until every publisher is gone; checks
    /// each message is the one its sequence number says, whole; reports `[received, lost]`.
    fn drain(addr: &str, size: usize) {
        let mut out = stdio(std::io::stdout().as_fd());
        let topic = open_topic(addr);
        let mut sub = topic
            .subscriber_from(StartAt::Next)
            .unwrap_or_else(|e| fail(&e.to_string()));
        sub.set_wait_mode(WaitMode::Blocking);
        say(&mut out, &[1]);
        let (mut received, mut lost) = (0u64, 0u64);
        let mut last: Option<u64> = None;
        loop {
            match sub.recv() {
                Ok(m) => {
                    let seq = m.seq();
                    if seq_of(&m, size) != Some(seq) || last.is_some_and(|l| seq <= l) {
                        fail(&format!("message {seq} torn, or after {last:?}"));
                    }
                    last = Some(seq);
                    received += 1;
                }
                Err(TopicRecvError::Lagged(n)) => lost += n,
                Err(TopicRecvError::Disconnected) => break,
                Err(e) => fail(&format!("recv: {e}")),
            }
        }
        say(&mut out, &[received, lost]);
    }

    /// Publish benchmark, `idle`: attached, never reads; leaves when the bench hangs up.
    fn idle(addr: &str) {
        let mut out = stdio(std::io::stdout().as_fd());
        let topic = open_topic(addr);
        let _sub = topic.subscriber().unwrap_or_else(|e| fail(&e.to_string()));
        say(&mut out, &[1]);
        let mut next = requests();
        while next().is_some() {}
    }

    /// Delivery benchmark subscriber: per request, receives that many messages in order and
    /// reports `[count, sum of sequence numbers]`.
    fn subscribe(t: Transport, addr: &str, index: usize, size: usize) {
        let mut out = stdio(std::io::stdout().as_fd());
        let mut released = requests();
        let mut expect = 0u64;
        let mut take = |msg: &[u8], sum: &mut u64| {
            if seq_of(msg, size) != Some(expect) {
                fail(&format!(
                    "expected message {expect}, got {:?}",
                    seq_of(msg, size)
                ));
            }
            *sum = sum.wrapping_add(expect);
            expect += 1;
        };
        match t {
            T::Topic => {
                let topic = open_topic(addr);
                let mut sub = topic.subscriber().unwrap_or_else(|e| fail(&e.to_string()));
                sub.set_wait_mode(WaitMode::Blocking);
                say(&mut out, &[1]);
                while let Some(n) = released() {
                    let mut sum = 0;
                    for _ in 0..n {
                        match sub.recv_timeout(PEER_STALL) {
                            Ok(m) => take(&m, &mut sum),
                            Err(e) => fail(&format!("recv: {e}")),
                        }
                    }
                    say(&mut out, &[n, sum]);
                }
            }
            T::Rings => {
                let ring = Ring::open(format!("{addr}-{index}").as_str())
                    .unwrap_or_else(|e| fail(&e.to_string()));
                let mut rx = ring.consumer().unwrap_or_else(|e| fail(&e.to_string()));
                rx.set_wait_mode(WaitMode::Blocking);
                say(&mut out, &[1]);
                while let Some(n) = released() {
                    let mut sum = 0;
                    for _ in 0..n {
                        match rx.recv_timeout(PEER_STALL) {
                            Ok(m) => take(&m, &mut sum),
                            Err(e) => fail(&format!("recv: {e}")),
                        }
                    }
                    say(&mut out, &[n, sum]);
                }
            }
            T::Ring => fail("no ring subscriber"),
        }
    }

    /// Delivery benchmark publisher: per request, sends that many messages.
    fn publish(t: Transport, addr: &str, size: usize) {
        let mut out = stdio(std::io::stdout().as_fd());
        let mut next = requests();
        let mut msg = vec![0x5au8; size];
        let mut seq = 0u64;
        match t {
            T::Topic => {
                let topic = open_topic(addr);
                let mut tx = topic.publisher().unwrap_or_else(|e| fail(&e.to_string()));
                tx.set_wait_mode(WaitMode::Blocking);
                say(&mut out, &[1]);
                while let Some(n) = next() {
                    for _ in 0..n {
                        stamp(&mut msg, seq);
                        if let Err(e) = tx.publish(&msg) {
                            fail(&format!("publish: {e}"));
                        }
                        seq += 1;
                    }
                }
            }
            T::Rings => {
                let rings: Vec<Ring> = (0..FANOUT)
                    .map(|k| {
                        Ring::open(format!("{addr}-{k}").as_str())
                            .unwrap_or_else(|e| fail(&e.to_string()))
                    })
                    .collect();
                let mut txs: Vec<_> = rings
                    .iter()
                    .map(|r| {
                        let mut tx = r.producer().unwrap_or_else(|e| fail(&e.to_string()));
                        tx.set_wait_mode(WaitMode::Blocking);
                        tx
                    })
                    .collect();
                say(&mut out, &[1]);
                while let Some(n) = next() {
                    for _ in 0..n {
                        stamp(&mut msg, seq);
                        for tx in &mut txs {
                            if let Err(e) = tx.send(&msg) {
                                fail(&format!("send: {e}"));
                            }
                        }
                        seq += 1;
                    }
                }
            }
            T::Ring => fail("no ring publisher"),
        }
    }

    /// Latency echo: everything received goes back, copied from the read guard into a
    /// reserved slot.
    fn echo(t: Transport, addr: &str) {
        match t {
            T::Topic => {
                let mut out = stdio(std::io::stdout().as_fd());
                let (req, rep) = addr.split_once(',').unwrap_or_else(|| fail("bad names"));
                let (req, rep) = (open_topic(req), open_topic(rep));
                let mut rx = req.subscriber().unwrap_or_else(|e| fail(&e.to_string()));
                rx.set_wait_mode(WaitMode::BusyPoll);
                let mut tx = rep.publisher().unwrap_or_else(|e| fail(&e.to_string()));
                tx.set_wait_mode(WaitMode::BusyPoll);
                say(&mut out, &[1]);
                while let Ok(msg) = rx.recv() {
                    let Ok(mut reply) = tx.reserve(msg.len()) else {
                        return;
                    };
                    reply.copy_from_slice(&msg);
                    reply.commit();
                }
            }
            T::Ring => {
                let mut end = Pipe::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                end.set_wait_mode(WaitMode::BusyPoll);
                let (mut tx, mut rx) = end.split();
                while let Ok(msg) = rx.recv() {
                    let Ok(mut reply) = tx.reserve(msg.len()) else {
                        return;
                    };
                    reply.copy_from_slice(&msg);
                    reply.commit();
                }
            }
            T::Rings => fail("no fan-out echo"),
        }
    }
}
