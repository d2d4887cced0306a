//! Activation (swapon): extent reports + header + capabilities → [`SwapMap`] and an
//! [`ActivationReport`], or a typed refusal naming the offending extent.
//!
//! The arithmetic is the kernel's (`iomap_swapfile_activate`, `iomap_swapfile_iter`,
//! `iomap_swapfile_add_extent`, `add_swap_extent` in Linux 6.x): walk
//! `[0, ALIGN_DOWN(i_size, PAGE))`, accumulate physically adjacent mappings ignoring
//! logical offsets, trim each accumulated extent to whole pages, skip too-short ones,
//! stop at the header's page count, and number slots densely in walk order.
//! **Better than the kernel:** the report says how many bytes each rule cost.

use crate::caps::{choose_mode, BackendCaps, CapsRefusal, FileAttrs, IoMode, ModeRequest};
use crate::errno::Errno;
use crate::header::{HeaderError, HeaderLimits, SwapHeader, SwapTarget};
use crate::map::{MapEntry, MapError, SwapMap};
use crate::PAGE_SIZE;

const PAGE: u64 = PAGE_SIZE as u64;

bitflags::bitflags! {
    /// What the filesystem says about one extent (FIEMAP / iomap flags, fs neutral).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct ExtentFlags: u32 {
        /// Allocated but unwritten (preallocated): reads return zeros.
        const UNWRITTEN = 1 << 0;
        /// Shared with another file (reflink, snapshot): a write must copy first.
        const SHARED = 1 << 1;
        /// Data stored inline in metadata: no block address.
        const INLINE = 1 << 2;
        /// Delayed allocation, or location unknown: no block yet.
        const DELALLOC = 1 << 3;
        /// Encoded (compressed, encrypted) on disk: not the page contents.
        const ENCODED = 1 << 4;
        /// Data not block aligned (tail packing).
        const NOT_ALIGNED = 1 << 5;
        /// Mapping metadata not yet committed (the kernel's `IOMAP_F_DIRTY`).
        const DIRTY = 1 << 6;
    }
}

/// One mapping of the swap file, in bytes, as an extent reporter (FIEMAP) gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct ExtentReport {
    /// Byte offset in the file.
    pub logical: u64,
    /// Byte address on the device.
    pub physical: u64,
    /// Length in bytes (not 0).
    pub length: u64,
    /// What the filesystem says about it.
    pub flags: ExtentFlags,
    /// Device the extent lives on (compared with [`ActivationRequest::main_device`]).
    pub device: u64,
}

/// How the file's layout is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout<'a> {
    /// Every mapping of the file, sorted by logical offset, not overlapping.
    Extents(&'a [ExtentReport]),
    /// No extent map (NFS, SMB): only the allocated byte count, checked for holes the
    /// way `nfs_swap_activate` does (`i_blocks * 512 < i_size`). File mode only.
    Opaque {
        /// Bytes allocated to the file.
        allocated_bytes: u64,
    },
    /// A whole block device (`S_ISBLK`; `file_size` is its size): `setup_swap_extents`
    /// maps it as one extent at byte 0 (`add_swap_extent(si, 0, si->max, 0)`), span
    /// `maxpages - 1`. The header may carry a bad-page list (`setup_swap_map`): entries
    /// 0 or past `last_page` are refused, the others below `maxpages` are never used for
    /// data ([`ActivationReport::bad_pages`]; [`SwapHeader::bad_page`] lists them): the
    /// map leaves them out (one entry per run of good pages, see
    /// [`ActivationRequest::map_capacity`]), so the engine refuses I/O to them
    /// ([`crate::MapError::BadSlot`]) and [`SwapMap::is_usable`] tells an allocator.
    BlockDevice,
}

/// Everything activation looks at.
#[derive(Clone, Copy, Debug)]
pub struct ActivationRequest<'a> {
    /// Page 0 of the file (at least `PAGE_SIZE` bytes).
    pub header: &'a [u8],
    /// `i_size` of the file.
    pub file_size: u64,
    /// The file's mappings.
    pub layout: Layout<'a>,
    /// The block device swap I/O goes to in device mode.
    pub main_device: u64,
    /// What the backend can do.
    pub caps: BackendCaps,
    /// File attributes that matter (copy-on-write, compressed, sequential zone).
    pub attrs: FileAttrs,
    /// Which mode the caller wants.
    pub mode: ModeRequest,
    /// Header limits (architecture maximum).
    pub limits: HeaderLimits,
}

