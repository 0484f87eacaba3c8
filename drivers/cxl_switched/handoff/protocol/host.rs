// SPDX-License-Identifier: GPL-2.0

//! A host's membership of a portal: its slot, its lease, what it saw of the other slots.

use super::super::num::u32_as_usize;
use super::abi::{SlotRecord, Superblock, MAX_HOST_SLOTS, RECORD_BYTES};
use super::medium::write_record;
use super::{Error, Medium};

/// What this host last saw of another host's slot, to tell a live host from an expired one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen {
    /// The generation of the current copy, or the CRC of a slot without a valid copy.
    pub(super) mark: u64,
    /// When the mark last changed (this host's clock); `u64::MAX`: not watched.
    pub(super) since_ms: u64,
}

pub(super) const UNSEEN: Seen = Seen {
    mark: 0,
    since_ms: u64::MAX,
};

/// A host's membership of a portal.
///
/// # Invariants
///
/// `slot < sb.geometry.host_slots` and `slot_id` is `slot` as owner entries carry it; `rec` is
/// what this host last wrote to its slot, and `next_copy` the copy of the slot its next write
/// goes to.
pub(crate) struct Host {
    pub(super) sb: Superblock,
    pub(super) slot: u32,
    pub(super) slot_id: u16,
    pub(super) rec: SlotRecord,
    pub(super) next_copy: u32,
    pub(super) txid: u64,
    pub(super) renewed_ms: u64,
    pub(super) seen: [Seen; u32_as_usize(MAX_HOST_SLOTS)],
    /// Giving up what it has ([`Host::leave`]): allowed even once its lease lapsed.
    pub(super) leaving: bool,
}

impl Host {
    /// The portal's superblock.
    pub(crate) fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// This host's slot.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// This host's epoch: the member table's count of joins to its slot.
    pub(crate) fn epoch(&self) -> u32 {
        self.rec.epoch
    }

    /// The UUID this host joined with: it names this incarnation of the host in its slot.
    pub(crate) fn uuid(&self) -> [u8; 16] {
        self.rec.host
    }

    /// Writes this host's slot record (to the older copy) and remembers it.
    pub(super) fn write_slot<M: Medium>(
        &mut self,
        m: &M,
        mut rec: SlotRecord,
    ) -> Result<(), Error> {
        rec.generation = self.rec.generation.checked_add(1).ok_or(Error::Overflow(
            "this host's slot generation is at its largest value",
        ))?;
        let off = self.sb.slot_offset(self.slot) + u64::from(self.next_copy) * RECORD_BYTES;
        write_record(m, off, &rec.encode())?;
        self.rec = rec;
        self.next_copy = 1 - self.next_copy;
        Ok(())
    }

    /// Checks that this host may still write to the portal: its lease is not half gone, or it
    /// is giving up what it has (which needs no lease: nobody reclaims it unless it is fenced).
    pub(super) fn guard<M: Medium>(&self, m: &M) -> Result<(), Error> {
        if self.leaving {
            return Ok(());
        }
        let held = m.now_ms().saturating_sub(self.renewed_ms);
        if held > u64::from(self.sb.timing.lease_ms / 2) {
            return Err(Error::Expired);
        }
        Ok(())
    }

    /// Whether this host may still use what it owns: its lease is not half gone. A host checks
    /// this before it touches the memory of a block it owns, as it does before every write to
    /// the header.
    #[cfg(feature = "tools")]
    pub(crate) fn holds_lease<M: Medium>(&self, m: &M) -> bool {
        self.guard(m).is_ok()
    }
}
