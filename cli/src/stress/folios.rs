//! Folio sizes for `swapdio stress`: the mix it draws from (`--folio-pages`), the arena
//! allocator that gives a folio of `n` pages `n` contiguous, naturally aligned arena
//! pages, and the per-size counts it reports.
//!
//! The kernel swaps out large folios of the mTHP orders a system enables (16 KiB up to
//! the 2 MiB PMD size with 4 KiB pages: 4 to 512 pages, always a power of two) as one
//! bvec each, at a run of swap slots aligned to the folio's size (the swap allocator
//! hands an order-`k` folio a cluster slot range aligned to `2^k` slots). The workload
//! does the same, and a folio whose slots cross an extent boundary of the swap file is
//! split by the engine into one request per extent (docs/swap-rules.md, "Large folios").

use serde::Serialize;
use std::collections::BTreeSet;

/// Largest folio `--folio-pages` accepts: the PMD size (2 MiB) in 4 KiB pages, the
/// largest folio the kernel swaps out whole.
pub const MAX_FOLIO: u32 = 512;

/// The folio sizes a run draws from: each swap-out or swap-in picks one of the listed
/// sizes uniformly (list a size twice to weight it), then moves folios of that size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolioMix(Vec<u32>);

/// The default mix: every mTHP order up to 64 KiB, one page included (what a system with
/// the 16, 32 and 64 KiB mTHP sizes enabled swaps out beside small folios).
pub const DEFAULT_MIX: &str = "1,2,4,8,16";

