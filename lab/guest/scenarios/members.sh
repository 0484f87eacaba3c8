# Scenario (c), two hosts share a portal through its header. Both boot at
# the same moment on an all-zero portal with cxl_switched loaded: exactly
# one formats it (the harness checks that one console only says so), both
# join, and each onlines only the blocks it owns, disjoint from the
# other's. Host a's first boot then ends without leaving (its kernel powers
# off: no unload, no goodbye); host b calls it a suspect once a's lease has
# expired, but takes nothing of it until the administrator confirms it off
# (fence_confirm); then b reaps it and onlines its blocks. Host a boots
# again: it joins with a new epoch and owns nothing of what b took.
host=$(cmdline_arg cxlsw.host)
boot=$(cmdline_arg cxlsw.boot || echo 1)
# Onlining a 128 MiB block of the lab's emulated CXL memory takes seconds when both
# guests are busy: the lease must be well above that.
LEASE=10000

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
blocks=$(($(region_size "$PORTAL_REGION") / block - 1))
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
	ktap_plan "members" $([ "$host" = a ] && echo 5 || echo 14)
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
	# Watch a's heartbeat: when did it last change, when did b call it a
	# suspect? b must take nothing of a's on its own, however long it waits.
	last_beat=$(now_cs)
	beat=$(awk -v s="$aslot" '$1 == s { print $6 }' "$T/members")
	suspect=0
	i=0
	while [ $i -lt 1200 ]; do
		b=$(awk -v s="$aslot" '$1 == s { print $6 }' "$T/members")
		# A failed read is not a heartbeat.
		num "$b" 2>/dev/null && [ "$b" != "$beat" ] && { beat=$b; last_beat=$(now_cs); }
		if grep -q "^$aslot " "$S/suspects" 2>/dev/null; then
			suspect=$(now_cs)
			break
		fi
		sleep 0.1
		i=$((i + 1))
	done
	diag "a (slot $aslot) last heartbeat at $last_beat cs; a suspect at $suspect cs: $(cat "$S/suspects")"
	# The driver's own count of a's silence, and the watch's: a turn of the
	# watch loop takes up to a second here, so it sees the last beat late.
	silent=$(awk -v s="$aslot" '$1 == s { print $6 }' "$S/suspects")
	suspect_late() {
		num "$aslot" "a's slot" && num "$beat" "a's heartbeat" && num "$last_beat" "a's last heartbeat time" &&
			is_gt "$suspect" 0 && is_ge $(((suspect - last_beat) * 10)) $((LEASE - 2000)) &&
			num "$silent" "a's silence in suspects" && is_ge "$silent" "$LEASE"
	}
	check "a is a suspect, but only a lease ($LEASE ms) after its last heartbeat" suspect_late
	# Unconfirmed, a keeps its blocks: watch them for a whole lease more.
	untouched() {
		# Timed on the clock: a turn of a shell loop takes about a second here.
		_until=$(($(now_cs) + LEASE / 10))
		while [ "$(now_cs)" -lt $_until ]; do
			is_eq "$(owned)" "$before" >/dev/null || { echo "b took blocks: owns $(owned), had $before"; return 1; }
			sleep 0.5
		done
		grep -q "^$aslot .* unconfirmed$" "$S/suspects" && grep -q "^$aslot live " "$T/members" &&
			dmesg | grep -q "host in slot $aslot .* a suspect; its blocks stay its own until it is fenced"
	}
	check "a suspect keeps its blocks and membership until it is confirmed off (one dmesg line)" untouched
	# The administrator, who knows a is off (its kernel powered off), says so.
	auuid=$(awk -v s="$aslot" '$1 == s { print $2 }' "$S/suspects")
	bad_confirm() {
		dmesg -c >/dev/null
		! echo "$aslot not-a-uuid" >"$S/fence_confirm" 2>/tmp/fc.err &&
			grep -qi 'invalid argument' /tmp/fc.err &&
			is_eq "$(dmesg | grep -c 'fence_confirm: expected "SLOT UUID"')" 1 &&
			! echo "$aslot 00000000-0000-0000-0000-000000000000" >"$S/fence_confirm" 2>/dev/null &&
			dmesg | grep -q "fence_confirm: slot $aslot (00000000-0000-0000-0000-000000000000): that host slot does not hold the host named"
	}
	check "a garbled or wrong confirmation is refused (EINVAL, one dmesg line each)" bad_confirm
	is_eq "$(owned)" "$before" || diag "b took blocks on a bad confirmation"
	confirm() {
		is_nonempty "$auuid" "a's uuid in suspects" &&
			portalctl portal fence-confirm "$PORTAL_DAX" --slot "$aslot" --uuid "$auuid" &&
			dmesg | grep -q "host in slot $aslot ($auuid) confirmed off by the administrator"
	}
	check "the administrator confirms a off (portalctl portal fence-confirm; logged)" confirm
	taken=0
	i=0
	while [ $i -lt 300 ]; do
		[ "$(owned 2>/dev/null)" -gt "$before" ] 2>/dev/null && { taken=1; break; }
		sleep 0.1
		i=$((i + 1))
	done
	# a's row must be there: no row for the slot used to pass.
	a_fenced() {
		is_eq "$taken" 1 || return 1
		num "$aslot" "a's slot" || return 1
		awk -v s="$aslot" '$1 == s { f = 1; st = $2 }
			END { if (!f) print "no row for slot " s; else if (st != "fenced") print "slot " s " is " st; exit !(f && st == "fenced") }' "$T/members"
	}
	check "once confirmed, b reaps a: a is fenced in the member table" a_fenced
	check "b owns every block and has them all online" all_mine
	check "one dmesg line says b reaped a confirmed host, one that it onlined its blocks" \
		sh -c "dmesg | grep -q 'reaped 1 host(s) confirmed off' && dmesg | grep -q 'onlined .* reclaimed block'"
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
	# b reaps a's first boot once the administrator confirms it off, which
	# may come after this boot joined: wait for it (on the clock).
	rejoined() {
		dmesg | lacks 'empty portal formatted' || return 1
		_rj=$(val "$S/epoch") && num "$_rj" "epoch" || return 1
		_until=$(($(now_cs) + 12000))
		until is_ge "$_rj" 2 2>/dev/null || grep -q ' fenced ' "$T/members"; do
			[ "$(now_cs)" -lt $_until ] || { echo "epoch $_rj and no fenced member:"; cat "$T/members"; return 1; }
			sleep 1
		done
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
