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

/// The unit of [`Memremap::read`] and [`Memremap::write`]: on a device whose every access is a
/// transaction of its own (or an emulated one, as under QEMU), a byte at a time is eight times
/// the work.
const WORD: usize = core::mem::size_of::<u64>();

/// How a copy of `len` bytes splits, when the first word boundary is `to_aligned` bytes in
/// (`usize::MAX`: never): the bytes before it, and the whole words after. The rest is the tail.
/// There are words only if `to_aligned <= len`, that is, only after a real boundary.
fn word_span(to_aligned: usize, len: usize) -> (usize, usize) {
    let head = to_aligned.min(len);
    (head, (len - head) / WORD)
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

    /// Copies `buf.len()` bytes at `offset` into `buf`, a word at a time where the mapping is
    /// word-aligned.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        check_bounds(offset, buf.len(), self.size)?;
        // SAFETY: `offset <= size` by the bounds check, so the pointer stays within the mapping
        // (or one past its end).
        let p = unsafe { self.addr.as_ptr().add(offset) };
        let (head, words) = word_span(p.align_offset(WORD), buf.len());
        // PANIC: `word_span` returns `head <= len` and `words * WORD <= len - head`.
        let (h, rest) = buf.split_at_mut(head);
        let (w, t) = rest.split_at_mut(words * WORD);
        for (i, b) in h.iter_mut().enumerate() {
            // SAFETY: `offset + i < size` by the bounds check, and the mapping is valid for
            // `size` bytes by the type invariant.
            *b = unsafe { p.add(i).read_volatile() };
        }
        for (i, chunk) in w.chunks_exact_mut(WORD).enumerate() {
            // SAFETY: As above, for the `WORD` bytes at `head + i * WORD`. They are aligned to a
            // word: `word_span` returns words only when `head` is `align_offset`'s distance to
            // the first word boundary (not `usize::MAX`, "cannot align"), and `WORD` is the
            // alignment of `u64` or a multiple of it.
            let v = unsafe { p.add(head + i * WORD).cast::<u64>().read_volatile() };
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
        let tail = head + words * WORD;
        for (i, b) in t.iter_mut().enumerate() {
            // SAFETY: As for the head.
            *b = unsafe { p.add(tail + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `data` to `offset`, a word at a time where the mapping is word-aligned.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result {
        check_bounds(offset, data.len(), self.size)?;
        // SAFETY: As in `read`.
        let p = unsafe { self.addr.as_ptr().add(offset) };
        let (head, words) = word_span(p.align_offset(WORD), data.len());
        // PANIC: As in `read`.
        let (h, rest) = data.split_at(head);
        let (w, t) = rest.split_at(words * WORD);
        for (i, &b) in h.iter().enumerate() {
            // SAFETY: As in `read`.
            unsafe { p.add(i).write_volatile(b) };
        }
        for (i, chunk) in w.chunks_exact(WORD).enumerate() {
            let mut v = [0u8; WORD];
            v.copy_from_slice(chunk);
            // SAFETY: As in `read`: within the mapping, and aligned to a word.
            unsafe {
                p.add(head + i * WORD)
                    .cast::<u64>()
                    .write_volatile(u64::from_ne_bytes(v))
            };
        }
        let tail = head + words * WORD;
        for (i, &b) in t.iter().enumerate() {
            // SAFETY: As in `read`.
            unsafe { p.add(tail + i).write_volatile(b) };
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
    fn copies_split_into_bytes_and_aligned_words() {
        // Aligned: all words, then the tail.
        assert_eq!(word_span(0, 256), (0, 32));
        assert_eq!(word_span(0, 13), (0, 1));
        // Unaligned: bytes up to the boundary, then words.
        assert_eq!(word_span(3, 256), (3, 31));
        assert_eq!(word_span(7, 8), (7, 0));
        // Shorter than the way to the boundary, or no boundary at all: bytes only.
        assert_eq!(word_span(5, 2), (2, 0));
        assert_eq!(word_span(usize::MAX, 64), (64, 0));
        assert_eq!(word_span(0, 0), (0, 0));
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
