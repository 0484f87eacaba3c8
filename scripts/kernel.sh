#!/bin/bash
# Assemble and build the lab kernel.
#
#   kernel.sh assemble  pristine tree + patches/series + the repo's new files
#   kernel.sh build     assemble, configure (tinyconfig + kernel/lab.config),
#                       build bzImage and modules out of tree
#   kernel.sh export    the project's whole change as a git format-patch
#                       series against the pristine tree, in build/series/
#   kernel.sh style     rustfmtcheck and a CLIPPY=1 build of the driver
#
# The assembled tree lives in $CACHE/linux-src and is only touched where it
# differs, so an unchanged rebuild does nothing and a driver edit rebuilds
# only the driver.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

series_hash() {
	{
		kernel_version
		cat "$REPO/patches/series"
		while read -r p _; do
			[[ -z "$p" || "$p" == \#* ]] && continue
			cat "$REPO/patches/$p"
		done <"$REPO/patches/series"
	} | sha256sum | cut -d' ' -f1
}

# apply_series DIR: apply the series to DIR, failing loudly on the first
# patch that does not apply.
apply_series() {
	local dir=$1 p n=0
	while read -r p _; do
		[[ -z "$p" || "$p" == \#* ]] && continue
		[[ -f "$REPO/patches/$p" ]] || die "patches/series names $p, which does not exist"
		if ! out=$(patch -d "$dir" -p1 -N -F0 --no-backup-if-mismatch <"$REPO/patches/$p" 2>&1); then
			printf '%s\n' "$out" >&2
			die "patch $p does not apply to linux $(kernel_version)"
		fi
		n=$((n + 1))
	done <"$REPO/patches/series"
	echo "$n"
}

assemble() {
	local pristine src hash manifest stage n f
	pristine=$(PRISTINE)
	src=$(KSRC)
	manifest="$src/.cxlsw-overlay"
	hash=$(series_hash)

	if [[ ! -f "$src/.cxlsw-series" || "$(cat "$src/.cxlsw-series")" != "$hash" ]]; then
		stage="$CACHE/linux-stage"
		rm -rf "$stage"
		# Hard links are safe: patch writes a new file and renames it.
		cp -al "$pristine" "$stage"
		n=$(apply_series "$stage")
		step "kernel tree: applied $n patch(es) from patches/series"
		mkdir -p "$src"
		# Only files that differ are rewritten, so mtimes stay put for the
		# rest and the next build recompiles just what a patch touched.
		local excl=()
		[[ -f "$manifest.excl" ]] && excl=(--exclude-from="$manifest.excl")
		# (Directories that hold only overlay files cannot be deleted: say
		# nothing about them.)
		rsync -rlpD --checksum --delete --exclude='/.cxlsw-*' "${excl[@]}" "$stage/" "$src/" \
			2> >(grep -v '^cannot delete non-empty directory' >&2)
		rm -rf "$stage"
		echo "$hash" >"$src/.cxlsw-series"
	fi

	# Lay the repo's new files over the tree (content-compared: unchanged
	# files keep their mtime).
	overlay_files >"$manifest.new"
	while read -r f; do
		if [[ -e "$pristine/$f" ]]; then
			die "$f exists upstream: change it with a patch in patches/, not an overlay file"
		fi
	done <"$manifest.new"
	(cd "$REPO" && rsync -rl --checksum --files-from="$manifest.new" ./ "$src/")
	# Files dropped from the repo since the last assembly go too.
	if [[ -f "$manifest" ]]; then
		comm -23 "$manifest" "$manifest.new" | while read -r f; do rm -f "$src/$f"; done
	fi
	sed 's|^|/|' "$manifest.new" >"$manifest.excl"
	mv "$manifest.new" "$manifest"
	step "kernel tree: $(wc -l <"$manifest") new file(s) laid over linux $(kernel_version)"
}

configure() {
	local obj frag hash
	obj=$(KOBJ)
	frag="$REPO/kernel/lab.config"
	# The config depends on the fragment, the series and our Kconfig files.
	hash=$( (cat "$frag" "$(KSRC)/.cxlsw-series"; cd "$REPO" && overlay_files | grep 'Kconfig' | xargs -r cat) | sha256sum)
	if [[ -f "$obj/.config" && -f "$obj/.cxlsw-config" && "$(cat "$obj/.cxlsw-config")" == "$hash" ]]; then
		return
	fi
	step "kernel config: tinyconfig + kernel/lab.config"
	mkdir -p "$obj"
	kmake -s tinyconfig >/dev/null
	(cd "$obj" && "$(KSRC)/scripts/kconfig/merge_config.sh" -m -O "$obj" .config "$frag" >/dev/null)
	kmake -s olddefconfig >/dev/null
	# A dependency that is not met drops an option silently: refuse that.
	local bad=0 line opt val got
	while read -r line; do
		case "$line" in
		CONFIG_*=*) opt=${line%%=*}; val=${line#*=} ;;
		"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; val=n ;;
		*) continue ;;
		esac
		got=$(grep -E "^$opt=|^# $opt is not set" "$obj/.config" | head -1 || true)
		case "$got" in
		"$opt=$val") ;;
		"# $opt is not set") [[ "$val" == n ]] || { echo "kernel config: $opt=$val requested, not set" >&2; bad=1; } ;;
		*) [[ "$val" == n && -z "$got" ]] || { echo "kernel config: $opt=$val requested, got '${got:-nothing}'" >&2; bad=1; } ;;
		esac
	done <"$frag"
	[[ $bad -eq 0 ]] || die "kernel/lab.config did not apply cleanly (unmet dependencies above)"
	echo "$hash" >"$obj/.cxlsw-config"
}

