//! Activation against the page-by-page reference model of the kernel arithmetic
//! (`swapdio::testkit::reference`) on random extent lists: 512 B, 1 KiB and 4 KiB
//! block layouts, byte-misaligned layouts, unwritten extents, physically adjacent
//! runs, holes, partial tail pages, and headers smaller than, equal to and larger
//! than the file.

use proptest::prelude::*;
use swapdio::testkit::reference::{
    activate_reference, check_against_reference, check_file_mode_against_reference, expand_map, header_page,
    ReferenceRefusal,
};
use swapdio::*;

/// One generated extent: (length units, physically adjacent to the previous one,
/// physical units, unwritten, hole selector).
type ExtentSpec = (u64, bool, u64, bool, u8);

/// Builds a logically sorted extent list from the specs with granularity `g` bytes
/// (`g == 1`: lengths and addresses of arbitrary bytes), and the end of the last extent.
fn build(g: u64, specs: &[ExtentSpec]) -> (Vec<ExtentReport>, u64) {
    let unit = if g == 1 { 997 } else { g };
    let mut out: Vec<ExtentReport> = Vec::new();
    let mut logical = 0u64;
    for &(len_units, adjacent, phys_units, unwritten, hole) in specs {
        if hole == 0 {
            logical += unit; // a hole: activation must refuse with its offset
        }
        let length = len_units * unit;
        let physical = match out.last() {
            Some(prev) if adjacent => prev.physical + prev.length,
            _ => phys_units * unit * 3 + if g == 1 { phys_units % 13 } else { 0 },
        };
        let flags = if unwritten { ExtentFlags::UNWRITTEN } else { ExtentFlags::empty() };
        out.push(ExtentReport { logical, physical, length, flags, device: 3 });
        logical += length;
    }
    (out, logical)
}

fn file_size_for(end: u64, trim: u64, extend: bool) -> u64 {
    if extend {
        end + trim
    } else {
        end.saturating_sub(trim).max(1)
    }
}

fn last_page_for(file_size: u64, selector: u8, random: u32) -> u32 {
    let file_pages = (file_size / PAGE_SIZE as u64).min(u64::from(u32::MAX)) as u32;
    match selector {
        0 => 0,                                // "Empty swap-file"
        1 => file_pages,                       // one page more than the file holds
        2 | 3 => file_pages.saturating_sub(1), // mkswap on the whole file
        _ => 1 + random % file_pages.max(1),   // a header smaller than the file
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// `activate_owned` equals the reference model: the map expanded slot by slot,
    /// usable pages, extents, span, lowest/highest page, lost bytes by cause, and the
    /// refusals the arithmetic decides (holes, no usable page, empty swap file, header).
    #[test]
    fn activation_equals_reference_model_on_random_extent_lists(
        g in prop_oneof![Just(1u64), Just(512u64), Just(1024u64), Just(4096u64)],
        specs in prop::collection::vec((1u64..48, any::<bool>(), 0u64..4096, any::<bool>(), 0u8..24), 1..14),
        trim in 0u64..(3 * 4096),
        extend in prop::bool::weighted(0.1),
        selector in 0u8..10,
        random in any::<u32>(),
    ) {
        let (extents, end) = build(g, &specs);
        let file_size = file_size_for(end, trim, extend);
        let last_page = last_page_for(file_size, selector, random);
        let model = activate_reference(&extents, file_size, last_page);
        prop_assert_ne!(model.clone().err(), Some(ReferenceRefusal::Unsupported), "generator made unsupported input");
        prop_assert_eq!(check_against_reference(&extents, file_size, last_page), Ok(()));

        // The trim invariant and the map's own view of the report.
        let header = header_page(last_page);
        let req = ActivationRequest::new(&header, file_size, Layout::Extents(&extents), 3, BackendCaps::BLOCK_DEVICE);
        if let Ok((map, report)) = activate_owned(&req) {
            prop_assert_eq!(report.lost.total().map(|t| report.slots * PAGE_SIZE as u64 + t), Some(file_size));
            prop_assert_eq!(map.slots(), report.slots);
            prop_assert_eq!(map.entries().len() as u64, report.extents);
            let model = model.unwrap();
            for (slot, phys) in expand_map(map.entries()) {
                prop_assert_eq!(map.lookup(slot).map(|r| r.pos), Ok(phys * PAGE_SIZE as u64));
            }
            prop_assert_eq!(model.pages.len() as u64, report.slots);
        }
    }

    /// File mode on the same random layouts: the header and hole rules of device mode,
    /// then the identity map of every slot the header allows, nothing trimmed.
    #[test]
    fn file_mode_activation_equals_reference_model_on_random_extent_lists(
        g in prop_oneof![Just(1u64), Just(1024u64), Just(4096u64)],
        specs in prop::collection::vec((1u64..48, any::<bool>(), 0u64..4096, any::<bool>(), 0u8..24), 1..14),
        trim in 0u64..(3 * 4096),
        extend in prop::bool::weighted(0.1),
        selector in 0u8..10,
        random in any::<u32>(),
    ) {
        let (extents, end) = build(g, &specs);
        let file_size = file_size_for(end, trim, extend);
        let last_page = last_page_for(file_size, selector, random);
        prop_assert_eq!(check_file_mode_against_reference(&extents, file_size, last_page), Ok(()));
    }

    /// Physically adjacent extents accumulate whatever their logical offsets, so an
    /// extent list cut at arbitrary points over one contiguous physical range gives the
    /// same map as a single extent.
    #[test]
    fn activation_of_a_contiguous_range_does_not_depend_on_how_it_is_cut(
        cuts in prop::collection::btree_set(1u64..200, 0..12),
        physical in 0u64..(1 << 24),
        pages in 2u64..50,
    ) {
        let length = 200 * 1024;
        let mut extents = Vec::new();
        let mut start = 0u64;
        for c in cuts.iter().copied().chain([200]) {
            let (lo, hi) = (start * 1024, c * 1024);
            extents.push(ExtentReport { logical: lo, physical: physical + lo, length: hi - lo, flags: ExtentFlags::empty(), device: 0 });
            start = c;
        }
        let whole = [ExtentReport { logical: 0, physical, length, flags: ExtentFlags::empty(), device: 0 }];
        let header = header_page(pages as u32 - 1);
        let cut = activate_owned(&ActivationRequest::new(&header, length, Layout::Extents(&extents), 0, BackendCaps::BLOCK_DEVICE));
        let one = activate_owned(&ActivationRequest::new(&header, length, Layout::Extents(&whole), 0, BackendCaps::BLOCK_DEVICE));
        match (cut, one) {
            (Ok((m1, r1)), Ok((m2, r2))) => {
                prop_assert_eq!(m1.entries(), m2.entries());
                prop_assert_eq!(r1, r2);
                prop_assert_eq!(r1.extents, 1);
            }
            (a, b) => prop_assert_eq!(a.err(), b.err()),
        }
        prop_assert_eq!(check_against_reference(&extents, length, pages as u32 - 1), Ok(()));
    }
}
