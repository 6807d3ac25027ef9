//! The header every shmq segment starts with: layout, creation and validation.
//!
//! Layout (all little-endian host words, offsets in bytes, pinned by the asserts below):
//!
//! | offset | field            | meaning                                               |
//! |-------:|------------------|-------------------------------------------------------|
//! | 0      | magic            | `MAGIC`; written first, before anything but the creator |
//! | 8      | version          | `VERSION`                                             |
//! | 12     | kind             | [`Kind`] code                                         |
//! | 16     | init_state       | `INITIALIZING` → `READY` (futex word)                 |
//! | 20     | header_size      | `HEADER_SIZE`                                         |
//! | 24     | total_size       | bytes in the whole segment (= file size)              |
//! | 32     | payload_offset   | where the kind's area starts (64-byte aligned)        |
//! | 40     | payload_size     | bytes in the kind's area                              |
//! | 48     | type_size        | `size_of` the payload type                            |
//! | 52     | type_align       | `align_of` the payload type                           |
//! | 56     | type_hash        | layout fingerprint, or FNV-1a of the tag (`crate::pod`) |
//! | 64     | param0, param1   | kind-specific (element count, maximum, ...)           |
//! | 80     | creator_pid      | creator process                                       |
//! | 84     | flags            | `FLAG_PERSISTENT`, `FLAG_TAGGED`; other bits 0        |
//! | 88     | creator_start    | creator start time (clock ticks since boot)           |
//! | 96     | created_unix_ms  | wall-clock creation time                              |
//! | 104    | type_label       | 128 bytes: the tag or layout text, NUL padded, cut     |
//! | 232    | reserved         | zero, up to 256                                       |
//!
//! Everything is an atomic word: a hostile peer may rewrite the header at any time, so fields
//! are copied out once with atomic loads into a [`SegmentInfo`], validated there, and only
//! that local copy is used afterwards.

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::region::Region;

/// "SHMQSEG\x01" as a little-endian word.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMQSEG\x01");
/// Bumped whenever any layout changes incompatibly. 2: the use lock (processes of version 1
/// do not take it, so they must never share a segment with version 2) and `flags`. 3: type
/// identity by layout fingerprint or tag (was: a hash of `std::any::type_name`), the label.
pub(crate) const VERSION: u32 = 3;

/// `flags`: the segment is never removed automatically (see `Options::persistent`).
pub(crate) const FLAG_PERSISTENT: u32 = 1;
/// `flags`: `type_hash` is the hash of a tag (and `type_label` the tag), not a fingerprint.
pub(crate) const FLAG_TAGGED: u32 = 2;
/// Bytes reserved for the header; payloads start at or after it.
pub(crate) const HEADER_SIZE: usize = 256;

/// `init_state`: the creator is still writing the segment.
pub(crate) const INITIALIZING: u32 = 0;
/// `init_state`: the segment is complete and may be used.
pub(crate) const READY: u32 = 1;

const TYPE_LABEL_LEN: usize = 128;

#[repr(C)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) kind: AtomicU32,
    pub(crate) init_state: AtomicU32,
    pub(crate) header_size: AtomicU32,
    pub(crate) total_size: AtomicU64,
    pub(crate) payload_offset: AtomicU64,
    pub(crate) payload_size: AtomicU64,
    pub(crate) type_size: AtomicU32,
    pub(crate) type_align: AtomicU32,
    pub(crate) type_hash: AtomicU64,
    pub(crate) param0: AtomicU64,
    pub(crate) param1: AtomicU64,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) flags: AtomicU32,
    pub(crate) creator_start: AtomicU64,
    pub(crate) created_unix_ms: AtomicU64,
    pub(crate) type_label: [AtomicU64; TYPE_LABEL_LEN / 8],
    pub(crate) reserved: [AtomicU64; 3],
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(offset_of!(Header, init_state) == 16);
const _: () = assert!(offset_of!(Header, param0) == 64);
const _: () = assert!(offset_of!(Header, creator_pid) == 80);
const _: () = assert!(offset_of!(Header, flags) == 84);
const _: () = assert!(offset_of!(Header, created_unix_ms) == 96);
const _: () = assert!(offset_of!(Header, type_label) == 104);

