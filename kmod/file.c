// SPDX-License-Identifier: GPL-2.0
/*
 * Regular files: their data is a sorted list of runs in the pool; there is
 * no page cache. Reads and writes copy between the pool's kernel mapping and
 * user memory with page faults disabled (after faulting the user buffer in),
 * under the file's semaphore, so that a release can never free memory being
 * copied. Mappings are read-only PFN mappings filled at fault time; a release
 * unmaps them before the memory goes.
 */
#include <linux/capability.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uio.h>

#include "seamlessmem.h"

/* Bytes copied per hold of a file's semaphore. */
#define SMEM_CHUNK (1UL << 20)

struct smem_file *smem_file_new(void)
{
	struct smem_file *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (f)
		init_rwsem(&f->sem);
	return f;
}

static struct smem_file *file_of(struct inode *inode)
{
	struct smem_node *node = inode->i_private;

	return node->file;
}

static struct smem_pool *pool_of(struct inode *inode)
{
	return SMEM_SB(inode->i_sb)->pool;
}

/* Index of the last run starting at or before pos, or -1. */
static int find_ext(struct smem_file *f, u64 pos)
{
	int lo = 0, hi = (int)f->n - 1, at = -1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;

		if (f->ext[mid].foff <= pos) {
			at = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return at;
}

static int reserve_ext(struct smem_file *f, unsigned int more)
{
	struct smem_ext *e;
	unsigned int cap;

	if (f->n + more <= f->cap)
		return 0;
	cap = max(f->n + more, f->cap ? f->cap * 2 : 8u);
	e = kvmalloc_array(cap, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	if (f->n)
		memcpy(e, f->ext, f->n * sizeof(*e));
	kvfree(f->ext);
	f->ext = e;
	f->cap = cap;
	return 0;
}

/* Inserts a run (room reserved), merging it with the one before when both
 * are contiguous in the file and in the same block. */
static void insert_ext(struct smem_file *f, unsigned long bs, struct smem_ext x)
{
	int at = find_ext(f, x.foff) + 1;

	if (at > 0) {
		struct smem_ext *prev = &f->ext[at - 1];

		if (!prev->gone && !x.gone && prev->foff + prev->len == x.foff &&
		    prev->phys + prev->len == x.phys &&
		    round_down(prev->phys, bs) == round_down(x.phys, bs)) {
			prev->len += x.len;
			return;
		}
	}
	memmove(&f->ext[at + 1], &f->ext[at], (f->n - at) * sizeof(*f->ext));
	f->ext[at] = x;
	f->n++;
}

int smem_file_add_ext(struct smem_file *f, u64 foff, phys_addr_t phys, u64 len)
{
	int at = find_ext(f, foff);

	if (at >= 0 && f->ext[at].foff + f->ext[at].len > foff)
		return -EINVAL;
	if (at + 1 < (int)f->n && f->ext[at + 1].foff < foff + len)
		return -EINVAL;
	if (reserve_ext(f, 1))
		return -ENOMEM;
	memmove(&f->ext[at + 2], &f->ext[at + 1], (f->n - at - 1) * sizeof(*f->ext));
	f->ext[at + 1] = (struct smem_ext){ .foff = foff, .phys = phys, .len = len };
	f->n++;
	return 0;
}

/* Splits the run holding pos so that a run starts at pos (room reserved). */
static void split_at(struct smem_file *f, u64 pos)
{
	int at = find_ext(f, pos);
	struct smem_ext *e, tail;

	if (at < 0)
		return;
	e = &f->ext[at];
	if (e->foff == pos || e->foff + e->len <= pos)
		return;
	tail = *e;
	tail.foff = pos;
	tail.phys += pos - e->foff;
	tail.len -= pos - e->foff;
	e->len = pos - e->foff;
	memmove(&f->ext[at + 2], &f->ext[at + 1], (f->n - at - 1) * sizeof(*f->ext));
	f->ext[at + 1] = tail;
	f->n++;
}

void smem_file_free_all(struct smem_pool *p, struct smem_file *f, bool give_back)
{
	unsigned int i;

	if (!f)
		return;
	for (i = 0; i < f->n; i++)
		if (!f->ext[i].gone)
			smem_pool_free(p, f->ext[i].phys, f->ext[i].len >> PAGE_SHIFT, give_back);
	kvfree(f->ext);
	kfree(f);
}

/* A newly allocated part of the file, not yet written. */
struct fresh {
	u64 foff, len;
};

/* Allocates the pages of [pos, end) that have none, zeroing the parts of
 * them outside [pos, end): nothing left in a block by the system may ever
 * be read back. Returns the new runs in fresh (at most max). */
static int allocate(struct inode *inode, struct smem_file *f, u64 pos, u64 end,
		    struct fresh *fresh, unsigned int *nfresh, unsigned int max)
{
	struct smem_pool *p = pool_of(inode);
	u64 at = round_down(pos, PAGE_SIZE), stop = round_up(end, PAGE_SIZE);

	*nfresh = 0;
	while (at < stop) {
		int i = find_ext(f, at);
		u64 hole_end = stop;
		phys_addr_t after = 0, phys;
		unsigned long got;
		void *va;
		int ret;

		if (i >= 0 && f->ext[i].foff + f->ext[i].len > at) {
			if (f->ext[i].gone)
				return -EIO;
			at = f->ext[i].foff + f->ext[i].len;
			continue;
		}
		if (i + 1 < (int)f->n)
			hole_end = min(hole_end, f->ext[i + 1].foff);
		if (i >= 0 && f->ext[i].foff + f->ext[i].len == at && !f->ext[i].gone)
			after = f->ext[i].phys + f->ext[i].len;
		if (*nfresh >= max)
			return 0; /* the caller writes what is allocated, then comes back */
		ret = reserve_ext(f, 1);
		if (ret)
			return ret;
		ret = smem_pool_alloc(p, (hole_end - at) >> PAGE_SHIFT, after, &phys, &got);
		if (ret)
			return ret;
		insert_ext(f, p->bs, (struct smem_ext){ .foff = at, .phys = phys,
							.len = (u64)got << PAGE_SHIFT });
		inode_add_bytes(inode, (loff_t)got << PAGE_SHIFT);
		va = smem_pool_va(p, phys);
		if (at < pos)
			memset(va, 0, pos - at);
		if (at + ((u64)got << PAGE_SHIFT) > end && end > at) {
			u64 from = max(end, at);

			memset(va + (from - at), 0, at + ((u64)got << PAGE_SHIFT) - from);
		}
		fresh[(*nfresh)++] = (struct fresh){ at, (u64)got << PAGE_SHIFT };
		at += (u64)got << PAGE_SHIFT;
	}
	return 0;
}

/* Zeroes what a short copy left unwritten in fresh runs. */
static void zero_unwritten(struct inode *inode, struct smem_file *f, struct fresh *fresh,
			   unsigned int nfresh, u64 from, u64 to)
{
	struct smem_pool *p = pool_of(inode);
	unsigned int k;

	for (k = 0; k < nfresh; k++) {
		u64 lo = max(from, fresh[k].foff), hi = min(to, fresh[k].foff + fresh[k].len);

		while (lo < hi) {
			int i = find_ext(f, lo);
			u64 n;

			if (WARN_ON_ONCE(i < 0))
				return;
			n = min(hi, f->ext[i].foff + f->ext[i].len) - lo;
			memset(smem_pool_va(p, f->ext[i].phys + (lo - f->ext[i].foff)), 0, n);
			lo += n;
		}
	}
}

#define SMEM_FRESH 16

static ssize_t smem_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	struct smem_sb *ss = SMEM_SB(inode->i_sb);
	struct smem_file *f = file_of(inode);
	struct fresh fresh[SMEM_FRESH];
	ssize_t ret, done = 0;
	loff_t pos;

	inode_lock(inode);
	down_read(&ss->change);
	ret = -EROFS;
	if (ss->pool->sealed || ss->pool->handover)
		goto out;
	ret = generic_write_checks(iocb, from);
	if (ret <= 0)
		goto out;
	pos = iocb->ki_pos;
	while (iov_iter_count(from)) {
		size_t want = min_t(size_t, iov_iter_count(from), SMEM_CHUNK - (pos & (SMEM_CHUNK - 1)));
		size_t copied = 0;
		unsigned int nfresh;

		if (fault_in_iov_iter_readable(from, want) == want) {
			ret = -EFAULT;
			break;
		}
		down_write(&f->sem);
		ret = allocate(inode, f, pos, pos + want, fresh, &nfresh, SMEM_FRESH);
		while (!ret && copied < want) {
			int i = find_ext(f, pos + copied);
			size_t n, c;
			void *va;

			if (i < 0 || f->ext[i].foff + f->ext[i].len <= pos + copied)
				break; /* not allocated (fresh was full): next round */
			if (f->ext[i].gone) {
				ret = -EIO;
				break;
			}
			n = min_t(u64, want - copied, f->ext[i].foff + f->ext[i].len - (pos + copied));
			va = smem_pool_va(ss->pool, f->ext[i].phys + (pos + copied - f->ext[i].foff));
			pagefault_disable();
			c = copy_from_iter(va, n, from);
			pagefault_enable();
			copied += c;
			if (c < n)
				break;
		}
		if (nfresh && copied < want)
			zero_unwritten(inode, f, fresh, nfresh, pos + copied, pos + want);
		up_write(&f->sem);
		if (ret)
			break;
		pos += copied;
		done += copied;
		if (pos > i_size_read(inode))
			i_size_write(inode, pos);
		if (!copied && fault_in_iov_iter_readable(from, 1)) {
			ret = -EFAULT;
			break;
		}
	}
	iocb->ki_pos = pos;
	if (done)
		smem_touch(inode);
out:
	up_read(&ss->change);
	inode_unlock(inode);
	return done ? done : ret;
}

static ssize_t smem_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct inode *inode = file_inode(iocb->ki_filp);
	struct smem_file *f = file_of(inode);
	struct smem_pool *p = pool_of(inode);
	loff_t pos = iocb->ki_pos;
	ssize_t done = 0, ret = 0;

	while (iov_iter_count(to)) {
		loff_t size = i_size_read(inode);
		size_t want, c = 0, n;
		int i;

		if (pos >= size)
			break;
		want = min_t(u64, iov_iter_count(to), size - pos);
		want = min_t(size_t, want, SMEM_CHUNK);
		if (fault_in_iov_iter_writeable(to, want) == want) {
			ret = -EFAULT;
			break;
		}
		down_read(&f->sem);
		i = find_ext(f, pos);
		if (i >= 0 && f->ext[i].foff + f->ext[i].len > pos) {
			if (f->ext[i].gone) {
				up_read(&f->sem);
				ret = -EIO;
				break;
			}
			n = min_t(u64, want, f->ext[i].foff + f->ext[i].len - pos);
			pagefault_disable();
			c = copy_to_iter(smem_pool_va(p, f->ext[i].phys + (pos - f->ext[i].foff)), n, to);
			pagefault_enable();
		} else {
			/* A hole: never written, reads as zeros. */
			n = want;
			if (i + 1 < (int)f->n)
				n = min_t(u64, n, f->ext[i + 1].foff - pos);
			pagefault_disable();
			c = iov_iter_zero(n, to);
			pagefault_enable();
		}
		up_read(&f->sem);
		pos += c;
		done += c;
		if (!c && fault_in_iov_iter_writeable(to, 1)) {
			ret = -EFAULT;
			break;
		}
	}
	iocb->ki_pos = pos;
	return done ? done : ret;
}

