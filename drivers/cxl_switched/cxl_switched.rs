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

mod classify;
mod coherency;
mod debugfs;
mod device;
mod errno;
mod handoff;
#[cfg(CONFIG_CXL_SWITCHED_KUNIT_TEST)]
mod kunit;
mod medium;
mod membership;
mod portal;
mod sysfs;
mod text;
mod uapi;

use kernel::{
    dax::{self, DevDax, Kind},
    prelude::*,
    str::Formatter,
};

use classify::Policy;
use handoff::{abi::MAX_HOST_SLOTS, layout::HEADER_BLOCKS};
use portal::{Params, Portal};

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
        claim_pct: u32 {
            default: 50,
            description: "Per cent of a portal's blocks this host claims at probe (1-100)",
        },
        host_slots: u32 {
            default: 16,
            description: "Host slots of a portal this host formats (1-64)",
        },
        lease_ms: u32 {
            default: 5000,
            description: "Lease of a portal this host formats, in ms (400-600000)",
        },
        reformat: u64 {
            default: 0,
            description: "Serial number of a portal whose refused header may be formatted over",
        },
        host_index: i32 {
            default: -1,
            description: "Host index (0-63), one per host sharing a portal; 0 formats (required)",
        },
    },
}

/// The policy the `switched` parameter asks for, checked at load.
fn policy() -> Result<Policy> {
    Policy::from_param(module_parameters::switched.value()).ok_or(EINVAL)
}

/// All the parameters, checked at load.
fn params() -> Result<Params> {
    let p = Params {
        policy: policy()?,
        claim_pct: module_parameters::claim_pct.value(),
        host_slots: module_parameters::host_slots.value(),
        lease_ms: module_parameters::lease_ms.value(),
        reformat: module_parameters::reformat.value(),
        host_index: u32::try_from(module_parameters::host_index.value()).map_err(|_| EINVAL)?,
    };
    let ok = (1..=100).contains(&p.claim_pct)
        && (1..=MAX_HOST_SLOTS).contains(&p.host_slots)
        && (400..=600_000).contains(&p.lease_ms)
        && p.host_index < MAX_HOST_SLOTS;
    if ok {
        Ok(p)
    } else {
        Err(EINVAL)
    }
}

struct PortalDriver;

impl dax::Driver for PortalDriver {
    type Data = Portal;
    const KIND: Kind = Kind::Kmem;
    const ATTRIBUTE_DIR: &'static CStr = c"cxl_switched";
    type Attribute = sysfs::Attr;

    fn claim(dev: &DevDax) -> bool {
        policy().is_ok_and(|p| Portal::is_switched(dev, p))
    }

    fn probe(dev: &DevDax) -> Result<Pin<KBox<Portal>>> {
        Portal::probe(dev, params()?)
    }

    fn remove(dev: &DevDax, data: Pin<KBox<Portal>>) {
        Portal::remove(data, dev.as_device());
    }

    fn show(data: Pin<&Portal>, attr: sysfs::Attr, out: &mut Formatter<'_>) -> Result {
        data.show(attr, out)
    }

    fn store(data: Pin<&Portal>, attr: sysfs::Attr, input: &[u8]) -> Result {
        data.store(attr, input)
    }
}

struct CxlSwitched {
    // Dropped first: no request reaches a portal while it unbinds.
    _device: Pin<KBox<device::HandoffDevice>>,
    // Then: unbinding every portal removes its debugfs directory from the root's.
    _driver: Pin<KBox<dax::Registration<PortalDriver>>>,
    _debugfs: debugfs::Root,
}

impl kernel::Module for CxlSwitched {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let switched = module_parameters::switched.value();
        if policy().is_err() {
            pr_err!("switched={switched} is not -1, 0 or 1; not loaded\n");
            return Err(EINVAL);
        }
        let index = module_parameters::host_index.value();
        if !(0..64).contains(&index) {
            pr_err!(
                "host_index={index}: not 0-63 (a host sharing a portal needs its own); not loaded\n"
            );
            return Err(EINVAL);
        }
        if params().is_err() {
            pr_err!("claim_pct, host_slots or lease_ms out of range (see modinfo); not loaded\n");
            return Err(EINVAL);
        }
        // SAFETY: Called once, here, before the driver can bind a portal.
        let debugfs = unsafe { debugfs::Root::new() };
        // SAFETY: Called once, here, before the driver or the device exist.
        unsafe { device::init_registry() };
        let driver = KBox::pin_init(dax::Registration::new(c"cxl_switched", module), GFP_KERNEL)
            .inspect_err(|e| pr_err!("registering the dax driver failed ({e:?}); not loaded\n"))?;
        let handoff_device =
            KBox::pin_init(device::HandoffDevice::new(), GFP_KERNEL).inspect_err(|e| {
                pr_err!("registering /dev/cxl_switched failed ({e:?}); not loaded\n")
            })?;
        pr_info!(
            "loaded (switched={}, host_index={}); portal header reserves {} memory block(s)\n",
            switched,
            index,
            HEADER_BLOCKS
        );
        Ok(Self {
            _device: handoff_device,
            _driver: driver,
            _debugfs: debugfs,
        })
    }
}

impl Drop for CxlSwitched {
    fn drop(&mut self) {
        // The driver unregisters, letting go of every portal, after this.
        pr_info!("unloading\n");
    }
}
