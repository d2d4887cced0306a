//! `swapdio stress` — the main job: a verified swap-out/swap-in workload on a real swap
//! file, through the engine and the io_uring (or pread) driver.
//!
//! With no arguments: creates an anonymous 256 MiB swap file (`O_TMPFILE`) in the current directory, activates
//! it (layout probe + the core's activation, the kernel's swapon arithmetic), and for
//! 10 s mixes random and sequential (plugged) swap-outs and swap-ins. Every page written
//! is stamped with its slot and a generation; every page read back is checked against
//! the latest generation written to that slot, and a final pass reads back every slot
//! ever written. A failed write leaves the page dirty (the kernel's redirty rule) and it
//! is written again later. The file has no name and vanishes with the process (also after an error,
//! ctrl-c or kill -9). Exits non-zero on any mismatch, lost page, page-rule violation or moved extent.

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swapdio::fault::{FaultConfig, FaultKinds};
use swapdio::linux::check::mode_name;
use swapdio::linux::direct::{Arena, DriverStats};
use swapdio::linux::mkswap::parse_size;
use swapdio::linux::uring::{Foreground, UringBackend};
use swapdio::{FolioId, FsContext, PageOps, StorageConfig, SwapError, SwapEvent, PAGE_SIZE};

use crate::pattern::{describe, stamp};
use crate::setup::{
    activate_for_io, create_default_file, install_stop_handler, latency_histogram, make_driver, make_engine,
    parse_duration, record_latency, show_duration, Driver, DriverArg, LayoutWatch, ModeArg, Rng, SwapEngine,
    EXIT_INTERRUPTED, EXIT_LAYOUT_CHANGED, STOP,
};
const PAGE: usize = PAGE_SIZE;

// ---- page state (the MM side) ----------------------------------------------------------------

const DIR_NONE: u8 = 0;
const DIR_READ: u8 = 1;
const DIR_WRITE: u8 = 2;
const ST_LOCKED: u8 = 1;
const ST_WRITEBACK: u8 = 2;

/// The page state of the workload's folios (one per arena page), as the MM keeps it.
/// Completions arrive on the driver's reaper thread; finished folios go to the workload
/// thread over a channel.
pub struct StressPages {
    dir: Vec<AtomicU8>,
    state: Vec<AtomicU8>,
    failed: Vec<AtomicBool>,
    uptodate: Vec<AtomicBool>,
    pins: Vec<AtomicI32>,
    done: Sender<u32>,
    violations: AtomicU64,
    write_failed: AtomicU64,
    write_failed_transient: AtomicU64,
    read_failed: AtomicU64,
}

