# Scenario (c), two hosts share a portal through its header. Both boot at
# the same moment on an all-zero portal with cxl_switched loaded: exactly
# one formats it (the harness checks that one console only says so), both
# join, and each onlines only the blocks it owns, disjoint from the
# other's. Host a's first boot then ends without leaving (its kernel powers
# off: no unload, no goodbye); host b fences it and takes its blocks only
# once a's lease has expired, and onlines them. Host a boots again: it joins
# with a new epoch and owns nothing of what b took.
host=$(cmdline_arg cxlsw.host)
boot=$(cmdline_arg cxlsw.boot || echo 1)
# Onlining a 128 MiB block of the lab's emulated CXL memory takes seconds when both
# guests are busy: the lease must be well above that.
LEASE=10000

# now_cs: uptime in centiseconds (busybox date has no sub-second format).
now_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }

lab_find_memdevs && lab_direct_up && modprobe cxl_switched lease_ms=$LEASE && lab_portal_region ||
	{ diag "lab bring-up failed: see the console log"; return 0; }
# One value a file in sysfs; the header's tables (members, owners) in debugfs.
S=/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched
T=/sys/kernel/debug/cxl_switched/$PORTAL_DAX
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
blocks=$(($(region_size "$PORTAL_REGION") / block - 1))

# live: number of live members in the member table.
live() { grep -c ' live ' "$T/members"; }
# wait_live N SECONDS
wait_live() {
	_i=0
	until [ -r "$T/members" ] && [ "$(live)" -eq "$1" ]; do
		[ $_i -ge $(($2 * 10)) ] && { cat "$T/members" 2>&1; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
}
# owned: blocks this host owns (from owned_blocks, "0,2"); fails, printing
# nothing, when owned_blocks is missing (not "0 blocks").
owned() {
	[ -r "$S/owned_blocks" ] || { echo "$S/owned_blocks is missing" >&2; return 1; }
	tr ',' '\n' <"$S/owned_blocks" | grep -c '^[0-9]'
	return 0
}
# mine_online: this host owns blocks (it does in a1 and b1) and node $pn
# holds exactly them.
mine_online() {
	_mo=$(owned) && is_gt "$_mo" 0 && is_eq "$(node_kb "$pn")" $((_mo * block / 1024))
}
# all_mine: b owns every block of the portal and has them all online.
all_mine() {
	is_gt "$blocks" 0 && is_eq "$(owned)" "$blocks" && is_eq "$(node_kb "$pn")" $((blocks * block / 1024))
}

case "$host$boot" in
a1 | b1)
	ktap_plan "members" $([ "$host" = a ] && echo 5 || echo 11)
	check "cxl_switched binds the portal's $PORTAL_DAX" wait_driver "$PORTAL_DAX" cxl_switched 60
	pn=$(dax_node "$PORTAL_DAX")
	check "both hosts are live members of one portal (member table)" wait_live 2 120
	diag "host $host: slot $(cat $S/host_slot) epoch $(cat $S/epoch) portal $(cat $S/portal_uuid) owns $(cat $S/owned_blocks)"
	joined() { is_eq "$(val "$S/epoch")" 1 && is_ge "$(owned)" 1; }
	check "this host joined in epoch 1 and owns blocks" joined
	check "every block has one owner, of two hosts; the blocks are disjoint" \
		sh -c "awk '/slot/ { n += substr(\$1, index(\$1, \"-\") + 1) - \$1 + 1; if (!(\$3 in s)) { s[\$3] = 1; k++ } }
			END { exit !(n == $blocks && k == 2) }' $T/owners"
	check "node $pn holds exactly the blocks this host owns" mine_online
	;;
esac

case "$host$boot" in
a1)
	# Give b time to see both members, then end without leaving.
	sleep 8
	log "host a: powering off without unloading cxl_switched"
	;;
b1)
	aslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	before=$(owned)
	# Watch a's heartbeat: when did it last change, when did b take a's blocks?
	last_beat=$(now_cs)
	beat=$(awk -v s="$aslot" '$1 == s { print $6 }' "$T/members")
	taken=0
	i=0
	while [ $i -lt 1200 ]; do
		b=$(awk -v s="$aslot" '$1 == s { print $6 }' "$T/members")
		# A failed read is not a heartbeat.
		num "$b" 2>/dev/null && [ "$b" != "$beat" ] && { beat=$b; last_beat=$(now_cs); }
		if [ "$(owned 2>/dev/null)" -gt "$before" ] 2>/dev/null; then
			taken=$(now_cs)
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	diag "a (slot $aslot) last heartbeat at $last_beat cs; b took its blocks at $taken cs"
	# a's slot and heartbeat were read (without them no heartbeat was
	# watched, and the lease ran from the start of the watch).
	taken_late() {
		num "$aslot" "a's slot" && num "$beat" "a's heartbeat" && num "$last_beat" "a's last heartbeat time" &&
			is_gt "$taken" 0 && is_ge $(((taken - last_beat) * 10)) $((LEASE - 500))
	}
	check "b takes a's blocks, but only a lease ($LEASE ms) after a's last heartbeat" taken_late
	# a's row must be there: no row for the slot used to pass.
	a_fenced() {
		num "$aslot" "a's slot" || return 1
		awk -v s="$aslot" '$1 == s { f = 1; st = $2 }
			END { if (!f) print "no row for slot " s; else if (st != "fenced") print "slot " s " is " st; exit !(f && st == "fenced") }' "$T/members"
	}
	check "a is fenced in the member table" a_fenced
	check "b owns every block and has them all online" all_mine
	check "one dmesg line says a was fenced and reaped, one that b onlined its blocks" \
		sh -c "dmesg | grep -q 'fenced and reaped 1 host' && dmesg | grep -q 'onlined .* reclaimed block'"
	# a boots again: wait for it to join, and stay for its checks.
	check "a rejoins: two live members again" wait_live 2 300
	check "b still owns every block, online" all_mine
	sleep 20
	;;
a2)
	ktap_plan "members-rejoin" 4
	check "cxl_switched binds the portal's $PORTAL_DAX again" wait_driver "$PORTAL_DAX" cxl_switched 60
	pn=$(dax_node "$PORTAL_DAX")
	diag "host a again: slot $(cat $S/host_slot) epoch $(cat $S/epoch) owns '$(cat $S/owned_blocks)'"
	# dmesg read (an empty one "lacks" the line too) and an epoch read.
	rejoined() {
		dmesg | lacks 'empty portal formatted' || return 1
		_rj=$(val "$S/epoch") && num "$_rj" "epoch" || return 1
		is_ge "$_rj" 2 2>/dev/null || grep -q ' fenced ' "$T/members" ||
			{ echo "epoch $_rj and no fenced member:"; cat "$T/members"; return 1; }
	}
	check "a joined the formatted portal without formatting it, as a new member" rejoined
	# owned_blocks must be there to be empty; node $pn a node number (a node
	# without memory may have no meminfo: 0 kB).
	owns_nothing() {
		[ -r "$S/owned_blocks" ] || { echo "$S/owned_blocks is missing"; return 1; }
		[ -z "$(tr -d ',\n' <"$S/owned_blocks")" ] || { echo "owns $(cat "$S/owned_blocks")"; return 1; }
		is_eq "$(node_kb "$pn")" 0
	}
	check "a owns nothing: b holds every block" owns_nothing
	check "two live members" wait_live 2 10
	;;
*)
	ktap_plan "members" 1
	notok "host '$host' boot '$boot' is a or b, boot 1 or 2"
	;;
esac
