/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmarks (ivlink-ring-bench, ivlink-bench):
 * CPU time, percentiles, CPU pinning and whole-buffer socket I/O. Private to
 * bench/: not part of the library's API.
 *
 * Conventions as in the library: >= 0 on success, -errno on failure.
 */
#ifndef IVLINK_BENCH_COMMON_H
#define IVLINK_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The benchmarks' one clock is the library's: ivl__now_ns(), CLOCK_MONOTONIC
 * in nanoseconds; and ivl__cpu_relax() in spin loops. */
#include "os.h"

/* CPU time of the whole process (every thread), in nanoseconds: what one
 * end of a transport costs, spinning, copies and system calls included. */
int64_t bench_cpu_ns(void);

/* Sorts s[0..n-1] ascending. */
void bench_sort_i64(int64_t *s, size_t n);

/* Nearest-rank percentile (0 < p <= 1) of sorted s[0..n-1], n > 0: the
 * smallest sample with at least p of all samples at or below it. */
int64_t bench_pct(const int64_t *s, size_t n, double p);

/* Median of v[0..n-1], n > 0 (sorts v). */
double bench_median_dbl(double *v, size_t n);

/* Pins the calling thread to cpu; a negative cpu is a no-op. */
int bench_pin_to(int cpu);

/* send(2)/recv(2) of exactly len bytes, retrying on EINTR and short
 * transfers. recv returns -ECONNRESET at EOF before len bytes. */
int bench_send_all(int fd, const void *buf, size_t len);
int bench_recv_all(int fd, void *buf, size_t len);

#endif /* IVLINK_BENCH_COMMON_H */
