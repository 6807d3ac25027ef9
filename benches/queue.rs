//! The MPMC [`Queue`] between real processes, against an OS pipe shared the same way and (one
//! producer, one consumer) the SPSC [`Ring`].
//!
//! `cargo bench --bench queue` (about 75 s; `-- --quick` about 15 s). The bench binary
//! re-executes itself for every other process (the `SHMQ_QUEUE_BENCH_PEER` variable picks the
//! role, so `main` runs the peer instead of criterion).
//!
//! - `throughput/<n>p<n>c/<transport>/<size>`: `n` producer processes and `n` consumer
//!   processes share one queue (or one pipe). Per sample the bench releases the consumers, tells
//!   each producer how many items to send (the sample's items split evenly), and times from
//!   then until every consumer has reported; the figure is per item. A producer sends its share
//!   and then one stop item; a consumer takes items until it gets a stop item, then reports how
//!   many items it got and their checksum and waits to be released again (so `n` stop items
//!   stop exactly `n` consumers). Every item carries its producer and that producer's sequence
//!   number; each consumer checks that it sees every producer's numbers strictly increasing,
//!   and the bench checks that the consumers together got exactly the items sent (count and
//!   sum of the tags). A 1 KiB item carries its tag at both ends, so a torn copy is caught too.
//! - `latency/<transport>/<size>`: ping-pong between the bench and one peer through a request
//!   queue and a reply queue (or a pipe each way); the time is half a round trip. After each,
//!   in `--bench` mode, a line gives p50/p99 of the one-way time (one clock read per trip).
//!
//! Items: 8 bytes is `Queue<u64>`, 1 KiB is `Queue<[u8; 1024]>` (the typed queue, copied in by
//! `put` and out by `get`). The SPSC ring carries the same bytes (`send` copies in, the
//! consumer copies each message out of the read guard). Pipe writers write each item with one
//! `write(2)` (atomic: at most `PIPE_BUF`), pipe readers read exactly one item per
//! `read_exact` from the shared pipe (no read-ahead buffer: a multi-reader pipe cannot have one,
//! as a reader would take other readers' items). So `pipe` here costs a `read(2)` per item,
//! unlike `throughput/pipe` in `benches/ring.rs`, whose single reader uses a 64 KiB `BufReader`.
//!
//! Buffers: every transport holds about 1 MiB: the queue 65 536 8-byte or 1 024 1 KiB items,
//! the ring 1 MiB, the pipe is resized to 1 MiB (`F_SETPIPE_SZ`; best effort).
//!
//! Transports: `queue-hybrid` (the default [`WaitMode::Hybrid`] on every handle),
//! `queue-blocking` ([`WaitMode::Blocking`]: 4P4C and latency), `queue-busy` (latency only),
//! `ring-hybrid` (1P1C only), `pipe`.
//!
//! Placement. With one producer and one consumer the producer runs on CPU 0 and the consumer
//! on CPU 1 (the latency peer on CPU 1, the bench on CPU 0). With more, the processes may run
//! on any CPU the bench started with: on a 2-CPU machine 4P4C is 8 processes sharing 2 CPUs,
//! which is the point of that case. As in `benches/ring.rs`, each benchmark prints the
//! cache-line floor (a counter bounced between CPUs 0 and 1) measured before and after it;
//! compare results only where those floors agree.
//!
//! Cleanup: every process is killed and reaped when its benchmark ends (also while unwinding
//! from a panic), the kernel kills a peer whose parent dies (`PR_SET_PDEATHSIG`), a peer whose
//! parent is gone exits, and the bench gives up (panics) if a consumer does not report within
//! 20 s. Segments are created by the bench under a name holding its pid and removed when the
//! creating handle drops; those of a killed earlier run are removed at start.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

use common::{RoundTrip, readable_within, remove_stale, set_affinity};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use shmq::{GetError, Pod, Queue, RecvError, Ring, Segment, WaitMode};

