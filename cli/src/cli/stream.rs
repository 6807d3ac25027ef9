//! `shmq send` / `shmq recv`: a named pipe through a shared-memory ring.
//!
//! `shmq send NAME` streams standard input into the ring `NAME`; `shmq recv NAME` streams
//! it to standard output. Either may start first: each creates the ring, or opens it if the
//! other side has, and waits for the other; the ring goes when both have let go.
//!
//! ## Protocol
//! Every ring message starts with a one-byte tag: [`DATA`] (the rest is payload) or [`END`]
//! (the sender read end of input; the last message it publishes). A producer that goes away
//! looks the same to the consumer whether it finished or was killed, so end of stream needs
//! its own marker: a stream that stops without [`END`] is an error on the receiving side.
//!
//! The sender's `--framing` decides where messages begin and end, the receiver's how it
//! writes them out (see [`Framing`]); the two are chosen independently.
//!
//! ## Lifetime
//! The ring's name goes when the last process using it lets go, so a sender waits, after
//! [`END`], until a receiver has claimed the consumer role (from then on the receiver holds
//! the ring until it has read everything). `--timeout` bounds only that wait for the other
//! side to come; once it has come, a slow but live peer is waited for as long as it takes,
//! like a FIFO. A ring left behind by a killed run is replaced by the next run once nobody
//! uses it; one that a live process still holds is refused.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use shmq::{
    AttachError, Consumer, CreateError, OpenError, Options, Peer, Producer, ReadGuard, RecvError,
    RecvTimeoutError, Ring, SendError, SendTimeoutError, TryRecvError, WriteGrant,
};

use crate::cli::out;
use crate::cli::units::{duration, parse_duration, parse_size};

/// Tag of a message carrying payload.
const DATA: u8 = 0;
/// Tag of the last message of a stream: the sender reached the end of its input.
const END: u8 = 1;

/// Ring size when this side creates the ring.
const DEFAULT_CAPACITY: &str = "8MiB";
/// Largest `read(2)` the sender asks for with raw framing.
const DEFAULT_CHUNK: &str = "256KiB";
/// Input buffer for line and length framing.
const IN_BUF: usize = 256 * 1024;
/// Output buffer of the receiver; larger payloads are written straight from the ring.
const OUT_BUF: usize = 128 * 1024;
/// How long one wait lasts before a side that has no peer yet checks for it (and its timeout).
const SLICE: Duration = Duration::from_millis(50);
/// How many times a ring still being initialised by its creator is waited for (1 s each).
const INIT_RETRIES: u32 = 5;

/// How a byte stream is cut into messages (sender) or written back out (receiver).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Framing {
    /// Bytes as they come: the sender publishes what each read returns, the receiver writes
    /// payloads verbatim. `send | recv` reproduces the input byte for byte.
    #[default]
    Raw,
    /// One message per line (with its '\n', if any); the receiver ends each message with
    /// '\n' if it does not end with one.
    Line,
    /// Frames of a u32 little-endian length and that many bytes, one message per frame (the
    /// sender publishes the payload only; the receiver writes length and payload back).
    Length,
}

/// Arguments of `shmq send`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// Ring name (as in /dev/shm).
    pub(crate) name: String,
    /// How standard input is cut into messages.
    #[arg(long, value_enum, default_value_t = Framing::Raw)]
    pub(crate) framing: Framing,
    /// Give up if no receiver has come within this long: 500ms, 1.5s, 2m, 1h 30m, or plain
    /// seconds [default: wait forever, like a FIFO]. A receiver that came is never timed out.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Ring size if this side creates the ring, rounded up to a power of two; a message holds
    /// at most half of it. Bytes, or with a unit: KiB, MiB, GiB are powers of 1024 (64KiB =
    /// 65536); kB, MB, GB (or k, M, G) powers of 1000.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = DEFAULT_CAPACITY)]
    pub(crate) capacity: usize,
    /// Largest read from standard input with raw framing (capped by the ring's largest
    /// message). Bytes, or with a unit: KiB, MiB are powers of 1024; kB, MB of 1000.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = DEFAULT_CHUNK)]
    pub(crate) chunk: usize,
}

