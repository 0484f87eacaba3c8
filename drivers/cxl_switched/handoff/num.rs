// SPDX-License-Identifier: GPL-2.0

//! Lossless conversions between the integer types of the header and of Rust's indexes.
//!
//! The header counts in `u32` and addresses in `u64`; slices index with `usize`. Every target
//! Linux and the userspace tools build for has a `usize` of 32 or 64 bits, which the assertion
//! below checks at compile time, so these conversions never lose bits. Conversions that can
//! (`u64` to `usize`, `u32` to `u16`) are not here: they are checked where they happen.

const _: () = assert!(usize::BITS >= u32::BITS && usize::BITS <= u64::BITS);

/// `v` as a `usize`: lossless, as `usize` has at least 32 bits.
pub(crate) const fn u32_as_usize(v: u32) -> usize {
    // CAST: lossless by the assertion above.
    v as usize
}

/// `v` as a `u64`: lossless, as `usize` has at most 64 bits.
pub(crate) const fn usize_as_u64(v: usize) -> u64 {
    // CAST: lossless by the assertion above.
    v as u64
}
