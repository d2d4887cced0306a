// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * swapdio_swapdev - a swap device whose I/O goes through swapdio.
 *
 * /dev/swapdio0 is a disk the kernel swaps to (mkswap + swapon). Its backing
 * store is a swap file on a real filesystem: at load time the module reads the file's
 * swap header and its layout (FIEMAP, through the filesystem), hands both to
 * swapdio_activate() - which refuses holes, shared or inline extents (and unwritten
 * extents in file mode) the way swapon does, with the reason in dmesg - and sets up a
 * swapdio engine over the resulting slot map. Page N of /dev/swapdio0 is slot N of the
 * file; page 0 (the outer swap header) lives in a page of module memory so the file's
 * own header is never written.
 *
 * In device mode the swap layer's bios come through blk-mq: every request is cut into
 * pages, each handed to the engine as a one-page folio; the engine maps slots to
 * positions, batches adjacent pages (plug) and submits bios, embedded in reserved
 * state, to the filesystem's block device at the mapped positions. The upper request
 * completes when all its pages completed; a failed write fails it (BLK_STS_IOERR) so
 * the swap layer redirties the page and writes it again later.
 *
 * In file mode the engine's requests become direct-I/O kiocbs on the file
 * (->write_iter/->read_iter with IOCB_DIRECT, the ->swap_rw design), and swap pages
 * come through ->rw_page instead of blk-mq (swapon sets SWP_SYNCHRONOUS_IO for a disk
 * with ->rw_page), one page per call, with no bio: see swapdev_rw_page() for why.
 * A failed write redirties the page from the completion, as end_swap_bio_write() does.
 * Other I/O (mkswap, swapon's header read) still comes through blk-mq.
 *
 * The file-mode hang (fixed here; found with the guest's sysrq-w dump of blocked
 * tasks, scripts/qemu-kernel/swapdev.sh prints it when swapping stops): kswapd, the
 * workload in direct reclaim and kthreadd all waited in mempool_alloc() from
 * bio_alloc_bioset() in __swap_writepage(), and the kblockd worker inside ->queue_rq
 * waited in the same mempool from iomap_dio_bio_iter() under ext4_file_write_iter().
 * Both layers allocate from fs_bio_set: the swap layer's bio to /dev/swapdio0 is held
 * until our request completes, and that request needs a bio of the filesystem's
 * direct I/O from the same pool. With free memory below the min watermark every bio
 * comes from the pool's two reserved elements; once swap bios held them, nothing
 * could complete (blk_mq_timeout_work then waited in synchronize_srcu for the stuck
 * ->queue_rq, which is what the hung-task report showed). Device mode never
 * allocates a bio (they are reserved), so it never hung.
 *
 * No allocation on the I/O path: engine requests come from the engine's pool, bios and
 * kiocbs (with their bio_vec tables) from an array reserved at load time, one per pool
 * request, ->rw_page's folio state from another. When the pool cannot take a whole
 * upper request, ->queue_rq returns BLK_STS_RESOURCE and the queue is rerun when an
 * engine request is released; ->rw_page waits for one (see there).
 *
 * Contexts (no lockdep in the distribution kernel, so they are written down here):
 *  - ->queue_rq runs in task context (BLK_MQ_F_BLOCKING): in the task that submitted
 *    the swap bio (kswapd, a direct reclaimer, a task faulting a page in) or in a
 *    kblockd worker. It runs under memalloc_noio_save() and never waits for anything
 *    that needs memory to be reclaimed: it takes submit_lock (a mutex, which makes
 *    the pool check exact; its holders only run engine calls and queue I/O), and in
 *    device mode submit_bio() may wait for a tag of the lower disk (freed by that
 *    disk's completions). When the pool is short it answers BLK_STS_RESOURCE.
 *  - ->rw_page runs in kswapd, a direct reclaimer or a faulting task, under
 *    memalloc_noio_save(); it takes submit_lock like ->queue_rq and may wait for an
 *    engine request to be released.
 *  - The filesystem is never called with submit_lock held: the engine's ->submit
 *    queues the kiocb, and once the lock is dropped the task that queued it (or the
 *    submitter kthread, which finishes ->rw_page's write plug) starts it with
 *    PF_MEMALLOC and PF_MEMALLOC_NOIO, as kswapd runs and as nbd wraps its socket I/O.
 *    The filesystem's direct I/O allocates (iomap's struct iomap_dio with
 *    kmalloc(GFP_KERNEL), ext4's extent path with GFP_NOFS): from a faulting task or
 *    the kthread those would be GFP_NOIO allocations that reclaim without I/O, which
 *    frees nothing when the guest's memory is all anonymous, and retry while the swap
 *    writes that would free memory queue behind them. With PF_MEMALLOC they come from
 *    the reserves (bounded: at most @pool kiocbs in flight) and never enter reclaim;
 *    a -ENOMEM is retried, never failed.
 *  - The engine's page callbacks and swapdio_complete() run in the backend's
 *    completion context: bio ->bi_end_io (hard or soft irq) in device mode, the
 *    iomap completion (irq for reads, the filesystem's dio workqueue for writes) or
 *    the task that started a kiocb which finished during the call, in file mode. They
 *    only touch atomics, spinlock_irqsave-protected lists, page flags (as the swap
 *    layer's bio completions do) and blk_mq_end_request().
 *  - Module load and unload run in the insmod/rmmod task and may sleep.
 *
 * Files: this one (module, engine callbacks, device-mode backend, blk-mq),
 * swapdio_swapdev_file.c (file mode: ->rw_page, submitter kthread, kiocbs),
 * swapdio_swapdev_setup.c (layout, activation, claim), swapdio_swapdev.h (shared state).
 *
 * Module parameters: file= (path of the swap file, required), mode= (device|file),
 * pool= (engine requests), fail_write_every= (fault injection: every Nth backend write
 * completes with -EIO after its I/O ran).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include "swapdio_swapdev.h"

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
	struct swapdev_seg *seg = seg_of(folio);

	if (seg->cmd)
		seg->uptodate = true;
	else
		SetPageUptodate(seg->page);
}

static void swapdev_set_dirty(void *ctx, u64 folio)
{
	struct swapdev_seg *seg = seg_of(folio);

	/*
	 * A write failed. blk-mq: fail the upper request, the swap layer redirties the
	 * page. ->rw_page: redirty it here, as end_swap_bio_write() does (any context).
	 */
	if (seg->cmd)
		WRITE_ONCE(seg->cmd->failed, true);
	else
		set_page_dirty(seg->page);
}

static void swapdev_clear_reclaim(void *ctx, u64 folio)
{
	struct swapdev_seg *seg = seg_of(folio);

	if (!seg->cmd)
		ClearPageReclaim(seg->page);
}

static void swapdev_nop(void *ctx, u64 folio)
{
}

static void swapdev_end_writeback(void *ctx, u64 folio)
{
	struct swapdev_seg *seg = seg_of(folio);

	if (seg->cmd)
		swapdev_cmd_put(seg->cmd);
	else
		end_page_writeback(seg->page);
}

static void swapdev_unlock(void *ctx, u64 folio)
{
	struct swapdev_seg *seg = seg_of(folio);

	/*
	 * Writes are unlocked when queued (bdev_write_page() unlocks a ->rw_page page
	 * itself): nothing to do, the part ends at end_writeback.
	 */
	if (seg->cmd ? seg->cmd->write : seg->write)
		return;
	if (!seg->cmd) {
		unlock_page(seg->page);
		return;
	}
	if (!seg->uptodate)
		WRITE_ONCE(seg->cmd->failed, true);
	swapdev_cmd_put(seg->cmd);
}

static bool swapdev_is_rw_seg(struct swapdev *dev, struct swapdev_seg *seg)
{
	return dev->rw_segs && seg >= dev->rw_segs && seg < dev->rw_segs + pool;
}

/*
 * Pins count. unpin runs last (after end_writeback/unlock): a blk-mq segment may be
 * gone by then (its request ended), so it is only compared by address; a ->rw_page
 * segment goes back to its free list.
 */
static void swapdev_pin(void *ctx, u64 folio)
{
	atomic64_inc(&swapdev.pins);
}

static void swapdev_unpin(void *ctx, u64 folio)
{
	struct swapdev *dev = ctx;
	struct swapdev_seg *seg = seg_of(folio);

	atomic64_inc(&dev->unpins);
	if (!swapdev_is_rw_seg(dev, seg))
		return;
	swapdev_seg_put(dev, seg);
	if (wq_has_sleeper(&dev->pool_wait))
		wake_up(&dev->pool_wait);
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

const struct swapdio_page_ops swapdev_page_ops = {
	.set_uptodate = swapdev_set_uptodate,
	.set_dirty = swapdev_set_dirty,
	.clear_reclaim = swapdev_clear_reclaim,
	.start_writeback = swapdev_nop,
	.end_writeback = swapdev_end_writeback,
	.unlock = swapdev_unlock,
	.pin = swapdev_pin,
	.unpin = swapdev_unpin,
	.event = swapdev_event,
};

/* ---- backend ---------------------------------------------------------------------- */

/**
 * swapdev_free_pop() - take an object from a free list of reserved objects.
 * @dev: the device (its io_lock protects every free list).
 * @list: the list's head.
 *
 * Context: any; io_lock is taken with interrupts off.
 * Return: the object's link, or NULL when the list is empty.
 */
struct swapdev_link *swapdev_free_pop(struct swapdev *dev, struct swapdev_link *list)
{
	struct swapdev_link *link;
	unsigned long flags;

	spin_lock_irqsave(&dev->io_lock, flags);
	link = list->next;
	if (link)
		list->next = link->next;
	spin_unlock_irqrestore(&dev->io_lock, flags);
	return link;
}

/**
 * swapdev_free_push() - give an object back to its free list.
 * @dev: the device.
 * @list: the list's head.
 * @link: the object's link.
 *
 * Context: any; io_lock is taken with interrupts off.
 */
void swapdev_free_push(struct swapdev *dev, struct swapdev_link *list,
		       struct swapdev_link *link)
{
	unsigned long flags;

	spin_lock_irqsave(&dev->io_lock, flags);
	link->next = list->next;
	list->next = link;
	spin_unlock_irqrestore(&dev->io_lock, flags);
}

/**
 * swapdev_io_get() - take a reserved backend state.
 * @dev: the device.
 *
 * Never empty: at most @pool engine requests exist, one state each.
 * Context: any.
 * Return: the state.
 */
static struct swapdev_io *swapdev_io_get(struct swapdev *dev)
{
	struct swapdev_link *link = swapdev_free_pop(dev, &dev->free_ios);

	return link ? container_of(link, struct swapdev_io, free) : NULL;
}

static void swapdev_io_put(struct swapdev *dev, struct swapdev_io *sio)
{
	swapdev_free_push(dev, &dev->free_ios, &sio->free);
}

/**
 * swapdev_io_done() - end one engine request.
 * @sio: its backend state.
 * @result: bytes transferred or a negative errno.
 *
 * The state is given back before swapdio_complete() (the engine request it served is
 * still held, so the free list cannot run dry); after it, the engine request is free:
 * rerun a starved queue (from kblockd: this may be irq context).
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
	/* The release before the look at the flag (pairs with ->queue_rq's barrier). */
	smp_mb();
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

void swapdev_kiocb_complete(struct kiocb *iocb, long ret)
{
	swapdev_io_done(container_of(iocb, struct swapdev_io, iocb), ret);
}

/**
 * swapdev_submit() - the engine's ->submit: start one engine request.
 * @ctx: the device.
 * @io: the request, valid during the call only.
 *
 * Takes a reserved state and points its bio_vec table at the request's pages. Device
 * mode starts a bio (completion may run before this returns); file mode queues the
 * request (swapdev_file_queue()) and returns at once.
 * Context: task, from swapdio_write/read/plug_finish in ->queue_rq, ->rw_page or the
 * submitter kthread (submit_lock held, memalloc_noio). Device mode may sleep for a tag
 * of the lower disk; file mode does not sleep.
 * Return: SWAPDIO_QUEUED.
 */
static s64 swapdev_submit(void *ctx, const struct swapdio_io *io)
{
	struct swapdev *dev = ctx;
	struct swapdev_io *sio = swapdev_io_get(dev);
	unsigned int i;

	if (WARN_ON_ONCE(!sio))
		return -ENOMEM;
	sio->id = io->id;
	sio->pos = io->pos;
	sio->len = io->len;
	sio->nr_segs = io->nr_segments;
	sio->write = io->direction == SWAPDIO_DIRECTION_WRITE;
	sio->inject = false;
	if (sio->write && fail_write_every &&
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
			 (sio->write ? REQ_OP_WRITE : REQ_OP_READ) | REQ_SWAP);
		bio->bi_vcnt = io->nr_segments;
		bio->bi_iter.bi_size = io->len;
		bio->bi_iter.bi_sector = io->pos >> SECTOR_SHIFT;
		bio->bi_private = sio;
		bio->bi_end_io = swapdev_bio_end_io;
		submit_bio(bio);
		return SWAPDIO_QUEUED;
	}

	swapdev_file_queue(dev, sio);
	return SWAPDIO_QUEUED;
}

const struct swapdio_backend_ops swapdev_device_ops = {
	.caps = SWAPDIO_CAP_DIO_READ | SWAPDIO_CAP_DIO_WRITE | SWAPDIO_CAP_OVERWRITE_IN_PLACE |
		SWAPDIO_CAP_STABLE_ON_COMPLETE,
	.submit = swapdev_submit,
};

const struct swapdio_backend_ops swapdev_file_ops = {
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

bool swapdev_pool_has(struct swapdev *dev, unsigned int need)
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
		/*
		 * Ask for a rerun at the next release, then look again: a release that ran
		 * between the check and the flag would otherwise be missed.
		 */
		atomic_set(&dev->starved, 1);
		/* Flag before the second look; pairs with smp_mb() in swapdev_io_done(). */
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
		ret = cmd->write ? swapdio_write(dev->engine, &plug, &folio,
						 SWAPDIO_FS_CONTEXT_MAY_ENTER_FS)
				 : swapdio_read(dev->engine, &plug, &folio);
		/*
		 * -ENOBUFS cannot happen: the pool was checked under submit_lock, and waiting
		 * for a release here is what this driver must never do.
		 */
		WARN_ONCE(ret == -ENOBUFS, "engine pool ran dry inside an admitted request\n");
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
	if (dev->file_mode)
		swapdev_sub_drain(dev);
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
	disk->fops = dev->file_mode ? &swapdev_file_fops : &swapdev_fops;
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
	/* No upper request is left (the disk is gone or was never added): nothing is queued. */
	if (dev->submitter) {
		kthread_stop(dev->submitter);
		dev->submitter = NULL;
	}
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
	kvfree(dev->rw_segs);
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
	dev->path = file;
	dev->pool = pool;
	spin_lock_init(&dev->io_lock);
	mutex_init(&dev->submit_lock);
	init_waitqueue_head(&dev->pool_wait);
	spin_lock_init(&dev->sub_lock);
	dev->sub_tail = &dev->sub_head;
	init_waitqueue_head(&dev->sub_wait);

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
	if (dev->file_mode)
		dev->rw_segs = kvcalloc(pool, sizeof(*dev->rw_segs), GFP_KERNEL);
	if (!dev->header || !dev->ios || (dev->file_mode && !dev->rw_segs))
		goto out_free;
	for (i = 0; i < pool; i++) {
		dev->ios[i].dev = dev;
		swapdev_io_put(dev, &dev->ios[i]);
		if (dev->rw_segs)
			swapdev_seg_put(dev, &dev->rw_segs[i]);
	}
	if (dev->file_mode) {
		swapdio_plug_start(&dev->wplug);
		dev->submitter = kthread_run(swapdev_submitter, dev, "swapdio0-submit");
		if (IS_ERR(dev->submitter)) {
			ret = PTR_ERR(dev->submitter);
			dev->submitter = NULL;
			goto out_free;
		}
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

	/*
	 * ->rw_page I/O is not tracked by the queue's usage counter: after swapoff none is
	 * left (it waits for every page), but make sure before the engine goes away.
	 */
	wait_event(dev->pool_wait, swapdev_pool_has(dev, pool));
	del_gendisk(dev->disk);
	put_disk(dev->disk);
	blk_mq_free_tag_set(&dev->tag_set);
	unregister_blkdev(dev->major, "swapdio");
	swapdio_engine_stats(dev->engine, &st);
	pr_info("stats: mode=%s requests=%llu/%llu pages_out=%llu pages_in=%llu write_failures=%llu read_failures=%llu short=%llu would_block=%llu rejected=%llu in_flight=%llu pool_free=%llu\n",
		dev->file_mode ? "file" : "device", st.requests_submitted, st.requests_completed,
		st.pages_out, st.pages_in, st.write_failures, st.read_failures, st.short_transfers,
		st.would_block, st.rejected_completions, st.in_flight, st.pool_free);
	pr_info("stats: pins=%lld unpins=%lld fail_write_every=%u resource_retries=%lld nomem_retries=%lld injected_write_errors=%lld upper_errors=%lld events_out=%lld events_in=%lld events_write_failed=%lld events_read_failed=%lld\n",
		atomic64_read(&dev->pins), atomic64_read(&dev->unpins), fail_write_every,
		atomic64_read(&dev->resource), atomic64_read(&dev->nomem_retries),
		atomic64_read(&dev->injected),
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
