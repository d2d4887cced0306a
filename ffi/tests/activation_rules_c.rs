//! Activation rules through the C ABI: a whole block device with bad pages (accepted,
//! the bad pages not counted as usable; bad page 0 refused) and two extents on the same
//! device bytes (refused in device mode).

use swapdio::SwapHeader;
use swapdio_ffi::*;

const PAGE: u64 = SWAPDIO_PAGE_SIZE as u64;

fn header(last_page: u32, bad: &[u32]) -> Vec<u8> {
    let mut p = vec![0u8; SWAPDIO_PAGE_SIZE];
    let h = SwapHeader { last_page, nr_badpages: bad.len() as u32, ..SwapHeader::new(2, [7; 16], [0; 16]).unwrap() };
    h.write(&mut p).unwrap();
    for (i, b) in bad.iter().enumerate() {
        p[1536 + 4 * i..1540 + 4 * i].copy_from_slice(&b.to_ne_bytes());
    }
    p
}

fn activation(hdr: &[u8], ext: &[swapdio_extent], layout: swapdio_layout) -> swapdio_activation {
    swapdio_activation {
        header: hdr.as_ptr(),
        header_len: hdr.len(),
        file_size: 1024 * PAGE,
        extents: ext.as_ptr(),
        nr_extents: ext.len(),
        allocated_bytes: 0,
        main_device: 9,
        max_pages: 0,
        layout: layout as u32,
        mode: swapdio_mode_request::Auto as u32,
        caps: SWAPDIO_CAP_DIO_READ
            | SWAPDIO_CAP_DIO_WRITE
            | SWAPDIO_CAP_OVERWRITE_IN_PLACE
            | SWAPDIO_CAP_STABLE_ON_COMPLETE,
        attrs: 0,
    }
}

fn activate(a: &swapdio_activation) -> (i32, swapdio_activation_report, Vec<swapdio_map_entry>) {
    let mut map = vec![swapdio_map_entry::default(); 4];
    let mut rep = swapdio_activation_report::default();
    // SAFETY: every pointer is valid for the lengths given.
    let rc = unsafe { swapdio_activate(a, map.as_mut_ptr(), map.len(), &mut rep) };
    map.truncate(rep.map_entries as usize);
    (rc, rep, map)
}

#[test]
fn c_block_device_layout_accepts_bad_pages_and_refuses_bad_page_zero() {
    let hdr = header(1023, &[100, 200, 300]);
    let (rc, rep, map) = activate(&activation(&hdr, &[], swapdio_layout::BlockDevice));
    assert_eq!(rc, 0, "{rep:?}");
    assert_eq!((rep.usable_pages, rep.span_pages, rep.extents, rep.slots), (1020, 1023, 1, 1024));
    assert_eq!(rep.bad_pages, 3);
    // The bad pages are left out of the map: one entry per run of good pages.
    let runs: Vec<_> = map.iter().map(|e| (e.first_slot, e.pages, e.start / PAGE)).collect();
    assert_eq!(runs, vec![(0, 100, 0), (101, 99, 101), (201, 99, 201), (301, 723, 301)]);
    // The same header on a regular file's extents: bad pages are refused.
    let ext = [swapdio_extent { logical: 0, physical: 0, length: 1024 * PAGE, device: 9, ..Default::default() }];
    let (rc, rep, _) = activate(&activation(&hdr, &ext, swapdio_layout::Extents));
    assert_eq!((rc, rep.refusal), (-22, swapdio_refusal::HeaderBadPagesInFile as u32));
    let hdr = header(1023, &[0]);
    let (rc, rep, _) = activate(&activation(&hdr, &[], swapdio_layout::BlockDevice));
    assert_eq!((rc, rep.refusal), (-22, swapdio_refusal::HeaderBadPageOutOfRange as u32));
}

#[test]
fn c_device_mode_refuses_extents_on_the_same_device_bytes() {
    let hdr = header(63, &[]);
    let ext = [
        swapdio_extent { logical: 0, physical: 0, length: 8 * PAGE, device: 9, ..Default::default() },
        swapdio_extent { logical: 8 * PAGE, physical: 100 * PAGE, length: 32 * PAGE, device: 9, ..Default::default() },
        swapdio_extent { logical: 40 * PAGE, physical: 100 * PAGE, length: 24 * PAGE, device: 9, ..Default::default() },
    ];
    let mut a = activation(&hdr, &ext, swapdio_layout::Extents);
    a.file_size = 64 * PAGE;
    let (rc, rep, _) = activate(&a);
    assert_eq!((rc, rep.refusal), (-22, swapdio_refusal::PhysicalOverlap as u32));
}
