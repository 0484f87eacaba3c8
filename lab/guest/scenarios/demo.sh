# The demo: what an operator wants to see on each of two hosts that share a
# portal. Plain text on the scenario port, with KTAP test points for the
# parts the harness checks.
host=$(cmdline_arg cxlsw.host)
out() { echo "$*" >&3; }
section() { out ""; out "---- $* ----"; }

# Both hosts load cxl_switched at the same moment: one formats the empty
# portal, both join it through its header, and each onlines only the blocks
# it owns. (Lease 10 s: onlining a block of the lab's emulated CXL memory
# takes seconds while both guests are busy.)
lab_find_memdevs && lab_direct_up && modprobe cxl_switched lease_ms=10000 && lab_portal_region ||
	{ diag "lab bring-up failed: see the console log"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 60 >/dev/null
# One value a file in sysfs; the header's tables (members, owners) in debugfs.
S=/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched
T=/sys/kernel/debug/cxl_switched/$PORTAL_DAX
# Both members in the table before the report.
_i=0
until [ "$(grep -c ' live ' "$T/members" 2>/dev/null)" = 2 ] || [ $_i -ge 1200 ]; do
	sleep 0.1
	_i=$((_i + 1))
done
section "CXL topology"
out "portal  $PORTAL_MEM (serial $(cat /sys/bus/cxl/devices/$PORTAL_MEM/serial)): $(memdev_path "$PORTAL_MEM")   <- switch in the path"
out "direct  $DIRECT_MEM (serial $(cat /sys/bus/cxl/devices/$DIRECT_MEM/serial)): $(memdev_path "$DIRECT_MEM")"
for r in "$PORTAL_REGION" "$DIRECT_REGION"; do
	d=$(dax_of "$r")
	out "$r: $(region_base "$r") size $(region_size "$r") dax=$d node=$(dax_node "$d") driver=$(driver_of "$d")"
done
pn=$(dax_node "$PORTAL_DAX")
section "driver"
grep '^cxl_switched ' /proc/modules >&3 || out "(cxl_switched not loaded on host $host)"
dmesg | grep 'cxl_switched' | grep -v 'ok \|# \|KTAP\|1\.\.' >&3
if [ -d "/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched" ]; then
	for f in /sys/bus/dax/devices/$PORTAL_DAX/cxl_switched/*; do
		out "$PORTAL_DAX/cxl_switched/$(basename "$f"): $(cat "$f")"
	done
fi
section "NUMA nodes (numactl --hardware)"
numactl --hardware >&3 2>&1
for n in /sys/devices/system/node/node[0-9]*; do
	t=$(cat "$n/memory_type_name" 2>/dev/null)
	out "$(basename "$n") memory_type_name: ${t:-(none)}"
done
section "memory tiers"
for t in /sys/devices/virtual/memory_tiering/memory_tier*; do
	out "$(basename "$t"): nodes $(cat "$t/nodelist")"
done
section "/proc/pagetypeinfo"
cat /proc/pagetypeinfo >&3
section "portalctl list"
portalctl list >&3 2>&1 || out "(portalctl not available)"

section "sharing the portal (its header, seen from host $host)"
out "portal $(cat $S/portal_uuid), lease $(cat $S/lease_ms) ms; this host: slot $(cat $S/host_slot), epoch $(cat $S/epoch), blocks $(cat $S/owned_blocks)"
out "members, $T/members (slot, state, epoch, heartbeat):"
sed 's/^/  /' "$T/members" >&3
out "owners, $T/owners (data blocks):"
sed 's/^/  /' "$T/owners" >&3
ktap_plan "demo" 4
check "host $host: the portal is Switched node $pn" test "$(cat /sys/devices/system/node/node$pn/memory_type_name)" = Switched
check "host $host: both hosts are live members of one portal" test "$(grep -c ' live ' "$T/members")" = 2
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
# owned_blocks read and not empty (each host owns blocks here): a missing
# file counted 0 blocks, which an absent node matched.
holds_owned() {
	is_gt "$block" 0 || return 1
	_ho=$(val "$S/owned_blocks") || return 1
	_ho=$(echo "$_ho" | tr ',' '\n' | grep -c '^[0-9]')
	is_gt "$_ho" 0 && is_eq "$(node_kb "$pn")" $((_ho * block / 1024))
}
check "host $host: node $pn holds exactly the blocks this host owns" holds_owned

# The move: a workload's memory goes from host a to host b through the
# portal by metadata alone, and its result is checked against a run that
# never moved.
section "a workload moves from host a to host b through the portal"
MIB=16 STEPS=2000
case "$host" in
a)
	bslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	mkfifo /tmp/wl.in
	numactl --membind="$pn" -- cxlsw-workload --mib $MIB --steps $STEPS --pause-after $((STEPS / 2)) \
		</tmp/wl.in >/tmp/wl.out 2>&1 &
	exec 5>/tmp/wl.in
	until_ok 300 grep -q '^paused at' /tmp/wl.out
	set -- $(awk '/^paused at/ { print $5, $7, $9 }' /tmp/wl.out)
	out "host a: the workload ($MIB MiB on the portal's node $pn) paused after $((STEPS / 2)) of $STEPS steps: pid $3 at $1"
	out "\$ portalctl handoff export --pid $3 --node $pn --to $bslot --range $1:$2"
	portalctl handoff export --pid "$3" --node "$pn" --to "$bslot" --range "$1:$2" >&3 2>&1
	out "host a: waiting for host b to map it, resume it and pull it"
	until_ok 600 in_state pulled
	portalctl handoff list >&3
	kill -9 "$3"
	until_ok 60 sh -c "! [ -d /proc/$3 ]"
	exec 5>&-
	out "\$ portalctl handoff release --node $pn --index $(handoffs | awk '{ print $2 }') --id $(handoffs | awk '{ print $3 }')"
	portalctl handoff release --node "$pn" --index "$(handoffs | awk '{ print $2 }')" \
		--id "$(handoffs | awk '{ print $3 }')" >&3 2>&1
	dmesg | grep 'released:' | tail -1 >&3
	check "host a: the workload left; its handoff is released" test -z "$(handoffs)"
	;;
b)
	expect=$(cxlsw-workload --mib $MIB --steps $STEPS --expect | awk '/^result/ { print $2 }')
	until_ok 600 in_state offered
	portalctl handoff list >&3
	set -- $(handoffs | awk '{ print $1, $2, $3 }')
	out "\$ cxlsw-workload --import $1:$2:$3 --steps $STEPS"
	mkfifo /tmp/wl.in
	cxlsw-workload --import "$1:$2:$3" --steps $STEPS </tmp/wl.in >/tmp/wl.out 2>&1 &
	exec 5>/tmp/wl.in
	until_ok 300 grep -q '^imported' /tmp/wl.out
	grep '^imported' /tmp/wl.out >&3
	dmesg | grep 'mapped into pid' | tail -1 >&3
	out "\$ portalctl handoff pull --node $1 --index $2 --id $3 --to-node 0"
	portalctl handoff pull --node "$1" --index "$2" --id "$3" --to-node 0 --batch 1024 >&3 2>&1
	until_ok 300 grep -q '^done, waiting' /tmp/wl.out
	wpid=$(awk '/^imported/ { print $9 }' /tmp/wl.out)
	out "host b: after the pull, /proc/$wpid/numa_maps has $(anon_on "$wpid" 0) anonymous pages on node 0, $(anon_on "$wpid" "$1") on the portal"
	got=$(awk '/^result/ { print $2 }' /tmp/wl.out)
	out "host b: result $got; the same workload run without moving: $expect"
	echo go >&5
	exec 5>&-
	check "host b: the moved workload's result is the unmoved run's" test "$got" = "$expect"
	no_handoff() { [ -z "$(handoffs)" ]; }
	until_ok 600 no_handoff
	until_ok 60 sh -c "dmesg | grep -q 'handed over'"
	dmesg | grep 'handed over' | tail -1 >&3
	out "host b: owns blocks $(cat "$S/owned_blocks") of the portal now"
	;;
esac
# Stay until the other host has printed its view, then leave the portal.
sleep 15
rmmod cxl_switched
