//! The engine through the C ABI: memory layouts, setup in caller memory, the swap
//! read/write/complete entry points, plugs, deactivation and statistics.
//!
//! Concurrency contract (the kernel's): `swapdio_complete` and the page callbacks may
//! run on any thread at any time while requests are in flight; `swapdio_write`,
//! `swapdio_read` and the sync variants may be called from several threads at once,
//! each with its own plug; `swapdio_engine_fini` runs alone.

use core::alloc::Layout;
use core::ffi::{c_int, c_void};
use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicU64, Ordering};

use swapdio::{
    Engine, Folio, FolioId, FsContext, IoMode, MapEntry, PlugState, RequestId, RequestSlot, SplitSlot, StorageRef,
    SwapMap,
};

use crate::callbacks::{CBackend, CPageOps, RequestArea};
use crate::error::{engine_error, io_result, neg, swap_error, EALREADY, EBUSY, EFAULT, EINVAL, EOVERFLOW};
use crate::ptr::{check_block, check_ptr, ref_from, slice_from};
use crate::types::{
    swapdio_engine, swapdio_engine_config, swapdio_folio, swapdio_fs_context, swapdio_io, swapdio_mem_layout,
    swapdio_mode, swapdio_plug, swapdio_run, swapdio_stats, swapdio_storage_config, SWAPDIO_FOLIO_ALL,
    SWAPDIO_FOLIO_ZERO_PAGE,
};

/// The concrete engine behind `swapdio_engine`: map and storage in caller memory
/// (promised to outlive the engine, hence `'static`), C callback tables.
type CEngine = Engine<&'static [MapEntry], StorageRef<'static>, CBackend, CPageOps>;

const ENGINE_MAGIC: u64 = u64::from_be_bytes(*b"swapdioE");
const PLUG_MAGIC: u64 = u64::from_be_bytes(*b"swapdioP");

/// A block this library allocated (`swapdio_engine_new`); null when the caller owns it.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) struct HeapBlock {
    pub(crate) ptr: *mut u8,
    pub(crate) size: usize,
    pub(crate) align: usize,
}

pub(crate) const NO_HEAP: HeapBlock = HeapBlock { ptr: core::ptr::null_mut(), size: 0, align: 1 };

/// What lives in the engine memory.
#[repr(C)]
pub(crate) struct EngineObj {
    magic: AtomicU64,
    /// Engine, storage and map blocks when allocated by `swapdio_engine_new`.
    heap: [HeapBlock; 3],
    engine: CEngine,
}

// `swapdio_complete` and the I/O entry points share one engine across threads.
const _: () = {
    const fn shared<T: Sync>() {}
    shared::<CEngine>();
};

// The opaque plug bytes hold a `PlugState`.
const _: () = assert!(size_of::<PlugState>() <= size_of::<[u64; 8]>() && align_of::<PlugState>() <= align_of::<u64>());

fn write_layout(out: *mut swapdio_mem_layout, l: Layout) -> c_int {
    if let Err(e) = check_ptr(out.cast_const()) {
        return e;
    }
    // SAFETY: non-null and aligned (checked); the exported callers require `out` to be
    // writable.
    unsafe { out.write(swapdio_mem_layout { size: l.size(), align: l.align() }) };
    0
}

/// Size and alignment of the memory `swapdio_engine_init` places an engine in.
///
/// Returns 0, `-EFAULT` if `out` is NULL.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn swapdio_engine_layout(out: *mut swapdio_mem_layout) -> c_int {
    write_layout(out, Layout::new::<EngineObj>())
}

/// The storage block: pool slots, then sync slots, then split trackers, then one
/// `swapdio_io` with its private backend space per request slot (pool, then sync).
pub(crate) struct StorageLayout {
    pub(crate) layout: Layout,
    sync_off: usize,
    splits_off: usize,
    ios_off: usize,
    /// Bytes from one request's `swapdio_io` to the next.
    io_stride: usize,
}

/// Alignment of `swapdio_io.backend_data` (and of each `swapdio_io` in the storage).
const BACKEND_DATA_ALIGN: usize = 16;

