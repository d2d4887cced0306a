//! Mapping proof: in device mode, pages written through the engine to the raw block
//! device read back identically through the file (`O_DIRECT`) at the file position the
//! extent reports give for the slot — the activation map and the filesystem agree on
//! where every slot lives (the kernel's swap extent map, `add_swap_extent`).
//!
//! Needs root, `losetup` and `mkfs.ext4`: builds a small ext4 on a loop device, makes a
//! deliberately fragmented swap file on it, and cleans everything up (umount, losetup
//! -d, rm) even on failure. Skipped with a reason otherwise (a failure under
//! `SWAPDIO_REQUIRE_ROOT=1`, as in CI).
#![cfg(all(feature = "linux", target_os = "linux"))]

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

mod support;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{root_skip, LoopFs};
use swapdio::linux::direct::{open_direct, Arena, Target};
use swapdio::linux::layout::{probe, read_header};
use swapdio::linux::lease::LayoutLease;
use swapdio::linux::pread::PreadBackend;
use swapdio::linux::uring::{DriverConfig, UringBackend};
use swapdio::testkit::MemPages;
use swapdio::*;

const PAGE: usize = PAGE_SIZE;

/// A swap file of `pages` pages written in 64 KiB pieces alternating with a filler
/// file (each piece synced), so its extents are many and not contiguous.
fn fragmented_swap_file(dir: &Path, pages: u64) -> PathBuf {
    let path = dir.join("swapfile");
    let mut swap = OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&path).unwrap();
    let mut filler = OpenOptions::new().create(true).write(true).truncate(true).open(dir.join("filler")).unwrap();
    let piece = vec![0u8; 16 * PAGE];
    let mut written = 0;
    while written < pages {
        let n = (pages - written).min(16) as usize;
        swap.write_all(&piece[..n * PAGE]).unwrap();
        swap.sync_all().unwrap();
        filler.write_all(&piece[..4 * PAGE]).unwrap();
        filler.sync_all().unwrap();
        written += n as u64;
    }
    let mut header = vec![0u8; PAGE];
    SwapHeader::new(pages, [7; 16], [0; 16]).unwrap().write(&mut header).unwrap();
    swap.write_all_at(&header, 0).unwrap();
    swap.sync_all().unwrap();
    path
}

fn stamp(slot: u64) -> Vec<u8> {
    (0..PAGE / 8).flat_map(|i| (0x5eed_0000_0000_0000u64 ^ slot << 20 ^ i as u64).to_le_bytes()).collect()
}

/// The file position of device byte `pos` according to the extent reports.
fn logical_of(extents: &[ExtentReport], pos: u64) -> Option<u64> {
    extents.iter().find(|e| e.physical <= pos && pos < e.physical + e.length).map(|e| e.logical + (pos - e.physical))
}

