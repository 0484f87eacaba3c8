# cxl_switched lab. The two commands a newcomer needs:
#
#   make demo    build everything, boot two hosts sharing a portal
#   make check   build everything, run every test tier, print a summary
#
# Both install what they need first (scripts/setup-host.sh, idempotent).

SHELL := /bin/bash
S := scripts
LAB := lab/harness/lab.py

.PHONY: all setup source kernel tools initramfs demo check check-guest \
	check-tools style series bench-fabric bench-portal bench-online clean help

all: initramfs

help:
	@sed -n '1,8p' Makefile

setup:
	@$(S)/setup-host.sh

source: setup
	@$(S)/fetch-kernel.sh

kernel: source
	@$(S)/kernel.sh build

tools: setup
	@$(S)/build-tools.sh

initramfs: kernel tools
	@$(S)/mkinitramfs.sh

demo: initramfs
	@python3 $(LAB) demo

check: setup source
	@$(S)/check.sh

# Pieces of `make check`, for iterating.
check-tools: tools
	@cd tools && cargo test --release -q

check-guest: initramfs
	@python3 $(LAB) check

style: source
	@$(S)/kernel.sh style

# The project's whole change as a mailing-list-ready git format-patch set.
series: source
	@$(S)/kernel.sh export

# Benchmarks print ratios against a baseline measured in the same run.
bench-fabric: tools
	@python3 tools/bench/fabric_bench.py

# Onlining the portal: cxl_switched against kmem, same boot, same region.
# The portal header: boot check of a 1 TiB portal, lock latency under contention.
bench-portal: tools
	@tools/target/release/portal-bench

bench-online: initramfs
	@python3 $(LAB) run bench-online
	@grep '^# bench' build/logs/run/bench-online-a.ktap.log | sed 's/^# //'

clean:
	rm -rf build tools/target
