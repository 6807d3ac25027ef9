#![allow(unsafe_code)]
//! `TypedTopic<T>`, `TypedPublisher<T>`, `TypedSubscriber<T>`: a topic of plain-data values,
//! each message one `T` written and read in place.
//!
//! Names: the byte topic's ends are `Publisher` / `Subscriber` (the roles of a broadcast),
//! and a typed ring's ends wrap byte ends under the same names with a type
//! (`Sender<T>` over `Producer`). A typed topic keeps the broadcast role names and says
//! "typed" in front, as the typed ring's `TypedGrant` / `TypedGuard` do, since `Topic` is
//! already the byte form's name (the `Queue<T>` / `ByteQueue` split came before the byte
//! form there; here the byte form came first).

use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::Pod;
use super::ring_typed::in_place;
use super::topic::{Publisher, Subscriber, Topic, TopicConfig, TopicGrant, TopicMsg};
use crate::error::{
    CreateError, OpenError, OpenOrCreateError, PublishError, TopicAttachError, TopicRecvError,
};
use crate::ring::topic::{Policy, StartAt};
use crate::ring::wait::WaitMode;
use crate::segment::Options;

impl TopicConfig {
    /// `slots` messages of one `T` each (the shape of a [`TypedTopic<T>`]), 64 subscribers,
    /// [`Policy::Block`].
    ///
    /// ```
    /// let config = shmq::TopicConfig::of::<[f64; 4]>(1024).policy(shmq::Policy::Overwrite);
    /// assert_eq!(config.max_message, 32);
    /// ```
    pub fn of<T: Pod>(slots: usize) -> TopicConfig {
        TopicConfig::new(slots, size_of::<T>())
    }
}

/// Why a message of `len` bytes is not one `T`.
fn wrong_size<T>(len: usize) -> String {
    format!(
        "{len} bytes where one {} of {} bytes was expected (published by a byte publisher?)",
        std::any::type_name::<T>(),
        size_of::<T>()
    )
}

/// A [`Topic`] of `T` values: every [`TypedSubscriber<T>`] receives every value a
/// [`TypedPublisher<T>`] publishes, each written into the log and read from it in place.
///
/// The segment records `T`'s identity (its layout fingerprint or tag, size and alignment, as
/// a [`Queue<T>`](crate::Queue) does): opening it as a topic of another type, or as a byte
/// [`Topic`], fails with [`OpenError::TypeMismatch`], which names both layouts.
///
/// Under [`Policy::Block`] publishers write each value in its slot and subscribers read it
/// there (slots are 16-byte aligned; a `T` aligned to more is copied instead). Under
/// [`Policy::Overwrite`] both sides work on checked copies, as the byte form does.
///
/// ```
/// #[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Quote {
///     px: f64,
///     qty: u32,
///     venue: u32,
/// }
///
/// let name = format!("doc-typed-topic-{}", std::process::id());
/// let topic = shmq::TypedTopic::<Quote>::create(name.as_str(), 1024)?;
/// let mut sub = topic.subscriber()?; // in practice: other processes, TypedTopic::open(name)
/// let mut tx = topic.publisher()?;
///
/// tx.publish(&Quote { px: 101.5, qty: 10, venue: 1 })?;
/// let mut slot = tx.reserve()?; // or write in place
/// slot.px = 101.25;
/// slot.qty = 5;
/// slot.venue = 2;
/// slot.commit();
///
/// assert_eq!(sub.recv()?.qty, 10);
/// assert_eq!(*sub.recv()?, Quote { px: 101.25, qty: 5, venue: 2 });
/// assert_eq!(topic.latest()?.map(|q| q.venue), Some(2));
///
/// // Another type cannot open it.
/// let err = shmq::TypedTopic::<[u64; 2]>::open(name.as_str()).unwrap_err();
/// assert!(matches!(err, shmq::OpenError::TypeMismatch { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedTopic<T: Pod> {
    topic: Topic,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod> fmt::Debug for TypedTopic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTopic")
            .field("type", &std::any::type_name::<T>())
            .field("topic", &self.topic)
            .finish()
    }
}

impl<T: Pod> TypedTopic<T> {
    fn wrap(topic: Topic) -> Self {
        TypedTopic {
            topic,
            _t: PhantomData,
        }
    }