impl<'a> ActivationRequest<'a> {
    /// A request with default mode choice and limits and no file attributes.
    pub fn new(header: &'a [u8], file_size: u64, layout: Layout<'a>, main_device: u64, caps: BackendCaps) -> Self {
        ActivationRequest {
            header,
            file_size,
            layout,
            main_device,
            caps,
            attrs: FileAttrs::empty(),
            mode: ModeRequest::Auto,
            limits: HeaderLimits::default(),
        }
    }

    /// How many map entries activation may need: size caller storage with this. A
    /// block device needs one more than its header lists bad pages (its map leaves them
    /// out).
    pub fn map_capacity(&self) -> usize {
        match self.layout {
            Layout::Extents(e) => e.len().max(1),
            Layout::Opaque { .. } => 1,
            Layout::BlockDevice => SwapHeader::parse(self.header)
                .map_or(1, |h| (h.nr_badpages as usize).min(crate::header::MAX_SWAP_BADPAGES as usize) + 1),
        }
    }
}

/// Why activation refused the file. `Display` is the kernel's message where the kernel
/// has one; [`Refusal::errno`] is what `swapon(2)` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    /// The swap header is missing or invalid.
    #[error("{0}")]
    Header(#[from] HeaderError),
    /// A file attribute or the backend's capabilities refuse it.
    #[error("{0}")]
    Caps(#[from] CapsRefusal),
    /// An inline extent.
    #[error("is inline")]
    Inline,
    /// A hole, delayed allocation or unknown location.
    #[error("has unallocated extents")]
    Unallocated,
    /// Uncommitted mapping metadata.
    #[error("is not committed")]
    NotCommitted,
    /// A shared (reflinked, snapshotted) extent.
    #[error("has shared extents")]
    Shared,
    /// An extent on another device than the swap device.
    #[error("outside the main device")]
    OutsideMainDevice,
    /// An encoded (compressed, encrypted) extent.
    #[error("swapfile must not be compressed")]
    Encoded,
    /// An extent whose data is not block aligned.
    #[error("has extents that are not block aligned")]
    NotAligned,
    /// An unwritten extent in file mode without `UNWRITTEN_SAFE_IN_FILE_MODE`:
    /// the first swap write would convert it in a transaction.
    #[error("has unwritten extents that file-mode swap writes would convert")]
    UnwrittenInFileMode,
    /// Opaque layout with fewer bytes allocated than the file size (`nfs_swap_activate`).
    #[error("swapfile has holes")]
    Holes,
    /// Device mode needs extents; the layout is opaque.
    #[error("device mode needs the file's extent map")]
    NoExtentMap,
    /// Not a single page-aligned contiguous page in the file.
    #[error("Cannot find a single usable page in file.")]
    NoUsablePage,
    /// Only the header page is usable.
    #[error("Empty swap-file")]
    EmptySwapFile,
    /// Two extents map the same device bytes (in device mode two slots would share one
    /// page). The kernel trusts FIEMAP here; swapdio refuses it.
    #[error("extents overlap on the device: slot {slot} maps bytes already mapped")]
    PhysicalOverlap {
        /// The later-numbered of the first two entries found to share device bytes.
        slot: u64,
    },
    /// Extent reports out of order or overlapping (bad input, not a kernel rule).
    #[error("extent reports are not sorted by logical offset or overlap")]
    ExtentsUnsorted,
    /// An extent of length 0 or whose end overflows (bad input).
    #[error("extent report has zero length or overflows")]
    InvalidExtent,
    /// The caller's map storage is too small.
    #[error("map storage too small: {needed} entries needed")]
    MapStorageTooSmall {
        /// Entries needed.
        needed: usize,
    },
}

impl Refusal {
    /// The errno `swapon(2)` returns (the kernel uses `EINVAL` for every refusal).
    pub const fn errno(self) -> Errno {
        match self {
            Refusal::MapStorageTooSmall { .. } => Errno::ENOMEM,
            _ => Errno::EINVAL,
        }
    }
}

/// A refusal with where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("swapon: {refusal}")]
pub struct ActivationError {
    /// Why.
    pub refusal: Refusal,
    /// Index of the offending extent report, when one is to blame.
    pub extent: Option<usize>,
    /// File byte offset of the problem (start of the extent or of the hole), when known.
    pub offset: Option<u64>,
}

impl ActivationError {
    fn at(refusal: Refusal, extent: usize, offset: u64) -> Self {
        ActivationError { refusal, extent: Some(extent), offset: Some(offset) }
    }

    /// The errno of the refusal.
    pub const fn errno(&self) -> Errno {
        self.refusal.errno()
    }
}

impl From<Refusal> for ActivationError {
    fn from(refusal: Refusal) -> Self {
        ActivationError { refusal, extent: None, offset: None }
    }
}

/// Bytes of the file that activation could not use, by cause.
///
/// Invariant: `slots * PAGE_SIZE + lost.total() == Some(file_size)` for every accepted
/// file (slots up to the last page, bad pages of a block device included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TrimLoss {
    /// Partial pages at the ends of physically contiguous runs (page trimming).
    pub misaligned: u64,
    /// Runs shorter than one aligned page, skipped whole.
    pub too_short: u64,
    /// Pages past the header's `last_page` (or the architecture limit).
    pub beyond_header: u64,
    /// The partial page at the end of the file, never walked.
    pub file_tail: u64,
}

