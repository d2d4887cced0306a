//! The swap I/O state machine, rule by rule (docs/swap-rules.md §4-§5, issue 2
//! items 6-10), driven by the testkit's scripted `MemDevice` and rule-checking
//! `MemPages`. Every test ends by checking that no page rule was broken and every pin
//! was dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use swapdio::testkit::*;
use swapdio::*;

const P: u64 = PAGE_SIZE as u64;
const FS_FILE: BackendCaps =
    BackendCaps::SWAP_RW.union(BackendCaps::OVERWRITE_IN_PLACE).union(BackendCaps::STABLE_ON_COMPLETE);
const MAY: FsContext = FsContext::MayEnterFs;

fn world() -> TestWorld {
    TestWorld::new(BackendCaps::BLOCK_DEVICE, 1024 * PAGE_SIZE)
}

/// Slots 0..n at physical pages 100..100+n.
fn linear(n: u64) -> SwapMap<Vec<MapEntry>> {
    device_map(&[(n, 100)]).unwrap()
}

fn cfg(pool: usize, sync: usize, splits: usize) -> StorageConfig {
    StorageConfig { pool, sync, splits }
}

fn queue_all(w: &TestWorld) {
    w.dev.set_script(Arc::new(|_: &Request<'_>| Action::Queue(None)));
}

fn script(w: &TestWorld, f: impl Fn(&Request<'_>) -> Action + Send + Sync + 'static) {
    w.dev.set_script(Arc::new(f));
}

/// Delivers every queued completion; returns how many.
fn deliver(w: &TestWorld, e: &WorldEngine<'_>) -> usize {
    let q = w.dev.take_queued();
    for &(id, r) in &q {
        e.complete(id, r).unwrap();
    }
    q.len()
}

/// Removes the device's on-queued hook when dropped, which drops the channel sender
/// it holds and so ends the completer thread even when an assertion fails inside a
/// `thread::scope` (which joins its threads before propagating the panic).
struct Unhook<'a>(&'a MemDevice);

impl Drop for Unhook<'_> {
    fn drop(&mut self) {
        self.0.set_on_queued(None);
    }
}

fn assert_clean(w: &TestWorld) {
    assert_eq!(w.pages.violations(), Vec::<String>::new());
    assert_eq!(w.pages.pins_held(), 0, "pins still held");
}

/// (locked, dirty, writeback, reclaim, writeback_ends, unlocks, pins)
fn write_state(w: &TestWorld, f: FolioId) -> (bool, bool, bool, bool, u32, u32, i64) {
    let s = w.pages.state(f);
    (s.locked, s.dirty, s.writeback, s.reclaim, s.writeback_ends, s.unlocks, s.pins)
}
const WROTE: (bool, bool, bool, bool, u32, u32, i64) = (false, false, false, true, 1, 1, 0);
const WRITE_FAILED: (bool, bool, bool, bool, u32, u32, i64) = (false, true, false, false, 1, 1, 0);
const WRITE_IN_FLIGHT: (bool, bool, bool, bool, u32, u32, i64) = (false, false, true, true, 0, 1, 1);
const UNTOUCHED_WRITE: (bool, bool, bool, bool, u32, u32, i64) = (true, true, false, true, 0, 0, 0);

/// (locked, uptodate, unlocks, pins)
fn read_state(w: &TestWorld, f: FolioId) -> (bool, bool, u32, i64) {
    let s = w.pages.state(f);
    (s.locked, s.uptodate, s.unlocks, s.pins)
}
const READ_OK: (bool, bool, u32, i64) = (false, true, 1, 0);
const READ_FAILED: (bool, bool, u32, i64) = (false, false, 1, 0);
const UNTOUCHED_READ: (bool, bool, u32, i64) = (true, false, 0, 0);

fn write_failures(w: &TestWorld) -> Vec<(FolioId, u64, IoFailure, bool)> {
    w.pages
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SwapEvent::WriteFailed { folio, pages, failure, retryable } => Some((folio, pages, failure, retryable)),
            _ => None,
        })
        .collect()
}

fn read_failures(w: &TestWorld) -> Vec<(FolioId, u64, IoFailure)> {
    w.pages
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SwapEvent::ReadFailed { folio, pages, failure } => Some((folio, pages, failure)),
            _ => None,
        })
        .collect()
}

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

// ---- context and slot checks ----------------------------------------------------------------

