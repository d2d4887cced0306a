//! What the cases are made of: swap files built in every way the rules tell apart
//! (written, fallocated, sparse, fragmented, misaligned, reflinked, ...) and loop
//! devices with a given header or partition table.

use crate::harness::scratch;
use crate::support::{run, LoopDev, Scratch};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use swapdio::linux::layout::{inode_flags, set_inode_flags, FS_COMPR_FL, FS_NOCOW_FL};
use swapdio::linux::mkswap::{allocate, create_swap_file};
use swapdio::{SwapHeader, PAGE_SIZE};

const PAGE: u64 = PAGE_SIZE as u64;

// ---------------------------------------------------------------- devices

/// A loop device over a `pages`-page image whose page 0 is a swap header for all of it.
pub fn block_device(pages: u64) -> Result<(LoopDev, Scratch), String> {
    device_with_header("bdev", pages, &header_page(pages))
}

/// A header page for `last_page` whose bad-page list is `bad` (`nr_badpages` set to
/// `count`, which may exceed the list).
pub fn header_with_bad_pages(last_page: u32, bad: &[u32], count: u32) -> Vec<u8> {
    let mut page = header_page(u64::from(last_page) + 1);
    let h = SwapHeader { last_page, ..SwapHeader::parse(&page).expect("header") };
    h.write(&mut page).expect("write header");
    page[1032..1036].copy_from_slice(&count.to_ne_bytes());
    for (i, b) in bad.iter().enumerate() {
        page[1536 + 4 * i..1540 + 4 * i].copy_from_slice(&b.to_ne_bytes());
    }
    page
}

/// A loop device over a `pages`-page image with `header` in page 0.
pub fn device_with_header(tag: &str, pages: u64, header: &[u8]) -> Result<(LoopDev, Scratch), String> {
    let dir = scratch(tag);
    let img = dir.0.join("image");
    let f = File::create(&img).map_err(|e| e.to_string())?;
    f.set_len(pages * PAGE).map_err(|e| e.to_string())?;
    f.write_all_at(header, 0).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    Ok((LoopDev::attach(&img)?, dir))
}

/// A disk image with an MBR partition table: partition 1 from 1 MiB, `part_mib` long.
pub fn partitioned_disk(tag: &str, disk_mib: u64, part_mib: u64) -> Result<(LoopDev, Scratch), String> {
    let dir = scratch(tag);
    let img = dir.0.join("image");
    let f = File::create(&img).map_err(|e| e.to_string())?;
    f.set_len(disk_mib << 20).map_err(|e| e.to_string())?;
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[4] = 0x83; // Linux
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&((part_mib << 20) as u32 / 512).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    f.write_all_at(&mbr, 0).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    let lo = LoopDev::attach_partscan(&img)?;
    let part = format!("{}p1", lo.0);
    // Kernels without partition-table parsers (no CONFIG_MSDOS_PARTITION) still take the
    // partition by BLKPG, as `addpart` asks.
    if !Path::new(&part).exists() {
        let sectors = ((part_mib << 20) / 512).to_string();
        run("addpart", &[&lo.0, "1", "2048", &sectors])?;
    }
    for _ in 0..50 {
        if Path::new(&part).exists() {
            return Ok((lo, dir));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!("{part} did not appear"))
}

// ---------------------------------------------------------------- files

/// A directory whose new files are NOCOW (btrfs `chattr +C`), so swap files made in it
/// are not copy-on-write.
pub fn nocow_dir(root: &Path) -> PathBuf {
    let nd = root.join("nocow");
    std::fs::create_dir_all(&nd).expect("mkdir");
    let dirf = File::open(&nd).expect("open dir");
    set_inode_flags(&dirf, inode_flags(&dirf).expect("getflags") | FS_NOCOW_FL).expect("chattr +C dir");
    nd
}

/// A new file (mode 0600), truncated.
pub fn create(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(path).expect("create")
}

/// A header page claiming `claimed_pages` pages (a 1-page claim: `last_page = 0`).
pub fn header_page(claimed_pages: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    let h = match SwapHeader::new(claimed_pages, [1; 16], [0; 16]) {
        Ok(h) => h,
        // One page: what a header for a 1-page area would say (`last_page = 0`).
        Err(_) => SwapHeader { last_page: 0, ..SwapHeader::new(2, [1; 16], [0; 16]).expect("header") },
    };
    h.write(&mut page).expect("write header");
    page
}

/// Writes [`header_page`] into page 0 of `path`.
pub fn write_header(path: &Path, claimed_pages: u64) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(&header_page(claimed_pages), 0).expect("header");
    f.sync_all().expect("fsync");
}

/// A swap file written the right way (`swapdio mkswap`).
pub fn written(dir: &Path, name: impl AsRef<std::ffi::OsStr>, pages: u64) -> PathBuf {
    let p = dir.join(name.as_ref());
    create_swap_file(&p, pages * PAGE).expect("mkswap");
    p
}

/// Data written with ordinary writes, no special attributes (COW on btrfs).
pub fn plain_written(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = dir.join(name);
    let f = create(&p);
    f.write_all_at(&vec![0x5a; (pages * PAGE) as usize], 0).expect("write");
    f.write_all_at(&header_page(pages), 0).expect("header");
    f.sync_all().expect("fsync");
    p
}

