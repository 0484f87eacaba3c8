# Scenario: a paused host is fenced before its blocks are reclaimed. Both
# hosts join and own blocks; the harness stops host a's QEMU (QMP stop) and
# leaves it stopped (scenario kill: SIGKILLs it instead, see kill.sh). Host b runs a fence agent: it asks the harness (the
# lab's power switch) to fence its suspect; the harness kills a's QEMU
# (SIGKILL) and only then answers "off"; the agent confirms it with
# portalctl, and b reaps a and onlines its blocks. Nothing of a's is taken
# before a is off.
host=$(cmdline_arg cxlsw.host)
LEASE=10000
# What the harness does to a at its marker (lab/fabric.toml): pause or kill.
FAULT=${FAULT:-pause}

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
blocks=$(($(region_size "$PORTAL_REGION") / block - 1))

case "$host" in
a)
	ktap_plan "$scenario" 3
	check "cxl_switched binds the portal's $PORTAL_DAX" wait_driver "$PORTAL_DAX" cxl_switched 60
	check "both hosts are live members" wait_live 2 120
	announce() { fence_channel_open && announce_slot "$(val "$S/host_slot")"; }
	check "a tells the harness its slot over its fence channel" announce
	# The harness stops this QEMU on this line and never continues it, or
	# kills it while it runs.
	diag "cxlsw: ready to $FAULT"
	sleep 600
	;;
b)
	ktap_plan "$scenario" 5
	check "cxl_switched binds the portal's $PORTAL_DAX" wait_driver "$PORTAL_DAX" cxl_switched 60
	check "both hosts are live members" wait_live 2 120
	aslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	before=$(owned)
	fence_channel_open || diag "no fence channel"
	fence_agent "$PORTAL_DAX" &
	agent=$!
	# Until a is reaped, b owns what it had; then every block, online.
	took_early=0
	_until=$(($(now_cs) + 18000))
	while [ "$(now_cs)" -lt $_until ]; do
		dmesg | grep -q "reaped 1 host(s) confirmed off" && break
		# What b owns first, then whether a was confirmed: a confirmation
		# that came before the blocks moved is in dmesg by then.
		_o=$(owned)
		dmesg | grep -q "confirmed off by the administrator" || is_eq "$_o" "$before" >/dev/null || took_early=1
		sleep 0.5
	done
	kill $agent 2>/dev/null
	check "b took nothing of a's before the fence agent confirmed it off" is_eq "$took_early" 0
	check "the fence agent asked for a's fence and confirmed it once the harness said a is off" \
		sh -c "dmesg | grep -q 'fence agent: host in slot $aslot (.*) is off; confirmed' &&
			dmesg | grep -q 'host in slot $aslot (.*) confirmed off by the administrator'"
	all_mine() {
		_i=0
		until is_eq "$(owned)" "$blocks" >/dev/null; do
			[ $_i -ge 60 ] && { echo "owns $(owned) of $blocks"; return 1; }
			sleep 0.5
			_i=$((_i + 1))
		done
		is_eq "$(node_kb "$(dax_node "$PORTAL_DAX")")" $((blocks * block / 1024))
	}
	check "b reaps a and owns every block, online" all_mine
	;;
esac
