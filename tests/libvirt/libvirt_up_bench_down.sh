#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ivlink-libvirt end to end: up (libvirtd/virtlogd started if needed, ivlinkd,
# both domains defined and started, both guests joined the region), a quick
# VM-to-VM bench (doorbell round trips, ivlink-bench over virtio-net and the
# native API), then down, which must leave no domain, no ivlinkd and no
# daemon it started. Figures are not judged: only that every row that can
# run here was measured and reported (results.json, CSV, PNG).
#
# With libvirt's default qemu.conf (issue 14): QEMU must run as
# libvirt-qemu, not root, and still join ivlinkd's region through the
# socket (ivlinkd --socket-group): both QEMU processes' uids are checked in
# /proc, and `ivlinkctl status --json` must show exactly two peers UP whose
# pids are those two QEMU processes. /etc/libvirt/qemu.conf must be the
# same after the test as before (absent, or byte for byte); the accounts
# and folders that up created for libvirtd (RUN/host-created) are removed
# again on every path.
#
# Usage: libvirt_up_bench_down.sh IVLINK-LIBVIRT BUILD-DIR
# Exit 0 pass, 1 fail (also when a program it needs is missing or a tool is
# not built), 77 skipped (not root: libvirt's system instance needs root).
set -euo pipefail
TOOL=$1 BUILD=$2
REPO=$(cd "$(dirname "$0")/../.." && pwd)
RUN=$BUILD/libvirt-test-run
PREFIX=ivlink-test-$$
t0=$(date +%s)

