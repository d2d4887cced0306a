//! The request: up to 32 folio segments (bvecs), a reference count shared by submitter
//! and completion, and a state word that makes completion happen exactly once.
//!
//! The kernel's `struct swap_iocb { kiocb; bio_vec bvec[SWAP_CLUSTER_MAX]; pages; len }`.
//! Every field is an atomic so a request can be completed on another thread (even
//! before the submit call returns) without `unsafe`; on x86-64 relaxed atomics compile
//! to plain loads and stores.

use crate::caps::IoMode;
use crate::page::{Direction, FolioId};
use crate::sync::{AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Folios per request: the kernel's `SWAP_CLUSTER_MAX`.
pub const MAX_SEGMENTS: usize = 32;

bitflags::bitflags! {
    /// Flags every lower request carries.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct ReqFlags: u32 {
        /// `REQ_SWAP` / `IOCB_SWAP`: this is swap I/O (always set; the RFC lost it on
        /// the iomap path).
        const SWAP = 1 << 0;
        /// A synchronous request: the submitter waits for it (`REQ_SYNC`).
        const SYNC = 1 << 1;
    }
}

/// Names one use of a request slot: its index and generation. A completion with a
/// stale generation (a double completion, a completion after reuse) is refused.
///
/// Packed into 63 bits ([`RequestId::to_u64`]): the slot index in bits 0..16 and the
/// generation in bits 16..63; bit 63 is never set, so a driver may use it as a tag of
/// its own in `user_data`. [`RequestId::from_u64`] refuses a value with any other bit
/// set ([`MalformedId`]): the kernel compares the whole `kiocb` pointer, never a part of
/// it. A stale id is refused until its slot has been reused `2^47` times while the stale
/// holder kept it (at a million reuses of one slot per second, 4.4 years).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId {
    index: u16,
    generation: u64,
}

/// Highest slot index a request id can name: an engine has at most `MAX_REQUEST_SLOTS`
/// pool and sync slots together.
pub const MAX_REQUEST_SLOTS: usize = 1 << INDEX_BITS;
/// Bits of a request id that carry the generation.
pub const GENERATION_BITS: u32 = 47;
const INDEX_BITS: u32 = 16;
pub(crate) const GEN_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// A packed request id with bits set outside the 16-bit slot index and the 47-bit
/// generation: forged or corrupted, never produced by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("request id {0:#x} has bits set outside the slot index and generation")]
pub struct MalformedId(pub u64);

impl RequestId {
    /// Builds an id from a slot index and a generation, if both fit (index below
    /// [`MAX_REQUEST_SLOTS`], generation below `2^47`).
    pub const fn new(index: usize, generation: u64) -> Option<RequestId> {
        if index >= MAX_REQUEST_SLOTS || generation > GEN_MASK {
            return None;
        }
        Some(RequestId { index: index as u16, generation })
    }

    /// An id from parts the engine knows to fit (checked at engine setup); masked so an
    /// out-of-range part can never alias another bit.
    pub(crate) const fn from_parts(index: usize, generation: u64) -> RequestId {
        RequestId { index: index as u16, generation: generation & GEN_MASK }
    }

    /// Slot index in the engine's storage (pool first, then sync slots).
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// Generation of the slot when this request was built (47 bits).
    pub const fn generation(self) -> u64 {
        self.generation
    }

    /// Packs the id into one `u64` (for `user_data`, C callers); bit 63 is always clear.
    pub const fn to_u64(self) -> u64 {
        (self.generation << INDEX_BITS) | self.index as u64
    }

    /// Unpacks [`RequestId::to_u64`]; any bit outside the index and generation (bit 63)
    /// is [`MalformedId`].
    pub const fn from_u64(v: u64) -> Result<RequestId, MalformedId> {
        if v >> (INDEX_BITS + GENERATION_BITS) != 0 {
            return Err(MalformedId(v));
        }
        Ok(RequestId { index: v as u16, generation: v >> INDEX_BITS })
    }
}

/// One bvec: a whole folio, or the part of a large folio that fits in one extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    /// The folio.
    pub folio: FolioId,
    /// Byte offset of this segment inside the folio (0 unless the folio was split).
    pub offset: u32,
    /// Bytes.
    pub len: u32,
}

