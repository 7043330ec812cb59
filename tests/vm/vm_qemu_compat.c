/* SPDX-License-Identifier: MIT */
/*
 * QEMU compatibility of ivlinkd (issue 3): a real QEMU guest's
 * ivshmem-doorbell device connects to the daemon, and a host peer speaking
 * the raw ivshmem protocol shares the region with it.
 *
 *   1. Start ivlinkd on a private socket; connect as a raw protocol client
 *      (peer 0); validate the region header; allocate a page in our section
 *      and write pattern P1 into it.
 *   2. Boot one guest (vm-configs/ivlink-vm, TCG unless KVM works) running
 *      ivlink-probe: it checks IVPosition == the id the daemon announced
 *      (1), validates the region header from inside, expects P1 at our
 *      page, writes P2 into the first heap page of its own section, rings
 *      our doorbell vector 1, and waits for our acknowledgement P3.
 *   3. Meanwhile the host sees the guest join (8 eventfds for id 1), the
 *      doorbell on its own eventfd, P2 in the guest's section, and answers
 *      with P3.
 *   4. The guest then binds the device to vfio-pci and arms its MSI-X
 *      vectors (ivlink-vfio-probe recv), announcing readiness in its heap
 *      page; the host rings the guest's vector 1 through the eventfd the
 *      daemon gave it, the guest answers on ours, ROUNDS times: interrupts
 *      from a host peer into a guest and back.
 *   5. After the guest powers off, the daemon announces the leave and marks
 *      peer 1 GONE in the peer table.
 *
 * Usage: vm_qemu_compat IVLINKD IVLINK-VM BUILD-DIR
 * Exit 0 pass, 1 fail, 77 skipped (no QEMU, or no ivlinkd).
 */
#define _GNU_SOURCE /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "ivshmem_client.h"

#define VECTORS 8
#define PAT_LEN 32
#define ACK_OFF 256 /* P3 lives this far into our page */
#define ROUNDS	50
/* ivlink-vfio-probe's readiness marker: this magic, then the guest's peer
 * epoch, in the first 16 bytes of its heap (vm-configs/guest). */
#define READY_MAGIC 0x59444552564c5649ULL

static char tmpdir[] = "/tmp/ivl-vmtest.XXXXXX";
static int have_tmpdir;
static pid_t daemon_pid = -1, vm_pid = -1;
static int failures;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("[compat] ");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3))) check(int ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("[compat] %s: ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	if (!ok)
		failures++;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void print_file_tail(const char *path, int lines)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "tail -n %d '%s' 2>/dev/null | sed 's/^/[compat] | /'", lines,
		 path);
	if (system(cmd) != 0)
		note("(no %s)", path);
}

/* Stops what we started, by pid, and removes the temporary folder. */
static void cleanup(void)
{
	int st;

	if (vm_pid > 0) {
		/* The launcher's trap stops its QEMU by pid. */
		kill(vm_pid, SIGTERM);
		waitpid(vm_pid, &st, 0);
		vm_pid = -1;
	}
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		for (int i = 0; i < 50; i++) {
			if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
				daemon_pid = -1;
				break;
			}
			usleep(100000);
		}
		if (daemon_pid > 0) {
			kill(daemon_pid, SIGKILL);
			waitpid(daemon_pid, &st, 0);
			daemon_pid = -1;
		}
	}
	if (have_tmpdir) {
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		have_tmpdir = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return 1;
		path = end ? end + 1 : NULL;
	}
	return 0;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static void fill_random(uint8_t *p, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, p, n) != (ssize_t)n) {
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)(rand() ^ (int)i);
	}
	if (fd >= 0)
		close(fd);
	p[0] |= 1; /* never all zero */
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Region offset of peer id's first heap page, or 0 when its section is not
 * initialised (read from shared memory: validated before use). */
static uint64_t heap_of(const struct ivl_region *rg, uint32_t id)
{
	struct ivl_section_hdr *s;
	uint64_t off;

	if (ivl_section_check(rg, id) < 0)
		return 0;
	s = ivl_region_section(rg, id);
	off = __atomic_load_n(&s->heap_off, __ATOMIC_ACQUIRE);
	return ivl_region_ptr(rg, off, IVL_PAGE_SIZE) ? off : 0;
}