skip() {
	echo "[libvirt-test] SKIP: $*"
	exit 77
}
# A missing program is a failure, named (a skip proves nothing).
fail_missing() { # command ivl-deps-group
	echo "[libvirt-test] FAIL: command '$1' not found (scripts/ivl-deps $2)"
	exit 1
}
[ "$(id -u)" = 0 ] || skip "needs root"
for t in host-daemon/ivlinkd host-daemon/ivlinkctl bench/ivlink-bench bench/ivlink-bench-static \
	vm-configs/ivlink-vfio-probe; do
	[ -x "$BUILD/$t" ] || { echo "[libvirt-test] FAIL: $BUILD/$t not built"; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || "$REPO/scripts/ivl-deps" vm ||
	fail_missing qemu-system-x86_64 vm
if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null; then
	"$REPO/scripts/ivl-deps" libvirt || fail_missing "libvirtd/virsh" libvirt
fi
command -v python3 >/dev/null || fail_missing python3 apps
command -v nm >/dev/null || fail_missing nm build

conf_sum() { if [ -e /etc/libvirt/qemu.conf ]; then sha256sum </etc/libvirt/qemu.conf; else echo absent; fi; }
pre_conf=$(conf_sum)

rm -rf "$RUN"
down_done=0
# The second phase: three guests in two regions, next to the first pair.
RUN2=$BUILD/libvirt-test-run2
PREFIX2=$PREFIX-td
rm -rf "$RUN2"
down2_done=1
restored=0
# Undoes what up created on the host for libvirtd (accounts, folders), in
# reverse order, once libvirtd is down.
restore_host() {
	local what name
	[ "$restored" = 0 ] && [ -f "$RUN/host-created" ] || return 0
	restored=1
	if [ -n "$(libvirtd_here)" ]; then
		echo "[libvirt-test] libvirtd still runs: leaving $(tr '\n' ' ' <"$RUN/host-created")"
		return 0
	fi
	tac "$RUN/host-created" | while read -r what name; do
		case $what in
		user) userdel "$name" && echo "[libvirt-test] removed user $name (created by up)" ;;
		group) groupdel "$name" && echo "[libvirt-test] removed group $name (created by up)" ;;
		dir) rm -rf "$name" && echo "[libvirt-test] removed $name (created by up)" ;;
		esac
	done
}
# shellcheck disable=SC2317 # a trap
cleanup() {
	[ "$down2_done" = 1 ] || "$TOOL" -B "$BUILD" -r "$RUN2" -p "$PREFIX2" down || true
	rm -rf "$RUN2"
	[ "$down_done" = 1 ] || "$TOOL" -B "$BUILD" -r "$RUN" -p "$PREFIX" down || true
	restore_host || true
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

fail=0
check() { # ok message
	if [ "$1" = 1 ]; then echo "[libvirt-test] ok: $2"; else echo "[libvirt-test] FAIL: $2"; fail=1; fi
}
yes_if() { "$@" >/dev/null 2>&1 && echo 1 || echo 0; }
# libvirtd_here: the pid of the libvirtd of this root (its /run/libvirtd.pid,
# alive and really libvirtd), or nothing. Not a match by name: the pid
# namespace can hold another root's libvirtd (in scripts/fresh-check's
# chroot, the host's), and minimal systems have no pgrep.
is_libvirtd() { [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = libvirtd ]; }
libvirtd_here() {
	local p
	p=$(cat /run/libvirtd.pid 2>/dev/null || true)
	is_libvirtd "$p" && echo "$p"
	return 0
}
# Persistent definitions live here whether libvirtd runs or not.
# shellcheck disable=SC2317 # called through yes_if
undefined() { [ ! -e "/etc/libvirt/qemu/$1.xml" ]; }
# shellcheck disable=SC2317
running() { [ "$(virsh -q -c qemu:///system domstate "$1" 2>/dev/null)" = running ]; }

# Whether libvirtd ran before: down must then leave it running.
pre_libvirtd=$(libvirtd_here)

rc=0
"$TOOL" -B "$BUILD" -r "$RUN" -p "$PREFIX" up || rc=$?
check "$([ $rc = 0 ] && echo 1 || echo 0)" "up ($rc) in $(($(date +%s) - t0)) s"
if [ $rc = 0 ]; then
	check "$(yes_if running "$PREFIX-west")" "$PREFIX-west running"
	check "$(yes_if running "$PREFIX-east")" "$PREFIX-east running"
	# QEMU as libvirt's default user, joined through the socket.
	qemu_pids=""
	want_uid=$(id -u libvirt-qemu 2>/dev/null || echo none)
	for g in west east; do
		qp=$(cat "/run/libvirt/qemu/$PREFIX-$g.pid" 2>/dev/null || true)
		uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$qp/status" 2>/dev/null || true)
		qemu_pids="$qemu_pids $qp"
		check "$([ -n "$qp" ] && [ "$uids" = "$want_uid $want_uid $want_uid $want_uid" ] && echo 1 || echo 0)" \
			"QEMU of $PREFIX-$g (pid ${qp:-?}) runs as libvirt-qemu (uid $want_uid; real, effective, saved, fs: ${uids:-?})"
	done
	sock=$RUN/sock/ivlinkd.sock
	check "$([ "$(stat -c '%G %a' "$sock" 2>/dev/null)" = "libvirt-qemu 660" ] && echo 1 || echo 0)" \
		"ivlinkd's socket is group libvirt-qemu, mode 0660 ($(stat -c '%U:%G %a' "$sock" 2>/dev/null))"
	"$BUILD/host-daemon/ivlinkctl" status --json --socket "$sock" >"$RUN/status.json" 2>&1 || true
	python3 - "$RUN/status.json" "$qemu_pids" <<'PY' || fail=1
import json, sys
want = sorted(int(p) for p in sys.argv[2].split())
try:
    j = json.load(open(sys.argv[1]))
except ValueError as e:
    print("[libvirt-test] FAIL: ivlinkctl status --json: %s: %s" % (e, open(sys.argv[1]).read()[:400]))
    sys.exit(1)
up = [p for p in j["peers"] if p["state"] == "up"]
pids = sorted(p["pid"] for p in up)
ok = len(up) == 2 and pids == want
print("[libvirt-test] %s: ivlinkctl status --json: %d peers UP, pids %s (QEMU pids %s)"
      % ("ok" if ok else "FAIL", len(up), pids, want))
sys.exit(0 if ok else 1)
PY
	rc2=0
	"$TOOL" -B "$BUILD" -r "$RUN" -p "$PREFIX" up >/dev/null 2>&1 || rc2=$?
	check "$([ $rc2 = 0 ] && echo 1 || echo 0)" "a second up is a no-op ($rc2)"

	t1=$(date +%s)
	rc=0
	"$TOOL" -B "$BUILD" -r "$RUN" -p "$PREFIX" bench --quick --timeout 240 || rc=$?
	check "$([ $rc = 0 ] && echo 1 || echo 0)" "bench --quick ($rc) in $(($(date +%s) - t1)) s"
	# Every row this tree can run must have been measured: the native rows
	# whenever the guest backend is built into ivlink-bench-static.
	want="vm-tcp"
	syms=$(nm "$BUILD/bench/ivlink-bench-static" 2>/dev/null || true)
	case $syms in *" ivl__backend_vfio"*) want="$want vm-ivlink vm-ivlink-spin vm-ivlink-block" ;; esac
	python3 - "$RUN/bench" "$want" <<'PY' || fail=1
