//! The fault handler threads: missing-page faults (zero fill, swap-in with readahead),
//! write-protect faults (first write, redirty during write-out), `SIGBUS` for pages
//! that cannot be read, and the bulk prefetch.

use super::evict::{reserve, wake_evictor};
use super::io::Xfer;
use super::table::PageState;
use super::table::Table;
use super::uffd::{Msg, EVENT_PAGEFAULT, FLAG_WP, FLAG_WRITE};
use super::{add, PageError, PagerError, Shared, FAULT_BATCH, PREFETCH_BATCH};
use crate::errno::Errno;
use crate::PAGE_SIZE;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

/// Zeros for a write fault on a never-written page.
static ZEROS: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// A handler thread: reads the userfaultfd (polling when it is empty, so shutdown is
/// seen), and
/// resolves the faults of each read together: the swap-ins of all of them (with their
/// readahead) go to the device in one plugged batch, so faults from several threads are
/// read in parallel rather than one after another.
pub(super) fn handler_loop(s: &Shared, h: usize) {
    let lane = h;
    let _reap_here = s.io.hold(lane);
    let mut batch = Batch::new(s.handler_staging + h * s.handler_batch, s.handler_batch);
    let mut msgs = [Msg::default(); FAULT_BATCH];
    while !s.stop.load(Ordering::Acquire) {
        // Read first: under load faults are already queued and the poll would be a
        // system call for nothing; poll (20 ms, so shutdown is seen) only when none is.
        let n = match s.uffd.read(&mut msgs) {
            Ok(0) => {
                let mut pfd = libc::pollfd { fd: s.uffd.raw(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one pollfd, valid for the call.
                unsafe { libc::poll(&mut pfd, 1, 20) };
                continue;
            }
            Ok(n) => n,
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
        };
        for m in &msgs[..n] {
            if m.event != EVENT_PAGEFAULT || m.address < s.base {
                continue;
            }
            let page = ((m.address - s.base) / PAGE_SIZE as u64) as usize;
            if page >= s.config.pages {
                continue;
            }
            if m.flags & FLAG_WP != 0 {
                wp_fault(s, page);
            } else {
                missing_fault(s, page, m.flags & FLAG_WRITE != 0, m.ptid, lane, &mut batch);
            }
        }
        batch.finish(s, lane);
    }
}

/// A write to a write-protected page: the page becomes dirty (or, during its
/// write-out, redirtied), and is unprotected under the table lock so no eviction can
/// protect it again in between.
fn wp_fault(s: &Shared, page: usize) {
    add(&s.counters.wp_faults, 1);
    let addr = s.addr(page);
    let mut t = s.lock();
    let e = &mut t.pages[page];
    let resident = match e.state {
        PageState::Clean | PageState::Dirty | PageState::ZeroMapped => {
            e.state = PageState::Dirty;
            true
        }
        PageState::Evicting => {
            e.redirty = true;
            true
        }
        // Dropped meanwhile: the retried access faults as missing.
        _ => false,
    };
    e.referenced = true;
    let r = if resident {
        s.uffd.write_protect(addr, PAGE_SIZE as u64, false, false)
    } else {
        s.uffd.wake(addr, PAGE_SIZE as u64)
    };
    drop(t);
    if r.is_err() {
        let _ = s.uffd.wake(addr, PAGE_SIZE as u64);
    }
}

/// Makes the page at `addr` answer every access with `SIGBUS`, as the kernel does for
/// an unreadable swap page (`VM_FAULT_SIGBUS`): a poison marker (`UFFDIO_POISON`), so the
/// faulting thread — and any later one — gets `SIGBUS` with `si_addr` in the page from
/// the kernel itself. Without `UFFDIO_POISON` (before Linux 6.6) the faulting thread `tid`
/// is sent `SIGBUS` with `tgkill` (no address) and the page's waiters are woken.
fn sigbus(s: &Shared, tid: u32, addr: u64) {
    add(&s.counters.sigbus, 1);
    let page = addr & !(PAGE_SIZE as u64 - 1);
    if s.uffd.poison(page, PAGE_SIZE as u64).is_ok() {
        return;
    }
    if tid != 0 {
        // SAFETY: tgkill to a thread of our own process.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::pid_t, libc::SIGBUS) };
    }
    let _ = s.uffd.wake(page, PAGE_SIZE as u64);
}

/// Room for `k` more resident pages, as [`reserve`], but never waiting while `batch`
/// holds planned reads: if the room is not there now, the batch is read and mapped
/// first (its pages may be what the budget waits for). `None` once shutting down.
fn room<'a>(
    s: &'a Shared,
    t: MutexGuard<'a, Table>,
    k: usize,
    batch: &mut Batch,
    lane: usize,
) -> Option<MutexGuard<'a, Table>> {
    if !batch.is_empty() && (t.resident + k > s.config.budget || batch.len() + k > batch.cap) {
        drop(t);
        batch.finish(s, lane);
        return reserve(s, s.lock(), k).ok();
    }
    reserve(s, t, k).ok()
}

