//! Shared setup of the pager tests: a scratch swap file, a pager over it (or a skip
//! when userfaultfd is unavailable), page stamps, and volatile region access.
#![allow(dead_code)]

use swapdio::linux::direct::Target;
use swapdio::linux::pager::{Pager, PagerConfig, PagerError};
use swapdio::testkit::file_map;
use swapdio::PAGE_SIZE;

#[path = "../support/mod.rs"]
mod support;
pub use support::ScratchFile as Scratch;

/// A pager over a fresh zeroed file of `config.pages + 1` pages (file mode), or `None`
/// with the reason printed when userfaultfd is unavailable (a failure instead under
/// `SWAPDIO_REQUIRE_UFFD=1`, as CI sets).
pub fn pager(name: &str, config: PagerConfig) -> Option<(Pager, Scratch)> {
    let slots = config.pages as u64 + 1;
    let file = Scratch::sparse("pager-tests", name, slots * PAGE_SIZE as u64);
    let target = Target::file(&file.0).unwrap();
    match Pager::new(config, file_map(slots).unwrap(), target) {
        Ok(p) => Some((p, file)),
        Err(PagerError::Uffd(e)) => {
            assert!(
                std::env::var_os("SWAPDIO_REQUIRE_UFFD").is_none(),
                "SWAPDIO_REQUIRE_UFFD is set but userfaultfd is unavailable: {e}"
            );
            eprintln!("skipping {name}: userfaultfd unavailable ({e}); needs root or vm.unprivileged_userfaultfd=1");
            None
        }
        Err(e) => panic!("pager setup: {e}"),
    }
}

/// The 8-byte word `w` of page `page` at generation `gen`.
pub fn word(page: usize, gen: u64, w: usize) -> u64 {
    let mut z = (page as u64) << 32 ^ gen << 12 ^ w as u64;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (z ^ (z >> 27)) | 1
}

/// Writes generation `gen` of `page` (every word).
pub fn write_page(base: *mut u8, page: usize, gen: u64) {
    let p = base.wrapping_add(page * PAGE_SIZE).cast::<u64>();
    for w in 0..PAGE_SIZE / 8 {
        // SAFETY: inside the pager's region, which outlives the call.
        unsafe { p.add(w).write_volatile(word(page, gen, w)) };
    }
}

/// Words of `page` that differ from generation `gen` (`gen` 0: all zero).
pub fn check_page(base: *mut u8, page: usize, gen: u64) -> usize {
    let p = base.wrapping_add(page * PAGE_SIZE).cast::<u64>();
    (0..PAGE_SIZE / 8)
        .filter(|&w| {
            // SAFETY: inside the pager's region, which outlives the call.
            let v = unsafe { p.add(w).read_volatile() };
            v != if gen == 0 { 0 } else { word(page, gen, w) }
        })
        .count()
}

/// A raw pointer that may cross threads (the region is shared by design).
#[derive(Clone, Copy)]
pub struct Base(pub *mut u8);
// SAFETY: the region is plain memory every thread may touch; the pager serialises faults.
unsafe impl Send for Base {}
// SAFETY: as above.
unsafe impl Sync for Base {}
