//! No allocation on the I/O path (issue 2 item 1): a counting global allocator watches
//! the submitting thread and a completer thread while thousands of plugged writes and
//! reads, split large folios, synchronous requests, failures and queued completions
//! from another thread run through an engine built (and warmed up) beforehand.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use swapdio::testkit::device_map;
use swapdio::*;

/// Counts allocations made by threads that opted in.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments
// unchanged, so `System`'s guarantees carry over; counting touches only an atomic and a
// const-initialised thread-local without destructor (which never allocates).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_allocation();
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Page operations that only count, with atomics.
#[derive(Default)]
struct CountingPages {
    uptodate: AtomicU64,
    dirty: AtomicU64,
    clear_reclaim: AtomicU64,
    start_writeback: AtomicU64,
    end_writeback: AtomicU64,
    unlock: AtomicU64,
    pin: AtomicU64,
    unpin: AtomicU64,
    swap_out: AtomicU64,
    swap_in: AtomicU64,
    failed: AtomicU64,
}

fn inc(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

impl PageOps for CountingPages {
    fn set_uptodate(&self, _: FolioId) {
        inc(&self.uptodate, 1)
    }
    fn set_dirty(&self, _: FolioId) {
        inc(&self.dirty, 1)
    }
    fn clear_reclaim(&self, _: FolioId) {
        inc(&self.clear_reclaim, 1)
    }
    fn start_writeback(&self, _: FolioId) {
        inc(&self.start_writeback, 1)
    }
    fn end_writeback(&self, _: FolioId) {
        inc(&self.end_writeback, 1)
    }
    fn unlock(&self, _: FolioId) {
        inc(&self.unlock, 1)
    }
    fn pin(&self, _: FolioId) {
        inc(&self.pin, 1)
    }
    fn unpin(&self, _: FolioId) {
        inc(&self.unpin, 1)
    }
    fn event(&self, e: SwapEvent) {
        match e {
            SwapEvent::SwapOut { pages } => inc(&self.swap_out, pages),
            SwapEvent::SwapIn { pages } => inc(&self.swap_in, pages),
            SwapEvent::WriteFailed { .. } | SwapEvent::ReadFailed { .. } => inc(&self.failed, 1),
        }
    }
}

const SLOTS_TRACKED: usize = 64;
const PRESENT: u64 = 1 << 63;

/// A backend that completes inline, fails now and then, or queues the request in an
/// atomic table (one entry per request index) for the completer thread.
struct TableBackend {
    submitted: AtomicU64,
    queued: AtomicU64,
    failed: AtomicU64,
    pending: [AtomicU64; SLOTS_TRACKED],
    pending_len: [AtomicU64; SLOTS_TRACKED],
}

impl TableBackend {
    fn new() -> Self {
        TableBackend {
            submitted: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            pending: std::array::from_fn(|_| AtomicU64::new(0)),
            pending_len: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Backend for TableBackend {
    fn caps(&self) -> BackendCaps {
        BackendCaps::BLOCK_DEVICE
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        let n = self.submitted.fetch_add(1, Ordering::Relaxed);
        let id = req.id();
        match n % 13 {
            3 => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                Submit::Done(Err(Errno::EAGAIN))
            }
            7 => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                Submit::Done(Ok(req.len() / 2))
            }
            n if n % 2 == 0 && id.index() < SLOTS_TRACKED => {
                let i = id.index();
                self.pending_len[i].store(req.len(), Ordering::Relaxed);
                self.pending[i].store(id.to_u64() | PRESENT, Ordering::Release);
                self.queued.fetch_add(1, Ordering::Relaxed);
                Submit::Queued
            }
            _ => Submit::Done(Ok(req.len())),
        }
    }
}

type E<'a> = Engine<Vec<MapEntry>, OwnedStorage, &'a TableBackend, &'a CountingPages>;

/// Completes every queued request in the table; returns how many.
fn drain(engine: &E<'_>, backend: &TableBackend) -> u64 {
    let mut n = 0;
    for i in 0..SLOTS_TRACKED {
        let v = backend.pending[i].swap(0, Ordering::Acquire);
        if v != 0 {
            let len = backend.pending_len[i].load(Ordering::Relaxed);
            // A refusal would mean a bookkeeping bug; it is counted by the engine's stats.
            let _ = engine.complete(RequestId::from_u64(v & !PRESENT).expect("engine ids fit"), Ok(len));
            n += 1;
        }
    }
    n
}

/// Retries while the pool is empty (the engine never waits; the caller does).
fn retry(mut op: impl FnMut() -> Result<(), SwapError>) {
    loop {
        match op() {
            Err(SwapError::WouldBlock) => std::thread::yield_now(),
            other => {
                other.unwrap();
                return;
            }
        }
    }
}

/// One round: a plugged batch of writes (with a break in adjacency and a large folio
/// split across the extent boundary), a plugged batch of reads, and every tenth round
/// a synchronous write and read.
fn round(engine: &E<'_>, i: u64) {
    const MAY: FsContext = FsContext::MayEnterFs;
    let base = 1 + (i * 9) % 200;
    {
        let mut plug = engine.plug();
        for k in 0..8 {
            retry(|| plug.write(Folio::small(base + k, base + k), MAY));
        }
        retry(|| plug.write(Folio::small(1000, base + 20), MAY));
        retry(|| plug.write(Folio::large(2000, 254, 4), MAY)); // slots 254..258 span two extents
    }
    {
        let mut plug = engine.plug();
        for k in 0..4 {
            retry(|| plug.read(Folio::small(3000 + k, base + k)));
        }
        retry(|| plug.read(Folio::large(4000, 300, 2)));
    }
    if i % 10 == 0 {
        let wait = || std::hint::spin_loop();
        let _ = engine.write_sync(Folio::small(5000, base), MAY, wait);
        let _ = engine.read_sync(Folio::large(5001, 253, 4), wait);
    }
}

#[test]
fn no_allocation_on_the_io_path() {
    let backend = TableBackend::new();
    let pages = CountingPages::default();
    let map = device_map(&[(256, 1000), (256, 5000)]).unwrap();
    let engine: E<'_> =
        Engine::new(map, OwnedStorage::new(StorageConfig::default()).unwrap(), &backend, &pages).unwrap();
    let stop = AtomicBool::new(false);
    let ready = AtomicBool::new(false);
    let completed = std::thread::scope(|s| {
        let completer = s.spawn(|| {
            counting(true);
            ready.store(true, Ordering::Release);
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                n += drain(&engine, &backend);
                std::thread::yield_now();
            }
            n += drain(&engine, &backend);
            counting(false);
            n
        });
        while !ready.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        // Warm up, then measure.
        for i in 0..50 {
            round(&engine, i);
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        counting(true);
        for i in 0..5000 {
            round(&engine, i);
        }
        counting(false);
        // Let the completer finish the last queued requests, still counted.
        while engine.in_flight() != 0 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Release);
        let n = completer.join().unwrap();
        let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(allocations, 0, "allocations on the I/O path");
        n
    });

    // The run did what it claims: queued completions from the other thread, failures,
    // sync requests, and every page action balanced.
    let st = engine.stats();
    assert_eq!(st.requests_submitted, backend.submitted.load(Ordering::Relaxed));
    assert_eq!(st.requests_completed, st.requests_submitted);
    assert_eq!(st.rejected_completions, 0);
    assert_eq!(completed, backend.queued.load(Ordering::Relaxed));
    assert!(completed > 5_000, "queued completions from the completer thread: {completed}");
    assert!(backend.failed.load(Ordering::Relaxed) > 1_000);
    assert!(st.requests_submitted > 25_000, "{st:?}");
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(l(&pages.pin), l(&pages.unpin));
    assert_eq!(l(&pages.start_writeback), l(&pages.end_writeback));
    assert_eq!(l(&pages.dirty), l(&pages.clear_reclaim));
    assert_eq!(l(&pages.swap_out), st.pages_out);
    assert_eq!(l(&pages.swap_in), st.pages_in);
    assert_eq!(l(&pages.failed), st.write_failures + st.read_failures);
    assert_eq!(engine.in_flight(), 0);
    engine.deactivate().unwrap();
}
