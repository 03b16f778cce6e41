// SPDX-License-Identifier: GPL-2.0
/*
 * signals.c - handlers, masks and queued signals, read without dequeuing.
 *
 * lock_task_sighand() is an inline around an unexported helper, so
 * crak_lock_sighand() does the same: take the siglock of the sighand the
 * task points to under RCU (sighand_struct is SLAB_TYPESAFE_BY_RCU) and
 * retry if the task switched sighand meanwhile. NULL: the task is gone.
 *
 * Interval timers are read as getitimer(2) reads them (kernel/time/itimer.c),
 * under the siglock: ITIMER_REAL from the hrtimer (1 us when it is due, as
 * itimer_get_remtime()), the CPU timers as expires minus the thread group's
 * CPU-time sample. thread_group_sample_cputime() is not exported, but what
 * it reads is: the group cputimer's atomic utime/stime (running whenever a
 * CPU itimer is armed), so the sample is taken exactly as getitimer does.
 */
#include <linux/hrtimer.h>
#include <linux/posix-timers.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/signal.h>
#include <linux/signal_types.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "internal.h"

struct sighand_struct *crak_lock_sighand(struct task_struct *t,
					 unsigned long *flags)
{
	struct sighand_struct *sh;

	rcu_read_lock();
	for (;;) {
		sh = rcu_dereference(t->sighand);
		if (!sh)
			break;
		spin_lock_irqsave(&sh->siglock, *flags);
		if (likely(sh == rcu_access_pointer(t->sighand)))
			break;
		spin_unlock_irqrestore(&sh->siglock, *flags);
	}
	rcu_read_unlock();
	return sh;
}

/* A sigset_t as two u64 words (mips has 128 signals). */
static void crak_sigset(u64 out[2], const sigset_t *set)
{
	out[0] = 0;
	out[1] = 0;
	memcpy(out, set, min(sizeof(*set), 2 * sizeof(u64)));
}

static u64 crak_restorer(const struct sigaction *sa)
{
#ifdef __ARCH_HAS_SA_RESTORER
	return (unsigned long)sa->sa_restorer;
#else
	return 0;
#endif
}

