// SPDX-License-Identifier: GPL-2.0
/*
 * seccomp.c - a thread's seccomp mode and filter chain, as
 * PTRACE_SECCOMP_GET_FILTER and PTRACE_SECCOMP_GET_METADATA report them.
 *
 * struct seccomp_filter is private to kernel/seccomp.c: its layout comes
 * from compat/seccomp.h and is checked while reading (see there). The
 * chain is read under the thread's siglock: a filter is attached under it
 * (also by TSYNC from another thread), and the chain is only released
 * after the thread has lost its sighand (seccomp_filter_release() in
 * release_task()), so holding the siglock keeps every filter alive.
 * Programs are copied into a buffer allocated beforehand; nothing sleeps
 * under the lock.
 */
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seccomp.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "internal.h"
#include "compat/seccomp.h"

/*
 * Copies the chain of t (newest first) into buf as crak_seccomp_filter
 * records; returns the bytes the whole chain takes (written only if it fits
 * in len), or -EPROTO when what is read contradicts the layout.
 * Caller holds t's siglock.
 */
static long crak_copy_chain(struct task_struct *t, u8 *buf, u32 len,
			    u32 *nr_filters)
{
	struct crak_kseccomp_filter *f;
	struct crak_seccomp_filter rec;
	int expected = atomic_read(&t->seccomp.filter_count);
	u32 n = 0;
	size_t size = 0, prog_len;

	for (f = crak_compat_seccomp_filter(t); f; f = f->prev) {
		struct sock_fprog_kern *fprog;

		if (++n > expected || !f->prog || !f->prog->orig_prog)
			return -EPROTO;
		fprog = f->prog->orig_prog;
		if (!fprog->len || fprog->len > BPF_MAXINSNS)
			return -EPROTO;
		prog_len = bpf_classic_proglen(fprog);
		if (size + sizeof(rec) + prog_len <= len) {
			memset(&rec, 0, sizeof(rec));
			rec.len = fprog->len;
			if (f->log)
				rec.flags |= CRAK_SECCOMP_FILTER_F_LOG;
			if (f->notif)
				rec.flags |= CRAK_SECCOMP_FILTER_F_LISTENER;
			memcpy(buf + size, &rec, sizeof(rec));
			memcpy(buf + size + sizeof(rec), fprog->filter, prog_len);
		}
		size += sizeof(rec) + prog_len;
	}
	if (n != expected)
		return -EPROTO;
	*nr_filters = n;
	return size;
}

long crak_ioc_get_seccomp(struct crak_session *s, void __user *arg)
{
	struct crak_seccomp q;
	struct sighand_struct *sh;
	struct task_struct *t;
	unsigned long flags;
	u8 *buf = NULL;
	long size;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_SECCOMP_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.size || q.mode || q.nr_filters ||
	    crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (q.buf_len > CRAK_MAX_SECCOMP_BUF)
		return -E2BIG;
	if (q.buf_len) {
		buf = kvzalloc(q.buf_len, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
	}
	t = crak_session_thread(s, q.tid);
	if (!t) {
		kvfree(buf);
		return -ESRCH;
	}
	sh = crak_lock_sighand(t, &flags);
	if (!sh) {
		put_task_struct(t);
		kvfree(buf);
		return -ESRCH;
	}
	q.mode = t->seccomp.mode;
	size = q.mode == SECCOMP_MODE_FILTER ?
	       crak_copy_chain(t, buf, q.buf_len, &q.nr_filters) : 0;
	spin_unlock_irqrestore(&sh->siglock, flags);
	put_task_struct(t);
	if (size < 0) {
		pr_warn_ratelimited("thread %u: its seccomp filters do not match the layout in compat/seccomp.h\n",
				    q.tid);
		kvfree(buf);
		return size;
	}
	q.size = size;
	if (size && size <= q.buf_len &&
	    copy_to_user(u64_to_user_ptr(q.buf_ptr), buf, size))
		size = -EFAULT;
	else if (copy_to_user(arg, &q, sizeof(q)))
		size = -EFAULT;
	kvfree(buf);
	return size < 0 ? size : 0;
}
