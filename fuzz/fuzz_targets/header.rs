//! Header parsing (`read_swap_header`): any page 0 is answered without a panic; a parsed
//! header writes back to bytes that parse to the same header (byte-swapped ones too), and
//! its size rules never panic; a header built with `SwapHeader::new` (mkswap) roundtrips.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use swapdio::{HeaderLimits, SwapHeader, PAGE_SIZE};

#[derive(Arbitrary, Debug)]
struct Extra {
    file_size: u64,
    max_pages: u64,
    pages: u64,
    uuid: [u8; 16],
    label: [u8; 16],
}

fuzz_target!(|data: &[u8]| {
    // Raw bytes as page 0 (short pages too); and the same bytes with the magic forced,
    // so the info fields behind the signature get exercised.
    let mut page = vec![0u8; PAGE_SIZE];
    let n = data.len().min(PAGE_SIZE);
    page[..n].copy_from_slice(&data[..n]);
    let _ = SwapHeader::parse(data);
    page[PAGE_SIZE - 10..].copy_from_slice(b"SWAPSPACE2");
    let extra = Extra::arbitrary(&mut Unstructured::new(data)).ok();
    for p in [&page[..], data] {
        if let Ok(h) = SwapHeader::parse(p) {
            let mut out = vec![0u8; PAGE_SIZE];
            h.write(&mut out).expect("a page is long enough");
            assert_eq!(SwapHeader::parse(&out), Ok(h), "write -> parse roundtrip");
            if let Some(x) = &extra {
                let limits = HeaderLimits { max_pages: x.max_pages };
                if let Ok(max) = h.validate(x.file_size, limits) {
                    assert!(max >= 1 && max <= u64::from(h.last_page) + 1 || max == u64::from(u32::MAX));
                }
            }
        }
    }
    if let Some(x) = extra {
        if let Ok(h) = SwapHeader::new(x.pages, x.uuid, x.label) {
            let mut out = vec![0u8; PAGE_SIZE];
            h.write(&mut out).expect("a page is long enough");
            assert_eq!(SwapHeader::parse(&out), Ok(h), "mkswap header roundtrip");
            // `maxpages = last_page + 1`, clamped to `UINT_MAX` where that wraps (`p->max`).
            let want = if h.last_page == u32::MAX { u64::from(u32::MAX) } else { u64::from(h.last_page) + 1 };
            assert_eq!(h.validate(0, HeaderLimits::default()), Ok(want));
        }
    }
});
