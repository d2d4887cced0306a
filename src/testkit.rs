//! Test doubles (feature `std`): an in-memory swap device and a page-state recorder
//! that checks the page rules as the engine drives them.
//!
//! Used by swapdio's own tests, benches, fuzz targets and examples, and offered to
//! anyone building a backend or an MM prototype on top of the engine.
//! [`mod@reference`] holds a page-by-page model of the kernel's activation arithmetic.

pub mod reference;

use crate::backend::{Backend, Submit};
use crate::caps::{BackendCaps, IoMode};
use crate::errno::Errno;
use crate::iocb::{Request, RequestId};
use crate::map::{MapEntry, MapError, SwapMap};
use crate::page::{Direction, FolioId, PageOps, SwapEvent};
use std::collections::{HashMap, HashSet};
use std::string::String;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

/// The state of one folio as the page operations left it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageState {
    /// Locked (`PG_locked`).
    pub locked: bool,
    /// Dirty.
    pub dirty: bool,
    /// Uptodate.
    pub uptodate: bool,
    /// Under writeback.
    pub writeback: bool,
    /// Reclaim flag.
    pub reclaim: bool,
    /// Pins currently held.
    pub pins: i64,
    /// Times writeback ended.
    pub writeback_ends: u32,
    /// Times unlocked.
    pub unlocks: u32,
}

/// A [`PageOps`] that records every folio's state and every event, and records a
/// violation whenever a call breaks a page rule (unlock of an unlocked folio, end of
/// writeback without writeback, unpin without pin, a write failure without redirty,
/// any pin or unpin of a folio marked as the shared zero page).
#[derive(Debug, Default)]
pub struct MemPages {
    pages: Mutex<HashMap<FolioId, PageState>>,
    events: Mutex<Vec<SwapEvent>>,
    violations: Mutex<Vec<String>>,
    zero_pages: Mutex<HashSet<FolioId>>,
    pins_taken: Mutex<HashMap<FolioId, u64>>,
    ops: Mutex<Vec<(FolioId, &'static str)>>,
}

impl MemPages {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `f` as the shared zero page: pinning or unpinning it is a violation
    /// (direct I/O must never take a reference on the zero page).
    pub fn mark_zero_page(&self, f: FolioId) {
        self.zero_pages.lock().unwrap_or_else(|e| e.into_inner()).insert(f);
    }

    /// How many pins were ever taken on `f` (one per request carrying part of it).
    pub fn pins_taken(&self, f: FolioId) -> u64 {
        self.pins_taken.lock().unwrap_or_else(|e| e.into_inner()).get(&f).copied().unwrap_or(0)
    }

    /// The page operations called on `f`, in order, by method name (`"start_writeback"`,
    /// `"unlock"`, `"pin"`, ...), to check the order `mm/page_io.c` uses.
    pub fn ops(&self, f: FolioId) -> Vec<&'static str> {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        ops.iter().filter(|(g, _)| *g == f).map(|(_, op)| *op).collect()
    }

    fn log(&self, f: FolioId, op: &'static str) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push((f, op));
    }

    fn zero_page_violation(&self, f: FolioId, what: &str) {
        if self.zero_pages.lock().unwrap_or_else(|e| e.into_inner()).contains(&f) {
            self.violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(std::format!("folio {}: zero page {what}", f.0));
        }
    }

    fn with(&self, f: FolioId, op: impl FnOnce(&mut PageState) -> Option<String>) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = op(pages.entry(f).or_default()) {
            self.violations.lock().unwrap_or_else(|e| e.into_inner()).push(std::format!("folio {}: {v}", f.0));
        }
    }

    /// Puts a folio in the state swap-out expects: locked, dirty, reclaim set.
    pub fn prepare_write(&self, f: FolioId) {
        self.with(f, |s| {
            *s = PageState {
                locked: true,
                dirty: true,
                reclaim: true,
                uptodate: true,
                pins: s.pins,
                ..PageState::default()
            };
            None
        });
    }

    /// Puts a folio in the state swap-in expects: locked, not uptodate.
    pub fn prepare_read(&self, f: FolioId) {
        self.with(f, |s| {
            *s = PageState { locked: true, pins: s.pins, ..PageState::default() };
            None
        });
    }

    /// The folio's state.
    pub fn state(&self, f: FolioId) -> PageState {
        self.pages.lock().unwrap_or_else(|e| e.into_inner()).get(&f).copied().unwrap_or_default()
    }

    /// All events so far.
    pub fn events(&self) -> Vec<SwapEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rule violations so far (empty when the engine behaved).
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sum of pins over all folios (0 when every pin was dropped).
    pub fn pins_held(&self) -> i64 {
        self.pages.lock().unwrap_or_else(|e| e.into_inner()).values().map(|s| s.pins).sum()
    }

    /// Base pages counted by `SwapOut` and `SwapIn` events.
    pub fn counted_pages(&self) -> (u64, u64) {
        self.events().iter().fold((0, 0), |(o, i), e| match e {
            SwapEvent::SwapOut { pages } => (o + pages, i),
            SwapEvent::SwapIn { pages } => (o, i + pages),
            _ => (o, i),
        })
    }
}