/// Set in a peer's environment: `role:transport:size:parent-pid:cpus:n:index:address`.
const PEER_ENV: &str = "SHMQ_QUEUE_BENCH_PEER";
/// Prefix of every name this bench puts in /dev/shm.
const PREFIX: &str = "shmq-benchqueue";
const BENCH_CPU: usize = 0;
const PEER_CPU: usize = 1;
/// The bench gives up (panics) when a consumer or the echo peer is silent this long.
const BENCH_STALL: Duration = Duration::from_secs(20);
/// A peer gives up when the other side is silent this long in the middle of an exchange.
const PEER_STALL: Duration = Duration::from_secs(30);

const SIZES: [usize; 2] = [8, 1024];
/// Bytes of buffer every transport gets (see "Buffers" above).
const BUFFER_BYTES: usize = 1 << 20;
/// Queue capacity (items) for `size`-byte items: about `BUFFER_BYTES` of slots.
fn queue_capacity(size: usize) -> usize {
    (BUFFER_BYTES / (8 + size)).next_power_of_two()
}

/// Round trips (at most) for the p50/p99 line after each latency benchmark.
const PERCENTILE_TRIPS: usize = 100_000;
const PERCENTILE_BUDGET: Duration = Duration::from_millis(300);

fn main() {
    if let Ok(spec) = std::env::var(PEER_ENV) {
        peer::main(&spec);
        return;
    }
    // Every CPU the bench may use, read before it pins itself.
    let _ = cpu_list(None);
    if let Err(e) = set_affinity(&[BENCH_CPU]) {
        eprintln!("queue bench: not pinned to CPU {BENCH_CPU} ({e}); results will be noisier");
    }
    remove_stale(PREFIX, &["/dev/shm"]);
    benches();
    Criterion::default().configure_from_args().final_summary();
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = throughput, latency
}

// ---------------------------------------------------------------------------------------------
// Items, tags and checks.

/// An item's tag: `producer + 1` in the top 16 bits, that producer's sequence number below.
const SEQ_BITS: u32 = 48;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// The tag of the item a producer sends after its share (never a data tag: producer 65 535
/// would need sequence number 2^48 - 1).
const STOP: u64 = u64::MAX;

fn tag(producer: usize, seq: u64) -> u64 {
    ((producer as u64 + 1) << SEQ_BITS) | (seq & SEQ_MASK)
}

/// Sum of the tags of producer `p`'s items `first .. first + count` (wrapping, as the
/// consumers add them).
fn tag_sum(p: usize, first: u64, count: u64) -> u64 {
    let base = count.wrapping_mul(tag(p, 0));
    let seqs = count
        .wrapping_mul(first)
        .wrapping_add(count * count.saturating_sub(1) / 2);
    base.wrapping_add(seqs)
}

/// What the benches send: a tag written into a `Pod` value.
trait Item: Pod + Copy {
    fn stamp(&mut self, tag: u64);
    /// The tag, or `None` if the item is torn (its copies of the tag differ).
    fn tag(&self) -> Option<u64>;
}

impl Item for u64 {
    #[inline(always)]
    fn stamp(&mut self, tag: u64) {
        *self = tag;
    }
    #[inline(always)]
    fn tag(&self) -> Option<u64> {
        Some(*self)
    }
}

/// The tag in the first and the last 8 bytes; the bytes between keep their 0xA5 filler.
impl<const N: usize> Item for [u8; N] {
    #[inline(always)]
    fn stamp(&mut self, tag: u64) {
        self[..8].copy_from_slice(&tag.to_le_bytes());
        self[N - 8..].copy_from_slice(&tag.to_le_bytes());
    }
    #[inline(always)]
    fn tag(&self) -> Option<u64> {
        let head = u64::from_le_bytes(self[..8].try_into().ok()?);
        let tail = u64::from_le_bytes(self[N - 8..].try_into().ok()?);
        (head == tail).then_some(head)
    }
}

