/*
 * bigmem: one anonymous region of PYCKPT_TEST_BIG_MB MiB (default 1024)
 * filled with a pattern, apart from its last MiB, which is never touched
 * and must still read as zeros. Checksummed before and after.
 */
#include "wl.h"

#include <sys/mman.h>

int main(void)
{
	const char *env = getenv("PYCKPT_TEST_BIG_MB");
	size_t mb = env && *env ? strtoul(env, NULL, 10) : 1024;
	size_t len, filled, i;
	uint64_t sum;
	char *p;

	wl_setup(0);
	if (mb < 2)
		mb = 2;
	len = mb << 20;
	filled = len - (1u << 20);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		wl_die("mmap");
	wl_fill(p, filled, mb);
	sum = wl_cksum(p, filled);

	wl_ready();
	wl_wait();

	wl_check(wl_cksum(p, filled) == sum, "%zu MiB region changed", mb);
	for (i = filled; i < len && !p[i]; i++)
		;
	wl_check(i == len, "untouched last MiB not zero at offset %zu", i);
	return wl_finish();
}
