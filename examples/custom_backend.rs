//! A `Backend` written from scratch: a RAM disk whose writes complete on a worker thread.
//!
//! ```text
//! cargo run --example custom_backend
//! ```
//!
//! A backend is the engine's `->swap_rw`: it receives a [`Request`] (direction, byte
//! position, segments naming folios, flags) and answers
//!
//! * [`Submit::Done`] with the bytes moved or an errno, having finished the I/O before
//!   returning (this RAM disk does that for reads), or
//! * [`Submit::Queued`], having taken the request: it must then call
//!   [`Engine::complete`] with the request's id exactly once, from any thread, possibly
//!   before `submit` has even returned (this RAM disk queues writes to a worker thread).
//!
//! Both outcomes reach the same completion code in the engine: page actions, unpinning,
//! release of the request. The backend must not keep the `Request` past `submit`; it
//! copies out what it needs (here: id, position, segments) and keeps `req.id()`.
//!
//! The RAM disk also fails the first write request that touches slot 7 with `EAGAIN`, to
//! show the write-failure rule: the engine redirties every folio of that request (nothing
//! is lost) and reports a retryable `WriteFailed` event for each; the caller writes them
//! again.
//!
//! The example activates a 64-page swap area laid out in two extents, swaps out 40
//! pages (plugged), rewrites the failed one, swaps everything back in and checks every
//! byte, the page rules and the request accounting. Exits with status 1 on a mismatch.

use std::collections::HashMap;
use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use swapdio::testkit::MemPages;
use swapdio::{
    activate_owned, ActivationRequest, Backend, BackendCaps, Direction, Engine, Errno, ExtentFlags, ExtentReport,
    Folio, FolioId, FsContext, Layout, OwnedStorage, Request, RequestId, Segment, StorageConfig, Submit, SwapEvent,
    SwapHeader, PAGE_SIZE,
};

const PAGE: u64 = PAGE_SIZE as u64;
/// Pages in the swap area (header page included).
const AREA_PAGES: u64 = 64;
/// Pages swapped out and in, at slots `1..=PAGES_MOVED`.
const PAGES_MOVED: u64 = 40;
/// The slot whose first write the RAM disk fails with `EAGAIN`.
const FLAKY_SLOT: u64 = 7;
/// Device numbers only need to agree between the extents and the activation request.
const RAM_DISK_DEV: u64 = 0x0fee;

/// Folio memory: what the caller's `FolioId`s name. In a kernel the id would be the
/// folio pointer; here it is a key into a map of page-sized buffers.
#[derive(Default)]
struct Folios(Mutex<HashMap<FolioId, Vec<u8>>>);

impl Folios {
    fn put(&self, folio: FolioId, data: Vec<u8>) {
        self.0.lock().unwrap().insert(folio, data);
    }
    fn get(&self, folio: FolioId) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(&folio).cloned()
    }
}

/// A write taken by the RAM disk, owned (the `Request` itself must not outlive `submit`).
struct WriteJob {
    id: RequestId,
    pos: u64,
    segments: Vec<Segment>,
}

/// Device-mode backend over a byte vector. Reads complete inline; writes go to a
/// channel that a worker thread drains, completing each through the engine.
struct RamDisk<'f> {
    disk: Mutex<Vec<u8>>,
    folios: &'f Folios,
    /// Where writes go; `None` once closed (the worker then finishes).
    writes: Mutex<Option<Sender<WriteJob>>>,
    flaky_write_pending: AtomicBool,
}

impl RamDisk<'_> {
    /// Copies a request's segments between folio memory and the disk; returns the bytes
    /// moved. A segment is `len` bytes at `offset` inside its folio; segments are
    /// consecutive on the disk from `pos`.
    fn transfer(&self, dir: Direction, pos: u64, segments: &[Segment]) -> Result<u64, Errno> {
        let mut disk = self.disk.lock().unwrap();
        let mut at = usize::try_from(pos).map_err(|_| Errno::EINVAL)?;
        for seg in segments {
            let (offset, len) = (seg.offset as usize, seg.len as usize);
            let on_disk = disk.get_mut(at..at + len).ok_or(Errno::EIO)?;
            let mut folio = self.folios.get(seg.folio).ok_or(Errno::EFAULT)?;
            let in_folio = folio.get_mut(offset..offset + len).ok_or(Errno::EFAULT)?;
            match dir {
                Direction::Write => on_disk.copy_from_slice(in_folio),
                Direction::Read => {
                    in_folio.copy_from_slice(on_disk);
                    self.folios.put(seg.folio, folio);
                }
            }
            at += len;
        }
        Ok((at as u64) - pos)
    }

    /// Stops taking writes: the worker drains what was queued and ends.
    fn close(&self) {
        self.writes.lock().unwrap().take();
    }

    /// Whether this write hits `FLAKY_SLOT` while its one injected failure is pending.
    fn fails_once(&self, pos: u64, len: u64) -> bool {
        // The swap area starts at disk byte 0 in this example's layout (see `main`).
        let flaky = FLAKY_SLOT * PAGE;
        (pos..pos + len).contains(&flaky) && self.flaky_write_pending.swap(false, Ordering::SeqCst)
    }
}

