/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What differs between the kernels seamlessmem is built for. Each SMEM_HAVE_*
 * is set by Kbuild from the kernel's own headers (a grep for the interface),
 * not from version numbers: distributions backport.
 */
#ifndef SEAMLESSMEM_COMPAT_H
#define SEAMLESSMEM_COMPAT_H

#include <linux/dcache.h>
#include <linux/fs.h>
#include <linux/mm.h>

/* 6.3: inode operations take a struct mnt_idmap instead of a user namespace. */
#ifdef SMEM_HAVE_MNT_IDMAP
typedef struct mnt_idmap smem_idmap_t;
#define SMEM_NOP_IDMAP (&nop_mnt_idmap)
#else
typedef struct user_namespace smem_idmap_t;
#define SMEM_NOP_IDMAP (&init_user_ns)
#endif

/* Timestamps: fields until 6.6/6.7, accessors since. */
static inline void smem_set_times(struct inode *inode, struct timespec64 t)
{
#ifdef SMEM_HAVE_INODE_SET_MTIME_TO_TS
	inode_set_mtime_to_ts(inode, t);
	inode_set_atime_to_ts(inode, t);
	inode_set_ctime_to_ts(inode, t);
#else
	inode->i_mtime = inode->i_atime = inode->i_ctime = t;
#endif
}

static inline struct timespec64 smem_get_mtime(struct inode *inode)
{
#ifdef SMEM_HAVE_INODE_SET_MTIME_TO_TS
	return inode_get_mtime(inode);
#else
	return inode->i_mtime;
#endif
}

static inline void smem_touch(struct inode *inode)
{
	smem_set_times(inode, current_time(inode));
}

/* A dentry kept in memory for as long as it is linked (ramfs's way): 7.x
 * marks it persistent, earlier kernels hold an extra reference that
 * kill_litter_super() drops. */
static inline void smem_d_pin(struct dentry *dentry, struct inode *inode)
{
#ifdef SMEM_HAVE_D_MAKE_PERSISTENT
	d_make_persistent(dentry, inode);
#else
	d_instantiate(dentry, inode);
	dget(dentry);
#endif
}

/* The same for a dentry made by the module (d_alloc_name), whose own
 * reference the caller holds. */
static inline void smem_d_add_pinned(struct dentry *dentry, struct inode *inode)
{
#ifdef SMEM_HAVE_D_MAKE_PERSISTENT
	d_make_persistent(dentry, inode);
	dput(dentry);
#else
	d_add(dentry, inode);
#endif
}

static inline void smem_kill_sb(struct super_block *sb)
{
#ifdef SMEM_HAVE_KILL_LITTER_SUPER
	kill_litter_super(sb);
#else
	kill_anon_super(sb);
#endif
}

#ifdef SMEM_HAVE_INODE_JUST_DROP
#define smem_drop_inode inode_just_drop
#else
#define smem_drop_inode generic_delete_inode
#endif

static inline void smem_vma_flags(struct vm_area_struct *vma, unsigned long set,
				  unsigned long clear)
{
#ifdef SMEM_HAVE_VM_FLAGS_SET
	vm_flags_set(vma, set);
	vm_flags_clear(vma, clear);
#else
	vma->vm_flags |= set;
	vma->vm_flags &= ~clear;
#endif
}

/* alloc_contig_range()'s third argument: a migrate type until 6.15, flags
 * since. */
#ifdef SMEM_HAVE_ACR_FLAGS
#define SMEM_CONTIG_MOVABLE ACR_FLAGS_NONE
#else
#define SMEM_CONTIG_MOVABLE MIGRATE_MOVABLE
#endif

#endif
