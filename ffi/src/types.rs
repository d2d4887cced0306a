//! Every type shared with C: `#[repr(C)]` structs whose size, alignment and every field
//! offset are asserted with `static_assertions` (the C side checks the same numbers),
//! `#[repr(u32)]` enums with explicit values (exported for their names only: C passes
//! them as `uint32_t`, which Rust validates), and flag constants whose values are
//! asserted equal to the core's bits.

use core::ffi::c_void;

use swapdio::{BackendCaps, ExtentFlags, FileAttrs, ReqFlags};

/// Base page size: slots, the header and folio sizes are in units of it (`PAGE_SIZE`).
pub const SWAPDIO_PAGE_SIZE: usize = 4096;
/// Folios per request: the kernel's `SWAP_CLUSTER_MAX`, the size of a plugged batch.
pub const SWAPDIO_MAX_SEGMENTS: usize = 32;
/// What a backend's `submit` returns when it took the request and will call
/// `swapdio_complete` later: the kernel's `-EIOCBQUEUED`.
pub const SWAPDIO_QUEUED: i64 = -529;
/// "No value" for the index and offset fields of `swapdio_activation_report`.
pub const SWAPDIO_NONE: u64 = 0xFFFF_FFFF_FFFF_FFFF;

// ---- flags -------------------------------------------------------------------------

/// Backend capability: direct reads from the block device at mapped positions (device mode).
pub const SWAPDIO_CAP_DIO_READ: u32 = 1 << 0;
/// Backend capability: direct writes to the block device at mapped positions (device mode).
pub const SWAPDIO_CAP_DIO_WRITE: u32 = 1 << 1;
/// Backend capability: the filesystem's `->swap_rw`, I/O addressed by file position (file mode).
pub const SWAPDIO_CAP_SWAP_RW: u32 = 1 << 2;
/// Backend capability: blocks can be overwritten in place (not a sequential zone, not LFS).
pub const SWAPDIO_CAP_OVERWRITE_IN_PLACE: u32 = 1 << 3;
/// Backend capability: completion means the data is stable (no later COMMIT, NFS `FLUSH_STABLE`).
pub const SWAPDIO_CAP_STABLE_ON_COMPLETE: u32 = 1 << 4;
/// Backend capability: the backend enters the filesystem; swap writes need a context that
/// may enter it (`test_may_enter_fs`).
pub const SWAPDIO_CAP_REQUIRES_NOFS: u32 = 1 << 5;
/// Backend capability: file-mode writes into unwritten extents run no transaction.
pub const SWAPDIO_CAP_UNWRITTEN_SAFE_IN_FILE_MODE: u32 = 1 << 6;
/// Every defined capability bit; others are refused with `-EINVAL`.
pub const SWAPDIO_CAP_ALL: u32 = 0x7f;

/// File attribute: copy-on-write file (btrfs without NOCOW).
pub const SWAPDIO_ATTR_COPY_ON_WRITE: u32 = 1 << 0;
/// File attribute: compressed file.
pub const SWAPDIO_ATTR_COMPRESSED: u32 = 1 << 1;
/// File attribute: data checksums.
pub const SWAPDIO_ATTR_CHECKSUMMED: u32 = 1 << 2;
/// File attribute: sequential-write-required zone.
pub const SWAPDIO_ATTR_SEQUENTIAL_ZONE: u32 = 1 << 3;
/// Every defined attribute bit; others are refused with `-EINVAL`.
pub const SWAPDIO_ATTR_ALL: u32 = 0xf;

