#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Two threads on one accelerated connection (shim_threads.c): a second
# writer taking the tx direction from the thread that owned it (the fast
# path's guard), and close() racing a send() in another thread. Under the
# shim (the bytes must have gone through the rings), then over plain TCP.
. "$(dirname "$0")/lib.sh"
need python3
daemon_start
ports() {
	P=$(free_port)
	Q=$(free_port)
	while [ "$Q" = "$P" ]; do Q=$(free_port); done
}
ports
timeout 120 "$IVLRUN" "$APPS_BIN/shim_threads" "$P" "$Q" >"$T/shim.log" 2>&1 || {
	cat "$T/shim.log"
	fail "under the shim"
}
cat "$T/shim.log"
expect_ge "accelerated connections" "$(shim_total accelerated)" 3
# The client (this test's process, one peer for both parts) sent 32 MiB in
# part 1 and at least 1 MiB in part 2, mostly on the fast path: its byte
# counter must have been flushed (the servers' peer ids are reused, which
# zeroes their counters).
expect_ge "bytes sent through the rings" "$(shim_total tx_bytes)" 34603008
expect_eq "fallbacks" "$(shim_total fallbacks)" 0
ports
timeout 120 "$APPS_BIN/shim_threads" "$P" "$Q" >"$T/plain.log" 2>&1 || {
	cat "$T/plain.log"
	fail "over plain TCP"
}
echo "ok: same checks pass over plain TCP"
echo PASS
