#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The VM scripts as installed (issue 14, item 4): the tree is installed
# into a scratch prefix, and the installed ivlink-vm (libexec/ivlink)
# boots a guest with --daemon, running nothing from the tree: ivlinkd,
# the guest programs and the image builder must all come from the install
# (through programs/ and install.conf), and the images and logs must land
# under $XDG_CACHE_HOME/ivlink/vm, not under the prefix. The guest prints
# the installed ivlink-pingpong's and ivlink-guestd's --version.
#
# Usage: installed_vm_scripts.sh CMAKE BUILD_DIR VERSION
# Downloads (the guest kernel) are shared with the tree's VM tests:
# $IVLINK_VM_CACHE, default BUILD_DIR/vm/cache.
set -u
CMAKE=${1:?usage: $0 CMAKE BUILD_DIR VERSION}
BUILD=${2:?} VERSION=${3:?}
. "$(dirname "$0")/../support/checks.sh"
ivl_checks_init vm-installed

ivl_install_scratch "$CMAKE" "$BUILD" "$T/usr"
LIBDIR=$(dirname "$(find "$T/usr" -name libivlink.so.0 -print -quit)")
VM=$T/usr/libexec/ivlink/ivlink-vm
[ -x "$VM" ] || { echo "FAIL: no installed ivlink-vm"; exit 1; }
mkdir -p "$T/cwd"
# No BUILD from the environment, and not run from the tree: the installed
# copy must find everything itself. LD_LIBRARY_PATH: the image builder
# resolves ivlink-pingpong's libraries with ldd, which does not know the
# scratch prefix (installed into /usr it needs nothing).
(cd "$T/cwd" && env -u BUILD -u IVLINK_VM_OUT XDG_CACHE_HOME="$T/cache" \
	IVLINK_VM_CACHE="${IVLINK_VM_CACHE:-$BUILD/vm/cache}" LD_LIBRARY_PATH="$LIBDIR" \
	"$VM" --daemon --timeout 180 \
	--run 'ivlink-pingpong --version && ivlink-guestd --version') >"$T/vm.log" 2>&1
rc=$?
sed 's/^/ivlink-vm: /' "$T/vm.log"
if [ "$rc" = 0 ]; then
	ok "installed ivlink-vm --daemon: exit 0"
else
	bad "installed ivlink-vm --daemon: exit $rc"
fi

OUT=$T/cache/ivlink/vm
west=$(find "$OUT/logs" -name west.log 2>/dev/null | head -n1)
if [ -z "$west" ]; then
	bad "no console log under \$XDG_CACHE_HOME/ivlink/vm/logs"
else
	ok "console log ${west#"$T"/}"
	for want in "ivlink-pingpong $VERSION" "ivlink-guestd $VERSION"; do
		if tr -d '\r' <"$west" | grep -q "^$want"; then
			ok "the guest ran the installed ${want% *}"
		else
			bad "the guest did not print '$want'"
		fi
	done
	if grep -q 'ivlinkd up' "$T/vm.log" && [ -f "$(dirname "$west")/ivlinkd.log" ]; then
		ok "--daemon started the installed ivlinkd"
	else
		bad "--daemon: no ivlinkd started"
	fi
fi
if ls -d "$OUT"/images/*/ >/dev/null 2>&1; then
	ok "image built under \$XDG_CACHE_HOME/ivlink/vm/images"
else
	bad "no image under \$XDG_CACHE_HOME/ivlink/vm/images"
fi
[ -e "$T/usr/libexec/build" ] && bad "the installed scripts wrote into libexec/build"
[ -z "$(ls -A "$T/cwd")" ] || bad "the installed scripts wrote into the working directory: $(ls -A "$T/cwd")"
ivl_checks_end "the installed VM scripts boot a guest from the installed programs"
