//! One full submit → complete cycle per page through the engine, with a null backend
//! (answers at once, copies no data) and no-op page operations (no atomics, empty
//! methods), so what is timed is the engine's own work: checks, map lookup, pool
//! claim, plugging, request build, completion, page actions, release.
//!
//! Cases (criterion reports time per page, `Throughput::Elements`):
//! * `write_unplugged` / `read_unplugged`: small folios, no plug — one request each
//!   (`swap_writepage` without a plug).
//! * `write_plugged32` / `read_plugged32`: 32 adjacent small folios in one plug — one
//!   request of 32 segments (`swap_write_unplug` after a full batch).
//! * `write_queued`: the backend answers `Queued` and the bench calls
//!   `Engine::complete` right after submit (the `-EIOCBQUEUED` path).
//! * `write_sync`: `Engine::write_sync` (`WB_SYNC_ALL`) with an inline answer.
//!
//! Run: `cargo bench --bench engine_cycle -- --warm-up-time 1 --measurement-time 3`

use std::cell::Cell;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use swapdio::{
    Backend, BackendCaps, Engine, Folio, FolioId, FsContext, IoMode, MapEntry, OwnedStorage, PageOps, Request,
    RequestId, StorageConfig, Submit, SwapEvent, SwapMap,
};

/// Pages per timed iteration (a multiple of 32).
const PAGES: u64 = 256;
/// Slots in the single-extent map used by the cycle (slot 0 is the header).
const SLOTS: u64 = 1 << 16;

/// A backend that moves nothing: `Done(Ok(len))`, or `Queued` with the id kept for the
/// bench to complete.
struct NullBackend {
    queue: bool,
    last: Cell<Option<(RequestId, u64)>>,
}

impl Backend for NullBackend {
    fn caps(&self) -> BackendCaps {
        BackendCaps::BLOCK_DEVICE
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        if self.queue {
            self.last.set(Some((req.id(), req.len())));
            Submit::Queued
        } else {
            Submit::Done(Ok(req.len()))
        }
    }
}

/// Page operations that do nothing.
struct NoPages;

impl PageOps for NoPages {
    fn set_uptodate(&self, _: FolioId) {}
    fn set_dirty(&self, _: FolioId) {}
    fn clear_reclaim(&self, _: FolioId) {}
    fn start_writeback(&self, _: FolioId) {}
    fn end_writeback(&self, _: FolioId) {}
    fn unlock(&self, _: FolioId) {}
    fn pin(&self, _: FolioId) {}
    fn unpin(&self, _: FolioId) {}
    fn event(&self, _: SwapEvent) {}
}

type BenchEngine = Engine<Vec<MapEntry>, OwnedStorage, NullBackend, NoPages>;

fn engine(queue: bool) -> BenchEngine {
    let map = SwapMap::new(vec![MapEntry { first_slot: 0, pages: SLOTS, start: 1 << 20 }], IoMode::Device)
        .expect("one dense extent");
    let backend = NullBackend { queue, last: Cell::new(None) };
    Engine::new(map, OwnedStorage::new(StorageConfig::default()).expect("storage"), backend, NoPages).expect("engine")
}

/// The slot of page `i` of iteration starting at `base` (never the header slot 0).
fn slot(base: u64, i: u64) -> u64 {
    1 + (base + i) % (SLOTS - PAGES)
}

fn bench_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_cycle");
    group.throughput(Throughput::Elements(PAGES));
    let fs = FsContext::MayEnterFs;

    let e = engine(false);
    let mut base = 0u64;
    group.bench_function("write_unplugged", |b| {
        b.iter(|| {
            for i in 0..PAGES {
                let s = slot(base, i);
                black_box(e.write(None, Folio::small(s, s), fs)).expect("write");
            }
            base += PAGES;
        })
    });
    group.bench_function("read_unplugged", |b| {
        b.iter(|| {
            for i in 0..PAGES {
                let s = slot(base, i);
                black_box(e.read(None, Folio::small(s, s))).expect("read");
            }
            base += PAGES;
        })
    });
    group.bench_function("write_plugged32", |b| {
        b.iter(|| {
            for batch in 0..PAGES / 32 {
                let mut plug = e.plug();
                for i in 0..32 {
                    let s = slot(base, batch * 32 + i);
                    black_box(plug.write(Folio::small(s, s), fs)).expect("write");
                }
            }
            base += PAGES;
        })
    });
    group.bench_function("read_plugged32", |b| {
        b.iter(|| {
            for batch in 0..PAGES / 32 {
                let mut plug = e.plug();
                for i in 0..32 {
                    let s = slot(base, batch * 32 + i);
                    black_box(plug.read(Folio::small(s, s))).expect("read");
                }
            }
            base += PAGES;
        })
    });
    group.bench_function("write_sync", |b| {
        b.iter(|| {
            for i in 0..PAGES {
                let s = slot(base, i);
                black_box(e.write_sync(Folio::small(s, s), fs, || {})).expect("write_sync");
            }
            base += PAGES;
        })
    });
    assert_eq!(e.in_flight(), 0, "every request released");
    let st = e.stats();
    assert_eq!(st.requests_submitted, st.requests_completed);

    let q = engine(true);
    group.bench_function("write_queued", |b| {
        b.iter(|| {
            for i in 0..PAGES {
                let s = slot(base, i);
                q.write(None, Folio::small(s, s), fs).expect("write");
                let (id, len) = q.backend().last.take().expect("queued");
                black_box(q.complete(id, Ok(len))).expect("complete");
            }
            base += PAGES;
        })
    });
    assert_eq!(q.in_flight(), 0, "every request released");
    group.finish();
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