    /// An opened topic, if its slots hold exactly one `T` (the identity matched, so a
    /// different size means a forged header).
    fn checked(topic: Topic) -> Result<Self, OpenError> {
        if topic.max_message() != size_of::<T>() {
            return Err(OpenError::Corrupted {
                name: topic.name(),
                reason: format!(
                    "a topic of {} ({} bytes) records messages of {} bytes",
                    std::any::type_name::<T>(),
                    size_of::<T>(),
                    topic.max_message()
                ),
            });
        }
        Ok(TypedTopic::wrap(topic))
    }

    fn config_fits(opts: &Options, config: &TopicConfig) -> Result<(), CreateError> {
        if config.max_message == size_of::<T>() {
            return Ok(());
        }
        Err(CreateError::InvalidSize {
            name: opts.label(),
            reason: format!(
                "a typed topic's messages are one {} of {} bytes, not {}: make the \
                 configuration with TopicConfig::of::<T>(slots)",
                std::any::type_name::<T>(),
                size_of::<T>(),
                config.max_message
            ),
        })
    }

    /// Creates a [`Policy::Block`] topic of `slots` values (rounded up to a power of two)
    /// with room for 64 subscribers, recording `T`'s identity.
    ///
    /// # Errors
    /// As [`Topic::create`].
    pub fn create(opts: impl Into<Options>, slots: usize) -> Result<Self, CreateError> {
        TypedTopic::create_with(opts, &TopicConfig::of::<T>(slots))
    }

    /// Creates a topic as `config` describes; make it with [`TopicConfig::of`].
    ///
    /// # Errors
    /// As [`Topic::create`]; [`CreateError::InvalidSize`] if `config.max_message` is not
    /// `size_of::<T>()`.
    pub fn create_with(
        opts: impl Into<Options>,
        config: &TopicConfig,
    ) -> Result<Self, CreateError> {
        let opts = opts.into();
        TypedTopic::<T>::config_fits(&opts, config)?;
        Topic::create_typed(opts, config, crate::api::type_info::<T>()).map(TypedTopic::wrap)
    }

    /// Opens an existing topic of `T`.
    ///
    /// # Errors
    /// As [`Topic::open`]; [`OpenError::TypeMismatch`] if it was created for another type
    /// (or as a byte topic), naming both.
    pub fn open(opts: impl Into<Options>) -> Result<Self, OpenError> {
        TypedTopic::checked(Topic::open_typed(
            opts.into(),
            crate::api::type_info::<T>(),
        )?)
    }

    /// Opens the topic of `T`, creating it as `config` describes if it does not exist (safe
    /// when several processes race to do this).
    ///
    /// # Errors
    /// As [`TypedTopic::create_with`] and [`TypedTopic::open`].
    pub fn open_or_create(
        opts: impl Into<Options>,
        config: &TopicConfig,
    ) -> Result<Self, OpenOrCreateError> {
        let opts = opts.into();
        TypedTopic::<T>::config_fits(&opts, config)?;
        let topic = Topic::open_or_create_typed(opts, config, crate::api::type_info::<T>())?;
        Ok(TypedTopic::checked(topic)?)
    }

    /// Attaches a publisher.
    ///
    /// # Errors
    /// As [`Topic::publisher`].
    pub fn publisher(&self) -> Result<TypedPublisher<T>, TopicAttachError> {
        Ok(TypedPublisher::wrap(self.topic.publisher()?))
    }

    /// Attaches a subscriber that receives the values published after it joins.
    ///
    /// # Errors
    /// As [`Topic::subscriber`].
    pub fn subscriber(&self) -> Result<TypedSubscriber<T>, TopicAttachError> {
        Ok(TypedSubscriber::new(self.topic.subscriber()?))
    }

    /// Attaches a subscriber that starts where `start` says (see [`Topic::subscriber_from`]).
    ///
    /// # Errors
    /// As [`Topic::subscriber`].
    pub fn subscriber_from(&self, start: StartAt) -> Result<TypedSubscriber<T>, TopicAttachError> {
        Ok(TypedSubscriber::new(self.topic.subscriber_from(start)?))
    }

    /// A copy of the last value published, without subscribing (see [`Topic::latest`]).
    ///
    /// # Errors
    /// [`TopicRecvError::Corrupted`] if shared memory fails a check or the last message is
    /// not one `T`.
    pub fn latest(&self) -> Result<Option<T>, TopicRecvError> {
        let Some(bytes) = self.topic.latest()? else {
            return Ok(None);
        };
        T::read_from_bytes(&bytes)
            .map(Some)
            .map_err(|()| TopicRecvError::Corrupted {
                reason: format!("the latest message is {}", wrong_size::<T>(bytes.len())),
            })
    }

    /// Values published so far (see [`Topic::published`]).
    pub fn published(&self) -> u64 {
        self.topic.published()
    }

