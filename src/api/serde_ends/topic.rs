//! `SerdeTopic<T>`, `SerdePublisher<T>`, `SerdeSubscriber<T>`: a topic that carries serde
//! values.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    SerdeOptions, SerdeRecvError, SerdeSendError, decode, encode_into, encoded_len, until_end_or,
};
use crate::api::topic::{Publisher, Subscriber, Topic, TopicConfig, TopicGrant, TopicMsg};
use crate::error::{
    CreateError, OpenError, OpenOrCreateError, PublishError, TopicAttachError, TopicRecvError,
};
use crate::ring::topic::{Policy, StartAt};
use crate::ring::wait::WaitMode;

/// A [`Topic`] of serde values (feature `serde`): every [`SerdeSubscriber<T>`] receives every
/// value a [`SerdePublisher<T>`] publishes, each encoded with postcard straight into the log
/// and decoded straight from it.
///
/// Encoding in place, bad messages and identity work as for the ring's ends (see
/// [`SerdeSender`](crate::SerdeSender)): a publish measures the value, reserves exactly that
/// many bytes (up to the topic's maximum message, else
/// [`SerdeSendError::TooLarge`]) and serializes into the slot; a message that does not decode
/// as `T` is a [`DecodeError`](crate::DecodeError) that consumes it, and the next receive
/// gets the next message; the creator records the identity ([`SerdeOptions`]: a tag, or the
/// type's name and schema version) and every opener checks it.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use shmq::{SerdeTopic, TopicConfig};
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// enum Event {
///     Trade { sym: String, px: f64 },
///     Halt(String),
/// }
///
/// let name = format!("doc-serde-topic-{}", std::process::id());
/// let topic = SerdeTopic::<Event>::create(name.as_str(), &TopicConfig::new(256, 128))?;
/// let mut sub = topic.subscriber()?; // in practice: other processes, SerdeTopic::open(name)
/// let mut tx = topic.publisher()?;
/// tx.publish(&Event::Trade { sym: "ABC".into(), px: 9.5 })?;
/// tx.publish(&Event::Halt("ABC".into()))?;
/// drop(tx);
/// let got: Vec<Event> = sub.iter().collect::<Result<_, _>>()?;
/// assert_eq!(got[1], Event::Halt("ABC".into()));
///
/// // Another type, or another schema version, cannot open it.
/// let v2 = shmq::SerdeOptions::new(name.as_str()).schema(2);
/// assert!(SerdeTopic::<Event>::open(v2).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SerdeTopic<T> {
    topic: Topic,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for SerdeTopic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeTopic")
            .field("type", &std::any::type_name::<T>())
            .field("topic", &self.topic)
            .finish()
    }
}

impl<T> SerdeTopic<T> {
    fn wrap(topic: Topic) -> Self {
        SerdeTopic {
            topic,
            _t: PhantomData,
        }
    }

    /// Creates a topic as `config` describes (its `max_message` bounds the encoded size of
    /// a value), identified as carrying `T`.
    ///
    /// # Errors
    /// As [`Topic::create`].
    pub fn create(
        opts: impl Into<SerdeOptions>,
        config: &TopicConfig,
    ) -> Result<SerdeTopic<T>, CreateError> {
        Topic::create_with(opts.into().for_type::<T>(), config).map(SerdeTopic::wrap)
    }

    /// Opens a topic created for `T`.
    ///
    /// # Errors
    /// As [`Topic::open`]; [`OpenError::TypeMismatch`] if its identity is another.
    pub fn open(opts: impl Into<SerdeOptions>) -> Result<SerdeTopic<T>, OpenError> {
        Topic::open(opts.into().for_type::<T>()).map(SerdeTopic::wrap)
    }

    /// Opens the topic, creating it as `config` describes if it does not exist.
    ///
    /// # Errors
    /// As [`SerdeTopic::create`] and [`SerdeTopic::open`].
    pub fn open_or_create(
        opts: impl Into<SerdeOptions>,
        config: &TopicConfig,
    ) -> Result<SerdeTopic<T>, OpenOrCreateError> {
        Topic::open_or_create(opts.into().for_type::<T>(), config).map(SerdeTopic::wrap)
    }

    /// Attaches a publisher.
    ///
    /// # Errors
    /// As [`Topic::publisher`].
    pub fn publisher(&self) -> Result<SerdePublisher<T>, TopicAttachError>
    where
        T: Serialize,
    {
        Ok(SerdePublisher::new(self.topic.publisher()?))
    }

    /// Attaches a subscriber that receives the values published after it joins.
    ///
    /// # Errors
    /// As [`Topic::subscriber`].
    pub fn subscriber(&self) -> Result<SerdeSubscriber<T>, TopicAttachError>
    where
        T: DeserializeOwned,
    {
        Ok(SerdeSubscriber::new(self.topic.subscriber()?))
    }

    /// Attaches a subscriber that starts where `start` says (see [`Topic::subscriber_from`]).
    ///
    /// # Errors
    /// As [`Topic::subscriber`].
    pub fn subscriber_from(&self, start: StartAt) -> Result<SerdeSubscriber<T>, TopicAttachError>
    where
        T: DeserializeOwned,
    {
        Ok(SerdeSubscriber::new(self.topic.subscriber_from(start)?))
    }

