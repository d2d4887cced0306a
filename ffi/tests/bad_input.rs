//! Bad input through the C ABI returns an error code and never crashes: NULL pointers,
//! zero lengths, misaligned and too small buffers, slots out of range, unknown enum and
//! flag values, plugs not started or foreign, missing callbacks, double and unknown
//! completions. The page side is the core's rule-checking `MemPages` behind C callbacks.

mod common;

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

use common::*;
use swapdio::{FolioId, SwapHeader};
use swapdio_ffi::*;

#[test]
fn null_pointers_are_refused_with_efault() {
    let f = Fixture::new();
    let hdr = header(64);
    let ext = extents();
    let mut rep = swapdio_activation_report::default();
    let mut map = [swapdio_map_entry::default(); 2];
    let mut run = swapdio_run::default();
    let mut plug = swapdio_plug { magic: 0, opaque: [0; 8] };
    let fo = folio(1, 1, 1);
    let cfg = config_without_storage(&f);
    let mut out: *mut swapdio_engine = null_mut();
    // SAFETY: every non-null pointer is valid; NULLs are what is under test.
    unsafe {
        assert_eq!(swapdio_map_layout(1, null_mut()), -EFAULT);
        assert_eq!(swapdio_engine_layout(null_mut()), -EFAULT);
        assert_eq!(swapdio_storage_layout(null(), &mut swapdio_mem_layout::default()), -EFAULT);
        assert_eq!(swapdio_storage_layout(&STORAGE, null_mut()), -EFAULT);
        assert_eq!(swapdio_activate(null(), map.as_mut_ptr(), 2, &mut rep), -EFAULT);
        assert_eq!(rep.error, -EFAULT);
        assert_eq!(swapdio_activate(&activation(&hdr, &ext), map.as_mut_ptr(), 2, null_mut()), -EFAULT);
        assert_eq!(swapdio_activate(&activation(&hdr, &ext), null_mut(), 2, &mut rep), -EFAULT);
        let mut a = activation(&hdr, &ext);
        a.header = null();
        assert_eq!(swapdio_activate(&a, map.as_mut_ptr(), 2, &mut rep), -EFAULT);
        let mut a = activation(&hdr, &ext);
        a.extents = null();
        assert_eq!(swapdio_activate(&a, map.as_mut_ptr(), 2, &mut rep), -EFAULT);
        assert_eq!(swapdio_map_lookup(null(), 2, 1, &mut run), -EFAULT);
        assert_eq!(swapdio_map_lookup(f.map.as_ptr(), 2, 1, null_mut()), -EFAULT);
        assert_eq!(swapdio_engine_init(f._mem.ptr.cast(), 1 << 20, &cfg, null_mut()), -EFAULT);
        assert_eq!(swapdio_engine_init(null_mut(), 1 << 20, &cfg, &mut out), -EFAULT);
        assert_eq!(swapdio_engine_init(f._mem.ptr.cast(), 1 << 20, null(), &mut out), -EFAULT);
        assert!(out.is_null());
        assert_eq!(swapdio_engine_fini(null_mut()), -EFAULT);
        assert_eq!(swapdio_engine_lookup(null(), 1, &mut run), -EFAULT);
        assert_eq!(swapdio_engine_lookup(f.engine, 1, null_mut()), -EFAULT);
        assert_eq!(swapdio_plug_start(null_mut()), -EFAULT);
        assert_eq!(swapdio_plug_finish(f.engine, null_mut()), -EFAULT);
        assert_eq!(swapdio_plug_finish(null(), &mut plug), -EFAULT);
        assert_eq!(swapdio_write(null(), null_mut(), &fo, 0), -EFAULT);
        assert_eq!(swapdio_write(f.engine, null_mut(), null(), 0), -EFAULT);
        assert_eq!(swapdio_read(null(), null_mut(), &fo), -EFAULT);
        assert_eq!(swapdio_read(f.engine, null_mut(), null()), -EFAULT);
        assert_eq!(swapdio_write_sync(null(), &fo, 0, None, null_mut()), -EFAULT);
        assert_eq!(swapdio_write_sync(f.engine, null(), 0, None, null_mut()), -EFAULT);
        assert_eq!(swapdio_read_sync(null(), &fo, None, null_mut()), -EFAULT);
        assert_eq!(swapdio_read_sync(f.engine, null(), None, null_mut()), -EFAULT);
        assert_eq!(swapdio_complete(null(), 0, 0), -EFAULT);
        assert_eq!(swapdio_deactivate(null()), -EFAULT);
        assert_eq!(swapdio_engine_stats(null(), &mut swapdio_stats::default()), -EFAULT);
        assert_eq!(swapdio_engine_stats(f.engine, null_mut()), -EFAULT);
        assert_eq!(swapdio_engine_new(null(), &mut out), -EFAULT);
        assert_eq!(swapdio_engine_new(&cfg, null_mut()), -EFAULT);
    }
    // Nothing was touched.
    assert_eq!(f.stats().requests_submitted, 0);
}

