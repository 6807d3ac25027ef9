//! `PriorityQueue<T>`: a bounded binary heap in shared memory under a robust mutex.
//!
//! Layout of the payload (offsets in bytes):
//!
//! | offset  | what                                                             |
//! |--------:|------------------------------------------------------------------|
//! | 0       | robust mutex (16 bytes)                                          |
//! | 64      | `len`: items in the heap                                         |
//! | 72      | `free_len`: entries in the free-slot stack                       |
//! | 80      | `closed`                                                         |
//! | 96..112 | items bell + waiters, space bell + waiters                       |
//! | 128     | the participant table (`ring::participants`): who is attached    |
//! | 4288    | `full[cap]`: one u32 per item slot, 1 while it holds an item     |
//! | ...     | `heap[cap]`: u32 slot indices in heap order (smallest first)     |
//! | ...     | `free[cap]`: u32 stack of empty slot indices                     |
//! | ...     | `items[cap]`: the items, 8-byte aligned                          |
//!
//! `full` is the truth; `heap`, `len`, `free` and `free_len` are derived from it. A put
//! writes the item into a free slot and then sets its `full` flag (the commit); a get copies
//! the smallest item out and then clears its flag. Everything happens under the mutex, so when
//! a holder dies mid-operation, the next process gets the lock with "owner died" and rebuilds
//! the derived parts from `full`: a put killed before its commit leaves nothing, after it
//! leaves its (whole) item; a get killed before clearing the flag leaves the item in the
//! queue, after it the item counts as taken. Indices read from the segment are checked; an
//! inconsistent heap is rebuilt and the call reports [`PutError::Corrupted`] /
//! [`GetError::Corrupted`].

use std::cmp::Ordering as Cmp;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::api::queue::{Failed, Place, Side, other_side_gone};
use crate::api::{Pod, Waiting, ensure};
use crate::error::{CreateError, GetError, OpenError, OpenOrCreateError, PutError};
use crate::region::Region;
use crate::ring::participants::{self, Participants};
use crate::ring::wait::{self, Counted, Ended, WaitMode};
use crate::segment::{Kind, Layout, Options, Segment};
use crate::sync::mutex::{Locked, RawMutex, Stopped};

const LEN: usize = 64;
const FREE_LEN: usize = 72;
const CLOSED: usize = 80;
const ITEMS_BELL: usize = 96;
const ITEMS_WAITERS: usize = 100;
const SPACE_BELL: usize = 104;
const SPACE_WAITERS: usize = 108;
const TABLE: usize = 128;
const FLAGS: usize = TABLE + participants::SIZE;
const _: () = assert!(FLAGS == 4288);

/// Largest capacity (items).
const MAX_CAPACITY: usize = 1 << 24;

/// Where each array starts, for `cap` items of `stride` bytes.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    cap: usize,
    stride: usize,
    heap: usize,
    free: usize,
    items: usize,
    size: usize,
}

impl Geometry {
    fn new(cap: usize, stride: usize) -> Option<Geometry> {
        if cap == 0 || cap > MAX_CAPACITY || stride == 0 || stride % 8 != 0 {
            return None;
        }
        let words = (cap * 4).div_ceil(8) * 8;
        let heap = FLAGS + words;
        let free = heap + words;
        let items = free + words;
        let size = items.checked_add(cap.checked_mul(stride)?)?;
        Some(Geometry {
            cap,
            stride,
            heap,
            free,
            items,
            size,
        })
    }
}

fn stride_of<T>() -> usize {
    std::mem::size_of::<T>().max(1).div_ceil(8) * 8
}

