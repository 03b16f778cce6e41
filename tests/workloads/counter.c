/*
 * counter: prints 0, 1, 2, ... one number a second (the README demo).
 * Its test checks that the numbers go on without a gap or a repeat after a
 * restore; on SIGTERM it stops and prints PASS.
 */
#include "wl.h"

int main(void)
{
	int i = 0;

	wl_setup(0);
	wl_ready();
	while (!wl_term) {
		wl_term_unblock(1);	/* SIGTERM may cut the sleep short */
		sleep(1);
		wl_term_unblock(0);
		if (wl_term)
			break;
		printf("%d\n", i++);
		fflush(stdout);
	}
	return wl_finish();
}
