//! The Rust API surface where issue 9 found reachable panics and wrap-arounds: request
//! storage sizes (`OwnedStorage::new`), caller-built map entries (`SwapMap::new`,
//! `MapEntry::end_slot`, lookups), fences (`linux::direct::Fence::from_map`),
//! `TrimLoss::total`, block-device activation with arbitrary bad-page lists, and an
//! engine driven over any map the library accepts. Nothing may panic, and every answer
//! is checked against a plain model computed here with wide (`u128`) arithmetic:
//! a wrapped sum or an inverted range shows as a wrong answer even with overflow checks
//! off.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use swapdio::linux::direct::Fence;
use swapdio::testkit::{Action, TestWorld};
use swapdio::*;

const P: u64 = PAGE_SIZE as u64;

/// A request count: mostly small, sometimes anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Count {
    Small(u8),
    Any(usize),
}

impl Count {
    fn get(self) -> usize {
        match self {
            Count::Small(n) => usize::from(n % 40),
            Count::Any(n) => n,
        }
    }
}

/// A map entry: either anything, or a small plausible one (page-aligned, near the
/// previous entry) so that valid maps are common.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum RawEntry {
    Any { first_slot: u64, pages: u64, start: u64 },
    Near { gap: u8, pages: u8, page: u16 },
}

#[derive(Arbitrary, Debug)]
struct Io {
    slot: u8,
    pages: u8,
    write: bool,
    plugged: bool,
    sync: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    pool: Count,
    sync: Count,
    splits: Count,
    entries: Vec<RawEntry>,
    device_mode: bool,
    probes: Vec<u64>,
    fence_probes: Vec<(u64, u64)>,
    trim: [u64; 4],
    last_page: u16,
    bad_pages: Vec<u16>,
    nr_badpages: u16,
    device_pages: u16,
    map_room: u8,
    ios: Vec<Io>,
    queue: bool,
}

fn entries(raw: &[RawEntry]) -> Vec<MapEntry> {
    let mut next = 0u64;
    raw.iter()
        .take(64)
        .map(|r| {
            let e = match *r {
                RawEntry::Any { first_slot, pages, start } => MapEntry { first_slot, pages, start },
                RawEntry::Near { gap, pages, page } => MapEntry {
                    first_slot: next.saturating_add(u64::from(gap % 4)),
                    pages: u64::from(pages % 16),
                    start: u64::from(page) * P,
                },
            };
            next = e.first_slot.saturating_add(e.pages);
            e
        })
        .collect()
}

fn byte_range(e: &MapEntry) -> (u128, u128) {
    let start = u128::from(e.start);
    (start, start + u128::from(e.pages) * u128::from(P))
}

/// Why the model refuses `entries`, in the order `SwapMap::new` checks.
fn model_refusal(entries: &[MapEntry], mode: IoMode) -> Option<MapError> {
    let mut next = 0u128;
    for (index, e) in entries.iter().enumerate() {
        let end_bytes = byte_range(e).1;
        if u128::from(e.first_slot) < next || e.pages == 0 || e.start % P != 0 || end_bytes > u128::from(u64::MAX) {
            return Some(MapError::BadEntry { index });
        }
        next = u128::from(e.first_slot) + u128::from(e.pages);
        if next > u128::from(u64::MAX) {
            return Some(MapError::BadEntry { index });
        }
    }
    if entries.is_empty() {
        return Some(MapError::Empty);
    }
    if mode == IoMode::Device {
        for (i, a) in entries.iter().enumerate() {
            for b in &entries[i + 1..] {
                let ((a0, a1), (b0, b1)) = (byte_range(a), byte_range(b));
                if a0 < b1 && b0 < a1 {
                    return Some(MapError::PhysicalOverlap { slot: 0 });
                }
            }
        }
    }
    None
}

fn check_storage(input: &Input) {
    let config = StorageConfig { pool: input.pool.get(), sync: input.sync.get(), splits: input.splits.get() };
    // Only try to allocate what is small: a huge but valid count would allocate for real.
    let slots = config.pool.saturating_add(config.sync);
    let too_many = slots > MAX_REQUEST_SLOTS || config.splits > MAX_REQUEST_SLOTS;
    if too_many {
        assert_eq!(OwnedStorage::new(config).err(), Some(EngineError::TooManySlots), "{config:?}");
    } else if slots <= 4096 && config.splits <= 4096 {
        OwnedStorage::new(config).expect("small storage");
    }
}

