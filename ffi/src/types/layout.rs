//! Layout guarantees of every struct shared with C: size, alignment and the offset of
//! every field C reads, stated with `static_assertions` (the same numbers are
//! `_Static_assert`s in ffi/tests/c/layout_check.h), and the structs handed to the core
//! without copying checked field by field against the core's `#[repr(C)]` types.

use core::mem::{align_of, offset_of, size_of};

use static_assertions::{assert_eq_align, assert_eq_size, const_assert_eq};

use swapdio::{ExtentFlags, ExtentReport, MapEntry};

use super::*;

const_assert_eq!(size_of::<swapdio_mem_layout>(), 2 * size_of::<usize>());
const_assert_eq!(align_of::<swapdio_mem_layout>(), align_of::<usize>());
const_assert_eq!(size_of::<swapdio_extent>(), 40);
const_assert_eq!(align_of::<swapdio_extent>(), 8);
const_assert_eq!(size_of::<swapdio_map_entry>(), 24);
const_assert_eq!(align_of::<swapdio_map_entry>(), 8);
const_assert_eq!(size_of::<swapdio_activation_report>(), 136);
const_assert_eq!(align_of::<swapdio_activation_report>(), 8);
const_assert_eq!(size_of::<swapdio_run>(), 16);
const_assert_eq!(align_of::<swapdio_run>(), 8);
const_assert_eq!(size_of::<swapdio_folio>(), 24);
const_assert_eq!(align_of::<swapdio_folio>(), 8);
const_assert_eq!(size_of::<swapdio_segment>(), 16);
const_assert_eq!(align_of::<swapdio_segment>(), 8);
const_assert_eq!(size_of::<swapdio_io>(), 48 + 16 * SWAPDIO_MAX_SEGMENTS);
const_assert_eq!(align_of::<swapdio_io>(), 8);
const_assert_eq!(size_of::<swapdio_event>(), 48);
const_assert_eq!(align_of::<swapdio_event>(), 8);
const_assert_eq!(size_of::<swapdio_storage_config>(), 4 * size_of::<usize>());
const_assert_eq!(align_of::<swapdio_storage_config>(), align_of::<usize>());
const_assert_eq!(size_of::<swapdio_plug>(), 72);
const_assert_eq!(align_of::<swapdio_plug>(), 8);
const_assert_eq!(size_of::<swapdio_stats>(), 88);
const_assert_eq!(align_of::<swapdio_stats>(), 8);
#[cfg(target_pointer_width = "64")]
mod layout64 {
    use super::*;
    const_assert_eq!(offset_of!(swapdio_mem_layout, size), 0);
    const_assert_eq!(offset_of!(swapdio_mem_layout, align), 8);
    const_assert_eq!(offset_of!(swapdio_activation, header), 0);
    const_assert_eq!(offset_of!(swapdio_activation, header_len), 8);
    const_assert_eq!(offset_of!(swapdio_activation, file_size), 16);
    const_assert_eq!(offset_of!(swapdio_activation, extents), 24);
    const_assert_eq!(offset_of!(swapdio_activation, nr_extents), 32);
    const_assert_eq!(offset_of!(swapdio_activation, allocated_bytes), 40);
    const_assert_eq!(offset_of!(swapdio_activation, main_device), 48);
    const_assert_eq!(offset_of!(swapdio_activation, max_pages), 56);
    const_assert_eq!(offset_of!(swapdio_activation, layout), 64);
    const_assert_eq!(offset_of!(swapdio_activation, mode), 68);
    const_assert_eq!(offset_of!(swapdio_activation, caps), 72);
    const_assert_eq!(offset_of!(swapdio_activation, attrs), 76);
    const_assert_eq!(offset_of!(swapdio_io, id), 0);
    const_assert_eq!(offset_of!(swapdio_io, pos), 8);
    const_assert_eq!(offset_of!(swapdio_io, len), 16);
    const_assert_eq!(offset_of!(swapdio_io, direction), 24);
    const_assert_eq!(offset_of!(swapdio_io, flags), 28);
    const_assert_eq!(offset_of!(swapdio_io, mode), 32);
    const_assert_eq!(offset_of!(swapdio_io, nr_segments), 36);
    const_assert_eq!(offset_of!(swapdio_io, segments), 40);
    const_assert_eq!(offset_of!(swapdio_io, backend_data), 552);
    const_assert_eq!(offset_of!(swapdio_backend_ops, caps), 0);
    const_assert_eq!(offset_of!(swapdio_backend_ops, reserved), 4);
    const_assert_eq!(offset_of!(swapdio_backend_ops, submit), 8);
    const_assert_eq!(offset_of!(swapdio_page_ops, set_uptodate), 0);
    const_assert_eq!(offset_of!(swapdio_page_ops, set_dirty), 8);
    const_assert_eq!(offset_of!(swapdio_page_ops, clear_reclaim), 16);
    const_assert_eq!(offset_of!(swapdio_page_ops, start_writeback), 24);
    const_assert_eq!(offset_of!(swapdio_page_ops, end_writeback), 32);
    const_assert_eq!(offset_of!(swapdio_page_ops, unlock), 40);
    const_assert_eq!(offset_of!(swapdio_page_ops, pin), 48);
    const_assert_eq!(offset_of!(swapdio_page_ops, unpin), 56);
    const_assert_eq!(offset_of!(swapdio_page_ops, event), 64);
    const_assert_eq!(offset_of!(swapdio_page_ops, wake), 72);
    const_assert_eq!(offset_of!(swapdio_storage_config, pool), 0);
    const_assert_eq!(offset_of!(swapdio_storage_config, sync), 8);
    const_assert_eq!(offset_of!(swapdio_storage_config, splits), 16);
    const_assert_eq!(offset_of!(swapdio_storage_config, backend_data), 24);
    const_assert_eq!(offset_of!(swapdio_engine_config, map), 0);
    const_assert_eq!(offset_of!(swapdio_engine_config, map_entries), 8);
    const_assert_eq!(offset_of!(swapdio_engine_config, storage), 16);
    const_assert_eq!(offset_of!(swapdio_engine_config, storage_size), 24);
    const_assert_eq!(offset_of!(swapdio_engine_config, storage_config), 32);
    const_assert_eq!(offset_of!(swapdio_engine_config, backend), 64);
    const_assert_eq!(offset_of!(swapdio_engine_config, backend_ctx), 72);
    const_assert_eq!(offset_of!(swapdio_engine_config, page_ops), 80);
    const_assert_eq!(offset_of!(swapdio_engine_config, page_ctx), 88);
    const_assert_eq!(offset_of!(swapdio_engine_config, mode), 96);
    const_assert_eq!(offset_of!(swapdio_engine_config, reserved), 100);

