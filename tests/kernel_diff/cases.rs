//! The case groups: what every filesystem gets, what each filesystem adds, swapon's
//! open-and-claim step, block devices, FUSE and btrfs profiles.

use crate::builders::*;
use crate::harness::{chattr, compare, make_fs, make_multi_fs, scratch, ActiveSwap, Row, Running};
use crate::support::{have, image, run, LoopDev, LoopFs, Mount};
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::Command;
use swapdio::linux::check::swapon;
use swapdio::linux::claim::{FS_APPEND_FL, FS_IMMUTABLE_FL};
use swapdio::PAGE_SIZE;

/// The cases every filesystem gets.
pub fn common_cases(rows: &mut Vec<Row>, fs: &str, d: &Path) {
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

/// ext4 with 4 KiB blocks: fragmentation, an active swap area, a mounted device.
pub fn ext4_cases(rows: &mut Vec<Row>, fs: &LoopFs) {
    let d = fs.root();
    common_cases(rows, "ext4", d);
    compare(rows, "ext4", "fragmented", &interleaved(d, "frag", 128, PAGE_SIZE, 0, PAGE_SIZE));
    // An active swap area is refused by both with EBUSY.
    let p = written(d, "busy", 64);
    swapon(&p, 0).expect("swapon busy");
    let _g = ActiveSwap(p.clone());
    compare(rows, "ext4", "already-active", &p);
    // A mounted block device is refused by both with EBUSY.
    compare(rows, "ext4", "mounted-block-device", fs.dev().path());
}

/// 1 KiB blocks (ext4, xfs): extents that are not page aligned physically.
pub fn misaligned_cases(rows: &mut Vec<Row>, fs: &str, d: &Path) {
    common_cases(rows, fs, d);
    compare(rows, fs, "misaligned-1k-pad", &interleaved(d, "mis", 256, PAGE_SIZE, 1024, 1024));
    compare(rows, fs, "misaligned-3k-filler", &interleaved(d, "mis3", 128, PAGE_SIZE, 3072, 3072));
}

/// xfs with 4 KiB blocks: fragmentation and reflinks.
pub fn xfs_cases(rows: &mut Vec<Row>, fs: &LoopFs) {
    let d = fs.root();
    common_cases(rows, "xfs", d);
    compare(rows, "xfs", "fragmented", &interleaved(d, "frag", 128, PAGE_SIZE, 0, PAGE_SIZE));
    compare(rows, "xfs", "reflinked", &reflinked(d, "reflink", 64));
    // Once the other owner is deleted the blocks are no longer shared (xfs flushes
    // deferred inode work before the walk; so must the reporter).
    let p = reflinked(d, "reflink-orphan", 64);
    std::fs::remove_file(d.join("reflink-orphan.src")).expect("rm");
    compare(rows, "xfs", "reflink-source-deleted", &p);
}

/// xfs with 1 KiB blocks.
pub fn xfs_1k_cases(rows: &mut Vec<Row>, fs: &LoopFs) {
    let d = fs.root();
    misaligned_cases(rows, "xfs-1k", d);
    // docs/swap-rules.md §2: 16 MiB in misaligned 4 KiB pieces on 1 KiB xfs.
    compare(rows, "xfs-1k", "misaligned-16M", &interleaved(d, "mis16", 4096, PAGE_SIZE, 1024, 1024));
}

/// btrfs, one device: NOCOW, copy-on-write, compression, snapshots, chunk crossing.
pub fn btrfs_cases(rows: &mut Vec<Row>, fs: &LoopFs) {
    let d = fs.root();
    // Files created in a NOCOW directory inherit NOCOW (chattr +C dir), so the common
    // cases test what they are named for, not copy-on-write.
    let nd = nocow_dir(d);
    common_cases(rows, "btrfs", &nd);
    // More extents than one FIEMAP call returns (256): the reporter must loop.
    compare(rows, "btrfs", "fragmented-640p", &interleaved(&nd, "frag", 640, PAGE_SIZE, 0, PAGE_SIZE));
    compare(rows, "btrfs", "copy-on-write", &plain_written(d, "cow", 64));
    compare(rows, "btrfs", "nocow-fallocated", &fallocated(d, "nocowfa", 64, true));
    compare(rows, "btrfs", "compressed", &compressed(d, "compr", 64));
    compare(rows, "btrfs", "snapshotted", &snapshotted(d, "snapswap", 64));
    // Larger than one data chunk: FIEMAP's logical addresses are contiguous, the device
    // offsets are not; the span is the kernel's only if mapped.
    compare(rows, "btrfs", "across-chunks-120M", &written(&nd, "cross", 30720));
}

/// ext2 and ext3 use the same iomap path (the ext4 driver).
pub fn ext2_ext3_cases(rows: &mut Vec<Row>, skipped: &mut Vec<String>) {
    for (tag, mkfs) in [("ext2", "mkfs.ext2"), ("ext3", "mkfs.ext3")] {
        match make_fs(tag, 64, mkfs, &["-q", "-F"]) {
            Ok(fs) => {
                let d = fs.root();
                compare(rows, tag, "written-1M", &written(d, "written", 256));
                compare(rows, tag, "sparse", &sparse(d, "sparse", 64));
                compare(rows, tag, "fragmented", &interleaved(d, "frag", 64, PAGE_SIZE, 0, PAGE_SIZE));
            }
            Err(e) => skipped.push(format!("{tag}: {e}")),
        }
    }
}

/// swapon's open-and-claim step and the filesystems without `read_folio`, on one ext4.
pub fn claim_cases(rows: &mut Vec<Row>, fs: &LoopFs) {
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
    let bind = fs.dir.0.join("bind");
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

    // Nor have the pseudo filesystems: a procfs file, and a sysfs attribute where there
    // is one (swapon opens it read-write and writes nothing).
    compare(rows, "procfs", "self-mem", Path::new("/proc/self/mem"));
    let attr = Path::new("/sys/kernel/mm/transparent_hugepage/enabled");
    if attr.exists() {
        compare(rows, "sysfs", "attribute", attr);
    }

    // tmpfs has no read_folio either.
    let t = fs.dir.0.join("tmpfs");
    std::fs::create_dir_all(&t).expect("mkdir");
    run("mount", &["-t", "tmpfs", "-o", "size=16m", "swapdio-kdiff", &t.to_string_lossy()]).expect("mount tmpfs");
    let _tmpfs = Mount(t.clone());
    compare(rows, "tmpfs", "written", &plain_written(&t, "swap", 64));
}

/// Block devices: bad pages, a header smaller than the device, exclusive holders,
/// partitions.
pub fn block_cases(rows: &mut Vec<Row>, skipped: &mut Vec<String>) {
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
pub fn fuse_cases(rows: &mut Vec<Row>, skipped: &mut Vec<String>) {
    if !have("mkntfs") || !have("ntfs-3g") {
        return skipped.push("ntfs-3g: mkntfs/ntfs-3g not installed (apt-get install ntfs-3g fuse3)".into());
    }
    let dir = scratch("ntfs");
    let img = dir.0.join("image");
    if let Err(e) = image(&img, 96 << 20) {
        return skipped.push(format!("ntfs {e}"));
    }
    let dev = match LoopDev::attach(&img) {
        Ok(d) => d,
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
pub fn btrfs_profile_cases(rows: &mut Vec<Row>, skipped: &mut Vec<String>) {
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
                compare(rows, &fsname, "nocow-written", &written(&nocow_dir(fs.root()), "s", 64));
                compare(rows, &fsname, "member-device", Path::new(&fs.loops[1].0));
            }
            Err(e) => skipped.push(format!("btrfs {profile}: {e}")),
        }
    }
    match make_multi_fs("btrfs-multi", 2, 320, "mkfs.btrfs", &["-q", "-f", "-d", "single", "-m", "raid1"]) {
        Ok(fs) => {
            let nd = nocow_dir(fs.root());
            compare(rows, "btrfs-multi", "small-file", &written(&nd, "small", 256));
            // Larger than a data chunk: chunks alternate between the devices.
            compare(rows, "btrfs-multi", "across-devices-200M", &written(&nd, "big", 51200));
            compare(rows, "btrfs-multi", "member-device", Path::new(&fs.loops[1].0));
        }
        Err(e) => skipped.push(format!("btrfs multi-device: {e}")),
    }
}
