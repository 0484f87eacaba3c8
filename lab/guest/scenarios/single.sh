# Scenario (a): one host boots; both regions are committed; the portal (under
# a switch) and the direct device are each on a NUMA node of their own; the
# driver loads and unloads, twice.
ktap_plan single 13

lab_bringup || { diag "lab bring-up failed: see the console log"; return 0; }
check "the portal memdev sits under a CXL switch" test -n "$PORTAL_MEM"
check "the control memdev is direct-attached" test -n "$DIRECT_MEM"
diag "portal $PORTAL_MEM: $(memdev_path "$PORTAL_MEM")"
diag "direct $DIRECT_MEM: $(memdev_path "$DIRECT_MEM")"
check "portal region $PORTAL_REGION is committed" \
	test "$(cat /sys/bus/cxl/devices/$PORTAL_REGION/commit 2>&1)" = 1
check "direct region $DIRECT_REGION is committed" \
	test "$(cat /sys/bus/cxl/devices/$DIRECT_REGION/commit 2>&1)" = 1

pn=$(dax_node "$PORTAL_DAX")
dn=$(dax_node "$DIRECT_DAX")
diag "portal node $pn, direct node $dn"
check "portal and direct device are on distinct non-DRAM nodes" \
	sh -c "[ -n '$pn' ] && [ -n '$dn' ] && [ '$pn' != '$dn' ] && [ '$pn' != 0 ] && [ '$dn' != 0 ]"
check "kmem onlined the direct device as node $dn memory" \
	sh -c "grep -q 'System RAM (kmem)' /proc/iomem && [ \$(awk '/MemTotal/ {print \$4}' /sys/devices/system/node/node$dn/meminfo) -gt 0 ]"
check "the portal is not handed to the page allocator" node_is_empty "$pn"

check "every node has an (empty) memory_type_name until a driver names it" \
	sh -c 'for n in /sys/devices/system/node/node[0-9]*; do [ -f $n/memory_type_name ] && [ -z "$(cat $n/memory_type_name)" ] || exit 1; done'
check "pagetypeinfo has no named-type rows while no node is named" \
	sh -c '! grep -E "^Node .*, type " /proc/pagetypeinfo | grep -vE ", type +(Unmovable|Movable|Reclaimable|HighAtomic|CMA|Isolate) "'

for round in 1 2; do
	check "insmod cxl_switched (round $round)" modprobe cxl_switched
	check "rmmod cxl_switched (round $round)" sh -c "rmmod cxl_switched && ! grep -q '^cxl_switched ' /proc/modules"
done
