// SPDX-License-Identifier: GPL-2.0
//! What the lab's guest helpers share.

pub mod workload;

/// The guest's page size.
pub const PAGE: usize = 4096;

/// The byte every byte of page `i` of [`touched_pages`] holds.
pub fn page_fill(i: usize) -> u8 {
    i as u8 | 1
}

/// Maps `count` private anonymous pages, never unmapped, and fills page `i`
/// with [`page_fill`]`(i)`, so that every page is present and recognisable.
pub fn touched_pages(count: usize) -> Result<&'static mut [u8], String> {
    let mem = anonymous_pages(count)?;
    for (i, page) in mem.chunks_mut(PAGE).enumerate() {
        page.fill(page_fill(i));
    }
    Ok(mem)
}

/// Maps `count` private anonymous pages, readable and writable, zero-filled
/// and never unmapped. The pages are not touched: each one is faulted in when
/// first used.
pub fn anonymous_pages(count: usize) -> Result<&'static mut [u8], String> {
    let len = count
        .checked_mul(PAGE)
        .ok_or_else(|| format!("{count} pages do not fit in the address space"))?;
    // SAFETY: A fresh private anonymous mapping; the result is checked.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: The mapping is `len` bytes, readable and writable, ours alone
    // and never unmapped.
    Ok(unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), len) })
}