/// Offset of the private backend space after a request's `swapdio_io`.
const BACKEND_DATA_OFF: usize = size_of::<swapdio_io>().next_multiple_of(BACKEND_DATA_ALIGN);

pub(crate) fn storage_layout(c: &swapdio_storage_config) -> Result<StorageLayout, i32> {
    if c.pool == 0 {
        return Err(neg(EINVAL));
    }
    let over = |_| neg(EOVERFLOW);
    let pool = Layout::array::<RequestSlot>(c.pool).map_err(over)?;
    let (l, sync_off) = pool.extend(Layout::array::<RequestSlot>(c.sync).map_err(over)?).map_err(over)?;
    let (l, splits_off) = l.extend(Layout::array::<SplitSlot>(c.splits).map_err(over)?).map_err(over)?;
    let io_stride = BACKEND_DATA_OFF
        .checked_add(c.backend_data)
        .and_then(|n| n.checked_next_multiple_of(BACKEND_DATA_ALIGN))
        .ok_or(neg(EOVERFLOW))?;
    let requests = c.pool.checked_add(c.sync).ok_or(neg(EOVERFLOW))?;
    let ios = io_stride
        .checked_mul(requests)
        .and_then(|n| Layout::from_size_align(n, BACKEND_DATA_ALIGN).ok())
        .ok_or(neg(EOVERFLOW))?;
    let (l, ios_off) = l.extend(ios).map_err(over)?;
    Ok(StorageLayout { layout: l.pad_to_align(), sync_off, splits_off, ios_off, io_stride })
}

/// Size and alignment of the request storage for `config` (the kernel's `sio_pool`
/// plus synchronous slots and split-folio trackers).
///
/// Returns 0, `-EFAULT` for NULL, `-EINVAL` if `config->pool` is 0, `-EOVERFLOW`.
///
/// # Safety
/// `config` is NULL or valid; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn swapdio_storage_layout(
    config: *const swapdio_storage_config,
    out: *mut swapdio_mem_layout,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    let c = match unsafe { ref_from(config) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    match storage_layout(c) {
        Ok(s) => write_layout(out, s.layout),
        Err(e) => e,
    }
}

fn mode_of(v: u32) -> Option<IoMode> {
    match v {
        x if x == swapdio_mode::Device as u32 => Some(IoMode::Device),
        x if x == swapdio_mode::File as u32 => Some(IoMode::File),
        _ => None,
    }
}

