// SPDX-License-Identifier: GPL-2.0

//! Join, lease renewal and heartbeat, suspects and fencing, reaping, leave.

use super::super::num::u32_as_usize;
use super::abi::{
    HandoffState, Member, MemberState, Owner, RecordError, SlotRecord, SlotState, Superblock,
    MAX_HOST_SLOTS, RECORD_BYTES,
};
use super::host::UNSEEN;
use super::medium::write_record;
use super::records::{read_handoff, read_member, read_slot};
use super::{Error, Host, Medium, Op};

impl Host {
    /// Joins a portal: claims a free host slot (a claim that must survive a settle time, as two
    /// hosts may write the same slot at once), then, under the portal lock, reaps a previous
    /// member of the slot that gave it up without leaving, and records this host's new epoch in
    /// the member table.
    ///
    /// A slot is free if nobody wrote it, its occupant left, or its member was fenced. A slot
    /// whose occupant went silent is not free until that host is fenced: it may only be paused.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if no slot is free; [`Error::Suspect`] if a silent host holds the lock;
    /// [`Error::Overflow`] for a peer's counter at its largest value; the error of the lock, a
    /// read or a write.
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
        Err(Error::Full(
            "every host slot is taken (a silent host's slot is free once it is fenced)",
        ))
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
            leaving: false,
        };
        match host.renew(m).and_then(|()| host.finish_join(m)) {
            Ok(()) => Ok(Some(host)),
            Err(e) => {
                // Give the slot up, even after a pause (a lapsed claim that stayed would be a
                // suspect until fenced), unless it is no longer this host's to write.
                if !e.is_gone() {
                    let _ = host.write_slot(m, SlotRecord::FREE);
                }
                Err(e)
            }
        }
    }

    /// Records this host's new epoch in the member table, under the lock. A join that fails
    /// part way (its lease lapsed during a pause, say) is rolled back before the lock is let go,
    /// so that a member entry never stands without its host's slot saying so.
    pub(super) fn finish_join<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        let claim = self.rec;
        self.locked_op(m, |h, m| {
            h.reap_fenced(m)?;
            let old = read_member(m, &h.sb, h.slot)?;
            if old.state == MemberState::Live {
                // The slot's last member gave the slot up (wrote it free) without leaving.
                h.reap(m, h.slot, old.epoch, 0)?;
            }
            let epoch = old.epoch.wrapping_add(1).max(1);
            let tx = h.begin(m, Op::Join)?;
            h.set_member(
                m,
                &tx,
                h.slot,
                Member {
                    epoch,
                    state: MemberState::Live,
                },
            )?;
            h.rec.state = SlotState::Member;
            h.rec.epoch = epoch;
            h.commit(m, tx).inspect_err(|_| {
                // Its intent and records carry the claim's epoch: roll back as the claimant.
                h.rec.state = claim.state;
                h.rec.epoch = claim.epoch;
            })
        })
    }

    /// Checks that this host's slot still holds what it last wrote there.
    ///
    /// # Errors
    ///
    /// [`Error::Fenced`] if a confirmer marked it off or a reaper freed its slot,
    /// [`Error::Evicted`] if the slot holds another host's record; the error of a read.
    pub(super) fn check_slot<M: Medium>(&self, m: &M) -> Result<(), Error> {
        // Only this host writes its slot, but for a confirmer (who marks it fenced) and a reaper
        // (who frees it after that). The member table is no witness: a host that does not hold
        // the lock may read it half rewritten.
        match read_slot(m, &self.sb, self.slot)?.0 {
            Ok(r) if r == self.rec => {}
            // Marked off by a confirmer, or freed by its reaper after that.
            Ok(r)
                if r.state == SlotState::Free
                    || (r.state == SlotState::Fenced && r.host == self.rec.host) =>
            {
                return Err(Error::Fenced)
            }
            _ => return Err(Error::Evicted),
        }
        Ok(())
    }

    /// Renews this host's lease: checks that its slot is still its own and that it was not
    /// fenced, then writes its slot with the next generation.
    ///
    /// # Errors
    ///
    /// [`Error::Expired`] if half the lease is gone (unless it is leaving): the host self-fences,
    /// see [`Host::leave`]; [`Error::Evicted`] if the slot holds another host's record,
    /// [`Error::Fenced`] if another host fenced this one; the error of a read or a write.
    pub(crate) fn renew<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.guard(m)?;
        self.check_slot(m)?;
        let now = m.now_ms();
        self.write_slot(m, self.rec)?;
        self.renewed_ms = now;
        Ok(())
    }

    /// The heartbeat: renews the lease, watches the other slots, and reaps the hosts confirmed
    /// off ([`Host::confirm_fenced`]). Returns the number of hosts reaped (their blocks are this
    /// host's now). A host whose lease expired is only a suspect ([`Host::suspects`]).
    ///
    /// # Errors
    ///
    /// The errors of [`Host::renew`], then of the lock and of reaping.
    pub(crate) fn heartbeat<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
        self.renew(m)?;
        self.observe(m)?;
        if !self.any_fenced(m)? {
            return Ok(0);
        }
        self.locked_op(m, |h, m| h.reap_fenced(m))
    }

    /// Records in the header that the host `uuid` in slot `slot` is off, as a fence agent or
    /// an administrator confirmed it to this host: see [`confirm_fenced`].
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for this host's own slot; those of [`confirm_fenced`].
    pub(crate) fn confirm_fenced<M: Medium>(
        &mut self,
        m: &M,
        slot: u32,
        uuid: [u8; 16],
    ) -> Result<(), Error> {
        if slot == self.slot {
            return Err(Error::Invalid("a host cannot fence itself"));
        }
        confirm_fenced(m, &self.sb, slot, uuid)
    }

    /// Calls `f` for every suspect: another host whose slot did not change for a lease and that
    /// still holds its slot (joining or a live member), and every host confirmed off that is
    /// not reaped yet. A suspect keeps its blocks and any ticket it holds until it is fenced.
    ///
    /// # Errors
    ///
    /// The error of a read.
    pub(crate) fn suspects<M: Medium>(
        &mut self,
        m: &M,
        mut f: impl FnMut(Suspect),
    ) -> Result<(), Error> {
        self.observe(m)?;
        let now = m.now_ms();
        for j in 0..self.sb.geometry.host_slots {
            if j == self.slot || !self.expired(m, j) {
                continue;
            }
            let silent_ms = self
                .seen
                .get(u32_as_usize(j))
                .map_or(0, |s| now.saturating_sub(s.since_ms));
            let (host, epoch, confirmed) = match read_slot(m, &self.sb, j)?.0 {
                Ok(r) if r.state == SlotState::Free => continue,
                // Whatever the member table says (an unfinished leave may have written it): the
                // slot's host may still be inside the lock.
                Ok(r) => (Some(r.host), r.epoch, r.state == SlotState::Fenced),
                Err(_) => (None, 0, false),
            };
            f(Suspect {
                slot: j,
                host,
                epoch,
                silent_ms,
                confirmed,
            });
        }
        Ok(())
    }

    /// Reaps every host confirmed off (its slot [`SlotState::Fenced`]): first every such host's
    /// unfinished transaction is rolled back (a reap rewrites records, and must not meet another
    /// fenced host's half-written ones), then each is reaped and its slot freed. Called holding
    /// the lock. Returns the number of members reaped.
    pub(super) fn reap_fenced<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
        let mut fenced = [None; u32_as_usize(MAX_HOST_SLOTS)];
        for (j, d) in (0..self.sb.geometry.host_slots).zip(fenced.iter_mut()) {
            if j == self.slot {
                continue;
            }
            if let Ok(r) = read_slot(m, &self.sb, j)?.0 {
                if r.state == SlotState::Fenced {
                    if r.intent != 0 {
                        self.rollback(m, j, r.epoch, r.intent)?;
                    }
                    *d = Some(r);
                }
            }
        }
        let mut reaped = 0;
        for (j, d) in (0..self.sb.geometry.host_slots).zip(fenced.iter()) {
            let Some(r) = d else {
                continue;
            };
            let mem = read_member(m, &self.sb, j)?;
            if mem.state == MemberState::Live && mem.epoch == r.epoch {
                self.reap(m, j, r.epoch, 0)?;
                reaped += 1;
            }
            self.free_slot(m, j, r.generation)?;
        }
        Ok(reaped)
    }

    /// Whether some slot holds a host confirmed off, not reaped yet.
    fn any_fenced<M: Medium>(&self, m: &M) -> Result<bool, Error> {
        for j in 0..self.sb.geometry.host_slots {
            if let Ok(r) = read_slot(m, &self.sb, j)?.0 {
                if r.state == SlotState::Fenced {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Frees the slot of a reaped host: a record newer than its last.
    fn free_slot<M: Medium>(&mut self, m: &M, j: u32, generation: u64) -> Result<(), Error> {
        self.guard(m)?;
        let (_, next_copy) = read_slot(m, &self.sb, j)?;
        let rec = SlotRecord {
            generation: generation.checked_add(1).ok_or(Error::Overflow(
                "a host slot's generation is at its largest value",
            ))?,
            ..SlotRecord::FREE
        };
        write_record(
            m,
            self.sb.slot_offset(j) + u64::from(next_copy) * RECORD_BYTES,
            &rec.encode(),
        )
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

    /// Leaves the portal: rolls back this host's own unfinished transaction, ends its handoffs
    /// as if it had died, frees the member entry and the blocks it still owns, and frees its
    /// slot. The caller must have stopped using the blocks. The host is no member afterwards,
    /// whatever this returns: drop it.
    ///
    /// A host whose lease lapsed (a pause) leaves this way too: that is how it self-fences.
    /// Nobody reclaimed its blocks, as it was not fenced; if it was, this fails with
    /// [`Error::Fenced`] and writes nothing more.
    ///
    /// # Errors
    ///
    /// The error of the lock, a read or a write; the host is no member afterwards whatever this
    /// returns.
    pub(crate) fn leave<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.leaving = true;
        self.locked_op(m, |me, m| {
            // Fenced hosts' transactions first: this one must not overwrite what their rollback
            // needs (the blocks reaped here are freed with this host's own).
            me.reap_fenced(m)?;
            me.rollback_own(m)?;
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

/// Records in the header that the host `uuid` in slot `slot` is off: a fence agent or an
/// administrator confirmed it. Its slot is marked [`SlotState::Fenced`] (a record newer than its
/// host's last, with no ticket): from then on no host waits for it, and the next heartbeat or
/// lock holder of any host reaps it. Anyone who may write the portal may record it (a member, a
/// joining host, the fence agent's client): the fenced host writes nothing more, and every
/// confirmer writes the same record.
///
/// The confirmation is the fence's promise, not a finding of this code: a host that is only
/// paused finds its slot fenced when it resumes and stops ([`Error::Evicted`]), but until then
/// it may touch the blocks it had.
///
/// # Errors
///
/// [`Error::Invalid`] for a slot that does not exist, or one that does not hold host `uuid`
/// (joining or a member); [`Error::Overflow`] for a slot generation at its largest value; the
/// error of a read or a write.
pub(crate) fn confirm_fenced<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
    uuid: [u8; 16],
) -> Result<(), Error> {
    if slot >= sb.geometry.host_slots {
        return Err(Error::Invalid("no such host slot"));
    }
    let (r, next_copy) = read_slot(m, sb, slot)?;
    let r = match r {
        Ok(r) if r.host == uuid && r.state == SlotState::Fenced => return Ok(()),
        Ok(r) if r.host == uuid && r.state != SlotState::Free => r,
        _ => {
            return Err(Error::Invalid(
                "that host slot does not hold the host named",
            ))
        }
    };
    let fenced = SlotRecord {
        state: SlotState::Fenced,
        generation: r.generation.checked_add(1).ok_or(Error::Overflow(
            "a host slot's generation is at its largest value",
        ))?,
        choosing: false,
        ticket: 0,
        ..r
    };
    write_record(
        m,
        sb.slot_offset(slot) + u64::from(next_copy) * RECORD_BYTES,
        &fenced.encode(),
    )
}

/// A host that stopped renewing its lease, as [`Host::suspects`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Suspect {
    /// Its slot.
    pub(crate) slot: u32,
    /// The host its slot names, if the slot reads valid.
    pub(crate) host: Option<[u8; 16]>,
    /// Its epoch (0 while joining).
    pub(crate) epoch: u32,
    /// How long this host has seen its slot unchanged, in ms.
    pub(crate) silent_ms: u64,
    /// Whether it was confirmed off (its slot is fenced) and awaits its reaping.
    pub(crate) confirmed: bool,
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
