// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * swapdio_swapdev - a swap device whose I/O goes through swapdio.
 *
 * /dev/swapdio0 is a blk-mq disk the kernel swaps to (mkswap + swapon). Its backing
 * store is a swap file on a real filesystem: at load time the module reads the file's
 * swap header and its layout (FIEMAP, through the filesystem), hands both to
 * swapdio_activate() - which refuses holes, shared or inline extents (and unwritten
 * extents in file mode) the way swapon does, with the reason in dmesg - and sets up a
 * swapdio engine over the resulting slot map. Page N of /dev/swapdio0 is slot N of the
 * file; page 0 (the outer swap header) lives in a page of module memory so the file's
 * own header is never written.
 *
 * Every request the swap layer sends is cut into pages, each handed to the engine as
 * a one-page folio; the engine maps slots to positions, batches adjacent pages (plug)
 * and calls the backend:
 *  - device mode: a bio to the filesystem's block device at the mapped position;
 *  - file mode: a direct-I/O kiocb on the file (->write_iter/->read_iter with
 *    IOCB_DIRECT), the ->swap_rw design.
 * The upper request completes when all its pages completed; a failed write fails it
 * (BLK_STS_IOERR) so the swap layer redirties the page and writes it again later.
 *
 * No allocation on the I/O path: engine requests come from the engine's pool, bios and
 * kiocbs (with their bio_vec tables) from an array reserved at load time, one per pool
 * request. When the pool cannot take a whole upper request, ->queue_rq returns
 * BLK_STS_RESOURCE and the queue is rerun when an engine request is released.
 *
 * Contexts (no lockdep in the distribution kernel, so they are written down here):
 *  - ->queue_rq runs in task context and may sleep (BLK_MQ_F_BLOCKING): in the reclaimer
 *    that submitted the swap bio (kswapd, or direct reclaim with PF_MEMALLOC) or in a
 *    kblockd worker. It runs under memalloc_noio_save(), so nothing it calls (the
 *    lower block layer, the filesystem's direct-I/O path) can recurse into swap I/O.
 *    submit_lock (a mutex) serialises it, which makes the pool check exact.
 *  - The engine's page callbacks and swapdio_complete() run in the backend's
 *    completion context: bio ->bi_end_io (hard or soft irq) in device mode, the
 *    iomap completion (irq for reads, the filesystem's dio workqueue for writes) in
 *    file mode, or inside ->queue_rq when a kiocb finished during the call. They only
 *    touch atomics, spinlock_irqsave-protected lists and blk_mq_end_request().
 *  - Module load and unload run in the insmod/rmmod task and may sleep.
 *
 * Module parameters: file= (path of the swap file, required), mode= (device|file),
 * pool= (engine requests), fail_write_every= (fault injection: every Nth backend write
 * completes with -EIO after its I/O ran).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/fiemap.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>

#include "swapdio.h"

#define SWAPDEV_MAX_PAGES SWAPDIO_MAX_SEGMENTS
#define SWAPDEV_FIEMAP_BATCH 256

static char *file;
module_param(file, charp, 0444);
MODULE_PARM_DESC(file, "swap file backing /dev/swapdio0 (made with mkswap)");
static char *mode = "device";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "device: bios to the block device; file: direct-I/O kiocbs on the file");
static unsigned int pool = 32;
module_param(pool, uint, 0444);
MODULE_PARM_DESC(pool, "engine requests reserved at load (the kernel's sio_pool has 32)");
static unsigned int fail_write_every;
module_param(fail_write_every, uint, 0444);
MODULE_PARM_DESC(fail_write_every, "fault injection: fail every Nth backend write with -EIO (0: off)");

struct swapdev_cmd;

/**
 * struct swapdev_seg - one page of an upper request, the engine's "folio".
 * @page: the page of the request's bio_vec.
 * @off: offset of the data in @page.
 * @cmd: the upper request it belongs to.
 * @uptodate: set by the engine's set_uptodate callback (read success).
 *
 * Its address is the folio id the engine hands back to every callback.
 */
struct swapdev_seg {
	struct page *page;
	unsigned int off;
	bool uptodate;
	struct swapdev_cmd *cmd;
};

/**
 * struct swapdev_cmd - per upper request state (blk-mq pdu), reserved with the tag set.
 * @pending: parts not yet completed, plus one held by ->queue_rq while it submits.
 * @failed: some part failed: the request ends with BLK_STS_IOERR.
 * @write: direction of the request.
 * @segs: the pages handed to the engine.
 */
struct swapdev_cmd {
	atomic_t pending;
	bool failed;
	bool write;
	struct swapdev_seg segs[SWAPDEV_MAX_PAGES];
};

struct swapdev;

/**
 * struct swapdev_io - backend state of one engine request, reserved at load time.
 * @dev: the device.
 * @id: the engine's request id, for swapdio_complete().
 * @len: bytes of the request.
 * @inject: fault injection: report -EIO whatever the I/O did.
 * @next: free-list link.
 * @bio: device mode.
 * @iocb: file mode.
 * @bvec: the request's pages.
 */
struct swapdev_io {
	struct swapdev *dev;
	u64 id;
	u64 len;
	bool inject;
	struct swapdev_io *next;
	union {
		struct bio bio;
		struct kiocb iocb;
	};
	struct bio_vec bvec[SWAPDIO_MAX_SEGMENTS];
};

/**
 * struct swapdev - the device.
 * @file: the swap file (held open for the module's life).
 * @bdev: block device of the file's filesystem (device mode I/O goes there).
 * @file_mode: file mode (kiocbs) rather than device mode (bios).
 * @denied_write: file mode: deny_write_access() holds the file.
 * @engine: the swapdio engine.
 * @engine_mem: memory the engine lives in.
 * @storage: the engine's request storage (pool).
 * @map: the slot map swapdio_activate() wrote.
 * @slots: slots of the map (header slot included) = pages of /dev/swapdio0.
 * @ios: backend states, one per pool request.
 * @free_io: free list of @ios.
 * @io_lock: protects @free_io (taken in any context, interrupts off).
 * @header: page 0 of /dev/swapdio0 (the outer swap header), in memory.
 * @submit_lock: serialises ->queue_rq (task context).
 * @pool_wait: woken when an engine request is released.
 * @starved: ->queue_rq answered BLK_STS_RESOURCE: rerun the queue on release.
 * @tag_set: blk-mq tag set (one hardware queue).
 * @disk: /dev/swapdio0.
 * @major: its major number.
 * @pins: engine pins taken.
 * @unpins: engine pins dropped (equal to @pins at unload).
 * @resource: BLK_STS_RESOURCE answers.
 * @backend_writes: backend write requests (for fault injection).
 * @injected: backend writes failed on purpose.
 * @upper_errors: upper requests ended with BLK_STS_IOERR.
 * @ev_out: pages counted by SWAPDIO_EVENT_KIND_SWAP_OUT.
 * @ev_in: pages counted by SWAPDIO_EVENT_KIND_SWAP_IN.
 * @ev_write_failed: pages of failed writes.
 * @ev_read_failed: pages of failed reads.
 */
struct swapdev {
	struct file *file;
	struct block_device *bdev;
	bool file_mode;
	bool denied_write;
	struct swapdio_engine *engine;
	void *engine_mem;
	void *storage;
	struct swapdio_map_entry *map;
	u64 slots;
	struct swapdev_io *ios;
	struct swapdev_io *free_io;
	spinlock_t io_lock;
	struct page *header;
	struct mutex submit_lock;
	wait_queue_head_t pool_wait;
	atomic_t starved;
	struct blk_mq_tag_set tag_set;
	struct gendisk *disk;
	int major;
	atomic64_t pins;
	atomic64_t unpins;
	atomic64_t resource;
	atomic64_t backend_writes;
	atomic64_t injected;
	atomic64_t upper_errors;
	atomic64_t ev_out, ev_in, ev_write_failed, ev_read_failed;
};

static struct swapdev swapdev;

/* The no_std library calls this should a Rust panic ever happen (none is reachable). */
void swapdio_panic_hook(const char *msg, size_t len)
{
	pr_emerg("swapdio panic: %.*s\n", (int)len, msg);
	BUG();
}

/* ---- per upper request ------------------------------------------------------------ */

/**
 * swapdev_cmd_put() - drop one part of an upper request; the last one ends it.
 * @cmd: the request's pdu.
 *
 * Context: any (completion context or ->queue_rq); blk_mq_end_request() is irq-safe.
 */
static void swapdev_cmd_put(struct swapdev_cmd *cmd)
{
	if (atomic_dec_and_test(&cmd->pending)) {
		if (cmd->failed)
			atomic64_inc(&swapdev.upper_errors);
		blk_mq_end_request(blk_mq_rq_from_pdu(cmd),
				   cmd->failed ? BLK_STS_IOERR : BLK_STS_OK);
	}
}

static struct swapdev_seg *seg_of(u64 folio)
{
	return (struct swapdev_seg *)(uintptr_t)folio;
}

/*
 * Page operations. The pages belong to the swap layer, which already holds them
 * locked (reads) or under writeback (writes): the engine's folio actions become the
 * completion of our part of the upper request. Called in the completion context (see
 * the top of the file) or, for the write-side unlock, in ->queue_rq.
 */
static void swapdev_set_uptodate(void *ctx, u64 folio)
{
	seg_of(folio)->uptodate = true;
}

static void swapdev_set_dirty(void *ctx, u64 folio)
{
	/* A write failed: fail the upper request, the swap layer redirties the page. */
	WRITE_ONCE(seg_of(folio)->cmd->failed, true);
}

static void swapdev_nop(void *ctx, u64 folio)
{
}

static void swapdev_end_writeback(void *ctx, u64 folio)
{
	swapdev_cmd_put(seg_of(folio)->cmd);
}

static void swapdev_unlock(void *ctx, u64 folio)
{
	struct swapdev_seg *seg = seg_of(folio);

	/* Writes are unlocked when queued: nothing to do, the part ends at end_writeback. */
	if (seg->cmd->write)
		return;
	if (!seg->uptodate)
		WRITE_ONCE(seg->cmd->failed, true);
	swapdev_cmd_put(seg->cmd);
}

/* Pins only count: unpin runs after end_writeback/unlock, when the upper request may be
 * gone, so neither may touch the segment. */
static void swapdev_pin(void *ctx, u64 folio)
{
	atomic64_inc(&swapdev.pins);
}

static void swapdev_unpin(void *ctx, u64 folio)
{
	atomic64_inc(&swapdev.unpins);
}

static void swapdev_event(void *ctx, const struct swapdio_event *ev)
{
	switch (ev->kind) {
	case SWAPDIO_EVENT_KIND_SWAP_OUT:
		atomic64_add(ev->pages, &swapdev.ev_out);
		break;
	case SWAPDIO_EVENT_KIND_SWAP_IN:
		atomic64_add(ev->pages, &swapdev.ev_in);
		break;
	case SWAPDIO_EVENT_KIND_WRITE_FAILED:
		atomic64_add(ev->pages, &swapdev.ev_write_failed);
		break;
	case SWAPDIO_EVENT_KIND_READ_FAILED:
		atomic64_add(ev->pages, &swapdev.ev_read_failed);
		pr_err_ratelimited("read failed: error %d\n", ev->error);
		break;
	}
}

static const struct swapdio_page_ops swapdev_page_ops = {
	.set_uptodate = swapdev_set_uptodate,
	.set_dirty = swapdev_set_dirty,
	.clear_reclaim = swapdev_nop,
	.start_writeback = swapdev_nop,
	.end_writeback = swapdev_end_writeback,
	.unlock = swapdev_unlock,
	.pin = swapdev_pin,
	.unpin = swapdev_unpin,
	.event = swapdev_event,
};

/* ---- backend ---------------------------------------------------------------------- */

/**
 * swapdev_io_get() - take a reserved backend state.
 * @dev: the device.
 *
 * Never empty: at most @pool engine requests exist, one state each.
 * Context: any; io_lock is taken with interrupts off.
 * Return: the state.
 */
static struct swapdev_io *swapdev_io_get(struct swapdev *dev)
{
	struct swapdev_io *sio;
	unsigned long flags;

	spin_lock_irqsave(&dev->io_lock, flags);
	sio = dev->free_io;
	if (sio)
		dev->free_io = sio->next;
	spin_unlock_irqrestore(&dev->io_lock, flags);
	return sio;
}

static void swapdev_io_put(struct swapdev *dev, struct swapdev_io *sio)
{
	unsigned long flags;

	spin_lock_irqsave(&dev->io_lock, flags);
	sio->next = dev->free_io;
	dev->free_io = sio;
	spin_unlock_irqrestore(&dev->io_lock, flags);
}

/**
 * swapdev_io_done() - end one engine request.
 * @sio: its backend state.
 * @result: bytes transferred or a negative errno.
 *
 * The state is given back before swapdio_complete() (the engine request it served is
 * still held, so the free list cannot run dry); after it, the engine request is free:
 * rerun a starved queue and wake whoever waits for the pool.
 * Context: completion context (hard or soft irq, a workqueue) or ->queue_rq.
 */
static void swapdev_io_done(struct swapdev_io *sio, s64 result)
{
	struct swapdev *dev = sio->dev;
	u64 id = sio->id;
	int ret;

	if (sio->inject) {
		atomic64_inc(&dev->injected);
		result = -EIO;
	}
	swapdev_io_put(dev, sio);
	ret = swapdio_complete(dev->engine, id, result);
	WARN_ONCE(ret, "swapdio_complete: %s\n", swapdio_strerror(ret));
	if (atomic_read(&dev->starved) && atomic_xchg(&dev->starved, 0))
		blk_mq_run_hw_queues(dev->disk->queue, true);
	if (wq_has_sleeper(&dev->pool_wait))
		wake_up(&dev->pool_wait);
}

static void swapdev_bio_end_io(struct bio *bio)
{
	struct swapdev_io *sio = bio->bi_private;
	s64 result = bio->bi_status ? blk_status_to_errno(bio->bi_status) : (s64)sio->len;

	bio_uninit(bio);
	swapdev_io_done(sio, result);
}

static void swapdev_kiocb_complete(struct kiocb *iocb, long ret)
{
	swapdev_io_done(container_of(iocb, struct swapdev_io, iocb), ret);
}

/**
 * swapdev_submit() - the engine's ->submit: start one engine request.
 * @ctx: the device.
 * @io: the request, valid during the call only.
 *
 * Takes a reserved state, points its bio_vec table at the request's pages and starts
 * the I/O: a bio (device mode) or a direct-I/O kiocb (file mode). Completion may run
 * before this returns.
 * Context: task, from swapdio_write/read/plug_finish in ->queue_rq (submit_lock held,
 * memalloc_noio); may sleep (lower queue tags, the filesystem's inode lock).
 * Return: SWAPDIO_QUEUED.
 */
static s64 swapdev_submit(void *ctx, const struct swapdio_io *io)
{
	struct swapdev *dev = ctx;
	bool write = io->direction == SWAPDIO_DIRECTION_WRITE;
	struct swapdev_io *sio = swapdev_io_get(dev);
	struct iov_iter iter;
	unsigned int i;
	ssize_t ret;

	if (WARN_ON_ONCE(!sio))
		return -ENOMEM;
	sio->id = io->id;
	sio->len = io->len;
	sio->inject = false;
	if (write && fail_write_every &&
	    atomic64_inc_return(&dev->backend_writes) % fail_write_every == 0)
		sio->inject = true;
	for (i = 0; i < io->nr_segments; i++) {
		const struct swapdio_segment *s = &io->segments[i];
		struct swapdev_seg *seg = seg_of(s->folio);

		sio->bvec[i].bv_page = seg->page;
		sio->bvec[i].bv_offset = seg->off + s->offset;
		sio->bvec[i].bv_len = s->len;
	}

	if (!dev->file_mode) {
		struct bio *bio = &sio->bio;

		bio_init(bio, dev->bdev, sio->bvec, SWAPDIO_MAX_SEGMENTS,
			 (write ? REQ_OP_WRITE : REQ_OP_READ) | REQ_SWAP);
		bio->bi_vcnt = io->nr_segments;
		bio->bi_iter.bi_size = io->len;
		bio->bi_iter.bi_sector = io->pos >> SECTOR_SHIFT;
		bio->bi_private = sio;
		bio->bi_end_io = swapdev_bio_end_io;
		submit_bio(bio);
		return SWAPDIO_QUEUED;
	}

	memset(&sio->iocb, 0, sizeof(sio->iocb));
	sio->iocb.ki_filp = dev->file;
	sio->iocb.ki_pos = io->pos;
	sio->iocb.ki_flags = IOCB_DIRECT | (write ? IOCB_WRITE : 0);
	sio->iocb.ki_complete = swapdev_kiocb_complete;
	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST, sio->bvec, io->nr_segments, io->len);
	if (write)
		ret = call_write_iter(dev->file, &sio->iocb, &iter);
	else
		ret = call_read_iter(dev->file, &sio->iocb, &iter);
	/* Finished during the call (or refused): ki_complete was not called, do it here. */
	if (ret != -EIOCBQUEUED)
		swapdev_kiocb_complete(&sio->iocb, ret);
	return SWAPDIO_QUEUED;
}

