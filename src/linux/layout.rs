//! The extent reporter: what a real file's layout looks like to swapon.
//!
//! Mirrors the inputs of the kernel's activation (`SYSCALL_DEFINE2(swapon)` in
//! `mm/swapfile.c`, `iomap_swapfile_activate` in `fs/iomap/swapfile.c`,
//! `btrfs_swap_activate` in `fs/btrfs/inode.c`): the file is flushed first (so no mapping
//! is "dirty"), then its mappings are read with the FIEMAP ioctl (`FS_IOC_FIEMAP`, looped
//! until `FIEMAP_EXTENT_LAST`), its inode flags with `FS_IOC_GETFLAGS` (btrfs NOCOW and
//! compression), the filesystem with `fstatfs`, the device with `fstat`.
//!
//! Two sets of capabilities are derived from a layout:
//! * [`FileLayout::kernel_caps`] — how the **kernel** would drive the file (block swap on
//!   ext4, xfs and btrfs): used by the dry-run swapon ([`FileLayout::kernel_request`]).
//! * [`FileLayout::caps`] — what **swapdio's userspace drivers** can do with it. On btrfs
//!   FIEMAP's "physical" address is a btrfs *logical* address, not a device offset: it
//!   gives the kernel's usable-size arithmetic exactly (btrfs sectors are page aligned and
//!   the chunk mapping is a page-aligned translation), but device-mode I/O at those
//!   positions would hit the wrong blocks. So on btrfs `caps()` has no
//!   [`BackendCaps::DEVICE_IO`] and `ModeRequest::Auto` picks file mode.

use super::procfs::{is_active_swap, mounts, SwapId};
pub use super::procfs::{parse_proc_swaps, proc_swaps, unescape_proc_path};
use crate::activate::{ActivationRequest, ExtentFlags, ExtentReport, Layout};
use crate::caps::{BackendCaps, FileAttrs, ModeRequest};
use crate::errno::Errno;
use crate::header::HeaderLimits;
use crate::PAGE_SIZE;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The filesystem (or block device) a swap file lives on, from `statfs(2)`'s `f_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsKind {
    /// ext2/3/4 (`EXT4_SUPER_MAGIC`): `ext4_iomap_swap_activate`.
    Ext4,
    /// XFS (`XFS_SUPER_MAGIC`): `xfs_iomap_swapfile_activate`.
    Xfs,
    /// btrfs (`BTRFS_SUPER_MAGIC`): `btrfs_swap_activate`; FIEMAP physical is a btrfs
    /// logical address.
    Btrfs,
    /// tmpfs (`TMPFS_MAGIC`): no FIEMAP, no `read_folio`; the kernel refuses it.
    Tmpfs,
    /// overlayfs (`OVERLAYFS_SUPER_MAGIC`): no `read_folio`; the kernel refuses it.
    Overlay,
    /// FUSE (`FUSE_SUPER_MAGIC`, also fuseblk): no `swap_activate`; the kernel's
    /// generic `bmap` path (`FUSE_BMAP`, fuseblk only).
    Fuse,
    /// NFS (`NFS_SUPER_MAGIC`): `nfs_swap_activate`, file-mode swap (`SWP_FS_OPS`).
    Nfs,
    /// Any other filesystem, by its `f_type` magic.
    Other(i64),
    /// The path is a block device, swapped on whole (`claim_swapfile` with a bdev).
    BlockDevice,
}

