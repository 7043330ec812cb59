#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# An accelerated connection inherited across execve (no FD_CLOEXEC) by a new program image (execve, then execvp)
# whose shim knows nothing of it, with bytes in flight in both rings: every byte
# arrives once and in order both ways (pass_conn.c), and the shim counts
# the connection as accelerated, then demoted back to TCP.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pass_lib.sh"
need python3
daemon_start
for how in exec execvp; do
	pass_run $how
	expect_ge "$how: client's accelerated connections" "$(peer_stat "$PASS_PID" accelerated)" 1
	expect_ge "$how: client's demoted connections" "$(peer_stat "$PASS_PID" demoted)" 1
	expect_eq "$how: demote-reset" "$(shim_total demote-reset)" 0
	pass_end
done
echo PASS
