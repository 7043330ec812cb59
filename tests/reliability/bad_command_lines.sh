#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Bad input must never silently change the configuration (issue 10, item 6).
# A table of command lines and settings against the real binaries, each with
# its expected exit status and message, next to the good forms (so that the
# test also fails if parsing becomes too strict):
#  - ivlinkd: numbers are decimal and range-checked (--allow-uid 4294967296
#    once wrapped to uid 0, -l 010M was 8M, -n 010 was 8 vectors); a MODE is
#    octal and <= 0777. A usage error exits 2 with one line naming the
#    option and the value, then "Try 'ivlinkd --help'".
#  - ivlinkctl status --shm refuses a FIFO, a directory and a symlink at
#    once (a FIFO used to hang it).
#  - ivlink-run: -R, -t, -s out of range or malformed exit 2.
#  - the shim: a malformed IVLINK_SPIN_NS, IVLINK_ACCEPT_TIMEOUT_MS or
#    IVLINK_RING_SIZE is reported once and the default used; a malformed
#    rule (IVLINK_RULES or IVLINK_CONF) is reported once and then every
#    connection of that process stays on TCP, which `ivlinkctl status`
#    shows as fallback reason "rules" (a private ivlinkd, shim_peer server
#    and clients under ivlink-run).
#
# Usage: bad_command_lines.sh IVLINKD IVLINKCTL IVLINK_RUN PRELOAD SHIM_PEER
set -u
IVLINKD=${1:?usage: $0 IVLINKD IVLINKCTL IVLINK_RUN PRELOAD SHIM_PEER}
IVLINKCTL=${2:?} IVLRUN=${3:?} PRELOAD=${4:?} SHIM_PEER=${5:?}
# In the ASan+UBSan pass the shim is sanitizer-built and is preloaded in
# front of programs that are not (ivlink-run puts it first): ASan's check
# that its runtime comes first would refuse every one of them. The shim's
# C tests put the runtime in front themselves (shim_rel.c); here the check
# is turned off, which is enough for the option and rule parsing tested.
if ldd "$PRELOAD" 2>/dev/null | grep -q 'libasan'; then
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=0"
fi
# shellcheck source=tests/support/lib.sh
. "$(dirname "$0")/../support/lib.sh"
ts_init_tmp badcl
T=$ts_tmp
SHM=ivl-badcl-$$
FAILS=0

# shellcheck disable=SC2317 # called at exit
rm_shm() {
	rm -f "/dev/shm/$SHM" "/dev/shm/$SHM-fifo" "/dev/shm/$SHM-link" "/dev/shm/$SHM-small"
	rmdir "/dev/shm/$SHM-dir" 2>/dev/null
}
ts_at_exit rm_shm

bad() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}
die() {
	echo "FAIL: $*" >&2
	exit 1
}
command -v python3 >/dev/null || die "python3 not found (scripts/ivl-deps build installs it)"

