// SPDX-License-Identifier: GPL-2.0

//! Join, lease renewal and heartbeat, fencing and reaping, leave.

use super::super::num::u32_as_usize;
use super::abi::{
    HandoffState, Member, MemberState, Owner, RecordError, SlotRecord, SlotState, Superblock,
    MAX_HOST_SLOTS, RECORD_BYTES,
};
use super::host::UNSEEN;
use super::medium::write_record;
use super::records::{read_handoff, read_member, read_slot, slot_mark};
use super::{Error, Host, Medium, Op};

impl Host {
    /// Joins a portal: claims a free host slot (a claim that must survive a settle time, as two
    /// hosts may write the same slot at once), then, under the portal lock, reaps what expired,
    /// fences a previous member of the slot that did not leave, and records this host's new
    /// epoch in the member table.
    ///
    /// A host that finds no free slot watches the others for a lease and takes one whose
    /// occupant is gone: a claim never finished, or a member nobody reaped yet.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if no slot is free nor abandoned after a lease; [`Error::Overflow`] for a
    /// peer's counter at its largest value; the error of the lock, a read or a write.
    pub(crate) fn join<M: Medium>(m: &M, sb: Superblock, uuid: [u8; 16]) -> Result<Self, Error> {
        let slots = sb.geometry.host_slots;
        let first = u32::from(uuid[0]).checked_rem(slots).unwrap_or(0);
        for n in 0..slots {
            let slot = wrap(first + n, slots);
            let free = match read_slot(m, &sb, slot)?.0 {
                Err(RecordError::Zero) => true,
                Ok(r) if r.state == SlotState::Free => true,
                Ok(r) if r.state == SlotState::Member => {
                    let mem = read_member(m, &sb, slot)?;
                    mem.state == MemberState::Fenced && mem.epoch == r.epoch
                }
                _ => false,
            };
            if free {
                if let Some(host) = Self::try_slot(m, sb, slot, uuid)? {
                    return Ok(host);
                }
            }
        }
        // No free slot: watch them all for a lease; one that did not change is abandoned.
        let mut marks = [None; u32_as_usize(MAX_HOST_SLOTS)];
        for (slot, mark) in (0..slots).zip(marks.iter_mut()) {
            *mark = slot_mark(m, &sb, slot)?;
        }
        m.sleep_ms(sb.timing.lease_ms.saturating_add(sb.timing.settle_ms));
        for n in 0..slots {
            let slot = wrap(first + n, slots);
            let before = marks.get(u32_as_usize(slot)).copied().flatten();
            if before.is_some() && slot_mark(m, &sb, slot)? == before {
                if let Some(host) = Self::try_slot(m, sb, slot, uuid)? {
                    return Ok(host);
                }
            }
        }
        Err(Error::Full("every host slot is taken"))
    }

    /// Claims `slot` (a claim that must survive a settle time, as two hosts may write the same
    /// slot at once), then finishes the join. Returns `None` if another host's claim won.
    pub(super) fn try_slot<M: Medium>(
        m: &M,
        sb: Superblock,
        slot: u32,
        uuid: [u8; 16],
    ) -> Result<Option<Self>, Error> {
        let (rec, next_copy) = read_slot(m, &sb, slot)?;
        let claim = SlotRecord {
            state: SlotState::Claiming,
            generation: match rec {
                Ok(r) => r.generation.checked_add(1).ok_or(Error::Overflow(
                    "a host slot's generation is at its largest value",
                ))?,
                Err(_) => 1,
            },
            host: uuid,
            ..SlotRecord::FREE
        };
        write_record(
            m,
            sb.slot_offset(slot) + u64::from(next_copy) * RECORD_BYTES,
            &claim.encode(),
        )?;
        let claimed = m.now_ms();
        m.sleep_ms(sb.timing.settle_ms);
        match read_slot(m, &sb, slot)?.0 {
            Ok(r) if r == claim => {}
            // Another host claimed it at the same time and won.
            _ => return Ok(None),
        }
        let slot_id = u16::try_from(slot).map_err(|_| Error::Invalid("no such host slot"))?;
        let mut host = Host {
            sb,
            slot,
            slot_id,
            rec: claim,
            next_copy: 1 - next_copy,
            txid: 0,
            renewed_ms: claimed,
            seen: [UNSEEN; u32_as_usize(MAX_HOST_SLOTS)],
        };
        host.renew(m)?;
        match host.finish_join(m) {
            Ok(()) => Ok(Some(host)),
            Err(e) => {
                if !e.is_fatal() {
                    let _ = host.write_slot(m, SlotRecord::FREE);
                }
                Err(e)
            }
        }
    }

