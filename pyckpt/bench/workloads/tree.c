/*
 * tree COUNT MIB: COUNT processes in a binary tree (process k forks 2k+1
 * and 2k+2), each owning MIB MiB. On SIGTERM the root passes SIGTERM down;
 * every process checks its own memory, waits for its children and exits 0
 * only if they and it are right. Only the root stamps the clock.
 */
#include "bench.h"
#include <sys/wait.h>

static size_t count, pages;
static pid_t kids[2];
static int nkids;
static size_t self;	/* our index in the tree */

/* Fill our memory, start our subtree, report ready on `ready`; returns the memory. */
static char *grow(size_t k, int ready[2])
{
	char *mem = bw_map(pages * BW_PAGE);
	size_t c;

	bw_fill(mem, pages, k * pages);
	for (c = 2 * k + 1; c <= 2 * k + 2 && c < count; c++) {
		pid_t pid = fork();

		if (pid < 0)
			bw_die("fork");
		if (pid == 0) {
			nkids = 0;
			self = c;
			munmap(mem, pages * BW_PAGE);
			return grow(c, ready);
		}
		kids[nkids++] = pid;
	}
	if (k != 0) {
		if (write(ready[1], "", 1) != 1)
			bw_die("write");
		close(ready[1]);
		close(ready[0]);
	}
	return mem;
}

static int finish(size_t k, char *mem, uint64_t *sum)
{
	int i, status, ok = 1;

	for (i = 0; i < nkids; i++)
		kill(kids[i], SIGTERM);
	if (bw_check(mem, pages, k * pages, sum))
		ok = 0;
	for (i = 0; i < nkids; i++)
		if (waitpid(kids[i], &status, 0) != kids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
			ok = 0;
	return ok;
}

int main(int argc, char **argv)
{
	uint64_t expected = 0xcbf29ce484222325ULL, sum = 0xcbf29ce484222325ULL;
	int ready[2];
	size_t got = 0;
	pid_t root = getpid();
	char *mem, byte;

	count = bw_arg(argc, argv, 1, 8);
	pages = bw_arg(argc, argv, 2, 1) * BW_MIB / BW_PAGE;
	bw_setup();
	if (pipe(ready))
		bw_die("pipe");
	mem = grow(0, ready);
	if (getpid() != root) {
		sigset_t none;

		/* A child: wait for SIGTERM, then check its part. */
		sigemptyset(&none);
		while (!bw_want_verify)
			sigsuspend(&none);
		return finish(self, mem, &sum) ? 0 : 1;
	}
	close(ready[1]);
	while (read(ready[0], &byte, 1) == 1)
		got++;
	close(ready[0]);
	if (got != count - 1) {
		bw_say("FAIL %zu of %zu processes started", got + 1, count);
		return 1;
	}
	bw_check(mem, pages, 0, &expected);
	bw_say("READY %016llx", (unsigned long long)expected);
	bw_loop(NULL);
	if (!finish(0, mem, &sum)) {
		bw_say("FAIL a process of the tree found its memory wrong or died");
		return 1;
	}
	return bw_report(0, sum, expected, count * pages * BW_PAGE);
}
