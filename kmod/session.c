// SPDX-License-Identifier: GPL-2.0
/*
 * session.c - the session fd: who may open one, freeze and thaw.
 *
 * Freezing (see also the uAPI header): a task_work queued with TWA_SIGNAL on
 * each thread runs crak_park_work() in that thread's own context on its way
 * back to user mode, where it sleeps (killable) until the session releases
 * it. A thread interrupted in a syscall is parked inside get_signal() before
 * the restart fix-up, so its registers look exactly like a ptrace
 * PTRACE_INTERRUPT stop, and the kernel restarts the syscall after thaw.
 *
 * Locking: session->lock (a mutex) serialises the ioctls and the release of
 * the session; a parked thread that is killed takes it before it leaves its
 * PARKED state, so an ioctl holding the lock can read the state of every
 * PARKED thread (registers on its stack, signal state) safely.
 * session->state_lock (a spinlock) protects gen, frozen, nr_waiting and the
 * thread states, which the task_work touches.
 *
 * Lifetime: the file holds one session reference and each crak_thread one;
 * a crak_thread is referenced by the list and by its queued work, so a
 * thread stuck in an uninterruptible sleep past the session's close only
 * keeps a small allocation (and the module) alive until it runs the work.
 */
#include <linux/anon_inodes.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/jiffies.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pid_namespace.h>
#include <linux/sched/coredump.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>
#include "internal.h"

static void crak_session_free(struct kref *kref)
{
	struct crak_session *s = container_of(kref, struct crak_session, kref);

	put_task_struct(s->leader);
	put_pid(s->pid);
	kfree(s);
}

static void crak_thread_put(struct crak_thread *th)
{
	if (!refcount_dec_and_test(&th->ref))
		return;
	put_task_struct(th->task);
	kref_put(&th->session->kref, crak_session_free);
	kfree(th);
}

static bool crak_thread_released(struct crak_thread *th)
{
	return READ_ONCE(th->state) == CRAK_TH_RELEASED;
}

/*
 * Runs in the target thread's context: park it until the session lets go.
 * A thread counted as frozen while in a job-control stop (CRAK_TH_STOPPED)
 * runs this when something wakes it (SIGCONT, SIGKILL) and parks here too,
 * so it never gets back to user mode while the session holds it.
 */
static void crak_park_work(struct callback_head *cb)
{
	struct crak_thread *th = container_of(cb, struct crak_thread, work);
	struct crak_session *s = th->session;
	bool park = false, exiting_stopped = false;

	spin_lock_irq(&s->state_lock);
	if ((th->state == CRAK_TH_QUEUED || th->state == CRAK_TH_STOPPED) &&
	    th->gen == s->gen) {
		if (th->state == CRAK_TH_QUEUED)
			s->nr_waiting--;
		if (!(current->flags & PF_EXITING)) {
			th->state = CRAK_TH_PARKED;
			park = true;
		} else if (th->state == CRAK_TH_STOPPED) {
			exiting_stopped = true;	/* an ioctl may read us */
		} else {
			th->state = CRAK_TH_GONE;
		}
	}
	spin_unlock_irq(&s->state_lock);
	wake_up_all(&s->freeze_wq);

	if (exiting_stopped ||
	    (park && wait_event_killable(s->thaw_wq, crak_thread_released(th)))) {
		/* Killed while frozen: leave PARKED/STOPPED only when no ioctl reads us. */
		mutex_lock(&s->lock);
		spin_lock_irq(&s->state_lock);
		if (th->state == CRAK_TH_PARKED || th->state == CRAK_TH_STOPPED)
			th->state = CRAK_TH_GONE;
		spin_unlock_irq(&s->state_lock);
		mutex_unlock(&s->lock);
	}
	crak_thread_put(th);
	/* The work's module reference; see the lifetime note above. */
	module_put(THIS_MODULE);
}

/* Thaw, or cancel a freeze. Called with s->lock held. */
static void crak_release_threads(struct crak_session *s)
{
	struct crak_thread *th, *tmp;

	spin_lock_irq(&s->state_lock);
	s->frozen = false;
	s->gen++;
	s->nr_waiting = 0;
	list_for_each_entry(th, &s->threads, node)
		th->state = CRAK_TH_RELEASED;
	spin_unlock_irq(&s->state_lock);
	wake_up_all(&s->thaw_wq);

	list_for_each_entry_safe(th, tmp, &s->threads, node) {
		list_del(&th->node);
		crak_thread_put(th);
	}
}

