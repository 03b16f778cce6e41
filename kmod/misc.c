// SPDX-License-Identifier: GPL-2.0
/*
 * misc.c - per-thread and per-process state that user space can only ask
 * the target itself for (sigaltstack, PR_GET_TID_ADDRESS, get_robust_list,
 * rseq, brk(0), PR_GET_PDEATHSIG, PR_GET_DUMPABLE), read here from the
 * task and the mm, each value as that syscall would report it.
 *
 * A parked thread writes none of these fields (only the thread itself
 * changes them, by those very syscalls), so they are stable while it is.
 */
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <linux/mm.h>
#include <linux/ptrace.h>
#include <linux/sched/jobctl.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/sched/task_stack.h>
#include <linux/signal.h>
#include <linux/uaccess.h>
#include "internal.h"

/* sas_ss_flags() | SS_FLAG_BITS of do_sigaltstack(), for thread t at sp. */
static u32 crak_altstack_flags(struct task_struct *t, unsigned long sp)
{
	u32 flags = t->sas_ss_flags & SS_FLAG_BITS;
	bool on;

	if (!t->sas_ss_size)
		return SS_DISABLE | flags;
	if (t->sas_ss_flags & SS_AUTODISARM)
		return flags;
#ifdef CONFIG_STACK_GROWSUP
	on = sp >= t->sas_ss_sp && sp - t->sas_ss_sp < t->sas_ss_size;
#else
	on = sp > t->sas_ss_sp && sp - t->sas_ss_sp <= t->sas_ss_size;
#endif
	return (on ? SS_ONSTACK : 0) | flags;
}

long crak_ioc_get_thread_misc(struct crak_session *s, void __user *arg)
{
	struct crak_thread_misc q;
	struct crak_thread *th;
	struct task_struct *t;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_THREAD_MISC_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.pad || q.sas_ss_sp || q.sas_ss_size || q.sas_ss_flags ||
	    q.rseq_len || q.clear_child_tid || q.robust_list ||
	    q.robust_list_len || q.rseq || q.rseq_sig ||
	    crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	th = crak_session_parked(s, q.tid);
	if (!th)
		return -ESRCH;
	t = th->task;

	q.sas_ss_sp = t->sas_ss_sp;
	q.sas_ss_size = t->sas_ss_size;
	q.sas_ss_flags = crak_altstack_flags(t,
					     user_stack_pointer(task_pt_regs(t)));
	q.clear_child_tid = (unsigned long)t->clear_child_tid;
#ifdef CONFIG_FUTEX
	q.robust_list = (unsigned long)t->robust_list;
	q.robust_list_len = sizeof(*t->robust_list);
#endif
#ifdef CONFIG_RSEQ
	q.rseq = (unsigned long)t->rseq;
	q.rseq_len = t->rseq ? crak_compat_rseq_len(t) : 0;
	q.rseq_sig = t->rseq_sig;
#endif
	if (copy_to_user(arg, &q, sizeof(q)))
		return -EFAULT;
	return 0;
}

/* The MEMBARRIER_CMD_REGISTER_* commands whose registration mm carries. */
static u32 crak_membarrier(struct mm_struct *mm)
{
	u32 out = 0;
#ifdef CONFIG_MEMBARRIER
	int state = atomic_read(&mm->membarrier_state);

	if (state & MEMBARRIER_STATE_GLOBAL_EXPEDITED)
		out |= MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
	if (state & MEMBARRIER_STATE_PRIVATE_EXPEDITED)
		out |= MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
	if (state & MEMBARRIER_STATE_PRIVATE_EXPEDITED_SYNC_CORE)
		out |= MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE;
	if (state & MEMBARRIER_STATE_PRIVATE_EXPEDITED_RSEQ)
		out |= MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ;
#endif
	return out;
}

/*
 * The group stop in effect, under the siglock: its signal is the one the
 * leader's jobctl keeps (what a ptrace group-stop report carries), and
 * group_exit_code holds it until the parent's wait() takes the report.
 */
static void crak_group_stop(struct task_struct *leader, struct crak_process_misc *q)
{
	struct sighand_struct *sh;
	unsigned long flags;

	sh = crak_lock_sighand(leader, &flags);
	if (!sh)
		return;
	q->child_subreaper = leader->signal->is_child_subreaper;
	if (leader->signal->flags & SIGNAL_STOP_STOPPED) {
		q->stop_signal = leader->jobctl & JOBCTL_STOP_SIGMASK;
		if (leader->signal->group_exit_code)
			q->stop_flags |= CRAK_STOP_REPORTABLE;
	}
	spin_unlock_irqrestore(&sh->siglock, flags);
}

long crak_ioc_get_process_misc(struct crak_session *s, void __user *arg)
{
	struct crak_process_misc q;
	struct mm_struct *mm;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_PROCESS_MISC_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.pad || q.brk || q.start_brk || q.pdeath_signal || q.dumpable ||
	    q.stop_signal || q.stop_flags || q.membarrier || q.child_subreaper ||
	    q.mlock_future || q.pad2 || crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	mm = crak_session_mm(s);
	if (!mm)
		return -ESRCH;
	if (mmap_read_lock_killable(mm)) {
		mmput(mm);
		return -EINTR;
	}
	q.brk = mm->brk;
	q.start_brk = mm->start_brk;
	/* mlockall(MCL_FUTURE[|MCL_ONFAULT]) sets these under the mmap lock */
	if (mm->def_flags & VM_LOCKED)
		q.mlock_future = CRAK_MLOCK_F_FUTURE |
				 (mm->def_flags & VM_LOCKONFAULT ? CRAK_MLOCK_F_ONFAULT : 0);
	mmap_read_unlock(mm);
	q.dumpable = get_dumpable(mm);
	q.membarrier = crak_membarrier(mm);
	mmput(mm);
	crak_group_stop(s->leader, &q);
	q.pdeath_signal = READ_ONCE(s->leader->pdeath_signal);
	if (copy_to_user(arg, &q, sizeof(q)))
		return -EFAULT;
	return 0;
}
