// SPDX-License-Identifier: GPL-2.0

//! A portal: the dax device of a switched CXL RAM region, onlined as a typed node of its own.
//!
//! Probe decides whether the region is switched, checks that its node and range can hold a
//! portal, claims and maps the header block, and runs the boot check on the header: it formats
//! an empty portal, joins a valid one and refuses anything else. A member claims its share of
//! free blocks and hot-adds only the blocks it owns into `ZONE_MOVABLE` as "System RAM
//! (cxl_switched)", with the node typed "Switched" and in a memory tier of its own (see
//! [`crate::membership`]). Remove undoes it, unless pages are in use on the node: then the
//! blocks that could not be removed stay online, typed, as they are, and quarantined in the
//! header (see [`Portal::remove`]).

use core::fmt::Write;

use kernel::{
    cxl::RegionEndpoint,
    dax::{DevDax, SysfsWriter},
    device::Device,
    memory_hotplug::{memory_block_size, MemoryGroup},
    memory_tiers::{platform_adistance, MemoryType, NodeMemoryType},
    memremap::Memremap,
    node::{self, MemoryTypeName},
    prelude::*,
    random,
    sync::Arc,
    time::{Instant, Monotonic},
};

use crate::{
    abi::{Geometry, HeaderError, Timing},
    classify::{classify, portal_adistance, Decision, Policy},
    layout::{PortalLayout, HEADER_BLOCKS},
    membership::{self, HeaderMedium, Membership},
    protocol::{self, Error as ProtoError, Host, Opened},
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
    c"portal_uuid",
    c"host_slot",
    c"epoch",
    c"lease_ms",
    c"owned_blocks",
    c"members",
    c"owners",
];

/// Handoff records a portal formatted by this driver has.
const HANDOFF_RECORDS: u32 = 16;

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
}

/// A UUID as text.
struct Uuid<'a>(&'a [u8; 16]);

impl kernel::fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The errno for a header the boot check refuses.
fn header_errno(e: &HeaderError) -> Error {
    match e {
        HeaderError::Newer { .. } => EPROTONOSUPPORT,
        _ => EUCLEAN,
    }
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
    blocks: u64,
    slot: u32,
    epoch: u32,
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
            self.header.end - 1
        )
    }
}

/// The longest switch path kept, in bytes.
const PATH_MAX: usize = 128;

/// A bounded text buffer for names and paths.
#[derive(Clone, Copy)]
pub(crate) struct Text {
    bytes: [u8; PATH_MAX],
    len: usize,
}

impl Text {
    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; PATH_MAX],
            len: 0,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
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
/// Fields drop in order: the membership (blocks, group, header) goes before the tier and name.
pub(crate) struct Portal {
    membership: Arc<Membership>,
    tier: NodeMemoryType,
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
    pub(crate) fn probe(dax: &DevDax, params: Params) -> Result<Pin<KBox<Self>>> {
        let dev = dax.as_device();
        let policy = params.policy;
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
        Self::take(dax, seen, params)
    }

