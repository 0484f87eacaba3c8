# Scenario: a host pauses for three leases and resumes. Both hosts join and
# own blocks; then the harness stops host a's QEMU (QMP stop) for three
# leases and continues it. A paused VM does not know it was paused: its
# clock stopped with it, so it resumes as the owner of its blocks. No fence
# agent runs: host b calls a a suspect, and must take nothing of it, however
# long a is silent. (Protocol v1 reclaimed a's blocks after one lease: a
# resumed using blocks that b owned.)
host=$(cmdline_arg cxlsw.host)
LEASE=10000

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }

case "$host" in
a)
	ktap_plan "pause" 4
	check "cxl_switched binds the portal's $PORTAL_DAX" wait_driver "$PORTAL_DAX" cxl_switched 60
	check "both hosts are live members" wait_live 2 120
	pn=$(dax_node "$PORTAL_DAX")
	mine=$(owned)
	online() { is_gt "$mine" 0 && is_eq "$(node_kb "$pn")" $((mine * $((0x$(cat /sys/devices/system/memory/block_size_bytes))) / 1024)); }
	check "a owns blocks, online on node $pn" online
	# The harness stops this QEMU on this line, for three leases.
	diag "cxlsw: ready to pause"
	sleep 20
	# Resumed: it noticed nothing (its clock stopped too); its blocks are
	# still its own and online, and it stayed a member.
	kept() {
		is_eq "$(owned)" "$mine" && grep -q " live .* self" "$T/members" &&
			dmesg | lacks "stops using the portal" && dmesg | lacks "self-fenced"
	}
	check "after the pause a still owns and uses its blocks, a live member" kept
	;;
b)
	ktap_plan "pause" 5
	check "cxl_switched binds the portal's $PORTAL_DAX" wait_driver "$PORTAL_DAX" cxl_switched 60
	check "both hosts are live members" wait_live 2 120
	aslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	before=$(owned)
	# Wait (on the clock) for a to become a suspect: it is paused.
	sus() { grep -q "^$aslot .* unconfirmed$" "$S/suspects"; }
	became() {
		num "$aslot" "a's slot" || return 1
		_until=$(($(now_cs) + 12000))
		until sus; do
			[ "$(now_cs)" -lt $_until ] || { cat "$S/suspects"; return 1; }
			sleep 0.5
		done
	}
	check "a, paused, becomes a suspect" became
	# While a is a suspect b takes nothing, for as long as it lasts.
	took=0 turns=0
	while sus; do
		is_eq "$(owned)" "$before" >/dev/null || took=1
		turns=$((turns + 1))
		sleep 0.5
	done
	diag "a was a suspect for $turns turns of the watch; b took blocks: $took"
	check "b takes nothing of a suspect's (unconfirmed)" sh -c "[ $took -eq 0 ] && [ $turns -gt 3 ]"
	back() {
		_until=$(($(now_cs) + 1500))
		until dmesg | grep -q "host in slot $aslot is no suspect any more"; do
			[ "$(now_cs)" -lt $_until ] || { echo "no 'no suspect any more' line"; return 1; }
			sleep 0.5
		done
		grep -q "^$aslot live " "$T/members" && is_eq "$(owned)" "$before" && dmesg | lacks 'reaped [0-9]* host'
	}
	check "a resumed: no suspect any more, still a live member; b never reaped it" back
	sleep 25
	;;
esac
