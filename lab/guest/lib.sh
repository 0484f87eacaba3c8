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
# output goes out as KTAP diagnostics. (The command runs in this shell: the
# description is kept in a name no scenario function uses.)
check() {
	_check_d=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		ok "$_check_d"
	else
		notok "$_check_d"
		sed 's/^/# /' /tmp/check.out >&3
	fi
	diag "at $(cut -d' ' -f1 /proc/uptime) s"
}

# ---- values a check reads: empty, missing or non-numeric fails ----
# `[ $b -gt $a ]` on two empty values is `[ -gt ]`, true in busybox sh, and
# `[ "$x" = "$y" ]` is true when both reads failed: a check must not pass
# on what it could not read. These helpers fail, with a line on stderr
# (a failed check's diagnostics) naming the value, on an empty, missing or
# non-numeric input. Their own variables are _num_*, _ar, _cmp_*, _lk_*.

# num VALUE [WHAT]: VALUE is an integer: decimal (an optional leading -) or
# 0x-hex, nothing else (no blanks, no second line).
num() {
	case $1 in
	'')
		echo "${2:-value} is empty, want a number" >&2
		return 1
		;;
	0[xX]*) _num_d=${1#0[xX]}; case $_num_d in '' | *[!0-9a-fA-F]*) ;; *) return 0 ;; esac ;;
	-*) _num_d=${1#-}; case $_num_d in '' | *[!0-9]*) ;; *) return 0 ;; esac ;;
	*[!0-9]*) ;;
	*) return 0 ;;
	esac
	echo "${2:-value} '$1' is not a number" >&2
	return 1
}

# _arith NUMBER: NUMBER as an arithmetic operand, in $_ar (a decimal's
# leading zeros dropped: $((010)) is octal).
_arith() {
	case $1 in
	0[xX]*) _ar=$1 ;;
	-*) _ar=${1#-}; _ar=${_ar#"${_ar%%[!0]*}"}; _ar=-${_ar:-0} ;;
	*) _ar=${1#"${1%%[!0]*}"}; _ar=${_ar:-0} ;;
	esac
}

# _cmp NAME OP A B: A OP B, both numbers (OP an arithmetic comparison).
_cmp() {
	num "$3" "$1 '$3' '$4': left side" && num "$4" "$1 '$3' '$4': right side" || return 1
	_arith "$3"
	_cmp_a=$_ar
	_arith "$4"
	_cmp_b=$_ar
	[ $(($_cmp_a $2 $_cmp_b)) -eq 1 ] && return 0
	echo "$1: want $3 $2 $4, false" >&2
	return 1
}
# is_gt A B, is_ge, is_lt, is_le, is_eq, is_ne: the integer comparison,
# failing when either side is empty or not a number.
is_gt() { _cmp is_gt '>' "$1" "$2"; }
is_ge() { _cmp is_ge '>=' "$1" "$2"; }
is_lt() { _cmp is_lt '<' "$1" "$2"; }
is_le() { _cmp is_le '<=' "$1" "$2"; }
is_eq() { _cmp is_eq '==' "$1" "$2"; }
is_ne() { _cmp is_ne '!=' "$1" "$2"; }

# is_nonempty VALUE [WHAT]
is_nonempty() {
	[ -n "$1" ] && return 0
	echo "${2:-value} is empty" >&2
	return 1
}

# is_same A B: the strings are equal and not empty.
is_same() {
	is_nonempty "$1" "is_same '$1' '$2': left side" && is_nonempty "$2" "is_same '$1' '$2': right side" || return 1
	[ "$1" = "$2" ] && return 0
	echo "is_same: '$1' is not '$2'" >&2
	return 1
}

# val FILE: print FILE's content; fail if FILE is missing, unreadable or
# empty (trailing newlines dropped, as by $(cat FILE)).
val() {
	[ -e "$1" ] || { echo "$1 is missing" >&2; return 1; }
	_val_v=$(cat "$1") || { echo "$1 could not be read" >&2; return 1; }
	[ -n "$_val_v" ] || { echo "$1 is empty" >&2; return 1; }
	printf '%s\n' "$_val_v"
}

