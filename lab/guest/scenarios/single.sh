# Scenario (a), one host: the direct device comes up with kmem as upstream
# brings it up; cxl_switched, loaded before the portal's region exists, takes
# the portal when the region appears and makes it a Switched node; the node
# works with numactl and migratepages; load/unload cycles; the driver declines
# the direct device; unload with pages in use moves them off where
# possible: pages are migrated off, and when they cannot be, the memory stays
# online, typed, and the system healthy.
ktap_plan single 48

# This host is the portal's only user: it claims every block (the default is
# half, leaving room for other hosts).
modprobe() {
	case "$1" in
	cxl_switched) command modprobe "$@" claim_pct=100 ;;
	*) command modprobe "$@" ;;
	esac
}

lab_find_memdevs || { diag "lab bring-up failed: see the console log"; return 0; }
check "the portal memdev sits under a CXL switch" test -n "$PORTAL_MEM"
check "the control memdev is direct-attached" test -n "$DIRECT_MEM"
diag "portal $PORTAL_MEM: $(memdev_path "$PORTAL_MEM")"
diag "direct $DIRECT_MEM: $(memdev_path "$DIRECT_MEM")"

lab_direct_up
check "direct region $DIRECT_REGION is committed" \
	test "$(cat /sys/bus/cxl/devices/$DIRECT_REGION/commit 2>&1)" = 1
dn=$(dax_node "$DIRECT_DAX")
check "kmem onlined the direct device as node $dn memory" \
	sh -c "[ '$(driver_of "$DIRECT_DAX")' = kmem ] && [ $(node_kb "$dn") -gt 0 ]"

# The same boot before cxl_switched: pagetypeinfo's rows, by label and width.
rows() { awk '/^Node/ { n = NF; sub(/[ 0-9]+$/, ""); print $0 " [" n "]" }' /proc/pagetypeinfo; }
rows >/tmp/rows.before
check "every node has an empty memory_type_name before the driver" \
	sh -c 'for n in /sys/devices/system/node/node[0-9]*; do [ -f $n/memory_type_name ] && [ -z "$(cat $n/memory_type_name)" ] || exit 1; done'

# ---- the driver is loaded before the portal's region exists ----
check "modprobe cxl_switched before the portal region exists" modprobe cxl_switched
lab_portal_region
check "portal region $PORTAL_REGION, created after the driver, is committed" \
	test "$(cat /sys/bus/cxl/devices/$PORTAL_REGION/commit 2>&1)" = 1
check "cxl_switched binds the portal's $PORTAL_DAX" wait_driver "$PORTAL_DAX" cxl_switched 20
check "the direct $DIRECT_DAX stays with kmem" test "$(driver_of "$DIRECT_DAX")" = kmem

pn=$(dax_node "$PORTAL_DAX")
S=/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched
size=$(($(region_size "$PORTAL_REGION")))
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
diag "portal node $pn, direct node $dn, region $size bytes, memory block $block bytes"
check "one dmesg line gives the decision: switched, with the switch path" \
	sh -c "dmesg | grep 'cxl_switched $PORTAL_DAX: $PORTAL_REGION: switched (root0/.*/$(endpoint_of "$PORTAL_MEM"), serial' | grep -q 'node $pn is a Switched node'"
check "node $pn holds the region minus the header block" \
	test "$(node_kb "$pn")" -eq $(((size - block) / 1024))
check "all of it is in ZONE_MOVABLE" \
	sh -c "awk '/^Node $pn, zone/ { z = \$4 } z == \"Movable\" && /managed/ { m = \$2 } END { exit !(m * 4 == $(((size - block) / 1024))) }' /proc/zoneinfo"
check "/proc/iomem: System RAM (cxl_switched) and the reserved header block" \
	sh -c "grep -q 'System RAM (cxl_switched)' /proc/iomem && grep -q '$(printf %x $((PORTAL_BASE)))-.* : cxl_switched header' /proc/iomem"
check "node $pn memory_type_name is Switched, every other node's is empty" \
	sh -c "for n in /sys/devices/system/node/node[0-9]*; do t=\$(cat \$n/memory_type_name); if [ \$n = /sys/devices/system/node/node$pn ]; then [ \"\$t\" = Switched ]; else [ -z \"\$t\" ]; fi || exit 1; done"
