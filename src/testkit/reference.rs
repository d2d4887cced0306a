//! A small, obviously-correct reference model of the kernel's swapfile activation
//! arithmetic (`read_swap_header` size rules, `iomap_swapfile_iter`,
//! `iomap_swapfile_add_extent`, `add_swap_extent`), written page by page so that it
//! shares no arithmetic shortcut with [`crate::activate()`].
//!
//! Each accumulated run of physically adjacent mappings is expanded into the list of
//! whole physical pages it contains (a page is in the run when its first and last
//! byte are), the first `max - pages_so_far` of them become slots, and everything else
//! is derived from the resulting `(slot, physical page)` list. Wide (`u128`) arithmetic
//! removes every overflow question. It is meant for tests and fuzzing: it allocates one
//! entry per page and refuses layouts of more than [`MAX_MODEL_PAGES`] pages.

use crate::activate::{
    activate_owned, ActivationError, ActivationReport, ActivationRequest, ExtentFlags, ExtentReport, Layout, Refusal,
    TrimLoss,
};
use crate::caps::BackendCaps;
use crate::header::{HeaderError, SwapHeader};
use crate::map::MapEntry;
use crate::PAGE_SIZE;
use std::format;
use std::string::String;
use std::vec::Vec;

const PAGE: u128 = PAGE_SIZE as u128;

/// Largest number of whole pages the model expands (it keeps one entry per page).
pub const MAX_MODEL_PAGES: u128 = 1 << 22;

/// What the model computed for an accepted device-mode swap file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceActivation {
    /// `(slot, physical page)` for every slot, in slot order (slot 0 is the header slot).
    pub pages: Vec<(u64, u64)>,
    /// `maxpages`: slots the header allows.
    pub header_pages: u64,
    /// Usable pages: slots minus the header slot.
    pub usable_pages: u64,
    /// Extents after `add_swap_extent`'s merge of physically contiguous slots.
    pub extents: u64,
    /// `1 + highest - lowest`.
    pub span_pages: u64,
    /// Lowest physical page (the kernel's `first_ppage_reported`: +1 for the run at offset 0).
    pub lowest_page: u64,
    /// Highest physical page of any added run, uncapped (the kernel's quirk).
    pub highest_page: u64,
    /// Bytes lost, classified the way [`TrimLoss`] documents.
    pub lost: TrimLoss,
}

/// Why the model refuses (only the refusals its arithmetic decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceRefusal {
    /// `last_page == 0`.
    EmptyHeader,
    /// The header promises more pages than the file holds.
    ShorterThanSignature,
    /// A hole in `[0, ALIGN_DOWN(i_size, PAGE))` starting at this file offset.
    Unallocated {
        /// File offset of the first byte not covered.
        offset: u64,
    },
    /// No whole physical page in any run.
    NoUsablePage,
    /// Only the header slot.
    EmptySwapFile,
    /// Two slots on one physical page (swapdio's own rule in device mode).
    PhysicalOverlap,
    /// Input the model does not cover: unsorted, overlapping, zero-length or
    /// overflowing extents, flags other than `UNWRITTEN`, several devices, or more
    /// than [`MAX_MODEL_PAGES`] pages.
    Unsupported,
}

/// The kernel's `maxpages` for a header with `last_page` and no architecture limit in
/// the way (`read_swap_header`): `last_page + 1`, clamped to `UINT_MAX` when that wraps.
fn header_maxpages(last_page: u32) -> u128 {
    let max = u128::from(last_page) + 1;
    if max as u32 == 0 {
        u128::from(u32::MAX)
    } else {
        max
    }
}

/// Whole physical pages inside `[addr, addr + len)`, enumerated one by one.
fn whole_pages(addr: u128, len: u128) -> Vec<u128> {
    let end = addr + len;
    (addr / PAGE..=end / PAGE).filter(|p| p * PAGE >= addr && (p + 1) * PAGE <= end).collect()
}

