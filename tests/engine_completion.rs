//! The swap I/O state machine's completion rules (docs/swap-rules.md §4): one path for
//! `Done` and `Queued`, errno classes, short I/O per segment, refused completions, write
//! ordering and events; driven by the testkit's scripted `MemDevice` and rule-checking
//! `MemPages`. Every test ends by checking that no page rule was broken and every pin
//! was dropped.

#[allow(dead_code, unused_imports)]
mod engine_common;

use engine_common::*;

// ---- §4 submit and completion: one path for Done and Queued ---------------------------

#[test]
fn inline_done_write_ends_writeback_and_read_marks_uptodate_and_unlocks() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    let f = Folio::small(1, 5);
    w.prepare_write(f, 0xa0);
    e.write(None, f, MAY).unwrap();
    assert_eq!(write_state(&w, f.id), WROTE);
    assert_eq!(w.dev.read_bytes(105 * P, PAGE_SIZE), w.mem.get(f.id).unwrap());

    let r = Folio::small(2, 5);
    w.prepare_read(r);
    e.read(None, r).unwrap();
    assert_eq!(read_state(&w, r.id), READ_OK);
    assert_eq!(w.mem.get(r.id), w.mem.get(f.id));
    assert_eq!(w.pages.counted_pages(), (1, 1));
    let st = e.stats();
    assert_eq!((st.requests_submitted, st.requests_completed, st.pages_out, st.pages_in), (2, 2, 1, 1));
    assert_eq!(e.in_flight(), 0);
    assert_clean(&w);
}

#[test]
fn queued_request_is_completed_from_another_thread() {
    let w = world();
    let e = w.engine(linear(64), StorageConfig::default()).unwrap();
    queue_all(&w);
    let f = Folio::small(1, 7);
    w.prepare_write(f, 3);
    e.write(None, f, MAY).unwrap();
    // Queued: writeback still running, the pin held, the request in flight.
    assert_eq!(write_state(&w, f.id), WRITE_IN_FLIGHT);
    assert_eq!(e.in_flight(), 1);
    let queued = w.dev.take_queued();
    assert_eq!(queued.len(), 1);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (id, r) in queued {
                e.complete(id, r).unwrap();
            }
        });
    });
    assert_eq!(write_state(&w, f.id), WROTE);
    assert_eq!(e.in_flight(), 0);

    let r = Folio::small(2, 7);
    w.prepare_read(r);
    e.read(None, r).unwrap();
    assert_eq!(read_state(&w, r.id), (true, false, 0, 1), "queued read: still locked, pinned");
    let queued = w.dev.take_queued();
    std::thread::scope(|s| {
        s.spawn(|| {
            for (id, r) in queued {
                e.complete(id, r).unwrap();
            }
        });
    });
    assert_eq!(read_state(&w, r.id), READ_OK);
    assert_eq!(w.mem.get(r.id), w.mem.get(f.id));
    assert_clean(&w);
}

