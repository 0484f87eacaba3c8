# Scenario slowleave: a host that leaves keeps its lease until its memory is
# off its blocks. Hosts a and b share a portal. Host a pins pages on the
# portal's node, where they cannot migrate, and unbinds the portal: offlining
# waits for those pages for three leases, until a fatal signal ends the wait.
# All that time a still owns, and uses, its blocks: b must not fence a and
# take them. Then a quarantines the block it could not offline and leaves;
# b sees a's slot free (a left), never fenced. (A driver that stopped its
# heartbeat before offlining was reaped by b after one lease.)
host=$(cmdline_arg cxlsw.host)
LEASE=10000

lab_find_memdevs && lab_direct_up && modprobe cxl_switched lease_ms=$LEASE && lab_portal_region ||
	{ diag "lab bring-up failed: see the console log"; return 0; }
S=/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched
T=/sys/kernel/debug/cxl_switched/$PORTAL_DAX
wait_driver "$PORTAL_DAX" cxl_switched 60 >/dev/null
pn=$(dax_node "$PORTAL_DAX")

# wait_live N SECONDS: N live members in the member table.
wait_live() {
	_i=0
	until [ "$(grep -c ' live ' "$T/members" 2>/dev/null)" = "$1" ]; do
		[ $_i -ge $(($2 * 10)) ] && { cat "$T/members" 2>&1; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
}

case "$host" in
a)
	ktap_plan "slowleave" 4
	check "both hosts are live members" wait_live 2 120
	pin() { pin_pages "$pn" 8; }
	check "cxlsw-pin holds 8 pages of node $pn that cannot migrate" pin
	dmesg -c >/dev/null
	log "host a: unbinding with pinned pages; offlining waits three leases"
	# Offlining waits for the pinned pages; the KILL after three leases ends it.
	slow_unbind() {
		timeout -s KILL $((3 * LEASE / 1000)) sh -c "echo $PORTAL_DAX >/sys/bus/dax/drivers/cxl_switched/unbind"
		dmesg | grep -q "$PORTAL_REGION: node $pn not removed: offlining failed (EINTR)" || { dmesg | tail -5; return 1; }
	}
	check "the unbind waits three leases for the pinned pages, then ends on SIGKILL" slow_unbind
	left() {
		dmesg | grep -q "$PORTAL_REGION: left the portal" || { dmesg | tail -8; return 1; }
		dmesg | lacks "lease expired" && dmesg | lacks "fenced by another" &&
			dmesg | lacks "stops using the portal"
	}
	check "a then quarantines what it could not offline and leaves, never expired or fenced" left
	# Stay until b has seen a leave.
	sleep 20
	;;
b)
	ktap_plan "slowleave" 3
	check "both hosts are live members" wait_live 2 120
	aslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	# watch_a: until a's member entry leaves "live" (at most 90 s): it must
	# become free (a left), not fenced (b took a's blocks while a used them).
	# Seconds since boot (an iteration of the loop takes far longer than its
	# sleep under TCG: count time, not iterations).
	now_s() { cut -d. -f1 /proc/uptime; }
	watch_a() {
		num "$aslot" "a's slot" || return 1
		_t0=$(now_s)
		while [ $(($(now_s) - _t0)) -lt 90 ]; do
			_st=$(awk -v s="$aslot" '$1 == s { print $2 }' "$T/members")
			is_nonempty "$_st" "a's member entry" || return 1
			[ "$_st" = live ] || break
			sleep 0.1
		done
		_dt=$(($(now_s) - _t0))
		diag "a's entry after $_dt s: $_st"
		is_same "$_st" free && is_ge "$_dt" $((3 * LEASE / 1000 - 5))
	}
	check "a stays live for the three leases it offlines, then leaves (free, not fenced)" watch_a
	never_reaped() { dmesg | lacks 'reaped [0-9]* host' && dmesg | lacks 'a suspect'; }
	check "b never called a a suspect, nor reaped it" never_reaped
	quarantined() { grep -q ' quarantined$' "$T/owners" || { cat "$T/owners"; return 1; }; }
	check "the block a could not offline is quarantined in the owner table" quarantined
	;;
esac
rmmod cxl_switched 2>/dev/null
true
