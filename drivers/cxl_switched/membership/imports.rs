// SPDX-License-Identifier: GPL-2.0

//! Imports: the target's half of a handoff. Accept, map into a process, pull into local memory.
//!
//! Accept reads the handoff's manifest from the portal as untrusted input (every chunk and page
//! checked by the shared core, see `handoff::protocol::manifest`) and takes the blocks in the
//! header. Map gives the blocks `struct page`s as coherent device memory ([`CoherentPagemap`],
//! one per block, none of it in this host's page allocator) and populates the calling
//! process's empty anonymous mappings with the listed pages, at the addresses the manifest
//! gives ([`MigrateVma`] from empty entries): nothing is copied. Pull moves the pages into
//! this host's memory with the kernel's migration while the process runs: a page being moved is
//! unmapped behind a migration entry, so a write to it waits and is never lost. Once no page is
//! left on the portal, the header says so (the handoff's *pulled* flag) and the source may free
//! its copy and release.
//!
//! Lock order: an import's own lock, then the membership's state. The heartbeat reads an
//! import's atomics only.

use kernel::{
    memremap::Memremap,
    migrate_vma::{self, Entry, MigrateVma, NewPage, Select},
    mm::{Mm, MmWithUser},
    new_mutex,
    page::PAGE_SIZE,
    pagemap::CoherentPagemap,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed, Release},
        Arc, Mutex,
    },
    time::{Instant, Monotonic},
};

use super::Membership;
use crate::{
    handoff::{
        abi::{
            handoff::Extent,
            manifest::{Chunk, ManifestEntry},
            HandoffState, Outcome, Superblock, MAX_EXTENTS,
        },
        num::usize_as_u64,
        protocol::{
            manifest::{pages_in, read_manifest, Item},
            records::read_handoff,
            Error as ProtocolError, Medium,
        },
    },
    uapi::VRange,
};

/// The portal's pages as the manifest reader's medium: each access maps the bytes it needs
/// for as long as it takes (a chunk, 4 KiB), so that nothing of the blocks stays mapped.
struct PortalPages {
    /// The physical address of device offset 0.
    base: u64,
}

impl PortalPages {
    fn map(&self, offset: u64, len: usize) -> Result<Memremap, ProtocolError> {
        let start = self.base.checked_add(offset).ok_or(ProtocolError::Medium)?;
        Memremap::new(start, len, c"cxl_switched manifest").map_err(|_| ProtocolError::Medium)
    }
}

impl Medium for PortalPages {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ProtocolError> {
        self.map(offset, buf.len())?
            .read(0, buf)
            .map_err(|_| ProtocolError::Medium)
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<(), ProtocolError> {
        // The target never writes the source's manifest.
        Err(ProtocolError::Medium)
    }

    fn write_back(&self, _offset: u64, _len: usize) {}

    fn invalidate(&self, offset: u64, len: usize) {
        // A chunk that cannot be mapped is not read either: its read fails.
        if let Ok(m) = self.map(offset, len) {
            let _ = m.invalidate(0, len);
        }
    }

    fn now_ms(&self) -> u64 {
        0
    }

    fn sleep_ms(&self, _ms: u32) {}
}

/// A block's page map while its pages are mapped or being pulled.
struct BlockMap {
    block: u64,
    map: Pin<KBox<CoherentPagemap>>,
}

/// What an import changes while it maps and pulls: under its own lock.
struct Inner {
    /// The manifest's runs: virtual address, device offset, pages.
    runs: KVec<ManifestEntry>,
    /// The page maps of the blocks the runs lie in, once mapped.
    maps: KVec<BlockMap>,
    /// The process the pages are mapped into.
    mm: Option<ARef<Mm>>,
    /// Where the pull goes on: run, page of the run.
    cursor: (usize, u32),
    /// The header says pulled.
    marked: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for m in self.maps.drain_all() {
            let n = m.map.in_use();
            if n != 0 {
                // Unmapping would wait for the pages: a process still maps them. The page map
                // stays, and so do the blocks' `struct page`s.
                pr_err!(
                    "cxl_switched: block {} keeps {} pages mapped into a process; its page map \
                     stays until reboot\n",
                    m.block,
                    n
                );
                core::mem::forget(m);
            }
        }
    }
}

