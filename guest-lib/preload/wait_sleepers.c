/* SPDX-License-Identifier: MIT */
/*
 * Socket shim readiness, the sleepers: which thread waits on which
 * vectors, so that a doorbell drained by one thread wakes the others.
 * See shim.h, "Readiness".
 */
#include "fd_high.h"
#include "shim.h"
#include "wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ivlink/region.h>

/*
 * Doorbells are eventfd counters that one read() empties, and every wait of
 * the process watches them. In a process with several threads waiting (an
 * event loop per thread, each with its own epoll set; threads in poll), the
 * thread that drains a doorbell is not always the one whose connection it
 * was rung for, and readiness computed in user space is seen by no one
 * else. So a wait registers a wake eventfd (its epoll set's, or its
 * thread's for poll) and the vectors of its connections before it arms the
 * rings and sleeps, and whoever consumes a doorbell (libivlink calls
 * shim_doorbell_drained()) writes the wake fd of every other registered
 * thread waiting on that vector (all of them for the control vector), which
 * then looks again. The registration comes before the arming, and the
 * doorbell after it, so the drainer finds the sleeper registered (both
 * under sleepers_lock).
 */
struct shim_sleeper {
	int efd;
	int on;		/* in the list */
	uint64_t vmask; /* vectors of the connections it waits on */
	pid_t tid;
	struct shim_sleeper *next;
};

static pthread_mutex_t sleepers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_sleeper *sleepers;
/* A thread waits in one call at a time: one node per thread. It lives in
 * thread-local storage, and a thread that ends inside a wait (cancelled)
 * leaves the list through the key's destructor. */
static __thread struct shim_sleeper my_node;
static __thread int my_efd = -1; /* poll's wake fd */
static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void thread_gone(void *arg)
{
	(void)arg;
	shim_sleeper_del();
	if (my_efd >= 0)
		REAL(close)(my_efd);
	my_efd = -1;
}

static void key_make(void)
{
	pthread_key_create(&thread_key, thread_gone);
}

static pid_t self_tid(void)
{
	if (!my_node.tid) {
		my_node.tid = (pid_t)syscall(SYS_gettid);
		pthread_once(&key_once, key_make);
		pthread_setspecific(thread_key, (void *)1);
	}
	return my_node.tid;
}

/* This thread's wake fd for poll, created on first use. */
int shim_thread_efd(void)
{
	if (my_efd < 0)
		my_efd = ivl__fd_high(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
	return my_efd;
}

/* The bit of a connection's rx vector in a sleeper's mask. */
uint64_t shim_vbit(const struct shim_conn *c)
{
	return c->lk.rx_vector < 64 ? 1ULL << c->lk.rx_vector : ~0ULL;
}

/* Registers this thread as sleeping on vmask, woken through efd. */
void shim_sleeper_add(int efd, uint64_t vmask)
{
	struct shim_sleeper *s = &my_node;

	self_tid();
	pthread_mutex_lock(&sleepers_lock);
	if (!s->on) {
		s->next = sleepers;
		sleepers = s;
		s->on = 1;
	}
	s->efd = efd;
	s->vmask = vmask;
	pthread_mutex_unlock(&sleepers_lock);
}

void shim_sleeper_del(void)
{
	struct shim_sleeper *s = &my_node;

	if (!s->on)
		return;
	pthread_mutex_lock(&sleepers_lock);
	for (struct shim_sleeper **pp = &sleepers; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	s->on = 0;
	pthread_mutex_unlock(&sleepers_lock);
}

void shim_doorbell_drained(uint32_t v)
{
	static const uint64_t one = 1;
	uint64_t bit = v == IVL_CTRL_VECTOR || v >= 64 ? ~0ULL : 1ULL << v;
	pid_t me = self_tid();

	pthread_mutex_lock(&sleepers_lock);
	for (struct shim_sleeper *s = sleepers; s; s = s->next)
		if (s->tid != me && (s->vmask & bit) &&
		    REAL(write)(s->efd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is full, a wake-up is pending. */
		}
	pthread_mutex_unlock(&sleepers_lock);
}

/* The other threads are gone in a child: so are their registrations. */
void shim_sleepers_fork_child(void)
{
	pthread_mutex_init(&sleepers_lock, NULL);
	sleepers = NULL;
	my_node.on = 0;
	my_node.tid = 0;
}

void shim_efd_drain(int fd)
{
	uint64_t v = 0; /* the count read() takes: unused */

	if (REAL(read)(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was written. */
	}
}