impl FsKind {
    /// Classifies a `statfs` `f_type`.
    // `f_type`'s C type (`__fsword_t`) and libc's constants differ in width between
    // architectures; on x86-64 the casts are no-ops.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_magic(magic: i64) -> FsKind {
        match magic {
            m if m == libc::EXT4_SUPER_MAGIC as i64 => FsKind::Ext4,
            m if m == libc::XFS_SUPER_MAGIC as i64 => FsKind::Xfs,
            m if m == libc::BTRFS_SUPER_MAGIC as i64 => FsKind::Btrfs,
            m if m == libc::TMPFS_MAGIC as i64 => FsKind::Tmpfs,
            m if m == libc::OVERLAYFS_SUPER_MAGIC as i64 => FsKind::Overlay,
            m if m == libc::FUSE_SUPER_MAGIC as i64 => FsKind::Fuse,
            m if m == libc::NFS_SUPER_MAGIC as i64 => FsKind::Nfs,
            m => FsKind::Other(m),
        }
    }

    /// A short lowercase name ("ext4", "xfs", "btrfs", "tmpfs", "block-device", or the
    /// magic in hex).
    pub fn name(&self) -> String {
        match self {
            FsKind::Ext4 => "ext4".into(),
            FsKind::Xfs => "xfs".into(),
            FsKind::Btrfs => "btrfs".into(),
            FsKind::Tmpfs => "tmpfs".into(),
            FsKind::Overlay => "overlayfs".into(),
            FsKind::Fuse => "fuse".into(),
            FsKind::Nfs => "nfs".into(),
            FsKind::BlockDevice => "block-device".into(),
            FsKind::Other(m) => match NO_READ_FOLIO.iter().find(|(magic, _)| magic == m) {
                Some((_, name)) => (*name).into(),
                None => format!("fs-{m:#x}"),
            },
        }
    }

    /// Whether files here have `a_ops->read_folio`: swapon refuses a file on a
    /// filesystem without it (`EINVAL`, `SYSCALL_DEFINE2(swapon)` before the header is
    /// read): tmpfs, overlayfs and the pseudo filesystems ([`NO_READ_FOLIO`]).
    pub fn has_read_folio(&self) -> bool {
        match self {
            FsKind::Tmpfs | FsKind::Overlay => false,
            FsKind::Other(m) => !NO_READ_FOLIO.iter().any(|(magic, _)| magic == m),
            _ => true,
        }
    }
}

/// Pseudo filesystems whose files have no `read_folio`, by `statfs` magic
/// (`include/uapi/linux/magic.h`) and name: proc, sysfs and cgroup (kernfs), debugfs,
/// tracefs, securityfs, bpf, hugetlbfs, configfs.
pub const NO_READ_FOLIO: [(i64, &str); 10] = [
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0xcafe_4a11, "bpf"),
    (0x9584_58f6, "hugetlbfs"),
    (0x6265_6570, "configfs"),
];

