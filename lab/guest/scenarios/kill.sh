# Scenario: a host that dies while it runs is fenced before its blocks are
# reclaimed. As fence.sh, but the harness SIGKILLs host a's running QEMU at
# its marker (a real death, not a pause): b calls a a suspect after its
# lease, its fence agent asks the harness, which finds a already off and
# says so; b confirms it, reaps a and onlines a's blocks.
FAULT=kill
. /lab/scenarios/fence.sh
