# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Sourced by shell tests that make many checks and report each one
# (tests/cli, tests/package):
#   ivl_checks_init NAME   $T: a new /tmp/ivl-NAME-XXXXXX, removed on exit;
#                          the failure count starts at 0
#   ok TEXT / bad TEXT     one passed / failed check ("ok: ", "FAIL: ")
#   ivl_checks_end TEXT    exit 1 after "N failure(s)" if any check failed,
#                          else print TEXT (the test's verdict)
#   ivl_install_scratch CMAKE BUILD_DIR PREFIX
#                          cmake --install BUILD_DIR --prefix PREFIX, or
#                          exit 1 with the install's output; also when a
#                          rule installed anything outside PREFIX (a path
#                          fixed at configure time writes into the system)
ivl_checks_init() {
	T=$(mktemp -d "/tmp/ivl-$1-XXXXXX") || exit 1
	trap 'rm -rf "$T"' EXIT
	IVL_FAILS=0
}
ok() { echo "ok: $*"; }
bad() {
	echo "FAIL: $*"
	IVL_FAILS=$((IVL_FAILS + 1))
}
ivl_checks_end() {
	[ "$IVL_FAILS" = 0 ] || { echo "$IVL_FAILS failure(s)"; exit 1; }
	echo "$*"
}
ivl_install_scratch() {
	"$1" --install "$2" --prefix "$3" >"$T/install.log" 2>&1 ||
		{ cat "$T/install.log"; echo "FAIL: cmake --install $2 --prefix $3"; exit 1; }
	if grep -E '^-- (Installing|Up-to-date): ' "$T/install.log" | sed -E 's/^-- [^:]*: //; s/ -> .*//' |
		grep -v "^$3/" >"$T/outside"; then
		echo "FAIL: cmake --install --prefix $3 installed outside it:"
		cat "$T/outside"
		exit 1
	fi
}
