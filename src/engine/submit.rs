//! Submission: the checks before a folio is touched, plugging, request claims, the
//! split of a large folio across extents, and synchronous I/O (`swap_writepage`,
//! `swap_read_folio`, `swap_write_unplug`).

use super::complete::decode_failure;
use super::{bump, Engine, SwapError, PAGE};
use crate::backend::{Backend, Submit};
use crate::iocb::{
    building, generation, state, ReqFlags, Request, RequestId, RequestSlot, Segment, Storage, PHASE_BUILDING,
    PHASE_IN_FLIGHT, SEALED,
};
use crate::map::{MapEntry, MapError, Run};
use crate::page::{Direction, Folio, FsContext, PageOps, SwapEvent, MAX_FOLIO_PAGES};
use crate::plug::{Held, PlugOwner, PlugState};
use crate::pool;
use crate::sync::{AtomicUsize, Ordering};
use crate::PAGE_SIZE;

impl<M, S, B, P> Engine<M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    /// Binds `plug` to this engine on its first use; a plug of another engine is
    /// [`SwapError::ForeignPlug`].
    pub(super) fn own<'e>(&'e self, plug: &mut PlugState<'e>) -> Result<(), SwapError> {
        let me = self.owner_tag();
        match plug.owner {
            0 => plug.owner = me,
            o if o != me => return Err(SwapError::ForeignPlug),
            _ => {}
        }
        plug.engine = Some(self);
        Ok(())
    }

    /// An engine's identity for its plugs: the address of its request storage, which no
    /// other live engine can use (the storage claim).
    fn owner_tag(&self) -> usize {
        self.storage.pool().as_ptr() as usize
    }

    /// Checks everything that can be checked before touching the folio.
    pub(super) fn check(&self, dir: Direction, folio: &Folio, fs: FsContext) -> Result<Run, SwapError> {
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
    pub(super) fn count_parts(&self, folio: &Folio, first: Run) -> Result<usize, SwapError> {
        let mut parts = 1;
        let mut taken = first.pages;
        while taken < u64::from(folio.pages) {
            taken += self.map.lookup(folio.slot + taken)?.pages;
            parts += 1;
        }
        Ok(parts)
    }

    /// The write prelude of `swap_writepage_fs`: count, start writeback, unlock.
    pub(super) fn prelude(&self, dir: Direction, folio: &Folio) {
        if dir == Direction::Write {
            self.pages.event(SwapEvent::SwapOut { pages: u64::from(folio.pages) });
            self.pages.start_writeback(folio.id);
            self.pages.unlock(folio.id);
        }
    }

    pub(super) fn would_block(&self) -> SwapError {
        bump(&self.counters.would_block, 1);
        SwapError::WouldBlock
    }

    pub(super) fn queue<'e>(
        &'e self,
        plug: Option<&mut PlugState<'e>>,
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

    pub(super) fn add_segment(
        &self,
        slot: &RequestSlot,
        i: usize,
        folio: &Folio,
        offset: u32,
        len: u32,
        group: Option<u32>,
    ) {
        slot.set_segment(i, Segment { folio: folio.id, offset, len }, folio.zero_page, group);
        if !folio.zero_page {
            self.pages.pin(folio.id);
        }
    }

    /// Seals a plug's batch (only the plug whose count is current wins) and submits it.
    pub(super) fn submit_held(&self, h: Held) -> Result<(), SwapError> {
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
    pub(super) fn submit(
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
    pub(super) fn queue_split(
        &self,
        plug: &mut PlugState<'_>,
        dir: Direction,
        folio: Folio,
        run: Run,
    ) -> Result<(), SwapError> {
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
    pub(super) fn submit_parts(
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

    pub(super) fn sync_io(
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
}

/// Moves a plug's batch from the count the plug holds to `to` (the next count, or
/// sealed); false if another copy of the plug moved it first or the slot was reused.
fn advance(slot: &RequestSlot, held: &Held, to: u64) -> bool {
    let from = building(held.generation, PHASE_BUILDING, u64::from(held.nr));
    let to = building(held.generation, PHASE_BUILDING, to);
    slot.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed).is_ok()
}

impl<M, S, B, P> PlugOwner for Engine<M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    /// The batch of a dropped [`PlugState`] (`blk_finish_plug`): submitted if the plug
    /// is current, forgotten if it is a stale copy.
    fn finish_dropped(&self, held: Held) {
        let _ = self.submit_held(held);
    }
}