/// Extent flag: allocated but unwritten (FIEMAP_EXTENT_UNWRITTEN, IOMAP_UNWRITTEN).
pub const SWAPDIO_EXTENT_UNWRITTEN: u32 = 1 << 0;
/// Extent flag: shared with another file (reflink, snapshot): `has shared extents`.
pub const SWAPDIO_EXTENT_SHARED: u32 = 1 << 1;
/// Extent flag: data inline in metadata: `is inline`.
pub const SWAPDIO_EXTENT_INLINE: u32 = 1 << 2;
/// Extent flag: delayed allocation or unknown location: `has unallocated extents`.
pub const SWAPDIO_EXTENT_DELALLOC: u32 = 1 << 3;
/// Extent flag: encoded (compressed, encrypted) on disk.
pub const SWAPDIO_EXTENT_ENCODED: u32 = 1 << 4;
/// Extent flag: data not block aligned (tail packing).
pub const SWAPDIO_EXTENT_NOT_ALIGNED: u32 = 1 << 5;
/// Extent flag: mapping metadata not committed (`IOMAP_F_DIRTY`): `is not committed`.
pub const SWAPDIO_EXTENT_DIRTY: u32 = 1 << 6;
/// Every defined extent flag; others are refused with `-EINVAL`.
pub const SWAPDIO_EXTENT_ALL: u32 = 0x7f;

/// Folio flag: the shared zero page, never pinned or unpinned, never read into.
pub const SWAPDIO_FOLIO_ZERO_PAGE: u32 = 1 << 0;
/// Every defined folio flag; others are refused with `-EINVAL`.
pub const SWAPDIO_FOLIO_ALL: u32 = 0x1;

/// Request flag: swap I/O (`REQ_SWAP` / `IOCB_SWAP`), always set.
pub const SWAPDIO_REQ_SWAP: u32 = 1 << 0;
/// Request flag: synchronous request, the submitter waits (`REQ_SYNC`).
pub const SWAPDIO_REQ_SYNC: u32 = 1 << 1;

const _: () = {
    assert!(SWAPDIO_PAGE_SIZE == swapdio::PAGE_SIZE);
    assert!(SWAPDIO_MAX_SEGMENTS == swapdio::MAX_SEGMENTS);
    assert!(SWAPDIO_QUEUED == -(swapdio::Errno::EIOCBQUEUED.0 as i64));
    assert!(SWAPDIO_CAP_DIO_READ == BackendCaps::DIO_READ.bits());
    assert!(SWAPDIO_CAP_DIO_WRITE == BackendCaps::DIO_WRITE.bits());
    assert!(SWAPDIO_CAP_SWAP_RW == BackendCaps::SWAP_RW.bits());
    assert!(SWAPDIO_CAP_OVERWRITE_IN_PLACE == BackendCaps::OVERWRITE_IN_PLACE.bits());
    assert!(SWAPDIO_CAP_STABLE_ON_COMPLETE == BackendCaps::STABLE_ON_COMPLETE.bits());
    assert!(SWAPDIO_CAP_REQUIRES_NOFS == BackendCaps::REQUIRES_NOFS.bits());
    assert!(SWAPDIO_CAP_UNWRITTEN_SAFE_IN_FILE_MODE == BackendCaps::UNWRITTEN_SAFE_IN_FILE_MODE.bits());
    assert!(SWAPDIO_CAP_ALL == BackendCaps::all().bits());
    assert!(SWAPDIO_ATTR_COPY_ON_WRITE == FileAttrs::COPY_ON_WRITE.bits());
    assert!(SWAPDIO_ATTR_COMPRESSED == FileAttrs::COMPRESSED.bits());
    assert!(SWAPDIO_ATTR_CHECKSUMMED == FileAttrs::CHECKSUMMED.bits());
    assert!(SWAPDIO_ATTR_SEQUENTIAL_ZONE == FileAttrs::SEQUENTIAL_ZONE.bits());
    assert!(SWAPDIO_ATTR_ALL == FileAttrs::all().bits());
    assert!(SWAPDIO_EXTENT_UNWRITTEN == ExtentFlags::UNWRITTEN.bits());
    assert!(SWAPDIO_EXTENT_SHARED == ExtentFlags::SHARED.bits());
    assert!(SWAPDIO_EXTENT_INLINE == ExtentFlags::INLINE.bits());
    assert!(SWAPDIO_EXTENT_DELALLOC == ExtentFlags::DELALLOC.bits());
    assert!(SWAPDIO_EXTENT_ENCODED == ExtentFlags::ENCODED.bits());
    assert!(SWAPDIO_EXTENT_NOT_ALIGNED == ExtentFlags::NOT_ALIGNED.bits());
    assert!(SWAPDIO_EXTENT_DIRTY == ExtentFlags::DIRTY.bits());
    assert!(SWAPDIO_EXTENT_ALL == ExtentFlags::all().bits());
    assert!(SWAPDIO_REQ_SWAP == ReqFlags::SWAP.bits());
    assert!(SWAPDIO_REQ_SYNC == ReqFlags::SYNC.bits());
};