/// Arguments of `shmq recv`.
#[derive(Debug, Args)]
pub(crate) struct RecvArgs {
    /// Ring name (as in /dev/shm).
    pub(crate) name: String,
    /// How messages are written to standard output.
    #[arg(long, value_enum, default_value_t = Framing::Raw)]
    pub(crate) framing: Framing,
    /// Give up if no sender has come within this long: 500ms, 1.5s, 2m, 1h 30m, or plain
    /// seconds [default: wait forever, like a FIFO]. A sender that came is never timed out.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Ring size if this side creates the ring, rounded up to a power of two; a message holds
    /// at most half of it. Bytes, or with a unit: KiB, MiB, GiB are powers of 1024 (64KiB =
    /// 65536); kB, MB, GB (or k, M, G) powers of 1000.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = DEFAULT_CAPACITY)]
    pub(crate) capacity: usize,
    /// Stop after this many messages (lines, with line framing), before the end of stream.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,
}

/// A `File` of our own over a standard stream: unbuffered, and not tied to std's lock.
fn own(fd: std::os::fd::BorrowedFd<'_>, what: &str) -> Result<File, String> {
    fd.try_clone_to_owned()
        .map(File::from)
        .map_err(|e| format!("{what}: {e}"))
}

// ----- send -----

pub(crate) fn send(args: &SendArgs) -> Result<(), String> {
    let started = Instant::now();
    catch_signals()?;
    let stdin = own(io::stdin().as_fd(), "standard input")?;
    let ring = attach_ring(&args.name, args.capacity)?;
    let producer = ring
        .first_producer()
        .map_err(|e| role_error(&e, &args.name, "send"))?;
    let mut tx = Tx {
        name: &args.name,
        wait: Wait::new(started, args.timeout),
        producer,
    };
    match args.framing {
        Framing::Raw => send_raw(&mut tx, stdin, args.chunk)?,
        Framing::Line => send_lines(&mut tx, stdin)?,
        Framing::Length => send_frames(&mut tx, stdin)?,
    }
    let mut end = tx.grant(1)?;
    end[0] = END;
    end.commit();
    tx.await_receiver()
    // `ring` drops last: a receiver has come by now, and the last of us to let go removes it.
}

/// The sending side: the producer and the wait for a receiver.
struct Tx<'a> {
    name: &'a str,
    wait: Wait,
    producer: Producer,
}

impl Tx<'_> {
    /// Largest payload a message can carry (the ring's maximum less the tag).
    fn max_payload(&self) -> usize {
        self.producer.max_message() - 1
    }

    /// Room for a `len`-byte message (tag included), waiting as long as a live receiver
    /// needs, or for a receiver to come within the timeout.
    fn grant(&mut self, len: usize) -> Result<WriteGrant<'_>, String> {
        if !self.wait.forever() {
            // Probe with bounded waits while the receiver may still not come: the probe's
            // grant is dropped unpublished, and the room it found stays ours.
            loop {
                match self.producer.reserve_timeout(len, SLICE) {
                    Ok(_) => break,
                    Err(SendTimeoutError::Timeout) => {
                        if self
                            .wait
                            .check(self.producer.peer(), "receiver", self.name)?
                        {
                            break;
                        }
                    }
                    Err(SendTimeoutError::Disconnected) => return Err(receiver_gone(self.name)),
                    Err(e) => return Err(format!("ring {:?}: {e}", self.name)),
                }
            }
        }
        let name = self.name;
        match self.producer.reserve(len) {
            Ok(g) => Ok(g),
            Err(SendError::Disconnected) => Err(receiver_gone(name)),
            Err(e) => Err(format!("ring {name:?}: {e}")),
        }
    }

    /// Publishes one DATA message with a copy of `payload`.
    fn send(&mut self, payload: &[u8], what: &str) -> Result<(), String> {
        let max = self.max_payload();
        if payload.len() > max {
            return Err(too_large(what, payload.len(), max, self.name));
        }
        let mut g = self.grant(payload.len() + 1)?;
        g[0] = DATA;
        g[1..].copy_from_slice(payload);
        g.commit();
        Ok(())
    }

    /// After END: returns once a receiver has claimed the ring (it may be gone again by
    /// now, having read everything), so that dropping the ring cannot take it away from one.
    fn await_receiver(&mut self) -> Result<(), String> {
        let mut nap = Duration::from_millis(1);
        loop {
            if self
                .wait
                .check(self.producer.peer(), "receiver", self.name)?
            {
                return Ok(());
            }
            stop_if_interrupted()?;
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }
}

