# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# The apps_pass_* tests (sourced after lib.sh): pass_run MODE runs
# `pass_conn MODE` under the shim, its stdin a FIFO held open until the
# counters were read; sets PASS_PID (the pid it reported READY with).
pass_run() {
	local mode=$1 fifo="$T/stdin-$1.fifo"
	mkfifo "$fifo"
	# Read-write: opening it does not wait for a reader.
	exec {PASS_IN}<>"$fifo"
	# Without our end: its stdin ends when pass_end closes ours.
	"$IVLRUN" "$APPS_BIN/pass_conn" "$mode" <"$fifo" {PASS_IN}>&- >"$T/pass-$mode.log" 2>&1 &
	PASS_MAIN=$!
	ts_bg "$PASS_MAIN"
	PASS_PID=
	for _ in $(seq 600); do
		PASS_PID=$(sed -n 's/^READY \([0-9]*\)$/\1/p' "$T/pass-$mode.log")
		[ -n "$PASS_PID" ] && break
		kill -0 "$PASS_MAIN" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$PASS_PID" ] || fail "pass_conn $mode did not finish"
}

# pass_end: lets the processes exit and checks the main one's status.
pass_end() {
	local rc=0
	exec {PASS_IN}>&-
	wait "$PASS_MAIN" || rc=$?
	[ "$rc" = 0 ] || fail "pass_conn exited with $rc"
}
