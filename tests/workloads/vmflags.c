/*
 * vmflags: per-mapping advice and flags, as /proc/PID/smaps "VmFlags" shows
 * them, in a tree of two processes, plus the per-mm THP and KSM switches.
 *
 * Before the fork the root maps a MADV_DONTFORK area (the child has no copy)
 * and a MADV_WIPEONFORK one (the child's copy is zero). Then each process
 * maps its own areas with data, one per flag: dc dd hg nh mg wf sr rr lo
 * (mlock) lf (mlock2 MLOCK_ONFAULT) nr (MAP_NORESERVE) dp (MAP_DROPPABLE,
 * where the kernel has it) and an area split by advice on its middle pages;
 * the root sets PR_SET_THP_DISABLE, the child PR_SET_THP_DISABLE with
 * PR_THP_DISABLE_EXCEPT_ADVISED (where the kernel has it, else plain) and
 * PR_SET_MEMORY_MERGE (where the kernel has it), and mlockall(MCL_FUTURE |
 * MCL_ONFAULT), which shows only on mappings made after it.
 *
 * Each process records, before READY, the maps line and the whole VmFlags
 * line of every mapping, its prctl answers, its THP/KSM lines of /proc/self
 * and the VmFlags of a mapping made then; after restore it compares them all and checks its data. The
 * root then forks a new child to see DONTFORK and WIPEONFORK still act.
 * An area whose flag the kernel cannot set (no KSM, no THP, no
 * MAP_DROPPABLE) is said so and left out: it cannot differ.
 */
#include "wl.h"
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#define PR_THP_EXCEPT_ADVISED (1 << 1)
#define PR_SET_MEMORY_MERGE_ 67
#define PR_GET_MEMORY_MERGE_ 68

#define PAGES 4
#define MAX_AREAS 16
#define SNAP 65536

struct area {
	const char *what;
	char *p;
	size_t len;
	uint64_t sum;
	int check_data;
};

static long page;
static struct area areas[MAX_AREAS];
static int nareas;
static char *dontfork, *wipeonfork;	/* the root's, mapped before the fork */
static char snap[SNAP], now[SNAP], raw[1 << 20];
static long thp_before, merge_before;
static char status_before[256], ksm_before[256], new_before[256];
static int ready[2], go[2];

static char *map(size_t len, int flags)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void add(const char *what, char *p, size_t len, int check_data, uint64_t seed)
{
	struct area *a = &areas[nareas++];

	a->what = what;
	a->p = p;
	a->len = len;
	a->check_data = check_data;
	wl_fill(p, len, seed);
	a->sum = wl_cksum(p, len);
}

/* An area with one madvise() on it, or a note when the kernel cannot. */
static void advised(const char *what, int advice, uint64_t seed)
{
	char *p = map(PAGES * page, MAP_PRIVATE);

	if (!p)
		wl_die("mmap");
	if (madvise(p, PAGES * page, advice)) {
		if (errno != EINVAL)
			wl_die(what);
		wl_say("%d: %s not available here (EINVAL): not checked", (int)getpid(), what);
		munmap(p, PAGES * page);
		return;
	}
	add(what, p, PAGES * page, 1, seed);
}

