//! The Linux drivers' error paths, on a real file with `O_DIRECT`: injected CQE errors,
//! short transfers (real and injected), drop with I/O in flight, stale `user_data`, and
//! the pread fallback. Each test names the rule it pins down.
#![cfg(all(feature = "linux", target_os = "linux"))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swapdio::fault::{FaultConfig, FaultKinds};
use swapdio::linux::direct::{Arena, Target};
use swapdio::linux::pread::PreadBackend;
use swapdio::linux::uring::{DriverConfig, UringBackend};
use swapdio::testkit::{file_map, MemPages};
use swapdio::*;

const PAGE: usize = PAGE_SIZE;

mod support;
use support::ScratchFile as Scratch;

impl Scratch {
    /// `pages` written pages (zeros), plus `tail` extra bytes.
    fn new(name: &str, pages: usize, tail: usize) -> Scratch {
        Scratch::written("driver-tests", name, pages * PAGE + tail)
    }
}

fn stamp(slot: u64, tag: u64) -> Vec<u8> {
    (0..PAGE / 8).flat_map(|i| (slot << 40 ^ tag << 20 ^ i as u64).to_le_bytes()).collect()
}

fn page(arena: &Arena, p: usize) -> Vec<u8> {
    let mut v = vec![0u8; PAGE];
    assert!(arena.copy_out(p, &mut v));
    v
}

type UringEngine = Engine<Vec<MapEntry>, OwnedStorage, Arc<UringBackend>, &'static MemPages>;

struct Rig {
    arena: Arc<Arena>,
    backend: Arc<UringBackend>,
    engine: Arc<UringEngine>,
    pages: &'static MemPages,
    _file: Scratch,
}

fn uring_rig(name: &str, slots: u64, file_pages: usize, tail: usize, faults: FaultConfig) -> Rig {
    let file = Scratch::new(name, file_pages, tail);
    let arena = Arc::new(Arena::new(256).unwrap());
    let storage = StorageConfig::default();
    let config = DriverConfig { faults, ..DriverConfig::for_storage(storage) };
    let backend = Arc::new(UringBackend::new(Target::file(&file.0).unwrap(), arena.clone(), config).unwrap());
    let pages: &'static MemPages = Box::leak(Box::new(MemPages::new()));
    let engine = Arc::new(
        Engine::new(file_map(slots).unwrap(), OwnedStorage::new(storage).unwrap(), backend.clone(), pages).unwrap(),
    );
    assert!(backend.connect(&engine));
    Rig { arena, backend, engine, pages, _file: file }
}

fn wait_idle<M: AsRef<[MapEntry]>, S: Storage, B: Backend, P: PageOps>(engine: &Engine<M, S, B, P>) {
    let t = Instant::now();
    while engine.in_flight() != 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "requests never completed");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Writes `n` folios at slots `first..` from arena pages `first..`, plugged.
fn write_run(rig: &Rig, first: u64, n: u64, tag: u64) {
    let mut plug = rig.engine.plug();
    for s in first..first + n {
        assert!(rig.arena.copy_in(s as usize, &stamp(s, tag)));
        rig.pages.prepare_write(FolioId(s));
        plug.write(Folio::small(s, s), FsContext::MayEnterFs).unwrap();
    }
}

/// Reads `n` folios at slots `first..` into arena pages `dst..`, plugged.
fn read_run(rig: &Rig, first: u64, n: u64, dst: u64) {
    let mut plug = rig.engine.plug();
    for i in 0..n {
        rig.arena.copy_in((dst + i) as usize, &[0xee; PAGE]);
        rig.pages.prepare_read(FolioId(dst + i));
        plug.read(Folio::small(dst + i, first + i)).unwrap();
    }
}

