#![allow(unsafe_code)]

//! Plain data in shared memory, and its identity across processes, crates, compilers and
//! languages.
//!
//! A type may live in shared memory when it is [`Pod`]: no padding, no pointers or
//! references, every bit pattern valid. Derive it:
//!
//! ```
//! #[derive(shmq::Pod, Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct Tick {
//!     px: f64,
//!     qty: u32,
//!     side: u8,
//!     pad: [u8; 3],
//! }
//!
//! assert_eq!(shmq::pod::layout_of::<Tick>(), "{px:0:f64,qty:8:u32,side:12:u8,pad:13:[u8;3]}");
//! let name = format!("doc-pod-{}", std::process::id());
//! let v = shmq::Value::create(name.as_str(), Tick { px: 1.5, qty: 10, side: 1, pad: [0; 3] })?;
//! assert_eq!(v.load().qty, 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The derive refuses (at compile time) enums and unions, structs without `#[repr(C)]` or
//! `#[repr(transparent)]`, fields that are not `Pod` (`bool`, `char`, references, pointers,
//! `Option`, ...) and structs with padding — add explicit `pad` fields instead. Tuple structs
//! and generic structs (each type parameter must be `Pod`) are fine; `#[repr(C, packed)]`
//! and `#[repr(C, align(N))]` too, as long as no padding results.
//!
//! # Type identity: the layout fingerprint
//!
//! Every segment that holds typed data records the type's size, alignment and a 64-bit
//! *fingerprint*; an open with a different type fails with
//! [`OpenError::TypeMismatch`](crate::OpenError::TypeMismatch), which names both layouts. The
//! fingerprint depends only on the type's structure — not on its name, its module path, the
//! crate or the compiler — so two programs that declare the same fields in the same order
//! exchange values, and a peer written in C or Python can compute it. It is the 64-bit FNV-1a
//! hash (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) of the UTF-8 bytes of the
//! type's *layout text*, defined as:
//!
//! - an integer or float: `u8`, `u16`, `u32`, `u64`, `u128`, `i8`, `i16`, `i32`, `i64`,
//!   `i128`, `f32`, `f64` (`usize`/`isize` are written as the fixed-size type of their width);
//! - an array `[E; N]`: `[`, the element's text, `;`, `N` in decimal, `]`: `[u8;3]`;
//! - a struct: `{`, then for each field in declaration order `name:offset:text` (the field's
//!   name, or its index for tuple structs; its byte offset in decimal), separated by `,`,
//!   then `}`: `{px:0:f64,qty:8:u32}`. Nested structs nest: `{a:0:{x:0:u8,y:1:u8},b:2:u16}`.
//!
//! No spaces anywhere. Size and alignment are compared separately, so `#[repr(align(16))]`
//! matters too. [`layout_of`] returns a type's text and [`fingerprint_of`] its fingerprint.
//! A peer in another language computes it in a few lines; in Python:
//!
//! ```text
//! def fnv1a(data: bytes) -> int:
//!     h = 0xcbf29ce484222325
//!     for b in data:
//!         h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
//!     return h
//!
//! fnv1a(b"{px:0:f64,qty:8:u32,side:12:u8,pad:13:[u8;3]}")  # 0x4be13b2691684a42, the Tick above
//! ```
//!
//! # Tags
//!
//! When a layout should be versioned by name instead, give the type a tag:
//! `#[shmq(tag = "tick.v1")]` on the struct, or [`Options::type_tag`](crate::Options::type_tag)
//! for one segment (it wins over the type's). A tagged segment's identity is the tag: its
//! fingerprint field holds the FNV-1a hash of the tag's bytes, a header flag marks it as a
//! tag, and an opener must present the same tag (and size and alignment). Byte rings, pipes
//! and queues accept a tag too, which is how typed protocols over them (such as the serde ends)
//! check their identity.

use std::fmt;
use std::mem::{align_of, size_of};

use crate::segment::{FNV_OFFSET, TypeInfo, fnv1a as feed};

