// SPDX-License-Identifier: GPL-2.0

//! Join, lease renewal and heartbeat, suspects and fencing, reaping, leave.

use super::super::num::u32_as_usize;
use super::abi::{
    Confirm, HandoffState, Member, MemberState, Owner, SlotRecord, SlotState, Superblock,
    MAX_CONFIRMS, MAX_HOST_SLOTS,
};
use super::host::UNSEEN;
use super::records::{
    is_off, read_handoff, read_member, read_member_committed, read_slot, read_slot_copies, reaped,
    Incarnations,
};
use super::tx::tx_epoch;
use super::{Error, Host, Medium, Op};

impl Host {
    /// Joins a portal as the host of slot `index`, this host's host index: one that no other
    /// host sharing the portal is configured with. Only this host writes that slot, so joining
    /// needs no race to be won: it chooses its epoch (larger than every earlier incarnation's
    /// in the slot), writes its claim, then, under the portal lock, rolls back what a dead
    /// earlier incarnation left unfinished, reaps it if nobody did, and records the new epoch in
    /// the member table.
    ///
    /// A slot that holds another incarnation not known to be off ([`Host::confirm_fenced`]) is
    /// watched for a lease first: if it changes, another host runs with this host index.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an index the portal has no slot for, or one another host keeps
    /// alive; [`Error::Overflow`] for a counter at its largest value; the
    /// error of the lock, a read or a write.
    pub(crate) fn join<M: Medium>(
        m: &M,
        sb: Superblock,
        uuid: [u8; 16],
        index: u32,
    ) -> Result<Self, Error> {
        let mut host = Self::claim_slot(m, sb, uuid, index)?;
        host.complete_join(m)?;
        Ok(host)
    }

    /// The first half of [`Host::join`]: writes this host's claim into slot `index`. The host
    /// is no member yet: until [`Host::complete_join`], it may only record fence confirmations
    /// ([`Host::confirm_fenced`]), such as those of hosts that died holding the lock.
    ///
    /// # Errors
    ///
    /// Those of [`Host::join`] but the lock's.
    pub(crate) fn claim_slot<M: Medium>(
        m: &M,
        sb: Superblock,
        uuid: [u8; 16],
        index: u32,
    ) -> Result<Self, Error> {
        if index >= sb.geometry.host_slots {
            return Err(Error::Invalid(
                "the host index is not below the portal's host slot count",
            ));
        }
        let slot_id = u16::try_from(index).map_err(|_| Error::Invalid("no such host slot"))?;
        let (last, next_copy) = read_slot(m, &sb, index)?;
        if let Ok(r) = last {
            if r.state != SlotState::Free && !is_off(m, &sb, index, r.epoch)? {
                m.sleep_ms(sb.timing.lease_ms);
                if read_slot(m, &sb, index)?.0.map(|n| n.generation) != Ok(r.generation) {
                    return Err(Error::Invalid(
                        "another host runs with this host index: each host needs its own",
                    ));
                }
            }
        }
        // Every earlier incarnation's epoch and generation is in one of the two copies, or in
        // the member entry (a copy may be torn).
        let mut epoch = read_member(m, &sb, index)?.epoch;
        let mut generation = 0;
        for r in read_slot_copies(m, &sb, index)?.into_iter().flatten() {
            epoch = epoch.max(r.epoch);
            generation = generation.max(r.generation);
        }
        let epoch = epoch.checked_add(1).ok_or(Error::Overflow(
            "a host slot's epoch is at its largest value",
        ))?;
        // What a dead incarnation left unfinished stays in the slot until it is rolled back, and
        // the fence confirmations it gave until the member table records them: a confirmation
        // is a fact for good (epochs are never reused), and the reap it was given for may be
        // rolled back with the rest of that incarnation's transaction.
        let (intent, op, confirms) = match last {
            Ok(r) => (r.intent, r.op, r.confirms),
            Err(_) => (0, 0, [None; MAX_CONFIRMS]),
        };
        let mut host = Host {
            sb,
            slot: index,
            slot_id,
            rec: SlotRecord {
                generation,
                ..SlotRecord::FREE
            },
            next_copy,
            txid: 0,
            renewed_ms: m.now_ms(),
            seen: [UNSEEN; u32_as_usize(MAX_HOST_SLOTS)],
            leaving: false,
        };
        host.write_slot(
            m,
            SlotRecord {
                state: SlotState::Claiming,
                host: uuid,
                epoch,
                intent,
                op,
                confirms,
                ..SlotRecord::FREE
            },
        )?;
        Ok(host)
    }

