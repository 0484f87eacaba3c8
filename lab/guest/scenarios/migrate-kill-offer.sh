# Scenario migrate-kill-offer: the source dies after it offered, before the
# target accepted. a exports a paused 16 MiB workload to b; the harness
# SIGKILLs a's QEMU once b has seen the offer. b's fence agent has the
# harness confirm a off; b reaps a, which rolls the offer back to a and then
# gives a's blocks, those of the offer among them, to b. b is then party to
# no handoff, a late ACCEPT of the offer is refused, b owns and onlines every
# block, and the independent checker finds the header sound.
host=$(cmdline_arg cxlsw.host)
LEASE=10000
MIB=16
STEPS=2000

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 60 >/dev/null
portal_blocks

case "$host" in
a)
	ktap_plan "migrate-kill-offer" 5
	check "both hosts are live members of one portal" wait_live 2 120
	announce() { fence_channel_open && announce_slot "$(val "$S/host_slot")"; }
	check "a tells the harness its slot over its fence channel" announce
	bslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	workload_start $MIB $STEPS "$pn"
	check "the workload ($MIB MiB on node $pn) pauses half way" workload_paused
	check "its pages are exported to b" \
		portalctl handoff export --pid "$WL_PID" --node "$pn" --to "$bslot" --range "$WL_ADDR:$WL_LEN"
	check "the offer is in flight" in_state offered
	# b says when it has seen the offer, through the header: its record
	# gets no change from b, so a waits a little and the harness kills it
	# on this line.
	sleep 10
	diag "cxlsw: ready to kill"
	sleep 600
	;;
b)
	ktap_plan "migrate-kill-offer" 5
	check "both hosts are live members of one portal" wait_live 2 120
	fence_channel_open || diag "no fence channel"
	fence_agent "$PORTAL_DAX" &
	agent=$!
	aslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	offered() {
		until_ok 600 in_state offered &&
			handoffs | awk -v a="$aslot" '$4 == "offered" && $5 == "target" && $6 == a { ok = 1 } END { exit !ok }'
	}
	check "b sees a's offer addressed to it" offered
	set -- $(handoffs | awk '{ print $1, $2, $3 }')
	nid=$1 index=$2 id=$3
	dmesg -c >/dev/null
	reaped() { until_ok 300 sh -c "dmesg | grep -q 'reaped 1 host(s) confirmed off'"; }
	check "a dies; b has it confirmed off and reaps it" reaped
	kill $agent 2>/dev/null
	late() {
		dmesg -c >/dev/null
		! portalctl handoff accept --node "$nid" --index "$index" --id "$id" >/tmp/late.out 2>&1 &&
			[ -z "$(handoffs)" ] && is_eq "$(dmesg | grep -c "accept of handoff $index id $id")" 1 ||
			{ cat /tmp/late.out; dmesg | tail -3; return 1; }
	}
	check "the offer is gone: b is party to no handoff, a late ACCEPT is refused (one line)" late
	check "b owns every block, the offered ones too, and has all of them online" owns_all_online
	# The harness checks the portal file now (spec_check).
	diag "cxlsw: check the portal"
	sleep 5
	;;
esac