fn check_trim(t: [u64; 4]) {
    let loss = TrimLoss { misaligned: t[0], too_short: t[1], beyond_header: t[2], file_tail: t[3] };
    let wide: u128 = t.iter().map(|&x| u128::from(x)).sum();
    assert_eq!(loss.total().map(u128::from), (wide <= u128::from(u64::MAX)).then_some(wide));
}

/// Map construction, lookups and the fence against the model.
fn check_map(input: &Input, entries: &[MapEntry], mode: IoMode) -> Option<SwapMap<Vec<MapEntry>>> {
    for e in entries {
        let wide = u128::from(e.first_slot) + u128::from(e.pages);
        assert_eq!(e.end_slot().map(u128::from), (wide <= u128::from(u64::MAX)).then_some(wide));
    }
    match Fence::from_map(entries) {
        Ok(fence) => {
            for &(pos, len) in input.fence_probes.iter().take(16) {
                if fence.allows(pos, len) {
                    let (p0, p1) = (u128::from(pos), u128::from(pos) + u128::from(len));
                    assert!(
                        entries.iter().any(|e| {
                            let (s, t) = byte_range(e);
                            let s = if e.first_slot == 0 { s + u128::from(P) } else { s };
                            s <= p0 && p1 <= t
                        }),
                        "fence allows [{pos}, +{len}) outside every data extent"
                    );
                }
            }
        }
        Err(MapError::BadEntry { index }) => {
            assert!(byte_range(&entries[index]).1 > u128::from(u64::MAX), "fence refused entry {index}")
        }
        Err(e) => panic!("fence: unexpected {e:?}"),
    }
    let model = model_refusal(entries, mode);
    match SwapMap::new(entries.to_vec(), mode) {
        Err(err) => {
            match (err, model) {
                (MapError::PhysicalOverlap { slot }, Some(MapError::PhysicalOverlap { .. })) => {
                    assert!(entries.iter().any(|e| e.first_slot == slot), "overlap names no entry's slot");
                }
                (err, model) => assert_eq!(Some(err), model, "{entries:?}"),
            }
            None
        }
        Ok(map) => {
            assert_eq!(model, None, "accepted a map the model refuses: {entries:?}");
            let slots = entries.last().map_or(0, |e| e.first_slot + e.pages);
            assert_eq!(map.slots(), slots);
            let probes = input.probes.iter().copied().chain(entries.iter().flat_map(|e| {
                [e.first_slot, e.first_slot + e.pages - 1, e.first_slot.wrapping_sub(1), e.first_slot + e.pages]
            }));
            for slot in probes.take(256) {
                let holder = entries.iter().find(|e| slot >= e.first_slot && slot - e.first_slot < e.pages);
                let want = match holder {
                    Some(e) => {
                        Ok(Run { pos: e.start + (slot - e.first_slot) * P, pages: e.pages - (slot - e.first_slot) })
                    }
                    None if slot >= slots => Err(MapError::SlotOutOfRange { slot, slots }),
                    None => Err(MapError::BadSlot { slot }),
                };
                assert_eq!(map.lookup(slot), want, "slot {slot}");
                assert_eq!(map.is_usable(slot), slot != 0 && holder.is_some());
            }
            Some(map)
        }
    }
}

/// A block device with an arbitrary bad-page list: the kernel's checks, the report's
/// arithmetic, and a map that leaves exactly the in-range bad pages out.
fn check_block_device(input: &Input) {
    let last_page = u32::from(input.last_page.max(1));
    let mut page = vec![0u8; PAGE_SIZE];
    let Ok(h) = SwapHeader::new(u64::from(last_page) + 1, [3; 16], [0; 16]) else { return };
    let nr = u32::from(input.nr_badpages % 700);
    SwapHeader { nr_badpages: nr, ..h }.write(&mut page).expect("header");
    let bad: Vec<u32> = input.bad_pages.iter().take(nr as usize).map(|&b| u32::from(b)).collect();
    for (i, b) in bad.iter().enumerate() {
        if let Some(dst) = page.get_mut(1536 + 4 * i..1540 + 4 * i) {
            dst.copy_from_slice(&b.to_ne_bytes());
        }
    }
    let size = u64::from(input.device_pages.max(1)) * P + u64::from(input.map_room);
    let req = ActivationRequest::new(&page, size, Layout::BlockDevice, 1, BackendCaps::BLOCK_DEVICE);
    let mut out = vec![MapEntry::default(); usize::from(input.map_room % 8)];
    let small = activate_into(&req, &mut out);
    match activate_owned(&req) {
        Ok((map, r)) => {
            assert_eq!(r.lost.total().map(|t| u128::from(t) + u128::from(r.slots) * u128::from(P)), Some(size.into()));
            assert_eq!(r.usable_pages + r.bad_pages + 1, r.slots);
            assert!(map.entries().len() <= req.map_capacity());
            let listed: Vec<u64> = (0..nr).map(|i| u64::from(bad.get(i as usize).copied().unwrap_or(0))).collect();
            assert_eq!(r.bad_pages, listed.iter().filter(|&&b| b < r.slots).count() as u64);
            for slot in 0..r.slots.min(4096) {
                let is_bad = listed.contains(&slot);
                assert_eq!(map.lookup(slot).is_ok(), !is_bad, "slot {slot}");
                if let Ok(run) = map.lookup(slot) {
                    assert_eq!(run.pos, slot * P);
                }
            }
            match small {
                Ok((used, r2)) => assert_eq!((&out[..used], r2), (map.entries(), r)),
                Err(e) => assert!(matches!(e.refusal, Refusal::MapStorageTooSmall { .. }), "{e:?}"),
            }
        }
        Err(e) => {
            assert!(small.is_err());
            let _ = e.errno();
        }
    }
}

