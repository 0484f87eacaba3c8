//! portalctl's library: the fabric model and its analysis, usable from the
//! binary, the integration tests and the benches.

pub mod analysis;
pub mod fabric;
pub mod header;
pub mod inventory;
pub mod medium;
pub mod pagetypeinfo;
pub mod route;
pub mod stress;
pub mod synth;

// Code shared with the kernel driver: the very same `core`-only files, so
// that what the driver runs is tested, fuzzed and benchmarked in userspace.
// The driver uses parts of these that the tools do not, and the other way
// round: each side's build has its own unused items.
#[allow(dead_code)]
#[path = "../../../drivers/cxl_switched/abi.rs"]
mod abi;
#[cfg_attr(not(test), allow(dead_code))]
#[path = "../../../drivers/cxl_switched/crc32c.rs"]
mod crc32c;
#[cfg_attr(not(test), allow(dead_code))]
#[path = "../../../drivers/cxl_switched/layout.rs"]
mod layout;
#[allow(dead_code)]
#[path = "../../../drivers/cxl_switched/protocol.rs"]
mod protocol;

#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod shared_tests;