#[test]
fn zero_lengths_are_refused_with_einval() {
    let f = Fixture::new();
    let hdr = header(64);
    let ext = extents();
    let mut rep = swapdio_activation_report::default();
    let mut map = [swapdio_map_entry::default(); 2];
    let mut l = swapdio_mem_layout::default();
    let mut run = swapdio_run::default();
    // SAFETY: valid pointers; zero lengths are under test.
    unsafe {
        assert_eq!(swapdio_map_layout(0, &mut l), -EINVAL);
        let empty_pool = swapdio_storage_config { pool: 0, ..STORAGE };
        assert_eq!(swapdio_storage_layout(&empty_pool, &mut l), -EINVAL);
        let mut a = activation(&hdr, &ext);
        a.nr_extents = 0;
        assert_eq!(swapdio_activate(&a, map.as_mut_ptr(), 2, &mut rep), -EINVAL);
        assert_eq!(rep.refusal, swapdio_refusal::InvalidArgument as u32);
        assert_eq!(swapdio_activate(&activation(&hdr, &ext), map.as_mut_ptr(), 0, &mut rep), -EINVAL);
        let mut a = activation(&hdr, &ext);
        a.header_len = 0;
        assert_eq!(swapdio_activate(&a, map.as_mut_ptr(), 2, &mut rep), -EINVAL);
        assert_eq!(rep.refusal, swapdio_refusal::HeaderShortBuffer as u32);
        let mut a = activation(&hdr, &ext);
        a.file_size = 0;
        assert_eq!(swapdio_activate(&a, map.as_mut_ptr(), 2, &mut rep), -EINVAL);
        let mut bad = ext;
        bad[1].length = 0;
        assert_eq!(swapdio_activate(&activation(&hdr, &bad), map.as_mut_ptr(), 2, &mut rep), -EINVAL);
        assert_eq!((rep.refusal, rep.bad_extent), (swapdio_refusal::InvalidExtent as u32, 1));
        assert_eq!(swapdio_map_lookup(f.map.as_ptr(), 0, 1, &mut run), -EINVAL);
        let mut cfg = config_without_storage(&f);
        cfg.map_entries = 0;
        let mut out = null_mut();
        let mut mem = [0u64; 512];
        assert_eq!(swapdio_engine_init(mem.as_mut_ptr().cast(), 4096, &cfg, &mut out), -EINVAL);
        assert_eq!(swapdio_engine_new(&cfg, &mut out), -EINVAL);
        let mut cfg = config_without_storage(&f);
        cfg.storage_config.pool = 0;
        assert_eq!(swapdio_engine_new(&cfg, &mut out), -EINVAL);
        assert!(out.is_null());
        // A zero-page folio descriptor (pages = 0).
        assert_eq!(f.write(null_mut(), folio(1, 1, 0)), -EINVAL);
    }
}

