// SPDX-License-Identifier: GPL-2.0

//! The portal protocol: format, join, heartbeat and leases, the portal lock, fencing, block
//! ownership and handoffs, over any [`Medium`].
//!
//! `core`-only, like [`crate::abi`]: the driver runs it over the memremapped header block, and
//! portalctl's tests, stress test, fuzzer and bench run the very same file over a file.
//! `Documentation/admin-guide/mm/cxl-switched-abi.rst` specifies the protocol; this is the
//! reference implementation.
//!
//! No cross-host atomic instruction is used: CXL 2.0 switched memory gives none. Each record has
//! one writer at a time. A host slot is written only by its occupant; the member, owner and
//! handoff tables only by the holder of the portal lock, a bakery lock over the host slots. Each
//! writer writes its record whole, writes it back and fences ([`Medium::write_back`]); each
//! reader invalidates first ([`Medium::invalidate`]). Every record has two copies and a writer
//! overwrites the older, so a write torn by a crash leaves the previous record readable.
//!
//! Timing assumptions, which the lease and settle times of the superblock bound: a host
//! completes a step (a read, a check of its own lease and the write that follows) well within
//! one settle time, and hosts' clocks advance at the same rate to within a small fraction of a
//! lease. A host stops writing to the portal half a lease after its last heartbeat; the others
//! expire it only after they have seen its slot unchanged for a whole lease.

use crate::abi::{
    self, current, Extent, Geometry, Handoff, HandoffState, HeaderError, Kind, Member, MemberState,
    Outcome, Owner, RecordError, SlotRecord, SlotState, Superblock, TableRecord, Timing,
    ENTRIES_PER_RECORD, MAX_EXTENTS, MAX_HOST_SLOTS, QUARANTINED, RECORD_SIZE, SB_READY,
};

/// Shared memory as the protocol sees it: the first bytes of a portal.
pub(crate) trait Medium {
    /// Reads `buf.len()` bytes at device offset `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Writes `data` at device offset `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error>;
    /// Makes the bytes at `offset..offset + len` visible to other hosts: writes back the cache
    /// lines and fences, so that they are in the device before anything written later.
    fn write_back(&self, offset: u64, len: usize);
    /// Drops this host's cached copies of `offset..offset + len`, so that the next read sees
    /// what other hosts wrote back.
    fn invalidate(&self, offset: u64, len: usize);
    /// A monotonic clock, in milliseconds.
    fn now_ms(&self) -> u64;
    /// Waits about `ms` milliseconds (0: yields).
    fn sleep_ms(&self, ms: u32);
}

/// Operations of transactions, as intents record them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Join: a member entry.
    Join = 1,
    /// Claim free blocks.
    Claim = 2,
    /// Return owned blocks.
    Return = 3,
    /// Fence an expired host and reclaim what it owned.
    Reap = 4,
    /// Offer, accept, release or cancel a handoff.
    Handoff = 5,
    /// Leave the portal.
    Leave = 6,
}

/// Why a protocol step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// The medium failed (an offset outside it).
    Medium,
    /// The superblock is not one to use.
    Header(HeaderError),
    /// A table record with no valid copy.
    Corrupt(Kind, u32),
    /// This host's lease ran out: it must stop using the portal and join again.
    Expired,
    /// Another host fenced this one: it must stop using the portal and join again.
    Fenced,
    /// This host's slot holds another host's claim: it must stop using the portal.
    Evicted,
    /// Every host slot is taken.
    NoSlot,
    /// Another host is formatting the portal.
    Busy,
    /// The request does not match the tables (not owned, wrong state, unknown host).
    Invalid(&'static str),
    /// Every handoff record is in use.
    NoRecord,
    /// The lock was not acquired within the bound.
    TimedOut,
}

impl Error {
    /// What to tell the administrator.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Error::Medium => "portal header access out of bounds",
            Error::Header(e) => e.as_str(),
            Error::Corrupt(..) => "a portal table record has no valid copy",
            Error::Expired => "this host's lease expired",
            Error::Fenced => "this host was fenced by another",
            Error::Evicted => "this host's slot was taken by another host",
            Error::NoSlot => "every host slot is taken",
            Error::Busy => "another host is formatting the portal",
            Error::Invalid(why) => why,
            Error::NoRecord => "every handoff record is in use",
            Error::TimedOut => "timed out waiting for the portal lock",
        }
    }

    /// Whether the host must stop using the portal.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, Error::Expired | Error::Fenced | Error::Evicted)
    }
}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Error::Header(e)
    }
}

/// Reads one record, invalidating this host's copy first.
fn read_record<M: Medium>(m: &M, offset: u64) -> Result<[u8; RECORD_SIZE], Error> {
    let mut b = [0u8; RECORD_SIZE];
    // Coherency: another host wrote this record; drop our cached lines before reading.
    m.invalidate(offset, RECORD_SIZE);
    m.read(offset, &mut b)?;
    Ok(b)
}

/// Writes one record, then writes it back and fences.
fn write_record<M: Medium>(m: &M, offset: u64, b: &[u8; RECORD_SIZE]) -> Result<(), Error> {
    m.write(offset, b)?;
    // Coherency: the record must reach the device before anything this host writes next.
    m.write_back(offset, RECORD_SIZE);
    Ok(())
}

