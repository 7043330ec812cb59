#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A guest dies mid-transfer and comes back (issue 4, test c). One ivlinkd,
# West and East booted by two launchers on it. West moves a large bulk
# transfer to East; when West has received 64 MiB, East's QEMU is killed
# (SIGKILL). The daemon marks East GONE and rings West's control vector:
# West's blocked calls must return ECONNRESET (ivlink-pingpong
# --expect-reset exits 3). Then East boots again, rejoins (a new epoch), and
# a fresh channel between the two works, checked end to end.
#
# Usage: vm_peer_restart.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init restart "$@"
vmt_daemon 8

# busybox sh has no PIPESTATUS: keep the exit code in a file.
cat >"$tmp/west.sh" <<'EOS'
( ivlink-pingpong --role client --channel first --count 10 --bulk-mib 4096 --expect-reset -v \
	--timeout 120; echo $? >/tmp/rc ) 2>&1 | grep -v 'libivlink debug: channel'
rc=$(cat /tmp/rc)
echo "check: first transfer ended with exit $rc (3 = reset seen)"
[ "$rc" = 3 ] || exit 1
ivlink-pingpong --role client --channel second --count 100 --bulk-mib 32 --timeout 150
EOS
echo 'ivlink-pingpong --role server --channel first --timeout 120' >"$tmp/east1.sh"
echo 'ivlink-pingpong --role server --channel second --timeout 150' >"$tmp/east2.sh"

vm() { # name script logdir
	mkdir -p "$3"
	# The killed East's launcher complains at length: keep that in a file.
	"$LAUNCHER" -S "$tmp/ivlinkd.sock" -B "$BUILD" -g "$1" -q --script "$2" --logdir "$3" \
		--timeout 170 2>"$3/launcher.err" &
	ts_bg $!
}
wait_log() { # file pattern seconds
	local t=$(($(date +%s) + $3))
	while [ "$(date +%s)" -lt $t ]; do
		vmt_log "$1" | grep -q -- "$2" && return 0
		sleep 0.2
	done
	return 1
}

vm west "$tmp/west.sh" "$tmp/w"
west_launcher=$!
wait_log "$tmp/w/west.log" '^\[init\] up' 60 || true
vm east "$tmp/east1.sh" "$tmp/e1"
east1_launcher=$!
if wait_log "$tmp/w/west.log" 'bulk: 64 MiB received' 120; then
	kill -KILL "$(cat "$tmp/e1/east.pid")"
	echo "[restart] East's QEMU killed mid-transfer"
	killed=1
else
	killed=0
fi
wait "$east1_launcher" || true
wait_log "$tmp/ivlinkd.log" 'peer 1 left' 20 || true
vm east "$tmp/east2.sh" "$tmp/e2"
east2_launcher=$!
wrc=0 erc=0
wait "$west_launcher" || wrc=$?
wait "$east2_launcher" || erc=$?
[ $wrc = 0 ] || cat "$tmp/w/launcher.err"
[ $erc = 0 ] || cat "$tmp/e2/launcher.err"
W=$tmp/w/west.log E=$tmp/e2/east.log
vmt_show "$W" west | grep -v RESULT
vmt_show "$E" east | grep -v RESULT
sed 's/^/[restart] ivlinkd: /' "$tmp/ivlinkd.log" | grep -E 'joined|left' || true

vmt_check "$killed" "West was mid-transfer when East was killed"
vmt_check "$(vmt_has "$tmp/ivlinkd.log" 'peer 1 left')" "the daemon marked East GONE"
vmt_check "$(vmt_has "$W" 'bulk: failed after .*Connection reset by peer')" "West's calls returned ECONNRESET"
vmt_check "$(vmt_has "$W" 'check: first transfer ended with exit 3')" "West saw the reset as expected"
vmt_check "$([ "$(grep -c 'peer 1 joined' "$tmp/ivlinkd.log")" -ge 2 ] && echo 1 || echo 0)" "East rejoined"
wt=$(vmt_result "$W" bulk tx_fnv) er=$(vmt_result "$E" bulk rx_fnv)
et=$(vmt_result "$E" bulk tx_fnv) wr=$(vmt_result "$W" bulk rx_fnv)
vmt_check "$([ -n "$wt" ] && [ "$wt" = "$er" ] && [ "$et" = "$wr" ] && echo 1 || echo 0)" \
	"a fresh channel to the new East works (32 MiB each way, checksums crossed)"
vmt_check "$([ $wrc = 0 ] && [ $erc = 0 ] && echo 1 || echo 0)" "West and the new East exited 0 ($wrc, $erc)"
vmt_done
