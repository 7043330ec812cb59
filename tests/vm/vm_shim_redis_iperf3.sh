#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The socket shim across the two guests (issue 5, label vm): unmodified
# Debian programs under libivlink-preload.so, West client, East server,
# each guest one peer through ivlink-guestd (several processes per guest):
#  - redis-server under the shim in East; redis-benchmark (-n 2000 -c 4,
#    GET/SET) and redis-cli round trips under the shim in West;
#  - iperf3 -s under the shim in East, iperf3 -c -t 2 under the shim in West,
#    both directions (-R: East sends);
#  - the same runs against a plain redis-server / iperf3 -s over the guests'
#    virtio-net link, for comparison and for identical redis-cli answers.
# The guests cannot reach the daemon's socket, so this host script polls
# `ivlinkctl status --json` while they run and checks the shim counters of
# the peers: accelerated connections and ring bytes, i.e. the data went
# through the rings.
#
# Usage: vm_shim_redis_iperf3.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init shim "$@"
PRELOAD=$BUILD/guest-lib/preload/libivlink-preload.so
IVLINKCTL=$BUILD/host-daemon/ivlinkctl
[ -e "$PRELOAD" ] || { echo "[shim] FAIL: the shim is not built (liburcu-dev: scripts/ivl-deps build)"; exit 1; }
[ -x "$IVLINKCTL" ] || { echo "[shim] FAIL: $IVLINKCTL not built"; exit 1; }
bins=()
for p in redis-server redis-benchmark redis-cli iperf3; do
	command -v $p >/dev/null || { echo "[shim] FAIL: command '$p' not found (scripts/ivl-deps apps)"; exit 1; }
	bins+=(--bin "$(command -v $p)")
done
bins+=(--bin "$PRELOAD:/usr/local/lib/libivlink-preload.so")
vmt_daemon 8

SHIM='env LD_PRELOAD=/usr/local/lib/libivlink-preload.so'
cat >"$tmp/east.sh" <<EOS
ivlink-guestd -b || exit 1
$SHIM iperf3 -s -p 5201 >/tmp/is.log 2>&1 &
iperf3 -s -p 5202 >/tmp/ip.log 2>&1 &
# West starts once redis answers: by then both iperf3 servers listen.
for i in \$(seq 100); do
	[ "\$(cat /proc/net/tcp /proc/net/tcp6 | grep -c ':145[12] 0\+:0000 0A')" -ge 2 ] && break
	sleep 0.1
done
$SHIM redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no >/tmp/rs.log 2>&1 &
redis-server --port 6380 --bind 0.0.0.0 --protected-mode no --save '' --appendonly no >/tmp/rp.log 2>&1 &
echo "east: servers up"
# West says when it is done (a key in the plain redis-server).
for i in \$(seq 600); do
	[ "\$(redis-cli -p 6380 get west-done 2>/dev/null)" = 1 ] && break
	sleep 0.2
done
echo "east: done"
EOS
cat >"$tmp/west.sh" <<EOS
ivlink-guestd -b || exit 1
for i in \$(seq 300); do
	redis-cli -h 192.0.2.2 -p 6380 ping 2>/dev/null | grep -q PONG &&
		redis-cli -h 192.0.2.2 -p 6379 ping 2>/dev/null | grep -q PONG && break
	sleep 0.2
done
fail=0
cli() { # port [shim]
	for i in 1 2 3; do
		\$2 redis-cli -h 192.0.2.2 -p \$1 set key\$i value-\$i
		\$2 redis-cli -h 192.0.2.2 -p \$1 incrby counter \$i
		\$2 redis-cli -h 192.0.2.2 -p \$1 get key\$i
	done
	\$2 redis-cli -h 192.0.2.2 -p \$1 mget key1 key3 nokey
}
cli 6379 "$SHIM" >/tmp/cli-shim.out 2>&1 || fail=1
cli 6380 >/tmp/cli-plain.out 2>&1 || fail=1
if cmp -s /tmp/cli-shim.out /tmp/cli-plain.out; then
	echo "check: redis-cli answers identical (\$(wc -l </tmp/cli-shim.out) lines)"