/// Validates `cfg` and places an engine, its initialised storage and the map view in
/// `mem`.
///
/// # Safety
/// `mem` is valid for `mem_size` writable bytes; the pointers in `cfg` satisfy
/// `swapdio_engine_init`'s contract.
pub(crate) unsafe fn init_in(
    mem: *mut u8,
    mem_size: usize,
    cfg: &swapdio_engine_config,
    heap: [HeapBlock; 3],
) -> Result<*mut swapdio_engine, i32> {
    let l = Layout::new::<EngineObj>();
    check_block(mem, mem_size, l.size(), l.align())?;
    // SAFETY: `mem` is non-null, aligned for `EngineObj` and large enough (checked); its
    // first field is the magic word, an integer, and the caller guarantees the bytes
    // readable. A live engine there is refused before anything is overwritten.
    if unsafe { &*mem.cast::<AtomicU64>() }.load(Ordering::Acquire) == ENGINE_MAGIC {
        return Err(neg(EBUSY));
    }
    let mode = mode_of(cfg.mode).ok_or(neg(EINVAL))?;
    if cfg.reserved != 0 || cfg.map_entries == 0 {
        return Err(neg(EINVAL));
    }
    // SAFETY: the caller guarantees `map` holds `map_entries` initialised entries that
    // stay valid and unmodified until `swapdio_engine_fini` (hence 'static here); the
    // layouts of `swapdio_map_entry` and `MapEntry` are identical (types.rs).
    let map: &'static [MapEntry] = unsafe { slice_from(cfg.map.cast::<MapEntry>(), cfg.map_entries) }?;
    let map = SwapMap::new(map, mode).map_err(|_| neg(EINVAL))?;
    // SAFETY: the caller guarantees the tables are NULL or valid for the call (they are
    // copied).
    let backend = unsafe { ref_from(cfg.backend) }?;
    let backend = CBackend::new(backend, cfg.backend_ctx).ok_or(neg(EINVAL))?;
    // SAFETY: as above.
    let page_ops = unsafe { ref_from(cfg.page_ops) }?;
    let page_ops = CPageOps::new(page_ops, cfg.page_ctx).ok_or(neg(EINVAL))?;
    let sc = cfg.storage_config;
    let sl = storage_layout(&sc)?;
    let base = cfg.storage.cast::<u8>();
    check_block(base, cfg.storage_size, sl.layout.size(), sl.layout.align())?;
    // Storage a live engine uses carries its claim: refuse it before resetting anything
    // (the reset would erase that engine's requests in flight).
    // SAFETY: `base` is non-null, aligned for `RequestSlot` and large enough for at least
    // one (checked: the pool has at least one slot); every bit pattern is a valid
    // `RequestSlot` (integers in atomics), and the caller guarantees the bytes readable.
    if unsafe { &*base.cast::<RequestSlot>() }.storage_claimed() {
        return Err(neg(EBUSY));
    }
    // SAFETY: `ios_off` is inside the checked block (from `Layout::extend`); the request
    // area holds `pool + sync` strides of `io_stride` bytes, owned by the engine.
    let backend = backend.with_requests(RequestArea {
        base: unsafe { base.add(sl.ios_off) },
        stride: sl.io_stride,
        count: sc.pool + sc.sync,
        data_off: BACKEND_DATA_OFF,
        has_data: sc.backend_data != 0,
    });
    // SAFETY: `base` is non-null, aligned for `RequestSlot` and `SplitSlot` (the block's
    // alignment, checked) and holds `sl.layout.size()` bytes (checked against the
    // caller's `storage_size`, which the caller guarantees writable and unused by any
    // live engine until `swapdio_engine_fini`). The offsets come from `Layout::extend`,
    // so each array is in bounds and aligned; every element is written before the slices
    // are formed, and the slices do not overlap.
    let storage = unsafe {
        let pool = base.cast::<RequestSlot>();
        let sync = base.add(sl.sync_off).cast::<RequestSlot>();
        let splits = base.add(sl.splits_off).cast::<SplitSlot>();
        for i in 0..sc.pool {
            pool.add(i).write(RequestSlot::new());
        }
        for i in 0..sc.sync {
            sync.add(i).write(RequestSlot::new());
        }
        for i in 0..sc.splits {
            splits.add(i).write(SplitSlot::new());
        }
        StorageRef {
            pool: core::slice::from_raw_parts(pool, sc.pool),
            sync: core::slice::from_raw_parts(sync, sc.sync),
            splits: core::slice::from_raw_parts(splits, sc.splits),
        }
    };
    let engine = Engine::new(map, storage, backend, page_ops).map_err(engine_error)?;
    let obj = mem.cast::<EngineObj>();
    // SAFETY: `mem` is non-null, aligned for and at least as large as `EngineObj`
    // (checked), writable by the caller's contract.
    unsafe { obj.write(EngineObj { magic: AtomicU64::new(ENGINE_MAGIC), heap, engine }) };
    // Caller memory at an address a finished `swapdio_engine_new` engine once had.
    #[cfg(feature = "std")]
    if heap[0].ptr.is_null() {
        crate::heap::forget(obj.cast());
    }
    Ok(obj.cast::<swapdio_engine>())
}

