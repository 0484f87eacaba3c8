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

# lab_bringup: wait for both memdevs, create both regions, keep the portal's
# dax device off the page allocator (device_dax) and let kmem take the direct
# one, as a distro's module autoload would.
lab_bringup() {
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
	create_ram_region "$PORTAL_MEM" || { log "portal region failed"; return 1; }
	create_ram_region "$DIRECT_MEM" || { log "direct region failed"; return 1; }
	PORTAL_REGION=$(region_of "$PORTAL_MEM")
	DIRECT_REGION=$(region_of "$DIRECT_MEM")
	PORTAL_DAX=$(dax_of "$PORTAL_REGION")
	DIRECT_DAX=$(dax_of "$DIRECT_REGION")
	if [ -n "$PORTAL_DAX" ] && [ ! -e "/sys/bus/dax/devices/$PORTAL_DAX/driver" ]; then
		echo "$PORTAL_DAX" >/sys/bus/dax/drivers/device_dax/new_id 2>/dev/null
	fi
	modprobe kmem
	PORTAL_BASE=$(region_base "$PORTAL_REGION")
	log "portal $PORTAL_MEM $PORTAL_REGION $PORTAL_DAX base $PORTAL_BASE; direct $DIRECT_MEM $DIRECT_REGION $DIRECT_DAX"
	export PORTAL_MEM DIRECT_MEM PORTAL_REGION DIRECT_REGION PORTAL_DAX DIRECT_DAX PORTAL_BASE
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