pub(crate) const PHASE_FREE: u64 = 0;
pub(crate) const PHASE_BUILDING: u64 = 1;
pub(crate) const PHASE_IN_FLIGHT: u64 = 2;
pub(crate) const PHASE_DONE: u64 = 3;
const PHASE_MASK: u64 = 3;
/// Bits 2..8 of the state: while building, the folios added so far (0..=32), or
/// [`SEALED`] once one plug's finish won the right to submit it. Every plug step
/// compares and swaps the whole word, so a copy of a plug (a C struct copy, a
/// duplicated Rust value) can neither add to nor submit a batch another copy moved on.
const COUNT_SHIFT: u32 = 2;
const COUNT_MASK: u64 = 0x3f;
/// The count value of a batch being submitted.
pub(crate) const SEALED: u64 = COUNT_MASK;
const GEN_SHIFT: u32 = 8;

pub(crate) const fn phase(state: u64) -> u64 {
    state & PHASE_MASK
}
pub(crate) const fn generation(state: u64) -> u64 {
    (state >> GEN_SHIFT) & GEN_MASK
}
pub(crate) const fn state(generation: u64, phase: u64) -> u64 {
    building(generation, phase, 0)
}
/// A state word with a batch count.
pub(crate) const fn building(generation: u64, phase: u64, count: u64) -> u64 {
    ((generation & GEN_MASK) << GEN_SHIFT) | ((count & COUNT_MASK) << COUNT_SHIFT) | (phase & PHASE_MASK)
}

const META_ZERO_PAGE: u32 = 1;

/// The mark an engine leaves in the first pool slot of its storage while it lives.
const STORAGE_CLAIMED: u32 = u32::from_be_bytes(*b"SwIO");

#[derive(Debug)]
pub(crate) struct SegmentSlot {
    folio: AtomicU64,
    /// offset << 32 | len
    span: AtomicU64,
    /// bit 0: zero page; bits 1..: split group index + 1 (0: none)
    meta: AtomicU32,
}

/// Storage for one request. Zero-initialised memory is a valid free slot, so C callers
/// may provide it as plain memory.
#[derive(Debug)]
pub struct RequestSlot {
    /// generation << 8 | batch count << 2 | phase.
    pub(crate) state: AtomicU64,
    /// In the first pool slot only: [`STORAGE_CLAIMED`] while an engine uses the storage
    /// (checked before anything in the storage is touched).
    pub(crate) claim: AtomicU32,
    pub(crate) refs: AtomicU32,
    /// nr segments | dir << 8 | flags << 16
    pub(crate) info: AtomicU32,
    /// Next slot in a chain of slots claimed together (split folios), `u32::MAX` = end.
    pub(crate) next: AtomicU32,
    pub(crate) pos: AtomicU64,
    pub(crate) len: AtomicU64,
    /// Encoded result: bytes (>= 0) or -errno.
    pub(crate) result: AtomicI64,
    segs: [SegmentSlot; MAX_SEGMENTS],
}

impl Default for RequestSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestSlot {
    /// A free slot.
    pub fn new() -> Self {
        RequestSlot {
            state: AtomicU64::new(0),
            claim: AtomicU32::new(0),
            refs: AtomicU32::new(0),
            info: AtomicU32::new(0),
            next: AtomicU32::new(u32::MAX),
            pos: AtomicU64::new(0),
            len: AtomicU64::new(0),
            result: AtomicI64::new(0),
            segs: core::array::from_fn(|_| SegmentSlot {
                folio: AtomicU64::new(0),
                span: AtomicU64::new(0),
                meta: AtomicU32::new(0),
            }),
        }
    }

    pub(crate) fn set_segment(&self, i: usize, seg: Segment, zero_page: bool, group: Option<u32>) {
        if let Some(s) = self.segs.get(i) {
            s.folio.store(seg.folio.0, Ordering::Relaxed);
            s.span.store((u64::from(seg.offset) << 32) | u64::from(seg.len), Ordering::Relaxed);
            let g = group.map_or(0, |g| g.wrapping_add(1));
            s.meta.store((g << 1) | (u32::from(zero_page) * META_ZERO_PAGE), Ordering::Relaxed);
        }
    }

