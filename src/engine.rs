//! The swap I/O state machine: `swap_read` / `swap_write` / `complete`, generic over a
//! [`Backend`] and the caller's [`PageOps`].
//!
//! Mirrors `mm/page_io.c`: writes count the event, start writeback and unlock the folio
//! before plugging; a request goes to the backend with two references (submitter and
//! completion); `Done` and `Queued` outcomes reach one completion function; the last
//! reference frees the request exactly once. **Better than the kernel:** short I/O is
//! accounted per segment, a miss in the map is an error, an empty pool is reported
//! instead of waited on, and a stale or duplicate completion is refused.

use crate::backend::{Backend, Submit};
use crate::caps::{writes_enter_fs, BackendCaps, IoMode};
use crate::errno::Errno;
use crate::iocb::{
    building, generation, state, ReqFlags, Request, RequestId, RequestSlot, Segment, Storage, MAX_REQUEST_SLOTS,
    PHASE_BUILDING, PHASE_DONE, PHASE_FREE, PHASE_IN_FLIGHT, SEALED,
};
use crate::map::{MapEntry, MapError, Run, SwapMap};
use crate::page::{Direction, Folio, FolioId, FsContext, IoFailure, PageOps, SwapEvent, Wake, MAX_FOLIO_PAGES};
use crate::plug::{Held, Plug, PlugState};
use crate::pool;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::PAGE_SIZE;

const PAGE: u64 = PAGE_SIZE as u64;

/// Why a swap read or write was not started (the folio is untouched) or, for
/// synchronous requests, why it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SwapError {
    /// A slot of the folio is outside the map.
    #[error(transparent)]
    Map(#[from] MapError),
    /// Slot 0 holds the swap header and is never used for data.
    #[error("slot 0 holds the swap header")]
    HeaderSlot,
    /// The folio descriptor is invalid.
    #[error("invalid folio: {0}")]
    InvalidFolio(&'static str),
    /// No free request (pool, sync slots or split trackers exhausted). Any held batch
    /// was submitted first; the folio is untouched. Retry after a completion.
    #[error("no free request; held batch submitted, folio untouched")]
    WouldBlock,
    /// A write that would enter the filesystem from a `NoFs` context.
    #[error("swap write would enter the filesystem from a NOFS context")]
    NeedsFsContext,
    /// The swap area is being deactivated.
    #[error("swap area is being deactivated")]
    Deactivated,
    /// The folio spans more extents than there are requests to carry its parts.
    #[error("folio spans {parts} extents, more than the {available} requests available")]
    TooFragmented {
        /// Parts the folio needs.
        parts: usize,
        /// Requests that exist.
        available: usize,
    },
    /// The plug state belongs to another engine.
    #[error("plug belongs to another engine")]
    ForeignPlug,
    /// The plug is a stale copy: another copy of it added to or submitted its batch.
    /// The stale batch was forgotten (never submitted twice); the folio is untouched.
    #[error("stale plug: a copy of it moved its batch on")]
    StalePlug,
    /// Deactivation refused: requests are still held or in flight.
    #[error("{in_flight} requests still in flight")]
    Busy {
        /// Requests not yet released.
        in_flight: usize,
    },
    /// A synchronous request completed with an error (the page state was handled).
    #[error("{0}")]
    Io(IoFailure),
}

impl SwapError {
    /// Kernel-style errno for the error.
    pub const fn errno(&self) -> Errno {
        match self {
            SwapError::Map(_) | SwapError::HeaderSlot | SwapError::InvalidFolio(_) | SwapError::ForeignPlug => {
                Errno::EINVAL
            }
            // Distinct from any errno a backend reports, so a sync caller can tell
            // "not started, folio untouched" from "the I/O failed".
            SwapError::WouldBlock => Errno::ENOBUFS,
            SwapError::NeedsFsContext => Errno::EDEADLK,
            SwapError::Deactivated => Errno::EINVAL,
            SwapError::TooFragmented { .. } => Errno::ERANGE,
            SwapError::Busy { .. } => Errno::EBUSY,
            SwapError::StalePlug => Errno::ESTALE,
            SwapError::Io(f) => f.errno(),
        }
    }
}

/// Why a completion was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CompleteError {
    /// No request slot has that index.
    #[error("no request with index {0}")]
    UnknownRequest(usize),
    /// The request is not in flight under that generation: completed already, or never
    /// submitted. Nothing was done.
    #[error("request {index}/{generation} is not in flight (double or stale completion)")]
    NotInFlight {
        /// Slot index.
        index: usize,
        /// Generation given.
        generation: u64,
    },
}

