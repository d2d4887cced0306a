//! Eviction: keeping the resident pages within the budget (CLOCK victims,
//! write-protect, copy, one plugged write batch, drop only after success), and
//! [`super::Pager::flush`].

use super::io::Xfer;
use super::table::{PageState, Table};
use super::{add, PagerError, Shared};
use crate::errno::Errno;
use crate::PAGE_SIZE;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::Duration;

/// Makes room for `k` more resident pages (evicting on this thread if needed, the
/// kernel's direct reclaim) and returns the lock with the room counted free. `Err`
/// once the pager is shutting down.
pub(super) fn reserve<'a>(s: &'a Shared, mut t: MutexGuard<'a, Table>, k: usize) -> Result<MutexGuard<'a, Table>, ()> {
    while t.resident + k > s.config.budget {
        if s.closing.load(Ordering::Acquire) {
            return Err(());
        }
        drop(t);
        if !evict_batch(s, k) {
            // Nothing to evict now (all moving): wait for a change.
            let g = s.lock();
            let _ = s.changed.wait_timeout(g, Duration::from_millis(1));
        }
        t = s.lock();
    }
    Ok(t)
}

/// Wakes the background evictor when fewer than `evict_headroom()` pages are free.
pub(super) fn wake_evictor(s: &Shared) {
    let t = s.lock();
    if t.resident + s.config.evict_headroom() > s.config.budget {
        s.evict_cv.notify_one();
    }
}

/// The background evictor (kswapd): keeps `evict_headroom()` pages of the budget free.
pub(super) fn evictor_loop(s: &Shared) {
    let _reap_here = s.io.hold(s.evict_lane());
    while !s.stop.load(Ordering::Acquire) {
        let t = s.lock();
        let need = t.resident + s.config.evict_headroom() > s.config.budget && !s.closing.load(Ordering::Acquire);
        if !need {
            let _ = s.evict_cv.wait_timeout(t, Duration::from_millis(50));
            continue;
        }
        drop(t);
        if !evict_batch(s, s.config.evict_batch) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Write-protects `pages` (sorted), one call per run of adjacent pages. A run the
/// kernel refuses is marked redirtied: without the protection a write during the
/// write-out would go unseen, so those pages must stay resident and dirty.
fn protect_runs(s: &Shared, pages: &[usize]) {
    let mut i = 0;
    while i < pages.len() {
        let mut j = i + 1;
        while j < pages.len() && pages[j] == pages[j - 1] + 1 {
            j += 1;
        }
        if s.uffd.write_protect(s.addr(pages[i]), ((j - i) * PAGE_SIZE) as u64, true, false).is_err() {
            let mut t = s.lock();
            for &p in &pages[i..j] {
                t.pages[p].redirty = true;
            }
        }
        i = j;
    }
}

/// Most ranges one `process_madvise` call takes (`UIO_MAXIOV`).
const MAX_IOV: usize = 1024;

/// Drops `pages` (sorted) from the region: `MADV_DONTNEED` on each run of adjacent
/// pages, all runs in one `process_madvise` call on the pager's own pidfd where the
/// kernel allows it (one call, and since Linux 6.16 one TLB flush, for a whole batch of
/// scattered victims instead of one per run); one `madvise` per run otherwise.
fn drop_runs(s: &Shared, pages: &[usize]) {
    let mut runs: Vec<libc::iovec> = Vec::new();
    let mut i = 0;
    while i < pages.len() {
        let mut j = i + 1;
        while j < pages.len() && pages[j] == pages[j - 1] + 1 {
            j += 1;
        }
        runs.push(libc::iovec { iov_base: s.addr(pages[i]) as *mut libc::c_void, iov_len: (j - i) * PAGE_SIZE });
        i = j;
    }
    for chunk in runs.chunks(MAX_IOV) {
        let mut done = 0;
        if let Some(fd) = s.pidfd.as_ref().filter(|_| s.batched_drop.load(Ordering::Relaxed)) {
            // SAFETY: process_madvise(2) on our own process with `chunk.len()` iovecs that
            // live for the call; the ranges are inside the region, and their pages are
            // write-protected and written out (or clean, or all zero): dropping them loses
            // nothing, exactly as `madvise` below.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_process_madvise,
                    fd.as_raw_fd(),
                    chunk.as_ptr(),
                    chunk.len(),
                    libc::MADV_DONTNEED,
                    0,
                )
            };
            if r < 0 {
                // Not allowed here (older kernel, seccomp): one call per run from now on.
                s.batched_drop.store(false, Ordering::Relaxed);
            } else {
                // Whole ranges advised; a partial count leaves the rest to the loop below.
                let mut bytes = r as usize;
                while done < chunk.len() && bytes >= chunk[done].iov_len {
                    bytes -= chunk[done].iov_len;
                    done += 1;
                }
            }
        }
        for run in &chunk[done..] {
            // SAFETY: as above, one run at a time (a partly advised run is advised again,
            // which is harmless: its pages are already gone).
            unsafe { libc::madvise(run.iov_base, run.iov_len, libc::MADV_DONTNEED) };
        }
    }
}

