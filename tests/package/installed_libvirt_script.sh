#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ivlink-libvirt as installed (issue 14, item 4): the tree is installed into
# a scratch prefix and the installed copy (libexec/ivlink) answers --help
# and --version and renders the domain XML of West and East (`xml`, which
# starts nothing and writes nothing) from the installed template, not the
# tree's: the installed template gets a marker comment that every rendered
# domain must carry. The paths in the XML must be the installed defaults
# (state in /var/lib/ivlink/libvirt, images in /var/cache/ivlink/vm), never
# the source or build tree; each domain must pass virt-xml-validate when
# libvirt-clients is installed (scripts/ivl-deps libvirt). As root, xml is
# run as nobody: it needs no root. No libvirtd, no QEMU.
#
# Usage: installed_libvirt_script.sh CMAKE BUILD_DIR SOURCE_DIR VERSION
set -u
CMAKE=${1:?usage: $0 CMAKE BUILD_DIR SOURCE_DIR VERSION}
BUILD=${2:?} SRC=${3:?} VERSION=${4:?}
. "$(dirname "$0")/../support/checks.sh"
ivl_checks_init libvirt-installed

ivl_install_scratch "$CMAKE" "$BUILD" "$T/usr"
LV=$T/usr/libexec/ivlink/ivlink-libvirt
TPL=$T/usr/share/ivlink/libvirt/guest.xml.in
[ -x "$LV" ] || { echo "FAIL: no installed ivlink-libvirt"; exit 1; }
[ -f "$TPL" ] || { echo "FAIL: no installed template $TPL"; exit 1; }
MARK="ivlink-installed-template-$$"
sed -i "1a <!-- $MARK -->" "$TPL"
mkdir -p "$T/cwd" "$T/out"
find "$T/usr" | sort >"$T/before"
var_before=$(ls -d /var/lib/ivlink/libvirt /var/cache/ivlink/vm 2>/dev/null)

# Run the installed copy from an empty folder, nothing from the tree in
# the environment; as nobody when root (T is made enterable for it).
as() { "$@"; }
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$T"
	chown nobody "$T/cwd" "$T/out"
	as() { runuser -u nobody -- "$@"; }
fi
run() { # args... -> RC, $T/out/out, $T/out/err
	(cd "$T/cwd" && as env -u BUILD -u IVLINK_VM_OUT -u IVLINK_VM_CACHE -u IVLINK_ACCEL \
		timeout 30 "$LV" "$@" </dev/null >"$T/out/out" 2>"$T/out/err")
	RC=$?
}

# check TEXT-OK TEXT-BAD COMMAND...: ok or bad by the command's status.
check() {
	local good=$1 fail=$2
	shift 2
	if "$@"; then ok "$good"; else bad "$fail"; fi
}

run --version
check "installed --version: $(cat "$T/out/out")" \
	"installed --version: exit $RC, '$(cat "$T/out/out" "$T/out/err")', want 'ivlink-libvirt $VERSION'" \
	test "$RC:$(cat "$T/out/out")" = "0:ivlink-libvirt $VERSION"
run --help
check "installed --help ($(wc -l <"$T/out/out") lines)" "installed --help: exit $RC: $(head -n3 "$T/out/err")" \
	grep -q '^Usage: ivlink-libvirt .*| xml$' "$T/out/out"
run --no-such-option-xyz xml
check "installed copy: a bad option exits 2 with the hint" "bad option: exit $RC: $(cat "$T/out/err")" \
	test "$RC:$(tail -n1 "$T/out/err")" = "2:Try 'ivlink-libvirt --help' for more information."
if [ "$(id -u)" = 0 ]; then
	run up
	check "up as nobody: refused (needs root)" "up as nobody: exit $RC, want 1 'needs root': $(cat "$T/out/err")" \
		grep -q "^\[libvirt\] error: needs root" "$T/out/err"
fi

# West and East.
run xml
if [ "$RC" != 0 ]; then
	bad "installed xml: exit $RC: $(cat "$T/out/err")"
