//! The request lifecycle (`swap_writepage` / `swap_read_folio` → plug → `->swap_rw` →
//! `sio_*_complete`) under an arbitrary sequence of submits, plug flushes, inline and
//! queued outcomes (full, short at any byte, errno, overrun), completions in any order,
//! duplicate, bogus and forged completions (a real id with one bit flipped, bit 63
//! included), bitwise copies of the plug used side by side with it (a C struct copy),
//! and sync I/O, checked against a simple model:
//! every accepted folio completes exactly once; a write reported good is on the device
//! and a failed one stays dirty and is rewritten at the end (no dirty page lost); a read
//! marked uptodate returns the last content written; pins balance; every request lies
//! inside one map extent; a folio outside the map is refused untouched.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use swapdio::testkit::{device_map, Action, TestWorld};
use swapdio::*;

const PAGE: usize = PAGE_SIZE;
/// `(pages, first physical page)`: 64 slots in five extents, one of a single page.
const RUNS: [(u64, u64); 5] = [(20, 100), (1, 10), (12, 300), (3, 50), (28, 200)];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum How {
    Full,
    Short(u16),
    Error(u8),
    Overrun,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Write {
        slot: u8,
        size: u8,
        plugged: bool,
    },
    Read {
        slot: u8,
        size: u8,
        plugged: bool,
    },
    WriteSync {
        slot: u8,
        size: u8,
    },
    ReadSync {
        slot: u8,
        size: u8,
    },
    FinishPlug,
    /// How the device answers from now on.
    Device {
        queue: bool,
        how: How,
    },
    Complete {
        pick: u8,
    },
    Duplicate {
        pick: u8,
    },
    Bogus {
        index: u8,
        generation: u64,
    },
    /// A pending request's id with bit `bit % 64` flipped.
    Forged {
        pick: u8,
        bit: u8,
    },
    /// A bitwise copy of the plug (the previous copy is finished first).
    CopyPlug,
    /// Writes or reads through the copy.
    UseCopy {
        slot: u8,
        size: u8,
        write: bool,
    },
    FinishCopy,
    /// The copy and the plug trade places.
    SwapCopy,
}

#[derive(Clone, Debug, PartialEq)]
enum Slot {
    Empty,
    /// Holds content `(folio, page)`: page `.1` of the folio first written with it.
    Durable(u64, u64),
    /// The write of that content failed: it must be rewritten.
    Dirty(u64, u64),
    Busy,
}

fn content(folio: u64, page: u64) -> Vec<u8> {
    (0..PAGE).map(|j| (folio.wrapping_mul(131) ^ page.wrapping_mul(7)).wrapping_add(j as u64) as u8).collect()
}

fn outcome(how: How, len: u64) -> Option<Result<u64, Errno>> {
    match how {
        How::Full => None,
        How::Short(n) => Some(Ok(u64::from(n) * 61 % len)),
        How::Error(e) => Some(Err(
            [Errno::EIO, Errno::ENOSPC, Errno::EAGAIN, Errno::ENOMEM, Errno(0), Errno(-3)][usize::from(e % 6)]
        )),
        How::Overrun => Some(Ok(len + 1)),
    }
}

struct Flight {
    write: bool,
    slot: u64,
    before: Vec<Slot>,
    /// For a write: the content identity `(folio, page)` of each page it carries.
    src: Vec<(u64, u64)>,
}

struct H<'w> {
    w: &'w TestWorld,
    e: &'w testkit::WorldEngine<'w>,
    slots: Vec<Slot>,
    flights: HashMap<u64, Flight>,
    done: Vec<(u64, bool)>,
    pending: Vec<(RequestId, Result<u64, Errno>)>,
    delivered: Vec<RequestId>,
    plug: PlugState<'w>,
    /// A bitwise copy of `plug`, used side by side with it.
    copy: PlugState<'w>,
    next: u64,
    seen: usize,
}

