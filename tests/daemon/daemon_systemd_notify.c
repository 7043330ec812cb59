/* SPDX-License-Identifier: MIT */
/*
 * ivlinkd under systemd, without systemd: the test plays the service
 * manager.
 *  - Type=notify: with $NOTIFY_SOCKET naming a datagram socket the test
 *    listens on (a path, then an abstract "@name"), READY=1 arrives only
 *    once both sockets accept connections (checked the moment it arrives),
 *    and STOPPING=1 follows SIGTERM before the daemon exits 0.
 *  - Journal priorities: with $JOURNAL_STREAM naming stderr's dev:ino,
 *    every line starts with "<N>" matching its level (an error "<3>", info
 *    "<6>", debug "<7>"); without it, or when it names another file (stderr
 *    was redirected after systemd set it), no line has a prefix.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "dtest.h"
#include "support.h"

/* Starts ivlinkd -F on sock with stderr to log; env "NAME=VALUE" or NULL.
 * journal: set $JOURNAL_STREAM to the dev:ino of the log file (1) or of
 * another file (2). */
static pid_t spawn(const char *sock, const char *log, const char *env, int journal)
{
	pid_t pid;
	int fd;

	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct stat st;
		char js[64];

		unsetenv("NOTIFY_SOCKET");
		unsetenv("JOURNAL_STREAM");
		if (env)
			putenv((char *)env);
		dup2(fd, 2);
		if (journal) {
			if ((journal == 1 ? fstat(2, &st) : stat("/", &st)) < 0)
				_exit(126);
			snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
				 (unsigned long long)st.st_ino);
			setenv("JOURNAL_STREAM", js, 1);
		}
		execl(IVLINKD, IVLINKD, "-F", "--log=stderr", "--log-level=debug", "-S", sock, "-l",
		      "1M", (char *)NULL);
		_exit(127);
	}
	close(fd);
	ts_track_pid(pid);
	return pid;
}

/* One datagram within ms into buf (NUL terminated); 0 on timeout. */
static int recv_state(int ns, char *buf, size_t len, int ms)
{
	struct pollfd p = {.fd = ns, .events = POLLIN};
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return 0;
	n = recv(ns, buf, len - 1, 0);
	CHECK(n >= 0);
	buf[n] = '\0';
	return 1;
}

static int has_line(const char *state, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = state; (p = strstr(p, line)) != NULL; p += n)
		if ((p == state || p[-1] == '\n') && (p[n] == '\0' || p[n] == '\n'))
			return 1;
	return 0;
}

/* state with its newlines shown as "|", for one-line messages. */
static const char *oneline(const char *state)
{
	static char buf[1024];
	size_t i;

	for (i = 0; i < sizeof(buf) - 1 && state[i]; i++)
		buf[i] = state[i] == '\n' ? '|' : state[i];
	buf[i] = '\0';
	return buf;
}

/* A datagram socket at addr (a path, or "@name": abstract), as systemd's
 * notify socket. */
static int notify_listen(const char *addr)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(addr);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	CHECK(s >= 0 && n < sizeof(a.sun_path));
	memcpy(a.sun_path, addr, n);
	if (addr[0] == '@')
		a.sun_path[0] = '\0';
	CHECK(bind(s, (struct sockaddr *)&a,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) == 0,
	      "bind %s: %s", addr, strerror(errno));
	return s;
}

static void check_notify(const char *addr, const char *tag)
{
	char env[200], sock[256], ctl[300], state[1024];
	int ns = notify_listen(addr), st, fd;
	pid_t pid;

	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", addr);
	snprintf(sock, sizeof(sock), "%s", ts_path(tag));
	snprintf(ctl, sizeof(ctl), "%s.ctl", sock);
	pid = spawn(sock, ts_path("notify.log"), env, 0);

	CHECK(recv_state(ns, state, sizeof(state), 10000), "%s: no notification in 10 s", tag);
	/* The first message must be the readiness one, and by then both
	 * sockets must be listening: connect now, before anything else. */
	fd = ts_connect(sock);
	CHECK(fd >= 0, "%s: READY=1 came before %s accepted connections (%s)", tag, sock,
	      strerror(-fd));
	close(fd);
	fd = ts_connect(ctl);
	CHECK(fd >= 0, "%s: READY=1 came before %s accepted connections (%s)", tag, ctl,
	      strerror(-fd));
	close(fd);
	CHECK(has_line(state, "READY=1"), "%s: first notification '%s' has no READY=1", tag,
	      oneline(state));
	printf("ok: %s: '%s' once both sockets listen\n", tag, oneline(state));

	/* A peer can join right away. */
	{
		struct dt_peer p;

		CHECK(dt_peer_join(&p, sock, 8) == 0, "%s: join after READY=1 failed", tag);
		dt_peer_close(&p);
	}

	kill(pid, SIGTERM);
	CHECK(recv_state(ns, state, sizeof(state), 10000), "%s: nothing after SIGTERM", tag);
	CHECK(has_line(state, "STOPPING=1"), "%s: after SIGTERM '%s' has no STOPPING=1", tag,
	      oneline(state));
	printf("ok: %s: '%s' after SIGTERM\n", tag, oneline(state));
	st = ts_daemon_stop(pid, SIGTERM);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit status 0x%x after SIGTERM", tag, st);
	close(ns);
	if (addr[0] == '/')
		unlink(addr);
}