/* Waits up to ms for our vector 1; returns 1 when rung, 0 on timeout. */
static int wait_own(struct ivshc *c, int ms, int *doorbells)
{
	struct pollfd p = {.fd = c->efd[c->id][1], .events = POLLIN};
	uint64_t cnt;

	if (poll(&p, 1, ms) <= 0 || read(p.fd, &cnt, 8) != 8)
		return 0;
	*doorbells += (int)cnt;
	return 1;
}

/* Rings the guest's vector 1 and waits for its answer on ours, ROUNDS
 * times. Returns the rounds completed. */
static int ping_pong(struct ivshc *c, int64_t guest, int *doorbells)
{
	double t0, sum = 0, min = 1e9, max = 0;
	uint64_t one = 1;
	int i;

	while (wait_own(c, 0, doorbells))
		; /* the guest's earlier doorbell, if not read yet */
	note("guest armed its MSI-X vectors; host<->guest doorbell ping-pong");
	for (i = 0; i < ROUNDS; i++) {
		t0 = now_s();
		if (write(c->efd[guest][1], &one, 8) != 8 || !wait_own(c, 60000, doorbells))
			break;
		t0 = now_s() - t0;
		sum += t0;
		min = t0 < min ? t0 : min;
		max = t0 > max ? t0 : max;
	}
	if (i)
		note("%d round trips host->guest->host: min %.0f avg %.0f max %.0f us (%s)", i,
		     min * 1e6, sum / i * 1e6, max * 1e6, "TCG unless KVM works");
	return i;
}

