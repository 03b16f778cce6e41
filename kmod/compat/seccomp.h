/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat/seccomp.h - the layout of struct seccomp_filter, private to
 * kernel/seccomp.c, for the kernels compat.h admits (6.1.x).
 *
 * Only the fields up to `notif` are read: log (SECCOMP_FILTER_FLAG_LOG),
 * prev (the filter installed before it) and prog, whose orig_prog is the
 * classic BPF program as installed (kept when CONFIG_CHECKPOINT_RESTORE is
 * set, for PTRACE_SECCOMP_GET_FILTER). The struct action_cache in between
 * follows the same SECCOMP_ARCH_* macros as the kernel's definition, so it
 * has the kernel's size for this configuration. Since a wrong layout would
 * read garbage, seccomp.c checks what it reads against facts it can verify
 * independently (the chain length equals seccomp.filter_count, each
 * program's length is within BPF_MAXINSNS) and refuses otherwise.
 *
 * Checked against 6.1's kernel/seccomp.c: refs, users, log,
 * wait_killable_recv (6.0+), cache, prev, prog, notif, notify_lock, wqh.
 * Whoever widens compat.h's range re-checks this struct first.
 */
#ifndef _CRAK_COMPAT_SECCOMP_H
#define _CRAK_COMPAT_SECCOMP_H

#include <linux/bitmap.h>
#include <linux/refcount.h>
#include <linux/seccomp.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#error "crak: struct seccomp_filter layout not verified past 6.1 (compat/seccomp.h)"
#endif

#ifdef SECCOMP_ARCH_NATIVE
struct crak_seccomp_action_cache {
	DECLARE_BITMAP(allow_native, SECCOMP_ARCH_NATIVE_NR);
#ifdef SECCOMP_ARCH_COMPAT
	DECLARE_BITMAP(allow_compat, SECCOMP_ARCH_COMPAT_NR);
#endif
};
#else
struct crak_seccomp_action_cache { };
#endif

struct crak_kseccomp_filter {
	refcount_t refs;
	refcount_t users;
	bool log;
	bool wait_killable_recv;
	struct crak_seccomp_action_cache cache;
	struct crak_kseccomp_filter *prev;
	struct bpf_prog *prog;
	void *notif;		/* struct notification: a listener exists */
	/* notify_lock, wqh: not read */
};

static inline struct crak_kseccomp_filter *
crak_compat_seccomp_filter(struct task_struct *t)
{
	return (struct crak_kseccomp_filter *)t->seccomp.filter;
}

#endif /* _CRAK_COMPAT_SECCOMP_H */
