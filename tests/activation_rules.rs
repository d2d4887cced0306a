//! Activation (swapon), rule by rule (docs/swap-rules.md §2): the extent walk of
//! `iomap_swapfile_iter` / `iomap_swapfile_add_extent`, its refusals with the kernel's
//! messages and errno, file mode, opaque (NFS) layouts, the trim report, and bad input
//! answered with typed errors.

use swapdio::testkit::reference::{check_against_reference, header_page};
use swapdio::*;

const P: u64 = PAGE_SIZE as u64;
const DEV: u64 = 7;
const FS_FILE: BackendCaps =
    BackendCaps::SWAP_RW.union(BackendCaps::OVERWRITE_IN_PLACE).union(BackendCaps::STABLE_ON_COMPLETE);

fn ext(logical: u64, physical: u64, length: u64) -> ExtentReport {
    ExtentReport { logical, physical, length, flags: ExtentFlags::empty(), device: DEV }
}

fn req<'a>(header: &'a [u8], file_size: u64, extents: &'a [ExtentReport], caps: BackendCaps) -> ActivationRequest<'a> {
    ActivationRequest::new(header, file_size, Layout::Extents(extents), DEV, caps)
}

/// Activates, checks the invariants every accepted file must satisfy (trim accounting,
/// borrowed and owned storage agree, the map matches the report), and returns the map
/// entries and the report.
fn accept(r: &ActivationRequest<'_>) -> (Vec<MapEntry>, ActivationReport) {
    let (map, report) = activate_owned(r).unwrap_or_else(|e| panic!("refused: {e:?}"));
    let file_size = r.file_size;
    assert_eq!(report.lost.total().map(|t| report.slots * P + t), Some(file_size), "TrimLoss invariant: {report:?}");
    assert_eq!(report.usable_pages + report.bad_pages + 1, report.slots);
    if report.bad_pages == 0 {
        assert_eq!(map.slots(), report.slots);
        assert_eq!(map.entries().len() as u64, report.extents);
    } else {
        // A block device's bad pages are left out of its map: one entry per good run.
        assert!(map.slots() <= report.slots && map.entries().len() as u64 <= report.bad_pages + 1);
    }
    let mut out = vec![MapEntry::default(); r.map_capacity()];
    let (borrowed, report2) = activate(r, &mut out).unwrap();
    assert_eq!((borrowed.entries(), report2), (map.entries(), report));
    (map.entries().to_vec(), report)
}

fn refuse(r: &ActivationRequest<'_>) -> ActivationError {
    match activate_owned(r) {
        Ok((_, report)) => panic!("accepted: {report:?}"),
        Err(e) => e,
    }
}

fn hdr(last_page: u32) -> Vec<u8> {
    header_page(last_page)
}

fn entry(first_slot: u64, pages: u64, start_page: u64) -> MapEntry {
    MapEntry { first_slot, pages, start: start_page * P }
}

// ---- the extent walk -------------------------------------------------------------------