static bool crak_session_has_task(struct crak_session *s,
				  struct task_struct *t)
{
	struct crak_thread *th;

	list_for_each_entry(th, &s->threads, node)
		if (th->task == t)
			return true;
	return false;
}

static int crak_queue_one(struct crak_session *s, struct task_struct *t)
{
	struct crak_thread *th;

	th = kzalloc(sizeof(*th), GFP_KERNEL);
	if (!th) {
		put_task_struct(t);
		return -ENOMEM;
	}
	th->task = t;
	th->session = s;
	kref_get(&s->kref);
	refcount_set(&th->ref, 2);
	init_task_work(&th->work, crak_park_work);
	list_add_tail(&th->node, &s->threads);

	spin_lock_irq(&s->state_lock);
	th->gen = s->gen;
	th->state = CRAK_TH_QUEUED;
	s->nr_waiting++;
	spin_unlock_irq(&s->state_lock);

	__module_get(THIS_MODULE);
	if (task_work_add(t, &th->work, TWA_SIGNAL)) {
		/* Exiting: it will not run the work, and is no thread to park. */
		module_put(THIS_MODULE);
		spin_lock_irq(&s->state_lock);
		s->nr_waiting--;
		th->state = CRAK_TH_GONE;
		spin_unlock_irq(&s->state_lock);
		crak_thread_put(th);
	}
	return 0;
}

#define CRAK_SCAN_BATCH 64

/* Queues the park work on every thread not seen yet; returns how many. */
static int crak_queue_new_threads(struct crak_session *s)
{
	struct task_struct *batch[CRAK_SCAN_BATCH], *t;
	int n, i, ret, total = 0;
	bool more;

	do {
		n = 0;
		more = false;
		rcu_read_lock();
		for_each_thread(s->leader, t) {
			if (t->flags & (PF_IO_WORKER | PF_EXITING))
				continue;
			if (crak_session_has_task(s, t))
				continue;
			if (n == CRAK_SCAN_BATCH) {
				more = true;
				break;
			}
			get_task_struct(t);
			batch[n++] = t;
		}
		rcu_read_unlock();

		for (i = 0; i < n; i++) {
			ret = crak_queue_one(s, batch[i]);
			if (ret) {
				while (++i < n)
					put_task_struct(batch[i]);
				return ret;
			}
		}
		total += n;
	} while (more);
	return total;
}

/*
 * A thread already in a job-control stop (TASK_STOPPED) cannot run until
 * SIGCONT; its park work stays queued and runs if it is woken, parking it
 * then. Count it as frozen now. s->lock held.
 */
static void crak_mark_stopped(struct crak_session *s)
{
	struct crak_thread *th;

	spin_lock_irq(&s->state_lock);
	list_for_each_entry(th, &s->threads, node) {
		if (th->state != CRAK_TH_QUEUED || th->gen != s->gen)
			continue;
		if (task_is_stopped(th->task) &&
		    (READ_ONCE(th->task->__state) & __TASK_STOPPED)) {
			th->state = CRAK_TH_STOPPED;
			s->nr_waiting--;
		}
	}
	spin_unlock_irq(&s->state_lock);
}

/* How often the freezer looks again for threads that entered a stop. */
#define CRAK_STOP_POLL_MS 20

/* Waits until a parked thread is off its CPU, so its saved state is final. */
static int crak_wait_off_cpu(struct task_struct *t, unsigned long deadline)
{
#ifdef CONFIG_SMP
	while (READ_ONCE(t->on_cpu)) {
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		cond_resched();
	}
	smp_rmb();
#endif
	return 0;
}