#[test]
fn uring_roundtrip_moves_pages_through_the_file_at_slot_positions() {
    let rig = uring_rig("roundtrip", 64, 64, 0, FaultConfig::NONE);
    write_run(&rig, 1, 40, 7);
    wait_idle(&rig.engine);
    read_run(&rig, 1, 40, 100);
    wait_idle(&rig.engine);
    for i in 0..40u64 {
        assert_eq!(page(&rig.arena, 100 + i as usize), stamp(1 + i, 7), "slot {}", 1 + i);
        assert!(rig.pages.state(FolioId(100 + i)).uptodate);
    }
    // File mode: slot s is file bytes s * PAGE_SIZE.
    let bytes = std::fs::read(&rig._file.0).unwrap();
    assert_eq!(&bytes[5 * PAGE..6 * PAGE], &stamp(5, 7)[..]);
    assert_eq!(rig.pages.violations(), Vec::<String>::new());
    assert_eq!(rig.pages.pins_held(), 0);
    let st = rig.backend.stats();
    assert_eq!(st.submitted, st.completed);
    assert_eq!(rig.engine.stats().requests_submitted, 4, "40 adjacent folios plug into 2 requests each way");
}

#[test]
fn injected_cqe_errors_redirty_writes_and_leave_reads_not_uptodate() {
    let faults = FaultConfig { rate_ppm: 1_000_000, seed: 1, kinds: FaultKinds::EIO };
    let rig = uring_rig("cqe-errors", 64, 64, 0, faults);
    for s in 1..9u64 {
        rig.arena.copy_in(s as usize, &stamp(s, 1));
        rig.pages.prepare_write(FolioId(s));
        rig.engine.write(None, Folio::small(s, s), FsContext::MayEnterFs).unwrap();
    }
    wait_idle(&rig.engine);
    for s in 1..9u64 {
        let st = rig.pages.state(FolioId(s));
        assert!(st.dirty && !st.writeback && !st.reclaim, "slot {s}: {st:?}");
    }
    read_run(&rig, 1, 4, 200);
    wait_idle(&rig.engine);
    for i in 0..4u64 {
        let st = rig.pages.state(FolioId(200 + i));
        assert!(!st.uptodate && !st.locked, "{st:?}");
    }
    let failed = rig
        .pages
        .events()
        .iter()
        .filter(|e| matches!(e, SwapEvent::WriteFailed { failure: IoFailure::Errno(Errno::EIO), .. }))
        .count();
    assert_eq!(failed, 8);
    assert_eq!(rig.engine.stats().read_failures, 4);
    assert_eq!(rig.backend.stats().injected, rig.backend.stats().completed);
    assert_eq!(rig.pages.violations(), Vec::<String>::new());
    assert_eq!(rig.pages.pins_held(), 0);
}

#[test]
fn injected_transient_errors_are_reported_retryable() {
    let faults = FaultConfig { rate_ppm: 1_000_000, seed: 3, kinds: FaultKinds::EAGAIN };
    let rig = uring_rig("eagain", 16, 16, 0, faults);
    rig.pages.prepare_write(FolioId(3));
    rig.engine.write(None, Folio::small(3, 3), FsContext::MayEnterFs).unwrap();
    wait_idle(&rig.engine);
    assert!(rig.pages.events().iter().any(|e| matches!(
        e,
        SwapEvent::WriteFailed { retryable: true, failure: IoFailure::Errno(Errno::EAGAIN), .. }
    )));
    assert!(rig.pages.state(FolioId(3)).dirty);
}

#[test]
fn injected_short_transfer_fails_only_folios_not_fully_covered() {
    let faults = FaultConfig { rate_ppm: 1_000_000, seed: 11, kinds: FaultKinds::SHORT };
    let rig = uring_rig("short-injected", 64, 64, 0, faults);
    write_run(&rig, 1, 16, 2);
    wait_idle(&rig.engine);
    let events = rig.pages.events();
    let Some(SwapEvent::WriteFailed { failure: IoFailure::Short { done, expected }, .. }) =
        events.iter().find(|e| matches!(e, SwapEvent::WriteFailed { .. }))
    else {
        panic!("no short failure in {events:?}")
    };
    assert_eq!(*expected, 16 * PAGE as u64);
    let covered = done / PAGE as u64;
    for s in 1..17u64 {
        let ok = s - 1 < covered;
        assert_eq!(!rig.pages.state(FolioId(s)).dirty, ok, "slot {s}, {done} bytes done");
    }
    assert_eq!(rig.engine.stats().short_transfers, 1);
    assert_eq!(rig.pages.violations(), Vec::<String>::new());
}

