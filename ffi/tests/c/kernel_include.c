/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Kernel-style inclusion of swapdio.h: compiled with -ffreestanding -nostdinc -D__KERNEL__
 * against tests/c/kernel_shim (a minimal <linux/types.h>), as a kernel module would.
 */
#include "layout_check.h"

int swapdio_kernel_probe(const struct swapdio_engine *engine, u64 slot);

/* Uses the API the way a kernel caller would: kernel types in, negative errno out. */
int swapdio_kernel_probe(const struct swapdio_engine *engine, u64 slot)
{
	struct swapdio_run run;
	int ret = swapdio_engine_lookup(engine, slot, &run);

	if (ret)
		return ret;
	return run.pages > 0 ? 0 : -22;
}
