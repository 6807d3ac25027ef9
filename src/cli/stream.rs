//! `shmq send` / `shmq recv`: a named pipe through a shared-memory ring.

use clap::Args;

/// Arguments of `shmq send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Ring name (as in /dev/shm).
    pub(crate) name: String,
}

/// Arguments of `shmq recv`.
#[derive(Debug, Args)]
pub(crate) struct RecvArgs {
    /// Ring name (as in /dev/shm).
    pub(crate) name: String,
}

pub(crate) fn send(_args: &SendArgs) -> Result<(), String> {
    Err("not written yet".into())
}

pub(crate) fn recv(_args: &RecvArgs) -> Result<(), String> {
    Err("not written yet".into())
}
