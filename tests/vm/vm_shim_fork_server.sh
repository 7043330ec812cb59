#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# An accept-then-fork server across the two guests (issue 12 item 7, label
# vm): socat TCP-LISTEN,fork with an echo PIPE in each child, under the
# shim in East, as PostgreSQL's postmaster does with its backends: the
# parent accepts (on its endpoint), forks, and closes its copy; the child
# serves the connection alone. Four ping-pong clients under the shim in
# West at once. Every process of a guest shares the VM's peer id, and the
# parent's vector is shared by all its children: each child must take a
# vector of its own (its half's wake_to, layout.h) so that a message wakes
# only the child it is for. Checked: every client's round trips complete
# (the echo is read back in full: a lost wake-up hangs it), the host sees
# in `ivlinkctl status --json` each channel East consumes rung on a moved
# doorbell, a different vector per session, and the connections
# accelerated with nothing fallen back; the same clients against a plain
# socat over virtio-net for comparison.
#
# Usage: vm_shim_fork_server.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init fork "$@"
PRELOAD=$BUILD/guest-lib/preload/libivlink-preload.so
IVLINKCTL=$BUILD/host-daemon/ivlinkctl
PAIR=$BUILD/tests/apps/tcp_pair
[ -e "$PRELOAD" ] || { echo "[fork] FAIL: the shim is not built (liburcu-dev: scripts/ivl-deps build)"; exit 1; }
for f in "$IVLINKCTL" "$PAIR"; do
	[ -x "$f" ] || { echo "[fork] FAIL: $f not built"; exit 1; }
done
command -v socat >/dev/null || { echo "[fork] FAIL: command 'socat' not found (scripts/ivl-deps apps)"; exit 1; }
bins=(--bin "$(command -v socat)" --bin "$PAIR:/usr/local/bin/tcp_pair"
	--bin "$PRELOAD:/usr/local/lib/libivlink-preload.so")
vmt_daemon 8

SHIM='env LD_PRELOAD=/usr/local/lib/libivlink-preload.so'
cat >"$tmp/east.sh" <<EOS
ivlink-guestd -b || exit 1
$SHIM socat TCP-LISTEN:7000,fork,reuseaddr PIPE &
socat TCP-LISTEN:7002,fork,reuseaddr PIPE &
echo "east: servers up"
# West connects to 7001 when it is done.
socat -u TCP-LISTEN:7001,reuseaddr OPEN:/dev/null
echo "east: done"
EOS
cat >"$tmp/west.sh" <<EOS
ivlink-guestd -b || exit 1
export TCP_PAIR_HOST=192.0.2.2
for i in \$(seq 300); do
	tcp_pair pingpong 7002 10 64 >/dev/null 2>&1 && $SHIM tcp_pair pingpong 7000 10 64 >/dev/null 2>&1 && break
	sleep 0.2
done
fail=0
for m in shim plain; do
	if [ \$m = shim ]; then p=7000 run="$SHIM"; else p=7002 run=; fi
	pids=
	for c in 1 2 3 4; do
		\$run tcp_pair pingpong \$p 3000 64 >/tmp/pp-\$m-\$c 2>&1 &
		pids="\$pids \$!"
	done
	c=0
	for pid in \$pids; do
		c=\$((c + 1))
		wait \$pid || { echo "check: client \$m \$c failed: \$(cat /tmp/pp-\$m-\$c)"; fail=1; }
	done
	for c in 1 2 3 4; do
		# "p50_us A p99_us B" as key=value pairs
		echo "RESULT phase=pp-\$m-\$c \$(sed 's/p50_us /p50_us=/; s/ p99_us / p99_us=/' /tmp/pp-\$m-\$c)"
	done
done
socat -u OPEN:/dev/null TCP:192.0.2.2:7001 || true
exit \$fail
EOS

vmt_run_west_east "${bins[@]}"
for m in shim plain; do
	for c in 1 2 3 4; do
		vmt_check "$(vmt_gt "$(vmt_result "$W" "pp-$m-$c" p50_us)" 0)" "client $c ($m) finished its round trips"
	done
done
# The snapshot with the most sessions East consumes: how many, how many
# rung on a moved doorbell, how many distinct doorbells among those.
read -r sessions moved targets < <(cat "$tmp"/st.[0-9]* 2>/dev/null |
	python3 "$(dirname "$0")/../support/status_query.py" wakes --name :7000 \
		"$(cat "$tmp/logs/east.pid" 2>/dev/null || echo -1)")
vmt_check "$(vmt_gt "${sessions:-0}" 3)" "East served the 4 sessions through the rings at once ($sessions)"
vmt_check "$([ "${moved:-0}" = "${sessions:-x}" ] && echo 1 || echo 0)" \
	"each session is rung on a doorbell of its child's own ($moved of $sessions)"
vmt_check "$([ "${targets:-0}" = "${sessions:-x}" ] && echo 1 || echo 0)" \
	"a different vector per child ($targets of $sessions)"
for g in east west; do
	for r in peer-stale declined timeout; do
		n=$(vmt_stat_max $g $r)
		vmt_check "$([ "${n:-1}" = 0 ] && echo 1 || echo 0)" "$g: no connection fell back ($r: $n)"
	done
done
echo "[fork] West->East 64 B ping-pong, 4 clients, p50 (us): shim" \
	"$(for c in 1 2 3 4; do vmt_result "$W" "pp-shim-$c" p50_us; done | tr '\n' ' ')," \
	"virtio-net $(for c in 1 2 3 4; do vmt_result "$W" "pp-plain-$c" p50_us; done | tr '\n' ' ')"
vmt_done
