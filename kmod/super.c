// SPDX-License-Identifier: GPL-2.0
/*
 * seamlessmem: a filesystem whose files live in memory taken out of the
 * system, so that a checkpoint image written into it survives a kexec in
 * place. See docs/kmod.md in the seamless sources.
 *
 *   mount -t seamlessmem seamlessmem DIR                  old kernel: empty, writable
 *   mount -t seamlessmem -o handover=ADDR seamlessmem DIR new kernel: the image, read-only
 *
 * One mount at a time. Directories and regular files only, no renames, no
 * links: what a checkpoint writes.
 */
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/statfs.h>

#include "seamlessmem.h"

static DEFINE_MUTEX(smem_mount_lock);
static bool smem_mounted;

struct smem_fc {
	u64 handover;
};

struct inode *smem_new_inode(struct super_block *sb, const struct inode *dir, umode_t mode)
{
	struct smem_node *node;
	struct inode *inode;

	if (!S_ISDIR(mode) && !S_ISREG(mode))
		return ERR_PTR(-EINVAL);
	node = kzalloc(sizeof(*node), GFP_KERNEL);
	if (!node)
		return ERR_PTR(-ENOMEM);
	INIT_LIST_HEAD(&node->link);
	if (S_ISREG(mode)) {
		node->file = smem_file_new();
		if (!node->file) {
			kfree(node);
			return ERR_PTR(-ENOMEM);
		}
	}
	inode = new_inode(sb);
	if (!inode) {
		kfree(node->file);
		kfree(node);
		return ERR_PTR(-ENOMEM);
	}
	inode->i_ino = get_next_ino();
	inode_init_owner(SMEM_NOP_IDMAP, inode, dir, mode);
	smem_touch(inode);
	node->inode = inode;
	inode->i_private = node;
	if (S_ISDIR(mode)) {
		inode->i_op = &smem_dir_iops;
		inode->i_fop = &smem_dir_fops;
		inc_nlink(inode);
	} else {
		inode->i_op = &smem_file_iops;
		inode->i_fop = &smem_file_fops;
	}
	return inode;
}

int smem_node_link(struct super_block *sb, struct inode *dir, const char *name, size_t len,
		   struct inode *inode)
{
	struct smem_sb *ss = SMEM_SB(sb);
	struct smem_node *node = inode->i_private;

	node->name = kstrndup(name, len, GFP_KERNEL);
	if (!node->name)
		return -ENOMEM;
	node->parent = dir ? dir->i_private : NULL;
	mutex_lock(&ss->nodes_lock);
	list_add_tail(&node->link, &ss->nodes);
	mutex_unlock(&ss->nodes_lock);
	return 0;
}

static void smem_node_unlink(struct super_block *sb, struct inode *inode)
{
	struct smem_sb *ss = SMEM_SB(sb);
	struct smem_node *node = inode->i_private;

	mutex_lock(&ss->nodes_lock);
	list_del_init(&node->link);
	mutex_unlock(&ss->nodes_lock);
}

static int smem_mknod(struct inode *dir, struct dentry *dentry, umode_t mode)
{
	struct super_block *sb = dir->i_sb;
	struct smem_sb *ss = SMEM_SB(sb);
	struct inode *inode;
	int ret;

	down_read(&ss->change);
	ret = -EROFS;
	if (ss->pool->sealed || ss->pool->handover)
		goto out;
	inode = smem_new_inode(sb, dir, mode);
	ret = PTR_ERR_OR_ZERO(inode);
	if (ret)
		goto out;
	ret = smem_node_link(sb, dir, dentry->d_name.name, dentry->d_name.len, inode);
	if (ret) {
		iput(inode);
		goto out;
	}
	if (S_ISDIR(mode))
		inc_nlink(dir);
	smem_d_pin(dentry, inode);
	smem_touch(dir);
out:
	up_read(&ss->change);
	return ret;
}