/* Checks every line of log: with prefixes, "<N>LEVEL: " where N is LEVEL's
 * syslog priority; without, "ivlinkd[PID]: LEVEL: ". Returns a bit per
 * level seen (1 error, 2 warn, 4 info, 8 debug). */
static unsigned check_log(const char *log, int prefixed, const char *what)
{
	static const struct {
		const char *name;
		int prio;
	} lv[] = {{"error", 3}, {"warn", 4}, {"info", 6}, {"debug", 7}};
	char line[1024];
	unsigned seen = 0;
	FILE *f = fopen(log, "r");

	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		const char *rest = line;
		int prio = -1, n = 0, k;

		if (prefixed) {
			CHECK(sscanf(line, "<%d>%n", &prio, &n) == 1 && n > 0,
			      "%s: line without a <N> prefix: %s", what, line);
			rest = line + n;
		} else {
			CHECK(line[0] != '<', "%s: unexpected prefix: %s", what, line);
			CHECK(strncmp(line, "ivlinkd[", 8) == 0 && (rest = strstr(line, "]: ")),
			      "%s: not an ivlinkd[PID] line: %s", what, line);
			rest += 3;
		}
		for (k = 0; k < 4; k++)
			if (strncmp(rest, lv[k].name, strlen(lv[k].name)) == 0 &&
			    rest[strlen(lv[k].name)] == ':')
				break;
		CHECK(k < 4, "%s: no level in: %s", what, line);
		CHECK(!prefixed || prio == lv[k].prio, "%s: %s line with <%d>: %s", what,
		      lv[k].name, prio, line);
		seen |= 1u << k;
	}
	fclose(f);
	return seen;
}

/* An info line from a daemon that starts and stops, an error line from a
 * second one on the same socket ("another daemon is listening"). */
static void check_journal(int journal, const char *what)
{
	char sock[256], log1[256], log2[256];
	unsigned seen;
	int st;
	pid_t a, b;

	snprintf(sock, sizeof(sock), "%s", ts_path("j.sock"));
	snprintf(log1, sizeof(log1), "%s", ts_path("j1.log"));
	snprintf(log2, sizeof(log2), "%s", ts_path("j2.log"));
	a = spawn(sock, log1, NULL, journal);
	for (int i = 0; i < 500 && !ts_can_connect(sock); i++)
		usleep(10000);
	CHECK(ts_can_connect(sock), "%s: first daemon did not come up", what);
	b = spawn(sock, log2, NULL, journal);
	st = ts_daemon_stop(b, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: second daemon: status 0x%x", what, st);
	st = ts_daemon_stop(a, SIGTERM);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: first daemon: status 0x%x", what, st);

	seen = check_log(log1, journal == 1, what);
	CHECK(seen & 4, "%s: no info line from the first daemon", what);
	seen = check_log(log2, journal == 1, what);
	CHECK(seen & 1, "%s: no error line from the second daemon", what);
	printf("ok: %s: %s\n", what,
	       journal == 1 ? "error lines <3>, info <6>, debug <7>" : "no <N> prefixes");
}

int main(void)
{
	char abstract[64];

	ts_init("daemon_systemd_notify", 60);
	check_notify(ts_path("notify"), "path");
	snprintf(abstract, sizeof(abstract), "@ivl-test-notify-%d", (int)getpid());
	check_notify(abstract, "abstract");
	check_journal(1, "JOURNAL_STREAM=stderr");
	check_journal(0, "no JOURNAL_STREAM");
	check_journal(2, "JOURNAL_STREAM of another file");
	printf("PASS daemon_systemd_notify\n");
	return 0;
}
