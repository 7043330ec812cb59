#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A guest started without a vIOMMU (ivlink-vm --no-viommu), the setting of
# the polling fallback: the ivshmem device has no IOMMU group, VFIO refuses
# it with a clear message, and the sysfs BARs still work: bytes written
# through one mapping are read back through a fresh one, and the region's
# peer table shows the guest UP.
#
# Usage: vm_no_viommu.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (also without QEMU or ivlinkd: a skip proves nothing).
set -euo pipefail
IVLINKD=$1 LAUNCHER=$2 BUILD=$3

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "[noiommu] FAIL: command qemu-system-x86_64 not found (scripts/ivl-deps vm)"
	exit 1
fi
if [ ! -x "$IVLINKD" ]; then
	echo "[noiommu] FAIL: ivlinkd not built ($IVLINKD)"
	exit 1
fi

# shellcheck source=tests/support/lib.sh
. "$(dirname "$0")/../support/lib.sh"
# The launcher's own trap stops its QEMUs and ivlinkd by pid.
ts_init_tmp noiommu
tmp=$ts_tmp

cat >"$tmp/run.sh" <<'EOS'
set -e
bdf=$(ivlink-probe list | cut -d' ' -f1)
[ ! -e /sys/bus/pci/devices/$bdf/iommu_group ] && echo "check: no IOMMU group"
if ivlink-vfio-probe selftest 2>/tmp/vfio.err; then
	echo "check: VFIO unexpectedly worked"
	exit 1
fi
grep -q "needs a vIOMMU" /tmp/vfio.err && echo "check: VFIO refused with a clear message"
id=$(ivlink-probe id)
off=$(ivlink-probe heap $id)
ivlink-probe write $off 49564c4e4b2d504f4c4c
ivlink-probe expect $off 49564c4e4b2d504f4c4c && echo "check: sysfs BAR2 write/read at $off"
ivlink-probe info | grep -q "^peer $id state up" && echo "check: peer $id UP in the region's table"
EOS

t0=$(date +%s)
rc=0
"$LAUNCHER" --daemon "$IVLINKD" -B "$BUILD" -g west --no-viommu --script "$tmp/run.sh" \
	--logdir "$tmp/logs" --timeout 200 &
vm_pid=$!
ts_bg "$vm_pid"
wait "$vm_pid" || rc=$?

tr -d '\r' <"$tmp/logs/west.log" | grep -E '^check:|^IVLINK-EXIT' | sed 's/^/[noiommu] /' || true
n=$(tr -d '\r' <"$tmp/logs/west.log" | grep -c '^check:' || true)
if [ "$rc" = 0 ] && [ "$n" = 4 ]; then
	echo "[noiommu] passed in $(($(date +%s) - t0)) s"
	exit 0
fi
echo "[noiommu] FAILED (launcher $rc, $n/4 checks)"
exit 1