static void map_areas(uint64_t seed)
{
	char *p;

	advised("MADV_DONTDUMP", MADV_DONTDUMP, seed + 1);
	advised("MADV_HUGEPAGE", MADV_HUGEPAGE, seed + 2);
	advised("MADV_NOHUGEPAGE", MADV_NOHUGEPAGE, seed + 3);
	advised("MADV_MERGEABLE", MADV_MERGEABLE, seed + 4);
	advised("MADV_WIPEONFORK", MADV_WIPEONFORK, seed + 5);
	advised("MADV_DONTFORK", MADV_DONTFORK, seed + 6);
	advised("MADV_SEQUENTIAL", MADV_SEQUENTIAL, seed + 7);
	advised("MADV_RANDOM", MADV_RANDOM, seed + 8);

	p = map(PAGES * page, MAP_PRIVATE);
	if (!p || mlock(p, PAGES * page))
		wl_die("mlock");
	add("mlock", p, PAGES * page, 1, seed + 9);

	/* one page faulted in, the rest not: the restored area too */
	p = map(PAGES * page, MAP_PRIVATE);
	if (!p || mlock2(p, PAGES * page, MLOCK_ONFAULT))
		wl_die("mlock2(MLOCK_ONFAULT)");
	add("mlock2(MLOCK_ONFAULT)", p, page, 1, seed + 10);

	p = map(PAGES * page, MAP_PRIVATE | MAP_NORESERVE);
	if (!p)
		wl_die("mmap(MAP_NORESERVE)");
	add("MAP_NORESERVE", p, PAGES * page, 1, seed + 11);

	/* the kernel may drop its pages at any time: its data is not checked */
	p = map(PAGES * page, MAP_DROPPABLE);
	if (p)
		add("MAP_DROPPABLE", p, PAGES * page, 0, seed + 12);
	else if (errno == EINVAL)
		wl_say("%d: MAP_DROPPABLE not available here (EINVAL): not checked", (int)getpid());
	else
		wl_die("mmap(MAP_DROPPABLE)");

	/* read-only, read (the zero page) but never written: no VM_ACCOUNT ("ac") */
	p = mmap(NULL, PAGES * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		wl_die("mmap PROT_READ");
	for (int i = 0; i < PAGES; i++)
		if (((volatile char *)p)[i * page])
			wl_die("a fresh mapping is not zero");

	/* read-only private file mapping with a page written as a debugger
	 * writes (/proc/self/mem): private data, yet no VM_ACCOUNT */
	{
		char name[32], buf[64];
		int fd, mem;
		struct area *a;

		snprintf(name, sizeof(name), "ro-file-%d", (int)getpid());
		fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, PAGES * page))
			wl_die("ro-file");
		p = mmap(NULL, PAGES * page, PROT_READ, MAP_PRIVATE, fd, 0);
		close(fd);
		mem = open("/proc/self/mem", O_RDWR);
		memset(buf, 0x5a, sizeof(buf));
		if (p == MAP_FAILED || mem < 0 || pwrite(mem, buf, sizeof(buf), (off_t)(uintptr_t)(p + page)) != sizeof(buf))
			wl_die("writing a read-only private page through /proc/self/mem");
		close(mem);
		a = &areas[nareas++];
		a->what = "read-only file page written through /proc/self/mem";
		a->p = p;
		a->len = PAGES * page;
		a->check_data = 1;
		a->sum = wl_cksum(p, PAGES * page);
	}

	/* advice on the middle of a mapping splits it in three */
	p = map(6 * page, MAP_PRIVATE);
	if (!p || madvise(p + 2 * page, 2 * page, MADV_DONTDUMP) ||
	    madvise(p + 2 * page, 2 * page, MADV_NOHUGEPAGE))
		wl_die("split by madvise");
	add("split by advice", p, 6 * page, 1, seed + 13);
}

/* "maps line\nVmFlags: ...\n" of every mapping, from /proc/self/smaps. */
static void snapshot(char *out)
{
	char *line, *next, *o = out;
	ssize_t n = wl_read_file("/proc/self/smaps", raw, sizeof(raw));

	if (n < 0)
		wl_die("read /proc/self/smaps");
	for (line = raw; *line; line = next) {
		size_t len;

		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		/* maps lines start with a hex address; VmFlags ends a block */
		if (!strncmp(line, "VmFlags:", 8) || (*line && strchr("0123456789abcdef", *line))) {
			len = next - line;
			if (o + len + 1 >= out + SNAP)
				wl_die("smaps snapshot too large");
			memcpy(o, line, len);
			o += len;
			/*
			 * Soft-dirty ("sd", kernels with CONFIG_MEM_SOFT_DIRTY)
			 * is tracking state, not a property of the mapping:
			 * every mapping restore makes is new, hence soft-dirty
			 * (exec's [stack] is not). Left out, knowingly.
			 */
			if (!strncmp(line, "VmFlags:", 8)) {
				char *sd;

				*o = '\0';
				while ((sd = strstr(o - len, " sd ")))
					memmove(sd, sd + 3, strlen(sd + 3) + 1), o -= 3, len -= 3;
			}
		}
	}
	*o = '\0';
}

