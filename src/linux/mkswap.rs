//! Creating a swap file the right way: allocated, written, mode 0600, with a header.
//!
//! What the kernel needs from a swap file (`mm/swapfile.c`, `fs/iomap/swapfile.c`,
//! `fs/btrfs/inode.c`): no holes ("has unallocated extents"), not shared, on btrfs NOCOW
//! and not compressed, a `SWAPSPACE2` header in page 0 whose `last_page` fits the file.
//! This does what `mkswap` + the kernel documentation recommend, plus two things that make
//! the file better: the data blocks are *written* (zeros), not just preallocated, so the
//! extents are not unwritten (file mode can then use them too), and on btrfs the NOCOW
//! attribute is set while the file is still empty (as `btrfs filesystem mkswapfile` does).

use super::layout::{fstatfs, inode_flags, set_inode_flags, FsKind, LayoutError, FS_NOCOW_FL};
use crate::header::{HeaderError, SwapHeader};
use crate::PAGE_SIZE;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const PAGE: u64 = PAGE_SIZE as u64;
/// Bytes per zero-filling write: large and page aligned.
const CHUNK: usize = 4 << 20;
/// Concurrent zero writers.
const WRITERS: usize = 4;

/// Checks a requested swap file size: at least two pages (header + one data page, the
/// smallest area `read_swap_header` accepts), a whole number of pages (the kernel never
/// walks a partial last page), and at most what a version-1 header can describe.
pub fn validate_size(size: u64) -> Result<u64, LayoutError> {
    if size < 2 * PAGE {
        return Err(LayoutError::TooSmall { size });
    }
    if size % PAGE != 0 {
        return Err(LayoutError::NotPageMultiple { size });
    }
    let pages = size / PAGE;
    if pages - 1 > u64::from(u32::MAX) {
        return Err(LayoutError::TooLarge { size });
    }
    Ok(pages)
}

/// Parses a size with an optional binary suffix: `4096`, `64K`, `512M`, `2G`, `1T`, also
/// spelled `KiB`..`TiB` (powers of 1024, as util-linux reads `K` and `KiB`). `KB`..`TB`
/// are refused: util-linux (`mkswap`, `fallocate -l`) reads them as powers of 1000, so
/// a user who means either would get the other without a word.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("invalid size {s:?}: expected a number with an optional K/M/G/T suffix"))?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        "T" | "TIB" => 40,
        d @ ("KB" | "MB" | "GB" | "TB") => {
            let b = &d[..1];
            return Err(format!(
                "ambiguous size suffix {suffix:?} in {s:?}: util-linux reads it as a power of 1000; write {b} or {b}iB (powers of 1024)"
            ));
        }
        _ => return Err(format!("invalid size suffix {suffix:?} in {s:?}: use K, M, G or T")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("size {s:?} overflows"))
}

/// `fallocate(fd, 0, offset, len)`: allocates blocks (unwritten extents) and extends the
/// file. `Ok(false)` when the filesystem has no fallocate (`EOPNOTSUPP`).
pub fn allocate(file: &File, offset: u64, len: u64) -> io::Result<bool> {
    let (Ok(off), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    loop {
        // SAFETY: plain system call on an open fd; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off, l) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP) => return Ok(false),
            _ => return Err(err),
        }
    }
}

fn fs_kind(file: &File) -> io::Result<FsKind> {
    Ok(FsKind::from_magic(fstatfs(file)?.f_type as i64))
}

pub(crate) fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut u);
    }
    u[6] = (u[6] & 0x0f) | 0x40; // version 4
    u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
    u
}

