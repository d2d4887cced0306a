/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * swapdio_swapdev - state shared by the module's files: swapdio_swapdev_main.c (module,
 * engine callbacks, device-mode backend, blk-mq), swapdio_swapdev_file.c (file-mode
 * backend: ->rw_page, the submitter kthread, kiocbs) and swapdio_swapdev_setup.c (layout,
 * activation, claim of the swap file). Contexts are described in swapdio_swapdev_main.c.
 */
#ifndef SWAPDIO_SWAPDEV_H
#define SWAPDIO_SWAPDEV_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/fiemap.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
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

struct swapdev_cmd;

/**
 * struct swapdev_link - link of a free list of objects reserved at load time.
 * @next: the next free object's link, or NULL.
 *
 * Every free list of the device (swapdev.free_ios, swapdev.free_segs) is taken and
 * refilled under swapdev.io_lock, in any context: swapdev_free_pop(), swapdev_free_push().
 */
struct swapdev_link {
	struct swapdev_link *next;
};

/**
 * struct swapdev_seg - one page handed to the engine, the engine's "folio".
 * @page: the page of the request's bio_vec, or the swap-cache page of ->rw_page.
 * @off: offset of the data in @page.
 * @cmd: the upper request it belongs to; NULL for a ->rw_page page.
 * @uptodate: set by the engine's set_uptodate callback (read success).
 * @write: direction (->rw_page pages).
 * @free: free-list link (->rw_page segments).
 *
 * Its address is the folio id the engine hands back to every callback. A blk-mq
 * segment lives in its request's pdu; a ->rw_page segment in swapdev.rw_segs.
 */
struct swapdev_seg {
	struct page *page;
	unsigned int off;
	bool uptodate;
	bool write;
	struct swapdev_cmd *cmd;
	struct swapdev_link free;
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
 * @pos: byte position in the file (file mode) or on the disk (device mode).
 * @len: bytes of the request.
 * @nr_segs: entries of @bvec in use.
 * @write: direction.
 * @inject: fault injection: report -EIO whatever the I/O did.
 * @next: link in the submitter's queue (file mode).
 * @free: link in swapdev.free_ios.
 * @bio: device mode.
 * @iocb: file mode.
 * @bvec: the request's pages.
 */
struct swapdev_io {
	struct swapdev *dev;
	u64 id;
	u64 pos;
	u64 len;
	unsigned int nr_segs;
	bool write;
	bool inject;
	struct swapdev_io *next;
	struct swapdev_link free;
	union {
		struct bio bio;
		struct kiocb iocb;
	};
	struct bio_vec bvec[SWAPDIO_MAX_SEGMENTS];
};

/**
 * struct swapdev - the device.
 * @path: the swap file's path (module parameter file=).
 * @pool: engine requests reserved at load (module parameter pool=).
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
 * @free_ios: free list of @ios.
 * @io_lock: protects @free_ios and @free_segs (taken in any context, interrupts off).
 * @submitter: file mode: the kthread that starts the kiocbs.
 * @sub_head: file mode: kiocbs queued to @submitter, oldest first.
 * @sub_tail: file mode: where the next queued kiocb is linked.
 * @sub_lock: protects @sub_head and @sub_tail (task context only).
 * @sub_wait: @submitter waits there for work.
 * @header: page 0 of /dev/swapdio0 (the outer swap header), in memory.
 * @submit_lock: serialises ->queue_rq and ->rw_page (task context).
 * @rw_segs: file mode: the ->rw_page segments, one per pool request.
 * @free_segs: file mode: free list of @rw_segs (under @io_lock).
 * @pool_wait: ->rw_page waits there for an engine request and a segment.
 * @wplug: file mode: the plug ->rw_page writes go into, finished by @submitter.
 * @wplug_used: @wplug holds pages (under @submit_lock; read locklessly to wake up).
 * @starved: ->queue_rq answered BLK_STS_RESOURCE: rerun the queue on release.
 * @tag_set: blk-mq tag set (one hardware queue).
 * @disk: /dev/swapdio0.
 * @major: its major number.
 * @pins: engine pins taken.
 * @unpins: engine pins dropped (equal to @pins at unload).
 * @resource: BLK_STS_RESOURCE answers.
 * @nomem_retries: file mode: kiocbs the filesystem refused with -ENOMEM, started again.
 * @backend_writes: backend write requests (for fault injection).
 * @injected: backend writes failed on purpose.
 * @upper_errors: upper requests ended with BLK_STS_IOERR.
 * @ev_out: pages counted by SWAPDIO_EVENT_KIND_SWAP_OUT.
 * @ev_in: pages counted by SWAPDIO_EVENT_KIND_SWAP_IN.
 * @ev_write_failed: pages of failed writes.
 * @ev_read_failed: pages of failed reads.
 */
struct swapdev {
	const char *path;
	unsigned int pool;
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
	struct swapdev_link free_ios;
	spinlock_t io_lock; /* @free_ios, @free_segs; any context, irqs off */
	struct task_struct *submitter;
	struct swapdev_io *sub_head;
	struct swapdev_io **sub_tail;
	spinlock_t sub_lock; /* @sub_head, @sub_tail; task context */
	wait_queue_head_t sub_wait;
	struct page *header;
	struct mutex submit_lock; /* ->queue_rq, ->rw_page: exact pool check */
	struct swapdev_seg *rw_segs;
	struct swapdev_link free_segs;
	wait_queue_head_t pool_wait;
	struct swapdio_plug wplug;
	bool wplug_used;
	atomic_t starved;
	struct blk_mq_tag_set tag_set;
	struct gendisk *disk;
	int major;
	atomic64_t pins;
	atomic64_t unpins;
	atomic64_t resource;
	atomic64_t nomem_retries;
	atomic64_t backend_writes;
	atomic64_t injected;
	atomic64_t upper_errors;
	atomic64_t ev_out, ev_in, ev_write_failed, ev_read_failed;
};

/* swapdio_swapdev_main.c */
extern const struct swapdio_backend_ops swapdev_device_ops;
extern const struct swapdio_backend_ops swapdev_file_ops;
extern const struct swapdio_page_ops swapdev_page_ops;
void swapdev_kiocb_complete(struct kiocb *iocb, long ret);
bool swapdev_pool_has(struct swapdev *dev, unsigned int need);
struct swapdev_link *swapdev_free_pop(struct swapdev *dev, struct swapdev_link *list);
void swapdev_free_push(struct swapdev *dev, struct swapdev_link *list,
		       struct swapdev_link *link);

/* swapdio_swapdev_file.c */
extern const struct block_device_operations swapdev_file_fops;
void swapdev_file_queue(struct swapdev *dev, struct swapdev_io *sio);
void swapdev_sub_drain(struct swapdev *dev);
int swapdev_submitter(void *data);
void swapdev_seg_put(struct swapdev *dev, struct swapdev_seg *seg);
int swapdev_prime_file_mode(struct swapdev *dev);

/* swapdio_swapdev_setup.c */
int swapdev_activate(struct swapdev *dev);
int swapdev_claim(struct swapdev *dev);
void swapdev_unclaim(struct swapdev *dev);

#endif /* SWAPDIO_SWAPDEV_H */
