# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Shared helpers of the tests/vm shell tests (sourced, not run).
#
#   vmt_init NAME IVLINKD LAUNCHER BUILD   fail (exit 1) without QEMU/ivlinkd/the
#                                          programs; sets $tmp, traps cleanup
#   ts_bg PID                              stop PID at exit (tests/support/lib.sh;
#                                          launchers stop their own QEMUs and
#                                          daemons from their EXIT trap)
#   vmt_log FILE                           console log without CRs
#   vmt_result FILE PHASE KEY              KEY's value on "RESULT phase=PHASE"
#   vmt_check COND MESSAGE                 COND 1 = ok, else FAIL (sets vmt_fail)
#   vmt_run_west_east BIN...               boots West and East with $tmp/west.sh and
#                                          $tmp/east.sh, shows their logs ($W, $E)
#   vmt_done                               prints the verdict, exits 0/1
set -euo pipefail
# shellcheck source=tests/support/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../support/lib.sh"

vmt_name=vm
vmt_fail=0
vmt_t0=$(date +%s)

# IVLINKD, LAUNCHER, BUILD, PINGPONG and tmp are for the test scripts.
# shellcheck disable=SC2034
vmt_init() {
	vmt_name=$1 IVLINKD=$2 LAUNCHER=$3 BUILD=$4
	if ! command -v qemu-system-x86_64 >/dev/null; then
		echo "[$vmt_name] FAIL: command qemu-system-x86_64 not found (scripts/ivl-deps vm)"
		exit 1
	fi
	if [ ! -x "$IVLINKD" ]; then
		echo "[$vmt_name] FAIL: ivlinkd not built ($IVLINKD)"
		exit 1
	fi
	for p in examples/ivlink-pingpong guest-lib/ivlink-guestd; do
		[ -x "$BUILD/$p" ] || {
			echo "[$vmt_name] FAIL: $BUILD/$p not built"
			exit 1
		}
	done
	PINGPONG=$BUILD/examples/ivlink-pingpong
	ts_init_tmp "$vmt_name"
	tmp=$ts_tmp
}

# Starts ivlinkd on $tmp/ivlinkd.sock (8 vectors unless given).
vmt_daemon() {
	"$IVLINKD" -F -S "$tmp/ivlinkd.sock" -l 64M -n "${1:-8}" >"$tmp/ivlinkd.log" 2>&1 &
	ts_bg $!
	for _ in $(seq 100); do [ -S "$tmp/ivlinkd.sock" ] && return 0; sleep 0.05; done
	echo "[$vmt_name] FAIL: ivlinkd did not start"
	cat "$tmp/ivlinkd.log"
	exit 1
}

# Polls `ivlinkctl status --json` of $tmp/ivlinkd.sock once a second into
# $tmp/st.* while the guests run (their peers leave with them), in the
# background until the test ends. Needs $IVLINKCTL.
# Optional: SOCKET PREFIX for another daemon (several regions), snapshots
# $tmp/PREFIX.* instead.
# shellcheck disable=SC2120 # the arguments are optional
vmt_poll_status() { # [socket prefix]
	local sock=${1:-$tmp/ivlinkd.sock} pre=${2:-st}
	( while :; do
		"$IVLINKCTL" status --socket "$sock" --json >"$tmp/$pre.new" 2>/dev/null &&
			mv "$tmp/$pre.new" "$tmp/$pre.$(date +%s%N)"
		sleep 1
	done ) &
	ts_bg $!
}

# Highest value of a shim counter (a field or a fallback reason) of a
# guest's peer (its QEMU's pid, from the launcher's logdir $tmp/logs) over
# every snapshot vmt_poll_status() took.
vmt_stat_max() { # guest field [prefix]
	local pid
	pid=$(cat "$tmp/logs/$1.pid" 2>/dev/null || echo -1)
	cat "$tmp/${3:-st}".[0-9]* 2>/dev/null |
		python3 "$(dirname "${BASH_SOURCE[0]}")/../support/status_query.py" stat-max "$pid" "$2"
}

vmt_log() { tr -d '\r' <"$1" 2>/dev/null || true; }

vmt_result() { # file phase key
	vmt_log "$1" | sed -n "s/^RESULT phase=$2 .*\\b$3=\\([^ ]*\\).*/\\1/p" | tail -n1
}

vmt_check() { # cond message
	if [ "$1" = 1 ]; then
		echo "[$vmt_name] ok: $2"
	else
		echo "[$vmt_name] FAIL: $2"
		vmt_fail=1
	fi
}

vmt_true() { "$@" && echo 1 || echo 0; }
vmt_has() { vmt_log "$1" | grep -q -- "$2" && echo 1 || echo 0; }
vmt_gt() { awk -v a="${1:-0}" -v b="$2" 'BEGIN{print (a + 0 > b + 0) ? 1 : 0}'; }

vmt_done() {
	echo "[$vmt_name] $([ "$vmt_fail" = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - vmt_t0)) s"
	exit "$vmt_fail"
}

# Prints the interesting lines of a console log, prefixed.
vmt_show() { # file prefix
	vmt_log "$1" | grep -E '^(client|server|check|RESULT|ivlink-guestd|\[[a-z0-9]+\]|IVLINK-EXIT)' |
		grep -v '^\[init\]' | sed "s/^/[$vmt_name] $2: /" || true
}

# Polls the daemon's status (vmt_poll_status), boots West and East with the
# scripts $tmp/west.sh and $tmp/east.sh and the programs given, waits for
# both, shows their logs and checks that both exited 0. Sets W and E to the
# console logs.
vmt_run_west_east() { # bin...
	local rc=0
	vmt_poll_status
	"$LAUNCHER" -S "$tmp/ivlinkd.sock" -B "$BUILD" -g west,east -q "$@" \
		--script-west "$tmp/west.sh" --script-east "$tmp/east.sh" \
		--logdir "$tmp/logs" --timeout 170 &
	ts_bg $!
	wait $! || rc=$?
	W=$tmp/logs/west.log E=$tmp/logs/east.log
	vmt_show "$W" west
	vmt_show "$E" east
	vmt_check "$([ $rc = 0 ] && echo 1 || echo 0)" "both guests exited 0 (launcher $rc)"
}
