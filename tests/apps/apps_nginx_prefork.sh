#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# nginx as it runs by default: a master and 2 forked workers
# (master_process on), both ends under the shim. Its clients join the
# region after the workers forked. Checked: curl gets a 1 KiB and a 1 MiB
# file byte for byte (sha256), wrk keep-alive for 2 s with no socket error
# and no non-2xx answer, and idle workers use no CPU: they used to spin at
# 100% for ever, woken by the master's daemon connection, which only the
# master reads (ivl__ep_fork_child). Not yet checked, because not yet
# done: acceleration of those connections (the workers cannot ring peers
# that joined after the fork, so the shim keeps them on TCP: fallback
# peer-stale; issue 12).
. "$(dirname "$0")/lib.sh"
need nginx curl wrk sha256sum
daemon_start
mkdir -p "$T/www" "$T/logs"
chmod 755 "$T" "$T/www"
head -c 1024 /dev/urandom >"$T/www/1k.bin"
head -c 1M /dev/urandom >"$T/www/1m.bin"
chmod 644 "$T/www/"*.bin
P=$(free_port)
cat >"$T/nginx.conf" <<CONF
user root;
worker_processes 2;
daemon off;
master_process on;
pid $T/nginx.pid;
error_log $T/logs/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	server { listen 127.0.0.1:$P; root $T/www; keepalive_requests 100000; }
}
CONF
bg nginx shim nginx -c "$T/nginx.conf" -p "$T"
M=$LASTPID
wait_port "$P"
workers=()
for _ in $(seq 50); do
	mapfile -t workers < <(awk -v m="$M" '$4 == m {print $1}' /proc/[0-9]*/stat 2>/dev/null)
	[ ${#workers[@]} -ge 2 ] && break
	sleep 0.1
done
expect_eq "nginx workers" "${#workers[@]}" 2

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
