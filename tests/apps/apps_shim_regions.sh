#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The shim in several regions (issue 13, item 2): two ivlinkd, r1 and r2;
# host processes under ivlink-run, A in both (IVLINK_ENDPOINT is a list),
# B only in r1, C only in r2. With tcp_pair (bytes checked by checksum):
#  1. A listens, B connects: accelerated through r1 (A's listener is in r1);
#  2. A listens, C connects: accelerated through r2 (A's listener is
#     published in its second region too);
#  3. C listens, A connects: accelerated through r2 (A looks in each of
#     its regions, not only the first);
#  4. C listens, B connects: plain TCP; B counts no-shared-region in r1
#     (C's port carries the host-local listener mark), C peer-no-shim in r2
#     (a loopback client: the server cannot tell);
#  5. nginx (master + 2 workers) with A's list, curl from B and from C:
#     each accelerated by a worker in the client's region (REDIRECT there).
# After each step the ring bytes are in that step's region's
# `ivlinkctl status --json` only, never in the other one (counted per
# process: a new peer may take a gone one's id, and its counters restart).
. "$(dirname "$0")/lib.sh"
need python3 nginx curl sha256sum
BYTES=200000

for r in r1 r2; do
	"$IVLINKD" -F -S "$T/$r.sock" -l 64M -n 8 --max-peers 16 --name "$r" --log-level=warn \
		>"$T/ivlinkd-$r.log" 2>&1 &
	ts_bg $!
done
for r in r1 r2; do
	for _ in $(seq 100); do
		[ -S "$T/$r.sock" ] && break
		sleep 0.05
	done
	[ -S "$T/$r.sock" ] || fail "ivlinkd $r did not start"
done
EA="host:$T/r1.sock,host:$T/r2.sock" EB="host:$T/r1.sock" EC="host:$T/r2.sock"
unset IVLINK_ENDPOINT IVLINK_ENDPOINTS

# rstat REGION PID FIELD: a shim counter (or reason) of PID's peer in REGION.
rstat() {
	"$IVLINKCTL" status --socket "$T/$1.sock" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
pid, field = int(sys.argv[1]), sys.argv[2]
ids = [p["id"] for p in d["peers"] if p["pid"] == pid]
print(sum(p["reasons"].get(field, 0) if field not in p else p[field]
          for p in d["shim"]["peers"] if p["id"] in ids))' "$2" "$3"
}

# rtotal REGION FIELD: a shim counter summed over REGION's peers.
rtotal() {
	"$IVLINKCTL" status --socket "$T/$1.sock" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
f = sys.argv[1]
print(sum(p.get(f, p["reasons"].get(f, 0)) for p in d["shim"]["peers"]))' "$2"
}

# pair NAME SRV_ENDPOINT CLI_ENDPOINT: a tcp_pair server and client under
# the shim; sets SPID, CPID and OUT (the client's "OK bytes cksum").
pair() {
	local p
	p=$(free_port)
	IVLINK_ENDPOINT=$2 bg "$1-srv" shim "$APPS_BIN/tcp_pair" server "$p" 0
	SPID=$LASTPID
	wait_listen "$p" "$SPID"
	IVLINK_ENDPOINT=$3 bg "$1-cli" shim "$APPS_BIN/tcp_pair" client "$p" $BYTES
	CPID=$LASTPID
	wait "$CPID" || fail "$1: client failed"
	wait "$SPID" || fail "$1: server failed"
	OUT=$(cat "$T/$1-cli.log")
	expect_eq "$1: bytes through and checked" "$(echo "$OUT" | grep '^OK' | cut -d' ' -f2)" $BYTES
}

# accel_in NAME REGION OTHER: the pair's two peers accelerated in REGION,
# its bytes there, and no bytes of them in OTHER.
accel_in() {
	expect_eq "$1: server accelerated in $2" "$(rstat "$2" "$SPID" accelerated)" 1
	expect_eq "$1: client accelerated in $2" "$(rstat "$2" "$CPID" accelerated)" 1
	expect_ge "$1: server's ring rx bytes in $2" "$(rstat "$2" "$SPID" rx_bytes)" $BYTES
	expect_ge "$1: client's ring tx bytes in $2" "$(rstat "$2" "$CPID" tx_bytes)" $BYTES
	expect_eq "$1: ring bytes of the pair in $3" \
		"$(($(rstat "$3" "$SPID" rx_bytes) + $(rstat "$3" "$SPID" tx_bytes) +
			$(rstat "$3" "$CPID" rx_bytes) + $(rstat "$3" "$CPID" tx_bytes)))" 0
	expect_eq "$1: fallbacks in $2" "$(rtotal "$2" fallbacks)" 0
}

pair ab "$EA" "$EB"
accel_in ab r1 r2
pair ac "$EA" "$EC"
accel_in ac r2 r1
pair ca "$EC" "$EA"
accel_in ca r2 r1
ref=$(echo "$OUT" | cut -d' ' -f3)

pair bc "$EC" "$EB"
expect_eq "bc: same stream as through the rings" "$(echo "$OUT" | cut -d' ' -f3)" "$ref"
expect_eq "bc: client (B) counted no-shared-region in r1" "$(rstat r1 "$CPID" no-shared-region)" 1
expect_eq "bc: client (B) accelerated nothing" "$(rstat r1 "$CPID" accelerated)" 0
expect_eq "bc: server (C) counted peer-no-shim in r2" "$(rstat r2 "$SPID" peer-no-shim)" 1
expect_eq "bc: server (C) accelerated nothing" "$(rstat r2 "$SPID" accelerated)" 0
for r in r1 r2; do
	expect_eq "bc: ring bytes of the pair in $r" \
		"$(($(rstat $r "$SPID" rx_bytes) + $(rstat $r "$SPID" tx_bytes) +
			$(rstat $r "$CPID" rx_bytes) + $(rstat $r "$CPID" tx_bytes)))" 0
done

# 5. A pre-fork server in both regions (nginx: master + 2 workers, A's
#    list): a worker accepts as a peer of its own in the region of the
#    proposal, and redirects the client there, b's in r1, c's in r2.
P=$(free_port)
nginx_conf "$P" 64
head -c 1M /dev/urandom >"$T/www/1m.bin"
chmod 644 "$T/www/1m.bin"
IVLINK_ENDPOINT=$EA bg nginx shim nginx -c "$T/nginx.conf" -p "$T"
M=$LASTPID
wait_listen "$P" "$M"
nginx_workers "$M"
want=$(sha256sum <"$T/www/1m.bin" | cut -d' ' -f1)
for who in b c; do
	if [ $who = b ]; then e=$EB r=r1; else e=$EC r=r2; fi
	IVLINK_ENDPOINT=$e timeout 30 "$IVLRUN" curl -sf -o "$T/got-$who" "http://127.0.0.1:$P/1m.bin" ||
		fail "curl from $who"
	expect_eq "nginx: $who's 1 MiB (sha256)" "$(sha256sum <"$T/got-$who" | cut -d' ' -f1)" "$want"
	acc=0 tx=0
	for w in "${workers[@]}"; do
		acc=$((acc + $(rstat $r "$w" accelerated)))
		tx=$((tx + $(rstat $r "$w" tx_bytes)))
	done
	expect_eq "nginx: connections the workers accelerated in $r" "$acc" 1
	expect_ge "nginx: response bytes the workers wrote into $r's rings" "$tx" 1048576
	expect_eq "nginx: connections the master accelerated in $r" "$(rstat $r "$M" accelerated)" 0
done
echo PASS
