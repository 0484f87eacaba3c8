// SPDX-License-Identifier: GPL-2.0
//! cxlsw-pin PAGES: touch PAGES pages of anonymous memory, splice them into a
//! pipe that nobody reads and wait. The pipe keeps a reference on each page,
//! so the kernel cannot migrate them: memory offlining cannot finish while
//! this process lives. Run it under `numactl --membind=N` to pin pages of
//! node N. Prints "pinned PAGES" once the pages are held.

use std::io::Write;
use std::process::ExitCode;

use labtools::{touched_pages, PAGE};
// A pipe holds 16 buffers by default; stay below so that vmsplice never blocks.
const MAX_PAGES: usize = 15;

fn pin(pages: usize) -> Result<(), String> {
    let mem = touched_pages(pages)?;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    for page in mem.chunks(PAGE) {
        let iov = libc::iovec {
            iov_base: page.as_ptr() as *mut libc::c_void,
            iov_len: PAGE,
        };
        // SAFETY: `iov` describes one mapped page; fds[1] is the pipe's write end.
        let n = unsafe { libc::vmsplice(fds[1], &iov, 1, 0) };
        if n != PAGE as isize {
            return Err(format!("vmsplice: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let pages = match args.get(1).map(|a| a.parse::<usize>()) {
        Some(Ok(n)) if (1..=MAX_PAGES).contains(&n) => n,
        _ => {
            eprintln!("usage: cxlsw-pin PAGES (1..={MAX_PAGES})");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = pin(pages) {
        eprintln!("cxlsw-pin: {e}");
        return ExitCode::FAILURE;
    }
    println!("pinned {pages}");
    let _ = std::io::stdout().flush();
    loop {
        // SAFETY: pause() takes no arguments; it returns only on a signal.
        unsafe { libc::pause() };
    }
}
