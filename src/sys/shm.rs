#![allow(unsafe_code)]
//! Named segments: files under `/dev/shm` (what `shm_open` uses) or at any path (a
//! memory-mapped file), created, opened, mapped and unlinked.
//!
//! We open `/dev/shm/NAME` ourselves rather than through `shm_open`, so that `O_NOFOLLOW` is
//! always passed: a symlink planted in `/dev/shm` by another user is refused, never followed.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use rustix::fs::{FallocateFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// Where POSIX shared memory lives on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Longest segment name we accept.
pub(crate) const NAME_MAX: usize = 200;

/// Where a segment lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A POSIX shared-memory name: `/dev/shm/NAME`.
    Shm(String),
    /// A regular file at this path, mapped shared.
    File(PathBuf),
}

impl Location {
    pub(crate) fn path(&self) -> PathBuf {
        match self {
            Location::Shm(name) => Path::new(SHM_DIR).join(name),
            Location::File(path) => path.clone(),
        }
    }

    /// The name users gave: the shm name, or the path as text.
    pub(crate) fn display_name(&self) -> String {
        match self {
            Location::Shm(name) => name.clone(),
            Location::File(path) => path.display().to_string(),
        }
    }
}

/// Checks a shared-memory name: 1 to 200 characters of `[A-Za-z0-9._-]`, not starting with a
/// dot. Returns why not.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > NAME_MAX {
        return Err("it is longer than 200 characters");
    }
    if name.starts_with('.') {
        return Err("it starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("it contains a character other than A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

/// OS failures, already sorted by errno; the only place that looks at errno values.
#[derive(Debug)]
pub(crate) enum SysError {
    AlreadyExists,
    NotFound,
    NoSpace,
    PermissionDenied,
    /// The path is a symbolic link (`O_NOFOLLOW` refused it).
    SymlinkRefused,
    Os(io::Error),
}

impl From<Errno> for SysError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::EXIST => SysError::AlreadyExists,
            Errno::NOENT => SysError::NotFound,
            Errno::NOSPC | Errno::NOMEM | Errno::FBIG => SysError::NoSpace,
            Errno::ACCESS | Errno::PERM | Errno::ROFS => SysError::PermissionDenied,
            Errno::LOOP => SysError::SymlinkRefused,
            other => SysError::Os(other.into()),
        }
    }
}

/// A shared, read-write (or read-only) mapping of a whole segment file. Unmapped on drop.
///
/// It keeps the file open: the open file description carries the segment's *use lock*
/// (`flock`), which every process using the segment holds shared, and which the kernel drops
/// when the process dies, however it dies. See `segment`'s lifecycle notes.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// Device and inode of the mapped file, so `unlink` can tell it is still the same file.
    ino: (u64, u64),
    fd: OwnedFd,
}

