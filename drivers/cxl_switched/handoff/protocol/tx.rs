// SPDX-License-Identifier: GPL-2.0

//! Transactions: intents in the writer's slot, two-copy table writes, rollback after a death.

use super::abi::{
    Handoff, HandoffState, Kind, Member, Outcome, Owner, SlotRecord, TableRecord,
    ENTRIES_PER_RECORD, RECORD_SIZE,
};
use super::medium::{read_record, write_record};
use super::records::read_table;
use super::{Error, Host, Medium, Op};

/// A transaction in progress: the id its intent and its records carry. The records it writes
/// ([`Host::update_owners`], [`Host::put_handoff`], ...) are undone if its host dies before
/// [`Host::commit`].
pub(super) struct Tx {
    pub(super) id: u64,
}

impl Host {
    /// Starts a transaction: records the intent in this host's slot.
    pub(super) fn begin<M: Medium>(&mut self, m: &M, op: Op) -> Result<Tx, Error> {
        self.guard(m)?;
        self.txid += 1;
        let id = (u64::from(self.rec.epoch) << 32) | self.txid;
        self.write_slot(
            m,
            SlotRecord {
                intent: id,
                op: op as u32,
                ..self.rec
            },
        )?;
        Ok(Tx { id })
    }

    /// Ends a transaction: clears the intent. From here on it cannot be rolled back.
    pub(super) fn commit<M: Medium>(&mut self, m: &M, _tx: Tx) -> Result<(), Error> {
        self.guard(m)?;
        self.write_slot(
            m,
            SlotRecord {
                intent: 0,
                op: 0,
                ..self.rec
            },
        )
    }

    /// Writes a table record in transaction `tx`: to the copy that is not current, unless the
    /// current copy was written by this very transaction (then over it, keeping the other copy
    /// as it was before the transaction, for a rollback).
    pub(super) fn put<M: Medium>(
        &mut self,
        m: &M,
        tx: &Tx,
        mut rec: TableRecord,
    ) -> Result<(), Error> {
        self.guard(m)?;
        let (cur, next) = read_table(m, &self.sb, rec.kind, rec.index)?;
        let ours = cur.txid == tx.id
            && cur.writer_slot == self.slot_id
            && cur.writer_epoch == self.rec.epoch;
        let copy = if ours { 1 - next } else { next };
        rec.generation = cur
            .generation
            .checked_add(u64::from(!ours))
            .ok_or(Error::Overflow(
                "a table record's generation is at its largest value",
            ))?;
        rec.txid = tx.id;
        rec.writer_slot = self.slot_id;
        rec.writer_epoch = self.rec.epoch;
        write_record(
            m,
            self.sb.record_offset(rec.kind, rec.index, copy),
            &rec.encode(),
        )
    }

    pub(super) fn set_member<M: Medium>(
        &mut self,
        m: &M,
        tx: &Tx,
        slot: u32,
        v: Member,
    ) -> Result<(), Error> {
        let index = slot / ENTRIES_PER_RECORD;
        let (mut rec, _) = read_table(m, &self.sb, Kind::Members, index)?;
        if !rec.set_entry(slot % ENTRIES_PER_RECORD, v.encode()) {
            return Err(Error::Corrupt(Kind::Members, index));
        }
        self.put(m, tx, rec)
    }

    /// Rewrites the owner entries `f` changes, each record at most once. Returns the count.
    pub(super) fn update_owners<M: Medium>(
        &mut self,
        m: &M,
        tx: &Tx,
        mut f: impl FnMut(u64, Owner) -> Option<Owner>,
    ) -> Result<u64, Error> {
        let blocks = self.sb.geometry.data_blocks();
        let mut changed = 0;
        for index in 0..self.sb.owner_records() {
            let (mut rec, _) = read_table(m, &self.sb, Kind::Owners, index)?;
            let mut dirty = false;
            for i in 0..ENTRIES_PER_RECORD {
                let block = u64::from(index) * u64::from(ENTRIES_PER_RECORD) + u64::from(i);
                if block >= blocks {
                    break;
                }
                let old = Owner::decode(rec.entry(i).ok_or(Error::Corrupt(Kind::Owners, index))?);
                if let Some(new) = f(block, old) {
                    if new != old {
                        if !rec.set_entry(i, new.encode()) {
                            return Err(Error::Corrupt(Kind::Owners, index));
                        }
                        dirty = true;
                        changed += 1;
                    }
                }
            }
            if dirty {
                self.put(m, tx, rec)?;
            }
        }
        Ok(changed)
    }