impl Backend for RamDisk<'_> {
    fn caps(&self) -> BackendCaps {
        // Direct reads and writes at device positions, in-place overwrite, and a
        // completed write is stable: a local block device.
        BackendCaps::BLOCK_DEVICE
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        let segments: Vec<Segment> = req.segments().collect();
        match req.direction() {
            // Synchronous outcome: the engine completes the request when we return.
            Direction::Read => Submit::Done(self.transfer(Direction::Read, req.pos(), &segments)),
            // Asynchronous outcome: the worker calls `engine.complete(id, ..)` later.
            Direction::Write => {
                let job = WriteJob { id: req.id(), pos: req.pos(), segments };
                match self.writes.lock().unwrap().as_ref().map(|w| w.send(job)) {
                    Some(Ok(())) => Submit::Queued,
                    _ => Submit::Done(Err(Errno::EIO)), // closed: the write fails, the folio stays dirty
                }
            }
        }
    }
}

type RamEngine<'a> = Engine<Vec<swapdio::MapEntry>, OwnedStorage, RamDisk<'a>, &'a MemPages>;

/// The "interrupt handler": performs queued writes and completes them through the
/// engine, on its own thread, concurrently with further submissions.
fn completion_worker(engine: &RamEngine<'_>, jobs: Receiver<WriteJob>) -> u64 {
    let mut completed = 0;
    for job in jobs {
        let disk = engine.backend();
        let len = job.segments.iter().map(|s| u64::from(s.len)).sum();
        let result = if disk.fails_once(job.pos, len) {
            Err(Errno::EAGAIN)
        } else {
            disk.transfer(Direction::Write, job.pos, &job.segments)
        };
        // Exactly once per queued request; a second call would be refused.
        if engine.complete(job.id, result).is_ok() {
            completed += 1;
        }
    }
    completed
}

/// Swaps `PAGES_MOVED` pages out (rewriting those whose write failed) and back in, then
/// deactivates. Returns how many folio writes failed.
fn swap_out_and_in(engine: &RamEngine<'_>, folios: &Folios, pages: &MemPages) -> Result<u64, Box<dyn Error>> {
    // Swap-out: folio `FolioId(slot)` holds slot `slot`'s page; adjacent slots are
    // plugged into requests of up to 32 folios.
    {
        let mut plug = engine.plug();
        for slot in 1..=PAGES_MOVED {
            folios.put(FolioId(slot), content(slot, 1));
            pages.prepare_write(FolioId(slot));
            plug.write(Folio::small(slot, slot), FsContext::MayEnterFs)?;
        }
    }
    wait_idle(engine)?;
    let failed: Vec<(FolioId, bool)> = pages
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SwapEvent::WriteFailed { folio, retryable, .. } => Some((folio, retryable)),
            _ => None,
        })
        .collect();
    println!(
        "swapped out {PAGES_MOVED} pages in {} requests, completed by the worker thread; the request carrying \
         slot {FLAKY_SLOT} failed with EAGAIN (injected): its {} folios stayed dirty",
        engine.stats().requests_submitted,
        failed.len(),
    );
    if !failed.iter().any(|&(folio, _)| folio == FolioId(FLAKY_SLOT)) {
        return Err(format!("the injected failure at slot {FLAKY_SLOT} was not reported: {failed:?}").into());
    }

    // A failed write loses nothing: the folio is dirty again, its data still in
    // memory. Write it again, as reclaim would later.
    {
        let mut plug = engine.plug();
        for &(folio, retryable) in &failed {
            let state = pages.state(folio);
            if !(state.dirty && !state.writeback && retryable) {
                return Err(format!("folio {} after a failed write: {state:?}", folio.0).into());
            }
            pages.prepare_write(folio);
            plug.write(Folio::small(folio.0, folio.0), FsContext::MayEnterFs)?;
        }
    }
    wait_idle(engine)?;
    println!("rewrote {} failed folio(s)", failed.len());

    // Swap-in into fresh folios (ids 1000 + slot): reads complete inline (`Done`).
    {
        let mut plug = engine.plug();
        for slot in 1..=PAGES_MOVED {
            let folio = FolioId(1000 + slot);
            folios.put(folio, vec![0u8; PAGE_SIZE]);
            pages.prepare_read(folio);
            plug.read(Folio::small(folio.0, slot))?;
        }
    }
    wait_idle(engine)?;

    engine.deactivate()?; // every request released
    Ok(failed.len() as u64)
}

