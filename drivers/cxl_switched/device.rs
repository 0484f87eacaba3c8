// SPDX-License-Identifier: GPL-2.0

//! `/dev/cxl_switched`: the handoff interface, for root (the node is mode 0600, and an export
//! needs the right to attach to the process, as a debugger does).
//!
//! The requests are in [`crate::uapi`]; each names its portal by NUMA node. The portals
//! register here as they bind and leave as they unbind.

use kernel::{
    fs::File,
    gup,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    membership::Membership,
    uapi::{self, Accept, Export, HandoffEntry, List, Map, Pull, Ref, Version},
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
            uapi::IOC_ACCEPT => accept(arg),
            uapi::IOC_MAP => map(arg),
            uapi::IOC_PULL => pull(arg),
            uapi::IOC_RELEASE => release(arg),
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

fn accept(arg: usize) -> Result {
    let mut a: Accept = uapi::read_request("ACCEPT", arg)?;
    if a.reserved != 0 || a.pages != 0 {
        pr_warn!("/dev/cxl_switched: ACCEPT: reserved or output fields are not zero\n");
        return Err(EINVAL);
    }
    if a.nr_ranges > uapi::MAX_ACCEPT_RANGES || a.blob_len > uapi::MAX_BLOB {
        pr_warn!("/dev/cxl_switched: ACCEPT: room for more than 65536 ranges or blob bytes\n");
        return Err(E2BIG);
    }
    let x = find("ACCEPT", a.nid)?.accept(a.index, a.id)?;
    // The ranges and the blob, as much as there is room for.
    let n = x.ranges().len().min(usize::try_from(a.nr_ranges)?);
    if n != 0 {
        let bytes = n.checked_mul(size_of::<uapi::VRange>()).ok_or(EINVAL)?;
        let mut w = UserSlice::new(UserPtr::from_addr(usize::try_from(a.ranges)?), bytes).writer();
        for r in x.ranges().iter().take(n) {
            w.write(r)?;
        }
    }
    let b = x.blob().len().min(usize::try_from(a.blob_len)?);
    if b != 0 {
        UserSlice::new(UserPtr::from_addr(usize::try_from(a.blob)?), b)
            .writer()
            .write_slice(x.blob().get(..b).ok_or(EINVAL)?)?;
    }
    a.nr_ranges = u32::try_from(x.ranges().len())?;
    a.blob_len = u32::try_from(x.blob().len())?;
    a.pages = x.pages();
    uapi::write_reply(arg, &a)
}

fn map(arg: usize) -> Result {
    let mut r: Map = uapi::read_request("MAP", arg)?;
    if r.flags != 0 || r.reserved != 0 || r.pages != 0 {
        pr_warn!("/dev/cxl_switched: MAP: flags, reserved or output fields are not zero\n");
        return Err(EINVAL);
    }
    if r.pid <= 0 {
        pr_warn!("/dev/cxl_switched: MAP: pid is not a process id\n");
        return Err(EINVAL);
    }
    let portal = find("MAP", r.nid)?;
    let mm = gup::mm_of_pid(r.pid).inspect_err(|_| {
        pr_warn!(
            "/dev/cxl_switched: MAP: pid {}: no such process, or not ours to attach to\n",
            r.pid
        );
    })?;
    r.pages = portal.map(r.nid, r.index, r.id, &mm, r.pid)?;
    uapi::write_reply(arg, &r)
}

fn pull(arg: usize) -> Result {
    let mut p: Pull = uapi::read_request("PULL", arg)?;
    if p.reserved != 0 || p.pulled != 0 || p.left != 0 {
        pr_warn!("/dev/cxl_switched: PULL: reserved or output fields are not zero\n");
        return Err(EINVAL);
    }
    if p.max_pages == 0 || p.max_pages > uapi::MAX_PULL_PAGES {
        pr_warn!(
            "/dev/cxl_switched: PULL: {} pages is not 1..=1048576\n",
            p.max_pages
        );
        return Err(EINVAL);
    }
    // The pages go to this host's own memory: a node with memory that is no portal.
    let portal_node = PORTALS.lock().iter().any(|(n, _)| *n == p.node);
    if portal_node || !kernel::node::has_memory(p.node) {
        pr_warn!(
            "/dev/cxl_switched: PULL: node {} is a portal or has no memory\n",
            p.node
        );
        return Err(EINVAL);
    }
    let (pulled, left) = find("PULL", p.nid)?.pull(p.index, p.id, p.node, p.max_pages)?;
    p.pulled = pulled;
    p.left = left;
    uapi::write_reply(arg, &p)
}

fn release(arg: usize) -> Result {
    let r: Ref = uapi::read_request("RELEASE", arg)?;
    if r.reserved != 0 {
        pr_warn!("/dev/cxl_switched: RELEASE: reserved field is not zero\n");
        return Err(EINVAL);
    }
    find("RELEASE", r.nid)?.release(r.index, r.id)
}
