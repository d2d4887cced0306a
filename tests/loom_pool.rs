//! Loom model of the request pool (the kernel's `sio_pool` mempool, here a lock-free
//! claim by compare-and-swap on each slot's state): two submitters and one completer.
//! Exhaustive at preemption bound 2 by default.
//!
//! Catches `--cfg swapdio_broken="pool_double_handout"` (check-then-store claim).
#![cfg(loom)]

mod loom_common;

use loom_common::*;
use swapdio::*;

/// Two submitters claim from a pool of two while a completer frees slots: no slot is
/// handed out twice (the backend sees each slot index once per use), no request is lost
/// (every folio completes exactly once and the pool is whole at the end).
#[test]
fn pool_never_hands_out_a_request_twice_nor_loses_one() {
    model("pool", 2, || {
        let (engine, boxes, pages) = engine(map(&[(0, 8)]), 2);
        for f in 1..=3 {
            prepare_write(&pages, f);
        }
        let (e, b) = (engine.clone(), boxes.clone());
        let completer = loom::thread::spawn(move || complete_n(&e, &b, 2, 2, |_, len| Ok(len)));
        let e = engine.clone();
        let other = loom::thread::spawn(move || write_until_accepted(&e, Folio::small(2, 4)));
        write_until_accepted(&engine, Folio::small(1, 1));
        other.join().expect("second submitter");
        let mut ids = completer.join().expect("completer");
        // After the race, a third use of the pool must get a fresh (slot, generation).
        engine.write(None, Folio::small(3, 6), FsContext::MayEnterFs).expect("pool is free again");
        ids.extend(complete_n(&engine, &boxes, 2, 1, |_, len| Ok(len)));
        let mut uses: Vec<_> = ids.iter().map(|id| (id.index(), id.generation())).collect();
        uses.sort_unstable();
        uses.dedup();
        assert_eq!(uses.len(), 3, "each request use has its own (slot, generation): {ids:?}");
        for f in 1..=3 {
            assert_written_once(&pages, f);
        }
        assert_quiescent(&engine, &pages, 2);
    });
}
