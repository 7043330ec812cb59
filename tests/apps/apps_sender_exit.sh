#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A sender that leaves right after its last write, without closing: by
# exit() (the shim's destructor closes its rings), by _exit() and by
# SIGKILL (nobody closes them; the kernel sends the TCP FIN). The receiver
# reads late, after the sender is gone, and must still get every byte and
# then EOF, through the rings and over plain TCP alike: the daemon keeps a
# gone peer's section until its id is reused, and the shim does not linger.
. "$(dirname "$0")/lib.sh"
need python3
[ -x "$APPS_BIN/tcp_pair" ] || fail "no tcp_pair"
daemon_start
BYTES=4194304
for how in exit _exit kill; do
	for mode in shim plain; do
		P=$(free_port)
		run=()
		[ $mode = shim ] && run=("$IVLRUN")
		bg "sink-$how-$mode" "${run[@]}" "$APPS_BIN/tcp_pair" sink "$P" 300
		SP=$LASTPID
		# Not wait_port: the sink takes one connection only.
		wait_listen "$P" "$SP"
		start=$(date +%s%N)
		timeout 30 "${run[@]}" "$APPS_BIN/tcp_pair" send-exit "$P" $BYTES $how
		rc=$?
		took=$((($(date +%s%N) - start) / 1000000))
		[ $how = kill ] && [ $rc = 137 ] && rc=0
		[ $rc = 0 ] || fail "sender ($how, $mode) exited with $rc"
		# No linger: the sender is gone well before the receiver drained.
		[ $mode = shim ] && [ $took -lt 1500 ] || [ $mode = plain ] ||
			fail "sender ($how) took $took ms to leave"
		wait "$SP"
		src=$?
		got=$(cat "$T/sink-$how-$mode.log")
		[ $src = 0 ] || fail "receiver ($how, $mode) failed: $got"
		expect_eq "receiver ($how, $mode)" "$(echo "$got" | grep '^OK' | cut -d' ' -f2)" $BYTES
		[ $mode = shim ] && expect_ge "ring bytes received ($how)" "$(peer_stat "$SP" rx_bytes)" $BYTES
		echo "ok: $how/$mode: sender left after $took ms"
	done
done
echo PASS
