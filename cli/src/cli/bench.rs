//! `shmq bench`: shmq against pipes and sockets, between two real processes, in one table.
//!
//! The command re-executes itself as a hidden `__bench-peer` subcommand for the other side.
//! Latency is a ping-pong: one clock read per round trip, one-way = round trip / 2, p50 and
//! p99. Throughput is a stream of fixed-size messages, each carrying its sequence number,
//! which the receiving side checks; it is timed at the receiver. The two processes are pinned
//! to different CPUs when there are two. Every figure also appears as a ratio against the pipe
//! (how many times better).
//!
//! `shmq-queue` is the MPMC [`Queue`] (`Queue<[u8; N]>`, default wait mode) with one producer
//! and one consumer: latency through a request queue and a reply queue, throughput up to
//! 1 KiB items (larger items belong in a ring or a `ByteQueue`). The MPMC section then runs
//! N producer and N consumer processes (2+2, 4+4; 8-byte items, each tagged with its producer
//! and sequence number) over one queue (`shmq-queue`, `shmq-queue-blocking`) or one named pipe
//! (`pipe`: a FIFO is the kernel's pipe; one `write` and one `read` per 8-byte item, atomic
//! below `PIPE_BUF`). Its processes are not pinned. Throughput there is summed over the
//! consumers, sampled from counters they publish in a control segment; each consumer checks
//! every producer's numbers arrive in order, and the items received must equal the items sent
//! (count and sum of tags).
//!
//! The Select section runs the 8-byte shmq ping-pong with each process receiving through a
//! [`Select`] over 64 registrations: 62 idle rings (the other process holds their producers,
//! so they are quiet but live), an idle [`Event`] and the pipe, registered last. Each wait
//! builds a fresh `Select`, selects, drops it and calls `try_recv`. A `Select` polls, spins
//! for a few microseconds, then sleeps in one `futex_waitv`; so does the blocking `recv` it
//! is set against, minus the spin. A ping-pong whose sides answer within that spin never
//! sleeps, so the section also has parked rows: each side works (spins) for [`THINK`] before
//! it answers, every receiver is asleep when its message comes, and the think time is taken
//! off the figures. Its ratio is select time / blocking-recv time, from the same run.
//!
//! The Topic section (see [`topic`]): a [`shmq::Topic`]'s publish cost with 1 and with 64
//! subscriber processes, its delivery to 16 subscriber processes against 16 SPSC rings, and
//! its busy-poll latency against the ring's, each as a ratio to its baseline from the run.

use std::io::{IsTerminal, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmq::{
    Consumer, Event, GetError, Pipe, Producer, PutError, Queue, RecvTimeoutError, Ring, Segment,
    Select, TryRecvError, WaitMode,
};

use crate::cli::out::{self, say};
use crate::cli::units::size;

mod topic;

/// Transports, in table order.
const TRANSPORTS: [&str; 8] = [
    "raw",
    "shmq-busy",
    "shmq-hybrid",
    "shmq-blocking",
    "shmq-queue",
    "pipe",
    "unix",
    "tcp",
];
const LATENCY_SIZES: [usize; 3] = [8, 64, 1024];
const STREAM_SIZES: [usize; 5] = [8, 64, 1024, 64 * 1024, 1024 * 1024];
/// Largest item `shmq-queue` carries (a `Queue<[u8; N]>` item is copied by value).
const QUEUE_MAX_ITEM: usize = 1024;
/// Slots of every `shmq-queue` queue.
const QUEUE_CAPACITY: usize = 8192;
/// Transports of the MPMC section, in table order.
const MPMC_TRANSPORTS: [&str; 3] = ["shmq-queue", "shmq-queue-blocking", "pipe"];
/// Producer processes (and as many consumers) of the MPMC section's rows.
const MPMC_PAIRS: [usize; 2] = [2, 4];
/// Item size of the MPMC section.
const MPMC_SIZE: usize = 8;
/// How long one latency or throughput measurement runs.
const BUDGET: Duration = Duration::from_millis(250);
/// A peer that hears nothing for this long gives up (so nothing is ever left running).
const PEER_PATIENCE: Duration = Duration::from_secs(20);
/// Ring size for the shmq streams: room for several of the largest messages.
const RING_BYTES: usize = 8 << 20;
/// The Select section's jobs (8-byte latency), run right after `shmq-blocking`'s.
const SELECT_JOBS: [&str; 3] = [
    "shmq-select-64",
    "shmq-blocking-parked",
    "shmq-select-64-parked",
];
/// The async section's jobs (8-byte latency): `recv_async`/`send_async` in the Blocking and
/// the Hybrid mode, run after the Select ones.
const ASYNC_JOBS: [&str; 2] = ["shmq-async-blocking", "shmq-async-hybrid"];
/// Idle rings in each process's `Select` (with an idle Event and the pipe: 64 registrations).
const SELECT_IDLE_RINGS: usize = 62;
/// How long each side of a parked ping-pong works before it answers: well past a select's
/// spin and its way to sleep, so every receiver sleeps.
const THINK: Duration = Duration::from_micros(100);

/// One measured figure.
struct Cell {
    metric: &'static str,
    size: usize,
    /// MPMC section: producer processes (and as many consumers); Topic section: subscriber
    /// processes; 1 elsewhere.
    pairs: usize,
    transport: &'static str,
    /// Nanoseconds for latencies, messages per second for throughput.
    value: f64,
}

/// CPUs this process may use, read once before it pins itself (pinning narrows the answer).
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The CPUs this process may use, as a `PIN_ENV` list, read once before it pins itself.
fn all_cpus() -> &'static str {
    static ALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ALL.get_or_init(|| match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
        Err(_) => (0..cpus())
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
    })
}

/// Environment variable telling the peer which CPUs (a comma-separated list) to run on.
const PIN_ENV: &str = "SHMQ_BENCH_CPU";