static const struct swapdio_backend_ops swapdev_device_ops = {
	.caps = SWAPDIO_CAP_DIO_READ | SWAPDIO_CAP_DIO_WRITE | SWAPDIO_CAP_OVERWRITE_IN_PLACE |
		SWAPDIO_CAP_STABLE_ON_COMPLETE,
	.submit = swapdev_submit,
};

static const struct swapdio_backend_ops swapdev_file_ops = {
	.caps = SWAPDIO_CAP_SWAP_RW | SWAPDIO_CAP_OVERWRITE_IN_PLACE |
		SWAPDIO_CAP_STABLE_ON_COMPLETE | SWAPDIO_CAP_REQUIRES_NOFS,
	.submit = swapdev_submit,
};

/* ---- blk-mq ------------------------------------------------------------------------ */

/**
 * swapdev_requests_needed() - engine requests an upper request takes.
 * @dev: the device.
 * @slot: its first slot.
 * @n: its pages.
 * @need: out: one per extent the range crosses (at most 32 pages fit one request).
 *
 * Context: task, submit_lock held.
 * Return: 0 or the lookup's error.
 */
static int swapdev_requests_needed(struct swapdev *dev, u64 slot, u64 n, unsigned int *need)
{
	u64 end = slot + n;
	struct swapdio_run run;
	int ret;

	*need = 0;
	while (slot < end) {
		ret = swapdio_engine_lookup(dev->engine, slot, &run);
		if (ret)
			return ret;
		slot += run.pages;
		(*need)++;
	}
	return 0;
}