// ---- enums (names and values for C; passed as uint32_t) --------------------------

/// How swap I/O is addressed once the area is active (`SWP_FS_OPS` or not).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_mode {
    /// Block swap: I/O goes to the block device at positions frozen at activation.
    Device = 1,
    /// `SWP_FS_OPS`: I/O addressed by file position, mapped by the filesystem's `swap_rw`.
    File = 2,
}

/// Which mode activation should pick (`swapdio_activation.mode`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_mode_request {
    /// Device mode when the backend can do device direct I/O, else file mode.
    Auto = 0,
    /// Device mode or refuse.
    Device = 1,
    /// File mode or refuse.
    File = 2,
}

/// How the swap file's layout is described (`swapdio_activation.layout`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_layout {
    /// An array of extent reports (FIEMAP), sorted by logical offset.
    Extents = 0,
    /// No extent map (NFS, SMB): only `allocated_bytes`, file mode only.
    Opaque = 1,
    /// A whole block device of `file_size` bytes: one extent at byte 0, bad pages in the
    /// header allowed (never usable), span `maxpages - 1` (`setup_swap_map`).
    BlockDevice = 2,
}

/// Whether the caller may enter the filesystem (`__GFP_FS`), for `swapdio_write`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_fs_context {
    /// `GFP_KERNEL` reclaim, kswapd: entering the filesystem is allowed.
    MayEnterFs = 0,
    /// A `GFP_NOFS` context: file-mode swap writes are refused with `-EDEADLK`.
    NoFs = 1,
}

/// Direction of a request (`swapdio_io.direction`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_direction {
    /// Swap-in.
    Read = 0,
    /// Swap-out.
    Write = 1,
}

/// Why `swapdio_page_ops.wake` is called.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_wake {
    /// A synchronous request completed: `swapdio_sync_done()` is now true for its waiter.
    Sync = 1,
    /// An async request was released: a caller that got `-ENOBUFS` may retry.
    Pool = 2,
}

/// Kind of a `swapdio_event`: the kernel's vm events and rate-limited error logs.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_event_kind {
    /// `PSWPOUT`: pages submitted for swap-out (counted at submit).
    SwapOut = 1,
    /// `PSWPIN`: pages read back successfully (counted at completion).
    SwapIn = 2,
    /// A folio's write failed: redirtied, reclaim cleared, writeback ended.
    WriteFailed = 3,
    /// A folio's read failed: unlocked without uptodate.
    ReadFailed = 4,
}

/// Why the I/O of a folio failed (`swapdio_event.failure`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_failure {
    /// No failure.
    None = 0,
    /// The backend returned an error (`swapdio_event.error`).
    Errno = 1,
    /// Short transfer that did not cover this folio (`done` of `expected` bytes).
    Short = 2,
    /// The backend claimed more bytes than the request carried.
    Overrun = 3,
}

