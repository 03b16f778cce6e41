// SPDX-License-Identifier: GPL-2.0
/*
 * timers.c - POSIX timers (timer_create), each read as timer_gettime(2)
 * and timer_getoverrun(2) in the target would report it, without changing
 * the timer.
 *
 * Locking, as kernel/time/posix-timers.c has it on 6.1: the list
 * signal->posix_timers changes under the siglock; a timer's state is
 * under its it_lock, which is taken before the siglock (the expiry path
 * queues the signal holding it_lock), so never inside it. The timers are
 * therefore picked up under the siglock and read one by one under their
 * it_lock, all inside one RCU read section (timers are freed after a
 * grace period); a timer deleted meanwhile has it_signal cleared and is
 * skipped. The target is frozen, so only an expiry or its exit can race.
 *
 * Time left, by clock:
 * - hrtimer clocks (REALTIME, MONOTONIC, BOOTTIME, TAI): common_timer_get()
 *   with the hrtimer's own clock base as "now" (a relative CLOCK_REALTIME
 *   timer runs on the monotonic base); a periodic timer whose signal is
 *   pending, or a periodic SIGEV_NONE timer, is moved forward by whole
 *   intervals in a local copy, as hrtimer_forward() would move it.
 * - CPU clocks: posix_cpu_timer_get(): expiry minus a sample of the
 *   thread's or the thread group's CPU time. The samplers are not
 *   exported; what they read is: the group cputimer's atomics when it
 *   runs, else the sum over the threads and the dead ones' totals
 *   (thread_group_cputime()). The threads are parked, so their own
 *   utime/stime/sum_exec_runtime are up to date.
 * - alarm clocks: not read (CRAK_POSIX_TIMER_F_NO_VALUE).
 */
#include <linux/hrtimer.h>
#include <linux/pid.h>
#include <linux/posix-timers.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include "internal.h"

static bool crak_hrtimer_clock(clockid_t clock)
{
	return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC ||
	       clock == CLOCK_BOOTTIME || clock == CLOCK_TAI;
}

/* common_timer_get(), on a copy of the expiry. */
static u64 crak_hrtimer_left(struct k_itimer *timr)
{
	struct hrtimer *timer = &timr->it.real.timer;
	bool sig_none = timr->it_sigev_notify == SIGEV_NONE;
	ktime_t iv = timr->it_interval, now, expires, rem;

	if (!iv && !timr->it_active && !sig_none)
		return 0;
	now = hrtimer_cb_get_time(timer);
	expires = hrtimer_get_expires(timer);
	if (iv && ((timr->it_requeue_pending & REQUEUE_PENDING) || sig_none) &&
	    now >= expires) {
		/* hrtimer_forward(): the first expiry after now */
		expires += (ktime_divns(now - expires, iv) + 1) * iv;
	}
	rem = expires - now;
	if (rem <= 0)
		return sig_none ? 0 : 1;	/* due, not fired yet */
	return rem;
}

static u64 crak_task_cputime(struct task_struct *t, int which)
{
	switch (which) {
	case CPUCLOCK_PROF:
		return t->utime + t->stime;
	case CPUCLOCK_VIRT:
		return t->utime;
	default:
		return t->se.sum_exec_runtime;
	}
}

/* cpu_clock_sample_group(which, p, false). Under rcu_read_lock(). */
static u64 crak_group_cputime(struct task_struct *p, int which)
{
	struct signal_struct *sig = p->signal;
	struct task_cputime_atomic *at = &sig->cputimer.cputime_atomic;
	struct task_struct *t;
	u64 sum;

	if (READ_ONCE(sig->posix_cputimers.timers_active)) {
		switch (which) {
		case CPUCLOCK_PROF:
			return atomic64_read(&at->utime) +
			       atomic64_read(&at->stime);
		case CPUCLOCK_VIRT:
			return atomic64_read(&at->utime);
		default:
			return atomic64_read(&at->sum_exec_runtime);
		}
	}
	switch (which) {
	case CPUCLOCK_PROF:
		sum = sig->utime + sig->stime;
		break;
	case CPUCLOCK_VIRT:
		sum = sig->utime;
		break;
	default:
		sum = sig->sum_sched_runtime;
	}
	for_each_thread(p, t)
		sum += crak_task_cputime(t, which);
	return sum;
}

