// SPDX-License-Identifier: GPL-2.0

//! Host slots: per host, its state, heartbeat, bakery ticket and intent.
//!
//! A slot is written only by the host that occupies it, until that host is confirmed off: then
//! by the hosts that fence and reap it (it writes nothing more). Every slot has two copies and a
//! writer overwrites the older one, so a torn write leaves the newer intact.

use super::{le32, le64, put32, put64, seal, sealed, RecordError, RECORD_SIZE};

/// The state of a host slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum SlotState {
    /// Nobody's.
    Free = 0,
    /// A host wrote its claim and waits for it to settle.
    Claiming = 1,
    /// A member's.
    Member = 2,
    /// Its host (joining or a member) was confirmed off by a fence agent or an administrator;
    /// it awaits reaping. Written by the host the confirmation was given to; the rest of the
    /// record is the fenced host's last.
    Fenced = 3,
}

/// A copy of a host slot: written by the host that occupies it, and once it is confirmed off by
/// the hosts that fence and reap it. Every slot has two copies; a writer overwrites the older
/// one, so a torn write leaves the newer intact.
///
/// | offset | size | field                                            |
/// |--------|------|--------------------------------------------------|
/// | 0x00   | 4    | kind, `0x544f4c53` ("SLOT")                      |
/// | 0x04   | 4    | state: 0 free, 1 claiming, 2 member, 3 fenced    |
/// | 0x08   | 8    | generation: +1 on every write (the heartbeat)    |
/// | 0x10   | 16   | host UUID                                        |
/// | 0x20   | 4    | epoch: the member table's epoch of this join     |
/// | 0x24   | 4    | bakery: choosing (0 or 1)                        |
/// | 0x28   | 8    | bakery: ticket (0: not waiting for the lock)     |
/// | 0x30   | 8    | intent: transaction in progress (0: none)        |
/// | 0x38   | 4    | intent: operation                                |
/// | 0x3c   | 192  | reserved, zero                                   |
/// | 0xfc   | 4    | CRC32C of bytes 0x00..0xfc                       |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotRecord {
    pub(crate) state: SlotState,
    pub(crate) generation: u64,
    pub(crate) host: [u8; 16],
    pub(crate) epoch: u32,
    pub(crate) choosing: bool,
    pub(crate) ticket: u64,
    pub(crate) intent: u64,
    pub(crate) op: u32,
}

const SLOT_KIND: u32 = 0x544f_4c53;

impl SlotRecord {
    /// A free slot.
    pub(crate) const FREE: SlotRecord = SlotRecord {
        state: SlotState::Free,
        generation: 0,
        host: [0; 16],
        epoch: 0,
        choosing: false,
        ticket: 0,
        intent: 0,
        op: 0,
    };

    /// The record's bytes, checksum included.
    pub(crate) fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        put32(&mut b, 0x00, SLOT_KIND);
        put32(&mut b, 0x04, self.state as u32);
        put64(&mut b, 0x08, self.generation);
        b[0x10..0x20].copy_from_slice(&self.host);
        put32(&mut b, 0x20, self.epoch);
        put32(&mut b, 0x24, u32::from(self.choosing));
        put64(&mut b, 0x28, self.ticket);
        put64(&mut b, 0x30, self.intent);
        put32(&mut b, 0x38, self.op);
        seal(&mut b);
        b
    }

    /// Decodes a slot.
    ///
    /// # Errors
    ///
    /// The [`RecordError`] that says why the copy cannot be used.
    pub(crate) fn decode(b: &[u8; RECORD_SIZE]) -> Result<Self, RecordError> {
        if b.iter().all(|&x| x == 0) {
            return Err(RecordError::Zero);
        }
        if !sealed(b).0 {
            return Err(RecordError::Torn);
        }
        let state = match le32(b, 0x04) {
            0 => SlotState::Free,
            1 => SlotState::Claiming,
            2 => SlotState::Member,
            3 => SlotState::Fenced,
            _ => return Err(RecordError::Invalid),
        };
        let choosing = match le32(b, 0x24) {
            0 => false,
            1 => true,
            _ => return Err(RecordError::Invalid),
        };
        if le32(b, 0x00) != SLOT_KIND {
            return Err(RecordError::Invalid);
        }
        let mut host = [0u8; 16];
        host.copy_from_slice(&b[0x10..0x20]);
        Ok(SlotRecord {
            state,
            generation: le64(b, 0x08),
            host,
            epoch: le32(b, 0x20),
            choosing,
            ticket: le64(b, 0x28),
            intent: le64(b, 0x30),
            op: le32(b, 0x38),
        })
    }
}
