//! Messages between two real processes: shmq's rings against OS pipes, Unix and TCP sockets,
//! and raw shared-memory baselines, all measured in the same run.
//!
//! `cargo bench --bench ring` (about 3 minutes; `cargo bench --bench ring -- select` for the
//! Select comparison alone, about 15 s; plots are off unless asked for with
//! `--plotting-backend plotters`). The bench binary re-executes itself as the
//! peer (the `SHMQ_RING_BENCH_PEER` variable picks the role, so `main` runs the peer instead of
//! criterion); the bench pins itself to CPU 0 and the peer to CPU 1 (skipped if that fails).
//!
//! - `latency/<transport>/<size>`: ping-pong, the bench sends, the peer echoes. Reported time is
//!   half a round trip (one way). After each, a line gives p50/p99 of the one-way time from one
//!   clock read per round trip (criterion's statistics are over sample means).
//! - `select/<transport>/8`: the same ping-pong, 8-byte messages, where the receiving side of
//!   both processes waits in a [`Select`] over 64 registrations (`shmq-select-64`), against a
//!   blocking and a hybrid `recv` measured just before and after it; a last line gives the
//!   ratios of their p50 and p99. The 64: the live pipe, registered last (so finding it ready
//!   scans the other 63 first), 62 idle ring consumers whose producers the other process
//!   holds, and one idle [`Event`]. Each wait builds a fresh `Select` (its registrations
//!   borrow the consumer that `try_recv` then needs), selects, drops it and calls `try_recv`.
//!   `Select` has one wait strategy whatever the consumer's [`WaitMode`]: poll every
//!   registration, spin briefly (a bounded spin of about 127 pauses and two `sched_yield`s,
//!   polling all 64 between them: a few µs), then announce itself to every object and sleep
//!   in one `futex_waitv` on all their bells. So it sits between `shmq-blocking` (sleeps at
//!   once) and `shmq-hybrid` (spins for 50 µs first); in a ping-pong whose two sides answer
//!   within that spin, neither ever sleeps. The `-parked` variants (`shmq-blocking-parked`,
//!   `shmq-select-64-parked`) make both sides sleep every time: each side spins for a think
//!   time of 100 µs before it sends, so the receiver has finished spinning and fallen asleep
//!   (with 20 µs, a select over 64 was often still on its way to sleep: about 8 µs of spin,
//!   then a membarrier and a `futex_waitv` over 65 shared words). Their reported times
//!   include the think time; the ratio line takes it off both.
//! - `throughput/<transport>/<size>`: the peer streams `iters + 1` messages per sample, each with
//!   a sequence number in its first 8 bytes (an 8-byte message is just the number); the bench
//!   checks every number is the next one and times from the first message to the last.
//!
//! Fairness rules for throughput. Every producer copies each message from its own buffer into
//! the transport (`send`, `write_all`, a memcpy), one message at a time. Every consumer copies
//! each message out into its own buffer (`read_exact`, a memcpy, `copy_from_slice` from the
//! ring) except `shmq-busy-inplace`, which reads only the sequence number where it lies in the
//! ring (zero-copy receive). Stream consumers read through a 64 KiB `BufReader`, as a real
//! framed reader would. The raw rings hold as many messages as shmq's ring of the same size.
//!
//! Transports: `shmq-busy` / `shmq-hybrid` / `shmq-blocking` (both ends in that [`WaitMode`]),
//! `shmq-busy-drain` (the producer sends one message at a time, the consumer takes whatever
//! is waiting with `try_drain` and releases it with one store), `shmq-busy-batch` (as
//! `shmq-busy-drain`, but the producer publishes up to 64 messages per `WriteBatch`), `pipe`
//! (the peer's stdin/stdout), `unix`, `tcp` (127.0.0.1, `TCP_NODELAY`), and the floors:
//! `raw-cacheline` (a counter bounced through two words on separate 128-byte blocks),
//! `raw-spin-ring` (SPSC ring of `AtomicU64` slots with cached indices) and `raw-memcpy` (SPSC
//! ring of fixed-size chunks copied in and out with memcpy).
//!
//! Placement. On a VM the host may move the vCPUs between physical cores mid-run, changing
//! every number at once (on the 2-vCPU KVM guest this was written on, the cache-line floor
//! flips between ~55 ns and ~270 ns one way). So each benchmark also prints the floor measured
//! just before and just after it; compare results only where those floors agree.
//!
//! Peers never outlive the bench: the bench kills its peer when a benchmark ends (also while
//! unwinding from a panic), the kernel kills a peer whose parent dies (`PR_SET_PDEATHSIG`), and
//! a watchdog ends a peer that makes no progress for 30 s. Every shmq segment is created by the
//! bench process under a name holding its pid and removed when its handle drops; the raw rings
//! live in an unnamed memfd, inherited by the peer.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

use common::{RoundTrip, remove_stale, set_affinity};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use shmq::{
    Consumer, Event, Pipe, Producer, Ring, Segment, Select, SelectError, TryRecvError,
    TrySendError, WaitMode,
};

/// Set in the peer's environment: `role:transport:size:parent-pid:address`.
const PEER_ENV: &str = "SHMQ_RING_BENCH_PEER";
/// Prefix of every name this bench puts in /dev/shm or /tmp.
const PREFIX: &str = "shmq-benchring";
const BENCH_CPU: usize = 0;
const PEER_CPU: usize = 1;
/// The bench gives up (panics) when its peer makes no progress for this long.
const BENCH_STALL: Duration = Duration::from_secs(10);
/// A peer exits when it makes no progress for this long.
const PEER_STALL: Duration = Duration::from_secs(30);

const LATENCY_SIZES: [usize; 3] = [8, 64, 1024];
const THROUGHPUT_SIZES: [usize; 5] = [8, 64, 1024, 65536, 1 << 20];
/// Largest number of messages `shmq-busy-batch` publishes with one store.
const BATCH: u64 = 64;
/// Round trips (at most) for the p50/p99 line after each latency benchmark.
const PERCENTILE_TRIPS: usize = 200_000;
const PERCENTILE_BUDGET: Duration = Duration::from_secs(1);

fn main() {
    if let Ok(spec) = std::env::var(PEER_ENV) {
        peer::main(&spec);
        return;
    }
    if let Err(e) = set_affinity(&[BENCH_CPU]) {
        eprintln!("ring bench: not pinned to CPU {BENCH_CPU} ({e}); results will be noisier");
    }
    remove_stale(PREFIX, &["/dev/shm", "/tmp"]);
    benches();
    Criterion::default().configure_from_args().final_summary();
}

