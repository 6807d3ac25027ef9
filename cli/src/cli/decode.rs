//! The values of primitive payload types (`Value<u64>`, `Array<f32>`, `Queue<i16>`, ...), from
//! the bytes a [`Survey`] copied out of the segment.
//!
//! A segment's header records its payload type's layout text (for a primitive, its name:
//! `u64`; see `shmq::pod`) and size. Bytes are decoded only when both agree with a
//! primitive this module knows; every bit pattern is a valid integer or float, so hostile
//! bytes can make a value wrong, never the decoding unsound. Anything else stays hex.

use serde_json::Value as Json;
use shmq::{Kind, Survey};

/// A primitive number type, by its Rust name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prim {
    Unsigned(usize),
    Signed(usize),
    Float(usize),
}

impl Prim {
    /// The primitive whose layout text is `label` (`usize` is written as `u64` or `u32`), if
    /// its size is `size` bytes.
    fn of(label: &str, size: u32) -> Option<Prim> {
        let prim = match label {
            "u8" => Prim::Unsigned(1),
            "u16" => Prim::Unsigned(2),
            "u32" => Prim::Unsigned(4),
            "u64" => Prim::Unsigned(8),
            "i8" => Prim::Signed(1),
            "i16" => Prim::Signed(2),
            "i32" => Prim::Signed(4),
            "i64" => Prim::Signed(8),
            "f32" => Prim::Float(4),
            "f64" => Prim::Float(8),
            _ => return None,
        };
        (prim.size() == size as usize).then_some(prim)
    }

    fn size(self) -> usize {
        match self {
            Prim::Unsigned(n) | Prim::Signed(n) | Prim::Float(n) => n,
        }
    }

    /// The number in `bytes` (native byte order, exactly `size()` bytes).
    fn read(self, bytes: &[u8]) -> Number {
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        let raw = u64::from_ne_bytes(word);
        // On a big-endian machine the bytes sit at the top of the word.
        let raw = if cfg!(target_endian = "big") {
            raw >> (64 - 8 * bytes.len())
        } else {
            raw
        };
        let bits = 8 * bytes.len() as u32;
        match self {
            Prim::Unsigned(_) => Number::Unsigned(raw),
            // Sign-extend from the type's width.
            Prim::Signed(_) => Number::Signed(((raw << (64 - bits)) as i64) >> (64 - bits)),
            Prim::Float(4) => Number::Float(f64::from(f32::from_bits(raw as u32))),
            Prim::Float(_) => Number::Float(f64::from_bits(raw)),
        }
    }
}

/// One decoded number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Unsigned(n) => write!(f, "{n}"),
            Number::Signed(n) => write!(f, "{n}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

impl Number {
    /// As JSON: a number, or `null` for a NaN or an infinity (JSON has none).
    pub(crate) fn json(self) -> Json {
        match self {
            Number::Unsigned(n) => n.into(),
            Number::Signed(n) => n.into(),
            Number::Float(x) => serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number),
        }
    }
}

/// What a segment's data decodes to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    /// The values shown: a value or a lock's data (one), an array's first elements, each
    /// waiting item of a queue, each last message of a typed topic.
    pub(crate) values: Vec<Number>,
    /// How many the segment holds in all (an array's length; otherwise `values.len()`).
    pub(crate) of: u64,
}

/// Decodes the survey's copied bytes, if the payload type is a primitive (name and size
/// agree) and the kind stores items of that type.
pub(crate) fn decode(s: &Survey) -> Option<Decoded> {
    if s.info.type_tagged {
        return None;
    }
    let prim = Prim::of(&s.info.type_label, s.info.type_size)?;
    let size = prim.size();
    let whole = |bytes: &[u8]| bytes.get(..size).map(|b| prim.read(b));
    let values: Vec<Number> = match s.info.kind {
        Kind::Value | Kind::Mutex => whole(&s.contents.first()?.bytes).into_iter().collect(),
        Kind::Array => {
            let len = usize::try_from(s.info.param0).unwrap_or(usize::MAX);
            let data = &s.contents.first()?.bytes;
            data.chunks_exact(size)
                .take(len)
                .map(|b| prim.read(b))
                .collect()
        }
        Kind::Queue | Kind::JoinableQueue | Kind::PriorityQueue | Kind::Topic => s
            .contents
            .iter()
            .filter(|m| m.len == size)
            .filter_map(|m| whole(&m.bytes))
            .collect(),
        _ => return None,
    };
    let of = if s.info.kind == Kind::Array {
        s.info.param0
    } else {
        values.len() as u64
    };
    Some(Decoded { values, of })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_only_when_name_and_size_agree() {
        assert_eq!(Prim::of("u64", 8), Some(Prim::Unsigned(8)));
        assert_eq!(Prim::of("u64", 4), None);
        assert_eq!(Prim::of("my::u64", 8), None);
        assert_eq!(Prim::of("f32", 4), Some(Prim::Float(4)));
        let p = Prim::of("i16", 2).unwrap();
        assert_eq!(p.read(&(-300i16).to_ne_bytes()), Number::Signed(-300));
        let p = Prim::of("u32", 4).unwrap();
        assert_eq!(
            p.read(&u32::MAX.to_ne_bytes()),
            Number::Unsigned(u32::MAX.into())
        );
        let p = Prim::of("f32", 4).unwrap();
        assert_eq!(p.read(&1.5f32.to_ne_bytes()), Number::Float(1.5));
        let p = Prim::of("f64", 8).unwrap();
        assert_eq!(p.read(&(-0.25f64).to_ne_bytes()).to_string(), "-0.25");
        assert_eq!(Number::Float(f64::NAN).json(), Json::Null);
    }
}
