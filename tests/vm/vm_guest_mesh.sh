#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A host full of VMs (issue 13, item 1): four guests g1..g4 in one region,
# on a bridge in a network namespace of the launcher's. Every pair opens a
# native channel at the same time (full mesh, 6 channels, 3 programs per
# guest through ivlink-guestd): ping-pong, a blocking series that keeps the
# channels busy for 8 s at least, then 8 MiB each way, every word checked and the
# checksums crossed. While all six are open, `ivlinkctl status` must show
# them joined; then g4's QEMU is killed (SIGKILL). The three channels
# without g4 must keep moving bytes and finish intact; the three with g4
# must end with ECONNRESET in the survivors (pingpong --expect-reset: 3).
#
# Usage: vm_guest_mesh.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init mesh "$@"
vmt_daemon 8
CTL=$BUILD/host-daemon/ivlinkctl
[ -x "$CTL" ] || { echo "[mesh] FAIL: $CTL not built"; exit 1; }
GUESTS=(g1 g2 g3 g4)
PAIRS=()
for i in 1 2 3 4; do for j in 1 2 3 4; do [ $i -lt $j ] && PAIRS+=("m-g$i-g$j"); done; done

# One script per guest: a pingpong per other guest, the lower name as
# client. busybox sh: exit codes through files.
for i in 1 2 3 4; do
	f=$tmp/g$i.sh
	{
		echo 'ivlink-guestd -b || exit 1'
		# busybox ping gives up at once while g4 still boots: retry.
		if [ $i = 1 ]; then
			cat <<'EOS'
ok=0; for k in $(seq 60); do ping -c1 -W1 192.0.2.14 >/dev/null && ok=1 && break; sleep 0.5; done; [ $ok = 1 ] && echo "check: g1 pings g4 over the bridge" || echo "check: no ping to g4"
EOS
		fi
		for j in 1 2 3 4; do
			[ $i = $j ] && continue
			if [ $i -lt $j ]; then ch=m-g$i-g$j role=client; else ch=m-g$j-g$i role=server; fi
			extra=""
			[ $j = 4 ] && extra="--expect-reset"
			echo "( ivlink-pingpong --role $role --peer g$j --channel $ch --count 200 --block-count 4000 --gap-us 2000 --bulk-mib 8 --ring-kib 256 --timeout 120 $extra >/tmp/$ch.log 2>&1; echo \$? >/tmp/$ch.rc ) &"
		done
		echo 'wait'
		cat <<'EOS'
for f in /tmp/m-*.log; do ch=$(basename $f .log); sed "s/^/$ch /" $f; echo "$ch rc=$(cat /tmp/$ch.rc)"; done
EOS
	} >"$f"
done

args=()
for g in "${GUESTS[@]}"; do args+=(--script-on "$g" "$tmp/$g.sh"); done
"$LAUNCHER" -S "$tmp/ivlinkd.sock" -B "$BUILD" -g 4 -q --keep-going --logdir "$tmp/logs" \
	--timeout 220 "${args[@]}" 2>"$tmp/launcher.err" &
ts_bg $!
launcher=$!

# Bytes moved so far on each channel (both directions), from the status.
chan_bytes() { # status-file channel
	awk -v ch="$2" '/<->/ { cur = ($4 == ch) ? 1 : 0; next }
		cur && /bytes/ { for (i = 1; i < NF; i++) if ($i == "bytes") s += $(i + 1) }
		END { print s + 0 }' "$1"
}
joined() { # status-file -> number of mesh channels with both halves offered
	grep -cE '<->.* m-g[1-4]-g[1-4] .*offered/offered' "$1" || true
}

all_open=0
t_end=$(($(date +%s) + 180))
while [ "$(date +%s)" -lt $t_end ] && kill -0 "$launcher" 2>/dev/null; do
	"$CTL" status -S "$tmp/ivlinkd.sock" >"$tmp/st1" 2>&1 || true
	if [ "$(joined "$tmp/st1")" = 6 ]; then all_open=1; break; fi
	sleep 0.5