fn receiver_gone(name: &str) -> String {
    format!("receiver went away from ring {name:?} before the end of the stream")
}

fn too_large(what: &str, len: usize, max: usize, name: &str) -> String {
    format!(
        "{what} of {len} bytes is larger than ring {name:?} can carry ({max} bytes); \
         create the ring with a larger --capacity"
    )
}

/// Raw framing: each read(2) is one message, read straight into its place in the ring.
///
/// A grant cannot be shortened after the fact, so the read size follows what the input
/// delivers: a read that fills the grant is published in place (zero copy); a short read
/// (a pipe or terminal with less ready, the end of a file) is copied into a message of the
/// right size, and the next grant is sized to what that read delivered. Full reads grow the
/// size again, up to `chunk`.
fn send_raw(tx: &mut Tx<'_>, mut input: File, chunk: usize) -> Result<(), String> {
    let chunk = chunk.clamp(1, tx.max_payload());
    let mut spare = vec![0u8; chunk + 1];
    let mut size = chunk;
    let mut full_reads = 0u32;
    loop {
        let mut g = tx.grant(size + 1)?;
        g[0] = DATA;
        let n = read_some(&mut input, &mut g[1..])?;
        if n == size {
            g.commit();
            full_reads += 1;
            if size < chunk && full_reads >= 8 {
                size = (size * 2).min(chunk);
                full_reads = 0;
            }
            continue;
        }
        if n == 0 {
            return Ok(()); // the grant drops unpublished
        }
        spare[..=n].copy_from_slice(&g[..=n]);
        drop(g);
        let mut g = tx.grant(n + 1)?;
        g.copy_from_slice(&spare[..=n]);
        g.commit();
        size = n.clamp(4096.min(chunk), chunk);
        full_reads = 0;
    }
}

/// Line framing: one message per line, its '\n' included (the last line may lack one).
fn send_lines(tx: &mut Tx<'_>, input: File) -> Result<(), String> {
    let max = tx.max_payload();
    let mut input = BufReader::with_capacity(IN_BUF, input);
    // A line that straddles reads of the input buffer.
    let mut pending = Vec::new();
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                stop_if_interrupted()?;
                continue;
            }
            Err(e) => return Err(read_error(&e)),
        };
        if buf.is_empty() {
            break;
        }
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(i + 1);
            if pending.is_empty() {
                tx.send(line, "a line")?;
            } else {
                pending.extend_from_slice(line);
                tx.send(&pending, "a line")?;
                pending.clear();
            }
            rest = after;
        }
        if pending.len() + rest.len() > max {
            return Err(too_large(
                "a line",
                pending.len() + rest.len(),
                max,
                tx.name,
            ));
        }
        pending.extend_from_slice(rest);
        let used = buf.len();
        input.consume(used);
    }
    if !pending.is_empty() {
        tx.send(&pending, "a line")?;
    }
    Ok(())
}

