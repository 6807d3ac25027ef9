//! `shmq ls`, `inspect`, `rm` and `gc`: see and clean the segments on this machine.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use shmq::segment::Removal;
use shmq::{
    Capacity, Janitor, JanitorError, JanitorEvent, OpenError, Options, Peeked, Process, Segment,
    Survey, Trigger,
};

use crate::cli::stream::{Human, parse_duration};

/// `println!` that ends the process quietly when the reader went away (`shmq ls | head`)
/// and with one error line on other write errors, instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {
        crate::cli::admin::emit(format_args!($($t)*))
    };
}

pub(crate) fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("shmq: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Where named segments live.
const SHM_DIR: &str = "/dev/shm";

/// Arguments of `shmq ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Also list file-backed segments: files, or directories whose files are listed (not
    /// recursively). Files that are not shmq segments are skipped.
    pub(crate) paths: Vec<PathBuf>,
}

/// Arguments of `shmq inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Segment name (as in /dev/shm), or the path of a file-backed segment.
    pub(crate) name: String,
    /// How many waiting messages to show.
    #[arg(long, default_value_t = 4)]
    pub(crate) peek: usize,
    /// How many bytes of each message to show.
    #[arg(long, default_value_t = 64)]
    pub(crate) bytes: usize,
}

/// Arguments of `shmq gc`.
#[derive(Debug, Args)]
pub(crate) struct GcArgs {
    /// Show what would be removed, remove nothing.
    #[arg(long, conflicts_with = "watch")]
    pub(crate) dry_run: bool,
    /// Only segments whose name (or file name) starts with this.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Also remove persistent segments nobody uses (by default they are kept).
    #[arg(long)]
    pub(crate) persistent: bool,
    /// Keep running: remove each segment the moment its last user dies (notified by the
    /// kernel through inotify), one line per removal. Runs until killed, or for --for.
    #[arg(long)]
    pub(crate) watch: bool,
    /// With --watch: how often to check every segment, in case a notification was lost.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s",
          requires = "watch")]
    pub(crate) rescan: Duration,
    /// With --watch: stop after this long (500ms, 10s, 2m, 1h) and print a summary.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration,
          requires = "watch")]
    pub(crate) run_for: Option<Duration>,
    /// Also consider file-backed segments at these paths (files or directories; with
    /// --watch, directories only).
    pub(crate) paths: Vec<PathBuf>,
}

/// Arguments of `shmq rm`.
#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Segment names (as in /dev/shm), or paths of file-backed segments.
    #[arg(required = true)]
    pub(crate) names: Vec<String>,
    /// Remove a segment even while processes use it. They keep their mapping and go on
    /// working; the name is gone, so nobody new can open it.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Options for a name or path as the user typed it: anything with a `/` is a file.
fn options(name: &str) -> Options {
    if name.contains('/') {
        Options::file(name)
    } else {
        Options::new(name)
    }
}

/// Terminal colours, only when standard output is a terminal and `NO_COLOR` is unset.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn stdout() -> Paint {
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }
    fn code(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn red(self, s: &str) -> String {
        self.code("31", s)
    }
    fn yellow(self, s: &str) -> String {
        self.code("33", s)
    }
    fn bold(self, s: &str) -> String {
        self.code("1", s)
    }
}

/// Prints rows as columns padded to their widest cell (escape codes not counted), the first
/// row as the heading.
fn print_table(rows: &[Vec<String>], paint: Paint) {
    let width = |s: &str| visible_len(s);
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let cell = if i == 0 {
                paint.bold(cell)
            } else {
                cell.clone()
            };
            line.push_str(&cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - width(row[c].as_str()) + 2));
            }
        }
        say!("{line}");
    }
}

/// Characters shown, not counting ANSI escape sequences.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for ch in s.chars() {
        match (esc, ch) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn age(created_unix_ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let s = now.saturating_sub(created_unix_ms) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Every segment to look at: names in /dev/shm, then files under the given paths.
fn candidates(paths: &[PathBuf]) -> Result<Vec<Options>, String> {
    let mut out = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(SHM_DIR)
        .map_err(|e| format!("cannot list {SHM_DIR}: {e}"))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    out.extend(names.into_iter().map(Options::new));
    for p in paths {
        let meta = std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot list {}: {e}", p.display()))?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect();
            files.sort();
            out.extend(files.into_iter().map(Options::file));
        } else {
            out.push(Options::file(p));
        }
    }
    Ok(out)
}

/// The last component of a name or path.
fn base_name(label: &str) -> &str {
    label.rsplit('/').next().unwrap_or(label)
}

