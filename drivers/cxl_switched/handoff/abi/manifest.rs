// SPDX-License-Identifier: GPL-2.0

//! Handoff manifests: the page list of a handoff, in data blocks the handoff moves.
//!
//! A handoff record names whole blocks; the workload it moves is a set of 4 KiB pages scattered
//! over them, each at a virtual address of the workload. That list does not fit in a record, so
//! the source writes it, before it offers, into chunks of [`CHUNK_SIZE`] bytes in pages of the
//! blocks it offers, and the record points at the first chunk ([`ManifestRef`]). A chunk holds
//! either runs of pages ([`ManifestEntry`]) or bytes of the workload's opaque state (a VMM's
//! device state, a *blob*).
//!
//! Written by: the source alone, before its offer commits; never changed until the handoff
//! ends. Read by: the target, which must treat every byte as untrusted input.
//!
//! A chunk (all fields little-endian):
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0x00   | 8    | magic `CXLSWMNF`                                               |
//! | 0x08   | 8    | tag: the manifest's, as in the handoff record                  |
//! | 0x10   | 4    | kind: 1 page runs, 2 blob bytes                                |
//! | 0x14   | 4    | sequence: the chunk's place in the chain, from 0               |
//! | 0x18   | 4    | used: entries (kind 1) or bytes (kind 2) in this chunk         |
//! | 0x1c   | 4    | reserved, zero                                                 |
//! | 0x20   | 8    | device offset of the next chunk, 0 for the last                |
//! | 0x28   | 8    | first: pages (kind 1) or blob bytes (kind 2) in earlier chunks |
//! | 0x30   | 16   | reserved, zero                                                 |
//! | 0x40   | ...  | kind 1: entries of 24 bytes; kind 2: bytes                     |
//! | 0xffc  | 4    | CRC32C of bytes 0x000..0xffc                                   |
//!
//! An entry: virtual address (u64), device offset (u64), pages (u32), flags (u32, zero).

use super::super::crc32c::crc32c;
pub(crate) use super::handoff::ManifestRef;
use super::{le32, le64};
use super::{put32, put64};

/// The size of a manifest chunk and of the pages it lists: 4 KiB.
pub(crate) const CHUNK_SIZE: usize = 4096;
/// [`CHUNK_SIZE`] as a device offset.
pub(crate) const CHUNK_BYTES: u64 = 4096;
const _: () = assert!(super::super::num::usize_as_u64(CHUNK_SIZE) == CHUNK_BYTES);
/// The size of a listed page.
pub(crate) const PAGE_BYTES: u64 = CHUNK_BYTES;
/// The magic every chunk starts with.
pub(crate) const CHUNK_MAGIC: [u8; 8] = *b"CXLSWMNF";
/// Where a chunk's entries or bytes start.
pub(crate) const CHUNK_HEADER: usize = 0x40;
/// Where a chunk's checksum is.
const CHUNK_CRC: usize = CHUNK_SIZE - 4;
/// The size of an entry.
pub(crate) const ENTRY_SIZE: usize = 24;
/// Entries in a chunk.
pub(crate) const ENTRIES_PER_CHUNK: usize = (CHUNK_CRC - CHUNK_HEADER) / ENTRY_SIZE;
/// Blob bytes in a chunk.
pub(crate) const BLOB_PER_CHUNK: usize = CHUNK_CRC - CHUNK_HEADER;
/// The most chunks a manifest has: 1024 chunks of 167 runs list 2.6 GiB of scattered pages.
pub(crate) const MAX_CHUNKS: u32 = 1024;
/// The most blob bytes a manifest carries: 64 KiB.
pub(crate) const MAX_BLOB: u32 = 64 << 10;
/// The most pages one entry lists: 4 GiB.
pub(crate) const MAX_RUN_PAGES: u32 = 1 << 20;

/// What a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum ChunkKind {
    /// Runs of pages: [`ManifestEntry`].
    Pages = 1,
    /// Bytes of the blob.
    Blob = 2,
}

/// A run of pages: `pages` pages at device offset `offset`, mapped at virtual address `vaddr`
/// of the workload. Both are multiples of [`PAGE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ManifestEntry {
    pub(crate) vaddr: u64,
    pub(crate) offset: u64,
    pub(crate) pages: u32,
}

/// The header of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub(crate) tag: u64,
    pub(crate) kind: ChunkKind,
    pub(crate) sequence: u32,
    pub(crate) used: u32,
    pub(crate) next: u64,
    pub(crate) first: u64,
}

/// Why a chunk cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// Its checksum does not match: torn, or not a chunk.
    Torn,
    /// Checksummed, but no chunk of this format (magic, kind, reserved fields, count).
    Invalid,
}

