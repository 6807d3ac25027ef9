//! `shmq ls`, `inspect`, `rm` and `gc`: see and clean the segments on this machine.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use serde_json::{Value as Json, json};
use shmq::segment::Removal;
use shmq::{
    Capacity, Janitor, JanitorError, JanitorEvent, Kind, OpenError, Options, Peeked, Process,
    Segment, SubscriberLag, Survey, Trigger,
};

use crate::cli::decode::{Decoded, decode};
use crate::cli::out::{self, BAD, Cell, WARN, paint, say};
use crate::cli::units::{age, duration, parse_duration, size, when};

/// Where named segments live.
const SHM_DIR: &str = "/dev/shm";

/// `--kind NAME`, checked against the kinds' names (clap lists them in the help).
fn kind_parser() -> impl TypedValueParser<Value = Kind> {
    PossibleValuesParser::new(Kind::ALL.iter().map(|k| k.name())).map(|name| {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .unwrap_or(Kind::Raw)
    })
}

/// Arguments of `shmq ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Also list file-backed segments: files, or directories whose files are listed (not
    /// recursively). Files that are not shmq segments are skipped.
    pub(crate) paths: Vec<PathBuf>,
    /// Only segments of this kind (repeat for several).
    #[arg(long = "kind", value_name = "KIND", value_parser = kind_parser())]
    pub(crate) kinds: Vec<Kind>,
    /// Only segments whose name (or file name) starts with this.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, long_help = LS_JSON_HELP)]
    pub(crate) json: bool,
}

