//! Serde messages (feature `serde`): typed ends that move any `T: Serialize + DeserializeOwned`
//! through a ring ([`SerdeSender`] / [`SerdeReceiver`]), a duplex pipe ([`SerdePipe`]), a
//! multi-producer multi-consumer byte queue ([`SerdeQueue`]) or a broadcast topic
//! ([`SerdeTopic`], [`SerdePublisher`] / [`SerdeSubscriber`]), encoded with `postcard`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use shmq::{SerdeReceiver, SerdeSender};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! enum Job {
//!     Resize { path: String, width: u32 },
//!     Stop,
//! }
//!
//! let name = format!("doc-serde-{}", std::process::id());
//! let mut tx = SerdeSender::<Job>::create(name.as_str(), 4096)?;
//! let mut rx = SerdeReceiver::<Job>::open(name.as_str())?; // in another process, usually
//! tx.send(&Job::Resize { path: "a.png".into(), width: 640 })?;
//! tx.send(&Job::Stop)?;
//! drop(tx);
//! let jobs: Result<Vec<Job>, _> = rx.iter().collect(); // until the sender is gone
//! assert_eq!(jobs?, [Job::Resize { path: "a.png".into(), width: 640 }, Job::Stop]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! How values are encoded, what a bad message does and how ends are identified is
//! documented once, on [`SerdeSender`].
//!
//! Implementation notes: postcard's format is a compact, non-self-describing encoding
//! (varints, length prefixes, no field names), so a value decodes only as the type it was
//! encoded from, and a change of type shows up as a decode error, or, for types that happen
//! to share an encoding, as a wrong value: what the identity check is for. Decoding goes
//! through `depth::Limited`, which bounds nesting.

mod depth;
mod error;
mod pipe;
mod queue;
mod ring;
mod topic;

use std::any::type_name;
use std::cell::Cell;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::segment::Options;

pub use error::{DecodeError, EncodeError, SerdeRecvError, SerdeSendError};
pub use pipe::SerdePipe;
pub use queue::SerdeQueue;
pub use ring::{SerdeReceiver, SerdeSender};
pub use topic::{SerdePublisher, SerdeSubscriber, SerdeTopic};

/// The identity of a serde end: the user's tag if there is one, else the message type's
/// name and the schema version (`"my_app::Job#1"`). The one place identities are made.
pub(crate) fn identity<T: ?Sized>(tag: Option<&str>, schema: u32) -> String {
    match tag {
        Some(tag) => tag.to_owned(),
        None => format!("{}#{schema}", type_name::<T>()),
    }
}

/// Where a serde end lives ([`Options`]) and the identity it carries: a tag, or a schema
/// version for the type's name. Every serde constructor takes `impl Into<SerdeOptions>`,
/// so a name, a `String` or an [`Options`] works as it is.
///
/// ```
/// use shmq::{SerdeOptions, SerdeSender};
///
/// let name = format!("doc-serde-options-{}", std::process::id());
/// let opts = SerdeOptions::new(name.as_str()).schema(2);
/// let _tx = SerdeSender::<Vec<u32>>::create(&opts, 1024)?;
/// assert!(opts.identity::<Vec<u32>>().ends_with("Vec<u32>#2")); // the type name, version 2
/// assert_eq!(opts.tag("metrics").identity::<Vec<u32>>(), "metrics");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerdeOptions {
    options: Options,
    tag: Option<String>,
    schema: u32,
}

impl SerdeOptions {
    /// The segment `options`, identified by the type's name and schema version 1.
    pub fn new(options: impl Into<Options>) -> SerdeOptions {
        SerdeOptions {
            options: options.into(),
            tag: None,
            schema: 1,
        }
    }

    /// Identifies the end by `tag` instead of its type's name and schema version. Both ends
    /// must give the same tag.
    pub fn tag(mut self, tag: impl Into<String>) -> SerdeOptions {
        self.tag = Some(tag.into());
        self
    }

    /// The schema version that goes with the type's name (default 1). Ends whose versions
    /// differ do not attach to each other.
    pub fn schema(mut self, version: u32) -> SerdeOptions {
        self.schema = version;
        self
    }