static bool swapdev_pool_has(struct swapdev *dev, unsigned int need)
{
	struct swapdio_stats st;

	return !swapdio_engine_stats(dev->engine, &st) && st.pool_free >= need;
}

/* The outer swap header (page 0) lives in memory: mkswap writes it, swapon reads it. */
static void swapdev_header_io(struct swapdev *dev, struct bio_vec *bv, bool write)
{
	if (write)
		memcpy_from_page(page_address(dev->header), bv->bv_page, bv->bv_offset, bv->bv_len);
	else
		memcpy_to_page(bv->bv_page, bv->bv_offset, page_address(dev->header), bv->bv_len);
}

/**
 * swapdev_queue_rq() - blk-mq ->queue_rq: hand an upper request's pages to the engine.
 * @hctx: the hardware context.
 * @bd: the request.
 *
 * The whole request is admitted or none of it: with submit_lock held nobody else takes
 * engine requests, so a pool that has enough free requests now still has them below.
 * Context: task, may sleep (BLK_MQ_F_BLOCKING); see the top of the file.
 * Return: BLK_STS_OK (started), BLK_STS_RESOURCE (pool short: retried on a release),
 * or an error for a request the device cannot serve.
 */
static blk_status_t swapdev_queue_rq(struct blk_mq_hw_ctx *hctx, const struct blk_mq_queue_data *bd)
{
	struct swapdev *dev = hctx->queue->queuedata;
	struct request *rq = bd->rq;
	struct swapdev_cmd *cmd = blk_mq_rq_to_pdu(rq);
	u64 pos = blk_rq_pos(rq) << SECTOR_SHIFT;
	u64 first = pos >> PAGE_SHIFT;
	u64 n = blk_rq_bytes(rq) >> PAGE_SHIFT;
	struct req_iterator it;
	struct swapdio_plug plug;
	struct bio_vec bv;
	unsigned int need, nseg = 0, noio;
	u64 slot = first;
	int ret;

	switch (req_op(rq)) {
	case REQ_OP_READ:
	case REQ_OP_WRITE:
		break;
	case REQ_OP_FLUSH:
		/* Completion means stable (SWAPDIO_CAP_STABLE_ON_COMPLETE): nothing to flush. */
		blk_mq_start_request(rq);
		blk_mq_end_request(rq, BLK_STS_OK);
		return BLK_STS_OK;
	default:
		return BLK_STS_NOTSUPP;
	}
	if ((pos | blk_rq_bytes(rq)) & (PAGE_SIZE - 1) || n > SWAPDEV_MAX_PAGES ||
	    first + n > dev->slots)
		return BLK_STS_IOERR;

	noio = memalloc_noio_save();
	mutex_lock(&dev->submit_lock);
	ret = swapdev_requests_needed(dev, first ? first : 1, first ? n : n - 1, &need);
	if (ret) {
		mutex_unlock(&dev->submit_lock);
		memalloc_noio_restore(noio);
		return BLK_STS_IOERR;
	}
	if (!swapdev_pool_has(dev, need)) {
		/* Ask for a rerun at the next release, then look again: a release that ran
		 * between the check and the flag would otherwise be missed. */
		atomic_set(&dev->starved, 1);
		smp_mb__after_atomic();
		if (!swapdev_pool_has(dev, need)) {
			mutex_unlock(&dev->submit_lock);
			memalloc_noio_restore(noio);
			atomic64_inc(&dev->resource);
			return BLK_STS_RESOURCE;
		}
	}

	blk_mq_start_request(rq);
	cmd->write = req_op(rq) == REQ_OP_WRITE;
	cmd->failed = false;
	atomic_set(&cmd->pending, 1);
	swapdio_plug_start(&plug);
	rq_for_each_segment(bv, rq, it) {
		struct swapdev_seg *seg;
		struct swapdio_folio folio;

		if (slot == 0) {
			swapdev_header_io(dev, &bv, cmd->write);
			slot++;
			continue;
		}
		seg = &cmd->segs[nseg++];
		seg->page = bv.bv_page;
		seg->off = bv.bv_offset;
		seg->uptodate = false;
		seg->cmd = cmd;
		folio = (struct swapdio_folio){ .id = (uintptr_t)seg, .slot = slot, .pages = 1 };
		atomic_inc(&cmd->pending);
		for (;;) {
			ret = cmd->write ? swapdio_write(dev->engine, &plug, &folio,
							 SWAPDIO_FS_CONTEXT_MAY_ENTER_FS)
					 : swapdio_read(dev->engine, &plug, &folio);
			if (ret != -ENOBUFS)
				break;
			/* Cannot happen (the pool was checked under submit_lock); should it,
			 * wait for a release: this context may sleep, and in-flight requests
			 * complete without us. */
			WARN_ONCE(1, "engine pool ran dry inside an admitted request\n");
			wait_event(dev->pool_wait, swapdev_pool_has(dev, 1));
		}
		if (ret) {
			pr_err_ratelimited("slot %llu: %s\n", slot, swapdio_strerror(ret));
			cmd->failed = true;
			atomic_dec(&cmd->pending);
		}
		slot++;
	}
	swapdio_plug_finish(dev->engine, &plug);
	mutex_unlock(&dev->submit_lock);
	memalloc_noio_restore(noio);
	swapdev_cmd_put(cmd);
	return BLK_STS_OK;
}

