//! The engine's API contracts, tried as a careless caller would (issue 9): storage
//! shared by two engines, a plug copied and finished twice, forged and stale request
//! ids, an engine with no sync slot. Each test is named after the promise it pins; the
//! same promises through the C ABI are in `ffi/tests/bad_input.rs` and the C harness.

use std::sync::Arc;
use swapdio::testkit::*;
use swapdio::*;

const MAY: FsContext = FsContext::MayEnterFs;

fn world() -> TestWorld {
    TestWorld::new(BackendCaps::BLOCK_DEVICE, 256 * PAGE_SIZE)
}

fn linear(n: u64) -> SwapMap<Vec<MapEntry>> {
    device_map(&[(n, 100)]).unwrap()
}

fn queue_all(w: &TestWorld) {
    w.dev.set_script(Arc::new(|_: &Request<'_>| Action::Queue(None)));
}

fn assert_clean(w: &TestWorld) {
    assert_eq!(w.pages.violations(), Vec::<String>::new());
    assert_eq!(w.pages.pins_held(), 0, "pins still held");
}

// ---- item 1: one storage, one engine -------------------------------------------------

#[test]
fn storage_used_by_a_live_engine_is_refused_even_when_every_request_is_free() {
    let w = world();
    let storage = OwnedStorage::new(StorageConfig::default()).unwrap();
    let a = Engine::new(linear(16), &storage, &w.dev, &w.pages).unwrap();
    // Nothing in flight, yet the storage belongs to `a`.
    assert_eq!(Engine::new(linear(16), &storage, &w.dev, &w.pages).err(), Some(EngineError::StorageInUse));
    queue_all(&w);
    let f = Folio::small(1, 3);
    w.prepare_write(f, 7);
    a.write(None, f, MAY).unwrap();
    assert_eq!(Engine::new(linear(16), &storage, &w.dev, &w.pages).err(), Some(EngineError::StorageInUse));
    // `a`'s request survived the refused engine: its completion is accepted once.
    let q = w.dev.take_queued();
    assert_eq!(q.len(), 1);
    a.complete(q[0].0, q[0].1).unwrap();
    assert!(!w.pages.state(f.id).writeback);
    a.deactivate().unwrap();
    drop(a);
    // Dropping the engine releases the claim: the storage serves a new engine.
    let b = Engine::new(linear(16), &storage, &w.dev, &w.pages).unwrap();
    assert_eq!(b.pool_free(), StorageConfig::default().pool);
    assert_clean(&w);
}

#[test]
fn storage_with_a_request_not_free_is_refused_and_not_claimed() {
    let w = world();
    let storage = OwnedStorage::new(StorageConfig::default()).unwrap();
    let a = Engine::new(linear(16), &storage, &w.dev, &w.pages).unwrap();
    queue_all(&w);
    let f = Folio::small(1, 3);
    w.prepare_write(f, 7);
    a.write(None, f, MAY).unwrap();
    // `a` is forgotten (never dropped): its claim stays, so nothing can reuse the storage
    // while its request is in flight.
    std::mem::forget(a);
    assert_eq!(Engine::new(linear(16), &storage, &w.dev, &w.pages).err(), Some(EngineError::StorageInUse));
}

// ---- item 2: a plug cannot submit a batch twice --------------------------------------

static_assertions::assert_not_impl_any!(PlugState<'static>: Clone, Copy);

/// A bitwise copy of a plug, as C's struct assignment makes one.
fn copy_of<'e>(plug: &PlugState<'e>) -> PlugState<'e> {
    // SAFETY: `PlugState` holds plain integers and a shared borrow of its engine, and
    // owns no resource; the copy is what the engine must detect (a stale copy's drop
    // submits nothing).
    unsafe { std::ptr::read(plug) }
}

#[test]
fn copied_plug_finished_twice_submits_its_batch_once() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    let mut plug = PlugState::new();
    for i in 1..=3u64 {
        let f = Folio::small(i, i);
        w.prepare_write(f, 1);
        e.write(Some(&mut plug), f, MAY).unwrap();
    }
    let mut copy = copy_of(&plug);
    e.finish_plug(&mut plug).unwrap();
    assert_eq!(e.finish_plug(&mut copy), Err(SwapError::StalePlug));
    assert_eq!(copy.held_folios(), 0, "the stale batch is forgotten");
    assert_eq!(w.dev.seen().len(), 1, "the backend saw one request");
    for i in 1..=3u64 {
        let s = w.pages.state(FolioId(i));
        assert_eq!((s.writeback_ends, s.pins), (1, 0), "folio {i}: ended once, pins balanced");
    }
    assert_eq!(e.in_flight(), 0);
    assert_clean(&w);
}

