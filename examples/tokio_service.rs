//! A tokio service that serves a shmq [`Queue`](shmq::Queue), a shutdown
//! [`Event`](shmq::Event) and a TCP listener in one `tokio::select!` (feature `async`).
//!
//! ```text
//! cargo run --example tokio_service --features async
//! # job 0 from the queue
//! # ...
//! # client got: "jobs done so far: N"
//! # shutdown: 20 jobs served, 1 TCP client
//! ```
//!
//! The service creates the queue and the event (named after its pid) and a listener on
//! 127.0.0.1, then starts two helpers: a worker process (this program again, as `producer
//! NAME`) that puts 20 jobs and then sets the shutdown event, and a TCP client task that asks
//! how many jobs are done. One task waits for all three with `get_async`, `accept` and
//! `wait_async`: whichever is ready first is served; the others' futures are dropped, which
//! takes nothing from the queue.

use std::error::Error;
use std::process::Command;
use std::time::Duration;

use shmq::{Event, GetError, Queue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JOBS: u64 = 20;

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [role, name] if role == "producer" => producer(name),
        [] => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(service()),
        _ => Err("usage: tokio_service (no arguments)".into()),
    }
}

async fn service() -> Result<(), Box<dyn Error + Send + Sync>> {
    let name = format!("shmq-ex-tokio-{}", std::process::id());
    let jobs = Queue::<u64>::create(format!("{name}-jobs").as_str(), 8)?;
    let shutdown = Event::create(format!("{name}-stop").as_str())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let mut worker = Command::new(std::env::current_exe()?)
        .args(["producer", &name])
        .spawn()?;
    let client = tokio::spawn(async move {
        // Asks once the first jobs are in.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).await?;
        println!("client got: {reply:?}");
        Ok::<_, std::io::Error>(())
    });

    let (mut served, mut clients) = (0u64, 0u32);
    // Set once every producer has gone and the queue is drained (it may come before the
    // shutdown event is seen).
    let mut drained = false;
    loop {
        tokio::select! {
            job = jobs.get_async(), if !drained => match job {
                Ok(job) => {
                    println!("job {job} from the queue");
                    served += 1;
                }
                Err(GetError::Disconnected) => drained = true,
                Err(e) => return Err(e.into()),
            },
            conn = listener.accept() => {
                let (mut s, _) = conn?;
                s.write_all(format!("jobs done so far: {served}").as_bytes()).await?;
                clients += 1;
            }
            () = shutdown.wait_async() => {
                // The worker puts every job before it sets the event: take what is left.
                while let Ok(job) = jobs.try_get() {
                    println!("job {job} from the queue");
                    served += 1;
                }
                break;
            }
        }
    }
    client.await??;
    worker.wait()?;
    println!("shutdown: {served} jobs served, {clients} TCP client");
    Ok(())
}

/// The worker process: puts the jobs at a relaxed pace, then asks the service to stop.
fn producer(name: &str) -> Result<(), Box<dyn Error + Send + Sync>> {
    let jobs = Queue::<u64>::open(format!("{name}-jobs").as_str())?;
    let shutdown = Event::open(format!("{name}-stop").as_str())?;
    for i in 0..JOBS {
        jobs.put_timeout(i, Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_millis(5));
    }
    shutdown.set();
    Ok(())
}
