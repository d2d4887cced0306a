//! The swap-file guard: what stands in for the kernel's `S_SWAPFILE` while swapdio
//! drives a file from userspace.
//!
//! At swapon the kernel claims a swap file so that nobody else can use it or change it:
//! `claim_swapfile` takes the inode (a second swapon gets `EBUSY`), and `S_SWAPFILE`
//! makes writes, truncate, fallocate and remaps fail with `ETXTBSY` for as long as the
//! file is active. Userspace has no `S_SWAPFILE`, so the guard does what it can:
//!
//! * **Exclusion** ([`SwapFileGuard::acquire`]): an exclusive `flock` on every file
//!   swapdio drives or formats. A second swapdio user (another `stress`, `bench`, or a
//!   `mkswap` over the running file) is refused with [`LayoutError::InUse`] instead of
//!   silently sharing the file (the kernel's `EBUSY` for a second swapon).
//! * **Frozen layout in device mode** ([`SwapFileGuard::freeze`]): device mode writes
//!   straight to the block device at the file's physical blocks. If the file lost a
//!   block (hole punch, truncate) the filesystem could give it to another file, and the
//!   next swap write would land in that file. While device mode writes, the file is
//!   therefore made immutable (`FS_IOC_SETFLAGS` with `FS_IMMUTABLE_FL`): the VFS then
//!   refuses every open for writing, truncate, fallocate, unlink and rename with `EPERM`
//!   and filesystems refuse to move its extents (ext4 `EXT4_IOC_MOVE_EXT`, xfs
//!   swapext) — the kernel's `IS_SWAPFILE` checks, by another flag. Like `S_SWAPFILE`,
//!   it also makes a kernel `swapon` of the file fail while swapdio uses it.
//! * **Append-only in file mode** ([`SwapFileGuard::freeze_append_only`]): file mode
//!   writes through the filesystem, so a punched hole or a truncate cannot send a write
//!   into another file's blocks, but the filesystem would allocate on the next write
//!   into the hole (a transaction on the swap write path, which the kernel's
//!   `S_SWAPFILE` forbids) and the data that was in it is gone. Once swapdio's own
//!   descriptor is open, the file is made append-only (`FS_APPEND_FL`): every *new*
//!   open for writing without `O_APPEND`, truncate, hole punch, unlink, rename and a
//!   kernel `swapon` then fail with `EPERM`, while the descriptor opened before keeps
//!   writing at its slots (append-only is enforced at open, not per write). An append
//!   through `O_APPEND` still grows the file; the layout check sees the size change.
//!
//! The original flags are written to [`RECORD_DIR`] before a flag is set and restored on
//! [`SwapFileGuard::thaw`] or drop; after a crash [`recover_stale_immutable`] (run by
//! the next swapdio command) restores them.

use super::layout::{inode_flags, set_inode_flags, LayoutError};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `FS_IMMUTABLE_FL` (`include/uapi/linux/fs.h`): no writes, truncate, fallocate,
/// unlink, rename or link while set; setting or clearing it needs `CAP_LINUX_IMMUTABLE`.
pub const FS_IMMUTABLE_FL: u32 = 0x0000_0010;

/// `FS_APPEND_FL` (`include/uapi/linux/fs.h`): opens for writing need `O_APPEND`, no
/// truncate, hole punch, unlink, rename or link while set; needs `CAP_LINUX_IMMUTABLE`.
pub const FS_APPEND_FL: u32 = 0x0000_0020;

/// The flags the guard may set, and restores after a crash.
const GUARD_FLAGS: u32 = FS_IMMUTABLE_FL | FS_APPEND_FL;

/// Where the guard records the flags of files it made immutable, one file per inode
/// (`<st_dev>-<st_ino>`), so that a run that died is undone by the next one.
pub const RECORD_DIR: &str = "/run/swapdio/immutable";

/// `LayoutError::Io` for `op` on `path`, as a `map_err` argument.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::io(op, path, source)
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file holds it.
fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: plain system call on an open fd; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Whether process `pid` exists (`kill(pid, 0)`; a process of another user counts).
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Opens `path` read-only for the guard after checking its type, so that a FIFO or a
/// character device is never opened (an open could block or have side effects) and
/// nothing is changed on a file the guard refuses.
fn open_checked(path: &Path) -> Result<File, LayoutError> {
    let meta = std::fs::metadata(path).map_err(io_err("stat", path))?;
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    if !(ft.is_file() || ft.is_block_device()) {
        return Err(LayoutError::NotSwappable { path: path.to_path_buf() });
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err("open", path))?;
    let now = file.metadata().map_err(io_err("fstat", path))?;
    if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
        // Replaced between the stat and the open: refuse rather than guess.
        return Err(LayoutError::Io { op: "open", path: path.to_path_buf(), source: io::ErrorKind::NotFound.into() });
    }
    Ok(file)
}

