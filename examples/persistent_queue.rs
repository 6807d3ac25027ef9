//! Seed scenario "文件队列" (queue 模块中的队列): a queue kept in a file, so that it outlives
//! the processes that use it. A producer puts the numbers 0 to 4, printing "Produced i", and
//! then a `None` end marker; a consumer gets and prints "Consumed i" until the end marker.
//!
//! ```text
//! cargo run --example persistent_queue
//! # Produced 0
//! # ...
//! # Produced 4
//! # Consumed 0
//! # ...
//! # Consumed 4
//!
//! cargo run --example persistent_queue -- put /tmp/q   # puts 0..4 and the end marker, exits
//! cargo run --example persistent_queue -- get /tmp/q   # later: takes them, in order
//! ```
//!
//! The queue is a shmq [`Queue`] created at the file `DIR/queue.shmq` with
//! [`Options::file`] instead of a name in /dev/shm. File-backed segments are persistent: the
//! creator's handle does not remove the file when it drops, so the items stay there when the
//! producer exits. `put DIR` opens the queue, creating it if there is none, puts its items
//! and exits; `get DIR`, run later by another process, opens the file and takes items until
//! the end marker. Each `get` takes one `put`'s batch; the file stays, empty, for the next
//! `put`. Remove it with `rm DIR/queue.shmq` when done.
//!
//! With no arguments the example runs both phases as two separate child processes, one after
//! the other (the producer has exited before the consumer starts), in a fresh directory under
//! [`std::env::temp_dir`] named after its pid, and removes the file and the directory at the
//! end.
//!
//! # What survives a crash
//! Every committed item not yet taken: an item is committed when its `put` returns, and it is
//! in the file from then on, whatever happens to the processes. A producer killed in the
//! middle of a `put` leaves no item (that `put` never returned; consumers skip its slot); a
//! consumer killed in the middle of a `get` counts that item as taken, and every other item
//! stays. So after a producer crash, `get` takes everything the producer had put and then
//! reports that the end marker is missing. This is about processes: the file is a shared
//! memory mapping that shmq does not `fsync`, so after an operating-system crash or power loss
//! only what the kernel had already written back to disk remains.
//!
//! Differences from the seed:
//! - Python's `queue` module has no `FileQueue`; the seed's queue exists only here.
//! - The seed runs producer and consumer as threads at the same time; here they are processes
//!   run one after the other, to show that the items outlive the producer. The consumer
//!   takes what is there with `try_get` and does not wait for more: if the queue runs dry
//!   before the end marker, it reports that instead of waiting for a producer that may never
//!   come.
//! - `None` is [`NONE`] (`u64::MAX`).
//!
//! No call waits more than 10 s.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shmq::{GetError, Options, Queue};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Python's `None`: the end marker.
const NONE: u64 = u64::MAX;
/// Most items the queue file holds.
const CAPACITY: usize = 16;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [phase, dir] if phase == "put" => producer(Path::new(dir)),
        [phase, dir] if phase == "get" => consumer(Path::new(dir)),
        [] => both(),
        _ => Err("usage: persistent_queue [put DIR | get DIR]".into()),
    }
}

/// The queue's file in `dir`.
fn queue_file(dir: &Path) -> PathBuf {
    dir.join("queue.shmq")
}

/// No arguments: `put DIR`, then `get DIR`, as two processes, in a fresh temp dir.
fn both() -> Result<(), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("shmq-ex-persistent-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let ran = run_phase("put", &dir).and_then(|()| run_phase("get", &dir));
    // Remove the file and the directory whatever happened (the file is missing if the
    // producer failed before creating it).
    let removed = match std::fs::remove_file(queue_file(&dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => std::fs::remove_dir(&dir),
    };
    ran?;
    removed?;
    Ok(())
}

/// Runs this program as `PHASE DIR` and waits for it.
fn run_phase(phase: &str, dir: &Path) -> Result<(), Box<dyn Error>> {
    let status = Command::new(std::env::current_exe()?)
        .arg(phase)
        .arg(dir)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{phase}` process failed: {status}").into())
    }
}

/// `put DIR`: the seed's `producer(q)`.
fn producer(dir: &Path) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    let q = Queue::<u64>::open_or_create(Options::file(queue_file(dir)), CAPACITY)?;
    for i in 0..5 {
        q.put_timeout(i, TIMEOUT)?;
        println!("Produced {i}");
    }
    q.put_timeout(NONE, TIMEOUT)?;
    Ok(())
    // `q` drops here; the file, and the items in it, stay.
}

/// `get DIR`: the seed's `consumer(q)`, in a later process.
fn consumer(dir: &Path) -> Result<(), Box<dyn Error>> {
    let q = Queue::<u64>::open(Options::file(queue_file(dir)))?;
    loop {
        match q.try_get() {
            Ok(NONE) => return Ok(()), // if item is None: break
            Ok(item) => println!("Consumed {item}"),
            Err(GetError::Empty) => {
                return Err(
                    "the queue ran dry before the end marker: the producer has not finished".into(),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
}