/// Runs the model on a device-mode swap file whose header says `last_page`.
pub fn activate_reference(
    extents: &[ExtentReport],
    file_size: u64,
    last_page: u32,
) -> Result<ReferenceActivation, ReferenceRefusal> {
    // Well-formedness, all at once (stricter than the walk, which stops at i_size).
    let device = extents.first().map_or(0, |e| e.device);
    let mut prev_end = 0u128;
    for e in extents {
        let (logical, physical, length) = (u128::from(e.logical), u128::from(e.physical), u128::from(e.length));
        let bad = length == 0
            || logical + length > u128::from(u64::MAX)
            || physical + length > u128::from(u64::MAX)
            || logical < prev_end
            || !ExtentFlags::UNWRITTEN.contains(e.flags)
            || e.device != device;
        if bad {
            return Err(ReferenceRefusal::Unsupported);
        }
        prev_end = logical + length;
    }

    // read_swap_header.
    if last_page == 0 {
        return Err(ReferenceRefusal::EmptyHeader);
    }
    let max = header_maxpages(last_page);
    let size = u128::from(file_size);
    let file_pages = size / PAGE;
    if file_pages != 0 && max > file_pages {
        return Err(ReferenceRefusal::ShorterThanSignature);
    }

    // iomap_swapfile_iter: walk [0, ALIGN_DOWN(i_size, PAGE)), accumulate physically
    // adjacent mappings whatever their logical offsets.
    let walk_end = file_pages * PAGE;
    let mut covered = 0u128;
    let mut runs: Vec<(u128, u128, u128)> = Vec::new(); // (logical, addr, len)
    for e in extents {
        let logical = u128::from(e.logical);
        if logical >= walk_end {
            break;
        }
        if logical > covered {
            return Err(ReferenceRefusal::Unallocated { offset: covered as u64 });
        }
        let len = u128::from(e.length).min(walk_end - logical);
        covered = logical + len;
        match runs.last_mut() {
            Some(run) if run.1 + run.2 == u128::from(e.physical) => run.2 += len,
            _ => runs.push((logical, u128::from(e.physical), len)),
        }
    }
    if covered < walk_end {
        return Err(ReferenceRefusal::Unallocated { offset: covered as u64 });
    }
    if runs.iter().map(|r| r.2 / PAGE + 1).sum::<u128>() > MAX_MODEL_PAGES {
        return Err(ReferenceRefusal::Unsupported);
    }

    // iomap_swapfile_add_extent, page by page.
    let mut slots: Vec<u128> = Vec::new(); // physical page of slot i
    let mut lost = TrimLoss { file_tail: (size - walk_end) as u64, ..TrimLoss::default() };
    let mut lowest = u128::MAX;
    let mut highest = 0u128;
    for &(logical, addr, len) in &runs {
        if slots.len() as u128 >= max {
            lost.beyond_header += len as u64;
            continue;
        }
        let pages = whole_pages(addr, len);
        let (Some(&first), Some(&last)) = (pages.first(), pages.last()) else {
            lost.too_short += len as u64;
            continue;
        };
        let room = (max - slots.len() as u128).min(pages.len() as u128) as usize;
        slots.extend_from_slice(&pages[..room]);
        lost.beyond_header += ((pages.len() - room) as u128 * PAGE) as u64;
        lost.misaligned += (len - pages.len() as u128 * PAGE) as u64;
        lowest = lowest.min(if logical == 0 { first + 1 } else { first });
        highest = highest.max(last);
    }
    match slots.len() {
        0 => return Err(ReferenceRefusal::NoUsablePage),
        1 => return Err(ReferenceRefusal::EmptySwapFile),
        _ => {}
    }
    let mut sorted = slots.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(ReferenceRefusal::PhysicalOverlap);
    }
    let extents = 1 + slots.windows(2).filter(|w| w[1] != w[0] + 1).count() as u64;
    Ok(ReferenceActivation {
        pages: slots.iter().enumerate().map(|(i, &p)| (i as u64, p as u64)).collect(),
        header_pages: max as u64,
        usable_pages: slots.len() as u64 - 1,
        extents,
        span_pages: (1 + highest - lowest) as u64,
        lowest_page: lowest as u64,
        highest_page: highest as u64,
        lost,
    })
}

