// SPDX-License-Identifier: GPL-2.0
/*
 * The pool: memory blocks seamless took offline (old kernel: they stay
 * "System RAM" with their direct mapping, and a memory notifier keeps them
 * from being onlined while the pool holds them) or left reserved by
 * memmap= (new kernel, given back with add_memory()).
 *
 * Blocks live in a fixed array that is only appended to, so that a block's
 * address and mapping can be looked up without a lock; the page bitmaps and
 * counters change under the pool's mutex. Lock order: a file's semaphore,
 * then the pool's mutex.
 */
#include <linux/bitmap.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/slab.h>
#include <linux/sort.h>

#include "seamlessmem.h"

/* Every pool of this kernel, for the memory notifier. */
static LIST_HEAD(smem_pools);
static DEFINE_MUTEX(smem_pools_lock);

struct smem_pool *smem_pool_new(void)
{
	struct smem_pool *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	p->blocks = kvcalloc(SMEM_MAX_BLOCKS, sizeof(*p->blocks), GFP_KERNEL);
	if (!p->blocks) {
		kfree(p);
		return NULL;
	}
	mutex_init(&p->lock);
	p->bs = memory_block_size_bytes();
	p->ret_bs = p->bs;
	mutex_lock(&smem_pools_lock);
	list_add(&p->node, &smem_pools);
	mutex_unlock(&smem_pools_lock);
	return p;
}

static unsigned long block_pages(struct smem_pool *p)
{
	return p->bs >> PAGE_SHIFT;
}

/* The block holding phys, or NULL. Lock-free: entries below nr never change
 * address or mapping while their pages are in use. */
static struct smem_block *find_block(struct smem_pool *p, phys_addr_t phys)
{
	unsigned int i, nr = smp_load_acquire(&p->nr);

	for (i = 0; i < nr; i++) {
		struct smem_block *b = &p->blocks[i];

		/* A block given back may be taken again: a later entry. */
		if (!b->gone && phys >= b->phys && phys - b->phys < p->bs)
			return b;
	}
	return NULL;
}

void *smem_pool_va(struct smem_pool *p, phys_addr_t phys)
{
	struct smem_block *b = find_block(p, phys);

	return b ? b->va + (phys - b->phys) : NULL;
}

struct ram_walk {
	u64 bytes;
	bool driver_managed;
};

static int count_ram(struct resource *res, void *arg)
{
	struct ram_walk *w = arg;

	w->bytes += resource_size(res);
	if (res->flags & IORESOURCE_SYSRAM_DRIVER_MANAGED)
		w->driver_managed = true;
	return 0;
}

/* Whether a live block taken offline overlaps [start, end). Lock-free, as
 * find_block: the notifier runs under the hotplug lock, and the pool's own
 * paths take that lock (add_memory) while they hold p->lock. */
static bool holds_offlined(struct smem_pool *p, phys_addr_t start, phys_addr_t end)
{
	unsigned int i, nr = smp_load_acquire(&p->nr);

	for (i = 0; i < nr; i++) {
		struct smem_block *b = &p->blocks[i];

		if (b->offlined && !READ_ONCE(b->gone) && b->phys < end && start < b->phys + p->bs)
			return true;
	}
	return false;
}

/* Refuses to online memory that a pool holds offline: its pages are the
 * image's, written through the direct mapping, and onlining would hand
 * them to the page allocator. */
static int smem_memory_event(struct notifier_block *nb, unsigned long action, void *data)
{
	struct memory_notify *arg = data;
	phys_addr_t start = PFN_PHYS(arg->start_pfn);
	phys_addr_t end = start + PFN_PHYS(arg->nr_pages);
	struct smem_pool *p;
	int ret = NOTIFY_OK;

	if (action != MEM_GOING_ONLINE)
		return NOTIFY_OK;
	mutex_lock(&smem_pools_lock);
	list_for_each_entry(p, &smem_pools, node) {
		if (holds_offlined(p, start, end)) {
			pr_warn(SMEM_NAME ": %#llx-%#llx holds a seamless image: not onlined\n",
				(u64)start, (u64)end - 1);
			ret = notifier_from_errno(-EBUSY);
			break;
		}
	}
	mutex_unlock(&smem_pools_lock);
	return ret;
}

