/*
 * inotify: an instance with watches on two directories of the workload's
 * own (the first watch removed again, so the descriptors have a gap). After
 * restore the watches keep their descriptors and masks: creating a file in
 * each directory yields events with the right wd; the removed watch stays
 * removed.
 */
#include "wl.h"
#include <sys/inotify.h>
#include <sys/stat.h>

int main(void)
{
	char buf[4096] __attribute__((aligned(8)));
	int in, gone, wd_a, wd_b, n, seen_a = 0, seen_b = 0;
	char *p;

	wl_setup(0);
	if (mkdir("a", 0700) || mkdir("b", 0700) || mkdir("c", 0700))
		wl_die("mkdir");
	in = inotify_init1(IN_NONBLOCK);
	gone = inotify_add_watch(in, "c", IN_CREATE);
	wd_a = inotify_add_watch(in, "a", IN_CREATE | IN_DELETE);
	wd_b = inotify_add_watch(in, "b", IN_CREATE);
	if (in < 0 || gone < 0 || wd_a < 0 || wd_b < 0 || inotify_rm_watch(in, gone))
		wl_die("inotify");
	/* drain the IN_IGNORED event of the removed watch */
	while (read(in, buf, sizeof(buf)) > 0)
		;
	wl_ready();
	wl_wait();

	if (close(open("a/new", O_CREAT | O_WRONLY, 0600)) || close(open("b/new", O_CREAT | O_WRONLY, 0600)) ||
	    close(open("c/new", O_CREAT | O_WRONLY, 0600)))
		wl_die("create");
	n = read(in, buf, sizeof(buf));
	for (p = buf; n > 0 && p < buf + n;) {
		struct inotify_event *ev = (struct inotify_event *)p;

		if (ev->wd == wd_a && ev->mask & IN_CREATE && !strcmp(ev->name, "new"))
			seen_a++;
		else if (ev->wd == wd_b && ev->mask & IN_CREATE && !strcmp(ev->name, "new"))
			seen_b++;
		else
			wl_fail("unexpected event wd %d mask %#x name '%s'", ev->wd, ev->mask,
				ev->len ? ev->name : "");
		p += sizeof(*ev) + ev->len;
	}
	wl_check(seen_a == 1 && seen_b == 1, "events: a %d (wd %d), b %d (wd %d)", seen_a, wd_a, seen_b, wd_b);
	wl_check(inotify_rm_watch(in, gone) < 0 && errno == EINVAL, "removed watch %d is back", gone);
	return wl_finish();
}
