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
//! | 0x3c   | 4    | host slots (1..=256)                                           |
//! | 0x40   | 8    | device offset of the host slot table (4096)                    |
//! | 0x48   | 4    | host slot size in bytes (256)                                  |
//! | 0x4c   | 4    | flags (0; a reader refuses unknown flags of its major version) |
//! | 0x50   | 172  | reserved, zero                                                 |
//! | 0xfc   | 4    | CRC32C of bytes 0x00..0xfc                                     |
//!
//! A portal whose first [`EMPTY_BYTES`] bytes are all zero is *empty*: it may be formatted.

use crate::crc32c::crc32c;

/// The superblock's magic.
pub(crate) const MAGIC: [u8; 8] = *b"CXLSWPTL";
/// The major version this code writes and the largest it reads.
pub(crate) const MAJOR: u16 = 1;
/// The minor version this code writes.
pub(crate) const MINOR: u16 = 0;
/// The size of the superblock record.
pub(crate) const SUPERBLOCK_SIZE: usize = 256;
/// The bytes at the start of a portal that are zero on an empty portal.
pub(crate) const EMPTY_BYTES: usize = 4096;
/// The device offset of the host slot table.
pub(crate) const SLOT_TABLE_OFFSET: u64 = 4096;
/// The size of a host slot.
pub(crate) const SLOT_SIZE: u32 = 256;
/// The most host slots a portal has.
pub(crate) const MAX_HOST_SLOTS: u32 = 256;

const CRC_OFFSET: usize = SUPERBLOCK_SIZE - 4;

/// The geometry of a portal: what the superblock says of the device it lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) block_size: u64,
    pub(crate) block_count: u64,
    pub(crate) header_blocks: u32,
    pub(crate) host_slots: u32,
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
    /// A valid header for this device: join it.
    Formatted(Superblock),
    /// Anything else: refuse it, and online nothing.
    Refused(HeaderError),
}

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

impl Superblock {
    /// A new version 1.0 superblock, generation 1, for a portal of `geometry`.
    pub(crate) fn new(uuid: [u8; 16], geometry: Geometry) -> Self {
        Superblock {
            major: MAJOR,
            minor: MINOR,
            generation: 1,
            uuid,
            geometry,
            slot_offset: SLOT_TABLE_OFFSET,
            slot_size: SLOT_SIZE,
            flags: 0,
        }
    }

    /// The record's bytes, checksum included.
    pub(crate) fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        b[0x00..0x08].copy_from_slice(&MAGIC);
        b[0x08..0x0a].copy_from_slice(&self.major.to_le_bytes());
        b[0x0a..0x0c].copy_from_slice(&self.minor.to_le_bytes());
        b[0x0c..0x10].copy_from_slice(&(SUPERBLOCK_SIZE as u32).to_le_bytes());
        b[0x10..0x18].copy_from_slice(&self.generation.to_le_bytes());
        b[0x18..0x28].copy_from_slice(&self.uuid);
        b[0x28..0x30].copy_from_slice(&self.geometry.block_size.to_le_bytes());
        b[0x30..0x38].copy_from_slice(&self.geometry.block_count.to_le_bytes());
        b[0x38..0x3c].copy_from_slice(&self.geometry.header_blocks.to_le_bytes());
        b[0x3c..0x40].copy_from_slice(&self.geometry.host_slots.to_le_bytes());
        b[0x40..0x48].copy_from_slice(&self.slot_offset.to_le_bytes());
        b[0x48..0x4c].copy_from_slice(&self.slot_size.to_le_bytes());
        b[0x4c..0x50].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crc32c(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a record: magic, major version, checksum, then its own consistency.
    pub(crate) fn decode(b: &[u8; SUPERBLOCK_SIZE]) -> Result<Self, HeaderError> {
        if b[0x00..0x08] != MAGIC {
            return Err(HeaderError::Foreign);
        }
        let stored = le32(b, CRC_OFFSET);
        let computed = crc32c(&b[..CRC_OFFSET]);
        if stored != computed {
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
        let sb = Superblock {
            major,
            minor,
            generation: le64(b, 0x10),
            uuid: {
                let mut u = [0u8; 16];
                u.copy_from_slice(&b[0x18..0x28]);
                u
            },
            geometry: Geometry {
                block_size: le64(b, 0x28),
                block_count: le64(b, 0x30),
                header_blocks: le32(b, 0x38),
                host_slots: le32(b, 0x3c),
            },
            slot_offset: le64(b, 0x40),
            slot_size: le32(b, 0x48),
            flags: le32(b, 0x4c),
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
            return Err(HeaderError::Geometry("host slots are not 1..=256"));
        }
        if self.slot_offset != SLOT_TABLE_OFFSET || self.slot_size != SLOT_SIZE {
            return Err(HeaderError::Geometry(
                "host slot table is not where version 1 puts it",
            ));
        }
        let table_end = u64::from(g.host_slots) * u64::from(SLOT_SIZE) + SLOT_TABLE_OFFSET;
        let header_bytes = g
            .block_size
            .checked_mul(u64::from(g.header_blocks))
            .ok_or(HeaderError::Geometry("header blocks overflow"))?;
        if table_end > header_bytes {
            return Err(HeaderError::Geometry(
                "host slot table does not fit the header blocks",
            ));
        }
        if self.major == MAJOR && self.flags != 0 {
            return Err(HeaderError::Geometry("unknown flags"));
        }
        Ok(())
    }
}

/// Decides what a host that found `start` (the first [`EMPTY_BYTES`] bytes, or more, of a
/// portal of `device` geometry) must do.
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
        Ok(sb) => BootState::Formatted(sb),
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

    // Pages live on the heap: three of them would crowd a kernel stack.
    fn page_with(rec: &[u8]) -> Result<KVec<u8>> {
        let mut p = KVec::from_elem(0u8, EMPTY_BYTES, GFP_KERNEL)?;
        p[..rec.len()].copy_from_slice(rec);
        Ok(p)
    }

    #[test]
    fn round_trip_and_known_layout() -> Result {
        let sb = Superblock::new([7; 16], GEO);
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
        let b = Superblock::new([1; 16], GEO).encode();
        let mut torn = b;
        torn[0x30] ^= 0x40;
        assert!(matches!(
            boot_state(&page_with(&torn)?, &GEO),
            BootState::Refused(HeaderError::Corrupt { .. })
        ));
        let mut newer = Superblock::new([1; 16], GEO);
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
