#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 10,000 accelerated connections in one epoll set: ivlink-conn-scale's
# server (a level-triggered epoll echo server) and client (10,000 idle
# connections and 4 active ones in one epoll set), both under the shim.
# Checked: every connection is accelerated (none falls back), the active
# ones' 200 rounds of 1000 bytes and one 8-byte round trip on every idle
# connection come back byte for byte, and the shim's own descriptors do not
# grow with the connections: the server holds one socket per connection and
# a few fds of its own (it used to hold a doorbell fd per connection too,
# and at RLIMIT_NOFILE a doorbell it could not open was a lost wake-up).
# Ring size 4 KiB (80 MiB of rings per side); the client waits up to 60 s
# for the server's shim to accept, since the server's epoll_wait is still
# O(registered) (issue 12).
. "$(dirname "$0")/lib.sh"
need python3
N=10000
K=4
ROUNDS=200
SIZE=1000
daemon_start -l 512M --max-peers 4 --chan-slots 12288
export IVLINK_RING_SIZE=4096 IVLINK_ACCEPT_TIMEOUT_MS=60000
# Each end needs N + K sockets and the shim's fds: at least 2N + 64 allowed.
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge $((N + 200)) ] ||
	fail "hard RLIMIT_NOFILE $(ulimit -Hn) is below the $((N + 200)) descriptors the test needs"
bg server shim "$BUILD/bench/ivlink-conn-scale" server
S=$LASTPID
for _ in $(seq 100); do
	P=$(awk '$1 == "port" {print $2}' "$T/server.log")
	[ -n "$P" ] && break
	kill -0 "$S" 2>/dev/null || fail "ivlink-conn-scale server exited"
	sleep 0.1
done
[ -n "$P" ] || fail "the server printed no port"

# The server's descriptors, sampled while the client runs.
(
	max=0
	while kill -0 "$S" 2>/dev/null && [ ! -e "$T/client.done" ]; do
		n=$(find "/proc/$S/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		[ "$n" -gt "$max" ] && max=$n && echo "$max" >"$T/server-fds"
		sleep 0.2
	done
) &
ts_bg $!
timeout 600 "$IVLRUN" "$BUILD/bench/ivlink-conn-scale" client -p "$P" -n "$N" -k "$K" \
	-r "$ROUNDS" -s "$SIZE" >"$T/client.log" 2>&1 || fail "ivlink-conn-scale client failed"
touch "$T/client.done"
cat "$T/client.log"
checked=$(awk '{for (i = 1; i < NF; i++) if ($i == "checked") print $(i + 1)}' "$T/client.log")
expect_eq "bytes echoed and checked" "$checked" $((K * ROUNDS * SIZE + N * 8))
expect_ge "server accelerated connections" "$(peer_stat "$S" accelerated)" $((N + K))
expect_eq "fallbacks (client and server)" "$(shim_total fallbacks)" 0
fds=$(cat "$T/server-fds" 2>/dev/null || echo 0)
expect_ge "server descriptors seen (sampled)" "$fds" $((N + K))
[ "$fds" -le $((N + K + 64)) ] ||
	fail "the server held $fds descriptors for $((N + K)) connections: the shim's own grew with them"
echo "ok: server descriptors $fds for $((N + K)) connections"
echo PASS