/// The segments among `candidates`, and the invalid ones (`(name, why)`); everything that is
/// not shmq at all (or unreadable, so it cannot be told) is skipped without a word.
fn survey_all(candidates: Vec<Options>, peek: usize) -> (Vec<Survey>, Vec<(String, String)>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for opts in candidates {
        match Survey::of(opts, peek, 16) {
            Ok(s) => good.push(s),
            Err(
                OpenError::NotShmq { .. }
                | OpenError::NotFound { .. }
                | OpenError::PermissionDenied { .. }
                | OpenError::Symlink { .. }
                | OpenError::Os { .. }
                | OpenError::InvalidName { .. },
            ) => {}
            // An empty file: not a segment, or one whose creator has not sized it yet.
            Err(OpenError::InitTimeout { pid: 0, .. }) => {}
            Err(e) => bad.push((name_of(&e), e.to_string())),
        }
    }
    (good, bad)
}

fn name_of(e: &OpenError) -> String {
    match e {
        OpenError::Corrupted { name, .. }
        | OpenError::VersionMismatch { name, .. }
        | OpenError::InitTimeout { name, .. }
        | OpenError::Abandoned { name, .. } => name.clone(),
        _ => "?".into(),
    }
}

/// Processes recorded and found, one per pid (recorded first), as `pid` or `pid (dead)`.
fn processes(s: &Survey, paint: Paint) -> String {
    let mut seen: Vec<u32> = Vec::new();
    let mut parts = Vec::new();
    for p in s.attached.iter().chain(&s.users) {
        if seen.contains(&p.pid) {
            continue;
        }
        seen.push(p.pid);
        parts.push(if p.alive {
            p.pid.to_string()
        } else {
            paint.red(&format!("{} (dead)", p.pid))
        });
    }
    match parts.len() {
        0 => "-".into(),
        1..=4 => parts.join(", "),
        n => format!("{}, +{}", parts[..3].join(", "), n - 3),
    }
}

fn creator(p: &Process, paint: Paint) -> String {
    if p.alive {
        p.pid.to_string()
    } else {
        paint.red(&format!("{} (dead)", p.pid))
    }
}

fn capacity(c: Option<Capacity>) -> String {
    match c {
        Some(Capacity::Items(n)) => n.to_string(),
        Some(Capacity::Bytes(n)) => bytes(n),
        None => "-".into(),
    }
}

fn fill(s: &Survey) -> String {
    match (s.fill, s.capacity) {
        (Some(f), Some(Capacity::Bytes(_))) => bytes(f),
        (Some(f), _) => f.to_string(),
        (None, _) => "-".into(),
    }
}

fn type_name(s: &Survey) -> String {
    let t = &s.info.type_label;
    if t.is_empty() {
        return "-".into();
    }
    // Paths are long: the last segment says enough in a table (inspect shows it all).
    let short = t.rsplit("::").next().unwrap_or(t);
    if short.chars().count() > 24 {
        format!("{}…", short.chars().take(23).collect::<String>())
    } else {
        short.to_owned()
    }
}

pub(crate) fn ls(args: &LsArgs) -> Result<(), String> {
    let paint = Paint::stdout();
    let (mut surveys, bad) = survey_all(candidates(&args.paths)?, 0);
    let unreadable = Survey::find_users(&mut surveys);
    if surveys.is_empty() && bad.is_empty() {
        say!("no shmq segments");
        return Ok(());
    }
    let mut rows = vec![
        [
            "NAME",
            "KIND",
            "TYPE",
            "CAPACITY",
            "FILL",
            "CREATOR",
            "PROCESSES",
            "AGE",
            "PERSISTENT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in &surveys {
        let mut kind = s.info.kind.to_string();
        if !s.problems.is_empty() {
            kind = paint.yellow(&format!("{kind} (!)"));
        }
        rows.push(vec![
            s.name.clone(),
            kind,
            type_name(s),
            capacity(s.capacity),
            fill(s),
            creator(&s.creator, paint),
            processes(s, paint),
            age(s.info.created_unix_ms),
            if s.info.persistent { "yes" } else { "-" }.into(),
        ]);
    }
    for (name, _) in &bad {
        let mut row = vec![name.clone(), paint.yellow("invalid")];
        row.extend(std::iter::repeat_n("-".to_owned(), 7));
        rows.push(row);
    }
    print_table(&rows, paint);
    for s in surveys.iter().filter(|s| !s.problems.is_empty()) {
        say!("{}: {}", s.name, paint.yellow(&s.problems.join("; ")));
    }
    for (_, why) in &bad {
        say!("{}", paint.yellow(why));
    }
    if unreadable > 0 {
        eprintln!("shmq: note: {unreadable} processes of other users could not be checked for use");
    }
    Ok(())
}

/// `hexdump -C`-style lines of `bytes`.
fn hex_lines(bytes: &[u8]) -> Vec<String> {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  |{text}|", i * 16, hex.join(" "))
        })
        .collect()
}

