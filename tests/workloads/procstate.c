/*
 * procstate: the rest of a process's kernel state. Capabilities (a smaller
 * bounding set, inheritable + ambient ones), securebits, no_new_privs,
 * personality, all three interval timers (long
 * enough not to fire), scheduling policy and nice value, CPU affinity,
 * timer slack, I/O priority and utilization clamps (where the kernel has
 * them: a kernel without reports 0-0, checked the same), and a second
 * thread with a timer slack and I/O priority of its own. After restore each must read back as it was set, and the
 * timers must still be counting down, not reset and not stopped. (Setting a
 * CPU-time itimer rounds it up by one tick, hence the half-second slack.)
 */
#include "wl.h"
#include <linux/capability.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <pthread.h>

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_VALUE(class, level) ((class) << 13 | (level))

struct sched_attr_v1 {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};

static void get_clamps(uint32_t *min, uint32_t *max)
{
	struct sched_attr_v1 a;

	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0))
		wl_die("sched_getattr");
	*min = a.util_min;
	*max = a.util_max;
}

/* The second thread: its own slack and I/O priority, checked by itself after restore. */
static volatile int thread_state;	/* 1 set up, 2 check now, 3 passed, 4 failed */
static long thread_slack;
static int thread_ioprio;

static void *other_thread(void *arg)
{
	(void)arg;
	if (prctl(PR_SET_TIMERSLACK, 777777, 0, 0, 0) ||
	    syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_VALUE(3, 0)))	/* idle class */
		wl_die("thread attrs");
	thread_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	thread_ioprio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	thread_state = 1;
	while (thread_state != 2)
		usleep(1000);
	thread_state = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) == thread_slack &&
		       syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) == thread_ioprio ? 3 : 4;
	return NULL;
}

struct caps {
	uint64_t eff, prm, inh;
};

static struct caps get_caps(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	struct caps c = { 0, 0, 0 };

	if (syscall(SYS_capget, &hdr, data))
		wl_die("capget");
	c.eff = data[0].effective | (uint64_t)data[1].effective << 32;
	c.prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	c.inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
	return c;
}

static void set_inheritable(uint64_t inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		wl_die("capget");
	data[0].inheritable = inh;
	data[1].inheritable = inh >> 32;
	if (syscall(SYS_capset, &hdr, data))
		wl_die("capset");
}

static double timer_left(int which)
{
	struct itimerval v;

	getitimer(which, &v);
	return v.it_value.tv_sec + v.it_value.tv_usec / 1e6;
}