#[test]
fn stale_plug_copy_cannot_add_to_a_batch_and_leaves_the_folio_untouched() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    let mut plug = PlugState::new();
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(Some(&mut plug), f, MAY).unwrap();
    let mut copy = copy_of(&plug);
    // The original moves on; the copy, one folio behind, is refused before touching its folio.
    let g = Folio::small(2, 2);
    w.prepare_write(g, 1);
    e.write(Some(&mut plug), g, MAY).unwrap();
    let h = Folio::small(3, 2);
    w.prepare_write(h, 1);
    assert_eq!(e.write(Some(&mut copy), h, MAY), Err(SwapError::StalePlug));
    let s = w.pages.state(h.id);
    assert!(s.locked && s.dirty && !s.writeback && s.pins == 0, "refused folio touched: {s:?}");
    assert_eq!(copy.held_folios(), 0);
    // The copy is usable again: it starts a batch of its own.
    let k = Folio::small(4, 20);
    w.prepare_write(k, 1);
    e.write(Some(&mut copy), k, MAY).unwrap();
    e.finish_plug(&mut copy).unwrap();
    e.finish_plug(&mut plug).unwrap();
    let sizes: Vec<usize> = w.dev.seen().iter().map(|r| r.segments.len()).collect();
    assert_eq!(sizes, vec![1, 2]);
    assert_eq!(e.in_flight(), 0);
    assert_clean(&w);
}

#[test]
fn copy_that_moved_on_wins_and_the_original_is_stale() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    let mut plug = PlugState::new();
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(Some(&mut plug), f, MAY).unwrap();
    let mut copy = copy_of(&plug);
    let g = Folio::small(2, 2);
    w.prepare_write(g, 1);
    e.write(Some(&mut copy), g, MAY).unwrap();
    assert_eq!(e.finish_plug(&mut plug), Err(SwapError::StalePlug));
    e.finish_plug(&mut copy).unwrap();
    assert_eq!(w.dev.seen().len(), 1);
    assert_eq!(w.dev.seen()[0].segments.len(), 2);
    assert_eq!(e.in_flight(), 0);
    assert_clean(&w);
}

#[test]
fn copy_of_a_submitted_batch_is_stale_after_the_slot_is_reused() {
    let w = world();
    // One request: the slot is reused at once, under a new generation.
    let e = w.engine(linear(64), StorageConfig { pool: 1, sync: 1, splits: 1 }).unwrap();
    let mut plug = PlugState::new();
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(Some(&mut plug), f, MAY).unwrap();
    let mut copy = copy_of(&plug);
    e.finish_plug(&mut plug).unwrap();
    let g = Folio::small(2, 9);
    w.prepare_write(g, 1);
    e.write(Some(&mut plug), g, MAY).unwrap();
    assert_eq!(e.finish_plug(&mut copy), Err(SwapError::StalePlug));
    e.finish_plug(&mut plug).unwrap();
    assert_eq!(w.dev.seen().len(), 2);
    assert_clean(&w);
}

// ---- item 3: request ids ------------------------------------------------------------

#[test]
fn request_id_with_a_bit_outside_index_and_generation_is_malformed() {
    let w = world();
    queue_all(&w);
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(None, f, MAY).unwrap();
    let (id, r) = w.dev.take_queued()[0];
    let raw = id.to_u64();
    assert_eq!(raw >> 63, 0, "bit 63 is never set by the engine");
    assert_eq!(RequestId::from_u64(raw | 1 << 63), Err(MalformedId(raw | 1 << 63)));
    // Every other flipped bit names another request: refused, nothing done.
    let mut unknown = 0;
    for bit in 0..63 {
        let forged = RequestId::from_u64(raw ^ 1 << bit).unwrap();
        match e.complete(forged, Ok(PAGE_SIZE as u64)) {
            Err(CompleteError::UnknownRequest(_)) => unknown += 1,
            Err(CompleteError::NotInFlight { .. }) => {}
            Ok(()) => panic!("bit {bit} flipped accepted"),
        }
    }
    assert!(w.pages.state(f.id).writeback, "a forged id completed the real request");
    e.complete(id, r).unwrap();
    assert_eq!(e.stats().rejected_completions + unknown, 63);
    assert_clean(&w);
}

