/*
 * signals: dispositions, masks, queued signals and rseq survive the freeze.
 *
 *  - handlers with SA_SIGINFO, SA_RESTART, SA_ONSTACK (on a sigaltstack),
 *    SA_NODEFER, SA_RESETHAND, SA_NOCLDSTOP and their sa_mask; SIG_IGN on a
 *    few signals: every sigaction() equal before and after;
 *  - the sigaltstack and the blocked mask equal before and after;
 *  - SIGUSR1 queued with sigqueue() and a value while blocked, and three
 *    SIGRTMIN+1 with values 101..103: still pending after restore, and on
 *    unblock delivered with the same values, in order, from our own PID;
 *  - behaviour: SIGUSR2 runs on the alternate stack without deferring
 *    itself, SIGHUP's handler resets itself, an ignored SIGPIPE is ignored;
 *  - rseq (glibc's __rseq_offset/__rseq_size): still registered with the
 *    same area and signature, and the kernel still writes a valid cpu_id.
 */
#include "wl.h"

#include <sys/rseq.h>
#include <sys/syscall.h>

#define ALTSTACK_SIZE (64 * 1024)
#define NRT 3

static char altstack[ALTSTACK_SIZE];
static volatile sig_atomic_t usr1_value, usr1_code, usr1_pid, usr1_count;
static volatile int rt_values[8];
static volatile sig_atomic_t rt_count;
static volatile sig_atomic_t usr2_on_altstack, usr2_nodefer, usr2_count;
static volatile sig_atomic_t hup_count;

static struct sigaction act_before[NSIG], act_after[NSIG];
static int act_ret_before[NSIG], act_ret_after[NSIG];

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGUSR1) {
		usr1_value = si->si_value.sival_int;
		usr1_code = si->si_code;
		usr1_pid = si->si_pid;
		usr1_count++;
	} else if (rt_count < 8) {
		rt_values[rt_count++] = si->si_value.sival_int;
	}
}

static void on_usr2(int sig)
{
	char here;
	sigset_t now;

	usr2_on_altstack = &here >= altstack && &here < altstack + ALTSTACK_SIZE;
	sigprocmask(SIG_BLOCK, NULL, &now);
	usr2_nodefer = !sigismember(&now, SIGUSR2) && sigismember(&now, SIGQUIT);
	usr2_count++;
}

static void on_plain(int sig)
{
	if (sig == SIGHUP)
		hup_count++;
}

static void set_action(int sig, void (*handler)(int),
		       void (*action)(int, siginfo_t *, void *),
		       int flags, int mask1, int mask2)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	if (action)
		sa.sa_sigaction = action;
	else
		sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (mask1)
		sigaddset(&sa.sa_mask, mask1);
	if (mask2)
		sigaddset(&sa.sa_mask, mask2);
	if (sigaction(sig, &sa, NULL))
		wl_die("sigaction");
}

static void read_actions(struct sigaction *acts, int *rets)
{
	int sig;

	for (sig = 1; sig < NSIG; sig++) {
		memset(&acts[sig], 0, sizeof(acts[sig]));
		rets[sig] = sigaction(sig, NULL, &acts[sig]);
	}
}

static void compare_actions(void)
{
	int sig, s;

	for (sig = 1; sig < NSIG; sig++) {
		struct sigaction *a = &act_before[sig], *b = &act_after[sig];

		if (act_ret_before[sig] != act_ret_after[sig]) {
			wl_fail("sigaction(%d) returned %d, was %d", sig,
				act_ret_after[sig], act_ret_before[sig]);
			continue;
		}
		if (act_ret_before[sig])
			continue;
		if (a->sa_handler != b->sa_handler)
			wl_fail("signal %d: handler %p, was %p", sig,
				(void *)b->sa_handler, (void *)a->sa_handler);
		if (a->sa_flags != b->sa_flags)
			wl_fail("signal %d: sa_flags %#x, was %#x", sig,
				b->sa_flags, a->sa_flags);
		for (s = 1; s < NSIG; s++)
			if (sigismember(&a->sa_mask, s) != sigismember(&b->sa_mask, s)) {
				wl_fail("signal %d: sa_mask differs at signal %d", sig, s);
				break;
			}
#ifdef __x86_64__
		if (a->sa_restorer != b->sa_restorer)
			wl_fail("signal %d: sa_restorer %p, was %p", sig,
				(void *)b->sa_restorer, (void *)a->sa_restorer);
#endif
	}
}

static int sets_differ(const sigset_t *a, const sigset_t *b, int *where)
{
	int s;

	for (s = 1; s < NSIG; s++)
		if (sigismember(a, s) != sigismember(b, s)) {
			*where = s;
			return 1;
		}
	return 0;
}

/* rseq */
static struct rseq *rseq_area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* The registration length glibc used: the one the kernel answers EBUSY to
 * (same area, same length, same signature), or 0. */
static unsigned int rseq_registered_len(void)
{
	unsigned int lens[2] = { __rseq_size, 32 };
	int i;

	for (i = 0; i < 2; i++) {
		if (!lens[i])
			continue;
		errno = 0;
		if (syscall(SYS_rseq, rseq_area(), lens[i], 0, RSEQ_SIG) < 0 &&
		    errno == EBUSY)
			return lens[i];
	}
	return 0;
}

/* Spoil cpu_id, then take a signal: the kernel rewrites cpu_id on the way
 * back to user mode only if rseq is registered. */
static int rseq_cpu_id_refreshed(void)
{
	volatile struct rseq *r = rseq_area();
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	int cpu;

	r->cpu_id = RSEQ_CPU_ID_UNINITIALIZED;
	raise(SIGUSR2);
	cpu = (int)r->cpu_id;
	return cpu >= 0 && cpu < ncpu;
}

