/* SPDX-License-Identifier: GPL-2.0 */
/*
 * seamlessmem internals: the pool of memory blocks, the files kept in it,
 * and the index handed to the next kernel.
 */
#ifndef SEAMLESSMEM_H
#define SEAMLESSMEM_H

#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/types.h>

#include "compat.h"
#include "seamlessmem_uapi.h"

#define SMEM_NAME "seamlessmem"

struct smem_file;

/* At most this many entries in a pool (256 GiB of 16 MiB pieces). */
#define SMEM_MAX_BLOCKS 16384

/* One entry of the pool: a piece taken on this kernel (SMEM_PIECE_SIZE), or
 * a memory block of the previous kernel reserved at boot. */
struct smem_block {
	phys_addr_t phys;
	void *va;               /* direct mapping, or memremap()ed (claimed) */
	unsigned long *map;     /* one bit per page in use */
	unsigned long used;     /* pages in use */
	unsigned long hint;     /* where the next search for free pages starts */
	bool claimed;           /* handover: claimed inside "Reserved" */
	bool contig;            /* old kernel: taken with alloc_contig_range() */
	bool gone;              /* given back to the system */
};

/* The pool: every entry the filesystem keeps its data in. */
struct smem_pool {
	struct mutex lock;
	unsigned long bs;       /* size of the entries */
	unsigned long ret_bs;   /* this kernel's memory block size (unit of add_memory) */
	struct smem_block *blocks; /* sorted by address */
	unsigned int nr;
	bool handover;          /* the blocks came from the previous kernel */
	bool sealed;
	phys_addr_t index_phys;
	size_t index_len;
};

/* A run of a file's data: file offset, address, length, all page aligned;
 * never crosses a block. */
struct smem_ext {
	u64 foff;
	phys_addr_t phys;
	u64 len;
	bool gone;              /* released: reads fail, mappings fault */
};

/* The part of the filesystem the index records, one per file or directory
 * still linked: the module's own tree, since renames are not supported. */
struct smem_node {
	struct list_head link;  /* smem_sb.nodes, in creation order */
	struct smem_node *parent;
	char *name;
	struct inode *inode;
	struct smem_file *file; /* regular files */
	u32 seal_ino;           /* number given by the last seal */
};

/* Per regular file. */
struct smem_file {
	struct rw_semaphore sem; /* ext and the data they point to */
	struct smem_ext *ext;    /* sorted by foff, not overlapping */
	unsigned int n, cap;
};

struct smem_sb {
	struct smem_pool *pool;
	struct rw_semaphore change; /* writers shared, seal exclusive */
	struct mutex nodes_lock;
	struct list_head nodes;
};

static inline struct smem_sb *SMEM_SB(struct super_block *sb)
{
	return sb->s_fs_info;
}

/* pool.c */
struct smem_pool *smem_pool_new(void);
int smem_pool_take(struct smem_pool *p, u64 phys, u64 len);
int smem_pool_alloc(struct smem_pool *p, unsigned long want, phys_addr_t after,
		    phys_addr_t *phys, unsigned long *got);
int smem_pool_alloc_contig(struct smem_pool *p, unsigned long pages, phys_addr_t *phys);
void smem_pool_free(struct smem_pool *p, phys_addr_t phys, unsigned long pages, bool give_back);
void *smem_pool_va(struct smem_pool *p, phys_addr_t phys);
void smem_pool_info(struct smem_pool *p, struct smem_info *info);
unsigned int smem_pool_next_ranges(struct smem_pool *p, struct smem_range *out, unsigned int max);
void smem_pool_usage(struct smem_pool *p, u64 *total, u64 *used);
void smem_pool_destroy(struct smem_pool *p);
int smem_pool_adopt(struct smem_pool *p, const struct smem_range *ranges, unsigned int nr,
		    unsigned long old_bs);
int smem_pool_mark(struct smem_pool *p, phys_addr_t phys, u64 len);
void smem_pool_release_empty(struct smem_pool *p);
bool smem_reserved_range(phys_addr_t phys, u64 len);

/* file.c */
extern const struct file_operations smem_file_fops;
extern const struct inode_operations smem_file_iops;
struct smem_file *smem_file_new(void);
void smem_file_free_all(struct smem_pool *p, struct smem_file *f, bool give_back);
int smem_file_add_ext(struct smem_file *f, u64 foff, phys_addr_t phys, u64 len);
long smem_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* index.c */
int smem_seal(struct super_block *sb);
int smem_unseal(struct super_block *sb);
int smem_load_index(struct super_block *sb, phys_addr_t index);

/* super.c */
struct inode *smem_new_inode(struct super_block *sb, const struct inode *dir, umode_t mode);
int smem_node_link(struct super_block *sb, struct inode *dir, const char *name, size_t len,
		   struct inode *inode);
extern const struct inode_operations smem_dir_iops;
extern const struct file_operations smem_dir_fops;

#endif
