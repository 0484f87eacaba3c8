# The demo: what an operator wants to see on each of two hosts that share a
# portal. Plain text on the scenario port, with KTAP test points for the
# parts the harness checks.
host=$(cmdline_arg cxlsw.host)
token=$(cmdline_arg cxlsw.token)
answer=$(answer_of "$token")
out() { echo "$*" >&3; }
section() { out ""; out "---- $* ----"; }

# Until hosts agree through the handoff header on who owns which block, only
# one of them may online a portal: host a runs cxl_switched, host b keeps the
# portal raw (device_dax) and talks to a through the header block.
if [ "$host" = a ]; then
	lab_find_memdevs && lab_direct_up && modprobe cxl_switched && lab_portal_region ||
		{ diag "lab bring-up failed: see the console log"; return 0; }
	wait_driver "$PORTAL_DAX" cxl_switched 20 >/dev/null
else
	# The portal's region before kmem, and device_dax for it by name.
	lab_bringup || { diag "lab bring-up failed: see the console log"; return 0; }
fi
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

section "sharing the portal"
ktap_plan "demo" 3
if [ "$host" = a ]; then
	check "host a: the portal is Switched node $pn" test "$(cat /sys/devices/system/node/node$pn/memory_type_name)" = Switched
else
	check "host b: the portal stays raw, with device_dax" test "$(driver_of "$PORTAL_DAX")" = device_dax
fi
w0=$PORTAL_BASE
w1=$(hex_add "$PORTAL_BASE" 8)
if [ "$host" = a ]; then
	check "host a wrote $token at portal offset 0" devmem "$w0" 64 "$token"
	check "host a read host b's answer $answer at portal offset 8" poll_word "$w1" "$answer" 240
else
	check "host $host read host a's $token at portal offset 0" poll_word "$w0" "$token" 240
	check "host $host wrote its answer $answer at portal offset 8" devmem "$w1" 64 "$answer"
fi
[ "$host" = a ] && rmmod cxl_switched
