# Scenario (a), one host: the direct device comes up with kmem as upstream
# brings it up; cxl_switched, loaded before the portal's region exists, takes
# the portal when the region appears and makes it a Switched node; the node
# works with numactl and migratepages; load/unload cycles; the driver declines
# the direct device; unload with pages in use moves them off where
# possible: pages are migrated off, and when they cannot be, the memory stays
# online, typed, and the system healthy.
ktap_plan single 50

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
kmem_onlined() { is_same "$(driver_of "$DIRECT_DAX")" kmem && is_gt "$(node_kb "$dn")" 0; }
check "kmem onlined the direct device as node $dn memory" kmem_onlined

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
# One value a file in sysfs; the header's tables (members, owners) in debugfs.
S=/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched
T=/sys/kernel/debug/cxl_switched/$PORTAL_DAX
size=$(($(region_size "$PORTAL_REGION")))
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
diag "portal node $pn, direct node $dn, region $size bytes, memory block $block bytes"
# What the portal onlines: the region minus its header block (a region no
# larger than a block, or one not read, fails the checks built on it).
online_kb=$(((size - block) / 1024))
online_ok() {
	is_gt "$block" 0 && is_gt "$size" "$block" && num "$pn" "the portal's node"
}
check "one dmesg line gives the decision: switched, with the switch path" \
	sh -c "dmesg | grep 'cxl_switched $PORTAL_DAX: $PORTAL_REGION: switched (root0/.*/$(endpoint_of "$PORTAL_MEM"), serial' | grep -q 'node $pn is a Switched node'"
holds_online() { online_ok && is_eq "$(node_kb "$pn")" "$online_kb"; }
check "node $pn holds the region minus the header block" holds_online
# The managed pages of node $pn's Movable zone (the zone's own line, not a
# later node's): a zone not found fails.
all_movable() {
	online_ok || return 1
	awk -v n="$pn" -v want="$online_kb" '$1 == "Node" { z = ($2 == n ",") ? $4 : "" }
		z == "Movable" && $1 == "managed" { m = $2; f = 1 }
		END { if (!f) { print "no managed line in node " n ", zone Movable"; exit 1 }
			if (m * 4 != want) { print "Movable managed " m " pages, want " want " kB"; exit 1 } }' /proc/zoneinfo
}
check "all of it is in ZONE_MOVABLE" all_movable
# The header block's line starts with the portal's base (iomem pads
# addresses with zeros); an unread base fails rather than match any "0-".
iomem_portal() {
	num "$PORTAL_BASE" "the portal's base" || return 1
	grep -q 'System RAM (cxl_switched)' /proc/iomem &&
		grep -q "^[ 0]*$(printf %x $((PORTAL_BASE)))-.* : cxl_switched header" /proc/iomem
}
check "/proc/iomem: System RAM (cxl_switched) and the reserved header block" iomem_portal
# Every node's type, node $pn among them.
types_switched() {
	num "$pn" "the portal's node" || return 1
	_ts_seen=0
	for _ts_n in /sys/devices/system/node/node[0-9]*; do
		_ts_t=$(cat "$_ts_n/memory_type_name") || return 1
		if [ "$_ts_n" = "/sys/devices/system/node/node$pn" ]; then
			_ts_seen=1
			is_same "$_ts_t" Switched || return 1
		else
			[ -z "$_ts_t" ] || { echo "$_ts_n: memory_type_name '$_ts_t', want none"; return 1; }
		fi
	done
	[ "$_ts_seen" = 1 ] || { echo "no /sys/devices/system/node/node$pn"; return 1; }
}
check "node $pn memory_type_name is Switched, every other node's is empty" types_switched
sysfs_portal() {
	online_ok || return 1
	is_eq "$(val "$S/node")" "$pn" && is_eq "$(val "$S/size")" "$size" &&
		is_eq "$(val "$S/header_size")" "$block" && is_eq "$(val "$S/online_size")" $((size - block)) &&
		is_same "$(val "$S/region")" "$PORTAL_REGION" || return 1
	_sp=$(val "$S/switch_path") || return 1
	is_same "$(echo "$_sp" | tr / ' ' | sed 's/ / > /g')" "$(memdev_path "$PORTAL_MEM")"
}
check "sysfs: node, size, header, online size and switch path of the portal" sysfs_portal
formatted_uuid() {
	is_nonempty "$PORTAL_REGION" "the portal region" || return 1
	_uu=$(val "$S/portal_uuid") || return 1
	dmesg | grep -q "$PORTAL_REGION: empty portal formatted as $_uu"
}
check "the empty portal was formatted, with one dmesg line naming its UUID" formatted_uuid
member_of_all() {
	online_ok || return 1
	_nb=$(((size - block) / block))
	is_eq "$(val "$S/epoch")" 1 && is_eq "$(val "$S/lease_ms")" 5000 &&
		grep -q ' live epoch 1 heartbeat [0-9]* self$' "$T/members" || return 1
	is_same "$(val "$S/owned_blocks")" "$(seq -s, 0 $((_nb - 1)))" || return 1
	_hs=$(val "$S/host_slot") && num "$_hs" "host_slot" &&
		is_same "$(val "$T/owners")" "0-$((_nb - 1)) slot $_hs epoch 1" || return 1
	# Coherency: each block's cached lines dropped before it was onlined.
	grep -q "^invalidate: $_nb block(s), last [0-9]* us$" "$T/coherency" || { cat "$T/coherency"; return 1; }
}
check "sysfs and debugfs: this host is a member (slot, epoch 1, lease), owns every data block, invalidated each before onlining it" member_of_all
# Both reads must be numbers: `[ $b -gt $a ]` on two empty reads is true.
beat() { awk '/self/ { print $6 }' "$T/members"; }
heartbeat_grows() {
	_hb_a=$(beat) || return 1
	sleep 3
	_hb_b=$(beat) || return 1
	is_gt "$_hb_b" "$_hb_a"
}
check "the heartbeat runs: the slot's generation grows" heartbeat_grows
check "pagetypeinfo: Switched rows for node $pn's zones only" \
	sh -c "grep -q '^Node *$pn, zone *Movable, type *Switched ' /proc/pagetypeinfo && ! grep -E ', type +Switched ' /proc/pagetypeinfo | grep -vq '^Node *$pn,'"
