//! The portal header as portalctl reads it: a view of the driver's own
//! `abi` module (the same file, built here through `#[path]`), for display
//! and JSON.

use serde::Serialize;

use crate::abi::{self, BootState, Geometry, HeaderError, Superblock};

/// The superblock fields, as `portal show --json` prints them.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SuperblockView {
    pub version: String,
    pub generation: u64,
    pub uuid: String,
    pub block_size: u64,
    pub block_count: u64,
    pub header_blocks: u32,
    pub host_slots: u32,
    pub slot_table_offset: u64,
    pub slot_size: u32,
}

/// What a booting host would do with a portal that starts with these bytes.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Inspection {
    /// All zero: a host formats it.
    Empty,
    /// A valid header: a host joins it.
    Formatted { superblock: SuperblockView },
    /// Refused: a host onlines nothing.
    Refused { reason: String },
}

/// The device a header is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// Memory block size of the hosts (bytes).
    pub block_size: u64,
    /// Device size in bytes.
    pub size: u64,
}

/// Bytes a host reads to decide.
pub const START_BYTES: usize = abi::EMPTY_BYTES;

fn uuid_text(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

fn view(sb: &Superblock) -> SuperblockView {
    SuperblockView {
        version: format!("{}.{}", sb.major, sb.minor),
        generation: sb.generation,
        uuid: uuid_text(&sb.uuid),
        block_size: sb.geometry.block_size,
        block_count: sb.geometry.block_count,
        header_blocks: sb.geometry.header_blocks,
        host_slots: sb.geometry.host_slots,
        slot_table_offset: sb.slot_offset,
        slot_size: sb.slot_size,
    }
}

fn reason(e: &HeaderError) -> String {
    match e {
        HeaderError::Corrupt { stored, computed } => {
            format!(
                "{} (stored {stored:#010x}, computed {computed:#010x})",
                e.as_str()
            )
        }
        HeaderError::Newer { major, minor } => format!("{} ({major}.{minor})", e.as_str()),
        _ => e.as_str().to_string(),
    }
}

/// Decides, as the driver does at probe, from the first bytes of a portal.
/// Without a device, a valid header is checked against its own geometry.
pub fn inspect(start: &[u8], device: Option<Device>) -> Inspection {
    let geometry = match device {
        Some(d) => Geometry {
            block_size: d.block_size,
            block_count: d.size.checked_div(d.block_size).unwrap_or(0),
            header_blocks: crate::layout::HEADER_BLOCKS as u32,
            host_slots: 0,
        },
        None => {
            // Trust the record's own geometry: decode it first.
            let mut rec = [0u8; abi::SUPERBLOCK_SIZE];
            match start.get(..abi::SUPERBLOCK_SIZE) {
                Some(r) => rec.copy_from_slice(r),
                None => {
                    return Inspection::Refused {
                        reason: "fewer than 4096 bytes read".into(),
                    }
                }
            }
            match Superblock::decode(&rec) {
                Ok(sb) => sb.geometry,
                Err(_) => Geometry {
                    block_size: 0,
                    block_count: 0,
                    header_blocks: 0,
                    host_slots: 0,
                },
            }
        }
    };
    match abi::boot_state(start, &geometry) {
        BootState::Empty => Inspection::Empty,
        BootState::Formatted(sb) => Inspection::Formatted {
            superblock: view(&sb),
        },
        BootState::Refused(e) => Inspection::Refused { reason: reason(&e) },
    }
}

/// A version 1.0 superblock record for a portal of `size` bytes in blocks
/// of `block_size`, as a host formats it (for tests and for seeding lab
/// portals).
pub fn format_record(uuid: [u8; 16], block_size: u64, size: u64, host_slots: u32) -> Vec<u8> {
    let sb = Superblock::new(
        uuid,
        Geometry {
            block_size,
            block_count: size.checked_div(block_size).unwrap_or(0),
            header_blocks: crate::layout::HEADER_BLOCKS as u32,
            host_slots,
        },
    );
    sb.encode().to_vec()
}
