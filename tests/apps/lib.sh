# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Helpers of the apps tests (sourced): a private ivlinkd, processes started
# under the shim or not, cleanup of exactly what was started
# (tests/support/lib.sh), and queries of
# `ivlinkctl status --json`.
#
# Every test is called as: TEST.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
IVLINKD=$BUILD/host-daemon/ivlinkd
IVLINKCTL=$BUILD/host-daemon/ivlinkctl
IVLRUN=$BUILD/guest-lib/preload/ivlink-run
# shellcheck disable=SC2034 # for the tests that source this file
APPS_BIN=$BUILD/tests/apps
# shellcheck source=tests/support/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../support/lib.sh"
ts_init_tmp apps
T=$ts_tmp

fail() {
	echo "FAIL: $*" >&2
	for f in "$T"/*.log; do
		[ -s "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
	done
	exit 1
}

# need CMD...: fails, naming the command, unless every CMD is installed. A
# missing program is a failure, not a skip: a skipped test proves nothing,
# and `make test` installs them all (scripts/ivl-deps apps).
need() {
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 ||
			fail "command '$p' not found: install it with scripts/ivl-deps apps (make test does)"
	done
}

# tcp_listening PORT: whether a socket listens on TCP PORT (IPv4 or IPv6),
# read from /proc/net/tcp* (no iproute2 needed).
tcp_listening() {
	local f files=()
	for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && files+=("$f"); done
	awk -v p="$(printf ':%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' "${files[@]}"
}

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s).
wait_port() {
	for _ in $(seq 100); do
		python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "nothing listens on port $1"
}

# wait_listen PORT [PID]: until something listens on PORT (5 s), without
# connecting: for servers that take one connection only. With PID (the
# server's), a server that exits first fails at once, saying so (its log,
# e.g. "Address already in use", follows), not as a missing listener.
wait_listen() {
	for _ in $(seq 100); do
		tcp_listening "$1" && return 0
		[ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null &&
			fail "the server (pid $2) exited before it listened on $1"
		sleep 0.05
	done
	fail "no listener on $1"
}

# daemon_start [IVLINKD-ARGS...]: starts ivlinkd in $T; exports
# IVLINK_ENDPOINT for the shimmed processes.
# shellcheck disable=SC2120 # the arguments are optional
daemon_start() {
	[ -x "$IVLINKD" ] || fail "$IVLINKD not built"
	"$IVLINKD" -F -S "$T/ivlinkd.sock" -l 256M -n 8 --max-peers 24 --log-level=warn "$@" \
		>"$T/ivlinkd.log" 2>&1 &
	ts_bg $!
	for _ in $(seq 100); do
		[ -S "$T/ivlinkd.sock" ] && break
		sleep 0.05
	done
	[ -S "$T/ivlinkd.sock" ] || fail "ivlinkd did not start"
	export IVLINK_ENDPOINT="host:$T/ivlinkd.sock"
}

# bg NAME CMD...: starts CMD in the background (log $T/NAME.log); $! in LASTPID.
bg() {
	local name=$1
	shift
	# ivlink-run execs: $! is then the program itself (its peer's pid).
	[ "$1" = shim ] && { shift; set -- "$IVLRUN" "$@"; }
	"$@" >"$T/$name.log" 2>&1 &
	LASTPID=$!
	ts_bg "$LASTPID"
}

# shim CMD...: runs CMD under the shim.
shim() {
	"$IVLRUN" "$@"
}

status_json() {
	"$IVLINKCTL" status --socket "$T/ivlinkd.sock" --json
}

# peer_stat PID FIELD: a shim counter of the peer whose pid is PID (0 if none).
peer_stat() {
	status_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
pid, field = int(sys.argv[1]), sys.argv[2]
ids = [p["id"] for p in d["peers"] if p["pid"] == pid]
v = 0
for p in d["shim"]["peers"]:
    if p["id"] in ids:
        v += p["reasons"].get(field, 0) if field not in p else p[field]
print(v)' "$1" "$2"
}

# shim_total FIELD: a shim counter summed over every peer (reasons too).
shim_total() {
	status_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
f = sys.argv[1]
print(sum(p.get(f, p["reasons"].get(f, 0)) for p in d["shim"]["peers"]))' "$1"
}

# nginx_conf PORT CONNECTIONS: $T/nginx.conf for nginx's master and 2
# workers (root, in the foreground, pid and logs in $T) serving $T/www on
# 127.0.0.1:PORT with keep-alive; CONNECTIONS per worker.
nginx_conf() {
	mkdir -p "$T/www" "$T/logs"
	chmod 755 "$T" "$T/www"
	cat >"$T/nginx.conf" <<CONF
user root;
worker_processes 2;
daemon off;
master_process on;
pid $T/nginx.pid;
error_log $T/logs/error.log warn;
events { worker_connections $2; }
http {
	access_log off;
	server { listen 127.0.0.1:$1; root $T/www; keepalive_requests 100000; }
}
CONF
}

# nginx_workers MASTER-PID: waits (5 s) for the master's 2 workers; their
# pids in the array workers.
nginx_workers() {
	workers=()
	for _ in $(seq 50); do
		mapfile -t workers < <(awk -v m="$1" '$4 == m {print $1}' /proc/[0-9]*/stat 2>/dev/null)
		[ ${#workers[@]} -ge 2 ] && break
		sleep 0.1
	done
	expect_eq "nginx workers" "${#workers[@]}" 2
}

# expect_ge WHAT VALUE MIN
expect_ge() {
	[ "$2" -ge "$3" ] 2>/dev/null || fail "$1 = $2, expected >= $3"
	echo "ok: $1 = $2 (>= $3)"
}

expect_eq() {
	[ "$2" = "$3" ] || fail "$1 = '$2', expected '$3'"
	echo "ok: $1 = $2"
}
