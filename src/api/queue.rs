//! `Queue<T>` and `JoinableQueue<T>`: named bounded MPMC queues (the `ring::mpmc` slot queue).

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::api::readiness::OwnedReg;
use crate::api::select::{Reg, Selectable};
use crate::api::{Pod, Waiting, ensure};
use crate::error::{
    CreateError, GetError, JoinError, OpenError, OpenOrCreateError, PutError, TaskDoneError,
};
use crate::ring::mpmc::{self, Claim, Fail, Mpmc};
use crate::ring::participants::{self, Participants, Seen};
use crate::ring::wait::{self, CHECK_EVERY, Ended, WaitMode};
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};
use crate::sync::park;
use crate::sys::process;

/// Which side of a queue a handle uses: it puts, it gets, or both.
///
/// A get on an empty queue returns `Disconnected` once no *other* handle with the put side
/// is left — every one was dropped or its process died — and a put on a full queue likewise
/// once no other handle with the get side is left (crossbeam-channel's semantics, across
/// processes). Dropped handles are noticed at once, dead processes within about 40 ms.
/// Until some other handle with the needed side has attached at all, a blocked call waits
/// for the first one (a consumer may start before its producers).
///
/// A handle with [`Side::Both`] never waits on itself: its own put side does not keep its
/// own gets waiting. So when threads of one process put and get through one shared handle,
/// the getters see `Disconnected` as soon as the other processes' putters are gone; give
/// such threads handles of their own sides (`open_for`). `create` makes a `Both` handle;
/// narrow it with `set_side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    /// Puts only.
    Put,
    /// Gets only.
    Get,
    /// Puts and gets (the default).
    #[default]
    Both,
}

impl Side {
    pub(crate) fn bits(self) -> u32 {
        match self {
            Side::Put => participants::PUT,
            Side::Get => participants::GET,
            Side::Both => participants::PUT | participants::GET,
        }
    }

    pub(crate) fn from_bits(bits: u32) -> Option<Side> {
        match bits & (participants::PUT | participants::GET) {
            participants::PUT => Some(Side::Put),
            participants::GET => Some(Side::Get),
            0 => None,
            _ => Some(Side::Both),
        }
    }

    /// "put", "get" or "put+get", as tools show it.
    pub fn label(self) -> &'static str {
        match self {
            Side::Put => "put",
            Side::Get => "get",
            Side::Both => "put+get",
        }
    }
}

/// Why a claim failed, before it is mapped to the caller's error type.
pub(crate) enum Failed {
    Busy,
    Timeout,
    Closed,
    /// The other side is gone (no putter left for a get, no getter for a put).
    Disconnected,
    Interrupted,
    Corrupted(String),
}

impl From<Fail> for Failed {
    fn from(f: Fail) -> Failed {
        match f {
            Fail::Busy => Failed::Busy,
            Fail::Closed => Failed::Closed,
            Fail::Corrupted(c) => Failed::Corrupted(c.0),
        }
    }
}

impl Failed {
    pub(crate) fn put<T>(self, value: T) -> PutError<T> {
        match self {
            Failed::Busy => PutError::Full(value),
            Failed::Timeout => PutError::Timeout(value),
            Failed::Closed => PutError::Closed(value),
            Failed::Disconnected => PutError::Disconnected(value),
            Failed::Interrupted => PutError::Interrupted(value),
            Failed::Corrupted(reason) => PutError::Corrupted { value, reason },
        }
    }

    pub(crate) fn get(self) -> GetError {
        match self {
            Failed::Busy => GetError::Empty,
            Failed::Timeout => GetError::Timeout,
            Failed::Closed => GetError::Closed,
            Failed::Disconnected => GetError::Disconnected,
            Failed::Interrupted => GetError::Interrupted,
            Failed::Corrupted(reason) => GetError::Corrupted { reason },
        }
    }
}

/// A handle's place in a queue's participant table: `pid << 32 | index` of the process that
/// attached (another pid, a forked child, attaches anew on first use) and the sides it uses.
pub(crate) struct Place {
    me: AtomicU64,
    sides: AtomicU32,
    /// What the handle saw when it attached (`participants::Seen`): counts before its own,
    /// and whether a live participant of each side was there.
    before: [AtomicU64; 2],
    present: [AtomicBool; 2],
}

impl Place {
    pub(crate) fn new((index, seen): (usize, Seen), side: Side) -> Place {
        let place = Place {
            me: AtomicU64::new((u64::from(process::current().pid) << 32) | index as u64),
            sides: AtomicU32::new(side.bits()),
            before: [AtomicU64::new(0), AtomicU64::new(0)],
            present: [AtomicBool::new(false), AtomicBool::new(false)],
        };
        place.remember(seen);
        place
    }

    fn remember(&self, seen: Seen) {
        for k in 0..2 {
            self.before[k].store(seen.before[k], Ordering::Relaxed);
            self.present[k].store(seen.present[k], Ordering::Relaxed);
        }
    }

    /// What the handle saw when it (or, in a forked child, the child) attached.
    pub(crate) fn seen(&self) -> Seen {
        Seen {
            before: [0, 1].map(|k| self.before[k].load(Ordering::Relaxed)),
            present: [0, 1].map(|k| self.present[k].load(Ordering::Relaxed)),
        }
    }