fn when(created_unix_ms: u64) -> String {
    let secs = created_unix_ms / 1000;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC ({} ago)",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        age(created_unix_ms)
    )
}

pub(crate) fn inspect(args: &InspectArgs) -> Result<(), String> {
    let paint = Paint::stdout();
    let mut s = Survey::of(options(&args.name), args.peek, args.bytes).map_err(|e| match e {
        OpenError::NotShmq { .. } => format!("{e} (its first bytes are not a shmq header)"),
        e => e.to_string(),
    })?;
    Survey::find_users(std::slice::from_mut(&mut s));
    let i = &s.info;
    let alive = |p: &Process| {
        if p.alive {
            "alive".to_owned()
        } else {
            paint.red("dead")
        }
    };
    let mut rows: Vec<Vec<String>> = vec![vec!["FIELD".into(), "VALUE".into()]];
    let mut row = |k: &str, v: String| rows.push(vec![k.to_owned(), v]);
    row("name", s.name.clone());
    row("kind", i.kind.to_string());
    row("version", i.version.to_string());
    row(
        "state",
        if i.ready {
            "ready".into()
        } else {
            paint.yellow("initializing")
        },
    );
    row(
        "total size",
        format!("{} ({})", i.total_size, bytes(i.total_size)),
    );
    row(
        "payload",
        format!("{} bytes at offset {}", i.payload_size, i.payload_offset),
    );
    row(
        "type",
        if i.type_label.is_empty() {
            "-".into()
        } else {
            i.type_label.clone()
        },
    );
    row(
        "type layout",
        format!(
            "size {}, align {}, hash {:#018x}",
            i.type_size, i.type_align, i.type_hash
        ),
    );
    row("parameters", format!("{}, {}", i.param0, i.param1));
    row(
        "creator",
        format!(
            "pid {} ({}), start time {}",
            s.creator.pid,
            alive(&s.creator),
            s.creator.start_time
        ),
    );
    row("created", when(i.created_unix_ms));
    row(
        "persistent",
        if i.persistent {
            "yes (kept when nobody uses it)"
        } else {
            "no (removed when its last user lets go)"
        }
        .into(),
    );
    row("capacity", capacity(s.capacity));
    row("fill", fill(&s));
    for (k, v) in &s.details {
        row(k, v.clone());
    }
    row(
        "validation",
        if s.problems.is_empty() {
            "ok".into()
        } else {
            paint.yellow(&s.problems.join("; "))
        },
    );
    let held = Segment::in_use(options(&args.name));
    row(
        "in use",
        match held {
            Ok(true) => "yes (a process holds its use lock)".into(),
            Ok(false) if !s.users.is_empty() => "yes (mapped or open without the use lock)".into(),
            Ok(false) => "no".into(),
            Err(e) => format!("unknown ({e})"),
        },
    );
    print_table(&rows, paint);

    say!("");
    if s.attached.is_empty() && s.users.is_empty() {
        say!("no attached processes recorded or found");
    } else {
        let mut rows = vec![vec![
            "PROCESS".to_owned(),
            "ROLE".to_owned(),
            "START".to_owned(),
            "STATE".to_owned(),
        ]];
        for p in s.attached.iter().chain(&s.users) {
            rows.push(vec![
                p.pid.to_string(),
                p.role.clone(),
                p.start_time.to_string(),
                alive(p),
            ]);
        }
        print_table(&rows, paint);
    }

    say!("");
    print_contents(&s.contents, i.kind, args.peek);
    Ok(())
}

fn print_contents(contents: &[Peeked], kind: shmq::Kind, peek: usize) {
    use shmq::Kind as K;
    let messages = matches!(
        kind,
        K::Ring | K::Pipe | K::Queue | K::ByteQueue | K::JoinableQueue | K::PriorityQueue
    );
    if messages {
        if contents.is_empty() {
            say!("no waiting messages");
            return;
        }
        say!("first {} waiting messages (up to {peek}):", contents.len());
    } else if contents.is_empty() {
        return;
    } else {
        say!("data:");
    }
    for (n, m) in contents.iter().enumerate() {
        if messages {
            let cut = if m.bytes.len() < m.len {
                format!(", first {} shown", m.bytes.len())
            } else {
                String::new()
            };
            say!("#{n}: {} bytes{cut}", m.len);
        }
        for line in hex_lines(&m.bytes) {
            say!("  {line}");
        }
    }
}

