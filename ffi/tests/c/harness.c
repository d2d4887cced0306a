/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * swapdio C prototype harness: a userspace imitation of the kernel pieces the engine
 * touches, driving libswapdio.a through include/swapdio.h.
 *
 *  - folios with flag bits (locked, uptodate, dirty, writeback, reclaim) and a refcount
 *    that pins raise and unpins drop;
 *  - a block device in memory whose requests complete synchronously, from a second
 *    pthread (the interrupt context), or from that thread *before submit returns*;
 *    with injected errors, short transfers and overruns, and double completions;
 *  - an MM that activates a swap file from extent reports, swaps folios out with plugs
 *    (retrying redirtied ones), swaps them back in (retrying failed reads), while a
 *    second thread does synchronous I/O, then drains and deactivates.
 *
 * Every folio's flags are checked at its completion callback, and content after every
 * successful read; pins must balance at the end. Any broken rule aborts.
 *
 * Usage: harness [SEED [ERROR_PERCENT [SHORT_PERCENT]]]
 * Build: gcc -std=gnu11 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *        -I include -I ffi/tests/c harness.c libswapdio.a -lpthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swapdio.h"
#include "layout_check.h"

#define PAGE SWAPDIO_PAGE_SIZE
#define DISK_BYTES (16u << 20)

#define CHECK_PROGRAM "harness"
#include "check.h"

/* The no_std archive calls this on a Rust panic (never expected). */
void swapdio_panic_hook(const char *msg, size_t len)
{
	fprintf(stderr, "harness: swapdio panic: %.*s\n", (int)len, msg);
	abort();
}

/* ---- folios ---------------------------------------------------------------------- */

enum {
	PG_LOCKED = 1u << 0,
	PG_UPTODATE = 1u << 1,
	PG_DIRTY = 1u << 2,
	PG_WRITEBACK = 1u << 3,
	PG_RECLAIM = 1u << 4,
};

enum folio_dir { DIR_NONE, DIR_WRITE, DIR_READ };

struct folio {
	_Atomic unsigned int flags;
	_Atomic int refcount;     /* 1 (the owner) + pins */
	_Atomic int expect_fail;  /* set by the device for every part that failed */
	_Atomic int done;         /* set by the completion callback after its checks */
	enum folio_dir dir;       /* written by the submitter before submitting */
	uint64_t slot;
	unsigned int pages;
	unsigned int version;     /* content version being written / expected on read */
	unsigned char *data;
};

static void flag_set(struct folio *f, unsigned int bit)
{
	atomic_fetch_or(&f->flags, bit);
}

static void flag_clear(struct folio *f, unsigned int bit)
{
	atomic_fetch_and(&f->flags, ~bit);
}

static int flag_test(struct folio *f, unsigned int bit)
{
	return (atomic_load(&f->flags) & bit) != 0;
}

static unsigned char pattern(uint64_t slot, unsigned int version, size_t byte)
{
	return (unsigned char)(slot * 131u + version * 7u + byte * 13u + (byte >> 12));
}

static void fill(struct folio *f)
{
	for (unsigned int p = 0; p < f->pages; p++)
		for (size_t b = 0; b < PAGE; b++)
			f->data[(size_t)p * PAGE + b] = pattern(f->slot + p, f->version, b);
}

static int content_ok(const struct folio *f)
{
	for (unsigned int p = 0; p < f->pages; p++)
		for (size_t b = 0; b < PAGE; b++)
			if (f->data[(size_t)p * PAGE + b] != pattern(f->slot + p, f->version, b))
				return 0;
	return 1;
}

/* ---- the world ------------------------------------------------------------------- */

struct req {
	struct req *next;
	uint64_t id;
	uint32_t direction;
	uint64_t pos, len;
	uint32_t nr;
	struct swapdio_segment segs[SWAPDIO_MAX_SEGMENTS];
	int64_t result;
	int double_complete;
	_Atomic int completed;
};

struct world {
	const struct swapdio_engine *engine;
	unsigned char *disk;
	struct folio *folios;   /* indexed by folio id */
	size_t nr_folios;

	/* device */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct req *head, *tail;
	int stop;
	uint64_t rng;
	unsigned int error_pct, short_pct;

	/* accounting */
	_Atomic long pins, unpins;
	_Atomic long sync_done, async_done, raced, double_completions;
	_Atomic long injected_errors, injected_short, injected_overrun;
	_Atomic long write_failed_events, read_failed_events, swapout_pages, swapin_pages;
};

static struct folio *folio_of(struct world *w, uint64_t id)
{
	CHECK(id < w->nr_folios, "unknown folio id %llu", (unsigned long long)id);
	return &w->folios[id];
}

/* xorshift64*, under w->lock. */
static uint64_t rnd(struct world *w)
{
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 2685821657736338717ull;
}

