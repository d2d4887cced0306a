//! What the engine rule tests share (`engine_rules.rs`, `engine_completion.rs`,
//! `engine_plug.rs`): the testkit world, scripts for its `MemDevice`, the page-state
//! tuples the rules are checked against, and the final check that no page rule was
//! broken and every pin was dropped.

pub use std::sync::atomic::{AtomicUsize, Ordering};
pub use std::sync::{mpsc, Arc, Mutex};
pub use swapdio::testkit::*;
pub use swapdio::*;

pub const P: u64 = PAGE_SIZE as u64;
pub const FS_FILE: BackendCaps =
    BackendCaps::SWAP_RW.union(BackendCaps::OVERWRITE_IN_PLACE).union(BackendCaps::STABLE_ON_COMPLETE);
pub const MAY: FsContext = FsContext::MayEnterFs;
pub fn world() -> TestWorld {
    TestWorld::new(BackendCaps::BLOCK_DEVICE, 1024 * PAGE_SIZE)
}

/// Slots 0..n at physical pages 100..100+n.
pub fn linear(n: u64) -> SwapMap<Vec<MapEntry>> {
    device_map(&[(n, 100)]).unwrap()
}

pub fn cfg(pool: usize, sync: usize, splits: usize) -> StorageConfig {
    StorageConfig { pool, sync, splits }
}

pub fn queue_all(w: &TestWorld) {
    w.dev.set_script(Arc::new(|_: &Request<'_>| Action::Queue(None)));
}

pub fn script(w: &TestWorld, f: impl Fn(&Request<'_>) -> Action + Send + Sync + 'static) {
    w.dev.set_script(Arc::new(f));
}

/// Delivers every queued completion; returns how many.
pub fn deliver(w: &TestWorld, e: &WorldEngine<'_>) -> usize {
    let q = w.dev.take_queued();
    for &(id, r) in &q {
        e.complete(id, r).unwrap();
    }
    q.len()
}

/// Removes the device's on-queued hook when dropped, which drops the channel sender
/// it holds and so ends the completer thread even when an assertion fails inside a
/// `thread::scope` (which joins its threads before propagating the panic).
pub struct Unhook<'a>(pub &'a MemDevice);

impl Drop for Unhook<'_> {
    fn drop(&mut self) {
        self.0.set_on_queued(None);
    }
}

pub fn assert_clean(w: &TestWorld) {
    assert_eq!(w.pages.violations(), Vec::<String>::new());
    assert_eq!(w.pages.pins_held(), 0, "pins still held");
}

/// (locked, dirty, writeback, reclaim, writeback_ends, unlocks, pins)
pub fn write_state(w: &TestWorld, f: FolioId) -> (bool, bool, bool, bool, u32, u32, i64) {
    let s = w.pages.state(f);
    (s.locked, s.dirty, s.writeback, s.reclaim, s.writeback_ends, s.unlocks, s.pins)
}
pub const WROTE: (bool, bool, bool, bool, u32, u32, i64) = (false, false, false, true, 1, 1, 0);
pub const WRITE_FAILED: (bool, bool, bool, bool, u32, u32, i64) = (false, true, false, false, 1, 1, 0);
pub const WRITE_IN_FLIGHT: (bool, bool, bool, bool, u32, u32, i64) = (false, false, true, true, 0, 1, 1);
pub const UNTOUCHED_WRITE: (bool, bool, bool, bool, u32, u32, i64) = (true, true, false, true, 0, 0, 0);

/// (locked, uptodate, unlocks, pins)
pub fn read_state(w: &TestWorld, f: FolioId) -> (bool, bool, u32, i64) {
    let s = w.pages.state(f);
    (s.locked, s.uptodate, s.unlocks, s.pins)
}
pub const READ_OK: (bool, bool, u32, i64) = (false, true, 1, 0);
pub const READ_FAILED: (bool, bool, u32, i64) = (false, false, 1, 0);
pub const UNTOUCHED_READ: (bool, bool, u32, i64) = (true, false, 0, 0);

pub fn write_failures(w: &TestWorld) -> Vec<(FolioId, u64, IoFailure, bool)> {
    w.pages
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SwapEvent::WriteFailed { folio, pages, failure, retryable } => Some((folio, pages, failure, retryable)),
            _ => None,
        })
        .collect()
}

pub fn read_failures(w: &TestWorld) -> Vec<(FolioId, u64, IoFailure)> {
    w.pages
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SwapEvent::ReadFailed { folio, pages, failure } => Some((folio, pages, failure)),
            _ => None,
        })
        .collect()
}
