#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A client of an echo service that sends a block, then reads its echo
before the next one, as request/response programs with large payloads do:
block_echo_client.py PORT FILE BLOCK prints the sha256 of everything that
came back. Each block must fit in the path's buffers at once (the client
reads nothing while it writes one), which is what loopback TCP's growing
buffers give and fixed 128 KiB shim rings did not (apps_proxy_fork.sh)."""
import hashlib
import socket
import sys

port, path, block = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with open(path, "rb") as f:
    data = f.read()
c = socket.create_connection(("127.0.0.1", port))
h = hashlib.sha256()
for i in range(0, len(data), block):
    chunk = data[i:i + block]
    c.sendall(chunk)
    left = len(chunk)
    while left:
        d = c.recv(min(left, 1 << 20))
        if not d:
            sys.exit("EOF after %d bytes" % (i + len(chunk) - left))
        h.update(d)
        left -= len(d)
c.shutdown(socket.SHUT_WR)
print(h.hexdigest())