static const struct blk_mq_ops swapdev_mq_ops = {
	.queue_rq = swapdev_queue_rq,
};

static const struct block_device_operations swapdev_fops = {
	.owner = THIS_MODULE,
};

/* ---- setup ------------------------------------------------------------------------- */

static u32 swapdev_extent_flags(u32 fe)
{
	u32 f = 0;

	if (fe & FIEMAP_EXTENT_UNWRITTEN)
		f |= SWAPDIO_EXTENT_UNWRITTEN;
	if (fe & FIEMAP_EXTENT_SHARED)
		f |= SWAPDIO_EXTENT_SHARED;
	if (fe & FIEMAP_EXTENT_DATA_INLINE)
		f |= SWAPDIO_EXTENT_INLINE;
	if (fe & (FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN))
		f |= SWAPDIO_EXTENT_DELALLOC;
	if (fe & (FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED))
		f |= SWAPDIO_EXTENT_ENCODED;
	if (fe & (FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_TAIL))
		f |= SWAPDIO_EXTENT_NOT_ALIGNED;
	return f;
}

/*
 * Load time, in the insmod task. FIEMAP through the filesystem's ->fiemap, as
 * ioctl(FS_IOC_FIEMAP) does with FIEMAP_FLAG_SYNC (swapon drains writes first too).
 * ->fiemap copies extents to user memory, so the batches go through a scratch
 * mapping in the insmod task's address space. Returns a kvmalloc'ed array.
 */