int main(void)
{
	struct caps before, after;
	struct itimerval real = { { 300, 0 }, { 500, 0 } }, virt = { { 0, 0 }, { 400, 0 } };
	struct itimerval prof = { { 7, 0 }, { 450, 0 } }, got;
	struct sched_param param = { 0 };
	cpu_set_t cpus, now;
	long bnd_net_raw, bnd_sys_boot, secbits, slack, persona;
	int nice_before, ioprio;
	uint32_t umin, umax, umin_now, umax_now;
	struct sched_attr_v1 clamp;
	pthread_t thread;
	double real_left;

	wl_setup(0);
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0) || prctl(PR_CAPBSET_DROP, CAP_NET_RAW, 0, 0, 0))
		wl_die("bounding set");
	set_inheritable(1ULL << CAP_NET_BIND_SERVICE | 1ULL << CAP_KILL);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0))
		wl_die("ambient");
	if (prctl(PR_SET_SECUREBITS, 1 << 2 /* SECBIT_NO_SETUID_FIXUP */, 0, 0, 0))
		wl_die("securebits");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		wl_die("no_new_privs");
	if (personality(PER_LINUX | UNAME26) < 0)
		wl_die("personality");
	if (prctl(PR_SET_TIMERSLACK, 123456, 0, 0, 0))
		wl_die("timerslack");
	if (sched_setscheduler(0, SCHED_BATCH, &param) || setpriority(PRIO_PROCESS, 0, 7))
		wl_die("sched");
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_VALUE(2, 6)))	/* best effort, 6 */
		wl_die("ioprio_set");
	memset(&clamp, 0, sizeof(clamp));
	clamp.size = sizeof(clamp);
	clamp.flags = 0x08 | 0x10 | 0x20 | 0x40;	/* KEEP_POLICY|KEEP_PARAMS|UTIL_CLAMP_MIN|MAX */
	clamp.util_min = 100;
	clamp.util_max = 800;
	if (syscall(SYS_sched_setattr, 0, &clamp, 0) && errno != EOPNOTSUPP)
		wl_die("sched_setattr clamps");
	if (pthread_create(&thread, NULL, other_thread, NULL))
		wl_die("pthread_create");
	while (thread_state != 1)
		usleep(1000);
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		wl_die("affinity");
	signal(SIGALRM, SIG_IGN);
	signal(SIGVTALRM, SIG_IGN);
	signal(SIGPROF, SIG_IGN);
	if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_VIRTUAL, &virt, NULL) ||
	    setitimer(ITIMER_PROF, &prof, NULL))
		wl_die("setitimer");
	before = get_caps();
	bnd_net_raw = prctl(PR_CAPBSET_READ, CAP_NET_RAW, 0, 0, 0);
	bnd_sys_boot = prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0);
	secbits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	persona = personality(0xffffffff);
	nice_before = getpriority(PRIO_PROCESS, 0);
	ioprio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	get_clamps(&umin, &umax);
	wl_ready();
	wl_wait();

	after = get_caps();
	wl_check(after.eff == before.eff && after.prm == before.prm && after.inh == before.inh,
		 "caps eff/prm/inh %#llx/%#llx/%#llx, were %#llx/%#llx/%#llx",
		 (unsigned long long)after.eff, (unsigned long long)after.prm, (unsigned long long)after.inh,
		 (unsigned long long)before.eff, (unsigned long long)before.prm,
		 (unsigned long long)before.inh);
	wl_check(prctl(PR_CAPBSET_READ, CAP_NET_RAW, 0, 0, 0) == bnd_net_raw && bnd_net_raw == 0 &&
		 prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0) == bnd_sys_boot,
		 "bounding set changed");
	wl_check(prctl(PR_CAPBSET_READ, CAP_KILL, 0, 0, 0) == 1, "CAP_KILL left the bounding set");
	wl_check(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) == 1 &&
		 prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_KILL, 0, 0) == 0, "ambient set changed");
	wl_check(prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) == secbits, "securebits %#x, were %#lx",
		 prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), secbits);
	wl_check(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs lost");
	wl_check(personality(0xffffffff) == persona, "personality %#x, was %#lx", personality(0xffffffff),
		 persona);
	wl_check(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) == slack, "timer slack %d, was %ld",
		 prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), slack);
	wl_check(sched_getscheduler(0) == SCHED_BATCH, "policy %d", sched_getscheduler(0));
	wl_check(getpriority(PRIO_PROCESS, 0) == nice_before, "nice %d, was %d",
		 getpriority(PRIO_PROCESS, 0), nice_before);
	wl_check(!sched_getaffinity(0, sizeof(now), &now) && CPU_EQUAL(&now, &cpus), "CPU affinity changed");
	wl_check(syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) == ioprio, "I/O priority %#lx, was %#x",
		 syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0), ioprio);
	get_clamps(&umin_now, &umax_now);
	wl_check(umin_now == umin && umax_now == umax, "utilization clamps %u-%u, were %u-%u",
		 umin_now, umax_now, umin, umax);
	thread_state = 2;
	pthread_join(thread, NULL);
	wl_check(thread_state == 3, "the second thread's timer slack or I/O priority changed");
	real_left = timer_left(ITIMER_REAL);
	wl_check(real_left > 0 && real_left < 500, "ITIMER_REAL has %.1f s left", real_left);
	getitimer(ITIMER_REAL, &got);
	wl_check(got.it_interval.tv_sec == 300, "ITIMER_REAL interval %ld", (long)got.it_interval.tv_sec);
	wl_check(timer_left(ITIMER_VIRTUAL) > 390 && timer_left(ITIMER_VIRTUAL) < 400.5,
		 "ITIMER_VIRTUAL has %.1f s left", timer_left(ITIMER_VIRTUAL));
	wl_check(timer_left(ITIMER_PROF) > 440 && timer_left(ITIMER_PROF) < 450.5,
		 "ITIMER_PROF has %.1f s left", timer_left(ITIMER_PROF));
	getitimer(ITIMER_PROF, &got);
	wl_check(got.it_interval.tv_sec == 7, "ITIMER_PROF interval %ld", (long)got.it_interval.tv_sec);
	return wl_finish();
}
