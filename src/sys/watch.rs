//! Directory change notification (inotify): which files in a directory appeared, and which
//! were let go of by a process that had them open for writing.
//!
//! A [`Watcher`] watches directories, not files, for three events on the files in them:
//! `IN_CREATE` and `IN_MOVED_TO` (a name appeared) and `IN_CLOSE_WRITE` (the last reference to
//! an open file description with write access is gone: closed, or its process exited or was
//! killed, mapping included). `IN_OPEN` and `IN_CLOSE_NOWRITE` are never asked for, so a
//! watcher that opens files read-only to look at them does not wake itself up.
//! `IN_EXCL_UNLINK` drops events of files already unlinked.
//!
//! All of it is safe: rustix wraps the system calls, and the kernel's event records are
//! parsed by rustix's `Reader`.

use std::ffi::OsString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// Bytes read from the inotify descriptor at a time: room for at least 60 events with
/// the longest names.
const BUF: usize = 16 * 1024;

/// A watched directory, as the kernel numbers it. Watching one directory twice (under two
/// paths, say) gives the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WatchId(i32);

/// What happened to a name in a watched directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Created in the directory (`IN_CREATE`).
    Created,
    /// Renamed into the directory (`IN_MOVED_TO`).
    MovedIn,
    /// An open file description with write access to it is gone (`IN_CLOSE_WRITE`): closed,
    /// unmapped, or its process exited or died.
    ClosedWritable,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A change to the regular file (or other non-directory) `name` in directory `dir`.
    File {
        dir: WatchId,
        name: OsString,
        change: Change,
    },
    /// The kernel's queue overflowed: events were lost, so look at everything again.
    Overflow,
    /// The directory is no longer watched: it was removed or its filesystem unmounted.
    Unwatched(WatchId),
}

/// An inotify instance.
#[derive(Debug)]
pub(crate) struct Watcher {
    fd: OwnedFd,
    buf: Vec<MaybeUninit<u8>>,
}

impl Watcher {
    /// A watcher with nothing watched yet.
    pub(crate) fn new() -> io::Result<Watcher> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).map_err(|e| {
            if e == Errno::MFILE {
                io::Error::other(
                    "too many inotify instances for this user (see sysctl fs.inotify.max_user_instances)",
                )
            } else {
                e.into()
            }
        })?;
        Ok(Watcher {
            fd,
            buf: vec![MaybeUninit::uninit(); BUF],
        })
    }

    /// Watches the files in directory `dir` (not its subdirectories).
    pub(crate) fn watch_dir(&self, dir: &Path) -> io::Result<WatchId> {
        let flags = WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::EXCL_UNLINK
            | WatchFlags::ONLYDIR;
        match inotify::add_watch(&self.fd, dir, flags) {
            Ok(wd) => Ok(WatchId(wd)),
            Err(Errno::NOSPC) => Err(io::Error::other(
                "too many inotify watches for this user (see sysctl fs.inotify.max_user_watches)",
            )),
            Err(Errno::NOTDIR) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits up to `timeout` (`None`: without limit) for notifications and appends every one
    /// that is ready to `out`. Returns with `out` unchanged when the time is up, and may
    /// return early without events (a signal, or only events of no interest).
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<Event>,
    ) -> io::Result<()> {
        // Capped at a day, so the conversion cannot overflow; callers loop anyway.
        let timeout = timeout
            .map(|t| Timespec::try_from(t.min(Duration::from_secs(86_400))).unwrap_or_default());
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(Errno::INTR) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        self.drain(out)
    }

    /// Appends every notification ready now to `out`, without waiting.
    pub(crate) fn drain(&mut self, out: &mut Vec<Event>) -> io::Result<()> {
        let mut reader = inotify::Reader::new(&self.fd, &mut self.buf);
        loop {
            let event = match reader.next() {
                Ok(e) => e,
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let flags = event.events();
            let dir = WatchId(event.wd());
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                out.push(Event::Overflow);
            } else if flags.contains(ReadFlags::IGNORED) {
                out.push(Event::Unwatched(dir));
            } else if flags.contains(ReadFlags::ISDIR) {
                // A subdirectory: not a file of ours.
            } else if let Some(name) = event.file_name() {
                let change = if flags.contains(ReadFlags::CLOSE_WRITE) {
                    Change::ClosedWritable
                } else if flags.contains(ReadFlags::MOVED_TO) {
                    Change::MovedIn
                } else if flags.contains(ReadFlags::CREATE) {
                    Change::Created
                } else {
                    continue;
                };
                out.push(Event::File {
                    dir,
                    name: std::ffi::OsStr::from_bytes(name.to_bytes()).to_owned(),
                    change,
                });
            }
        }
    }
}

