/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * seamlessmem: the interface between the module and seamless.
 *
 * The module is a filesystem, "seamlessmem", whose file data lives in memory
 * blocks taken out of the running system. The ioctls below are accepted on
 * any descriptor of a mounted seamlessmem (a file or a directory), from a
 * caller with CAP_SYS_ADMIN. internal/kmod mirrors these definitions.
 */
#ifndef SEAMLESSMEM_UAPI_H
#define SEAMLESSMEM_UAPI_H

#include <linux/types.h>
#include <linux/ioctl.h>

/* statfs(2) f_type of a seamlessmem mount ("SMEM"). */
#define SMEM_SUPER_MAGIC 0x534d454dU

/* At most this many contiguous physical ranges: each costs a memmap= on the
 * new kernel's command line. */
#define SMEM_MAX_RANGES 64

/* The old kernel's pool takes memory in pieces of this size (or of the
 * memory block, if smaller), so that it holds little more than the image. */
#define SMEM_PIECE_SIZE (16ULL << 20)

struct smem_range {
	__u64 phys;
	__u64 size;
};

/* smem_info.flags */
#define SMEM_INFO_SEALED   (1U << 0) /* the index is written; no change allowed */
#define SMEM_INFO_HANDOVER (1U << 1) /* the blocks came from the previous kernel */

struct smem_info {
	__u64 block_size;   /* memory block size of the running kernel */
	/* pool_bytes to ranges: in pieces (SMEM_PIECE_SIZE); sealed, the ranges
	 * are those the next kernel reserves: the memory blocks around them. */
	__u64 pool_bytes;   /* bytes in the blocks held */
	__u64 used_bytes;   /* bytes given to files (and to the index) */
	__u64 index_phys;   /* sealed: physical address of the index */
	__u64 index_len;    /* sealed: its length */
	__u32 nr_ranges;    /* ranges[] filled */
	__u32 flags;
	struct smem_range ranges[SMEM_MAX_RANGES]; /* the blocks held, merged */
};

struct smem_release {
	__u64 offset;       /* page aligned */
	__u64 length;       /* page aligned, or up to the end of the file */
};

#define SMEM_IOC_BASE 0xB5
/* Describe the pool. */
#define SMEM_IOC_INFO    _IOR(SMEM_IOC_BASE, 1, struct smem_info)
/* Write the index describing every file into the pool; the mount becomes
 * read-only. SMEM_IOC_INFO then gives its address and the ranges. */
#define SMEM_IOC_SEAL    _IO(SMEM_IOC_BASE, 3)
/* Forget the index: the mount is writable again. */
#define SMEM_IOC_UNSEAL  _IO(SMEM_IOC_BASE, 4)
/* On a regular file: its data in [offset, offset+length) is no longer
 * needed. It reads as an error from then on, and every block that holds no
 * needed data any more goes back to the system (freed; on the next kernel,
 * add_memory() of each whole memory block). */
#define SMEM_IOC_RELEASE _IOW(SMEM_IOC_BASE, 5, struct smem_release)
/* Take the memory at phys (a whole number of pieces, inside one memory
 * block) out of the page allocator into the pool: alloc_contig_range(),
 * which migrates what is in use there. EBUSY: a page there cannot move. */
#define SMEM_IOC_TAKE    _IOW(SMEM_IOC_BASE, 6, struct smem_range)

#endif
