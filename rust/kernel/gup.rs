// SPDX-License-Identifier: GPL-2.0

//! Pinning the pages of another process's memory.
//!
//! A driver that hands a process's memory to another machine, without copying it, must keep
//! the pages where they are until the other machine is done with them: it pins them
//! (`FOLL_PIN`), as RDMA and VFIO do. It must also refuse a range that is not already in
//! memory, rather than fault pages in behind the process's back.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h),
//! [`include/linux/pid.h`](srctree/include/linux/pid.h)

use crate::{
    alloc::{Flags, KVec},
    bindings,
    error::{code::*, Error},
    mm::MmWithUser,
    page::{Page, PAGE_SIZE},
    sync::{
        aref::ARef,
        barrier::{mb, Full},
    },
};
use core::ptr::{null_mut, NonNull};

/// The most pages one `pin_user_pages_remote()` call takes: bounds the time the mmap lock is
/// held in one call, not the size of a range.
const BATCH: usize = 512;

/// Why a range could not be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinError {
    /// The range is empty, not page-aligned or wraps around.
    Unaligned,
    /// The address is in no mapping of the process.
    NotMapped(usize),
    /// The mapping at the address is not private anonymous memory (shared, file-backed, I/O).
    NotAnonymous(usize),
    /// The page at the address is not present and writable: pinning would fault it in.
    NotPresent(usize),
    /// No memory for the page array.
    NoMemory,
    /// `pin_user_pages_remote()` failed with this error.
    Pin(Error),
}

impl From<PinError> for Error {
    fn from(e: PinError) -> Self {
        match e {
            PinError::Unaligned => EINVAL,
            PinError::NotMapped(_) | PinError::NotAnonymous(_) | PinError::NotPresent(_) => EFAULT,
            PinError::NoMemory => ENOMEM,
            PinError::Pin(e) => e,
        }
    }
}

/// The memory of process `pid` (as the calling task's pid namespace numbers it), if the
/// calling task may attach to it as a debugger may (`PTRACE_MODE_ATTACH_REALCREDS`, as
/// `process_vm_readv()` requires).
///
/// # Errors
///
/// [`ESRCH`] if there is no such process or it has no memory (a kernel thread, or exiting);
/// [`EACCES`] or [`EPERM`] if the caller may not attach to it.
pub fn mm_of_pid(pid: i32) -> Result<ARef<MmWithUser>, Error> {
    // SAFETY: `find_get_pid` takes any number; it returns a referenced `struct pid` or NULL.
    let p = unsafe { bindings::find_get_pid(pid) };
    if p.is_null() {
        return Err(ESRCH);
    }
    // SAFETY: `p` is a valid, referenced `struct pid`.
    let task = unsafe { bindings::get_pid_task(p, bindings::pid_type_PIDTYPE_PID) };
    // SAFETY: The reference `find_get_pid` took is ours to drop, once.
    unsafe { bindings::put_pid(p) };
    if task.is_null() {
        return Err(ESRCH);
    }
    // SAFETY: `task` is a valid, referenced task.
    let mm = unsafe { bindings::mm_access(task, bindings::PTRACE_MODE_ATTACH_REALCREDS) };
    // SAFETY: The reference `get_pid_task` took is ours to drop, once.
    unsafe { bindings::put_task_struct(task) };
    // `mm_access` returns NULL, an error pointer or an mm with a user reference.
    let mm = crate::error::from_err_ptr(mm)?;
    let mm = NonNull::new(mm).ok_or(ESRCH)?;
    // SAFETY: `mm` holds a user reference (`mm_users`), which the `ARef` now owns and drops
    // with `mmput()`; `MmWithUser` is a transparent wrapper of `struct mm_struct`.
    Ok(unsafe { ARef::from_raw(mm.cast()) })
}