/// One handoff this host accepted as its target.
#[pin_data]
pub(crate) struct Imported {
    pub(super) index: u32,
    pub(super) id: u64,
    /// The blocks of the handoff: the heartbeat does not online them while pages are mapped.
    extents: KVec<Extent>,
    /// The workload's state that came beside its pages.
    blob: KVec<u8>,
    /// Pages the manifest lists.
    pages: u64,
    /// The virtual ranges of the runs, adjacent runs merged.
    ranges: KVec<VRange>,
    /// Page maps exist: the blocks back pages of a process (or could).
    mapped: Atomic<bool>,
    /// Pages still on the portal (mapped and not pulled).
    left: Atomic<u64>,
    /// The process mapped into, 0 for none yet.
    pid: Atomic<i32>,
    #[pin]
    inner: Mutex<Inner>,
}

impl Imported {
    /// Whether block `b` backs pages of a process now.
    pub(super) fn holds(&self, b: u64) -> bool {
        self.mapped.load(Relaxed)
            && self
                .extents
                .iter()
                .any(|e| b >= u64::from(e.start) && b < u64::from(e.start) + u64::from(e.count))
    }

    /// Whether pages of the import may still be mapped from the portal.
    pub(super) fn holds_any(&self) -> bool {
        self.mapped.load(Relaxed)
    }

    /// The virtual ranges the pages go to.
    pub(crate) fn ranges(&self) -> &[VRange] {
        &self.ranges
    }

    /// The blob.
    pub(crate) fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Pages the manifest lists.
    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }

    /// The process the pages are mapped into (0: none yet), and the pages still on the portal.
    pub(super) fn progress(&self) -> (i32, u64) {
        (self.pid.load(Relaxed), self.left.load(Relaxed))
    }
}

/// The merged virtual ranges of `runs`.
fn ranges_of(runs: &[ManifestEntry]) -> Result<KVec<VRange>> {
    let page = u64::try_from(PAGE_SIZE)?;
    let mut out: KVec<VRange> = KVec::new();
    for r in runs {
        let len = u64::from(r.pages).checked_mul(page).ok_or(EINVAL)?;
        match out.last_mut() {
            Some(last) if last.start.checked_add(last.len) == Some(r.vaddr) => last.len += len,
            _ => out.push(
                VRange {
                    start: r.vaddr,
                    len,
                },
                GFP_KERNEL,
            )?,
        }
    }
    Ok(out)
}

