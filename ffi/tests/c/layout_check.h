/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Compile-time layout checks of every struct shared with Rust: the same sizes and
 * alignments ffi/src/types/layout.rs asserts with const assertions. Needs only swapdio.h
 * (works in -ffreestanding -nostdinc kernel-style builds: no <stddef.h>).
 */
#ifndef SWAPDIO_LAYOUT_CHECK_H
#define SWAPDIO_LAYOUT_CHECK_H

#include "swapdio.h"

#define SWAPDIO_CHECK_LAYOUT(type, size, align)                                      \
	_Static_assert(sizeof(struct type) == (size), #type " size differs from Rust"); \
	_Static_assert(_Alignof(struct type) == (align), #type " alignment differs from Rust")

SWAPDIO_CHECK_LAYOUT(swapdio_mem_layout, 2 * sizeof(size_t), _Alignof(size_t));
SWAPDIO_CHECK_LAYOUT(swapdio_extent, 40, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_map_entry, 24, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_activation_report, 136, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_run, 16, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_folio, 24, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_segment, 16, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_io, 48 + 16 * SWAPDIO_MAX_SEGMENTS, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_event, 48, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_storage_config, 4 * sizeof(size_t), _Alignof(size_t));
SWAPDIO_CHECK_LAYOUT(swapdio_plug, 72, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_stats, 88, 8);
#if __SIZEOF_POINTER__ == 8
SWAPDIO_CHECK_LAYOUT(swapdio_activation, 80, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_backend_ops, 16, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_page_ops, 80, 8);
SWAPDIO_CHECK_LAYOUT(swapdio_engine_config, 104, 8);
#endif

/* Every field, at the offset Rust asserts with const_assert_eq!(offset_of!(...)). */
_Static_assert(__builtin_offsetof(struct swapdio_extent, logical) == 0, "swapdio_extent.logical offset");
_Static_assert(__builtin_offsetof(struct swapdio_extent, physical) == 8, "swapdio_extent.physical offset");
_Static_assert(__builtin_offsetof(struct swapdio_extent, length) == 16, "swapdio_extent.length offset");
_Static_assert(__builtin_offsetof(struct swapdio_extent, flags) == 24, "swapdio_extent.flags offset");
_Static_assert(__builtin_offsetof(struct swapdio_extent, reserved) == 28, "swapdio_extent.reserved offset");
_Static_assert(__builtin_offsetof(struct swapdio_extent, device) == 32, "swapdio_extent.device offset");
_Static_assert(__builtin_offsetof(struct swapdio_map_entry, first_slot) == 0, "swapdio_map_entry.first_slot offset");
_Static_assert(__builtin_offsetof(struct swapdio_map_entry, pages) == 8, "swapdio_map_entry.pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_map_entry, start) == 16, "swapdio_map_entry.start offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, error) == 0, "swapdio_activation_report.error offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, refusal) == 4, "swapdio_activation_report.refusal offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, mode) == 8, "swapdio_activation_report.mode offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, reserved) == 12, "swapdio_activation_report.reserved offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, bad_extent) == 16, "swapdio_activation_report.bad_extent offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, bad_offset) == 24, "swapdio_activation_report.bad_offset offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, map_entries) == 32, "swapdio_activation_report.map_entries offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, slots) == 40, "swapdio_activation_report.slots offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, usable_pages) == 48, "swapdio_activation_report.usable_pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, header_pages) == 56, "swapdio_activation_report.header_pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, extents) == 64, "swapdio_activation_report.extents offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, span_pages) == 72, "swapdio_activation_report.span_pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, lowest_page) == 80, "swapdio_activation_report.lowest_page offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, highest_page) == 88, "swapdio_activation_report.highest_page offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, lost_misaligned) == 96, "swapdio_activation_report.lost_misaligned offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, lost_too_short) == 104, "swapdio_activation_report.lost_too_short offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, lost_beyond_header) == 112, "swapdio_activation_report.lost_beyond_header offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, lost_file_tail) == 120, "swapdio_activation_report.lost_file_tail offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation_report, bad_pages) == 128, "swapdio_activation_report.bad_pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_run, pos) == 0, "swapdio_run.pos offset");
_Static_assert(__builtin_offsetof(struct swapdio_run, pages) == 8, "swapdio_run.pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_folio, id) == 0, "swapdio_folio.id offset");
_Static_assert(__builtin_offsetof(struct swapdio_folio, slot) == 8, "swapdio_folio.slot offset");
_Static_assert(__builtin_offsetof(struct swapdio_folio, pages) == 16, "swapdio_folio.pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_folio, flags) == 20, "swapdio_folio.flags offset");
_Static_assert(__builtin_offsetof(struct swapdio_segment, folio) == 0, "swapdio_segment.folio offset");
_Static_assert(__builtin_offsetof(struct swapdio_segment, offset) == 8, "swapdio_segment.offset offset");
_Static_assert(__builtin_offsetof(struct swapdio_segment, len) == 12, "swapdio_segment.len offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, kind) == 0, "swapdio_event.kind offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, failure) == 4, "swapdio_event.failure offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, folio) == 8, "swapdio_event.folio offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, pages) == 16, "swapdio_event.pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, error) == 24, "swapdio_event.error offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, retryable) == 28, "swapdio_event.retryable offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, done) == 32, "swapdio_event.done offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, expected) == 40, "swapdio_event.expected offset");
_Static_assert(__builtin_offsetof(struct swapdio_plug, magic) == 0, "swapdio_plug.magic offset");
_Static_assert(__builtin_offsetof(struct swapdio_plug, opaque) == 8, "swapdio_plug.opaque offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, requests_submitted) == 0, "swapdio_stats.requests_submitted offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, requests_completed) == 8, "swapdio_stats.requests_completed offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, pages_out) == 16, "swapdio_stats.pages_out offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, pages_in) == 24, "swapdio_stats.pages_in offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, write_failures) == 32, "swapdio_stats.write_failures offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, read_failures) == 40, "swapdio_stats.read_failures offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, short_transfers) == 48, "swapdio_stats.short_transfers offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, would_block) == 56, "swapdio_stats.would_block offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, rejected_completions) == 64, "swapdio_stats.rejected_completions offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, in_flight) == 72, "swapdio_stats.in_flight offset");
_Static_assert(__builtin_offsetof(struct swapdio_stats, pool_free) == 80, "swapdio_stats.pool_free offset");
#if __SIZEOF_POINTER__ == 8
_Static_assert(__builtin_offsetof(struct swapdio_mem_layout, size) == 0, "swapdio_mem_layout.size offset");
_Static_assert(__builtin_offsetof(struct swapdio_mem_layout, align) == 8, "swapdio_mem_layout.align offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, header) == 0, "swapdio_activation.header offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, header_len) == 8, "swapdio_activation.header_len offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, file_size) == 16, "swapdio_activation.file_size offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, extents) == 24, "swapdio_activation.extents offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, nr_extents) == 32, "swapdio_activation.nr_extents offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, allocated_bytes) == 40, "swapdio_activation.allocated_bytes offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, main_device) == 48, "swapdio_activation.main_device offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, max_pages) == 56, "swapdio_activation.max_pages offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, layout) == 64, "swapdio_activation.layout offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, mode) == 68, "swapdio_activation.mode offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, caps) == 72, "swapdio_activation.caps offset");
_Static_assert(__builtin_offsetof(struct swapdio_activation, attrs) == 76, "swapdio_activation.attrs offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, id) == 0, "swapdio_io.id offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, pos) == 8, "swapdio_io.pos offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, len) == 16, "swapdio_io.len offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, direction) == 24, "swapdio_io.direction offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, flags) == 28, "swapdio_io.flags offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, mode) == 32, "swapdio_io.mode offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, nr_segments) == 36, "swapdio_io.nr_segments offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, segments) == 40, "swapdio_io.segments offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, backend_data) == 552, "swapdio_io.backend_data offset");
_Static_assert(__builtin_offsetof(struct swapdio_backend_ops, caps) == 0, "swapdio_backend_ops.caps offset");
_Static_assert(__builtin_offsetof(struct swapdio_backend_ops, reserved) == 4, "swapdio_backend_ops.reserved offset");
_Static_assert(__builtin_offsetof(struct swapdio_backend_ops, submit) == 8, "swapdio_backend_ops.submit offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, set_uptodate) == 0, "swapdio_page_ops.set_uptodate offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, set_dirty) == 8, "swapdio_page_ops.set_dirty offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, clear_reclaim) == 16, "swapdio_page_ops.clear_reclaim offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, start_writeback) == 24, "swapdio_page_ops.start_writeback offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, end_writeback) == 32, "swapdio_page_ops.end_writeback offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, unlock) == 40, "swapdio_page_ops.unlock offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, pin) == 48, "swapdio_page_ops.pin offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, unpin) == 56, "swapdio_page_ops.unpin offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, event) == 64, "swapdio_page_ops.event offset");
_Static_assert(__builtin_offsetof(struct swapdio_page_ops, wake) == 72, "swapdio_page_ops.wake offset");
_Static_assert(__builtin_offsetof(struct swapdio_storage_config, pool) == 0, "swapdio_storage_config.pool offset");
_Static_assert(__builtin_offsetof(struct swapdio_storage_config, sync) == 8, "swapdio_storage_config.sync offset");
_Static_assert(__builtin_offsetof(struct swapdio_storage_config, splits) == 16, "swapdio_storage_config.splits offset");
_Static_assert(__builtin_offsetof(struct swapdio_storage_config, backend_data) == 24, "swapdio_storage_config.backend_data offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, map) == 0, "swapdio_engine_config.map offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, map_entries) == 8, "swapdio_engine_config.map_entries offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, storage) == 16, "swapdio_engine_config.storage offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, storage_size) == 24, "swapdio_engine_config.storage_size offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, storage_config) == 32, "swapdio_engine_config.storage_config offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, backend) == 64, "swapdio_engine_config.backend offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, backend_ctx) == 72, "swapdio_engine_config.backend_ctx offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, page_ops) == 80, "swapdio_engine_config.page_ops offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, page_ctx) == 88, "swapdio_engine_config.page_ctx offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, mode) == 96, "swapdio_engine_config.mode offset");
_Static_assert(__builtin_offsetof(struct swapdio_engine_config, reserved) == 100, "swapdio_engine_config.reserved offset");
#endif
_Static_assert(SWAPDIO_QUEUED == -529, "SWAPDIO_QUEUED is -EIOCBQUEUED");

#endif /* SWAPDIO_LAYOUT_CHECK_H */
