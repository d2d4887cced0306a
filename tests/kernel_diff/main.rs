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
//!
//! One test binary in four files: this one runs the groups (the table of filesystems
//! below, then the groups that make their own devices), `harness` compares and
//! reports, `builders` makes the files and devices, `cases` lists the cases.

#[path = "../support/mod.rs"]
mod support;

mod builders;
mod cases;
mod harness;

use builders::block_device;
use cases::*;
use harness::{compare, make_fs, skip, Row};
use std::path::Path;
use std::time::Instant;
use support::{have, is_root, LoopFs};

/// A filesystem the cases run on: `mkfs ARGS` on an `image_mib` MiB loop device, when
/// every tool in `needs` is installed (else `missing` says what to install).
struct Filesystem {
    tag: &'static str,
    needs: &'static [&'static str],
    missing: &'static str,
    mkfs: &'static str,
    args: &'static [&'static str],
    image_mib: u64,
    cases: fn(&mut Vec<Row>, &LoopFs),
}

const FILESYSTEMS: [Filesystem; 5] = [
    Filesystem {
        tag: "ext4",
        needs: &["mkfs.ext4"],
        missing: "mkfs.ext4 not installed (e2fsprogs)",
        mkfs: "mkfs.ext4",
        args: &["-q", "-F", "-b", "4096"],
        image_mib: 96,
        cases: ext4_cases,
    },
    Filesystem {
        tag: "ext4-1k",
        needs: &["mkfs.ext4"],
        missing: "mkfs.ext4 not installed (e2fsprogs)",
        mkfs: "mkfs.ext4",
        args: &["-q", "-F", "-b", "1024"],
        image_mib: 96,
        cases: |rows, fs| misaligned_cases(rows, "ext4-1k", fs.root()),
    },
    Filesystem {
        tag: "xfs",
        needs: &["mkfs.xfs"],
        missing: "mkfs.xfs not installed (apt-get install xfsprogs)",
        mkfs: "mkfs.xfs",
        args: &["-q", "-f", "-m", "reflink=1"],
        image_mib: 320,
        cases: xfs_cases,
    },
    Filesystem {
        tag: "xfs-1k",
        needs: &["mkfs.xfs"],
        missing: "mkfs.xfs not installed (apt-get install xfsprogs)",
        mkfs: "mkfs.xfs",
        args: &["-q", "-f", "-b", "size=1024"],
        image_mib: 320,
        cases: xfs_1k_cases,
    },
    Filesystem {
        tag: "btrfs",
        needs: &["mkfs.btrfs", "btrfs"],
        missing: "mkfs.btrfs/btrfs not installed (apt-get install btrfs-progs)",
        mkfs: "mkfs.btrfs",
        args: &["-q", "-f"],
        image_mib: 512,
        cases: btrfs_cases,
    },
];

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

    for f in &FILESYSTEMS {
        if !f.needs.iter().all(|t| have(t)) {
            skipped.push(format!("{}: {}", f.tag, f.missing));
            continue;
        }
        match make_fs(f.tag, f.image_mib, f.mkfs, f.args) {
            Ok(fs) => (f.cases)(&mut rows, &fs),
            Err(e) => skipped.push(format!("{}: {e}", f.tag)),
        }
    }

    // A whole (unmounted) block device with a header: one extent, no trimming.
    match block_device(1024) {
        Ok((dev, _dir)) => compare(&mut rows, "blockdev", "whole-4M", dev.path()),
        Err(e) => skipped.push(format!("block device: {e}")),
    }
    if have("mkfs.ext4") {
        match make_fs("claim", 96, "mkfs.ext4", &["-q", "-F"]) {
            Ok(fs) => claim_cases(&mut rows, &fs),
            Err(e) => skipped.push(format!("claim cases (ext4): {e}")),
        }
        ext2_ext3_cases(&mut rows, &mut skipped);
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