/// Reads the superblock.
pub(crate) fn read_superblock<M: Medium>(m: &M) -> Result<Superblock, Error> {
    Ok(Superblock::decode(&read_record(m, 0)?)?)
}

/// Reads both copies of slot `slot`: the current record (if any copy is valid) and the copy
/// the next write goes to.
pub(crate) fn read_slot<M: Medium>(
    m: &M,
    sb: &Superblock,
    slot: u32,
) -> Result<(Result<SlotRecord, RecordError>, u32), Error> {
    let base = sb.slot_offset(slot);
    let a = SlotRecord::decode(&read_record(m, base)?);
    let b = SlotRecord::decode(&read_record(m, base + RECORD_SIZE as u64)?);
    Ok(match (a, b) {
        (Ok(a), Ok(b)) if b.generation > a.generation => (Ok(b), 0),
        (Ok(a), _) => (Ok(a), 1),
        (Err(_), Ok(b)) => (Ok(b), 0),
        // Neither valid: report the first copy's reason; a write goes to copy 0.
        (Err(e), Err(_)) => (Err(e), 0),
    })
}

/// Reads record `index` of table `kind`: the current copy and the copy a write goes to.
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

/// Reads the member entry of `slot`.
pub(crate) fn read_member<M: Medium>(m: &M, sb: &Superblock, slot: u32) -> Result<Member, Error> {
    let index = slot / ENTRIES_PER_RECORD as u32;
    let (rec, _) = read_table(m, sb, Kind::Members, index)?;
    Member::decode(rec.entry((slot % ENTRIES_PER_RECORD as u32) as usize))
        .ok_or(Error::Corrupt(Kind::Members, index))
}

/// Reads handoff record `index`.
pub(crate) fn read_handoff<M: Medium>(
    m: &M,
    sb: &Superblock,
    index: u32,
) -> Result<Handoff, Error> {
    let (rec, _) = read_table(m, sb, Kind::Handoff, index)?;
    Handoff::decode(&rec.payload).ok_or(Error::Corrupt(Kind::Handoff, index))
}

/// Calls `f` with every data block and its owner entry.
pub(crate) fn for_each_owner<M: Medium>(
    m: &M,
    sb: &Superblock,
    mut f: impl FnMut(u64, Owner),
) -> Result<(), Error> {
    let blocks = sb.geometry.data_blocks();
    for index in 0..sb.owner_records() {
        let (rec, _) = read_table(m, sb, Kind::Owners, index)?;
        for i in 0..ENTRIES_PER_RECORD {
            let block = u64::from(index) * ENTRIES_PER_RECORD as u64 + i as u64;
            if block < blocks {
                f(block, Owner::decode(rec.entry(i)));
            }
        }
    }
    Ok(())
}

/// Checks every record of a formatted portal: the superblock, both copies of each slot and at
/// least one copy of each table record. This is the boot check's full pass.
pub(crate) fn check_tables<M: Medium>(m: &M, sb: &Superblock) -> Result<(), Error> {
    for kind in [Kind::Members, Kind::Owners, Kind::Handoff] {
        for index in 0..sb.records(kind) {
            let (rec, _) = read_table(m, sb, kind, index)?;
            let bad = match kind {
                Kind::Members => {
                    (0..ENTRIES_PER_RECORD).any(|i| Member::decode(rec.entry(i)).is_none())
                }
                Kind::Owners => false,
                Kind::Handoff => Handoff::decode(&rec.payload).is_none(),
            };
            if bad {
                return Err(Error::Corrupt(kind, index));
            }
        }
    }
    Ok(())
}

/// Formats a portal: claims the superblock, waits for the claim to settle, writes every table
/// and marks the superblock ready. Returns [`Error::Busy`] if another host's claim won.
pub(crate) fn format<M: Medium>(
    m: &M,
    uuid: [u8; 16],
    geometry: Geometry,
    handoffs: u32,
    timing: Timing,
) -> Result<Superblock, Error> {
    let mut sb = Superblock::new(uuid, geometry, handoffs, timing);
    // Validate what we are about to write, as any reader will.
    let claim = sb.encode();
    Superblock::decode(&claim)?;
    write_record(m, 0, &claim)?;
    m.sleep_ms(timing.settle_ms);
    match read_superblock(m) {
        Ok(now) if now.uuid == uuid => {}
        _ => return Err(Error::Busy),
    }
    let zero = [0u8; RECORD_SIZE];
    for slot in 0..geometry.host_slots {
        write_record(m, sb.slot_offset(slot), &zero)?;
        write_record(m, sb.slot_offset(slot) + RECORD_SIZE as u64, &zero)?;
    }
    for kind in [Kind::Members, Kind::Owners, Kind::Handoff] {
        for index in 0..sb.records(kind) {
            let mut rec = TableRecord::empty(kind, index);
            match kind {
                Kind::Members => {}
                Kind::Owners => {
                    for i in 0..ENTRIES_PER_RECORD {
                        rec.set_entry(i, Owner::FREE.encode());
                    }
                }
                Kind::Handoff => Handoff::FREE.encode(&mut rec.payload),
            }
            write_record(m, sb.record_offset(kind, index, 0), &rec.encode())?;
            write_record(m, sb.record_offset(kind, index, 1), &zero)?;
        }
    }
    sb.state = SB_READY;
    sb.generation += 1;
    write_record(m, 0, &sb.encode())?;
    Ok(sb)
}

