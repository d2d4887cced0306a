/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * swapdio_example: a Linux module driving the swapdio engine with real folios and two
 * real backends (bios to a block device, direct-I/O kiocbs on a swap file). Shared
 * declarations of the three source files.
 */
#ifndef SWAPDIO_EXAMPLE_H
#define SWAPDIO_EXAMPLE_H

#include <linux/bio.h>
#include <linux/fs.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "swapdio.h"

/**
 * struct ex_area - one swap area under test: its engine, backend and counters.
 * @name: "device" or "file", printed in every result line.
 * @engine: the engine, in @engine_mem; NULL before setup and after teardown.
 * @engine_mem: kzalloc'ed memory of the engine (swapdio_engine_layout()).
 * @storage: vzalloc'ed request storage (swapdio_storage_layout()).
 * @map: the slot map written by swapdio_activate().
 * @map_entries: entries of @map.
 * @mode: SWAPDIO_MODE_DEVICE or SWAPDIO_MODE_FILE.
 * @slots: slots of the area, header slot included.
 * @bdev: device mode: the block device bios go to.
 * @file: file mode: the swap file kiocbs go to.
 * @bs: device mode: bio set whose front pad holds struct ex_bio.
 * @wq: sync waiters and callers waiting for a free request; woken by the engine.
 * @fail_writes: the next this many write requests complete with -EIO.
 * @short_next: the next this many requests complete one page short.
 * @wait_in_submit: the next this many submits wait for their own completion.
 * @defer_to_wq: complete from a workqueue instead of the I/O completion context.
 * @races: completions that ran before their submit returned.
 * @hardirq_completions: completions run in hard-irq context.
 * @hardirq_page_ops: page operations run in hard-irq context with IRQs off.
 * @pins: pins taken by the engine.
 * @unpins: pins dropped by the engine.
 * @pool_waits: sleeps for a free request after -ENOBUFS.
 * @wakes: wake-ups from the engine (sync completions, released requests).
 * @write_failed: folios whose write failed (redirtied).
 * @read_failed: folios whose read failed.
 */
struct ex_area {
	const char *name;
	struct swapdio_engine *engine;
	void *engine_mem;
	void *storage;
	struct swapdio_map_entry *map;
	size_t map_entries;
	u32 mode;
	u64 slots;
	struct block_device *bdev;
	struct file *file;
	struct bio_set bs;
	wait_queue_head_t wq;
	atomic_t fail_writes;
	atomic_t short_next;
	atomic_t wait_in_submit;
	bool defer_to_wq;
	atomic_t races;
	atomic_t hardirq_completions;
	atomic_t hardirq_page_ops;
	atomic64_t pins;
	atomic64_t unpins;
	atomic_t pool_waits;
	atomic_t wakes;
	atomic_t write_failed;
	atomic_t read_failed;
};

/* example_pages.c: page operations on real folios, page contents. */
extern const struct swapdio_page_ops ex_page_ops;
void ex_fill(struct folio *folio, u64 slot, u32 gen);
u64 ex_mismatched_bytes(struct folio *folio, u64 slot, u32 gen);

/* example_backends.c: the two backends and their setup. */
extern const struct swapdio_backend_ops ex_bio_ops;
extern const struct swapdio_backend_ops ex_kio_ops;
int ex_bio_setup(struct ex_area *a);
void ex_bio_teardown(struct ex_area *a);
extern const size_t ex_kio_size;
int ex_sync_rw(struct ex_area *a, bool write, u64 pos, void *buf);
int ex_file_extents(struct file *file, struct swapdio_extent *ext, size_t max,
		    size_t *nr, u64 *size);

#endif /* SWAPDIO_EXAMPLE_H */