// SAFETY: a Mapping is an address range owned by this handle; nothing in it is tied to the
// thread that made it. Every access to the bytes goes through atomics or a protocol that
// excludes other writers, so handing the range to another thread adds no race that sharing it
// with another process does not already have to survive.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: `&Mapping` only gives out the base pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Device and inode of the file this maps.
    pub(crate) fn inode(&self) -> (u64, u64) {
        self.ino
    }

    /// Takes the use lock shared, without waiting. `Ok(false)`: somebody holds it exclusively
    /// (a process removing the segment right now).
    pub(crate) fn lock_shared(&self) -> Result<bool, SysError> {
        try_flock(&self.fd, FlockOperation::NonBlockingLockShared)
    }

    /// Tries to turn our shared use lock into an exclusive one: `Ok(true)` means no other open
    /// file description holds it, so nobody else uses the segment. On `Ok(false)` our shared
    /// lock is gone too (Linux drops it before trying), so call this only when letting go.
    pub(crate) fn try_lock_exclusive(&self) -> Result<bool, SysError> {
        try_flock(&self.fd, FlockOperation::NonBlockingLockExclusive)
    }

    /// Whether `loc` still names the file this maps.
    pub(crate) fn still_named(&self, loc: &Location) -> bool {
        rustix::fs::lstat(loc.path()).is_ok_and(|st| (st.st_dev, st.st_ino) == self.ino)
    }

    /// Writes the mapping's dirty pages to its file and waits for the device (`msync`
    /// `MS_SYNC`): for file-backed segments that must survive an OS crash.
    pub(crate) fn sync(&self) -> io::Result<()> {
        // SAFETY: `ptr`/`len` are exactly the live mapping made in `map` (unmapped only in
        // Drop, which cannot run while `&self` is borrowed); msync reads no Rust memory.
        unsafe {
            rustix::mm::msync(
                self.ptr.as_ptr().cast(),
                self.len,
                rustix::mm::MsyncFlags::SYNC,
            )
        }
        .map_err(io::Error::from)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned in `map`, the range has not been
        // unmapped before (this is the only munmap, and Drop runs once), and every reference
        // into it borrows a handle that owns this Mapping, so none outlives it.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn map(fd: OwnedFd, len: usize, writable: bool) -> Result<Mapping, SysError> {
    if len == 0 {
        return Err(SysError::Os(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty segment",
        )));
    }
    let st = rustix::fs::fstat(&fd)?;
    let prot = if writable {
        ProtFlags::READ | ProtFlags::WRITE
    } else {
        ProtFlags::READ
    };
    // SAFETY: mmap's preconditions:
    // - a null hint lets the kernel choose a fresh range, so no existing mapping is replaced;
    // - `fd` is an open file of at least `len` bytes (callers size it first or read its size
    //   from fstat);
    // - the result is only used through `Mapping`, which unmaps it once on drop.
    let ptr =
        unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, &fd, 0) }?;
    let ptr = NonNull::new(ptr.cast::<u8>())
        .ok_or(SysError::Os(io::Error::other("mmap returned null")))?;
    Ok(Mapping {
        ptr,
        len,
        ino: (st.st_dev, st.st_ino),
        fd,
    })
}