/// A priority queue read without the lock and without changing anything (relaxed loads
/// only), for [`crate::survey`]: `(capacity, len, closed, lock holder, the items at the first
/// `peek` heap positions — the smallest first, the rest in heap order — cut at `bytes`)`.
pub(crate) fn view(
    payload: Region<'_>,
    info: &crate::segment::SegmentInfo,
    peek: usize,
    bytes: usize,
) -> Result<PriorityView, String> {
    let stride = (info.type_size.max(1) as usize).div_ceil(8) * 8;
    let g = usize::try_from(info.param0)
        .ok()
        .and_then(|c| Geometry::new(c, stride))
        .filter(|g| g.size <= payload.len())
        .ok_or_else(|| {
            format!(
                "priority queue geometry: capacity {}, item size {}, {} bytes",
                info.param0,
                info.type_size,
                payload.len()
            )
        })?;
    let load = |off| payload.u64_at(off).map(|w| w.load(Ordering::Relaxed));
    let load32 = |off| payload.u32_at(off).map_or(0, |w| w.load(Ordering::Relaxed));
    let len = load(LEN).unwrap_or(0);
    let mut v = PriorityView {
        cap: g.cap as u64,
        len,
        closed: load(CLOSED).unwrap_or(0) != 0,
        holder: RawMutex::at(payload, 0).and_then(|m| m.holder_process()),
        contended: RawMutex::at(payload, 0).is_some_and(|m| m.contended()),
        items_waiters: load32(ITEMS_WAITERS),
        space_waiters: load32(SPACE_WAITERS),
        participants: payload
            .sub(TABLE, participants::SIZE)
            .and_then(Participants::new)
            .map(|t| t.list())
            .unwrap_or_default(),
        items: Vec::new(),
        problem: None,
    };
    if len > g.cap as u64 {
        v.problem = Some(format!("length {len} exceeds capacity {}", g.cap));
        return Ok(v);
    }
    for i in 0..(len as usize).min(peek) {
        let slot = payload
            .u32_at(g.heap + i * 4)
            .map_or(u32::MAX, |w| w.load(Ordering::Relaxed)) as usize;
        if slot >= g.cap {
            v.problem = Some(format!("heap entry {i} names slot {slot} of {}", g.cap));
            break;
        }
        let mut buf = vec![0; (info.type_size as usize).min(bytes)];
        if payload.read(g.items + slot * g.stride, &mut buf).is_none() {
            v.problem = Some(format!("slot {slot} lies outside the queue"));
            break;
        }
        v.items.push(buf);
    }
    Ok(v)
}

/// What [`view`] found.
pub(crate) struct PriorityView {
    pub(crate) cap: u64,
    pub(crate) len: u64,
    pub(crate) closed: bool,
    pub(crate) holder: Option<crate::sys::process::ProcessId>,
    /// Whether the lock word says somebody may sleep on it.
    pub(crate) contended: bool,
    /// Sleepers announced on the items and space bells (hints).
    pub(crate) items_waiters: u32,
    pub(crate) space_waiters: u32,
    /// `(entry index, process, being reclaimed, sides)` of every recorded participant.
    pub(crate) participants: Vec<(usize, crate::sys::process::ProcessId, bool, u32)>,
    pub(crate) items: Vec<Vec<u8>>,
    pub(crate) problem: Option<String>,
}

/// The heap over a region, used under the mutex.
struct Heap<'a, T> {
    r: Region<'a>,
    g: Geometry,
    _t: PhantomData<fn(T) -> T>,
}

/// The derived structure disagrees with itself.
struct Inconsistent(String);