#[test]
fn real_short_read_resubmits_aligned_remainder_then_reports_the_short_count() {
    // The map has 32 slots, the file only 20 pages: a read crossing EOF is short at an
    // aligned point; the remainder is resubmitted, returns 0, and the short count goes
    // to the engine, which fails only the folios past EOF.
    let rig = uring_rig("short-real", 32, 20, 0, FaultConfig::NONE);
    write_run(&rig, 1, 19, 4);
    wait_idle(&rig.engine);
    read_run(&rig, 12, 16, 100); // slots 12..28, EOF at slot 20
    wait_idle(&rig.engine);
    for i in 0..16u64 {
        let slot = 12 + i;
        let st = rig.pages.state(FolioId(100 + i));
        assert_eq!(st.uptodate, slot < 20, "slot {slot}");
        if slot < 20 {
            assert_eq!(page(&rig.arena, (100 + i) as usize), stamp(slot, 4));
        }
    }
    assert!(rig.backend.stats().resubmitted >= 1, "{:?}", rig.backend.stats());
    assert_eq!(rig.engine.stats().short_transfers, 1);
    assert_eq!(rig.pages.pins_held(), 0);
}

#[test]
fn drop_with_io_in_flight_cancels_and_reaps_before_memory_is_freed() {
    let rig = uring_rig("drop-in-flight", 4096, 4096, 0, FaultConfig::NONE);
    let counters = rig.backend.counters();
    // Fill the pool: 32 requests of 8 pages, all in flight at once.
    for r in 0..32u64 {
        let mut plug = rig.engine.plug();
        for i in 0..8u64 {
            let f = 8 * r + i;
            rig.pages.prepare_read(FolioId(f));
            plug.read(Folio::small(f, 1 + 97 * r + i)).unwrap();
        }
    }
    let Rig { arena, backend, engine, .. } = rig;
    drop(engine);
    // Usually the last reference: cancels, reaps, joins the reaper. But the reaper may hold
    // the engine for a moment (delivering a completion), and then the last backend reference
    // goes on the reaper thread, which drains before it exits. Either way the arena is
    // released only after every request was reaped.
    drop(backend);
    let t = Instant::now();
    while Arc::strong_count(&arena) != 1 {
        assert!(t.elapsed() < Duration::from_secs(10), "the driver never released the arena");
        std::thread::sleep(Duration::from_millis(1));
    }
    let st = counters.snapshot();
    assert_eq!(st.submitted, 32);
    assert_eq!(st.completed, st.submitted, "the arena was released before every request was reaped: {st:?}");
}

/// Records the ids the engine submits, forwarding to the io_uring driver.
struct Recording {
    inner: Arc<UringBackend>,
    ids: std::sync::Mutex<Vec<RequestId>>,
}

impl Backend for Recording {
    fn caps(&self) -> BackendCaps {
        self.inner.caps()
    }
    fn submit(&self, req: &Request<'_>) -> Submit {
        self.ids.lock().unwrap().push(req.id());
        self.inner.submit(req)
    }
}

