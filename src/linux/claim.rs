//! swapon's open-and-claim step, reproduced without side effects.
//!
//! `SYSCALL_DEFINE2(swapon)` (`mm/swapfile.c`) opens its target with
//! `file_open_name(name, O_RDWR | O_LARGEFILE | O_EXCL)` before it reads anything, then
//! refuses an inode that is already swap (`IS_SWAPFILE`: `EBUSY`) and one whose mapping
//! cannot read pages (`!a_ops->read_folio`: `EINVAL`). The open is where most non-layout
//! errnos come from, in the VFS's order (`may_open`, `inode_permission`,
//! `do_dentry_open`, `bdev_open`):
//!
//! | condition | errno |
//! |---|---|
//! | path missing / not searchable | `ENOENT`, `EACCES`, `ENOTDIR`, `ELOOP` (from `stat`) |
//! | a directory (write access) | `EISDIR` |
//! | a socket | `ENXIO` |
//! | regular file on a read-only filesystem (`SB_RDONLY`) | `EROFS` |
//! | immutable file (`FS_IMMUTABLE_FL`) | `EPERM` |
//! | append-only file (`FS_APPEND_FL`, opened without `O_APPEND`) | `EPERM` |
//! | an executable being run (`deny_write_access`) | `ETXTBSY` |
//! | regular file on a read-only mount (e.g. a read-only bind mount) | `EROFS` |
//! | block device held exclusively by anyone (mounted, active swap, a member of a mounted btrfs or md/dm, a whole disk with a claimed partition, another `O_EXCL` opener) | `EBUSY` |
//! | FIFO, character device: open succeeds, no `read_folio` | `EINVAL` |
//!
//! [`claim`] decides all of these without opening anything for writing: the type comes
//! from `stat` first (so a FIFO or a character device is never opened and nothing
//! blocks), a block device gets an exclusive **read-only** open (`O_RDONLY | O_EXCL`
//! claims it exactly as swapon's open would, and gives it back on close), a regular file
//! is opened read-only and non-blocking for its attributes (`FS_IOC_GETFLAGS`), its
//! mount is found by `statx`'s mount ID in `/proc/self/mountinfo`, and a running
//! executable is found through `/proc/*/exe`. The prediction is for a caller with
//! `CAP_SYS_ADMIN` (without it swapon returns `EPERM` before all of this).
//!
//! The claim also collects util-linux `swapon`'s warnings (insecure permissions or
//! owner) and warns about fscrypt-encrypted files.

use super::layout::inode_flags;
use super::procfs::{is_active_swap, mounts, MountInfo, SwapId};
use crate::errno::Errno;
use std::ffi::CString;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `FS_IMMUTABLE_FL` ('i' in chattr).
pub const FS_IMMUTABLE_FL: u32 = 0x0000_0010;
/// `FS_APPEND_FL` ('a' in chattr).
pub const FS_APPEND_FL: u32 = 0x0000_0020;
/// `FS_ENCRYPT_FL`: the inode is encrypted by fscrypt.
pub const FS_ENCRYPT_FL: u32 = 0x0000_0800;

/// What swapon would be swapping on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A regular file.
    File,
    /// A whole block device.
    BlockDevice,
}

/// A successful claim: swapon's open would succeed and the inode is not already swap.
#[derive(Debug)]
pub struct Claim {
    /// `stat` of the target (symbolic links followed, as swapon does).
    pub meta: Metadata,
    /// File or block device.
    pub target: Target,
    /// The mount the file lives on (regular files; `None` if not found).
    pub mount: Option<MountInfo>,
    /// Warnings a careful `swapon` prints (permissions, owner, encryption).
    pub warnings: Vec<String>,
}

/// A refused claim: the errno `swapon(2)` would return and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRefusal {
    /// What `swapon(2)` returns.
    pub errno: Errno,
    /// Why, in words.
    pub reason: String,
}

fn refuse<T>(errno: Errno, reason: impl Into<String>) -> Result<T, ClaimRefusal> {
    Err(ClaimRefusal { errno, reason: reason.into() })
}

/// The OS's words for `e`, without Rust's " (os error N)" suffix (the errno is reported
/// by name beside it).
pub fn os_msg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn os_errno(e: &io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(Errno::EIO.0))
}