/// Why activation refused a swap file (`swapdio_activation_report.refusal`); the text
/// is `swapdio_refusal_str`, the kernel's message where it has one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum swapdio_refusal {
    /// Activation succeeded.
    None = 0,
    /// Bad input through the C ABI (null pointer, unknown flag or enum value).
    InvalidArgument = 1,
    /// The header buffer is shorter than a page.
    HeaderShortBuffer = 10,
    /// `Unable to find swap-space signature`.
    HeaderNoSignature = 11,
    /// `Unable to handle swap header version`.
    HeaderBadVersion = 12,
    /// `Empty swap-file` (last_page == 0).
    HeaderEmpty = 13,
    /// `Swap area shorter than signature indicates`.
    HeaderShorterThanSignature = 14,
    /// Bad-page list on a regular file.
    HeaderBadPagesInFile = 15,
    /// More bad pages than fit in the header.
    HeaderTooManyBadPages = 16,
    /// Fewer than two pages.
    HeaderTooSmall = 17,
    /// More pages than `last_page` (a `u32`) can describe.
    HeaderTooLarge = 18,
    /// A bad-page entry that is page 0 or past `last_page`.
    HeaderBadPageOutOfRange = 19,
    /// `swapfile must not be copy-on-write`.
    CapsCopyOnWrite = 20,
    /// `swapfile must not be compressed` (file attribute).
    CapsCompressed = 21,
    /// `swapfile must not be checksummed`.
    CapsChecksummed = 22,
    /// `swap file: not a conventional zone file`.
    CapsSequentialZone = 23,
    /// `Swapfile not supported in LFS mode`.
    CapsNoOverwriteInPlace = 24,
    /// Neither device direct I/O nor `swap_rw`.
    CapsNoIoPath = 25,
    /// Device mode requested without direct read and write.
    CapsDeviceModeUnsupported = 26,
    /// File mode requested without `swap_rw`.
    CapsFileModeUnsupported = 27,
    /// File mode without stable completion.
    CapsNotStableOnComplete = 28,
    /// `is inline`.
    Inline = 30,
    /// `has unallocated extents` (hole, delalloc).
    Unallocated = 31,
    /// `is not committed`.
    NotCommitted = 32,
    /// `has shared extents`.
    Shared = 33,
    /// Extent outside the main device.
    OutsideMainDevice = 34,
    /// `swapfile must not be compressed` (encoded extent).
    Encoded = 35,
    /// Extent data not block aligned.
    NotAligned = 36,
    /// Unwritten extent in file mode without `SWAPDIO_CAP_UNWRITTEN_SAFE_IN_FILE_MODE`.
    UnwrittenInFileMode = 37,
    /// `swapfile has holes` (opaque layout).
    Holes = 38,
    /// Device mode needs the extent map.
    NoExtentMap = 39,
    /// `Cannot find a single usable page in file.`
    NoUsablePage = 40,
    /// `Empty swap-file` (only the header page usable).
    EmptySwapFile = 41,
    /// Extent reports unsorted or overlapping.
    ExtentsUnsorted = 42,
    /// Extent of length 0 or overflowing.
    InvalidExtent = 43,
    /// The map storage handed in is too small (`-ENOMEM`).
    MapStorageTooSmall = 44,
    /// Two extents map the same device page (device mode).
    PhysicalOverlap = 45,
}

// ---- structs -----------------------------------------------------------------------

/// Size and alignment of a block of caller-provided memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_mem_layout {
    /// Bytes.
    pub size: usize,
    /// Required alignment (a power of two).
    pub align: usize,
}

/// One mapping of the swap file, in bytes, as FIEMAP or `iomap_begin` reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_extent {
    /// Byte offset in the file.
    pub logical: u64,
    /// Byte address on the device.
    pub physical: u64,
    /// Length in bytes (not 0).
    pub length: u64,
    /// `SWAPDIO_EXTENT_*` flags.
    pub flags: u32,
    /// Must be 0.
    pub reserved: u32,
    /// Device the extent lives on (compared with `swapdio_activation.main_device`).
    pub device: u64,
}

/// One extent of the slot map (the kernel's `struct swap_extent`): `pages` slots from
/// `first_slot` live at consecutive pages from byte position `start`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_map_entry {
    /// First swap slot of the extent.
    pub first_slot: u64,
    /// Page slots in the extent (never 0).
    pub pages: u64,
    /// Byte position of `first_slot` (device bytes in device mode, file bytes in file mode).
    pub start: u64,
}

/// Everything activation (swapon) looks at.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct swapdio_activation {
    /// Page 0 of the file (at least `SWAPDIO_PAGE_SIZE` bytes).
    pub header: *const u8,
    /// Bytes at `header`.
    pub header_len: usize,
    /// `i_size` of the file.
    pub file_size: u64,
    /// Extent reports, sorted by logical offset (layout `SWAPDIO_LAYOUT_EXTENTS`).
    pub extents: *const swapdio_extent,
    /// Number of extent reports (at least 1 for `SWAPDIO_LAYOUT_EXTENTS`).
    pub nr_extents: usize,
    /// Bytes allocated to the file (layout `SWAPDIO_LAYOUT_OPAQUE`).
    pub allocated_bytes: u64,
    /// The block device swap I/O goes to in device mode.
    pub main_device: u64,
    /// Architecture limit on swap pages (`swapfile_maximum_size`); 0 for the default.
    pub max_pages: u64,
    /// A `swapdio_layout` value.
    pub layout: u32,
    /// A `swapdio_mode_request` value.
    pub mode: u32,
    /// `SWAPDIO_CAP_*` bits of the backend.
    pub caps: u32,
    /// `SWAPDIO_ATTR_*` bits of the file.
    pub attrs: u32,
}

