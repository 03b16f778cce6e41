/*
 * novdso: a process that unmapped its vDSO ([vdso], [vvar], [vvar_vclock]).
 * After restore it must have no vDSO either: /proc/self/maps is the same,
 * line for line. (It makes no vDSO call: glibc would still jump there.)
 * "child-keeps": a child forked before the unmap keeps its vDSO; restore
 * forks children from their restored parent, so dump refuses this tree.
 */
#include "wl.h"
#include <sys/mman.h>
#include <sys/wait.h>

static char before[16384], after[16384];

static int unmap_vdso(void)
{
	static char maps[16384];
	char *line, *save = NULL;
	int n = 0;

	if (wl_read_file("/proc/self/maps", maps, sizeof(maps)) < 0)
		return -1;
	for (line = strtok_r(maps, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long s, e;

		if (!strstr(line, "[vdso]") && !strstr(line, "[vvar"))
			continue;
		if (sscanf(line, "%lx-%lx", &s, &e) != 2 || munmap((void *)s, e - s))
			return -1;
		n++;
	}
	return n;
}

int main(int argc, char **argv)
{
	pid_t child = 0;

	wl_setup(0);
	if (argc > 1 && !strcmp(argv[1], "child-keeps")) {
		child = fork();
		if (child < 0)
			wl_die("fork");
		if (!child) {
			wl_wait();
			_exit(0);
		}
	}
	if (unmap_vdso() < 1)
		wl_die("unmapping the vDSO");
	if (wl_read_file("/proc/self/maps", before, sizeof(before)) < 0)
		wl_die("reading maps");
	if (strstr(before, "[vdso]") || strstr(before, "[vvar"))
		wl_die("the vDSO is still mapped");
	wl_ready();
	wl_wait();
	if (wl_read_file("/proc/self/maps", after, sizeof(after)) < 0)
		wl_die("reading maps");
	wl_check(!strcmp(before, after), "maps differ:\n--- before\n%s--- after\n%s", before, after);
	if (child) {
		int status;

		wl_check(!kill(child, SIGTERM) && waitpid(child, &status, 0) == child && WIFEXITED(status) &&
			 !WEXITSTATUS(status), "the child did not end well");
	}
	return wl_finish();
}
