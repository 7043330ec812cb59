#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# epoll LT/ET/MOD/nested, poll, select, non-blocking semantics of a shimmed
# connection (shim_epoll_semantics.c), under the shim and over plain TCP.
. "$(dirname "$0")/lib.sh"
need python3
daemon_start
P=$(free_port)
timeout 60 "$IVLRUN" "$APPS_BIN/shim_epoll_semantics" "$P" >"$T/shim.log" 2>&1 || fail "under the shim"
cat "$T/shim.log"
expect_ge "accelerated connections" "$(shim_total accelerated)" 2
P=$(free_port)
timeout 60 "$APPS_BIN/shim_epoll_semantics" "$P" >"$T/plain.log" 2>&1 || fail "over plain TCP"
echo "ok: same checks pass over plain TCP"
echo PASS
