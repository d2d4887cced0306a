//! Long seeded runs of random swap-outs, swap-ins and rewrites over an in-memory device
//! behind [`FaultyBackend`]: `EIO`, `ENOSPC`, `EAGAIN`, `ENOMEM`, `EINTR`, torn transfers
//! at any byte, and delayed, reordered completions — plus duplicate deliveries of old
//! completions, which the engine must refuse.
//!
//! The invariant is the swap contract of `mm/page_io.c`: a write the engine reports as
//! done (writeback ended, folio clean) is on the device; a failed write leaves the folio
//! dirty so the data survives in memory and is written again later (here: rewritten
//! until it sticks); a read marked uptodate holds exactly the last content written to
//! those slots. At the end of every run: every page ever written is durable with its
//! latest content, reads of every page return it, 0 mismatches, pins balanced, no page
//! rule broken, every request released.
//!
//! Scale with `SWAPDIO_FAULT_SEEDS` (runs) and `SWAPDIO_FAULT_OPS` (operations per run).

use std::collections::HashMap;
use swapdio::fault::{FaultConfig, FaultKinds};
use swapdio::fault_backend::{DelayConfig, FaultStats, FaultyBackend, TransferLimit};
use swapdio::testkit::{FolioMemory, MemDevice, MemPages};
use swapdio::*;

const PAGE: usize = PAGE_SIZE;

/// xorshift64*: the test's own seeded choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the test knows about one swap slot.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// Never written.
    Empty,
    /// The device holds this page (the last write of the slot succeeded).
    Durable(Vec<u8>),
    /// The last write failed: the folio was redirtied; its content must be rewritten.
    Dirty(Vec<u8>),
    /// A write or read of the slot is in flight.
    Busy,
}

#[derive(Debug)]
enum Op {
    Write { slot: u64, data: Vec<u8>, before: Vec<Slot> },
    Read { slot: u64, expect: Vec<Vec<u8>>, before: Vec<Slot> },
}

type Dev<'a> = FaultyBackend<&'a MemDevice>;
type Eng<'a> = Engine<Vec<MapEntry>, OwnedStorage, &'a Dev<'a>, &'a MemPages>;

struct Run<'a> {
    rng: Rng,
    engine: &'a Eng<'a>,
    dev: &'a Dev<'a>,
    mem: FolioMemory,
    pages: &'a MemPages,
    slots: Vec<Slot>,
    inflight: HashMap<FolioId, Op>,
    plug: PlugState<'a>,
    next_folio: u64,
    delivered: Vec<RequestId>,
    mismatches: Vec<String>,
    counts: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    writes_ok: u64,
    writes_failed: u64,
    reads_ok: u64,
    reads_failed: u64,
    would_block: u64,
    duplicates_refused: u64,
    rewrites: u64,
}

fn header(pages: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    SwapHeader::new(pages, [7; 16], [0; 16]).expect("header").write(&mut p).expect("header write");
    p
}

/// A 200-page swap file in five extents scattered over a 4 MiB device (one of a single
/// page), so large folios are split across requests.
fn activate_map() -> SwapMap<Vec<MapEntry>> {
    let hdr = header(200);
    let mut ext = Vec::new();
    let mut logical = 0u64;
    for (pages, physical) in [(50u64, 3u64 << 20), (1, 1 << 20), (60, 2 << 20), (9, (1 << 20) + (64 << 12)), (80, 0)] {
        ext.push(ExtentReport {
            logical,
            physical,
            length: pages * PAGE as u64,
            flags: ExtentFlags::empty(),
            device: 1,
        });
        logical += pages * PAGE as u64;
    }
    let req = ActivationRequest::new(&hdr, 200 * PAGE as u64, Layout::Extents(&ext), 1, BackendCaps::BLOCK_DEVICE);
    let (map, report) = activate_owned(&req).expect("activation");
    assert_eq!(report.usable_pages, 199);
    map
}