/// Sets up the engine of an activated swap area in caller memory (no allocation):
/// `mem` sized and aligned by `swapdio_engine_layout`, `cfg->storage` by
/// `swapdio_storage_layout(&cfg->storage_config)`, `cfg->map` from `swapdio_activate`.
/// The request reserve is fixed from now on: nothing on the I/O path allocates (the
/// kernel's `sio_pool_init` at swapon).
///
/// Returns 0 and sets `*out`, or: `-EFAULT` for a NULL pointer, `-EINVAL` for a
/// misaligned or too small block, an unknown mode, an invalid map, an empty pool, a
/// missing callback, unknown capability bits or capabilities that cannot drive the mode,
/// no sync slot (`storage_config.sync` is 0); `-EBUSY` if the storage or `mem` is in use
/// by a live engine (checked before anything is written: the storage carries a claim
/// mark while an engine uses it, cleared by `swapdio_engine_fini`). `*out` is NULL on
/// failure.
///
/// # Safety
/// `mem` holds `mem_size` writable bytes and `cfg->storage` holds `cfg->storage_size`
/// writable bytes, both initialised (zeroed, or left by `swapdio_engine_fini`: their
/// first words are read for a live engine's marks); `cfg->map` holds `cfg->map_entries`
/// entries. All three stay valid and untouched until `swapdio_engine_fini` returns 0.
/// The callbacks are valid, thread-safe functions for as long.
#[no_mangle]
pub unsafe extern "C" fn swapdio_engine_init(
    mem: *mut c_void,
    mem_size: usize,
    cfg: *const swapdio_engine_config,
    out: *mut *mut swapdio_engine,
) -> c_int {
    let make = |cfg: &swapdio_engine_config| {
        // SAFETY: `mem`, `mem_size` and the tables are valid as this function requires.
        unsafe { init_in(mem.cast::<u8>(), mem_size, cfg, [NO_HEAP; 3]) }
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { construct(cfg, out, make) }
}

/// The constructors' shared contract: `*out` is set to NULL first, `cfg` is read, and
/// the handle `make` returns is stored only on success.
///
/// # Safety
/// `out` is NULL or writable; `cfg` is NULL or valid for the call.
pub(crate) unsafe fn construct(
    cfg: *const swapdio_engine_config,
    out: *mut *mut swapdio_engine,
    make: impl FnOnce(&swapdio_engine_config) -> Result<*mut swapdio_engine, c_int>,
) -> c_int {
    if let Err(e) = check_ptr(out.cast_const()) {
        return e;
    }
    // SAFETY: `out` is non-null, aligned (checked) and writable by the contract.
    unsafe { out.write(core::ptr::null_mut()) };
    // SAFETY: forwarded from this function's contract.
    let cfg = match unsafe { ref_from(cfg) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    match make(cfg) {
        Ok(e) => {
            // SAFETY: as above.
            unsafe { out.write(e) };
            0
        }
        Err(e) => e,
    }
}

/// The engine object behind a C handle.
///
/// # Safety
/// `e` is NULL or was returned by `swapdio_engine_init`/`swapdio_engine_new` and not
/// yet finished with `swapdio_engine_fini`.
unsafe fn obj<'a>(e: *const swapdio_engine) -> Result<&'a EngineObj, i32> {
    // SAFETY: forwarded from this function's contract.
    let o = unsafe { ref_from(e.cast::<EngineObj>()) }?;
    if o.magic.load(Ordering::Acquire) != ENGINE_MAGIC {
        return Err(neg(EINVAL));
    }
    Ok(o)
}

/// Runs `f` on the engine, returning its code, or the handle's error code.
///
/// # Safety
/// As [`obj`].
unsafe fn with_engine(e: *const swapdio_engine, f: impl FnOnce(&CEngine) -> i32) -> c_int {
    // SAFETY: forwarded.
    match unsafe { obj(e) } {
        Ok(o) => f(&o.engine),
        Err(code) => code,
    }
}

/// Stops new I/O and ends the engine once every request is released (swapoff). With
/// requests still held or in flight it returns `-EBUSY` and the engine stays usable
/// for completions: call again after they arrive. On 0 the engine, storage and map
/// memory belong to the caller again (or are freed, for `swapdio_engine_new`).
///
/// Returns 0, `-EBUSY`, `-EFAULT` for NULL, `-EINVAL` for a handle already finished
/// (also for a `swapdio_engine_new` engine, whose freed block is then not read: the
/// library remembers the engines it allocated).
///
/// # Safety
/// `engine` is NULL, a live handle, or a handle this function finished (a
/// `swapdio_engine_init` handle's memory must still be readable); no other call on it
/// runs concurrently.
#[no_mangle]
pub unsafe extern "C" fn swapdio_engine_fini(engine: *mut swapdio_engine) -> c_int {
    // An engine `swapdio_engine_new` allocated is looked up before its memory is read:
    // once finished its block is freed, and a second fini must not touch it.
    #[cfg(feature = "std")]
    let _heap_guard = match crate::heap::enter_fini(engine) {
        Ok(guard) => guard,
        Err(e) => return e,
    };
    // SAFETY: forwarded from this function's contract.
    let o = match unsafe { obj(engine) } {
        Ok(o) => o,
        Err(e) => return e,
    };
    if o.engine.deactivate().is_err() {
        return neg(EBUSY);
    }
    if o.magic.compare_exchange(ENGINE_MAGIC, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return neg(EINVAL);
    }
    let heap = o.heap;
    let p = engine.cast::<EngineObj>();
    // SAFETY: `p` is the live engine object (magic checked and now cleared so no other
    // call uses it); nothing borrows it past this point.
    unsafe { core::ptr::drop_in_place(core::ptr::addr_of_mut!((*p).engine)) };
    #[cfg(feature = "std")]
    if let Some(guard) = _heap_guard {
        guard.finished();
    }
    #[cfg(feature = "std")]
    for b in heap.iter().rev() {
        if !b.ptr.is_null() {
            // SAFETY: the block was allocated by `swapdio_engine_new` with this exact
            // layout, and nothing refers to it any more (the engine was dropped).
            unsafe { std::alloc::dealloc(b.ptr, Layout::from_size_align_unchecked(b.size, b.align)) };
        }
    }
    #[cfg(not(feature = "std"))]
    let _ = heap;
    0
}

/// Looks up where a slot lives in the engine's map, O(log n) (O(1) for sequential
/// slots).
///
/// Returns 0, `-EINVAL` for a slot outside the map, `-EFAULT` for NULL.
///
/// # Safety
/// `engine` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn swapdio_engine_lookup(
    engine: *const swapdio_engine,
    slot: u64,
    out: *mut swapdio_run,
) -> c_int {
    if let Err(e) = check_ptr(out.cast_const()) {
        return e;
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| match e.map().lookup(slot) {
            Ok(r) => {
                // SAFETY: `out` is non-null, aligned and writable (contract).
                out.write(swapdio_run { pos: r.pos, pages: r.pages });
                0
            }
            Err(_) => neg(EINVAL),
        })
    }
}