#[test]
fn misaligned_and_too_small_buffers_are_refused_with_einval() {
    let mut f = Fixture::new();
    let mut el = swapdio_mem_layout::default();
    let mut sl = swapdio_mem_layout::default();
    // SAFETY: valid out pointers.
    unsafe {
        assert_eq!(swapdio_engine_layout(&mut el), 0);
        assert_eq!(swapdio_storage_layout(&STORAGE, &mut sl), 0);
    }
    assert!(el.align >= 8 && sl.align >= 8, "layouts {el:?} {sl:?}");
    let mem = Block::new(swapdio_mem_layout { size: el.size + 64, align: el.align });
    let storage = Block::new(swapdio_mem_layout { size: sl.size + 64, align: sl.align });
    let good = f.config();
    let mut out = null_mut();
    // SAFETY: the blocks are large enough for every offset used; misalignment and short
    // sizes are under test and must be refused before any write.
    unsafe {
        assert_eq!(swapdio_engine_init(mem.ptr.add(1).cast(), el.size, &good, &mut out), -EINVAL);
        assert_eq!(swapdio_engine_init(mem.ptr.cast(), el.size - 1, &good, &mut out), -EINVAL);
        let mut cfg = good;
        cfg.storage = storage.ptr.add(4).cast();
        assert_eq!(swapdio_engine_init(mem.ptr.cast(), el.size, &cfg, &mut out), -EINVAL);
        let mut cfg = good;
        cfg.storage = storage.ptr.cast();
        cfg.storage_size = sl.size - 1;
        assert_eq!(swapdio_engine_init(mem.ptr.cast(), el.size, &cfg, &mut out), -EINVAL);
        let mut cfg = good;
        cfg.storage = storage.ptr.cast();
        cfg.map = f.map.as_ptr().cast::<u8>().add(4).cast();
        assert_eq!(swapdio_engine_init(mem.ptr.cast(), el.size, &cfg, &mut out), -EINVAL);
        assert!(out.is_null());

        // Activation into a misaligned map, and a map too small (-ENOMEM, kernel style).
        let hdr = header(64);
        let ext = extents();
        let mut rep = swapdio_activation_report::default();
        let mut words = [0u64; 16];
        let misaligned = words.as_mut_ptr().cast::<u8>().add(4).cast::<swapdio_map_entry>();
        assert_eq!(swapdio_activate(&activation(&hdr, &ext), misaligned, 2, &mut rep), -EINVAL);
        let mut one = [swapdio_map_entry::default(); 1];
        assert_eq!(swapdio_activate(&activation(&hdr, &ext), one.as_mut_ptr(), 1, &mut rep), -12);
        assert_eq!(rep.refusal, swapdio_refusal::MapStorageTooSmall as u32);
        // Misaligned extents, plug, report and out pointers.
        let mut a = activation(&hdr, &ext);
        let mut ext_words = [0u64; 16];
        a.extents = ext_words.as_mut_ptr().cast::<u8>().add(4).cast();
        let mut map = [swapdio_map_entry::default(); 2];
        assert_eq!(swapdio_activate(&a, map.as_mut_ptr(), 2, &mut rep), -EINVAL);
        let plug = words.as_mut_ptr().cast::<u8>().add(4).cast::<swapdio_plug>();
        assert_eq!(swapdio_plug_start(plug), -EINVAL);
        let report = words.as_mut_ptr().cast::<u8>().add(4).cast::<swapdio_activation_report>();
        assert_eq!(swapdio_activate(&activation(&hdr, &ext), map.as_mut_ptr(), 2, report), -EINVAL);
        let layout = words.as_mut_ptr().cast::<u8>().add(4).cast::<swapdio_mem_layout>();
        assert_eq!(swapdio_engine_layout(layout), -EINVAL);
        let engine = mem.ptr.add(4).cast::<swapdio_engine>();
        assert_eq!(swapdio_deactivate(engine), -EINVAL);
    }
}

#[test]
fn slots_out_of_range_are_refused_and_the_folio_is_untouched() {
    let f = Fixture::new();
    let mut run = swapdio_run::default();
    // SAFETY: a live engine and valid pointers.
    unsafe {
        assert_eq!(swapdio_engine_lookup(f.engine, 64, &mut run), -EINVAL);
        assert_eq!(swapdio_engine_lookup(f.engine, u64::MAX, &mut run), -EINVAL);
        assert_eq!(swapdio_map_lookup(f.map.as_ptr(), 2, 64, &mut run), -EINVAL);
        assert_eq!(swapdio_engine_lookup(f.engine, 40, &mut run), 0);
        assert_eq!(run, swapdio_run { pos: (8 << 20) + 8 * PAGE, pages: 24 });
    }
    for bad in [folio(1, 64, 1), folio(2, 62, 4), folio(3, u64::MAX, 2), folio(4, 0, 1), folio(5, 1, 1 << 19)] {
        assert_eq!(f.write(null_mut(), bad), -EINVAL, "{bad:?}");
        let s = f.world.pages.state(FolioId(bad.id));
        assert!(s.locked && s.dirty && !s.writeback && s.pins == 0, "folio {bad:?} touched: {s:?}");
        // SAFETY: a live engine, valid folio.
        assert_eq!(unsafe { swapdio_read(f.engine, null_mut(), &bad) }, -EINVAL);
    }
    assert_eq!(f.stats().requests_submitted, 0);
}

