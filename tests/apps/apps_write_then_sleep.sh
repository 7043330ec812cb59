#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A client that writes and then makes no socket call for a while (Python,
# both ends under the shim): its bytes must reach the server while it
# sleeps, as over TCP, not at its next call. They used to wait for it (or
# for a timeout and a fallback): the rendezvous moved on only in the
# client's own socket calls; a progress thread (guest-lib/preload/core.c)
# now moves pending connections on. Checked for 3 connections: the server
# got each request before the client woke, the reply is right, and the
# connections were accelerated.
. "$(dirname "$0")/lib.sh"
need python3
daemon_start
cat >"$T/srv.py" <<'PY'
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("LISTEN", flush=True)
while True:
    time.sleep(0.5)   # the client connects while the server sits in accept()
    c, _ = s.accept()
    req = b""
    while len(req) < 4:
        part = c.recv(4 - len(req))
        if not part:
            break
        req += part
    if len(req) == 4:
        print("GOT", req.decode(), time.time(), flush=True)
        c.sendall(b"pong")
    c.close()
PY
cat >"$T/cli.py" <<'PY'
import socket, sys, time
for i in range(3):
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.sendall(b"pin%d" % i)
    print("SENT", i, time.time(), flush=True)
    time.sleep(2)          # no socket call at all meanwhile
    print("WOKE", i, time.time(), flush=True)
    r = c.recv(4)
    print("REPLY", r.decode(), flush=True)
    if r != b"pong":
        sys.exit(1)
    c.close()
PY
P=$(free_port)
bg server shim python3 "$T/srv.py" "$P"
S=$LASTPID
wait_listen "$P"
before=$(peer_stat "$S" accelerated)
sleep 1 # the server sits in accept() when the client connects
timeout 60 "$IVLRUN" python3 "$T/cli.py" "$P" >"$T/client.log" 2>&1 ||
	fail "client exit $?: $(cat "$T/client.log")"
for i in 0 1 2; do
	# Both clocks are the same machine's: the server must have the request
	# before the client's 2 s sleep ends (TCP: within microseconds).
	got=$(awk -v r="pin$i" '$1 == "GOT" && $2 == r {print $3}' "$T/server.log")
	woke=$(awk -v i="$i" '$1 == "WOKE" && $2 == i {print $3}' "$T/client.log")
	[ -n "$got" ] || fail "request $i never reached the server"
	awk -v g="$got" -v w="$woke" 'BEGIN {exit !(g < w)}' ||
		fail "request $i reached the server only as the client woke (got $got, woke $woke)"
	echo "ok: request $i reached the server while the client slept"
done
expect_eq "replies" "$(grep -c '^REPLY pong' "$T/client.log")" 3
expect_ge "server accelerated connections" "$(peer_stat "$S" accelerated)" $((before + 3))
echo PASS