fn pin(cpus: impl IntoIterator<Item = usize>) {
    let mut set = rustix::thread::CpuSet::new();
    for cpu in cpus {
        if cpu < rustix::thread::CpuSet::MAX_CPU {
            set.set(cpu);
        }
    }
    // Best effort: an unpinned run is still a valid (noisier) run.
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn seg_name(tag: &str) -> String {
    format!("shmq-bench-{tag}-{}", std::process::id())
}

/// Widest line of the default table, in columns (a terminal's 100).
const TABLE_WIDTH: usize = 100;

/// Runs the whole comparison and prints the table (or JSON): the table in blocks of columns
/// that fit [`TABLE_WIDTH`], or all in one with `wide`. Progress goes to standard error: a
/// status line rewritten in place on a terminal, else one line per finished measurement.
pub(crate) fn run(json: bool, quick: bool, wide: bool) -> Result<(), String> {
    let budget = if quick { BUDGET / 5 } else { BUDGET };
    let terminal = std::io::stderr().is_terminal();
    let mut cells = Vec::new();
    let mut jobs: Vec<(&'static str, &'static str, usize, usize)> = Vec::new();
    for size in LATENCY_SIZES {
        for t in TRANSPORTS {
            jobs.push(("latency", t, size, 1));
            if t == "shmq-busy" && topic::LATENCY_SIZES.contains(&size) {
                // Right after the ring it is compared with.
                jobs.push(("latency", topic::LATENCY, size, 1));
            }
            if t == "shmq-blocking" && size == 8 {
                // Right after the blocking recv they are compared with.
                for s in SELECT_JOBS.into_iter().chain(ASYNC_JOBS) {
                    jobs.push(("latency", s, size, 1));
                }
            }
        }
    }
    for size in STREAM_SIZES {
        for t in TRANSPORTS {
            if t == "raw" && size != 8 {
                continue; // the raw spin ring carries 8-byte words only
            }
            if t == "shmq-queue" && size > QUEUE_MAX_ITEM {
                continue;
            }
            jobs.push(("throughput", t, size, 1));
        }
    }
    for pairs in MPMC_PAIRS {
        for t in MPMC_TRANSPORTS {
            jobs.push(("mpmc", t, MPMC_SIZE, pairs));
        }
    }
    // One job for both rows of the publish cost (1 and 64 subscribers).
    let [_, most] = topic::PUBLISH_SUBSCRIBERS;
    jobs.push(("topic-publish", "shmq-topic", topic::SIZE, most));
    for t in topic::DELIVERY {
        jobs.push(("topic-delivery", t, topic::SIZE, topic::FANOUT));
    }
    all_cpus(); // before pinning narrows the answer
    if cpus() >= 2 {
        pin([0]);
    }
    let started = Instant::now();
    for (i, &(kind, transport, size, pairs)) in jobs.iter().enumerate() {
        let who = match kind {
            "topic-publish" => format!("1 vs {pairs} subs "),
            "topic-delivery" => format!("{pairs} subs "),
            _ if pairs > 1 => format!("{pairs}P{pairs}C "),
            _ => String::new(),
        };
        let job = format!(
            "[{}/{}] {kind} {who}{transport} {}",
            i + 1,
            jobs.len(),
            label_size(size)
        );
        if terminal {
            progress(format_args!("\r\x1b[2K{job} "));
        }
        let cell = |metric, value| Cell {
            metric,
            size,
            pairs,
            transport,
            value,
        };
        let result = match kind {
            "latency" => {
                let (p50, p99) = latency(transport, size, budget)
                    .map_err(|e| format!("{transport} latency: {e}"))?;
                // A parked run is its transport's cell in the parked rows.
                let (m50, m99, column, note) = match transport.strip_suffix("-parked") {
                    Some(base) => (
                        "parked_latency_p50_ns",
                        "parked_latency_p99_ns",
                        base,
                        " (think time left out)",
                    ),
                    None => ("latency_p50_ns", "latency_p99_ns", transport, ""),
                };
                for (metric, value) in [(m50, p50), (m99, p99)] {
                    cells.push(Cell {
                        transport: column,
                        ..cell(metric, value)
                    });
                }
                format!("p50 {}, p99 {}{note}", format_ns(p50), format_ns(p99))
            }
            "throughput" => {
                let rate = throughput(transport, size, budget)
                    .map_err(|e| format!("{transport} throughput: {e}"))?;
                cells.push(cell("throughput_msgs_per_s", rate));
                format_rate(rate, size)
            }
            "topic-publish" => {
                let costs = topic::publish_cost(budget)
                    .map_err(|e| format!("{transport} publish cost: {e}"))?;
                for (n, ns) in topic::PUBLISH_SUBSCRIBERS.into_iter().zip(costs) {
                    cells.push(Cell {
                        pairs: n,
                        ..cell("topic_publish_ns", ns)
                    });
                }
                let [a, b] = costs.map(format_ns);
                format!("{a} and {b} per publish")
            }
            "topic-delivery" => {
                let rate = topic::delivery(transport, budget)
                    .map_err(|e| format!("{transport} delivery: {e}"))?;
                cells.push(cell("topic_delivery_msgs_per_s", rate));
                format!("{} to all", format_rate(rate, size))
            }
            _ => {
                let rate = mpmc::throughput(transport, pairs, budget)
                    .map_err(|e| format!("{transport} {pairs}P{pairs}C throughput: {e}"))?;
                cells.push(cell("mpmc_throughput_msgs_per_s", rate));
                format_rate(rate, MPMC_SIZE)
            }
        };
        if !terminal {
            progress(format_args!("shmq bench: {job}: {result}\n"));
        }
    }
    let done = format!("done in {:.1} s", started.elapsed().as_secs_f64());
    if terminal {
        progress(format_args!("\r\x1b[2K{done}\n"));
    } else {
        progress(format_args!("shmq bench: {done}\n"));
    }
    if json {
        print_json(&cells);
    } else {
        print_table(&cells, wide);
    }
    Ok(())
}

/// Writes progress to standard error; a closed or failing stderr only loses the progress.
fn progress(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.flush());
}

/// A message size in a row label: `8 B`, `1.0 KiB`, `64.0 KiB`.
fn label_size(n: usize) -> String {
    size(n as u64)
}

fn pipe_value(cells: &[Cell], c: &Cell) -> Option<f64> {
    cells
        .iter()
        .find(|p| {
            p.metric == c.metric && p.size == c.size && p.pairs == c.pairs && p.transport == "pipe"
        })
        .map(|p| p.value)
}

/// How many times better than the pipe (higher is better for both kinds of figure).
fn vs_pipe(cells: &[Cell], c: &Cell) -> Option<f64> {
    let pipe = pipe_value(cells, c)?;
    if c.metric.starts_with("latency") {
        Some(pipe / c.value)
    } else {
        Some(c.value / pipe)
    }
}