/// What [`open`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opened {
    /// This host formatted the portal.
    Formatted(Superblock),
    /// The portal was formatted already (or by another host racing this one).
    Joinable(Superblock),
}

impl Opened {
    /// The superblock.
    pub(crate) fn superblock(&self) -> &Superblock {
        match self {
            Opened::Formatted(sb) | Opened::Joinable(sb) => sb,
        }
    }
}

/// The boot check: formats an empty portal (or one whose formatter died), waits for a host that
/// is formatting it, accepts a valid one after checking every table, and refuses anything
/// else. `uuid` names the portal if this host formats it.
pub(crate) fn open<M: Medium>(
    m: &M,
    device: &Geometry,
    uuid: [u8; 16],
    handoffs: u32,
    timing: Timing,
) -> Result<Opened, Error> {
    let mut start = [0u8; abi::EMPTY_BYTES];
    // The formatter's claim, and when this host first saw it unchanged.
    let mut formatting: Option<([u8; 16], u64, u64)> = None;
    loop {
        m.invalidate(0, start.len());
        m.read(0, &mut start)?;
        match abi::boot_state(&start, device) {
            abi::BootState::Refused(e) => return Err(Error::Header(e)),
            abi::BootState::Formatted(sb) => {
                check_tables(m, &sb)?;
                return Ok(Opened::Joinable(sb));
            }
            abi::BootState::Empty => match format(m, uuid, *device, handoffs, timing) {
                Ok(sb) => return Ok(Opened::Formatted(sb)),
                Err(Error::Busy) => continue,
                Err(e) => return Err(e),
            },
            abi::BootState::Formatting(sb) => {
                let now = m.now_ms();
                match formatting {
                    Some((u, g, since)) if u == sb.uuid && g == sb.generation => {
                        // A format takes far less than a lease: its formatter died. Start over.
                        if now.saturating_sub(since) > u64::from(sb.timing.lease_ms) {
                            match format(m, uuid, *device, handoffs, timing) {
                                Ok(sb) => return Ok(Opened::Formatted(sb)),
                                Err(Error::Busy) => formatting = None,
                                Err(e) => return Err(e),
                            }
                            continue;
                        }
                    }
                    _ => formatting = Some((sb.uuid, sb.generation, now)),
                }
                m.sleep_ms(sb.timing.settle_ms);
            }
        }
    }
}

/// What tells whether slot `slot` changes: the generation of its current copy, or the checksum
/// bytes of its first copy when neither is valid; `None` for a free slot, which nobody watches.
fn slot_mark<M: Medium>(m: &M, sb: &Superblock, slot: u32) -> Result<Option<u64>, Error> {
    Ok(match read_slot(m, sb, slot)?.0 {
        Ok(r) if r.state == SlotState::Free => None,
        Err(RecordError::Zero) => None,
        Ok(r) => Some(r.generation),
        Err(_) => {
            let mut b = [0u8; 8];
            m.read(sb.slot_offset(slot) + RECORD_SIZE as u64 - 8, &mut b)?;
            Some(u64::from_le_bytes(b))
        }
    })
}

/// What this host last saw of another host's slot, to tell a live host from an expired one.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The generation of the current copy, or the CRC of a slot without a valid copy.
    mark: u64,
    /// When the mark last changed (this host's clock); `u64::MAX`: not watched.
    since_ms: u64,
}

const UNSEEN: Seen = Seen {
    mark: 0,
    since_ms: u64::MAX,
};

/// A host's membership of a portal.
///
/// # Invariants
///
/// `slot < sb.geometry.host_slots`; `rec` is what this host last wrote to its slot, and
/// `next_copy` the copy of the slot its next write goes to.
pub(crate) struct Host {
    sb: Superblock,
    slot: u32,
    rec: SlotRecord,
    next_copy: u32,
    txid: u64,
    renewed_ms: u64,
    seen: [Seen; MAX_HOST_SLOTS as usize],
}

/// The operations [`Host::update_owners`] and [`Host::update_handoff`] log and undo.
struct Tx {
    id: u64,
}

impl Host {
    /// The portal's superblock.
    pub(crate) fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// This host's slot.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// This host's epoch: the member table's count of joins to its slot.
    pub(crate) fn epoch(&self) -> u32 {
        self.rec.epoch
    }

