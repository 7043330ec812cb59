#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man pages (docs/man, issue 14 item 3):
#   man_pages.sh render PAGE...
#       every page renders with `man --warnings -l` and troff says nothing
#       (no warning, no error), and its NAME section is the file's name;
#   man_pages.sh options PAGE=PROGRAM...
#       every long option (--word) in `PROGRAM --help` appears in PAGE and
#       every long option in PAGE appears in the help, so that neither can
#       drift from the other.
# A missing `man` is a failure naming its package group (scripts/ivl-deps
# docs), not a skip.
set -u
mode=${1:?usage: $0 render PAGE... | options PAGE=PROGRAM...}
shift
T=$(mktemp -d /tmp/ivl-man-XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
bad() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}

# The long options a text mentions, one per line, sorted.
long_opts() { grep -oE -- '--[a-zA-Z][a-zA-Z0-9-]*' | sort -u; }
# The text of a roff source without comments and escapes that split words.
roff_text() {
	grep -v '^\.\\"' "$1" | sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f([A-Z][A-Z]//g' \
		-e 's/\\(aq/'"'"'/g' -e 's/\\e/\\/g'
}

case $mode in
render)
	command -v man >/dev/null || { echo "FAIL: command 'man' not found (scripts/ivl-deps docs)"; exit 1; }
	for page in "$@"; do
		base=$(basename "$page")
		MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$page" >"$T/out" 2>"$T/err"
		rc=$?
		if [ "$rc" != 0 ]; then
			bad "$base: man exited $rc: $(head -c 400 "$T/err")"
		elif [ -s "$T/err" ]; then
			bad "$base: warnings: $(cat "$T/err")"
		elif ! grep -Eq "^ +${base%.*} - " "$T/out"; then
			bad "$base: no NAME line '${base%.*} - ...'"
		else
			echo "ok: $base renders without a warning ($(wc -l <"$T/out") lines)"
		fi
	done
	;;
options)
	for spec in "$@"; do
		page=${spec%%=*} prog=${spec#*=}
		base=$(basename "$page")
		if ! timeout 10 "$prog" --help >"$T/help" 2>/dev/null </dev/null; then
			bad "$base: $prog --help failed"
			continue
		fi
		long_opts <"$T/help" >"$T/h"
		roff_text "$page" | long_opts >"$T/m"
		only_help=$(comm -23 "$T/h" "$T/m" | tr '\n' ' ')
		only_man=$(comm -13 "$T/h" "$T/m" | tr '\n' ' ')
		[ -z "$only_help" ] || bad "$base: in $(basename "$prog") --help, not in the page: $only_help"
		[ -z "$only_man" ] || bad "$base: in the page, not in $(basename "$prog") --help: $only_man"
		[ -n "$only_help$only_man" ] ||
			echo "ok: $base and $(basename "$prog") --help name the same $(wc -l <"$T/h") long options"
	done
	;;
*) echo "usage: $0 render PAGE... | options PAGE=PROGRAM..."; exit 2 ;;
esac
if [ "$FAILS" != 0 ]; then
	echo "FAIL: $FAILS check(s) failed"
	exit 1
fi
echo "PASS man_pages $mode"
