# Scenario migrate-kill-target: the target dies after it accepted, before it
# mapped a page. a exports a paused 16 MiB workload to b; b accepts; the
# harness SIGKILLs b's QEMU on b's marker. a's fence agent has the harness
# confirm b off; a reaps b, which rolls the handoff back to a: LIST on a
# says "returned" (the header's mapped flag is clear: b never ran the
# workload), the pages are unpinned, a acknowledges the end with CANCEL and
# resumes the old process, whose result must be the unmigrated one. a owns
# and onlines every block, and the independent checker finds the header
# sound.
#
# KILL_AT=pull (scenario migrate-kill-pull, which sources this file): b
# imports the workload (accept, map: the mapped flag is set), resumes it and
# is killed while it pulls the pages. Then a must say "lost" and must not
# resume its old process, whose memory b may have changed: a ends it.
host=$(cmdline_arg cxlsw.host)
LEASE=10000
MIB=16
STEPS=2000
KILL_AT=${KILL_AT:-accept}

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 60 >/dev/null
portal_blocks
scenario=migrate-kill-target
[ "$KILL_AT" = pull ] && scenario=migrate-kill-pull

case "$host" in
a)
	ktap_plan "$scenario" 8
	check "both hosts are live members of one portal" wait_live 2 120
	bslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	expect=$(cxlsw-workload --mib $MIB --steps $STEPS --expect | awk '/^result/ { print $2 }')
	fence_channel_open || diag "no fence channel"
	fence_agent "$PORTAL_DAX" &
	agent=$!
	workload_start $MIB $STEPS "$pn"
	check "the workload ($MIB MiB on node $pn) pauses half way" workload_paused
	pages=$((WL_LEN / 4096))
	check "its pages are exported to b" \
		portalctl handoff export --pid "$WL_PID" --node "$pn" --to "$bslot" --range "$WL_ADDR:$WL_LEN"
	set -- $(handoffs | awk '{ print $1, $2, $3 }')
	nid=$1 index=$2 id=$3
	dmesg -c >/dev/null
	reaped() { until_ok 300 sh -c "dmesg | grep -q 'reaped 1 host(s) confirmed off'"; }
	check "b dies; a has it confirmed off and reaps it" reaped
	kill $agent 2>/dev/null
	if [ "$KILL_AT" = pull ]; then
		outcome=lost line="lost: its target had mapped them, the process must not resume"
	else
		outcome=returned line="returned: the process may resume here"
	fi
	ended() {
		until_ok 60 in_state "$outcome" || { handoffs; return 1; }
		handoffs | awk -v p="$pages" -v pid="$WL_PID" -v s="$outcome" \
			'$4 == s && $5 == "source" && $10 == pid && $11 == 0 { ok = 1 } END { exit !ok }' || { handoffs; return 1; }
		dmesg | grep -q "handoff $index id $id ended: $pages pages of pid $WL_PID unpinned; $line" ||
			{ dmesg | tail -5; return 1; }
	}
	check "the handoff is rolled back: LIST says $outcome, its pages unpinned (one line)" ended
	ack() {
		portalctl handoff cancel --node "$nid" --index "$index" --id "$id" &&
			dmesg | grep -q "handoff $index id $id: its end acknowledged ($outcome)" &&
			[ -z "$(handoffs)" ]
	}
	check "a acknowledges the end (CANCEL): LIST is empty" ack
	if [ "$KILL_AT" = pull ]; then
		# Its memory is what b made of it: the old process must not run again.
		ended_it() { kill -9 "$WL_PID" && until_ok 60 sh -c "! [ -d /proc/$WL_PID ]"; }
		check "a ends the old process instead of resuming it" ended_it
	else
		echo go >&5
		resumed() {
			until_ok 300 grep -q '^steps' /tmp/wl.out || { tail -3 /tmp/wl.out; return 1; }
			is_same "$(workload_result)" "$expect"
		}
		check "a resumes the old process: it ends with the unmigrated result" resumed
	fi
	exec 5>&-
	check "a owns every block and has all of them online" owns_all_online
	# The harness checks the portal file now (spec_check).
	diag "cxlsw: check the portal"
	sleep 5
	;;
b)
	if [ "$KILL_AT" = pull ]; then ktap_plan "$scenario" 4; else ktap_plan "$scenario" 3; fi
	check "both hosts are live members of one portal" wait_live 2 120
	announce() { fence_channel_open && announce_slot "$(val "$S/host_slot")"; }
	check "b tells the harness its slot over its fence channel" announce
	until_ok 600 in_state offered
	set -- $(handoffs | awk '{ print $1, $2, $3, $8 }')
	nid=$1 index=$2 id=$3 pages=$4
	if [ "$KILL_AT" = pull ]; then
		workload_import "$nid" "$index" "$id" $STEPS
		imported() { workload_imported "$pages"; }
		check "the workload is imported and resumed: $pages pages mapped from the portal" imported
		portalctl handoff pull --node "$nid" --index "$index" --id "$id" --to-node 0 --batch 16 \
			>/tmp/pull.out 2>&1 &
		pull=$!
		# Stopped after its first request, the pull is surely still going when b dies.
		part() {
			_n=0
			until grep -q '^pulled [0-9]*/' /tmp/pull.out; do
				[ $_n -lt 1200 ] || { cat /tmp/pull.out; return 1; }
				sleep 0.1
				_n=$((_n + 1))
			done
			kill -STOP $pull && tail -1 /tmp/pull.out && in_state accepted
		}
		check "b pulls part of the pages into node 0: the header does not say pulled yet" part
	else
		check "b accepts the handoff" portalctl handoff accept --node "$nid" --index "$index" --id "$id"
	fi
	# The harness SIGKILLs this QEMU on this line.
	diag "cxlsw: ready to kill"
	sleep 600
	;;
esac