impl<'a, T: Pod + Ord> Heap<'a, T> {
    fn word(&self, offset: usize) -> &'a AtomicU64 {
        self.r
            .u64_at(offset)
            .expect("control words inside (geometry checked)")
    }

    fn u32(&self, offset: usize) -> &'a AtomicU32 {
        self.r
            .u32_at(offset)
            .expect("arrays inside (geometry checked)")
    }

    fn flag(&self, slot: usize) -> &'a AtomicU32 {
        self.u32(FLAGS + slot * 4)
    }

    fn heap_at(&self, i: usize) -> &'a AtomicU32 {
        self.u32(self.g.heap + i * 4)
    }

    fn free_at(&self, i: usize) -> &'a AtomicU32 {
        self.u32(self.g.free + i * 4)
    }

    fn count(&self, offset: usize) -> Result<usize, Inconsistent> {
        let n = self.word(offset).load(Ordering::Relaxed);
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.g.cap)
            .ok_or_else(|| Inconsistent(format!("count {n} exceeds capacity {}", self.g.cap)))
    }

    fn slot_in(&self, at: &AtomicU32) -> Result<usize, Inconsistent> {
        let s = at.load(Ordering::Relaxed) as usize;
        if s < self.g.cap {
            Ok(s)
        } else {
            Err(Inconsistent(format!(
                "slot index {s} exceeds capacity {}",
                self.g.cap
            )))
        }
    }

    fn item(&self, slot: usize) -> T {
        let mut v = T::new_zeroed();
        self.r
            .read(self.g.items + slot * self.g.stride, v.as_mut_bytes())
            .expect("item slots inside (geometry checked)");
        v
    }

    fn less(&self, a: usize, b: usize) -> Result<bool, Inconsistent> {
        let (x, y) = (
            self.slot_in(self.heap_at(a))?,
            self.slot_in(self.heap_at(b))?,
        );
        Ok(self.item(x).cmp(&self.item(y)) == Cmp::Less)
    }

    fn swap(&self, a: usize, b: usize) {
        let (x, y) = (self.heap_at(a), self.heap_at(b));
        let t = x.load(Ordering::Relaxed);
        x.store(y.load(Ordering::Relaxed), Ordering::Relaxed);
        y.store(t, Ordering::Relaxed);
    }

    fn sift_up(&self, mut i: usize) -> Result<(), Inconsistent> {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent)? {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
        Ok(())
    }

    fn sift_down(&self, mut i: usize, n: usize) -> Result<(), Inconsistent> {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.less(l, m)? {
                m = l;
            }
            if r < n && self.less(r, m)? {
                m = r;
            }
            if m == i {
                return Ok(());
            }
            self.swap(i, m);
            i = m;
        }
    }

    /// Rebuilds `heap`, `len`, `free`, `free_len` from the `full` flags.
    fn rebuild(&self) {
        let (mut n, mut f) = (0usize, 0usize);
        for slot in 0..self.g.cap {
            let full = self.flag(slot).load(Ordering::Relaxed);
            if full == 1 {
                self.heap_at(n).store(slot as u32, Ordering::Relaxed);
                n += 1;
            } else {
                self.flag(slot).store(0, Ordering::Relaxed);
                self.free_at(f).store(slot as u32, Ordering::Relaxed);
                f += 1;
            }
        }
        self.word(LEN).store(n as u64, Ordering::Relaxed);
        self.word(FREE_LEN).store(f as u64, Ordering::Relaxed);
        for i in (0..n / 2).rev() {
            // Indices were just written in range, so this cannot fail.
            let _ = self.sift_down(i, n);
        }
    }

    fn push(&self, v: &T) -> Result<bool, Inconsistent> {
        let n = self.count(LEN)?;
        let f = self.count(FREE_LEN)?;
        if n >= self.g.cap {
            return Ok(false);
        }
        if f == 0 || n + f != self.g.cap {
            return Err(Inconsistent(format!(
                "{n} items and {f} free slots in a queue of {}",
                self.g.cap
            )));
        }
        let slot = self.slot_in(self.free_at(f - 1))?;
        if self.flag(slot).load(Ordering::Relaxed) != 0 {
            return Err(Inconsistent(format!("free slot {slot} is marked full")));
        }
        self.r
            .write(self.g.items + slot * self.g.stride, v.as_bytes())
            .expect("item slots inside (geometry checked)");
        self.flag(slot).store(1, Ordering::Release); // the commit
        self.word(FREE_LEN).store(f as u64 - 1, Ordering::Relaxed);
        self.heap_at(n).store(slot as u32, Ordering::Relaxed);
        self.word(LEN).store(n as u64 + 1, Ordering::Relaxed);
        if self.sift_up(n).is_err() {
            // Committed: the item is in, whatever the heap words say; rebuilding keeps it.
            self.rebuild();
        }
        Ok(true)
    }

    fn pop(&self) -> Result<Option<T>, Inconsistent> {
        let n = self.count(LEN)?;
        let f = self.count(FREE_LEN)?;
        if n == 0 {
            return Ok(None);
        }
        if n + f != self.g.cap {
            return Err(Inconsistent(format!(
                "{n} items and {f} free slots in a queue of {}",
                self.g.cap
            )));
        }
        let slot = self.slot_in(self.heap_at(0))?;
        if self.flag(slot).load(Ordering::Relaxed) != 1 {
            return Err(Inconsistent(format!("heap names empty slot {slot}")));
        }
        let v = self.item(slot);
        self.flag(slot).store(0, Ordering::Release); // the commit: taken
        let last = self.heap_at(n - 1).load(Ordering::Relaxed);
        self.word(LEN).store(n as u64 - 1, Ordering::Relaxed);
        self.free_at(f).store(slot as u32, Ordering::Relaxed);
        self.word(FREE_LEN).store(f as u64 + 1, Ordering::Relaxed);
        if n > 1 {
            self.heap_at(0).store(last, Ordering::Relaxed);
            if self.sift_down(0, n - 1).is_err() {
                // Taken (flag cleared): rebuilding from the flags leaves it out.
                self.rebuild();
            }
        }
        Ok(Some(v))
    }
}

