//! A nesting limit for decoding: a deserializer that wraps postcard's and refuses values
//! nested deeper than [`MAX_DEPTH`], so a hostile message for a recursive type (one holding a
//! `Box<Self>` or a `Vec<Self>`) is an error instead of a stack overflow.
//!
//! Implementation notes: every layer of the wrapper forwards to the one it wraps and carries
//! the levels left. A level is spent each time the data opens a container: a sequence, tuple
//! or struct (postcard hands all three to `visit_seq`), a map, an enum, an `Option`'s `Some`
//! or a newtype struct. When none is left the visitor fails, and `tripped` records why, since
//! postcard's error type drops custom messages. The same idea as serde_json's recursion limit
//! (128 levels), applied from outside the format.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// How deeply a decoded value may nest.
pub(crate) const MAX_DEPTH: u32 = 128;

/// A deserializer that allows `left` more levels of nesting.
pub(crate) struct Limited<'t, D> {
    pub(crate) de: D,
    pub(crate) left: u32,
    pub(crate) tripped: &'t Cell<bool>,
}

/// Wraps a visitor, a seed or an access with the same budget.
struct Wrap<'t, X> {
    x: X,
    left: u32,
    tripped: &'t Cell<bool>,
}

impl<'t, X> Wrap<'t, X> {
    fn with<Y>(&self, y: Y) -> Wrap<'t, Y> {
        Wrap {
            x: y,
            left: self.left,
            tripped: self.tripped,
        }
    }

    /// The budget one level down, or an error if none is left.
    fn deeper<E: de::Error>(&self) -> Result<u32, E> {
        match self.left.checked_sub(1) {
            Some(left) => Ok(left),
            None => {
                self.tripped.set(true);
                Err(E::custom(format_args!(
                    "value nested more than {MAX_DEPTH} levels deep"
                )))
            }
        }
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                let visitor = Wrap { x: visitor, left: self.left, tripped: self.tripped };
                self.de.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

macro_rules! pass {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.x.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.x.expecting(f)
    }

    pass! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.x.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.x.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        let left = self.deeper()?;
        let tripped = self.tripped;
        self.x.visit_some(Limited {
            de: d,
            left,
            tripped,
        })
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        let left = self.deeper()?;
        let tripped = self.tripped;
        self.x.visit_newtype_struct(Limited {
            de: d,
            left,
            tripped,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let left = self.deeper()?;
        let tripped = self.tripped;
        self.x.visit_seq(Wrap {
            x: seq,
            left,
            tripped,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let left = self.deeper()?;
        let tripped = self.tripped;
        self.x.visit_map(Wrap {
            x: map,
            left,
            tripped,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let left = self.deeper()?;
        let tripped = self.tripped;
        self.x.visit_enum(Wrap {
            x: data,
            left,
            tripped,
        })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.x.deserialize(Limited {
            de: d,
            left: self.left,
            tripped: self.tripped,
        })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = self.with(seed);
        self.x.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.x.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = self.with(seed);
        self.x.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.with(seed);
        self.x.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.x.size_hint()
    }
}

impl<'de, 't, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'t, A> {
    type Error = A::Error;
    type Variant = Wrap<'t, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let seed = self.with(seed);
        let (value, variant) = self.x.variant_seed(seed)?;
        Ok((
            value,
            Wrap {
                x: variant,
                left: self.left,
                tripped: self.tripped,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.x.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.with(seed);
        self.x.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = self.with(visitor);
        self.x.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = self.with(visitor);
        self.x.struct_variant(fields, visitor)
    }
}