static vm_fault_t smem_fault(struct vm_fault *vmf)
{
	struct inode *inode = file_inode(vmf->vma->vm_file);
	struct smem_file *f = file_of(inode);
	u64 pos = (u64)vmf->pgoff << PAGE_SHIFT;
	unsigned long pfn;
	vm_fault_t ret;
	int i;

	down_read(&f->sem);
	ret = VM_FAULT_SIGBUS;
	if (pos >= round_up(i_size_read(inode), PAGE_SIZE))
		goto out;
	i = find_ext(f, pos);
	if (i >= 0 && f->ext[i].foff + f->ext[i].len > pos) {
		if (f->ext[i].gone)
			goto out;
		pfn = PHYS_PFN(f->ext[i].phys + (pos - f->ext[i].foff));
	} else {
		pfn = page_to_pfn(ZERO_PAGE(0));
	}
	ret = vmf_insert_pfn(vmf->vma, vmf->address, pfn);
out:
	up_read(&f->sem);
	return ret;
}

static const struct vm_operations_struct smem_vm_ops = {
	.fault = smem_fault,
};

/* Read-only: the image is written with write(2), and a PFN mapping must
 * never be copied on write. */
static int smem_mmap(struct file *file, struct vm_area_struct *vma)
{
	if (vma->vm_flags & VM_WRITE)
		return -EPERM;
	smem_vma_flags(vma, VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY, VM_MAYWRITE);
	vma->vm_ops = &smem_vm_ops;
	return 0;
}

