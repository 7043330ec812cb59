#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A multi-threaded server under the shim: memcached -t 4 (libevent, one
# epoll set per worker thread, connections handed from the listener thread
# to the workers) and a client of 8 threads, one connection each, checking
# every answer (mc_client.py); both ends under the shim, then both plain
# for comparison. The region must show the connections in the rings; then
# memcslap (libmemcached-tools) loads the shimmed server with 8 concurrent
# connections.
. "$(dirname "$0")/lib.sh"
need memcached memcslap python3
# The test counts accelerated connections. Under a full suite's load the
# default 1 s rendezvous deadline can lapse and a connection then rightly
# stays on TCP (reason "timeout", which apps_fallback checks); that is not
# what this test is about, so it gives the rendezvous ample time.
export IVLINK_ACCEPT_TIMEOUT_MS=15000
daemon_start
HERE=$(cd "$(dirname "$0")" && pwd)
PS=$(free_port)
PP=$(free_port)
bg mc-shim shim memcached -u root -l 127.0.0.1 -p "$PS" -U 0 -t 4 -m 64
MS=$LASTPID
bg mc-plain memcached -u root -l 127.0.0.1 -p "$PP" -U 0 -t 4 -m 64
wait_port "$PS"
wait_port "$PP"

out=$(timeout 120 "$IVLRUN" python3 "$HERE/mc_client.py" "$PS" 8 400) || fail "client under the shim: $out"
echo "ok: shim: $out"
plain=$(timeout 120 python3 "$HERE/mc_client.py" "$PP" 8 400) || fail "client over TCP: $plain"
echo "ok: plain: $plain"
expect_eq "same operations and bytes checked" "$out" "$plain"
expect_ge "memcached accelerated connections" "$(peer_stat "$MS" accelerated)" 8
expect_ge "memcached bytes received through the rings" "$(peer_stat "$MS" rx_bytes)" 1000000

timeout 120 "$IVLRUN" memcslap --servers="127.0.0.1:$PS" --concurrency=8 --execute-number=500 \
	>"$T/slap.log" 2>&1 || { cat "$T/slap.log"; fail "memcslap under the shim"; }
echo "ok: memcslap under the shim: $(grep -i 'took' "$T/slap.log" | head -n1)"
expect_ge "memcached accelerated connections (with memcslap)" "$(peer_stat "$MS" accelerated)" 16
echo PASS