/// fallocate only (unwritten extents), header page written.
pub fn fallocated(dir: &Path, name: &str, pages: u64, nocow: bool) -> PathBuf {
    let p = dir.join(name);
    let f = create(&p);
    if nocow {
        let fl = inode_flags(&f).expect("getflags");
        set_inode_flags(&f, fl | FS_NOCOW_FL).expect("nocow");
    }
    assert!(allocate(&f, 0, pages * PAGE).expect("fallocate"), "fallocate unsupported");
    f.write_all_at(&header_page(pages), 0).expect("header");
    f.sync_all().expect("fsync");
    p
}

/// Holes: only the header page and one page in the middle are allocated.
pub fn sparse(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = dir.join(name);
    let f = create(&p);
    f.set_len(pages * PAGE).expect("truncate");
    f.write_all_at(&header_page(pages), 0).expect("header");
    f.write_all_at(&[7u8; PAGE_SIZE], pages / 2 * PAGE).expect("write");
    f.sync_all().expect("fsync");
    p
}

/// `pages` pages plus `extra` bytes: the partial tail page is never walked.
pub fn odd_sized(dir: &Path, name: &str, pages: u64, extra: usize) -> PathBuf {
    let p = written(dir, name, pages);
    let f = OpenOptions::new().write(true).open(&p).expect("open");
    f.write_all_at(&vec![3u8; extra], pages * PAGE).expect("tail");
    f.sync_all().expect("fsync");
    p
}

/// The swap file is written in `piece`-byte pieces, each fsynced, alternating with
/// `filler_piece` bytes appended (and fsynced) to another file, after a `pad`-byte file:
/// the allocator interleaves them, so the swap file is fragmented and, when `pad` or
/// `filler_piece` is not a page multiple on a 1 KiB-block filesystem, its extents are
/// not page aligned physically.
pub fn interleaved(dir: &Path, name: &str, pages: u64, piece: usize, pad: usize, filler_piece: usize) -> PathBuf {
    let p = dir.join(name);
    if pad > 0 {
        let padf = create(&dir.join(format!("{name}.pad")));
        padf.write_all_at(&vec![1u8; pad], 0).expect("pad");
        padf.sync_all().expect("fsync");
    }
    let f = create(&p);
    let filler = create(&dir.join(format!("{name}.filler")));
    let total = (pages * PAGE) as usize;
    let hdr = header_page(pages);
    let mut pos = 0usize;
    let mut fpos = 0u64;
    while pos < total {
        let n = piece.min(total - pos);
        let mut buf = vec![0x42u8; n];
        // Page 0 carries the header.
        for (i, b) in buf.iter_mut().enumerate() {
            if pos + i < PAGE_SIZE {
                *b = hdr[pos + i];
            }
        }
        f.write_all_at(&buf, pos as u64).expect("piece");
        f.sync_all().expect("fsync");
        filler.write_all_at(&vec![9u8; filler_piece], fpos).expect("filler");
        filler.sync_all().expect("fsync");
        fpos += filler_piece as u64;
        pos += n;
    }
    p
}

/// A swap file with blocks preallocated past EOF (`fallocate --keep-size`): FIEMAP
/// reports them, the walk must stop at `i_size`.
pub fn prealloc_past_eof(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = written(dir, name, pages);
    let off = (pages * PAGE).to_string();
    let len = (pages * PAGE).to_string();
    run("fallocate", &["--keep-size", "-o", &off, "-l", &len, &p.to_string_lossy()]).expect("fallocate -n");
    File::open(&p).and_then(|f| f.sync_all()).expect("fsync");
    p
}

/// A copy sharing all its blocks with the source (`cp --reflink=always`).
pub fn reflinked(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let src = written(dir, format!("{name}.src"), pages);
    let p = dir.join(name);
    run("cp", &["--reflink=always", &src.to_string_lossy(), &p.to_string_lossy()]).expect("cp --reflink");
    File::open(&p).and_then(|f| f.sync_all()).expect("fsync");
    p
}

/// A file with the compression attribute (`chattr +c`), written.
pub fn compressed(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = dir.join(name);
    let f = create(&p);
    let fl = inode_flags(&f).expect("getflags");
    set_inode_flags(&f, fl | FS_COMPR_FL).expect("chattr +c");
    f.write_all_at(&vec![0u8; (pages * PAGE) as usize], 0).expect("write");
    f.write_all_at(&header_page(pages), 0).expect("header");
    f.sync_all().expect("fsync");
    p
}

/// A NOCOW swap file in a btrfs subvolume that is then snapshotted: its extents are shared.
pub fn snapshotted(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let sub = dir.join(format!("{name}.subvol"));
    run("btrfs", &["subvolume", "create", &sub.to_string_lossy()]).expect("subvolume");
    let p = written(&sub, name, pages);
    let snap = dir.join(format!("{name}.snap"));
    run("btrfs", &["subvolume", "snapshot", &sub.to_string_lossy(), &snap.to_string_lossy()]).expect("snapshot");
    run("sync", &[]).expect("sync");
    p
}

/// `p` with a header claiming `claimed_pages` pages.
pub fn with_header(p: PathBuf, claimed_pages: u64) -> PathBuf {
    write_header(&p, claimed_pages);
    p
}

/// A swap file whose page 0 is zeroed (no `SWAPSPACE2`).
pub fn no_signature(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = written(dir, name, pages);
    let f = OpenOptions::new().write(true).open(&p).expect("open");
    f.write_all_at(&[0u8; PAGE_SIZE], 0).expect("zero header");
    f.sync_all().expect("fsync");
    p
}
