// SPDX-License-Identifier: GPL-2.0

//! Coherent device memory with `struct page`s (`ZONE_DEVICE`, `MEMORY_DEVICE_COHERENT`).
//!
//! Memory that the CPU addresses as it does RAM, but that the page allocator must not manage
//! (it is a device's, or another machine's until handed over), can still back a process's
//! anonymous pages: `memremap_pages()` gives it `struct page`s in `ZONE_DEVICE`, which the
//! driver hands out one at a time, and [`crate::migrate_vma`] maps them into a process or
//! moves their contents to system RAM. A page comes back to the driver when its last
//! reference goes.
//!
//! C header: [`include/linux/memremap.h`](srctree/include/linux/memremap.h)

use crate::{
    bindings,
    error::{code::*, from_err_ptr, Error, Result},
    migrate_vma::NewPage,
    page::PAGE_SIZE,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    types::Opaque,
};
use core::{ffi::c_void, ptr::NonNull};

/// The alignment of a page map's range: a memory section, as `memremap_pages()` refuses (with a
/// warning) two page maps in one section.
pub const ALIGN: u64 = 1 << bindings::SECTION_SIZE_BITS;

/// The callbacks of every [`CoherentPagemap`].
static OPS: bindings::dev_pagemap_ops = {
    // SAFETY: All zeroes is a valid `dev_pagemap_ops`: every callback absent.
    let mut ops: bindings::dev_pagemap_ops = unsafe { core::mem::zeroed() };
    ops.folio_free = Some(folio_free);
    ops
};

/// A range of physical memory given `struct page`s in `ZONE_DEVICE` as coherent device memory.
///
/// # Invariants
///
/// `pgmap` went through a successful `memremap_pages()` for the one range `start..start +
/// len` (aligned to [`ALIGN`]), with [`OPS`] and its own address as owner; it stays mapped until
/// drop. `in_use` counts the pages handed out by [`CoherentPagemap::take`] not yet freed.
#[pin_data(PinnedDrop)]
pub struct CoherentPagemap {
    start: u64,
    len: u64,
    in_use: Atomic<usize>,
    #[pin]
    pgmap: Opaque<bindings::dev_pagemap>,
}

// SAFETY: The page map is used only through the kernel's own synchronisation (the page map's
// reference count, page locks) and an atomic counter.
unsafe impl Send for CoherentPagemap {}
// SAFETY: As above; `&self` methods only read the fixed range or the atomic counter.
unsafe impl Sync for CoherentPagemap {}

/// Called by the kernel once a page of a [`CoherentPagemap`] has no reference left.
///
/// # Safety
///
/// `folio` is a freed folio of a page map set up by [`CoherentPagemap::new`].
unsafe extern "C" fn folio_free(folio: *mut bindings::folio) {
    // SAFETY: `folio` is a valid folio of a page map (the caller's contract); a folio begins with
    // its first page (`&folio->page`), which is valid and names the page map.
    let pgmap = unsafe { bindings::page_pgmap(folio.cast::<bindings::page>()) };
    // SAFETY: The page map is the `pgmap` field of a `CoherentPagemap` (the caller's contract),
    // which outlives its pages: its drop waits for every one of them.
    let this = unsafe {
        &*crate::container_of!(Opaque::cast_from(pgmap).cast_mut(), CoherentPagemap, pgmap)
    };
    this.in_use.fetch_sub(1usize, Relaxed);
}

impl CoherentPagemap {
    /// Gives the range `start..start + len` `struct page`s on node `nid`. The range must hold
    /// no system RAM (memory added to the page allocator) and no other page map: both are
    /// refused without the warning `memremap_pages()` gives (a caller that adds memory to the
    /// range at the same time is the caller's race).
    ///
    /// # Errors
    ///
    /// [`EINVAL`] for a range that is empty or not aligned to [`ALIGN`]; [`EBUSY`] if it holds
    /// system RAM or another page map; the error of `memremap_pages()`.
    pub fn new(nid: i32, start: u64, len: u64) -> impl PinInit<Self, Error> {
        let (base, size) = (start, len);
        try_pin_init!(Self {
            start,
            len,
            in_use: Atomic::new(0),
            pgmap <- Opaque::try_ffi_init(move |p: *mut bindings::dev_pagemap| {
                let end = base.checked_add(size).ok_or(EINVAL)?;
                if size == 0 || base % ALIGN != 0 || size % ALIGN != 0 {
                    return Err(EINVAL);
                }
                let bytes = usize::try_from(size)?;
                let system_ram = usize::try_from(bindings::IORESOURCE_SYSTEM_RAM)?;
                let any = usize::try_from(bindings::IORES_DESC_NONE)?;
                // `memremap_pages()` warns of system RAM in the range: refuse it quietly first.
                // SAFETY: Only reads the resource tree.
                let ram = unsafe { bindings::region_intersects(base, bytes, system_ram, any) };
                if ram != i32::try_from(bindings::REGION_DISJOINT)? {
                    return Err(EBUSY);
                }
                // It also warns of another page map in the sections at either end.
                for addr in [base, end - 1] {
                    let pfn = usize::try_from(addr >> crate::page::PAGE_SHIFT)?;
                    // SAFETY: Any frame number may be looked up; a page map found has a
                    // reference, dropped at once.
                    let other = unsafe { bindings::get_dev_pagemap(pfn) };
                    if !other.is_null() {
                        // SAFETY: `other` was returned with a reference, which is dropped once.
                        unsafe { bindings::put_dev_pagemap(other) };
                        return Err(EBUSY);
                    }
                }
                // SAFETY: `p` is valid for writes of a `dev_pagemap` (`try_ffi_init`); all
                // zeroes is a valid one, then filled for one range of coherent memory whose
                // owner is the page map itself (unique while it exists).
                unsafe {
                    p.write_bytes(0, 1);
                    (*p).type_ = bindings::memory_type_MEMORY_DEVICE_COHERENT;
                    (*p).ops = &OPS;
                    (*p).owner = p.cast();
                    (*p).nr_range = 1;
                    *(*p).__bindgen_anon_1.range.as_mut() = bindings::range {
                        start: base,
                        end: end - 1,
                    };
                }
                // SAFETY: `p` is a filled page map that stays where it is (pinned) until drop,
                // which unmaps it.
                from_err_ptr(unsafe { bindings::memremap_pages(p, nid) })?;
                Ok(())
            }),
        })
    }

