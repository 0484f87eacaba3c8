// SPDX-License-Identifier: GPL-2.0

//! Writing and reading a handoff's manifest: the pages it moves (see [`super::abi::manifest`]).
//!
//! The source writes the chunks, each written back, before the offer that references them
//! commits; a source that dies before that leaves chunks nobody references. The target reads
//! them as untrusted input: every chunk and every listed page must lie in the blocks the
//! handoff moves, no page may be listed twice (nor be a chunk), the runs ascend in virtual
//! address without overlap, and the totals and the chain checksum must match the record.

use super::super::crc32c;
use super::abi::manifest::ChunkError;
use super::abi::manifest::{
    Chunk, ChunkHeader, ChunkKind, ManifestEntry, ManifestRef, BLOB_PER_CHUNK, CHUNK_BYTES,
    CHUNK_SIZE, ENTRIES_PER_CHUNK, MAX_BLOB, MAX_CHUNKS, MAX_RUN_PAGES, PAGE_BYTES,
};
use super::abi::{Handoff, Superblock};
use super::{Error, Medium};

/// What a manifest lists, in the order of its chunks.
pub(crate) enum Item<'a> {
    /// A run of pages.
    Pages(ManifestEntry),
    /// The next bytes of the blob.
    Blob(&'a [u8]),
}

/// The chunks a manifest of `entries` runs and `blob` bytes takes.
///
/// # Errors
///
/// [`Error::Invalid`] for no runs, a blob larger than [`MAX_BLOB`] or more than [`MAX_CHUNKS`]
/// chunks.
pub(crate) fn chunks_needed(entries: usize, blob: usize) -> Result<u32, Error> {
    if entries == 0 {
        return Err(Error::Invalid("a manifest lists at least one page"));
    }
    if u32::try_from(blob).ok().is_none_or(|b| b > MAX_BLOB) {
        return Err(Error::Invalid("the blob is larger than 64 KiB"));
    }
    let n = entries.div_ceil(ENTRIES_PER_CHUNK) + blob.div_ceil(BLOB_PER_CHUNK);
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_CHUNKS)
        .ok_or(Error::Invalid("the manifest needs more than 1024 chunks"))
}

/// The end of `pages` pages from `start`, if it does not overflow.
fn run_end(start: u64, pages: u32) -> Option<u64> {
    start.checked_add(u64::from(pages).checked_mul(PAGE_BYTES)?)
}

/// The index of the page at device offset `offset` among the pages of `h`'s blocks, in the
/// order of its extents; `None` if it is not page-aligned or not in them.
pub(crate) fn page_index(sb: &Superblock, h: &Handoff, offset: u64) -> Option<u64> {
    let bs = sb.geometry.block_size;
    if offset % PAGE_BYTES != 0 || bs == 0 || bs % PAGE_BYTES != 0 {
        return None;
    }
    let per_block = bs / PAGE_BYTES;
    let block = (offset / bs).checked_sub(u64::from(sb.geometry.header_blocks))?;
    let mut before = 0u64;
    for e in h.extents() {
        let start = u64::from(e.start);
        if block >= start && block < start + u64::from(e.count) {
            let blocks = before.checked_add(block - start)?;
            return blocks
                .checked_mul(per_block)?
                .checked_add(offset % bs / PAGE_BYTES);
        }
        before = before.checked_add(u64::from(e.count))?;
    }
    None
}

/// The pages of `h`'s blocks: the bits a reader's `seen` map needs.
pub(crate) fn pages_in(sb: &Superblock, h: &Handoff) -> u64 {
    let per_block = sb.geometry.block_size / PAGE_BYTES;
    h.extents()
        .iter()
        .map(|e| u64::from(e.count).saturating_mul(per_block))
        .fold(0u64, u64::saturating_add)
}

/// Marks page `offset` seen; an error if it is not in `h`'s blocks or was seen before.
fn mark(sb: &Superblock, h: &Handoff, seen: &mut [u64], offset: u64) -> Result<(), Error> {
    let i = page_index(sb, h, offset).ok_or(Error::Manifest(
        "a page or chunk is not in the blocks handed off",
    ))?;
    let word = usize::try_from(i / 64)
        .ok()
        .and_then(|w| seen.get_mut(w))
        .ok_or(Error::Manifest("a page is past the reader's map"))?;
    let bit = 1u64 << (i % 64);
    if *word & bit != 0 {
        return Err(Error::Manifest("a page is listed twice"));
    }
    *word |= bit;
    Ok(())
}