impl TrimLoss {
    /// All lost bytes; `None` if the sum passes `u64::MAX` (never for a report that
    /// activation produced, whose causes add up to at most the file size; a value built
    /// by hand can, and is never wrapped around).
    pub const fn total(&self) -> Option<u64> {
        match self.misaligned.checked_add(self.too_short) {
            Some(a) => match a.checked_add(self.beyond_header) {
                Some(b) => b.checked_add(self.file_tail),
                None => None,
            },
            None => None,
        }
    }
}

/// What activation produced: everything `/proc/swaps` and dmesg would tell, and more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActivationReport {
    /// The chosen I/O mode.
    pub mode: IoMode,
    /// Slots in the map, header slot included (the kernel's `si->max`).
    pub slots: u64,
    /// Usable pages, header excluded (the kernel's `si->pages`).
    pub usable_pages: u64,
    /// Page slots the header allows (`maxpages`).
    pub header_pages: u64,
    /// Extents in the map after merging (the kernel's `nr_extents`). A block device is
    /// one extent, as in the kernel, although its map has one entry per run of good
    /// pages.
    pub extents: u64,
    /// `1 + highest - lowest` physical page (the kernel's span).
    pub span_pages: u64,
    /// Lowest physical page used for data (header page excluded).
    pub lowest_page: u64,
    /// Highest physical page seen.
    pub highest_page: u64,
    /// Bytes lost and why.
    pub lost: TrimLoss,
    /// Entries of the header's bad-page list inside the area (block devices only; a
    /// repeated page counts per entry, as in the kernel): not in `usable_pages`. The
    /// listed pages are never used for data ([`SwapHeader::bad_page`] lists them).
    pub bad_pages: u64,
}

impl ActivationReport {
    /// Size as `/proc/swaps` shows it, in KiB.
    pub const fn usable_kib(&self) -> u64 {
        self.usable_pages * (PAGE / 1024)
    }
}

struct Walk<'m> {
    out: &'m mut [MapEntry],
    used: usize,
    max: u64,
    nr_pages: u64,
    lowest: u64,
    highest: u64,
    lost: TrimLoss,
}

/// An accumulated run of physically adjacent mappings (the kernel's `isi->iomap`).
#[derive(Clone, Copy)]
struct Acc {
    logical: u64,
    addr: u64,
    len: u64,
}