    /// Subscribers attached now.
    pub fn subscriber_count(&self) -> usize {
        self.topic.subscriber_count()
    }

    /// The policy the topic was created with.
    pub fn policy(&self) -> Policy {
        self.topic.policy()
    }

    /// Values the log holds.
    pub fn slots(&self) -> usize {
        self.topic.slots()
    }

    /// The segment's name.
    pub fn name(&self) -> String {
        self.topic.name()
    }

    /// The topic as bytes: its geometry, header, and byte ends (a byte publisher's messages
    /// reach typed subscribers, which report any that is not one `T` as `Corrupted` and skip
    /// it).
    pub fn topic(&self) -> &Topic {
        &self.topic
    }
}

/// Publishes values of `T` on a [`TypedTopic<T>`], each one message of `size_of::<T>()`
/// bytes. Lets go of its entry on drop.
///
/// # Crash safety
/// As [`Publisher`]: a value being written when the process died is never delivered.
pub struct TypedPublisher<T: Pod> {
    inner: Publisher,
    _t: PhantomData<fn(T)>,
}

impl<T: Pod> fmt::Debug for TypedPublisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedPublisher")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: Pod> TypedPublisher<T> {
    fn wrap(inner: Publisher) -> Self {
        TypedPublisher {
            inner,
            _t: PhantomData,
        }
    }

    /// Publishes values of `T` through a byte publisher (of a byte topic, say). No identity
    /// is checked: the topic's creator decided what it carries.
    ///
    /// # Errors
    /// [`PublishError::TooLarge`] if a `T` is larger than the topic's maximum message.
    pub fn new(inner: Publisher) -> Result<Self, PublishError> {
        if size_of::<T>() > inner.max_message() {
            return Err(PublishError::TooLarge {
                len: size_of::<T>(),
                max: inner.max_message(),
            });
        }
        Ok(TypedPublisher::wrap(inner))
    }

    /// Publishes a copy of `value`, waiting for room as long as needed (Block); returns its
    /// sequence number.
    ///
    /// # Errors
    /// As [`Publisher::publish`].
    pub fn publish(&mut self, value: &T) -> Result<u64, PublishError> {
        self.inner.publish(value.as_bytes())
    }

    /// Publishes a copy of `value` without waiting.
    ///
    /// # Errors
    /// As [`Publisher::try_publish`].
    pub fn try_publish(&mut self, value: &T) -> Result<u64, PublishError> {
        self.inner.try_publish(value.as_bytes())
    }

    /// Publishes a copy of `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Publisher::publish_timeout`].
    pub fn publish_timeout(&mut self, value: &T, timeout: Duration) -> Result<u64, PublishError> {
        self.inner.publish_timeout(value.as_bytes(), timeout)
    }

    /// Publishes a copy of `value`, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`Publisher::publish_deadline`].
    pub fn publish_deadline(&mut self, value: &T, deadline: Instant) -> Result<u64, PublishError> {
        self.inner.publish_deadline(value.as_bytes(), deadline)
    }

    /// The next value's slot, waiting for room as long as needed (Block): write the value
    /// through the grant, then [`commit`](TypedTopicGrant::commit). It holds the slot's old
    /// bytes until written (Block) or zeros (Overwrite).
    ///
    /// # Errors
    /// As [`Publisher::reserve`].
    pub fn reserve(&mut self) -> Result<TypedTopicGrant<'_, T>, PublishError> {
        Ok(TypedTopicGrant::new(self.inner.reserve(size_of::<T>())?))
    }

    /// The next value's slot, without waiting.
    ///
    /// # Errors
    /// As [`Publisher::try_reserve`].
    pub fn try_reserve(&mut self) -> Result<TypedTopicGrant<'_, T>, PublishError> {
        Ok(TypedTopicGrant::new(
            self.inner.try_reserve(size_of::<T>())?,
        ))
    }

    /// The next value's slot, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Publisher::reserve_timeout`].
    pub fn reserve_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<TypedTopicGrant<'_, T>, PublishError> {
        Ok(TypedTopicGrant::new(
            self.inner.reserve_timeout(size_of::<T>(), timeout)?,
        ))
    }

    /// The next value's slot, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`Publisher::reserve_deadline`].
    pub fn reserve_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<TypedTopicGrant<'_, T>, PublishError> {
        Ok(TypedTopicGrant::new(
            self.inner.reserve_deadline(size_of::<T>(), deadline)?,
        ))
    }

    /// [`TypedPublisher::reserve`] for async code (feature `async`); see
    /// [`Publisher::reserve_async`].
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has claimed nothing.
    ///
    /// # Errors
    /// As [`Publisher::reserve`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn reserve_async(&mut self) -> Result<TypedTopicGrant<'_, T>, PublishError> {
        Ok(TypedTopicGrant::new(
            self.inner.reserve_async(size_of::<T>()).await?,
        ))
    }

    /// [`TypedPublisher::publish`] for async code (feature `async`); see
    /// [`Publisher::reserve_async`].
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has published nothing.
    ///
    /// # Errors
    /// As [`Publisher::publish`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn publish_async(&mut self, value: &T) -> Result<u64, PublishError> {
        self.inner.publish_async(value.as_bytes()).await
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.inner.set_wait_mode(mode);
    }

    /// The current wait mode.
    pub fn wait_mode(&self) -> WaitMode {
        self.inner.wait_mode()
    }

    /// The byte publisher.
    pub fn into_inner(self) -> Publisher {
        self.inner
    }
}

