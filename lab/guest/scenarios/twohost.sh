# Scenario (b): two hosts boot at once on the same portal backing file. Host
# "a" writes a per-run token at the portal's first word; host "b" must read
# it and answer with the token's complement at the second word, which "a"
# must read. The harness starts both with a zeroed portal file, so a pass
# can only come from the other guest's write.
host=$(cmdline_arg cxlsw.host)
token=$(cmdline_arg cxlsw.token)
answer=$(answer_of "$token")
ktap_plan "twohost" 4

lab_bringup || { diag "lab bring-up failed: see the console log"; return 0; }
check "portal region $PORTAL_REGION is committed" \
	test "$(cat /sys/bus/cxl/devices/$PORTAL_REGION/commit 2>&1)" = 1
diag "host $host: portal at $PORTAL_BASE, token $token"


w0=$PORTAL_BASE
w1=$(hex_add "$PORTAL_BASE" 8)
# put_word ADDR VALUE: devmem with no VALUE reads the word, and passed as
# a write; poll_word fails on an empty ADDR or VALUE likewise.
put_word() {
	num "$1" "the address" && num "$2" "the word to write" || return 1
	devmem "$1" 64 "$2"
}
case "$host" in
a)
	check "host a writes the token into the portal" put_word "$w0" "$token"
	check "host a reads the token back" poll_word "$w0" "$token" 1
	check "host a reads host b's answer from the portal" poll_word "$w1" "$answer" 240
	;;
b)
	check "host b reads host a's token from the portal" poll_word "$w0" "$token" 240
	check "host b writes its answer into the portal" put_word "$w1" "$answer"
	check "host b reads its answer back" poll_word "$w1" "$answer" 1
	;;
*)
	notok "host name '$host' is a or b"
	;;
esac
