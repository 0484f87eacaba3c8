// SPDX-License-Identifier: GPL-2.0

//! The boot check: format an empty portal, wait for a formatter, check a formatted one.

use super::abi::{
    self, Geometry, Handoff, Kind, Member, Owner, Superblock, TableRecord, Timing,
    ENTRIES_PER_RECORD, RECORD_BYTES, RECORD_SIZE, SB_READY,
};
use super::medium::{read_record, write_record};
use super::records::{read_superblock, read_table};
use super::{Error, Medium};

/// Checks every record of a formatted portal: the superblock, both copies of each slot and at
/// least one copy of each table record. This is the boot check's full pass.
///
/// # Errors
///
/// [`Error::Corrupt`] for the first record with no valid copy, or whose entries do not decode.
pub(crate) fn check_tables<M: Medium>(m: &M, sb: &Superblock) -> Result<(), Error> {
    for kind in [Kind::Members, Kind::Owners, Kind::Handoff] {
        for index in 0..sb.records(kind) {
            let (rec, _) = read_table(m, sb, kind, index)?;
            let bad = match kind {
                Kind::Members => {
                    (0..ENTRIES_PER_RECORD).any(|i| rec.entry(i).and_then(Member::decode).is_none())
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
/// and marks the superblock ready.
///
/// # Errors
///
/// [`Error::Busy`] if another host's claim won; [`Error::NotKept`] if the device does not keep
/// the claim; the error of a failed access.
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
    // Nobody writes zeros over a superblock: if it reads back empty, the device lost this write
    // (a broken path, a failing device, a read-only mapping). Waiting would never end.
    let back = read_record(m, 0)?;
    if back.iter().all(|&b| b == 0) {
        return Err(Error::NotKept);
    }
    m.sleep_ms(timing.settle_ms);
    match read_superblock(m) {
        Ok(now) if now.uuid == uuid => {}
        _ => return Err(Error::Busy),
    }
    let zero = [0u8; RECORD_SIZE];
    for slot in 0..geometry.host_slots {
        write_record(m, sb.slot_offset(slot), &zero)?;
        write_record(m, sb.slot_offset(slot) + RECORD_BYTES, &zero)?;
    }
    for kind in [Kind::Members, Kind::Owners, Kind::Handoff] {
        for index in 0..sb.records(kind) {
            let mut rec = TableRecord::empty(kind, index);
            match kind {
                Kind::Members => {}
                Kind::Owners => {
                    for i in 0..ENTRIES_PER_RECORD {
                        if !rec.set_entry(i, Owner::FREE.encode()) {
                            return Err(Error::Corrupt(kind, index));
                        }
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

/// How many times [`open`] formats a portal that other hosts keep claiming, before it gives up.
const FORMAT_ATTEMPTS: u32 = 8;

/// The boot check: formats an empty portal (or one whose formatter died), waits for a host that
/// is formatting it, accepts a valid one after checking every table, and refuses anything
/// else. `uuid` names the portal if this host formats it.
///
/// Every wait is bounded: another host's format is waited for at most four of this host's
/// `timing.lease_ms` (or of the formatter's lease, whichever is longer), and at most
/// [`FORMAT_ATTEMPTS`] formats are tried.
///
/// # Errors
///
/// [`Error::Header`] for a header to refuse, [`Error::NotKept`] for a device that does not keep
/// what is written, [`Error::TimedOut`] when a bound is reached, the error of a failed access or
/// of a table record with no valid copy.
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
    let started = m.now_ms();
    let mut attempts = 0u32;
    let mut lease = timing.lease_ms;
    loop {
        let waited = m.now_ms().saturating_sub(started);
        if attempts >= FORMAT_ATTEMPTS || waited > 4 * u64::from(lease) {
            return Err(Error::TimedOut);
        }
        m.invalidate(0, start.len());
        m.read(0, &mut start)?;
        match abi::boot_state(&start, device) {
            abi::BootState::Refused(e) => return Err(Error::Header(e)),
            abi::BootState::Formatted(sb) => {
                check_tables(m, &sb)?;
                return Ok(Opened::Joinable(sb));
            }
            abi::BootState::Empty => {
                attempts += 1;
                match format(m, uuid, *device, handoffs, timing) {
                    Ok(sb) => return Ok(Opened::Formatted(sb)),
                    Err(Error::Busy) => continue,
                    Err(e) => return Err(e),
                }
            }
            abi::BootState::Formatting(sb) => {
                let now = m.now_ms();
                lease = lease.max(sb.timing.lease_ms);
                match formatting {
                    Some((u, g, since)) if u == sb.uuid && g == sb.generation => {
                        // A format takes far less than a lease: its formatter died. Start over.
                        if now.saturating_sub(since) > u64::from(sb.timing.lease_ms) {
                            attempts += 1;
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
