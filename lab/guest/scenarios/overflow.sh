# Scenario overflow: peer data is untrusted input. A hostile (or buggy) peer
# writes records with valid checksums whose counters are at their largest
# value: a host slot claiming with the largest bakery ticket and generation,
# then the member table's record at the largest generation. A host that
# binds the portal must refuse it with one log line and an errno, online
# nothing, and print no oops (the lab kernel has Rust overflow checks on:
# an unchecked `+ 1` on those values panics). The records come from
# checkers/portal_spec.py, written from the spec.
ktap_plan overflow 7

lab_bringup || { diag "lab bring-up failed: see the console log"; return 0; }
pn=$(dax_node "$PORTAL_DAX")

# put_record FILE OFFSET: write the 256 bytes of FILE at portal offset OFFSET.
put_record() {
	_a=$((PORTAL_BASE + $2))
	for _w in $(od -An -tx8 -v -N256 "$1"); do
		devmem "$(printf '0x%x' $_a)" 64 "0x$_w" || return 1
		_a=$((_a + 8))
	done
}
# put_both FILE OFFSET: FILE into both copies of the record at OFFSET.
put_both() { put_record "$1" "$2" && put_record "$1" $(($2 + 256)); }
# refused_join WHY: binding fails with EUCLEAN; one line says WHY.
refused_join() {
	dmesg -c >/dev/null
	if echo "$PORTAL_DAX" >/sys/bus/dax/drivers/cxl_switched/bind 2>/tmp/bind.err; then
		echo "bound"; return 1
	fi
	grep -q 'Structure needs cleaning' /tmp/bind.err || { cat /tmp/bind.err; return 1; }
	[ "$(dmesg | grep -c "$PORTAL_REGION: refused: joining the portal as host_index=[0-9]*: $1; nothing onlined")" -eq 1 ] ||
		{ dmesg | tail -5; return 1; }
}
nothing() {
	[ -z "$(driver_of "$PORTAL_DAX")" ] && [ "$(node_kb "$pn")" -eq 0 ] && ! grep -q 'System RAM (cxl_switched)' /proc/iomem
}

if [ "$(driver_of "$PORTAL_DAX")" = device_dax ]; then
	echo "$PORTAL_DAX" >/sys/bus/dax/drivers/device_dax/unbind
fi
modprobe cxl_switched
check "the empty portal is formatted and joined" \
	sh -c "dmesg | grep -q '$PORTAL_REGION: empty portal formatted as' && [ \"\$(basename \$(readlink -f /sys/bus/dax/devices/$PORTAL_DAX/driver))\" = cxl_switched ]"
echo "$PORTAL_DAX" >/sys/bus/dax/drivers/cxl_switched/unbind
slot3=$((4096 + 3 * 512))
members=$(devmem "$(printf '0x%x' $((PORTAL_BASE + 0x50)))" 64)
check "a peer's slot 3 claims with the largest ticket and generation" \
	put_both /lab/images/hostile-slot $slot3
check "the join is refused: the peer's ticket leaves no larger one" \
	refused_join "a peer's lock ticket is at its largest value"
check "nothing onlined, the device stays unbound" nothing
forge_members() {
	put_both /lab/images/zero $slot3 && put_both /lab/images/hostile-members $((members))
}
check "slot 3 free again, the member table's record 0 at the largest generation" forge_members
check "the join is refused: no member record can be newer" \
	refused_join "a table record's generation is at its largest value"
check "nothing onlined, the device stays unbound" nothing