static struct notifier_block smem_memory_nb = {
	.notifier_call = smem_memory_event,
};

int smem_pool_notifier_register(void)
{
	return register_memory_notifier(&smem_memory_nb);
}

void smem_pool_notifier_unregister(void)
{
	unregister_memory_notifier(&smem_memory_nb);
}

/* Whether every section of [phys, phys+len) is offline. */
static bool all_offline(phys_addr_t phys, u64 len)
{
	unsigned long pfn;

	for (pfn = PHYS_PFN(phys); pfn < PHYS_PFN(phys + len); pfn += PAGES_PER_SECTION)
		if (pfn_to_online_page(pfn))
			return false;
	return true;
}

/* Whether [phys, phys+len) is all plain System RAM (not memory a driver
 * such as virtio-mem or dax/kmem manages) with more System RAM above it:
 * the block holding the end of boot memory stays, so that the next kernel
 * computes the same memory block size. */
static int check_ram(phys_addr_t phys, u64 len)
{
	struct ram_walk w = {};
	struct ram_walk above = {};

	walk_iomem_res_desc(IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY,
			    phys, phys + len - 1, &w, count_ram);
	if (w.bytes != len || w.driver_managed)
		return -EINVAL;
	walk_iomem_res_desc(IORES_DESC_NONE, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY,
			    phys + len, (u64)-1, &above, count_ram);
	if (!above.bytes)
		return -EINVAL;
	return 0;
}

static int cmp_phys(const void *a, const void *b)
{
	const struct smem_range *x = a, *y = b;

	return x->phys < y->phys ? -1 : x->phys > y->phys;
}

/* The blocks held (and extra, if not -1), merged into ranges: returns how
 * many there are (UINT_MAX if memory ran out), storing at most max. */
static unsigned int merged_ranges(struct smem_pool *p, phys_addr_t extra,
				  struct smem_range *out, unsigned int max)
{
	struct smem_range *all;
	phys_addr_t start = 0, end = 0;
	unsigned int i, n = 0, m = 0;

	all = kvmalloc_array(p->nr + 1, sizeof(*all), GFP_KERNEL);
	if (!all)
		return UINT_MAX;
	for (i = 0; i < p->nr; i++)
		if (!p->blocks[i].gone)
			all[n++] = (struct smem_range){ p->blocks[i].phys, p->bs };
	if (extra != (phys_addr_t)-1)
		all[n++] = (struct smem_range){ extra, p->bs };
	sort(all, n, sizeof(*all), cmp_phys, NULL);
	for (i = 0; i < n; i++) {
		if (m && all[i].phys == end) {
			end += all[i].size;
			if (out && m <= max)
				out[m - 1].size = end - start;
			continue;
		}
		start = all[i].phys;
		end = start + all[i].size;
		if (out && m < max)
			out[m] = all[i];
		m++;
	}
	kvfree(all);
	return m;
}

static void add_back(phys_addr_t phys, u64 len, unsigned long unit)
{
	u64 off;

	for (off = 0; off < len; off += unit) {
		int nid = memory_add_physaddr_to_nid(phys + off);
		int ret = add_memory(nid, phys + off, unit, MHP_MERGE_RESOURCE);

		if (ret)
			pr_err(SMEM_NAME ": could not give %#llx-%#llx back to the system (add_memory: %d); it stays unused until the next boot\n",
			       (u64)(phys + off), (u64)(phys + off + unit - 1), ret);
	}
}

/* Unmaps and unclaims a block that holds nothing any more. A block taken
 * offline may be onlined from then on (by seamless, through sysfs). */
static void retire(struct smem_pool *p, struct smem_block *b)
{
	memunmap(b->va);
	b->va = NULL;
	if (b->claimed) {
		release_mem_region(b->phys, p->bs);
		b->claimed = false;
	}
	WRITE_ONCE(b->gone, true);
}

