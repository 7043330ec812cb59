#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A fork+exec server (socat TCP-LISTEN,fork EXEC:cat,nofork: the child
# dup2()s the accepted socket onto stdin/stdout and execs cat, while the
# parent closes its copy) under the shim, clients under the shim: the child
# often execs before the rendezvous is settled and before its parent let go
# of the socket, so the exec first settles the rendezvous, waits for the
# parent's close, and moves the connection back to TCP (conn_demote.c).
# Each of 6 clients sends 300 KB and gets every byte back, in order, within
# 30 s (a connection left on the rings hangs: cat reads the idle TCP
# socket), and the server's processes count one demotion per connection.
. "$(dirname "$0")/lib.sh"
need socat python3
daemon_start
head -c 300000 /dev/urandom >"$T/in.bin"
P=$(free_port)
bg srv shim socat "TCP-LISTEN:$P,bind=127.0.0.1,fork,reuseaddr" EXEC:cat,nofork
SRV=$LASTPID
wait_listen "$P" "$SRV"
N=6
for i in $(seq "$N"); do
	rc=0
	timeout 30 "$IVLRUN" socat -t 5 - "TCP:127.0.0.1:$P" <"$T/in.bin" >"$T/out$i.bin" || rc=$?
	[ "$rc" = 0 ] || fail "client $i: socat exited with $rc (124: the echo hung)"
	cmp -s "$T/in.bin" "$T/out$i.bin" || fail "client $i: the echo differs ($(stat -c %s "$T/out$i.bin") bytes back)"
	echo "ok: client $i: 300000 bytes back in order"
done
expect_ge "clients' accelerated connections" "$(shim_total accelerated)" "$N"
expect_ge "demoted connections (the exec'd children)" "$(shim_total demoted)" "$N"
expect_eq "demote-reset" "$(shim_total demote-reset)" 0
echo PASS
