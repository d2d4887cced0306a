/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * swapdio's API contracts tried from C as a careless caller would, each with the answer
 * the header documents:
 *
 *  - a second engine over storage (or engine memory) a live engine uses: -EBUSY, and the
 *    live engine's in-flight request is not erased;
 *  - a plug copied by struct assignment and finished twice: -ESTALE, one request;
 *  - request ids with a bit set outside the 16-bit slot and 47-bit generation: -EINVAL;
 *    with a generation bit flipped: -EALREADY; the real id still completes once;
 *  - an engine with no sync slot: -EINVAL;
 *  - a device-mode map with two entries on the same bytes: -EINVAL at engine init;
 *  - a block device with bad pages: reported (bad_pages), never written (-EINVAL);
 *  - swapdio_engine_fini twice on a swapdio_engine_new engine (std archive,
 *    SWAPDIO_STD): -EINVAL, without reading the freed block (run under valgrind).
 *
 * Build: gcc -std=gnu11 -Wall -Wextra -Werror -I include contracts.c libswapdio.a -lpthread
 * (with the no_std archive, also define swapdio_panic_hook: see harness.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swapdio.h"

#define CHECK_PROGRAM "contracts"
#include "check.h"
#define EXPECT(call, want)                                                                     \
	do {                                                                                   \
		int got_ = (call);                                                             \
		CHECK(got_ == (want), "%s returned %d (%s), expected %d", #call, got_,        \
		      swapdio_strerror(got_), (want));                                         \
	} while (0)

#ifndef SWAPDIO_STD
/* The no_std archive calls this on a Rust panic (never expected). */
void swapdio_panic_hook(const char *msg, size_t len)
{
	fprintf(stderr, "contracts: swapdio panic: %.*s\n", (int)len, msg);
	abort();
}
#endif

#define FOLIOS 16

/* Folio state the page callbacks keep: pins and writeback ends per folio. */
struct world {
	long pins[FOLIOS];
	int writeback[FOLIOS];
	int writeback_ends[FOLIOS];
	uint64_t queued[64];
	size_t nr_queued;
	size_t submitted;
};

static int64_t submit(void *ctx, const struct swapdio_io *io)
{
	struct world *w = ctx;
	CHECK(w->nr_queued < 64, "too many requests");
	w->queued[w->nr_queued++] = io->id;
	w->submitted++;
	return SWAPDIO_QUEUED;
}

static struct world *W(void *ctx, uint64_t folio)
{
	CHECK(folio < FOLIOS, "folio %llu", (unsigned long long)folio);
	return ctx;
}
static void nop(void *ctx, uint64_t folio) { (void)W(ctx, folio); }
static void pin(void *ctx, uint64_t folio) { W(ctx, folio)->pins[folio]++; }
static void unpin(void *ctx, uint64_t folio) { W(ctx, folio)->pins[folio]--; }
static void start_wb(void *ctx, uint64_t folio) { W(ctx, folio)->writeback[folio] = 1; }
static void end_wb(void *ctx, uint64_t folio)
{
	struct world *w = W(ctx, folio);
	CHECK(w->writeback[folio], "folio %llu: writeback ended twice", (unsigned long long)folio);
	w->writeback[folio] = 0;
	w->writeback_ends[folio]++;
}

static const struct swapdio_backend_ops backend = {
	.caps = SWAPDIO_CAP_DIO_READ | SWAPDIO_CAP_DIO_WRITE | SWAPDIO_CAP_OVERWRITE_IN_PLACE |
		SWAPDIO_CAP_STABLE_ON_COMPLETE,
	.submit = submit,
};
static const struct swapdio_page_ops page_ops = {
	.set_uptodate = nop, .set_dirty = nop, .clear_reclaim = nop, .start_writeback = start_wb,
	.end_writeback = end_wb, .unlock = nop, .pin = pin, .unpin = unpin,
};

/* 64 slots at device byte 1 MiB: what swapdio_activate reports for a linear file. */
static const struct swapdio_map_entry map[1] = { { .first_slot = 0, .pages = 64, .start = 1u << 20 } };
static const struct swapdio_storage_config storage_config = { .pool = 4, .sync = 1, .splits = 1 };

/* Zeroed memory of a reported layout (engine_init reads the first words for a live
 * engine's marks). */
static void *block(const struct swapdio_mem_layout *l)
{
	size_t size = (l->size + l->align - 1) / l->align * l->align;
	void *p = aligned_alloc(l->align, size);
	CHECK(p, "out of memory");
	memset(p, 0, size);
	return p;
}

static struct swapdio_engine_config config(struct world *w, void *storage)
{
	struct swapdio_mem_layout sl;
	EXPECT(swapdio_storage_layout(&storage_config, &sl), 0);
	return (struct swapdio_engine_config){
		.map = map, .map_entries = 1, .mode = SWAPDIO_MODE_DEVICE,
		.storage = storage, .storage_size = sl.size, .storage_config = storage_config,
		.backend = &backend, .backend_ctx = w, .page_ops = &page_ops, .page_ctx = w,
	};
}

static int write_folio(struct swapdio_engine *e, struct swapdio_plug *plug, uint64_t folio, uint64_t slot)
{
	struct swapdio_folio f = { .id = folio, .slot = slot, .pages = 1 };
	return swapdio_write(e, plug, &f, SWAPDIO_FS_CONTEXT_MAY_ENTER_FS);
}

static void complete_all(struct swapdio_engine *e, struct world *w)
{
	for (size_t i = 0; i < w->nr_queued; i++)
		EXPECT(swapdio_complete(e, w->queued[i], SWAPDIO_PAGE_SIZE), 0);
	w->nr_queued = 0;
}

int main(void)
{
	struct swapdio_mem_layout el, sl;
	struct swapdio_engine *a, *b;
	struct world w, w2;
	struct swapdio_engine_config cfg;
	void *amem, *bmem, *storage, *storage2;

	memset(&w, 0, sizeof(w));
	memset(&w2, 0, sizeof(w2));
	EXPECT(swapdio_engine_layout(&el), 0);
	EXPECT(swapdio_storage_layout(&storage_config, &sl), 0);
	amem = block(&el);
	bmem = block(&el);
	storage = block(&sl);
	storage2 = block(&sl);
	cfg = config(&w, storage);
	EXPECT(swapdio_engine_init(amem, el.size, &cfg, &a), 0);

	/* 1. A second engine over the storage in use, with a request in flight. */
	EXPECT(write_folio(a, NULL, 1, 3), 0);
	cfg = config(&w2, storage);
	EXPECT(swapdio_engine_init(bmem, el.size, &cfg, &b), -EBUSY);
	CHECK(b == NULL, "*out set on failure");
	/* ... and over the live engine's own memory. */
	cfg = config(&w2, storage2);
	EXPECT(swapdio_engine_init(amem, el.size, &cfg, &b), -EBUSY);
	complete_all(a, &w);
	CHECK(w.writeback_ends[1] == 1 && w.pins[1] == 0, "engine A's request was erased");

	/* 2. A plug copied by struct assignment. */
	{
		struct swapdio_plug plug = { 0 }, copy;
		EXPECT(swapdio_plug_start(&plug), 0);
		EXPECT(write_folio(a, &plug, 2, 10), 0);
		EXPECT(write_folio(a, &plug, 3, 11), 0);
		copy = plug;
		EXPECT(swapdio_plug_finish(a, &plug), 0);
		EXPECT(swapdio_plug_finish(a, &copy), -ESTALE);
		CHECK(w.submitted == 2, "the copied batch was submitted twice: %zu requests", w.submitted);
		/* A copy one folio behind cannot add to the batch; the folio is untouched. */
		EXPECT(write_folio(a, &plug, 4, 20), 0);
		copy = plug;
		EXPECT(write_folio(a, &plug, 5, 21), 0);
		EXPECT(write_folio(a, &copy, 6, 21), -ESTALE);
		CHECK(!w.writeback[6] && w.pins[6] == 0, "refused folio touched");
		EXPECT(swapdio_plug_finish(a, &copy), 0);
		EXPECT(swapdio_plug_finish(a, &plug), 0);
		complete_all(a, &w);
		for (int f = 2; f <= 5; f++)
			CHECK(w.writeback_ends[f] == 1 && w.pins[f] == 0, "folio %d: %d writeback ends, %ld pins", f,
			      w.writeback_ends[f], w.pins[f]);
	}

	/* 3. Forged request ids. */
	{
		uint64_t id;
		EXPECT(write_folio(a, NULL, 7, 30), 0);
		id = w.queued[0];
		CHECK(id >> 63 == 0, "bit 63 set in an engine id");
		EXPECT(swapdio_complete(a, id | 1ull << 63, SWAPDIO_PAGE_SIZE), -EINVAL);
		EXPECT(swapdio_complete(a, id ^ 1ull << 62, SWAPDIO_PAGE_SIZE), -EALREADY);
		EXPECT(swapdio_complete(a, id ^ 1ull << 16, SWAPDIO_PAGE_SIZE), -EALREADY);
		CHECK(w.writeback[7], "a forged id completed the request");
		complete_all(a, &w);
		EXPECT(swapdio_complete(a, id, SWAPDIO_PAGE_SIZE), -EALREADY);
	}

	/* 6. No sync slot. */
	{
		struct swapdio_storage_config no_sync = { .pool = 4, .sync = 0, .splits = 1 };
		struct swapdio_mem_layout nl;
		void *nmem;
		EXPECT(swapdio_storage_layout(&no_sync, &nl), 0);
		nmem = block(&nl);
		cfg = config(&w2, nmem);
		cfg.storage_config = no_sync;
		cfg.storage_size = nl.size;
		EXPECT(swapdio_engine_init(bmem, el.size, &cfg, &b), -EINVAL);
		free(nmem);
	}

	/* 7. A device-mode map with two entries on the same device bytes: -EINVAL. */
	{
		static const struct swapdio_map_entry overlap[3] = {
			{ .first_slot = 0, .pages = 8, .start = 0 },
			{ .first_slot = 8, .pages = 32, .start = 100 * SWAPDIO_PAGE_SIZE },
			{ .first_slot = 40, .pages = 24, .start = 100 * SWAPDIO_PAGE_SIZE },
		};
		cfg = config(&w2, storage2);
		cfg.map = overlap;
		cfg.map_entries = 3;
		EXPECT(swapdio_engine_init(bmem, el.size, &cfg, &b), -EINVAL);
	}

	/* 8. A block device whose header lists bad pages 5 and 6: reported, left out of the
	 * map, and never written (-EINVAL, folio untouched). */
	{
		static unsigned char hdr[SWAPDIO_PAGE_SIZE];
		struct swapdio_map_entry dmap[3];
		struct swapdio_activation_report rep;
		uint32_t bad[2] = { 6, 5 }, nr = 2;
		struct swapdio_activation act = {
			.header = hdr, .header_len = sizeof(hdr), .file_size = 64 * SWAPDIO_PAGE_SIZE,
			.main_device = 1, .layout = SWAPDIO_LAYOUT_BLOCK_DEVICE, .mode = SWAPDIO_MODE_REQUEST_AUTO,
			.caps = backend.caps,
		};
		EXPECT(swapdio_write_header(hdr, sizeof(hdr), 64, NULL, NULL), 0);
		memcpy(hdr + 1032, &nr, 4);
		memcpy(hdr + 1536, bad, sizeof(bad));
		EXPECT(swapdio_activate(&act, dmap, 1, &rep), -ENOMEM);
		EXPECT(swapdio_activate(&act, dmap, 3, &rep), 0);
		CHECK(rep.bad_pages == 2 && rep.usable_pages == 61 && rep.map_entries == 2,
		      "report: %llu bad, %llu usable, %llu entries", (unsigned long long)rep.bad_pages,
		      (unsigned long long)rep.usable_pages, (unsigned long long)rep.map_entries);
		cfg = config(&w2, storage2);
		cfg.map = dmap;
		cfg.map_entries = rep.map_entries;
		EXPECT(swapdio_engine_init(bmem, el.size, &cfg, &b), 0);
		EXPECT(write_folio(b, NULL, 8, 5), -EINVAL);
		EXPECT(write_folio(b, NULL, 9, 6), -EINVAL);
		CHECK(!w2.writeback[8] && !w2.writeback[9] && w2.submitted == 0, "a bad page was written");
		EXPECT(write_folio(b, NULL, 10, 7), 0);
		complete_all(b, &w2);
		EXPECT(swapdio_engine_fini(b), 0);
	}

	/* The storage serves a new engine once A is finished. */
	EXPECT(swapdio_engine_fini(a), 0);
	EXPECT(swapdio_engine_fini(a), -EINVAL);
	cfg = config(&w2, storage);
	EXPECT(swapdio_engine_init(bmem, el.size, &cfg, &b), 0);
	EXPECT(swapdio_engine_fini(b), 0);

#ifdef SWAPDIO_STD
	/* 4. fini twice on an allocated engine: refused from the library's registry. */
	{
		struct swapdio_engine *h;
		cfg = config(&w2, NULL);
		EXPECT(swapdio_engine_new(&cfg, &h), 0);
		EXPECT(swapdio_engine_fini(h), 0);
		EXPECT(swapdio_engine_fini(h), -EINVAL);
		EXPECT(swapdio_engine_fini(h), -EINVAL);
	}
#endif

	for (int f = 0; f < FOLIOS; f++)
		CHECK(w.pins[f] == 0 && w2.pins[f] == 0, "folio %d: pins unbalanced", f);
	free(amem);
	free(bmem);
	free(storage);
	free(storage2);
	printf("contracts: %zu requests, storage sharing, copied plugs, forged ids, no sync slot, overlapping map, bad "
	       "pages%s: ok\n",
	       w.submitted,
#ifdef SWAPDIO_STD
	       ", fini twice on engine_new"
#else
	       ""
#endif
	);
	return 0;
}
