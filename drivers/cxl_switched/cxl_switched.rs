// SPDX-License-Identifier: GPL-2.0

//! Switched CXL memory as typed NUMA nodes.
//!
//! Hosts that share a CXL memory device through a CXL switch see that memory
//! as a "portal": a NUMA node of its own, typed "Switched", whose first memory
//! block holds a handoff header through which the hosts agree on who owns
//! which block.
//!
//! This is the driver's skeleton: it loads and unloads cleanly and carries the
//! portal layout math (see [`layout`]) that binding will use.

// The layout and the checksum are used by the KUnit suites now, and by
// binding and the handoff header next. Both are `core`-only: the userspace
// tools build the same files.
#[allow(dead_code)]
mod crc32c;
#[allow(dead_code)]
mod layout;

use kernel::prelude::*;

module! {
    type: CxlSwitched,
    name: "cxl_switched",
    authors: ["The cxl_switched authors"],
    description: "Switched CXL memory as typed NUMA nodes",
    license: "GPL v2",
}

struct CxlSwitched;

impl kernel::Module for CxlSwitched {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!(
            "loaded; portal header reserves {} memory block(s)\n",
            layout::HEADER_BLOCKS
        );
        Ok(CxlSwitched)
    }
}

impl Drop for CxlSwitched {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