/// The model of file mode (`SWP_FS_OPS`: `nfs_swap_activate` and friends call
/// `add_swap_extent(sis, 0, sis->max, 0)` and report `span = sis->pages`): the same
/// header rules and hole check as device mode, then slot i is file page i for every
/// slot the header allows. `pages` holds `(slot, file page)`.
pub fn activate_reference_file_mode(
    extents: &[ExtentReport],
    file_size: u64,
    last_page: u32,
) -> Result<ReferenceActivation, ReferenceRefusal> {
    // The device-mode walk decides the header and hole refusals; its arithmetic is unused.
    let same_device: Vec<ExtentReport> = extents.iter().map(|e| ExtentReport { device: 0, ..*e }).collect();
    match activate_reference(&same_device, file_size, last_page) {
        Ok(_)
        | Err(ReferenceRefusal::NoUsablePage | ReferenceRefusal::EmptySwapFile | ReferenceRefusal::PhysicalOverlap) => {
        }
        Err(refusal) => return Err(refusal),
    }
    let max = header_maxpages(last_page);
    let walk_end = u128::from(file_size) / PAGE * PAGE;
    if walk_end == 0 {
        return Err(ReferenceRefusal::NoUsablePage);
    }
    if max > MAX_MODEL_PAGES {
        return Err(ReferenceRefusal::Unsupported);
    }
    let pages: Vec<(u64, u64)> = (0..max as u64).map(|i| (i, i)).collect();
    let lost = TrimLoss {
        beyond_header: (walk_end - max * PAGE) as u64,
        file_tail: (u128::from(file_size) - walk_end) as u64,
        ..TrimLoss::default()
    };
    Ok(ReferenceActivation {
        header_pages: max as u64,
        usable_pages: max as u64 - 1,
        extents: 1,
        span_pages: max as u64 - 1,
        lowest_page: 1,
        highest_page: max as u64 - 1,
        lost,
        pages,
    })
}

/// Expands map entries into `(slot, physical page)` pairs, slot by slot.
pub fn expand_map(entries: &[MapEntry]) -> Vec<(u64, u64)> {
    entries.iter().flat_map(|e| (0..e.pages).map(move |k| (e.first_slot + k, e.start / PAGE_SIZE as u64 + k))).collect()
}

/// A page 0 whose header says `last_page`, as mkswap writes it.
pub fn header_page(last_page: u32) -> Vec<u8> {
    let mut page = std::vec![0u8; PAGE_SIZE];
    let header =
        SwapHeader { version: 1, last_page, nr_badpages: 0, uuid: [0; 16], label: [0; 16], byte_swapped: false };
    // A PAGE_SIZE buffer is always long enough.
    let _ = header.write(&mut page);
    page
}

fn same_refusal(model: ReferenceRefusal, got: &ActivationError) -> bool {
    match (model, got.refusal) {
        (ReferenceRefusal::EmptyHeader, Refusal::Header(HeaderError::Empty)) => true,
        (ReferenceRefusal::ShorterThanSignature, Refusal::Header(HeaderError::ShorterThanSignature)) => true,
        (ReferenceRefusal::Unallocated { offset }, Refusal::Unallocated) => got.offset == Some(offset),
        (ReferenceRefusal::NoUsablePage, Refusal::NoUsablePage) => true,
        (ReferenceRefusal::EmptySwapFile, Refusal::EmptySwapFile) => true,
        (ReferenceRefusal::PhysicalOverlap, Refusal::PhysicalOverlap { .. }) => true,
        _ => false,
    }
}

fn compare_report(model: &ReferenceActivation, map: &[MapEntry], report: &ActivationReport) -> Result<(), String> {
    let got_pages = expand_map(map);
    if got_pages != model.pages {
        let at = got_pages.iter().zip(&model.pages).position(|(a, b)| a != b);
        return Err(format!(
            "slot map differs (first difference at index {at:?}; {} slots, model {})",
            got_pages.len(),
            model.pages.len()
        ));
    }
    let got = (
        report.slots,
        report.header_pages,
        report.usable_pages,
        report.extents,
        report.span_pages,
        report.lowest_page,
        report.highest_page,
        report.lost,
    );
    let want = (
        model.pages.len() as u64,
        model.header_pages,
        model.usable_pages,
        model.extents,
        model.span_pages,
        model.lowest_page,
        model.highest_page,
        model.lost,
    );
    if got != want {
        return Err(format!(
            "report (slots, header_pages, usable, extents, span, lowest, highest, lost) = {got:?}, model {want:?}"
        ));
    }
    Ok(())
}

