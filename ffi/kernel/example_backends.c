// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * swapdio_example: the two backends.
 *
 * Device mode: one bio per request at the mapped device position; bi_end_io calls
 * swapdio_complete(), in hard-irq context for virtio-blk. The per-request state lives
 * in the bio set's front pad, so the reclaim path allocates nothing beyond the bio
 * mempool.
 *
 * File mode, in the style of ->swap_rw: one IOCB_DIRECT kiocb per request on the swap
 * file, ki_complete calls swapdio_complete() (from the filesystem's completion
 * workqueue for writes, from the bio completion for reads). The kiocb and its bvecs
 * live in the request's private space in the engine's storage (io->backend_data): no
 * allocation at all on the I/O path.
 *
 * Both can inject a write failure, a short transfer, a completion deferred to a
 * workqueue, and a submit that waits for its own completion (the completion races
 * ahead of submit's return).
 */
#include <linux/blkdev.h>
#include <linux/bvec.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/uio.h>

#include "swapdio_example.h"

enum { EX_SUBMITTING, EX_SUBMITTED, EX_COMPLETED };

/**
 * struct ex_req - what both backends keep per request until it completes.
 * @area: the area of the request.
 * @id: the engine's request id, for swapdio_complete().
 * @len: bytes of the request.
 * @state: EX_SUBMITTING until submit returns; a completion that finds it there raced.
 * @refs: device mode: submit and completion each hold one; the last puts the bio.
 * @fail: complete with -EIO (injected write failure).
 * @short_by: complete this many bytes short (injected short transfer).
 * @defer: complete from a workqueue.
 * @result: the outcome, for a deferred completion.
 * @waiter: submit sleeps on it until the completion ran (NULL if it does not wait).
 * @work: the deferred completion.
 */
struct ex_req {
	struct ex_area *area;
	u64 id;
	u64 len;
	atomic_t state;
	atomic_t refs;
	bool fail;
	u32 short_by;
	bool defer;
	long result;
	struct completion *waiter;
	struct work_struct work;
};

/* Device mode: the request state in front of its bio. */
struct ex_bio {
	struct ex_req req;
	struct bio bio;
};

/* File mode: a kiocb and its bvecs (the kernel's struct swap_iocb). */
struct ex_kio {
	struct ex_req req;
	struct kiocb iocb;
	struct bio_vec bvec[SWAPDIO_MAX_SEGMENTS];
};

static void ex_req_init(struct ex_area *a, struct ex_req *r,
			const struct swapdio_io *io)
{
	r->area = a;
	r->id = io->id;
	r->len = io->len;
	atomic_set(&r->state, EX_SUBMITTING);
	atomic_set(&r->refs, 2);
	r->fail = io->direction == SWAPDIO_DIRECTION_WRITE &&
		  atomic_dec_if_positive(&a->fail_writes) >= 0;
	r->short_by = io->len > PAGE_SIZE &&
		      atomic_dec_if_positive(&a->short_next) >= 0 ? PAGE_SIZE : 0;
	r->defer = a->defer_to_wq;
	r->waiter = NULL;
}

/*
 * Device mode: the bio is ours, freed by the last of submit and completion. File mode:
 * the request lives in the engine's storage, which the engine owns again once
 * swapdio_complete() accepted the completion and submit returned: nothing to free, and
 * nothing may touch the request after swapdio_complete().
 */
static void ex_req_put(struct ex_req *r, bool device)
{
	if (device && atomic_dec_and_test(&r->refs))
		bio_put(&container_of(r, struct ex_bio, req)->bio);
}

static void ex_req_finish(struct ex_req *r, long result)
{
	struct ex_area *a = r->area;
	struct completion *waiter = r->waiter;
	bool device = a->mode == SWAPDIO_MODE_DEVICE;
	int rc = swapdio_complete(a->engine, r->id, result);

	if (rc)
		pr_err("swapdio_example: FAIL %s: swapdio_complete: %d\n", a->name, rc);
	if (waiter)
		complete(waiter);
	ex_req_put(r, device);
}

static void ex_req_work(struct work_struct *work)
{
	struct ex_req *r = container_of(work, struct ex_req, work);

	ex_req_finish(r, r->result);
}

/* The completion side shared by bi_end_io and ki_complete: any context. */
static void ex_req_done(struct ex_req *r, long result)
{
	struct ex_area *a = r->area;

	if (in_hardirq())
		atomic_inc(&a->hardirq_completions);
	if (atomic_xchg(&r->state, EX_COMPLETED) == EX_SUBMITTING)
		atomic_inc(&a->races);
	if (result >= 0 && r->fail)
		result = -EIO;
	else if (result >= 0 && r->short_by)
		result -= r->short_by;
	if (r->defer) {
		r->result = result;
		INIT_WORK(&r->work, ex_req_work);
		queue_work(system_unbound_wq, &r->work);
		return;
	}
	ex_req_finish(r, result);
}

/* Submit's side after handing the request over; @r may have completed already. */
static s64 ex_req_submitted(struct ex_req *r, struct completion *waiter)
{
	/* Waiting here, still "submitting", makes the completion overtake submit. */
	if (waiter)
		wait_for_completion(waiter);
	atomic_cmpxchg(&r->state, EX_SUBMITTING, EX_SUBMITTED);
	ex_req_put(r, r->area->mode == SWAPDIO_MODE_DEVICE);
	return SWAPDIO_QUEUED;
}

static void ex_bio_end_io(struct bio *bio)
{
	struct ex_bio *eb = container_of(bio, struct ex_bio, bio);

	ex_req_done(&eb->req, bio->bi_status ? blk_status_to_errno(bio->bi_status)
					     : (long)eb->req.len);
}

/* Adds a segment page by page (bio_add_folio() is not exported to modules in 6.1). */
static bool ex_bio_add(struct bio *bio, const struct swapdio_segment *s)
{
	struct folio *folio = (struct folio *)(uintptr_t)s->folio;
	u32 off = s->offset, end = s->offset + s->len;

	while (off < end) {
		u32 in_page = off & ~PAGE_MASK;
		u32 n = min_t(u32, end - off, PAGE_SIZE - in_page);

		if (bio_add_page(bio, folio_page(folio, off >> PAGE_SHIFT), n, in_page) != n)
			return false;
		off += n;
	}
	return true;
}

static s64 ex_bio_submit(void *ctx, const struct swapdio_io *io)
{
	struct ex_area *a = ctx;
	bool write = io->direction == SWAPDIO_DIRECTION_WRITE;
	blk_opf_t opf = (write ? REQ_OP_WRITE : REQ_OP_READ) | REQ_SWAP;
	DECLARE_COMPLETION_ONSTACK(done);
	unsigned short vecs = 0;
	struct ex_bio *eb;
	struct bio *bio;
	u32 i;

	if (io->flags & SWAPDIO_REQ_SYNC)
		opf |= REQ_SYNC;
	for (i = 0; i < io->nr_segments; i++)
		vecs += DIV_ROUND_UP((io->segments[i].offset & ~PAGE_MASK) +
				     io->segments[i].len, PAGE_SIZE);
	bio = bio_alloc_bioset(a->bdev, min_t(unsigned short, vecs, BIO_MAX_VECS), opf,
			       GFP_NOIO, &a->bs);
	eb = container_of(bio, struct ex_bio, bio);
	ex_req_init(a, &eb->req, io);
	bio->bi_iter.bi_sector = io->pos >> SECTOR_SHIFT;
	bio->bi_end_io = ex_bio_end_io;
	for (i = 0; i < io->nr_segments; i++) {
		if (!ex_bio_add(bio, &io->segments[i])) {
			bio_put(bio);
			return -EIO;
		}
	}
	if (atomic_dec_if_positive(&a->wait_in_submit) >= 0)
		eb->req.waiter = &done;
	submit_bio(bio);
	return ex_req_submitted(&eb->req, eb->req.waiter);
}

/* Device mode: direct bios to the block device at the mapped positions. */
const struct swapdio_backend_ops ex_bio_ops = {
	.caps = SWAPDIO_CAP_DIO_READ | SWAPDIO_CAP_DIO_WRITE |
		SWAPDIO_CAP_OVERWRITE_IN_PLACE | SWAPDIO_CAP_STABLE_ON_COMPLETE,
	.submit = ex_bio_submit,
};

static void ex_kio_complete(struct kiocb *iocb, long ret)
{
	struct ex_kio *k = container_of(iocb, struct ex_kio, iocb);

	ex_req_done(&k->req, ret);
}

static s64 ex_kio_submit(void *ctx, const struct swapdio_io *io)
{
	struct ex_area *a = ctx;
	bool write = io->direction == SWAPDIO_DIRECTION_WRITE;
	DECLARE_COMPLETION_ONSTACK(done);
	struct iov_iter iter;
	struct ex_kio *k;
	ssize_t ret;
	u32 i;

	k = io->backend_data;
	ex_req_init(a, &k->req, io);
	for (i = 0; i < io->nr_segments; i++) {
		const struct swapdio_segment *s = &io->segments[i];
		struct folio *folio = (struct folio *)(uintptr_t)s->folio;

		bvec_set_page(&k->bvec[i], folio_page(folio, s->offset >> PAGE_SHIFT),
			      s->len, s->offset & ~PAGE_MASK);
	}
	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST, k->bvec,
		      io->nr_segments, io->len);
	init_sync_kiocb(&k->iocb, a->file);
	k->iocb.ki_pos = io->pos;
	k->iocb.ki_flags = IOCB_DIRECT | (write ? IOCB_WRITE : 0);
	k->iocb.ki_complete = ex_kio_complete;
	if (atomic_dec_if_positive(&a->wait_in_submit) >= 0)
		k->req.waiter = &done;
	if (write)
		ret = call_write_iter(a->file, &k->iocb, &iter);
	else
		ret = call_read_iter(a->file, &k->iocb, &iter);
	if (ret != -EIOCBQUEUED)
		ex_kio_complete(&k->iocb, ret);
	return ex_req_submitted(&k->req, k->req.waiter);
}