    /// The identity an end carrying `T` is checked by: the tag if one was given, else `T`'s
    /// type name and the schema version (`"my_app::Job#2"`). A [`SerdePipe<S, R>`]'s creator
    /// carries `(S, R)`, its opener the same pair.
    pub fn identity<T: ?Sized>(&self) -> String {
        identity::<T>(self.tag.as_deref(), self.schema)
    }

    /// The segment options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The segment options for an end carrying `T`, with its identity.
    pub(crate) fn for_type<T: ?Sized>(&self) -> Options {
        self.options.clone().type_tag(self.identity::<T>())
    }
}

impl<O: Into<Options>> From<O> for SerdeOptions {
    fn from(options: O) -> SerdeOptions {
        SerdeOptions::new(options)
    }
}

impl From<&SerdeOptions> for SerdeOptions {
    fn from(o: &SerdeOptions) -> SerdeOptions {
        o.clone()
    }
}

/// The encoded size of `value`, checked against the transport's largest message.
pub(crate) fn encoded_len<T: Serialize, E>(
    value: &T,
    max: usize,
    transport: &'static str,
) -> Result<usize, SerdeSendError<E>> {
    let len = postcard::experimental::serialized_size(value)
        .map_err(|e| EncodeError::new::<T>(e.to_string()))?;
    if len > max {
        return Err(SerdeSendError::TooLarge {
            type_name: type_name::<T>(),
            len,
            max,
            transport,
        });
    }
    Ok(len)
}

/// Serializes `value` into `buf`, which must be exactly its encoded size.
pub(crate) fn encode_into<T: Serialize>(value: &T, buf: &mut [u8]) -> Result<(), EncodeError> {
    let want = buf.len();
    match postcard::to_slice(value, buf) {
        Ok(used) if used.len() == want => Ok(()),
        // A `Serialize` impl that writes a different size on its second pass (interior
        // mutability, an iterator that changed): the reserved space does not fit it.
        Ok(used) => Err(EncodeError::new::<T>(format!(
            "it serialized to {} bytes after measuring {want}",
            used.len()
        ))),
        Err(postcard::Error::SerializeBufferFull) => Err(EncodeError::new::<T>(format!(
            "it serialized to more than the {want} bytes it measured"
        ))),
        Err(e) => Err(EncodeError::new::<T>(e.to_string())),
    }
}

/// Deserializes a whole message as a `T`: every byte must belong to the value, and the value
/// may nest at most [`depth::MAX_DEPTH`] levels deep.
pub(crate) fn decode<T: DeserializeOwned>(msg: &[u8]) -> Result<T, DecodeError> {
    let tripped = Cell::new(false);
    let mut de = postcard::Deserializer::from_bytes(msg);
    let limited = depth::Limited {
        de: &mut de,
        left: depth::MAX_DEPTH,
        tripped: &tripped,
    };
    let fail = |reason: String| Err(DecodeError::new::<T>(msg.len(), reason));
    match T::deserialize(limited) {
        Ok(value) => match de.finalize() {
            Ok([]) => Ok(value),
            Ok(rest) => fail(format!(
                "{} bytes left over after the value (a message of another type?)",
                rest.len()
            )),
            Err(e) => fail(e.to_string()),
        },
        // postcard's error drops the depth limit's message: say it here.
        Err(_) if tripped.get() => fail(format!(
            "the value nests more than {} levels deep",
            depth::MAX_DEPTH
        )),
        Err(e) => fail(e.to_string()),
    }
}

/// The iterator behind every serde `iter` / `try_iter`: calls `next` until the transport
/// says `end` (quietly) or fails otherwise (yielded once, then the end). Decode errors are
/// yielded and the iteration goes on: the bad message was consumed.
pub(crate) fn until_end<T, E>(
    next: impl FnMut() -> Result<T, SerdeRecvError<E>>,
    end: impl Fn(&E) -> bool,
) -> impl Iterator<Item = Result<T, SerdeRecvError<E>>> {
    until_end_or(next, end, |_| false)
}

