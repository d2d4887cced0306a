//! `SwapMap::lookup` (flat sorted array + last-hit cursor) against a `BTreeMap` range
//! lookup over the same extents — the kernel keeps swap extents in an rbtree
//! (`offset_to_swap_extent`), the closest std structure is a B-tree.
//!
//! Maps of 1, 1 000 and 1 000 000 extents of 1..=32 pages each (a fragmented swap
//! file), random and sequential slots. The slot sequences are precomputed outside the
//! timed loop (xorshift64 for random); each iteration looks up one chunk of
//! `CHUNK` slots and criterion reports the time per lookup (`Throughput::Elements`).
//! Successive iterations walk a 1 Mi-slot sequence so the random set does not settle
//! in cache.
//!
//! Run: `cargo bench --bench map_lookup -- --warm-up-time 1 --measurement-time 3`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swapdio::{IoMode, MapEntry, MapError, Run, SwapMap, PAGE_SIZE};

/// Lookups per timed iteration.
const CHUNK: usize = 1024;
/// Length of each precomputed slot sequence.
const SEQ_LEN: usize = 1 << 20;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// `n` dense extents from slot 0, 1..=32 pages each, at scattered page-aligned positions.
fn extents(n: usize, rng: &mut XorShift) -> Vec<MapEntry> {
    let mut next = 0u64;
    (0..n)
        .map(|_| {
            let pages = 1 + rng.next() % 32;
            let start = (rng.next() % (1 << 28)) * PAGE_SIZE as u64;
            let e = MapEntry { first_slot: next, pages, start };
            next += pages;
            e
        })
        .collect()
}

/// The reference structure: extents keyed by first slot, found with a range lookup.
fn btree_lookup(tree: &BTreeMap<u64, MapEntry>, slots: u64, slot: u64) -> Result<Run, MapError> {
    match tree.range(..=slot).next_back() {
        Some((_, e)) if slot - e.first_slot < e.pages => {
            let off = slot - e.first_slot;
            Ok(Run { pos: e.start + off * PAGE_SIZE as u64, pages: e.pages - off })
        }
        _ => Err(MapError::SlotOutOfRange { slot, slots }),
    }
}

fn sum(r: Result<Run, MapError>) -> u64 {
    match r {
        Ok(run) => run.pos ^ run.pages,
        Err(_) => 1,
    }
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("map_lookup");
    group.throughput(Throughput::Elements(CHUNK as u64));
    for (label, n) in [("1", 1usize), ("1k", 1_000), ("1M", 1_000_000)] {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let entries = extents(n, &mut rng);
        let tree: BTreeMap<u64, MapEntry> = entries.iter().map(|e| (e.first_slot, *e)).collect();
        let map = SwapMap::new(entries, IoMode::Device).expect("dense extents");
        let slots = map.slots();
        let random: Vec<u64> = (0..SEQ_LEN).map(|_| rng.next() % slots).collect();
        let start = rng.next() % slots;
        let sequential: Vec<u64> = (0..SEQ_LEN as u64).map(|i| (start + i) % slots).collect();
        // Both structures must answer the same before their speed is compared.
        for &slot in random.iter().take(10_000).chain([slots, u64::MAX].iter()) {
            assert_eq!(map.lookup(slot), btree_lookup(&tree, slots, slot), "slot {slot}");
        }
        for (order, seq) in [("random", &random), ("sequential", &sequential)] {
            let mut at = 0usize;
            group.bench_function(BenchmarkId::new(format!("swapmap/{order}"), label), |b| {
                b.iter(|| {
                    let chunk = &seq[at..at + CHUNK];
                    at = (at + CHUNK) % SEQ_LEN;
                    let mut acc = 0u64;
                    for &slot in chunk {
                        acc ^= sum(map.lookup(black_box(slot)));
                    }
                    black_box(acc)
                })
            });
            let mut at = 0usize;
            group.bench_function(BenchmarkId::new(format!("btreemap/{order}"), label), |b| {
                b.iter(|| {
                    let chunk = &seq[at..at + CHUNK];
                    at = (at + CHUNK) % SEQ_LEN;
                    let mut acc = 0u64;
                    for &slot in chunk {
                        acc ^= sum(btree_lookup(&tree, slots, black_box(slot)));
                    }
                    black_box(acc)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