/// The protection of one swap file for as long as swapdio uses it; see the module docs.
/// Dropping it restores the inode flags (if [`freeze`](Self::freeze) changed them) and
/// releases the lock.
#[derive(Debug)]
pub struct SwapFileGuard {
    file: File,
    path: PathBuf,
    id: (u64, u64),
    frozen: Option<Frozen>,
}

#[derive(Debug)]
struct Frozen {
    /// The inode flags before `freeze`.
    original: u32,
    /// The flag `freeze` set: `FS_IMMUTABLE_FL` or `FS_APPEND_FL`.
    flag: u32,
    /// The crash record, when the file has a name to find it by again.
    record: Option<PathBuf>,
}

impl SwapFileGuard {
    /// Checks that `path` is a regular file or a block device, opens it read-only and
    /// takes an exclusive `flock` on it; [`LayoutError::InUse`] if another process holds
    /// it. Nothing about the file is changed.
    pub fn acquire(path: &Path) -> Result<SwapFileGuard, LayoutError> {
        let file = open_checked(path)?;
        if !try_lock_exclusive(&file).map_err(io_err("flock", path))? {
            return Err(LayoutError::InUse { path: path.to_path_buf() });
        }
        let meta = file.metadata().map_err(io_err("fstat", path))?;
        Ok(SwapFileGuard { file, path: path.to_path_buf(), id: (meta.dev(), meta.ino()), frozen: None })
    }

    /// `(st_dev, st_ino)` of the guarded file.
    pub fn id(&self) -> (u64, u64) {
        self.id
    }

    /// The path the guard was taken on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether [`freeze`](Self::freeze) is in force.
    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }

    /// Makes the file immutable (`FS_IMMUTABLE_FL`) until [`thaw`](Self::thaw) or
    /// drop, so that its blocks stay its own while device mode writes to them. The
    /// original flags are recorded in [`RECORD_DIR`] first (for a file that still has
    /// a name). Needs `CAP_LINUX_IMMUTABLE` and a filesystem with `FS_IOC_SETFLAGS`
    /// (ext4, xfs, btrfs); an error leaves the file as it was. On a block device it does
    /// nothing (there is no filesystem under the blocks).
    pub fn freeze(&mut self) -> Result<(), LayoutError> {
        self.freeze_with(FS_IMMUTABLE_FL, "FS_IOC_SETFLAGS (immutable)")
    }

    /// Makes the file append-only (`FS_APPEND_FL`) until [`thaw`](Self::thaw) or drop:
    /// the file-mode stand-in for `S_SWAPFILE` (see the module docs). Call it only once
    /// the descriptor file mode writes through is open: later opens for writing fail.
    /// Same requirements, record and error behaviour as [`freeze`](Self::freeze).
    pub fn freeze_append_only(&mut self) -> Result<(), LayoutError> {
        self.freeze_with(FS_APPEND_FL, "FS_IOC_SETFLAGS (append-only)")
    }

    fn freeze_with(&mut self, flag: u32, op: &'static str) -> Result<(), LayoutError> {
        if self.frozen.is_some() {
            return Ok(());
        }
        let path = self.path.clone();
        let meta = self.file.metadata().map_err(io_err("fstat", &path))?;
        if !meta.file_type().is_file() {
            // A block device: device mode writes to the device itself, whose blocks
            // belong to no filesystem that could hand them out.
            return Ok(());
        }
        let original = inode_flags(&self.file).map_err(io_err("FS_IOC_GETFLAGS", &path))?;
        if original & flag != 0 {
            // Already set by the owner's choice: nothing to set or undo.
            self.frozen = Some(Frozen { original, flag, record: None });
            return Ok(());
        }
        let record = if meta.nlink() > 0 {
            Some(write_record(self.id, original, &path).map_err(io_err("record the inode flags", &path))?)
        } else {
            None
        };
        if let Err(e) = set_inode_flags(&self.file, original | flag) {
            if let Some(r) = &record {
                let _ = std::fs::remove_file(r);
            }
            return Err(LayoutError::Io { op, path, source: e });
        }
        self.frozen = Some(Frozen { original, flag, record });
        Ok(())
    }

    /// Whether the file still has the flag [`freeze`](Self::freeze) or
    /// [`freeze_append_only`](Self::freeze_append_only) set (`true` when not frozen).
    /// `false` means someone cleared it (`chattr -i`, `chattr -a`) during the run: the
    /// run must stop writing, the file is no longer protected.
    pub fn still_frozen(&self) -> bool {
        self.frozen.as_ref().is_none_or(|f| inode_flags(&self.file).is_ok_and(|now| now & f.flag != 0))
    }

    /// The name of the flag in force (`"immutable"` or `"append-only"`), if frozen.
    pub fn frozen_as(&self) -> Option<&'static str> {
        self.frozen.as_ref().map(|f| if f.flag == FS_APPEND_FL { "append-only" } else { "immutable" })
    }

    /// Restores the flags [`freeze`](Self::freeze) changed and removes the crash record.
    pub fn thaw(&mut self) -> Result<(), LayoutError> {
        let Some(f) = self.frozen.take() else { return Ok(()) };
        if f.original & f.flag == 0 {
            let now = inode_flags(&self.file).map_err(io_err("FS_IOC_GETFLAGS", &self.path))?;
            if let Err(e) = set_inode_flags(&self.file, now & !f.flag) {
                // Keep the record: the next run retries.
                return Err(LayoutError::Io { op: "FS_IOC_SETFLAGS (restore)", path: self.path.clone(), source: e });
            }
        }
        if let Some(r) = f.record {
            let _ = std::fs::remove_file(r);
        }
        Ok(())
    }
}

