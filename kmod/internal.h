/* SPDX-License-Identifier: GPL-2.0 */
/*
 * internal.h - what the crak.ko sources share. The uAPI lives in
 * include/uapi/linux/crak.h.
 */
#ifndef _CRAK_INTERNAL_H
#define _CRAK_INTERNAL_H

#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/refcount.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/task_work.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/crak.h>

enum crak_thread_state {
	CRAK_TH_QUEUED,		/* park work queued, not run yet */
	CRAK_TH_PARKED,		/* sleeping in crak_park_work() */
	CRAK_TH_STOPPED,	/* in a job-control stop, work still queued */
	CRAK_TH_GONE,		/* exiting, or left the park (killed) */
	CRAK_TH_RELEASED,	/* thawed or freeze cancelled */
};

/*
 * One thread of the target during one freeze. Two references: the session's
 * thread list, and the queued task_work until it has run (task_work always
 * runs, at the latest when the task exits).
 */
struct crak_thread {
	struct list_head node;
	struct callback_head work;
	struct crak_session *session;
	struct task_struct *task;
	refcount_t ref;
	unsigned int gen;		/* freeze generation it belongs to */
	enum crak_thread_state state;	/* under session->state_lock */
};

struct crak_session {
	struct kref kref;
	struct mutex lock;		/* serialises ioctls; see session.c */
	spinlock_t state_lock;		/* gen, frozen, nr_waiting, states */
	struct pid *pid;		/* thread-group id of the target */
	struct task_struct *leader;
	struct list_head threads;	/* struct crak_thread, under lock */
	unsigned int gen;
	bool frozen;
	unsigned int nr_waiting;	/* queued threads not parked yet */
	wait_queue_head_t freeze_wq;	/* the freezer waits here */
	wait_queue_head_t thaw_wq;	/* parked threads wait here */
};

/* main.c */
int crak_copy_name(const char *name, size_t len, u64 uptr, u32 cap,
		   u32 *name_len);

/* session.c */
int crak_session_open(pid_t nr, unsigned int flags);
struct task_struct *crak_session_thread(struct crak_session *s, u32 tid);
struct crak_thread *crak_session_parked(struct crak_session *s, u32 tid);
struct mm_struct *crak_session_mm(struct crak_session *s);
struct task_struct *crak_session_live_task(struct crak_session *s);

/* regs.c */
long crak_ioc_get_regset(struct crak_session *s, void __user *arg);

/* mm.c */
long crak_ioc_get_vma(struct crak_session *s, void __user *arg);
long crak_ioc_dump_pages(struct crak_session *s, void __user *arg);

/* files.c */
struct crak_fd_pick {
	struct files_struct *files;
	struct file *file;
	unsigned int fd;
	bool cloexec;
};
int crak_target_fd(struct crak_session *s, unsigned int fd, struct crak_fd_pick *pick);
int crak_target_exact_fd(struct crak_session *s, u32 fd, struct crak_fd_pick *pick);
long crak_ioc_get_fd(struct crak_session *s, void __user *arg);
long crak_ioc_pipe_peek(struct crak_session *s, void __user *arg);

/* unix.c */
long crak_ioc_unix_queue(struct crak_session *s, void __user *arg);

/* signals.c */
struct sighand_struct *crak_lock_sighand(struct task_struct *t,
					 unsigned long *flags);
long crak_ioc_get_sigactions(struct crak_session *s, void __user *arg);
long crak_ioc_get_thread_signals(struct crak_session *s, void __user *arg);
long crak_ioc_get_pending(struct crak_session *s, void __user *arg);
long crak_ioc_get_itimers(struct crak_session *s, void __user *arg);

/* misc.c */
long crak_ioc_get_thread_misc(struct crak_session *s, void __user *arg);
long crak_ioc_get_process_misc(struct crak_session *s, void __user *arg);

/* timers.c */
long crak_ioc_get_posix_timers(struct crak_session *s, void __user *arg);

/* seccomp.c */
long crak_ioc_get_seccomp(struct crak_session *s, void __user *arg);

/* creds.c */
long crak_ioc_get_creds(struct crak_session *s, void __user *arg);

/* True if any of the n u64 words is non-zero. */
static inline bool crak_nonzero(const u64 *words, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (words[i])
			return true;
	return false;
}

#endif /* _CRAK_INTERNAL_H */
