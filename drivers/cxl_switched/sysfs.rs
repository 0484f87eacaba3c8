// SPDX-License-Identifier: GPL-2.0

//! The sysfs attributes of a bound portal, below `daxX.Y/cxl_switched/`: one value each, and
//! one request (`fence_confirm`).
//!
//! Documentation/ABI/testing/sysfs-bus-dax-cxl-switched documents them. The header's tables
//! (members, owners) are in debugfs, see [`crate::debugfs`].

use core::fmt::Write;

use kernel::{dax, prelude::*, str::Formatter};

use crate::{
    portal::Portal,
    text::{parse_uuid, Uuid},
};

/// A sysfs attribute of a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    /// The CXL region, `regionN`.
    Region,
    /// The NUMA node.
    Node,
    /// The physical range, header included.
    Resource,
    /// Its size in bytes.
    Size,
    /// The bytes the header blocks take.
    HeaderSize,
    /// The bytes this host has online.
    OnlineSize,
    /// The CXL ports from the root to the memory device.
    SwitchPath,
    /// The memory device's serial number.
    Serial,
    /// The node's abstract distance.
    Adistance,
    /// How long probe took to join and online, in µs.
    OnlineUs,
    /// The portal's UUID, from its header.
    PortalUuid,
    /// This host's slot in the header.
    HostSlot,
    /// This host's epoch: its count of joins to that slot.
    Epoch,
    /// The portal's lease, in ms.
    LeaseMs,
    /// The blocks this host owns.
    OwnedBlocks,
    /// The hosts that stopped renewing their lease.
    Suspects,
    /// Write-only: "SLOT UUID", a host confirmed off.
    FenceConfirm,
}

impl dax::Attribute for Attr {
    const ALL: &'static [Self] = &[
        Attr::Region,
        Attr::Node,
        Attr::Resource,
        Attr::Size,
        Attr::HeaderSize,
        Attr::OnlineSize,
        Attr::SwitchPath,
        Attr::Serial,
        Attr::Adistance,
        Attr::OnlineUs,
        Attr::PortalUuid,
        Attr::HostSlot,
        Attr::Epoch,
        Attr::LeaseMs,
        Attr::OwnedBlocks,
        Attr::Suspects,
        Attr::FenceConfirm,
    ];

    fn name(self) -> &'static CStr {
        match self {
            Attr::Region => c"region",
            Attr::Node => c"node",
            Attr::Resource => c"resource",
            Attr::Size => c"size",
            Attr::HeaderSize => c"header_size",
            Attr::OnlineSize => c"online_size",
            Attr::SwitchPath => c"switch_path",
            Attr::Serial => c"serial",
            Attr::Adistance => c"adistance",
            Attr::OnlineUs => c"online_us",
            Attr::PortalUuid => c"portal_uuid",
            Attr::HostSlot => c"host_slot",
            Attr::Epoch => c"epoch",
            Attr::LeaseMs => c"lease_ms",
            Attr::OwnedBlocks => c"owned_blocks",
            Attr::Suspects => c"suspects",
            Attr::FenceConfirm => c"fence_confirm",
        }
    }

    fn write_only(self) -> bool {
        self == Attr::FenceConfirm
    }
}

impl Portal {
    /// Writes attribute `attr`: one value and a newline.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if the text does not fit the page; the errno of a failed header read.
    pub(crate) fn show(&self, attr: Attr, out: &mut Formatter<'_>) -> Result {
        let l = self.layout();
        let online = l.online.end - l.online.start;
        let header = l.header.end - l.header.start;
        let m = self.membership();
        let r = match attr {
            Attr::Region => writeln!(out, "{}", self.region().name.as_str()),
            Attr::Node => writeln!(out, "{}", self.nid()),
            Attr::Resource => writeln!(
                out,
                "{:#x}-{:#x}",
                l.header.start,
                l.online.end.saturating_sub(1)
            ),
            Attr::Size => writeln!(out, "{}", header + online),
            Attr::HeaderSize => writeln!(out, "{header}"),
            Attr::OnlineSize => writeln!(out, "{}", m.online_bytes()),
            Attr::SwitchPath => writeln!(out, "{}", self.region().path.as_str()),
            Attr::Serial => writeln!(out, "{:#x}", self.region().serial),
            Attr::Adistance => writeln!(out, "{}", self.adistance()),
            Attr::OnlineUs => writeln!(out, "{}", self.online_us()),
            Attr::PortalUuid | Attr::HostSlot | Attr::Epoch | Attr::LeaseMs => {
                let r = m.with_host(|sb, slot, epoch| match attr {
                    Attr::PortalUuid => writeln!(out, "{}", Uuid(&sb.uuid)),
                    Attr::HostSlot => writeln!(out, "{slot}"),
                    Attr::Epoch => writeln!(out, "{epoch}"),
                    _ => writeln!(out, "{}", sb.timing.lease_ms),
                });
                match r {
                    Ok(r) => r,
                    Err(why) => writeln!(out, "none ({why})"),
                }
            }
            Attr::OwnedBlocks => return m.write_owned(out),
            Attr::Suspects => return m.write_suspects(out),
            Attr::FenceConfirm => return Err(EINVAL),
        };
        r.map_err(|_| EINVAL)
    }

    /// Takes a write to write-only attribute `attr`.
    ///
    /// # Errors
    ///
    /// [`EINVAL`], with one log line, for text that is not "SLOT UUID"; the errors of
    /// [`crate::membership::Membership::confirm_fenced`].
    pub(crate) fn store(&self, attr: Attr, input: &[u8]) -> Result {
        if attr != Attr::FenceConfirm {
            return Err(EINVAL);
        }
        let text = core::str::from_utf8(input).unwrap_or("");
        let mut words = text.split_whitespace();
        let parsed = match (words.next(), words.next(), words.next()) {
            (Some(slot), Some(uuid), None) => slot.parse::<u32>().ok().zip(parse_uuid(uuid)),
            _ => None,
        };
        let Some((slot, uuid)) = parsed else {
            pr_warn!(
                "{}: fence_confirm: expected \"SLOT UUID\" (see suspects), got {} byte(s)\n",
                self.region().name.as_str(),
                input.len()
            );
            return Err(EINVAL);
        };
        self.membership().confirm_fenced(slot, &uuid)
    }
}
