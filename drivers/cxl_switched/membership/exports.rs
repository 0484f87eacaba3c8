// SPDX-License-Identifier: GPL-2.0

//! Exports: a paused process's pages on the portal node, offered to another host.
//!
//! An export pins the pages where they are, writes their cache lines back, writes the
//! handoff's manifest (the page list, see `handoff::abi::manifest`) into pages it allocates on
//! the portal node, and offers every block those pages lie in. The pages stay pinned until the
//! handoff ends: cancelled, rolled back by a reaper, or (later) released. Blocks in a handoff
//! stay online here meanwhile, as the protocol lets a source keep its pages until release.

use kernel::{
    gup::{self, PinError, PinnedPages},
    page::{Page, PAGE_SIZE},
    prelude::*,
    random,
};

use super::{Membership, State};
use crate::{
    handoff::{
        abi::{
            handoff::Extent,
            manifest::{Chunk, ManifestEntry, CHUNK_SIZE},
            HandoffState, Outcome, MAX_EXTENTS,
        },
        num::usize_as_u64,
        protocol::{
            manifest::{chunks_needed, write_manifest},
            records::read_handoff,
            Error as ProtocolError, Medium,
        },
    },
    uapi::{self, ExportRequest, HandoffEntry},
};

/// The pages an export holds for its handoff.
pub(crate) struct Exported {
    index: u32,
    id: u64,
    pid: i32,
    /// The target's host slot.
    target: u32,
    /// The blocks offered.
    blocks: u32,
    pinned: PinnedPages,
    /// The pages that hold the manifest.
    _chunks: KVec<Page>,
}

/// An export whose handoff was rolled back, kept for LIST until acknowledged.
pub(crate) struct Ended {
    index: u32,
    id: u64,
    pid: i32,
    target: u32,
    blocks: u32,
    pages: u64,
    /// The target had mapped the pages (or the record no longer tells): the process must not
    /// resume here.
    lost: bool,
}

/// The most rolled-back exports kept unacknowledged; the oldest goes first.
const MAX_ENDED: usize = 64;

/// The manifest's chunk pages, by device offset: what [`write_manifest`] writes to.
struct ChunkMedium<'a> {
    pages: &'a [(u64, Page)],
}

impl Medium for ChunkMedium<'_> {
    fn read(&self, _offset: u64, _buf: &mut [u8]) -> Result<(), ProtocolError> {
        Err(ProtocolError::Medium)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), ProtocolError> {
        let page = self
            .pages
            .iter()
            .find(|(at, _)| *at == offset)
            .map(|(_, p)| p)
            .ok_or(ProtocolError::Medium)?;
        if data.len() != CHUNK_SIZE || CHUNK_SIZE > PAGE_SIZE {
            return Err(ProtocolError::Medium);
        }
        // SAFETY: `data` is valid for reads of its length, which fits the page; the page is
        // this export's alone, allocated for the chunk, so nothing else accesses it.
        unsafe { page.write_raw(data.as_ptr(), 0, data.len()) }.map_err(|_| ProtocolError::Medium)
    }

    fn write_back(&self, offset: u64, _len: usize) {
        if let Some((_, p)) = self.pages.iter().find(|(at, _)| *at == offset) {
            gup::write_back_page(p);
        }
    }

    fn invalidate(&self, _offset: u64, _len: usize) {}

    fn now_ms(&self) -> u64 {
        0
    }

    fn sleep_ms(&self, _ms: u32) {}
}

/// Marks block `b` in `set` (one bit per data block).
fn mark_block(set: &mut [u64], b: u64) -> Result {
    let word = usize::try_from(b / 64)
        .ok()
        .and_then(|w| set.get_mut(w))
        .ok_or(EINVAL)?;
    *word |= 1 << (b % 64);
    Ok(())
}

