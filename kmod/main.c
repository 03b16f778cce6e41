// SPDX-License-Identifier: GPL-2.0
/*
 * main.c - /dev/crak: open, version handshake, session creation, and the
 * dispatch of session ioctls.
 */
#include <linux/capability.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "internal.h"

/* file->private_data of an open /dev/crak: set once the handshake passed. */
#define CRAK_HANDSHAKE_DONE	((void *)1UL)

int crak_copy_name(const char *name, size_t len, u64 uptr, u32 cap,
		   u32 *name_len)
{
	if (cap > CRAK_MAX_NAME)
		return -E2BIG;
	if (len >= CRAK_MAX_NAME)
		len = CRAK_MAX_NAME - 1;
	*name_len = len;
	if (!cap)
		return 0;
	if (len + 1 > cap)
		return -ENAMETOOLONG;
	if (copy_to_user(u64_to_user_ptr(uptr), name, len) ||
	    put_user(0, (char __user *)u64_to_user_ptr(uptr) + len))
		return -EFAULT;
	return 0;
}

static int crak_dev_open(struct inode *inode, struct file *file)
{
	if (!capable(CAP_CHECKPOINT_RESTORE) && !capable(CAP_SYS_ADMIN))
		return -EPERM;
	file->private_data = NULL;
	return 0;
}

static long crak_ioc_version(struct file *file, void __user *arg)
{
	struct crak_version v;
	bool match;

	if (copy_from_user(&v, arg, sizeof(v)))
		return -EFAULT;
	if (v.flags & ~CRAK_VERSION_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(v.reserved, ARRAY_SIZE(v.reserved)))
		return -EINVAL;
	match = v.abi_version == CRAK_ABI_VERSION;
	v.module_version = CRAK_ABI_VERSION;
	v.page_size = PAGE_SIZE;
	v.nr_signals = _NSIG;
	v.max_threads = CRAK_MAX_THREADS;
	v.dump_max_pages = CRAK_DUMP_MAX_PAGES;
	v.max_pending = CRAK_MAX_PENDING;
	v.max_peek = CRAK_MAX_PEEK;
	v.max_name = CRAK_MAX_NAME;
	if (copy_to_user(arg, &v, sizeof(v)))
		return -EFAULT;
	if (!match)
		return -EPROTONOSUPPORT;
	file->private_data = CRAK_HANDSHAKE_DONE;
	return 0;
}

static long crak_ioc_open_session(void __user *arg)
{
	struct crak_open_session o;

	if (copy_from_user(&o, arg, sizeof(o)))
		return -EFAULT;
	if (o.flags & ~CRAK_OPEN_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(o.reserved, ARRAY_SIZE(o.reserved)))
		return -EINVAL;
	if (!o.pid || o.pid > PID_MAX_LIMIT)
		return -ESRCH;
	return crak_session_open(o.pid, o.flags);
}

static long crak_dev_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	if (cmd == CRAK_IOC_VERSION)
		return crak_ioc_version(file, uarg);
	if (file->private_data != CRAK_HANDSHAKE_DONE)
		return -EPROTO;
	switch (cmd) {
	case CRAK_IOC_OPEN_SESSION:
		return crak_ioc_open_session(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations crak_dev_fops = {
	.owner = THIS_MODULE,
	.open = crak_dev_open,
	.unlocked_ioctl = crak_dev_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice crak_miscdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = CRAK_DEVICE_NAME,
	.fops = &crak_dev_fops,
	.mode = 0600,
};

static int __init crak_init(void)
{
	int ret;

	ret = misc_register(&crak_miscdev);
	if (ret)
		goto err_misc;
	pr_info("loaded, ABI version %u\n", CRAK_ABI_VERSION);
	return 0;

err_misc:
	pr_err("cannot register /dev/%s: %d\n", CRAK_DEVICE_NAME, ret);
	return ret;
}

static void __exit crak_exit(void)
{
	misc_deregister(&crak_miscdev);
}

module_init(crak_init);
module_exit(crak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("crak: checkpoint state of a process from inside the kernel");
MODULE_AUTHOR("pyckpt developers");