/// Writes the manifest of `entries` (ascending, non-overlapping virtual runs) and `blob` into
/// chunks at device offsets `at` (page-aligned, in the blocks the source will offer), blob
/// chunks first, each written back; `buf` is the chunk buffer. Returns the reference the offer
/// records, with `tag` in every chunk.
///
/// # Errors
///
/// [`Error::Invalid`] for runs that are empty, unaligned, overflow or overlap, a blob that is too
/// large, or `at` not holding exactly the chunks needed ([`chunks_needed`]); the medium's error.
pub(crate) fn write_manifest<M: Medium>(
    m: &M,
    tag: u64,
    at: &[u64],
    entries: &[ManifestEntry],
    blob: &[u8],
    buf: &mut Chunk,
) -> Result<ManifestRef, Error> {
    let needed = chunks_needed(entries.len(), blob.len())?;
    if usize::try_from(needed).ok() != Some(at.len()) {
        return Err(Error::Invalid("the chunks given are not the chunks needed"));
    }
    let mut pages = 0u64;
    let mut prev_end = 0u64;
    for e in entries {
        let end = run_end(e.vaddr, e.pages);
        if e.pages == 0
            || e.pages > MAX_RUN_PAGES
            || e.vaddr % PAGE_BYTES != 0
            || e.offset % PAGE_BYTES != 0
            || e.vaddr < prev_end
            || end.is_none()
            || run_end(e.offset, e.pages).is_none()
        {
            return Err(Error::Invalid(
                "a run is empty, unaligned, too long or out of order",
            ));
        }
        prev_end = end.unwrap_or(u64::MAX);
        pages = pages
            .checked_add(u64::from(e.pages))
            .ok_or(Error::Invalid("too many pages"))?;
    }
    let mut crc = !0u32;
    let (mut blob_done, mut pages_done) = (0usize, 0usize);
    for (seq, &offset) in at.iter().enumerate() {
        if offset == 0 || offset % CHUNK_BYTES != 0 {
            return Err(Error::Invalid("a chunk is not page-aligned"));
        }
        let next = at.get(seq + 1).copied().unwrap_or(0);
        let sequence = u32::try_from(seq).map_err(|_| Error::Invalid("too many chunks"))?;
        if blob_done < blob.len() {
            let n = (blob.len() - blob_done).min(BLOB_PER_CHUNK);
            buf.start(&ChunkHeader {
                tag,
                kind: ChunkKind::Blob,
                sequence,
                used: u32::try_from(n).map_err(|_| Error::Invalid("blob"))?,
                next,
                first: u64::try_from(blob_done).map_err(|_| Error::Invalid("blob"))?,
            });
            // PANIC: `blob_done + n <= blob.len()` and `n <= BLOB_PER_CHUNK`.
            buf.blob_mut()[..n].copy_from_slice(&blob[blob_done..blob_done + n]);
            blob_done += n;
        } else {
            // PANIC: `pages_done < entries.len()`: `at` holds exactly the chunks needed.
            let runs = &entries[pages_done..(pages_done + ENTRIES_PER_CHUNK).min(entries.len())];
            let first: u64 = entries[..pages_done]
                .iter()
                .map(|e| u64::from(e.pages))
                .sum();
            buf.start(&ChunkHeader {
                tag,
                kind: ChunkKind::Pages,
                sequence,
                used: u32::try_from(runs.len()).map_err(|_| Error::Invalid("runs"))?,
                next,
                first,
            });
            for (i, e) in runs.iter().enumerate() {
                buf.put_entry(i, e);
            }
            pages_done += runs.len();
        }
        let c = buf.seal();
        crc = crc32c::update(crc, &c.to_le_bytes());
        m.write(offset, &buf.0)?;
        // Coherency: the chunk must be in the device before the offer that references it.
        m.write_back(offset, CHUNK_SIZE);
    }
    Ok(ManifestRef {
        // PANIC: `at` is not empty: a manifest takes at least one chunk.
        offset: at[0],
        tag,
        pages,
        chunks: needed,
        blob_bytes: u32::try_from(blob.len()).map_err(|_| Error::Invalid("blob"))?,
        crc: !crc,
    })
}

/// Checks the shape of `h`'s manifest reference, as an offer records it: its first chunk in
/// `h`'s blocks, counts in range.
///
/// # Errors
///
/// [`Error::Invalid`] if it is not.
pub(crate) fn check_ref(sb: &Superblock, h: &Handoff) -> Result<(), Error> {
    let r = &h.manifest;
    if !r.is_some() {
        return Ok(());
    }
    if page_index(sb, h, r.offset).is_none()
        || r.chunks == 0
        || r.chunks > MAX_CHUNKS
        || r.blob_bytes > MAX_BLOB
        || r.pages == 0
    {
        return Err(Error::Invalid(
            "the manifest is not in the blocks offered, or its counts are out of range",
        ));
    }
    Ok(())
}

