# Scenario export: the source half of a handoff through /dev/cxl_switched.
# Hosts a and b share a portal. On a, the lab workload runs on the portal's
# node and pauses; a exports its pages to b (EXPORT: pinned, written back, a
# manifest written into the blocks it offers, the blocks offered in the
# header). The harness then runs the independent checker on the portal file,
# which must find the offer's manifest sound. b sees the offer addressed to
# it, through the header alone, and cancels it as the target; a sees the
# handoff end and unpins the pages; the workload resumes and its result is
# the one computed without any of this. Bad requests (a page off the node,
# no such process, an unmapped range, no portal on the node, a target that
# is not a member) each give an errno and one log line and pin nothing; the
# ioctl fuzzer then throws random and boundary requests at the device.
host=$(cmdline_arg cxlsw.host)
LEASE=10000
MIB=16
STEPS=3000
BLOB=100

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 60 >/dev/null
pn=$(dax_node "$PORTAL_DAX")

# wait_handoffs N SECONDS: until this host is a party to N handoffs.
wait_handoffs() {
	_wh=$(($(now_cs) + $2 * 100))
	until [ "$(handoffs | wc -l)" -eq "$1" ]; do
		[ "$(now_cs)" -lt $_wh ] || { handoffs; return 1; }
		sleep 0.5
	done
}
# refused WHAT LOGLINE ARGS...: `portalctl handoff export ARGS` fails, the
# kernel logs LOGLINE once, and this host is then party to no handoff.
refused() {
	_what=$1 _line=$2
	shift 2
	dmesg -c >/dev/null
	! portalctl handoff export "$@" >/tmp/refused.out 2>&1 || { echo "$_what: exported"; return 1; }
	is_eq "$(dmesg | grep -c "$_line")" 1 || { dmesg | tail -3; return 1; }
	is_eq "$(handoffs | wc -l)" 0
}

