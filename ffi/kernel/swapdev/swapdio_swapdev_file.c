// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * swapdio_swapdev file mode: swap pages through ->rw_page (no bio from fs_bio_set above
 * the filesystem's own direct I/O), engine requests as direct-I/O kiocbs on the file,
 * started with PF_MEMALLOC | PF_MEMALLOC_NOIO outside submit_lock (by the task that
 * queued them, or by the submitter kthread, which also finishes the write plug). Why:
 * the top of swapdio_swapdev_main.c and swapdev_rw_page().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include "swapdio_swapdev.h"

/**
 * swapdev_file_rw() - start one file-mode request: a direct-I/O kiocb on the file.
 * @dev: the device.
 * @sio: the request, queued by swapdev_submit().
 *
 * A kiocb the filesystem finished during the call (or refused) is completed here. One
 * refused with -ENOMEM (PF_MEMALLOC allocations fail rather than reclaim when the
 * reserves are gone) is started again a tick later: memory comes back as in-flight
 * I/O completes, and failing a read would lose the page (the faulting task gets
 * SIGBUS). Re-running a read or a write of the same pages is harmless.
 * Context: swapdev_sub_drain() (PF_MEMALLOC, PF_MEMALLOC_NOIO, submit_lock not held),
 * in the submitter kthread or the task that queued the request; may sleep.
 */
static void swapdev_file_rw(struct swapdev *dev, struct swapdev_io *sio)
{
	struct iov_iter iter;
	ssize_t ret;

	for (;;) {
		memset(&sio->iocb, 0, sizeof(sio->iocb));
		sio->iocb.ki_filp = dev->file;
		sio->iocb.ki_pos = sio->pos;
		sio->iocb.ki_flags = IOCB_DIRECT | (sio->write ? IOCB_WRITE : 0);
		sio->iocb.ki_complete = swapdev_kiocb_complete;
		iov_iter_bvec(&iter, sio->write ? ITER_SOURCE : ITER_DEST, sio->bvec,
			      sio->nr_segs, sio->len);
		if (sio->write)
			ret = call_write_iter(dev->file, &sio->iocb, &iter);
		else
			ret = call_read_iter(dev->file, &sio->iocb, &iter);
		if (ret != -ENOMEM)
			break;
		atomic64_inc(&dev->nomem_retries);
		schedule_timeout_uninterruptible(1);
	}
	if (ret != -EIOCBQUEUED)
		swapdev_kiocb_complete(&sio->iocb, ret);
}

static struct swapdev_io *swapdev_sub_pop(struct swapdev *dev)
{
	struct swapdev_io *sio;

	spin_lock(&dev->sub_lock);
	sio = dev->sub_head;
	if (sio) {
		dev->sub_head = sio->next;
		if (!dev->sub_head)
			dev->sub_tail = &dev->sub_head;
	}
	spin_unlock(&dev->sub_lock);
	return sio;
}

static bool swapdev_sub_pending(struct swapdev *dev)
{
	return READ_ONCE(dev->sub_head);
}

/**
 * swapdev_file_queue() - queue a file-mode engine request for its kiocb.
 * @dev: the device.
 * @sio: the request's state (pages, position, direction filled in).
 *
 * The task that queued it starts it once submit_lock is dropped (swapdev_sub_drain());
 * the submitter kthread is woken too, for requests a write plug let out.
 * Context: task, submit_lock held; does not sleep.
 */
void swapdev_file_queue(struct swapdev *dev, struct swapdev_io *sio)
{
	sio->next = NULL;
	spin_lock(&dev->sub_lock);
	*dev->sub_tail = sio;
	dev->sub_tail = &sio->next;
	spin_unlock(&dev->sub_lock);
	wake_up(&dev->sub_wait);
}

/**
 * swapdev_sub_drain() - start every queued kiocb, in order.
 * @dev: the device.
 *
 * Runs with PF_MEMALLOC (the filesystem's allocations for these kiocbs come from the
 * reserves and never enter reclaim, which would wait for the very swap writes queued
 * here; nbd does the same around its socket I/O) and PF_MEMALLOC_NOIO (nothing it
 * allocates recurses into I/O). Never with submit_lock held.
 * Context: task (the submitter kthread, or the task that queued the I/O), may sleep.
 */
void swapdev_sub_drain(struct swapdev *dev)
{
	unsigned int noreclaim = memalloc_noreclaim_save();
	unsigned int noio = memalloc_noio_save();
	struct swapdev_io *sio;

	while ((sio = swapdev_sub_pop(dev)))
		swapdev_file_rw(dev, sio);
	memalloc_noio_restore(noio);
	memalloc_noreclaim_restore(noreclaim);
}

/**
 * swapdev_submitter() - the file-mode submission kthread.
 * @data: the device.
 *
 * Finishes the write plug that ->rw_page fills (so adjacent swap-outs of one reclaim
 * pass become one kiocb, as the kernel's swap_write_unplug() batches them) and starts
 * the queued kiocbs. Idle waits are TASK_IDLE: no hung-task report, no load.
 * Context: kthread, may sleep.
 * Return: 0 when stopped (at unload, with nothing queued).
 */
