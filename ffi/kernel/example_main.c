// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * swapdio_example: swap out and in thousands of real folios through the swapdio
 * engine, with bios on a block device (device mode) and with direct-I/O kiocbs on a
 * swap file (file mode), and verify every byte. Each check prints a PASS or FAIL line;
 * loading fails if any check failed.
 *
 *   insmod swapdio_example.ko dev=/dev/vda file=/mnt/swapfile
 *
 * The device is overwritten. After the run, the module prints HOSTMAP lines (the slot
 * map) and a HOSTCHECK line so the disk image can be checked from outside: every slot
 * holds generation EX_FINAL_GEN of the pattern of ex_fill() at its mapped position.
 */
#include <linux/blkdev.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "swapdio_example.h"

#define EX_FINAL_GEN 1
#define EX_MAX_EXTENTS 512

static char *dev;
module_param(dev, charp, 0444);
MODULE_PARM_DESC(dev, "block device for the device-mode test (overwritten)");
static char *file;
module_param(file, charp, 0444);
MODULE_PARM_DESC(file, "swap file on a mounted filesystem for the file-mode test");
static uint pages = 4096;
module_param(pages, uint, 0444);
MODULE_PARM_DESC(pages, "minimum base pages swapped out and in per backend");

static int ex_failures;

#define ex_check(a, cond, fmt, ...)					\
	do {								\
		bool __ok = (cond);					\
		pr_info("swapdio_example: %s %s: " fmt "\n",		\
			__ok ? "PASS" : "FAIL", (a)->name, ##__VA_ARGS__); \
		if (!__ok)						\
			ex_failures++;					\
	} while (0)

/**
 * struct ex_folio - a folio under test and where it lives in the swap area.
 * @folio: the folio (order 0 or 2).
 * @slot: its first swap slot.
 */
struct ex_folio {
	struct folio *folio;
	u64 slot;
};

/* The device-mode layout: a fragmented "swap file" on the raw device, extents whose
 * ends are not 16 KiB aligned so order-2 folios split across them.
 */
static const struct { u64 logical, physical, length; } ex_dev_layout[] = {
	{ 0, 40 << 20, (3 << 20) + (12 << 10) },
	{ (3 << 20) + (12 << 10), 4 << 20, (5 << 20) + (4 << 10) },
	{ (8 << 20) + (16 << 10), 30 << 20, (2 << 20) + (8 << 10) },
	{ (10 << 20) + (24 << 10), 12 << 20, (6 << 20) + (20 << 10) },
};

/*
 * -ENOBUFS: sleep until a request is free, as mempool_alloc() does; the engine's wake
 * (SWAPDIO_WAKE_POOL) wakes us. The timeout only turns a lost wake-up into a FAIL.
 */
static int ex_wait_pool(struct ex_area *a)
{
	struct swapdio_stats st;

	atomic_inc(&a->pool_waits);
	return wait_event_timeout(a->wq, !swapdio_engine_stats(a->engine, &st) &&
				  st.pool_free > 0, 10 * HZ) ? 0 : -ETIMEDOUT;
}

/* One swap-out of a locked folio, the way pageout() prepares it for writepage. */
static int ex_write(struct ex_area *a, struct swapdio_plug *plug,
		    struct ex_folio *f, u32 gen)
{
	struct swapdio_folio sf = {
		.id = (uintptr_t)f->folio, .slot = f->slot,
		.pages = folio_nr_pages(f->folio),
	};
	int rc;

	folio_lock(f->folio);
	ex_fill(f->folio, f->slot, gen);
	folio_mark_dirty(f->folio);
	folio_clear_dirty_for_io(f->folio);
	folio_set_reclaim(f->folio);
	while ((rc = swapdio_write(a->engine, plug, &sf,
				   SWAPDIO_FS_CONTEXT_MAY_ENTER_FS)) == -ENOBUFS) {
		rc = ex_wait_pool(a);
		if (rc)
			break;
	}
	if (rc) {
		folio_unlock(f->folio);
		pr_err("swapdio_example: %s: write of slot %llu: %s\n", a->name,
		       f->slot, swapdio_strerror(rc));
	}
	return rc;
}

/* One swap-in into a locked folio that is not uptodate. */
static int ex_read(struct ex_area *a, struct swapdio_plug *plug, struct ex_folio *f)
{
	struct swapdio_folio sf = {
		.id = (uintptr_t)f->folio, .slot = f->slot,
		.pages = folio_nr_pages(f->folio),
	};
	int rc;

	folio_lock(f->folio);
	folio_clear_uptodate(f->folio);
	ex_fill(f->folio, 0, 0xee);
	while ((rc = swapdio_read(a->engine, plug, &sf)) == -ENOBUFS) {
		rc = ex_wait_pool(a);
		if (rc)
			break;
	}
	if (rc)
		folio_unlock(f->folio);
	return rc;
}

/* Waits for a read to complete (the folio unlocked) and checks its bytes. */
static u64 ex_read_wait(struct ex_folio *f, u32 gen, bool *uptodate)
{
	u64 bad;

	folio_lock(f->folio);
	*uptodate = folio_test_uptodate(f->folio);
	bad = ex_mismatched_bytes(f->folio, f->slot, gen);
	folio_unlock(f->folio);
	return bad;
}

/* Writes folios [from, to) with one plug and waits for their writeback. */
static int ex_write_range(struct ex_area *a, struct ex_folio *fs, size_t from,
			  size_t to, u32 gen)
{
	struct swapdio_plug plug = { 0 };
	size_t i;
	int rc = swapdio_plug_start(&plug);

	for (i = from; !rc && i < to; i++)
		rc = ex_write(a, &plug, &fs[i], gen);
	if (swapdio_plug_finish(a->engine, &plug) && !rc)
		rc = -EINVAL;
	for (i = from; i < to; i++)
		folio_wait_writeback(fs[i].folio);
	return rc;
}

/* Reads folios [from, to) back with one plug; returns mismatched bytes. */
static u64 ex_read_range(struct ex_area *a, struct ex_folio *fs, size_t from,
			 size_t to, u32 gen, size_t *not_uptodate)
{
	struct swapdio_plug plug = { 0 };
	u64 bad = 0;
	size_t i, done = from;
	int rc = swapdio_plug_start(&plug);
	bool ok;

	for (i = from; !rc && i < to; i++) {
		rc = ex_read(a, &plug, &fs[i]);
		if (rc)
			break;
	}
	done = i;
	swapdio_plug_finish(a->engine, &plug);
	*not_uptodate = to - done;
	for (i = from; i < done; i++) {
		bad += ex_read_wait(&fs[i], gen, &ok);
		*not_uptodate += !ok;
	}
	return bad;
}

static bool ex_clean(struct folio *folio)
{
	return !folio_test_dirty(folio) && !folio_test_writeback(folio) &&
	       !folio_test_locked(folio) && folio_ref_count(folio) == 1;
}

/* The engine of a swap area: header written with the library, read back, activated. */
static int ex_activate(struct ex_area *a, const struct swapdio_extent *ext,
		       size_t nr, u64 size, u32 mode_req,
		       const struct swapdio_backend_ops *ops)
{
	/* The kernel's pool of 32; file mode keeps its kiocbs in the requests' private space. */
	struct swapdio_storage_config sc = {
		.pool = 32, .sync = 4, .splits = 8,
		.backend_data = ops == &ex_kio_ops ? ex_kio_size : 0,
	};
	struct swapdio_activation_report rep = {};
	struct swapdio_mem_layout el, sl, ml;
	struct swapdio_engine_config cfg = {};
	struct swapdio_activation act = {};
	u8 *hdr = (u8 *)__get_free_page(GFP_KERNEL | __GFP_ZERO);
	/* Slot 0, the header: a device position in device mode, file offset 0 in file mode. */
	u64 hpos = a->mode == SWAPDIO_MODE_DEVICE ? ext[0].physical : 0;
	int rc;

	if (!hdr)
		return -ENOMEM;
	rc = swapdio_write_header(hdr, PAGE_SIZE, size >> PAGE_SHIFT, NULL, NULL);
	if (!rc)
		rc = ex_sync_rw(a, true, hpos, hdr);
	memset(hdr, 0, PAGE_SIZE);
	if (!rc)
		rc = ex_sync_rw(a, false, hpos, hdr);
	ex_check(a, !rc, "swap header written with swapdio_write_header() and read back (%d)", rc);
	if (rc)
		goto out;
	act = (struct swapdio_activation) {
		.header = hdr, .header_len = PAGE_SIZE, .file_size = size,
		.extents = ext, .nr_extents = nr, .main_device = ext[0].device,
		.layout = SWAPDIO_LAYOUT_EXTENTS, .mode = mode_req, .caps = ops->caps,
	};
	rc = swapdio_map_layout(nr, &ml);
	if (rc)
		goto out;
	a->map = kmalloc(ml.size, GFP_KERNEL);
	rc = a->map ? swapdio_activate(&act, a->map, nr, &rep) : -ENOMEM;
	ex_check(a, !rc, "activated: %llu slots, %llu extents, mode %u (%s)", rep.slots,
		 rep.extents, rep.mode, swapdio_refusal_str(rep.refusal));
	if (rc)
		goto out;
	a->mode = rep.mode;
	a->slots = rep.slots;
	a->map_entries = rep.map_entries;
	rc = swapdio_engine_layout(&el) ?: swapdio_storage_layout(&sc, &sl);
	if (rc)
		goto out;
	a->engine_mem = kzalloc(el.size, GFP_KERNEL);
	/* Storage is larger than a page: vmalloc (see ffi/README.md). */
	a->storage = vzalloc(sl.size);
	if (!a->engine_mem || !a->storage) {
		rc = -ENOMEM;
		goto out;
	}
	cfg = (struct swapdio_engine_config) {
		.map = a->map, .map_entries = a->map_entries, .storage = a->storage,
		.storage_size = sl.size, .storage_config = sc, .backend = ops,
		.backend_ctx = a, .page_ops = &ex_page_ops, .page_ctx = a,
		.mode = a->mode,
	};
	rc = swapdio_engine_init(a->engine_mem, el.size, &cfg, &a->engine);
	ex_check(a, !rc,
		 "engine set up in kmalloc/vmalloc memory, storage %zu B, %zu B private per request (%d)",
		 sl.size, sc.backend_data, rc);
out:
	free_page((unsigned long)hdr);
	return rc;
}

/*
 * The sync wait: sleep until the engine's condition holds; ex_wake() (the page ops'
 * wake, called by the completion) wakes us. Never spins, also on one CPU.
 */
static void ex_wait(void *ctx, const struct swapdio_sync_wait *cond)
{
	struct ex_area *a = ctx;

	wait_event(a->wq, swapdio_sync_done(cond));
}

static void ex_sync_io(struct ex_area *a, struct ex_folio *fs, size_t n)
{
	u64 bad = 0;
	size_t i, count = min_t(size_t, n, 64);
	int rc = 0;

	/* Completions from a workqueue: on one CPU a spinning waiter would starve it. */
	a->defer_to_wq = true;
	for (i = 0; !rc && i < count; i++) {
		struct swapdio_folio sf = {
			.id = (uintptr_t)fs[i].folio, .slot = fs[i].slot,
			.pages = folio_nr_pages(fs[i].folio),
		};

		folio_lock(fs[i].folio);
		ex_fill(fs[i].folio, fs[i].slot, 3);
		folio_clear_dirty_for_io(fs[i].folio);
		rc = swapdio_write_sync(a->engine, &sf, SWAPDIO_FS_CONTEXT_MAY_ENTER_FS,
					ex_wait, a);
		folio_wait_writeback(fs[i].folio);
		if (rc)
			break;
		folio_lock(fs[i].folio);
		folio_clear_uptodate(fs[i].folio);
		ex_fill(fs[i].folio, 0, 0xee);
		rc = swapdio_read_sync(a->engine, &sf, ex_wait, a);
		folio_lock(fs[i].folio);
		bad += ex_mismatched_bytes(fs[i].folio, fs[i].slot, 3);
		folio_unlock(fs[i].folio);
	}
	a->defer_to_wq = false;
	ex_check(a, !rc && !bad,
		 "sync write+read of %zu folios, workqueue completions: rc %d, %llu mismatched bytes",
		 count, rc, bad);
}

/* An injected write failure: the folio is redirtied, nothing lost, rewritten. */
static void ex_write_failure(struct ex_area *a, struct ex_folio *fs, size_t n)
{
	int before = atomic_read(&a->write_failed);
	size_t nu;
	u64 bad;
	int rc;

	atomic_set(&a->fail_writes, 1);
	rc = ex_write_range(a, fs, 0, 1, 4);
	ex_check(a, !rc && atomic_read(&a->write_failed) == before + 1 &&
		 folio_test_dirty(fs[0].folio) && !folio_test_reclaim(fs[0].folio) &&
		 !folio_test_writeback(fs[0].folio),
		 "injected write failure: folio redirtied, reclaim cleared, writeback ended");
	rc = ex_write_range(a, fs, 0, 1, 4);
	bad = ex_read_range(a, fs, 0, 1, 4, &nu);
	ex_check(a, !rc && !bad && !nu && !folio_test_dirty(fs[0].folio),
		 "failed write rewritten and read back: %llu mismatched bytes", bad);
}

/* A short transfer fails the folios it did not cover; they are written again. */
static void ex_short_io(struct ex_area *a, struct ex_folio *fs, size_t n)
{
	int before = atomic_read(&a->write_failed);
	size_t i, nu, count = min_t(size_t, n, 8);
	int failed, dirty = 0, rc;
	u64 bad;

	atomic_set(&a->short_next, 1);
	rc = ex_write_range(a, fs, 0, count, 5);
	failed = atomic_read(&a->write_failed) - before;
	for (i = 0; i < count; i++)
		dirty += folio_test_dirty(fs[i].folio);
	ex_check(a, !rc && failed >= 1 && dirty == failed,
		 "short write: %d folio(s) failed and redirtied", failed);
	rc = ex_write_range(a, fs, 0, count, 5);
	bad = ex_read_range(a, fs, 0, count, 5, &nu);
	ex_check(a, !rc && !bad && !nu, "short-written folios rewritten: %llu mismatched bytes",
		 bad);
}

/* Completions that run before submit returns: submit waits for its own completion. */
static void ex_racing(struct ex_area *a, struct ex_folio *fs, size_t n)
{
	int before = atomic_read(&a->races);
	size_t nu, count = min_t(size_t, n, 256);
	u64 bad;
	int rc;

	atomic_set(&a->wait_in_submit, 16);
	rc = ex_write_range(a, fs, 0, count, 6);
	atomic_set(&a->wait_in_submit, 16);
	bad = ex_read_range(a, fs, 0, count, 6, &nu);
	atomic_set(&a->wait_in_submit, 0);
	ex_check(a, !rc && !bad && !nu && atomic_read(&a->races) - before >= 2,
		 "completions racing submit: %d raced, %llu mismatched bytes",
		 atomic_read(&a->races) - before, bad);
}

static void ex_report_host_map(struct ex_area *a)
{
	size_t i;

	for (i = 0; i < a->map_entries; i++)
		pr_info("swapdio_example: HOSTMAP %s %llu %llu %llu\n", a->name,
			a->map[i].first_slot, a->map[i].pages, a->map[i].start);
	pr_info("swapdio_example: HOSTCHECK %s slots=%llu gen=%u\n", a->name, a->slots,
		EX_FINAL_GEN);
}

/* Runs every check on an activated area. */
static void ex_run(struct ex_area *a, u32 min_pages)
{
	struct ex_folio *fs;
	size_t n = 0, i, nu, split = 0, clean = 0;
	u64 slot = 1, bad, covered = 0;
	int rc;

	fs = kvcalloc(a->slots, sizeof(*fs), GFP_KERNEL);
	if (!fs) {
		ex_check(a, false, "out of memory");
		return;
	}
	/* Order-0 folios, and an order-2 folio every fifth (large folios split at extents). */
	while (slot < a->slots) {
		unsigned int order = (n % 5 == 4 && slot + 4 <= a->slots) ? 2 : 0;
		struct swapdio_run run;

		fs[n].folio = folio_alloc(GFP_KERNEL, order);
		if (!fs[n].folio)
			break;
		fs[n].slot = slot;
		if (order && !swapdio_engine_lookup(a->engine, slot, &run) && run.pages < 4)
			split++;
		slot += 1 << order;
		n++;
	}
	covered = slot - 1;
	ex_check(a, covered >= min_pages,
		 "%zu folios over %llu pages, %zu order-2 folios split across extents",
		 n, covered, split);
	if (a->mode == SWAPDIO_MODE_DEVICE)
		ex_check(a, split > 0, "large folios split across extents: %zu", split);

	ex_write_failure(a, fs, n);
	ex_short_io(a, fs, n);
	ex_racing(a, fs, n);
	ex_sync_io(a, fs, n);

	/* The main pass: every slot written with the final generation, read back. */
	rc = ex_write_range(a, fs, 0, n, EX_FINAL_GEN);
	ex_check(a, !rc, "plugged write of %llu pages (%d)", covered, rc);
	for (i = 0; i < n; i++)
		clean += ex_clean(fs[i].folio);
	ex_check(a, clean == n, "after writeback: %zu of %zu folios clean, unlocked, unpinned",
		 clean, n);
	bad = ex_read_range(a, fs, 0, n, EX_FINAL_GEN, &nu);
	ex_check(a, !bad && !nu,
		 "plugged read of %llu pages: %llu mismatched bytes, %zu not uptodate",
		 covered, bad, nu);

	rc = swapdio_deactivate(a->engine);
	ex_check(a, !rc, "deactivated with every request released (%d)", rc);
	{
		struct swapdio_plug plug = { 0 };

		swapdio_plug_start(&plug);
		folio_lock(fs[0].folio);
		rc = swapdio_write(a->engine, &plug, &(struct swapdio_folio) {
			.id = (uintptr_t)fs[0].folio, .slot = fs[0].slot, .pages = 1 },
			SWAPDIO_FS_CONTEXT_MAY_ENTER_FS);
		folio_unlock(fs[0].folio);
		swapdio_plug_finish(a->engine, &plug);
		ex_check(a, rc == -EINVAL, "write after deactivation refused (%d)", rc);
	}
	ex_check(a, atomic64_read(&a->pins) == atomic64_read(&a->unpins),
		 "pins balanced: %lld/%lld", atomic64_read(&a->pins),
		 atomic64_read(&a->unpins));
	pr_info("swapdio_example: INFO %s: %d completions in hard-irq, %d page ops in hard-irq with IRQs off, %d completions raced submit, %d sleeps for a free request, %d wake-ups\n",
		a->name, atomic_read(&a->hardirq_completions),
		atomic_read(&a->hardirq_page_ops), atomic_read(&a->races),
		atomic_read(&a->pool_waits), atomic_read(&a->wakes));
	ex_report_host_map(a);
	for (i = 0; i < n; i++)
		folio_put(fs[i].folio);
	kvfree(fs);
}

static void ex_area_init(struct ex_area *a, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->name = name;
	init_waitqueue_head(&a->wq);
}

static void ex_area_fini(struct ex_area *a)
{
	int rc = a->engine ? swapdio_engine_fini(a->engine) : 0;

	if (a->engine)
		ex_check(a, !rc, "engine finished (%d)", rc);
	kfree(a->engine_mem);
	vfree(a->storage);
	kfree(a->map);
}

static void ex_device_test(const char *path)
{
	struct swapdio_extent ext[ARRAY_SIZE(ex_dev_layout)];
	struct ex_area *a = kmalloc(sizeof(*a), GFP_KERNEL);
	u64 size = 0;
	size_t i;

	if (!a)
		return;
	ex_area_init(a, "device");
	a->mode = SWAPDIO_MODE_DEVICE;
	a->bdev = blkdev_get_by_path(path, FMODE_READ | FMODE_WRITE | FMODE_EXCL, a);
	if (IS_ERR(a->bdev)) {
		ex_check(a, false, "open %s: %ld", path, PTR_ERR(a->bdev));
		kfree(a);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(ex_dev_layout); i++) {
		ext[i] = (struct swapdio_extent) {
			.logical = ex_dev_layout[i].logical,
			.physical = ex_dev_layout[i].physical,
			.length = ex_dev_layout[i].length, .device = a->bdev->bd_dev,
		};
		size += ext[i].length;
	}
	if (!ex_bio_setup(a)) {
		if (!ex_activate(a, ext, ARRAY_SIZE(ext), size,
				 SWAPDIO_MODE_REQUEST_DEVICE, &ex_bio_ops))
			ex_run(a, pages);
		ex_area_fini(a);
		ex_bio_teardown(a);
	}
	blkdev_put(a->bdev, FMODE_READ | FMODE_WRITE | FMODE_EXCL);
	kfree(a);
}

static void ex_file_test(const char *path)
{
	struct ex_area *a = kmalloc(sizeof(*a), GFP_KERNEL);
	struct swapdio_extent *ext = kvcalloc(EX_MAX_EXTENTS, sizeof(*ext), GFP_KERNEL);
	size_t nr = 0;
	u64 size = 0;
	int rc;

	if (!a || !ext)
		goto out;
	ex_area_init(a, "file");
	a->mode = SWAPDIO_MODE_FILE;
	a->file = filp_open(path, O_RDWR | O_LARGEFILE, 0);
	if (IS_ERR(a->file)) {
		ex_check(a, false, "open %s: %ld", path, PTR_ERR(a->file));
		goto out;
	}
	rc = ex_file_extents(a->file, ext, EX_MAX_EXTENTS, &nr, &size);
	ex_check(a, !rc, "%zu extents of %s from bmap() (%d)", nr, path, rc);
	if (!rc) {
		if (!ex_activate(a, ext, nr, size, SWAPDIO_MODE_REQUEST_FILE, &ex_kio_ops))
			ex_run(a, pages);
		ex_area_fini(a);
	}
	filp_close(a->file, NULL);
out:
	kvfree(ext);
	kfree(a);
}

/**
 * swapdio_panic_hook() - called by the library should a Rust panic ever happen.
 * @msg: the message (not NUL-terminated).
 * @len: bytes of @msg.
 *
 * No panic is reachable from the API; if one were, the kernel stops here: the
 * library's state could not be trusted any more, and the hook must not return.
 */
void swapdio_panic_hook(const char *msg, size_t len)
{
	pr_emerg("swapdio: %.*s\n", (int)len, msg);
	BUG();
}

static int __init ex_init(void)
{
	pr_info("swapdio_example: swapdio %s, dev=%s file=%s pages=%u\n", swapdio_version(),
		dev ?: "-", file ?: "-", pages);
	if (dev)
		ex_device_test(dev);
	if (file)
		ex_file_test(file);
	pr_info("swapdio_example: RESULT %s (%d failed)\n", ex_failures ? "FAIL" : "PASS",
		ex_failures);
	return ex_failures ? -EIO : 0;
}

static void __exit ex_exit(void)
{
}

module_init(ex_init);
module_exit(ex_exit);
MODULE_LICENSE("Dual MIT/GPL");
MODULE_DESCRIPTION("swapdio example: swap out and in through the swapdio engine");
