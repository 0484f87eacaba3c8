// SPDX-License-Identifier: GPL-2.0

//! The superblock: the record at device offset 0 of a portal's header block.
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0x00   | 8    | magic, `CXLSWPTL`                                              |
//! | 0x08   | 2    | major version (2): a reader refuses any other                  |
//! | 0x0a   | 2    | minor version (3): a reader ignores what a larger one adds     |
//! | 0x0c   | 4    | record size in bytes (256)                                     |
//! | 0x10   | 8    | generation: +1 on every rewrite of the record                  |
//! | 0x18   | 16   | portal UUID                                                    |
//! | 0x28   | 8    | block size in bytes: a power of two, at least 4096             |
//! | 0x30   | 8    | block count: the whole device, header blocks included          |
//! | 0x38   | 4    | header blocks: blocks at the start never onlined (1)           |
//! | 0x3c   | 4    | host slots (1..=64)                                            |
//! | 0x40   | 8    | device offset of the host slot table (4096)                    |
//! | 0x48   | 4    | host slot size in bytes (512: two records)                     |
//! | 0x4c   | 4    | flags (0; a reader refuses unknown flags of its major version) |
//! | 0x50   | 8    | device offset of the member table                              |
//! | 0x58   | 8    | device offset of the owner table                               |
//! | 0x60   | 8    | device offset of the handoff table                             |
//! | 0x68   | 4    | handoff records (1..=64)                                       |
//! | 0x6c   | 4    | lease in milliseconds                                          |
//! | 0x70   | 4    | settle time in milliseconds (slot and format claims)           |
//! | 0x74   | 4    | state: 1 formatting, 2 ready                                   |
//! | 0x78   | 132  | reserved, zero                                                 |
//! | 0xfc   | 4    | CRC32C of bytes 0x00..0xfc                                     |
//!
//! The tables follow, each at a 4096-aligned device offset inside the header blocks: host slots
//! ([`super::SlotRecord`], one writer each), then the member, owner and handoff tables
//! ([`super::TableRecord`], written only by the holder of the portal lock, two copies each).

use super::super::num::{u32_as_usize, usize_as_u64};
use super::{
    le16, le32, le64, put16, put32, put64, seal, sealed, Kind, EMPTY_BYTES, ENTRIES_PER_RECORD,
    MAGIC, MAJOR, MAX_HANDOFFS, MAX_HOST_SLOTS, MAX_LEASE_MS, MINOR, RECORD_SIZE, SB_FORMATTING,
    SB_READY, SLOT_SIZE, SLOT_TABLE_OFFSET, SUPERBLOCK_SIZE,
};

/// Tables start at device offsets that are multiples of this.
const TABLE_ALIGN: u64 = 4096;

/// The record size field's value.
const RECORD_SIZE_FIELD: u32 = 256;
const _: () = assert!(u32_as_usize(RECORD_SIZE_FIELD) == SUPERBLOCK_SIZE);

/// The bytes of the two copies of a table record.
const RECORD_PAIR: u64 = 2 * usize_as_u64(RECORD_SIZE);

fn align_up(v: u64) -> u64 {
    v.div_ceil(TABLE_ALIGN).saturating_mul(TABLE_ALIGN)
}
/// The geometry of a portal: what the superblock says of the device it lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) block_size: u64,
    pub(crate) block_count: u64,
    pub(crate) header_blocks: u32,
    pub(crate) host_slots: u32,
}

impl Geometry {
    /// Blocks that may be owned and onlined: all but the header blocks.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.block_count
            .saturating_sub(u64::from(self.header_blocks))
    }
}

/// The timing every host of a portal agrees on, fixed when it is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// A host whose slot has not changed for this long is expired.
    pub(crate) lease_ms: u32,
    /// How long a claim of the superblock or of a slot must survive before it is won.
    pub(crate) settle_ms: u32,
}

/// A decoded superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub(crate) major: u16,
    pub(crate) minor: u16,
    pub(crate) generation: u64,
    pub(crate) uuid: [u8; 16],
    pub(crate) geometry: Geometry,
    pub(crate) slot_offset: u64,
    pub(crate) slot_size: u32,
    pub(crate) flags: u32,
    pub(crate) members_offset: u64,
    pub(crate) owners_offset: u64,
    pub(crate) handoffs_offset: u64,
    pub(crate) handoffs: u32,
    pub(crate) timing: Timing,
    pub(crate) state: u32,
}

