//! Differential tests against the kernel's own swapon.
//!
//! For each case a file is built on a real ext4, xfs or btrfs filesystem (on a loop
//! device over a sparse image), then judged twice: by `swapdio check`'s library path
//! ([`check`], the dry-run swapon) and by the kernel (`swapon(2)`, the size in
//! `/proc/swaps`, `swapoff(2)`). Rule pinned down: **same verdict, same errno when
//! refused, exactly the same usable KiB when accepted** (docs/swap-rules.md §2).
//!
//! Cases cover every rule `check` models: the open-and-claim step (read-only filesystem
//! and bind mount, immutable and append-only files, a running executable, a directory,
//! a FIFO, block devices held by a mount, by another `O_EXCL` opener, by a mounted
//! partition or as btrfs members), filesystems that cannot swap (tmpfs, overlayfs), the
//! legacy bmap path (ntfs-3g over FUSE), btrfs profiles (dup, raid0, raid1), several
//! devices and chunk mapping, and block devices with bad pages and short headers.
//!
//! Needs root, loop devices, `losetup`, `mkfs.ext4`, `mkfs.xfs`, `mkfs.btrfs`/`btrfs`,
//! `mkntfs`/`ntfs-3g`, overlayfs and tmpfs; skips (printing why) what is missing, unless
//! `SWAPDIO_REQUIRE_KDIFF=1` (set in CI), where a skip fails the test. Images live on
//! `/dev/shm` when it exists (the whole run takes about 20-40 s there; minutes on a
//! disk). Everything it creates is undone by Drop guards (swapoff, kill, chattr -ia,
//! umount, losetup -d, rm), also when a step panics.

use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use swapdio::linux::check::{check, swapoff, swapon};
use swapdio::linux::claim::{FS_APPEND_FL, FS_IMMUTABLE_FL};
use swapdio::linux::layout::{inode_flags, proc_swaps, set_inode_flags, FS_COMPR_FL, FS_NOCOW_FL};
use swapdio::linux::mkswap::{allocate, create_swap_file};
use swapdio::{Errno, ModeRequest, SwapHeader, PAGE_SIZE};

const PAGE: u64 = PAGE_SIZE as u64;

// ---------------------------------------------------------------- environment

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------- guards

/// Where images live: `/dev/shm` when it exists (a memory-backed image makes the loop
/// device's flushes free, which is most of this test's runtime), else the temp dir.
fn scratch_base() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if std::env::var_os("SWAPDIO_KDIFF_DIR").is_none() && shm.is_dir() {
        return shm;
    }
    std::env::var_os("SWAPDIO_KDIFF_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = scratch_base().join(format!("swapdio-kdiff-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loop device over an image file, detached on drop.
struct LoopDev(String);
impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = run("losetup", &["-d", &self.0]);
    }
}

/// A mounted filesystem, unmounted on drop (lazily if something still holds it).
struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let p = self.0.to_string_lossy().to_string();
        if run("umount", &[&p]).is_err() {
            let _ = run("umount", &["-l", &p]);
        }
    }
}

/// An active kernel swap area, swapped off on drop.
struct ActiveSwap(PathBuf);
impl Drop for ActiveSwap {
    fn drop(&mut self) {
        let _ = swapoff(&self.0);
    }
}

/// A filesystem on a loop device. Field order is drop order: unmount, then detach,
/// then remove the image.
struct TestFs {
    mount: Mount,
    _loop: LoopDev,
    _dir: TempDir,
}

impl TestFs {
    fn root(&self) -> &Path {
        &self.mount.0
    }
}

/// A loop device over a `pages`-page image whose page 0 is a swap header for all of it.
fn block_device(pages: u64) -> Result<(LoopDev, TempDir), String> {
    let dir = TempDir::new("bdev");
    let img = dir.0.join("image");
    let f = File::create(&img).map_err(|e| e.to_string())?;
    f.set_len(pages * PAGE).map_err(|e| e.to_string())?;
    f.write_all_at(&header_page(pages), 0).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    let dev = run("losetup", &["--find", "--show", &img.to_string_lossy()])?;
    Ok((LoopDev(dev), dir))
}

fn make_fs(tag: &str, image_mib: u64, mkfs: &str, mkfs_args: &[&str]) -> Result<TestFs, String> {
    let dir = TempDir::new(tag);
    let img = dir.0.join("image");
    File::create(&img).and_then(|f| f.set_len(image_mib << 20)).map_err(|e| format!("image: {e}"))?;
    let dev = run("losetup", &["--find", "--show", &img.to_string_lossy()])?;
    let lo = LoopDev(dev.clone());
    let mut args: Vec<&str> = mkfs_args.to_vec();
    args.push(&dev);
    run(mkfs, &args)?;
    let mnt = dir.0.join("mnt");
    std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    run("mount", &[&dev, &mnt.to_string_lossy()])?;
    Ok(TestFs { mount: Mount(mnt), _loop: lo, _dir: dir })
}