impl Drop for SwapFileGuard {
    fn drop(&mut self) {
        let _ = self.thaw();
    }
}

fn record_path(id: (u64, u64)) -> PathBuf {
    Path::new(RECORD_DIR).join(format!("{}-{}", id.0, id.1))
}

/// Writes `<flags>\n<path bytes>` to the record of `id` (atomically: temp + rename).
fn write_record(id: (u64, u64), original: u32, path: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(RECORD_DIR)?;
    let abs = std::fs::canonicalize(path)?;
    let mut text = format!("{original}\n").into_bytes();
    text.extend_from_slice(abs.as_os_str().as_bytes());
    let dest = record_path(id);
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &text)?;
    std::fs::rename(&tmp, &dest)?;
    Ok(dest)
}

/// Parses a record: the original flags and the file's path.
fn parse_record(text: &[u8]) -> Option<(u32, PathBuf)> {
    let nl = text.iter().position(|&b| b == b'\n')?;
    let flags = std::str::from_utf8(&text[..nl]).ok()?.trim().parse().ok()?;
    let path = &text[nl + 1..];
    (!path.is_empty()).then(|| (flags, PathBuf::from(OsStr::from_bytes(path))))
}

/// Undoes [`SwapFileGuard::freeze`] and [`SwapFileGuard::freeze_append_only`] of runs
/// that died (`kill -9`, a crash, power loss with `/run` on disk): for every record in [`RECORD_DIR`] whose file is no longer
/// locked by a live swapdio process, restores the recorded flags and removes the
/// record. Returns the files restored. Records whose file cannot be opened (its
/// filesystem not mounted) are kept for a later run; records of another inode at the
/// same path are dropped.
pub fn recover_stale_immutable() -> Vec<PathBuf> {
    let mut restored = Vec::new();
    let Ok(dir) = std::fs::read_dir(RECORD_DIR) else { return restored };
    for entry in dir.flatten() {
        let rec = entry.path();
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| {
            let (d, i) = n.split_once('-')?;
            Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
        }) else {
            continue;
        };
        let Some((original, path)) = std::fs::read(&rec).ok().and_then(|t| parse_record(&t)) else {
            let _ = std::fs::remove_file(&rec);
            continue;
        };
        let Ok(file) = open_checked(&path) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        if (meta.dev(), meta.ino()) != id {
            let _ = std::fs::remove_file(&rec);
            continue;
        }
        // A live owner still holds the lock: its run is not over.
        if !try_lock_exclusive(&file).unwrap_or(false) {
            continue;
        }
        let Ok(now) = inode_flags(&file) else { continue };
        let want = (now & !GUARD_FLAGS) | (original & GUARD_FLAGS);
        if want == now || set_inode_flags(&file, want).is_ok() {
            let _ = std::fs::remove_file(&rec);
            restored.push(path);
        }
    }
    restored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("swapdio-guard-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn guard_refuses_a_second_user_like_a_second_swapon() {
        let d = scratch("busy");
        let p = d.join("swap");
        std::fs::write(&p, b"x").unwrap();
        let first = SwapFileGuard::acquire(&p).unwrap();
        let err = SwapFileGuard::acquire(&p).unwrap_err();
        assert!(matches!(err, LayoutError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("in use by another swapdio process"), "{err}");
        drop(first);
        SwapFileGuard::acquire(&p).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn guard_refuses_a_fifo_without_opening_it() {
        let d = scratch("fifo");
        let p = d.join("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // Opening a FIFO read-only would block without a writer: refused first.
        assert!(matches!(SwapFileGuard::acquire(&p), Err(LayoutError::NotSwappable { .. })));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn guard_record_round_trips_flags_and_path_bytes() {
        let p = PathBuf::from(OsStr::from_bytes(b"/a dir/with\nnewline\xff"));
        let mut text = b"16\n".to_vec();
        text.extend_from_slice(p.as_os_str().as_bytes());
        assert_eq!(parse_record(&text), Some((16, p)));
        assert_eq!(parse_record(b"junk"), None);
        assert_eq!(parse_record(b"12\n"), None);
    }
}
