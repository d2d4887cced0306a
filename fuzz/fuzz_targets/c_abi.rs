//! The C ABI entry points of activation (`swapdio_activate`, `swapdio_map_layout`,
//! `swapdio_map_lookup`, `swapdio_strerror`, `swapdio_refusal_str`) with arbitrary
//! argument values (valid pointers, any integers, unknown enum and flag bits, short or
//! NULL buffers): never a panic or out-of-bounds write; the answer agrees with the Rust
//! API (`activate_into` on the same request: same success, same map, same errno); and a
//! map the C API wrote looks up exactly like the Rust `SwapMap`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::ffi::CStr;
use swapdio::testkit::reference::header_page;
use swapdio::*;
use swapdio_ffi as c;

#[derive(Arbitrary, Debug)]
struct Ext {
    logical: u64,
    physical: u64,
    length: u64,
    flags: u32,
    reserved: bool,
    device: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    extents: Vec<Ext>,
    last_page: u32,
    header_len: u16,
    null_header: bool,
    file_size: u64,
    allocated_bytes: u64,
    main_device: u8,
    max_pages: u64,
    layout: u32,
    mode: u32,
    caps: u32,
    attrs: u32,
    capacity: u8,
    null_map: bool,
    lookups: Vec<u64>,
    codes: Vec<i32>,
}

fuzz_target!(|input: Input| {
    let header = header_page(input.last_page);
    let header_len = (usize::from(input.header_len)).min(header.len());
    let ext: Vec<c::swapdio_extent> = input
        .extents
        .iter()
        .map(|e| c::swapdio_extent {
            logical: e.logical,
            physical: e.physical,
            length: e.length,
            flags: e.flags,
            reserved: u32::from(e.reserved),
            device: u64::from(e.device % 3),
        })
        .collect();
    let act = c::swapdio_activation {
        header: if input.null_header { std::ptr::null() } else { header.as_ptr() },
        header_len,
        file_size: input.file_size,
        extents: if ext.is_empty() { std::ptr::null() } else { ext.as_ptr() },
        nr_extents: ext.len(),
        allocated_bytes: input.allocated_bytes,
        main_device: u64::from(input.main_device % 3),
        max_pages: input.max_pages,
        layout: input.layout % 3,
        mode: input.mode % 4,
        caps: input.caps,
        attrs: input.attrs,
    };
    // One guard entry past the capacity must never be written.
    let capacity = usize::from(input.capacity % 8);
    let guard = c::swapdio_map_entry { first_slot: 0xdead, pages: 0xbeef, start: 0xf00d };
    let mut map = vec![guard; capacity + 1];
    let map_ptr = if input.null_map { std::ptr::null_mut() } else { map.as_mut_ptr() };
    let mut report = c::swapdio_activation_report::default();
    // SAFETY: every pointer is NULL or valid for the length passed with it.
    let rc = unsafe { c::swapdio_activate(&act, map_ptr, capacity, &mut report) };
    assert_eq!(map[capacity], guard, "swapdio_activate wrote past map_capacity");
    assert_eq!(report.error, rc);
    assert!(rc <= 0);

    // The Rust API on the same request, where the C arguments are representable.
    let representable = !input.null_header
        && !input.null_map
        && capacity > 0
        && input.caps & !c::SWAPDIO_CAP_ALL == 0
        && input.attrs & !c::SWAPDIO_ATTR_ALL == 0
        && act.mode < 3
        && act.layout < 2
        && (act.layout == 1 || !ext.is_empty())
        && input.extents.iter().all(|e| !e.reserved && e.flags & !c::SWAPDIO_EXTENT_ALL == 0);
    if representable {
        let reports: Vec<ExtentReport> = ext
            .iter()
            .map(|e| ExtentReport {
                logical: e.logical,
                physical: e.physical,
                length: e.length,
                flags: ExtentFlags::from_bits_truncate(e.flags),
                device: e.device,
            })
            .collect();
        let mut req = ActivationRequest::new(
            &header[..header_len],
            input.file_size,
            if act.layout == 0 {
                Layout::Extents(&reports)
            } else {
                Layout::Opaque { allocated_bytes: input.allocated_bytes }
            },
            act.main_device,
            BackendCaps::from_bits_truncate(input.caps),
        );
        req.attrs = FileAttrs::from_bits_truncate(input.attrs);
        req.mode = [ModeRequest::Auto, ModeRequest::Device, ModeRequest::File][act.mode as usize];
        if input.max_pages != 0 {
            req.limits = HeaderLimits { max_pages: input.max_pages };
        }
        let mut out = vec![MapEntry::default(); capacity];
        match activate_into(&req, &mut out) {
            Ok((used, r)) => {
                assert_eq!(rc, 0, "C refused what Rust accepts");
                assert_eq!(report.map_entries, used as u64);
                assert_eq!((report.slots, report.usable_pages), (r.slots, r.usable_pages));
                for (a, b) in map.iter().zip(&out[..used]) {
                    assert_eq!((a.first_slot, a.pages, a.start), (b.first_slot, b.pages, b.start));
                }
                if r.mode == IoMode::Device {
                    let m = SwapMap::new(&out[..used], IoMode::Device).expect("activation builds valid maps");
                    for &slot in input.lookups.iter().take(16) {
                        let slot = slot % (r.slots + 2);
                        let mut run = c::swapdio_run::default();
                        // SAFETY: `map` holds `used` entries; `run` is writable.
                        let lrc = unsafe { c::swapdio_map_lookup(map.as_ptr(), used, slot, &mut run) };
                        match m.lookup(slot) {
                            Ok(x) => assert_eq!((lrc, run.pos, run.pages), (0, x.pos, x.pages)),
                            Err(_) => assert!(lrc < 0),
                        }
                    }
                }
            }
            Err(e) => assert_eq!(rc, -e.errno().0, "C and Rust disagree: {e:?}"),
        }
    }

    let mut layout = c::swapdio_mem_layout::default();
    // SAFETY: `layout` is writable.
    let lrc = unsafe { c::swapdio_map_layout(usize::from(input.capacity), &mut layout) };
    assert!(lrc == 0 || input.capacity == 0);
    for &code in input.codes.iter().take(8) {
        for p in [c::swapdio_strerror(code), c::swapdio_refusal_str(code as u32)] {
            assert!(!p.is_null());
            // SAFETY: both functions return static NUL-terminated strings.
            let _ = unsafe { CStr::from_ptr(p) }.to_str().expect("messages are UTF-8");
        }
    }
});