/// One table row: its label and the cells it shows (`metric`, `size`, `pairs`).
type Row = (String, &'static str, usize, usize);

fn print_table(cells: &[Cell], wide: bool) {
    say!(
        "shmq bench: {} CPUs, two processes{}.",
        cpus(),
        if cpus() >= 2 {
            ", pinned to CPUs 0 and 1"
        } else {
            ""
        }
    );
    say!("latency = ping-pong round trip / 2; throughput at the receiver, every message checked.");
    say!("(×N) = N times better than the pipe.\n");
    let mut rows: Vec<Row> = Vec::new();
    for size in LATENCY_SIZES {
        rows.push((
            format!("latency p50 {}", label_size(size)),
            "latency_p50_ns",
            size,
            1,
        ));
        rows.push((
            format!("latency p99 {}", label_size(size)),
            "latency_p99_ns",
            size,
            1,
        ));
    }
    for size in STREAM_SIZES {
        rows.push((
            format!("throughput {}", label_size(size)),
            "throughput_msgs_per_s",
            size,
            1,
        ));
    }
    print_grid(cells, &TRANSPORTS, &rows, wide);
    print_select(cells);
    print_async(cells);
    say!("\nMPMC: N producer and N consumer processes (unpinned) on one queue or one named pipe,");
    say!(
        "{} items; throughput summed over the consumers, every item checked.\n",
        label_size(MPMC_SIZE)
    );
    let rows: Vec<Row> = MPMC_PAIRS
        .iter()
        .map(|&n| {
            (
                format!("throughput {n}P{n}C {}", label_size(MPMC_SIZE)),
                "mpmc_throughput_msgs_per_s",
                MPMC_SIZE,
                n,
            )
        })
        .collect();
    print_grid(cells, &MPMC_TRANSPORTS, &rows, wide);
    topic::print(cells);
}

/// Select time / blocking-recv time for a `shmq-select-64` cell (the target: at most
/// 2), from the `shmq-blocking` cell of the same row.
fn select_over_blocking(cells: &[Cell], c: &Cell) -> Option<f64> {
    if c.transport != "shmq-select-64" {
        return None;
    }
    cells
        .iter()
        .find(|b| {
            b.metric == c.metric
                && b.size == c.size
                && b.pairs == c.pairs
                && b.transport == "shmq-blocking"
        })
        .map(|b| c.value / b.value)
}

/// The Select section: blocking recv and Select over 64, with the ratio.
fn print_select(cells: &[Cell]) {
    say!("\nSelect: each process receives through one Select over 64 registrations (62 idle rings");
    say!("with live producers, an idle Event, the pipe), then try_recv; against a blocking recv.");
    say!(
        "Parked: each side works {} µs before it answers, so every receiver sleeps (left out).",
        THINK.as_micros()
    );
    say!("select / recv = the select's time over the recv's (lower is better).\n");
    let mut table = vec![vec![
        String::new(),
        "shmq-blocking".to_string(),
        "shmq-select-64".to_string(),
        "select / recv".to_string(),
    ]];
    for (label, metric) in [
        ("latency p50", "latency_p50_ns"),
        ("latency p99", "latency_p99_ns"),
        ("parked p50", "parked_latency_p50_ns"),
        ("parked p99", "parked_latency_p99_ns"),
    ] {
        let find = |t: &str| {
            cells
                .iter()
                .find(|c| c.metric == metric && c.size == 8 && c.pairs == 1 && c.transport == t)
        };
        let show = |c: Option<&Cell>| c.map_or("—".to_string(), |c| format_ns(c.value));
        let ratio = find("shmq-select-64")
            .and_then(|c| select_over_blocking(cells, c))
            .map_or("—".to_string(), |r| format!("×{r:.2}"));
        table.push(vec![
            format!("{label} {}", label_size(8)),
            show(find("shmq-blocking")),
            show(find("shmq-select-64")),
            ratio,
        ]);
    }
    print_aligned(&table);
}

/// The async section: `recv_async` against `recv` in the same wait mode, with the ratios.
fn print_async(cells: &[Cell]) {
    say!("\nAsync: the 8-byte ping-pong with send_async/recv_async on both sides (a minimal");
    say!("executor: the thread parks until woken), against send/recv in the same wait mode.");
    say!("ratio = the async time over the blocking call's in the same mode (lower is better).\n");
    let mut table = vec![vec![
        String::new(),
        "shmq-blocking".to_string(),
        "shmq-async-blocking".to_string(),
        "ratio".to_string(),
        "shmq-hybrid".to_string(),
        "shmq-async-hybrid".to_string(),
        "ratio".to_string(),
    ]];
    for (label, metric) in [
        ("latency p50", "latency_p50_ns"),
        ("latency p99", "latency_p99_ns"),
    ] {
        let find = |t: &str| {
            cells
                .iter()
                .find(|c| c.metric == metric && c.size == 8 && c.pairs == 1 && c.transport == t)
        };
        let show = |c: Option<&Cell>| c.map_or("—".to_string(), |c| format_ns(c.value));
        let ratio = |a: Option<&Cell>, s: Option<&Cell>| match (a, s) {
            (Some(a), Some(s)) => format!("×{:.2}", a.value / s.value),
            _ => "—".to_string(),
        };
        let (sb, ab) = (find("shmq-blocking"), find("shmq-async-blocking"));
        let (sh, ah) = (find("shmq-hybrid"), find("shmq-async-hybrid"));
        table.push(vec![
            format!("{label} {}", label_size(8)),
            show(sb),
            show(ab),
            ratio(ab, sb),
            show(sh),
            show(ah),
            ratio(ah, sh),
        ]);
    }
    print_aligned(&table);
}

/// Runs `f` to completion on this thread: the smallest executor, parking the thread until
/// the future's waker (the shmq readiness thread) unparks it.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Prints rows of cells, the first column left-aligned, the others right-aligned, with a rule
/// under the first row.
fn print_aligned(table: &[Vec<String>]) {
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, row) in table.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (s, &w))| {
                let pad = " ".repeat(w - s.chars().count());
                if i == 0 {
                    format!("{s}{pad}")
                } else {
                    format!("{pad}{s}")
                }
            })
            .collect();
        say!("{}", line.join("  ").trim_end());
        if n == 0 {
            say!(
                "{}",
                "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
            );
        }
    }
}

/// Prints `rows` against `transports` as an aligned table: in blocks of transport columns
/// that each fit [`TABLE_WIDTH`] (every block repeats the row labels), or in one if `wide`.
fn print_grid(cells: &[Cell], transports: &[&str], rows: &[Row], wide: bool) {
    let mut table: Vec<Vec<String>> = vec![
        std::iter::once(String::new())
            .chain(transports.iter().map(|t| t.to_string()))
            .collect(),
    ];
    for (label, metric, size, pairs) in rows {
        let mut line = vec![label.clone()];
        for &t in transports {
            let cell = cells.iter().find(|c| {
                c.metric == *metric && c.size == *size && c.pairs == *pairs && c.transport == t
            });
            line.push(match cell {
                None => "—".to_string(),
                Some(c) => {
                    let figure = if metric.starts_with("latency") {
                        format_ns(c.value)
                    } else {
                        format_rate(c.value, *size)
                    };
                    match vs_pipe(cells, c) {
                        Some(r) if t != "pipe" => format!("{figure} ({})", format_ratio(r)),
                        _ => figure,
                    }
                }
            });
        }
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Blocks of columns after the labels, each as many as fit beside them.
    let mut blocks: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = widths[0];
    for (i, &w) in widths.iter().enumerate().skip(1) {
        let last = blocks.last_mut().expect("one block at least");
        if wide || last.is_empty() || used + 2 + w <= TABLE_WIDTH {
            last.push(i);
            used += 2 + w;
        } else {
            blocks.push(vec![i]);
            used = widths[0] + 2 + w;
        }
    }
    for (b, block) in blocks.iter().enumerate() {
        if b > 0 {
            say!("");
        }
        let cols: Vec<usize> = std::iter::once(0).chain(block.iter().copied()).collect();
        for (n, row) in table.iter().enumerate() {
            let line: Vec<String> = cols
                .iter()
                .map(|&i| {
                    let s = &row[i];
                    let pad = " ".repeat(widths[i] - s.chars().count());
                    if i == 0 {
                        format!("{s}{pad}")
                    } else {
                        format!("{pad}{s}")
                    }
                })
                .collect();
            say!("{}", line.join("  ").trim_end());
            if n == 0 {
                let width: usize = cols.iter().map(|&i| widths[i]).sum::<usize>();
                say!("{}", "-".repeat(width + 2 * (cols.len() - 1)));
            }
        }
    }
}

fn format_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn format_rate(msgs: f64, size: usize) -> String {
    if size >= 64 * 1024 {
        format!("{:.2} GB/s", msgs * size as f64 / 1e9)
    } else if msgs >= 1e6 {
        format!("{:.1} M/s", msgs / 1e6)
    } else {
        format!("{:.0} k/s", msgs / 1e3)
    }
}

fn format_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("×{r:.0}")
    } else {
        format!("×{r:.1}")
    }
}

/// `{"cpus": N, "rows": [{"metric", "size", "pairs", "transport", "value", "vs_pipe",
/// "select_over_blocking", "topic_ratio"}, ...]}`; `select_over_blocking` is null except on
/// `shmq-select-64` rows, `topic_ratio` (the figure over its baseline's) except on the Topic
/// section's rows that have a baseline.
fn print_json(cells: &[Cell]) {
    let rows: Vec<serde_json::Value> = cells
        .iter()
        .map(|c| {
            serde_json::json!({
                "metric": c.metric,
                "size": c.size,
                "pairs": c.pairs,
                "transport": c.transport,
                "value": c.value,
                "vs_pipe": vs_pipe(cells, c),
                "select_over_blocking": select_over_blocking(cells, c),
                "topic_ratio": topic::baseline(cells, c).map(|(_, r)| r),
            })
        })
        .collect();
    out::json(&serde_json::json!({ "cpus": cpus(), "rows": rows }));
}

// ----- the measuring side -----

fn spawn_peer(args: &[String], stdio_pipes: bool) -> Result<Child, String> {
    let (stdin, stdout) = if stdio_pipes {
        (Stdio::piped(), Stdio::piped())
    } else {
        (Stdio::null(), Stdio::null())
    };
    spawn_peer_on(args, (cpus() >= 2).then_some("1"), stdin, stdout)
}