    /// Joins a portal: claims a free host slot (a claim that must survive a settle time, as two
    /// hosts may write the same slot at once), then, under the portal lock, reaps what expired,
    /// fences a previous member of the slot that did not leave, and records this host's new
    /// epoch in the member table.
    ///
    /// A host that finds no free slot watches the others for a lease and takes one whose
    /// occupant is gone: a claim never finished, or a member nobody reaped yet.
    pub(crate) fn join<M: Medium>(m: &M, sb: Superblock, uuid: [u8; 16]) -> Result<Self, Error> {
        let slots = sb.geometry.host_slots;
        let first = u32::from(uuid[0]) % slots;
        for n in 0..slots {
            let slot = (first + n) % slots;
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
        let mut marks = [None; MAX_HOST_SLOTS as usize];
        for (slot, mark) in (0..slots).zip(marks.iter_mut()) {
            *mark = slot_mark(m, &sb, slot)?;
        }
        m.sleep_ms(sb.timing.lease_ms + sb.timing.settle_ms);
        for n in 0..slots {
            let slot = (first + n) % slots;
            let before = marks[slot as usize];
            if before.is_some() && slot_mark(m, &sb, slot)? == before {
                if let Some(host) = Self::try_slot(m, sb, slot, uuid)? {
                    return Ok(host);
                }
            }
        }
        Err(Error::NoSlot)
    }

    /// Claims `slot` (a claim that must survive a settle time, as two hosts may write the same
    /// slot at once), then finishes the join. Returns `None` if another host's claim won.
    fn try_slot<M: Medium>(
        m: &M,
        sb: Superblock,
        slot: u32,
        uuid: [u8; 16],
    ) -> Result<Option<Self>, Error> {
        let (rec, next_copy) = read_slot(m, &sb, slot)?;
        let claim = SlotRecord {
            state: SlotState::Claiming,
            generation: rec.map_or(0, |r| r.generation) + 1,
            host: uuid,
            ..SlotRecord::FREE
        };
        write_record(
            m,
            sb.slot_offset(slot) + u64::from(next_copy) * RECORD_SIZE as u64,
            &claim.encode(),
        )?;
        let claimed = m.now_ms();
        m.sleep_ms(sb.timing.settle_ms);
        match read_slot(m, &sb, slot)?.0 {
            Ok(r) if r == claim => {}
            // Another host claimed it at the same time and won.
            _ => return Ok(None),
        }
        let mut host = Host {
            sb,
            slot,
            rec: claim,
            next_copy: 1 - next_copy,
            txid: 0,
            renewed_ms: claimed,
            seen: [UNSEEN; MAX_HOST_SLOTS as usize],
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

    fn finish_join<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
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

    /// Writes this host's slot record (to the older copy) and remembers it.
    fn write_slot<M: Medium>(&mut self, m: &M, mut rec: SlotRecord) -> Result<(), Error> {
        rec.generation = self.rec.generation + 1;
        let off = self.sb.slot_offset(self.slot) + u64::from(self.next_copy) * RECORD_SIZE as u64;
        write_record(m, off, &rec.encode())?;
        self.rec = rec;
        self.next_copy = 1 - self.next_copy;
        Ok(())
    }

    /// Checks that this host may still write to the portal: its lease is not half gone.
    fn guard<M: Medium>(&self, m: &M) -> Result<(), Error> {
        let held = m.now_ms().saturating_sub(self.renewed_ms);
        if held > u64::from(self.sb.timing.lease_ms / 2) {
            return Err(Error::Expired);
        }
        Ok(())
    }

    /// Whether this host may still use what it owns: its lease is not half gone. A host checks
    /// this before it touches the memory of a block it owns, as it does before every write to
    /// the header.
    pub(crate) fn holds_lease<M: Medium>(&self, m: &M) -> bool {
        self.guard(m).is_ok()
    }

    /// Renews this host's lease: checks that its slot is still its own and that it was not
    /// fenced, then writes its slot with the next generation.
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
    pub(crate) fn heartbeat<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
        self.renew(m)?;
        if !self.observe(m)? {
            return Ok(0);
        }
        self.locked_op(m, |h, m| h.reap_expired(m))
    }

    /// Updates what this host saw of every other slot; returns whether one looks expired.
    fn observe<M: Medium>(&mut self, m: &M) -> Result<bool, Error> {
        let now = m.now_ms();
        let mut any = false;
        for j in 0..self.sb.geometry.host_slots {
            if j == self.slot {
                continue;
            }
            self.observe_one(m, j, now)?;
            any |= self.expired(m, j);
        }
        Ok(any)
    }

    fn expired(&self, m: &impl Medium, j: u32) -> bool {
        let s = &self.seen[j as usize];
        s.since_ms != u64::MAX
            && m.now_ms().saturating_sub(s.since_ms) > u64::from(self.sb.timing.lease_ms)
    }

    /// Takes the portal lock: Lamport's bakery over the host slots. Each slot's `choosing` and
    /// `ticket` are written only by its host; a slot read while it is being written yields its
    /// previous copy, which the bakery tolerates. A host whose lease expired is not waited for
    /// (it stopped writing half a lease ago and is reaped once the lock is held).
    fn lock<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        let slots = self.sb.geometry.host_slots;
        self.write_slot(
            m,
            SlotRecord {
                choosing: true,
                ..self.rec
            },
        )?;
        let mut max = 0;
        for j in 0..slots {
            if let Ok(r) = read_slot(m, &self.sb, j)?.0 {
                if r.state != SlotState::Free && j != self.slot {
                    max = max.max(r.ticket);
                }
            }
        }
        self.guard(m)?;
        self.write_slot(
            m,
            SlotRecord {
                choosing: false,
                ticket: max + 1,
                ..self.rec
            },
        )?;
        let lease = u64::from(self.sb.timing.lease_ms);
        let start = m.now_ms();
        // Watch every slot from now, so that the leases of several dead hosts run out together.
        self.observe(m)?;
        for j in 0..slots {
            if j == self.slot {
                continue;
            }
            // A fenced or departed member's last ticket does not count; a joining host's does.
            let live = read_member(m, &self.sb, j)?;
            let counts = |r: &SlotRecord| match r.state {
                SlotState::Free => false,
                SlotState::Claiming => true,
                SlotState::Member => live.state == MemberState::Live && live.epoch == r.epoch,
            };
            loop {
                self.observe_one(m, j, m.now_ms())?;
                let wait = match read_slot(m, &self.sb, j)?.0 {
                    Ok(r) if counts(&r) && !self.expired(m, j) => {
                        r.choosing
                            || (r.ticket != 0 && (r.ticket, j) < (self.rec.ticket, self.slot))
                    }
                    _ => false,
                };
                if !wait {
                    break;
                }
                let now = m.now_ms();
                if now.saturating_sub(start) > 4 * lease {
                    let _ = self.write_slot(
                        m,
                        SlotRecord {
                            ticket: 0,
                            ..self.rec
                        },
                    );
                    return Err(Error::TimedOut);
                }
                if now.saturating_sub(self.renewed_ms) > lease / 4 {
                    if let Err(e) = self.renew(m) {
                        if !e.is_fatal() {
                            let _ = self.write_slot(
                                m,
                                SlotRecord {
                                    ticket: 0,
                                    ..self.rec
                                },
                            );
                        }
                        return Err(e);
                    }
                }
                m.sleep_ms(0);
            }
        }
        // Holding the lock: our own lease must still be good for what we write under it.
        self.renew(m)?;
        Ok(())
    }

    /// Notes whether slot `j` changed since this host last looked. A free slot is not watched;
    /// a slot with no valid copy is watched through the checksum bytes of its first copy.
    fn observe_one<M: Medium>(&mut self, m: &M, j: u32, now: u64) -> Result<(), Error> {
        let mark = slot_mark(m, &self.sb, j)?;
        let s = &mut self.seen[j as usize];
        let Some(mark) = mark else {
            *s = UNSEEN;
            return Ok(());
        };
        if s.since_ms == u64::MAX || s.mark != mark {
            *s = Seen {
                mark,
                since_ms: now,
            };
        }
        Ok(())
    }

    fn unlock<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.write_slot(
            m,
            SlotRecord {
                ticket: 0,
                ..self.rec
            },
        )
    }