impl H<'_> {
    fn pos(&self, slot: u64) -> u64 {
        self.e.map().lookup(slot).expect("slot in map").pos
    }

    fn collect(&mut self) {
        self.pending.extend(self.w.dev.take_queued());
        let seen = self.w.dev.seen();
        let entries = self.e.map().entries();
        for r in &seen[self.seen..] {
            let inside = entries.iter().any(|m| r.pos >= m.start && r.pos + r.len <= m.start + m.pages * PAGE as u64);
            assert!(inside, "request outside the map: {r:?}");
            assert_eq!(r.segments.iter().map(|s| u64::from(s.len)).sum::<u64>(), r.len);
        }
        self.seen = seen.len();
        let finished: Vec<u64> = self
            .flights
            .iter()
            .filter(|(f, fl)| {
                let s = self.w.pages.state(FolioId(**f));
                if fl.write {
                    s.writeback_ends > 0
                } else {
                    !s.locked
                }
            })
            .map(|(f, _)| *f)
            .collect();
        for f in finished {
            let fl = self.flights.remove(&f).expect("flight");
            let s = self.w.pages.state(FolioId(f));
            let n = fl.before.len() as u64;
            if fl.write {
                assert_eq!(s.writeback_ends, 1, "folio {f}: write completed once");
                for i in 0..n {
                    let sl = fl.slot + i;
                    let (of, op) = fl.src[i as usize];
                    self.slots[sl as usize] = if s.dirty {
                        Slot::Dirty(of, op)
                    } else {
                        let on_dev = self.w.dev.read_bytes(self.pos(sl), PAGE);
                        assert!(on_dev == content(of, op), "slot {sl}: write reported good but not on the device");
                        Slot::Durable(of, op)
                    };
                }
            } else {
                assert_eq!(s.unlocks, 1, "folio {f}: read completed once");
                if s.uptodate {
                    let got = self.w.mem.get(FolioId(f)).expect("folio memory");
                    for (i, b) in fl.before.iter().enumerate() {
                        let Slot::Durable(of, op) = b else { unreachable!("read of a non-durable slot") };
                        assert!(
                            got[i * PAGE..(i + 1) * PAGE] == content(*of, *op)[..],
                            "slot {}: stale read",
                            fl.slot + i as u64
                        );
                    }
                }
                for (i, b) in fl.before.into_iter().enumerate() {
                    self.slots[fl.slot as usize + i] = b;
                }
            }
            self.done.push((f, fl.write));
        }
    }

    fn range(&self, slot: u8, size: u8) -> (u64, u64) {
        (u64::from(slot % 70), [1u64, 1, 2, 4, 3, 8][usize::from(size % 6)])
    }

    fn start(&mut self, write: bool, slot: u64, pages: u64, data: Option<Vec<(u64, u64)>>) -> Option<Folio> {
        let last = slot + pages;
        let in_map = slot >= 1 && last <= self.slots.len() as u64;
        if in_map {
            let ok = (slot..last).all(|s| match &self.slots[s as usize] {
                Slot::Busy => false,
                Slot::Durable(..) => true,
                _ => write,
            });
            if !ok {
                return None;
            }
        }
        self.next += 1;
        let f = self.next;
        let folio = Folio { id: FolioId(f), slot, pages: pages as u32, zero_page: false };
        // A rewrite carries kept content under a new folio.
        let src = data.unwrap_or_else(|| (0..pages).map(|i| (f, i)).collect());
        if write {
            self.w.mem.set(FolioId(f), src.iter().flat_map(|&(of, op)| content(of, op)).collect());
            self.w.pages.prepare_write(FolioId(f));
        } else {
            self.w.mem.set(FolioId(f), vec![0xee; pages as usize * PAGE]);
            self.w.pages.prepare_read(FolioId(f));
        }
        if in_map {
            let before = (slot..last).map(|s| std::mem::replace(&mut self.slots[s as usize], Slot::Busy)).collect();
            self.flights.insert(f, Flight { write, slot, before, src });
        }
        Some(folio)
    }

    /// The engine refused `folio`: it must be untouched, and the slots go back.
    fn refused(&mut self, folio: Folio, err: SwapError) {
        assert!(
            matches!(
                err,
                SwapError::WouldBlock
                    | SwapError::TooFragmented { .. }
                    | SwapError::Map(_)
                    | SwapError::HeaderSlot
                    | SwapError::StalePlug
            ),
            "unexpected refusal {err:?}"
        );
        let s = self.w.pages.state(folio.id);
        assert!(s.locked && !s.writeback && s.pins == 0 && s.unlocks == 0, "refused folio touched: {s:?}");
        if let Some(fl) = self.flights.remove(&folio.id.0) {
            for (i, b) in fl.before.into_iter().enumerate() {
                self.slots[fl.slot as usize + i] = b;
            }
        }
    }

    fn deliver(&mut self, k: usize) {
        if self.pending.is_empty() {
            return;
        }
        let (id, r) = self.pending.swap_remove(k % self.pending.len());
        self.e.complete(id, r).expect("first delivery of a queued completion is accepted");
        self.delivered.push(id);
    }

    fn sync(&mut self, write: bool, folio: Folio) {
        let (e, dev) = (self.e, &self.w.dev);
        let mut got = Vec::new();
        let wait = || {
            for (id, r) in dev.take_queued() {
                e.complete(id, r).expect("sync completion accepted");
                got.push(id);
            }
        };
        let r = if write { e.write_sync(folio, FsContext::MayEnterFs, wait) } else { e.read_sync(folio, wait) };
        self.delivered.extend(got);
        match r {
            Ok(()) | Err(SwapError::Io(_)) => {}
            Err(err) => self.refused(folio, err),
        }
    }

    fn op(&mut self, op: Op, mode: &Mutex<(bool, How)>) {
        match op {
            Op::Write { slot, size, plugged } | Op::Read { slot, size, plugged } => {
                let write = matches!(op, Op::Write { .. });
                let (slot, pages) = self.range(slot, size);
                let Some(folio) = self.start(write, slot, pages, None) else { return };
                let plug = if plugged { Some(&mut self.plug) } else { None };
                let r = if write { self.e.write(plug, folio, FsContext::MayEnterFs) } else { self.e.read(plug, folio) };
                if let Err(err) = r {
                    self.refused(folio, err);
                }
            }
            Op::WriteSync { slot, size } | Op::ReadSync { slot, size } => {
                let write = matches!(op, Op::WriteSync { .. });
                let (slot, pages) = self.range(slot, size);
                self.collect();
                if let Some(folio) = self.start(write, slot, pages, None) {
                    self.sync(write, folio);
                }
            }
            Op::FinishPlug => finish(self.e, &mut self.plug),
            Op::Device { queue, how } => *mode.lock().unwrap() = (queue, how),
            Op::Complete { pick } => {
                self.collect();
                self.deliver(usize::from(pick));
            }
            Op::Duplicate { pick } => {
                if !self.delivered.is_empty() {
                    let id = self.delivered[usize::from(pick) % self.delivered.len()];
                    assert!(self.e.complete(id, Ok(PAGE as u64)).is_err(), "duplicate completion accepted");
                }
            }
            Op::Bogus { index, generation } => {
                self.collect();
                self.forged(generation << 16 | u64::from(index));
            }
            Op::Forged { pick, bit } => {
                self.collect();
                if !self.pending.is_empty() {
                    let (id, _) = self.pending[usize::from(pick) % self.pending.len()];
                    self.forged(id.to_u64() ^ (1 << (bit % 64)));
                }
            }
            Op::CopyPlug => {
                finish(self.e, &mut self.copy);
                // SAFETY: `PlugState` owns no resource (plain integers and a shared borrow of
                // the engine): a bitwise copy is a C struct copy, which the engine must
                // detect once either copy moves on (the old copy, finished above, is empty).
                self.copy = unsafe { std::ptr::read(&self.plug) };
            }
            Op::UseCopy { slot, size, write } => {
                let (slot, pages) = self.range(slot, size);
                let Some(folio) = self.start(write, slot, pages, None) else { return };
                let plug = Some(&mut self.copy);
                let r = if write { self.e.write(plug, folio, FsContext::MayEnterFs) } else { self.e.read(plug, folio) };
                if let Err(err) = r {
                    self.refused(folio, err);
                }
            }
            Op::FinishCopy => finish(self.e, &mut self.copy),
            Op::SwapCopy => std::mem::swap(&mut self.plug, &mut self.copy),
        }
        self.collect();
    }

    /// A raw id that is not a pending request's: refused, bits outside the index and
    /// generation (bit 63) as malformed.
    fn forged(&self, raw: u64) {
        match RequestId::from_u64(raw) {
            Err(MalformedId(v)) => assert!(v == raw && raw >> 63 == 1, "well-formed id {raw:#x} refused"),
            Ok(id) => {
                assert!(raw >> 63 == 0, "id {raw:#x} with bit 63 accepted");
                if !self.pending.iter().any(|(p, _)| *p == id) {
                    assert!(self.e.complete(id, Ok(PAGE as u64)).is_err(), "forged completion {id:?} accepted");
                }
            }
        }
    }

    /// Flush, deliver everything, rewrite every failed page until it sticks, then check
    /// that every written slot is durable with its latest content.
    fn drain(&mut self, mode: &Mutex<(bool, How)>) {
        *mode.lock().unwrap() = (false, How::Full);
        for _ in 0..200 {
            finish(self.e, &mut self.plug);
            finish(self.e, &mut self.copy);
            self.collect();
            while !self.pending.is_empty() {
                self.deliver(0);
                self.collect();
            }
            let Some(s) = self.slots.iter().position(|x| matches!(x, Slot::Dirty(..))) else { break };
            let Slot::Dirty(of, op) = self.slots[s] else { unreachable!() };
            if let Some(folio) = self.start(true, s as u64, 1, Some(vec![(of, op)])) {
                self.e.write(None, folio, FsContext::MayEnterFs).expect("rewrite of a dirty page");
                self.collect();
            }
        }
        assert!(self.flights.is_empty(), "folios never completed: {}", self.flights.len());
        for (s, slot) in self.slots.iter().enumerate() {
            match slot {
                Slot::Empty => {}
                Slot::Durable(of, op) => {
                    assert_eq!(self.w.dev.read_bytes(self.pos(s as u64), PAGE), content(*of, *op), "slot {s}: lost")
                }
                other => panic!("slot {s} unsettled: {other:?}"),
            }
        }
        for &(f, write) in &self.done {
            let s = self.w.pages.state(FolioId(f));
            assert!(if write { s.writeback_ends == 1 } else { s.unlocks == 1 }, "folio {f} completed once: {s:?}");
        }
        assert_eq!(self.w.pages.violations(), Vec::<String>::new());
        assert_eq!(self.w.pages.pins_held(), 0, "pins balanced");
        assert_eq!(self.e.in_flight(), 0, "every request released");
        let st = self.e.stats();
        assert_eq!(st.requests_submitted, st.requests_completed);
    }
}

