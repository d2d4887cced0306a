/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Compile-time layout checks of every struct shared with Rust: the same sizes and
 * alignments ffi/src/types.rs asserts with const assertions. Needs only swapdio.h
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
SWAPDIO_CHECK_LAYOUT(swapdio_activation_report, 128, 8);
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

/* Field offsets the Rust side hands to the core without copying. */
_Static_assert(__builtin_offsetof(struct swapdio_extent, flags) == 24, "swapdio_extent.flags offset");
_Static_assert(__builtin_offsetof(struct swapdio_extent, device) == 32, "swapdio_extent.device offset");
_Static_assert(__builtin_offsetof(struct swapdio_io, segments) == 40, "swapdio_io.segments offset");
_Static_assert(__builtin_offsetof(struct swapdio_event, error) == 24, "swapdio_event.error offset");
_Static_assert(SWAPDIO_QUEUED == -529, "SWAPDIO_QUEUED is -EIOCBQUEUED");

#endif /* SWAPDIO_LAYOUT_CHECK_H */
