/*
 * measure OUT CMD [ARG...]: run CMD, then write "<exit code> <wall ns>
 * <peak RSS KiB>" to the file OUT; exits 0 unless CMD could not be run.
 *
 * Not a workload: the runner's stopwatch. A child's ru_maxrss counts the
 * memory of the process it was forked from before exec, so a command forked
 * straight from the Python runner would report the runner's size; forked
 * from this small program it reports its own.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	long long start, end;
	int status, code;
	FILE *out;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: measure OUT CMD [ARG...]\n");
		return 2;
	}
	start = now_ns();
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) != pid) {
		perror("wait4");
		return 2;
	}
	end = now_ns();
	code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
	out = fopen(argv[1], "w");
	if (!out || fprintf(out, "%d %lld %ld\n", code, end - start, ru.ru_maxrss) < 0 || fclose(out)) {
		perror(argv[1]);
		return 2;
	}
	return 0;
}
