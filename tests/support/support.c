/* SPDX-License-Identifier: MIT */
/* Test helpers without libivlink: see support.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define MAX_PIDS 64

static pid_t started[MAX_PIDS];
static int n_started;

void ts_track_pid(pid_t pid)
{
	if (n_started < MAX_PIDS)
		started[n_started++] = pid;
}

void ts_forget_pid(pid_t pid)
{
	for (int i = 0; i < n_started; i++) {
		if (started[i] == pid) {
			started[i] = started[--n_started];
			return;
		}
	}
}

void ts_forget_all(void)
{
	n_started = 0;
}

void ts_kill_tracked(void)
{
	for (int i = 0; i < n_started; i++) {
		kill(started[i], SIGKILL);
		waitpid(started[i], NULL, 0);
	}
	n_started = 0;
}

int ts_wait(pid_t pid, int64_t timeout_ns, int *killed)
{
	int64_t deadline = ts_now_ns() + timeout_ns;
	int st;

	*killed = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (ts_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			*killed = 1;
			break;
		}
		usleep(1000);
	}
	ts_forget_pid(pid);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

int ts_stop(pid_t pid, int sig, int64_t timeout_ns)
{
	int64_t deadline = ts_now_ns() + timeout_ns;
	int st = 0;

	kill(pid, sig);
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (ts_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(2000);
	}
	ts_forget_pid(pid);
	return st;
}

pid_t ts_fork(void)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		ts_forget_all();
		alarm(0);
	} else if (pid > 0) {
		ts_track_pid(pid);
	}
	return pid;
}

int64_t ts_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void ts_rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

int ts_proc_fds(pid_t pid)
{
	char p[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	d = opendir(p);
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	/* Our own count includes the directory stream just used. */
	return pid == getpid() ? n - 1 : n;
}

long ts_proc_rss_kb(pid_t pid)
{
	char p[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int ts_can_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s, ok;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 0;
	strcpy(sa.sun_path, path);
	ok = connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(s);
	return ok;
}