/// What activation produced, or why it refused (`/proc/swaps`, dmesg, and more).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_activation_report {
    /// 0, or the negative errno `swapdio_activate` returned.
    pub error: i32,
    /// A `swapdio_refusal` value (`SWAPDIO_REFUSAL_NONE` on success).
    pub refusal: u32,
    /// A `swapdio_mode` value (0 on failure).
    pub mode: u32,
    /// Always 0.
    pub reserved: u32,
    /// Index of the offending extent report, or `SWAPDIO_NONE`.
    pub bad_extent: u64,
    /// File byte offset of the problem, or `SWAPDIO_NONE`.
    pub bad_offset: u64,
    /// Map entries written to the caller's map (pass this count to the engine).
    pub map_entries: u64,
    /// Slots in the map, header slot included (`si->max`).
    pub slots: u64,
    /// Usable pages, header excluded (`si->pages`).
    pub usable_pages: u64,
    /// Page slots the header allows (`maxpages`).
    pub header_pages: u64,
    /// Extents after merging (`nr_extents`).
    pub extents: u64,
    /// `1 + highest - lowest` physical page.
    pub span_pages: u64,
    /// Lowest physical page used for data.
    pub lowest_page: u64,
    /// Highest physical page seen.
    pub highest_page: u64,
    /// Bytes lost to page trimming at run ends.
    pub lost_misaligned: u64,
    /// Bytes lost in runs shorter than a page.
    pub lost_too_short: u64,
    /// Bytes past the header's last page.
    pub lost_beyond_header: u64,
    /// The partial page at the end of the file.
    pub lost_file_tail: u64,
    /// Entries of the header's bad-page list inside the area (layout
    /// `SWAPDIO_LAYOUT_BLOCK_DEVICE` only; the kernel's `nr_badpages` that cost a usable
    /// page): not in `usable_pages`. The map leaves the bad pages out (it needs up to
    /// `1 + nr_badpages` entries), so the engine refuses I/O to them with `-EINVAL`.
    pub bad_pages: u64,
}

/// Where a slot lives (`swapdio_engine_lookup`, `swapdio_map_lookup`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_run {
    /// Byte position of the slot in the active address space.
    pub pos: u64,
    /// Pages from the slot to the end of its extent (at least 1).
    pub pages: u64,
}

/// A folio handed to the engine.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_folio {
    /// The caller's handle (a pointer, an index): handed back to the callbacks.
    pub id: u64,
    /// First swap slot; slot 0 is the header and is refused.
    pub slot: u64,
    /// Base pages in the folio (1 to 2^18).
    pub pages: u32,
    /// `SWAPDIO_FOLIO_*` flags.
    pub flags: u32,
}

/// One bvec of a request: a whole folio, or the part of a large folio in one extent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_segment {
    /// The folio's handle.
    pub folio: u64,
    /// Byte offset inside the folio (0 unless the folio was split across extents).
    pub offset: u32,
    /// Bytes.
    pub len: u32,
}

