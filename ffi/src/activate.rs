//! Activation (swapon) and map lookup through the C ABI.

use core::ffi::c_int;
use core::mem::size_of;

use swapdio::{
    activate_into, ActivationRequest, BackendCaps, ExtentReport, FileAttrs, HeaderLimits, IoMode, Layout, MapEntry,
    ModeRequest, SwapHeader, SwapMap,
};

use crate::callbacks::mode_code;
use crate::error::{neg, refusal_code, EFAULT, EINVAL, EOVERFLOW};
use crate::ptr::{check_ptr, mut_slice, ref_from, slice_from};
use crate::types::{
    swapdio_activation, swapdio_activation_report, swapdio_extent, swapdio_layout, swapdio_map_entry,
    swapdio_mem_layout, swapdio_mode_request, swapdio_refusal, swapdio_run, SWAPDIO_ATTR_ALL, SWAPDIO_CAP_ALL,
    SWAPDIO_EXTENT_ALL, SWAPDIO_NONE,
};

/// Size and alignment of the map storage for `entries` map entries (at most one per
/// extent report, one for an opaque layout, one more than the header's `nr_badpages`
/// for a block device, whose map leaves its bad pages out). The map is an array of
/// `swapdio_map_entry`; this is its `sizeof` and `_Alignof`, checked for overflow.
///
/// Returns 0, `-EFAULT` if `out` is NULL, `-EINVAL` for 0 entries, `-EOVERFLOW`.
///
/// # Safety
/// `out` is NULL or valid for writing one `swapdio_mem_layout`.
#[no_mangle]
pub unsafe extern "C" fn swapdio_map_layout(entries: usize, out: *mut swapdio_mem_layout) -> c_int {
    if let Err(e) = check_ptr(out.cast_const()) {
        return e;
    }
    if entries == 0 {
        return neg(EINVAL);
    }
    let Ok(l) = core::alloc::Layout::array::<MapEntry>(entries) else {
        return neg(EOVERFLOW);
    };
    // SAFETY: `out` is non-null and aligned, and the caller guarantees it is writable.
    unsafe { out.write(swapdio_mem_layout { size: l.size(), align: l.align() }) };
    0
}

fn mode_request(v: u32) -> Option<ModeRequest> {
    Some(match v {
        x if x == swapdio_mode_request::Auto as u32 => ModeRequest::Auto,
        x if x == swapdio_mode_request::Device as u32 => ModeRequest::Device,
        x if x == swapdio_mode_request::File as u32 => ModeRequest::File,
        _ => return None,
    })
}

/// Activates a swap file: the kernel's swapon arithmetic (`iomap_swapfile_activate`,
/// `add_swap_extent`, `read_swap_header`) over the caller's extent reports, writing the
/// slot map into `map` (`map_capacity` entries, see `swapdio_map_layout`) and filling
/// `report` in every case (on refusal: `refusal`, `bad_extent`, `bad_offset`, `error`).
///
/// Returns 0, or a negative errno: `-EINVAL` for every refusal (as swapon(2)) and for
/// bad arguments (unknown enum or flag values, zero lengths, misaligned arrays),
/// `-ENOMEM` if `map` is too small, `-EFAULT` for a NULL pointer.
///
/// # Safety
/// Every non-NULL pointer is valid for the length given next to it (`header_len` bytes,
/// `nr_extents` extents, `map_capacity` entries, one report), and `map` does not overlap
/// the other inputs.
#[no_mangle]
pub unsafe extern "C" fn swapdio_activate(
    act: *const swapdio_activation,
    map: *mut swapdio_map_entry,
    map_capacity: usize,
    report: *mut swapdio_activation_report,
) -> c_int {
    if report.is_null() {
        return neg(EFAULT);
    }
    if !report.is_aligned() {
        return neg(EINVAL);
    }
    let mut rep =
        swapdio_activation_report { bad_extent: SWAPDIO_NONE, bad_offset: SWAPDIO_NONE, ..Default::default() };
    // SAFETY: forwarded from this function's contract.
    let rc = unsafe { activate_checked(act, map, map_capacity, &mut rep) };
    if rc != 0 && rep.refusal == swapdio_refusal::None as u32 {
        rep.refusal = swapdio_refusal::InvalidArgument as u32;
    }
    rep.error = rc;
    // SAFETY: `report` is non-null and aligned, and writable by the caller's contract.
    unsafe { report.write(rep) };
    rc
}

