#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian packages (issue 14, item 4), built from a copy of the tree so
# that the checkout stays clean: the tracked and untracked, not ignored
# files (git ls-files; the whole folder without its build folders when it
# is no git checkout) are copied into a scratch folder, where
#  - `dpkg-buildpackage -b -us -uc` builds them (its dh_auto_test runs the
#    unit label; debian/rules: the symbols file must match exactly);
#  - lintian reports no error and no warning, and no override is unused
#    (every override in debian/*.lintian-overrides says why it exists);
#  - each .deb, unpacked with dpkg -x into a root of its own, holds what
#    it should: libivlink.so.0 in the multiarch libdir, the headers of the
#    native API only, the preload library in its private directory (and
#    ivlink-run naming it there), ivlinkd in /usr/sbin with its unit
#    enabled by the maintainer scripts, the man pages, the VM scripts
#    writing under the user's cache, and the programs run from the
#    unpacked copy.
# Nothing is installed into the system; all of it is removed at the end.
#
# Usage: debian_packages.sh SOURCE_DIR VERSION
set -u
SRC=${1:?usage: $0 SOURCE_DIR VERSION}
VERSION=${2:?usage: $0 SOURCE_DIR VERSION}
JOBS=${JOBS:-2}
. "$(dirname "$0")/../support/checks.sh"
ivl_checks_init deb

for tool in dpkg-buildpackage dh lintian; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/ivl-deps package)"; exit 1; }
done

# ---------------------------------------------------------------- the copy
mkdir "$T/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -xf - -C "$T/src" || { echo "FAIL: copying the tree"; exit 1; }
else
	(cd "$SRC" && tar --exclude='./build' --exclude='./build-*' --exclude='./debian/build' \
		-cf - .) | tar -xf - -C "$T/src" || { echo "FAIL: copying the tree"; exit 1; }
fi
DEBVER=$(cd "$T/src" && dpkg-parsechangelog -S Version)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)

# ---------------------------------------------------------------- build
echo "building $DEBVER in $T/src (log: build.log; about 2 minutes)"
if ! (cd "$T/src" && DEB_BUILD_OPTIONS="parallel=$JOBS" dpkg-buildpackage -b -us -uc) \
	>"$T/build.log" 2>&1; then
	tail -n 60 "$T/build.log"
	echo "FAIL: dpkg-buildpackage -b -us -uc"
	exit 1
fi
grep -E '^[0-9]+% tests passed' "$T/build.log" | sed 's/^/dh_auto_test: /'
ok "dpkg-buildpackage -b -us -uc"
PKGS=(libivlink0 libivlink-dev ivlinkd ivlink-shim ivlink-guestd ivlink-tools python3-ivlink)
for p in "${PKGS[@]}"; do
	[ -f "$T/${p}_${DEBVER#*:}_$ARCH.deb" ] || bad "no ${p}_${DEBVER#*:}_$ARCH.deb built"
done
CHANGES=$T/ivlink_${DEBVER#*:}_$ARCH.changes
[ -f "$CHANGES" ] || { echo "FAIL: no $CHANGES"; exit 1; }

# ---------------------------------------------------------------- lintian
lintian -I --fail-on error,warning "$CHANGES" >"$T/lintian.log" 2>&1
rc=$?
sed 's/^/lintian: /' "$T/lintian.log"
if [ "$rc" != 0 ]; then
	bad "lintian: errors or warnings (exit $rc)"
elif grep -Eq 'unused-override|mismatched-override' "$T/lintian.log"; then
	bad "lintian: an override no longer matches (remove it from debian/)"
else
	ok "lintian: no error, no warning, every override used"
fi

# ---------------------------------------------------------------- layout
mkdir -p "$T/root" "$T/control" "$T/all"
for p in "${PKGS[@]}"; do
	if ! dpkg -x "$T/${p}_${DEBVER#*:}_$ARCH.deb" "$T/root/$p" || ! dpkg -x "$T/${p}_${DEBVER#*:}_$ARCH.deb" "$T/all"; then
		bad "dpkg -x $p"
	fi
	dpkg-deb -e "$T/${p}_${DEBVER#*:}_$ARCH.deb" "$T/control/$p" || bad "dpkg-deb -e $p"
done
# has PKG PATH...: each PATH is in PKG's root (file or link);
# lacks PKG PATH...: none is.
in_root() { # yes|no PKG PATH...
	local want=$1 p=$2 f there
	shift 2
	for f in "$@"; do
		there=no
		{ [ -e "$T/root/$p/$f" ] || [ -L "$T/root/$p/$f" ]; } && there=yes
		case $want$there in
		yesyes) ok "$p: /$f" ;;
		yesno) bad "$p: no /$f" ;;
		noyes) bad "$p: /$f should not be there" ;;
		esac
	done
}
has() { in_root yes "$@"; }
lacks() { in_root no "$@"; }
L=usr/lib/$MA

