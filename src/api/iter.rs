//! `Iter` and `TryIter`: every receiving end as an iterator (crossbeam-channel's `iter` and
//! `try_iter`), with the `iter`/`try_iter` methods and `IntoIterator` impls that make them.
//!
//! One pair of types serves every end: `R` is the borrowed end (`&mut Consumer`,
//! `&Queue<T>`, ...), and each end's `Iterator` impl says what it yields.

use std::fmt;
use std::iter::FusedIterator;

use super::Pod;
use super::byte_queue::ByteQueue;
use super::pipe::Pipe;
use super::priority::PriorityQueue;
use super::queue::{JoinableQueue, Queue};
use super::ring::Consumer;
use super::ring_typed::Receiver;
use super::topic::Subscriber;
use super::topic_typed::TypedSubscriber;
use crate::error::{GetError, RecvError, TopicRecvError, TryRecvError};

/// A blocking iterator over what a receiving end receives: each `next` waits like the end's
/// `recv` (rings, pipes) or `get` (queues). Made by the ends' `iter()` methods and by `for`
/// over a borrowed end (`for msg in &mut consumer`, `for item in &queue`).
///
/// **Ends** (`None`) when nothing more can come: for rings and pipes once the other end is
/// gone and everything it sent was received (`Disconnected`, as crossbeam-channel's `iter`);
/// for topic subscribers once every publisher is gone and everything was received;
/// for queues once the queue is closed and drained (`Closed`) or empty with every put-side
/// handle gone (`Disconnected`).
///
/// **Errors are items**, as in [`BufRead::lines`](std::io::BufRead::lines): every other
/// failure of the underlying call — `Interrupted` (an [`Interrupter`](crate::Interrupter)
/// fired), `Corrupted` (a peer wrote garbage, or a typed message of the wrong size) — is
/// yielded once as `Err`, never swallowed, and then the iterator ends (it is fused). Call
/// `iter()` again to go on after an error you chose to tolerate. A [`Topic`](crate::Topic)
/// subscriber's `Lagged(n)` is the exception: it is yielded and the iteration goes on, since
/// the subscriber already resumed at the oldest message still held.
///
/// Byte ends yield owned `Vec<u8>` copies: a ring's guard borrows its end mutably, so an
/// iterator cannot hand one out, and a [`ByteQueue`] guard holds its slot, so collected
/// guards could fill the queue and stall every producer. The zero-copy forms are
/// `recv`/`get` and [`Consumer::try_drain`]. Typed ends yield copies of the values.
///
/// ```
/// let name = format!("doc-iter-{}", std::process::id());
/// let ring = shmq::Ring::create(name.as_str(), 1024)?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.consumer()?;
/// tx.send(b"a")?;
/// tx.send(b"b")?;
/// drop(tx); // the other end is gone: the iterator ends after the last message
/// let got: Vec<Vec<u8>> = rx.iter().collect::<Result<_, _>>()?;
/// assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Iter<R> {
    end: R,
    done: bool,
}

/// A non-blocking iterator over what a receiving end holds now: each `next` is the end's
/// `try_recv` / `try_get`. Made by the ends' `try_iter()` methods.
///
/// Ends (`None`) when nothing is waiting (`Empty`), and when nothing more can come (as
/// [`Iter`]). A `Corrupted` failure is yielded once as `Err`, then the iterator ends.
///
/// ```
/// let name = format!("doc-try-iter-{}", std::process::id());
/// let q = shmq::Queue::<u32>::create(name.as_str(), 8)?;
/// assert_eq!(q.try_iter().count(), 0); // empty: ends at once, without waiting
/// q.put(1)?;
/// q.put(2)?;
/// let now: Vec<u32> = q.try_iter().collect::<Result<_, _>>()?;
/// assert_eq!(now, [1, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct TryIter<R> {
    end: R,
    done: bool,
}

impl<R> fmt::Debug for Iter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Debug for TryIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// One step of an iterator: `Some(Ok)` goes on; an error that `ends` ends the iteration
/// silently (`None`); any other error is yielded, and ends it after.
fn step<T, E>(
    done: &mut bool,
    r: Result<T, E>,
    ends: impl FnOnce(&E) -> bool,
) -> Option<Result<T, E>> {
    match r {
        Ok(v) => Some(Ok(v)),
        Err(e) => {
            *done = true;
            if ends(&e) { None } else { Some(Err(e)) }
        }
    }
}

