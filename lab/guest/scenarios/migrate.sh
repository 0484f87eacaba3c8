# Scenario migrate: a workload moves from host a to host b through the
# portal, by metadata alone. On a, the lab workload (64 MiB) runs on the
# portal's node and pauses half way; a exports it to b (EXPORT) and the
# harness checks the portal file while the offer is in flight. On b, the
# workload is started again from its memory alone: `cxlsw-workload --import`
# accepts the handoff (ACCEPT reads the manifest from the portal), maps the
# pages at the addresses they had on a (MAP: ZONE_DEVICE pages of the portal,
# none copied) and runs the other half of its steps, while `portalctl handoff
# pull` moves its pages into b's memory (PULL, the kernel's migrate_vma).
# Its result must equal the one computed without any of this, and once
# pulled its memory is ordinary anonymous memory of b's node 0 (numa_maps).
# Then a ends the old process and releases: its pins go, it offlines the
# handoff's blocks, and b onlines them as its own.
host=$(cmdline_arg cxlsw.host)
LEASE=10000
MIB=64
STEPS=3000
BLOB=100

portal_member_up $LEASE || { diag "lab bring-up failed: see the console log"; return 0; }
wait_driver "$PORTAL_DAX" cxl_switched 60 >/dev/null
pn=$(dax_node "$PORTAL_DAX")

# node_total_kb NODE: MemTotal of a node, in KiB.
node_total_kb() { awk '/MemTotal/ { print $4 }' "/sys/devices/system/node/node$1/meminfo"; }

case "$host" in
a)
	ktap_plan "migrate" 8
	check "both hosts are live members of one portal" wait_live 2 120
	bslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	mkfifo /tmp/wl.in
	numactl --membind="$pn" -- cxlsw-workload --mib $MIB --steps $STEPS --pause-after $((STEPS / 2)) \
		</tmp/wl.in >/tmp/wl.out 2>&1 &
	exec 5>/tmp/wl.in
	paused() { until_ok 300 grep -q '^paused at' /tmp/wl.out; }
	check "the workload ($MIB MiB on node $pn) pauses half way" paused
	set -- $(awk '/^paused at/ { print $5, $7, $9 }' /tmp/wl.out)
	addr=$1 len=$2 pid=$3
	pages=$((len / 4096))
	diag "workload pid $pid at $addr, $len bytes; b is slot $bslot"
	on_portal() { is_ge "$(anon_on "$pid" "$pn")" $pages; }
	check "all its pages are on the portal's node" on_portal
	head -c $BLOB /dev/urandom >/tmp/blob
	dmesg -c >/dev/null
	export_it() {
		portalctl handoff export --pid "$pid" --node "$pn" --to "$bslot" --range "$addr:$len" --blob /tmp/blob >/tmp/export.out 2>&1 ||
			{ cat /tmp/export.out; return 1; }
		sed 's/^/# /' /tmp/export.out >&3
		dmesg | grep -q "pid $pid: $pages pages in .* $BLOB blob bytes, .* offered to slot $bslot"
	}
	check "the paused workload's pages are exported to b (one line)" export_it
	blocks=$(handoffs | awk '{ print $7 }')
	owned_before=$(owned)
	total_before=$(node_total_kb "$pn")
	# The harness checks the portal file now (spec_check), while the offer is in flight.
	diag "cxlsw: offer ready"
	check "b accepts, maps and pulls the workload: the header says pulled" until_ok 900 in_state pulled
	ended() {
		kill -9 "$pid" && until_ok 60 sh -c "! [ -d /proc/$pid ]"
	}
	check "the old process is ended" ended
	exec 5>&-
	dmesg -c >/dev/null
	release_it() {
		portalctl handoff release --node "$pn" --index "$(handoffs | awk '{ print $2 }')" \
			--id "$(handoffs | awk '{ print $3 }')" >/tmp/release.out 2>&1 || { cat /tmp/release.out; return 1; }
		dmesg | grep -q "released: $pages pages unpinned, $blocks block(s) offlined for the target" ||
			{ dmesg | tail -5; return 1; }
	}
	check "a releases: the pins go and the handoff's $blocks block(s) go offline (one line)" release_it
	gone() {
		[ -z "$(handoffs)" ] && is_eq "$(owned)" $((owned_before - blocks)) &&
			is_eq "$(node_total_kb "$pn")" $((total_before - blocks * 131072))
	}
	check "no handoff is left; a owns and has online $blocks block(s) fewer" gone
	;;
