#!/bin/sh
# SPDX-License-Identifier: MIT
# help2roff.sh PROGRAM SECTION VERSION DATE OUT: writes to OUT the manual
# page of a program whose --help is written as one (unindented upper-case
# headings: NAME, SYNOPSIS, DESCRIPTION, OPTIONS, ...; the text indented by
# four spaces), so that page and help cannot drift: the page is made from
# the built program at build time (docs/man/CMakeLists.txt). NAME becomes
# the filled "name \- summary" line whatis(1) reads; every other section
# keeps the help's layout as no-fill text, with roff's special characters
# escaped. Exits 1 (and writes nothing) if the help has no NAME section.
set -eu
prog=${1:?usage: $0 PROGRAM SECTION VERSION DATE OUT}
sec=${2:?} ver=${3:?} date=${4:?} out=${5:?}
name=$(basename "$prog")
help=$("$prog" --help)
printf '%s\n' "$help" | grep -q '^NAME$' || { echo "$0: $name --help has no NAME section" >&2; exit 1; }
upper=$(printf '%s' "$name" | tr 'a-z-' 'A-Z_' | sed 's/_/\\-/g')
trap 'rm -f "$out.tmp"' EXIT
{
printf '.\\" SPDX-License-Identifier: MIT\n'
# shellcheck disable=SC2016 # the backquotes are literal text in the comment
printf '.\\" Generated from `%s --help` by docs/man/help2roff.sh: edit the help text.\n' "$name"
printf '.TH %s %s %s "ivlink %s" "User Commands"\n' "$upper" "$sec" "$date" "$ver"
# Left-adjusted, unhyphenated: the NAME line reads as in the help.
printf '.ad l\n.nh\n'
printf '%s\n' "$help" | awk '
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	if (s ~ /^[.\047]/) s = "\\&" s
	return s
}
function close_section() {
	if (section == "NAME") { sub(/ +$/, "", nameline); print esc(nameline) }
	else if (section != "") print ".fi"
}
/^[A-Z][A-Z ]*$/ {
	close_section()
	section = $0
	blanks = 0
	print ".SH " $0
	if (section != "NAME") print ".nf"
	nameline = ""
	next
}
{
	line = $0
	sub(/^    /, "", line)
	if (section == "NAME") {
		sub(/^ +/, "", line)
		if (line != "") nameline = nameline line " "
	} else if (section != "") {
		# Blank lines only between text: none at the end of a section.
		if (line == "") { blanks++; next }
		for (; blanks > 0; blanks--) print ""
		print esc(line)
	}
}
END { close_section() }'
} >"$out.tmp"
mv "$out.tmp" "$out"
