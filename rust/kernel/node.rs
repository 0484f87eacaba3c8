// SPDX-License-Identifier: GPL-2.0

//! NUMA node memory types.
//!
//! A driver that onlines a node's memory may name the type of that memory
//! (for example "Switched" for CXL memory reached through a switch) so that
//! userspace can tell it from DRAM in `/proc/pagetypeinfo` and in the node's
//! `memory_type_name` sysfs attribute.
//!
//! C header: [`include/linux/node.h`](srctree/include/linux/node.h)

use crate::{bindings, error::to_result, prelude::*};

/// The longest memory type name, including its NUL terminator.
pub const MEMORY_TYPE_NAME_MAX: usize = bindings::NODE_MEMORY_TYPE_NAME_MAX as usize;

/// A memory type name given to a NUMA node, shown for as long as this object lives.
///
/// # Invariants
///
/// `nid` is in `0..MAX_NUMNODES`, and its memory type name was set when this object was created;
/// it is cleared when this object is dropped.
///
/// # Examples
///
/// ```no_run
/// use kernel::node::MemoryTypeName;
///
/// let tag = MemoryTypeName::new(1, c"Switched")?;
/// // Node 1's pagetypeinfo rows now include "type Switched" ones.
/// drop(tag);
/// # Ok::<(), Error>(())
/// ```
pub struct MemoryTypeName {
    nid: i32,
}

impl MemoryTypeName {
    /// Names the type of node `nid`'s memory.
    ///
    /// The name is letters, digits, `-` and `_`, at most [`MEMORY_TYPE_NAME_MAX`] - 1 bytes; it is
    /// copied. Fails with [`EINVAL`] for a bad node or name and [`EBUSY`] if the node already has
    /// a name.
    pub fn new(nid: i32, name: &CStr) -> Result<Self> {
        if nid < 0 || nid >= bindings::MAX_NUMNODES as i32 {
            return Err(EINVAL);
        }
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call, and the
        // C function copies it.
        to_result(unsafe { bindings::node_set_memory_type_name(nid, name.as_char_ptr()) })?;
        // INVARIANT: `nid` is in range and its name was set just above.
        Ok(Self { nid })
    }

    /// The node this name was given to.
    pub fn nid(&self) -> i32 {
        self.nid
    }
}

impl Drop for MemoryTypeName {
    fn drop(&mut self) {
        // SAFETY: By the type invariant `nid` is a valid node id; the function takes no pointer.
        unsafe { bindings::node_clear_memory_type_name(self.nid) };
    }
}

/// Copies the memory type name of node `nid` into `buf` and returns its length, or `None` if the
/// node has no name (or `nid` is not a node id).
pub fn memory_type_name(nid: i32, buf: &mut [u8; MEMORY_TYPE_NAME_MAX]) -> Option<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call; the C
    // function checks `nid` and writes at most `buf.len()` bytes, NUL-terminated.
    let found = unsafe { bindings::node_memory_type_name(nid, buf.as_mut_ptr().cast(), buf.len()) };
    if !found {
        return None;
    }
    buf.iter().position(|&b| b == 0)
}

fn valid_nid(nid: i32) -> bool {
    nid >= 0 && nid < bindings::MAX_NUMNODES as i32
}

/// Whether node `nid` has memory, of any kind, online.
pub fn has_memory(nid: i32) -> bool {
    if !valid_nid(nid) {
        return false;
    }
    // SAFETY: `node_states` is a global array of node masks, indexed by a valid state; reading a
    // word of it races only with node hotplug, which makes the answer a snapshot, as in C.
    let word = unsafe {
        let mask = &raw const bindings::node_states[bindings::node_states_N_MEMORY as usize];
        (*mask).bits[nid as usize / usize::BITS as usize]
    };
    word & (1 << (nid as usize % usize::BITS as usize)) != 0
}

#[macros::kunit_tests(rust_kernel_node)]
mod tests {
    use super::*;

    fn name_of(nid: i32) -> Option<[u8; MEMORY_TYPE_NAME_MAX]> {
        let mut buf = [0u8; MEMORY_TYPE_NAME_MAX];
        memory_type_name(nid, &mut buf).map(|_| buf)
    }

    #[test]
    fn name_is_set_read_and_cleared() -> Result {
        assert!(name_of(0).is_none());
        let tag = MemoryTypeName::new(0, c"KUnit-test_1")?;
        assert_eq!(tag.nid(), 0);
        let mut buf = [0u8; MEMORY_TYPE_NAME_MAX];
        assert_eq!(memory_type_name(0, &mut buf), Some(12));
        assert_eq!(&buf[..13], b"KUnit-test_1\0");
        // One name per node.
        assert!(matches!(MemoryTypeName::new(0, c"Other"), Err(e) if e == EBUSY));
        drop(tag);
        assert!(name_of(0).is_none());
        Ok(())
    }

    #[test]
    fn bad_names_and_nodes_are_refused() {
        for bad in [c"", c"has space", c"sixteen-chars-xx", c"a/b"] {
            assert!(matches!(MemoryTypeName::new(0, bad), Err(e) if e == EINVAL));
        }
        assert!(matches!(MemoryTypeName::new(-1, c"x"), Err(e) if e == EINVAL));
        assert!(matches!(
            MemoryTypeName::new(bindings::MAX_NUMNODES as i32, c"x"),
            Err(e) if e == EINVAL
        ));
        assert!(name_of(-1).is_none());
        assert!(name_of(0).is_none());
    }

    #[test]
    fn node_zero_has_memory() -> Result {
        assert!(has_memory(0));
        assert!(!has_memory(-1));
        assert!(!has_memory(bindings::MAX_NUMNODES as i32));
        Ok(())
    }
}