    /// Our index, attaching anew (with `attach`, which reaps dead entries first) in a forked
    /// child; `detach` lets go of a place another thread of the child took first.
    pub(crate) fn index(
        &self,
        attach: impl FnOnce(u32) -> Option<(usize, Seen)>,
        detach: impl FnOnce(usize),
    ) -> Result<usize, Failed> {
        let m = self.me.load(Ordering::Relaxed);
        let pid = process::current().pid;
        if (m >> 32) as u32 == pid {
            return Ok((m & 0xffff_ffff) as usize);
        }
        let (i, seen) = attach(self.sides.load(Ordering::Relaxed)).ok_or_else(|| {
            Failed::Corrupted(format!(
                "all {} places for attached processes are held by live processes",
                participants::MAX
            ))
        })?;
        let mine = (u64::from(pid) << 32) | i as u64;
        match self
            .me
            .compare_exchange(m, mine, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.remember(seen);
                Ok(i)
            }
            Err(now) => {
                // Another thread of this child attached first: use its place.
                detach(i);
                Ok((now & 0xffff_ffff) as usize)
            }
        }
    }

    /// Our index if this process attached it (for `Drop`).
    pub(crate) fn ours(&self) -> Option<usize> {
        let m = self.me.load(Ordering::Relaxed);
        ((m >> 32) as u32 == process::current().pid).then_some((m & 0xffff_ffff) as usize)
    }

    pub(crate) fn side(&self) -> Side {
        Side::from_bits(self.sides.load(Ordering::Relaxed)).unwrap_or_default()
    }

    /// Records `side` here and, if we are attached, in the table.
    pub(crate) fn set_side(&self, side: Side, table: Participants<'_>) {
        self.sides.store(side.bits(), Ordering::Relaxed);
        if let Some(me) = self.ours() {
            table.set_sides(me, side.bits());
        }
    }
}

/// The "is anyone left on the other side?" check of a blocked put (`put`) or get, as the
/// wait strategy's `peer_gone`: it looks whenever a participant leaves (`departures`
/// changes) and, with liveness (`deep`), every `CHECK_EVERY` — not when the wait starts,
/// so a wait that ends quickly (the common case under load) costs one load of `departures`.
pub(crate) fn other_side_gone<'a>(
    table: Participants<'a>,
    put: bool,
    me: usize,
    seen: Seen,
) -> impl FnMut(bool) -> bool + 'a {
    let other = if put {
        participants::GET
    } else {
        participants::PUT
    };
    let mut departures = table.departures().load(Ordering::SeqCst);
    move |deep| {
        let now = table.departures().load(Ordering::SeqCst);
        if !deep && departures == now {
            return false;
        }
        departures = now;
        !table.other_side_may_come(other, me, seen, deep)
    }
}

/// What a queue's owned registration ([`Core::registration_owned`]) keeps of the handle: the
/// geometry (checked when the handle was made) and the handle's place, copied.
struct OwnedQueue {
    cap: u64,
    stride: usize,
    limit: u64,
    /// The handle's participant index; `None` if it had none (the registration is then
    /// always ready, so the handle's own call reports why).
    me: Option<usize>,
    seen: Seen,
    put: bool,
}

impl OwnedQueue {
    /// The registration over `seg`, as [`Core::registration`] builds it.
    fn reg<'s>(seg: &'s Segment, o: &'s OwnedQueue) -> Reg<'s> {
        let q = Mpmc::new(seg.payload(), o.cap, o.stride)
            .expect("geometry validated when the handle was made")
            .with_limit(o.limit);
        let put = o.put;
        Reg::new(
            q.sleeper(!put),
            move |deep| would_not_wait(q, o.limit, put, o.me, o.seen, deep),
            Some(Box::new(move || q.pass_on(!put))),
        )
    }
}

/// Whether a put (`put`) or get on `q` would not wait: there is room or an item, the queue
/// is closed, the handle has no place (`me`), or nobody is left (or may still come) on the
/// other side. With `deep`, dead participants are reaped first (their entries freed, which
/// every handle's cheap check then sees), so the handle's own non-waiting call that follows
/// reports `Disconnected` as this says.
fn would_not_wait(
    q: Mpmc<'_>,
    limit: u64,
    put: bool,
    me: Option<usize>,
    seen: Seen,
    deep: bool,
) -> bool {
    let len = q.len();
    if q.is_closed() || (put && len < limit) || (!put && len > 0) {
        return true;
    }
    let Some(me) = me else {
        return true;
    };
    if deep {
        q.reap_dead();
    }
    let other = if put {
        participants::GET
    } else {
        participants::PUT
    };
    !q.table().other_side_may_come(other, me, seen, false)
}

