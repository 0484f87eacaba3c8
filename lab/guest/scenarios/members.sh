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
S=/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
blocks=$(($(region_size "$PORTAL_REGION") / block - 1))

# live: number of live members in the member table.
live() { grep -c ' live ' "$S/members"; }
# wait_live N SECONDS
wait_live() {
	_i=0
	until [ -r "$S/members" ] && [ "$(live)" -eq "$1" ]; do
		[ $_i -ge $(($2 * 10)) ] && { cat "$S/members" 2>&1; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
}
# owned: blocks this host owns (from owned_blocks, "0,2").
owned() { tr ',' '\n' <"$S/owned_blocks" | grep -c '^[0-9]'; }
mine_online() { [ "$(node_kb "$pn")" -eq $(($(owned) * block / 1024)) ]; }

case "$host$boot" in
a1 | b1)
	ktap_plan "members" $([ "$host" = a ] && echo 5 || echo 11)
	check "cxl_switched binds the portal's $PORTAL_DAX" wait_driver "$PORTAL_DAX" cxl_switched 60
	pn=$(dax_node "$PORTAL_DAX")
	check "both hosts are live members of one portal (member table)" wait_live 2 120
	diag "host $host: slot $(cat $S/host_slot) epoch $(cat $S/epoch) portal $(cat $S/portal_uuid) owns $(cat $S/owned_blocks)"
	check "this host joined in epoch 1 and owns blocks" \
		sh -c "[ \$(cat $S/epoch) = 1 ] && [ $(owned) -ge 1 ]"
	check "every block has one owner, of two hosts; the blocks are disjoint" \
		sh -c "awk '/slot/ { n += substr(\$1, index(\$1, \"-\") + 1) - \$1 + 1; if (!(\$3 in s)) { s[\$3] = 1; k++ } }
			END { exit !(n == $blocks && k == 2) }' $S/owners"
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
	aslot=$(awk '!/self/ && / live / { print $1 }' "$S/members")
	before=$(owned)
	# Watch a's heartbeat: when did it last change, when did b take a's blocks?
	last_beat=$(now_cs)
	beat=$(awk -v s="$aslot" '$1 == s { print $6 }' "$S/members")
	taken=0
	i=0
	while [ $i -lt 1200 ]; do
		b=$(awk -v s="$aslot" '$1 == s { print $6 }' "$S/members")
		[ "$b" != "$beat" ] && { beat=$b; last_beat=$(now_cs); }
		if [ "$(owned)" -gt "$before" ]; then
			taken=$(now_cs)
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	diag "a (slot $aslot) last heartbeat at $last_beat cs; b took its blocks at $taken cs"
	check "b takes a's blocks, but only a lease ($LEASE ms) after a's last heartbeat" \
		sh -c "[ $taken -gt 0 ] && [ \$((($taken - $last_beat) * 10)) -ge $((LEASE - 500)) ]"
	check "a is fenced in the member table" \
		sh -c "awk -v s=$aslot '\$1 == s { exit !(\$2 == \"fenced\") }' $S/members"
	check "b owns every block and has them all online" \
		sh -c "[ $(owned) -eq $blocks ] && [ \$(awk '/MemTotal/ { print \$4 }' /sys/devices/system/node/node$pn/meminfo) -eq $((blocks * block / 1024)) ]"
	check "one dmesg line says a was fenced and reaped, one that b onlined its blocks" \
		sh -c "dmesg | grep -q 'fenced and reaped 1 host' && dmesg | grep -q 'onlined .* reclaimed block'"
	# a boots again: wait for it to join, and stay for its checks.
	check "a rejoins: two live members again" wait_live 2 300
	check "b still owns every block, online" \
		sh -c "[ $(owned) -eq $blocks ] && [ \$(awk '/MemTotal/ { print \$4 }' /sys/devices/system/node/node$pn/meminfo) -eq $((blocks * block / 1024)) ]"
	sleep 20
	;;
a2)
	ktap_plan "members-rejoin" 4
	check "cxl_switched binds the portal's $PORTAL_DAX again" wait_driver "$PORTAL_DAX" cxl_switched 60
	pn=$(dax_node "$PORTAL_DAX")
	diag "host a again: slot $(cat $S/host_slot) epoch $(cat $S/epoch) owns '$(cat $S/owned_blocks)'"
	check "a joined the formatted portal without formatting it, as a new member" \
		sh -c "! dmesg | grep -q 'empty portal formatted' && { [ \$(cat $S/epoch) -ge 2 ] || grep -q ' fenced ' $S/members; }"
	check "a owns nothing: b holds every block" \
		sh -c "kb=\$(awk '/MemTotal/ { print \$4 }' /sys/devices/system/node/node$pn/meminfo 2>/dev/null);
			[ -z \"\$(tr -d ',\\n' <$S/owned_blocks)\" ] && [ \${kb:-0} -eq 0 ]"
	check "two live members" wait_live 2 10
	;;
*)
	ktap_plan "members" 1
	notok "host '$host' boot '$boot' is a or b, boot 1 or 2"
	;;
esac
