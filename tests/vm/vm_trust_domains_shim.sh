#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Trust domains for the socket shim (issue 13, items 2 and 3, the shim half
# of vm_trust_domains): regions r1 and r2, each its own ivlinkd started
# here; guest a is in both, b only in r1, c only in r2; every guest runs
# ivlink-guestd, and the shim without IVLINK_ENDPOINT attaches to every
# device the agent serves. tcp_pair (bytes checked by checksum at both
# ends), all under the shim:
#  - a listens (two servers), b and c connect: accelerated, b<->a through
#    r1 and c<->a through r2 (a's listeners are published in both);
#  - c listens, b connects: plain TCP; c counts no-shared-region in r2 (b's
#    address is no peer's of r2), b no-listener in r1 (it cannot see r2).
# The host polls `ivlinkctl status --json` of both daemons while the guests
# run: the ring bytes of each pair are in its own region only.
#
# Usage: vm_trust_domains_shim.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init trust-shim "$@"
PRELOAD=$BUILD/guest-lib/preload/libivlink-preload.so
IVLINKCTL=$BUILD/host-daemon/ivlinkctl
TP=$BUILD/tests/apps/tcp_pair
for f in "$PRELOAD" "$IVLINKCTL" "$TP"; do
	[ -e "$f" ] || { echo "[trust-shim] FAIL: $f is not built"; exit 1; }
done
BYTES=300000

for r in r1 r2; do
	"$IVLINKD" -F -S "$tmp/$r.sock" -l 64M -n 8 --name "$r" >"$tmp/ivlinkd-$r.log" 2>&1 &
	ts_bg $!
done
for r in r1 r2; do
	for _ in $(seq 100); do [ -S "$tmp/$r.sock" ] && break; sleep 0.05; done
	[ -S "$tmp/$r.sock" ] || { echo "[trust-shim] FAIL: ivlinkd $r did not start"; exit 1; }
done
for r in r1 r2; do vmt_poll_status "$tmp/$r.sock" "st-$r"; done

SHIM='env LD_PRELOAD=/usr/local/lib/libivlink-preload.so'
TPG=/usr/local/bin/tcp_pair
# client NAME HOST PORT: retried until the server listens (busybox sh).
client=$(
	cat <<EOS
client() {
	for i in \$(seq 120); do
		TCP_PAIR_HOST=\$2 $SHIM $TPG client \$3 $BYTES >/tmp/\$1.log 2>/tmp/\$1.err && break
		sleep 1
	done
	echo "\$1: \$(cat /tmp/\$1.log)"
}
EOS
)
cat >"$tmp/a.sh" <<EOS
ivlink-guestd -b || exit 1
TCP_PAIR_HOST=0.0.0.0 IVLINK_DEBUG=1 $SHIM $TPG server 7001 0 >/tmp/ab.log 2>/tmp/ab.err &
TCP_PAIR_HOST=0.0.0.0 IVLINK_DEBUG=1 $SHIM $TPG server 7002 0 >/tmp/ac.log 2>/tmp/ac.err &
wait
echo "a: ab server \$(grep OK /tmp/ab.log)"
echo "a: ac server \$(grep OK /tmp/ac.log)"
grep -h 'attached to\|published in' /tmp/ab.err | sed 's/^/a: /'
EOS
cat >"$tmp/b.sh" <<EOS
ivlink-guestd -b || exit 1
$client
client ab 192.0.2.11 7001 | sed 's/^/b: /'
client bc 192.0.2.13 7003 | sed 's/^/b: /'
EOS
cat >"$tmp/c.sh" <<EOS
ivlink-guestd -b || exit 1
TCP_PAIR_HOST=0.0.0.0 $SHIM $TPG server 7003 0 >/tmp/bc.log 2>&1 &
$client
client ca 192.0.2.11 7002 | sed 's/^/c: /'
wait
echo "c: bc server \$(grep OK /tmp/bc.log)"
# b's connection is the last one here: give the host's poller a snapshot.
sleep 2
EOS

