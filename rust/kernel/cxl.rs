// SPDX-License-Identifier: GPL-2.0

//! CXL regions, as their consumers see them.
//!
//! A consumer of a CXL region's memory, such as a dax driver, may ask which devices lie behind
//! the region: for each target, the endpoint port of its memory device, how deep that port sits
//! in the CXL port hierarchy and the device's serial number. A memory device attached to a host
//! bridge's root port has its endpoint at depth [`DIRECT_ENDPOINT_DEPTH`]; one reached through
//! CXL switches sits deeper.
//!
//! C header: [`include/cxl/region.h`](srctree/include/cxl/region.h)

use crate::{bindings, device::Device, error::to_result, prelude::*};
use core::fmt;

/// The depth of the endpoint port of a memory device attached directly to a host bridge root
/// port: below the CXL root (depth 0) and the host bridge's port (depth 1).
pub const DIRECT_ENDPOINT_DEPTH: u32 = 2;

/// One target of a CXL region.
///
/// # Invariants
///
/// `raw` was filled by a successful `cxl_region_endpoint_get()`: its `region` and `port` are
/// valid devices on which this object holds references, dropped with it.
pub struct RegionEndpoint {
    raw: bindings::cxl_region_endpoint,
}

impl RegionEndpoint {
    /// Describes target `pos` of the CXL region that `dev` is, or lies below.
    ///
    /// Fails with [`ENODEV`] if `dev` is not below a CXL region and [`ENXIO`] if the region has
    /// no target at `pos`.
    pub fn get(dev: &Device, pos: usize) -> Result<Self> {
        let pos = c_int::try_from(pos).map_err(|_| ENXIO)?;
        let mut raw: bindings::cxl_region_endpoint = pin_init::zeroed();
        // SAFETY: `dev` is a valid device and `raw` is valid for writes.
        to_result(unsafe { bindings::cxl_region_endpoint_get(dev.as_raw(), pos, &mut raw) })?;
        // INVARIANT: The call succeeded and took the references.
        Ok(Self { raw })
    }

    /// The region.
    pub fn region(&self) -> &Device {
        // SAFETY: By the type invariant `region` is valid while `self` holds its reference.
        unsafe { Device::from_raw(self.raw.region) }
    }

    /// The endpoint port of the target's memory device.
    pub fn port(&self) -> &Device {
        // SAFETY: By the type invariant `port` is valid while `self` holds its reference.
        unsafe { Device::from_raw(self.raw.port) }
    }

    /// The memory device's serial number.
    pub fn serial(&self) -> u64 {
        self.raw.serial
    }

    /// The endpoint port's depth in the CXL port hierarchy.
    pub fn depth(&self) -> u32 {
        self.raw.depth
    }

    /// How many targets the region has.
    pub fn nr_targets(&self) -> usize {
        usize::try_from(self.raw.nr_targets).unwrap_or(0)
    }

    /// How many CXL switch levels lie between the host bridge and the memory device.
    pub fn switch_levels(&self) -> u32 {
        self.depth().saturating_sub(DIRECT_ENDPOINT_DEPTH)
    }

    /// Writes the port path from the CXL root down to the endpoint, for example
    /// `root0/port1/port2/endpoint3`.
    pub fn write_path(&self, out: &mut impl fmt::Write) -> fmt::Result {
        write_path_of(self.port(), self.depth(), out)
    }
}

/// Writes the names of `dev` and its `depth` nearest ancestors, the farthest first, separated by
/// `/`.
fn write_path_of(dev: &Device, depth: u32, out: &mut impl fmt::Write) -> fmt::Result {
    // SAFETY: `dev` is valid, and a device's parent is set when it is created and outlives it,
    // as the device holds a reference on it.
    let parent = unsafe { (*dev.as_raw()).parent };
    if depth > 0 && !parent.is_null() {
        // SAFETY: `parent` is a valid device for as long as `dev` is, as above.
        write_path_of(unsafe { Device::from_raw(parent) }, depth - 1, out)?;
        out.write_char('/')?;
    }
    let name = dev.name().to_str().map_err(|_| fmt::Error)?;
    out.write_str(name)
}

impl Drop for RegionEndpoint {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the references were taken by
        // `cxl_region_endpoint_get()` and are dropped once, here.
        unsafe { bindings::cxl_region_endpoint_put(&mut self.raw) };
    }
}

// SAFETY: The object holds device references, which may be dropped on any thread.
unsafe impl Send for RegionEndpoint {}
// SAFETY: `&RegionEndpoint` only reads immutable fields and device names.
unsafe impl Sync for RegionEndpoint {}

#[macros::kunit_tests(rust_kernel_cxl)]
mod tests {
    use super::*;
    use crate::{device::Bound, faux, str::Formatter};

    #[test]
    fn a_device_outside_cxl_has_no_endpoint() -> Result {
        let reg = faux::Registration::new(c"rust-kunit-cxl", None)?;
        let dev: &Device<Bound> = reg.as_ref().as_ref();
        assert_eq!(
            RegionEndpoint::get(dev, 0).err().map(|e| e.to_errno()),
            Some(ENODEV.to_errno())
        );
        Ok(())
    }

    #[test]
    fn path_of_a_lone_device_is_its_name() -> Result {
        let reg = faux::Registration::new(c"rust-kunit-path", None)?;
        let dev: &Device<Bound> = reg.as_ref().as_ref();
        let mut buf = [0u8; 64];
        let mut w = Formatter::new(&mut buf);
        write_path_of(dev, 0, &mut w).map_err(|_| EINVAL)?;
        let n = w.bytes_written();
        assert_eq!(&buf[..n], b"rust-kunit-path");
        // The faux bus root is the lone device's parent.
        let mut w = Formatter::new(&mut buf);
        write_path_of(dev, 1, &mut w).map_err(|_| EINVAL)?;
        let n = w.bytes_written();
        assert_eq!(&buf[..n], b"faux/rust-kunit-path");
        Ok(())
    }
}