/// A named, bounded priority queue in shared memory: any number of processes put and get,
/// and `get` returns the smallest item (by `Ord`). Python's `queue.PriorityQueue` /
/// `multiprocessing` managers' priority queue, across processes.
///
/// A binary heap under a robust mutex: a process killed while holding it never wedges the
/// queue (the next one rebuilds the heap from the per-slot "full" flags, so a killed put
/// leaves its item whole or not at all). Blocking calls wait on futexes with waiter counts;
/// every one has a `_timeout` form. Equal items come out in no particular order.
///
/// ```
/// #[derive(shmq::Pod, Debug, PartialEq, Eq, PartialOrd, Ord)]
/// #[repr(C)]
/// struct Job { priority: u32, id: u32 }
///
/// let name = format!("doc-priority-{}", std::process::id());
/// let q = shmq::PriorityQueue::<Job>::create(name.as_str(), 10)?;
/// q.put(Job { priority: 3, id: 1 })?;
/// q.put(Job { priority: 1, id: 2 })?;
/// q.put(Job { priority: 2, id: 3 })?;
/// assert_eq!(q.get()?.id, 2);
/// assert_eq!(q.get()?.id, 3);
/// assert_eq!(q.try_get()?.id, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PriorityQueue<T: Pod + Ord> {
    /// Shared with the handles [`PriorityQueue::try_clone`] makes.
    seg: Arc<Segment>,
    g: Geometry,
    place: Place,
    mode: WaitMode,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod + Ord> Drop for PriorityQueue<T> {
    fn drop(&mut self) {
        if let Some(me) = self.place.ours() {
            self.table().detach(me);
            self.wake_everyone();
        }
    }
}