/// Why an engine could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EngineError {
    /// The async pool has no request.
    #[error("request pool is empty")]
    EmptyPool,
    /// More pool and sync slots together than request ids can name
    /// ([`crate::iocb::MAX_REQUEST_SLOTS`]).
    #[error("too many request slots")]
    TooManySlots,
    /// No sync slot: `write_sync` and `read_sync` (the kernel's `WB_SYNC_ALL` and
    /// synchronous swap-in paths, always available there) could never run.
    #[error("no sync request slot")]
    NoSyncSlots,
    /// Storage handed in is still in use.
    #[error("request storage is in use")]
    StorageInUse,
    /// The allocator could not provide the storage ([`crate::OwnedStorage::new`]).
    #[error("out of memory for the request storage")]
    OutOfMemory,
    /// The backend cannot do the I/O the map's mode needs.
    #[error("backend lacks the capabilities for {0} mode")]
    CapsMismatch(IoMode),
}

/// Counters since activation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Requests handed to the backend.
    pub requests_submitted: u64,
    /// Requests completed (either outcome).
    pub requests_completed: u64,
    /// Pages submitted for writing.
    pub pages_out: u64,
    /// Pages read successfully.
    pub pages_in: u64,
    /// Folios whose write failed (redirtied).
    pub write_failures: u64,
    /// Folios whose read failed.
    pub read_failures: u64,
    /// Requests that completed short.
    pub short_transfers: u64,
    /// Calls answered with `WouldBlock`.
    pub would_block: u64,
    /// Completions refused (double, stale, or a `Done` after the backend completed).
    pub rejected_completions: u64,
}

#[derive(Default)]
struct Counters {
    requests_submitted: AtomicU64,
    requests_completed: AtomicU64,
    pages_out: AtomicU64,
    pages_in: AtomicU64,
    write_failures: AtomicU64,
    read_failures: AtomicU64,
    short_transfers: AtomicU64,
    would_block: AtomicU64,
    rejected_completions: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The swap engine of one active swap area.
pub struct Engine<M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    map: SwapMap<M>,
    storage: S,
    backend: B,
    pages: P,
    caps: BackendCaps,
    enter_fs: bool,
    pool_hint: AtomicUsize,
    sync_hint: AtomicUsize,
    closing: AtomicBool,
    counters: Counters,
}