fn filler<T: Item>() -> T {
    let mut item = T::new_zeroed();
    item.as_mut_bytes().fill(0xA5);
    item
}

// ---------------------------------------------------------------------------------------------
// Transports, names, CPUs, clean-up.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Queue(WaitMode),
    Ring,
    Pipe,
}

use Transport as T;

impl Transport {
    const ALL: [Transport; 5] = [
        T::Queue(WaitMode::BusyPoll),
        T::Queue(WaitMode::Hybrid),
        T::Queue(WaitMode::Blocking),
        T::Ring,
        T::Pipe,
    ];

    fn name(self) -> &'static str {
        match self {
            T::Queue(WaitMode::BusyPoll) => "queue-busy",
            T::Queue(WaitMode::Hybrid) => "queue-hybrid",
            T::Queue(WaitMode::Blocking) => "queue-blocking",
            T::Ring => "ring-hybrid",
            T::Pipe => "pipe",
        }
    }

    fn parse(s: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == s)
    }
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

/// A pipe whose ends are inherited by the processes spawned while it is open (no
/// `O_CLOEXEC`): the shared data pipe of a `pipe` throughput benchmark.
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int. Best effort: a
    // smaller pipe is still a valid (slower) pipe.
    unsafe {
        libc::fcntl(
            w.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            BUFFER_BYTES as libc::c_int,
        )
    };
    (r, w)
}

// ---------------------------------------------------------------------------------------------
// The bench side: peer processes.

/// A peer process; killed and reaped on drop. Its stdin is its control channel and its
/// stdout its report channel (or, for a `pipe` latency peer, the two data channels).
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
    /// Producers: unused; consumers: how many producers tag items.
    n: usize,
    /// Producers: this producer's number (in its tags).
    index: usize,
    addr: &'a str,
}

