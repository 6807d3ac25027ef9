//! `shmq` subcommands. Public API only; no unsafe code.

mod admin;
mod bench;
mod decode;
mod out;
mod stream;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inter-process communication through named shared memory: inspect, clean and benchmark.
#[derive(Debug, Parser)]
#[command(name = "shmq", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare shmq with pipes and sockets and print one table. Progress goes to standard
    /// error: a status line on a terminal, else one line per finished measurement.
    Bench {
        /// Print machine-readable JSON instead of a table:
        /// {"cpus", "rows": [{"metric", "size", "pairs", "transport", "value", "vs_pipe",
        /// "select_over_blocking", "topic_ratio"}]}.
        #[arg(long, conflicts_with = "wide")]
        json: bool,
        /// Shorter measurements (about 5 s in all): noisier figures, for a smoke test.
        #[arg(long)]
        quick: bool,
        /// Print the table in one piece, however wide (by default it is cut into blocks of
        /// columns that fit 100 columns).
        #[arg(long)]
        wide: bool,
    },
    /// The other side of a `shmq bench` measurement (started by `shmq bench` itself).
    #[command(name = "__bench-peer", hide = true)]
    BenchPeer {
        transport: String,
        role: String,
        endpoint: String,
        size: usize,
    },
    /// Stream standard input into a ring (the writing end of a named pipe in memory).
    Send(stream::SendArgs),
    /// Stream a ring to standard output (the reading end of `shmq send`).
    Recv(stream::RecvArgs),
    /// List the shmq segments in /dev/shm (and at the paths given): kind, payload type,
    /// capacity, fill, creator and attached processes (alive or dead), the file's mode, owner
    /// and size in bytes, age; under the table, a line per topic with each subscriber's
    /// process, lag and losses. --json for scripts; --kind and --prefix narrow the list.
    Ls(admin::LsArgs),
    /// Show everything about one segment: header fields, validation, processes (a topic's
    /// subscribers in a table of their own: process, liveness, position, lag, losses), the
    /// sleepers on each futex word, and a peek at the data, the first waiting messages or a
    /// topic's last ones (hex, and the numbers when the payload type is a primitive such as
    /// u64 or f32). Read-only: safe on a segment in use or a corrupted one. --json for
    /// scripts.
    Inspect(admin::InspectArgs),
    /// Remove shmq segments by name (files that are not shmq segments are refused, and so
    /// are segments in use, unless --force).
    Rm(admin::RmArgs),
    /// Remove the segments nobody uses any more: no process holds their use lock (every
    /// process that created or opened them let go or died) and none maps them. Persistent
    /// segments only with --persistent. With --watch, keep doing it as processes die.
    Gc(admin::GcArgs),
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench { json, quick, wide } => bench::run(json, quick, wide),
        Command::BenchPeer {
            transport,
            role,
            endpoint,
            size,
        } => bench::peer(&transport, &role, &endpoint, size),
        Command::Ls(args) => admin::ls(&args),
        Command::Inspect(args) => admin::inspect(&args),
        Command::Rm(args) => admin::rm(&args),
        Command::Gc(args) => admin::gc(&args),
        Command::Send(args) => stream::send(&args),
        Command::Recv(args) => stream::recv(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // SIGINT/SIGTERM ended a command that catches them (send, recv): it cleaned up, and
        // exits as a shell expects of a command stopped by Ctrl-C.
        Err(_) if shmq::Interrupter::process().is_interrupted() => {
            eprintln!("shmq: {}", stream::INTERRUPTED);
            ExitCode::from(130)
        }
        Err(msg) => {
            eprintln!("shmq: {msg}");
            ExitCode::FAILURE
        }
    }
}