/// The backend hands the id to a completer thread and waits until `complete` has run
/// before answering `Queued`: the request must still complete exactly once and be
/// released exactly once (the submitter's reference keeps it alive until then).
#[test]
fn completion_before_submit_returns_completes_and_releases_exactly_once() {
    let w = world();
    let e = w.engine(device_map(&[(16, 100), (16, 400)]).unwrap(), cfg(4, 2, 2)).unwrap();
    queue_all(&w);
    let (tx, rx) = mpsc::channel::<(RequestId, Result<u64, Errno>)>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let ack_rx = Mutex::new(ack_rx);
    w.dev.set_on_queued(Some(Arc::new(move |id, r| {
        tx.send((id, r)).unwrap();
        ack_rx.lock().unwrap().recv().unwrap();
    })));
    let completed = std::thread::scope(|s| {
        let unhook = Unhook(&w.dev);
        let engine = &e;
        let completer = s.spawn(move || {
            let mut n = 0;
            for (id, r) in rx {
                engine.complete(id, r).unwrap();
                // The same id again, still inside submit: refused, nothing done.
                assert!(matches!(engine.complete(id, r), Err(CompleteError::NotInFlight { .. })));
                n += 1;
                ack_tx.send(()).unwrap();
            }
            n
        });
        for round in 0..3u64 {
            // Unplugged write: completed before `write` returned, slot already free.
            let f = Folio::small(10 + round, 1 + round);
            w.prepare_write(f, 7);
            e.write(None, f, MAY).unwrap();
            assert_eq!(write_state(&w, f.id), WROTE);
            assert_eq!(e.in_flight(), 0);
            // Unplugged read of it: uptodate and unlocked before `read` returned.
            let back = Folio::small(50 + round, 1 + round);
            w.prepare_read(back);
            e.read(None, back).unwrap();
            assert_eq!(read_state(&w, back.id), READ_OK);
            assert_eq!(w.mem.get(back.id), w.mem.get(f.id));
            // A plugged batch of three.
            {
                let mut plug = e.plug();
                for k in 0..3 {
                    let f = Folio::small(20 + k, 5 + k);
                    w.prepare_write(f, k as u8);
                    plug.write(f, MAY).unwrap();
                }
            }
            assert_eq!(e.in_flight(), 0);
            // A large folio split over the extent boundary (slots 14..18).
            let big = Folio::large(30, 14, 4);
            w.prepare_write(big, 9);
            e.write(None, big, MAY).unwrap();
            assert_eq!(write_state(&w, big.id), WROTE);
            // Sync write and read.
            let sf = Folio::small(40, 9);
            w.prepare_write(sf, 1);
            e.write_sync(sf, MAY, std::thread::yield_now).unwrap();
            assert_eq!(write_state(&w, sf.id), WROTE);
            let rf = Folio::large(41, 14, 4);
            w.prepare_read(rf);
            e.read_sync(rf, std::thread::yield_now).unwrap();
            assert_eq!(read_state(&w, rf.id), READ_OK);
            assert_eq!(w.mem.get(rf.id), w.mem.get(big.id));
            assert_eq!(e.in_flight(), 0);
        }
        drop(unhook); // drops the sender: the completer ends
        completer.join().unwrap()
    });
    // Per round: write, read, batch, 2 split parts, sync write, 2 sync read parts.
    assert_eq!(completed, 3 * 8);
    let st = e.stats();
    assert_eq!((st.requests_submitted, st.requests_completed, st.rejected_completions), (24, 24, 24));
    assert_eq!(e.pool_free(), 4);
    assert_clean(&w);
}

// ---- errno classes ---------------------------------------------------------------------

/// (errno the backend reports, errno the engine reports, retryable)
const ERRNO_CLASSES: [(Errno, Errno, bool); 10] = [
    (Errno::EIO, Errno::EIO, false),
    (Errno::ENOSPC, Errno::ENOSPC, false),
    (Errno::EAGAIN, Errno::EAGAIN, true),
    (Errno::ENOMEM, Errno::ENOMEM, true),
    (Errno::EINTR, Errno::EINTR, true),
    (Errno(0), Errno::EIO, false),
    (Errno(-5), Errno::EIO, false),
    (Errno(-28), Errno::EIO, false),
    (Errno(i32::MIN), Errno::EIO, false),
    (Errno(9999), Errno(9999), false),
];