    /// Runs `f` holding the lock, and unlocks whatever it returns.
    fn locked_op<M: Medium, T>(
        &mut self,
        m: &M,
        f: impl FnOnce(&mut Self, &M) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.lock(m)?;
        let r = f(self, m);
        let u = if matches!(r, Err(e) if e.is_fatal()) {
            Ok(())
        } else {
            self.unlock(m)
        };
        let v = r?;
        u?;
        Ok(v)
    }

    /// Runs `f` holding the portal lock, and nothing else: for tests that check mutual
    /// exclusion and for lock latency benchmarks.
    pub(crate) fn locked<M: Medium, T>(
        &mut self,
        m: &M,
        f: impl FnOnce(&M) -> T,
    ) -> Result<T, Error> {
        self.locked_op(m, |_, m| Ok(f(m)))
    }

    /// Starts a transaction: records the intent in this host's slot.
    fn begin<M: Medium>(&mut self, m: &M, op: Op) -> Result<Tx, Error> {
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
    fn commit<M: Medium>(&mut self, m: &M, _tx: Tx) -> Result<(), Error> {
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
    fn put<M: Medium>(&mut self, m: &M, tx: &Tx, mut rec: TableRecord) -> Result<(), Error> {
        self.guard(m)?;
        let (cur, next) = read_table(m, &self.sb, rec.kind, rec.index)?;
        let ours = cur.txid == tx.id
            && cur.writer_slot == self.slot as u16
            && cur.writer_epoch == self.rec.epoch;
        let copy = if ours { 1 - next } else { next };
        rec.generation = cur.generation + u64::from(!ours);
        rec.txid = tx.id;
        rec.writer_slot = self.slot as u16;
        rec.writer_epoch = self.rec.epoch;
        write_record(
            m,
            self.sb.record_offset(rec.kind, rec.index, copy),
            &rec.encode(),
        )
    }

    fn set_member<M: Medium>(&mut self, m: &M, tx: &Tx, slot: u32, v: Member) -> Result<(), Error> {
        let index = slot / ENTRIES_PER_RECORD as u32;
        let (mut rec, _) = read_table(m, &self.sb, Kind::Members, index)?;
        rec.set_entry((slot % ENTRIES_PER_RECORD as u32) as usize, v.encode());
        self.put(m, tx, rec)
    }

    /// Rewrites the owner entries `f` changes, each record at most once. Returns the count.
    fn update_owners<M: Medium>(
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
                let block = u64::from(index) * ENTRIES_PER_RECORD as u64 + i as u64;
                if block >= blocks {
                    break;
                }
                let old = Owner::decode(rec.entry(i));
                if let Some(new) = f(block, old) {
                    if new != old {
                        rec.set_entry(i, new.encode());
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

    fn put_handoff<M: Medium>(
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

    /// Undoes transaction `txid` of the host in `slot` at `epoch`, which died before committing
    /// it: every record whose current copy that transaction wrote goes back to its other copy.
    /// Nothing else wrote these records since: the host died holding the lock.
    fn rollback<M: Medium>(
        &mut self,
        m: &M,
        slot: u32,
        epoch: u32,
        txid: u64,
    ) -> Result<(), Error> {
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
                self.guard(m)?;
                write_record(m, self.sb.record_offset(kind, index, 1 - next), &zero)?;
            }
        }
        Ok(())
    }

    /// Fences and reaps every member whose lease expired. Called holding the lock.
    ///
    /// First every expired member's unfinished transaction is rolled back, then each is reaped:
    /// a reap rewrites records, and must not meet another dead host's half-written ones.
    fn reap_expired<M: Medium>(&mut self, m: &M) -> Result<u32, Error> {
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
    fn expired_member<M: Medium>(&self, m: &M, j: u32) -> Result<Option<(u32, u64)>, Error> {
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
    fn reap<M: Medium>(&mut self, m: &M, slot: u32, epoch: u32, intent: u64) -> Result<(), Error> {
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
                slot: self.slot as u16,
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

    /// Ends handoff `index`: the target keeps the blocks (`released`) or they go back to the
    /// source; the record is freed with its outcome.
    fn end_handoff<M: Medium>(
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
        let tag = index as u16 + 1;
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

    /// Claims up to `want` free blocks, lowest first. Returns how many it claimed.
    pub(crate) fn claim<M: Medium>(&mut self, m: &M, want: u64) -> Result<u64, Error> {
        self.locked_op(m, |h, m| {
            h.reap_expired(m)?;
            let tx = h.begin(m, Op::Claim)?;
            let (me, epoch) = (h.slot as u16, h.rec.epoch);
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
    pub(crate) fn give_back<M: Medium>(
        &mut self,
        m: &M,
        pick: impl FnMut(u64) -> bool,
    ) -> Result<u64, Error> {
        self.let_go(m, pick, Owner::FREE)
    }

    /// Quarantines the owned blocks (not in a handoff) for which `pick` says so: this host
    /// cannot stop using them (their memory could not be offlined), so nobody may claim them.
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
    fn let_go<M: Medium>(
        &mut self,
        m: &M,
        mut pick: impl FnMut(u64) -> bool,
        to: Owner,
    ) -> Result<u64, Error> {
        self.locked_op(m, |h, m| {
            let tx = h.begin(m, Op::Return)?;
            let (me, epoch) = (h.slot as u16, h.rec.epoch);
            let n = h.update_owners(m, &tx, |b, o| {
                (o.slot == me && o.epoch == epoch && o.handoff == 0 && pick(b)).then_some(to)
            })?;
            h.commit(m, tx)?;
            Ok(n)
        })
    }

    /// Calls `f` with every block this host owns and whether it is in a handoff.
    pub(crate) fn owned<M: Medium>(
        &self,
        m: &M,
        mut f: impl FnMut(u64, bool),
    ) -> Result<(), Error> {
        let (me, epoch) = (self.slot as u16, self.rec.epoch);
        for_each_owner(m, &self.sb, |b, o| {
            if o.slot == me && o.epoch == epoch {
                f(b, o.handoff != 0);
            }
        })
    }

    /// Offers `extents` of owned blocks to the host in slot `target`. Returns the handoff
    /// record's index and the handoff's id. The blocks stay this host's until accepted.
    pub(crate) fn offer<M: Medium>(
        &mut self,
        m: &M,
        target: u32,
        extents: &[Extent],
    ) -> Result<(u32, u64), Error> {
        if extents.is_empty() || extents.len() > MAX_EXTENTS || target == self.slot {
            return Err(Error::Invalid(
                "an offer needs 1..=8 extents and another host",
            ));
        }
        if target >= self.sb.geometry.host_slots {
            return Err(Error::Invalid("no such host slot"));
        }
        let blocks = self.sb.geometry.data_blocks();
        let mut h = Handoff::FREE;
        h.nr_extents = extents.len() as u32;
        for (i, e) in extents.iter().enumerate() {
            let end = u64::from(e.start) + u64::from(e.count);
            if e.count == 0 || end > blocks {
                return Err(Error::Invalid("an extent is empty or past the last block"));
            }
            if extents[..i]
                .iter()
                .any(|o| e.start < o.start + o.count && o.start < e.start + e.count)
            {
                return Err(Error::Invalid("extents overlap"));
            }
            h.extents[i] = *e;
        }
        self.locked_op(m, |me, m| {
            me.reap_expired(m)?;
            let tm = read_member(m, &me.sb, target)?;
            if tm.state != MemberState::Live {
                return Err(Error::Invalid("the target is not a live member"));
            }
            let (slot, epoch) = (me.slot as u16, me.rec.epoch);
            let mut mine = 0u64;
            for_each_owner(m, &me.sb, |b, o| {
                if in_extents(&h, b) && o.slot == slot && o.epoch == epoch && o.handoff == 0 {
                    mine += 1;
                }
            })?;
            let want: u64 = h.extents().iter().map(|e| u64::from(e.count)).sum();
            if mine != want {
                return Err(Error::Invalid(
                    "a block offered is not this host's, or in a handoff",
                ));
            }
            let mut index = None;
            for i in 0..me.sb.handoffs {
                if read_handoff(m, &me.sb, i)?.state == HandoffState::Free {
                    index = Some(i);
                    break;
                }
            }
            let index = index.ok_or(Error::NoRecord)?;
            let tx = me.begin(m, Op::Handoff)?;
            h.id = tx.id | (u64::from(slot) << 56);
            h.state = HandoffState::Offered;
            h.source = slot;
            h.source_epoch = epoch;
            h.target = target as u16;
            h.target_epoch = tm.epoch;
            let tag = index as u16 + 1;
            me.update_owners(m, &tx, |b, o| {
                in_extents(&h, b).then_some(Owner { handoff: tag, ..o })
            })?;
            me.put_handoff(m, &tx, index, &h)?;
            me.commit(m, tx)?;
            Ok((index, h.id))
        })
    }

    fn handoff_step<M: Medium>(
        &mut self,
        m: &M,
        index: u32,
        id: u64,
        step: impl FnOnce(&Handoff, u16, u32) -> Result<Option<bool>, Error>,
    ) -> Result<(), Error> {
        if index >= self.sb.handoffs {
            return Err(Error::Invalid("no such handoff record"));
        }
        self.locked_op(m, |me, m| {
            me.reap_expired(m)?;
            let h = read_handoff(m, &me.sb, index)?;
            if h.id != id || h.state == HandoffState::Free {
                return Err(Error::Invalid("no such handoff in progress"));
            }
            let tx = me.begin(m, Op::Handoff)?;
            match step(&h, me.slot as u16, me.rec.epoch)? {
                // Accept: the target owns the blocks; the source keeps its pages until release.
                None => {
                    let tag = index as u16 + 1;
                    let owner = Owner {
                        slot: h.target,
                        handoff: tag,
                        epoch: h.target_epoch,
                    };
                    me.update_owners(m, &tx, |b, o| {
                        (o.handoff == tag && in_extents(&h, b)).then_some(owner)
                    })?;
                    me.put_handoff(
                        m,
                        &tx,
                        index,
                        &Handoff {
                            state: HandoffState::Accepted,
                            ..h
                        },
                    )?;
                }
                Some(released) => me.end_handoff(m, &tx, index, &h, released)?,
            }
            me.commit(m, tx)
        })
    }

    /// Accepts handoff `index` (id `id`) offered to this host: its blocks become this host's.
    pub(crate) fn accept<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            if h.state != HandoffState::Offered || h.target != me || h.target_epoch != epoch {
                return Err(Error::Invalid("the handoff is not offered to this host"));
            }
            Ok(None)
        })
    }

    /// Releases accepted handoff `index`: the source let go of its pages; the handoff ends.
    pub(crate) fn release<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            if h.state != HandoffState::Accepted || h.source != me || h.source_epoch != epoch {
                return Err(Error::Invalid("the handoff is not accepted from this host"));
            }
            Ok(Some(true))
        })
    }

    /// Cancels handoff `index` before it is accepted (source or target): the blocks stay the
    /// source's.
    pub(crate) fn cancel<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            let party = (h.source == me && h.source_epoch == epoch)
                || (h.target == me && h.target_epoch == epoch);
            if h.state != HandoffState::Offered || !party {
                return Err(Error::Invalid("the handoff is not an offer of this host's"));
            }
            Ok(Some(false))
        })
    }

    /// Leaves the portal: ends this host's handoffs as if it had died, frees the member entry
    /// and the blocks it still owns, and frees its slot. The caller must have stopped using the
    /// blocks. The host is no member afterwards, whatever this returns: drop it.
    pub(crate) fn leave<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.locked_op(m, |me, m| {
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

fn in_extents(h: &Handoff, block: u64) -> bool {
    h.extents()
        .iter()
        .any(|e| block >= u64::from(e.start) && block < u64::from(e.start) + u64::from(e.count))
}

/// A host's identity in the member table, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberView {
    pub(crate) slot: u32,
    pub(crate) member: Member,
    pub(crate) record: Option<SlotRecord>,
}

/// Calls `f` with every slot's member entry and current slot record.
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

#[cfg(CONFIG_CXL_SWITCHED_KUNIT_TEST)]
#[kernel::macros::kunit_tests(cxl_switched_protocol)]
mod tests {
    use super::Error;
    use super::*;
    use core::cell::{Cell, RefCell};
    use kernel::prelude::*;

    const GEO: Geometry = Geometry {
        block_size: 64 << 10,
        block_count: 21,
        header_blocks: 1,
        host_slots: 4,
    };
    const TIMING: Timing = Timing {
        lease_ms: 1000,
        settle_ms: 10,
    };

    /// Memory shared by simulated hosts, with a clock that moves when one sleeps; a host may die
    /// at its n-th write, which lands torn.
    struct Sim {
        bytes: RefCell<KVec<u8>>,
        clock: Cell<u64>,
        budget: Cell<u64>,
    }

    impl Sim {
        fn new() -> Result<Self> {
            let bytes = KVec::from_elem(0u8, GEO.block_size as usize, GFP_KERNEL)?;
            Ok(Sim {
                bytes: RefCell::new(bytes),
                clock: Cell::new(1000),
                budget: Cell::new(u64::MAX),
            })
        }
    }

    impl Medium for Sim {
        fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), Error> {
            let b = self.bytes.borrow();
            let s = b
                .get(off as usize..off as usize + buf.len())
                .ok_or(Error::Medium)?;
            buf.copy_from_slice(s);
            Ok(())
        }

        fn write(&self, off: u64, data: &[u8]) -> Result<(), Error> {
            let mut b = self.bytes.borrow_mut();
            let s = b
                .get_mut(off as usize..off as usize + data.len())
                .ok_or(Error::Medium)?;
            match self.budget.get() {
                0 => return Err(Error::Medium),
                1 => {
                    self.budget.set(0);
                    s[..data.len() / 2].copy_from_slice(&data[..data.len() / 2]);
                    return Err(Error::Medium);
                }
                n => self.budget.set(n.saturating_sub(1)),
            }
            s.copy_from_slice(data);
            Ok(())
        }

        fn write_back(&self, _off: u64, _len: usize) {}

        fn invalidate(&self, _off: u64, _len: usize) {}

        fn now_ms(&self) -> u64 {
            self.clock.get()
        }

        fn sleep_ms(&self, ms: u32) {
            self.clock.set(self.clock.get() + u64::from(ms.max(1)));
        }
    }

    fn join(m: &Sim, n: u8) -> Result<KBox<Host>> {
        let sb = *open(m, &GEO, [n + 100; 16], 4, TIMING)
            .map_err(|_| EIO)?
            .superblock();
        Ok(KBox::new(
            Host::join(m, sb, [n; 16]).map_err(|_| EIO)?,
            GFP_KERNEL,
        )?)
    }

    fn count(h: &Host, m: &Sim) -> u64 {
        let mut n = 0;
        assert!(h.owned(m, |_, _| n += 1).is_ok());
        n
    }

    #[test]
    fn format_join_claim_disjoint() -> Result {
        let m = Sim::new()?;
        let (mut a, mut b) = (join(&m, 1)?, join(&m, 2)?);
        assert_ne!(a.slot(), b.slot());
        assert_eq!(a.claim(&m, 12), Ok(12));
        assert_eq!(b.claim(&m, 12), Ok(8));
        let mut both = 0;
        let (sa, sb) = (a.slot() as u16, b.slot() as u16);
        assert!(for_each_owner(&m, a.superblock(), |_, o| both +=
            u32::from(o.slot == sa) + u32::from(o.slot == sb))
        .is_ok());
        assert_eq!(both, 20);
        assert_eq!(a.give_back(&m, |blk| blk < 4), Ok(4));
        assert_eq!(count(&a, &m), 8);
        Ok(())
    }

    #[test]
    fn expired_host_is_reaped_after_its_lease() -> Result {
        let m = Sim::new()?;
        let (mut a, mut b) = (join(&m, 1)?, join(&m, 2)?);
        assert_eq!(a.claim(&m, 5), Ok(5));
        // b heartbeats; a is silent. Nothing before a lease, everything after.
        for i in 0..15 {
            m.sleep_ms(200);
            assert!(b.heartbeat(&m).is_ok());
            if i == 2 {
                assert_eq!(count(&b, &m), 0);
            }
        }
        assert_eq!(count(&b, &m), 5);
        assert_eq!(a.renew(&m), Err(Error::Expired));
        assert_eq!(
            read_member(&m, a.superblock(), a.slot()).map(|x| x.state),
            Ok(MemberState::Fenced)
        );
        Ok(())
    }

    #[test]
    fn handoff_and_crash_rollback() -> Result {
        let m = Sim::new()?;
        let (mut a, mut b) = (join(&m, 1)?, join(&m, 2)?);
        assert_eq!(a.claim(&m, 4), Ok(4));
        let ext = [Extent { start: 0, count: 2 }];
        let (i, id) = a.offer(&m, b.slot(), &ext).map_err(|_| EIO)?;
        assert!(b.accept(&m, i, id).is_ok());
        assert!(a.release(&m, i, id).is_ok());
        assert_eq!((count(&a, &m), count(&b, &m)), (2, 2));
        // a dies at the fourth write of a claim (inside its transaction): b rolls it back,
        // fences a and takes its two blocks; nothing is half-claimed.
        m.budget.set(4);
        assert!(a.claim(&m, 3).is_err());
        m.budget.set(u64::MAX);
        for _ in 0..15 {
            m.sleep_ms(200);
            assert!(b.heartbeat(&m).is_ok());
        }
        assert_eq!(count(&b, &m), 4);
        let mut free = 0;
        assert!(for_each_owner(&m, b.superblock(), |_, o| free += u32::from(o.is_free())).is_ok());
        assert_eq!(free, 16);
        Ok(())
    }
}
