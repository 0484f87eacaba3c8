// SPDX-License-Identifier: GPL-2.0
//! cxlsw-movepages NODE [PAGES]: touch PAGES (default 64) pages of anonymous
//! memory, move them to NODE with move_pages(2), check with move_pages(2)'s
//! query mode that every one is there, then move them back to the node they
//! came from and check again. Prints one line per step; exits 1, naming the
//! first page that is not where it should be, on failure.

use std::process::ExitCode;

use labtools::{page_fill, touched_pages, PAGE};
const MPOL_MF_MOVE: libc::c_int = 1 << 1;

/// move_pages(2) on this process; `nodes` None queries where the pages are.
fn move_pages(
    pages: &[*mut libc::c_void],
    nodes: Option<&[libc::c_int]>,
) -> Result<Vec<i32>, String> {
    let mut status = vec![i32::MIN; pages.len()];
    // SAFETY: The arrays are `pages.len()` long; the pages are mapped by this process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0,
            pages.len() as libc::c_ulong,
            pages.as_ptr(),
            nodes.map_or(std::ptr::null(), |n| n.as_ptr()),
            status.as_mut_ptr(),
            MPOL_MF_MOVE,
        )
    };
    if rc < 0 {
        return Err(format!("move_pages: {}", std::io::Error::last_os_error()));
    }
    Ok(status)
}

/// Moves the pages to `node` and checks that each one is there.
fn move_and_check(pages: &[*mut libc::c_void], node: i32) -> Result<(), String> {
    let status = move_pages(pages, Some(&vec![node; pages.len()]))?;
    if let Some((i, s)) = status.iter().enumerate().find(|(_, &s)| s != node) {
        return Err(format!("page {i}: move status {s}, want node {node}"));
    }
    let status = move_pages(pages, None)?;
    if let Some((i, s)) = status.iter().enumerate().find(|(_, &s)| s != node) {
        return Err(format!(
            "page {i}: on node {s} after the move, want node {node}"
        ));
    }
    println!(
        "moved {} pages to node {node}: move_pages status and query agree",
        pages.len()
    );
    Ok(())
}

fn run(node: i32, count: usize) -> Result<(), String> {
    let mem = touched_pages(count)?;
    let pages: Vec<*mut libc::c_void> = mem
        .chunks_mut(PAGE)
        .map(|p| p.as_mut_ptr().cast())
        .collect();
    let home = move_pages(&pages, None)?;
    let from = home[0];
    if from < 0 || home.iter().any(|&s| s != from) {
        return Err(format!("pages start on nodes {home:?}, want one node"));
    }
    if from == node {
        return Err(format!(
            "pages start on node {node} already: nothing to move"
        ));
    }
    move_and_check(&pages, node)?;
    move_and_check(&pages, from)?;
    for (i, page) in mem.chunks(PAGE).enumerate() {
        if page.iter().any(|&b| b != page_fill(i)) {
            return Err(format!("page {i}: contents changed by the moves"));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let node = args.get(1).and_then(|a| a.parse::<i32>().ok());
    let count = match args.get(2) {
        None => Some(64),
        Some(a) => a
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=65536).contains(&n)),
    };
    let (Some(node), Some(count)) = (node, count) else {
        eprintln!("usage: cxlsw-movepages NODE [PAGES (1..=65536, default 64)]");
        return ExitCode::from(2);
    };
    match run(node, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cxlsw-movepages: {e}");
            ExitCode::FAILURE
        }
    }
}