/// A request as the backend's `submit` sees it. It lives in the request storage (not on
/// the stack) and stays valid, unchanged, until `submit` has returned and the request's
/// completion was handed to `swapdio_complete` (whichever comes last): an async backend
/// may keep pointers into it (the segments, `backend_data`) instead of copying, and must
/// not touch it after calling `swapdio_complete` once `submit` has returned.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct swapdio_io {
    /// Pass to `swapdio_complete` if `submit` returns `SWAPDIO_QUEUED`.
    pub id: u64,
    /// Byte position of the first segment (device bytes or file bytes, per `mode`).
    pub pos: u64,
    /// Total bytes (sum of the segment lengths).
    pub len: u64,
    /// A `swapdio_direction` value.
    pub direction: u32,
    /// `SWAPDIO_REQ_*` bits (`SWAPDIO_REQ_SWAP` always).
    pub flags: u32,
    /// A `swapdio_mode` value.
    pub mode: u32,
    /// Valid entries of `segments` (1 to `SWAPDIO_MAX_SEGMENTS`).
    pub nr_segments: u32,
    /// The bvecs, in position order.
    pub segments: [swapdio_segment; SWAPDIO_MAX_SEGMENTS],
    /// `swapdio_storage_config.backend_data` bytes of private space for this request
    /// (its bio or kiocb state), 16-byte aligned, valid as long as the request; NULL if
    /// the storage was sized with 0. Never touched by the library.
    pub backend_data: *mut c_void,
}

/// A completion event: vm counters and error reports (`count_vm_events`, the
/// rate-limited `pr_alert` of `sio_write_complete`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_event {
    /// A `swapdio_event_kind` value.
    pub kind: u32,
    /// A `swapdio_failure` value.
    pub failure: u32,
    /// The folio (failures only; 0 for counters).
    pub folio: u64,
    /// Base pages concerned.
    pub pages: u64,
    /// Negative errno of the failure (`-EIO` for short and overrun), 0 if none.
    pub error: i32,
    /// 1 if the failure is transient (`EAGAIN`, `ENOMEM`, `EINTR`): retry soon.
    pub retryable: u32,
    /// Short/overrun: bytes the backend reported for the whole request.
    pub done: u64,
    /// Short/overrun: bytes the request carried.
    pub expected: u64,
}

/// The backend operation table: the engine's `->swap_rw`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct swapdio_backend_ops {
    /// `SWAPDIO_CAP_*` bits, read once at engine setup.
    pub caps: u32,
    /// Must be 0.
    pub reserved: u32,
    /// Start a request. Return the bytes transferred (>= 0) or a negative errno if it
    /// finished during the call, or `SWAPDIO_QUEUED` if it will be finished by exactly one
    /// `swapdio_complete(engine, io->id, result)`, from any thread, possibly before this
    /// call returns. Required.
    ///
    /// Context: the caller of `swapdio_write`, `swapdio_read`, `swapdio_plug_finish` or
    /// the sync calls (in a kernel: task context, reclaim or a page fault). It may sleep
    /// if that caller may (allocate with `GFP_NOIO`); it must not call the engine except
    /// `swapdio_complete`. `io` is valid only during the call.
    pub submit: Option<unsafe extern "C" fn(ctx: *mut c_void, io: *const swapdio_io) -> i64>,
}

/// The page operation table (`folio_*` calls of `mm/page_io.c`). Every callback must
/// be callable from any thread. All are required except `event` and `wake`.
///
/// Context: `start_writeback`, `pin`, and `unlock` of a write run in the submitter's
/// context, during `swapdio_write`/`swapdio_read`/`swapdio_*_sync`. Everything else runs
/// where the backend calls `swapdio_complete` — in a kernel, `bi_end_io` in **hard-irq
/// with IRQs off**, softirq, or a workqueue — or in the submitter's context when `submit`
/// returned the result itself. None of the callbacks may sleep or call the engine.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct swapdio_page_ops {
    /// `folio_mark_uptodate`: read success. Completion context.
    pub set_uptodate: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// `folio_mark_dirty`: a failed write keeps the data dirty. Completion context.
    pub set_dirty: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// `folio_clear_reclaim` after a failed write. Completion context.
    pub clear_reclaim: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// `folio_start_writeback` before a write is queued. Submitter's context.
    pub start_writeback: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// `folio_end_writeback` when a write completes, success or failure. Completion
    /// context.
    pub end_writeback: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// `folio_unlock`: after a write is queued (submitter's context); when a read
    /// completes (completion context).
    pub unlock: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// Take one pin for a request carrying (part of) the folio. Submitter's context.
    pub pin: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// Drop one request's pin, exactly once, at its completion (after `end_writeback`
    /// or `unlock`: a waiter woken by those may still see this pin briefly). Completion
    /// context.
    pub unpin: Option<unsafe extern "C" fn(ctx: *mut c_void, folio: u64)>,
    /// Counters and error reports, in base pages. Optional (NULL: ignored). Either
    /// context.
    pub event: Option<unsafe extern "C" fn(ctx: *mut c_void, event: *const swapdio_event)>,
    /// Wake waiters (`wake_up`): `reason` is a `swapdio_wake` value — a synchronous
    /// request completed (its waiter's `swapdio_sync_done()` is now true), or an async
    /// request was released (a caller that got `-ENOBUFS` may retry). Optional (NULL:
    /// waiters must poll). Completion context, or the submitter's for `SWAPDIO_WAKE_POOL`.
    pub wake: Option<unsafe extern "C" fn(ctx: *mut c_void, reason: u32)>,
}

