#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The native API between two guests (issue 4, test a): West and East boot
# with a vIOMMU, each runs ivlink-pingpong on the "vfio:" backend (the
# process owns the device: VFIO, MSI-X on eventfds, Doorbell register):
#  - 1000 ping-pong round trips, then 200 with a pause before each so that
#    East is asleep: those must be carried by doorbell interrupts (doorbells
#    sent and sleeps counted on both sides), not by spinning or polling;
#  - 256 MiB each way at once, every word checked, FNV checksums crossed
#    (West's tx = East's rx and the reverse).
#
# Usage: vm_native_west_east.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init native "$@"
MIB=${IVL_VM_BULK_MIB:-256}

cat >"$tmp/west.sh" <<EOS
ivlink-pingpong --uri vfio: --role client --count 1000 --block-count 200 --gap-us 300 --bulk-mib $MIB
EOS
echo 'ivlink-pingpong --uri vfio: --role server' >"$tmp/east.sh"

rc=0
"$LAUNCHER" --daemon "$IVLINKD" -B "$BUILD" -g west,east -q \
	--script-west "$tmp/west.sh" --script-east "$tmp/east.sh" \
	--logdir "$tmp/logs" --timeout 170 &
ts_bg $!
wait $! || rc=$?
W=$tmp/logs/west.log E=$tmp/logs/east.log
vmt_show "$W" west
vmt_show "$E" east

vmt_check "$([ $rc = 0 ] && echo 1 || echo 0)" "both guests exited 0 (launcher $rc)"
vmt_check "$(vmt_has "$W" 'attached via vfio .*MSI-X')" "West attached through VFIO with MSI-X"
vmt_check "$(vmt_has "$E" 'attached via vfio .*MSI-X')" "East attached through VFIO with MSI-X"
p50=$(vmt_result "$W" pingpong-blocking p50_us)
vmt_check "$(vmt_gt "$p50" 0)" "blocking round trip measured (p50 ${p50:-?} us)"
ek=$(vmt_result "$E" pingpong-blocking-stats kicks_sent)
es=$(vmt_result "$E" pingpong-blocking-stats sleeps)
wk=$(vmt_result "$W" pingpong-blocking-stats kicks_sent)
# East sleeps before nearly every ping (West pauses 300 us first), and West
# must ring it awake: at least half of the 200 round trips each way.
vmt_check "$(vmt_gt "$es" 99)" "East slept on its vector in the blocking phase ($es sleeps)"
vmt_check "$(vmt_gt "$wk" 99)" "West rang East's doorbell ($wk doorbells)"
vmt_check "$(vmt_gt "$ek" 0)" "East rang West's doorbell ($ek doorbells)"
wt=$(vmt_result "$W" bulk tx_fnv) wr=$(vmt_result "$W" bulk rx_fnv)
et=$(vmt_result "$E" bulk tx_fnv) er=$(vmt_result "$E" bulk rx_fnv)
vmt_check "$([ -n "$wt" ] && [ "$wt" = "$er" ] && echo 1 || echo 0)" "$MIB MiB West->East, checksum $wt = $er"
vmt_check "$([ -n "$et" ] && [ "$et" = "$wr" ] && echo 1 || echo 0)" "$MIB MiB East->West, checksum $et = $wr"
vmt_check "$([ "$(vmt_result "$W" bulk bad)" = 0 ] && [ "$(vmt_result "$E" bulk bad)" = 0 ] && echo 1 || echo 0)" \
	"every word checked on both sides"
echo "[native] West<->East: round trip p50 $(vmt_result "$W" pingpong p50_us) us (spin then block)," \
	"p50 $p50 us (blocking, interrupts); bulk $(vmt_result "$W" bulk mbps) MB/s per direction"
vmt_done