#[test]
fn write_failure_redirties_clears_reclaim_ends_writeback_and_marks_transient_errnos_retryable() {
    for (given, want, retryable) in ERRNO_CLASSES {
        for queued in [false, true] {
            let w = world();
            let e = w.engine(linear(16), StorageConfig::default()).unwrap();
            script(
                &w,
                move |_| if queued { Action::Queue(Some(Err(given))) } else { Action::Inline(Some(Err(given))) },
            );
            let f = Folio::small(1, 3);
            w.prepare_write(f, 1);
            e.write(None, f, MAY).unwrap();
            assert_eq!(deliver(&w, &e), usize::from(queued));
            assert_eq!(write_state(&w, f.id), WRITE_FAILED, "{given:?} queued={queued}");
            assert!(w.pages.state(f.id).uptodate, "a failed write keeps the data");
            assert_eq!(write_failures(&w), vec![(f.id, 1, IoFailure::Errno(want), retryable)], "{given:?}");
            assert_eq!(e.stats().write_failures, 1);
            // Sync writes report the same failure to the caller.
            let s = Folio::small(2, 4);
            w.prepare_write(s, 1);
            let mut waits = 0;
            let got = e.write_sync(s, MAY, || {
                waits += 1;
                deliver(&w, &e);
            });
            assert_eq!(got, Err(SwapError::Io(IoFailure::Errno(want))), "{given:?}");
            assert_eq!(got.unwrap_err().errno(), want);
            assert_eq!(waits > 0, queued);
            assert_eq!(write_state(&w, s.id), WRITE_FAILED);
            assert_clean(&w);
        }
    }
}

#[test]
fn read_failure_unlocks_without_uptodate_for_every_errno() {
    for (given, want, _) in ERRNO_CLASSES {
        for queued in [false, true] {
            let w = world();
            let e = w.engine(linear(16), StorageConfig::default()).unwrap();
            script(
                &w,
                move |_| if queued { Action::Queue(Some(Err(given))) } else { Action::Inline(Some(Err(given))) },
            );
            let f = Folio::large(1, 2, 2);
            w.prepare_read(f);
            e.read(None, f).unwrap();
            deliver(&w, &e);
            assert_eq!(read_state(&w, f.id), READ_FAILED, "{given:?}");
            assert_eq!(read_failures(&w), vec![(f.id, 2, IoFailure::Errno(want))]);
            assert_eq!(w.pages.counted_pages(), (0, 0), "no SwapIn for a failed read");
            let s = Folio::small(2, 9);
            w.prepare_read(s);
            let got = e.read_sync(s, || {
                deliver(&w, &e);
            });
            assert_eq!(got, Err(SwapError::Io(IoFailure::Errno(want))));
            assert_eq!(read_state(&w, s.id), READ_FAILED);
            let st = e.stats();
            assert_eq!((st.read_failures, st.pages_in), (2, 0));
            assert_clean(&w);
        }
    }
}

// ---- short I/O, per segment -------------------------------------------------------------

/// A 3-folio request (1 + 2 + 1 pages) completing with every byte count 0..=len: only
/// the folios not fully transferred fail; fully covered ones succeed.
#[test]
fn short_io_at_every_byte_offset_fails_only_folios_not_fully_transferred() {
    let folios = [Folio::large(1, 1, 1), Folio::large(2, 2, 2), Folio::large(3, 4, 1)];
    let data: Vec<Vec<u8>> = folios
        .iter()
        .map(|f| (0..f.pages as usize * PAGE_SIZE).map(|i| (i / 1000) as u8 ^ (0x10 * f.id.0 as u8)).collect())
        .collect();
    let len = 4 * P;
    // Every offset, spread over two threads (each offset builds its own world).
    std::thread::scope(|s| {
        for half in 0..2 {
            let (folios, data) = (&folios, &data);
            s.spawn(move || (half..=len).step_by(2).for_each(|done| short_io_at(folios, data, done)));
        }
    });
}

