//! Delivery to every one of N subscriber processes: shmq's [`Topic`] against iceoryx2 0.10's
//! publish-subscribe, measured in the same run, alternately, and reported as medians and a
//! ratio. See `README.md` for how to run it.
//!
//! Each run: one publisher process sends `--messages` 64-byte messages, and each of
//! `--subscribers` subscriber processes (default 16) receives every one. A message carries its
//! sequence number in its first and its last 8 bytes (the rest is filler); every subscriber
//! checks both copies against the number it expects next, so a lost, repeated, reordered or
//! torn message fails the run, and reports the count and the sum of the numbers, which the
//! coordinator checks. The figure is messages per second delivered to all subscribers: the
//! messages, divided by the time from telling the publisher to start until the last
//! subscriber reported that it had them all (`× subscribers` deliveries per second).
//!
//! Both sides are lossless, zero-copy and block instead of spinning when they must wait:
//! - shmq: one [`Topic`] of 1024 slots, [`Policy::Block`] (the publisher waits for the slowest
//!   subscriber), [`WaitMode::Blocking`] on the publisher and every subscriber (they sleep on a
//!   futex at once when they must wait). The publisher writes each message in place
//!   (`reserve`, `commit`); subscribers read it in place (`recv`'s guard).
//! - iceoryx2: a publish-subscribe service of `[u8; 64]` with safe overflow off and
//!   `BackpressureStrategy::RetryUntilDelivered` (lossless: a publisher facing a full subscriber
//!   buffer retries until there is room, which iceoryx2 does with its adaptive wait: `sched_yield`
//!   10 000 times, then sleeps of 100 µs, later 10 ms; iceoryx2 has no way for a publisher to
//!   sleep until a subscriber makes room), a subscriber buffer of 1024 samples (as deep as the
//!   topic), and, since an iceoryx2 subscriber cannot block in `receive`, the event-based
//!   pattern of iceoryx2's own examples: an event service beside it whose notifier the
//!   publisher fires after every sample (iceoryx2 skips the wake-up syscall while a listener
//!   has one pending), and one listener per subscriber, which drains `receive` until it is
//!   empty and then sleeps in `Listener::timed_wait` for at most 10 ms before it looks again.
//!   The publisher loans each sample uninitialised, writes it and sends it; subscribers read
//!   it in place.
//!
//! Why the 10 ms bound: with the unbounded `Listener::blocking_wait`
//! (`--iceoryx2-blocking-wait`), runs on the 2-vCPU VM this was written on stalled until the
//! 60 s watchdog ended them, the publisher retrying delivery to a full subscriber buffer
//! (`nanosleep` in its adaptive wait) while every subscriber slept in its listener
//! (`recvfrom` on its socket). Whether that is a lost notification in iceoryx2 or a misuse
//! here was not established. Each run line counts the bounded waits that ran out while
//! samples were waiting (each cost up to 10 ms; some may be a publisher preempted between
//! `send` and `notify`). shmq's blocking waits have a bound too: every 40 ms a sleeper wakes
//! to check that its peers are alive.
//!
//! Processes are not pinned: with the default 16 subscribers, 17 processes share the machine's
//! CPUs (2 on the machine this was written on), which is why both sides sleep when they wait.
//! Runs alternate which system goes first.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use iceoryx2::prelude::*;
use shmq::{Policy, Topic, TopicConfig, WaitMode};