/* ---- page operations: the folio_* calls, each checking its precondition ----------- */

static void op_set_uptodate(void *ctx, uint64_t id)
{
	struct folio *f = folio_of(ctx, id);
	CHECK(f->dir == DIR_READ, "uptodate on a folio not being read");
	CHECK(flag_test(f, PG_LOCKED), "uptodate on an unlocked folio");
	CHECK(!atomic_load(&f->expect_fail), "uptodate although the device failed part of the read");
	flag_set(f, PG_UPTODATE);
}

static void op_set_dirty(void *ctx, uint64_t id)
{
	struct folio *f = folio_of(ctx, id);
	CHECK(f->dir == DIR_WRITE, "dirty on a folio not being written");
	CHECK(flag_test(f, PG_WRITEBACK), "redirty after writeback ended");
	flag_set(f, PG_DIRTY);
}

static void op_clear_reclaim(void *ctx, uint64_t id)
{
	struct folio *f = folio_of(ctx, id);
	CHECK(flag_test(f, PG_WRITEBACK), "clear_reclaim outside writeback");
	flag_clear(f, PG_RECLAIM);
}

static void op_start_writeback(void *ctx, uint64_t id)
{
	struct folio *f = folio_of(ctx, id);
	CHECK(f->dir == DIR_WRITE, "writeback on a folio not being written");
	CHECK(flag_test(f, PG_LOCKED), "start_writeback on an unlocked folio");
	CHECK(!flag_test(f, PG_WRITEBACK), "start_writeback twice");
	flag_set(f, PG_WRITEBACK);
}

/* Write completion of a whole folio: check the outcome the device produced. */
static void op_end_writeback(void *ctx, uint64_t id)
{
	struct world *w = ctx;
	struct folio *f = folio_of(w, id);
	CHECK(f->dir == DIR_WRITE, "end_writeback on a folio not being written");
	CHECK(flag_test(f, PG_WRITEBACK), "end_writeback without writeback");
	CHECK(!flag_test(f, PG_LOCKED), "write completed on a folio still locked");
	CHECK(atomic_load(&f->refcount) >= 2, "write completed without a pin held");
	if (atomic_load(&f->expect_fail)) {
		CHECK(flag_test(f, PG_DIRTY), "failed write not redirtied (data would be lost)");
		CHECK(!flag_test(f, PG_RECLAIM), "failed write kept its reclaim flag");
	} else {
		CHECK(!flag_test(f, PG_DIRTY), "successful write left the folio dirty");
	}
	flag_clear(f, PG_WRITEBACK);
	atomic_store(&f->done, 1);
}

static void op_unlock(void *ctx, uint64_t id)
{
	struct world *w = ctx;
	struct folio *f = folio_of(w, id);
	CHECK(flag_test(f, PG_LOCKED), "unlock of an unlocked folio");
	if (f->dir == DIR_WRITE) {
		/* swap_writepage: unlocked once writeback started. */
		CHECK(flag_test(f, PG_WRITEBACK), "write unlocked before writeback started");
		flag_clear(f, PG_LOCKED);
		return;
	}
	CHECK(f->dir == DIR_READ, "unlock of a folio without I/O");
	/* Read completion: uptodate exactly when every part succeeded, with the content. */
	CHECK(atomic_load(&f->refcount) >= 2, "read completed without a pin held");
	if (atomic_load(&f->expect_fail)) {
		CHECK(!flag_test(f, PG_UPTODATE), "failed read marked uptodate");
	} else {
		CHECK(flag_test(f, PG_UPTODATE), "successful read not marked uptodate");
		CHECK(content_ok(f), "read of slot %llu returned wrong data", (unsigned long long)f->slot);
	}
	flag_clear(f, PG_LOCKED);
	atomic_store(&f->done, 1);
}

static void op_pin(void *ctx, uint64_t id)
{
	struct world *w = ctx;
	atomic_fetch_add(&folio_of(w, id)->refcount, 1);
	atomic_fetch_add(&w->pins, 1);
}

static void op_unpin(void *ctx, uint64_t id)
{
	struct world *w = ctx;
	int before = atomic_fetch_sub(&folio_of(w, id)->refcount, 1);
	CHECK(before >= 2, "unpin without a pin (refcount was %d)", before);
	atomic_fetch_add(&w->unpins, 1);
}