build() {
	assemble
	configure
	mkdir -p "$BUILD/logs"
	local log="$BUILD/logs/kernel-build.log" rc=0
	step "kernel build: bzImage + modules, LLVM=$LLVM_SUFFIX, -j$(nproc) (log: $log)"
	kmake -j"$(nproc)" bzImage modules >"$log" 2>&1 &
	local pid=$!
	progress "$log" "$pid" "kernel build" &
	local ppid=$!
	wait "$pid" || rc=$?
	kill "$ppid" 2>/dev/null || true
	wait "$ppid" 2>/dev/null || true
	if [[ $rc -ne 0 ]]; then
		grep -E 'error|Error' "$log" | head -40 >&2 || tail -40 "$log" >&2
		die "kernel build failed (full log: $log)"
	fi
	# rustc names the file on the lines after "warning:"; objtool names the object.
	if grep -E '^(warning|error)(\[|:)|: warning:' -A4 "$log" | grep -v '^scripts/' >"$BUILD/logs/kernel-warnings.txt"; then
		local ours
		ours="$(ours_regex)|drivers/cxl_switched/[^ ]*\.o"
		if grep -qE "$ours" "$BUILD/logs/kernel-warnings.txt"; then
			grep -E "$ours" -B2 -A5 "$BUILD/logs/kernel-warnings.txt" >&2
			die "the project's kernel code builds with warnings"
		fi
	fi
	local mods="$CACHE/linux-modules"
	rm -rf "$mods"
	kmake -s INSTALL_MOD_PATH="$mods" INSTALL_MOD_STRIP=1 modules_install >>"$log" 2>&1
	step "kernel build: $(kmake -s kernelrelease) done ($(du -h "$(KOBJ)/arch/x86/boot/bzImage" | cut -f1) bzImage)"
}

