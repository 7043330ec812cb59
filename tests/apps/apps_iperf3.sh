#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# iperf3 TCP stream through the shim, both directions (-R), 3 s each,
# against the same run over plain TCP; the region must show the bytes went
# through the rings.
. "$(dirname "$0")/lib.sh"
need iperf3 python3
daemon_start
export IVLINK_RING_SIZE=1048576
PS=$(free_port)
PP=$(free_port)
bg iperf-shim shim iperf3 -s -p "$PS"
IS=$LASTPID
bg iperf-plain iperf3 -s -p "$PP"
wait_port "$PS"
wait_port "$PP"

gbps() { # JSON file -> received Gbit/s
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' "$1"
}
for dir in "" -R; do
	name=fwd
	[ -n "$dir" ] && name=rev
	timeout 60 "$IVLRUN" iperf3 -c 127.0.0.1 -p "$PS" -t 3 $dir -J >"$T/c-shim-$name.json" 2>"$T/c-shim-$name.log" ||
		fail "iperf3 $dir under the shim"
	timeout 60 iperf3 -c 127.0.0.1 -p "$PP" -t 3 $dir -J >"$T/c-plain-$name.json" 2>"$T/c-plain-$name.log" ||
		fail "iperf3 $dir over TCP"
	echo "ok: iperf3 $name: shim $(gbps "$T/c-shim-$name.json") Gbit/s, plain TCP $(gbps "$T/c-plain-$name.json") Gbit/s"
done
# Each run: a control connection and a data stream, accelerated.
expect_ge "iperf3 server accelerated connections" "$(peer_stat "$IS" accelerated)" 4
expect_ge "iperf3 server ring bytes received (forward)" "$(peer_stat "$IS" rx_bytes)" 100000000
expect_ge "iperf3 server ring bytes sent (reverse)" "$(peer_stat "$IS" tx_bytes)" 100000000
echo PASS
