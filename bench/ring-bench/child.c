/* SPDX-License-Identifier: MIT */
/* ivlink-ring-bench: the child process, the echo side and the producer. */
#define _GNU_SOURCE
#include "ring_bench.h"

/* ------------------------------------------------------------------ child */

static int child_floor(struct bench *b, uint64_t count, int pause)
{
	uint64_t *ball = b->ball;

	for (uint64_t i = 0; i < count; i++) {
		uint64_t want = 2 * i + 1;
		unsigned spins = 0;
		int64_t deadline = 0; /* set at the first clock read of this wait */

		/* B1: pairs with the parent's release store of want. */
		while (__atomic_load_n(ball, __ATOMIC_ACQUIRE) != want) {
			if (pause)
				ivl__cpu_relax();
			if ((++spins & 0xffff) == 0) {
				int64_t now = ivl__now_ns();

				if (!b->pinned)
					sched_yield();
				if (!deadline)
					deadline = now + WAIT_NS;
				else if (now > deadline)
					return -ETIMEDOUT;
			}
		}
		/* B2: pairs with the parent's acquire load. */
		__atomic_store_n(ball, want + 1, __ATOMIC_RELEASE);
	}
	return 0;
}

static int child_ring_echo(struct bench *b, uint64_t count, enum rtt_how how)
{
	struct ivl_ring rx, tx;
	uint8_t msg[RTT_MSG];
	uint32_t unflushed = 0;
	long n;
	int rc;

	rc = rb_rtt_attach(b, &rx, &tx, 0, how);
	for (uint64_t i = 0; rc == 0 && i < count; i++) {
		n = rb_rtt_recv(&rx, how, msg, &unflushed);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		n = ivl_ring_write(&tx, msg, (size_t)n, 0);
		if (n < 0)
			rc = (int)n;
	}
	return rc;
}

static int child_sock_echo(struct bench *b, int fd, uint64_t count, uint32_t size)
{
	uint8_t buf[RTT_MSG];
	int rc = 0;

	for (uint64_t i = 0; rc == 0 && i < count; i++) {
		rc = bench_recv_all(fd, buf, size);
		if (rc == 0)
			rc = bench_send_all(fd, buf, size);
	}
	return rc;
}

/* Producer of a throughput test: message mode writes records with IVL_MORE
 * and publishes once per batch; stream mode writes each message with as many
 * (partial) writes as the ring's free space allows, publishing each. */
static int child_tput(struct bench *b, uint32_t size, uint32_t ring_size)
{
	int stream = size >= STREAM_FROM;
	uint32_t fp = (uint32_t)ivl_rec_footprint(size);
	uint32_t batch = stream ? 1 : BATCH_BYTES / fp;
	struct ivl_ring tx;
	int rc;

	if (batch == 0)
		batch = 1;
	rc = rb_ring_attach(b, &tx, RING_TPUT, 1, ring_size,
			    stream ? IVL_MODE_STREAM : IVL_MODE_MESSAGE, stream ? 0 : size,
			    IVL_SPIN_NS_DEFAULT);
	if (rc < 0)
		return rc;
	memset(b->src, 0x5a, size);

	while (rc == 0 && !__atomic_load_n(&b->ctl->stop, __ATOMIC_RELAXED)) {
		for (uint32_t i = 0; i < batch && rc == 0;) {
			size_t off = 0;
			long n;

			if (!stream) {
				n = ivl_ring_write(&tx, b->src, size, IVL_MORE);
				if (n >= 0) {
					i++;
					continue;
				}
			} else {
				for (;;) {
					n = ivl_ring_write(&tx, b->src + off, size - off, 0);
					if (n < 0)
						break;
					off += (size_t)n;
					if (off == size)
						break;
				}
				if (n >= 0) {
					i++;
					continue;
				}
			}
			if (n != -EAGAIN) {
				rc = (int)n;
				break;
			}
			/* Full: publish what the batch holds, then wait. A
			 * short timeout lets a stop request end the wait. */
			rc = ivl_ring_flush(&tx);
			if (rc == 0)
				rc = ivl_ring_wait_writable(&tx, stream ? 1 : size, 1000000);
			if (rc == -ETIMEDOUT)
				rc = 0;
			if (__atomic_load_n(&b->ctl->stop, __ATOMIC_RELAXED))
				break;
			if (stream && off > 0) {
				/* Finish the message we started so that the
				 * consumer sees whole messages. */
				while (rc == 0 && off < size) {
					n = ivl_ring_write(&tx, b->src + off, size - off, 0);
					if (n == -EAGAIN) {
						rc = ivl_ring_wait_writable(&tx, 1, 1000000);
						if (rc == -ETIMEDOUT)
							rc = 0;
						continue;
					}
					if (n < 0)
						rc = (int)n;
					else
						off += (size_t)n;
				}
				i++;
			}
		}
		if (rc == 0)
			rc = ivl_ring_flush(&tx);
	}
	/* EOF tells the consumer the last message is in: it drains and stops. */
	if (rc == 0)
		rc = ivl_ring_set_flags(&tx, IVL_RING_F_DONE_WRITING);
	return rc;
}