style() {
	assemble
	configure
	mkdir -p "$BUILD/logs"
	local log="$BUILD/logs/kernel-style.log"
	step "kernel style: rustfmtcheck"
	if ! kmake -s rustfmtcheck >"$log" 2>&1; then
		# rustfmtcheck covers the whole tree; only our files are ours to fix.
		if grep -qE "$(ours_regex .rs)" "$log"; then
			cat "$log" >&2
			die "rustfmtcheck: the project's Rust code is not rustfmt-clean"
		fi
	fi
	step "docs: every reStructuredText file of ours parses without a warning"
	# Debian's python3-docutils (scripts/setup-host.sh), hence /usr/bin/python3.
	(cd "$REPO" && git ls-files 'Documentation/*.rst' | xargs -r /usr/bin/python3 scripts/rstcheck.py) ||
		die "docs: an rst file does not parse cleanly"
	step "kernel style: CLIPPY=1 build of drivers/cxl_switched"
	# A separate object directory: clippy changes the Rust objects' command
	# lines, which would make the next normal build redo all of rust/.
	local cobj="$CACHE/linux-obj-clippy"
	mkdir -p "$cobj"
	cmp -s "$(KOBJ)/.config" "$cobj/.config" || cp "$(KOBJ)/.config" "$cobj/.config"
	make -C "$(KSRC)" O="$cobj" LLVM="$LLVM_SUFFIX" LOCALVERSION= -s olddefconfig >>"$log" 2>&1
	# Remove the driver's object so that clippy always sees it.
	rm -f "$cobj"/drivers/cxl_switched/*.o
	if ! make -C "$(KSRC)" O="$cobj" LLVM="$LLVM_SUFFIX" LOCALVERSION= CLIPPY=1 -j"$(nproc)" \
		drivers/cxl_switched/ >>"$log" 2>&1; then
		tail -40 "$log" >&2
		die "CLIPPY=1 build of drivers/cxl_switched failed (log: $log)"
	fi
	# Findings in any of the project's Rust files (driver and rust/kernel).
	if grep -E '^(warning|error)' -A8 "$log" | grep -qE "$(ours_regex .rs)"; then
		grep -E '^(warning|error)' -A8 "$log" >&2
		die "clippy has findings in the project's Rust code"
	fi
	step "kernel style: clean"
}

export_series() {
	local pristine git out
	pristine=$(PRISTINE)
	git="$CACHE/linux-git-$(kernel_version)"
	out="$BUILD/series"
	if [[ ! -f "$git.ready" ]]; then
		step "export: making a git repository of the pristine tree (once)"
		rm -rf "$git"
		cp -al "$pristine" "$git"
		rm -f "$git/.complete"
		git -C "$git" init -q -b pristine
		# Debian's tree ignores everything at the top (/*): add by force.
		git -C "$git" add -A -f
		git -C "$git" -c user.name=cxlsw -c user.email=cxlsw@localhost commit -q -m "Linux $(kernel_version)"
		touch "$git.ready"
	fi
	git -C "$git" checkout -q -f pristine
	git -C "$git" branch -q -D export 2>/dev/null || true
	git -C "$git" checkout -q -b export
	git -C "$git" clean -qfdx
	local id=(-c user.name="cxl_switched authors" -c user.email="cxl-switched@localhost")
	# A series line may name new files (or directories) after the patch:
	# they go into that patch's commit. New files no patch claims come first,
	# one commit per area: nothing references them yet, so every step of the
	# series builds.
	local claimed area files p extra
	claimed=$(awk '!/^#/ && NF > 1 {for (i = 2; i <= NF; i++) print $i}' "$REPO/patches/series")
	for area in rust/kernel drivers/cxl_switched Documentation; do
		[[ -d "$REPO/$area" ]] || continue
		files=$(cd "$REPO" && find "$area" -type f | LC_ALL=C sort |
			while read -r f; do
				for c in $claimed; do [[ "$f" == "$c" || "$f" == "$c"/* ]] && continue 2; done
				echo "$f"
			done)
		[[ -n "$files" ]] || continue
		(cd "$REPO" && rsync -rl --files-from=<(echo "$files") ./ "$git/")
		git -C "$git" add -A -f
		local msg="$REPO/patches/new-files/$(echo "$area" | tr / -).msg"
		[[ -f "$msg" ]] || die "export: $area has new files no patch claims and no $msg"
		git -C "$git" "${id[@]}" commit -q -s -m "$(sed -n 1p "$msg")" -m "$(sed -n '3,$p' "$msg")"
	done
	while read -r p extra; do
		[[ -z "$p" || "$p" == \#* ]] && continue
		git -C "$git" "${id[@]}" am -q --keep-cr "$REPO/patches/$p" ||
			{ git -C "$git" am --abort; die "export: $p does not apply with git am"; }
		if [[ -n "$extra" ]]; then
			# shellcheck disable=SC2086
			(cd "$REPO" && rsync -rlR $extra "$git/")
			git -C "$git" add -A -f
			git -C "$git" "${id[@]}" commit -q --amend --no-edit
		fi
	done <"$REPO/patches/series"
	rm -rf "$out"
	git -C "$git" "${id[@]}" format-patch -q --cover-letter -o "$out" pristine..export
	# The cover letter's subject and blurb come from patches/cover-letter.
	python3 - "$out/0000-cover-letter.patch" "$REPO/patches/cover-letter" <<'PY'
import sys
cover, src = sys.argv[1], open(sys.argv[2]).read().strip().split("\n", 1)
text = open(cover).read()
text = text.replace("*** SUBJECT HERE ***", src[0]).replace("*** BLURB HERE ***", src[1].strip())
open(cover, "w").write(text)
PY
	step "export: $(ls "$out" | wc -l) file(s) in $out"
	if [[ -x "$pristine/scripts/checkpatch.pl" ]]; then
		local f bad=0
		for f in "$out"/0*.patch; do
			[[ "$f" == */0000-* ]] && continue
			if ! perl "$pristine/scripts/checkpatch.pl" --no-tree -q --ignore FILE_PATH_CHANGES,EMAIL_SUBJECT "$f" >"$f.checkpatch" 2>&1; then
				echo "checkpatch: $(basename "$f")" >&2
				cat "$f.checkpatch" >&2
				bad=1
			fi
			rm -f "$f.checkpatch"
		done
		[[ $bad -eq 0 ]] || die "export: checkpatch reported problems"
		step "export: checkpatch clean"
	fi
}

case "${1:-build}" in
assemble) assemble ;;
build) build ;;
style) style ;;
export) export_series ;;
*) die "usage: $0 {assemble|build|style|export}" ;;
esac
