# SPDX-License-Identifier: MIT
"""python/ivlink.py between two Python processes through a private ivlinkd.

Usage: python_two_processes.py IVLINKD MODULE_DIR   ($IVLINK_LIB: the .so)

The driver starts ivlinkd on a socket in a temporary directory and two
children, west and east, that import the module and open an Endpoint each.
They find each other by name in peers(), open the channel "py-bulk" with
small rings (so that 1 MiB wraps them many times and both sides block on
each other), and each sends 1 MiB in chunks of varying sizes with its own
position-dependent pattern while it receives and checks the other's, both
at once. Each then shuts down writing and must see the other's end of
stream (b"" from recv, and again after that). Then the errors: east closes
its end and west's send fails with BrokenPipeError (EPIPE); recv on west's
own closed channel is OSError(EBADF); opening a channel with its own id is
EINVAL and with an id nobody holds ECONNRESET; a recv with a timeout on an
idle channel is TimeoutError (ETIMEDOUT); an Endpoint on a socket that does
not exist is FileNotFoundError (ENOENT). Everything the driver started is
stopped and removed on every path.
"""
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TOTAL = 1 << 20
CHUNKS = (1, 7, 4096, 65536, 333, 12289, 100000, 2, 50000)
RING = 16384
MAX_PEERS = 8


def pattern(seed, n):
    """Byte i is a function of i and seed that no shift of the stream
    reproduces (a lost, repeated or reordered chunk changes it)."""
    return bytes(((i * 131 + (i >> 9) * 7 + seed * 29) & 0xFF) for i in range(n))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def expect_oserror(fn, want, what):
    try:
        fn()
    except OSError as e:
        if e.errno != want:
            fail("%s: errno %s (%s), expected %s" % (what, e.errno, e, errno.errorcode[want]))
        print("ok: %s: %s (%s)" % (what, type(e).__name__, errno.errorcode[want]), flush=True)
        return e
    fail("%s: no error, expected %s" % (what, errno.errorcode[want]))


def child(role, sock, moddir):
    sys.path.insert(0, moddir)
    import ivlink

    other = "east" if role == "west" else "west"
    mine, theirs = (1, 2) if role == "west" else (2, 1)
    with ivlink.Endpoint(uri="host:" + sock, name="py-" + role, connect_timeout=5) as ep:
        me = ep.id
        deadline = time.monotonic() + 20
        remote = None
        while remote is None:
            for p in ep.peers():
                if p.name == "py-" + other and not p.is_self:
                    remote = p.id
            if remote is None:
                if time.monotonic() > deadline:
                    fail("%s: peer py-%s never appeared in peers()" % (role, other))
                time.sleep(0.02)
        selfs = [p for p in ep.peers() if p.is_self]
        if len(selfs) != 1 or selfs[0].id != me or selfs[0].name != "py-" + role:
            fail("%s: peers() does not show this endpoint as itself: %s" % (role, selfs))
        print("ok: %s: id %d, found py-%s as id %d" % (role, me, other, remote), flush=True)

        ch = ep.channel("py-bulk", remote, ring_size=RING, timeout=20,
                        send_timeout=30, recv_timeout=30)
        out = pattern(mine, TOTAL)
        want = pattern(theirs, TOTAL)
        send_err = []

        def sender():
            try:
                off, k = 0, 0
                view = memoryview(out)
                while off < TOTAL:
                    n = min(CHUNKS[k % len(CHUNKS)], TOTAL - off)
                    # Alternate bytes and memoryview slices (the no-copy
                    # and the copy path of send()).
                    chunk = out[off:off + n] if k % 2 else view[off:off + n]
                    ch.sendall(chunk)
                    off += n
                    k += 1
                ch.shutdown(ivlink.SHUT_WR)
            except BaseException as e:  # reported by the main thread
                send_err.append(e)

        t = threading.Thread(target=sender)
        t.start()
        got = bytearray()
        k = 0
        while True:
            n = CHUNKS[(k + 3) % len(CHUNKS)]
            if k % 2:
                data = ch.recv(n)
            else:
                buf = bytearray(n)
                data = bytes(buf[:ch.recv_into(buf)])
            if not data:
                break
            got += data
            if len(got) > TOTAL:
                fail("%s: received more than %d bytes" % (role, TOTAL))
            k += 1
        t.join(60)
        if t.is_alive():
            fail("%s: the sender is still blocked" % role)
        if send_err:
            fail("%s: send failed: %r" % (role, send_err[0]))
        if len(got) != TOTAL:
            fail("%s: %d bytes before end of stream, expected %d" % (role, len(got), TOTAL))
        if bytes(got) != want:
            bad = next(i for i in range(TOTAL) if got[i] != want[i])
            fail("%s: byte %d is %d, expected %d" % (role, bad, got[bad], want[bad]))
        if ch.recv(10) != b"":
            fail("%s: data after end of stream" % role)
        st = ch.stats()
        if st["rx_bytes"] != TOTAL or st["tx_bytes"] != TOTAL or st["tx_ring_size"] != RING:
            fail("%s: stats %s" % (role, st))
        print("ok: %s: sent and received %d bytes, pattern checked, end of stream" % (role, TOTAL),
              flush=True)

        if role == "east":
            ch.close()
            # Stay until west has seen the close (it exits first).
            sys.stdin.read()
            return
        # West: east's close makes sends fail with EPIPE (once it happened).
        deadline = time.monotonic() + 20
        while True:
            try:
                ch.send(b"x")
            except OSError as e:
                if e.errno != errno.EPIPE:
                    fail("west: send after the remote closed: %r, expected EPIPE" % e)
                print("ok: west: send after east closed: %s (EPIPE)" % type(e).__name__,
                      flush=True)
                break
            if time.monotonic() > deadline:
                fail("west: send still succeeds 20 s after east closed")
            time.sleep(0.01)
        ch.close()
        expect_oserror(lambda: ch.recv(1), errno.EBADF, "west: recv on its closed channel")
        expect_oserror(lambda: ep.channel("py-self", me, timeout=1), errno.EINVAL,
                       "west: channel to its own id")
        nobody = next(i for i in range(MAX_PEERS) if i not in (me, remote))
        expect_oserror(lambda: ep.channel("py-nobody", nobody, timeout=1), errno.ECONNRESET,
                       "west: channel to id %d that nobody holds" % nobody)
        expect_oserror(lambda: ep.channel("x" * 60, remote, timeout=1), errno.EINVAL,
                       "west: channel name longer than IVL_NAME_MAX")
    expect_oserror(lambda: ep.id, errno.EBADF, "west: id of its closed endpoint")
    expect_oserror(lambda: ivlink.Endpoint(uri="host:" + sock + ".missing"), errno.ENOENT,
                   "west: endpoint on a missing socket")


