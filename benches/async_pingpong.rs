//! Async ping-pong (feature `async`): one-way latency between two processes pinned to two
//! CPUs, each side awaiting with `recv_async` on a tokio current-thread runtime (in the
//! Blocking and the Hybrid wait mode), against the same two processes with `recv` in the same
//! modes and with a tokio `UnixStream`, all in one run:
//!
//! ```text
//! cargo bench --features async --bench async_pingpong
//! ```
//!
//! Prints p50/p99 of each and the ratios the async design is judged by: async over blocking
//! (how much the readiness thread's extra hop costs) and UnixStream over async.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::{RoundTrip, set_affinity};
use shmq::{Pipe, WaitMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BENCH_CPU: usize = 0;
const PEER_CPU: usize = 1;
const TRIPS: usize = 20_000;
const BUDGET: Duration = Duration::from_secs(10);
const ROLE: &str = "SHMQ_ASYNC_BENCH_PEER";

fn main() {
    if let Ok(spec) = std::env::var(ROLE) {
        let _ = set_affinity(&[PEER_CPU]);
        let (mode, name) = spec.split_once(',').unwrap();
        peer(mode, name);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list beyond this binary
    }
    if let Err(e) = set_affinity(&[BENCH_CPU]) {
        eprintln!("(could not pin to CPU {BENCH_CPU}: {e}; figures are noisier)");
    }
    let blocking = measure("blocking");
    let hybrid = measure("hybrid");
    let async_blocking = measure("async-blocking");
    let async_hybrid = measure("async-hybrid");
    let uds = measure("uds");
    println!("one-way latency, 8-byte ping-pong, {TRIPS} round trips or {BUDGET:?} each");
    for (label, (p50, p99, n)) in [
        ("shmq recv, Blocking", blocking),
        ("shmq recv, Hybrid", hybrid),
        ("shmq recv_async, Blocking", async_blocking),
        ("shmq recv_async, Hybrid", async_hybrid),
        ("tokio UnixStream", uds),
    ] {
        println!("  {label:<26} p50 {p50:>10.2?}  p99 {p99:>10.2?}  ({n} trips)");
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "  p50 ratios: async/sync Blocking {:.2}×, async/sync Hybrid {:.2}×, \
         UnixStream/async Blocking {:.2}×, UnixStream/async Hybrid {:.2}×",
        ratio(async_blocking.0, blocking.0),
        ratio(async_hybrid.0, hybrid.0),
        ratio(uds.0, async_blocking.0),
        ratio(uds.0, async_hybrid.0),
    );
}

fn spawn_peer(mode: &str, name: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(ROLE, format!("{mode},{name}"))
        .spawn()
        .unwrap()
}

fn measure(mode: &str) -> (Duration, Duration, usize) {
    let name = format!("shmq-bench-async-{}-{mode}", std::process::id());
    if mode == "uds" {
        let path = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_file(&path);
        let rt = runtime();
        let listener = rt
            .block_on(async { tokio::net::UnixListener::bind(&path) })
            .unwrap();
        let mut kid = spawn_peer(mode, path.to_str().unwrap());
        let stream = rt.block_on(async { listener.accept().await }).unwrap().0;
        let mut t = UdsTrip { rt, stream };
        let r = t.percentiles(TRIPS, BUDGET);
        drop(t);
        kid.wait().unwrap();
        let _ = std::fs::remove_file(&path);
        r
    } else {
        let mut pipe = Pipe::create(name.as_str(), 4096).unwrap();
        pipe.set_wait_mode(wait_mode(mode));
        let mut kid = spawn_peer(mode, &name);
        let r = if mode.starts_with("async") {
            let mut t = AsyncTrip {
                rt: runtime(),
                pipe,
            };
            let r = t.percentiles(TRIPS, BUDGET);
            t.rt.block_on(t.pipe.send_async(b"stop")).unwrap();
            r
        } else {
            let mut t = BlockingTrip { pipe };
            let r = t.percentiles(TRIPS, BUDGET);
            t.pipe.send(b"stop").unwrap();
            r
        };
        kid.wait().unwrap();
        r
    }
}

/// The wait mode both sides of a shmq run use.
fn wait_mode(mode: &str) -> WaitMode {
    if mode.ends_with("hybrid") {
        WaitMode::Hybrid
    } else {
        WaitMode::Blocking
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

struct BlockingTrip {
    pipe: Pipe,
}

impl RoundTrip for BlockingTrip {
    fn trip(&mut self) {
        self.pipe.send(&7u64.to_le_bytes()).unwrap();
        assert_eq!(self.pipe.recv().unwrap().len(), 8);
    }
}

struct AsyncTrip {
    rt: tokio::runtime::Runtime,
    pipe: Pipe,
}

impl RoundTrip for AsyncTrip {
    fn trip(&mut self) {
        let pipe = &mut self.pipe;
        self.rt.block_on(async {
            pipe.send_async(&7u64.to_le_bytes()).await.unwrap();
            assert_eq!(pipe.recv_async().await.unwrap().len(), 8);
        });
    }
}

struct UdsTrip {
    rt: tokio::runtime::Runtime,
    stream: tokio::net::UnixStream,
}

impl RoundTrip for UdsTrip {
    fn trip(&mut self) {
        let s = &mut self.stream;
        self.rt.block_on(async {
            s.write_all(&7u64.to_le_bytes()).await.unwrap();
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await.unwrap();
        });
    }
}

/// The echoing side, waiting the same way as the measuring side.
fn peer(mode: &str, name: &str) {
    match mode {
        "blocking" | "hybrid" => {
            let mut pipe = Pipe::open(name).unwrap();
            pipe.set_wait_mode(wait_mode(mode));
            loop {
                let msg = pipe.recv().unwrap().to_vec();
                if msg == b"stop" {
                    return;
                }
                pipe.send(&msg).unwrap();
            }
        }
        "async-blocking" | "async-hybrid" => {
            let mut pipe = Pipe::open(name).unwrap();
            pipe.set_wait_mode(wait_mode(mode));
            runtime().block_on(async {
                loop {
                    let msg = pipe.recv_async().await.unwrap().to_vec();
                    if msg == b"stop" {
                        return;
                    }
                    pipe.send_async(&msg).await.unwrap();
                }
            });
        }
        _ => {
            runtime().block_on(async {
                let mut s = tokio::net::UnixStream::connect(name).await.unwrap();
                let mut b = [0u8; 8];
                while s.read_exact(&mut b).await.is_ok() {
                    if s.write_all(&b).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
}
