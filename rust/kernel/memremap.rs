// SPDX-License-Identifier: GPL-2.0

//! Reserved, memremap()ed physical memory.
//!
//! Memory that is not part of the page allocator, such as a block of a CXL device kept out of
//! System RAM to hold metadata shared between hosts, is claimed in the resource tree, so that no
//! one else claims or onlines it, and mapped with `memremap()`.
//!
//! Memory shared with other hosts without hardware coherency (CXL 2.0 switched memory) is kept
//! coherent by software: a writer writes back what it wrote ([`Memremap::write_back`]), a reader
//! invalidates before it reads ([`Memremap::invalidate`]).
//!
//! C headers: [`include/linux/io.h`](srctree/include/linux/io.h),
//! [`include/linux/libnvdimm.h`](srctree/include/linux/libnvdimm.h)

use crate::{
    bindings,
    prelude::*,
    str::CString,
    sync::barrier::{mb, Full},
};
use core::ptr::NonNull;

/// Checks that `len` bytes at `offset` lie within `size` bytes.
pub fn check_bounds(offset: usize, len: usize, size: usize) -> Result {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(EINVAL),
    }
}

/// A physical range claimed as busy under a name and mapped write-back.
///
/// The memory may be shared with other agents: accesses are volatile, and the mapping never hands
/// out Rust references to the memory.
///
/// # Invariants
///
/// - `start..start + size` is claimed busy in the resource tree under `name`, released on drop.
/// - `addr` is a `memremap()` mapping of `size` bytes at `start`, unmapped on drop.
pub struct Memremap {
    addr: NonNull<u8>,
    start: u64,
    size: usize,
    _name: CString,
}

impl Memremap {
    /// Claims `start..start + size` as `name` and maps it write-back.
    ///
    /// Fails with [`EBUSY`] if any part of the range is claimed already.
    pub fn new(start: u64, size: usize, name: &CStr) -> Result<Self> {
        if size == 0 {
            return Err(EINVAL);
        }
        let len = u64::try_from(size).map_err(|_| EINVAL)?;
        start.checked_add(len).ok_or(EINVAL)?;
        let name = CString::try_from(name)?;
        // SAFETY: `iomem_resource` is the root of the memory resource tree and lives forever;
        // `name` lives as long as the claim, as it is dropped only after the release.
        let res = unsafe {
            bindings::__request_region(
                &raw mut bindings::iomem_resource,
                start,
                len,
                name.as_char_ptr(),
                bindings::IORESOURCE_MEM as c_int,
            )
        };
        if res.is_null() {
            return Err(EBUSY);
        }
        // SAFETY: The range is ours now; `memremap` takes no pointers.
        let addr = unsafe { bindings::memremap(start, size, bindings::MEMREMAP_WB as c_ulong) };
        let Some(addr) = NonNull::new(addr.cast::<u8>()) else {
            // SAFETY: The range was claimed just above.
            unsafe { bindings::__release_region(&raw mut bindings::iomem_resource, start, len) };
            return Err(ENOMEM);
        };
        // INVARIANT: The range is claimed and mapped.
        Ok(Self {
            addr,
            start,
            size,
            _name: name,
        })
    }

    /// The physical start address.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        check_bounds(offset, buf.len(), self.size)?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `offset + i < size` by the bounds check, and the mapping is valid for
            // `size` bytes by the type invariant.
            *b = unsafe { self.addr.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `data` to `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result {
        check_bounds(offset, data.len(), self.size)?;
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: As in `read`.
            unsafe { self.addr.as_ptr().add(offset + i).write_volatile(b) };
        }
        Ok(())
    }

    /// Writes the cache lines of `len` bytes at `offset` back to memory, and orders that before
    /// any later store, so that another host that invalidates and reads sees them.
    pub fn write_back(&self, offset: usize, len: usize) -> Result {
        check_bounds(offset, len, self.size)?;
        // SAFETY: The range lies within the mapping (bounds check, type invariant); writing
        // back cache lines does not change the memory's contents.
        unsafe { bindings::arch_wb_cache_pmem(self.addr.as_ptr().add(offset).cast(), len) };
        // The write-back instructions are ordered by a full barrier.
        mb(Full);
        Ok(())
    }

    /// Drops this CPU's cached copies of `len` bytes at `offset`, so that the next read fetches
    /// what another host wrote back. Lines this host wrote and did not write back are lost.
    pub fn invalidate(&self, offset: usize, len: usize) -> Result {
        check_bounds(offset, len, self.size)?;
        // SAFETY: As in `write_back`; callers write back before they invalidate what they wrote.
        unsafe { bindings::arch_invalidate_pmem(self.addr.as_ptr().add(offset).cast(), len) };
        Ok(())
    }
}

impl Drop for Memremap {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the mapping is valid and the range claimed; both are
        // undone once, here. The resource is released by range, as `release_mem_region` does.
        unsafe {
            bindings::memunmap(self.addr.as_ptr().cast());
            bindings::__release_region(
                &raw mut bindings::iomem_resource,
                self.start,
                self.size as u64,
            );
        }
    }
}

// SAFETY: The mapping and the claim may be used and released from any thread; accesses are
// volatile copies.
unsafe impl Send for Memremap {}
// SAFETY: Shared references only read or write through volatile copies; callers that need
// ordering between writers serialise them.
unsafe impl Sync for Memremap {}

#[macros::kunit_tests(rust_kernel_memremap)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        assert!(check_bounds(0, 4096, 4096).is_ok());
        assert!(check_bounds(4095, 1, 4096).is_ok());
        assert!(check_bounds(4096, 0, 4096).is_ok());
        assert_eq!(check_bounds(4096, 1, 4096), Err(EINVAL));
        assert_eq!(check_bounds(usize::MAX, 2, 4096), Err(EINVAL));
    }

    #[test]
    fn claimed_ranges_are_refused() {
        // Beyond the physical address space: nothing to claim.
        assert_eq!(
            Memremap::new(1 << 62, 4096, c"rust-kunit").err(),
            Some(EBUSY)
        );
        assert_eq!(Memremap::new(1 << 20, 0, c"rust-kunit").err(), Some(EINVAL));
        assert_eq!(
            Memremap::new(u64::MAX, 4096, c"rust-kunit").err(),
            Some(EINVAL)
        );
    }
}
