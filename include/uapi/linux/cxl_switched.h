/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * cxl_switched: the handoff interface of /dev/cxl_switched.
 *
 * Hosts that share a switched CXL memory device (a portal) hand workloads
 * to one another through it: a source host exports the pages of a paused
 * process that lie on the portal's node, a target host sees the offer in the
 * portal's header, accepts it, maps it and pulls it into its own memory.
 * Documentation/userspace-api/cxl_switched.rst describes the interface.
 *
 * Every request starts with its own size: the kernel refuses a request whose
 * size it does not know (EINVAL) and one that sets a flag or a reserved field
 * it does not know (EINVAL), so that a later version can add fields at the
 * end. The device node is root's (mode 0600).
 */
#ifndef _UAPI_LINUX_CXL_SWITCHED_H
#define _UAPI_LINUX_CXL_SWITCHED_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* The version of this interface. */
#define CXLSW_API_VERSION 1

/**
 * struct cxlsw_version - CXLSW_IOC_VERSION: what this kernel offers.
 * @size: sizeof(struct cxlsw_version), set by the caller.
 * @version: out: CXLSW_API_VERSION of the kernel.
 * @portals: out: portals this host is a member of.
 * @reserved: zero.
 */
struct cxlsw_version {
	__u32 size;
	__u32 version;
	__u32 portals;
	__u32 reserved;
};

/* Values of struct cxlsw_handoff's @state. */
#define CXLSW_OFFERED 1
#define CXLSW_ACCEPTED 2

/* Values of struct cxlsw_handoff's @role. */
#define CXLSW_SOURCE 1
#define CXLSW_TARGET 2

/**
 * struct cxlsw_handoff - one handoff in flight, as CXLSW_IOC_LIST reports it.
 * @id: the handoff's id: with @index, what every later request names.
 * @index: the handoff record's index in the portal's header.
 * @state: CXLSW_OFFERED or CXLSW_ACCEPTED.
 * @role: CXLSW_SOURCE or CXLSW_TARGET: this host's part in it.
 * @peer: the host slot of the other party.
 * @nid: the NUMA node of the portal it is on.
 * @blocks: memory blocks it moves.
 * @pages: 4 KiB pages its manifest lists (0: a handoff of whole blocks).
 * @blob_bytes: bytes of the workload's state that travel beside its pages.
 * @pid: for a source, the process whose pages it pinned (0 otherwise).
 * @pinned: for a source, pages this host still holds for it.
 */
struct cxlsw_handoff {
	__u64 id;
	__u32 index;
	__u32 state;
	__u32 role;
	__u32 peer;
	__s32 nid;
	__u32 blocks;
	__u64 pages;
	__u32 blob_bytes;
	__s32 pid;
	__u64 pinned;
};

/**
 * struct cxlsw_list - CXLSW_IOC_LIST: the handoffs of every portal that
 * this host is a party to.
 * @size: sizeof(struct cxlsw_list).
 * @count: in: room in @handoffs (at most 4096); out: handoffs in flight,
 *	which may be more than the room (then only the room is filled).
 * @handoffs: user pointer to an array of struct cxlsw_handoff.
 */
struct cxlsw_list {
	__u32 size;
	__u32 count;
	__u64 handoffs;
};

/**
 * struct cxlsw_range - a range of a process's virtual addresses.
 * @start: first address, page-aligned.
 * @len: bytes, a multiple of the page size, not zero.
 */
struct cxlsw_range {
	__u64 start;
	__u64 len;
};

/**
 * struct cxlsw_export - CXLSW_IOC_EXPORT: offer a paused process's pages to
 * another host.
 * @size: sizeof(struct cxlsw_export).
 * @flags: zero.
 * @pid: the process; every page of @ranges must be present, anonymous and
 *	on the portal's node.
 * @nid: the portal's NUMA node.
 * @target: the target host's slot in that portal.
 * @nr_ranges: entries of @ranges (1..=64).
 * @blob_len: bytes at @blob (at most 65536), 0 for none.
 * @ranges: user pointer to an array of struct cxlsw_range, ascending, not
 *	overlapping.
 * @blob: user pointer to the workload's state that travels beside it.
 * @id: out: the handoff's id.
 * @index: out: its record's index.
 * @reserved: zero.
 * @pages: out: pages exported (and pinned until the handoff ends).
 */
struct cxlsw_export {
	__u32 size;
	__u32 flags;
	__s32 pid;
	__s32 nid;
	__u32 target;
	__u32 nr_ranges;
	__u32 blob_len;
	__u32 reserved;
	__u64 ranges;
	__u64 blob;
	__u64 id;
	__u32 index;
	__u32 reserved2;
	__u64 pages;
};

/**
 * struct cxlsw_ref - names a handoff: CXLSW_IOC_CANCEL, CXLSW_IOC_ACCEPT,
 * CXLSW_IOC_RELEASE.
 * @size: sizeof(struct cxlsw_ref).
 * @nid: the portal's NUMA node.
 * @id: the handoff's id.
 * @index: its record's index.
 * @reserved: zero.
 */
struct cxlsw_ref {
	__u32 size;
	__s32 nid;
	__u64 id;
	__u32 index;
	__u32 reserved;
};

#define CXLSW_IOC_MAGIC 0xCE
#define CXLSW_IOC_VERSION _IOWR(CXLSW_IOC_MAGIC, 0x40, struct cxlsw_version)
#define CXLSW_IOC_LIST _IOWR(CXLSW_IOC_MAGIC, 0x41, struct cxlsw_list)
#define CXLSW_IOC_EXPORT _IOWR(CXLSW_IOC_MAGIC, 0x42, struct cxlsw_export)
#define CXLSW_IOC_CANCEL _IOW(CXLSW_IOC_MAGIC, 0x43, struct cxlsw_ref)

#endif /* _UAPI_LINUX_CXL_SWITCHED_H */
