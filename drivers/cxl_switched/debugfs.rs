// SPDX-License-Identifier: GPL-2.0

//! The header's tables in debugfs, below `cxl_switched/daxX.Y/`: `members` and `owners`, as
//! this host reads them from the portal, and `coherency`, what the passes over data blocks
//! cost.
//!
//! They are for people and for the lab; the one-value-per-file attributes are in sysfs (see
//! [`crate::sysfs`]).

use kernel::{
    debugfs::{Dir, File},
    fmt,
    prelude::*,
    sync::{global_lock, Arc},
};

use crate::membership::Membership;

global_lock! {
    // SAFETY: Initialised by `Root::new`, in the module initialiser, before any use.
    unsafe(uninit) static ROOT: Mutex<Option<Dir>> = None;
}

/// The driver's debugfs directory, `cxl_switched/`, while the module is loaded.
pub(crate) struct Root(());

impl Root {
    /// Creates the directory.
    ///
    /// # Safety
    ///
    /// Called once, from the module initialiser.
    pub(crate) unsafe fn new() -> Self {
        // SAFETY: The caller calls this once, before anything else uses `ROOT`.
        unsafe { ROOT.init() };
        *ROOT.lock() = Some(Dir::new(c"cxl_switched"));
        Self(())
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // The portals' directories, which hold references to it, are gone with the driver.
        *ROOT.lock() = None;
    }
}

/// A portal's tables in debugfs.
#[pin_data]
pub(crate) struct Tables {
    #[pin]
    members: File<Arc<Membership>>,
    #[pin]
    owners: File<Arc<Membership>>,
    #[pin]
    coherency: File<Arc<Membership>>,
    // Dropped after the files in it.
    _dir: Dir,
}

fn members(m: &Arc<Membership>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    m.write_members(f).map_err(|_| fmt::Error)
}

fn owners(m: &Arc<Membership>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    m.write_owners(f).map_err(|_| fmt::Error)
}

fn coherency(m: &Arc<Membership>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    m.write_passes(f).map_err(|_| fmt::Error)
}

impl Tables {
    /// The tables of `membership`, in a directory named `name`.
    ///
    /// # Errors
    ///
    /// [`ENOENT`] if the driver's directory is gone; an allocation failure.
    pub(crate) fn new(name: &CStr, membership: &Arc<Membership>) -> Result<Pin<KBox<Self>>> {
        let dir = ROOT.lock().as_ref().ok_or(ENOENT)?.subdir(name);
        KBox::pin_init(
            try_pin_init!(Tables {
                members <- dir.read_callback_file(c"members", membership.clone(), &members),
                owners <- dir.read_callback_file(c"owners", membership.clone(), &owners),
                coherency <- dir.read_callback_file(c"coherency", membership.clone(), &coherency),
                _dir: dir.clone(),
            }),
            GFP_KERNEL,
        )
    }
}