int smem_pool_grow(struct smem_pool *p, u64 phys)
{
	struct smem_block *b;
	unsigned long *map;
	void *va;
	int ret;

	if (!IS_ALIGNED(phys, p->bs))
		return -EINVAL;
	mutex_lock(&p->lock);
	ret = -EPERM;
	if (p->handover)
		goto out;
	ret = -EBUSY;
	if (p->sealed)
		goto out;
	ret = -ENOSPC;
	if (p->nr >= SMEM_MAX_BLOCKS)
		goto out;
	ret = -EEXIST;
	if (find_block(p, phys))
		goto out;
	ret = -E2BIG;
	if (merged_ranges(p, phys, NULL, 0) > SMEM_MAX_RANGES)
		goto out;
	ret = check_ram(phys, p->bs);
	if (ret)
		goto out;
	/* User space took the block offline (sysfs): its pages are out of
	 * the allocator but still "System RAM", direct-mapped. Not removed:
	 * hot-removing boot memory oopsed Debian's 6.1 (docs/kmod.md). */
	ret = -EBUSY;
	if (!all_offline(phys, p->bs))
		goto out;
	ret = -ENOMEM;
	map = bitmap_zalloc(block_pages(p), GFP_KERNEL);
	if (!map)
		goto out;
	va = memremap(phys, p->bs, MEMREMAP_WB);
	if (!va) {
		bitmap_free(map);
		goto out;
	}
	b = &p->blocks[p->nr];
	*b = (struct smem_block){ .phys = phys, .va = va, .map = map, .offlined = true };
	smp_store_release(&p->nr, p->nr + 1);
	/* Onlined between the check and now: the notifier did not know it. */
	ret = -EBUSY;
	if (!all_offline(phys, p->bs)) {
		retire(p, b);
		goto out;
	}
	ret = 0;
out:
	mutex_unlock(&p->lock);
	return ret;
}

static unsigned long take(struct smem_pool *p, struct smem_block *b, unsigned long start,
			  unsigned long want)
{
	unsigned long n = block_pages(p);
	unsigned long end = find_next_bit(b->map, n, start);
	unsigned long got = min(end - start, want);

	bitmap_set(b->map, start, got);
	b->used += got;
	b->hint = start + got;
	return got;
}

int smem_pool_alloc(struct smem_pool *p, unsigned long want, phys_addr_t after,
		    phys_addr_t *phys, unsigned long *got)
{
	unsigned long n = block_pages(p);
	struct smem_block *b;
	unsigned int i;
	int ret = -ENOSPC;

	mutex_lock(&p->lock);
	if (p->handover || p->sealed) {
		ret = -EROFS;
		goto out;
	}
	/* Right after the file's previous run, so that files stay in few runs. */
	b = after ? find_block(p, after) : NULL;
	if (b && after - b->phys < p->bs) {
		unsigned long idx = (after - b->phys) >> PAGE_SHIFT;

		if (idx < n && !test_bit(idx, b->map)) {
			*got = take(p, b, idx, want);
			*phys = b->phys + ((phys_addr_t)idx << PAGE_SHIFT);
			ret = 0;
			goto out;
		}
	}
	for (i = 0; i < p->nr; i++) {
		unsigned long idx;

		b = &p->blocks[i];
		if (b->gone || b->used == n)
			continue;
		idx = find_next_zero_bit(b->map, n, b->hint);
		if (idx >= n)
			idx = find_first_zero_bit(b->map, n);
		if (idx >= n)
			continue;
		*got = take(p, b, idx, want);
		*phys = b->phys + ((phys_addr_t)idx << PAGE_SHIFT);
		ret = 0;
		goto out;
	}
out:
	mutex_unlock(&p->lock);
	return ret;
}

int smem_pool_alloc_contig(struct smem_pool *p, unsigned long pages, phys_addr_t *phys)
{
	unsigned long n = block_pages(p);
	unsigned int i;
	int ret = -ENOSPC;

	if (!pages || pages > n)
		return -ENOSPC;
	mutex_lock(&p->lock);
	for (i = 0; i < p->nr; i++) {
		struct smem_block *b = &p->blocks[i];
		unsigned long idx;

		if (b->gone)
			continue;
		idx = bitmap_find_next_zero_area(b->map, n, 0, pages, 0);
		if (idx >= n)
			continue;
		bitmap_set(b->map, idx, pages);
		b->used += pages;
		*phys = b->phys + ((phys_addr_t)idx << PAGE_SHIFT);
		ret = 0;
		break;
	}
	mutex_unlock(&p->lock);
	return ret;
}

/* Gives back every unit of add_memory() (this kernel's memory block) that
 * is wholly made of empty blocks of the pool around b. */