fn recv_ends(e: &RecvError) -> bool {
    matches!(e, RecvError::Disconnected)
}

fn try_recv_ends(e: &TryRecvError) -> bool {
    matches!(e, TryRecvError::Empty | TryRecvError::Disconnected)
}

fn get_ends(e: &GetError) -> bool {
    matches!(e, GetError::Closed | GetError::Disconnected)
}

fn try_get_ends(e: &GetError) -> bool {
    matches!(
        e,
        GetError::Empty | GetError::Closed | GetError::Disconnected
    )
}

/// Implements `Iterator` (and `FusedIterator`) for `Iter<$end>` and `TryIter<$end>`: each
/// step calls `$recv` / `$try_recv` on the end, maps a success with `$own`, and ends as
/// `$ends` / `$try_ends` say.
macro_rules! iterators {
    ($([$($g:tt)*] $end:ty => $item:ty, $err:ty, $try_err:ty,
       $recv:ident, $try_recv:ident, $own:expr, $ends:expr, $try_ends:expr;)*) => {$(
        impl<'a, $($g)*> Iterator for Iter<$end> {
            type Item = Result<$item, $err>;
            fn next(&mut self) -> Option<Self::Item> {
                if self.done {
                    return None;
                }
                let r = self.end.$recv().map($own);
                step(&mut self.done, r, $ends)
            }
        }
        impl<'a, $($g)*> FusedIterator for Iter<$end> {}
        impl<'a, $($g)*> Iterator for TryIter<$end> {
            type Item = Result<$item, $try_err>;
            fn next(&mut self) -> Option<Self::Item> {
                if self.done {
                    return None;
                }
                let r = self.end.$try_recv().map($own);
                step(&mut self.done, r, $try_ends)
            }
        }
        impl<'a, $($g)*> FusedIterator for TryIter<$end> {}
    )*};
}

iterators! {
    [] &'a mut Consumer => Vec<u8>, RecvError, TryRecvError,
        recv, try_recv, |m| m.to_vec(), recv_ends, try_recv_ends;
    [T: Pod] &'a mut Receiver<T> => T, RecvError, TryRecvError,
        recv, try_recv, |v| v.value(), recv_ends, try_recv_ends;
    [T: Pod] &'a Queue<T> => T, GetError, GetError,
        get, try_get, |v| v, get_ends, try_get_ends;
    [] &'a ByteQueue => Vec<u8>, GetError, GetError,
        get, try_get, |m| m.to_vec(), get_ends, try_get_ends;
    [T: Pod + Ord] &'a PriorityQueue<T> => T, GetError, GetError,
        get, try_get, |v| v, get_ends, try_get_ends;
}

impl Consumer {
    /// A blocking iterator over the messages, each an owned copy: it ends once the producer
    /// is gone and everything it sent was received. See [`Iter`] for errors.
    pub fn iter(&mut self) -> Iter<&mut Consumer> {
        Iter {
            end: self,
            done: false,
        }
    }

    /// An iterator over the messages waiting now, each an owned copy; it never waits. See
    /// [`TryIter`].
    pub fn try_iter(&mut self) -> TryIter<&mut Consumer> {
        TryIter {
            end: self,
            done: false,
        }
    }
}

impl Pipe {
    /// A blocking iterator over the messages the other end sends, each an owned copy: it
    /// ends once the other end is gone and everything it sent was received. See [`Iter`].
    pub fn iter(&mut self) -> Iter<&mut Consumer> {
        self.consumer_mut().iter()
    }

    /// An iterator over the messages waiting now; it never waits. See [`TryIter`].
    pub fn try_iter(&mut self) -> TryIter<&mut Consumer> {
        self.consumer_mut().try_iter()
    }
}

impl<T: Pod> Receiver<T> {
    /// A blocking iterator over the values, each a copy: it ends once the sender is gone and
    /// everything it sent was received. See [`Iter`] for errors (a message that is not one
    /// `T` is yielded as `Corrupted`).
    pub fn iter(&mut self) -> Iter<&mut Receiver<T>> {
        Iter {
            end: self,
            done: false,
        }
    }

    /// An iterator over the values waiting now; it never waits. See [`TryIter`].
    pub fn try_iter(&mut self) -> TryIter<&mut Receiver<T>> {
        TryIter {
            end: self,
            done: false,
        }
    }
}