impl<T: Pod + Ord> fmt::Debug for PriorityQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriorityQueue")
            .field("name", &self.seg.name())
            .field("capacity", &self.g.cap)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T: Pod + Ord> PriorityQueue<T> {
    fn layout(opts: &Options, capacity: usize) -> Result<(Layout, Geometry), CreateError> {
        let g =
            Geometry::new(capacity, stride_of::<T>()).ok_or_else(|| CreateError::InvalidSize {
                name: opts.label(),
                reason: format!("capacity {capacity} is outside 1..={MAX_CAPACITY}"),
            })?;
        Ok((
            Layout {
                kind: Kind::PriorityQueue,
                align: 64,
                ty: crate::api::type_info::<T>(),
                payload_size: g.size,
                param0: capacity as u64,
                param1: 0,
            },
            g,
        ))
    }

    fn init(g: Geometry) -> impl FnOnce(Region<'_>) {
        move |r| {
            let heap = Heap::<T> {
                r,
                g,
                _t: PhantomData,
            };
            heap.rebuild();
        }
    }

    /// Creates a priority queue that holds at most `capacity` items (1 to 2^24).
    ///
    /// # Errors
    /// [`CreateError`]: invalid name or capacity, it exists, no space.
    pub fn create(opts: impl Into<Options>, capacity: usize) -> Result<Self, CreateError> {
        let opts = opts.into();
        let (layout, g) = Self::layout(&opts, capacity)?;
        let seg = Segment::create_kind(&opts, &layout, Self::init(g))?;
        Self::attach(seg, g, Side::Both).map_err(|e| CreateError::Os {
            name: opts.label(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    fn attach(seg: Segment, g: Geometry, side: Side) -> Result<Self, OpenError> {
        let table = Participants::new(seg.payload().sub(TABLE, participants::SIZE).ok_or_else(
            || OpenError::Corrupted {
                name: seg.name(),
                reason: "priority queue too small for its participant table".into(),
            },
        )?)
        .ok_or_else(|| OpenError::Corrupted {
            name: seg.name(),
            reason: "participant table misplaced".into(),
        })?;
        table.reap_dead(|_, _| {});
        let me = table
            .attach(side.bits())
            .ok_or_else(|| OpenError::TooManyProcesses {
                name: seg.name(),
                max: participants::MAX,
            })?;
        Ok(PriorityQueue {
            seg: Arc::new(seg),
            g,
            place: Place::new(me, side),
            mode: WaitMode::default(),
            _t: PhantomData,
        })
    }

    /// Opens an existing priority queue of `T`.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a priority queue of `T`, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Self::open_for(opts, Side::Both)
    }

    /// Opens an existing priority queue of `T` for one [`Side`] (see
    /// [`Queue::open_for`](crate::Queue::open_for)).
    ///
    /// # Errors
    /// As [`PriorityQueue::open`].
    pub fn open_for(opts: impl Into<Options>, side: Side) -> Result<Self, OpenError> {
        let seg = Segment::open_kind(
            &opts.into(),
            Kind::PriorityQueue,
            crate::api::type_info::<T>(),
        )?;
        Self::check(seg, side)
    }

    /// A second handle to the same queue, with a participant entry of its own for the same
    /// [`Side`] (and wait mode). Not `Clone`, for the reasons given at
    /// [`Queue::try_clone`](crate::Queue::try_clone); `PriorityQueue` is `Sync`, so an
    /// [`Arc`](std::sync::Arc) shares one handle instead.
    ///
    /// # Errors
    /// [`OpenError::TooManyProcesses`] if every entry of the participant table is held.
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        let table = self.table();
        let side = self.side();
        table.reap_dead(|_, _| {});
        let me = table
            .attach(side.bits())
            .ok_or_else(|| OpenError::TooManyProcesses {
                name: self.seg.name(),
                max: participants::MAX,
            })?;
        Ok(PriorityQueue {
            seg: Arc::clone(&self.seg),
            g: self.g,
            place: Place::new(me, side),
            mode: self.mode,
            _t: PhantomData,
        })
    }

    /// Changes which [`Side`] of the queue this handle uses.
    pub fn set_side(&self, side: Side) {
        self.place.set_side(side, self.table());
        self.wake_everyone();
    }

    /// Which [`Side`] of the queue this handle uses.
    pub fn side(&self) -> Side {
        self.place.side()
    }

    /// Opens the priority queue, creating it with `capacity` if it does not exist.
    ///
    /// # Errors
    /// As [`PriorityQueue::create`] and [`PriorityQueue::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        capacity: usize,
    ) -> Result<Self, OpenOrCreateError> {
        let opts = opts.into();
        let (layout, g) = Self::layout(&opts, capacity)?;
        let seg = Segment::open_or_create_kind(&opts, &layout, Self::init(g))?;
        Ok(Self::check(seg, Side::Both)?)
    }

    fn check(seg: Segment, side: Side) -> Result<Self, OpenError> {
        let cap = seg.info().param0;
        let g = usize::try_from(cap)
            .ok()
            .and_then(|c| Geometry::new(c, stride_of::<T>()))
            .filter(|g| g.size as u64 <= seg.info().payload_size);
        ensure(&seg, g.is_some(), || {
            format!(
                "priority queue geometry: capacity {cap}, {} bytes",
                seg.info().payload_size
            )
        })?;
        Self::attach(seg, g.expect("checked just above"), side)
    }

    fn table(&self) -> Participants<'_> {
        self.seg
            .payload()
            .sub(TABLE, participants::SIZE)
            .and_then(Participants::new)
            .expect("table inside (geometry checked)")
    }

    /// Our place in the participant table, attaching anew in a forked child.
    fn me(&self) -> Result<usize, Failed> {
        let t = self.table();
        self.place.index(
            |sides| {
                t.reap_dead(|_, _| {});
                t.attach(sides)
            },
            |i| t.detach(i),
        )
    }

    /// Wakes every sleeper, so waiters look again at who is left.
    fn wake_everyone(&self) {
        wait::wake_everyone(&[self.u32(ITEMS_BELL), self.u32(SPACE_BELL)]);
    }

    fn heap(&self) -> Heap<'_, T> {
        Heap {
            r: self.seg.payload(),
            g: self.g,
            _t: PhantomData,
        }
    }

    fn u32(&self, offset: usize) -> &AtomicU32 {
        self.seg
            .payload()
            .u32_at(offset)
            .expect("control words inside (geometry checked)")
    }

    fn mutex(&self) -> RawMutex<'_> {
        RawMutex::at(self.seg.payload(), 0).expect("mutex inside (geometry checked)")
    }

    fn sleeper(&self, items: bool) -> Counted<'_> {
        let (bell, waiters) = if items {
            (ITEMS_BELL, ITEMS_WAITERS)
        } else {
            (SPACE_BELL, SPACE_WAITERS)
        };
        Counted {
            bell: self.u32(bell),
            waiters: self.u32(waiters),
        }
    }

    fn ring(&self, items: bool) {
        let s = self.sleeper(items);
        wait::ring_counted(s.bell, s.waiters, false);
    }

    /// Whether nobody is left (or may still come) on the side a put (`put`) or get waits
    /// for, by the cheap check (entries still held count as present; a Select's or async
    /// wait's deep look reaps the dead first).
    fn other_side_left(&self, put: bool) -> bool {
        let Ok(me) = self.me() else {
            return false;
        };
        let other = if put {
            participants::GET
        } else {
            participants::PUT
        };
        !self
            .table()
            .other_side_may_come(other, me, self.place.seen(), false)
    }

    /// Runs `op` on the heap under the lock (rebuilding first if a holder died).
    fn locked<R>(
        &self,
        deadline: Option<Instant>,
        op: impl FnOnce(&Heap<'_, T>) -> Result<R, Inconsistent>,
    ) -> Result<R, Failed> {
        let m = self.mutex();
        let how = m.lock(deadline).map_err(|s| match s {
            Stopped::TimedOut => Failed::Timeout,
            Stopped::Interrupted => Failed::Interrupted,
        })?;
        let heap = self.heap();
        if how == Locked::OwnerDied {
            heap.rebuild();
        }
        let r = op(&heap).map_err(|Inconsistent(why)| {
            heap.rebuild();
            Failed::Corrupted(format!("{why} (the heap was rebuilt from its slot flags)"))
        });
        m.unlock();
        r
    }

    /// Retries `attempt` (which takes the lock) until it yields, as `waiting` allows.
    fn with_wait<R>(
        &self,
        items: bool,
        waiting: Waiting,
        mut attempt: impl FnMut(Option<Instant>) -> Result<Option<R>, Failed>,
    ) -> Result<R, Failed> {
        let Some(deadline) = waiting.deadline() else {
            // A non-waiting call still waits for the lock, but only briefly: a holder that
            // keeps it longer (stopped, stuck, or a forged lock word) makes it Full/Empty.
            let brief = crate::sync::park::deadline_after(wait::CHECK_EVERY);
            // Not interruptible: a `try_` form never reports an interrupt.
            return match crate::sys::interrupt::uninterruptible(|| attempt(brief)) {
                Ok(Some(r)) => Ok(r),
                Ok(None) if self.other_side_left(!items) => Err(Failed::Disconnected),
                Ok(None) | Err(Failed::Timeout | Failed::Interrupted) => Err(Failed::Busy),
                Err(e) => Err(e),
            };
        };
        let lock_deadline = deadline;
        if let Some(r) = attempt(lock_deadline)? {
            return Ok(r);
        }
        // A get (`items`) waits for a putter, a put for a getter.
        let me = self.me()?;
        let mut gone = other_side_gone(self.table(), !items, me, self.place.seen());
        match wait::wait(
            self.mode,
            deadline,
            &self.sleeper(items),
            true,
            || attempt(lock_deadline),
            &mut gone,
        ) {
            Ok(r) => Ok(r),
            Err(Ended::TimedOut) => Err(Failed::Timeout),
            Err(Ended::Interrupted) => Err(Failed::Interrupted),
            Err(Ended::Failed(f)) => Err(f),
            // One more look: what the other side did before it left counts.
            Err(Ended::PeerGone) => attempt(lock_deadline)?.ok_or(Failed::Disconnected),
        }
    }

    fn closed(&self) -> bool {
        self.u32(CLOSED).load(Ordering::SeqCst) != 0
    }

    fn put_with(&self, value: T, waiting: Waiting) -> Result<(), PutError<T>> {
        let r = self.with_wait(false, waiting, |deadline| {
            // `closed` is read under the lock, so a get that saw "empty and closed" (also under
            // the lock) is never followed by a successful put.
            match self.locked(deadline, |h| {
                if self.closed() {
                    Ok(None)
                } else {
                    h.push(&value).map(Some)
                }
            })? {
                None => Err(Failed::Closed),
                Some(pushed) => Ok(pushed.then_some(())),
            }
        });
        r.map_err(|e| e.put(value))?;
        self.ring(true);
        Ok(())
    }

    /// Puts `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`PutError::Closed`], [`PutError::Corrupted`], with the value.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::Forever)
    }

    /// Puts `value` if there is room now (waits for the lock only as long as a holder needs).
    ///
    /// # Errors
    /// [`PutError::Full`], as for [`PriorityQueue::put`].
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::No)
    }

    /// Puts `value`, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`PutError::Timeout`], as for [`PriorityQueue::put`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::For(timeout))
    }

    /// Puts `value`, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`PriorityQueue::put_timeout`].
    pub fn put_deadline(&self, value: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::Until(deadline))
    }

    fn get_with(&self, waiting: Waiting) -> Result<T, GetError> {
        let r = self.with_wait(true, waiting, |deadline| {
            match self.locked(deadline, |h| Ok((h.pop()?, self.closed())))? {
                (Some(v), _) => Ok(Some(v)),
                (None, true) => Err(Failed::Closed),
                (None, false) => Ok(None),
            }
        });
        let v = r.map_err(Failed::get)?;
        self.ring(false);
        Ok(v)
    }

    /// Takes the smallest item, waiting as long as it takes.
    ///
    /// # Errors
    /// [`GetError::Closed`] once closed and empty; [`GetError::Disconnected`] once empty with
    /// every other put-side handle gone ([`Side`]); [`GetError::Interrupted`];
    /// [`GetError::Corrupted`].
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Waiting::Forever)
    }

    /// Takes the smallest item if there is one.
    ///
    /// # Errors
    /// [`GetError::Empty`], as for [`PriorityQueue::get`].
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_with(Waiting::No)
    }

    /// Takes the smallest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`], as for [`PriorityQueue::get`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_with(Waiting::For(timeout))
    }

    /// Takes the smallest item, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`PriorityQueue::get_timeout`].
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, GetError> {
        self.get_with(Waiting::Until(deadline))
    }

    /// Items waiting (read without the lock: approximate while others work).
    pub fn len(&self) -> usize {
        self.heap()
            .word(LEN)
            .load(Ordering::Relaxed)
            .min(self.g.cap as u64) as usize
    }

    /// Whether no item is waiting (approximate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue holds `capacity` items (approximate).
    pub fn is_full(&self) -> bool {
        self.len() >= self.g.cap
    }

    /// Most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.g.cap
    }

    /// Closes the queue: later puts fail with [`PutError::Closed`]; consumers drain, then get
    /// [`GetError::Closed`].
    pub fn close(&self) {
        self.u32(CLOSED).store(1, Ordering::SeqCst);
        self.wake_everyone();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.closed()
    }

    /// How blocking calls of this handle wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.mode = mode;
    }

    /// For a queue made with [`Options::file`]: writes its items to the file and waits until
    /// the device has them, so they survive an OS crash or power loss too (see
    /// [`Segment::flush`](crate::Segment::flush)). Process crashes need no flush.
    ///
    /// # Errors
    /// The OS error from `msync`.
    pub fn flush(&self) -> std::io::Result<()> {
        self.seg.flush()
    }

    /// The name (or file path) of the queue.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