impl Walk<'_> {
    /// `iomap_swapfile_add_extent` + `add_swap_extent`.
    fn add(&mut self, acc: Acc) -> Result<(), Refusal> {
        if self.nr_pages >= self.max {
            self.lost.beyond_header += acc.len;
            return Ok(());
        }
        let max_pages = self.max - self.nr_pages;
        let end = acc.addr + acc.len; // checked when the run was built
        let first = acc.addr.div_ceil(PAGE);
        let next = end / PAGE;
        if first >= next {
            self.lost.too_short += acc.len;
            return Ok(());
        }
        let whole = next - first;
        let take = whole.min(max_pages);
        self.lost.misaligned += first * PAGE - acc.addr + (end - next * PAGE);
        self.lost.beyond_header += (whole - take) * PAGE;
        let reported = if acc.logical == 0 { first + 1 } else { first };
        self.lowest = self.lowest.min(reported);
        self.highest = self.highest.max(next - 1);
        self.push(take, first * PAGE)?;
        self.nr_pages += take;
        Ok(())
    }

    fn push(&mut self, pages: u64, start: u64) -> Result<(), Refusal> {
        if let Some(last) = self.used.checked_sub(1).and_then(|i| self.out.get_mut(i)) {
            if last.start + last.pages * PAGE == start {
                last.pages += pages;
                return Ok(());
            }
        }
        let needed = self.used + 1;
        let slot = self.out.get_mut(self.used).ok_or(Refusal::MapStorageTooSmall { needed })?;
        *slot = MapEntry { first_slot: self.nr_pages, pages, start };
        self.used = needed;
        Ok(())
    }
}

/// Checks one extent against the rules of `iomap_swapfile_iter` (in its order) and the
/// mode's own rules.
fn check_extent(e: &ExtentReport, mode: IoMode, req: &ActivationRequest<'_>) -> Result<(), Refusal> {
    let f = e.flags;
    if f.contains(ExtentFlags::INLINE) {
        return Err(Refusal::Inline);
    }
    if f.contains(ExtentFlags::DELALLOC) {
        return Err(Refusal::Unallocated);
    }
    if f.contains(ExtentFlags::DIRTY) {
        return Err(Refusal::NotCommitted);
    }
    if f.contains(ExtentFlags::SHARED) {
        return Err(Refusal::Shared);
    }
    if f.contains(ExtentFlags::ENCODED) {
        return Err(Refusal::Encoded);
    }
    if f.contains(ExtentFlags::NOT_ALIGNED) {
        return Err(Refusal::NotAligned);
    }
    match mode {
        IoMode::Device if e.device != req.main_device => Err(Refusal::OutsideMainDevice),
        IoMode::File
            if f.contains(ExtentFlags::UNWRITTEN) && !req.caps.contains(BackendCaps::UNWRITTEN_SAFE_IN_FILE_MODE) =>
        {
            Err(Refusal::UnwrittenInFileMode)
        }
        _ => Ok(()),
    }
}