    const_assert_eq!(size_of::<swapdio_activation>(), 80);
    const_assert_eq!(align_of::<swapdio_activation>(), 8);
    const_assert_eq!(size_of::<swapdio_backend_ops>(), 16);
    const_assert_eq!(align_of::<swapdio_backend_ops>(), 8);
    const_assert_eq!(size_of::<swapdio_page_ops>(), 80);
    const_assert_eq!(align_of::<swapdio_page_ops>(), 8);
    const_assert_eq!(size_of::<swapdio_engine_config>(), 104);
    const_assert_eq!(align_of::<swapdio_engine_config>(), 8);
}

// Every field C reads, at the offset C sees (the same `_Static_assert`s are in
// ffi/tests/c/layout_check.h).
const_assert_eq!(offset_of!(swapdio_extent, logical), 0);
const_assert_eq!(offset_of!(swapdio_extent, physical), 8);
const_assert_eq!(offset_of!(swapdio_extent, length), 16);
const_assert_eq!(offset_of!(swapdio_extent, flags), 24);
const_assert_eq!(offset_of!(swapdio_extent, reserved), 28);
const_assert_eq!(offset_of!(swapdio_extent, device), 32);
const_assert_eq!(offset_of!(swapdio_map_entry, first_slot), 0);
const_assert_eq!(offset_of!(swapdio_map_entry, pages), 8);
const_assert_eq!(offset_of!(swapdio_map_entry, start), 16);
const_assert_eq!(offset_of!(swapdio_activation_report, error), 0);
const_assert_eq!(offset_of!(swapdio_activation_report, refusal), 4);
const_assert_eq!(offset_of!(swapdio_activation_report, mode), 8);
const_assert_eq!(offset_of!(swapdio_activation_report, reserved), 12);
const_assert_eq!(offset_of!(swapdio_activation_report, bad_extent), 16);
const_assert_eq!(offset_of!(swapdio_activation_report, bad_offset), 24);
const_assert_eq!(offset_of!(swapdio_activation_report, map_entries), 32);
const_assert_eq!(offset_of!(swapdio_activation_report, slots), 40);
const_assert_eq!(offset_of!(swapdio_activation_report, usable_pages), 48);
const_assert_eq!(offset_of!(swapdio_activation_report, header_pages), 56);
const_assert_eq!(offset_of!(swapdio_activation_report, extents), 64);
const_assert_eq!(offset_of!(swapdio_activation_report, span_pages), 72);
const_assert_eq!(offset_of!(swapdio_activation_report, lowest_page), 80);
const_assert_eq!(offset_of!(swapdio_activation_report, highest_page), 88);
const_assert_eq!(offset_of!(swapdio_activation_report, lost_misaligned), 96);
const_assert_eq!(offset_of!(swapdio_activation_report, lost_too_short), 104);
const_assert_eq!(offset_of!(swapdio_activation_report, lost_beyond_header), 112);
const_assert_eq!(offset_of!(swapdio_activation_report, lost_file_tail), 120);
const_assert_eq!(offset_of!(swapdio_activation_report, bad_pages), 128);
const_assert_eq!(offset_of!(swapdio_run, pos), 0);
const_assert_eq!(offset_of!(swapdio_run, pages), 8);
const_assert_eq!(offset_of!(swapdio_folio, id), 0);
const_assert_eq!(offset_of!(swapdio_folio, slot), 8);
const_assert_eq!(offset_of!(swapdio_folio, pages), 16);
const_assert_eq!(offset_of!(swapdio_folio, flags), 20);
const_assert_eq!(offset_of!(swapdio_segment, folio), 0);
const_assert_eq!(offset_of!(swapdio_segment, offset), 8);
const_assert_eq!(offset_of!(swapdio_segment, len), 12);
const_assert_eq!(offset_of!(swapdio_event, kind), 0);
const_assert_eq!(offset_of!(swapdio_event, failure), 4);
const_assert_eq!(offset_of!(swapdio_event, folio), 8);
const_assert_eq!(offset_of!(swapdio_event, pages), 16);
const_assert_eq!(offset_of!(swapdio_event, error), 24);
const_assert_eq!(offset_of!(swapdio_event, retryable), 28);
const_assert_eq!(offset_of!(swapdio_event, done), 32);
const_assert_eq!(offset_of!(swapdio_event, expected), 40);
const_assert_eq!(offset_of!(swapdio_plug, magic), 0);
const_assert_eq!(offset_of!(swapdio_plug, opaque), 8);
const_assert_eq!(offset_of!(swapdio_stats, requests_submitted), 0);
const_assert_eq!(offset_of!(swapdio_stats, requests_completed), 8);
const_assert_eq!(offset_of!(swapdio_stats, pages_out), 16);
const_assert_eq!(offset_of!(swapdio_stats, pages_in), 24);
const_assert_eq!(offset_of!(swapdio_stats, write_failures), 32);
const_assert_eq!(offset_of!(swapdio_stats, read_failures), 40);
const_assert_eq!(offset_of!(swapdio_stats, short_transfers), 48);
const_assert_eq!(offset_of!(swapdio_stats, would_block), 56);
const_assert_eq!(offset_of!(swapdio_stats, rejected_completions), 64);
const_assert_eq!(offset_of!(swapdio_stats, in_flight), 72);
const_assert_eq!(offset_of!(swapdio_stats, pool_free), 80);

