# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# The shell tests' cleanup (sourced, not run): tests/apps/lib.sh,
# tests/vm/vmtest.sh and tests/reliability/bad_command_lines.sh use it.
#
#   ts_init_tmp NAME   $ts_tmp = a new /tmp/ivl-NAME-XXXXXX; installs the traps
#   ts_bg PID          stop PID at exit: TERM, up to 5 s, then KILL, reaped
#   ts_bg_first PID    the same, and PID gets its TERM before the others (a
#                      server whose clients should not see it vanish first)
#   ts_at_exit FUNC    run FUNC at exit too, after the processes stopped
#
# At exit (also on INT, TERM, HUP) exactly the processes given to ts_bg are
# stopped, by pid, and $ts_tmp is removed (kept when $KEEP or
# $IVL_TEST_KEEP is set, for a look at the logs).

ts_pids=()
ts_exit_funcs=()
ts_tmp=

ts_bg() { ts_pids+=("$@"); }

ts_bg_first() { ts_pids=("$1" "${ts_pids[@]}"); }

ts_at_exit() { ts_exit_funcs+=("$1"); }

# shellcheck disable=SC2317 # called from the EXIT trap
ts_cleanup() {
	local p f
	for p in "${ts_pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${ts_pids[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ts_pids=()
	for f in "${ts_exit_funcs[@]}"; do
		"$f" || true
	done
	if [ -n "$ts_tmp" ] && [ -z "${KEEP:-}${IVL_TEST_KEEP:-}" ]; then
		rm -rf "$ts_tmp"
	fi
}

ts_init_tmp() {
	ts_tmp=$(mktemp -d "/tmp/ivl-$1-XXXXXX")
	trap ts_cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
