//! Activation from arbitrary extent lists (`iomap_swapfile_iter`, `add_swap_extent`,
//! `read_swap_header`, the mode choice): any request is answered without a panic and an
//! accepted map is self-consistent; shaped, mostly valid layouts (adjacent, misaligned,
//! short, unwritten, holed extents) must match `swapdio::testkit::reference` exactly —
//! the same slot→page map, report and loss accounting, or the same refusal.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use swapdio::testkit::reference::{check_against_reference, header_page};
use swapdio::*;

#[derive(Arbitrary, Debug)]
struct RawExtent {
    logical: u64,
    physical: u64,
    length: u64,
    flags: u32,
    device: u64,
}

#[derive(Arbitrary, Debug)]
struct Shaped {
    /// Hole before this extent, in pages (most often none).
    gap: u8,
    /// Physical page, and a byte misalignment used one time in four.
    phys_page: u16,
    misalign: u16,
    pages: u8,
    /// Extra bytes past the whole pages.
    tail: u16,
    unwritten: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    raw: Vec<RawExtent>,
    raw_header: Option<Vec<u8>>,
    last_page: u32,
    file_size: u64,
    caps: u32,
    attrs: u32,
    mode: u8,
    max_pages: u64,
    opaque: Option<u64>,
    main_device: u64,
    shaped: Vec<Shaped>,
    shaped_last_page: u16,
    file_tail: u16,
}

fuzz_target!(|input: Input| {
    // 1. Anything at all: no panic, and an accepted map is consistent with its report.
    let header = match &input.raw_header {
        Some(h) if h.len() >= PAGE_SIZE => h.clone(),
        _ => header_page(input.last_page),
    };
    let extents: Vec<ExtentReport> = input
        .raw
        .iter()
        .map(|e| ExtentReport {
            logical: e.logical,
            physical: e.physical,
            length: e.length,
            flags: ExtentFlags::from_bits_truncate(e.flags),
            device: e.device,
        })
        .collect();
    // `opaque` also selects a whole block device (bad pages from a raw header).
    let layout = match input.opaque {
        Some(u64::MAX) => Layout::BlockDevice,
        Some(allocated_bytes) => Layout::Opaque { allocated_bytes },
        None => Layout::Extents(&extents),
    };
    let mut req = ActivationRequest::new(
        &header,
        input.file_size,
        layout,
        input.main_device,
        BackendCaps::from_bits_truncate(input.caps),
    );
    req.attrs = FileAttrs::from_bits_truncate(input.attrs);
    req.mode = [ModeRequest::Auto, ModeRequest::Device, ModeRequest::File][usize::from(input.mode % 3)];
    req.limits = HeaderLimits { max_pages: input.max_pages };
    let mut small = vec![MapEntry::default(); req.map_capacity().min(4)];
    let _ = activate_into(&req, &mut small); // too little caller storage: an error, never a panic
    if let Ok((map, report)) = activate_owned(&req) {
        assert_eq!(map.slots(), report.slots);
        assert_eq!(report.usable_pages + 1, report.slots);
        assert!(report.slots <= report.header_pages);
        assert_eq!(map.mode(), report.mode);
        for e in map.entries() {
            assert!(map.lookup(e.first_slot).is_ok() && e.end_slot().is_some_and(|end| map.lookup(end - 1).is_ok()));
        }
        assert!(map.lookup(map.slots()).is_err());
    }

    // 2. Shaped layouts: the engine and the reference model agree.
    let mut shaped = Vec::new();
    let mut logical = 0u64;
    for s in input.shaped.iter().take(48) {
        if s.gap % 16 == 15 {
            logical += u64::from(s.gap / 16 + 1) * PAGE_SIZE as u64;
        }
        let misalign = if s.misalign % 4 == 0 { u64::from(s.misalign) % PAGE_SIZE as u64 } else { 0 };
        let tail = if s.tail % 4 == 0 { u64::from(s.tail) % PAGE_SIZE as u64 } else { 0 };
        let length = u64::from(s.pages) * PAGE_SIZE as u64 + tail;
        if length == 0 {
            continue;
        }
        let flags = if s.unwritten { ExtentFlags::UNWRITTEN } else { ExtentFlags::empty() };
        shaped.push(ExtentReport {
            logical,
            physical: u64::from(s.phys_page) * 4096 + misalign,
            length,
            flags,
            device: 1,
        });
        logical += length;
    }
    let file_size = logical + u64::from(input.file_tail % 8192);
    if let Err(diff) = check_against_reference(&shaped, file_size, u32::from(input.shaped_last_page)) {
        panic!("activation differs from the reference model: {diff}\nextents {shaped:?} file_size {file_size}");
    }
});
