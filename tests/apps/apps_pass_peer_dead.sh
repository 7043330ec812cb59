#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The remote of an accelerated connection is SIGKILLed just before the
# server passes the socket over SCM_RIGHTS: the demotion cannot be
# answered, so sendmsg() goes on after a bounded wait, the connection is
# reset (reason demote-reset), and the worker reads EOF or ECONNRESET
# instead of hanging (pass_conn.c, dead mode).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pass_lib.sh"
need python3
daemon_start
pass_run dead
expect_ge "server's demote-reset" "$(peer_stat "$PASS_PID" demote-reset)" 1
pass_end
echo PASS
