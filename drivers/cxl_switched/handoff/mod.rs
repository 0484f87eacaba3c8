// SPDX-License-Identifier: GPL-2.0

//! The handoff core: the portal header's ABI and the protocol that runs over it.
//!
//! Everything below this module is `core`-only Rust: it never names the `kernel` crate, and its
//! modules reach each other through `super::` paths only. The driver builds this tree as
//! `crate::handoff`; the userspace crate `tools/handoff` builds the very same files, so that the
//! code the kernel runs is unit-tested, property-tested, fuzzed, stress-tested and benchmarked
//! in userspace. The driver's glue gives the protocol its [`protocol::Medium`] (the memremapped
//! header block) and holds its KUnit suites.
//!
//! - [`abi`]: the records, byte by byte: encode, decode, validate.
//! - [`protocol`]: format, boot check, membership and leases, the portal lock, transactions,
//!   block ownership and handoffs, over any [`protocol::Medium`].
//! - [`layout`]: which part of a portal's physical range holds the header.
//! - [`crc32c`]: the checksum every record carries.
//! - [`num`]: lossless integer conversions.
//!
//! `Documentation/admin-guide/mm/cxl-switched-abi.rst` is the normative specification.

pub(crate) mod abi;
pub(crate) mod crc32c;
pub(crate) mod layout;
pub(crate) mod num;
pub(crate) mod protocol;
