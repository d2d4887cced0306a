//! Capability flags a backend declares, file attributes that matter to swap,
//! and the rule that picks device mode or file mode.
//!
//! The kernel decides how a swap file is driven from which `address_space_operations`
//! a filesystem fills in, and uses `noop_direct_IO` as a marker meaning "direct I/O is
//! possible, go ahead". swapdio replaces that trick with explicit bits, and refuses the
//! combinations that would let a swap write start a filesystem transaction.

use crate::errno::Errno;
use core::fmt;

bitflags::bitflags! {
    /// What a backend can do, declared once at activation.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct BackendCaps: u32 {
        /// Direct reads from the block device at mapped positions (device mode).
        const DIO_READ = 1 << 0;
        /// Direct writes to the block device at mapped positions (device mode).
        const DIO_WRITE = 1 << 1;
        /// The filesystem's `->swap_rw`: I/O addressed by file position (file mode).
        const SWAP_RW = 1 << 2;
        /// Blocks can be overwritten in place. Zoned devices' sequential zones and
        /// log-structured filesystems (f2fs LFS mode) lack it: every write would allocate.
        const OVERWRITE_IN_PLACE = 1 << 3;
        /// Completion means the data is stable (NFS `FLUSH_STABLE`): no later COMMIT needed.
        const STABLE_ON_COMPLETE = 1 << 4;
        /// The backend enters the filesystem, so swap writes may only be issued from a
        /// context that allows it (the kernel's `test_may_enter_fs`, 2026 mm's
        /// `SWAP_OPS_F_REQUIRE_NOFS`). File mode always implies this.
        const REQUIRES_NOFS = 1 << 5;
        /// In file mode, writing into an unwritten (preallocated) extent does not run a
        /// transaction (the filesystem converts lazily or never).
        const UNWRITTEN_SAFE_IN_FILE_MODE = 1 << 6;
    }
}

impl BackendCaps {
    /// Both directions of device-mode direct I/O.
    pub const DEVICE_IO: BackendCaps = BackendCaps::DIO_READ.union(BackendCaps::DIO_WRITE);

    /// A local block filesystem driven through its block device (ext4, xfs, btrfs NOCOW).
    pub const BLOCK_DEVICE: BackendCaps =
        BackendCaps::DEVICE_IO.union(BackendCaps::OVERWRITE_IN_PLACE).union(BackendCaps::STABLE_ON_COMPLETE);
}

bitflags::bitflags! {
    /// Attributes of the swap file itself that the filesystem reports (btrfs inode flags,
    /// zonefs zone type). Any of them refuses activation, in either mode, with the
    /// filesystem's own reason.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct FileAttrs: u32 {
        /// Copy-on-write file (btrfs without `NOCOW`): every overwrite allocates.
        const COPY_ON_WRITE = 1 << 0;
        /// Compressed file: on-disk bytes are not the page contents, writes allocate.
        const COMPRESSED = 1 << 1;
        /// Data checksums: a raw device write would not update them.
        const CHECKSUMMED = 1 << 2;
        /// A sequential-write-required zone (zonefs, zoned btrfs): no in-place overwrite.
        const SEQUENTIAL_ZONE = 1 << 3;
    }
}

/// How swap I/O is addressed once the file is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum IoMode {
    /// Kernel block swap (`!SWP_FS_OPS`): extents frozen at activation, I/O goes to the
    /// block device at mapped byte positions; the filesystem never sees it.
    Device = 1,
    /// Kernel `SWP_FS_OPS`: I/O addressed by file position `slot << PAGE_SHIFT`, the
    /// filesystem's `swap_rw` maps it.
    File = 2,
}

/// Which mode the caller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ModeRequest {
    /// Device mode when the backend can do device direct I/O, else file mode.
    #[default]
    Auto,
    /// Device mode or refuse.
    Device,
    /// File mode or refuse.
    File,
}

