// SPDX-License-Identifier: GPL-2.0

//! A portal: the dax device of a switched CXL RAM region, onlined as a typed node of its own.
//!
//! Probe decides whether the region is switched, checks that its node and range can hold a
//! portal, claims and maps the header block and hot-adds the rest into `ZONE_MOVABLE` as
//! "System RAM (cxl_switched)", with the node typed "Switched" and in a memory tier of its own.
//! Remove undoes it, unless pages are in use on the node: then nothing is removed and the memory
//! stays online, typed, as it is (see [`Portal::remove`]).

use core::fmt::Write;

use kernel::{
    cxl::RegionEndpoint,
    dax::{DevDax, SysfsWriter},
    device::Device,
    memory_hotplug::{memory_block_size, DriverManagedMemory, MemoryGroup, OnlineType},
    memory_tiers::{platform_adistance, MemoryType, NodeMemoryType},
    memremap::Memremap,
    node::{self, MemoryTypeName},
    prelude::*,
    time::{Instant, Monotonic},
};

use crate::{
    classify::{classify, portal_adistance, Decision, Policy},
    layout::PortalLayout,
};

/// The name of a portal node's memory type.
pub(crate) const TYPE_NAME: &CStr = c"Switched";

/// The sysfs attributes of a bound portal, below `daxX.Y/cxl_switched/`.
pub(crate) const ATTRIBUTES: &[&CStr] = &[
    c"region",
    c"node",
    c"resource",
    c"size",
    c"header_size",
    c"online_size",
    c"switch_path",
    c"serial",
    c"adistance",
    c"online_us",
];

/// What happens to a portal whose memory could not be removed.
const STAYS_ONLINE: &str =
    "pages could not be moved off; its memory stays online as Switched memory until reboot";

/// The second half of the line that reports a portal taken.
struct Onlined<'a> {
    nid: i32,
    mib: u64,
    adistance: i32,
    header: &'a core::ops::Range<u64>,
}

impl kernel::fmt::Display for Onlined<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "node {} is a Switched node of {} MiB in ZONE_MOVABLE, adistance {}; ",
            self.nid, self.mib, self.adistance
        )?;
        write!(
            f,
            "header block {:#x}-{:#x} reserved",
            self.header.start,
            self.header.end - 1
        )
    }
}

/// The longest switch path kept, in bytes.
const PATH_MAX: usize = 128;

/// A bounded text buffer for names and paths.
pub(crate) struct Text {
    bytes: [u8; PATH_MAX],
    len: usize,
}