/// The names of the regular files in `dir` (not following symbolic links), unsorted.
pub(crate) fn list_files(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            names.push(entry.file_name());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::time::Instant;

    /// A fresh, empty directory under the system's temporary directory.
    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("shmq-watch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    /// Waits (up to 10 s) until an event satisfying `want` arrives; returns everything seen.
    fn wait_for(w: &mut Watcher, want: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while !seen.iter().any(&want) {
            assert!(Instant::now() < deadline, "no such event; saw {seen:?}");
            w.wait(Some(Duration::from_millis(100)), &mut seen).unwrap();
        }
        seen
    }

    fn file(dir: WatchId, name: &str, change: Change) -> Event {
        Event::File {
            dir,
            name: name.into(),
            change,
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "inotify")]
    fn reports_creation_and_writable_close_but_not_read_only_use() {
        let dir = temp_dir("basic");
        let mut w = Watcher::new().unwrap();
        let id = w.watch_dir(&dir).unwrap();
        assert_eq!(w.watch_dir(&dir).unwrap(), id, "one directory, one id");

        std::fs::write(dir.join("a"), b"x").unwrap();
        let seen = wait_for(&mut w, |e| *e == file(id, "a", Change::ClosedWritable));
        assert!(seen.contains(&file(id, "a", Change::Created)), "{seen:?}");

        // Opening, reading and closing read-only is not reported, and neither is a
        // subdirectory; a rename into the directory is.
        drop(std::fs::read(dir.join("a")).unwrap());
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/b"), b"y").unwrap();
        std::fs::rename(dir.join("sub/b"), dir.join("b")).unwrap();
        let seen = wait_for(&mut w, |e| *e == file(id, "b", Change::MovedIn));
        assert_eq!(seen, [file(id, "b", Change::MovedIn)]);
        let mut more = Vec::new();
        w.wait(Some(Duration::from_millis(50)), &mut more).unwrap();
        assert!(more.is_empty(), "{more:?}");

        // Gone: the kernel says so.
        std::fs::remove_dir_all(&dir).unwrap();
        wait_for(&mut w, |e| *e == Event::Unwatched(id));
    }

    #[test]
    #[cfg_attr(miri, ignore = "inotify")]
    fn a_file_is_refused_as_a_directory() {
        let dir = temp_dir("notdir");
        let f = dir.join("f");
        std::fs::write(&f, b"").unwrap();
        let w = Watcher::new().unwrap();
        assert!(w.watch_dir(&f).is_err());
        assert!(w.watch_dir(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Child role of the test below: maps `SHMQ_WATCH_FILE` as a shmq handle does (open
    /// read-write, use lock, shared mapping), says so, and sleeps until killed.
    fn hold_until_killed(path: &str) -> ! {
        use crate::sys::shm;
        let map = shm::create(&shm::Location::File(path.into()), 4096, 0o600, (0, &[]))
            .expect("create")
            .expect("locked");
        // After a newline: the test harness has begun a line of its own.
        println!("\nholding {} bytes", map.len());
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }

    /// The fact the janitor rests on: when a process that maps a file and holds it open
    /// read-write is SIGKILLed, the kernel closes it, and the watch on its directory sees
    /// `IN_CLOSE_WRITE` (within milliseconds; here bounded by the 10 s watchdog only).
    #[test]
    #[cfg_attr(miri, ignore = "processes")]
    fn a_killed_process_holding_a_shared_mapping_closes_for_writing() {
        if let Ok(path) = std::env::var("SHMQ_WATCH_FILE") {
            hold_until_killed(&path);
        }
        let dir = temp_dir("killed");
        let path = dir.join("segment");
        let mut w = Watcher::new().unwrap();
        let id = w.watch_dir(&dir).unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::watch::tests::a_killed_process_holding_a_shared_mapping_closes_for_writing",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SHMQ_WATCH_FILE", &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Watchdog: a child that never says it holds the file is killed after 10 s, which
        // ends the read below.
        let pid = rustix::process::Pid::from_child(&child);
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = {
            let ready = ready.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !ready.load(std::sync::atomic::Ordering::Relaxed) {
                    if Instant::now() >= deadline {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while !line.contains("holding") {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!(
                    "the child ended before mapping the file: {:?}",
                    child.wait()
                );
            }
        }
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        watchdog.join().unwrap();
        let mut seen = Vec::new();
        w.wait(Some(Duration::from_millis(20)), &mut seen).unwrap();
        assert!(
            !seen.contains(&file(id, "segment", Change::ClosedWritable)),
            "closed while held: {seen:?}"
        );
        let killed = Instant::now();
        child.kill().unwrap();
        wait_for(&mut w, |e| {
            *e == file(id, "segment", Change::ClosedWritable)
        });
        eprintln!("IN_CLOSE_WRITE {:?} after SIGKILL", killed.elapsed());
        child.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