impl std::fmt::Display for FsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Why a layout could not be read (or a swap file not created). Each maps to the errno
/// `swapon(2)` would return for the same situation ([`LayoutError::errno`]).
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A system call failed.
    #[error("{}: {op}: {}", path.display(), super::io_text(source))]
    Io {
        /// What was being done ("open", "fsync", "FIEMAP", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is an active kernel swap area (listed in `/proc/swaps`): swapon would
    /// return `EBUSY` (`IS_SWAPFILE` / the swap_info claim).
    #[error("{}: is an active swap area (listed in /proc/swaps)", path.display())]
    ActiveSwap {
        /// The file.
        path: PathBuf,
    },
    /// The block device is mounted: swapon's exclusive claim (`bdev_file_open_by_dev`
    /// with a holder) fails with `EBUSY`.
    #[error("{}: block device is mounted on {mount_point}", path.display())]
    MountedDevice {
        /// The device.
        path: PathBuf,
        /// Where it is mounted.
        mount_point: String,
    },
    /// Neither a regular file nor a block device (`claim_swapfile` returns `EINVAL`).
    #[error("{}: not a regular file or block device", path.display())]
    NotSwappable {
        /// The path.
        path: PathBuf,
    },
    /// The filesystem has no extent map and cannot host swap (tmpfs: no FIEMAP, no
    /// `swap_activate`, no `bmap`; the kernel's generic path says the file "has holes").
    #[error("{}: {fs} has no FIEMAP extent map; the kernel cannot swap on a {fs} file (put it on a disk filesystem)", path.display())]
    NoExtentMap {
        /// The file.
        path: PathBuf,
        /// Its filesystem.
        fs: FsKind,
    },
    /// The filesystem has no `read_folio` (overlayfs, proc, sysfs, ...:
    /// [`FsKind::has_read_folio`]): swapon refuses every file on it with `EINVAL`.
    #[error("{}: {fs} has no read_folio; the kernel cannot swap on a {fs} file (put it on a disk filesystem)", path.display())]
    NoReadFolio {
        /// The file.
        path: PathBuf,
        /// Its filesystem.
        fs: FsKind,
    },
    /// FIEMAP returned an extent that does not advance (a filesystem bug); stop instead of
    /// looping forever.
    #[error("{}: FIEMAP did not advance past offset {offset}", path.display())]
    FiemapStalled {
        /// The file.
        path: PathBuf,
        /// Where it stalled.
        offset: u64,
    },
    /// mkswap: fewer than two pages (header plus one data page), `mkswap`'s own limit.
    #[error("swap file size {size} is too small: at least 2 pages ({} bytes) are needed", 2 * PAGE_SIZE)]
    TooSmall {
        /// Requested size in bytes.
        size: u64,
    },
    /// mkswap: a size that is not a whole number of pages (the kernel never walks a
    /// partial last page, so its bytes would be wasted).
    #[error("swap file size {size} is not a multiple of the page size ({PAGE_SIZE})")]
    NotPageMultiple {
        /// Requested size in bytes.
        size: u64,
    },
    /// mkswap: more pages than a version-1 header can describe (`last_page` is a u32).
    #[error("swap file size {size} is too large for a SWAPSPACE2 header: at most 2^32 pages (16 TiB)")]
    TooLarge {
        /// Requested size in bytes.
        size: u64,
    },
    /// mkswap: the path holds data that is not a swap area; it is replaced only when
    /// forced (`mkswap(8)` wipes whatever is there; swapdio does not guess).
    #[error("{}: exists and is not a swap area (no swap signature); nothing was changed (pass --force to replace it)", path.display())]
    NotSwapArea {
        /// The file or device.
        path: PathBuf,
    },
    /// mkswap: the filesystem has less free space than the new file needs (checked
    /// before anything is written; the old file is replaced only after the new one is
    /// complete, so both must fit at once).
    #[error("{}: not enough free space: {needed} bytes needed, {available} available; nothing was changed", path.display())]
    NoSpace {
        /// The file.
        path: PathBuf,
        /// Bytes the new file needs.
        needed: u64,
        /// Bytes available to the caller (`statvfs` `f_bavail * f_frsize`).
        available: u64,
    },
    /// mkswap on a block device: the size asked for is larger than the device.
    #[error("{}: block device holds {device_size} bytes, fewer than the {size} asked for", path.display())]
    DeviceTooSmall {
        /// The device.
        path: PathBuf,
        /// Requested size in bytes.
        size: u64,
        /// The device's size (`BLKGETSIZE64`).
        device_size: u64,
    },
    /// Another swapdio process holds the file's lock (it is driving or formatting it):
    /// the kernel's `EBUSY` for a second swapon of a claimed file.
    #[error("{}: in use by another swapdio process (it holds the file's lock); try again when it has finished", path.display())]
    InUse {
        /// The file.
        path: PathBuf,
    },
}

impl LayoutError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> LayoutError {
        LayoutError::Io { op, path: path.to_path_buf(), source }
    }

    /// The errno `swapon(2)` (or the failing system call) returns for this error.
    pub fn errno(&self) -> Errno {
        match self {
            LayoutError::Io { source, .. } => Errno(source.raw_os_error().unwrap_or(Errno::EIO.0)),
            LayoutError::ActiveSwap { .. } | LayoutError::MountedDevice { .. } | LayoutError::InUse { .. } => {
                Errno::EBUSY
            }
            LayoutError::NotSwapArea { .. } => Errno(libc::EEXIST),
            LayoutError::NoSpace { .. } => Errno::ENOSPC,
            LayoutError::FiemapStalled { .. } => Errno::EIO,
            LayoutError::TooLarge { .. } => Errno::EFBIG,
            LayoutError::NotSwappable { .. }
            | LayoutError::NoExtentMap { .. }
            | LayoutError::NoReadFolio { .. }
            | LayoutError::TooSmall { .. }
            | LayoutError::NotPageMultiple { .. }
            | LayoutError::DeviceTooSmall { .. } => Errno::EINVAL,
        }
    }
}

