// SPDX-License-Identifier: GPL-2.0

//! The portal header's records, version 2.0: encode, decode and validate.
//!
//! All fields are little-endian; every reference into the portal is a device offset, never a
//! host physical address, as each host maps the device at its own address. Every record is
//! [`RECORD_SIZE`] bytes and ends with the CRC32C of the bytes before it.
//!
//! - [`superblock`]: the record at device offset 0: version, geometry, where the tables are.
//! - [`slot`]: the host slots, each written only by the host in it.
//! - [`table`]: the records of the member, owner and handoff tables, written only by the holder
//!   of the portal lock, two copies each.
//! - [`entries`]: the entries of the member and owner tables.
//! - [`handoff`]: the handoff records.
//! - [`manifest`]: the page lists of handoffs, in the data blocks they move.
//!
//! A portal whose first [`EMPTY_BYTES`] bytes are all zero is *empty*: it may be formatted.
//! `Documentation/admin-guide/mm/cxl-switched-abi.rst` is the normative specification.

mod entries;
pub(crate) mod handoff;
pub(crate) mod manifest;
mod slot;
mod superblock;
mod table;

pub(crate) use entries::{Member, MemberState, Owner};
pub(crate) use handoff::{Handoff, HandoffState, Outcome};
pub(crate) use slot::{Confirm, SlotRecord, SlotState, MAX_CONFIRMS};
pub(crate) use superblock::{boot_state, BootState, Geometry, HeaderError, Superblock, Timing};
pub(crate) use table::{current, Kind, TableRecord, PAYLOAD_SIZE};

use super::crc32c::crc32c;

/// The superblock's magic.
pub(crate) const MAGIC: [u8; 8] = *b"CXLSWPTL";
/// The major version this code writes and the only one it reads.
///
/// Version 2 reclaims a silent host's blocks only once it is fenced; version 1 hosts reclaim on
/// lease expiry alone, which is unsafe for a host that pauses. The two cannot share a portal.
pub(crate) const MAJOR: u16 = 2;
/// The minor version this code writes: 1 adds handoff manifests, 2 the target's pulled flag.
pub(crate) const MINOR: u16 = 3;
/// The size of every record: superblock, host slot, table record copy.
pub(crate) const RECORD_SIZE: usize = 256;
/// The size of the superblock record.
/// [`RECORD_SIZE`] as a device offset.
pub(crate) const RECORD_BYTES: u64 = 256;
const _: () = assert!(super::num::usize_as_u64(RECORD_SIZE) == RECORD_BYTES);
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
/// The longest lease a portal has, in ms: ten minutes.
pub(crate) const MAX_LEASE_MS: u32 = 600_000;
/// The most handoff records a portal has.
pub(crate) const MAX_HANDOFFS: u32 = 64;
/// Entries of 8 bytes in a table record's payload.
pub(crate) const ENTRIES_PER_RECORD: u32 = 26;
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

/// The offset of a record's checksum.
const CRC_OFFSET: usize = RECORD_SIZE - 4;

// The field accessors below take offsets that are constants of the record layouts, each inside
// the record or payload it is applied to.

fn le16(b: &[u8], at: usize) -> u16 {
    // PANIC: `at` is a field offset of the layout, inside `b`.
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    // PANIC: `at` is a field offset of the layout, inside `b`.
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    // PANIC: `at` is a field offset of the layout, inside `b`.
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    // PANIC: `at` is a field offset of the layout, inside `b`.
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    // PANIC: `at` is a field offset of the layout, inside `b`.
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    // PANIC: `at` is a field offset of the layout, inside `b`.
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