/// Set in a child's environment: `role:system:name:subscribers:messages:blocking-wait`.
const ROLE_ENV: &str = "SHMQ_COMPARE_ICEORYX2_ROLE";
/// Message size in bytes.
const SIZE: usize = 64;
/// Slots of the topic; samples each iceoryx2 subscriber buffers.
const DEPTH: usize = 1024;
/// The longest an iceoryx2 subscriber sleeps in its listener before it looks again.
const WAIT_BOUND: Duration = Duration::from_millis(10);
/// How long the coordinator waits for a child's next line before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Shmq,
    Iceoryx2,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Shmq => "shmq",
            System::Iceoryx2 => "iceoryx2",
        }
    }

    fn parse(s: &str) -> Option<System> {
        [System::Shmq, System::Iceoryx2]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

struct Args {
    subscribers: usize,
    messages: u64,
    runs: usize,
    /// `--only`: run one system (for profiling one side).
    only: Option<System>,
    /// `--iceoryx2-blocking-wait`: iceoryx2 subscribers wait in `blocking_wait` (no bound).
    ice_blocking: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        subscribers: 16,
        messages: 200_000,
        runs: 5,
        only: None,
        ice_blocking: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&v| v > 0)
                .ok_or(format!("{flag} takes a positive {what}"))
        };
        match flag.as_str() {
            "--subscribers" => a.subscribers = value("count")? as usize,
            "--messages" => a.messages = value("count")?,
            "--runs" => a.runs = value("count")? as usize,
            "--iceoryx2-blocking-wait" => a.ice_blocking = true,
            "--only" => {
                a.only = Some(
                    it.next()
                        .as_deref()
                        .and_then(System::parse)
                        .ok_or("--only takes shmq or iceoryx2")?,
                )
            }
            "-h" | "--help" => {
                println!(
                    "usage: shmq-compare-iceoryx2 [--subscribers N (16)] [--messages M (200000)] \
                     [--runs R (5)] [--only shmq|iceoryx2] [--iceoryx2-blocking-wait]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    if a.subscribers > 64 {
        return Err("at most 64 subscribers".into());
    }
    Ok(a)
}

fn main() {
    if let Ok(spec) = std::env::var(ROLE_ENV) {
        if let Err(e) = child::main(&spec) {
            eprintln!("compare-iceoryx2 child {}: {e}", std::process::id());
            std::process::exit(2);
        }
        return;
    }
    set_log_level(LogLevel::Error);
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("shmq-compare-iceoryx2: {e}");
        std::process::exit(2)
    });
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "delivery to all of {} subscriber processes, {} messages of {SIZE} B per run, {} runs \
         each, {cpus} CPUs, processes unpinned",
        args.subscribers, args.messages, args.runs
    );
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut failed = [0usize; 2];
    for run in 0..args.runs {
        let order = if run % 2 == 0 {
            [System::Shmq, System::Iceoryx2]
        } else {
            [System::Iceoryx2, System::Shmq]
        };
        for sys in order {
            if args.only.is_some_and(|o| o != sys) {
                continue;
            }
            // A failed run is reported and left out of the medians (the others still count).
            let (rate, stalls) = match one_run(sys, run, &args) {
                Ok(r) => r,
                Err(e) => {
                    println!("run {run} {:<8} failed: {e}", sys.name());
                    failed[sys as usize] += 1;
                    continue;
                }
            };
            let stalled = match sys {
                System::Iceoryx2 if !args.ice_blocking => {
                    format!("; {stalls} waits ran out with samples waiting")
                }
                _ => String::new(),
            };
            println!(
                "run {run} {:<8} {:>7.3} M msg/s to all ({:.1} M deliveries/s){stalled}",
                sys.name(),
                rate / 1e6,
                rate * args.subscribers as f64 / 1e6
            );
            rates[sys as usize].push(rate);
        }
    }
    for sys in [System::Shmq, System::Iceoryx2] {
        if failed[sys as usize] > 0 {
            println!("{}: {} failed runs", sys.name(), failed[sys as usize]);
        }
    }
    if args.only.is_some() || rates.iter().any(|r| r.is_empty()) {
        return;
    }
    let (shmq, ice) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "median: shmq {:.3} M msg/s, iceoryx2 {:.3} M msg/s; shmq / iceoryx2 = {:.2}x",
        shmq / 1e6,
        ice / 1e6,
        shmq / ice
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A child process, killed and reaped on drop; its stdin takes commands, its stdout gives
/// one line per step.
struct Proc {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(role: &str, sys: System, name: &str, args: &Args) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(
                ROLE_ENV,
                format!(
                    "{role}:{}:{name}:{}:{}:{}",
                    sys.name(),
                    args.subscribers,
                    args.messages,
                    u8::from(args.ice_blocking)
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning a {role}: {e}"))?;
        let output = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Proc {
            input: child.stdin.take(),
            output,
            child,
        })
    }

    fn tell(&mut self, what: &str) -> Result<(), String> {
        let input = self.input.as_mut().ok_or("stdin closed")?;
        writeln!(input, "{what}")
            .and_then(|()| input.flush())
            .map_err(|e| format!("telling a child {what:?}: {e}"))
    }