/// Sizes of the request storage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_storage_config {
    /// Async requests (the kernel's mempool of 32); at least 1.
    pub pool: usize,
    /// Synchronous request slots (for `swapdio_*_sync`).
    pub sync: usize,
    /// Trackers of large folios split across extents.
    pub splits: usize,
    /// Bytes of private backend space per request (`swapdio_io.backend_data`), so an
    /// async backend keeps its per-request state without allocating in the reclaim path;
    /// 0 for none.
    pub backend_data: usize,
}

/// Everything `swapdio_engine_init` needs. The ops tables are copied; the map and the
/// storage must stay valid and untouched until `swapdio_engine_fini`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct swapdio_engine_config {
    /// The activated map (`swapdio_activate` output), 8-byte aligned.
    pub map: *const swapdio_map_entry,
    /// Entries in `map` (`swapdio_activation_report.map_entries`).
    pub map_entries: usize,
    /// Request storage, sized and aligned by `swapdio_storage_layout`
    /// (ignored by `swapdio_engine_new`, which allocates it).
    pub storage: *mut c_void,
    /// Bytes at `storage`.
    pub storage_size: usize,
    /// How many requests of each kind `storage` holds.
    pub storage_config: swapdio_storage_config,
    /// Backend operations (copied).
    pub backend: *const swapdio_backend_ops,
    /// Opaque context handed to the backend operations.
    pub backend_ctx: *mut c_void,
    /// Page operations (copied).
    pub page_ops: *const swapdio_page_ops,
    /// Opaque context handed to the page operations.
    pub page_ctx: *mut c_void,
    /// The `swapdio_mode` of the map (`swapdio_activation_report.mode`).
    pub mode: u32,
    /// Must be 0.
    pub reserved: u32,
}

/// Plug state in caller memory (`struct blk_plug` / the `swap_iocb **plug`): at most
/// one batch being filled. Start with `swapdio_plug_start`, end with
/// `swapdio_plug_finish`; a plug belongs to one thread and, once used, to one engine.
/// A C plug has no destructor: a plug (or a struct copy of it) that holds the current
/// batch and is discarded or overwritten strands that request (`swapdio_deactivate`
/// answers `-EBUSY`), so finish it first. A stale copy is harmless: it gets `-ESTALE`
/// and never submits a batch twice.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct swapdio_plug {
    /// Set by `swapdio_plug_start`; anything else is refused with `-EINVAL`.
    pub magic: u64,
    /// Opaque state.
    pub opaque: [u64; 8],
}

/// Counters since activation, and the request pool's state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct swapdio_stats {
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
    /// Calls answered with `-ENOBUFS` for lack of a free request.
    pub would_block: u64,
    /// Completions refused (double, stale).
    pub rejected_completions: u64,
    /// Requests held by plugs, in flight, or awaiting release.
    pub in_flight: u64,
    /// Free requests in the async pool.
    pub pool_free: u64,
}

/// The engine of one active swap area: opaque, lives in caller memory sized by
/// `swapdio_engine_layout` (or allocated by `swapdio_engine_new`).
// Not `#[repr(C)]` on purpose: cbindgen declares it as an incomplete type.
pub struct swapdio_engine {
    _private: [u8; 0],
}

// The layout contract of every struct above (size, alignment, every field offset C
// reads), mirrored by the `_Static_assert`s of ffi/tests/c/layout_check.h.
mod layout;
