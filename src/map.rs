//! `SwapMap`: swap slot → byte position in the active address space.
//!
//! The kernel keeps `struct swap_extent {start_page, nr_pages, start_block}` in an
//! rbtree and `BUG()`s when a lookup misses. swapdio keeps the same extents in a flat
//! array sorted by first slot (slots are dense, so the array is sorted by construction),
//! searches it in O(log n) behind a last-hit cursor, and answers a miss with an error.
//!
//! With feature `alloc`, [`SwapMap::new`] also builds a slot-bucket index (one to four
//! `u32` per extent, typically two; built once at activation, never on the I/O path):
//! bucket `slot >> shift` names the range of entries that can hold the slot, so a random
//! lookup reads one index word and searches one to three entries instead of walking
//! `log2(n)` cache misses down the whole array. The entries stay the flat sorted array
//! and the search stays a binary search (O(log n) even when one bucket holds many
//! small extents); without `alloc` the search covers the whole array.

use crate::caps::IoMode;
use crate::sync::{AtomicUsize, Ordering};
use crate::PAGE_SIZE;

/// One extent of the map: `pages` consecutive slots from `first_slot` live at
/// consecutive pages from byte position `start` (device bytes in device mode, file
/// bytes in file mode). The kernel's `struct swap_extent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct MapEntry {
    /// First swap slot (swap offset) of the extent.
    pub first_slot: u64,
    /// Number of page slots in the extent (never 0).
    pub pages: u64,
    /// Byte position of `first_slot`, page aligned.
    pub start: u64,
}

impl MapEntry {
    /// One past the last slot of the extent; `None` if that is past `u64::MAX` (an entry
    /// no valid map holds, refused by [`SwapMap::new`]; never a wrap-around).
    pub const fn end_slot(&self) -> Option<u64> {
        self.first_slot.checked_add(self.pages)
    }
}

/// Where a slot lives and how many pages from it are contiguous in the same extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Byte position of the slot in the active address space.
    pub pos: u64,
    /// Pages from the slot to the end of its extent (at least 1).
    pub pages: u64,
}

/// Why a map cannot be built from caller-supplied entries, or a lookup failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum MapError {
    /// The slot is at or past the end of the map. The kernel would `BUG()`.
    #[error("swap slot {slot} is outside the map ({slots} slots)")]
    SlotOutOfRange {
        /// The slot asked for.
        slot: u64,
        /// Slots in the map, header slot included.
        slots: u64,
    },
    /// Entry `index` does not start where the previous one ended, is empty, or overflows.
    #[error("map entry {index} is not dense, empty, misaligned or overflows")]
    BadEntry {
        /// Index of the offending entry.
        index: usize,
    },
    /// The map has no entry.
    #[error("swap map is empty")]
    Empty,
}

/// The frozen slot map of an active swap file.
///
/// `S` is the entry storage: `&[MapEntry]` in caller memory (no allocation), or
/// `Vec<MapEntry>` with feature `alloc`.
pub struct SwapMap<S: AsRef<[MapEntry]>> {
    entries: S,
    slots: u64,
    mode: IoMode,
    cursor: AtomicUsize,
    #[cfg(feature = "alloc")]
    index: BucketIndex,
}

impl<S: AsRef<[MapEntry]>> core::fmt::Debug for SwapMap<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SwapMap")
            .field("entries", &self.entries.as_ref())
            .field("slots", &self.slots)
            .field("mode", &self.mode)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// Slot buckets → entry ranges: `first[b]` is the index of the entry holding slot
/// `b << shift`; the entry holding any slot of bucket `b` lies in `first[b]..=first[b + 1]`.
/// Empty (no index, whole-array search) for maps of one or two entries and for maps
/// whose entry indexes do not fit `u32`.
#[cfg(feature = "alloc")]
struct BucketIndex {
    first: alloc::vec::Vec<u32>,
    shift: u32,
}

#[cfg(feature = "alloc")]
impl BucketIndex {
    /// One to four buckets per entry: the bucket size is the smallest power of two
    /// that keeps the bucket count at most twice the next power of two of the entry count.
    fn build(entries: &[MapEntry], slots: u64) -> BucketIndex {
        let n = entries.len();
        if n <= 2 || u32::try_from(n).is_err() {
            return BucketIndex { first: alloc::vec::Vec::new(), shift: 0 };
        }
        let want = (n as u64).next_power_of_two() << 1;
        let mut shift = 0u32;
        while (slots - 1) >> shift >= want {
            shift += 1;
        }
        let buckets = ((slots - 1) >> shift) + 1;
        let mut first = alloc::vec::Vec::with_capacity(buckets as usize + 1);
        let mut i = 0usize;
        for b in 0..buckets {
            let slot = b << shift;
            while entries.get(i).is_some_and(|e| e.end_slot().is_some_and(|end| end <= slot)) {
                i += 1;
            }
            first.push(i as u32);
        }
        first.push((n - 1) as u32);
        BucketIndex { first, shift }
    }

