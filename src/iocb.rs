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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId {
    /// Slot index in the engine's storage (pool first, then sync slots).
    pub index: u32,
    /// Generation of the slot when this request was built.
    pub generation: u32,
}

impl RequestId {
    /// Packs the id into one `u64` (for `user_data`, C callers).
    pub const fn to_u64(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// Unpacks [`RequestId::to_u64`].
    pub const fn from_u64(v: u64) -> RequestId {
        RequestId { index: v as u32, generation: (v >> 32) as u32 }
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

pub(crate) const PHASE_FREE: u32 = 0;
pub(crate) const PHASE_BUILDING: u32 = 1;
pub(crate) const PHASE_IN_FLIGHT: u32 = 2;
pub(crate) const PHASE_DONE: u32 = 3;
const PHASE_MASK: u32 = 3;
const GEN_MASK: u32 = u32::MAX >> 2;

pub(crate) const fn phase(state: u32) -> u32 {
    state & PHASE_MASK
}
pub(crate) const fn generation(state: u32) -> u32 {
    state >> 2
}
pub(crate) const fn state(generation: u32, phase: u32) -> u32 {
    ((generation & GEN_MASK) << 2) | phase
}

const META_ZERO_PAGE: u32 = 1;

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
    pub(crate) state: AtomicU32,
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
            state: AtomicU32::new(0),
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
    /// Allocates storage of the given sizes.
    pub fn new(config: StorageConfig) -> Self {
        let slots = |n: usize| (0..n).map(|_| RequestSlot::new()).collect::<alloc::vec::Vec<_>>().into_boxed_slice();
        OwnedStorage {
            pool: slots(config.pool),
            sync: slots(config.sync),
            splits: (0..config.splits).map(|_| SplitSlot::new()).collect::<alloc::vec::Vec<_>>().into_boxed_slice(),
        }
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
