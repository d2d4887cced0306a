//! A userspace pager on the engine: a memory region served by userfaultfd, backed by a
//! swap file activated by swapdio, with a resident budget smaller than the region.
//!
//! This is what VMMs do to swap guest memory (crosvm's vmm-swap), what snapshot restore
//! does (Firecracker's userfaultfd handlers) and what out-of-core mmap does (LLNL UMap),
//! with the swap engine's rules for the I/O: every page write completes exactly once,
//! a failed write redirties its page, nothing is lost.
//!
//! * **Faults.** Handler threads read the userfaultfd, up to 16 faults per read, and
//!   read the swapped pages of all of them in one plugged batch (faults from many
//!   threads are read in parallel, not one after another). A missing page that was never
//!   written is mapped without I/O (`UFFDIO_ZEROPAGE` for a read, a copy of zeros for a
//!   write); a page on disk is read through the engine into a staging page of the
//!   driver's arena and mapped with `UFFDIO_COPY`. A page that was clean when it was
//!   evicted is mapped write-protected on a read fault, so its first write is seen (the
//!   page becomes dirty); a page that was dirty when evicted is mapped writable and
//!   counted dirty, as the kernel's `do_swap_page` maps an exclusive swapped-in page
//!   writable on a read fault ([`PagerConfig::predict_writes`]).
//! * **Readahead.** When one thread's faults are sequential the following swapped pages
//!   are read in the same plugged batch (adjacent slots share one request of up to 32
//!   pages); the window doubles up to [`PagerConfig::readahead`] and drops to 0 on a
//!   random fault (`swap_vma_readahead`). [`Pager::prefetch`] loads whole ranges in
//!   batches and wakes once (snapshot restore).
//! * **Eviction** keeps the resident pages within the budget: a CLOCK over the
//!   resident pages. The reference bit is set by the faults the pager sees (a page
//!   faulted in, a clean page's first write): userspace cannot read the hardware
//!   accessed bit cheaply, and CLOCK needs no list update on the fault path (one bit, no
//!   lock-ordered LRU lists), so a page just brought in gets one sweep of grace. Victims
//!   are write-protected (`UFFDIO_WRITEPROTECT`) *before* their bytes are copied for
//!   the write-out, written in one plugged batch, and dropped (`MADV_DONTNEED`) only
//!   after the write succeeded. A background evictor (kswapd) keeps
//!   [`PagerConfig::evict_headroom`] pages free ahead of the faults, and has at most
//!   [`PagerConfig::evict_in_flight`] writes on the device at once, so that a fault's
//!   read does not queue behind a whole batch of writes; a handler evicts on its own
//!   thread only when the budget is full (direct reclaim). A write to a victim during
//!   its write-out faults; the handler marks the page redirtied and lets the write go on, and the page stays
//!   resident and dirty (the kernel's `folio_redirty_for_writepage`): the write is
//!   never lost. A failed write leaves the page resident and dirty; a later sweep
//!   writes it again (`__end_swap_bio_write`'s redirty). Clean pages are dropped
//!   without I/O; pages whose bytes are all zero are dropped without I/O and come back
//!   as zeros (the kernel's zero-filled swap entries).
//! * **Errors.** A page whose read fails (after retries) is marked failed and poisoned
//!   (`UFFDIO_POISON`): every thread touching it gets `SIGBUS` from the kernel with
//!   `si_addr` in the page — what the kernel does on a swap-in I/O error
//!   (`VM_FAULT_SIGBUS`) — never silently wrong data; [`Pager::errors`] names the page,
//!   slot and errno, and the error is logged on stderr. [`Pager::prefetch`] returns the
//!   error instead. (Before Linux 6.6, without `UFFDIO_POISON`, the faulting thread is
//!   sent `SIGBUS` with `tgkill`, without an address.)
//! * **Shutdown.** [`Pager::shutdown`] stops eviction, waits for every read and write
//!   in flight, and accounts for every page ([`PageCensus`]: each page is in exactly one
//!   state, none still moving). From then on the region stays mapped and resident pages
//!   keep working, but a fault on a page that is not resident gets `SIGBUS` at once
//!   (the page is poisoned as above; the pager no longer reads); no thread is left
//!   waiting. Dropping the pager unmaps the region (an access after that is the caller's
//!   use-after-free: `SIGSEGV`).
//!
//! Page `i` of the region lives at swap slot `i + 1` (slot 0 is the header): the swap
//! file must have more slots than the region has pages.