/// [`until_end`], except that a transport error `goes_on` says is recoverable (a topic
/// subscriber's lag) is yielded and the iteration goes on, as after a decode error.
pub(crate) fn until_end_or<T, E>(
    mut next: impl FnMut() -> Result<T, SerdeRecvError<E>>,
    end: impl Fn(&E) -> bool,
    goes_on: impl Fn(&E) -> bool,
) -> impl Iterator<Item = Result<T, SerdeRecvError<E>>> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match next() {
            Err(SerdeRecvError::Recv(e)) if end(&e) => {
                done = true;
                None
            }
            Err(SerdeRecvError::Recv(e)) if goes_on(&e) => Some(Err(SerdeRecvError::Recv(e))),
            Err(e @ SerdeRecvError::Recv(_)) => {
                done = true;
                Some(Err(e))
            }
            other => Some(other),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_the_tag_or_the_type_name_and_schema() {
        assert_eq!(identity::<u32>(Some("orders"), 7), "orders");
        assert_eq!(identity::<u32>(None, 1), "u32#1");
        assert_ne!(identity::<u32>(None, 1), identity::<u32>(None, 2));
        assert_ne!(identity::<u32>(None, 1), identity::<i32>(None, 1));
        assert!(identity::<Vec<String>>(None, 3).contains("String"));
    }

    #[test]
    fn decode_rejects_trailing_bytes_and_names_the_type() {
        let mut buf = [0u8; 8];
        let n = postcard::to_slice(&300u32, &mut buf).unwrap().len();
        assert_eq!(decode::<u32>(&buf[..n]), Ok(300));
        let err = decode::<u32>(&buf[..n + 1]).unwrap_err();
        assert_eq!(err.type_name, "u32");
        assert!(err.reason.contains("1 bytes left over"), "{err}");
        let err = decode::<String>(&[5, b'a']).unwrap_err();
        assert!(err.to_string().contains("alloc::string::String"), "{err}");
    }

    #[test]
    fn encode_into_refuses_a_buffer_of_the_wrong_size() {
        let len = postcard::experimental::serialized_size(&"hello").unwrap();
        let mut exact = vec![0u8; len];
        encode_into(&"hello", &mut exact).unwrap();
        assert_eq!(decode::<String>(&exact).unwrap(), "hello");
        let mut short = vec![0u8; len - 1];
        assert!(encode_into(&"hello", &mut short).is_err());
        let mut long = vec![0u8; len + 1];
        assert!(encode_into(&"hello", &mut long).is_err());
    }

    /// Recursive through a newtype struct and a sequence: two levels per step.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Nest(Vec<Nest>);

    /// Recursive through a struct, an option and a map.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Node {
        next: Option<Box<Node>>,
        tags: std::collections::BTreeMap<String, Vec<Node>>,
    }

    fn nest(n: usize) -> Nest {
        (0..n).fold(Nest(vec![]), |inner, _| Nest(vec![inner]))
    }

    fn encode<T: Serialize>(v: &T) -> Vec<u8> {
        let mut buf = vec![0u8; postcard::experimental::serialized_size(v).unwrap()];
        encode_into(v, &mut buf).unwrap();
        buf
    }

    #[test]
    fn nesting_is_limited_through_every_kind_of_container() {
        // Nest(n) is 2(n + 1) levels: 63 steps fit in 128, 64 do not.
        assert_eq!(decode::<Nest>(&encode(&nest(63))), Ok(nest(63)));
        let err = decode::<Nest>(&encode(&nest(64))).unwrap_err();
        assert!(err.reason.contains("more than 128 levels"), "{err}");
        // A hostile chain of one-element sequences, far deeper than any stack allows.
        let err = decode::<Nest>(&[1u8; 1_000_000]).unwrap_err();
        assert!(err.reason.contains("more than 128 levels"), "{err}");

        let mut node = Node {
            next: None,
            tags: Default::default(),
        };
        for i in 0..20 {
            let tags = [(format!("t{i}"), vec![])].into();
            node = Node {
                next: Some(Box::new(node)),
                tags,
            };
        }
        let bytes = encode(&node);
        assert_eq!(decode::<Node>(&bytes), Ok(node));
        // A struct and an option per step.
        let deep = [1u8; 100_000]; // next: Some(Box(Node { next: Some(...
        let err = decode::<Node>(&deep).unwrap_err();
        assert!(err.reason.contains("more than 128 levels"), "{err}");
    }
}
