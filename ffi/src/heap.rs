//! `swapdio_engine_new` (feature `std`): the engine, its storage and a copy of the map
//! on the heap, and the registry that makes a second `swapdio_engine_fini` of such an
//! engine a refusal (`-EINVAL`) instead of a read of freed memory.

use core::alloc::Layout;
use core::ffi::c_int;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use swapdio::MapEntry;

use crate::engine::{construct, init_in, storage_layout, EngineObj, HeapBlock, NO_HEAP};
use crate::error::{neg, EINVAL, EOVERFLOW};
use crate::ptr::slice_from;
use crate::types::{swapdio_engine, swapdio_engine_config};

/// Addresses of the engines `swapdio_engine_new` allocated: `true` while live, `false`
/// once finished (kept until the address is reused by a new engine, so a second fini
/// is refused without touching the freed block). One entry per address ever used.
static ENGINES: Mutex<BTreeMap<usize, bool>> = Mutex::new(BTreeMap::new());

fn registry() -> MutexGuard<'static, BTreeMap<usize, bool>> {
    ENGINES.lock().unwrap_or_else(|e| e.into_inner())
}

/// `swapdio_engine_fini` of a heap engine: holds the registry for the whole call.
pub(crate) struct FiniGuard {
    engines: MutexGuard<'static, BTreeMap<usize, bool>>,
    addr: usize,
}

impl FiniGuard {
    /// The engine was finished and its blocks are about to be freed.
    pub(crate) fn finished(mut self) {
        self.engines.insert(self.addr, false);
    }
}

/// Before `swapdio_engine_fini` reads `engine`: `Err(-EINVAL)` for a heap engine already
/// finished, `Ok(Some)` for a live heap engine (the registry stays locked until the
/// guard is dropped, so two finis cannot race), `Ok(None)` for caller memory.
pub(crate) fn enter_fini(engine: *mut swapdio_engine) -> Result<Option<FiniGuard>, c_int> {
    let addr = engine as usize;
    let engines = registry();
    match engines.get(&addr) {
        Some(false) => Err(neg(EINVAL)),
        Some(true) => Ok(Some(FiniGuard { engines, addr })),
        None => Ok(None),
    }
}

/// `swapdio_engine_init` placed an engine in caller memory at `engine`: whatever a
/// finished heap engine left at that address no longer applies.
pub(crate) fn forget(engine: *mut swapdio_engine) {
    registry().remove(&(engine as usize));
}

/// Allocates an engine, its storage and a copy of the map (feature `std`), then sets
/// it up as `swapdio_engine_init` does; `cfg->storage` and `cfg->storage_size` are
/// ignored. Free with `swapdio_engine_fini`.
///
/// Returns 0 and sets `*out`, `-ENOMEM`, or `swapdio_engine_init`'s errors.
///
/// # Safety
/// As `swapdio_engine_init` for `cfg->map` (read only during the call) and the tables.
#[no_mangle]
pub unsafe extern "C" fn swapdio_engine_new(cfg: *const swapdio_engine_config, out: *mut *mut swapdio_engine) -> c_int {
    let make = |cfg: &swapdio_engine_config| {
        // SAFETY: `cfg.map` and the tables are valid as this function requires.
        unsafe { new_on_heap(cfg) }
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { construct(cfg, out, make) }
}

/// `swapdio_engine_new`'s allocation: engine, storage and a copy of the map on the heap,
/// owned by the engine until `swapdio_engine_fini`.
///
/// # Safety
/// `cfg.map` is NULL or holds `cfg.map_entries` entries; the tables are valid, as
/// `swapdio_engine_new` requires.
unsafe fn new_on_heap(cfg: &swapdio_engine_config) -> Result<*mut swapdio_engine, c_int> {
    use crate::error::ENOMEM;
    // SAFETY: forwarded: `map` holds `map_entries` entries.
    let map = unsafe { slice_from(cfg.map, cfg.map_entries) }?;
    if map.is_empty() {
        return Err(neg(EINVAL));
    }
    let storage = storage_layout(&cfg.storage_config)?.layout;
    let Ok(map_layout) = Layout::array::<MapEntry>(map.len()) else {
        return Err(neg(EOVERFLOW));
    };
    let engine_layout = Layout::new::<EngineObj>();
    let mut blocks = [NO_HEAP; 3];
    for (b, l) in blocks.iter_mut().zip([engine_layout, storage, map_layout]) {
        // SAFETY: every layout has a non-zero size (an engine object, a pool of at least
        // one request, at least one map entry).
        // Zeroed: `init_in` reads the engine's magic and the storage's claim word first.
        let ptr = unsafe { std::alloc::alloc_zeroed(l) };
        *b = HeapBlock { ptr, size: l.size(), align: l.align() };
    }
    let free = |blocks: &[HeapBlock; 3]| {
        for b in blocks.iter().filter(|b| !b.ptr.is_null()) {
            // SAFETY: allocated above with this layout and not handed out.
            unsafe { std::alloc::dealloc(b.ptr, Layout::from_size_align_unchecked(b.size, b.align)) };
        }
    };
    let [eb, sb, mb] = blocks;
    if eb.ptr.is_null() || sb.ptr.is_null() || mb.ptr.is_null() {
        free(&blocks);
        return Err(neg(ENOMEM));
    }
    // SAFETY: `mb` holds `map.len()` entries (its layout), does not overlap `map`.
    unsafe { core::ptr::copy_nonoverlapping(map.as_ptr(), mb.ptr.cast(), map.len()) };
    let heap_cfg = swapdio_engine_config { map: mb.ptr.cast(), storage: sb.ptr.cast(), storage_size: sb.size, ..*cfg };
    // SAFETY: the blocks are fresh allocations of the right layouts, owned by the engine
    // until `swapdio_engine_fini` frees them; the tables are the caller's (contract).
    let engine = unsafe { init_in(eb.ptr, eb.size, &heap_cfg, blocks) }.inspect_err(|_| free(&blocks))?;
    registry().insert(engine as usize, true);
    Ok(engine)
}