/// Why a superblock is not one this code may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Not zero and not a portal header: somebody else's data.
    Foreign,
    /// A portal header whose checksum does not match: torn or corrupt.
    Corrupt { stored: u32, computed: u32 },
    /// A portal header of a newer major version.
    Newer { major: u16, minor: u16 },
    /// A portal header of an older major version, whose hosts this one cannot share it with.
    Older { major: u16, minor: u16 },
    /// A valid record that describes an impossible or different portal.
    Geometry(&'static str),
}

impl HeaderError {
    /// What to tell the administrator.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            HeaderError::Foreign => "not a portal header (unknown magic)",
            HeaderError::Corrupt { .. } => "portal header checksum mismatch (torn or corrupt)",
            HeaderError::Newer { .. } => "portal header of a newer major version",
            HeaderError::Older { .. } => {
                "portal header of major version 1, whose hosts reclaim without fencing"
            }
            HeaderError::Geometry(why) => why,
        }
    }
}

/// What a booting host finds at the start of a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BootState {
    /// All zero: format it.
    Empty,
    /// Another host is formatting it (or died doing so): wait, then format it if it stays so.
    Formatting(Superblock),
    /// A valid header for this device: join it.
    Formatted(Superblock),
    /// Anything else: refuse it, and online nothing.
    Refused(HeaderError),
}

impl Superblock {
    /// A new version 1.0 superblock, generation 1, in state formatting, for a portal of
    /// `geometry` with `handoffs` handoff records; the tables are laid out one after the other.
    pub(crate) fn new(uuid: [u8; 16], geometry: Geometry, handoffs: u32, timing: Timing) -> Self {
        let slots_end = SLOT_TABLE_OFFSET + u64::from(geometry.host_slots) * u64::from(SLOT_SIZE);
        let members_offset = align_up(slots_end);
        let members_end = members_offset + table_bytes(u64::from(geometry.host_slots));
        let owners_offset = align_up(members_end);
        let owners_end = owners_offset + table_bytes(geometry.data_blocks());
        Superblock {
            major: MAJOR,
            minor: MINOR,
            generation: 1,
            uuid,
            geometry,
            slot_offset: SLOT_TABLE_OFFSET,
            slot_size: SLOT_SIZE,
            flags: 0,
            members_offset,
            owners_offset,
            handoffs_offset: align_up(owners_end),
            handoffs,
            timing,
            state: SB_FORMATTING,
        }
    }

