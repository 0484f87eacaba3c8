// SPDX-License-Identifier: GPL-2.0

//! A portal: the dax device of a switched CXL RAM region, onlined as a typed node of its own.
//!
//! Probe decides whether the region is switched, checks that its node and range can hold a
//! portal, claims and maps the header block, types the node "Switched" and gives it a memory
//! tier of its own, and hands the rest to [`Membership`]: the boot check on the header, the
//! join, and the onlining of the blocks this host owns into `ZONE_MOVABLE` as "System RAM
//! (cxl_switched)". Remove undoes it, unless pages are in use on the node: then the blocks that
//! could not be removed stay online, typed, as they are, and quarantined in the header (see
//! [`Portal::remove`]).

use core::fmt::Write;

use kernel::{
    cxl::RegionEndpoint,
    dax::DevDax,
    device::Device,
    memory_hotplug::{memory_block_size, MemoryGroup},
    memory_tiers::{platform_adistance, MemoryType, NodeMemoryType},
    memremap::Memremap,
    node::{self, MemoryTypeName},
    prelude::*,
    sync::Arc,
    time::{Instant, Monotonic},
};

use crate::{
    classify::{classify, portal_adistance, Decision, Policy},
    debugfs::Tables,
    handoff::{
        abi::Geometry,
        layout::{PortalLayout, HEADER_BLOCKS},
    },
    membership::{JoinParams, Membership},
    text::Text,
};

/// The name of a portal node's memory type.
pub(crate) const TYPE_NAME: &CStr = c"Switched";

/// What the administrator asked for, through the module parameters.
#[derive(Clone, Copy)]
pub(crate) struct Params {
    pub(crate) policy: Policy,
    /// Per cent of the portal's data blocks this host claims at probe.
    pub(crate) claim_pct: u32,
    /// Host slots and lease of a portal this host formats.
    pub(crate) host_slots: u32,
    pub(crate) lease_ms: u32,
    /// The serial number of a portal whose refused header may be formatted over (0: none).
    pub(crate) reformat: u64,
    /// This host's host index: its slot in every portal (host 0 formats an empty one).
    pub(crate) host_index: u32,
}

/// What happens to a portal whose memory could not be removed.
const STAYS_ONLINE: &str =
    "pages could not be moved off; its memory stays online as Switched memory until reboot";

/// The second half of the line that reports a portal taken.
struct Onlined<'a> {
    nid: i32,
    mib: u64,
    adistance: i32,
    header: &'a core::ops::Range<u64>,
    slot: u32,
    epoch: u32,
    blocks: u64,
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
            "member in slot {} epoch {}, {} block(s) owned; ",
            self.slot, self.epoch, self.blocks
        )?;
        write!(
            f,
            "header block {:#x}-{:#x} reserved",
            self.header.start,
            self.header.end.saturating_sub(1)
        )
    }
}

/// What probe learnt of a region from the CXL topology.
pub(crate) struct RegionInfo {
    /// The region's name, `regionN`.
    pub(crate) name: Text,
    /// The CXL ports from the root to the endpoint.
    pub(crate) path: Text,
    /// The memory device's serial number.
    pub(crate) serial: u64,
    decision: Decision,
}

/// The switched or direct decision of at most this many devices of one region.
const MAX_TARGETS: usize = 16;

/// Reads the region's targets and decides.
fn look(dev: &Device, policy: Policy) -> Result<RegionInfo> {
    let first = RegionEndpoint::get(dev, 0)?;
    let mut depths = [0u32; MAX_TARGETS];
    let n = first.nr_targets().clamp(1, MAX_TARGETS);
    depths[0] = first.depth();
    for (pos, depth) in depths.iter_mut().enumerate().take(n).skip(1) {
        *depth = RegionEndpoint::get(dev, pos)?.depth();
    }
    Ok(RegionInfo {
        // Names that do not fit are cut; they are for people, not for decisions.
        name: Text::with(|w| w.write_str(first.region().name().to_str().unwrap_or("?"))),
        path: Text::with(|w| first.write_path(w)),
        serial: first.serial(),
        // PANIC: `n <= MAX_TARGETS`, the length of `depths`.
        decision: classify(&depths[..n], policy),
    })
}

/// A bound portal.
///
/// # Invariants
///
/// `membership` onlined blocks of `layout.online` on node `nid`, which `type_name` and `tier`
/// type; `tables`, when there, show `membership` in debugfs.
pub(crate) struct Portal {
    tables: Option<Pin<KBox<Tables>>>,
    membership: Arc<Membership>,
    tier: NodeMemoryType,
    _type_name: MemoryTypeName,
    nid: i32,
    layout: PortalLayout,
    region: RegionInfo,
    online_us: i64,
}

impl Portal {
    /// Whether `dax` is the dax device of a region that `policy` makes a portal.
    pub(crate) fn is_switched(dax: &DevDax, policy: Policy) -> bool {
        look(dax.as_device(), policy).is_ok_and(|r| r.decision == Decision::Switched)
    }

