//! The legacy activation path: `generic_swapfile_activate` (`mm/page_io.c`), for
//! filesystems that have `->bmap` but no `->swap_activate` (FUSE block filesystems such
//! as ntfs-3g, vfat, ...).
//!
//! The kernel walks the file page by page with `bmap()`; from userspace the same
//! question is the `FIBMAP` ioctl (needs `CAP_SYS_RAWIO`), answered by the same
//! `->bmap` (for FUSE, the daemon's `FUSE_BMAP`). [`generic_activate`] is the walk's
//! arithmetic over any `bmap` function, [`fibmap`] the ioctl:
//!
//! * blocks are `i_blkbits` sized (`st_blksize`); the walk covers whole pages while
//!   `probe_block + blocks_per_page <= i_size >> blkbits` and fewer than `maxpages` pages
//!   were taken;
//! * a block that `bmap` cannot map, or maps to 0, is a hole: "swapfile has holes"
//!   (`EINVAL`) — also when the filesystem has no `->bmap` at all;
//! * the page's first block must be page aligned on the device, and its other blocks
//!   must follow it contiguously; otherwise the walk moves on by **one block** and tries
//!   again (the page is then no longer file-page aligned);
//! * every page found is one `add_swap_extent(page_no, 1, block)`, merged with the
//!   previous extent when both slot and block follow on;
//! * `span = 1 + highest - lowest` over the pages after the header page; only the header
//!   page → "Empty swap-file".

use crate::activate::{ActivationError, ActivationReport, Refusal, TrimLoss};
use crate::caps::IoMode;
use crate::map::MapEntry;
use crate::PAGE_SIZE;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

const PAGE: u64 = PAGE_SIZE as u64;

/// `FIBMAP = _IO(0x00, 1)`.
const FIBMAP: libc::c_ulong = 1;

/// Why the walk stopped without a verdict: `bmap` failed for a reason that is not the
/// kernel's "hole" (e.g. `EPERM` without `CAP_SYS_RAWIO`).
#[derive(Debug)]
pub enum BmapError {
    /// The activation refusal the kernel would give.
    Refused(ActivationError),
    /// The question could not be asked.
    Io(io::Error),
}

/// `FIBMAP`: the device block (in `i_blkbits` units) of file block `block`, 0 for a
/// hole. `EINVAL` means the filesystem has no `->bmap`.
pub fn fibmap(file: &File, block: u64) -> io::Result<u64> {
    let mut b: libc::c_int = libc::c_int::try_from(block).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: FIBMAP reads and writes one `int` through the pointer, which refers to a
    // live local; the fd is open for the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), FIBMAP as _, &mut b as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(b as u32 as u64)
}

