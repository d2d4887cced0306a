//! Plugging: batching folios that are exactly adjacent in the active address space
//! into one request of up to 32 folios.
//!
//! The kernel's `struct swap_iocb **plug` (`swap_write_unplug`, `swap_read_unplug`):
//! the caller owns the plug for the length of a batch (a reclaim list, a readahead
//! window); the engine flushes it when the next folio is not adjacent, when 32 folios
//! are held, and when the caller finishes the batch. [`Plug`] and [`PlugState`] finish
//! on drop (`blk_finish_plug`): a batch can be neither stranded nor outlive its engine.
//!
//! **Better than the kernel:** a plug cannot submit a batch twice. [`PlugState`] is
//! neither `Copy` nor `Clone`, and every step of a batch (adding a folio, submitting
//! it) is a compare-and-swap on the request's state word, which counts the folios added
//! so far: a bitwise copy of a plug (a C struct copy, `ptr::read`) that falls behind is
//! refused with [`SwapError::StalePlug`] and its stale batch forgotten, never submitted.

use crate::backend::Backend;
use crate::engine::{Engine, SwapError};
use crate::iocb::Storage;
use crate::map::MapEntry;
use crate::page::{Direction, Folio, FsContext, PageOps};

/// A request being filled, held by a plug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) index: u32,
    pub(crate) generation: u64,
    pub(crate) dir: Direction,
    pub(crate) pos: u64,
    pub(crate) len: u64,
    pub(crate) nr: u32,
}

impl Held {
    /// Whether a folio at `pos` going `dir` can join this batch.
    pub(crate) fn accepts(&self, dir: Direction, pos: u64) -> bool {
        self.dir == dir && self.pos.checked_add(self.len) == Some(pos) && (self.nr as usize) < crate::iocb::MAX_SEGMENTS
    }
}

/// What a plug needs of its engine when it is dropped, with the engine's type erased so
/// that [`PlugState`] needs no type parameters.
pub(crate) trait PlugOwner {
    /// Submits the batch of a dropped plug (`blk_finish_plug`); a stale copy's batch is
    /// forgotten.
    fn finish_dropped(&self, held: Held);
}

/// The caller-owned state of a plug: at most one request being filled. The low-level
/// form of [`Plug`], for callers that keep the plug apart from the engine (the C ABI, a
/// harness owning both).
///
/// A `PlugState` belongs to one engine from its first use on (using it with another is
/// [`SwapError::ForeignPlug`]) and borrows that engine for `'e`, so it cannot outlive
/// it. [`Engine::finish_plug`] submits the held batch; **dropping a `PlugState` that
/// holds a batch submits it too** (`blk_finish_plug` at the end of the caller's batch),
/// so a batch is never stranded. Only leaking it (`mem::forget`, or
/// [`PlugState::unbind`] before a drop) strands its request: its folios stay in
/// writeback and [`Engine::deactivate`] reports [`SwapError::Busy`]. Not `Clone`: a
/// bitwise copy that another copy moved past is refused with [`SwapError::StalePlug`]
/// (and forgotten, never submitted, when dropped).
pub struct PlugState<'e> {
    pub(crate) held: Option<Held>,
    /// The owning engine's identity (its request storage's address), 0 before first use.
    pub(crate) owner: usize,
    /// The owning engine, for the drop; `None` when unbound.
    pub(crate) engine: Option<&'e dyn PlugOwner>,
}

impl core::fmt::Debug for PlugState<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlugState")
            .field("held", &self.held)
            .field("owner", &self.owner)
            .field("bound", &self.engine.is_some())
            .finish()
    }
}

impl Default for PlugState<'_> {
    fn default() -> Self {
        PlugState::new()
    }
}

impl PlugState<'_> {
    /// An empty plug.
    pub const fn new() -> Self {
        PlugState { held: None, owner: 0, engine: None }
    }

    /// Folios held in the unsubmitted batch.
    pub fn held_folios(&self) -> usize {
        self.held.map_or(0, |h| h.nr as usize)
    }

    /// Forgets the borrow of the engine, keeping the batch and the engine's identity: for
    /// plug state kept where no borrow can live between calls (the C ABI's
    /// `swapdio_plug`, which has no drop and ends with `swapdio_plug_finish`). The next
    /// use with its engine binds it again. Dropped while unbound, a plug that holds a
    /// batch strands it, as `mem::forget` would.
    pub fn unbind(&mut self) {
        self.engine = None;
    }
}

impl Drop for PlugState<'_> {
    /// Submits a held batch (`blk_finish_plug`). A stale copy's batch is forgotten.
    fn drop(&mut self) {
        if let (Some(held), Some(engine)) = (self.held.take(), self.engine) {
            engine.finish_dropped(held);
        }
    }
}

/// A plug bound to an engine that submits its held batch when dropped
/// (`blk_finish_plug` at the end of the caller's batch).
pub struct Plug<'e, M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    engine: &'e Engine<M, S, B, P>,
    state: PlugState<'e>,
}

impl<'e, M, S, B, P> Plug<'e, M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    pub(crate) fn new(engine: &'e Engine<M, S, B, P>) -> Self {
        Plug { engine, state: PlugState::new() }
    }

    /// Queues a swap-out of a locked, dirty folio (see [`Engine::write`]).
    pub fn write(&mut self, folio: Folio, fs: FsContext) -> Result<(), SwapError> {
        self.engine.write(Some(&mut self.state), folio, fs)
    }

    /// Queues a swap-in into a locked folio (see [`Engine::read`]).
    pub fn read(&mut self, folio: Folio) -> Result<(), SwapError> {
        self.engine.read(Some(&mut self.state), folio)
    }

    /// Folios held in the unsubmitted batch.
    pub fn held_folios(&self) -> usize {
        self.state.held_folios()
    }

    /// Submits the held batch now.
    pub fn flush(&mut self) {
        // A Plug's state always belongs to its own engine and cannot be copied: the only
        // refusal (a stale copy) cannot happen here.
        let _ = self.engine.finish_plug(&mut self.state);
    }
}

impl<M, S, B, P> Drop for Plug<'_, M, S, B, P>
where
    M: AsRef<[MapEntry]>,
    S: Storage,
    B: Backend,
    P: PageOps,
{
    fn drop(&mut self) {
        self.flush();
    }
}
