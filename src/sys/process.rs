#![allow(unsafe_code)]
//! Process identity and liveness.
//!
//! A process is named by its pid *and* its start time (field 22 of `/proc/<pid>/stat`, in clock
//! ticks since boot), so a pid the kernel recycled for an unrelated process is never taken for
//! the peer that used to own it. All processes that share a segment must share a pid namespace.

use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A process: pid plus start time. `start_time == 0` means "unknown" (`/proc` unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessId {
    pub(crate) pid: u32,
    pub(crate) start_time: u64,
}

/// What we can tell about a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Running (or stopped), with the recorded start time when one was recorded.
    Alive,
    /// Gone, a zombie, or its pid now belongs to a process that started at another time.
    Dead,
}

static CACHED_PID: AtomicU32 = AtomicU32::new(0);
static CACHED_START: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn forget_cached_pid() {
    // Runs in the child right after fork(): only an atomic store, which is async-signal-safe.
    CACHED_PID.store(0, Ordering::Relaxed);
}

/// The calling process. Cheap after the first call (two atomic loads); a forked child
/// recomputes it, because an `atfork` handler clears the cache.
pub(crate) fn current() -> ProcessId {
    let pid = CACHED_PID.load(Ordering::Acquire);
    if pid != 0 {
        return ProcessId {
            pid,
            start_time: CACHED_START.load(Ordering::Relaxed),
        };
    }
    current_slow()
}

#[cold]
fn current_slow() -> ProcessId {
    ATFORK.call_once(|| {
        // SAFETY: pthread_atfork only records the three function pointers. The prepare and
        // parent handlers are null (allowed); the child handler is a plain `extern "C" fn` with
        // no state that performs one atomic store, which is async-signal-safe and so may run in
        // a child of a multi-threaded process.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(forget_cached_pid)) };
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
    let pid = std::process::id();
    let start_time = start_time_of(pid).unwrap_or(0);
    CACHED_START.store(start_time, Ordering::Relaxed);
    // Release: pairs with the Acquire load in `current`, which then sees CACHED_START.
    CACHED_PID.store(pid, Ordering::Release);
    ProcessId { pid, start_time }
}

/// Parsed `/proc/<pid>/stat`: the state letter and the start time.
fn stat_of(pid: u32) -> Option<(u8, u64)> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses the state (field 3) and start time (field 22) out of a `/proc/<pid>/stat` line.
/// The command name (field 2) may contain spaces and parentheses, so fields are counted from
/// the *last* `)`.
fn parse_stat(text: &[u8]) -> Option<(u8, u64)> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // After the state (field 3) come fields 4..; start time is field 22, i.e. 18 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn start_time_of(pid: u32) -> Option<u64> {
    stat_of(pid).map(|(_, start)| start)
}

/// Is `who` still running? A zombie (`Z`) or dead (`X`) entry counts as dead: it will never
/// release anything again, unless it is a thread-group leader whose other threads still run.
/// A `start_time` of 0 skips the recycled-pid check. When `/proc` cannot tell (unreadable
/// entry, fd limit, `hidepid`), `kill(pid, 0)` decides, and "cannot tell" counts as alive:
/// calling a live process dead would hand its lock to someone else.
pub(crate) fn liveness(who: ProcessId) -> Liveness {
    let Some(pid) = i32::try_from(who.pid)
        .ok()
        .filter(|&p| p > 0)
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Liveness::Dead;
    };
    match stat_of(who.pid) {
        Some((b'Z' | b'X' | b'x', _)) if !has_other_threads(who.pid) => Liveness::Dead,
        Some((_, start)) if who.start_time != 0 && start != who.start_time => Liveness::Dead,
        Some(_) => Liveness::Alive,
        None => match rustix::process::test_kill_process(pid) {
            Err(rustix::io::Errno::SRCH) => Liveness::Dead,
            // Exists (Ok), or exists but belongs to another user (EPERM), or unknown.
            _ => Liveness::Alive,
        },
    }
}

