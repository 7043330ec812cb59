#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Which connections the shim takes, with tcp_pair (both ends under the
# shim; every pair must deliver its bytes with the same checksum; the
# reasons are read from ivlinkctl, or from the debug log of a client that
# had no reason to join the region):
#  - IVLINK_RULES excluding the client's destination: plain TCP, reason
#    "rules"; an exclude rule that does not match, then "include": rings;
#  - a rules file (ivlink-run --conf) excluding the server's port on the
#    server side: the listener is never published, the client finds none
#    ("no-listener");
#  - TCP_FASTOPEN_CONNECT on the client: plain TCP, reason "option".
. "$(dirname "$0")/lib.sh"
need python3
daemon_start
BYTES=50000

pair() { # what port server-env client-env; sets SUM, the reply's checksum
	local what=$1 P=$2 srv_env=$3 cli_env=$4 out
	bg "srv-$what" shim env ${srv_env:+"$srv_env"} "$APPS_BIN/tcp_pair" server "$P" 0
	local sp=$LASTPID
	wait_listen "$P" "$sp"
	out=$(env ${cli_env:+"$cli_env"} IVLINK_DEBUG=1 timeout 30 "$IVLRUN" \
		"$APPS_BIN/tcp_pair" client "$P" $BYTES 2>"$T/$what.err") ||
		fail "$what: client: $out $(cat "$T/$what.err")"
	wait "$sp" || fail "$what: server failed"
	expect_eq "$what: bytes received" "$(echo "$out" | cut -d' ' -f2)" $BYTES
	SUM=$(echo "$out" | cut -d' ' -f3)
}

P=$(free_port)
pair rules-exclude "$P" "" "IVLINK_RULES=exclude client 127.0.0.1:$P"
ref=$SUM
# The client never joined the region (nothing to accelerate): its debug
# log says why.
grep "plain TCP (rules)" "$T/rules-exclude.err" || fail "no 'plain TCP (rules)' in the debug log"
expect_eq "accelerated with the client excluded" "$(shim_total accelerated)" 0

P=$(free_port)
pair rules-include "$P" "" "IVLINK_RULES=exclude client *:1-10;include any *"
expect_eq "same checksum" "$SUM" "$ref"
expect_ge "accelerated (rules that do not exclude)" "$(shim_total accelerated)" 2

P=$(free_port)
printf '# ivlink rules\nexclude server *:%s\n' "$P" >"$T/rules.conf"
pair conf-server "$P" "IVLINK_CONF=$T/rules.conf" ""
expect_eq "same checksum" "$SUM" "$ref"
expect_ge "fallback reason no-listener" "$(shim_total no-listener)" 1

P=$(free_port)
pair fastopen "$P" "" "TCP_PAIR_FASTOPEN=1"
expect_eq "same checksum" "$SUM" "$ref"
grep "plain TCP (option)" "$T/fastopen.err" || fail "no 'plain TCP (option)' in the debug log"
echo PASS