fn missing_fault(s: &Shared, page: usize, write: bool, tid: u32, lane: usize, batch: &mut Batch) {
    add(&s.counters.faults, 1);
    let addr = s.addr(page);
    let t = s.lock();
    match t.pages[page].state {
        PageState::Zero => {
            if s.closing.load(Ordering::Acquire) {
                drop(t);
                return sigbus(s, tid, addr);
            }
            let Some(mut t) = room(s, t, 1, batch, lane) else { return sigbus(s, tid, addr) };
            if t.pages[page].state != PageState::Zero {
                // Another handler got to it while we made room: it wakes the waiters.
                return;
            }
            t.set(page, PageState::Reading);
            drop(t);
            // Counted before the ioctl that wakes the faulting thread, so that thread
            // (and whoever it tells) sees the fill in the stats; taken back, before the
            // wake below, when nothing was mapped (the retried fault counts then).
            add(&s.counters.zero_fills, 1);
            let r = if write {
                s.uffd.copy(addr, ZEROS.as_ptr(), PAGE_SIZE as u64, false, false)
            } else {
                s.uffd.zeropage(addr, PAGE_SIZE as u64)
            };
            if r.is_err() {
                s.counters.zero_fills.fetch_sub(1, Ordering::Relaxed);
            }
            let mut t = s.lock();
            let state = match (r, write) {
                (Ok(()), false) => PageState::ZeroMapped,
                (Ok(()), true) => PageState::Dirty,
                // Nothing was mapped: the page is still never written; the retried
                // access faults again.
                (Err(_), _) => PageState::Zero,
            };
            t.set(page, state);
            t.pages[page].referenced = true;
            drop(t);
            if state == PageState::Zero {
                let _ = s.uffd.wake(addr, PAGE_SIZE as u64);
            }
            s.changed.notify_all();
            wake_evictor(s);
        }
        PageState::Swapped => {
            if s.closing.load(Ordering::Acquire) {
                drop(t);
                return sigbus(s, tid, addr);
            }
            let mut t = t;
            let window = t.readahead(tid, page, s.config.readahead).min(batch.cap - 1);
            let Some(mut t) = room(s, t, 1 + window, batch, lane) else { return sigbus(s, tid, addr) };
            if t.pages[page].state != PageState::Swapped {
                // Read by another handler while we made room: its copy wakes this thread.
                return;
            }
            batch.plan(s, &mut t, page, window, write, tid);
        }
        // Another handler (or this one's batch) is reading it: the copy wakes this thread.
        PageState::Reading => {}
        PageState::Failed => {
            drop(t);
            sigbus(s, tid, addr);
        }
        // Already mapped (a late message for a resolved fault).
        _ => {
            drop(t);
            let _ = s.uffd.wake(addr, PAGE_SIZE as u64);
        }
    }
}

/// The swap-ins a handler has planned from one userfaultfd read: each faulting page and
/// its readahead, marked [`PageState::Reading`], each in its own staging page.
pub(super) struct Batch {
    staging: usize,
    cap: usize,
    items: Vec<Xfer>,
    pages: Vec<usize>,
    /// Mapped writable (and dirty): the faulting page of a write fault, and pages
    /// evicted dirty when writes are predicted; the rest write-protected (clean).
    writable: Vec<bool>,
    /// Of those, writable by prediction alone (counted in `predicted_writes`).
    predicted: Vec<bool>,
    /// The faulting thread of a faulting page (`Some`); `None` for readahead.
    fault: Vec<Option<u32>>,
    out: Vec<Result<(), Errno>>,
    mapped: Vec<bool>,
}