    /// Segment `i`, its zero-page bit and split group.
    pub(crate) fn segment(&self, i: usize) -> Option<(Segment, bool, Option<u32>)> {
        let s = self.segs.get(i)?;
        let span = s.span.load(Ordering::Relaxed);
        let meta = s.meta.load(Ordering::Relaxed);
        let seg =
            Segment { folio: FolioId(s.folio.load(Ordering::Relaxed)), offset: (span >> 32) as u32, len: span as u32 };
        let group = (meta >> 1).checked_sub(1);
        Some((seg, meta & META_ZERO_PAGE != 0, group))
    }

    pub(crate) fn set_info(&self, nr: usize, dir: Direction, flags: ReqFlags) {
        let v = (nr as u32 & 0xff) | ((dir as u32) << 8) | (flags.bits() << 16);
        self.info.store(v, Ordering::Relaxed);
    }

    pub(crate) fn info(&self) -> (usize, Direction, ReqFlags) {
        let v = self.info.load(Ordering::Relaxed);
        let dir = if (v >> 8) & 1 == 1 { Direction::Write } else { Direction::Read };
        ((v & 0xff) as usize, dir, ReqFlags::from_bits_truncate(v >> 16))
    }

    /// Whether the slot is free (not building, in flight or awaiting release).
    pub fn is_free(&self) -> bool {
        phase(self.state.load(Ordering::Acquire)) == PHASE_FREE
    }

    /// Whether this slot, the first of a storage's pool, carries the claim of a live
    /// engine (the storage is in use: a second engine over it is refused before any of
    /// it is reset). A C caller's raw storage may be checked with this before it is
    /// initialised: any bit pattern is a valid `RequestSlot`.
    pub fn storage_claimed(&self) -> bool {
        self.claim.load(Ordering::Acquire) == STORAGE_CLAIMED
    }

    /// Claims the storage whose first pool slot this is; false if already claimed.
    pub(crate) fn claim_storage(&self) -> bool {
        let cur = self.claim.load(Ordering::Acquire);
        cur != STORAGE_CLAIMED
            && self.claim.compare_exchange(cur, STORAGE_CLAIMED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Releases [`RequestSlot::claim_storage`].
    pub(crate) fn release_storage(&self) {
        self.claim.store(0, Ordering::Release);
    }
}

/// Tracks a large folio split over several requests because it spans extents: the
/// folio's page actions run once, when its last part completes.
#[derive(Debug)]
pub struct SplitSlot {
    pub(crate) busy: AtomicU32,
    pub(crate) remaining: AtomicU32,
    /// First failure's errno, 0 while none.
    pub(crate) failure: AtomicU32,
    pub(crate) folio: AtomicU64,
    pub(crate) pages: AtomicU32,
}

impl Default for SplitSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl SplitSlot {
    /// A free split tracker.
    pub fn new() -> Self {
        SplitSlot {
            busy: AtomicU32::new(0),
            remaining: AtomicU32::new(0),
            failure: AtomicU32::new(0),
            folio: AtomicU64::new(0),
            pages: AtomicU32::new(0),
        }
    }
}

/// A request as the backend sees it during `submit`: where, which way, which folios.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub(crate) slot: &'a RequestSlot,
    pub(crate) id: RequestId,
    pub(crate) mode: IoMode,
}

impl<'a> Request<'a> {
    /// The id to complete this request with, if the backend answers `Queued`.
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Byte position of the first segment: device bytes in device mode, file bytes in
    /// file mode.
    pub fn pos(&self) -> u64 {
        self.slot.pos.load(Ordering::Relaxed)
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.slot.len.load(Ordering::Relaxed)
    }

    /// Whether the request carries no bytes (never true for a submitted request).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read or write.
    pub fn direction(&self) -> Direction {
        self.slot.info().1
    }

    /// `SWAP` always, `SYNC` for synchronous requests.
    pub fn flags(&self) -> ReqFlags {
        self.slot.info().2
    }

    /// The address space `pos` refers to.
    pub fn mode(&self) -> IoMode {
        self.mode
    }

    /// Number of segments (1..=32).
    pub fn nr_segments(&self) -> usize {
        self.slot.info().0
    }

    /// Segment `i`, in position order.
    pub fn segment(&self, i: usize) -> Option<Segment> {
        if i >= self.nr_segments() {
            return None;
        }
        self.slot.segment(i).map(|(s, _, _)| s)
    }

    /// The segments in position order; their lengths add up to [`Request::len`].
    pub fn segments(&self) -> impl Iterator<Item = Segment> + 'a {
        let slot = self.slot;
        let nr = slot.info().0;
        (0..nr).filter_map(move |i| slot.segment(i).map(|(s, _, _)| s))
    }
}