    /// The last value published, decoded, without subscribing (see [`Topic::latest`]).
    ///
    /// # Errors
    /// [`SerdeRecvError::Decode`] if it does not decode as `T`;
    /// [`TopicRecvError::Corrupted`] if shared memory fails a check.
    pub fn latest(&self) -> Result<Option<T>, SerdeRecvError<TopicRecvError>>
    where
        T: DeserializeOwned,
    {
        match self.topic.latest().map_err(SerdeRecvError::Recv)? {
            Some(bytes) => Ok(Some(decode::<T>(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Values published so far.
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

    /// The segment's name.
    pub fn name(&self) -> String {
        self.topic.name()
    }

    /// The topic as bytes: its geometry, header and byte ends.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }
}

/// Publishes values of `T` on a topic, each encoded with postcard straight into its slot
/// (feature `serde`). See [`SerdeTopic`].
///
/// # Crash safety
/// As [`Publisher`]: a value being written when the process died is never delivered.
pub struct SerdePublisher<T> {
    inner: Publisher,
    _t: PhantomData<fn(&T)>,
}

impl<T> fmt::Debug for SerdePublisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdePublisher")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// Publishes `value` in `grant`, which holds exactly its encoded size.
fn fill<T: Serialize>(
    mut grant: TopicGrant<'_>,
    value: &T,
) -> Result<u64, SerdeSendError<PublishError>> {
    // Dropping the grant on an error publishes nothing (subscribers skip the slot).
    encode_into(value, &mut grant)?;
    Ok(grant.commit())
}

impl<T: Serialize> SerdePublisher<T> {
    /// Publishes through a publisher attached elsewhere. No identity is checked: the topic's
    /// creator decided what it carries.
    pub fn new(inner: Publisher) -> SerdePublisher<T> {
        SerdePublisher {
            inner,
            _t: PhantomData,
        }
    }

    fn len(&self, value: &T) -> Result<usize, SerdeSendError<PublishError>> {
        encoded_len(value, self.inner.max_message(), "topic")
    }

    /// Encodes and publishes `value`, waiting for room as long as needed (Block); returns
    /// its sequence number.
    ///
    /// # Errors
    /// [`SerdeSendError::TooLarge`] if it encodes to more than
    /// [`max_message`](SerdePublisher::max_message) bytes, [`SerdeSendError::Encode`] if it
    /// cannot be encoded, else the topic's error as for [`Publisher::publish`]. Nothing is
    /// published.
    pub fn publish(&mut self, value: &T) -> Result<u64, SerdeSendError<PublishError>> {
        let len = self.len(value)?;
        fill(
            self.inner.reserve(len).map_err(SerdeSendError::Send)?,
            value,
        )
    }

    /// Encodes and publishes `value` without waiting.
    ///
    /// # Errors
    /// As [`SerdePublisher::publish`], with the topic's errors of [`Publisher::try_publish`].
    pub fn try_publish(&mut self, value: &T) -> Result<u64, SerdeSendError<PublishError>> {
        let len = self.len(value)?;
        fill(
            self.inner.try_reserve(len).map_err(SerdeSendError::Send)?,
            value,
        )
    }

    /// Encodes and publishes `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`SerdePublisher::publish`], with the topic's errors of
    /// [`Publisher::publish_timeout`].
    pub fn publish_timeout(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<u64, SerdeSendError<PublishError>> {
        let len = self.len(value)?;
        let grant = self.inner.reserve_timeout(len, timeout);
        fill(grant.map_err(SerdeSendError::Send)?, value)
    }

    /// Encodes and publishes `value`, waiting until `deadline` at most for room.
    ///
    /// # Errors
    /// As [`SerdePublisher::publish_timeout`].
    pub fn publish_deadline(
        &mut self,
        value: &T,
        deadline: Instant,
    ) -> Result<u64, SerdeSendError<PublishError>> {
        let len = self.len(value)?;
        let grant = self.inner.reserve_deadline(len, deadline);
        fill(grant.map_err(SerdeSendError::Send)?, value)
    }

    /// [`SerdePublisher::publish`] for async code (feature `async`); see
    /// [`Publisher::reserve_async`].
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has published nothing.
    ///
    /// # Errors
    /// As [`SerdePublisher::publish`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn publish_async(&mut self, value: &T) -> Result<u64, SerdeSendError<PublishError>> {
        let len = self.len(value)?;
        let grant = self.inner.reserve_async(len).await;
        fill(grant.map_err(SerdeSendError::Send)?, value)
    }

    /// Largest encoded value accepted, in bytes.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.inner.set_wait_mode(mode);
    }

    /// The byte publisher, for raw messages.
    pub fn into_inner(self) -> Publisher {
        self.inner
    }
}

impl<T> AsRef<Publisher> for SerdePublisher<T> {
    fn as_ref(&self) -> &Publisher {
        &self.inner
    }
}

/// Receives the values of a topic, each decoded straight from the log (feature `serde`),
/// with its own cursor. A message that does not decode is consumed and reported as
/// [`SerdeRecvError::Decode`]; the next receive gets the next message. See [`SerdeTopic`].
///
/// # Crash safety
/// As [`Subscriber`].
pub struct SerdeSubscriber<T> {
    inner: Subscriber,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for SerdeSubscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeSubscriber")
            .field("type", &std::any::type_name::<T>())
            .field("inner", &self.inner)
            .finish()
    }
}

/// Decodes the message in `msg`, then moves past it (also when it does not decode).
fn take<T: DeserializeOwned>(msg: TopicMsg<'_>) -> Result<T, SerdeRecvError<TopicRecvError>> {
    let value = decode::<T>(&msg);
    drop(msg);
    Ok(value?)
}

impl<T: DeserializeOwned> SerdeSubscriber<T> {
    /// Receives through a subscriber attached elsewhere. No identity is checked.
    pub fn new(inner: Subscriber) -> SerdeSubscriber<T> {
        SerdeSubscriber {
            inner,
            _t: PhantomData,
        }
    }

    /// The next value, waiting as long as needed (also for a first publisher).
    ///
    /// # Errors
    /// [`SerdeRecvError::Decode`] for a message that is not a `T` (consumed), else the
    /// topic's error as for [`Subscriber::recv`] (`Lagged` included).
    pub fn recv(&mut self) -> Result<T, SerdeRecvError<TopicRecvError>> {
        take(self.inner.recv().map_err(SerdeRecvError::Recv)?)
    }

    /// The next value, if one is there.
    ///
    /// # Errors
    /// As [`SerdeSubscriber::recv`], with the topic's errors of [`Subscriber::try_recv`].
    pub fn try_recv(&mut self) -> Result<T, SerdeRecvError<TopicRecvError>> {
        take(self.inner.try_recv().map_err(SerdeRecvError::Recv)?)
    }

    /// The next value, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`SerdeSubscriber::recv`], with the topic's errors of
    /// [`Subscriber::recv_timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, SerdeRecvError<TopicRecvError>> {
        take(
            self.inner
                .recv_timeout(timeout)
                .map_err(SerdeRecvError::Recv)?,
        )
    }

    /// The next value, waiting until `deadline` at most.
    ///
    /// # Errors
    /// As [`SerdeSubscriber::recv_timeout`].
    pub fn recv_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<T, SerdeRecvError<TopicRecvError>> {
        take(
            self.inner
                .recv_deadline(deadline)
                .map_err(SerdeRecvError::Recv)?,
        )
    }

    /// [`SerdeSubscriber::recv`] for async code (feature `async`); see
    /// [`Subscriber::recv_async`].
    ///
    /// # Cancel safety
    /// Cancellation-safe: dropped before it completes, it has taken nothing.
    ///
    /// # Errors
    /// As [`SerdeSubscriber::recv`], except `Interrupted`.
    #[cfg(feature = "async")]
    pub async fn recv_async(&mut self) -> Result<T, SerdeRecvError<TopicRecvError>> {
        take(
            self.inner
                .recv_async()
                .await
                .map_err(SerdeRecvError::Recv)?,
        )
    }

    /// Values as they arrive, waiting for each, until every publisher is gone and everything
    /// was received. A message that does not decode, and a lag, come as an `Err` and the
    /// iteration goes on; any other error comes as an `Err` and ends it.
    pub fn iter(&mut self) -> impl Iterator<Item = Result<T, SerdeRecvError<TopicRecvError>>> + '_ {
        until_end_or(
            move || self.recv(),
            |e| matches!(e, TopicRecvError::Disconnected),
            |e| matches!(e, TopicRecvError::Lagged(_)),
        )
    }

    /// Values there now, without waiting; ends when there are none (or every publisher is
    /// gone and everything was received). Errors as in [`SerdeSubscriber::iter`].
    pub fn try_iter(
        &mut self,
    ) -> impl Iterator<Item = Result<T, SerdeRecvError<TopicRecvError>>> + '_ {
        until_end_or(
            move || self.try_recv(),
            |e| matches!(e, TopicRecvError::Empty | TopicRecvError::Disconnected),
            |e| matches!(e, TopicRecvError::Lagged(_)),
        )
    }

    /// The sequence number of the next message this subscriber will receive.
    pub fn position(&self) -> u64 {
        self.inner.position()
    }

    /// Messages published that this subscriber has not received yet.
    pub fn pending(&self) -> u64 {
        self.inner.pending()
    }

    /// How blocking calls wait (default [`WaitMode::Hybrid`]).
    pub fn set_wait_mode(&mut self, mode: WaitMode) {
        self.inner.set_wait_mode(mode);
    }

    /// The byte subscriber, for raw messages.
    pub fn into_inner(self) -> Subscriber {
        self.inner
    }
}

impl<T> AsRef<Subscriber> for SerdeSubscriber<T> {
    fn as_ref(&self) -> &Subscriber {
        &self.inner
    }
}