impl PageOps for MemPages {
    fn set_uptodate(&self, f: FolioId) {
        self.log(f, "set_uptodate");
        self.with(f, |s| {
            s.uptodate = true;
            (!s.locked).then(|| "set uptodate while unlocked".into())
        });
    }
    fn set_dirty(&self, f: FolioId) {
        self.log(f, "set_dirty");
        self.with(f, |s| {
            s.dirty = true;
            (!s.writeback).then(|| "redirtied outside writeback".into())
        });
    }
    fn clear_reclaim(&self, f: FolioId) {
        self.log(f, "clear_reclaim");
        self.with(f, |s| {
            s.reclaim = false;
            None
        });
    }
    fn start_writeback(&self, f: FolioId) {
        self.log(f, "start_writeback");
        self.with(f, |s| {
            let bad = if !s.locked {
                Some("writeback started on an unlocked folio".into())
            } else if s.writeback {
                Some("writeback started twice".into())
            } else {
                None
            };
            s.writeback = true;
            // The kernel clears dirty when the write is issued (folio_clear_dirty_for_io).
            s.dirty = false;
            bad
        });
    }
    fn end_writeback(&self, f: FolioId) {
        self.log(f, "end_writeback");
        self.with(f, |s| {
            let bad = (!s.writeback).then(|| "writeback ended twice or never started".into());
            s.writeback = false;
            s.writeback_ends += 1;
            bad
        });
    }
    fn unlock(&self, f: FolioId) {
        self.log(f, "unlock");
        self.with(f, |s| {
            let bad = (!s.locked).then(|| "unlocked twice".into());
            s.locked = false;
            s.unlocks += 1;
            bad
        });
    }
    fn pin(&self, f: FolioId) {
        self.log(f, "pin");
        self.zero_page_violation(f, "pinned");
        *self.pins_taken.lock().unwrap_or_else(|e| e.into_inner()).entry(f).or_default() += 1;
        self.with(f, |s| {
            s.pins += 1;
            None
        });
    }
    fn unpin(&self, f: FolioId) {
        self.log(f, "unpin");
        self.zero_page_violation(f, "unpinned");
        self.with(f, |s| {
            s.pins -= 1;
            (s.pins < 0).then(|| "unpinned more than pinned".into())
        });
    }
    fn event(&self, e: SwapEvent) {
        if let SwapEvent::WriteFailed { folio, .. } = e {
            self.with(folio, |s| (!s.dirty).then(|| "write failed but folio not redirtied".into()));
        }
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
}

/// Folio memory shared by a test and [`MemDevice`]: what each folio handle points at.
#[derive(Debug, Default, Clone)]
pub struct FolioMemory {
    inner: Arc<Mutex<HashMap<FolioId, Vec<u8>>>>,
}

impl FolioMemory {
    /// Empty folio memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the bytes of a folio (its size is `data.len()`).
    pub fn set(&self, f: FolioId, data: Vec<u8>) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).insert(f, data);
    }

    /// The bytes of a folio.
    pub fn get(&self, f: FolioId) -> Option<Vec<u8>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).get(&f).cloned()
    }
}

/// What [`MemDevice`] does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Move the bytes (the first `n` only, if `Ok(n)` is short; none on error) and
    /// answer `Done(result)`; `None` means a full transfer.
    Inline(Option<Result<u64, Errno>>),
    /// Move the bytes like `Inline`, but answer `Queued` and leave the completion in
    /// [`MemDevice::take_queued`] for the test to deliver.
    Queue(Option<Result<u64, Errno>>),
    /// A buggy backend: queue the completion like `Queue` (to the [`OnQueued`] hook or
    /// [`MemDevice::take_queued`]) *and* answer `Done` with the same result. The engine
    /// must accept only one of the two completions.
    QueueAndDone(Option<Result<u64, Errno>>),
}