/* Index of the first run starting at or after pos. */
static unsigned int first_from(struct smem_file *f, u64 pos)
{
	int i = find_ext(f, pos);

	if (i < 0)
		return 0;
	return f->ext[i].foff >= pos ? i : i + 1;
}

/* Takes the file's runs at and after pos (page aligned) off it; the caller
 * frees them once no mapping can reach them. Semaphore held. */
static int cut_from(struct smem_file *f, u64 pos, struct smem_ext **runs, unsigned int *nruns)
{
	unsigned int i, keep;

	*nruns = 0;
	*runs = NULL;
	if (reserve_ext(f, 1))
		return -ENOMEM;
	split_at(f, pos);
	keep = first_from(f, pos);
	if (keep >= f->n)
		return 0;
	*runs = kvmalloc_array(f->n - keep, sizeof(**runs), GFP_KERNEL);
	if (!*runs)
		return -ENOMEM;
	for (i = keep; i < f->n; i++)
		if (!f->ext[i].gone)
			(*runs)[(*nruns)++] = f->ext[i];
	f->n = keep;
	return 0;
}

static void free_runs(struct inode *inode, struct smem_ext *runs, unsigned int n, bool give_back)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		smem_pool_free(pool_of(inode), runs[i].phys, runs[i].len >> PAGE_SHIFT, give_back);
		inode_sub_bytes(inode, runs[i].len);
	}
	kvfree(runs);
}

