#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The guest agent killed mid-transfer (issue 7, faults). West runs
# ivlink-guestd and two programs that get the device through it: "a" runs
# 3000 round trips then 256 MiB each way with host process host-a, "p" slow
# (interrupt-driven) ping-pong with
# host-p; 2 s into the transfer the agent is killed with SIGKILL. Then the
# agent is restarted and a new program "c" must work with host-c.
#
# What a program does when its agent dies depends on what it owns: the agent
# hands each program the VFIO device fd and an eventfd bound to an MSI-X
# vector of its own (SCM_RIGHTS), so the program's mapping and interrupts
# do not depend on the agent process, and its channels keep moving data.
# The test checks that every program ends within a bound (60 s) either with
# its transfer complete and checked (rc 0) or with a clean error, and the
# host side of each likewise (a completed transfer, or ECONNRESET/EOF/
# timeout), never a crash or a hang; the outcome is printed for
# RELIABILITY.md. A restarted agent serves a new program.
#
# Usage: vm_agent_killed.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init agent-killed "$@"
vmt_daemon 4

cat >"$tmp/west.sh" <<'EOS'
ivlink-guestd -b || exit 1
run() { # name args...: runs ivlink-pingpong with a 60 s watchdog
	n=$1; shift
	( t0=$(date +%s); ivlink-pingpong "$@" >/tmp/$n.log 2>&1; rc=$?
	  echo "rc=$rc secs=$(( $(date +%s) - t0 ))" >>/tmp/$n.log ) &
	eval "pid_$n=\$!"
	( sleep 60; kill -9 $(eval echo \$pid_$n) 2>/dev/null ) &
}
run a --role client --peer host-a --channel a --count 3000 --bulk-mib 1024 --timeout 30
run p --role client --peer host-p --channel p --count 0 --block-count 400 --gap-us 20000 --timeout 30
sleep 2
agent=$(pidof ivlink-guestd)
echo "killing ivlink-guestd ($agent) at $(date +%s)"
kill -9 $agent
# Which programs the kill really caught mid-flight, recorded here rather
# than guessed on the host from elapsed seconds.
for n in a p; do
	kill -0 $(eval echo \$pid_$n) 2>/dev/null && echo "[$n] running-at-kill"
done
wait $pid_a $pid_p
for n in a p; do sed "s/^/[$n] /" /tmp/$n.log; done
ivlink-guestd -b || { echo "AGENT-RESTART-FAILED"; exit 1; }
echo "agent restarted"
run c --role client --peer host-c --channel c --count 200 --bulk-mib 4 --timeout 30
wait $pid_c
sed "s/^/[c] /" /tmp/c.log
exit 0
EOS

hpids=()
for n in a p c; do
	IVLINK_ENDPOINT=$tmp/ivlinkd.sock "$PINGPONG" --role server --peer west --name host-$n \
		--channel $n --timeout 90 >"$tmp/host-$n.log" 2>&1 &
	hpids+=($!)
	ts_bg $!
done
rc=0
"$LAUNCHER" -S "$tmp/ivlinkd.sock" -B "$BUILD" -g west -q --vectors 4 \
	--script "$tmp/west.sh" --logdir "$tmp/logs" --timeout 170 &
ts_bg $!
wait $! || rc=$?
declare -A hrc
i=0
for n in a p c; do
	hrc[$n]=0
	wait "${hpids[$i]}" || hrc[$n]=$?
	i=$((i + 1))
done
W=$tmp/logs/west.log
vmt_show "$W" west
for n in a p c; do vmt_show "$tmp/host-$n.log" host-$n; done

vmt_check "$([ $rc = 0 ] && echo 1 || echo 0)" "West's script exited 0 (launcher $rc)"
vmt_check "$(vmt_has "$W" 'killing ivlink-guestd')" "the agent was killed mid-transfer"
for n in a p; do
	line=$(vmt_log "$W" | sed -n "s/^\[$n\] rc=\([0-9]*\) secs=\([0-9]*\).*/\1 \2/p" | tail -n1)
	prc=${line% *} secs=${line#* }
	vmt_check "$([ -n "$line" ] && [ "$prc" != 137 ] && [ "$prc" -lt 128 ] && echo 1 || echo 0)" \
		"program $n ended by itself, no crash or hang (rc ${prc:-none} after ${secs:-?} s)"
	vmt_check "$(vmt_log "$W" | grep -q "^\[$n\] running-at-kill" && echo 1 || echo 0)" \
		"program $n was still running when the agent was killed (it ran $secs s)"
	if [ "${prc:-1}" = 0 ]; then
		vmt_check "$([ "${hrc[$n]}" = 0 ] && echo 1 || echo 0)" \
			"program $n kept working after the agent died; host-$n completed too"
		echo "[$vmt_name] OUTCOME $n: kept working (rc 0 in $secs s), host rc ${hrc[$n]}"
	else
		err=$(vmt_log "$W" | grep "^\[$n\]" | grep -v '^\[.\] rc=' | tail -n1)
		vmt_check "$([ "${hrc[$n]}" -lt 128 ] && echo 1 || echo 0)" \
			"host-$n ended by itself (rc ${hrc[$n]})"
		echo "[$vmt_name] OUTCOME $n: rc $prc after $secs s ($err); host rc ${hrc[$n]}: $(tail -n1 "$tmp/host-$n.log")"
	fi
done
vmt_check "$(vmt_has "$W" 'agent restarted')" "the agent restarted"
vmt_check "$(vmt_has "$W" '^\[c\] rc=0 ')" "a new program works through the restarted agent"
vmt_check "$(vmt_has "$W" '^\[c\] .*attached via vfio .* via ivlink-guestd')" \
	"the new program attached through the agent"
vmt_check "$([ "${hrc[c]}" = 0 ] && echo 1 || echo 0)" "host-c completed (rc ${hrc[c]})"
vmt_done
