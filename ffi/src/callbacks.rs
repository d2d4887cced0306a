//! The C callback tables as the core's traits: [`CBackend`] is a [`Backend`] (the
//! engine's `->swap_rw`), [`CPageOps`] is a [`PageOps`] (the `folio_*` calls).

use core::ffi::c_void;

use swapdio::{Backend, BackendCaps, Direction, FolioId, IoFailure, IoMode, PageOps, Request, Submit, SwapEvent, Wake};

use crate::error::io_result;
use crate::types::{
    swapdio_backend_ops, swapdio_direction, swapdio_event, swapdio_event_kind, swapdio_failure, swapdio_io,
    swapdio_mode, swapdio_page_ops, swapdio_segment, swapdio_wake, SWAPDIO_CAP_ALL, SWAPDIO_MAX_SEGMENTS,
    SWAPDIO_QUEUED,
};

type FolioFn = unsafe extern "C" fn(*mut c_void, u64);
type SubmitFn = unsafe extern "C" fn(*mut c_void, *const swapdio_io) -> i64;
type EventFn = unsafe extern "C" fn(*mut c_void, *const swapdio_event);
type WakeFn = unsafe extern "C" fn(*mut c_void, u32);

/// A backend implemented in C: `submit` returns bytes, `-errno`, or `SWAPDIO_QUEUED`
/// (the kernel's `-EIOCBQUEUED`), and a queued request is finished by
/// `swapdio_complete`.
pub(crate) struct CBackend {
    caps: BackendCaps,
    submit: SubmitFn,
    ctx: *mut c_void,
    requests: RequestArea,
}

/// Where each request's `swapdio_io` and private backend space live in the storage:
/// request slot `i` (pool slots, then sync slots) owns `stride` bytes at
/// `base + i * stride`, the `swapdio_io` first, its private space at `data_off`.
#[derive(Clone, Copy)]
pub(crate) struct RequestArea {
    pub(crate) base: *mut u8,
    pub(crate) stride: usize,
    pub(crate) count: usize,
    pub(crate) data_off: usize,
    pub(crate) has_data: bool,
}

const NO_REQUESTS: RequestArea =
    RequestArea { base: core::ptr::null_mut(), stride: 0, count: 0, data_off: 0, has_data: false };

// SAFETY: the backend table's contract (swapdio.h) is that `submit` may be called from
// any thread with `ctx`, concurrently; the struct holds nothing else but plain data.
unsafe impl Send for CBackend {}
// SAFETY: as above: `&CBackend` only reads the copied table and passes `ctx` along.
unsafe impl Sync for CBackend {}

impl CBackend {
    /// Copies and validates a C table: `submit` present, no unknown capability bit.
    pub(crate) fn new(ops: &swapdio_backend_ops, ctx: *mut c_void) -> Option<Self> {
        if ops.caps & !SWAPDIO_CAP_ALL != 0 || ops.reserved != 0 {
            return None;
        }
        Some(CBackend {
            caps: BackendCaps::from_bits_truncate(ops.caps),
            submit: ops.submit?,
            ctx,
            requests: NO_REQUESTS,
        })
    }

    /// Places each request's `swapdio_io` in `area` (the engine's storage).
    pub(crate) fn with_requests(self, area: RequestArea) -> Self {
        CBackend { requests: area, ..self }
    }
}

/// Direction as the C value.
pub(crate) const fn direction_code(d: Direction) -> u32 {
    match d {
        Direction::Read => swapdio_direction::Read as u32,
        Direction::Write => swapdio_direction::Write as u32,
    }
}

/// Mode as the C value.
pub(crate) const fn mode_code(m: IoMode) -> u32 {
    match m {
        IoMode::Device => swapdio_mode::Device as u32,
        IoMode::File => swapdio_mode::File as u32,
    }
}

impl Backend for CBackend {
    fn caps(&self) -> BackendCaps {
        self.caps
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        let a = self.requests;
        let index = req.id().index();
        if index >= a.count {
            // Cannot happen: the storage holds one area per request slot.
            return Submit::Done(Err(swapdio::Errno::EINVAL));
        }
        // SAFETY: `index < count`, so the stride is inside the storage block the caller
        // handed to `swapdio_engine_init` (sized by `swapdio_storage_layout`, aligned to
        // at least 16, which `stride` and `data_off` are multiples of). The engine hands
        // request slot `index` to one submitter at a time and does not reuse it before its
        // completion was accepted, so nothing else reads or writes this area now.
        let io = unsafe {
            let at = a.base.add(index * a.stride);
            let io = at.cast::<swapdio_io>();
            io.write(swapdio_io {
                id: req.id().to_u64(),
                pos: req.pos(),
                len: req.len(),
                direction: direction_code(req.direction()),
                flags: req.flags().bits(),
                mode: mode_code(req.mode()),
                nr_segments: 0,
                segments: [swapdio_segment::default(); SWAPDIO_MAX_SEGMENTS],
                backend_data: if a.has_data { at.add(a.data_off).cast() } else { core::ptr::null_mut() },
            });
            &mut *io
        };
        for (out, seg) in io.segments.iter_mut().zip(req.segments()) {
            *out = swapdio_segment { folio: seg.folio.0, offset: seg.offset, len: seg.len };
            io.nr_segments += 1;
        }
        // SAFETY: `submit` came non-null from the caller's table, whose contract is that
        // it is a valid function of this signature for the life of the engine; `io` is a
        // valid, initialised `swapdio_io` that stays valid until the request's completion.
        let r = unsafe { (self.submit)(self.ctx, io) };
        if r == SWAPDIO_QUEUED {
            Submit::Queued
        } else {
            Submit::Done(io_result(r))
        }
    }
}

