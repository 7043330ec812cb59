#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# redis-server and its clients, both under the shim: redis-cli round trips
# give the same answers as over plain TCP, redis-benchmark (GET/SET, and
# pipelined -P 16) completes, and the region shows the connections went
# through the rings.
. "$(dirname "$0")/lib.sh"
need redis-server redis-cli redis-benchmark python3
daemon_start
PS=$(free_port)
PP=$(free_port)
bg redis-shim shim redis-server --port "$PS" --bind 127.0.0.1 --save '' --appendonly no
RS=$LASTPID
bg redis-plain redis-server --port "$PP" --bind 127.0.0.1 --save '' --appendonly no
wait_port "$PS"
wait_port "$PP"

cli_session() { # PORT [shim]
	local run=()
	[ "${2:-}" = shim ] && run=("$IVLRUN")
	for i in 1 2 3 4 5; do
		"${run[@]}" redis-cli -p "$1" set "key$i" "value-$i-$(printf 'x%.0s' $(seq $((i * 50))))"
		"${run[@]}" redis-cli -p "$1" incrby counter "$i"
		"${run[@]}" redis-cli -p "$1" get "key$i"
	done
	"${run[@]}" redis-cli -p "$1" --no-raw mget key1 key3 key5 nokey
	printf 'PING\r\nECHO hello\r\nDBSIZE\r\n' | "${run[@]}" redis-cli -p "$1"
}
cli_session "$PS" shim >"$T/cli-shim.out" 2>&1 || fail "redis-cli under the shim failed"
cli_session "$PP" >"$T/cli-plain.out" 2>&1 || fail "redis-cli over TCP failed"
cmp -s "$T/cli-shim.out" "$T/cli-plain.out" || { diff "$T/cli-shim.out" "$T/cli-plain.out" | head; fail "redis-cli answers differ"; }
echo "ok: redis-cli round trips identical ($(wc -l <"$T/cli-shim.out") lines)"
expect_ge "redis-server accelerated connections (redis-cli)" "$(peer_stat "$RS" accelerated)" 17

for P in 1 16; do
	timeout 120 "$IVLRUN" redis-benchmark -p "$PS" -t get,set -n 20000 -P $P -q >"$T/bench-shim.log" 2>&1 ||
		fail "redis-benchmark -P $P under the shim failed"
	timeout 120 redis-benchmark -p "$PP" -t get,set -n 20000 -P $P -q >"$T/bench-plain.log" 2>&1 ||
		fail "redis-benchmark -P $P over TCP failed"
	for f in shim plain; do
		n=$(tr '\r' '\n' <"$T/bench-$f.log" | grep -c "requests per second")
		[ "$n" -eq 2 ] || fail "redis-benchmark -P $P ($f): $n result lines, expected 2"
		echo "ok: -P $P $f: $(tr '\r' '\n' <"$T/bench-$f.log" | grep 'requests per second' | tr '\n' ' ')"
	done
done
expect_ge "redis-server accelerated connections (all)" "$(peer_stat "$RS" accelerated)" 150
expect_ge "redis-server ring bytes received" "$(peer_stat "$RS" rx_bytes)" 1000000
# The plain redis-server got no shim connections at all. A benchmark that
# starts while the server has not yet closed the previous run's connections
# may find its section full: the server declines (region-full) and the
# client counts 'declined', one for one; nothing else may fall back.
expect_eq "shim fallbacks other than region-full/peer-no-shim (wait_port)" \
	"$(status_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = [(p["id"], k, v) for p in d["shim"]["peers"] for k, v in p["reasons"].items()
     if k not in ("no-listener", "peer-no-shim", "region-full")]
full = sum(p["reasons"].get("region-full", 0) for p in d["shim"]["peers"])
declined = sum(x[2] for x in r if x[1] == "declined")
print(sum(x[2] for x in r if x[1] != "declined") + max(0, declined - full))
print(r, "region-full", full, file=sys.stderr)')" 0
echo PASS
