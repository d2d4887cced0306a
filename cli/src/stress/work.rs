//! The workload loop of `swapdio stress`: which folios go out and in, their slots and
//! generations, the requests in flight, completions, the write-back of dirty folios and
//! the final read-back of every slot written.
//!
//! A folio of `n` pages is `n` contiguous arena pages (from the [`Buddy`] allocator) at
//! `n` consecutive swap slots aligned to `n`; every page of it is stamped with its own
//! slot and generation and checked byte for byte when read back. A failed write redirties
//! the whole folio, which is written again later, whole.

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swapdio::linux::direct::Arena;
use swapdio::linux::uring::Foreground;
use swapdio::{Folio, FsContext, SwapError, PAGE_SIZE};

use super::folios::{Buddy, FolioCounts, FolioMix};
use super::pages::{StressPages, DIR_NONE, DIR_READ, DIR_WRITE};
use crate::pattern::{describe, stamp};
use crate::setup::{latency_histogram, record_latency, Rng, SwapEngine, STOP};

const PAGE: usize = PAGE_SIZE;

#[derive(Clone, Copy, Debug, Default)]
pub struct SlotRec {
    /// Generation of the last successful write (0: never written).
    pub committed: u32,
    next_gen: u32,
    /// In a folio in flight, or in a dirty folio waiting to be written again.
    pub busy: bool,
}

/// A folio in the arena, named by its first arena page.
#[derive(Clone, Copy, Debug, Default)]
struct FolioRec {
    slot: u64,
    pages: u32,
    op: u32,
    dir: u8,
    verify: bool,
}

struct OpRec {
    start: Instant,
    remaining: u32,
}

/// What the workload's requests did, counted per folio (a mismatch per page).
#[derive(Default, Serialize, Clone, Copy)]
pub struct Counts {
    pub writes_ok: u64,
    pub write_failures: u64,
    pub rewrites: u64,
    pub reads_ok: u64,
    pub read_failures: u64,
    /// Pages read back with content other than the last write of their slot.
    pub mismatches: u64,
    pub submit_errors: u64,
    pub would_block: u64,
    /// Large folios spanning more extents than there are requests (`TooFragmented`):
    /// not written; the workload moves on (the kernel would split such a folio first).
    pub too_fragmented: u64,
}

impl Counts {
    /// Failed requests of any kind so far.
    pub fn errors(&self) -> u64 {
        self.write_failures + self.read_failures + self.submit_errors
    }
}

pub struct Work<'a> {
    /// Open while the driver is io_uring: this thread reaps its own completions (the
    /// driver's fast path; no hand-off from the reaper thread).
    pub fg: Option<Foreground<'a>>,
    engine: Arc<SwapEngine<StressPages>>,
    arena: Arc<Arena>,
    rx: Receiver<u32>,
    rng: Rng,
    mix: FolioMix,
    pub slots: Vec<SlotRec>,
    nslots: u64,
    /// By first arena page.
    folios: Vec<FolioRec>,
    alloc: Buddy,
    /// First arena pages of folios whose write failed, to write again.
    dirty: VecDeque<u32>,
    ops: Vec<Option<OpRec>>,
    free_ops: Vec<u32>,
    pub in_flight_ops: usize,
    qd: usize,
    pub latencies: Histogram<u64>,
    pub counts: Counts,
    pub sizes: FolioCounts,
    pub mismatch_examples: Vec<String>,
    buf: Vec<u8>,
    expect: Vec<u8>,
    /// Final pass: committed slots whose read failed, to read again.
    reread: Vec<u64>,
    /// Final pass: slots read back intact.
    pub verified: u64,
    /// Final pass: slots read back whose content was not the last committed write.
    pub lost: u64,
    /// End of the write-back and read-back phase (`--duration` after the workload, at
    /// least 30 s): every loop after the workload stops here, or at a stop signal.
    pub end_by: Instant,
    last_progress: Instant,
}

pub enum Issued {
    Yes,
    Blocked,
    Nothing,
}

/// Arena pages `stress` maps for queue depth `qd` and folios up to `max_folio` pages: room
/// for every request's folios and for dirty folios waiting, a whole number of the largest
/// folio (the [`Buddy`] allocator's block).
pub fn arena_pages(qd: usize, max_folio: u32) -> usize {
    let block = max_folio as usize;
    let want = qd * 64.max(2 * block) + 256 + 4 * block;
    want.div_ceil(block) * block
}

