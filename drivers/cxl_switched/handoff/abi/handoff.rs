// SPDX-License-Identifier: GPL-2.0

//! Handoff records: a set of extents a source host offers to a target host.

use super::super::num::u32_as_usize;
use super::{le16, le32, le64, put16, put32, put64, MAX_EXTENTS, NO_SLOT, PAYLOAD_SIZE};

/// Where the manifest reference is in the payload (record offset 0x80).
const MANIFEST_AT: usize = 0x60;

/// Where the target's flags are in the payload (record offset 0xa4).
const FLAGS_AT: usize = 0x84;

/// Target flag: the target no longer reads the source's pages (minor 2).
const PULLED: u32 = 1;

/// Target flag: the target mapped the pages into a process, which may have changed them
/// (minor 3).
const MAPPED: u32 = 2;

/// The state of a handoff record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum HandoffState {
    /// Unused; `outcome` tells how its last handoff ended.
    Free = 0,
    /// The source offers its blocks; it still owns them.
    Offered = 1,
    /// The target accepted: it owns the blocks; the source keeps its pages until it releases
    /// (once the target set [`Handoff::pulled`], for a handoff with a manifest).
    Accepted = 2,
}

/// How a handoff ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Outcome {
    /// Still running, or never used.
    None = 0,
    /// The source released: the target owns the blocks.
    Released = 1,
    /// Cancelled or undone after a death: the source owns the blocks (or they were reclaimed).
    RolledBack = 2,
}

/// A run of data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Extent {
    pub(crate) start: u32,
    pub(crate) count: u32,
}

/// The reference to a handoff's manifest (`abi::manifest`, which the tools build; the
/// driver only carries it) in a handoff record (record offsets 0x80..0xa4).
///
/// | offset | size | field                                                      |
/// |--------|------|------------------------------------------------------------|
/// | 0x80   | 8    | device offset of the first chunk, 0: no manifest           |
/// | 0x88   | 8    | tag, in every chunk                                        |
/// | 0x90   | 8    | pages listed                                               |
/// | 0x98   | 4    | chunks                                                     |
/// | 0x9c   | 4    | blob bytes                                                 |
/// | 0xa0   | 4    | CRC32C of the chunks' checksums (4 bytes each), in order   |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ManifestRef {
    pub(crate) offset: u64,
    pub(crate) tag: u64,
    pub(crate) pages: u64,
    pub(crate) chunks: u32,
    pub(crate) blob_bytes: u32,
    pub(crate) crc: u32,
}

impl ManifestRef {
    /// No manifest: a handoff of whole blocks.
    pub(crate) const NONE: ManifestRef = ManifestRef {
        offset: 0,
        tag: 0,
        pages: 0,
        chunks: 0,
        blob_bytes: 0,
        crc: 0,
    };

    /// Whether the handoff has a manifest.
    pub(crate) fn is_some(&self) -> bool {
        self.offset != 0
    }

    /// Writes the reference at `at` of a handoff payload.
    fn encode(&self, payload: &mut [u8], at: usize) {
        put64(payload, at, self.offset);
        put64(payload, at + 0x08, self.tag);
        put64(payload, at + 0x10, self.pages);
        put32(payload, at + 0x18, self.chunks);
        put32(payload, at + 0x1c, self.blob_bytes);
        put32(payload, at + 0x20, self.crc);
    }

    /// Reads the reference at `at` of a handoff payload. Any values: a reader validates them
    /// against the chunks.
    fn decode(payload: &[u8], at: usize) -> Self {
        ManifestRef {
            offset: le64(payload, at),
            tag: le64(payload, at + 0x08),
            pages: le64(payload, at + 0x10),
            chunks: le32(payload, at + 0x18),
            blob_bytes: le32(payload, at + 0x1c),
            crc: le32(payload, at + 0x20),
        }
    }
}