    /// Binds `dax` if it is the dax device of a switched region, or declines it.
    ///
    /// # Errors
    ///
    /// [`ENODEV`] for a device that is not a portal (not CXL, or direct-attached), which leaves
    /// it to the other dax drivers; otherwise the reason the portal is refused, logged in one
    /// line.
    pub(crate) fn probe(dax: &DevDax, params: Params) -> Result<Pin<KBox<Self>>> {
        let dev = dax.as_device();
        let policy = params.policy;
        let region = match look(dev, policy) {
            Ok(region) => region,
            // Not a CXL region's memory: none of our business.
            Err(e) if e == ENODEV => return Err(ENODEV),
            Err(e) => {
                dev_err!(dev, "cannot read the CXL region behind it ({:?})\n", e);
                return Err(e);
            }
        };
        match region.decision {
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
                    region.name.as_str(),
                    by,
                    region.path.as_str()
                );
                return Err(ENODEV);
            }
            Decision::Mixed => {
                dev_err!(
                    dev,
                    "{}: refused: {}\n",
                    region.name.as_str(),
                    Decision::Mixed.as_str()
                );
                return Err(EINVAL);
            }
        }
        Self::take(dax, region, params)
    }

    fn take(dax: &DevDax, region: RegionInfo, params: Params) -> Result<Pin<KBox<Self>>> {
        let dev = dax.as_device();
        let name = region.name.as_str();
        let refuse = |why: core::fmt::Arguments<'_>, e: Error| -> Error {
            dev_err!(dev, "{}: refused: {}\n", name, why);
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
                        layout.header.end.saturating_sub(1),
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
        let group = Arc::new(
            MemoryGroup::register_static(nid, online_len >> kernel::page::PAGE_SHIFT)?,
            GFP_KERNEL,
        )?;
        let join = JoinParams {
            geometry: Geometry {
                block_size: block,
                block_count: layout.blocks().saturating_add(HEADER_BLOCKS),
                header_blocks: u32::try_from(HEADER_BLOCKS)?,
                host_slots: params.host_slots,
            },
            lease_ms: params.lease_ms,
            serial: region.serial,
            reformat: params.reformat,
            claim_pct: params.claim_pct,
            host_index: params.host_index,
        };
        let started = Instant::<Monotonic>::now();
        let membership = Membership::join(dev, region.name, header, layout.clone(), group, &join)?;
        let online_us = started.elapsed().as_micros_ceil();
        Membership::start(&membership);
        if let Err(e) = crate::device::register(nid, &membership) {
            dev_warn!(
                dev,
                "{}: not reachable through /dev/cxl_switched ({:?})\n",
                name,
                e
            );
        }
        let tables = Tables::new(dev.name(), &membership)
            .inspect_err(|e| dev_warn!(dev, "{}: no debugfs tables ({:?})\n", name, e))
            .ok();
        let owned = membership.online_bytes();
        let (slot, epoch) = membership.with_host(|_, s, e| (s, e)).unwrap_or((0, 0));
        let by = if params.policy == Policy::All {
            ", by switched=1"
        } else {
            ""
        };
        dev_info!(
            dev,
            "{}: switched ({}, serial {:#x}{}): {}\n",
            name,
            region.path.as_str(),
            region.serial,
            by,
            Onlined {
                nid,
                mib: owned >> 20,
                adistance,
                header: &layout.header,
                slot,
                epoch,
                blocks: owned >> layout.block_shift,
            }
        );
        Ok(KBox::pin(
            Portal {
                tables,
                membership,
                tier,
                _type_name: type_name,
                nid,
                layout,
                region,
                online_us,
            },
            GFP_KERNEL,
        )?)
    }

    /// Lets go of the portal: removes its debugfs tables, then lets [`Membership::leave`]
    /// offline, return and leave; then clears the node's type and tier and releases the header
    /// block.
    ///
    /// If some blocks stay online (pages that could not be migrated off, or the unbinding task
    /// got a fatal signal), everything their memory depends on stays as it is until reboot: the
    /// node's type and tier, the memory group and the header claim, as dax/kmem keeps what backs
    /// memory that is stuck online.
    pub(crate) fn remove(data: Pin<KBox<Self>>, dev: &Device) {
        let mut this = Pin::into_inner(data);
        // The tables read the header: they go first.
        this.tables = None;
        crate::device::unregister(this.nid);
        let (name, nid) = (this.region.name, this.nid);
        match this.membership.leave(dev) {
            Ok(()) => dev_info!(dev, "{}: node {} removed\n", name.as_str(), nid),
            Err(stuck) => {
                dev_err!(
                    dev,
                    "{}: node {} not removed: offlining failed ({:?}), {} ({} block(s))\n",
                    name.as_str(),
                    nid,
                    stuck.error,
                    STAYS_ONLINE,
                    stuck.blocks
                );
                // The online memory depends on every part of the portal: keep them all.
                let _ = KBox::leak(this);
            }
        }
    }

    /// The node, the ranges and the CXL facts of the portal.
    pub(crate) fn nid(&self) -> i32 {
        self.nid
    }

    /// The portal's layout.
    pub(crate) fn layout(&self) -> &PortalLayout {
        &self.layout
    }

    /// What probe learnt of the region.
    pub(crate) fn region(&self) -> &RegionInfo {
        &self.region
    }

    /// The node's abstract distance in the memory tiers.
    pub(crate) fn adistance(&self) -> i32 {
        self.tier.adistance()
    }

    /// How long probe took to join and online, in µs.
    pub(crate) fn online_us(&self) -> i64 {
        self.online_us
    }

    /// The membership.
    pub(crate) fn membership(&self) -> &Membership {
        &self.membership
    }
}