/// Why the capability and attribute rules refuse a swap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CapsRefusal {
    /// btrfs: `swapfile must not be copy-on-write`.
    #[error("swapfile must not be copy-on-write")]
    CopyOnWrite,
    /// btrfs: `swapfile must not be compressed`.
    #[error("swapfile must not be compressed")]
    Compressed,
    /// btrfs: `swapfile must not be checksummed`.
    #[error("swapfile must not be checksummed")]
    Checksummed,
    /// zonefs: a sequential zone file cannot be swapped on.
    #[error("swap file: not a conventional zone file")]
    SequentialZone,
    /// f2fs LFS mode / zoned backends: no in-place overwrite.
    #[error("Swapfile not supported in LFS mode")]
    NoOverwriteInPlace,
    /// The backend offers neither device direct I/O nor `swap_rw`.
    #[error("swapfile has no direct I/O and no swap_rw method")]
    NoIoPath,
    /// Device mode was requested but the backend lacks direct read or write.
    #[error("device mode needs direct read and direct write on the device")]
    DeviceModeUnsupported,
    /// File mode was requested but the backend has no `swap_rw`.
    #[error("file mode needs the filesystem's swap_rw")]
    FileModeUnsupported,
    /// File mode without stable completion: a completed swap write could still be lost.
    #[error("file mode needs completion to mean stable (no later commit)")]
    NotStableOnComplete,
}

impl CapsRefusal {
    /// The errno swapon(2) returns for this refusal (always `EINVAL`, as the kernel does).
    pub const fn errno(self) -> Errno {
        Errno::EINVAL
    }
}

/// Checks the file attributes and backend capabilities and picks the I/O mode.
///
/// Mirrors the filesystem-specific refusals of `btrfs_swap_activate`,
/// `zonefs_swap_activate` and `f2fs_swap_activate`, then replaces the kernel's
/// `noop_direct_IO` test with explicit capability bits. Extent-level rules (holes,
/// shared and unwritten extents) are checked by activation once the mode is known.
pub fn choose_mode(caps: BackendCaps, attrs: FileAttrs, request: ModeRequest) -> Result<IoMode, CapsRefusal> {
    if attrs.contains(FileAttrs::COMPRESSED) {
        return Err(CapsRefusal::Compressed);
    }
    if attrs.contains(FileAttrs::COPY_ON_WRITE) {
        return Err(CapsRefusal::CopyOnWrite);
    }
    if attrs.contains(FileAttrs::CHECKSUMMED) {
        return Err(CapsRefusal::Checksummed);
    }
    if attrs.contains(FileAttrs::SEQUENTIAL_ZONE) {
        return Err(CapsRefusal::SequentialZone);
    }
    if !caps.contains(BackendCaps::OVERWRITE_IN_PLACE) {
        return Err(CapsRefusal::NoOverwriteInPlace);
    }
    let device = caps.contains(BackendCaps::DEVICE_IO);
    let file = caps.contains(BackendCaps::SWAP_RW);
    let mode = match request {
        ModeRequest::Auto if device => IoMode::Device,
        ModeRequest::Auto if file => IoMode::File,
        ModeRequest::Auto => return Err(CapsRefusal::NoIoPath),
        ModeRequest::Device if device => IoMode::Device,
        ModeRequest::Device => return Err(CapsRefusal::DeviceModeUnsupported),
        ModeRequest::File if file => IoMode::File,
        ModeRequest::File => return Err(CapsRefusal::FileModeUnsupported),
    };
    if mode == IoMode::File && !caps.contains(BackendCaps::STABLE_ON_COMPLETE) {
        return Err(CapsRefusal::NotStableOnComplete);
    }
    Ok(mode)
}

/// Whether swap writes need a context that may enter the filesystem
/// (`test_may_enter_fs`): always in file mode, and in device mode when the backend says so.
pub const fn writes_enter_fs(mode: IoMode, caps: BackendCaps) -> bool {
    matches!(mode, IoMode::File) || caps.contains(BackendCaps::REQUIRES_NOFS)
}

