// SPDX-License-Identifier: GPL-2.0

//! Switched CXL memory as typed NUMA nodes.
//!
//! Hosts that share a CXL memory device through a CXL switch see that memory as a "portal": a
//! NUMA node of its own, typed "Switched", whose first memory block holds a handoff header
//! through which the hosts agree on who owns which block.
//!
//! The driver is a dax driver, as dax/kmem is: it binds the dax devices of switched CXL RAM
//! regions (see [`classify`]) and declines every other one, which stays with dax/kmem or
//! device_dax. See Documentation/admin-guide/mm/cxl-switched.rst.

// The handoff header's superblock (abi) and its checksum are used by their KUnit suites now and
// by probe next. They and the layout are `core`-only: the userspace tools build the same files.
#[allow(dead_code)]
mod abi;
mod classify;
#[allow(dead_code)]
mod crc32c;
mod layout;
mod portal;

use kernel::{
    dax::{self, DevDax, Kind, SysfsWriter},
    prelude::*,
};

use classify::Policy;
use portal::Portal;

module! {
    type: CxlSwitched,
    name: "cxl_switched",
    authors: ["The cxl_switched authors"],
    description: "Switched CXL memory as typed NUMA nodes",
    license: "GPL v2",
    params: {
        switched: i32 {
            default: -1,
            description: "Which CXL RAM regions are portals: -1 switched (default), 1 all, 0 none",
        },
    },
}

/// The policy the `switched` parameter asks for, checked at load.
fn policy() -> Result<Policy> {
    Policy::from_param(module_parameters::switched.value()).ok_or(EINVAL)
}

struct PortalDriver;

impl dax::Driver for PortalDriver {
    type Data = Portal;
    const KIND: Kind = Kind::Kmem;
    const ATTRIBUTE_DIR: &'static CStr = c"cxl_switched";
    const ATTRIBUTES: &'static [&'static CStr] = portal::ATTRIBUTES;

    fn claim(dev: &DevDax) -> bool {
        policy().is_ok_and(|p| Portal::is_switched(dev, p))
    }

    fn probe(dev: &DevDax) -> Result<Pin<KBox<Portal>>> {
        Portal::probe(dev, policy()?)
    }

    fn remove(dev: &DevDax, data: Pin<KBox<Portal>>) {
        let portal = KBox::into_inner(Pin::into_inner(data));
        portal.remove(dev.as_device());
    }

    fn show(data: Pin<&Portal>, index: usize, out: &mut SysfsWriter<'_>) -> Result {
        data.show(index, out)
    }
}

struct CxlSwitched {
    _driver: Pin<KBox<dax::Registration<PortalDriver>>>,
}

impl kernel::Module for CxlSwitched {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let switched = module_parameters::switched.value();
        if policy().is_err() {
            pr_err!("switched={switched} is not -1, 0 or 1; not loaded\n");
            return Err(EINVAL);
        }
        let driver = KBox::pin_init(dax::Registration::new(c"cxl_switched", module), GFP_KERNEL)?;
        pr_info!(
            "loaded (switched={}); portal header reserves {} memory block(s)\n",
            switched,
            layout::HEADER_BLOCKS
        );
        Ok(Self { _driver: driver })
    }
}

impl Drop for CxlSwitched {
    fn drop(&mut self) {
        // The driver unregisters, letting go of every portal, after this.
        pr_info!("unloading\n");
    }
}
