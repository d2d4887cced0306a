//! Shared pieces of the loom models (`tests/loom_*.rs`): a tiny map, request storage, a
//! backend that queues every request into per-slot mailboxes built on loom atomics, and
//! a completer that delivers them from another thread.
//!
//! The page state is recorded by [`swapdio::testkit::MemPages`]: its `std` mutexes are
//! never held across a loom operation, so they add no schedules and never block a loom
//! thread; every rule it checks (writeback ended twice, unlocked twice, unpinned more
//! than pinned, failed write not redirtied) is a model failure.
#![allow(dead_code)]

use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::ops::Deref;
use std::sync::Arc;
use swapdio::testkit::MemPages;
use swapdio::*;

/// `MemPages` shared by the engine and the model's checks.
#[derive(Clone, Default)]
pub struct Pages(Arc<MemPages>);

impl Deref for Pages {
    type Target = MemPages;
    fn deref(&self) -> &MemPages {
        &self.0
    }
}

impl PageOps for Pages {
    fn set_uptodate(&self, f: FolioId) {
        self.0.set_uptodate(f)
    }
    fn set_dirty(&self, f: FolioId) {
        self.0.set_dirty(f)
    }
    fn clear_reclaim(&self, f: FolioId) {
        self.0.clear_reclaim(f)
    }
    fn start_writeback(&self, f: FolioId) {
        self.0.start_writeback(f)
    }
    fn end_writeback(&self, f: FolioId) {
        self.0.end_writeback(f)
    }
    fn unlock(&self, f: FolioId) {
        self.0.unlock(f)
    }
    fn pin(&self, f: FolioId) {
        self.0.pin(f)
    }
    fn unpin(&self, f: FolioId) {
        self.0.unpin(f)
    }
    fn event(&self, e: SwapEvent) {
        self.0.event(e)
    }
}

/// The engine every model runs: owned map and storage, the mailbox backend, `MemPages`.
pub type ModelEngine = Engine<Vec<MapEntry>, OwnedStorage, Arc<Mailboxes>, Pages>;

/// A device-mode map from `(first_slot, pages)` extents placed 1 MiB apart, so slots of
/// different extents are never adjacent on the device.
pub fn map(extents: &[(u64, u64)]) -> SwapMap<Vec<MapEntry>> {
    let entries = extents.iter().enumerate().map(|(i, &(first_slot, pages))| MapEntry {
        first_slot,
        pages,
        start: (i as u64) << 20,
    });
    SwapMap::new(entries.collect(), IoMode::Device).expect("model map is dense")
}

/// Mailbox value: `1 << 63 | id`, 0 when empty.
const FULL: u64 = 1 << 63;

/// A backend that answers `Queued` for every request and leaves `(id, len)` in the
/// mailbox of the request's slot for a completer thread. It also checks the pool's
/// promise: a slot index is never handed to the backend again before its previous
/// request was taken for completion.
pub struct Mailboxes {
    ids: Vec<AtomicU64>,
    lens: Vec<AtomicU64>,
    busy: Vec<AtomicBool>,
    /// Generation of the last request seen per slot.
    gens: Vec<AtomicU64>,
}

impl Mailboxes {
    /// Mailboxes for `slots` request slots (pool and sync together).
    pub fn new(slots: usize) -> Arc<Self> {
        let v = |_| AtomicU64::new(0);
        Arc::new(Mailboxes {
            ids: (0..slots).map(v).collect(),
            lens: (0..slots).map(v).collect(),
            busy: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            gens: (0..slots).map(v).collect(),
        })
    }

    /// Takes the request waiting in slot `i`'s mailbox, if any.
    pub fn take(&self, i: usize) -> Option<(RequestId, u64)> {
        // Load first: a spinning swap would store on every poll and grow loom's history.
        if self.ids[i].load(Ordering::Acquire) == 0 {
            return None;
        }
        let v = self.ids[i].swap(0, Ordering::AcqRel);
        if v == 0 {
            return None;
        }
        let len = self.lens[i].load(Ordering::Relaxed);
        // The request is the completer's now; the slot may be handed out once completed.
        self.busy[i].store(false, Ordering::Release);
        RequestId::from_u64(v & !FULL).ok().map(|id| (id, len))
    }

    /// Generation of the last request submitted from slot `i`.
    pub fn last_generation(&self, i: usize) -> u64 {
        self.gens[i].load(Ordering::Acquire)
    }
}