static int smem_truncate(struct inode *inode, loff_t size)
{
	struct smem_file *f = file_of(inode);
	struct smem_pool *p = pool_of(inode);
	struct smem_ext *runs = NULL;
	unsigned int nruns = 0;
	loff_t old = i_size_read(inode);
	int ret = 0, i;

	if (size >= old) {
		i_size_write(inode, size);
		return 0;
	}
	down_write(&f->sem);
	ret = cut_from(f, round_up(size, PAGE_SIZE), &runs, &nruns);
	if (!ret && !PAGE_ALIGNED(size)) {
		/* The tail of the last page reads as zeros if the file grows again. */
		i = find_ext(f, size);
		if (i >= 0 && f->ext[i].foff + f->ext[i].len > size && !f->ext[i].gone)
			memset(smem_pool_va(p, f->ext[i].phys + (size - f->ext[i].foff)), 0,
			       PAGE_SIZE - offset_in_page(size));
	}
	if (!ret)
		i_size_write(inode, size);
	up_write(&f->sem);
	if (ret)
		return ret;
	unmap_mapping_range(inode->i_mapping, round_up(size, PAGE_SIZE), 0, 1);
	free_runs(inode, runs, nruns, p->handover);
	return 0;
}

static int smem_setattr(smem_idmap_t *idmap, struct dentry *dentry, struct iattr *attr)
{
	struct inode *inode = d_inode(dentry);
	struct smem_sb *ss = SMEM_SB(inode->i_sb);
	int ret;

	ret = setattr_prepare(idmap, dentry, attr);
	if (ret)
		return ret;
	down_read(&ss->change);
	ret = -EROFS;
	if (ss->pool->sealed)
		goto out;
	ret = 0;
	if ((attr->ia_valid & ATTR_SIZE) && S_ISREG(inode->i_mode))
		ret = smem_truncate(inode, attr->ia_size);
	if (!ret)
		setattr_copy(idmap, inode, attr);
out:
	up_read(&ss->change);
	return ret;
}