/// Length framing: frames of a u32 little-endian length and the payload; each payload is
/// one message, read straight into the ring. A frame cut short by the end of input is an
/// error, and nothing of it is published.
fn send_frames(tx: &mut Tx<'_>, input: File) -> Result<(), String> {
    let max = tx.max_payload();
    let mut input = BufReader::with_capacity(IN_BUF, input);
    let mut frames = 0u64;
    loop {
        let mut head = [0u8; 4];
        match read_full(&mut input, &mut head)? {
            0 => return Ok(()),
            4 => {}
            n => {
                return Err(format!(
                    "truncated frame {frames} at the end of input: {n} of 4 length bytes"
                ));
            }
        }
        let len = u32::from_le_bytes(head) as usize;
        if len > max {
            return Err(too_large(&format!("frame {frames}"), len, max, tx.name));
        }
        let mut g = tx.grant(len + 1)?;
        g[0] = DATA;
        let got = read_full(&mut input, &mut g[1..])?;
        if got < len {
            // `g` drops unpublished: the receiver never sees a partial frame.
            return Err(format!(
                "truncated frame {frames} at the end of input: {got} of {len} payload bytes"
            ));
        }
        g.commit();
        frames += 1;
    }
}

/// One read(2), retried if a signal other than SIGINT/SIGTERM interrupted it. Ok(0): end
/// of input.
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, String> {
    loop {
        match input.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => stop_if_interrupted()?,
            Err(e) => return Err(read_error(&e)),
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, String> {
    let mut got = 0;
    while got < buf.len() {
        match read_some(input, &mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn read_error(e: &io::Error) -> String {
    format!("reading standard input: {e}")
}

// ----- recv -----

pub(crate) fn recv(args: &RecvArgs) -> Result<(), String> {
    let started = Instant::now();
    catch_signals()?;
    let stdout = own(io::stdout().as_fd(), "standard output")?;
    let ring = attach_ring(&args.name, args.capacity)?;
    let consumer = ring
        .first_consumer()
        .map_err(|e| role_error(&e, &args.name, "recv"))?;
    let mut rx = Rx {
        name: &args.name,
        wait: Wait::new(started, args.timeout),
        consumer,
        out: BufWriter::with_capacity(OUT_BUF, stdout),
        framing: args.framing,
    };
    let (mut messages, mut bytes) = (0u64, 0u64);
    let result = loop {
        match rx.step() {
            Ok(Step::Data(len)) => {
                messages += 1;
                bytes += len as u64;
                if args.count == Some(messages) {
                    break Ok(());
                }
            }
            Ok(Step::Idle) => {}
            // The reader has what it wanted (`shmq recv | head`): stop quietly, like `cat`.
            Ok(Step::End | Step::Closed) => break Ok(()),
            Ok(Step::Gone) => {
                break Err(format!(
                    "sender went away from ring {:?} before the end of the stream \
                     ({bytes} bytes in {messages} messages received)",
                    args.name
                ));
            }
            Err(e) => break Err(e),
        }
    };
    // Let go of the ring first (its name goes if we were its last user), so that nobody joins
    // a stream that has ended while we flush; what arrived before an error is still written.
    let Rx {
        consumer, mut out, ..
    } = rx;
    drop(consumer);
    drop(ring);
    let flushed = write_result(out.flush()).map(drop);
    result.and(flushed)
}

/// Why a role could not be taken, in the words of the command that wanted it.
fn role_error(e: &AttachError, name: &str, cmd: &str) -> String {
    match e {
        AttachError::RoleTaken { pid, .. } => {
            format!("ring {name:?} is in use by another `shmq {cmd}` (pid {pid})")
        }
        AttachError::RoleUsed { .. } => format!(
            "ring {name:?} belongs to a stream that already had a `shmq {cmd}`; wait until \
             the other side has finished (the name then goes away) or use another name"
        ),
        e => format!("ring {name:?}: {e}"),
    }
}

/// What one receive step found.
enum Step {
    /// A payload of this many bytes, written out.
    Data(usize),
    /// Nothing yet (the sender has not come).
    Idle,
    /// The end of the stream.
    End,
    /// The sender is gone and the ring drained, without an end of stream.
    Gone,
    /// Standard output was closed: nobody reads what comes.
    Closed,
}

/// The receiving side: the consumer, standard output and the wait for a sender.
struct Rx<'a> {
    name: &'a str,
    wait: Wait,
    consumer: Consumer,
    out: BufWriter<File>,
    framing: Framing,
}

impl Rx<'_> {
    /// Takes one message (waiting for it if none is there), and writes it out.
    fn step(&mut self) -> Result<Step, String> {
        match self.consumer.try_recv() {
            Ok(msg) => return deliver(&msg, self.framing, &mut self.out, self.name),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return Ok(Step::Gone),
            Err(e) => return Err(format!("ring {:?}: {e}", self.name)),
        }
        // Caught up: hand what we have to the reader before waiting.
        if !write_result(self.out.flush())? {
            return Ok(Step::Closed);
        }
        if self.wait.forever() {
            return match self.consumer.recv() {
                Ok(msg) => deliver(&msg, self.framing, &mut self.out, self.name),
                Err(RecvError::Disconnected) => Ok(Step::Gone),
                Err(e) => Err(format!("ring {:?}: {e}", self.name)),
            };
        }
        let waited = match self.consumer.recv_timeout(SLICE) {
            Ok(msg) => return deliver(&msg, self.framing, &mut self.out, self.name),
            Err(e) => e,
        };
        match waited {
            RecvTimeoutError::Timeout => self
                .wait
                .check(self.consumer.peer(), "sender", self.name)
                .map(|_| Step::Idle),
            RecvTimeoutError::Disconnected => Ok(Step::Gone),
            e => Err(format!("ring {:?}: {e}", self.name)),
        }
    }
}

/// Writes one message's payload out as `framing` says.
fn deliver(
    msg: &ReadGuard<'_>,
    framing: Framing,
    out: &mut BufWriter<File>,
    name: &str,
) -> Result<Step, String> {
    let Some((&tag, payload)) = msg.split_first() else {
        return Err(format!(
            "ring {name:?} holds an empty message, which `shmq send` never writes"
        ));
    };
    match tag {
        DATA => {}
        END => return Ok(Step::End),
        t => {
            return Err(format!(
                "ring {name:?} holds a message `shmq send` did not write (tag {t})"
            ));
        }
    }
    let written = match framing {
        Framing::Raw => out.write_all(payload),
        Framing::Line => out.write_all(payload).and_then(|()| {
            if payload.last() == Some(&b'\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        }),
        Framing::Length => {
            // Ring messages are under 2 GiB, so this never fails; no panic if it did.
            let len = u32::try_from(payload.len())
                .map_err(|_| format!("a message of {} bytes has no u32 length", payload.len()))?;
            out.write_all(&len.to_le_bytes())
                .and_then(|()| out.write_all(payload))
        }
    };
    Ok(if write_result(written)? {
        Step::Data(payload.len())
    } else {
        Step::Closed
    })
}

/// Ok(true) if written, Ok(false) if standard output was closed (not an error: the reader
/// has enough), Err on any other write error.
fn write_result(written: io::Result<()>) -> Result<bool, String> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if out::is_closed(&e) => Ok(false),
        Err(e) => Err(format!("writing standard output: {e}")),
    }
}

// ----- both sides -----

/// Ctrl-C (SIGINT) or SIGTERM no longer kill send/recv outright: they interrupt the wait or
/// read in progress, the command lets go of its ring (removing it if it was the last user),
/// and exits with 130 (see `cli::main`).
fn catch_signals() -> Result<(), String> {
    shmq::interrupt_on_signals().map_err(|e| format!("installing the signal handlers: {e}"))
}

/// Ends the command if SIGINT or SIGTERM came.
fn stop_if_interrupted() -> Result<(), String> {
    if shmq::Interrupter::process().is_interrupted() {
        Err(INTERRUPTED.into())
    } else {
        Ok(())
    }
}

/// What an interrupted send/recv says.
pub(crate) const INTERRUPTED: &str = "interrupted";

/// The wait for the other side to come.
struct Wait {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    /// The peer has been seen: from now on it is never timed out.
    came: bool,
}

impl Wait {
    fn new(started: Instant, timeout: Option<Duration>) -> Wait {
        Wait {
            deadline: timeout.map(|t| started + t),
            timeout,
            came: false,
        }
    }

    /// Whether blocking calls may wait without bound.
    fn forever(&self) -> bool {
        self.deadline.is_none() || self.came
    }

    /// Ok(true) once the peer has come (it may have gone again since); Ok(false) while it
    /// may still come; Err when the timeout has passed without it.
    fn check(&mut self, peer: Peer, who: &str, name: &str) -> Result<bool, String> {
        if self.came || peer != Peer::NotYet {
            self.came = true;
            return Ok(true);
        }
        match (self.deadline, self.timeout) {
            (Some(deadline), Some(timeout)) if Instant::now() >= deadline => Err(format!(
                "no {who} came to ring {name:?} within {}",
                duration(timeout)
            )),
            _ => Ok(false),
        }
    }
}

/// Creates the ring `name` with `capacity` bytes, or opens it if the other side has.
///
/// Creating first means a leftover ring nobody uses any more (its run was killed) is
/// replaced silently: `create` reclaims a name no process holds. A ring some process still
/// holds is opened; if its creator is gone, it is a leftover of a run that ended abnormally
/// and is refused, since its data is not this run's.
fn attach_ring(name: &str, capacity: usize) -> Result<Ring, String> {
    let opts = Options::new(name);
    let mut init_waits = 0;
    let mut leftovers = 0;
    loop {
        match Ring::create(&opts, capacity) {
            Ok(ring) => return Ok(ring),
            // Someone holds it: the other side, most likely. Open theirs.
            Err(CreateError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
        let ring = match Ring::open(&opts) {
            Ok(ring) => ring,
            // Gone again since (its last user let go): create it after all.
            Err(OpenError::NotFound { .. }) => continue,
            // A live creator (its pid recorded, so not dead: that is `Abandoned`) is still
            // initialising it after the open's own wait: a loaded machine. A file without a
            // header after that wait is reported at once.
            Err(OpenError::InitTimeout { pid, .. }) if pid != 0 && init_waits < INIT_RETRIES => {
                init_waits += 1;
                continue;
            }
            Err(OpenError::KindMismatch { found, .. }) => {
                return Err(format!(
                    "{name:?} is a shmq {found}, not a ring; pick another name"
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        if ring.max_message() < 2 {
            return Err(format!(
                "ring {name:?} carries messages of at most {} bytes; a stream needs at least 2 \
                 (a tag and a byte)",
                ring.max_message()
            ));
        }
        if ring.info().creator_alive() {
            return Ok(ring);
        }
        // A leftover that some process held a moment ago. If that was only us by now,
        // letting go removes it (we are its last user), and the next round creates afresh.
        let info = ring.info().clone();
        drop(ring);
        let still_there = shmq::Segment::inspect(&opts).is_ok_and(|now| now.same_segment(&info));
        leftovers += 1;
        if still_there || leftovers > INIT_RETRIES {
            let why = if shmq::Segment::in_use(&opts).unwrap_or(true) {
                "another process still uses it"
            } else {
                "it is persistent"
            };
            return Err(format!(
                "ring {name:?} is left over from a run that ended abnormally (its creator, pid \
                 {}, is gone) and {why}; see `shmq inspect {name}`, remove it with `shmq rm \
                 {name}`",
                info.creator_pid
            ));
        }
    }
}
