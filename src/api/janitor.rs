//! [`Janitor`]: removes segments as soon as nobody uses them any more.
//!
//! # Implementation notes
//! A segment is garbage when no process holds its use lock (see the [segment
//! module](crate::segment)'s lifecycle notes). Every shmq handle maps its segment and keeps
//! it open read-write, so when the last user of a segment lets go without removing it — it
//! was killed, or it crashed — the kernel closes that file, and an inotify watch on the
//! directory sees `IN_CLOSE_WRITE` for its name. That event, not a timer, is the janitor's
//! cue: it asks [`Segment::remove_if_unused`], which takes the use lock exclusively (so it
//! succeeds only when nobody holds it) and removes the name while holding it. Checking is
//! race-free; the event only says *when* to check.
//!
//! - The janitor's own checks open files read-only, and it never asks for `IN_OPEN` or
//!   `IN_CLOSE_NOWRITE`, so its checks do not wake it up again.
//! - The kernel queues the close event just before it drops the closing file's locks
//!   (`__fput` calls `fsnotify_close` before `locks_remove_file`), so a check made at once
//!   may still find the lock held. A check after a close that finds the segment in use is
//!   repeated a few times within half a second ([`RECHECKS`]).
//! - A name that appears (`IN_CREATE`, `IN_MOVED_TO`) is checked once; a created one only
//!   after [`NEW_FILE_GRACE`], because for a moment after `O_CREAT` every shmq creator's
//!   file is still unlocked and empty.
//! - When the kernel's event queue overflows, and every [`JanitorBuilder::rescan_every`] as
//!   a safety net, every file is checked.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::OpenError;
use crate::segment::{Options, Removal, Segment};
use crate::sys::shm::SHM_DIR;
use crate::sys::watch::{self, Change, WatchId, Watcher};

/// How long after a writer's close a segment still found in use is checked again: the
/// closing process's lock may outlive its close event by a moment.
const RECHECKS: [Duration; 3] = [
    Duration::from_millis(5),
    Duration::from_millis(50),
    Duration::from_millis(500),
];

/// How long after a name is created it is checked: shmq creators lock their file within
/// microseconds of creating it; until then it looks unused (and is empty).
const NEW_FILE_GRACE: Duration = Duration::from_millis(100);

/// Default interval of the safety-net rescan.
const DEFAULT_RESCAN: Duration = Duration::from_secs(5);

/// Watches `/dev/shm` (and directories of file-backed segments) and removes each segment as
/// soon as it becomes garbage: no process uses it any more, because every process that
/// created or opened it has let go or died, and it is not persistent.
///
/// Segments normally remove themselves when their last user drops its handle; what is left
/// to a janitor is what processes that were killed or crashed leave behind. It removes such
/// a segment within milliseconds of its last user's death (the kernel tells it, through
/// inotify, when that process's files are closed), and rescans everything every few seconds
/// in case a notice was lost. It never removes a segment some process uses, a persistent one
/// (unless built with [`JanitorBuilder::persistent_too`]), or a file that is not a shmq
/// segment (see [`Segment::remove_if_unused`]). `shmq gc --watch` runs one.
///
/// A janitor does nothing on its own: iterate over it, or call [`Janitor::next_timeout`] in a
/// loop (a thread of its own, or the main loop of a service). Each step does the work due and
/// returns the next [`JanitorEvent`] (a removal, mostly).
///
/// ```
/// use std::time::Duration;
/// use shmq::{Janitor, JanitorEvent, Options, Value};
///
/// let dir = std::env::temp_dir().join(format!("doc-janitor-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// // File-backed segments are persistent: this one stays behind, used by nobody.
/// drop(Value::<u64>::create(Options::file(dir.join("counter")), 7)?);
///
/// // A janitor of this directory only (not /dev/shm), allowed to remove persistent segments.
/// let mut janitor = Janitor::builder().shm(false).dir(&dir).persistent_too(true).build()?;
/// let Some(JanitorEvent::Removed { name, .. }) = janitor.next_timeout(Duration::from_secs(10))?
/// else {
///     return Err("nothing removed".into());
/// };
/// assert!(name.ends_with("counter"));
/// assert!(!dir.join("counter").exists());
/// std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Costs
/// One inotify instance, and a watch per directory. Each file a process closes after
/// writing costs one check (open, `flock`, close: microseconds), plus up to three more if
/// it is still in use; each rescan costs one check per file.
#[derive(Debug)]
pub struct Janitor {
    watcher: Watcher,
    dirs: Vec<Dir>,
    prefix: String,
    persistent_too: bool,
    rescan_every: Duration,
    next_rescan: Instant,
    /// Files to check now, in order.
    due: VecDeque<Check>,
    /// Files to check later: when, and what.
    later: Vec<(Instant, Check)>,
    /// Reports not handed out yet.
    reports: VecDeque<JanitorEvent>,
    /// Events read but not yet turned into checks (kept to reuse the allocation).
    events: Vec<watch::Event>,
}