impl Membership {
    /// Accepts handoff `index` (id `id`), offered to this host: reads and checks its manifest,
    /// then takes its blocks in the header. Asked again of a handoff this host accepted, it
    /// answers again.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if the handoff is not offered to this host; [`EBADMSG`] for a manifest that
    /// fails a check (the offer stays: the source or this host may cancel it); [`ESTALE`] if
    /// this host is no member; the protocol's errno; [`ENOMEM`]. Each with one log line.
    pub(crate) fn accept(&self, index: u32, id: u64) -> Result<Arc<Imported>> {
        let region = self.region.as_str();
        let fail = |why: core::fmt::Arguments<'_>, e: Error| -> Error {
            pr_warn!(
                "{}: accept of handoff {} id {:#x}: {}\n",
                region,
                index,
                id,
                why
            );
            e
        };
        let (sb, me, epoch) = {
            let st = self.state.lock();
            if let Some(x) = st.imports.iter().find(|x| x.index == index && x.id == id) {
                return Ok(x.clone());
            }
            let host = st
                .host
                .as_deref()
                .ok_or_else(|| fail(format_args!("this host is no member"), ESTALE))?;
            (*host.superblock(), host.slot(), host.epoch())
        };
        let m = self.medium();
        let h = read_handoff(&m, &sb, index).map_err(|e| fail(format_args!("{e}"), e.into()))?;
        if h.id != id
            || h.state != HandoffState::Offered
            || u32::from(h.target) != me
            || h.target_epoch != epoch
        {
            return Err(fail(
                format_args!("not a handoff offered to this host"),
                EINVAL,
            ));
        }
        let (runs, blob) = self
            .read_manifest(&sb, &h)
            .map_err(|e| fail(format_args!("its manifest: {e}"), e.into()))?;
        let mut extents = KVec::with_capacity(MAX_EXTENTS, GFP_KERNEL)?;
        for e in h.extents() {
            extents.push(*e, GFP_KERNEL)?;
        }
        let ranges = ranges_of(&runs)?;
        let pages = h.manifest.pages;
        let import = Arc::pin_init(
            pin_init!(Imported {
                index,
                id,
                extents,
                blob,
                pages,
                ranges,
                mapped: Atomic::new(false),
                left: Atomic::new(0),
                pid: Atomic::new(0),
                inner <- new_mutex!(Inner {
                    runs,
                    maps: KVec::new(),
                    mm: None,
                    cursor: (0, 0),
                    marked: false,
                }),
            }),
            GFP_KERNEL,
        )?;
        let mut st = self.state.lock();
        st.imports.reserve(1, GFP_KERNEL)?;
        let host = st
            .host
            .as_deref_mut()
            .ok_or_else(|| fail(format_args!("this host is no member"), ESTALE))?;
        host.accept(&m, index, id)
            .map_err(|e| fail(format_args!("{e}"), e.into()))?;
        st.imports.push(import.clone(), GFP_KERNEL)?;
        pr_info!(
            "{}: handoff {} id {:#x} accepted from slot {}: {} pages in {} ranges, {} blob bytes\n",
            region,
            index,
            id,
            h.source,
            pages,
            import.ranges.len(),
            import.blob.len()
        );
        Ok(import)
    }

    /// Reads `h`'s manifest from the portal: its runs and its blob.
    fn read_manifest(
        &self,
        sb: &Superblock,
        h: &crate::handoff::abi::Handoff,
    ) -> Result<(KVec<ManifestEntry>, KVec<u8>), ProtocolError> {
        let medium = PortalPages {
            base: self.layout.header.start,
        };
        let mut buf = KBox::new(Chunk::ZERO, GFP_KERNEL).map_err(|_| ProtocolError::Medium)?;
        let words = usize::try_from(pages_in(sb, h).div_ceil(64))
            .map_err(|_| ProtocolError::Invalid("the handoff is too large"))?;
        let mut seen = KVec::new();
        seen.resize(words, 0u64, GFP_KERNEL)
            .map_err(|_| ProtocolError::Invalid("no memory for the page map"))?;
        let (mut runs, mut blob) = (KVec::new(), KVec::new());
        read_manifest(&medium, sb, h, &mut buf, &mut seen, |item| {
            let r = match item {
                Item::Pages(e) => runs.push(e, GFP_KERNEL),
                Item::Blob(b) => blob.extend_from_slice(b, GFP_KERNEL),
            };
            r.map_err(|_| ProtocolError::Invalid("no memory for the manifest"))
        })?;
        Ok((runs, blob))
    }

    /// The import of handoff `index` (id `id`).
    fn import(&self, what: &str, index: u32, id: u64) -> Result<Arc<Imported>> {
        let st = self.state.lock();
        let found = st.imports.iter().find(|x| x.index == index && x.id == id);
        found.cloned().ok_or_else(|| {
            pr_warn!(
                "{}: {} of handoff {} id {:#x}: not a handoff this host accepted\n",
                self.region.as_str(),
                what,
                index,
                id
            );
            EINVAL
        })
    }

    /// Maps the pages of accepted handoff `index` (id `id`) into `mm`, the calling process's
    /// memory (process `pid`), at the addresses of its manifest, as device pages of node `nid`
    /// (the portal's). Returns the pages mapped.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if this host did not accept the handoff, or mapped it already; [`EFAULT`]
    /// for an address in no mapping; [`EBUSY`] for a page that is not an empty entry of a
    /// private anonymous mapping; the error of a page map; each with one log line. Pages mapped
    /// before the error stay mapped until the process unmaps them or ends; the import can
    /// still be pulled.
    pub(crate) fn map(
        &self,
        nid: i32,
        index: u32,
        id: u64,
        mm: &MmWithUser,
        pid: i32,
    ) -> Result<u64> {
        let region = self.region.as_str();
        let fail = |why: core::fmt::Arguments<'_>, e: Error| -> Error {
            pr_warn!(
                "{}: map of handoff {} id {:#x}: {}\n",
                region,
                index,
                id,
                why
            );
            e
        };
        let x = self.import("map", index, id)?;
        let mut inner = x.inner.lock();
        if inner.mm.is_some() {
            return Err(fail(format_args!("mapped already"), EINVAL));
        }
        self.mark_mapped(index, id)
            .map_err(|(why, e)| fail(format_args!("{why}"), e))?;
        // The page maps: every block of the handoff, whether or not a run lies in it, so
        // that no block of it can be onlined here while pages are mapped.
        for e in x.extents.iter() {
            for b in u64::from(e.start)..u64::from(e.start) + u64::from(e.count) {
                let range = self.layout.block(b).ok_or(EINVAL)?;
                let map = KBox::pin_init(
                    CoherentPagemap::new(nid, range.start, range.end - range.start),
                    GFP_KERNEL,
                )
                .map_err(|e| fail(format_args!("block {b}: no page map ({e:?})"), e))?;
                inner.maps.push(BlockMap { block: b, map }, GFP_KERNEL)?;
                x.mapped.store(true, Release);
            }
        }
        inner.mm = Some(ARef::from(&**mm));
        x.pid.store(pid, Relaxed);
        let started = Instant::<Monotonic>::now();
        let mapped = self
            .map_runs(&mut inner, mm)
            .map_err(|(addr, why, e)| fail(format_args!("the page at {addr:#x}: {why}"), e))?;
        x.left.store(mapped, Relaxed);
        pr_info!(
            "{}: handoff {} id {:#x}: {} pages mapped into pid {} in {} us, none copied\n",
            region,
            index,
            id,
            mapped,
            pid,
            started.elapsed().as_micros_ceil()
        );
        Ok(mapped)
    }

    /// Says in the header, before a page of handoff `index` is mapped into a process, that its
    /// pages may change from now on: if this host dies, its source must not resume its old
    /// process. A handoff already released to this host (its source was reaped) has nobody to
    /// tell. On error: why, the errno.
    fn mark_mapped(&self, index: u32, id: u64) -> core::result::Result<(), (&'static str, Error)> {
        let mut st = self.state.lock();
        let m = self.medium();
        let host = st
            .host
            .as_deref_mut()
            .ok_or(("this host is no member", ESTALE))?;
        let sb = *host.superblock();
        let h = read_handoff(&m, &sb, index).map_err(|e| ("the header", Error::from(e)))?;
        if h.id != id {
            return Err(("no such handoff", EINVAL));
        }
        match (h.state, h.outcome) {
            (HandoffState::Accepted, _) => host
                .mapped(&m, index, id)
                .map_err(|e| ("not marked mapped in the header", Error::from(e))),
            (HandoffState::Free, Outcome::Released) => Ok(()),
            _ => Err(("the handoff ended without this host", EINVAL)),
        }
    }

    /// Populates `mm` with the pages of every run. On error: the address, why, the errno.
    fn map_runs(
        &self,
        inner: &mut Inner,
        mm: &MmWithUser,
    ) -> core::result::Result<u64, (u64, &'static str, Error)> {
        let page = usize_as_u64(PAGE_SIZE);
        let guard = mm.mmap_read_lock();
        let mut mapped = 0u64;
        let Inner { runs, maps, .. } = inner;
        for r in runs.iter() {
            let mut done = 0u64;
            while done < u64::from(r.pages) {
                let addr = r.vaddr + done * page;
                let offset = r.offset + done * page;
                let phys = self.layout.header.start + offset;
                let block =
                    self.layout
                        .block_of(phys)
                        .ok_or((addr, "not in the portal", EINVAL))?;
                let bm = maps.iter_mut().find(|m| m.block == block).ok_or((
                    addr,
                    "not in the handoff's blocks",
                    EINVAL,
                ))?;
                let in_block = phys - bm.map.start();
                let vma = guard
                    .vma_lookup(usize::try_from(addr).map_err(|_| (addr, "", EINVAL))?)
                    .ok_or((addr, "is not mapped", EFAULT))?;
                // One migration: within the run, the VMA and the block, at most MAX_PAGES.
                let n = (u64::from(r.pages) - done)
                    .min((bm.map.len() - in_block) / page)
                    .min((usize_as_u64(vma.end()) - addr) / page)
                    .min(usize_as_u64(migrate_vma::MAX_PAGES));
                let start = usize::try_from(addr).map_err(|_| (addr, "", EINVAL))?;
                let end = start + usize::try_from(n).map_err(|_| (addr, "", EINVAL))? * PAGE_SIZE;
                let mut mig =
                    MigrateVma::setup(vma, start, end, Select::System, bm.map.owner(), GFP_KERNEL)
                        .map_err(|e| (addr, "cannot be migrated", e))?;
                for i in 0..mig.len() {
                    if mig.entry(i) != Entry::Empty {
                        return Err((
                            addr + usize_as_u64(i) * page,
                            "is not an empty entry of private anonymous memory",
                            EBUSY,
                        ));
                    }
                    let p = bm
                        .map
                        .as_mut()
                        .take(in_block + usize_as_u64(i) * page)
                        .map_err(|e| {
                            (
                                addr + usize_as_u64(i) * page,
                                "its device page is in use",
                                e,
                            )
                        })?;
                    mig.set(i, p).map_err(|e| (addr, "", e))?;
                }
                let moved = usize_as_u64(mig.commit());
                mapped += moved;
                if moved != n {
                    return Err((addr, "could not be mapped", EBUSY));
                }
                done += n;
            }
        }
        Ok(mapped)
    }

    /// Pulls at most `max` pages of accepted handoff `index` (id `id`) into node `node`.
    /// Returns the pages moved and the pages left; with none left the header says pulled and
    /// the page maps go.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if this host did not accept the handoff or has not mapped it; [`ENOMEM`] if
    /// `node` has no free page; the protocol's errno when marking it pulled; each with one log
    /// line.
    pub(crate) fn pull(&self, index: u32, id: u64, node: i32, max: u32) -> Result<(u64, u64)> {
        let region = self.region.as_str();
        let x = self.import("pull", index, id)?;
        let mut inner = x.inner.lock();
        let Some(mm) = inner.mm.clone() else {
            pr_warn!(
                "{}: pull of handoff {} id {:#x}: not mapped yet\n",
                region,
                index,
                id
            );
            return Err(EINVAL);
        };
        let mut moved = 0u64;
        if let Some(user) = mm.mmget_not_zero() {
            moved = self
                .pull_runs(&mut inner, &user, node, max)
                .inspect_err(|e| {
                    pr_warn!(
                        "{}: pull of handoff {} id {:#x} to node {}: {:?}\n",
                        region,
                        index,
                        id,
                        node,
                        e
                    );
                })?;
        }
        let left: usize = inner.maps.iter().map(|m| m.map.in_use()).sum();
        let left = usize_as_u64(left);
        x.left.store(left, Relaxed);
        // Pages that could not move this time (busy, pinned by I/O) are tried again: the next
        // pull starts over.
        if left != 0 && inner.cursor.0 >= inner.runs.len() {
            inner.cursor = (0, 0);
        }
        if left == 0 && !inner.marked {
            let mut st = self.state.lock();
            let m = self.medium();
            // A handoff that ended meanwhile (its source was reaped, or this host is no
            // member) has nobody to tell.
            let mut told = false;
            if let Some(host) = st.host.as_deref_mut() {
                let sb = *host.superblock();
                let live = read_handoff(&m, &sb, index)
                    .is_ok_and(|h| h.id == id && h.state == HandoffState::Accepted);
                if live {
                    host.pulled(&m, index, id).map_err(|e| {
                        pr_warn!(
                            "{}: handoff {} id {:#x}: pulled, but not marked so: {}\n",
                            region,
                            index,
                            id,
                            e
                        );
                        Error::from(e)
                    })?;
                    told = true;
                }
            }
            drop(st);
            inner.marked = true;
            // No page is handed out: unmapping does not wait.
            inner.maps.clear();
            x.mapped.store(false, Release);
            pr_info!(
                "{}: handoff {} id {:#x}: every page pulled; {}\n",
                region,
                index,
                id,
                if told {
                    "the source may release"
                } else {
                    "the handoff had ended already"
                }
            );
        }
        Ok((moved, left))
    }

    /// Moves at most `max` device pages of the runs, from the cursor on, into node `node`.
    fn pull_runs(&self, inner: &mut Inner, mm: &MmWithUser, node: i32, max: u32) -> Result<u64> {
        let page = usize_as_u64(PAGE_SIZE);
        let guard = mm.mmap_read_lock();
        let mut moved = 0u64;
        let mut budget = u64::from(max);
        let Inner {
            runs, maps, cursor, ..
        } = inner;
        while budget > 0 {
            let Some(r) = runs.get(cursor.0) else {
                break;
            };
            if cursor.1 >= r.pages {
                *cursor = (cursor.0 + 1, 0);
                continue;
            }
            let done = u64::from(cursor.1);
            let addr = r.vaddr + done * page;
            let phys = self.layout.header.start + r.offset + done * page;
            let bm = self
                .layout
                .block_of(phys)
                .and_then(|b| maps.iter().find(|m| m.block == b))
                .ok_or(EINVAL)?;
            let in_block = phys - bm.map.start();
            let mut n = (u64::from(r.pages) - done)
                .min((bm.map.len() - in_block) / page)
                .min(usize_as_u64(migrate_vma::MAX_PAGES))
                .min(budget);
            // A range the process unmapped meanwhile has nothing left to pull.
            if let Some(vma) = guard.vma_lookup(usize::try_from(addr)?) {
                n = n.min((usize_as_u64(vma.end()) - addr) / page);
                let start = usize::try_from(addr)?;
                let end = start + usize::try_from(n)? * PAGE_SIZE;
                let mut mig = MigrateVma::setup(
                    vma,
                    start,
                    end,
                    Select::DeviceCoherent,
                    bm.map.owner(),
                    GFP_KERNEL,
                )?;
                for i in 0..mig.len() {
                    if !matches!(mig.entry(i), Entry::Page { .. }) {
                        continue;
                    }
                    let mut p = NewPage::alloc_on_node(
                        node,
                        GFP_KERNEL | __GFP_HIGHMEM | __GFP_MOVABLE | __GFP_NOWARN,
                    )?;
                    mig.copy_to(i, &mut p)?;
                    mig.set(i, p)?;
                }
                moved += usize_as_u64(mig.commit());
            } else {
                n = 1;
            }
            budget = budget.saturating_sub(n);
            cursor.1 += u32::try_from(n)?;
        }
        Ok(moved)
    }

    /// Before this host lets go of the portal: pulls every page that an import still maps into
    /// this host's memory, so that no process keeps using blocks that are no longer this
    /// host's. Pages that cannot be moved are logged.
    pub(super) fn pull_all(&self) {
        let region = self.region.as_str();
        let imports = {
            let st = self.state.lock();
            let mut v = KVec::new();
            for x in st.imports.iter() {
                if v.push(x.clone(), GFP_KERNEL).is_err() {
                    break;
                }
            }
            v
        };
        // Kernel memory is never on a portal node (all movable): where it comes from is a
        // node with memory of this host's own.
        let Ok(node) = kernel::page::Page::alloc_page(GFP_KERNEL).map(|p| p.nid()) else {
            return;
        };
        for x in imports.iter() {
            let mut inner = x.inner.lock();
            let Some(user) = inner.mm.as_ref().and_then(|mm| mm.mmget_not_zero()) else {
                continue;
            };
            for _ in 0..2 {
                inner.cursor = (0, 0);
                let r = self.pull_runs(&mut inner, &user, node, u32::MAX);
                if let Err(e) = r {
                    pr_err!(
                        "{}: handoff {} id {:#x}: pulling before leaving: {:?}\n",
                        region,
                        x.index,
                        x.id,
                        e
                    );
                }
            }
            let left: usize = inner.maps.iter().map(|m| m.map.in_use()).sum();
            x.left.store(usize_as_u64(left), Relaxed);
            pr_info!(
                "{}: handoff {} id {:#x}: pulled into node {} before leaving, {} pages left\n",
                region,
                x.index,
                x.id,
                node,
                left
            );
        }
    }
}
