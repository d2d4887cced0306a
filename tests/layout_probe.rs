//! The extent reporter, the layout lease and the `check`/`mkswap` commands on real files
//! (no root needed). The kernel comparison itself is in `kernel_diff/`.

use std::path::Path;
use swapdio::linux::check::{check, Verdict};
use swapdio::linux::layout::{probe, FsKind, LayoutError};
use swapdio::linux::lease::{LayoutChange, LayoutLease};
use swapdio::linux::mkswap::create_swap_file;
use swapdio::{Errno, IoMode, ModeRequest, PAGE_SIZE};

const PAGE: u64 = PAGE_SIZE as u64;

mod support;
use support::Scratch;

fn on_tmpfs(p: &Path) -> bool {
    matches!(probe(p), Err(LayoutError::NoExtentMap { fs: FsKind::Tmpfs, .. }))
}

#[test]
fn probe_maps_a_mkswap_file_completely_and_swapon_would_take_it_all() {
    let s = Scratch::new("layout-probe");
    let p = s.0.join("swap");
    create_swap_file(&p, 256 * PAGE).unwrap();
    if on_tmpfs(&p) {
        println!("SKIP: scratch directory is on tmpfs (no FIEMAP)");
        return;
    }
    let l = probe(&p).unwrap();
    assert_eq!(l.file_size, 256 * PAGE);
    assert!(l.extent_map);
    // FIEMAP covers [0, size) without a gap, every extent written (mkswap writes zeros).
    let mut pos = 0;
    for e in &l.extents {
        assert_eq!(e.logical, pos, "gap before {e:?}");
        assert!(e.flags.is_empty() || l.fs == FsKind::Btrfs, "{e:?}");
        assert_eq!(e.device, l.device);
        pos += e.length;
    }
    assert!(pos >= l.file_size);
    let rep = check(&p, ModeRequest::Auto);
    match &rep.kernel {
        // Header page excluded; every other page usable unless the fs block is < 4 KiB.
        Verdict::Usable(r) => {
            assert!(r.usable_pages <= 255 && r.usable_pages + r.lost.total().unwrap_or(0) / PAGE >= 255, "{r:?}")
        }
        v => panic!("refused: {v:?}"),
    }
}

#[test]
fn lease_detects_truncate_and_replacement_but_not_a_reprobe() {
    let s = Scratch::new("layout-lease");
    let p = s.0.join("swap");
    create_swap_file(&p, 64 * PAGE).unwrap();
    if on_tmpfs(&p) {
        println!("SKIP: scratch directory is on tmpfs (no FIEMAP)");
        return;
    }
    let lease = LayoutLease::new(&probe(&p).unwrap(), IoMode::Device);
    lease.verify().expect("nothing changed");

    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(32 * PAGE).unwrap();
    let err = lease.verify().unwrap_err();
    assert!(
        matches!(err.change(), Some(LayoutChange::Size { before, after }) if *before == 64 * PAGE && *after == 32 * PAGE),
        "{err}"
    );

    let q = s.0.join("other");
    create_swap_file(&q, 64 * PAGE).unwrap();
    std::fs::rename(&q, &p).unwrap();
    let err = lease.verify().unwrap_err();
    assert!(matches!(err.change(), Some(LayoutChange::Replaced { .. })), "{err}");
}

#[test]
fn tmpfs_file_is_refused_it_has_no_read_folio() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        println!("SKIP: no /dev/shm");
        return;
    }
    let p = shm.join(format!("swapdio-tmpfs-{}", std::process::id()));
    // mkswap refuses tmpfs before writing anything and leaves nothing behind.
    let made = create_swap_file(&p, 16 * PAGE);
    let left_behind = p.exists();
    let mut bytes = vec![0u8; 16 * PAGE as usize];
    swapdio::SwapHeader::new(16, [1; 16], [0; 16]).unwrap().write(&mut bytes[..PAGE_SIZE]).unwrap();
    std::fs::write(&p, bytes).unwrap();
    let is_tmpfs = on_tmpfs(&p);
    let rep = check(&p, ModeRequest::Auto);
    let _ = std::fs::remove_file(&p);
    if !is_tmpfs {
        println!("SKIP: /dev/shm is not tmpfs here");
        return;
    }
    assert!(matches!(made, Err(LayoutError::NoExtentMap { fs: FsKind::Tmpfs, .. })), "mkswap on tmpfs: {made:?}");
    assert!(!left_behind, "mkswap on tmpfs left a file behind");
    match rep.kernel {
        Verdict::Refused(r) => {
            assert_eq!(r.errno, Errno::EINVAL);
            assert!(r.reason.contains("no read_folio"), "{}", r.reason);
        }
        v => panic!("tmpfs accepted: {v:?}"),
    }
}

#[test]
fn directory_is_not_swappable_einval() {
    let s = Scratch::new("layout-dir");
    let err = probe(&s.0).unwrap_err();
    assert!(matches!(err, LayoutError::NotSwappable { .. }), "{err}");
    assert_eq!(err.errno(), Errno::EINVAL);
}
