/*
 * anon MIB [writer]: MIB MiB of private anonymous memory.
 * With "writer" the main loop rewrites one page after the other without
 * pause (each at a new version), so the checkpoint copies memory that keeps
 * changing and the loop sees its own stall at full resolution.
 */
#include "bench.h"

static char *mem;
static size_t pages, cursor;
static uint64_t writes;	/* sum of every page's version, kept in step */

static void rewrite_one(void)
{
	uint64_t *page = (uint64_t *)(mem + cursor * BW_PAGE);

	bw_fill_page(page, cursor, page[0] + 1);
	writes++;
	cursor = (cursor + 1) % pages;
}

int main(int argc, char **argv)
{
	size_t mib = bw_arg(argc, argv, 1, 1), i, bad;
	int writer = argc > 2 && !strcmp(argv[2], "writer");
	uint64_t expected, sum = 0xcbf29ce484222325ULL, versions = 0;

	bw_setup();
	pages = mib * BW_MIB / BW_PAGE;
	mem = bw_map(pages * BW_PAGE);
	expected = bw_fill(mem, pages, 0);
	bw_say("READY %016llx", (unsigned long long)expected);
	bw_loop(writer ? rewrite_one : NULL);

	bad = bw_check(mem, pages, 0, &sum);
	if (writer) {
		for (i = 0; i < pages; i++)
			versions += ((uint64_t *)(mem + i * BW_PAGE))[0];
		if (versions != writes) {
			bw_say("FAIL page versions add up to %llu, %llu writes were made",
			       (unsigned long long)versions, (unsigned long long)writes);
			return 1;
		}
		expected = sum;	/* the pages changed on purpose: the pattern check stands */
	}
	return bw_report(bad, sum, expected, pages * BW_PAGE);
}
