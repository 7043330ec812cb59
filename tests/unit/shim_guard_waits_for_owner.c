/* SPDX-License-Identifier: MIT */
/*
 * The socket shim's fast sections and direction guards (guest-lib/preload/
 * fast.c), which let an owner thread use a ring handle without its mutex:
 *
 *  - shim_guard_lock() from a second thread waits for the owner's current
 *    fast section to end before it returns (else both would use the ring
 *    handle at once), and ends the ownership for good: the owner is gone
 *    and a later claim does not restore it;
 *  - shim_fast_sync() (close) waits for a fast section entered before it;
 *  - shim_guard_claim() under a set "never" flag (a connection shared over
 *    fork) claims nothing, and shim_guard_revoke() takes an ownership back.
 *
 * The owner stays in its section for 100 ms and records that it left; the
 * other thread checks that record once its call returns: ordering, never
 * a timed assertion.
 */
#include "shim.h"

#include <pthread.h>
#include <sched.h>

#include "ivl_test.h"

static struct shim_guard g;
static int entered, left;

/* Claims g, enters a fast section, stays 100 ms, records it left. */
static void *owner_thread(void *arg)
{
	struct timespec ts = {0, 100000000};
	int never = 0;
	struct shim_reader *me;

	(void)arg;
	shim_reader_register();
	pthread_mutex_lock(&g.lock);
	shim_guard_claim(&g, &never);
	pthread_mutex_unlock(&g.lock);
	me = shim_fast_enter();
	CHECK(me && __atomic_load_n(&g.owner, __ATOMIC_RELAXED) == me, "owner did not claim");
	__atomic_store_n(&entered, 1, __ATOMIC_RELEASE);
	nanosleep(&ts, NULL);
	__atomic_store_n(&left, 1, __ATOMIC_RELAXED);
	shim_fast_leave(me);
	shim_reader_release();
	return NULL;
}

static void start_owner(pthread_t *t)
{
	__atomic_store_n(&entered, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&left, 0, __ATOMIC_RELAXED);
	CHECK(pthread_create(t, NULL, owner_thread, NULL) == 0, "thread");
	while (!__atomic_load_n(&entered, __ATOMIC_ACQUIRE))
		sched_yield();
}

int main(void)
{
	int never = 0;
	pthread_t t;

	shim_fast_init();
	shim_reader_register();

	/* A second thread takes the guard while the owner is inside. */
	shim_guard_init(&g);
	start_owner(&t);
	shim_guard_lock(&g);
	CHECK(__atomic_load_n(&left, __ATOMIC_RELAXED) == 1,
	      "shim_guard_lock returned while the owner was in its fast section");
	CHECK(g.owner == NULL && g.shared == 1, "ownership not ended for good");
	shim_guard_claim(&g, &never);
	CHECK(g.owner == NULL, "a shared direction was claimed again");
	pthread_mutex_unlock(&g.lock);
	pthread_join(t, NULL);

	/* close(): shim_fast_sync() waits for a section entered before it. */
	shim_guard_init(&g);
	start_owner(&t);
	shim_fast_sync();
	CHECK(__atomic_load_n(&left, __ATOMIC_RELAXED) == 1,
	      "shim_fast_sync returned while a reader was in its fast section");
	pthread_join(t, NULL);

	/* fork: never claimed once shared with another process; revoke. */
	shim_guard_init(&g);
	never = 1;
	pthread_mutex_lock(&g.lock);
	shim_guard_claim(&g, &never);
	pthread_mutex_unlock(&g.lock);
	CHECK(g.owner == NULL, "claimed a direction shared over fork");
	never = 0;
	pthread_mutex_lock(&g.lock);
	shim_guard_claim(&g, &never);
	pthread_mutex_unlock(&g.lock);
	CHECK(g.owner == shim_self_reader, "claim failed");
	shim_guard_revoke(&g, &never);
	CHECK(g.owner == NULL && never == 1, "revoke left the owner");
	printf("guards and fast sections: ok\n");
	return 0;
}