fn all_zero(p: *const u8) -> bool {
    // SAFETY: `p` is a staging page of PAGE_SIZE bytes in the arena, owned by the caller.
    let page = unsafe { std::slice::from_raw_parts(p, PAGE_SIZE) };
    page.iter().all(|&b| b == 0)
}

/// One eviction batch (`keep` false) or one flush pass (`keep` true: written pages stay
/// resident and clean). `background` only picks victims while a batch of the budget is
/// not free. Returns whether any page was processed.
fn run_batch(s: &Shared, victims: &[usize], prev: &[PageState], keep: bool) {
    let staging = 0usize;
    // 1. Write-protect everything that may be written without a fault.
    let unprotected: Vec<usize> =
        victims.iter().zip(prev).filter(|(_, st)| **st != PageState::Clean).map(|(p, _)| *p).collect();
    protect_runs(s, &unprotected);
    // 2. Copy the protected bytes into staging; all-zero pages need no I/O.
    let mut items: Vec<Xfer> = Vec::new();
    let mut item_of: Vec<Option<usize>> = vec![None; victims.len()];
    let mut zero: Vec<bool> = vec![false; victims.len()];
    for (i, (&p, st)) in victims.iter().zip(prev).enumerate() {
        match st {
            PageState::Clean => {}
            PageState::Zero => {
                // SAFETY: the batch's own staging page (the eviction lock is held).
                unsafe { std::ptr::write_bytes(s.staging_ptr(staging + i), 0, PAGE_SIZE) };
                item_of[i] = Some(items.len());
                items.push(Xfer { slot: Shared::slot(p), staging: staging + i });
            }
            _ => {
                let dst = s.staging_ptr(staging + i);
                // SAFETY: the page is mapped (resident) and write-protected; the staging
                // page belongs to this batch (the eviction lock is held).
                unsafe { std::ptr::copy_nonoverlapping(s.addr(p) as *const u8, dst, PAGE_SIZE) };
                if all_zero(dst) && !keep {
                    zero[i] = true;
                } else {
                    item_of[i] = Some(items.len());
                    items.push(Xfer { slot: Shared::slot(p), staging: staging + i });
                }
            }
        }
    }
    // 3. One plugged batch.
    let mut out: Vec<Result<(), Errno>> = vec![Ok(()); items.len()];
    if !items.is_empty() {
        s.io.write(s.evict_lane(), &items, &mut out);
    }
    // 4. Settle each victim under the lock: redirtied and failed pages stay.
    let c = &s.counters;
    let mut t = s.lock();
    let mut drop_list = Vec::with_capacity(victims.len());
    for (i, (&p, st)) in victims.iter().zip(prev).enumerate() {
        let result = item_of[i].map(|k| out[k]);
        if *st == PageState::Zero {
            // Flush of a never-written page: only its slot was written.
            if let Some(Err(_)) = result {
                add(&c.write_failures, 1);
            } else {
                add(&c.pages_out, 1);
            }
            continue;
        }
        let e = &mut t.pages[p];
        let ok = !matches!(result, Some(Err(_)));
        if result.is_some() {
            if ok {
                add(&c.pages_out, 1);
                if e.failed_write {
                    add(&c.rewritten, 1);
                    e.failed_write = false;
                }
            } else {
                add(&c.write_failures, 1);
                e.failed_write = true;
            }
        }
        let new = if e.redirty {
            add(&c.redirtied, 1);
            e.redirty = false;
            PageState::Dirty
        } else if !ok {
            // Still write-protected: the next write only marks it dirty again.
            PageState::Dirty
        } else if keep {
            PageState::Clean
        } else {
            drop_list.push(p);
            // Dirty when evicted: a read fault maps it back writable (`predict_writes`).
            e.written = *st != PageState::Clean && !zero[i];
            match (st, zero[i]) {
                (PageState::Clean, _) => add(&c.clean_drops, 1),
                (_, true) => add(&c.zero_drops, 1),
                _ => {}
            }
            if zero[i] {
                PageState::Zero
            } else {
                PageState::Swapped
            }
        };
        t.set(p, new);
    }
    drop_runs(s, &drop_list);
    drop(t);
    s.changed.notify_all();
}

