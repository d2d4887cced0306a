//! The swap I/O state machine's request rules (docs/swap-rules.md §4-§5): the request
//! pool, sync requests, plugging of adjacent folios, large folios split across extents,
//! request flags and pins; driven by the testkit's scripted `MemDevice` and
//! rule-checking `MemPages`. Every test ends by checking that no page rule was broken
//! and every pin was dropped.

#[allow(dead_code, unused_imports)]
mod engine_common;

use engine_common::*;

// ---- §4 pool ------------------------------------------------------------------------------

/// An empty pool never makes the engine wait while it holds a batch: the held batch is
/// submitted, then `WouldBlock` is returned with the folio untouched; after completions
/// the same call succeeds.
#[test]
fn pool_exhaustion_submits_held_batch_then_would_block_with_folio_untouched() {
    let w = world();
    let e = w.engine(linear(64), cfg(2, 1, 1)).unwrap();
    queue_all(&w);
    let mut plug = PlugState::new();
    for (id, slot) in [(1, 1), (2, 2), (3, 10)] {
        let f = Folio::small(id, slot);
        w.prepare_write(f, 1);
        e.write(Some(&mut plug), f, MAY).unwrap();
    }
    // Batch [1,2] submitted when 10 came; 10 is held in the second (last) request.
    assert_eq!((w.dev.seen().len(), plug.held_folios(), e.pool_free()), (1, 1, 0));
    let f = Folio::small(4, 20);
    w.prepare_write(f, 1);
    assert_eq!(e.write(Some(&mut plug), f, MAY), Err(SwapError::WouldBlock));
    // "Not started, folio untouched" is told apart from a transient I/O failure.
    assert_ne!(SwapError::WouldBlock.errno(), SwapError::Io(IoFailure::Errno(Errno::EAGAIN)).errno());
    // The held batch went out first; the folio was not touched.
    assert_eq!((w.dev.seen().len(), plug.held_folios()), (2, 0));
    assert_eq!(write_state(&w, f.id), UNTOUCHED_WRITE);
    assert_eq!(w.pages.counted_pages().0, 3, "no SwapOut for the refused folio");
    assert_eq!(w.pages.pins_taken(f.id), 0);
    // Reads, sync slots aside, meet the same empty pool.
    let r = Folio::small(5, 30);
    w.prepare_read(r);
    assert_eq!(e.read(None, r), Err(SwapError::WouldBlock));
    assert_eq!(read_state(&w, r.id), UNTOUCHED_READ);
    assert_eq!(e.stats().would_block, 2);
    // Completions free the pool: the same calls now succeed.
    assert_eq!(deliver(&w, &e), 2);
    assert_eq!(e.pool_free(), 2);
    e.write(Some(&mut plug), f, MAY).unwrap();
    e.read(Some(&mut plug), r).unwrap();
    e.finish_plug(&mut plug).unwrap();
    assert_eq!(deliver(&w, &e), 2);
    assert_eq!(write_state(&w, f.id), WROTE);
    assert_eq!(read_state(&w, r.id), READ_OK);
    assert_clean(&w);
}

/// `swap_write_unplug` before `mempool_alloc`: with a pool of one, a held batch must be
/// submitted (and here completed inline) before the next request is taken.
#[test]
fn plug_submits_held_batch_before_taking_a_new_request() {
    let w = world();
    let e = w.engine(linear(64), cfg(1, 1, 1)).unwrap();
    let mut plug = e.plug();
    for (id, slot) in [(1, 1), (2, 9), (3, 20), (4, 21)] {
        let f = Folio::small(id, slot);
        w.prepare_write(f, 1);
        plug.write(f, MAY).unwrap();
    }
    drop(plug);
    assert_eq!(w.dev.seen().iter().map(|r| r.segments.len()).collect::<Vec<_>>(), vec![1, 1, 2]);
    assert_clean(&w);
}

// ---- §4 sync requests ---------------------------------------------------------------------