impl Text {
    fn new() -> Self {
        Self {
            bytes: [0; PATH_MAX],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        self.bytes
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// What probe saw of a region.
struct Seen {
    region: Text,
    path: Text,
    serial: u64,
    decision: Decision,
}

/// Reads the region's targets and decides.
fn look(dev: &Device, policy: Policy) -> Result<Seen> {
    let first = RegionEndpoint::get(dev, 0)?;
    let mut depths = [0u32; 16];
    let n = first.nr_targets().clamp(1, depths.len());
    depths[0] = first.depth();
    for (pos, depth) in depths.iter_mut().enumerate().take(n).skip(1) {
        *depth = RegionEndpoint::get(dev, pos)?.depth();
    }
    let mut region = Text::new();
    let mut path = Text::new();
    // Names that do not fit are cut; they are for people, not for decisions.
    let _ = region.write_str(first.region().name().to_str().unwrap_or("?"));
    let _ = first.write_path(&mut path);
    Ok(Seen {
        region,
        path,
        serial: first.serial(),
        decision: classify(&depths[..n], policy),
    })
}

/// A bound portal.
///
/// Fields drop in order: the memory is removed before its group, tier, header and name go.
pub(crate) struct Portal {
    memory: DriverManagedMemory,
    group: MemoryGroup,
    tier: NodeMemoryType,
    header: Memremap,
    type_name: MemoryTypeName,
    nid: i32,
    layout: PortalLayout,
    seen: Seen,
    online_us: i64,
}

impl Portal {
    /// Whether `dax` is the dax device of a region that `policy` makes a portal.
    pub(crate) fn is_switched(dax: &DevDax, policy: Policy) -> bool {
        look(dax.as_device(), policy).is_ok_and(|seen| seen.decision == Decision::Switched)
    }

    /// Binds `dax` if it is the dax device of a switched region, or declines with [`ENODEV`].
    pub(crate) fn probe(dax: &DevDax, policy: Policy) -> Result<Pin<KBox<Self>>> {
        let dev = dax.as_device();
        let seen = match look(dev, policy) {
            Ok(seen) => seen,
            // Not a CXL region's memory: none of our business.
            Err(e) if e == ENODEV => return Err(ENODEV),
            Err(e) => {
                dev_err!(dev, "cannot read the CXL region behind it ({:?})\n", e);
                return Err(e);
            }
        };
        match seen.decision {
            Decision::Switched => {}
            Decision::Direct => {
                let by = if policy == Policy::None {
                    " by switched=0"
                } else {
                    ""
                };
                dev_info!(
                    dev,
                    "{}: direct-attached{} ({}), left to dax/kmem or device_dax\n",
                    seen.region.as_str(),
                    by,
                    seen.path.as_str()
                );
                return Err(ENODEV);
            }
            Decision::Mixed => {
                dev_err!(
                    dev,
                    "{}: refused: {}\n",
                    seen.region.as_str(),
                    Decision::Mixed.as_str()
                );
                return Err(EINVAL);
            }
        }
        Self::take(dax, seen, policy)
    }

    fn take(dax: &DevDax, seen: Seen, policy: Policy) -> Result<Pin<KBox<Self>>> {
        let dev = dax.as_device();
        let region = seen.region.as_str();
        let refuse = |why: core::fmt::Arguments<'_>, e: Error| -> Error {
            dev_err!(dev, "{}: refused: {}\n", region, why);
            e
        };
        let Some(nid) = dax.target_node() else {
            return Err(refuse(
                format_args!("the platform gave it no NUMA node"),
                EINVAL,
            ));
        };
        if dax.nr_ranges() != 1 {
            return Err(refuse(
                format_args!("{} physical ranges, a portal has one", dax.nr_ranges()),
                EINVAL,
            ));
        }
        let range = dax.range(0)?;
        let block = memory_block_size();
        let layout = PortalLayout::new(range.start, range.len(), block).map_err(|e| {
            refuse(
                format_args!(
                    "{:#x}-{:#x}: {} (memory block {} MiB)",
                    range.start,
                    range.end,
                    e.as_str(),
                    block >> 20
                ),
                EINVAL,
            )
        })?;
        let header_len = usize::try_from(layout.header.end - layout.header.start)?;
        let header = Memremap::new(layout.header.start, header_len, c"cxl_switched header")
            .map_err(|e| {
                let why = if e == EBUSY {
                    "is claimed already (memory left online by an earlier unload?)"
                } else {
                    "cannot be mapped"
                };
                refuse(
                    format_args!(
                        "header block {:#x}-{:#x} {}",
                        layout.header.start,
                        layout.header.end - 1,
                        why
                    ),
                    e,
                )
            })?;
        let type_name = MemoryTypeName::new(nid, TYPE_NAME).map_err(|e| {
            refuse(
                format_args!(
                    "node {nid} already holds another portal (one CFMWS window per portal)"
                ),
                e,
            )
        })?;
        if node::has_memory(nid) {
            return Err(refuse(
                format_args!("node {nid} already has memory (DRAM or another device's)"),
                EBUSY,
            ));
        }
        let adistance = portal_adistance(platform_adistance(nid));
        let tier = NodeMemoryType::new(nid, MemoryType::new(adistance)?)
            .map_err(|e| refuse(format_args!("node {nid} already has a memory tier type"), e))?;
        let online_len = layout.online.end - layout.online.start;
        let group = MemoryGroup::register_static(nid, online_len >> kernel::page::PAGE_SHIFT)?;
        let started = Instant::<Monotonic>::now();
        let memory = DriverManagedMemory::add(
            &group,
            layout.online.start,
            online_len,
            c"cxl_switched",
            OnlineType::Movable,
        )
        .map_err(|e| {
            refuse(
                format_args!(
                    "hot-adding {:#x}-{:#x} failed ({:?})",
                    layout.online.start,
                    layout.online.end - 1,
                    e
                ),
                e,
            )
        })?;
        let online_us = started.elapsed().as_micros_ceil();
        let by = if policy == Policy::All {
            ", by switched=1"
        } else {
            ""
        };
        dev_info!(
            dev,
            "{}: switched ({}, serial {:#x}{}): {}\n",
            region,
            seen.path.as_str(),
            seen.serial,
            by,
            Onlined {
                nid,
                mib: online_len >> 20,
                adistance,
                header: &layout.header,
            }
        );
        Ok(KBox::pin(
            Portal {
                memory,
                group,
                tier,
                header,
                type_name,
                nid,
                layout,
                seen,
                online_us,
            },
            GFP_KERNEL,
        )?)
    }

    /// Lets go of the portal: offlines and removes its memory, migrating pages in use off the
    /// node, then clears the node's type and tier and releases the header block.
    ///
    /// Offlining waits for pages to be migrated; a fatal signal to the task that unbinds (or
    /// unloads) ends the wait. If offlining fails, nothing is removed: the memory stays online
    /// and typed, as it is, and its header block stays claimed, until reboot.
    pub(crate) fn remove(self, dev: &Device) {
        let Portal {
            memory,
            group,
            tier,
            header,
            type_name,
            nid,
            seen,
            ..
        } = self;
        let region = seen.region.as_str();
        match memory.remove() {
            Ok(()) => dev_info!(dev, "{}: node {} removed\n", region, nid),
            Err((memory, e)) => {
                dev_err!(
                    dev,
                    "{}: node {} not removed: offlining failed ({:?}), {}\n",
                    region,
                    nid,
                    e,
                    STAYS_ONLINE
                );
                // Keep everything as it is, for good: the memory, its group, the node's tier
                // and type, and the claim on the header block.
                memory.leak();
                group.leak();
                tier.leak();
                core::mem::forget(header);
                core::mem::forget(type_name);
            }
        }
    }

    /// Writes attribute `ATTRIBUTES[index]`.
    pub(crate) fn show(&self, index: usize, out: &mut SysfsWriter<'_>) -> Result {
        let online = self.layout.online.end - self.layout.online.start;
        let header = self.layout.header.end - self.layout.header.start;
        let r = match index {
            0 => writeln!(out, "{}", self.seen.region.as_str()),
            1 => writeln!(out, "{}", self.nid),
            2 => writeln!(
                out,
                "{:#x}-{:#x}",
                self.layout.header.start,
                self.layout.online.end - 1
            ),
            3 => writeln!(out, "{}", header + online),
            4 => writeln!(out, "{}", header),
            5 => writeln!(out, "{}", self.memory.size()),
            6 => writeln!(out, "{}", self.seen.path.as_str()),
            7 => writeln!(out, "{:#x}", self.seen.serial),
            8 => writeln!(out, "{}", self.tier.adistance()),
            9 => writeln!(out, "{}", self.online_us),
            _ => return Err(EINVAL),
        };
        r.map_err(|_| EINVAL)
    }

    /// The memory-mapped header block.
    #[allow(dead_code)]
    pub(crate) fn header(&self) -> &Memremap {
        &self.header
    }
}