/* File mode: IOCB_DIRECT kiocbs on the swap file at file positions (->swap_rw). */
const struct swapdio_backend_ops ex_kio_ops = {
	.caps = SWAPDIO_CAP_SWAP_RW | SWAPDIO_CAP_OVERWRITE_IN_PLACE |
		SWAPDIO_CAP_STABLE_ON_COMPLETE | SWAPDIO_CAP_REQUIRES_NOFS,
	.submit = ex_kio_submit,
};

/**
 * ex_bio_setup() - the bio set of a device-mode area.
 * @a: the area, @a->bdev set.
 *
 * Return: 0 or a negative errno.
 */
int ex_bio_setup(struct ex_area *a)
{
	return bioset_init(&a->bs, 64, offsetof(struct ex_bio, bio), BIOSET_NEED_BVECS);
}

/**
 * ex_bio_teardown() - release what ex_bio_setup() took.
 * @a: the area.
 */
void ex_bio_teardown(struct ex_area *a)
{
	bioset_exit(&a->bs);
}

/* Private space the file-mode backend needs per request (swapdio_io.backend_data). */
const size_t ex_kio_size = sizeof(struct ex_kio);

/**
 * ex_sync_rw() - read or write one page outside the engine (the swap header).
 * @a: the area: device mode uses a bio to @a->bdev, file mode a kernel_read/write.
 * @write: true to write.
 * @pos: byte position on the device or in the file.
 * @buf: one page of kernel memory (page aligned).
 *
 * Return: 0 or a negative errno.
 */