/// A filesystem over `n` loop devices (`mkfs` gets them all), mounted from the first.
struct MultiFs {
    mount: Mount,
    loops: Vec<LoopDev>,
    _dir: TempDir,
}

fn make_multi_fs(tag: &str, n: usize, image_mib: u64, mkfs: &str, mkfs_args: &[&str]) -> Result<MultiFs, String> {
    let dir = TempDir::new(tag);
    let mut loops = Vec::new();
    for i in 0..n {
        let img = dir.0.join(format!("image{i}"));
        File::create(&img).and_then(|f| f.set_len(image_mib << 20)).map_err(|e| format!("image: {e}"))?;
        loops.push(LoopDev(run("losetup", &["--find", "--show", &img.to_string_lossy()])?));
    }
    let mut args: Vec<&str> = mkfs_args.to_vec();
    args.extend(loops.iter().map(|l| l.0.as_str()));
    run(mkfs, &args)?;
    if mkfs == "mkfs.btrfs" {
        let _ = run("btrfs", &["device", "scan"]);
    }
    let mnt = dir.0.join("mnt");
    std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    run("mount", &[&loops[0].0, &mnt.to_string_lossy()])?;
    Ok(MultiFs { mount: Mount(mnt), loops, _dir: dir })
}

/// A directory whose new files are NOCOW (btrfs `chattr +C`), so swap files made in it
/// are not copy-on-write.
fn nocow_dir(root: &Path) -> PathBuf {
    let nd = root.join("nocow");
    std::fs::create_dir_all(&nd).expect("mkdir");
    let dirf = File::open(&nd).expect("open dir");
    set_inode_flags(&dirf, inode_flags(&dirf).expect("getflags") | FS_NOCOW_FL).expect("chattr +C dir");
    nd
}