/* Producer half of the cross-core copy ceiling: copy into each free slot
 * and hand it over with one flag, no ring code at all. */
static int child_xcopy(struct bench *b, uint32_t nslots)
{
	uint8_t *slots = ring_data(b, RING_TPUT);
	int64_t deadline = ivl__now_ns() + WAIT_NS;

	for (uint32_t i = 0;; i = (i + 1) % nslots) {
		uint32_t *flag = xcopy_flag(b, i);

		/* X2: pairs with the parent's release store of 0: its reads
		 * of the slot are done before we overwrite it. */
		for (unsigned spins = 1; __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 0; spins++) {
			if (__atomic_load_n(&b->ctl->stop, __ATOMIC_RELAXED))
				return 0;
			if ((spins & 0xfff) == 0 && ivl__now_ns() > deadline)
				return -ETIMEDOUT;
			ivl__cpu_relax();
		}
		memcpy(slots + (size_t)i * XCOPY_SIZE, b->src, XCOPY_SIZE);
		/* X1: pairs with the parent's acquire load of 1. */
		__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
		deadline = ivl__now_ns() + WAIT_NS;
	}
}

/* Idle until the next command: spin briefly (commands come back to back),
 * then sleep in short steps so an idle child does not burn a shared CPU. */
static uint32_t child_wait_cmd(struct bench *b, uint32_t last)
{
	int64_t spin_end = ivl__now_ns() + 1000000;
	uint32_t seq;

	for (;;) {
		/* C1: pairs with the parent's release store in issue(). */
		seq = __atomic_load_n(&b->ctl->cmd_seq, __ATOMIC_ACQUIRE);
		if (seq != last)
			return seq;
		if (getppid() != b->parent)
			_exit(1); /* orphaned: the parent died */
		if (ivl__now_ns() < spin_end) {
			ivl__cpu_relax();
		} else {
			struct timespec ts = {0, 20000};

			nanosleep(&ts, NULL);
		}
	}
}

static int child_peer_alive(void *ctx)
{
	const struct bench *b = ctx;

	return getppid() != b->parent ? -ECONNRESET : 0;
}

_Noreturn void rb_child_main(struct bench *b, uint16_t tcp_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(tcp_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint32_t seq = 0;
	int one = 1;

	/* The child must never outlive the parent (it would spin forever). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != b->parent)
		_exit(1);
	if (bench_pin_to(b->cpu[1]) < 0)
		_exit(1);
	b->efd = (struct ivl_efd_notifier){.kick_fd = b->efd_parent,
					   .wait_fd = b->efd_child,
					   .check = child_peer_alive,
					   .check_ctx = b};
	ivl_efd_notifier_bind(&b->notify, &b->efd);

	b->tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->tcp_fd < 0 || connect(b->tcp_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		_exit(1);
	setsockopt(b->tcp_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	for (;;) {
		struct ctl *c = b->ctl;
		int rc = 0;

		seq = child_wait_cmd(b, seq);
		switch (c->cmd) {
		case CMD_FLOOR:
			rc = child_floor(b, c->count, (int)c->arg);
			break;
		case CMD_RING_ECHO:
			rc = child_ring_echo(b, c->count, (enum rtt_how)c->arg);
			break;
		case CMD_SOCK_ECHO:
			rc = child_sock_echo(b, c->arg ? b->unix_fd : b->tcp_fd, c->count, c->size);
			break;
		case CMD_TPUT:
			rc = child_tput(b, c->size, c->ring_size);
			break;
		case CMD_XCOPY:
			rc = child_xcopy(b, c->ring_size / XCOPY_SIZE);
			break;
		case CMD_EXIT:
			_exit(0);
		default:
			rc = -EINVAL;
		}
		c->status = rc;
		/* C2: pairs with the parent's acquire load in wait_ack(). */
		__atomic_store_n(&c->ack_seq, seq, __ATOMIC_RELEASE);
	}
}