import json, os, sys
out, want = sys.argv[1], sys.argv[2].split()
j = json.load(open(os.path.join(out, "results.json")))
bad = 0
def check(ok, what):
    global bad
    print("[libvirt-test] %s: %s" % ("ok" if ok else "FAIL", what))
    bad |= not ok
lat = {(r["mode"], r["size"]): r for r in j["latency"]}
tput = {(r["mode"], r["size"]): r for r in j["throughput"]}
check(("vm-doorbell", 0) in lat and lat[("vm-doorbell", 0)]["avg_ns"] > 0,
      "vm-doorbell round trips measured")
for m in want:
    for s in (64, 1024, 16384):
        r = lat.get((m, s))
        check(r is not None and r["p50_ns"] and r["p50_ns"] > 0, "%s latency %d B" % (m, s))
    for s in (64, 1024, 16384, 262144):
        r = tput.get((m, s))
        check(r is not None and r["gbps"] > 0 and r["cpu_ns_per_msg"] > 0,
              "%s throughput %d B" % (m, s))
for f in ("latency.csv", "latency_cdf.csv", "throughput.csv", "latency_cdf.png",
          "throughput.png", "cpu.png"):
    check(os.path.getsize(os.path.join(out, f)) > 0, f)
print("[libvirt-test] skipped rows: %s" % j["skipped"])
sys.exit(1 if bad else 0)
PY
fi

# Issue 13: more guests and regions as libvirt domains, while the first
# run's libvirtd is up: a in regions r1 and r2, b only in r1, c only in r2.
# Each region has its ivlinkd; each domain one <shmem> per region, at PCI
# slot 0x10+k; each region has exactly its two QEMUs UP; down removes it all.
rc=0
down2_done=0
"$TOOL" -B "$BUILD" -r "$RUN2" -p "$PREFIX2" -g a,b,c --region r1 --region r2 \
	--attach b=r1 --attach c=r2 up || rc=$?
check "$([ $rc = 0 ] && echo 1 || echo 0)" "up of a, b, c in regions r1, r2 ($rc)"
if [ $rc = 0 ]; then
	for g in a b c; do
		check "$(yes_if running "$PREFIX2-$g")" "$PREFIX2-$g running"
		virsh -q -c qemu:///system dumpxml "$PREFIX2-$g" >"$RUN2/$g.live.xml" 2>/dev/null || true
	done
	shm_of() { # guest -> "socket:slot" of each shmem, sorted
		python3 - "$RUN2/$1.live.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
d = ET.parse(sys.argv[1]).getroot()
out = []
for s in d.iter("shmem"):
    a = s.find("address")
    out.append("%s:%s" % (s.find("server").get("path").rsplit("/", 1)[-1],
                          int(a.get("slot"), 16) if a is not None else "?"))
print(" ".join(sorted(out)))
PY
	}
	check "$([ "$(shm_of a)" = "r1.sock:16 r2.sock:17" ] && echo 1 || echo 0)" "a has r1 at slot 0x10 and r2 at 0x11 ($(shm_of a))"
	check "$([ "$(shm_of b)" = "r1.sock:16" ] && echo 1 || echo 0)" "b has only r1 ($(shm_of b))"
	check "$([ "$(shm_of c)" = "r2.sock:17" ] && echo 1 || echo 0)" "c has only r2 ($(shm_of c))"
	# virtio-net links all three through ivlink-udp-switch: every guest
	# reaches the other two (ping from inside each, by the command agent).
	nics=$(for g in a b c; do grep -c "<interface type='udp'>" "$RUN2/$g.live.xml" || true; done | tr '\n' ' ')
	check "$([ "$nics" = "1 1 1 " ] && echo 1 || echo 0)" "UDP interfaces of a, b, c: $nics(want 1 1 1)"
	swpid=$(cat "$RUN2/udp-switch.pid" 2>/dev/null || true)
	check "$([ -n "$swpid" ] && [ "$(cat "/proc/$swpid/comm" 2>/dev/null)" = ivlink-udp-swit ] && echo 1 || echo 0)" \
		"ivlink-udp-switch runs (pid ${swpid:-none})"
	declare -A ip=([a]=192.0.2.11 [b]=192.0.2.12 [c]=192.0.2.13)
	for g in a b c; do
		for h in a b c; do
			[ "$g" != "$h" ] || continue
			out=$("$TOOL" -B "$BUILD" -r "$RUN2" -p "$PREFIX2" --timeout 30 exec "$g" \
				"ping -c 2 -W 5 ${ip[$h]}" 2>&1) && rc=0 || rc=$?
			check "$([ $rc = 0 ] && echo "$out" | grep -q ' 0% packet loss' && echo 1 || echo 0)" \
				"$g pings $h (${ip[$h]}) over virtio-net: $(echo "$out" | grep 'packet loss' || echo "exit $rc: ${out:0:200}")"
		done
	done
	pid_of() { cat "/run/libvirt/qemu/$PREFIX2-$1.pid" 2>/dev/null || echo none; }
	for r in r1 r2; do
		case $r in r1) want="$(pid_of a) $(pid_of b)" ;; r2) want="$(pid_of a) $(pid_of c)" ;; esac
		"$BUILD/host-daemon/ivlinkctl" status --json --socket "$RUN2/sock/$r.sock" >"$RUN2/$r.json" 2>&1 || true
		python3 - "$RUN2/$r.json" "$want" "$r" <<'PY' || fail=1
