//! The swap I/O state machine's context and slot checks, deactivation, every rule at
//! once under random faults (proptest) and concurrent submitters (docs/swap-rules.md
//! §4-§5; completion rules in `engine_completion.rs`, request rules in
//! `engine_plug.rs`), driven by the testkit's scripted `MemDevice` and rule-checking
//! `MemPages`.

#[allow(dead_code, unused_imports)]
mod engine_common;

use engine_common::*;

// ---- context and slot checks ----------------------------------------------------------------

#[test]
fn file_mode_write_from_nofs_context_is_refused_untouched() {
    let w = TestWorld::new(FS_FILE, 64 * PAGE_SIZE);
    let e = w.engine(file_map(64).unwrap(), StorageConfig::default()).unwrap();
    assert!(e.writes_enter_fs());
    let f = Folio::small(1, 3);
    w.prepare_write(f, 1);
    assert_eq!(e.write(None, f, FsContext::NoFs), Err(SwapError::NeedsFsContext));
    assert_eq!(e.write_sync(f, FsContext::NoFs, || {}), Err(SwapError::NeedsFsContext));
    assert_eq!(write_state(&w, f.id), UNTOUCHED_WRITE);
    assert!(w.dev.seen().is_empty());
    // From a context that may enter the fs it goes out, addressed by file position.
    e.write(None, f, MAY).unwrap();
    let r = Folio::small(2, 3);
    w.prepare_read(r);
    e.read(None, r).unwrap();
    let seen = w.dev.seen();
    assert_eq!(seen.iter().map(|r| (r.pos, r.len)).collect::<Vec<_>>(), vec![(3 * P, P), (3 * P, P)]);
    assert_eq!(w.mem.get(r.id), w.mem.get(f.id));
    assert_clean(&w);
}

#[test]
fn device_mode_nofs_writes_are_refused_only_when_the_backend_requires_it() {
    let w = world();
    let e = w.engine(linear(8), StorageConfig::default()).unwrap();
    assert!(!e.writes_enter_fs());
    let f = Folio::small(1, 1);
    w.prepare_write(f, 1);
    e.write(None, f, FsContext::NoFs).unwrap();
    assert_eq!(write_state(&w, f.id), WROTE);
    let w2 = TestWorld::new(BackendCaps::BLOCK_DEVICE | BackendCaps::REQUIRES_NOFS, 256 * PAGE_SIZE);
    let e2 = w2.engine(linear(8), StorageConfig::default()).unwrap();
    w2.prepare_write(f, 1);
    assert_eq!(e2.write(None, f, FsContext::NoFs), Err(SwapError::NeedsFsContext));
    assert_eq!(write_state(&w2, f.id), UNTOUCHED_WRITE);
    assert_clean(&w);
    assert_clean(&w2);
}

#[test]
fn slot_zero_and_slots_outside_the_map_are_errors_with_no_io() {
    let w = world();
    let e = w.engine(linear(16), StorageConfig::default()).unwrap();
    let out = |slot| SwapError::Map(MapError::SlotOutOfRange { slot, slots: 16 });
    let cases = [
        (Folio::small(1, 0), SwapError::HeaderSlot),
        (Folio::small(2, 16), out(16)),
        (Folio::small(3, u64::MAX), out(u64::MAX)),
        (Folio::large(4, 14, 4), out(17)),
        (Folio::large(5, u64::MAX - 1, 4), out(u64::MAX)),
    ];
    for (f, want) in cases {
        w.prepare_write(f, 1);
        let mut plug = PlugState::new();
        assert_eq!(e.write(Some(&mut plug), f, MAY), Err(want), "{f:?}");
        assert_eq!(e.write_sync(f, MAY, || {}), Err(want));
        assert_eq!(write_state(&w, f.id), UNTOUCHED_WRITE);
        let r = Folio { id: FolioId(f.id.0 + 100), ..f };
        w.prepare_read(r);
        assert_eq!(e.read(None, r), Err(want));
        assert_eq!(e.read_sync(r, || {}), Err(want));
        assert_eq!(read_state(&w, r.id), UNTOUCHED_READ);
        assert_eq!(want.errno(), Errno::EINVAL);
    }
    for pages in [0, MAX_FOLIO_PAGES + 1] {
        let f = Folio::large(9, 1, pages);
        assert!(matches!(e.write(None, f, MAY), Err(SwapError::InvalidFolio(_))));
    }
    assert!(w.dev.seen().is_empty());
    assert!(w.pages.events().is_empty());
    assert_eq!(e.stats(), Stats::default());
    assert_clean(&w);
}

