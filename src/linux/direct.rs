//! Memory and files for direct I/O: the page-aligned folio arena the drivers move pages
//! in and out of, `O_DIRECT` open helpers, and block-device helpers.
//!
//! The kernel's swap I/O moves whole folios with direct I/O (no page cache in between,
//! `mm/page_io.c` builds a bvec per folio). In userspace the folios live in an
//! [`Arena`]: one anonymous mapping, page aligned, so every folio satisfies `O_DIRECT`
//! alignment and the whole arena can be registered once with io_uring
//! (`IORING_REGISTER_BUFFERS`), the userspace counterpart of pinned pages.
//!
//! A [`FolioId`] names arena memory directly: folio `FolioId(n)` starts at arena page
//! `n`, and a folio of `k` pages covers pages `n..n + k`. A request segment
//! `(folio, offset, len)` is the bytes `n * PAGE_SIZE + offset ..` of the arena.

use super::layout::FileLayout;
use crate::caps::{BackendCaps, IoMode};
use crate::errno::Errno;
use crate::fault::{Fault, FaultPlan};
use crate::iocb::{Request, MAX_SEGMENTS};
use crate::map::{MapEntry, MapError};
use crate::page::FolioId;
use crate::PAGE_SIZE;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest buffer io_uring registers in one iovec (the kernel's `SZ_1G` limit in
/// `io_buffer_validate`); larger arenas are registered as several buffers.
pub const REGISTER_CHUNK: usize = 1 << 30;

/// Page-aligned folio memory shared by a workload, the drivers and the kernel.
///
/// Pages handed to a request belong to the kernel until the request completes (the
/// engine pins them and unpins at completion); callers copy bytes in and out with
/// [`Arena::copy_in`] / [`Arena::copy_out`] only while they own the folio.
#[derive(Debug)]
pub struct Arena {
    base: NonNull<u8>,
    pages: usize,
}

// SAFETY: the arena is a fixed anonymous mapping of plain bytes; it is only accessed
// through raw-pointer copies (any byte value is valid) and by the kernel during I/O.
// Which thread owns which pages at a time is the engine's pin/lock protocol.
unsafe impl Send for Arena {}
// SAFETY: as for `Send`: shared access is raw byte copies, never references.
unsafe impl Sync for Arena {}

impl Arena {
    /// Maps `pages` zeroed, page-aligned pages (populated up front so the first I/O does
    /// not fault them in).
    pub fn new(pages: usize) -> io::Result<Arena> {
        let len = pages
            .checked_mul(PAGE_SIZE)
            .filter(|&l| l > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: an anonymous private mapping at a kernel-chosen address; no existing
        // memory is affected. The result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Arena { base, pages })
    }

    /// Pages in the arena.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Bytes in the arena.
    pub fn len(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// Whether the arena is empty (never: `new` refuses 0 pages).
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }

    /// Address of the arena's first byte.
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Byte offset in the arena of a request segment, or `None` if the segment is not
    /// entirely inside the arena. The folio-to-memory rule of the drivers.
    pub fn segment_offset(&self, folio: FolioId, offset: u32, len: u32) -> Option<usize> {
        let start = usize::try_from(folio.0).ok()?.checked_mul(PAGE_SIZE)?.checked_add(offset as usize)?;
        let end = start.checked_add(len as usize)?;
        (end <= self.len()).then_some(start)
    }

    /// Raw address of a request segment (checked as [`Arena::segment_offset`]), for
    /// handing to the kernel.
    pub fn segment_ptr(&self, folio: FolioId, offset: u32, len: u32) -> Option<*mut u8> {
        let off = self.segment_offset(folio, offset, len)?;
        // SAFETY: `off + len <= self.len()`, so the pointer stays inside the mapping.
        Some(unsafe { self.base.as_ptr().add(off) })
    }

    /// Copies `data` into the arena at arena page `page`. Returns `false` (copying
    /// nothing) if it does not fit.
    pub fn copy_in(&self, page: usize, data: &[u8]) -> bool {
        let Some(start) = page.checked_mul(PAGE_SIZE) else { return false };
        if start.checked_add(data.len()).is_none_or(|end| end > self.len()) {
            return false;
        }
        // SAFETY: the destination range is inside the mapping (checked above) and cannot
        // overlap `data`, a Rust slice outside the arena's raw-only memory.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(start), data.len()) };
        true
    }

    /// Copies bytes from arena page `page` into `out`. Returns `false` (copying nothing)
    /// if the range does not fit.
    pub fn copy_out(&self, page: usize, out: &mut [u8]) -> bool {
        let Some(start) = page.checked_mul(PAGE_SIZE) else { return false };
        if start.checked_add(out.len()).is_none_or(|end| end > self.len()) {
            return false;
        }
        // SAFETY: the source range is inside the mapping (checked above); `out` is a
        // distinct Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(start), out.as_mut_ptr(), out.len()) };
        true
    }

    /// The arena as iovecs of at most [`REGISTER_CHUNK`] bytes, for
    /// `IORING_REGISTER_BUFFERS`: buffer `i` starts at byte `i * REGISTER_CHUNK`.
    pub fn register_iovecs(&self) -> Vec<libc::iovec> {
        (0..self.len().div_ceil(REGISTER_CHUNK))
            .map(|i| {
                let start = i * REGISTER_CHUNK;
                libc::iovec {
                    // SAFETY: `start < self.len()`, inside the mapping.
                    iov_base: unsafe { self.base.as_ptr().add(start) }.cast(),
                    iov_len: (self.len() - start).min(REGISTER_CHUNK),
                }
            })
            .collect()
    }

    /// The registered buffer holding arena bytes `[offset, offset + len)`, if one buffer
    /// holds them all (a range crossing a [`REGISTER_CHUNK`] boundary needs a vectored op).
    pub fn register_index(&self, offset: usize, len: usize) -> Option<u16> {
        let first = offset / REGISTER_CHUNK;
        // Checked: a range ending past `usize::MAX` is in no buffer (never an overflow).
        let last = offset.checked_add(len.max(1) - 1)? / REGISTER_CHUNK;
        (first == last).then(|| u16::try_from(first).ok()).flatten()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`. Drivers hold the arena in
        // an `Arc` until every request using it has been reaped, so the kernel no longer
        // references it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len()) };
    }
}

/// Opens `path` for direct I/O (`O_DIRECT`), read-only or read-write: the page cache is
/// bypassed as the kernel's swap I/O bypasses it.
pub fn open_direct(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(write).custom_flags(libc::O_DIRECT | libc::O_CLOEXEC).open(path)
}

/// Alignment `O_DIRECT` needs for offsets and lengths on `file`: the logical block size
/// (`BLKSSZGET`) of a block device, [`PAGE_SIZE`] for anything else (always valid).
pub fn dio_alignment(file: &File) -> u32 {
    let is_block = file.metadata().map(|m| m.file_type().is_block_device()).unwrap_or(false);
    if !is_block {
        return PAGE_SIZE as u32;
    }
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at `size`.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut size as *mut libc::c_int) };
    if r == 0 && size > 0 && (size as u32).is_power_of_two() {
        size as u32
    } else {
        PAGE_SIZE as u32
    }
}

/// Byte ranges a driver may touch in device mode: the map's extents, the header page
/// excluded. A device-mode request outside them is refused before it reaches the
/// device, so a bug can never write into the filesystem around the swap file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    ranges: Vec<(u64, u64)>,
}

impl Fence {
    /// The data extents of a device-mode map (slot 0, the header, is left out).
    /// [`MapError::BadEntry`] for an entry whose byte range ends past `u64::MAX` (checked:
    /// never a wrapped, inverted range).
    pub fn from_map(entries: &[MapEntry]) -> Result<Fence, MapError> {
        let page = PAGE_SIZE as u64;
        let mut ranges = Vec::with_capacity(entries.len());
        for (index, e) in entries.iter().enumerate() {
            let skip = u64::from(e.first_slot == 0);
            let end = e.pages.checked_mul(page).and_then(|b| b.checked_add(e.start));
            let end = end.ok_or(MapError::BadEntry { index })?;
            if e.pages > skip {
                ranges.push((e.start + skip * page, end));
            }
        }
        ranges.sort_unstable();
        Ok(Fence { ranges })
    }

    /// Whether `[pos, pos + len)` lies inside one fenced range.
    pub fn allows(&self, pos: u64, len: u64) -> bool {
        let Some(end) = pos.checked_add(len) else { return false };
        let i = self.ranges.partition_point(|&(s, _)| s <= pos);
        i.checked_sub(1).and_then(|i| self.ranges.get(i)).is_some_and(|&(s, e)| s <= pos && end <= e)
    }
}

/// What the Linux drivers can do on a local block filesystem in device mode: direct
/// reads and writes on the block device, in-place overwrite, stable on completion.
pub const DEVICE_CAPS: BackendCaps = BackendCaps::BLOCK_DEVICE;

/// What the Linux drivers can do in file mode: `O_DIRECT` I/O on the file at
/// `slot * PAGE_SIZE` (the filesystem's `->swap_rw`). Completion of an `O_DIRECT`
/// overwrite leaves nothing for a later commit, so it counts as stable.
pub const FILE_CAPS: BackendCaps =
    BackendCaps::SWAP_RW.union(BackendCaps::OVERWRITE_IN_PLACE).union(BackendCaps::STABLE_ON_COMPLETE);

/// Both: what to declare at activation before the mode is chosen (`Auto` then picks
/// device mode, as the kernel does for block filesystems).
pub const ANY_MODE_CAPS: BackendCaps = DEVICE_CAPS.union(FILE_CAPS);

/// The capabilities a driver declares for a mode.
pub const fn caps_for(mode: IoMode) -> BackendCaps {
    match mode {
        IoMode::Device => DEVICE_CAPS,
        IoMode::File => FILE_CAPS,
    }
}

/// Where a driver's I/O goes: the block device under the swap file (device mode,
/// fenced to the map's extents) or the swap file itself (file mode).
#[derive(Debug)]
pub enum Target {
    /// Kernel block swap: the filesystem's block device, `O_DIRECT`, at mapped positions.
    Device {
        /// The block device, open read-write with `O_DIRECT`.
        file: File,
        /// Its path.
        path: PathBuf,
        /// The byte ranges requests may touch.
        fence: Fence,
    },
    /// Kernel `SWP_FS_OPS`: the swap file, `O_DIRECT`, at `slot * PAGE_SIZE`.
    File {
        /// The swap file, open read-write with `O_DIRECT`.
        file: File,
        /// Its path.
        path: PathBuf,
    },
}

impl Target {
    /// File mode on `swap_file`.
    pub fn file(swap_file: &Path) -> io::Result<Target> {
        Ok(Target::File { file: open_direct(swap_file, true)?, path: swap_file.to_path_buf() })
    }

    /// Device mode for a probed swap file activated into `map`: the block device its
    /// filesystem lives on ([`FileLayout::device_path`]), fenced to the map's extents.
    pub fn device_for(layout: &FileLayout, map: &[MapEntry]) -> io::Result<Target> {
        let node = layout.device_path.as_deref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no block device node for its filesystem (device mode impossible)", layout.path.display()),
            )
        })?;
        let fence = Fence::from_map(map).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Target::device(node, fence)
    }

    /// Device mode on block device `node`, allowed to touch `fence` only.
    pub fn device(node: &Path, fence: Fence) -> io::Result<Target> {
        let file = open_direct(node, true)?;
        if !file.metadata()?.file_type().is_block_device() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a block device", node.display()),
            ));
        }
        Ok(Target::Device { file, path: node.to_path_buf(), fence })
    }

    /// The address space requests must be in.
    pub fn mode(&self) -> IoMode {
        match self {
            Target::Device { .. } => IoMode::Device,
            Target::File { .. } => IoMode::File,
        }
    }

    /// The capabilities of a driver on this target.
    pub fn caps(&self) -> BackendCaps {
        caps_for(self.mode())
    }

    /// The open file or device.
    pub fn handle(&self) -> &File {
        match self {
            Target::Device { file, .. } | Target::File { file, .. } => file,
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        match self {
            Target::Device { path, .. } | Target::File { path, .. } => path,
        }
    }

    /// Whether a request may go to this target: same address space, and in device mode
    /// inside the fence. `EINVAL` for a mode mismatch, `EFAULT` outside the fence.
    pub fn admit(&self, mode: IoMode, pos: u64, len: u64) -> Result<(), Errno> {
        match self {
            _ if mode != self.mode() => Err(Errno::EINVAL),
            Target::Device { fence, .. } if !fence.allows(pos, len) => Err(Errno::EFAULT),
            _ => Ok(()),
        }
    }
}

/// The iovecs of one request (one per segment), pointing into an [`Arena`].
#[derive(Clone, Copy, Debug)]
pub struct IoVecs {
    /// The vectors; the first `nr` are used.
    pub iov: [libc::iovec; MAX_SEGMENTS],
    /// How many are used.
    pub nr: usize,
}

// SAFETY: the pointers name arena memory, which is `Send + Sync`; an `IoVecs` is plain
// data describing it and never dereferenced by Rust code.
unsafe impl Send for IoVecs {}

impl Default for IoVecs {
    fn default() -> Self {
        IoVecs { iov: [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_SEGMENTS], nr: 0 }
    }
}

impl IoVecs {
    /// The used vectors.
    pub fn as_slice(&self) -> &[libc::iovec] {
        &self.iov[..self.nr.min(MAX_SEGMENTS)]
    }

    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.as_slice().iter().map(|v| v.iov_len as u64).sum()
    }

    /// Fills `self` with the segments of `req` in `arena` (bvec → iovec). Returns
    /// whether the memory is one contiguous range. `EFAULT` if a segment is outside
    /// the arena, `EINVAL` if the segments do not add up to the request's length.
    pub fn gather(&mut self, req: &Request<'_>, arena: &Arena) -> Result<bool, Errno> {
        self.nr = 0;
        let mut contiguous = true;
        let mut total = 0u64;
        for seg in req.segments() {
            let ptr = arena.segment_ptr(seg.folio, seg.offset, seg.len).ok_or(Errno::EFAULT)?;
            let slot = self.iov.get_mut(self.nr).ok_or(Errno::EINVAL)?;
            *slot = libc::iovec { iov_base: ptr.cast(), iov_len: seg.len as usize };
            if let Some(prev) = self.nr.checked_sub(1).and_then(|i| self.iov.get(i)) {
                contiguous &= prev.iov_base as usize + prev.iov_len == ptr as usize;
            }
            total += u64::from(seg.len);
            self.nr += 1;
        }
        if self.nr == 0 || total != req.len() {
            return Err(Errno::EINVAL);
        }
        Ok(contiguous)
    }

    /// `self` with the first `skip` bytes removed, into `out` (for resubmitting the
    /// remainder of a short transfer).
    pub fn advance(&self, skip: u64, out: &mut IoVecs) {
        out.nr = 0;
        let mut skip = skip as usize;
        for v in self.as_slice() {
            if skip >= v.iov_len {
                skip -= v.iov_len;
                continue;
            }
            if let Some(o) = out.iov.get_mut(out.nr) {
                *o = libc::iovec {
                    iov_base: (v.iov_base as usize + skip) as *mut libc::c_void,
                    iov_len: v.iov_len - skip,
                };
                out.nr += 1;
            }
            skip = 0;
        }
    }
}

/// Counters a driver keeps (shared with whoever holds the `Arc`, also after the driver
/// is dropped: the drain on drop is visible in them).
#[derive(Debug, Default)]
pub struct DriverCounters {
    /// Requests accepted from the engine.
    pub submitted: AtomicU64,
    /// Requests whose completion was handed to the engine (or answered `Done`).
    pub completed: AtomicU64,
    /// Short transfers whose aligned remainder was resubmitted.
    pub resubmitted: AtomicU64,
    /// Transient errors (`EAGAIN`, `EINTR`) on a request, retried by the driver.
    pub retried: AtomicU64,
    /// `EINTR`/`EAGAIN`/`EBUSY` answers to `io_uring_enter` on submission, retried.
    pub submit_retries: AtomicU64,
    /// Other `io_uring_enter` errors after an SQE was queued (it is submitted by a later enter).
    pub submit_errors: AtomicU64,
    /// Faults injected by the fault plan.
    pub injected: AtomicU64,
    /// Completions whose `user_data` named no request in flight: dropped.
    pub stale: AtomicU64,
    /// Requests refused before any I/O (outside the fence or arena, wrong mode).
    pub refused: AtomicU64,
    /// Completions reaped after the engine was gone: not delivered.
    pub undelivered: AtomicU64,
    /// Times a submission waited for room in the completion queue.
    pub capacity_waits: AtomicU64,
    /// Requests that ended with `ECANCELED` (cancelled at drop).
    pub cancelled: AtomicU64,
}

/// A snapshot of [`DriverCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[allow(missing_docs)]
pub struct DriverStats {
    pub submitted: u64,
    pub completed: u64,
    pub resubmitted: u64,
    pub retried: u64,
    pub submit_retries: u64,
    pub submit_errors: u64,
    pub injected: u64,
    pub stale: u64,
    pub refused: u64,
    pub undelivered: u64,
    pub capacity_waits: u64,
    pub cancelled: u64,
}

impl DriverCounters {
    /// Adds one to a counter.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> DriverStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DriverStats {
            submitted: l(&self.submitted),
            completed: l(&self.completed),
            resubmitted: l(&self.resubmitted),
            retried: l(&self.retried),
            submit_retries: l(&self.submit_retries),
            submit_errors: l(&self.submit_errors),
            injected: l(&self.injected),
            stale: l(&self.stale),
            refused: l(&self.refused),
            undelivered: l(&self.undelivered),
            capacity_waits: l(&self.capacity_waits),
            cancelled: l(&self.cancelled),
        }
    }
}

/// Applies the fault plan's decision for the next request to a driver result, as the
/// device would have failed it: the engine sees the fault like a real CQE error or
/// short transfer (its per-segment accounting and redirty rules then apply).
pub fn inject_fault(
    plan: &FaultPlan,
    counters: &DriverCounters,
    len: u64,
    result: Result<u64, Errno>,
) -> Result<u64, Errno> {
    match plan.next(len) {
        Fault::None => result,
        Fault::Error(e) => {
            DriverCounters::bump(&counters.injected);
            Err(e)
        }
        Fault::Short(n) => {
            DriverCounters::bump(&counters.injected);
            result.map(|done| done.min(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_segments_are_bounds_checked_and_page_aligned() {
        let a = Arena::new(4).unwrap();
        assert_eq!(a.base() as usize % PAGE_SIZE, 0);
        assert_eq!(a.segment_offset(FolioId(1), 0, 4096), Some(4096));
        assert_eq!(a.segment_offset(FolioId(3), 0, 4096), Some(3 * 4096));
        assert_eq!(a.segment_offset(FolioId(3), 4096, 1), None);
        assert_eq!(a.segment_offset(FolioId(2), 0, 3 * 4096), None);
        assert_eq!(a.segment_offset(FolioId(u64::MAX), 0, 1), None);
        assert!(a.copy_in(3, &[7; 4096]));
        assert!(!a.copy_in(3, &[7; 4097]));
        let mut out = [0u8; 4096];
        assert!(a.copy_out(3, &mut out));
        assert_eq!(out, [7; 4096]);
        assert_eq!(a.register_iovecs().len(), 1);
        assert_eq!(a.register_index(0, 4 * 4096), Some(0));
    }

    #[test]
    fn fence_of_an_entry_past_u64_max_is_a_typed_error_not_an_inverted_range() {
        let e = [
            MapEntry { first_slot: 0, pages: 4, start: 1 << 20 },
            MapEntry { first_slot: 4, pages: 2, start: u64::MAX - 4096 },
        ];
        assert_eq!(Fence::from_map(&e).err(), Some(MapError::BadEntry { index: 1 }));
        let huge = [MapEntry { first_slot: 1, pages: u64::MAX / 2, start: 0 }];
        assert_eq!(Fence::from_map(&huge).err(), Some(MapError::BadEntry { index: 0 }));
    }

    #[test]
    fn register_index_of_a_range_past_usize_max_is_none_not_an_overflow() {
        let a = Arena::new(1).unwrap();
        assert_eq!(a.register_index(usize::MAX, 2), None);
        assert_eq!(a.register_index(usize::MAX - 1, usize::MAX), None);
        assert_eq!(a.register_index(1, usize::MAX), None);
    }

    #[test]
    fn fence_excludes_the_header_page_and_everything_outside_the_map() {
        let e = [
            MapEntry { first_slot: 0, pages: 4, start: 1 << 20 },
            MapEntry { first_slot: 4, pages: 2, start: 8 << 20 },
        ];
        let f = Fence::from_map(&e).unwrap();
        assert!(!f.allows(1 << 20, 4096), "header page");
        assert!(f.allows((1 << 20) + 4096, 3 * 4096));
        assert!(!f.allows((1 << 20) + 4096, 4 * 4096), "crosses the end of the extent");
        assert!(f.allows(8 << 20, 2 * 4096));
        assert!(!f.allows((8 << 20) + 8192, 4096));
        assert!(!f.allows(0, 4096));
        assert!(!f.allows(u64::MAX - 10, 4096));
    }
}