static int swapdev_read_layout(struct swapdev *dev, struct swapdio_extent **out, size_t *nr)
{
	struct inode *inode = file_inode(dev->file);
	size_t batch = SWAPDEV_FIEMAP_BATCH * sizeof(struct fiemap_extent);
	struct fiemap_extent *fe = NULL;
	struct swapdio_extent *ext = NULL;
	size_t n = 0, cap = 0;
	u64 start = 0, size = i_size_read(inode);
	unsigned long ubuf;
	bool last = false;
	int ret = 0;

	if (!inode->i_op->fiemap || !current->mm)
		return -EOPNOTSUPP;
	ubuf = vm_mmap(NULL, 0, batch, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, 0);
	if (IS_ERR_VALUE(ubuf))
		return (int)ubuf;
	fe = kvmalloc(batch, GFP_KERNEL);
	if (!fe) {
		ret = -ENOMEM;
		goto out;
	}
	while (!last && start < size) {
		struct fiemap_extent_info fi = {
			.fi_flags = FIEMAP_FLAG_SYNC,
			.fi_extents_max = SWAPDEV_FIEMAP_BATCH,
			.fi_extents_start = (struct fiemap_extent __user *)ubuf,
		};
		unsigned int i;

		ret = inode->i_op->fiemap(inode, &fi, start, size - start);
		if (ret)
			goto out;
		if (!fi.fi_extents_mapped)
			break;
		if (copy_from_user(fe, (void __user *)ubuf, fi.fi_extents_mapped * sizeof(*fe))) {
			ret = -EFAULT;
			goto out;
		}
		if (n + fi.fi_extents_mapped > cap) {
			size_t ncap = max_t(size_t, 2 * cap, n + fi.fi_extents_mapped);
			struct swapdio_extent *grown = kvmalloc_array(ncap, sizeof(*grown), GFP_KERNEL);

			if (!grown) {
				ret = -ENOMEM;
				goto out;
			}
			if (n)
				memcpy(grown, ext, n * sizeof(*ext));
			kvfree(ext);
			ext = grown;
			cap = ncap;
		}
		for (i = 0; i < fi.fi_extents_mapped; i++) {
			ext[n++] = (struct swapdio_extent){
				.logical = fe[i].fe_logical,
				.physical = fe[i].fe_physical,
				.length = fe[i].fe_length,
				.flags = swapdev_extent_flags(fe[i].fe_flags),
				.device = dev->bdev->bd_dev,
			};
			start = fe[i].fe_logical + fe[i].fe_length;
			last = fe[i].fe_flags & FIEMAP_EXTENT_LAST;
		}
	}
	if (!n)
		ret = -EINVAL;
out:
	vm_munmap(ubuf, batch);
	kvfree(fe);
	if (ret) {
		kvfree(ext);
		return ret;
	}
	*out = ext;
	*nr = n;
	return 0;
}

