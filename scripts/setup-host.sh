#!/bin/bash
# Install everything the lab needs on a Debian 12 host, idempotently.
#
# - apt sources for bookworm-backports (QEMU 10) and trixie-backports
#   (linux-source-7.3), both at the default backports pin priority (100),
#   so nothing already installed is upgraded by adding them;
# - Debian packages for the kernel build, the guest userland and the tests;
# - rustup's rust-src and the musl target, and bindgen-cli.
#
# A stamp under the cache records a completed run; delete it to force.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

stamp="$CACHE/setup-host.v6.stamp"
if [[ -f "$stamp" && -z "${FORCE_SETUP:-}" ]] && command -v qemu-system-x86_64 >/dev/null &&
   command -v bindgen >/dev/null; then
	step "host setup: already done ($stamp)"
	exit 0
fi

if [[ $EUID -ne 0 ]]; then
	die "host setup needs root (apt-get install)"
fi

src=/etc/apt/sources.list.d/cxl-switched-backports.sources
if [[ ! -f "$src" ]]; then
	step "apt: adding bookworm-backports and trixie-backports sources ($src)"
	cat >"$src" <<'SRC'
# Added by cxl_switched scripts/setup-host.sh.
# Backports are NotAutomatic: pin priority 100, nothing upgrades by itself.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

step "apt: updating package lists"
apt-get update -qq

pkgs=(
	# kernel build
	build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils
	clang-19 lld-19 llvm-19 libclang-19-dev python3 rsync kmod
	# guest userland
	busybox-static numactl ndctl daxctl
	# tests and tools
	spin graphviz jq python3-venv python3-docutils
)
step "apt: installing ${#pkgs[@]} packages"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

step "apt: installing qemu-system-x86 from bookworm-backports"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	-t bookworm-backports qemu-system-x86 >/dev/null
qemu-system-x86_64 --version | head -1

step "rustup: rust-src, rustfmt, clippy and x86_64-unknown-linux-musl"
rustup component add rust-src rustfmt clippy >/dev/null
rustup target add x86_64-unknown-linux-musl >/dev/null

if ! command -v bindgen >/dev/null; then
	step "cargo: installing bindgen-cli (takes a couple of minutes)"
	cargo install --locked --quiet bindgen-cli
fi
bindgen --version

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
	step "rustup: nightly (for cargo-fuzz); cargo: installing cargo-fuzz"
	rustup toolchain install nightly --profile minimal >/dev/null
	cargo install --locked --quiet cargo-fuzz
fi

mkdir -p "$CACHE"
touch "$stamp"
step "host setup: done"