impl<T: Pod + Ord> crate::api::select::Selectable for PriorityQueue<T> {
    /// Ready when there is room or an item (counted without the lock), the queue is closed,
    /// this handle lost its place, or nobody is left on the other side.
    fn registration(&self, put: bool) -> crate::api::select::Reg<'_> {
        OwnedPriority::reg_of(
            &self.seg,
            self.g.cap,
            self.me().ok(),
            self.place.seen(),
            put,
        )
    }

    fn registration_owned(&self, put: bool) -> crate::api::readiness::OwnedReg {
        let owned = OwnedPriority {
            cap: self.g.cap,
            me: self.me().ok(),
            seen: self.place.seen(),
            put,
        };
        crate::api::readiness::OwnedReg::new(Arc::clone(&self.seg), owned, OwnedPriority::reg)
    }
}

/// What a priority queue's owned registration (for a [`Readiness`](crate::Readiness)) keeps
/// of the handle: its capacity (checked against the segment when the handle was made) and
/// its place, copied.
struct OwnedPriority {
    cap: usize,
    /// The handle's participant index; `None` if it had none (then always ready).
    me: Option<usize>,
    seen: participants::Seen,
    put: bool,
}

impl OwnedPriority {
    /// The registration over `seg`, as `Selectable::registration` builds it from a handle.
    fn reg<'s>(seg: &'s Segment, o: &'s OwnedPriority) -> crate::api::select::Reg<'s> {
        Self::reg_of(seg, o.cap, o.me, o.seen, o.put)
    }