// The extent array is handed to the core without copying, and the map array is the
// core's map: both must match the core's `#[repr(C)]` structs field by field.
assert_eq_size!(ExtentReport, swapdio_extent);
assert_eq_align!(ExtentReport, swapdio_extent);
const_assert_eq!(offset_of!(ExtentReport, logical), offset_of!(swapdio_extent, logical));
const_assert_eq!(offset_of!(ExtentReport, physical), offset_of!(swapdio_extent, physical));
const_assert_eq!(offset_of!(ExtentReport, length), offset_of!(swapdio_extent, length));
const_assert_eq!(offset_of!(ExtentReport, flags), offset_of!(swapdio_extent, flags));
assert_eq_size!(ExtentFlags, u32);
assert_eq_align!(ExtentFlags, u32);
const_assert_eq!(offset_of!(ExtentReport, device), offset_of!(swapdio_extent, device));
assert_eq_size!(MapEntry, swapdio_map_entry);
assert_eq_align!(MapEntry, swapdio_map_entry);
const_assert_eq!(offset_of!(MapEntry, first_slot), offset_of!(swapdio_map_entry, first_slot));
const_assert_eq!(offset_of!(MapEntry, pages), offset_of!(swapdio_map_entry, pages));
const_assert_eq!(offset_of!(MapEntry, start), offset_of!(swapdio_map_entry, start));
