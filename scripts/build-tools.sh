#!/bin/bash
# Build the userspace workspace: host binaries for tests and a static musl
# portalctl for the guest initramfs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cd "$REPO/tools"
step "tools: cargo build (host and static x86_64-unknown-linux-musl)"
cargo build --release -q --locked
cargo build --release -q --locked --target x86_64-unknown-linux-musl
step "tools: $(ls target/x86_64-unknown-linux-musl/release/portalctl) built"