impl<T: Pod> Queue<T> {
    /// A blocking iterator over the items, oldest first: it ends once the queue is closed
    /// and drained, or empty with every other put-side handle gone. See [`Iter`] for errors.
    /// A [`JoinableQueue`]'s items taken this way still need their
    /// [`task_done`](JoinableQueue::task_done).
    ///
    /// ```
    /// let name = format!("doc-queue-iter-{}", std::process::id());
    /// let q = shmq::Queue::<u32>::create(name.as_str(), 8)?;
    /// for i in 0..3 {
    ///     q.put(i)?;
    /// }
    /// q.close();
    /// let mut sum = 0;
    /// for item in &q {
    ///     sum += item?;
    /// }
    /// assert_eq!(sum, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&self) -> Iter<&Queue<T>> {
        Iter {
            end: self,
            done: false,
        }
    }

    /// An iterator over the items waiting now, oldest first; it never waits. See
    /// [`TryIter`].
    pub fn try_iter(&self) -> TryIter<&Queue<T>> {
        TryIter {
            end: self,
            done: false,
        }
    }
}

impl ByteQueue {
    /// A blocking iterator over the messages, oldest first, each an owned copy: it ends once
    /// the queue is closed and drained, or empty with every other put-side handle gone. See
    /// [`Iter`].
    pub fn iter(&self) -> Iter<&ByteQueue> {
        Iter {
            end: self,
            done: false,
        }
    }

    /// An iterator over the messages waiting now; it never waits. See [`TryIter`].
    pub fn try_iter(&self) -> TryIter<&ByteQueue> {
        TryIter {
            end: self,
            done: false,
        }
    }
}

impl<T: Pod + Ord> PriorityQueue<T> {
    /// A blocking iterator over the items, smallest first: it ends once the queue is closed
    /// and drained, or empty with every other put-side handle gone. See [`Iter`].
    pub fn iter(&self) -> Iter<&PriorityQueue<T>> {
        Iter {
            end: self,
            done: false,
        }
    }

    /// An iterator over the items waiting now, smallest first; it never waits. See
    /// [`TryIter`].
    pub fn try_iter(&self) -> TryIter<&PriorityQueue<T>> {
        TryIter {
            end: self,
            done: false,
        }
    }
}

