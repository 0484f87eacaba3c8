// SPDX-License-Identifier: GPL-2.0

//! Driver-managed memory hotplug.
//!
//! A driver that turns device memory into System RAM, as `dax/kmem` does, registers a static
//! memory group for the node, hot-adds its ranges as driver-managed memory ("System RAM
//! (driver)" in `/proc/iomem`, not handed to a kexec'd kernel as RAM) and, when it lets go of
//! the device, offlines and removes them again. Removal can fail, for example when pages cannot
//! be migrated off; the owner then decides what happens to the memory.
//!
//! C headers: [`include/linux/memory_hotplug.h`](srctree/include/linux/memory_hotplug.h) and
//! [`include/linux/memory.h`](srctree/include/linux/memory.h)

use crate::{bindings, error::to_result, prelude::*, str::CString, sync::Arc};
use core::mem::ManuallyDrop;

/// The size of a memory block: the unit in which memory is hot-added, onlined and removed.
pub fn memory_block_size() -> u64 {
    // SAFETY: The function has no preconditions; the block size is fixed at boot.
    let size = unsafe { bindings::memory_block_size_bytes() };
    size as u64
}

/// `MHP_NID_IS_MGID`: the node argument of an add is a memory group id. It is `BIT(2)` in
/// `memory_hotplug.h`, behind a cast bindgen does not see through.
const MHP_NID_IS_MGID: bindings::mhp_t = 1 << 2;

/// The zone that hot-added memory is onlined to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineType {
    /// Leave the memory blocks offline.
    Offline,
    /// Online to the zone the kernel picks.
    Online,
    /// Online to a kernel zone: usable for unmovable allocations, hard to remove.
    Kernel,
    /// Online to `ZONE_MOVABLE`: movable allocations only, so the memory can be offlined again.
    Movable,
}

impl OnlineType {
    fn as_raw(self) -> bindings::mmop {
        match self {
            OnlineType::Offline => bindings::mmop_MMOP_OFFLINE,
            OnlineType::Online => bindings::mmop_MMOP_ONLINE,
            OnlineType::Kernel => bindings::mmop_MMOP_ONLINE_KERNEL,
            OnlineType::Movable => bindings::mmop_MMOP_ONLINE_MOVABLE,
        }
    }
}

/// A static memory group: memory of one node that a driver adds and removes as a whole.
///
/// # Invariants
///
/// `id` is the id of a static memory group that this object registered and that is unregistered
/// when it is dropped. Every [`DriverManagedMemory`] of the group holds a reference to it, so the
/// group is dropped only after the last of its memory is removed (or never, if one was leaked).
pub struct MemoryGroup {
    id: i32,
}

impl MemoryGroup {
    /// Registers a static memory group on node `nid` for at most `max_pages` pages.
    pub fn register_static(nid: i32, max_pages: u64) -> Result<Self> {
        let max_pages = usize::try_from(max_pages).map_err(|_| EINVAL)?;
        // SAFETY: The function checks `nid` and `max_pages` and takes no pointers.
        let id = unsafe { bindings::memory_group_register_static(nid, max_pages) };
        if id < 0 {
            return Err(Error::from_errno(id));
        }
        // INVARIANT: `id` was just registered.
        Ok(Self { id })
    }

    /// The group's id.
    pub fn id(&self) -> i32 {
        self.id
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the group is registered. Unregistering fails only while
        // memory blocks of the group remain, and each of those holds a reference to the group.
        let rc = unsafe { bindings::memory_group_unregister(self.id) };
        if rc != 0 {
            pr_err!(
                "memory group {} still has memory, not unregistered ({})\n",
                self.id,
                rc
            );
        }
    }
}

/// A physical range hot-added as driver-managed System RAM.
///
/// Dropping it offlines and removes the memory; if that fails the memory stays online, as it is,
/// for good (see [`DriverManagedMemory::remove`] to try without giving up the range).
///
/// # Invariants
///
/// `start..start + size` was hot-added to memory group `group` with the resource name `name`,
/// which the kernel's resource tree points to, and has not been removed.
pub struct DriverManagedMemory {
    start: u64,
    size: u64,
    name: ManuallyDrop<CString>,
    // Dropped after `drop()` removed the memory: the group outlives its memory.
    group: Arc<MemoryGroup>,
}

