//! The userfaultfd pager (`swapdio::linux::pager`) on a real file: every byte verified
//! under a budget from several threads, writes during write-out, failed writes retried,
//! zero pages without I/O, bulk prefetch and snapshot restore. Needs userfaultfd (root,
//! or `vm.unprivileged_userfaultfd=1`); skips with the reason otherwise.
#![cfg(all(feature = "linux", target_os = "linux"))]

mod pager_common;

use pager_common::{check_page, pager, write_page, Base};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use swapdio::fault::{FaultConfig, FaultKinds};
use swapdio::linux::pager::{IoPath, PageState, PagerConfig, PagerError};

/// Fill, then rounds of random and sequential read + rewrite from `threads` threads, each
/// thread owning every `threads`-th page; every word checked. Returns mismatched words.
fn workload(base: Base, pages: usize, threads: usize, rounds: u64) -> u64 {
    let gens: Arc<Vec<AtomicU64>> = Arc::new((0..pages).map(|_| AtomicU64::new(0)).collect());
    let bad = Arc::new(AtomicU64::new(0));
    std::thread::scope(|sc| {
        for t in 0..threads {
            let (gens, bad) = (gens.clone(), bad.clone());
            sc.spawn(move || {
                let base = base;
                let mine: Vec<usize> = (t..pages).step_by(threads).collect();
                let mut rng = 0x1234_5678u64 ^ t as u64;
                for round in 0..=rounds * 2 {
                    let mut order = mine.clone();
                    if round % 2 == 1 {
                        for i in (1..order.len()).rev() {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            order.swap(i, (rng % (i as u64 + 1)) as usize);
                        }
                    }
                    for p in order {
                        let g = gens[p].load(Ordering::Relaxed);
                        bad.fetch_add(check_page(base.0, p, g) as u64, Ordering::Relaxed);
                        write_page(base.0, p, g + 1);
                        gens[p].store(g + 1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // Final pass: every page holds its last generation.
    for p in 0..pages {
        bad.fetch_add(check_page(base.0, p, gens[p].load(Ordering::Relaxed)) as u64, Ordering::Relaxed);
    }
    bad.load(Ordering::Relaxed)
}

fn verified_run(name: &str, io: IoPath, threads: usize) {
    let mut c = PagerConfig::new(2048, 512);
    c.io = io;
    c.handlers = 2;
    let Some((mut pager, _f)) = pager(name, c) else { return };
    let bad = workload(Base(pager.as_ptr()), 2048, threads, 2);
    let s = pager.stats();
    let census = pager.shutdown();
    assert_eq!(bad, 0, "mismatched words; stats {s:?}");
    assert!(s.pages_out > 2048 && s.pages_in > 2048, "the budget forced paging: {s:?}");
    assert!(s.readahead > 0, "sequential rounds read ahead: {s:?}");
    assert_eq!((census.total(), census.moving, census.failed), (2048, 0, 0), "{census:?}");
    assert!(census.resident() <= 512, "{census:?}");
}

#[test]
fn pager_every_byte_survives_paging_under_a_quarter_budget_one_thread() {
    verified_run("verify-1", IoPath::Engine, 1);
}

#[test]
fn pager_every_byte_survives_paging_under_a_quarter_budget_eight_threads() {
    verified_run("verify-8", IoPath::Engine, 8);
}

#[test]
fn pread_baseline_pager_moves_the_same_pages_correctly() {
    verified_run("verify-pread", IoPath::Pread, 4);
}

/// Writers keep rewriting pages while the budget forces their eviction: a write that
/// lands during a write-out is a redirty (the page stays resident and dirty), never lost.
/// Run with write prediction off (every first write after a read fault is a
/// write-protect fault too) and on (pages evicted dirty come back writable).
#[test]
fn write_during_writeout_is_a_redirty_and_never_lost() {
    redirty_run(false);
    redirty_run(true);
}

fn redirty_run(predict: bool) {
    let pages = 1024;
    let mut c = PagerConfig::new(pages, 160);
    c.predict_writes = predict;
    c.evict_batch = 32;
    c.readahead = 0;
    let Some((mut pager, _f)) = pager(&format!("redirty-{predict}"), c) else { return };
    let base = Base(pager.as_ptr());
    let gens: Arc<Vec<AtomicU64>> = Arc::new((0..pages).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let bad = AtomicU64::new(0);
    std::thread::scope(|sc| {
        // Hot writers: 4 threads rewriting 64 hot pages each over and over (keeping them
        // dirty), while 2 cold threads stream through the rest to force evictions.
        for t in 0..6usize {
            let (gens, stop, bad) = (gens.clone(), stop.clone(), &bad);
            sc.spawn(move || {
                let base = base;
                let mut i = 0usize;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 60_000 {
                    let p = if t < 4 { t * 64 + i % 64 } else { 256 + (t - 4) + 2 * (i % 384) };
                    let g = gens[p].load(Ordering::Relaxed);
                    bad.fetch_add(check_page(base.0, p, g) as u64, Ordering::Relaxed);
                    write_page(base.0, p, g + 1);
                    gens[p].store(g + 1, Ordering::Relaxed);
                    i += 1;
                    n += 1;
                }
            });
        }
        std::thread::sleep(std::time::Duration::from_secs(4));
        stop.store(true, Ordering::Relaxed);
    });
    for p in 0..pages {
        bad.fetch_add(check_page(base.0, p, gens[p].load(Ordering::Relaxed)) as u64, Ordering::Relaxed);
    }
    let s = pager.stats();
    let census = pager.shutdown();
    eprintln!("redirty test: {s:?}");
    assert_eq!(bad.load(Ordering::Relaxed), 0, "lost writes; {s:?}");
    assert!(s.pages_out > 0 && (predict || s.wp_faults > 0), "{s:?}");
    assert_eq!((census.total(), census.moving), (pages, 0));
}

/// Injected EIO, EAGAIN and short transfers on writes: each failed page stays resident
/// and dirty and is written again later; nothing is lost.
#[test]
fn failed_writes_stay_resident_and_dirty_and_are_retried() {
    let mut c = PagerConfig::new(1024, 256);
    c.faults =
        FaultConfig { rate_ppm: 200_000, seed: 7, kinds: FaultKinds::EIO | FaultKinds::EAGAIN | FaultKinds::SHORT };
    c.fault_reads = false;
    let Some((mut pager, _f)) = pager("write-faults", c) else { return };
    let bad = workload(Base(pager.as_ptr()), 1024, 2, 2);
    let s = pager.stats();
    let census = pager.shutdown();
    assert_eq!(bad, 0, "{s:?}");
    assert!(s.injected > 0 && s.write_failures > 0 && s.rewritten > 0, "{s:?}");
    assert_eq!((census.total(), census.moving, census.failed), (1024, 0, 0));
}

/// Never-written pages read as zeros with no I/O, and pages written with zeros only are
/// dropped without I/O and come back as zeros.
#[test]
fn zero_filled_pages_are_never_read_from_disk() {
    let mut c = PagerConfig::new(1024, 128);
    c.readahead = 0;
    let Some((mut pager, _f)) = pager("zero", c) else { return };
    let base = pager.as_ptr();
    for p in 0..1024 {
        assert_eq!(check_page(base, p, 0), 0);
    }
    let s = pager.stats();
    assert_eq!((s.pages_in, s.pages_out, s.requests), (0, 0, 0), "{s:?}");
    assert_eq!(s.zero_fills, 1024);
    assert!(s.zero_drops > 0, "zero-mapped victims dropped without I/O: {s:?}");
    // Write zeros explicitly: still no I/O, still zeros after eviction.
    for p in 0..1024 {
        // SAFETY: inside the region.
        unsafe { base.add(p * 4096).write_volatile(0) };
    }
    for p in 0..1024 {
        assert_eq!(check_page(base, p, 0), 0);
    }
    let s = pager.stats();
    assert_eq!((s.pages_in, s.requests), (0, 0), "{s:?}");
    assert_eq!(pager.shutdown().total(), 1024);
}

/// Snapshot restore: flush a region to its swap file, then a second pager over the
/// same file loads it by faults and by one prefetch call; every byte equal.
#[test]
fn prefetch_restores_a_flushed_region_and_faults_agree() {
    let pages = 1024;
    let Some((mut a, file)) = pager("snapshot", PagerConfig::new(pages, 256)) else { return };
    for p in 0..pages {
        write_page(a.as_ptr(), p, 3);
    }
    a.flush().unwrap();
    assert_eq!(a.census().dirty, 0);
    a.shutdown();
    drop(a);
    for prefetch in [false, true] {
        let mut c = PagerConfig::new(pages, pages);
        c.restore = true;
        let target = swapdio::linux::direct::Target::file(&file.0).unwrap();
        let mut b = swapdio::linux::pager::Pager::new(c, swapdio::testkit::file_map(pages as u64 + 1).unwrap(), target)
            .unwrap();
        if prefetch {
            assert_eq!(b.prefetch(std::slice::from_ref(&(0..pages))).unwrap(), pages as u64);
        }
        let bad: usize = (0..pages).map(|p| check_page(b.as_ptr(), p, 3)).sum();
        let s = b.stats();
        assert_eq!(bad, 0, "{s:?}");
        assert!(s.pages_in >= pages as u64, "{s:?}");
        if prefetch {
            assert_eq!(s.prefetched, pages as u64, "{s:?}");
        }
        let census = b.shutdown();
        assert_eq!((census.clean + census.swapped, census.moving), (pages, 0), "{census:?}");
    }
}

/// A read that keeps failing surfaces as an error naming the page, never as data.
#[test]
fn prefetch_read_failure_is_an_error_not_data() {
    let pages = 256;
    let mut c = PagerConfig::new(pages, pages);
    c.restore = true;
    c.faults = FaultConfig { rate_ppm: 1_000_000, seed: 1, kinds: FaultKinds::EIO };
    c.fault_writes = false;
    let Some((mut pager, _f)) = pager("prefetch-eio", c) else { return };
    match pager.prefetch(std::slice::from_ref(&(10..20))) {
        Err(PagerError::Read { page, errno, .. }) => {
            assert_eq!((page, errno), (10, swapdio::Errno::EIO));
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    assert_eq!(pager.page_state(10), Some(PageState::Failed));
    assert_eq!(pager.errors().len(), 1);
    let census = pager.shutdown();
    assert_eq!((census.failed, census.moving), (10, 0));
}

/// The state of `page` once its handler has recorded it: the copy that maps a page wakes
/// the faulting thread before the handler marks the page mapped.
fn settled(pager: &swapdio::linux::pager::Pager, page: usize) -> Option<PageState> {
    for _ in 0..1000 {
        match pager.page_state(page) {
            Some(PageState::Reading) => std::thread::sleep(std::time::Duration::from_millis(1)),
            other => return other,
        }
    }
    pager.page_state(page)
}

/// `do_swap_page`'s writable mapping of an exclusive swapped-in page on a read fault: a
/// page evicted dirty comes back writable and counted dirty (its rewrite takes no
/// write-protect fault); with `predict_writes` off, and for a page that was evicted
/// clean, it comes back write-protected and clean, and its first write is a
/// write-protect fault that marks it dirty. Every byte stays right either way.
#[test]
fn read_fault_maps_a_page_evicted_dirty_writable_and_a_clean_one_protected() {
    for predict in [true, false] {
        let pages = 512;
        let mut c = PagerConfig::new(pages, 96);
        c.readahead = 0;
        c.evict_batch = 16;
        c.predict_writes = predict;
        let Some((mut pager, _f)) = pager(&format!("predict-{predict}"), c) else { return };
        let base = pager.as_ptr();
        for p in 0..pages {
            write_page(base, p, 1);
        }
        // The first pages were evicted long ago, dirty. Each is read, then rewritten; a
        // measurement counts only when no eviction batch ran meanwhile (the background
        // evictor may take the page, and then its write faults for another reason).
        let mut measured = 0;
        for p in 0..32 {
            assert_eq!(pager.page_state(p), Some(PageState::Swapped), "page {p}");
            let s0 = pager.stats();
            assert_eq!(check_page(base, p, 1), 0);
            let after_read = settled(&pager, p);
            let s1 = pager.stats();
            write_page(base, p, 2);
            let s2 = pager.stats();
            if s2.evictions != s0.evictions {
                continue;
            }
            measured += 1;
            let want = if predict { PageState::Dirty } else { PageState::Clean };
            assert_eq!(after_read, Some(want), "page {p} after a read fault");
            assert_eq!(s1.predicted_writes - s0.predicted_writes, u64::from(predict), "{s1:?}");
            assert_eq!(s2.wp_faults - s1.wp_faults, u64::from(!predict), "write-protect faults on the rewrite: {s2:?}");
            assert_eq!(pager.page_state(p), Some(PageState::Dirty));
        }
        assert!(measured > 0, "every measurement overlapped an eviction batch");
        // Read everything else back (evicting the rewritten pages again, dirty), then them.
        for p in 32..pages {
            assert_eq!(check_page(base, p, 1), 0, "page {p}");
        }
        for p in 0..32 {
            assert_eq!(check_page(base, p, 2), 0, "page {p}");
        }
        assert_eq!(pager.shutdown().total(), pages);
    }
    // A page evicted clean (read, never written, since a restore) comes back protected.
    let pages = 256;
    let Some((mut a, file)) = pager("predict-clean", PagerConfig::new(pages, pages)) else { return };
    for p in 0..pages {
        write_page(a.as_ptr(), p, 5);
    }
    a.flush().unwrap();
    a.shutdown();
    drop(a);
    let mut c = PagerConfig::new(pages, 64);
    c.restore = true;
    c.readahead = 0;
    c.evict_batch = 16;
    let target = swapdio::linux::direct::Target::file(&file.0).unwrap();
    let mut b =
        swapdio::linux::pager::Pager::new(c, swapdio::testkit::file_map(pages as u64 + 1).unwrap(), target).unwrap();
    for p in 0..pages {
        assert_eq!(check_page(b.as_ptr(), p, 5), 0, "page {p}");
    }
    // Page 0 was read, evicted clean (no write), and is read again: protected and clean.
    assert_eq!(b.page_state(0), Some(PageState::Swapped));
    assert_eq!(check_page(b.as_ptr(), 0, 5), 0);
    assert_eq!(settled(&b, 0), Some(PageState::Clean));
    let s = b.stats();
    assert_eq!((s.predicted_writes, s.pages_out), (0, 0), "{s:?}");
    b.shutdown();
}

/// Eviction really drops its victims (`MADV_DONTNEED`, batched through
/// `process_madvise` where the kernel allows it): after the budget forced paging, the
/// kernel's own view of the region (`mincore`) holds no more pages than the pager counts
/// resident, and at most the budget.
#[test]
fn evicted_pages_leave_the_region() {
    let pages = 1024;
    let mut c = PagerConfig::new(pages, 256);
    c.readahead = 0;
    let Some((mut pager, _f)) = pager("mincore", c) else { return };
    let base = pager.as_ptr();
    for p in 0..pages {
        write_page(base, p, 9);
    }
    for p in (0..pages).rev() {
        assert_eq!(check_page(base, p, 9), 0, "page {p}");
    }
    let census = pager.shutdown();
    let mut vec = vec![0u8; pages];
    // SAFETY: the region is mapped (the pager is alive) and `vec` has one byte per page.
    let r = unsafe { libc::mincore(base.cast(), pages * 4096, vec.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    let in_core = vec.iter().filter(|b| **b & 1 != 0).count();
    let s = pager.stats();
    assert!(s.pages_out > 0, "{s:?}");
    assert!(in_core <= census.resident() && census.resident() <= 256, "in core {in_core}, {census:?}, {s:?}");
}