#[test]
fn sync_write_and_read_carry_sync_flag_wait_and_return_the_result() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    // Inline: no wait needed.
    let f = Folio::large(1, 4, 2);
    w.prepare_write(f, 0x44);
    e.write_sync(f, MAY, || panic!("an inline completion needs no wait")).unwrap();
    assert_eq!(write_state(&w, f.id), WROTE);
    // Queued and completed by another thread while the caller waits.
    queue_all(&w);
    let waits = AtomicUsize::new(0);
    let r = Folio::large(2, 4, 2);
    w.prepare_read(r);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let completer = s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                for (id, res) in w.dev.take_queued() {
                    e.complete(id, res).unwrap();
                }
                std::thread::yield_now();
            }
        });
        let got = e.read_sync(r, || {
            assert!(!completer.is_finished(), "the completer thread died");
            waits.fetch_add(1, Ordering::Relaxed);
            std::thread::yield_now();
        });
        done.store(true, Ordering::Release);
        got.unwrap();
    });
    assert!(waits.load(Ordering::Relaxed) > 0, "the caller waited");
    assert_eq!(read_state(&w, r.id), READ_OK);
    assert_eq!(w.mem.get(r.id), w.mem.get(f.id));
    // A short sync write returns the short failure and redirties.
    script(&w, |req: &Request<'_>| Action::Inline(Some(Ok(req.len() - 1))));
    let g = Folio::small(3, 8);
    w.prepare_write(g, 1);
    assert_eq!(e.write_sync(g, MAY, || {}), Err(SwapError::Io(IoFailure::Short { done: P - 1, expected: P })));
    assert_eq!(write_state(&w, g.id), WRITE_FAILED);
    let seen = w.dev.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.flags == ReqFlags::SWAP | ReqFlags::SYNC));
    assert_eq!(e.stats().requests_completed, 3);
    assert_eq!(e.in_flight(), 0);
    assert_clean(&w);
}

// ---- §4 plug -----------------------------------------------------------------------------

#[test]
fn plug_merges_exactly_adjacent_folios_into_one_request() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    {
        let mut plug = e.plug();
        for (id, slot, pages) in [(1, 3, 1), (2, 4, 4), (3, 8, 1)] {
            let f = Folio::large(id, slot, pages);
            w.prepare_write(f, 1);
            plug.write(f, MAY).unwrap();
        }
        assert_eq!(w.dev.seen().len(), 0, "held until the batch ends");
        assert_eq!(plug.held_folios(), 3);
    }
    let seen = w.dev.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].pos, seen[0].len), (103 * P, 6 * P));
    let segs: Vec<_> = seen[0].segments.iter().map(|s| (s.folio.0, s.offset, s.len)).collect();
    // Each bvec is the whole folio.
    assert_eq!(segs, vec![(1, 0, 4096), (2, 0, 4 * 4096), (3, 0, 4096)]);
    assert_clean(&w);
}

#[test]
fn plug_flushes_when_next_folio_is_not_adjacent() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    {
        let mut plug = e.plug();
        // 5 after 3 leaves a gap; 4 after 5 goes backwards.
        for (id, slot) in [(1, 2), (2, 3), (3, 5), (4, 4)] {
            let f = Folio::small(id, slot);
            w.prepare_write(f, 1);
            plug.write(f, MAY).unwrap();
        }
    }
    let batches: Vec<Vec<u64>> = w.dev.seen().iter().map(|r| r.segments.iter().map(|s| s.folio.0).collect()).collect();
    assert_eq!(batches, vec![vec![1, 2], vec![3], vec![4]]);
    assert_clean(&w);
}

/// Adjacency is exact adjacency in the active address space (physical bytes in device
/// mode), not in slot numbers.
#[test]
fn plug_adjacency_is_in_the_address_space_not_in_slot_numbers() {
    let w = world();
    // Slot 3 is page 103, slot 4 page 200, slot 8 page 104.
    let e = w.engine(device_map(&[(4, 100), (4, 200), (4, 104)]).unwrap(), StorageConfig::default()).unwrap();
    {
        let mut plug = e.plug();
        for (id, slot) in [(1, 3), (2, 8), (3, 4)] {
            let f = Folio::small(id, slot);
            w.prepare_write(f, 1);
            plug.write(f, MAY).unwrap();
        }
    }
    let seen = w.dev.seen();
    let batches: Vec<(u64, Vec<u64>)> =
        seen.iter().map(|r| (r.pos / P, r.segments.iter().map(|s| s.folio.0).collect())).collect();
    assert_eq!(batches, vec![(103, vec![1, 2]), (200, vec![3])]);
    assert_clean(&w);
}

