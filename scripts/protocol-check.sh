#!/bin/bash
# The protocol tier: what checks the portal protocol beyond unit tests.
#
#   1. stress: 8 processes on one file-backed portal, 10^5 operations,
#      SIGKILLs (each confirmed off by the parent, the fence agent) and
#      SIGSTOP pauses of 1-4 leases (never confirmed) at random points, and
#      snapshots of the portal every 2 s with every worker stopped; the workers check block stamps and the
#      lock's exclusion as they go, then checkers/portal_spec.py (written
#      from the spec, not from the driver's code) checks the final tables;
#      a corrupted copy of the result must fail that check;
#   2. model: checkers/portal.pml checked exhaustively with spin (3 hosts, a
#      crash possible at every step); a mutant without the bakery's wait
#      must fail it;
#   3. fuzz: short cargo-fuzz runs of the header decoder and validator, and of
#      the protocol's operations on headers a peer mutated (resealed).
#
# Prints "ok"/"not ok" per check and "protocol: N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$BUILD/protocol
mkdir -p "$OUT"
BIN=$REPO/tools/target/release
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
notok() { echo "not ok - $*"; fail=$((fail + 1)); }

# ---- stress ----
img=$OUT/stress.img
rm -rf "$OUT/snaps"
if "$BIN/portal-stress" "$img" --procs 8 --ops 100000 --kill-every 1000 --pause-every 200 \
	--snapshots "$OUT/snaps" --json >"$OUT/stress.json"; then
	ok "stress: $(jq -r '"\(.operations) operations by \(.workers) processes, \(.kills) SIGKILLs, \(.pauses) pauses of 1-4 leases, \(.violations) violations, \(.suspects_left) suspects left, \(.seconds | floor) s"' "$OUT/stress.json")"
	if jq -e '.operations >= 100000 and .kills >= 20 and .pauses >= 200' "$OUT/stress.json" >/dev/null; then
		ok "stress: at least 10^5 operations, 20 SIGKILLs and 200 pauses"
	else
		notok "stress: fewer than 10^5 operations, 20 SIGKILLs or 200 pauses"
	fi
else
	cat "$OUT/stress.json" 2>/dev/null
	notok "stress: portal-stress reported violations or failed"
fi
if python3 "$REPO/checkers/portal_spec.py" check "$img" --final; then
	ok "stress: the independent checker finds every invariant of the final tables"
else
	notok "stress: the independent checker found a violation"
fi
# Moments of the run (every worker stopped, the portal copied): the
# committed state of each must hold the invariants too.
snaps=$(ls "$OUT/snaps"/snap-*.img 2>/dev/null | wc -l)
bad=0
for s in "$OUT/snaps"/snap-*.img; do
	[ -e "$s" ] || continue
	python3 "$REPO/checkers/portal_spec.py" check "$s" >"$OUT/snap.log" 2>&1 || { bad=$((bad + 1)); cat "$OUT/snap.log"; }
done
if [ "$snaps" -ge 10 ] && [ "$bad" -eq 0 ]; then
	ok "stress: the independent checker finds every invariant in $snaps snapshots taken during the run"
else
	notok "stress: $bad of $snaps snapshots taken during the run violate an invariant (at least 10 wanted)"
fi
# Negative control: the checker sees a block given to a fenced host.
python3 - "$REPO/checkers" "$img" "$OUT/forged.img" <<'EOF'
import struct, sys
sys.path.insert(0, sys.argv[1])
import portal_spec as ps
img = bytearray(open(sys.argv[2], "rb").read())
sb = ps.superblock(img)
rec = bytearray(ps.table(img, sb["owners"], ps.KIND_OWNERS, 0))
# Block 0 to slot 15 epoch 0xdead, which is no live member; both copies.
struct.pack_into("<HHI", rec, 0x20, 15, 0, 0xDEAD)
struct.pack_into("<Q", rec, 8, struct.unpack_from("<Q", rec, 8)[0] + 1)
ps.seal(rec)
for copy in (0, 1):
    off = sb["owners"] + copy * ps.RECORD
    img[off:off + ps.RECORD] = rec
open(sys.argv[3], "wb").write(img)
EOF
forged=$(python3 "$REPO/checkers/portal_spec.py" check "$OUT/forged.img" --final)
if [[ "$forged" == *"block 0: owned by slot 15"* ]]; then
	ok "stress: the checker catches a block owned by a host that is not a live member (negative control)"
else
	notok "stress: the checker missed a forged owner"
fi

# ---- model ----
model() { # model DIR PML: spin verifier, exhaustive; prints pan's report
	rm -rf "$1" && mkdir -p "$1" && cp "$2" "$1/portal.pml" && cd "$1" &&
		spin -a portal.pml >/dev/null && gcc -O2 -DSAFETY -DCOLLAPSE -w -o pan pan.c &&
		./pan -m300000 -w26 2>&1
}
if (model "$OUT/spin" "$REPO/checkers/portal.pml") >"$OUT/spin.log" &&
	grep -q 'errors: 0' "$OUT/spin.log" && ! grep -q 'violated' "$OUT/spin.log"; then
	ok "model: spin, 3 hosts, crash at every step: $(grep -Eo '[0-9]+ states, stored' "$OUT/spin.log"), no violation"
else
	tail -20 "$OUT/spin.log"
	notok "model: spin found a violation, or did not run"
fi
# Negative control: a bakery that does not wait for smaller tickets.
python3 - "$REPO/checkers/portal.pml" "$OUT/mutant.pml" <<'EOF'
import sys
src = open(sys.argv[1]).read()
wait = "(ticket[j] == ticket[i] && j > i) || expired[j] || member[j] == 2 -> break"
assert wait in src, "the model's bakery wait is not where the mutant expects it"
open(sys.argv[2], "w").write(src.replace(wait, "true -> break"))
EOF
(model "$OUT/spin-mutant" "$OUT/mutant.pml") >"$OUT/spin-mutant.log" 2>&1
if grep -q 'assertion violated' "$OUT/spin-mutant.log"; then
	ok "model: a bakery that does not wait for smaller tickets breaks mutual exclusion (negative control)"
else
	notok "model: the mutant without the bakery's wait was not caught"
fi

# ---- fuzz ----
# fuzz TARGET WHAT ARGS...: a 30 s cargo-fuzz run of one target.
fuzz() {
	local target=$1 what=$2
	shift 2
	mkdir -p "$OUT/fuzz-$target"
	if (cd "$REPO/tools/handoff" && cargo +nightly fuzz run "$target" "$OUT/fuzz-$target" "$@" -- \
		-max_total_time=30 -print_final_stats=1) \
		>"$OUT/fuzz-$target.log" 2>&1; then
		ok "fuzz: $what, 30 s, $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$OUT/fuzz-$target.log" | grep -Eo '[0-9]+$') executions, no crash"
	else
		tail -30 "$OUT/fuzz-$target.log"
		notok "fuzz: $target crashed (see $OUT/fuzz-$target.log)"
	fi
}
if cargo +nightly fuzz --version >/dev/null 2>&1; then
	fuzz header "header decoder and validator" fuzz/seeds
	fuzz protocol "open, join, lock, claim, heartbeat and leave on resealed peer mutations"
else
	notok "fuzz: cargo +nightly fuzz is not installed (scripts/setup-host.sh installs it)"
fi

echo "protocol: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
