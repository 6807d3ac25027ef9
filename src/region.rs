#![allow(unsafe_code)]
//! `Region`: a bounds-checked window of memory that other processes may write at any time.
//!
//! Layers above `sys` never see a mapping or a raw address: they get a `Region` (base + length)
//! and reach its bytes only through the checked accessors here, all of them atomic. The same
//! code therefore runs over a real shared mapping and over a heap buffer of `AtomicU64`s in
//! unit tests and Miri.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

/// A window of shared memory, valid for `'a`, 8-byte aligned, accessed only atomically.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region<'a> {
    base: NonNull<u8>,
    len: usize,
    _life: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: a Region is a shared view of memory that is only ever read or written through
// atomics, exactly like `&[AtomicU8]`, which is Send and Sync.
unsafe impl Send for Region<'_> {}
// SAFETY: as for Send.
unsafe impl Sync for Region<'_> {}

impl<'a> Region<'a> {
    /// A region over raw memory.
    ///
    /// # Safety
    /// - `base` is 8-byte aligned and valid for reads (and, if anything writes through the
    ///   region, writes) of `len` bytes for all of `'a`;
    /// - during `'a` the memory is accessed (by this process) only through atomics or through
    ///   grants whose protocol excludes every other accessor.
    pub(crate) unsafe fn from_raw(base: NonNull<u8>, len: usize) -> Self {
        debug_assert_eq!(base.as_ptr() as usize % 8, 0);
        Region {
            base,
            len,
            _life: PhantomData,
        }
    }

    /// A region over a heap buffer of atomic words (tests, Miri, fuzzing).
    pub(crate) fn from_words(words: &'a [AtomicU64]) -> Self {
        Region {
            base: NonNull::from(words).cast(),
            len: std::mem::size_of_val(words),
            _life: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.base
    }

    /// `len` bytes starting at `offset`, or `None` if that leaves the region or misaligns it.
    pub(crate) fn sub(&self, offset: usize, len: usize) -> Option<Region<'a>> {
        let end = offset.checked_add(len)?;
        if end > self.len || offset % 8 != 0 {
            return None;
        }
        // SAFETY: `offset <= self.len`, so the pointer stays inside (or one past) our range.
        let base = unsafe { self.base.add(offset) };
        Some(Region {
            base,
            len,
            _life: PhantomData,
        })
    }

    fn checked<T>(&self, offset: usize) -> Option<NonNull<T>> {
        let size = std::mem::size_of::<T>();
        if offset.checked_add(size)? > self.len || offset % std::mem::align_of::<T>() != 0 {
            return None;
        }
        // SAFETY: `offset + size <= self.len`, so the pointer is inside our range.
        Some(unsafe { self.base.add(offset) }.cast())
    }

    /// The `u32` word at `offset`, if it lies inside and is 4-byte aligned.
    pub(crate) fn u32_at(&self, offset: usize) -> Option<&'a AtomicU32> {
        let p = self.checked::<AtomicU32>(offset)?;
        // SAFETY: `p` is in bounds and aligned (checked), valid for `'a` (`from_raw`'s
        // contract), and an AtomicU32 may alias memory that others change concurrently.
        Some(unsafe { p.as_ref() })
    }

    /// The `u64` word at `offset`, if it lies inside and is 8-byte aligned.
    pub(crate) fn u64_at(&self, offset: usize) -> Option<&'a AtomicU64> {
        let p = self.checked::<AtomicU64>(offset)?;
        // SAFETY: as in `u32_at`.
        Some(unsafe { p.as_ref() })
    }

    fn u8_at(&self, offset: usize) -> Option<&'a AtomicU8> {
        let p = self.checked::<AtomicU8>(offset)?;
        // SAFETY: as in `u32_at`.
        Some(unsafe { p.as_ref() })
    }

    /// Copies `dst.len()` bytes from `offset` with relaxed atomic loads (8 bytes at a time
    /// where aligned). `None` if the range leaves the region; then `dst` is untouched.
    pub(crate) fn read(&self, offset: usize, dst: &mut [u8]) -> Option<()> {
        if offset.checked_add(dst.len())? > self.len {
            return None;
        }
        let mut i = 0;
        while i < dst.len() {
            let at = offset + i;
            if at % 8 == 0 && dst.len() - i >= 8 {
                let w = self.u64_at(at)?.load(Ordering::Relaxed);
                dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
                i += 8;
            } else {
                dst[i] = self.u8_at(at)?.load(Ordering::Relaxed);
                i += 1;
            }
        }
        Some(())
    }

    /// Copies `src` to `offset` with relaxed atomic stores. `None` if the range leaves the
    /// region; then nothing is written.
    pub(crate) fn write(&self, offset: usize, src: &[u8]) -> Option<()> {
        if offset.checked_add(src.len())? > self.len {
            return None;
        }
        let mut i = 0;
        while i < src.len() {
            let at = offset + i;
            if at % 8 == 0 && src.len() - i >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&src[i..i + 8]);
                self.u64_at(at)?
                    .store(u64::from_ne_bytes(w), Ordering::Relaxed);
                i += 8;
            } else {
                self.u8_at(at)?.store(src[i], Ordering::Relaxed);
                i += 1;
            }
        }
        Some(())
    }
}

