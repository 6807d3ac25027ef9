//! `Event`: a flag processes wait on (`multiprocessing.Event`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ensure;
use crate::error::{CreateError, Interrupted, OpenError, OpenOrCreateError};
use crate::segment::{Kind, Layout, Options, Segment, TypeInfo};
use crate::sync::event::{self, RawEvent};
use crate::sync::park::deadline_after;

/// A flag shared by name: `set` wakes every process waiting for it, `clear` resets it
/// (`multiprocessing.Event` semantics). Waiters sleep on a futex after a short spin.
///
/// # Crash safety
/// The event owns no state: a process killed at any point leaves it usable by the others.
///
/// # Examples
/// ```
/// let name = format!("doc-event-{}", std::process::id());
/// let ready = shmq::Event::create(name.as_str())?;
/// assert!(!ready.wait_timeout(std::time::Duration::from_millis(1))?);
/// ready.set();
/// assert!(ready.is_set());
/// ready.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Event {
    /// Shared with the [`Readiness`](crate::Readiness) registrations made of it.
    seg: Arc<Segment>,
}

impl Event {
    fn layout() -> Layout {
        Layout {
            kind: Kind::Event,
            align: 64,
            ty: TypeInfo::NONE,
            payload_size: 64,
            param0: 0,
            param1: 0,
        }
    }

    /// Creates the event, clear.
    ///
    /// # Errors
    /// [`CreateError`]: invalid name, it exists, no space, permissions.
    pub fn create(opts: impl Into<Options>) -> Result<Self, CreateError> {
        Ok(Event {
            seg: Arc::new(Segment::create_kind(&opts.into(), &Self::layout(), |_| {})?),
        })
    }

    /// Opens an existing event.
    ///
    /// # Errors
    /// [`OpenError`]: not found, not an event, corrupted.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        Self::check(Segment::open_kind(
            &opts.into(),
            Kind::Event,
            TypeInfo::NONE,
        )?)
    }

    /// Opens the event, creating it (clear) if it does not exist.
    ///
    /// # Errors
    /// As [`Event::create`] and [`Event::open`].
    pub fn open_or_create(opts: impl Into<Options>) -> Result<Self, OpenOrCreateError> {
        Ok(Self::check(Segment::open_or_create_kind(
            &opts.into(),
            &Self::layout(),
            |_| {},
        )?)?)
    }

    fn check(seg: Segment) -> Result<Self, OpenError> {
        let size = seg.info().payload_size;
        ensure(&seg, size >= event::SIZE as u64, || {
            "event area too small".into()
        })?;
        Ok(Event { seg: Arc::new(seg) })
    }

    /// The [`Select`](crate::Select) registration: ready when the event is set.
    pub(crate) fn registration(&self) -> crate::api::select::Reg<'_> {
        registration_in(&self.seg, &())
    }

    /// The same registration for a [`Readiness`](crate::Readiness): it owns a clone of the
    /// segment.
    pub(crate) fn registration_owned(&self) -> crate::api::readiness::OwnedReg {
        crate::api::readiness::OwnedReg::new(Arc::clone(&self.seg), (), registration_in)
    }

    fn raw(&self) -> RawEvent<'_> {
        raw(&self.seg)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.raw().set();
    }

    /// Resets the flag.
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Whether the flag is set, without waiting: the `try_` form of [`Event::wait`] (the same
    /// as [`Event::is_set`]).
    pub fn try_wait(&self) -> bool {
        self.is_set()
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    /// [`Interrupted`] if an [`Interrupter`](crate::Interrupter) the thread watches fired
    /// while it waited.
    pub fn wait(&self) -> Result<(), Interrupted> {
        while !self.raw().wait(None).map_err(|_| Interrupted)? {}
        Ok(())
    }

    /// Waits at most `timeout`; returns whether the flag is set.
    ///
    /// # Errors
    /// As [`Event::wait`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
        self.raw()
            .wait(deadline_after(timeout))
            .map_err(|_| Interrupted)
    }

    /// Waits until `deadline` at most; returns whether the flag is set.
    ///
    /// # Errors
    /// As [`Event::wait`].
    pub fn wait_deadline(&self, deadline: Instant) -> Result<bool, Interrupted> {
        self.raw().wait(Some(deadline)).map_err(|_| Interrupted)
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.seg.name()
    }
}

/// The event in an event segment (whose size was checked when its handle was made).
fn raw(seg: &Segment) -> RawEvent<'_> {
    RawEvent::at(seg.payload(), 0).expect("event area size validated at open")
}

/// An event's registration: ready when it is set.
fn registration_in<'s>(seg: &'s Segment, _: &'s ()) -> crate::api::select::Reg<'s> {
    let raw = raw(seg);
    let (bell, waiters) = raw.words();
    crate::api::select::Reg::new(
        crate::ring::wait::Counted { bell, waiters },
        move |_| raw.is_set(),
        None,
    )
}
