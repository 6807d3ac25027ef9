//! What the cross-process benchmarks (`ring`, `queue`, `topic`) share: CPU affinity, clean-up
//! after a killed run, waiting on a peer's report pipe, and the ping-pong timing of latency
//! benchmarks.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Restricts the calling thread (and the threads and processes it starts later) to `cpus`.
pub fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    use rustix::thread::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    for &cpu in cpus {
        if cpu >= CpuSet::MAX_CPU {
            return Err(std::io::Error::other("cpu out of range"));
        }
        set.set(cpu);
    }
    sched_setaffinity(None, &set).map_err(std::io::Error::from)
}

/// The CPUs the calling thread may run on (`None` if the kernel does not say).
pub fn allowed_cpus() -> Option<Vec<usize>> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    let set = sched_getaffinity(None).ok()?;
    Some(
        (0..CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
    )
}

/// The `cpus` field of a peer's spec: one CPU, or every CPU the bench started with (read once,
/// before the bench pins itself; `fallback` if the kernel does not say).
pub fn cpu_list(pinned: Option<usize>, fallback: &[usize]) -> String {
    static ALL_CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    match pinned {
        Some(cpu) => cpu.to_string(),
        None => ALL_CPUS
            .get_or_init(|| allowed_cpus().unwrap_or_else(|| fallback.to_vec()))
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Waits until `fd` has something to read (or is closed); `false` after `limit`.
pub fn readable_within(fd: std::os::fd::BorrowedFd<'_>, limit: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and a count of one.
        let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc > 0 {
            return true;
        }
        let interrupted =
            rc < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
        if !interrupted || left.is_zero() {
            return false;
        }
    }
}

/// Removes the files in `dirs` named `PREFIX-x-PID...` whose process `PID` is gone: what an
/// earlier run that was killed left behind.
pub fn remove_stale(prefix: &str, dirs: &[&str]) {
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
                continue;
            };
            let Some(pid) = rest.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let gone = unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            if gone {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The ping-pong side of a latency benchmark.
pub trait RoundTrip {
    /// One message there and its echo back, checked.
    fn trip(&mut self);

    fn timed(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.trip();
        }
        start.elapsed()
    }

    /// p50 and p99 of the one-way time (half a round trip) over at most `trips` round trips
    /// or `budget`, one clock read per round trip.
    fn percentiles(&mut self, trips: usize, budget: Duration) -> (Duration, Duration, usize) {
        let mut times = Vec::with_capacity(trips);
        let start = Instant::now();
        let mut prev = start;
        while times.len() < trips && prev - start < budget {
            self.trip();
            let now = Instant::now();
            times.push(now - prev);
            prev = now;
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize] / 2;
        (at(0.50), at(0.99), times.len())
    }
}
