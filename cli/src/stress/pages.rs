//! The page state of the workload's folios, as the MM keeps it: the [`PageOps`] the
//! engine calls (lock, writeback, uptodate, redirty, pins), checked against the page
//! rules, each call counted as a violation when it breaks one.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use swapdio::{FolioId, PageOps, SwapEvent};

pub const DIR_NONE: u8 = 0;
pub const DIR_READ: u8 = 1;
pub const DIR_WRITE: u8 = 2;
const ST_LOCKED: u8 = 1;
const ST_WRITEBACK: u8 = 2;

/// The page state of the workload's folios (one per arena page), as the MM keeps it.
/// Completions arrive on the driver's reaper thread; finished folios go to the workload
/// thread over a channel.
pub struct StressPages {
    pub(super) dir: Vec<AtomicU8>,
    state: Vec<AtomicU8>,
    pub(super) failed: Vec<AtomicBool>,
    pub(super) uptodate: Vec<AtomicBool>,
    pins: Vec<AtomicI32>,
    done: Sender<u32>,
    pub(super) violations: AtomicU64,
}

impl StressPages {
    pub fn new(pages: usize, done: Sender<u32>) -> StressPages {
        StressPages {
            dir: (0..pages).map(|_| AtomicU8::new(DIR_NONE)).collect(),
            state: (0..pages).map(|_| AtomicU8::new(0)).collect(),
            failed: (0..pages).map(|_| AtomicBool::new(false)).collect(),
            uptodate: (0..pages).map(|_| AtomicBool::new(false)).collect(),
            pins: (0..pages).map(|_| AtomicI32::new(0)).collect(),
            done,
            violations: AtomicU64::new(0),
        }
    }

    fn idx(&self, f: FolioId) -> Option<usize> {
        let i = f.0 as usize;
        if i < self.dir.len() {
            Some(i)
        } else {
            self.violation();
            None
        }
    }

    fn violation(&self) {
        self.violations.fetch_add(1, Ordering::Relaxed);
    }

    /// Locks a folio for I/O (a dirty page for swap-out, a fresh page for swap-in).
    pub fn begin(&self, p: usize, dir: u8) {
        self.dir[p].store(dir, Ordering::Relaxed);
        self.failed[p].store(false, Ordering::Relaxed);
        self.uptodate[p].store(false, Ordering::Relaxed);
        if self.state[p].swap(ST_LOCKED, Ordering::AcqRel) != 0 {
            self.violation();
        }
    }

    /// Undoes `begin` for a folio the engine refused (it is untouched and still locked).
    pub fn abort(&self, p: usize) {
        self.dir[p].store(DIR_NONE, Ordering::Relaxed);
        self.state[p].store(0, Ordering::Release);
    }

    pub fn pins_held(&self) -> i64 {
        self.pins.iter().map(|p| i64::from(p.load(Ordering::Relaxed))).sum()
    }
}

impl PageOps for StressPages {
    fn set_uptodate(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            if self.state[i].load(Ordering::Acquire) & ST_LOCKED == 0 {
                self.violation();
            }
            self.uptodate[i].store(true, Ordering::Release);
        }
    }
    fn set_dirty(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            if self.state[i].load(Ordering::Acquire) & ST_WRITEBACK == 0 {
                self.violation();
            }
            self.failed[i].store(true, Ordering::Release);
        }
    }
    fn clear_reclaim(&self, _f: FolioId) {}
    fn start_writeback(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            if self.state[i].fetch_or(ST_WRITEBACK, Ordering::AcqRel) != ST_LOCKED {
                self.violation();
            }
        }
    }
    fn end_writeback(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            if self.state[i].fetch_and(!ST_WRITEBACK, Ordering::AcqRel) & ST_WRITEBACK == 0 {
                self.violation();
            }
            let _ = self.done.send(i as u32);
        }
    }
    fn unlock(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            if self.state[i].fetch_and(!ST_LOCKED, Ordering::AcqRel) & ST_LOCKED == 0 {
                self.violation();
            }
            if self.dir[i].load(Ordering::Relaxed) == DIR_READ {
                let _ = self.done.send(i as u32);
            }
        }
    }
    fn pin(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            self.pins[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    fn unpin(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            if self.pins[i].fetch_sub(1, Ordering::Relaxed) <= 0 {
                self.violation();
            }
        }
    }
    /// The workload counts failures per folio from the completions it reaps (the
    /// `failed` flags), where it also decides the rewrite; the events add nothing.
    fn event(&self, _e: SwapEvent) {}
}
