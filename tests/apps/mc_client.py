#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A multi-threaded memcached client (text protocol) that checks every
answer: THREADS threads, each with its own connection, run OPS rounds of
set/get of values of 1 B to 16 KiB (unique per thread and round, so any
mix-up between connections shows), gets of several keys at once, incr, and
delete. Prints "OK <ops> <bytes>" or "BAD ..." (exit 1).

usage: mc_client.py PORT THREADS OPS
"""
import random
import socket
import sys
import threading

port, threads, ops = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
errors, totals, lock = [], [0, 0], threading.Lock()


class Conn:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def get(self, *keys):
        self.send(b"get " + b" ".join(keys) + b"\r\n")
        out = {}
        while True:
            ln = self.line()
            if ln == b"END":
                return out
            parts = ln.split()
            if parts[0] != b"VALUE":
                raise ValueError("get: %r" % ln)
            out[parts[1]] = self.exact(int(parts[3]))


def worker(t):
    rng = random.Random(t)
    c = Conn()
    moved = 0
    try:
        for i in range(ops):
            key = b"t%d-k%d" % (t, i % 50)
            size = rng.choice([1, 10, 100, 1000, 4000, rng.randint(1, 16384)])
            val = bytes(rng.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
            val = val[:size]
            c.send(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(val), val))
            if c.line() != b"STORED":
                raise ValueError("set %s" % key)
            got = c.get(key, b"t%d-missing" % t)
            if got != {key: val}:
                raise ValueError("get %s: %d bytes back, wanted %d" % (key, len(got.get(key, b"")), len(val)))
            moved += 2 * len(val)
            if i % 10 == 0:
                c.send(b"set t%d-n 0 0 1\r\n0\r\nincr t%d-n %d\r\n" % (t, t, i))
                if c.line() != b"STORED" or c.line() != b"%d" % i:
                    raise ValueError("incr")
                c.send(b"delete %s\r\n" % key)
                if c.line() != b"DELETED":
                    raise ValueError("delete")
        c.s.close()
        with lock:
            totals[0] += ops
            totals[1] += moved
    except Exception as e:  # report, do not hang the other threads
        with lock:
            errors.append("thread %d: %r" % (t, e))


ths = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
for th in ths:
    th.start()
for th in ths:
    th.join()
if errors:
    print("BAD " + "; ".join(errors))
    sys.exit(1)
print("OK %d %d" % (totals[0], totals[1]))