#[test]
fn file_mode_write_from_nofs_context_is_refused_untouched() {
    let w = TestWorld::new(FS_FILE, 64 * PAGE_SIZE);
    let e = w.engine(file_map(64).unwrap(), StorageConfig::default()).unwrap();
    assert!(e.writes_enter_fs());
    let f = Folio::small(1, 3);
    w.prepare_write(f, 1);
    assert_eq!(e.write(None, f, FsContext::NoFs), Err(SwapError::NeedsFsContext));
    assert_eq!(e.write_sync(f, FsContext::NoFs, || {}), Err(SwapError::NeedsFsContext));
    assert_eq!(write_state(&w, f.id), UNTOUCHED_WRITE);
    assert!(w.dev.seen().is_empty());
    // From a context that may enter the fs it goes out, addressed by file position.
    e.write(None, f, MAY).unwrap();
    let r = Folio::small(2, 3);
    w.prepare_read(r);
    e.read(None, r).unwrap();
    let seen = w.dev.seen();
    assert_eq!(seen.iter().map(|r| (r.pos, r.len)).collect::<Vec<_>>(), vec![(3 * P, P), (3 * P, P)]);
    assert_eq!(w.mem.get(r.id), w.mem.get(f.id));
    assert_clean(&w);
}

#[test]
fn device_mode_nofs_writes_are_refused_only_when_the_backend_requires_it() {
    let w = world();
    let e = w.engine(linear(8), StorageConfig::default()).unwrap();
    assert!(!e.writes_enter_fs());
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(None, f, FsContext::NoFs).unwrap();
    assert_eq!(write_state(&w, f.id), WROTE);
    let w2 = TestWorld::new(BackendCaps::BLOCK_DEVICE | BackendCaps::REQUIRES_NOFS, 256 * PAGE_SIZE);
    let e2 = w2.engine(linear(8), StorageConfig::default()).unwrap();
    w2.prepare_write(f, 1);
    assert_eq!(e2.write(None, f, FsContext::NoFs), Err(SwapError::NeedsFsContext));
    assert_eq!(write_state(&w2, f.id), UNTOUCHED_WRITE);
    assert_clean(&w);
    assert_clean(&w2);
}

#[test]
fn slot_zero_and_slots_outside_the_map_are_errors_with_no_io() {
    let w = world();
    let e = w.engine(linear(16), StorageConfig::default()).unwrap();
    let out = |slot| SwapError::Map(MapError::SlotOutOfRange { slot, slots: 16 });
    let cases = [
        (Folio::small(1, 0), SwapError::HeaderSlot),
        (Folio::small(2, 16), out(16)),
        (Folio::small(3, u64::MAX), out(u64::MAX)),
        (Folio::large(4, 14, 4), out(17)),
        (Folio::large(5, u64::MAX - 1, 4), out(u64::MAX)),
    ];
    for (f, want) in cases {
        w.prepare_write(f, 1);
        let mut plug = PlugState::new();
        assert_eq!(e.write(Some(&mut plug), f, MAY), Err(want), "{f:?}");
        assert_eq!(e.write_sync(f, MAY, || {}), Err(want));
        assert_eq!(write_state(&w, f.id), UNTOUCHED_WRITE);
        let r = Folio { id: FolioId(f.id.0 + 100), ..f };
        w.prepare_read(r);
        assert_eq!(e.read(None, r), Err(want));
        assert_eq!(e.read_sync(r, || {}), Err(want));
        assert_eq!(read_state(&w, r.id), UNTOUCHED_READ);
        assert_eq!(want.errno(), Errno::EINVAL);
    }
    for pages in [0, MAX_FOLIO_PAGES + 1] {
        let f = Folio::large(9, 1, pages);
        assert!(matches!(e.write(None, f, MAY), Err(SwapError::InvalidFolio(_))));
    }
    assert!(w.dev.seen().is_empty());
    assert!(w.pages.events().is_empty());
    assert_eq!(e.stats(), Stats::default());
    assert_clean(&w);
}

