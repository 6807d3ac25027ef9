#![allow(unsafe_code)]
//! L1: named segments with a validated header.
//!
//! [`Segment`] is a mapped shmq segment: its header was written (by us) or validated (when we
//! opened it) here, and nowhere else. Typed objects ([`Value`](crate::Value),
//! [`Mutex`](crate::Mutex), ...) are a `Segment` plus a view of its payload. Used directly,
//! a `Segment` is a named block of raw bytes.
//!
//! # Creation protocol
//! The creator makes the file with `O_CREAT|O_EXCL` (so exactly one creator wins), reserves
//! its memory, records its pid and start time and the magic, fills the header and the
//! kind's area, then stores `READY` (Release) and wakes waiters on that word. An opener maps
//! the file, waits (futex, bounded by [`Options::open_timeout`]) for `READY` (Acquire), then
//! validates. A creator that dies before `READY` leaves an *abandoned* segment, reported as
//! [`OpenError::Abandoned`] as soon as an opener notices the creator is gone.
//!
//! # Lifecycle: the use lock
//! Every handle keeps its segment's file open and holds a shared `flock` on it, the *use
//! lock*, from the moment the file is created or opened until the handle is dropped. The
//! kernel drops that lock when the process dies, however it dies (SIGKILL included), and no
//! recycled pid or full table can fool it. So "nobody uses this segment" is one question to
//! the kernel: can the lock be taken exclusively?
//!
//! - *Letting go.* A dropped handle tries to turn its shared lock into an exclusive one. It
//!   succeeds only if no other handle, in any process, holds the lock: then it is the last
//!   user, and removes the name (if the name still names its file). Persistent segments are
//!   never removed this way.
//! - *Opening.* An opener takes the lock shared, then checks that the name still names the
//!   file it opened: a remover holds the lock exclusively from before its check until after
//!   its unlink, so an opener either is counted by the remover, or finds the name gone and
//!   opens again (finding a newer segment, or none).
//! - *Creating.* `O_CREAT|O_EXCL`, then the lock shared at once, before the file has any size.
//!   If the name is taken by a segment nobody holds (all its users died), `create` takes the
//!   lock exclusively, checks the file is a non-persistent shmq segment of this layout (or a
//!   blank one whose recorded creator died before writing more), removes the name and creates
//!   anew: see [`Segment::remove_if_unused`]. A creator whose new file was removed in the
//!   instant before it locked it notices (the name no longer names its file) and starts over.

mod header;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) use header::{FNV_OFFSET, HEADER_SIZE, TypeInfo, fnv1a};
pub use header::{Kind, SegmentInfo};

use crate::error::{CreateError, OpenError, OpenOrCreateError, OutOfBounds};
use crate::region::Region;
use crate::sys::process::{self, Liveness, ProcessId};
use crate::sys::shm::{self, Location, Mapping, SysError};
use crate::sys::{clock, futex};

/// Default bound on how long an opener waits for a creator to finish initializing.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest segment shmq creates (1 TiB): far beyond any tmpfs, small enough that no size
/// computation overflows.
const MAX_SEGMENT: u64 = 1 << 40;

/// Where a segment lives and how to create or open it.
///
/// Every `create`/`open` in shmq takes `impl Into<Options>`, so a plain name works:
/// `Value::<u64>::create("counter", 0)`. Use `Options` for the rest:
///
/// ```
/// use std::time::Duration;
/// let opts = shmq::Options::new(format!("doc-options-{}", std::process::id()))
///     .mode(0o600)
///     .open_timeout(Duration::from_millis(200));
/// let v = shmq::Value::<u32>::create(&opts, 7)?;
/// assert_eq!(v.load(), 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    target: Target,
    mode: u32,
    persistent: bool,
    open_timeout: Duration,
    wait_for_creation: bool,
    type_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Name(String),
    File(PathBuf),
}

impl Options {
    /// A POSIX shared-memory segment, `/dev/shm/NAME`. The name must be 1-200 characters of
    /// `[A-Za-z0-9._-]`, not starting with a dot (checked when the segment is created or
    /// opened).
    pub fn new(name: impl Into<String>) -> Options {
        Options {
            target: Target::Name(name.into()),
            mode: 0o600,
            persistent: false,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            wait_for_creation: false,
            type_tag: None,
        }
    }

    /// A segment backed by a regular file at `path` (mapped shared), so its contents outlive
    /// every process and a reboot. File-backed segments are persistent: the creator does not
    /// remove the file on drop.
    pub fn file(path: impl Into<PathBuf>) -> Options {
        Options {
            target: Target::File(path.into()),
            persistent: true,
            ..Options::new("")
        }
    }

