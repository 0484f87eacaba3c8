// SPDX-License-Identifier: GPL-2.0

//! Memory tiers.
//!
//! Nodes are grouped into memory tiers by the abstract distance of their memory: the smaller the
//! distance, the faster the memory and the higher the tier. DRAM sits at
//! [`ADISTANCE_DRAM`]; a driver that onlines slower memory as a node of its own gives that node
//! a memory type of a larger distance before onlining it, as `dax/kmem` does.
//!
//! C header: [`include/linux/memory-tiers.h`](srctree/include/linux/memory-tiers.h)

use crate::{bindings, error::from_err_ptr, prelude::*};
use core::ptr::NonNull;

/// The width of a tier in abstract distance: distances that differ by less may share a tier.
pub const CHUNK_SIZE: i32 = 1 << bindings::MEMTIER_CHUNK_BITS;

/// The abstract distance of DRAM.
pub const ADISTANCE_DRAM: i32 = 4 * CHUNK_SIZE + (CHUNK_SIZE >> 1);

/// The first abstract distance of the tier that `adistance` falls in.
pub const fn tier_start(adistance: i32) -> i32 {
    adistance & !(CHUNK_SIZE - 1)
}

/// Asks the platform's algorithms (HMAT, CXL CDAT) for the abstract distance of node `nid`.
///
/// Returns `None` if none of them knows the node.
pub fn platform_adistance(nid: i32) -> Option<i32> {
    let mut adistance: c_int = 0;
    // SAFETY: `adistance` is valid for writes for the duration of the call.
    let rc = unsafe { bindings::mt_calc_adistance(nid, &mut adistance) };
    if rc & (bindings::NOTIFY_STOP_MASK as c_int) != 0 {
        Some(adistance)
    } else {
        None
    }
}

/// A reference to a memory device type of a given abstract distance.
///
/// # Invariants
///
/// `ptr` points to a valid `struct memory_dev_type` on which this object holds a reference.
pub struct MemoryType {
    ptr: NonNull<bindings::memory_dev_type>,
    adistance: i32,
}

impl MemoryType {
    /// Allocates a memory device type of abstract distance `adistance`.
    pub fn new(adistance: i32) -> Result<Self> {
        if adistance <= 0 {
            return Err(EINVAL);
        }
        // SAFETY: The function takes no pointers and returns a new type or an error pointer.
        let ptr = from_err_ptr(unsafe { bindings::alloc_memory_type(adistance) })?;
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // INVARIANT: `alloc_memory_type` returns a type with one reference, now ours.
        Ok(Self { ptr, adistance })
    }

    /// The type's abstract distance.
    pub fn adistance(&self) -> i32 {
        self.adistance
    }
}

impl Drop for MemoryType {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we hold a reference, given back here once.
        unsafe { bindings::put_memory_type(self.ptr.as_ptr()) };
    }
}

// SAFETY: Memory types are reference counted and protected by the memory tier lock; the reference
// may be dropped on any thread.
unsafe impl Send for MemoryType {}
// SAFETY: `&MemoryType` gives access to its abstract distance only.
unsafe impl Sync for MemoryType {}

/// A node's memory type, set for as long as this object lives.
///
/// Set it before the node's memory is onlined: the node joins the type's tier when its memory
/// comes online, and leaves it when the memory goes.
///
/// # Invariants
///
/// `nid` is a valid node id whose memory type this object set to `mtype`, or left as it was if it
/// had one.
pub struct NodeMemoryType {
    nid: i32,
    mtype: MemoryType,
}

impl NodeMemoryType {
    /// Gives node `nid`, which must not have memory yet, the memory type `mtype`.
    ///
    /// A node that has a memory type already keeps it; the caller makes sure it has none, for
    /// example by checking that the node has no memory.
    pub fn new(nid: i32, mtype: MemoryType) -> Result<Self> {
        if nid < 0 || nid >= bindings::MAX_NUMNODES as i32 {
            return Err(EINVAL);
        }
        // SAFETY: `nid` is a valid node id and `mtype` a valid memory type that we hold a
        // reference on; the function takes a reference of its own if it sets the type.
        unsafe { bindings::init_node_memory_type(nid, mtype.ptr.as_ptr()) };
        // INVARIANT: The node's type is `mtype` now.
        Ok(Self { nid, mtype })
    }

    /// The node.
    pub fn nid(&self) -> i32 {
        self.nid
    }

    /// The type's abstract distance.
    pub fn adistance(&self) -> i32 {
        self.mtype.adistance()
    }

    /// Keeps the node's memory type for good, for memory that stays online.
    pub fn leak(self) {
        core::mem::forget(self);
    }
}

impl Drop for NodeMemoryType {
    fn drop(&mut self) {
        // SAFETY: By the type invariant this object set the node's type to `mtype`.
        unsafe { bindings::clear_node_memory_type(self.nid, self.mtype.ptr.as_ptr()) };
    }
}

#[macros::kunit_tests(rust_kernel_memory_tiers)]
mod tests {
    use super::*;

    #[test]
    fn dram_distance_matches_c() {
        assert_eq!(ADISTANCE_DRAM, bindings::MEMTIER_ADISTANCE_DRAM as i32);
        assert_eq!(tier_start(ADISTANCE_DRAM), 4 * CHUNK_SIZE);
        assert_ne!(
            tier_start(ADISTANCE_DRAM),
            tier_start(ADISTANCE_DRAM + CHUNK_SIZE)
        );
    }

    #[test]
    fn types_are_created_and_refused() -> Result {
        let t = MemoryType::new(ADISTANCE_DRAM * 5)?;
        assert_eq!(t.adistance(), ADISTANCE_DRAM * 5);
        assert_eq!(MemoryType::new(0).err(), Some(EINVAL));
        assert_eq!(
            NodeMemoryType::new(-1, MemoryType::new(ADISTANCE_DRAM)?).err(),
            Some(EINVAL)
        );
        Ok(())
    }
}