/// Whether a (zombie) thread-group leader still has other threads running.
fn has_other_threads(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.take(2).count() > 1)
        .unwrap_or(false)
}

/// A file: `(device, inode)`.
pub(crate) type FileId = (u64, u64);

/// Processes (other than this one) that map or hold open any of `files`, given as
/// `(device, inode)` pairs, found by reading every `/proc/<pid>/maps` and `/proc/<pid>/fd`.
/// Returns the holders of each file that has any, and how many processes could not be read
/// (other users' processes, unless we are root): those may hold files unseen.
pub(crate) fn holders(files: &[FileId]) -> (Vec<(FileId, ProcessId)>, usize) {
    let mut found = Vec::new();
    let mut unreadable = 0;
    if files.is_empty() {
        return (found, 0);
    }
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (found, 1);
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let mut held: Vec<FileId> = Vec::new();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"));
        match &maps {
            Ok(text) => held.extend(text.lines().filter_map(map_line_file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // exited
            Err(_) => {}
        }
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"));
        match fds {
            Ok(fds) => {
                use std::os::unix::fs::MetadataExt;
                for fd in fds.flatten() {
                    // Follows the magic link to the open file itself; no file is opened.
                    if let Ok(m) = std::fs::metadata(fd.path()) {
                        held.push((m.dev(), m.ino()));
                    }
                }
            }
            Err(_) if maps.is_err() => {
                unreadable += 1;
                continue;
            }
            Err(_) => {}
        }
        let start_time = start_time_of(pid).unwrap_or(0);
        for f in files {
            if held.contains(f) {
                found.push((*f, ProcessId { pid, start_time }));
            }
        }
    }
    (found, unreadable)
}

/// The `(device, inode)` a `/proc/<pid>/maps` line maps, if it maps a file:
/// `address perms offset major:minor inode path`.
fn map_line_file(line: &str) -> Option<FileId> {
    let mut f = line.split_ascii_whitespace();
    let dev = f.nth(3)?;
    let ino: u64 = f.next()?.parse().ok()?;
    if ino == 0 {
        return None;
    }
    let (major, minor) = dev.split_once(':')?;
    let major = u32::from_str_radix(major, 16).ok()?;
    let minor = u32::from_str_radix(minor, 16).ok()?;
    Some((rustix::fs::makedev(major, minor), ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line =
            b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1 2 3";
        assert_eq!(parse_stat(line), Some((b'S', 987654)));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"1 (x) R 1 2"), None);
    }

    #[test]
    fn parses_maps_lines() {
        let line = "7f00-7f10 rw-s 00000000 00:1a 4242     /dev/shm/x (deleted)";
        assert_eq!(
            map_line_file(line),
            Some((rustix::fs::makedev(0, 0x1a), 4242))
        );
        assert_eq!(map_line_file("7f00-7f10 rw-p 00000000 00:00 0"), None);
        assert_eq!(map_line_file("garbage"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc")]
    fn holders_finds_a_child_holding_a_file() {
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("shmq-holders-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let m = std::fs::metadata(&path).unwrap();
        let file = (m.dev(), m.ino());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::fs::File::open(&path).unwrap())
            .spawn()
            .unwrap();
        let (found, _) = holders(&[file]);
        child.kill().unwrap();
        child.wait().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(
            found.iter().any(|(f, p)| *f == file && p.pid == child.id()),
            "{found:?}"
        );
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn current_process_is_alive_and_recycled_pid_is_not() {
        let me = current();
        assert_eq!(me.pid, std::process::id());
        assert_ne!(me.start_time, 0);
        assert_eq!(liveness(me), Liveness::Alive);
        let impostor = ProcessId {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert_eq!(liveness(impostor), Liveness::Dead);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn exited_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start_time = start_time_of(pid).unwrap_or(0);
        child.wait().unwrap();
        assert_eq!(liveness(ProcessId { pid, start_time }), Liveness::Dead);
    }
}
