//! Completion: the one completion path for `Done` and `Queued` outcomes
//! (`sio_write_complete`, `sio_read_complete`), short I/O per segment, and the release
//! of each request's references.

use super::{bump, CompleteError, Engine, PAGE};
use crate::backend::Backend;
use crate::errno::Errno;
use crate::iocb::{state, RequestId, RequestSlot, Storage, PHASE_DONE, PHASE_IN_FLIGHT};
use crate::map::MapEntry;
use crate::page::{Direction, FolioId, IoFailure, PageOps, SwapEvent, Wake};
use crate::pool;
use crate::sync::Ordering;

impl<M, S, B, P> Engine<M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
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
    pub(super) fn put_async(&self, slot: &RequestSlot) {
        if pool::put(slot) {
            self.pages.wake(Wake::Pool);
        }
    }

    /// `sio_write_complete` / `sio_read_complete`, with short I/O accounted per segment.
    pub(super) fn finish_request(&self, slot: &RequestSlot, result: Result<u64, Errno>) {
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
    pub(super) fn finish_folio(&self, dir: Direction, folio: FolioId, pages: u64, outcome: Option<IoFailure>) {
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
    pub(super) fn finish_part(&self, dir: Direction, group: u32, outcome: Option<IoFailure>) {
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

/// The failure a sync caller sees from a request's stored result.
pub(super) fn decode_failure(result: i64, len: u64) -> Option<IoFailure> {
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
