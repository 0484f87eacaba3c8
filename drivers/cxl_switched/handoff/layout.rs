// SPDX-License-Identifier: GPL-2.0

//! Portal layout: which part of a switched region holds the handoff header and
//! which part may be onlined.
//!
//! A portal is one CXL RAM region, reached through a switch, mapped at a host
//! physical address range `[start, start + size)`. Memory hotplug works in
//! whole memory blocks, so the driver only accepts a region whose start and
//! size are multiples of the memory block size. The first [`HEADER_BLOCKS`]
//! block(s) hold the handoff header and are never onlined; the rest is the
//! onlinable part, split into `blocks` memory blocks.
//!
//! This file is `core`-only (no kernel crate) so that the same code is built
//! into the driver and into the userspace tools.

use core::ops::Range;

/// Number of memory blocks at the start of a portal reserved for the header.
pub(crate) const HEADER_BLOCKS: u64 = 1;

/// Why a region cannot be used as a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayoutError {
    /// The memory block size is zero or not a power of two.
    BadBlockSize,
    /// `start + size` does not fit in 64 bits.
    Overflow,
    /// The region start is not a multiple of the memory block size.
    MisalignedStart,
    /// The region size is not a multiple of the memory block size.
    MisalignedSize,
    /// The region cannot hold the header block(s) plus one onlinable block.
    TooSmall,
}

impl LayoutError {
    /// A short explanation, for the one log line that reports a refusal.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LayoutError::BadBlockSize => "memory block size is not a power of two",
            LayoutError::Overflow => "region end overflows the physical address space",
            LayoutError::MisalignedStart => "region start is not memory-block aligned",
            LayoutError::MisalignedSize => "region size is not a multiple of the memory block size",
            LayoutError::TooSmall => "region is smaller than the header block plus one block",
        }
    }
}

/// The split of one portal region into header and onlinable memory.
///
/// # Invariants
///
/// `header.end == online.start`, both ranges are non-empty, and every bound is
/// a multiple of `1 << block_shift`. No method can panic: there is no division
/// and no unchecked arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortalLayout {
    /// Physical range of the handoff header (memremapped, never onlined).
    pub(crate) header: Range<u64>,
    /// Physical range that may be hot-added.
    pub(crate) online: Range<u64>,
    /// log2 of the memory block size the layout was computed with.
    pub(crate) block_shift: u32,
}

impl PortalLayout {
    /// Splits the region `[start, start + size)` for a memory block size of
    /// `block_size` bytes.
    ///
    /// # Errors
    ///
    /// The [`LayoutError`] that says why the region cannot be a portal.
    pub(crate) fn new(start: u64, size: u64, block_size: u64) -> Result<Self, LayoutError> {
        if block_size == 0 || !block_size.is_power_of_two() {
            return Err(LayoutError::BadBlockSize);
        }
        let end = start.checked_add(size).ok_or(LayoutError::Overflow)?;
        if start & (block_size - 1) != 0 {
            return Err(LayoutError::MisalignedStart);
        }
        if size & (block_size - 1) != 0 {
            return Err(LayoutError::MisalignedSize);
        }
        let block_shift = block_size.trailing_zeros();
        if (size >> block_shift) < HEADER_BLOCKS + 1 {
            return Err(LayoutError::TooSmall);
        }
        // Cannot overflow: `start + size` did not, and the header is smaller.
        let header_end = start + (HEADER_BLOCKS << block_shift);
        // INVARIANT: checked above: aligned bounds, at least one block each.
        Ok(PortalLayout {
            header: start..header_end,
            online: header_end..end,
            block_shift,
        })
    }

    /// Memory block size in bytes.
    pub(crate) fn block_size(&self) -> u64 {
        1 << self.block_shift
    }

    /// Number of onlinable memory blocks.
    pub(crate) fn blocks(&self) -> u64 {
        // By the invariant `online.end > online.start`.
        (self.online.end - self.online.start) >> self.block_shift
    }

    /// Physical range of onlinable block `index`, if it exists.
    pub(crate) fn block(&self, index: u64) -> Option<Range<u64>> {
        if index >= self.blocks() {
            return None;
        }
        // In range: `index < blocks()` keeps the block inside `online`.
        let start = self.online.start + (index << self.block_shift);
        Some(start..start + self.block_size())
    }

    /// Index of the onlinable block containing physical address `addr`.
    pub(crate) fn block_of(&self, addr: u64) -> Option<u64> {
        if !self.online.contains(&addr) {
            return None;
        }
        Some((addr - self.online.start) >> self.block_shift)
    }
}