/// What a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Raw bytes ([`Segment`](crate::Segment)).
    Raw,
    /// A [`Value`](crate::Value).
    Value,
    /// An [`Array`](crate::Array).
    Array,
    /// A [`Mutex`](crate::Mutex) (or [`Lock`](crate::Lock)).
    Mutex,
    /// A [`Semaphore`](crate::Semaphore).
    Semaphore,
    /// An [`Event`](crate::Event).
    Event,
    /// A single-producer single-consumer [`Ring`](crate::Ring) (also a one-way pipe).
    Ring,
    /// A duplex [`Pipe`](crate::Pipe): two rings.
    Pipe,
    /// A multi-producer multi-consumer [`Queue`](crate::Queue).
    Queue,
    /// A [`ByteQueue`](crate::ByteQueue) of variable-size messages.
    ByteQueue,
    /// A [`JoinableQueue`](crate::JoinableQueue).
    JoinableQueue,
    /// A [`PriorityQueue`](crate::PriorityQueue).
    PriorityQueue,
    /// A broadcast [`Topic`](crate::Topic).
    Topic,
}

impl Kind {
    pub(crate) const fn code(self) -> u32 {
        match self {
            Kind::Raw => 1,
            Kind::Value => 2,
            Kind::Array => 3,
            Kind::Mutex => 4,
            Kind::Semaphore => 5,
            Kind::Event => 6,
            Kind::Ring => 7,
            Kind::Pipe => 8,
            Kind::Queue => 9,
            Kind::ByteQueue => 10,
            Kind::JoinableQueue => 11,
            Kind::PriorityQueue => 12,
            Kind::Topic => 13,
        }
    }

    /// Every kind, in code order (`shmq ls --kind` offers these).
    pub const ALL: &'static [Kind] = &[
        Kind::Raw,
        Kind::Value,
        Kind::Array,
        Kind::Mutex,
        Kind::Semaphore,
        Kind::Event,
        Kind::Ring,
        Kind::Pipe,
        Kind::Queue,
        Kind::ByteQueue,
        Kind::JoinableQueue,
        Kind::PriorityQueue,
        Kind::Topic,
    ];

    pub(crate) fn from_code(code: u32) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// Lower-case name, as `shmq ls` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Raw => "segment",
            Kind::Value => "value",
            Kind::Array => "array",
            Kind::Mutex => "mutex",
            Kind::Semaphore => "semaphore",
            Kind::Event => "event",
            Kind::Ring => "ring",
            Kind::Pipe => "pipe",
            Kind::Queue => "queue",
            Kind::ByteQueue => "byte-queue",
            Kind::JoinableQueue => "joinable-queue",
            Kind::PriorityQueue => "priority-queue",
            Kind::Topic => "topic",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A payload type's identity: size, alignment, and its layout fingerprint or tag (see
/// `crate::pod`), with the text that names it in errors and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeInfo {
    pub(crate) size: u32,
    pub(crate) align: u32,
    /// The fingerprint, or FNV-1a of the tag.
    pub(crate) hash: u64,
    /// Whether `hash` and `label` are a tag's.
    pub(crate) tagged: bool,
    /// The layout text or the tag.
    pub(crate) label: String,
}

impl TypeInfo {
    /// A type known by its layout: `hash` is the fingerprint of the layout text `label`.
    pub(crate) fn layout(size: u32, align: u32, hash: u64, label: String) -> TypeInfo {
        TypeInfo {
            size,
            align,
            hash,
            tagged: false,
            label,
        }
    }

    /// A type known by a tag.
    pub(crate) fn tagged(size: u32, align: u32, tag: String) -> TypeInfo {
        TypeInfo {
            size,
            align,
            hash: fnv1a(FNV_OFFSET, tag.as_bytes()),
            tagged: true,
            label: tag,
        }
    }

