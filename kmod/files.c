// SPDX-License-Identifier: GPL-2.0
/*
 * files.c - the target's fd table and pipe buffers.
 *
 * The fd table is read with iterate_fd() under task_lock() of a live
 * thread: the lock keeps task->files from being released (the helpers that
 * take a files_struct reference are not exported), and the callback takes
 * a reference on the one file it picks, so the rest runs unlocked.
 */
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/kdev_t.h>
#include <linux/magic.h>
#include <linux/pipe_fs_i.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "internal.h"

/* iterate_fd() callback, under files->file_lock: take the first file. */
static int crak_pick_first(const void *p, struct file *file, unsigned int fd)
{
	struct crak_fd_pick *pick = *(struct crak_fd_pick * const *)p;

	pick->file = get_file(file);
	pick->fd = fd;
	pick->cloexec = crak_compat_close_on_exec(pick->files, fd);
	return 1;
}

/* The first open fd >= fd of the target, with a file reference. */
int crak_target_fd(struct crak_session *s, unsigned int fd,
		   struct crak_fd_pick *pick)
{
	struct crak_fd_pick *out = pick;
	struct task_struct *t;

	pick->file = NULL;
	t = crak_session_live_task(s);
	if (!t)
		return -ESRCH;
	task_lock(t);
	pick->files = t->files;
	if (pick->files)
		iterate_fd(pick->files, fd, crak_pick_first, &out);
	task_unlock(t);
	put_task_struct(t);
	return pick->file ? 0 : -ENOENT;
}

/* The file open as exactly `fd` in the target, with a reference; -EBADF if none. */
int crak_target_exact_fd(struct crak_session *s, u32 fd, struct crak_fd_pick *pick)
{
	int ret;

	if (fd > INT_MAX)
		return -EBADF;
	ret = crak_target_fd(s, fd, pick);
	if (ret == -ENOENT)
		return -EBADF;
	if (ret)
		return ret;
	if (pick->fd != fd) {
		fput(pick->file);
		pick->file = NULL;
		return -EBADF;
	}
	return 0;
}

static u32 crak_fd_kind(struct file *file)
{
	struct inode *inode = file_inode(file);

	if (inode->i_sb->s_magic == ANON_INODE_FS_MAGIC)
		return CRAK_FD_KIND_ANON;
	switch (inode->i_mode & S_IFMT) {
	case S_IFREG:
		return CRAK_FD_KIND_REG;
	case S_IFDIR:
		return CRAK_FD_KIND_DIR;
	case S_IFCHR:
		return CRAK_FD_KIND_CHR;
	case S_IFBLK:
		return CRAK_FD_KIND_BLK;
	case S_IFSOCK:
		return CRAK_FD_KIND_SOCKET;
	case S_IFLNK:
		return CRAK_FD_KIND_LNK;
	case S_IFIFO:
		if (inode->i_sb->s_magic == PIPEFS_MAGIC)
			return CRAK_FD_KIND_PIPE;
		return CRAK_FD_KIND_FIFO;
	default:
		return CRAK_FD_KIND_UNKNOWN;
	}
}