/// `prev.addr + prev.len == next.addr`: mappings accumulate by physical adjacency only.
/// Eight 2 KiB mappings at 1 KiB-aligned addresses have no whole page each, but their
/// accumulated run holds three.
#[test]
fn accumulate_physically_adjacent_extents_ignoring_logical_offsets() {
    let extents: Vec<_> = (0..8).map(|i| ext(i * 2048, 1024 + i * 2048, 2048)).collect();
    let h = hdr(2);
    let (map, report) = accept(&req(&h, 4 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map, vec![entry(0, 3, 1)]);
    assert_eq!((report.slots, report.extents, report.lowest_page, report.highest_page), (3, 1, 2, 3));
    assert_eq!(report.lost, TrimLoss { misaligned: 4096, ..TrimLoss::default() });

    // Physically adjacent only backwards (next.addr + next.len == prev.addr): no merge.
    let backwards = [ext(0, 8 * P, 4 * P), ext(4 * P, 4 * P, 4 * P)];
    let h = hdr(7);
    let (map, report) = accept(&req(&h, 8 * P, &backwards, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map, vec![entry(0, 4, 8), entry(4, 4, 4)]);
    assert_eq!(report.extents, 2);
}

/// `first = ALIGN_UP(addr) / PAGE`, `next = ALIGN_DOWN(addr + len) / PAGE`.
#[test]
fn trim_each_accumulated_extent_to_whole_pages() {
    let extents = [ext(0, 1024, 5 * P)];
    let h = hdr(3);
    let (map, report) = accept(&req(&h, 5 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map, vec![entry(0, 4, 1)]);
    assert_eq!(report.lost, TrimLoss { misaligned: 3072 + 1024, ..TrimLoss::default() });
    // An aligned start with a ragged end (1 KiB blocks) loses only the tail.
    let extents = [ext(0, 8 * P, 3 * P + 3072), ext(3 * P + 3072, 40 * P, 2 * P + 1024)];
    let h = hdr(4);
    let (map, report) = accept(&req(&h, 6 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map, vec![entry(0, 3, 8), entry(3, 2, 40)]);
    assert_eq!(report.lost.misaligned, 3072 + 1024);
}

/// `if first >= next` the accumulated extent is skipped silently.
#[test]
fn skip_too_short_extents() {
    let extents = [ext(0, 0, 4 * P), ext(4 * P, 100 * P + 512, P), ext(5 * P, 200 * P, 3 * P)];
    let h = hdr(6);
    let (map, report) = accept(&req(&h, 8 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map, vec![entry(0, 4, 0), entry(4, 3, 200)]);
    assert_eq!(report.lost, TrimLoss { too_short: P, ..TrimLoss::default() });
    assert_eq!((report.extents, report.usable_pages), (2, 6));
}

/// `min(next - first, max - pages_so_far)`; the kernel's quirks: `highest` uses the
/// uncapped end of the extent that hit the cap, and extents after the cap change neither
/// `lowest` nor `highest`.
#[test]
fn cap_at_header_pages_highest_uncapped_later_extents_ignored() {
    let extents = [ext(0, 10 * P, 4 * P), ext(4 * P, 100 * P, 10 * P), ext(14 * P, P, 2 * P)];
    let h = hdr(5);
    let (map, report) = accept(&req(&h, 16 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map, vec![entry(0, 4, 10), entry(4, 2, 100)]);
    assert_eq!(report.header_pages, 6);
    assert_eq!((report.lowest_page, report.highest_page, report.span_pages), (11, 109, 99));
    assert_eq!(report.lost, TrimLoss { beyond_header: 10 * P, ..TrimLoss::default() });
    // The architecture limit caps like the header does.
    let h = hdr(15);
    let mut r = req(&h, 16 * P, &extents, BackendCaps::BLOCK_DEVICE);
    r.limits = HeaderLimits { max_pages: 5 };
    let (map, report) = accept(&r);
    assert_eq!(map, vec![entry(0, 4, 10), entry(4, 1, 100)]);
    assert_eq!(report.header_pages, 5);
}

/// Slot i is the i-th accepted physical page, in walk order; the map finds it.
#[test]
fn slots_are_dense_in_walk_order() {
    let extents = [ext(0, 50 * P, 3 * P), ext(3 * P, 7 * P + 100, 3 * P), ext(6 * P, 20 * P, 2 * P)];
    let h = hdr(6);
    let r = req(&h, 8 * P, &extents, BackendCaps::BLOCK_DEVICE);
    let (entries, _) = accept(&r);
    assert_eq!(entries, vec![entry(0, 3, 50), entry(3, 2, 8), entry(5, 2, 20)]);
    let (map, _) = activate_owned(&r).unwrap();
    let phys: Vec<u64> = (0..map.slots()).map(|s| map.lookup(s).unwrap().pos / P).collect();
    assert_eq!(phys, vec![50, 51, 52, 8, 9, 20, 21]);
    assert_eq!(map.lookup(7), Err(MapError::SlotOutOfRange { slot: 7, slots: 7 }));
}

/// `first_ppage_reported++` only for the accumulated extent at file offset 0.
#[test]
fn header_page_excluded_from_lowest_only_when_the_run_starts_at_logical_zero() {
    // The run at offset 0 holds the header page: lowest skips it.
    let h = hdr(3);
    let (_, r) = accept(&req(&h, 4 * P, &[ext(0, 50 * P, 4 * P)], BackendCaps::BLOCK_DEVICE));
    assert_eq!((r.lowest_page, r.highest_page, r.span_pages), (51, 53, 3));
    // A later run lower on the device sets lowest unadjusted.
    let extents = [ext(0, 500 * P, 2 * P), ext(2 * P, 10 * P, 2 * P)];
    let (_, r) = accept(&req(&h, 4 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!((r.lowest_page, r.highest_page, r.span_pages), (10, 501, 492));
    // The run at offset 0 is too short: the first run with pages starts at 2048, and
    // its first page (the header slot) counts in lowest.
    let extents = [ext(0, 1024, 2048), ext(2048, 2 * P, 4 * P - 2048)];
    let h = hdr(2);
    let (map, r) = accept(&req(&h, 4 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map, vec![entry(0, 3, 2)]);
    assert_eq!((r.lowest_page, r.highest_page, r.span_pages), (2, 4, 3));
    assert_eq!(r.lost, TrimLoss { too_short: 2048, misaligned: 2048, ..TrimLoss::default() });
}

#[test]
fn span_is_one_plus_highest_minus_lowest() {
    let extents = [ext(0, 1000 * P, 2 * P), ext(2 * P, 3000 * P, 2 * P), ext(4 * P, 2000 * P, 2 * P)];
    let h = hdr(5);
    let (_, r) = accept(&req(&h, 6 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!((r.lowest_page, r.highest_page), (1001, 3001));
    assert_eq!(r.span_pages, 1 + 3001 - 1001);
    assert_eq!(r.usable_kib(), 5 * 4);
}

#[test]
fn no_whole_page_is_cannot_find_a_single_usable_page() {
    let extents = [ext(0, 1024, 2048), ext(2048, 9 * P + 512, 2 * P - 2048)];
    let h = hdr(1);
    let e = refuse(&req(&h, 2 * P + 100, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(e, ActivationError { refusal: Refusal::NoUsablePage, extent: None, offset: None });
    assert_eq!(e.refusal.to_string(), "Cannot find a single usable page in file.");
    assert_eq!(e.to_string(), "swapon: Cannot find a single usable page in file.");
    assert_eq!(e.errno(), Errno::EINVAL);
    // A file shorter than a page has nothing to walk.
    let e = refuse(&req(&h, 100, &[ext(0, 0, 100)], BackendCaps::BLOCK_DEVICE));
    assert_eq!(e.refusal, Refusal::NoUsablePage);
}

#[test]
fn only_the_header_page_is_empty_swap_file() {
    let h = hdr(1);
    let e = refuse(&req(&h, 2 * P, &[ext(0, 1024, 2 * P)], BackendCaps::BLOCK_DEVICE));
    assert_eq!(e.refusal, Refusal::EmptySwapFile);
    assert_eq!(e.refusal.to_string(), "Empty swap-file");
    assert_eq!(e.errno(), Errno::EINVAL);
    // last_page == 0 in the header is the same message, from read_swap_header.
    let h = hdr(0);
    let e = refuse(&req(&h, 2 * P, &[ext(0, 0, 2 * P)], BackendCaps::BLOCK_DEVICE));
    assert_eq!(e.refusal, Refusal::Header(HeaderError::Empty));
    assert_eq!(e.to_string(), "swapon: Empty swap-file");
}

#[test]
fn header_longer_than_the_file_is_shorter_than_signature() {
    let h = hdr(8);
    let e = refuse(&req(&h, 8 * P, &[ext(0, 0, 8 * P)], BackendCaps::BLOCK_DEVICE));
    assert_eq!(e.refusal, Refusal::Header(HeaderError::ShorterThanSignature));
    assert_eq!(e.refusal.to_string(), "Swap area shorter than signature indicates");
    let e = refuse(&req(&[0u8; 100], 8 * P, &[ext(0, 0, 8 * P)], BackendCaps::BLOCK_DEVICE));
    assert_eq!(e.refusal, Refusal::Header(HeaderError::ShortBuffer(100)));
    let e = refuse(&req(&[0u8; PAGE_SIZE], 8 * P, &[ext(0, 0, 8 * P)], BackendCaps::BLOCK_DEVICE));
    assert_eq!(e.refusal.to_string(), "Unable to find swap-space signature");
}

// ---- refusals ------------------------------------------------------------------------------

/// Four 2-page extents; extent 2 starts at file offset 4 pages.
fn four() -> Vec<ExtentReport> {
    (0..4).map(|i| ext(i * 2 * P, (100 + 10 * i) * P, 2 * P)).collect()
}

#[test]
fn every_refusal_names_the_extent_offset_message_and_errno() {
    let h = hdr(7);
    let cases: [(ExtentFlags, Refusal, &str); 8] = [
        (ExtentFlags::INLINE, Refusal::Inline, "is inline"),
        (ExtentFlags::DELALLOC, Refusal::Unallocated, "has unallocated extents"),
        (ExtentFlags::DIRTY, Refusal::NotCommitted, "is not committed"),
        (ExtentFlags::SHARED, Refusal::Shared, "has shared extents"),
        (ExtentFlags::ENCODED, Refusal::Encoded, "swapfile must not be compressed"),
        (ExtentFlags::NOT_ALIGNED, Refusal::NotAligned, "has extents that are not block aligned"),
        // The kernel's order: inline before shared, unallocated before dirty.
        (ExtentFlags::INLINE | ExtentFlags::SHARED, Refusal::Inline, "is inline"),
        (ExtentFlags::DELALLOC | ExtentFlags::DIRTY, Refusal::Unallocated, "has unallocated extents"),
    ];
    for (flags, refusal, message) in cases {
        for caps in [BackendCaps::BLOCK_DEVICE, FS_FILE] {
            let mut extents = four();
            extents[2].flags = flags;
            let e = refuse(&req(&h, 8 * P, &extents, caps));
            assert_eq!(e, ActivationError { refusal, extent: Some(2), offset: Some(4 * P) }, "{flags:?}");
            assert_eq!(e.to_string(), format!("swapon: {message}"));
            assert_eq!(e.errno(), Errno::EINVAL);
        }
    }
}

#[test]
fn holes_are_unallocated_extents_with_their_offset() {
    let h = hdr(7);
    let mut extents = four();
    extents.remove(1); // file offsets 2..4 pages unmapped
    let e = refuse(&req(&h, 8 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(e, ActivationError { refusal: Refusal::Unallocated, extent: Some(1), offset: Some(2 * P) });
    // A hole at the start.
    let e = refuse(&req(&h, 8 * P, &four()[1..], BackendCaps::BLOCK_DEVICE));
    assert_eq!((e.refusal, e.extent, e.offset), (Refusal::Unallocated, Some(0), Some(0)));
    // A hole at the end (the last 2 pages unmapped), in file mode too.
    for caps in [BackendCaps::BLOCK_DEVICE, FS_FILE] {
        let e = refuse(&req(&h, 10 * P, &four(), caps));
        assert_eq!(e, ActivationError { refusal: Refusal::Unallocated, extent: None, offset: Some(8 * P) });
        assert_eq!(e.to_string(), "swapon: has unallocated extents");
    }
    // But the partial page past ALIGN_DOWN(i_size) is never walked.
    let (_, r) = accept(&req(&h, 8 * P + 4000, &four(), BackendCaps::BLOCK_DEVICE));
    assert_eq!(r.lost, TrimLoss { file_tail: 4000, ..TrimLoss::default() });
}

#[test]
fn extents_past_the_last_whole_page_are_not_walked() {
    let h = hdr(7);
    let mut extents = four();
    extents.push(ExtentReport { flags: ExtentFlags::SHARED | ExtentFlags::INLINE, device: 99, ..ext(8 * P, 0, 10) });
    let (map, _) = accept(&req(&h, 8 * P + 10, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(map.len(), 4);
}

#[test]
fn extent_outside_the_main_device_refused_in_device_mode_only() {
    let h = hdr(7);
    let mut extents = four();
    extents[3].device = DEV + 1;
    let e = refuse(&req(&h, 8 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(e, ActivationError { refusal: Refusal::OutsideMainDevice, extent: Some(3), offset: Some(6 * P) });
    assert_eq!(e.to_string(), "swapon: outside the main device");
    // In file mode the filesystem maps positions; the device does not matter.
    let (_, r) = accept(&req(&h, 8 * P, &extents, FS_FILE));
    assert_eq!(r.mode, IoMode::File);
}

#[test]
fn unwritten_extents_are_fine_in_device_mode_refused_in_file_mode_unless_capable() {
    let h = hdr(7);
    let mut extents = four();
    extents[1].flags = ExtentFlags::UNWRITTEN;
    let (_, r) = accept(&req(&h, 8 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!((r.mode, r.usable_pages), (IoMode::Device, 7));
    let e = refuse(&req(&h, 8 * P, &extents, FS_FILE));
    assert_eq!(e, ActivationError { refusal: Refusal::UnwrittenInFileMode, extent: Some(1), offset: Some(2 * P) });
    assert_eq!(e.to_string(), "swapon: has unwritten extents that file-mode swap writes would convert");
    assert_eq!(e.errno(), Errno::EINVAL);
    let (_, r) = accept(&req(&h, 8 * P, &extents, FS_FILE | BackendCaps::UNWRITTEN_SAFE_IN_FILE_MODE));
    assert_eq!(r.mode, IoMode::File);
}

#[test]
fn file_attributes_and_capabilities_refuse_with_the_filesystems_reason() {
    let h = hdr(7);
    let cases = [
        (
            FileAttrs::COPY_ON_WRITE,
            BackendCaps::BLOCK_DEVICE,
            CapsRefusal::CopyOnWrite,
            "swapfile must not be copy-on-write",
        ),
        (FileAttrs::COMPRESSED, BackendCaps::BLOCK_DEVICE, CapsRefusal::Compressed, "swapfile must not be compressed"),
        (FileAttrs::SEQUENTIAL_ZONE, FS_FILE, CapsRefusal::SequentialZone, "swap file: not a conventional zone file"),
        (
            FileAttrs::empty(),
            BackendCaps::DEVICE_IO.union(BackendCaps::STABLE_ON_COMPLETE),
            CapsRefusal::NoOverwriteInPlace,
            "Swapfile not supported in LFS mode",
        ),
    ];
    for (attrs, caps, refusal, message) in cases {
        let extents = four();
        let mut r = req(&h, 8 * P, &extents, caps);
        r.attrs = attrs;
        let e = refuse(&r);
        assert_eq!(e, ActivationError { refusal: Refusal::Caps(refusal), extent: None, offset: None });
        assert_eq!(e.to_string(), format!("swapon: {message}"));
        assert_eq!(e.errno(), Errno::EINVAL);
    }
}

// ---- file mode and opaque layouts --------------------------------------------------------

/// File mode: the filesystem maps file positions, so slot i is file page i whatever the
/// physical layout; nothing is trimmed but the header cap and the tail.
#[test]
fn file_mode_is_the_identity_map() {
    let extents = [ext(0, 1024, 3 * P), ext(3 * P, 77 * P + 512, 7 * P)];
    let h = hdr(7);
    let (map, r) = accept(&req(&h, 10 * P + 100, &extents, FS_FILE));
    assert_eq!(map, vec![MapEntry { first_slot: 0, pages: 8, start: 0 }]);
    assert_eq!(r.mode, IoMode::File);
    assert_eq!((r.slots, r.usable_pages, r.extents), (8, 7, 1));
    assert_eq!((r.lowest_page, r.highest_page, r.span_pages), (1, 7, 7));
    assert_eq!(r.lost, TrimLoss { beyond_header: 2 * P, file_tail: 100, ..TrimLoss::default() });
    let (m, _) = activate_owned(&req(&h, 10 * P + 100, &extents, FS_FILE)).unwrap();
    assert_eq!(m.lookup(5).unwrap().pos, 5 * P);
    // Asking for device mode with a file-mode-only backend is refused.
    let mut r = req(&h, 10 * P, &extents, FS_FILE);
    r.mode = ModeRequest::Device;
    assert_eq!(refuse(&r).refusal, Refusal::Caps(CapsRefusal::DeviceModeUnsupported));
}

/// NFS/SMB: no extent map, holes detected as `i_blocks * 512 < i_size`.
#[test]
fn opaque_layout_is_file_mode_and_refuses_holes() {
    let h = hdr(9);
    let opaque = |allocated_bytes| Layout::Opaque { allocated_bytes };
    let caps = FS_FILE | BackendCaps::DEVICE_IO;
    let r = ActivationRequest::new(&h, 10 * P, opaque(10 * P), DEV, caps);
    let (map, report) = accept(&r);
    assert_eq!(map, vec![MapEntry { first_slot: 0, pages: 10, start: 0 }]);
    assert_eq!((report.mode, report.usable_pages), (IoMode::File, 9));
    let e = refuse(&ActivationRequest::new(&h, 10 * P, opaque(10 * P - 1), DEV, caps));
    assert_eq!(e, ActivationError { refusal: Refusal::Holes, extent: None, offset: None });
    assert_eq!(e.to_string(), "swapon: swapfile has holes");
    let mut r = ActivationRequest::new(&h, 10 * P, opaque(10 * P), DEV, caps);
    r.mode = ModeRequest::Device;
    assert_eq!(refuse(&r).refusal, Refusal::NoExtentMap);
    let r = ActivationRequest::new(&h, 10 * P, opaque(10 * P), DEV, BackendCaps::BLOCK_DEVICE);
    assert_eq!(refuse(&r).refusal, Refusal::NoExtentMap);
}

// ---- the trim report -----------------------------------------------------------------------

/// `slots * PAGE_SIZE + lost.total() == file_size`, with every cause at once, and the
/// reference model agreeing.
#[test]
fn trim_loss_accounts_for_every_byte_of_the_file() {
    let extents = [
        ext(0, 1024, 3 * P),              // misaligned: pages 1..2, 4 KiB lost
        ext(3 * P, 50 * P + 100, 2048),   // too short
        ext(3 * P + 2048, 60 * P, 6 * P), // 6 pages, capped
        ext(9 * P + 2048, 90 * P, 2 * P), // after the cap, cut at the last whole page
    ];
    let size = 11 * P + 2048 + 777;
    let h = hdr(5);
    let (_, r) = accept(&req(&h, size, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!(r.slots, 6);
    assert_eq!(
        r.lost,
        TrimLoss { misaligned: P, too_short: 2048, beyond_header: 2 * P + (2 * P - 2048), file_tail: 2048 + 777 }
    );
    assert_eq!(check_against_reference(&extents, size, 5), Ok(()));
}

// ---- bad input -----------------------------------------------------------------------------

#[test]
fn bad_extent_input_is_a_typed_error_never_a_panic() {
    let h = hdr(7);
    let at = |refusal, extent, offset| ActivationError { refusal, extent: Some(extent), offset: Some(offset) };
    let unsorted = [ext(2 * P, 0, 2 * P), ext(0, 10 * P, 2 * P)];
    assert_eq!(refuse(&req(&h, 8 * P, &unsorted, BackendCaps::BLOCK_DEVICE)), at(Refusal::Unallocated, 0, 0));
    let unsorted = [ext(0, 0, 2 * P), ext(4 * P, 10 * P, 2 * P), ext(2 * P, 20 * P, 2 * P)];
    assert_eq!(refuse(&req(&h, 8 * P, &unsorted, BackendCaps::BLOCK_DEVICE)).refusal, Refusal::Unallocated);
    let unsorted = [ext(0, 0, 4 * P), ext(4 * P, 10 * P, 2 * P), ext(2 * P, 20 * P, 2 * P)];
    assert_eq!(refuse(&req(&h, 8 * P, &unsorted, BackendCaps::BLOCK_DEVICE)), at(Refusal::ExtentsUnsorted, 2, 2 * P));
    let overlapping = [ext(0, 0, 5 * P), ext(4 * P, 10 * P, 4 * P)];
    let e = refuse(&req(&h, 8 * P, &overlapping, BackendCaps::BLOCK_DEVICE));
    assert_eq!(e, at(Refusal::ExtentsUnsorted, 1, 4 * P));
    assert_eq!(e.to_string(), "swapon: extent reports are not sorted by logical offset or overlap");
    let zero = [ext(0, 0, 4 * P), ext(4 * P, 10 * P, 0)];
    assert_eq!(refuse(&req(&h, 8 * P, &zero, BackendCaps::BLOCK_DEVICE)), at(Refusal::InvalidExtent, 1, 4 * P));
    let logical_overflow = [ext(0, 0, 8 * P), ext(u64::MAX - 10, 10 * P, 100)];
    assert_eq!(
        refuse(&req(&h, 8 * P, &logical_overflow, BackendCaps::BLOCK_DEVICE)),
        at(Refusal::InvalidExtent, 1, u64::MAX - 10)
    );
    let physical_overflow = [ext(0, u64::MAX - P, 8 * P)];
    assert_eq!(
        refuse(&req(&h, 8 * P, &physical_overflow, BackendCaps::BLOCK_DEVICE)),
        at(Refusal::InvalidExtent, 0, 0)
    );
    assert_eq!(Refusal::InvalidExtent.errno(), Errno::EINVAL);
    // Huge sizes and empty lists are answered, not panicked on.
    let e = refuse(&req(&h, u64::MAX, &four(), BackendCaps::BLOCK_DEVICE));
    assert_eq!((e.refusal, e.offset), (Refusal::Unallocated, Some(8 * P)));
    let e = refuse(&req(&h, 8 * P, &[], BackendCaps::BLOCK_DEVICE));
    assert_eq!((e.refusal, e.offset), (Refusal::Unallocated, Some(0)));
}

#[test]
fn map_storage_too_small_is_a_typed_error() {
    let h = hdr(7);
    let extents = four();
    let r = req(&h, 8 * P, &extents, BackendCaps::BLOCK_DEVICE);
    assert_eq!(r.map_capacity(), 4);
    for (len, needed) in [(0, 1), (1, 2), (3, 4)] {
        let mut out = vec![MapEntry::default(); len];
        let e = activate_into(&r, &mut out).unwrap_err();
        assert_eq!(e.refusal, Refusal::MapStorageTooSmall { needed });
        assert_eq!(e.errno(), Errno::ENOMEM);
    }
    let mut out = vec![MapEntry::default(); 4];
    assert_eq!(activate_into(&r, &mut out).unwrap().0, 4);
}

// ---- block devices and overlapping extents (issue: bad pages, overlap) ------------------

/// A header page for `last_page` with `bad` as its bad-page list.
fn hdr_with_bad_pages(last_page: u32, bad: &[u32]) -> Vec<u8> {
    let mut page = hdr(last_page);
    page[1032..1036].copy_from_slice(&(bad.len() as u32).to_ne_bytes());
    for (i, b) in bad.iter().enumerate() {
        page[1536 + 4 * i..1540 + 4 * i].copy_from_slice(&b.to_ne_bytes());
    }
    page
}

fn device_req(header: &[u8], size: u64) -> ActivationRequest<'_> {
    ActivationRequest::new(header, size, Layout::BlockDevice, DEV, BackendCaps::BLOCK_DEVICE)
}

/// `setup_swap_map` on a block device: bad pages allowed, each entry costs a usable
/// page (a repeated one twice), never usable (left out of the map); one extent at byte
/// 0; span `maxpages - 1` (the swap area, not the device).
/// Numbers as `swapon` gave them on a 64 MiB loop device (Linux 6.18).
#[test]
fn block_device_bad_pages_are_allowed_and_never_usable() {
    let size = 16384 * P;
    for (last, bad, usable, span) in [
        (16383u32, &[100u32, 200, 300][..], 16380u64, 16383u64),
        (16383, &[100, 100], 16381, 16383),
        (16383, &[16383], 16382, 16383),
        (8000, &[100], 7999, 8000),
        (2, &[1], 1, 2),
    ] {
        let h = hdr_with_bad_pages(last, bad);
        let (entries, r) = accept(&device_req(&h, size));
        assert_eq!((r.usable_pages, r.span_pages, r.extents), (usable, span, 1), "{last} {bad:?}");
        assert_eq!(r.lost.total().map(|t| r.slots * P + t), Some(size));
        // Every page of the area is its own slot at its own position, except the bad
        // ones, which no entry maps (the engine refuses them: `MapError::BadSlot`).
        let map = SwapMap::new(entries, IoMode::Device).unwrap();
        for slot in 0..=u64::from(last) {
            match map.lookup(slot) {
                Ok(run) => assert!(!bad.contains(&(slot as u32)) && run.pos == slot * P, "slot {slot}"),
                // A bad last page ends the map: past its end rather than in a gap.
                Err(e) => assert!(
                    bad.contains(&(slot as u32))
                        && matches!(e, MapError::BadSlot { .. } | MapError::SlotOutOfRange { .. }),
                    "slot {slot}: {e}"
                ),
            }
        }
    }
}

/// Bad page 0, one past `last_page`, or more than `MAX_SWAP_BADPAGES` entries: `EINVAL`.
/// On a regular file any bad page is refused.
#[test]
fn block_device_bad_page_zero_past_last_page_or_too_many_is_refused() {
    let size = 16384 * P;
    for bad in [&[0u32][..], &[16384], &[5, 9000, 16384]] {
        let h = hdr_with_bad_pages(16383, bad);
        let e = refuse(&device_req(&h, size));
        assert!(matches!(e.refusal, Refusal::Header(HeaderError::BadPageOutOfRange(_))), "{bad:?}: {e:?}");
        assert_eq!(e.errno(), Errno::EINVAL);
    }
    let mut h = hdr_with_bad_pages(16383, &[5]);
    h[1032..1036].copy_from_slice(&(swapdio::header::MAX_SWAP_BADPAGES + 1).to_ne_bytes());
    assert!(matches!(refuse(&device_req(&h, size)).refusal, Refusal::Header(HeaderError::TooManyBadPages(_))));
    let h = hdr_with_bad_pages(16383, &[5]);
    let one = [ext(0, 0, size)];
    assert_eq!(
        refuse(&req(&h, size, &one, BackendCaps::BLOCK_DEVICE)).refusal,
        Refusal::Header(HeaderError::BadPagesInFile)
    );
    // Every data page bad: only the header page is left.
    let h = hdr_with_bad_pages(2, &[1, 2]);
    assert_eq!(refuse(&device_req(&h, size)).refusal, Refusal::EmptySwapFile);
}

/// Two extents on the same device bytes (slots 8 and 40 at one position): refused in
/// device mode (the kernel trusts FIEMAP and would hand both slots the same page);
/// accepted in file mode, where positions are file offsets.
#[test]
fn device_mode_refuses_extents_that_overlap_physically() {
    let h = hdr(63);
    let extents = [ext(0, 0, 8 * P), ext(8 * P, 100 * P, 32 * P), ext(40 * P, 100 * P, 24 * P)];
    let e = refuse(&req(&h, 64 * P, &extents, BackendCaps::BLOCK_DEVICE));
    assert_eq!((e.refusal, e.errno()), (Refusal::PhysicalOverlap { slot: 40 }, Errno::EINVAL));
    let mut r = req(&h, 64 * P, &extents, FS_FILE);
    r.mode = ModeRequest::File;
    accept(&r);
    // Adjacent but not overlapping is fine.
    let extents = [ext(0, 0, 8 * P), ext(8 * P, 100 * P, 32 * P), ext(40 * P, 132 * P, 24 * P)];
    accept(&req(&h, 64 * P, &extents, BackendCaps::BLOCK_DEVICE));
}