#[test]
fn deactivate_is_busy_until_every_request_is_drained() {
    let w = world();
    let e = w.engine(linear(16), StorageConfig::default()).unwrap();
    queue_all(&w);
    let mut plug = PlugState::new();
    for i in 1..=2u64 {
        let f = Folio::small(i, i * 4);
        w.prepare_write(f, 1);
        e.write(Some(&mut plug), f, MAY).unwrap();
    }
    // One request in flight, one held by the plug.
    assert_eq!(e.deactivate(), Err(SwapError::Busy { in_flight: 2 }));
    assert_eq!(SwapError::Busy { in_flight: 2 }.errno(), Errno::EBUSY);
    let g = Folio::small(3, 10);
    w.prepare_write(g, 1);
    assert_eq!(e.write(None, g, MAY), Err(SwapError::Deactivated));
    assert_eq!(write_state(&w, g.id), UNTOUCHED_WRITE);
    e.finish_plug(&mut plug).unwrap();
    assert_eq!(e.deactivate(), Err(SwapError::Busy { in_flight: 2 }));
    let q = w.dev.take_queued();
    e.complete(q[0].0, q[0].1).unwrap();
    assert_eq!(e.deactivate(), Err(SwapError::Busy { in_flight: 1 }));
    e.complete(q[1].0, q[1].1).unwrap();
    assert_eq!(e.deactivate(), Ok(()));
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

// ---- every rule at once, under random faults -------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Write { slot: u64, pages: u32, plugged: bool },
    Read { slot: u64, pages: u32, plugged: bool },
    SyncWrite { slot: u64, pages: u32 },
    SyncRead { slot: u64, pages: u32 },
    FinishPlug,
    Deliver { reverse: bool, max: usize },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let folio = (1u64..64, prop_oneof![Just(1u32), Just(2), Just(4), Just(8)]);
    prop_oneof![
        4 => (folio.clone(), any::<bool>()).prop_map(|((slot, pages), plugged)| Op::Write { slot, pages, plugged }),
        3 => (folio.clone(), any::<bool>()).prop_map(|((slot, pages), plugged)| Op::Read { slot, pages, plugged }),
        1 => folio.clone().prop_map(|(slot, pages)| Op::SyncWrite { slot, pages }),
        1 => folio.prop_map(|(slot, pages)| Op::SyncRead { slot, pages }),
        1 => Just(Op::FinishPlug),
        2 => (any::<bool>(), 0usize..6).prop_map(|(reverse, max)| Op::Deliver { reverse, max }),
    ]
}

fn deliver_some(w: &TestWorld, e: &WorldEngine<'_>, reverse: bool, max: usize) {
    let mut q = w.dev.take_queued();
    if reverse {
        q.reverse();
    }
    let keep = q.split_off(max.min(q.len()));
    for (id, r) in q {
        e.complete(id, r).unwrap();
    }
    // Put the rest back by completing them later: re-queue through the hook-less list.
    for (id, r) in keep {
        PENDING.with(|p| p.borrow_mut().push((id, r)));
    }
}