/// Reads and checks `h`'s manifest, calling `visit` for each run and blob part in chain order.
/// `buf` is the chunk buffer; `seen` a map of at least [`pages_in`] bits, which it clears.
/// `visit` may see parts of a manifest that then fails: a caller acts only once this returns
/// `Ok`.
///
/// # Errors
///
/// [`Error::Manifest`] for a manifest that is absent, torn, foreign or inconsistent (see the
/// module); [`Error::Invalid`] if `seen` is too small; the medium's error or `visit`'s.
pub(crate) fn read_manifest<M: Medium>(
    m: &M,
    sb: &Superblock,
    h: &Handoff,
    buf: &mut Chunk,
    seen: &mut [u64],
    mut visit: impl FnMut(Item<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let r = h.manifest;
    check_ref(sb, h).map_err(|_| Error::Manifest("the record's manifest fields are bad"))?;
    if !r.is_some() {
        return Err(Error::Manifest("the handoff has no manifest"));
    }
    let bits = pages_in(sb, h);
    if u64::try_from(seen.len())
        .ok()
        .and_then(|w| w.checked_mul(64))
        .is_none_or(|b| b < bits)
    {
        return Err(Error::Invalid("the page map is smaller than the handoff"));
    }
    seen.fill(0);
    let (mut pages, mut blob, mut crc) = (0u64, 0u64, !0u32);
    let mut prev_end = 0u64;
    let mut at = r.offset;
    for seq in 0..r.chunks {
        mark(sb, h, seen, at)?;
        // Coherency: the source wrote the chunk back; drop any stale copy before reading.
        m.invalidate(at, CHUNK_SIZE);
        m.read(at, &mut buf.0)?;
        let (c, sum) = buf.check().map_err(|e| match e {
            ChunkError::Torn => Error::Manifest("a chunk's checksum does not match"),
            ChunkError::Invalid => Error::Manifest("a chunk is of no known format"),
        })?;
        if c.tag != r.tag || c.sequence != seq {
            return Err(Error::Manifest(
                "a chunk belongs to another manifest or place",
            ));
        }
        crc = crc32c::update(crc, &sum.to_le_bytes());
        match c.kind {
            ChunkKind::Blob => {
                if c.first != blob {
                    return Err(Error::Manifest("the blob's chunks are not in order"));
                }
                blob = blob
                    .checked_add(u64::from(c.used))
                    .filter(|&b| b <= u64::from(r.blob_bytes))
                    .ok_or(Error::Manifest("more blob bytes than the record says"))?;
                visit(Item::Blob(buf.blob(c.used)))?;
            }
            ChunkKind::Pages => {
                if c.first != pages {
                    return Err(Error::Manifest("the page runs are not in order"));
                }
                for i in 0..usize::try_from(c.used).unwrap_or(0) {
                    let (e, flags_zero) = buf.entry(i);
                    let end = run_end(e.vaddr, e.pages)
                        .ok_or(Error::Manifest("a run's addresses overflow"))?;
                    if !flags_zero
                        || e.pages == 0
                        || e.pages > MAX_RUN_PAGES
                        || e.vaddr % PAGE_BYTES != 0
                        || e.vaddr < prev_end
                    {
                        return Err(Error::Manifest(
                            "a run is empty, unaligned, flagged or out of order",
                        ));
                    }
                    prev_end = end;
                    let mut page = e.offset;
                    for _ in 0..e.pages {
                        mark(sb, h, seen, page)?;
                        page = page
                            .checked_add(PAGE_BYTES)
                            .ok_or(Error::Manifest("a run's device offsets overflow"))?;
                    }
                    pages = pages
                        .checked_add(u64::from(e.pages))
                        .filter(|&p| p <= r.pages)
                        .ok_or(Error::Manifest("more pages than the record says"))?;
                    visit(Item::Pages(e))?;
                }
            }
        }
        let last = seq + 1 == r.chunks;
        if last != (c.next == 0) {
            return Err(Error::Manifest("the chain's length is not the record's"));
        }
        at = c.next;
    }
    if pages != r.pages || blob != u64::from(r.blob_bytes) || !crc != r.crc {
        return Err(Error::Manifest(
            "the manifest's totals are not the record's",
        ));
    }
    Ok(())
}