/// Starts a peer restricted to `cpus` (a `PIN_ENV` list; `None`: as this process).
fn spawn_peer_on(
    args: &[String],
    cpus: Option<&str>,
    stdin: Stdio,
    stdout: Stdio,
) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("__bench-peer").args(args);
    if let Some(cpus) = cpus {
        cmd.env(PIN_ENV, cpus);
    }
    cmd.stdin(stdin).stdout(stdout);
    cmd.spawn()
        .map_err(|e| format!("starting the peer process: {e}"))
}

/// Kills the peer if a measurement bails out early.
struct Peer(Child);
impl Drop for Peer {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            // Give a peer that is finishing on its own a moment, then make sure.
            std::thread::sleep(Duration::from_millis(20));
            if self.0.try_wait().ok().flatten().is_none() {
                let _ = self.0.kill();
            }
        }
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize] as f64
}

/// Ping-pong round trips until the budget is spent; returns one-way p50 and p99 in ns.
fn latency(transport: &str, size: usize, budget: Duration) -> Result<(f64, f64), String> {
    let peer_args = |endpoint: &str| {
        vec![
            transport.to_string(),
            "echo".into(),
            endpoint.to_string(),
            size.to_string(),
        ]
    };
    let mut rtts: Vec<u64> = Vec::with_capacity(1 << 20);
    let mut msg = vec![0u8; size];
    let think = think_time(transport);
    // A parked round trip takes over 200 µs: fewer of them warm up.
    let warm_up = if think.is_zero() { 1000 } else { 50 };
    let mut timed = |round_trip: RoundTrip<'_>| -> Result<(), String> {
        for seq in 0..warm_up {
            round_trip(seq, &mut msg)?;
        }
        let start = Instant::now();
        let mut last = start;
        let mut seq = warm_up;
        while last - start < budget || rtts.len() < 100 {
            round_trip(seq, &mut msg)?;
            let now = Instant::now();
            rtts.push((now - last).as_nanos() as u64);
            last = now;
            seq += 1;
        }
        Ok(())
    };
    match transport {
        "raw" => {
            let name = seg_name("raw-lat");
            let seg = Segment::create(name.as_str(), 256).map_err(|e| e.to_string())?;
            let _peer = Peer(spawn_peer(&peer_args(&name), false)?);
            let (ping, pong) = (
                seg.atomic_u64(0).ok_or("segment")?,
                seg.atomic_u64(128).ok_or("segment")?,
            );
            let wait_for = |w: &AtomicU64, v: u64| -> Result<(), String> {
                let t = Instant::now();
                while w.load(Ordering::Acquire) != v {
                    std::hint::spin_loop();
                    if t.elapsed() > PEER_PATIENCE {
                        return Err("peer stopped answering".into());
                    }
                }
                Ok(())
            };
            timed(&mut |seq, _| {
                ping.store(seq + 1, Ordering::Release);
                wait_for(pong, seq + 1)
            })?;
            ping.store(u64::MAX, Ordering::Release);
        }
        "shmq-queue" => match size {
            8 => queue_latency::<8>(&peer_args, &mut timed)?,
            64 => queue_latency::<64>(&peer_args, &mut timed)?,
            1024 => queue_latency::<1024>(&peer_args, &mut timed)?,
            _ => return Err(format!("no {size}-byte queue items")),
        },
        t if t.starts_with("shmq-select-64") => select_latency(&peer_args, think, &mut timed)?,
        topic::LATENCY => topic::latency(&peer_args, size, &mut timed)?,
        t if t.starts_with("shmq-async") => {
            let name = seg_name("async-lat");
            let mut end = Pipe::create(name.as_str(), 64 * 1024).map_err(|e| e.to_string())?;
            end.set_wait_mode(wait_mode(t));
            let _peer = Peer(spawn_peer(&peer_args(&name), false)?);
            timed(&mut |seq, msg| {
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                block_on(end.send_async(msg)).map_err(|e| e.to_string())?;
                let back = block_on(end.recv_async()).map_err(|e| e.to_string())?;
                check_seq(&back, seq)
            })?;
        }
        t if t.starts_with("shmq") => {
            let name = seg_name("pipe-lat");
            let mut end = Pipe::create(name.as_str(), 64 * 1024).map_err(|e| e.to_string())?;
            end.set_wait_mode(wait_mode(t));
            let _peer = Peer(spawn_peer(&peer_args(&name), false)?);
            timed(&mut |seq, msg| {
                spin_for(think);
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                end.send(msg).map_err(|e| e.to_string())?;
                let back = end.recv_timeout(PEER_PATIENCE).map_err(|e| e.to_string())?;
                check_seq(&back, seq)
            })?;
        }
        _ => {
            let (mut peer, mut reader, mut writer, cleanup) =
                stream_endpoints(transport, peer_args)?;
            timed(&mut |seq, msg| {
                msg[..8].copy_from_slice(&seq.to_le_bytes());
                writer.write_all(msg).map_err(|e| e.to_string())?;
                reader.read_exact(msg).map_err(|e| e.to_string())?;
                check_seq(msg, seq)
            })?;
            drop((reader, writer));
            let _ = peer.0.wait();
            drop(peer);
            cleanup();
        }
    }
    rtts.sort_unstable();
    // A one-way time holds one think time (a round trip, one per side).
    let one_way = |p: f64| percentile(&rtts, p) / 2.0 - think.as_nanos() as f64;
    Ok((one_way(0.5), one_way(0.99)))
}

/// How long each side works on a message before it answers: [`THINK`] for the parked runs.
fn think_time(transport: &str) -> Duration {
    if transport.ends_with("-parked") {
        THINK
    } else {
        Duration::ZERO
    }
}

