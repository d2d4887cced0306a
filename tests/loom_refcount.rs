//! Loom model of the request reference count (`mm/page_io.c`: the `swap_iocb` carries
//! the submitter's and the completion's reference; `ki_complete` may run on another CPU
//! before `->swap_rw` has returned). Exhaustive at preemption bound 3 by default.
//!
//! Catches `--cfg swapdio_broken="release_on_first_put"` (release on the wrong count).
#![cfg(loom)]

mod loom_common;

use loom_common::*;
use swapdio::*;

/// Submitter vs completion on another thread: the completion may land before `submit`
/// returns, after it, or while the submitter drops its reference. Each request completes
/// exactly once, a duplicate or stale completion is refused, each slot is released
/// exactly once per use (its generation advances by one), and the slot's reuse by the
/// next write is never seen by the previous completion.
#[test]
fn refcount_exactly_one_completion_and_one_release_per_request() {
    model("refcount_async", 3, || {
        let (engine, boxes, pages) = engine(map(&[(0, 8)]), 1);
        for f in 1..=3 {
            prepare_write(&pages, f);
        }
        let (e, b) = (engine.clone(), boxes.clone());
        let completer = loom::thread::spawn(move || {
            let first = complete_n(&e, &b, 1, 1, |_, len| Ok(len))[0];
            assert!(e.complete(first, Ok(4096)).is_err(), "a duplicate completion is refused");
            let second = complete_n(&e, &b, 1, 1, |_, len| Ok(len))[0];
            assert!(e.complete(first, Ok(4096)).is_err(), "a stale id is refused after the slot's reuse");
            (first, second)
        });
        write_until_accepted(&engine, Folio::small(1, 1));
        write_until_accepted(&engine, Folio::small(2, 3));
        let (first, second) = completer.join().expect("completer");
        assert_eq!(second.index(), first.index());
        assert_eq!(second.generation(), first.generation() + 1, "the slot was released exactly once between uses");
        assert_written_once(&pages, 1);
        assert_written_once(&pages, 2);
        assert_quiescent(&engine, &pages, 1);
        // A third use proves the second request was released exactly once too.
        engine.write(None, Folio::small(3, 5), FsContext::MayEnterFs).expect("pool is free again");
        let (third, len) = boxes.take(0).expect("third request queued");
        assert_eq!(third.generation(), second.generation() + 1, "second request released exactly once");
        engine.complete(third, Ok(len)).expect("third completion");
        assert_written_once(&pages, 3);
        assert_quiescent(&engine, &pages, 1);
        assert_eq!(engine.stats().rejected_completions, 2);
    });
}

/// A synchronous write (`REQ_SYNC`, the submitter waits holding its reference) racing
/// its completion: the waiter sees the result only after the completion dropped its
/// reference, and its own `put` is the single release.
#[test]
fn refcount_sync_waiter_releases_once_after_completion() {
    model("refcount_sync", 3, || {
        let (engine, boxes, pages) = engine(map(&[(0, 8)]), 1);
        prepare_write(&pages, 1);
        prepare_write(&pages, 2);
        let (e, b) = (engine.clone(), boxes.clone());
        // The sync slot is index 1 (after the pool of one); the second one fails with EIO.
        let completer = loom::thread::spawn(move || {
            complete_n(&e, &b, 2, 2, |n, len| if n == 0 { Ok(len) } else { Err(Errno::EIO) })
        });
        engine.write_sync(Folio::small(1, 1), FsContext::MayEnterFs, loom::thread::yield_now).expect("sync write");
        let err = engine.write_sync(Folio::small(2, 2), FsContext::MayEnterFs, loom::thread::yield_now);
        assert_eq!(err, Err(SwapError::Io(IoFailure::Errno(Errno::EIO))));
        let ids = completer.join().expect("completer");
        assert_eq!(ids[1].generation(), ids[0].generation() + 1, "sync slot released exactly once");
        assert_written_once(&pages, 1);
        let s = pages.state(FolioId(2));
        assert!(s.dirty && !s.writeback && s.writeback_ends == 1, "failed sync write redirtied once: {s:?}");
        assert_quiescent(&engine, &pages, 1);
    });
}
