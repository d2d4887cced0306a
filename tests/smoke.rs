//! End-to-end smoke test: activation, plugged writes, a large folio split across extents, sync read.
use swapdio::testkit::*;
use swapdio::*;

fn header(pages: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE_SIZE];
    SwapHeader::new(pages, [1; 16], [0; 16]).unwrap().write(&mut p).unwrap();
    p
}

#[test]
fn smoke_write_read_roundtrip() {
    let hdr = header(64);
    let ext = [
        ExtentReport { logical: 0, physical: 1 << 20, length: 32 * 4096, flags: ExtentFlags::empty(), device: 7 },
        ExtentReport {
            logical: 32 * 4096,
            physical: 8 << 20,
            length: 32 * 4096,
            flags: ExtentFlags::UNWRITTEN,
            device: 7,
        },
    ];
    let req = ActivationRequest::new(&hdr, 64 * 4096, Layout::Extents(&ext), 7, BackendCaps::BLOCK_DEVICE);
    let (map, report) = activate_owned(&req).unwrap();
    assert_eq!(report.usable_pages, 63);
    assert_eq!(report.extents, 2);
    let mem = FolioMemory::new();
    let dev = MemDevice::new(BackendCaps::BLOCK_DEVICE, 16 << 20, mem.clone());
    let pages = MemPages::new();
    let engine = Engine::new(map, OwnedStorage::new(StorageConfig::default()).unwrap(), &dev, &pages).unwrap();
    {
        let mut plug = engine.plug();
        for s in 1..40u64 {
            mem.set(FolioId(s), vec![s as u8; 4096]);
            pages.prepare_write(FolioId(s));
            plug.write(Folio::small(s, s), FsContext::MayEnterFs).unwrap();
        }
    }
    // Large folio spanning the extent boundary at slot 32.
    mem.set(FolioId(100), (0..4 * 4096).map(|i| (i / 4096) as u8 + 50).collect());
    pages.prepare_write(FolioId(100));
    engine.write(None, Folio::large(100, 30, 4), FsContext::MayEnterFs).unwrap();
    assert_eq!(engine.in_flight(), 0);
    for s in 1..30u64 {
        let f = FolioId(1000 + s);
        pages.prepare_read(f);
        mem.set(f, vec![0; 4096]);
        engine.read(None, Folio::small(1000 + s, s)).unwrap();
        assert_eq!(mem.get(f).unwrap(), vec![s as u8; 4096]);
        assert!(pages.state(f).uptodate);
    }
    let f = FolioId(2000);
    pages.prepare_read(f);
    mem.set(f, vec![0; 4 * 4096]);
    engine.read_sync(Folio::large(2000, 30, 4), std::thread::yield_now).unwrap();
    assert_eq!(mem.get(f).unwrap(), mem.get(FolioId(100)).unwrap());
    assert_eq!(pages.violations(), Vec::<String>::new());
    assert_eq!(pages.pins_held(), 0);
    let seen = dev.seen();
    assert!(seen.iter().all(|r| r.flags.contains(ReqFlags::SWAP)));
    assert_eq!(seen[0].segments.len(), 31); // slots 1..=31 contiguous in extent 0, plug flush at boundary
    engine.deactivate().unwrap();
}
