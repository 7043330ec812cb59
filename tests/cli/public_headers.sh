#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The installed headers (issue 14, item 6), checked on a copy installed into
# a scratch prefix (cmake --install BUILD --prefix DIR), not on the tree:
#  - every installed header compiles alone as C11 and as C++17 with
#    -Wall -Wextra -Werror -pedantic;
#  - every static_assert of a header is still there after preprocessing,
#    in C (as _Static_assert) and in C++ (the keyword): none is compiled out;
#  - the functions the installed headers declare are exactly the ones
#    libivlink.so exports (gcc -aux-info against nm -D): no header declares
#    a call the library does not have, and no export is undocumented;
#  - the installed libivlink(3) names exactly those calls in its SYNOPSIS;
#  - IVL_VERSION_MAJOR/MINOR/PATCH and IVL_VERSION_STRING match VERSION,
#    and ivl_version() of the installed library returns IVL_VERSION_NUMBER,
#    from a C and from a C++ program.
#
# Usage: public_headers.sh CMAKE BUILD_DIR CC CXX VERSION
set -u
CMAKE=${1:?usage: $0 CMAKE BUILD_DIR CC CXX VERSION}
BUILD=${2:?} CC=${3:?} CXX=${4:?} VERSION=${5:?}
. "$(dirname "$0")/../support/checks.sh"
ivl_checks_init headers
WARN=(-Wall -Wextra -Werror -pedantic)

ivl_install_scratch "$CMAKE" "$BUILD" "$T/usr"
INC=$T/usr/include
LIB=$(find "$T/usr" -name libivlink.so -print -quit)
[ -n "$LIB" ] || { echo "FAIL: no libivlink.so installed"; exit 1; }
mapfile -t HEADERS < <(cd "$INC" && find ivlink -name '*.h' | LC_ALL=C sort)
[ ${#HEADERS[@]} -gt 0 ] || { echo "FAIL: no header installed under $INC/ivlink"; exit 1; }
echo "installed: ${HEADERS[*]}"
for h in ivlink/ivlink.h ivlink/layout.h ivlink/version.h; do
	[ -f "$INC/$h" ] || bad "$h is not installed"
done

for h in "${HEADERS[@]}"; do
	# (A declaration after it: ISO C forbids an empty translation unit,
	# which a header of macros only would leave.)
	printf '#include <%s>\ntypedef int ivl_test_nonempty;\n' "$h" >"$T/alone.c"
	cp "$T/alone.c" "$T/alone.cc"
	if "$CC" -std=c11 "${WARN[@]}" -I"$INC" -fsyntax-only "$T/alone.c" 2>"$T/err"; then
		ok "$h alone as C11"
	else
		bad "$h alone as C11: $(head -c 600 "$T/err")"
	fi
	if "$CXX" -std=c++17 "${WARN[@]}" -I"$INC" -fsyntax-only "$T/alone.cc" 2>"$T/err"; then
		ok "$h alone as C++17"
	else
		bad "$h alone as C++17: $(head -c 600 "$T/err")"
	fi
	# Asserts written in the header vs asserts the compilers see.
	want=$(grep -Ec '^[[:space:]]*(_Static_assert|static_assert)[[:space:]]*\(' "$INC/$h")
	[ "$want" -gt 0 ] || continue
	got_c=$("$CC" -std=c11 -E -P -I"$INC" "$T/alone.c" | grep -Eo '\b_Static_assert[[:space:]]*\(' | wc -l)
	got_cxx=$("$CXX" -std=c++17 -E -P -I"$INC" "$T/alone.cc" | grep -Eo '\bstatic_assert[[:space:]]*\(' | wc -l)
	if [ "$got_c" -lt "$want" ] || [ "$got_cxx" -lt "$want" ]; then
		bad "$h: $want static asserts, the C compiler sees $got_c, C++ $got_cxx"
	else
		ok "$h: all $want static asserts reach C and C++"
	fi
done

# Declared functions (from the installed headers only) vs exports.
{
	printf '#include <%s>\n' "${HEADERS[@]}"
} >"$T/all.c"
if "$CC" -std=c11 -I"$INC" -aux-info "$T/aux" -c "$T/all.c" -o "$T/all.o" 2>"$T/err"; then
	grep -F "/* $INC/" "$T/aux" | grep -Eo '\b[a-z_][a-z0-9_]* \(' | sed 's/ ($//' |
		LC_ALL=C sort -u >"$T/declared"
	nm -D --defined-only "$LIB" | awk '$2 ~ /^[TW]$/ { print $3 }' | sed 's/@.*//' |
		LC_ALL=C sort -u >"$T/exported"
	if ! [ -s "$T/declared" ]; then
		bad "the installed headers declare no function"
	elif ! diff -u "$T/declared" "$T/exported" >"$T/diff"; then
		bad "declared (-) vs exported by $(basename "$LIB") (+):"
		sed -n '3,$p' "$T/diff" | grep '^[-+]'
	else
		ok "the headers declare exactly the $(wc -l <"$T/exported") exported calls"
	fi
	page=$(find "$T/usr" -name libivlink.3 -print -quit)
	if [ -z "$page" ]; then
		bad "libivlink.3 is not installed"
	else
		sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$page" | sed 's/\\-/-/g' |
			grep -Eo '\bivl_[a-z0-9_]+\(' | tr -d '(' | LC_ALL=C sort -u >"$T/documented"
		if diff -u "$T/declared" "$T/documented" >"$T/diff"; then
			ok "libivlink(3) names every declared call"
		else
			bad "declared (-) vs named in libivlink(3)'s SYNOPSIS (+):"
			sed -n '3,$p' "$T/diff" | grep '^[-+]'
		fi
	fi
else
	bad "all headers together: $(head -c 600 "$T/err")"
fi

# Version macros against VERSION, and ivl_version() of the installed library.
IFS=. read -r MAJ MIN PAT <<<"$VERSION"
cat >"$T/ver.c" <<'EOF'
#include <stdio.h>
#include <ivlink/ivlink.h>
int main(void)
{
	printf("%d.%d.%d %s %lu %lu\n", IVL_VERSION_MAJOR, IVL_VERSION_MINOR,
	       IVL_VERSION_PATCH, IVL_VERSION_STRING, (unsigned long)IVL_VERSION_NUMBER,
	       (unsigned long)ivl_version());
	return 0;
}
EOF
cp "$T/ver.c" "$T/ver.cc"
want="$VERSION $VERSION $(((MAJ << 16) | (MIN << 8) | PAT)) $(((MAJ << 16) | (MIN << 8) | PAT))"
LIBDIR=$(dirname "$LIB")
for lang in c cc; do
	comp=$CC std=-std=c11
	[ $lang = cc ] && comp=$CXX std=-std=c++17
	if ! "$comp" $std "${WARN[@]}" -I"$INC" "$T/ver.$lang" -o "$T/ver-$lang" -L"$LIBDIR" -livlink \
		2>"$T/err"; then
		bad "ver.$lang: $(head -c 600 "$T/err")"
		continue
	fi
	got=$(LD_LIBRARY_PATH=$LIBDIR "$T/ver-$lang")
	if [ "$got" != "$want" ]; then
		bad "ver.$lang: '$got', want '$want' (macros, string, number, ivl_version())"
	else
		ok "ver.$lang: $got"
	fi
done

ivl_checks_end "all public header checks passed"