/// How to build a [`Janitor`]: which directories, which names, which segments.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct JanitorBuilder {
    shm: bool,
    dirs: Vec<PathBuf>,
    prefix: String,
    persistent_too: bool,
    rescan_every: Duration,
}

/// Why the janitor looked at a segment it removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// A process that had it open for writing let go of it: closed it, or exited, or died.
    Closed,
    /// Its name appeared: created, or renamed into a watched directory.
    Appeared,
    /// A full scan: the first one, a periodic one, or one after lost notifications.
    Rescan,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Closed => "its last user let go",
            Trigger::Appeared => "it appeared",
            Trigger::Rescan => "a rescan",
        })
    }
}

/// What a [`Janitor`] did or noticed.
#[derive(Debug)]
#[non_exhaustive]
pub enum JanitorEvent {
    /// It removed a segment nobody used.
    Removed {
        /// The segment's name (in /dev/shm), or its path (file-backed).
        name: String,
        /// What made the janitor look.
        trigger: Trigger,
        /// Time from the trigger (the janitor reading the notification, or the rescan
        /// starting) to the removal.
        after: Duration,
    },
    /// Checking a file failed (other than by its being gone or not the janitor's to touch:
    /// those are skipped without a word). The janitor carries on.
    Failed {
        /// The file's name or path.
        name: String,
        /// Why.
        error: OpenError,
    },
    /// The kernel dropped notifications (its queue was full); a full rescan follows.
    Overflow,
    /// A watched directory is no longer watched: it was removed, or its filesystem
    /// unmounted. The janitor carries on with the others.
    Unwatched {
        /// The directory.
        path: PathBuf,
    },
}

/// Starting a [`Janitor`], or waiting for notifications, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JanitorError {
    /// A directory could not be watched (missing, not a directory, no permission, the
    /// user's inotify limits).
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The inotify instance could not be made or read.
    #[error("inotify: {0}")]
    Os(#[source] std::io::Error),
    /// An [`Interrupter`](crate::Interrupter) this thread watches (or the process-wide one,
    /// which [`interrupt_on_signals`](crate::interrupt_on_signals) ties to SIGINT/SIGTERM)
    /// has fired. A signal wakes a waiting janitor at once; an interrupter fired from another
    /// thread is noticed when the janitor next wakes (at the latest, its rescan interval).
    #[error("interrupted")]
    Interrupted,
}

#[derive(Debug)]
struct Dir {
    path: PathBuf,
    id: WatchId,
    /// `/dev/shm`: its files are segment names; elsewhere files are file-backed segments.
    shm: bool,
    /// Still watched (the kernel has not dropped the watch).
    live: bool,
}

#[derive(Debug, Clone)]
struct Check {
    dir: usize,
    name: OsString,
    trigger: Trigger,
    since: Instant,
    /// Rechecks done so far (after a close).
    rechecks: usize,
}

impl Default for JanitorBuilder {
    fn default() -> Self {
        JanitorBuilder {
            shm: true,
            dirs: Vec::new(),
            prefix: String::new(),
            persistent_too: false,
            rescan_every: DEFAULT_RESCAN,
        }
    }
}

impl JanitorBuilder {
    /// Whether to watch `/dev/shm` (default: yes).
    pub fn shm(mut self, yes: bool) -> Self {
        self.shm = yes;
        self
    }

