#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Several programs of one guest use the link at once through the guest agent
# (issue 4, test b). West and East each start ivlink-guestd, then three
# ivlink-pingpong processes ("a", "b", "c") that pair up across the guests,
# concurrently: ping-pong (with a blocking phase) and 256/256/16 MiB each way, checked.
# The device has 3 MSI-X vectors (0 control, 1 and 2 for channels), so "a"
# and "b" get a vector each, bound directly to their eventfds, and "c" shares
# one: the agent re-points that vector at itself and forwards each interrupt.
# All processes of a guest are one peer (one IVPosition, one section).
#
# Usage: vm_agent_two_programs.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init agent "$@"

guest_script() { # role
	cat <<EOS
ivlink-guestd -b || exit 1
pids=""
# "a" and "b" move 256 MiB so that they are surely still attached when "c"
# arrives and must share a vector: with a small transfer, a guest that
# booted second could see its "a" finish (its partner was already waiting)
# before its "c" started, and "c" would simply reuse the freed vector.
for ch in a b c; do
	mib=256; [ \$ch = c ] && mib=16
	( ivlink-pingpong --role $1 --channel \$ch --count 300 --block-count 50 --gap-us 300 \
		--bulk-mib \$mib >/tmp/\$ch.log 2>&1; echo "rc=\$?" >>/tmp/\$ch.log ) &
	pids="\$pids \$!"
	sleep 0.2
done
wait \$pids
fail=0
for ch in a b c; do
	sed "s/^/[\$ch] /" /tmp/\$ch.log
	grep -q '^rc=0$' /tmp/\$ch.log || fail=1
done
exit \$fail
EOS
}
guest_script client >"$tmp/west.sh"
guest_script server >"$tmp/east.sh"

rc=0
"$LAUNCHER" --daemon "$IVLINKD" -B "$BUILD" -g west,east -q --vectors 3 \
	--script-west "$tmp/west.sh" --script-east "$tmp/east.sh" \
	--logdir "$tmp/logs" --timeout 170 &
ts_bg $!
wait $! || rc=$?
W=$tmp/logs/west.log E=$tmp/logs/east.log
vmt_show "$W" west | grep -v 'RESULT'
vmt_show "$E" east | grep -v 'RESULT'

vmt_check "$([ $rc = 0 ] && echo 1 || echo 0)" "both guests exited 0 (launcher $rc)"
for g in W E; do
	f=${!g}
	n=$(vmt_log "$f" | grep -c '^\[[abc]\] .*attached via vfio .* via ivlink-guestd' || true)
	vmt_check "$([ "$n" = 3 ] && echo 1 || echo 0)" "$g: 3 processes attached through the agent ($n)"
	n=$(vmt_log "$f" | grep -c '^\[[abc]\] rc=0$' || true)
	vmt_check "$([ "$n" = 3 ] && echo 1 || echo 0)" "$g: 3 processes succeeded ($n)"
	vmt_check "$(vmt_has "$f" 'ivlink-guestd: info: client pid .*(shared, forwarded)')" \
		"$g: the third process shares a vector, forwarded by the agent"
	n=$(vmt_log "$f" | grep -c '^\[[abc]\] .*bulk: [0-9]* MiB each way.* 0 bad words' || true)
	vmt_check "$([ "$n" = 3 ] && echo 1 || echo 0)" "$g: 3 bulk transfers checked ($n)"
done
for ch in a b c; do
	wt=$(vmt_log "$W" | sed -n "s/^\[$ch\] RESULT phase=bulk .*tx_fnv=\([0-9a-f]*\).*/\1/p")
	er=$(vmt_log "$E" | sed -n "s/^\[$ch\] RESULT phase=bulk .*rx_fnv=\([0-9a-f]*\).*/\1/p")
	vmt_check "$([ -n "$wt" ] && [ "$wt" = "$er" ] && echo 1 || echo 0)" "channel $ch: West tx = East rx ($wt)"
	s=$(vmt_log "$E" | sed -n "s/^\[$ch\] RESULT phase=pingpong-blocking-stats .*sleeps=\([0-9]*\).*/\1/p")
	vmt_check "$(vmt_gt "$s" 9)" "channel $ch: East woken by interrupts in the blocking phase ($s sleeps)"
done
vmt_done
