// SPDX-License-Identifier: GPL-2.0

//! Reading the header's records: slots, table records and their entries, for every party.

use core::ops::ControlFlow;

use super::super::num::u32_as_usize;
use super::abi::MAX_HOST_SLOTS;
use super::abi::{
    current, Handoff, Kind, Member, MemberState, Owner, RecordError, SlotRecord, SlotState,
    Superblock, TableRecord, ENTRIES_PER_RECORD, RECORD_BYTES,
};
use super::medium::read_record;
use super::{Error, Medium};

/// Reads the superblock.
///
/// # Errors
///
/// [`Error::Header`] for a superblock not to use; the error of a read.
pub(crate) fn read_superblock<M: Medium>(m: &M) -> Result<Superblock, Error> {
    Ok(Superblock::decode(&read_record(m, 0)?)?)
}

/// Reads both copies of slot `slot`: the current record (if any copy is valid) and the copy
/// the next write goes to.
///
/// # Errors
///
/// The error of a read (a slot without a valid copy is not an error: see the result).
pub(crate) fn read_slot<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
) -> Result<(Result<SlotRecord, RecordError>, u32), Error> {
    let base = sb.slot_offset(slot);
    let a = SlotRecord::decode(&read_record(m, base)?);
    let b = SlotRecord::decode(&read_record(m, base + RECORD_BYTES)?);
    Ok(current_slot(a, b))
}

/// Reads both copies of slot `slot`, decoded, in copy order.
///
/// # Errors
///
/// The error of a read.
pub(crate) fn read_slot_copies<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
) -> Result<[Result<SlotRecord, RecordError>; 2], Error> {
    let base = sb.slot_offset(slot);
    Ok([
        SlotRecord::decode(&read_record(m, base)?),
        SlotRecord::decode(&read_record(m, base + RECORD_BYTES)?),
    ])
}

