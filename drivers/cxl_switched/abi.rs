// SPDX-License-Identifier: GPL-2.0

//! The portal header, version 1.0: the superblock at device offset 0 of a portal's header block.
//!
//! `core`-only: the driver and portalctl build this very file (portalctl through `#[path]`).
//! All fields are little-endian; every reference into the portal is a device offset, never a
//! host physical address, as each host maps the device at its own address.
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0x00   | 8    | magic, `CXLSWPTL`                                              |
//! | 0x08   | 2    | major version (1): a reader refuses a larger one               |
//! | 0x0a   | 2    | minor version (0): a reader ignores what a larger one adds     |
//! | 0x0c   | 4    | record size in bytes (256)                                     |
//! | 0x10   | 8    | generation: +1 on every rewrite of the record                  |
//! | 0x18   | 16   | portal UUID                                                    |
//! | 0x28   | 8    | block size in bytes: a power of two, at least 4096             |
//! | 0x30   | 8    | block count: the whole device, header blocks included          |
//! | 0x38   | 4    | header blocks: blocks at the start never onlined (1)           |
//! | 0x3c   | 4    | host slots (1..=64)                                           |
//! | 0x40   | 8    | device offset of the host slot table (4096)                    |
//! | 0x48   | 4    | host slot size in bytes (512: two records)                                  |
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
//! ([`SlotRecord`], one writer each), then the member, owner and handoff tables
//! ([`TableRecord`], written only by the holder of the portal lock, two copies each).
//! `Documentation/admin-guide/mm/cxl-switched-abi.rst` is the normative specification.
//!
//! A portal whose first [`EMPTY_BYTES`] bytes are all zero is *empty*: it may be formatted.

use crate::crc32c::crc32c;

/// The superblock's magic.
pub(crate) const MAGIC: [u8; 8] = *b"CXLSWPTL";
/// The major version this code writes and the largest it reads.
pub(crate) const MAJOR: u16 = 1;
/// The minor version this code writes.
pub(crate) const MINOR: u16 = 0;
/// The size of every record: superblock, host slot, table record copy.
pub(crate) const RECORD_SIZE: usize = 256;
/// The size of the superblock record.
pub(crate) const SUPERBLOCK_SIZE: usize = RECORD_SIZE;
/// The bytes at the start of a portal that are zero on an empty portal.
pub(crate) const EMPTY_BYTES: usize = 4096;
/// The device offset of the host slot table.
pub(crate) const SLOT_TABLE_OFFSET: u64 = 4096;
/// The size of a host slot: two copies of a slot record.
pub(crate) const SLOT_SIZE: u32 = 512;
/// The most host slots a portal has.
pub(crate) const MAX_HOST_SLOTS: u32 = 64;
/// The most handoff records a portal has.
pub(crate) const MAX_HANDOFFS: u32 = 64;
/// Entries of 8 bytes in a table record's payload.
pub(crate) const ENTRIES_PER_RECORD: usize = 26;
/// Extents in a handoff record.
pub(crate) const MAX_EXTENTS: usize = 8;
/// "No host" in an owner entry.
pub(crate) const NO_SLOT: u16 = 0xffff;
/// In an owner entry: a block its last owner could not stop using (its memory could not be
/// offlined); nobody may claim it until the portal is formatted again.
pub(crate) const QUARANTINED: u16 = 0xfffe;

/// Superblock state: a host is formatting the portal.
pub(crate) const SB_FORMATTING: u32 = 1;
/// Superblock state: the portal is formatted and may be joined.
pub(crate) const SB_READY: u32 = 2;

const CRC_OFFSET: usize = RECORD_SIZE - 4;
const TABLE_ALIGN: u64 = 4096;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Seals a record: stores the CRC32C of its first 252 bytes in its last four.
fn seal(b: &mut [u8; RECORD_SIZE]) {
    let crc = crc32c(&b[..CRC_OFFSET]);
    put32(b, CRC_OFFSET, crc);
}

/// Whether a record's CRC32C matches, and the stored and computed values.
fn sealed(b: &[u8; RECORD_SIZE]) -> (bool, u32, u32) {
    let stored = le32(b, CRC_OFFSET);
    let computed = crc32c(&b[..CRC_OFFSET]);
    (stored == computed, stored, computed)
}

fn align_up(v: u64) -> u64 {
    v.div_ceil(TABLE_ALIGN) * TABLE_ALIGN
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
        put32(&mut b, 0x0c, SUPERBLOCK_SIZE as u32);
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
        if le32(b, 0x0c) as usize != SUPERBLOCK_SIZE {
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
        if self.timing.settle_ms == 0 || self.timing.lease_ms < 4 * self.timing.settle_ms {
            return Err(HeaderError::Geometry(
                "lease is not at least four settle times",
            ));
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
            .handoffs_offset
            .checked_add(u64::from(self.handoffs) * 2 * RECORD_SIZE as u64)
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
        base + (u64::from(index) * 2 + u64::from(copy)) * RECORD_SIZE as u64
    }

    /// The records of table `kind`.
    pub(crate) fn records(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Members => self.member_records(),
            Kind::Owners => self.owner_records(),
            Kind::Handoff => self.handoffs,
        }
    }

    /// The device bytes the header's records span, from offset 0.
    pub(crate) fn header_end(&self) -> u64 {
        self.handoffs_offset + u64::from(self.handoffs) * 2 * RECORD_SIZE as u64
    }
}