/// Starts a plug (`blk_start_plug`): folios written or read with it are batched into
/// requests of up to `SWAPDIO_MAX_SEGMENTS` adjacent folios, submitted when the next
/// folio is not adjacent, when full, or at `swapdio_plug_finish`.
///
/// Returns 0, `-EFAULT` for NULL, `-EINVAL` if misaligned, `-EBUSY` for a started plug
/// that still holds an unsubmitted batch (finish it first: restarting would strand its
/// requests and block swapoff).
///
/// # Safety
/// `plug` is NULL, or zeroed writable memory (`struct swapdio_plug plug = { 0 };`), or a
/// plug started before: its first word is read to refuse restarting a plug that holds a
/// batch.
#[no_mangle]
pub unsafe extern "C" fn swapdio_plug_start(plug: *mut swapdio_plug) -> c_int {
    if plug.is_null() {
        return neg(EFAULT);
    }
    if !plug.is_aligned() {
        return neg(EINVAL);
    }
    // SAFETY: non-null and aligned; `plug_state` reads the opaque state only behind the
    // magic that `swapdio_plug_start` writes.
    if let Ok(state) = unsafe { plug_state(plug) } {
        if state.held_folios() > 0 {
            return neg(EBUSY);
        }
    }
    // SAFETY: non-null and aligned (checked), writable (contract); the opaque bytes are
    // large and aligned enough for a `PlugState` (asserted above).
    unsafe {
        core::ptr::addr_of_mut!((*plug).opaque).cast::<PlugState>().write(PlugState::new());
        core::ptr::addr_of_mut!((*plug).magic).write(PLUG_MAGIC);
    }
    0
}