/// Calls `f` with every fence confirmation that some slot's current record holds, as the
/// confirmed slot and epoch, until `f` breaks; returns whether it did. A slot without a valid
/// copy confirms nothing.
///
/// # Errors
///
/// The error of a read.
fn for_each_confirm<M: Medium>(
    m: &M,
    sb: &Superblock,
    mut f: impl FnMut(u32, u32) -> ControlFlow<()>,
) -> Result<bool, Error> {
    for c in 0..sb.geometry.host_slots {
        if let Ok(r) = read_slot(m, sb, c)?.0 {
            for k in r.confirms.iter().flatten() {
                if f(k.slot, k.epoch).is_break() {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// Whether incarnation `epoch` of slot `slot` is *known off*: some slot's current record
/// confirms it off, or the member table says it was reaped. Either is a fact once written (a
/// slot holds only confirmations a fence agent or an administrator gave, a member entry is
/// fenced only for a confirmed incarnation, and epochs are never reused), so a read that misses
/// a newer write is safe: it can only miss that a host is off, never call a live one off.
/// [`Incarnations`] applies the same rule to every slot at once.
///
/// # Errors
///
/// The error of a read. A member record that does not read settled counts as "not known off".
pub(crate) fn is_off<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
    epoch: u32,
) -> Result<bool, Error> {
    if epoch == 0 {
        return Ok(false);
    }
    let confirmed = for_each_confirm(m, sb, |s, e| {
        if s == slot && e == epoch {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(confirmed || reaped(m, sb, slot, epoch)?)
}

/// A slot's current incarnation, as [`Incarnations`] read it.
#[derive(Clone, Copy)]
pub(crate) struct Incarnation {
    pub(crate) state: SlotState,
    pub(crate) epoch: u32,
    pub(crate) intent: u64,
}

/// Every slot's current incarnation, and which of them are known to be off (the rule of
/// [`is_off`]), from one walk of the slots and the member table (two reads of each slot, one
/// of each member record): what a lock holder needs to roll back and reap, without a walk of
/// every slot per slot. Kept as arrays of plain values (about 1.4 KiB for 64 slots), as it lives
/// on the kernel stack of the heartbeat.
pub(crate) struct Incarnations {
    /// Per slot: its current record's state (`None`: no valid copy), epoch and intent.
    states: [Option<SlotState>; u32_as_usize(MAX_HOST_SLOTS)],
    epochs: [u32; u32_as_usize(MAX_HOST_SLOTS)],
    intents: [u64; u32_as_usize(MAX_HOST_SLOTS)],
    /// Per slot: its member entry's state (`None`: unread or undecodable) and epoch.
    member_states: [Option<MemberState>; u32_as_usize(MAX_HOST_SLOTS)],
    member_epochs: [u32; u32_as_usize(MAX_HOST_SLOTS)],
    /// Bit `k`: some slot confirms slot `k`'s current incarnation off.
    confirmed: u64,
}

impl Incarnations {
    /// Reads them.
    ///
    /// # Errors
    ///
    /// The error of a read; [`Error::Corrupt`] for a member record without a valid copy.
    pub(crate) fn read<M: Medium>(m: &M, sb: &Superblock) -> Result<Self, Error> {
        let mut v = Incarnations {
            states: [None; u32_as_usize(MAX_HOST_SLOTS)],
            epochs: [0; u32_as_usize(MAX_HOST_SLOTS)],
            intents: [0; u32_as_usize(MAX_HOST_SLOTS)],
            member_states: [None; u32_as_usize(MAX_HOST_SLOTS)],
            member_epochs: [0; u32_as_usize(MAX_HOST_SLOTS)],
            confirmed: 0,
        };
        for j in 0..sb.geometry.host_slots {
            let Ok(r) = read_slot(m, sb, j)?.0 else {
                continue;
            };
            let i = u32_as_usize(j);
            if let (Some(s), Some(e), Some(t)) = (
                v.states.get_mut(i),
                v.epochs.get_mut(i),
                v.intents.get_mut(i),
            ) {
                (*s, *e, *t) = (Some(r.state), r.epoch, r.intent);
            }
        }
        let mut confirmed = 0u64;
        for_each_confirm(m, sb, |slot, epoch| {
            if epoch != 0 && v.slot(slot).is_some_and(|x| x.epoch == epoch) {
                confirmed |= 1u64.checked_shl(slot).unwrap_or(0);
            }
            ControlFlow::Continue(())
        })?;
        v.confirmed = confirmed;
        for index in 0..sb.records(Kind::Members) {
            let rec = match read_table_settled(m, sb, Kind::Members, index) {
                Ok(rec) => rec,
                // Counts as "not reaped": safe, as [`is_off`] says.
                Err(Error::TimedOut) => continue,
                Err(e) => return Err(e),
            };
            for i in 0..ENTRIES_PER_RECORD {
                let slot = index
                    .checked_mul(ENTRIES_PER_RECORD)
                    .and_then(|s| s.checked_add(i))
                    .map_or(usize::MAX, u32_as_usize);
                let entry = rec.entry(i).and_then(Member::decode);
                if let (Some(s), Some(e)) =
                    (v.member_states.get_mut(slot), v.member_epochs.get_mut(slot))
                {
                    (*s, *e) = (entry.map(|x| x.state), entry.map_or(0, |x| x.epoch));
                }
            }
        }
        Ok(v)
    }

    /// Slot `j`'s current incarnation; `None` for a slot without a valid copy.
    pub(crate) fn slot(&self, j: u32) -> Option<Incarnation> {
        let i = u32_as_usize(j);
        Some(Incarnation {
            state: self.states.get(i).copied().flatten()?,
            epoch: self.epochs.get(i).copied()?,
            intent: self.intents.get(i).copied()?,
        })
    }

    /// Slot `j`'s member entry; `None` for one that did not read or decode.
    pub(crate) fn member(&self, j: u32) -> Option<Member> {
        let i = u32_as_usize(j);
        Some(Member {
            state: self.member_states.get(i).copied().flatten()?,
            epoch: self.member_epochs.get(i).copied()?,
        })
    }

    /// Whether slot `j`'s current incarnation is known to be off: confirmed, or reaped.
    pub(crate) fn off(&self, j: u32) -> bool {
        self.confirmed & 1u64.checked_shl(j).unwrap_or(0) != 0 || self.reaped(j)
    }

    /// Whether slot `j` holds an incarnation (claiming or a member) that is known to be off.
    pub(crate) fn dead(&self, j: u32) -> bool {
        self.slot(j).is_some_and(|s| s.state != SlotState::Free) && self.off(j)
    }

    /// Whether the member table has slot `j`'s current incarnation reaped.
    pub(crate) fn reaped(&self, j: u32) -> bool {
        matches!(
            (self.slot(j), self.member(j)),
            (Some(s), Some(m))
                if s.epoch != 0 && m.state == MemberState::Fenced && m.epoch == s.epoch
        )
    }
}

/// Whether the member table says incarnation `epoch` of slot `slot` was reaped (fenced).
///
/// # Errors
///
/// The error of a read. A member record that does not read settled counts as "not reaped".
pub(crate) fn reaped<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
    epoch: u32,
) -> Result<bool, Error> {
    match read_member(m, sb, slot) {
        Ok(mem) => Ok(mem.state == MemberState::Fenced && mem.epoch == epoch),
        Err(Error::TimedOut) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Of a slot's two copies, the current record and the copy the next write goes to.
fn current_slot(
    a: Result<SlotRecord, RecordError>,
    b: Result<SlotRecord, RecordError>,
) -> (Result<SlotRecord, RecordError>, u32) {
    match (a, b) {
        (Ok(a), Ok(b)) if b.generation > a.generation => (Ok(b), 0),
        (Ok(a), _) => (Ok(a), 1),
        (Err(_), Ok(b)) => (Ok(b), 0),
        // One copy never written, the other not valid: no write to the slot ever completed
        // (a first claim torn, or still going on), so it is an unwritten slot. Its host, if it
        // is alive, has not reached the lock's doorway.
        (Err(RecordError::Zero), Err(_)) | (Err(_), Err(RecordError::Zero)) => {
            (Err(RecordError::Zero), 0)
        }
        // Neither valid: report the first copy's reason; a write goes to copy 0.
        (Err(e), Err(_)) => (Err(e), 0),
    }
}

/// How many times [`read_slot_settled`] reads a slot before it calls it unsettled.
const SETTLE_READS: u32 = 4;

/// Reads both copies of slot `slot` and then copy 0 again; if copy 0 did not change, the slot's
/// host completed at most one write (to copy 1) while it was read, so the result is its record
/// from some instant of the read, as [`read_slot`]'s is not: two writes between the reads of
/// copy 0 and copy 1, the second torn, would yield the record from before both. Returns the
/// current record (or why neither copy is valid), or `None` if copy 0 kept changing.
///
/// # Errors
///
/// The error of a read.
pub(crate) fn read_slot_settled<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
) -> Result<Option<Result<SlotRecord, RecordError>>, Error> {
    let base = sb.slot_offset(slot);
    for _ in 0..SETTLE_READS {
        let a = read_record(m, base)?;
        let b = read_record(m, base + RECORD_BYTES)?;
        if read_record(m, base)? == a {
            return Ok(Some(
                current_slot(SlotRecord::decode(&a), SlotRecord::decode(&b)).0,
            ));
        }
    }
    Ok(None)
}

/// Reads record `index` of table `kind`: the current copy and the copy a write goes to.
///
/// # Errors
///
/// [`Error::Corrupt`] if neither copy is valid; the error of a read.
pub(crate) fn read_table<M: Medium>(
    m: &M,
    sb: &Superblock,
    kind: Kind,
    index: u32,
) -> Result<(TableRecord, u32), Error> {
    let copy = |c| -> Result<_, Error> {
        let b = read_record(m, sb.record_offset(kind, index, c))?;
        Ok(TableRecord::decode(&b, kind, index))
    };
    current([copy(0)?, copy(1)?]).ok_or(Error::Corrupt(kind, index))
}

/// Reads record `index` of table `kind` where the lock holder may be writing it (a host that
/// does not hold the lock, or holds it and reads what may be another's): copy 0, copy 1, then
/// copy 0 again, as [`read_slot_settled`] does. [`read_table`]'s two reads may straddle two
/// writes of the holder and return the record from before both; if copy 0 did not change, every
/// write in between went to copy 1, so the result is the record of some instant of the read (or,
/// while copy 1 is being rewritten by an unfinished transaction, the record from before it).
///
/// # Errors
///
/// [`Error::Corrupt`] if neither copy is valid; [`Error::TimedOut`] if copy 0 kept changing;
/// the error of a read.
pub(crate) fn read_table_settled<M: Medium>(
    m: &M,
    sb: &Superblock,
    kind: Kind,
    index: u32,
) -> Result<TableRecord, Error> {
    let (first, second) = (
        sb.record_offset(kind, index, 0),
        sb.record_offset(kind, index, 1),
    );
    for _ in 0..SETTLE_READS {
        let a = read_record(m, first)?;
        let b = read_record(m, second)?;
        if read_record(m, first)? == a {
            let copies = [
                TableRecord::decode(&a, kind, index),
                TableRecord::decode(&b, kind, index),
            ];
            return current(copies)
                .map(|(r, _)| r)
                .ok_or(Error::Corrupt(kind, index));
        }
        m.sleep_ms(0);
    }
    Err(Error::TimedOut)
}

/// Reads the member entry of `slot` (a settled read: see [`read_table_settled`]).
///
/// # Errors
///
/// [`Error::Corrupt`] if the record has no valid copy or the entry does not decode; those of
/// [`read_table_settled`].
pub(crate) fn read_member<M: Medium>(m: &M, sb: &Superblock, slot: u32) -> Result<Member, Error> {
    member_entry(
        &read_table_settled(m, sb, Kind::Members, slot / ENTRIES_PER_RECORD)?,
        slot,
    )
}

/// Slot `slot`'s entry in member record `rec`.
///
/// # Errors
///
/// [`Error::Corrupt`] for an entry that does not decode.
fn member_entry(rec: &TableRecord, slot: u32) -> Result<Member, Error> {
    rec.entry(slot % ENTRIES_PER_RECORD)
        .and_then(Member::decode)
        .ok_or(Error::Corrupt(Kind::Members, rec.index))
}

/// Reads the member entry of slot `slot` if the transaction that wrote it is committed;
/// `None` while its writer's slot still holds that transaction as its intent (it may yet be
/// rolled back, with the writer's other writes), if the record changed while it was checked, or
/// if it did not read settled. What only an entry read this way says is a fact for good.
///
/// The record is read again after its writer's slot: a writer undoes a transaction before it
/// clears its intent, and never reuses a transaction id, so a record that still carries the
/// transaction once its writer no longer intends it is committed, not rolled back.
///
/// # Errors
///
/// [`Error::Corrupt`] for a member record without a valid copy; the error of a read.
pub(crate) fn read_member_committed<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
) -> Result<Option<Member>, Error> {
    let index = slot / ENTRIES_PER_RECORD;
    let settled = |m: &M| match read_table_settled(m, sb, Kind::Members, index) {
        Ok(rec) => Ok(Some(rec)),
        Err(Error::TimedOut) => Ok(None),
        Err(e) => Err(e),
    };
    let Some(rec) = settled(m)? else {
        return Ok(None);
    };
    let member = member_entry(&rec, slot)?;
    let writer = u32::from(rec.writer_slot);
    if rec.txid == 0 || writer >= sb.geometry.host_slots {
        return Ok(Some(member));
    }
    if let Ok(w) = read_slot(m, sb, writer)?.0 {
        if w.intent == rec.txid {
            return Ok(None);
        }
    }
    Ok((settled(m)? == Some(rec)).then_some(member))
}

/// Reads handoff record `index`.
///
/// # Errors
///
/// [`Error::Corrupt`] if the record has no valid copy or does not decode.
pub(crate) fn read_handoff<M: Medium>(
    m: &M,
    sb: &Superblock,
    index: u32,
) -> Result<Handoff, Error> {
    let (rec, _) = read_table(m, sb, Kind::Handoff, index)?;
    Handoff::decode(&rec.payload).ok_or(Error::Corrupt(Kind::Handoff, index))
}

/// Calls `f` with every data block and its owner entry (settled reads: see
/// [`read_table_settled`]).
///
/// # Errors
///
/// [`Error::Corrupt`] for an owner record without a valid copy.
pub(crate) fn for_each_owner<M: Medium>(
    m: &M,
    sb: &Superblock,
    mut f: impl FnMut(u64, Owner),
) -> Result<(), Error> {
    let blocks = sb.geometry.data_blocks();
    for index in 0..sb.owner_records() {
        let rec = read_table_settled(m, sb, Kind::Owners, index)?;
        for i in 0..ENTRIES_PER_RECORD {
            let block = u64::from(index) * u64::from(ENTRIES_PER_RECORD) + u64::from(i);
            if block < blocks {
                let v = rec.entry(i).ok_or(Error::Corrupt(Kind::Owners, index))?;
                f(block, Owner::decode(v));
            }
        }
    }
    Ok(())
}

/// What tells whether slot `slot` changes: the generation of its current copy, or the checksum
/// bytes of its first copy when neither is valid; `None` for a free slot, which nobody watches.
pub(super) fn slot_mark<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
) -> Result<Option<u64>, Error> {
    Ok(match read_slot(m, sb, slot)?.0 {
        Ok(r) if r.state == SlotState::Free => None,
        Err(RecordError::Zero) => None,
        Ok(r) => Some(r.generation),
        Err(_) => {
            let mut b = [0u8; 8];
            m.read(sb.slot_offset(slot) + RECORD_BYTES - 8, &mut b)?;
            Some(u64::from_le_bytes(b))
        }
    })
}

/// A host's identity in the member table, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberView {
    pub(crate) slot: u32,
    pub(crate) member: Member,
    pub(crate) record: Option<SlotRecord>,
}

/// Calls `f` with every slot's member entry and current slot record.
///
/// # Errors
///
/// [`Error::Corrupt`] for a member record without a valid copy.
pub(crate) fn for_each_member<M: Medium>(
    m: &M,
    sb: &Superblock,
    mut f: impl FnMut(MemberView),
) -> Result<(), Error> {
    for slot in 0..sb.geometry.host_slots {
        let member = read_member(m, sb, slot)?;
        let record = read_slot(m, sb, slot)?.0.ok();
        f(MemberView {
            slot,
            member,
            record,
        });
    }
    Ok(())
}
