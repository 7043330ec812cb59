#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A pre-fork server across the two guests (issue 12, label vm): nginx as
# it runs by default, a master and 2 forked workers, under the shim in
# East; curl and wrk under the shim in West. Every process of a guest
# shares the VM's peer id through ivlink-guestd, so a worker accepts with
# an endpoint of its own that keeps that id and gets a vector of its own
# (no redirect, unlike two host processes: apps_nginx_prefork). nginx
# registers its connections edge-triggered: the shim's user-space
# EPOLLET. Checked: curl gets a 1 KiB and a 1 MiB file byte for byte
# (sha256 against the same content made in West), wrk keep-alive for 2 s
# with no socket error and no non-2xx; the host sees, in ivlinkctl status
# --json, East's and West's shims accelerate the connections with the
# responses in the rings and nothing fall back for want of a doorbell or
# an answer; the same curl/wrk against a plain nginx over virtio-net for
# comparison.
#
# Usage: vm_shim_nginx_prefork.sh IVLINKD IVLINK-VM BUILD-DIR
# Exit 0 pass, 1 fail (a missing QEMU or program fails too: a skip proves nothing).
. "$(dirname "$0")/vmtest.sh"
vmt_init nginx "$@"
PRELOAD=$BUILD/guest-lib/preload/libivlink-preload.so
IVLINKCTL=$BUILD/host-daemon/ivlinkctl
[ -e "$PRELOAD" ] || { echo "[nginx] FAIL: the shim is not built (liburcu-dev: scripts/ivl-deps build)"; exit 1; }
[ -x "$IVLINKCTL" ] || { echo "[nginx] FAIL: $IVLINKCTL not built"; exit 1; }
bins=()
for p in nginx curl wrk; do
	command -v $p >/dev/null || { echo "[nginx] FAIL: command '$p' not found (scripts/ivl-deps apps)"; exit 1; }
	bins+=(--bin "$(command -v $p)")
done
bins+=(--bin "$PRELOAD:/usr/local/lib/libivlink-preload.so")
vmt_daemon 8

SHIM='env LD_PRELOAD=/usr/local/lib/libivlink-preload.so'
# The same content in both guests, made without a file transfer.
MKFILES='mkdir -p /tmp/www && yes ivlink-1k | head -c 1024 >/tmp/www/1k.bin &&
	yes ivlink-1m | head -c 1048576 >/tmp/www/1m.bin'
cat >"$tmp/east.sh" <<EOS
ivlink-guestd -b || exit 1
$MKFILES
mkdir -p /tmp/ngx /var/log/nginx
conf() { # port
	cat <<CONF
user root;
worker_processes 2;
daemon off;
master_process on;
pid /tmp/ngx/nginx-\$1.pid;
error_log /tmp/ngx/error-\$1.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path /tmp/ngx/body-\$1;
	proxy_temp_path /tmp/ngx/proxy-\$1;
	fastcgi_temp_path /tmp/ngx/fcgi-\$1;
	uwsgi_temp_path /tmp/ngx/uwsgi-\$1;
	scgi_temp_path /tmp/ngx/scgi-\$1;
	server { listen 0.0.0.0:\$1; root /tmp/www; keepalive_requests 100000; }
}
CONF
}
conf 8080 >/tmp/ngx/shim.conf
conf 8081 >/tmp/ngx/plain.conf
$SHIM nginx -c /tmp/ngx/shim.conf -p /tmp/ngx >/tmp/ngx/shim.out 2>&1 &
nginx -c /tmp/ngx/plain.conf -p /tmp/ngx >/tmp/ngx/plain.out 2>&1 &
for i in \$(seq 100); do
	[ "\$(cat /proc/net/tcp | grep -c ':1F9[01] 00000000:0000 0A')" -ge 2 ] && break
	sleep 0.1
done
for i in \$(seq 100); do
	w=\$(grep -l 'nginx: worker' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)
	[ "\$w" -ge 4 ] && break
	sleep 0.1
done
echo "east: nginx workers: \$w"
echo "east: servers up"
# West says when it is done: a file it fetches last, then a marker here.
for i in \$(seq 600); do
	grep -q west-done /tmp/ngx/error-8081.log 2>/dev/null && break
	sleep 0.2
done
cat /tmp/ngx/error-8080.log 2>/dev/null | tail -n 5
echo "east: done"
EOS
cat >"$tmp/west.sh" <<EOS
ivlink-guestd -b || exit 1
$MKFILES
for i in \$(seq 300); do
	curl -sf -o /dev/null http://192.0.2.2:8081/1k.bin && curl -sf -o /dev/null http://192.0.2.2:8080/1k.bin && break
	sleep 0.2
done
fail=0
for m in shim plain; do
	if [ \$m = shim ]; then p=8080 run="$SHIM"; else p=8081 run=; fi
	for f in 1k.bin 1m.bin; do
		\$run curl -sf -o /tmp/got http://192.0.2.2:\$p/\$f || { echo "check: curl \$m \$f failed"; fail=1; }
		if [ "\$(sha256sum </tmp/got | cut -d' ' -f1)" = "\$(sha256sum </tmp/www/\$f | cut -d' ' -f1)" ]; then
			echo "check: curl \$m \$f sha256 ok"
		else
			echo "check: curl \$m \$f sha256 differs"; fail=1
		fi
	done
	\$run wrk -t1 -c8 -d2s http://192.0.2.2:\$p/1k.bin >/tmp/wrk.out 2>&1 || { cat /tmp/wrk.out; fail=1; }
	grep -E 'Socket errors|Non-2xx' /tmp/wrk.out && fail=1
	rps=\$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' /tmp/wrk.out)
	echo "RESULT phase=wrk-\$m rps=\${rps:-0}"
done
# Ask for a file that does not exist: its name in East's error log is the
# "done" signal.
curl -s -o /dev/null http://192.0.2.2:8081/west-done
exit \$fail
EOS

vmt_run_west_east "${bins[@]}"
vmt_check "$(vmt_has "$E" 'east: nginx workers: [4-9]')" "East runs 2 workers per nginx"
for m in shim plain; do
	for f in 1k.bin 1m.bin; do
		vmt_check "$(vmt_has "$W" "check: curl $m $f sha256 ok")" "curl $m $f byte for byte"
	done
	vmt_check "$(vmt_gt "$(vmt_result "$W" wrk-$m rps)" 0)" "wrk ($m) completed"
done
ea=$(vmt_stat_max east accelerated) et=$(vmt_stat_max east tx_bytes)
wa=$(vmt_stat_max west accelerated) wr=$(vmt_stat_max west rx_bytes)
# curl: 2 connections (plus the readiness probe), wrk: 8.
vmt_check "$(vmt_gt "$ea" 9)" "East's workers accepted connections through the rings ($ea)"
vmt_check "$(vmt_gt "$wa" 9)" "West's curl and wrk connected through the rings ($wa)"
vmt_check "$(vmt_gt "$et" 1048576)" "East's responses went into the rings ($et bytes)"
vmt_check "$(vmt_gt "$wr" 1048576)" "West read them from the rings ($wr bytes)"
for g in east west; do
	for r in peer-stale declined timeout; do
		n=$(vmt_stat_max $g $r)
		vmt_check "$([ "${n:-1}" = 0 ] && echo 1 || echo 0)" "$g: no connection fell back ($r: $n)"
	done
done
echo "[nginx] West->East wrk -c8 1 KiB keep-alive: shim $(vmt_result "$W" wrk-shim rps)," \
	"virtio-net $(vmt_result "$W" wrk-plain rps) req/s"
vmt_done
