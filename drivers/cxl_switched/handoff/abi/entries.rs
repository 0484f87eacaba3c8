// SPDX-License-Identifier: GPL-2.0

//! The entries of the member and owner tables: 8 bytes each, [`super::ENTRIES_PER_RECORD`] to a
//! table record.

use super::NO_SLOT;

/// The low 32 bits of `v`.
fn low32(v: u64) -> u32 {
    let b = v.to_le_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The state of a member entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum MemberState {
    /// The slot has had no member, or its member left.
    Free = 0,
    /// A member is in the slot with this epoch.
    Live = 1,
    /// The member of this epoch was fenced: it must not touch the portal again.
    Fenced = 2,
}

/// An entry of the member table: per host slot, the epoch of its last join and what became of
/// it. Bytes: epoch (u32), state (u16), reserved (u16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) epoch: u32,
    pub(crate) state: MemberState,
}

impl Member {
    /// The entry's 8 bytes, as a little-endian u64.
    pub(crate) fn encode(&self) -> u64 {
        u64::from(self.epoch) | (u64::from(self.state as u16) << 32)
    }

    /// Decodes an entry.
    pub(crate) fn decode(v: u64) -> Option<Self> {
        let state = match (v >> 32) & 0xffff {
            0 => MemberState::Free,
            1 => MemberState::Live,
            2 => MemberState::Fenced,
            _ => return None,
        };
        if v >> 48 != 0 {
            return None;
        }
        Some(Member {
            epoch: low32(v),
            state,
        })
    }
}

/// An entry of the owner table: per data block, who owns it. Bytes: slot (u16, `0xffff`: free,
/// `0xfffe`: quarantined),
/// handoff (u16, 0: none, else the index + 1 of the handoff record the block is in), epoch (u32)
/// of the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) slot: u16,
    pub(crate) handoff: u16,
    pub(crate) epoch: u32,
}

impl Owner {
    /// A free block.
    pub(crate) const FREE: Owner = Owner {
        slot: NO_SLOT,
        handoff: 0,
        epoch: 0,
    };

    /// The entry's 8 bytes, as a little-endian u64.
    pub(crate) fn encode(&self) -> u64 {
        u64::from(self.slot) | (u64::from(self.handoff) << 16) | (u64::from(self.epoch) << 32)
    }

    /// Decodes an entry (every value is one).
    pub(crate) fn decode(v: u64) -> Self {
        let b = v.to_le_bytes();
        Owner {
            slot: u16::from_le_bytes([b[0], b[1]]),
            handoff: u16::from_le_bytes([b[2], b[3]]),
            epoch: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Whether nobody owns the block.
    pub(crate) fn is_free(&self) -> bool {
        self.slot == NO_SLOT
    }
}