    /// The second half of [`Host::join`], after [`Host::claim_slot`]. If it fails, the slot is
    /// given up: drop the host.
    ///
    /// # Errors
    ///
    /// Those of [`Host::join`].
    pub(crate) fn complete_join<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        let host = self;
        let epoch = host.rec.epoch;
        match host.finish_join(m) {
            Ok(()) => Ok(()),
            Err(e) => {
                // Give the slot up, even after a pause (a lapsed claim that stayed would be a
                // suspect until fenced), keeping its epoch, a dead incarnation's intent if it is
                // still there, and the confirmations not recorded yet.
                if !e.is_gone() {
                    let _ = host.write_slot(
                        m,
                        SlotRecord {
                            state: SlotState::Free,
                            epoch,
                            intent: host.rec.intent,
                            op: host.rec.op,
                            confirms: host.rec.confirms,
                            ..SlotRecord::FREE
                        },
                    );
                }
                Err(e)
            }
        }
    }

    /// Records this host's new epoch in the member table, under the lock. A join that fails
    /// part way (its lease lapsed during a pause, say) is rolled back before the lock is let go,
    /// so that a member entry never stands without its host's slot saying so.
    pub(super) fn finish_join<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.locked_op(m, |h, m| {
            // Also rolls back what this slot's dead incarnation left unfinished.
            h.reap_fenced(m)?;
            if h.rec.intent != 0 {
                h.rollback(m, h.slot, h.rec.intent)?;
                h.write_slot(
                    m,
                    SlotRecord {
                        intent: 0,
                        op: 0,
                        ..h.rec
                    },
                )?;
            }
            let epoch = h.rec.epoch;
            let old = read_member(m, &h.sb, h.slot)?;
            if old.state == MemberState::Live && old.epoch < epoch {
                // An earlier incarnation that nobody reaped: this host knows it is gone.
                h.reap(m, h.slot, old.epoch)?;
            }
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
            h.commit(m, tx).inspect_err(|_| {
                // Its intent and records carry the claim: roll back as the claimant.
                h.rec.state = SlotState::Claiming;
            })
        })
    }

    /// Checks that this host's slot still holds what it last wrote there, and that the member
    /// table does not have it reaped.
    ///
    /// # Errors
    ///
    /// [`Error::Fenced`] if a host reaped this one;
    /// [`Error::Evicted`] if the slot holds what this host did not write (another host runs
    /// with its host index, or the portal was formatted again); the error of a read.
    pub(super) fn check_slot<M: Medium>(&self, m: &M) -> Result<(), Error> {
        match read_slot(m, &self.sb, self.slot)?.0 {
            Ok(r) if r == self.rec => {}
            _ => return Err(Error::Evicted),
        }
        if reaped(m, &self.sb, self.slot, self.rec.epoch)? {
            return Err(Error::Fenced);
        }
        Ok(())
    }

    /// [`Host::check_slot`], and whether any host recorded this one off: a walk of every slot,
    /// done by the heartbeat.
    fn check_fenced<M: Medium>(&self, m: &M) -> Result<(), Error> {
        if is_off(m, &self.sb, self.slot, self.rec.epoch)? {
            return Err(Error::Fenced);
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

    /// The heartbeat: renews the lease, watches the other slots, drops the confirmations the
    /// member table now records, and reaps the hosts confirmed off ([`Host::confirm_fenced`]).
    /// Returns the number of hosts reaped (their blocks are this host's now). A host whose
    /// lease expired is only a suspect ([`Host::suspects`]).
    ///
    /// # Errors
    ///
    /// The errors of [`Host::renew`], then of the lock and of reaping.
    pub(crate) fn heartbeat<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
        self.keep_alive(m)?;
        if !self.any_to_reap(m)? {
            return Ok(0);
        }

        self.locked_op(m, |h, m| h.reap_fenced(m))
    }

    /// The heartbeat without the reaping, which takes the lock: renews the lease, checks that
    /// no host recorded this one off, watches the other slots, and drops the confirmations the
    /// member table now records. For a host that confirms others off and leaves the reaping to
    /// the members (a fence agent's host).
    ///
    /// # Errors
    ///
    /// Those of [`Host::renew`]; [`Error::Fenced`] if a host recorded this one off; the error
    /// of a read or a write.
    pub(crate) fn keep_alive<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.renew(m)?;
        self.check_fenced(m)?;
        self.observe(m)?;
        self.drop_confirms(m)
    }

    /// Records in this host's own slot that the host `uuid` in slot `slot` is off, as a fence
    /// agent or an administrator confirmed it to this host. From then on no host waits for it
    /// in the lock, it finds itself fenced if it ever resumes, and the next lock holder reaps
    /// it. The confirmation names the incarnation (slot and epoch) the slot holds now, so that a
    /// later incarnation of that host is never taken for it.
    ///
    /// The confirmation is the fence's promise, not a finding of this code: a host that is only
    /// paused finds itself fenced when it resumes and stops ([`Error::Fenced`]), but until then
    /// it may touch the blocks it had.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for this host's own slot, a slot that does not exist, or one that does
    /// not hold host `uuid`; [`Error::Full`] if this host's slot holds as many confirmations as
    /// it can; the error of a read or a write.
    pub(crate) fn confirm_fenced<M: Medium>(
        &mut self,
        m: &M,
        slot: u32,
        uuid: [u8; 16],
    ) -> Result<(), Error> {
        if slot == self.slot {
            return Err(Error::Invalid("a host cannot fence itself"));
        }
        if slot >= self.sb.geometry.host_slots {
            return Err(Error::Invalid("no such host slot"));
        }
        let r = match read_slot(m, &self.sb, slot)?.0 {
            Ok(r) if r.host == uuid && r.state != SlotState::Free => r,
            _ => {
                return Err(Error::Invalid(
                    "that host slot does not hold the host named",
                ))
            }
        };
        if self.rec.confirms(slot, r.epoch) || is_off(m, &self.sb, slot, r.epoch)? {
            return Ok(());
        }
        let mut rec = self.rec;
        let free = rec
            .confirms
            .iter_mut()
            .find(|c| c.is_none())
            .ok_or(Error::Full(
                "this host holds as many fence confirmations as a slot can: reap first",
            ))?;
        *free = Some(Confirm {
            slot,
            epoch: r.epoch,
        });
        self.write_slot(m, rec)
    }

    /// Calls `f` for every suspect: another host whose slot did not change for a lease and that
    /// still holds its slot (joining or a live member), not reaped yet. A suspect keeps its
    /// blocks and any ticket it holds until it is fenced.
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
            let (host, epoch) = match read_slot(m, &self.sb, j)?.0 {
                Ok(r) if r.state == SlotState::Free => continue,
                // A reaped host's last record stays in its slot until it joins again.
                Ok(r) if reaped(m, &self.sb, j, r.epoch)? => continue,
                // Whatever the member table says (an unfinished leave may have written it): the
                // slot's host may still be inside the lock.
                Ok(r) => (Some(r.host), r.epoch),
                Err(_) => (None, 0),
            };
            f(Suspect {
                slot: j,
                host,
                epoch,
                silent_ms,
                confirmed: is_off(m, &self.sb, j, epoch)?,
            });
        }
        Ok(())
    }

    /// Under the lock, before anything else is written: rolls back every unfinished
    /// transaction of a dead incarnation (one confirmed off, or the earlier incarnation of a
    /// slot whose host joined again: it carries that intent until it is undone), so that no
    /// write meets another's half-written records; then reaps every incarnation confirmed off
    /// and not reaped yet, and every live member whose slot holds a later incarnation (its host
    /// booted again, so it is gone), and drops this host's confirmations that the member table
    /// now records. Returns the number of incarnations reaped.
    ///
    /// The hosts reaped are not written to: their slots keep their last records, which say
    /// nothing any more once the member table has them fenced.
    pub(super) fn reap_fenced<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
        let mut v = Incarnations::read(m, &self.sb)?;
        let mut undone = false;
        for j in 0..self.sb.geometry.host_slots {
            let (dead, epoch, intent) = if j == self.slot {
                (false, self.rec.epoch, self.rec.intent)
            } else {
                match v.slot(j) {
                    Some(s) => (v.dead(j), s.epoch, s.intent),
                    None => continue,
                }
            };
            if intent != 0 && (dead || tx_epoch(intent) < epoch) {
                self.rollback(m, j, intent)?;
                undone = true;
            }
        }
        // Only once every dead transaction is undone: reap. A rollback may have undone a reap
        // (whose reaper died before it committed), so decide from the tables as they are now.
        if undone {
            v = Incarnations::read(m, &self.sb)?;
        }
        let mut reaped_now = 0;
        for j in 0..self.sb.geometry.host_slots {
            if let Some(epoch) = self.to_reap(&v, j) {
                self.reap(m, j, epoch)?;
                reaped_now += 1;
            }
        }
        self.drop_confirms(m)?;
        Ok(reaped_now)
    }

    /// Of [`Host::reap_fenced`]'s reading `v`, the incarnation of slot `j` to reap, if any: the
    /// current one if it is known off and not reaped yet; or, for a live member whose slot
    /// moved on to a later incarnation, the member's (its host booted again, so this one is
    /// gone: its successor did not finish joining, or would have reaped it).
    fn to_reap(&self, v: &Incarnations, j: u32) -> Option<u32> {
        if j == self.slot {
            return None;
        }
        let s = v.slot(j)?;
        if v.dead(j) && !v.reaped(j) {
            return Some(s.epoch);
        }
        v.member(j)
            .filter(|x| x.state == MemberState::Live && x.epoch < s.epoch)
            .map(|x| x.epoch)
    }

    /// Drops this host's confirmations that are done with: of incarnations that the member table
    /// records as reaped (or a later one) in a committed transaction, as a reap whose reaper
    /// dies before it commits is rolled back and the confirmation is what has it done again; of
    /// incarnations whose slot holds a later one (a lock holder reaps a live member whose slot
    /// moved on without a confirmation); and of incarnations that ended without a reap, their
    /// slot free in that epoch and their committed member entry not live in it (a leave, or a
    /// join that failed). Slot epochs only grow, so what a read of a slot shows was true.
    fn drop_confirms<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        let mut rec = self.rec;
        let mut changed = false;
        for c in rec.confirms.iter_mut() {
            let Some(k) = *c else {
                continue;
            };
            let slot = read_slot(m, &self.sb, k.slot)?.0.ok();
            let member = read_member_committed(m, &self.sb, k.slot)?;
            let recorded = member.is_some_and(|x| {
                x.epoch > k.epoch || (x.epoch == k.epoch && x.state == MemberState::Fenced)
            });
            let moved_on = slot.is_some_and(|r| r.epoch > k.epoch);
            let ended = slot.is_some_and(|r| r.state == SlotState::Free && r.epoch == k.epoch)
                && member.is_some_and(|x| !(x.epoch == k.epoch && x.state == MemberState::Live));
            if recorded || moved_on || ended {
                *c = None;
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        // Keep them packed, as the record stores them.
        let mut packed = [None; MAX_CONFIRMS];
        for (p, c) in packed.iter_mut().zip(rec.confirms.iter().flatten()) {
            *p = Some(*c);
        }
        rec.confirms = packed;
        self.write_slot(m, rec)
    }

    /// Whether a lock holder has something to undo or reap: some slot holds an incarnation
    /// confirmed off and not reaped, or a dead incarnation's unfinished transaction, or the
    /// member table a live member whose slot moved on to a later incarnation.
    fn any_to_reap<M: Medium>(&self, m: &M) -> Result<bool, Error> {
        let v = Incarnations::read(m, &self.sb)?;
        Ok((0..self.sb.geometry.host_slots).any(|j| {
            j != self.slot
                && (self.to_reap(&v, j).is_some()
                    || v.slot(j)
                        .is_some_and(|s| s.intent != 0 && tx_epoch(s.intent) < s.epoch))
        }))
    }

    /// Reaps incarnation `epoch` of the host in `slot`, which is off, and every earlier one
    /// (all gone, as a later one exists): fences it in the member table, ends its handoffs, and
    /// takes the blocks they owned. Its unfinished transaction was rolled back already
    /// ([`Host::reap_fenced`]).
    pub(super) fn reap<M: Medium>(&mut self, m: &M, slot: u32, epoch: u32) -> Result<(), Error> {
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
            let source = u32::from(h.source) == slot && h.source_epoch <= epoch;
            let target = u32::from(h.target) == slot && h.target_epoch <= epoch;
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
            (u32::from(o.slot) == slot && o.epoch <= epoch && o.handoff == 0).then_some(heir)
        })?;
        self.commit(m, tx)
    }

    /// Leaves the portal: rolls back this host's own unfinished transaction, ends its handoffs
    /// as if it had died, frees the member entry and the blocks it still owns, and frees its
    /// slot (keeping its epoch, which the next incarnation's exceeds). The caller must have
    /// stopped using the blocks. The host is no member afterwards, whatever this returns: drop
    /// it.
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
        // Confirmations that the member table does not record yet stay, as they do in a join.
        self.write_slot(
            m,
            SlotRecord {
                epoch: self.rec.epoch,
                confirms: self.rec.confirms,
                ..SlotRecord::FREE
            },
        )
    }
}

/// A host that stopped renewing its lease, as [`Host::suspects`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Suspect {
    /// Its slot.
    pub(crate) slot: u32,
    /// The host its slot names, if the slot reads valid.
    pub(crate) host: Option<[u8; 16]>,
    /// Its epoch (its incarnation).
    pub(crate) epoch: u32,
    /// How long this host has seen its slot unchanged, in ms.
    pub(crate) silent_ms: u64,
    /// Whether it was confirmed off and awaits its reaping.
    pub(crate) confirmed: bool,
}
