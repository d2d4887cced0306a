//! Loom model of a large folio split over several requests because it spans extents
//! (the kernel instead refuses such a layout at swapon; swapdio splits the bvec): each
//! request pins the folio once and unpins it once at its completion, and the folio's
//! page actions run once, when its last part completes, whichever thread that is.
//! Exhaustive at preemption bound 2 by default.
//!
//! Catches `--cfg swapdio_broken="unpin_twice"`.
#![cfg(loom)]

mod loom_common;

use loom_common::*;
use swapdio::*;

/// A three-page folio over three one-page extents: three requests, completed by two
/// threads concurrently (the submitter completes one part itself). Pins balance, the
/// writeback ends once, and a failed part redirties the whole folio once.
#[test]
fn split_folio_pins_balance_and_completes_once() {
    for fail in [false, true] {
        model(if fail { "split_failing_part" } else { "split" }, 2, move || {
            let (engine, boxes, pages) = engine(map(&[(0, 2), (2, 1), (3, 1), (4, 4)]), 3);
            prepare_write(&pages, 1);
            engine.write(None, Folio::large(1, 2, 3), FsContext::MayEnterFs).expect("split write");
            assert_eq!(pages.state(FolioId(1)).pins + engine.stats().requests_completed as i64, 3);
            let (e, b) = (engine.clone(), boxes.clone());
            let other = loom::thread::spawn(move || complete_n(&e, &b, 2, 2, |_, len| Ok(len)));
            let (id, len) = loop {
                match boxes.take(2) {
                    Some(x) => break x,
                    None => loom::thread::yield_now(),
                }
            };
            engine.complete(id, if fail { Err(Errno::EIO) } else { Ok(len) }).expect("last slot's part");
            other.join().expect("completer");
            let s = pages.state(FolioId(1));
            assert_eq!(s.writeback_ends, 1, "the folio completes once, after its last part: {s:?}");
            assert_eq!(s.dirty, fail, "a failed part redirties the whole folio: {s:?}");
            assert_eq!(s.pins, 0, "one unpin per request: {s:?}");
            assert_eq!(engine.stats().write_failures, u64::from(fail));
            assert_quiescent(&engine, &pages, 3);
        });
    }
}
