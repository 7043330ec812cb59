#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every intercepted socket call on an accelerated connection
# (shim_calls.c): read/write and their vector, msg, to/from and peek forms,
# sendfile, dup/dup2/dup3, O_NONBLOCK/FIONBIO/FIONREAD, SO_ERROR, fork,
# execve's environment, shutdown. Under the shim (and the bytes must have
# gone through the rings: both ends received at least the 256 KiB sendfile
# and its echo there), then over plain TCP with the same checks.
. "$(dirname "$0")/lib.sh"
need python3
daemon_start
P=$(free_port)
timeout 60 "$IVLRUN" "$APPS_BIN/shim_calls" "$P" shim >"$T/shim.log" 2>&1 || {
	cat "$T/shim.log"
	fail "under the shim"
}
cat "$T/shim.log"
expect_ge "accelerated connections" "$(shim_total accelerated)" 2
expect_ge "bytes received through the rings" "$(shim_total rx_bytes)" 524288
expect_eq "fallbacks" "$(shim_total fallbacks)" 0
P=$(free_port)
timeout 60 "$APPS_BIN/shim_calls" "$P" >"$T/plain.log" 2>&1 || {
	cat "$T/plain.log"
	fail "over plain TCP"
}
echo "ok: same checks pass over plain TCP"
echo PASS
