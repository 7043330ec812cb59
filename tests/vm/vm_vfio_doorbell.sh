#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Doorbell interrupts between two guests through VFIO and MSI-X (issue 4's
# basis): West and East boot with a vIOMMU (intremap=on), bind the ivshmem
# device to vfio-pci, arm all MSI-X vectors; each first rings its own
# doorbell (selftest), then West rings East's vector 1 and East answers on
# West's vector 1, 100 times, West printing the round trips.
#
# Usage: vm_vfio_doorbell.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (also without QEMU or ivlinkd: a skip proves nothing).
set -euo pipefail
IVLINKD=$1 LAUNCHER=$2 BUILD=$3
ROUNDS=${IVL_VM_ROUNDS:-100}

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "[vfio] FAIL: command qemu-system-x86_64 not found (scripts/ivl-deps vm)"
	exit 1
fi
if [ ! -x "$IVLINKD" ]; then
	echo "[vfio] FAIL: ivlinkd not built ($IVLINKD)"
	exit 1
fi
[ -x "$BUILD/vm-configs/ivlink-vfio-probe" ] || {
	echo "[vfio] FAIL: $BUILD/vm-configs/ivlink-vfio-probe not built"
	exit 1
}

# shellcheck source=tests/support/lib.sh
. "$(dirname "$0")/../support/lib.sh"
# The launcher's own trap stops its QEMUs and ivlinkd by pid.
ts_init_tmp vfiotest
tmp=$ts_tmp

cat >"$tmp/west.sh" <<EOS
set -e
ivlink-vfio-probe selftest 1
ivlink-vfio-probe send auto 1 $ROUNDS 120000
EOS
cat >"$tmp/east.sh" <<EOS
set -e
ivlink-vfio-probe selftest 2
ivlink-vfio-probe recv auto 1 $ROUNDS 120000
EOS

t0=$(date +%s)
rc=0
"$LAUNCHER" --daemon "$IVLINKD" -B "$BUILD" -g west,east \
	--script-west "$tmp/west.sh" --script-east "$tmp/east.sh" \
	--logdir "$tmp/logs" --timeout 200 &
vm_pid=$!
ts_bg "$vm_pid"
wait "$vm_pid" || rc=$?

for g in west east; do
	tr -d '\r' <"$tmp/logs/$g.log" | grep -E '^vfio:|^IVLINK-EXIT' | sed "s/^/[vfio] $g: /" || true
done
fail=0
check() { # ok message
	if [ "$1" = 1 ]; then echo "[vfio] ok: $2"; else echo "[vfio] FAIL: $2"; fail=1; fi
}
has() { tr -d '\r' <"$tmp/logs/$1.log" | grep -q "$2" && echo 1 || echo 0; }
check "$([ $rc = 0 ] && echo 1 || echo 0)" "both guests exited 0 (launcher $rc)"
check "$(has west 'selftest: own doorbell on vector 1 arrived')" "West received its own doorbell via MSI-X"
check "$(has east 'selftest: own doorbell on vector 2 arrived')" "East received its own doorbell via MSI-X"
check "$(has east "recv: $ROUNDS interrupts from peer")" "East received $ROUNDS interrupts from West and answered"
check "$(has west "send: $ROUNDS doorbell round trips")" "West received East's $ROUNDS answers"
echo "[vfio] $([ $fail = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - t0)) s"
exit $fail