/// Finishes a plug or a copy of it: the copy that fell behind is refused as stale (and
/// emptied), never submitted.
fn finish<'e>(e: &'e testkit::WorldEngine<'_>, plug: &mut PlugState<'e>) {
    match e.finish_plug(plug) {
        Ok(()) | Err(SwapError::StalePlug) => assert_eq!(plug.held_folios(), 0, "finished plug still holds"),
        Err(err) => panic!("finish_plug: {err:?}"),
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let w = TestWorld::new(BackendCaps::BLOCK_DEVICE, 320 * PAGE);
    let mode = Arc::new(Mutex::new((false, How::Full)));
    let m = mode.clone();
    w.dev.set_script(Arc::new(move |req: &Request<'_>| {
        let (queue, how) = *m.lock().unwrap();
        let r = outcome(how, req.len());
        if queue {
            Action::Queue(r)
        } else {
            Action::Inline(r)
        }
    }));
    let map = device_map(&RUNS).expect("map");
    let e = w.engine(map, StorageConfig { pool: 3, sync: 3, splits: 2 }).expect("engine");
    let mut h = H {
        w: &w,
        e: &e,
        slots: vec![Slot::Empty; 64],
        flights: HashMap::new(),
        done: Vec::new(),
        pending: Vec::new(),
        delivered: Vec::new(),
        plug: PlugState::new(),
        copy: PlugState::new(),
        next: 0,
        seen: 0,
    };
    for op in ops.into_iter().take(400) {
        h.op(op, &mode);
    }
    h.drain(&mode);
    e.deactivate().expect("quiescent");
});