rc=0
"$LAUNCHER" -B "$BUILD" -g a,b,c -q --keep-going \
	--region "r1=$tmp/r1.sock" --region "r2=$tmp/r2.sock" --attach b=r1 --attach c=r2 \
	--bin "$PRELOAD:/usr/local/lib/libivlink-preload.so" --bin "$TP:$TPG" \
	--script-on a "$tmp/a.sh" --script-on b "$tmp/b.sh" --script-on c "$tmp/c.sh" \
	--logdir "$tmp/logs" --timeout 200 &
ts_bg $!
wait $! || rc=$?
sleep 1.5 # one more snapshot of each region
A=$tmp/logs/a.log B=$tmp/logs/b.log C=$tmp/logs/c.log
for g in a b c; do vmt_log "$tmp/logs/$g.log" | grep -E "^$g: " | sed "s/^/[trust-shim] /"; done
ok="OK $BYTES [0-9a-f]*"
st() { vmt_stat_max "$1" "$2" "st-$3"; } # guest field region

vmt_check "$([ $rc = 0 ] && echo 1 || echo 0)" "the three guests exited 0 (launcher $rc)"
vmt_check "$(vmt_has "$A" "^a: .*attached to .*region 'r1'")" "a's shim attached to r1"
vmt_check "$(vmt_has "$A" "^a: .*attached to .*region 'r2'")" "a's shim attached to r2"
vmt_check "$(vmt_has "$B" "^b: ab: $ok")" "b->a: bytes through, checked (b)"
vmt_check "$(vmt_has "$A" "^a: ab server $ok")" "b->a: bytes checked by a"
vmt_check "$(vmt_has "$C" "^c: ca: $ok")" "c->a: bytes through, checked (c)"
vmt_check "$(vmt_has "$A" "^a: ac server $ok")" "c->a: bytes checked by a"
vmt_check "$(vmt_has "$B" "^b: bc: $ok")" "b->c: bytes through, checked (b)"
vmt_check "$(vmt_has "$C" "^c: bc server $ok")" "b->c: bytes checked by c"
# Each pair accelerated through its own region, its bytes only there.
vmt_check "$(vmt_gt "$(st b accelerated r1)" 0)" "b accelerated in r1"
vmt_check "$(vmt_gt "$(st b tx_bytes r1)" $((BYTES - 1)))" "b's ring bytes in r1 ($(st b tx_bytes r1))"
vmt_check "$(vmt_gt "$(st c accelerated r2)" 0)" "c accelerated in r2"
vmt_check "$(vmt_gt "$(st c tx_bytes r2)" $((BYTES - 1)))" "c's ring bytes in r2 ($(st c tx_bytes r2))"
vmt_check "$(vmt_gt "$(st a accelerated r1)" 0)" "a accelerated in r1"
vmt_check "$(vmt_gt "$(st a accelerated r2)" 0)" "a accelerated in r2"
ra1=$(st a rx_bytes r1) ra2=$(st a rx_bytes r2)
vmt_check "$(vmt_gt "$ra1" $((BYTES - 1)))" "a read b's bytes from r1 ($ra1)"
vmt_check "$(vmt_gt $((2 * BYTES)) "$ra1")" "a read none of c's bytes from r1 ($ra1 < 2 x $BYTES)"
vmt_check "$(vmt_gt "$ra2" $((BYTES - 1)))" "a read c's bytes from r2 ($ra2)"
vmt_check "$(vmt_gt $((2 * BYTES)) "$ra2")" "a read none of b's bytes from r2 ($ra2 < 2 x $BYTES)"
# b<->c share no region.
vmt_check "$(vmt_gt "$(st c no-shared-region r2)" 0)" "c (server) counted no-shared-region for b in r2"
vmt_check "$(vmt_gt "$(st b no-listener r1)" 0)" "b (client) counted no-listener for c in r1"
vmt_check "$(vmt_gt "$BYTES" "$(st c rx_bytes r2)")" "none of b's bytes in c's ring (b<->c is TCP)"
vmt_done
