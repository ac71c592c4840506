// SPDX-License-Identifier: GPL-2.0
/*
 * The index: what the next kernel needs to find the files again. It is
 * written into the pool by SMEM_IOC_SEAL, one contiguous run inside one
 * block, and its address is given to the next kernel (mount option
 * handover=, from seamless.image=kmod:ADDR on its command line).
 *
 * Layout, little-endian, every record 8-byte aligned:
 *   header   magic "SMEMIDX1", version, CRC-32 of the whole index (taken
 *            with this field zero), its own address and length, the block
 *            size, the numbers of ranges and nodes
 *   ranges   physical address and size of each contiguous run of blocks
 *   nodes    in creation order (a parent before its children), numbered
 *            from 1 (the root): parent number, mode, owner, group, size,
 *            modification time, the name (padded to 8), then for a regular
 *            file its runs: file offset, physical address, length
 *
 * The loader trusts nothing in it: every address must be in memory the
 * kernel has reserved (memmap=nn$ss) and no run may overlap another.
 */
#include <linux/crc32.h>
#include <linux/dcache.h>
#include <linux/stringhash.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/uidgid.h>

#include "seamlessmem.h"

#define SMEM_INDEX_MAGIC   0x31584449454d534dULL /* "SMEMIDX1" */
#define SMEM_INDEX_VERSION 1
#define SMEM_INDEX_MAX     (64UL << 20)
#define SMEM_NODES_MAX     (1U << 20)

struct smem_ihdr {
	__le64 magic;
	__le32 version;
	__le32 crc;
	__le64 index_phys;
	__le64 index_len;
	__le64 block_size;
	__le32 nr_ranges;
	__le32 nr_nodes;
	__le64 reserved[4];
};

struct smem_irange {
	__le64 phys;
	__le64 size;
};

struct smem_inode {
	__le32 ino;
	__le32 parent;
	__le32 mode;
	__le32 uid;
	__le32 gid;
	__le32 name_len;
	__le64 size;
	__le64 mtime_sec;
	__le32 mtime_nsec;
	__le32 nr_ext;
};

struct smem_iext {
	__le64 foff;
	__le64 phys;
	__le64 len;
};

static u32 index_crc(const void *buf, size_t len)
{
	const size_t at = offsetof(struct smem_ihdr, crc);
	static const u8 zero[4];
	u32 crc = ~0U;

	crc = crc32_le(crc, buf, at);
	crc = crc32_le(crc, zero, sizeof(zero));
	crc = crc32_le(crc, buf + at + 4, len - at - 4);
	return ~crc;
}

/* Size of the index, numbering the nodes; -EIO if a file lost data. */
static long index_size(struct smem_sb *ss, unsigned int nr_ranges, u32 *nr_nodes)
{
	struct smem_node *node;
	size_t len = sizeof(struct smem_ihdr) + nr_ranges * sizeof(struct smem_irange);
	u32 n = 0;

	list_for_each_entry(node, &ss->nodes, link) {
		node->seal_ino = ++n;
		len += sizeof(struct smem_inode) + ALIGN(strlen(node->name), 8);
		if (node->file) {
			struct smem_file *f = node->file;
			unsigned int i;
			bool gone = false;

			down_read(&f->sem);
			for (i = 0; i < f->n; i++)
				gone |= f->ext[i].gone;
			len += f->n * sizeof(struct smem_iext);
			up_read(&f->sem);
			if (gone)
				return -EIO;
		}
	}
	*nr_nodes = n;
	return len;
}

/* Writes the nodes after the ranges; -EAGAIN if a file changed since
 * index_size (the caller gives up). */