#[test]
fn unknown_enum_and_flag_values_are_refused_with_einval() {
    let mut f = Fixture::new();
    let hdr = header(64);
    let ext = extents();
    let mut rep = swapdio_activation_report::default();
    let mut map = [swapdio_map_entry::default(); 2];
    let act = |change: &dyn Fn(&mut swapdio_activation)| {
        let mut a = activation(&hdr, &ext);
        change(&mut a);
        a
    };
    // SAFETY: valid pointers; the values are under test.
    unsafe {
        for a in [act(&|a| a.layout = 3), act(&|a| a.mode = 3), act(&|a| a.caps |= 1 << 20), act(&|a| a.attrs = 1 << 9)]
        {
            assert_eq!(swapdio_activate(&a, map.as_mut_ptr(), 2, &mut rep), -EINVAL);
            assert_eq!(rep.refusal, swapdio_refusal::InvalidArgument as u32);
        }
        let mut bad = ext;
        bad[1].flags = 1 << 12;
        assert_eq!(swapdio_activate(&activation(&hdr, &bad), map.as_mut_ptr(), 2, &mut rep), -EINVAL);
        assert_eq!((rep.bad_extent, rep.bad_offset), (1, 32 * PAGE));
        let mut bad = ext;
        bad[0].reserved = 1;
        assert_eq!(swapdio_activate(&activation(&hdr, &bad), map.as_mut_ptr(), 2, &mut rep), -EINVAL);
        assert_eq!(rep.bad_extent, 0);

        let mut out = null_mut();
        // Fresh storage: the fixture's is claimed by its live engine (that is -EBUSY).
        let storage = Block::new(swapdio_mem_layout { size: f.storage.layout.size(), align: f.storage.layout.align() });
        let good = swapdio_engine_config { storage: storage.ptr.cast(), ..f.config() };
        let mem = Block::new({
            let mut l = swapdio_mem_layout::default();
            assert_eq!(swapdio_engine_layout(&mut l), 0);
            l
        });
        for cfg in [
            swapdio_engine_config { mode: 0, ..good },
            swapdio_engine_config { mode: 3, ..good },
            swapdio_engine_config { reserved: 1, ..good },
        ] {
            assert_eq!(swapdio_engine_init(mem.ptr.cast(), mem.layout.size(), &cfg, &mut out), -EINVAL);
        }
        let bad_caps = swapdio_backend_ops { caps: DEVICE_CAPS | 1 << 30, ..backend_ops() };
        let cfg = swapdio_engine_config { backend: &bad_caps, ..good };
        assert_eq!(swapdio_engine_init(mem.ptr.cast(), mem.layout.size(), &cfg, &mut out), -EINVAL);
        // Capabilities that cannot drive the map's mode.
        let file_only = swapdio_backend_ops { caps: SWAPDIO_CAP_SWAP_RW, ..backend_ops() };
        let cfg = swapdio_engine_config { backend: &file_only, ..good };
        assert_eq!(swapdio_engine_init(mem.ptr.cast(), mem.layout.size(), &cfg, &mut out), -EINVAL);
        assert!(out.is_null());

        let fo = folio(1, 1, 1);
        f.world.pages.prepare_write(FolioId(1));
        assert_eq!(swapdio_write(f.engine, null_mut(), &fo, 2), -EINVAL);
        assert_eq!(swapdio_write_sync(f.engine, &fo, 7, None, null_mut()), -EINVAL);
        let flagged = swapdio_folio { flags: 1 << 3, ..fo };
        assert_eq!(swapdio_write(f.engine, null_mut(), &flagged, 0), -EINVAL);
        assert_eq!(swapdio_read(f.engine, null_mut(), &flagged), -EINVAL);
        // The zero page is never read into.
        let zero = swapdio_folio { flags: SWAPDIO_FOLIO_ZERO_PAGE, ..fo };
        assert_eq!(swapdio_read(f.engine, null_mut(), &zero), -EINVAL);
    }
    assert!(!f.world.pages.state(FolioId(1)).writeback);
    assert_eq!(f.stats().requests_submitted, 0);
}

#[test]
fn double_completion_is_refused_with_ealready_and_counted() {
    let f = Fixture::new();
    assert_eq!(f.write(null_mut(), folio(1, 5, 1)), 0);
    let id = f.world.queued.lock().unwrap()[0];
    // SAFETY: a live engine.
    unsafe {
        assert_eq!(swapdio_complete(f.engine, id, PAGE as i64), 0);
        assert_eq!(swapdio_complete(f.engine, id, PAGE as i64), -EALREADY);
        assert_eq!(swapdio_complete(f.engine, id, -(EIO as i64)), -EALREADY);
        // An id naming no slot at all; a generation never issued.
        assert_eq!(swapdio_complete(f.engine, 1000, 0), -EINVAL);
        assert_eq!(swapdio_complete(f.engine, id + (7 << 32), PAGE as i64), -EALREADY);
    }
    f.world.queued.lock().unwrap().clear();
    let s = f.stats();
    assert_eq!((s.requests_completed, s.rejected_completions, s.in_flight), (1, 3, 0));
    let st = f.world.pages.state(FolioId(1));
    assert!(!st.writeback && !st.locked && st.pins == 0 && st.writeback_ends == 1, "{st:?}");
}

