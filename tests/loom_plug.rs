//! Loom model of plugging (`swap_write_unplug`): a plug flushes its batch and builds the
//! next one while the previous batch completes on another thread. Pool of one request,
//! so the next batch can only reuse the slot the completion releases. Exhaustive at
//! preemption bound 2 by default.
//!
//! Catches `--cfg swapdio_broken="plug_flush_late"` (a new request taken before the held
//! batch is flushed) and `--cfg swapdio_broken="release_before_finish"` (the completion
//! releases the slot before its page actions have read it).
#![cfg(loom)]

mod loom_common;

use loom_common::*;
use swapdio::*;

/// Adds `folio` to the plug, retrying while the pool is empty. The engine's promise on
/// `WouldBlock`: the held batch was submitted first, so a completion will come.
fn plug_write<'e>(engine: &'e ModelEngine, plug: &mut PlugState<'e>, folio: Folio) {
    loop {
        match engine.write(Some(plug), folio, FsContext::MayEnterFs) {
            Ok(()) => return,
            Err(SwapError::WouldBlock) => {
                assert_eq!(plug.held_folios(), 0, "WouldBlock while a batch is still held: it would wait forever");
                loom::thread::yield_now();
            }
            Err(e) => panic!("write of {folio:?} refused: {e}"),
        }
    }
}

/// Batch 1 (two adjacent folios) is flushed and completes while the plug builds batch 2
/// (one folio) and batch 3 (a non-adjacent folio that forces batch 2's flush). Each
/// completion touches exactly its own batch's folios, each once.
#[test]
fn plug_flush_races_completion_of_previous_batch() {
    model("plug", 2, || {
        let (engine, boxes, pages) = engine(map(&[(0, 16)]), 1);
        for f in 1..=4 {
            prepare_write(&pages, f);
        }
        let (e, b) = (engine.clone(), boxes.clone());
        let completer = loom::thread::spawn(move || complete_n(&e, &b, 1, 3, |_, len| Ok(len)));
        let mut plug = PlugState::new();
        plug_write(&engine, &mut plug, Folio::small(1, 1));
        plug_write(&engine, &mut plug, Folio::small(2, 2));
        assert_eq!(plug.held_folios(), 2, "adjacent folios share one request");
        engine.finish_plug(&mut plug).expect("own plug");
        plug_write(&engine, &mut plug, Folio::small(3, 8));
        plug_write(&engine, &mut plug, Folio::small(4, 12));
        engine.finish_plug(&mut plug).expect("own plug");
        completer.join().expect("completer");
        for f in 1..=4 {
            assert_written_once(&pages, f);
        }
        assert_eq!(engine.stats().requests_submitted, 3);
        assert_quiescent(&engine, &pages, 1);
    });
}
