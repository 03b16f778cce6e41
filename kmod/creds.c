// SPDX-License-Identifier: GPL-2.0
/*
 * creds.c - credentials of one thread, in the caller's user namespace.
 */
#include <linux/cred.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uidgid.h>
#include "internal.h"

long crak_ioc_get_creds(struct crak_session *s, void __user *arg)
{
	struct user_namespace *ns = current_user_ns();
	const struct cred *cred;
	struct task_struct *t;
	struct crak_creds q;
	u32 *groups = NULL;
	u32 i, n = 0;
	long ret = 0;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_CREDS_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.pad || crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (q.groups_cap > CRAK_MAX_GROUPS)
		return -E2BIG;
	if (q.tid) {
		t = crak_session_thread(s, q.tid);
	} else {
		t = s->leader;
		get_task_struct(t);
	}
	if (!t)
		return -ESRCH;
	cred = get_task_cred(t);
	put_task_struct(t);

	q.uid = from_kuid_munged(ns, cred->uid);
	q.gid = from_kgid_munged(ns, cred->gid);
	q.suid = from_kuid_munged(ns, cred->suid);
	q.sgid = from_kgid_munged(ns, cred->sgid);
	q.euid = from_kuid_munged(ns, cred->euid);
	q.egid = from_kgid_munged(ns, cred->egid);
	q.fsuid = from_kuid_munged(ns, cred->fsuid);
	q.fsgid = from_kgid_munged(ns, cred->fsgid);
	q.cap_inheritable = crak_compat_cap(cred->cap_inheritable);
	q.cap_permitted = crak_compat_cap(cred->cap_permitted);
	q.cap_effective = crak_compat_cap(cred->cap_effective);
	q.cap_bset = crak_compat_cap(cred->cap_bset);
	q.cap_ambient = crak_compat_cap(cred->cap_ambient);
	q.securebits = cred->securebits;
	q.ngroups = cred->group_info->ngroups;
	n = min(q.ngroups, q.groups_cap);
	if (n) {
		groups = kvmalloc_array(n, sizeof(*groups), GFP_KERNEL);
		if (!groups) {
			ret = -ENOMEM;
			goto out;
		}
		for (i = 0; i < n; i++)
			groups[i] = from_kgid_munged(ns,
						     cred->group_info->gid[i]);
		if (copy_to_user(u64_to_user_ptr(q.groups_ptr), groups,
				 n * sizeof(*groups)))
			ret = -EFAULT;
	}
	if (!ret && copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
out:
	kvfree(groups);
	put_cred(cred);
	return ret;
}