/// Plain data that may live in shared memory: no padding, no pointers, every bit pattern
/// valid, no interior mutability. Implement it with `#[derive(shmq::Pod)]` (see the
/// [module docs](crate::pod)); the crate implements it for the integer and float primitives,
/// `()`, and arrays of `Pod` types.
///
/// # Safety
/// An implementation promises that `Self` has no padding bytes, that every bit pattern of
/// `size_of::<Self>()` bytes is a valid `Self`, that `Self` holds no `UnsafeCell`, and that
/// [`Pod::SHAPE`] describes its fields truthfully. The derive checks all of it; implement it
/// by hand only for a type whose layout you control completely.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `shmq::Pod`",
    label = "not plain data for shared memory",
    note = "Pod types are the integer and float primitives, arrays of them, and structs with `#[derive(shmq::Pod)]`; `bool`, `char`, enums, references and pointers are not: store them as integers"
)]
pub unsafe trait Pod: Sized + 'static {
    /// The type's structure, from which its layout text and fingerprint are computed.
    const SHAPE: Shape;
    /// An explicit identity that replaces the fingerprint (`#[shmq(tag = "...")]`).
    const TAG: Option<&'static str> = None;

    /// The value's bytes.
    fn as_bytes(&self) -> &[u8] {
        checked::<Self>();
        // SAFETY: `self` is valid for `size_of::<Self>()` bytes; the trait's contract says
        // they hold no padding, so all are initialized, and no UnsafeCell, so reading them
        // through a shared reference is fine.
        unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), size_of::<Self>()) }
    }

    /// The value's bytes, writable: any bytes written leave a valid value.
    fn as_mut_bytes(&mut self) -> &mut [u8] {
        checked::<Self>();
        // SAFETY: as in `as_bytes`, and the reference is exclusive; every bit pattern is a
        // valid `Self` (the trait's contract), so any write leaves a valid value.
        unsafe {
            std::slice::from_raw_parts_mut((self as *mut Self).cast::<u8>(), size_of::<Self>())
        }
    }

    /// The value whose bytes are all zero.
    fn new_zeroed() -> Self {
        checked::<Self>();
        // SAFETY: every bit pattern, zero included, is a valid `Self` (the trait's contract).
        unsafe { std::mem::zeroed() }
    }

    /// The value `bytes` hold, or `Err(())` if `bytes` is not exactly `size_of::<Self>()`
    /// long. Any alignment.
    #[allow(clippy::result_unit_err)]
    fn read_from_bytes(bytes: &[u8]) -> Result<Self, ()> {
        if bytes.len() != size_of::<Self>() {
            return Err(());
        }
        checked::<Self>();
        // SAFETY: `bytes` holds exactly size_of::<Self>() initialized bytes (checked above);
        // read_unaligned needs no alignment, and every bit pattern is a valid `Self`.
        Ok(unsafe { bytes.as_ptr().cast::<Self>().read_unaligned() })
    }
}

/// Makes the compiler evaluate `T::SHAPE`, whose derived form asserts that `T` has no
/// padding: a generic struct is only checked where it is used with concrete types, and every
/// byte-level access goes through here, so no instance with padding can reach one.
#[inline(always)]
fn checked<T: Pod>() {
    let _: Shape = T::SHAPE;
}

/// The bytes of a slice of [`Pod`] values.
pub fn slice_as_bytes<T: Pod>(values: &[T]) -> &[u8] {
    checked::<T>();
    // SAFETY: the slice is valid for size_of_val bytes, all initialized (no padding in T).
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), size_of_val(values)) }
}

/// The bytes of a slice of [`Pod`] values, writable: any bytes leave valid values.
pub fn slice_as_mut_bytes<T: Pod>(values: &mut [T]) -> &mut [u8] {
    checked::<T>();
    let len = size_of_val(values);
    // SAFETY: the slice is valid and exclusive for `len` bytes; any bit pattern is a valid T.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), len) }
}

/// `as_bytes` / `as_mut_bytes` on slices, inside the crate.
pub(crate) trait SliceBytes {
    fn as_bytes(&self) -> &[u8];
    fn as_mut_bytes(&mut self) -> &mut [u8];
}