/// A process running a copy of `sleep` stored at a path, killed on drop.
struct Running(std::process::Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `chattr` flags set on a file, cleared on drop (so the image can be cleaned up).
struct Chattr(PathBuf, u32);
impl Drop for Chattr {
    fn drop(&mut self) {
        if let Ok(f) = File::open(&self.0) {
            if let Ok(fl) = inode_flags(&f) {
                let _ = set_inode_flags(&f, fl & !self.1);
            }
        }
    }
}

fn chattr(p: &Path, flag: u32) -> Chattr {
    let f = File::open(p).expect("open");
    set_inode_flags(&f, inode_flags(&f).expect("getflags") | flag).expect("chattr");
    Chattr(p.to_path_buf(), flag)
}

/// A header page for `last_page` whose bad-page list is `bad` (`nr_badpages` set to
/// `count`, which may exceed the list).
fn header_with_bad_pages(last_page: u32, bad: &[u32], count: u32) -> Vec<u8> {
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
fn device_with_header(tag: &str, pages: u64, header: &[u8]) -> Result<(LoopDev, TempDir), String> {
    let dir = TempDir::new(tag);
    let img = dir.0.join("image");
    let f = File::create(&img).map_err(|e| e.to_string())?;
    f.set_len(pages * PAGE).map_err(|e| e.to_string())?;
    f.write_all_at(header, 0).map_err(|e| e.to_string())?;
    f.sync_all().map_err(|e| e.to_string())?;
    let dev = run("losetup", &["--find", "--show", &img.to_string_lossy()])?;
    Ok((LoopDev(dev), dir))
}

/// A disk image with an MBR partition table: partition 1 from 1 MiB, `part_mib` long.
fn partitioned_disk(tag: &str, disk_mib: u64, part_mib: u64) -> Result<(LoopDev, TempDir), String> {
    let dir = TempDir::new(tag);
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
    let dev = run("losetup", &["--find", "--show", "--partscan", &img.to_string_lossy()])?;
    let lo = LoopDev(dev);
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

// ---------------------------------------------------------------- file builders

fn create(path: &Path) -> File {
    OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(0o600).open(path).expect("create")
}

fn header_page(claimed_pages: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE];
    let h = match SwapHeader::new(claimed_pages, [1; 16], [0; 16]) {
        Ok(h) => h,
        // One page: what a header for a 1-page area would say (`last_page = 0`).
        Err(_) => SwapHeader { last_page: 0, ..SwapHeader::new(2, [1; 16], [0; 16]).expect("header") },
    };
    h.write(&mut page).expect("write header");
    page
}

fn write_header(path: &Path, claimed_pages: u64) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    f.write_all_at(&header_page(claimed_pages), 0).expect("header");
    f.sync_all().expect("fsync");
}

/// A swap file written the right way (`swapdio mkswap`).
fn written(dir: &Path, name: impl AsRef<std::ffi::OsStr>, pages: u64) -> PathBuf {
    let p = dir.join(name.as_ref());
    create_swap_file(&p, pages * PAGE).expect("mkswap");
    p
}

/// Data written with ordinary writes, no special attributes (COW on btrfs).
fn plain_written(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = dir.join(name);
    let f = create(&p);
    f.write_all_at(&vec![0x5a; (pages * PAGE) as usize], 0).expect("write");
    f.write_all_at(&header_page(pages), 0).expect("header");
    f.sync_all().expect("fsync");
    p
}

/// fallocate only (unwritten extents), header page written.
fn fallocated(dir: &Path, name: &str, pages: u64, nocow: bool) -> PathBuf {
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
fn sparse(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = dir.join(name);
    let f = create(&p);
    f.set_len(pages * PAGE).expect("truncate");
    f.write_all_at(&header_page(pages), 0).expect("header");
    f.write_all_at(&[7u8; PAGE_SIZE], pages / 2 * PAGE).expect("write");
    f.sync_all().expect("fsync");
    p
}

/// `pages` pages plus `extra` bytes: the partial tail page is never walked.
fn odd_sized(dir: &Path, name: &str, pages: u64, extra: usize) -> PathBuf {
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
fn interleaved(dir: &Path, name: &str, pages: u64, piece: usize, pad: usize, filler_piece: usize) -> PathBuf {
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
fn prealloc_past_eof(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = written(dir, name, pages);
    let off = (pages * PAGE).to_string();
    let len = (pages * PAGE).to_string();
    run("fallocate", &["--keep-size", "-o", &off, "-l", &len, &p.to_string_lossy()]).expect("fallocate -n");
    File::open(&p).and_then(|f| f.sync_all()).expect("fsync");
    p
}

fn reflinked(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let src = written(dir, format!("{name}.src"), pages);
    let p = dir.join(name);
    run("cp", &["--reflink=always", &src.to_string_lossy(), &p.to_string_lossy()]).expect("cp --reflink");
    File::open(&p).and_then(|f| f.sync_all()).expect("fsync");
    p
}

fn compressed(dir: &Path, name: &str, pages: u64) -> PathBuf {
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
fn snapshotted(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let sub = dir.join(format!("{name}.subvol"));
    run("btrfs", &["subvolume", "create", &sub.to_string_lossy()]).expect("subvolume");
    let p = written(&sub, name, pages);
    let snap = dir.join(format!("{name}.snap"));
    run("btrfs", &["subvolume", "snapshot", &sub.to_string_lossy(), &snap.to_string_lossy()]).expect("snapshot");
    run("sync", &[]).expect("sync");
    p
}

fn with_header(p: PathBuf, claimed_pages: u64) -> PathBuf {
    write_header(&p, claimed_pages);
    p
}

fn no_signature(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = written(dir, name, pages);
    let f = OpenOptions::new().write(true).open(&p).expect("open");
    f.write_all_at(&[0u8; PAGE_SIZE], 0).expect("zero header");
    f.sync_all().expect("fsync");
    p
}

// ---------------------------------------------------------------- comparison

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Usable(u64),
    Refused(Errno),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Usable(k) => write!(f, "{k} KiB"),
            Outcome::Refused(e) => write!(f, "refused {e:?}"),
        }
    }
}

/// `extents:N across:Sk` from the kernel's "Adding ...k swap on PATH." line, if dmesg
/// is readable.
fn kernel_log(path: &Path) -> Option<(u64, u64)> {
    let log = run("dmesg", &[]).ok()?;
    let needle = format!("swap on {}.", path.display());
    let line = log.lines().rev().find(|l| l.contains(&needle))?;
    let field = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some((field("extents:")?, field("across:")?))
}

/// The kernel's verdict: swapon(2), the size in /proc/swaps, swapoff(2).
fn kernel(path: &Path) -> Outcome {
    match swapon(path, 0) {
        Err(e) => Outcome::Refused(e),
        Ok(()) => {
            let guard = ActiveSwap(path.to_path_buf());
            let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let kib = proc_swaps()
                .expect("/proc/swaps")
                .into_iter()
                .find(|(p, _)| *p == canon || p == path)
                .map(|(_, k)| k)
                .expect("swapon succeeded but the file is not in /proc/swaps");
            drop(guard);
            Outcome::Usable(kib)
        }
    }
}

struct Row {
    case: String,
    kernel: Outcome,
    ours: Outcome,
    extents: usize,
    detail: String,
    same_map: bool,
}

fn compare(rows: &mut Vec<Row>, fs: &str, case: &str, path: &Path) {
    let t = Instant::now();
    let rep = check(path, ModeRequest::Auto);
    let t_check = t.elapsed();
    let ours = match &rep.kernel {
        swapdio::linux::check::Verdict::Usable(r) => Outcome::Usable(r.usable_kib()),
        swapdio::linux::check::Verdict::Refused(r) => Outcome::Refused(r.errno),
    };
    let detail = match &rep.kernel {
        swapdio::linux::check::Verdict::Usable(r) => format!(
            "lost misaligned {} too-short {} beyond-header {} tail {}",
            r.lost.misaligned, r.lost.too_short, r.lost.beyond_header, r.lost.file_tail
        ),
        swapdio::linux::check::Verdict::Refused(r) => r.reason.clone(),
    };
    let extents = rep.layout.as_ref().map(|l| l.extents.len()).unwrap_or(0);
    let kernel = kernel(path);
    let t_kernel = t.elapsed() - t_check;
    // Where dmesg tells, the merged extent count and the span must agree too.
    let (map, log) = match (&rep.kernel, kernel_log(path)) {
        (swapdio::linux::check::Verdict::Usable(r), Some(k)) if matches!(kernel, Outcome::Usable(_)) => {
            (Some((r.extents, r.span_pages * 4)), Some(k))
        }
        _ => (None, None),
    };
    let ok = if kernel == ours && map == log { "ok" } else { "MISMATCH" };
    let shape = |m: Option<(u64, u64)>| m.map(|(e, s)| format!("{e}x/{s}k")).unwrap_or_else(|| "-".into());
    let case = format!("{fs}/{case}");
    println!(
        "{case:<34} kernel {:<16} swapdio {:<16} map(kernel/swapdio) {:>10} {:>10}  fiemap {extents:<4} {ok}  ({detail}) [check {t_check:.0?}, swapon {t_kernel:.0?}]",
        kernel.to_string(),
        ours.to_string(),
        shape(log),
        shape(map)
    );
    let detail = if map == log {
        detail
    } else {
        format!("extents/span kernel {} swapdio {}; {detail}", shape(log), shape(map))
    };
    rows.push(Row { case, kernel, ours, extents, detail, same_map: map == log });
}

/// The cases every filesystem gets.
fn common_cases(rows: &mut Vec<Row>, fs: &str, d: &Path) {
    compare(rows, fs, "written-1M", &written(d, "written", 256));
    compare(rows, fs, "fallocated-1M", &fallocated(d, "fallocated", 256, fs.starts_with("btrfs")));
    compare(rows, fs, "sparse", &sparse(d, "sparse", 64));
    compare(rows, fs, "odd-sized-10p+1000", &odd_sized(d, "odd", 10, 1000));
    for pages in [2u64, 9, 10] {
        compare(rows, fs, &format!("tiny-{pages}p"), &written(d, format!("tiny{pages}"), pages));
    }
    compare(rows, fs, "tiny-1p", &with_header(plain_written(d, "tiny1", 1), 1));
    compare(rows, fs, "preallocated-past-eof", &prealloc_past_eof(d, "pastEOF", 64));
    compare(rows, fs, "header-no-signature", &no_signature(d, "nosig", 16));
    compare(rows, fs, "header-longer-than-file", &with_header(written(d, "hlong", 16), 21));
    compare(rows, fs, "header-shorter-than-file", &with_header(written(d, "hshort", 16), 11));
}

fn skip(reason: &str) {
    println!("SKIP kernel_diff: {reason}");
}

/// swapon's open-and-claim step and the filesystems without `read_folio`, on one ext4.
fn claim_cases(rows: &mut Vec<Row>, fs: &TestFs) {
    let d = fs.root();
    let ok = written(d, "ok", 64);
    let imm = written(d, "immutable", 64);
    let _imm = chattr(&imm, FS_IMMUTABLE_FL);
    let app = written(d, "append", 64);
    let _app = chattr(&app, FS_APPEND_FL);
    compare(rows, "claim", "written", &ok);
    compare(rows, "claim", "immutable", &imm);
    compare(rows, "claim", "append-only", &app);
    compare(rows, "claim", "directory", d);
    // An active swap area whose name is not UTF-8 must not hide another active one
    // (/proc/swaps is read as bytes and compared by device and inode).
    {
        let odd = written(d, std::ffi::OsStr::from_bytes(b"odd-\xff-name"), 16);
        swapon(&odd, 0).expect("swapon odd name");
        let _odd = ActiveSwap(odd);
        let active = written(d, "active", 16);
        swapon(&active, 0).expect("swapon");
        let _active = ActiveSwap(active.clone());
        compare(rows, "claim", "active-beside-non-utf8-name", &active);
    }
    compare(rows, "claim", "missing", &d.join("missing"));
    compare(rows, "claim", "char-device", Path::new("/dev/null"));
    let fifo = d.join("fifo");
    run("mkfifo", &[&fifo.to_string_lossy()]).expect("mkfifo");
    compare(rows, "claim", "fifo", &fifo);

    // A running executable: exec denies write access to it (ETXTBSY).
    let exe = d.join("exe");
    std::fs::copy("/bin/sleep", &exe).expect("copy sleep");
    let child = Command::new(&exe).arg("60").spawn().expect("run the copy of sleep");
    let pid = child.id();
    let _running = Running(child);
    let ino = std::fs::metadata(&exe).expect("stat").ino();
    for _ in 0..100 {
        if std::fs::metadata(format!("/proc/{pid}/exe")).map(|m| m.ino()).ok() == Some(ino) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    compare(rows, "claim", "running-executable", &exe);

    // A read-only bind mount: the mount is read-only, the filesystem is not.
    let bind = fs._dir.0.join("bind");
    std::fs::create_dir_all(&bind).expect("mkdir");
    run("mount", &["--bind", &d.to_string_lossy(), &bind.to_string_lossy()]).expect("bind mount");
    let bind_guard = Mount(bind.clone());
    run("mount", &["-o", "remount,bind,ro", &bind.to_string_lossy()]).expect("remount bind ro");
    compare(rows, "claim", "ro-bind/written", &bind.join("ok"));
    compare(rows, "claim", "ro-bind/immutable", &bind.join("immutable"));
    compare(rows, "claim", "ro-bind/append-only", &bind.join("append"));
    drop(bind_guard);

    // A read-only filesystem: EROFS even before the immutable flag.
    run("mount", &["-o", "remount,ro", &d.to_string_lossy()]).expect("remount ro");
    compare(rows, "claim", "ro-fs/written", &ok);
    compare(rows, "claim", "ro-fs/immutable", &imm);
    run("mount", &["-o", "remount,rw", &d.to_string_lossy()]).expect("remount rw");

    // overlayfs has no read_folio: refused, whether the file is in the lower or the upper layer.
    let o = d.join("ovl");
    for sub in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(o.join(sub)).expect("mkdir");
    }
    written(&o.join("lower"), "lower-swap", 64);
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        o.join("lower").display(),
        o.join("upper").display(),
        o.join("work").display()
    );
    match run("mount", &["-t", "overlay", "overlay", "-o", &opts, &o.join("merged").to_string_lossy()]) {
        Ok(_) => {
            let _ovl = Mount(o.join("merged"));
            compare(rows, "overlayfs", "lower-file", &o.join("merged").join("lower-swap"));
            compare(rows, "overlayfs", "upper-file", &plain_written(&o.join("merged"), "upper-swap", 64));
        }
        Err(e) => println!("SKIP overlayfs: {e}"),
    }

    // tmpfs has no read_folio either.
    let t = fs._dir.0.join("tmpfs");
    std::fs::create_dir_all(&t).expect("mkdir");
    run("mount", &["-t", "tmpfs", "-o", "size=16m", "swapdio-kdiff", &t.to_string_lossy()]).expect("mount tmpfs");
    let _tmpfs = Mount(t.clone());
    compare(rows, "tmpfs", "written", &plain_written(&t, "swap", 64));
}

/// Block devices: bad pages, a header smaller than the device, exclusive holders,
/// partitions.
fn block_cases(rows: &mut Vec<Row>, skipped: &mut Vec<String>) {
    let cases: [(&str, u32, &[u32], u32); 7] = [
        ("bad-pages-100-200-300", 16383, &[100, 200, 300], 3),
        ("bad-page-is-last-page", 16383, &[16383], 1),
        ("bad-page-repeated", 16383, &[100, 100], 2),
        ("bad-page-0", 16383, &[0], 1),
        ("bad-page-past-last-page", 16383, &[16384], 1),
        ("too-many-bad-pages", 16383, &[100], 638),
        ("short-header-with-bad-page", 8000, &[100], 1),
    ];
    for (name, last, bad, count) in cases {
        match device_with_header(name, 16384, &header_with_bad_pages(last, bad, count)) {
            Ok((dev, _dir)) => compare(rows, "blockdev", name, Path::new(&dev.0)),
            Err(e) => skipped.push(format!("block device {name}: {e}")),
        }
    }
    // Held with O_EXCL by another opener (here: this test).
    match block_device(1024) {
        Ok((dev, _dir)) => {
            let hold = OpenOptions::new().read(true).custom_flags(libc::O_EXCL).open(&dev.0).expect("O_EXCL open");
            compare(rows, "blockdev", "held-o-excl", Path::new(&dev.0));
            drop(hold);
            compare(rows, "blockdev", "released", Path::new(&dev.0));
        }
        Err(e) => skipped.push(format!("block device: {e}")),
    }
    // A partitioned disk: a mounted partition holds the whole disk too.
    match partitioned_disk("part", 64, 32) {
        Ok((disk, dir)) => {
            let part = format!("{}p1", disk.0);
            run("mkfs.ext4", &["-q", "-F", &part]).expect("mkfs partition");
            let mnt = dir.0.join("mnt");
            std::fs::create_dir_all(&mnt).expect("mkdir");
            run("mount", &[&part, &mnt.to_string_lossy()]).expect("mount partition");
            let m = Mount(mnt);
            compare(rows, "blockdev", "whole-disk-partition-mounted", Path::new(&disk.0));
            compare(rows, "blockdev", "partition-mounted", Path::new(&part));
            drop(m);
            let f = OpenOptions::new().write(true).open(&part).expect("open partition");
            f.write_all_at(&header_page(8192), 0).expect("header");
            f.sync_all().expect("fsync");
            drop(f);
            compare(rows, "blockdev", "partition-with-header", Path::new(&part));
            compare(rows, "blockdev", "whole-disk-partition-table", Path::new(&disk.0));
        }
        Err(e) => skipped.push(format!("partitioned loop device: {e}")),
    }
}

/// ntfs-3g (FUSE, fuseblk): no swap_activate, so the kernel's generic bmap walk.
fn fuse_cases(rows: &mut Vec<Row>, skipped: &mut Vec<String>) {
    if !have("mkntfs") || !have("ntfs-3g") {
        return skipped.push("ntfs-3g: mkntfs/ntfs-3g not installed (apt-get install ntfs-3g fuse3)".into());
    }
    let dir = TempDir::new("ntfs");
    let img = dir.0.join("image");
    if let Err(e) = File::create(&img).and_then(|f| f.set_len(96 << 20)) {
        return skipped.push(format!("ntfs image: {e}"));
    }
    let dev = match run("losetup", &["--find", "--show", &img.to_string_lossy()]) {
        Ok(d) => LoopDev(d),
        Err(e) => return skipped.push(format!("ntfs losetup: {e}")),
    };
    if let Err(e) = run("mkntfs", &["-q", "-F", "-f", &dev.0]) {
        return skipped.push(format!("mkntfs: {e}"));
    }
    let mnt = dir.0.join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    if let Err(e) = run("ntfs-3g", &[&dev.0, &mnt.to_string_lossy()]) {
        return skipped.push(format!("ntfs-3g mount: {e}"));
    }
    let _m = Mount(mnt.clone());
    let d = mnt.as_path();
    compare(rows, "ntfs-3g", "written-1M", &plain_written(d, "written", 256));
    compare(rows, "ntfs-3g", "sparse", &sparse(d, "sparse", 64));
    compare(rows, "ntfs-3g", "tiny-10p", &plain_written(d, "tiny", 10));
    compare(rows, "ntfs-3g", "fragmented", &interleaved(d, "frag", 64, PAGE_SIZE, 0, PAGE_SIZE));
    compare(rows, "ntfs-3g", "header-shorter-than-file", &with_header(plain_written(d, "hshort", 64), 40));
    compare(rows, "ntfs-3g", "header-longer-than-file", &with_header(plain_written(d, "hlong", 16), 21));
    compare(rows, "ntfs-3g", "odd-sized", &{
        let p = plain_written(d, "odd", 10);
        OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &[1u8; 1000]))
            .expect("tail");
        p
    });
}