/// `device` or `file`, as messages and the CLI spell the mode.
impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoMode::Device => "device",
            IoMode::File => "file",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS_FILE: BackendCaps =
        BackendCaps::SWAP_RW.union(BackendCaps::OVERWRITE_IN_PLACE).union(BackendCaps::STABLE_ON_COMPLETE);

    #[test]
    fn auto_prefers_device_mode_when_direct_io_both_ways() {
        let caps = BackendCaps::BLOCK_DEVICE | BackendCaps::SWAP_RW;
        assert_eq!(choose_mode(caps, FileAttrs::empty(), ModeRequest::Auto), Ok(IoMode::Device));
    }

    #[test]
    fn direct_read_without_direct_write_is_not_device_mode() {
        let caps = FS_FILE | BackendCaps::DIO_READ;
        assert_eq!(choose_mode(caps, FileAttrs::empty(), ModeRequest::Auto), Ok(IoMode::File));
        assert_eq!(choose_mode(caps, FileAttrs::empty(), ModeRequest::Device), Err(CapsRefusal::DeviceModeUnsupported));
    }

    #[test]
    fn no_io_path_refuses() {
        let caps = BackendCaps::OVERWRITE_IN_PLACE | BackendCaps::STABLE_ON_COMPLETE;
        assert_eq!(choose_mode(caps, FileAttrs::empty(), ModeRequest::Auto), Err(CapsRefusal::NoIoPath));
        assert_eq!(choose_mode(caps, FileAttrs::empty(), ModeRequest::File), Err(CapsRefusal::FileModeUnsupported));
    }

    #[test]
    fn file_mode_requires_stable_completion() {
        let caps = BackendCaps::SWAP_RW | BackendCaps::OVERWRITE_IN_PLACE;
        assert_eq!(choose_mode(caps, FileAttrs::empty(), ModeRequest::Auto), Err(CapsRefusal::NotStableOnComplete));
    }

    #[test]
    fn log_structured_backend_refused_in_both_modes() {
        let caps = BackendCaps::DEVICE_IO | BackendCaps::SWAP_RW | BackendCaps::STABLE_ON_COMPLETE;
        for req in [ModeRequest::Auto, ModeRequest::Device, ModeRequest::File] {
            assert_eq!(choose_mode(caps, FileAttrs::empty(), req), Err(CapsRefusal::NoOverwriteInPlace));
        }
    }

    #[test]
    fn file_attributes_refuse_with_the_filesystems_reason() {
        let caps = BackendCaps::BLOCK_DEVICE | BackendCaps::SWAP_RW;
        let cases = [
            (FileAttrs::COPY_ON_WRITE, CapsRefusal::CopyOnWrite, "swapfile must not be copy-on-write"),
            (FileAttrs::COMPRESSED, CapsRefusal::Compressed, "swapfile must not be compressed"),
            (FileAttrs::CHECKSUMMED, CapsRefusal::Checksummed, "swapfile must not be checksummed"),
            (FileAttrs::SEQUENTIAL_ZONE, CapsRefusal::SequentialZone, "swap file: not a conventional zone file"),
        ];
        for (attr, refusal, msg) in cases {
            let got = choose_mode(caps, attr, ModeRequest::Auto).unwrap_err();
            assert_eq!(got, refusal);
            assert_eq!(got.errno(), Errno::EINVAL);
            assert_eq!(alloc::format!("{got}"), msg);
        }
    }

    #[test]
    fn file_mode_always_requires_fs_context() {
        assert!(writes_enter_fs(IoMode::File, FS_FILE));
        assert!(!writes_enter_fs(IoMode::Device, BackendCaps::BLOCK_DEVICE));
        assert!(writes_enter_fs(IoMode::Device, BackendCaps::BLOCK_DEVICE | BackendCaps::REQUIRES_NOFS));
    }
}