impl FolioMix {
    /// Parses `1,4,16`: powers of two from 1 to [`MAX_FOLIO`] pages, separated by commas.
    pub fn parse(s: &str) -> Result<FolioMix, String> {
        let mut sizes = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let n: u32 =
                part.parse().map_err(|_| format!("invalid folio size {part:?} in {s:?}: expected e.g. 1,4,16"))?;
            if !n.is_power_of_two() || n > MAX_FOLIO {
                return Err(format!(
                    "folio size {n} is not a power of two from 1 to {MAX_FOLIO} pages (the kernel's folio orders)"
                ));
            }
            sizes.push(n);
        }
        Ok(FolioMix(sizes))
    }

    /// One size, drawn uniformly from the list.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> u32 {
        self.0.get(rng.usize(..self.0.len())).copied().unwrap_or(1)
    }

    /// The smallest size in the mix.
    pub fn min(&self) -> u32 {
        self.0.iter().copied().min().unwrap_or(1)
    }

    /// The largest size in the mix.
    pub fn max(&self) -> u32 {
        self.0.iter().copied().max().unwrap_or(1)
    }

    /// The distinct sizes, smallest first.
    pub fn distinct(&self) -> Vec<u32> {
        let mut v = self.0.clone();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The largest size of the mix (or 1) that starts aligned at `slot` and fits in `room` slots.
    pub fn largest_fitting(&self, slot: u64, room: u64) -> u32 {
        self.0.iter().copied().filter(|&n| slot % u64::from(n) == 0 && u64::from(n) <= room).max().unwrap_or(1)
    }

    /// The list as `--folio-pages` takes it.
    pub fn text(&self) -> String {
        self.0.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

/// A buddy allocator over the arena's pages (the kernel's page allocator in miniature):
/// a folio of `2^k` pages gets a block of `2^k` contiguous pages aligned to its size,
/// split from a larger free block when needed and merged with its buddy when freed.
pub struct Buddy {
    /// Free blocks per order, by first page.
    free: Vec<BTreeSet<u32>>,
    free_pages: usize,
}

impl Buddy {
    /// `pages` arena pages (a multiple of `2^max_order`), all free.
    pub fn new(pages: usize, max_order: u32) -> Buddy {
        let mut free = vec![BTreeSet::new(); max_order as usize + 1];
        let block = 1usize << max_order;
        free[max_order as usize] = (0..pages / block).map(|b| (b * block) as u32).collect();
        Buddy { free, free_pages: pages / block * block }
    }

    /// Pages free, in blocks of any size.
    pub fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// The first page of a free block of `pages` (a power of two) pages, or `None`.
    pub fn alloc(&mut self, pages: u32) -> Option<u32> {
        let order = pages.trailing_zeros() as usize;
        let mut o = (order..self.free.len()).find(|&o| !self.free[o].is_empty())?;
        let p = self.free[o].pop_first()?;
        while o > order {
            o -= 1;
            self.free[o].insert(p + (1 << o));
        }
        self.free_pages -= pages as usize;
        Some(p)
    }

    /// Returns the block of `pages` pages at `p`, merging it with its free buddies.
    pub fn release(&mut self, mut p: u32, pages: u32) {
        self.free_pages += pages as usize;
        let mut order = pages.trailing_zeros() as usize;
        while order + 1 < self.free.len() && self.free[order].remove(&(p ^ (1 << order))) {
            p &= !(1 << order);
            order += 1;
        }
        self.free[order].insert(p);
    }
}

/// What happened to the folios of one size.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SizeCounts {
    /// Pages per folio.
    pub pages: u32,
    /// Folios written (swap-outs that succeeded, rewrites included).
    pub folios_out: u64,
    /// Folios read back and checked (swap-ins that succeeded).
    pub folios_in: u64,
    /// Failed writes: the whole folio was redirtied and written again later.
    pub write_failures: u64,
    /// Failed reads.
    pub read_failures: u64,
    /// Folios (out and in) whose slots crossed an extent boundary: the engine split them
    /// into one request per extent.
    pub split: u64,
}

/// [`SizeCounts`] for every size of the mix (and 1, which the final pass may use).
pub struct FolioCounts(Vec<SizeCounts>);

impl FolioCounts {
    pub fn new(mix: &FolioMix) -> FolioCounts {
        let mut sizes = mix.distinct();
        if sizes.first() != Some(&1) {
            sizes.insert(0, 1);
        }
        FolioCounts(sizes.into_iter().map(|pages| SizeCounts { pages, ..SizeCounts::default() }).collect())
    }

    /// The counts of `pages`-page folios.
    pub fn of(&mut self, pages: u32) -> &mut SizeCounts {
        let i = self.0.iter().position(|c| c.pages == pages).unwrap_or_else(|| {
            self.0.push(SizeCounts { pages, ..SizeCounts::default() });
            self.0.len() - 1
        });
        &mut self.0[i]
    }

    /// The sizes that moved anything, smallest first.
    pub fn used(&self) -> Vec<SizeCounts> {
        let mut v: Vec<SizeCounts> = self
            .0
            .iter()
            .copied()
            .filter(|c| c.folios_out + c.folios_in + c.write_failures + c.read_failures > 0)
            .collect();
        v.sort_by_key(|c| c.pages);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folio_mix_accepts_only_the_kernels_folio_orders() {
        assert_eq!(FolioMix::parse("1, 4,16").unwrap().distinct(), vec![1, 4, 16]);
        assert_eq!(FolioMix::parse("512").unwrap().max(), 512);
        for bad in ["", "0", "3", "1024", "1,,2", "x", "-1"] {
            assert!(FolioMix::parse(bad).is_err(), "{bad:?}");
        }
        let m = FolioMix::parse("1,4,16").unwrap();
        assert_eq!(m.largest_fitting(16, 32), 16);
        assert_eq!(m.largest_fitting(16, 15), 4);
        assert_eq!(m.largest_fitting(6, 32), 1);
    }

    #[test]
    fn buddy_blocks_are_aligned_disjoint_and_merge_back_whole() {
        let mut b = Buddy::new(64, 4);
        let mut rng = fastrand::Rng::with_seed(5);
        let mut held: Vec<(u32, u32)> = Vec::new();
        let mut owner = [false; 64];
        for _ in 0..10_000 {
            if rng.bool() && !held.is_empty() {
                let (p, n) = held.swap_remove(rng.usize(..held.len()));
                (p..p + n).for_each(|i| owner[i as usize] = false);
                b.release(p, n);
            } else {
                let n = 1 << rng.u32(0..=4);
                if let Some(p) = b.alloc(n) {
                    assert_eq!(p % n, 0, "block of {n} at {p} is not aligned");
                    for i in p..p + n {
                        assert!(!owner[i as usize], "page {i} handed out twice");
                        owner[i as usize] = true;
                    }
                    held.push((p, n));
                }
            }
            assert_eq!(b.free_pages(), 64 - held.iter().map(|h| h.1 as usize).sum::<usize>());
        }
        for (p, n) in held.drain(..) {
            b.release(p, n);
        }
        // Everything merged back: four whole 16-page blocks.
        assert_eq!((0..4).map(|_| b.alloc(16).unwrap()).collect::<Vec<_>>(), vec![0, 16, 32, 48]);
        assert_eq!(b.alloc(1), None);
    }
}