# One Switched row and at least one other, with their counts: no Switched
# row (or no rows at all) fails instead of comparing nothing.
switched_sum() {
	num "$pn" "the portal's node" || return 1
	awk -v n="$pn" '$1 == "Node" && $2 == n "," && $4 == "Movable," && $5 == "type" {
		t = $6; if (t == "Switched") s++; else o++
		for (i = 7; i <= NF; i++) if (t == "Switched") sw[i] = $i; else sum[i] += $i; k = NF }
		END { if (s != 1 || o < 1 || k < 7) { print "node " n " Movable: " s + 0 " Switched row(s), " o + 0 " other row(s), " k + 0 " fields"; exit 1 }
			for (i = 7; i <= k; i++) if (sw[i] != sum[i]) { print "order " i - 7 ": " sw[i] " vs " sum[i]; exit 1 } }' /proc/pagetypeinfo
}
check "pagetypeinfo: the Switched row is the sum of the zone's migrate-type rows" switched_sum
# The other nodes' rows, before and after, both read and not empty (two
# empty lists would compare equal).
rows_unchanged() {
	num "$pn" "the portal's node" || return 1
	rows | grep -v "^Node *$pn," >/tmp/rows.after
	grep -v "^Node *$pn," /tmp/rows.before >/tmp/rows.before.other
	val /tmp/rows.before.other >/dev/null && val /tmp/rows.after >/dev/null &&
		diff /tmp/rows.before.other /tmp/rows.after
}
check "pagetypeinfo: every other row as in the same boot without the driver" rows_unchanged
# tier_of NODELIST: the number of the memory tier a nodelist file is in.
tier_of() { basename "${1%/nodelist}" | tr -dc 0-9; }
tier_below() {
	num "$pn" "the portal's node" || return 1
	_tb_t=$(grep -lx "$pn" /sys/devices/virtual/memory_tiering/memory_tier*/nodelist) || { echo "no tier holds node $pn alone"; return 1; }
	_tb_d=$(grep -l '^0' /sys/devices/virtual/memory_tiering/memory_tier*/nodelist | head -1)
	is_nonempty "$_tb_d" "DRAM's tier (node 0)" || return 1
	is_gt "$(tier_of "$_tb_t")" "$(tier_of "$_tb_d")"
}
check "node $pn sits alone in a memory tier below DRAM's" tier_below
check "numactl --hardware lists node $pn with its size" \
	sh -c "numactl --hardware | grep -q '^node $pn size: $(((size - block) >> 20)) MB'"