/// Pages of a process's memory, pinned: they stay at their physical address, mapped where
/// they were, until this is dropped.
///
/// # Invariants
///
/// Every pointer in `pages` is a page pinned once with `FOLL_PIN` and not unpinned yet.
pub struct PinnedPages {
    pages: KVec<*mut bindings::page>,
}

// SAFETY: A pin is a reference count on the page, which any thread may drop.
unsafe impl Send for PinnedPages {}
// SAFETY: The shared methods only read the page pointers and the pages' frame numbers and
// nodes, which cannot change while they are pinned.
unsafe impl Sync for PinnedPages {}

impl PinnedPages {
    /// No pages.
    pub const fn new() -> Self {
        // INVARIANT: No pages.
        PinnedPages { pages: KVec::new() }
    }

    /// Pins the pages of `mm` at `start..start + len` and appends them: every page must be in a
    /// private anonymous mapping and present and writable, so that nothing is faulted in or
    /// copied. Either all of the range is pinned, or none of it.
    ///
    /// # Errors
    ///
    /// A [`PinError`] that says which address failed and why.
    pub fn pin_present(
        &mut self,
        mm: &MmWithUser,
        start: usize,
        len: usize,
        flags: Flags,
    ) -> Result<(), PinError> {
        let end = start.checked_add(len).ok_or(PinError::Unaligned)?;
        if len == 0 || start % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
            return Err(PinError::Unaligned);
        }
        let before = self.pages.len();
        let r = self.pin_range(mm, start, end, flags);
        if r.is_err() {
            self.truncate(before);
        }
        r
    }

    fn pin_range(
        &mut self,
        mm: &MmWithUser,
        start: usize,
        end: usize,
        flags: Flags,
    ) -> Result<(), PinError> {
        let guard = mm.mmap_read_lock();
        let mut addr = start;
        while addr < end {
            let vma = guard.vma_lookup(addr).ok_or(PinError::NotMapped(addr))?;
            let vm_flags = vma.flags();
            // SAFETY: The mmap read lock is held, so the vma and its `vm_file` are stable.
            let file = unsafe { (*vma.as_ptr()).vm_file };
            let special = bindings::VM_SHARED | bindings::VM_IO | bindings::VM_PFNMAP;
            if !file.is_null() || vm_flags & crate::mm::virt::vm_flags_t::from(special) != 0 {
                return Err(PinError::NotAnonymous(addr));
            }
            let stop = end.min(vma.end());
            while addr < stop {
                let n = ((stop - addr) / PAGE_SIZE).min(BATCH);
                self.pages
                    .reserve(n, flags)
                    .map_err(|_| PinError::NoMemory)?;
                let spare = self.pages.spare_capacity_mut();
                // SAFETY: The mmap lock is held for reading, as `locked == NULL` requires;
                // `spare` has room for `n` page pointers; `n` is at most `BATCH`.
                let got = unsafe {
                    bindings::pin_user_pages_remote(
                        mm.as_raw(),
                        addr,
                        n,
                        bindings::FOLL_WRITE | bindings::FOLL_NOFAULT,
                        spare.as_mut_ptr().cast(),
                        null_mut(),
                    )
                };
                if got < 0 {
                    return Err(PinError::Pin(Error::from_errno(
                        i32::try_from(got).unwrap_or(-14),
                    )));
                }
                let got = usize::try_from(got).unwrap_or(0).min(n);
                // SAFETY: `pin_user_pages_remote` initialised the first `got` entries, each a
                // pinned page (the type invariant).
                unsafe { self.pages.inc_len(got) };
                addr += got * PAGE_SIZE;
                if got < n {
                    return Err(PinError::NotPresent(addr));
                }
            }
        }
        Ok(())
    }

    /// Unpins the pages past the first `len`.
    fn truncate(&mut self, len: usize) {
        while self.pages.len() > len {
            if let Some(p) = self.pages.pop() {
                // SAFETY: `p` was pinned once and is removed from `pages`: unpinned once.
                unsafe { bindings::unpin_user_page(p) };
            }
        }
    }

    /// How many pages are pinned.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page is pinned.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// The page frame number of page `i`, in pinning order.
    pub fn pfn(&self, i: usize) -> Option<usize> {
        let p = *self.pages.get(i)?;
        // SAFETY: `p` is a pinned page (type invariant), so a valid `struct page`.
        Some(unsafe { bindings::page_to_pfn(p) })
    }

    /// The NUMA node of page `i`, in pinning order.
    pub fn nid(&self, i: usize) -> Option<i32> {
        let p = *self.pages.get(i)?;
        // SAFETY: `p` is a pinned page (type invariant), so a valid `struct page`.
        Some(unsafe { bindings::page_to_nid(p) })
    }

    /// Writes the cache lines of every page back to memory and orders that before any later
    /// store, so that another machine that invalidates and reads sees them.
    pub fn write_back(&self) {
        for &p in self.pages.iter() {
            write_back_raw(p);
        }
        mb(Full);
    }
}