#[test]
fn deactivate_is_busy_until_every_request_is_drained() {
    let w = world();
    let e = w.engine(linear(16), StorageConfig::default()).unwrap();
    queue_all(&w);
    let mut plug = PlugState::new();
    for i in 1..=2u64 {
        let f = Folio::small(i, i * 4);
        w.prepare_write(f, 1);
        e.write(Some(&mut plug), f, MAY).unwrap();
    }
    // One request in flight, one held by the plug.
    assert_eq!(e.deactivate(), Err(SwapError::Busy { in_flight: 2 }));
    assert_eq!(SwapError::Busy { in_flight: 2 }.errno(), Errno::EBUSY);
    let g = Folio::small(3, 10);
    w.prepare_write(g, 1);
    assert_eq!(e.write(None, g, MAY), Err(SwapError::Deactivated));
    assert_eq!(write_state(&w, g.id), UNTOUCHED_WRITE);
    e.finish_plug(&mut plug).unwrap();
    assert_eq!(e.deactivate(), Err(SwapError::Busy { in_flight: 2 }));
    let q = w.dev.take_queued();
    e.complete(q[0].0, q[0].1).unwrap();
    assert_eq!(e.deactivate(), Err(SwapError::Busy { in_flight: 1 }));
    e.complete(q[1].0, q[1].1).unwrap();
    assert_eq!(e.deactivate(), Ok(()));
    assert_clean(&w);
}

// ---- every rule at once, under random faults -------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Write { slot: u64, pages: u32, plugged: bool },
    Read { slot: u64, pages: u32, plugged: bool },
    SyncWrite { slot: u64, pages: u32 },
    SyncRead { slot: u64, pages: u32 },
    FinishPlug,
    Deliver { reverse: bool, max: usize },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let folio = (1u64..64, prop_oneof![Just(1u32), Just(2), Just(4), Just(8)]);
    prop_oneof![
        4 => (folio.clone(), any::<bool>()).prop_map(|((slot, pages), plugged)| Op::Write { slot, pages, plugged }),
        3 => (folio.clone(), any::<bool>()).prop_map(|((slot, pages), plugged)| Op::Read { slot, pages, plugged }),
        1 => folio.clone().prop_map(|(slot, pages)| Op::SyncWrite { slot, pages }),
        1 => folio.prop_map(|(slot, pages)| Op::SyncRead { slot, pages }),
        1 => Just(Op::FinishPlug),
        2 => (any::<bool>(), 0usize..6).prop_map(|(reverse, max)| Op::Deliver { reverse, max }),
    ]
}

fn deliver_some(w: &TestWorld, e: &WorldEngine<'_>, reverse: bool, max: usize) {
    let mut q = w.dev.take_queued();
    if reverse {
        q.reverse();
    }
    let keep = q.split_off(max.min(q.len()));
    for (id, r) in q {
        e.complete(id, r).unwrap();
    }
    // Put the rest back by completing them later: re-queue through the hook-less list.
    for (id, r) in keep {
        PENDING.with(|p| p.borrow_mut().push((id, r)));
    }
}