    /// Entry range (inclusive) that holds `slot`, or `None` without an index.
    #[inline]
    fn range(&self, slot: u64) -> Option<(usize, usize)> {
        let b = usize::try_from(slot >> self.shift).ok()?;
        let lo = *self.first.get(b)?;
        let hi = *self.first.get(b.wrapping_add(1))?;
        Some((lo as usize, hi as usize))
    }
}

impl<S: AsRef<[MapEntry]>> SwapMap<S> {
    /// Wraps caller-provided entries after checking they are dense from slot 0,
    /// non-empty, page aligned and free of overflow.
    pub fn new(entries: S, mode: IoMode) -> Result<Self, MapError> {
        let mut next = 0u64;
        for (index, e) in entries.as_ref().iter().enumerate() {
            let ok = e.first_slot == next
                && e.pages != 0
                && e.start % PAGE_SIZE as u64 == 0
                && e.pages.checked_mul(PAGE_SIZE as u64).and_then(|b| b.checked_add(e.start)).is_some();
            if !ok {
                return Err(MapError::BadEntry { index });
            }
            next = e.first_slot.checked_add(e.pages).ok_or(MapError::BadEntry { index })?;
        }
        if next == 0 {
            return Err(MapError::Empty);
        }
        Ok(SwapMap {
            #[cfg(feature = "alloc")]
            index: BucketIndex::build(entries.as_ref(), next),
            entries,
            slots: next,
            mode,
            cursor: AtomicUsize::new(0),
        })
    }

    /// The map entries, in slot order.
    pub fn entries(&self) -> &[MapEntry] {
        self.entries.as_ref()
    }

    /// Number of slots, the header slot 0 included (the kernel's `si->max`).
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// The address space positions refer to.
    pub fn mode(&self) -> IoMode {
        self.mode
    }

    /// Slot → position and contiguous run, O(log n) with a last-hit cursor that makes
    /// sequential access O(1). A slot outside the map is an error, never a panic.
    #[inline]
    pub fn lookup(&self, slot: u64) -> Result<Run, MapError> {
        let entries = self.entries.as_ref();
        let hint = self.cursor.load(Ordering::Relaxed);
        for i in [hint, hint.wrapping_add(1)] {
            if let Some(e) = entries.get(i) {
                if slot.wrapping_sub(e.first_slot) < e.pages {
                    if i != hint {
                        self.cursor.store(i, Ordering::Relaxed);
                    }
                    return Ok(Self::run_in(e, slot));
                }
            }
        }
        if slot >= self.slots {
            return Err(MapError::SlotOutOfRange { slot, slots: self.slots });
        }
        #[cfg(feature = "alloc")]
        let (lo, hi) = self.index.range(slot).unwrap_or((0, entries.len().saturating_sub(1)));
        #[cfg(not(feature = "alloc"))]
        let (lo, hi) = (0, entries.len().saturating_sub(1));
        // Branch-free lower bound over first_slot in lo..=hi: the last entry with
        // first_slot <= slot. `base + half <= hi` always; a missing entry reads as
        // "above" so the search can never step out of the array.
        let mut base = lo;
        let mut size = (hi + 1).saturating_sub(lo);
        while size > 1 {
            let half = size / 2;
            let key = entries.get(base + half).map_or(u64::MAX, |e| e.first_slot);
            base += half & 0usize.wrapping_sub(usize::from(key <= slot));
            size -= half;
        }
        match entries.get(base) {
            Some(e) if slot.wrapping_sub(e.first_slot) < e.pages => {
                self.cursor.store(base, Ordering::Relaxed);
                Ok(Self::run_in(e, slot))
            }
            _ => Err(MapError::SlotOutOfRange { slot, slots: self.slots }),
        }
    }