mod evict;
mod fault;
mod io;
mod table;
mod uffd;

pub use table::PageState;

use crate::errno::Errno;
use crate::fault::FaultConfig;
use crate::linux::direct::{Arena, Target};
use crate::linux::uring::DriverConfig;
use crate::map::{MapEntry, SwapMap};
use crate::{StorageConfig, PAGE_SIZE};
use io::{EngineIo, PageIo, PreadIo};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use table::Table;

/// How pages move between the region and the swap file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoPath {
    /// The engine over the io_uring driver: plugged batches, one wait per batch.
    Engine,
    /// The baseline: one synchronous `pread`/`pwrite` per page, no engine, no io_uring.
    Pread,
}

/// A pager's shape.
#[derive(Clone, Copy, Debug)]
pub struct PagerConfig {
    /// Pages in the region (N / 4096).
    pub pages: usize,
    /// Resident budget in pages (M / 4096): at least `evict_batch + 2 * (readahead + 1)`
    /// and less than or equal to `pages`.
    pub budget: usize,
    /// Fault handler threads.
    pub handlers: usize,
    /// Victims written out per batch.
    pub evict_batch: usize,
    /// Eviction writes in flight at most (the eviction lane's request pool): a fault's
    /// read queues behind at most this many writes on the device. 8 (against 64) took the
    /// p99 fault latency of random faults from 1 thread from 347-429 to 199-248 us with
    /// no clear loss of pages/s.
    pub evict_in_flight: usize,
    /// Largest readahead window, in pages after the faulting one (0: none).
    pub readahead: usize,
    /// Extra attempts for a page whose read failed before the page is marked failed.
    pub read_retries: u32,
    /// How pages move.
    pub io: IoPath,
    /// Faults injected at the io_uring driver's completions (engine path only).
    pub faults: FaultConfig,
    /// Inject into reads.
    pub fault_reads: bool,
    /// Inject into writes.
    pub fault_writes: bool,
    /// The swap file already holds the region (page `i` at slot `i + 1`, as
    /// [`Pager::flush`] leaves it): every page starts swapped (snapshot restore).
    pub restore: bool,
    /// A page that was dirty when it was evicted is mapped writable (and counted dirty)
    /// when a read fault brings it back, instead of write-protected: the kernel's
    /// `do_swap_page` maps an exclusive swapped-in page writable on a read fault too,
    /// and finds out later from the hardware dirty bit whether it was written. Userspace
    /// has no dirty bit, so the page is treated as dirty: a page that is read but not
    /// written again is written out once more at its next eviction (one more write in a
    /// batch), and a page that is rewritten — the common case for pages evicted dirty —
    /// saves a write-protect fault, a full userfaultfd round trip. Pages evicted clean
    /// (and restored pages) still come back write-protected.
    pub predict_writes: bool,
}

impl PagerConfig {
    /// A pager of `pages` pages with `budget` resident, the engine path, 2 handlers,
    /// batches of 64 with 8 writes in flight, readahead up to 31 pages (one full
    /// 32-page request).
    pub fn new(pages: usize, budget: usize) -> PagerConfig {
        PagerConfig {
            pages,
            budget,
            handlers: 2,
            evict_batch: 64,
            evict_in_flight: 8,
            readahead: 31,
            read_retries: 3,
            io: IoPath::Engine,
            faults: FaultConfig::NONE,
            fault_reads: true,
            fault_writes: true,
            restore: false,
            predict_writes: true,
        }
    }