/// Activates a swap file into caller-provided map storage (no allocation).
///
/// Returns how many entries of `out` the map uses and the report. `out` needs at most
/// [`ActivationRequest::map_capacity`] entries.
pub fn activate_into(
    req: &ActivationRequest<'_>,
    out: &mut [MapEntry],
) -> Result<(usize, ActivationReport), ActivationError> {
    let header = SwapHeader::parse(req.header).map_err(Refusal::Header)?;
    let target = match req.layout {
        Layout::BlockDevice => SwapTarget::BlockDevice,
        _ => SwapTarget::File,
    };
    let maxpages = header.validate_for(target, req.file_size, req.limits).map_err(Refusal::Header)?;
    let mode_request = match (req.layout, req.mode) {
        (Layout::Opaque { .. }, ModeRequest::Auto) if req.caps.contains(BackendCaps::SWAP_RW) => ModeRequest::File,
        (_, m) => m,
    };
    let mode = choose_mode(req.caps, req.attrs, mode_request).map_err(Refusal::Caps)?;
    let walk_end = req.file_size / PAGE * PAGE;
    let mut w = Walk {
        out,
        used: 0,
        max: maxpages,
        nr_pages: 0,
        lowest: u64::MAX,
        highest: 0,
        lost: TrimLoss { file_tail: req.file_size - walk_end, ..TrimLoss::default() },
    };

    match req.layout {
        Layout::BlockDevice => return activate_block_device(req, &header, maxpages, w),
        Layout::Opaque { allocated_bytes } => {
            if mode == IoMode::Device {
                return Err(Refusal::NoExtentMap.into());
            }
            if allocated_bytes < req.file_size {
                return Err(Refusal::Holes.into());
            }
        }
        Layout::Extents(extents) => {
            let mut pos = 0u64; // next logical byte the walk expects
            let mut acc: Option<Acc> = None;
            for (i, e) in extents.iter().enumerate() {
                if e.length == 0
                    || e.logical.checked_add(e.length).is_none()
                    || e.physical.checked_add(e.length).is_none()
                {
                    return Err(ActivationError::at(Refusal::InvalidExtent, i, e.logical));
                }
                if e.logical < pos {
                    return Err(ActivationError::at(Refusal::ExtentsUnsorted, i, e.logical));
                }
                if e.logical >= walk_end {
                    break;
                }
                if e.logical > pos {
                    return Err(ActivationError::at(Refusal::Unallocated, i, pos));
                }
                check_extent(e, mode, req).map_err(|r| ActivationError::at(r, i, e.logical))?;
                let len = e.length.min(walk_end - e.logical);
                pos = e.logical + len;
                if mode == IoMode::File {
                    continue;
                }
                acc = match acc {
                    Some(a) if a.addr + a.len == e.physical => Some(Acc { len: a.len + len, ..a }),
                    Some(a) => {
                        w.add(a).map_err(ActivationError::from)?;
                        Some(Acc { logical: e.logical, addr: e.physical, len })
                    }
                    None => Some(Acc { logical: e.logical, addr: e.physical, len }),
                };
            }
            if pos < walk_end {
                return Err(ActivationError { refusal: Refusal::Unallocated, extent: None, offset: Some(pos) });
            }
            if let Some(a) = acc {
                w.add(a)?;
            }
        }
    }

    if mode == IoMode::File {
        // The filesystem maps file positions: slot i is file page i (`swap_dev_pos`).
        // `validate` guarantees maxpages <= file pages whenever the file has a page.
        if walk_end == 0 {
            return Err(Refusal::NoUsablePage.into());
        }
        w.lost.beyond_header = walk_end.saturating_sub(maxpages * PAGE);
        w.push(maxpages, 0)?;
        w.nr_pages = maxpages;
        w.lowest = 1;
        w.highest = maxpages - 1;
    }
    if w.nr_pages == 0 {
        return Err(Refusal::NoUsablePage.into());
    }
    if w.nr_pages == 1 {
        return Err(Refusal::EmptySwapFile.into());
    }
    if mode == IoMode::Device {
        if let Some(entries) = w.out.get_mut(..w.used) {
            refuse_physical_overlap(entries)?;
        }
    }
    let span_pages = match mode {
        IoMode::Device => 1 + w.highest - w.lowest,
        IoMode::File => w.nr_pages - 1,
    };
    let report = ActivationReport {
        mode,
        slots: w.nr_pages,
        usable_pages: w.nr_pages - 1,
        header_pages: maxpages,
        extents: w.used as u64,
        span_pages,
        lowest_page: w.lowest,
        highest_page: w.highest,
        lost: w.lost,
        bad_pages: 0,
    };
    Ok((w.used, report))
}

/// Refuses a map in which two entries cover the same device page
/// ([`crate::map`]'s check, with the map storage as scratch).
fn refuse_physical_overlap(entries: &mut [MapEntry]) -> Result<(), ActivationError> {
    match crate::map::physical_overlap_in_place(entries) {
        Some(slot) => Err(Refusal::PhysicalOverlap { slot }.into()),
        None => Ok(()),
    }
}