/// Decides the [`Action`] for each request.
pub type Script = Arc<dyn Fn(&Request<'_>) -> Action + Send + Sync>;

/// Receives the completion of a queued request instead of [`MemDevice::take_queued`].
/// It runs inside `submit`, after the bytes moved and before `Queued` is returned, so it
/// can deliver the completion *before submit returns* (the kernel's async completion
/// racing `swap_rw`).
pub type OnQueued = Arc<dyn Fn(RequestId, Result<u64, Errno>) + Send + Sync>;

/// An in-memory swap device (device or file address space alike): a byte array that
/// requests copy folio memory into and out of.
pub struct MemDevice {
    caps: BackendCaps,
    bytes: Mutex<Vec<u8>>,
    folios: FolioMemory,
    script: Mutex<Script>,
    queued: Mutex<Vec<(RequestId, Result<u64, Errno>)>>,
    on_queued: Mutex<Option<OnQueued>>,
    seen: Mutex<Vec<SeenRequest>>,
}

/// A request as the device saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// Its id.
    pub id: RequestId,
    /// Direction.
    pub dir: Direction,
    /// Flags.
    pub flags: crate::iocb::ReqFlags,
    /// Position.
    pub pos: u64,
    /// Length.
    pub len: u64,
    /// Segments.
    pub segments: Vec<crate::iocb::Segment>,
}