    pub(super) fn put_handoff<M: Medium>(
        &mut self,
        m: &M,
        tx: &Tx,
        index: u32,
        h: &Handoff,
    ) -> Result<(), Error> {
        let (mut rec, _) = read_table(m, &self.sb, Kind::Handoff, index)?;
        h.encode(&mut rec.payload);
        self.put(m, tx, rec)
    }

    /// Undoes transaction `txid` of the host in `slot`, whose incarnation that began it is
    /// gone (fenced, or replaced by a later one): every record whose current copy that
    /// transaction wrote goes back to its other copy. Nothing else wrote these records since: the
    /// host died holding the lock, and every holder after it undoes this first. Undoing twice
    /// does nothing more: once undone, no current copy carries `txid`.
    pub(super) fn rollback<M: Medium>(&mut self, m: &M, slot: u32, txid: u64) -> Result<(), Error> {
        self.guard(m)?;
        self.undo(m, slot, tx_epoch(txid), txid)
    }

    /// Undoes this host's own unfinished transaction, if it has one, and clears its intent.
    /// Called holding the lock, after an error inside a transaction (even the lapse of this
    /// host's lease: what it wrote must not stand half done) and when it leaves.
    pub(super) fn rollback_own<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        if self.rec.intent == 0 {
            return Ok(());
        }
        self.undo(m, self.slot, tx_epoch(self.rec.intent), self.rec.intent)?;
        self.write_slot(
            m,
            SlotRecord {
                intent: 0,
                op: 0,
                ..self.rec
            },
        )
    }

    fn undo<M: Medium>(&mut self, m: &M, slot: u32, epoch: u32, txid: u64) -> Result<(), Error> {
        let zero = [0u8; RECORD_SIZE];
        for kind in [Kind::Members, Kind::Owners, Kind::Handoff] {
            for index in 0..self.sb.records(kind) {
                let (cur, next) = read_table(m, &self.sb, kind, index)?;
                if cur.txid != txid
                    || u32::from(cur.writer_slot) != slot
                    || cur.writer_epoch != epoch
                {
                    continue;
                }
                let other = read_record(m, self.sb.record_offset(kind, index, next))?;
                if TableRecord::decode(&other, kind, index).is_err() {
                    // No copy from before the transaction: keep what it wrote.
                    continue;
                }
                write_record(m, self.sb.record_offset(kind, index, 1 - next), &zero)?;
            }
        }
        Ok(())
    }

    /// Ends handoff `index`: the target keeps the blocks (`released`) or they go back to the
    /// source; the record is freed with its outcome.
    pub(super) fn end_handoff<M: Medium>(
        &mut self,
        m: &M,
        tx: &Tx,
        index: u32,
        h: &Handoff,
        released: bool,
    ) -> Result<(), Error> {
        let owner = if released {
            Owner {
                slot: h.target,
                handoff: 0,
                epoch: h.target_epoch,
            }
        } else {
            Owner {
                slot: h.source,
                handoff: 0,
                epoch: h.source_epoch,
            }
        };
        let tag = handoff_tag(index)?;
        self.update_owners(m, tx, |b, o| {
            (o.handoff == tag && in_extents(h, b)).then_some(owner)
        })?;
        let done = Handoff {
            outcome: if released {
                Outcome::Released
            } else {
                Outcome::RolledBack
            },
            state: HandoffState::Free,
            ..*h
        };
        self.put_handoff(m, tx, index, &done)
    }
}

pub(super) fn in_extents(h: &Handoff, block: u64) -> bool {
    h.extents()
        .iter()
        .any(|e| block >= u64::from(e.start) && block < u64::from(e.start) + u64::from(e.count))
}

/// The epoch of the incarnation that began transaction `txid`: its upper 32 bits.
pub(super) fn tx_epoch(txid: u64) -> u32 {
    let [.., a, b, c, d] = txid.to_le_bytes();
    u32::from_le_bytes([a, b, c, d])
}

/// The tag owner entries carry for the blocks of handoff record `index`: its index + 1.
pub(super) fn handoff_tag(index: u32) -> Result<u16, Error> {
    u16::try_from(index)
        .ok()
        .and_then(|i| i.checked_add(1))
        .ok_or(Error::Invalid("no such handoff record"))
}