    /// Also watches the files in `dir` (not its subdirectories) as file-backed segments.
    /// File-backed segments are persistent unless created with
    /// [`Options::persistent(false)`](Options::persistent), so only those (or all, with
    /// [`JanitorBuilder::persistent_too`]) are removed.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dirs.push(dir.into());
        self
    }

    /// Only segments whose name (file name, for file-backed ones) starts with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Also removes persistent segments nobody uses (default: never).
    pub fn persistent_too(mut self, yes: bool) -> Self {
        self.persistent_too = yes;
        self
    }

    /// How often every file is checked, in case a notification was lost (default 5 s).
    ///
    /// # Panics
    /// If `every` is zero.
    pub fn rescan_every(mut self, every: Duration) -> Self {
        assert!(!every.is_zero(), "a rescan interval must not be zero");
        self.rescan_every = every;
        self
    }

    /// Starts watching. The janitor's first step scans everything once: segments left
    /// before it started go then.
    ///
    /// # Errors
    /// [`JanitorError`] if inotify is unavailable or a directory cannot be watched.
    pub fn build(self) -> Result<Janitor, JanitorError> {
        let watcher = Watcher::new().map_err(JanitorError::Os)?;
        let mut dirs: Vec<Dir> = Vec::new();
        let shm = self.shm.then(|| PathBuf::from(SHM_DIR));
        for (path, is_shm) in shm
            .into_iter()
            .map(|p| (p, true))
            .chain(self.dirs.into_iter().map(|p| (p, false)))
        {
            let id = watcher
                .watch_dir(&path)
                .map_err(|source| JanitorError::Watch {
                    path: path.clone(),
                    source,
                })?;
            // The same directory under another path: watched once (as /dev/shm, if it is).
            if !dirs.iter().any(|d| d.id == id) {
                dirs.push(Dir {
                    path,
                    id,
                    shm: is_shm,
                    live: true,
                });
            }
        }
        Ok(Janitor {
            watcher,
            dirs,
            prefix: self.prefix,
            persistent_too: self.persistent_too,
            rescan_every: self.rescan_every,
            next_rescan: Instant::now(),
            due: VecDeque::new(),
            later: Vec::new(),
            reports: VecDeque::new(),
            events: Vec::new(),
        })
    }
}

impl Janitor {
    /// A janitor of `/dev/shm` that removes every non-persistent segment nobody uses.
    ///
    /// # Errors
    /// As [`JanitorBuilder::build`].
    pub fn new() -> Result<Janitor, JanitorError> {
        Janitor::builder().build()
    }

    /// A builder: `/dev/shm`, every name, no persistent segments, a rescan every 5 s.
    pub fn builder() -> JanitorBuilder {
        JanitorBuilder::default()
    }

    /// The directories watched (the kernel may have dropped some since: see
    /// [`JanitorEvent::Unwatched`]).
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    /// Works for up to `timeout`; returns what happened first, or `None` if nothing did.
    /// (Without a bound, iterate: a `Janitor` is an endless [`Iterator`] of events.)
    ///
    /// # Errors
    /// [`JanitorError::Os`] if reading notifications fails.
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<JanitorEvent>, JanitorError> {
        self.next_deadline(Instant::now().checked_add(timeout))
    }

    /// Works until `deadline` (`None`: without limit); returns what happened first, or
    /// `None` if nothing did.
    ///
    /// # Errors
    /// As [`Janitor::next_timeout`].
    pub fn next_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<JanitorEvent>, JanitorError> {
        // At least one step per call, so that a zero timeout still makes progress.
        let mut stepped = false;
        loop {
            if let Some(report) = self.reports.pop_front() {
                return Ok(Some(report));
            }
            if crate::sys::interrupt::pending() {
                return Err(JanitorError::Interrupted);
            }
            if stepped && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            stepped = true;
            if let Some(check) = self.due.pop_front() {
                self.check(check);
                continue;
            }
            // Only once the last scan's checks are done: a scan that takes longer than the
            // interval must not pile up behind itself.
            let now = Instant::now();
            if now >= self.next_rescan {
                self.rescan(now);
                continue;
            }
            if self.later.iter().any(|(at, _)| *at <= now) {
                let (ready, wait): (Vec<_>, Vec<_>) =
                    self.later.drain(..).partition(|(at, _)| *at <= now);
                self.later = wait;
                self.due.extend(ready.into_iter().map(|(_, c)| c));
                continue;
            }
            // Idle: sleep until a notification, the next timed check, or the deadline (past
            // already, it still takes the notifications that are waiting).
            let mut wake = self.next_rescan;
            for (at, _) in &self.later {
                wake = wake.min(*at);
            }
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            let mut events = std::mem::take(&mut self.events);
            let waited = self
                .watcher
                .wait(Some(wake.saturating_duration_since(now)), &mut events);
            let read = Instant::now();
            for e in events.drain(..) {
                self.note(e, read);
            }
            self.events = events;
            waited.map_err(JanitorError::Os)?;
        }
    }

