// SPDX-License-Identifier: GPL-2.0

//! Migrating the pages of a range of a process's anonymous memory (`migrate_vma_*`).
//!
//! A driver that owns memory the CPU can address (device memory given `struct page`s, see
//! [`crate::pagemap`]) moves a process's pages into it, or back into system RAM, with the
//! kernel's own migration: the pages are collected and unmapped (a concurrent access waits on a
//! migration entry, so no write is lost), the driver gives a new page for each one it moves and
//! fills it, and the new pages are mapped in place of the old ones. An empty entry of an
//! anonymous mapping (never touched) can be populated the same way, with nothing to copy.
//!
//! C header: [`include/linux/migrate.h`](srctree/include/linux/migrate.h)

use crate::{
    alloc::{Flags, KVec},
    bindings,
    error::{code::*, to_result, Result},
    mm::virt::VmaRef,
    page::{Page, PAGE_SIZE},
};
use core::{ffi::c_void, marker::PhantomData, mem::ManuallyDrop, ptr::NonNull};

// Flags of the entries of the `src` and `dst` arrays (`include/linux/migrate.h`).
const PFN_VALID: usize = 1 << 0;
const PFN_MIGRATE: usize = 1 << 1;
const PFN_WRITE: usize = 1 << 3;
const PFN_SHIFT: u32 = 6;

/// The most pages one migration takes: bounds the arrays and the time pages stay unmapped.
pub const MAX_PAGES: usize = 512;

/// Which present pages a migration collects (empty entries of an anonymous mapping always are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Pages of system RAM.
    System,
    /// Coherent device pages of the page map whose owner is given.
    DeviceCoherent,
}

/// A page to migrate into: locked, with the one reference that the caller holds, mapped
/// nowhere. A migration takes it; dropped unused, it is unlocked and put.
///
/// # Invariants
///
/// `page` is a valid, locked page whose one reference this value owns, mapped nowhere.
pub struct NewPage {
    page: NonNull<bindings::page>,
}

// SAFETY: The page is this value's alone (type invariant): it may be moved to another thread.
unsafe impl Send for NewPage {}

impl NewPage {
    /// Allocates a page of system RAM on node `nid`, and on no other, locked.
    ///
    /// # Errors
    ///
    /// [`ENOMEM`] if node `nid` has no memory or no free page.
    pub fn alloc_on_node(nid: i32, flags: Flags) -> Result<Self> {
        let page = Page::alloc_page_on_node(nid, flags).map_err(|_| ENOMEM)?;
        let page = ManuallyDrop::new(page);
        let raw = page.as_ptr();
        // SAFETY: `raw` is a page just allocated, with one reference, which the `ManuallyDrop`
        // above hands over to the new value; nobody else knows it, so locking cannot block.
        unsafe { bindings::lock_page(raw) };
        // SAFETY: `raw` is valid, locked, mapped nowhere, its one reference is ours.
        Ok(unsafe { Self::from_raw(NonNull::new_unchecked(raw)) })
    }

    /// Takes over `page`.
    ///
    /// # Safety
    ///
    /// `page` is a valid, locked page mapped nowhere, and the caller owns its one reference,
    /// which it gives to the new value.
    pub unsafe fn from_raw(page: NonNull<bindings::page>) -> Self {
        // INVARIANT: The caller's contract.
        Self { page }
    }

    /// Its page frame number.
    pub fn pfn(&self) -> usize {
        // SAFETY: `self.page` is a valid page (type invariant).
        unsafe { bindings::page_to_pfn(self.page.as_ptr()) }
    }

    /// Fills the page with zeroes.
    pub fn zero(&mut self) {
        // SAFETY: The page is valid and this value's alone (type invariant).
        unsafe { bindings::clear_highpage(self.page.as_ptr()) };
    }

    fn into_raw(self) -> NonNull<bindings::page> {
        ManuallyDrop::new(self).page
    }
}

impl Drop for NewPage {
    fn drop(&mut self) {
        let p = self.page.as_ptr();
        // SAFETY: The page is locked and its one reference is ours (type invariant): it is
        // unlocked and the reference dropped, once.
        unsafe {
            bindings::unlock_page(p);
            bindings::put_page(p);
        }
    }
}

/// What entry `i` of a migration holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Not collected: left as it is (a page of another kind, or one that could not be
    /// isolated).
    Skip,
    /// Empty in an anonymous mapping: a new page populates it, with nothing to copy.
    Empty,
    /// A page that was collected and unmapped; its contents go into the new page.
    Page {
        /// Its page frame number.
        pfn: usize,
        /// Whether it was mapped writable.
        writable: bool,
    },
}

/// The pages of a range of one VMA, collected and unmapped by `migrate_vma_setup()`, until
/// [`MigrateVma::commit`] maps the new pages in their place (or dropping puts the old pages
/// back).
///
/// # Invariants
///
/// `args` went through a successful `migrate_vma_setup()` over `src` and `dst`, which have
/// `npages` entries and stay where they are; `migrate_vma_finalize()` has not been called.
/// Every non-zero `dst` entry holds a reference and the lock of a [`NewPage`] given to it.
/// The mmap lock of the VMA's mm is held for `'a`.
pub struct MigrateVma<'a> {
    args: bindings::migrate_vma,
    src: KVec<usize>,
    dst: KVec<usize>,
    _vma: PhantomData<&'a VmaRef>,
}

