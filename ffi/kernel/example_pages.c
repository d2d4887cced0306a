// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * swapdio_example: the page side. The engine's folio handles are struct folio
 * pointers; every callback is the real folio primitive mm/page_io.c calls. The
 * callbacks may run in hard-irq context with IRQs off (a bio's bi_end_io calls
 * swapdio_complete()), so none of them sleeps.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

#include "swapdio_example.h"

#define EX_MAGIC 0xa5ULL

static struct folio *ex_folio(u64 handle)
{
	return (struct folio *)(uintptr_t)handle;
}

static void ex_note_context(void *ctx)
{
	struct ex_area *a = ctx;

	if (in_hardirq() && irqs_disabled())
		atomic_inc(&a->hardirq_page_ops);
}

static void ex_set_uptodate(void *ctx, u64 folio)
{
	ex_note_context(ctx);
	folio_mark_uptodate(ex_folio(folio));
}

static void ex_set_dirty(void *ctx, u64 folio)
{
	ex_note_context(ctx);
	folio_mark_dirty(ex_folio(folio));
}

static void ex_clear_reclaim(void *ctx, u64 folio)
{
	folio_clear_reclaim(ex_folio(folio));
}

static void ex_start_writeback(void *ctx, u64 folio)
{
	folio_start_writeback(ex_folio(folio));
}

static void ex_end_writeback(void *ctx, u64 folio)
{
	ex_note_context(ctx);
	folio_end_writeback(ex_folio(folio));
}

static void ex_unlock(void *ctx, u64 folio)
{
	folio_unlock(ex_folio(folio));
}

static void ex_pin(void *ctx, u64 folio)
{
	struct ex_area *a = ctx;

	folio_get(ex_folio(folio));
	atomic64_inc(&a->pins);
}

static void ex_unpin(void *ctx, u64 folio)
{
	struct ex_area *a = ctx;

	atomic64_inc(&a->unpins);
	folio_put(ex_folio(folio));
}

static void ex_event(void *ctx, const struct swapdio_event *ev)
{
	struct ex_area *a = ctx;

	if (ev->kind == SWAPDIO_EVENT_KIND_WRITE_FAILED)
		atomic_inc(&a->write_failed);
	else if (ev->kind == SWAPDIO_EVENT_KIND_READ_FAILED)
		atomic_inc(&a->read_failed);
}

/* Completion context: wake sync waiters and callers waiting for a free request. */
static void ex_wake(void *ctx, u32 reason)
{
	struct ex_area *a = ctx;

	atomic_inc(&a->wakes);
	wake_up_all(&a->wq);
}

/* The page operations: the folio_* calls of swap_writepage() and swap_read_folio(). */
const struct swapdio_page_ops ex_page_ops = {
	.set_uptodate = ex_set_uptodate,
	.set_dirty = ex_set_dirty,
	.clear_reclaim = ex_clear_reclaim,
	.start_writeback = ex_start_writeback,
	.end_writeback = ex_end_writeback,
	.unlock = ex_unlock,
	.pin = ex_pin,
	.unpin = ex_unpin,
	.event = ex_event,
	.wake = ex_wake,
};

static u64 ex_word(u64 slot, u32 gen, unsigned int i)
{
	return EX_MAGIC << 56 | (u64)(gen & 0xff) << 48 | slot << 9 | i;
}

/**
 * ex_fill() - stamp every base page of a folio with its slot and a generation.
 * @folio: the folio, @slot its first swap slot.
 * @slot: swap slot of the folio's first page.
 * @gen: generation of the contents (low 8 bits used).
 *
 * Word i of the page at slot s holds 0xa5 << 56 | gen << 48 | s << 9 | i, which the
 * host-side check of the disk image recomputes.
 */
void ex_fill(struct folio *folio, u64 slot, u32 gen)
{
	long p, nr = folio_nr_pages(folio);
	unsigned int i;

	for (p = 0; p < nr; p++) {
		u64 *w = kmap_local_folio(folio, p * PAGE_SIZE);

		for (i = 0; i < PAGE_SIZE / sizeof(u64); i++)
			w[i] = ex_word(slot + p, gen, i);
		kunmap_local(w);
	}
}

/**
 * ex_mismatched_bytes() - count the bytes of a folio that differ from ex_fill().
 * @folio: the folio read back.
 * @slot: swap slot of the folio's first page.
 * @gen: generation expected.
 *
 * Return: the number of bytes that differ (0 if the contents are intact).
 */
u64 ex_mismatched_bytes(struct folio *folio, u64 slot, u32 gen)
{
	long p, nr = folio_nr_pages(folio);
	unsigned int i, b;
	u64 bad = 0;

	for (p = 0; p < nr; p++) {
		u64 *w = kmap_local_folio(folio, p * PAGE_SIZE);

		for (i = 0; i < PAGE_SIZE / sizeof(u64); i++) {
			u64 diff = w[i] ^ ex_word(slot + p, gen, i);

			for (b = 0; diff && b < 8; b++, diff >>= 8)
				bad += (diff & 0xff) != 0;
		}
		kunmap_local(w);
	}
	return bad;
}