/// Activates `extents` in device mode (a block-device backend on the extents' device,
/// a header with `last_page`) with [`activate_owned`] and with [`activate_reference`],
/// and describes the first difference. Input the model does not cover only has to be
/// answered without a panic.
pub fn check_against_reference(extents: &[ExtentReport], file_size: u64, last_page: u32) -> Result<(), String> {
    let device = extents.first().map_or(0, |e| e.device);
    compare(
        extents,
        file_size,
        last_page,
        device,
        BackendCaps::BLOCK_DEVICE,
        activate_reference(extents, file_size, last_page),
    )
}

/// [`check_against_reference`] for file mode: a `swap_rw` backend that may write into
/// unwritten extents, against [`activate_reference_file_mode`].
pub fn check_file_mode_against_reference(
    extents: &[ExtentReport],
    file_size: u64,
    last_page: u32,
) -> Result<(), String> {
    let caps = BackendCaps::SWAP_RW
        | BackendCaps::OVERWRITE_IN_PLACE
        | BackendCaps::STABLE_ON_COMPLETE
        | BackendCaps::UNWRITTEN_SAFE_IN_FILE_MODE;
    let model = activate_reference_file_mode(extents, file_size, last_page);
    compare(extents, file_size, last_page, 0, caps, model)
}

fn compare(
    extents: &[ExtentReport],
    file_size: u64,
    last_page: u32,
    device: u64,
    caps: BackendCaps,
    model: Result<ReferenceActivation, ReferenceRefusal>,
) -> Result<(), String> {
    let header = header_page(last_page);
    let req = ActivationRequest::new(&header, file_size, Layout::Extents(extents), device, caps);
    let got = activate_owned(&req);
    match (model, got) {
        (Err(ReferenceRefusal::Unsupported), _) => Ok(()),
        (Ok(model), Ok((map, report))) => compare_report(&model, map.entries(), &report),
        (Err(model), Err(e)) if same_refusal(model, &e) => Ok(()),
        (Err(model), Err(e)) => Err(format!("refusal {e:?} ({e}), model {model:?}")),
        (Err(model), Ok((_, report))) => Err(format!("accepted ({report:?}), model refuses {model:?}")),
        (Ok(model), Err(e)) => Err(format!("refused {e:?} ({e}), model accepts {} slots", model.pages.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(logical: u64, physical: u64, length: u64) -> ExtentReport {
        ExtentReport { logical, physical, length, flags: ExtentFlags::empty(), device: 1 }
    }

    #[test]
    fn reference_whole_pages_are_the_pages_fully_inside() {
        assert_eq!(whole_pages(0, 4096), std::vec![0]);
        assert_eq!(whole_pages(1, 8191), std::vec![1]);
        assert_eq!(whole_pages(1, 8190), std::vec![]);
        assert_eq!(whole_pages(4096, 3 * 4096 + 5), std::vec![1, 2, 3]);
    }

    #[test]
    fn reference_misaligned_runs_match_the_engine() {
        let e = [ext(0, 1024, 5 * 4096), ext(5 * 4096, 1 << 20, 3 * 4096 + 100)];
        let model = activate_reference(&e, 8 * 4096 + 100, 5).unwrap();
        // Run 1 holds whole pages 1..=4; run 2 pages 256..=258, capped at 6 slots.
        assert_eq!(model.pages, std::vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 256), (5, 257)]);
        assert_eq!((model.lowest_page, model.highest_page, model.extents), (2, 258, 2));
        let lost = TrimLoss { misaligned: 3072 + 1024, too_short: 0, beyond_header: 4096, file_tail: 100 };
        assert_eq!(model.lost, lost);
        assert_eq!(lost.total(), Some(2 * 4096 + 100));
        assert_eq!(check_against_reference(&e, 8 * 4096 + 100, 5), Ok(()));
    }
}