/// Reproduces swapon's open-and-claim step for `path` (see the module docs), without
/// writing, truncating or keeping anything open.
pub fn claim(path: &Path) -> Result<Claim, ClaimRefusal> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return refuse(os_errno(&e), format!("cannot open: {}", os_msg(&e))),
    };
    let ft = meta.file_type();
    let mut warnings = permission_warnings(&meta);
    if ft.is_dir() {
        return refuse(Errno::EISDIR, "is a directory (swapon opens its target read-write)");
    }
    if ft.is_socket() {
        return refuse(Errno::ENXIO, "is a socket (it cannot be opened)");
    }
    if ft.is_block_device() {
        claim_block_device(path, &meta)?;
        return Ok(Claim { meta, target: Target::BlockDevice, mount: None, warnings });
    }
    if !ft.is_file() {
        // FIFOs and character devices open, but have no read_folio: swapon's EINVAL.
        return refuse(Errno::EINVAL, "not a regular file or block device (no page cache to read the header from)");
    }
    let mount = mount_of(path);
    if mount.as_ref().is_some_and(MountInfo::super_read_only) {
        return refuse(Errno::EROFS, "the filesystem is read-only (swapon opens the file read-write)");
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .or_else(|e| refuse(os_errno(&e), format!("cannot open: {}", os_msg(&e))))?;
    let flags = inode_flags(&file).unwrap_or(0);
    if flags & FS_IMMUTABLE_FL != 0 {
        return refuse(Errno::EPERM, "the file is immutable (chattr +i): swapon cannot open it read-write");
    }
    if flags & FS_APPEND_FL != 0 {
        return refuse(Errno::EPERM, "the file is append-only (chattr +a): swapon cannot open it read-write");
    }
    if let Some(pid) = executing_pid(&meta) {
        return refuse(Errno::ETXTBSY, format!("the file is a running executable (process {pid})"));
    }
    if mount.as_ref().is_some_and(MountInfo::mount_read_only) {
        return refuse(Errno::EROFS, "the mount is read-only (swapon opens the file read-write)");
    }
    if is_active_swap(SwapId::of(&meta)) {
        return refuse(Errno::EBUSY, "is an active swap area (listed in /proc/swaps)");
    }
    if flags & FS_ENCRYPT_FL != 0 {
        warnings.push(
            "the file is encrypted with fscrypt, but the kernel writes swap pages to its blocks in plaintext".into(),
        );
    }
    Ok(Claim { meta, target: Target::File, mount, warnings })
}

/// util-linux `swapon`'s warnings: permissions beyond 0600 (`mode & 07077`; `07007` for
/// block devices), and a regular file not owned by root.
fn permission_warnings(meta: &Metadata) -> Vec<String> {
    let mut w = Vec::new();
    let ft = meta.file_type();
    if !(ft.is_file() || ft.is_block_device()) {
        return w;
    }
    let perm = meta.mode() & 0o7777;
    // util-linux lets the disk group read a block device (mask 07007).
    let mask = if ft.is_block_device() { 0o7007 } else { 0o7077 };
    if perm & mask != 0 {
        w.push(format!("insecure permissions {perm:04o}, 0600 suggested (chmod 0600)"));
    }
    if ft.is_file() && meta.uid() != 0 {
        w.push(format!("insecure file owner {}, 0 (root) suggested (chown 0:0)", meta.uid()));
    }
    w
}

