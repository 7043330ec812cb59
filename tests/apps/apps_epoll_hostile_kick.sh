#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A hostile peer's kick lists against an epoll server and client under the
# shim. evil_peer (tests/reliability) joins the region and writes garbage
# into its own kick lists for every peer, all the time: tails near, behind
# and far from where they were, entries with right-looking and wrong tags
# naming random slots, and doorbell storms so that the victims read them.
# The victims' epoll_wait reads every peer's list for it (layout v4): an
# entry may only cost a look at a connection, a list that looks wrong a
# look at all of them. Checked: ivlink-conn-scale's client (300 idle and 4
# active connections in one epoll set, both ends under the shim) gets every
# byte back (3,000 rounds and a round trip on every idle connection, all
# checked), nothing fell back to TCP, both victims counted full scans (they
# did read the garbage), and evil_peer was still attacking at the end.
. "$(dirname "$0")/lib.sh"
need python3
EVIL=$BUILD/tests/reliability/evil_peer
[ -x "$EVIL" ] || fail "$EVIL not built"
N=300
K=4
ROUNDS=3000
SIZE=100
daemon_start -l 64M --max-peers 8 --chan-slots 1024
"$EVIL" --uri "$IVLINK_ENDPOINT" --name evil --seed 7 --scope own --mode kick --ms 600000 \
	>"$T/evil.log" 2>&1 &
EV=$!
ts_bg "$EV"
for _ in $(seq 100); do
	grep -q '^evil: peer' "$T/evil.log" && break
	kill -0 "$EV" 2>/dev/null || fail "evil_peer exited: $(cat "$T/evil.log")"
	sleep 0.1
done
grep -q '^evil: peer' "$T/evil.log" || fail "evil_peer did not join"
export IVLINK_RING_SIZE=4096 IVLINK_EPOLL_STATS=$T/epoll-stats
bg server shim "$BUILD/bench/ivlink-conn-scale" server
S=$LASTPID
for _ in $(seq 100); do
	P=$(awk '$1 == "port" {print $2}' "$T/server.log")
	[ -n "$P" ] && break
	kill -0 "$S" 2>/dev/null || fail "ivlink-conn-scale server exited"
	sleep 0.1
done
[ -n "$P" ] || fail "the server printed no port"
timeout 300 "$IVLRUN" "$BUILD/bench/ivlink-conn-scale" client -p "$P" -n "$N" -k "$K" \
	-r "$ROUNDS" -s "$SIZE" >"$T/client.log" 2>&1 || fail "ivlink-conn-scale client failed: $(tail -3 "$T/client.log")"
cat "$T/client.log"
checked=$(awk '{for (i = 1; i < NF; i++) if ($i == "checked") print $(i + 1)}' "$T/client.log")
expect_eq "bytes echoed and checked" "$checked" $((K * ROUNDS * SIZE + N * 8))
expect_eq "fallbacks (client and server)" "$(shim_total fallbacks)" 0
kill -0 "$EV" 2>/dev/null || fail "evil_peer stopped before the end"
kill -0 "$S" 2>/dev/null || fail "the server died"
kill "$S"
for _ in $(seq 100); do
	[ "$(grep -c '^pid ' "$T/epoll-stats" 2>/dev/null)" -ge 2 ] && break
	sleep 0.1
done
cat "$T/epoll-stats"
fulls=$(awk '{for (i = 1; i < NF; i++) if ($i == "full") print $(i + 1)}' "$T/epoll-stats")
[ "$(echo "$fulls" | wc -l)" -ge 2 ] || fail "not both ends wrote their epoll counters"
for f in $fulls; do
	expect_ge "full scans of a victim (garbage read)" "$f" 10
done
echo PASS