else
	echo "check: redis-cli answers differ"; diff /tmp/cli-shim.out /tmp/cli-plain.out; fail=1
fi
for m in shim plain; do
	if [ \$m = shim ]; then p=6379 run="$SHIM"; else p=6380 run=; fi
	\$run redis-benchmark -h 192.0.2.2 -p \$p -n 2000 -c 4 -t set,get -q 2>/dev/null | tr '\r' '\n' |
		grep 'requests per second' >/tmp/rb.out || fail=1
	set=\$(sed -n 's/^SET: \([0-9.]*\) requests.*/\1/p' /tmp/rb.out)
	get=\$(sed -n 's/^GET: \([0-9.]*\) requests.*/\1/p' /tmp/rb.out)
	echo "RESULT phase=redis-\$m set=\${set:-0} get=\${get:-0}"
done
for m in shim plain shim-R plain-R; do
	case \$m in shim*) p=5201 run="$SHIM" ;; *) p=5202 run= ;; esac
	case \$m in *-R) dir=-R ;; *) dir= ;; esac
	\$run iperf3 -c 192.0.2.2 -p \$p -t 2 \$dir -f m >/tmp/ip.out 2>&1 || { cat /tmp/ip.out; fail=1; }
	mbps=\$(sed -n 's/.* \([0-9.]*\) Mbits\/sec.*receiver/\1/p' /tmp/ip.out | tail -n1)
	echo "RESULT phase=iperf3-\$m mbps=\${mbps:-0}"
done
redis-cli -h 192.0.2.2 -p 6380 set west-done 1 >/dev/null
exit \$fail
EOS

vmt_run_west_east "${bins[@]}"
vmt_check "$(vmt_has "$W" 'check: redis-cli answers identical')" "redis-cli through the shim answers as over TCP"
ea=$(vmt_stat_max east accelerated) er=$(vmt_stat_max east rx_bytes) et=$(vmt_stat_max east tx_bytes)
wa=$(vmt_stat_max west accelerated)
# redis-cli: 10 connections; redis-benchmark: 4 clients and its probes per test;
# iperf3: a control and a data connection.
vmt_check "$(vmt_gt "$ea" 15)" "East's shim accepted connections through the rings ($ea)"
vmt_check "$(vmt_gt "$wa" 15)" "West's shim made connections through the rings ($wa)"
# What iperf3 moved West->East in its 2 s (its receiver's rate) must have
# gone through the rings, whatever the machine's speed: at least 90% of it
# (the counters are snapshots) and 10 MB.
ip_bytes=$(python3 -c "print(int(float('$(vmt_result "$W" iperf3-shim mbps)' or 0) * 1e6 / 8 * 2 * 0.9))")
[ "$ip_bytes" -ge 10000000 ] 2>/dev/null || ip_bytes=10000000
vmt_check "$(vmt_gt "$er" "$ip_bytes")" "East received through the rings ($er bytes, iperf3: > $ip_bytes)"
vmt_check "$(vmt_gt "$et" 10000000)" "East answered and sent (-R) through the rings ($et bytes)"
for m in shim plain; do
	vmt_check "$(vmt_gt "$(vmt_result "$W" redis-$m get)" 0)" "redis-benchmark ($m) completed"
done
for m in shim plain shim-R plain-R; do
	vmt_check "$(vmt_gt "$(vmt_result "$W" iperf3-$m mbps)" 0)" "iperf3 ($m) completed"
done
echo "[shim] West->East redis-benchmark -c 4 GET: shim $(vmt_result "$W" redis-shim get)," \
	"virtio-net $(vmt_result "$W" redis-plain get) req/s; SET: shim $(vmt_result "$W" redis-shim set)," \
	"virtio-net $(vmt_result "$W" redis-plain set) req/s"
echo "[shim] West->East iperf3 -t 2: shim $(vmt_result "$W" iperf3-shim mbps) Mbit/s," \
	"virtio-net $(vmt_result "$W" iperf3-plain mbps) Mbit/s"
echo "[shim] East->West iperf3 -t 2 -R: shim $(vmt_result "$W" iperf3-shim-R mbps) Mbit/s," \
	"virtio-net $(vmt_result "$W" iperf3-plain-R mbps) Mbit/s"
vmt_done