impl<T: Pod> SliceBytes for [T] {
    fn as_bytes(&self) -> &[u8] {
        slice_as_bytes(self)
    }
    fn as_mut_bytes(&mut self) -> &mut [u8] {
        slice_as_mut_bytes(self)
    }
}

/// The structure of a [`Pod`] type, as far as its identity goes (see the [module
/// docs](crate::pod) for the text it stands for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An integer or float, by its layout-text name (`"u32"`, `"f64"`, ...).
    Prim(&'static str),
    /// `[elem; len]`.
    Array {
        /// The element's shape.
        elem: &'static Shape,
        /// The number of elements.
        len: usize,
    },
    /// A struct's fields, in declaration order.
    Struct(&'static [Field]),
}

/// A field of a [`Shape::Struct`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name (its index, for tuple structs).
    pub name: &'static str,
    /// Its offset in bytes.
    pub offset: usize,
    /// Its type's shape.
    pub shape: &'static Shape,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Prim(name) => f.write_str(name),
            Shape::Array { elem, len } => write!(f, "[{elem};{len}]"),
            Shape::Struct(fields) => {
                f.write_str("{")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{}:{}", field.name, field.offset, field.shape)?;
                }
                f.write_str("}")
            }
        }
    }
}

const fn feed_decimal(h: u64, mut n: usize) -> u64 {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let (_, used) = digits.split_at(at);
    feed(h, used)
}

const fn feed_shape(mut h: u64, shape: &Shape) -> u64 {
    match shape {
        Shape::Prim(name) => feed(h, name.as_bytes()),
        Shape::Array { elem, len } => {
            h = feed(h, b"[");
            h = feed_shape(h, elem);
            h = feed(h, b";");
            h = feed_decimal(h, *len);
            feed(h, b"]")
        }
        Shape::Struct(fields) => {
            h = feed(h, b"{");
            let mut i = 0;
            while i < fields.len() {
                if i > 0 {
                    h = feed(h, b",");
                }
                h = feed(h, fields[i].name.as_bytes());
                h = feed(h, b":");
                h = feed_decimal(h, fields[i].offset);
                h = feed(h, b":");
                h = feed_shape(h, fields[i].shape);
                i += 1;
            }
            feed(h, b"}")
        }
    }
}

/// FNV-1a (64-bit) of `bytes`: the hash behind fingerprints and tags.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    feed(FNV_OFFSET, bytes)
}

/// The fingerprint of a shape: FNV-1a of its layout text, computed without building the text.
pub const fn fingerprint(shape: &Shape) -> u64 {
    feed_shape(FNV_OFFSET, shape)
}

/// `T`'s layout text (see the [module docs](crate::pod)).
pub fn layout_of<T: Pod>() -> String {
    T::SHAPE.to_string()
}

/// `T`'s fingerprint: FNV-1a of [`layout_of`]`::<T>()`.
pub const fn fingerprint_of<T: Pod>() -> u64 {
    fingerprint(&T::SHAPE)
}

/// What the segment layer records and compares for `T`.
pub(crate) fn type_info<T: Pod>() -> TypeInfo {
    let size = u32::try_from(size_of::<T>()).unwrap_or(u32::MAX);
    let align = u32::try_from(align_of::<T>()).unwrap_or(u32::MAX);
    match T::TAG {
        Some(tag) => TypeInfo::tagged(size, align, tag.to_owned()),
        None => TypeInfo::layout(size, align, fingerprint(&T::SHAPE), T::SHAPE.to_string()),
    }
}

macro_rules! prims {
    ($($t:ty => $name:expr),* $(,)?) => {$(
        // SAFETY: integers and floats have no padding, no UnsafeCell, and every bit pattern
        // is a valid value; the shape names the type by its width and kind.
        unsafe impl Pod for $t {
            const SHAPE: Shape = Shape::Prim($name);
        }
    )*};
}

const USIZE: &str = if size_of::<usize>() == 8 {
    "u64"
} else {
    "u32"
};
const ISIZE: &str = if size_of::<isize>() == 8 {
    "i64"
} else {
    "i32"
};

