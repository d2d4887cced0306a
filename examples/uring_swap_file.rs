//! Activate a real swap file and move pages through the engine and the io_uring driver.
//!
//! ```text
//! cargo run --example uring_swap_file [-- DIR]
//! ```
//!
//! In a fresh directory under `DIR` (default: the system temporary directory, which must
//! be on a filesystem with an extent map: ext4, xfs or btrfs, not tmpfs) this:
//!
//! 1. creates a 16 MiB swap file with [`create_swap_file`] (allocated, written, mode
//!    0600, `SWAPSPACE2` header), the library's mkswap;
//! 2. probes its layout the way swapon does ([`probe`]: fsync, FIEMAP, inode flags) and
//!    reads the header page;
//! 3. activates it ([`activate_owned`]): the slot map and the activation report. Device
//!    mode (I/O to the block device at the mapped positions) when the block device can
//!    be opened, file mode (`O_DIRECT` on the file at `slot * 4096`) otherwise;
//! 4. builds a [`UringBackend`] over a page-aligned [`Arena`] and an [`Engine`] over it,
//!    and connects the two so completions reach the engine;
//! 5. swaps out 256 stamped pages in plugged runs (completed by the driver's reaper
//!    thread) and one 16-page large folio, then swaps them all back in into other folios
//!    with a [`Foreground`](swapdio::linux::uring::Foreground) (the waiting thread reaps
//!    its own completions);
//! 6. checks every page read back, the page rules (testkit's [`MemPages`]), the driver's
//!    counters, the layout lease, and deactivates; the directory is removed on every
//!    path, also on failure.
//!
//! Exits with status 1 and a message on any mismatch or error. Needs no root.

use std::error::Error;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use swapdio::linux::check::mode_name;
use swapdio::linux::direct::{Arena, Target};
use swapdio::linux::layout::{probe, read_header};
use swapdio::linux::lease::LayoutLease;
use swapdio::linux::mkswap::create_swap_file;
use swapdio::linux::uring::{DriverConfig, UringBackend};
use swapdio::testkit::MemPages;
use swapdio::{
    activate_owned, Engine, Folio, FolioId, FsContext, IoMode, MapEntry, ModeRequest, OwnedStorage, StorageConfig,
    PAGE_SIZE,
};

/// Size of the swap file.
const SWAP_FILE_BYTES: u64 = 16 << 20;
/// Small folios swapped out, at slots `1..=SMALL_FOLIOS`.
const SMALL_FOLIOS: u64 = 256;
/// The large folio: its pages and first slot.
const LARGE_PAGES: u32 = 16;
const LARGE_SLOT: u64 = 1000;
/// Arena layout: folios to write start at page 0, folios read into start here.
const READ_BASE: u64 = 512;
const ARENA_PAGES: usize = 1024;

/// Page state recorder that checks the page rules as the engine drives them. The engine
/// must be `'static` to receive completions from the driver's reaper thread.
static PAGES: LazyLock<MemPages> = LazyLock::new(MemPages::new);