static int write_nodes(struct smem_sb *ss, void *buf, size_t len, size_t at)
{
	struct smem_node *node;

	list_for_each_entry(node, &ss->nodes, link) {
		struct inode *inode = node->inode;
		struct smem_inode *in = buf + at;
		struct timespec64 mt = smem_get_mtime(inode);
		size_t name_len = strlen(node->name);

		if (at + sizeof(*in) + ALIGN(name_len, 8) > len)
			return -EAGAIN;
		in->ino = cpu_to_le32(node->seal_ino);
		in->parent = cpu_to_le32(node->parent ? node->parent->seal_ino : 0);
		in->mode = cpu_to_le32(inode->i_mode);
		in->uid = cpu_to_le32(from_kuid(&init_user_ns, inode->i_uid));
		in->gid = cpu_to_le32(from_kgid(&init_user_ns, inode->i_gid));
		in->name_len = cpu_to_le32(name_len);
		in->size = cpu_to_le64(i_size_read(inode));
		in->mtime_sec = cpu_to_le64(mt.tv_sec);
		in->mtime_nsec = cpu_to_le32(mt.tv_nsec);
		at += sizeof(*in);
		memcpy(buf + at, node->name, name_len);
		at += ALIGN(name_len, 8);
		if (node->file) {
			struct smem_file *f = node->file;
			unsigned int i;

			down_read(&f->sem);
			if (at + f->n * sizeof(struct smem_iext) > len) {
				up_read(&f->sem);
				return -EAGAIN;
			}
			in->nr_ext = cpu_to_le32(f->n);
			for (i = 0; i < f->n; i++) {
				struct smem_iext *x = buf + at;

				x->foff = cpu_to_le64(f->ext[i].foff);
				x->phys = cpu_to_le64(f->ext[i].phys);
				x->len = cpu_to_le64(f->ext[i].len);
				at += sizeof(*x);
			}
			up_read(&f->sem);
		}
	}
	return at == len ? 0 : -EAGAIN;
}