fn wait_idle<M: AsRef<[MapEntry]>, S: Storage, B: Backend, P: PageOps>(engine: &Engine<M, S, B, P>) {
    let t = Instant::now();
    while engine.in_flight() != 0 {
        assert!(t.elapsed() < Duration::from_secs(20), "requests never completed");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Reads every slot back through the file at the position the extents give it.
fn check_through_file(path: &Path, extents: &[ExtentReport], map: &SwapMap<Vec<MapEntry>>, tag: u64) {
    let file = open_direct(path, false).unwrap();
    let arena = Arena::new(1).unwrap();
    for slot in 1..map.slots() {
        let pos = map.lookup(slot).unwrap().pos;
        let logical = logical_of(extents, pos).unwrap_or_else(|| panic!("slot {slot}: device byte {pos} in no extent"));
        assert_eq!(logical, slot * PAGE as u64, "page-aligned ext4: slot {slot} is file page {slot}");
        // SAFETY: the arena's one page is a valid, aligned destination for one page.
        #[allow(unsafe_code)]
        let buf = unsafe { std::slice::from_raw_parts_mut(arena.base(), PAGE) };
        assert_eq!(file.read_at(buf, logical).unwrap(), PAGE);
        let mut got = vec![0u8; PAGE];
        arena.copy_out(0, &mut got);
        assert!(got == stamp(slot ^ tag), "slot {slot}: file page at {logical} differs from what the device got");
    }
}

#[test]
fn device_mode_pages_read_back_identically_through_the_file() {
    if let Some(why) = root_skip("SWAPDIO_REQUIRE_ROOT", &["losetup", "mkfs.ext4", "mount", "umount"]) {
        println!("SKIP mapping proof: {why}");
        return;
    }
    let fs = LoopFs::ext4("mapping-proof", 64).expect("a loop ext4");
    let path = fragmented_swap_file(fs.root(), 1024);
    let layout = probe(&path).unwrap();
    assert!(layout.extents.len() > 4, "the file should be fragmented: {:?}", layout.extents.len());
    let header = read_header(&path).unwrap();
    let (map, report) = activate_owned(&layout.activation_request(&header, ModeRequest::Device)).unwrap();
    assert_eq!(report.mode, IoMode::Device);
    assert_eq!(report.usable_pages, 1023);
    let lease = LayoutLease::new(&layout, IoMode::Device);
    let entries = map.entries().to_vec();

    // Through the engine and io_uring, on the loop device: plugged runs (which the plug
    // splits at extent boundaries) then every slot once more, one page at a time.
    let arena = Arc::new(Arena::new(1024).unwrap());
    let storage = StorageConfig::default();
    let target = Target::device_for(&layout, &entries).unwrap();
    assert!(matches!(target, Target::Device { .. }));
    let uring = Arc::new(UringBackend::new(target, arena.clone(), DriverConfig::for_storage(storage)).unwrap());
    let pages: &'static MemPages = Box::leak(Box::new(MemPages::new()));
    let engine = Arc::new(Engine::new(map, OwnedStorage::new(storage).unwrap(), uring.clone(), pages).unwrap());
    assert!(uring.connect(&engine));
    for first in (1..1024u64).step_by(32) {
        let mut plug = engine.plug();
        for s in first..(first + 32).min(1024) {
            arena.copy_in(s as usize, &stamp(s));
            pages.prepare_write(FolioId(s));
            plug.write(Folio::small(s, s), FsContext::MayEnterFs).unwrap();
        }
        drop(plug);
        wait_idle(&*engine);
    }
    assert_eq!(engine.stats().write_failures, 0);
    assert!(engine.stats().requests_submitted > 32, "extent boundaries split the plugged runs");
    let emap = SwapMap::new(entries.clone(), IoMode::Device).unwrap();
    check_through_file(&path, &layout.extents, &emap, 0);

    // And back through the device: what the file holds is what the engine reads.
    for s in 1..1024u64 {
        pages.prepare_read(FolioId(s));
        arena.copy_in(s as usize, &[0; PAGE]);
        // 32 requests in the pool: wait for a completion when it is empty.
        loop {
            match engine.read(None, Folio::small(s, s)) {
                Err(SwapError::WouldBlock) => std::thread::yield_now(),
                r => break r.unwrap(),
            }
        }
    }
    wait_idle(&*engine);
    for s in 1..1024usize {
        let mut got = vec![0u8; PAGE];
        arena.copy_out(s, &mut got);
        assert!(got == stamp(s as u64), "slot {s} read back through the device differs");
    }
    assert_eq!(pages.violations(), Vec::<String>::new());
    engine.deactivate().unwrap();
    drop(engine);
    drop(uring);

    // The pread driver agrees on the same mapping (different stamps).
    let target = Target::device_for(&layout, &entries).unwrap();
    let pread = PreadBackend::new(target, arena.clone(), swapdio::fault::FaultConfig::NONE);
    let pages2 = MemPages::new();
    let engine = Engine::new(
        SwapMap::new(entries.clone(), IoMode::Device).unwrap(),
        OwnedStorage::new(storage).unwrap(),
        pread,
        &pages2,
    )
    .unwrap();
    for s in 1..1024u64 {
        arena.copy_in(s as usize, &stamp(s ^ 0x55));
        pages2.prepare_write(FolioId(s));
        engine.write(None, Folio::small(s, s), FsContext::MayEnterFs).unwrap();
    }
    check_through_file(&path, &layout.extents, &emap, 0x55);
    lease.verify().unwrap();
}