/* Load time: header, layout, activation, engine. */
static int swapdev_activate(struct swapdev *dev)
{
	struct inode *inode = file_inode(dev->file);
	struct swapdio_activation act = { 0 };
	struct swapdio_activation_report rep = { 0 };
	struct swapdio_storage_config sc = { .pool = pool, .sync = 1, .splits = 1 };
	struct swapdio_engine_config cfg = { 0 };
	struct swapdio_mem_layout ml;
	struct swapdio_extent *ext = NULL;
	size_t nr = 0;
	loff_t off = 0;
	void *hdr;
	int ret;

	hdr = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!hdr)
		return -ENOMEM;
	ret = kernel_read(dev->file, hdr, PAGE_SIZE, &off);
	if (ret != PAGE_SIZE) {
		pr_err("%s: cannot read the swap header (%d)\n", file, ret);
		ret = ret < 0 ? ret : -EINVAL;
		goto out;
	}
	ret = swapdev_read_layout(dev, &ext, &nr);
	if (ret) {
		pr_err("%s: cannot read the layout (FIEMAP): %d\n", file, ret);
		goto out;
	}
	act.header = hdr;
	act.header_len = PAGE_SIZE;
	act.file_size = i_size_read(inode);
	act.extents = ext;
	act.nr_extents = nr;
	act.main_device = dev->bdev->bd_dev;
	act.layout = SWAPDIO_LAYOUT_EXTENTS;
	act.mode = dev->file_mode ? SWAPDIO_MODE_REQUEST_FILE : SWAPDIO_MODE_REQUEST_DEVICE;
	act.caps = dev->file_mode ? swapdev_file_ops.caps : swapdev_device_ops.caps;
	ret = swapdio_map_layout(nr, &ml);
	if (ret)
		goto out;
	dev->map = kvmalloc(ml.size, GFP_KERNEL);
	if (!dev->map) {
		ret = -ENOMEM;
		goto out;
	}
	ret = swapdio_activate(&act, dev->map, nr, &rep);
	if (ret) {
		pr_err("%s: swapdio refused the swap file: %s (extent %lld, file offset %lld)\n",
		       file, swapdio_refusal_str(rep.refusal),
		       rep.bad_extent == SWAPDIO_NONE ? -1LL : (long long)rep.bad_extent,
		       rep.bad_offset == SWAPDIO_NONE ? -1LL : (long long)rep.bad_offset);
		goto out;
	}
	dev->slots = rep.slots;
	pr_info("%s: %s mode, %zu extents reported, %llu after merging, %llu slots, %llu usable pages\n",
		file, dev->file_mode ? "file" : "device", nr, rep.extents, rep.slots, rep.usable_pages);

	ret = swapdio_storage_layout(&sc, &ml);
	if (ret)
		goto out;
	/* vmalloc'ed: the storage is larger than an order-0 page (an order-3 kmalloc). */
	dev->storage = vzalloc(ml.size);
	cfg.storage_size = ml.size;
	ret = swapdio_engine_layout(&ml);
	if (ret)
		goto out;
	dev->engine_mem = vzalloc(ml.size);
	if (!dev->storage || !dev->engine_mem) {
		ret = -ENOMEM;
		goto out;
	}
	cfg.map = dev->map;
	cfg.map_entries = rep.map_entries;
	cfg.storage = dev->storage;
	cfg.storage_config = sc;
	cfg.backend = dev->file_mode ? &swapdev_file_ops : &swapdev_device_ops;
	cfg.backend_ctx = dev;
	cfg.page_ops = &swapdev_page_ops;
	cfg.page_ctx = dev;
	cfg.mode = rep.mode;
	ret = swapdio_engine_init(dev->engine_mem, ml.size, &cfg, &dev->engine);
	if (ret)
		pr_err("swapdio_engine_init: %s\n", swapdio_strerror(ret));