int smem_seal(struct super_block *sb)
{
	struct smem_sb *ss = SMEM_SB(sb);
	struct smem_pool *p = ss->pool;
	struct smem_info *info;
	struct smem_ihdr *hdr;
	phys_addr_t phys;
	unsigned int i;
	u32 nr_nodes;
	long len;
	void *buf;
	int ret;

	info = kmalloc(sizeof(*info), GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	down_write(&ss->change);
	mutex_lock(&ss->nodes_lock);
	ret = -EPERM;
	if (p->handover)
		goto out;
	ret = -EBUSY;
	if (p->sealed)
		goto out;
	smem_pool_info(p, info);
	ret = -ENOSPC;
	if (!info->nr_ranges)
		goto out;
	/* The next kernel reserves whole memory blocks, the unit it can give
	 * back (add_memory()): the pool's pieces rounded out to them. */
	ret = -E2BIG;
	info->nr_ranges = smem_pool_next_ranges(p, info->ranges, SMEM_MAX_RANGES);
	if (info->nr_ranges > SMEM_MAX_RANGES)
		goto out;
	len = index_size(ss, info->nr_ranges, &nr_nodes);
	ret = len;
	if (len < 0)
		goto out;
	ret = -E2BIG;
	if (len > SMEM_INDEX_MAX || len > p->bs)
		goto out;
	ret = smem_pool_alloc_contig(p, DIV_ROUND_UP(len, PAGE_SIZE), &phys);
	if (ret)
		goto out; /* -ENOSPC: seamless adds a block and seals again */
	buf = smem_pool_va(p, phys);
	memset(buf, 0, round_up(len, PAGE_SIZE));
	hdr = buf;
	hdr->magic = cpu_to_le64(SMEM_INDEX_MAGIC);
	hdr->version = cpu_to_le32(SMEM_INDEX_VERSION);
	hdr->index_phys = cpu_to_le64(phys);
	hdr->index_len = cpu_to_le64(len);
	hdr->block_size = cpu_to_le64(info->block_size);
	hdr->nr_ranges = cpu_to_le32(info->nr_ranges);
	hdr->nr_nodes = cpu_to_le32(nr_nodes);
	for (i = 0; i < info->nr_ranges; i++) {
		struct smem_irange *r = buf + sizeof(*hdr) + i * sizeof(*r);

		r->phys = cpu_to_le64(info->ranges[i].phys);
		r->size = cpu_to_le64(info->ranges[i].size);
	}
	ret = write_nodes(ss, buf, len, sizeof(*hdr) + info->nr_ranges * sizeof(struct smem_irange));
	if (ret) {
		smem_pool_free(p, phys, DIV_ROUND_UP(len, PAGE_SIZE), false);
		goto out;
	}
	hdr->crc = cpu_to_le32(index_crc(buf, len));
	mutex_lock(&p->lock);
	p->sealed = true;
	p->index_phys = phys;
	p->index_len = len;
	mutex_unlock(&p->lock);
	pr_info(SMEM_NAME ": sealed: index at %#llx (%ld bytes), %u files and directories in %u ranges\n",
		(u64)phys, len, nr_nodes, info->nr_ranges);
out:
	mutex_unlock(&ss->nodes_lock);
	up_write(&ss->change);
	kfree(info);
	return ret;
}

int smem_unseal(struct super_block *sb)
{
	struct smem_sb *ss = SMEM_SB(sb);
	struct smem_pool *p = ss->pool;
	phys_addr_t phys;
	size_t len;

	down_write(&ss->change);
	mutex_lock(&p->lock);
	if (!p->sealed || p->handover) {
		mutex_unlock(&p->lock);
		up_write(&ss->change);
		return p->handover ? -EPERM : 0;
	}
	phys = p->index_phys;
	len = p->index_len;
	p->sealed = false;
	p->index_phys = 0;
	p->index_len = 0;
	mutex_unlock(&p->lock);
	smem_pool_free(p, phys, DIV_ROUND_UP(len, PAGE_SIZE), false);
	up_write(&ss->change);
	return 0;
}

/* A cursor over the index being loaded: every read is bounds-checked. */
struct cursor {
	const void *buf;
	size_t len, at;
};

static const void *take(struct cursor *c, size_t n)
{
	const void *p;

	if (n > c->len - c->at)
		return NULL;
	p = c->buf + c->at;
	c->at += n;
	return p;
}

static bool plain_name(const char *s, size_t n)
{
	if (!n || n > NAME_MAX)
		return false;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	return !memchr(s, '/', n) && !memchr(s, '\0', n);
}

/* Loads the runs of a regular file, marking them in the pool. */
static int load_file(struct smem_pool *p, struct cursor *c, struct inode *inode, u32 nr_ext,
		     u64 size)
{
	struct smem_node *node = inode->i_private;
	u64 end = 0, limit = round_up(size, PAGE_SIZE);
	u32 k;
	int ret;

	if (limit < size || size > MAX_LFS_FILESIZE)
		return -EINVAL;
	for (k = 0; k < nr_ext; k++) {
		const struct smem_iext *x = take(c, sizeof(*x));
		u64 foff, phys, len;

		if (!x)
			return -EINVAL;
		foff = le64_to_cpu(x->foff);
		phys = le64_to_cpu(x->phys);
		len = le64_to_cpu(x->len);
		if (!PAGE_ALIGNED(foff) || !PAGE_ALIGNED(len) || !len || foff < end ||
		    foff + len < foff || foff + len > limit)
			return -EINVAL;
		ret = smem_pool_mark(p, phys, len);
		if (ret)
			return ret;
		ret = smem_file_add_ext(node->file, foff, phys, len);
		if (ret) {
			smem_pool_free(p, phys, len >> PAGE_SHIFT, false);
			return ret;
		}
		inode_add_bytes(inode, len);
		end = foff + len;
	}
	i_size_write(inode, size);
	return 0;
}

static int set_owner(struct inode *inode, u32 mode, u32 uid, u32 gid, u64 sec, u32 nsec)
{
	kuid_t ku = make_kuid(&init_user_ns, uid);
	kgid_t kg = make_kgid(&init_user_ns, gid);

	if (!uid_valid(ku) || !gid_valid(kg) || nsec >= NSEC_PER_SEC || sec > (u64)S64_MAX)
		return -EINVAL;
	inode->i_mode = (inode->i_mode & S_IFMT) | (mode & 07777);
	inode->i_uid = ku;
	inode->i_gid = kg;
	smem_set_times(inode, (struct timespec64){ .tv_sec = sec, .tv_nsec = nsec });
	return 0;
}

/* Builds node k of the tree below the dentries made so far. */
static int load_node(struct super_block *sb, struct cursor *c, u32 k, struct dentry **dents)
{
	struct smem_pool *p = SMEM_SB(sb)->pool;
	const struct smem_inode *in = take(c, sizeof(*in));
	u32 parent, mode, name_len, nr_ext;
	struct dentry *dir, *d;
	struct inode *inode;
	char tmp[NAME_MAX + 1];
	const char *name;
	struct qstr q;
	int ret;

	if (!in || le32_to_cpu(in->ino) != k)
		return -EINVAL;
	parent = le32_to_cpu(in->parent);
	mode = le32_to_cpu(in->mode);
	name_len = le32_to_cpu(in->name_len);
	nr_ext = le32_to_cpu(in->nr_ext);
	name = take(c, ALIGN(name_len, 8));
	if (!name || name_len > NAME_MAX)
		return -EINVAL;
	if (k == 1) {
		/* The root. */
		if (parent || name_len || !S_ISDIR(mode) || nr_ext)
			return -EINVAL;
		dents[1] = sb->s_root;
		return set_owner(d_inode(sb->s_root), mode, le32_to_cpu(in->uid),
				 le32_to_cpu(in->gid), le64_to_cpu(in->mtime_sec),
				 le32_to_cpu(in->mtime_nsec));
	}
	if (!parent || parent >= k || !plain_name(name, name_len) ||
	    !(S_ISDIR(mode) || S_ISREG(mode)) || (S_ISDIR(mode) && nr_ext))
		return -EINVAL;
	dir = dents[parent];
	if (!dir || !d_is_dir(dir))
		return -EINVAL;
	q = (struct qstr)QSTR_INIT(name, name_len);
	q.hash = full_name_hash(dir, name, name_len);
	d = d_lookup(dir, &q);
	if (d) {
		dput(d);
		return -EINVAL; /* the same name twice */
	}
	inode = smem_new_inode(sb, d_inode(dir), mode & (S_IFMT | 07777));
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	ret = set_owner(inode, mode, le32_to_cpu(in->uid), le32_to_cpu(in->gid),
			le64_to_cpu(in->mtime_sec), le32_to_cpu(in->mtime_nsec));
	if (!ret && S_ISREG(mode))
		ret = load_file(p, c, inode, nr_ext, le64_to_cpu(in->size));
	if (!ret)
		ret = smem_node_link(sb, d_inode(dir), name, name_len, inode);
	if (ret) {
		iput(inode);
		return ret;
	}
	memcpy(tmp, name, name_len);
	tmp[name_len] = '\0';
	d = d_alloc_name(dir, tmp);
	if (!d) {
		iput(inode);
		return -ENOMEM;
	}
	if (S_ISDIR(mode))
		inc_nlink(d_inode(dir));
	smem_d_add_pinned(d, inode);
	dents[k] = d;
	return 0;
}

int smem_load_index(struct super_block *sb, phys_addr_t index)
{
	struct smem_pool *p = SMEM_SB(sb)->pool;
	struct smem_range *ranges = NULL;
	struct dentry **dents = NULL;
	struct smem_ihdr hdr;
	struct cursor c;
	u32 nr_ranges, nr_nodes, k;
	u64 len, bs, mapped;
	void *buf;
	int ret;

	if (!index || !PAGE_ALIGNED(index))
		return -EINVAL;
	if (!smem_reserved_range(index, PAGE_SIZE)) {
		pr_err(SMEM_NAME ": the image index at %#llx is not in memory reserved at boot (memmap=nn$ss): refused\n",
		       (u64)index);
		return -EINVAL;
	}
	buf = memremap(index, PAGE_SIZE, MEMREMAP_WB);
	if (!buf)
		return -ENOMEM;
	memcpy(&hdr, buf, sizeof(hdr));
	memunmap(buf);
	len = le64_to_cpu(hdr.index_len);
	bs = le64_to_cpu(hdr.block_size);
	nr_ranges = le32_to_cpu(hdr.nr_ranges);
	nr_nodes = le32_to_cpu(hdr.nr_nodes);
	if (le64_to_cpu(hdr.magic) != SMEM_INDEX_MAGIC || le32_to_cpu(hdr.version) != SMEM_INDEX_VERSION ||
	    le64_to_cpu(hdr.index_phys) != index || len < sizeof(hdr) || len > SMEM_INDEX_MAX ||
	    !is_power_of_2(bs) || bs < PAGE_SIZE || bs > (16ULL << 30) ||
	    !nr_ranges || nr_ranges > SMEM_MAX_RANGES || !nr_nodes || nr_nodes > SMEM_NODES_MAX) {
		pr_err(SMEM_NAME ": no valid image index at %#llx: refused\n", (u64)index);
		return -EINVAL;
	}
	mapped = round_up(len, PAGE_SIZE);
	if (!smem_reserved_range(index, mapped))
		return -EINVAL;
	buf = memremap(index, mapped, MEMREMAP_WB);
	if (!buf)
		return -ENOMEM;
	ret = -EBADMSG;
	if (index_crc(buf, len) != le32_to_cpu(((struct smem_ihdr *)buf)->crc)) {
		pr_err(SMEM_NAME ": the image index at %#llx is damaged (checksum): refused\n", (u64)index);
		goto out;
	}
	/*
	 * An index is read once: its magic is wiped now, whatever becomes of
	 * this load, so that a later boot given the same command line (a kexec
	 * that reuses it) finds no image. Restoring it again would run the
	 * services a second time, from a state long gone.
	 */
	((struct smem_ihdr *)buf)->magic = 0;
	c = (struct cursor){ .buf = buf, .len = len, .at = sizeof(hdr) };
	ret = -ENOMEM;
	ranges = kvcalloc(nr_ranges, sizeof(*ranges), GFP_KERNEL);
	dents = kvcalloc(nr_nodes + 1, sizeof(*dents), GFP_KERNEL);
	if (!ranges || !dents)
		goto out;
	ret = -EINVAL;
	for (k = 0; k < nr_ranges; k++) {
		const struct smem_irange *r = take(&c, sizeof(*r));
		u64 phys, size;

		if (!r)
			goto out;
		phys = le64_to_cpu(r->phys);
		size = le64_to_cpu(r->size);
		if (!IS_ALIGNED(phys, bs) || !IS_ALIGNED(size, bs) || !size || phys + size < phys ||
		    (k && phys < ranges[k - 1].phys + ranges[k - 1].size) ||
		    !smem_reserved_range(phys, size)) {
			pr_err(SMEM_NAME ": image range %#llx+%#llx is not reserved memory: refused\n",
			       phys, size);
			goto out;
		}
		ranges[k] = (struct smem_range){ phys, size };
	}
	ret = smem_pool_adopt(p, ranges, nr_ranges, bs);
	if (ret)
		goto out;
	ret = smem_pool_mark(p, index, mapped);
	if (ret)
		goto out;
	for (k = 1; k <= nr_nodes && !ret; k++)
		ret = load_node(sb, &c, k, dents);
	if (!ret && c.at != len)
		ret = -EINVAL;
	if (ret) {
		pr_err(SMEM_NAME ": the image index at %#llx does not describe a valid tree (node %u): refused\n",
		       (u64)index, k - 1);
		goto out;
	}
	pr_info(SMEM_NAME ": image found at %#llx: %u files and directories in %u ranges\n",
		(u64)index, nr_nodes, nr_ranges);
out:
	memunmap(buf);
	if (!ret) {
		/* The index is read: its memory, and any block nothing is in, go back. */
		smem_pool_free(p, index, mapped >> PAGE_SHIFT, true);
		smem_pool_release_empty(p);
	}
	kvfree(ranges);
	kvfree(dents);
	return ret;
}
