# Helpers for the guest init and the scenarios (busybox sh).

log() { echo "cxlsw: $*" >/dev/kmsg; }

cmdline_arg() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "$1="*) echo "${w#*=}"; return 0 ;; esac
	done
	return 1
}

# ---- KTAP on fd 3 ----
KTAP_N=0
ktap_plan() { # NAME COUNT
	echo "KTAP version 1" >&3
	echo "# Subtest: $1" >&3
	echo "1..$2" >&3
}
ok() { KTAP_N=$((KTAP_N + 1)); echo "ok $KTAP_N $*" >&3; }
notok() { KTAP_N=$((KTAP_N + 1)); echo "not ok $KTAP_N $*" >&3; }
diag() { echo "# $*" >&3; }
# check DESCRIPTION COMMAND...: one test point; on failure the command's
# output goes out as KTAP diagnostics.
check() {
	_d=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		ok "$_d"
	else
		notok "$_d"
		sed 's/^/# /' /tmp/check.out >&3
	fi
	diag "at $(cut -d' ' -f1 /proc/uptime) s"
}

# ---- CXL topology ----
# wait_for PATH SECONDS
wait_for() {
	_i=0
	while [ ! -e "$1" ]; do
		[ $_i -ge $(($2 * 10)) ] && return 1
		sleep 0.1
		_i=$((_i + 1))
	done
}

# endpoint_of MEMDEV: the endpoint port whose uport is the memdev (the
# endpoint is a child of its parent port in sysfs, not of the memdev).
endpoint_of() {
	_m=$(readlink -f "/sys/bus/cxl/devices/$1")
	for _e in /sys/bus/cxl/devices/endpoint*; do
		[ -e "$_e/uport" ] || continue
		[ "$(readlink -f "$_e/uport")" = "$_m" ] && { basename "$_e"; return 0; }
	done
	return 1
}

# Number of CXL ports between the root and a memdev's endpoint: 1 for a
# memdev under a host bridge, 2 or more when a switch sits in between.
memdev_depth() {
	_ep=$(endpoint_of "$1") || { echo 0; return; }
	readlink -f "/sys/bus/cxl/devices/$_ep" | tr '/' '\n' | grep -c '^port[0-9]'
}

# memdev_path MEMDEV: "root0 > port2 > port3 > endpoint5"
memdev_path() {
	_ep=$(endpoint_of "$1") || return 1
	readlink -f "/sys/bus/cxl/devices/$_ep" | tr '/' '\n' |
		grep -E '^(root|port|endpoint)[0-9]' | tr '\n' ' ' | sed 's/ $//; s/ / > /g'
}

# memdev_where TEST: the first memdev whose port depth passes
# "[ DEPTH TEST ]", e.g. memdev_where "-ge 2" for a switched one.
memdev_where() {
	for m in /sys/bus/cxl/devices/mem*; do
		m=$(basename "$m")
		[ "$(memdev_depth "$m")" $1 ] && { echo "$m"; return 0; }
	done
	return 1
}
switched_memdev() { memdev_where "-ge 2"; }
direct_memdev() { memdev_where "-eq 1"; }

# region_of MEMDEV: the region whose target is the memdev's endpoint decoder.
region_of() {
	for r in /sys/bus/cxl/devices/region*; do
		[ -e "$r/target0" ] || continue
		t=$(cat "$r/target0")
		ep=$(basename "$(dirname "$(readlink -f /sys/bus/cxl/devices/$t)")")
		[ "$ep" = "$(endpoint_of "$1")" ] && { basename "$r"; return 0; }
	done
	return 1
}

# dax_of REGION: the dax device of a committed RAM region.
dax_of() {
	d=$(ls -d /sys/bus/cxl/devices/$1/dax_region*/dax*.* 2>/dev/null | head -1)
	[ -n "$d" ] && basename "$d"
}

region_base() { cat "/sys/bus/cxl/devices/$1/resource"; }
region_size() { cat "/sys/bus/cxl/devices/$1/size"; }
dax_node() { cat "/sys/bus/dax/devices/$1/target_node"; }