fn content(rng: &mut Rng, pages: usize) -> Vec<u8> {
    let tag = rng.next();
    (0..pages * PAGE).map(|i| (tag.rotate_left((i % 61) as u32) as u8) ^ (i / PAGE) as u8).collect()
}

impl Run<'_> {
    fn complete(&mut self, id: RequestId, r: Result<u64, Errno>) {
        self.engine.complete(id, r).expect("a held-back completion is delivered once and accepted");
        self.delivered.push(id);
    }

    /// Delivers up to `n` held-back completions, sometimes re-delivering an old one
    /// (which the engine must refuse).
    fn pump(&mut self, n: usize) {
        let mut got = Vec::new();
        self.dev.pump(n, |id, r| got.push((id, r)));
        for (id, r) in got {
            self.complete(id, r);
        }
        if !self.delivered.is_empty() && self.rng.below(16) == 0 {
            let old = self.delivered[self.rng.below(self.delivered.len() as u64) as usize];
            assert!(self.engine.complete(old, Ok(PAGE as u64)).is_err(), "duplicate completion of {old:?} accepted");
            self.counts.duplicates_refused += 1;
        }
        self.reap();
    }

    fn pos(&self, slot: u64) -> u64 {
        self.engine.map().lookup(slot).expect("slot in map").pos
    }

    /// Checks every folio whose I/O has finished against the model.
    fn reap(&mut self) {
        let done: Vec<FolioId> = self
            .inflight
            .iter()
            .filter(|(f, op)| {
                let s = self.pages.state(**f);
                match op {
                    Op::Write { .. } => s.writeback_ends > 0,
                    Op::Read { .. } => !s.locked,
                }
            })
            .map(|(f, _)| *f)
            .collect();
        for f in done {
            let op = self.inflight.remove(&f).expect("in flight");
            let s = self.pages.state(f);
            match op {
                Op::Write { slot, data, .. } => {
                    assert_eq!(s.writeback_ends, 1, "folio {f:?}: writeback ended once");
                    let n = data.len() / PAGE;
                    for (i, page) in data.chunks(PAGE).enumerate() {
                        let sl = slot + i as u64;
                        self.slots[sl as usize] = if s.dirty {
                            Slot::Dirty(page.to_vec())
                        } else {
                            let on_dev = self.dev.inner().read_bytes(self.pos(sl), PAGE);
                            if on_dev != page {
                                self.mismatches.push(format!("slot {sl}: write reported done, device differs"));
                            }
                            Slot::Durable(page.to_vec())
                        };
                    }
                    if s.dirty {
                        self.counts.writes_failed += 1;
                    } else {
                        self.counts.writes_ok += 1;
                    }
                    assert!(n > 0);
                }
                Op::Read { slot, expect, before } => {
                    if s.uptodate {
                        let got = self.mem.get(f).expect("folio memory");
                        for (i, page) in got.chunks(PAGE).enumerate() {
                            if page != expect[i] {
                                self.mismatches
                                    .push(format!("slot {}: uptodate read returned stale data", slot + i as u64));
                            }
                        }
                        self.counts.reads_ok += 1;
                    } else {
                        self.counts.reads_failed += 1;
                    }
                    for (i, b) in before.into_iter().enumerate() {
                        self.slots[slot as usize + i] = b;
                    }
                }
            }
        }
    }

    /// A folio of 1, 2, 4 or 8 pages over slots none of which is busy.
    fn pick(&mut self, pages: u64, want: impl Fn(&Slot) -> bool) -> Option<u64> {
        let last = self.slots.len() as u64 - pages;
        for _ in 0..8 {
            let s = 1 + self.rng.below(last);
            if (s..s + pages).all(|x| want(&self.slots[x as usize])) {
                return Some(s);
            }
        }
        None
    }

    fn folio_pages(&mut self) -> u64 {
        [1, 1, 1, 1, 2, 4, 8][self.rng.below(7) as usize]
    }

    fn fresh_folio(&mut self) -> FolioId {
        self.next_folio += 1;
        FolioId(self.next_folio)
    }

    /// Writes `data` to slots from `slot`; `plugged` uses the run's plug, `sync` the
    /// synchronous path.
    fn write(&mut self, slot: u64, data: Vec<u8>, mode: u64) {
        let pages = (data.len() / PAGE) as u32;
        let f = self.fresh_folio();
        self.mem.set(f, data.clone());
        self.pages.prepare_write(f);
        let folio = Folio { id: f, slot, pages, zero_page: false };
        let before: Vec<Slot> = (slot..slot + u64::from(pages)).map(|s| self.slots[s as usize].clone()).collect();
        for s in slot..slot + u64::from(pages) {
            self.slots[s as usize] = Slot::Busy;
        }
        self.inflight.insert(f, Op::Write { slot, data, before });
        let r = match mode {
            0 => {
                let (engine, dev) = (self.engine, self.dev);
                let mut held = Vec::new();
                let r = engine.write_sync(folio, FsContext::MayEnterFs, || {
                    dev.pump(1, |id, r| held.push((id, engine.complete(id, r))));
                });
                self.settle_sync(r, held)
            }
            1 => self.engine.write(Some(&mut self.plug), folio, FsContext::MayEnterFs),
            _ => self.engine.write(None, folio, FsContext::MayEnterFs),
        };
        match r {
            Ok(()) => {}
            Err(SwapError::WouldBlock) => {
                // The folio is untouched: still locked and dirty, nothing handed over.
                let st = self.pages.state(f);
                assert!(st.locked && st.dirty && !st.writeback && st.pins == 0, "WouldBlock touched the folio: {st:?}");
                let Some(Op::Write { before, .. }) = self.inflight.remove(&f) else { unreachable!() };
                for (i, b) in before.into_iter().enumerate() {
                    self.slots[slot as usize + i] = b;
                }
                self.counts.would_block += 1;
                self.pump(4);
            }
            Err(e) => panic!("write of {folio:?} refused: {e}"),
        }
        self.reap();
    }

    /// After a synchronous call: each completion its wait delivered was accepted once; a
    /// failed sync I/O was handled like an async one (redirtied or failed), so the reap
    /// sees it and the call's `Io` error is not the test's.
    fn settle_sync<E: std::fmt::Debug>(
        &mut self,
        r: Result<(), SwapError>,
        held: Vec<(RequestId, Result<(), E>)>,
    ) -> Result<(), SwapError> {
        for (id, ok) in held {
            ok.expect("sync wait delivers each completion once");
            self.delivered.push(id);
        }
        match r {
            Err(SwapError::Io(_)) => Ok(()),
            r => r,
        }
    }

    fn read(&mut self, slot: u64, pages: u64, mode: u64) {
        let f = self.fresh_folio();
        self.mem.set(f, vec![0xee; pages as usize * PAGE]);
        self.pages.prepare_read(f);
        let folio = Folio { id: f, slot, pages: pages as u32, zero_page: false };
        let before: Vec<Slot> = (slot..slot + pages).map(|s| self.slots[s as usize].clone()).collect();
        let expect = before
            .iter()
            .map(|b| match b {
                Slot::Durable(d) => d.clone(),
                other => panic!("reading a slot that is not durable: {other:?}"),
            })
            .collect();
        for s in slot..slot + pages {
            self.slots[s as usize] = Slot::Busy;
        }
        self.inflight.insert(f, Op::Read { slot, expect, before });
        let r = match mode {
            0 => {
                let (engine, dev) = (self.engine, self.dev);
                let mut held = Vec::new();
                let r = engine.read_sync(folio, || {
                    dev.pump(1, |id, r| held.push((id, engine.complete(id, r))));
                });
                self.settle_sync(r, held)
            }
            1 => self.engine.read(Some(&mut self.plug), folio),
            _ => self.engine.read(None, folio),
        };
        match r {
            Ok(()) => {}
            Err(SwapError::WouldBlock) => {
                assert!(self.pages.state(f).locked, "WouldBlock touched the folio");
                let Some(Op::Read { before, .. }) = self.inflight.remove(&f) else { unreachable!() };
                for (i, b) in before.into_iter().enumerate() {
                    self.slots[slot as usize + i] = b;
                }
                self.counts.would_block += 1;
                self.pump(4);
            }
            Err(e) => panic!("read of {folio:?} refused: {e}"),
        }
        self.reap();
    }

    fn step(&mut self) {
        match self.rng.below(20) {
            0..=8 => {
                let n = self.folio_pages();
                if let Some(s) = self.pick(n, |x| !matches!(x, Slot::Busy)) {
                    let data = content(&mut self.rng, n as usize);
                    let mode = self.rng.below(8);
                    self.write(s, data, mode);
                }
            }
            9..=13 => {
                let n = self.folio_pages();
                if let Some(s) = self.pick(n, |x| matches!(x, Slot::Durable(_))) {
                    let mode = self.rng.below(8);
                    self.read(s, n, mode);
                }
            }
            14..=15 => {
                self.rewrite_one_dirty();
            }
            16 => {
                self.engine.finish_plug(&mut self.plug).expect("own plug");
                self.reap();
            }
            _ => {
                let n = self.rng.below(6) as usize;
                self.pump(n);
            }
        }
    }

    /// Writes the kept content of a slot whose last write failed ("rewritten later").
    fn rewrite_one_dirty(&mut self) -> bool {
        let Some(s) = self.slots.iter().position(|x| matches!(x, Slot::Dirty(_))) else { return false };
        let Slot::Dirty(data) = self.slots[s].clone() else { unreachable!() };
        self.counts.rewrites += 1;
        let mode = 1 + self.rng.below(2); // plugged (flushed later) or unplugged
        self.write(s as u64, data, mode);
        true
    }

    /// Flushes, delivers everything, and rewrites failed pages until every page is durable.
    fn drain(&mut self) {
        for round in 0..10_000 {
            self.engine.finish_plug(&mut self.plug).expect("own plug");
            self.pump(usize::MAX);
            if self.inflight.is_empty() && !self.slots.iter().any(|s| matches!(s, Slot::Dirty(_))) {
                return;
            }
            assert!(round < 9_999, "pages still dirty after 10,000 rewrite rounds");
            self.rewrite_one_dirty();
        }
    }

    /// Reads every written slot back through the engine (retrying failed reads) and
    /// compares with the device and the model.
    fn verify_all(&mut self) {
        for s in 1..self.slots.len() as u64 {
            match self.slots[s as usize].clone() {
                Slot::Empty => continue,
                Slot::Durable(d) => {
                    if self.dev.inner().read_bytes(self.pos(s), PAGE) != d {
                        self.mismatches.push(format!("slot {s}: device lost the latest content"));
                    }
                    let before = self.counts.reads_ok;
                    for _ in 0..1000 {
                        self.read(s, 1, 2);
                        self.drain();
                        if self.counts.reads_ok > before {
                            break;
                        }
                    }
                    assert!(self.counts.reads_ok > before, "slot {s}: no read succeeded in 1000 tries");
                }
                other => panic!("slot {s} not settled after drain: {other:?}"),
            }
        }
    }
}