/// The plug state of a started plug.
///
/// # Safety
/// `plug` is NULL or a valid plug that nothing else accesses for `'a`.
unsafe fn plug_state<'a>(plug: *mut swapdio_plug) -> Result<&'a mut PlugState<'a>, i32> {
    if plug.is_null() {
        return Err(neg(EFAULT));
    }
    if !plug.is_aligned() {
        return Err(neg(EINVAL));
    }
    // SAFETY: non-null, aligned; readable by the contract.
    if unsafe { core::ptr::addr_of!((*plug).magic).read() } != PLUG_MAGIC {
        return Err(neg(EINVAL));
    }
    // SAFETY: the magic says `swapdio_plug_start` wrote a `PlugState` here and only
    // this library changed it since; access is exclusive by the contract.
    Ok(unsafe { &mut *core::ptr::addr_of_mut!((*plug).opaque).cast::<PlugState>() })
}

/// Submits the plug's held batch, if any (`swap_write_unplug`, `swap_read_unplug`,
/// `blk_finish_plug`). The plug may be used again with the same engine.
///
/// Returns 0, `-EFAULT` for NULL, `-EINVAL` for a plug not started or started with
/// another engine.
///
/// # Safety
/// `engine` is NULL or a live handle; `plug` is NULL or a plug owned by this thread.
#[no_mangle]
pub unsafe extern "C" fn swapdio_plug_finish(engine: *const swapdio_engine, plug: *mut swapdio_plug) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| match plug_state(plug) {
            Ok(p) => {
                let r = e.finish_plug(p);
                p.unbind();
                r.map_or_else(swap_error, |()| 0)
            }
            Err(code) => code,
        })
    }
}

fn folio_of(f: &swapdio_folio) -> Result<Folio, i32> {
    if f.flags & !SWAPDIO_FOLIO_ALL != 0 {
        return Err(neg(EINVAL));
    }
    Ok(Folio { id: FolioId(f.id), slot: f.slot, pages: f.pages, zero_page: f.flags & SWAPDIO_FOLIO_ZERO_PAGE != 0 })
}

fn fs_of(v: u32) -> Result<FsContext, i32> {
    match v {
        x if x == swapdio_fs_context::MayEnterFs as u32 => Ok(FsContext::MayEnterFs),
        x if x == swapdio_fs_context::NoFs as u32 => Ok(FsContext::NoFs),
        _ => Err(neg(EINVAL)),
    }
}

/// A C plug keeps no borrow of its engine between calls (C memory has no drop, and a
/// copy or a plug outliving its engine must not hold a reference): the engine binds it
/// for the call, this unbinds it after.
fn unbind(plug: Option<&mut PlugState<'_>>) {
    if let Some(p) = plug {
        p.unbind();
    }
}

/// Decodes the common arguments of the I/O entry points.
///
/// # Safety
/// `folio` is NULL or valid; `plug` is NULL or a plug owned by this thread.
unsafe fn io_args<'a>(
    folio: *const swapdio_folio,
    plug: *mut swapdio_plug,
) -> Result<(Folio, Option<&'a mut PlugState<'a>>), i32> {
    // SAFETY: forwarded.
    let folio = folio_of(unsafe { ref_from(folio) }?)?;
    let plug = if plug.is_null() {
        None
    } else {
        // SAFETY: forwarded.
        Some(unsafe { plug_state(plug) }?)
    };
    Ok((folio, plug))
}

/// Swap-out of a locked, dirty folio (`swap_writepage`). With `plug` NULL the request
/// is submitted at once.
///
/// On 0 the engine owns the write: it counted `SWAPDIO_EVENT_KIND_SWAP_OUT`, started
/// writeback, unlocked the folio, pinned it, and queued or submitted it; completion ends
/// writeback (redirtying and clearing reclaim on failure). On error the folio is
/// untouched, still locked and dirty: `-EINVAL` (bad folio, slot 0 or outside the map,
/// unknown flag or `fs` value, deactivated, foreign plug), `-ENOBUFS` (no free request:
/// any held batch was submitted, retry after a completion), `-EDEADLK` (a `NOFS` context
/// for a backend that enters the filesystem), `-ERANGE` (too fragmented), `-EFAULT`.
///
/// # Safety
/// `engine` is NULL or a live handle; `folio` is NULL or valid; `plug` is NULL or a
/// plug owned by this thread.
#[no_mangle]
pub unsafe extern "C" fn swapdio_write(
    engine: *const swapdio_engine,
    plug: *mut swapdio_plug,
    folio: *const swapdio_folio,
    fs: u32,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| {
            let fs = match fs_of(fs) {
                Ok(fs) => fs,
                Err(code) => return code,
            };
            match io_args(folio, plug) {
                Ok((f, mut p)) => {
                    let r = e.write(p.as_deref_mut(), f, fs);
                    unbind(p);
                    r.map_or_else(swap_error, |()| 0)
                }
                Err(code) => code,
            }
        })
    }
}