#[test]
fn stale_user_data_is_dropped_and_never_completes_a_reused_slot() {
    let file = Scratch::new("stale", 64, 0);
    let arena = Arc::new(Arena::new(64).unwrap());
    let storage = StorageConfig { pool: 1, sync: 1, splits: 1 };
    let config = DriverConfig::for_storage(storage);
    let uring = Arc::new(UringBackend::new(Target::file(&file.0).unwrap(), arena.clone(), config).unwrap());
    let rec = Recording { inner: uring.clone(), ids: Default::default() };
    let pages: &'static MemPages = Box::leak(Box::new(MemPages::new()));
    let engine = Arc::new(Engine::new(file_map(64).unwrap(), OwnedStorage::new(storage).unwrap(), rec, pages).unwrap());
    assert!(uring.connect(&engine));
    pages.prepare_read(FolioId(1));
    engine.read(None, Folio::small(1, 1)).unwrap();
    wait_idle(&*engine);
    // The one pool slot is reused under the next generation and kept in flight by a
    // long plug-less write... then the first request's id arrives again.
    let old = engine.backend().ids.lock().unwrap()[0];
    pages.prepare_read(FolioId(2));
    engine.read(None, Folio::small(2, 2)).unwrap();
    wait_idle(&*engine);
    let new = engine.backend().ids.lock().unwrap()[1];
    assert_eq!(old.index(), new.index());
    assert_ne!(old.generation(), new.generation());
    uring.post_nop(old.to_u64()).unwrap();
    uring.post_nop(new.to_u64()).unwrap();
    let t = Instant::now();
    while uring.stats().stale < 2 {
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", uring.stats());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(engine.stats().rejected_completions, 0, "the driver never forwarded them");
    assert_eq!(engine.stats().requests_completed, 2);
    assert_eq!(pages.state(FolioId(1)).unlocks, 1);
    assert_eq!(pages.state(FolioId(2)).unlocks, 1);
    assert_eq!(pages.violations(), Vec::<String>::new());
}

/// [`MemPages`] that also records on which thread each read completed
/// (`set_uptodate` runs only in completion).
struct ThreadSpy {
    pages: MemPages,
    submitter: std::thread::ThreadId,
    on_submitter: AtomicU64,
    elsewhere: AtomicU64,
}

impl PageOps for ThreadSpy {
    fn set_uptodate(&self, f: FolioId) {
        let c = if std::thread::current().id() == self.submitter { &self.on_submitter } else { &self.elsewhere };
        c.fetch_add(1, Ordering::Relaxed);
        self.pages.set_uptodate(f)
    }
    fn set_dirty(&self, f: FolioId) {
        self.pages.set_dirty(f)
    }
    fn clear_reclaim(&self, f: FolioId) {
        self.pages.clear_reclaim(f)
    }
    fn start_writeback(&self, f: FolioId) {
        self.pages.start_writeback(f)
    }
    fn end_writeback(&self, f: FolioId) {
        self.pages.end_writeback(f)
    }
    fn unlock(&self, f: FolioId) {
        self.pages.unlock(f)
    }
    fn pin(&self, f: FolioId) {
        self.pages.pin(f)
    }
    fn unpin(&self, f: FolioId) {
        self.pages.unpin(f)
    }
    fn event(&self, e: SwapEvent) {
        self.pages.event(e)
    }
}

type SpiedEngine = Engine<Vec<MapEntry>, OwnedStorage, Arc<UringBackend>, ThreadSpy>;

/// An engine over a 1024-page file on the io_uring driver, connected to its reaper, whose
/// page operations count the threads completions run on (this thread is the submitter).
fn spied_engine(file: &Scratch) -> (Arc<UringBackend>, Arc<SpiedEngine>) {
    let arena = Arc::new(Arena::new(256).unwrap());
    let storage = StorageConfig::default();
    let uring =
        Arc::new(UringBackend::new(Target::file(&file.0).unwrap(), arena, DriverConfig::for_storage(storage)).unwrap());
    let spy = ThreadSpy {
        pages: MemPages::new(),
        submitter: std::thread::current().id(),
        on_submitter: AtomicU64::new(0),
        elsewhere: AtomicU64::new(0),
    };
    let engine = Arc::new(
        Engine::new(file_map(1024).unwrap(), OwnedStorage::new(storage).unwrap(), uring.clone(), spy).unwrap(),
    );
    assert!(uring.connect(&engine));
    (uring, engine)
}

#[test]
fn completions_arrive_from_the_reaper_concurrently_with_submission() {
    let file = Scratch::new("concurrent", 1024, 0);
    let (_, engine) = spied_engine(&file);
    // 2000 single-page reads through 200 folios, as fast as the pool of 32 allows: the
    // pool only refills because the reaper completes requests while this thread submits.
    let spy = engine.page_ops();
    let (mut done, mut f) = (0u64, 0u64);
    while done < 2000 {
        let folio = FolioId(f % 200);
        f += 1;
        if spy.pages.state(folio).locked {
            continue;
        }
        spy.pages.prepare_read(folio);
        match engine.read(None, Folio::small(folio.0, 1 + (f * 37) % 1000)) {
            Ok(()) => done += 1,
            Err(SwapError::WouldBlock) => {
                // Untouched by the engine: unlock it again ourselves.
                spy.pages.unlock(folio);
                std::thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    }
    wait_idle(&*engine);
    assert_eq!(engine.stats().pages_in, 2000);
    assert_eq!(spy.on_submitter.load(Ordering::Relaxed), 0, "io_uring never completes on the submitting thread");
    assert_eq!(spy.elsewhere.load(Ordering::Relaxed), 2000);
    assert!(engine.stats().would_block > 0, "the pool ran dry, so completions had to overlap submission");
    assert_eq!(spy.pages.violations(), Vec::<String>::new());
    assert_eq!(spy.pages.pins_held(), 0);
}

/// Reads `n` single pages through folios `0..200`, calling `on_block` whenever the pool
/// is empty.
fn read_burst(
    engine: &Engine<Vec<MapEntry>, OwnedStorage, Arc<UringBackend>, ThreadSpy>,
    n: u64,
    mut on_block: impl FnMut(),
) {
    let spy = engine.page_ops();
    let (mut done, mut f) = (0u64, 0u64);
    while done < n {
        let folio = FolioId(f % 200);
        f += 1;
        if spy.pages.state(folio).locked {
            continue;
        }
        spy.pages.prepare_read(folio);
        match engine.read(None, Folio::small(folio.0, 1 + (f * 37) % 1000)) {
            Ok(()) => done += 1,
            Err(SwapError::WouldBlock) => {
                spy.pages.unlock(folio);
                on_block();
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn foreground_waiter_completes_its_own_requests_and_hands_back_to_the_reaper_on_drop() {
    let file = Scratch::new("foreground", 1024, 0);
    let (uring, engine) = spied_engine(&file);
    let spy = engine.page_ops();
    {
        let mut fg = uring.foreground();
        read_burst(&engine, 1000, || {
            fg.wait(Duration::from_millis(1));
        });
        let t = Instant::now();
        while engine.in_flight() != 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "the foreground waiter never completed its requests");
            fg.wait(Duration::from_millis(1));
        }
        assert_eq!(fg.wait(Duration::from_secs(5)), 0, "nothing in flight: wait returns at once");
    }
    let mine = spy.on_submitter.load(Ordering::Relaxed);
    assert_eq!(mine + spy.elsewhere.load(Ordering::Relaxed), 1000);
    // Only the reaper's wait already under way when the waiter arrived may take a batch.
    assert!(mine >= 1000 - 64, "the waiter completed only {mine} of its 1000 reads itself");
    // Dropped: the reaper completes everything again, this thread never does.
    let before = spy.elsewhere.load(Ordering::Relaxed);
    read_burst(&engine, 300, std::thread::yield_now);
    wait_idle(&*engine);
    assert_eq!(spy.on_submitter.load(Ordering::Relaxed), mine, "after the drop no completion runs on the submitter");
    assert_eq!(spy.elsewhere.load(Ordering::Relaxed) - before, 300);
    assert_eq!(engine.stats().pages_in, 1300);
    assert_eq!(spy.pages.violations(), Vec::<String>::new());
    assert_eq!(spy.pages.pins_held(), 0);
}

/// A Foreground held by a thread that is busy elsewhere (not waiting) must not strand
/// the requests of another thread on the same ring: a thread holding no Foreground has
/// its requests reaped by the reaper, which stays awake while any of them is in flight.
#[test]
fn foreground_holder_busy_elsewhere_does_not_strand_other_threads_requests() {
    let file = Scratch::new("foreground-shared", 1024, 0);
    let (uring, engine) = spied_engine(&file);
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|sc| {
        let u = uring.clone();
        sc.spawn(move || {
            let _fg = u.foreground();
            held_tx.send(()).unwrap();
            // Busy elsewhere: never waits on the ring while the other thread reads.
            let _ = done_rx.recv_timeout(Duration::from_secs(30));
        });
        held_rx.recv().unwrap();
        let t = Instant::now();
        read_burst(&engine, 500, std::thread::yield_now);
        while engine.in_flight() != 0 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "requests of a thread without a Foreground waited for the busy holder"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        // Without the reaper these reads would wait for the holder to give up (30 s).
        assert!(t.elapsed() < Duration::from_secs(20), "the reads waited for the busy holder: {:?}", t.elapsed());
        done_tx.send(()).unwrap();
    });
    let spy = engine.page_ops();
    assert_eq!(spy.elsewhere.load(Ordering::Relaxed) + spy.on_submitter.load(Ordering::Relaxed), 500);
    assert_eq!(engine.stats().pages_in, 500);
    assert_eq!(spy.pages.violations(), Vec::<String>::new());
    assert_eq!(spy.pages.pins_held(), 0);
}

type PreadEngine = Engine<Vec<MapEntry>, OwnedStorage, PreadBackend, &'static MemPages>;

fn pread_rig(name: &str, faults: FaultConfig) -> (Scratch, Arc<Arena>, PreadEngine, &'static MemPages) {
    let file = Scratch::new(name, 64, 0);
    let arena = Arc::new(Arena::new(128).unwrap());
    let backend = PreadBackend::new(Target::file(&file.0).unwrap(), arena.clone(), faults);
    let pages: &'static MemPages = Box::leak(Box::new(MemPages::new()));
    let engine =
        Engine::new(file_map(64).unwrap(), OwnedStorage::new(StorageConfig::default()).unwrap(), backend, pages)
            .unwrap();
    (file, arena, engine, pages)
}

#[test]
fn pread_fallback_roundtrip_completes_inline() {
    let (_f, arena, engine, pages) = pread_rig("pread", FaultConfig::NONE);
    {
        let mut plug = engine.plug();
        for s in 1..33u64 {
            arena.copy_in(s as usize, &stamp(s, 9));
            pages.prepare_write(FolioId(s));
            plug.write(Folio::small(s, s), FsContext::MayEnterFs).unwrap();
        }
    }
    assert_eq!(engine.in_flight(), 0, "pread completes before submit returns");
    for s in 1..33u64 {
        pages.prepare_read(FolioId(64 + s));
        engine.read(None, Folio::small(64 + s, s)).unwrap();
        assert_eq!(page(&arena, 64 + s as usize), stamp(s, 9));
    }
    assert_eq!(engine.backend().stats().completed, 1 + 32, "32 plugged writes are one request");
    assert_eq!(pages.violations(), Vec::<String>::new());
}

#[test]
fn pread_injected_errors_redirty_writes() {
    let faults = FaultConfig { rate_ppm: 1_000_000, seed: 5, kinds: FaultKinds::EIO };
    let (_f, _arena, engine, pages) = pread_rig("pread-faults", faults);
    pages.prepare_write(FolioId(1));
    engine.write(None, Folio::small(1, 1), FsContext::MayEnterFs).unwrap();
    let st = pages.state(FolioId(1));
    assert!(st.dirty && !st.writeback, "{st:?}");
    assert_eq!(engine.stats().write_failures, 1);
}

#[test]
fn folio_outside_the_arena_is_refused_before_any_io() {
    let (_f, _arena, engine, pages) = pread_rig("pread-efault", FaultConfig::NONE);
    pages.prepare_read(FolioId(500));
    engine.read(None, Folio::small(500, 1)).unwrap();
    let st = pages.state(FolioId(500));
    assert!(!st.uptodate && !st.locked);
    assert!(pages
        .events()
        .iter()
        .any(|e| matches!(e, SwapEvent::ReadFailed { failure: IoFailure::Errno(Errno::EFAULT), .. })));
    assert_eq!(engine.backend().stats().refused, 1);
}