/// The block-device path of `setup_swap_map` + `setup_swap_extents`: bad pages 0 or
/// past `last_page` refuse; each entry below `maxpages` costs one usable page; one
/// extent `[0, maxpages)` at device byte 0; span `maxpages - 1`.
fn activate_block_device(
    req: &ActivationRequest<'_>,
    header: &SwapHeader,
    maxpages: u64,
    w: Walk<'_>,
) -> Result<(usize, ActivationReport), ActivationError> {
    let mode = choose_mode(req.caps, req.attrs, req.mode).map_err(Refusal::Caps)?;
    let mut bad = 0usize;
    for i in 0..header.nr_badpages {
        let Some(page) = header.bad_page(req.header, i) else { break };
        if page == 0 || page > header.last_page {
            return Err(Refusal::Header(HeaderError::BadPageOutOfRange(page)).into());
        }
        // `setup_swap_map` counts every entry: a repeated page costs one usable page per
        // entry (observed on Linux 6.18: pages 100,100 leave 16381 of 16383).
        if u64::from(page) < maxpages {
            bad += 1;
        }
    }
    let good = maxpages.saturating_sub(1).saturating_sub(bad as u64);
    if good == 0 {
        return Err(Refusal::EmptySwapFile.into());
    }
    let used = bad_page_map(req.header, header, maxpages, bad, w.out)?;
    let walk_end = req.file_size / PAGE * PAGE;
    let mut lost = w.lost;
    lost.beyond_header = walk_end.saturating_sub(maxpages.saturating_mul(PAGE));
    let report = ActivationReport {
        mode,
        slots: maxpages,
        usable_pages: good,
        header_pages: maxpages,
        extents: 1,
        span_pages: maxpages - 1,
        lowest_page: 1,
        highest_page: maxpages - 1,
        lost,
        bad_pages: bad as u64,
    };
    Ok((used, report))
}

/// The block device's map: the kernel's one extent `[0, maxpages)` at byte 0 with the
/// bad pages left out (the kernel marks them `SWAP_MAP_BAD` so they are never handed
/// out; here a lookup of one is [`MapError::BadSlot`], so the engine never does I/O to
/// it). One entry per run of good pages, at most `bad + 1`. The in-range bad pages are
/// first collected in `out` and sorted there, then the runs are written over them (the
/// write index never passes the read index). Returns the entries used.
fn bad_page_map(
    page0: &[u8],
    header: &SwapHeader,
    maxpages: u64,
    bad: usize,
    out: &mut [MapEntry],
) -> Result<usize, Refusal> {
    let needed = bad + 1;
    if out.len() < needed {
        return Err(Refusal::MapStorageTooSmall { needed });
    }
    let mut n = 0usize;
    for i in 0..header.nr_badpages {
        match header.bad_page(page0, i).map(u64::from) {
            Some(page) if page < maxpages => {
                if let Some(e) = out.get_mut(n) {
                    *e = MapEntry { first_slot: page, pages: 0, start: 0 };
                }
                n += 1;
            }
            _ => {}
        }
    }
    if let Some(list) = out.get_mut(..n) {
        crate::map::heapsort_by_key(list, |e| e.first_slot);
    }
    let mut used = 0usize;
    let mut next = 0u64; // first slot not yet mapped or known bad
    for r in 0..n {
        let Some(page) = out.get(r).map(|e| e.first_slot) else { break };
        if page > next {
            if let Some(e) = out.get_mut(used) {
                *e = MapEntry { first_slot: next, pages: page - next, start: next * PAGE };
            }
            used += 1;
        }
        next = next.max(page + 1);
    }
    if maxpages > next {
        if let Some(e) = out.get_mut(used) {
            *e = MapEntry { first_slot: next, pages: maxpages - next, start: next * PAGE };
        }
        used += 1;
    }
    Ok(used)
}

/// Activates into caller-provided storage and wraps the result in a [`SwapMap`].
pub fn activate<'m>(
    req: &ActivationRequest<'_>,
    out: &'m mut [MapEntry],
) -> Result<(SwapMap<&'m [MapEntry]>, ActivationReport), ActivationError> {
    let (used, report) = activate_into(req, out)?;
    let entries: &'m [MapEntry] = &out[..used];
    let map = SwapMap::new(entries, report.mode).map_err(map_invariant)?;
    Ok((map, report))
}

/// Activates into an owned map (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn activate_owned(
    req: &ActivationRequest<'_>,
) -> Result<(SwapMap<alloc::vec::Vec<MapEntry>>, ActivationReport), ActivationError> {
    let mut out = alloc::vec![MapEntry::default(); req.map_capacity()];
    let (used, report) = activate_into(req, &mut out)?;
    out.truncate(used);
    let map = SwapMap::new(out, report.mode).map_err(map_invariant)?;
    Ok((map, report))
}

/// Activation only builds dense, valid maps; should that ever break, say so as a typed
/// error instead of panicking.
fn map_invariant(_: MapError) -> ActivationError {
    Refusal::InvalidExtent.into()
}
