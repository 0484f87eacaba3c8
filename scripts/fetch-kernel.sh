#!/bin/bash
# Fetch Debian's linux-source-7.3 and unpack a pristine tree into the cache.
#
# The series is pinned (7.3.y), not the patch level: backports keep only the
# newest 7.3.y. The version actually used is recorded in $CACHE/linux.version
# and printed, so a log says what was built.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkg=linux-source-7.3
mkdir -p "$CACHE/deb"
cd "$CACHE/deb"

ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
[[ -n "$ver" && "$ver" != "(none)" ]] || die "$pkg not found in apt; run scripts/setup-host.sh"

pristine="$CACHE/linux-pristine-$ver"
if [[ -f "$pristine/.complete" ]]; then
	step "kernel source: $pkg $ver (cached in $pristine)"
	echo "$ver" >"$CACHE/linux.version"
	exit 0
fi

deb=$(ls ${pkg}_"${ver//:/%3a}"_all.deb 2>/dev/null || true)
if [[ -z "$deb" ]]; then
	step "kernel source: downloading $pkg $ver"
	# _apt cannot write into root's cache: download as root, quietly.
	apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver"
	deb=$(ls ${pkg}_*_all.deb | tail -1)
fi

step "kernel source: unpacking $deb into $pristine"
rm -rf "$pristine" "$CACHE/deb/x"
dpkg -x "$deb" "$CACHE/deb/x"
mkdir -p "$pristine"
tar -xf "$CACHE"/deb/x/usr/src/linux-source-7.3.tar.xz -C "$pristine" --strip-components=1
rm -rf "$CACHE/deb/x"
touch "$pristine/.complete"
echo "$ver" >"$CACHE/linux.version"
step "kernel source: $(make -s -C "$pristine" kernelversion) ready"