    /// Turns a notification into checks and reports.
    fn note(&mut self, event: watch::Event, now: Instant) {
        match event {
            watch::Event::File { dir, name, change } => {
                let Some(dir) = self.dirs.iter().position(|d| d.id == dir && d.live) else {
                    return;
                };
                if !self.wanted(&name) {
                    return;
                }
                let check = |trigger| Check {
                    dir,
                    name,
                    trigger,
                    since: now,
                    rechecks: 0,
                };
                match change {
                    Change::ClosedWritable => self.due.push_back(check(Trigger::Closed)),
                    Change::MovedIn => self.due.push_back(check(Trigger::Appeared)),
                    Change::Created => self
                        .later
                        .push((now + NEW_FILE_GRACE, check(Trigger::Appeared))),
                }
            }
            watch::Event::Overflow => {
                self.reports.push_back(JanitorEvent::Overflow);
                self.next_rescan = now;
            }
            watch::Event::Unwatched(id) => {
                for d in self.dirs.iter_mut().filter(|d| d.id == id && d.live) {
                    d.live = false;
                    self.reports.push_back(JanitorEvent::Unwatched {
                        path: d.path.clone(),
                    });
                }
            }
        }
    }

    fn wanted(&self, name: &OsString) -> bool {
        name.to_str().is_some_and(|n| n.starts_with(&self.prefix))
    }

    /// Queues a check of every file in every watched directory.
    fn rescan(&mut self, now: Instant) {
        self.next_rescan = now + self.rescan_every;
        for i in 0..self.dirs.len() {
            if !self.dirs[i].live {
                continue;
            }
            match watch::list_files(&self.dirs[i].path) {
                Ok(mut names) => {
                    names.retain(|n| self.wanted(n));
                    names.sort();
                    self.due.extend(names.into_iter().map(|name| Check {
                        dir: i,
                        name,
                        trigger: Trigger::Rescan,
                        since: now,
                        rechecks: 0,
                    }));
                }
                Err(source) => self.reports.push_back(JanitorEvent::Failed {
                    name: self.dirs[i].path.display().to_string(),
                    error: OpenError::Os {
                        name: self.dirs[i].path.display().to_string(),
                        source,
                    },
                }),
            }
        }
    }

    /// Checks one file: removes it if it is a segment nobody uses.
    fn check(&mut self, mut c: Check) {
        let dir = &self.dirs[c.dir];
        if !dir.live {
            return;
        }
        let (opts, label) = if dir.shm {
            let name = c.name.to_string_lossy().into_owned();
            (Options::new(name.clone()), name)
        } else {
            let path = dir.path.join(&c.name);
            (Options::file(&path), path.display().to_string())
        };
        let outcome = Segment::remove_if_unused(opts, self.persistent_too);
        match outcome {
            Ok(Removal::Removed) => self.reports.push_back(JanitorEvent::Removed {
                name: label,
                trigger: c.trigger,
                after: c.since.elapsed(),
            }),
            // Busy: another process was deciding about it at that moment; look again too.
            Ok(Removal::InUse | Removal::Busy)
                if (c.trigger == Trigger::Closed || matches!(outcome, Ok(Removal::Busy)))
                    && c.rechecks < RECHECKS.len() =>
            {
                let at = c.since + RECHECKS[c.rechecks];
                c.rechecks += 1;
                // One timed check per file at most: a file closed again and again (a live
                // segment busy with short-lived users) does not pile them up.
                match self
                    .later
                    .iter_mut()
                    .find(|(_, l)| l.dir == c.dir && l.name == c.name)
                {
                    Some((when, _)) => *when = (*when).min(at),
                    None => self.later.push((at, c)),
                }
            }
            // In use, persistent, or not a shmq segment: not ours to touch.
            Ok(_) => {}
            // Gone already, or not a segment name, or another user's: skipped.
            Err(
                OpenError::NotFound { .. }
                | OpenError::InvalidName { .. }
                | OpenError::PermissionDenied { .. }
                | OpenError::Symlink { .. },
            ) => {}
            // Not a regular file (a FIFO, a socket): never a segment.
            Err(OpenError::Os { ref source, .. })
                if source.kind() == std::io::ErrorKind::InvalidInput => {}
            Err(error) => self
                .reports
                .push_back(JanitorEvent::Failed { name: label, error }),
        }
    }
}

/// Endless: each item is the next event, waited for as long as it takes.
impl Iterator for Janitor {
    type Item = Result<JanitorEvent, JanitorError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_deadline(None) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