done
sed 's/^/[mesh] status: /' "$tmp/st1" | grep -E 'ID|up|<->' || true
vmt_check "$all_open" "ivlinkctl status shows all 6 mesh channels joined at once"
vmt_check "$([ "$(grep -cE '^[0-9]+ +g[1-4] +up' "$tmp/st1")" = 4 ] && echo 1 || echo 0)" \
	"ivlinkctl status shows the 4 guests up"

killed=0
if [ "$all_open" = 1 ] && [ -s "$tmp/logs/g4.pid" ]; then
	kill -KILL "$(cat "$tmp/logs/g4.pid")" && killed=1
	echo "[mesh] g4's QEMU killed with every channel open"
	sleep 1
	"$CTL" status -S "$tmp/ivlinkd.sock" >"$tmp/st2" 2>&1 || true
	sleep 2
	"$CTL" status -S "$tmp/ivlinkd.sock" >"$tmp/st3" 2>&1 || true
fi
vmt_check "$killed" "g4 killed mid-traffic"
# A pair that opened long before the last one may already be done (both
# directions' 8 MiB moved): that is not a stall. Whether it is intact is
# checked below from both ends.
for ch in m-g1-g2 m-g1-g3 m-g2-g3; do
	b2=$(chan_bytes "$tmp/st2" $ch) b3=$(chan_bytes "$tmp/st3" $ch)
	if [ "$(vmt_gt "$b3" "$b2")" = 1 ]; then
		vmt_check 1 "$ch still moving bytes after g4 died ($b2 -> $b3)"
	else
		vmt_check "$(vmt_gt "$b2" $((2 * 8 * 1048576 - 1)))" "$ch had already moved everything before g4 died ($b2 bytes)"
	fi
done

lrc=0
wait "$launcher" || lrc=$?
[ "$lrc" != 0 ] || echo "[mesh] note: launcher exited 0 although g4 was killed"
sed -n 's/^/[mesh] launcher: /p' "$tmp/launcher.err" | grep -v 'last .* lines\|| ' | head -20 || true
vmt_check "$(vmt_has "$tmp/ivlinkd.log" 'peer 3 left')" "the daemon marked g4 gone"
vmt_check "$(vmt_has "$tmp/logs/g1.log" 'check: g1 pings g4 over the bridge')" "g1 reached g4 over the bridge network"

# Each survivor's view of each channel.
res() { # guest channel phase key
	vmt_log "$tmp/logs/$1.log" | sed -n "s/^$2 RESULT phase=$3 .*\\b$4=\\([^ ]*\\).*/\\1/p" | tail -n1
}
rc_of() { vmt_log "$tmp/logs/$1.log" | sed -n "s/^$2 rc=\\([0-9]*\\)\$/\\1/p" | tail -n1; }
for ch in m-g1-g2 m-g1-g3 m-g2-g3; do
	a=${ch#m-} a=${a%-*} b=${ch##*-}
	ta=$(res "$a" $ch bulk tx_fnv) rb=$(res "$b" $ch bulk rx_fnv)
	tb=$(res "$b" $ch bulk tx_fnv) ra=$(res "$a" $ch bulk rx_fnv)
	vmt_check "$([ "$(rc_of "$a" $ch)" = 0 ] && [ "$(rc_of "$b" $ch)" = 0 ] && echo 1 || echo 0)" \
		"$ch: both ends exited 0"
	vmt_check "$([ -n "$ta" ] && [ "$ta" = "$rb" ] && [ -n "$tb" ] && [ "$tb" = "$ra" ] &&
		[ "$(res "$a" $ch bulk bad)" = 0 ] && [ "$(res "$b" $ch bulk bad)" = 0 ] && echo 1 || echo 0)" \
		"$ch: 8 MiB each way intact (checksums $ta = $rb, $tb = $ra)"
done
for g in g1 g2 g3; do
	ch=m-$g-g4
	vmt_check "$([ "$(rc_of $g $ch)" = 3 ] && echo 1 || echo 0)" "$ch: $g saw g4 reset (exit $(rc_of $g $ch))"
done
vmt_done