    /// Pages the background evictor keeps free (kswapd's high watermark): four batches,
    /// at most a quarter of the budget, at least one batch. With room ahead of the
    /// faults, a fault rarely waits for eviction on its own thread (direct reclaim):
    /// random faults from 1 thread moved 12-18 % more pages than with one batch.
    pub fn evict_headroom(&self) -> usize {
        (4 * self.evict_batch).min(self.budget / 4).max(self.evict_batch)
    }
}

/// Why a pager could not be built, or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum PagerError {
    /// The configuration does not fit (budget, swap file size).
    #[error("pager configuration: {0}")]
    Config(String),
    /// userfaultfd is unavailable or refused the region.
    #[error("userfaultfd: {0}")]
    Uffd(std::io::Error),
    /// Setting up memory or the driver failed.
    #[error("setup: {0}")]
    Setup(std::io::Error),
    /// A page could not be read (after retries): the page is marked failed.
    #[error("reading page {page} (slot {slot}) failed: errno {errno}")]
    Read {
        /// Page of the region.
        page: usize,
        /// Its swap slot.
        slot: u64,
        /// The error.
        errno: Errno,
    },
    /// The pager is shutting down.
    #[error("the pager is shut down")]
    Shutdown,
}

/// A page the pager could not read (the faulting thread got `SIGBUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageError {
    /// Page of the region.
    pub page: usize,
    /// Its swap slot.
    pub slot: u64,
    /// The error of the last attempt.
    pub errno: Errno,
}

/// Counters since the pager started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PagerStats {
    /// Missing-page faults handled (including spurious ones).
    pub faults: u64,
    /// Write-protect faults handled (first write of a clean page, or during write-out).
    pub wp_faults: u64,
    /// Faults on never-written pages resolved without I/O.
    pub zero_fills: u64,
    /// Pages read from the swap file (faulting page + readahead + prefetch).
    pub pages_in: u64,
    /// Of those, read ahead of a sequential fault.
    pub readahead: u64,
    /// Of those, loaded by [`Pager::prefetch`].
    pub prefetched: u64,
    /// Pages mapped writable on a read fault because they were evicted dirty
    /// ([`PagerConfig::predict_writes`]).
    pub predicted_writes: u64,
    /// Pages written to the swap file successfully.
    pub pages_out: u64,
    /// Victims dropped without I/O: clean.
    pub clean_drops: u64,
    /// Victims dropped without I/O: all zero.
    pub zero_drops: u64,
    /// Page writes that failed (the page stayed resident and dirty).
    pub write_failures: u64,
    /// Pages written successfully after an earlier failed write.
    pub rewritten: u64,
    /// Victims written to during their write-out (kept resident and dirty).
    pub redirtied: u64,
    /// Page reads that failed (including ones retried successfully).
    pub read_failures: u64,
    /// `SIGBUS` sent to faulting threads.
    pub sigbus: u64,
    /// Eviction batches.
    pub evictions: u64,
    /// Requests (engine path) or system calls (pread path) issued.
    pub requests: u64,
    /// Faults injected by the driver.
    pub injected: u64,
}

/// Where every page is (see [`PageState`]); `moving` must be 0 after shutdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PageCensus {
    /// Never written (or all zero), not mapped.
    pub zero: usize,
    /// Zero page mapped.
    pub zero_mapped: usize,
    /// Resident, equal to the slot.
    pub clean: usize,
    /// Resident, not yet written out.
    pub dirty: usize,
    /// Being read or written (0 once shut down).
    pub moving: usize,
    /// On disk only.
    pub swapped: usize,
    /// Unreadable.
    pub failed: usize,
}

impl PageCensus {
    /// Pages counted (must equal the region's pages).
    pub fn total(&self) -> usize {
        self.zero + self.zero_mapped + self.clean + self.dirty + self.moving + self.swapped + self.failed
    }
    /// Resident pages.
    pub fn resident(&self) -> usize {
        self.zero_mapped + self.clean + self.dirty + self.moving
    }
}

