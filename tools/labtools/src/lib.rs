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

/// Maps `len` bytes of private anonymous memory, readable and writable, at
/// exactly `addr` (`MAP_FIXED_NOREPLACE`), never unmapped, and returns its
/// start. The pages are not touched: no page backs the mapping until it is
/// used (or until a driver maps pages into it). Fails, mapping nothing, if
/// anything of this process is mapped there already (`EEXIST`), or if the
/// kernel put the mapping elsewhere (one before 4.17 takes the address as a
/// hint only).
pub fn anonymous_at(addr: usize, len: usize) -> Result<*mut u8, String> {
    let at = std::ptr::without_provenance_mut::<libc::c_void>(addr);
    // SAFETY: MAP_FIXED_NOREPLACE replaces no mapping: it fails where one is.
    // The result is checked.
    let got = unsafe {
        libc::mmap(
            at,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if got == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        let why = if e.raw_os_error() == Some(libc::EEXIST) {
            ": something of this process is mapped there"
        } else {
            ""
        };
        return Err(format!("mmap {addr:#x} len {len}: {e}{why}"));
    }
    if got.addr() != addr {
        // SAFETY: the mapping just made, `len` bytes at `got`, which nothing uses.
        unsafe { libc::munmap(got, len) };
        return Err(format!(
            "mmap {addr:#x} len {len}: the kernel mapped it at {:#x} (no MAP_FIXED_NOREPLACE)",
            got.addr()
        ));
    }
    Ok(got.cast())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mapping of `len` bytes made by [`anonymous_at`] at the first of some
    /// addresses far from where mmap and the heap put things (the allocator
    /// of the tests running beside would otherwise race for a hole just
    /// unmapped), where nothing is mapped.
    fn somewhere_free(len: usize) -> *mut u8 {
        (1..64usize)
            .find_map(|gib| anonymous_at(0x1000_0000_0000 + (gib << 30), len).ok())
            .expect("a free address")
    }

    #[test]
    fn a_mapping_at_a_free_address_is_there_and_untouched() {
        let p = somewhere_free(4 * PAGE);
        let addr = p.addr();
        assert_eq!(addr % (1 << 30), 0);
        let maps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let head = format!("{addr:x}-{:x} rw-p ", addr + 4 * PAGE);
        let entry = maps
            .split_once(&head)
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("no {head} in /proc/self/smaps"));
        let rss = entry
            .lines()
            .find_map(|l| l.strip_prefix("Rss:"))
            .map(str::trim);
        assert_eq!(rss, Some("0 kB"), "the new mapping is untouched");
        // SAFETY: the 4 pages just mapped, readable and writable, this test's alone.
        let mem = unsafe { std::slice::from_raw_parts_mut(p, 4 * PAGE) };
        mem[PAGE] = 7;
        assert_eq!(mem.iter().map(|&b| usize::from(b)).sum::<usize>(), 7);
    }

    #[test]
    fn a_mapping_where_one_is_fails_and_replaces_nothing() {
        let mem = touched_pages(2).unwrap();
        let addr = mem.as_ptr().addr();
        let e = anonymous_at(addr + PAGE, PAGE).unwrap_err();
        assert!(e.contains("File exists"), "{e}");
        assert!(
            e.contains("something of this process is mapped there"),
            "{e}"
        );
        assert_eq!(mem[PAGE], page_fill(1), "the old page is still there");
    }
}
