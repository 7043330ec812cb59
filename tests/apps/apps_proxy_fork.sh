#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 32 MiB through a forking TCP proxy, every process under the shim (issue
# 12, item 5): a client that sends 1 MiB blocks and reads each echo before
# the next (block_echo_client.py) -> proxy (socat TCP-LISTEN,fork -> TCP,
# one child per connection, relaying only what its destination has room
# for) -> echo server (socat PIPE). A block must fit in the path's buffers
# while the client is not reading: over loopback TCP it does (the kernel's
# buffers grow with the load), with fixed 128 KiB rings all four filled
# and every process waited for another. The rings must grow
# (conn_grow.c), so the transfer completes with every byte checked, over
# the rings (ring bytes in ivlinkctl, no fallback), and again over plain
# TCP for comparison. A hang is a failure (timeout).
. "$(dirname "$0")/lib.sh"
need socat python3
daemon_start --chan-slots 1024
head -c 32M /dev/urandom >"$T/src.bin"
want=$(sha256sum <"$T/src.bin" | cut -d' ' -f1)

# children PARENT: pids of PARENT's children (the proxy's per-connection
# processes), to stop them by pid at exit.
children() {
	awk -v p="$1" '$4 == p {print $1}' /proc/[0-9]*/stat 2>/dev/null
}

for mode in shim plain; do
	run=()
	[ $mode = shim ] && run=("$IVLRUN")
	PQ=$(free_port)
	PP=$(free_port)
	bg "echo-$mode" "${run[@]}" socat -t 30 "TCP-LISTEN:$PQ,bind=127.0.0.1,reuseaddr" PIPE
	ES=$LASTPID
	bg "proxy-$mode" "${run[@]}" socat -t 30 "TCP-LISTEN:$PP,bind=127.0.0.1,reuseaddr,fork" \
		"TCP:127.0.0.1:$PQ"
	PX=$LASTPID
	wait_listen "$PQ" "$ES"
	wait_listen "$PP" "$PX"
	start=$(date +%s.%N)
	timeout 60 "${run[@]}" python3 "$(dirname "$0")/block_echo_client.py" "$PP" "$T/src.bin" \
		1048576 >"$T/out.txt"
	rc=$?
	end=$(date +%s.%N)
	for p in $(children "$PX"); do ts_bg "$p"; done
	[ $rc = 124 ] && fail "$mode: the transfer hung (not done in 60 s)"
	[ $rc = 0 ] || fail "$mode: the client failed (exit $rc)"
	expect_eq "sha256 of the echo ($mode)" "$(cat "$T/out.txt")" "$want"
	echo "ok: $mode transfer took $(python3 -c "print('%.2f' % ($end - $start))") s"
	if [ $mode = shim ]; then
		# Four hops, each counted by its reader: client -> proxy child,
		# child -> echo server, and the echo back the same way.
		expect_ge "ring bytes received, all peers" "$(shim_total rx_bytes)" $((4 * 33554432))
		expect_ge "accelerated connections" "$(shim_total accelerated)" 2
		expect_eq "fallbacks" "$(shim_total fallbacks)" 0
	fi
done
echo PASS
