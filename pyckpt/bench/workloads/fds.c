/*
 * fds COUNT: about COUNT open fds: regular files (each its own content and
 * offset), empty pipes and eventfds (each its own counter). Checked after
 * the restore: offsets and contents, that every pipe still joins its two
 * ends, every eventfd's counter; and a small memory region as everywhere.
 */
#include "bench.h"
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define MAX_EACH 4096

static int files[MAX_EACH], pipes[MAX_EACH][2], events[MAX_EACH];

int main(int argc, char **argv)
{
	size_t count = bw_arg(argc, argv, 1, 1000), each, i, bad;
	uint64_t expected, sum = 0xcbf29ce484222325ULL, value;
	struct rlimit rl;
	char name[64], buf[64], *mem;
	int n;

	bw_setup();
	each = count / 4;	/* a file, a pipe (two fds) and an eventfd per step */
	if (each > MAX_EACH)
		each = MAX_EACH;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (mkdir("files", 0755) && errno != EEXIST)
		bw_die("mkdir");
	for (i = 0; i < each; i++) {
		snprintf(name, sizeof(name), "files/%zu", i);
		files[i] = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
		n = snprintf(buf, sizeof(buf), "file %zu\n", i);
		if (files[i] < 0 || write(files[i], buf, n) != n)
			bw_die("file");
		lseek(files[i], i % n, SEEK_SET);
		if (pipe(pipes[i]))
			bw_die("pipe");
		events[i] = eventfd(i + 1, 0);
		if (events[i] < 0)
			bw_die("eventfd");
	}
	mem = bw_map(BW_MIB);
	expected = bw_fill(mem, BW_MIB / BW_PAGE, 0);
	bw_say("READY %016llx", (unsigned long long)expected);
	bw_loop(NULL);

	for (i = 0; i < each; i++) {
		n = snprintf(name, sizeof(name), "file %zu\n", i);
		if (lseek(files[i], 0, SEEK_CUR) != (off_t)(i % n) || pread(files[i], buf, n, 0) != n ||
		    memcmp(buf, name, n)) {
			bw_say("FAIL file fd %d (files/%zu) lost its offset or content", files[i], i);
			return 1;
		}
		if (write(pipes[i][1], "x", 1) != 1 || read(pipes[i][0], buf, 1) != 1 || buf[0] != 'x') {
			bw_say("FAIL pipe %d/%d no longer joins its ends", pipes[i][0], pipes[i][1]);
			return 1;
		}
		if (read(events[i], &value, 8) != 8 || value != i + 1) {
			bw_say("FAIL eventfd %d lost its counter", events[i]);
			return 1;
		}
	}
	bad = bw_check(mem, BW_MIB / BW_PAGE, 0, &sum);
	return bw_report(bad, sum, expected, BW_MIB);
}