has libivlink0 "$L/libivlink.so.0" "$L/libivlink.so.$VERSION"
lacks libivlink0 "$L/libivlink.so" "$L/libivlink-preload.so"
soname=$(objdump -p "$T/root/libivlink0/$L/libivlink.so.$VERSION" 2>/dev/null | awk '$1 == "SONAME" { print $2 }')
if [ "$soname" = libivlink.so.0 ]; then
	ok "libivlink0: SONAME $soname"
else
	bad "libivlink0: SONAME '$soname'"
fi
if [ -f "$T/control/libivlink0/symbols" ] && grep -q '^ ivl_version@IVLINK_0.1 ' "$T/control/libivlink0/symbols"; then
	ok "libivlink0: symbols file with ivl_version@IVLINK_0.1"
else
	bad "libivlink0: no symbols control file naming ivl_version@IVLINK_0.1"
fi

has libivlink-dev usr/include/ivlink/ivlink.h usr/include/ivlink/layout.h usr/include/ivlink/version.h \
	"$L/libivlink.so" "$L/pkgconfig/ivlink.pc" "$L/cmake/ivlink/ivlinkConfig.cmake" \
	"$L/cmake/ivlink/ivlinkConfigVersion.cmake" usr/share/man/man3/libivlink.3.gz
lacks libivlink-dev usr/include/ivlink/ring.h usr/include/ivlink/region.h usr/include/ivlink/notify.h
pcprefix=$(PKG_CONFIG_LIBDIR=$T/root/libivlink-dev/$L/pkgconfig pkg-config --variable=libdir ivlink)
if [ "$(readlink -f "$pcprefix")" = "$T/root/libivlink-dev/$L" ]; then
	ok "libivlink-dev: ivlink.pc libdir /$L"
else
	bad "libivlink-dev: ivlink.pc libdir '$pcprefix'"
fi

has ivlinkd usr/sbin/ivlinkd usr/bin/ivlinkctl lib/systemd/system/ivlinkd.service \
	usr/share/man/man8/ivlinkd.8.gz usr/share/man/man8/ivlinkctl.8.gz usr/share/man/man7/ivlink.7.gz
lacks ivlinkd usr/bin/ivlinkd
if grep -q '^ExecStart=/usr/sbin/ivlinkd ' "$T/root/ivlinkd/lib/systemd/system/ivlinkd.service"; then
	ok "ivlinkd.service: ExecStart=/usr/sbin/ivlinkd"
else
	bad "ivlinkd.service: $(grep '^ExecStart' "$T/root/ivlinkd/lib/systemd/system/ivlinkd.service")"
fi
if grep -q "deb-systemd-helper enable 'ivlinkd.service'" "$T/control/ivlinkd/postinst" 2>/dev/null &&
	grep -q "deb-systemd-invoke .* 'ivlinkd.service'" "$T/control/ivlinkd/postinst"; then
	ok "ivlinkd: postinst enables and starts ivlinkd.service (dh_installsystemd)"
else
	bad "ivlinkd: postinst does not enable and start ivlinkd.service"
fi

has ivlink-shim usr/bin/ivlink-run "$L/ivlink/libivlink-preload.so" usr/share/man/man1/ivlink-run.1.gz
lacks ivlink-shim "$L/libivlink-preload.so"
[ -f "$T/control/ivlink-shim/shlibs" ] && bad "ivlink-shim: has a shlibs file: $(cat "$T/control/ivlink-shim/shlibs")"
if grep -q "\"\${IVLINK_PRELOAD_LIB:-/$L/ivlink/libivlink-preload.so}\"" "$T/root/ivlink-shim/usr/bin/ivlink-run"; then
	ok "ivlink-run: preloads /$L/ivlink/libivlink-preload.so"
else
	bad "ivlink-run names: $(grep -m1 'IVL_PRELOAD_LIB=' "$T/root/ivlink-shim/usr/bin/ivlink-run")"
fi
# The unpacked shim loads into a program (all its libraries resolve).
# shellcheck disable=SC2016 # the inner sh expands $LD_PRELOAD, as it sees it
got=$(IVLINK_PRELOAD_LIB=$T/root/ivlink-shim/$L/ivlink/libivlink-preload.so \
	"$T/root/ivlink-shim/usr/bin/ivlink-run" --disable -- sh -c 'echo "$LD_PRELOAD"; echo loaded' 2>&1)