#[test]
fn completion_results_outside_the_errno_range_fail_the_folio_with_eio() {
    let f = Fixture::new();
    for (i, result) in [i64::MIN, -5000, SWAPDIO_QUEUED].into_iter().enumerate() {
        let id = i as u64 + 1;
        assert_eq!(f.write(null_mut(), folio(id, id, 1)), 0);
        let req = f.world.queued.lock().unwrap().pop().unwrap();
        // SAFETY: a live engine.
        assert_eq!(unsafe { swapdio_complete(f.engine, req, result) }, 0);
        let s = f.world.pages.state(FolioId(id));
        assert!(s.dirty && !s.reclaim && !s.writeback, "failed write must be redirtied: {s:?}");
    }
    let events = f.world.events.lock().unwrap().clone();
    let failed: Vec<_> = events.iter().filter(|e| e.kind == swapdio_event_kind::WriteFailed as u32).collect();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|e| e.error == -EIO && e.failure == swapdio_failure::Errno as u32 && e.retryable == 0));
    assert_eq!(f.stats().write_failures, 3);
}

#[test]
fn plug_not_started_or_foreign_is_refused_with_einval() {
    let f = Fixture::new();
    let g = Fixture::new();
    let mut plug = swapdio_plug { magic: 0, opaque: [0; 8] };
    assert_eq!(f.write(&mut plug, folio(1, 1, 1)), -EINVAL);
    // SAFETY: live engines, valid plug.
    unsafe {
        assert_eq!(swapdio_plug_finish(f.engine, &mut plug), -EINVAL);
        assert_eq!(swapdio_plug_start(&mut plug), 0);
    }
    assert_eq!(f.write(&mut plug, folio(1, 1, 1)), 0);
    assert_eq!(f.write(&mut plug, folio(2, 2, 1)), 0);
    assert!(f.world.queued.lock().unwrap().is_empty(), "a plugged batch waits for finish");
    // Restarting a plug that holds a batch would strand it.
    // SAFETY: a started plug.
    assert_eq!(unsafe { swapdio_plug_start(&mut plug) }, -EBUSY);
    // The plug holds f's batch: g refuses it and f's batch is untouched.
    assert_eq!(g.write(&mut plug, folio(3, 3, 1)), -EINVAL);
    // SAFETY: live engines, started plug.
    unsafe {
        assert_eq!(swapdio_plug_finish(g.engine, &mut plug), -EINVAL);
        assert_eq!(swapdio_plug_finish(f.engine, &mut plug), 0);
    }
    assert_eq!(f.world.queued.lock().unwrap().len(), 1, "two adjacent folios, one request");
}

#[test]
fn missing_callbacks_are_refused_with_einval() {
    let mut f = Fixture::new();
    let good = f.config();
    let mem = Block::new({
        let mut l = swapdio_mem_layout::default();
        // SAFETY: valid out pointer.
        assert_eq!(unsafe { swapdio_engine_layout(&mut l) }, 0);
        l
    });
    let no_submit = swapdio_backend_ops { submit: None, ..backend_ops() };
    let mut tables = vec![swapdio_engine_config { backend: &no_submit, ..good }];
    let strip: [fn(&mut swapdio_page_ops); 8] = [
        |o| o.set_uptodate = None,
        |o| o.set_dirty = None,
        |o| o.clear_reclaim = None,
        |o| o.start_writeback = None,
        |o| o.end_writeback = None,
        |o| o.unlock = None,
        |o| o.pin = None,
        |o| o.unpin = None,
    ];
    let stripped: Vec<swapdio_page_ops> = strip
        .iter()
        .map(|s| {
            let mut o = page_ops();
            s(&mut o);
            o
        })
        .collect();
    tables.extend(stripped.iter().map(|o| swapdio_engine_config { page_ops: o, ..good }));
    for cfg in &tables {
        let mut out = null_mut();
        // SAFETY: valid memory; the missing callbacks are under test.
        assert_eq!(unsafe { swapdio_engine_init(mem.ptr.cast(), mem.layout.size(), cfg, &mut out) }, -EINVAL);
        assert!(out.is_null());
    }
}

