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
use crate::header::SwapHeader;
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

/// Parses a size with an optional binary suffix: `4096`, `64K`, `512M`, `2G`, `1T`
/// (also `KiB`/`MB`-style spellings; all powers of 1024, as `mkswap` and `fallocate -l`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 =
        num.parse().map_err(|_| format!("invalid size {s:?}: expected a number with an optional K/M/G/T suffix"))?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
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

/// Creates (or replaces) a swap file of `size` bytes; see [`create_swap_file_with_progress`].
pub fn create_swap_file(path: &Path, size: u64) -> Result<(), LayoutError> {
    create_swap_file_with_progress(path, size, &mut |_, _| {})
}

/// Creates (or replaces) a swap file of `size` bytes the right way, calling
/// `progress(bytes_written, size)` as the zeros go out:
///
/// 1. refuse bad sizes ([`validate_size`]) and a path that is an active swap area;
/// 2. create it with mode 0600 (swapon warns about anything else), truncate to 0;
/// 3. on btrfs set NOCOW while empty (`btrfs_swap_activate` refuses COW files);
/// 4. `fallocate` the whole size (one allocation request: few, large extents);
/// 5. write zeros over it with large page-aligned O_DIRECT writes from a few threads
///    (buffered if the filesystem refuses O_DIRECT), so every extent is written, not
///    unwritten;
/// 6. write the `SWAPSPACE2` header page (`last_page = pages - 1`, random UUID);
/// 7. `fsync`, so swapon finds nothing dirty.
pub fn create_swap_file_with_progress(
    path: &Path,
    size: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), LayoutError> {
    let pages = validate_size(size)?;
    if let Ok(swaps) = super::layout::proc_swaps() {
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            let active = swaps.iter().any(|(p, _)| {
                std::fs::metadata(p).map(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino())).unwrap_or(false)
            });
            if active {
                return Err(LayoutError::ActiveSwap { path: path.to_path_buf() });
            }
        }
    }
    let io = |op: &'static str| move |e: io::Error| LayoutError::io(op, path, e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create"))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("chmod 0600"))?;
    if fs_kind(&file).map_err(io("fstatfs"))? == FsKind::Btrfs {
        let flags = inode_flags(&file).map_err(io("FS_IOC_GETFLAGS"))?;
        set_inode_flags(&file, flags | FS_NOCOW_FL).map_err(io("FS_IOC_SETFLAGS (NOCOW)"))?;
    }
    allocate(&file, 0, size).map_err(io("fallocate"))?;
    file.set_len(size).map_err(io("ftruncate"))?;

    let direct = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok();
    let mut zeros = AlignedZeros::new(CHUNK.min(size as usize));
    progress(0, size);
    // The first chunk decides between O_DIRECT and buffered (a filesystem without
    // O_DIRECT answers EINVAL); the rest goes out from several writers at once.
    let first = (size - PAGE).min(CHUNK as u64) as usize;
    let mut writer: &File = direct.as_ref().unwrap_or(&file);
    if let Err(e) = write_all_at(writer, &zeros.get()[..first], PAGE) {
        if direct.is_none() || e.raw_os_error() != Some(libc::EINVAL) {
            return Err(LayoutError::io("write zeros", path, e));
        }
        writer = &file;
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
        std::fs::write(&path, b"old contents").unwrap();
        let mut calls = 0;
        create_swap_file_with_progress(&path, 10 * PAGE, &mut |done, total| {
            assert!(done <= total);
            calls += 1;
        })
        .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 10 * PAGE);
        let page = super::super::layout::read_header(&path).unwrap();
        let h = SwapHeader::parse(&page).unwrap();
        assert_eq!(h.last_page, 9);
        assert_eq!(h.validate(meta.len(), Default::default()), Ok(10));
        assert!(calls >= 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
