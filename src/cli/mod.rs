//! `shmq` subcommands. Public API only; no unsafe code.

mod bench;

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
    /// Compare shmq with pipes and sockets and print one table.
    Bench {
        /// Print machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Shorter measurements (about 5 s in all): noisier figures, for a smoke test.
        #[arg(long)]
        quick: bool,
    },
    /// The other side of a `shmq bench` measurement (started by `shmq bench` itself).
    #[command(name = "__bench-peer", hide = true)]
    BenchPeer {
        transport: String,
        role: String,
        endpoint: String,
        size: usize,
    },
    /// Remove shmq segments by name.
    Rm {
        /// Segment names (as in /dev/shm), or paths of file-backed segments.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench { json, quick } => bench::run(json, quick),
        Command::BenchPeer {
            transport,
            role,
            endpoint,
            size,
        } => bench::peer(&transport, &role, &endpoint, size),
        Command::Rm { names } => rm(&names),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("shmq: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn rm(names: &[String]) -> Result<(), String> {
    let mut failed = Vec::new();
    for name in names {
        let opts = if name.contains('/') {
            shmq::Options::file(name)
        } else {
            shmq::Options::new(name.as_str())
        };
        // Only shmq segments are removed: anything else in /dev/shm belongs to someone else.
        match shmq::Segment::inspect(&opts) {
            Ok(_)
            | Err(shmq::OpenError::Corrupted { .. } | shmq::OpenError::VersionMismatch { .. }) => {}
            Err(
                e @ shmq::OpenError::Abandoned { .. } | e @ shmq::OpenError::InitTimeout { .. },
            ) => {
                eprintln!("shmq: note: {e}");
            }
            Err(e) => {
                failed.push(e.to_string());
                continue;
            }
        }
        match shmq::Segment::unlink(&opts) {
            Ok(()) => println!("removed {name}"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\nshmq: "))
    }
}