static void give_back_around(struct smem_pool *p, struct smem_block *b)
{
	phys_addr_t gs = round_down(b->phys, p->ret_bs);
	phys_addr_t ge = round_up(b->phys + p->bs, p->ret_bs);
	phys_addr_t at;
	unsigned int i;

	for (at = gs; at < ge; at += p->bs) {
		struct smem_block *c = find_block(p, at);

		if (!c || c->used)
			return;
	}
	for (i = 0; i < p->nr; i++) {
		struct smem_block *c = &p->blocks[i];

		if (!c->gone && c->phys >= gs && c->phys < ge)
			retire(p, c);
	}
	/* A block taken offline is still this kernel's: seamless onlines it. */
	if (!b->offlined)
		add_back(gs, ge - gs, p->ret_bs);
}

void smem_pool_free(struct smem_pool *p, phys_addr_t phys, unsigned long pages, bool give_back)
{
	struct smem_block *b;
	unsigned long idx;

	if (!pages)
		return;
	mutex_lock(&p->lock);
	b = find_block(p, phys);
	if (WARN_ON_ONCE(!b))
		goto out;
	idx = (phys - b->phys) >> PAGE_SHIFT;
	if (WARN_ON_ONCE(idx + pages > block_pages(p)))
		goto out;
	bitmap_clear(b->map, idx, pages);
	b->used -= pages;
	b->hint = min(b->hint, idx);
	if (give_back && !b->used)
		give_back_around(p, b);
out:
	mutex_unlock(&p->lock);
}

void smem_pool_info(struct smem_pool *p, struct smem_info *info)
{
	unsigned int i;

	memset(info, 0, sizeof(*info));
	mutex_lock(&p->lock);
	info->block_size = memory_block_size_bytes();
	for (i = 0; i < p->nr; i++) {
		if (p->blocks[i].gone)
			continue;
		info->pool_bytes += p->bs;
		info->used_bytes += (u64)p->blocks[i].used << PAGE_SHIFT;
	}
	info->nr_ranges = min_t(unsigned int, SMEM_MAX_RANGES,
				merged_ranges(p, (phys_addr_t)-1, info->ranges, SMEM_MAX_RANGES));
	if (p->sealed) {
		info->flags |= SMEM_INFO_SEALED;
		info->index_phys = p->index_phys;
		info->index_len = p->index_len;
	}
	if (p->handover)
		info->flags |= SMEM_INFO_HANDOVER;
	mutex_unlock(&p->lock);
}

void smem_pool_usage(struct smem_pool *p, u64 *total, u64 *used)
{
	unsigned int i;

	*total = *used = 0;
	mutex_lock(&p->lock);
	for (i = 0; i < p->nr; i++) {
		if (p->blocks[i].gone)
			continue;
		*total += p->bs;
		*used += (u64)p->blocks[i].used << PAGE_SHIFT;
	}
	mutex_unlock(&p->lock);
}

/* Gives every block back to the system: the end of a mount. */
void smem_pool_destroy(struct smem_pool *p)
{
	unsigned int i;

	if (!p)
		return;
	mutex_lock(&smem_pools_lock);
	list_del(&p->node);
	mutex_unlock(&smem_pools_lock);
	mutex_lock(&p->lock);
	/* A sealed pool is the next kernel's: the final unmount of a shutdown
	 * comes before the kexec, and memory given back then could be reused
	 * by this kernel before it ends. Its blocks stay out of the system
	 * (seamless unseals first when it abandons an update). */
	if (p->sealed && !p->handover) {
		unsigned int kept = 0;

		for (i = 0; i < p->nr; i++) {
			if (!p->blocks[i].gone) {
				retire(p, &p->blocks[i]);
				kept++;
			}
		}
		pr_info(SMEM_NAME ": sealed: %u blocks stay out of the system for the next kernel\n", kept);
	}
	for (i = 0; i < p->nr; i++) {
		struct smem_block *b = &p->blocks[i];

		if (b->gone)
			continue;
		if (b->used)
			pr_warn(SMEM_NAME ": block %#llx still had %lu pages in use at unmount\n",
				(u64)b->phys, b->used);
		b->used = 0;
		bitmap_zero(b->map, block_pages(p));
		give_back_around(p, b);
	}
	/* What could not be given back in whole units stays unused. */
	for (i = 0; i < p->nr; i++) {
		struct smem_block *b = &p->blocks[i];

		if (!b->gone) {
			pr_warn(SMEM_NAME ": %#llx-%#llx is not a whole memory block of this kernel: it stays reserved until the next boot\n",
				(u64)b->phys, (u64)(b->phys + p->bs - 1));
			retire(p, b);
		}
		bitmap_free(b->map);
	}
	mutex_unlock(&p->lock);
	kvfree(p->blocks);
	kfree(p);
}