    /// The child's next line; fails if it says nothing for [`PATIENCE`] or exits.
    fn line(&mut self) -> Result<String, String> {
        use std::os::fd::AsRawFd;
        if self.output.buffer().is_empty() {
            let mut p = libc::pollfd {
                fd: self.output.get_ref().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd and a count of one.
            let rc = unsafe { libc::poll(&mut p, 1, PATIENCE.as_millis() as i32) };
            if rc == 0 {
                return Err(format!("a child said nothing for {PATIENCE:?}"));
            }
        }
        let mut line = String::new();
        match self.output.read_line(&mut line) {
            Ok(0) => Err(format!(
                "a child exited early ({:?})",
                self.child.wait().ok()
            )),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn expect(&mut self, want: &str) -> Result<(), String> {
        let got = self.line()?;
        if got == want {
            Ok(())
        } else {
            Err(format!("a child said {got:?}, expected {want:?}"))
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.input.take());
        if self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
            if self.child.try_wait().ok().flatten().is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// What the coordinator holds for one run: the channel (so it outlives every child).
enum Keep {
    Shmq(#[allow(dead_code)] Topic),
    Iceoryx2(#[allow(dead_code)] ice::Keep),
}

/// One run of `sys`; returns messages per second delivered to all subscribers, and how many
/// times an iceoryx2 subscriber's bounded wait ran out with samples waiting.
fn one_run(sys: System, run: usize, args: &Args) -> Result<(f64, u64), String> {
    let name = format!("shmq-cmp-{}-{run}-{}", std::process::id(), sys.name());
    let _keep = match sys {
        System::Shmq => Keep::Shmq(
            Topic::create_with(
                name.as_str(),
                &TopicConfig::new(DEPTH, SIZE)
                    .subscribers(args.subscribers)
                    .policy(Policy::Block),
            )
            .map_err(|e| e.to_string())?,
        ),
        System::Iceoryx2 => Keep::Iceoryx2(ice::Keep::create(&name, args.subscribers)?),
    };
    let mut subs = (0..args.subscribers)
        .map(|_| Proc::spawn("sub", sys, &name, args))
        .collect::<Result<Vec<_>, _>>()?;
    for s in &mut subs {
        s.expect("ready")?;
    }
    let mut publisher = Proc::spawn("pub", sys, &name, args)?;
    publisher.expect("ready")?;
    // Every subscriber connects to the publisher (iceoryx2: its connection must exist before
    // the first sample, or a full buffer would drop samples instead of holding the publisher).
    for s in &mut subs {
        s.tell("connect")?;
    }
    for s in &mut subs {
        s.expect("connected")?;
    }
    let start = Instant::now();
    publisher.tell("go")?;
    let expected_sum = (0..args.messages).fold(0u64, |a, s| a.wrapping_add(s));
    let mut stalls = 0;
    for s in &mut subs {
        let report = s.line()?;
        let want = format!("done {} {expected_sum} ", args.messages);
        match report.strip_prefix(&want).map(str::parse::<u64>) {
            Some(Ok(n)) => stalls += n,
            _ => {
                return Err(format!(
                    "a subscriber reported {report:?}, expected {want:?} and a count"
                ));
            }
        }
    }
    let elapsed = start.elapsed();
    publisher.expect(&format!("sent {}", args.messages))?;
    publisher.tell("end")?;
    for p in subs.iter_mut().chain([&mut publisher]) {
        drop(p.input.take());
        let status = p.child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("a child failed ({status})"));
        }
    }
    Ok((args.messages as f64 / elapsed.as_secs_f64(), stalls))
}

/// The message with sequence number `seq`.
fn message(seq: u64) -> [u8; SIZE] {
    let mut m = [0x5a; SIZE];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[SIZE - 8..].copy_from_slice(&seq.to_le_bytes());
    m
}

/// Checks that `m` is message `seq`, whole.
#[inline]
fn check(m: &[u8], seq: u64) -> Result<(), String> {
    let word = |at: usize| {
        m.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if m.len() != SIZE || word(0) != Some(seq) || word(SIZE - 8) != Some(seq) {
        return Err(format!(
            "expected message {seq}, got {} bytes starting {:?} ending {:?}",
            m.len(),
            word(0),
            m.len().checked_sub(8).and_then(word)
        ));
    }
    Ok(())
}

mod ice {
    use super::*;

    pub(crate) type PubSub = iceoryx2::service::port_factory::publish_subscribe::PortFactory<
        ipc::Service,
        [u8; SIZE],
        (),
    >;
    pub(crate) type Events = iceoryx2::service::port_factory::event::PortFactory<ipc::Service>;

    /// The node and the two services, as the coordinator creates them.
    pub(crate) struct Keep {
        _events: Events,
        _pubsub: PubSub,
        _node: Node<ipc::Service>,
    }

    fn e(e: impl std::fmt::Debug) -> String {
        format!("{e:?}")
    }

    fn names(name: &str) -> Result<(ServiceName, ServiceName), String> {
        Ok((
            ServiceName::new(&format!("{name}/data")).map_err(e)?,
            ServiceName::new(&format!("{name}/wake")).map_err(e)?,
        ))
    }

    /// Opens (or creates) the publish-subscribe and the event service for `subscribers`.
    pub(crate) fn open(
        node: &Node<ipc::Service>,
        name: &str,
        subscribers: usize,
    ) -> Result<(PubSub, Events), String> {
        let (data, wake) = names(name)?;
        let pubsub = node
            .service_builder(&data)
            .publish_subscribe::<[u8; SIZE]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(DEPTH)
            .subscriber_max_borrowed_samples(1)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(subscribers)
            .max_nodes(subscribers + 2)
            .open_or_create()
            .map_err(e)?;
        let events = node
            .service_builder(&wake)
            .event()
            .max_notifiers(1)
            .max_listeners(subscribers)
            .max_nodes(subscribers + 2)
            .open_or_create()
            .map_err(e)?;
        Ok((pubsub, events))
    }

    pub(crate) fn node() -> Result<Node<ipc::Service>, String> {
        NodeBuilder::new()
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(e)
    }

    impl Keep {
        pub(crate) fn create(name: &str, subscribers: usize) -> Result<Keep, String> {
            let node = node()?;
            let (pubsub, events) = open(&node, name, subscribers)?;
            Ok(Keep {
                _events: events,
                _pubsub: pubsub,
                _node: node,
            })
        }
    }

    pub(crate) fn subscriber(
        name: &str,
        subscribers: usize,
        messages: u64,
        blocking: bool,
        mut control: impl FnMut() -> Result<String, String>,
    ) -> Result<(), String> {
        let node = node()?;
        let (pubsub, events) = open(&node, name, subscribers)?;
        let sub = pubsub
            .subscriber_builder()
            .buffer_size(DEPTH)
            .create()
            .map_err(e)?;
        let listener = events.listener_builder().create().map_err(e)?;
        say("ready");
        expect(&mut control, "connect")?;
        let since = Instant::now();
        while pubsub.dynamic_config().number_of_publishers() == 0 {
            if since.elapsed() > PATIENCE {
                return Err("no publisher".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Connects to the publisher (receive updates the connections first).
        if sub.receive().map_err(e)?.is_some() {
            return Err("a sample before the start".into());
        }
        say("connected");
        let (mut n, mut sum, mut stalls) = (0u64, 0u64, 0u64);
        while n < messages {
            while let Some(sample) = sub.receive().map_err(e)? {
                check(sample.payload(), n)?;
                sum = sum.wrapping_add(n);
                n += 1;
            }
            if n == messages {
                break;
            }
            if blocking {
                listener.blocking_wait(|_| {}).map_err(e)?;
            } else if listener.timed_wait(|_| {}, WAIT_BOUND).map_err(e)? == 0
                && sub.has_samples().map_err(e)?
            {
                stalls += 1;
            }
        }
        say(&format!("done {n} {sum} {stalls}"));
        expect(&mut control, "")?; // until the coordinator hangs up
        Ok(())
    }

    pub(crate) fn publisher(
        name: &str,
        subscribers: usize,
        messages: u64,
        mut control: impl FnMut() -> Result<String, String>,
    ) -> Result<(), String> {
        let node = node()?;
        let (pubsub, events) = open(&node, name, subscribers)?;
        let publisher = pubsub
            .publisher_builder()
            .max_loaned_samples(1)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(e)?;
        let notifier = events.notifier_builder().create().map_err(e)?;
        let since = Instant::now();
        while pubsub.dynamic_config().number_of_subscribers() < subscribers
            || events.dynamic_config().number_of_listeners() < subscribers
        {
            if since.elapsed() > PATIENCE {
                return Err("the subscribers did not all attach".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        {
            use iceoryx2::port::update_connections::UpdateConnections;
            publisher.update_connections().map_err(e)?;
            notifier.update_connections().map_err(e)?;
        }
        say("ready");
        expect(&mut control, "go")?;
        for seq in 0..messages {
            let sample = publisher.loan_uninit().map_err(e)?;
            sample.write_payload(message(seq)).send().map_err(e)?;
            notifier.notify().map_err(e)?;
        }
        say(&format!("sent {messages}"));
        expect(&mut control, "end")?;
        Ok(())
    }
}

mod child {
    use super::*;

    pub(crate) fn say(line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    /// Reads the next command; a closed stdin reads as `""`.
    pub(crate) fn expect(
        control: &mut impl FnMut() -> Result<String, String>,
        want: &str,
    ) -> Result<(), String> {
        let got = control()?;
        if got == want {
            Ok(())
        } else {
            Err(format!("told {got:?}, expected {want:?}"))
        }
    }

    pub(crate) fn main(spec: &str) -> Result<(), String> {
        // SAFETY: PR_SET_PDEATHSIG takes a signal number; it only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        set_log_level(LogLevel::Error);
        let f: Vec<&str> = spec.split(':').collect();
        let [role, sys, name, subscribers, messages, blocking] = f[..] else {
            return Err(format!("bad role {spec:?}"));
        };
        let sys = System::parse(sys).ok_or("bad system")?;
        let subscribers: usize = subscribers.parse().map_err(|_| "bad count")?;
        let messages: u64 = messages.parse().map_err(|_| "bad count")?;
        let mut stdin = std::io::stdin().lock();
        let control = move || {
            let mut l = String::new();
            stdin.read_line(&mut l).map_err(|e| e.to_string())?;
            Ok(l.trim_end().to_string())
        };
        match (role, sys) {
            ("sub", System::Shmq) => shmq_subscriber(name, messages, control),
            ("pub", System::Shmq) => shmq_publisher(name, subscribers, messages, control),
            ("sub", System::Iceoryx2) => {
                ice::subscriber(name, subscribers, messages, blocking == "1", control)
            }
            ("pub", System::Iceoryx2) => ice::publisher(name, subscribers, messages, control),
            _ => Err(format!("bad role {role}")),
        }
    }

    fn shmq_subscriber(
        name: &str,
        messages: u64,
        mut control: impl FnMut() -> Result<String, String>,
    ) -> Result<(), String> {
        let topic = Topic::open(name).map_err(|e| e.to_string())?;
        let mut sub = topic.subscriber().map_err(|e| e.to_string())?;
        sub.set_wait_mode(WaitMode::Blocking);
        say("ready");
        expect(&mut control, "connect")?;
        say("connected");
        let (mut n, mut sum) = (0u64, 0u64);
        while n < messages {
            let m = sub.recv().map_err(|e| e.to_string())?;
            check(&m, n)?;
            sum = sum.wrapping_add(n);
            n += 1;
        }
        say(&format!("done {n} {sum} 0"));
        expect(&mut control, "")?;
        Ok(())
    }

    fn shmq_publisher(
        name: &str,
        subscribers: usize,
        messages: u64,
        mut control: impl FnMut() -> Result<String, String>,
    ) -> Result<(), String> {
        let topic = Topic::open(name).map_err(|e| e.to_string())?;
        let mut publisher = topic.publisher().map_err(|e| e.to_string())?;
        publisher.set_wait_mode(WaitMode::Blocking);
        if topic.subscriber_count() != subscribers {
            return Err(format!(
                "{} subscribers attached, expected {subscribers}",
                topic.subscriber_count()
            ));
        }
        say("ready");
        expect(&mut control, "go")?;
        for seq in 0..messages {
            let mut g = publisher.reserve(SIZE).map_err(|e| e.to_string())?;
            g.copy_from_slice(&message(seq));
            g.commit();
        }
        say(&format!("sent {messages}"));
        expect(&mut control, "end")?;
        Ok(())
    }
}

use child::{expect, say};
