//! `Semaphore`: a counting semaphore across processes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ensure;
use crate::error::{CreateError, Interrupted, OpenError, OpenOrCreateError, SemaphoreFull};
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};
use crate::sync::park::deadline_after;
use crate::sync::semaphore::{self, RawSemaphore};

/// Largest value an unbounded semaphore may reach.
pub const SEMAPHORE_MAX: u32 = i32::MAX as u32;

/// A counting semaphore shared by name (`multiprocessing.Semaphore` /
/// `BoundedSemaphore`). Waiters sleep on a futex after a short spin; `release` only enters the
/// kernel when someone sleeps.
///
/// # Crash safety
/// Permits are not owned: a process that dies holding one does not give it back (as with
/// POSIX semaphores). Use a [`Mutex`](crate::Mutex) where a dead holder must be detected.
///
/// # Examples
/// ```
/// let name = format!("doc-sem-{}", std::process::id());
/// let slots = shmq::Semaphore::create(name.as_str(), 2)?;
/// assert!(slots.try_acquire());
/// assert!(slots.try_acquire());
/// assert!(!slots.acquire_timeout(std::time::Duration::from_millis(1))?);
/// slots.release()?;
/// assert_eq!(slots.value(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Semaphore {
    /// Shared with the [`Readiness`](crate::Readiness) registrations made of it.
    seg: Arc<Segment>,
    max: u32,
}

impl Semaphore {
    fn layout(max: u32) -> Layout {
        Layout {
            kind: Kind::Semaphore,
            align: 64,
            ty: TypeInfo::NONE,
            payload_size: 64,
            param0: u64::from(max),
            param1: 0,
        }
    }

    /// Creates a semaphore with `value` permits (at most [`SEMAPHORE_MAX`]).
    ///
    /// # Errors
    /// [`CreateError`]; [`CreateError::InvalidSize`] if `value` is above the maximum.
    pub fn create(opts: impl Into<Options>, value: u32) -> Result<Self, CreateError> {
        Self::create_bounded(opts, value, SEMAPHORE_MAX)
    }

    /// Creates a bounded semaphore: `release` fails once the count would exceed `max`.
    ///
    /// # Errors
    /// [`CreateError`]; [`CreateError::InvalidSize`] if `value > max` or `max` is 0.
    pub fn create_bounded(
        opts: impl Into<Options>,
        value: u32,
        max: u32,
    ) -> Result<Self, CreateError> {
        let opts = opts.into();
        if max == 0 || value > max {
            return Err(CreateError::InvalidSize {
                name: opts.label(),
                reason: format!("semaphore value {value} with maximum {max}"),
            });
        }
        let seg = Segment::create_kind(&opts, &Self::layout(max), |r| {
            if let Some(s) = RawSemaphore::at(r, 0) {
                s.init(value);
            }
        })?;
        Ok(Semaphore {
            seg: Arc::new(seg),
            max,
        })
    }

    /// Opens an existing semaphore.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not a semaphore, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Self::check(Segment::open_kind(
            &opts.into(),
            Kind::Semaphore,
            TypeInfo::NONE,
        )?)
    }

    /// Opens the semaphore, creating it with `value` permits if it does not exist.
    ///
    /// # Errors
    /// As [`Semaphore::create`] and [`Semaphore::open`].
    pub fn open_or_create(opts: impl Into<Options>, value: u32) -> Result<Self, OpenOrCreateError> {
        let seg = Segment::open_or_create_kind(&opts.into(), &Self::layout(SEMAPHORE_MAX), |r| {
            if let Some(s) = RawSemaphore::at(r, 0) {
                s.init(value.min(SEMAPHORE_MAX));
            }
        })?;
        Ok(Self::check(seg)?)
    }

    fn check(seg: Segment) -> Result<Self, OpenError> {
        let info = seg.info();
        ensure(&seg, info.payload_size >= semaphore::SIZE as u64, || {
            "semaphore area too small".into()
        })?;
        let max = u32::try_from(info.param0).ok().filter(|&m| m > 0);
        ensure(&seg, max.is_some(), || {
            format!("semaphore maximum {}", info.param0)
        })?;
        Ok(Semaphore {
            max: max.unwrap_or(1),
            seg: Arc::new(seg),
        })
    }

    /// The [`Select`](crate::Select) registration: ready when a permit is free. A release
    /// wakes one sleeper, so a select that returns another registration wakes the next.
    pub(crate) fn registration(&self) -> crate::api::select::Reg<'_> {
        registration_in(&self.seg, &())
    }

    /// The same registration for a [`Readiness`](crate::Readiness): it owns a clone of the
    /// segment.
    pub(crate) fn registration_owned(&self) -> crate::api::readiness::OwnedReg {
        crate::api::readiness::OwnedReg::new(Arc::clone(&self.seg), (), registration_in)
    }

    fn raw(&self) -> RawSemaphore<'_> {
        raw(&self.seg)
    }

    /// Takes a permit, waiting as long as needed.
    ///
    /// # Errors
    /// [`Interrupted`] if an [`Interrupter`](crate::Interrupter) the thread watches fired
    /// while it waited.
    pub fn acquire(&self) -> Result<(), Interrupted> {
        while !self.raw().acquire(None).map_err(|_| Interrupted)? {}
        Ok(())
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> bool {
        self.raw().try_acquire()
    }

    /// Takes a permit, waiting at most `timeout`. Returns whether it got one.
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
        self.raw()
            .acquire(deadline_after(timeout))
            .map_err(|_| Interrupted)
    }

    /// Takes a permit, waiting until `deadline` at most. Returns whether it got one.
    ///
    /// # Errors
    /// As [`Semaphore::acquire`].
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<bool, Interrupted> {
        self.raw().acquire(Some(deadline)).map_err(|_| Interrupted)
    }

    /// Returns a permit, waking one waiter.
    ///
    /// # Errors
    /// [`SemaphoreFull`] if the count is already at its maximum.
    pub fn release(&self) -> Result<(), SemaphoreFull> {
        self.raw()
            .release(self.max)
            .map_err(|()| SemaphoreFull { max: self.max })
    }

    /// Permits available now.
    pub fn value(&self) -> u32 {
        self.raw().value()
    }

    /// The largest value the count may reach.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// The semaphore in a semaphore segment (whose size was checked when its handle was made).
fn raw(seg: &Segment) -> RawSemaphore<'_> {
    RawSemaphore::at(seg.payload(), 0).expect("semaphore area size validated at open")
}

/// A semaphore's registration: ready when a permit is free; a wake-up it took and leaves is
/// handed to the next sleeper.
fn registration_in<'s>(seg: &'s Segment, _: &'s ()) -> crate::api::select::Reg<'s> {
    let raw = raw(seg);
    let (bell, waiters) = raw.words();
    crate::api::select::Reg::new(
        crate::ring::wait::Counted { bell, waiters },
        move |_| raw.value() > 0,
        Some(Box::new(move || {
            crate::sync::park::wake(bell, 1);
        })),
    )
}
