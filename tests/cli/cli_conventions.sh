#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One command-line convention for every program and script ivlink ships
# (issue 14, item 5). For each NAME=PATH given:
#  - `--help` and `-h` exit 0, print on stdout (nothing on stderr) a text
#    that names NAME and documents --version;
#  - `--version` exits 0 and prints "NAME VERSION" (VERSION: CMake's
#    PROJECT_VERSION, from the VERSION file) on stdout;
#  - a bogus long option and a bogus short option exit 2 with nothing on
#    stdout and exactly two lines on stderr: one naming the option, then
#    "Try 'NAME --help' for more information.".
# Nothing here needs root or starts anything: every check stops at option
# parsing.
#
# Usage: cli_conventions.sh VERSION NAME=PATH...
set -u
VERSION=${1:?usage: $0 VERSION NAME=PATH...}
shift
[ $# -gt 0 ] || { echo "FAIL: no programs given"; exit 1; }
T=$(mktemp -d /tmp/ivl-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
bad() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}

# run PATH ARGS...: sets RC, and the output in $T/out, $T/err (10 s at most,
# no stdin: nothing may wait for input).
run() {
	timeout 10 "$@" </dev/null >"$T/out" 2>"$T/err"
	RC=$?
}

for spec in "$@"; do
	name=${spec%%=*} path=${spec#*=}
	if [ ! -x "$path" ]; then
		bad "$name: $path is not an executable"
		continue
	fi
	for h in --help -h; do
		run "$path" "$h"
		if [ "$RC" != 0 ]; then
			bad "$name $h: exit $RC (want 0): $(head -c 300 "$T/err")"
		elif ! grep -q -- "$name" "$T/out"; then
			bad "$name $h: the text does not name $name"
		elif ! grep -q -- "--version" "$T/out"; then
			bad "$name $h: --version is not documented"
		elif [ -s "$T/err" ]; then
			bad "$name $h: wrote to stderr: $(head -c 300 "$T/err")"
		else
			echo "ok: $name $h ($(wc -l <"$T/out") lines)"
		fi
	done

	run "$path" --version
	if [ "$RC" != 0 ]; then
		bad "$name --version: exit $RC (want 0): $(head -c 300 "$T/err")"
	elif ! head -n1 "$T/out" | grep -Eq "^$name $VERSION( |\$)"; then
		bad "$name --version: '$(head -n1 "$T/out")', want '$name $VERSION'"
	else
		echo "ok: $name --version: $(head -n1 "$T/out")"
	fi

	for opt in --no-such-option-xyz -Z; do
		run "$path" "$opt"
		hint="Try '$name --help' for more information."
		if [ "$RC" != 2 ]; then
			bad "$name $opt: exit $RC (want 2): $(head -c 300 "$T/err")"
		elif [ -s "$T/out" ]; then
			bad "$name $opt: wrote to stdout: $(head -c 300 "$T/out")"
		elif [ "$(wc -l <"$T/err")" != 2 ]; then
			bad "$name $opt: $(wc -l <"$T/err") lines on stderr, want 2: $(cat "$T/err")"
		elif [ "$(tail -n1 "$T/err")" != "$hint" ]; then
			bad "$name $opt: last line '$(tail -n1 "$T/err")', want \"$hint\""
		elif ! head -n1 "$T/err" | grep -q -- "${opt##*-}"; then
			bad "$name $opt: the message does not name the option: $(head -n1 "$T/err")"
		else
			echo "ok: $name $opt: exit 2: $(head -n1 "$T/err")"
		fi
	done
done
if [ "$FAILS" != 0 ]; then
	echo "FAIL: $FAILS check(s) failed"
	exit 1
fi
echo "PASS cli_conventions ($# programs)"
