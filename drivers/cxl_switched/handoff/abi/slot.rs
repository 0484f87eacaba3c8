// SPDX-License-Identifier: GPL-2.0

//! Host slots: per host, its state, heartbeat, bakery ticket and intent.
//!
//! Slot `k` is written only by the host configured with host index `k` (and zeroed by the
//! formatter before anyone joins): no other host ever writes it, not even to fence it. Every slot
//! has two copies and its writer overwrites the older one, so a torn write leaves the newer
//! intact.

use super::{le32, le64, put32, put64, seal, sealed, RecordError, RECORD_SIZE};

/// The state of a host slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum SlotState {
    /// Nobody's.
    Free = 0,
    /// Its host is joining: it chose its epoch, and is not in the member table yet.
    Claiming = 1,
    /// A member's.
    Member = 2,
}

/// How many confirmations a slot can hold: hosts confirmed off and not reaped yet.
pub(crate) const MAX_CONFIRMS: usize = 16;

/// A confirmation that the incarnation `epoch` of the host in slot `slot` is off, as a fence
/// agent or an administrator gave it to the host whose slot holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Confirm {
    pub(crate) slot: u32,
    pub(crate) epoch: u32,
}

/// A copy of a host slot: written only by the host whose host index it is. Every slot has two
/// copies; its writer overwrites the older one, so a torn write leaves the newer intact.
///
/// | offset | size | field                                                     |
/// |--------|------|-----------------------------------------------------------|
/// | 0x00   | 4    | kind, `0x544f4c53` ("SLOT")                               |
/// | 0x04   | 4    | state: 0 free, 1 claiming, 2 member                       |
/// | 0x08   | 8    | generation: +1 on every write (the heartbeat)             |
/// | 0x10   | 16   | host UUID (of this boot; for people and fence agents)     |
/// | 0x20   | 4    | epoch: this incarnation, larger than every earlier one    |
/// | 0x24   | 4    | bakery: choosing (0 or 1)                                 |
/// | 0x28   | 8    | bakery: ticket (0: not waiting for the lock)              |
/// | 0x30   | 8    | intent: transaction in progress (0: none)                 |
/// | 0x38   | 4    | intent: operation                                         |
/// | 0x3c   | 4    | confirmations: count, at most [`MAX_CONFIRMS`]            |
/// | 0x40   | 8×16 | confirmations: slot (4), epoch (4): that incarnation is off |
/// | 0xc0   | 60   | reserved, zero                                            |
/// | 0xfc   | 4    | CRC32C of bytes 0x00..0xfc                                |
///
/// The intent's upper 32 bits are the epoch of the incarnation that began the transaction: a
/// joining host carries the intent of its slot's dead earlier incarnation until it is rolled
/// back.
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
    pub(crate) confirms: [Option<Confirm>; MAX_CONFIRMS],
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
        confirms: [None; MAX_CONFIRMS],
    };

    /// Whether this record confirms that incarnation `epoch` of slot `slot` is off.
    pub(crate) fn confirms(&self, slot: u32, epoch: u32) -> bool {
        self.confirms
            .iter()
            .flatten()
            .any(|c| c.slot == slot && c.epoch == epoch)
    }

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
        let mut n = 0u32;
        let mut at = 0x40;
        for c in self.confirms.iter().flatten() {
            put32(&mut b, at, c.slot);
            put32(&mut b, at + 4, c.epoch);
            at += 8;
            n += 1;
        }
        put32(&mut b, 0x3c, n);
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
        let n = super::super::num::u32_as_usize(le32(b, 0x3c));
        if n > MAX_CONFIRMS {
            return Err(RecordError::Invalid);
        }
        let mut confirms = [None; MAX_CONFIRMS];
        let mut at = 0x40;
        // PANIC: `n <= MAX_CONFIRMS`, and `0x40 + 8 * MAX_CONFIRMS` is inside the record.
        for c in confirms.iter_mut().take(n) {
            *c = Some(Confirm {
                slot: le32(b, at),
                epoch: le32(b, at + 4),
            });
            at += 8;
        }
        Ok(SlotRecord {
            state,
            generation: le64(b, 0x08),
            host,
            epoch: le32(b, 0x20),
            choosing,
            ticket: le64(b, 0x28),
            intent: le64(b, 0x30),
            op: le32(b, 0x38),
            confirms,
        })
    }
}