static void op_event(void *ctx, const struct swapdio_event *ev)
{
	struct world *w = ctx;
	switch (ev->kind) {
	case SWAPDIO_EVENT_KIND_SWAP_OUT:
		atomic_fetch_add(&w->swapout_pages, (long)ev->pages);
		break;
	case SWAPDIO_EVENT_KIND_SWAP_IN:
		atomic_fetch_add(&w->swapin_pages, (long)ev->pages);
		break;
	case SWAPDIO_EVENT_KIND_WRITE_FAILED:
	case SWAPDIO_EVENT_KIND_READ_FAILED: {
		struct folio *f = folio_of(w, ev->folio);
		CHECK(atomic_load(&f->expect_fail), "failure event for a folio the device served");
		CHECK(ev->error < 0, "failure event without an errno");
		CHECK(ev->pages == f->pages, "failure event counts %llu pages, folio has %u",
		      (unsigned long long)ev->pages, f->pages);
		CHECK(ev->failure != SWAPDIO_FAILURE_NONE, "failure event without a failure kind");
		if (ev->kind == SWAPDIO_EVENT_KIND_WRITE_FAILED)
			atomic_fetch_add(&w->write_failed_events, 1);
		else
			atomic_fetch_add(&w->read_failed_events, 1);
		break;
	}
	default:
		FAIL("unknown event kind %u", ev->kind);
	}
}

static const struct swapdio_page_ops page_ops = {
	.set_uptodate = op_set_uptodate,
	.set_dirty = op_set_dirty,
	.clear_reclaim = op_clear_reclaim,
	.start_writeback = op_start_writeback,
	.end_writeback = op_end_writeback,
	.unlock = op_unlock,
	.pin = op_pin,
	.unpin = op_unpin,
	.event = op_event,
};

/* ---- the block device ------------------------------------------------------------ */

/* Moves the bytes of a request (up to `done` of them) and records which folios the
 * transfer failed, before the engine hears of the completion. */
static void transfer(struct world *w, struct req *r)
{
	uint64_t good = r->result < 0 ? 0 : (uint64_t)r->result > r->len ? 0 : (uint64_t)r->result;
	uint64_t off = 0;
	CHECK(r->pos + r->len <= DISK_BYTES, "request beyond the disk");
	for (uint32_t i = 0; i < r->nr; i++) {
		const struct swapdio_segment *s = &r->segs[i];
		struct folio *f = folio_of(w, s->folio);
		uint64_t n = 0;
		if (good > off)
			n = good - off < s->len ? good - off : s->len;
		CHECK(s->offset + (uint64_t)s->len <= (uint64_t)f->pages * PAGE, "segment outside its folio");
		if (r->direction == SWAPDIO_DIRECTION_WRITE)
			memcpy(w->disk + r->pos + off, f->data + s->offset, n);
		else
			memcpy(f->data + s->offset, w->disk + r->pos + off, n);
		if (n < s->len)
			atomic_store(&f->expect_fail, 1);
		off += s->len;
	}
	CHECK(off == r->len, "segments add up to %llu, request says %llu", (unsigned long long)off,
	      (unsigned long long)r->len);
}

static void complete(struct world *w, struct req *r)
{
	int ret;
	transfer(w, r);
	ret = swapdio_complete(w->engine, r->id, r->result);
	CHECK(ret == 0, "swapdio_complete: %s", swapdio_strerror(ret));
	if (r->double_complete) {
		ret = swapdio_complete(w->engine, r->id, r->result);
		CHECK(ret == -EALREADY, "double completion accepted (%d)", ret);
		atomic_fetch_add(&w->double_completions, 1);
	}
}