impl Default for PinnedPages {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PinnedPages {
    fn drop(&mut self) {
        let n = self.pages.len();
        // SAFETY: The first `n` entries are pinned pages (type invariant), unpinned once here.
        unsafe { bindings::unpin_user_pages(self.pages.as_mut_ptr(), n) };
    }
}

fn write_back_raw(p: *mut bindings::page) {
    // SAFETY: `p` is a valid page; a local mapping of it is dropped below.
    let addr = unsafe { bindings::kmap_local_page(p) };
    // SAFETY: `addr` maps `PAGE_SIZE` bytes; writing back cache lines does not change them.
    unsafe { bindings::arch_wb_cache_pmem(addr, PAGE_SIZE) };
    // SAFETY: `addr` is the local mapping made above, unmapped once.
    unsafe { bindings::kunmap_local(addr) };
}

/// Writes the cache lines of `page` back to memory and orders that before any later store.
pub fn write_back_page(page: &Page) {
    write_back_raw(page.as_ptr());
    mb(Full);
}

#[macros::kunit_tests(rust_kernel_gup)]
mod tests {
    use super::*;
    use crate::alloc::flags::GFP_KERNEL;

    // A process's pages are pinned by the cxl_switched lab's export scenarios: these suites run
    // at boot, before any process has memory.

    #[test]
    fn no_such_process_is_esrch() {
        assert_eq!(mm_of_pid(i32::MAX).err(), Some(ESRCH));
        assert_eq!(mm_of_pid(-1).err(), Some(ESRCH));
    }

    #[test]
    fn errors_say_which_errno() {
        assert_eq!(Error::from(PinError::Unaligned), EINVAL);
        assert_eq!(Error::from(PinError::NotMapped(0)), EFAULT);
        assert_eq!(Error::from(PinError::NotAnonymous(0)), EFAULT);
        assert_eq!(Error::from(PinError::NotPresent(0)), EFAULT);
        assert_eq!(Error::from(PinError::NoMemory), ENOMEM);
        assert_eq!(Error::from(PinError::Pin(EBUSY)), EBUSY);
        let p = PinnedPages::new();
        assert!(p.is_empty());
        assert_eq!((p.pfn(0), p.nid(0)), (None, None));
    }

    #[test]
    fn a_page_allocated_on_a_node_is_on_it() {
        let Ok(any) = Page::alloc_page(GFP_KERNEL) else {
            return;
        };
        let nid = any.nid();
        let q = Page::alloc_page_on_node(nid, GFP_KERNEL);
        assert!(q.is_ok());
        if let Ok(q) = q {
            assert_eq!(q.nid(), nid);
            assert!(q.pfn() != 0 && q.pfn() != any.pfn());
            write_back_page(&q);
        }
        // Nodes that do not exist, or have no memory, are refused without a warning.
        assert!(Page::alloc_page_on_node(-1, GFP_KERNEL).is_err());
        assert!(Page::alloc_page_on_node(i32::MAX, GFP_KERNEL).is_err());
    }
}
