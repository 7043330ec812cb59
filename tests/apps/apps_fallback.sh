#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fallback paths of the shim with tcp_pair:
#  - a shimmed server that accepts only after the client's accept timeout:
#    the client's bytes, written into its ring before any accept, are
#    replayed over TCP in order (checked byte by byte and by checksum), and
#    both ends record why (client: timeout, server: withdrawn);
#  - the same pair with both shims and a prompt accept uses the rings;
#  - ECONNREFUSED and a connect to a closed port behave as plain TCP.
. "$(dirname "$0")/lib.sh"
need python3
daemon_start
BYTES=100000

P=$(free_port)
IVLINK_ACCEPT_TIMEOUT_MS=300 bg srv-late shim "$APPS_BIN/tcp_pair" server "$P" 1500
SP=$LASTPID
wait_listen "$P" "$SP"
out=$(IVLINK_ACCEPT_TIMEOUT_MS=300 timeout 30 "$IVLRUN" "$APPS_BIN/tcp_pair" client "$P" $BYTES) ||
	fail "client (late accept): $out"
wait "$SP" || fail "server (late accept) failed"
echo "ok: late accept: $out"
expect_eq "bytes replayed and received" "$(echo "$out" | cut -d' ' -f2)" $BYTES
expect_ge "client fallbacks (timeout)" "$(shim_total timeout)" 1
expect_ge "server fallbacks (withdrawn)" "$(shim_total withdrawn)" 1
ref=$(echo "$out" | cut -d' ' -f3)

P=$(free_port)
bg srv-prompt shim "$APPS_BIN/tcp_pair" server "$P" 0
SP=$LASTPID
wait_listen "$P" "$SP"
acc0=$(shim_total accelerated)
out=$(timeout 30 "$IVLRUN" "$APPS_BIN/tcp_pair" client "$P" $BYTES) || fail "client (prompt): $out"
wait "$SP" || fail "server (prompt) failed"
expect_eq "same checksum through the rings" "$(echo "$out" | cut -d' ' -f3)" "$ref"
expect_ge "accelerated (prompt accept, both ends)" "$(shim_total accelerated)" $((acc0 + 2))

P=$(free_port)
out=$(timeout 10 "$IVLRUN" "$APPS_BIN/tcp_pair" refused "$P") || fail "refused under the shim: $out"
out2=$(timeout 10 "$APPS_BIN/tcp_pair" refused "$P") || fail "refused over TCP: $out2"
expect_eq "connect to a closed port (shim vs TCP)" "$out" "$out2"
echo PASS
