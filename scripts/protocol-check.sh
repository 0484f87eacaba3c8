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
#   2. model: checkers/portal.pml (protocol version 2) checked exhaustively
#      with spin, pauses of any length and fence confirmations in both runs:
#      2 hosts with handoffs, leave and join again, a crash at every write,
#      slot records as two copies read non-atomically; 3 hosts, one of which
#      may crash, settled reads as snapshots; five mutants, each a finding or
#      a version 1 rule, must fail it;
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
if "$BIN/portal-stress" "$img" --procs 8 --ops 100000 --kill-every 1000 --pause-every 350 \
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
# model DIR PML [SPIN_OPTIONS...]: the spin verifier, exhaustive; prints pan's report. The
# verifier is compiled with $OPT: -O1 is the quickest compile and run together here (-O2 takes
# longer to compile than it saves); a mutant, which fails within seconds, takes -O0.
model() {
	local dir=$1 pml=$2
	shift 2
	rm -rf "$dir" && mkdir -p "$dir" && cp "$pml" "$dir/portal.pml" && cd "$dir" &&
		spin "$@" -a portal.pml >/dev/null && gcc "${OPT:--O1}" -DSAFETY -DCOLLAPSE -w -o pan pan.c &&
		./pan -m300000 -w26 2>&1
}
# model_run NAME WHAT [SPIN_OPTIONS...]: one run of checkers/portal.pml (its header comment
# says what each covers); it must find no violation.
model_run() {
	local name=$1 what=$2 t0=$SECONDS
	shift 2
	if (model "$OUT/spin-$name" "$REPO/checkers/portal.pml" "$@") >"$OUT/spin-$name.log" 2>&1 &&
		grep -q 'errors: 0' "$OUT/spin-$name.log" && ! grep -q 'violated' "$OUT/spin-$name.log"; then
		ok "model: spin, $what: $(grep -Eo '[0-9]+ states, stored' "$OUT/spin-$name.log" | grep -Eo '^[0-9]+') states, no violation ($((SECONDS - t0)) s)"
	else
		tail -20 "$OUT/spin-$name.log"
		notok "model: spin, $what: a violation, or it did not run (see $OUT/spin-$name.log)"
	fi
}
model_run 2hosts "2 hosts, pauses, crashes at every write, torn two-copy records, handoffs, leave and join again"
model_run 3hosts "3 hosts, pauses, crashes of one before any write, two-copy records read as snapshots" \
	-DN=3 -DHANDOFF=0 -DREJOIN=0 -DPREOWN=0 -DSNAPSHOT=1 -DCRASHER=2 -DTORN_CRASH=0
# Mutants: each changes one rule of the model (a textual replacement, in the 2-host run) and
# must fail it: an assertion violated or an invalid end state.
# mutant NAME WHAT: NAME is a key of the table below.
mutant() {
	local name=$1 what=$2 log=$OUT/spin-$1.log v
	rm -f "$log"
	python3 - "$REPO/checkers/portal.pml" "$OUT/$name.pml" "$name" <<'EOF' &&
import sys
src = open(sys.argv[1]).read()
rule, new = {
    # finding 1: a read that is not settled, or has no valid copy, taken for "no ticket"
    "m1": (":: else -> r = UNSETTLED   /* not settled, or no valid copy: wait for it */",
           ":: else -> r = 0           /* M1: no ticket, do not wait */"),
    # version 1's reclaim: a suspect (any member) reaped without a fence confirmation
    "m2": ("#define REAPABLE(c) (SSTATE(c) == S_FENCED)",
           "#define REAPABLE(c) (SSTATE(c) == S_FENCED || SSTATE(c) == S_MEMBER)"),
    # version 1's bakery: a waiter passes a suspect instead of giving up
    "m3": (":: r = 0; goto give_up           /* j looks a suspect: give up, try again later */",
           ":: r = 0                         /* M3: pass the suspect */"),
    # finding 4: operations write the tables before reaping; only the heartbeat reaps
    "m4": ("#define REAPS_FIRST(op) (op != 0)",
           "#define REAPS_FIRST(op) (op == OP_HB)"),
    # lock.rs's counts() today: a member slot counts only if its member entry is live
    "m5": ("#define COUNTS(r) (SSTATE(r) == S_CLAIMING || SSTATE(r) == S_MEMBER)",
           "#define COUNTS(r) (SSTATE(r) == S_CLAIMING || (SSTATE(r) == S_MEMBER && MST(j) == M_LIVE && MEP(j) == SEPOCH(r)))"),
}[sys.argv[3]]
assert src.count(rule) == 1, "the rule mutant " + sys.argv[3] + " changes is not in the model: " + rule
open(sys.argv[2], "w").write(src.replace(rule, new))
EOF
		(OPT=-O0 model "$OUT/spin-$name" "$OUT/$name.pml") >"$log" 2>&1
	v=$(grep -Em1 '^pan:1: (assertion violated|invalid end state)' "$log" 2>/dev/null)
	case "$v" in
	*in_cs*) v="two hosts hold the lock" ;;
	*mine*) v="a block has two users" ;;
	*"invalid end state"*) v="an invalid end state" ;;
	?*) v="at the end, a block lost or a handoff stuck" ;;
	esac
	if [[ -n "$v" ]]; then
		ok "model: $what fails it: $v"
	else
		tail -20 "$log" 2>/dev/null
		notok "model: $what was not caught (see $log)"
	fi
}
mutant m1 "M1 (finding 1), a slot read not settled or without a valid copy taken for no ticket,"
mutant m2 "M2 (version 1's reclaim), a member reaped on suspicion without a fence confirmation,"
mutant m3 "M3 (version 1's bakery), a waiter that passes a suspect,"
mutant m4 "M4 (finding 4), operations that write the tables before rolling back a fenced host,"
mutant m5 "M5 (lock.rs counts() today), a member slot counted only while its member entry is live,"

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