#[test]
fn plug_flushes_when_32_folios_are_held() {
    let w = world();
    let e = w.engine(linear(128), StorageConfig::default()).unwrap();
    let mut plug = e.plug();
    for i in 1..=31u64 {
        let f = Folio::small(i, i);
        w.prepare_write(f, 1);
        plug.write(f, MAY).unwrap();
    }
    assert_eq!((w.dev.seen().len(), plug.held_folios()), (0, 31));
    let f = Folio::small(32, 32);
    w.prepare_write(f, 1);
    plug.write(f, MAY).unwrap();
    assert_eq!((w.dev.seen().len(), plug.held_folios()), (1, 0), "full at 32 folios: submitted");
    assert_eq!(w.dev.seen()[0].segments.len(), MAX_SEGMENTS);
    let f = Folio::small(33, 33);
    w.prepare_write(f, 1);
    plug.write(f, MAY).unwrap();
    assert_eq!(plug.held_folios(), 1);
    drop(plug);
    assert_eq!(w.dev.seen().iter().map(|r| r.segments.len()).collect::<Vec<_>>(), vec![32, 1]);
    assert_clean(&w);
}

#[test]
fn no_plug_submits_each_folio_at_once() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    for i in 1..=4u64 {
        let f = Folio::small(i, i);
        w.prepare_write(f, 1);
        e.write(None, f, MAY).unwrap();
        assert_eq!(w.dev.seen().len(), i as usize);
    }
    assert!(w.dev.seen().iter().all(|r| r.segments.len() == 1));
    assert_clean(&w);
}

#[test]
fn plug_drop_and_finish_plug_submit_the_held_batch() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    let mut state = PlugState::new();
    for i in 1..=3u64 {
        let f = Folio::small(i, i);
        w.prepare_write(f, 1);
        e.write(Some(&mut state), f, MAY).unwrap();
    }
    assert_eq!((w.dev.seen().len(), e.in_flight()), (0, 1), "a held batch owns one request");
    e.finish_plug(&mut state).unwrap();
    assert_eq!((w.dev.seen().len(), state.held_folios()), (1, 0));
    e.finish_plug(&mut state).unwrap(); // nothing held: nothing submitted
    assert_eq!(w.dev.seen().len(), 1);
    {
        let mut plug = e.plug();
        let r = Folio::small(10, 2);
        w.prepare_read(r);
        plug.read(r).unwrap();
        assert_eq!(w.dev.seen().len(), 1);
    }
    assert_eq!(w.dev.seen().len(), 2);
    assert_eq!(read_state(&w, FolioId(10)), READ_OK);
    assert_clean(&w);
}

#[test]
fn plug_flushes_on_direction_change() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    {
        let mut plug = e.plug();
        let f = Folio::small(1, 1);
        w.prepare_write(f, 1);
        plug.write(f, MAY).unwrap();
        // Slot 2 is adjacent to slot 1, but a read cannot join a write batch.
        let r = Folio::small(2, 2);
        w.prepare_read(r);
        plug.read(r).unwrap();
        let f = Folio::small(3, 3);
        w.prepare_write(f, 1);
        plug.write(f, MAY).unwrap();
    }
    let dirs: Vec<_> = w.dev.seen().iter().map(|r| (r.dir, r.segments.len())).collect();
    assert_eq!(dirs, vec![(Direction::Write, 1), (Direction::Read, 1), (Direction::Write, 1)]);
    assert_clean(&w);
}

#[test]
fn plug_state_belongs_to_one_engine() {
    let w = world();
    let a = w.engine(linear(16), StorageConfig::default()).unwrap();
    let b = w.engine(linear(16), StorageConfig::default()).unwrap();
    let mut state = PlugState::new();
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    a.write(Some(&mut state), f, MAY).unwrap();
    let g = Folio::small(2, 2);
    w.prepare_write(g, 1);
    assert_eq!(b.write(Some(&mut state), g, MAY), Err(SwapError::ForeignPlug));
    assert_eq!(b.finish_plug(&mut state), Err(SwapError::ForeignPlug));
    assert_eq!(write_state(&w, g.id), UNTOUCHED_WRITE);
    a.finish_plug(&mut state).unwrap();
    assert_clean(&w);
}