# create_ram_region MEMDEV: one x1 RAM region over the whole memdev, through
# sysfs (Debian's cxl-cli 76 answers "region type 'ram' not supported yet").
create_ram_region() {
	_m=$1
	_ep=$(endpoint_of "$_m") || return 1
	_ed=/sys/bus/cxl/devices/decoder${_ep#endpoint}.0
	echo ram >"$_ed/mode" || return 1
	echo "$(cat /sys/bus/cxl/devices/$_m/ram/size)" >"$_ed/dpa_size" || return 1
	# The root decoder (CFMWS) whose target is the memdev's host bridge: in
	# QEMU the host bridge UID is the pxb-cxl bus number, pci0000:<bus>.
	_hb=$(readlink -f "/sys/bus/cxl/devices/$_m" | sed -n 's|^/sys/devices/pci0000:\([0-9a-f]*\)/.*|\1|p')
	for rd in /sys/bus/cxl/devices/decoder0.*; do
		[ "$(cat "$rd/target_list")" = "$((0x$_hb))" ] || continue
		name=$(cat "$rd/create_ram_region") || continue
		echo "$name" >"$rd/create_ram_region" || continue
		r=/sys/bus/cxl/devices/$name
		echo 4096 >"$r/interleave_granularity"
		echo 1 >"$r/interleave_ways"
		echo "$(cat "$_ed/dpa_size")" >"$r/size"
		if echo "$(basename "$_ed")" >"$r/target0" 2>/dev/null &&
			echo 1 >"$r/commit" && echo "$name" >/sys/bus/cxl/drivers/cxl_region/bind; then
			log "$_m: region $name created through sysfs on $(basename "$rd")"
			return 0
		fi
		echo "$name" >"$rd/delete_region" 2>/dev/null
	done
	return 1
}

# lab_find_memdevs: wait for both memdevs and their endpoints; set PORTAL_MEM
# (behind the switch) and DIRECT_MEM.
lab_find_memdevs() {
	wait_for /sys/bus/cxl/devices/mem1 60 || { log "CXL memdevs did not appear"; return 1; }
	for m in mem0 mem1; do
		_i=0
		while ! endpoint_of "$m" >/dev/null; do
			[ $_i -ge 300 ] && { log "$m: no endpoint"; return 1; }
			sleep 0.1
			_i=$((_i + 1))
		done
	done
	PORTAL_MEM=$(switched_memdev) || { log "no switched memdev"; return 1; }
	DIRECT_MEM=$(direct_memdev) || { log "no direct memdev"; return 1; }
	export PORTAL_MEM DIRECT_MEM
}

# lab_direct_up: the direct device's region, onlined by kmem as upstream does.
lab_direct_up() {
	create_ram_region "$DIRECT_MEM" || { log "direct region failed"; return 1; }
	DIRECT_REGION=$(region_of "$DIRECT_MEM")
	DIRECT_DAX=$(dax_of "$DIRECT_REGION")
	modprobe kmem
	export DIRECT_REGION DIRECT_DAX
}

# lab_portal_region: the portal device's region and dax device.
lab_portal_region() {
	create_ram_region "$PORTAL_MEM" || { log "portal region failed"; return 1; }
	PORTAL_REGION=$(region_of "$PORTAL_MEM")
	PORTAL_DAX=$(dax_of "$PORTAL_REGION")
	PORTAL_BASE=$(region_base "$PORTAL_REGION")
	log "portal $PORTAL_MEM $PORTAL_REGION $PORTAL_DAX base $PORTAL_BASE"
	export PORTAL_REGION PORTAL_DAX PORTAL_BASE
}

# lab_bringup: both regions, the portal's dax device kept off the page
# allocator (device_dax, no cxl_switched) and the direct one onlined by kmem:
# the raw portal, for scenarios that exchange words through it.
lab_bringup() {
	lab_find_memdevs || return 1
	lab_portal_region || return 1
	if [ -n "$PORTAL_DAX" ] && [ ! -e "/sys/bus/dax/devices/$PORTAL_DAX/driver" ]; then
		echo "$PORTAL_DAX" >/sys/bus/dax/drivers/device_dax/new_id 2>/dev/null
	fi
	lab_direct_up || return 1
	log "portal $PORTAL_MEM $PORTAL_REGION $PORTAL_DAX; direct $DIRECT_MEM $DIRECT_REGION $DIRECT_DAX"
}

# driver_of DAX: the driver a dax device is bound to, or nothing.
driver_of() {
	[ -e "/sys/bus/dax/devices/$1/driver" ] && basename "$(readlink -f "/sys/bus/dax/devices/$1/driver")"
}

# wait_driver DAX DRIVER SECONDS: wait until DAX is bound to DRIVER ("" for
# unbound).
wait_driver() {
	_i=0
	while [ "$(driver_of "$1")" != "$2" ]; do
		[ $_i -ge $(($3 * 10)) ] && { echo "$1 bound to '$(driver_of "$1")', want '$2'"; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
}

# node_kb N: MemTotal of node N in kB (0 for a node without memory).
node_kb() {
	[ -e "/sys/devices/system/node/node$1/meminfo" ] || { echo 0; return; }
	awk '/MemTotal/ {print $4}' "/sys/devices/system/node/node$1/meminfo"
}

# wait_idle N SECONDS: wait until node N's memory is free but for what the
# per-CPU free lists may hold (a killed process's memory is freed
# asynchronously; the driver drains those lists before it counts).
wait_idle() {
	_i=0
	while [ "$(awk '/MemUsed/ {print $4}' "/sys/devices/system/node/node$1/meminfo")" -gt 1024 ]; do
		[ $_i -ge $(($2 * 10)) ] && { grep MemUsed "/sys/devices/system/node/node$1/meminfo"; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
}

# anon_on PID NODE: pages of PID's anonymous mappings on NODE (numa_maps).
anon_on() {
	awk -v n="N$2=" '/anon=/ { for (i = 1; i <= NF; i++) if (index($i, n) == 1) s += substr($i, length(n) + 1) } END { print s + 0 }' "/proc/$1/numa_maps"
}

# hog [NUMACTL ARGS]: start a shell that fills about 200 KiB of heap (memory
# behind QEMU's CXL devices is slow: keep it small) and waits;
# prints its pid.
hog() {
	# Waits on a FIFO nobody opens: no forks while it waits, so every page
	# it has is its own.
	_script='x=$(seq 1 30000); echo ready; mkfifo /tmp/hog.fifo.$$; read _ </tmp/hog.fifo.$$'
	rm -f /tmp/hog.$$
	if [ $# -gt 0 ]; then
		numactl "$@" -- sh -c "$_script" >/tmp/hog.$$ 2>&1 &
	else
		sh -c "$_script" >/tmp/hog.$$ 2>&1 &
	fi
	_p=$!
	_i=0
	until grep -q ready /tmp/hog.$$ 2>/dev/null; do
		[ $_i -ge 600 ] && break
		sleep 0.1
		_i=$((_i + 1))
	done
	# The file's page may sit on the node the hog is bound to.
	rm -f /tmp/hog.$$
	echo $_p
}

hex_add() { printf '0x%x' $(($1 + $2)); }

# node_is_empty N: node N has no memory in the page allocator.
node_is_empty() {
	[ -e "/sys/devices/system/node/node$1/meminfo" ] || return 0
	_kb=$(awk '/MemTotal/ {print $4}' "/sys/devices/system/node/node$1/meminfo")
	echo "node $1 MemTotal ${_kb} kB"
	[ "$_kb" -eq 0 ]
}

# poll_word ADDR VALUE SECONDS: wait until the 64-bit word at physical
# address ADDR (in a portal, through /dev/mem) reads VALUE.
poll_word() {
	_i=0
	while [ $_i -lt $(($3 * 10)) ]; do
		_v=$(devmem "$1" 64)
		[ $((_v)) -eq $(($2)) ] && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "read $_v at $1, want $2"
	return 1
}

# The complement a host answers a token with.
answer_of() { printf '0x%x' $(($1 ^ 0x3fffffffffffffff)); }
