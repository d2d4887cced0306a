//! The swap I/O state machine: `swap_read` / `swap_write` / `complete`, generic over a
//! [`Backend`] and the caller's [`PageOps`].
//!
//! Mirrors `mm/page_io.c`: writes count the event, start writeback and unlock the folio
//! before plugging; a request goes to the backend with two references (submitter and
//! completion); `Done` and `Queued` outcomes reach one completion function; the last
//! reference frees the request exactly once. **Better than the kernel:** short I/O is
//! accounted per segment, a miss in the map is an error, an empty pool is reported
//! instead of waited on, and a stale or duplicate completion is refused.

mod complete;
mod submit;

use crate::backend::Backend;
use crate::caps::{writes_enter_fs, BackendCaps, IoMode};
use crate::errno::Errno;
use crate::iocb::{RequestSlot, Storage, MAX_REQUEST_SLOTS, PHASE_FREE};
use crate::map::{MapEntry, MapError, SwapMap};
use crate::page::{Direction, Folio, FsContext, IoFailure, PageOps};
use crate::plug::{Plug, PlugState};
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
    pub fn write<'e>(&'e self, plug: Option<&mut PlugState<'e>>, folio: Folio, fs: FsContext) -> Result<(), SwapError> {
        self.queue(plug, Direction::Write, folio, fs)
    }

    /// Swap-in into a locked, not-uptodate folio (`swap_read_folio`).
    ///
    /// On `Ok` completion marks it uptodate and unlocks it, or unlocks it without
    /// uptodate on failure. On `Err` the folio is untouched and still locked.
    pub fn read<'e>(&'e self, plug: Option<&mut PlugState<'e>>, folio: Folio) -> Result<(), SwapError> {
        self.queue(plug, Direction::Read, folio, FsContext::MayEnterFs)
    }

    /// Submits the plug's held batch, if any (`swap_write_unplug`, `swap_read_unplug`).
    ///
    /// A stale copy of a plug (another copy added to or submitted the batch) is
    /// [`SwapError::StalePlug`]: nothing is submitted and the plug is empty afterwards.
    pub fn finish_plug<'e>(&'e self, plug: &mut PlugState<'e>) -> Result<(), SwapError> {
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
    /// [`PageOps::wake`] with [`Wake::Sync`](crate::page::Wake::Sync) after making `done()` true, so a kernel caller
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
