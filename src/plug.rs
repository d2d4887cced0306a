//! Plugging: batching folios that are exactly adjacent in the active address space
//! into one request of up to 32 folios.
//!
//! The kernel's `struct swap_iocb **plug` (`swap_write_unplug`, `swap_read_unplug`):
//! the caller owns the plug for the length of a batch (a reclaim list, a readahead
//! window); the engine flushes it when the next folio is not adjacent, when 32 folios
//! are held, and when the caller finishes the batch. [`Plug`] finishes on drop.
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

/// The caller-owned state of a plug: at most one request being filled. The low-level
/// form of [`Plug`], for callers that cannot keep a borrow of the engine (the C ABI,
/// a harness owning both).
///
/// A `PlugState` belongs to one engine from its first use on; using it with another
/// engine is [`SwapError::ForeignPlug`]. Finish it with [`Engine::finish_plug`]: a held
/// batch is not submitted until then, and a `PlugState` dropped while it holds one
/// strands that request (its folios stay in writeback and [`Engine::deactivate`] reports
/// [`SwapError::Busy`]); check [`PlugState::held_folios`], or use the RAII [`Plug`],
/// which finishes on drop. Not `Clone`: a bitwise copy that another copy moved past is
/// refused with [`SwapError::StalePlug`].
#[derive(Debug, Default)]
#[must_use = "a plug's held batch is submitted only by Engine::finish_plug"]
pub struct PlugState {
    pub(crate) held: Option<Held>,
    pub(crate) owner: usize,
}

impl PlugState {
    /// An empty plug.
    pub const fn new() -> Self {
        PlugState { held: None, owner: 0 }
    }

    /// Folios held in the unsubmitted batch.
    pub fn held_folios(&self) -> usize {
        self.held.map_or(0, |h| h.nr as usize)
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
    state: PlugState,
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
