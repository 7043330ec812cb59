#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# socat relays a 64 MiB file through the shim (both ends shimmed) and over
# plain TCP; the checksums must match the source, and the region must show
# the bytes in the rings.
. "$(dirname "$0")/lib.sh"
need socat python3
daemon_start
head -c 64M /dev/urandom >"$T/src.bin"
want=$(sha256sum <"$T/src.bin" | cut -d' ' -f1)
for mode in shim plain; do
	P=$(free_port)
	run=()
	[ $mode = shim ] && run=("$IVLRUN")
	bg "srv-$mode" "${run[@]}" socat -u "TCP-LISTEN:$P,bind=127.0.0.1,reuseaddr" "OPEN:$T/dst-$mode.bin,creat,trunc"
	SP=$LASTPID
	wait_listen "$P" "$SP"
	start=$(date +%s.%N)
	timeout 60 "${run[@]}" socat -u "OPEN:$T/src.bin" "TCP:127.0.0.1:$P" || fail "socat client ($mode)"
	for _ in $(seq 200); do
		kill -0 "$SP" 2>/dev/null || break
		sleep 0.05
	done
	end=$(date +%s.%N)
	got=$(sha256sum <"$T/dst-$mode.bin" | cut -d' ' -f1)
	expect_eq "sha256 ($mode)" "$got" "$want"
	echo "ok: $mode relay took $(python3 -c "print('%.2f' % ($end - $start))") s"
	[ $mode = shim ] && expect_ge "ring bytes received by the server" "$(peer_stat "$SP" rx_bytes)" 67108864
done
echo PASS