impl<'a> IntoIterator for &'a mut Consumer {
    type Item = Result<Vec<u8>, RecvError>;
    type IntoIter = Iter<&'a mut Consumer>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Pipe {
    type Item = Result<Vec<u8>, RecvError>;
    type IntoIter = Iter<&'a mut Consumer>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Pod> IntoIterator for &'a mut Receiver<T> {
    type Item = Result<T, RecvError>;
    type IntoIter = Iter<&'a mut Receiver<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Pod> IntoIterator for &'a Queue<T> {
    type Item = Result<T, GetError>;
    type IntoIter = Iter<&'a Queue<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Pod> IntoIterator for &'a JoinableQueue<T> {
    type Item = Result<T, GetError>;
    type IntoIter = Iter<&'a Queue<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a ByteQueue {
    type Item = Result<Vec<u8>, GetError>;
    type IntoIter = Iter<&'a ByteQueue>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Pod + Ord> IntoIterator for &'a PriorityQueue<T> {
    type Item = Result<T, GetError>;
    type IntoIter = Iter<&'a PriorityQueue<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

// ----- topic subscribers: a lag is an item, and the iteration goes on -----

fn topic_recv_ends(e: &TopicRecvError) -> bool {
    matches!(e, TopicRecvError::Disconnected)
}

fn topic_try_recv_ends(e: &TopicRecvError) -> bool {
    matches!(e, TopicRecvError::Empty | TopicRecvError::Disconnected)
}

/// One step over a topic subscriber: as [`step`], except that `Lagged` is yielded and the
/// iteration goes on (the subscriber already stands at the oldest message still held).
fn topic_step<T>(
    done: &mut bool,
    r: Result<T, TopicRecvError>,
    ends: impl FnOnce(&TopicRecvError) -> bool,
) -> Option<Result<T, TopicRecvError>> {
    match r {
        Err(e @ TopicRecvError::Lagged(_)) => Some(Err(e)),
        r => step(done, r, ends),
    }
}

/// `Iterator` for `Iter<$end>` and `TryIter<$end>` over a topic subscriber (see
/// [`topic_step`]); `$own` makes the item from the received guard.
macro_rules! topic_iterators {
    ($([$($g:tt)*] $end:ty => $item:ty, $own:expr;)*) => {$(
        impl<'a, $($g)*> Iterator for Iter<$end> {
            type Item = Result<$item, TopicRecvError>;
            fn next(&mut self) -> Option<Self::Item> {
                if self.done {
                    return None;
                }
                let r = self.end.recv().map($own);
                topic_step(&mut self.done, r, topic_recv_ends)
            }
        }
        impl<'a, $($g)*> FusedIterator for Iter<$end> {}
        impl<'a, $($g)*> Iterator for TryIter<$end> {
            type Item = Result<$item, TopicRecvError>;
            fn next(&mut self) -> Option<Self::Item> {
                if self.done {
                    return None;
                }
                let r = self.end.try_recv().map($own);
                topic_step(&mut self.done, r, topic_try_recv_ends)
            }
        }
        impl<'a, $($g)*> FusedIterator for TryIter<$end> {}
    )*};
}

topic_iterators! {
    [] &'a mut Subscriber => Vec<u8>, |m| m.to_vec();
    [T: Pod] &'a mut TypedSubscriber<T> => T, |v| v.value();
}

impl Subscriber {
    /// A blocking iterator over the messages, each an owned copy: it ends once every
    /// publisher is gone and everything they published was received. A
    /// [`Lagged`](TopicRecvError::Lagged) (Overwrite policy) is yielded as `Err` and the
    /// iteration goes on at the oldest message still held; any other error is yielded and
    /// ends it (see [`Iter`]).
    ///
    /// ```
    /// let name = format!("doc-topic-iter-{}", std::process::id());
    /// let topic = shmq::Topic::create(name.as_str(), 64, 16)?;
    /// let mut sub = topic.subscriber()?;
    /// let mut tx = topic.publisher()?;
    /// tx.publish(b"a")?;
    /// tx.publish(b"b")?;
    /// drop(tx); // every publisher gone: the iterator ends after the last message
    /// let got: Vec<Vec<u8>> = sub.iter().collect::<Result<_, _>>()?;
    /// assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> Iter<&mut Subscriber> {
        Iter {
            end: self,
            done: false,
        }
    }

    /// An iterator over the messages there now, each an owned copy; it never waits. Lags are
    /// yielded as in [`Subscriber::iter`]. See [`TryIter`].
    ///
    /// ```
    /// let name = format!("doc-topic-try-iter-{}", std::process::id());
    /// let topic = shmq::Topic::create(name.as_str(), 64, 16)?;
    /// let mut sub = topic.subscriber()?;
    /// assert_eq!(sub.try_iter().count(), 0); // nothing yet: ends at once
    /// let mut tx = topic.publisher()?;
    /// tx.publish(b"a")?;
    /// tx.publish(b"b")?;
    /// assert_eq!(sub.try_iter().count(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<&mut Subscriber> {
        TryIter {
            end: self,
            done: false,
        }
    }
}

impl<T: Pod> TypedSubscriber<T> {
    /// A blocking iterator over the values, each a copy; ends, and yields lags, as
    /// [`Subscriber::iter`] (a message that is not one `T` is yielded as `Corrupted` and
    /// ends it).
    ///
    /// ```
    /// let name = format!("doc-typed-topic-iter-{}", std::process::id());
    /// let topic = shmq::TypedTopic::<u64>::create(name.as_str(), 64)?;
    /// let mut sub = topic.subscriber()?;
    /// let mut tx = topic.publisher()?;
    /// for i in 1..=3 {
    ///     tx.publish(&i)?;
    /// }
    /// drop(tx);
    /// let sum: u64 = sub.iter().sum::<Result<u64, _>>()?;
    /// assert_eq!(sum, 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> Iter<&mut TypedSubscriber<T>> {
        Iter {
            end: self,
            done: false,
        }
    }

    /// An iterator over the values there now, each a copy; it never waits. See
    /// [`TryIter`].
    pub fn try_iter(&mut self) -> TryIter<&mut TypedSubscriber<T>> {
        TryIter {
            end: self,
            done: false,
        }
    }
}

impl<'a> IntoIterator for &'a mut Subscriber {
    type Item = Result<Vec<u8>, TopicRecvError>;
    type IntoIter = Iter<&'a mut Subscriber>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Pod> IntoIterator for &'a mut TypedSubscriber<T> {
    type Item = Result<T, TopicRecvError>;
    type IntoIter = Iter<&'a mut TypedSubscriber<T>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