    /// Permission bits for a new segment (default `0o600`: the creating user only).
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode & 0o777;
        self
    }

    /// Keep the segment after every process using it has let go (default: the last user's
    /// drop removes the name, except for [`Options::file`] segments). Recorded in the header:
    /// a persistent segment is never removed automatically, not by `create` reclaiming an
    /// abandoned name, not by `shmq gc` unless asked with `--persistent`.
    pub fn persistent(mut self, persistent: bool) -> Options {
        self.persistent = persistent;
        self
    }

    /// How long `open` waits for a creator that is still initializing (default 1 s).
    pub fn open_timeout(mut self, timeout: Duration) -> Options {
        self.open_timeout = timeout;
        self
    }

    /// Makes `open` of a name that does not exist yet wait for it to be created (up to the
    /// [`open_timeout`](Options::open_timeout)) instead of failing at once with
    /// [`OpenError::NotFound`]: for a process that may start
    /// before the one that creates.
    ///
    /// ```
    /// use std::time::Duration;
    /// let name = format!("doc-wait-for-creation-{}", std::process::id());
    /// let opts = shmq::Options::new(name.as_str())
    ///     .wait_for_creation(true)
    ///     .open_timeout(Duration::from_secs(10));
    /// let creator = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || {
    ///         std::thread::sleep(Duration::from_millis(20));
    ///         shmq::Value::<u32>::create(name.as_str(), 7)
    ///     }
    /// });
    /// let v = shmq::Value::<u32>::open(&opts)?; // waits for the creator
    /// assert_eq!(v.load(), 7);
    /// # drop(creator.join());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_creation(mut self, wait: bool) -> Options {
        self.wait_for_creation = wait;
        self
    }

    /// How long `open` waits for a creator (see [`Options::open_timeout`]).
    /// Identify the payload type by `tag` instead of by its layout fingerprint (or its own
    /// `#[shmq(tag = "...")]`): create records the tag, open refuses a segment whose tag (or
    /// size or alignment) differs, naming both. Works for every kind, byte rings, pipes and
    /// queues included, which have no payload type otherwise: a cheap way to make sure both
    /// ends speak the same protocol. See [`crate::pod`] for how tags are recorded.
    ///
    /// ```
    /// let name = format!("doc-tag-{}", std::process::id());
    /// let ring = shmq::Ring::create(shmq::Options::new(&name).type_tag("quotes.v2"), 4096)?;
    /// assert!(shmq::Ring::open(shmq::Options::new(&name).type_tag("quotes.v2")).is_ok());
    /// let err = shmq::Ring::open(shmq::Options::new(&name).type_tag("quotes.v3")).unwrap_err();
    /// assert!(err.to_string().contains("quotes.v2"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn type_tag(mut self, tag: impl Into<String>) -> Options {
        self.type_tag = Some(tag.into());
        self
    }

    /// `ty`, or the tag's identity in its place when one was set.
    pub(crate) fn identity(&self, ty: TypeInfo) -> TypeInfo {
        match &self.type_tag {
            Some(tag) => TypeInfo::tagged(ty.size, ty.align, tag.clone()),
            None => ty,
        }
    }

    pub(crate) fn open_timeout_value(&self) -> Duration {
        self.open_timeout
    }

    /// The segment name, or the file's path, as given.
    pub fn label(&self) -> String {
        match &self.target {
            Target::Name(n) => n.clone(),
            Target::File(p) => p.display().to_string(),
        }
    }

    fn location_for_create(&self) -> Result<Location, CreateError> {
        match &self.target {
            Target::File(p) => Ok(Location::File(p.clone())),
            Target::Name(n) => match shm::check_name(n) {
                Ok(()) => Ok(Location::Shm(n.clone())),
                Err(reason) => Err(CreateError::InvalidName {
                    name: n.clone(),
                    reason,
                }),
            },
        }
    }

    fn location_for_open(&self) -> Result<Location, OpenError> {
        self.location_for_create().map_err(|e| match e {
            CreateError::InvalidName { name, reason } => OpenError::InvalidName { name, reason },
            other => OpenError::Os {
                name: String::new(),
                source: std::io::Error::other(other.to_string()),
            },
        })
    }
}

impl From<&str> for Options {
    fn from(name: &str) -> Options {
        Options::new(name)
    }
}

impl From<String> for Options {
    fn from(name: String) -> Options {
        Options::new(name)
    }
}

impl From<&String> for Options {
    fn from(name: &String) -> Options {
        Options::new(name.clone())
    }
}

impl From<&Options> for Options {
    fn from(o: &Options) -> Options {
        o.clone()
    }
}

/// What a typed object asks of a new segment.
pub(crate) struct Layout {
    pub(crate) kind: Kind,
    /// The payload's start is aligned to this (at least 64; page-aligned mapping).
    pub(crate) align: usize,
    pub(crate) ty: TypeInfo,
    pub(crate) payload_size: usize,
    pub(crate) param0: u64,
    pub(crate) param1: u64,
}

impl Layout {
    /// A raw byte segment of `size` usable bytes.
    fn raw(size: usize) -> Layout {
        Layout {
            kind: Kind::Raw,
            align: 64,
            ty: TypeInfo::NONE,
            payload_size: size,
            param0: 0,
            param1: 0,
        }
    }
}

