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
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "ivshmem_client.h"
#include "support.h"

#define VECTORS 8
#define PAT_LEN 32
#define ACK_OFF 256 /* P3 lives this far into our page */
#define ROUNDS	50
/* ivlink-vfio-probe's readiness marker: this magic, then the guest's peer
 * epoch, in the first 16 bytes of its heap (vm-configs/guest). */
#define READY_MAGIC 0x59444552564c5649ULL
/* The loop's own bound, below the watchdog (and CTest's 300 s), so that a
 * stuck guest still gets the verdict below. */
#define LOOP_TIMEOUT_S 270
#define WATCHDOG_S     290
#define NS	       1000000000LL

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

static double secs_since(int64_t t0)
{
	return (double)(ts_now_ns() - t0) / 1e9;
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
	int64_t t, sum = 0, min = INT64_MAX, max = 0;
	uint64_t one = 1;
	int i;

	while (wait_own(c, 0, doorbells))
		; /* the guest's earlier doorbell, if not read yet */
	note("guest armed its MSI-X vectors; host<->guest doorbell ping-pong");
	for (i = 0; i < ROUNDS; i++) {
		t = ts_now_ns();
		if (write(c->efd[guest][1], &one, 8) != 8 || !wait_own(c, 60000, doorbells))
			break;
		t = ts_now_ns() - t;
		sum += t;
		min = t < min ? t : min;
		max = t > max ? t : max;
	}
	if (i)
		note("%d round trips host->guest->host: min %.0f avg %.0f max %.0f us (%s)", i,
		     (double)min / 1e3, (double)sum / i / 1e3, (double)max / 1e3,
		     "TCG unless KVM works");
	return i;
}

