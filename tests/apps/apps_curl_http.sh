#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# curl fetching from python3 -m http.server: both ends shimmed (through the
# rings), server shimmed and client not (peer-no-shim fallback), and client
# shimmed and server not (no-listener fallback); the bytes must always be
# the file's.
. "$(dirname "$0")/lib.sh"
need curl python3
daemon_start
mkdir -p "$T/www"
head -c 8M /dev/urandom >"$T/www/f.bin"
want=$(sha256sum <"$T/www/f.bin" | cut -d' ' -f1)
PS=$(free_port)
PP=$(free_port)
( cd "$T/www" && exec "$IVLRUN" python3 -m http.server "$PS" --bind 127.0.0.1 ) >"$T/http-shim.log" 2>&1 &
HS=$!
ts_bg "$HS"
( cd "$T/www" && exec python3 -m http.server "$PP" --bind 127.0.0.1 ) >"$T/http-plain.log" 2>&1 &
ts_bg $!
wait_port "$PS"
wait_port "$PP"
fetch() { # label port [shim]
	local run=()
	[ "${3:-}" = shim ] && run=("$IVLRUN")
	rm -f "$T/got.bin"
	timeout 60 "${run[@]}" curl -sf -o "$T/got.bin" "http://127.0.0.1:$2/f.bin" || fail "curl ($1)"
	expect_eq "sha256 ($1)" "$(sha256sum <"$T/got.bin" | cut -d' ' -f1)" "$want"
}
fetch "both shimmed" "$PS" shim
acc=$(peer_stat "$HS" accelerated)
expect_ge "http.server accelerated connections" "$acc" 1
expect_ge "http.server ring bytes sent" "$(peer_stat "$HS" tx_bytes)" 8000000
before=$(peer_stat "$HS" peer-no-shim)
fetch "server shimmed, curl plain" "$PS"
expect_ge "server fallbacks peer-no-shim" "$(peer_stat "$HS" peer-no-shim)" $((before + 1))
expect_eq "no new accelerated connection" "$(peer_stat "$HS" accelerated)" "$acc"
fetch "server plain, curl shimmed" "$PP" shim
expect_ge "client fallbacks no-listener (all peers)" "$(shim_total no-listener)" 1
echo PASS
