// SPDX-License-Identifier: GPL-2.0
/*
 * The pool: memory taken out of the page allocator in pieces with
 * alloc_contig_range() (old kernel: still "System RAM", direct-mapped,
 * allocated to the module), or left reserved by memmap= (new kernel, given
 * back with add_memory() in whole memory blocks).
 *
 * Entries live in a fixed array that is only appended to, so that an entry's
 * address and mapping can be looked up without a lock; the page bitmaps and
 * counters change under the pool's mutex. Lock order: a file's semaphore,
 * then the pool's mutex.
 */
#include <linux/bitmap.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/slab.h>
#include <linux/sort.h>

#include "seamlessmem.h"

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
	p->ret_bs = memory_block_size_bytes();
	p->bs = min_t(u64, SMEM_PIECE_SIZE, p->ret_bs);
	return p;
}

static unsigned long block_pages(struct smem_pool *p)
{
	return p->bs >> PAGE_SHIFT;
}

/* The entry holding phys, or NULL. Lock-free: entries below nr never change
 * address or mapping while their pages are in use. */
static struct smem_block *find_block(struct smem_pool *p, phys_addr_t phys)
{
	unsigned int i, nr = smp_load_acquire(&p->nr);

	for (i = 0; i < nr; i++) {
		struct smem_block *b = &p->blocks[i];

		/* An entry given back may be taken again: a later entry. */
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

/* The entries held (and [extra, extra+extra_len) if extra_len), each
 * rounded out to unit, merged into ranges: returns how many there are
 * (UINT_MAX if memory ran out), storing at most max. */
static unsigned int merged_ranges(struct smem_pool *p, phys_addr_t extra, u64 extra_len,
				  u64 unit, struct smem_range *out, unsigned int max)
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
	if (extra_len)
		all[n++] = (struct smem_range){ extra, extra_len };
	for (i = 0; i < n; i++) {
		phys_addr_t s = round_down(all[i].phys, unit);

		all[i].size = round_up(all[i].phys + all[i].size, unit) - s;
		all[i].phys = s;
	}
	sort(all, n, sizeof(*all), cmp_phys, NULL);
	for (i = 0; i < n; i++) {
		if (m && all[i].phys <= end) {
			end = max_t(phys_addr_t, end, all[i].phys + all[i].size);
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

/* Unmaps and unclaims an entry that holds nothing any more. Its memory is
 * not given back here (see give_back_around). */
static void retire(struct smem_pool *p, struct smem_block *b)
{
	if (b->claimed) {
		memunmap(b->va);
		release_mem_region(b->phys, p->bs);
		b->claimed = false;
	}
	b->va = NULL;
	WRITE_ONCE(b->gone, true);
}

int smem_pool_take(struct smem_pool *p, u64 phys, u64 len)
{
	u64 mbs = memory_block_size_bytes();
	unsigned long n, i, **maps;
	struct page *first, *last;
	int ret;

	if (!len || !IS_ALIGNED(phys, p->bs) || !IS_ALIGNED(len, p->bs) || phys + len < phys ||
	    round_down(phys, mbs) != round_down(phys + len - 1, mbs))
		return -EINVAL;
	n = len / p->bs;
	maps = kcalloc(n, sizeof(*maps), GFP_KERNEL);
	if (!maps)
		return -ENOMEM;
	mutex_lock(&p->lock);
	ret = -EPERM;
	if (p->handover)
		goto out;
	ret = -EBUSY;
	if (p->sealed)
		goto out;
	ret = -ENOSPC;
	if (p->nr + n > SMEM_MAX_BLOCKS)
		goto out;
	ret = -EEXIST;
	for (i = 0; i < n; i++)
		if (find_block(p, phys + i * p->bs))
			goto out;
	/* The next kernel reserves the memory blocks around the pieces. */
	ret = -E2BIG;
	if (merged_ranges(p, phys, len, mbs, NULL, 0) > SMEM_MAX_RANGES)
		goto out;
	ret = check_ram(round_down(phys, mbs), mbs);
	if (ret)
		goto out;
	/* alloc_contig_range() works inside one zone. */
	ret = -EINVAL;
	first = pfn_to_online_page(PHYS_PFN(phys));
	last = pfn_to_online_page(PHYS_PFN(phys + len) - 1);
	if (!first || !last || page_zone(first) != page_zone(last))
		goto out;
	ret = -ENOMEM;
	for (i = 0; i < n; i++) {
		maps[i] = bitmap_zalloc(block_pages(p), GFP_KERNEL);
		if (!maps[i])
			goto out;
	}
	/* Migrates what is in use there; fails (EBUSY) on a page that cannot
	 * move. The pages stay System RAM in the direct mapping, allocated to
	 * the pool until it gives them back (free_contig_range). */
	ret = alloc_contig_range(PHYS_PFN(phys), PHYS_PFN(phys + len), SMEM_CONTIG_MOVABLE,
				 GFP_KERNEL | __GFP_NOWARN);
	if (ret)
		goto out;
	for (i = 0; i < n; i++) {
		phys_addr_t at = phys + i * p->bs;

		p->blocks[p->nr] = (struct smem_block){ .phys = at, .va = phys_to_virt(at),
							 .map = maps[i], .contig = true };
		maps[i] = NULL;
		smp_store_release(&p->nr, p->nr + 1);
	}
out:
	mutex_unlock(&p->lock);
	for (i = 0; i < n; i++)
		bitmap_free(maps[i]);
	kfree(maps);
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

/* Gives b back to the system once it is empty: a piece taken on this
 * kernel goes back to the page allocator by itself; memory reserved at boot
 * in units of add_memory() (this kernel's memory block), each once wholly
 * made of empty entries of the pool. */
static void give_back_around(struct smem_pool *p, struct smem_block *b)
{
	phys_addr_t gs = round_down(b->phys, p->ret_bs);
	phys_addr_t ge = round_up(b->phys + p->bs, p->ret_bs);
	phys_addr_t at;
	unsigned int i;

	if (b->contig) {
		retire(p, b);
		free_contig_range(PHYS_PFN(b->phys), block_pages(p));
		return;
	}
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
	/* Sealed, the ranges the next kernel reserves (smem_pool_next_ranges). */
	info->nr_ranges = min_t(unsigned int, SMEM_MAX_RANGES,
				merged_ranges(p, 0, 0, p->sealed ? p->ret_bs : p->bs, info->ranges,
					      SMEM_MAX_RANGES));
	if (p->sealed) {
		info->flags |= SMEM_INFO_SEALED;
		info->index_phys = p->index_phys;
		info->index_len = p->index_len;
	}
	if (p->handover)
		info->flags |= SMEM_INFO_HANDOVER;
	mutex_unlock(&p->lock);
}

unsigned int smem_pool_next_ranges(struct smem_pool *p, struct smem_range *out, unsigned int max)
{
	unsigned int n;

	mutex_lock(&p->lock);
	n = merged_ranges(p, 0, 0, p->ret_bs, out, max);
	mutex_unlock(&p->lock);
	return n;
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
	mutex_lock(&p->lock);
	/* A sealed pool is the next kernel's: the final unmount of a shutdown
	 * comes before the kexec, and memory given back then could be reused
	 * by this kernel before it ends. Its pieces stay out of the system
	 * (seamless unseals first when it abandons an update). */
	if (p->sealed && !p->handover) {
		unsigned int kept = 0;

		for (i = 0; i < p->nr; i++) {
			if (!p->blocks[i].gone) {
				retire(p, &p->blocks[i]);
				kept++;
			}
		}
		pr_info(SMEM_NAME ": sealed: %u pieces stay out of the system for the next kernel\n", kept);
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