#[derive(Default)]
struct Counters {
    faults: AtomicU64,
    wp_faults: AtomicU64,
    zero_fills: AtomicU64,
    pages_in: AtomicU64,
    readahead: AtomicU64,
    prefetched: AtomicU64,
    predicted_writes: AtomicU64,
    pages_out: AtomicU64,
    clean_drops: AtomicU64,
    zero_drops: AtomicU64,
    write_failures: AtomicU64,
    rewritten: AtomicU64,
    redirtied: AtomicU64,
    read_failures: AtomicU64,
    sigbus: AtomicU64,
    evictions: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// What the handler threads, the evictor and the caller share.
struct Shared {
    uffd: uffd::Uffd,
    /// A pidfd of this process, for `process_madvise` (eviction drops a batch at once).
    pidfd: Option<std::os::fd::OwnedFd>,
    /// `process_madvise` worked so far (cleared on the first refusal).
    batched_drop: AtomicBool,
    base: u64,
    config: PagerConfig,
    io: Box<dyn PageIo>,
    table: Mutex<Table>,
    /// Signalled when pages leave the resident set or stop moving.
    changed: Condvar,
    /// One eviction batch at a time (its staging pages are shared).
    evicting: Mutex<()>,
    /// Wakes the background evictor.
    evict_cv: Condvar,
    closing: AtomicBool,
    stop: AtomicBool,
    counters: Counters,
    errors: Mutex<Vec<PageError>>,
    /// First arena page of each staging area: eviction, then one per handler, then prefetch.
    handler_staging: usize,
    /// Staging pages of each handler: the most pages one handler reads in one batch.
    handler_batch: usize,
    prefetch_staging: usize,
}

/// Faults one handler reads in one batch at most (the messages of one userfaultfd read).
const FAULT_BATCH: usize = 16;

/// Staging pages a prefetch batch uses.
const PREFETCH_BATCH: usize = 256;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn addr(&self, page: usize) -> u64 {
        self.base + (page * PAGE_SIZE) as u64
    }

    /// The I/O lane of eviction (after the handlers' lanes).
    fn evict_lane(&self) -> usize {
        self.config.handlers
    }

    /// The I/O lane of prefetch.
    fn prefetch_lane(&self) -> usize {
        self.config.handlers + 1
    }

    fn slot(page: usize) -> u64 {
        page as u64 + 1
    }

    fn staging_ptr(&self, staging: usize) -> *mut u8 {
        // SAFETY: staging indexes are below the arena's page count by construction
        // (`Pager::new` sizes the arena for every staging area).
        unsafe { self.io.arena().base().add(staging * PAGE_SIZE) }
    }
}

/// A userfaultfd-served region backed by a swap file. See the module docs.
pub struct Pager {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    len: usize,
    shut: bool,
}