int main(int argc, char **argv)
{
	static const struct ts_daemon_opts dopts = {.log_level = "debug", .log_file = 1};
	static const char *const dextra[] = {"-l", "64M", "-n", "8", NULL};
	char probe[512], script[256], logdir[256], console[300], hexbuf[3][2 * PAT_LEN + 1];
	uint8_t p1[PAT_LEN], p2[PAT_LEN], p3[PAT_LEN];
	struct ts_daemon d;
	struct ivl_region rg;
	struct ivshc c;
	struct stat st;
	void *base = MAP_FAILED;
	uint64_t size = 0;
	int64_t host_off;
	int64_t guest_id = -1;
	int rc, status, vm_status = -1, saw_p2 = 0, saw_leave = 0, doorbells = 0;
	int pongs = -1; /* -1: ping-pong not started */
	int64_t t0 = ts_now_ns(), t_boot = 0;
	pid_t vm_pid;
	FILE *f;

	if (argc != 4) {
		fprintf(stderr, "usage: %s IVLINKD IVLINK-VM BUILD-DIR\n", argv[0]);
		return 2;
	}
	if (!in_path("qemu-system-x86_64")) {
		note("SKIP: qemu-system-x86_64 not installed (scripts/ivl-deps vm)");
		return TS_SKIP;
	}
	ts_init_ivlinkd(argc, argv, "vm_qemu_compat", WATCHDOG_S);
	snprintf(probe, sizeof(probe), "%s/vm-configs/ivlink-probe", argv[3]);
	CHECK(access(probe, X_OK) == 0, "guest tool %s not built (static glibc missing?)", probe);
	ivshc_init(&c);
	snprintf(script, sizeof(script), "%s", ts_path("guest.sh"));
	/* The launcher's logs (one level of files) go into the temp dir. */
	snprintf(logdir, sizeof(logdir), "%s", ts_dir());
	snprintf(console, sizeof(console), "%s/west.log", logdir);

	/* 1. Daemon and host peer. */
	ts_daemon_start(&d, argv[1], "ivlinkd.sock", dextra, &dopts);
	note("ivlinkd up (pid %d) on %s", (int)d.pid, d.sock);

	rc = ivshc_connect(&c, d.sock, 5000);
	CHECK(rc == 0, "handshake (version, id, shm fd): %s", strerror(-rc));
	if (fstat(c.shm_fd, &st) == 0)
		size = (uint64_t)st.st_size;
	base =
	    size ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c.shm_fd, 0) : MAP_FAILED;
	CHECK(base != MAP_FAILED, "map the %" PRIu64 "-byte region", size);
	rc = ivl_region_attach(&rg, base, size);
	CHECK(rc == 0, "region header valid (%s)", strerror(-rc));
	note("region header valid, %" PRIu64 " MiB, %u vectors, %u peers", size >> 20,
	     rg.hdr.n_vectors, rg.hdr.max_peers);
	CHECK(rg.hdr.n_vectors == VECTORS, "region announces %u vectors (-n %d)", rg.hdr.n_vectors,
	      VECTORS);
	rc = ivshc_finish(&c, (int)rg.hdr.n_vectors, 5000);
	CHECK(rc == 0 && c.id == 0, "host peer id %" PRId64 " with %d own eventfds (%s)", c.id,
	      c.n_efd[c.id >= 0 ? c.id : 0], rc ? strerror(-rc) : "ok");
	{
		struct ivl_peer_view v;

		rc = ivl_region_peer_view(&rg, (uint32_t)c.id, &v);
		CHECK(rc == 0 && v.state == IVL_PEER_UP,
		      "peer table: host peer %" PRId64 " UP (epoch %u)", c.id, rc ? 0 : v.epoch);
	}
	host_off = ivl_section_alloc(&rg, (uint32_t)c.id, 1);
	CHECK(host_off > 0, "allocate a heap page in our section: %s", strerror((int)-host_off));
	/* Three distinct patterns; a fresh region is all zero, so none of
	 * them is there before it is written. */
	ts_stream_fill(0x5031, 0, p1, PAT_LEN);
	ts_stream_fill(0x5032, 0, p2, PAT_LEN);
	ts_stream_fill(0x5033, 0, p3, PAT_LEN);
	memcpy((uint8_t *)base + host_off, p1, PAT_LEN);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	hex(hexbuf[0], p1, PAT_LEN);
	hex(hexbuf[1], p2, PAT_LEN);
	hex(hexbuf[2], p3, PAT_LEN);
	note("host wrote P1 at %#" PRIx64 " (its section's heap)", (uint64_t)host_off);

	/* 2. The guest's script. The expected id is the next one the daemon
	 * hands out: ids start at 0 and the host peer took the first. */
	f = fopen(script, "w");
	CHECK(f, "%s: %s", script, strerror(errno));
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
	CHECK(fclose(f) == 0, "%s: %s", script, strerror(errno));

	{
		char *vargv[] = {argv[2], "-g",	       "west",	"--sock",   d.sock, "--script",
				 script,  "-B",	       argv[3], "--logdir", logdir, "--timeout",
				 "200",	  "--vectors", "8",	NULL};

		vm_pid = ts_exec(vargv);
	}
	/* SIGTERM first at cleanup: the launcher's EXIT trap stops its QEMU
	 * by pid, which SIGKILL would leave running. */
	ts_track_pid_term(vm_pid);
	t_boot = ts_now_ns();
	note("launcher started (pid %d)", (int)vm_pid);

	/* 3. Watch the protocol, our doorbell and the guest's section. */
	while (vm_pid > 0 || !saw_leave) {
		struct pollfd pf[2] = {{.fd = c.sock, .events = POLLIN},
				       {.fd = c.efd[c.id][1], .events = POLLIN}};
		int64_t val;
		int fd;

		if (ts_now_ns() - t0 > LOOP_TIMEOUT_S * NS) {
			EXPECT(ts_now_ns() - t0 <= LOOP_TIMEOUT_S * NS, "overall timeout (%d s)",
			       LOOP_TIMEOUT_S);
			break;
		}
		if (vm_pid < 0 && ts_now_ns() - t_boot > 10 * NS && !saw_leave) {
			/* Gave the daemon 10 s after the guest ended. */
			break;
		}
		if (poll(pf, 2, 50) > 0 && (pf[0].revents & (POLLIN | POLLHUP))) {
			rc = ivshc_recv(c.sock, 0, &val, &fd);
			if (rc < 0) {
				EXPECT(rc >= 0, "daemon connection: %s", strerror(-rc));
				break;
			}
			rc = ivshc_apply(&c, val, fd);
			if (rc == 1 && c.n_efd[val] == 1) {
				note("peer %" PRId64 " joined after %.1f s", val,
				     secs_since(t_boot));
				if (guest_id < 0)
					guest_id = val;
			} else if (rc == 2) {
				note("peer %" PRId64 " left", val);
				if (val == guest_id)
					saw_leave = 1;
			} else if (rc < 0) {
				EXPECT(rc >= 0, "bad peer message %" PRId64, val);
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
				     goff, secs_since(t_boot));
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
			ts_forget_pid(vm_pid);
			vm_pid = -1;
			vm_status =
			    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			note("launcher exited %d after %.1f s", vm_status, secs_since(t_boot));
			t_boot = ts_now_ns();
		}
	}

	/* 4. Verdict: each observation on its own, so that one run shows
	 * which steps of the guest's protocol worked. */
	EXPECT(vm_status == 0, "guest ran its script (launcher exit %d)", vm_status);
	EXPECT(guest_id == c.id + 1,
	       "daemon announced the guest as peer %" PRId64 " (expected %" PRId64 ")", guest_id,
	       c.id + 1);
	if (guest_id >= 0)
		EXPECT(c.n_efd[guest_id] == VECTORS || saw_leave,
		       "guest's join announced with one eventfd per vector");
	EXPECT(saw_p2, "host read the guest's P2 from the guest's section");
	EXPECT(doorbells >= 1,
	       "guest's doorbell (peer %" PRId64 ", vector 1) reached our eventfd (%d)", c.id,
	       doorbells);
	EXPECT(pongs == ROUNDS,
	       "host rang the guest's vector 1 (VFIO, MSI-X) and got the answer, %d/%d rounds",
	       pongs < 0 ? 0 : pongs, ROUNDS);
	EXPECT(saw_leave, "daemon announced the guest's leave");
	if (guest_id >= 0) {
		struct ivl_peer_view v;

		rc = ivl_region_peer_view(&rg, (uint32_t)guest_id, &v);
		EXPECT(rc == 0 && v.state == IVL_PEER_GONE,
		       "peer table: guest %" PRId64 " GONE (state %u)", guest_id, rc ? 0 : v.state);
	}
	if (ts_failures()) {
		ts_print_tail(console, 40); /* the guest's console */
		ts_dump_logs();		    /* ivlinkd's */
	}
	munmap(base, size);
	ivshc_close(&c);
	ts_daemon_stop(d.pid, SIGTERM);
	note("%s in %.1f s", ts_failures() ? "FAILED" : "passed", secs_since(t0));
	return ts_failures() ? 1 : 0;
}
