#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The version lives in VERSION: debian/changelog's newest entry must carry
# it as its upstream version (the part between an epoch and the Debian
# revision), or the packages would claim another version than the
# programs' --version, libivlink's ivl_version() and ivlink.pc.
#
# Usage: debian_changelog_version.sh SOURCE_DIR
set -u
SRC=${1:?usage: $0 SOURCE_DIR}
want=$(head -n1 "$SRC/VERSION")
# The first line: "ivlink (VERSION) DISTRIBUTION; urgency=...", as
# dpkg-parsechangelog reads it (read here without it: dpkg-dev may be absent).
line=$(head -n1 "$SRC/debian/changelog")
debver=$(printf '%s\n' "$line" | sed -n 's/^ivlink (\([^)]*\)) .*/\1/p')
[ -n "$debver" ] || { echo "FAIL: debian/changelog: first line '$line' is not 'ivlink (VERSION) ...'"; exit 1; }
up=${debver#*:}
up=${up%-*}
if [ "$up" != "$want" ]; then
	echo "FAIL: debian/changelog says $debver (upstream $up), VERSION says $want:"
	echo "      add a debian/changelog entry for $want (dch -v $want-1)"
	exit 1
fi
echo "ok: debian/changelog $debver carries VERSION $want"