int main(int argc, char **argv)
{
	char sock[256], dlog[256], script[256], logdir[256], hexbuf[3][2 * PAT_LEN + 1];
	uint8_t p1[PAT_LEN], p2[PAT_LEN], p3[PAT_LEN];
	struct ivl_region rg;
	struct ivshc c;
	struct stat st;
	void *base = MAP_FAILED;
	uint64_t size = 0;
	int64_t host_off;
	int64_t guest_id = -1;
	int rc, status, vm_status = -1, saw_p2 = 0, saw_leave = 0, doorbells = 0;
	int pongs = -1; /* -1: ping-pong not started */
	double t0 = now_s(), t_boot = 0;
	FILE *f;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 4) {
		fprintf(stderr, "usage: %s IVLINKD IVLINK-VM BUILD-DIR\n", argv[0]);
		return 2;
	}
	if (!in_path("qemu-system-x86_64")) {
		note("SKIP: qemu-system-x86_64 not installed (scripts/ivl-deps vm)");
		return 77;
	}
	if (access(argv[1], X_OK) != 0) {
		note("SKIP: ivlinkd not built (%s)", argv[1]);
		return 77;
	}
	{
		char probe[512];

		snprintf(probe, sizeof(probe), "%s/vm-configs/ivlink-probe", argv[3]);
		if (access(probe, X_OK) != 0) {
			check(0, "guest tool %s not built (static glibc missing?)", probe);
			return 1;
		}
	}
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	have_tmpdir = 1;
	atexit(cleanup);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	ivshc_init(&c);

	snprintf(sock, sizeof(sock), "%s/ivlinkd.sock", tmpdir);
	snprintf(dlog, sizeof(dlog), "%s/ivlinkd.log", tmpdir);
	snprintf(script, sizeof(script), "%s/guest.sh", tmpdir);
	snprintf(logdir, sizeof(logdir), "%s/logs", tmpdir);

	/* 1. Daemon and host peer. */
	{
		char *dargv[] = {argv[1], "-F", "-S", sock, "-l", "64M", "-n", "8", "-v", NULL};

		daemon_pid = spawn(dargv, dlog);
	}
	for (int i = 0; i < 200 && stat(sock, &st) != 0; i++) {
		if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
			daemon_pid = -1;
			break;
		}
		usleep(50000);
	}
	if (stat(sock, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		check(0, "ivlinkd socket %s did not appear", sock);
		print_file_tail(dlog, 20);
		return 1;
	}
	note("ivlinkd up (pid %d) on %s", (int)daemon_pid, sock);

	rc = ivshc_connect(&c, sock, 5000);
	if (rc < 0) {
		check(0, "handshake (version, id, shm fd): %s", strerror(-rc));
		print_file_tail(dlog, 20);
		return 1;
	}
	if (fstat(c.shm_fd, &st) == 0)
		size = (uint64_t)st.st_size;
	base =
	    size ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c.shm_fd, 0) : MAP_FAILED;
	if (base == MAP_FAILED) {
		check(0, "map the %" PRIu64 "-byte region", size);
		return 1;
	}
	rc = ivl_region_attach(&rg, base, size);
	check(rc == 0, "region header valid (%s), %" PRIu64 " MiB, %u vectors, %u peers",
	      rc ? strerror(-rc) : "attached", size >> 20, rc ? 0 : rg.hdr.n_vectors,
	      rc ? 0 : rg.hdr.max_peers);
	if (rc)
		return 1;
	check(rg.hdr.n_vectors == VECTORS, "region announces %u vectors (-n %d)", rg.hdr.n_vectors,
	      VECTORS);
	rc = ivshc_finish(&c, (int)rg.hdr.n_vectors, 5000);
	check(rc == 0 && c.id == 0, "host peer id %" PRId64 " with %d own eventfds (%s)", c.id,
	      c.n_efd[c.id >= 0 ? c.id : 0], rc ? strerror(-rc) : "ok");
	if (rc)
		return 1;
	{
		struct ivl_peer_view v;

		rc = ivl_region_peer_view(&rg, (uint32_t)c.id, &v);
		check(rc == 0 && v.state == IVL_PEER_UP,
		      "peer table: host peer %" PRId64 " UP (epoch %u)", c.id, rc ? 0 : v.epoch);
	}
	host_off = ivl_section_alloc(&rg, (uint32_t)c.id, 1);
	if (host_off <= 0) {
		check(0, "allocate a heap page in our section: %s", strerror((int)-host_off));
		return 1;
	}
	fill_random(p1, PAT_LEN);
	fill_random(p2, PAT_LEN);
	fill_random(p3, PAT_LEN);
	memcpy((uint8_t *)base + host_off, p1, PAT_LEN);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	hex(hexbuf[0], p1, PAT_LEN);
	hex(hexbuf[1], p2, PAT_LEN);
	hex(hexbuf[2], p3, PAT_LEN);
	note("host wrote P1 at %#" PRIx64 " (its section's heap)", (uint64_t)host_off);

	/* 2. The guest's script. The expected id is the next one the daemon
	 * hands out: ids start at 0 and the host peer took the first. */
	f = fopen(script, "w");
	if (!f) {
		perror(script);
		return 1;
	}
	fprintf(f,
		"set -e\n"
		"ivlink-probe list\n"
		"ivlink-probe info\n"
		"id=$(ivlink-probe id)\n"
		"echo \"guest IVPosition $id\"\n"
		"[ \"$id\" = %" PRId64 " ] || { echo \"IVPosition $id, expected %" PRId64
		"\"; exit 3; }\n"
		"ivlink-probe expect %" PRId64 " %s\n"
		"echo 'guest read P1'\n"
		"off=$(ivlink-probe heap $id)\n"
		"ivlink-probe write $off %s\n"
		"echo \"guest wrote P2 at $off\"\n"
		"ivlink-probe ring %" PRId64 " 1\n"
		"echo 'guest rang peer %" PRId64 " vector 1'\n"
		"ivlink-probe wait %" PRId64 " %s 120000\n"
		"echo 'guest saw P3'\n"
		"ivlink-vfio-probe recv %" PRId64 " 1 %d 60000\n",
		c.id + 1, c.id + 1, host_off, hexbuf[0], hexbuf[1], c.id, c.id, host_off + ACK_OFF,
		hexbuf[2], c.id, ROUNDS);
	fclose(f);

	{
		char *vargv[] = {argv[2], "-g",	       "west",	"--sock",   sock,   "--script",
				 script,  "-B",	       argv[3], "--logdir", logdir, "--timeout",
				 "200",	  "--vectors", "8",	NULL};

		vm_pid = spawn(vargv, NULL);
	}
	t_boot = now_s();
	note("launcher started (pid %d)", (int)vm_pid);

	/* 3. Watch the protocol, our doorbell and the guest's section. */
	while (vm_pid > 0 || !saw_leave) {
		struct pollfd pf[2] = {{.fd = c.sock, .events = POLLIN},
				       {.fd = c.efd[c.id][1], .events = POLLIN}};
		int64_t val;
		int fd;

		if (now_s() - t0 > 270) {
			check(0, "overall timeout");
			break;
		}
		if (vm_pid < 0 && now_s() - t_boot > 10 && !saw_leave) {
			/* Gave the daemon 10 s after the guest ended. */
			break;
		}
		if (poll(pf, 2, 50) > 0 && (pf[0].revents & (POLLIN | POLLHUP))) {
			rc = ivshc_recv(c.sock, 0, &val, &fd);
			if (rc < 0) {
				check(0, "daemon connection: %s", strerror(-rc));
				break;
			}
			rc = ivshc_apply(&c, val, fd);
			if (rc == 1 && c.n_efd[val] == 1) {
				note("peer %" PRId64 " joined after %.1f s", val, now_s() - t_boot);
				if (guest_id < 0)
					guest_id = val;
			} else if (rc == 2) {
				note("peer %" PRId64 " left", val);
				if (val == guest_id)
					saw_leave = 1;
			} else if (rc < 0) {
				check(0, "bad peer message %" PRId64, val);
			}
		}
		if (pf[1].revents & POLLIN) {
			uint64_t cnt;

			if (read(pf[1].fd, &cnt, 8) == 8) {
				doorbells += (int)cnt;
				note("doorbell on our vector 1 (%" PRIu64 ")", cnt);
			}
		}
		if (guest_id >= 0 && !saw_p2) {
			uint64_t goff = heap_of(&rg, (uint32_t)guest_id);

			if (goff && memcmp((uint8_t *)base + goff, p2, PAT_LEN) == 0) {
				saw_p2 = 1;
				note("host saw P2 at %#" PRIx64 " after %.1f s; acknowledging",
				     goff, now_s() - t_boot);
				memcpy((uint8_t *)base + host_off + ACK_OFF, p3, PAT_LEN);
				__atomic_thread_fence(__ATOMIC_SEQ_CST);
			}
		}
		if (saw_p2 && pongs < 0 && guest_id >= 0 && c.n_efd[guest_id] > 1) {
			uint64_t goff = heap_of(&rg, (uint32_t)guest_id);
			volatile uint64_t *slot =
			    goff ? (uint64_t *)((uint8_t *)base + goff) : NULL;
			struct ivl_peer_view v;

			if (slot && __atomic_load_n(&slot[0], __ATOMIC_ACQUIRE) == READY_MAGIC &&
			    ivl_region_peer_view(&rg, (uint32_t)guest_id, &v) == 0 &&
			    slot[1] == v.epoch)
				pongs = ping_pong(&c, guest_id, &doorbells);
		}
		if (vm_pid > 0 && waitpid(vm_pid, &status, WNOHANG) == vm_pid) {
			vm_pid = -1;
			vm_status =
			    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			note("launcher exited %d after %.1f s", vm_status, now_s() - t_boot);
			t_boot = now_s();
		}
	}

	/* 4. Verdict. */
	check(vm_status == 0, "guest ran its script (launcher exit %d)", vm_status);
	check(guest_id == c.id + 1,
	      "daemon announced the guest as peer %" PRId64 " (expected %" PRId64 ")", guest_id,
	      c.id + 1);
	if (guest_id >= 0)
		check(c.n_efd[guest_id] == VECTORS || saw_leave,
		      "guest's join announced with one eventfd per vector");
	check(saw_p2, "host read the guest's P2 from the guest's section");
	check(doorbells >= 1,
	      "guest's doorbell (peer %" PRId64 ", vector 1) reached our eventfd (%d)", c.id,
	      doorbells);
	check(pongs == ROUNDS,
	      "host rang the guest's vector 1 (VFIO, MSI-X) and got the answer, %d/%d rounds",
	      pongs < 0 ? 0 : pongs, ROUNDS);
	check(saw_leave, "daemon announced the guest's leave");
	if (guest_id >= 0) {
		struct ivl_peer_view v;

		rc = ivl_region_peer_view(&rg, (uint32_t)guest_id, &v);
		check(rc == 0 && v.state == IVL_PEER_GONE,
		      "peer table: guest %" PRId64 " GONE (state %u)", guest_id, rc ? 0 : v.state);
	}
	if (failures) {
		note("console log of the guest:");
		{
			char p[300];

			snprintf(p, sizeof(p), "%s/west.log", logdir);
			print_file_tail(p, 40);
		}
		note("ivlinkd log:");
		print_file_tail(dlog, 30);
	}
	munmap(base, size);
	ivshc_close(&c);
	note("%s in %.1f s", failures ? "FAILED" : "passed", now_s() - t0);
	return failures ? 1 : 0;
}
