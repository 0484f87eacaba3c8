# The bench-online benchmark's smoke round, for the test command: one round
# that must bind both drivers and print its figures (not judged).
ROUNDS=1
. /lab/scenarios/bench-online.sh