# ---- userspace works unchanged ----
h=$(hog --membind="$pn")
heap_on() { is_gt "$(anon_on "$h" "$pn")" 32 && is_lt "$(anon_on "$h" 0)" 64; }
check "numactl --membind=$pn: the process's heap is on node $pn" heap_on
diag "membind hog $h: $(anon_on "$h" "$pn") anon pages on node $pn, $(anon_on "$h" 0) on node 0"
kill "$h"
wait "$h" 2>/dev/null
# migrated PID FROM TO PAGES: migratepages moves at least PAGES anonymous
# pages of PID to node TO (PAGES 0, a hog without pages, fails).
migrated() {
	is_gt "$4" 0 || { echo "the hog had no pages on node $2 to move"; return 1; }
	migratepages "$1" "$2" "$3" || return 1
	_n=$(anon_on "$1" "$3")
	is_ge "$_n" "$4" || { echo "'$_n' anonymous pages on node $3, want at least $4"; return 1; }
}
# maps_on PID NODE: lines of PID's numa_maps with pages on NODE; fails
# without PID's numa_maps (a missing file is not "no pages").
maps_on() {
	num "$1" "maps_on: the pid" && num "$2" "maps_on: the node" || return 1
	val "/proc/$1/numa_maps" >/dev/null || return 1
	grep -c "N$2=" "/proc/$1/numa_maps"
	return 0
}
h=$(hog)
before=$(anon_on "$h" 0)
check "migratepages $h 0 $pn moves a running process's pages onto the portal" \
	migrated "$h" 0 "$pn" $((before * 9 / 10))
moved_back() { migratepages "$h" "$pn" 0 && is_eq "$(maps_on "$h" "$pn")" 0; }
check "migratepages $h $pn 0 moves them back" moved_back
kill "$h"
wait "$h" 2>/dev/null
check "move_pages(2) moves 64 pages onto node $pn and back, status and query agree" \
	cxlsw-movepages "$pn" 64

# ---- unload and load again, twice ----
# removed [busy]: rmmod removes the portal's memory (once the node is idle,
# unless pages are expected in use).
removed() {
	[ "$1" = busy ] || wait_idle "$pn" 30 || return 1
	dmesg -c >/dev/null
	rmmod cxl_switched || return 1
	is_eq "$(node_kb "$pn")" 0 || { echo "node $pn still has $(node_kb "$pn") kB"; return 1; }
	[ -z "$(cat "/sys/devices/system/node/node$pn/memory_type_name" 2>/dev/null)" ] || { echo "type still set"; return 1; }
	lacks cxl_switched /proc/iomem || return 1
	is_nonempty "$PORTAL_REGION" "the portal region" &&
		dmesg | grep -q "$PORTAL_REGION: node $pn removed"
}
taken() {
	modprobe cxl_switched "$@" || return 1
	wait_driver "$PORTAL_DAX" cxl_switched 20 || return 1
	online_ok && is_eq "$(val "$S/node")" "$pn" && is_eq "$(node_kb "$pn")" "$online_kb" &&
		is_same "$(val "/sys/devices/system/node/node$pn/memory_type_name")" Switched
}
for round in 1 2; do
	check "rmmod (round $round) removes node $pn's memory and its type" removed
	check "modprobe (round $round) takes the portal again" taken
done