    fn take(dax: &DevDax, seen: Seen, params: Params) -> Result<Pin<KBox<Self>>> {
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
        let origin = Instant::<Monotonic>::now();
        let started = Instant::<Monotonic>::now();
        let host = {
            let m = HeaderMedium::new(&header, &origin);
            let geometry = Geometry {
                block_size: block,
                block_count: layout.blocks() + HEADER_BLOCKS,
                header_blocks: HEADER_BLOCKS as u32,
                host_slots: params.host_slots,
            };
            let sb = open(dev, region, &m, &geometry, seen.serial, &params)?;
            let mut uuid = [0u8; 16];
            random::fill_bytes(&mut uuid);
            let host = Host::join(&m, sb, uuid).map_err(|e| {
                refuse(
                    format_args!("joining the portal: {}; nothing onlined", e.as_str()),
                    EBUSY,
                )
            })?;
            KBox::new(host, GFP_KERNEL)?
        };
        let (slot, epoch) = (host.slot(), host.epoch());
        let data_blocks = layout.blocks();
        let membership = Membership::new(host, header, origin, layout.clone(), group, region)?;
        let owned = {
            let mut st = membership.state.lock();
            let m = membership.medium();
            let want = (data_blocks * u64::from(params.claim_pct)).div_ceil(100);
            if let Some(host) = st.host.as_deref_mut() {
                let mut have = 0;
                let _ = host.owned(&m, |_, _| have += 1);
                if let Err(e) = host.claim(&m, want.saturating_sub(have)) {
                    dev_warn!(dev, "{}: claiming blocks: {}\n", region, e.as_str());
                }
            }
            membership.online_owned(&mut st)?
        };
        let online_us = started.elapsed().as_micros_ceil();
        Membership::start(&membership);
        let by = if params.policy == Policy::All {
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
                mib: (owned * block) >> 20,
                adistance,
                header: &layout.header,
                blocks: owned,
                slot,
                epoch,
            }
        );
        Ok(KBox::pin(
            Portal {
                membership,
                tier,
                type_name,
                nid,
                layout,
                seen,
                online_us,
            },
            GFP_KERNEL,
        )?)
    }

    /// Lets go of the portal: stops the heartbeat, offlines and removes its blocks (migrating
    /// pages in use off the node), returns them and leaves the portal, then clears the node's
    /// type and tier and releases the header block.
    ///
    /// Offlining waits for pages to be migrated; a fatal signal to the task that unbinds (or
    /// unloads) ends the wait. Blocks that cannot be offlined stay online, as they are, and are
    /// quarantined in the header so that no other host claims them; the node keeps its type and
    /// tier and the header block stays claimed, until reboot.
    pub(crate) fn remove(self, dev: &Device) {
        let Portal {
            membership,
            tier,
            type_name,
            nid,
            seen,
            ..
        } = self;
        let region = seen.region.as_str();
        membership.stop();
        let mut st = membership.state.lock();
        let (stuck, n, err) = membership.offline_all(&mut st);
        let m = membership.medium();
        if let Some(host) = st.host.as_deref_mut() {
            if n != 0 {
                let is_stuck = |b: u64| stuck.get(b as usize).copied().unwrap_or(true);
                if let Err(e) = host.quarantine(&m, is_stuck) {
                    dev_err!(dev, "{}: quarantining blocks: {}\n", region, e.as_str());
                }
            }
            match host.leave(&m) {
                Ok(()) => dev_info!(dev, "{}: left the portal (slot {})\n", region, host.slot()),
                Err(e) => dev_err!(
                    dev,
                    "{}: leaving the portal: {}; other hosts reap it after its lease\n",
                    region,
                    e.as_str()
                ),
            }
        }
        st.host = None;
        drop(st);
        if n == 0 {
            dev_info!(dev, "{}: node {} removed\n", region, nid);
            return;
        }
        dev_err!(
            dev,
            "{}: node {} not removed: offlining failed ({:?}), {}\n",
            region,
            nid,
            err.unwrap_or(EBUSY),
            STAYS_ONLINE
        );
        // Keep everything as it is, for good: the blocks, their group, the header claim, the
        // node's tier and type.
        tier.leak();
        core::mem::forget(membership);
        core::mem::forget(type_name);
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
            5 => {
                let st = self.membership.state.lock();
                let n = st.blocks.iter().filter(|b| b.is_some()).count() as u64;
                writeln!(out, "{}", n * self.layout.block_size())
            }
            6 => writeln!(out, "{}", self.seen.path.as_str()),
            7 => writeln!(out, "{:#x}", self.seen.serial),
            8 => writeln!(out, "{}", self.tier.adistance()),
            9 => writeln!(out, "{}", self.online_us),
            _ => return self.show_membership(index, out),
        };
        r.map_err(|_| EINVAL)
    }

    /// Writes the attributes that the portal header backs.
    fn show_membership(&self, index: usize, out: &mut SysfsWriter<'_>) -> Result {
        let st = self.membership.state.lock();
        let m = self.membership.medium();
        let Some(host) = st.host.as_deref() else {
            let why = st.stopped.unwrap_or("not a member");
            return writeln!(out, "none ({why})").map_err(|_| EINVAL);
        };
        let sb = host.superblock();
        let r = match index {
            10 => writeln!(out, "{}", Uuid(&sb.uuid)),
            11 => writeln!(out, "{}", host.slot()),
            12 => writeln!(out, "{}", host.epoch()),
            13 => writeln!(out, "{}", sb.timing.lease_ms),
            14 => {
                let mut r = Ok(());
                let mut sep = "";
                let e = host.owned(&m, |b, lent| {
                    if r.is_ok() {
                        r = write!(out, "{sep}{b}{}", if lent { "(handoff)" } else { "" });
                        sep = ",";
                    }
                });
                e.map_err(|_| EIO)?;
                r.and_then(|()| writeln!(out))
            }
            15 => return membership::write_members(&m, host, out).map_err(|_| EIO),
            16 => return membership::write_owners(&m, host, out).map_err(|_| EIO),
            _ => return Err(EINVAL),
        };
        r.map_err(|_| EINVAL)
    }
}

/// The boot check: opens the portal's header, formatting it if it is empty or if the
/// administrator named this portal (`reformat=<serial>`) and its header is refused. Returns the
/// superblock to join; a refusal is logged here, in one line.
fn open(
    dev: &Device,
    region: &str,
    m: &HeaderMedium<'_>,
    geometry: &Geometry,
    serial: u64,
    params: &Params,
) -> Result<crate::abi::Superblock> {
    let timing = Timing {
        lease_ms: params.lease_ms,
        settle_ms: (params.lease_ms / 20).clamp(1, 100),
    };
    let mut uuid = [0u8; 16];
    random::fill_bytes(&mut uuid);
    match protocol::open(m, geometry, uuid, HANDOFF_RECORDS, timing) {
        Ok(Opened::Formatted(sb)) => {
            dev_info!(
                dev,
                "{}: empty portal formatted as {}\n",
                region,
                Uuid(&sb.uuid)
            );
            Ok(sb)
        }
        Ok(Opened::Joinable(sb)) => Ok(sb),
        Err(ProtoError::Header(e)) if params.reformat != 0 && params.reformat == serial => {
            dev_warn!(
                dev,
                "{}: header refused ({}); formatted over as reformat={:#x} asks\n",
                region,
                e.as_str(),
                serial
            );
            protocol::format(m, uuid, *geometry, HANDOFF_RECORDS, timing).map_err(|e| {
                dev_err!(
                    dev,
                    "{}: formatting failed: {}; nothing onlined\n",
                    region,
                    e.as_str()
                );
                EIO
            })
        }
        Err(ProtoError::Header(e)) => {
            dev_err!(
                dev,
                "{}: refused: portal header: {}; nothing onlined (reformat={:#x} formats it)\n",
                region,
                e.as_str(),
                serial
            );
            Err(header_errno(&e))
        }
        Err(e) => {
            dev_err!(
                dev,
                "{}: refused: portal header: {}; nothing onlined\n",
                region,
                e.as_str()
            );
            Err(EUCLEAN)
        }
    }
}
