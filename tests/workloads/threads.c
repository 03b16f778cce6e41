/*
 * threads: many threads, each with its own name, TLS value, signal mask and
 * way of waiting (a condition variable, a futex-based semaphore, a blocking
 * read, a nanosleep loop). After restore every thread must still be there
 * with the same TID and name, wake up from its wait, find its own state,
 * and be joinable (pthread_join relies on the kernel clearing the TID
 * word glibc registered with set_tid_address).
 *
 * usage: threads [count]   (default 50)
 */
#include "wl.h"
#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <time.h>

#define MAX_THREADS 256

enum wait_kind { WAIT_COND, WAIT_SEM, WAIT_READ, WAIT_SLEEP, WAIT_KINDS };

struct worker {
	pthread_t thread;
	int index;
	pid_t tid;
	enum wait_kind kind;
	int started;
	char verdict[160];	/* "" when every check passed */
};

static struct worker workers[MAX_THREADS];
static int count = 50;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int go;
static sem_t sem;
static int wake_pipe[2];
static volatile int sleepers_done;
static __thread int my_index = -1;

static void *work(void *arg)
{
	struct worker *w = arg;
	char name[16], got[16];
	sigset_t mask, now;
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	char byte;

	my_index = w->index;
	w->tid = syscall(SYS_gettid);
	snprintf(name, sizeof(name), "wl-t%d", w->index);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	if (w->index % 2)
		sigaddset(&mask, SIGUSR1);
	if (w->index % 3 == 0)
		sigaddset(&mask, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);

	pthread_mutex_lock(&lock);
	w->started = 1;
	pthread_cond_broadcast(&cond);
	switch (w->kind) {
	case WAIT_COND:
		while (!go)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
		break;
	case WAIT_SEM:
		pthread_mutex_unlock(&lock);
		while (sem_wait(&sem) && errno == EINTR)
			;
		break;
	case WAIT_READ:
		pthread_mutex_unlock(&lock);
		while (read(wake_pipe[0], &byte, 1) < 0 && errno == EINTR)
			;
		break;
	default:
		pthread_mutex_unlock(&lock);
		while (!sleepers_done)
			nanosleep(&ts, NULL);
		break;
	}

	if (my_index != w->index)
		snprintf(w->verdict, sizeof(w->verdict), "TLS index %d, want %d", my_index, w->index);
	else if (syscall(SYS_gettid) != w->tid)
		snprintf(w->verdict, sizeof(w->verdict), "tid %ld, was %d", (long)syscall(SYS_gettid), w->tid);
	else if (pthread_getname_np(pthread_self(), got, sizeof(got)) || strcmp(got, name))
		snprintf(w->verdict, sizeof(w->verdict), "name '%s', want '%s'", got, name);
	else if (pthread_sigmask(SIG_SETMASK, NULL, &now) ||
		 sigismember(&now, SIGUSR1) != (w->index % 2) ||
		 sigismember(&now, SIGUSR2) != (w->index % 3 == 0))
		snprintf(w->verdict, sizeof(w->verdict), "signal mask changed");
	return w;
}

static int task_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	int i, all;
	void *ret;

	if (argc > 1)
		count = atoi(argv[1]);
	if (count < 1 || count > MAX_THREADS)
		wl_die("thread count");
	wl_setup(0);
	if (pipe(wake_pipe) || sem_init(&sem, 0, 0))
		wl_die("pipe/sem");
	for (i = 0; i < count; i++) {
		workers[i].index = i;
		workers[i].kind = i % WAIT_KINDS;
		if (pthread_create(&workers[i].thread, NULL, work, &workers[i]))
			wl_die("pthread_create");
	}
	pthread_mutex_lock(&lock);
	for (all = 0; !all;) {
		for (all = 1, i = 0; i < count; i++)
			all &= workers[i].started;
		if (!all)
			pthread_cond_wait(&cond, &lock);
	}
	pthread_mutex_unlock(&lock);
	/* let every thread reach its wait */
	usleep(200 * 1000);
	wl_ready();
	wl_wait();

	wl_check(task_count() == count + 1, "%d tasks, want %d", task_count(), count + 1);
	pthread_mutex_lock(&lock);
	go = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (i = 0; i < count; i++) {
		if (workers[i].kind == WAIT_SEM)
			sem_post(&sem);
		if (workers[i].kind == WAIT_READ && write(wake_pipe[1], "x", 1) != 1)
			wl_die("write");
	}
	sleepers_done = 1;
	for (i = 0; i < count; i++) {
		if (pthread_join(workers[i].thread, &ret)) {
			wl_fail("thread %d (tid %d) not joinable", i, workers[i].tid);
			continue;
		}
		wl_check(!workers[i].verdict[0], "thread %d (tid %d): %s", i, workers[i].tid,
			 workers[i].verdict);
	}
	return wl_finish();
}