/* The entry of `snap`/`now` (two lines) whose maps line starts like `key`'s; NULL if none. */
static char *find_entry(char *text, const char *key)
{
	size_t n = strchr(key, ' ') - key + 1;	/* "start-end " */

	for (char *e = text; *e;) {
		char *next = strchr(e, '\n');

		if (!next || !(next = strchr(next + 1, '\n')))
			return NULL;
		if (!strncmp(e, key, n))
			return e;
		e = next + 1;
	}
	return NULL;
}

static size_t entry_len(const char *e)
{
	return strchr(strchr(e, '\n') + 1, '\n') - e;
}

/* One FAIL per mapping gone, new, or whose maps or VmFlags line differs. */
static void compare_snapshots(void)
{
	int who = (int)getpid();

	for (char *a = snap; *a; a += entry_len(a) + 1) {
		char *b = find_entry(now, a);

		if (!b)
			wl_fail("%d: mapping gone after restore: %.*s", who, (int)entry_len(a), a);
		else if (entry_len(a) != entry_len(b) || memcmp(a, b, entry_len(a)))
			wl_fail("%d: mapping differs after restore:\n  was %.*s\n  now %.*s", who,
				(int)entry_len(a), a, (int)entry_len(b), b);
	}
	for (char *b = now; *b; b += entry_len(b) + 1)
		if (!find_entry(snap, b))
			wl_fail("%d: new mapping after restore: %.*s", who, (int)entry_len(b), b);
}

static void read_line(const char *path, const char *key, char *out, size_t size)
{
	char *p, *e;

	out[0] = '\0';
	if (wl_read_file(path, raw, sizeof(raw)) < 0)
		return;		/* e.g. no ksm_stat on this kernel */
	p = strstr(raw, key);
	if (!p)
		return;
	e = strchr(p, '\n');
	if (e)
		*e = '\0';
	snprintf(out, size, "%s", p);
}

/* The VmFlags line of a page mapped now (and unmapped again). */
static void new_mapping_flags(char *out, size_t size)
{
	char *s, *v;
	char *p = map(page, MAP_PRIVATE);

	out[0] = '\0';
	if (!p)
		wl_die("mmap");
	if (wl_read_file("/proc/self/smaps", raw, sizeof(raw)) < 0)
		wl_die("read /proc/self/smaps");
	munmap(p, page);
	for (s = raw; *s; s = strchr(s, '\n') + 1) {
		unsigned long lo, hi;

		if (sscanf(s, "%lx-%lx ", &lo, &hi) == 2 && lo <= (unsigned long)p && (unsigned long)p < hi) {
			v = strstr(s, "VmFlags:");
			if (v)
				snprintf(out, size, "%.*s", (int)(strchr(v, '\n') - v), v);
			return;
		}
		if (!strchr(s, '\n'))
			break;
	}
}

static void record(void)
{
	new_mapping_flags(new_before, sizeof(new_before));
	thp_before = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	merge_before = prctl(PR_GET_MEMORY_MERGE_, 0, 0, 0, 0);
	read_line("/proc/self/status", "THP_enabled:", status_before, sizeof(status_before));
	read_line("/proc/self/ksm_stat", "ksm_merge_any:", ksm_before, sizeof(ksm_before));
	snapshot(snap);
}