int swapdev_submitter(void *data)
{
	struct swapdev *dev = data;

	for (;;) {
		wait_event_idle(dev->sub_wait, swapdev_sub_pending(dev) ||
				READ_ONCE(dev->wplug_used) || kthread_should_stop());
		if (READ_ONCE(dev->wplug_used)) {
			mutex_lock(&dev->submit_lock);
			swapdio_plug_finish(dev->engine, &dev->wplug);
			swapdio_plug_start(&dev->wplug);
			WRITE_ONCE(dev->wplug_used, false);
			mutex_unlock(&dev->submit_lock);
		}
		swapdev_sub_drain(dev);
		if (kthread_should_stop() && !swapdev_sub_pending(dev) &&
		    !READ_ONCE(dev->wplug_used))
			break;
	}
	return 0;
}

static struct swapdev_seg *swapdev_seg_get(struct swapdev *dev)
{
	struct swapdev_link *link = swapdev_free_pop(dev, &dev->free_segs);

	return link ? container_of(link, struct swapdev_seg, free) : NULL;
}

void swapdev_seg_put(struct swapdev *dev, struct swapdev_seg *seg)
{
	swapdev_free_push(dev, &dev->free_segs, &seg->free);
}

static bool swapdev_rw_ready(struct swapdev *dev)
{
	return READ_ONCE(dev->free_segs.next) && swapdev_pool_has(dev, 1);
}

/**
 * swapdev_rw_page() - ->rw_page: one swap page, with no bio (file mode).
 * @bdev: /dev/swapdio0.
 * @sector: the page's first sector.
 * @page: the swap-cache page: locked (read), or under writeback (write; the caller
 *        unlocks it when this returns 0).
 * @op: REQ_OP_READ or REQ_OP_WRITE.
 *
 * Why file mode swaps through ->rw_page rather than blk-mq requests: a swap bio to
 * this disk comes from fs_bio_set (bio_alloc() in __swap_writepage/swap_readpage)
 * and is held until the request completes, while the filesystem's direct I/O that
 * serves it allocates its own bios from fs_bio_set too (iomap_dio_bio_iter). Under
 * memory exhaustion every bio comes from that mempool's two reserved elements; once
 * swap bios waiting for us hold them, the filesystem's bio_alloc() waits for one of
 * them to be freed, which needs that very I/O: a deadlock (kswapd, the workload in
 * direct reclaim, kthreadd and the kblockd worker inside ->queue_rq all stuck in
 * mempool_alloc). Stacked drivers must never allocate from their caller's bio_set;
 * with ->rw_page (swapon sets SWP_SYNCHRONOUS_IO for it) the swap layer allocates no
 * bio at all, so fs_bio_set's reserve serves only bounded lower I/O again.
 *
 * Waits (task context: reclaim or a page fault) for an engine request when the
 * pool is empty: that wait ends when an in-flight kiocb completes, which needs no
 * memory beyond what the submitter kthread may take from the reserves. Failing
 * instead would make the swap layer fall back to a bio, which is the deadlock.
 * Context: task, may sleep.
 * Return: 0 (started; completion ends writeback or unlocks the page), or a negative
 * errno: the caller falls back to a bio.
 */
static int swapdev_rw_page(struct block_device *bdev, sector_t sector, struct page *page,
			   enum req_op op)
{
	struct swapdev *dev = bdev->bd_disk->private_data;
	u64 slot = sector >> (PAGE_SHIFT - SECTOR_SHIFT);
	bool write = op_is_write(op);
	struct swapdev_seg *seg;
	struct swapdio_folio folio;
	struct swapdio_plug plug;
	unsigned int noio;
	int ret;

	if ((sector & ((PAGE_SIZE >> SECTOR_SHIFT) - 1)) || PageTransHuge(page) || !slot ||
	    slot >= dev->slots)
		return -EOPNOTSUPP;
	noio = memalloc_noio_save();
	for (;;) {
		wait_event(dev->pool_wait, swapdev_rw_ready(dev));
		mutex_lock(&dev->submit_lock);
		if (swapdev_pool_has(dev, 1)) {
			seg = swapdev_seg_get(dev);
			if (seg)
				break;
		}
		mutex_unlock(&dev->submit_lock);
	}
	seg->page = page;
	seg->off = 0;
	seg->uptodate = false;
	seg->write = write;
	seg->cmd = NULL;
	folio = (struct swapdio_folio){ .id = (uintptr_t)seg, .slot = slot, .pages = 1 };
	if (write) {
		/* Into the write plug: the submitter finishes it (batching), see there. */
		ret = swapdio_write(dev->engine, &dev->wplug, &folio,
				    SWAPDIO_FS_CONTEXT_MAY_ENTER_FS);
		if (!ret)
			WRITE_ONCE(dev->wplug_used, true);
	} else {
		swapdio_plug_start(&plug);
		ret = swapdio_read(dev->engine, &plug, &folio);
		swapdio_plug_finish(dev->engine, &plug);
	}
	mutex_unlock(&dev->submit_lock);
	memalloc_noio_restore(noio);
	if (ret) {
		/* Refused before the engine took the page: no callback will run. */
		pr_err_ratelimited("slot %llu: %s\n", slot, swapdio_strerror(ret));
		swapdev_seg_put(dev, seg);
		return ret;
	}
	/* A fault waits for this read: start it here rather than wake the submitter. */
	if (write)
		wake_up(&dev->sub_wait);
	else
		swapdev_sub_drain(dev);
	return 0;
}

/* File mode: swap pages come through ->rw_page (see swapdev_rw_page()). */
const struct block_device_operations swapdev_file_fops = {
	.owner = THIS_MODULE,
	.rw_page = swapdev_rw_page,
};

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
int swapdev_prime_file_mode(struct swapdev *dev)
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
