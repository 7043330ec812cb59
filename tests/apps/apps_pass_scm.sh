#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# An accelerated connection passed over SCM_RIGHTS to a worker process
# that knew nothing of it, with bytes in flight in both rings: every byte
# arrives once and in order both ways (pass_conn.c), and the shim counts
# the connection as accelerated, then demoted back to TCP.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pass_lib.sh"
need python3
daemon_start
pass_run scm
expect_ge "client's accelerated connections" "$(peer_stat "$PASS_PID" accelerated)" 1
expect_ge "client's demoted connections" "$(peer_stat "$PASS_PID" demoted)" 1
expect_eq "demote-reset" "$(shim_total demote-reset)" 0
pass_end
echo PASS