# lacks PATTERN [FILE]: no line of FILE (standard input without one)
# matches PATTERN (a basic regular expression), and there is input: a bare
# `! grep -q` also passes on a missing file or a failed command. Prints the
# matching lines otherwise.
lacks() {
	if [ $# -ge 2 ]; then
		_lk_in=$(val "$2") || return 1
		_lk_src=$2
	else
		_lk_in=$(cat)
		_lk_src="the input"
		is_nonempty "$_lk_in" "$_lk_src (lacks '$1')" || return 1
	fi
	printf '%s\n' "$_lk_in" | grep -e "$1"
	case $? in
	0) echo "$_lk_src has lines matching '$1'"; return 1 ;;
	1) return 0 ;;
	*) echo "lacks: grep failed on $_lk_src" >&2; return 1 ;;
	esac
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
# unbound). An empty DAX fails: it would be "unbound" at once.
wait_driver() {
	is_nonempty "$1" "wait_driver: the dax device" || return 1
	_i=0
	while [ "$(driver_of "$1")" != "$2" ]; do
		[ $_i -ge $(($3 * 10)) ] && { echo "$1 bound to '$(driver_of "$1")', want '$2'"; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
}

# node_kb N: MemTotal of node N in kB (0 for a node without memory). Fails,
# printing nothing, when N is not a node number or MemTotal cannot be read:
# "node  kB" must not read as an empty node.
node_kb() {
	num "$1" "node_kb: the node" || return 1
	[ -e "/sys/devices/system/node/node$1/meminfo" ] || { echo 0; return 0; }
	_nk=$(awk '/MemTotal/ {print $4}' "/sys/devices/system/node/node$1/meminfo") &&
		num "$_nk" "node $1 MemTotal" || return 1
	echo "$_nk"
}

# wait_idle N SECONDS: wait until node N's memory is free but for what the
# per-CPU free lists may hold (a killed process's memory is freed
# asynchronously; the driver drains those lists before it counts).
# A MemUsed that cannot be read fails (it used to end the wait as idle).
wait_idle() {
	num "$1" "wait_idle: the node" || return 1
	_i=0
	while :; do
		_wu=$(awk '/MemUsed/ {print $4}' "/sys/devices/system/node/node$1/meminfo") &&
			num "$_wu" "node $1 MemUsed" || return 1
		[ "$_wu" -gt 1024 ] || return 0
		[ $_i -ge $(($2 * 10)) ] && { grep MemUsed "/sys/devices/system/node/node$1/meminfo"; return 1; }
		sleep 0.1
		_i=$((_i + 1))
	done
}

# anon_on PID NODE: pages of PID's anonymous mappings on NODE (numa_maps).
# Fails, printing nothing, without a PID, a NODE or PID's numa_maps (not 0).
anon_on() {
	num "$1" "anon_on: the pid" && num "$2" "anon_on: the node" || return 1
	[ -r "/proc/$1/numa_maps" ] || { echo "anon_on: /proc/$1/numa_maps is missing" >&2; return 1; }
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

hex_add() { num "$1" "hex_add: left side" && num "$2" "hex_add: right side" && printf '0x%x' $(($1 + $2)); }

# node_is_empty N: node N has no memory in the page allocator.
node_is_empty() {
	num "$1" "node_is_empty: the node" || return 1
	[ -e "/sys/devices/system/node/node$1/meminfo" ] || return 0
	_kb=$(awk '/MemTotal/ {print $4}' "/sys/devices/system/node/node$1/meminfo")
	echo "node $1 MemTotal ${_kb} kB"
	is_eq "$_kb" 0
}

# poll_word ADDR VALUE SECONDS: wait until the 64-bit word at physical
# address ADDR (in a portal, through /dev/mem) reads VALUE. An empty ADDR or
# VALUE fails (as $(( )) both were 0, a zeroed portal's word); so does a
# read that is not a number.
poll_word() {
	num "$1" "poll_word: the address" && num "$2" "poll_word: the value" &&
		num "$3" "poll_word: the seconds" || return 1
	_i=0
	while [ $_i -lt $(($3 * 10)) ]; do
		_v=$(devmem "$1" 64)
		num "$_v" 2>/dev/null && [ $((_v)) -eq $(($2)) ] && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "read '$_v' at $1, want $2"
	return 1
}

# The complement a host answers a token with.
answer_of() { num "$1" "answer_of: the token" && printf '0x%x' $(($1 ^ 0x3fffffffffffffff)); }

# pin_pages NODE N: start cxlsw-pin holding N pages of NODE in a pipe (after
# vmsplice they cannot migrate, so that node's memory cannot be offlined);
# its pid goes to /tmp/pin.pid. Fails unless N pages are pinned on NODE.
pin_pages() {
	num "$1" "node" && num "$2" "pages" || return 1
	numactl --membind="$1" -- cxlsw-pin "$2" >/tmp/pin.out 2>&1 &
	echo $! >/tmp/pin.pid
	_pp=0
	until grep -q "^pinned $2\$" /tmp/pin.out; do
		[ $_pp -ge 300 ] && { cat /tmp/pin.out; return 1; }
		sleep 0.1
		_pp=$((_pp + 1))
	done
	is_ge "$(anon_on "$(cat /tmp/pin.pid)" "$1")" "$2"
}

# ---- the fence channel (ttyS2) to the harness ----
# fence_channel_open: fd 4 is the channel, raw and without echo.
fence_channel_open() {
	[ -c /dev/ttyS2 ] || { echo "no /dev/ttyS2"; return 1; }
	stty -F /dev/ttyS2 raw -echo 2>/dev/null
	exec 4<>/dev/ttyS2
}
# announce_slot SLOT: tells the harness which host slot this host holds.
announce_slot() { num "$1" "host slot" && echo "iam $1" >&4; }
# fence_agent DAX: run in the background. Asks the harness (the lab's power
# switch) to fence every unconfirmed suspect of DAX's portal; when it says
# the host is off, confirms it with portalctl, as an operator's fence script
# would. Logs each confirmation.
fence_agent() {
	_fs=/sys/bus/dax/devices/$1/cxl_switched
	while :; do
		awk '/ unconfirmed$/ { print $1, $2 }' "$_fs/suspects" 2>/dev/null |
			while read -r _slot _uuid; do
				echo "fence $_slot $_uuid" >&4
				if read -r -t 60 _w _ws _wu <&4 && [ "$_w $_ws $_wu" = "off $_slot $_uuid" ]; then
					portalctl portal fence-confirm "$1" --slot "$_slot" --uuid "$_uuid" >/dev/null 2>&1 &&
						log "fence agent: host in slot $_slot ($_uuid) is off; confirmed"
				fi
			done
		sleep 1
	done
}

# ---- a member of the portal ----
# now_cs: uptime in centiseconds (busybox date has no sub-second format).
now_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
# portal_member_up LEASE_MS: the lab bring-up with cxl_switched loaded (an
# empty portal is formatted with that lease); S is the portal's sysfs
# directory (one value a file), T its debugfs one (the header's tables).
portal_member_up() {
	lab_find_memdevs && lab_direct_up && modprobe cxl_switched lease_ms="$1" && lab_portal_region || return 1
	S=/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched
	T=/sys/kernel/debug/cxl_switched/$PORTAL_DAX
}
# live: number of live members in the member table.
live() { grep -c ' live ' "$T/members"; }
# wait_live N SECONDS: until N members are live (on the clock).
wait_live() {
	_wl=$(($(now_cs) + $2 * 100))
	until [ -r "$T/members" ] && [ "$(live)" -eq "$1" ]; do
		[ "$(now_cs)" -lt $_wl ] || { cat "$T/members" 2>&1; return 1; }
		sleep 0.5
	done
}
# owned: blocks this host owns (from owned_blocks, "0,2"); fails, printing
# nothing, when owned_blocks is missing (not "0 blocks").
owned() {
	[ -r "$S/owned_blocks" ] || { echo "$S/owned_blocks is missing" >&2; return 1; }
	tr ',' '\n' <"$S/owned_blocks" | grep -c '^[0-9]'
	return 0
}

# workload_start MIB STEPS [NODE]: starts the lab workload of MIB MiB (on
# NODE's memory if given), to pause half way; fd 5 feeds it (`echo go >&5`
# resumes it). Its output is /tmp/wl.out. Call it outside `check`: it opens
# fd 5 in this shell.
workload_start() {
	num "$1" "workload_start: MiB" && num "$2" "workload_start: steps" || return 1
	rm -f /tmp/wl.in && mkfifo /tmp/wl.in || return 1
	if [ -n "${3:-}" ]; then
		numactl --membind="$3" -- cxlsw-workload --mib "$1" --steps "$2" --pause-after $(($2 / 2)) \
			</tmp/wl.in >/tmp/wl.out 2>&1 &
	else
		cxlsw-workload --mib "$1" --steps "$2" --pause-after $(($2 / 2)) </tmp/wl.in >/tmp/wl.out 2>&1 &
	fi
	exec 5>/tmp/wl.in
}
# workload_paused: until the workload pauses (300 s); sets WL_ADDR, WL_LEN
# and WL_PID from its "paused at" line.
workload_paused() {
	until_ok 300 grep -q '^paused at' /tmp/wl.out || { cat /tmp/wl.out; return 1; }
	set -- $(awk '/^paused at/ { print $5, $7, $9 }' /tmp/wl.out)
	WL_ADDR=$1 WL_LEN=$2 WL_PID=$3
	num "$WL_ADDR" "its address" && num "$WL_LEN" "its length" && num "$WL_PID" "its pid"
}
# workload_import NID INDEX ID STEPS: the lab workload, taken over from
# handoff INDEX (id ID) on node NID (`cxlsw-workload --import`), fed by fd 5
# like workload_start. Call it outside `check`.
workload_import() {
	rm -f /tmp/wl.in && mkfifo /tmp/wl.in || return 1
	cxlsw-workload --import "$1:$2:$3" --steps "$4" </tmp/wl.in >/tmp/wl.out 2>&1 &
	exec 5>/tmp/wl.in
}
# workload_imported PAGES: until the imported workload says it mapped PAGES
# pages (300 s).
workload_imported() {
	until_ok 300 grep -q '^imported' /tmp/wl.out || { cat /tmp/wl.out; return 1; }
	is_eq "$(awk '/^imported/ { print $2 }' /tmp/wl.out)" "$1"
}
# portal_blocks: sets pn (the portal's node), block (the memory block size)
# and blocks (the portal's data blocks: all but the header's).
portal_blocks() {
	pn=$(dax_node "$PORTAL_DAX") &&
		block=$((0x$(cat /sys/devices/system/memory/block_size_bytes))) &&
		blocks=$(($(region_size "$PORTAL_REGION") / block - 1))
}

# owns_all_online: until this host owns every data block of the portal and
# has all of them online (120 s each); needs portal_blocks.
owns_all() { is_eq "$(owned)" "$blocks"; }
all_online() { is_eq "$(node_kb "$pn")" $((blocks * block / 1024)); }
owns_all_online() {
	until_ok 120 owns_all || { owned; return 1; }
	until_ok 120 all_online || { node_kb "$pn"; return 1; }
}

# workload_result: the result the workload printed (empty before it did).
workload_result() { awk '/^result/ { print $2 }' /tmp/wl.out; }

# until_ok SECONDS CMD...: until CMD succeeds (on the clock).
until_ok() {
	_uo=$(($(now_cs) + $1 * 100))
	shift
	until "$@"; do
		[ "$(now_cs)" -lt $_uo ] || return 1
		sleep 0.5
	done
}
# handoffs: the rows of `portalctl handoff list`, "NID INDEX ID STATE ROLE
# PEER BLOCKS PAGES BLOB PID PINNED" (header dropped).
handoffs() { portalctl handoff list | awk 'NR > 1 && NF >= 11'; }
# in_state STATE: this host is party to one handoff, in STATE.
in_state() { [ "$(handoffs | awk -v s="$1" '$4 == s { n++ } END { print n + 0 }')" -eq 1 ]; }