/// A chunk in memory: a buffer the caller provides (4 KiB, too large for a kernel stack).
pub(crate) struct Chunk(pub(crate) [u8; CHUNK_SIZE]);

impl Chunk {
    /// A zeroed chunk buffer.
    pub(crate) const ZERO: Chunk = Chunk([0; CHUNK_SIZE]);

    /// Makes the buffer a chunk with header `h` and nothing in it yet.
    pub(crate) fn start(&mut self, h: &ChunkHeader) {
        self.0 = [0; CHUNK_SIZE];
        // PANIC: the magic is the first 8 of 4096 bytes.
        self.0[..8].copy_from_slice(&CHUNK_MAGIC);
        put64(&mut self.0, 0x08, h.tag);
        put32(&mut self.0, 0x10, h.kind as u32);
        put32(&mut self.0, 0x14, h.sequence);
        put32(&mut self.0, 0x18, h.used);
        put64(&mut self.0, 0x20, h.next);
        put64(&mut self.0, 0x28, h.first);
    }

    /// Stores entry `i` (below [`ENTRIES_PER_CHUNK`]).
    pub(crate) fn put_entry(&mut self, i: usize, e: &ManifestEntry) {
        let at = CHUNK_HEADER + (i % ENTRIES_PER_CHUNK) * ENTRY_SIZE;
        put64(&mut self.0, at, e.vaddr);
        put64(&mut self.0, at + 8, e.offset);
        put32(&mut self.0, at + 16, e.pages);
    }

    /// The blob bytes of the chunk, to fill.
    pub(crate) fn blob_mut(&mut self) -> &mut [u8] {
        // PANIC: CHUNK_HEADER < CHUNK_CRC < CHUNK_SIZE.
        &mut self.0[CHUNK_HEADER..CHUNK_CRC]
    }

    /// Seals the chunk; returns its checksum.
    pub(crate) fn seal(&mut self) -> u32 {
        // PANIC: CHUNK_CRC < CHUNK_SIZE.
        let crc = crc32c(&self.0[..CHUNK_CRC]);
        put32(&mut self.0, CHUNK_CRC, crc);
        crc
    }

    /// Checks the chunk and reads its header; returns it with the chunk's checksum.
    ///
    /// # Errors
    ///
    /// [`ChunkError`] for a chunk that is torn or of no known format.
    pub(crate) fn check(&self) -> Result<(ChunkHeader, u32), ChunkError> {
        let stored = le32(&self.0, CHUNK_CRC);
        // PANIC: CHUNK_CRC < CHUNK_SIZE.
        if crc32c(&self.0[..CHUNK_CRC]) != stored {
            return Err(ChunkError::Torn);
        }
        // PANIC: the fields are inside the 4096 bytes.
        if self.0[..8] != CHUNK_MAGIC || le32(&self.0, 0x1c) != 0 || self.0[0x30..0x40] != [0; 16] {
            return Err(ChunkError::Invalid);
        }
        let kind = match le32(&self.0, 0x10) {
            1 => ChunkKind::Pages,
            2 => ChunkKind::Blob,
            _ => return Err(ChunkError::Invalid),
        };
        let used = le32(&self.0, 0x18);
        let room = match kind {
            ChunkKind::Pages => ENTRIES_PER_CHUNK,
            ChunkKind::Blob => BLOB_PER_CHUNK,
        };
        if usize::try_from(used)
            .ok()
            .is_none_or(|u| u == 0 || u > room)
        {
            return Err(ChunkError::Invalid);
        }
        Ok((
            ChunkHeader {
                tag: le64(&self.0, 0x08),
                kind,
                sequence: le32(&self.0, 0x14),
                used,
                next: le64(&self.0, 0x20),
                first: le64(&self.0, 0x28),
            },
            stored,
        ))
    }

    /// Entry `i` of a checked page chunk (below its `used`), and whether its flags are zero.
    pub(crate) fn entry(&self, i: usize) -> (ManifestEntry, bool) {
        let at = CHUNK_HEADER + (i % ENTRIES_PER_CHUNK) * ENTRY_SIZE;
        (
            ManifestEntry {
                vaddr: le64(&self.0, at),
                offset: le64(&self.0, at + 8),
                pages: le32(&self.0, at + 16),
            },
            le32(&self.0, at + 20) == 0,
        )
    }

    /// The first `used` blob bytes of a checked blob chunk.
    pub(crate) fn blob(&self, used: u32) -> &[u8] {
        let n = usize::try_from(used).unwrap_or(0).min(BLOB_PER_CHUNK);
        // PANIC: `n` is at most BLOB_PER_CHUNK, so the range ends before CHUNK_CRC.
        &self.0[CHUNK_HEADER..CHUNK_HEADER + n]
    }
}