thread_local! {
    static PENDING: std::cell::RefCell<Vec<(RequestId, Result<u64, Errno>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn deliver_pending(e: &WorldEngine<'_>, max: usize) {
    let batch: Vec<_> = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let n = max.min(p.len());
        p.drain(..n).collect()
    });
    for (id, r) in batch {
        e.complete(id, r).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// Random mixes of plugged and unplugged, async and sync, small and large (split)
    /// reads and writes, with seeded faults (`FaultPlan`: errnos and short transfers),
    /// inline and queued outcomes and out-of-order completion: no page rule is ever
    /// broken, refused calls leave the folio untouched, every folio completes exactly
    /// once with the outcome its events report, and pins and counters balance.
    #[test]
    fn random_io_under_faults_keeps_every_page_rule(
        ops in proptest::collection::vec(op(), 1..40),
        rate_ppm in 0u32..600_000,
        seed in proptest::prelude::any::<u64>(),
        queue_mask in proptest::prelude::any::<u8>(),
        pool in 1usize..6,
    ) {
        use swapdio::fault::{FaultConfig, FaultKinds, FaultPlan};
        PENDING.with(|p| p.borrow_mut().clear());
        let w = world();
        let e = w.engine(device_map(&[(20, 100), (20, 300), (24, 600)]).unwrap(), cfg(pool, 2, 2)).unwrap();
        let plan = Arc::new(FaultPlan::new(FaultConfig { rate_ppm, seed, kinds: FaultKinds::all() }));
        w.dev.set_script(fault_script(plan, move |n| queue_mask & (1 << (n % 8)) != 0));
        let mut plug = PlugState::new();
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let id = 1000 + i as u64;
            let drain = || {
                deliver_some(&w, &e, false, usize::MAX);
                deliver_pending(&e, usize::MAX);
            };
            match *op {
                Op::Write { slot, pages, .. } | Op::SyncWrite { slot, pages } if slot + u64::from(pages) <= 64 => {
                    let f = Folio::large(id, slot, pages);
                    w.prepare_write(f, id as u8);
                    let got = match *op {
                        Op::Write { plugged: true, .. } => e.write(Some(&mut plug), f, MAY),
                        Op::Write { .. } => e.write(None, f, MAY),
                        _ => e.write_sync(f, MAY, drain),
                    };
                    match got {
                        Ok(()) | Err(SwapError::Io(_)) => writes.push(f.id),
                        Err(SwapError::WouldBlock) | Err(SwapError::TooFragmented { .. }) => {
                            proptest::prop_assert_eq!(write_state(&w, f.id), UNTOUCHED_WRITE)
                        }
                        Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::Read { slot, pages, .. } | Op::SyncRead { slot, pages } if slot + u64::from(pages) <= 64 => {
                    let f = Folio::large(id, slot, pages);
                    w.prepare_read(f);
                    let got = match *op {
                        Op::Read { plugged: true, .. } => e.read(Some(&mut plug), f),
                        Op::Read { .. } => e.read(None, f),
                        _ => e.read_sync(f, drain),
                    };
                    match got {
                        Ok(()) | Err(SwapError::Io(_)) => reads.push(f.id),
                        Err(SwapError::WouldBlock) | Err(SwapError::TooFragmented { .. }) => {
                            proptest::prop_assert_eq!(read_state(&w, f.id), UNTOUCHED_READ)
                        }
                        Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::Write { slot, pages, .. } | Op::SyncWrite { slot, pages } | Op::Read { slot, pages, .. } | Op::SyncRead { slot, pages } => {
                    let f = Folio::large(id, slot, pages);
                    let got = e.write(None, f, MAY);
                    let out_of_range = matches!(got, Err(SwapError::Map(MapError::SlotOutOfRange { .. })));
                    proptest::prop_assert!(out_of_range, "{:?}", got);
                }
                Op::FinishPlug => e.finish_plug(&mut plug).unwrap(),
                Op::Deliver { reverse, max } => {
                    deliver_some(&w, &e, reverse, max);
                    deliver_pending(&e, max);
                }
            }
        }
        e.finish_plug(&mut plug).unwrap();
        while e.in_flight() != 0 {
            deliver_some(&w, &e, true, usize::MAX);
            deliver_pending(&e, usize::MAX);
        }
        proptest::prop_assert_eq!(w.pages.violations(), Vec::<String>::new());
        proptest::prop_assert_eq!(w.pages.pins_held(), 0);
        let failed_writes: Vec<FolioId> = write_failures(&w).iter().map(|f| f.0).collect();
        let failed_reads: Vec<FolioId> = read_failures(&w).iter().map(|f| f.0).collect();
        for f in &writes {
            let s = w.pages.state(*f);
            let failed = failed_writes.iter().filter(|g| *g == f).count();
            proptest::prop_assert!(failed <= 1);
            proptest::prop_assert_eq!((s.writeback, s.writeback_ends, s.unlocks, s.dirty, s.reclaim), (false, 1, 1, failed == 1, failed == 0));
        }
        for f in &reads {
            let s = w.pages.state(*f);
            let failed = failed_reads.iter().filter(|g| *g == f).count();
            proptest::prop_assert!(failed <= 1);
            proptest::prop_assert_eq!((s.locked, s.unlocks, s.uptodate), (false, 1, failed == 0));
        }
        let st = e.stats();
        proptest::prop_assert_eq!(st.requests_submitted, st.requests_completed);
        proptest::prop_assert_eq!(st.rejected_completions, 0);
        proptest::prop_assert_eq!((st.write_failures, st.read_failures), (failed_writes.len() as u64, failed_reads.len() as u64));
        proptest::prop_assert_eq!((st.pages_out, st.pages_in), w.pages.counted_pages());
        proptest::prop_assert!(w.dev.seen().iter().all(|r| r.flags.contains(ReqFlags::SWAP)));
        proptest::prop_assert_eq!(e.deactivate(), Ok(()));
    }
}

// ---- concurrency --------------------------------------------------------------------------

/// The pool hands each request to one submitter: two threads writing through one engine
/// (with requests completed inline and from a third thread) never share a request, so
/// every folio completes exactly once.
#[test]
fn concurrent_submitters_never_share_a_request() {
    let w = world();
    let e = w.engine(linear(520), cfg(2, 2, 1)).unwrap();
    script(&w, |r: &Request<'_>| if r.pos() / P % 3 == 0 { Action::Queue(None) } else { Action::Inline(None) });
    let per_thread = 3000u64;
    let finished = AtomicUsize::new(0);
    // A request handed out twice is never freed: fail instead of spinning forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let alive = || assert!(std::time::Instant::now() < deadline, "stuck: a request was lost or handed out twice");
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (w, e, finished, alive) = (&w, &e, &finished, &alive);
            s.spawn(move || {
                for i in 0..per_thread {
                    let f = Folio::small(1 + t * per_thread + i, 1 + t * 256 + i % 255);
                    w.pages.prepare_write(f.id);
                    loop {
                        match e.write(None, f, MAY) {
                            Err(SwapError::WouldBlock) => {
                                alive();
                                std::thread::yield_now()
                            }
                            other => break other.unwrap(),
                        }
                    }
                }
                finished.fetch_add(1, Ordering::Release);
            });
        }
        s.spawn(|| {
            while finished.load(Ordering::Acquire) < 2 || e.in_flight() != 0 {
                alive();
                deliver(&w, &e);
                std::thread::yield_now();
            }
        });
    });
    for id in 1..=2 * per_thread {
        assert_eq!(write_state(&w, FolioId(id)), WROTE, "folio {id}");
    }
    let st = e.stats();
    assert_eq!((st.requests_submitted, st.requests_completed, st.rejected_completions), (6000, 6000, 0));
    assert_clean(&w);
}
