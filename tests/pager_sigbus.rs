//! The pager's `SIGBUS` contract, in its own test binary (it installs a process-wide
//! `SIGBUS` handler): a page that cannot be read gets `SIGBUS` at its address, never
//! data; after `shutdown` a fault on a page that is not resident gets `SIGBUS` at once
//! and no faulting thread hangs. The handler records the address and maps a fresh zero
//! page there so the faulting access can finish.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod pager_common;

use pager_common::{pager, write_page, Base};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use swapdio::fault::{FaultConfig, FaultKinds};
use swapdio::linux::pager::{PageState, PagerConfig};
use swapdio::PAGE_SIZE;

static SIGBUS_COUNT: AtomicU64 = AtomicU64::new(0);
static SIGBUS_ADDR: AtomicU64 = AtomicU64::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as u64;
    SIGBUS_ADDR.store(addr, Ordering::SeqCst);
    SIGBUS_COUNT.fetch_add(1, Ordering::SeqCst);
    let page = addr & !(PAGE_SIZE as u64 - 1);
    // SAFETY: replaces exactly one page of the test's own pager region (async-signal-safe
    // mmap), so the faulting access reads zeros instead of faulting again.
    unsafe {
        libc::mmap(
            page as *mut libc::c_void,
            PAGE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
}

fn install() {
    // SAFETY: installs a SA_SIGINFO handler that only touches atomics and calls mmap.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

/// The kernel's rule for an unreadable swap page (`VM_FAULT_SIGBUS`): the faulting thread
/// gets `SIGBUS` with `si_addr` in the page, and the pager names the page and errno.
#[test]
fn unreadable_page_gets_sigbus_at_its_address_never_data() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pages = 256;
    let mut c = PagerConfig::new(pages, pages);
    c.restore = true;
    c.read_retries = 1;
    c.faults = FaultConfig { rate_ppm: 1_000_000, seed: 3, kinds: FaultKinds::EIO };
    c.fault_writes = false;
    let Some((mut pager, _f)) = pager("sigbus-read", c) else { return };
    install();
    let before = SIGBUS_COUNT.load(Ordering::SeqCst);
    let addr = pager.as_ptr() as u64 + 5 * PAGE_SIZE as u64 + 24;
    let base = Base(pager.as_ptr());
    let v = std::thread::spawn(move || {
        let base = base;
        // SAFETY: inside the region.
        unsafe { base.0.add(5 * PAGE_SIZE + 24).cast::<u64>().read_volatile() }
    })
    .join()
    .unwrap();
    assert!(SIGBUS_COUNT.load(Ordering::SeqCst) > before, "no SIGBUS");
    assert_eq!(SIGBUS_ADDR.load(Ordering::SeqCst) & !(PAGE_SIZE as u64 - 1), addr & !(PAGE_SIZE as u64 - 1));
    assert_eq!(v, 0, "the access finished on the handler's zero page, not on pager data");
    assert_eq!(pager.page_state(5), Some(PageState::Failed));
    let errors = pager.errors();
    assert_eq!((errors[0].page, errors[0].slot, errors[0].errno), (5, 6, swapdio::Errno::EIO));
    assert!(pager.stats().sigbus >= 1);
    let census = pager.shutdown();
    assert_eq!((census.failed, census.moving, census.total()), (1, 0, pages));
}

/// Shutdown while 4 threads fault: `shutdown` returns with every page accounted for and
/// nothing moving; each thread's next fault on a page that is not resident gets `SIGBUS`
/// and every thread finishes (none hangs).
#[test]
fn shutdown_while_threads_fault_never_hangs() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pages = 1024;
    let mut c = PagerConfig::new(pages, 128);
    c.evict_batch = 32;
    let Some((mut pager, _f)) = pager("sigbus-shutdown", c) else { return };
    install();
    let base = Base(pager.as_ptr());
    for p in 0..pages {
        write_page(base.0, p, 1);
    }
    let stop = AtomicBool::new(false);
    let before = SIGBUS_COUNT.load(Ordering::SeqCst);
    let census = std::thread::scope(|sc| {
        for t in 0..4usize {
            let stop = &stop;
            sc.spawn(move || {
                let base = base;
                let mut i = t;
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    i = (i * 7 + 13) % pages;
                    // SAFETY: inside the region (or on a page the handler replaced).
                    std::hint::black_box(unsafe { base.0.add(i * PAGE_SIZE).read_volatile() });
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let census = pager.shutdown();
        assert!(t.elapsed() < Duration::from_secs(10), "shutdown took {:?}", t.elapsed());
        // Let the threads hit non-resident pages after shutdown, then stop them.
        let wait = Instant::now();
        while SIGBUS_COUNT.load(Ordering::SeqCst) == before && wait.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        census
    });
    assert_eq!((census.total(), census.moving), (pages, 0), "{census:?}");
    assert!(census.resident() <= 128, "{census:?}");
    assert!(SIGBUS_COUNT.load(Ordering::SeqCst) > before, "no thread got SIGBUS after shutdown");
    assert!(pager.stats().sigbus > 0);
}