impl Pager {
    /// Maps a region of `config.pages` pages, registers it with a new userfaultfd for
    /// missing and write-protect faults, builds the I/O path over `map` and `target`
    /// (an activated swap file, either mode), and starts the handler threads and the
    /// evictor.
    pub fn new(config: PagerConfig, map: SwapMap<Vec<MapEntry>>, target: Target) -> Result<Pager, PagerError> {
        let c = config;
        if c.pages == 0 || c.budget > c.pages || c.handlers == 0 || c.evict_batch == 0 || c.evict_in_flight == 0 {
            return Err(PagerError::Config(
                "pages, handlers, evict_batch and evict_in_flight must be > 0, budget <= pages".into(),
            ));
        }
        let min_budget = c.evict_batch + 2 * (c.readahead + 1);
        if c.budget < min_budget {
            return Err(PagerError::Config(format!(
                "budget {} pages is below evict_batch + 2 * (readahead + 1) = {min_budget}",
                c.budget
            )));
        }
        if map.slots() <= c.pages as u64 {
            return Err(PagerError::Config(format!(
                "the swap file has {} slots; a region of {} pages needs {} (slot 0 is the header)",
                map.slots(),
                c.pages,
                c.pages + 1
            )));
        }
        let handler_staging = c.evict_batch;
        // A handler reads the faults of one userfaultfd read together (up to
        // FAULT_BATCH faults with their readahead), within its share of the budget left
        // after a batch of eviction, so the handlers' reads never fill the budget alone.
        let share = (c.budget - c.evict_batch) / (c.handlers + 1);
        let handler_batch = (FAULT_BATCH * (c.readahead + 1)).min(share).max(c.readahead + 1);
        let prefetch_staging = handler_staging + c.handlers * handler_batch;
        let arena = Arc::new(Arena::new(prefetch_staging + PREFETCH_BATCH).map_err(PagerError::Setup)?);
        let io: Box<dyn PageIo> = match c.io {
            IoPath::Engine => {
                let mut driver = DriverConfig::for_storage(StorageConfig::default());
                driver.faults = c.faults;
                driver.fault_reads = c.fault_reads;
                driver.fault_writes = c.fault_writes;
                // A lane per handler, one for eviction (`Shared::evict_lane`, with
                // evict_in_flight requests), one for prefetch.
                let mut pools = vec![EngineIo::LANE_POOL; c.handlers + 2];
                pools[c.handlers] = c.evict_in_flight;
                Box::new(EngineIo::new(map, &target, arena, driver, &pools).map_err(PagerError::Setup)?)
            }
            IoPath::Pread => Box::new(PreadIo::new(map, target, arena)),
        };
        let len = c.pages * PAGE_SIZE;
        // SAFETY: a fresh anonymous private mapping; nothing else is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(PagerError::Setup(std::io::Error::last_os_error()));
        }
        let unmap = |e| {
            // SAFETY: unmaps exactly the mapping made above, not yet shared.
            unsafe { libc::munmap(base, len) };
            e
        };
        // No transparent huge pages: the pager works in 4 KiB pages.
        // SAFETY: advice on the mapping made above.
        unsafe { libc::madvise(base, len, libc::MADV_NOHUGEPAGE) };
        let uffd = uffd::Uffd::open().map_err(|e| unmap(PagerError::Uffd(e)))?;
        uffd.register(base as u64, len as u64).map_err(|e| unmap(PagerError::Uffd(e)))?;
        let initial = if c.restore { PageState::Swapped } else { PageState::Zero };
        let shared = Arc::new(Shared {
            uffd,
            pidfd: own_pidfd(),
            batched_drop: AtomicBool::new(true),
            base: base as u64,
            config: c,
            io,
            table: Mutex::new(Table::new(c.pages, initial)),
            changed: Condvar::new(),
            evicting: Mutex::new(()),
            evict_cv: Condvar::new(),
            closing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            errors: Mutex::new(Vec::new()),
            handler_staging,
            handler_batch,
            prefetch_staging,
        });
        let mut pager = Pager { shared: shared.clone(), threads: Vec::new(), len, shut: false };
        for h in 0..c.handlers {
            let s = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("swapdio-uffd-{h}"))
                .spawn(move || fault::handler_loop(&s, h))
                .map_err(PagerError::Setup)?;
            pager.threads.push(t);
        }
        let s = shared.clone();
        let t = std::thread::Builder::new()
            .name("swapdio-evict".into())
            .spawn(move || evict::evictor_loop(&s))
            .map_err(PagerError::Setup)?;
        pager.threads.push(t);
        Ok(pager)
    }

    /// The region's first byte. Accesses through it fault pages in; they must stay
    /// inside [`Pager::len`] bytes and end before the pager is dropped.
    pub fn as_ptr(&self) -> *mut u8 {
        self.shared.base as *mut u8
    }

    /// The region's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never: `new` refuses 0 pages).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The configuration.
    pub fn config(&self) -> &PagerConfig {
        &self.shared.config
    }

    /// Loads every swapped page of `ranges` (page indexes) in plugged batches, maps them
    /// write-protected (clean), and wakes once per batch: the snapshot-restore call.
    /// Returns how many pages were read. A read that fails after retries marks the page
    /// failed and is returned as [`PagerError::Read`].
    pub fn prefetch(&self, ranges: &[std::ops::Range<usize>]) -> Result<u64, PagerError> {
        fault::prefetch(&self.shared, ranges)
    }

    /// Writes every dirty or zero-mapped page, and zeros to the slot of every page never
    /// written, so the swap file holds the whole region (page `i` at slot `i + 1`) for a
    /// later [`PagerConfig::restore`]. Pages stay resident (clean). Fails if a write
    /// fails.
    pub fn flush(&self) -> Result<(), PagerError> {
        evict::flush(&self.shared)
    }

    /// Counters so far.
    pub fn stats(&self) -> PagerStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (requests, injected) = self.shared.io.requests();
        PagerStats {
            faults: l(&c.faults),
            wp_faults: l(&c.wp_faults),
            zero_fills: l(&c.zero_fills),
            pages_in: l(&c.pages_in),
            readahead: l(&c.readahead),
            prefetched: l(&c.prefetched),
            predicted_writes: l(&c.predicted_writes),
            pages_out: l(&c.pages_out),
            clean_drops: l(&c.clean_drops),
            zero_drops: l(&c.zero_drops),
            write_failures: l(&c.write_failures),
            rewritten: l(&c.rewritten),
            redirtied: l(&c.redirtied),
            read_failures: l(&c.read_failures),
            sigbus: l(&c.sigbus),
            evictions: l(&c.evictions),
            requests,
            injected,
        }
    }

    /// Where every page is now.
    pub fn census(&self) -> PageCensus {
        census(&self.shared.lock())
    }

    /// The state of one page.
    pub fn page_state(&self, page: usize) -> Option<PageState> {
        self.shared.lock().pages.get(page).map(|e| e.state)
    }

    /// Pages that could not be read.
    pub fn errors(&self) -> Vec<PageError> {
        self.shared.errors.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops eviction and reading, waits for every read and write in flight, and returns
    /// where every page is (none moving). Afterwards a fault on a page that is not
    /// resident gets `SIGBUS`; resident pages keep working until the pager is dropped.
    pub fn shutdown(&mut self) -> PageCensus {
        let s = &self.shared;
        s.closing.store(true, Ordering::SeqCst);
        s.evict_cv.notify_all();
        let mut t = s.lock();
        while t.pages.iter().any(|e| matches!(e.state, PageState::Reading | PageState::Evicting)) {
            t = s.changed.wait_timeout(t, std::time::Duration::from_millis(5)).unwrap_or_else(|e| e.into_inner()).0;
        }
        self.shut = true;
        census(&t)
    }
}

/// A pidfd of this process (`pidfd_open`, Linux 5.3), or `None` where there is none.
fn own_pidfd() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) with our own pid and no flags returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    // SAFETY: a descriptor just returned to us, owned by nobody else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn census(t: &Table) -> PageCensus {
    let c = t.census();
    PageCensus {
        zero: c[PageState::Zero as usize],
        zero_mapped: c[PageState::ZeroMapped as usize],
        clean: c[PageState::Clean as usize],
        dirty: c[PageState::Dirty as usize],
        moving: c[PageState::Reading as usize] + c[PageState::Evicting as usize],
        swapped: c[PageState::Swapped as usize],
        failed: c[PageState::Failed as usize],
    }
}

impl Drop for Pager {
    /// Shuts down (if not done), unmaps the region, then stops the threads; the
    /// userfaultfd and the driver close last.
    fn drop(&mut self) {
        if !self.shut {
            self.shutdown();
        }
        // SAFETY: unmaps the region mapped in `new`; the caller's accesses ended with
        // the pager's lifetime (`as_ptr` docs). Threads blocked on it get SIGSEGV.
        unsafe { libc::munmap(self.shared.base as *mut libc::c_void, self.len) };
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.evict_cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