    /// No payload type (raw segments, semaphores, events, byte rings and queues).
    pub(crate) const NONE: TypeInfo = TypeInfo {
        size: 0,
        align: 1,
        hash: 0,
        tagged: false,
        label: String::new(),
    };

    /// How errors name it: `layout {..} (size 8, align 8)` or `tag "x" (...)`.
    pub(crate) fn describe(&self) -> String {
        describe(self.tagged, &self.label, self.size, self.align)
    }
}

pub(crate) fn describe(tagged: bool, label: &str, size: u32, align: u32) -> String {
    match (tagged, label.is_empty()) {
        (true, _) => format!("tag {label:?} (size {size}, align {align})"),
        (false, true) => format!("no payload type (size {size}, align {align})"),
        (false, false) => format!("layout {label} (size {size}, align {align})"),
    }
}

/// FNV-1a's 64-bit offset basis.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an FNV-1a (64-bit) hash `h` over `bytes`.
pub(crate) const fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        h = (h ^ bytes[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// A validated copy of a segment's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// What the segment holds.
    pub kind: Kind,
    /// Layout version.
    pub version: u32,
    /// Whether the creator finished initializing it.
    pub ready: bool,
    /// Bytes in the whole segment.
    pub total_size: u64,
    /// Offset of the kind-specific area.
    pub payload_offset: u64,
    /// Bytes in the kind-specific area.
    pub payload_size: u64,
    /// Size of the payload type in bytes.
    pub type_size: u32,
    /// Alignment of the payload type.
    pub type_align: u32,
    /// The payload type's layout fingerprint, or the hash of its tag (see [`crate::pod`]).
    pub type_hash: u64,
    /// Whether the type is identified by a tag (`type_label` is the tag).
    pub type_tagged: bool,
    /// The payload type's layout text or tag, as the creator recorded it (cut at 128 bytes);
    /// for a primitive the layout text is its name (`u64`); empty when there is none.
    pub type_label: String,
    /// First kind-specific parameter (element count, maximum, ...).
    pub param0: u64,
    /// Second kind-specific parameter.
    pub param1: u64,
    /// The creator's pid.
    pub creator_pid: u32,
    /// The creator's start time (clock ticks since boot; 0 if unknown).
    pub creator_start: u64,
    /// When the segment was created, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Whether it was created persistent: never removed automatically, only by an explicit
    /// [`Segment::unlink`](crate::Segment::unlink) or `shmq rm`/`shmq gc --persistent`.
    pub persistent: bool,
}

/// Why a header is invalid; turned into an [`OpenError`](crate::OpenError) with the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    NotShmq,
    Version(u32),
    Corrupted(String),
}

fn header_of<'a>(region: &Region<'a>) -> Option<&'a Header> {
    if region.len() < HEADER_SIZE {
        return None;
    }
    // SAFETY: the region starts 8-aligned (Region's invariant, Header's alignment) and holds
    // at least HEADER_SIZE = size_of::<Header>() bytes valid for `'a`; the pointer comes from
    // the region's base, so its provenance covers all of them. Header is all atomics, which
    // other processes may change concurrently: that is allowed.
    Some(unsafe { region.as_ptr().cast::<Header>().as_ref() })
}

/// Reads the creator's pid/start (valid as soon as the magic is there) and the init state.
pub(crate) fn peek_state(region: &Region<'_>) -> Option<(u64, u32, u32, u64)> {
    let h = header_of(region)?;
    // Acquire: pairs with the Release store of READY in `publish_ready`.
    let state = h.init_state.load(Ordering::Acquire);
    Some((
        h.magic.load(Ordering::Relaxed),
        state,
        h.creator_pid.load(Ordering::Relaxed),
        h.creator_start.load(Ordering::Relaxed),
    ))
}

pub(crate) fn init_state_word<'a>(region: &Region<'a>) -> Option<&'a AtomicU32> {
    header_of(region).map(|h| &h.init_state)
}