b)
	ktap_plan "migrate" 8
	check "both hosts are live members of one portal" wait_live 2 120
	aslot=$(awk '!/self/ && / live / { print $1 }' "$T/members")
	expect=$(cxlsw-workload --mib $MIB --steps $STEPS --expect | awk '/^result/ { print $2 }')
	offered() {
		until_ok 600 in_state offered &&
			handoffs | awk -v a="$aslot" '$4 == "offered" && $5 == "target" && $6 == a && $8 > 0 && $9 == 100 { ok = 1 } END { exit !ok }'
	}
	check "b sees a's offer addressed to it, through the header alone" offered
	set -- $(handoffs | awk '{ print $1, $2, $3, $7, $8 }')
	nid=$1 index=$2 id=$3 blocks=$4 pages=$5
	owned_before=$(owned)
	# The harness checks the portal file at a's marker; give it the time to.
	sleep 15
	dmesg -c >/dev/null
	mkfifo /tmp/wl.in
	cxlsw-workload --import "$nid:$index:$id" --steps $STEPS </tmp/wl.in >/tmp/wl.out 2>&1 &
	exec 5>/tmp/wl.in
	imported() {
		until_ok 300 grep -q '^imported' /tmp/wl.out || { cat /tmp/wl.out; return 1; }
		set -- $(awk '/^imported/ { print $2, $9 }' /tmp/wl.out)
		is_eq "$1" "$pages" && wpid=$2 &&
			dmesg | grep -q "handoff $index id $id: $pages pages mapped into pid $wpid in [0-9]* us, none copied" ||
			{ dmesg | tail -5; return 1; }
	}
	check "the workload is imported: $pages pages mapped where they were, none copied (one line)" imported
	wpid=$(awk '/^imported/ { print $9 }' /tmp/wl.out)
	mapped() {
		handoffs | awk -v p="$pages" -v w="$wpid" '$4 == "accepted" && $5 == "target" && $10 == w && $11 <= p { ok = 1 } END { exit !ok }' ||
			{ handoffs; return 1; }
	}
	check "LIST shows the import: accepted, mapped into the new process" mapped
	pull_it() {
		portalctl handoff pull --node "$nid" --index "$index" --id "$id" --to-node 0 >/tmp/pull.out 2>&1 ||
			{ tail -3 /tmp/pull.out; return 1; }
		tail -1 /tmp/pull.out | sed 's/^/# /' >&3
		grep -q "^pulled $pages pages in" /tmp/pull.out && in_state pulled
	}
	check "its pages are pulled into node 0 while it runs; the header says pulled" pull_it
	resumed() {
		until_ok 600 grep -q '^done, waiting' /tmp/wl.out || { tail -3 /tmp/wl.out; return 1; }
		is_same "$(awk '/^result/ { print $2 }' /tmp/wl.out)" "$expect"
	}
	check "the workload ends on b with the result computed without the migration" resumed
	in_dram() {
		is_ge "$(anon_on "$wpid" 0)" "$pages" && is_eq "$(anon_on "$wpid" "$nid")" 0 ||
			{ cat "/proc/$wpid/numa_maps" | head -5; return 1; }
	}
	check "its memory is ordinary anonymous memory of node 0 (numa_maps)" in_dram
	echo go >&5
	exec 5>&-
	handed() {
		until_ok 600 sh -c "[ -z \"\$(portalctl handoff list | awk 'NR > 1 && NF >= 11')\" ]" &&
			until_ok 60 sh -c "dmesg | grep -q 'onlined $blocks block(s) handed over'" &&
			is_eq "$(owned)" $((owned_before + blocks))
	}
	check "a releases; b owns the $blocks block(s) and onlines them" handed
	;;
esac
