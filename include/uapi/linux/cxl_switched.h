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
#define CXLSW_PULLED 3
#define CXLSW_RETURNED 4
#define CXLSW_LOST 5

/* Values of struct cxlsw_handoff's @role. */
#define CXLSW_SOURCE 1
#define CXLSW_TARGET 2

/**
 * struct cxlsw_handoff - one handoff in flight, as CXLSW_IOC_LIST reports it.
 * @id: the handoff's id: with @index, what every later request names.
 * @index: the handoff record's index in the portal's header.
 * @state: CXLSW_OFFERED, CXLSW_ACCEPTED or CXLSW_PULLED (accepted, and the
 *	target has pulled the pages: the source may release); for a source
 *	whose handoff was rolled back (cancelled by the target, or its target
 *	died), until it acknowledges that with CXLSW_IOC_CANCEL:
 *	CXLSW_RETURNED (its pages are unpinned and unchanged, the process may
 *	resume) or CXLSW_LOST (the target had mapped the pages, which may have
 *	changed: the process must not resume).
 * @role: CXLSW_SOURCE or CXLSW_TARGET: this host's part in it.
 * @peer: the host slot of the other party.
 * @nid: the NUMA node of the portal it is on.
 * @blocks: memory blocks it moves.
 * @pages: 4 KiB pages its manifest lists (0: a handoff of whole blocks).
 * @blob_bytes: bytes of the workload's state that travel beside its pages.
 * @pid: for a source, the process whose pages it pinned; for a target, the
 *	process it mapped them into (0: none yet).
 * @pinned: for a source, pages this host still holds for it; for a target,
 *	pages still on the portal (mapped, not pulled yet).
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
 * struct cxlsw_ref - names a handoff: CXLSW_IOC_CANCEL, CXLSW_IOC_RELEASE
 * (the source, once the handoff is pulled: it unpins the pages, offlines the
 * blocks they lie in, which migrates what else is there, and releases; the
 * caller ends the old process first).
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

/**
 * struct cxlsw_accept - CXLSW_IOC_ACCEPT: take a handoff offered to this
 * host and read its manifest. Asked again of a handoff this host accepted,
 * it answers again without changing anything.
 * @size: sizeof(struct cxlsw_accept).
 * @nid: the portal's NUMA node.
 * @id: the handoff's id.
 * @index: its record's index.
 * @nr_ranges: in: room in @ranges (at most 65536); out: the workload's
 *	virtual ranges, which may be more than the room (then only the room
 *	is filled).
 * @blob_len: in: room at @blob (at most 65536); out: the blob's length
 *	(only the room is filled).
 * @reserved: zero.
 * @ranges: user pointer to an array of struct cxlsw_range: where the
 *	workload's pages are to be mapped, ascending.
 * @blob: user pointer to room for the workload's state.
 * @pages: out: pages the manifest lists.
 */
struct cxlsw_accept {
	__u32 size;
	__s32 nid;
	__u64 id;
	__u32 index;
	__u32 nr_ranges;
	__u32 blob_len;
	__u32 reserved;
	__u64 ranges;
	__u64 blob;
	__u64 pages;
};

/**
 * struct cxlsw_map - CXLSW_IOC_MAP: map an accepted handoff's pages into a
 * process, where the manifest says. Every range ACCEPT gave must lie in
 * private anonymous mappings of that process that no page backs yet
 * (mapped, never touched).
 * @size: sizeof(struct cxlsw_map).
 * @nid: the portal's NUMA node.
 * @id: the handoff's id.
 * @index: its record's index.
 * @pid: the process: the caller itself, or one it may attach to as a
 *	debugger may (a VMM that a management tool imports into).
 * @flags: zero.
 * @reserved: zero.
 * @pages: out: pages mapped.
 */
struct cxlsw_map {
	__u32 size;
	__s32 nid;
	__u64 id;
	__u32 index;
	__s32 pid;
	__u32 flags;
	__u32 reserved;
	__u64 pages;
};

/**
 * struct cxlsw_pull - CXLSW_IOC_PULL: move pages of a mapped handoff from
 * the portal into this host's memory, while the process runs. Once none is
 * left, the handoff is marked pulled in the portal's header (the source may
 * then release it); so it is too if the process ended.
 * @size: sizeof(struct cxlsw_pull).
 * @nid: the portal's NUMA node.
 * @id: the handoff's id.
 * @index: its record's index.
 * @node: the NUMA node the pages go to (a node with memory, not a portal).
 * @max_pages: at most this many pages in this call (1..=1048576).
 * @reserved: zero.
 * @pulled: out: pages moved by this call.
 * @left: out: pages still on the portal.
 */
struct cxlsw_pull {
	__u32 size;
	__s32 nid;
	__u64 id;
	__u32 index;
	__s32 node;
	__u32 max_pages;
	__u32 reserved;
	__u64 pulled;
	__u64 left;
};

#define CXLSW_IOC_MAGIC 0xCE
#define CXLSW_IOC_VERSION _IOWR(CXLSW_IOC_MAGIC, 0x40, struct cxlsw_version)
#define CXLSW_IOC_LIST _IOWR(CXLSW_IOC_MAGIC, 0x41, struct cxlsw_list)
#define CXLSW_IOC_EXPORT _IOWR(CXLSW_IOC_MAGIC, 0x42, struct cxlsw_export)
#define CXLSW_IOC_CANCEL _IOW(CXLSW_IOC_MAGIC, 0x43, struct cxlsw_ref)
#define CXLSW_IOC_ACCEPT _IOWR(CXLSW_IOC_MAGIC, 0x44, struct cxlsw_accept)
#define CXLSW_IOC_MAP _IOWR(CXLSW_IOC_MAGIC, 0x45, struct cxlsw_map)
#define CXLSW_IOC_PULL _IOWR(CXLSW_IOC_MAGIC, 0x46, struct cxlsw_pull)
#define CXLSW_IOC_RELEASE _IOW(CXLSW_IOC_MAGIC, 0x47, struct cxlsw_ref)

#endif /* _UAPI_LINUX_CXL_SWITCHED_H */
