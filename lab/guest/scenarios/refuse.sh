# Scenario (d), the boot check refuses what it must not join: a portal
# holding foreign data, a header with a flipped byte (bad CRC32C), a header
# of version 1 (whose hosts reclaim without fencing), a header of a newer
# major version. Each is written into the raw portal's first
# page (/lab/images, made from the spec by checkers/portal_spec.py); binding
# cxl_switched then fails with one dmesg line naming the reason, and
# nothing is onlined. Formatting over foreign data takes the administrator
# naming the portal by its serial number (reformat=).
ktap_plan refuse 13

lab_bringup || { diag "lab bring-up failed: see the console log"; return 0; }
pn=$(dax_node "$PORTAL_DAX")
serial=$(cat "/sys/bus/cxl/devices/$PORTAL_MEM/serial")
modprobe cxl_switched

# put_image FILE: write the first 256 bytes of FILE at the portal's start
# (all 32 words: a missing or short FILE wrote nothing and passed).
put_image() {
	num "$PORTAL_BASE" "the portal's base" || return 1
	_a=$((PORTAL_BASE))
	_pi_n=0
	for _w in $(od -An -tx8 -v -N256 "$1"); do
		devmem "$(printf '0x%x' $_a)" 64 "0x$_w" || return 1
		_a=$((_a + 8))
		_pi_n=$((_pi_n + 1))
	done
	is_eq "$_pi_n" 32 || { echo "$1: $_pi_n words written, want 32"; return 1; }
}
# refused KIND ERRNO REASON: the bind fails with ERRNO, one line says REASON.
refused() {
	dmesg -c >/dev/null
	if [ "$(driver_of "$PORTAL_DAX")" = device_dax ]; then
		echo "$PORTAL_DAX" >/sys/bus/dax/drivers/device_dax/unbind || return 1
	fi
	put_image "/lab/images/$1" || return 1
	if echo "$PORTAL_DAX" >/sys/bus/dax/drivers/cxl_switched/bind 2>/tmp/bind.err; then
		echo "bound"; return 1
	fi
	grep -q "$2" /tmp/bind.err || { cat /tmp/bind.err; return 1; }
	[ "$(dmesg | grep -c "$PORTAL_REGION: refused: portal header: $3.*nothing onlined")" -eq 1 ] || { dmesg | tail -5; return 1; }
}
# nothing: a named device unbound, a node read as empty, /proc/iomem read
# without the portal's RAM (an empty PORTAL_DAX, pn or iomem passed).
nothing() {
	is_nonempty "$PORTAL_DAX" "the portal's dax device" || return 1
	[ -z "$(driver_of "$PORTAL_DAX")" ] || { echo "$PORTAL_DAX bound to $(driver_of "$PORTAL_DAX")"; return 1; }
	is_eq "$(node_kb "$pn")" 0 && lacks 'System RAM (cxl_switched)' /proc/iomem
}
check "foreign data: refused" refused foreign 'Structure needs cleaning' 'not a portal header'
check "foreign data: nothing onlined, the device stays unbound" nothing
check "a flipped byte: refused" refused corrupt 'Structure needs cleaning' 'portal header checksum mismatch'
check "a flipped byte: nothing onlined" nothing
check "version 1 (reclaims without fencing): refused" refused older 'Protocol not supported' 'portal header of major version 1, whose hosts reclaim without fencing'
check "version 1: nothing onlined" nothing
check "a newer major version: refused" refused newer 'Protocol not supported' 'portal header of a newer major version'
check "a newer major version: nothing onlined" nothing
# The version half-word, read from a known base (an unset base read
# physical address 8).
version_kept() {
	num "$PORTAL_BASE" "the portal's base" || return 1
	is_eq "$(devmem "$(printf '0x%x' $((PORTAL_BASE + 8)))" 16)" 3
}
check "the header was left as it was (still version 3)" version_kept
rmmod cxl_switched
put_image /lab/images/foreign
# A named device left unbound (an empty PORTAL_DAX's "driver" is absent).
other_serial() {
	is_nonempty "$PORTAL_DAX" "the portal's dax device" || return 1
	dmesg -c >/dev/null
	modprobe cxl_switched reformat=0x7777 && sleep 2 &&
		{ [ ! -e "/sys/bus/dax/devices/$PORTAL_DAX/driver" ] || { echo "$PORTAL_DAX bound to $(driver_of "$PORTAL_DAX")"; return 1; }; } &&
		dmesg | grep -q 'refused: portal header: not a portal header' && rmmod cxl_switched
}
check "reformat= naming another serial does not format it" other_serial
# The serial read: "reformat= asks" must name it.
own_serial() {
	num "$serial" "$PORTAL_MEM's serial" || return 1
	dmesg -c >/dev/null
	modprobe cxl_switched reformat="$serial" claim_pct=100 && sleep 2 &&
		dmesg | grep -q "header refused (not a portal header (unknown magic)); formatted over as reformat=$serial asks"
}
check "reformat=$serial formats over the foreign data, with a warning" own_serial
reformatted() {
	is_same "$(driver_of "$PORTAL_DAX")" cxl_switched && is_gt "$(node_kb "$pn")" 0 &&
		is_eq "$(val "/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched/epoch")" 1
}
check "the reformatted portal is joined and onlined" reformatted
check "debugfs: the member table lists this host, live in epoch 1" \
	grep -q ' live epoch 1 heartbeat [0-9]* self' "/sys/kernel/debug/cxl_switched/$PORTAL_DAX/members"
