# Bench (not a test): time to online the portal with cxl_switched against
# kmem onlining the same region, in the same boot, alternating, ROUNDS times.
# Both are timed around the write(2) that binds the dax device (cxlsw-time);
# cxl_switched onlines the region minus its header block, kmem all of it, so
# the figures are also given per GiB onlined.
# bench-online-smoke.sh sets ROUNDS=1: the test command's round, which
# must produce the figures.
ROUNDS=${ROUNDS:-3}
ktap_plan bench-online 4
lab_find_memdevs && lab_direct_up || { diag "lab bring-up failed"; return 0; }
# The host is alone on the portal: it claims every block, as kmem takes the whole region.
modprobe cxl_switched claim_pct=100
lab_portal_region || { diag "portal region failed"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 20 >/dev/null
D=/sys/bus/dax/drivers
block=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
sw_total=0
km_total=0
# What cxl_switched onlines is this host's share of the portal, read after
# each of its binds (it is 0 until the portal is joined and onlined).
sw_bytes=$(val "/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched/online_size")
km_bytes=$(($(region_size "$PORTAL_REGION")))
ok_rounds=0
r=1
# No round counts without both sizes (a MiB at least: the figures divide
# by them) and a number of microseconds from each cxlsw-time.
if ! { num "$sw_bytes" "online_size" && is_gt $((sw_bytes >> 20)) 0 && is_gt $((km_bytes >> 20)) 0; } 2>/tmp/bench.err; then
	diag "no rounds: online_size '$sw_bytes', region size '$km_bytes': $(cat /tmp/bench.err)"
	r=$((ROUNDS + 1))
fi
while [ $r -le $ROUNDS ]; do
	echo "$PORTAL_DAX" >$D/cxl_switched/unbind || break
	km=$(cxlsw-time $D/kmem/new_id "$PORTAL_DAX") && num "$km" "kmem's time" || break
	[ "$(driver_of "$PORTAL_DAX")" = kmem ] || break
	daxctl offline-memory "$PORTAL_DAX" >/dev/null 2>&1 || break
	echo "$PORTAL_DAX" >$D/kmem/unbind || break
	echo "$PORTAL_DAX" >$D/kmem/remove_id || break
	sw=$(cxlsw-time $D/cxl_switched/bind "$PORTAL_DAX") && num "$sw" "cxl_switched's time" || break
	[ "$(driver_of "$PORTAL_DAX")" = cxl_switched ] || break
	sw_bytes=$(val "/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched/online_size") &&
		is_gt $((sw_bytes >> 20)) 0 || break
	km_total=$((km_total + km))
	sw_total=$((sw_total + sw))
	diag "bench coherency: $(tr '\n' ';' <"/sys/kernel/debug/cxl_switched/$PORTAL_DAX/coherency") $(dmesg | grep -o 'written back, last [0-9]* us' | tail -1) (block $((block >> 20)) MiB)"
	diag "bench round $r: kmem $km us for $((km_bytes >> 20)) MiB, cxl_switched $sw us for $((sw_bytes >> 20)) MiB (kernel-measured $(cat /sys/bus/dax/devices/$PORTAL_DAX/cxl_switched/online_us) us)"
	ok_rounds=$r
	r=$((r + 1))
done
check "all $ROUNDS rounds bound both drivers" is_eq "$ok_rounds" "$ROUNDS"
check "kmem onlined something" is_gt "$km_total" 0
check "cxl_switched onlined something" is_gt "$sw_total" 0
if [ "$ok_rounds" -gt 0 ] && [ "$km_total" -gt 0 ] && [ "$sw_total" -gt 0 ] && [ "$km_total" -ge "$ok_rounds" ]; then
	km=$((km_total / ok_rounds))
	sw=$((sw_total / ok_rounds))
	# per GiB, in microseconds
	km_g=$((km * 1024 / (km_bytes >> 20)))
	sw_g=$((sw * 1024 / (sw_bytes >> 20)))
	diag "bench online: kmem $km us ($km_g us/GiB), cxl_switched $sw us ($sw_g us/GiB), mean of $ok_rounds"
	figures="$km_g $sw_g"
	[ "$km_g" -gt 0 ] &&
		diag "bench ratio cxl_switched/kmem: $((sw * 100 / km))% of kmem's time, $((sw_g * 100 / km_g))% per GiB"
fi
check "the figures: kmem's and cxl_switched's time per GiB" sh -c "[ -n '${figures:-}' ] && [ ${km_g:-0} -gt 0 ] && [ ${sw_g:-0} -gt 0 ]"
rmmod cxl_switched