#[test]
fn request_id_packs_16_bit_index_and_47_bit_generation_and_round_trips() {
    let id = RequestId::new(MAX_REQUEST_SLOTS - 1, (1 << 47) - 1).unwrap();
    assert_eq!(id.to_u64(), u64::MAX >> 1);
    assert_eq!(RequestId::from_u64(id.to_u64()), Ok(id));
    assert_eq!(RequestId::new(MAX_REQUEST_SLOTS, 0), None);
    assert_eq!(RequestId::new(0, 1 << 47), None);
    assert_eq!((id.index(), id.generation()), (0xffff, (1 << 47) - 1));
}

#[test]
fn more_slots_than_ids_can_name_are_refused() {
    let too_many = StorageConfig { pool: MAX_REQUEST_SLOTS, sync: 1, splits: 0 };
    assert_eq!(OwnedStorage::new(too_many).err(), Some(EngineError::TooManySlots));
}

#[test]
fn stale_id_is_refused_across_many_reuses_of_its_slot() {
    let w = world();
    queue_all(&w);
    let e = w.engine(linear(64), StorageConfig { pool: 1, sync: 1, splits: 1 }).unwrap();
    let mut first = None;
    for i in 0..1000u64 {
        let f = Folio::small(i + 1, 1 + i % 60);
        w.prepare_write(f, 1);
        e.write(None, f, MAY).unwrap();
        let (id, r) = w.dev.take_queued()[0];
        let stale = *first.get_or_insert(id);
        if i > 0 {
            assert_eq!(id.index(), stale.index());
            assert_eq!(id.generation(), stale.generation() + i, "one generation per use");
            assert!(e.complete(stale, Ok(PAGE_SIZE as u64)).is_err(), "stale id accepted after {i} reuses");
        }
        e.complete(id, r).unwrap();
    }
    assert_clean(&w);
}

// ---- item 6: an engine whose sync path could never run -------------------------------

#[test]
fn engine_without_sync_slots_is_refused_at_setup() {
    let w = world();
    let r = w.engine(linear(16), StorageConfig { pool: 4, sync: 0, splits: 1 });
    assert_eq!(r.err(), Some(EngineError::NoSyncSlots));
}

/// Dropping a `PlugState` that holds a batch submits it (`blk_finish_plug`): nothing is
/// stranded, `deactivate` drains once the request completes. The plug borrows its
/// engine, so it cannot outlive it (a compile error, not a runtime check).
#[test]
fn dropped_plug_state_submits_its_batch_and_nothing_is_stranded() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    queue_all(&w);
    {
        let mut plug = PlugState::new();
        for i in 1..=3u64 {
            let f = Folio::small(i, i);
            w.prepare_write(f, 1);
            e.write(Some(&mut plug), f, MAY).unwrap();
        }
        assert_eq!(plug.held_folios(), 3);
        assert!(w.dev.seen().is_empty(), "held, not yet submitted");
    }
    assert_eq!(w.dev.seen().len(), 1, "the drop submitted the batch");
    assert_eq!(w.dev.seen()[0].segments.len(), 3);
    for (id, result) in w.dev.take_queued() {
        e.complete(id, result).unwrap();
    }
    assert_eq!(e.deactivate(), Ok(()));
    for i in 1..=3u64 {
        let s = w.pages.state(FolioId(i));
        assert_eq!((s.writeback, s.writeback_ends, s.pins), (false, 1, 0), "folio {i}");
    }
    assert_clean(&w);
}

/// A stale copy's drop submits nothing: the batch goes out once, through the copy that
/// is current, whichever of the two is dropped first.
#[test]
fn dropping_a_stale_plug_copy_submits_nothing() {
    for current_first in [true, false] {
        let w = world();
        let e = w.engine(linear(64), StorageConfig::default()).unwrap();
        let mut plug = PlugState::new();
        let f = Folio::small(1, 1);
        w.prepare_write(f, 1);
        e.write(Some(&mut plug), f, MAY).unwrap();
        let stale = copy_of(&plug);
        let g = Folio::small(2, 2);
        w.prepare_write(g, 1);
        e.write(Some(&mut plug), g, MAY).unwrap();
        if current_first {
            drop(plug);
            drop(stale);
        } else {
            drop(stale);
            drop(plug);
        }
        assert_eq!(w.dev.seen().len(), 1, "one request");
        assert_eq!(w.dev.seen()[0].segments.len(), 2, "the current batch, both folios");
        assert_eq!(e.in_flight(), 0);
        assert_clean(&w);
    }
}

// ---- item 5: no panic reachable from a caller's numbers -------------------------------

