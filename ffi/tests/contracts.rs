//! The engine's contracts through the C ABI, tried as a careless C caller would (issue
//! 9): a second engine over storage or memory in use, a plug copied by struct
//! assignment and finished twice, forged request ids, `swapdio_engine_fini` twice on an
//! allocated engine, an engine with no sync slot. The C harness repeats the copied plug
//! and forged ids in C, under the sanitizers and valgrind.

mod common;

use std::ffi::c_void;
use std::ptr::null_mut;

use common::*;
use swapdio::FolioId;
use swapdio_ffi::*;

const ESTALE: i32 = 116;

/// A second engine over `f`'s map and ops in fresh memory, using `storage`.
fn second_engine(f: &mut Fixture, storage: *mut c_void, mem: &Block) -> (i32, *mut swapdio_engine) {
    let cfg = swapdio_engine_config { storage, ..f.config() };
    let mut out = null_mut();
    // SAFETY: memory sized by the library's layouts; the map and ops outlive the call.
    let rc = unsafe { swapdio_engine_init(mem.ptr.cast(), mem.layout.size(), &cfg, &mut out) };
    (rc, out)
}

fn engine_block() -> Block {
    let mut l = swapdio_mem_layout::default();
    // SAFETY: a valid out pointer.
    assert_eq!(unsafe { swapdio_engine_layout(&mut l) }, 0);
    Block::new(l)
}

#[test]
fn engine_init_over_storage_in_use_is_ebusy_and_leaves_the_live_engine_intact() {
    let mut f = Fixture::new();
    // An in-flight request of the live engine.
    assert_eq!(f.write(null_mut(), folio(1, 3, 1)), 0);
    let mem = engine_block();
    let storage = f.storage.ptr.cast();
    let (rc, out) = second_engine(&mut f, storage, &mem);
    assert_eq!((rc, out), (-EBUSY, null_mut()));
    // The live engine's request was not erased: its completion is accepted, once.
    let id = f.world.queued.lock().unwrap().pop().unwrap();
    // SAFETY: a live engine.
    unsafe {
        assert_eq!(swapdio_complete(f.engine, id, PAGE as i64), 0);
        assert_eq!(swapdio_complete(f.engine, id, PAGE as i64), -EALREADY);
    }
    let s = f.world.pages.state(FolioId(1));
    assert!(!s.writeback && s.pins == 0, "the folio completed normally: {s:?}");
    // Idle but live, the storage is still refused.
    let (rc, _) = second_engine(&mut f, storage, &mem);
    assert_eq!(rc, -EBUSY);
}

#[test]
fn engine_init_over_the_memory_of_a_live_engine_is_ebusy() {
    let mut f = Fixture::new();
    let storage = Block::new(swapdio_mem_layout { size: f.storage.layout.size(), align: f.storage.layout.align() });
    let cfg = swapdio_engine_config { storage: storage.ptr.cast(), ..f.config() };
    let mut out = null_mut();
    // SAFETY: `f._mem` is the live engine's memory: refused before it is written.
    let rc = unsafe { swapdio_engine_init(f._mem.ptr.cast(), f._mem.layout.size(), &cfg, &mut out) };
    assert_eq!((rc, out), (-EBUSY, null_mut()));
    assert_eq!(f.write(null_mut(), folio(1, 3, 1)), 0, "the live engine still works");
}

#[test]
fn storage_released_by_fini_serves_a_new_engine() {
    let mut f = Fixture::new();
    let mem = engine_block();
    let storage = Block::new(swapdio_mem_layout { size: f.storage.layout.size(), align: f.storage.layout.align() });
    let (rc, e) = second_engine(&mut f, storage.ptr.cast(), &mem);
    assert_eq!(rc, 0);
    // SAFETY: a live engine, finished once.
    assert_eq!(unsafe { swapdio_engine_fini(e) }, 0);
    let (rc, e) = second_engine(&mut f, storage.ptr.cast(), &mem);
    assert_eq!(rc, 0, "fini released the storage and the memory");
    // SAFETY: as above.
    assert_eq!(unsafe { swapdio_engine_fini(e) }, 0);
}

