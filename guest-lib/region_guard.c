/* SPDX-License-Identifier: MIT */
/* Region guard: see region_guard.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "region_guard.h"

#define GUARD_SLOTS 32

/* Written by add/remove, read by the handler: every field atomically, base
 * last on add and first on remove, so the handler never sees a half-made
 * slot. */
struct guard_slot {
	uintptr_t base;
	uint64_t size;
	int fd;
	int broken;
	uint64_t faults;
};

static struct guard_slot slots[GUARD_SLOTS];
static struct sigaction prev;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_err;

/* The handler before ours, for faults that are not ours. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	if (prev.sa_flags & SA_SIGINFO) {
		prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
		prev.sa_handler(sig);
		return;
	}
	/* Default action: returning re-executes the access, which faults
	 * again and now kills the process as it would have without us. */
	signal(sig, SIG_DFL);
}

/* Async-signal-safe: atomics, ftruncate(2) and mmap(2) only. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	int saved = errno;

	for (int i = 0; i < GUARD_SLOTS; i++) {
		struct guard_slot *s = &slots[i];
		uintptr_t b = __atomic_load_n(&s->base, __ATOMIC_ACQUIRE);
		uint64_t n = __atomic_load_n(&s->size, __ATOMIC_RELAXED);
		int fd = __atomic_load_n(&s->fd, __ATOMIC_RELAXED);

		if (!b || a < b || a - b >= n)
			continue;
		__atomic_fetch_add(&s->faults, 1, __ATOMIC_RELAXED);
		if (fd >= 0 && ftruncate(fd, (off_t)n) == 0) {
			errno = saved;
			return;
		}
		if (mmap((void *)b, (size_t)n, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
			__atomic_store_n(&s->broken, 1, __ATOMIC_RELEASE);
			errno = saved;
			return;
		}
		break;
	}
	errno = saved;
	chain(sig, si, uc);
}

static void install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &prev) < 0)
		install_err = -errno;
}

static struct guard_slot *find(const void *base)
{
	for (int i = 0; i < GUARD_SLOTS; i++)
		if (base && __atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE) == (uintptr_t)base)
			return &slots[i];
	return NULL;
}

int ivl__guard_add(void *base, uint64_t size, int fd)
{
	pthread_once(&once, install);
	if (install_err)
		return install_err;
	for (int i = 0; i < GUARD_SLOTS; i++) {
		struct guard_slot *s = &slots[i];
		uintptr_t expect = 0;

		/* Claim with a marker no address has, fill, then publish. */
		if (!__atomic_compare_exchange_n(&s->base, &expect, (uintptr_t)1, 0,
						 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			continue;
		__atomic_store_n(&s->size, size, __ATOMIC_RELAXED);
		__atomic_store_n(&s->fd, fd, __ATOMIC_RELAXED);
		__atomic_store_n(&s->broken, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->faults, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&s->base, (uintptr_t)base, __ATOMIC_RELEASE);
		return 0;
	}
	return -ENOSPC;
}

void ivl__guard_remove(void *base)
{
	struct guard_slot *s = find(base);

	if (s)
		__atomic_store_n(&s->base, 0, __ATOMIC_RELEASE);
}

uint64_t ivl__guard_faults(const void *base)
{
	struct guard_slot *s = find(base);

	return s ? __atomic_load_n(&s->faults, __ATOMIC_RELAXED) : 0;
}

int ivl__guard_broken(const void *base)
{
	struct guard_slot *s = find(base);

	return s ? __atomic_load_n(&s->broken, __ATOMIC_ACQUIRE) : 0;
}