def idle_timeout(sock, moddir):
    """A recv with a timeout on an idle channel: TimeoutError (ETIMEDOUT)."""
    sys.path.insert(0, moddir)
    import ivlink

    with ivlink.Endpoint(uri="host:" + sock, name="py-a") as a, \
            ivlink.Endpoint(uri="host:" + sock, name="py-b") as b:
        res = {}

        def open_b():
            res["b"] = b.channel("py-idle", a.id, timeout=10)
        t = threading.Thread(target=open_b)
        t.start()
        ca = a.channel("py-idle", b.id, timeout=10)
        t.join(15)
        if "b" not in res:
            fail("idle: the second side did not open")
        with ca, res["b"]:
            ca.set_timeouts(recv=0.2)
            t0 = time.monotonic()
            e = expect_oserror(lambda: ca.recv(10), errno.ETIMEDOUT, "idle: recv with 0.2 s timeout")
            if not isinstance(e, TimeoutError) or time.monotonic() - t0 < 0.15:
                fail("idle: %r after %.3f s" % (e, time.monotonic() - t0))
            expect_oserror(lambda: ca.recv(10, ivlink.DONTWAIT), errno.EAGAIN,
                           "idle: recv DONTWAIT")
            res["b"].send(b"ping")
            if ca.recv(10) != b"ping":
                fail("idle: ping lost")


def driver(ivlinkd, moddir):
    tmp = tempfile.mkdtemp(prefix="ivl-py-")
    sock = os.path.join(tmp, "ivlinkd.sock")
    log = open(os.path.join(tmp, "ivlinkd.log"), "w")
    procs = []
    ok = False
    try:
        d = subprocess.Popen([ivlinkd, "-F", "-S", sock, "-l", "16M", "--max-peers",
                              str(MAX_PEERS), "--log-level=warn"], stderr=log)
        procs.append(d)
        for _ in range(200):
            if os.path.exists(sock + ".ctl"):
                break
            if d.poll() is not None:
                fail("ivlinkd exited with %d" % d.returncode)
            time.sleep(0.025)
        else:
            fail("ivlinkd did not come up")
        me = os.path.abspath(__file__)
        kids = {}
        for role in ("east", "west"):
            p = subprocess.Popen([sys.executable, me, "--child", role, sock, moddir],
                                 stdin=subprocess.PIPE)
            procs.append(p)
            kids[role] = p
        rc = kids["west"].wait(timeout=120)
        if rc != 0:
            fail("west exited with %d" % rc)
        kids["east"].stdin.close()
        rc = kids["east"].wait(timeout=30)
        if rc != 0:
            fail("east exited with %d" % rc)
        p = subprocess.Popen([sys.executable, me, "--idle", sock, moddir])
        procs.append(p)
        if p.wait(timeout=60) != 0:
            fail("the timeout check failed")
        ok = True
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        log.close()
        if not ok:
            with open(os.path.join(tmp, "ivlinkd.log")) as f:
                sys.stderr.write("--- ivlinkd.log\n" + f.read())
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS python_two_processes", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "--idle":
        idle_timeout(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3:
        driver(sys.argv[1], sys.argv[2])
    else:
        fail("usage: %s IVLINKD MODULE_DIR" % sys.argv[0])