/// A folio never spans two extents in one request: it is split, each part carries one
/// pin, and the folio's page actions run once, when the last part completes.
#[test]
fn large_folio_across_extent_boundary_is_split_one_pin_per_request_page_actions_once() {
    let w = world();
    let e = w.engine(device_map(&[(8, 100), (8, 300), (8, 500)]).unwrap(), StorageConfig::default()).unwrap();
    queue_all(&w);
    let mut plug = e.plug();
    let small = Folio::small(1, 5); // page 105, adjacent to the folio's first part
    w.prepare_write(small, 1);
    plug.write(small, MAY).unwrap();
    let big = Folio::large(2, 6, 12); // slots 6..18: pages 106-107, 300-307, 500-501
    w.prepare_write(big, 0x20);
    plug.write(big, MAY).unwrap();
    drop(plug);
    let seen = w.dev.seen();
    let shape: Vec<_> = seen
        .iter()
        .map(|r| (r.pos / P, r.segments.iter().map(|s| (s.folio.0, s.offset, s.len)).collect::<Vec<_>>()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (105, vec![(1, 0, 4096)]),
            (106, vec![(2, 0, 2 * 4096)]),
            (300, vec![(2, 2 * 4096, 8 * 4096)]),
            (500, vec![(2, 10 * 4096, 2 * 4096)]),
        ]
    );
    assert_eq!((w.pages.pins_taken(big.id), w.pages.state(big.id).pins), (3, 3));
    assert_eq!(w.pages.events().iter().filter(|e| **e == SwapEvent::SwapOut { pages: 12 }).count(), 1);
    let q = w.dev.take_queued();
    for (k, &(id, r)) in q.iter().enumerate() {
        e.complete(id, r).unwrap();
        let s = w.pages.state(big.id);
        let last = k == q.len() - 1;
        assert_eq!((s.writeback, s.writeback_ends), (!last, u32::from(last)), "after part {k}");
    }
    assert_eq!(write_state(&w, big.id), WROTE);
    assert_eq!(w.dev.read_bytes(300 * P, 8 * PAGE_SIZE), w.mem.get(big.id).unwrap()[2 * PAGE_SIZE..10 * PAGE_SIZE]);

    // Read it back the same way, synchronously.
    let back = Folio::large(3, 6, 12);
    w.prepare_read(back);
    e.read_sync(back, || {
        deliver(&w, &e);
    })
    .unwrap();
    assert_eq!(read_state(&w, back.id), READ_OK);
    assert_eq!(w.pages.pins_taken(back.id), 3);
    assert_eq!(w.mem.get(back.id), w.mem.get(big.id));
    assert_eq!(w.pages.counted_pages(), (13, 12));
    assert_clean(&w);
}

/// One failed part fails the whole split folio, once.
#[test]
fn split_folio_with_one_failed_part_fails_once() {
    let w = world();
    let e = w.engine(device_map(&[(8, 100), (8, 300)]).unwrap(), StorageConfig::default()).unwrap();
    script(
        &w,
        |r: &Request<'_>| {
            if r.pos() == 300 * P {
                Action::Inline(Some(Err(Errno::ENOSPC)))
            } else {
                Action::Inline(None)
            }
        },
    );
    let big = Folio::large(1, 6, 4);
    w.prepare_write(big, 1);
    e.write(None, big, MAY).unwrap();
    assert_eq!(write_state(&w, big.id), WRITE_FAILED);
    assert_eq!(write_failures(&w), vec![(big.id, 4, IoFailure::Errno(Errno::ENOSPC), false)]);
    let back = Folio::large(2, 6, 4);
    w.prepare_read(back);
    e.read(None, back).unwrap();
    assert_eq!(read_state(&w, back.id), READ_FAILED);
    assert_eq!(read_failures(&w), vec![(back.id, 4, IoFailure::Errno(Errno::ENOSPC))]);
    let st = e.stats();
    // Stats agree with the events: a failed folio's pages were not swapped in.
    assert_eq!((st.write_failures, st.read_failures, st.pages_in), (1, 1, w.pages.counted_pages().1));
    assert_eq!(st.pages_in, 0);
    assert_clean(&w);
}

#[test]
fn folio_spanning_more_extents_than_requests_is_refused_untouched() {
    let w = world();
    let e = w.engine(device_map(&[(2, 100), (2, 200), (2, 300), (2, 400)]).unwrap(), cfg(2, 2, 2)).unwrap();
    let big = Folio::large(1, 1, 6);
    w.prepare_write(big, 1);
    assert_eq!(e.write(None, big, MAY), Err(SwapError::TooFragmented { parts: 4, available: 2 }));
    assert_eq!(e.write_sync(big, MAY, || {}), Err(SwapError::TooFragmented { parts: 4, available: 2 }));
    assert_eq!(write_state(&w, big.id), UNTOUCHED_WRITE);
    assert!(w.dev.seen().is_empty());
    assert_clean(&w);
}