/// Copies the header out and checks it against itself and the mapping's length.
pub(crate) fn read_info(region: &Region<'_>) -> Result<SegmentInfo, Invalid> {
    let h = header_of(region).ok_or(Invalid::NotShmq)?;
    if h.magic.load(Ordering::Relaxed) != MAGIC {
        return Err(Invalid::NotShmq);
    }
    let version = h.version.load(Ordering::Relaxed);
    if version != VERSION {
        return Err(Invalid::Version(version));
    }
    let bad = |s: String| Err(Invalid::Corrupted(s));
    let kind_code = h.kind.load(Ordering::Relaxed);
    let Some(kind) = Kind::from_code(kind_code) else {
        return bad(format!("unknown kind code {kind_code}"));
    };
    let header_size = h.header_size.load(Ordering::Relaxed);
    if header_size as usize != HEADER_SIZE {
        return bad(format!("header size {header_size}, expected {HEADER_SIZE}"));
    }
    let info = SegmentInfo {
        kind,
        version,
        // Relaxed, then a fence: tools map segments read-only, and only Relaxed atomic loads
        // are defined on read-only pages.
        ready: {
            let ready = h.init_state.load(Ordering::Relaxed) == READY;
            std::sync::atomic::fence(Ordering::Acquire);
            ready
        },
        total_size: h.total_size.load(Ordering::Relaxed),
        payload_offset: h.payload_offset.load(Ordering::Relaxed),
        payload_size: h.payload_size.load(Ordering::Relaxed),
        type_size: h.type_size.load(Ordering::Relaxed),
        type_align: h.type_align.load(Ordering::Relaxed),
        type_hash: h.type_hash.load(Ordering::Relaxed),
        type_tagged: h.flags.load(Ordering::Relaxed) & FLAG_TAGGED != 0,
        type_label: read_type_label(h),
        param0: h.param0.load(Ordering::Relaxed),
        param1: h.param1.load(Ordering::Relaxed),
        creator_pid: h.creator_pid.load(Ordering::Relaxed),
        creator_start: h.creator_start.load(Ordering::Relaxed),
        created_unix_ms: h.created_unix_ms.load(Ordering::Relaxed),
        persistent: h.flags.load(Ordering::Relaxed) & FLAG_PERSISTENT != 0,
    };
    if info.total_size != region.len() as u64 {
        return bad(format!(
            "header says {} bytes, the file has {}",
            info.total_size,
            region.len()
        ));
    }
    if info.payload_offset < HEADER_SIZE as u64 || info.payload_offset % 64 != 0 {
        return bad(format!(
            "payload offset {} is inside the header or misaligned",
            info.payload_offset
        ));
    }
    match info.payload_offset.checked_add(info.payload_size) {
        Some(end) if end <= info.total_size => {}
        _ => {
            return bad(format!(
                "payload {}+{} runs past the segment's {} bytes",
                info.payload_offset, info.payload_size, info.total_size
            ));
        }
    }
    if !info.type_align.is_power_of_two() || info.type_align > 4096 {
        return bad(format!(
            "payload type alignment {} is not a power of two up to 4096",
            info.type_align
        ));
    }
    Ok(info)
}