else
	awk -v d="$T/out" '/^<!-- SPDX/ { n++ } { print > (d "/dom" n ".xml") }' "$T/out/out"
	n=$(find "$T/out" -name 'dom*.xml' | wc -l)
	check "xml: two domains" "xml: $n documents, want 2 (west, east)" test "$n" = 2
	for g in west east; do
		f=$(grep -l "<name>ivlink-$g</name>" "$T"/out/dom*.xml | head -n1)
		if [ -z "$f" ]; then
			bad "xml: no domain ivlink-$g"
			continue
		fi
		check "ivlink-$g: from the installed template" "ivlink-$g: not from the installed template (no marker)" \
			grep -q "<!-- $MARK -->" "$f"
		# Outside the comments (the template's header lists the names).
		left=$(sed '/<!--/,/-->/d' "$f" | grep -o '@[A-Z_]*@' | sort -u | tr '\n' ' ')
		check "ivlink-$g: every placeholder filled" "ivlink-$g: left unfilled: $left" test -z "$left"
		for want in "<kernel>/var/cache/ivlink/vm/current/vmlinuz</kernel>" \
			"<initrd>/var/lib/ivlink/libvirt/$g-initrd.img</initrd>" \
			"<server path='/var/lib/ivlink/libvirt/sock/ivlinkd.sock'/>" \
			"<source path='/var/lib/ivlink/libvirt/$g.log' append='off'/>" \
			"<interface type='udp'>"; do
			check "ivlink-$g: $want" "ivlink-$g: no $want" grep -qF -- "$want" "$f"
		done
		if grep -F -e "$SRC/" -e "$BUILD/" -e "$T/" "$f" >"$T/named"; then
			bad "ivlink-$g names the tree or the prefix: $(head -n2 "$T/named")"
		fi
		if command -v virt-xml-validate >/dev/null; then
			if virt-xml-validate "$f" domain >"$T/val.log" 2>&1; then
				ok "ivlink-$g: virt-xml-validate"
			else
				bad "ivlink-$g: virt-xml-validate: $(cat "$T/val.log")"
			fi
		else
			echo "note: virt-xml-validate not installed (scripts/ivl-deps libvirt): schema not checked"
		fi
	done
fi

# Three guests in two regions, c only in the second (PCI slot 0x11).
run xml -g a,b,c --region r1 --region r2 --attach c=r2 --accel kvm --mem 256
if [ "$RC" != 0 ]; then
	bad "installed xml with regions: exit $RC: $(cat "$T/out/err")"
else
	c=$(awk '/<name>ivlink-c<\/name>/ { p = 1 } p' "$T/out/out")
	if [ "$(grep -c '<shmem ' "$T/out/out")" = 5 ] && [ "$(printf '%s\n' "$c" | grep -c '<shmem ')" = 1 ] &&
		printf '%s\n' "$c" | grep -q "<server path='/var/lib/ivlink/libvirt/sock/r2.sock'/>" &&
		printf '%s\n' "$c" | grep -q "slot='0x11'"; then
		ok "xml --region r1 --region r2 --attach c=r2: a, b in both, c in r2 at slot 0x11"
	else
		bad "xml with regions: wrong <shmem> devices: $(grep -E '<name>|server path|slot=' "$T/out/out" | tr -s ' ' | tr '\n' ' ')"
	fi
	if [ "$(grep -c "<domain type='kvm'>" "$T/out/out")" = 3 ] &&
		[ "$(grep -c "<memory unit='MiB'>256</memory>" "$T/out/out")" = 3 ]; then
		ok "xml --accel kvm --mem 256: three kvm domains of 256 MiB"
	else
		bad "xml --accel kvm --mem 256 not applied"
	fi
	# Three guests: each links to the switch's one port from its own.
	hubs=$(grep -o "<source address='127.0.0.1' port='[0-9]*'>" "$T/out/out" | sort -u | wc -l)
	locals=$(grep -o "<local address='127.0.0.1' port='[0-9]*'/>" "$T/out/out" | sort -u | wc -l)
	if [ "$(grep -c "^ *<interface type='udp'>$" "$T/out/out")" = 3 ] && [ "$hubs" = 1 ] && [ "$locals" = 3 ]; then
		ok "xml with three guests: three UDP links to one switch port from three own ports"
	else
		bad "xml with three guests: UDP links wrong ($hubs switch ports, $locals own ports)"
	fi
fi

find "$T/usr" | sort >"$T/after"
check "xml wrote nothing under the prefix" \
	"xml wrote under the prefix: $(diff "$T/before" "$T/after" | grep '^>' | head -n3)" cmp -s "$T/before" "$T/after"
check "nothing in the working directory" "wrote into the working directory: $(ls -A "$T/cwd")" \
	test -z "$(ls -A "$T/cwd")"
check "nothing created in /var" "xml created /var/lib/ivlink/libvirt or /var/cache/ivlink/vm" \
	test "$(ls -d /var/lib/ivlink/libvirt /var/cache/ivlink/vm 2>/dev/null)" = "$var_before"
ivl_checks_end "the installed ivlink-libvirt renders its domains from the installed template"
