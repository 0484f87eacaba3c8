# The demo: what an operator wants to see on each of two hosts that share a
# portal. Plain text on the scenario port, with KTAP test points for the
# parts the harness checks.
host=$(cmdline_arg cxlsw.host)
token=$(cmdline_arg cxlsw.token)
answer=$(answer_of "$token")
out() { echo "$*" >&3; }
section() { out ""; out "---- $* ----"; }

lab_bringup || { diag "lab bring-up failed: see the console log"; return 0; }
section "CXL topology"
out "portal  $PORTAL_MEM (serial $(cat /sys/bus/cxl/devices/$PORTAL_MEM/serial)): $(memdev_path "$PORTAL_MEM")   <- switch in the path"
out "direct  $DIRECT_MEM (serial $(cat /sys/bus/cxl/devices/$DIRECT_MEM/serial)): $(memdev_path "$DIRECT_MEM")"
for r in "$PORTAL_REGION" "$DIRECT_REGION"; do
	out "$r: $(region_base "$r") size $(region_size "$r") commit=$(cat /sys/bus/cxl/devices/$r/commit) dax=$(dax_of "$r") node=$(dax_node "$(dax_of "$r")")"
done
pn=$(dax_node "$PORTAL_DAX")
out "portal region is NUMA node $pn; memory of node $pn in the page allocator: $(awk '/MemTotal/ {print $4, $5}' /sys/devices/system/node/node$pn/meminfo 2>/dev/null || echo '0 kB')"
section "NUMA nodes (numactl --hardware)"
numactl --hardware >&3 2>&1
for n in /sys/devices/system/node/node[0-9]*; do
	t=$(cat "$n/memory_type_name" 2>/dev/null)
	out "$(basename "$n") memory_type_name: ${t:-(none)}"
done
section "/proc/pagetypeinfo"
cat /proc/pagetypeinfo >&3
section "driver"
modprobe cxl_switched && grep '^cxl_switched ' /proc/modules >&3
dmesg | grep 'cxl_switched:' | tail -3 >&3
section "portalctl list"
portalctl list >&3 2>&1 || out "(portalctl not available)"

section "sharing the portal"
ktap_plan "demo" 2
w0=$PORTAL_BASE
w1=$(hex_add "$PORTAL_BASE" 8)
if [ "$host" = a ]; then
	check "host a wrote $token at portal offset 0" devmem "$w0" 64 "$token"
	check "host a read host b's answer $answer at portal offset 8" poll_word "$w1" "$answer" 240
else
	check "host $host read host a's $token at portal offset 0" poll_word "$w0" "$token" 240
	check "host $host wrote its answer $answer at portal offset 8" devmem "$w1" 64 "$answer"
fi
rmmod cxl_switched
