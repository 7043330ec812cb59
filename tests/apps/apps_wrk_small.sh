#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# wrk with 1, 2 and 4 connections against a keep-alive Node.js server, both
# under the shim. wrk sizes its event loop from its connection count
# (10 + 3 per connection slots) and fails a connect whose fd lands above:
# the shim's own fds (doorbell eventfds, the daemon socket, epoll and wake
# fds) used to take the low numbers, and wrk -c1..-c4 made 0 requests
# ("Socket errors: connect N"). They now live above a high mark
# (guest-lib/fd_high.c). Checked: requests made, no socket error, no
# non-2xx answer, the connections accelerated.
. "$(dirname "$0")/lib.sh"
need node wrk
daemon_start
cat >"$T/ka.js" <<'JS'
require('http').createServer((q, r) => r.end('x'.repeat(1024)))
  .listen(+process.argv[2], '127.0.0.1', () => console.log('LISTEN'));
JS
P=$(free_port)
bg server shim node "$T/ka.js" "$P"
S=$LASTPID
wait_port "$P"
for c in 1 2 4; do
	before=$(peer_stat "$S" accelerated)
	timeout 60 "$IVLRUN" wrk -t1 -c"$c" -d1s "http://127.0.0.1:$P/" >"$T/wrk$c.log" 2>&1 ||
		fail "wrk -c$c exit $?"
	grep -q "Socket errors" "$T/wrk$c.log" && fail "wrk -c$c: $(grep 'Socket errors' "$T/wrk$c.log")"
	grep -q "Non-2xx" "$T/wrk$c.log" && fail "wrk -c$c: $(grep 'Non-2xx' "$T/wrk$c.log")"
	n=$(awk '/requests in/ {print $1}' "$T/wrk$c.log")
	expect_ge "wrk -c$c requests" "${n:-0}" 100
	expect_ge "server accelerated connections after wrk -c$c" "$(peer_stat "$S" accelerated)" $((before + c))
done
echo PASS