fn short_io_at(folios: &[Folio; 3], data: &[Vec<u8>], done: u64) {
    let ends = [P, 3 * P, 4 * P];
    let len = 4 * P;
    {
        let queued = done % 4 >= 2;
        let w = TestWorld::new(BackendCaps::BLOCK_DEVICE, 8 * PAGE_SIZE);
        let e = w.engine(device_map(&[(8, 0)]).unwrap(), cfg(1, 1, 1)).unwrap();
        // Put known data on the device first.
        {
            let mut plug = e.plug();
            for (f, d) in folios.iter().zip(data) {
                w.mem.set(f.id, d.clone());
                w.pages.prepare_write(f.id);
                plug.write(*f, MAY).unwrap();
            }
        }
        let reference = data;
        script(&w, move |_| if queued { Action::Queue(Some(Ok(done))) } else { Action::Inline(Some(Ok(done))) });
        {
            let mut plug = e.plug();
            for f in folios {
                w.pages.prepare_write(f.id);
                plug.write(*f, MAY).unwrap();
            }
        }
        deliver(&w, &e);
        let reads = folios.map(|f| Folio { id: FolioId(f.id.0 + 10), ..f });
        {
            let mut plug = e.plug();
            for r in reads {
                w.prepare_read(r);
                plug.read(r).unwrap();
            }
        }
        deliver(&w, &e);
        let seen = w.dev.seen();
        assert_eq!(seen.len(), 3, "one request per batch");
        assert!(seen.iter().all(|r| r.segments.len() == 3 && r.len == len));
        let short = IoFailure::Short { done, expected: len };
        // The RFC mapped short writes to -ENODATA; a short transfer is an I/O error.
        assert_eq!(short.errno(), Errno::EIO);
        let mut failed_writes = Vec::new();
        let mut failed_reads = Vec::new();
        for (i, (f, r)) in folios.iter().zip(&reads).enumerate() {
            let ok = ends[i] <= done;
            let (s1, s2) = (w.pages.state(f.id), w.pages.state(r.id));
            if ok {
                assert_eq!((s1.dirty, s1.writeback, s1.reclaim), (false, false, true), "write {i} at {done}");
                assert_eq!(read_state(&w, r.id), (false, true, 1, 0), "read {i} at {done}");
                assert_eq!(w.mem.get(r.id).as_ref(), Some(&reference[i]), "read data {i} at {done}");
            } else {
                assert_eq!((s1.dirty, s1.writeback, s1.reclaim), (true, false, false), "write {i} at {done}");
                assert!(!s2.uptodate && !s2.locked, "read {i} at {done}");
                failed_writes.push((f.id, u64::from(f.pages), short, false));
                failed_reads.push((r.id, u64::from(r.pages), short));
            }
        }
        assert_eq!(write_failures(&w), failed_writes, "at {done}");
        assert_eq!(read_failures(&w), failed_reads, "at {done}");
        let pages_read: u64 =
            reads.iter().zip(ends).filter(|(_, end)| *end <= done).map(|(r, _)| u64::from(r.pages)).sum();
        assert_eq!(w.pages.counted_pages().1, pages_read);
        let st = e.stats();
        assert_eq!(st.short_transfers, if done < len { 2 } else { 0 });
        assert_eq!(st.pages_in, pages_read);
        assert_eq!(e.in_flight(), 0);
        assert_clean(&w);
    }
}

/// A backend claiming more bytes than asked is buggy: nothing of the request is trusted.
#[test]
fn overrun_fails_every_folio_of_the_request() {
    for reported in [4 * P + 1, 8 * P, u64::MAX] {
        let w = world();
        let e = w.engine(linear(16), StorageConfig::default()).unwrap();
        script(&w, move |_| Action::Inline(Some(Ok(reported))));
        let folios = [Folio::small(1, 1), Folio::large(2, 2, 3)];
        {
            let mut plug = e.plug();
            for f in folios {
                w.prepare_write(f, 1);
                plug.write(f, MAY).unwrap();
            }
        }
        // A result is the kernel's `long`: counts past i64::MAX saturate.
        let reported = reported.min(i64::MAX as u64);
        let over = IoFailure::Overrun { reported, expected: 4 * P };
        assert_eq!(write_failures(&w), vec![(folios[0].id, 1, over, false), (folios[1].id, 3, over, false)]);
        let r = Folio::large(3, 1, 4);
        w.prepare_read(r);
        e.read(None, r).unwrap();
        assert_eq!(read_state(&w, r.id), READ_FAILED);
        let s = Folio::small(4, 9);
        w.prepare_read(s);
        assert_eq!(e.read_sync(s, || {}), Err(SwapError::Io(IoFailure::Overrun { reported, expected: P })));
        assert_eq!(e.stats().short_transfers, 0);
        assert_clean(&w);
    }
}

