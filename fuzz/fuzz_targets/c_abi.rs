//! The C ABI entry points of activation (`swapdio_activate`, `swapdio_map_layout`,
//! `swapdio_map_lookup`, `swapdio_strerror`, `swapdio_refusal_str`) with arbitrary
//! argument values (valid pointers, any integers, unknown enum and flag bits, short or
//! NULL buffers): never a panic or out-of-bounds write; the answer agrees with the Rust
//! API (`activate_into` on the same request: same success, same map, same errno); and a
//! map the C API wrote looks up exactly like the Rust `SwapMap`. An engine over a map
//! the C API wrote then takes arbitrary writes through a `swapdio_plug` and its struct
//! copies, plug finishes, and real and forged completions: no folio is submitted or
//! completed twice, pins stay balanced, and once every real id completed the engine
//! drains and finishes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::ffi::{c_void, CStr};
use std::sync::Mutex;
use swapdio::testkit::reference::header_page;
use swapdio::testkit::MemPages;
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
    ops: Vec<PlugOp>,
}

/// One step of a C caller using a plug and struct copies of it.
#[derive(Arbitrary, Debug)]
enum PlugOp {
    /// Write a one-page folio at `slot` with no plug, the plug, or the copy.
    Write { slot: u16, with: u8 },
    /// `copy = plug;` (C struct assignment, after finishing the old copy).
    Copy,
    /// `swapdio_plug_finish` on the plug or the copy.
    Finish { copy: bool },
    /// Complete a queued request with its id, or with one bit of it flipped.
    Complete { pick: u8, flip: Option<u8> },
}

/// The C side: the core's rule-checking page recorder behind the callbacks, and the ids
/// the backend queued.
#[derive(Default)]
struct World {
    pages: MemPages,
    queued: Mutex<Vec<u64>>,
    submitted: Mutex<usize>,
}

fn world<'a>(ctx: *mut c_void) -> &'a World {
    // SAFETY: every callback gets the `World` registered with the engine, which outlives it.
    unsafe { &*ctx.cast::<World>() }
}

unsafe extern "C" fn submit(ctx: *mut c_void, io: *const c::swapdio_io) -> i64 {
    let w = world(ctx);
    // SAFETY: `io` is valid during the call (ABI contract).
    w.queued.lock().unwrap().push(unsafe { (*io).id });
    *w.submitted.lock().unwrap() += 1;
    c::SWAPDIO_QUEUED
}

macro_rules! page_op {
    ($name:ident, $op:ident) => {
        unsafe extern "C" fn $name(ctx: *mut c_void, folio: u64) {
            world(ctx).pages.$op(FolioId(folio));
        }
    };
}
page_op!(set_uptodate, set_uptodate);
page_op!(set_dirty, set_dirty);
page_op!(clear_reclaim, clear_reclaim);
page_op!(start_writeback, start_writeback);
page_op!(end_writeback, end_writeback);
page_op!(unlock, unlock);
page_op!(pin, pin);
page_op!(unpin, unpin);