impl<T: Pod> AsRef<Publisher> for TypedPublisher<T> {
    fn as_ref(&self) -> &Publisher {
        &self.inner
    }
}

/// The slot of one `T` in the topic; derefs to `T`. [`commit`](TypedTopicGrant::commit)
/// publishes it; dropping it publishes nothing (subscribers skip the slot).
///
/// The value is written in place, or, where the slot is not aligned for `T` (a `T` aligned
/// above 16 bytes, or the Overwrite policy's buffer), into an aligned copy that `commit`
/// writes into the slot.
#[must_use = "a grant publishes nothing unless committed"]
pub struct TypedTopicGrant<'a, T: Pod> {
    grant: TopicGrant<'a>,
    /// The value being written when the slot is not aligned for `T` (it starts as a copy of
    /// the slot's bytes, as the in-place value does). `None`: written in place.
    local: Option<T>,
}

impl<'a, T: Pod> TypedTopicGrant<'a, T> {
    /// Wraps a grant of exactly `size_of::<T>()` bytes.
    fn new(grant: TopicGrant<'a>) -> Self {
        let local = if in_place::<T>(&grant).is_some() {
            None
        } else {
            T::read_from_bytes(&grant).ok()
        };
        TypedTopicGrant { grant, local }
    }

    /// The value's sequence number.
    pub fn seq(&self) -> u64 {
        self.grant.seq()
    }

    /// Publishes the value; returns its sequence number.
    pub fn commit(self) -> u64 {
        let TypedTopicGrant { mut grant, local } = self;
        if let Some(v) = local {
            grant.copy_from_slice(v.as_bytes());
        }
        grant.commit()
    }
}

impl<T: Pod> Deref for TypedTopicGrant<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.local {
            Some(v) => v,
            // SAFETY: `local` is `None` only if the grant's bytes (exactly `size_of::<T>()`,
            // as reserved) are aligned for `T` (checked in `new`); they are this grant's
            // alone while it lives (`TopicGrant`'s protocol: no subscriber reads the slot
            // before the commit, no publisher claims it again); any bit pattern is a valid
            // `T` (`T: Pod`).
            None => unsafe { &*self.grant.as_ptr().cast::<T>() },
        }
    }
}

impl<T: Pod> DerefMut for TypedTopicGrant<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.local {
            Some(v) => v,
            // SAFETY: as in `deref`; `&mut self` makes this the only reference, and any bytes
            // written through it leave a valid `T`.
            None => unsafe { &mut *self.grant.as_mut_ptr().cast::<T>() },
        }
    }
}

impl<T: Pod> fmt::Debug for TypedTopicGrant<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTopicGrant")
            .field("seq", &self.seq())
            .finish_non_exhaustive()
    }
}

/// Receives the values of a [`TypedTopic<T>`], with its own cursor. Lets go of its entry on
/// drop.
///
/// A message that is not one `T` (a byte publisher's, on [`TypedTopic::topic`]) is reported
/// as [`TopicRecvError::Corrupted`] and skipped: the next receive gets the next one.
///
/// # Crash safety
/// As [`Subscriber`]: one that dies stops holding a Block topic back within about 100 ms.
pub struct TypedSubscriber<T: Pod> {
    inner: Subscriber,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> fmt::Debug for TypedSubscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedSubscriber")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: Pod> TypedSubscriber<T> {
    /// Receives values of `T` through a byte subscriber. No identity is checked.
    pub fn new(inner: Subscriber) -> Self {
        TypedSubscriber {
            inner,
            _t: PhantomData,
        }
    }