impl MemDevice {
    /// A device of `size` bytes that completes everything inline and fully.
    pub fn new(caps: BackendCaps, size: usize, folios: FolioMemory) -> Self {
        MemDevice {
            caps,
            bytes: Mutex::new(std::vec![0; size]),
            folios,
            script: Mutex::new(Arc::new(|_: &Request<'_>| Action::Inline(None))),
            queued: Mutex::new(Vec::new()),
            on_queued: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the script.
    pub fn set_script(&self, script: Script) {
        *self.script.lock().unwrap_or_else(|e| e.into_inner()) = script;
    }

    /// Hands every later queued completion to `hook` (inside `submit`, before it returns
    /// `Queued`) instead of keeping it for [`MemDevice::take_queued`]; `None` restores that.
    pub fn set_on_queued(&self, hook: Option<OnQueued>) {
        *self.on_queued.lock().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    /// Takes the completions of queued requests, oldest first.
    pub fn take_queued(&self) -> Vec<(RequestId, Result<u64, Errno>)> {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Every request seen, in submission order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A copy of `len` device bytes at `pos`.
    pub fn read_bytes(&self, pos: u64, len: usize) -> Vec<u8> {
        let b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let start = usize::try_from(pos).unwrap_or(usize::MAX);
        b.get(start..start.saturating_add(len)).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// Moves up to `limit` bytes of the request between folios and the device.
    fn transfer(&self, req: &Request<'_>, limit: u64) {
        let mut dev = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let mut folios = self.folios.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(mut pos) = usize::try_from(req.pos()) else { return };
        let mut left = limit as usize;
        for seg in req.segments() {
            let n = (seg.len as usize).min(left);
            let off = seg.offset as usize;
            let buf = folios.entry(seg.folio).or_insert_with(|| std::vec![0; off + seg.len as usize]);
            // Checked: a position near `u64::MAX` (any map the engine accepts) is simply
            // not on this device.
            if buf.len() < off + n || pos.checked_add(n).is_none_or(|end| dev.len() < end) {
                return;
            }
            match req.direction() {
                Direction::Write => dev[pos..pos + n].copy_from_slice(&buf[off..off + n]),
                Direction::Read => buf[off..off + n].copy_from_slice(&dev[pos..pos + n]),
            }
            pos += seg.len as usize;
            left -= n;
        }
    }
}

impl Backend for MemDevice {
    fn caps(&self) -> BackendCaps {
        self.caps
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(SeenRequest {
            id: req.id(),
            dir: req.direction(),
            flags: req.flags(),
            pos: req.pos(),
            len: req.len(),
            segments: req.segments().collect(),
        });
        let script = self.script.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let action = script(req);
        let (Action::Inline(r) | Action::Queue(r) | Action::QueueAndDone(r)) = action;
        let result = r.unwrap_or(Ok(req.len()));
        self.transfer(req, result.unwrap_or(0).min(req.len()));
        if matches!(action, Action::Inline(_)) {
            return Submit::Done(result);
        }
        let hook = self.on_queued.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match hook {
            Some(hook) => hook(req.id(), result),
            None => self.queued.lock().unwrap_or_else(|e| e.into_inner()).push((req.id(), result)),
        }
        match action {
            Action::QueueAndDone(_) => Submit::Done(result),
            _ => Submit::Queued,
        }
    }
}

/// A script that asks `plan` what to do with each request, the decisions every fault
/// injector shares (a seed reproduces a run): a full transfer, an errno, or a short
/// transfer. The outcome is answered inline, or queued for [`MemDevice::take_queued`]
/// (or the [`OnQueued`] hook) when `queued` says so for the request's sequence number.
pub fn fault_script(
    plan: Arc<crate::fault::FaultPlan>,
    queued: impl Fn(u64) -> bool + Send + Sync + 'static,
) -> Script {
    let n = std::sync::atomic::AtomicU64::new(0);
    Arc::new(move |req: &Request<'_>| {
        let result = match plan.next(req.len()) {
            crate::fault::Fault::None => None,
            crate::fault::Fault::Error(e) => Some(Err(e)),
            crate::fault::Fault::Short(done) => Some(Ok(done)),
        };
        if queued(n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
            Action::Queue(result)
        } else {
            Action::Inline(result)
        }
    })
}

/// A dense device-mode map from `(pages, first physical page)` runs, in slot order:
/// slot 0 is the first page of the first run. Consecutive runs are not merged, so a
/// test can place an extent boundary between physically adjacent pages.
pub fn device_map(runs: &[(u64, u64)]) -> Result<SwapMap<Vec<MapEntry>>, MapError> {
    let mut next = 0u64;
    let mut entries = Vec::with_capacity(runs.len());
    for &(pages, phys) in runs {
        entries.push(MapEntry { first_slot: next, pages, start: phys.saturating_mul(crate::PAGE_SIZE as u64) });
        next = next.saturating_add(pages);
    }
    SwapMap::new(entries, IoMode::Device)
}

/// A file-mode map of `slots` slots: slot i is file page i (`swap_dev_pos`).
pub fn file_map(slots: u64) -> Result<SwapMap<Vec<MapEntry>>, MapError> {
    SwapMap::new(std::vec![MapEntry { first_slot: 0, pages: slots, start: 0 }], IoMode::File)
}

/// An engine over [`MemDevice`] and [`MemPages`] borrowed from a [`TestWorld`].
pub type WorldEngine<'w> = crate::engine::Engine<Vec<MapEntry>, crate::iocb::OwnedStorage, &'w MemDevice, &'w MemPages>;

/// Everything an engine test needs around the engine: folio memory, an in-memory device
/// sharing it, and a page-state recorder. Build engines over it with [`TestWorld::engine`].
pub struct TestWorld {
    /// Folio contents, shared with `dev`.
    pub mem: FolioMemory,
    /// The scripted backend.
    pub dev: MemDevice,
    /// The page operations and rule checks.
    pub pages: MemPages,
}

impl TestWorld {
    /// A world whose device has `caps` and `device_bytes` bytes.
    pub fn new(caps: BackendCaps, device_bytes: usize) -> Self {
        let mem = FolioMemory::new();
        TestWorld { dev: MemDevice::new(caps, device_bytes, mem.clone()), mem, pages: MemPages::new() }
    }

    /// An engine over `map` with owned request storage of `config`.
    pub fn engine(
        &self,
        map: SwapMap<Vec<MapEntry>>,
        config: crate::iocb::StorageConfig,
    ) -> Result<WorldEngine<'_>, crate::engine::EngineError> {
        crate::engine::Engine::new(map, crate::iocb::OwnedStorage::new(config)?, &self.dev, &self.pages)
    }

    /// Readies `folio` for swap-out: its memory filled with `fill` (one byte per page
    /// offset by the page index, so pages differ) and its state locked, dirty, reclaim.
    pub fn prepare_write(&self, folio: crate::page::Folio, fill: u8) {
        let page = crate::PAGE_SIZE;
        let data = (0..folio.pages as usize * page).map(|i| fill.wrapping_add((i / page) as u8)).collect();
        self.mem.set(folio.id, data);
        self.pages.prepare_write(folio.id);
    }

    /// Readies `folio` for swap-in: zeroed memory, locked, not uptodate.
    pub fn prepare_read(&self, folio: crate::page::Folio) {
        self.mem.set(folio.id, std::vec![0; folio.pages as usize * crate::PAGE_SIZE]);
        self.pages.prepare_read(folio.id);
    }
}