    #[inline]
    fn run_in(e: &MapEntry, slot: u64) -> Run {
        let off = slot - e.first_slot;
        Run { pos: e.start + off * PAGE_SIZE as u64, pages: e.pages - off }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> SwapMap<[MapEntry; 3]> {
        SwapMap::new(
            [
                MapEntry { first_slot: 0, pages: 4, start: 40 * 4096 },
                MapEntry { first_slot: 4, pages: 1, start: 10 * 4096 },
                MapEntry { first_slot: 5, pages: 3, start: 100 * 4096 },
            ],
            IoMode::Device,
        )
        .unwrap()
    }

    #[test]
    fn map_lookup_returns_position_and_run_to_extent_end() {
        let m = map();
        assert_eq!(m.lookup(0), Ok(Run { pos: 40 * 4096, pages: 4 }));
        assert_eq!(m.lookup(3), Ok(Run { pos: 43 * 4096, pages: 1 }));
        assert_eq!(m.lookup(4), Ok(Run { pos: 10 * 4096, pages: 1 }));
        assert_eq!(m.lookup(7), Ok(Run { pos: 102 * 4096, pages: 1 }));
        // Random order exercises the search, not just the cursor.
        for s in [6, 0, 4, 2, 7, 5, 1] {
            let r = m.lookup(s).unwrap();
            let e = m.entries().iter().find(|e| s >= e.first_slot && Some(s) < e.end_slot()).unwrap();
            assert_eq!(r.pos, e.start + (s - e.first_slot) * 4096);
        }
    }

    /// The bucket index only narrows the search: every slot of a map with very uneven
    /// extents (one huge, runs of single pages, a power-of-two boundary mix) resolves to
    /// the entry a linear scan finds, and one past the end is still a miss.
    #[test]
    fn map_lookup_matches_linear_scan_on_uneven_extents() {
        let mut entries = alloc::vec::Vec::new();
        let mut next = 0u64;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..3000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pages = match i {
                7 => 50_000,
                100..=900 => 1,
                _ => 1 + x % 64,
            };
            entries.push(MapEntry { first_slot: next, pages, start: (x % (1 << 30)) * 4096 });
            next += pages;
        }
        let m = SwapMap::new(entries.clone(), IoMode::File).unwrap();
        let probe = |s: u64| {
            let e = entries.iter().find(|e| s >= e.first_slot && Some(s) < e.end_slot()).unwrap();
            let off = s - e.first_slot;
            assert_eq!(m.lookup(s), Ok(Run { pos: e.start + off * 4096, pages: e.pages - off }), "slot {s}");
        };
        for e in &entries {
            probe(e.first_slot);
            probe(e.end_slot().unwrap() - 1);
        }
        for k in 0..20_000u64 {
            probe(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) % next);
        }
        assert_eq!(m.lookup(next), Err(MapError::SlotOutOfRange { slot: next, slots: next }));
    }

    #[test]
    fn end_slot_past_u64_max_is_none_and_the_map_refuses_the_entry() {
        let e = MapEntry { first_slot: u64::MAX - 1, pages: 2, start: 0 };
        assert_eq!(e.end_slot(), None);
        assert_eq!(MapEntry { first_slot: 3, pages: 2, start: 0 }.end_slot(), Some(5));
        let entries =
            [MapEntry { first_slot: 0, pages: 1, start: 0 }, MapEntry { first_slot: 1, pages: u64::MAX, start: 4096 }];
        assert!(SwapMap::new(&entries[..], IoMode::Device).is_err());
    }

    #[test]
    fn map_miss_is_an_error_never_a_panic() {
        let m = map();
        for s in [8, 9, u64::MAX, u64::MAX - 1] {
            assert_eq!(m.lookup(s), Err(MapError::SlotOutOfRange { slot: s, slots: 8 }));
        }
    }

    #[test]
    fn map_rejects_non_dense_empty_or_overflowing_entries() {
        let gap = [MapEntry { first_slot: 0, pages: 2, start: 0 }, MapEntry { first_slot: 3, pages: 1, start: 0 }];
        assert_eq!(SwapMap::new(gap, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 1 });
        let zero = [MapEntry { first_slot: 0, pages: 0, start: 0 }];
        assert_eq!(SwapMap::new(zero, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 0 });
        let unaligned = [MapEntry { first_slot: 0, pages: 1, start: 512 }];
        assert_eq!(SwapMap::new(unaligned, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 0 });
        let overflow = [MapEntry { first_slot: 0, pages: u64::MAX / 4096, start: 1 << 40 }];
        assert_eq!(SwapMap::new(overflow, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 0 });
        let none: [MapEntry; 0] = [];
        assert_eq!(SwapMap::new(none, IoMode::Device).unwrap_err(), MapError::Empty);
    }
}