/// btrfs profiles, several devices, member devices, and files crossing chunks.
fn btrfs_profile_cases(rows: &mut Vec<Row>, skipped: &mut Vec<String>) {
    match make_fs("btrfs-dup", 512, "mkfs.btrfs", &["-q", "-f", "-d", "dup", "-m", "dup"]) {
        Ok(fs) => compare(rows, "btrfs-dup", "nocow-written", &written(&nocow_dir(fs.root()), "s", 64)),
        Err(e) => skipped.push(format!("btrfs dup: {e}")),
    }
    for profile in ["raid0", "raid1"] {
        match make_multi_fs(
            &format!("btrfs-{profile}"),
            2,
            320,
            "mkfs.btrfs",
            &["-q", "-f", "-d", profile, "-m", profile],
        ) {
            Ok(fs) => {
                let fsname = format!("btrfs-{profile}");
                compare(rows, &fsname, "nocow-written", &written(&nocow_dir(&fs.mount.0), "s", 64));
                compare(rows, &fsname, "member-device", Path::new(&fs.loops[1].0));
            }
            Err(e) => skipped.push(format!("btrfs {profile}: {e}")),
        }
    }
    match make_multi_fs("btrfs-multi", 2, 320, "mkfs.btrfs", &["-q", "-f", "-d", "single", "-m", "raid1"]) {
        Ok(fs) => {
            let nd = nocow_dir(&fs.mount.0);
            compare(rows, "btrfs-multi", "small-file", &written(&nd, "small", 256));
            // Larger than a data chunk: chunks alternate between the devices.
            compare(rows, "btrfs-multi", "across-devices-200M", &written(&nd, "big", 51200));
            compare(rows, "btrfs-multi", "member-device", Path::new(&fs.loops[1].0));
        }
        Err(e) => skipped.push(format!("btrfs multi-device: {e}")),
    }
}

