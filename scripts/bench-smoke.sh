#!/bin/bash
# The bench tier: one small round of every userspace benchmark, so that a
# bench cannot break unnoticed. Each must run to its end and print its
# figures; the figures themselves are not judged (benchmarks are not tests).
# The guest bench, bench-online, has its smoke round as a lab scenario.
#
# Prints "ok"/"not ok" per bench and "bench: N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh"

OUT=$BUILD/bench
mkdir -p "$OUT"
pass=0
fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
notok() { echo "not ok - $*"; fail=$((fail + 1)); }

# smoke NAME PATTERN COMMAND...: COMMAND succeeds and prints a line matching
# PATTERN (its figures).
smoke() {
	local name=$1 pattern=$2
	shift 2
	if "$@" >"$OUT/$name.log" 2>&1 && grep -Eq "$pattern" "$OUT/$name.log"; then
		ok "$name: $(grep -E "$pattern" "$OUT/$name.log" | head -1)"
	else
		tail -20 "$OUT/$name.log"
		notok "$name: failed or printed no figures (log: $OUT/$name.log)"
	fi
}

smoke bench-portal 'contending: median [0-9]+ us, p99 [0-9]+ us: median ratio [0-9.]+x' \
	"$REPO/tools/target/release/portal-bench" --smoke --file "$OUT/portal-bench.img"
smoke bench-portal-check 'us per check .*ratio [0-9.]+x' cat "$OUT/bench-portal.log"
smoke bench-fabric '^ +1000 +[0-9]+ +[0-9]+ \|.*[0-9]+x$' \
	python3 "$REPO/tools/bench/fabric_bench.py" --sizes 1000

echo "bench: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