/// A swap file's layout, everything activation needs except the header page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLayout {
    /// The path probed.
    pub path: PathBuf,
    /// `i_size` in bytes (the device size for a block device).
    pub file_size: u64,
    /// FIEMAP mappings sorted by logical offset (may extend past `file_size` for blocks
    /// preallocated beyond EOF). Empty when `extent_map` is false.
    pub extents: Vec<ExtentReport>,
    /// Inode attributes that refuse swap (btrfs COW, compression).
    pub attrs: FileAttrs,
    /// The filesystem.
    pub fs: FsKind,
    /// Filesystem block size (`f_bsize`), or the device's `st_blksize`.
    pub block_size: u64,
    /// `st_dev` of the file (the device itself, `st_rdev`, for a block device). Every
    /// extent carries it: FIEMAP reports a single device.
    pub device: u64,
    /// The block device node of `device` ([`device_node`]); `None` on btrfs, whose
    /// `st_dev` is an anonymous device.
    pub device_path: Option<PathBuf>,
    /// Inode number (`st_ino`), to recognise the same file later.
    pub inode: u64,
    /// Bytes allocated (`st_blocks * 512`).
    pub allocated_bytes: u64,
    /// Whether FIEMAP worked. Without it the layout is opaque (NFS-style): file mode only,
    /// holes detected by `allocated_bytes < file_size` as `nfs_swap_activate` does.
    pub extent_map: bool,
}

/// `FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap)`, `sizeof(struct fiemap) == 32`.
const FS_IOC_FIEMAP: u64 = 0xC020_660B;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_MAX_OFFSET: u64 = u64::MAX;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_UNKNOWN: u32 = 0x2;
const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
const FIEMAP_EXTENT_ENCODED: u32 = 0x8;
const FIEMAP_EXTENT_DATA_ENCRYPTED: u32 = 0x80;
const FIEMAP_EXTENT_NOT_ALIGNED: u32 = 0x100;
const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
const FIEMAP_EXTENT_DATA_TAIL: u32 = 0x400;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
/// Extents fetched per FIEMAP call.
const FIEMAP_BATCH: usize = 256;

/// `XFS_IOC_FREE_EOFBLOCKS = _IOR('X', 58, struct xfs_fs_eofblocks)`, 128-byte argument.
const XFS_IOC_FREE_EOFBLOCKS: u64 = 0x8080_583A;

/// `struct xfs_fs_eofblocks` (version 1), all filters off.
#[repr(C)]
struct XfsFsEofblocks {
    eof_version: u32,
    eof_flags: u32,
    eof_uid: u32,
    eof_gid: u32,
    eof_prid: u32,
    pad32: u32,
    eof_min_file_size: u64,
    pad64: [u64; 12],
}

/// Waits for XFS's deferred inode inactivation, as `xfs_iomap_swapfile_activate` does
/// with `xfs_inodegc_flush` before its walk: a file whose reflink partner was just
/// deleted still looks shared until the partner is inactivated. Userspace reaches
/// `xfs_inodegc_flush` through `XFS_IOC_FREE_EOFBLOCKS` (`xfs_blockgc_free_space` ends
/// with it); its other effect, trimming speculative preallocation past EOF, is harmless.
/// Best effort: without `CAP_SYS_ADMIN` it is refused and FIEMAP may still say SHARED.
fn xfs_flush_inodegc(file: &File) {
    let mut arg = XfsFsEofblocks {
        eof_version: 1,
        eof_flags: 0,
        eof_uid: 0,
        eof_gid: 0,
        eof_prid: 0,
        pad32: 0,
        eof_min_file_size: 0,
        pad64: [0; 12],
    };
    // SAFETY: the kernel copies `sizeof(struct xfs_fs_eofblocks)` (128) bytes from the
    // pointer, which refers to a live, fully initialised `#[repr(C)]` value of that
    // layout; the fd is open for the call. The result is deliberately ignored.
    let _ = unsafe { libc::ioctl(file.as_raw_fd(), XFS_IOC_FREE_EOFBLOCKS as _, &mut arg as *mut XfsFsEofblocks) };
}

/// `FS_NOCOW_FL` ('C' in chattr): btrfs `BTRFS_INODE_NODATACOW`.
pub const FS_NOCOW_FL: u32 = 0x0080_0000;
/// `FS_COMPR_FL` ('c' in chattr): btrfs `BTRFS_INODE_COMPRESS`.
pub const FS_COMPR_FL: u32 = 0x0000_0004;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
    fm_extents: [FiemapExtent; FIEMAP_BATCH],
}