impl Proc {
    fn spawn(s: Spec<'_>) -> Proc {
        let spec = format!(
            "{}:{}:{}:{}:{}:{}:{}:{}",
            s.role,
            s.t.name(),
            s.size,
            std::process::id(),
            cpu_list(s.cpu),
            s.n,
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

    /// Reads one `[count, checksum]` report, giving up after `BENCH_STALL`.
    fn report(&mut self) -> [u64; 2] {
        let out = self.report.as_mut().expect("report pipe");
        if !readable_within(out.as_fd(), BENCH_STALL) {
            self.died("no report: items lost or a process stalled");
        }
        let mut buf = [0u8; 16];
        if let Err(e) = out.read_exact(&mut buf) {
            self.died(&format!("report read: {e}"));
        }
        let word = |i: usize| u64::from_le_bytes(buf[8 * i..8 * i + 8].try_into().expect("8"));
        [word(0), word(1)]
    }

    #[cold]
    fn died(&mut self, what: &str) -> ! {
        let status = self.child.try_wait().ok().flatten();
        panic!("queue bench peer failed ({what}); exit status {status:?}")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput.

/// The processes of one throughput benchmark and the transport they share.
struct Group {
    producers: Vec<Proc>,
    consumers: Vec<Proc>,
    /// Each producer's next sequence number.
    next: Vec<u64>,
    /// The creating handle of the queue or ring (removed when it drops, after the peers).
    _shm: Option<Box<dyn std::any::Any>>,
}

impl Group {
    fn open(t: Transport, size: usize, n: usize) -> Group {
        let name = unique("thr");
        let mut pipe_fds = None;
        let shm: Option<Box<dyn std::any::Any>> = match t {
            T::Queue(_) => {
                let cap = queue_capacity(size);
                Some(match size {
                    8 => Box::new(Queue::<u64>::create(name.as_str(), cap).expect("queue")),
                    1024 => {
                        Box::new(Queue::<[u8; 1024]>::create(name.as_str(), cap).expect("queue"))
                    }
                    _ => unreachable!("no {size}-byte items"),
                })
            }
            T::Ring => Some(Box::new(
                Ring::create(name.as_str(), BUFFER_BYTES).expect("ring"),
            )),
            T::Pipe => {
                pipe_fds = Some(inheritable_pipe());
                None
            }
        };
        let addr = match &pipe_fds {
            Some((r, w)) => format!("{},{}", r.as_raw_fd(), w.as_raw_fd()),
            None => name,
        };
        // One of each: producer on CPU 0, consumer on CPU 1. More: anywhere.
        let (pcpu, ccpu) = if n == 1 {
            (Some(BENCH_CPU), Some(PEER_CPU))
        } else {
            (None, None)
        };
        let spawn = |role, cpu, index| {
            Proc::spawn(Spec {
                role,
                t,
                size,
                cpu,
                n,
                index,
                addr: &addr,
            })
        };
        let consumers = (0..n).map(|i| spawn("cons", ccpu, i)).collect();
        let producers = (0..n).map(|i| spawn("prod", pcpu, i)).collect();
        // The peers have their own copies now; later processes must not inherit these.
        drop(pipe_fds);
        Group {
            producers,
            consumers,
            next: vec![0; n],
            _shm: shm,
        }
    }

    /// Sends `iters` items (split over the producers), checks what the consumers got, and
    /// returns the time from releasing them to the last consumer's report.
    fn timed(&mut self, iters: u64) -> Duration {
        let n = self.producers.len() as u64;
        let shares: Vec<u64> = (0..n)
            .map(|i| iters / n + u64::from(i < iters % n))
            .collect();
        let mut expected = 0u64;
        for (p, &share) in shares.iter().enumerate() {
            expected = expected.wrapping_add(tag_sum(p, self.next[p], share));
        }
        let start = Instant::now();
        for c in &mut self.consumers {
            c.tell(1);
        }
        for (p, &share) in self.producers.iter_mut().zip(&shares) {
            p.tell(share);
        }
        let (mut count, mut sum) = (0u64, 0u64);
        for c in &mut self.consumers {
            let [k, s] = c.report();
            count += k;
            sum = sum.wrapping_add(s);
        }
        let elapsed = start.elapsed();
        for (next, share) in self.next.iter_mut().zip(&shares) {
            *next += share;
        }
        assert_eq!(
            count, iters,
            "consumers got {count} items, {iters} were sent"
        );
        assert_eq!(sum, expected, "the items received are not the items sent");
        elapsed
    }
}

/// `(pairs, transports)` of the throughput benchmarks.
fn throughput_cases() -> [(usize, &'static [Transport]); 3] {
    const HYBRID: Transport = T::Queue(WaitMode::Hybrid);
    const BLOCKING: Transport = T::Queue(WaitMode::Blocking);
    [
        (1, &[HYBRID, T::Ring, T::Pipe]),
        (2, &[HYBRID, T::Pipe]),
        (4, &[HYBRID, BLOCKING, T::Pipe]),
    ]
}

fn throughput(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut g = c.benchmark_group("throughput");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    for (n, transports) in throughput_cases() {
        for size in SIZES {
            for &t in transports {
                let id = format!("{n}p{n}c/{}/{size}", t.name());
                // Opened on first use, so benchmarks filtered out cost nothing.
                let mut group: Option<Group> = None;
                let mut before = Duration::ZERO;
                g.bench_function(&id, |b| {
                    let grp = group.get_or_insert_with(|| {
                        if bench_mode {
                            before = floor_probe();
                        }
                        Group::open(t, size, n)
                    });
                    b.iter_custom(|iters| grp.timed(iters))
                });
                if let (Some(grp), true) = (group.take(), bench_mode) {
                    drop(grp);
                    println!("throughput/{id}: {}", floor_note(before, floor_probe()));
                }
            }
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Latency.

#[cold]
#[inline(never)]
fn bad_echo(got: Option<u64>, seq: u64) -> ! {
    panic!("expected echo of item {seq}, got {got:?}")
}

/// A request queue and a reply queue, both ends in the same wait mode.
struct QueueLat<I: Item> {
    _peer: Proc,
    req: Queue<I>,
    rep: Queue<I>,
    item: I,
    seq: u64,
}

impl<I: Item> RoundTrip for QueueLat<I> {
    #[inline]
    fn trip(&mut self) {
        self.seq += 1;
        self.item.stamp(self.seq);
        self.req.put(self.item).expect("put request");
        let echo = self.rep.get_timeout(BENCH_STALL).expect("get reply");
        if echo.tag() != Some(self.seq) {
            bad_echo(echo.tag(), self.seq);
        }
    }
}

/// The peer's stdin and stdout: `write_all` there, `read_exact` back.
struct PipeLat<I: Item> {
    _peer: Proc,
    w: ChildStdin,
    r: ChildStdout,
    item: I,
    echo: I,
    seq: u64,
}

impl<I: Item> RoundTrip for PipeLat<I> {
    #[inline]
    fn trip(&mut self) {
        self.seq += 1;
        self.item.stamp(self.seq);
        self.w
            .write_all(self.item.as_bytes())
            .expect("write request");
        self.r
            .read_exact(self.echo.as_mut_bytes())
            .expect("read reply");
        if self.echo.tag() != Some(self.seq) {
            bad_echo(self.echo.tag(), self.seq);
        }
    }
}

fn open_latency<I: Item>(t: Transport, size: usize) -> Box<dyn RoundTrip> {
    match t {
        T::Queue(mode) => {
            let (req_name, rep_name) = (unique("req"), unique("rep"));
            let mut req = Queue::<I>::create(req_name.as_str(), 64).expect("request queue");
            let mut rep = Queue::<I>::create(rep_name.as_str(), 64).expect("reply queue");
            req.set_wait_mode(mode);
            rep.set_wait_mode(mode);
            let peer = Proc::spawn(Spec {
                role: "echo",
                t,
                size,
                cpu: Some(PEER_CPU),
                n: 1,
                index: 0,
                addr: &format!("{req_name},{rep_name}"),
            });
            Box::new(QueueLat {
                _peer: peer,
                req,
                rep,
                item: filler(),
                seq: 0,
            })
        }
        T::Pipe => {
            let mut peer = Proc::spawn(Spec {
                role: "echo",
                t,
                size,
                cpu: Some(PEER_CPU),
                n: 1,
                index: 0,
                addr: "-",
            });
            let (w, r) = (peer.control.take(), peer.report.take());
            Box::new(PipeLat::<I> {
                _peer: peer,
                w: w.expect("peer stdin"),
                r: r.expect("peer stdout"),
                item: filler(),
                echo: filler(),
                seq: 0,
            })
        }
        T::Ring => unreachable!("no ring latency here: see benches/ring.rs"),
    }
}

fn latency(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut g = c.benchmark_group("latency");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    let cases = [
        (T::Queue(WaitMode::BusyPoll), 8),
        (T::Queue(WaitMode::Hybrid), 8),
        (T::Queue(WaitMode::Blocking), 8),
        (T::Pipe, 8),
        (T::Queue(WaitMode::Hybrid), 1024),
        (T::Pipe, 1024),
    ];
    for (t, size) in cases {
        let id = format!("{}/{size}", t.name());
        let mut link: Option<Box<dyn RoundTrip>> = None;
        let mut before = Duration::ZERO;
        g.bench_function(&id, |b| {
            let l = link.get_or_insert_with(|| {
                if bench_mode {
                    before = floor_probe();
                }
                match size {
                    8 => open_latency::<u64>(t, size),
                    _ => open_latency::<[u8; 1024]>(t, size),
                }
            });
            b.iter_custom(|iters| l.timed(iters) / 2)
        });
        if let (Some(mut l), true) = (link.take(), bench_mode) {
            let (p50, p99, trips) = l.percentiles(PERCENTILE_TRIPS, PERCENTILE_BUDGET);
            drop(l);
            println!(
                "latency/{id}: one-way p50 {} ns, p99 {} ns ({trips} round trips); {}",
                p50.as_nanos(),
                p99.as_nanos(),
                floor_note(before, floor_probe())
            );
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// The cache-line floor.

/// Spins until `ready` holds; `false` after `limit`.
#[inline(always)]
fn spin_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let mut spins: u32 = 0;
    let mut since: Option<Instant> = None;
    while !ready() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % (1 << 16) == 0 && since.get_or_insert_with(Instant::now).elapsed() > limit {
            return false;
        }
    }
    true
}

/// The cache-line floor right now: p50 one-way time of a counter bounced between this
/// process (CPU 0) and a peer (CPU 1) through two words on separate 128-byte blocks, over at
/// most 20 000 round trips or 200 ms.
fn floor_probe() -> Duration {
    let name = unique("floor");
    let seg = Segment::create(name.as_str(), 256).expect("floor segment");
    let (ping, pong) = (
        seg.atomic_u64(0).expect("in bounds"),
        seg.atomic_u64(128).expect("in bounds"),
    );
    let _peer = Proc::spawn(Spec {
        role: "floor",
        t: T::Pipe,
        size: 8,
        cpu: Some(PEER_CPU),
        n: 1,
        index: 0,
        addr: &name,
    });
    let mut times = Vec::with_capacity(20_000);
    let start = Instant::now();
    let mut prev = start;
    let mut seq = 0u64;
    while times.len() < 20_000 && prev - start < Duration::from_millis(200) {
        seq += 1;
        ping.store(seq, Ordering::Release);
        let back = spin_until(BENCH_STALL, || pong.load(Ordering::Acquire) == seq);
        assert!(back, "floor peer stopped answering");
        let now = Instant::now();
        times.push(now - prev);
        prev = now;
    }
    ping.store(STOP, Ordering::Release);
    times.sort_unstable();
    times[times.len() / 2] / 2
}

fn floor_note(before: Duration, after: Duration) -> String {
    let (lo, hi) = (before.min(after), before.max(after));
    let moved = if hi > lo * 2 {
        " (placement changed: do not compare)"
    } else {
        ""
    };
    format!(
        "cache-line floor p50 {} ns before, {} ns after{moved}",
        before.as_nanos(),
        after.as_nanos()
    )
}

// ---------------------------------------------------------------------------------------------
// The peer processes.

mod peer {
    use super::*;

    #[cold]
    fn fail(what: &str) -> ! {
        eprintln!("queue bench peer {}: {what}", std::process::id());
        std::process::exit(2)
    }

    pub(super) fn main(spec: &str) {
        let mut parts = spec.splitn(8, ':');
        let mut next = || parts.next().unwrap_or_else(|| fail("bad spec"));
        let (role, t, size, parent) = (next(), next(), next(), next());
        let (cpus, n, index, addr) = (next(), next(), next(), next());
        let t = Transport::parse(t).unwrap_or_else(|| fail("bad transport"));
        let size: usize = size.parse().unwrap_or_else(|_| fail("bad size"));
        let parent: u32 = parent.parse().unwrap_or_else(|_| fail("bad parent pid"));
        let n: usize = n.parse().unwrap_or_else(|_| fail("bad count"));
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

        match (role, size) {
            ("prod", 8) => produce::<u64>(t, addr, index),
            ("prod", 1024) => produce::<[u8; 1024]>(t, addr, index),
            ("cons", 8) => consume::<u64>(t, addr, n),
            ("cons", 1024) => consume::<[u8; 1024]>(t, addr, n),
            ("echo", 8) => echo::<u64>(t, addr),
            ("echo", 1024) => echo::<[u8; 1024]>(t, addr),
            ("floor", _) => floor(addr),
            _ => fail("bad role or size"),
        }
    }

    fn stdio(fd: BorrowedFd<'_>) -> File {
        File::from(
            fd.try_clone_to_owned()
                .unwrap_or_else(|_| fail("dup stdio")),
        )
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

    /// The end of the shared data pipe this peer uses (`addr` is `read-fd,write-fd`); closes
    /// the other end.
    fn pipe_end(addr: &str, write: bool) -> File {
        let (r, w) = addr.split_once(',').unwrap_or_else(|| fail("bad pipe fds"));
        let fd = |s: &str| -> OwnedFd {
            let fd: RawFd = s.parse().unwrap_or_else(|_| fail("bad fd"));
            // SAFETY: the bench spawned us with both ends of the pipe open under these
            // numbers (no O_CLOEXEC) and nothing else in this process uses them.
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        let (r, w) = (fd(r), fd(w));
        File::from(if write { w } else { r })
    }

    /// Sends `share` items of producer `index` and then a stop item.
    #[inline(always)]
    fn send_share<I: Item>(
        item: &mut I,
        seq: &mut u64,
        index: usize,
        share: u64,
        mut send: impl FnMut(&I),
    ) {
        for _ in 0..share {
            item.stamp(tag(index, *seq));
            send(item);
            *seq += 1;
        }
        item.stamp(STOP);
        send(item);
    }

    fn produce<I: Item>(t: Transport, addr: &str, index: usize) {
        let mut next = requests();
        let (mut item, mut seq): (I, u64) = (filler(), 0);
        match t {
            T::Queue(mode) => {
                let mut q = Queue::<I>::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                q.set_wait_mode(mode);
                while let Some(share) = next() {
                    send_share(&mut item, &mut seq, index, share, |i| {
                        if let Err(e) = q.put(*i) {
                            fail(&format!("put: {e}"));
                        }
                    });
                }
            }
            T::Ring => {
                let ring = Ring::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                let mut tx = ring.producer().unwrap_or_else(|e| fail(&e.to_string()));
                while let Some(share) = next() {
                    send_share(&mut item, &mut seq, index, share, |i| {
                        if let Err(e) = tx.send(i.as_bytes()) {
                            fail(&format!("send: {e}"));
                        }
                    });
                }
            }
            T::Pipe => {
                let mut w = pipe_end(addr, true);
                while let Some(share) = next() {
                    send_share(&mut item, &mut seq, index, share, |i| {
                        if let Err(e) = w.write_all(i.as_bytes()) {
                            fail(&format!("pipe write: {e}"));
                        }
                    });
                }
            }
        }
    }

    /// A consumer's checks: every producer's sequence numbers strictly increase; the count
    /// and the sum of the tags of one sample's items.
    struct Checker {
        last: Vec<Option<u64>>,
        count: u64,
        sum: u64,
    }

    impl Checker {
        /// Takes one item's tag; `false` for a stop item.
        #[inline(always)]
        fn take(&mut self, tag: Option<u64>) -> bool {
            let Some(tag) = tag else {
                fail("torn item: its two copies of the tag differ")
            };
            if tag == STOP {
                return false;
            }
            let (p, seq) = ((tag >> SEQ_BITS) as usize, tag & SEQ_MASK);
            if p == 0 || p > self.last.len() {
                fail(&format!("item {tag:#x} names no producer"));
            }
            if self.last[p - 1].is_some_and(|last| seq <= last) {
                fail(&format!(
                    "producer {} item {seq} after item {:?}: duplicated or reordered",
                    p - 1,
                    self.last[p - 1]
                ));
            }
            self.last[p - 1] = Some(seq);
            self.count += 1;
            self.sum = self.sum.wrapping_add(tag);
            true
        }

        /// Writes `[count, sum]` to the bench and starts the next sample.
        fn report(&mut self, out: &mut File) {
            let mut buf = [0u8; 16];
            buf[..8].copy_from_slice(&self.count.to_le_bytes());
            buf[8..].copy_from_slice(&self.sum.to_le_bytes());
            if out.write_all(&buf).is_err() {
                std::process::exit(0); // the bench is gone
            }
            (self.count, self.sum) = (0, 0);
        }
    }

    fn consume<I: Item>(t: Transport, addr: &str, producers: usize) {
        let mut released = requests();
        let mut out = stdio(std::io::stdout().as_fd());
        let mut check = Checker {
            last: vec![None; producers],
            count: 0,
            sum: 0,
        };
        let mut item: I = filler();
        match t {
            T::Queue(mode) => {
                let mut q = Queue::<I>::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                q.set_wait_mode(mode);
                while released().is_some() {
                    loop {
                        match q.get() {
                            Ok(i) if check.take(i.tag()) => {}
                            Ok(_) => break,
                            Err(GetError::Disconnected) => return,
                            Err(e) => fail(&format!("get: {e}")),
                        }
                    }
                    check.report(&mut out);
                }
            }
            T::Ring => {
                let ring = Ring::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                let mut rx = ring.consumer().unwrap_or_else(|e| fail(&e.to_string()));
                let size = item.as_bytes().len();
                while released().is_some() {
                    loop {
                        match rx.recv() {
                            Ok(msg) if msg.len() == size => {
                                item.as_mut_bytes().copy_from_slice(&msg);
                            }
                            Ok(msg) => fail(&format!("{}-byte message", msg.len())),
                            Err(RecvError::Disconnected) => return,
                            Err(e) => fail(&format!("recv: {e}")),
                        }
                        if !check.take(item.tag()) {
                            break;
                        }
                    }
                    check.report(&mut out);
                }
            }
            T::Pipe => {
                let mut r = pipe_end(addr, false);
                while released().is_some() {
                    loop {
                        if r.read_exact(item.as_mut_bytes()).is_err() {
                            return; // every writer is gone
                        }
                        if !check.take(item.tag()) {
                            break;
                        }
                    }
                    check.report(&mut out);
                }
            }
        }
    }

    fn echo<I: Item>(t: Transport, addr: &str) {
        match t {
            T::Queue(mode) => {
                let (req, rep) = addr.split_once(',').unwrap_or_else(|| fail("bad names"));
                let mut req = Queue::<I>::open(req).unwrap_or_else(|e| fail(&e.to_string()));
                let mut rep = Queue::<I>::open(rep).unwrap_or_else(|e| fail(&e.to_string()));
                req.set_wait_mode(mode);
                rep.set_wait_mode(mode);
                loop {
                    match req.get() {
                        Ok(i) => {
                            if let Err(e) = rep.put(i) {
                                fail(&format!("put: {e}"));
                            }
                        }
                        Err(GetError::Disconnected) => return,
                        Err(e) => fail(&format!("get: {e}")),
                    }
                }
            }
            T::Pipe => {
                let mut r = stdio(std::io::stdin().as_fd());
                let mut w = stdio(std::io::stdout().as_fd());
                let mut item: I = filler();
                while r.read_exact(item.as_mut_bytes()).is_ok()
                    && w.write_all(item.as_bytes()).is_ok()
                {}
            }
            T::Ring => fail("no ring echo"),
        }
    }

    fn floor(addr: &str) {
        let seg = Segment::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
        let ping = seg
            .atomic_u64(0)
            .unwrap_or_else(|| fail("segment too small"));
        let pong = seg
            .atomic_u64(128)
            .unwrap_or_else(|| fail("segment too small"));
        let mut last = 0;
        loop {
            let mut v = last;
            if !spin_until(PEER_STALL, || {
                v = ping.load(Ordering::Acquire);
                v != last
            }) {
                fail("no ping for 30 s");
            }
            if v == STOP {
                return;
            }
            pong.store(v, Ordering::Release);
            last = v;
        }
    }
}