/// Page operations implemented in C.
pub(crate) struct CPageOps {
    set_uptodate: FolioFn,
    set_dirty: FolioFn,
    clear_reclaim: FolioFn,
    start_writeback: FolioFn,
    end_writeback: FolioFn,
    unlock: FolioFn,
    pin: FolioFn,
    unpin: FolioFn,
    event: Option<EventFn>,
    wake: Option<WakeFn>,
    ctx: *mut c_void,
}

// SAFETY: the page table's contract (swapdio.h) is that every callback may be called
// from any thread with `ctx`, including completion context, concurrently.
unsafe impl Send for CPageOps {}
// SAFETY: as above: `&CPageOps` only reads the copied table and passes `ctx` along.
unsafe impl Sync for CPageOps {}

impl CPageOps {
    /// Copies and validates a C table: every callback but `event` present.
    pub(crate) fn new(ops: &swapdio_page_ops, ctx: *mut c_void) -> Option<Self> {
        Some(CPageOps {
            set_uptodate: ops.set_uptodate?,
            set_dirty: ops.set_dirty?,
            clear_reclaim: ops.clear_reclaim?,
            start_writeback: ops.start_writeback?,
            end_writeback: ops.end_writeback?,
            unlock: ops.unlock?,
            pin: ops.pin?,
            unpin: ops.unpin?,
            event: ops.event,
            wake: ops.wake,
            ctx,
        })
    }

    fn call(&self, f: FolioFn, folio: FolioId) {
        // SAFETY: every `FolioFn` came non-null from the caller's table, whose contract
        // is a valid, thread-safe function of this signature for the life of the engine.
        unsafe { f(self.ctx, folio.0) }
    }
}

/// A core event as the C struct (pages are base pages, errors negative errno).
pub(crate) fn event_to_c(e: SwapEvent) -> swapdio_event {
    let failure_fields = |f: IoFailure| match f {
        IoFailure::Errno(_) => (swapdio_failure::Errno, 0, 0),
        IoFailure::Short { done, expected } => (swapdio_failure::Short, done, expected),
        IoFailure::Overrun { reported, expected } => (swapdio_failure::Overrun, reported, expected),
    };
    match e {
        SwapEvent::SwapOut { pages } => {
            swapdio_event { kind: swapdio_event_kind::SwapOut as u32, pages, ..swapdio_event::default() }
        }
        SwapEvent::SwapIn { pages } => {
            swapdio_event { kind: swapdio_event_kind::SwapIn as u32, pages, ..swapdio_event::default() }
        }
        SwapEvent::WriteFailed { folio, pages, failure, retryable } => {
            let (kind, done, expected) = failure_fields(failure);
            swapdio_event {
                kind: swapdio_event_kind::WriteFailed as u32,
                failure: kind as u32,
                folio: folio.0,
                pages,
                error: -failure.errno().0,
                retryable: u32::from(retryable),
                done,
                expected,
            }
        }
        SwapEvent::ReadFailed { folio, pages, failure } => {
            let (kind, done, expected) = failure_fields(failure);
            swapdio_event {
                kind: swapdio_event_kind::ReadFailed as u32,
                failure: kind as u32,
                folio: folio.0,
                pages,
                error: -failure.errno().0,
                retryable: u32::from(failure.is_transient()),
                done,
                expected,
            }
        }
    }
}

impl PageOps for CPageOps {
    fn set_uptodate(&self, folio: FolioId) {
        self.call(self.set_uptodate, folio)
    }
    fn set_dirty(&self, folio: FolioId) {
        self.call(self.set_dirty, folio)
    }
    fn clear_reclaim(&self, folio: FolioId) {
        self.call(self.clear_reclaim, folio)
    }
    fn start_writeback(&self, folio: FolioId) {
        self.call(self.start_writeback, folio)
    }
    fn end_writeback(&self, folio: FolioId) {
        self.call(self.end_writeback, folio)
    }
    fn unlock(&self, folio: FolioId) {
        self.call(self.unlock, folio)
    }
    fn pin(&self, folio: FolioId) {
        self.call(self.pin, folio)
    }
    fn unpin(&self, folio: FolioId) {
        self.call(self.unpin, folio)
    }
    fn event(&self, event: SwapEvent) {
        if let Some(f) = self.event {
            let ev = event_to_c(event);
            // SAFETY: `f` came non-null from the caller's table (valid, thread-safe, for
            // the life of the engine); `ev` outlives the call.
            unsafe { f(self.ctx, &ev) }
        }
    }
    fn wake(&self, reason: Wake) {
        if let Some(f) = self.wake {
            let code = match reason {
                Wake::Sync => swapdio_wake::Sync,
                Wake::Pool => swapdio_wake::Pool,
            };
            // SAFETY: `f` came non-null from the caller's table (valid, thread-safe, for
            // the life of the engine).
            unsafe { f(self.ctx, code as u32) }
        }
    }
}