prims! {
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => USIZE,
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => ISIZE,
    f32 => "f32", f64 => "f64",
}

// SAFETY: `()` has no bytes at all. Its layout text is that of a struct without fields,
// `{}` ([`Lock`](crate::Lock) is a `Mutex<()>`).
unsafe impl Pod for () {
    const SHAPE: Shape = Shape::Struct(&[]);
}

// SAFETY: an array of Pod elements has no padding between them (size is a multiple of
// alignment), no UnsafeCell, and every bit pattern is valid element-wise.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {
    const SHAPE: Shape = Shape::Array {
        elem: &T::SHAPE,
        len: N,
    };
    const TAG: Option<&'static str> = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(crate::Pod, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Inner {
        x: u8,
        y: u8,
    }

    #[derive(crate::Pod, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Outer {
        a: Inner,
        b: u16,
        c: [Inner; 2],
        d: [[u32; 2]; 1],
    }

    #[derive(crate::Pod, Clone, Copy)]
    #[repr(C)]
    struct Pair<T: Copy>(T, T);

    #[derive(crate::Pod, Clone, Copy)]
    #[repr(C)]
    #[shmq(tag = "tick.v1")]
    struct Tagged {
        v: u64,
    }

    #[test]
    fn layout_text_follows_the_documented_grammar() {
        assert_eq!(layout_of::<u64>(), "u64");
        assert_eq!(layout_of::<[u8; 3]>(), "[u8;3]");
        assert_eq!(layout_of::<usize>(), "u64");
        assert_eq!(
            layout_of::<Outer>(),
            "{a:0:{x:0:u8,y:1:u8},b:2:u16,c:4:[{x:0:u8,y:1:u8};2],d:8:[[u32;2];1]}"
        );
        assert_eq!(layout_of::<Pair<i32>>(), "{0:0:i32,1:4:i32}");
    }

    #[test]
    fn fingerprint_is_fnv1a_of_the_layout_text() {
        for (text, fp) in [
            (layout_of::<Outer>(), fingerprint_of::<Outer>()),
            (layout_of::<Pair<f32>>(), fingerprint_of::<Pair<f32>>()),
            (layout_of::<[u64; 1000]>(), fingerprint_of::<[u64; 1000]>()),
            (layout_of::<u8>(), fingerprint_of::<u8>()),
        ] {
            assert_eq!(fnv1a(text.as_bytes()), fp, "{text}");
        }
        // The worked example in the module docs, computed there by the Python snippet.
        #[derive(crate::Pod)]
        #[repr(C)]
        struct Tick {
            px: f64,
            qty: u32,
            side: u8,
            pad: [u8; 3],
        }
        assert_eq!(fingerprint_of::<Tick>(), 0x4be1_3b26_9168_4a42);
        // A known vector of FNV-1a 64: the empty string hashes to the offset basis.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(fingerprint_of::<Pair<f32>>(), fingerprint_of::<Pair<i32>>());
    }

    #[test]
    fn tags_replace_the_fingerprint() {
        let t = type_info::<Tagged>();
        assert!(t.tagged);
        assert_eq!(t.hash, fnv1a(b"tick.v1"));
        assert_eq!(t.label, "tick.v1");
        let u = type_info::<Outer>();
        assert!(!u.tagged);
        assert_eq!(u.hash, fingerprint_of::<Outer>());
    }

    #[test]
    fn bytes_round_trip() {
        let mut o = Outer::new_zeroed();
        o.b = 0x0102;
        o.c[1].y = 7;
        let copy = Outer::read_from_bytes(o.as_bytes()).unwrap();
        assert_eq!(copy, o);
        assert!(Outer::read_from_bytes(&o.as_bytes()[1..]).is_err());
        o.as_mut_bytes()[0] = 9;
        assert_eq!(o.a.x, 9);
        let mut v = [1u16, 2, 3];
        assert_eq!(v.as_slice().as_bytes().len(), 6);
        v.as_mut_slice().as_mut_bytes()[0] = 0;
        assert_eq!(v[0], 0);
    }
}