#[test]
fn copied_plug_is_estale_and_its_batch_is_submitted_once() {
    let f = Fixture::new();
    let mut plug = swapdio_plug { magic: 0, opaque: [0; 8] };
    // SAFETY: writable plug memory.
    assert_eq!(unsafe { swapdio_plug_start(&mut plug) }, 0);
    for i in 1..=3 {
        assert_eq!(f.write(&mut plug, folio(i, i, 1)), 0);
    }
    let mut copy = plug; // C struct assignment
                         // SAFETY: a live engine and started plugs.
    unsafe {
        assert_eq!(swapdio_plug_finish(f.engine, &mut plug), 0);
        assert_eq!(swapdio_plug_finish(f.engine, &mut copy), -ESTALE);
        // The stale copy was emptied: finishing again is a no-op, restarting works.
        assert_eq!(swapdio_plug_finish(f.engine, &mut copy), 0);
        assert_eq!(swapdio_plug_start(&mut copy), 0);
    }
    assert_eq!(f.world.seen.lock().unwrap().len(), 1, "the backend saw one request");
    f.complete_all(3 * PAGE as i64);
    for i in 1..=3 {
        let s = f.world.pages.state(FolioId(i));
        assert_eq!((s.writeback_ends, s.pins), (1, 0), "folio {i}: writeback ended once, pins balanced");
    }
    // SAFETY: a live engine.
    assert_eq!(unsafe { swapdio_deactivate(f.engine) }, 0, "nothing stranded");
}

#[test]
fn stale_plug_copy_write_is_estale_and_the_folio_untouched() {
    let f = Fixture::new();
    let mut plug = swapdio_plug { magic: 0, opaque: [0; 8] };
    // SAFETY: writable plug memory.
    assert_eq!(unsafe { swapdio_plug_start(&mut plug) }, 0);
    assert_eq!(f.write(&mut plug, folio(1, 1, 1)), 0);
    let mut copy = plug;
    assert_eq!(f.write(&mut plug, folio(2, 2, 1)), 0);
    assert_eq!(f.write(&mut copy, folio(3, 2, 1)), -ESTALE);
    let s = f.world.pages.state(FolioId(3));
    assert!(s.locked && s.dirty && !s.writeback && s.pins == 0, "refused folio touched: {s:?}");
    // SAFETY: a live engine, started plugs.
    unsafe {
        assert_eq!(swapdio_plug_finish(f.engine, &mut copy), 0);
        assert_eq!(swapdio_plug_finish(f.engine, &mut plug), 0);
    }
    assert_eq!(f.world.seen.lock().unwrap().len(), 1);
}

#[test]
fn forged_request_ids_are_refused_and_the_real_one_completes() {
    let f = Fixture::new();
    assert_eq!(f.write(null_mut(), folio(1, 3, 1)), 0);
    let id = *f.world.queued.lock().unwrap().last().unwrap();
    assert_eq!(id >> 63, 0, "bit 63 is never set");
    // SAFETY: a live engine.
    unsafe {
        // Bit 63 is outside the slot index and generation: malformed.
        assert_eq!(swapdio_complete(f.engine, id | 1 << 63, PAGE as i64), -EINVAL);
        // Bit 62 is the generation's top bit: another request, not in flight.
        assert_eq!(swapdio_complete(f.engine, id | 1 << 62, PAGE as i64), -EALREADY);
        // An index beyond the storage.
        assert_eq!(swapdio_complete(f.engine, id | 0xffff, PAGE as i64), -EINVAL);
    }
    assert!(f.world.pages.state(FolioId(1)).writeback, "no forged id completed the request");
    f.complete_all(PAGE as i64);
    assert!(!f.world.pages.state(FolioId(1)).writeback);
}

#[test]
fn engine_fini_twice_on_an_allocated_engine_is_einval_without_reading_freed_memory() {
    let f = Fixture::new();
    let world = World::default();
    let ctx = (&world as *const World).cast_mut().cast::<c_void>();
    let cfg = swapdio_engine_config { backend_ctx: ctx, page_ctx: ctx, ..config_without_storage(&f) };
    let mut e = null_mut();
    // SAFETY: a valid config; the second and third fini are what is under test (the
    // library must refuse them from its registry, not from the freed block).
    unsafe {
        assert_eq!(swapdio_engine_new(&cfg, &mut e), 0);
        assert_eq!(swapdio_engine_fini(e), 0);
        assert_eq!(swapdio_engine_fini(e), -EINVAL);
        assert_eq!(swapdio_engine_fini(e), -EINVAL);
        // A new engine may get the same address: it is live again, finished once.
        let mut again = null_mut();
        assert_eq!(swapdio_engine_new(&cfg, &mut again), 0);
        assert_eq!(swapdio_engine_fini(again), 0);
        assert_eq!(swapdio_engine_fini(again), -EINVAL);
    }
}

#[test]
fn engine_without_sync_slots_is_einval() {
    let f = Fixture::new();
    let mut cfg = config_without_storage(&f);
    cfg.storage_config.sync = 0;
    let mut out = null_mut();
    // SAFETY: a valid config.
    assert_eq!(unsafe { swapdio_engine_new(&cfg, &mut out) }, -EINVAL);
    assert!(out.is_null());
}