/// Spins for `d` (a side's think time; nothing when zero).
fn spin_for(d: Duration) {
    if d.is_zero() {
        return;
    }
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Name of the Select section's segment `tag`, created by the bench process `pid`.
fn select_seg(tag: &str, pid: u32) -> String {
    format!("shmq-bench-sel{tag}-{pid}")
}

/// One process's idle registrations in the Select section: [`SELECT_IDLE_RINGS`] ring
/// consumers whose producers the other process holds, and an [`Event`] nobody sets. The
/// bench process creates every segment (`sela<k>`: it consumes; `selb<k>`: the peer
/// consumes; `sele0`, `sele1`: the events) and removes them when its set drops.
struct IdleSet {
    rx: Vec<Consumer>,
    _tx: Vec<Producer>,
    event: Event,
    _peers_event: Option<Event>,
}

impl IdleSet {
    /// The bench's set; also creates the peer's rings and event.
    fn create(pid: u32) -> Result<IdleSet, String> {
        let e = |e: shmq::CreateError| e.to_string();
        let ring = |tag: String| Ring::create(select_seg(&tag, pid).as_str(), 4096).map_err(e);
        let mut rx = Vec::with_capacity(SELECT_IDLE_RINGS);
        let mut tx = Vec::with_capacity(SELECT_IDLE_RINGS);
        for k in 0..SELECT_IDLE_RINGS {
            rx.push(
                ring(format!("a{k}"))?
                    .consumer()
                    .map_err(|e| e.to_string())?,
            );
            tx.push(
                ring(format!("b{k}"))?
                    .producer()
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(IdleSet {
            rx,
            _tx: tx,
            event: Event::create(select_seg("e0", pid).as_str()).map_err(e)?,
            _peers_event: Some(Event::create(select_seg("e1", pid).as_str()).map_err(e)?),
        })
    }

    /// The peer's set, over the segments the bench process `pid` created.
    fn open(pid: u32) -> Result<IdleSet, String> {
        let e = |e: shmq::OpenError| e.to_string();
        let ring = |tag: String| Ring::open(select_seg(&tag, pid).as_str()).map_err(e);
        let mut rx = Vec::with_capacity(SELECT_IDLE_RINGS);
        let mut tx = Vec::with_capacity(SELECT_IDLE_RINGS);
        for k in 0..SELECT_IDLE_RINGS {
            rx.push(
                ring(format!("b{k}"))?
                    .consumer()
                    .map_err(|e| e.to_string())?,
            );
            tx.push(
                ring(format!("a{k}"))?
                    .producer()
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(IdleSet {
            rx,
            _tx: tx,
            event: Event::open(select_seg("e1", pid).as_str()).map_err(e)?,
            _peers_event: None,
        })
    }

    /// Waits in one fresh [`Select`] over the 63 idle registrations and the one `active`
    /// adds, last; returns whether the ready one is `active`'s (an idle one is ready only
    /// once the other process let go of it).
    fn select<'a>(&'a self, active: impl FnOnce(&mut Select<'a>) -> usize) -> Result<bool, String> {
        let mut sel = Select::new().map_err(|e| e.to_string())?;
        for rx in &self.rx {
            sel.recv(rx);
        }
        sel.wait(&self.event);
        let on = active(&mut sel);
        Ok(sel
            .select_timeout(PEER_PATIENCE)
            .map_err(|e| e.to_string())?
            == on)
    }
}

/// Ping-pong through a [`Pipe`] whose receiving side, in both processes, waits in a
/// [`Select`] over 64 registrations (an [`IdleSet`] and the pipe), then calls `try_recv`.
fn select_latency(
    peer_args: &dyn Fn(&str) -> Vec<String>,
    think: Duration,
    timed: &mut dyn FnMut(RoundTrip<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let pid = std::process::id();
    let mut end =
        Pipe::create(select_seg("p", pid).as_str(), 64 * 1024).map_err(|e| e.to_string())?;
    let idle = IdleSet::create(pid)?;
    let peer = Peer(spawn_peer(&peer_args(&pid.to_string()), false)?);
    let result = timed(&mut |seq, msg| {
        spin_for(think);
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        end.send(msg).map_err(|e| e.to_string())?;
        loop {
            let pipe = &end;
            if !idle.select(|sel| sel.recv_pipe(pipe))? {
                return Err("an idle registration became ready: the peer let go".into());
            }
            match end.try_recv() {
                Ok(back) => return check_seq(&back, seq),
                Err(TryRecvError::Empty) => {} // selected, then not there: select again
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    drop((end, idle)); // the peer sees its producer gone and exits
    drop(peer);
    result
}

/// The Select section's peer: echoes through the pipe, receiving as [`select_latency`] does.
fn select_peer(endpoint: &str, think: Duration) -> Result<(), String> {
    let pid: u32 = endpoint.parse().map_err(|_| "bad endpoint")?;
    let end = Pipe::open(select_seg("p", pid).as_str()).map_err(|e| e.to_string())?;
    let idle = IdleSet::open(pid)?;
    let (mut tx, mut rx) = end.split();
    loop {
        if !idle.select(|sel| sel.recv(&rx))? {
            return Ok(()); // the bench let go of our idle rings: the run is over
        }
        match rx.try_recv() {
            Ok(msg) => {
                spin_for(think);
                tx.send(&msg).map_err(|e| e.to_string())?;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Ping-pong through a request queue and a reply queue of `[u8; N]` items (default wait mode).
fn queue_latency<const N: usize>(
    peer_args: &dyn Fn(&str) -> Vec<String>,
    timed: &mut dyn FnMut(RoundTrip<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let e = |e: shmq::CreateError| e.to_string();
    let (req_name, rep_name) = (seg_name("queue-req"), seg_name("queue-rep"));
    let req = Queue::<[u8; N]>::create(req_name.as_str(), 64).map_err(e)?;
    let rep = Queue::<[u8; N]>::create(rep_name.as_str(), 64).map_err(e)?;
    let _peer = Peer(spawn_peer(
        &peer_args(&format!("{req_name},{rep_name}")),
        false,
    )?);
    let result = timed(&mut |seq, msg| {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        let item = <[u8; N]>::try_from(&*msg).map_err(|e| e.to_string())?;
        req.put(item).map_err(|e| e.to_string())?;
        let back = rep.get_timeout(PEER_PATIENCE).map_err(|e| e.to_string())?;
        check_seq(&back, seq)
    });
    req.close(); // the peer's next get fails and it exits
    result
}

/// Receives `[u8; N]` items from a producer peer through a queue until `take` says stop.
fn queue_stream<const N: usize>(
    peer_args: &dyn Fn(&str) -> Vec<String>,
    take: &mut dyn FnMut(&[u8]) -> Result<bool, String>,
) -> Result<(), String> {
    let name = seg_name("queue-tput");
    let q = Queue::<[u8; N]>::create(name.as_str(), QUEUE_CAPACITY).map_err(|e| e.to_string())?;
    let _peer = Peer(spawn_peer(&peer_args(&name), false)?);
    let mut result = Ok(());
    loop {
        // Copied out, as `Queue::get` does; only the sequence number is checked.
        match q.get_timeout(PEER_PATIENCE) {
            Ok(item) => match take(&item) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            },
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
    }
    q.close(); // the producer's next put fails and it exits
    result
}

fn wait_mode(transport: &str) -> WaitMode {
    match transport {
        "shmq-busy" => WaitMode::BusyPoll,
        "shmq-blocking"
        | "shmq-queue-blocking"
        | "shmq-blocking-parked"
        | "shmq-async-blocking" => WaitMode::Blocking,
        _ => WaitMode::Hybrid,
    }
}

fn check_seq(msg: &[u8], seq: u64) -> Result<(), String> {
    let got = msg
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if got == Some(seq) {
        Ok(())
    } else {
        Err(format!("expected message {seq}, got {got:?}"))
    }
}

type Cleanup = Box<dyn FnOnce()>;
/// One ping-pong exchange: send message `seq` in the buffer, wait for it to come back.
type RoundTrip<'a> = &'a mut dyn FnMut(u64, &mut [u8]) -> Result<(), String>;
/// A byte-stream connection to a peer: the peer, both directions, and what to remove after.
type Stream = (Peer, Box<dyn Read>, Box<dyn Write>, Cleanup);

/// Starts a peer for a byte-stream transport and returns both directions of the connection.
fn stream_endpoints(
    transport: &str,
    peer_args: impl Fn(&str) -> Vec<String>,
) -> Result<Stream, String> {
    let e = |e: std::io::Error| e.to_string();
    match transport {
        "pipe" => {
            let mut child = spawn_peer(&peer_args("-"), true)?;
            let w = child.stdin.take().ok_or("no stdin")?;
            let r = child.stdout.take().ok_or("no stdout")?;
            Ok((Peer(child), Box::new(r), Box::new(w), Box::new(|| {})))
        }
        "unix" => {
            let path = std::env::temp_dir().join(format!("{}.sock", seg_name("unix")));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(e)?;
            let peer = Peer(spawn_peer(&peer_args(&path.to_string_lossy()), false)?);
            let (s, _) = listener.accept().map_err(e)?;
            let r = s.try_clone().map_err(e)?;
            Ok((
                peer,
                Box::new(r),
                Box::new(s),
                Box::new(move || drop(std::fs::remove_file(&path))),
            ))
        }
        "tcp" => {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(e)?;
            let port = listener.local_addr().map_err(e)?.port();
            let peer = Peer(spawn_peer(&peer_args(&port.to_string()), false)?);
            let (s, _) = listener.accept().map_err(e)?;
            s.set_nodelay(true).map_err(e)?;
            let r = s.try_clone().map_err(e)?;
            Ok((peer, Box::new(r), Box::new(s), Box::new(|| {})))
        }
        other => Err(format!("unknown transport {other}")),
    }
}

/// Receives a stream of `size`-byte messages for about `budget`; returns messages per second.
fn throughput(transport: &str, size: usize, budget: Duration) -> Result<f64, String> {
    let peer_args = |endpoint: &str| {
        vec![
            transport.to_string(),
            "stream".into(),
            endpoint.to_string(),
            size.to_string(),
        ]
    };
    let mut received = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    // Counts a message, checks its sequence number, says whether to go on. The clock is read
    // on the first message and then every 256th, so timing does not cost more than the
    // messages it times.
    let mut take = |seq_bytes: &[u8]| -> Result<bool, String> {
        check_seq(seq_bytes, received)?;
        received += 1;
        if received == 1 || received % 256 == 0 {
            last = Instant::now();
            let t0 = *first.get_or_insert(last);
            return Ok(last - t0 < budget);
        }
        Ok(true)
    };
    match transport {
        "raw" => {
            let name = seg_name("raw-ring");
            let seg = Segment::create(name.as_str(), RAW_RING_BYTES).map_err(|e| e.to_string())?;
            let _peer = Peer(spawn_peer(&peer_args(&name), false)?);
            let ring = RawRing::new(&seg).ok_or("segment")?;
            let mut head = 0u64;
            let mut cached_tail = 0u64;
            let mut idle = Instant::now();
            loop {
                if head == cached_tail {
                    cached_tail = ring.tail.load(Ordering::Acquire);
                    if head == cached_tail {
                        std::hint::spin_loop();
                        if idle.elapsed() > PEER_PATIENCE {
                            return Err("peer stopped sending".into());
                        }
                        continue;
                    }
                }
                idle = Instant::now();
                let v = ring.slot(head).load(Ordering::Relaxed);
                head += 1;
                ring.head.store(head, Ordering::Release);
                if !take(&v.to_le_bytes())? {
                    break;
                }
            }
            ring.stop.store(1, Ordering::Release);
        }
        "shmq-queue" => match size {
            8 => queue_stream::<8>(&peer_args, &mut take)?,
            64 => queue_stream::<64>(&peer_args, &mut take)?,
            1024 => queue_stream::<1024>(&peer_args, &mut take)?,
            _ => return Err(format!("no {size}-byte queue items")),
        },
        t if t.starts_with("shmq") => {
            let name = seg_name("ring-tput");
            let ring = Ring::create(name.as_str(), RING_BYTES).map_err(|e| e.to_string())?;
            let mut rx = ring.consumer().map_err(|e| e.to_string())?;
            rx.set_wait_mode(wait_mode(t));
            let _peer = Peer(spawn_peer(&peer_args(&name), false)?);
            // Take everything already there as one batch, released with one store; when
            // nothing is, wait for one message (spinning or sleeping per the mode). Messages
            // are read in place: only their sequence numbers are touched.
            let mut more = true;
            while more {
                let mut failed = None;
                let got = rx
                    .try_drain(|msg| {
                        if more && failed.is_none() {
                            match take(msg) {
                                Ok(go) => more = go,
                                Err(e) => failed = Some(e),
                            }
                        }
                    })
                    .map_err(|e| e.to_string())?;
                if let Some(e) = failed {
                    return Err(e);
                }
                if got == 0 && more {
                    match rx.recv_timeout(PEER_PATIENCE) {
                        Ok(msg) => more = take(&msg)?,
                        Err(RecvTimeoutError::Timeout) => return Err("peer stopped sending".into()),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
            drop(rx); // the producer sees Disconnected and exits
        }
        _ => {
            let (peer, mut reader, writer, cleanup) = stream_endpoints(transport, peer_args)?;
            drop(writer);
            let mut buf = vec![0u8; size];
            loop {
                reader.read_exact(&mut buf).map_err(|e| e.to_string())?;
                if !take(&buf)? {
                    break;
                }
            }
            drop(reader); // the peer's next write fails with EPIPE and it exits
            drop(peer);
            cleanup();
        }
    }
    // The run stops right after a clock read, so `received - 1` messages arrived in
    // `last - first` (the first one started the clock).
    let elapsed = first.map_or(Duration::ZERO, |f| last - f);
    if received < 2 || elapsed.is_zero() {
        return Err("too few messages to time".into());
    }
    Ok((received - 1) as f64 / elapsed.as_secs_f64())
}

// ----- the raw spin ring: the upper bound for 8-byte messages -----

const RAW_SLOTS: usize = 4096;
const RAW_RING_BYTES: usize = 384 + RAW_SLOTS * 8;

/// A minimal SPSC ring of 8-byte words over a raw segment: tail, head and a stop flag on
/// separate 128-byte lines, cached remote indices. The floor any 8-byte transport can reach.
struct RawRing<'a> {
    tail: &'a AtomicU64,
    head: &'a AtomicU64,
    stop: &'a AtomicU64,
    seg: &'a Segment,
}

impl<'a> RawRing<'a> {
    fn new(seg: &'a Segment) -> Option<Self> {
        Some(RawRing {
            tail: seg.atomic_u64(0)?,
            head: seg.atomic_u64(128)?,
            stop: seg.atomic_u64(256)?,
            seg,
        })
    }

    fn slot(&self, i: u64) -> &'a AtomicU64 {
        // In range: the segment holds RAW_SLOTS words after the 384-byte control area.
        self.seg
            .atomic_u64(384 + (i as usize % RAW_SLOTS) * 8)
            .unwrap_or(self.stop)
    }
}

// ----- the peer process -----

/// `shmq __bench-peer TRANSPORT echo|stream ENDPOINT SIZE`: the other side of a measurement.
pub(crate) fn peer(transport: &str, role: &str, endpoint: &str, size: usize) -> Result<(), String> {
    if let Ok(cpus) = std::env::var(PIN_ENV) {
        pin(cpus.split(',').filter_map(|c| c.parse().ok()));
    }
    if let Some(role) = role.strip_prefix("mpmc-") {
        return mpmc::peer(transport, role, endpoint);
    }
    if role.starts_with("topic-") || transport == topic::LATENCY {
        return topic::peer(transport, role, endpoint, size);
    }
    let echo = role == "echo";
    if transport == "shmq-queue" {
        return match size {
            8 => queue_peer::<8>(echo, endpoint),
            64 => queue_peer::<64>(echo, endpoint),
            1024 => queue_peer::<1024>(echo, endpoint),
            _ => Err(format!("no {size}-byte queue items")),
        };
    }
    match transport {
        "raw" if echo => {
            let seg = Segment::open(endpoint).map_err(|e| e.to_string())?;
            let (ping, pong) = (
                seg.atomic_u64(0).ok_or("segment")?,
                seg.atomic_u64(128).ok_or("segment")?,
            );
            let mut seen = 0;
            let mut idle = Instant::now();
            loop {
                let v = ping.load(Ordering::Acquire);
                if v == u64::MAX {
                    return Ok(());
                }
                if v != seen {
                    seen = v;
                    pong.store(v, Ordering::Release);
                    idle = Instant::now();
                } else if idle.elapsed() > PEER_PATIENCE {
                    return Err("nobody pinged".into());
                }
                std::hint::spin_loop();
            }
        }
        "raw" => {
            let seg = Segment::open(endpoint).map_err(|e| e.to_string())?;
            let ring = RawRing::new(&seg).ok_or("segment")?;
            let (mut tail, mut cached_head) = (0u64, 0u64);
            let mut idle = Instant::now();
            while ring.stop.load(Ordering::Relaxed) == 0 {
                if tail - cached_head == RAW_SLOTS as u64 {
                    cached_head = ring.head.load(Ordering::Acquire);
                    if tail - cached_head == RAW_SLOTS as u64 {
                        std::hint::spin_loop();
                        if idle.elapsed() > PEER_PATIENCE {
                            return Err("nobody reads".into());
                        }
                        continue;
                    }
                }
                idle = Instant::now();
                ring.slot(tail).store(tail, Ordering::Relaxed);
                tail += 1;
                ring.tail.store(tail, Ordering::Release);
            }
            Ok(())
        }
        t if t.starts_with("shmq-select-64") && echo => select_peer(endpoint, think_time(t)),
        t if t.starts_with("shmq-async") && echo => {
            let mut end = Pipe::open(endpoint).map_err(|e| e.to_string())?;
            end.set_wait_mode(wait_mode(t));
            block_on(async {
                loop {
                    let msg = match end.recv_async().await {
                        Ok(m) => m.to_vec(),
                        Err(shmq::RecvError::Disconnected) => return Ok(()),
                        Err(e) => return Err(e.to_string()),
                    };
                    end.send_async(&msg).await.map_err(|e| e.to_string())?;
                }
            })
        }
        t if t.starts_with("shmq") && echo => {
            let mut end = Pipe::open(endpoint).map_err(|e| e.to_string())?;
            end.set_wait_mode(wait_mode(t));
            let (mut tx, mut rx) = end.split();
            let think = think_time(t);
            loop {
                match rx.recv_timeout(PEER_PATIENCE) {
                    Ok(msg) => {
                        spin_for(think);
                        tx.send(&msg).map_err(|e| e.to_string())?
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        t if t.starts_with("shmq") => {
            let mut tx = Ring::open(endpoint)
                .map_err(|e| e.to_string())?
                .producer()
                .map_err(|e| e.to_string())?;
            tx.set_wait_mode(wait_mode(t));
            let payload = vec![0x5au8; size];
            for seq in 0u64.. {
                // Written in place: the sequence number and a copy of the payload, as a pipe
                // writer copies its buffer.
                // No timeout needed: a consumer that leaves or dies ends the wait.
                let mut g = match tx.reserve(size) {
                    Ok(g) => g,
                    Err(shmq::SendError::Disconnected) => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                };
                g.copy_from_slice(&payload);
                g[..8].copy_from_slice(&seq.to_le_bytes());
                g.commit();
            }
            Ok(())
        }
        _ => {
            let (mut r, mut w): (Box<dyn Read>, Box<dyn Write>) = match transport {
                "pipe" => {
                    // Unbuffered handles on fds 0 and 1: std's stdout is line-buffered, which
                    // would add copies a pipe user does not pay.
                    let e = |e: std::io::Error| e.to_string();
                    let input = std::io::stdin().as_fd().try_clone_to_owned().map_err(e)?;
                    let output = std::io::stdout().as_fd().try_clone_to_owned().map_err(e)?;
                    (
                        Box::new(std::fs::File::from(input)),
                        Box::new(std::fs::File::from(output)),
                    )
                }
                "unix" => {
                    let s = UnixStream::connect(endpoint).map_err(|e| e.to_string())?;
                    (
                        Box::new(s.try_clone().map_err(|e| e.to_string())?),
                        Box::new(s),
                    )
                }
                "tcp" => {
                    let s = TcpStream::connect((
                        "127.0.0.1",
                        endpoint.parse::<u16>().map_err(|e| e.to_string())?,
                    ))
                    .map_err(|e| e.to_string())?;
                    s.set_nodelay(true).map_err(|e| e.to_string())?;
                    (
                        Box::new(s.try_clone().map_err(|e| e.to_string())?),
                        Box::new(s),
                    )
                }
                other => return Err(format!("unknown transport {other}")),
            };
            let mut buf = vec![0x5au8; size];
            if echo {
                while r.read_exact(&mut buf).is_ok() {
                    if w.write_all(&buf).and_then(|()| w.flush()).is_err() {
                        break;
                    }
                }
            } else {
                for seq in 0u64.. {
                    buf[..8].copy_from_slice(&seq.to_le_bytes());
                    if w.write_all(&buf).is_err() {
                        break; // the reader hung up: the run is over
                    }
                }
            }
            Ok(())
        }
    }
}

/// The `shmq-queue` peer: echoes items from the request queue to the reply queue (endpoint
/// `request,reply`), or streams sequence-numbered items until the queue is closed.
fn queue_peer<const N: usize>(echo: bool, endpoint: &str) -> Result<(), String> {
    let e = |e: shmq::OpenError| e.to_string();
    if echo {
        let (req, rep) = endpoint.split_once(',').ok_or("bad endpoint")?;
        let (req, rep) = (
            Queue::<[u8; N]>::open(req).map_err(e)?,
            Queue::<[u8; N]>::open(rep).map_err(e)?,
        );
        loop {
            match req.get_timeout(PEER_PATIENCE) {
                Ok(item) => rep
                    .put_timeout(item, PEER_PATIENCE)
                    .map_err(|e| e.to_string())?,
                Err(GetError::Closed | GetError::Disconnected) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    let q = Queue::<[u8; N]>::open(endpoint).map_err(e)?;
    let mut item = [0x5au8; N];
    for seq in 0u64.. {
        item[..8].copy_from_slice(&seq.to_le_bytes());
        match q.put_timeout(item, PEER_PATIENCE) {
            Ok(()) => {}
            Err(PutError::Closed(_)) => return Ok(()), // the run is over
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

// ----- the MPMC section: N producers and N consumers, all peers -----

mod mpmc {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::path::PathBuf;
    use std::process::{ChildStdout, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use shmq::{Queue, Segment};

    use super::{
        PEER_PATIENCE, Peer, QUEUE_CAPACITY, all_cpus, cpus, seg_name, spawn_peer_on, wait_mode,
    };

    /// The item a producer sends after its last one; each consumer stops at the first it
    /// gets, so N of them stop N consumers, after every item (each producer's come first).
    const STOP: u64 = u64::MAX;
    /// An item is `producer + 1` in the top 16 bits, that producer's sequence number below.
    const SEQ_BITS: u32 = 48;
    const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
    /// Consumers publish their count every this many items; producers look at the stop flag
    /// (and whether the bench is still there) as often.
    const EVERY: u64 = 256;

    /// Control segment: the stop flag at 0; consumer `i`'s count at `slot(i)` and its
    /// "my end is open" flag 8 bytes later, each consumer on its own 128-byte block; producer
    /// `i`'s "my end is open" flag at `slot(pairs + i) + 8`. The bench starts timing only once
    /// every end is open: a producer that opened late (a loaded machine) would otherwise find
    /// the others done, and the consumers, having seen every writer close (end of file on the
    /// FIFO, or every putter gone from the queue), would have quit before its items came.
    fn slot(i: usize) -> usize {
        128 * (1 + i)
    }

    /// A named pipe, removed on drop.
    struct Fifo(PathBuf);

    impl Drop for Fifo {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Runs `pairs` producers and `pairs` consumers for about `budget`; returns the items per
    /// second the consumers took, together.
    pub(super) fn throughput(
        transport: &str,
        pairs: usize,
        budget: Duration,
    ) -> Result<f64, String> {
        let ctl_name = seg_name("mpmc-ctl");
        let ctl = Segment::create(ctl_name.as_str(), slot(2 * pairs)).map_err(|e| e.to_string())?;
        let word = |at: usize| ctl.atomic_u64(at).ok_or("control segment too small");
        let stop = word(0)?;
        let counts = (0..pairs)
            .map(|i| word(slot(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let ready = (0..2 * pairs)
            .map(|i| word(slot(i) + 8))
            .collect::<Result<Vec<_>, _>>()?;
        let (data, _queue, _fifo) = if transport.starts_with("shmq") {
            let name = seg_name("mpmc-queue");
            let q =
                Queue::<u64>::create(name.as_str(), QUEUE_CAPACITY).map_err(|e| e.to_string())?;
            (name, Some(q), None)
        } else {
            let path = std::env::temp_dir().join(format!("{}.fifo", seg_name("mpmc")));
            let _ = std::fs::remove_file(&path);
            rustix::fs::mkfifoat(
                rustix::fs::CWD,
                &path,
                rustix::fs::Mode::from_raw_mode(0o600),
            )
            .map_err(|e| format!("mkfifo: {e}"))?;
            let fifo = Fifo(path);
            (fifo.0.to_string_lossy().into_owned(), None, Some(fifo))
        };
        let spawn = |role: &str, i: usize| -> Result<(Peer, ChildStdout), String> {
            let args = [
                transport.to_string(),
                format!("mpmc-{role}"),
                format!("{data},{ctl_name},{i},{pairs}"),
                "8".into(),
            ];
            let pin = (cpus() >= 2).then(all_cpus);
            let mut child = spawn_peer_on(&args, pin, Stdio::null(), Stdio::piped())?;
            let out = child.stdout.take().ok_or("no stdout")?;
            Ok((Peer(child), out))
        };
        let mut consumers = Vec::new();
        let mut producers = Vec::new();
        for i in 0..pairs {
            consumers.push(spawn("get", i)?);
        }
        for i in 0..pairs {
            producers.push(spawn("put", i)?);
        }
        let total = || {
            counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u64>()
        };

        // Wait until every consumer and producer has its end open and items flow, then warm
        // up.
        let since = Instant::now();
        while total() == 0 || ready.iter().any(|r| r.load(Ordering::Relaxed) == 0) {
            for (p, _) in consumers.iter_mut().chain(producers.iter_mut()) {
                if let Ok(Some(status)) = p.0.try_wait() {
                    return Err(format!("a peer exited early ({status})"));
                }
            }
            if since.elapsed() > PEER_PATIENCE {
                return Err("the items did not start flowing".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(budget / 5);
        let (t0, c0) = (Instant::now(), total());
        std::thread::sleep(budget);
        let (t1, c1) = (Instant::now(), total());
        stop.store(1, Ordering::Relaxed);

        // Every process reports `count sum` of the items it sent or took, then exits.
        let report = |(p, mut out): (Peer, ChildStdout)| -> Result<(u64, u64), String> {
            let mut line = String::new();
            let _ = out.read_to_string(&mut line);
            let mut p = p;
            let status = p.0.wait().map_err(|e| e.to_string())?;
            if !status.success() {
                return Err(format!("a peer failed ({status})"));
            }
            let mut f = line.split_whitespace().map(str::parse::<u64>);
            match (f.next(), f.next()) {
                (Some(Ok(n)), Some(Ok(sum))) => Ok((n, sum)),
                _ => Err(format!("bad peer report {line:?}")),
            }
        };
        let (mut sent, mut got) = ((0u64, 0u64), (0u64, 0u64));
        for p in producers {
            let (n, sum) = report(p)?;
            sent = (sent.0 + n, sent.1.wrapping_add(sum));
        }
        for c in consumers {
            let (n, sum) = report(c)?;
            got = (got.0 + n, got.1.wrapping_add(sum));
        }
        if sent != got {
            return Err(format!(
                "{} items sent, {} taken, or their tags differ: items lost or duplicated",
                sent.0, got.0
            ));
        }
        if c1 <= c0 {
            return Err("too few items to time".into());
        }
        Ok((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
    }

    /// `shmq __bench-peer TRANSPORT mpmc-put|mpmc-get DATA,CONTROL,INDEX,PAIRS 8`.
    pub(super) fn peer(transport: &str, role: &str, endpoint: &str) -> Result<(), String> {
        let mut f = endpoint.rsplitn(4, ',');
        let (pairs, index, ctl, data) = (f.next(), f.next(), f.next(), f.next());
        let (Some(pairs), Some(index), Some(ctl), Some(data)) = (pairs, index, ctl, data) else {
            return Err("bad endpoint".into());
        };
        let pairs: usize = pairs.parse().map_err(|_| "bad pair count")?;
        let index: usize = index.parse().map_err(|_| "bad index")?;
        let ctl = Segment::open(ctl).map_err(|e| e.to_string())?;
        let word = |at: usize| ctl.atomic_u64(at).ok_or("control segment too small");
        let stop = word(0)?;
        let parent = std::os::unix::process::parent_id();
        let over =
            || stop.load(Ordering::Relaxed) != 0 || std::os::unix::process::parent_id() != parent;
        let queue = transport.starts_with("shmq");
        let (n, sum) = match role {
            "put" if queue => {
                let mut q = Queue::<u64>::open(data).map_err(|e| e.to_string())?;
                q.set_wait_mode(wait_mode(transport));
                word(slot(pairs + index) + 8)?.store(1, Ordering::Relaxed);
                produce(index, over, |v| {
                    q.put_timeout(v, PEER_PATIENCE).map_err(|e| e.to_string())
                })?
            }
            "put" => {
                let mut w = File::options()
                    .write(true)
                    .open(data)
                    .map_err(|e| e.to_string())?;
                word(slot(pairs + index) + 8)?.store(1, Ordering::Relaxed);
                produce(index, over, |v| {
                    w.write_all(&v.to_le_bytes()).map_err(|e| e.to_string())
                })?
            }
            "get" if queue => {
                let mut q = Queue::<u64>::open(data).map_err(|e| e.to_string())?;
                q.set_wait_mode(wait_mode(transport));
                word(slot(index) + 8)?.store(1, Ordering::Relaxed);
                consume(pairs, word(slot(index))?, || {
                    q.get_timeout(PEER_PATIENCE).map_err(|e| e.to_string())
                })?
            }
            "get" => {
                let mut r = File::open(data).map_err(|e| e.to_string())?;
                word(slot(index) + 8)?.store(1, Ordering::Relaxed);
                consume(pairs, word(slot(index))?, || {
                    let mut b = [0u8; 8];
                    r.read_exact(&mut b).map_err(|e| e.to_string())?;
                    Ok(u64::from_le_bytes(b))
                })?
            }
            _ => return Err(format!("bad role {role}")),
        };
        println!("{n} {sum}");
        Ok(())
    }

    /// Sends producer `index`'s items until `over`, then the stop item; returns the count and
    /// the sum of the items sent.
    fn produce(
        index: usize,
        over: impl Fn() -> bool,
        mut put: impl FnMut(u64) -> Result<(), String>,
    ) -> Result<(u64, u64), String> {
        let base = (index as u64 + 1) << SEQ_BITS;
        let (mut n, mut sum) = (0u64, 0u64);
        while n % EVERY != 0 || !over() {
            let v = base | (n & SEQ_MASK);
            put(v)?;
            n += 1;
            sum = sum.wrapping_add(v);
        }
        put(STOP)?;
        Ok((n, sum))
    }

    /// Takes items until a stop item, checking that each producer's arrive in order and
    /// publishing the count in `count`; returns the count and the sum of the items.
    fn consume(
        pairs: usize,
        count: &AtomicU64,
        mut get: impl FnMut() -> Result<u64, String>,
    ) -> Result<(u64, u64), String> {
        let mut last: Vec<Option<u64>> = vec![None; pairs];
        let (mut n, mut sum) = (0u64, 0u64);
        loop {
            let v = get()?;
            if v == STOP {
                break;
            }
            let (p, seq) = ((v >> SEQ_BITS) as usize, v & SEQ_MASK);
            let Some(prev) = p.checked_sub(1).and_then(|i| last.get_mut(i)) else {
                return Err(format!("item {v:#x} names no producer"));
            };
            if prev.is_some_and(|l| seq <= l) {
                return Err(format!(
                    "producer {} item {seq} after item {prev:?}: duplicated or reordered",
                    p - 1
                ));
            }
            *prev = Some(seq);
            n += 1;
            sum = sum.wrapping_add(v);
            if n % EVERY == 0 {
                count.store(n, Ordering::Relaxed);
            }
        }
        count.store(n, Ordering::Relaxed);
        Ok((n, sum))
    }
}