/// Swap-in into a locked, not uptodate folio (`swap_read_folio`). On 0, completion
/// marks it uptodate and unlocks it, or unlocks it without uptodate on failure. Errors
/// as `swapdio_write` (a zero-page folio is `-EINVAL`); the folio is untouched and
/// still locked.
///
/// # Safety
/// As `swapdio_write`.
#[no_mangle]
pub unsafe extern "C" fn swapdio_read(
    engine: *const swapdio_engine,
    plug: *mut swapdio_plug,
    folio: *const swapdio_folio,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| match io_args(folio, plug) {
            Ok((f, mut p)) => {
                let r = e.read(p.as_deref_mut(), f);
                unbind(p);
                r.map_or_else(swap_error, |()| 0)
            }
            Err(code) => code,
        })
    }
}

/// The condition a synchronous caller waits for, handed to its wait callback; test it
/// with `swapdio_sync_done`. Valid only during the wait callback.
// Not `#[repr(C)]` on purpose: cbindgen declares it as an incomplete type.
pub struct swapdio_sync_wait<'a> {
    done: &'a dyn Fn() -> bool,
}

/// The wait callback of the synchronous entry points: sleep until
/// `swapdio_sync_done(cond)` is true (e.g. `wait_event(wq, swapdio_sync_done(cond))`),
/// woken by `swapdio_page_ops.wake` with `SWAPDIO_WAKE_SYNC`. Returning early is allowed
/// (the engine calls it again while the request is in flight), so a waiter with no wake
/// source may sleep for a short time and return. Context: the sync caller's (may sleep).
pub type swapdio_wait_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, cond: *const swapdio_sync_wait<'_>)>;

/// Whether the synchronous request behind `cond` has completed: 1 or 0 (0 for NULL).
/// Callable from the wait callback only, any number of times; never sleeps.
///
/// # Safety
/// `cond` is NULL or the pointer the wait callback received, during that call.
#[no_mangle]
pub unsafe extern "C" fn swapdio_sync_done(cond: *const swapdio_sync_wait<'_>) -> c_int {
    // SAFETY: a non-NULL `cond` is the live condition of the current wait call.
    match unsafe { cond.as_ref() } {
        Some(c) => c_int::from((c.done)()),
        None => 0,
    }
}

/// The core's condition wait through the C callback (`wait` is non-NULL).
fn waiter(
    wait: unsafe extern "C" fn(*mut c_void, *const swapdio_sync_wait<'_>),
    ctx: *mut c_void,
) -> impl FnMut(&dyn Fn() -> bool) {
    move |done| {
        let cond = swapdio_sync_wait { done };
        // SAFETY: `wait` is a valid function by the sync entry points' contract; `cond`
        // outlives the call.
        unsafe { wait(ctx, &cond) }
    }
}

/// Synchronous swap-out (`WB_SYNC_ALL`, `REQ_SYNC`): submits from a sync slot, calls
/// `wait(wait_ctx, cond)` until `swapdio_sync_done(cond)`, and returns the request's
/// outcome: 0, the I/O error (`-EIO` for short transfers), or `swapdio_write`'s errors
/// (`-EINVAL` also for a NULL `wait`: the engine never spins). The page actions are
/// those of an async write.
///
/// # Safety
/// As `swapdio_write`; `wait` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn swapdio_write_sync(
    engine: *const swapdio_engine,
    folio: *const swapdio_folio,
    fs: u32,
    wait: swapdio_wait_fn,
    wait_ctx: *mut c_void,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| {
            let fs = match fs_of(fs) {
                Ok(fs) => fs,
                Err(code) => return code,
            };
            match (io_args(folio, core::ptr::null_mut()), wait) {
                (Ok((f, _)), Some(w)) => e.write_sync_until(f, fs, waiter(w, wait_ctx)).map_or_else(swap_error, |()| 0),
                (Ok(_), None) => neg(EINVAL),
                (Err(code), _) => code,
            }
        })
    }
}