/// A mapped shmq segment: a named block of shared memory with a validated header.
///
/// As a public type it is a raw byte area ([`Kind::Raw`]) that processes read and write by
/// offset; pair it with a [`Semaphore`](crate::Semaphore) or [`Lock`](crate::Lock) to
/// coordinate. The name lives while any process uses it: the last handle dropped, in any
/// process, removes it, unless the segment is persistent (see the [module
/// docs](crate::segment) on the use lock).
///
/// ```
/// let name = format!("doc-segment-{}", std::process::id());
/// let a = shmq::Segment::create(name.as_str(), 64)?;
/// let b = shmq::Segment::open(name.as_str())?;
/// a.write(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// b.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Segment {
    map: Mapping,
    loc: Location,
    info: SegmentInfo,
    /// The process that opened the file and holds the use lock through it; a forked child
    /// that inherited the handle leaves the lock (it shares the parent's) alone.
    opened_by: u32,
}

impl Segment {
    /// Creates a raw segment with `size` usable bytes, zero-filled.
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, permissions.
    pub fn create(opts: impl Into<Options>, size: usize) -> Result<Segment, CreateError> {
        Segment::create_kind(&opts.into(), &Layout::raw(size), |_| {})
    }

    /// Opens an existing raw segment.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a raw shmq segment, corrupted, still initializing.
    pub fn open(opts: impl Into<Options>) -> Result<Segment, OpenError> {
        Segment::open_kind(&opts.into(), Kind::Raw, TypeInfo::NONE)
    }