#[test]
fn fini_and_deactivate_wait_for_in_flight_requests_with_ebusy() {
    let f = Fixture::new();
    assert_eq!(f.write(null_mut(), folio(1, 9, 1)), 0);
    // SAFETY: a live engine.
    unsafe {
        assert_eq!(swapdio_engine_fini(f.engine), -EBUSY);
        assert_eq!(swapdio_deactivate(f.engine), -EBUSY);
    }
    // Deactivated: new I/O refused, completions still accepted.
    assert_eq!(f.write(null_mut(), folio(2, 10, 1)), -EINVAL);
    f.complete_all(PAGE as i64);
    // SAFETY: a live engine.
    assert_eq!(unsafe { swapdio_deactivate(f.engine) }, 0);
    assert_eq!(f.stats().requests_completed, 1);
}

#[test]
fn sync_io_returns_the_request_outcome_as_negative_errno() {
    let f = Fixture::new();
    struct Done<'a>(&'a Fixture, i64);
    unsafe extern "C" fn complete_queued(ctx: *mut c_void, _cond: *const swapdio_sync_wait<'_>) {
        // SAFETY: ctx is the `Done` below, alive for the sync call.
        let d = unsafe { &*ctx.cast::<Done>() };
        for id in std::mem::take(&mut *d.0.world.queued.lock().unwrap()) {
            // SAFETY: a live engine.
            assert_eq!(unsafe { swapdio_complete(d.0.engine, id, d.1) }, 0);
        }
    }
    for (result, want) in [(PAGE as i64, 0), (-(EAGAIN as i64), -EAGAIN), (100, -EIO)] {
        let mut d = Done(&f, result);
        f.world.pages.prepare_write(FolioId(4));
        let fo = folio(4, 4, 1);
        // SAFETY: a live engine; the wait callback completes the queued request.
        let rc = unsafe { swapdio_write_sync(f.engine, &fo, 0, Some(complete_queued), (&mut d as *mut Done).cast()) };
        assert_eq!(rc, want, "result {result}");
    }
}

#[test]
fn engine_new_allocates_and_fini_frees_everything() {
    let f = Fixture::new();
    let world = World::default();
    let ctx = (&world as *const World).cast_mut().cast::<c_void>();
    let cfg = swapdio_engine_config { backend_ctx: ctx, page_ctx: ctx, ..config_without_storage(&f) };
    let mut e = null_mut();
    // SAFETY: a valid config; the map is copied.
    unsafe {
        assert_eq!(swapdio_engine_new(&cfg, &mut e), 0);
        assert!(!e.is_null());
        world.pages.prepare_write(FolioId(1));
        assert_eq!(swapdio_write(e, null_mut(), &folio(1, 3, 1), 0), 0);
        assert_eq!(swapdio_engine_fini(e), -EBUSY);
        let id = world.queued.lock().unwrap().pop().unwrap();
        assert_eq!(swapdio_complete(e, id, PAGE as i64), 0);
        assert_eq!(swapdio_engine_fini(e), 0);
    }
    assert_eq!(world.pages.violations(), Vec::<String>::new());
}

#[test]
fn strerror_and_refusal_str_name_every_code() {
    let text = |p: *const std::ffi::c_char| {
        assert!(!p.is_null());
        // SAFETY: the library returns static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
    };
    for (code, start) in
        [(-EINVAL, "EINVAL"), (EINVAL, "EINVAL"), (-EFAULT, "EFAULT"), (-EALREADY, "EALREADY"), (-EBUSY, "EBUSY")]
    {
        assert!(text(swapdio_strerror(code)).starts_with(start), "{code}");
    }
    assert_eq!(text(swapdio_strerror(-9999)), "unknown error");
    assert_eq!(text(swapdio_strerror(i32::MIN)), "unknown error");
    assert_eq!(text(swapdio_refusal_str(swapdio_refusal::Shared as u32)), "has shared extents");
    assert_eq!(text(swapdio_refusal_str(u32::MAX)), "unknown refusal");
    assert_eq!(text(swapdio_version()), env!("CARGO_PKG_VERSION"));
}