/// `generic_swapfile_activate` over `bmap` (file block → device block, 0 = hole):
/// the map entries and the report, or the kernel's refusal. `blkbits` is `i_blkbits`
/// (at most `PAGE_SHIFT`), `maxpages` what the header allows. `bmap` errors of kind
/// `EINVAL`/`ENOTTY`/`EOPNOTSUPP` (no `->bmap`) are holes, as in the kernel; others stop
/// the walk with [`BmapError::Io`].
pub fn generic_activate(
    i_size: u64,
    blkbits: u32,
    maxpages: u64,
    mut bmap: impl FnMut(u64) -> io::Result<u64>,
) -> Result<(Vec<MapEntry>, ActivationReport), BmapError> {
    let bs = 1u64 << blkbits.min(63);
    if bs > PAGE || bs == 0 {
        return Err(BmapError::Io(io::Error::new(io::ErrorKind::Unsupported, "block size larger than a page")));
    }
    let bpp = PAGE / bs;
    let last_block = i_size >> blkbits;
    let hole = |block: u64| {
        BmapError::Refused(ActivationError { refusal: Refusal::Holes, extent: None, offset: Some(block * bs) })
    };
    let mut map = |block: u64| -> Result<u64, BmapError> {
        match bmap(block) {
            Ok(0) => Err(hole(block)),
            Ok(b) => Ok(b),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY | libc::EOPNOTSUPP)) => {
                Err(hole(block))
            }
            Err(e) => Err(BmapError::Io(e)),
        }
    };
    let mut entries: Vec<MapEntry> = Vec::new();
    let (mut probe, mut page_no, mut skipped) = (0u64, 0u64, 0u64);
    let (mut lowest, mut highest) = (u64::MAX, 0u64);
    'walk: while probe + bpp <= last_block && page_no < maxpages {
        let first = map(probe)?;
        if first & (bpp - 1) != 0 {
            probe += 1;
            skipped += 1;
            continue;
        }
        for i in 1..bpp {
            if map(probe + i)? != first + i {
                probe += 1;
                skipped += 1;
                continue 'walk;
            }
        }
        let ppage = first / bpp;
        if page_no != 0 {
            lowest = lowest.min(ppage);
            highest = highest.max(ppage);
        }
        match entries.last_mut() {
            Some(e) if e.first_slot + e.pages == page_no && e.start / PAGE + e.pages == ppage => e.pages += 1,
            _ => entries.push(MapEntry { first_slot: page_no, pages: 1, start: ppage * PAGE }),
        }
        page_no += 1;
        probe += bpp;
    }
    let rest = (last_block - probe.min(last_block)) * bs;
    let stopped_by_header = page_no >= maxpages;
    let lost = TrimLoss {
        misaligned: skipped * bs,
        too_short: if stopped_by_header { 0 } else { rest },
        beyond_header: if stopped_by_header { rest } else { 0 },
        file_tail: i_size - (last_block << blkbits),
    };
    if page_no <= 1 {
        return Err(BmapError::Refused(Refusal::EmptySwapFile.into()));
    }
    let report = ActivationReport {
        mode: IoMode::Device,
        slots: page_no,
        usable_pages: page_no - 1,
        header_pages: maxpages,
        extents: entries.len() as u64,
        span_pages: 1 + highest - lowest,
        lowest_page: lowest,
        highest_page: highest,
        lost,
        bad_pages: 0,
    };
    Ok((entries, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(size: u64, blkbits: u32, max: u64, blocks: &[u64]) -> Result<(Vec<MapEntry>, ActivationReport), BmapError> {
        generic_activate(size, blkbits, max, |b| Ok(blocks.get(b as usize).copied().unwrap_or(0)))
    }

    #[test]
    fn bmap_walk_takes_aligned_contiguous_pages_and_merges_them() {
        // 1 KiB blocks: 4 pages at device blocks 400.., the header page elsewhere.
        let blocks: Vec<u64> = (0..4).map(|i| 800 + i).chain((0..12).map(|i| 400 + i)).collect();
        let (e, r) = run(16 * 1024, 10, 100, &blocks).unwrap();
        assert_eq!(
            e,
            vec![
                MapEntry { first_slot: 0, pages: 1, start: 200 * PAGE },
                MapEntry { first_slot: 1, pages: 3, start: 100 * PAGE }
            ]
        );
        assert_eq!((r.usable_pages, r.extents, r.span_pages, r.lowest_page, r.highest_page), (3, 2, 3, 100, 102));
        assert_eq!(r.lost.total().map(|t| r.slots * PAGE + t), Some(16 * 1024));
    }

    #[test]
    fn bmap_walk_skips_one_block_on_misalignment_or_discontiguity() {
        // Header page fine; then one stray block shifts the next page by one block.
        let mut blocks: Vec<u64> = (0..4).map(|i| 800 + i).collect();
        blocks.push(999); // misaligned single block
        blocks.extend((0..8).map(|i| 400 + i));
        blocks.extend([0, 0, 0]); // would be holes, but the walk ends before them
        let (_, r) = run(13 * 1024, 10, 100, &blocks).unwrap();
        assert_eq!((r.usable_pages, r.lost.misaligned), (2, 1024));
        // A discontiguity inside a page: blocks 0..4 map 8,9,20,21 → skip one block at a time.
        let blocks = [8, 9, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29];
        let (e, r) = run(12 * 1024, 10, 100, &blocks).unwrap();
        assert_eq!(e, vec![MapEntry { first_slot: 0, pages: 2, start: 5 * PAGE }]);
        assert_eq!((r.usable_pages, r.lost.misaligned, r.lost.too_short), (1, 2048, 2048));
    }

    #[test]
    fn bmap_hole_or_block_zero_is_swapfile_has_holes() {
        let blocks = [8, 9, 10, 11, 0, 0, 0, 0];
        match run(8 * 1024, 10, 100, &blocks) {
            Err(BmapError::Refused(e)) => assert_eq!((e.refusal, e.offset), (Refusal::Holes, Some(4096))),
            other => panic!("{other:?}"),
        }
        let none = generic_activate(8192, 12, 2, |_| Err(io::Error::from_raw_os_error(libc::EINVAL)));
        assert!(matches!(none, Err(BmapError::Refused(e)) if e.refusal == Refusal::Holes));
        let eperm = generic_activate(8192, 12, 2, |_| Err(io::Error::from_raw_os_error(libc::EPERM)));
        assert!(matches!(eperm, Err(BmapError::Io(_))));
    }

    #[test]
    fn bmap_walk_stops_at_the_header_and_needs_more_than_the_header_page() {
        let blocks: Vec<u64> = (0..10).map(|i| 100 + i).collect();
        let (_, r) = run(10 * PAGE, 12, 4, &blocks).unwrap();
        assert_eq!((r.slots, r.usable_pages, r.lost.beyond_header), (4, 3, 6 * PAGE));
        assert!(
            matches!(run(PAGE + 100, 12, 4, &blocks), Err(BmapError::Refused(e)) if e.refusal == Refusal::EmptySwapFile)
        );
    }
}