/// Where the engine's requests live.
///
/// `pool` holds async requests (the kernel's 32-element mempool), `sync` the requests
/// synchronous callers own while they wait, `splits` the trackers of folios split across
/// extents. Implemented for [`StorageRef`] (caller memory) and, with `alloc`, for
/// [`OwnedStorage`].
pub trait Storage {
    /// Async request pool.
    fn pool(&self) -> &[RequestSlot];
    /// Synchronous request slots.
    fn sync(&self) -> &[RequestSlot];
    /// Split-folio trackers.
    fn splits(&self) -> &[SplitSlot];
}

/// Storage in caller-provided memory (no allocation).
#[derive(Clone, Copy, Debug)]
pub struct StorageRef<'a> {
    /// Async request pool.
    pub pool: &'a [RequestSlot],
    /// Synchronous request slots.
    pub sync: &'a [RequestSlot],
    /// Split-folio trackers.
    pub splits: &'a [SplitSlot],
}

impl Storage for StorageRef<'_> {
    fn pool(&self) -> &[RequestSlot] {
        self.pool
    }
    fn sync(&self) -> &[RequestSlot] {
        self.sync
    }
    fn splits(&self) -> &[SplitSlot] {
        self.splits
    }
}

impl<S: Storage + ?Sized> Storage for &S {
    fn pool(&self) -> &[RequestSlot] {
        (**self).pool()
    }
    fn sync(&self) -> &[RequestSlot] {
        (**self).sync()
    }
    fn splits(&self) -> &[SplitSlot] {
        (**self).splits()
    }
}

/// Sizes of the request storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StorageConfig {
    /// Async requests reserved at activation (the kernel's mempool of 32).
    pub pool: usize,
    /// Synchronous request slots.
    pub sync: usize,
    /// Split-folio trackers.
    pub splits: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { pool: 32, sync: 4, splits: 8 }
    }
}

/// Heap-allocated storage (feature `alloc`); allocated once, at activation.
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct OwnedStorage {
    pool: alloc::boxed::Box<[RequestSlot]>,
    sync: alloc::boxed::Box<[RequestSlot]>,
    splits: alloc::boxed::Box<[SplitSlot]>,
}

#[cfg(feature = "alloc")]
impl OwnedStorage {
    /// Allocates storage of the given sizes: [`crate::EngineError::TooManySlots`] for more
    /// pool and sync slots than request ids can name, or more split trackers than that
    /// (each split folio holds at least two requests, so more are never used),
    /// [`crate::EngineError::OutOfMemory`] if the allocator cannot provide it (never a
    /// capacity-overflow panic).
    pub fn new(config: StorageConfig) -> Result<Self, crate::EngineError> {
        if config.pool.saturating_add(config.sync) > MAX_REQUEST_SLOTS || config.splits > MAX_REQUEST_SLOTS {
            return Err(crate::EngineError::TooManySlots);
        }
        fn table<T>(n: usize, make: fn() -> T) -> Result<alloc::boxed::Box<[T]>, crate::EngineError> {
            let mut v = alloc::vec::Vec::new();
            v.try_reserve_exact(n).map_err(|_| crate::EngineError::OutOfMemory)?;
            v.extend((0..n).map(|_| make()));
            Ok(v.into_boxed_slice())
        }
        Ok(OwnedStorage {
            pool: table(config.pool, RequestSlot::new)?,
            sync: table(config.sync, RequestSlot::new)?,
            splits: table(config.splits, SplitSlot::new)?,
        })
    }
}

#[cfg(feature = "alloc")]
impl Storage for OwnedStorage {
    fn pool(&self) -> &[RequestSlot] {
        &self.pool
    }
    fn sync(&self) -> &[RequestSlot] {
        &self.sync
    }
    fn splits(&self) -> &[SplitSlot] {
        &self.splits
    }
}

#[cfg(feature = "alloc")]
impl<S: Storage + ?Sized> Storage for alloc::sync::Arc<S> {
    fn pool(&self) -> &[RequestSlot] {
        (**self).pool()
    }
    fn sync(&self) -> &[RequestSlot] {
        (**self).sync()
    }
    fn splits(&self) -> &[SplitSlot] {
        (**self).splits()
    }
}