/// # Safety
/// As [`swapdio_activate`].
unsafe fn activate_checked(
    act: *const swapdio_activation,
    map: *mut swapdio_map_entry,
    map_capacity: usize,
    rep: &mut swapdio_activation_report,
) -> c_int {
    // SAFETY: the caller guarantees `act` is NULL or valid.
    let act = match unsafe { ref_from(act) } {
        Ok(a) => a,
        Err(e) => return e,
    };
    // SAFETY: the caller guarantees `header` holds `header_len` bytes.
    let header = match unsafe { slice_from(act.header, act.header_len) } {
        Ok(h) => h,
        Err(e) => return e,
    };
    let layout = match act.layout {
        x if x == swapdio_layout::Extents as u32 => {
            if act.nr_extents == 0 {
                return neg(EINVAL);
            }
            // SAFETY: the caller guarantees `extents` holds `nr_extents` reports.
            let c = match unsafe { slice_from(act.extents, act.nr_extents) } {
                Ok(c) => c,
                Err(e) => return e,
            };
            if let Some(i) = c.iter().position(|e| e.flags & !SWAPDIO_EXTENT_ALL != 0 || e.reserved != 0) {
                rep.bad_extent = i as u64;
                rep.bad_offset = c.get(i).map_or(SWAPDIO_NONE, |e| e.logical);
                return neg(EINVAL);
            }
            // SAFETY: `swapdio_extent` and `ExtentReport` have the same size, alignment
            // and field offsets (asserted in types.rs); every field is an integer or an
            // `ExtentFlags` (a u32 newtype, valid for any bits), so every initialised
            // `swapdio_extent` is a valid `ExtentReport`. The borrow lives no longer than
            // `c`.
            let reports: &[ExtentReport] =
                unsafe { core::slice::from_raw_parts(c.as_ptr().cast::<ExtentReport>(), c.len()) };
            Layout::Extents(reports)
        }
        x if x == swapdio_layout::Opaque as u32 => Layout::Opaque { allocated_bytes: act.allocated_bytes },
        x if x == swapdio_layout::BlockDevice as u32 => Layout::BlockDevice,
        _ => return neg(EINVAL),
    };
    let Some(mode) = mode_request(act.mode) else {
        return neg(EINVAL);
    };
    if act.caps & !SWAPDIO_CAP_ALL != 0 || act.attrs & !SWAPDIO_ATTR_ALL != 0 {
        return neg(EINVAL);
    }
    if map.is_null() {
        return neg(EFAULT);
    }
    if map_capacity == 0 || !map.is_aligned() || map_capacity > isize::MAX as usize / size_of::<MapEntry>() {
        return neg(EINVAL);
    }
    // SAFETY: `map` is non-null and aligned, and the caller guarantees `map_capacity`
    // writable entries (the byte count fits in isize, checked): zeroing initialises
    // memory that may come straight from an allocator.
    unsafe { core::ptr::write_bytes(map, 0, map_capacity) };
    // SAFETY: the entries are initialised (just zeroed) and overlap no other input (the
    // caller's contract); `swapdio_map_entry` has `MapEntry`'s layout (types.rs).
    let out = match unsafe { mut_slice(map.cast::<MapEntry>(), map_capacity) } {
        Ok(m) => m,
        Err(e) => return e,
    };
    let limits = match act.max_pages {
        0 => HeaderLimits::default(),
        max_pages => HeaderLimits { max_pages },
    };
    let req = ActivationRequest {
        header,
        file_size: act.file_size,
        layout,
        main_device: act.main_device,
        caps: BackendCaps::from_bits_truncate(act.caps),
        attrs: FileAttrs::from_bits_truncate(act.attrs),
        mode,
        limits,
    };
    match activate_into(&req, out) {
        Ok((used, r)) => {
            rep.mode = mode_code(r.mode);
            rep.map_entries = used as u64;
            rep.slots = r.slots;
            rep.usable_pages = r.usable_pages;
            rep.header_pages = r.header_pages;
            rep.extents = r.extents;
            rep.span_pages = r.span_pages;
            rep.lowest_page = r.lowest_page;
            rep.highest_page = r.highest_page;
            rep.lost_misaligned = r.lost.misaligned;
            rep.lost_too_short = r.lost.too_short;
            rep.lost_beyond_header = r.lost.beyond_header;
            rep.lost_file_tail = r.lost.file_tail;
            rep.bad_pages = r.bad_pages;
            0
        }
        Err(e) => {
            rep.refusal = refusal_code(&e) as u32;
            rep.bad_extent = e.extent.map_or(SWAPDIO_NONE, |i| i as u64);
            rep.bad_offset = e.offset.unwrap_or(SWAPDIO_NONE);
            -e.errno().0
        }
    }
}