    /// The record's bytes, checksum included.
    pub(crate) fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        b[0x00..0x08].copy_from_slice(&MAGIC);
        put16(&mut b, 0x08, self.major);
        put16(&mut b, 0x0a, self.minor);
        put32(&mut b, 0x0c, RECORD_SIZE_FIELD);
        put64(&mut b, 0x10, self.generation);
        b[0x18..0x28].copy_from_slice(&self.uuid);
        put64(&mut b, 0x28, self.geometry.block_size);
        put64(&mut b, 0x30, self.geometry.block_count);
        put32(&mut b, 0x38, self.geometry.header_blocks);
        put32(&mut b, 0x3c, self.geometry.host_slots);
        put64(&mut b, 0x40, self.slot_offset);
        put32(&mut b, 0x48, self.slot_size);
        put32(&mut b, 0x4c, self.flags);
        put64(&mut b, 0x50, self.members_offset);
        put64(&mut b, 0x58, self.owners_offset);
        put64(&mut b, 0x60, self.handoffs_offset);
        put32(&mut b, 0x68, self.handoffs);
        put32(&mut b, 0x6c, self.timing.lease_ms);
        put32(&mut b, 0x70, self.timing.settle_ms);
        put32(&mut b, 0x74, self.state);
        seal(&mut b);
        b
    }

    /// Decodes and checks a record: magic, major version, checksum, then its own consistency.
    ///
    /// # Errors
    ///
    /// The [`HeaderError`] that says why the record is not a superblock to use.
    pub(crate) fn decode(b: &[u8; SUPERBLOCK_SIZE]) -> Result<Self, HeaderError> {
        if b[0x00..0x08] != MAGIC {
            return Err(HeaderError::Foreign);
        }
        let (ok, stored, computed) = sealed(b);
        if !ok {
            return Err(HeaderError::Corrupt { stored, computed });
        }
        let (major, minor) = (le16(b, 0x08), le16(b, 0x0a));
        if major > MAJOR {
            return Err(HeaderError::Newer { major, minor });
        }
        if major == 0 {
            return Err(HeaderError::Geometry("portal header of major version 0"));
        }
        if major < MAJOR {
            return Err(HeaderError::Older { major, minor });
        }
        if le32(b, 0x0c) != RECORD_SIZE_FIELD {
            return Err(HeaderError::Geometry(
                "portal header record size is not 256",
            ));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[0x18..0x28]);
        let sb = Superblock {
            major,
            minor,
            generation: le64(b, 0x10),
            uuid,
            geometry: Geometry {
                block_size: le64(b, 0x28),
                block_count: le64(b, 0x30),
                header_blocks: le32(b, 0x38),
                host_slots: le32(b, 0x3c),
            },
            slot_offset: le64(b, 0x40),
            slot_size: le32(b, 0x48),
            flags: le32(b, 0x4c),
            members_offset: le64(b, 0x50),
            owners_offset: le64(b, 0x58),
            handoffs_offset: le64(b, 0x60),
            handoffs: le32(b, 0x68),
            timing: Timing {
                lease_ms: le32(b, 0x6c),
                settle_ms: le32(b, 0x70),
            },
            state: le32(b, 0x74),
        };
        sb.check()?;
        Ok(sb)
    }

    /// Checks that the record describes a possible portal.
    fn check(&self) -> Result<(), HeaderError> {
        let g = &self.geometry;
        if g.block_size < 4096 || !g.block_size.is_power_of_two() {
            return Err(HeaderError::Geometry(
                "block size is not a power of two of at least 4096",
            ));
        }
        if g.header_blocks == 0 || u64::from(g.header_blocks) >= g.block_count {
            return Err(HeaderError::Geometry(
                "no block is left after the header blocks",
            ));
        }
        if g.host_slots == 0 || g.host_slots > MAX_HOST_SLOTS {
            return Err(HeaderError::Geometry("host slots are not 1..=64"));
        }
        if self.slot_offset != SLOT_TABLE_OFFSET || self.slot_size != SLOT_SIZE {
            return Err(HeaderError::Geometry(
                "host slot table is not where version 1 puts it",
            ));
        }
        if self.handoffs == 0 || self.handoffs > MAX_HANDOFFS {
            return Err(HeaderError::Geometry("handoff records are not 1..=64"));
        }
        if self.timing.settle_ms == 0
            || u64::from(self.timing.lease_ms) < 4 * u64::from(self.timing.settle_ms)
        {
            return Err(HeaderError::Geometry(
                "lease is not at least four settle times",
            ));
        }
        if self.timing.lease_ms > MAX_LEASE_MS {
            return Err(HeaderError::Geometry("lease is longer than 600000 ms"));
        }
        if self.major == MAJOR && self.flags != 0 {
            return Err(HeaderError::Geometry("unknown flags"));
        }
        if self.state != SB_FORMATTING && self.state != SB_READY {
            return Err(HeaderError::Geometry("unknown superblock state"));
        }
        // The tables, in order, without overlap, inside the header blocks.
        let slots_end = u64::from(g.host_slots) * u64::from(SLOT_SIZE) + SLOT_TABLE_OFFSET;
        let members_end = self
            .members_offset
            .checked_add(table_bytes(u64::from(g.host_slots)))
            .ok_or(HeaderError::Geometry("member table overflows"))?;
        let owners_end = self
            .owners_offset
            .checked_add(table_bytes(g.data_blocks()))
            .ok_or(HeaderError::Geometry("owner table overflows"))?;
        let handoffs_end = self
            .header_end()
            .ok_or(HeaderError::Geometry("handoff table overflows"))?;
        let header_bytes = g
            .block_size
            .checked_mul(u64::from(g.header_blocks))
            .ok_or(HeaderError::Geometry("header blocks overflow"))?;
        let aligned = [
            self.members_offset,
            self.owners_offset,
            self.handoffs_offset,
        ]
        .iter()
        .all(|o| o % TABLE_ALIGN == 0);
        if !aligned
            || self.members_offset < slots_end
            || self.owners_offset < members_end
            || self.handoffs_offset < owners_end
        {
            return Err(HeaderError::Geometry("tables are misaligned or overlap"));
        }
        if handoffs_end > header_bytes {
            return Err(HeaderError::Geometry("tables do not fit the header blocks"));
        }
        Ok(())
    }

    /// The device offset of host slot `slot`.
    pub(crate) fn slot_offset(&self, slot: u32) -> u64 {
        self.slot_offset + u64::from(slot) * u64::from(self.slot_size)
    }

    /// The records of the member table.
    pub(crate) fn member_records(&self) -> u32 {
        records_for(u64::from(self.geometry.host_slots))
    }

    /// The records of the owner table.
    pub(crate) fn owner_records(&self) -> u32 {
        records_for(self.geometry.data_blocks())
    }

    /// The device offset of copy `copy` (0 or 1) of record `index` of table `kind`.
    pub(crate) fn record_offset(&self, kind: Kind, index: u32, copy: u32) -> u64 {
        let base = match kind {
            Kind::Members => self.members_offset,
            Kind::Owners => self.owners_offset,
            Kind::Handoff => self.handoffs_offset,
        };
        base + (u64::from(index) * 2 + u64::from(copy)) * usize_as_u64(RECORD_SIZE)
    }

    /// The records of table `kind`.
    pub(crate) fn records(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Members => self.member_records(),
            Kind::Owners => self.owner_records(),
            Kind::Handoff => self.handoffs,
        }
    }

    /// The device bytes the header's records span, from offset 0: the end of the handoff table,
    /// the last one. `None` if that does not fit in 64 bits (which [`Superblock::decode`]
    /// refuses).
    pub(crate) fn header_end(&self) -> Option<u64> {
        self.handoffs_offset
            .checked_add(u64::from(self.handoffs).checked_mul(RECORD_PAIR)?)
    }
}