struct reserved_walk {
	u64 bytes;
};

static int count_reserved(struct resource *res, void *arg)
{
	struct reserved_walk *w = arg;

	w->bytes += resource_size(res);
	return 0;
}

/* Whether [phys, phys+len) is all e820-reserved ("Reserved" in /proc/iomem,
 * as memmap=nn$ss makes it) and none of it System RAM. */
bool smem_reserved_range(phys_addr_t phys, u64 len)
{
	struct reserved_walk w = {};

	if (!len || phys + len < phys)
		return false;
	if (region_intersects(phys, len, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) != REGION_DISJOINT)
		return false;
	walk_iomem_res_desc(IORES_DESC_RESERVED, IORESOURCE_MEM, phys, phys + len - 1, &w,
			    count_reserved);
	return w.bytes == len;
}

int smem_pool_adopt(struct smem_pool *p, const struct smem_range *ranges, unsigned int nr,
		    unsigned long old_bs)
{
	unsigned int i;
	u64 off;
	int ret = 0;

	mutex_lock(&p->lock);
	p->bs = old_bs;
	p->ret_bs = memory_block_size_bytes();
	p->handover = true;
	for (i = 0; i < nr && !ret; i++) {
		for (off = 0; off < ranges[i].size; off += old_bs) {
			phys_addr_t phys = ranges[i].phys + off;
			struct smem_block *b;
			unsigned long *map;
			void *va;

			if (p->nr >= SMEM_MAX_BLOCKS) {
				ret = -E2BIG;
				break;
			}
			if (!request_mem_region(phys, old_bs, "seamless image")) {
				pr_err(SMEM_NAME ": %#llx-%#llx is in use by someone else\n",
				       (u64)phys, (u64)(phys + old_bs - 1));
				ret = -EBUSY;
				break;
			}
			map = bitmap_zalloc(old_bs >> PAGE_SHIFT, GFP_KERNEL);
			va = map ? memremap(phys, old_bs, MEMREMAP_WB) : NULL;
			if (!va) {
				bitmap_free(map);
				release_mem_region(phys, old_bs);
				ret = -ENOMEM;
				break;
			}
			b = &p->blocks[p->nr];
			*b = (struct smem_block){ .phys = phys, .va = va, .map = map, .claimed = true };
			smp_store_release(&p->nr, p->nr + 1);
		}
	}
	mutex_unlock(&p->lock);
	return ret;
}

/* Marks [phys, phys+len) in use (handover): it must be inside one block of
 * the pool and not marked yet (no two files share memory). */
int smem_pool_mark(struct smem_pool *p, phys_addr_t phys, u64 len)
{
	unsigned long idx, pages = len >> PAGE_SHIFT;
	struct smem_block *b;
	int ret = -EINVAL;

	if (!len || !PAGE_ALIGNED(phys) || !PAGE_ALIGNED(len))
		return -EINVAL;
	mutex_lock(&p->lock);
	b = find_block(p, phys);
	/* len comes from the index: compared so that it cannot wrap. */
	if (!b || len > p->bs - (phys - b->phys))
		goto out;
	idx = (phys - b->phys) >> PAGE_SHIFT;
	if (find_next_bit(b->map, idx + pages, idx) < idx + pages)
		goto out;
	bitmap_set(b->map, idx, pages);
	b->used += pages;
	ret = 0;
out:
	mutex_unlock(&p->lock);
	return ret;
}

/* Gives back the blocks nothing was found in (handover). */
void smem_pool_release_empty(struct smem_pool *p)
{
	unsigned int i;

	mutex_lock(&p->lock);
	for (i = 0; i < p->nr; i++)
		if (!p->blocks[i].gone && !p->blocks[i].used)
			give_back_around(p, &p->blocks[i]);
	mutex_unlock(&p->lock);
}