out:
	kvfree(ext);
	kfree(hdr);
	return ret;
}

struct swapdev_prime {
	struct kiocb iocb;
	struct completion done;
	long ret;
};

static void swapdev_prime_complete(struct kiocb *iocb, long ret)
{
	struct swapdev_prime *p = container_of(iocb, struct swapdev_prime, iocb);

	p->ret = ret;
	complete(&p->done);
}

/**
 * swapdev_prime_file_mode() - one async direct-I/O write at load time (file mode).
 * @dev: the device.
 *
 * The filesystem creates its direct-I/O completion workqueue (s_dio_done_wq, with a
 * rescuer kthread) at the first async direct write. Under reclaim that creation waits
 * for kthreadd, which waits for memory, which waits for our writes: a deadlock (seen
 * as kthreadd, kblockd and the workload hung). Make it now: write a zeroed page to
 * slot 1, where no swap data lives yet, and wait for it.
 * Context: task (insmod), may sleep.
 * Return: 0 or a negative errno.
 */
static int swapdev_prime_file_mode(struct swapdev *dev)
{
	struct swapdev_prime p = { .ret = 0 };
	struct swapdio_run run;
	struct iov_iter iter;
	struct bio_vec bv;
	struct page *page;
	ssize_t ret;

	ret = swapdio_engine_lookup(dev->engine, 1, &run);
	if (ret)
		return ret;
	page = alloc_page(GFP_KERNEL | __GFP_ZERO);
	if (!page)
		return -ENOMEM;
	bvec_set_page(&bv, page, PAGE_SIZE, 0);
	init_completion(&p.done);
	p.iocb.ki_filp = dev->file;
	p.iocb.ki_pos = run.pos;
	p.iocb.ki_flags = IOCB_DIRECT | IOCB_WRITE;
	p.iocb.ki_complete = swapdev_prime_complete;
	iov_iter_bvec(&iter, ITER_SOURCE, &bv, 1, PAGE_SIZE);
	ret = call_write_iter(dev->file, &p.iocb, &iter);
	if (ret == -EIOCBQUEUED) {
		wait_for_completion(&p.done);
		ret = p.ret;
	}
	__free_page(page);
	if (ret != PAGE_SIZE)
		return ret < 0 ? ret : -EIO;
	return 0;
}

/*
 * Keep the file from changing underneath. Device mode: S_SWAPFILE, as swapon does
 * (write, truncate and fallocate fail with ETXTBSY). File mode writes through the
 * filesystem, whose write checks refuse S_SWAPFILE files, so it takes the
 * protection exec gives a running binary instead: deny_write_access() (no writer may
 * open the file; truncate(2) fails with ETXTBSY). Either way an active swapon of the
 * file is refused, as swapon refuses a second swapon.
 */
static int swapdev_claim(struct swapdev *dev)
{
	struct inode *inode = file_inode(dev->file);
	int ret = 0;

	if (!S_ISREG(inode->i_mode))
		return -EINVAL;
	inode_lock(inode);
	if (IS_SWAPFILE(inode))
		ret = -EBUSY;
	else if (dev->file_mode)
		ret = deny_write_access(dev->file);
	else
		inode->i_flags |= S_SWAPFILE;
	inode_unlock(inode);
	if (!ret)
		dev->denied_write = dev->file_mode;
	return ret;
}

static void swapdev_unclaim(struct swapdev *dev)
{
	struct inode *inode = file_inode(dev->file);

	inode_lock(inode);
	if (dev->denied_write)
		allow_write_access(dev->file);
	else
		inode->i_flags &= ~S_SWAPFILE;
	inode_unlock(inode);
}

static int swapdev_add_disk(struct swapdev *dev)
{
	struct gendisk *disk;
	int ret;

	dev->major = register_blkdev(0, "swapdio");
	if (dev->major < 0)
		return dev->major;
	dev->tag_set.ops = &swapdev_mq_ops;
	dev->tag_set.nr_hw_queues = 1;
	dev->tag_set.queue_depth = 64;
	dev->tag_set.numa_node = NUMA_NO_NODE;
	dev->tag_set.cmd_size = sizeof(struct swapdev_cmd);
	dev->tag_set.flags = BLK_MQ_F_SHOULD_MERGE | BLK_MQ_F_BLOCKING;
	dev->tag_set.driver_data = dev;
	ret = blk_mq_alloc_tag_set(&dev->tag_set);
	if (ret)
		goto out_blkdev;
	disk = blk_mq_alloc_disk(&dev->tag_set, dev);
	if (IS_ERR(disk)) {
		ret = PTR_ERR(disk);
		goto out_tags;
	}
	disk->major = dev->major;
	disk->first_minor = 0;
	disk->minors = 1;
	disk->fops = &swapdev_fops;
	disk->private_data = dev;
	disk->flags |= GENHD_FL_NO_PART;
	strscpy(disk->disk_name, "swapdio0", DISK_NAME_LEN);
	blk_queue_logical_block_size(disk->queue, PAGE_SIZE);
	blk_queue_physical_block_size(disk->queue, PAGE_SIZE);
	blk_queue_max_hw_sectors(disk->queue, SWAPDEV_MAX_PAGES << (PAGE_SHIFT - SECTOR_SHIFT));
	blk_queue_max_segments(disk->queue, SWAPDEV_MAX_PAGES);
	blk_queue_max_segment_size(disk->queue, PAGE_SIZE);
	blk_queue_flag_set(QUEUE_FLAG_NONROT, disk->queue);
	set_capacity(disk, dev->slots << (PAGE_SHIFT - SECTOR_SHIFT));
	dev->disk = disk;
	ret = add_disk(disk);
	if (ret)
		goto out_disk;
	return 0;
out_disk:
	put_disk(disk);
	dev->disk = NULL;
out_tags:
	blk_mq_free_tag_set(&dev->tag_set);
out_blkdev:
	unregister_blkdev(dev->major, "swapdio");
	return ret;
}