/// Synchronous swap-in (`swap_read_folio` with `SWP_SYNCHRONOUS_IO`); see
/// `swapdio_write_sync`.
///
/// # Safety
/// As `swapdio_write_sync`.
#[no_mangle]
pub unsafe extern "C" fn swapdio_read_sync(
    engine: *const swapdio_engine,
    folio: *const swapdio_folio,
    wait: swapdio_wait_fn,
    wait_ctx: *mut c_void,
) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| match (io_args(folio, core::ptr::null_mut()), wait) {
            (Ok((f, _)), Some(w)) => e.read_sync_until(f, waiter(w, wait_ctx)).map_or_else(swap_error, |()| 0),
            (Ok(_), None) => neg(EINVAL),
            (Err(code), _) => code,
        })
    }
}

/// The completion entry point (`ki_complete` / `sio_write_complete` /
/// `sio_read_complete`): `result` is the bytes transferred (>= 0) or a negative errno
/// (values below `-4095` and `SWAPDIO_QUEUED` count as `-EIO`). Callable from any
/// thread, also before the backend's `submit` has returned. Exactly one completion per
/// request is accepted.
///
/// Returns 0, `-EALREADY` for a request not in flight (double or stale completion:
/// nothing is done), `-EINVAL` for an id that names no request slot or has a bit set
/// outside the 16-bit slot index and 47-bit generation (bit 63), `-EFAULT` for NULL.
/// A stale id is refused until its slot was reused `2^47` times.
///
/// # Safety
/// `engine` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swapdio_complete(engine: *const swapdio_engine, request_id: u64, result: i64) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| match RequestId::from_u64(request_id).map(|id| e.complete(id, io_result(result))) {
            // Bits outside the slot index and generation: forged, never produced.
            Err(swapdio::MalformedId(_)) => neg(EINVAL),
            Ok(Ok(())) => 0,
            Ok(Err(swapdio::CompleteError::NotInFlight { .. })) => neg(EALREADY),
            Ok(Err(swapdio::CompleteError::UnknownRequest(_))) => neg(EINVAL),
        })
    }
}

/// Stops new I/O (later writes and reads fail with `-EINVAL`) and reports whether every
/// request has been released (swapoff's drain). Call again after completions.
///
/// Returns 0 once drained, `-EBUSY` while requests are held or in flight, `-EFAULT`.
///
/// # Safety
/// `engine` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn swapdio_deactivate(engine: *const swapdio_engine) -> c_int {
    // SAFETY: forwarded from this function's contract.
    unsafe { with_engine(engine, |e| e.deactivate().map_or_else(swap_error, |()| 0)) }
}

/// Counters since activation and the pool's state.
///
/// Returns 0, `-EFAULT` for NULL.
///
/// # Safety
/// `engine` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn swapdio_engine_stats(engine: *const swapdio_engine, out: *mut swapdio_stats) -> c_int {
    if let Err(e) = check_ptr(out.cast_const()) {
        return e;
    }
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_engine(engine, |e| {
            let s = e.stats();
            let st = swapdio_stats {
                requests_submitted: s.requests_submitted,
                requests_completed: s.requests_completed,
                pages_out: s.pages_out,
                pages_in: s.pages_in,
                write_failures: s.write_failures,
                read_failures: s.read_failures,
                short_transfers: s.short_transfers,
                would_block: s.would_block,
                rejected_completions: s.rejected_completions,
                in_flight: e.in_flight() as u64,
                pool_free: e.pool_free() as u64,
            };
            // SAFETY: `out` is non-null, aligned and writable (contract).
            out.write(st);
            0
        })
    }
}