fn content(slot: u64, version: u8) -> Vec<u8> {
    (0..PAGE_SIZE).map(|i| (slot as u8).wrapping_mul(31) ^ (i as u8) ^ version).collect()
}

fn wait_idle(engine: &RamEngine<'_>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.in_flight() != 0 {
        if Instant::now() > deadline {
            return Err(format!("{} requests never completed", engine.in_flight()));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("custom_backend: FAILED: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    // A 64-page swap area in two extents of the RAM disk: file pages 0..32 at disk byte
    // 0, pages 32..64 right after them (physically adjacent: activation merges them).
    let mut header = vec![0u8; PAGE_SIZE];
    SwapHeader::new(AREA_PAGES, [7; 16], *b"ram-disk\0\0\0\0\0\0\0\0")?.write(&mut header)?;
    let half = AREA_PAGES / 2 * PAGE;
    let extents = [
        ExtentReport { logical: 0, physical: 0, length: half, flags: ExtentFlags::empty(), device: RAM_DISK_DEV },
        ExtentReport { logical: half, physical: half, length: half, flags: ExtentFlags::empty(), device: RAM_DISK_DEV },
    ];
    let request = ActivationRequest::new(
        &header,
        AREA_PAGES * PAGE,
        Layout::Extents(&extents),
        RAM_DISK_DEV,
        BackendCaps::BLOCK_DEVICE,
    );
    let (map, report) = activate_owned(&request)?;
    println!(
        "activated {:?} mode: {} usable pages, {} extent(s) after merging",
        report.mode, report.usable_pages, report.extents
    );

    let folios = Folios::default();
    let pages = MemPages::new(); // records page state, checks the page rules
    let (sender, jobs) = channel();
    let disk = RamDisk {
        disk: Mutex::new(vec![0u8; (AREA_PAGES * PAGE) as usize]),
        folios: &folios,
        writes: Mutex::new(Some(sender)),
        flaky_write_pending: AtomicBool::new(true),
    };
    let engine: RamEngine<'_> = Engine::new(map, OwnedStorage::new(StorageConfig::default())?, disk, &pages)?;

    let (failed_writes, worker_completions) = thread::scope(|scope| -> Result<(u64, u64), Box<dyn Error>> {
        let worker = scope.spawn(|| completion_worker(&engine, jobs));
        let outcome = swap_out_and_in(&engine, &folios, &pages);
        // Close on every path, so the worker ends and the scope can join it.
        engine.backend().close();
        let completed = worker.join().map_err(|_| "completion worker panicked")?;
        outcome.map(|failed| (failed, completed))
    })?;

    // Verify contents, page state and accounting.
    let mut mismatches = 0;
    for slot in 1..=PAGES_MOVED {
        let folio = FolioId(1000 + slot);
        let state = pages.state(folio);
        if folios.get(folio) != Some(content(slot, 1)) || !state.uptodate || state.locked {
            eprintln!("slot {slot}: wrong data or page state {state:?}");
            mismatches += 1;
        }
    }
    let stats = engine.stats();
    println!(
        "swapped in {} pages; requests: {} submitted, {} completed ({} by the worker thread, the rest inline), \
         {} write failure(s), {} read failure(s)",
        stats.pages_in,
        stats.requests_submitted,
        stats.requests_completed,
        worker_completions,
        stats.write_failures,
        stats.read_failures,
    );
    let checks = [
        (mismatches == 0, format!("{mismatches} pages differ")),
        (stats.pages_in == PAGES_MOVED, format!("{} pages read", stats.pages_in)),
        (stats.requests_submitted == stats.requests_completed, format!("{stats:?}")),
        (stats.write_failures == failed_writes && stats.read_failures == 0, format!("{stats:?}")),
        (stats.rejected_completions == 0, format!("{stats:?}")),
        (pages.violations().is_empty(), format!("page rules broken: {:?}", pages.violations())),
        (pages.pins_held() == 0, format!("{} pins held", pages.pins_held())),
    ];
    for (ok, what) in checks {
        if !ok {
            return Err(what.into());
        }
    }
    println!("verified {PAGES_MOVED} pages: contents, page rules, pins, one completion per request");
    Ok(())
}