impl<M, S, B, P> Engine<M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    /// Sets up the engine over an activated map. The request reserve is `storage`,
    /// fixed from now on: nothing on the I/O path allocates.
    ///
    /// The storage is claimed for the engine's lifetime (a mark in its first pool slot,
    /// released when the engine is dropped): a second engine over storage in use is
    /// [`EngineError::StorageInUse`], as is storage with a request not free.
    pub fn new(map: SwapMap<M>, storage: S, backend: B, pages: P) -> Result<Self, EngineError> {
        let pool = storage.pool();
        let Some(first) = pool.first() else {
            return Err(EngineError::EmptyPool);
        };
        if storage.sync().is_empty() {
            return Err(EngineError::NoSyncSlots);
        }
        if pool.len().saturating_add(storage.sync().len()) > MAX_REQUEST_SLOTS {
            return Err(EngineError::TooManySlots);
        }
        let caps = backend.caps();
        let mode = map.mode();
        let capable = match mode {
            IoMode::Device => caps.contains(BackendCaps::DEVICE_IO),
            IoMode::File => caps.contains(BackendCaps::SWAP_RW),
        };
        if !capable {
            return Err(EngineError::CapsMismatch(mode));
        }
        if !first.claim_storage() {
            return Err(EngineError::StorageInUse);
        }
        let all_free = pool.iter().chain(storage.sync()).all(RequestSlot::is_free)
            && storage.splits().iter().all(|s| s.busy.load(Ordering::Acquire) == 0);
        if !all_free {
            first.release_storage();
            return Err(EngineError::StorageInUse);
        }
        Ok(Engine {
            map,
            storage,
            backend,
            pages,
            caps,
            enter_fs: writes_enter_fs(mode, caps),
            pool_hint: AtomicUsize::new(0),
            sync_hint: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    /// The slot map.
    pub fn map(&self) -> &SwapMap<M> {
        &self.map
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The page operations.
    pub fn page_ops(&self) -> &P {
        &self.pages
    }

    /// The I/O mode.
    pub fn mode(&self) -> IoMode {
        self.map.mode()
    }

    /// The backend's capabilities, as read at setup.
    pub fn caps(&self) -> BackendCaps {
        self.caps
    }

    /// Whether writes need a context that may enter the filesystem.
    pub fn writes_enter_fs(&self) -> bool {
        self.enter_fs
    }

    /// Starts a plug that submits its batch when dropped.
    pub fn plug(&self) -> Plug<'_, M, S, B, P> {
        Plug::new(self)
    }

    /// Swap-out of a locked, dirty folio (`swap_writepage`).
    ///
    /// On `Ok` the engine owns the write: it counted `SwapOut`, started writeback,
    /// unlocked the folio, pinned it, and queued it in `plug` (or submitted it at once
    /// with no plug). Completion ends writeback, redirtying on failure. On `Err` the
    /// folio is untouched and still locked and dirty.
    pub fn write(&self, plug: Option<&mut PlugState>, folio: Folio, fs: FsContext) -> Result<(), SwapError> {
        self.queue(plug, Direction::Write, folio, fs)
    }

    /// Swap-in into a locked, not-uptodate folio (`swap_read_folio`).
    ///
    /// On `Ok` completion marks it uptodate and unlocks it, or unlocks it without
    /// uptodate on failure. On `Err` the folio is untouched and still locked.
    pub fn read(&self, plug: Option<&mut PlugState>, folio: Folio) -> Result<(), SwapError> {
        self.queue(plug, Direction::Read, folio, FsContext::MayEnterFs)
    }

    /// Submits the plug's held batch, if any (`swap_write_unplug`, `swap_read_unplug`).
    ///
    /// A stale copy of a plug (another copy added to or submitted the batch) is
    /// [`SwapError::StalePlug`]: nothing is submitted and the plug is empty afterwards.
    pub fn finish_plug(&self, plug: &mut PlugState) -> Result<(), SwapError> {
        self.own(plug)?;
        match plug.held.take() {
            Some(h) => self.submit_held(h),
            None => Ok(()),
        }
    }

    /// Synchronous swap-out (`WB_SYNC_ALL`): submits with the `SYNC` flag from a
    /// caller-owned sync slot, calls `wait` until the request completes, and returns its
    /// outcome. The page actions are the same as for async writes.
    pub fn write_sync(&self, folio: Folio, fs: FsContext, mut wait: impl FnMut()) -> Result<(), SwapError> {
        self.sync_io(Direction::Write, folio, fs, |_| {
            wait();
            crate::sync::spin_hint();
        })
    }

    /// [`Engine::write_sync`] for callers that sleep: `wait(done)` must return once
    /// `done()` is true (it may return early; it is called again). The completion calls
    /// [`PageOps::wake`] with [`Wake::Sync`] after making `done()` true, so a kernel caller
    /// is `wait_event(wq, done())` with `wake_up(&wq)` in `wake`: no polling, no spinning.
    pub fn write_sync_until(
        &self,
        folio: Folio,
        fs: FsContext,
        wait: impl FnMut(&dyn Fn() -> bool),
    ) -> Result<(), SwapError> {
        self.sync_io(Direction::Write, folio, fs, wait)
    }

    /// Synchronous swap-in for callers that sleep; see [`Engine::write_sync_until`].
    pub fn read_sync_until(&self, folio: Folio, wait: impl FnMut(&dyn Fn() -> bool)) -> Result<(), SwapError> {
        self.sync_io(Direction::Read, folio, FsContext::MayEnterFs, wait)
    }

    /// Synchronous swap-in; see [`Engine::write_sync`].
    pub fn read_sync(&self, folio: Folio, mut wait: impl FnMut()) -> Result<(), SwapError> {
        self.sync_io(Direction::Read, folio, FsContext::MayEnterFs, |_| {
            wait();
            crate::sync::spin_hint();
        })
    }

    /// The completion entry point (`ki_complete` / `sio_*_complete`), callable from any
    /// thread, also before the backend's `submit` has returned. `result` is the bytes
    /// transferred or the error. Exactly one completion per request is accepted.
    pub fn complete(&self, id: RequestId, result: Result<u64, Errno>) -> Result<(), CompleteError> {
        let slot = self.slot_at(id.index()).ok_or(CompleteError::UnknownRequest(id.index()))?;
        let claimed = slot.state.compare_exchange(
            state(id.generation(), PHASE_IN_FLIGHT),
            state(id.generation(), PHASE_DONE),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        if claimed.is_err() {
            bump(&self.counters.rejected_completions, 1);
            return Err(CompleteError::NotInFlight { index: id.index(), generation: id.generation() });
        }
        // Verification only (`--cfg swapdio_broken="release_before_finish"`): drop the
        // completion's reference before the page actions read the request, so a plug's next
        // batch can reuse the slot under them. `tests/loom_plug.rs` must catch it.
        #[cfg(swapdio_broken = "release_before_finish")]
        pool::put(slot);
        self.finish_request(slot, result);
        #[cfg(not(swapdio_broken = "release_before_finish"))]
        let released = pool::put(slot);
        #[cfg(swapdio_broken = "release_before_finish")]
        let released = false;
        if id.index() >= self.storage.pool().len() {
            // The sync waiter's condition (only its own reference left) now holds.
            self.pages.wake(Wake::Sync);
        } else if released {
            self.pages.wake(Wake::Pool);
        }
        Ok(())
    }

    /// Drops the submitter's reference to an async request; wakes a caller waiting for a
    /// free request if that released it (the completion already ran).
    fn put_async(&self, slot: &RequestSlot) {
        if pool::put(slot) {
            self.pages.wake(Wake::Pool);
        }
    }

    /// Stops new I/O and reports whether every request has been released
    /// (swapoff drains every user before the map is freed). Call again after
    /// completions until it returns `Ok`.
    pub fn deactivate(&self) -> Result<(), SwapError> {
        self.closing.store(true, Ordering::SeqCst);
        match self.in_flight() {
            0 => Ok(()),
            in_flight => Err(SwapError::Busy { in_flight }),
        }
    }

    /// Requests held by plugs, in flight, or awaiting release.
    pub fn in_flight(&self) -> usize {
        let s = &self.storage;
        s.pool().iter().chain(s.sync()).filter(|r| !r.is_free()).count()
    }

    /// Free requests in the async pool.
    pub fn pool_free(&self) -> usize {
        self.storage.pool().iter().filter(|r| r.is_free()).count()
    }

    /// Counters since activation.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            requests_submitted: l(&c.requests_submitted),
            requests_completed: l(&c.requests_completed),
            pages_out: l(&c.pages_out),
            pages_in: l(&c.pages_in),
            write_failures: l(&c.write_failures),
            read_failures: l(&c.read_failures),
            short_transfers: l(&c.short_transfers),
            would_block: l(&c.would_block),
            rejected_completions: l(&c.rejected_completions),
        }
    }

    // ---- submission -------------------------------------------------------------

    fn slot_at(&self, index: usize) -> Option<&RequestSlot> {
        let pool = self.storage.pool();
        match index.checked_sub(pool.len()) {
            None => pool.get(index),
            Some(i) => self.storage.sync().get(i),
        }
    }

    fn owner_tag(&self) -> usize {
        self.storage.pool().as_ptr() as usize
    }

    fn own(&self, plug: &mut PlugState) -> Result<(), SwapError> {
        let me = self.owner_tag();
        match plug.owner {
            0 => plug.owner = me,
            o if o != me => return Err(SwapError::ForeignPlug),
            _ => {}
        }
        Ok(())
    }

    /// Checks everything that can be checked before touching the folio.
    fn check(&self, dir: Direction, folio: &Folio, fs: FsContext) -> Result<Run, SwapError> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(SwapError::Deactivated);
        }
        if folio.pages == 0 || folio.pages > MAX_FOLIO_PAGES {
            return Err(SwapError::InvalidFolio("a folio has 1 to 2^18 pages"));
        }
        if dir == Direction::Read && folio.zero_page {
            return Err(SwapError::InvalidFolio("the zero page is never read into"));
        }
        if dir == Direction::Write && self.enter_fs && fs == FsContext::NoFs {
            return Err(SwapError::NeedsFsContext);
        }
        if folio.slot == 0 {
            return Err(SwapError::HeaderSlot);
        }
        let slots = self.map.slots();
        match folio.slot.checked_add(u64::from(folio.pages)) {
            Some(end) if end <= slots => {}
            _ => {
                let slot = folio.slot.saturating_add(u64::from(folio.pages) - 1);
                return Err(MapError::SlotOutOfRange { slot, slots }.into());
            }
        }
        Ok(self.map.lookup(folio.slot)?)
    }

    /// How many extents (and so requests) the folio needs.
    fn count_parts(&self, folio: &Folio, first: Run) -> Result<usize, SwapError> {
        let mut parts = 1;
        let mut taken = first.pages;
        while taken < u64::from(folio.pages) {
            taken += self.map.lookup(folio.slot + taken)?.pages;
            parts += 1;
        }
        Ok(parts)
    }

    /// The write prelude of `swap_writepage_fs`: count, start writeback, unlock.
    fn prelude(&self, dir: Direction, folio: &Folio) {
        if dir == Direction::Write {
            self.pages.event(SwapEvent::SwapOut { pages: u64::from(folio.pages) });
            self.pages.start_writeback(folio.id);
            self.pages.unlock(folio.id);
        }
    }

    fn would_block(&self) -> SwapError {
        bump(&self.counters.would_block, 1);
        SwapError::WouldBlock
    }

    fn queue(
        &self,
        plug: Option<&mut PlugState>,
        dir: Direction,
        folio: Folio,
        fs: FsContext,
    ) -> Result<(), SwapError> {
        let run = self.check(dir, &folio, fs)?;
        let mut local = PlugState::new();
        let unplugged = plug.is_none();
        let plug = plug.unwrap_or(&mut local);
        self.own(plug)?;
        if run.pages < u64::from(folio.pages) {
            return self.queue_split(plug, dir, folio, run);
        }
        // Verification only (`--cfg swapdio_broken="plug_flush_late"`): take the new request
        // before flushing the held batch, so an empty pool answers `WouldBlock` while the
        // batch is still held (the caller would wait for a completion that can never come).
        // `tests/loom_plug.rs` must catch it.
        #[cfg(swapdio_broken = "plug_flush_late")]
        if plug.held.is_some_and(|h| !h.accepts(dir, run.pos)) && self.pool_free() == 0 {
            return Err(self.would_block());
        }
        // Not adjacent, other direction, or full: submit the old batch first, before
        // taking a new request (never wait for the pool while holding a batch).
        if let Some(h) = plug.held {
            if !h.accepts(dir, run.pos) {
                plug.held = None;
                self.submit_held(h)?;
            }
        }
        let mut held = match plug.held {
            Some(h) => h,
            None => {
                let (index, generation) =
                    pool::claim(self.storage.pool(), &self.pool_hint).ok_or_else(|| self.would_block())?;
                Held { index: index as u32, generation, dir, pos: run.pos, len: 0, nr: 0 }
            }
        };
        // Take segment `nr` of the batch: only the plug whose count is current moves it on
        // (a stale copy is refused before the folio is touched).
        let Some(slot) = self.slot_at(held.index as usize).filter(|slot| advance(slot, &held, u64::from(held.nr) + 1))
        else {
            plug.held = None;
            return Err(SwapError::StalePlug);
        };
        self.prelude(dir, &folio);
        let len = folio.pages * PAGE_SIZE as u32;
        self.add_segment(slot, held.nr as usize, &folio, 0, len, None);
        held.nr += 1;
        held.len += u64::from(len);
        if unplugged || held.nr as usize == crate::iocb::MAX_SEGMENTS {
            plug.held = None;
            // This call just moved the count on: it is current, the seal cannot fail.
            let _ = self.submit_held(held);
        } else {
            plug.held = Some(held);
        }
        Ok(())
    }

    fn add_segment(&self, slot: &RequestSlot, i: usize, folio: &Folio, offset: u32, len: u32, group: Option<u32>) {
        slot.set_segment(i, Segment { folio: folio.id, offset, len }, folio.zero_page, group);
        if !folio.zero_page {
            self.pages.pin(folio.id);
        }
    }

    /// Seals a plug's batch (only the plug whose count is current wins) and submits it.
    fn submit_held(&self, h: Held) -> Result<(), SwapError> {
        let slot = self
            .slot_at(h.index as usize)
            .filter(|slot| h.nr > 0 && advance(slot, &h, SEALED))
            .ok_or(SwapError::StalePlug)?;
        let id = RequestId::from_parts(h.index as usize, h.generation);
        self.submit(slot, id, h.dir, h.pos, h.len, h.nr as usize, ReqFlags::SWAP);
        self.put_async(slot);
        Ok(())
    }

    /// Hands a built request to the backend with two references (submitter, completion).
    /// The caller drops the submitter's reference with `pool::put`.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        slot: &RequestSlot,
        id: RequestId,
        dir: Direction,
        pos: u64,
        len: u64,
        nr: usize,
        flags: ReqFlags,
    ) {
        slot.pos.store(pos, Ordering::Relaxed);
        slot.len.store(len, Ordering::Relaxed);
        slot.result.store(0, Ordering::Relaxed);
        slot.set_info(nr, dir, flags);
        slot.refs.store(2, Ordering::Relaxed);
        slot.state.store(state(id.generation(), PHASE_IN_FLIGHT), Ordering::Release);
        bump(&self.counters.requests_submitted, 1);
        if dir == Direction::Write {
            bump(&self.counters.pages_out, len / PAGE);
        }
        let req = Request { slot, id, mode: self.map.mode() };
        if let Submit::Done(result) = self.backend.submit(&req) {
            // One completion path: a backend that also called `complete` is refused here.
            let _ = self.complete(id, result);
        }
    }

    /// A folio spanning extents: one request per part, all claimed before the folio is
    /// touched, tracked by a split slot so the folio completes once.
    fn queue_split(&self, plug: &mut PlugState, dir: Direction, folio: Folio, run: Run) -> Result<(), SwapError> {
        let parts = self.count_parts(&folio, run)?;
        if let Some(h) = plug.held.take() {
            self.submit_held(h)?;
        }
        let pool = self.storage.pool();
        self.submit_parts(pool, 0, &self.pool_hint, dir, &folio, parts, ReqFlags::SWAP, true)?;
        Ok(())
    }

    /// Claims `parts` slots of `table` (whose first request index is `base`) and a split
    /// tracker if needed, runs the prelude, and submits one request per part.
    /// Returns the chain head. With `release`, drops the submitter references (async).
    #[allow(clippy::too_many_arguments)]
    fn submit_parts(
        &self,
        table: &[RequestSlot],
        base: usize,
        hint: &AtomicUsize,
        dir: Direction,
        folio: &Folio,
        parts: usize,
        flags: ReqFlags,
        release: bool,
    ) -> Result<usize, SwapError> {
        if parts > table.len() {
            return Err(SwapError::TooFragmented { parts, available: table.len() });
        }
        let head = pool::claim_chain(table, hint, parts).ok_or_else(|| self.would_block())?;
        let group = if parts > 1 {
            let Some(g) = pool::claim_split(self.storage.splits()) else {
                for (_, s) in pool::chain(table, head) {
                    pool::unclaim(s);
                }
                return Err(self.would_block());
            };
            if let Some(split) = self.storage.splits().get(g) {
                split.remaining.store(parts as u32, Ordering::Relaxed);
                split.failure.store(0, Ordering::Relaxed);
                split.folio.store(folio.id.0, Ordering::Relaxed);
                split.pages.store(folio.pages, Ordering::Relaxed);
            }
            Some(g as u32)
        } else {
            None
        };
        self.prelude(dir, folio);
        let mut done = 0u64;
        for (i, slot) in pool::chain(table, head) {
            let slot_no = folio.slot + done;
            // `check` and `count_parts` walked these same slots in this immutable map.
            let run = self.map.lookup(slot_no).unwrap_or(Run { pos: 0, pages: 0 });
            let take = run.pages.min(u64::from(folio.pages) - done);
            let generation = generation(slot.state.load(Ordering::Relaxed));
            self.add_segment(slot, 0, folio, (done * PAGE) as u32, (take * PAGE) as u32, group);
            let id = RequestId::from_parts(base + i, generation);
            self.submit(slot, id, dir, run.pos, take * PAGE, 1, flags);
            if release {
                self.put_async(slot);
            }
            done += take;
        }
        Ok(head)
    }

    fn sync_io(
        &self,
        dir: Direction,
        folio: Folio,
        fs: FsContext,
        mut wait: impl FnMut(&dyn Fn() -> bool),
    ) -> Result<(), SwapError> {
        let run = self.check(dir, &folio, fs)?;
        let parts = self.count_parts(&folio, run)?;
        let table = self.storage.sync();
        let base = self.storage.pool().len();
        let head = self.submit_parts(
            table,
            base,
            &self.sync_hint,
            dir,
            &folio,
            parts,
            ReqFlags::SWAP | ReqFlags::SYNC,
            false,
        )?;
        let mut failure = None;
        for (_, slot) in pool::chain(table, head) {
            // Our reference is the last one once the completion has dropped its own.
            let done = || slot.refs.load(Ordering::Acquire) == 1;
            while !done() {
                wait(&done);
            }
            let len = slot.len.load(Ordering::Relaxed);
            let result = slot.result.load(Ordering::Relaxed);
            if failure.is_none() {
                failure = decode_failure(result, len);
            }
            pool::put(slot);
        }
        match failure {
            None => Ok(()),
            Some(f) => Err(SwapError::Io(f)),
        }
    }

    // ---- completion -------------------------------------------------------------

    /// `sio_write_complete` / `sio_read_complete`, with short I/O accounted per segment.
    fn finish_request(&self, slot: &RequestSlot, result: Result<u64, Errno>) {
        let (nr, dir, _) = slot.info();
        let len = slot.len.load(Ordering::Relaxed);
        // A completion result is the kernel's `long`: a byte count beyond `i64::MAX` is
        // saturated so async failures and sync callers (who read the stored result) agree.
        let result = result.map(|b| b.min(i64::MAX as u64)).map_err(|e| if e.0 > 0 { e } else { Errno::EIO });
        let (good, failure) = match result {
            Ok(b) if b == len => (len, None),
            Ok(b) if b < len => (b, Some(IoFailure::Short { done: b, expected: len })),
            Ok(b) => (0, Some(IoFailure::Overrun { reported: b, expected: len })),
            Err(e) => (0, Some(IoFailure::Errno(e))),
        };
        slot.result.store(
            match result {
                Ok(b) => b.min(i64::MAX as u64) as i64,
                Err(e) => -i64::from(e.0),
            },
            Ordering::Relaxed,
        );
        if matches!(failure, Some(IoFailure::Short { .. })) {
            bump(&self.counters.short_transfers, 1);
        }
        let mut end = 0u64;
        for i in 0..nr {
            let Some((seg, zero_page, group)) = slot.segment(i) else { break };
            end += u64::from(seg.len);
            let outcome = if end <= good { None } else { failure };
            match group {
                None => self.finish_folio(dir, seg.folio, u64::from(seg.len) / PAGE, outcome),
                Some(g) => self.finish_part(dir, g, outcome),
            }
            if !zero_page {
                self.pages.unpin(seg.folio);
            }
        }
        bump(&self.counters.requests_completed, 1);
    }

    /// The page actions for one whole folio.
    fn finish_folio(&self, dir: Direction, folio: FolioId, pages: u64, outcome: Option<IoFailure>) {
        let p = &self.pages;
        match (dir, outcome) {
            (Direction::Write, None) => p.end_writeback(folio),
            (Direction::Write, Some(failure)) => {
                // Keep the data: dirty again, not reclaimable now, writeback over, no
                // error flag (the failure may be transient).
                p.set_dirty(folio);
                p.clear_reclaim(folio);
                p.end_writeback(folio);
                bump(&self.counters.write_failures, 1);
                p.event(SwapEvent::WriteFailed { folio, pages, failure, retryable: failure.is_transient() });
            }
            (Direction::Read, None) => {
                // Counted per folio, once its read succeeded as a whole (a split folio's
                // good part does not count when another part failed).
                bump(&self.counters.pages_in, pages);
                p.set_uptodate(folio);
                p.unlock(folio);
                p.event(SwapEvent::SwapIn { pages });
            }
            (Direction::Read, Some(failure)) => {
                // Never mark partial data uptodate.
                p.unlock(folio);
                bump(&self.counters.read_failures, 1);
                p.event(SwapEvent::ReadFailed { folio, pages, failure });
            }
        }
    }

    /// One part of a split folio; the last part runs the folio's page actions.
    fn finish_part(&self, dir: Direction, group: u32, outcome: Option<IoFailure>) {
        let Some(split) = self.storage.splits().get(group as usize) else { return };
        if let Some(f) = outcome {
            let _ = split.failure.compare_exchange(0, f.errno().0 as u32, Ordering::AcqRel, Ordering::Relaxed);
        }
        if split.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let errno = split.failure.load(Ordering::Acquire);
        let folio = FolioId(split.folio.load(Ordering::Relaxed));
        let pages = u64::from(split.pages.load(Ordering::Relaxed));
        pool::release_split(split);
        let outcome = (errno != 0).then_some(IoFailure::Errno(Errno(errno as i32)));
        self.finish_folio(dir, folio, pages, outcome);
        // Verification only (`--cfg swapdio_broken="unpin_twice"`): drop the folio's pin once
        // more when its last part completes, on top of the per-request unpin.
        // `tests/loom_split.rs` must catch it.
        #[cfg(swapdio_broken = "unpin_twice")]
        self.pages.unpin(folio);
    }
}