/// An engine over a map the library accepted: every I/O is either refused with the
/// folio untouched, or reaches the backend inside one mapped extent (never a bad slot,
/// never the header page), and the pages balance once everything completed.
fn drive_engine(input: &Input, map: SwapMap<Vec<MapEntry>>) {
    // Positions the in-memory device can hold, so its copies stay in range.
    if map.entries().iter().any(|e| byte_range(e).1 > 1 << 24) || map.slots() > 4096 {
        return;
    }
    let entries = map.entries().to_vec();
    let caps = match map.mode() {
        IoMode::Device => BackendCaps::BLOCK_DEVICE,
        IoMode::File => BackendCaps::BLOCK_DEVICE | BackendCaps::SWAP_RW,
    };
    let w = TestWorld::new(caps, 1 << 24);
    if input.queue {
        w.dev.set_script(std::sync::Arc::new(|_: &Request<'_>| Action::Queue(None)));
    }
    let Ok(e) = w.engine(map, StorageConfig { pool: 4, sync: 2, splits: 2 }) else { return };
    let mut plug = PlugState::new();
    for (n, io) in input.ios.iter().take(64).enumerate() {
        let id = n as u64 + 1;
        let folio = Folio::large(id, u64::from(io.slot), u32::from(io.pages % 5).max(1));
        if io.write {
            w.prepare_write(folio, io.slot);
        } else {
            w.prepare_read(folio);
        }
        let r = match (io.write, io.sync, io.plugged) {
            (true, true, _) => e.write_sync(folio, FsContext::MayEnterFs, || drain(&w, &e)),
            (false, true, _) => e.read_sync(folio, || drain(&w, &e)),
            (true, false, p) => e.write(p.then_some(&mut plug), folio, FsContext::MayEnterFs),
            (false, false, p) => e.read(p.then_some(&mut plug), folio),
        };
        if let Err(err) = r {
            let s = w.pages.state(folio.id);
            if !matches!(err, SwapError::Io(_)) {
                assert!(s.locked && s.pins == 0 && !s.writeback, "refused folio touched: {err:?} {s:?}");
            }
        }
    }
    let _ = e.finish_plug(&mut plug);
    drain(&w, &e);
    assert_eq!(e.deactivate(), Ok(()));
    for req in w.dev.seen() {
        let (p0, p1) = (u128::from(req.pos), u128::from(req.pos) + u128::from(req.len));
        assert!(
            entries.iter().any(|x| {
                let (s, t) = byte_range(x);
                let s = if x.first_slot == 0 { s + u128::from(P) } else { s };
                s <= p0 && p1 <= t
            }),
            "request [{}, +{}) outside every data extent",
            req.pos,
            req.len
        );
    }
    assert_eq!(w.pages.violations(), Vec::<String>::new());
    assert_eq!(w.pages.pins_held(), 0);
}

fn drain(w: &TestWorld, e: &testkit::WorldEngine<'_>) {
    for (id, result) in w.dev.take_queued() {
        let _ = e.complete(id, result);
    }
}

fuzz_target!(|input: Input| {
    check_storage(&input);
    check_trim(input.trim);
    let mode = if input.device_mode { IoMode::Device } else { IoMode::File };
    let entries = entries(&input.entries);
    if let Some(map) = check_map(&input, &entries, mode) {
        drive_engine(&input, map);
    }
    check_block_device(&input);
});