/// Drives an engine over the map the C API wrote with plugs, struct copies and forged
/// completions.
fn plug_copies(map: &[c::swapdio_map_entry], mode: u32, caps: u32, slots: u64, ops: &[PlugOp]) {
    let w = Box::new(World::default());
    let ctx = (&*w as *const World).cast_mut().cast::<c_void>();
    let backend = c::swapdio_backend_ops { caps, reserved: 0, submit: Some(submit) };
    let page_ops = c::swapdio_page_ops {
        set_uptodate: Some(set_uptodate),
        set_dirty: Some(set_dirty),
        clear_reclaim: Some(clear_reclaim),
        start_writeback: Some(start_writeback),
        end_writeback: Some(end_writeback),
        unlock: Some(unlock),
        pin: Some(pin),
        unpin: Some(unpin),
        event: None,
        wake: None,
    };
    let cfg = c::swapdio_engine_config {
        map: map.as_ptr(),
        map_entries: map.len(),
        storage: std::ptr::null_mut(),
        storage_size: 0,
        storage_config: c::swapdio_storage_config { pool: 3, sync: 1, splits: 1, backend_data: 0 },
        backend: &backend,
        backend_ctx: ctx,
        page_ops: &page_ops,
        page_ctx: ctx,
        mode,
        reserved: 0,
    };
    let mut e = std::ptr::null_mut();
    // SAFETY: the map, ops and world outlive the engine (finished below).
    if unsafe { c::swapdio_engine_new(&cfg, &mut e) } != 0 {
        return;
    }
    let zero = c::swapdio_plug { magic: 0, opaque: [0; 8] };
    let (mut plug, mut copy) = (zero, zero);
    // SAFETY: zeroed plugs.
    unsafe {
        assert_eq!(c::swapdio_plug_start(&mut plug), 0);
        assert_eq!(c::swapdio_plug_start(&mut copy), 0);
    }
    let mut accepted = Vec::new();
    for (n, op) in ops.iter().take(200).enumerate() {
        match *op {
            PlugOp::Write { slot, with } => {
                let id = n as u64 + 1;
                let f = c::swapdio_folio { id, slot: u64::from(slot) % slots.max(1), pages: 1, flags: 0 };
                w.pages.prepare_write(FolioId(id));
                let p: *mut c::swapdio_plug = match with % 3 {
                    0 => std::ptr::null_mut(),
                    1 => &mut plug,
                    _ => &mut copy,
                };
                // SAFETY: a live engine, a valid folio, a started plug or NULL.
                let rc = unsafe { c::swapdio_write(e, p, &f, c::swapdio_fs_context::MayEnterFs as u32) };
                if rc == 0 {
                    accepted.push(id);
                } else {
                    let s = w.pages.state(FolioId(id));
                    assert!(s.locked && s.dirty && !s.writeback && s.pins == 0, "refused folio touched: {rc} {s:?}");
                }
            }
            PlugOp::Copy => {
                // Overwriting a plug that holds the current batch would strand it (a C
                // plug has no drop): finish the old copy first, as a careful caller does.
                // SAFETY: a live engine and a started plug.
                let _ = unsafe { c::swapdio_plug_finish(e, &mut copy) };
                copy = plug;
            }
            PlugOp::Finish { copy: c2 } => {
                let p = if c2 { &mut copy } else { &mut plug };
                // SAFETY: a live engine and a started plug.
                let rc = unsafe { c::swapdio_plug_finish(e, p) };
                assert!(rc == 0 || rc == -116, "finish: {rc}");
            }
            PlugOp::Complete { pick, flip } => {
                let mut q = w.queued.lock().unwrap();
                if q.is_empty() {
                    continue;
                }
                let i = usize::from(pick) % q.len();
                let id = q[i];
                match flip {
                    Some(bit) => {
                        let forged = id ^ (1u64 << (bit % 64));
                        // A flipped index bit can name another request in flight: then it is
                        // that request's real id.
                        let real = q.iter().position(|&x| x == forged).map(|j| q.swap_remove(j));
                        drop(q);
                        // SAFETY: a live engine.
                        let rc = unsafe { c::swapdio_complete(e, forged, c::SWAPDIO_PAGE_SIZE as i64) };
                        match real {
                            Some(_) => assert_eq!(rc, 0, "the real id {forged:#x} was refused"),
                            None => assert!(rc == -22 || rc == -114, "forged id {forged:#x} of {id:#x} accepted: {rc}"),
                        }
                    }
                    None => {
                        q.swap_remove(i);
                        drop(q);
                        // SAFETY: a live engine.
                        let rc = unsafe { c::swapdio_complete(e, id, c::SWAPDIO_PAGE_SIZE as i64) };
                        assert_eq!(rc, 0, "a real id was refused");
                    }
                }
            }
        }
    }
    // SAFETY: a live engine and started plugs.
    unsafe {
        let _ = c::swapdio_plug_finish(e, &mut plug);
        let _ = c::swapdio_plug_finish(e, &mut copy);
    }
    loop {
        let q = std::mem::take(&mut *w.queued.lock().unwrap());
        if q.is_empty() {
            break;
        }
        for id in q {
            // SAFETY: a live engine.
            assert_eq!(unsafe { c::swapdio_complete(e, id, c::SWAPDIO_PAGE_SIZE as i64) }, 0);
        }
    }
    // SAFETY: a live engine, drained.
    unsafe {
        assert_eq!(c::swapdio_deactivate(e), 0, "a batch stranded");
        assert_eq!(c::swapdio_engine_fini(e), 0);
    }
    for id in accepted {
        let s = w.pages.state(FolioId(id));
        assert_eq!((s.writeback, s.writeback_ends), (false, 1), "folio {id}: ended once");
    }
    assert_eq!(w.pages.violations(), Vec::<String>::new());
    assert_eq!(w.pages.pins_held(), 0);
    assert!(*w.submitted.lock().unwrap() <= ops.len());
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
                if !input.ops.is_empty() && r.slots <= 1 << 20 {
                    plug_copies(&map[..used], report.mode, input.caps & c::SWAPDIO_CAP_ALL, r.slots, &input.ops);
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