thread_local! {
    static PENDING: std::cell::RefCell<Vec<(RequestId, Result<u64, Errno>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn deliver_pending(e: &WorldEngine<'_>, max: usize) {
    let batch: Vec<_> = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let n = max.min(p.len());
        p.drain(..n).collect()
    });
    for (id, r) in batch {
        e.complete(id, r).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

    /// Random mixes of plugged and unplugged, async and sync, small and large (split)
    /// reads and writes, with seeded faults (`FaultPlan`: errnos and short transfers),
    /// inline and queued outcomes and out-of-order completion: no page rule is ever
    /// broken, refused calls leave the folio untouched, every folio completes exactly
    /// once with the outcome its events report, and pins and counters balance.
    #[test]
    fn random_io_under_faults_keeps_every_page_rule(
        ops in proptest::collection::vec(op(), 1..40),
        rate_ppm in 0u32..600_000,
        seed in proptest::prelude::any::<u64>(),
        queue_mask in proptest::prelude::any::<u8>(),
        pool in 1usize..6,
    ) {
        use swapdio::fault::{FaultConfig, FaultKinds, FaultPlan};
        PENDING.with(|p| p.borrow_mut().clear());
        let w = world();
        let e = w.engine(device_map(&[(20, 100), (20, 300), (24, 600)]).unwrap(), cfg(pool, 2, 2)).unwrap();
        let plan = Arc::new(FaultPlan::new(FaultConfig { rate_ppm, seed, kinds: FaultKinds::all() }));
        w.dev.set_script(fault_script(plan, move |n| queue_mask & (1 << (n % 8)) != 0));
        let mut plug = PlugState::new();
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let id = 1000 + i as u64;
            let drain = || {
                deliver_some(&w, &e, false, usize::MAX);
                deliver_pending(&e, usize::MAX);
            };
            match *op {
                Op::Write { slot, pages, .. } | Op::SyncWrite { slot, pages } if slot + u64::from(pages) <= 64 => {
                    let f = Folio::large(id, slot, pages);
                    w.prepare_write(f, id as u8);
                    let got = match *op {
                        Op::Write { plugged: true, .. } => e.write(Some(&mut plug), f, MAY),
                        Op::Write { .. } => e.write(None, f, MAY),
                        _ => e.write_sync(f, MAY, drain),
                    };
                    match got {
                        Ok(()) | Err(SwapError::Io(_)) => writes.push(f.id),
                        Err(SwapError::WouldBlock) | Err(SwapError::TooFragmented { .. }) => {
                            proptest::prop_assert_eq!(write_state(&w, f.id), UNTOUCHED_WRITE)
                        }
                        Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::Read { slot, pages, .. } | Op::SyncRead { slot, pages } if slot + u64::from(pages) <= 64 => {
                    let f = Folio::large(id, slot, pages);
                    w.prepare_read(f);
                    let got = match *op {
                        Op::Read { plugged: true, .. } => e.read(Some(&mut plug), f),
                        Op::Read { .. } => e.read(None, f),
                        _ => e.read_sync(f, drain),
                    };
                    match got {
                        Ok(()) | Err(SwapError::Io(_)) => reads.push(f.id),
                        Err(SwapError::WouldBlock) | Err(SwapError::TooFragmented { .. }) => {
                            proptest::prop_assert_eq!(read_state(&w, f.id), UNTOUCHED_READ)
                        }
                        Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::Write { slot, pages, .. } | Op::SyncWrite { slot, pages } | Op::Read { slot, pages, .. } | Op::SyncRead { slot, pages } => {
                    let f = Folio::large(id, slot, pages);
                    let got = e.write(None, f, MAY);
                    let out_of_range = matches!(got, Err(SwapError::Map(MapError::SlotOutOfRange { .. })));
                    proptest::prop_assert!(out_of_range, "{:?}", got);
                }
                Op::FinishPlug => e.finish_plug(&mut plug).unwrap(),
                Op::Deliver { reverse, max } => {
                    deliver_some(&w, &e, reverse, max);
                    deliver_pending(&e, max);
                }
            }
        }
        e.finish_plug(&mut plug).unwrap();
        while e.in_flight() != 0 {
            deliver_some(&w, &e, true, usize::MAX);
            deliver_pending(&e, usize::MAX);
        }
        proptest::prop_assert_eq!(w.pages.violations(), Vec::<String>::new());
        proptest::prop_assert_eq!(w.pages.pins_held(), 0);
        let failed_writes: Vec<FolioId> = write_failures(&w).iter().map(|f| f.0).collect();
        let failed_reads: Vec<FolioId> = read_failures(&w).iter().map(|f| f.0).collect();
        for f in &writes {
            let s = w.pages.state(*f);
            let failed = failed_writes.iter().filter(|g| *g == f).count();
            proptest::prop_assert!(failed <= 1);
            proptest::prop_assert_eq!((s.writeback, s.writeback_ends, s.unlocks, s.dirty, s.reclaim), (false, 1, 1, failed == 1, failed == 0));
        }
        for f in &reads {
            let s = w.pages.state(*f);
            let failed = failed_reads.iter().filter(|g| *g == f).count();
            proptest::prop_assert!(failed <= 1);
            proptest::prop_assert_eq!((s.locked, s.unlocks, s.uptodate), (false, 1, failed == 0));
        }
        let st = e.stats();
        proptest::prop_assert_eq!(st.requests_submitted, st.requests_completed);
        proptest::prop_assert_eq!(st.rejected_completions, 0);
        proptest::prop_assert_eq!((st.write_failures, st.read_failures), (failed_writes.len() as u64, failed_reads.len() as u64));
        proptest::prop_assert_eq!((st.pages_out, st.pages_in), w.pages.counted_pages());
        proptest::prop_assert!(w.dev.seen().iter().all(|r| r.flags.contains(ReqFlags::SWAP)));
        proptest::prop_assert_eq!(e.deactivate(), Ok(()));
    }
}

// ---- concurrency --------------------------------------------------------------------------

/// The pool hands each request to one submitter: two threads writing through one engine
/// (with requests completed inline and from a third thread) never share a request, so
/// every folio completes exactly once.
#[test]
fn concurrent_submitters_never_share_a_request() {
    let w = world();
    let e = w.engine(linear(520), cfg(2, 2, 1)).unwrap();
    script(&w, |r: &Request<'_>| if r.pos() / P % 3 == 0 { Action::Queue(None) } else { Action::Inline(None) });
    let per_thread = 3000u64;
    let finished = AtomicUsize::new(0);
    // A request handed out twice is never freed: fail instead of spinning forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let alive = || assert!(std::time::Instant::now() < deadline, "stuck: a request was lost or handed out twice");
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (w, e, finished, alive) = (&w, &e, &finished, &alive);
            s.spawn(move || {
                for i in 0..per_thread {
                    let f = Folio::small(1 + t * per_thread + i, 1 + t * 256 + i % 255);
                    w.pages.prepare_write(f.id);
                    loop {
                        match e.write(None, f, MAY) {
                            Err(SwapError::WouldBlock) => {
                                alive();
                                std::thread::yield_now()
                            }
                            other => break other.unwrap(),
                        }
                    }
                }
                finished.fetch_add(1, Ordering::Release);
            });
        }
        s.spawn(|| {
            while finished.load(Ordering::Acquire) < 2 || e.in_flight() != 0 {
                alive();
                deliver(&w, &e);
                std::thread::yield_now();
            }
        });
    });
    for id in 1..=2 * per_thread {
        assert_eq!(write_state(&w, FolioId(id)), WROTE, "folio {id}");
    }
    let st = e.stats();
    assert_eq!((st.requests_submitted, st.requests_completed, st.rejected_completions), (6000, 6000, 0));
    assert_clean(&w);
}
