/* SPDX-License-Identifier: MIT */
/* Private header of transport/: the few OS and CPU services the core uses. */
#ifndef IVLINK_TRANSPORT_OS_H
#define IVLINK_TRANSPORT_OS_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds (vDSO, no system call on Linux). */
static inline int64_t ivl__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wall-clock nanoseconds since the Epoch, for timestamps people read (the
 * region's created/left times, ivlinkctl's snapshots); never for intervals,
 * which use ivl__now_ns(): the wall clock may jump. */
static inline int64_t ivl__realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Tells the CPU we are spinning: saves power and lets a sibling hyperthread
 * (or, under TCG and KVM, the host) run. */
static inline void ivl__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#else
	__asm__ volatile("" ::: "memory");
#endif
}

/*
 * A full memory barrier. GCC's ThreadSanitizer does not model standalone
 * fences and refuses them (-Wtsan, an error with -Werror), so TSan builds use
 * a sequentially consistent read-modify-write instead: a locked instruction
 * on x86 and a full barrier on arm64, hence the same hardware ordering. The
 * word is private to this process and written only here.
 */
#if defined(__SANITIZE_THREAD__)
extern int ivl__fence_word;
#define IVL__FENCE_WORD_DEFINE int ivl__fence_word;
static inline void ivl__full_fence(void)
{
	__atomic_fetch_add(&ivl__fence_word, 0, __ATOMIC_SEQ_CST);
}
#else
#define IVL__FENCE_WORD_DEFINE
static inline void ivl__full_fence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}
#endif

#endif /* IVLINK_TRANSPORT_OS_H */