impl StressPages {
    fn new(pages: usize, done: Sender<u32>) -> StressPages {
        StressPages {
            dir: (0..pages).map(|_| AtomicU8::new(DIR_NONE)).collect(),
            state: (0..pages).map(|_| AtomicU8::new(0)).collect(),
            failed: (0..pages).map(|_| AtomicBool::new(false)).collect(),
            uptodate: (0..pages).map(|_| AtomicBool::new(false)).collect(),
            pins: (0..pages).map(|_| AtomicI32::new(0)).collect(),
            done,
            violations: AtomicU64::new(0),
            write_failed: AtomicU64::new(0),
            write_failed_transient: AtomicU64::new(0),
            read_failed: AtomicU64::new(0),
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
    fn begin(&self, p: usize, dir: u8) {
        self.dir[p].store(dir, Ordering::Relaxed);
        self.failed[p].store(false, Ordering::Relaxed);
        self.uptodate[p].store(false, Ordering::Relaxed);
        if self.state[p].swap(ST_LOCKED, Ordering::AcqRel) != 0 {
            self.violation();
        }
    }

    /// Undoes `begin` for a folio the engine refused (it is untouched and still locked).
    fn abort(&self, p: usize) {
        self.dir[p].store(DIR_NONE, Ordering::Relaxed);
        self.state[p].store(0, Ordering::Release);
    }

    fn pins_held(&self) -> i64 {
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
    fn event(&self, e: SwapEvent) {
        match e {
            SwapEvent::WriteFailed { retryable, .. } => {
                self.write_failed.fetch_add(1, Ordering::Relaxed);
                if retryable {
                    self.write_failed_transient.fetch_add(1, Ordering::Relaxed);
                }
            }
            SwapEvent::ReadFailed { .. } => {
                self.read_failed.fetch_add(1, Ordering::Relaxed);
            }
            SwapEvent::SwapIn { .. } | SwapEvent::SwapOut { .. } => {}
        }
    }
}

// ---- the workload ---------------------------------------------------------------------------

/// Arguments of `swapdio stress`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the swap file created in the current directory (K/M/G suffixes).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub size: u64,
    /// How long the mixed workload runs (e.g. 10s, 500ms, 1m); a final pass then reads
    /// back every slot written.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Requests in flight (the engine's request pool).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub queue_depth: u32,
    /// I/O mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Driver.
    #[arg(long, value_enum, default_value_t = DriverArg::Uring)]
    pub driver: DriverArg,
    /// Driver-level fault rate per request (e.g. 0.01): EIO, EAGAIN and short transfers.
    /// Failed writes are redirtied and written again; nothing may be lost.
    #[arg(long, default_value_t = 0.0)]
    pub inject_faults: f64,
    /// Seed of the workload and of the fault plan (default: from the clock, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use this existing swap file instead of creating one (it is not removed; its
    /// contents are overwritten).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Directory to create the swap file in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Skip measuring the device's capacity (a raw io_uring loop, 4k random at QD 32,
    /// 0.5 s each way, before the workload) that the report sets the throughput beside.
    #[arg(long)]
    pub no_capacity: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct SlotRec {
    /// Generation of the last successful write (0: never written).
    committed: u32,
    next_gen: u32,
    busy: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct PageRec {
    slot: u64,
    gen: u32,
    op: u32,
    dir: u8,
    verify: bool,
}

struct OpRec {
    start: Instant,
    remaining: u32,
}

impl Counts {
    /// Failed requests of any kind so far.
    fn errors(&self) -> u64 {
        self.write_failures + self.read_failures + self.submit_errors
    }
}

#[derive(Default, Serialize, Clone, Copy)]
struct Counts {
    writes_ok: u64,
    write_failures: u64,
    rewrites: u64,
    reads_ok: u64,
    read_failures: u64,
    mismatches: u64,
    submit_errors: u64,
    would_block: u64,
}

struct Work<'a> {
    /// Open while the driver is io_uring: this thread reaps its own completions (the
    /// driver's fast path; no hand-off from the reaper thread).
    fg: Option<Foreground<'a>>,
    engine: Arc<SwapEngine<StressPages>>,
    arena: Arc<Arena>,
    rx: Receiver<u32>,
    rng: Rng,
    slots: Vec<SlotRec>,
    nslots: u64,
    pages: Vec<PageRec>,
    free: Vec<u32>,
    dirty: VecDeque<u32>,
    ops: Vec<Option<OpRec>>,
    free_ops: Vec<u32>,
    in_flight_ops: usize,
    qd: usize,
    latencies: Histogram<u64>,
    counts: Counts,
    mismatch_examples: Vec<String>,
    buf: Vec<u8>,
    expect: Vec<u8>,
    /// Final pass: committed slots whose read failed, to read again.
    reread: Vec<u64>,
    verified: u64,
    /// Final pass: slots read back whose content was not the last committed write.
    lost: u64,
    /// End of the write-back and read-back phase (`--duration` after the workload, at
    /// least 30 s): every loop after the workload stops here, or at a stop signal.
    end_by: Instant,
    last_progress: Instant,
}

enum Issued {
    Yes,
    Blocked,
    Nothing,
}

impl Work<'_> {
    fn pages_ops(&self) -> &StressPages {
        self.engine.page_ops()
    }

    fn new_op(&mut self) -> u32 {
        let rec = Some(OpRec { start: Instant::now(), remaining: 0 });
        match self.free_ops.pop() {
            Some(i) => {
                self.ops[i as usize] = rec;
                i
            }
            None => {
                self.ops.push(rec);
                (self.ops.len() - 1) as u32
            }
        }
    }

    /// Adds a page to an op; returns the arena page.
    fn attach(&mut self, op: u32, slot: u64, gen: u32, dir: u8, verify: bool) -> Option<u32> {
        let p = self.free.pop()?;
        self.pages[p as usize] = PageRec { slot, gen, op, dir, verify };
        if let Some(Some(o)) = self.ops.get_mut(op as usize) {
            o.remaining += 1;
        }
        self.slots[slot as usize].busy = true;
        Some(p)
    }

    /// Undoes `attach` for a page the engine refused (the op itself is settled by
    /// `finish_issue`).
    fn detach(&mut self, p: u32) {
        let rec = self.pages[p as usize];
        self.slots[rec.slot as usize].busy = false;
        self.pages_ops().abort(p as usize);
        self.free.push(p);
        if let Some(Some(o)) = self.ops.get_mut(rec.op as usize) {
            o.remaining = o.remaining.saturating_sub(1);
        }
    }

    fn op_page_done(&mut self, op: u32, sample: bool) {
        self.last_progress = Instant::now();
        let finished = match self.ops.get_mut(op as usize) {
            Some(Some(o)) => {
                o.remaining = o.remaining.saturating_sub(1);
                (o.remaining == 0).then_some(o.start)
            }
            _ => None,
        };
        if let Some(start) = finished {
            if sample {
                record_latency(&mut self.latencies, start);
            }
            self.ops[op as usize] = None;
            self.free_ops.push(op);
            self.in_flight_ops -= 1;
        }
    }

    /// Starts an op; if no page joined it, takes it back.
    fn finish_issue(&mut self, op: u32, queued: usize, blocked: bool) -> Issued {
        if queued == 0 {
            self.ops[op as usize] = None;
            self.free_ops.push(op);
            self.in_flight_ops -= 1;
            return if blocked { Issued::Blocked } else { Issued::Nothing };
        }
        Issued::Yes
    }

    fn swap_error(&mut self, e: SwapError) -> bool {
        match e {
            SwapError::WouldBlock => {
                self.counts.would_block += 1;
                true
            }
            other => {
                self.counts.submit_errors += 1;
                if self.mismatch_examples.len() < 8 {
                    self.mismatch_examples.push(format!("submit error: {other}"));
                }
                false
            }
        }
    }

    /// Swap-out of `count` consecutive slots from `start` (1 = a random page), plugged.
    fn write_run(&mut self, start: u64, count: u64) -> Issued {
        let op = self.new_op();
        self.in_flight_ops += 1;
        let engine = self.engine.clone();
        let mut plug = engine.plug();
        let mut queued = 0;
        let mut blocked = false;
        for slot in start..(start + count).min(self.nslots) {
            if self.slots[slot as usize].busy {
                break;
            }
            let rec = &mut self.slots[slot as usize];
            rec.next_gen += 1;
            let gen = rec.next_gen;
            let Some(p) = self.attach(op, slot, gen, DIR_WRITE, false) else { break };
            stamp(slot, gen, &mut self.buf);
            self.arena.copy_in(p as usize, &self.buf);
            self.pages_ops().begin(p as usize, DIR_WRITE);
            match plug.write(swapdio::Folio::small(u64::from(p), slot), FsContext::MayEnterFs) {
                Ok(()) => queued += 1,
                Err(e) => {
                    self.detach(p);
                    blocked = self.swap_error(e);
                    break;
                }
            }
        }
        drop(plug);
        self.finish_issue(op, queued, blocked)
    }

    /// Writes a dirty page again (same content, same generation).
    fn rewrite(&mut self, p: u32) -> Issued {
        let rec = self.pages[p as usize];
        let op = self.new_op();
        self.in_flight_ops += 1;
        self.pages[p as usize].op = op;
        if let Some(Some(o)) = self.ops.get_mut(op as usize) {
            o.remaining = 1;
        }
        self.pages_ops().begin(p as usize, DIR_WRITE);
        match self.engine.write(None, swapdio::Folio::small(u64::from(p), rec.slot), FsContext::MayEnterFs) {
            Ok(()) => {
                self.counts.rewrites += 1;
                Issued::Yes
            }
            Err(e) => {
                self.pages_ops().abort(p as usize);
                self.ops[op as usize] = None;
                self.free_ops.push(op);
                self.in_flight_ops -= 1;
                self.dirty.push_front(p);
                if self.swap_error(e) {
                    Issued::Blocked
                } else {
                    Issued::Nothing
                }
            }
        }
    }

    /// Swap-in of up to `count` consecutive written, idle slots from `start`, plugged.
    /// Returns what happened and how many folios were queued.
    fn read_run(&mut self, start: u64, count: u64, verify: bool) -> (Issued, u64) {
        let op = self.new_op();
        self.in_flight_ops += 1;
        let engine = self.engine.clone();
        let mut plug = engine.plug();
        let mut queued = 0u64;
        let mut blocked = false;
        for slot in start..(start + count).min(self.nslots) {
            let rec = self.slots[slot as usize];
            if rec.busy || rec.committed == 0 {
                break;
            }
            let Some(p) = self.attach(op, slot, rec.committed, DIR_READ, verify) else { break };
            self.pages_ops().begin(p as usize, DIR_READ);
            match plug.read(swapdio::Folio::small(u64::from(p), slot)) {
                Ok(()) => queued += 1,
                Err(e) => {
                    self.detach(p);
                    blocked = self.swap_error(e);
                    break;
                }
            }
        }
        drop(plug);
        (self.finish_issue(op, queued as usize, blocked), queued)
    }

    /// A random slot satisfying `ok`, if one is found in a few tries.
    fn pick(&mut self, ok: impl Fn(&SlotRec) -> bool) -> Option<u64> {
        (0..16).map(|_| self.rng.u64(1..self.nslots.max(2))).find(|&s| ok(&self.slots[s as usize]))
    }

    /// One op of the mixed workload.
    fn issue_one(&mut self) -> Issued {
        if let Some(&p) = self.dirty.front() {
            if self.rng.u8(..4) == 0 || self.free.len() < 64 {
                self.dirty.pop_front();
                return self.rewrite(p);
            }
        }
        if self.free.len() < 32 {
            return Issued::Blocked;
        }
        let roll = self.rng.u32(..100);
        let written = |r: &SlotRec| !r.busy && r.committed > 0;
        match roll {
            0..=29 => match self.pick(|r| !r.busy) {
                Some(s) => self.write_run(s, 1),
                None => Issued::Nothing,
            },
            30..=49 => match self.pick(|r| !r.busy) {
                Some(s) => {
                    let n = self.rng.u64(8..=32);
                    self.write_run(s, n)
                }
                None => Issued::Nothing,
            },
            50..=79 => match self.pick(written) {
                Some(s) => self.read_run(s, 1, false).0,
                None => Issued::Nothing,
            },
            _ => match self.pick(written) {
                Some(s) => {
                    let n = self.rng.u64(8..=32);
                    self.read_run(s, n, false).0
                }
                None => Issued::Nothing,
            },
        }
    }

    /// Handles one finished folio.
    fn complete(&mut self, p: u32) {
        let rec = self.pages[p as usize];
        let pi = p as usize;
        match rec.dir {
            DIR_WRITE => {
                if self.pages_ops().failed[pi].load(Ordering::Acquire) {
                    // Redirtied: the data is still only in memory; write it again later.
                    self.counts.write_failures += 1;
                    self.dirty.push_back(p);
                    self.op_page_done(rec.op, true);
                    return;
                }
                self.counts.writes_ok += 1;
                let s = &mut self.slots[rec.slot as usize];
                s.committed = rec.gen;
                s.busy = false;
            }
            DIR_READ => {
                if self.pages_ops().uptodate[pi].load(Ordering::Acquire) {
                    self.counts.reads_ok += 1;
                    self.arena.copy_out(pi, &mut self.buf);
                    stamp(rec.slot, rec.gen, &mut self.expect);
                    if self.buf != self.expect {
                        self.counts.mismatches += 1;
                        if rec.verify {
                            self.lost += 1;
                        }
                        if self.mismatch_examples.len() < 8 {
                            self.mismatch_examples.push(format!(
                                "slot {}: expected generation {}, found {}",
                                rec.slot,
                                rec.gen,
                                describe(&self.buf)
                            ));
                        }
                    } else if rec.verify {
                        self.verified += 1;
                    }
                } else {
                    self.counts.read_failures += 1;
                    if rec.verify {
                        self.reread.push(rec.slot);
                    }
                }
                self.slots[rec.slot as usize].busy = false;
            }
            _ => {}
        }
        self.pages_ops().dir[pi].store(DIR_NONE, Ordering::Relaxed);
        self.free.push(p);
        self.op_page_done(rec.op, true);
    }

    fn drain_ready(&mut self) -> usize {
        if let Some(fg) = self.fg.as_mut() {
            // Reap what the ring completed (no wait).
            fg.wait(Duration::ZERO);
        }
        let mut n = 0;
        while let Ok(p) = self.rx.try_recv() {
            self.complete(p);
            n += 1;
        }
        n
    }

    /// The next finished folio, waiting up to `timeout`.
    fn next_done(&mut self, timeout: Duration) -> Option<u32> {
        if let Ok(p) = self.rx.try_recv() {
            return Some(p);
        }
        let Some(fg) = self.fg.as_mut() else { return self.rx.recv_timeout(timeout).ok() };
        let give_up = Instant::now() + timeout;
        loop {
            let handled = fg.wait(give_up.saturating_duration_since(Instant::now()));
            if let Ok(p) = self.rx.try_recv() {
                return Some(p);
            }
            if Instant::now() >= give_up || (handled == 0 && self.in_flight_ops == 0) {
                return None;
            }
        }
    }

    fn wait_one(&mut self, timeout: Duration) -> bool {
        match self.next_done(timeout) {
            Some(p) => {
                self.complete(p);
                self.drain_ready();
                self.last_progress = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Nothing completed for 30 s although requests are outstanding.
    fn stalled(&self) -> bool {
        self.in_flight_ops > 0 && self.last_progress.elapsed() > Duration::from_secs(30)
    }

    /// Waits until nothing is in flight (bounded).
    fn drain_all(&mut self) -> bool {
        let t = Instant::now();
        while self.in_flight_ops > 0 {
            if !self.wait_one(Duration::from_millis(100)) && t.elapsed() > Duration::from_secs(30) {
                return false;
            }
        }
        true
    }

    /// Time to give up the end phase: the stop flag, or its deadline.
    fn ending(&self) -> bool {
        STOP.load(Ordering::Relaxed) || Instant::now() >= self.end_by
    }

    /// Writes every dirty page until none is left. Bounded whatever the device does: it
    /// stops at a stop signal, at the end-phase deadline, and after 3 rounds in a row in
    /// which no rewrite succeeded (a device failing every write). What is still dirty
    /// then stays in `dirty`, reported as not written back.
    fn flush_dirty(&mut self) {
        let mut fruitless = 0;
        while !self.dirty.is_empty() && fruitless < 3 {
            let before = self.counts.writes_ok;
            // One round: every page dirty now, once; failures come back for the next round.
            let mut round: VecDeque<u32> = std::mem::take(&mut self.dirty);
            while let Some(p) = round.pop_front() {
                if self.ending() {
                    round.push_front(p);
                    break;
                }
                while self.in_flight_ops >= self.qd && !self.ending() {
                    if !self.wait_one(Duration::from_millis(100)) && self.stalled() {
                        break;
                    }
                }
                if self.in_flight_ops >= self.qd {
                    round.push_front(p);
                    break;
                }
                if let Issued::Blocked = self.rewrite(p) {
                    // `rewrite` put it back on `dirty`: retry it in this round.
                    if let Some(q) = self.dirty.pop_front() {
                        round.push_front(q);
                    }
                    self.wait_one(Duration::from_micros(100));
                }
            }
            self.dirty.extend(round);
            if !self.drain_all() || self.ending() {
                return;
            }
            fruitless = if self.counts.writes_ok > before { 0 } else { fruitless + 1 };
        }
    }

    /// Reads back every slot ever written and checks it (failed reads are retried).
    /// Returns how many slots it set out to verify (written, not dirty in memory).
    fn final_pass(&mut self, bar: &ProgressBar) -> u64 {
        let mut todo: Vec<u64> = (1..self.nslots)
            .filter(|&s| self.slots[s as usize].committed > 0 && !self.slots[s as usize].busy)
            .collect();
        let total = todo.len() as u64;
        bar.set_length(todo.len() as u64);
        bar.set_position(0);
        bar.set_message("verifying every written slot");
        for _round in 0..20 {
            let mut i = 0;
            while i < todo.len() {
                if self.ending() || self.stalled() {
                    return total;
                }
                self.drain_ready();
                if self.in_flight_ops >= self.qd || self.free.len() < 32 {
                    self.wait_one(Duration::from_millis(100));
                    continue;
                }
                // A run of consecutive slots to read in one plug.
                let start = todo[i];
                let mut n = 1;
                while n < 32 && i + (n as usize) < todo.len() && todo[i + n as usize] == start + n {
                    n += 1;
                }
                match self.read_run(start, n, true) {
                    (_, q) if q > 0 => i += q as usize,
                    (Issued::Blocked, _) => {
                        self.wait_one(Duration::from_micros(100));
                    }
                    // Not readable now (cannot happen once drained): retry next round.
                    _ => {
                        self.reread.push(start);
                        i += 1;
                    }
                }
                bar.set_position(i as u64);
            }
            self.drain_all();
            if self.reread.is_empty() {
                break;
            }
            todo = std::mem::take(&mut self.reread);
            todo.sort_unstable();
        }
        total
    }
}

/// How a run ended, and its exit status (documented in the README and `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// Everything written was read back intact: exit 0.
    Ok,
    /// A check failed (mismatch, lost page, page rule, leaked pin, submit error): exit 1.
    Failed,
    /// Nothing wrong was found but not everything could be checked (pages that could not
    /// be written back or read back, nothing written at all, or the end phase timed out): exit 3.
    Unverified,
    /// The layout changed during the run: exit 4.
    LayoutChanged,
    /// Stopped by SIGINT/SIGTERM/SIGHUP before the end: exit 130.
    Interrupted,
}

impl Outcome {
    fn exit_status(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Unverified => EXIT_UNVERIFIED,
            Outcome::LayoutChanged => EXIT_LAYOUT_CHANGED,
            Outcome::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// Exit status of a run that found nothing wrong but could not check everything.
const EXIT_UNVERIFIED: u8 = 3;

#[derive(Serialize)]
struct Report {
    ok: bool,
    outcome: Outcome,
    exit_status: u8,
    file: String,
    created: bool,
    size_bytes: u64,
    mode: &'static str,
    driver: &'static str,
    queue_depth: u32,
    duration_s: f64,
    seed: u64,
    inject_faults_ppm: u32,
    usable_pages: u64,
    extents: u64,
    pages_out: u64,
    pages_in: u64,
    pages_out_per_s: f64,
    pages_in_per_s: f64,
    mib_out_per_s: f64,
    mib_in_per_s: f64,
    latency_us_p50: u64,
    latency_us_p99: u64,
    latency_us_max: u64,
    latency_samples: u64,
    requests: u64,
    counts: Counts,
    errors: u64,
    mismatches: u64,
    mismatch_examples: Vec<String>,
    slots_written: u64,
    verified_pages: u64,
    /// Read back at the end with content other than the last committed write.
    lost_pages: u64,
    /// Written pages the final pass could not read back (all reads failed, or stopped
    /// early): neither verified nor known to be lost.
    unverified_pages: u64,
    /// Pages whose every write failed: still only in memory (not lost), never written.
    unwritten_dirty_pages: u64,
    /// The write-back/read-back phase hit its deadline.
    end_phase_timed_out: bool,
    page_rule_violations: u64,
    pins_leaked: i64,
    lease: String,
    /// The device's capacity measured before the run (`None` with `--no-capacity`).
    capacity: Option<Capacity>,
    /// Pages/s both ways over the capacity's mean of swap-in and swap-out pages/s.
    vs_capacity: Option<f64>,
    /// The layout changed during the run (exit status 4): writing stopped, the final
    /// read-back was skipped.
    layout_changed: bool,
    interrupted: bool,
    driver_stats: DriverStats,
    /// NBD targets: connections, losses, reconnects, FUA writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    nbd: Option<swapdio::linux::nbd::NbdStats>,
}

/// The device's capacity the throughput is set beside: a raw io_uring loop (no engine)
/// on the same target, 4 KiB random requests at QD 32, swap-in then swap-out.
#[derive(Clone, Copy, Debug, Serialize)]
struct Capacity {
    in_pages_per_s: f64,
    out_pages_per_s: f64,
}

/// Measures [`Capacity`] for 0.5 s each way before the workload (the slots hold no
/// data yet). `None` if io_uring or the target is unavailable.
fn measure_capacity(act: &crate::setup::Activated, arena: &Arena, seed: u64) -> Option<Capacity> {
    use crate::bench::{raw_case, CASES};
    let target = crate::setup::open_target(act).ok()?;
    let map = swapdio::SwapMap::new(act.map.entries().to_vec(), act.report.mode).ok()?;
    let case = |name: &str| CASES.iter().find(|c| c.name.contains(name) && c.qd == 32 && c.pages == 1 && c.random);
    let d = Duration::from_millis(500);
    let rin = raw_case(&target, &map, arena, case("swap-in")?, seed, d)?;
    let rout = raw_case(&target, &map, arena, case("swap-out")?, seed, d)?;
    Some(Capacity { in_pages_per_s: rin.iops, out_pages_per_s: rout.iops })
}

/// What `bench` reports of one stress run on its file.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StressFigure {
    /// Pages moved per second, both ways (the timed workload only).
    pub pages_per_s: f64,
    /// The same in MiB/s.
    pub mib_s: f64,
    /// Per-request latency percentiles (a request is one page or a plugged run).
    pub p50_us: u64,
    pub p99_us: u64,
    /// The run's exit status (0: every page verified).
    pub exit_status: u8,
}

/// The stress workload exactly as `swapdio stress --file FILE --queue-depth 32` runs it
/// (io_uring, foreground, verified), quietly, for `bench`'s side-by-side figure.
pub fn figure_for_bench(
    file: &std::path::Path,
    mode: ModeArg,
    duration: Duration,
    seed: u64,
) -> Result<StressFigure, String> {
    let args = Args {
        size: 0,
        duration,
        queue_depth: 32,
        mode,
        driver: DriverArg::Uring,
        inject_faults: 0.0,
        seed: Some(seed),
        file: Some(file.to_path_buf()),
        dir: PathBuf::from("."),
        no_capacity: true,
    };
    let r = stress(&args, true)?;
    let secs = r.duration_s.max(1e-9);
    Ok(StressFigure {
        pages_per_s: (r.pages_out + r.pages_in) as f64 / secs,
        mib_s: r.mib_out_per_s + r.mib_in_per_s,
        p50_us: r.latency_us_p50,
        p99_us: r.latency_us_p99,
        exit_status: r.exit_status,
    })
}

/// Runs `swapdio stress`.
pub fn run(args: Args, json: bool) -> ExitCode {
    install_stop_handler();
    match stress(&args, json) {
        Ok(report) => {
            print_report(&report, json);
            ExitCode::from(report.exit_status)
        }
        Err(e) => {
            if json {
                outln!("{}", serde_json::json!({"ok": false, "error": e}));
            } else {
                errln!("swapdio stress: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn stress(args: &Args, json: bool) -> Result<Report, String> {
    if !(0.0..=1.0).contains(&args.inject_faults) {
        return Err(format!("--inject-faults {} must be between 0 and 1", args.inject_faults));
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    // The swap file: the caller's, or a fresh anonymous one that is gone when `_created` drops.
    let (path, shown, _created) = match &args.file {
        Some(p) => (p.clone(), p.display().to_string(), None),
        None => {
            let c = create_default_file(&args.dir, "stress", args.size, json)?;
            (c.path.clone(), c.shown.clone(), Some(c))
        }
    };
    if STOP.load(Ordering::SeqCst) {
        return Err("interrupted".into());
    }
    let act = activate_for_io(&path, args.mode, json)?;
    let qd = args.queue_depth as usize;
    let arena_pages = qd * 64 + 256;
    let arena = Arc::new(Arena::new(arena_pages).map_err(|e| format!("cannot map {arena_pages} pages: {e}"))?);
    let storage = StorageConfig { pool: qd, sync: 4, splits: 8 };
    let faults = FaultConfig {
        rate_ppm: (args.inject_faults * 1e6).round() as u32,
        seed,
        kinds: FaultKinds::EIO | FaultKinds::EAGAIN | FaultKinds::SHORT,
    };
    let capacity = if args.no_capacity || act.nbd.is_some() { None } else { measure_capacity(&act, &arena, seed) };
    let driver = make_driver(args.driver, &act, &arena, storage, faults, json)?;
    let driver_name = driver.name();
    let (tx, rx) = channel();
    let nslots = act.map.slots();
    let mode = act.report.mode;
    let engine = make_engine(act.map, storage, driver, StressPages::new(arena_pages, tx))?;
    if !json {
        errln!(
            "swapdio stress: {} ({} usable pages, {} extent(s)), {} mode, {} driver, QD {}, {}, seed {}{}",
            shown,
            act.report.usable_pages,
            act.report.extents,
            mode_name(mode),
            driver_name,
            qd,
            show_duration(args.duration),
            seed,
            if faults.rate_ppm > 0 { format!(", faults {} ppm", faults.rate_ppm) } else { String::new() }
        );
    }
    // The driver's fast path: with io_uring this thread submits and reaps itself.
    let uring = match engine.backend() {
        Driver::Uring(u) => Some(Arc::clone(u)),
        _ => None,
    };
    let mut w = Work {
        fg: uring.as_deref().map(UringBackend::foreground),
        engine: engine.clone(),
        arena,
        rx,
        rng: Rng::with_seed(seed),
        slots: vec![SlotRec::default(); nslots as usize],
        nslots,
        pages: vec![PageRec::default(); arena_pages],
        free: (0..arena_pages as u32).rev().collect(),
        dirty: VecDeque::new(),
        ops: Vec::new(),
        free_ops: Vec::new(),
        in_flight_ops: 0,
        qd,
        latencies: latency_histogram()?,
        counts: Counts::default(),
        mismatch_examples: Vec::new(),
        buf: vec![0; PAGE],
        expect: vec![0; PAGE],
        reread: Vec::new(),
        verified: 0,
        lost: 0,
        end_by: Instant::now(),
        last_progress: Instant::now(),
    };
    // A block device's bad pages are not in the map: never written, read or verified.
    if act.report.bad_pages > 0 {
        for s in (1..nslots).filter(|&s| !engine.map().is_usable(s)) {
            w.slots[s as usize].busy = true;
        }
    }

    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(args.duration.as_millis() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let deadline = start.checked_add(args.duration).ok_or("--duration is too long for this clock")?;
    let mut last_draw = start;
    let mut watch = LayoutWatch::new(Duration::from_millis(500));
    let mut layout_changed = None;
    while Instant::now() < deadline && !STOP.load(Ordering::Relaxed) {
        let mut progressed = w.drain_ready() > 0;
        if let Some(change) = watch.poll(&act.lease, act.guard.as_ref(), w.counts.errors()) {
            layout_changed = Some(change);
            break;
        }
        let mut idle_tries = 0;
        let mut blocked = false;
        while w.in_flight_ops < qd && idle_tries < 8 {
            match w.issue_one() {
                Issued::Yes => progressed = true,
                Issued::Blocked => {
                    blocked = true;
                    break;
                }
                // Nothing eligible for that op (e.g. no slot written yet for a read).
                Issued::Nothing => idle_tries += 1,
            }
        }
        // The pool frees a request just after its folios' completions arrive: when
        // blocked by it, look again very soon instead of sleeping.
        let nap = if blocked { Duration::from_micros(100) } else { Duration::from_millis(50) };
        if !progressed && !w.wait_one(nap) && w.stalled() {
            return Err(format!("no completion for 30 s with {} requests outstanding", w.in_flight_ops));
        }
        let now = Instant::now();
        if now.duration_since(last_draw) >= Duration::from_millis(200) {
            last_draw = now;
            let st = engine.stats();
            let secs = now.duration_since(start).as_secs_f64().max(1e-3);
            bar.set_position(now.duration_since(start).as_millis() as u64);
            bar.set_message(format!(
                "out {:.0} pages/s, in {:.0} pages/s, mismatches {}",
                st.pages_out as f64 / secs,
                st.pages_in as f64 / secs,
                w.counts.mismatches
            ));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let timed = engine.stats();
    let latencies = w.latencies.clone();
    // The write-back and read-back get as long as the workload had, at least 30 s.
    w.end_by = Instant::now() + args.duration.max(Duration::from_secs(30));
    // Write back whatever is still dirty, then read back every slot ever written.
    w.drain_all();
    let mut to_verify = 0;
    // No write after a layout change: the blocks may no longer be the file's.
    if layout_changed.is_none() {
        layout_changed = act.lease.verify().err().map(|e| e.to_string());
    }
    if !STOP.load(Ordering::Relaxed) && layout_changed.is_none() {
        bar.set_message("writing back dirty pages");
        w.flush_dirty();
        to_verify = w.final_pass(&bar);
    }
    w.drain_all();
    bar.finish_and_clear();
    let interrupted = STOP.load(Ordering::Relaxed);
    let end_timed_out = !interrupted && Instant::now() >= w.end_by;
    // Hand completions back to the reaper before deactivating.
    w.fg = None;

    let deactivated = {
        let t = Instant::now();
        loop {
            match engine.deactivate() {
                Ok(()) => break true,
                Err(_) if t.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => break false,
            }
        }
    };
    let lease = match (&layout_changed, act.lease.verify()) {
        (Some(change), _) => format!("CHANGED during the run, writing stopped: {change}"),
        (None, Ok(())) => "unchanged".to_string(),
        (None, Err(e)) => format!("CHANGED: {e}"),
    };
    let driver_stats = engine.backend().stats();
    let nbd = crate::target::nbd_stats(engine.backend());
    let pages = engine.page_ops();
    let violations = pages.violations.load(Ordering::Relaxed) + u64::from(!deactivated);
    let pins_leaked = pages.pins_held();
    let slots_written = w.slots.iter().filter(|s| s.committed > 0).count() as u64;
    let unwritten_dirty = w.dirty.len() as u64;
    let lost = w.lost;
    // Written, committed slots the final pass could not read back (every read failed,
    // or the run was stopped or timed out first): not known to be lost, not verified.
    let unverified = to_verify.saturating_sub(w.verified + lost);
    let counts = w.counts;
    let mismatches = counts.mismatches;
    let errors = counts.errors();
    let failed = mismatches > 0
        || lost > 0
        || violations > 0
        || pins_leaked != 0
        || lease != "unchanged"
        || counts.submit_errors > 0;
    // Nothing wrong found, but not everything could be checked.
    let skipped_verify = layout_changed.is_some() || interrupted;
    let inconclusive = unverified > 0 || unwritten_dirty > 0 || timed.pages_out == 0 || end_timed_out;
    let outcome = if layout_changed.is_some() {
        Outcome::LayoutChanged
    } else if failed {
        Outcome::Failed
    } else if interrupted {
        Outcome::Interrupted
    } else if inconclusive || skipped_verify {
        Outcome::Unverified
    } else {
        Outcome::Ok
    };
    Ok(Report {
        ok: outcome == Outcome::Ok,
        outcome,
        exit_status: outcome.exit_status(),
        file: shown,
        created: args.file.is_none(),
        size_bytes: act.layout.file_size,
        mode: mode_name(mode),
        driver: driver_name,
        queue_depth: args.queue_depth,
        duration_s: elapsed,
        seed,
        inject_faults_ppm: faults.rate_ppm,
        usable_pages: act.report.usable_pages,
        extents: act.report.extents,
        pages_out: timed.pages_out,
        pages_in: timed.pages_in,
        pages_out_per_s: timed.pages_out as f64 / elapsed,
        pages_in_per_s: timed.pages_in as f64 / elapsed,
        mib_out_per_s: (timed.pages_out * PAGE as u64) as f64 / elapsed / (1 << 20) as f64,
        mib_in_per_s: (timed.pages_in * PAGE as u64) as f64 / elapsed / (1 << 20) as f64,
        latency_us_p50: latencies.value_at_quantile(0.50),
        latency_us_p99: latencies.value_at_quantile(0.99),
        latency_us_max: latencies.max(),
        latency_samples: latencies.len(),
        requests: engine.stats().requests_submitted,
        counts,
        errors,
        mismatches,
        mismatch_examples: w.mismatch_examples.clone(),
        slots_written,
        verified_pages: w.verified,
        lost_pages: lost,
        unverified_pages: unverified,
        unwritten_dirty_pages: unwritten_dirty,
        end_phase_timed_out: end_timed_out,
        page_rule_violations: violations,
        pins_leaked,
        lease,
        capacity,
        vs_capacity: capacity.map(|c| {
            (timed.pages_out + timed.pages_in) as f64 / elapsed / ((c.in_pages_per_s + c.out_pages_per_s) / 2.0)
        }),
        layout_changed: layout_changed.is_some(),
        interrupted,
        driver_stats,
        nbd,
    })
}

fn print_report(r: &Report, json: bool) {
    if json {
        outln!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    outln!(
        "swapdio stress: {} mode, {} driver, QD {}, {:.1} s, seed {}",
        r.mode,
        r.driver,
        r.queue_depth,
        r.duration_s,
        r.seed
    );
    outln!(
        "  swap file       {} ({} usable pages, {} extent(s){})",
        r.file,
        r.usable_pages,
        r.extents,
        if r.created { ", removed" } else { "" }
    );
    outln!("  swap-out        {} pages, {:.0} pages/s ({:.1} MiB/s)", r.pages_out, r.pages_out_per_s, r.mib_out_per_s);
    outln!("  swap-in         {} pages, {:.0} pages/s ({:.1} MiB/s)", r.pages_in, r.pages_in_per_s, r.mib_in_per_s);
    if let (Some(c), Some(x)) = (r.capacity, r.vs_capacity) {
        outln!(
            "  capacity        raw io_uring 4k random QD32 before the run: in {:.0}, out {:.0} pages/s; this run {:.0} pages/s both ways = {x:.2}x",
            c.in_pages_per_s,
            c.out_pages_per_s,
            r.pages_in_per_s + r.pages_out_per_s
        );
    }
    outln!(
        "  latency         p50 {} us, p99 {} us, max {} us ({} requests; per request, submission to last page done)",
        r.latency_us_p50,
        r.latency_us_p99,
        r.latency_us_max,
        r.latency_samples
    );
    if r.inject_faults_ppm > 0 {
        outln!(
            "  faults          {} injected ({} ppm): {} failed writes rewritten ({} rewrites), {} failed reads, {} resubmitted short",
            r.driver_stats.injected,
            r.inject_faults_ppm,
            r.counts.write_failures,
            r.counts.rewrites,
            r.counts.read_failures,
            r.driver_stats.resubmitted
        );
    }
    outln!(
        "  errors          {} (write failures {}, read failures {}, submit errors {})",
        r.errors,
        r.counts.write_failures,
        r.counts.read_failures,
        r.counts.submit_errors
    );
    outln!(
        "  verified        {} of {} written slots read back intact at the end; lost {}, could not verify {}",
        r.verified_pages,
        r.slots_written,
        r.lost_pages,
        r.unverified_pages
    );
    if r.unwritten_dirty_pages > 0 {
        outln!(
            "  not written     {} dirty pages could not be written back (every rewrite failed); they were never on disk",
            r.unwritten_dirty_pages
        );
    }
    if r.end_phase_timed_out {
        outln!("  end phase       write-back and read-back stopped at their deadline");
    }
    outln!("  page rules      {} violations, {} pins leaked", r.page_rule_violations, r.pins_leaked);
    outln!("  layout lease    {}", r.lease);
    if let Some(n) = &r.nbd {
        outln!("{}", crate::target::nbd_stats_line(n));
    }
    outln!("  mismatches      {}", r.mismatches);
    for m in &r.mismatch_examples {
        outln!("    {m}");
    }
    if r.interrupted {
        outln!("  interrupted     stopped by a signal before the end; the final read-back was cut short or skipped");
    }
    outln!(
        "{} (exit status {})",
        match r.outcome {
            Outcome::Ok => "OK",
            Outcome::Failed => "FAILED",
            Outcome::Unverified => "UNVERIFIED: nothing wrong found, but not everything could be checked",
            Outcome::LayoutChanged => "STOPPED: the swap file's layout changed",
            Outcome::Interrupted => "INTERRUPTED",
        },
        r.exit_status
    );
}
