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

#endif /* IVLINK_TRANSPORT_OS_H */