/// One seeded run; returns the fault statistics and the test's own counts.
fn run(seed: u64, ops: usize) -> (FaultStats, Counts) {
    let mem = FolioMemory::new();
    let limit = TransferLimit::new();
    let device = MemDevice::new(BackendCaps::BLOCK_DEVICE, 4 << 20, mem.clone());
    device.set_script(limit.mem_device_script());
    let faults = FaultConfig { rate_ppm: 150_000, seed, kinds: FaultKinds::all() };
    let delay = DelayConfig { delay_ppm: 400_000, seed: seed ^ 0xd1ce };
    let dev: &Dev<'_> = &FaultyBackend::new(&device, faults, delay).with_transfer_limit(limit);
    let pages = &MemPages::new();
    // Three sync slots: a folio over the one-page extent needs three requests.
    let storage = OwnedStorage::new(StorageConfig { pool: 6, sync: 3, splits: 3 }).unwrap();
    let engine = &Engine::new(activate_map(), storage, dev, pages).expect("engine");
    let slots = engine.map().slots() as usize;
    let mut r = Run {
        rng: Rng::new(seed),
        engine,
        dev,
        mem,
        pages,
        slots: vec![Slot::Empty; slots],
        inflight: HashMap::new(),
        plug: PlugState::new(),
        next_folio: 0,
        delivered: Vec::new(),
        mismatches: Vec::new(),
        counts: Counts::default(),
    };
    for _ in 0..ops {
        r.step();
    }
    r.drain();
    r.verify_all();
    let n = r.mismatches.len();
    assert_eq!(n, 0, "seed {seed}: {n} data mismatches, first: {:?}", &r.mismatches[..n.min(10)]);
    assert_eq!(pages.violations(), Vec::<String>::new(), "seed {seed}: page rules broken");
    assert_eq!(pages.pins_held(), 0, "seed {seed}: pins balanced");
    assert_eq!(engine.in_flight(), 0, "seed {seed}: every request released");
    assert_eq!(dev.pending(), 0);
    let st = engine.stats();
    assert_eq!(st.requests_submitted, st.requests_completed, "seed {seed}: {st:?}");
    engine.deactivate().expect("quiescent engine deactivates");
    (dev.stats(), r.counts)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Every fault kind, torn transfers, delayed and reordered completions, duplicate
/// deliveries: no page ever written is lost, reads return the last content, 0 mismatches.
#[test]
fn fault_injection_no_written_page_lost_and_reads_return_latest_content() {
    let seeds = env("SWAPDIO_FAULT_SEEDS", 24);
    let ops = env("SWAPDIO_FAULT_OPS", 3000) as usize;
    let mut total = FaultStats::default();
    let mut counts = Counts::default();
    for seed in 0..seeds {
        let (f, c) = run(seed, ops);
        total.requests += f.requests;
        total.eio += f.eio;
        total.enospc += f.enospc;
        total.eagain += f.eagain;
        total.enomem += f.enomem;
        total.other_errors += f.other_errors;
        total.short += f.short;
        total.delayed += f.delayed;
        total.delivered += f.delivered;
        counts.writes_ok += c.writes_ok;
        counts.writes_failed += c.writes_failed;
        counts.reads_ok += c.reads_ok;
        counts.reads_failed += c.reads_failed;
        counts.would_block += c.would_block;
        counts.duplicates_refused += c.duplicates_refused;
        counts.rewrites += c.rewrites;
    }
    eprintln!("fault injection: {seeds} seeds x {ops} ops: {total:?} {counts:?}; 0 mismatches");
    // The run must actually have exercised every fault and the recovery paths.
    assert!(total.eio > 0 && total.enospc > 0 && total.eagain > 0 && total.enomem > 0 && total.short > 0);
    assert_eq!(total.delivered, total.delayed, "every held-back completion was delivered");
    assert!(total.delayed > 0 && counts.writes_failed > 0 && counts.reads_failed > 0 && counts.rewrites > 0);
    assert!(counts.would_block > 0 && counts.duplicates_refused > 0);
}

/// The same seed gives the same run: fault injection is reproducible.
#[test]
fn fault_injection_is_deterministic_per_seed() {
    let (a, ca) = run(99, 400);
    let (b, cb) = run(99, 400);
    assert_eq!(a, b);
    assert_eq!(format!("{ca:?}"), format!("{cb:?}"));
}
