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
    /// The slot is inside the map's range but in no extent: a bad page of a block device
    /// (the kernel's `SWAP_MAP_BAD`, never handed out) or a gap the caller's map leaves.
    /// No I/O ever reaches it.
    #[error("swap slot {slot} is a bad page (in no extent of the map)")]
    BadSlot {
        /// The slot asked for.
        slot: u64,
    },
    /// Entry `index` starts before the previous one ended, is empty, misaligned, or
    /// overflows.
    #[error("map entry {index} is out of slot order, empty, misaligned or overflows")]
    BadEntry {
        /// Index of the offending entry.
        index: usize,
    },
    /// Device mode: two entries map the same device bytes, so two slots would share one
    /// page (the kernel trusts FIEMAP here).
    #[error("map entries overlap on the device: slot {slot} maps bytes already mapped")]
    PhysicalOverlap {
        /// First slot of the later-numbered of the first two entries found sharing bytes.
        slot: u64,
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
    /// Wraps caller-provided entries after checking they are in slot order without
    /// overlapping slots, non-empty, page aligned and free of overflow, and, in device
    /// mode, that no two entries map the same device bytes
    /// ([`MapError::PhysicalOverlap`]; the C ABI's `swapdio_engine_init` goes through
    /// here too).
    ///
    /// Slots between entries are bad slots ([`MapError::BadSlot`] on lookup): activation
    /// leaves a block device's bad pages out of the map that way. Activation's maps are
    /// otherwise dense from slot 0.
    ///
    /// Cost: O(n) when the entries are in device order, as activation usually writes
    /// them; otherwise O(n log n) with feature `alloc` (a sorted copy) and O(n²)
    /// comparisons without it (no scratch memory: 50 million for 10 000 entries).
    pub fn new(entries: S, mode: IoMode) -> Result<Self, MapError> {
        let mut next = 0u64;
        for (index, e) in entries.as_ref().iter().enumerate() {
            let ok = e.first_slot >= next
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
        if mode == IoMode::Device {
            if let Some(slot) = physical_overlap(entries.as_ref()) {
                return Err(MapError::PhysicalOverlap { slot });
            }
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

    /// One past the last mapped slot, the header slot 0 included (the kernel's `si->max`
    /// when the last page is not bad).
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
            // Below the end of the map, in no extent: a gap (a bad page).
            _ => Err(MapError::BadSlot { slot }),
        }
    }

    /// Whether `slot` is a data slot a swap-slot allocator may hand out: not the header
    /// slot 0, not a bad slot, inside the map.
    pub fn is_usable(&self, slot: u64) -> bool {
        slot != 0 && self.lookup(slot).is_ok()
    }

    #[inline]
    fn run_in(e: &MapEntry, slot: u64) -> Run {
        let off = slot - e.first_slot;
        Run { pos: e.start + off * PAGE_SIZE as u64, pages: e.pages - off }
    }
}

/// End of an entry's byte range, saturated (entries of a built map never overflow).
const fn byte_end(e: &MapEntry) -> u64 {
    e.start.saturating_add(e.pages.saturating_mul(PAGE_SIZE as u64))
}

/// First slot of the later-numbered of two entries that share device bytes, if any.
/// O(n) for entries already in device order; otherwise a sorted copy (feature `alloc`,
/// falling back when the copy cannot be allocated) or every pair compared.
fn physical_overlap(entries: &[MapEntry]) -> Option<u64> {
    let mut in_device_order = true;
    for (a, b) in entries.iter().zip(entries.iter().skip(1)) {
        if b.start < a.start {
            in_device_order = false;
            break;
        }
        if byte_end(a) > b.start {
            return Some(b.first_slot);
        }
    }
    if in_device_order {
        return None;
    }
    #[cfg(feature = "alloc")]
    {
        let mut copy = alloc::vec::Vec::new();
        if copy.try_reserve_exact(entries.len()).is_ok() {
            copy.extend_from_slice(entries);
            return physical_overlap_in_place(&mut copy);
        }
    }
    physical_overlap_pairwise(entries)
}

/// Every pair compared: the check without scratch memory.
fn physical_overlap_pairwise(entries: &[MapEntry]) -> Option<u64> {
    let mut found = None;
    for (i, a) in entries.iter().enumerate() {
        for b in entries.iter().skip(i + 1) {
            if a.start < byte_end(b) && b.start < byte_end(a) {
                found = Some(found.map_or(b.first_slot, |f: u64| f.min(b.first_slot)));
                break;
            }
        }
    }
    found
}

/// [`physical_overlap`] with the caller's entries as scratch: sorts them by device
/// position, checks neighbours, and restores slot order (first slots are unique, so the
/// second sort is exact). No allocation, no recursion, every access checked: fits the
/// kernel object's gates.
pub(crate) fn physical_overlap_in_place(entries: &mut [MapEntry]) -> Option<u64> {
    heapsort_by_key(entries, |e| e.start);
    let mut overlap = None;
    for (a, b) in entries.iter().zip(entries.iter().skip(1)) {
        if byte_end(a) > b.start {
            overlap = Some(a.first_slot.max(b.first_slot));
            break;
        }
    }
    heapsort_by_key(entries, |e| e.first_slot);
    overlap
}

/// Swaps entries `i` and `j` when both exist.
fn swap_entries(v: &mut [MapEntry], i: usize, j: usize) {
    if let (Some(&a), Some(&b)) = (v.get(i), v.get(j)) {
        if let Some(x) = v.get_mut(i) {
            *x = b;
        }
        if let Some(y) = v.get_mut(j) {
            *y = a;
        }
    }
}

/// In-place iterative heapsort by `key` (ascending): no recursion, no panic path.
pub(crate) fn heapsort_by_key(v: &mut [MapEntry], key: impl Fn(&MapEntry) -> u64) {
    let k = |v: &[MapEntry], i: usize| v.get(i).map_or(0, &key);
    let sift_down = |v: &mut [MapEntry], mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            break;
        }
        if child + 1 < end && k(v, child) < k(v, child + 1) {
            child += 1;
        }
        if k(v, root) >= k(v, child) {
            break;
        }
        swap_entries(v, root, child);
        root = child;
    };
    let n = v.len();
    for start in (0..n / 2).rev() {
        sift_down(v, start, n);
    }
    for end in (1..n).rev() {
        swap_entries(v, 0, end);
        sift_down(v, 0, end);
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
    fn map_rejects_unordered_empty_or_overflowing_entries() {
        let back =
            [MapEntry { first_slot: 0, pages: 2, start: 0 }, MapEntry { first_slot: 1, pages: 1, start: 1 << 20 }];
        assert_eq!(SwapMap::new(back, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 1 });
        let zero = [MapEntry { first_slot: 0, pages: 0, start: 0 }];
        assert_eq!(SwapMap::new(zero, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 0 });
        let unaligned = [MapEntry { first_slot: 0, pages: 1, start: 512 }];
        assert_eq!(SwapMap::new(unaligned, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 0 });
        let overflow = [MapEntry { first_slot: 0, pages: u64::MAX / 4096, start: 1 << 40 }];
        assert_eq!(SwapMap::new(overflow, IoMode::Device).unwrap_err(), MapError::BadEntry { index: 0 });
        let none: [MapEntry; 0] = [];
        assert_eq!(SwapMap::new(none, IoMode::Device).unwrap_err(), MapError::Empty);
    }

    /// A gap between entries (a block device's bad page) is a bad slot: refused on
    /// lookup with its own error, never resolved to a neighbour, never out of range.
    #[test]
    fn bad_slots_between_entries_are_refused_on_lookup() {
        let m = SwapMap::new(
            [
                MapEntry { first_slot: 0, pages: 2, start: 0 },
                MapEntry { first_slot: 3, pages: 4, start: 3 * 4096 },
                MapEntry { first_slot: 9, pages: 1, start: 9 * 4096 },
                MapEntry { first_slot: 11, pages: 5, start: 11 * 4096 },
            ],
            IoMode::Device,
        )
        .unwrap();
        assert_eq!(m.slots(), 16);
        for s in [2, 7, 8, 10] {
            assert_eq!(m.lookup(s), Err(MapError::BadSlot { slot: s }), "slot {s}");
            assert!(!m.is_usable(s));
        }
        for s in [1, 3, 6, 9, 11, 15] {
            assert_eq!(m.lookup(s), Ok(Run { pos: s * 4096, pages: m.lookup(s).unwrap().pages }));
            assert!(m.is_usable(s));
        }
        assert!(!m.is_usable(0));
        assert_eq!(m.lookup(16), Err(MapError::SlotOutOfRange { slot: 16, slots: 16 }));
    }

    /// Device mode: two entries on the same device bytes are refused, found in device
    /// order (O(n)) and out of it (sorted copy), whichever entry comes first; file mode
    /// and merely adjacent entries are accepted.
    #[test]
    fn device_map_entries_sharing_device_bytes_are_refused() {
        let e = |first_slot, pages, page: u64| MapEntry { first_slot, pages, start: page * 4096 };
        let sorted = [e(0, 8, 0), e(8, 32, 100), e(40, 24, 131)];
        assert_eq!(SwapMap::new(sorted, IoMode::Device).unwrap_err(), MapError::PhysicalOverlap { slot: 40 });
        let unsorted = [e(0, 8, 500), e(8, 32, 100), e(40, 24, 120)];
        assert_eq!(SwapMap::new(unsorted, IoMode::Device).unwrap_err(), MapError::PhysicalOverlap { slot: 40 });
        let same = [e(0, 8, 0), e(8, 1, 300), e(9, 1, 300)];
        assert_eq!(SwapMap::new(same, IoMode::Device).unwrap_err(), MapError::PhysicalOverlap { slot: 9 });
        assert!(SwapMap::new(unsorted, IoMode::File).is_ok());
        assert!(SwapMap::new([e(0, 8, 500), e(8, 32, 100), e(40, 24, 132)], IoMode::Device).is_ok());
        // The pairwise fallback (no scratch memory) finds the same entries.
        assert_eq!(physical_overlap_pairwise(&unsorted), Some(40));
        assert_eq!(physical_overlap_pairwise(&same), Some(9));
        assert_eq!(physical_overlap_pairwise(&[e(0, 8, 500), e(8, 32, 100)]), None);
        let mut v = unsorted;
        assert_eq!(physical_overlap_in_place(&mut v), Some(40));
        assert_eq!(v, unsorted, "slot order restored");
    }
}
