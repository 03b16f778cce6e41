/*
 * posixtimers: POSIX timers (timer_create) of every kind survive a
 * checkpoint with their ids, clocks, notifications, time left and interval:
 *   periodic   CLOCK_MONOTONIC every 20 ms, SIGUSR1 to the process, with a sigval
 *   far        CLOCK_REALTIME, SIGEV_NONE, one-shot in an hour
 *   to_thread  CLOCK_MONOTONIC every 30 ms, SIGRTMIN+1 to one thread (SIGEV_THREAD_ID)
 *   cpu        CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, in 1000 s of CPU, interval 5 s
 *   idle       CLOCK_BOOTTIME, created and never armed
 * Two timers are deleted before these are made, so the ids have gaps.
 * After restore: the same ids answer timer_gettime, times are in range, the
 * signals keep arriving (in the right thread, with the right si_value and
 * si_timerid), and /proc/self/timers lists the same ids.
 */
#include "wl.h"
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>

#define PERIODIC_VALUE ((void *)0x5eed1234)

static timer_t periodic, far, to_thread, cpu, idle, gone[3];
static volatile sig_atomic_t periodic_hits, thread_hits, bad_value, bad_thread, bad_id;
static volatile pid_t target_tid;

static void on_periodic(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	if (si->si_value.sival_ptr != PERIODIC_VALUE)
		bad_value = 1;
	if (si->si_timerid != (int)(long)periodic)
		bad_id = 1;
	periodic_hits++;
}

static void on_thread(int sig, siginfo_t *si, void *uc)
{
	(void)sig; (void)uc;
	if (syscall(SYS_gettid) != target_tid)
		bad_thread = 1;
	if (si->si_timerid != (int)(long)to_thread)
		bad_id = 1;
	thread_hits++;
}

static void *target_main(void *arg)
{
	sigset_t set;

	(void)arg;
	target_tid = syscall(SYS_gettid);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);		/* the process-wide timer goes to main */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (;;)
		pause();
	return NULL;
}

static void make(clockid_t clock, int notify, int signo, void *value, pid_t tid, timer_t *t)
{
	struct sigevent ev;

	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = notify;
	ev.sigev_signo = signo;
	ev.sigev_value.sival_ptr = value;
	if (notify == SIGEV_THREAD_ID)
		ev._sigev_un._tid = tid;
	if (timer_create(clock, &ev, t))
		wl_die("timer_create");
}

static void arm(timer_t t, time_t sec, long nsec, time_t isec, long insec)
{
	struct itimerspec in = { { isec, insec }, { sec, nsec } };

	if (timer_settime(t, 0, &in, NULL))
		wl_die("timer_settime");
}

static void pause_ms(long ms)
{
	struct timespec left = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&left, &left) && errno == EINTR)
		;
}

/* The ids in /proc/self/timers, as a sorted-insensitive bit set of small ids. */
static unsigned long proc_timer_ids(void)
{
	char buf[8192], *p = buf;
	unsigned long ids = 0;

	if (wl_read_file("/proc/self/timers", buf, sizeof(buf)) < 0)
		return ~0UL;
	while ((p = strstr(p, "ID: "))) {
		int id = atoi(p + 4);

		ids |= id < 64 ? 1UL << id : 1UL << 63;
		p += 4;
	}
	return ids;
}

static void check_time(timer_t t, const char *name, double lo, double hi, double interval)
{
	struct itimerspec cur;
	double left, iv;

	if (timer_gettime(t, &cur)) {
		wl_fail("%s: timer_gettime(%ld): %s", name, (long)t, strerror(errno));
		return;
	}
	left = cur.it_value.tv_sec + cur.it_value.tv_nsec / 1e9;
	iv = cur.it_interval.tv_sec + cur.it_interval.tv_nsec / 1e9;
	wl_check(left >= lo && left <= hi, "%s: %.6f s left, expected %.3f..%.3f", name, left, lo, hi);
	wl_check(iv > interval - 1e-9 && iv < interval + 1e-9, "%s: interval %.9f, expected %.9f",
		 name, iv, interval);
}

int main(void)
{
	struct sigaction sa;
	pthread_t th;
	unsigned long ids_before, ids_after;
	int p0, t0, i;

	wl_setup(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sa.sa_sigaction = on_periodic;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_sigaction = on_thread;
	sigaction(SIGRTMIN + 1, &sa, NULL);
	if (pthread_create(&th, NULL, target_main, NULL))
		wl_die("pthread_create");
	while (!target_tid)
		pause_ms(1);

	for (i = 0; i < 3; i++)
		make(CLOCK_MONOTONIC, SIGEV_NONE, 0, NULL, 0, &gone[i]);
	timer_delete(gone[0]);
	timer_delete(gone[2]);
	make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGUSR1, PERIODIC_VALUE, 0, &periodic);
	make(CLOCK_REALTIME, SIGEV_NONE, 0, NULL, 0, &far);
	make(CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 1, NULL, target_tid, &to_thread);
	make(CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, NULL, 0, &cpu);
	make(CLOCK_BOOTTIME, SIGEV_NONE, 0, NULL, 0, &idle);
	timer_delete(gone[1]);
	arm(periodic, 0, 20000000, 0, 20000000);
	arm(far, 3600, 0, 0, 0);
	arm(to_thread, 0, 30000000, 0, 30000000);
	arm(cpu, 1000, 0, 5, 0);
	ids_before = proc_timer_ids();
	wl_say("timers %ld %ld %ld %ld %ld", (long)periodic, (long)far, (long)to_thread, (long)cpu, (long)idle);

	wl_ready();
	wl_wait();

	check_time(far, "far", 1.0, 3600.0, 0);
	check_time(to_thread, "to_thread", 0.0, 0.030, 0.030);
	check_time(periodic, "periodic", 0.0, 0.020, 0.020);
	check_time(cpu, "cpu", 990.0, 1000.0, 5.0);
	check_time(idle, "idle", 0.0, 0.0, 0);
	ids_after = proc_timer_ids();
	wl_check(ids_after == ids_before, "/proc/self/timers ids %#lx, were %#lx", ids_after, ids_before);
	p0 = periodic_hits;
	t0 = thread_hits;
	pause_ms(400);
	wl_check(periodic_hits - p0 >= 5, "periodic: %d signals in 400 ms", periodic_hits - p0);
	wl_check(thread_hits - t0 >= 3, "to_thread: %d signals in 400 ms", thread_hits - t0);
	wl_check(!bad_value, "periodic: a signal came with the wrong si_value");
	wl_check(!bad_thread, "to_thread: a signal went to another thread");
	wl_check(!bad_id, "a signal came with the wrong si_timerid");
	return wl_finish();
}