    /// Opens the raw segment, creating it with `size` bytes if it does not exist. Safe when
    /// several processes race to do this: exactly one creates, the others open.
    ///
    /// # Errors
    /// As [`Segment::create`] and [`Segment::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        size: usize,
    ) -> Result<Segment, OpenOrCreateError> {
        Segment::open_or_create_kind(&opts.into(), &Layout::raw(size), |_| {})
    }

    /// Reads the header of any shmq segment, read-only, without attaching to it: for tools.
    ///
    /// # Errors
    /// [`OpenError`] if it is missing, not shmq, or its header is inconsistent.
    pub fn inspect(opts: impl Into<Options>) -> Result<SegmentInfo, OpenError> {
        Ok(ReadOnly::open(&opts.into())?.info)
    }

    /// Usable bytes (the payload, after the header).
    pub fn len(&self) -> usize {
        self.info.payload_size as usize
    }

    /// Whether the segment has no usable bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name (or file path) it was created or opened under.
    pub fn name(&self) -> String {
        self.loc.display_name()
    }

    /// The validated header, as read when this handle was made.
    pub fn info(&self) -> &SegmentInfo {
        &self.info
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    ///
    /// Bytes are copied with atomic loads, so a writer in another process that ignores your
    /// protocol can at worst make the bytes mix old and new contents. Coordinate readers and
    /// writers (a [`Semaphore`](crate::Semaphore), a [`Lock`](crate::Lock)); threads of one
    /// process must do so too, as racing reads and writes of *different* ranges that overlap
    /// the same bytes are mixed-size atomic accesses, which Rust does not define.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the segment.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), OutOfBounds> {
        self.payload()
            .read(offset, buf)
            .ok_or(self.oob(offset, buf.len()))
    }

    /// Copies `data` into the segment at `offset`.
    ///
    /// # Errors
    /// [`OutOfBounds`] if the range leaves the segment.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), OutOfBounds> {
        self.payload()
            .write(offset, data)
            .ok_or(self.oob(offset, data.len()))
    }

    /// The segment's usable bytes as a slice, like Python's `SharedMemory.buf`: for parsing
    /// in place, `memchr`, hashing, handing to an API that wants `&[u8]`. For plain copies,
    /// [`Segment::read`] is safe and costs one copy.
    ///
    /// # Safety
    /// The slice says "these bytes do not change while I live", and the compiler relies on
    /// it, but any process that maps the segment can write them at any time. For as long as
    /// the returned slice lives:
    /// - nothing may write any byte of the segment: not another process, not another thread
    ///   (through this handle's [`write`](Segment::write), [`atomic_u32`](Segment::atomic_u32)
    ///   or [`atomic_u64`](Segment::atomic_u64), or another handle or mapping of the same
    ///   segment), not a program writing the file under `/dev/shm`. A concurrent write is a
    ///   data race, which is undefined behaviour, not merely stale or torn bytes. Readers are
    ///   fine (including atomic loads).
    /// - Usually that means every process follows a protocol that shuts writers out, e.g.
    ///   writes only while holding a [`Lock`](crate::Lock) that the reader holds too, or
    ///   writes once before signalling an [`Event`](crate::Event) and never again.
    ///
    /// The slice is valid memory for `&self`'s lifetime either way (the mapping lives as long
    /// as the handle); only its contents are at stake. A process with write access can still
    /// shrink the file, which raises SIGBUS on access (see the crate's known limits).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-segment-slice-{}", std::process::id());
    /// let seg = shmq::Segment::create(name.as_str(), 16)?;
    /// let lock = shmq::Lock::create(format!("{name}-lock"), ())?;
    /// {
    ///     let _held = lock.lock()?; // every writer of `seg` takes `lock` first
    ///     seg.write(0, b"hello")?;
    /// }
    /// let _held = lock.lock()?;
    /// // SAFETY: every process writes `seg` only while holding `lock`, which we hold until
    /// // the slice is gone.
    /// let bytes = unsafe { seg.as_slice() };
    /// assert_eq!(&bytes[..5], b"hello");
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        let payload = self.payload();
        // SAFETY:
        // - the pointer is non-null, and valid for reads of `payload.len()` bytes for the
        //   borrow of `self`: the mapping covers the payload (validated when the handle was
        //   made) and lives as long as `self`;
        // - the bytes are initialized (a mapped file reads as its contents, or zeros);
        // - `payload.len()` is at most the validated segment size, far below `isize::MAX`;
        // - no writes during the slice's life: the caller's contract (`# Safety`).
        unsafe { std::slice::from_raw_parts(payload.as_ptr().as_ptr(), payload.len()) }
    }

    /// The segment's usable bytes as a mutable slice, for filling or updating in place (see
    /// [`Segment::as_slice`]). `&mut self` keeps this handle's other accessors away while it
    /// lives; [`Segment::write`] is the safe way to copy in.
    ///
    /// # Safety
    /// For as long as the returned slice lives, nothing else may read or write any byte of
    /// the segment: not another process, not another handle or mapping of the same segment
    /// in this process, not a program reading or writing the file under `/dev/shm`. Anything
    /// else that touches the bytes meanwhile is a data race (undefined behaviour). Usually
    /// every process follows a protocol that gives one of them the bytes at a time, such as
    /// a [`Lock`](crate::Lock) held around every access.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-segment-mut-slice-{}", std::process::id());
    /// let mut seg = shmq::Segment::create(name.as_str(), 16)?;
    /// let lock = shmq::Lock::create(format!("{name}-lock"), ())?;
    /// {
    ///     let _held = lock.lock()?;
    ///     // SAFETY: every process touches `seg` only while holding `lock`, which we hold
    ///     // until the slice is gone.
    ///     let bytes = unsafe { seg.as_mut_slice() };
    ///     bytes[..4].copy_from_slice(&7u32.to_le_bytes());
    ///     bytes[4..8].fill(0xff);
    /// }
    /// let mut word = [0; 4];
    /// seg.read(0, &mut word)?;
    /// assert_eq!(u32::from_le_bytes(word), 7);
    /// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    /// ```
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let payload = self.payload();
        // SAFETY:
        // - the pointer is non-null, valid for reads and writes of `payload.len()` bytes for
        //   the borrow of `self` (the mapping is read-write, covers the payload, and lives as
        //   long as `self`), and initialized;
        // - `payload.len()` is far below `isize::MAX`;
        // - within this process, `&mut self` excludes every other access through this
        //   handle; every other access is excluded by the caller's contract (`# Safety`).
        unsafe { std::slice::from_raw_parts_mut(payload.as_ptr().as_ptr(), payload.len()) }
    }

    /// The 4-byte word at `offset`, for building your own lock-free protocol in a raw
    /// segment; `None` unless `offset + 4 <= len()` and `offset` is a multiple of 4.
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// let name = format!("doc-atomic-{}", std::process::id());
    /// let seg = shmq::Segment::create(name.as_str(), 64)?;
    /// let flag = seg.atomic_u32(8).ok_or("out of range")?;
    /// flag.store(1, Ordering::Release);
    /// assert!(seg.atomic_u32(62).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn atomic_u32(&self, offset: usize) -> Option<&std::sync::atomic::AtomicU32> {
        self.payload().u32_at(offset)
    }

    /// The 8-byte word at `offset`; `None` unless `offset + 8 <= len()` and `offset` is a
    /// multiple of 8. See [`Segment::atomic_u32`].
    pub fn atomic_u64(&self, offset: usize) -> Option<&std::sync::atomic::AtomicU64> {
        self.payload().u64_at(offset)
    }

    fn oob(&self, start: usize, n: usize) -> OutOfBounds {
        OutOfBounds {
            start,
            end: start.saturating_add(n),
            len: self.len(),
        }
    }

    /// Writes the segment's contents to its file and waits until the device has them
    /// (`msync(MS_SYNC)`). Only meaningful for [`Options::file`] segments: without it their
    /// contents survive every process, but an OS crash or power loss may lose the changes of
    /// the last seconds. (For /dev/shm segments it is harmless and useless.)
    ///
    /// # Errors
    /// The OS error from `msync`.
    pub fn flush(&self) -> std::io::Result<()> {
        self.map.sync()
    }

    /// Removes the segment's name now (processes that have it mapped keep using it).
    ///
    /// # Errors
    /// [`OpenError::NotFound`] if it was already removed, or an OS error.
    pub fn unlink(opts: impl Into<Options>) -> Result<(), OpenError> {
        let loc = opts.into().location_for_open()?;
        shm::unlink(&loc).map_err(|e| open_error(&loc.display_name(), e))
    }

    /// Removes the segment at `opts` if no process uses it — no handle holds its use lock,
    /// so every process that created or opened it has let go or died — and it is not
    /// persistent (unless `persistent_too`). Race-free against processes opening or
    /// creating the name meanwhile: they wait for the decision, then open anew.
    ///
    /// This is what `create` does with a name left behind by dead processes, what `shmq gc`
    /// does with each segment, and what `shmq gc --watch` does when a user's file closes. A
    /// blank file whose recorded creator is dead (it died before writing the header) counts
    /// as unused; a blank file naming no creator might be any program's new file and, like a
    /// file that is not a shmq segment of this layout version, is never removed.
    ///
    /// ```
    /// use shmq::segment::Removal;
    /// let name = format!("doc-remove-unused-{}", std::process::id());
    /// let v = shmq::Value::<u32>::create(name.as_str(), 1)?;
    /// assert_eq!(shmq::Segment::remove_if_unused(name.as_str(), false)?, Removal::InUse);
    /// drop(v); // the last user: the name goes with it
    /// assert!(shmq::Segment::remove_if_unused(name.as_str(), false).is_err()); // NotFound
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`OpenError::NotFound`] if there is no such name, [`OpenError::InvalidName`], or the
    /// OS error from opening or reading it.
    pub fn remove_if_unused(
        opts: impl Into<Options>,
        persistent_too: bool,
    ) -> Result<Removal, OpenError> {
        let loc = opts.into().location_for_open()?;
        remove_if_unused_at(&loc, persistent_too).map_err(|e| open_error(&loc.display_name(), e))
    }

    /// Whether some process holds the segment's use lock (uses it through shmq). A moment's
    /// exclusive lock is taken and dropped to find out, so an opener racing with the probe
    /// retries once.
    ///
    /// # Errors
    /// As [`Segment::remove_if_unused`].
    pub fn in_use(opts: impl Into<Options>) -> Result<bool, OpenError> {
        let loc = opts.into().location_for_open()?;
        shm::lock_unused(&loc)
            .map(|p| !matches!(p, shm::Probe::Unused(_)))
            .map_err(|e| open_error(&loc.display_name(), e))
    }

    // ----- crate-internal: typed objects build on these -----

    /// Removes the name only if it still names the file `ino` (device, inode) — for tools
    /// that decided from an earlier look, so they never remove a newer segment of that name.
    pub(crate) fn unlink_if_same(opts: &Options, ino: (u64, u64)) -> Result<(), OpenError> {
        let loc = opts.location_for_open()?;
        shm::unlink_if_same(&loc, ino).map_err(|e| open_error(&loc.display_name(), e))
    }

    /// The payload area.
    pub(crate) fn payload(&self) -> Region<'_> {
        // SAFETY: the mapping is page-aligned, `len` bytes, valid while `self` lives (the
        // region borrows `self`), and shmq only touches it through atomics or exclusive grants.
        unsafe { payload_of(&self.map, &self.info) }
    }

    pub(crate) fn create_kind(
        opts: &Options,
        layout: &Layout,
        init: impl FnOnce(Region<'_>),
    ) -> Result<Segment, CreateError> {
        let loc = opts.location_for_create()?;
        let name = loc.display_name();
        let align = layout.align.clamp(64, 4096) as u64;
        let payload_offset = (HEADER_SIZE as u64).div_ceil(align) * align;
        let total = payload_offset
            .checked_add(layout.payload_size as u64)
            .map(|t| t.div_ceil(4096) * 4096)
            .filter(|&t| t <= MAX_SEGMENT)
            .ok_or_else(|| CreateError::InvalidSize {
                name: name.clone(),
                reason: format!("{} bytes is more than the 1 TiB limit", layout.payload_size),
            })?;
        let create_error = |e: SysError| match e {
            SysError::AlreadyExists => CreateError::AlreadyExists { name: name.clone() },
            SysError::NoSpace => CreateError::NoSpace {
                name: name.clone(),
                size: total,
            },
            SysError::PermissionDenied => CreateError::PermissionDenied { name: name.clone() },
            SysError::NotFound => CreateError::Os {
                name: name.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "parent directory does not exist",
                ),
            },
            SysError::SymlinkRefused => CreateError::AlreadyExists { name: name.clone() },
            SysError::Os(source) => CreateError::Os {
                name: name.clone(),
                source,
            },
        };
        let me = process::current();
        let (at, stamp) = header::creator_stamp(me.pid, me.start_time);
        let mut tries = 0;
        let map = loop {
            tries += 1;
            match shm::create(&loc, total as usize, opts.mode, (at, &stamp)) {
                // A process reclaiming the name may have removed our file in the instant
                // before we locked it: then it is no longer at the name, and we start over.
                Ok(Some(map)) if map.still_named(&loc) => break map,
                Ok(_) => {}
                Err(SysError::AlreadyExists) => match remove_if_unused_at(&loc, false) {
                    Ok(Removal::Removed) | Err(SysError::NotFound) => {}
                    // A prober's moment: look again.
                    Ok(Removal::Busy) => std::thread::sleep(Duration::from_micros(200)),
                    _ => return Err(create_error(SysError::AlreadyExists)),
                },
                Err(e) => return Err(create_error(e)),
            }
            // Each round means another process created or removed the name meanwhile.
            if tries >= RACE_ROUNDS {
                return Err(create_error(SysError::AlreadyExists));
            }
        };
        // SAFETY: the fresh mapping is page-aligned and `total` bytes long; the region is
        // dropped before `map` moves into the Segment below (it only lives in this block).
        let region = unsafe { Region::from_raw(map.as_ptr(), map.len()) };
        let new = header::NewHeader {
            kind: layout.kind,
            payload_offset,
            ty: opts.identity(layout.ty.clone()),
            payload_size: layout.payload_size as u64,
            param0: layout.param0,
            param1: layout.param1,
            creator_pid: me.pid,
            creator_start: me.start_time,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            persistent: opts.persistent,
        };
        header::write_header(&region, &new).ok_or_else(|| CreateError::InvalidSize {
            name: name.clone(),
            reason: "segment too small for its header".into(),
        })?;
        if let Some(payload) = region.sub(payload_offset as usize, layout.payload_size) {
            init(payload);
        }
        header::publish_ready(&region);
        let info = header::read_info(&region).map_err(|e| CreateError::Os {
            name: name.clone(),
            source: std::io::Error::other(format!("segment changed during creation: {e:?}")),
        })?;
        Ok(Segment {
            map,
            loc,
            info,
            opened_by: me.pid,
        })
    }

    pub(crate) fn open_kind(
        opts: &Options,
        kind: Kind,
        ty: TypeInfo,
    ) -> Result<Segment, OpenError> {
        let loc = opts.location_for_open()?;
        let name = loc.display_name();
        let deadline = clock::deadline_after(opts.open_timeout);
        let mut missing = 0u32;
        let (map, info) = loop {
            let map = match shm::open(&loc, true) {
                Ok(Some(map)) => map,
                Ok(None) => {
                    // The creator has not sized the file yet.
                    if clock::passed(deadline, Instant::now()) {
                        return Err(OpenError::InitTimeout { name, pid: 0 });
                    }
                    nap(&name, Duration::from_millis(1))?;
                    continue;
                }
                Err(SysError::NotFound)
                    if opts.wait_for_creation && !clock::passed(deadline, Instant::now()) =>
                {
                    // Looking for the name: 2, 4, ... up to 16 ms between looks.
                    missing = (missing + 1).min(4);
                    nap(&name, Duration::from_millis(1 << missing))?;
                    continue;
                }
                Err(e) => return Err(open_error(&name, e)),
            };
            // The use lock: shared, then the name must still be this file (a remover holds
            // the lock exclusively until its unlink is done).
            if !map.lock_shared().map_err(|e| open_error(&name, e))? {
                if clock::passed(deadline, Instant::now()) {
                    return Err(OpenError::Removing { name });
                }
                nap(&name, Duration::from_millis(1))?;
                continue;
            }
            if !map.still_named(&loc) {
                if clock::passed(deadline, Instant::now()) {
                    return Err(OpenError::NotFound { name });
                }
                continue;
            }
            if let Some(info) = wait_ready(&map, &name, deadline)? {
                break (map, info);
            }
        };
        if info.kind != kind {
            return Err(OpenError::KindMismatch {
                name,
                found: info.kind.name().into(),
                expected: kind.name().into(),
            });
        }
        let ty = opts.identity(ty);
        let found = (
            info.type_size,
            info.type_align,
            info.type_hash,
            info.type_tagged,
        );
        if found != (ty.size, ty.align, ty.hash, ty.tagged) {
            return Err(OpenError::TypeMismatch {
                name,
                found: header::describe(
                    info.type_tagged,
                    &info.type_label,
                    info.type_size,
                    info.type_align,
                ),
                expected: ty.describe(),
            });
        }
        Ok(Segment {
            map,
            loc,
            info,
            opened_by: process::current().pid,
        })
    }

    pub(crate) fn open_or_create_kind(
        opts: &Options,
        layout: &Layout,
        init: impl FnOnce(Region<'_>),
    ) -> Result<Segment, OpenOrCreateError> {
        let deadline = clock::deadline_after(opts.open_timeout);
        let mut init = Some(init);
        loop {
            match Segment::create_kind(opts, layout, |r| (init.take().expect("init runs once"))(r))
            {
                Ok(s) => return Ok(s),
                Err(CreateError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            match Segment::open_kind(opts, layout.kind, layout.ty.clone()) {
                Ok(s) => return Ok(s),
                // Removed between our create and open: race again, within the deadline.
                Err(OpenError::NotFound { .. }) if !clock::passed(deadline, Instant::now()) => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The last user removes the name. Only the process that opened the file does this:
        // a forked child shares its parent's open file, lock included, and must not touch it.
        if self.opened_by == process::current().pid
            && !self.info.persistent
            && self.map.try_lock_exclusive().unwrap_or(false)
        {
            // Held exclusively: nobody else uses it, and nobody can start to until the
            // mapping (and with it the lock) is gone.
            let _ = shm::unlink_if_same(&self.loc, self.map.inode());
        }
    }
}

/// How often `create` may find the name taken and then gone again before it gives up.
const RACE_ROUNDS: u32 = 64;

/// What [`Segment::remove_if_unused`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// Nobody used it: the name is gone.
    Removed,
    /// Some process holds it (a live user); left alone.
    InUse,
    /// Nobody uses it, but it is persistent; left alone.
    Persistent,
    /// Not a shmq segment of this layout version; left alone.
    Foreign,
    /// Another process was deciding about it that very moment (it held the use lock
    /// exclusively); ask again.
    Busy,
}

/// [`Segment::remove_if_unused`] at a location.
fn remove_if_unused_at(loc: &Location, persistent_too: bool) -> Result<Removal, SysError> {
    let unused = match shm::lock_unused(loc)? {
        shm::Probe::Unused(u) => u,
        shm::Probe::InUse => return Ok(Removal::InUse),
        shm::Probe::Busy => return Ok(Removal::Busy),
    };
    let mut start = [0u8; HEADER_SIZE];
    let n = unused.read_start(&mut start)?;
    match header::leftover(&start[..n]) {
        // A shmq creator records its pid before anything else: a blank file that names a
        // dead creator is its leftover. One that names none may be any program's new file
        // (every `shm_open` + `ftruncate` looks like that for a moment): never ours to remove.
        header::Leftover::Blank { creator: Some(p) } if process::liveness(p) == Liveness::Dead => {}
        header::Leftover::Blank { creator: Some(_) } => return Ok(Removal::InUse),
        header::Leftover::Blank { creator: None } | header::Leftover::Foreign => {
            return Ok(Removal::Foreign);
        }
        header::Leftover::Ours { persistent } if persistent && !persistent_too => {
            return Ok(Removal::Persistent);
        }
        header::Leftover::Ours { .. } => {}
    }
    // The exclusive lock is held until `unused` drops, after the unlink.
    shm::unlink_if_same(loc, unused.inode())?;
    Ok(Removal::Removed)
}

/// The pause between two looks at a name another process is creating or removing; ends the
/// open if an interrupt this thread watches has fired.
fn nap(name: &str, pause: Duration) -> Result<(), OpenError> {
    if crate::sys::interrupt::pending() {
        return Err(OpenError::Interrupted { name: name.into() });
    }
    std::thread::sleep(pause);
    Ok(())
}

/// Waits until the mapped segment is READY, then validates it. `Ok(None)`: the file is not
/// yet sized as its header says (retry with a fresh mapping).
fn wait_ready(
    map: &Mapping,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Option<SegmentInfo>, OpenError> {
    // SAFETY: `map` is page-aligned, `len` bytes, and outlives this function's region; only
    // atomic accesses are made.
    let region = unsafe { Region::from_raw(map.as_ptr(), map.len()) };
    let Some(word) = header::init_state_word(&region) else {
        return Err(OpenError::NotShmq { name: name.into() });
    };
    let mut next_liveness_check = Instant::now();
    loop {
        let (magic, state, pid, start) =
            header::peek_state(&region).ok_or(OpenError::NotShmq { name: name.into() })?;
        if magic != 0 && magic != header::MAGIC {
            return Err(OpenError::NotShmq { name: name.into() });
        }
        match state {
            header::READY => {
                return header::read_info(&region)
                    .map(Some)
                    .map_err(|e| invalid(name, e));
            }
            header::INITIALIZING => {}
            other => {
                return Err(OpenError::Corrupted {
                    name: name.into(),
                    reason: format!("init state {other}"),
                });
            }
        }
        let now = Instant::now();
        if pid != 0 && now >= next_liveness_check {
            if process::liveness(ProcessId {
                pid,
                start_time: start,
            }) == Liveness::Dead
            {
                return Err(OpenError::Abandoned {
                    name: name.into(),
                    pid,
                });
            }
            next_liveness_check = now + Duration::from_millis(20);
        }
        if clock::passed(deadline, now) {
            return Err(OpenError::InitTimeout {
                name: name.into(),
                pid,
            });
        }
        if futex::wait(
            word,
            header::INITIALIZING,
            clock::earliest(deadline, Some(now + Duration::from_millis(20))),
        ) == futex::Wake::Interrupted
        {
            return Err(OpenError::Interrupted { name: name.into() });
        }
    }
}

fn invalid(name: &str, e: header::Invalid) -> OpenError {
    match e {
        header::Invalid::NotShmq => OpenError::NotShmq { name: name.into() },
        header::Invalid::Version(found) => OpenError::VersionMismatch {
            name: name.into(),
            found,
            expected: header::VERSION,
        },
        header::Invalid::Corrupted(reason) => OpenError::Corrupted {
            name: name.into(),
            reason,
        },
    }
}

fn open_error(name: &str, e: SysError) -> OpenError {
    let name = name.to_owned();
    match e {
        SysError::NotFound => OpenError::NotFound { name },
        SysError::PermissionDenied => OpenError::PermissionDenied { name },
        SysError::SymlinkRefused => OpenError::Symlink { name },
        SysError::AlreadyExists => OpenError::Os {
            name,
            source: std::io::ErrorKind::AlreadyExists.into(),
        },
        SysError::NoSpace => OpenError::Os {
            name,
            source: std::io::Error::other("out of memory mapping segment"),
        },
        SysError::Os(source) => OpenError::Os { name, source },
    }
}

/// A read-only mapping of any shmq segment and its validated header, for tools: nothing is
/// ever written through it (the pages are mapped without write permission).
#[derive(Debug)]
pub(crate) struct ReadOnly {
    map: Mapping,
    loc: Location,
    info: SegmentInfo,
}

impl ReadOnly {
    /// Maps the segment read-only, whatever its kind and even while it is initializing.
    pub(crate) fn open(opts: &Options) -> Result<ReadOnly, OpenError> {
        let loc = opts.location_for_open()?;
        let name = loc.display_name();
        let map = match shm::open(&loc, false) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(OpenError::InitTimeout { name, pid: 0 }),
            Err(e) => return Err(open_error(&name, e)),
        };
        let info = {
            // SAFETY: the mapping is page-aligned and `len` bytes long, and outlives this
            // block; header reads are atomic loads only (the pages are read-only).
            let region = unsafe { Region::from_raw(map.as_ptr(), map.len()) };
            header::read_info(&region).map_err(|e| invalid(&name, e))?
        };
        Ok(ReadOnly { map, loc, info })
    }

    pub(crate) fn info(&self) -> &SegmentInfo {
        &self.info
    }

    pub(crate) fn name(&self) -> String {
        self.loc.display_name()
    }

    /// Device and inode of the mapped file.
    pub(crate) fn inode(&self) -> (u64, u64) {
        self.map.inode()
    }

    /// The payload area. Read it with loads only: a store would fault on the read-only pages.
    pub(crate) fn payload(&self) -> Region<'_> {
        // SAFETY: the mapping is page-aligned, `len` bytes, and valid while `self` lives (the
        // region borrows `self`). It is mapped read-only, and callers only load from it.
        unsafe { payload_of(&self.map, &self.info) }
    }
}

/// The payload area of `map`, as `info` (validated against the mapping) places it.
///
/// # Safety
/// `map` must stay mapped for `'a` and be accessed only in ways its protection allows (a
/// read-only mapping: loads only).
unsafe fn payload_of<'a>(map: &'a Mapping, info: &SegmentInfo) -> Region<'a> {
    // SAFETY: the mapping is page-aligned and `len` bytes long, valid for `'a` (the caller's
    // promise, tied to the borrow of `map`).
    let whole = unsafe { Region::from_raw(map.as_ptr(), map.len()) };
    // Validated at create/open: payload_offset + payload_size <= total_size == map len, and
    // the offset is 64-byte aligned. The fallback keeps this panic-free regardless.
    whole
        .sub(info.payload_offset as usize, info.payload_size as usize)
        .unwrap_or_else(|| whole.sub(0, 0).expect("empty sub-region is always valid"))
}

