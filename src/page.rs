//! What the engine asks of a page: the folio descriptor, the page operations the
//! caller implements, and the events and failures completion reports.
//!
//! These are the `folio_*` calls `mm/page_io.c` makes: `folio_mark_uptodate`,
//! `folio_mark_dirty`, `folio_clear_reclaim`, `folio_start_writeback`,
//! `folio_end_writeback`, `folio_unlock`, and the pin taken by direct I/O.

use crate::errno::Errno;

/// Largest folio the engine accepts, in pages (1 GiB with 4 KiB pages): segment
/// lengths are `u32` bytes.
pub const MAX_FOLIO_PAGES: u32 = 1 << 18;

/// An opaque handle the caller uses to name a folio (a pointer, an index). The engine
/// never dereferences it; it hands it back to [`PageOps`] and to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct FolioId(pub u64);

/// A folio handed to the engine for swap-out or swap-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Folio {
    /// The caller's handle.
    pub id: FolioId,
    /// First swap slot (swap offset) of the folio; slot 0 is the header.
    pub slot: u64,
    /// Base pages in the folio (1 for a small folio). The request's bvec is the whole folio.
    pub pages: u32,
    /// The shared zero page: never pinned or unpinned, never read into.
    pub zero_page: bool,
}

impl Folio {
    /// A small (one page) folio at `slot`.
    pub const fn small(id: u64, slot: u64) -> Folio {
        Folio { id: FolioId(id), slot, pages: 1, zero_page: false }
    }

    /// A folio of `pages` pages at `slot`.
    pub const fn large(id: u64, slot: u64, pages: u32) -> Folio {
        Folio { id: FolioId(id), slot, pages, zero_page: false }
    }
}

/// Direction of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Direction {
    /// Swap-in.
    Read = 0,
    /// Swap-out.
    Write = 1,
}

/// Whether the caller's context may enter the filesystem (`__GFP_FS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FsContext {
    /// Entering the filesystem is allowed (`GFP_KERNEL` reclaim, kswapd).
    #[default]
    MayEnterFs,
    /// A `GFP_NOFS` context: file-mode swap writes are refused (`test_may_enter_fs`).
    NoFs,
}

/// Why the I/O of a folio failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IoFailure {
    /// The backend returned an error.
    #[error("I/O error {0}")]
    Errno(Errno),
    /// The request transferred fewer bytes than it carried and this folio was not fully
    /// covered. **Better than the kernel:** folios fully covered still succeed.
    #[error("short transfer: {done} of {expected} bytes")]
    Short {
        /// Bytes the backend transferred for the whole request.
        done: u64,
        /// Bytes the request carried.
        expected: u64,
    },
    /// The backend claimed more bytes than the request carried (a backend bug): nothing
    /// of the request is trusted.
    #[error("backend reported {reported} bytes for a {expected}-byte request")]
    Overrun {
        /// Bytes reported.
        reported: u64,
        /// Bytes the request carried.
        expected: u64,
    },
}

impl IoFailure {
    /// The errno of the failure (`EIO` for short and overrun).
    pub const fn errno(self) -> Errno {
        match self {
            IoFailure::Errno(e) => e,
            IoFailure::Short { .. } | IoFailure::Overrun { .. } => Errno::EIO,
        }
    }

    /// Transient (`EAGAIN`, `ENOMEM`, `EINTR`): worth retrying soon.
    pub const fn is_transient(self) -> bool {
        match self {
            IoFailure::Errno(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// What completion tells the caller besides page state: the kernel's vm events
/// (counted in base pages, derived from bytes) and the rate-limited error logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwapEvent {
    /// `PSWPOUT`: pages submitted for swap-out (counted at submit, as the kernel does).
    SwapOut {
        /// Base pages.
        pages: u64,
    },
    /// `PSWPIN`: pages read back successfully (counted at completion).
    SwapIn {
        /// Base pages.
        pages: u64,
    },
    /// A folio's write failed: it was redirtied, its reclaim flag cleared, its writeback
    /// ended. `retryable` marks transient errnos.
    WriteFailed {
        /// The folio.
        folio: FolioId,
        /// Base pages.
        pages: u64,
        /// What failed.
        failure: IoFailure,
        /// Transient failure: retry soon.
        retryable: bool,
    },
    /// A folio's read failed: it was unlocked without being marked uptodate.
    ReadFailed {
        /// The folio.
        folio: FolioId,
        /// Base pages.
        pages: u64,
        /// What failed.
        failure: IoFailure,
    },
}

/// The page state the engine changes, implemented by the caller (the MM, a test, the
/// C callback table). Every method must be callable from any thread, including the
/// backend's completion context.
pub trait PageOps {
    /// `folio_mark_uptodate`: read success.
    fn set_uptodate(&self, folio: FolioId);
    /// `folio_mark_dirty`: a failed write keeps the data dirty so nothing is lost.
    fn set_dirty(&self, folio: FolioId);
    /// `folio_clear_reclaim` after a failed write.
    fn clear_reclaim(&self, folio: FolioId);
    /// `folio_start_writeback` before a write is queued.
    fn start_writeback(&self, folio: FolioId);
    /// `folio_end_writeback` when a write completes, success or failure.
    fn end_writeback(&self, folio: FolioId);
    /// `folio_unlock`: after the write is queued; when a read completes.
    fn unlock(&self, folio: FolioId);
    /// Take one pin for a request that carries (part of) the folio.
    fn pin(&self, folio: FolioId);
    /// Drop the pin of one request, exactly once, at its completion.
    fn unpin(&self, folio: FolioId);
    /// Counters and error reports.
    fn event(&self, event: SwapEvent);
    /// A waiter may proceed (the kernel's `wake_up` after `sio_*_complete`, and the
    /// mempool's wake-up of allocators when an element is freed): a synchronous request
    /// completed ([`Wake::Sync`], its submitter's wait condition is now true) or an async
    /// request was released ([`Wake::Pool`], a caller that got `WouldBlock` may retry).
    /// Called from the completion context (hard-irq in a kernel) or the submitter's; must
    /// not sleep. The default does nothing: for callers that poll.
    fn wake(&self, reason: Wake) {
        let _ = reason;
    }
}

/// Why [`PageOps::wake`] is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// A synchronous request completed: its waiter's condition holds.
    Sync,
    /// An async request was released: the pool has a free request.
    Pool,
}

impl<T: PageOps + ?Sized> PageOps for &T {
    fn set_uptodate(&self, f: FolioId) {
        (**self).set_uptodate(f)
    }
    fn set_dirty(&self, f: FolioId) {
        (**self).set_dirty(f)
    }
    fn clear_reclaim(&self, f: FolioId) {
        (**self).clear_reclaim(f)
    }
    fn start_writeback(&self, f: FolioId) {
        (**self).start_writeback(f)
    }
    fn end_writeback(&self, f: FolioId) {
        (**self).end_writeback(f)
    }
    fn unlock(&self, f: FolioId) {
        (**self).unlock(f)
    }
    fn pin(&self, f: FolioId) {
        (**self).pin(f)
    }
    fn unpin(&self, f: FolioId) {
        (**self).unpin(f)
    }
    fn event(&self, e: SwapEvent) {
        (**self).event(e)
    }
    fn wake(&self, reason: Wake) {
        (**self).wake(reason)
    }
}
