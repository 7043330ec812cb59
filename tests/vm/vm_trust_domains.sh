#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Trust domains that hold (issue 13, item 3): two regions, r1 and r2, each
# served by its own ivlinkd (started by the launcher with --region). Guest a
# is in both, b only in r1, c only in r2.
#  - a lists two regions (ivl_regions(), through the agent), b and c one;
#  - a<->c and then a<->b work natively, each through its own region
#    (endpoint URIs vfio:name=r2 / vfio:name=r1), ping-pong messages
#    carrying a marker per pair (--fill), checked on return;
#  - b cannot open r2 (no such device: -ENODEV) and finds no peer c in r1;
#  - after a<->c is over (a serves b only then), b unbinds every driver and
#    scans every memory BAR it can map: no byte of a<->c's marker anywhere,
#    while its own pair's marker is found (the scan sees ring data), and a's
#    scan finds a<->c's marker in r2's device, PCI slot 0x11, only.
#
# Usage: vm_trust_domains.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init trust "$@"
# Markers built at run time, so they exist nowhere else (not in the image).
AC=TENANT-AC-$$-$RANDOM AB=TENANT-AB-$$-$RANDOM
PP="ivlink-pingpong --count 300 --size 64 --timeout 120"

# Unbinds every PCI driver (so sysfs lets the BARs be mapped), stops the agent.
unbind=$(
	cat <<'EOS'
kill $(pidof ivlink-guestd) 2>/dev/null; sleep 0.5
for d in /sys/bus/pci/devices/*; do [ -e $d/driver ] && echo ${d##*/} >$d/driver/unbind; done
EOS
)

cat >"$tmp/a.sh" <<EOS
ivlink-guestd -b || exit 1
ivlink-pingpong --regions | sed 's/^/a: /'
$PP --uri vfio:name=r2 --role client --peer c --channel ac --fill $AC; echo "a: ac rc=\$?"
$PP --uri vfio:name=r1 --role server --peer b --channel ab; echo "a: ab rc=\$?"
$unbind
ivlink-probe scan $AC | sed 's/^/a: /'
EOS
cat >"$tmp/b.sh" <<EOS
ivlink-guestd -b || exit 1
ivlink-pingpong --regions | sed 's/^/b: /'
ivlink-probe list | sed 's/^/b: dev /'
$PP --uri vfio:name=r2 --role client --peer a --channel x >/tmp/r2.log 2>&1; echo "b: r2 rc=\$?"
sed 's/^/b: r2 /' /tmp/r2.log
$PP --uri vfio:name=r1 --role client --peer c --channel bc --timeout 5 >/tmp/bc.log 2>&1; echo "b: bc rc=\$?"
sed 's/^/b: bc /' /tmp/bc.log
$PP --uri vfio:name=r1 --role client --peer a --channel ab --fill $AB; echo "b: ab rc=\$?"
$unbind
ivlink-probe scan $AC | sed 's/^/b: ac /'
ivlink-probe scan $AB | sed 's/^/b: ab /'
EOS
cat >"$tmp/c.sh" <<EOS
ivlink-guestd -b || exit 1
ivlink-pingpong --regions | sed 's/^/c: /'
$PP --uri vfio:name=r2 --role server --peer a --channel ac; echo "c: ac rc=\$?"
EOS

rc=0
"$LAUNCHER" --daemon "$IVLINKD" -B "$BUILD" -g a,b,c --no-net -q --keep-going \
	--region r1 --region r2 --attach b=r1 --attach c=r2 \
	--script-on a "$tmp/a.sh" --script-on b "$tmp/b.sh" --script-on c "$tmp/c.sh" \
	--logdir "$tmp/logs" --timeout 200 &
ts_bg $!
wait $! || rc=$?
A=$tmp/logs/a.log B=$tmp/logs/b.log C=$tmp/logs/c.log
for g in a b c; do vmt_log "$tmp/logs/$g.log" | grep -E "^$g: " | sed "s/^/[trust] /"; done

vmt_check "$([ $rc = 0 ] && echo 1 || echo 0)" "the three guests exited 0 (launcher $rc)"
vmt_check "$(vmt_has "$A" '^a: 2 region(s)')" "a lists two regions"
vmt_check "$(vmt_has "$A" '^a: region uri=vfio:0000:00:10.0 name=r1 ')" "a: r1 is PCI slot 0x10"
vmt_check "$(vmt_has "$A" '^a: region uri=vfio:0000:00:11.0 name=r2 ')" "a: r2 is PCI slot 0x11"
vmt_check "$(vmt_has "$B" '^b: 1 region(s)')" "b lists one region"
vmt_check "$(vmt_has "$B" '^b: region uri=vfio:0000:00:10.0 name=r1 ')" "b's one region is r1"
vmt_check "$(vmt_has "$C" '^c: region uri=vfio:0000:00:11.0 name=r2 ')" "c's one region is r2"
vmt_check "$([ "$(vmt_log "$B" | grep -c '^b: dev ')" = 1 ] && echo 1 || echo 0)" \
	"b has exactly one ivshmem device"
vmt_check "$(vmt_has "$A" '^a: ac rc=0')" "a<->c natively through r2"
vmt_check "$(vmt_has "$C" '^c: ac rc=0')" "c<->a natively through r2"
vmt_check "$(vmt_has "$A" "^client: peer [0-9] <-> peer [0-9], channel 'ac', region 'r2'")" "a's channel to c is in r2"
vmt_check "$(vmt_has "$A" '^a: ab rc=0')" "a<->b natively through r1"
vmt_check "$(vmt_has "$B" '^b: ab rc=0')" "b<->a natively through r1"
vmt_check "$(vmt_has "$B" "^client: peer [0-9] <-> peer [0-9], channel 'ab', region 'r1'")" "b's channel to a is in r1"
vmt_check "$(vmt_has "$B" '^b: r2 rc=1')" "b cannot open region r2"
vmt_check "$(vmt_has "$B" '^b: r2 .*ivl_endpoint_open(vfio:name=r2): No such device')" \
	"b's error for r2 is clear (No such device)"
vmt_check "$(vmt_has "$B" '^b: bc rc=1')" "b cannot open a channel to c"
vmt_check "$(vmt_has "$B" "^b: bc .*no peer 'c'")" "b's error for c is clear (no peer 'c')"
# The scans: the negative one counts only if the scanner sees ring data.
vmt_check "$(vmt_has "$A" '^a: scan 0000:00:11.0 bar2: FOUND')" "a's scan finds a<->c's marker in r2 (the scan works)"
vmt_check "$(vmt_has "$A" '^a: scan 0000:00:10.0 bar2: .* 0 hit')" "a's scan finds no a<->c marker in r1"
vmt_check "$(vmt_has "$B" '^b: ab scan 0000:00:10.0 bar2: FOUND')" "b's scan finds its own pair's marker in r1"
vmt_check "$(vmt_has "$B" '^b: ac scan 0000:00:10.0 bar2: 67108864 bytes, 0 hit')" "b scanned all of r1's 64 MiB"
vmt_check "$(vmt_has "$B" '^b: ac scan: [1-9][0-9]* memory BAR(s), .* 0 hit(s), 0 not mappable')" \
	"b: no byte of a<->c's marker in any BAR it can map"
vmt_done
