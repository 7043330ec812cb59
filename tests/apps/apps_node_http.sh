#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Node.js, a libuv event loop, at both ends under the shim: 300 requests on
# fresh connections, every body checked, all accelerated. libuv keeps its
# loop's epoll set for good and asserts on every event it gets from it
# (fd >= 0): the shim's own registrations must never come out of a set
# whose shimmed sockets are all gone (the client aborted with
# "uv__io_poll: Assertion `fd >= 0' failed" before that was fixed).
. "$(dirname "$0")/lib.sh"
need node
daemon_start
JS=$(dirname "$0")/node_http.js
P=$(free_port)
bg server shim node "$JS" server "$P"
S=$LASTPID
wait_port "$P"
timeout 120 "$IVLRUN" node "$JS" client "$P" 300 >"$T/client.log" 2>&1 || fail "node client (exit $?)"
grep -q "^DONE 300" "$T/client.log" || fail "node client: $(cat "$T/client.log")"
echo "ok: 300 requests, bodies checked"
expect_ge "node server accelerated connections" "$(peer_stat "$S" accelerated)" 300
kill -0 "$S" 2>/dev/null || fail "node server died"
echo PASS
