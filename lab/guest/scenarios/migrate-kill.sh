# Scenario migrate-kill: the source dies after the target accepted. As in
# migrate, a exports a paused 16 MiB workload to b and b imports it
# (accept, map); once a sees the handoff accepted the harness SIGKILLs a's
# QEMU. b's fence agent has the harness confirm a off; b reaps a, which
# releases the handoff to b. The block that holds the workload's pages is
# b's from then on, but b must not online it while its import still maps
# its pages: b onlines a's other blocks at once and that one only after the
# pull. The workload runs on and ends with the unmigrated result, and the
# independent checker then finds the header sound.
host=$(cmdline_arg cxlsw.host)
LEASE=10000
MIB=16
STEPS=2000

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 60 >/dev/null
portal_blocks

case "$host" in
a)
	ktap_plan "migrate-kill" 5
	check "both hosts are live members of one portal" wait_live 2 120
	announce() { fence_channel_open && announce_slot "$(val "$S/host_slot")"; }
	check "a tells the harness its slot over its fence channel" announce
	bslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	mkfifo /tmp/wl.in
	numactl --membind="$pn" -- cxlsw-workload --mib $MIB --steps $STEPS --pause-after $((STEPS / 2)) \
		</tmp/wl.in >/tmp/wl.out 2>&1 &
	exec 5>/tmp/wl.in
	check "the workload ($MIB MiB on node $pn) pauses half way" until_ok 300 grep -q '^paused at' /tmp/wl.out
	set -- $(awk '/^paused at/ { print $5, $7, $9 }' /tmp/wl.out)
	check "its pages are exported to b" \
		portalctl handoff export --pid "$3" --node "$pn" --to "$bslot" --range "$1:$2"
	check "b accepts the handoff" until_ok 600 in_state accepted
	# The harness SIGKILLs this QEMU on this line.
	diag "cxlsw: ready to kill"
	sleep 600
	;;
b)
	ktap_plan "migrate-kill" 7
	check "both hosts are live members of one portal" wait_live 2 120
	expect=$(cxlsw-workload --mib $MIB --steps $STEPS --expect | awk '/^result/ { print $2 }')
	fence_channel_open || diag "no fence channel"
	fence_agent "$PORTAL_DAX" &
	agent=$!
	until_ok 600 in_state offered
	set -- $(handoffs | awk '{ print $1, $2, $3, $8 }')
	nid=$1 index=$2 id=$3 pages=$4
	workload_import "$nid" "$index" "$id" $STEPS
	imported() { workload_imported "$pages"; }
	check "the workload is imported: $pages pages mapped from the portal" imported
	reaped() { until_ok 300 sh -c "dmesg | grep -q 'reaped 1 host(s) confirmed off'"; }
	check "a dies; b has it confirmed off and reaps it" reaped
	kill $agent 2>/dev/null
	# Reaping released the handoff to b: every block is b's. The one its
	# import maps stays offline; a's others are onlined.
	held() {
		until_ok 60 sh -c "dmesg | grep -q 'onlined .* reclaimed block'" &&
			is_eq "$(owned)" "$blocks" &&
			is_eq "$(node_kb "$nid")" $(((blocks - 1) * block / 1024)) &&
			[ -z "$(handoffs)" ]
	}
	check "b owns every block; the one its import still maps is not onlined" held
	pull_it() {
		portalctl handoff pull --node "$nid" --index "$index" --id "$id" --to-node 0 >/tmp/pull.out 2>&1 ||
			{ tail -3 /tmp/pull.out; return 1; }
		grep -q "^pulled $pages pages in" /tmp/pull.out
	}
	check "b pulls the pages into node 0, its source gone" pull_it
	onlined() {
		until_ok 60 sh -c "dmesg | grep -q 'onlined 1 block(s) handed over'" &&
			is_eq "$(node_kb "$nid")" $((blocks * block / 1024))
	}
	check "once pulled, that block is onlined too" onlined
	resumed() {
		until_ok 600 grep -q '^done, waiting' /tmp/wl.out || { tail -3 /tmp/wl.out; return 1; }
		is_same "$(awk '/^result/ { print $2 }' /tmp/wl.out)" "$expect"
	}
	check "the workload ends with the result computed without the migration" resumed
	echo go >&5
	exec 5>&-
	# The harness checks the portal file now (spec_check).
	diag "cxlsw: check the portal"
	sleep 5
	;;
esac