/* The interrupt context: completes queued requests in order. */
static void *device_thread(void *arg)
{
	struct world *w = arg;
	for (;;) {
		struct req *r;
		pthread_mutex_lock(&w->lock);
		while (!w->head && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		r = w->head;
		if (!r) {
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		w->head = r->next;
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		complete(w, r);
		/* The submitter of a raced request waits for this, then frees it. */
		if (atomic_exchange(&r->completed, 1) == 2)
			free(r);
	}
}

/* ->swap_rw: decide the fate of the request, then finish it now or queue it. */
static int64_t dev_submit(void *ctx, const struct swapdio_io *io)
{
	struct world *w = ctx;
	struct req *r = calloc(1, sizeof(*r));
	uint64_t fate, path;
	CHECK(r, "out of memory");
	CHECK(io->flags & SWAPDIO_REQ_SWAP, "request without REQ_SWAP");
	CHECK(io->mode == SWAPDIO_MODE_DEVICE, "device-mode engine sent mode %u", io->mode);
	CHECK(io->nr_segments >= 1 && io->nr_segments <= SWAPDIO_MAX_SEGMENTS, "bad segment count");
	CHECK(io->pos % PAGE == 0 && io->len % PAGE == 0 && io->len > 0, "unaligned request");
	r->id = io->id;
	r->direction = io->direction;
	r->pos = io->pos;
	r->len = io->len;
	r->nr = io->nr_segments;
	memcpy(r->segs, io->segments, sizeof(r->segs[0]) * io->nr_segments);

	pthread_mutex_lock(&w->lock);
	fate = rnd(w) % 100;
	path = rnd(w) % 8;
	r->result = (int64_t)io->len;
	if (fate < w->error_pct) {
		r->result = (rnd(w) & 1) ? -EIO : -EAGAIN;
		atomic_fetch_add(&w->injected_errors, 1);
	} else if (fate < w->error_pct + w->short_pct) {
		r->result = (int64_t)(rnd(w) % io->len); /* any byte count, page aligned or not */
		atomic_fetch_add(&w->injected_short, 1);
	} else if (fate == 99 && w->error_pct) {
		r->result = (int64_t)io->len + PAGE; /* a buggy device: overrun */
		atomic_fetch_add(&w->injected_overrun, 1);
	}
	r->double_complete = (rnd(w) % 16) == 0;
	pthread_mutex_unlock(&w->lock);

	if (path < 2 || ((io->flags & SWAPDIO_REQ_SYNC) && path < 4)) {
		/* Finished during the call. */
		int64_t result = r->result;
		transfer(w, r);
		free(r);
		atomic_fetch_add(&w->sync_done, 1);
		return result;
	}
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = r;
	else
		w->head = r;
	w->tail = r;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (path < 5) {
		/* Completed by the device thread before this call returns. */
		while (atomic_load(&r->completed) == 0)
			sched_yield();
		free(r);
		atomic_fetch_add(&w->raced, 1);
	} else {
		/* Truly asynchronous: the device thread frees it. */
		if (atomic_exchange(&r->completed, 2) == 1)
			free(r);
		atomic_fetch_add(&w->async_done, 1);
	}
	return SWAPDIO_QUEUED;
}

/* ---- swap file setup ------------------------------------------------------------- */

#define FILE_PAGES 1024u
#define EXT0_PAGES 256u
#define EXT1_PAGES 128u /* misaligned on the device: loses one page to trimming */
#define SLOTS (EXT0_PAGES + EXT1_PAGES - 1 + (FILE_PAGES - EXT0_PAGES - EXT1_PAGES))
#define EXT0_PHYS (1u << 20)
#define EXT1_PHYS ((8u << 20) + 512u)
#define EXT2_PHYS (4u << 20)
#define SYNC_FIRST_SLOT (SLOTS - 64u)

static void write_header(unsigned char *page, uint32_t last_page)
{
	uint32_t version = 1, nr_bad = 0;
	memset(page, 0, PAGE);
	memcpy(page + 1024, &version, 4);
	memcpy(page + 1028, &last_page, 4);
	memcpy(page + 1032, &nr_bad, 4);
	memcpy(page + PAGE - 10, "SWAPSPACE2", 10);
}

static void activate(struct swapdio_map_entry *map, size_t cap, struct swapdio_activation_report *rep,
		     const unsigned char *header)
{
	const uint64_t dev = 0x0801;
	struct swapdio_extent ext[3] = {
		{ .logical = 0, .physical = EXT0_PHYS, .length = EXT0_PAGES * PAGE, .device = dev },
		{ .logical = EXT0_PAGES * PAGE, .physical = EXT1_PHYS, .length = EXT1_PAGES * PAGE,
		  .flags = SWAPDIO_EXTENT_UNWRITTEN, .device = dev },
		{ .logical = (EXT0_PAGES + EXT1_PAGES) * PAGE, .physical = EXT2_PHYS,
		  .length = (FILE_PAGES - EXT0_PAGES - EXT1_PAGES) * PAGE + 100, .device = dev },
	};
	struct swapdio_activation act = {
		.header = header,
		.header_len = PAGE,
		.file_size = (uint64_t)FILE_PAGES * PAGE + 100,
		.extents = ext,
		.nr_extents = 3,
		.main_device = dev,
		.layout = SWAPDIO_LAYOUT_EXTENTS,
		.mode = SWAPDIO_MODE_REQUEST_AUTO,
		.caps = SWAPDIO_CAP_DIO_READ | SWAPDIO_CAP_DIO_WRITE | SWAPDIO_CAP_OVERWRITE_IN_PLACE |
			SWAPDIO_CAP_STABLE_ON_COMPLETE,
	};
	struct swapdio_run run;
	int ret;

	/* A refusal names its extent: a shared extent in the middle. */
	ext[1].flags |= SWAPDIO_EXTENT_SHARED;
	ret = swapdio_activate(&act, map, cap, rep);
	CHECK(ret == -EINVAL && rep->refusal == SWAPDIO_REFUSAL_SHARED && rep->bad_extent == 1,
	      "shared extent: ret %d refusal %u (%s) extent %llu", ret, rep->refusal,
	      swapdio_refusal_str(rep->refusal), (unsigned long long)rep->bad_extent);
	ext[1].flags &= ~(uint32_t)SWAPDIO_EXTENT_SHARED;

	ret = swapdio_activate(&act, map, cap, rep);
	CHECK(ret == 0, "activate: %s (%s)", swapdio_strerror(ret), swapdio_refusal_str(rep->refusal));
	CHECK(rep->mode == SWAPDIO_MODE_DEVICE, "mode %u", rep->mode);
	CHECK(rep->slots == SLOTS && rep->usable_pages == SLOTS - 1, "slots %llu",
	      (unsigned long long)rep->slots);
	CHECK(rep->map_entries == 3, "map entries %llu", (unsigned long long)rep->map_entries);
	CHECK(rep->lost_misaligned == PAGE && rep->lost_file_tail == 100, "trim report %llu %llu",
	      (unsigned long long)rep->lost_misaligned, (unsigned long long)rep->lost_file_tail);
	CHECK(rep->bad_extent == SWAPDIO_NONE && rep->refusal == SWAPDIO_REFUSAL_NONE, "refusal on success");
	ret = swapdio_map_lookup(map, rep->map_entries, EXT0_PAGES + 44, &run);
	CHECK(ret == 0 && run.pos == ((8u << 20) + PAGE) + 44u * PAGE && run.pages == EXT1_PAGES - 1 - 44,
	      "lookup in the trimmed extent");
	ret = swapdio_map_lookup(map, rep->map_entries, SLOTS, &run);
	CHECK(ret == -EINVAL, "lookup past the map: %d", ret);
}

/* ---- the MM side ----------------------------------------------------------------- */

/* Completion ran its page actions (done) and every request dropped its pin. */
static void wait_done(struct folio *f)
{
	while (!atomic_load(&f->done) || atomic_load(&f->refcount) != 1)
		sched_yield();
}

static void prepare(struct folio *f, enum folio_dir dir)
{
	CHECK(atomic_load(&f->refcount) == 1, "folio reused with pins held");
	atomic_store(&f->expect_fail, 0);
	atomic_store(&f->done, 0);
	f->dir = dir;
	if (dir == DIR_WRITE) {
		/* pageout(): locked, dirty bit moved to the I/O (folio_clear_dirty_for_io), reclaim. */
		atomic_store(&f->flags, PG_LOCKED | PG_UPTODATE | PG_RECLAIM);
	} else {
		/* swapin: a fresh locked folio, not uptodate, poisoned content. */
		atomic_store(&f->flags, PG_LOCKED);
		memset(f->data, 0xa5, (size_t)f->pages * PAGE);
	}
}

static struct swapdio_folio desc(struct world *w, struct folio *f)
{
	struct swapdio_folio d = { .id = (uint64_t)(f - w->folios), .slot = f->slot, .pages = f->pages };
	return d;
}

/* Queue folios [first, last) in one direction through a plug, retrying -ENOBUFS. */
static void submit_batch(struct world *w, size_t first, size_t last, enum folio_dir dir)
{
	struct swapdio_plug plug = { 0 };
	CHECK(swapdio_plug_start(&plug) == 0, "plug_start");
	for (size_t i = first; i < last; i++) {
		struct folio *f = &w->folios[i];
		struct swapdio_folio d;
		int ret;
		prepare(f, dir);
		d = desc(w, f);
		for (;;) {
			ret = dir == DIR_WRITE
				? swapdio_write(w->engine, &plug, &d, SWAPDIO_FS_CONTEXT_MAY_ENTER_FS)
				: swapdio_read(w->engine, &plug, &d);
			if (ret != -ENOBUFS)
				break;
			/* Pool empty: the held batch was submitted; the folio is untouched. */
			CHECK(flag_test(f, PG_LOCKED) && !flag_test(f, PG_WRITEBACK), "-ENOBUFS touched the folio");
			sched_yield();
		}
		CHECK(ret == 0, "%s of folio %zu: %s", dir == DIR_WRITE ? "write" : "read", i, swapdio_strerror(ret));
	}
	CHECK(swapdio_plug_finish(w->engine, &plug) == 0, "plug_finish");
}

/* Writes (or reads) folios [first, last) until every one succeeded, as reclaim retries
 * redirtied folios and a faulting task retries a failed swapin. */
static unsigned int round_trip(struct world *w, size_t first, size_t last, enum folio_dir dir)
{
	unsigned int rounds = 0;
	size_t *todo = calloc(last - first, sizeof(*todo)), n = 0;
	CHECK(todo, "out of memory");
	for (size_t i = first; i < last; i++)
		todo[n++] = i;
	while (n) {
		size_t k = 0;
		/* A liveness bound, not a speed check: at 45% errors + 45% short I/O a large folio
		 * split over two extents completes only when both parts do (about 1% a round), so
		 * 200 rounds failed ~13% of runs; 5000 rounds leave a false failure at ~1e-22. */
		CHECK(++rounds < 5000, "no progress after 5000 rounds");
		/* Contiguous runs of the todo list go through one plug. */
		for (size_t j = 0; j < n;) {
			size_t e = j + 1;
			while (e < n && todo[e] == todo[e - 1] + 1)
				e++;
			submit_batch(w, todo[j], todo[e - 1] + 1, dir);
			j = e;
		}
		for (size_t j = 0; j < n; j++) {
			struct folio *f = &w->folios[todo[j]];
			wait_done(f);
			if (atomic_load(&f->expect_fail))
				todo[k++] = todo[j];
		}
		n = k;
	}
	free(todo);
	return rounds;
}

struct sync_args {
	struct world *w;
	size_t first, last; /* writer folios; readers follow at + (last - first) */
	long ops;
};

static void wait_yield(void *ctx, const struct swapdio_sync_wait *cond)
{
	(void)ctx;
	if (!swapdio_sync_done(cond))
		sched_yield();
}

/* A second task doing synchronous swap I/O (WB_SYNC_ALL writes, SWP_SYNCHRONOUS_IO reads). */
static void *sync_thread(void *arg)
{
	struct sync_args *a = arg;
	struct world *w = a->w;
	size_t n = a->last - a->first;
	for (unsigned int version = 1; version <= 3; version++) {
		for (size_t i = a->first; i < a->last; i++) {
			struct folio *f = &w->folios[i];
			struct folio *r = &w->folios[i + n];
			struct swapdio_folio d;
			int ret;
			f->version = version;
			fill(f);
			do {
				prepare(f, DIR_WRITE);
				d = desc(w, f);
				ret = swapdio_write_sync(w->engine, &d, SWAPDIO_FS_CONTEXT_MAY_ENTER_FS, wait_yield, NULL);
				CHECK(ret == 0 || ret == -EIO || ret == -EAGAIN || ret == -ENOBUFS, "write_sync: %s",
				      swapdio_strerror(ret));
				if (ret == -ENOBUFS) {
					CHECK(!atomic_load(&f->done), "-ENOBUFS but the write completed");
					/* No free sync slot: untouched. */
					CHECK(flag_test(f, PG_LOCKED), "refused sync write unlocked the folio");
					continue;
				}
				wait_done(f);
				CHECK((ret != 0) == atomic_load(&f->expect_fail), "sync write result %d disagrees", ret);
				a->ops++;
			} while (ret != 0);
			r->version = version;
			do {
				prepare(r, DIR_READ);
				d = desc(w, r);
				ret = swapdio_read_sync(w->engine, &d, wait_yield, NULL);
				CHECK(ret == 0 || ret == -EIO || ret == -EAGAIN || ret == -ENOBUFS, "read_sync: %s",
				      swapdio_strerror(ret));
				if (ret == -ENOBUFS) {
					CHECK(!atomic_load(&r->done), "-ENOBUFS but the read completed");
					continue;
				}
				wait_done(r);
				CHECK((ret != 0) == atomic_load(&r->expect_fail), "sync read result %d disagrees", ret);
				a->ops++;
			} while (ret != 0);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long seed = argc > 1 ? strtoul(argv[1], NULL, 0) : 1;
	struct world w = { .error_pct = argc > 2 ? (unsigned int)strtoul(argv[2], NULL, 0) : 10,
			   .short_pct = argc > 3 ? (unsigned int)strtoul(argv[3], NULL, 0) : 10 };
	struct swapdio_storage_config sc = { .pool = 8, .sync = 2, .splits = 4 };
	struct swapdio_mem_layout el, sl, ml;
	struct swapdio_activation_report rep;
	struct swapdio_map_entry *map;
	struct swapdio_engine *engine;
	struct swapdio_stats st;
	struct sync_args sa;
	pthread_t dev, syn;
	void *emem, *smem;
	size_t nr_async = 0, nr_sync = 32;
	unsigned int rounds_w, rounds_r;
	unsigned char header[PAGE];
	int ret;

	w.rng = seed * 0x9e3779b97f4a7c15ull + 1;
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	w.disk = calloc(1, DISK_BYTES);
	CHECK(w.disk, "out of memory");

	/* swapon: header, extent reports, map in caller memory. */
	write_header(header, FILE_PAGES - 1);
	memcpy(w.disk + EXT0_PHYS, header, PAGE);
	CHECK(swapdio_map_layout(3, &ml) == 0, "map_layout");
	map = aligned_alloc(ml.align, ml.size);
	CHECK(map, "out of memory");
	activate(map, ml.size / sizeof(*map), &rep, header);

	/* Folios: async ones over [1, SYNC_FIRST_SLOT), small and large, two of them
	 * straddling the extent boundaries; sync ones (writer + reader) above. */
	w.folios = calloc(SLOTS * 2, sizeof(*w.folios));
	CHECK(w.folios, "out of memory");
	for (uint64_t slot = 1, k = 0; slot < SYNC_FIRST_SLOT; k++) {
		unsigned int pages = 1;
		if (slot == EXT0_PAGES - 2 || slot == EXT0_PAGES + EXT1_PAGES - 1 - 2)
			pages = 4;
		else if (k % 5 == 4 && !(slot < EXT0_PAGES - 2 && slot + 4 > EXT0_PAGES - 2) &&
			 !(slot < EXT0_PAGES + EXT1_PAGES - 3 && slot + 4 > EXT0_PAGES + EXT1_PAGES - 3))
			pages = 4;
		if (slot + pages > SYNC_FIRST_SLOT)
			pages = 1;
		w.folios[nr_async].slot = slot;
		w.folios[nr_async].pages = pages;
		slot += pages;
		nr_async++;
	}
	w.nr_folios = nr_async * 2 + nr_sync * 2;
	for (size_t i = 0; i < nr_async; i++) {
		w.folios[nr_async + i].slot = w.folios[i].slot; /* readers */
		w.folios[nr_async + i].pages = w.folios[i].pages;
	}
	for (size_t i = 0; i < nr_sync; i++) {
		size_t wi = 2 * nr_async + i, ri = 2 * nr_async + nr_sync + i;
		w.folios[wi].slot = w.folios[ri].slot = SYNC_FIRST_SLOT + i;
		w.folios[wi].pages = w.folios[ri].pages = 1;
	}
	for (size_t i = 0; i < w.nr_folios; i++) {
		w.folios[i].data = malloc((size_t)w.folios[i].pages * PAGE);
		CHECK(w.folios[i].data, "out of memory");
		atomic_store(&w.folios[i].refcount, 1);
	}

	/* The engine in caller memory. */
	CHECK(swapdio_engine_layout(&el) == 0 && swapdio_storage_layout(&sc, &sl) == 0, "layouts");
	emem = aligned_alloc(el.align, (el.size + el.align - 1) / el.align * el.align);
	smem = aligned_alloc(sl.align, (sl.size + sl.align - 1) / sl.align * sl.align);
	CHECK(emem && smem, "out of memory");
	/* Zeroed: engine_init first reads the words where a live engine leaves its marks. */
	memset(emem, 0, (el.size + el.align - 1) / el.align * el.align);
	memset(smem, 0, (sl.size + sl.align - 1) / sl.align * sl.align);
	{
		struct swapdio_backend_ops bops = {
			.caps = SWAPDIO_CAP_DIO_READ | SWAPDIO_CAP_DIO_WRITE | SWAPDIO_CAP_OVERWRITE_IN_PLACE |
				SWAPDIO_CAP_STABLE_ON_COMPLETE,
			.submit = dev_submit,
		};
		struct swapdio_engine_config cfg = {
			.map = map, .map_entries = rep.map_entries, .mode = rep.mode,
			.storage = smem, .storage_size = sl.size, .storage_config = sc,
			.backend = &bops, .backend_ctx = &w, .page_ops = &page_ops, .page_ctx = &w,
		};
		ret = swapdio_engine_init((char *)emem + 1, el.size, &cfg, &engine);
		CHECK(ret == -EINVAL && engine == NULL, "misaligned engine memory accepted: %d", ret);
		ret = swapdio_engine_init(emem, el.size, &cfg, &engine);
		CHECK(ret == 0, "engine_init: %s", swapdio_strerror(ret));
	}
	w.engine = engine;
	{
		struct swapdio_run run;
		struct folio *f = NULL;
		for (size_t i = 0; i < nr_async && !f; i++)
			if (w.folios[i].slot == EXT0_PAGES - 2)
				f = &w.folios[i];
		CHECK(f && f->pages == 4, "no folio straddles the first extent boundary");
		CHECK(swapdio_engine_lookup(engine, f->slot, &run) == 0 && run.pages == 2, "straddling folio");
	}
	CHECK(pthread_create(&dev, NULL, device_thread, &w) == 0, "pthread_create");

	/* Swap out everything (version 1), with a concurrent sync task. */
	sa = (struct sync_args){ .w = &w, .first = 2 * nr_async, .last = 2 * nr_async + nr_sync };
	CHECK(pthread_create(&syn, NULL, sync_thread, &sa) == 0, "pthread_create");
	for (size_t i = 0; i < nr_async; i++) {
		w.folios[i].version = 1;
		fill(&w.folios[i]);
	}
	rounds_w = round_trip(&w, 0, nr_async, DIR_WRITE);
	/* Overwrite every third folio with version 2 (a page swapped out again). */
	for (size_t i = 0; i < nr_async; i += 3) {
		w.folios[i].version = 2;
		fill(&w.folios[i]);
		rounds_w += round_trip(&w, i, i + 1, DIR_WRITE);
	}
	/* Swap everything back in and compare. */
	for (size_t i = 0; i < nr_async; i++)
		w.folios[nr_async + i].version = w.folios[i].version;
	rounds_r = round_trip(&w, nr_async, 2 * nr_async, DIR_READ);
	for (size_t i = nr_async; i < 2 * nr_async; i++)
		CHECK(flag_test(&w.folios[i], PG_UPTODATE) && content_ok(&w.folios[i]), "reader folio %zu", i);
	CHECK(pthread_join(syn, NULL) == 0, "pthread_join");

	/* Bad completions: an id naming no slot; a stale one (already completed). */
	CHECK(swapdio_complete(engine, 1000, PAGE) == -EINVAL, "completion of an unknown slot accepted");
	CHECK(swapdio_complete(engine, 0, PAGE) == -EALREADY, "completion of an idle request accepted");

	/* swapoff: stop new I/O, drain. */
	while ((ret = swapdio_deactivate(engine)) == -EBUSY)
		sched_yield();
	CHECK(ret == 0, "deactivate: %s", swapdio_strerror(ret));
	{
		struct swapdio_folio d = desc(&w, &w.folios[0]);
		prepare(&w.folios[0], DIR_WRITE);
		CHECK(swapdio_write(engine, NULL, &d, SWAPDIO_FS_CONTEXT_MAY_ENTER_FS) == -EINVAL,
		      "write after deactivate accepted");
	}
	pthread_mutex_lock(&w.lock);
	w.stop = 1;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	CHECK(pthread_join(dev, NULL) == 0, "pthread_join");

	/* Pins balanced, counters consistent. */
	for (size_t i = 0; i < w.nr_folios; i++)
		CHECK(atomic_load(&w.folios[i].refcount) == 1, "folio %zu refcount %d", i,
		      atomic_load(&w.folios[i].refcount));
	CHECK(atomic_load(&w.pins) == atomic_load(&w.unpins) && atomic_load(&w.pins) > 0, "pins %ld unpins %ld",
	      atomic_load(&w.pins), atomic_load(&w.unpins));
	CHECK(swapdio_engine_stats(engine, &st) == 0, "stats");
	CHECK(st.requests_submitted == st.requests_completed && st.in_flight == 0 && st.pool_free == sc.pool,
	      "requests %llu submitted, %llu completed", (unsigned long long)st.requests_submitted,
	      (unsigned long long)st.requests_completed);
	/* The unknown slot is refused before any request is looked at: not counted. */
	CHECK(st.rejected_completions == (uint64_t)atomic_load(&w.double_completions) + 1, "rejected %llu",
	      (unsigned long long)st.rejected_completions);
	CHECK(st.pages_out == (uint64_t)atomic_load(&w.swapout_pages), "pages_out %llu vs events %ld",
	      (unsigned long long)st.pages_out, atomic_load(&w.swapout_pages));
	CHECK(st.pages_in == (uint64_t)atomic_load(&w.swapin_pages), "pages_in");
	CHECK(st.write_failures == (uint64_t)atomic_load(&w.write_failed_events), "write failures");
	CHECK(st.read_failures == (uint64_t)atomic_load(&w.read_failed_events), "read failures");
	if (w.error_pct + w.short_pct > 0)
		CHECK(st.write_failures > 0 && st.read_failures > 0, "fault injection injected nothing");
	CHECK(atomic_load(&w.raced) > 0 && atomic_load(&w.async_done) > 0 && atomic_load(&w.sync_done) > 0,
	      "not every completion path ran");

	CHECK(swapdio_engine_fini(engine) == 0, "engine_fini");
	CHECK(swapdio_engine_fini(engine) == -EINVAL, "second engine_fini accepted");

	printf("harness: seed %lu errors %u%% short %u%%: %zu async + %zu sync folios, %u write rounds, "
	       "%u read rounds, %llu requests (%ld in submit, %ld raced, %ld async), %ld double "
	       "completions refused, %ld errors, %ld short, %ld overruns injected, %llu write and %llu "
	       "read failures, %ld sync ops, %ld pins balanced: ok\n",
	       seed, w.error_pct, w.short_pct, nr_async, nr_sync, rounds_w, rounds_r,
	       (unsigned long long)st.requests_submitted, atomic_load(&w.sync_done), atomic_load(&w.raced),
	       atomic_load(&w.async_done), atomic_load(&w.double_completions), atomic_load(&w.injected_errors),
	       atomic_load(&w.injected_short), atomic_load(&w.injected_overrun),
	       (unsigned long long)st.write_failures, (unsigned long long)st.read_failures, sa.ops,
	       atomic_load(&w.pins));

	for (size_t i = 0; i < w.nr_folios; i++)
		free(w.folios[i].data);
	free(w.folios);
	free(emem);
	free(smem);
	free(map);
	free(w.disk);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return 0;
}