/// Looks a slot up in a map array (as `swapdio_activate` wrote it): where the slot lives
/// and how many pages follow it in the same extent. The array is validated on every
/// call (O(n)); an engine's own lookup (`swapdio_engine_lookup`) is O(log n).
///
/// Returns 0, `-EINVAL` for a slot outside the map (the kernel would `BUG()`), an
/// empty or invalid map, `-EFAULT` for a NULL pointer.
///
/// # Safety
/// `map` is NULL or holds `entries` entries; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn swapdio_map_lookup(
    map: *const swapdio_map_entry,
    entries: usize,
    slot: u64,
    out: *mut swapdio_run,
) -> c_int {
    if out.is_null() || map.is_null() {
        return neg(EFAULT);
    }
    if !out.is_aligned() || entries == 0 {
        return neg(EINVAL);
    }
    // SAFETY: the caller guarantees `map` holds `entries` entries; the layouts of
    // `swapdio_map_entry` and `MapEntry` are identical (types.rs).
    let m = match unsafe { slice_from(map.cast::<MapEntry>(), entries) } {
        Ok(m) => m,
        Err(e) => return e,
    };
    let Ok(map) = SwapMap::new(m, IoMode::Device) else {
        return neg(EINVAL);
    };
    match map.lookup(slot) {
        Ok(run) => {
            // SAFETY: `out` is non-null, aligned and writable by the caller's contract.
            unsafe { out.write(swapdio_run { pos: run.pos, pages: run.pages }) };
            0
        }
        Err(_) => neg(EINVAL),
    }
}

const _: () = assert!(size_of::<swapdio_extent>() == size_of::<ExtentReport>());

/// Writes a fresh swap header into `page` (mkswap: version 1, `last_page = pages - 1`,
/// no bad pages, the `SWAPSPACE2` magic at the end of the page; the boot block before
/// byte 1024 is left as it was), so a C caller can lay out a swap area and then activate
/// it. `uuid` and `label` are NULL (zeros) or 16 bytes each.
///
/// Returns 0, `-EFAULT` for a NULL `page`, `-EINVAL` if `len` is below
/// `SWAPDIO_PAGE_SIZE` or `pages` below 2 (`swapon` refuses such an area).
///
/// # Safety
/// `page` is NULL or holds `len` writable bytes; `uuid` and `label` are NULL or hold 16
/// readable bytes each.
#[no_mangle]
pub unsafe extern "C" fn swapdio_write_header(
    page: *mut u8,
    len: usize,
    pages: u64,
    uuid: *const u8,
    label: *const u8,
) -> c_int {
    let sixteen = |p: *const u8| -> [u8; 16] {
        let mut out = [0u8; 16];
        if !p.is_null() {
            // SAFETY: the caller guarantees a non-NULL `p` holds 16 readable bytes.
            out.copy_from_slice(unsafe { core::slice::from_raw_parts(p, 16) });
        }
        out
    };
    // SAFETY: the caller guarantees `page` holds `len` writable bytes (u8: no alignment).
    let page = match unsafe { mut_slice(page, len) } {
        Ok(p) => p,
        Err(e) => return e,
    };
    let Ok(header) = SwapHeader::new(pages, sixteen(uuid), sixteen(label)) else {
        return neg(EINVAL);
    };
    match header.write(page) {
        Ok(()) => 0,
        Err(_) => neg(EINVAL),
    }
}