check "sysfs: node, size, header, online size and switch path of the portal" \
	sh -c "[ \$(cat $S/node) = $pn ] && [ \$(cat $S/size) = $size ] && [ \$(cat $S/header_size) = $block ] &&
		[ \$(cat $S/online_size) = $((size - block)) ] && [ \$(cat $S/region) = $PORTAL_REGION ] &&
		[ \"\$(cat $S/switch_path | tr / ' ' | sed 's/ / > /g')\" = '$(memdev_path "$PORTAL_MEM")' ]"
check "the empty portal was formatted, with one dmesg line naming its UUID" \
	sh -c "dmesg | grep -q \"$PORTAL_REGION: empty portal formatted as \$(cat $S/portal_uuid)\""
check "sysfs: this host is a member (slot, epoch 1, lease) and owns every data block" \
	sh -c "[ \$(cat $S/epoch) = 1 ] && [ \$(cat $S/lease_ms) = 5000 ] && grep -q ' live epoch 1 heartbeat [0-9]* self\$' $S/members &&
		[ \$(cat $S/owned_blocks) = \$(seq -s, 0 $(((size - block) / block - 1))) ] &&
		[ \"\$(cat $S/owners)\" = \"0-$(((size - block) / block - 1)) slot \$(cat $S/host_slot) epoch 1\" ]"
check "the heartbeat runs: the slot's generation grows" \
	sh -c "a=\$(awk '/self/ { print \$6 }' $S/members); sleep 3; b=\$(awk '/self/ { print \$6 }' $S/members); [ \$b -gt \$a ]"
check "pagetypeinfo: Switched rows for node $pn's zones only" \
	sh -c "grep -q '^Node *$pn, zone *Movable, type *Switched ' /proc/pagetypeinfo && ! grep -E ', type +Switched ' /proc/pagetypeinfo | grep -vq '^Node *$pn,'"
check "pagetypeinfo: the Switched row is the sum of the zone's migrate-type rows" \
	awk -v n="$pn" '$1 == "Node" && $2 == n "," && $4 == "Movable," && /type/ {
		t = $6; for (i = 7; i <= NF; i++) if (t == "Switched") sw[i] = $i; else sum[i] += $i; k = NF }
		/^Number of blocks/ { exit }
		END { for (i = 7; i <= k; i++) if (sw[i] != sum[i]) { print "order " i - 7 ": " sw[i] " vs " sum[i]; exit 1 } }' /proc/pagetypeinfo
rows_unchanged() {
	rows | grep -v "^Node *$pn," >/tmp/rows.after
	grep -v "^Node *$pn," /tmp/rows.before | diff - /tmp/rows.after
}
check "pagetypeinfo: every other row as in the same boot without the driver" rows_unchanged
check "node $pn sits alone in a memory tier below DRAM's" \
	sh -c "t=\$(grep -lx '$pn' /sys/devices/virtual/memory_tiering/memory_tier*/nodelist) &&
		d=\$(grep -l '^0' /sys/devices/virtual/memory_tiering/memory_tier*/nodelist | head -1) &&
		[ \${t%/nodelist} != \${d%/nodelist} ] &&
		[ \$(basename \${t%/nodelist} | tr -dc 0-9) -gt \$(basename \${d%/nodelist} | tr -dc 0-9) ]"
check "numactl --hardware lists node $pn with its size" \
	sh -c "numactl --hardware | grep -q '^node $pn size: $(((size - block) >> 20)) MB'"

# ---- userspace works unchanged ----
h=$(hog --membind="$pn")
check "numactl --membind=$pn: the process's heap is on node $pn" \
	sh -c "[ $(anon_on "$h" "$pn") -gt 32 ] && [ $(anon_on "$h" 0) -lt 64 ]"
diag "membind hog $h: $(anon_on "$h" "$pn") anon pages on node $pn, $(anon_on "$h" 0) on node 0"
kill "$h"
wait "$h" 2>/dev/null
# migrated PID FROM TO PAGES: migratepages moves at least PAGES anonymous
# pages of PID to node TO.
migrated() {
	migratepages "$1" "$2" "$3" || return 1
	_n=$(anon_on "$1" "$3")
	[ "$_n" -ge "$4" ] || { echo "$_n anonymous pages on node $3, want at least $4"; return 1; }
}
h=$(hog)
before=$(anon_on "$h" 0)
check "migratepages $h 0 $pn moves a running process's pages onto the portal" \
	migrated "$h" 0 "$pn" $((before * 9 / 10))
check "migratepages $h $pn 0 moves them back" \
	sh -c "migratepages $h $pn 0 && [ \$(grep -c 'N$pn=' /proc/$h/numa_maps) -eq 0 ]"
kill "$h"
wait "$h" 2>/dev/null
check "move_pages(2) moves 64 pages onto node $pn and back, status and query agree" \
	cxlsw-movepages "$pn" 64

# ---- unload and load again, twice ----
online_kb=$(((size - block) / 1024))
# removed [busy]: rmmod removes the portal's memory (once the node is idle,
# unless pages are expected in use).
removed() {
	[ "$1" = busy ] || wait_idle "$pn" 30 || return 1
	dmesg -c >/dev/null
	rmmod cxl_switched || return 1
	[ "$(node_kb "$pn")" -eq 0 ] || { echo "node $pn still has $(node_kb "$pn") kB"; return 1; }
	[ -z "$(cat "/sys/devices/system/node/node$pn/memory_type_name" 2>/dev/null)" ] || { echo "type still set"; return 1; }
	! grep cxl_switched /proc/iomem || return 1
	dmesg | grep -q "$PORTAL_REGION: node $pn removed"
}
taken() {
	modprobe cxl_switched "$@" || return 1
	wait_driver "$PORTAL_DAX" cxl_switched 20 || return 1
	[ "$(cat "$S/node")" = "$pn" ] && [ "$(node_kb "$pn")" -eq "$online_kb" ] &&
		[ "$(cat "/sys/devices/system/node/node$pn/memory_type_name")" = Switched ]
}
for round in 1 2; do
	check "rmmod (round $round) removes node $pn's memory and its type" removed
	check "modprobe (round $round) takes the portal again" taken
done

# ---- the direct device is declined: handed over by hand, it goes back ----
declined() {
	dmesg -c >/dev/null
	echo "$DIRECT_DAX" >/sys/bus/dax/drivers/cxl_switched/bind 2>/dev/null && { echo "bind succeeded"; return 1; }
	[ -z "$(driver_of "$DIRECT_DAX")" ] || { echo "bound to $(driver_of "$DIRECT_DAX")"; return 1; }
	dmesg | grep -q "cxl_switched $DIRECT_DAX: $DIRECT_REGION: direct-attached (root0/port[0-9]*/endpoint[0-9]*), left to dax/kmem or device_dax"
}
back_to_kmem() {
	echo "$DIRECT_DAX" >/sys/bus/dax/drivers/kmem/bind && [ "$(driver_of "$DIRECT_DAX")" = kmem ] &&
		[ "$(node_kb "$dn")" -gt 0 ]
}
check "offline the direct device's memory and unbind it from kmem" \
	sh -c "daxctl offline-memory $DIRECT_DAX && echo $DIRECT_DAX >/sys/bus/dax/drivers/kmem/unbind"
check "cxl_switched declines it, with one dmesg line saying why: direct-attached" declined
check "kmem takes the direct device back" back_to_kmem

# ---- parameters ----
refused_param() {
	modprobe cxl_switched switched=7 2>/dev/null && { rmmod cxl_switched; return 1; }
	dmesg | grep -q 'switched=7 is not -1, 0 or 1; not loaded'
}
binds_nothing() {
	modprobe cxl_switched switched=0 || return 1
	sleep 1
	_d=$(driver_of "$PORTAL_DAX")
	rmmod cxl_switched
	[ -z "$_d" ]
}
check "rmmod before the parameter checks" removed
check "switched=7 is refused at load, with a message" refused_param
check "switched=0 binds nothing" binds_nothing

# ---- unload with pages in use: they are moved off ----
check "modprobe cxl_switched" taken
h=$(hog --membind="$pn")
check "a process holds pages on node $pn" test "$(anon_on "$h" "$pn")" -gt 32
check "rmmod migrates them off and removes the node's memory" removed busy
check "the process lives on, its pages moved off node $pn" \
	sh -c "kill -0 $h && ! grep -q 'N$pn=' /proc/$h/numa_maps"
kill "$h"
wait "$h" 2>/dev/null

# ---- pages that cannot be moved off: unload fails, nothing is lost ----
pinned() {
	numactl --membind="$pn" -- cxlsw-pin 8 >/tmp/pin.out 2>&1 &
	echo $! >/tmp/pin.pid
	_i=0
	until grep -q '^pinned 8$' /tmp/pin.out; do
		[ $_i -ge 300 ] && { cat /tmp/pin.out; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
	[ "$(anon_on "$(cat /tmp/pin.pid)" "$pn")" -ge 8 ]
}
kept() {
	dmesg -c >/dev/null
	# Offlining waits for the pinned pages; a fatal signal ends the wait.
	timeout -s KILL 20 rmmod cxl_switched
	! grep -q '^cxl_switched ' /proc/modules || { echo "still loaded"; return 1; }
	dmesg | grep -q "$PORTAL_REGION: node $pn not removed: offlining failed (EINTR), pages could not be moved off; its memory stays online" || { dmesg | tail -5; return 1; }
	# The blocks holding the pinned pages stay; the others may go.
	[ "$(node_kb "$pn")" -gt 0 ] || { echo "node $pn has no memory left"; return 1; }
	[ "$(cat "/sys/devices/system/node/node$pn/memory_type_name")" = Switched ]
}
refused_reload() {
	dmesg -c >/dev/null
	modprobe cxl_switched || return 1
	sleep 1
	[ -z "$(driver_of "$PORTAL_DAX")" ] || return 1
	dmesg | grep -q "$PORTAL_REGION: refused: header block .* is claimed already"
}
check "modprobe cxl_switched" taken
check "cxlsw-pin holds 8 pages of node $pn in a pipe, where they cannot migrate" pinned
check "rmmod, killed while offlining waits, leaves the portal online and typed, with a message" kept
check "the pinning process keeps its pages" \
	sh -c "kill -0 \$(cat /tmp/pin.pid) && [ \$(grep -c 'N$pn=' /proc/\$(cat /tmp/pin.pid)/numa_maps) -gt 0 ]"
kill "$(cat /tmp/pin.pid)"
check "a new load refuses the portal still online, with a message" refused_reload
check "the system is healthy: node $pn still allocates" \
	numactl --membind="$pn" -- sh -c 'x=$(seq 1 10000); [ -n "$x" ]'
check "rmmod cxl_switched at the end" rmmod cxl_switched