int ex_sync_rw(struct ex_area *a, bool write, u64 pos, void *buf)
{
	loff_t off = pos;
	ssize_t n;
	int rc;

	if (a->mode == SWAPDIO_MODE_DEVICE) {
		struct bio *bio = bio_alloc(a->bdev, 1, write ? REQ_OP_WRITE | REQ_SYNC :
					    REQ_OP_READ, GFP_KERNEL);

		bio->bi_iter.bi_sector = pos >> SECTOR_SHIFT;
		__bio_add_page(bio, virt_to_page(buf), PAGE_SIZE, 0);
		rc = submit_bio_wait(bio);
		bio_put(bio);
		return rc;
	}
	n = write ? kernel_write(a->file, buf, PAGE_SIZE, &off) :
		    kernel_read(a->file, buf, PAGE_SIZE, &off);
	if (n != PAGE_SIZE)
		return n < 0 ? n : -EIO;
	if (!write)
		return 0;
	rc = vfs_fsync(a->file, 0);
	if (rc)
		return rc;
	/* Later direct I/O bypasses the page cache: drop the cached header page. */
	return invalidate_inode_pages2(a->file->f_mapping);
}

/**
 * ex_file_extents() - the swap file's extent reports, from bmap() as swapon's
 * generic_swapfile_activate() gets them.
 * @file: the swap file.
 * @ext: output array.
 * @max: entries of @ext.
 * @nr: extents written.
 * @size: i_size of the file.
 *
 * Return: 0, -EINVAL for a hole or a block size that is not the page size, -E2BIG
 * if @max is too small.
 */
int ex_file_extents(struct file *file, struct swapdio_extent *ext, size_t max,
		    size_t *nr, u64 *size)
{
	struct inode *inode = file_inode(file);
	u64 blocks, b, dev = inode->i_sb->s_dev;
	size_t n = 0;

	*size = i_size_read(inode);
	if (inode->i_blkbits != PAGE_SHIFT)
		return -EINVAL;
	blocks = *size >> PAGE_SHIFT;
	for (b = 0; b < blocks; b++) {
		sector_t block = b;
		u64 phys;

		if (bmap(inode, &block) || !block)
			return -EINVAL;
		phys = (u64)block << PAGE_SHIFT;
		if (n && ext[n - 1].physical + ext[n - 1].length == phys) {
			ext[n - 1].length += PAGE_SIZE;
			continue;
		}
		if (n == max)
			return -E2BIG;
		ext[n++] = (struct swapdio_extent) {
			.logical = b << PAGE_SHIFT, .physical = phys,
			.length = PAGE_SIZE, .device = dev,
		};
	}
	*nr = n;
	return 0;
}
