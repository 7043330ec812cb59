#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ivlink-udp-switch, the guests' Ethernet switch on 127.0.0.1 that
ivlink-libvirt starts for three or more guests: three UDP sockets play the
guests' QEMU netdevs (each sends to the hub from its own port). Checked:
broadcast and unknown destinations flood to every other guest and never
back; a learned destination gets the frame alone; a frame from a port not
on the command line, a runt and a multicast source are dropped and counted;
invalid command lines exit 2; SIGTERM prints the counters, removes the pid
file and exits 0.

Usage: udp_switch.py PATH-TO-ivlink-udp-switch
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SW = sys.argv[1]
LO = "127.0.0.1"
fails = 0


def check(ok, what):
    global fails
    print("[udp-switch] %s: %s" % ("ok" if ok else "FAIL", what))
    if not ok:
        fails += 1


def mac(i):
    return bytes([0x52, 0x54, 0x00, 0x49, 0x56, i])


BCAST = b"\xff" * 6


def frame(dst, src, tag):
    return dst + src + b"\x08\x00" + tag.encode() + b"\x00" * 32


def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((LO, 0))
    s.settimeout(0.4)
    return s


def received(s):
    """Every datagram that reaches s within its timeout."""
    out = []
    while True:
        try:
            out.append(s.recv(65536))
        except socket.timeout:
            return out


def bad_cmdline(args, what):
    r = subprocess.run([SW] + args, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    check(r.returncode == 2 and r.stderr.strip() != "",
          "%s: exit %d (want 2): %s" % (what, r.returncode, r.stderr.strip()[:120]))


guests = [sock() for _ in range(3)]
foreign = sock()
ports = [g.getsockname()[1] for g in guests]
tmp = tempfile.mkdtemp(prefix="ivl-udpsw-")
pidfile = os.path.join(tmp, "sw.pid")
errlog = open(os.path.join(tmp, "sw.err"), "w+")

proc = None
for attempt in range(20):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((LO, 0))
    hub = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([SW, "-P", pidfile, str(hub)] + [str(p) for p in ports],
                            stdin=subprocess.DEVNULL, stderr=errlog)
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end and not os.path.exists(pidfile) and proc.poll() is None:
        time.sleep(0.02)
    if os.path.exists(pidfile):
        break
    proc.wait()
    proc = None  # the port was taken in between: another one
if proc is None:
    print("[udp-switch] FAIL: the switch did not start")
    sys.exit(1)
try:
    check(open(pidfile).read().strip() == str(proc.pid), "pid file holds the switch's pid")
    a, b, c = guests
    HUB = (LO, hub)

    a.sendto(frame(BCAST, mac(1), "bcast-a"), HUB)
    got = [received(g) for g in guests]
    check(got[0] == [] and [f[14:21] for f in got[1]] == [b"bcast-a"] and
          [f[14:21] for f in got[2]] == [b"bcast-a"],
          "a broadcast reaches b and c once each, not a (%s)" % [len(x) for x in got])

    b.sendto(frame(mac(1), mac(2), "uni-b-a"), HUB)
    got = [received(g) for g in guests]
    check([f[14:21] for f in got[0]] == [b"uni-b-a"] and got[1] == [] and got[2] == [],
          "a frame to a's learned MAC reaches a alone (%s)" % [len(x) for x in got])

    c.sendto(frame(mac(9), mac(3), "unk-c"), HUB)
    got = [received(g) for g in guests]
    check(len(got[0]) == 1 and len(got[1]) == 1 and got[2] == [],
          "an unknown destination floods to a and b (%s)" % [len(x) for x in got])

    a.sendto(frame(mac(2), mac(1), "uni-a-b"), HUB)
    got = [received(g) for g in guests]
    check(got[0] == [] and [f[14:21] for f in got[1]] == [b"uni-a-b"] and got[2] == [],
          "a frame to b's learned MAC reaches b alone (%s)" % [len(x) for x in got])

    foreign.sendto(frame(BCAST, mac(7), "foreign"), HUB)
    a.sendto(b"\x01" * 10, HUB)                                  # runt
    a.sendto(frame(BCAST, b"\x01\x00\x5e\x00\x00\x01", "mc-src"), HUB)
    got = [received(g) for g in guests]
    check(all(x == [] for x in got), "foreign sender, runt and multicast source: nothing "
          "delivered (%s)" % [len(x) for x in got])

    # A 9000-byte frame (jumbo) goes through whole.
    big = frame(BCAST, mac(2), "jumbo") + bytes(range(256)) * 35
    b.sendto(big, HUB)
    got = [received(g) for g in guests]
    check(got[0] == [big] and got[2] == [big] and got[1] == [], "a %d-byte frame whole" % len(big))

    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=10)
    errlog.seek(0)
    err = errlog.read()
    check(rc == 0, "SIGTERM: exit %d" % rc)
    check(not os.path.exists(pidfile), "pid file removed at exit")
    check("5 frames switched" in err and "1 foreign sender, 1 runt, 1 bad source MAC" in err,
          "counters printed: %s" % " | ".join(err.strip().splitlines()[-1:]))
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()

p = [str(x) for x in ports]
bad_cmdline([str(hub), p[0]], "one guest port")
bad_cmdline([str(hub), p[0], p[0]], "a port given twice")
bad_cmdline([str(hub), p[0], "70000"], "port 70000")
bad_cmdline(["-a", "192.0.2.1", str(hub), p[0], p[1]], "a non-loopback address")
bad_cmdline([str(hub)] + [str(20000 + i) for i in range(65)], "65 guest ports")
for f in os.listdir(tmp):
    os.unlink(os.path.join(tmp, f))
os.rmdir(tmp)
print("[udp-switch] %s" % ("passed" if fails == 0 else "FAILED (%d)" % fails))
sys.exit(1 if fails else 0)
