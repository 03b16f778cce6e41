// SPDX-License-Identifier: GPL-2.0
/*
 * regs.c - regsets of a parked thread, the bytes PTRACE_GETREGSET returns.
 *
 * The thread sleeps in crak_park_work() and is off its CPU (the freeze made
 * sure), so its user registers sit in pt_regs and its FP/vector state has
 * been saved to memory by the context switch: the arch regset getters read
 * them as they do for a ptrace-stopped tracee.
 */
#include <linux/regset.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "internal.h"

static const struct user_regset *crak_find_regset(struct task_struct *t,
						  u32 note_type)
{
	const struct user_regset_view *view = task_user_regset_view(t);
	unsigned int i;

	for (i = 0; i < view->n; i++)
		if (view->regsets[i].core_note_type == note_type)
			return &view->regsets[i];
	return NULL;
}

long crak_ioc_get_regset(struct crak_session *s, void __user *arg)
{
	const struct user_regset *regset;
	struct crak_thread *th;
	struct crak_regset r;
	unsigned int full, len;
	void *buf = NULL;
	int ret;

	if (copy_from_user(&r, arg, sizeof(r)))
		return -EFAULT;
	if (r.flags & ~CRAK_REGSET_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (r.out_len || r.full_len ||
	    crak_nonzero(r.reserved, ARRAY_SIZE(r.reserved)))
		return -EINVAL;
	th = crak_session_parked(s, r.tid);
	if (!th)
		return -ESRCH;
	regset = crak_find_regset(th->task, r.note_type);
	if (!regset)
		return -ENODATA;
	full = regset->n * regset->size;
	if (r.buf_len % regset->size)
		return -EINVAL;
	len = min(r.buf_len, full);
	if (len) {
		ret = regset_get_alloc(th->task, regset, len, &buf);
		if (ret < 0)
			return ret;
		ret = copy_to_user(u64_to_user_ptr(r.buf_ptr), buf, len) ?
		      -EFAULT : 0;
		kfree(buf);
		if (ret)
			return ret;
	}
	r.out_len = len;
	r.full_len = full;
	if (copy_to_user(arg, &r, sizeof(r)))
		return -EFAULT;
	return 0;
}
