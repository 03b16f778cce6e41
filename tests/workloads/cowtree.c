/*
 * cowtree: private memory shared copy-on-write after fork. The root fills
 * a 16 MiB private anonymous region and forks
 *   A  which rewrites the region's first MiB, then forks
 *   G  which rewrites nothing;
 *   B  which rewrites nothing.
 * So G shares A's first MiB and, through A, the root's other 15 MiB; B
 * shares all 16 with the root. Each process records its region's checksum
 * before READY. After restore each checks its own region against it, and
 * that the copies are private again: the root rewrites its whole region
 * before telling A and B to check, A before telling G. Only the root
 * prints PASS/FAIL; the others report through their exit status.
 */
#include "wl.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define REGION (16UL << 20)
#define REWRITTEN (1UL << 20)

static unsigned char *region;
static uint64_t want;
static int ready[2];			/* each child writes a byte once set up */

static void say_ready(void)
{
	if (write(ready[1], "r", 1) != 1)
		_exit(30);
	close(ready[0]);
	close(ready[1]);
}

static int wait_ok(pid_t pid)
{
	int status;

	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status);
}

static int leaf(void)
{
	wl_wait();
	return wl_cksum(region, REGION) == want ? 0 : 10;
}

static int child_a(void)
{
	pid_t g;

	wl_fill(region, REWRITTEN, 2);
	g = fork();
	if (g < 0)
		return 20;
	if (!g) {
		want = wl_cksum(region, REGION);
		say_ready();
		_exit(leaf());
	}
	want = wl_cksum(region, REGION);
	say_ready();
	wl_wait();
	if (wl_cksum(region, REGION) != want)
		return 21;
	wl_fill(region, REGION, 4);		/* private: G must not see this */
	if (kill(g, SIGTERM) || !wait_ok(g))
		return 22;
	return 0;
}

int main(void)
{
	pid_t a, b;

	wl_setup(0);
	region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		wl_die("mmap");
	if (pipe(ready))
		wl_die("pipe");
	wl_fill(region, REGION, 1);
	want = wl_cksum(region, REGION);

	a = fork();
	if (a < 0)
		wl_die("fork");
	if (!a)
		_exit(child_a());
	b = fork();
	if (b < 0)
		wl_die("fork");
	if (!b) {
		say_ready();
		_exit(leaf());
	}
	for (int i = 0; i < 3; i++)
		if (read(ready[0], &(char){0}, 1) != 1)
			wl_die("children setting up");
	close(ready[0]);
	close(ready[1]);
	wl_ready();
	wl_wait();

	wl_check(wl_cksum(region, REGION) == want, "root: region changed");
	wl_fill(region, REGION, 3);		/* private: A, G and B must not see this */
	kill(a, SIGTERM);
	kill(b, SIGTERM);
	wl_check(wait_ok(a), "child A (or its child G) found its memory changed");
	wl_check(wait_ok(b), "child B found its memory changed");
	return wl_finish();
}