/// Maps FIEMAP's `fe_flags` to the core's fs-neutral [`ExtentFlags`], the way the
/// kernel's iomap types map to `iomap_swapfile_iter`'s checks: `UNKNOWN`/`DELALLOC` have
/// no block yet ("has unallocated extents"), `DATA_INLINE`/`DATA_TAIL` are inline
/// ("is inline"), `ENCODED`/`DATA_ENCRYPTED` are not the page contents, `NOT_ALIGNED`,
/// `UNWRITTEN` and `SHARED` carry over. `LAST` and `MERGED` say nothing about the data.
pub fn extent_flags_from_fiemap(fe_flags: u32) -> ExtentFlags {
    let mut f = ExtentFlags::empty();
    let map = [
        (FIEMAP_EXTENT_UNWRITTEN, ExtentFlags::UNWRITTEN),
        (FIEMAP_EXTENT_SHARED, ExtentFlags::SHARED),
        (FIEMAP_EXTENT_DATA_INLINE, ExtentFlags::INLINE),
        (FIEMAP_EXTENT_DATA_TAIL, ExtentFlags::INLINE),
        (FIEMAP_EXTENT_DELALLOC, ExtentFlags::DELALLOC),
        (FIEMAP_EXTENT_UNKNOWN, ExtentFlags::DELALLOC),
        (FIEMAP_EXTENT_ENCODED, ExtentFlags::ENCODED),
        (FIEMAP_EXTENT_DATA_ENCRYPTED, ExtentFlags::ENCODED),
        (FIEMAP_EXTENT_NOT_ALIGNED, ExtentFlags::NOT_ALIGNED),
    ];
    for (bit, flag) in map {
        if fe_flags & bit != 0 {
            f |= flag;
        }
    }
    f
}

/// Reads every mapping of `file` with FIEMAP, looping until the extent flagged
/// `FIEMAP_EXTENT_LAST` (or until the filesystem reports no more). `Ok(None)` when the
/// filesystem has no FIEMAP (`EOPNOTSUPP`/`ENOTTY`).
fn fiemap(file: &File, path: &Path, device: u64) -> Result<Option<Vec<ExtentReport>>, LayoutError> {
    let mut buf: Box<Fiemap> = Box::new(Fiemap {
        fm_start: 0,
        fm_length: 0,
        fm_flags: 0,
        fm_mapped_extents: 0,
        fm_extent_count: 0,
        fm_reserved: 0,
        fm_extents: [FiemapExtent::default(); FIEMAP_BATCH],
    });
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        buf.fm_start = start;
        buf.fm_length = FIEMAP_MAX_OFFSET - start;
        buf.fm_flags = FIEMAP_FLAG_SYNC;
        buf.fm_mapped_extents = 0;
        buf.fm_extent_count = FIEMAP_BATCH as u32;
        buf.fm_reserved = 0;
        let ptr: *mut Fiemap = &mut *buf;
        // SAFETY: `ptr` points to a live, exclusively borrowed `struct fiemap` followed by
        // room for `fm_extent_count` extents, exactly the layout the kernel's FS_IOC_FIEMAP
        // reads and fills; the fd is open for the duration of the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP as _, ptr) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) if out.is_empty() => Ok(None),
                _ => Err(LayoutError::io("FIEMAP", path, err)),
            };
        }
        let n = (buf.fm_mapped_extents as usize).min(FIEMAP_BATCH);
        if n == 0 {
            return Ok(Some(out));
        }
        let mut last = false;
        for fe in &buf.fm_extents[..n] {
            last |= fe.fe_flags & FIEMAP_EXTENT_LAST != 0;
            // A later call may return an extent that overlaps what an earlier call
            // already reported (the filesystem merged records in between): keep only
            // the part from `start` on, so the list stays sorted and disjoint.
            let skip = start.saturating_sub(fe.fe_logical);
            if skip >= fe.fe_length {
                continue;
            }
            out.push(ExtentReport {
                logical: fe.fe_logical + skip,
                physical: fe.fe_physical.saturating_add(skip),
                length: fe.fe_length - skip,
                flags: extent_flags_from_fiemap(fe.fe_flags),
                device,
            });
        }
        if last {
            return Ok(Some(out));
        }
        let fe = &buf.fm_extents[n - 1];
        let next = fe.fe_logical.saturating_add(fe.fe_length);
        if next <= start || next == u64::MAX {
            return Err(LayoutError::FiemapStalled { path: path.to_path_buf(), offset: start });
        }
        start = next;
    }
}

