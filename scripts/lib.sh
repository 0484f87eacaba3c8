# Shared helpers for the lab scripts. Source it; do not run it.
# shellcheck shell=bash

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CXLSW_CACHE:-$HOME/.cache/cxl_switched}"
BUILD="${CXLSW_BUILD:-$REPO/build}"
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Directories of the repo that mirror the kernel tree: new in-tree files.
OVERLAY_DIRS=(drivers rust Documentation)
LLVM_SUFFIX=-19
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

kernel_version() {
	[[ -f "$CACHE/linux.version" ]] || die "no kernel source yet; run scripts/fetch-kernel.sh"
	cat "$CACHE/linux.version"
}
PRISTINE() { echo "$CACHE/linux-pristine-$(kernel_version)"; }
KSRC() { echo "$CACHE/linux-src"; }
KOBJ() { echo "$CACHE/linux-obj"; }

# kmake ARGS...: make in the assembled tree, out of tree, with LLVM.
kmake() {
	make -C "$(KSRC)" O="$(KOBJ)" LLVM="$LLVM_SUFFIX" LOCALVERSION= "$@"
}

# overlay_files: the repo's new in-tree files, relative to the repo.
overlay_files() {
	local d dirs=()
	for d in "${OVERLAY_DIRS[@]}"; do
		[[ -d "$REPO/$d" ]] && dirs+=("$d")
	done
	[[ ${#dirs[@]} -gt 0 ]] || return 0
	(cd "$REPO" && find "${dirs[@]}" -type f | LC_ALL=C sort)
}

# ours_regex [EXT]: an extended regex matching the paths of the project's
# kernel files: its new files and every file the series patches (those
# ending in EXT, if given). Tools' findings on other files are upstream's.
ours_regex() {
	{
		overlay_files
		sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$REPO"/patches/*.patch
	} | LC_ALL=C sort -u | grep -- "${1:-}\$" | sed 's/\./\\./g' | paste -sd'|'
}

# progress LOGFILE PID LABEL: print a line every 20 s while PID runs.
progress() {
	local log=$1 pid=$2 label=$3 t0=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		sleep 20
		kill -0 "$pid" 2>/dev/null || break
		printf '    ... %s: %d s, %d build steps\n' "$label" $((SECONDS - t0)) \
			"$(grep -c '^  [A-Z]' "$log" 2>/dev/null || echo 0)"
	done
}