/// Nanoseconds since the first call, for the per-handle liveness-check schedule.
fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What the queue kinds share: the segment, this process's participant place, the wait mode.
pub(crate) struct Core {
    /// Shared with the handles [`Core::try_clone`] makes: one mapping, one participant
    /// entry each.
    seg: Arc<Segment>,
    cap: u64,
    stride: usize,
    limit: u64,
    joinable: bool,
    place: Place,
    /// When this handle next asks whether the holders of blocking slots are alive.
    next_deep: AtomicU64,
    /// Per direction (get, put): 1 + the participants' `departures` count at which a
    /// non-waiting call last found someone on the other side (0: not yet), so an empty
    /// `try_get` (full `try_put`) scans the table only after someone left.
    present_at: [AtomicU64; 2],
    pub(crate) mode: WaitMode,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.seg.name())
            .field("capacity", &self.limit)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Slot capacity for a requested `maxsize`: the next power of two.
    fn slots_for(opts: &Options, maxsize: usize) -> Result<u64, CreateError> {
        let max = mpmc::MAX_CAPACITY;
        u64::try_from(maxsize)
            .ok()
            .filter(|&m| m >= 1 && m <= max)
            .map(u64::next_power_of_two)
            .ok_or_else(|| CreateError::InvalidSize {
                name: opts.label(),
                reason: format!("capacity {maxsize} is outside 1..={max}"),
            })
    }

    pub(crate) fn create(
        opts: impl Into<Options>,
        kind: Kind,
        ty: TypeInfo,
        maxsize: usize,
        stride: usize,
        param1: u64,
    ) -> Result<Core, CreateError> {
        let opts = opts.into();
        let (layout, cap) = Core::layout(&opts, kind, ty, maxsize, stride, param1)?;
        let seg = Segment::create_kind(&opts, &layout, |r| {
            if let Some(mut q) = Mpmc::new(r, cap, stride) {
                q.init(maxsize as u64);
            }
        })?;
        Core::attach(seg, stride, Side::Both).map_err(|e| CreateError::Os {
            name: opts.label(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    fn layout(
        opts: &Options,
        kind: Kind,
        ty: TypeInfo,
        maxsize: usize,
        stride: usize,
        param1: u64,
    ) -> Result<(Layout, u64), CreateError> {
        let cap = Core::slots_for(opts, maxsize)?;
        let size = mpmc::region_size(cap, stride).ok_or_else(|| CreateError::InvalidSize {
            name: opts.label(),
            reason: format!("{cap} slots of {stride} bytes do not fit in memory"),
        })?;
        Ok((
            Layout {
                kind,
                align: 64,
                ty,
                payload_size: size,
                param0: cap,
                param1,
            },
            cap,
        ))
    }

    pub(crate) fn open(
        opts: impl Into<Options>,
        kind: Kind,
        ty: TypeInfo,
        stride_of: impl Fn(u64) -> Option<usize>,
        side: Side,
    ) -> Result<Core, OpenError> {
        let seg = Segment::open_kind(&opts.into(), kind, ty)?;
        Core::check(seg, stride_of, side)
    }

    pub(crate) fn open_or_create(
        opts: impl Into<Options>,
        kind: Kind,
        ty: TypeInfo,
        maxsize: usize,
        stride: usize,
        param1: u64,
        stride_of: impl Fn(u64) -> Option<usize>,
    ) -> Result<Core, OpenOrCreateError> {
        let opts = opts.into();
        let (layout, cap) = Core::layout(&opts, kind, ty, maxsize, stride, param1)?;
        let seg = Segment::open_or_create_kind(&opts, &layout, |r| {
            if let Some(mut q) = Mpmc::new(r, cap, stride) {
                q.init(maxsize as u64);
            }
        })?;
        Ok(Core::check(seg, stride_of, Side::Both)?)
    }

    fn check(
        seg: Segment,
        stride_of: impl Fn(u64) -> Option<usize>,
        side: Side,
    ) -> Result<Core, OpenError> {
        let (cap, p1) = (seg.info().param0, seg.info().param1);
        let stride = stride_of(p1);
        let ok = stride.is_some_and(|s| Mpmc::new(seg.payload(), cap, s).is_some());
        ensure(&seg, ok, || {
            format!(
                "queue geometry: {cap} slots, parameter {p1}, {} bytes",
                seg.info().payload_size
            )
        })?;
        Core::attach(seg, stride.unwrap_or(8), side)
    }

    fn attach(seg: Segment, stride: usize, side: Side) -> Result<Core, OpenError> {
        let cap = seg.info().param0;
        let q = Mpmc::new(seg.payload(), cap, stride).ok_or_else(|| OpenError::Corrupted {
            name: seg.name(),
            reason: "queue geometry changed while opening".into(),
        })?;
        let limit = q.stored_limit().ok_or_else(|| OpenError::Corrupted {
            name: seg.name(),
            reason: format!("queue limit outside 1..={cap}"),
        })?;
        let me = q
            .attach(side.bits())
            .ok_or_else(|| OpenError::TooManyProcesses {
                name: seg.name(),
                max: mpmc::MAX_PARTICIPANTS,
            })?;
        if q.live_participants().len() <= 1 {
            // Nobody else is attached, so nobody sleeps: counts left by processes that died
            // asleep would only cost every put a needless wake-up call.
            q.reset_waiters();
        }
        let joinable = seg.info().kind == Kind::JoinableQueue;
        Ok(Core {
            seg: Arc::new(seg),
            cap,
            stride,
            limit,
            joinable,
            place: Place::new(me, side),
            next_deep: AtomicU64::new(0),
            present_at: [AtomicU64::new(0), AtomicU64::new(0)],
            mode: WaitMode::default(),
        })
    }

    /// A second handle on the same mapping with a participant entry of its own, for the same
    /// side(s) and wait mode.
    pub(crate) fn try_clone(&self) -> Result<Core, OpenError> {
        let q = self.q();
        let side = self.side();
        let me = q
            .attach(side.bits())
            .ok_or_else(|| OpenError::TooManyProcesses {
                name: self.seg.name(),
                max: mpmc::MAX_PARTICIPANTS,
            })?;
        Ok(Core {
            seg: Arc::clone(&self.seg),
            cap: self.cap,
            stride: self.stride,
            limit: self.limit,
            joinable: self.joinable,
            place: Place::new(me, side),
            next_deep: AtomicU64::new(0),
            present_at: [AtomicU64::new(0), AtomicU64::new(0)],
            mode: self.mode,
        })
    }

    pub(crate) fn q(&self) -> Mpmc<'_> {
        Mpmc::new(self.seg.payload(), self.cap, self.stride)
            .expect("geometry validated when the handle was made")
            .with_limit(self.limit)
    }

    pub(crate) fn seg(&self) -> &Segment {
        &self.seg
    }

    /// Our participant place, attaching anew in a forked child.
    pub(crate) fn me(&self) -> Result<usize, Failed> {
        let q = self.q();
        self.place.index(|sides| q.attach(sides), |i| q.detach(i))
    }

    /// Whether it is time for this handle to look at the liveness of slot holders.
    fn deep_due(&self) -> bool {
        let now = now_nanos();
        let due = self.next_deep.load(Ordering::Relaxed);
        now >= due
            && self
                .next_deep
                .compare_exchange(
                    due,
                    now + CHECK_EVERY.as_nanos() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Claims a slot to fill (`put`) or to take (`!put`), waiting as asked.
    pub(crate) fn claim(&self, put: bool, waiting: Waiting) -> Result<(usize, Claim), Failed> {
        let me = self.me()?;
        let q = self.q();
        let attempt = |deep: bool| {
            if put {
                q.try_claim_put(me, deep, self.joinable)
            } else {
                q.try_claim_get(me, deep)
            }
        };
        match attempt(false) {
            Ok(c) => return Ok((me, c)),
            Err(Fail::Busy) => {}
            Err(e) => return Err(e.into()),
        }
        if self.deep_due() {
            match attempt(true) {
                Ok(c) => return Ok((me, c)),
                Err(Fail::Busy) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some(deadline) = waiting.deadline() else {
            // Nobody left on the other side: say so (after one more look at what it left),
            // as a waiting call, a Select and the async forms would.
            let other = if put {
                participants::GET
            } else {
                participants::PUT
            };
            let table = q.table();
            let departures = u64::from(table.departures().load(Ordering::SeqCst)) + 1;
            let cache = &self.present_at[usize::from(put)];
            if cache.load(Ordering::Relaxed) == departures {
                return Err(Failed::Busy);
            }
            if table.other_side_may_come(other, me, self.place.seen(), false) {
                cache.store(departures, Ordering::Relaxed);
                return Err(Failed::Busy);
            }
            return match attempt(true) {
                Ok(c) => Ok((me, c)),
                Err(Fail::Busy) => Err(Failed::Disconnected),
                Err(e) => Err(e.into()),
            };
        };
        let deep = Cell::new(false);
        let mut gone = other_side_gone(q.table(), put, me, self.place.seen());
        let r = wait::wait(
            self.mode,
            deadline,
            &q.sleeper(!put),
            put,
            || match attempt(deep.replace(false)) {
                Ok(c) => Ok(Some(c)),
                Err(Fail::Busy) => Ok(None),
                Err(e) => Err(e),
            },
            |is_deep| {
                if is_deep {
                    deep.set(true);
                }
                gone(is_deep)
            },
        );
        let gave_up = match r {
            Ok(c) => return Ok((me, c)),
            Err(Ended::Failed(e)) => return Err(e.into()),
            Err(Ended::TimedOut) => Failed::Timeout,
            Err(Ended::Interrupted) => Failed::Interrupted,
            Err(Ended::PeerGone) => {
                // The other side's last act (a put, a get) happened before it left: one more
                // look, so nothing it left behind is reported as gone.
                match attempt(true) {
                    Ok(c) => return Ok((me, c)),
                    Err(Fail::Busy) => Failed::Disconnected,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        // We may have been woken for a slot we now leave: pass it on.
        q.pass_on(!put);
        Err(gave_up)
    }

    /// The [`Select`](crate::Select) registration of a put (`put`) or a get: ready when
    /// there is room or an item, the queue is closed, this handle lost its place, or nobody
    /// is left (or may still come) on the other side.
    pub(crate) fn registration(&self, put: bool) -> Reg<'_> {
        let q = self.q();
        Reg::new(
            q.sleeper(!put),
            move |deep| would_not_wait(q, self.limit, put, self.me().ok(), self.place.seen(), deep),
            Some(Box::new(move || q.pass_on(!put))),
        )
    }

    /// [`Core::registration`] for a [`Readiness`](crate::Readiness): it owns a clone of the
    /// segment and copies of the handle's place (taken now, attaching first in a forked
    /// child), so it needs nothing of the handle later.
    pub(crate) fn registration_owned(&self, put: bool) -> OwnedReg {
        let owned = OwnedQueue {
            cap: self.cap,
            stride: self.stride,
            limit: self.limit,
            me: self.me().ok(),
            seen: self.place.seen(),
            put,
        };
        OwnedReg::new(Arc::clone(&self.seg), owned, OwnedQueue::reg)
    }

    /// Changes the sides this handle uses.
    pub(crate) fn set_side(&self, side: Side) {
        let q = self.q();
        self.place.set_side(side, q.table());
        q.wake_everyone();
    }

    /// The sides this handle uses.
    pub(crate) fn side(&self) -> Side {
        self.place.side()
    }

    /// Claims a slot to fill (a JoinableQueue's item is counted with the claim).
    pub(crate) fn claim_put(&self, waiting: Waiting) -> Result<(usize, Claim), Failed> {
        self.claim(true, waiting)
    }

    /// Commits a filled slot.
    pub(crate) fn publish(&self, me: usize, c: Claim) -> Result<(), Failed> {
        self.q().publish(c, me).map_err(|e| Failed::Corrupted(e.0))
    }

    /// Hands a taken slot back to producers, counting the item for `task_done` (as owed by
    /// this participant, so it counts as lost if our process dies before marking it done).
    pub(crate) fn release(&self, me: usize, c: Claim) -> Result<(), Failed> {
        let q = self.q();
        if self.joinable {
            q.table().owe(me);
        }
        q.release(c, me).map_err(|e| Failed::Corrupted(e.0))?;
        if self.joinable {
            q.taken_add();
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.q().len().min(self.limit) as usize
    }

    pub(crate) fn capacity(&self) -> usize {
        self.limit as usize
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if let Some(me) = self.place.ours() {
            self.q().detach(me);
        }
    }
}

/// Slot stride for items of type `T`: the slot word, then `T`, rounded to 8 bytes.
fn stride_of<T>() -> usize {
    stride_for_size(std::mem::size_of::<T>())
}

/// Slot stride for items of `size` bytes.
pub(crate) fn stride_for_size(size: usize) -> usize {
    (8 + size).div_ceil(8) * 8
}

/// A named, bounded, multi-producer multi-consumer queue of `T` in shared memory: any number
/// of processes put and get, each item is delivered to exactly one `get`, in order of the
/// puts' commits. The shape of Python's `multiprocessing.Queue`.
///
/// - Lock-free (Vyukov's slot queue); a put or get is a few atomic operations, no system call
///   unless somebody sleeps.
/// - Blocking calls spin briefly, then sleep on a futex (see [`WaitMode`]); every blocking call
///   has a `_timeout` form.
/// - Robust: a process killed in the middle of a put or get never wedges the queue. A killed
///   producer's unfinished item is skipped (its `put` never returned); an item being taken by a
///   killed consumer counts as taken. Every committed item not yet taken survives.
/// - Items are copied in and out with atomic word copies, so even a hostile process writing
///   the segment can at worst give you wrong values, never undefined behaviour.
///
/// ```
/// let name = format!("doc-queue-{}", std::process::id());
/// let q = shmq::Queue::<u64>::create(name.as_str(), 3)?;
/// q.put(1)?;
/// q.try_put(2)?;
/// q.put_timeout(3, std::time::Duration::from_millis(10))?;
/// assert!(q.is_full());
/// assert_eq!(q.try_put(4).unwrap_err().into_inner(), Some(4)); // Full: the item comes back
///
/// let other = shmq::Queue::<u64>::open(name.as_str())?; // e.g. in another process
/// assert_eq!(other.get()?, 1);
/// assert_eq!(other.try_get()?, 2);
/// assert_eq!(other.get_timeout(std::time::Duration::from_millis(10))?, 3);
/// assert_eq!(other.try_get(), Err(shmq::GetError::Empty));
/// q.close();
/// assert_eq!(other.get(), Err(shmq::GetError::Closed));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T: Pod> {
    core: Core,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<T: Pod> Queue<T> {
    fn kind() -> Kind {
        Kind::Queue
    }

    fn with_kind(kind: Kind, core: Result<Core, CreateError>) -> Result<Self, CreateError> {
        debug_assert!(matches!(kind, Kind::Queue | Kind::JoinableQueue));
        core.map(|core| Queue {
            core,
            _t: PhantomData,
        })
    }

    fn create_as(
        opts: impl Into<Options>,
        capacity: usize,
        kind: Kind,
    ) -> Result<Self, CreateError> {
        let core = Core::create(
            opts,
            kind,
            crate::api::type_info::<T>(),
            capacity,
            stride_of::<T>(),
            0,
        );
        Queue::with_kind(kind, core)
    }

    fn open_as(opts: impl Into<Options>, kind: Kind, side: Side) -> Result<Self, OpenError> {
        let core = Core::open(
            opts,
            kind,
            crate::api::type_info::<T>(),
            |_| Some(stride_of::<T>()),
            side,
        )?;
        Ok(Queue {
            core,
            _t: PhantomData,
        })
    }

    fn open_or_create_as(
        opts: impl Into<Options>,
        capacity: usize,
        kind: Kind,
    ) -> Result<Self, OpenOrCreateError> {
        let core = Core::open_or_create(
            opts,
            kind,
            crate::api::type_info::<T>(),
            capacity,
            stride_of::<T>(),
            0,
            |_| Some(stride_of::<T>()),
        )?;
        Ok(Queue {
            core,
            _t: PhantomData,
        })
    }

    /// Creates a queue that holds at most `capacity` items (1 to 2^30; a power of two is
    /// fastest: other sizes add a check of the consumers' position to every put).
    ///
    /// # Errors
    /// [`CreateError`]: invalid name or capacity, it exists, no space.
    pub fn create(opts: impl Into<Options>, capacity: usize) -> Result<Self, CreateError> {
        Queue::create_as(opts, capacity, Queue::<T>::kind())
    }

    /// Opens an existing queue of `T`.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a queue of `T` ([`OpenError::TypeMismatch`],
    /// [`OpenError::KindMismatch`]), corrupted, too many processes attached.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Queue::open_as(opts, Queue::<T>::kind(), Side::Both)
    }

    /// Opens an existing queue of `T` for one [`Side`]: a worker that only gets then sees
    /// [`GetError::Disconnected`] once every producer is gone, even while other workers live.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open_for(opts: impl Into<Options>, side: Side) -> Result<Self, OpenError> {
        Queue::open_as(opts, Queue::<T>::kind(), side)
    }

    /// A second handle to the same queue, in this process, with a participant entry of its
    /// own for the same [`Side`] (and wait mode): it counts as one more putter or getter,
    /// exactly like a handle another process opens. So a getter sees
    /// [`GetError::Disconnected`] only once every other put-side handle, clones included, is
    /// gone — crossbeam-channel's `Sender::clone`, across processes.
    ///
    /// Not `Clone`: the participant table is shared by every process attached to the queue
    /// and holds at most 256 entries, so making a handle can fail for reasons outside the
    /// caller's control, and `clone` could only panic. To share one handle (one entry) between
    /// threads instead, put it in an [`Arc`](std::sync::Arc): `Queue` is `Sync`, and every
    /// call takes `&self` (but a shared [`Side::Both`] handle never waits on itself; see
    /// [`Side`]).
    ///
    /// ```
    /// use shmq::{GetError, Queue, Side};
    ///
    /// let name = format!("doc-queue-clone-{}", std::process::id());
    /// let q = Queue::<u32>::create(name.as_str(), 4)?;
    /// let producer = q.try_clone()?;
    /// producer.set_side(Side::Put);
    /// q.set_side(Side::Get);
    /// let t = std::thread::spawn(move || producer.put(7)); // the clone drops when done
    /// assert_eq!(q.get()?, 7);
    /// assert_eq!(q.get(), Err(GetError::Disconnected)); // the only putter is gone
    /// t.join().unwrap()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`OpenError::TooManyProcesses`] if every entry of the table is held by a live handle.
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        Ok(Queue {
            core: self.core.try_clone()?,
            _t: PhantomData,
        })
    }

    /// Changes which [`Side`] of the queue this handle uses (`create` makes a
    /// [`Side::Both`] handle).
    pub fn set_side(&self, side: Side) {
        self.core.set_side(side);
    }

    /// Which [`Side`] of the queue this handle uses.
    pub fn side(&self) -> Side {
        self.core.side()
    }

    /// Opens the queue, creating it with `capacity` if it does not exist (safe when several
    /// processes race to do this).
    ///
    /// # Errors
    /// As [`Queue::create`] and [`Queue::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        capacity: usize,
    ) -> Result<Self, OpenOrCreateError> {
        Queue::open_or_create_as(opts, capacity, Queue::<T>::kind())
    }

    fn put_with(&self, value: T, waiting: Waiting) -> Result<(), PutError<T>> {
        let (me, c) = match self.core.claim_put(waiting) {
            Ok(x) => x,
            Err(e) => return Err(e.put(value)),
        };
        let q = self.core.q();
        q.data(c.pos)
            .write(0, value.as_bytes())
            .expect("slot stride fits T (checked at open)");
        self.core.publish(me, c).map_err(|e| e.put(value))
    }

    /// Puts `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    /// [`PutError::Closed`]; [`PutError::Disconnected`] if the queue is full and every
    /// handle with the get side is gone ([`Side`]); [`PutError::Interrupted`] if an
    /// [`Interrupter`](crate::Interrupter) the thread watches fired; [`PutError::Corrupted`].
    /// The value comes back in the error.
    pub fn put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::Forever)
    }

    /// Puts `value` if there is room now.
    ///
    /// # Errors
    /// [`PutError::Full`] (with the value), as for [`Queue::put`].
    pub fn try_put(&self, value: T) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::No)
    }

    /// Puts `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PutError::Timeout`] (with the value), as for [`Queue::put`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::For(timeout))
    }

    /// Puts `value`, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_deadline(&self, value: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.put_with(value, Waiting::Until(deadline))
    }

    fn get_with(&self, waiting: Waiting) -> Result<T, GetError> {
        let (me, c) = self.core.claim(false, waiting).map_err(Failed::get)?;
        let mut value = T::new_zeroed();
        self.core
            .q()
            .data(c.pos)
            .read(0, value.as_mut_bytes())
            .expect("slot stride fits T (checked at open)");
        self.core.release(me, c).map_err(Failed::get)?;
        Ok(value)
    }

    /// Takes the oldest item, waiting as long as it takes.
    ///
    /// # Errors
    /// [`GetError::Closed`] once the queue is closed and drained; [`GetError::Disconnected`]
    /// once it is empty with every other handle with the put side gone ([`Side`]);
    /// [`GetError::Interrupted`] if an [`Interrupter`](crate::Interrupter) the thread
    /// watches fired; [`GetError::Corrupted`].
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Waiting::Forever)
    }

    /// Takes the oldest item if one is waiting.
    ///
    /// # Errors
    /// [`GetError::Empty`], as for [`Queue::get`].
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_with(Waiting::No)
    }

    /// Takes the oldest item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`GetError::Timeout`], as for [`Queue::get`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_with(Waiting::For(timeout))
    }

    /// Takes the oldest item, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, GetError> {
        self.get_with(Waiting::Until(deadline))
    }

    /// Items waiting, approximately: other processes change it while you read it.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether no item is waiting (approximate, as [`Queue::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue holds `capacity` items (approximate, as [`Queue::len`]).
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Closes the queue for every process: later puts fail with [`PutError::Closed`];
    /// consumers take what is left, then get [`GetError::Closed`]. Sleepers wake.
    pub fn close(&self) {
        self.core.q().close();
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.core.q().is_closed()
    }

    /// How blocking calls of this handle wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.core.mode = mode;
    }

    /// For a queue made with [`Options::file`]: writes its items to the file and waits until
    /// the device has them, so they survive an OS crash or power loss too (see
    /// [`Segment::flush`](crate::Segment::flush)). Process crashes need no flush.
    ///
    /// # Errors
    /// The OS error from `msync`.
    pub fn flush(&self) -> std::io::Result<()> {
        self.core.seg().flush()
    }

    /// The name (or file path) of the queue.
    pub fn name(&self) -> String {
        self.core.seg().name()
    }
}

