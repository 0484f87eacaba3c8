# Bench (not a test): time to online the portal with cxl_switched against
# kmem onlining the same region, in the same boot, alternating, ROUNDS times.
# Both are timed around the write(2) that binds the dax device (cxlsw-time);
# cxl_switched onlines the region minus its header block, kmem all of it, so
# the figures are also given per GiB onlined.
ROUNDS=3
ktap_plan bench-online 3
lab_find_memdevs && lab_direct_up || { diag "lab bring-up failed"; return 0; }
modprobe cxl_switched
lab_portal_region || { diag "portal region failed"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 20 >/dev/null
D=/sys/bus/dax/drivers
sw_total=0
km_total=0
sw_bytes=$(cat "/sys/bus/dax/devices/$PORTAL_DAX/cxl_switched/online_size")
km_bytes=$(($(region_size "$PORTAL_REGION")))
ok_rounds=0
r=1
while [ $r -le $ROUNDS ]; do
	echo "$PORTAL_DAX" >$D/cxl_switched/unbind || break
	km=$(cxlsw-time $D/kmem/new_id "$PORTAL_DAX") || break
	[ "$(driver_of "$PORTAL_DAX")" = kmem ] || break
	daxctl offline-memory "$PORTAL_DAX" >/dev/null 2>&1 || break
	echo "$PORTAL_DAX" >$D/kmem/unbind || break
	echo "$PORTAL_DAX" >$D/kmem/remove_id || break
	sw=$(cxlsw-time $D/cxl_switched/bind "$PORTAL_DAX") || break
	[ "$(driver_of "$PORTAL_DAX")" = cxl_switched ] || break
	km_total=$((km_total + km))
	sw_total=$((sw_total + sw))
	diag "bench round $r: kmem $km us for $((km_bytes >> 20)) MiB, cxl_switched $sw us for $((sw_bytes >> 20)) MiB (kernel-measured $(cat /sys/bus/dax/devices/$PORTAL_DAX/cxl_switched/online_us) us)"
	ok_rounds=$r
	r=$((r + 1))
done
check "all $ROUNDS rounds bound both drivers" test "$ok_rounds" -eq "$ROUNDS"
check "kmem onlined something" test "$km_total" -gt 0
check "cxl_switched onlined something" test "$sw_total" -gt 0
if [ "$ok_rounds" -gt 0 ] && [ "$km_total" -gt 0 ] && [ "$sw_total" -gt 0 ]; then
	km=$((km_total / ok_rounds))
	sw=$((sw_total / ok_rounds))
	# per GiB, in microseconds
	km_g=$((km * 1024 / (km_bytes >> 20)))
	sw_g=$((sw * 1024 / (sw_bytes >> 20)))
	diag "bench online: kmem $km us ($km_g us/GiB), cxl_switched $sw us ($sw_g us/GiB), mean of $ok_rounds"
	diag "bench ratio cxl_switched/kmem: $((sw * 100 / km))% of kmem's time, $((sw_g * 100 / km_g))% per GiB"
fi
rmmod cxl_switched
