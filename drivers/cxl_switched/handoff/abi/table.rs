// SPDX-License-Identifier: GPL-2.0

//! The records of the tables written under the portal lock: members, owners, handoffs.

use super::super::num::u32_as_usize;
use super::{
    le16, le32, le64, put16, put32, put64, seal, sealed, RecordError, ENTRIES_PER_RECORD, NO_SLOT,
    RECORD_SIZE,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    /// One entry per host slot: [`Member`].
    Members = 1,
    /// One entry per data block: [`Owner`].
    Owners = 2,
    /// One [`Handoff`] per record.
    Handoff = 3,
}

/// One copy of a record of a table written under the portal lock. Every record has two copies;
/// a writer overwrites the older one, so a torn write leaves the newer intact.
///
/// | offset | size | field                                                |
/// |--------|------|------------------------------------------------------|
/// | 0x00   | 4    | kind: 1 members, 2 owners, 3 handoff                 |
/// | 0x04   | 4    | index of the record in its table                     |
/// | 0x08   | 8    | generation: the larger valid copy is the record      |
/// | 0x10   | 8    | transaction that wrote it                            |
/// | 0x18   | 2    | slot of the host that wrote it                       |
/// | 0x1a   | 2    | reserved, zero                                       |
/// | 0x1c   | 4    | epoch of the host that wrote it                      |
/// | 0x20   | 208  | payload: 26 entries of 8 bytes, or one handoff       |
/// | 0xf0   | 12   | reserved, zero                                       |
/// | 0xfc   | 4    | CRC32C of bytes 0x00..0xfc                           |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableRecord {
    pub(crate) kind: Kind,
    pub(crate) index: u32,
    pub(crate) generation: u64,
    pub(crate) txid: u64,
    pub(crate) writer_slot: u16,
    pub(crate) writer_epoch: u32,
    pub(crate) payload: [u8; PAYLOAD_SIZE],
}

/// The payload bytes of a table record.
pub(crate) const PAYLOAD_SIZE: usize = u32_as_usize(ENTRIES_PER_RECORD) * 8;

impl TableRecord {
    /// A record of generation 0 with an empty payload, as formatting writes it.
    pub(crate) fn empty(kind: Kind, index: u32) -> Self {
        TableRecord {
            kind,
            index,
            generation: 0,
            txid: 0,
            writer_slot: NO_SLOT,
            writer_epoch: 0,
            payload: [0; PAYLOAD_SIZE],
        }
    }

    /// The record's bytes, checksum included.
    pub(crate) fn encode(&self) -> [u8; RECORD_SIZE] {
        let mut b = [0u8; RECORD_SIZE];
        put32(&mut b, 0x00, self.kind as u32);
        put32(&mut b, 0x04, self.index);
        put64(&mut b, 0x08, self.generation);
        put64(&mut b, 0x10, self.txid);
        put16(&mut b, 0x18, self.writer_slot);
        put32(&mut b, 0x1c, self.writer_epoch);
        b[0x20..0x20 + PAYLOAD_SIZE].copy_from_slice(&self.payload);
        seal(&mut b);
        b
    }

    /// Decodes one copy, which must be record `index` of table `kind`.
    ///
    /// # Errors
    ///
    /// The [`RecordError`] that says why the copy cannot be used.
    pub(crate) fn decode(
        b: &[u8; RECORD_SIZE],
        kind: Kind,
        index: u32,
    ) -> Result<Self, RecordError> {
        if b.iter().all(|&x| x == 0) {
            return Err(RecordError::Zero);
        }
        if !sealed(b).0 {
            return Err(RecordError::Torn);
        }
        if le32(b, 0x00) != kind as u32 || le32(b, 0x04) != index {
            return Err(RecordError::Invalid);
        }
        let mut payload = [0u8; PAYLOAD_SIZE];
        payload.copy_from_slice(&b[0x20..0x20 + PAYLOAD_SIZE]);
        Ok(TableRecord {
            kind,
            index,
            generation: le64(b, 0x08),
            txid: le64(b, 0x10),
            writer_slot: le16(b, 0x18),
            writer_epoch: le32(b, 0x1c),
            payload,
        })
    }

    /// The 8 bytes of entry `i`, if the payload has it.
    pub(crate) fn entry(&self, i: u32) -> Option<u64> {
        let at = u32_as_usize(i).checked_mul(8)?;
        let b = self.payload.get(at..at.checked_add(8)?)?;
        let mut v = [0u8; 8];
        v.copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    }

    /// Sets the 8 bytes of entry `i`; returns whether the payload has it.
    pub(crate) fn set_entry(&mut self, i: u32, v: u64) -> bool {
        let Some(at) = u32_as_usize(i).checked_mul(8) else {
            return false;
        };
        match self.payload.get_mut(at..at.saturating_add(8)) {
            Some(b) => {
                b.copy_from_slice(&v.to_le_bytes());
                true
            }
            None => false,
        }
    }
}

/// Of the two copies of a record, the one that counts: the valid copy of the larger generation.
/// Returns it and the copy (0 or 1) the next write must go to, or `None` if neither is valid.
pub(crate) fn current(copies: [Result<TableRecord, RecordError>; 2]) -> Option<(TableRecord, u32)> {
    match copies {
        [Ok(a), Ok(b)] if b.generation > a.generation => Some((b, 0)),
        [Ok(a), _] => Some((a, 1)),
        [Err(_), Ok(b)] => Some((b, 0)),
        [Err(_), Err(_)] => None,
    }
}