// ---- completion refusals ------------------------------------------------------------------

#[test]
fn double_and_stale_completions_are_refused_and_do_nothing() {
    let w = world();
    let e = w.engine(linear(64), cfg(1, 1, 1)).unwrap();
    queue_all(&w);
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(None, f, MAY).unwrap();
    let [(a, ra)] = w.dev.take_queued()[..] else { panic!("one queued request") };
    e.complete(a, ra).unwrap();
    assert_eq!(e.complete(a, ra), Err(CompleteError::NotInFlight { index: a.index(), generation: a.generation() }));
    assert_eq!(write_state(&w, f.id), WROTE);
    // The slot is reused under a new generation; the old id cannot complete it.
    let g = Folio::small(2, 2);
    w.prepare_write(g, 1);
    e.write(None, g, MAY).unwrap();
    let [(b, rb)] = w.dev.take_queued()[..] else { panic!("one queued request") };
    assert_eq!(b.index(), a.index());
    assert_ne!(b.generation(), a.generation());
    assert!(matches!(e.complete(a, Err(Errno::EIO)), Err(CompleteError::NotInFlight { .. })));
    assert_eq!(write_state(&w, g.id), WRITE_IN_FLIGHT, "the stale completion did nothing");
    assert_eq!(e.complete(RequestId::from_u64(999).unwrap(), Ok(0)), Err(CompleteError::UnknownRequest(999)));
    assert_eq!(e.complete(RequestId::from_u64(b.to_u64()).unwrap(), rb), Ok(()));
    assert_eq!(write_state(&w, g.id), WROTE);
    let st = e.stats();
    assert_eq!((st.requests_completed, st.rejected_completions), (2, 2));
    assert_clean(&w);
}

// ---- events ------------------------------------------------------------------------------

/// PSWPOUT/PSWPIN are in base pages derived from bytes: a large folio counts its pages.
#[test]
fn events_count_base_pages_derived_from_bytes() {
    let w = world();
    let e = w.engine(device_map(&[(8, 100), (24, 300)]).unwrap(), StorageConfig::default()).unwrap();
    let folios = [Folio::large(1, 1, 4), Folio::large(2, 5, 2), Folio::small(3, 7), Folio::large(4, 8, 16)];
    {
        let mut plug = e.plug();
        for f in folios {
            w.prepare_write(f, 1);
            plug.write(f, MAY).unwrap();
        }
    }
    assert_eq!(
        w.pages.events(),
        vec![
            SwapEvent::SwapOut { pages: 4 },
            SwapEvent::SwapOut { pages: 2 },
            SwapEvent::SwapOut { pages: 1 },
            SwapEvent::SwapOut { pages: 16 },
        ]
    );
    for f in folios {
        let r = Folio { id: FolioId(f.id.0 + 10), ..f };
        w.prepare_read(r);
        e.read(None, r).unwrap();
    }
    assert_eq!(w.pages.counted_pages(), (23, 23));
    let st = e.stats();
    assert_eq!((st.pages_out, st.pages_in), (23, 23));
    assert_clean(&w);
}

#[test]
fn engine_setup_refuses_an_empty_pool_and_a_backend_without_the_mode_capability() {
    let w = world();
    assert!(matches!(w.engine(linear(4), cfg(0, 1, 1)), Err(EngineError::EmptyPool)));
    assert!(matches!(
        w.engine(file_map(4).unwrap(), StorageConfig::default()),
        Err(EngineError::CapsMismatch(IoMode::File))
    ));
    let f = TestWorld::new(FS_FILE, 4096);
    assert!(matches!(f.engine(linear(4), StorageConfig::default()), Err(EngineError::CapsMismatch(IoMode::Device))));
}

// ---- write ordering ------------------------------------------------------------------------

