#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Smoke test of shim-bench (label apps): a tiny run must print every row
# with a positive figure for the shim and for plain TCP, and a ratio. No
# figure is judged (a shared CI machine must not fail on speed).
# Usage: check_shim_bench.sh SHIM-BENCH BUILD-DIR
set -u
# A missing program fails the test by name (a skip would prove nothing; make
# test installs them all).
for c in redis-server redis-benchmark memcached memcslap python3 nginx wrk; do
	command -v "$c" >/dev/null || { echo "FAIL: command '$c' not found (scripts/ivl-deps apps)"; exit 1; }
done
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 ||
	{ echo "FAIL: PostgreSQL's pgbench not found (scripts/ivl-deps apps)"; exit 1; }
out=$(N=500 REQS=2000 REPEAT=1 MEMC_OPS=200 DUR=1 CONN_NS="1 100" CONN_ROUNDS=300 \
	timeout 280 bash "$1" "$2" 2>&1) || { echo "$out"; echo "FAIL: shim-bench exited non-zero"; exit 1; }
echo "$out"
fail=0
for row in "ping-pong 64 B p50" "ping-pong 64 B p99" "redis SET -P 1 " "redis GET -P 1 " \
	"redis SET -P 16" "redis GET -P 16" memcached "nginx+wrk 1 KiB" "nginx+wrk 1 MiB" \
	"pgbench -S" "pgbench TPC-B" "1 idle + 1 active" "100 idle + 1 active" "fallback TCP"; do
	line=$(grep -F "$row" <<<"$out" | head -n1)
	# measure words..., shim, plain, ratio, baseline: the last four fields.
	if ! awk '{ s = $(NF-3); t = $(NF-2); r = $(NF-1)
		exit !(s + 0 > 0 && t + 0 > 0 && r ~ /^[0-9.]+x$/) }' <<<"$line"; then
		echo "FAIL: row '$row': '$line'"
		fail=1
	fi
done
[ $fail = 0 ] && echo PASS
exit $fail
