/* SPDX-License-Identifier: MIT */
/*
 * The test support library's own cleanup (tests/support): a process that
 * ends after ts_init() stops a pid tracked with ts_track_pid_term() with
 * SIGTERM first (its handler runs), one tracked with ts_track_pid() with
 * SIGKILL (its handler never runs), and one that ignores SIGTERM with
 * SIGKILL after the grace period; EXPECT() counts failures and goes on.
 * vm_qemu_compat depends on the first: its VM launcher stops QEMU in its
 * SIGTERM/EXIT trap.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* One pipe: each child writes 'r' when ready, then its tag on SIGTERM. */
static int rep[2];
static char my_tag;

static void on_term(int sig)
{
	(void)sig;
	if (write(rep[1], &my_tag, 1) != 1)
		_exit(3);
	_exit(0);
}

/* A child that reports 'r' when ready, then its tag on SIGTERM (or
 * ignores SIGTERM when tag is 0). */
static int child(void *arg)
{
	char r = 'r';

	my_tag = *(const char *)arg;
	signal(SIGTERM, my_tag ? on_term : SIG_IGN);
	if (write(rep[1], &r, 1) != 1)
		return 3;
	for (;;)
		pause();
}

/* The harnessed process under test: three children, two EXPECT()s, then
 * exit, which runs the cleanup. */
static int harnessed(void *arg)
{
	static const char term = 'T', kill9 = 'K', ignore = 0;
	pid_t t, k, i;
	char c;

	(void)arg;
	ts_init("support_cleanup_term_first_inner", 30);
	t = ts_spawn(child, (void *)&term);
	k = ts_spawn(child, (void *)&kill9);
	i = ts_spawn(child, (void *)&ignore);
	(void)k; /* tracked by ts_spawn(): SIGKILL */
	ts_track_pid_term(t);
	ts_track_pid_term(i);
	for (int n = 0; n < 3; n++)
		CHECK(read(rep[0], &c, 1) == 1 && c == 'r', "child %d not ready", n);
	EXPECT(1 + 1 == 2, "a check that holds");
	EXPECT(1 + 1 == 3, "a check that fails, on purpose");
	/* 3 says: exactly one EXPECT() failed and the test went on. */
	exit(ts_failures() == 1 ? 3 : 4);
}

int main(void)
{
	char buf[16];
	ssize_t n, len = 0;
	pid_t h;

	ts_init("support_cleanup_term_first", 60);
	CHECK(pipe(rep) == 0);
	h = ts_spawn(harnessed, NULL);
	close(rep[1]);
	/* Within the watchdog: the ignoring child costs the 5 s grace. */
	CHECK_EQ(ts_wait(h, 20000), 3);
	/* EOF once the harnessed process and all its children are gone. */
	while ((n = read(rep[0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	buf[len] = '\0';
	CHECK(strchr(buf, 'T'), "the TERM-first child never saw SIGTERM (got \"%s\")", buf);
	CHECK(!strchr(buf, 'K'), "the plainly tracked child saw SIGTERM (got \"%s\")", buf);
	printf("ok: SIGTERM first where asked, SIGKILL otherwise and after the grace; "
	       "EXPECT() counted\n");
	return 0;
}
