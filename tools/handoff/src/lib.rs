//! The portal handoff core in userspace.
//!
//! `drivers/cxl_switched/handoff/` is the driver's own `core`-only tree: the header's ABI and
//! protocol. This crate builds those very files, gives them userspace media (memory, a snapshot,
//! a shared file mapping) and runs them in unit and property tests, a fuzz target, a
//! multi-process stress test and a bench, so that what the kernel runs is what is tested here.
//! Its public API is what portalctl needs: decoded views of a portal header.

pub mod fuzzing;
pub mod header;
pub mod medium;
pub mod stress;

// The driver's tree. Its items are `pub(crate)`, as the kernel's `unreachable_pub` lint wants;
// this crate's public modules above are the interface. The kernel uses parts of the tree that
// the tools do not (and the other way round), so each build has items the other uses.
#[allow(dead_code)]
#[path = "../../../drivers/cxl_switched/handoff/mod.rs"]
mod handoff;

use handoff::{abi, layout, protocol};

#[cfg(test)]
mod hostile_props;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod interleave;
#[cfg(test)]
mod interleave_tests;
#[cfg(test)]
mod lock_tests;
#[cfg(test)]
mod manifest_tests;
#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
mod rollback_tests;
#[cfg(test)]
mod shared_tests;
