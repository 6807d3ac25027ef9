//! Shared helpers for the fuzz targets that create real segments in /dev/shm.
//!
//! Every iteration creates its segment under a fresh name (`<prefix>-<pid>-<counter>`) and
//! drops it (the creating `Ring` unlinks it) before returning. A failing assertion aborts the
//! process (libFuzzer's panic hook), so no destructor runs then: a panic hook installed here
//! removes the segment of the iteration in progress first, and at start-up segments left by
//! earlier fuzzing processes of the same target that are no longer alive (killed by a
//! sanitizer, a timeout or an OOM) are removed.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

const SHM_DIR: &str = "/dev/shm";

/// The name of the segment the current iteration works on, for the panic hook.
static CURRENT: Mutex<Option<String>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);
static INIT: Once = Once::new();

pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(name)
}

/// Installs the panic hook and sweeps stale segments of `prefix` (once per process).
fn init(prefix: &'static str) {
    INIT.call_once(|| {
        sweep_stale(prefix);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // try_lock: never deadlock if the panic happened while the lock was held.
            if let Ok(mut cur) = CURRENT.try_lock()
                && let Some(name) = cur.take()
            {
                let _ = std::fs::remove_file(shm_path(&name));
            }
            previous(info);
        }));
    });
}

/// Removes `/dev/shm/<prefix>-<pid>-*` whose pid is not a live process.
fn sweep_stale(prefix: &str) {
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return;
    };
    let me = std::process::id();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != me && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A fresh segment name for this iteration, registered for the panic hook. Dropping it
/// removes the file if it still exists (it should not: the creator unlinks on drop) and
/// reports whether it did, so the caller can assert the library cleaned up.
pub struct Name {
    name: String,
}

impl Name {
    pub fn new(prefix: &'static str) -> Name {
        init(prefix);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        // Left over from an earlier process that had our pid: not ours to keep.
        let _ = std::fs::remove_file(shm_path(&name));
        *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.clone());
        Name { name }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        shm_path(&self.name)
    }

    /// Call after every handle is dropped: the creator's drop must have unlinked the file.
    /// Removes it if not (so nothing leaks), then panics.
    pub fn assert_unlinked(&self) {
        if self.path().exists() {
            let _ = std::fs::remove_file(self.path());
            panic!(
                "segment {} still exists after every handle was dropped",
                self.name
            );
        }
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
        let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_deref() == Some(self.name.as_str()) {
            *cur = None;
        }
    }
}
