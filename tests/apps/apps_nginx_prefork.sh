#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# nginx as it runs by default: a master and 2 forked workers
# (master_process on), both ends under the shim. Its clients join the
# region after the workers forked. Checked: curl gets a 1 KiB and a 1 MiB
# file byte for byte (sha256), wrk keep-alive for 2 s with no socket error
# and no non-2xx answer, and idle workers use no CPU: they used to spin at
# 100% for ever, woken by the master's daemon connection, which only the
# master reads (ivl__ep_fork_child). And those connections are
# accelerated: a worker accepts as a peer of its own and redirects the
# client there (layout.h, rendezvous step 5); before, it could not ring
# peers that joined after the fork and kept them on TCP (peer-stale).
. "$(dirname "$0")/lib.sh"
need nginx curl wrk sha256sum
daemon_start
P=$(free_port)
nginx_conf "$P" 1024
head -c 1024 /dev/urandom >"$T/www/1k.bin"
head -c 1M /dev/urandom >"$T/www/1m.bin"
chmod 644 "$T/www/"*.bin
bg nginx shim nginx -c "$T/nginx.conf" -p "$T"
M=$LASTPID
wait_port "$P"
nginx_workers "$M"

for f in 1k.bin 1m.bin; do
	timeout 30 "$IVLRUN" curl -sf -o "$T/got" "http://127.0.0.1:$P/$f" || fail "curl $f"
	expect_eq "sha256 of $f" "$(sha256sum <"$T/got" | cut -d' ' -f1)" \
		"$(sha256sum <"$T/www/$f" | cut -d' ' -f1)"
done
timeout 60 "$IVLRUN" wrk -t1 -c16 -d2s "http://127.0.0.1:$P/1k.bin" >"$T/wrk.log" 2>&1 || fail "wrk exit $?"
grep -q "Socket errors" "$T/wrk.log" && fail "wrk: $(grep 'Socket errors' "$T/wrk.log")"
grep -q "Non-2xx" "$T/wrk.log" && fail "wrk: $(grep 'Non-2xx' "$T/wrk.log")"
n=$(awk '/requests in/ {print $1}' "$T/wrk.log")
expect_ge "wrk keep-alive requests" "${n:-0}" 1000

# Every connection (2 curl, 16 wrk) was accelerated, by the workers, each
# attached as a peer of its own; and the bytes went through the rings.
acc=0 rx=0 tx=0
for w in "${workers[@]}"; do
	acc=$((acc + $(peer_stat "$w" accelerated)))
	rx=$((rx + $(peer_stat "$w" rx_bytes)))
	tx=$((tx + $(peer_stat "$w" tx_bytes)))
done
expect_eq "connections the master accelerated itself" "$(peer_stat "$M" accelerated)" 0
expect_ge "connections the workers accelerated" "$acc" 18
expect_ge "request bytes the workers read from the rings" "$rx" 100000
expect_ge "response bytes the workers wrote into the rings" "$tx" $((1024 * 1000 + 1048576))
# What may stay on TCP: wait_port's probe (no shim) and the connection
# wrk opens and closes at start (withdrawn); nothing for want of a
# doorbell or an answer.
for r in peer-stale declined timeout; do
	expect_eq "connections that fell back ($r)" "$(shim_total "$r")" 0
done

# Idle: CPU ticks (utime + stime) of each worker over 2 s. A spinning
# worker takes ~200 here (100% of a CPU); a sleeping one 0.
sleep 0.5
for w in "${workers[@]}"; do
	a=$(awk '{print $14 + $15}' "/proc/$w/stat")
	sleep 2
	b=$(awk '{print $14 + $15}' "/proc/$w/stat")
	[ $((b - a)) -le 10 ] || fail "idle worker $w used $((b - a)) ticks in 2 s (spinning)"
	echo "ok: idle worker $w used $((b - a)) CPU ticks in 2 s"
done
echo PASS