import json, sys
want = sorted(int(p) for p in sys.argv[2].split() if p.isdigit())
try:
    j = json.load(open(sys.argv[1]))
except ValueError as e:
    print("[libvirt-test] FAIL: ivlinkctl status --json of %s: %s" % (sys.argv[3], e))
    sys.exit(1)
pids = sorted(p["pid"] for p in j["peers"] if p["state"] == "up")
ok = len(want) == 2 and pids == want and j["region"]["name"] == sys.argv[3]
print("[libvirt-test] %s: region %s (name %s): peers UP %s, want the QEMUs %s"
      % ("ok" if ok else "FAIL", sys.argv[3], j["region"]["name"], pids, want))
sys.exit(0 if ok else 1)
PY
	done
fi
rc=0
"$TOOL" -B "$BUILD" -r "$RUN2" -p "$PREFIX2" down || rc=$?
down2_done=1
check "$([ $rc = 0 ] && echo 1 || echo 0)" "down of a, b, c ($rc)"
for g in a b c; do check "$(yes_if undefined "$PREFIX2-$g")" "$PREFIX2-$g undefined"; done
check "$(yes_if test ! -e "$RUN2/ivlinkd-r1.pid" -a ! -e "$RUN2/ivlinkd-r2.pid")" "both region daemons stopped"
check "$([ -n "${swpid:-}" ] && [ "$(cat "/proc/$swpid/comm" 2>/dev/null)" != ivlink-udp-swit ] &&
	[ ! -e "$RUN2/udp-switch.pid" ] && echo 1 || echo 0)" "ivlink-udp-switch (pid ${swpid:-none}) stopped"
rm -rf "$RUN2"

# The libvirtd up started (down forgets it).
up_libvirtd=$(cat "$RUN/libvirtd.started" 2>/dev/null || true)
rc=0
"$TOOL" -B "$BUILD" -r "$RUN" -p "$PREFIX" down || rc=$?
down_done=1
check "$([ $rc = 0 ] && echo 1 || echo 0)" "down ($rc)"
check "$(yes_if undefined "$PREFIX-west")" "$PREFIX-west undefined"
check "$(yes_if undefined "$PREFIX-east")" "$PREFIX-east undefined"
check "$(yes_if test ! -e "$RUN/ivlinkd.pid")" "ivlinkd stopped"
if [ -z "$pre_libvirtd" ]; then
	check "$([ -n "$up_libvirtd" ] && ! is_libvirtd "$up_libvirtd" && [ -z "$(libvirtd_here)" ] &&
		echo 1 || echo 0)" "libvirtd (started by up, pid ${up_libvirtd:-none recorded}) stopped"
else
	check "$(yes_if is_libvirtd "$pre_libvirtd")" "libvirtd (not ours, pid $pre_libvirtd) left running"
fi
rc=0
"$TOOL" -B "$BUILD" -r "$RUN" -p "$PREFIX" down >/dev/null 2>&1 || rc=$?
check "$([ $rc = 0 ] && echo 1 || echo 0)" "a second down is a no-op ($rc)"
check "$([ "$(conf_sum)" = "$pre_conf" ] && echo 1 || echo 0)" \
	"/etc/libvirt/qemu.conf unchanged ($pre_conf)"
restore_host
echo "[libvirt-test] $([ $fail = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - t0)) s"
exit $fail
