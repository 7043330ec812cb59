#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A forking server (socat TCP-LISTEN,fork with an echo PIPE in each child)
# under the shim keeps working for several shimmed clients in a row: each
# child inherits the parent's accelerated connection, the parent closes its
# copy at once, and the echoed bytes must come back intact. Compared with
# the same server over plain TCP.
. "$(dirname "$0")/lib.sh"
need socat python3
daemon_start
head -c 300000 /dev/urandom >"$T/msg.bin"
want=$(sha256sum <"$T/msg.bin" | cut -d' ' -f1)
PS=$(free_port)
PP=$(free_port)
bg fork-shim shim socat "TCP-LISTEN:$PS,bind=127.0.0.1,reuseaddr,fork" PIPE
FS=$LASTPID
bg fork-plain socat "TCP-LISTEN:$PP,bind=127.0.0.1,reuseaddr,fork" PIPE
wait_listen "$PS" "$FS"
wait_listen "$PP"
for i in 1 2 3 4; do
	for mode in shim plain; do
		run=()
		port=$PP
		[ $mode = shim ] && { run=("$IVLRUN"); port=$PS; }
		rm -f "$T/echo.bin"
		timeout 30 "${run[@]}" socat -t 2 - "TCP:127.0.0.1:$port" <"$T/msg.bin" >"$T/echo.bin" ||
			fail "client $i ($mode)"
		expect_eq "echo $i ($mode)" "$(sha256sum <"$T/echo.bin" | cut -d' ' -f1)" "$want"
	done
done
kill -0 "$FS" || fail "the forking server died"
expect_ge "forking server's accelerated connections" "$(peer_stat "$FS" accelerated)" 4
echo PASS
