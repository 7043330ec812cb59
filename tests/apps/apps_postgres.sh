#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# PostgreSQL, both ends under the shim: a private cluster (initdb, trust
# authentication on 127.0.0.1 only), pgbench -i, a select-only run (-S) and
# a TPC-B run with 4 clients on 2 threads. The postmaster accepts each
# connection and forks a backend that serves it, so every session is a
# connection used by a process forked after the shim attached. Checked: no
# failed transaction, the TPC-B invariant (the branches', tellers' and
# accounts' balances and the history's deltas all sum to the same), the
# server's connections went through the rings (ring bytes in
# `ivlinkctl status --json`) and none fell back for any other reason than
# a client without the shim (pg_isready). While sessions are open, each
# backend is woken on a doorbell of its own, not the postmaster's.
. "$(dirname "$0")/lib.sh"
need python3 runuser
PGBIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PGBIN/pgbench" ] ||
	fail "PostgreSQL (initdb, postgres, pgbench) not found in /usr/lib/postgresql: install it with scripts/ivl-deps apps (make test does)"

# PostgreSQL refuses to run as root: as root the cluster and its clients
# run as the postgres user (created by the package), with the shim and a
# daemon socket that user can reach.
as_pg=()
sock_args=()
if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || fail "no postgres user (the postgresql-common package creates it)"
	as_pg=(runuser -u postgres --)
	sock_args=(--socket-group postgres --socket-mode 0660)
	chmod 711 "$T"
fi
daemon_start "${sock_args[@]}"
mkdir -p "$T/bin" "$T/pg" "$T/run"
cp "$BUILD/guest-lib/preload/libivlink-preload.so" "$IVLRUN" "$T/bin/"
chmod 755 "$T/bin" "$T/bin/"*
[ ${#as_pg[@]} -gt 0 ] && chown postgres "$T/pg" "$T/run"
PGRUN=("${as_pg[@]}" env IVLINK_ENDPOINT="$IVLINK_ENDPOINT"
	IVLINK_PRELOAD_LIB="$T/bin/libivlink-preload.so" "$T/bin/ivlink-run")

"${as_pg[@]}" "$PGBIN/initdb" -D "$T/pg" --auth=trust -U postgres >"$T/initdb.log" 2>&1 ||
	fail "initdb failed"
P=$(free_port)
bg postgres "${PGRUN[@]}" "$PGBIN/postgres" -D "$T/pg" -p "$P" -k "$T/run" \
	-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20
for _ in $(seq 100); do
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$P" && break
	kill -0 "$LASTPID" 2>/dev/null || fail "postgres exited"
	sleep 0.1
done
"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$P" || fail "postgres does not answer on port $P"
# The postmaster: `runuser` forks it (it is not the last exec in the chain).
PM=$(head -1 "$T/pg/postmaster.pid")
ts_bg_first "$PM" # SIGTERM: a smart shutdown

pg() { # pgbench/psql under the shim
	local prog=$1
	shift
	timeout 120 "${PGRUN[@]}" "$PGBIN/$prog" -h 127.0.0.1 -p "$P" -U postgres "$@"
}
pg pgbench -i -s 2 -q postgres >"$T/init.log" 2>&1 || fail "pgbench -i failed"
echo "ok: pgbench -i -s 2"

run_bench() { # NAME ARGS...: a 3 s run; checks it processed and failed nothing
	local name=$1
	shift
	pg pgbench "$@" -c 4 -j 2 -T 3 postgres >"$T/$name.log" 2>&1 || fail "pgbench $name failed"
	local processed failed
	processed=$(awk '/actually processed/ {print $NF}' "$T/$name.log")
	failed=$(awk '/number of failed transactions/ {print $5}' "$T/$name.log")
	expect_ge "pgbench $name transactions" "${processed:-0}" 100
	expect_eq "pgbench $name failed transactions" "${failed:-none}" 0
	echo "ok: pgbench $name: $(grep 'tps =' "$T/$name.log")"
}
run_bench select-only -S
run_bench tpc-b

# Each backend holds its connection alone once the postmaster closed its
# copy: it must take a doorbell of its own (layout.h wake_to), or every
# message to any backend wakes all of them and the postmaster, which share
# the postmaster's vectors. Looked at while 4 sessions are open: every
# channel the postmaster's peer consumes is rung on another peer, a
# different one per session.
pg pgbench -n -S -c 4 -j 2 -T 3 postgres >"$T/wake.log" 2>&1 &
bench=$!
sleep 1.5
status_json >"$T/wake.json"
wait "$bench" || fail "pgbench (doorbells) failed"
read -r sessions moved targets < <(python3 "$(dirname "$0")/../support/status_query.py" wakes "$PM" \
	--other-peer <"$T/wake.json")
expect_ge "sessions the postmaster's peer serves" "${sessions:-0}" 4
expect_eq "sessions whose doorbell moved to the backend" "${moved:-0}" "$sessions"
expect_eq "distinct backend doorbells" "${targets:-0}" "$sessions"
echo "ok: $sessions sessions, each rung on a doorbell of its backend's own"

# TPC-B moves money: every transaction adds the same delta to one account,
# teller and branch, and records it in the history.
sums=$(pg psql -At -d postgres -c "select (select sum(bbalance) from pgbench_branches),
	(select sum(tbalance) from pgbench_tellers), (select sum(abalance) from pgbench_accounts),
	(select sum(delta) from pgbench_history), (select count(*) from pgbench_history)") ||
	fail "psql failed"
echo "sums (branches|tellers|accounts|history|rows): $sums"
IFS='|' read -r b t a h rows <<<"$sums"
expect_ge "history rows" "$rows" 100
if [ "$b" != "$t" ] || [ "$t" != "$a" ] || [ "$a" != "$h" ]; then
	fail "TPC-B invariant broken: branches $b, tellers $t, accounts $a, history $h"
fi
echo "ok: TPC-B invariant holds"

# Each pgbench run opens 4 connections, -i and psql one each.
expect_ge "postgres accelerated connections" "$(peer_stat "$PM" accelerated)" 10
expect_ge "postgres ring bytes received" "$(peer_stat "$PM" rx_bytes)" 100000
expect_ge "postgres ring bytes sent" "$(peer_stat "$PM" tx_bytes)" 100000
expect_eq "fallbacks other than peer-no-shim (pg_isready)" "$(status_json | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = [(k, v) for p in d["shim"]["peers"] for k, v in p["reasons"].items() if k != "peer-no-shim"]
print(sum(v for _, v in r))
print(r, file=sys.stderr)')" 0
echo PASS