/// The mount `path` lives on: `statx`'s `stx_mnt_id` looked up in `/proc/self/mountinfo`.
pub fn mount_of(path: &Path) -> Option<MountInfo> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statx` is plain old data; all-zero is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a live, writable `struct statx`; both
    // outlive the call.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MNT_ID, &mut st) };
    if rc < 0 || st.stx_mask & libc::STATX_MNT_ID == 0 {
        return None;
    }
    mounts().ok()?.into_iter().find(|m| m.mount_id == st.stx_mnt_id)
}

/// A process whose executable is this file (`/proc/PID/exe`): exec denies write access
/// to it, so swapon's read-write open fails with `ETXTBSY`.
fn executing_pid(meta: &Metadata) -> Option<u32> {
    let want = (meta.dev(), meta.ino());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let m = std::fs::metadata(e.path().join("exe")).ok()?;
        ((m.dev(), m.ino()) == want).then_some(pid)
    })
}

/// The exclusive claim of a block device, probed with a read-only `O_EXCL` open (the
/// same `bdev_open` holder check as swapon's read-write one), and `bdev_is_zoned`.
fn claim_block_device(path: &Path, meta: &Metadata) -> Result<(), ClaimRefusal> {
    let rdev = meta.rdev();
    match OpenOptions::new().read(true).custom_flags(libc::O_EXCL | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path) {
        Ok(f) => drop::<File>(f),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            return refuse(Errno::EBUSY, format!("the block device is in use: {}", holder_of(rdev)));
        }
        Err(e) => return refuse(os_errno(&e), format!("cannot open: {}", os_msg(&e))),
    }
    let (ma, mi) = (libc::major(rdev), libc::minor(rdev));
    let zoned = std::fs::read_to_string(format!("/sys/dev/block/{ma}:{mi}/queue/zoned")).unwrap_or_default();
    if !zoned.trim().is_empty() && zoned.trim() != "none" {
        return refuse(Errno::EINVAL, "the block device is zoned (swap needs in-place overwrites)");
    }
    Ok(())
}

/// Who holds a busy block device, as far as `/proc` and `/sys` tell.
fn holder_of(rdev: u64) -> String {
    if is_active_swap(SwapId::Device { rdev }) {
        return "it is an active swap area".into();
    }
    let all = mounts().unwrap_or_default();
    if let Some(m) = all.iter().find(|m| m.dev == rdev || m.source_rdev() == Some(rdev)) {
        return format!("mounted on {} ({})", m.mount_point.display(), m.fs_type);
    }
    let (ma, mi) = (libc::major(rdev), libc::minor(rdev));
    let sys = PathBuf::from(format!("/sys/dev/block/{ma}:{mi}"));
    if let Some(name) = std::fs::canonicalize(&sys).ok().and_then(|p| p.file_name().map(|n| n.to_owned())) {
        let member = std::fs::read_dir("/sys/fs/btrfs")
            .into_iter()
            .flatten()
            .flatten()
            .find(|fs| fs.path().join("devices").join(&name).exists());
        if let Some(fs) = member {
            return format!("a member device of the mounted btrfs filesystem {}", fs.file_name().to_string_lossy());
        }
    }
    let names = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let holders = names(sys.join("holders"));
    if !holders.is_empty() {
        return format!("held by {}", holders.join(", "));
    }
    let parts: Vec<String> =
        names(sys.clone()).into_iter().filter(|n| sys.join(n).join("partition").exists()).collect();
    if !parts.is_empty() {
        return format!("a partition of it ({}) is claimed", parts.join(", "));
    }
    "another user holds it exclusively (a mounted multi-device filesystem, or an O_EXCL open)".into()
}

impl MountInfo {
    /// `st_rdev` of the mount source, when it is a block device node.
    pub fn source_rdev(&self) -> Option<u64> {
        std::fs::metadata(&self.source).ok().filter(|m| m.file_type().is_block_device()).map(|m| m.rdev())
    }
}

/// Whether swapdio's device mode could open `device` for read-write direct I/O, as
/// `stress --mode device` does: `Ok` or the errno of the failed open. Opening a block
/// device without `O_EXCL` claims nothing; it is closed at once.
pub fn device_openable(device: &Path) -> Result<(), Errno> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(device)
        .map(drop)
        .map_err(|e| os_errno(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn claim_warns_like_util_linux_about_insecure_permissions() {
        let p = std::env::temp_dir().join(format!("swapdio-claim-perm-{}", std::process::id()));
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = claim(&p);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let quiet = claim(&p);
        let _ = std::fs::remove_file(&p);
        let c = c.unwrap();
        assert_eq!(c.target, Target::File);
        assert!(c.warnings.iter().any(|w| w.contains("insecure permissions 0644")), "{:?}", c.warnings);
        assert!(!quiet.unwrap().warnings.iter().any(|w| w.contains("permissions")));
    }

    #[test]
    fn claim_decides_by_type_before_opening() {
        assert_eq!(claim(Path::new("/dev/null")).unwrap_err().errno, Errno::EINVAL);
        assert_eq!(claim(&std::env::temp_dir()).unwrap_err().errno, Errno::EISDIR);
        assert_eq!(claim(Path::new("/nonexistent/swapdio")).unwrap_err().errno, Errno::ENOENT);
    }
}