/// `FS_IOC_GETFLAGS`: the inode's chattr flags (`FS_*_FL`). Filesystems without it
/// (`ENOTTY`, `EOPNOTSUPP`, `EINVAL`) report no flags.
pub fn inode_flags(file: &File) -> io::Result<u32> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one `int` (the kernel uses `int __user *` despite
    // the `long` in the ioctl number) to the pointer, which refers to a live local.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags as *mut libc::c_int) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => Ok(0),
            _ => Err(err),
        };
    }
    Ok(flags as u32)
}

/// `FS_IOC_SETFLAGS`: sets the inode's chattr flags to `flags` (read-modify-write with
/// [`inode_flags`] to change single bits). btrfs only honours `FS_NOCOW_FL` on an empty
/// file.
pub fn set_inode_flags(file: &File, flags: u32) -> io::Result<()> {
    let v: libc::c_int = flags as libc::c_int;
    // SAFETY: FS_IOC_SETFLAGS reads one `int` from the pointer, which refers to a live local.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_SETFLAGS, &v as *const libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fstatfs(2)` on an open file.
pub(crate) fn fstatfs(file: &File) -> io::Result<libc::statfs> {
    // SAFETY: `statfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open and `st` is a live, writable `struct statfs`.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `(major, minor)` of a `dev_t`, glibc's encoding.
pub fn dev_major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    (major, minor)
}

/// The block device node for `dev`: `/dev/block/MAJ:MIN` when udev made it, else
/// `/dev/` + the `DEVNAME` in `/sys/dev/block/MAJ:MIN/uevent`, checked to be a block
/// device with that number. `None` for anonymous devices (btrfs, overlayfs, tmpfs).
pub fn device_node(dev: u64) -> Option<PathBuf> {
    let (ma, mi) = dev_major_minor(dev);
    let is_it =
        |p: &Path| std::fs::metadata(p).map(|m| m.file_type().is_block_device() && m.rdev() == dev).unwrap_or(false);
    let p = PathBuf::from(format!("/dev/block/{ma}:{mi}"));
    if is_it(&p) {
        return Some(p);
    }
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{ma}:{mi}/uevent")).ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    let p = Path::new("/dev").join(name);
    is_it(&p).then_some(p)
}

/// Where the block device `rdev` is mounted, if it is.
fn mount_point_of(rdev: u64) -> Option<String> {
    let m = mounts().ok()?;
    m.into_iter().find(|m| m.dev == rdev).map(|m| m.mount_point.display().to_string())
}

/// Reads page 0 the way swapon does (`read_mapping_folio(mapping, 0)`): bytes past the
/// end of a short file read as zeros.
pub fn read_header(path: &Path) -> Result<Vec<u8>, LayoutError> {
    let mut f = File::open(path).map_err(|e| LayoutError::io("open", path, e))?;
    let mut page = vec![0u8; PAGE_SIZE];
    let mut got = 0;
    while got < PAGE_SIZE {
        match f.read(&mut page[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LayoutError::io("read header", path, e)),
        }
    }
    Ok(page)
}

/// Reads a file's layout for activation, like swapon does before its extent walk.
///
/// Refuses, as swapon would: a file that is an active swap area ([`LayoutError::ActiveSwap`],
/// `EBUSY`), a mounted block device ([`LayoutError::MountedDevice`], `EBUSY`), anything
/// that is neither a regular file nor a block device, and tmpfs files
/// ([`LayoutError::NoExtentMap`]). The file is `fsync`ed first so no extent is delayed
/// or uncommitted (`iomap_swapfile_activate` calls `vfs_fsync`), and FIEMAP is asked to
/// sync as well (`FIEMAP_FLAG_SYNC`); on XFS deferred inode inactivation is flushed
/// first, as `xfs_iomap_swapfile_activate` does.
pub fn probe(path: &Path) -> Result<FileLayout, LayoutError> {
    let meta = std::fs::metadata(path).map_err(|e| LayoutError::io("stat", path, e))?;
    let ft = meta.file_type();
    if ft.is_block_device() {
        return probe_block_device(path, &meta);
    }
    if !ft.is_file() {
        return Err(LayoutError::NotSwappable { path: path.to_path_buf() });
    }
    if is_active_swap(SwapId::of(&meta)) {
        return Err(LayoutError::ActiveSwap { path: path.to_path_buf() });
    }
    let file = File::open(path).map_err(|e| LayoutError::io("open", path, e))?;
    file.sync_all().map_err(|e| LayoutError::io("fsync", path, e))?;
    let meta = file.metadata().map_err(|e| LayoutError::io("fstat", path, e))?;
    let st = fstatfs(&file).map_err(|e| LayoutError::io("fstatfs", path, e))?;
    let fs = FsKind::from_magic(st.f_type as i64);
    if fs == FsKind::Tmpfs {
        return Err(LayoutError::NoExtentMap { path: path.to_path_buf(), fs });
    }
    let device = meta.dev();
    let flags = inode_flags(&file).map_err(|e| LayoutError::io("FS_IOC_GETFLAGS", path, e))?;
    let mut attrs = FileAttrs::empty();
    if fs == FsKind::Btrfs {
        if flags & FS_NOCOW_FL == 0 {
            attrs |= FileAttrs::COPY_ON_WRITE;
        }
        if flags & FS_COMPR_FL != 0 {
            attrs |= FileAttrs::COMPRESSED;
        }
    }
    if fs == FsKind::Xfs {
        xfs_flush_inodegc(&file);
    }
    let extents = fiemap(&file, path, device)?;
    let extent_map = extents.is_some();
    Ok(FileLayout {
        path: path.to_path_buf(),
        file_size: meta.len(),
        extents: extents.unwrap_or_default(),
        attrs,
        fs,
        block_size: st.f_bsize as u64,
        device,
        device_path: device_node(device),
        inode: meta.ino(),
        allocated_bytes: meta.blocks() * 512,
        extent_map,
    })
}

/// A block device is swapped on whole: one extent `[0, size)` at device offset 0.
fn probe_block_device(path: &Path, meta: &std::fs::Metadata) -> Result<FileLayout, LayoutError> {
    let rdev = meta.rdev();
    if let Some(mount_point) = mount_point_of(rdev) {
        return Err(LayoutError::MountedDevice { path: path.to_path_buf(), mount_point });
    }
    let swapping = is_active_swap(SwapId::Device { rdev });
    if swapping {
        return Err(LayoutError::ActiveSwap { path: path.to_path_buf() });
    }
    let mut file = File::open(path).map_err(|e| LayoutError::io("open", path, e))?;
    let size = file.seek(SeekFrom::End(0)).map_err(|e| LayoutError::io("seek", path, e))?;
    let extents = if size == 0 {
        Vec::new()
    } else {
        vec![ExtentReport { logical: 0, physical: 0, length: size, flags: ExtentFlags::empty(), device: rdev }]
    };
    Ok(FileLayout {
        path: path.to_path_buf(),
        file_size: size,
        extents,
        attrs: FileAttrs::empty(),
        fs: FsKind::BlockDevice,
        block_size: meta.blksize(),
        device: rdev,
        device_path: Some(path.to_path_buf()),
        inode: meta.ino(),
        allocated_bytes: size,
        extent_map: true,
    })
}

impl FileLayout {
    /// What swapdio's userspace drivers can do with this file.
    ///
    /// * ext4, xfs, other filesystems with FIEMAP and a `/dev/block` node, block
    ///   devices: [`BackendCaps::BLOCK_DEVICE`] (O_DIRECT on the device at mapped
    ///   positions) plus [`BackendCaps::SWAP_RW`] (O_DIRECT on the file).
    /// * btrfs: file mode only — FIEMAP physical is a btrfs logical address, so device
    ///   I/O would be wrong. Auto therefore picks file mode.
    /// * no extent map (NFS-like): file mode only.
    ///
    /// Never [`BackendCaps::UNWRITTEN_SAFE_IN_FILE_MODE`]: an O_DIRECT write into an
    /// unwritten extent converts it in a transaction on every local filesystem.
    pub fn caps(&self) -> BackendCaps {
        let file_mode = BackendCaps::SWAP_RW | BackendCaps::OVERWRITE_IN_PLACE | BackendCaps::STABLE_ON_COMPLETE;
        match self.fs {
            FsKind::Btrfs | FsKind::Tmpfs | FsKind::Overlay | FsKind::Fuse | FsKind::Nfs => file_mode,
            _ if self.extent_map && self.device_path.is_some() => BackendCaps::BLOCK_DEVICE | BackendCaps::SWAP_RW,
            _ => file_mode,
        }
    }

    /// How the kernel itself drives this file: block swap (`!SWP_FS_OPS`, extents frozen
    /// at activation) on every filesystem with an extent map — ext4, xfs, btrfs (whose
    /// `btrfs_swap_activate` translates to device offsets itself) and block devices;
    /// `SWP_FS_OPS` file mode without one (NFS's `swap_rw`).
    pub fn kernel_caps(&self) -> BackendCaps {
        if self.extent_map {
            BackendCaps::BLOCK_DEVICE
        } else {
            BackendCaps::SWAP_RW | BackendCaps::OVERWRITE_IN_PLACE | BackendCaps::STABLE_ON_COMPLETE
        }
    }

    fn layout(&self) -> Layout<'_> {
        if self.fs == FsKind::BlockDevice {
            Layout::BlockDevice
        } else if self.extent_map {
            Layout::Extents(&self.extents)
        } else {
            Layout::Opaque { allocated_bytes: self.allocated_bytes }
        }
    }

    /// The activation request for swapdio's own drivers in `mode`, with
    /// `main_device = device` and [`FileLayout::caps`].
    pub fn activation_request<'a>(&'a self, header: &'a [u8], mode: ModeRequest) -> ActivationRequest<'a> {
        ActivationRequest {
            header,
            file_size: self.file_size,
            layout: self.layout(),
            main_device: self.device,
            caps: self.caps(),
            attrs: self.attrs,
            mode,
            limits: HeaderLimits::default(),
        }
    }

    /// The dry-run swapon request: what the kernel would decide, with
    /// [`FileLayout::kernel_caps`] and its own mode choice.
    pub fn kernel_request<'a>(&'a self, header: &'a [u8]) -> ActivationRequest<'a> {
        ActivationRequest {
            caps: self.kernel_caps(),
            mode: ModeRequest::Auto,
            ..self.activation_request(header, ModeRequest::Auto)
        }
    }

    /// The first and one-past-last physical byte of the mapped extents (FIEMAP's
    /// addresses; btrfs logical addresses on btrfs).
    pub fn physical_span(&self) -> Option<(u64, u64)> {
        let lo = self.extents.iter().map(|e| e.physical).min()?;
        let hi = self.extents.iter().map(|e| e.physical.saturating_add(e.length)).max()?;
        Some((lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiemap_flags_map_to_the_swapfile_iter_checks() {
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_LAST), ExtentFlags::empty());
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_LAST), ExtentFlags::UNWRITTEN);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_SHARED), ExtentFlags::SHARED);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_DATA_INLINE), ExtentFlags::INLINE);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_DATA_TAIL), ExtentFlags::INLINE);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_DELALLOC), ExtentFlags::DELALLOC);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_UNKNOWN), ExtentFlags::DELALLOC);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_ENCODED), ExtentFlags::ENCODED);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_DATA_ENCRYPTED), ExtentFlags::ENCODED);
        assert_eq!(extent_flags_from_fiemap(FIEMAP_EXTENT_NOT_ALIGNED), ExtentFlags::NOT_ALIGNED);
    }

    #[test]
    fn xfs_eofblocks_ioctl_matches_the_uapi() {
        assert_eq!(std::mem::size_of::<XfsFsEofblocks>(), 128);
        // _IOR('X', 58, struct xfs_fs_eofblocks): dir 2, size 128.
        assert_eq!(XFS_IOC_FREE_EOFBLOCKS, (2 << 30) | (128 << 16) | ((b'X' as u64) << 8) | 58);
    }

    #[test]
    fn fiemap_struct_sizes_match_the_uapi() {
        assert_eq!(std::mem::size_of::<FiemapExtent>(), 56);
        assert_eq!(std::mem::size_of::<Fiemap>(), 32 + 56 * FIEMAP_BATCH);
        // _IOWR('f', 11, struct fiemap): dir 3, size 32.
        assert_eq!(FS_IOC_FIEMAP, (3 << 30) | (32 << 16) | ((b'f' as u64) << 8) | 11);
    }

    #[test]
    fn dev_t_encoding_matches_glibc() {
        assert_eq!(dev_major_minor(0x0000_0000_0000_0801), (8, 1));
        assert_eq!(dev_major_minor((259u64 << 8) | 3), (259, 3));
        assert_eq!(
            dev_major_minor((0x1234u64 & !0xfff) << 32 | (0x234 << 8) | 0x56 | (0x789 << 20)),
            (0x1234, 0x78956)
        );
    }
}