/// `swapdio_engine_init` checks a C caller's map as activation does: in device mode two
/// entries on the same device bytes (slots 8 and 40 at one position) are `-EINVAL`, the
/// same entries in file mode are accepted, as are the fixture's.
#[test]
fn engine_init_refuses_a_device_map_with_two_entries_on_the_same_bytes() {
    let mut f = Fixture::new();
    let overlapping = [
        swapdio_map_entry { first_slot: 0, pages: 8, start: 0 },
        swapdio_map_entry { first_slot: 8, pages: 32, start: 100 * PAGE },
        swapdio_map_entry { first_slot: 40, pages: 24, start: 100 * PAGE },
    ];
    let mem = engine_block();
    let storage = Block::new(swapdio_mem_layout { size: f.storage.layout.size(), align: f.storage.layout.align() });
    for (mode, want) in [(swapdio_mode::Device, -EINVAL), (swapdio_mode::File, 0)] {
        let cfg = swapdio_engine_config {
            map: overlapping.as_ptr(),
            map_entries: overlapping.len(),
            storage: storage.ptr.cast(),
            mode: mode as u32,
            ..f.config()
        };
        let caps = if mode == swapdio_mode::File { SWAPDIO_CAP_SWAP_RW | DEVICE_CAPS } else { DEVICE_CAPS };
        let ops = swapdio_backend_ops { caps, ..backend_ops() };
        let cfg = swapdio_engine_config { backend: &ops, ..cfg };
        let mut out = null_mut();
        // SAFETY: memory sized by the library's layouts; map and ops outlive the engine.
        let rc = unsafe { swapdio_engine_init(mem.ptr.cast(), mem.layout.size(), &cfg, &mut out) };
        assert_eq!(rc, want, "{mode:?}");
        if rc == 0 {
            // SAFETY: a live engine, finished once.
            assert_eq!(unsafe { swapdio_engine_fini(out) }, 0);
        }
    }
}

/// A block device whose header lists bad pages 5 and 6 through the C ABI: the report
/// carries `bad_pages`, the map leaves them out, and the engine refuses a write to one
/// (or a large folio across one) with `-EINVAL`, the folio untouched, nothing submitted.
#[test]
fn block_device_bad_pages_are_reported_and_never_written_through_the_c_abi() {
    let mut f = Fixture::new();
    let mut hdr = header(64);
    hdr[1032..1036].copy_from_slice(&2u32.to_ne_bytes());
    hdr[1536..1540].copy_from_slice(&6u32.to_ne_bytes());
    hdr[1540..1544].copy_from_slice(&5u32.to_ne_bytes());
    let act = swapdio_activation { layout: swapdio_layout::BlockDevice as u32, nr_extents: 0, ..activation(&hdr, &[]) };
    let mut map = vec![swapdio_map_entry::default(); 3];
    let mut rep = swapdio_activation_report::default();
    // SAFETY: every pointer is valid for the lengths given.
    assert_eq!(unsafe { swapdio_activate(&act, map.as_mut_ptr(), 1, &mut rep) }, -12, "1 + nr_badpages entries");
    // SAFETY: as above.
    assert_eq!(unsafe { swapdio_activate(&act, map.as_mut_ptr(), map.len(), &mut rep) }, 0, "{rep:?}");
    assert_eq!((rep.bad_pages, rep.usable_pages, rep.extents, rep.map_entries), (2, 61, 1, 2));
    f.map = map;
    f.report = rep;
    let mem = engine_block();
    let storage = Block::new(swapdio_mem_layout { size: f.storage.layout.size(), align: f.storage.layout.align() });
    let (rc, e) = second_engine(&mut f, storage.ptr.cast(), &mem);
    assert_eq!(rc, 0);
    for folio in [folio(1, 5, 1), folio(2, 6, 1), folio(3, 4, 4)] {
        f.world.pages.prepare_write(FolioId(folio.id));
        // SAFETY: a live engine, valid folio, no plug.
        let rc = unsafe { swapdio_write(e, null_mut(), &folio, swapdio_fs_context::MayEnterFs as u32) };
        assert_eq!(rc, -EINVAL);
        let s = f.world.pages.state(FolioId(folio.id));
        assert!(s.locked && s.dirty && !s.writeback && s.pins == 0, "untouched: {s:?}");
    }
    assert!(f.world.seen.lock().unwrap().is_empty(), "nothing submitted");
    // SAFETY: a live engine, idle, finished once.
    assert_eq!(unsafe { swapdio_engine_fini(e) }, 0);
}