/* Marks [off, end) released and gives the memory back (see
 * SMEM_IOC_RELEASE). */
static int smem_release(struct inode *inode, u64 off, u64 len)
{
	struct smem_file *f = file_of(inode);
	u64 size = i_size_read(inode), end;
	struct smem_ext *runs;
	unsigned int i, n = 0, first, last;
	int ret;

	if (!PAGE_ALIGNED(off) || off + len < off)
		return -EINVAL;
	/* A sealed pool's memory is the next kernel's: its index names it. */
	if (SMEM_SB(inode->i_sb)->pool->sealed)
		return -EBUSY;
	end = off + len;
	if (end >= size)
		end = round_up(size, PAGE_SIZE);
	else if (!PAGE_ALIGNED(len))
		return -EINVAL;
	if (off >= end)
		return 0;
	down_write(&f->sem);
	ret = reserve_ext(f, 2);
	if (ret)
		goto unlock;
	split_at(f, off);
	split_at(f, end);
	first = first_from(f, off);
	for (last = first; last < f->n && f->ext[last].foff < end; last++)
		;
	runs = kvmalloc_array(max(last - first, 1u), sizeof(*runs), GFP_KERNEL);
	ret = -ENOMEM;
	if (!runs)
		goto unlock;
	for (i = first; i < last; i++) {
		if (f->ext[i].gone)
			continue;
		runs[n++] = f->ext[i];
		f->ext[i].gone = true;
	}
	ret = 0;
	up_write(&f->sem);
	/* Nothing maps the memory once this returns; then it can go. */
	unmap_mapping_range(inode->i_mapping, off, end - off, 1);
	free_runs(inode, runs, n, true);
	return 0;
unlock:
	up_write(&f->sem);
	return ret;
}

long smem_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct inode *inode = file_inode(file);
	struct super_block *sb = inode->i_sb;
	struct smem_sb *ss = SMEM_SB(sb);
	void __user *uarg = (void __user *)arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	switch (cmd) {
	case SMEM_IOC_INFO: {
		struct smem_info *info = kmalloc(sizeof(*info), GFP_KERNEL);
		long ret = 0;

		if (!info)
			return -ENOMEM;
		smem_pool_info(ss->pool, info);
		if (copy_to_user(uarg, info, sizeof(*info)))
			ret = -EFAULT;
		kfree(info);
		return ret;
	}
	case SMEM_IOC_TAKE: {
		struct smem_range r;

		if (copy_from_user(&r, uarg, sizeof(r)))
			return -EFAULT;
		return smem_pool_take(ss->pool, r.phys, r.size);
	}
	case SMEM_IOC_SEAL:
		return smem_seal(sb);
	case SMEM_IOC_UNSEAL:
		return smem_unseal(sb);
	case SMEM_IOC_RELEASE: {
		struct smem_release r;

		if (!S_ISREG(inode->i_mode))
			return -EINVAL;
		if (copy_from_user(&r, uarg, sizeof(r)))
			return -EFAULT;
		return smem_release(inode, r.offset, r.length);
	}
	}
	return -ENOTTY;
}

const struct file_operations smem_file_fops = {
	.llseek = generic_file_llseek,
	.read_iter = smem_read_iter,
	.write_iter = smem_write_iter,
	.mmap = smem_mmap,
	.fsync = noop_fsync,
	.open = generic_file_open,
	.unlocked_ioctl = smem_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

const struct inode_operations smem_file_iops = {
	.setattr = smem_setattr,
	.getattr = simple_getattr,
};