/// `TrimLoss::total` near `u64::MAX` is `None`, never an overflow panic (debug) or a
/// wrapped sum (release).
#[test]
fn trim_loss_total_past_u64_max_is_none_never_a_wrapped_sum() {
    let near = TrimLoss { misaligned: u64::MAX - 1, too_short: 1, beyond_header: 0, file_tail: 0 };
    assert_eq!(near.total(), Some(u64::MAX));
    for over in [
        TrimLoss { misaligned: u64::MAX, too_short: 1, ..TrimLoss::default() },
        TrimLoss { beyond_header: u64::MAX, file_tail: u64::MAX, ..TrimLoss::default() },
        TrimLoss { misaligned: u64::MAX, too_short: u64::MAX, beyond_header: u64::MAX, file_tail: u64::MAX },
    ] {
        assert_eq!(over.total(), None, "{over:?}");
    }
}

/// Huge request counts are typed errors: too many slots for the ids, or no memory;
/// never a `capacity overflow` panic.
#[test]
fn owned_storage_with_huge_counts_is_a_typed_error_never_a_panic() {
    for config in [
        StorageConfig { pool: usize::MAX, sync: 1, splits: 0 },
        StorageConfig { pool: 1, sync: usize::MAX, splits: 0 },
        StorageConfig { pool: usize::MAX, sync: usize::MAX, splits: usize::MAX },
        StorageConfig { pool: 1, sync: 1, splits: usize::MAX },
        StorageConfig { pool: 1, sync: 1, splits: MAX_REQUEST_SLOTS + 1 },
    ] {
        assert_eq!(OwnedStorage::new(config).err(), Some(EngineError::TooManySlots), "{config:?}");
    }
    assert!(OwnedStorage::new(StorageConfig { pool: 1, sync: 1, splits: MAX_REQUEST_SLOTS }).is_ok());
}

// ---- item 7: a block device's bad pages are never I/O targets -------------------------

/// A block device whose header lists bad pages 5 and 6: activation leaves them out of
/// the map, and the engine refuses every write or read touching one (small folio, a
/// large folio across one, sync and plugged I/O) with `MapError::BadSlot`, the folio
/// untouched and nothing sent to the backend; the neighbours work.
#[test]
fn engine_never_does_io_to_a_bad_page_of_a_block_device() {
    let mut page = vec![0u8; PAGE_SIZE];
    let h = SwapHeader { nr_badpages: 2, ..SwapHeader::new(64, [1; 16], [0; 16]).unwrap() };
    h.write(&mut page).unwrap();
    page[1536..1540].copy_from_slice(&6u32.to_ne_bytes());
    page[1540..1544].copy_from_slice(&5u32.to_ne_bytes());
    let req = ActivationRequest::new(&page, 64 * PAGE_SIZE as u64, Layout::BlockDevice, 7, BackendCaps::BLOCK_DEVICE);
    assert_eq!(req.map_capacity(), 3);
    let (map, report) = activate_owned(&req).unwrap();
    assert_eq!((report.bad_pages, report.usable_pages, report.extents), (2, 61, 1));
    assert_eq!(map.entries().len(), 2);
    assert!(!map.is_usable(5) && !map.is_usable(6) && map.is_usable(4) && map.is_usable(7));
    let w = TestWorld::new(BackendCaps::BLOCK_DEVICE, 64 * PAGE_SIZE);
    let e = w.engine(map, StorageConfig::default()).unwrap();
    let bad = |slot| Err(SwapError::Map(MapError::BadSlot { slot }));
    let mut plug = PlugState::new();
    for (folio, first_bad) in [(Folio::small(1, 5), 5), (Folio::small(2, 6), 6), (Folio::large(3, 4, 4), 5)] {
        w.prepare_write(folio, 9);
        assert_eq!(e.write(None, folio, MAY), bad(first_bad));
        assert_eq!(e.write(Some(&mut plug), folio, MAY), bad(first_bad));
        assert_eq!(e.write_sync(folio, MAY, || {}), bad(first_bad));
        let s = w.pages.state(folio.id);
        assert!(s.locked && s.dirty && !s.writeback && s.pins == 0, "folio untouched: {s:?}");
        assert_eq!(e.read_sync(folio, || {}), bad(first_bad));
    }
    assert_eq!(bad(5).unwrap_err().errno(), Errno::EINVAL);
    assert!(w.dev.seen().is_empty(), "nothing reached the backend");
    for (id, slot) in [(10, 4), (11, 7)] {
        let f = Folio::small(id, slot);
        w.prepare_write(f, 1);
        e.write(Some(&mut plug), f, MAY).unwrap();
    }
    e.finish_plug(&mut plug).unwrap();
    let seen: Vec<u64> = w.dev.seen().iter().map(|r| r.pos / PAGE_SIZE as u64).collect();
    assert_eq!(seen, vec![4, 7], "good neighbours at their own positions, never merged across the bad pages");
    assert_clean(&w);
}