/// A handoff record: the payload of record `index` of the handoff table.
///
/// | offset | size | field                                            |
/// |--------|------|--------------------------------------------------|
/// | 0x20   | 8    | handoff id (the offer's transaction)             |
/// | 0x28   | 4    | state: 0 free, 1 offered, 2 accepted             |
/// | 0x2c   | 4    | outcome: 0 none, 1 released, 2 rolled back       |
/// | 0x30   | 2    | source slot                                      |
/// | 0x32   | 2    | target slot                                      |
/// | 0x34   | 4    | source epoch                                     |
/// | 0x38   | 4    | target epoch                                     |
/// | 0x3c   | 4    | extents in use (0..=8)                           |
/// | 0x40   | 64   | extents: start block (u32), block count (u32)    |
/// | 0x80   | 36   | manifest: [`ManifestRef`] (all zero: none)       |
/// | 0xa4   | 4    | target flags: bit 0 pulled (minor 2), bit 1      |
/// |        |      | mapped (minor 3)                                 |
///
/// Who writes what: the source the offer (every field but the flags), the target the accept
/// (state) and the flags, the source the release, either party a cancel, a reaper the end of
/// a handoff of a host it reaps; each under the portal lock, in a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handoff {
    pub(crate) id: u64,
    pub(crate) state: HandoffState,
    pub(crate) outcome: Outcome,
    pub(crate) source: u16,
    pub(crate) target: u16,
    pub(crate) source_epoch: u32,
    pub(crate) target_epoch: u32,
    pub(crate) extents: [Extent; MAX_EXTENTS],
    pub(crate) nr_extents: u32,
    pub(crate) manifest: ManifestRef,
    /// Set by the target once it no longer reads the source's pages (it pulled them into its
    /// own memory, or the workload ended): the source may then free them and release.
    pub(crate) pulled: bool,
    /// Set by the target before it maps the pages into a process, which may then change them:
    /// from then on the source's process must not resume, even if the handoff is rolled back
    /// (its target died). A free record keeps the flags its last handoff ended with.
    pub(crate) mapped: bool,
}

impl Handoff {
    /// An unused record.
    pub(crate) const FREE: Handoff = Handoff {
        id: 0,
        state: HandoffState::Free,
        outcome: Outcome::None,
        source: NO_SLOT,
        target: NO_SLOT,
        source_epoch: 0,
        target_epoch: 0,
        extents: [Extent { start: 0, count: 0 }; MAX_EXTENTS],
        nr_extents: 0,
        manifest: ManifestRef::NONE,
        pulled: false,
        mapped: false,
    };

    /// Writes the handoff into a record's payload.
    pub(crate) fn encode(&self, payload: &mut [u8; PAYLOAD_SIZE]) {
        *payload = [0; PAYLOAD_SIZE];
        put64(payload, 0x00, self.id);
        put32(payload, 0x08, self.state as u32);
        put32(payload, 0x0c, self.outcome as u32);
        put16(payload, 0x10, self.source);
        put16(payload, 0x12, self.target);
        put32(payload, 0x14, self.source_epoch);
        put32(payload, 0x18, self.target_epoch);
        put32(payload, 0x1c, self.nr_extents);
        for (i, e) in self.extents.iter().enumerate() {
            put32(payload, 0x20 + i * 8, e.start);
            put32(payload, 0x24 + i * 8, e.count);
        }
        self.manifest.encode(payload, MANIFEST_AT);
        let flags = if self.pulled { PULLED } else { 0 } | if self.mapped { MAPPED } else { 0 };
        put32(payload, FLAGS_AT, flags);
    }

    /// Reads the handoff from a record's payload.
    pub(crate) fn decode(payload: &[u8; PAYLOAD_SIZE]) -> Option<Self> {
        let state = match le32(payload, 0x08) {
            0 => HandoffState::Free,
            1 => HandoffState::Offered,
            2 => HandoffState::Accepted,
            _ => return None,
        };
        let outcome = match le32(payload, 0x0c) {
            0 => Outcome::None,
            1 => Outcome::Released,
            2 => Outcome::RolledBack,
            _ => return None,
        };
        let nr_extents = le32(payload, 0x1c);
        if u32_as_usize(nr_extents) > MAX_EXTENTS {
            return None;
        }
        let mut extents = [Extent::default(); MAX_EXTENTS];
        for (i, e) in extents.iter_mut().enumerate() {
            e.start = le32(payload, 0x20 + i * 8);
            e.count = le32(payload, 0x24 + i * 8);
        }
        Some(Handoff {
            id: le64(payload, 0x00),
            state,
            outcome,
            source: le16(payload, 0x10),
            target: le16(payload, 0x12),
            source_epoch: le32(payload, 0x14),
            target_epoch: le32(payload, 0x18),
            extents,
            nr_extents,
            manifest: ManifestRef::decode(payload, MANIFEST_AT),
            // Flags a later minor version adds are ignored.
            pulled: le32(payload, FLAGS_AT) & PULLED != 0,
            mapped: le32(payload, FLAGS_AT) & MAPPED != 0,
        })
    }

    /// The extents in use.
    pub(crate) fn extents(&self) -> &[Extent] {
        // `decode` and every writer keep `nr_extents <= MAX_EXTENTS`.
        self.extents
            .get(..u32_as_usize(self.nr_extents))
            .unwrap_or(&[])
    }
}