# run RC TEXT CMD...: CMD (10 s at most) exits RC and its output contains
# TEXT (a fixed string; empty: no check). RC 2 is a usage error: then the
# message is one line followed by the "Try '... --help'" line.
run() {
	local want=$1 text=$2 rc out
	shift 2
	out=$(timeout 10 "$@" </dev/null 2>&1)
	rc=$?
	if [ "$rc" != "$want" ]; then
		bad "exit $rc (want $want): $(printf '%q ' "$@")-> $out"
		return
	fi
	if [ -n "$text" ] && [[ "$out" != *"$text"* ]]; then
		bad "no '$text' in the output of $(printf '%q ' "$@")-> $out"
		return
	fi
	if [ "$want" = 2 ] &&
		! printf '%s\n' "$out" | tail -1 | grep -q "^Try '[a-z-]* --help' for more information\.$"; then
		bad "usage error without a Try '--help' line: $(printf '%q ' "$@")-> $out"
		return
	fi
	if [ "$want" = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" != 2 ]; then
		bad "usage error not on one line: $(printf '%q ' "$@")-> $out"
		return
	fi
	echo "ok: exit $rc: $(printf '%q ' "$@")"
}

# ------------------------------------------------------------------ ivlinkd
# Bad values exit 2 before anything is created (the socket path is never
# used).
D=("$IVLINKD" -F -S "$T/never.sock")
while IFS='|' read -r opt val text; do
	[ -n "$opt" ] || continue
	run 2 "$opt: '$val' $text" "${D[@]}" "${opt%%/*}" "$val"
done <<'EOF'
--allow-uid|4294967296|is not a uid in 0..4294967294 or a known user name
--allow-uid|4294967295|is not a uid in 0..4294967294
--allow-uid|18446744073709551616|is not a uid in 0..4294967294
--allow-uid|-1|is not a uid in 0..4294967294
--allow-uid||is not a uid in 0..4294967294
--allow-uid|0x0|is not a uid in 0..4294967294
--allow-uid| 0|is not a uid in 0..4294967294
--allow-uid|12abc|is not a uid in 0..4294967294
--allow-gid|4294967296|is not a gid in 0..4294967294 or a known group name
--allow-gid|-1|is not a gid in 0..4294967294
--allow-gid||is not a gid in 0..4294967294
-l/--size|010M|is not a power of two >= 1M, in decimal
-l/--size|0x100000|is not a power of two >= 1M
-l/--size|-1M|is not a power of two >= 1M
-l/--size| 1M|is not a power of two >= 1M
-l/--size||is not a power of two >= 1M
-l/--size|1M5|is not a power of two >= 1M
-l/--size|3M|is not a power of two >= 1M
-l/--size|4096|is not a power of two >= 1M
-l/--size|18446744073709551616|is not a power of two >= 1M
-l/--size|17179869184G|is not a power of two >= 1M
-n/--vectors|0x8|is not a decimal number in 1..64
-n/--vectors|-1|is not a decimal number in 1..64
-n/--vectors|0|is not a decimal number in 1..64
-n/--vectors|65|is not a decimal number in 1..64
-n/--vectors|8x|is not a decimal number in 1..64
-n/--vectors| 8|is not a decimal number in 1..64
-n/--vectors||is not a decimal number in 1..64
-n/--vectors|18446744073709551624|is not a decimal number in 1..64
--max-peers|0|is not a decimal number in 1..
--max-peers|1000|is not a decimal number in 1..
--max-peers|+8|is not a decimal number in 1..
--chan-slots|0|is not a decimal number in 1..
--chan-slots|65537|is not a decimal number in 1..
--max-queue|0|is not a decimal number in 1..16777216
--max-queue|16777217|is not a decimal number in 1..16777216
--max-queue|1e3|is not a decimal number in 1..16777216
--socket-mode|0778|is not an octal mode in 0..0777
--socket-mode|01000|is not an octal mode in 0..0777
--socket-mode|999|is not an octal mode in 0..0777
--socket-mode|-1|is not an octal mode in 0..0777
--socket-mode||is not an octal mode in 0..0777
--socket-mode|0x1ff|is not an octal mode in 0..0777
--socket-mode| 600|is not an octal mode in 0..0777
EOF
run 2 "needs an argument" "${D[@]}" --allow-uid
run 2 "unknown option" "${D[@]}" --size-of 1M
[ -e "$T/never.sock" ] && bad "a refused command line created its socket"

# wait_sock PATH: until PATH is a socket (5 s).
wait_sock() {
	for _ in $(seq 100); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# json EXPR: evaluates the Python expression EXPR on the status JSON (d).
json() {
	python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# good_daemon EXPECT ARGS...: ivlinkd ARGS starts, and the region's
# "size vectors max_peers chan_slots" as ivlinkctl reads them are EXPECT
# (decimal readings of the values given).
good_daemon() {
	local want=$1 sock=$T/good.sock pid got
	shift
	"$IVLINKD" -F -S "$sock" --log-level=warn "$@" >"$T/good.log" 2>&1 &
	pid=$!
	ts_bg "$pid"
	if ! wait_sock "$sock"; then
		bad "ivlinkd $* did not start: $(cat "$T/good.log")"
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return
	fi
	got=$("$IVLINKCTL" status --socket "$sock" --json |
		json '"%d %d %d %d" % (d["region"]["size"], d["region"]["vectors"], d["region"]["max_peers"], d["region"]["chan_slots"])')
	GOOD_MODE=$(stat -c %a "$sock")
	kill "$pid"
	wait "$pid" 2>/dev/null
	if [ "$got" != "$want" ]; then
		bad "ivlinkd $*: region '$got', expected '$want'"
		return
	fi
	echo "ok: ivlinkd $* -> $got"
}

me=$(id -u) grp=$(id -g) uname=$(id -un)
# Leading zeros are decimal, never octal: 010 is ten.
good_daemon "1048576 10 8 16" -l 01M -n 010 --max-peers 08 --chan-slots 016 --max-queue 0100 \
	--allow-uid "$me" --allow-gid "$grp" --socket-mode 0660
[ "${GOOD_MODE:-}" = 660 ] || bad "--socket-mode 0660 gave mode ${GOOD_MODE:-?}"
good_daemon "2097152 1 1 1" -l 2MiB -n 1 --max-peers 1 --chan-slots 1 --allow-uid "$uname" \
	--socket-mode 600
[ "${GOOD_MODE:-}" = 600 ] || bad "--socket-mode 600 gave mode ${GOOD_MODE:-?}"
good_daemon "4194304 64 8 64" --size 4194304 --vectors=64 --allow-uid 4294967294 \
	--allow-uid "$me"

# An existing region of another size: the error gives an -l that works, or
# says that none does.
(umask 077 && truncate -s 4096 "/dev/shm/$SHM-small") || die "truncate"
run 1 "which no -l accepts" "$IVLINKD" -F -S "$T/small.sock" -m "$SHM-small" -l 1M
truncate -s 2M "/dev/shm/$SHM-small" || die "truncate"
run 1 "restart with -l 2M to re-attach" "$IVLINKD" -F -S "$T/small.sock" -m "$SHM-small" -l 1M
rm -f "/dev/shm/$SHM-small"

# ---------------------------------------------------------------- ivlinkctl
mkfifo "/dev/shm/$SHM-fifo" || die "mkfifo /dev/shm/$SHM-fifo"
mkdir "/dev/shm/$SHM-dir" || die "mkdir /dev/shm/$SHM-dir"
ln -s "/dev/shm/$SHM-fifo" "/dev/shm/$SHM-link" || die "ln -s"
run 1 "not a regular file (a FIFO)" "$IVLINKCTL" status --shm "$SHM-fifo"
run 1 "not a regular file (a directory)" "$IVLINKCTL" status --shm "$SHM-dir"
run 1 "a symbolic link, not a region file" "$IVLINKCTL" status --shm "$SHM-link"
run 1 "No such file" "$IVLINKCTL" status --shm "$SHM-none"
run 2 "needs an argument" "$IVLINKCTL" status --shm
run 2 "invalid shm name a/b" "$IVLINKCTL" status --shm a/b
run 2 "unknown option --jsn" "$IVLINKCTL" status --jsn
run 2 "no command given" "$IVLINKCTL"

# --------------------------------------------------------------- ivlink-run
while IFS='|' read -r opt val text; do
	[ -n "$opt" ] || continue
	case $opt in
	--*=) run 2 "${opt%=}: '$val' $text" "$IVLRUN" "$opt$val" true ;;
	*) run 2 "$opt: '$val' $text" "$IVLRUN" "${opt%%/*}" "$val" true ;;
	esac
done <<'EOF'
-R/--ring-size|1000|is not a power of two in 4096..268435456
-R/--ring-size|2048|is not a power of two in 4096..268435456
-R/--ring-size|536870912|is not a power of two in 4096..268435456
-R/--ring-size|12288|is not a power of two in 4096..268435456
-R/--ring-size|abc|is not a power of two in 4096..268435456
-R/--ring-size|0x1000|is not a power of two in 4096..268435456
-R/--ring-size||is not a power of two in 4096..268435456
--ring-size=|1000|is not a power of two in 4096..268435456
-t/--accept-timeout|abc|is not a number in 1..600000
-t/--accept-timeout|0|is not a number in 1..600000
-t/--accept-timeout|-1|is not a number in 1..600000
-t/--accept-timeout|600001|is not a number in 1..600000
-t/--accept-timeout|99999999999999999999|is not a number in 1..600000
--accept-timeout=||is not a number in 1..600000
-s/--spin|abc|is not a number in -1..1000000000
-s/--spin|-2|is not a number in -1..1000000000
-s/--spin|1.5|is not a number in -1..1000000000
-s/--spin|1000000001|is not a number in -1..1000000000
--spin=|20us|is not a number in -1..1000000000
EOF
run 2 "needs an argument" "$IVLRUN" -R
run 2 "no command given" "$IVLRUN" -t 300
for ok in "-R 4096" "-R 268435456" "--ring-size=1048576" "-t 1" "-t 600000" "-t 0300" \
	"--accept-timeout=15000" "-s 0" "-s -1" "-s 1000000000" "--spin=20000"; do
	# shellcheck disable=SC2086 # the option and its value
	run 0 "" env IVLINK_ENDPOINT=/nonexistent "$IVLRUN" $ok true
done

# ------------------------------------------------- shim settings and rules
# shim_env TEXT VAR=VALUE...: /bin/true under the shim prints exactly one
# line, containing TEXT (empty TEXT: prints nothing).
shim_env() {
	local text=$1 out n
	shift
	out=$(env IVLINK_ENDPOINT=/nonexistent "$@" LD_PRELOAD="$PRELOAD" /bin/true 2>&1)
	n=$(printf '%s' "$out" | grep -c .)
	if [ -z "$text" ]; then
		[ -z "$out" ] || { bad "$*: unexpected output: $out"; return; }
	elif [ "$n" != 1 ] || [[ "$out" != *"$text"* ]]; then
		bad "$*: expected one line with '$text', got: $out"
		return
	fi
	echo "ok: $* -> ${out:-(nothing)}"
}
shim_env "IVLINK_RING_SIZE='1000' is not a power of two in 4096..268435456; using the default, 131072" \
	IVLINK_RING_SIZE=1000
shim_env "IVLINK_RING_SIZE='010' is not a power of two" IVLINK_RING_SIZE=010
shim_env "IVLINK_SPIN_NS='abc' is not a number of nanoseconds in -1..1000000000" IVLINK_SPIN_NS=abc
shim_env "IVLINK_SPIN_NS='-2' is not a number" IVLINK_SPIN_NS=-2
shim_env "IVLINK_ACCEPT_TIMEOUT_MS='0' is not a number of milliseconds in 1..600000" \
	IVLINK_ACCEPT_TIMEOUT_MS=0
shim_env "IVLINK_ACCEPT_TIMEOUT_MS='1e3' is not a number" IVLINK_ACCEPT_TIMEOUT_MS=1e3
shim_env "IVLINK_DISABLE='yes' is not 0 or 1; taken as 1" IVLINK_DISABLE=yes
shim_env "" IVLINK_RING_SIZE=4096 IVLINK_SPIN_NS=-1 IVLINK_ACCEPT_TIMEOUT_MS=15000 IVLINK_DISABLE=0
shim_env "" IVLINK_RING_SIZE=268435456 IVLINK_SPIN_NS=0 IVLINK_ACCEPT_TIMEOUT_MS=1

while IFS='|' read -r rule text; do
	[ -n "$rule" ] || continue
	shim_env "IVLINK_RULES: invalid rule '$rule': $text" "IVLINK_RULES=$rule"
done <<'EOF'
exclude client 10.1.2.3/abc|prefix '/abc' is not a number in 0..32
exclude client 10.1.2.3/33|prefix '/33' is not a number in 0..32
exclude client 10.1.2.3/-1|prefix '/-1' is not a number in 0..32
exclude client [::1]/129|prefix '/129' is not a number in 0..128
exclude client [::1/129]:80|prefix '/129' is not a number in 0..128
exclude client *:99999|port '99999' is not *, N or N-M with N, M in 0..65535
exclude client *:abc|port 'abc' is not *, N or N-M
exclude client *:22-abc|port '22-abc' is not *, N or N-M
exclude client *:-22|port '-22' is not *, N or N-M
exclude client *:|port '' is not *, N or N-M
exclude client *:90-80|port range '90-80' is empty (90 > 80)
exclude client */8|'*' takes no prefix ('*/8')
exclude client ::1|an IPv6 address must be in [brackets]
exclude client 1.2.3|address '1.2.3' is not *, an IPv4 address or an IPv6 address in [brackets]
exclude client [::1|'[::1' has no closing ']'
exclude client 1.2.3.4 extra|not ACTION ROLE ADDRESS[/PREFIX][:PORT[-PORT]]
exclude client|not ACTION ROLE ADDRESS
drop client *|action 'drop' is not include, accel, use, exclude, os or tcp
exclude clients *|role 'clients' is not client, server or any
EOF
# A bad rule among good ones is reported alone, once, and disables them all.
shim_env "IVLINK_RULES: invalid rule 'exclude client *:70000': port '70000' is not *, N or N-M with N, M in 0..65535; no connection of this process will use the rings (fallback reason \"rules\")" \
	"IVLINK_RULES=exclude client *:22;exclude client *:70000;include any *"
for r in "exclude client *:22" "exclude client 10.0.0.0/8:22-25;include any *" \
	"tcp server [::1]/128:6379" "exclude client [fe80::1/64]:80" "os any 0.0.0.0/0:0-65535" \
	"accel client 127.0.0.1/32:*  # comment" "use any *"; do
	shim_env "" "IVLINK_RULES=$r"
done
printf '# rules\nexclude client *:22\n\ninclude any *\r\n' >"$T/good.conf"
shim_env "" "IVLINK_CONF=$T/good.conf"
printf 'exclude client *:22\nexclude client *:99999\n' >"$T/bad.conf"
shim_env "$T/bad.conf:2: invalid rule 'exclude client *:99999'" "IVLINK_CONF=$T/bad.conf"
shim_env "IVLINK_CONF $T/none.conf: No such file or directory; no connection of this process will use the rings" \
	"IVLINK_CONF=$T/none.conf"

# ------------------------------------- shimmed connections under bad rules
# A private ivlinkd on a named region (so that ivlinkctl --shm has a good
# case too), a shim_peer server under ivlink-run with good rules.
"$IVLINKD" -F -S "$T/d.sock" -M "$SHM" -l 16M -n 4 --max-peers 16 --log-level=warn \
	>"$T/ivlinkd.log" 2>&1 &
ts_bg $!
wait_sock "$T/d.sock" || die "ivlinkd did not start: $(cat "$T/ivlinkd.log")"
export IVLINK_ENDPOINT="host:$T/d.sock"
run 0 "\"region\":{\"name\":\"$SHM\"" "$IVLINKCTL" status --shm "$SHM" --json

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# server NAME PORT [VAR=VALUE...]: shim_peer server under ivlink-run.
server() {
	local name=$1 port=$2
	shift 2
	env "$@" "$IVLRUN" "$SHIM_PEER" server "$port" -q >"$T/$name.log" 2>&1 &
	ts_bg $!
	for _ in $(seq 100); do
		python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" \
			2>/dev/null && return 0
		sleep 0.05
	done
	die "server $name: nothing listens on $port: $(cat "$T/$name.log")"
}

# peer_stat PID FIELD: the shim counter (or fallback reason count) of the
# peer whose pid is PID, from ivlinkctl; read before the next client joins
# (a new peer may reuse the id and reset the counters).
peer_stat() {
	"$IVLINKCTL" status --socket "$T/d.sock" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
pid, f = int(sys.argv[1]), sys.argv[2]
ids = [p["id"] for p in d["peers"] if p["pid"] == pid]
print(sum(p[f] if f in p else p["reasons"].get(f, 0) for p in d["shim"]["peers"] if p["id"] in ids))' "$1" "$2"
}

# client NAME PORT MSGS ACCEL REASON COUNT [VAR=VALUE...]: two connections
# of shim_peer client under ivlink-run, all bytes checked; then the
# client's stderr has MSGS lines about invalid rules, and its peer ACCEL
# accelerated connections and COUNT fallbacks for REASON.
client() {
	local name=$1 port=$2 msgs=$3 accel=$4 reason=$5 count=$6 pid rc got n
	shift 6
	env "$@" "$IVLRUN" "$SHIM_PEER" client "$port" 2 4 65536 7 0 >"$T/$name.out" 2>"$T/$name.err" &
	pid=$!
	ts_bg "$pid"
	timeout 30 tail --pid="$pid" -f /dev/null
	kill -9 "$pid" 2>/dev/null # still running after 30 s: a hang, and a failure
	wait "$pid"
	rc=$?
	if [ "$rc" != 0 ] || ! grep -q "^DONE 2 " "$T/$name.out"; then
		bad "$name: client failed ($rc): $(cat "$T/$name.out" "$T/$name.err")"
		return
	fi
	n=$(grep -c "invalid rule\|IVLINK_CONF" "$T/$name.err")
	[ "$n" = "$msgs" ] ||
		bad "$name: $n messages about the rules on stderr, expected $msgs: $(cat "$T/$name.err")"
	got="$(peer_stat "$pid" accelerated) $(peer_stat "$pid" "$reason")"
	if [ "$got" != "$accel $count" ]; then
		bad "$name: accelerated, $reason = $got, expected $accel $count"
		return
	fi
	echo "ok: $name: accelerated $accel, fallbacks '$reason' $count"
}

P=$(free_port)
server srv "$P"
# The good forms first: they must not be refused (and prove that the
# rings are used at all, so that "accelerated 0" below means something).
client good-rules "$P" 0 2 rules 0 "IVLINK_RULES=exclude client 10.1.2.3/8;include any *"
client good-ports "$P" 0 2 rules 0 "IVLINK_RULES=exclude client 127.0.0.1/32:1-10"
# Read as /0, the prefix used to exclude everything without a word.
client bad-prefix "$P" 1 0 rules 2 "IVLINK_RULES=exclude client 127.0.0.1/abc"
# An empty range used to match nothing: the connection was accelerated.
client bad-range "$P" 1 0 rules 2 "IVLINK_RULES=exclude client *:90-80"
client bad-port "$P" 1 0 rules 2 "IVLINK_RULES=include client *:99999"
client bad-conf "$P" 1 0 rules 2 "IVLINK_CONF=$T/bad.conf"
client no-conf "$P" 1 0 rules 2 "IVLINK_CONF=$T/none.conf"
# A server whose rules are invalid publishes no listener: its good
# clients stay on TCP ("no-listener"), and it says why on its stderr.
P2=$(free_port)
server bad-srv "$P2" "IVLINK_RULES=exclude server *:1-0"
client to-bad-srv "$P2" 0 0 no-listener 2
grep -q "invalid rule 'exclude server \*:1-0': port range '1-0' is empty" "$T/bad-srv.log" ||
	bad "bad-srv: no message about its rule: $(cat "$T/bad-srv.log")"

[ "$FAILS" = 0 ] || die "$FAILS check(s) failed"
echo PASS
