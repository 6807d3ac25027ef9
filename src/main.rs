//! The `shmq` command: see `shmq --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
