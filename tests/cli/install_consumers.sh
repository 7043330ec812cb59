#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A user's program built against an installed libivlink (issue 14, item 6):
# the tree is installed into a scratch prefix, then examples/ is built from
# that copy twice, as a user would,
#  - with CMake: examples/ as a project of its own, find_package(ivlink)
#    through CMAKE_PREFIX_PATH (ivlinkConfig.cmake, ivlink::ivlink);
#  - with pkg-config: cc $(pkg-config --cflags --libs ivlink) through
#    PKG_CONFIG_PATH (ivlink.pc, relative to its own directory);
# and each result must load libivlink.so.0 from the scratch prefix (ldd)
# and answer --help and --version.
#
# Usage: install_consumers.sh CMAKE BUILD_DIR SOURCE_DIR CC VERSION
set -u
CMAKE=${1:?usage: $0 CMAKE BUILD_DIR SOURCE_DIR CC VERSION}
BUILD=${2:?} SRC=${3:?} CC=${4:?} VERSION=${5:?}
. "$(dirname "$0")/../support/checks.sh"
ivl_checks_init consumers

ivl_install_scratch "$CMAKE" "$BUILD" "$T/usr"
SO=$(find "$T/usr" -name libivlink.so.0 -print -quit)
[ -n "$SO" ] || { echo "FAIL: no libivlink.so.0 installed"; exit 1; }
LIBDIR=$(dirname "$SO")
for f in "$LIBDIR/pkgconfig/ivlink.pc" "$LIBDIR/cmake/ivlink/ivlinkConfig.cmake" \
	"$LIBDIR/cmake/ivlink/ivlinkConfigVersion.cmake" "$LIBDIR/cmake/ivlink/ivlinkTargets.cmake"; do
	[ -f "$f" ] || bad "${f#"$T"/} is not installed"
done

# check NAME BINARY: loads the scratch copy of the library, runs.
check() {
	local name=$1 bin=$2 lib
	lib=$(LD_LIBRARY_PATH=${3:-} ldd "$bin" | awk '$1 == "libivlink.so.0" { print $3 }')
	if [ "$lib" != "$SO" ] && [ "$(readlink -f "$lib")" != "$(readlink -f "$SO")" ]; then
		bad "$name: loads libivlink.so.0 from '$lib', not from $SO"
		return
	fi
	if ! LD_LIBRARY_PATH=${3:-} "$bin" --help >"$T/out" 2>&1 || ! grep -q -- --version "$T/out"; then
		bad "$name: --help: $(head -c 300 "$T/out")"
	elif [ "$(LD_LIBRARY_PATH=${3:-} "$bin" --version)" != "ivlink-pingpong $VERSION" ]; then
		bad "$name: --version: '$(LD_LIBRARY_PATH=${3:-} "$bin" --version)'"
	else
		ok "$name: runs against ${lib#"$T"/}"
	fi
}

# 1. CMake, find_package(ivlink). No other prefix may satisfy it.
if "$CMAKE" -S "$SRC/examples" -B "$T/cmake-build" -DCMAKE_C_COMPILER="$CC" \
	-DCMAKE_PREFIX_PATH="$T/usr" -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$T/cmake.log" 2>&1 &&
	"$CMAKE" --build "$T/cmake-build" >>"$T/cmake.log" 2>&1; then
	found=$(grep -E '^ivlink_DIR:' "$T/cmake-build/CMakeCache.txt" | cut -d= -f2)
	if [ "$found" != "$LIBDIR/cmake/ivlink" ]; then
		bad "find_package(ivlink) used '$found', not $LIBDIR/cmake/ivlink"
	else
		check "find_package(ivlink)" "$T/cmake-build/ivlink-pingpong"
	fi
else
	bad "examples/ with find_package(ivlink):"
	tail -n 30 "$T/cmake.log"
fi

# A version this copy is not compatible with must be refused.
mkdir -p "$T/too-new"
printf 'cmake_minimum_required(VERSION 3.18)\nproject(p LANGUAGES C)\nfind_package(ivlink 99 REQUIRED)\n' \
	>"$T/too-new/CMakeLists.txt"
if "$CMAKE" -S "$T/too-new" -B "$T/too-new/b" -DCMAKE_PREFIX_PATH="$T/usr" >"$T/too-new.log" 2>&1; then
	bad "find_package(ivlink 99) succeeded against version $VERSION"
else
	ok "find_package(ivlink 99) refused"
fi

# 2. pkg-config.
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
export PKG_CONFIG_LIBDIR=$LIBDIR/pkgconfig # the system's copy must not answer
if ! flags=$(pkg-config --cflags --libs ivlink 2>"$T/err"); then
	bad "pkg-config ivlink: $(cat "$T/err")"
elif [ "$(pkg-config --modversion ivlink)" != "$VERSION" ]; then
	bad "pkg-config --modversion ivlink: '$(pkg-config --modversion ivlink)', want $VERSION"
else
	# shellcheck disable=SC2086
	if "$CC" -std=gnu11 -Wall -Werror "$SRC/examples/ivlink-pingpong.c" -o "$T/pingpong-pc" \
		$flags -pthread 2>"$T/err"; then
		check "pkg-config ivlink ($flags)" "$T/pingpong-pc" "$LIBDIR"
	else
		bad "cc \$(pkg-config ivlink) examples/ivlink-pingpong.c: $(head -c 600 "$T/err")"
	fi
fi

ivl_checks_end "examples/ builds and runs against the installed copy (find_package, pkg-config)"