static long crak_ioc_freeze(struct crak_session *s, void __user *arg)
{
	struct crak_freeze f;
	struct crak_thread *th;
	unsigned long deadline;
	unsigned int timeout;
	enum crak_thread_state state;
	long ret, left;
	int added, parked, stopped;

	if (copy_from_user(&f, arg, sizeof(f)))
		return -EFAULT;
	if (f.flags & ~CRAK_FREEZE_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (f.nr_stopped || crak_nonzero(f.reserved, ARRAY_SIZE(f.reserved)))
		return -EINVAL;
	timeout = f.timeout_ms ? f.timeout_ms : CRAK_FREEZE_DEFAULT_TIMEOUT_MS;
	if (timeout > CRAK_FREEZE_MAX_TIMEOUT_MS)
		return -EINVAL;
	if (s->frozen)
		return -EALREADY;
	if (same_thread_group(current, s->leader))
		return -EDEADLK;

	deadline = jiffies + msecs_to_jiffies(timeout);
	spin_lock_irq(&s->state_lock);
	s->gen++;
	s->frozen = true;
	s->nr_waiting = 0;
	spin_unlock_irq(&s->state_lock);

	for (;;) {
		added = crak_queue_new_threads(s);
		if (added < 0) {
			ret = added;
			goto cancel;
		}
		if (list_empty(&s->threads)) {
			ret = -ESRCH;
			goto cancel;
		}
		crak_mark_stopped(s);
		if (!added && !READ_ONCE(s->nr_waiting))
			break;
		left = (long)(deadline - jiffies);
		if (left <= 0) {
			ret = -ETIMEDOUT;
			goto cancel;
		}
		/* Wake up now and then: a thread may enter a stop meanwhile. */
		ret = wait_event_interruptible_timeout(s->freeze_wq,
				!READ_ONCE(s->nr_waiting),
				min_t(long, left,
				      msecs_to_jiffies(CRAK_STOP_POLL_MS)));
		if (ret < 0) {
			ret = -EINTR;
			goto cancel;
		}
	}

	parked = 0;
	stopped = 0;
	list_for_each_entry(th, &s->threads, node) {
		state = READ_ONCE(th->state);
		if (state != CRAK_TH_PARKED && state != CRAK_TH_STOPPED)
			continue;
		ret = crak_wait_off_cpu(th->task, deadline);
		if (ret)
			goto cancel;
		parked++;
		if (state == CRAK_TH_STOPPED)
			stopped++;
	}
	if (!parked) {
		ret = -ESRCH;
		goto cancel;
	}
	f.nr_threads = parked;
	f.nr_stopped = stopped;
	if (copy_to_user(arg, &f, sizeof(f))) {
		ret = -EFAULT;
		goto cancel;
	}
	return 0;

cancel:
	crak_release_threads(s);
	return ret;
}

static long crak_ioc_thaw(struct crak_session *s, void __user *arg)
{
	struct crak_thaw t;

	if (copy_from_user(&t, arg, sizeof(t)))
		return -EFAULT;
	if (t.flags & ~CRAK_THAW_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (t.pad || crak_nonzero(t.reserved, ARRAY_SIZE(t.reserved)))
		return -EINVAL;
	if (!s->frozen)
		return -EALREADY;
	crak_release_threads(s);
	return 0;
}

static long crak_ioc_threads(struct crak_session *s, void __user *arg)
{
	struct pid_namespace *ns = task_active_pid_ns(current);
	struct crak_threads q;
	struct task_struct *t;
	u32 *tids = NULL;
	u32 n = 0;
	long ret = 0;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (q.flags & ~CRAK_THREADS_FLAGS_ALL)
		return -EOPNOTSUPP;
	if (q.pad || crak_nonzero(q.reserved, ARRAY_SIZE(q.reserved)))
		return -EINVAL;
	if (q.count > CRAK_MAX_THREADS)
		return -E2BIG;
	if (q.count) {
		tids = kvmalloc_array(q.count, sizeof(*tids), GFP_KERNEL);
		if (!tids)
			return -ENOMEM;
	}
	rcu_read_lock();
	for_each_thread(s->leader, t) {
		if (t->flags & (PF_IO_WORKER | PF_EXITING))
			continue;
		if (n < q.count)
			tids[n] = __task_pid_nr_ns(t, PIDTYPE_PID, ns);
		n++;
	}
	rcu_read_unlock();
	q.nr_threads = n;
	if (n && q.count &&
	    copy_to_user(u64_to_user_ptr(q.tids_ptr), tids,
			 min(n, q.count) * sizeof(*tids)))
		ret = -EFAULT;
	else if (copy_to_user(arg, &q, sizeof(q)))
		ret = -EFAULT;
	kvfree(tids);
	return ret;
}

/* A thread of the target by tid in the caller's pid namespace; a ref. */
struct task_struct *crak_session_thread(struct crak_session *s, u32 tid)
{
	struct task_struct *t = NULL;
	struct pid *pid;

	if (!tid || tid > PID_MAX_LIMIT)
		return NULL;
	rcu_read_lock();
	pid = find_pid_ns(tid, task_active_pid_ns(current));
	if (pid)
		t = pid_task(pid, PIDTYPE_PID);
	if (t && (!same_thread_group(t, s->leader) ||
		  (t->flags & PF_IO_WORKER)))
		t = NULL;
	if (t)
		get_task_struct(t);
	rcu_read_unlock();
	return t;
}

/* The parked (or frozen-in-a-stop) thread `tid`, or NULL. s->lock held; valid while it is. */
struct crak_thread *crak_session_parked(struct crak_session *s, u32 tid)
{
	struct crak_thread *th, *found = NULL;
	struct task_struct *t;

	t = crak_session_thread(s, tid);
	if (!t)
		return NULL;
	spin_lock_irq(&s->state_lock);
	list_for_each_entry(th, &s->threads, node) {
		if (th->task == t && (th->state == CRAK_TH_PARKED ||
				      th->state == CRAK_TH_STOPPED)) {
			found = th;
			break;
		}
	}
	spin_unlock_irq(&s->state_lock);
	put_task_struct(t);
	return found;
}

/* A live thread of the target (the leader may be a zombie); a ref. */
struct task_struct *crak_session_live_task(struct crak_session *s)
{
	struct task_struct *t, *found = NULL;

	rcu_read_lock();
	for_each_thread(s->leader, t) {
		if (!(t->flags & (PF_EXITING | PF_IO_WORKER))) {
			found = t;
			get_task_struct(found);
			break;
		}
	}
	rcu_read_unlock();
	return found;
}

struct mm_struct *crak_session_mm(struct crak_session *s)
{
	struct task_struct *t = crak_session_live_task(s);
	struct mm_struct *mm;

	if (!t)
		return NULL;
	mm = get_task_mm(t);
	put_task_struct(t);
	return mm;
}

static long crak_session_ioctl(struct file *file, unsigned int cmd,
			       unsigned long arg)
{
	struct crak_session *s = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	if (mutex_lock_interruptible(&s->lock))
		return -EINTR;
	switch (cmd) {
	case CRAK_IOC_FREEZE:
		ret = crak_ioc_freeze(s, uarg);
		break;
	case CRAK_IOC_THAW:
		ret = crak_ioc_thaw(s, uarg);
		break;
	case CRAK_IOC_THREADS:
		ret = crak_ioc_threads(s, uarg);
		break;
	case CRAK_IOC_GET_REGSET:
		ret = s->frozen ? crak_ioc_get_regset(s, uarg) : -EBUSY;
		break;
	case CRAK_IOC_GET_VMA:
		ret = crak_ioc_get_vma(s, uarg);
		break;
	case CRAK_IOC_DUMP_PAGES:
		ret = s->frozen ? crak_ioc_dump_pages(s, uarg) : -EBUSY;
		break;
	case CRAK_IOC_GET_FD:
		ret = crak_ioc_get_fd(s, uarg);
		break;
	case CRAK_IOC_GET_SIGACTIONS:
		ret = crak_ioc_get_sigactions(s, uarg);
		break;
	case CRAK_IOC_GET_THREAD_SIGNALS:
		ret = crak_ioc_get_thread_signals(s, uarg);
		break;
	case CRAK_IOC_GET_PENDING:
		ret = crak_ioc_get_pending(s, uarg);
		break;
	case CRAK_IOC_GET_CREDS:
		ret = crak_ioc_get_creds(s, uarg);
		break;
	case CRAK_IOC_PIPE_PEEK:
		ret = crak_ioc_pipe_peek(s, uarg);
		break;
	case CRAK_IOC_GET_THREAD_MISC:
		ret = s->frozen ? crak_ioc_get_thread_misc(s, uarg) : -EBUSY;
		break;
	case CRAK_IOC_GET_PROCESS_MISC:
		ret = crak_ioc_get_process_misc(s, uarg);
		break;
	case CRAK_IOC_GET_ITIMERS:
		ret = crak_ioc_get_itimers(s, uarg);
		break;
	case CRAK_IOC_GET_POSIX_TIMERS:
		ret = crak_ioc_get_posix_timers(s, uarg);
		break;
	case CRAK_IOC_GET_SECCOMP:
		ret = crak_ioc_get_seccomp(s, uarg);
		break;
	case CRAK_IOC_UNIX_QUEUE:
		ret = crak_ioc_unix_queue(s, uarg);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&s->lock);
	return ret;
}

static int crak_session_release(struct inode *inode, struct file *file)
{
	struct crak_session *s = file->private_data;

	mutex_lock(&s->lock);
	crak_release_threads(s);
	mutex_unlock(&s->lock);
	kref_put(&s->kref, crak_session_free);
	return 0;
}

static const struct file_operations crak_session_fops = {
	.owner = THIS_MODULE,
	.release = crak_session_release,
	.unlocked_ioctl = crak_session_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/*
 * The check ptrace_may_access() makes for PTRACE_MODE_ATTACH_REALCREDS,
 * minus the LSM hook, which modules cannot call.
 */
static int crak_may_access(struct task_struct *task)
{
	const struct cred *cred = current_cred(), *tcred;
	struct mm_struct *mm;
	bool ok;

	rcu_read_lock();
	tcred = __task_cred(task);
	ok = uid_eq(cred->uid, tcred->euid) && uid_eq(cred->uid, tcred->suid) &&
	     uid_eq(cred->uid, tcred->uid) && gid_eq(cred->gid, tcred->egid) &&
	     gid_eq(cred->gid, tcred->sgid) && gid_eq(cred->gid, tcred->gid);
	if (!ok)
		ok = ns_capable(tcred->user_ns, CAP_SYS_PTRACE);
	rcu_read_unlock();
	if (!ok)
		return -EPERM;

	mm = get_task_mm(task);
	if (!mm)
		return -ESRCH;
	if (get_dumpable(mm) != SUID_DUMP_USER &&
	    !ns_capable(mm->user_ns, CAP_SYS_PTRACE))
		ok = false;
	mmput(mm);
	return ok ? 0 : -EPERM;
}

int crak_session_open(pid_t nr, unsigned int flags)
{
	struct crak_session *s;
	struct task_struct *task;
	struct pid *pid;
	int ret;

	pid = find_get_pid(nr);
	if (!pid)
		return -ESRCH;
	task = get_pid_task(pid, PIDTYPE_TGID);
	if (!task) {
		ret = -ESRCH;
		goto err_pid;
	}
	if (task->flags & PF_KTHREAD) {
		ret = -EINVAL;
		goto err_task;
	}
	if (same_thread_group(task, current)) {
		ret = -EDEADLK;
		goto err_task;
	}
	if ((task->flags & PF_EXITING) || task->exit_state) {
		ret = -ESRCH;
		goto err_task;
	}
	ret = crak_may_access(task);
	if (ret)
		goto err_task;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s) {
		ret = -ENOMEM;
		goto err_task;
	}
	kref_init(&s->kref);
	mutex_init(&s->lock);
	spin_lock_init(&s->state_lock);
	INIT_LIST_HEAD(&s->threads);
	init_waitqueue_head(&s->freeze_wq);
	init_waitqueue_head(&s->thaw_wq);
	s->pid = pid;
	s->leader = task;

	ret = anon_inode_getfd("[crak-session]", &crak_session_fops, s,
			       O_RDWR |
			       ((flags & CRAK_OPEN_F_CLOEXEC) ? O_CLOEXEC : 0));
	if (ret < 0)
		goto err_session;
	return ret;

err_session:
	kfree(s);
err_task:
	put_task_struct(task);
err_pid:
	put_pid(pid);
	return ret;
}
