#!/bin/bash
# Build the guest initramfs: busybox, cxl/daxctl, numactl/migratepages (with
# their shared libraries), the kernel's modules, the project's static musl
# binaries and the lab's init and scenarios.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

root="$BUILD/initramfs"
out="$BUILD/initramfs.cpio.gz"
mods="$CACHE/linux-modules"
[[ -d "$mods/lib/modules" ]] || die "no kernel modules in $mods; run 'make kernel' first"

rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,etc,lab}

install -m755 /bin/busybox "$root/bin/busybox"

# copy_bin BIN: a dynamic executable and every library it loads.
copy_bin() {
	local bin lib
	bin=$(command -v "$1") || die "$1 is not installed; run scripts/setup-host.sh"
	install -D -m755 "$bin" "$root/usr/bin/$(basename "$bin")"
	for lib in $(ldd "$bin" | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}'); do
		[[ -e "$root$lib" ]] || install -D -m755 "$(readlink -f "$lib")" "$root$lib"
	done
}
for b in cxl daxctl numactl migratepages; do
	copy_bin "$b"
done

cp -a "$mods/lib/modules" "$root/lib/"

# The project's userspace binaries (static musl), when built.
for b in "$REPO"/tools/target/x86_64-unknown-linux-musl/release/{portalctl,cxlsw-pin,cxlsw-time,cxlsw-movepages,cxlsw-workload,cxlsw-ioctl-fuzz}; do
	[[ -x "$b" ]] && install -m755 "$b" "$root/usr/bin/"
done

install -m755 "$REPO/lab/guest/init" "$root/init"
install -m644 "$REPO/lab/guest/lib.sh" "$root/lab/lib.sh"
cp -r "$REPO/lab/guest/scenarios" "$root/lab/"

# Headers the refusal scenarios write into the portal: foreign data, a
# corrupt v1 header, a v2 header, records a hostile peer wrote
# (checkers/portal_spec.py, from the spec), and a zero record.
mkdir -p "$root/lab/images"
for kind in foreign corrupt newer older hostile-slot hostile-members; do
	python3 "$REPO/checkers/portal_spec.py" image "$kind" "$root/lab/images/$kind" 0x8000000 0x20000000
done
head -c 256 /dev/zero >"$root/lab/images/zero"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$out"
step "initramfs: $out ($(du -h "$out" | cut -f1))"