impl Batch {
    fn new(staging: usize, cap: usize) -> Batch {
        Batch {
            staging,
            cap,
            items: Vec::with_capacity(cap),
            pages: Vec::with_capacity(cap),
            writable: Vec::with_capacity(cap),
            predicted: Vec::with_capacity(cap),
            fault: Vec::with_capacity(cap),
            out: Vec::with_capacity(cap),
            mapped: Vec::with_capacity(cap),
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Plans `page` and up to `window` following swapped pages (the caller made room).
    fn plan(&mut self, s: &Shared, t: &mut Table, page: usize, window: usize, write: bool, tid: u32) {
        for (i, p) in (page..s.config.pages.min(page + window + 1)).enumerate() {
            if i > 0 && t.pages[p].state != PageState::Swapped {
                continue;
            }
            if self.items.len() == self.cap {
                break;
            }
            // A write fault's own page is dirty by the write, not by prediction.
            let predict = s.config.predict_writes && t.pages[p].written && !(i == 0 && write);
            self.writable.push((i == 0 && write) || predict);
            self.predicted.push(predict);
            self.fault.push((i == 0).then_some(tid));
            t.set(p, PageState::Reading);
            self.items.push(Xfer { slot: Shared::slot(p), staging: self.staging + self.items.len() });
            self.pages.push(p);
        }
    }

    /// Reads every planned page in one batch, retries the faulting pages' failed reads,
    /// maps each page (waking its faulting thread), and records the new states. A
    /// faulting page that cannot be read is marked failed and its thread gets `SIGBUS`.
    fn finish(&mut self, s: &Shared, lane: usize) {
        if self.is_empty() {
            return;
        }
        let n = self.items.len();
        self.out.clear();
        self.out.resize(n, Ok(()));
        s.io.read(lane, &self.items, &mut self.out);
        for i in 0..n {
            let mut attempts = 0;
            while self.fault[i].is_some() && self.out[i].is_err() && attempts < s.config.read_retries {
                add(&s.counters.read_failures, 1);
                attempts += 1;
                let mut one = [Ok(())];
                s.io.read(lane, &self.items[i..=i], &mut one);
                self.out[i] = one[0];
            }
        }
        let ok = self.out.iter().filter(|r| r.is_ok()).count() as u64;
        let faulted_ok = (0..n).filter(|&i| self.fault[i].is_some() && self.out[i].is_ok()).count() as u64;
        add(&s.counters.pages_in, ok);
        add(&s.counters.readahead, ok - faulted_ok);
        add(&s.counters.read_failures, self.out.iter().filter(|r| r.is_err()).count() as u64);
        // Map: each page with its own copy, which wakes the threads waiting on it.
        self.mapped.clear();
        let mut predicted = 0;
        for i in 0..n {
            let (x, p) = (self.items[i], self.pages[i]);
            let ok = self.out[i].is_ok()
                && s.uffd.copy(s.addr(p), s.staging_ptr(x.staging), PAGE_SIZE as u64, !self.writable[i], false).is_ok();
            self.mapped.push(ok);
            predicted += u64::from(ok && self.predicted[i]);
        }
        add(&s.counters.predicted_writes, predicted);
        let mut t = s.lock();
        for i in 0..n {
            let p = self.pages[i];
            let state = match (self.out[i], self.mapped[i]) {
                (Ok(()), true) if self.writable[i] => PageState::Dirty,
                (Ok(()), true) => PageState::Clean,
                (Err(e), _) if self.fault[i].is_some() => {
                    t.pages[p].errno = e.0;
                    PageState::Failed
                }
                _ => PageState::Swapped,
            };
            t.set(p, state);
            t.pages[p].referenced = self.fault[i].is_some();
        }
        drop(t);
        s.changed.notify_all();
        wake_evictor(s);
        for i in 0..n {
            let Some(tid) = self.fault[i] else { continue };
            let p = self.pages[i];
            if let Err(e) = self.out[i] {
                record_error(s, p, e);
                sigbus(s, tid, s.addr(p));
            } else if !self.mapped[i] {
                let _ = s.uffd.wake(s.addr(p), PAGE_SIZE as u64);
            }
        }
        self.items.clear();
        self.pages.clear();
        self.writable.clear();
        self.predicted.clear();
        self.fault.clear();
    }
}

fn record_error(s: &Shared, page: usize, errno: Errno) {
    eprintln!(
        "swapdio pager: reading page {page} (slot {}) failed: {errno}; a thread touching it gets SIGBUS",
        Shared::slot(page)
    );
    s.errors.lock().unwrap_or_else(|e| e.into_inner()).push(PageError { page, slot: Shared::slot(page), errno });
}

/// [`super::Pager::prefetch`].
pub(super) fn prefetch(s: &Shared, ranges: &[std::ops::Range<usize>]) -> Result<u64, PagerError> {
    let mut todo: Vec<usize> = Vec::new();
    {
        let t = s.lock();
        for r in ranges {
            for p in r.start..r.end.min(s.config.pages) {
                if t.pages[p].state == PageState::Swapped {
                    todo.push(p);
                }
            }
        }
    }
    // One prefetch at a time (its staging pages are shared).
    static PREFETCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = PREFETCHING.lock().unwrap_or_else(|e| e.into_inner());
    let batch = PREFETCH_BATCH.min(s.config.budget / 2).max(1);
    let mut loaded = 0u64;
    let mut first_error = None;
    for chunk in todo.chunks(batch) {
        if s.closing.load(Ordering::Acquire) {
            return Err(PagerError::Shutdown);
        }
        let t = s.lock();
        let mut t = reserve(s, t, chunk.len()).map_err(|_| PagerError::Shutdown)?;
        // Checked under the lock, as eviction does: `shutdown` then waits for these reads.
        if s.closing.load(Ordering::Acquire) {
            return Err(PagerError::Shutdown);
        }
        let mut items = Vec::with_capacity(chunk.len());
        let mut pages = Vec::with_capacity(chunk.len());
        for &p in chunk {
            if t.pages[p].state == PageState::Swapped {
                t.set(p, PageState::Reading);
                items.push(Xfer { slot: Shared::slot(p), staging: s.prefetch_staging + pages.len() });
                pages.push(p);
            }
        }
        drop(t);
        let mut out = vec![Ok(()); items.len()];
        s.io.read(s.prefetch_lane(), &items, &mut out);
        for i in 0..items.len() {
            let mut attempts = 0;
            while out[i].is_err() && attempts < s.config.read_retries {
                add(&s.counters.read_failures, 1);
                attempts += 1;
                let mut one = [Ok(())];
                s.io.read(s.prefetch_lane(), &items[i..=i], &mut one);
                out[i] = one[0];
            }
        }
        // Map runs of pages adjacent in the region and in staging with one copy each,
        // without waking; one wake per run afterwards.
        let mut mapped = vec![false; items.len()];
        let mut i = 0;
        while i < items.len() {
            if out[i].is_err() {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < items.len() && out[j].is_ok() && pages[j] == pages[j - 1] + 1 {
                j += 1;
            }
            let len = ((j - i) * PAGE_SIZE) as u64;
            let ok = s.uffd.copy(s.addr(pages[i]), s.staging_ptr(items[i].staging), len, true, true).is_ok();
            if ok {
                mapped[i..j].iter_mut().for_each(|m| *m = true);
            } else {
                // Something was mapped meanwhile: page by page.
                for k in i..j {
                    mapped[k] = s
                        .uffd
                        .copy(s.addr(pages[k]), s.staging_ptr(items[k].staging), PAGE_SIZE as u64, true, true)
                        .is_ok();
                }
            }
            i = j;
        }
        let mut t = s.lock();
        for (i, &p) in pages.iter().enumerate() {
            let state = match (out[i], mapped[i]) {
                (Ok(()), true) => PageState::Clean,
                (Err(e), _) => {
                    t.pages[p].errno = e.0;
                    first_error.get_or_insert((p, e));
                    PageState::Failed
                }
                _ => PageState::Swapped,
            };
            t.set(p, state);
            t.pages[p].referenced = true;
        }
        drop(t);
        let n = mapped.iter().filter(|m| **m).count() as u64;
        loaded += n;
        add(&s.counters.pages_in, n);
        add(&s.counters.prefetched, n);
        s.changed.notify_all();
        wake_evictor(s);
        if let (Some(&a), Some(&b)) = (pages.first(), pages.last()) {
            let _ = s.uffd.wake(s.addr(a), ((b + 1 - a) * PAGE_SIZE) as u64);
        }
    }
    if let Some((page, errno)) = first_error {
        record_error(s, page, errno);
        return Err(PagerError::Read { page, slot: Shared::slot(page), errno });
    }
    Ok(loaded)
}