#[test]
fn split_folio_without_a_free_split_tracker_would_block_untouched() {
    let w = world();
    let e = w.engine(device_map(&[(4, 100), (4, 200)]).unwrap(), cfg(4, 1, 1)).unwrap();
    queue_all(&w);
    let a = Folio::large(1, 2, 4);
    w.prepare_write(a, 1);
    e.write(None, a, MAY).unwrap();
    let b = Folio::large(2, 3, 2);
    w.prepare_write(b, 1);
    assert_eq!(e.write(None, b, MAY), Err(SwapError::WouldBlock));
    assert_eq!(write_state(&w, b.id), UNTOUCHED_WRITE);
    assert_eq!(e.in_flight(), 2, "the refused claim gave its requests back");
    assert_eq!(deliver(&w, &e), 2);
    e.write(None, b, MAY).unwrap();
    assert_eq!(deliver(&w, &e), 2);
    assert_eq!(write_state(&w, b.id), WROTE);
    assert_clean(&w);
}

// ---- §4 flags, §5 pins ------------------------------------------------------------------

#[test]
fn every_request_carries_the_swap_flag_and_only_sync_requests_the_sync_flag() {
    let w = world();
    let e = w.engine(device_map(&[(8, 100), (8, 300)]).unwrap(), StorageConfig::default()).unwrap();
    {
        let mut plug = e.plug();
        for i in 1..4u64 {
            let f = Folio::small(i, i);
            w.prepare_write(f, 1);
            plug.write(f, MAY).unwrap();
        }
    }
    let f = Folio::large(10, 6, 4);
    w.prepare_write(f, 1);
    e.write(None, f, MAY).unwrap();
    let r = Folio::large(11, 6, 4);
    w.prepare_read(r);
    e.read(None, r).unwrap();
    let s = Folio::large(12, 6, 4);
    w.prepare_write(s, 1);
    e.write_sync(s, MAY, || {}).unwrap();
    let t = Folio::small(13, 1);
    w.prepare_read(t);
    e.read_sync(t, || {}).unwrap();
    let flags: Vec<_> = w.dev.seen().iter().map(|r| r.flags).collect();
    let a = ReqFlags::SWAP;
    let s = ReqFlags::SWAP | ReqFlags::SYNC;
    assert_eq!(flags, vec![a, a, a, a, a, s, s, s]);
    assert_clean(&w);
}

#[test]
fn pins_are_balanced_and_the_zero_page_is_never_pinned() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    queue_all(&w);
    let zero = Folio { id: FolioId(99), slot: 2, pages: 1, zero_page: true };
    w.pages.mark_zero_page(zero.id);
    w.prepare_write(zero, 0);
    let mut plug = e.plug();
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    plug.write(f, MAY).unwrap();
    plug.write(zero, MAY).unwrap();
    let g = Folio::large(2, 3, 4);
    w.prepare_write(g, 1);
    plug.write(g, MAY).unwrap();
    drop(plug);
    // In flight: one pin per folio carried, none for the zero page.
    assert_eq!(w.pages.pins_held(), 2);
    assert_eq!(w.dev.seen()[0].segments.len(), 3, "the zero page is still written");
    deliver(&w, &e);
    assert_eq!(write_state(&w, zero.id), WROTE);
    assert_eq!(w.pages.pins_taken(zero.id), 0);
    assert_eq!(w.pages.pins_taken(f.id), 1);
    // The zero page is never read into.
    w.pages.prepare_read(zero.id);
    assert!(matches!(e.read(None, zero), Err(SwapError::InvalidFolio(_))));
    assert!(matches!(e.read_sync(zero, || {}), Err(SwapError::InvalidFolio(_))));
    // A synchronous write of the zero page is not pinned either.
    w.prepare_write(zero, 0);
    e.write_sync(zero, MAY, || {
        deliver(&w, &e);
    })
    .unwrap();
    assert_eq!(write_state(&w, zero.id), WROTE);
    assert_eq!(w.pages.pins_taken(zero.id), 0);
    assert_clean(&w);
}