/// Picks up to one batch of CLOCK victims and evicts them, unless `need` pages of the
/// budget are free by the time the eviction lock is taken. Returns whether there was
/// progress (room, or victims found).
pub(super) fn evict_batch(s: &Shared, need: usize) -> bool {
    let _g = s.evicting.lock().unwrap_or_else(|e| e.into_inner());
    let mut victims = Vec::with_capacity(s.config.evict_batch);
    let mut prev = Vec::with_capacity(s.config.evict_batch);
    {
        let mut t = s.lock();
        // Shutting down: no new write-out (checked under the lock `shutdown` takes after
        // setting `closing`, so it either sees these victims moving or we see `closing`).
        if s.closing.load(Ordering::Acquire) {
            return false;
        }
        // Someone else made room meanwhile.
        let free = s.config.budget.saturating_sub(t.resident);
        if free >= need {
            return true;
        }
        let mut picked = Vec::with_capacity(s.config.evict_batch);
        t.pick_victims(s.config.evict_batch, &mut picked);
        picked.sort_unstable_by_key(|v| v.0);
        for (p, st) in picked {
            victims.push(p);
            prev.push(st);
        }
    }
    if victims.is_empty() {
        return false;
    }
    add(&s.counters.evictions, 1);
    run_batch(s, &victims, &prev, false);
    true
}

/// [`super::Pager::flush`]: every dirty, zero-mapped and never-written page, in batches.
pub(super) fn flush(s: &Shared) -> Result<(), PagerError> {
    let _g = s.evicting.lock().unwrap_or_else(|e| e.into_inner());
    let failures_before = s.counters.write_failures.load(Ordering::Relaxed);
    let mut next = 0;
    while next < s.config.pages {
        if s.closing.load(Ordering::Acquire) {
            return Err(PagerError::Shutdown);
        }
        let mut victims = Vec::new();
        let mut prev = Vec::new();
        {
            let mut t = s.lock();
            if s.closing.load(Ordering::Acquire) {
                return Err(PagerError::Shutdown);
            }
            while next < s.config.pages && victims.len() < s.config.evict_batch {
                let st = t.pages[next].state;
                match st {
                    PageState::Dirty | PageState::ZeroMapped => {
                        victims.push(next);
                        prev.push(st);
                        t.pages[next].redirty = false;
                        t.set(next, PageState::Evicting);
                    }
                    PageState::Zero => {
                        victims.push(next);
                        prev.push(st);
                    }
                    _ => {}
                }
                next += 1;
            }
        }
        if !victims.is_empty() {
            run_batch(s, &victims, &prev, true);
        }
    }
    let failed = s.counters.write_failures.load(Ordering::Relaxed) - failures_before;
    if failed > 0 {
        return Err(PagerError::Config(format!("{failed} page writes failed during flush (the pages stay dirty)")));
    }
    Ok(())
}
