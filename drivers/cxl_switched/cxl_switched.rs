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

// The header's ABI and protocol, its checksum and the layout are `core`-only: the userspace
// tools build the same files. The handoff steps and some decoders are used by the tools and the
// KUnit suites only until the migration interface uses them.
#[allow(dead_code)]
mod abi;
mod classify;
#[allow(dead_code)]
mod crc32c;
mod layout;
mod membership;
mod portal;
#[allow(dead_code)]
mod protocol;

use kernel::{
    dax::{self, DevDax, Kind, SysfsWriter},
    prelude::*,
};

use classify::Policy;
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
    };
    let ok = (1..=100).contains(&p.claim_pct)
        && (1..=abi::MAX_HOST_SLOTS).contains(&p.host_slots)
        && (400..=600_000).contains(&p.lease_ms);
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
    const ATTRIBUTES: &'static [&'static CStr] = portal::ATTRIBUTES;

    fn claim(dev: &DevDax) -> bool {
        policy().is_ok_and(|p| Portal::is_switched(dev, p))
    }

    fn probe(dev: &DevDax) -> Result<Pin<KBox<Portal>>> {
        Portal::probe(dev, params()?)
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
        if params().is_err() {
            pr_err!("claim_pct, host_slots or lease_ms out of range (see modinfo); not loaded\n");
            return Err(EINVAL);
        }
        let driver = KBox::pin_init(dax::Registration::new(c"cxl_switched", module), GFP_KERNEL)
            .inspect_err(|e| pr_err!("registering the dax driver failed ({e:?}); not loaded\n"))?;
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