criterion_group! {
    name = benches;
    // Plots cost ~4 s per benchmark on a pinned CPU; `--plotting-backend plotters` brings
    // them back.
    config = Criterion::default().without_plots();
    targets = latency, select, throughput
}

// ---------------------------------------------------------------------------------------------
// Transports and shared plumbing.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    ShmqBusy,
    ShmqHybrid,
    ShmqBlocking,
    ShmqBusyInplace,
    ShmqBusyBatch,
    ShmqBusyDrain,
    Pipe,
    Unix,
    Tcp,
    RawCacheline,
    RawSpinRing,
    RawMemcpy,
    ShmqSelect64,
    ShmqBlockingParked,
    ShmqSelect64Parked,
}

use Transport as T;

impl Transport {
    const ALL: [Transport; 15] = [
        T::ShmqBusy,
        T::ShmqHybrid,
        T::ShmqBlocking,
        T::ShmqBusyInplace,
        T::ShmqBusyBatch,
        T::ShmqBusyDrain,
        T::Pipe,
        T::Unix,
        T::Tcp,
        T::RawCacheline,
        T::RawSpinRing,
        T::RawMemcpy,
        T::ShmqSelect64,
        T::ShmqBlockingParked,
        T::ShmqSelect64Parked,
    ];

    fn name(self) -> &'static str {
        match self {
            T::ShmqBusy => "shmq-busy",
            T::ShmqHybrid => "shmq-hybrid",
            T::ShmqBlocking => "shmq-blocking",
            T::ShmqBusyInplace => "shmq-busy-inplace",
            T::ShmqBusyBatch => "shmq-busy-batch",
            T::ShmqBusyDrain => "shmq-busy-drain",
            T::Pipe => "pipe",
            T::Unix => "unix",
            T::Tcp => "tcp",
            T::RawCacheline => "raw-cacheline",
            T::RawSpinRing => "raw-spin-ring",
            T::RawMemcpy => "raw-memcpy",
            T::ShmqSelect64 => "shmq-select-64",
            T::ShmqBlockingParked => "shmq-blocking-parked",
            T::ShmqSelect64Parked => "shmq-select-64-parked",
        }
    }

    fn parse(s: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == s)
    }

    fn mode(self) -> WaitMode {
        match self {
            T::ShmqHybrid => WaitMode::Hybrid,
            T::ShmqBlocking | T::ShmqBlockingParked => WaitMode::Blocking,
            _ => WaitMode::BusyPoll,
        }
    }

    /// How long each side works on a message before it answers (see [`THINK`]).
    fn think(self) -> Duration {
        match self {
            T::ShmqBlockingParked | T::ShmqSelect64Parked => THINK,
            _ => Duration::ZERO,
        }
    }
}

/// The `-parked` variants' think time: each side spins this long before it sends, well
/// over `Select`'s spin and its way to sleep, so every receiver sleeps when its message
/// comes.
const THINK: Duration = Duration::from_micros(100);

/// Spins for `d` (a side's think time; nothing when zero).
#[inline(always)]
fn think(d: Duration) {
    if !d.is_zero() {
        let until = Instant::now() + d;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

/// Bytes of shmq ring per direction for `size`-byte messages: 1 MiB, or room for 3 messages.
fn ring_bytes(size: usize) -> usize {
    (4 * size).max(1 << 20)
}

/// Messages a shmq ring of `ring_bytes(size)` holds (8-byte header, payload rounded to 8);
/// the raw rings get the same number of slots.
fn ring_slots(size: usize) -> usize {
    ring_bytes(size) / (8 + size.div_ceil(8) * 8)
}

/// Raw rings: producer index at 0, consumer index at 128 (separate 128-byte blocks), slots
/// from 4096.
const RAW_TAIL: usize = 0;
const RAW_HEAD: usize = 128;
const RAW_SLOTS: usize = 4096;

fn raw_len(t: Transport, size: usize) -> usize {
    let slot = if t == T::RawSpinRing { 8 } else { size };
    RAW_SLOTS + ring_slots(size) * slot
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}-{}-{n}-{tag}", std::process::id())
}

/// Writes the sequence number into the first 8 bytes of `msg`.
#[inline(always)]
fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// Panics unless `msg` is `size` bytes and starts with `seq`.
#[inline(always)]
fn check(msg: &[u8], seq: u64, size: usize) {
    if msg.len() != size || msg[..8] != seq.to_le_bytes() {
        bad_message(msg, seq, size);
    }
}

#[cold]
#[inline(never)]
fn bad_message(msg: &[u8], seq: u64, size: usize) -> ! {
    panic!(
        "expected message {seq} of {size} bytes, got {} bytes starting {:?}",
        msg.len(),
        &msg[..msg.len().min(8)]
    )
}

/// Spins until `ready` holds; gives up after `limit` (the peer is gone or wedged).
#[inline(always)]
fn spin_until(limit: Duration, mut ready: impl FnMut() -> bool) {
    let mut spins: u32 = 0;
    let mut since: Option<Instant> = None;
    while !ready() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % (1 << 16) == 0 && since.get_or_insert_with(Instant::now).elapsed() > limit {
            stalled(limit);
        }
    }
}

#[cold]
#[inline(never)]
fn stalled(limit: Duration) -> ! {
    panic!("ring bench: no progress from the other process for {limit:?}")
}