/// A [`Queue`] whose consumers mark each item done, so producers can wait until all work is
/// finished: Python's `multiprocessing.JoinableQueue`. Derefs to [`Queue`] for `put`/`get`.
///
/// Every put counts an unfinished task; [`task_done`](JoinableQueue::task_done) uncounts one
/// taken item; [`join`](JoinableQueue::join) waits until the count is zero. The counts live
/// in the segment, so any process may call any of these.
///
/// A consumer that dies between `get` and `task_done` leaves its task unfinished forever;
/// [`join`](JoinableQueue::join) notices (within about 40 ms) and, once every other task is
/// done, returns [`JoinError::Lost`] with their number instead of waiting forever. Call
/// `task_done` through the handle that took the item: the tasks a handle owes are what
/// counts as lost when its process dies.
///
/// ```
/// let name = format!("doc-joinable-{}", std::process::id());
/// let q = shmq::JoinableQueue::<u32>::create(name.as_str(), 8)?;
/// q.put(7)?;
/// assert_eq!(q.unfinished(), 1);
/// assert_eq!(q.get()?, 7);
/// q.task_done()?;
/// q.join()?; // returns at once: nothing unfinished
/// assert!(q.task_done().is_err()); // more task_done()s than items taken
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T: Pod> {
    queue: Queue<T>,
}