    /// A registration over `seg` (whose geometry was checked when the handle was made) for a
    /// put (`put`) or get by participant `me`, who saw `seen` when it attached.
    fn reg_of(
        seg: &Segment,
        cap: usize,
        me: Option<usize>,
        seen: participants::Seen,
        put: bool,
    ) -> crate::api::select::Reg<'_> {
        let r = seg.payload();
        let u32_at = |off| {
            r.u32_at(off)
                .expect("control words inside (geometry checked)")
        };
        let len = r
            .u64_at(LEN)
            .expect("control words inside (geometry checked)");
        let closed = u32_at(CLOSED);
        let table = r
            .sub(TABLE, participants::SIZE)
            .and_then(Participants::new)
            .expect("table inside (geometry checked)");
        let cap = cap as u64;
        let sleeper = if put {
            Counted {
                bell: u32_at(SPACE_BELL),
                waiters: u32_at(SPACE_WAITERS),
            }
        } else {
            Counted {
                bell: u32_at(ITEMS_BELL),
                waiters: u32_at(ITEMS_WAITERS),
            }
        };
        let (bell, waiters) = (sleeper.bell, sleeper.waiters);
        crate::api::select::Reg::new(
            sleeper,
            move |deep| {
                let len = len.load(Ordering::Relaxed).min(cap);
                if closed.load(Ordering::SeqCst) != 0 || (put && len < cap) || (!put && len > 0) {
                    return true;
                }
                let Some(me) = me else {
                    return true;
                };
                let other = if put {
                    participants::GET
                } else {
                    participants::PUT
                };
                if deep {
                    table.reap_dead(|_, _| {});
                }
                !table.other_side_may_come(other, me, seen, false)
            },
            Some(Box::new(move || wait::ring_counted(bell, waiters, false))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::heap;

    fn with_heap(cap: usize, f: impl FnOnce(&Heap<'_, u32>)) {
        let g = Geometry::new(cap, 8).unwrap();
        let mem = heap(g.size);
        let h = Heap::<u32> {
            r: Region::from_words(&mem),
            g,
            _t: PhantomData,
        };
        h.rebuild();
        f(&h);
    }

    #[test]
    fn pops_in_order() {
        with_heap(7, |h| {
            for v in [5, 3, 9, 1, 7, 3, 0] {
                assert!(h.push(&v).ok().unwrap());
            }
            assert!(!h.push(&4).ok().unwrap()); // full
            let mut out = vec![];
            while let Some(v) = h.pop().ok().unwrap() {
                out.push(v);
            }
            assert_eq!(out, [0, 1, 3, 3, 5, 7, 9]);
        });
    }

    #[test]
    fn rebuild_keeps_committed_items_only() {
        with_heap(4, |h| {
            for v in [4, 2, 8] {
                h.push(&v).ok().unwrap();
            }
            // A holder died mid-push after writing an item but before its commit, and the
            // heap words are garbage.
            h.heap_at(0).store(77, Ordering::Relaxed);
            h.word(LEN).store(1 << 40, Ordering::Relaxed);
            assert!(h.pop().is_err());
            h.rebuild();
            let mut out = vec![];
            while let Some(v) = h.pop().ok().unwrap() {
                out.push(v);
            }
            assert_eq!(out, [2, 4, 8]);
        });
    }
}