/// A directory removed, with everything in it, when dropped (also on error paths).
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The content of swap slot `slot`: every 8 bytes say which slot and which word they are.
fn stamp(slot: u64) -> Vec<u8> {
    (0..PAGE_SIZE as u64 / 8).flat_map(|word| (0x5357_4150u64 << 32 | slot << 12 | word).to_le_bytes()).collect()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("uring_swap_file: FAILED: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let parent = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = ScratchDir(parent.join(format!("swapdio-example-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let path = dir.0.join("swapfile");

    // 1. mkswap.
    create_swap_file(&path, SWAP_FILE_BYTES)?;
    println!("created  {} ({} MiB, mode 0600, SWAPSPACE2 header)", path.display(), SWAP_FILE_BYTES >> 20);

    // 2. The layout, as swapon reads it.
    let layout = probe(&path).map_err(|e| format!("{e} (pass a directory on ext4, xfs or btrfs)"))?;
    let header = read_header(&path)?;
    println!(
        "probed   {}: {} extent(s), block size {}, device {}",
        layout.fs,
        layout.extents.len(),
        layout.block_size,
        layout.device_path.as_deref().map_or("(none)".into(), |p| p.display().to_string()),
    );

    // 3. Activation: device mode if the block device opens, else file mode.
    let (mut map, mut report) = activate_owned(&layout.activation_request(&header, ModeRequest::Auto))?;
    let target = match report.mode {
        IoMode::Device => match Target::device_for(&layout, map.entries()) {
            Ok(t) => t,
            Err(e) => {
                println!("device mode impossible here ({e}); activating in file mode");
                (map, report) = activate_owned(&layout.activation_request(&header, ModeRequest::File))?;
                Target::file(&path)?
            }
        },
        IoMode::File => Target::file(&path)?,
    };
    let lease = LayoutLease::new(&layout, report.mode);
    println!(
        "activated {} mode on {}: {} usable pages ({} KiB), {} extent(s), span {} pages, {} bytes lost to trimming",
        mode_name(report.mode),
        target.path().display(),
        report.usable_pages,
        report.usable_kib(),
        report.extents,
        report.span_pages,
        report.lost.total().unwrap_or(u64::MAX),
    );

    // 4. Driver and engine. The driver registers the arena as fixed buffers.
    let arena = Arc::new(Arena::new(ARENA_PAGES)?);
    let storage = StorageConfig::default();
    let backend = Arc::new(
        UringBackend::new(target, arena.clone(), DriverConfig::for_storage(storage))
            .map_err(|e| format!("io_uring unavailable: {e} (check kernel.io_uring_disabled or seccomp)"))?,
    );
    let engine = Arc::new(Engine::new(map, OwnedStorage::new(storage)?, backend.clone(), &*PAGES)?);
    backend.connect(&engine);

    // 5a. Swap-out: plugged runs of adjacent small folios (up to 32 per request), and
    // one large folio. Folio `FolioId(n)` is arena page `n` onwards.
    let started = Instant::now();
    {
        let mut plug = engine.plug();
        for slot in 1..=SMALL_FOLIOS {
            fill(&arena, slot, slot)?;
            PAGES.prepare_write(FolioId(slot));
            plug.write(Folio::small(slot, slot), FsContext::MayEnterFs)?;
        }
    } // dropping the plug submits the held batch
    let large_folio = SMALL_FOLIOS + 1;
    for i in 0..u64::from(LARGE_PAGES) {
        fill(&arena, large_folio + i, LARGE_SLOT + i)?;
    }
    PAGES.prepare_write(FolioId(large_folio));
    engine.write(None, Folio::large(large_folio, LARGE_SLOT, LARGE_PAGES), FsContext::MayEnterFs)?;
    wait_until_idle(&engine, || std::thread::sleep(Duration::from_micros(200)))?;
    let written = engine.stats();
    println!(
        "swapped out {} pages in {} requests (reaper-thread completions)",
        written.pages_out, written.requests_submitted
    );

    // 5b. Swap-in into other folios, this thread reaping its own completions.
    {
        let mut foreground = backend.foreground();
        {
            let mut plug = engine.plug();
            for slot in 1..=SMALL_FOLIOS {
                PAGES.prepare_read(FolioId(READ_BASE + slot));
                plug.read(Folio::small(READ_BASE + slot, slot))?;
            }
        }
        let large_copy = READ_BASE + SMALL_FOLIOS + 1;
        PAGES.prepare_read(FolioId(large_copy));
        engine.read(None, Folio::large(large_copy, LARGE_SLOT, LARGE_PAGES))?;
        wait_until_idle(&engine, || {
            foreground.wait(Duration::from_millis(10));
        })?;
    }
    let elapsed = started.elapsed();
    let total = engine.stats();
    println!(
        "swapped in  {} pages in {} requests (foreground completions), {:.1} ms for both directions",
        total.pages_in,
        total.requests_submitted - written.requests_submitted,
        elapsed.as_secs_f64() * 1e3,
    );

    // 6. Verify: contents, page state, counters, layout.
    let mut page = vec![0u8; PAGE_SIZE];
    let mut mismatches = 0;
    let expected = (1..=SMALL_FOLIOS)
        .map(|slot| (READ_BASE + slot, slot))
        .chain((0..u64::from(LARGE_PAGES)).map(|i| (READ_BASE + SMALL_FOLIOS + 1 + i, LARGE_SLOT + i)));
    for (arena_page, slot) in expected {
        if !arena.copy_out(arena_page as usize, &mut page) || page != stamp(slot) {
            eprintln!("slot {slot}: read back different bytes");
            mismatches += 1;
        }
    }
    let read_folios = (1..=SMALL_FOLIOS + 1).map(|i| FolioId(READ_BASE + i));
    let not_uptodate = read_folios.filter(|&f| !PAGES.state(f).uptodate || PAGES.state(f).locked).count();
    let pages_moved = SMALL_FOLIOS + u64::from(LARGE_PAGES);
    if report.mode == IoMode::File {
        // File mode: slot s is file bytes s * 4096, readable through the filesystem.
        let bytes = std::fs::read(&path)?;
        let at = |slot: u64| &bytes[slot as usize * PAGE_SIZE..(slot as usize + 1) * PAGE_SIZE];
        mismatches += (1..=SMALL_FOLIOS).filter(|&s| at(s) != stamp(s).as_slice()).count();
        println!("checked the file through the filesystem: slot s is at byte s * {PAGE_SIZE}");
    }
    let driver = backend.stats();
    let checks = [
        (mismatches == 0, format!("{mismatches} pages differ")),
        (not_uptodate == 0, format!("{not_uptodate} read folios not uptodate or still locked")),
        (total.pages_out == pages_moved && total.pages_in == pages_moved, format!("page counts {total:?}")),
        (total.write_failures + total.read_failures == 0, format!("I/O failures {total:?}")),
        (PAGES.violations().is_empty(), format!("page rules broken: {:?}", PAGES.violations())),
        (PAGES.pins_held() == 0, format!("{} pins still held", PAGES.pins_held())),
        (driver.submitted == driver.completed, format!("driver counters {driver:?}")),
    ];
    for (ok, what) in checks {
        if !ok {
            return Err(what.into());
        }
    }
    lease.verify()?;
    engine.deactivate()?;
    println!(
        "verified {pages_moved} pages: contents, page rules, pins, driver counters ({} submitted = {} completed), \
         layout unchanged",
        driver.submitted, driver.completed
    );
    drop(engine);
    drop(backend); // cancels and reaps anything in flight before the arena can go
    let removed = dir.0.clone();
    drop(dir);
    println!("removed  {}", removed.display());
    Ok(())
}

/// Writes slot `slot`'s stamp into arena page `arena_page`.
fn fill(arena: &Arena, arena_page: u64, slot: u64) -> Result<(), String> {
    arena
        .copy_in(arena_page as usize, &stamp(slot))
        .then_some(())
        .ok_or(format!("arena page {arena_page} out of range"))
}

/// Calls `wait` until the engine has no request held or in flight (at most 10 s).
fn wait_until_idle<M, S, B, P>(engine: &Engine<M, S, B, P>, mut wait: impl FnMut()) -> Result<(), String>
where
    M: AsRef<[MapEntry]>,
    S: swapdio::Storage,
    B: swapdio::Backend,
    P: swapdio::PageOps,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.in_flight() != 0 {
        if Instant::now() > deadline {
            return Err(format!("{} requests never completed", engine.in_flight()));
        }
        wait();
    }
    Ok(())
}