static int smem_create(smem_idmap_t *idmap, struct inode *dir, struct dentry *dentry,
		       umode_t mode
#ifdef SMEM_HAVE_CREATE_EXCL
		       , bool excl
#endif
		       )
{
	return smem_mknod(dir, dentry, (mode & 07777) | S_IFREG);
}

#ifdef SMEM_HAVE_MKDIR_DENTRY
static struct dentry *smem_mkdir(smem_idmap_t *idmap, struct inode *dir, struct dentry *dentry,
				 umode_t mode)
{
	return ERR_PTR(smem_mknod(dir, dentry, (mode & 07777) | S_IFDIR));
}
#else
static int smem_mkdir(smem_idmap_t *idmap, struct inode *dir, struct dentry *dentry, umode_t mode)
{
	return smem_mknod(dir, dentry, (mode & 07777) | S_IFDIR);
}
#endif

static int smem_unlink(struct inode *dir, struct dentry *dentry)
{
	struct smem_sb *ss = SMEM_SB(dir->i_sb);
	int ret = -EROFS;

	down_read(&ss->change);
	if (!ss->pool->sealed) {
		smem_node_unlink(dir->i_sb, d_inode(dentry));
		ret = simple_unlink(dir, dentry);
	}
	up_read(&ss->change);
	return ret;
}

static int smem_rmdir(struct inode *dir, struct dentry *dentry)
{
	struct smem_sb *ss = SMEM_SB(dir->i_sb);
	struct inode *inode = d_inode(dentry);
	int ret = -EROFS;

	down_read(&ss->change);
	if (!ss->pool->sealed) {
		ret = simple_rmdir(dir, dentry);
		if (!ret)
			smem_node_unlink(dir->i_sb, inode);
	}
	up_read(&ss->change);
	return ret;
}

const struct inode_operations smem_dir_iops = {
	.lookup = simple_lookup,
	.create = smem_create,
	.mkdir = smem_mkdir,
	.unlink = smem_unlink,
	.rmdir = smem_rmdir,
	.setattr = simple_setattr,
	.getattr = simple_getattr,
};

const struct file_operations smem_dir_fops = {
	.open = dcache_dir_open,
	.release = dcache_dir_close,
	.llseek = dcache_dir_lseek,
	.read = generic_read_dir,
	.iterate_shared = dcache_readdir,
	.fsync = noop_fsync,
	.unlocked_ioctl = smem_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static void smem_evict_inode(struct inode *inode)
{
	struct smem_node *node = inode->i_private;
	struct smem_sb *ss = SMEM_SB(inode->i_sb);

	truncate_inode_pages_final(&inode->i_data);
	clear_inode(inode);
	if (!node)
		return;
	mutex_lock(&ss->nodes_lock);
	list_del_init(&node->link);
	mutex_unlock(&ss->nodes_lock);
	/* The next kernel's files go back to the system as they go; the old
	 * kernel's stay in the pool for other files until the unmount. */
	smem_file_free_all(ss->pool, node->file, ss->pool->handover);
	kfree(node->name);
	kfree(node);
	inode->i_private = NULL;
}

static int smem_statfs(struct dentry *dentry, struct kstatfs *buf)
{
	struct smem_pool *p = SMEM_SB(dentry->d_sb)->pool;
	u64 total, used;

	smem_pool_usage(p, &total, &used);
	buf->f_type = SMEM_SUPER_MAGIC;
	buf->f_bsize = PAGE_SIZE;
	buf->f_blocks = total >> PAGE_SHIFT;
	buf->f_bfree = buf->f_bavail = (total - used) >> PAGE_SHIFT;
	buf->f_namelen = NAME_MAX;
	return 0;
}

static const struct super_operations smem_sops = {
	.statfs = smem_statfs,
	.drop_inode = smem_drop_inode,
	.evict_inode = smem_evict_inode,
};

static int smem_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct smem_fc *c = fc->fs_private;
	struct smem_sb *ss;
	struct inode *root;
	int ret;

	ss = kzalloc(sizeof(*ss), GFP_KERNEL);
	if (!ss)
		return -ENOMEM;
	init_rwsem(&ss->change);
	mutex_init(&ss->nodes_lock);
	INIT_LIST_HEAD(&ss->nodes);
	ss->pool = smem_pool_new();
	sb->s_fs_info = ss;
	if (!ss->pool)
		return -ENOMEM;
	sb->s_magic = SMEM_SUPER_MAGIC;
	sb->s_op = &smem_sops;
	sb->s_maxbytes = MAX_LFS_FILESIZE;
	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_time_gran = 1;
	root = smem_new_inode(sb, NULL, S_IFDIR | 0700);
	if (IS_ERR(root))
		return PTR_ERR(root);
	sb->s_root = d_make_root(root);
	if (!sb->s_root)
		return -ENOMEM;
	ret = smem_node_link(sb, NULL, "", 0, root);
	if (ret)
		return ret;
	if (c->handover) {
		ret = smem_load_index(sb, c->handover);
		if (ret)
			return ret;
		sb->s_flags |= SB_RDONLY;
	}
	return 0;
}

