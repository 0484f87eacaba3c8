// SPDX-License-Identifier: GPL-2.0

//! `/dev/cxl_switched`: the handoff interface, for root (the node is mode 0600, and an export
//! needs the right to attach to the process, as a debugger does).
//!
//! The requests are in [`crate::uapi`]; each names its portal by NUMA node. The portals
//! register here as they bind and leave as they unbind.

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    membership::Membership,
    uapi::{self, Export, HandoffEntry, List, Ref, Version},
};

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init_registry`, in the module's initialiser, before the dax
    // driver (which registers portals) or the device (which reads them) exist.
    unsafe(uninit) static PORTALS: Mutex<KVec<(i32, Arc<Membership>)>> = KVec::new();
}

/// Makes the registry of portals usable.
///
/// # Safety
///
/// Called once, before any other function of this module.
pub(crate) unsafe fn init_registry() {
    // SAFETY: Called once, before first use (the caller's contract).
    unsafe { PORTALS.init() };
}

/// Registers the portal on node `nid`.
///
/// # Errors
///
/// [`ENOMEM`].
pub(crate) fn register(nid: i32, m: &Arc<Membership>) -> Result {
    PORTALS.lock().push((nid, m.clone()), GFP_KERNEL)?;
    Ok(())
}

/// Unregisters the portal on node `nid`.
pub(crate) fn unregister(nid: i32) {
    PORTALS.lock().retain(|(n, _)| *n != nid);
}

fn find(what: &str, nid: i32) -> Result<Arc<Membership>> {
    let found = PORTALS
        .lock()
        .iter()
        .find(|(n, _)| *n == nid)
        .map(|(_, m)| m.clone());
    found.ok_or_else(|| {
        pr_warn!("/dev/cxl_switched: {}: no portal on node {}\n", what, nid);
        ENODEV
    })
}

/// The registered device.
#[pin_data]
pub(crate) struct HandoffDevice {
    #[pin]
    _reg: MiscDeviceRegistration<Handoffs>,
}

impl HandoffDevice {
    /// Registers `/dev/cxl_switched`.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _reg <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"cxl_switched",
            }),
        })
    }
}

/// An open file of the device: it holds nothing; every request names its portal.
pub(crate) struct Handoffs;

#[vtable]
impl MiscDevice for Handoffs {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(Handoffs, GFP_KERNEL)?)
    }

    fn ioctl(_me: &Handoffs, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::IOC_VERSION => version(arg),
            uapi::IOC_LIST => list(arg),
            uapi::IOC_EXPORT => export(arg),
            uapi::IOC_CANCEL => cancel(arg),
            _ => Err(ENOTTY),
        }?;
        Ok(0)
    }
}

fn version(arg: usize) -> Result {
    let mut v: Version = uapi::read_request("VERSION", arg)?;
    if v.version != 0 || v.portals != 0 || v.reserved != 0 {
        pr_warn!("/dev/cxl_switched: VERSION: output or reserved fields are not zero\n");
        return Err(EINVAL);
    }
    v.version = uapi::API_VERSION;
    v.portals = u32::try_from(PORTALS.lock().len())?;
    uapi::write_reply(arg, &v)
}

fn list(arg: usize) -> Result {
    let mut l: List = uapi::read_request("LIST", arg)?;
    if l.count > uapi::MAX_LIST {
        pr_warn!(
            "/dev/cxl_switched: LIST: room for {} handoffs, more than {}\n",
            l.count,
            uapi::MAX_LIST
        );
        return Err(E2BIG);
    }
    let portals = {
        let g = PORTALS.lock();
        let mut v = KVec::with_capacity(g.len(), GFP_KERNEL)?;
        for (nid, m) in g.iter() {
            v.push((*nid, m.clone()), GFP_KERNEL)?;
        }
        v
    };
    let mut all: KVec<HandoffEntry> = KVec::new();
    for (nid, m) in portals.iter() {
        m.list(*nid, &mut all)?;
    }
    let room = usize::try_from(l.count)?;
    let n = all.len().min(room);
    if n != 0 {
        let bytes = n.checked_mul(size_of::<HandoffEntry>()).ok_or(EINVAL)?;
        let mut w =
            UserSlice::new(UserPtr::from_addr(usize::try_from(l.handoffs)?), bytes).writer();
        for e in all.iter().take(n) {
            w.write(e)?;
        }
    }
    l.count = u32::try_from(all.len())?;
    uapi::write_reply(arg, &l)
}

fn export(arg: usize) -> Result {
    let mut e: Export = uapi::read_request("EXPORT", arg)?;
    let req = uapi::check_export(&e)?;
    let m = find("EXPORT", req.nid)?;
    let (index, id) = m.export(req.nid, &req)?;
    e.id = id;
    e.index = index;
    e.pages = req.pages;
    uapi::write_reply(arg, &e)
}

fn cancel(arg: usize) -> Result {
    let r: Ref = uapi::read_request("CANCEL", arg)?;
    if r.reserved != 0 {
        pr_warn!("/dev/cxl_switched: CANCEL: reserved field is not zero\n");
        return Err(EINVAL);
    }
    find("CANCEL", r.nid)?.cancel(r.index, r.id)
}