# ---- the direct device is declined: handed over by hand, it goes back ----
declined() {
	is_nonempty "$DIRECT_DAX" "the direct dax device" || return 1
	dmesg -c >/dev/null
	echo "$DIRECT_DAX" >/sys/bus/dax/drivers/cxl_switched/bind 2>/dev/null && { echo "bind succeeded"; return 1; }
	[ -z "$(driver_of "$DIRECT_DAX")" ] || { echo "bound to $(driver_of "$DIRECT_DAX")"; return 1; }
	dmesg | grep -q "cxl_switched $DIRECT_DAX: $DIRECT_REGION: direct-attached (root0/port[0-9]*/endpoint[0-9]*), left to dax/kmem or device_dax"
}
back_to_kmem() {
	echo "$DIRECT_DAX" >/sys/bus/dax/drivers/kmem/bind && is_same "$(driver_of "$DIRECT_DAX")" kmem &&
		is_gt "$(node_kb "$dn")" 0
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
	is_nonempty "$PORTAL_DAX" "the portal's dax device" || return 1
	modprobe cxl_switched switched=0 || return 1
	sleep 1
	_bn_d=$(driver_of "$PORTAL_DAX")
	rmmod cxl_switched
	[ -z "$_bn_d" ] || { echo "$PORTAL_DAX bound to $_bn_d"; return 1; }
}
check "rmmod before the parameter checks" removed
check "switched=7 is refused at load, with a message" refused_param
# The lab's /etc/modprobe.d gives host_index, and the pinned tree refuses a
# parameter given twice (modprobe.d and modprobe's command line): these
# load the module with insmod, which reads no configuration.
ko=/lib/modules/$(uname -r)/kernel/drivers/cxl_switched/cxl_switched.ko
no_index() {
	_ni='host_index=-1: not 0-63 (a host sharing a portal needs its own); not loaded'
	_ni0=$(dmesg | grep -c "$_ni")
	insmod "$ko" 2>/dev/null && { rmmod cxl_switched; return 1; }
	is_gt "$(dmesg | grep -c "$_ni")" "$_ni0"
}
big_index() {
	_bi='host_index=64: not 0-63 (a host sharing a portal needs its own); not loaded'
	insmod "$ko" host_index=64 2>/dev/null && { rmmod cxl_switched; return 1; }
	dmesg | grep -q "$_bi"
}
check "a host without a host_index is refused at load, with a message" no_index
check "host_index=64 is refused at load, with a message" big_index
check "switched=0 binds nothing" binds_nothing

# ---- unload with pages in use: they are moved off ----
check "modprobe cxl_switched" taken
h=$(hog --membind="$pn")
holds_pages() { is_gt "$(anon_on "$h" "$pn")" 32; }
check "a process holds pages on node $pn" holds_pages
check "rmmod migrates them off and removes the node's memory" removed busy
lives_on() { kill -0 "$h" && is_eq "$(maps_on "$h" "$pn")" 0; }
check "the process lives on, its pages moved off node $pn" lives_on
kill "$h"
wait "$h" 2>/dev/null

# ---- pages that cannot be moved off: unload fails, nothing is lost ----
pinned() { pin_pages "$pn" 8; }
kept() {
	dmesg -c >/dev/null
	# Offlining waits for the pinned pages; a fatal signal ends the wait.
	timeout -s KILL 20 rmmod cxl_switched
	# grep's 1 is "read, no such line" (2, an unread file, fails too).
	grep -q '^cxl_switched ' /proc/modules
	[ $? -eq 1 ] || { echo "still loaded (or /proc/modules unread)"; return 1; }
	dmesg | grep -q "$PORTAL_REGION: node $pn not removed: offlining failed (EINTR), pages could not be moved off; its memory stays online" || { dmesg | tail -5; return 1; }
	# The blocks holding the pinned pages stay; the others may go.
	is_gt "$(node_kb "$pn")" 0 || { echo "node $pn has no memory left"; return 1; }
	is_same "$(val "/sys/devices/system/node/node$pn/memory_type_name")" Switched
}
refused_reload() {
	is_nonempty "$PORTAL_DAX" "the portal's dax device" || return 1
	dmesg -c >/dev/null
	modprobe cxl_switched || return 1
	sleep 1
	[ -z "$(driver_of "$PORTAL_DAX")" ] || { echo "$PORTAL_DAX bound to $(driver_of "$PORTAL_DAX")"; return 1; }
	dmesg | grep -q "$PORTAL_REGION: refused: header block .* is claimed already"
}
check "modprobe cxl_switched" taken
check "cxlsw-pin holds 8 pages of node $pn in a pipe, where they cannot migrate" pinned
check "rmmod, killed while offlining waits, leaves the portal online and typed, with a message" kept
keeps_pages() { _kp=$(val /tmp/pin.pid) && kill -0 "$_kp" && is_gt "$(maps_on "$_kp" "$pn")" 0; }
check "the pinning process keeps its pages" keeps_pages
kill "$(cat /tmp/pin.pid)"
check "a new load refuses the portal still online, with a message" refused_reload
check "the system is healthy: node $pn still allocates" \
	numactl --membind="$pn" -- sh -c 'x=$(seq 1 10000); [ -n "$x" ]'
check "rmmod cxl_switched at the end" rmmod cxl_switched