fn records_for(entries: u64) -> u32 {
    // Bounded by the checks: at most 2^64 / 2^12 blocks, far fewer in practice.
    u32::try_from(entries.div_ceil(ENTRIES_PER_RECORD as u64)).unwrap_or(u32::MAX)
}

fn table_bytes(entries: u64) -> u64 {
    entries
        .div_ceil(ENTRIES_PER_RECORD as u64)
        .saturating_mul(2 * RECORD_SIZE as u64)
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

/// The state of a host slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Nobody's.
    Free = 0,
    /// A host wrote its claim and waits for it to settle.
    Claiming = 1,
    /// A member's.
    Member = 2,
}

/// A copy of a host slot: written only by the host that occupies it. Every slot has two copies;
/// a writer overwrites the older one, so a torn write leaves the newer intact.
///
/// | offset | size | field                                            |
/// |--------|------|--------------------------------------------------|
/// | 0x00   | 4    | kind, `0x544f4c53` ("SLOT")                      |
/// | 0x04   | 4    | state: 0 free, 1 claiming, 2 member              |
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

/// Why a record cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// All zero: never written.
    Zero,
    /// Checksum mismatch: torn by a write in progress or by a writer's death, or corrupt.
    Torn,
    /// Checksummed, but not the record expected here.
    Invalid,
}

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

/// The tables written under the portal lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
pub(crate) const PAYLOAD_SIZE: usize = ENTRIES_PER_RECORD * 8;

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

    /// The 8 bytes of entry `i`.
    pub(crate) fn entry(&self, i: usize) -> u64 {
        le64(&self.payload, i * 8)
    }

    /// Sets the 8 bytes of entry `i`.
    pub(crate) fn set_entry(&mut self, i: usize, v: u64) {
        put64(&mut self.payload, i * 8, v);
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

/// The state of a member entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        u64::from(self.epoch) | ((self.state as u64) << 32)
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
            epoch: v as u32,
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
        Owner {
            slot: v as u16,
            handoff: (v >> 16) as u16,
            epoch: (v >> 32) as u32,
        }
    }

    /// Whether nobody owns the block.
    pub(crate) fn is_free(&self) -> bool {
        self.slot == NO_SLOT
    }
}

/// The state of a handoff record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandoffState {
    /// Unused; `outcome` tells how its last handoff ended.
    Free = 0,
    /// The source offers its blocks; it still owns them.
    Offered = 1,
    /// The target accepted: it owns the blocks; the source keeps its pages until it releases.
    Accepted = 2,
}

/// How a handoff ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        if nr_extents as usize > MAX_EXTENTS {
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
        })
    }

    /// The extents in use.
    pub(crate) fn extents(&self) -> &[Extent] {
        &self.extents[..self.nr_extents as usize]
    }
}

#[cfg(CONFIG_CXL_SWITCHED_KUNIT_TEST)]
#[kernel::macros::kunit_tests(cxl_switched_abi)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    const GEO: Geometry = Geometry {
        block_size: 128 << 20,
        block_count: 4,
        header_blocks: 1,
        host_slots: 64,
    };
    const TIMING: Timing = Timing {
        lease_ms: 5000,
        settle_ms: 100,
    };

    fn ready(uuid: [u8; 16]) -> Superblock {
        let mut sb = Superblock::new(uuid, GEO, 16, TIMING);
        sb.state = SB_READY;
        sb
    }

    // Pages live on the heap: three of them would crowd a kernel stack.
    fn page_with(rec: &[u8]) -> Result<KVec<u8>> {
        let mut p = KVec::from_elem(0u8, EMPTY_BYTES, GFP_KERNEL)?;
        p[..rec.len()].copy_from_slice(rec);
        Ok(p)
    }

    #[test]
    fn round_trip_and_known_layout() -> Result {
        let sb = ready([7; 16]);
        let b = sb.encode();
        assert_eq!(&b[..8], b"CXLSWPTL");
        assert_eq!(b[0x08], 1);
        assert_eq!(b[0x3c], 64);
        assert_eq!(Superblock::decode(&b), Ok(sb));
        assert_eq!(boot_state(&page_with(&b)?, &GEO), BootState::Formatted(sb));
        Ok(())
    }

    #[test]
    fn zero_is_empty_and_garbage_is_refused() -> Result {
        assert_eq!(boot_state(&page_with(&[])?, &GEO), BootState::Empty);
        let mut p = page_with(&[])?;
        p[EMPTY_BYTES - 1] = 1;
        assert_eq!(
            boot_state(&p, &GEO),
            BootState::Refused(HeaderError::Foreign)
        );
        Ok(())
    }

    #[test]
    fn flipped_byte_newer_major_and_other_device_are_refused() -> Result {
        let b = ready([1; 16]).encode();
        let mut torn = b;
        torn[0x30] ^= 0x40;
        assert!(matches!(
            boot_state(&page_with(&torn)?, &GEO),
            BootState::Refused(HeaderError::Corrupt { .. })
        ));
        let mut newer = ready([1; 16]);
        newer.major = 2;
        assert_eq!(
            boot_state(&page_with(&newer.encode())?, &GEO),
            BootState::Refused(HeaderError::Newer { major: 2, minor: 0 })
        );
        let other = Geometry {
            block_count: 8,
            ..GEO
        };
        assert!(matches!(
            boot_state(&page_with(&b)?, &other),
            BootState::Refused(HeaderError::Geometry(_))
        ));
        Ok(())
    }
}