#[test]
fn nofs_write_in_file_mode_is_eagain_and_the_folio_untouched() {
    // NFS-style: no extent map, file mode, a backend that enters the filesystem.
    let hdr = header(16);
    let caps = SWAPDIO_CAP_SWAP_RW
        | SWAPDIO_CAP_STABLE_ON_COMPLETE
        | SWAPDIO_CAP_REQUIRES_NOFS
        | SWAPDIO_CAP_OVERWRITE_IN_PLACE;
    let act = swapdio_activation {
        layout: swapdio_layout::Opaque as u32,
        allocated_bytes: 16 * PAGE,
        file_size: 16 * PAGE,
        extents: null(),
        nr_extents: 0,
        caps,
        ..activation(&hdr, &extents())
    };
    let mut map = [swapdio_map_entry::default(); 1];
    let mut rep = swapdio_activation_report::default();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { swapdio_activate(&act, map.as_mut_ptr(), 1, &mut rep) }, 0, "{rep:?}");
    assert_eq!((rep.mode, rep.slots, rep.map_entries), (swapdio_mode::File as u32, 16, 1));
    let world = World::default();
    let ctx = (&world as *const World).cast_mut().cast::<c_void>();
    let bops = swapdio_backend_ops { caps, ..backend_ops() };
    let pops = page_ops();
    let cfg = swapdio_engine_config {
        map: map.as_ptr(),
        map_entries: 1,
        storage: null_mut(),
        storage_size: 0,
        storage_config: STORAGE,
        backend: &bops,
        backend_ctx: ctx,
        page_ops: &pops,
        page_ctx: ctx,
        mode: rep.mode,
        reserved: 0,
    };
    let mut e = null_mut();
    let fo = folio(1, 3, 1);
    world.pages.prepare_write(FolioId(1));
    // SAFETY: a valid config; a live engine afterwards.
    unsafe {
        assert_eq!(swapdio_engine_new(&cfg, &mut e), 0);
        assert_eq!(swapdio_write(e, null_mut(), &fo, swapdio_fs_context::NoFs as u32), -EDEADLK);
        let s = world.pages.state(FolioId(1));
        assert!(s.locked && s.dirty && !s.writeback && s.pins == 0, "NOFS refusal touched the folio: {s:?}");
        assert_eq!(swapdio_write(e, null_mut(), &fo, swapdio_fs_context::MayEnterFs as u32), 0);
        let id = world.queued.lock().unwrap().pop().unwrap();
        // File mode: the position is the file position of the slot (`swap_dev_pos`).
        assert_eq!(world.seen.lock().unwrap().last(), Some(&(id, 3 * PAGE, swapdio_mode::File as u32)));
        assert_eq!(swapdio_complete(e, id, PAGE as i64), 0);
        assert_eq!(swapdio_engine_fini(e), 0);
    }
    assert_eq!(world.pages.violations(), Vec::<String>::new());
}

#[test]
fn c_swap_header_writer_matches_mkswap_and_refuses_bad_input() {
    let uuid = [7u8; 16];
    let mut page = vec![0xAAu8; SWAPDIO_PAGE_SIZE];
    // SAFETY: `page` holds SWAPDIO_PAGE_SIZE writable bytes, `uuid` 16 readable bytes.
    let rc = unsafe { swapdio_write_header(page.as_mut_ptr(), page.len(), 64, uuid.as_ptr(), null()) };
    assert_eq!(rc, 0);
    // The boot block is left alone; everything from the version field on is mkswap's.
    assert!(page[..1024].iter().all(|&b| b == 0xAA));
    assert_eq!(page[1024..], header(64)[1024..]);
    let h = SwapHeader::parse(&page).expect("the written header parses");
    assert_eq!((h.last_page, h.nr_badpages, h.uuid), (63, 0, uuid));
    // SAFETY: NULL and short buffers are refused before any access.
    unsafe {
        assert_eq!(swapdio_write_header(null_mut(), SWAPDIO_PAGE_SIZE, 64, null(), null()), -EFAULT);
        assert_eq!(swapdio_write_header(page.as_mut_ptr(), SWAPDIO_PAGE_SIZE - 1, 64, null(), null()), -EINVAL);
        assert_eq!(swapdio_write_header(page.as_mut_ptr(), page.len(), 1, null(), null()), -EINVAL);
    }
}