/// `flock` without waiting: `Ok(false)` if another open file description holds a conflicting
/// lock.
fn try_flock(fd: impl AsFd, op: FlockOperation) -> Result<bool, SysError> {
    loop {
        match rustix::fs::flock(&fd, op) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn open_flags(extra: OFlags) -> OFlags {
    OFlags::NOFOLLOW | OFlags::CLOEXEC | extra
}

/// Creates a new segment file of `size` bytes (failing if it exists), takes its use lock
/// shared, writes `stamp` (`(offset, bytes)`: the creator's identity, so a file left by a
/// creator killed a moment later can be told from any other program's empty file), reserves
/// its memory with fallocate so a full tmpfs fails here rather than with SIGBUS later, and
/// maps it. The rest of the file is zero-filled. On any failure the file is removed again.
///
/// `Ok(None)`: another process held the brand-new file's lock exclusively (a prober that
/// looks at every file: `in_use`, a janitor, a creator judging a leftover) for longer than a
/// probe takes; the file is removed again, and the caller may retry.
pub(crate) fn create(
    loc: &Location,
    size: usize,
    mode: u32,
    stamp: (u64, &[u8]),
) -> Result<Option<Mapping>, SysError> {
    let path = loc.path();
    let fd = rustix::fs::open(
        &path,
        open_flags(OFlags::CREATE | OFlags::EXCL | OFlags::RDWR),
        Mode::from_raw_mode(mode),
    )?;
    let mut ino = None;
    let result = (|| {
        let st = rustix::fs::fstat(&fd)?;
        ino = Some((st.st_dev, st.st_ino));
        // The use lock at once. A prober holds it exclusively only for a moment: wait that
        // out, briefly.
        let mut tries = 0;
        while !try_flock(&fd, FlockOperation::NonBlockingLockShared)? {
            tries += 1;
            if tries > 1000 {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        // open() applied the umask; set the mode the caller asked for exactly.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        // Sized first, so an opener sees either an empty file (and waits) or a whole one.
        match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, size as u64) {
            Ok(()) => {}
            // Filesystems without fallocate: size the file; space is then not reserved.
            Err(Errno::OPNOTSUPP) => rustix::fs::ftruncate(&fd, size as u64)?,
            Err(e) => return Err(e.into()),
        }
        let (at, bytes) = stamp;
        if !bytes.is_empty() && rustix::io::pwrite(&fd, bytes, at)? != bytes.len() {
            return Err(SysError::NoSpace);
        }
        map(fd, size, true).map(Some)
    })();
    if !matches!(result, Ok(Some(_))) {
        // Ours, and nobody else's business: a file whose name still points at it goes.
        match ino {
            Some(ino) => {
                let _ = unlink_if_same(loc, ino);
            }
            None => {
                let _ = rustix::fs::unlink(&path);
            }
        }
    }
    result
}

/// Opens an existing file with `access`, refusing anything but a regular file. O_NONBLOCK: a
/// FIFO planted under the name must not block the open (it is then refused as "not a
/// regular file"); on regular files the flag has no effect.
fn open_regular(loc: &Location, access: OFlags) -> Result<(OwnedFd, rustix::fs::Stat), SysError> {
    let fd = rustix::fs::open(
        loc.path(),
        open_flags(access | OFlags::NONBLOCK),
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&fd)?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
        return Err(SysError::Os(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((fd, st))
}

/// Opens an existing segment and maps all of it (its size from fstat).
/// Returns `Ok(None)` while the file is still empty (its creator has not sized it yet).
pub(crate) fn open(loc: &Location, writable: bool) -> Result<Option<Mapping>, SysError> {
    let access = if writable {
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    };
    let (fd, st) = open_regular(loc, access)?;
    let size = usize::try_from(st.st_size).unwrap_or(0);
    if size == 0 {
        return Ok(None);
    }
    map(fd, size, writable).map(Some)
}

/// A segment file held with its use lock *exclusive*: proof that no process uses it (every
/// user holds the lock shared). While held, openers wait and creators of the name cannot
/// finish, so the file may be examined and its name removed without a race.
#[derive(Debug)]
pub(crate) struct Unused {
    fd: OwnedFd,
    ino: (u64, u64),
}

impl Unused {
    /// Device and inode.
    pub(crate) fn inode(&self) -> (u64, u64) {
        self.ino
    }

    /// Copies up to `buf.len()` bytes from the start of the file (`pread`, no mapping, so a
    /// file truncated meanwhile cannot fault). Returns how many were read.
    pub(crate) fn read_start(&self, buf: &mut [u8]) -> Result<usize, SysError> {
        let mut done = 0;
        while done < buf.len() {
            match rustix::io::pread(&self.fd, &mut buf[done..], done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }
}

/// What [`lock_unused`] found.
#[derive(Debug)]
pub(crate) enum Probe {
    /// Nobody holds the use lock: now we hold it exclusively.
    Unused(Unused),
    /// Processes hold it shared: they use the file.
    InUse,
    /// Somebody holds it exclusively: another prober or remover, for a moment.
    Busy,
}

/// Opens the file at `loc` and tries to take its use lock exclusively. Refuses what is not a
/// regular file.
pub(crate) fn lock_unused(loc: &Location) -> Result<Probe, SysError> {
    let (fd, st) = open_regular(loc, OFlags::RDONLY)?;
    if !try_flock(&fd, FlockOperation::NonBlockingLockExclusive)? {
        // Shared holders let us share; an exclusive one does not. (Our shared lock, if we
        // got one, goes with `fd`.)
        return Ok(if try_flock(&fd, FlockOperation::NonBlockingLockShared)? {
            Probe::InUse
        } else {
            Probe::Busy
        });
    }
    Ok(Probe::Unused(Unused {
        ino: (st.st_dev, st.st_ino),
        fd,
    }))
}

/// Removes the segment's name. Mappings stay valid until unmapped.
pub(crate) fn unlink(loc: &Location) -> Result<(), SysError> {
    Ok(rustix::fs::unlink(loc.path())?)
}

/// Removes the segment's name only if it still names the file with this (device, inode), so a
/// creator never removes a newer segment that took the name after its own was removed.
pub(crate) fn unlink_if_same(loc: &Location, ino: (u64, u64)) -> Result<(), SysError> {
    let path = loc.path();
    let st = rustix::fs::lstat(&path)?;
    if (st.st_dev, st.st_ino) != ino {
        return Err(SysError::NotFound);
    }
    Ok(rustix::fs::unlink(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("a").is_ok());
        assert!(check_name("shmq-test_1.x").is_ok());
        assert!(check_name(&"x".repeat(200)).is_ok());
        assert!(check_name(&"x".repeat(201)).is_err());
        assert!(check_name("").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name("caf\u{e9}").is_err());
        assert!(check_name("sp ace").is_err());
    }
}