pub(crate) fn gc(args: &GcArgs) -> Result<(), String> {
    if args.watch {
        return watch(args);
    }
    let mut found = candidates(&args.paths)?;
    if let Some(prefix) = &args.prefix {
        found.retain(|o| base_name(&o.label()).starts_with(prefix.as_str()));
    }
    let (mut surveys, bad) = survey_all(found, 0);
    // Processes that map or hold a file without shmq's use lock (raw users) count too.
    Survey::find_users(&mut surveys);
    let (mut removed, mut in_use, mut persistent, mut failed) = (0, 0, 0, Vec::new());
    for s in &surveys {
        let why = format!(
            "{} created by pid {}{}; nobody uses it",
            s.info.kind,
            s.creator.pid,
            if s.creator.alive { "" } else { ", now dead" }
        );
        if !s.users.is_empty() {
            in_use += 1;
            continue;
        }
        let opts = options(&s.name);
        // The decision is the use lock's: taken exclusively, it proves nobody uses the
        // segment, and the removal happens while it is held (no process can open it then).
        let outcome = if args.dry_run {
            match Segment::in_use(opts) {
                Ok(true) => Ok(Removal::InUse),
                Ok(false) if s.info.persistent && !args.persistent => Ok(Removal::Persistent),
                Ok(false) => {
                    say!("would remove {} ({why})", s.name);
                    Ok(Removal::Removed)
                }
                Err(e) => Err(e),
            }
        } else {
            Segment::remove_if_unused(opts, args.persistent).inspect(|r| {
                if *r == Removal::Removed {
                    say!("removed {} ({why})", s.name);
                }
            })
        };
        match outcome {
            Ok(Removal::Removed) => removed += 1,
            Ok(Removal::InUse | Removal::Busy) => in_use += 1,
            Ok(Removal::Persistent) => persistent += 1,
            // Gone or replaced by something else since the survey: not ours to count.
            Ok(_) | Err(OpenError::NotFound { .. }) => {}
            Err(e) => failed.push(e.to_string()),
        }
    }
    let verb = if args.dry_run {
        "would be removed"
    } else {
        "removed"
    };
    let mut summary = format!(
        "{removed} of {} segments {verb}; {in_use} in use",
        surveys.len()
    );
    if persistent > 0 {
        summary += &format!("; {persistent} persistent kept (--persistent removes them)");
    }
    if !bad.is_empty() {
        summary += &format!(
            "; {} invalid left alone (see `shmq ls`, remove with `shmq rm`)",
            bad.len()
        );
    }
    say!("{summary}");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\nshmq: "))
    }
}

/// `shmq gc --watch`: a [`Janitor`] until killed (or `--for` has passed), a line per removal.
fn watch(args: &GcArgs) -> Result<(), String> {
    let mut builder = Janitor::builder()
        .persistent_too(args.persistent)
        .rescan_every(args.rescan);
    if let Some(prefix) = &args.prefix {
        builder = builder.prefix(prefix.as_str());
    }
    for p in &args.paths {
        if !p.is_dir() {
            return Err(format!(
                "gc --watch watches directories, and {} is not one (watch its directory; \
                 --prefix narrows it to some names)",
                p.display()
            ));
        }
        builder = builder.dir(p);
    }
    let mut janitor = builder.build().map_err(|e| e.to_string())?;
    // SIGINT/SIGTERM (systemd's stop) end the watch cleanly, with the summary.
    shmq::interrupt_on_signals().map_err(|e| format!("installing the signal handlers: {e}"))?;
    let dirs: Vec<String> = janitor.dirs().map(|p| p.display().to_string()).collect();
    let mut live_dirs = dirs.len();
    say!(
        "watching {} for segments nobody uses{}; persistent segments {}; rescan every {}",
        dirs.join(", "),
        args.prefix
            .as_ref()
            .map(|p| format!(" (names starting with {p:?})"))
            .unwrap_or_default(),
        if args.persistent {
            "removed too"
        } else {
            "kept"
        },
        Human(args.rescan)
    );
    let started = Instant::now();
    let stop = args.run_for.and_then(|d| started.checked_add(d));
    let (mut removed, mut failures) = (0u64, 0u64);
    let mut slowest: Option<Duration> = None;
    let result = loop {
        let event = match janitor.next_deadline(stop) {
            Ok(Some(e)) => e,
            Ok(None) | Err(JanitorError::Interrupted) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        };
        match event {
            JanitorEvent::Removed {
                name,
                trigger,
                after,
            } => {
                removed += 1;
                match trigger {
                    Trigger::Closed => {
                        slowest = slowest.max(Some(after));
                        say!("removed {name}: {after:.1?} after its last user let go");
                    }
                    Trigger::Appeared => say!("removed {name}: unused when it appeared"),
                    _ => say!("removed {name}: found unused by a scan"),
                }
            }
            JanitorEvent::Failed { error, .. } => {
                failures += 1;
                eprintln!("shmq: {error}");
            }
            JanitorEvent::Overflow => {
                say!("notifications were lost (the kernel's queue overflowed): rescanning");
            }
            JanitorEvent::Unwatched { path } => {
                live_dirs -= 1;
                say!(
                    "no longer watching {}: removed or unmounted",
                    path.display()
                );
                if live_dirs == 0 {
                    break Err("no directory left to watch".into());
                }
            }
            _ => {}
        }
    };
    say!(
        "stopped after {}: {removed} segments removed{}{}",
        Human(Duration::from_secs(started.elapsed().as_secs())),
        slowest
            .map(|d| format!(", the slowest {d:.1?} after its last user let go"))
            .unwrap_or_default(),
        if failures > 0 {
            format!("; {failures} checks failed")
        } else {
            String::new()
        }
    );
    result
}