impl<'a> MigrateVma<'a> {
    /// Collects and unmaps the pages of `start..end` of `vma` that `select` names, with
    /// `owner` as the page map owner for device pages (and for the MMU notifiers). `vma` comes
    /// from [`crate::mm::MmapReadGuard::vma_lookup`], so its mm's mmap lock is held.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] for a range that is empty, not page-aligned, longer than [`MAX_PAGES`] or not
    /// inside `vma`, or a VMA that no migration takes (hugetlb, I/O, DAX); [`ENOMEM`].
    pub fn setup(
        vma: &'a VmaRef,
        start: usize,
        end: usize,
        select: Select,
        owner: *mut c_void,
        flags: Flags,
    ) -> Result<Self> {
        let n = end.checked_sub(start).ok_or(EINVAL)? / PAGE_SIZE;
        if n == 0
            || n > MAX_PAGES
            || start % PAGE_SIZE != 0
            || end % PAGE_SIZE != 0
            || start < vma.start()
            || end > vma.end()
        {
            return Err(EINVAL);
        }
        let mut src = KVec::new();
        src.resize(n, 0usize, flags)?;
        let mut dst = KVec::new();
        dst.resize(n, 0usize, flags)?;
        let select = match select {
            Select::System => bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_SYSTEM,
            Select::DeviceCoherent => {
                bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_COHERENT
            }
        };
        let mut args = bindings::migrate_vma {
            vma: vma.as_ptr(),
            dst: dst.as_mut_ptr(),
            src: src.as_mut_ptr(),
            cpages: 0,
            npages: 0,
            start,
            end,
            pgmap_owner: owner,
            flags: usize::try_from(select)?,
            fault_page: core::ptr::null_mut(),
        };
        // SAFETY: `args` names a VMA whose mmap lock is held (it was looked up under the guard
        // that `'a` borrows), a range inside it, and arrays of `n` entries.
        to_result(unsafe { bindings::migrate_vma_setup(&mut args) })?;
        // INVARIANT: Set up above; the arrays are in the vectors, which are not resized.
        Ok(Self {
            args,
            src,
            dst,
            _vma: PhantomData,
        })
    }

    /// How many entries the range has.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// Whether the range has no entry (never: a migration has at least one).
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }

    /// How many entries were collected (empty or unmapped pages).
    pub fn collected(&self) -> usize {
        self.args.cpages
    }

    /// What entry `i` holds ([`Entry::Skip`] past the end).
    pub fn entry(&self, i: usize) -> Entry {
        let s = self.src.get(i).copied().unwrap_or(0);
        if s & PFN_MIGRATE == 0 {
            Entry::Skip
        } else if s & PFN_VALID == 0 {
            Entry::Empty
        } else {
            Entry::Page {
                pfn: s >> PFN_SHIFT,
                writable: s & PFN_WRITE != 0,
            }
        }
    }

    /// Copies the page of entry `i` into `page`.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if entry `i` holds no page.
    pub fn copy_to(&self, i: usize, page: &mut NewPage) -> Result {
        let Entry::Page { pfn, .. } = self.entry(i) else {
            return Err(EINVAL);
        };
        // SAFETY: `pfn` is the frame of a page that the migration holds locked and unmapped,
        // so a valid `struct page` whose contents are stable.
        let from = unsafe { bindings::pfn_to_page(pfn) };
        // SAFETY: Both pages are valid; `page` is this caller's alone.
        unsafe { bindings::copy_highpage(page.page.as_ptr(), from) };
        Ok(())
    }

    /// Gives `page` to entry `i`, which must be collected and have no page yet.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if entry `i` is not collected or has a page already; `page` is dropped.
    pub fn set(&mut self, i: usize, page: NewPage) -> Result {
        if self.entry(i) == Entry::Skip {
            return Err(EINVAL);
        }
        let d = self.dst.get_mut(i).ok_or(EINVAL)?;
        if *d != 0 {
            return Err(EINVAL);
        }
        *d = (page.pfn() << PFN_SHIFT) | PFN_VALID;
        // The entry holds the page's reference and lock now (type invariant).
        let _ = page.into_raw();
        Ok(())
    }

    /// Maps the new pages in place of the collected entries and ends the migration. Returns
    /// how many entries moved; the others keep their old page (or stay empty).
    pub fn commit(mut self) -> usize {
        // SAFETY: Set up (type invariant); `dst` holds new pages or zero.
        unsafe { bindings::migrate_vma_pages(&mut self.args) };
        let moved = self
            .src
            .iter()
            .zip(self.dst.iter())
            .filter(|(s, d)| **s & PFN_MIGRATE != 0 && **d != 0)
            .count();
        self.finalize();
        let _ = ManuallyDrop::new(self);
        moved
    }

    fn finalize(&mut self) {
        // SAFETY: Set up and not finalized (type invariant); finalized once, here: the new
        // pages that did not move are unlocked and put, the old ones mapped again or freed.
        unsafe { bindings::migrate_vma_finalize(&mut self.args) };
    }
}

impl Drop for MigrateVma<'_> {
    fn drop(&mut self) {
        // Nothing moves: the new pages go back, the old ones are mapped again. Clearing their
        // entries' migrate flag tells `migrate_vma_finalize()` to restore them.
        for (s, d) in self.src.iter_mut().zip(self.dst.iter_mut()) {
            *s &= !PFN_MIGRATE;
            if *d != 0 {
                // SAFETY: A non-zero entry holds the reference and lock of a page given to it
                // (type invariant); they are handed back to a `NewPage`, dropped here.
                let page = unsafe { bindings::pfn_to_page(*d >> PFN_SHIFT) };
                *d = 0;
                if let Some(p) = NonNull::new(page) {
                    // SAFETY: As above.
                    drop(unsafe { NewPage::from_raw(p) });
                }
            }
        }
        self.finalize();
    }
}
