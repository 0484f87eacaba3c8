# Scenario migrate-kill-pull: the target dies while it pulls the pages of a
# workload it resumed. See migrate-kill-target.sh, which this runs with
# KILL_AT=pull.
KILL_AT=pull
. /lab/scenarios/migrate-kill-target.sh