long crak_ioc_get_fd(struct crak_session *s, void __user *arg)
{
	struct crak_fd_pick pick;
	struct inode *inode;
	struct file *file;
	struct crak_fd q;
	const char *name;
	char *buf;
	long ret;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_FD_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (q.name_cap > CRAK_MAX_NAME)
		return -E2BIG;
	if (q.fd > INT_MAX)
		return -EINVAL;
	ret = crak_target_fd(s, q.fd, &pick);
	if (ret)
		return ret;
	file = pick.file;
	inode = file_inode(file);

	buf = kmalloc(CRAK_MAX_NAME, GFP_KERNEL);
	if (!buf) {
		ret = -ENOMEM;
		goto out_file;
	}
	q.fd = pick.fd;
	q.fd_flags = pick.cloexec ? CRAK_FD_CLOEXEC : 0;
	if (file->f_mode & FMODE_PATH)
		q.fd_flags |= CRAK_FD_PATH;
	q.kind = crak_fd_kind(file);
	switch (q.kind) {
	case CRAK_FD_KIND_REG:
	case CRAK_FD_KIND_DIR:
	case CRAK_FD_KIND_CHR:
	case CRAK_FD_KIND_BLK:
	case CRAK_FD_KIND_FIFO:
	case CRAK_FD_KIND_LNK:
		if (d_unlinked(file->f_path.dentry))
			q.fd_flags |= CRAK_FD_DELETED;
		break;
	}
	q.f_flags = file->f_flags;
	q.f_mode = file->f_mode & (FMODE_READ | FMODE_WRITE);
	q.pos = file->f_pos;
	q.ino = inode->i_ino;
	q.dev_major = MAJOR(inode->i_sb->s_dev);
	q.dev_minor = MINOR(inode->i_sb->s_dev);
	q.rdev_major = MAJOR(inode->i_rdev);
	q.rdev_minor = MINOR(inode->i_rdev);
	q.mode = inode->i_mode;
	q.pad = 0;
	q.pipe_id = S_ISFIFO(inode->i_mode) ? inode->i_ino : 0;

	name = d_path(&file->f_path, buf, CRAK_MAX_NAME);
	if (IS_ERR(name)) {
		ret = PTR_ERR(name);
		goto out_buf;
	}
	ret = crak_copy_name(name, strlen(name), q.name_ptr, q.name_cap,
			     &q.name_len);
	if ((!ret || ret == -ENAMETOOLONG) && copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
out_buf:
	kfree(buf);
out_file:
	fput(file);
	return ret;
}

/* The pipe behind a file, or NULL: pipes and FIFOs, not O_PATH ones. */
static struct pipe_inode_info *crak_file_pipe(struct file *file)
{
	struct inode *inode = file_inode(file);

	if (!S_ISFIFO(inode->i_mode) || (file->f_mode & FMODE_PATH))
		return NULL;
	if (!inode->i_pipe || file->private_data != inode->i_pipe)
		return NULL;
	return inode->i_pipe;
}

long crak_ioc_pipe_peek(struct crak_session *s, void __user *arg)
{
	struct pipe_inode_info *pipe;
	struct crak_pipe_peek q;
	struct crak_fd_pick pick;
	struct pipe_buffer *pb;
	unsigned int tail, mask;
	size_t nr = 0, copied = 0, want;
	char *kbuf = NULL;
	long ret;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_PIPE_PEEK_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (q.buf_len > CRAK_MAX_PEEK)
		return -E2BIG;
	ret = crak_target_exact_fd(s, q.fd, &pick);
	if (ret)
		return ret;
	pipe = crak_file_pipe(pick.file);
	if (!pipe) {
		ret = -EINVAL;
		goto out_file;
	}

	pipe_lock(pipe);
	mask = pipe->ring_size - 1;
	for (tail = pipe->tail; tail != pipe->head; tail++)
		nr += pipe->bufs[tail & mask].len;
	want = min_t(size_t, nr, q.buf_len);
	if (want) {
		kbuf = kvmalloc(want, GFP_KERNEL);
		if (!kbuf) {
			ret = -ENOMEM;
			goto out_unlock;
		}
	}
	for (tail = pipe->tail; tail != pipe->head && copied < want; tail++) {
		size_t n;
		char *kaddr;

		pb = &pipe->bufs[tail & mask];
		ret = pipe_buf_confirm(pipe, pb);
		if (ret)
			goto out_unlock;
		n = min_t(size_t, pb->len, want - copied);
		kaddr = kmap_local_page(pb->page);
		memcpy(kbuf + copied, kaddr + pb->offset, n);
		kunmap_local(kaddr);
		copied += n;
	}
	q.nr_bytes = nr;
	q.pipe_size = pipe->max_usage * PAGE_SIZE;
	q.ino = file_inode(pick.file)->i_ino;
	ret = 0;
out_unlock:
	pipe_unlock(pipe);
	if (!ret && copied &&
	    copy_to_user(u64_to_user_ptr(q.buf_ptr), kbuf, copied))
		ret = -EFAULT;
	q.out_len = copied;
	if (!ret && copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
	kvfree(kbuf);
out_file:
	fput(pick.file);
	return ret;
}