/// A shared mapping of an unnamed memfd (the raw baselines' memory). The creator's fd is
/// inheritable, so the exec'd peer finds it under the same number.
struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedMap {
    fn create(len: usize) -> (SharedMap, OwnedFd) {
        // SAFETY: a NUL-terminated name; flags 0 (no MFD_CLOEXEC) keep the fd across exec.
        let fd = unsafe { libc::memfd_create(c"shmq-benchring".as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        File::from(fd.try_clone().expect("dup memfd"))
            .set_len(len as u64)
            .expect("size memfd");
        (SharedMap::map(fd.as_fd(), len), fd)
    }

    /// Maps the memfd the bench passed down as descriptor `fd`, then closes it.
    fn inherit(fd: RawFd, len: usize) -> SharedMap {
        // SAFETY: the bench spawned us with this descriptor open (see `create`) and nothing
        // else in this process uses it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let have = File::from(fd.try_clone().expect("dup memfd"))
            .metadata()
            .expect("fstat memfd")
            .len();
        assert!(have >= len as u64, "memfd is {have} bytes, expected {len}");
        SharedMap::map(fd.as_fd(), len)
    }

    fn map(fd: BorrowedFd<'_>, len: usize) -> SharedMap {
        // SAFETY: a fresh shared mapping of a file at least `len` bytes long; the kernel
        // picks the address, so no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert!(
            p != libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        SharedMap {
            ptr: NonNull::new(p.cast()).expect("mmap returned null"),
            len,
        }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        &self.words(offset, 1)[0]
    }

    fn words(&self, offset: usize, n: usize) -> &[AtomicU64] {
        assert!(offset % 8 == 0 && offset + 8 * n <= self.len);
        // SAFETY: in bounds and 8-byte aligned (the mapping is page-aligned), valid for the
        // lifetime of `&self` (unmapped on drop). The memory is shared with the peer, which
        // touches these words only atomically.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast(), n) }
    }

    /// The `size`-byte chunk at `offset`, as a raw pointer for memcpy.
    fn chunk(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(offset + size <= self.len);
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no reference into it outlives
        // `self` (they all borrow it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A socket path removed on drop.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The bench side.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Latency,
    Throughput,
}

/// The peer process; killed and reaped on drop. Its stdin is the control channel (throughput
/// requests) or, for `pipe`, the data channel; its stdout is the `pipe` data channel.
struct Peer {
    child: Child,
    control: Option<ChildStdin>,
    out: Option<ChildStdout>,
}

impl Peer {
    fn spawn(role: Role, t: Transport, size: usize, addr: &str) -> Peer {
        let role = match role {
            Role::Latency => "lat",
            Role::Throughput => "thr",
        };
        let spec = format!("{role}:{}:{size}:{}:{addr}", t.name(), std::process::id());
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .env(PEER_ENV, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn peer");
        Peer {
            control: child.stdin.take(),
            out: child.stdout.take(),
            child,
        }
    }

    /// Asks a throughput peer for `n` messages.
    fn request(&mut self, n: u64) {
        let control = self.control.as_mut().expect("control pipe");
        if let Err(e) = control.write_all(&n.to_le_bytes()) {
            self.died(&format!("control write: {e}"));
        }
    }

    #[cold]
    fn died(&mut self, what: &str) -> ! {
        let status = self.child.try_wait().ok().flatten();
        panic!("ring bench peer failed ({what}); exit status {status:?}")
    }

    /// Accepts the peer's connection, failing if it exits or takes more than 10 s.
    fn accept<S>(&mut self, mut accept: impl FnMut() -> std::io::Result<S>) -> S {
        let deadline = Instant::now() + BENCH_STALL;
        loop {
            match accept() {
                Ok(s) => return s,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    if let Ok(Some(_)) = self.child.try_wait() {
                        self.died("exited before connecting");
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => self.died(&format!("accept: {e}")),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Unix socket connection to a freshly spawned peer (the path is gone once connected).
fn unix_peer(role: Role, t: Transport, size: usize) -> (Peer, UnixStream) {
    let path = TempPath(std::env::temp_dir().join(format!("{}.sock", unique("unix"))));
    let listener = UnixListener::bind(&path.0).expect("bind unix socket");
    listener.set_nonblocking(true).expect("nonblocking");
    let mut peer = Peer::spawn(role, t, size, path.0.to_str().expect("utf-8 path"));
    let s = peer.accept(|| listener.accept().map(|(s, _)| s));
    s.set_nonblocking(false).expect("blocking");
    (peer, s)
}

/// A TCP connection (loopback, `TCP_NODELAY`) to a freshly spawned peer.
fn tcp_peer(role: Role, t: Transport, size: usize) -> (Peer, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("local addr").port();
    let mut peer = Peer::spawn(role, t, size, &port.to_string());
    let s = peer.accept(|| listener.accept().map(|(s, _)| s));
    s.set_nonblocking(false).expect("blocking");
    s.set_nodelay(true).expect("TCP_NODELAY");
    (peer, s)
}

/// The cache-line floor right now: p50 one-way of `raw-cacheline` over 20 000 round trips
/// (see "Placement" in the module docs).
fn floor_probe() -> Duration {
    open_latency(T::RawCacheline, 8)
        .percentiles(20_000, Duration::from_millis(200))
        .0
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

/// shmq: a [`Pipe`], both ends in the same wait mode; the echo is checked in place.
struct ShmqLat {
    _peer: Peer,
    pipe: Pipe,
    msg: Vec<u8>,
    seq: u64,
    think: Duration,
}

impl RoundTrip for ShmqLat {
    #[inline]
    fn trip(&mut self) {
        think(self.think);
        self.seq += 1;
        stamp(&mut self.msg, self.seq);
        self.pipe.send(&self.msg).expect("shmq send");
        let echo = self.pipe.recv().expect("shmq recv");
        check(&echo, self.seq, self.msg.len());
    }
}

/// OS pipes, Unix and TCP sockets: `write_all` there, `read_exact` back.
struct StreamLat<R, W> {
    _peer: Peer,
    r: R,
    w: W,
    msg: Vec<u8>,
    echo: Vec<u8>,
    seq: u64,
}

impl<R: Read, W: Write> RoundTrip for StreamLat<R, W> {
    #[inline]
    fn trip(&mut self) {
        self.seq += 1;
        stamp(&mut self.msg, self.seq);
        self.w.write_all(&self.msg).expect("write");
        self.r.read_exact(&mut self.echo).expect("read echo");
        check(&self.echo, self.seq, self.msg.len());
    }
}

/// The floor: a counter bounced through two words of a raw segment, on separate 128-byte
/// blocks (ping written by the bench, pong by the peer).
struct CachelineLat {
    _peer: Peer,
    ping: NonNull<u64>,
    pong: NonNull<u64>,
    _seg: Segment,
    seq: u64,
}

impl RoundTrip for CachelineLat {
    #[inline]
    fn trip(&mut self) {
        // SAFETY: both pointers come from `Segment::atomic_u64` on `_seg`, which this struct
        // keeps mapped; the words are only ever accessed atomically, here and in the peer.
        let (ping, pong) = unsafe {
            (
                AtomicU64::from_ptr(self.ping.as_ptr()),
                AtomicU64::from_ptr(self.pong.as_ptr()),
            )
        };
        self.seq += 1;
        let seq = self.seq;
        ping.store(seq, Ordering::Release);
        spin_until(BENCH_STALL, || pong.load(Ordering::Acquire) == seq);
    }
}

fn open_latency(t: Transport, size: usize) -> Box<dyn RoundTrip> {
    let msg = vec![0xA5u8; size];
    let echo = vec![0u8; size];
    match t {
        T::ShmqBusy | T::ShmqHybrid | T::ShmqBlocking | T::ShmqBlockingParked => {
            let name = unique("lat");
            let mut pipe = Pipe::create(name.as_str(), 64 << 10).expect("create pipe");
            pipe.set_wait_mode(t.mode());
            let peer = Peer::spawn(Role::Latency, t, size, &name);
            Box::new(ShmqLat {
                _peer: peer,
                pipe,
                msg,
                seq: 0,
                think: t.think(),
            })
        }
        T::Pipe => {
            let mut peer = Peer::spawn(Role::Latency, t, size, "-");
            let (w, r) = (peer.control.take(), peer.out.take());
            Box::new(StreamLat {
                _peer: peer,
                r: r.expect("peer stdout"),
                w: w.expect("peer stdin"),
                msg,
                echo,
                seq: 0,
            })
        }
        T::Unix => {
            let (peer, s) = unix_peer(Role::Latency, t, size);
            Box::new(StreamLat {
                _peer: peer,
                r: s.try_clone().expect("clone socket"),
                w: s,
                msg,
                echo,
                seq: 0,
            })
        }
        T::Tcp => {
            let (peer, s) = tcp_peer(Role::Latency, t, size);
            Box::new(StreamLat {
                _peer: peer,
                r: s.try_clone().expect("clone socket"),
                w: s,
                msg,
                echo,
                seq: 0,
            })
        }
        T::RawCacheline => {
            let name = unique("line");
            let seg = Segment::create(name.as_str(), 256).expect("create segment");
            let word = |off| NonNull::from(seg.atomic_u64(off).expect("in bounds")).cast();
            let (ping, pong) = (word(0), word(128));
            let peer = Peer::spawn(Role::Latency, t, size, &name);
            Box::new(CachelineLat {
                _peer: peer,
                ping,
                pong,
                _seg: seg,
                seq: 0,
            })
        }
        T::ShmqSelect64 | T::ShmqSelect64Parked => {
            let name = unique("sel");
            let pipe = Pipe::create(name.as_str(), 64 << 10).expect("create pipe");
            let idle = IdleSet::create(&name);
            let peer = Peer::spawn(Role::Latency, t, size, &name);
            Box::new(SelectLat {
                _peer: peer,
                pipe,
                idle,
                msg,
                seq: 0,
                think: t.think(),
            })
        }
        _ => unreachable!("{t:?} has no latency benchmark"),
    }
}

/// Idle rings per side of a `shmq-select-64` ping-pong: with the idle [`Event`] and the live
/// pipe, 64 registrations.
const IDLE_RINGS: usize = 62;

/// One side's 63 idle registrations of a `shmq-select-64` ping-pong: [`IDLE_RINGS`] ring
/// consumers whose producers the other process holds (quiet but alive, like a server's idle
/// clients: a dead or absent producer would make a ring ready, or cost nothing to check) and
/// an [`Event`] nobody sets. The bench creates every segment (names `BASE-a<k>`: the bench
/// consumes; `BASE-b<k>`: the peer consumes; `BASE-e0`, `BASE-e1`: the events) and removes
/// them when its set drops.
struct IdleSet {
    rx: Vec<Consumer>,
    _tx: Vec<Producer>,
    event: Event,
    _peers_event: Option<Event>,
}

impl IdleSet {
    /// The bench's set; also creates the peer's rings and event.
    fn create(base: &str) -> IdleSet {
        let ring = |side: char, k: usize| {
            Ring::create(format!("{base}-{side}{k}").as_str(), 4096).expect("create idle ring")
        };
        IdleSet {
            rx: (0..IDLE_RINGS)
                .map(|k| ring('a', k).consumer().expect("consumer"))
                .collect(),
            _tx: (0..IDLE_RINGS)
                .map(|k| ring('b', k).producer().expect("producer"))
                .collect(),
            event: Event::create(format!("{base}-e0").as_str()).expect("create event"),
            _peers_event: Some(Event::create(format!("{base}-e1").as_str()).expect("create event")),
        }
    }

    /// The peer's set, over the segments the bench created.
    fn open(base: &str) -> Result<IdleSet, String> {
        let ring = |side: char, k: usize| {
            Ring::open(format!("{base}-{side}{k}").as_str()).map_err(|e| e.to_string())
        };
        let mut rx = Vec::with_capacity(IDLE_RINGS);
        let mut tx = Vec::with_capacity(IDLE_RINGS);
        for k in 0..IDLE_RINGS {
            rx.push(ring('b', k)?.consumer().map_err(|e| e.to_string())?);
            tx.push(ring('a', k)?.producer().map_err(|e| e.to_string())?);
        }
        Ok(IdleSet {
            rx,
            _tx: tx,
            event: Event::open(format!("{base}-e1").as_str()).map_err(|e| e.to_string())?,
            _peers_event: None,
        })
    }

    /// Waits in one [`Select`] over the 63 idle registrations and the one `active` adds (last,
    /// so the readiness scan passes every idle one first); returns whether the ready one is
    /// `active`'s. A fresh `Select` each time: its registrations borrow the consumer that
    /// `try_recv` then needs mutably.
    #[inline]
    fn select<'a>(
        &'a self,
        active: impl FnOnce(&mut Select<'a>) -> usize,
    ) -> Result<bool, SelectError> {
        let mut sel = Select::new()?;
        for rx in &self.rx {
            sel.recv(rx);
        }
        sel.wait(&self.event);
        let on = active(&mut sel);
        Ok(sel.select()? == on)
    }
}

/// `shmq-select-64`: a [`Pipe`] whose receiving side, in both processes, waits in a
/// [`Select`] over 64 registrations (the pipe and an [`IdleSet`]), then calls `try_recv`.
struct SelectLat {
    _peer: Peer,
    pipe: Pipe,
    idle: IdleSet,
    msg: Vec<u8>,
    seq: u64,
    think: Duration,
}

impl RoundTrip for SelectLat {
    #[inline]
    fn trip(&mut self) {
        think(self.think);
        self.seq += 1;
        stamp(&mut self.msg, self.seq);
        self.pipe.send(&self.msg).expect("shmq send");
        loop {
            let pipe = &self.pipe;
            let ours = self.idle.select(|sel| sel.recv_pipe(pipe));
            assert!(
                ours.expect("select"),
                "an idle registration became ready: the peer let go"
            );
            match self.pipe.try_recv() {
                Ok(echo) => return check(&echo, self.seq, self.msg.len()),
                Err(TryRecvError::Empty) => {}
                Err(e) => panic!("shmq try_recv: {e}"),
            }
        }
    }
}

fn latency(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut g = c.benchmark_group("latency");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30);
    let transports = [
        T::RawCacheline,
        T::ShmqBusy,
        T::ShmqHybrid,
        T::ShmqBlocking,
        T::Pipe,
        T::Unix,
        T::Tcp,
    ];
    for t in transports {
        for size in LATENCY_SIZES {
            if t == T::RawCacheline && size != 8 {
                continue;
            }
            let id = format!("{}/{size}", t.name());
            // Opened on first use, so benchmarks filtered out on the command line cost nothing.
            let mut link: Option<Box<dyn RoundTrip>> = None;
            let mut before = Duration::ZERO;
            g.bench_function(&id, |b| {
                let l = link.get_or_insert_with(|| {
                    if bench_mode {
                        before = floor_probe();
                    }
                    open_latency(t, size)
                });
                b.iter_custom(|iters| l.timed(iters) / 2)
            });
            if let (Some(mut l), true) = (link.take(), bench_mode) {
                let (p50, p99, n) = l.percentiles(PERCENTILE_TRIPS, PERCENTILE_BUDGET);
                drop(l);
                let after = floor_probe();
                println!(
                    "latency/{id}: one-way p50 {} ns, p99 {} ns ({n} round trips); {}",
                    p50.as_nanos(),
                    p99.as_nanos(),
                    floor_note(before, after)
                );
            }
        }
    }
    g.finish();
}

/// Select over 64 registrations against a single blocking (and hybrid) `recv`, 8-byte
/// ping-pong, measured back to back; in `--bench` mode the ratios of their p50/p99 follow.
/// See `select/` in the module docs.
fn select(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30);
    let size = 8;
    let mut tails: Vec<(Transport, Duration, Duration)> = Vec::new();
    let transports = [
        T::ShmqBlocking,
        T::ShmqSelect64,
        T::ShmqHybrid,
        T::ShmqBlockingParked,
        T::ShmqSelect64Parked,
    ];
    for t in transports {
        let id = format!("{}/{size}", t.name());
        let mut link: Option<Box<dyn RoundTrip>> = None;
        let mut before = Duration::ZERO;
        g.bench_function(&id, |b| {
            let l = link.get_or_insert_with(|| {
                if bench_mode {
                    before = floor_probe();
                }
                open_latency(t, size)
            });
            b.iter_custom(|iters| l.timed(iters) / 2)
        });
        if let (Some(mut l), true) = (link.take(), bench_mode) {
            let (p50, p99, n) = l.percentiles(PERCENTILE_TRIPS, PERCENTILE_BUDGET);
            drop(l);
            let after = floor_probe();
            println!(
                "select/{id}: one-way p50 {} ns, p99 {} ns ({n} round trips); {}",
                p50.as_nanos(),
                p99.as_nanos(),
                floor_note(before, after)
            );
            // The parked variants' think time is not the transport's: leave it out.
            tails.push((
                t,
                p50.saturating_sub(t.think()),
                p99.saturating_sub(t.think()),
            ));
        }
    }
    g.finish();
    let find = |t: Transport| tails.iter().find(|x| x.0 == t).map(|x| (x.1, x.2));
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    for (sel, base) in [
        (T::ShmqSelect64, T::ShmqBlocking),
        (T::ShmqSelect64, T::ShmqHybrid),
        (T::ShmqSelect64Parked, T::ShmqBlockingParked),
    ] {
        if let (Some((s50, s99)), Some((b50, b99))) = (find(sel), find(base)) {
            let minus = if sel.think().is_zero() {
                String::new()
            } else {
                format!(", think time ({} µs) taken off both", THINK.as_micros())
            };
            println!(
                "select/{}/{size} vs {}: p50 {} / {} ns = x{:.2}, p99 {} / {} ns = x{:.2}{minus}",
                sel.name(),
                base.name(),
                s50.as_nanos(),
                b50.as_nanos(),
                ratio(s50, b50),
                s99.as_nanos(),
                b99.as_nanos(),
                ratio(s99, b99),
            );
        }
    }
}

/// The consuming side of a throughput benchmark.
trait Stream {
    /// Asks the peer for `iters + 1` messages, receives and checks them all, and returns the
    /// time from the first message to the last (so it covers `iters` messages).
    fn timed(&mut self, iters: u64) -> Duration;
}

/// `Stream::timed` for consumers that take one message per `recv` call.
#[inline(always)]
fn timed_with(peer: &mut Peer, iters: u64, mut recv: impl FnMut()) -> Duration {
    peer.request(iters + 1);
    recv();
    let start = Instant::now();
    for _ in 0..iters {
        recv();
    }
    start.elapsed()
}

/// Steps a slot index of a ring of `slots` slots (not always a power of two).
#[inline(always)]
fn next_slot(i: usize, slots: usize) -> usize {
    if i + 1 == slots { 0 } else { i + 1 }
}

/// shmq [`Ring`] consumer, one `recv` per message. `COPY`: copy each message out into a
/// buffer (as every other transport does); otherwise read the sequence number in place.
struct ShmqThr<const COPY: bool> {
    peer: Peer,
    rx: Consumer,
    buf: Vec<u8>,
    seq: u64,
}

impl<const COPY: bool> Stream for ShmqThr<COPY> {
    fn timed(&mut self, iters: u64) -> Duration {
        let (rx, buf, seq) = (&mut self.rx, &mut self.buf, &mut self.seq);
        let size = buf.len();
        timed_with(&mut self.peer, iters, || {
            let msg = rx.recv().expect("shmq recv");
            if COPY {
                if msg.len() != size {
                    bad_message(&msg, *seq, size);
                }
                buf.copy_from_slice(&msg);
                check(buf, *seq, size);
            } else {
                check(&msg, *seq, size);
            }
            drop(msg);
            *seq += 1;
        })
    }
}

/// shmq [`Ring`] consumer with `try_drain` (`shmq-busy-drain`, `shmq-busy-batch`); copies each
/// message out.
struct ShmqDrain {
    peer: Peer,
    rx: Consumer,
    buf: Vec<u8>,
    seq: u64,
}

impl ShmqDrain {
    /// Drains what is waiting (spinning until something is); returns how many.
    fn drain(&mut self) -> u64 {
        let (rx, buf, seq) = (&mut self.rx, &mut self.buf, &mut self.seq);
        let size = buf.len();
        let mut n = 0;
        spin_until(BENCH_STALL, || {
            let got = rx
                .try_drain(|msg| {
                    if msg.len() != size {
                        bad_message(msg, *seq, size);
                    }
                    buf.copy_from_slice(msg);
                    check(buf, *seq, size);
                    *seq += 1;
                })
                .unwrap_or_else(|e: TryRecvError| panic!("shmq try_drain: {e}"));
            n = got as u64;
            n > 0
        });
        n
    }
}

impl Stream for ShmqDrain {
    /// Messages come in batches here: the clock starts after the first batch, and the time is
    /// scaled from the messages that came after it to `iters`.
    fn timed(&mut self, iters: u64) -> Duration {
        let total = iters + 1;
        self.peer.request(total);
        let first = self.drain();
        let start = Instant::now();
        let mut got = first;
        while got < total {
            got += self.drain();
        }
        let elapsed = start.elapsed();
        assert_eq!(got, total, "more messages than requested");
        match got - first {
            0 => elapsed,
            timed => elapsed.mul_f64(iters as f64 / timed as f64),
        }
    }
}

/// OS pipe, Unix or TCP socket consumer: `read_exact` from a 64 KiB `BufReader`.
struct StreamThr<R> {
    peer: Peer,
    r: BufReader<R>,
    buf: Vec<u8>,
    seq: u64,
}

impl<R: Read> Stream for StreamThr<R> {
    fn timed(&mut self, iters: u64) -> Duration {
        let (r, buf, seq) = (&mut self.r, &mut self.buf, &mut self.seq);
        timed_with(&mut self.peer, iters, || {
            r.read_exact(buf).expect("read from peer");
            check(buf, *seq, buf.len());
            *seq += 1;
        })
    }
}

/// The raw rings' consumer state: the next slot to read and the cached producer index.
struct RawCursor {
    head: u64,
    slot: usize,
    cached_tail: u64,
}

impl RawCursor {
    /// Waits until slot `self.slot` holds a message (rereading the producer's index only
    /// when the cached one says the ring is empty).
    #[inline(always)]
    fn wait(&mut self, tail: &AtomicU64) {
        if self.head == self.cached_tail {
            let (head, cached) = (self.head, &mut self.cached_tail);
            spin_until(BENCH_STALL, || {
                *cached = tail.load(Ordering::Acquire);
                *cached != head
            });
        }
    }

    /// Frees the slot just read.
    #[inline(always)]
    fn release(&mut self, head_word: &AtomicU64, slots: usize) {
        self.head += 1;
        self.slot = next_slot(self.slot, slots);
        head_word.store(self.head, Ordering::Release);
    }
}

/// The 8-byte floor: a minimal SPSC ring of `AtomicU64` slots, head and tail on separate
/// 128-byte blocks, each side caching the other's index.
struct RawSpinThr {
    peer: Peer,
    map: SharedMap,
    slots: usize,
    cursor: RawCursor,
    seq: u64,
}

impl Stream for RawSpinThr {
    fn timed(&mut self, iters: u64) -> Duration {
        let (map, slots, cursor, seq) = (&self.map, self.slots, &mut self.cursor, &mut self.seq);
        let (tail, head) = (map.word(RAW_TAIL), map.word(RAW_HEAD));
        let ring = map.words(RAW_SLOTS, slots);
        timed_with(&mut self.peer, iters, || {
            cursor.wait(tail);
            let v = ring[cursor.slot].load(Ordering::Relaxed);
            if v != *seq {
                bad_message(&v.to_le_bytes(), *seq, 8);
            }
            cursor.release(head, slots);
            *seq += 1;
        })
    }
}

/// The large-message floor: a minimal SPSC ring of fixed-size chunks; the producer memcpys a
/// message into a chunk and publishes its index, the consumer memcpys it out.
struct RawMemcpyThr {
    peer: Peer,
    map: SharedMap,
    slots: usize,
    cursor: RawCursor,
    buf: Vec<u8>,
    seq: u64,
}

impl Stream for RawMemcpyThr {
    fn timed(&mut self, iters: u64) -> Duration {
        let (map, slots, cursor) = (&self.map, self.slots, &mut self.cursor);
        let (buf, seq) = (&mut self.buf, &mut self.seq);
        let size = buf.len();
        let (tail, head) = (map.word(RAW_TAIL), map.word(RAW_HEAD));
        let chunks = map.chunk(RAW_SLOTS, slots * size);
        timed_with(&mut self.peer, iters, || {
            cursor.wait(tail);
            // SAFETY: slot `cursor.slot < slots` lies inside `chunks` (`chunk` checked the
            // whole area), and `buf` is `size` bytes of our own, so they do not overlap. The
            // producer published this chunk with a Release store of the tail, read by `wait`
            // with Acquire, and will not write it again until `release` frees it (Release).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    chunks.add(cursor.slot * size),
                    buf.as_mut_ptr(),
                    size,
                )
            };
            check(buf, *seq, size);
            cursor.release(head, slots);
            *seq += 1;
        })
    }
}

fn open_throughput(t: Transport, size: usize) -> Box<dyn Stream> {
    let buf = vec![0u8; size];
    match t {
        T::ShmqBusy
        | T::ShmqHybrid
        | T::ShmqBlocking
        | T::ShmqBusyInplace
        | T::ShmqBusyBatch
        | T::ShmqBusyDrain => {
            let name = unique("thr");
            let ring = Ring::create(name.as_str(), ring_bytes(size)).expect("create ring");
            let mut rx = ring.consumer().expect("consumer");
            rx.set_wait_mode(t.mode());
            let peer = Peer::spawn(Role::Throughput, t, size, &name);
            // `rx` keeps the segment (and its name) alive; it is removed when `rx` drops.
            drop(ring);
            match t {
                T::ShmqBusyInplace => Box::new(ShmqThr::<false> {
                    peer,
                    rx,
                    buf,
                    seq: 0,
                }),
                T::ShmqBusyBatch | T::ShmqBusyDrain => Box::new(ShmqDrain {
                    peer,
                    rx,
                    buf,
                    seq: 0,
                }),
                _ => Box::new(ShmqThr::<true> {
                    peer,
                    rx,
                    buf,
                    seq: 0,
                }),
            }
        }
        T::Pipe => {
            let mut peer = Peer::spawn(Role::Throughput, t, size, "-");
            let out = peer.out.take().expect("peer stdout");
            Box::new(StreamThr {
                peer,
                r: BufReader::with_capacity(64 << 10, out),
                buf,
                seq: 0,
            })
        }
        T::Unix => {
            let (peer, s) = unix_peer(Role::Throughput, t, size);
            Box::new(StreamThr {
                peer,
                r: BufReader::with_capacity(64 << 10, s),
                buf,
                seq: 0,
            })
        }
        T::Tcp => {
            let (peer, s) = tcp_peer(Role::Throughput, t, size);
            Box::new(StreamThr {
                peer,
                r: BufReader::with_capacity(64 << 10, s),
                buf,
                seq: 0,
            })
        }
        T::RawSpinRing | T::RawMemcpy => {
            let (map, fd) = SharedMap::create(raw_len(t, size));
            let peer = Peer::spawn(Role::Throughput, t, size, &fd.as_raw_fd().to_string());
            // The peer has its own copy now; later peers must not inherit this one.
            drop(fd);
            let slots = ring_slots(size);
            let cursor = RawCursor {
                head: 0,
                slot: 0,
                cached_tail: 0,
            };
            if t == T::RawSpinRing {
                Box::new(RawSpinThr {
                    peer,
                    map,
                    slots,
                    cursor,
                    seq: 0,
                })
            } else {
                Box::new(RawMemcpyThr {
                    peer,
                    map,
                    slots,
                    cursor,
                    buf,
                    seq: 0,
                })
            }
        }
        T::RawCacheline | T::ShmqSelect64 | T::ShmqBlockingParked | T::ShmqSelect64Parked => {
            unreachable!("{t:?} has no throughput benchmark")
        }
    }
}

fn throughput_transports(size: usize) -> Vec<Transport> {
    let mut ts = Vec::new();
    if size == 8 {
        ts.push(T::RawSpinRing);
    }
    if size >= 65536 {
        ts.push(T::RawMemcpy);
    }
    ts.push(T::ShmqBusy);
    if size >= 1024 {
        ts.push(T::ShmqBusyInplace);
    }
    if size <= 1024 {
        ts.extend([T::ShmqBusyDrain, T::ShmqBusyBatch]);
    }
    ts.extend([T::ShmqHybrid, T::ShmqBlocking, T::Pipe, T::Unix, T::Tcp]);
    ts
}

fn throughput(c: &mut Criterion) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut g = c.benchmark_group("throughput");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat);
    for size in THROUGHPUT_SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        for t in throughput_transports(size) {
            let id = format!("{}/{size}", t.name());
            let mut link: Option<Box<dyn Stream>> = None;
            let mut before = Duration::ZERO;
            g.bench_function(&id, |b| {
                let l = link.get_or_insert_with(|| {
                    if bench_mode {
                        before = floor_probe();
                    }
                    open_throughput(t, size)
                });
                b.iter_custom(|iters| l.timed(iters))
            });
            if let (Some(l), true) = (link.take(), bench_mode) {
                drop(l);
                println!("throughput/{id}: {}", floor_note(before, floor_probe()));
            }
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// The peer process.

mod peer {
    use super::*;

    static PROGRESS: AtomicU64 = AtomicU64::new(0);

    /// Marks progress for the watchdog (only the peer's main thread calls this: no RMW).
    #[inline(always)]
    fn progress() {
        PROGRESS.store(PROGRESS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[cold]
    fn fail(what: &str) -> ! {
        eprintln!("ring bench peer: {what}");
        std::process::exit(2)
    }

    pub(super) fn main(spec: &str) {
        let mut parts = spec.splitn(5, ':');
        let mut next = || parts.next().unwrap_or_else(|| fail("bad spec"));
        let (role, t, size, parent, addr) = (next(), next(), next(), next(), next());
        let t = Transport::parse(t).unwrap_or_else(|| fail("bad transport"));
        let size: usize = size.parse().unwrap_or_else(|_| fail("bad size"));
        let parent: u32 = parent.parse().unwrap_or_else(|_| fail("bad parent pid"));

        // SAFETY: PR_SET_PDEATHSIG takes a signal number; it only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        if std::os::unix::process::parent_id() != parent {
            fail("the bench exited before the peer started");
        }
        // Pinning failure is not fatal; the bench already warned about pinning.
        let _ = set_affinity(&[PEER_CPU]);
        std::thread::spawn(move || watchdog(parent));

        match role {
            "lat" => latency(t, size, addr),
            "thr" => throughput(t, size, addr),
            _ => fail("bad role"),
        }
    }

    /// Ends the process when the main thread makes no progress for `PEER_STALL`, or the bench
    /// is gone.
    fn watchdog(parent: u32) {
        let mut last = PROGRESS.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
            let now = PROGRESS.load(Ordering::Relaxed);
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= PEER_STALL {
                fail("no progress for 30 s; exiting");
            }
        }
    }

    fn stdio(fd: BorrowedFd<'_>) -> File {
        File::from(
            fd.try_clone_to_owned()
                .unwrap_or_else(|_| fail("dup stdio")),
        )
    }

    fn latency(t: Transport, size: usize, addr: &str) {
        match t {
            T::ShmqBusy | T::ShmqHybrid | T::ShmqBlocking | T::ShmqBlockingParked => {
                let mut end = Pipe::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                end.set_wait_mode(t.mode());
                let (mut tx, mut rx) = end.split();
                // Echo in place: from the received message straight into the reply.
                while let Ok(msg) = rx.recv() {
                    think(t.think());
                    let Ok(mut reply) = tx.reserve(msg.len()) else {
                        return;
                    };
                    reply.copy_from_slice(&msg);
                    reply.commit();
                    drop(msg);
                    progress();
                }
            }
            T::Pipe => echo(
                stdio(std::io::stdin().as_fd()),
                stdio(std::io::stdout().as_fd()),
                size,
            ),
            T::Unix => {
                let s = UnixStream::connect(addr).unwrap_or_else(|e| fail(&e.to_string()));
                echo(&s, &s, size);
            }
            T::Tcp => {
                let s = tcp_connect(addr);
                echo(&s, &s, size);
            }
            T::RawCacheline => {
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
                    spin_until(PEER_STALL, || {
                        v = ping.load(Ordering::Acquire);
                        v != last
                    });
                    pong.store(v, Ordering::Release);
                    last = v;
                    progress();
                }
            }
            T::ShmqSelect64 | T::ShmqSelect64Parked => {
                let end = Pipe::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                let idle = IdleSet::open(addr).unwrap_or_else(|e| fail(&e));
                let (mut tx, mut rx) = end.split();
                loop {
                    match idle.select(|sel| sel.recv(&rx)) {
                        Ok(true) => {}
                        // An idle ring is ready only once the bench let go of it.
                        Ok(false) => return,
                        Err(e) => fail(&e.to_string()),
                    }
                    let msg = match rx.try_recv() {
                        Ok(msg) => msg,
                        Err(TryRecvError::Empty) => continue,
                        Err(_) => return,
                    };
                    think(t.think());
                    let Ok(mut reply) = tx.reserve(msg.len()) else {
                        return;
                    };
                    reply.copy_from_slice(&msg);
                    reply.commit();
                    drop(msg);
                    progress();
                }
            }
            _ => fail("no latency peer for this transport"),
        }
    }

    fn echo(mut r: impl Read, mut w: impl Write, size: usize) {
        let mut buf = vec![0u8; size];
        while r.read_exact(&mut buf).is_ok() && w.write_all(&buf).is_ok() {
            progress();
        }
    }

    fn tcp_connect(addr: &str) -> TcpStream {
        let port: u16 = addr.parse().unwrap_or_else(|_| fail("bad port"));
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| fail(&e.to_string()));
        s.set_nodelay(true).unwrap_or_else(|e| fail(&e.to_string()));
        s
    }

    /// Serves requests from the bench (a count of messages, on stdin) until it hangs up.
    fn serve(mut produce: impl FnMut(u64)) {
        let mut control = stdio(std::io::stdin().as_fd());
        let mut n = [0u8; 8];
        while control.read_exact(&mut n).is_ok() {
            produce(u64::from_le_bytes(n));
            progress();
        }
    }

    fn throughput(t: Transport, size: usize, addr: &str) {
        let mut msg = vec![0xA5u8; size];
        let mut seq = 0u64;
        match t {
            T::ShmqBusy
            | T::ShmqHybrid
            | T::ShmqBlocking
            | T::ShmqBusyInplace
            | T::ShmqBusyDrain => {
                let ring = Ring::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                let mut tx = ring.producer().unwrap_or_else(|e| fail(&e.to_string()));
                tx.set_wait_mode(t.mode());
                serve(|n| {
                    for _ in 0..n {
                        stamp(&mut msg, seq);
                        if let Err(e) = tx.send(&msg) {
                            fail(&e.to_string());
                        }
                        seq += 1;
                    }
                });
            }
            T::ShmqBusyBatch => {
                let ring = Ring::open(addr).unwrap_or_else(|e| fail(&e.to_string()));
                let mut tx = ring.producer().unwrap_or_else(|e| fail(&e.to_string()));
                serve(|n| {
                    let mut left = n;
                    while left > 0 {
                        let mut batch = tx.batch();
                        let mut k = 0;
                        while k < left.min(BATCH) {
                            stamp(&mut msg, seq);
                            match batch.try_push(&msg) {
                                Ok(()) => (k, seq) = (k + 1, seq + 1),
                                Err(TrySendError::Full) => break,
                                Err(e) => fail(&e.to_string()),
                            }
                        }
                        batch.publish();
                        left -= k;
                        if k == 0 {
                            std::hint::spin_loop();
                        }
                    }
                });
            }
            T::Pipe => {
                let mut out = stdio(std::io::stdout().as_fd());
                serve(|n| stream_out(&mut out, &mut msg, &mut seq, n));
            }
            T::Unix => {
                let mut s = UnixStream::connect(addr).unwrap_or_else(|e| fail(&e.to_string()));
                serve(|n| stream_out(&mut s, &mut msg, &mut seq, n));
            }
            T::Tcp => {
                let mut s = tcp_connect(addr);
                serve(|n| stream_out(&mut s, &mut msg, &mut seq, n));
            }
            T::RawSpinRing | T::RawMemcpy => {
                let fd: RawFd = addr.parse().unwrap_or_else(|_| fail("bad fd"));
                let map = SharedMap::inherit(fd, raw_len(t, size));
                let slots = ring_slots(size);
                let (tail_word, head_word) = (map.word(RAW_TAIL), map.word(RAW_HEAD));
                let (mut tail, mut cached_head, mut slot) = (0u64, 0u64, 0usize);
                // Waits for a free slot (rereading the consumer's index only when the cached
                // one says the ring is full).
                let mut room = |tail: u64| {
                    if tail - cached_head == slots as u64 {
                        spin_until(PEER_STALL, || {
                            cached_head = head_word.load(Ordering::Acquire);
                            tail - cached_head < slots as u64
                        });
                    }
                };
                if t == T::RawSpinRing {
                    let ring = map.words(RAW_SLOTS, slots);
                    serve(|n| {
                        for _ in 0..n {
                            room(tail);
                            ring[slot].store(seq, Ordering::Relaxed);
                            tail += 1;
                            slot = next_slot(slot, slots);
                            tail_word.store(tail, Ordering::Release);
                            seq += 1;
                        }
                    });
                } else {
                    let chunks = map.chunk(RAW_SLOTS, slots * size);
                    serve(|n| {
                        for _ in 0..n {
                            room(tail);
                            stamp(&mut msg, seq);
                            // SAFETY: slot `slot < slots` lies inside `chunks` (`chunk` checked
                            // the whole area), and `msg` is our own `size` bytes, so no
                            // overlap. The consumer freed this chunk (its Release store of the
                            // head, read by `room` with Acquire) and will not read it until
                            // our Release store of the tail below.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    msg.as_ptr(),
                                    chunks.add(slot * size),
                                    size,
                                )
                            };
                            tail += 1;
                            slot = next_slot(slot, slots);
                            tail_word.store(tail, Ordering::Release);
                            seq += 1;
                        }
                    });
                }
            }
            T::RawCacheline | T::ShmqSelect64 | T::ShmqBlockingParked | T::ShmqSelect64Parked => {
                fail("no throughput peer for this transport")
            }
        }
    }

    fn stream_out(w: &mut impl Write, msg: &mut [u8], seq: &mut u64, n: u64) {
        for _ in 0..n {
            stamp(msg, *seq);
            if let Err(e) = w.write_all(msg) {
                fail(&e.to_string());
            }
            *seq += 1;
        }
    }
}