static void swapdev_free(struct swapdev *dev)
{
	if (dev->engine) {
		int ret;

		/* No upper request is left (the disk is gone): nothing is in flight. */
		ret = swapdio_deactivate(dev->engine);
		if (!ret)
			ret = swapdio_engine_fini(dev->engine);
		if (ret) {
			/* Leak rather than free memory the engine may still use. */
			pr_err("engine busy at unload (%s): leaking it\n", swapdio_strerror(ret));
			return;
		}
		dev->engine = NULL;
	}
	vfree(dev->engine_mem);
	vfree(dev->storage);
	kvfree(dev->map);
	kvfree(dev->ios);
	if (dev->header)
		__free_page(dev->header);
}

static int __init swapdev_init(void)
{
	struct swapdev *dev = &swapdev;
	unsigned int i;
	int ret;

	if (!file || !pool || pool > 1024)
		return -EINVAL;
	if (!strcmp(mode, "file"))
		dev->file_mode = true;
	else if (strcmp(mode, "device"))
		return -EINVAL;
	spin_lock_init(&dev->io_lock);
	mutex_init(&dev->submit_lock);
	init_waitqueue_head(&dev->pool_wait);

	dev->file = filp_open(file, O_RDONLY | O_LARGEFILE, 0);
	if (IS_ERR(dev->file))
		return PTR_ERR(dev->file);
	/* Swap I/O does not update timestamps (and must not start a transaction). */
	dev->file->f_mode |= FMODE_NOCMTIME;
	dev->bdev = file_inode(dev->file)->i_sb->s_bdev;
	ret = -EINVAL;
	if (!dev->bdev)
		goto out_file;
	ret = swapdev_claim(dev);
	if (ret) {
		pr_err("%s: cannot claim the file: %d\n", file, ret);
		goto out_file;
	}
	ret = swapdev_activate(dev);
	if (!ret && dev->file_mode)
		ret = swapdev_prime_file_mode(dev);
	if (ret)
		goto out_free;
	ret = -ENOMEM;
	dev->header = alloc_page(GFP_KERNEL | __GFP_ZERO);
	dev->ios = kvcalloc(pool, sizeof(*dev->ios), GFP_KERNEL);
	if (!dev->header || !dev->ios)
		goto out_free;
	for (i = 0; i < pool; i++) {
		dev->ios[i].dev = dev;
		swapdev_io_put(dev, &dev->ios[i]);
	}
	ret = swapdev_add_disk(dev);
	if (ret)
		goto out_free;
	pr_info("/dev/swapdio0: %llu pages on %s, pool %u, fail_write_every %u\n", dev->slots, file,
		pool, fail_write_every);
	return 0;
out_free:
	swapdev_free(dev);
	swapdev_unclaim(dev);
out_file:
	fput(dev->file);
	return ret;
}

static void __exit swapdev_exit(void)
{
	struct swapdev *dev = &swapdev;
	struct swapdio_stats st = { 0 };

	del_gendisk(dev->disk);
	put_disk(dev->disk);
	blk_mq_free_tag_set(&dev->tag_set);
	unregister_blkdev(dev->major, "swapdio");
	swapdio_engine_stats(dev->engine, &st);
	pr_info("stats: mode=%s requests=%llu/%llu pages_out=%llu pages_in=%llu write_failures=%llu read_failures=%llu short=%llu would_block=%llu rejected=%llu in_flight=%llu pool_free=%llu\n",
		dev->file_mode ? "file" : "device", st.requests_submitted, st.requests_completed,
		st.pages_out, st.pages_in, st.write_failures, st.read_failures, st.short_transfers,
		st.would_block, st.rejected_completions, st.in_flight, st.pool_free);
	pr_info("stats: pins=%lld unpins=%lld fail_write_every=%u resource_retries=%lld injected_write_errors=%lld upper_errors=%lld events_out=%lld events_in=%lld events_write_failed=%lld events_read_failed=%lld\n",
		atomic64_read(&dev->pins), atomic64_read(&dev->unpins), fail_write_every,
		atomic64_read(&dev->resource), atomic64_read(&dev->injected),
		atomic64_read(&dev->upper_errors), atomic64_read(&dev->ev_out),
		atomic64_read(&dev->ev_in), atomic64_read(&dev->ev_write_failed),
		atomic64_read(&dev->ev_read_failed));
	swapdev_free(dev);
	swapdev_unclaim(dev);
	fput(dev->file);
}

module_init(swapdev_init);
module_exit(swapdev_exit);
MODULE_DESCRIPTION("swap device whose I/O goes through the swapdio engine");
MODULE_LICENSE("Dual MIT/GPL");
