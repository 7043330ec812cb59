/* SPDX-License-Identifier: MIT */
/*
 * The shim's fast sections: what lets an uncontended send()/recv() on an
 * accelerated connection run with no lock and no atomic read-modify-write
 * (shim.h, "Threads and the fd table").
 *
 * A fast section is a short, never blocking stretch of one thread: the fd
 * table lookup without a reference, and a ring write or read by the
 * direction's owner without its mutex. Each thread has a reader record
 * whose seq is odd while the thread is inside one. Entering is a plain
 * store of an odd seq followed by a compiler barrier; the store-load
 * ordering the scheme needs (the entry's seq store before its loads of the
 * fd table and of the owner word) is supplied by the other side, which
 * calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): that runs a full
 * barrier on every running thread of the process, so a reader either has
 * its odd seq visible to the waiter or performs its loads after the
 * waiter's stores (liburcu's memb flavour uses the same argument). Where
 * the kernel has no such membarrier, readers execute a full fence instead.
 * Leaving is a release store of the next (even) seq; a waiter's acquire
 * load of it orders everything the reader did before any later use.
 *
 * Two waits use it:
 *  - shim_fast_sync() after an fd's object left the table (close, dup2
 *    over it): every reader that may have found the object before the
 *    removal leaves its section before the table's reference is dropped,
 *    so a fast section never sees its connection freed. New sections
 *    cannot find it any more.
 *  - shim_guard_lock() by a thread that is not a direction's owner: it
 *    clears the owner word, marks the direction shared (the mutex is used
 *    from then on, ownership is never handed out again) and waits for the
 *    owner's current section to end. After that the owner finds it is no
 *    longer the owner and takes the mutex like everyone.
 */
#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"
#include "os.h"

static pthread_mutex_t readers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_reader *readers; /* every record ever made, never freed */
static int have_membarrier;
int shim_fast_fence = 1; /* readers fence: no expedited membarrier */

__thread struct shim_reader *shim_self_reader __attribute__((tls_model("initial-exec")));

static int membarrier(int cmd)
{
	return (int)syscall(__NR_membarrier, cmd, 0, 0);
}

void shim_fast_init(void)
{
#if !defined(__SANITIZE_THREAD__)
	/* TSan does not model membarrier: its builds keep the fence. */
	if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0) {
		have_membarrier = 1;
		shim_fast_fence = 0;
	}
#endif
}

struct shim_reader *shim_reader_register(void)
{
	struct shim_reader *r;

	pthread_mutex_lock(&readers_lock);
	for (r = readers; r; r = r->next)
		if (r->free)
			break;
	if (!r) {
		/* A line of its own (the struct's alignment): calloc's 16 are
		 * not enough. */
		r = aligned_alloc(_Alignof(struct shim_reader), sizeof(*r));
		if (r) {
			memset(r, 0, sizeof(*r));
			r->next = readers;
			readers = r;
		}
	}
	if (r)
		r->free = 0;
	pthread_mutex_unlock(&readers_lock);
	shim_self_reader = r;
	return r;
}

/* At thread exit (core.c's key destructor): the record goes back to the
 * pool. A direction this thread owned keeps pointing at it; whichever
 * thread takes the record next inherits that ownership, which is safe, as
 * ownership is about one user at a time, not about which one (the pool's
 * mutex orders the two threads' uses). */
void shim_reader_release(void)
{
	struct shim_reader *r = shim_self_reader;

	if (!r)
		return;
	shim_self_reader = NULL;
	pthread_mutex_lock(&readers_lock);
	r->free = 1;
	pthread_mutex_unlock(&readers_lock);
}

/* The store-load barrier the readers skip. */
static void barrier_all(void)
{
	if (have_membarrier && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		return;
	ivl__full_fence();
}

/* Waits until r is outside the section it may be in now. */
static void wait_reader(struct shim_reader *r)
{
	uint64_t s = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);

	if (!(s & 1))
		return;
	while (__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE) == s)
		ivl__cpu_relax();
}

void shim_fast_sync(void)
{
	struct shim_reader *me = shim_self_reader;

	barrier_all();
	pthread_mutex_lock(&readers_lock);
	for (struct shim_reader *r = readers; r; r = r->next)
		if (r != me)
			wait_reader(r);
	pthread_mutex_unlock(&readers_lock);
}

void shim_fast_fork_child(void)
{
	/* Only this thread survived: the others' records are free now, and
	 * none of them is inside a section any more. */
	for (struct shim_reader *r = readers; r; r = r->next) {
		if (r == shim_self_reader)
			continue;
		r->seq = (r->seq + 1) & ~1ull;
		r->free = 1;
	}
	pthread_mutex_init(&readers_lock, NULL);
}

/* ------------------------------------------------------------ guards */

void shim_guard_init(struct shim_guard *g)
{
	pthread_mutex_init(&g->lock, NULL);
	g->owner = NULL;
	g->shared = 0;
}

void shim_guard_lock(struct shim_guard *g)
{
	struct shim_reader *owner, *me = shim_self_reader;

	pthread_mutex_lock(&g->lock);
	owner = __atomic_load_n(&g->owner, __ATOMIC_RELAXED);
	if (!owner || owner == me)
		return;
	/* Another thread owns the direction: revoke for good, and wait for
	 * the section it may be in to end (file comment). */
	__atomic_store_n(&g->owner, NULL, __ATOMIC_RELAXED);
	g->shared = 1;
	barrier_all();
	wait_reader(owner);
}

void shim_guard_claim(struct shim_guard *g, const int *never)
{
	struct shim_reader *me = shim_self_reader ? shim_self_reader : shim_reader_register();
	struct shim_reader *none = NULL;

	if (!me || g->shared || __atomic_load_n(never, __ATOMIC_SEQ_CST))
		return;
	/* A CAS, then never read again: a fork (shim_guard_revoke) sets
	 * *never and then exchanges the owner away, all sequentially
	 * consistent, so either we see *never and undo, or its exchange comes
	 * after ours and takes the ownership back. */
	if (__atomic_compare_exchange_n(&g->owner, &none, me, 0, __ATOMIC_SEQ_CST,
					__ATOMIC_RELAXED) &&
	    __atomic_load_n(never, __ATOMIC_SEQ_CST))
		__atomic_store_n(&g->owner, NULL, __ATOMIC_SEQ_CST);
}

void shim_guard_revoke(struct shim_guard *g, int *never)
{
	struct shim_reader *owner;

	__atomic_store_n(never, 1, __ATOMIC_SEQ_CST);
	owner = __atomic_exchange_n(&g->owner, NULL, __ATOMIC_SEQ_CST);
	if (owner && owner != shim_self_reader) {
		barrier_all();
		wait_reader(owner);
	}
}
