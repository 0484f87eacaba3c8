// SPDX-License-Identifier: GPL-2.0

//! Software coherency for data blocks.
//!
//! CXL 2.0 switched memory has no back-invalidate: a host's caches are not told when another
//! host writes the memory. So whenever a block changes owner, the host that lets it go writes
//! back the block's cache lines (else its dirty lines could land later, over the new owner's
//! data), and the host that takes it drops its own cached lines of the block before it uses it
//! (else it could read what it cached when the block was last its own). Each is one pass over
//! the block through a temporary mapping ([`Memremap::write_back`], [`Memremap::invalidate`]).

use core::ops::Range;

use kernel::{
    memremap::Memremap,
    prelude::*,
    time::{Instant, Monotonic},
};

/// Which pass over a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Write the block's cache lines back: before it is given back, left or handed off.
    WriteBack,
    /// Drop this host's cached lines of the block: before it is onlined or mapped.
    Invalidate,
}

/// What the passes over blocks cost, for debugfs and the benches.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Passes {
    /// Blocks written back, and the last one's time in µs.
    pub(crate) write_backs: u64,
    pub(crate) write_back_us: i64,
    /// Blocks invalidated, and the last one's time in µs.
    pub(crate) invalidates: u64,
    pub(crate) invalidate_us: i64,
}

impl Passes {
    /// Runs `pass` over the physical range `block` (not onlined: not in System RAM) and counts
    /// it.
    ///
    /// # Errors
    ///
    /// The error of mapping the range (it is claimed by someone else, or cannot be mapped) or of
    /// the pass.
    pub(crate) fn run(&mut self, block: &Range<u64>, pass: Pass) -> Result {
        let started = Instant::<Monotonic>::now();
        let len = usize::try_from(block.end.saturating_sub(block.start))?;
        let map = Memremap::new(block.start, len, c"cxl_switched block")?;
        match pass {
            Pass::WriteBack => map.write_back(0, len)?,
            Pass::Invalidate => map.invalidate(0, len)?,
        }
        drop(map);
        let us = started.elapsed().as_micros_ceil();
        match pass {
            Pass::WriteBack => {
                self.write_backs = self.write_backs.saturating_add(1);
                self.write_back_us = us;
            }
            Pass::Invalidate => {
                self.invalidates = self.invalidates.saturating_add(1);
                self.invalidate_us = us;
            }
        }
        Ok(())
    }
}