impl<T: Pod> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.queue.fmt(f)
    }
}

impl<T: Pod> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Pod> JoinableQueue<T> {
    /// Creates a joinable queue that holds at most `capacity` items.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(opts: impl Into<Options>, capacity: usize) -> Result<Self, CreateError> {
        Queue::create_as(opts, capacity, Kind::JoinableQueue).map(|queue| JoinableQueue { queue })
    }

    /// Opens an existing joinable queue of `T`.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Queue::open_as(opts, Kind::JoinableQueue, Side::Both).map(|queue| JoinableQueue { queue })
    }

    /// Opens an existing joinable queue of `T` for one [`Side`].
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open_for(opts: impl Into<Options>, side: Side) -> Result<Self, OpenError> {
        Queue::open_as(opts, Kind::JoinableQueue, side).map(|queue| JoinableQueue { queue })
    }

    /// Opens the joinable queue, creating it if it does not exist.
    ///
    /// # Errors
    /// As [`Queue::open_or_create`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        capacity: usize,
    ) -> Result<Self, OpenOrCreateError> {
        Queue::open_or_create_as(opts, capacity, Kind::JoinableQueue)
            .map(|queue| JoinableQueue { queue })
    }

    /// How blocking calls of this handle wait (default [`WaitMode::Hybrid`]); the
    /// [`Queue`] it derefs to cannot be borrowed mutably through it.
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.queue.set_wait_mode(mode);
    }

    /// Marks one taken item done.
    ///
    /// # Errors
    /// [`TaskDoneError`] if every taken item is already marked done; nothing changes.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let q = self.queue.core.q();
        if q.task_done() {
            if let Ok(me) = self.queue.core.me() {
                q.table().settle(me);
            }
            Ok(())
        } else {
            Err(TaskDoneError)
        }
    }

    /// Tasks taken by processes that died before marking them done: they stay unfinished,
    /// and [`join`](JoinableQueue::join) reports them. Reads `/proc` once per attached
    /// process.
    pub fn lost_tasks(&self) -> u64 {
        self.queue.core.q().table().lost()
    }

    /// Accepts the loss of the tasks reported by [`lost_tasks`](JoinableQueue::lost_tasks)
    /// (after redoing them, say): they are marked done, so `join` can succeed again. Returns
    /// how many. Only tasks of dead processes already cleaned up are counted (cleaning up
    /// happens when any process opens the queue or a call waits on it).
    pub fn forget_lost_tasks(&self) -> u64 {
        let q = self.queue.core.q();
        q.reap_dead();
        // At most the unfinished tasks (a forged count cannot make this mark more done).
        let n = q.table().take_lost(q.unfinished());
        (0..n).take_while(|_| q.task_done()).count() as u64
    }

    /// Items put and not yet marked done (in the queue, or taken and being worked on).
    pub fn unfinished(&self) -> u64 {
        self.queue.core.q().unfinished()
    }

    /// A second handle to the same joinable queue, with a participant entry of its own (see
    /// [`Queue::try_clone`]): tasks it takes are owed by it.
    ///
    /// # Errors
    /// As [`Queue::try_clone`].
    pub fn try_clone(&self) -> Result<Self, OpenError> {
        self.queue.try_clone().map(|queue| JoinableQueue { queue })
    }

    /// Whether every item put has been marked done, without waiting.
    ///
    /// # Errors
    /// [`JoinError::Unfinished`] with the number still unfinished; [`JoinError::Lost`] if
    /// every unfinished task was taken by a process that died before marking it done.
    pub fn try_join(&self) -> Result<(), JoinError> {
        let q = self.queue.core.q();
        let unfinished = q.unfinished();
        if unfinished == 0 {
            return Ok(());
        }
        // Reads /proc per attached process: only when something is unfinished.
        let lost = q.table().lost();
        if unfinished <= lost {
            Err(JoinError::Lost {
                lost: unfinished,
                unfinished,
            })
        } else {
            Err(JoinError::Unfinished { unfinished })
        }
    }

    /// Waits until every item put has been marked done.
    ///
    /// # Errors
    /// [`JoinError::Lost`] once every task is done except those taken by processes that
    /// died before marking them done (they never will be); [`JoinError::Interrupted`] if an
    /// [`Interrupter`](crate::Interrupter) the thread watches fired.
    pub fn join(&self) -> Result<(), JoinError> {
        self.join_until(None)
    }

    /// Waits at most `timeout` until every item put has been marked done.
    ///
    /// # Errors
    /// [`JoinError::Timeout`] with the number still unfinished, or as [`JoinableQueue::join`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), JoinError> {
        self.join_until(park::deadline_after(timeout))
    }

    /// Waits until `deadline` at most until every item put has been marked done.
    ///
    /// # Errors
    /// As [`JoinableQueue::join_timeout`].
    pub fn join_deadline(&self, deadline: Instant) -> Result<(), JoinError> {
        self.join_until(Some(deadline))
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<(), JoinError> {
        let q = self.queue.core.q();
        let t = q.table();
        // Tasks that will never be done; looked at again with every liveness check.
        let lost = Cell::new(t.lost());
        let r: Result<(), Ended<()>> = wait::wait(
            WaitMode::Blocking,
            deadline,
            &q.join_sleeper(),
            false,
            || Ok((q.unfinished() <= lost.get()).then_some(())),
            |deep| {
                if deep {
                    lost.set(t.lost());
                }
                false
            },
        );
        let unfinished = q.unfinished();
        match r {
            // Everything done (a lost count that says otherwise is wrong: nothing is left).
            Ok(()) if unfinished == 0 => Ok(()),
            Ok(()) => Err(JoinError::Lost {
                lost: lost.get().min(unfinished),
                unfinished,
            }),
            Err(Ended::Interrupted) => Err(JoinError::Interrupted),
            Err(_) => Err(JoinError::Timeout { unfinished }),
        }
    }
}

impl<T: Pod> Selectable for Queue<T> {
    fn registration(&self, put: bool) -> Reg<'_> {
        self.core.registration(put)
    }
    fn registration_owned(&self, put: bool) -> OwnedReg {
        self.core.registration_owned(put)
    }
}

impl<T: Pod> Selectable for JoinableQueue<T> {
    fn registration(&self, put: bool) -> Reg<'_> {
        self.queue.core.registration(put)
    }
    fn registration_owned(&self, put: bool) -> OwnedReg {
        self.queue.core.registration_owned(put)
    }
}
