//! Differential tests against the kernel's own swapon.
//!
//! For each case a file is built on a real ext4, xfs or btrfs filesystem (on a loop
//! device over a sparse image), then judged twice: by `swapdio check`'s library path
//! ([`check`], the dry-run swapon) and by the kernel (`swapon(2)`, the size in
//! `/proc/swaps`, `swapoff(2)`). Rule pinned down: **same verdict, same errno when
//! refused, exactly the same usable KiB when accepted** (docs/swap-rules.md §2).
//!
//! Needs root, loop devices, `losetup`, `mkfs.ext4`, `mkfs.xfs`, `mkfs.btrfs`/`btrfs`;
//! skips (printing why) what is missing. Everything it creates is undone by Drop guards
//! (swapoff, umount, losetup -d, rm), also when a step panics.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use swapdio::linux::check::{check, swapoff, swapon};
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

/// A scratch directory removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("swapdio-kdiff-{tag}-{}", std::process::id()));
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
fn written(dir: &Path, name: &str, pages: u64) -> PathBuf {
    let p = dir.join(name);
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
    let src = written(dir, &format!("{name}.src"), pages);
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
    let rep = check(path, ModeRequest::Auto);
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
        "{case:<34} kernel {:<16} swapdio {:<16} map(kernel/swapdio) {:>10} {:>10}  fiemap {extents:<4} {ok}  ({detail})",
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
        compare(rows, fs, &format!("tiny-{pages}p"), &written(d, &format!("tiny{pages}"), pages));
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
            }
            Err(e) => skipped.push(format!("btrfs: {e}")),
        }
    } else {
        skipped.push("btrfs: mkfs.btrfs/btrfs not installed (apt-get install btrfs-progs)".into());
    }

    for s in &skipped {
        skip(s);
    }
    println!("{} cases in {:.1?}", rows.len(), t0.elapsed());
    let bad: Vec<&Row> = rows.iter().filter(|r| r.kernel != r.ours || !r.same_map).collect();
    for r in &bad {
        println!("MISMATCH {}: kernel {} swapdio {} ({} extents; {})", r.case, r.kernel, r.ours, r.extents, r.detail);
    }
    assert!(bad.is_empty(), "{} of {} cases disagree with the kernel", bad.len(), rows.len());
}