pub(crate) fn rm(args: &RmArgs) -> Result<(), String> {
    let mut failed = Vec::new();
    for name in &args.names {
        let opts = options(name);
        // Only shmq segments are removed: anything else in /dev/shm belongs to someone else.
        let removed = match Survey::of(opts.clone(), 0, 0) {
            Ok(mut s) => {
                Survey::find_users(std::slice::from_mut(&mut s));
                let held = match Segment::in_use(opts.clone()) {
                    Ok(held) => held,
                    Err(e) => {
                        failed.push(e.to_string());
                        continue;
                    }
                };
                if held || !s.users.is_empty() {
                    if !args.force {
                        failed.push(in_use_error(name, &s));
                        continue;
                    }
                    // Only the very file checked above, never one that took the name since.
                    s.remove()
                } else {
                    // Unused: removed under its use lock, so nobody can open it meanwhile.
                    match Segment::remove_if_unused(opts, true) {
                        Ok(Removal::Removed) => Ok(()),
                        Ok(Removal::InUse) if args.force => s.remove(),
                        Ok(Removal::InUse) => {
                            failed.push(in_use_error(name, &s));
                            continue;
                        }
                        Ok(Removal::Busy) => {
                            failed.push(format!(
                                "{name} was being checked or removed by another process at \
                                 that moment; run shmq rm again"
                            ));
                            continue;
                        }
                        Ok(_) => {
                            failed.push(format!(
                                "{name} changed while it was checked and is no longer a shmq \
                                 segment; not removed"
                            ));
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
            }
            Err(OpenError::InitTimeout { pid: 0, .. }) => {
                failed.push(format!(
                    "{name} is an empty file: not a shmq segment (or one still being created); \
                     not removed"
                ));
                continue;
            }
            Err(OpenError::Corrupted { .. })
                if !args.force && Segment::in_use(opts.clone()).unwrap_or(false) =>
            {
                failed.push(format!(
                    "{name} is in use (a process holds its use lock), though its header is \
                     corrupted; `shmq rm --force {name}` removes the name anyway"
                ));
                continue;
            }
            Err(OpenError::Corrupted { .. } | OpenError::VersionMismatch { .. }) => {
                shmq::Segment::unlink(opts)
            }
            Err(e @ (OpenError::Abandoned { .. } | OpenError::InitTimeout { .. })) => {
                eprintln!("shmq: note: {e}");
                shmq::Segment::unlink(opts)
            }
            Err(e) => {
                failed.push(e.to_string());
                continue;
            }
        };
        match removed {
            Ok(()) => say!("removed {name}"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\nshmq: "))
    }
}

/// The one-line refusal of `rm` without `--force`: who uses the segment, and the way out.
fn in_use_error(name: &str, s: &Survey) -> String {
    let mut pids: Vec<u32> = s
        .attached
        .iter()
        .chain(&s.users)
        .filter(|p| p.alive)
        .map(|p| p.pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    let who = match pids.len() {
        0 => "a process this user cannot see (another user's)".to_owned(),
        1 => format!("pid {}", pids[0]),
        _ => format!(
            "pids {}",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "{name} is in use by {who}; `shmq rm --force {name}` removes the name anyway (its \
         users keep their mapping)"
    )
}