fn read_type_label(h: &Header) -> String {
    let mut bytes = Vec::with_capacity(TYPE_LABEL_LEN);
    for w in &h.type_label {
        bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What a creator writes.
pub(crate) struct NewHeader {
    pub(crate) kind: Kind,
    /// Where the payload starts: `HEADER_SIZE` or more, a multiple of 64.
    pub(crate) payload_offset: u64,
    pub(crate) ty: TypeInfo,
    pub(crate) payload_size: u64,
    pub(crate) param0: u64,
    pub(crate) param1: u64,
    pub(crate) creator_pid: u32,
    pub(crate) creator_start: u64,
    pub(crate) created_unix_ms: u64,
    pub(crate) persistent: bool,
}

/// Fills a fresh (zeroed) segment's header, leaving it `INITIALIZING`.
/// Returns `None` if the region is too small for the header plus payload.
pub(crate) fn write_header(region: &Region<'_>, new: &NewHeader) -> Option<()> {
    let h = header_of(region)?;
    let total = region.len() as u64;
    if new.payload_offset < HEADER_SIZE as u64
        || new.payload_offset.checked_add(new.payload_size)? > total
    {
        return None;
    }
    h.creator_pid.store(new.creator_pid, Ordering::Relaxed);
    h.creator_start.store(new.creator_start, Ordering::Relaxed);
    // Version and flags before the magic, so a creator killed right after it leaves a file
    // that is recognisably ours (and as persistent as asked).
    h.version.store(VERSION, Ordering::Relaxed);
    let persistent = if new.persistent { FLAG_PERSISTENT } else { 0 };
    let tagged = if new.ty.tagged { FLAG_TAGGED } else { 0 };
    h.flags.store(persistent | tagged, Ordering::Relaxed);
    // The magic goes in early so an opener can tell "shmq, initializing" from a foreign file.
    h.magic.store(MAGIC, Ordering::Release);
    h.kind.store(new.kind.code(), Ordering::Relaxed);
    h.header_size.store(HEADER_SIZE as u32, Ordering::Relaxed);
    h.total_size.store(total, Ordering::Relaxed);
    h.payload_offset
        .store(new.payload_offset, Ordering::Relaxed);
    h.payload_size.store(new.payload_size, Ordering::Relaxed);
    h.type_size.store(new.ty.size, Ordering::Relaxed);
    h.type_align.store(new.ty.align, Ordering::Relaxed);
    h.type_hash.store(new.ty.hash, Ordering::Relaxed);
    h.param0.store(new.param0, Ordering::Relaxed);
    h.param1.store(new.param1, Ordering::Relaxed);
    h.created_unix_ms
        .store(new.created_unix_ms, Ordering::Relaxed);
    let mut label = [0u8; TYPE_LABEL_LEN];
    let n = new.ty.label.len().min(TYPE_LABEL_LEN);
    label[..n].copy_from_slice(&new.ty.label.as_bytes()[..n]);
    for (w, chunk) in h.type_label.iter().zip(label.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
    Some(())
}

/// The creator's pid and start time as the header holds them (`(offset, bytes)`), for the
/// file's first write: before anything else, so a file whose creator died at once can be
/// recognised as a shmq leftover.
pub(crate) fn creator_stamp(pid: u32, start: u64) -> (u64, [u8; 16]) {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&pid.to_le_bytes());
    b[8..].copy_from_slice(&start.to_le_bytes());
    const _: () = assert!(offset_of!(Header, creator_start) == offset_of!(Header, creator_pid) + 8);
    (offset_of!(Header, creator_pid) as u64, b)
}

/// What the first bytes of a file say about it, for deciding whether a leftover file at a
/// name may be replaced. Reads plain bytes (from `pread`), never a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftover {
    /// No magic yet: a creator died before writing its header (or the file is empty, or
    /// not shmq at all). `creator`: the pid and start time a shmq creator writes first.
    Blank {
        creator: Option<crate::sys::process::ProcessId>,
    },
    /// A segment of this layout version; `persistent` from its flags.
    Ours { persistent: bool },
    /// Another shmq layout version, or not shmq at all: never replaced.
    Foreign,
}

/// Classifies the first bytes of a file (`start` may be shorter than the header).
pub(crate) fn leftover(start: &[u8]) -> Leftover {
    let word = |at: usize, n: usize| start.get(at..at + n);
    let magic = word(0, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    // A creator writes its pid and start time (offsets 80..96) before the magic, so a blank
    // file may hold those and nothing else.
    let creator = offset_of!(Header, creator_pid)..offset_of!(Header, created_unix_ms);
    let blank = start
        .iter()
        .enumerate()
        .all(|(i, &b)| b == 0 || creator.contains(&i));
    match magic {
        None | Some(0) if blank => {
            let u32_at = |at: usize| {
                word(at, 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
            };
            let u64_at = |at: usize| {
                word(at, 8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
            };
            let pid = u32_at(offset_of!(Header, creator_pid)).filter(|&p| p != 0);
            let start = u64_at(offset_of!(Header, creator_start)).unwrap_or(0);
            Leftover::Blank {
                creator: pid.map(|pid| crate::sys::process::ProcessId {
                    pid,
                    start_time: start,
                }),
            }
        }
        Some(MAGIC) => {
            let u32_at =
                |at: usize| word(at, 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
            match (u32_at(8), u32_at(offset_of!(Header, flags))) {
                (Some(VERSION), Some(flags)) => Leftover::Ours {
                    persistent: flags & FLAG_PERSISTENT != 0,
                },
                _ => Leftover::Foreign,
            }
        }
        _ => Leftover::Foreign,
    }
}

/// Marks the segment READY; everything written before is visible to openers that see it.
pub(crate) fn publish_ready(region: &Region<'_>) {
    if let Some(h) = header_of(region) {
        // Release: pairs with the Acquire load of init_state in `peek_state` / `read_info`.
        h.init_state.store(READY, Ordering::Release);
        crate::sys::futex::wake_all(&h.init_state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;

    fn sample(region: &Region<'_>) {
        write_header(
            region,
            &NewHeader {
                kind: Kind::Value,
                payload_offset: HEADER_SIZE as u64,
                ty: TypeInfo::layout(8, 8, fnv1a(FNV_OFFSET, b"u64"), "u64".into()),
                payload_size: 64,
                param0: 1,
                param1: 2,
                creator_pid: 42,
                creator_start: 7,
                created_unix_ms: 99,
                persistent: false,
            },
        )
        .unwrap();
    }

    #[test]
    fn round_trip() {
        let buf = heap(HEADER_SIZE + 64);
        let r = Region::from_words(&buf);
        sample(&r);
        let info = read_info(&r).unwrap();
        assert!(!info.ready);
        publish_ready(&r);
        let info = read_info(&r).unwrap();
        assert!(info.ready);
        assert_eq!(info.kind, Kind::Value);
        assert_eq!(info.type_size, 8);
        assert_eq!(info.type_label, "u64");
        assert!(!info.type_tagged);
        assert_eq!(
            info.type_hash,
            0x4d35_d319_3e8d_66f2 /* FNV-1a of "u64" */
        );
        assert_eq!(
            (
                info.param0,
                info.param1,
                info.creator_pid,
                info.creator_start
            ),
            (1, 2, 42, 7)
        );
    }

    #[test]
    fn rejects_each_broken_field() {
        let buf = heap(HEADER_SIZE + 64);
        let r = Region::from_words(&buf);
        assert_eq!(read_info(&r), Err(Invalid::NotShmq));
        sample(&r);
        let h = header_of(&r).unwrap();
        h.version.store(9, Ordering::Relaxed);
        assert_eq!(read_info(&r), Err(Invalid::Version(9)));
        h.version.store(VERSION, Ordering::Relaxed);
        for (field, value) in [
            (&h.payload_size, u64::MAX - 100),
            (&h.payload_offset, 3),
            (&h.total_size, 1 << 40),
        ] {
            let old = field.swap(value, Ordering::Relaxed);
            assert!(matches!(read_info(&r), Err(Invalid::Corrupted(_))));
            field.store(old, Ordering::Relaxed);
        }
        h.kind.store(999, Ordering::Relaxed);
        assert!(matches!(read_info(&r), Err(Invalid::Corrupted(_))));
        h.kind.store(Kind::Value.code(), Ordering::Relaxed);
        h.type_align.store(3, Ordering::Relaxed);
        assert!(matches!(read_info(&r), Err(Invalid::Corrupted(_))));
    }

    #[test]
    fn too_small_region_is_not_shmq() {
        let buf = heap(64);
        assert_eq!(read_info(&Region::from_words(&buf)), Err(Invalid::NotShmq));
    }
}