static void verify(void)
{
	char line[256];
	long v;
	int who = (int)getpid();

	snapshot(now);		/* first: nothing else may map before it */
	compare_snapshots();
	v = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	wl_check(v == thp_before, "%d: PR_GET_THP_DISABLE is %ld, was %ld", who, v, thp_before);
	v = prctl(PR_GET_MEMORY_MERGE_, 0, 0, 0, 0);
	wl_check(v == merge_before, "%d: PR_GET_MEMORY_MERGE is %ld, was %ld", who, v, merge_before);
	read_line("/proc/self/status", "THP_enabled:", line, sizeof(line));
	wl_check(!strcmp(line, status_before), "%d: '%s', was '%s'", who, line, status_before);
	read_line("/proc/self/ksm_stat", "ksm_merge_any:", line, sizeof(line));
	wl_check(!strcmp(line, ksm_before), "%d: '%s', was '%s'", who, line, ksm_before);
	new_mapping_flags(line, sizeof(line));
	wl_check(!strcmp(line, new_before), "%d: a new mapping has '%s', had '%s'", who, line, new_before);
	for (int i = 0; i < nareas; i++)
		wl_check(!areas[i].check_data || wl_cksum(areas[i].p, areas[i].len) == areas[i].sum,
			 "%d: the data of the %s area changed", who, areas[i].what);
}

/* After restore: a new child has no copy of the DONTFORK area and a zero
 * copy of the WIPEONFORK one. */
static void check_fork_advice(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		wl_die("fork");
	if (!pid) {
		int bad = 0;

		if (msync(dontfork, page, MS_ASYNC) == 0 || errno != ENOMEM)
			bad |= 1;
		for (long i = 0; i < PAGES * page; i++)
			if (wipeonfork[i])
				bad |= 2;
		_exit(bad);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		wl_die("waitpid");
	wl_check(!(WEXITSTATUS(status) & 1), "a child forked after restore has the MADV_DONTFORK area");
	wl_check(!(WEXITSTATUS(status) & 2), "a child forked after restore has non-zero MADV_WIPEONFORK memory");
}

static int child(void)
{
	wl_pid = getpid();
	wl_failures = 0;
	close(ready[0]);
	close(go[1]);
	for (long i = 0; i < PAGES * page; i++)
		if (wipeonfork[i])
			wl_die("the child's WIPEONFORK copy is not zero");
	if (msync(dontfork, page, MS_ASYNC) == 0)
		wl_die("the child has a copy of a DONTFORK area");
	map_areas(200);
	if (prctl(PR_SET_THP_DISABLE, 1, PR_THP_EXCEPT_ADVISED, 0, 0) &&
	    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		wl_die("PR_SET_THP_DISABLE");
	if (prctl(PR_SET_MEMORY_MERGE_, 1, 0, 0, 0) && errno != EINVAL)
		wl_die("PR_SET_MEMORY_MERGE");
	if (mlockall(MCL_FUTURE | MCL_ONFAULT))
		wl_die("mlockall");
	record();
	if (write(ready[1], "r", 1) != 1)
		_exit(30);
	wl_wait();
	verify();
	return wl_failures ? 1 : 0;
}

int main(void)
{
	pid_t pid;
	int status;

	wl_setup(0);
	page = sysconf(_SC_PAGESIZE);
	dontfork = map(PAGES * page, MAP_PRIVATE);
	wipeonfork = map(PAGES * page, MAP_PRIVATE);
	if (!dontfork || !wipeonfork || madvise(dontfork, PAGES * page, MADV_DONTFORK) ||
	    madvise(wipeonfork, PAGES * page, MADV_WIPEONFORK))
		wl_die("DONTFORK/WIPEONFORK before the fork");
	wl_fill(dontfork, PAGES * page, 7);
	wl_fill(wipeonfork, PAGES * page, 8);
	if (pipe(ready) || pipe(go))
		wl_die("pipe");
	pid = fork();
	if (pid < 0)
		wl_die("fork");
	if (!pid)
		_exit(child());
	close(ready[1]);
	close(go[0]);
	map_areas(100);
	add("MADV_DONTFORK before fork", dontfork, PAGES * page, 1, 7);
	add("MADV_WIPEONFORK before fork", wipeonfork, PAGES * page, 1, 8);
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
		wl_die("PR_SET_THP_DISABLE");
	if (read(ready[0], &(char){0}, 1) != 1)
		wl_die("the child setting up");
	record();
	wl_ready();
	wl_wait();

	verify();
	check_fork_advice();
	kill(pid, SIGTERM);
	wl_check(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status),
		 "the child found a difference (status %#x)", status);
	return wl_finish();
}