const LS_JSON_HELP: &str = "\
Print JSON instead of a table: one object,
  {\"segments\": [SEGMENT, ...], \"invalid\": [{\"name\", \"error\"}, ...],
   \"unchecked_processes\": N}
where N counts processes of other users that could not be checked for use, and each SEGMENT
has these fields (null where the kind has none or the file could not be read):
  name              as in /dev/shm, or the file's path
  path              the segment file
  kind              segment, value, array, mutex, semaphore, event, ring, pipe, queue,
                    byte-queue, joinable-queue, priority-queue, topic
  type              the payload type's layout text (a primitive's is its name, u64) or its
                    tag, or null
  type_tagged       whether type is a tag (see the shmq::pod docs)
  capacity          items or bytes, as capacity_unit says (\"items\" or \"bytes\")
  fill              items or bytes in use now (a topic: the slowest subscriber's lag, at
                    most the capacity)
  size_bytes        the file's size in bytes
  owner_uid, owner  the file's owner: uid, and user name (null if it has none)
  mode              the file's permission bits in octal, a string (\"0600\")
  creator           {\"pid\", \"start_time\", \"alive\"}
  processes         [{\"role\", \"pid\", \"start_time\", \"alive\"}, ...]: recorded in the
                    segment (a topic: its publishers and subscribers), then found
                    mapping it (role \"user\")
  subscribers       a topic's: [{\"index\", \"pid\", \"start_time\", \"alive\",
                    \"position\", \"lag\", \"lost\"}, ...]: position the next message it
                    reads, lag the messages published it has not read, lost those
                    overwritten before it read them; null for other kinds
  created_unix_ms   creation time, milliseconds since the Unix epoch
  persistent        true or false
  problems          [\"...\"]: failed consistency checks; empty when healthy";

/// Arguments of `shmq inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Segment name (as in /dev/shm), or the path of a file-backed segment.
    pub(crate) name: String,
    /// How many waiting messages to show (a topic: its last messages).
    #[arg(long, default_value_t = 4)]
    pub(crate) peek: usize,
    /// How many bytes of each message to show.
    #[arg(long, default_value_t = 64)]
    pub(crate) bytes: usize,
    /// Print JSON instead of tables.
    #[arg(long, long_help = INSPECT_JSON_HELP)]
    pub(crate) json: bool,
}

const INSPECT_JSON_HELP: &str = "\
Print JSON instead of tables: one object with the fields of a `shmq ls --json` segment, and
  version           the layout version
  ready             false while its creator is still initialising it
  total_size        bytes in the whole segment, as its header says
  payload_offset, payload_size   where the kind's own area lies, in bytes
  type_size, type_align          the payload type's size and alignment
  parameters        [param0, param1]: kind-specific (element count, data offset, ...)
  details           [{\"name\", \"value\"}, ...]: kind-specific facts, as the table shows
  in_use            true while a process holds its use lock or maps it; null if unknown
  bells             [{\"name\", \"sleepers\", \"counted\"}, ...]: the futex words processes
                    sleep on and how many sleep there; counted false: the word only says
                    whether someone may sleep (a lock, a topic), sleepers is then 0 or 1
  contents          [{\"len\", \"hex\"}, ...]: the first waiting messages (or the data; a
                    topic: its last messages, oldest first), len their whole length, hex
                    the bytes shown (up to --bytes)
  values            the decoded numbers when the payload type is a primitive (u8..u64,
                    i8..i64, usize, isize, f32, f64): a value's or lock's data, an array's
                    first elements, each waiting item; NaN and infinities are null. null
                    for other types
  values_of         how many there are in all (an array's length), or null";

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
    /// With --watch: how often to check every segment, in case a notification was lost
    /// (500ms, 10s, 2m, 1h 30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s",
          requires = "watch")]
    pub(crate) rescan: Duration,
    /// With --watch: stop after this long (500ms, 1.5s, 2m, 1h) and print a summary.
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

/// The file behind a name or path, as [`options`] reads it.
fn file_path(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        Path::new(SHM_DIR).join(name)
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

/// A pid, and `(dead)` in red if it is.
fn pid_cell(p: &Process) -> Cell {
    if p.alive {
        p.pid.to_string().into()
    } else {
        Cell::styled(BAD, format!("{} (dead)", p.pid))
    }
}

/// Processes recorded and found, one per pid (recorded first), as `pid` or `pid (dead)`.
fn processes(s: &Survey) -> Cell {
    let mut seen: Vec<u32> = Vec::new();
    let mut parts = Vec::new();
    let mut any_dead = false;
    for p in s.attached.iter().chain(&s.users) {
        if seen.contains(&p.pid) {
            continue;
        }
        seen.push(p.pid);
        any_dead |= !p.alive;
        parts.push(if p.alive {
            p.pid.to_string()
        } else {
            format!("{} (dead)", p.pid)
        });
    }
    let text = match parts.len() {
        0 => "-".into(),
        1..=4 => parts.join(", "),
        n => format!("{}, +{}", parts[..3].join(", "), n - 3),
    };
    if any_dead {
        Cell::styled(BAD, text)
    } else {
        text.into()
    }
}

fn capacity(c: Option<Capacity>) -> String {
    match c {
        Some(Capacity::Items(n)) => n.to_string(),
        Some(Capacity::Bytes(n)) => size(n),
        None => "-".into(),
    }
}

fn fill(s: &Survey) -> String {
    match (s.fill, s.capacity) {
        (Some(f), Some(Capacity::Bytes(_))) => size(f),
        (Some(f), _) => f.to_string(),
        (None, _) => "-".into(),
    }
}

/// The payload type as a table shows it: its layout text or `tag "name"`, cut at 24
/// characters (inspect shows it all).
fn type_name(s: &Survey) -> String {
    let t = type_label(&s.info);
    if t.chars().count() > 24 {
        format!("{}…", t.chars().take(23).collect::<String>())
    } else {
        t
    }
}

/// The payload type's identity in full: `-`, its layout text, or `tag "name"`.
fn type_label(i: &shmq::SegmentInfo) -> String {
    match (i.type_label.is_empty(), i.type_tagged) {
        (true, _) => "-".into(),
        (false, true) => format!("tag {:?}", i.type_label),
        (false, false) => i.type_label.clone(),
    }
}

/// What `stat` says of a segment's file: size, owner and permission bits.
struct FileFacts {
    size: u64,
    uid: u32,
    owner: Option<String>,
    mode: String,
}

impl FileFacts {
    /// The file's facts, or `None` if it is gone or cannot be read. `names` caches user
    /// names by uid.
    fn of(name: &str, names: &mut HashMap<u32, Option<String>>) -> Option<FileFacts> {
        let meta = std::fs::symlink_metadata(file_path(name)).ok()?;
        let uid = meta.uid();
        let owner = names
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone();
        Some(FileFacts {
            size: meta.len(),
            uid,
            owner,
            mode: format!("{:04o}", meta.mode() & 0o7777),
        })
    }

    /// The owner's name, or the uid where it has none.
    fn owner(&self) -> String {
        self.owner.clone().unwrap_or_else(|| self.uid.to_string())
    }
}

fn process_json(p: &Process) -> Json {
    json!({
        "role": p.role,
        "pid": p.pid,
        "start_time": p.start_time,
        "alive": p.alive,
    })
}

fn subscriber_json(l: &SubscriberLag) -> Json {
    json!({
        "index": l.index,
        "pid": l.pid,
        "start_time": l.start_time,
        "alive": l.alive,
        "position": l.position,
        "lag": l.lag,
        "lost": l.lost,
    })
}

/// The fields `ls --json` gives each segment (see `LS_JSON_HELP`).
fn segment_json(s: &Survey, file: Option<&FileFacts>) -> Json {
    let i = &s.info;
    let (cap, unit) = match s.capacity {
        Some(Capacity::Items(n)) => (json!(n), json!("items")),
        Some(Capacity::Bytes(n)) => (json!(n), json!("bytes")),
        None => (Json::Null, Json::Null),
    };
    json!({
        "name": s.name,
        "path": file_path(&s.name).display().to_string(),
        "kind": i.kind.name(),
        "type": (!i.type_label.is_empty()).then_some(&i.type_label),
        "type_tagged": i.type_tagged,
        "capacity": cap,
        "capacity_unit": unit,
        "fill": s.fill,
        "size_bytes": file.map(|f| f.size),
        "owner_uid": file.map(|f| f.uid),
        "owner": file.and_then(|f| f.owner.clone()),
        "mode": file.map(|f| f.mode.clone()),
        "creator": {
            "pid": s.creator.pid,
            "start_time": s.creator.start_time,
            "alive": s.creator.alive,
        },
        "processes": s.attached.iter().chain(&s.users).map(process_json).collect::<Vec<_>>(),
        "subscribers": (i.kind == Kind::Topic).then(|| {
            s.subscribers.iter().map(subscriber_json).collect::<Vec<_>>()
        }),
        "created_unix_ms": i.created_unix_ms,
        "persistent": i.persistent,
        "problems": s.problems,
    })
}

pub(crate) fn ls(args: &LsArgs) -> Result<(), String> {
    let mut found = candidates(&args.paths)?;
    if let Some(prefix) = &args.prefix {
        found.retain(|o| base_name(&o.label()).starts_with(prefix.as_str()));
    }
    let (mut surveys, mut bad) = survey_all(found, 0);
    if !args.kinds.is_empty() {
        surveys.retain(|s| args.kinds.contains(&s.info.kind));
        bad.clear(); // of no kind that can be told
    }
    let unreadable = Survey::find_users(&mut surveys);
    let mut names = HashMap::new();
    let files: Vec<Option<FileFacts>> = surveys
        .iter()
        .map(|s| FileFacts::of(&s.name, &mut names))
        .collect();
    if args.json {
        let segments: Vec<Json> = surveys
            .iter()
            .zip(&files)
            .map(|(s, f)| segment_json(s, f.as_ref()))
            .collect();
        let invalid: Vec<Json> = bad
            .iter()
            .map(|(name, why)| json!({ "name": name, "error": why }))
            .collect();
        out::json(&json!({
            "segments": segments,
            "invalid": invalid,
            "unchecked_processes": unreadable,
        }));
        return Ok(());
    }
    if surveys.is_empty() && bad.is_empty() {
        say!("no shmq segments");
        return Ok(());
    }
    let mut rows: Vec<Vec<Cell>> = vec![
        [
            "NAME",
            "KIND",
            "TYPE",
            "CAPACITY",
            "FILL",
            "CREATOR",
            "PROCESSES",
            "MODE",
            "OWNER",
            "SIZE",
            "AGE",
            "PERSISTENT",
        ]
        .map(Cell::from)
        .to_vec(),
    ];
    for (s, file) in surveys.iter().zip(&files) {
        let kind = if s.problems.is_empty() {
            s.info.kind.name().into()
        } else {
            Cell::styled(WARN, format!("{} (!)", s.info.kind))
        };
        let stat = |f: fn(&FileFacts) -> String| file.as_ref().map_or("-".into(), f);
        rows.push(vec![
            s.name.clone().into(),
            kind,
            type_name(s).into(),
            capacity(s.capacity).into(),
            fill(s).into(),
            pid_cell(&s.creator),
            processes(s),
            stat(|f| f.mode.clone()).into(),
            stat(FileFacts::owner).into(),
            stat(|f| f.size.to_string()).into(),
            age(s.info.created_unix_ms).into(),
            if s.info.persistent { "yes" } else { "-" }.into(),
        ]);
    }
    for (name, _) in &bad {
        let mut row = vec![name.clone().into(), Cell::styled(WARN, "invalid")];
        row.extend(std::iter::repeat_n(Cell::from("-"), 10));
        rows.push(row);
    }
    out::table(&rows);
    for s in surveys.iter().filter(|s| s.info.kind == Kind::Topic) {
        say!("{}: {}", s.name, subscribers_line(s));
    }
    for s in surveys.iter().filter(|s| !s.problems.is_empty()) {
        say!("{}: {}", s.name, paint(WARN, &s.problems.join("; ")));
    }
    for (_, why) in &bad {
        say!("{}", paint(WARN, why));
    }
    if unreadable > 0 {
        eprintln!("shmq: note: {unreadable} processes of other users could not be checked for use");
    }
    Ok(())
}

/// Subscribers `ls` names in a topic's line; `inspect` shows them all.
const LS_SUBSCRIBERS: usize = 6;

/// A topic's subscribers in one line for `ls`: each one's pid (dead ones marked), lag and
/// losses, as `3 subscribers: 4211 lag 0; 4212 (dead) lag 17; 4213 lag 900 lost 5120`.
fn subscribers_line(s: &Survey) -> String {
    let subs = &s.subscribers;
    if subs.is_empty() {
        return "no subscribers".into();
    }
    let mut parts: Vec<String> = subs
        .iter()
        .take(LS_SUBSCRIBERS)
        .map(|l| {
            let who = if l.alive {
                l.pid.to_string()
            } else {
                paint(BAD, &format!("{} (dead)", l.pid))
            };
            let lost = if l.lost > 0 {
                format!(" lost {}", l.lost)
            } else {
                String::new()
            };
            format!("{who} lag {}{lost}", l.lag)
        })
        .collect();
    if subs.len() > LS_SUBSCRIBERS {
        parts.push(format!(
            "+{} more (shmq inspect {})",
            subs.len() - LS_SUBSCRIBERS,
            s.name
        ));
    }
    let noun = if subs.len() == 1 {
        "subscriber"
    } else {
        "subscribers"
    };
    format!("{} {noun}: {}", subs.len(), parts.join("; "))
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

/// The decoded values as the table shows them: `42`, or `[1, 2, 3] (first 3 of 100)`.
fn values_text(d: &Decoded, kind: Kind) -> Option<(&'static str, String)> {
    match kind {
        Kind::Value | Kind::Mutex => Some(("value", d.values.first()?.to_string())),
        Kind::Array => {
            let list: Vec<String> = d.values.iter().map(ToString::to_string).collect();
            let more = if (d.values.len() as u64) < d.of {
                format!(
                    " (first {} of {}; --bytes shows more)",
                    d.values.len(),
                    d.of
                )
            } else {
                String::new()
            };
            Some(("values", format!("[{}]{more}", list.join(", "))))
        }
        // Each waiting item is shown with its message.
        _ => None,
    }
}

pub(crate) fn inspect(args: &InspectArgs) -> Result<(), String> {
    let mut s = Survey::of(options(&args.name), args.peek, args.bytes).map_err(|e| match e {
        OpenError::NotShmq { .. } => format!("{e} (its first bytes are not a shmq header)"),
        e => e.to_string(),
    })?;
    Survey::find_users(std::slice::from_mut(&mut s));
    let file = FileFacts::of(&s.name, &mut HashMap::new());
    let held = Segment::in_use(options(&args.name));
    let decoded = decode(&s);
    if args.json {
        let in_use = held.ok().map(|held| held || !s.users.is_empty());
        return inspect_json(&s, file.as_ref(), in_use, decoded.as_ref());
    }
    let i = &s.info;
    let alive = |p: &Process| {
        if p.alive {
            Cell::from("alive")
        } else {
            Cell::styled(BAD, "dead")
        }
    };
    let mut rows: Vec<Vec<Cell>> = vec![vec!["FIELD".into(), "VALUE".into()]];
    let mut row = |k: &str, v: Cell| rows.push(vec![k.into(), v]);
    row("name", s.name.clone().into());
    row("kind", i.kind.name().into());
    row("version", i.version.to_string().into());
    row(
        "state",
        if i.ready {
            "ready".into()
        } else {
            Cell::styled(WARN, "initializing")
        },
    );
    row(
        "total size",
        format!("{} bytes ({})", i.total_size, size(i.total_size)).into(),
    );
    row(
        "payload",
        format!("{} bytes at offset {}", i.payload_size, i.payload_offset).into(),
    );
    row(
        "type",
        if i.type_label.is_empty() {
            "-".into()
        } else {
            type_label(i).into()
        },
    );
    row(
        "type layout",
        format!(
            "size {}, align {}, {} {:#018x}",
            i.type_size,
            i.type_align,
            if i.type_tagged {
                "tag hash"
            } else {
                "fingerprint"
            },
            i.type_hash
        )
        .into(),
    );
    row("parameters", format!("{}, {}", i.param0, i.param1).into());
    if let Some(f) = &file {
        row(
            "file",
            format!(
                "{}, mode {}, owner {}",
                file_path(&s.name).display(),
                f.mode,
                f.owner()
            )
            .into(),
        );
    }
    let creator = format!("pid {} (", s.creator.pid);
    row(
        "creator",
        if s.creator.alive {
            format!("{creator}alive), start time {}", s.creator.start_time).into()
        } else {
            Cell::styled(
                BAD,
                format!("{creator}dead), start time {}", s.creator.start_time),
            )
        },
    );
    row("created", when(i.created_unix_ms).into());
    row(
        "persistent",
        if i.persistent {
            "yes (kept when nobody uses it)"
        } else {
            "no (removed when its last user lets go)"
        }
        .into(),
    );
    row("capacity", capacity(s.capacity).into());
    row("fill", fill(&s).into());
    for (k, v) in &s.details {
        row(k, v.clone().into());
    }
    if let Some((k, v)) = decoded.as_ref().and_then(|d| values_text(d, i.kind)) {
        row(k, v.into());
    }
    row(
        "validation",
        if s.problems.is_empty() {
            "ok".into()
        } else {
            Cell::styled(WARN, s.problems.join("; "))
        },
    );
    row(
        "in use",
        match held {
            Ok(true) => "yes (a process holds its use lock)".into(),
            Ok(false) if !s.users.is_empty() => "yes (mapped or open without the use lock)".into(),
            Ok(false) => "no".into(),
            Err(e) => format!("unknown ({e})").into(),
        },
    );
    out::table(&rows);

    say!("");
    if s.attached.is_empty() && s.users.is_empty() {
        say!("no attached processes recorded or found");
    } else {
        let mut rows: Vec<Vec<Cell>> = vec![
            ["PROCESS", "ROLE", "START", "STATE"]
                .map(Cell::from)
                .to_vec(),
        ];
        // A topic's subscribers have a table of their own, below.
        let listed = |p: &&Process| !(i.kind == Kind::Topic && p.role.starts_with("subscriber "));
        for p in s.attached.iter().chain(&s.users).filter(listed) {
            rows.push(vec![
                p.pid.to_string().into(),
                p.role.clone().into(),
                p.start_time.to_string().into(),
                alive(p),
            ]);
        }
        out::table(&rows);
    }
    if i.kind == Kind::Topic {
        say!("");
        print_subscribers(&s);
    }

    if !s.bells.is_empty() {
        say!("");
        let mut rows: Vec<Vec<Cell>> = vec![vec!["BELL".into(), "SLEEPING".into()]];
        for b in &s.bells {
            let sleeping = match (b.counted, b.sleepers) {
                (true, n) => n.to_string(),
                (false, 0) => "none".into(),
                (false, _) => "some (the word does not count them)".into(),
            };
            rows.push(vec![b.name.clone().into(), sleeping.into()]);
        }
        out::table(&rows);
    }

    say!("");
    print_contents(&s.contents, i.kind, args.peek, decoded.as_ref());
    Ok(())
}

/// `inspect --json` (see `INSPECT_JSON_HELP`).
fn inspect_json(
    s: &Survey,
    file: Option<&FileFacts>,
    in_use: Option<bool>,
    decoded: Option<&Decoded>,
) -> Result<(), String> {
    let i = &s.info;
    let mut obj = segment_json(s, file);
    let extra = json!({
        "version": i.version,
        "ready": i.ready,
        "total_size": i.total_size,
        "payload_offset": i.payload_offset,
        "payload_size": i.payload_size,
        "type_size": i.type_size,
        "type_align": i.type_align,
        "parameters": [i.param0, i.param1],
        "details": s.details.iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect::<Vec<_>>(),
        "in_use": in_use,
        "bells": s.bells.iter()
            .map(|b| json!({ "name": b.name, "sleepers": b.sleepers, "counted": b.counted }))
            .collect::<Vec<_>>(),
        "contents": s.contents.iter()
            .map(|m| json!({ "len": m.len, "hex": hex(&m.bytes) }))
            .collect::<Vec<_>>(),
        "values": decoded.map(|d| d.values.iter().map(|v| v.json()).collect::<Vec<_>>()),
        "values_of": decoded.map(|d| d.of),
    });
    if let (Some(obj), Json::Object(extra)) = (obj.as_object_mut(), extra) {
        obj.extend(extra);
    }
    out::json(&obj);
    Ok(())
}

/// Bytes as lower-case hex digits, two a byte.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `inspect`'s table of a topic's subscribers: process, liveness, position, lag, losses.
fn print_subscribers(s: &Survey) {
    if s.subscribers.is_empty() {
        say!("no subscribers");
        return;
    }
    let slots = match s.capacity {
        Some(Capacity::Items(n)) => n,
        _ => u64::MAX,
    };
    let mut rows: Vec<Vec<Cell>> = vec![
        ["SUBSCRIBER", "PROCESS", "STATE", "POSITION", "LAG", "LOST"]
            .map(Cell::from)
            .to_vec(),
    ];
    for l in &s.subscribers {
        // Only under Overwrite can a subscriber be more than the log behind.
        let lag = if l.lag > slots {
            Cell::styled(WARN, format!("{} (lapped)", l.lag))
        } else {
            l.lag.to_string().into()
        };
        rows.push(vec![
            l.index.to_string().into(),
            l.pid.to_string().into(),
            if l.alive {
                "alive".into()
            } else {
                Cell::styled(BAD, "dead")
            },
            l.position.to_string().into(),
            lag,
            l.lost.to_string().into(),
        ]);
    }
    out::table(&rows);
}

fn print_contents(contents: &[Peeked], kind: Kind, peek: usize, decoded: Option<&Decoded>) {
    use shmq::Kind as K;
    let messages = matches!(
        kind,
        K::Ring
            | K::Pipe
            | K::Queue
            | K::ByteQueue
            | K::JoinableQueue
            | K::PriorityQueue
            | K::Topic
    );
    match (kind, contents.len()) {
        (K::Topic, 0) => return say!("no messages in the log"),
        (K::Topic, n) => say!("last {n} messages (up to {peek}), oldest first:"),
        (_, 0) if messages => return say!("no waiting messages"),
        (_, n) if messages => say!("first {n} waiting messages (up to {peek}):"),
        (_, 0) => return,
        _ => say!("data:"),
    }
    // A queue's items decode one each (all of them, or none when --bytes cuts them).
    let values = decoded
        .filter(|d| messages && d.values.len() == contents.len())
        .map(|d| d.values.as_slice());
    for (n, m) in contents.iter().enumerate() {
        if messages {
            let cut = if m.bytes.len() < m.len {
                format!(", first {} shown", m.bytes.len())
            } else {
                String::new()
            };
            let value = values.map_or(String::new(), |v| format!(" = {}", v[n]));
            say!("#{n}: {} bytes{cut}{value}", m.len);
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
        duration(args.rescan)
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
        duration(Duration::from_secs(started.elapsed().as_secs())),
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