if [ "$got" = "$T/root/ivlink-shim/$L/ivlink/libivlink-preload.so
loaded" ]; then
	ok "ivlink-run: the unpacked preload library loads"
else
	bad "ivlink-run with the unpacked preload library: $got"
fi

has ivlink-guestd usr/sbin/ivlink-guestd lib/systemd/system/ivlink-guestd.service \
	usr/share/man/man8/ivlink-guestd.8.gz

has ivlink-tools usr/bin/ivlink-bench usr/bin/ivlink-ring-bench usr/bin/ivlink-pingpong \
	usr/share/man/man1/ivlink-bench.1.gz usr/share/man/man1/ivlink-ring-bench.1.gz \
	usr/share/man/man1/ivlink-pingpong.1.gz \
	usr/libexec/ivlink/ivlink-vm usr/libexec/ivlink/build-image usr/libexec/ivlink/ivlink-libvirt \
	usr/libexec/ivlink/guest/ivlink-probe usr/libexec/ivlink/guest/ivlink-vfio-probe \
	usr/libexec/ivlink/guest/ivlink-bench-static usr/libexec/ivlink/ivlink-udp-switch \
	usr/share/ivlink/install.conf usr/share/ivlink/VERSION \
	usr/share/ivlink/libvirt.conf usr/share/ivlink/libvirt/guest.xml.in
# The installed VM scripts: the version, the installed programs through
# programs/ (resolved in the root of all packages), output under the
# user's cache (build-image creates it before it looks for its tools).
V=$T/all/usr/libexec/ivlink
for s in ivlink-vm ivlink-libvirt; do
	if [ "$("$V/$s" --version)" = "$s $VERSION" ]; then
		ok "$s --version (installed copy)"
	else
		bad "$s --version: $("$V/$s" --version 2>&1)"
	fi
done
for spec in host-daemon/ivlinkd=usr/sbin/ivlinkd guest-lib/ivlink-guestd=usr/sbin/ivlink-guestd \
	examples/ivlink-pingpong=usr/bin/ivlink-pingpong \
	vm-configs/ivlink-udp-switch=usr/libexec/ivlink/ivlink-udp-switch \
	vm-configs/ivlink-probe=usr/libexec/ivlink/guest/ivlink-probe \
	host-daemon/ivlinkctl=usr/bin/ivlinkctl bench/ivlink-bench=usr/bin/ivlink-bench \
	bench/ivlink-bench-static=usr/libexec/ivlink/guest/ivlink-bench-static; do
	l=${spec%%=*} want=$T/all/${spec#*=}
	if [ -x "$V/programs/$l" ] && [ "$(readlink -f "$V/programs/$l")" = "$want" ]; then
		ok "the VM scripts find ${spec#*=} as programs/$l -> $(readlink "$V/programs/$l")"
	else
		bad "the VM scripts' programs/$l -> '$(readlink "$V/programs/$l")' is not /${spec#*=}"
	fi
done
mkdir -p "$T/nobin"
for t in bash dirname readlink mkdir cat sed; do ln -s "$(command -v $t)" "$T/nobin/$t"; done
XDG_CACHE_HOME=$T/cache PATH=$T/nobin "$V/build-image" -q >"$T/bi.log" 2>&1
if [ -d "$T/cache/ivlink/vm" ] && grep -q 'cpio missing' "$T/bi.log"; then
	ok "build-image (installed copy) writes under \$XDG_CACHE_HOME/ivlink/vm"
else
	bad "build-image (installed copy): no \$XDG_CACHE_HOME/ivlink/vm: $(cat "$T/bi.log")"
fi
[ -e "$T/all/usr/libexec/build" ] && bad "something wrote into the unpacked /usr/libexec/build"

has python3-ivlink usr/lib/python3/dist-packages/ivlink.py
if grep -q "^_INSTALLED_LIBDIR = \"/$L\"" "$T/root/python3-ivlink/usr/lib/python3/dist-packages/ivlink.py"; then
	ok "python3-ivlink: looks for libivlink.so.0 in /$L"
else
	bad "python3-ivlink: wrong _INSTALLED_LIBDIR"
fi

# The unpacked programs run, on the unpacked library.
for b in usr/sbin/ivlinkd usr/bin/ivlinkctl usr/sbin/ivlink-guestd usr/bin/ivlink-pingpong usr/bin/ivlink-bench; do
	n=${b##*/}
	got=$(LD_LIBRARY_PATH=$T/all/$L "$T/all/$b" --version 2>&1 | head -n1)
	case $got in
	"$n $VERSION" | "$n $VERSION "*) ok "/$b --version: $got" ;;
	*) bad "/$b --version: '$got'" ;;
	esac
done
lib=$(LD_LIBRARY_PATH=$T/all/$L ldd "$T/all/usr/bin/ivlink-pingpong" | awk '$1 == "libivlink.so.0" { print $3 }')
if [ "$lib" = "$T/all/$L/libivlink.so.0" ]; then
	ok "ivlink-pingpong links libivlink.so.0"
else
	bad "ivlink-pingpong: libivlink.so.0 from '$lib'"
fi

ivl_checks_end "the Debian packages build, are lintian clean and hold the expected layout"