enum { opt_handover };

static const struct fs_parameter_spec smem_params[] = {
	fsparam_u64("handover", opt_handover),
	{}
};

static int smem_parse_param(struct fs_context *fc, struct fs_parameter *param)
{
	struct smem_fc *c = fc->fs_private;
	struct fs_parse_result r;
	int opt = fs_parse(fc, smem_params, param, &r);

	if (opt < 0)
		return opt;
	if (!r.uint_64)
		return invalfc(fc, "handover: no address");
	c->handover = r.uint_64;
	return 0;
}

static int smem_get_tree(struct fs_context *fc)
{
	int ret;

	mutex_lock(&smem_mount_lock);
	if (smem_mounted) {
		mutex_unlock(&smem_mount_lock);
		errorfc(fc, "one seamlessmem mount at a time");
		return -EBUSY;
	}
	smem_mounted = true;
	mutex_unlock(&smem_mount_lock);
	ret = get_tree_nodev(fc, smem_fill_super);
	if (ret) {
		mutex_lock(&smem_mount_lock);
		smem_mounted = false;
		mutex_unlock(&smem_mount_lock);
	}
	return ret;
}

static void smem_free_fc(struct fs_context *fc)
{
	kfree(fc->fs_private);
}

static const struct fs_context_operations smem_ctx_ops = {
	.parse_param = smem_parse_param,
	.get_tree = smem_get_tree,
	.free = smem_free_fc,
};

static int smem_init_fs_context(struct fs_context *fc)
{
	fc->fs_private = kzalloc(sizeof(struct smem_fc), GFP_KERNEL);
	if (!fc->fs_private)
		return -ENOMEM;
	fc->ops = &smem_ctx_ops;
	return 0;
}

static void smem_kill_super(struct super_block *sb)
{
	struct smem_sb *ss = SMEM_SB(sb);

	smem_kill_sb(sb);
	if (ss) {
		smem_pool_destroy(ss->pool);
		kfree(ss);
	}
	mutex_lock(&smem_mount_lock);
	smem_mounted = false;
	mutex_unlock(&smem_mount_lock);
}

static struct file_system_type smem_fs_type = {
	.owner = THIS_MODULE,
	.name = SMEM_NAME,
	.init_fs_context = smem_init_fs_context,
	.kill_sb = smem_kill_super,
};

static int __init smem_init(void)
{
	return register_filesystem(&smem_fs_type);
}

static void __exit smem_exit(void)
{
	unregister_filesystem(&smem_fs_type);
}

module_init(smem_init);
module_exit(smem_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("seamless: checkpoint images kept in memory across kexec");
MODULE_ALIAS_FS(SMEM_NAME);
