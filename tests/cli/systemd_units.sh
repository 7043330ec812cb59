#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The systemd units as installed (issue 14, item 2): `cmake --install` into
# a scratch DESTDIR, then for ivlinkd.service and ivlink-guestd.service
#  - `systemd-analyze verify` prints nothing and succeeds: the ExecStart
#    binary exists and is executable, the man pages of Documentation=
#    exist, every key is known;
#  - `systemd-analyze security --offline=yes` rates the exposure below 5.
# Neither needs systemd running: --root points both at the scratch tree,
# which gets a copy of the system's own units (the targets ours order
# against).
#
# Usage: systemd_units.sh CMAKE BUILD_DIR
set -euo pipefail
CMAKE=$1 BUILD=$2
MAX_EXPOSURE=5.0
T=$(mktemp -d /tmp/ivl-units-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v systemd-analyze >/dev/null ||
	fail "systemd-analyze not found: install it with scripts/ivl-deps systemd (make test does)"
DESTDIR=$T "$CMAKE" --install "$BUILD" >"$T/install.log" || { cat "$T/install.log" >&2; fail "cmake --install"; }
sysunits=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
mkdir -p "$T/usr/lib/systemd"
cp -a "$sysunits" "$T/usr/lib/systemd/system"
mandir=$(find "$T" -type d -name man -path '*/share/man' | head -1)
[ -n "$mandir" ] || fail "no man pages installed under $T"

for u in ivlinkd.service ivlink-guestd.service; do
	unit=$(find "$T" -name "$u" -not -path "$T/usr/lib/systemd/system/*" | head -1)
	[ -n "$unit" ] || fail "$u not installed"
	rel=${unit#"$T"}
	out=$(MANPATH=$mandir systemd-analyze verify --root="$T" "$unit" 2>&1) && rc=0 || rc=$?
	if [ "$rc" != 0 ] || [ -n "$out" ]; then
		fail "systemd-analyze verify $rel (exit $rc): $out"
	fi
	echo "ok: systemd-analyze verify $rel: clean"

	out=$(systemd-analyze security --offline=yes --root="$T" "$unit" 2>&1) || true
	level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
	[ -n "$level" ] || fail "systemd-analyze security $rel: no exposure level in: $out"
	awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l < m) }' ||
		fail "systemd-analyze security $rel: exposure $level, must be below $MAX_EXPOSURE:
$(grep '✗' <<<"$out")"
	echo "ok: systemd-analyze security $rel: exposure $level (< $MAX_EXPOSURE)"
done