impl SegmentInfo {
    /// Whether `other` describes the same segment: same kind, creator (pid and start time)
    /// and creation time. Tells a segment from a newer one created under the same name.
    pub fn same_segment(&self, other: &SegmentInfo) -> bool {
        (
            self.kind,
            self.creator_pid,
            self.creator_start,
            self.created_unix_ms,
        ) == (
            other.kind,
            other.creator_pid,
            other.creator_start,
            other.created_unix_ms,
        )
    }

    /// Whether the process that created the segment may still be running: `false` only when
    /// its pid is gone or now belongs to a process started at another time (pid + start time,
    /// so a recycled pid is never mistaken for the creator). Reads `/proc`.
    pub fn creator_alive(&self) -> bool {
        self.creator_pid != 0
            && process::liveness(ProcessId {
                pid: self.creator_pid,
                start_time: self.creator_start,
            }) == Liveness::Alive
    }

    /// Validates `image`, the bytes of a whole segment file, as a shmq header. For tools and
    /// fuzzing: never panics and never reads outside `image`.
    ///
    /// # Errors
    /// [`OpenError`] (named `"image"`) saying what check failed.
    pub fn parse(image: &[u8]) -> Result<SegmentInfo, OpenError> {
        let words: Box<[std::sync::atomic::AtomicU64]> = image
            .chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                std::sync::atomic::AtomicU64::new(u64::from_ne_bytes(w))
            })
            .collect();
        let region = Region::from_words(&words);
        // The file is `image.len()` bytes, not the rounded-up word count.
        let region = region.sub(0, image.len()).ok_or(OpenError::NotShmq {
            name: "image".into(),
        })?;
        header::read_info(&region).map_err(|e| invalid("image", e))
    }
}