int main(void)
{
	sigset_t block, mask_before, mask_after, pending;
	stack_t ss, ss_before, ss_after;
	union sigval v;
	unsigned int rseq_len = 0;
	int i, where, rtsig = SIGRTMIN + 1, usr2_before;

	wl_setup(0);

	ss.ss_sp = altstack;
	ss.ss_size = ALTSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL))
		wl_die("sigaltstack");
	set_action(SIGUSR1, NULL, on_info, SA_SIGINFO | SA_RESTART,
		   SIGUSR2, SIGHUP);
	set_action(rtsig, NULL, on_info, SA_SIGINFO, SIGINT, 0);
	set_action(SIGUSR2, on_usr2, NULL, SA_ONSTACK | SA_NODEFER, SIGQUIT, 0);
	set_action(SIGHUP, on_plain, NULL, SA_RESETHAND | SA_RESTART, 0, 0);
	set_action(SIGCHLD, on_plain, NULL, SA_NOCLDSTOP, 0, 0);
	set_action(SIGPIPE, SIG_IGN, NULL, 0, 0, 0);
	set_action(SIGALRM, SIG_IGN, NULL, 0, 0, 0);
	set_action(SIGWINCH, SIG_IGN, NULL, 0, 0, 0);

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, rtsig);
	sigaddset(&block, SIGPROF);
	sigprocmask(SIG_BLOCK, &block, NULL);
	v.sival_int = 0x1234abcd;
	if (sigqueue(getpid(), SIGUSR1, v))
		wl_die("sigqueue");
	for (i = 0; i < NRT; i++) {
		v.sival_int = 101 + i;
		if (sigqueue(getpid(), rtsig, v))
			wl_die("sigqueue rt");
	}

	if (__rseq_size > 0) {
		rseq_len = rseq_registered_len();
		wl_check(rseq_len, "rseq not registered before the dump");
		wl_check(rseq_cpu_id_refreshed(),
			 "rseq cpu_id not refreshed before the dump");
	} else {
		wl_say("rseq not used by this glibc: its checks are skipped");
	}
	usr2_before = usr2_count;

	read_actions(act_before, act_ret_before);
	sigaltstack(NULL, &ss_before);
	sigprocmask(SIG_BLOCK, NULL, &mask_before);
	wl_ready();
	wl_wait();
	read_actions(act_after, act_ret_after);
	sigaltstack(NULL, &ss_after);
	sigprocmask(SIG_BLOCK, NULL, &mask_after);
	sigpending(&pending);

	compare_actions();
	wl_check(ss_after.ss_sp == ss_before.ss_sp &&
		 ss_after.ss_size == ss_before.ss_size &&
		 ss_after.ss_flags == ss_before.ss_flags,
		 "sigaltstack is %p+%zu flags %d, was %p+%zu flags %d",
		 ss_after.ss_sp, ss_after.ss_size, ss_after.ss_flags,
		 ss_before.ss_sp, ss_before.ss_size, ss_before.ss_flags);
	if (sets_differ(&mask_before, &mask_after, &where))
		wl_fail("blocked mask differs at signal %d", where);
	wl_check(sigismember(&pending, SIGUSR1), "queued SIGUSR1 no longer pending");
	wl_check(sigismember(&pending, rtsig), "queued SIGRTMIN+1 no longer pending");
	for (i = 1; i < NSIG; i++)
		if (i != SIGUSR1 && i != rtsig && i != SIGTERM)
			wl_check(!sigismember(&pending, i),
				 "signal %d pending after restore", i);

	/* deliver what was queued */
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	wl_check(usr1_count == 1, "SIGUSR1 delivered %d times", (int)usr1_count);
	wl_check(usr1_value == 0x1234abcd, "SIGUSR1 si_value %#x, expected 0x1234abcd",
		 (unsigned)usr1_value);
	wl_check(usr1_code == SI_QUEUE, "SIGUSR1 si_code %d, expected SI_QUEUE",
		 (int)usr1_code);
	wl_check(usr1_pid == wl_pid, "SIGUSR1 si_pid %d, expected %d",
		 (int)usr1_pid, (int)wl_pid);
	wl_check(rt_count == NRT, "SIGRTMIN+1 delivered %d times, expected %d",
		 (int)rt_count, NRT);
	for (i = 0; i < rt_count && i < NRT; i++)
		wl_check(rt_values[i] == 101 + i,
			 "SIGRTMIN+1 #%d carried %d, expected %d", i,
			 rt_values[i], 101 + i);

	/* handlers behave as their flags say */
	raise(SIGUSR2);
	wl_check(usr2_count > usr2_before, "SIGUSR2 handler not run");
	wl_check(usr2_on_altstack, "SIGUSR2 handler not on the alternate stack");
	wl_check(usr2_nodefer, "SIGUSR2 handler mask wrong (SA_NODEFER/sa_mask)");
	raise(SIGHUP);
	wl_check(hup_count == 1, "SIGHUP handler ran %d times", (int)hup_count);
	{
		struct sigaction sa;

		sigaction(SIGHUP, NULL, &sa);
		wl_check(sa.sa_handler == SIG_DFL,
			 "SA_RESETHAND did not reset SIGHUP");
	}
	raise(SIGPIPE);		/* ignored: we live on */

	if (__rseq_size > 0) {
		unsigned int now = rseq_registered_len();

		wl_check(now == rseq_len,
			 "rseq registration length %u, was %u (0: not registered)",
			 now, rseq_len);
		wl_check(rseq_cpu_id_refreshed(),
			 "kernel no longer updates rseq cpu_id (%d)",
			 (int)rseq_area()->cpu_id);
	}
	return wl_finish();
}
