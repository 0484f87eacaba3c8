// SPDX-License-Identifier: GPL-2.0

//! The boot check: format an empty portal, wait for a formatter, check a formatted one.

use super::abi::{
    self, Geometry, Handoff, HeaderError, Kind, Member, Owner, Superblock, TableRecord, Timing,
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
/// and marks the superblock ready. Only one host formats a portal ([`open`]): the settle is no
/// rule of the protocol, only a check that catches a second formatter that runs at the same
/// time.
///
/// # Errors
///
/// [`Error::Busy`] if another host's claim replaced this one; [`Error::NotKept`] if the device
/// does not keep the claim; the error of a failed access.
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
    /// The portal was formatted already, by this host's formatter.
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

/// The boot check: formats an empty portal (or one whose format never finished) if this host
/// is the portal's formatter (`formatter`: host index 0), waits for the formatter otherwise,
/// accepts a valid one after checking every table, and refuses anything else. `uuid` names the
/// portal if this host formats it.
///
/// One host formats, so that no host's format can land on a portal another host already uses,
/// however long it paused after it found the portal empty.
///
/// Every wait is bounded: the formatter is waited for at most four of this host's
/// `timing.lease_ms` (or of the formatter's lease, whichever is longer).
///
/// # Errors
///
/// [`Error::Header`] for a header to refuse, [`Error::NotKept`] for a device that does not keep
/// what is written, [`Error::Unformatted`] when the wait for the formatter ends, the error of a
/// failed access or of a table record with no valid copy.
pub(crate) fn open<M: Medium>(
    m: &M,
    device: &Geometry,
    uuid: [u8; 16],
    handoffs: u32,
    timing: Timing,
    formatter: bool,
) -> Result<Opened, Error> {
    let mut start = [0u8; abi::EMPTY_BYTES];
    let mut refused = None;
    let started = m.now_ms();
    let mut lease = timing.lease_ms;
    loop {
        m.invalidate(0, start.len());
        m.read(0, &mut start)?;
        let settle = match abi::boot_state(&start, device) {
            // A superblock that does not check may be one the formatter is writing: refused
            // only if it reads the same after a settle time.
            abi::BootState::Refused(e @ HeaderError::Corrupt { .. }) => {
                let again = Some(start);
                if refused == again {
                    return Err(Error::Header(e));
                }
                refused = again;
                timing.settle_ms
            }
            abi::BootState::Refused(e) => return Err(Error::Header(e)),
            abi::BootState::Formatted(sb) => {
                check_tables(m, &sb)?;
                return Ok(Opened::Joinable(sb));
            }
            // The formatter's own unfinished format (it died, and booted again) starts over.
            abi::BootState::Empty | abi::BootState::Formatting(_) if formatter => {
                return match format(m, uuid, *device, handoffs, timing) {
                    Ok(sb) => Ok(Opened::Formatted(sb)),
                    // Another host formats too: a host index given twice.
                    Err(Error::Busy) => Err(Error::Invalid(
                        "another host formats this portal: only host index 0 does",
                    )),
                    Err(e) => Err(e),
                };
            }
            abi::BootState::Empty => timing.settle_ms,
            abi::BootState::Formatting(sb) => {
                lease = lease.max(sb.timing.lease_ms);
                sb.timing.settle_ms
            }
        };
        if m.now_ms().saturating_sub(started) > 4 * u64::from(lease) {
            return Err(Error::Unformatted);
        }
        m.sleep_ms(settle.max(1));
    }
}