/// The runs of set bits of `set`, below `blocks`.
fn extents(set: &[u64], blocks: u64) -> Result<KVec<Extent>> {
    let mut out = KVec::new();
    let mut b = 0u64;
    while b < blocks {
        let on = |b: u64| {
            usize::try_from(b / 64)
                .ok()
                .and_then(|w| set.get(w))
                .is_some_and(|w| w & (1 << (b % 64)) != 0)
        };
        if !on(b) {
            b += 1;
            continue;
        }
        let start = b;
        while b < blocks && on(b) {
            b += 1;
        }
        out.push(
            Extent {
                start: u32::try_from(start)?,
                count: u32::try_from(b - start)?,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(out)
}

impl Membership {
    /// Exports `req`'s pages on this portal (node `nid`): pins, writes back, writes the
    /// manifest and offers the blocks to `req.target`. Returns the handoff's record index and
    /// id.
    ///
    /// # Errors
    ///
    /// [`ESRCH`] no such process; [`EFAULT`] a page not mapped, not anonymous or not present;
    /// [`EINVAL`] a page not on the portal's node, a target that is not a live member, a block
    /// already in a handoff; [`E2BIG`] pages over more than eight runs of blocks; [`ENOSPC`]
    /// every handoff record in use; [`ENOMEM`]; the protocol's errno. Each with one log line.
    pub(crate) fn export(&self, nid: i32, req: &ExportRequest) -> Result<(u32, u64)> {
        let region = self.region.as_str();
        let fail = |why: core::fmt::Arguments<'_>, e: Error| -> Error {
            pr_warn!("{}: export of pid {}: {}\n", region, req.pid, why);
            e
        };
        let mm = gup::mm_of_pid(req.pid)
            .map_err(|e| fail(format_args!("no such process, or not ours to attach to"), e))?;
        let mut pinned = PinnedPages::new();
        for r in req.ranges.iter() {
            let (start, len) = (usize::try_from(r.start)?, usize::try_from(r.len)?);
            pinned
                .pin_present(&mm, start, len, GFP_KERNEL)
                .map_err(|e| {
                    let e2 = Error::from(e);
                    match e {
                        PinError::NotMapped(a) => fail(format_args!("{a:#x} is not mapped"), e2),
                        PinError::NotAnonymous(a) => {
                            fail(format_args!("{a:#x} is not private anonymous memory"), e2)
                        }
                        PinError::NotPresent(a) => fail(
                            format_args!("the page at {a:#x} is not present and writable"),
                            e2,
                        ),
                        _ => fail(format_args!("pinning failed ({e2:?})"), e2),
                    }
                })?;
        }
        drop(mm);
        // Where each page lies: its device offset, its block.
        let page = u64::try_from(PAGE_SIZE)?;
        let blocks = self.layout.blocks();
        let mut set = KVec::new();
        set.resize(usize::try_from(blocks.div_ceil(64))?, 0u64, GFP_KERNEL)?;
        let mut entries: KVec<ManifestEntry> = KVec::new();
        let mut i = 0usize;
        for r in req.ranges.iter() {
            for k in 0..r.len / page {
                let vaddr = r.start + k * page;
                let (Some(pfn), Some(node)) = (pinned.pfn(i), pinned.nid(i)) else {
                    return Err(EINVAL);
                };
                i += 1;
                let phys = u64::try_from(pfn)?.checked_mul(page).ok_or(EINVAL)?;
                let Some(b) = self.layout.block_of(phys).filter(|_| node == nid) else {
                    return Err(fail(
                        format_args!(
                            "the page at {vaddr:#x} is on node {node}, not the portal's node {nid}"
                        ),
                        EINVAL,
                    ));
                };
                mark_block(&mut set, b)?;
                let offset = phys - self.layout.header.start;
                match entries.last_mut() {
                    Some(e)
                        if e.vaddr + u64::from(e.pages) * page == vaddr
                            && e.offset + u64::from(e.pages) * page == offset
                            && e.pages < (1 << 20) =>
                    {
                        e.pages += 1
                    }
                    _ => entries.push(
                        ManifestEntry {
                            vaddr,
                            offset,
                            pages: 1,
                        },
                        GFP_KERNEL,
                    )?,
                }
            }
        }
        // The manifest's chunks: pages of the portal node, in blocks the handoff moves.
        let n = chunks_needed(entries.len(), req.blob.len())?;
        let mut chunks: KVec<(u64, Page)> = KVec::new();
        for _ in 0..n {
            // The portal's memory is all ZONE_MOVABLE; the chunks are freed when the handoff
            // ends, before any of its blocks may go offline (leaving drops the exports first).
            let flags = GFP_KERNEL | __GFP_ZERO | __GFP_HIGHMEM | __GFP_MOVABLE | __GFP_NOWARN;
            let p = Page::alloc_page_on_node(nid, flags).map_err(|_| {
                fail(
                    format_args!("no free page on node {nid} for the manifest"),
                    ENOMEM,
                )
            })?;
            let phys = u64::try_from(p.pfn())?.checked_mul(page).ok_or(EINVAL)?;
            let b = self.layout.block_of(phys).ok_or(EINVAL)?;
            mark_block(&mut set, b)?;
            chunks.push((phys - self.layout.header.start, p), GFP_KERNEL)?;
        }
        let ext = extents(&set, blocks)?;
        if ext.len() > MAX_EXTENTS {
            return Err(fail(
                format_args!("its pages lie in more than {MAX_EXTENTS} runs of blocks"),
                E2BIG,
            ));
        }
        // Coherency: the target reads these pages from the device.
        pinned.write_back();
        let mut at = KVec::with_capacity(chunks.len(), GFP_KERNEL)?;
        for (off, _) in chunks.iter() {
            at.push(*off, GFP_KERNEL)?;
        }
        let mut buf = KBox::new(Chunk::ZERO, GFP_KERNEL)?;
        let mut tag = [0u8; 8];
        random::fill_bytes(&mut tag);
        let mref = write_manifest(
            &ChunkMedium { pages: &chunks },
            u64::from_le_bytes(tag) | 1,
            &at,
            &entries,
            &req.blob,
            &mut buf,
        )
        .map_err(|e| fail(format_args!("writing the manifest: {e}"), e.into()))?;
        let nblocks: u32 = ext.iter().map(|e| e.count).sum();
        let mut st = self.state.lock();
        let m = self.medium();
        let host = st
            .host
            .as_deref_mut()
            .ok_or_else(|| fail(format_args!("this host is no member of the portal"), ESTALE))?;
        let (index, id) = host
            .offer_manifest(&m, req.target, &ext, mref)
            .map_err(|e| {
                fail(
                    format_args!("offering to slot {}: {e}", req.target),
                    e.into(),
                )
            })?;
        let mut kept = KVec::with_capacity(chunks.len(), GFP_KERNEL)?;
        for (_, p) in chunks {
            kept.push(p, GFP_KERNEL)?;
        }
        st.exports.push(
            Exported {
                index,
                id,
                pid: req.pid,
                target: req.target,
                blocks: nblocks,
                pinned,
                _chunks: kept,
            },
            GFP_KERNEL,
        )?;
        pr_info!(
            "{}: pid {}: {} pages in {} runs, {} blob bytes, {} block(s) offered to slot {} \
             (handoff {} id {:#x})\n",
            region,
            req.pid,
            mref.pages,
            entries.len(),
            mref.blob_bytes,
            nblocks,
            req.target,
            index,
            id
        );
        Ok((index, id))
    }

    /// Cancels offer `index` (id `id`), of this host or to it; an export's pages are unpinned.
    /// Of an export that was rolled back (LIST says returned or lost), it acknowledges the end:
    /// LIST no longer shows it.
    ///
    /// # Errors
    ///
    /// [`ESTALE`] if this host is no member; the protocol's errno ([`EINVAL`]: no such offer
    /// of this host's); each with one log line.
    pub(crate) fn cancel(&self, index: u32, id: u64) -> Result {
        let region = self.region.as_str();
        let mut st = self.state.lock();
        if let Some(at) = st.ended.iter().position(|x| x.index == index && x.id == id) {
            let x = st.ended.remove(at)?;
            pr_info!(
                "{}: handoff {} id {:#x}: its end acknowledged ({})\n",
                region,
                index,
                id,
                if x.lost { "lost" } else { "returned" }
            );
            return Ok(());
        }
        let m = self.medium();
        let host = st.host.as_deref_mut().ok_or(ESTALE)?;
        host.cancel(&m, index, id).map_err(|e| {
            pr_warn!(
                "{}: cancel of handoff {} id {:#x}: {}\n",
                region,
                index,
                id,
                e
            );
            Error::from(e)
        })?;
        pr_info!("{}: handoff {} id {:#x} cancelled\n", region, index, id);
        Self::drop_ended(&mut st, &m, region);
        // The caller cancelled it: it knows its process is to resume.
        st.ended.retain(|x| !(x.index == index && x.id == id));
        Ok(())
    }

    /// Releases handoff `index` (id `id`), which this host offered and whose target pulled
    /// its pages: unpins them, offlines and removes the blocks of the handoff (migrating
    /// whatever else of this host's is there), then ends the handoff in the header: the blocks
    /// are the target's. The caller ends the old process first: its pages are stale.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if the handoff is not accepted from this host; [`EBUSY`] if its target has
    /// not pulled the pages yet, or a block could not be offlined (the handoff stays; release
    /// again); [`ESTALE`] if this host is no member; the protocol's errno; each with one log
    /// line.
    pub(crate) fn release(&self, index: u32, id: u64) -> Result {
        let region = self.region.as_str();
        let fail = |why: core::fmt::Arguments<'_>, e: Error| -> Error {
            pr_warn!(
                "{}: release of handoff {} id {:#x}: {}\n",
                region,
                index,
                id,
                why
            );
            e
        };
        let (export, mut taken) = {
            let mut st = self.state.lock();
            let m = self.medium();
            let host = st
                .host
                .as_deref()
                .ok_or_else(|| fail(format_args!("this host is no member"), ESTALE))?;
            let sb = *host.superblock();
            let h =
                read_handoff(&m, &sb, index).map_err(|e| fail(format_args!("{e}"), e.into()))?;
            if h.id != id
                || h.state != HandoffState::Accepted
                || u32::from(h.source) != host.slot()
                || h.source_epoch != host.epoch()
            {
                return Err(fail(
                    format_args!("not a handoff accepted from this host"),
                    EINVAL,
                ));
            }
            if !h.pulled {
                return Err(fail(
                    format_args!("its target has not pulled the pages yet"),
                    EBUSY,
                ));
            }
            let export = match st
                .exports
                .iter()
                .position(|x| x.index == index && x.id == id)
            {
                Some(i) => st.exports.remove(i).ok(),
                None => None,
            };
            let mut taken = KVec::new();
            for e in h.extents() {
                for b in u64::from(e.start)..u64::from(e.start) + u64::from(e.count) {
                    let slot = usize::try_from(b).ok().and_then(|i| st.blocks.get_mut(i));
                    if let Some(mem) = slot.and_then(|s| s.take()) {
                        taken.push((b, Some(mem)), GFP_KERNEL)?;
                    }
                }
            }
            (export, taken)
        };
        // The target is done with the pages: they go back to this host's allocator, then off
        // the blocks with everything else there.
        let pinned = export.as_ref().map_or(0, |x| x.pinned.len());
        drop(export);
        let (mut stuck, mut first) = (0u32, None);
        for (_, slot) in taken.iter_mut() {
            if let Some(Err((mem, e))) = slot.take().map(|mem| self.offline_one(mem)) {
                // Still online here: kept for the next release.
                *slot = mem;
                first.get_or_insert(e);
                stuck += 1;
            }
        }
        let mut st = self.state.lock();
        for (b, slot) in taken.iter_mut() {
            if let Some(mem) = slot.take() {
                if let Some(s) = usize::try_from(*b).ok().and_then(|i| st.blocks.get_mut(i)) {
                    *s = Some(mem);
                }
            }
        }
        if let Some(e) = first {
            return Err(fail(
                format_args!(
                    "{stuck} block(s) not offlined ({e:?}); the handoff stays, release again"
                ),
                EBUSY,
            ));
        }
        let m = self.medium();
        let host = st
            .host
            .as_deref_mut()
            .ok_or_else(|| fail(format_args!("this host is no member"), ESTALE))?;
        host.release(&m, index, id)
            .map_err(|e| fail(format_args!("{e}"), e.into()))?;
        pr_info!(
            "{}: handoff {} id {:#x} released: {} pages unpinned, {} block(s) offlined for the \
             target\n",
            region,
            index,
            id,
            pinned,
            taken.len()
        );
        Ok(())
    }

    /// Unpins the pages of every export whose handoff is no longer in progress (cancelled,
    /// rolled back by a reaper, released).
    pub(super) fn drop_ended<M: Medium>(st: &mut State, m: &M, region: &str) {
        let Some(host) = st.host.as_deref() else {
            st.exports.clear();
            return;
        };
        let sb = *host.superblock();
        // An import goes once its handoff ended and no page of it is mapped from the portal.
        st.imports.retain(|x| {
            let live = read_handoff(m, &sb, x.index)
                .is_ok_and(|h| h.id == x.id && h.state != HandoffState::Free);
            let keep = live || x.holds_any();
            if !keep {
                pr_info!(
                    "{}: handoff {} id {:#x} ended; its import is done\n",
                    region,
                    x.index,
                    x.id
                );
            }
            keep
        });
        let ended = &mut st.ended;
        st.exports.retain(|x| {
            let h = read_handoff(m, &sb, x.index).ok().filter(|h| h.id == x.id);
            if h.is_some_and(|h| h.state != HandoffState::Free) {
                return true;
            }
            // Rolled back: the process may resume here unless the target mapped the pages
            // (they may have changed since), or the record was reused and no longer tells.
            let lost = match h {
                Some(h) if h.outcome == Outcome::Released => {
                    pr_info!(
                        "{}: handoff {} id {:#x} ended: {} pages of pid {} unpinned; released\n",
                        region,
                        x.index,
                        x.id,
                        x.pinned.len(),
                        x.pid
                    );
                    return false;
                }
                Some(h) => h.mapped,
                None => true,
            };
            pr_info!(
                "{}: handoff {} id {:#x} ended: {} pages of pid {} unpinned; {}\n",
                region,
                x.index,
                x.id,
                x.pinned.len(),
                x.pid,
                if lost {
                    "lost: its target had mapped them, the process must not resume"
                } else {
                    "returned: the process may resume here"
                }
            );
            if ended.len() >= MAX_ENDED {
                if let Ok(old) = ended.remove(0) {
                    pr_warn!(
                        "{}: handoff {} id {:#x}: its end was never acknowledged; forgotten\n",
                        region,
                        old.index,
                        old.id
                    );
                }
            }
            let kept = ended.push(
                Ended {
                    index: x.index,
                    id: x.id,
                    pid: x.pid,
                    target: x.target,
                    blocks: x.blocks,
                    pages: usize_as_u64(x.pinned.len()),
                    lost,
                },
                GFP_KERNEL,
            );
            if kept.is_err() {
                pr_warn!(
                    "{}: handoff {} id {:#x}: no memory to keep its end for LIST\n",
                    region,
                    x.index,
                    x.id
                );
            }
            false
        });
    }

    /// Appends the handoffs in flight that this host is a party to, on node `nid`, then the
    /// exports rolled back and not yet acknowledged (returned or lost).
    ///
    /// # Errors
    ///
    /// [`ENOMEM`]; a header that cannot be read (its errno).
    pub(crate) fn list(&self, nid: i32, out: &mut KVec<HandoffEntry>) -> Result {
        let region = self.region.as_str();
        let mut st = self.state.lock();
        let m = self.medium();
        Self::drop_ended(&mut st, &m, region);
        let Some(host) = st.host.as_deref() else {
            return Ok(());
        };
        let sb = *host.superblock();
        let (me, epoch) = (host.slot(), host.epoch());
        for index in 0..sb.handoffs {
            let h = read_handoff(&m, &sb, index)?;
            let state = match h.state {
                HandoffState::Free => continue,
                HandoffState::Offered => uapi::OFFERED,
                HandoffState::Accepted if h.pulled => uapi::PULLED,
                HandoffState::Accepted => uapi::ACCEPTED,
            };
            let (role, peer) = if u32::from(h.source) == me && h.source_epoch == epoch {
                (uapi::SOURCE, h.target)
            } else if u32::from(h.target) == me && h.target_epoch == epoch {
                (uapi::TARGET, h.source)
            } else {
                continue;
            };
            let x = st.exports.iter().find(|x| x.index == index && x.id == h.id);
            let y = st.imports.iter().find(|y| y.index == index && y.id == h.id);
            let (pid, pinned) = match (x, y) {
                (Some(x), _) => (x.pid, usize_as_u64(x.pinned.len())),
                (None, Some(y)) => y.progress(),
                (None, None) => (0, 0),
            };
            out.push(
                HandoffEntry {
                    id: h.id,
                    index,
                    state,
                    role,
                    peer: u32::from(peer),
                    nid,
                    blocks: h.extents().iter().map(|e| e.count).sum(),
                    pages: h.manifest.pages,
                    blob_bytes: h.manifest.blob_bytes,
                    pid,
                    pinned,
                },
                GFP_KERNEL,
            )?;
        }
        for x in st.ended.iter() {
            out.push(
                HandoffEntry {
                    id: x.id,
                    index: x.index,
                    state: if x.lost { uapi::LOST } else { uapi::RETURNED },
                    role: uapi::SOURCE,
                    peer: x.target,
                    nid,
                    blocks: x.blocks,
                    pages: x.pages,
                    blob_bytes: 0,
                    pid: x.pid,
                    pinned: 0,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(())
    }
}
