// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * swapdio_swapdev setup: the swap file's layout through the filesystem (FIEMAP), its
 * activation with swapdio (the engine over the slot map), and the claim that keeps the
 * file from changing underneath. Load time only, in the insmod task.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include "swapdio_swapdev.h"

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
			struct swapdio_extent *grown;

			grown = kvmalloc_array(ncap, sizeof(*grown), GFP_KERNEL);

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
int swapdev_activate(struct swapdev *dev)
{
	struct inode *inode = file_inode(dev->file);
	struct swapdio_activation act = { 0 };
	struct swapdio_activation_report rep = { 0 };
	struct swapdio_storage_config sc = { .pool = dev->pool, .sync = 1, .splits = 1 };
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
		pr_err("%s: cannot read the swap header (%d)\n", dev->path, ret);
		ret = ret < 0 ? ret : -EINVAL;
		goto out;
	}
	ret = swapdev_read_layout(dev, &ext, &nr);
	if (ret) {
		pr_err("%s: cannot read the layout (FIEMAP): %d\n", dev->path, ret);
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
		       dev->path, swapdio_refusal_str(rep.refusal),
		       rep.bad_extent == SWAPDIO_NONE ? -1LL : (long long)rep.bad_extent,
		       rep.bad_offset == SWAPDIO_NONE ? -1LL : (long long)rep.bad_offset);
		goto out;
	}
	dev->slots = rep.slots;
	pr_info("%s: %s mode, %zu extents reported, %llu after merging, %llu slots, %llu usable pages\n",
		dev->path, dev->file_mode ? "file" : "device", nr, rep.extents, rep.slots,
		rep.usable_pages);

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

/*
 * Keep the file from changing underneath. Device mode: S_SWAPFILE, as swapon does
 * (write, truncate and fallocate fail with ETXTBSY). File mode writes through the
 * filesystem, whose write checks refuse S_SWAPFILE files, so it takes the
 * protection exec gives a running binary instead: deny_write_access() (no writer may
 * open the file; truncate(2) fails with ETXTBSY). Either way an active swapon of the
 * file is refused, as swapon refuses a second swapon.
 */
int swapdev_claim(struct swapdev *dev)
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

void swapdev_unclaim(struct swapdev *dev)
{
	struct inode *inode = file_inode(dev->file);

	inode_lock(inode);
	if (dev->denied_write)
		allow_write_access(dev->file);
	else
		inode->i_flags &= ~S_SWAPFILE;
	inode_unlock(inode);
}
