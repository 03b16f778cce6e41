/*
 * bigshm: 1 GiB of shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS) with
 * a few pages written at scattered offsets, between two PROT_NONE
 * reservations, and a PROT_NONE stretch inside it (mprotect). Only the
 * written pages exist: after restore the mapping must hold exactly as many
 * resident pages as before (restore allocated nothing else), the same
 * bytes in the written pages, zeros elsewhere, and the same /proc/self/maps
 * lines (all but the inode of the new shmem object).
 */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096UL
#define SIZE (1UL << 30)
#define RESERVE (64UL << 20)
static const unsigned long offsets[] = {
	0, 5 * PAGE, (1UL << 20) + 3 * PAGE, 300UL << 20, (777UL << 20) + 11 * PAGE, SIZE - PAGE,
};
#define NOFF (sizeof(offsets) / sizeof(offsets[0]))
/* [NONE_AT, NONE_AT + NONE_LEN) of the mapping is mprotect'ed PROT_NONE */
#define NONE_AT (512UL << 20)
#define NONE_LEN (16UL << 20)

static char *low, *map, *high;
static char maps_before[16384], maps_after[16384];

/* /proc/self/maps without the inode column of the shmem lines */
static void read_maps(char *out, size_t size)
{
	static char raw[16384];
	char *line, *save = NULL;
	size_t len = 0;

	if (wl_read_file("/proc/self/maps", raw, sizeof(raw)) < 0)
		wl_die("reading /proc/self/maps");
	out[0] = 0;
	for (line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char range[64], perms[8], off[32], dev[16];
		unsigned long ino;
		int path_at = 0;

		if (sscanf(line, "%63s %7s %31s %15s %lu %n", range, perms, off, dev, &ino, &path_at) < 5)
			continue;
		if (!strstr(line, "/dev/zero"))
			ino = 0;
		len += snprintf(out + len, size - len, "%s %s %s %s %lu %s\n", range, perms, off, dev,
				ino ? 1UL : 0UL, path_at ? line + path_at : "");
	}
}

/* Rss of the mappings within [map, map + SIZE), in kB, from /proc/self/smaps */
static long rss_kb(void)
{
	static char smaps[1 << 17];
	char *p;
	long total = 0;
	int inside = 0;

	if (wl_read_file("/proc/self/smaps", smaps, sizeof(smaps)) < 0)
		wl_die("reading /proc/self/smaps");
	for (p = smaps; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		unsigned long s, e;
		long kb;

		if (sscanf(p, "%lx-%lx ", &s, &e) == 2 && strchr(p, ' ') < strchr(p, '\n'))
			inside = s >= (unsigned long)map && e <= (unsigned long)map + SIZE;
		else if (inside && sscanf(p, "Rss: %ld kB", &kb) == 1)
			total += kb;
	}
	return total;
}

int main(void)
{
	long rss_before, rss_after;

	wl_setup(0);
	/* one reservation, then the shared mapping placed in its middle */
	low = mmap(NULL, SIZE + 2 * RESERVE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (low == MAP_FAILED)
		wl_die("mmap reservation");
	map = mmap(low + RESERVE, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (map == MAP_FAILED)
		wl_die("mmap 1 GiB shared");
	high = map + SIZE;
	for (unsigned i = 0; i < NOFF; i++)
		wl_fill(map + offsets[i], PAGE, 100 + i);
	if (mprotect(map + NONE_AT, NONE_LEN, PROT_NONE))
		wl_die("mprotect");
	rss_before = rss_kb();
	read_maps(maps_before, sizeof(maps_before));
	wl_ready();
	wl_wait();

	rss_after = rss_kb();
	wl_check(rss_after == rss_before, "resident shared memory %ld kB, was %ld kB", rss_after, rss_before);
	read_maps(maps_after, sizeof(maps_after));
	wl_check(!strcmp(maps_before, maps_after), "maps differ:\n--- before\n%s--- after\n%s", maps_before, maps_after);
	for (unsigned i = 0; i < NOFF; i++) {
		static char want[PAGE];

		wl_fill(want, PAGE, 100 + i);
		wl_check(!memcmp(map + offsets[i], want, PAGE), "page at offset %#lx differs", offsets[i]);
	}
	for (unsigned long off = 7 * PAGE; off < SIZE; off += 97 * PAGE + 4096 * 13) {
		if (off >= NONE_AT && off < NONE_AT + NONE_LEN)
			continue;
		int touched = 0;
		for (unsigned i = 0; i < NOFF; i++)
			touched |= off == offsets[i];
		wl_check(touched || !map[off], "untouched page at offset %#lx is not zero", off);
	}
	return wl_finish();
}