case "$host" in
a)
	ktap_plan "export" 14
	check "both hosts are live members of one portal" wait_live 2 120
	bslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	expect=$(cxlsw-workload --mib $MIB --steps $STEPS --expect | awk '/^result/ { print $2 }')
	mkfifo /tmp/wl.in
	numactl --membind="$pn" -- cxlsw-workload --mib $MIB --steps $STEPS --pause-after $((STEPS / 2)) \
		</tmp/wl.in >/tmp/wl.out 2>&1 &
	exec 5>/tmp/wl.in
	paused() { until_ok 120 grep -q '^paused at' /tmp/wl.out; }
	check "the workload ($MIB MiB on node $pn) pauses half way" paused
	set -- $(awk '/^paused at/ { print $5, $7, $9 }' /tmp/wl.out)
	addr=$1 len=$2 pid=$3
	diag "workload pid $pid at $addr, $len bytes; b is slot $bslot"
	on_portal() { is_ge "$(anon_on "$pid" "$pn")" $((len / 4096)); }
	check "all its pages are on the portal's node" on_portal
	# A page off the node: a second workload in DRAM.
	mkfifo /tmp/dram.in
	cxlsw-workload --mib 1 --steps 10 --pause-after 5 </tmp/dram.in >/tmp/dram.out 2>&1 &
	exec 6>/tmp/dram.in
	until_ok 60 grep -q '^paused at' /tmp/dram.out
	set -- $(awk '/^paused at/ { print $5, $7, $9 }' /tmp/dram.out)
	check "a page off the portal's node is refused (EINVAL, one line)" \
		refused "off the node" "not the portal's node $pn" --pid "$3" --node "$pn" --to "$bslot" --range "$1:$2"
	check "no such process is refused (ESRCH, one line)" \
		refused "no process" "export of pid 999999: no such process" --pid 999999 --node "$pn" --to "$bslot" --range "$addr:$len"
	check "an unmapped range is refused (EFAULT, one line)" \
		refused "unmapped" "0x1000 is not mapped" --pid "$pid" --node "$pn" --to "$bslot" --range 0x1000:4096
	check "a node without a portal is refused (ENODEV, one line)" \
		refused "no portal" "no portal on node 0" --pid "$pid" --node 0 --to "$bslot" --range "$addr:$len"
	check "a target that is not a live member is refused (EINVAL, one line)" \
		refused "no target" "offering to slot 15: the target is not a live member" --pid "$pid" --node "$pn" --to 15 --range "$addr:$len"
	exec 6>&-
	head -c $BLOB /dev/urandom >/tmp/blob
	dmesg -c >/dev/null
	export_it() {
		portalctl handoff export --pid "$pid" --node "$pn" --to "$bslot" --range "$addr:$len" --blob /tmp/blob >/tmp/export.out 2>&1 ||
			{ cat /tmp/export.out; return 1; }
		sed 's/^/# /' /tmp/export.out >&3
		dmesg | grep -q "pid $pid: $((len / 4096)) pages in .* $BLOB blob bytes, .* offered to slot $bslot"
	}
	check "the paused workload's pages are exported to b (one line)" export_it
	listed() {
		handoffs | awk -v p=$((len / 4096)) -v b="$bslot" -v pid="$pid" \
			'{ n++ } $4 == "offered" && $5 == "source" && $6 == b && $8 == p && $9 == 100 && $10 == pid && $11 == p { ok++ }
			END { exit !(n == 1 && ok == 1) }' || { handoffs; return 1; }
	}
	check "LIST shows the offer: source, to b, every page listed and pinned" listed
	# The harness checks the portal file now (spec_check), while the offer is in flight.
	diag "cxlsw: offer ready"
	ended() {
		until_ok 240 in_state returned || { handoffs; return 1; }
		until_ok 30 sh -c "dmesg | grep -q 'ended: $((len / 4096)) pages of pid $pid unpinned; returned'" &&
			handoffs | awk -v pid="$pid" '$4 == "returned" && $5 == "source" && $10 == pid && $11 == 0 { ok = 1 } END { exit !ok }' ||
			{ handoffs; dmesg | tail -3; return 1; }
		set -- $(handoffs | awk '{ print $1, $2, $3 }')
		portalctl handoff cancel --node "$1" --index "$2" --id "$3" && wait_handoffs 0 10
	}
	check "b cancels the offer; a sees it returned, its pages unpinned, and acknowledges it" ended
	echo go >&5
	exec 5>&-
	resumed() {
		until_ok 300 grep -q '^steps' /tmp/wl.out && is_same "$(awk '/^result/ { print $2 }' /tmp/wl.out)" "$expect"
	}
	check "the workload resumes and ends with the result computed without the export" resumed
	fuzz() {
		dmesg -c >/dev/null
		cxlsw-ioctl-fuzz --iterations 300 >/tmp/fuzz.out 2>&1 || { tail -5 /tmp/fuzz.out; return 1; }
		grep '^ioctl\|^fuzz' /tmp/fuzz.out | sed 's/^/# /' >&3
		grep -q '^fuzz: done' /tmp/fuzz.out
	}
	check "the ioctl fuzzer ends (random and boundary requests, wrong fds)" fuzz
	check "the fuzzer left no handoff behind" wait_handoffs 0 10
	check "the ioctl fuzzer left no pinned page: no export in LIST, none logged" \
		sh -c "! dmesg | grep -q 'offered to slot'"
	;;
b)
	ktap_plan "export" 4
	check "both hosts are live members of one portal" wait_live 2 120
	aslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	before=$(owned)
	offered() {
		wait_handoffs 1 300 &&
			handoffs | awk -v a="$aslot" '$4 == "offered" && $5 == "target" && $6 == a && $8 > 0 && $9 == 100 { ok = 1 } END { exit !ok }'
	}
	check "b sees a's offer addressed to it, through the header alone" offered
	set -- $(handoffs | awk '{ print $1, $2, $3 }')
	# The harness checks the portal file at a's marker; give it the time to.
	sleep 15
	dmesg -c >/dev/null
	cancel_it() {
		portalctl handoff cancel --node "$1" --index "$2" --id "$3" &&
			dmesg | grep -q "handoff $2 id $3 cancelled"
	}
	check "b, the target, cancels the offer (one line)" cancel_it "$@"
	check "the blocks stay a's: b owns what it owned, and no handoff is left" \
		sh -c "[ \"\$(tr ',' '\\n' <$S/owned_blocks | grep -c '^[0-9]')\" -eq $before ] && [ -z \"\$(portalctl handoff list | awk 'NR > 1 && NF >= 11')\" ]"
	;;
esac
