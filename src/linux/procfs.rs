//! What `/proc` says about swap areas and mounts, read as bytes.
//!
//! `/proc/swaps` and `/proc/self/mountinfo` print paths with the kernel's octal escapes
//! (`seq_file_path` / `mangle_path`: space, tab, newline and backslash as `\ooo`) and
//! otherwise as raw bytes, which need not be UTF-8. Both are parsed as bytes here, so one
//! odd name cannot hide the others, and swap areas are compared by device and inode
//! (block devices by `st_rdev`), not by spelling.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

/// Undoes the octal escapes (`\040` for space, ...) that `/proc/swaps` and
/// `/proc/self/mountinfo` apply to paths. Bytes that are not an escape stay as they are.
pub fn unescape_proc_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let esc = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match esc {
            Some(d) => {
                let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// [`unescape_proc_bytes`] as a path.
pub fn unescape_proc_path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape_proc_bytes(b)))
}

/// Splits a line into fields separated by runs of spaces or tabs.
fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|c| *c == b' ' || *c == b'\t').filter(|f| !f.is_empty())
}

/// Parses the bytes of `/proc/swaps` (`Filename Type Size Used Priority`, header line
/// skipped): `(path, size in KiB)` per area, paths unescaped. A line that does not parse
/// is skipped without affecting the others.
pub fn parse_proc_swaps(text: &[u8]) -> Vec<(PathBuf, u64)> {
    text.split(|c| *c == b'\n')
        .skip(1)
        .filter_map(|line| {
            let mut it = fields(line);
            let name = it.next()?;
            let _ty = it.next()?;
            let size = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
            Some((unescape_proc_path(name), size))
        })
        .collect()
}

/// The active kernel swap areas: `(path, size in KiB)` for each line of `/proc/swaps`.
pub fn proc_swaps() -> io::Result<Vec<(PathBuf, u64)>> {
    Ok(parse_proc_swaps(&std::fs::read("/proc/swaps")?))
}

/// Identity of a swap area: a file by `(st_dev, st_ino)`, a block device by `st_rdev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwapId {
    /// A regular file.
    File {
        /// `st_dev`.
        dev: u64,
        /// `st_ino`.
        ino: u64,
    },
    /// A block device.
    Device {
        /// `st_rdev`.
        rdev: u64,
    },
}

impl SwapId {
    /// The identity of what `meta` describes.
    pub fn of(meta: &std::fs::Metadata) -> SwapId {
        if meta.file_type().is_block_device() {
            SwapId::Device { rdev: meta.rdev() }
        } else {
            SwapId::File { dev: meta.dev(), ino: meta.ino() }
        }
    }
}

/// Whether `id` is an active kernel swap area: every `/proc/swaps` entry is `stat`ed and
/// compared by identity (a renamed or differently spelled path still matches).
pub fn is_active_swap(id: SwapId) -> bool {
    let Ok(swaps) = proc_swaps() else { return false };
    swaps.iter().any(|(p, _)| std::fs::metadata(p).map(|m| SwapId::of(&m) == id).unwrap_or(false))
}

/// One line of `/proc/self/mountinfo` (`proc(5)`), the fields swapon's outcome depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount ID (field 1; `statx`'s `stx_mnt_id`).
    pub mount_id: u64,
    /// `major:minor` of the filesystem's device (field 3), as a `dev_t`.
    pub dev: u64,
    /// Mount point, unescaped (field 5).
    pub mount_point: PathBuf,
    /// Per-mount options (field 6), e.g. `ro,nosuid`.
    pub mount_options: String,
    /// Filesystem type after the `-` separator.
    pub fs_type: String,
    /// Mount source after the filesystem type.
    pub source: PathBuf,
    /// Superblock options (the last field), e.g. `rw,errors=remount-ro`.
    pub super_options: String,
}

impl MountInfo {
    /// The mount itself is read-only (`MNT_READONLY`, e.g. a read-only bind mount).
    pub fn mount_read_only(&self) -> bool {
        self.mount_options.split(',').any(|o| o == "ro")
    }

    /// The filesystem is read-only (`SB_RDONLY`).
    pub fn super_read_only(&self) -> bool {
        self.super_options.split(',').any(|o| o == "ro")
    }
}

/// Parses the bytes of `/proc/self/mountinfo`; lines that do not parse are skipped.
pub fn parse_mountinfo(text: &[u8]) -> Vec<MountInfo> {
    text.split(|c| *c == b'\n')
        .filter_map(|line| {
            let f: Vec<&[u8]> = fields(line).collect();
            let sep = f.iter().position(|x| *x == b"-")?;
            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
            let (ma, mi) = std::str::from_utf8(f.get(2)?).ok()?.split_once(':')?;
            let (ma, mi): (u64, u64) = (ma.parse().ok()?, mi.parse().ok()?);
            Some(MountInfo {
                mount_id: num(f.first()?)?,
                dev: libc::makedev(ma as u32, mi as u32),
                mount_point: unescape_proc_path(f.get(4)?),
                mount_options: s(f.get(5)?),
                fs_type: s(f.get(sep + 1)?),
                source: unescape_proc_path(f.get(sep + 2)?),
                super_options: s(f.get(sep + 3)?),
            })
        })
        .collect()
}

/// The mounts of this process's mount namespace.
pub fn mounts() -> io::Result<Vec<MountInfo>> {
    Ok(parse_mountinfo(&std::fs::read("/proc/self/mountinfo")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_swaps_is_parsed_as_bytes_with_octal_escapes() {
        let mut text = b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n".to_vec();
        text.extend_from_slice(b"/swap\\040file\tfile\t\t1048572\t\t0\t\t-2\n");
        text.extend_from_slice(b"/bad\xff\xfename\tfile\t8\t0\t-3\n");
        text.extend_from_slice(b"/dev/vdb                                partition\t2048\t0\t-4\n");
        let got = parse_proc_swaps(&text);
        assert_eq!(got.len(), 3, "one non-UTF-8 name must not hide the others: {got:?}");
        assert_eq!(got[0], (PathBuf::from("/swap file"), 1_048_572));
        assert_eq!(got[1].0, PathBuf::from(OsString::from_vec(b"/bad\xff\xfename".to_vec())));
        assert_eq!(got[2], (PathBuf::from("/dev/vdb"), 2048));
    }

    #[test]
    fn octal_escapes_cover_backslash_newline_and_tab() {
        assert_eq!(unescape_proc_bytes(b"a\\134b\\012c\\011d"), b"a\\b\nc\td");
        assert_eq!(unescape_proc_bytes(b"trailing\\04"), b"trailing\\04");
    }

    #[test]
    fn mountinfo_gives_mount_and_superblock_read_only_flags() {
        let text = b"36 35 7:0 / /mnt/a\\040b ro,relatime shared:1 - ext4 /dev/loop0 rw,errors=remount-ro\n\
                     37 35 0:51 / /tmp rw - tmpfs tmpfs rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].mount_id, m[0].dev, m[0].mount_point.to_str()), (36, libc::makedev(7, 0), Some("/mnt/a b")));
        assert!(m[0].mount_read_only() && !m[0].super_read_only());
        assert_eq!((m[1].fs_type.as_str(), m[1].mount_read_only()), ("tmpfs", false));
    }
}
