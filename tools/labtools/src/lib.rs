// SPDX-License-Identifier: GPL-2.0
//! What the lab's guest helpers share.

/// The guest's page size.
pub const PAGE: usize = 4096;

/// The byte every byte of page `i` of [`touched_pages`] holds.
pub fn page_fill(i: usize) -> u8 {
    i as u8 | 1
}

/// Maps `count` private anonymous pages, never unmapped, and fills page `i`
/// with [`page_fill`]`(i)`, so that every page is present and recognisable.
pub fn touched_pages(count: usize) -> Result<&'static mut [u8], String> {
    let len = count * PAGE;
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
    let mem = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), len) };
    for (i, page) in mem.chunks_mut(PAGE).enumerate() {
        page.fill(page_fill(i));
    }
    Ok(mem)
}