impl<'a> Work<'a> {
    /// A workload on `engine` over `arena` (of [`arena_pages`] pages); finished folios
    /// arrive on `rx`.
    pub fn new(
        fg: Option<Foreground<'a>>,
        engine: Arc<SwapEngine<StressPages>>,
        arena: Arc<Arena>,
        rx: Receiver<u32>,
        mix: FolioMix,
        seed: u64,
        qd: usize,
    ) -> Result<Work<'a>, String> {
        let nslots = engine.map().slots();
        let max = mix.max();
        Ok(Work {
            fg,
            alloc: Buddy::new(arena.pages(), max.trailing_zeros()),
            folios: vec![FolioRec::default(); arena.pages()],
            engine,
            arena,
            rx,
            rng: Rng::with_seed(seed),
            sizes: FolioCounts::new(&mix),
            mix,
            slots: vec![SlotRec::default(); nslots as usize],
            nslots,
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
        })
    }

    fn pages_ops(&self) -> &StressPages {
        self.engine.page_ops()
    }

    /// Pages of the folios still dirty (every write of them failed so far).
    pub fn dirty_pages(&self) -> u64 {
        self.dirty.iter().map(|&p| u64::from(self.folios[p as usize].pages)).sum()
    }

    fn new_op(&mut self) -> u32 {
        let rec = Some(OpRec { start: Instant::now(), remaining: 0 });
        self.in_flight_ops += 1;
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

    fn end_op(&mut self, op: u32) {
        self.ops[op as usize] = None;
        self.free_ops.push(op);
        self.in_flight_ops -= 1;
    }

    fn set_busy(&mut self, slot: u64, pages: u32, busy: bool) {
        for s in &mut self.slots[slot as usize..(slot + u64::from(pages)) as usize] {
            s.busy = busy;
        }
    }

    /// Adds a folio of `pages` pages at `slot` to an op; returns its first arena page.
    fn attach(&mut self, op: u32, slot: u64, pages: u32, dir: u8, verify: bool) -> Option<u32> {
        let p = self.alloc.alloc(pages)?;
        self.folios[p as usize] = FolioRec { slot, pages, op, dir, verify };
        if let Some(Some(o)) = self.ops.get_mut(op as usize) {
            o.remaining += 1;
        }
        self.set_busy(slot, pages, true);
        Some(p)
    }

    /// Undoes `attach` for a folio the engine refused (the op itself is settled by
    /// `finish_issue`).
    fn detach(&mut self, p: u32) {
        let rec = self.folios[p as usize];
        self.set_busy(rec.slot, rec.pages, false);
        self.pages_ops().abort(p as usize);
        self.alloc.release(p, rec.pages);
        if let Some(Some(o)) = self.ops.get_mut(rec.op as usize) {
            o.remaining = o.remaining.saturating_sub(1);
        }
    }

    fn op_folio_done(&mut self, op: u32) {
        self.last_progress = Instant::now();
        let finished = match self.ops.get_mut(op as usize) {
            Some(Some(o)) => {
                o.remaining = o.remaining.saturating_sub(1);
                (o.remaining == 0).then_some(o.start)
            }
            _ => None,
        };
        if let Some(start) = finished {
            record_latency(&mut self.latencies, start);
            self.end_op(op);
        }
    }

    /// Starts an op; if no folio joined it, takes it back.
    fn finish_issue(&mut self, op: u32, queued: u64, blocked: bool) -> Issued {
        if queued == 0 {
            self.end_op(op);
            return if blocked { Issued::Blocked } else { Issued::Nothing };
        }
        Issued::Yes
    }

    /// Counts a refusal; `true` when it means "wait for a completion" (`WouldBlock`).
    fn swap_error(&mut self, e: SwapError) -> bool {
        match e {
            SwapError::WouldBlock => {
                self.counts.would_block += 1;
                true
            }
            SwapError::TooFragmented { .. } => {
                self.counts.too_fragmented += 1;
                false
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

    /// Whether the folio of `pages` pages at `slot` crosses an extent boundary.
    fn crosses_extent(&self, slot: u64, pages: u32) -> bool {
        self.engine.map().lookup(slot).is_ok_and(|run| run.pages < u64::from(pages))
    }

    /// Swap-out of `count` consecutive folios of `pages` pages from `start`, plugged.
    fn write_run(&mut self, start: u64, count: u64, pages: u32) -> Issued {
        let op = self.new_op();
        let engine = self.engine.clone();
        let mut plug = engine.plug();
        let mut queued = 0;
        let mut blocked = false;
        let n = u64::from(pages);
        let nslots = self.nslots;
        for slot in (0..count).map(|k| start + k * n).take_while(|&s| s + n <= nslots) {
            if self.slots[slot as usize..(slot + n) as usize].iter().any(|s| s.busy) {
                break;
            }
            let Some(p) = self.attach(op, slot, pages, DIR_WRITE, false) else { break };
            for i in 0..n {
                let rec = &mut self.slots[(slot + i) as usize];
                rec.next_gen += 1;
                stamp(slot + i, rec.next_gen, &mut self.buf);
                self.arena.copy_in(p as usize + i as usize, &self.buf);
            }
            self.pages_ops().begin(p as usize, DIR_WRITE);
            match plug.write(Folio::large(u64::from(p), slot, pages), FsContext::MayEnterFs) {
                Ok(()) => queued += 1,
                Err(e) => {
                    // Untouched: the next write of these slots takes new generations.
                    self.detach(p);
                    blocked = self.swap_error(e);
                    break;
                }
            }
        }
        drop(plug);
        self.finish_issue(op, queued, blocked)
    }

    /// Writes a dirty folio again, whole (same content, same generations).
    fn rewrite(&mut self, p: u32) -> Issued {
        let rec = self.folios[p as usize];
        let op = self.new_op();
        self.folios[p as usize].op = op;
        if let Some(Some(o)) = self.ops.get_mut(op as usize) {
            o.remaining = 1;
        }
        self.pages_ops().begin(p as usize, DIR_WRITE);
        match self.engine.write(None, Folio::large(u64::from(p), rec.slot, rec.pages), FsContext::MayEnterFs) {
            Ok(()) => {
                self.counts.rewrites += 1;
                Issued::Yes
            }
            Err(e) => {
                self.pages_ops().abort(p as usize);
                self.end_op(op);
                self.dirty.push_front(p);
                if self.swap_error(e) {
                    Issued::Blocked
                } else {
                    Issued::Nothing
                }
            }
        }
    }

    /// Swap-in of the written, idle slots from `start` to `end`, plugged: folios of
    /// `pages` pages, or (`None`) of the largest size of the mix that is aligned there and
    /// fits. Returns what happened and how many slots were queued.
    fn read_run(&mut self, start: u64, end: u64, pages: Option<u32>, verify: bool) -> (Issued, u64) {
        let op = self.new_op();
        let engine = self.engine.clone();
        let mut plug = engine.plug();
        let mut slot = start;
        let mut queued = 0u64;
        let mut blocked = false;
        let end = end.min(self.nslots);
        while slot < end {
            let n = pages.unwrap_or_else(|| self.mix.largest_fitting(slot, end - slot));
            let range = slot as usize..(slot + u64::from(n)) as usize;
            if slot + u64::from(n) > end || self.slots[range].iter().any(|r| r.busy || r.committed == 0) {
                break;
            }
            let Some(p) = self.attach(op, slot, n, DIR_READ, verify) else { break };
            self.pages_ops().begin(p as usize, DIR_READ);
            match plug.read(Folio::large(u64::from(p), slot, n)) {
                Ok(()) => {
                    queued += u64::from(n);
                    slot += u64::from(n);
                }
                Err(e) => {
                    self.detach(p);
                    blocked = self.swap_error(e);
                    break;
                }
            }
        }
        drop(plug);
        (self.finish_issue(op, queued, blocked), queued)
    }

    /// A random start of `pages` slots aligned to `pages` (slot 0 is the header) whose
    /// slots all satisfy `ok`, if one is found in a few tries.
    fn pick(&mut self, pages: u32, ok: impl Fn(&SlotRec) -> bool) -> Option<u64> {
        let n = u64::from(pages);
        let starts = self.nslots / n;
        if starts < 2 {
            return None;
        }
        (0..16).map(|_| self.rng.u64(1..starts) * n).find(|&s| self.slots[s as usize..(s + n) as usize].iter().all(&ok))
    }

    /// One op of the mixed workload: a folio size from the mix, then 30 % single-folio
    /// swap-outs, 20 % plugged runs of 8–32 pages out, 30 % single-folio swap-ins, 20 %
    /// plugged runs of 8–32 pages in (a run is at least one folio).
    pub fn issue_one(&mut self) -> Issued {
        let max = self.mix.max() as usize;
        if let Some(&p) = self.dirty.front() {
            if self.rng.u8(..4) == 0 || self.alloc.free_pages() < 64 + 2 * max {
                self.dirty.pop_front();
                return self.rewrite(p);
            }
        }
        if self.alloc.free_pages() < 32 + max {
            return Issued::Blocked;
        }
        let n = self.mix.pick(&mut self.rng);
        let run = (self.rng.u64(8..=32) / u64::from(n)).max(1);
        let roll = self.rng.u32(..100);
        let idle = |r: &SlotRec| !r.busy;
        let written = |r: &SlotRec| !r.busy && r.committed > 0;
        let (count, write) = match roll {
            0..=29 => (1, true),
            30..=49 => (run, true),
            50..=79 => (1, false),
            _ => (run, false),
        };
        let Some(s) = (if write { self.pick(n, idle) } else { self.pick(n, written) }) else { return Issued::Nothing };
        if write {
            self.write_run(s, count, n)
        } else {
            self.read_run(s, s + count * u64::from(n), Some(n), false).0
        }
    }

    /// Handles one finished folio.
    fn complete(&mut self, p: u32) {
        let rec = self.folios[p as usize];
        let pi = p as usize;
        let split = self.crosses_extent(rec.slot, rec.pages);
        let slots = rec.slot as usize..rec.slot as usize + rec.pages as usize;
        match rec.dir {
            DIR_WRITE => {
                if self.pages_ops().failed[pi].load(Ordering::Acquire) {
                    // Redirtied, the whole folio: still only in memory; write it again later.
                    self.counts.write_failures += 1;
                    self.sizes.of(rec.pages).write_failures += 1;
                    self.dirty.push_back(p);
                    self.op_folio_done(rec.op);
                    return;
                }
                self.counts.writes_ok += 1;
                let c = self.sizes.of(rec.pages);
                c.folios_out += 1;
                c.split += u64::from(split);
                for s in &mut self.slots[slots] {
                    s.committed = s.next_gen;
                    s.busy = false;
                }
            }
            DIR_READ => {
                if self.pages_ops().uptodate[pi].load(Ordering::Acquire) {
                    self.counts.reads_ok += 1;
                    let c = self.sizes.of(rec.pages);
                    c.folios_in += 1;
                    c.split += u64::from(split);
                    for i in 0..rec.pages as usize {
                        self.check_page(pi + i, rec.slot + i as u64, rec.verify);
                    }
                } else {
                    self.counts.read_failures += 1;
                    self.sizes.of(rec.pages).read_failures += 1;
                    if rec.verify {
                        self.reread.extend(slots.clone().map(|s| s as u64));
                    }
                }
                for s in &mut self.slots[slots] {
                    s.busy = false;
                }
            }
            _ => {}
        }
        self.pages_ops().dir[pi].store(DIR_NONE, Ordering::Relaxed);
        self.alloc.release(p, rec.pages);
        self.op_folio_done(rec.op);
    }

    /// Checks arena page `page`, read from `slot`, byte for byte against the slot's last
    /// committed write.
    fn check_page(&mut self, page: usize, slot: u64, verify: bool) {
        let gen = self.slots[slot as usize].committed;
        self.arena.copy_out(page, &mut self.buf);
        stamp(slot, gen, &mut self.expect);
        if self.buf != self.expect {
            self.counts.mismatches += 1;
            if verify {
                self.lost += 1;
            }
            if self.mismatch_examples.len() < 8 {
                self.mismatch_examples
                    .push(format!("slot {slot}: expected generation {gen}, found {}", describe(&self.buf)));
            }
        } else if verify {
            self.verified += 1;
        }
    }

    pub fn drain_ready(&mut self) -> usize {
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

    pub fn wait_one(&mut self, timeout: Duration) -> bool {
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
    pub fn stalled(&self) -> bool {
        self.in_flight_ops > 0 && self.last_progress.elapsed() > Duration::from_secs(30)
    }

    /// Waits until nothing is in flight (bounded).
    pub fn drain_all(&mut self) -> bool {
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

    /// Writes every dirty folio until none is left. Bounded whatever the device does: it
    /// stops at a stop signal, at the end-phase deadline, and after 3 rounds in a row in
    /// which no rewrite succeeded (a device failing every write). What is still dirty
    /// then stays in `dirty`, reported as not written back.
    pub fn flush_dirty(&mut self) {
        let mut fruitless = 0;
        while !self.dirty.is_empty() && fruitless < 3 {
            let before = self.counts.writes_ok;
            // One round: every folio dirty now, once; failures come back for the next round.
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

    /// Reads back every slot ever written and checks it (failed reads are retried), in
    /// plugged runs of folios of the mix's sizes where the slots are aligned for them.
    /// Returns how many slots it set out to verify (written, not dirty in memory).
    pub fn final_pass(&mut self, bar: &ProgressBar) -> u64 {
        let mut todo: Vec<u64> = (1..self.nslots)
            .filter(|&s| self.slots[s as usize].committed > 0 && !self.slots[s as usize].busy)
            .collect();
        let total = todo.len() as u64;
        let longest = u64::from(self.mix.max()).max(32);
        bar.set_length(total);
        bar.set_position(0);
        bar.set_message("verifying every written slot");
        for _round in 0..20 {
            let mut i = 0;
            while i < todo.len() {
                if self.ending() || self.stalled() {
                    return total;
                }
                self.drain_ready();
                if self.in_flight_ops >= self.qd || self.alloc.free_pages() < 32 + self.mix.max() as usize {
                    self.wait_one(Duration::from_millis(100));
                    continue;
                }
                // A run of consecutive slots to read in one plug.
                let start = todo[i];
                let mut n = 1;
                while n < longest && i + (n as usize) < todo.len() && todo[i + n as usize] == start + n {
                    n += 1;
                }
                match self.read_run(start, start + n, None, true) {
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
            todo.dedup();
        }
        total
    }
}
