/*
 * mappings COUNT: COUNT small private anonymous mappings (1 to 3 pages,
 * every other one read-only), each apart from the next so that none merge.
 */
#include "bench.h"

int main(int argc, char **argv)
{
	size_t count = bw_arg(argc, argv, 1, 1000), i, bad = 0, bytes = 0;
	uint64_t expected = 0xcbf29ce484222325ULL, sum = 0xcbf29ce484222325ULL, index = 0;
	char *base;

	bw_setup();
	/* Reserve an address range, then place every mapping at 4-page strides in it. */
	base = mmap(NULL, count * 4 * BW_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		bw_die("mmap");
	munmap(base, count * 4 * BW_PAGE);
	for (i = 0; i < count; i++) {
		size_t pages = 1 + i % 3;
		char *m = mmap(base + i * 4 * BW_PAGE, pages * BW_PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (m == MAP_FAILED)
			bw_die("mmap");
		bw_fill(m, pages, index);
		bw_check(m, pages, index, &expected);
		if (i % 2 && mprotect(m, pages * BW_PAGE, PROT_READ))
			bw_die("mprotect");
		index += pages;
	}
	bw_say("READY %016llx", (unsigned long long)expected);
	bw_loop(NULL);

	for (i = 0, index = 0; i < count; i++) {
		size_t pages = 1 + i % 3;

		bad += bw_check(base + i * 4 * BW_PAGE, pages, index, &sum);
		index += pages;
		bytes += pages * BW_PAGE;
	}
	return bw_report(bad, sum, expected, bytes);
}