fn records_for(entries: u64) -> u32 {
    // Bounded by the checks: at most 2^64 / 2^12 blocks, far fewer in practice.
    u32::try_from(entries.div_ceil(u64::from(ENTRIES_PER_RECORD))).unwrap_or(u32::MAX)
}

fn table_bytes(entries: u64) -> u64 {
    entries
        .div_ceil(u64::from(ENTRIES_PER_RECORD))
        .saturating_mul(RECORD_PAIR)
}

/// Decides what a host that found `start` (the first [`EMPTY_BYTES`] bytes, or more, of a
/// portal of `device` geometry) must do. `device.host_slots` is not compared: the portal's
/// formatter chose it.
pub(crate) fn boot_state(start: &[u8], device: &Geometry) -> BootState {
    let Some(head) = start.get(..EMPTY_BYTES) else {
        return BootState::Refused(HeaderError::Geometry("fewer than 4096 bytes read"));
    };
    if head.iter().all(|&b| b == 0) {
        return BootState::Empty;
    }
    let mut rec = [0u8; SUPERBLOCK_SIZE];
    rec.copy_from_slice(&head[..SUPERBLOCK_SIZE]);
    match Superblock::decode(&rec) {
        Err(e) => BootState::Refused(e),
        Ok(sb) if sb.geometry.block_size != device.block_size => BootState::Refused(
            HeaderError::Geometry("block size differs from this host's memory block size"),
        ),
        Ok(sb) if sb.geometry.block_count != device.block_count => BootState::Refused(
            HeaderError::Geometry("block count differs from the device's size"),
        ),
        Ok(sb) if sb.geometry.header_blocks != device.header_blocks => BootState::Refused(
            HeaderError::Geometry("header blocks differ from this driver's"),
        ),
        Ok(_) if head[SUPERBLOCK_SIZE..].iter().any(|&b| b != 0) => BootState::Refused(
            HeaderError::Geometry("bytes after the superblock in its page are not zero"),
        ),
        Ok(sb) if sb.state == SB_FORMATTING => BootState::Formatting(sb),
        Ok(sb) => BootState::Formatted(sb),
    }
}