/// The sync waiter sleeps on its condition and the completion wakes it
/// (`wait_event`/`wake_up`): no spinning, no polling; a NULL wait callback is refused.
#[test]
fn sync_waiter_sleeps_until_the_completion_wakes_it() {
    let f = Fixture::new();
    struct Waiter<'a> {
        world: &'a World,
        calls: usize,
    }
    unsafe extern "C" fn sleep_until_done(ctx: *mut c_void, cond: *const swapdio_sync_wait<'_>) {
        // SAFETY: ctx is the `Waiter` below, alive for the sync call; cond is live.
        let w = unsafe { &mut *ctx.cast::<Waiter>() };
        w.calls += 1;
        let mut wakes = w.world.wakes.lock().unwrap();
        // SAFETY: `cond` is the condition of this wait call.
        while unsafe { swapdio_sync_done(cond) } == 0 {
            wakes = w.world.woken.wait(wakes).unwrap();
        }
    }
    let fo = folio(4, 4, 1);
    f.world.pages.prepare_write(FolioId(4));
    // SAFETY: a live engine; NULL wait is refused before anything is submitted.
    assert_eq!(unsafe { swapdio_write_sync(f.engine, &fo, 0, None, null_mut()) }, -EINVAL);
    assert_eq!(unsafe { swapdio_read_sync(f.engine, &fo, None, null_mut()) }, -EINVAL);
    assert!(f.world.queued.lock().unwrap().is_empty());
    // SAFETY: `null()` is never a live condition.
    assert_eq!(unsafe { swapdio_sync_done(null()) }, 0);

    let engine = f.engine as usize;
    let world: &World = &f.world;
    std::thread::scope(|s| {
        s.spawn(move || loop {
            // The "device": completes the request from another thread, a while later.
            let id = world.queued.lock().unwrap().pop();
            if let Some(id) = id {
                std::thread::sleep(std::time::Duration::from_millis(20));
                // SAFETY: a live engine.
                assert_eq!(unsafe { swapdio_complete(engine as *const swapdio_engine, id, PAGE as i64) }, 0);
                break;
            }
            std::thread::yield_now();
        });
        let mut w = Waiter { world, calls: 0 };
        // SAFETY: a live engine; the waiter outlives the call.
        let rc =
            unsafe { swapdio_write_sync(f.engine, &fo, 0, Some(sleep_until_done), (&mut w as *mut Waiter).cast()) };
        assert_eq!(rc, 0);
        assert_eq!(w.calls, 1, "the waiter returned only once its condition held");
    });
    assert_eq!(*f.world.wakes.lock().unwrap(), [swapdio_wake::Sync as u32]);
}

/// A released async request wakes callers waiting for the pool (the mempool's wake-up).
#[test]
fn released_async_request_wakes_pool_waiters() {
    let f = Fixture::new();
    f.world.pages.prepare_write(FolioId(1));
    assert_eq!(f.write(null_mut(), folio(1, 3, 1)), 0);
    assert!(f.world.wakes.lock().unwrap().is_empty());
    f.complete_all(PAGE as i64);
    assert_eq!(*f.world.wakes.lock().unwrap(), [swapdio_wake::Pool as u32]);
}

/// Each request's `swapdio_io` lives in the storage, not on the stack: it stays valid and
/// unchanged until its completion, and carries 16-byte aligned private backend space that
/// no other request shares.
#[test]
fn requests_live_in_storage_with_private_backend_space_until_completion() {
    let f = Fixture::new();
    for (i, slot) in [3u64, 9, 20].into_iter().enumerate() {
        f.world.pages.prepare_write(FolioId(i as u64 + 1));
        assert_eq!(f.write(null_mut(), folio(i as u64 + 1, slot, 1)), 0);
    }
    let ios = f.world.ios.lock().unwrap().clone();
    assert_eq!(ios.len(), 3);
    let storage = f.storage.ptr as usize..f.storage.ptr as usize + f.storage.layout.size();
    let mut data = Vec::new();
    for (&addr, &(id, pos, _)) in ios.iter().zip(f.world.seen.lock().unwrap().iter()) {
        assert!(storage.contains(&addr), "swapdio_io at {addr:#x} is outside the storage {storage:x?}");
        // SAFETY: the request is still in flight, so its io is valid (the contract under test).
        let io = unsafe { &*(addr as *const swapdio_io) };
        assert_eq!((io.id, io.pos, io.nr_segments), (id, pos, 1), "the io changed after submit");
        let d = io.backend_data as usize;
        assert!(d % 16 == 0 && storage.contains(&d) && storage.contains(&(d + 23)), "backend_data at {d:#x}");
        // SAFETY: as above; the submit callback stamped it.
        assert_eq!(unsafe { *(d as *const u64) }, id, "private space shared between requests");
        data.push(d);
    }
    data.sort_unstable();
    assert!(data.windows(2).all(|w| w[1] - w[0] >= 24 + 560), "private areas overlap: {data:x?}");
    f.complete_all(PAGE as i64);
}
