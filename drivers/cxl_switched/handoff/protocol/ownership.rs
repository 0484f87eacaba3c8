// SPDX-License-Identifier: GPL-2.0

//! Block ownership: claim free blocks, give them back, quarantine those that cannot be.

use super::abi::{Owner, QUARANTINED};
use super::records::for_each_owner;
use super::{Error, Host, Medium, Op};

impl Host {
    /// Claims up to `want` free blocks, lowest first. Returns how many it claimed.
    ///
    /// # Errors
    ///
    /// [`Error::Expired`] if this host's lease is half gone; the error of the lock, a read or a
    /// write, after which the transaction is rolled back by the next reaper.
    pub(crate) fn claim<M: Medium>(&mut self, m: &M, want: u64) -> Result<u64, Error> {
        self.locked_op(m, |h, m| {
            h.reap_fenced(m)?;
            let tx = h.begin(m, Op::Claim)?;
            let (me, epoch) = (h.slot_id, h.rec.epoch);
            let mut left = want;
            h.update_owners(m, &tx, |_, o| {
                if left == 0 || !o.is_free() {
                    return None;
                }
                left -= 1;
                Some(Owner {
                    slot: me,
                    handoff: 0,
                    epoch,
                })
            })?;
            h.commit(m, tx)?;
            Ok(want - left)
        })
    }

    /// Returns the owned blocks (not in a handoff) for which `pick` says so. Returns how many.
    ///
    /// # Errors
    ///
    /// As [`Host::claim`].
    pub(crate) fn give_back<M: Medium>(
        &mut self,
        m: &M,
        pick: impl FnMut(u64) -> bool,
    ) -> Result<u64, Error> {
        self.let_go(m, pick, Owner::FREE)
    }

    /// Quarantines the owned blocks (not in a handoff) for which `pick` says so: this host
    /// cannot stop using them (their memory could not be offlined), so nobody may claim them.
    ///
    /// # Errors
    ///
    /// As [`Host::claim`].
    pub(crate) fn quarantine<M: Medium>(
        &mut self,
        m: &M,
        pick: impl FnMut(u64) -> bool,
    ) -> Result<u64, Error> {
        let lost = Owner {
            slot: QUARANTINED,
            handoff: 0,
            epoch: self.rec.epoch,
        };
        self.let_go(m, pick, lost)
    }

    /// Sets the owned blocks (not in a handoff) for which `pick` says so to `to`, in one
    /// transaction. Returns how many.
    pub(super) fn let_go<M: Medium>(
        &mut self,
        m: &M,
        mut pick: impl FnMut(u64) -> bool,
        to: Owner,
    ) -> Result<u64, Error> {
        self.locked_op(m, |h, m| {
            // A dead holder's transaction first: this one must not overwrite what its rollback
            // needs.
            h.reap_fenced(m)?;
            let tx = h.begin(m, Op::Return)?;
            let (me, epoch) = (h.slot_id, h.rec.epoch);
            let n = h.update_owners(m, &tx, |b, o| {
                (o.slot == me && o.epoch == epoch && o.handoff == 0 && pick(b)).then_some(to)
            })?;
            h.commit(m, tx)?;
            Ok(n)
        })
    }

    /// Calls `f` with every block this host owns and whether it is in a handoff.
    ///
    /// # Errors
    ///
    /// The error of reading the owner table.
    pub(crate) fn owned<M: Medium>(
        &self,
        m: &M,
        mut f: impl FnMut(u64, bool),
    ) -> Result<(), Error> {
        let (me, epoch) = (self.slot_id, self.rec.epoch);
        for_each_owner(m, &self.sb, |b, o| {
            if o.slot == me && o.epoch == epoch {
                f(b, o.handoff != 0);
            }
        })
    }
}