impl Backend for Mailboxes {
    fn caps(&self) -> BackendCaps {
        BackendCaps::BLOCK_DEVICE
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        let i = req.id().index();
        assert!(
            !self.busy[i].swap(true, Ordering::AcqRel),
            "request slot {i} handed to the backend while its previous request is still in flight"
        );
        self.gens[i].store(req.id().generation(), Ordering::Release);
        self.lens[i].store(req.len(), Ordering::Relaxed);
        self.ids[i].store(FULL | req.id().to_u64(), Ordering::Release);
        Submit::Queued
    }
}

/// Builds an engine over `map` with `pool` async requests, one sync slot and one split
/// tracker.
pub fn engine(map: SwapMap<Vec<MapEntry>>, pool: usize) -> (Arc<ModelEngine>, Arc<Mailboxes>, Pages) {
    let boxes = Mailboxes::new(pool + 1);
    let pages = Pages::default();
    let storage = OwnedStorage::new(StorageConfig { pool, sync: 1, splits: 1 }).unwrap();
    let engine = Engine::new(map, storage, boxes.clone(), pages.clone()).expect("model engine");
    (Arc::new(engine), boxes, pages)
}

/// Delivers `count` completions from the mailboxes of slots `0..slots`, each with the
/// result `result(n, len)` for the n-th delivery. Spins (with loom yields) while none
/// is waiting. Every delivery must be accepted.
pub fn complete_n(
    engine: &ModelEngine,
    boxes: &Mailboxes,
    slots: usize,
    count: usize,
    result: impl Fn(usize, u64) -> Result<u64, Errno>,
) -> Vec<RequestId> {
    let mut done = Vec::new();
    while done.len() < count {
        let mut got = false;
        for i in 0..slots {
            if let Some((id, len)) = boxes.take(i) {
                engine.complete(id, result(done.len(), len)).expect("a fresh completion is accepted exactly once");
                done.push(id);
                got = true;
            }
        }
        if !got {
            loom::thread::yield_now();
        }
    }
    done
}

/// A locked, dirty folio ready for swap-out.
pub fn prepare_write(pages: &MemPages, f: u64) {
    pages.prepare_write(FolioId(f));
}

/// Checks a folio whose write completed successfully exactly once: writeback ended once,
/// unlocked once (by the write prelude), clean, no pin left.
pub fn assert_written_once(pages: &MemPages, f: u64) {
    let s = pages.state(FolioId(f));
    assert_eq!(s.writeback_ends, 1, "folio {f}: writeback must end exactly once: {s:?}");
    assert_eq!(s.unlocks, 1, "folio {f}: unlocked once by the write prelude: {s:?}");
    assert!(!s.writeback && !s.dirty && !s.locked, "folio {f}: clean and idle after a good write: {s:?}");
    assert_eq!(s.pins, 0, "folio {f}: every pin dropped: {s:?}");
}

/// The end-of-model checks every model shares: no page rule broken, no pin held, every
/// request released, the pool whole again.
pub fn assert_quiescent(engine: &ModelEngine, pages: &MemPages, pool: usize) {
    assert_eq!(pages.violations(), Vec::<String>::new(), "page rules broken");
    assert_eq!(pages.pins_held(), 0, "pins balanced");
    assert_eq!(engine.in_flight(), 0, "every request released");
    assert_eq!(engine.pool_free(), pool, "no request lost");
    let st = engine.stats();
    assert_eq!(st.requests_submitted, st.requests_completed, "every submitted request completed: {st:?}");
}

/// Runs `f` under loom with the environment's preemption bound, or `default_bound` if
/// `LOOM_MAX_PREEMPTIONS` is unset, and prints how many schedules were explored.
pub fn model(name: &str, default_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(default_bound);
    }
    // The engine's write path alone is a few hundred atomic operations per request.
    b.max_branches = b.max_branches.max(100_000);
    let bound = b.preemption_bound;
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = runs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "loom model {name}: {} schedules explored exhaustively at preemption bound {:?} in {:.1?}",
        runs.load(std::sync::atomic::Ordering::Relaxed),
        bound,
        start.elapsed()
    );
}

/// Writes `folio` unplugged, yielding to the other model threads while the pool is empty
/// (`WouldBlock`: the folio is untouched, retry after a completion).
pub fn write_until_accepted(engine: &ModelEngine, folio: Folio) {
    loop {
        match engine.write(None, folio, FsContext::MayEnterFs) {
            Ok(()) => return,
            Err(SwapError::WouldBlock) => loom::thread::yield_now(),
            Err(e) => panic!("write of {folio:?} refused: {e}"),
        }
    }
}
