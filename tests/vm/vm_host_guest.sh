#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The same native API on both sides of a host<->guest link: a host process
# (libivlink's host backend, a client of ivlinkd) and ivlink-pingpong in West
# with the default URI ("auto"), ping-pong (with a blocking phase) and 64 MiB
# each way, checked.
#
#   MODE vfio  (default) West has a vIOMMU: auto picks VFIO, MSI-X interrupts;
#   MODE poll  West boots without a vIOMMU (ivlink-vm --no-viommu): auto finds
#              no IOMMU group and falls back to polling the sysfs BARs (issue
#              4, test d); the host side still blocks on its eventfd and West
#              still rings its doorbell.
#
# Usage: vm_host_guest.sh IVLINKD IVLINK-VM BUILD-DIR [vfio|poll]
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
MODE=${4:-vfio}
vmt_init "host-guest-$MODE" "$1" "$2" "$3"
vmt_daemon 8

# With VFIO, West never spins (IVLINK_SPIN_NS=-1): it then sleeps for every
# reply, so each blocking round trip is a real host doorbell delivered as an
# MSI-X interrupt. With the default 20 us spin, a host reply that lands
# within the spin is caught without sleeping, and how many replies miss it
# is timing luck (a clean-clone run saw exactly 9 of 100).
spin='IVLINK_SPIN_NS=-1 '
extra=()
[ "$MODE" = poll ] && extra=(--no-viommu) && spin=''
echo "${spin}ivlink-pingpong --role client --count 500 --block-count 100 --gap-us 300 --bulk-mib 64" >"$tmp/west.sh"

IVLINK_ENDPOINT=$tmp/ivlinkd.sock "$PINGPONG" --role server --peer west --name host --timeout 150 \
	>"$tmp/host.log" 2>&1 &
host_pid=$!
ts_bg $host_pid
rc=0
"$LAUNCHER" -S "$tmp/ivlinkd.sock" -B "$BUILD" -g west -q "${extra[@]+"${extra[@]}"}" \
	--script "$tmp/west.sh" --logdir "$tmp/logs" --timeout 170 &
ts_bg $!
wait $! || rc=$?
hrc=0
wait $host_pid || hrc=$?
W=$tmp/logs/west.log H=$tmp/host.log
vmt_show "$W" west
vmt_show "$H" host

vmt_check "$([ $rc = 0 ] && [ $hrc = 0 ] && echo 1 || echo 0)" "West and the host process exited 0 ($rc, $hrc)"
if [ "$MODE" = poll ]; then
	vmt_check "$(vmt_has "$W" 'attached via poll .*no interrupts')" "West (no vIOMMU) fell back to polling"
else
	vmt_check "$(vmt_has "$W" 'attached via vfio .*MSI-X')" "West attached through VFIO with MSI-X"
	s=$(vmt_result "$W" pingpong-blocking-stats sleeps)
	vmt_check "$(vmt_gt "$(vmt_result "$H" pingpong-blocking-stats kicks_sent)" 9)" \
		"the host rang West's doorbell (eventfd -> QEMU -> MSI-X)"
	vmt_check "$(vmt_gt "$s" 9)" "West slept and was woken by interrupts ($s sleeps)"
fi
vmt_check "$(vmt_has "$H" 'attached via host')" "the host process used the host backend"
wt=$(vmt_result "$W" bulk tx_fnv) hr=$(vmt_result "$H" bulk rx_fnv)
ht=$(vmt_result "$H" bulk tx_fnv) wr=$(vmt_result "$W" bulk rx_fnv)
vmt_check "$([ -n "$wt" ] && [ "$wt" = "$hr" ] && echo 1 || echo 0)" "64 MiB West->host checked ($wt)"
vmt_check "$([ -n "$ht" ] && [ "$ht" = "$wr" ] && echo 1 || echo 0)" "64 MiB host->West checked ($ht)"
echo "[$vmt_name] round trip p50 $(vmt_result "$W" pingpong p50_us) us, blocking p50" \
	"$(vmt_result "$W" pingpong-blocking p50_us) us, bulk $(vmt_result "$W" bulk mbps) MB/s per direction"
vmt_done