impl DriverManagedMemory {
    /// Hot-adds `start..start + size` to memory group `group` as "System RAM (`driver`)" and
    /// onlines its blocks as `online` says.
    ///
    /// The range must be aligned to the memory block size, and `driver` a short name without
    /// parentheses.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] for a range or name that breaks these rules, or the error of the hot-add.
    pub fn add(
        group: &Arc<MemoryGroup>,
        start: u64,
        size: u64,
        driver: &CStr,
        online: OnlineType,
    ) -> Result<Self> {
        let block = memory_block_size();
        if size == 0 || start % block != 0 || size % block != 0 || start.checked_add(size).is_none()
        {
            return Err(EINVAL);
        }
        if driver.to_bytes().iter().any(|&b| b == b'(' || b == b')') {
            return Err(EINVAL);
        }
        let driver = driver.to_str().map_err(|_| EINVAL)?;
        let name = CString::try_from_fmt(fmt!("System RAM ({driver})"))?;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the memory: it is freed
        // only after the memory is removed, and leaked otherwise. The group id is registered, as
        // `group` exists, and `MHP_NID_IS_MGID` says it is a group id.
        to_result(unsafe {
            bindings::__add_memory_driver_managed(
                group.id(),
                start,
                size,
                name.as_char_ptr(),
                MHP_NID_IS_MGID,
                online.as_raw(),
            )
        })?;
        // INVARIANT: The range was just added under `name`.
        Ok(Self {
            start,
            size,
            name: ManuallyDrop::new(name),
            group: group.clone(),
        })
    }

    /// The physical start address.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Offlines and removes the memory, migrating movable pages off it.
    ///
    /// On failure the memory stays added (and, as far as it was, online) and is handed back with
    /// the error.
    pub fn remove(self) -> core::result::Result<(), (Self, Error)> {
        // SAFETY: By the type invariant the range was added and not removed yet.
        let rc = unsafe { bindings::offline_and_remove_memory(self.start, self.size) };
        if rc != 0 {
            return Err((self, Error::from_errno(rc)));
        }
        let mut this = ManuallyDrop::new(self);
        // SAFETY: The memory is removed, so nothing points to the name any more; `this` is never
        // used again and is not dropped, so the name is dropped exactly once.
        unsafe { ManuallyDrop::drop(&mut this.name) };
        // SAFETY: `this` is never used again and is not dropped: the group reference is moved out
        // of it exactly once, and dropped now that the group's memory is removed.
        drop(unsafe { core::ptr::read(&this.group) });
        Ok(())
    }

    /// Keeps the memory added for good, with its resource name and its group.
    pub fn leak(self) {
        core::mem::forget(self);
    }
}

impl Drop for DriverManagedMemory {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the range was added and not removed yet.
        let rc = unsafe { bindings::offline_and_remove_memory(self.start, self.size) };
        if rc == 0 {
            // SAFETY: The memory is removed, so nothing points to the name any more, and `drop`
            // runs once.
            unsafe { ManuallyDrop::drop(&mut self.name) };
        } else {
            // The resource tree still points to the name, which is therefore leaked.
            pr_err!(
                "{:#x}-{:#x}: cannot be removed ({}), stays online\n",
                self.start,
                self.start + self.size - 1,
                rc
            );
        }
    }
}

// SAFETY: The object only holds numbers, an owned string and a reference to a group (an id);
// removal may happen on any thread.
unsafe impl Send for DriverManagedMemory {}
// SAFETY: `&DriverManagedMemory` only reads numbers.
unsafe impl Sync for DriverManagedMemory {}

#[macros::kunit_tests(rust_kernel_memory_hotplug)]
mod tests {
    use super::*;

    #[test]
    fn block_size_is_a_power_of_two_of_pages() {
        let size = memory_block_size();
        assert!(size.is_power_of_two());
        assert!(size >= bindings::PAGE_SIZE as u64);
    }

    #[test]
    fn add_refuses_bad_ranges_and_names() -> Result {
        let block = memory_block_size();
        // A node that has no memory is fine for a group; nothing is ever added to it here.
        let group = Arc::new(
            MemoryGroup::register_static(0, block >> bindings::PAGE_SHIFT)?,
            GFP_KERNEL,
        )?;
        let high = 1u64 << 46;
        assert_eq!(
            DriverManagedMemory::add(&group, high + 4096, block, c"t", OnlineType::Movable).err(),
            Some(EINVAL)
        );
        assert_eq!(
            DriverManagedMemory::add(&group, high, block - 4096, c"t", OnlineType::Movable).err(),
            Some(EINVAL)
        );
        assert_eq!(
            DriverManagedMemory::add(&group, high, 0, c"t", OnlineType::Movable).err(),
            Some(EINVAL)
        );
        assert_eq!(
            DriverManagedMemory::add(
                &group,
                u64::MAX - block + 1,
                block,
                c"t",
                OnlineType::Online
            )
            .err(),
            Some(EINVAL)
        );
        assert_eq!(
            DriverManagedMemory::add(&group, high, block, c"a(b", OnlineType::Movable).err(),
            Some(EINVAL)
        );
        Ok(())
    }

    #[test]
    fn online_types_map_to_mmop() {
        assert_eq!(OnlineType::Offline.as_raw(), bindings::mmop_MMOP_OFFLINE);
        assert_eq!(
            OnlineType::Movable.as_raw(),
            bindings::mmop_MMOP_ONLINE_MOVABLE
        );
        assert_ne!(OnlineType::Kernel.as_raw(), OnlineType::Movable.as_raw());
    }
}