/// Moves a plug's batch from the count the plug holds to `to` (the next count, or
/// sealed); false if another copy of the plug moved it first or the slot was reused.
fn advance(slot: &RequestSlot, held: &Held, to: u64) -> bool {
    let from = building(held.generation, PHASE_BUILDING, u64::from(held.nr));
    let to = building(held.generation, PHASE_BUILDING, to);
    slot.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed).is_ok()
}

/// The failure a sync caller sees from a request's stored result.
fn decode_failure(result: i64, len: u64) -> Option<IoFailure> {
    if result < 0 {
        return Some(IoFailure::Errno(Errno(result.unsigned_abs().min(i32::MAX as u64) as i32)));
    }
    let done = result as u64;
    match done.cmp(&len) {
        core::cmp::Ordering::Equal => None,
        core::cmp::Ordering::Less => Some(IoFailure::Short { done, expected: len }),
        core::cmp::Ordering::Greater => Some(IoFailure::Overrun { reported: done, expected: len }),
    }
}

impl<M, S, B, P> Drop for Engine<M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    /// Releases the storage's claim: another engine may use it from now on.
    fn drop(&mut self) {
        if let Some(first) = self.storage.pool().first() {
            first.release_storage();
        }
    }
}

#[allow(dead_code)]
const _: () = assert!(PHASE_FREE == 0, "zeroed memory must be a free slot");