/* posix_cpu_timer_get(). Under rcu_read_lock(). */
static u64 crak_cpu_timer_left(struct k_itimer *timr)
{
	clockid_t clock = timr->it_clock;
	u64 expires = cpu_timer_getexpires(&timr->it.cpu), now;
	struct task_struct *p;

	if (!expires)
		return 0;
	p = pid_task(timr->it.cpu.pid, CPUCLOCK_PERTHREAD(clock) ?
		     PIDTYPE_PID : PIDTYPE_TGID);
	if (!p)
		return 0;
	if (CPUCLOCK_PERTHREAD(clock))
		now = crak_task_cputime(p, CPUCLOCK_WHICH(clock));
	else
		now = crak_group_cputime(p, CPUCLOCK_WHICH(clock));
	return now < expires ? expires - now : 1;
}

/* Fills e from timr; false if the timer was deleted. Under rcu_read_lock(). */
static bool crak_read_timer(struct k_itimer *timr, struct signal_struct *sig,
			    struct crak_posix_timer *e)
{
	unsigned long flags;
	s64 overrun;

	spin_lock_irqsave(&timr->it_lock, flags);
	if (timr->it_signal != sig) {
		spin_unlock_irqrestore(&timr->it_lock, flags);
		return false;
	}
	memset(e, 0, sizeof(*e));
	e->id = timr->it_id;
	e->clock = timr->it_clock;
	e->notify = timr->it_sigev_notify;
	e->signo = timr->sigq->info.si_signo;
	e->sigval = (unsigned long)timr->sigq->info.si_value.sival_ptr;
	e->target = pid_vnr(timr->it_pid);
	overrun = timr->it_overrun_last;	/* timer_overrun_to_int() */
	e->overrun = overrun > INT_MAX ? INT_MAX : (s32)overrun;
	if (crak_hrtimer_clock(timr->it_clock)) {
		e->value_ns = crak_hrtimer_left(timr);
		e->interval_ns = ktime_to_ns(timr->it_interval);
	} else if (timr->it_clock < 0) {
		e->value_ns = crak_cpu_timer_left(timr);
		e->interval_ns = ktime_to_ns(timr->it_interval);
	} else {
		e->flags |= CRAK_POSIX_TIMER_F_NO_VALUE;
	}
	spin_unlock_irqrestore(&timr->it_lock, flags);
	return true;
}

long crak_ioc_get_posix_timers(struct crak_session *s, void __user *arg)
{
	struct crak_posix_timers q;
	struct crak_posix_timer *out = NULL;
	struct k_itimer **picked = NULL, *timr;
	struct sighand_struct *sh;
	struct signal_struct *sig;
	struct task_struct *t;
	unsigned long flags;
	u32 n = 0, total = 0, i, copied = 0;
	long ret = 0;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_POSIX_TIMERS_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.nr_timers || q.nr_copied ||
	    crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (q.count > CRAK_MAX_POSIX_TIMERS)
		return -E2BIG;
	if (q.count) {
		out = kvcalloc(q.count, sizeof(*out), GFP_KERNEL);
		picked = kvcalloc(q.count, sizeof(*picked), GFP_KERNEL);
		if (!out || !picked) {
			ret = -ENOMEM;
			goto out_free;
		}
	}
	t = crak_session_live_task(s);
	if (!t) {
		ret = -ESRCH;
		goto out_free;
	}
	rcu_read_lock();
	sh = crak_lock_sighand(t, &flags);
	if (!sh) {
		rcu_read_unlock();
		put_task_struct(t);
		ret = -ESRCH;
		goto out_free;
	}
	sig = t->signal;
	list_for_each_entry(timr, &sig->posix_timers, list) {
		if (n < q.count)
			picked[n++] = timr;
		total++;
	}
	spin_unlock_irqrestore(&sh->siglock, flags);
	for (i = 0; i < n; i++)
		if (crak_read_timer(picked[i], sig, &out[copied]))
			copied++;
	rcu_read_unlock();
	put_task_struct(t);
	q.nr_timers = total - (n - copied);
	q.nr_copied = copied;
	if (copied && copy_to_user(u64_to_user_ptr(q.timers_ptr), out,
				   copied * sizeof(*out)))
		ret = -EFAULT;
	else if (copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
out_free:
	kvfree(picked);
	kvfree(out);
	return ret;
}