/// The widest atomic access (8, 4, 2 or 1 bytes) that tiles a `T`: the largest power of two
/// up to 8 dividing `size_of::<T>()`. Elements of a `T` array placed at a multiple of 8 are
/// all aligned for it.
pub(crate) const fn unit_of<T>() -> usize {
    let size = std::mem::size_of::<T>();
    if size % 8 == 0 {
        8
    } else if size % 4 == 0 {
        4
    } else if size % 2 == 0 {
        2
    } else {
        1
    }
}

impl Region<'_> {
    /// Copies `dst.len()` bytes from `offset` with relaxed atomic loads of exactly `unit`
    /// bytes each (1, 2, 4 or 8). Code that always copies the same bytes with the same unit
    /// never makes mixed-size atomic accesses, and reads a `unit`-sized element whole.
    /// `None` (with `dst` untouched) if the range leaves the region, or `offset` or the length
    /// is not a multiple of `unit`.
    pub(crate) fn read_units(&self, offset: usize, dst: &mut [u8], unit: usize) -> Option<()> {
        self.units_ok(offset, dst.len(), unit)?;
        for (i, chunk) in dst.chunks_exact_mut(unit).enumerate() {
            let at = offset + i * unit;
            match unit {
                8 => chunk.copy_from_slice(&self.u64_at(at)?.load(Ordering::Relaxed).to_ne_bytes()),
                4 => chunk.copy_from_slice(&self.u32_at(at)?.load(Ordering::Relaxed).to_ne_bytes()),
                2 => chunk.copy_from_slice(&self.u16_at(at)?.load(Ordering::Relaxed).to_ne_bytes()),
                _ => chunk[0] = self.u8_at(at)?.load(Ordering::Relaxed),
            }
        }
        Some(())
    }

    /// Copies `src` to `offset` with relaxed atomic stores of exactly `unit` bytes each; see
    /// [`Region::read_units`]. `None` (nothing written) on a bad range or unit.
    pub(crate) fn write_units(&self, offset: usize, src: &[u8], unit: usize) -> Option<()> {
        self.units_ok(offset, src.len(), unit)?;
        for (i, chunk) in src.chunks_exact(unit).enumerate() {
            let at = offset + i * unit;
            match unit {
                8 => self.u64_at(at)?.store(
                    u64::from_ne_bytes(chunk.try_into().ok()?),
                    Ordering::Relaxed,
                ),
                4 => self.u32_at(at)?.store(
                    u32::from_ne_bytes(chunk.try_into().ok()?),
                    Ordering::Relaxed,
                ),
                2 => self.u16_at(at)?.store(
                    u16::from_ne_bytes(chunk.try_into().ok()?),
                    Ordering::Relaxed,
                ),
                _ => self.u8_at(at)?.store(chunk[0], Ordering::Relaxed),
            }
        }
        Some(())
    }

    /// Whether `len` bytes at `offset` lie inside and are tiled by aligned `unit`s.
    fn units_ok(&self, offset: usize, len: usize, unit: usize) -> Option<()> {
        let fits = offset.checked_add(len)? <= self.len;
        let tiled = matches!(unit, 1 | 2 | 4 | 8) && offset % unit == 0 && len % unit == 0;
        (fits && tiled).then_some(())
    }

    fn u16_at(&self, offset: usize) -> Option<&AtomicU16> {
        let p = self.checked::<AtomicU16>(offset)?;
        // SAFETY: as in `u32_at`.
        Some(unsafe { p.as_ref() })
    }
}