/// A zeroed, page-aligned buffer of `len` bytes carved out of a slightly larger `Vec`
/// (O_DIRECT needs aligned memory; no `unsafe` allocation needed).
struct AlignedZeros {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedZeros {
    fn new(len: usize) -> Self {
        let buf = vec![0u8; len + PAGE_SIZE];
        let off = buf.as_ptr().align_offset(PAGE_SIZE).min(PAGE_SIZE);
        AlignedZeros { buf, off, len }
    }
    fn get(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

fn write_all_at(file: &File, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, pos) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                buf = &buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes zeros over `[start, end)` in `CHUNK`-sized pieces from [`WRITERS`] threads
/// (one sequential stream keeps a virtio disk at a fraction of its bandwidth), reporting
/// progress from the calling thread.
fn write_zeros_parallel(
    file: &File,
    zeros: &[u8],
    start: u64,
    end: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;
    let next = AtomicU64::new(start);
    let done = AtomicU64::new(start);
    let failed = AtomicBool::new(false);
    let error: Mutex<Option<io::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WRITERS)
            .map(|_| {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let pos = next.fetch_add(CHUNK as u64, Ordering::Relaxed);
                        if pos >= end {
                            break;
                        }
                        let n = (end - pos).min(CHUNK as u64) as usize;
                        if let Err(e) = write_all_at(file, &zeros[..n], pos) {
                            failed.store(true, Ordering::Relaxed);
                            if let Ok(mut slot) = error.lock() {
                                slot.get_or_insert(e);
                            }
                            break;
                        }
                        done.fetch_add(n as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            progress(done.load(Ordering::Relaxed), end);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    if let Some(e) = error.into_inner().ok().flatten() {
        return Err(e);
    }
    progress(end, end);
    Ok(())
}

/// What [`create_swap_file_with`] may replace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MkswapOptions {
    /// Replace an existing file or block device even when it holds no swap signature
    /// (`mkswap(8)`'s behaviour, which destroys whatever was there). Without it only an
    /// empty file or an existing (inactive) swap area is replaced.
    pub force: bool,
}

/// Creates (or replaces) a swap file of `size` bytes; see [`create_swap_file_with`].
pub fn create_swap_file(path: &Path, size: u64) -> Result<(), LayoutError> {
    create_swap_file_with(path, size, MkswapOptions::default(), &mut |_, _| {})
}

/// [`create_swap_file_with`] with the default options and a progress callback.
pub fn create_swap_file_with_progress(
    path: &Path,
    size: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), LayoutError> {
    create_swap_file_with(path, size, MkswapOptions::default(), progress)
}

/// Whether a page 0 carries a swap signature (`SWAPSPACE2`, or the old `SWAP-SPACE`,
/// which [`SwapHeader::parse`] tells apart from having none).
fn has_swap_signature(page: &[u8]) -> bool {
    !matches!(SwapHeader::parse(page), Err(HeaderError::NoSignature | HeaderError::ShortBuffer(_)))
}

/// The file or device `path` names now, checked before anything is opened for writing.
enum Existing {
    None,
    /// A regular file, locked against other swapdio users until it is replaced.
    File {
        _lock: super::guard::SwapFileGuard,
    },
    Device,
}

/// Refuses what must not be replaced, looking only (stat, a read-only open of a regular
/// file, page 0): a FIFO, character device, directory or socket (never opened, never
/// chmod-ed: `claim_swapfile`'s `EINVAL`), an active swap area, a file another swapdio
/// process holds, and data that is not a swap area unless `force`.
fn check_existing(path: &Path, force: bool) -> Result<Existing, LayoutError> {
    use super::guard::SwapFileGuard;
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::None),
        Err(e) => return Err(LayoutError::io("stat", path, e)),
    };
    let ft = meta.file_type();
    if ft.is_block_device() {
        return Ok(Existing::Device);
    }
    if !ft.is_file() {
        return Err(LayoutError::NotSwappable { path: path.to_path_buf() });
    }
    if super::procfs::is_active_swap(super::procfs::SwapId::of(&meta)) {
        return Err(LayoutError::ActiveSwap { path: path.to_path_buf() });
    }
    let guard = SwapFileGuard::acquire(path)?;
    if meta.len() > 0 && !force && !has_swap_signature(&super::layout::read_header(path)?) {
        return Err(LayoutError::NotSwapArea { path: path.to_path_buf() });
    }
    Ok(Existing::File { _lock: guard })
}

/// `statvfs` free bytes for an unprivileged writer (`f_bavail * f_frsize`).
fn free_bytes(dir: &Path) -> io::Result<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `statvfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a live, writable `struct statvfs`.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // fsblkcnt_t and c_ulong are u32 on some targets
    Ok(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

/// A new file being formatted; removed on drop unless [`Staged::install`] moved it
/// into place, so a failed or interrupted attempt leaves nothing behind.
struct Staged {
    file: File,
    /// The name of a named temporary file (`None`: an `O_TMPFILE` file, no name yet).
    name: Option<std::path::PathBuf>,
}

/// The hidden name of the staging file for `target` made by process `pid`.
fn staging_name(dir: &Path, target: &Path, pid: u32) -> std::path::PathBuf {
    let base = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.join(format!(".{base}.swapdio-{pid}.tmp"))
}

/// Removes staging files for `target` in `dir` that killed mkswap runs left (their
/// process is gone).
fn remove_stale_staging(dir: &Path, target: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let base = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{base}.swapdio-");
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(&prefix)?.strip_suffix(".tmp")?.parse::<i32>().ok());
        if pid.is_some_and(|p| !super::guard::process_alive(p)) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Staged {
    /// A new, empty, mode-0600 file in `dir`: an anonymous `O_TMPFILE` file where the
    /// filesystem has them (it vanishes with the process, even after `kill -9`), else
    /// a hidden named file next to the target.
    fn new(dir: &Path, target: &Path) -> io::Result<Staged> {
        let tmp = OpenOptions::new().read(true).write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(dir);
        match tmp {
            Ok(file) => return Ok(Staged { file, name: None }),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {}
            Err(e) => return Err(e),
        }
        let name = staging_name(dir, target, std::process::id());
        let file = OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&name)?;
        Ok(Staged { file, name: Some(name) })
    }

    /// Moves the finished file to `target` (replacing what is there in one `rename`).
    fn install(mut self, target: &Path) -> io::Result<()> {
        let name = match self.name.take() {
            Some(n) => n,
            None => {
                let dir = target.parent().unwrap_or(Path::new("."));
                let n = staging_name(dir, target, std::process::id());
                let from = std::ffi::CString::new(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                let to = std::ffi::CString::new(n.as_os_str().as_encoded_bytes())
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                // SAFETY: two valid NUL-terminated paths; no other memory is passed.
                if unsafe {
                    libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW)
                } < 0
                {
                    return Err(io::Error::last_os_error());
                }
                n
            }
        };
        if let Err(e) = std::fs::rename(&name, target) {
            let _ = std::fs::remove_file(&name);
            return Err(e);
        }
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(n) = &self.name {
            let _ = std::fs::remove_file(n);
        }
    }
}

/// Creates (or replaces) a swap file of `size` bytes the right way, calling
/// `progress(bytes_written, size)` as the zeros go out. Nothing that exists is touched
/// until the new file is complete:
///
/// 1. refuse bad sizes ([`validate_size`]); look at what `path` is without changing
///    it: anything but a regular file or block device, an active swap area, a file
///    another swapdio process holds, or data without a swap signature (unless
///    [`MkswapOptions::force`]) is refused;
/// 2. a block device gets a header only ([`format_swap_device`]);
/// 3. refuse tmpfs (no extent map: the kernel cannot swap on it), filesystems without
///    `read_folio` (overlayfs, proc, sysfs, ...) and too little free space (`statvfs`)
///    before writing anything;
/// 4. format a new mode-0600 file in the same directory ([`format_swap_file`]: NOCOW on
///    btrfs, `fallocate`, zeros, header, `fsync`), anonymous (`O_TMPFILE`) where
///    possible, so a failure or a `kill -9` leaves nothing behind;
/// 5. only then move it over `path` with one `rename` (the old file, if any, stays
///    intact until that moment).
pub fn create_swap_file_with(
    path: &Path,
    size: u64,
    opts: MkswapOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), LayoutError> {
    validate_size(size)?;
    // `f/` names a directory: open(2) with O_CREAT says EISDIR, before anything is written.
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") && !path.is_dir() {
        return Err(LayoutError::io("create", path, io::Error::from_raw_os_error(libc::EISDIR)));
    }
    // A symlink is followed: the file it names is what gets replaced.
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)
            .map_err(|e| LayoutError::io("resolve the symbolic link (its target must exist)", path, e))?,
        _ => path.to_path_buf(),
    };
    let existing = check_existing(&target, opts.force)?;
    if let Existing::Device = existing {
        return format_swap_device(&target, size, opts.force);
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    remove_stale_staging(&dir, &target);
    check_room(&dir, &target, size)?;
    let staged = Staged::new(&dir, &target).map_err(|e| LayoutError::io("create", &target, e))?;
    format_swap_file(&staged.file, &target, size, progress)?;
    staged.install(&target).map_err(|e| LayoutError::io("rename into place", &target, e))?;
    drop(existing);
    Ok(())
}

/// Refuses a directory whose filesystem cannot hold a swap file of `size` bytes, before
/// anything is written: tmpfs (no extent map, the kernel cannot swap on it) and too
/// little free space (`statvfs`). `target` names the file in errors.
fn check_room(dir: &Path, target: &Path, size: u64) -> Result<(), LayoutError> {
    let dir_file = File::open(dir).map_err(|e| LayoutError::io("open directory", dir, e))?;
    let fs = fs_kind(&dir_file).map_err(|e| LayoutError::io("fstatfs", dir, e))?;
    if fs == FsKind::Tmpfs {
        return Err(LayoutError::NoExtentMap { path: target.to_path_buf(), fs });
    }
    if !fs.has_read_folio() {
        return Err(LayoutError::NoReadFolio { path: target.to_path_buf(), fs });
    }
    let available = free_bytes(dir).map_err(|e| LayoutError::io("statvfs", dir, e))?;
    if available < size {
        return Err(LayoutError::NoSpace { path: target.to_path_buf(), needed: size, available });
    }
    Ok(())
}

/// Creates an anonymous swap file of `size` bytes in `dir` and returns it open: an
/// `O_TMPFILE` file (or, where the filesystem has none, a file unlinked right after it
/// is created, before it is formatted). It has no name, so it cannot outlive the
/// process holding it, whatever ends that process; `/proc/<pid>/fd/<n>` opens it again.
/// The same checks and format as [`create_swap_file_with`].
pub fn create_anonymous_swap_file(
    dir: &Path,
    size: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<File, LayoutError> {
    validate_size(size)?;
    let target = dir.join("(anonymous swap file)");
    check_room(dir, &target, size)?;
    let mut staged = Staged::new(dir, &target).map_err(|e| LayoutError::io("create", &target, e))?;
    if let Some(name) = staged.name.take() {
        std::fs::remove_file(&name).map_err(|e| LayoutError::io("unlink", &name, e))?;
    }
    format_swap_file(&staged.file, &target, size, progress)?;
    staged.file.try_clone().map_err(|e| LayoutError::io("dup", &target, e))
}

/// Writes a swap header for `size` bytes at the start of a block device: opened with
/// `O_EXCL`, so a mounted or swapped-on device is refused (`EBUSY`, the kernel's own
/// claim); a device smaller than `size`, or holding data without a swap signature
/// (unless `force`), is refused before anything is written. The size comes from the
/// device (no `ftruncate`, which a block device refuses with `EINVAL`).
pub fn format_swap_device(path: &Path, size: u64, force: bool) -> Result<(), LayoutError> {
    use std::io::{Seek, SeekFrom};
    let pages = validate_size(size)?;
    let io = |op: &'static str| move |e: io::Error| LayoutError::io(op, path, e);
    let mut dev =
        OpenOptions::new().read(true).write(true).custom_flags(libc::O_EXCL).open(path).map_err(io("open O_EXCL"))?;
    let device_size = dev.seek(SeekFrom::End(0)).map_err(io("size (seek to end)"))?;
    if device_size < size {
        return Err(LayoutError::DeviceTooSmall { path: path.to_path_buf(), size, device_size });
    }
    let mut page = vec![0u8; PAGE_SIZE];
    read_all_at(&dev, &mut page, 0).map_err(io("read page 0"))?;
    if !force && !has_swap_signature(&page) {
        return Err(LayoutError::NotSwapArea { path: path.to_path_buf() });
    }
    let header = SwapHeader::new(pages, random_uuid(), [0; 16]).map_err(|_| LayoutError::TooSmall { size })?;
    page.fill(0);
    header.write(&mut page).map_err(|_| LayoutError::TooSmall { size })?;
    write_all_at(&dev, &page, 0).map_err(io("write header"))?;
    dev.sync_all().map_err(io("fsync"))?;
    Ok(())
}

fn read_all_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, pos) {
            Ok(0) => break,
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Formats an open, empty regular file as a swap file of `size` bytes (`path` names it
/// in errors):
///
/// 1. on btrfs set NOCOW while empty (`btrfs_swap_activate` refuses COW files);
/// 2. `fallocate` the whole size (one allocation request: few, large extents);
/// 3. write zeros over it with large page-aligned O_DIRECT writes from a few threads
///    (buffered if the filesystem refuses O_DIRECT), so every extent is written, not
///    unwritten;
/// 4. write the `SWAPSPACE2` header page (`last_page = pages - 1`, random UUID);
/// 5. `fsync`, so swapon finds nothing dirty.
pub fn format_swap_file(
    file: &File,
    path: &Path,
    size: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), LayoutError> {
    let pages = validate_size(size)?;
    let io = |op: &'static str| move |e: io::Error| LayoutError::io(op, path, e);
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("chmod 0600"))?;
    if fs_kind(file).map_err(io("fstatfs"))? == FsKind::Btrfs {
        let flags = inode_flags(file).map_err(io("FS_IOC_GETFLAGS"))?;
        set_inode_flags(file, flags | FS_NOCOW_FL).map_err(io("FS_IOC_SETFLAGS (NOCOW)"))?;
    }
    allocate(file, 0, size).map_err(io("fallocate"))?;
    file.set_len(size).map_err(io("ftruncate"))?;

    // The same inode again with O_DIRECT (through /proc, so anonymous files work too).
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok();
    let mut zeros = AlignedZeros::new(CHUNK.min(size as usize));
    progress(0, size);
    // The first chunk decides between O_DIRECT and buffered (a filesystem without
    // O_DIRECT answers EINVAL); the rest goes out from several writers at once.
    let first = (size - PAGE).min(CHUNK as u64) as usize;
    let mut writer: &File = direct.as_ref().unwrap_or(file);
    if let Err(e) = write_all_at(writer, &zeros.get()[..first], PAGE) {
        if direct.is_none() || e.raw_os_error() != Some(libc::EINVAL) {
            return Err(LayoutError::io("write zeros", path, e));
        }
        writer = file;
        write_all_at(writer, &zeros.get()[..first], PAGE).map_err(io("write zeros"))?;
    }
    progress(PAGE + first as u64, size);
    write_zeros_parallel(writer, zeros.get(), PAGE + first as u64, size, progress).map_err(io("write zeros"))?;

    let header = SwapHeader::new(pages, random_uuid(), [0; 16]).map_err(|_| LayoutError::TooSmall { size })?;
    let page = &mut zeros.get_mut()[..PAGE_SIZE];
    page.fill(0);
    header.write(page).map_err(|_| LayoutError::TooSmall { size })?;
    write_all_at(writer, &zeros.get()[..PAGE_SIZE], 0).map_err(io("write header"))?;
    file.sync_all().map_err(io("fsync"))?;
    progress(size, size);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkswap_size_suffixes_are_binary() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("1.5G").is_err());
        for decimal in ["1KB", "1MB", "1gb", "1TB"] {
            assert!(parse_size(decimal).unwrap_err().contains("ambiguous"), "{decimal}");
        }
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn mkswap_refuses_fewer_than_two_pages_and_partial_pages() {
        assert!(matches!(validate_size(0), Err(LayoutError::TooSmall { size: 0 })));
        assert!(matches!(validate_size(PAGE), Err(LayoutError::TooSmall { .. })));
        assert!(matches!(validate_size(2 * PAGE + 1), Err(LayoutError::NotPageMultiple { .. })));
        assert_eq!(validate_size(2 * PAGE).unwrap(), 2);
        assert!(matches!(validate_size((u64::from(u32::MAX) + 2) * PAGE), Err(LayoutError::TooLarge { .. })));
    }

    #[test]
    fn mkswap_file_is_0600_written_and_has_a_valid_header() {
        let dir = std::env::temp_dir().join(format!("swapdio-mkswap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("swap");
        let mut calls = 0;
        match create_swap_file_with_progress(&path, 10 * PAGE, &mut |done, total| {
            assert!(done <= total);
            calls += 1;
        }) {
            Err(LayoutError::NoExtentMap { .. }) => {
                println!("SKIP: {} is on tmpfs", dir.display());
                std::fs::remove_dir_all(&dir).unwrap();
                return;
            }
            r => r.unwrap(),
        }
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 10 * PAGE);
        let page = super::super::layout::read_header(&path).unwrap();
        let h = SwapHeader::parse(&page).unwrap();
        assert_eq!(h.last_page, 9);
        assert_eq!(h.validate(meta.len(), Default::default()), Ok(10));
        assert!(calls >= 2);
        // A staging file a killed run left (its process is gone) is removed.
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id();
            c.wait().unwrap();
            pid
        };
        std::fs::write(staging_name(&dir, &path, dead), b"left by a killed mkswap").unwrap();
        // An existing swap area is replaced without force.
        create_swap_file(&path, 12 * PAGE).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 12 * PAGE);
        // Nothing but the swap file is left in the directory (no staging file).
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mkswap_refuses_to_replace_data_that_is_not_a_swap_area_unless_forced() {
        let dir = std::env::temp_dir().join(format!("swapdio-mkswap-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("precious.txt");
        std::fs::write(&path, b"old contents").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = create_swap_file(&path, 10 * PAGE).unwrap_err();
        assert!(matches!(err, LayoutError::NotSwapArea { .. }), "{err}");
        assert_eq!(err.errno().0, libc::EEXIST);
        // Untouched: contents and mode.
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        // Too big to fit: refused before anything is written, even when forced.
        let force = MkswapOptions { force: true };
        let huge = 1u64 << 43;
        match create_swap_file_with(&path, huge, force, &mut |_, _| {}) {
            Err(LayoutError::NoSpace { needed, .. }) => assert_eq!(needed, huge),
            Err(LayoutError::NoExtentMap { .. }) => println!("SKIP (forced part): tmpfs"),
            other => panic!("expected NoSpace, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