long crak_ioc_get_sigactions(struct crak_session *s, void __user *arg)
{
	struct crak_sigactions q;
	struct crak_sigaction *acts;
	struct sighand_struct *sh;
	struct task_struct *t;
	unsigned long flags;
	unsigned int i, n;
	long ret = 0;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_SIGACTIONS_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.pad || crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	n = min_t(u32, q.count, _NSIG);
	acts = kcalloc(_NSIG, sizeof(*acts), GFP_KERNEL);
	if (!acts)
		return -ENOMEM;
	t = crak_session_live_task(s);
	if (!t) {
		ret = -ESRCH;
		goto out;
	}
	sh = crak_lock_sighand(t, &flags);
	if (sh) {
		for (i = 0; i < _NSIG; i++) {
			const struct sigaction *sa = &sh->action[i].sa;

			acts[i].handler = (unsigned long)sa->sa_handler;
			/* do_sigaction() hides kernel-internal bits too. */
			acts[i].sa_flags = sa->sa_flags & UAPI_SA_FLAGS;
			acts[i].restorer = crak_restorer(sa);
			crak_sigset(acts[i].mask, &sa->sa_mask);
		}
		spin_unlock_irqrestore(&sh->siglock, flags);
	}
	put_task_struct(t);
	if (!sh) {
		ret = -ESRCH;
		goto out;
	}
	q.nr_signals = _NSIG;
	if (n && copy_to_user(u64_to_user_ptr(q.actions_ptr), acts,
			      n * sizeof(*acts)))
		ret = -EFAULT;
	else if (copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
out:
	kfree(acts);
	return ret;
}

long crak_ioc_get_thread_signals(struct crak_session *s, void __user *arg)
{
	struct crak_thread_signals q;
	struct sighand_struct *sh;
	struct task_struct *t;
	unsigned long flags;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_THREAD_SIGNALS_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	t = crak_session_thread(s, q.tid);
	if (!t)
		return -ESRCH;
	sh = crak_lock_sighand(t, &flags);
	if (sh) {
		crak_sigset(q.blocked, &t->blocked);
		crak_sigset(q.saved_mask, &t->saved_sigmask);
		crak_sigset(q.pending, &t->pending.signal);
		crak_sigset(q.shared_pending, &t->signal->shared_pending.signal);
		q.flags = test_tsk_restore_sigmask(t) ?
			  CRAK_TSIG_F_RESTORE_SIGMASK : 0;
		spin_unlock_irqrestore(&sh->siglock, flags);
	}
	put_task_struct(t);
	if (!sh)
		return -ESRCH;
	if (copy_to_user(arg, &q, sizeof(q)))
		return -EFAULT;
	return 0;
}

long crak_ioc_get_pending(struct crak_session *s, void __user *arg)
{
	struct crak_siginfo *out = NULL;
	struct sighand_struct *sh;
	struct sigpending *queue;
	struct task_struct *t;
	struct crak_pending q;
	struct sigqueue *sq;
	unsigned long flags;
	u32 idx = 0, n = 0;
	long ret = 0;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_PENDING_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (q.count > CRAK_MAX_PENDING)
		return -E2BIG;
	if (q.flags & CRAK_PENDING_F_SHARED) {
		if (q.tid)
			return -EINVAL;
		t = crak_session_live_task(s);
	} else {
		t = crak_session_thread(s, q.tid);
	}
	if (!t)
		return -ESRCH;
	if (q.count) {
		out = kvcalloc(q.count, sizeof(*out), GFP_KERNEL);
		if (!out) {
			ret = -ENOMEM;
			goto out_task;
		}
	}
	sh = crak_lock_sighand(t, &flags);
	if (!sh) {
		ret = -ESRCH;
		goto out_free;
	}
	queue = (q.flags & CRAK_PENDING_F_SHARED) ?
		&t->signal->shared_pending : &t->pending;
	list_for_each_entry(sq, &queue->list, list) {
		if (idx >= q.start && n < q.count) {
			out[n].signo = sq->info.si_signo;
			/* The user siginfo_t starts with the kernel one. */
			memcpy(out[n].info, &sq->info,
			       min(sizeof(sq->info), sizeof(out[n].info)));
			n++;
		}
		idx++;
	}
	spin_unlock_irqrestore(&sh->siglock, flags);
	q.nr_copied = n;
	q.nr_queued = idx;
	if (n && copy_to_user(u64_to_user_ptr(q.entries_ptr), out,
			      n * sizeof(*out)))
		ret = -EFAULT;
	else if (copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
out_free:
	kvfree(out);
out_task:
	put_task_struct(t);
	return ret;
}

/* getitimer(ITIMER_REAL): itimer_get_remtime() and it_real_incr. */
static void crak_real_itimer(struct signal_struct *sig, u64 *value, u64 *interval)
{
	ktime_t rem = __hrtimer_get_remaining(&sig->real_timer, true);

	if (hrtimer_active(&sig->real_timer)) {
		if (rem <= 0)
			rem = NSEC_PER_USEC;
	} else {
		rem = 0;
	}
	*value = rem;
	*interval = ktime_to_ns(sig->it_real_incr);
}

/* getitimer(ITIMER_VIRTUAL/PROF): get_cpu_itimer() for clock CPUCLOCK_*. */
static void crak_cpu_itimer(struct signal_struct *sig, int clock, u64 *value,
			    u64 *interval)
{
	struct task_cputime_atomic *at = &sig->cputimer.cputime_atomic;
	u64 val = sig->it[clock].expires, now;

	if (val) {
		now = atomic64_read(&at->utime);
		if (clock == CPUCLOCK_PROF)
			now += atomic64_read(&at->stime);
		val = val < now ? TICK_NSEC : val - now;	/* about to fire */
	}
	*value = val;
	*interval = sig->it[clock].incr;
}

long crak_ioc_get_itimers(struct crak_session *s, void __user *arg)
{
	struct crak_itimers q;
	struct sighand_struct *sh;
	struct task_struct *t;
	unsigned long flags;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_ITIMERS_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.pad || crak_nonzero(q.value_ns, ARRAY_SIZE(q.value_ns)) ||
	    crak_nonzero(q.interval_ns, ARRAY_SIZE(q.interval_ns)) ||
	    crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	t = crak_session_live_task(s);
	if (!t)
		return -ESRCH;
	sh = crak_lock_sighand(t, &flags);
	if (!sh) {
		put_task_struct(t);
		return -ESRCH;
	}
	crak_real_itimer(t->signal, &q.value_ns[0], &q.interval_ns[0]);
	crak_cpu_itimer(t->signal, CPUCLOCK_VIRT, &q.value_ns[1], &q.interval_ns[1]);
	crak_cpu_itimer(t->signal, CPUCLOCK_PROF, &q.value_ns[2], &q.interval_ns[2]);
	spin_unlock_irqrestore(&sh->siglock, flags);
	put_task_struct(t);
	if (copy_to_user(arg, &q, sizeof(q)))
		return -EFAULT;
	return 0;
}