    pub(super) fn finish_join<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.lock(m)?;
        let r = (|| {
            self.reap_expired(m)?;
            let old = read_member(m, &self.sb, self.slot)?;
            if old.state == MemberState::Live {
                // The slot's last member never left: it is gone (its slot was free or fenced).
                self.reap(m, self.slot, old.epoch, 0)?;
            }
            let epoch = old.epoch.wrapping_add(1).max(1);
            let tx = self.begin(m, Op::Join)?;
            self.set_member(
                m,
                &tx,
                self.slot,
                Member {
                    epoch,
                    state: MemberState::Live,
                },
            )?;
            self.rec.state = SlotState::Member;
            self.rec.epoch = epoch;
            self.commit(m, tx)
        })();
        self.unlock(m)?;
        r
    }

    /// Renews this host's lease: checks that its slot is still its own and that it was not
    /// fenced, then writes its slot with the next generation.
    ///
    /// # Errors
    ///
    /// [`Error::Expired`] if half the lease is gone, [`Error::Evicted`] if the slot holds another
    /// host's record, [`Error::Fenced`] if another host fenced this one; the error of a read or
    /// a write.
    pub(crate) fn renew<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.guard(m)?;
        match read_slot(m, &self.sb, self.slot)?.0 {
            Ok(r) if r == self.rec => {}
            _ => return Err(Error::Evicted),
        }
        if self.rec.state == SlotState::Member {
            let mem = read_member(m, &self.sb, self.slot)?;
            if mem.state != MemberState::Live || mem.epoch != self.rec.epoch {
                return Err(Error::Fenced);
            }
        }
        let now = m.now_ms();
        self.write_slot(m, self.rec)?;
        self.renewed_ms = now;
        Ok(())
    }

    /// The heartbeat: renews the lease, and reaps hosts whose lease expired. Returns the number
    /// of hosts reaped (their blocks are this host's now).
    ///
    /// # Errors
    ///
    /// The errors of [`Host::renew`], then of the lock and of reaping.
    pub(crate) fn heartbeat<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
        self.renew(m)?;
        if !self.observe(m)? {
            return Ok(0);
        }
        self.locked_op(m, |h, m| h.reap_expired(m))
    }

    /// Fences and reaps every member whose lease expired. Called holding the lock.
    ///
    /// First every expired member's unfinished transaction is rolled back, then each is reaped:
    /// a reap rewrites records, and must not meet another dead host's half-written ones.
    pub(super) fn reap_expired<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
        self.observe(m)?;
        for j in 0..self.sb.geometry.host_slots {
            if let Some((epoch, intent)) = self.expired_member(m, j)? {
                if intent != 0 {
                    self.rollback(m, j, epoch, intent)?;
                }
            }
        }
        let mut reaped = 0;
        for j in 0..self.sb.geometry.host_slots {
            if let Some((epoch, _)) = self.expired_member(m, j)? {
                self.reap(m, j, epoch, 0)?;
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// The epoch and intent of the member in slot `j`, if it is live in the member table and
    /// its lease expired.
    pub(super) fn expired_member<M: Medium>(
        &self,
        m: &M,
        j: u32,
    ) -> Result<Option<(u32, u64)>, Error> {
        if j == self.slot || !self.expired(m, j) {
            return Ok(None);
        }
        let mem = read_member(m, &self.sb, j)?;
        if mem.state != MemberState::Live {
            return Ok(None);
        }
        let intent = match read_slot(m, &self.sb, j)?.0 {
            Ok(r) if r.epoch == mem.epoch => r.intent,
            _ => 0,
        };
        Ok(Some((mem.epoch, intent)))
    }

    /// Reaps host `slot` of `epoch`, which is gone: rolls back its unfinished transaction,
    /// fences it, ends its handoffs, and takes the blocks it owned.
    pub(super) fn reap<M: Medium>(
        &mut self,
        m: &M,
        slot: u32,
        epoch: u32,
        intent: u64,
    ) -> Result<(), Error> {
        if intent != 0 {
            self.rollback(m, slot, epoch, intent)?;
        }
        let tx = self.begin(m, Op::Reap)?;
        self.set_member(
            m,
            &tx,
            slot,
            Member {
                epoch,
                state: MemberState::Fenced,
            },
        )?;
        for index in 0..self.sb.handoffs {
            let h = read_handoff(m, &self.sb, index)?;
            let source = u32::from(h.source) == slot && h.source_epoch == epoch;
            let target = u32::from(h.target) == slot && h.target_epoch == epoch;
            if h.state == HandoffState::Free || !(source || target) {
                continue;
            }
            // Accepted and the source is gone: the target keeps the blocks. Otherwise the
            // source keeps (or gets back) them.
            let released = h.state == HandoffState::Accepted && source;
            self.end_handoff(m, &tx, index, &h, released)?;
        }
        // A member takes the blocks; a host still joining (reaping its own slot's last member)
        // frees them.
        let heir = if self.rec.state == SlotState::Member {
            Owner {
                slot: self.slot_id,
                handoff: 0,
                epoch: self.rec.epoch,
            }
        } else {
            Owner::FREE
        };
        self.update_owners(m, &tx, |_, o| {
            (u32::from(o.slot) == slot && o.epoch == epoch && o.handoff == 0).then_some(heir)
        })?;
        self.commit(m, tx)
    }

    /// Leaves the portal: ends this host's handoffs as if it had died, frees the member entry
    /// and the blocks it still owns, and frees its slot. The caller must have stopped using the
    /// blocks. The host is no member afterwards, whatever this returns: drop it.
    ///
    /// # Errors
    ///
    /// The error of the lock, a read or a write; the host is no member afterwards whatever this
    /// returns.
    pub(crate) fn leave<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.locked_op(m, |me, m| {
            // A dead holder's transaction first: this one must not overwrite what its rollback
            // needs (the blocks reaped here are freed with this host's own).
            me.reap_expired(m)?;
            let (slot, epoch) = (me.slot, me.rec.epoch);
            let tx = me.begin(m, Op::Leave)?;
            for index in 0..me.sb.handoffs {
                let h = read_handoff(m, &me.sb, index)?;
                let source = u32::from(h.source) == slot && h.source_epoch == epoch;
                let target = u32::from(h.target) == slot && h.target_epoch == epoch;
                if h.state != HandoffState::Free && (source || target) {
                    let released = h.state == HandoffState::Accepted && source;
                    me.end_handoff(m, &tx, index, &h, released)?;
                }
            }
            me.update_owners(m, &tx, |_, o| {
                (u32::from(o.slot) == slot && o.epoch == epoch).then_some(Owner::FREE)
            })?;
            me.set_member(
                m,
                &tx,
                slot,
                Member {
                    epoch,
                    state: MemberState::Free,
                },
            )?;
            me.commit(m, tx)
        })?;
        self.write_slot(m, SlotRecord::FREE)
    }
}

/// `v` modulo `n`, for `v < 2 * n`: slot numbers counted from a first one, wrapping once. (No
/// division by a value read from the portal.)
fn wrap(v: u32, n: u32) -> u32 {
    if v >= n {
        v - n
    } else {
        v
    }
}
