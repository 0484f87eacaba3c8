#!/bin/bash
# Every test tier, one summary. Exit status is non-zero if any tier failed.
#
#   1. harness self-tests (KTAP parser, splat scanner)
#   2. userspace: rustfmt, clippy and cargo test of tools/ (unit and
#      property tests)
#   3. protocol: the 8-process stress test with an independent checker,
#      the spin model, a cargo-fuzz smoke run (scripts/protocol-check.sh)
#   3. bench: one small round of every userspace benchmark (its figures
#      printed, not judged)
#   3. kernel style: rustfmtcheck and CLIPPY=1 on the driver; the series
#      exported with git format-patch and checked with checkpatch
#   4. kernel build, initramfs
#   5. guests: every scenario of lab/fabric.toml (KUnit KTAP and scenario
#      KTAP parsed, consoles scanned for splats)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$BUILD/logs"

declare -a NAMES RESULTS TIMES
TOTAL_PASS=0
TOTAL_FAIL=0

# tier NAME COMMAND...: run a tier, its output also in build/logs/tier-NAME.log
tier() {
	local name=$1 t0=$SECONDS rc
	shift
	step "tier $name"
	"$@" 2>&1 | tee "$BUILD/logs/tier-$name.log"
	rc=${PIPESTATUS[0]}
	NAMES+=("$name")
	RESULTS+=("$([[ $rc -eq 0 ]] && echo ok || echo FAILED)")
	TIMES+=("$((SECONDS - t0))")
	return "$rc"
}

# count LOG: add a tier's own "N passed ... N failed" counts to the totals.
count_unittest() {
	local log=$BUILD/logs/tier-$1.log n f
	n=$(grep -Eo '^Ran [0-9]+ test' "$log" | awk '{s+=$2} END {print s+0}')
	f=$(grep -Eo 'FAILED \((failures|errors)=[0-9]+' "$log" | grep -Eo '[0-9]+$' | awk '{s+=$1} END {print s+0}')
	TOTAL_PASS=$((TOTAL_PASS + n - f))
	TOTAL_FAIL=$((TOTAL_FAIL + f))
}
count_cargo() {
	local log=$BUILD/logs/tier-$1.log
	TOTAL_PASS=$((TOTAL_PASS + $(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')))
	TOTAL_FAIL=$((TOTAL_FAIL + $(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')))
}
count_guest() {
	local log=$BUILD/logs/tier-$1.log line
	line=$(grep -E '^guest: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [[ -n "$line" ]]; then
		TOTAL_PASS=$((TOTAL_PASS + $(echo "$line" | awk '{print $2}')))
		TOTAL_FAIL=$((TOTAL_FAIL + $(echo "$line" | awk '{print $4}')))
	fi
}
count_protocol() {
	local line
	line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed" "$BUILD/logs/tier-$1.log" | tail -1)
	if [[ -n "$line" ]]; then
		TOTAL_PASS=$((TOTAL_PASS + $(echo "$line" | awk '{print $2}')))
		TOTAL_FAIL=$((TOTAL_FAIL + $(echo "$line" | awk '{print $4}')))
	fi
}
fail_tier() { TOTAL_FAIL=$((TOTAL_FAIL + 1)); }

T0=$SECONDS
tier harness python3 -m unittest discover -s "$REPO/lab/harness/tests" -v
count_unittest harness

if tier tools bash -c "'$REPO/scripts/build-tools.sh' && cd '$REPO/tools' &&
	cargo fmt --check && cargo clippy --release --locked --all-targets -q -- -D warnings &&
	cargo test --release --locked 2>&1"; then
	count_cargo tools
else
	count_cargo tools
	fail_tier
fi

if tier protocol "$REPO/scripts/protocol-check.sh"; then
	count_protocol protocol
else
	count_protocol protocol
	fail_tier
fi

if tier bench "$REPO/scripts/bench-smoke.sh"; then
	count_protocol bench
else
	count_protocol bench
	fail_tier
fi

tier style "$REPO/scripts/kernel.sh" style || fail_tier
tier series "$REPO/scripts/kernel.sh" export || fail_tier

if tier kernel "$REPO/scripts/kernel.sh" build && tier initramfs "$REPO/scripts/mkinitramfs.sh"; then
	tier guests python3 "$REPO/lab/harness/lab.py" check
	count_guest guests
	[[ "${RESULTS[-1]}" == ok ]] || [[ $(grep -c '^guest: ' "$BUILD/logs/tier-guests.log") -gt 0 ]] || fail_tier
else
	fail_tier
fi

echo
step "summary ($((SECONDS - T0)) s; logs in $BUILD/logs)"
bad=0
for i in "${!NAMES[@]}"; do
	printf '    %-10s %-7s %4d s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${TIMES[$i]}"
	[[ "${RESULTS[$i]}" == ok ]] || bad=1
done
echo "check: $TOTAL_PASS passed, $TOTAL_FAIL failed"
[[ $bad -eq 0 && $TOTAL_FAIL -eq 0 ]]