/// `swap_writepage`: count the event, start writeback, unlock the folio, and only then
/// plug or submit; completion ends writeback and drops the pin.
#[test]
fn write_starts_writeback_and_unlocks_before_submit() {
    let w = world();
    let e = w.engine(linear(16), StorageConfig::default()).unwrap();
    queue_all(&w);
    let mut plug = e.plug();
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    plug.write(f, MAY).unwrap();
    assert_eq!(w.pages.events(), vec![SwapEvent::SwapOut { pages: 1 }]);
    assert_eq!(w.pages.ops(f.id), vec!["start_writeback", "unlock", "pin"]);
    assert!(w.dev.seen().is_empty(), "still plugged");
    drop(plug);
    deliver(&w, &e);
    assert_eq!(w.pages.ops(f.id), vec!["start_writeback", "unlock", "pin", "end_writeback", "unpin"]);
    // A failed write: dirty again, reclaim cleared, writeback ended, in that order.
    script(&w, |_| Action::Inline(Some(Err(Errno::EIO))));
    let g = Folio::small(2, 2);
    w.prepare_write(g, 1);
    e.write(None, g, MAY).unwrap();
    let ops = w.pages.ops(g.id);
    assert_eq!(ops, vec!["start_writeback", "unlock", "pin", "set_dirty", "clear_reclaim", "end_writeback", "unpin"]);
    // A read: pinned at submit; uptodate before unlock at completion.
    script(&w, |_| Action::Inline(None));
    let r = Folio::small(3, 1);
    w.prepare_read(r);
    e.read(None, r).unwrap();
    assert_eq!(w.pages.ops(r.id), vec!["pin", "set_uptodate", "unlock", "unpin"]);
    assert_clean(&w);
}

/// One completion path: a backend that completes a request *and* answers `Done` has
/// one of the two refused, in either order, and the page actions run once.
#[test]
fn done_after_the_backend_already_completed_is_refused() {
    // Completion first (from the queue list, after Done was taken): the late one is refused.
    let w = world();
    let e = w.engine(linear(16), StorageConfig::default()).unwrap();
    script(&w, |_| Action::QueueAndDone(None));
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(None, f, MAY).unwrap();
    assert_eq!(write_state(&w, f.id), WROTE);
    let [(id, r)] = w.dev.take_queued()[..] else { panic!("one queued") };
    assert!(matches!(e.complete(id, r), Err(CompleteError::NotInFlight { .. })));
    assert_eq!(write_state(&w, f.id), WROTE);
    assert_eq!(e.stats().rejected_completions, 1);
    assert_clean(&w);

    // Completion inside submit (another thread), then Done: Done is refused.
    let w = world();
    let e = w.engine(linear(16), StorageConfig::default()).unwrap();
    script(&w, |_| Action::QueueAndDone(Some(Err(Errno::EAGAIN))));
    let (tx, rx) = mpsc::channel::<(RequestId, Result<u64, Errno>)>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let ack_rx = Mutex::new(ack_rx);
    w.dev.set_on_queued(Some(Arc::new(move |id, r| {
        tx.send((id, r)).unwrap();
        ack_rx.lock().unwrap().recv().unwrap();
    })));
    std::thread::scope(|s| {
        let _unhook = Unhook(&w.dev);
        let engine = &e;
        s.spawn(move || {
            for (id, r) in rx {
                engine.complete(id, r).unwrap();
                ack_tx.send(()).unwrap();
            }
        });
        let f = Folio::small(1, 1);
        w.prepare_write(f, 1);
        e.write(None, f, MAY).unwrap();
        let s2 = Folio::small(2, 2);
        w.prepare_write(s2, 1);
        assert_eq!(e.write_sync(s2, MAY, || {}), Err(SwapError::Io(IoFailure::Errno(Errno::EAGAIN))));
    });
    assert_eq!(write_failures(&w).len(), 2, "each folio failed once");
    assert_eq!(write_state(&w, FolioId(1)), WRITE_FAILED);
    let st = e.stats();
    assert_eq!((st.requests_completed, st.rejected_completions, st.write_failures), (2, 2, 2));
    assert_clean(&w);
}