    /// The first physical address of the range.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The length of the range, in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty (never: one is refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The owner of the page map: what [`crate::migrate_vma::MigrateVma::setup`] needs to
    /// collect its pages.
    pub fn owner(&self) -> *mut c_void {
        self.pgmap.get().cast()
    }

    /// Pages handed out and not freed yet.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }

    /// Hands out the page at byte `offset` of the range, locked, with one reference: for
    /// [`crate::migrate_vma::MigrateVma::set`]. Its contents are what the memory holds.
    ///
    /// `&mut self` keeps two calls from handing out one page at once.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] for an offset that is not page-aligned or not in the range; [`EBUSY`] if the
    /// page is handed out already and not freed.
    pub fn take(self: Pin<&mut Self>, offset: u64) -> Result<NewPage> {
        let page = u64::try_from(PAGE_SIZE)?;
        if offset % page != 0 || offset >= self.len {
            return Err(EINVAL);
        }
        let pfn = usize::try_from((self.start + offset) / page)?;
        // SAFETY: `pfn` is in the range, which has `struct page`s (type invariant).
        let p = unsafe { bindings::pfn_to_page(pfn) };
        let p = NonNull::new(p).ok_or(EINVAL)?;
        // A page of the map that is not handed out has no reference.
        // SAFETY: `p` is a valid page.
        if unsafe { bindings::page_ref_count(p.as_ptr()) } != 0 {
            return Err(EBUSY);
        }
        self.in_use.add(1usize, Relaxed);
        // SAFETY: A free page of this page map (it has no reference, and `&mut self` excludes
        // another `take`): it gets one reference and is locked.
        unsafe { bindings::zone_device_page_init(p.as_ptr(), self.pgmap.get(), 0) };
        // SAFETY: Initialised above: locked, mapped nowhere, its one reference is ours.
        Ok(unsafe { NewPage::from_raw(p) })
    }
}

#[pinned_drop]
impl PinnedDrop for CoherentPagemap {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Set up by `memremap_pages()` (type invariant), unmapped once. This waits until
        // every page handed out has been freed.
        unsafe { bindings::memunmap_pages(self.pgmap.get()) };
    }
}

#[macros::kunit_tests(rust_kernel_pagemap)]
mod tests {
    use super::*;
    use crate::alloc::flags::GFP_KERNEL;

    /// A section far above the lab's memory and windows: no RAM, no device, nothing mapped.
    const FREE: u64 = 64 << 30;
    const PAGE: u64 = 1 << crate::page::PAGE_SHIFT;

    fn make(start: u64, len: u64) -> Result<Pin<KBox<CoherentPagemap>>> {
        KBox::pin_init(CoherentPagemap::new(0, start, len), GFP_KERNEL)
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert_eq!(make(FREE, 0).err(), Some(EINVAL));
        assert_eq!(make(FREE + PAGE, ALIGN).err(), Some(EINVAL));
        assert_eq!(make(FREE, ALIGN + PAGE).err(), Some(EINVAL));
        assert_eq!(make(u64::MAX - ALIGN + 1, ALIGN).err(), Some(EINVAL));
    }

    #[test]
    fn system_ram_is_refused_without_a_warning() {
        // The first section holds the kernel's own memory.
        assert_eq!(make(0, ALIGN).err(), Some(EBUSY));
    }

    #[test]
    fn pages_are_handed_out_once_and_come_back() -> Result {
        let mut map = make(FREE, ALIGN)?;
        assert_eq!((map.start(), map.len(), map.in_use()), (FREE, ALIGN, 0));
        assert!(!map.owner().is_null());
        let page = PAGE;
        let p = map.as_mut().take(page)?;
        assert_eq!(p.pfn(), usize::try_from((FREE + page) / page)?);
        assert_eq!(map.in_use(), 1);
        // Handed out: not again until it is freed.
        assert_eq!(map.as_mut().take(page).err(), Some(EBUSY));
        assert_eq!(map.as_mut().take(page + 1).err(), Some(EINVAL));
        assert_eq!(map.as_mut().take(ALIGN).err(), Some(EINVAL));
        // Its last reference goes: the page map's callback counts it back.
        drop(p);
        assert_eq!(map.in_use(), 0);
        let q = map.as_mut().take(page)?;
        drop(q);
        assert_eq!(map.in_use(), 0);
        // Another page map may not take the same section (refused without a warning).
        assert_eq!(make(FREE, ALIGN).err(), Some(EBUSY));
        Ok(())
    }
}