    fn typed(msg: TopicMsg<'_>) -> Result<TypedTopicMsg<'_, T>, TopicRecvError> {
        if msg.len() != size_of::<T>() {
            let reason = format!(
                "message {} is {}; it was skipped",
                msg.seq(),
                wrong_size::<T>(msg.len())
            );
            // Dropping the guard moves past the stray message, so the stream goes on.
            drop(msg);
            return Err(TopicRecvError::Corrupted { reason });
        }
        let local = if in_place::<T>(&msg).is_some() {
            None
        } else {
            T::read_from_bytes(&msg).ok()
        };
        Ok(TypedTopicMsg { msg, local })
    }

    /// The next value, waiting as long as needed.
    ///
    /// # Errors
    /// As [`Subscriber::recv`]; `Corrupted` for a message that is not one `T` (skipped).
    pub fn recv(&mut self) -> Result<TypedTopicMsg<'_, T>, TopicRecvError> {
        Self::typed(self.inner.recv()?)
    }

    /// The next value, if one is there.
    ///
    /// # Errors
    /// As [`Subscriber::try_recv`]; `Corrupted` for a message that is not one `T`.
    pub fn try_recv(&mut self) -> Result<TypedTopicMsg<'_, T>, TopicRecvError> {
        Self::typed(self.inner.try_recv()?)
    }

    /// The next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Subscriber::recv_timeout`]; `Corrupted` for a message that is not one `T`.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<TypedTopicMsg<'_, T>, TopicRecvError> {
        Self::typed(self.inner.recv_timeout(timeout)?)
    }

    /// The next value, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`TypedSubscriber::recv_timeout`].
    pub fn recv_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<TypedTopicMsg<'_, T>, TopicRecvError> {
        Self::typed(self.inner.recv_deadline(deadline)?)
    }

    /// [`TypedSubscriber::recv`] for async code (feature `async`); see
    /// [`Subscriber::recv_async`].
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has taken nothing.
    ///
    /// # Errors
    /// As [`TypedSubscriber::recv`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn recv_async(&mut self) -> Result<TypedTopicMsg<'_, T>, TopicRecvError> {
        Self::typed(self.inner.recv_async().await?)
    }

    /// The sequence number of the next value this subscriber will receive.
    pub fn position(&self) -> u64 {
        self.inner.position()
    }

    /// Values published that this subscriber has not received yet.
    pub fn pending(&self) -> u64 {
        self.inner.pending()
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.inner.set_wait_mode(mode);
    }

    /// The current wait mode.
    pub fn wait_mode(&self) -> WaitMode {
        self.inner.wait_mode()
    }

    /// The byte subscriber.
    pub fn into_inner(self) -> Subscriber {
        self.inner
    }
}

impl<T: Pod> AsRef<Subscriber> for TypedSubscriber<T> {
    fn as_ref(&self) -> &Subscriber {
        &self.inner
    }
}

/// A received `T`: in place in the log under [`Policy::Block`] (publishers cannot reuse its
/// slot until the guard drops), a checked copy under [`Policy::Overwrite`] or for a `T`
/// aligned above 16 bytes. Dropping it moves the subscriber past it.
#[must_use = "the value is released as soon as the guard drops"]
pub struct TypedTopicMsg<'a, T: Pod> {
    msg: TopicMsg<'a>,
    /// A copy when the message's bytes are not aligned for `T`; `None`: read in place.
    local: Option<T>,
}

impl<T: Pod> TypedTopicMsg<'_, T> {
    /// The value's sequence number (its position in the topic's stream).
    pub fn seq(&self) -> u64 {
        self.msg.seq()
    }

    /// A copy of the value.
    pub fn value(&self) -> T {
        T::read_from_bytes(&self.msg).expect("the message is one T (checked on receipt)")
    }
}

impl<T: Pod> Deref for TypedTopicMsg<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.local {
            Some(v) => v,
            // SAFETY: `local` is `None` only if the message's bytes (exactly `size_of::<T>()`,
            // checked in `typed`) are aligned for `T`; they do not change while the guard
            // lives (Block: no publisher reuses the slot before the subscriber moves past it,
            // which it does when the guard drops; Overwrite: the subscriber's own copy); any
            // bit pattern is a valid `T` (`T: Pod`).
            None => unsafe { &*self.msg.as_ptr().cast::<T>() },
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for TypedTopicMsg<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTopicMsg")
            .field("seq", &self.seq())
            .field("value", &**self)
            .finish()
    }
}