#[test]
fn check_agrees_with_kernel_swapon_on_real_filesystems() {
    if !is_root() {
        return skip("needs root (swapon, losetup, mount)");
    }
    if !Path::new("/dev/loop-control").exists() || !have("losetup") {
        return skip("no loop devices (/dev/loop-control or losetup missing)");
    }
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();

    // ext4, 4 KiB blocks.
    if have("mkfs.ext4") {
        match make_fs("ext4", 96, "mkfs.ext4", &["-q", "-F", "-b", "4096"]) {
            Ok(fs) => {
                let d = fs.root();
                common_cases(&mut rows, "ext4", d);
                compare(&mut rows, "ext4", "fragmented", &interleaved(d, "frag", 128, PAGE_SIZE, 0, PAGE_SIZE));
                // An active swap area is refused by both with EBUSY.
                let p = written(d, "busy", 64);
                swapon(&p, 0).expect("swapon busy");
                let _g = ActiveSwap(p.clone());
                compare(&mut rows, "ext4", "already-active", &p);
                // A mounted block device is refused by both with EBUSY.
                compare(&mut rows, "ext4", "mounted-block-device", Path::new(&fs._loop.0));
            }
            Err(e) => skipped.push(format!("ext4: {e}")),
        }
        // ext4, 1 KiB blocks: misaligned layouts.
        match make_fs("ext4-1k", 96, "mkfs.ext4", &["-q", "-F", "-b", "1024"]) {
            Ok(fs) => {
                let d = fs.root();
                common_cases(&mut rows, "ext4-1k", d);
                compare(&mut rows, "ext4-1k", "misaligned-1k-pad", &interleaved(d, "mis", 256, PAGE_SIZE, 1024, 1024));
                compare(
                    &mut rows,
                    "ext4-1k",
                    "misaligned-3k-filler",
                    &interleaved(d, "mis3", 128, PAGE_SIZE, 3072, 3072),
                );
            }
            Err(e) => skipped.push(format!("ext4 1k: {e}")),
        }
    } else {
        skipped.push("ext4: mkfs.ext4 not installed (e2fsprogs)".into());
    }

    // A whole (unmounted) block device with a header: one extent, no trimming.
    match block_device(1024) {
        Ok((dev, _dir)) => compare(&mut rows, "blockdev", "whole-4M", Path::new(&dev.0)),
        Err(e) => skipped.push(format!("block device: {e}")),
    }

    if have("mkfs.xfs") {
        match make_fs("xfs", 320, "mkfs.xfs", &["-q", "-f", "-m", "reflink=1"]) {
            Ok(fs) => {
                let d = fs.root();
                common_cases(&mut rows, "xfs", d);
                compare(&mut rows, "xfs", "fragmented", &interleaved(d, "frag", 128, PAGE_SIZE, 0, PAGE_SIZE));
                compare(&mut rows, "xfs", "reflinked", &reflinked(d, "reflink", 64));
                // Once the other owner is deleted the blocks are no longer shared (xfs
                // flushes deferred inode work before the walk; so must the reporter).
                let p = reflinked(d, "reflink-orphan", 64);
                std::fs::remove_file(d.join("reflink-orphan.src")).expect("rm");
                compare(&mut rows, "xfs", "reflink-source-deleted", &p);
            }
            Err(e) => skipped.push(format!("xfs: {e}")),
        }
        match make_fs("xfs-1k", 320, "mkfs.xfs", &["-q", "-f", "-b", "size=1024"]) {
            Ok(fs) => {
                let d = fs.root();
                common_cases(&mut rows, "xfs-1k", d);
                compare(&mut rows, "xfs-1k", "misaligned-1k-pad", &interleaved(d, "mis", 256, PAGE_SIZE, 1024, 1024));
                compare(
                    &mut rows,
                    "xfs-1k",
                    "misaligned-3k-filler",
                    &interleaved(d, "mis3", 128, PAGE_SIZE, 3072, 3072),
                );
                // docs/swap-rules.md §2: 16 MiB in misaligned 4 KiB pieces on 1 KiB xfs.
                compare(&mut rows, "xfs-1k", "misaligned-16M", &interleaved(d, "mis16", 4096, PAGE_SIZE, 1024, 1024));
            }
            Err(e) => skipped.push(format!("xfs 1k: {e}")),
        }
    } else {
        skipped.push("xfs: mkfs.xfs not installed (apt-get install xfsprogs)".into());
    }

    if have("mkfs.btrfs") && have("btrfs") {
        match make_fs("btrfs", 512, "mkfs.btrfs", &["-q", "-f"]) {
            Ok(fs) => {
                let d = fs.root();
                // Files created in a NOCOW directory inherit NOCOW (chattr +C dir), so the
                // common cases test what they are named for, not copy-on-write.
                let nd = d.join("nocow");
                std::fs::create_dir(&nd).expect("mkdir");
                let dirf = File::open(&nd).expect("open dir");
                set_inode_flags(&dirf, inode_flags(&dirf).expect("getflags") | FS_NOCOW_FL).expect("chattr +C dir");
                common_cases(&mut rows, "btrfs", &nd);
                // More extents than one FIEMAP call returns (256): the reporter must loop.
                compare(&mut rows, "btrfs", "fragmented-640p", &interleaved(&nd, "frag", 640, PAGE_SIZE, 0, PAGE_SIZE));
                compare(&mut rows, "btrfs", "copy-on-write", &plain_written(d, "cow", 64));
                compare(&mut rows, "btrfs", "nocow-fallocated", &fallocated(d, "nocowfa", 64, true));
                compare(&mut rows, "btrfs", "compressed", &compressed(d, "compr", 64));
                compare(&mut rows, "btrfs", "snapshotted", &snapshotted(d, "snapswap", 64));
                // Larger than one data chunk: FIEMAP's logical addresses are contiguous,
                // the device offsets are not; the span is the kernel's only if mapped.
                compare(&mut rows, "btrfs", "across-chunks-120M", &written(&nd, "cross", 30720));
            }
            Err(e) => skipped.push(format!("btrfs: {e}")),
        }
    } else {
        skipped.push("btrfs: mkfs.btrfs/btrfs not installed (apt-get install btrfs-progs)".into());
    }

    if have("mkfs.ext4") {
        match make_fs("claim", 96, "mkfs.ext4", &["-q", "-F"]) {
            Ok(fs) => claim_cases(&mut rows, &fs),
            Err(e) => skipped.push(format!("claim cases (ext4): {e}")),
        }
        // ext2 and ext3 use the same iomap path (the ext4 driver).
        for (tag, mkfs) in [("ext2", "mkfs.ext2"), ("ext3", "mkfs.ext3")] {
            match make_fs(tag, 64, mkfs, &["-q", "-F"]) {
                Ok(fs) => {
                    let d = fs.root();
                    compare(&mut rows, tag, "written-1M", &written(d, "written", 256));
                    compare(&mut rows, tag, "sparse", &sparse(d, "sparse", 64));
                    compare(&mut rows, tag, "fragmented", &interleaved(d, "frag", 64, PAGE_SIZE, 0, PAGE_SIZE));
                }
                Err(e) => skipped.push(format!("{tag}: {e}")),
            }
        }
    }
    block_cases(&mut rows, &mut skipped);
    fuse_cases(&mut rows, &mut skipped);
    if have("mkfs.btrfs") && have("btrfs") {
        btrfs_profile_cases(&mut rows, &mut skipped);
    }

    for s in &skipped {
        skip(s);
    }
    if std::env::var_os("SWAPDIO_REQUIRE_KDIFF").is_some_and(|v| v == "1") {
        assert!(skipped.is_empty(), "SWAPDIO_REQUIRE_KDIFF=1 but cases were skipped: {skipped:?}");
    }
    println!("{} cases in {:.1?}", rows.len(), t0.elapsed());
    let bad: Vec<&Row> = rows.iter().filter(|r| r.kernel != r.ours || !r.same_map).collect();
    for r in &bad {
        println!("MISMATCH {}: kernel {} swapdio {} ({} extents; {})", r.case, r.kernel, r.ours, r.extents, r.detail);
    }
    assert!(bad.is_empty(), "{} of {} cases disagree with the kernel", bad.len(), rows.len());
}