/// A heap buffer of zeroed atomic words, for tests and fuzzing.
#[cfg(test)]
pub(crate) fn heap(len: usize) -> Box<[AtomicU64]> {
    (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let buf = heap(64);
        let r = Region::from_words(&buf);
        assert_eq!(r.len(), 64);
        assert!(r.u64_at(56).is_some());
        assert!(r.u64_at(57).is_none());
        assert!(r.u64_at(64).is_none());
        assert!(r.u32_at(60).is_some());
        assert!(r.u32_at(62).is_none());
        assert!(r.u64_at(usize::MAX - 3).is_none());
        assert!(r.sub(8, 56).is_some());
        assert!(r.sub(8, 57).is_none());
        assert!(r.sub(usize::MAX, 2).is_none());
        assert!(r.read(60, &mut [0; 5]).is_none());
        assert!(r.write(usize::MAX, &[1]).is_none());
    }

    #[test]
    fn unit_copies_round_trip_and_check_their_unit() {
        let buf = heap(64);
        let r = Region::from_words(&buf);
        // Each unit on bytes of its own: Miri's weak-memory emulation does not take
        // mixed-size accesses to the same bytes (see below).
        for (i, unit) in [1, 2, 4, 8].into_iter().enumerate() {
            let src: Vec<u8> = (0..16).map(|b| b + unit as u8).collect();
            r.write_units(i * 16, &src, unit).unwrap();
            let mut dst = vec![0; 16];
            r.read_units(i * 16, &mut dst, unit).unwrap();
            assert_eq!(dst, src, "unit {unit}");
        }
        assert!(r.read_units(4, &mut [0; 8], 8).is_none(), "misaligned");
        assert!(r.read_units(8, &mut [0; 6], 4).is_none(), "not tiled");
        assert!(r.write_units(8, &[0; 3], 3).is_none(), "not a unit");
        assert!(r.write_units(56, &[0; 16], 8).is_none(), "out of range");
        assert!(r.read_units(usize::MAX - 1, &mut [0; 2], 2).is_none());
        assert_eq!(unit_of::<u8>(), 1);
        assert_eq!(unit_of::<[u8; 6]>(), 2);
        assert_eq!(unit_of::<[u32; 3]>(), 4);
        assert_eq!(unit_of::<[u16; 4]>(), 8);
        assert_eq!(unit_of::<()>(), 8);
    }

    #[test]
    // Mixed-size (u8/u64) atomic stores to the same bytes ICE Miri's weak-memory emulation on
    // nightlies before rust-lang/miri#5188 (miri#5185). Passes with
    // `-Zmiri-disable-weak-memory-emulation`; drop this once the pinned nightly has the fix.
    #[cfg_attr(miri, ignore)]
    fn unaligned_copies_round_trip() {
        let buf = heap(64);
        let r = Region::from_words(&buf);
        let src: Vec<u8> = (1..=29).collect();
        for off in 0..8 {
            r.write(off, &src).unwrap();
            let mut dst = vec![0; src.len()];
            r.read(off, &mut dst).unwrap();
            assert_eq!(dst, src);
        }
        let sub = r.sub(16, 32).unwrap();
        let mut dst = [0u8; 4];
        sub.read(0, &mut dst).unwrap();
        let mut whole = [0u8; 4];
        r.read(16, &mut whole).unwrap();
        assert_eq!(dst, whole);
    }
}
