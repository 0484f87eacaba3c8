//! Peer data is untrusted input: records that a buggy or malicious peer wrote into the portal,
//! with valid checksums, must make a host refuse the portal, never panic (these tests build
//! with overflow checks on, as the lab kernel does).

use crate::abi::{
    boot_state, BootState, HeaderError, Kind, SlotRecord, SlotState, Superblock, TableRecord,
    Timing, RECORD_BYTES, RECORD_SIZE,
};
use crate::medium::{SharedMem, SimHost};
use crate::protocol::{self, Error, Host};

use crate::fuzzing::{GEO, TIMING};

fn uuid(n: u8) -> [u8; 16] {
    [n; 16]
}

/// A formatted portal with one member, host 1.
fn formatted() -> (SharedMem, Superblock) {
    let mem = SharedMem::new(GEO.block_size as usize);
    let sb = *protocol::boot::open(&mem.host(), &GEO, uuid(200), 4, TIMING, true)
        .unwrap()
        .superblock();
    (mem, sb)
}

fn put(mem: &SharedMem, offset: u64, rec: &[u8; RECORD_SIZE]) {
    let at = offset as usize;
    mem.bytes_mut()[at..at + RECORD_SIZE].copy_from_slice(rec);
}

/// Writes `rec` into both copies of slot `slot`, sealed.
fn forge_slot(mem: &SharedMem, sb: &Superblock, slot: u32, rec: SlotRecord) {
    let b = rec.encode();
    put(mem, sb.slot_offset(slot), &b);
    put(mem, sb.slot_offset(slot) + RECORD_BYTES, &b);
}

/// What joining does on `mem`: the result, which must be an error and not a panic.
fn join(m: &SimHost<'_>, sb: Superblock, n: u8) -> Result<Host, Error> {
    Host::join(m, sb, uuid(n), u32::from(n))
}

#[test]
fn a_peer_ticket_at_its_largest_value_is_refused() {
    let (mem, sb) = formatted();
    // Slot 1: a host "claiming" its slot and waiting for the lock with the largest ticket.
    forge_slot(
        &mem,
        &sb,
        1,
        SlotRecord {
            state: SlotState::Claiming,
            generation: 7,
            host: uuid(66),
            ticket: u64::MAX,
            ..SlotRecord::FREE
        },
    );
    let m = mem.host();
    assert!(matches!(join(&m, sb, 0), Err(Error::Overflow(_))));
}

#[test]
fn a_slot_generation_at_its_largest_value_is_refused() {
    let (mem, sb) = formatted();
    // Every slot free, and at the largest generation: the next write of any cannot be newer.
    for slot in 0..GEO.host_slots {
        forge_slot(
            &mem,
            &sb,
            slot,
            SlotRecord {
                generation: u64::MAX,
                ..SlotRecord::FREE
            },
        );
    }
    let m = mem.host();
    assert!(matches!(join(&m, sb, 3), Err(Error::Overflow(_))));
}

#[test]
fn a_table_generation_at_its_largest_value_is_refused() {
    let (mem, sb) = formatted();
    let m = mem.host();
    let mut a = join(&m, sb, 1).unwrap();
    // The owner table's first record, at the largest generation, in both copies.
    let (mut rec, _) = protocol::records::read_table(&m, &sb, Kind::Owners, 0).unwrap();
    rec.generation = u64::MAX;
    let b = rec.encode();
    put(&mem, sb.record_offset(Kind::Owners, 0, 0), &b);
    put(&mem, sb.record_offset(Kind::Owners, 0, 1), &b);
    assert_eq!(
        TableRecord::decode(&b, Kind::Owners, 0).map(|r| r.generation),
        Ok(u64::MAX)
    );
    assert!(matches!(a.claim(&m, 3), Err(Error::Overflow(_))));
}

#[test]
fn a_superblock_with_impossible_timing_is_refused() {
    let (mem, mut sb) = formatted();
    for (lease_ms, settle_ms) in [(u32::MAX, 10), (u32::MAX, u32::MAX / 2), (700_000, 10)] {
        sb.timing = Timing {
            lease_ms,
            settle_ms,
        };
        put(&mem, 0, &sb.encode());
        let start = mem.bytes_mut()[..crate::abi::EMPTY_BYTES].to_vec();
        assert!(
            matches!(
                boot_state(&start, &GEO),
                BootState::Refused(HeaderError::Geometry(_))
            ),
            "lease {lease_ms} settle {settle_ms}"
        );
    }
}

/// A device that does not keep what is written to it (a broken path, a failing device): reads
/// see zeros whatever was written. It counts reads, to tell a bounded wait from an endless one.
struct Forgetful {
    mem: SharedMem,
    reads: std::cell::Cell<u64>,
}

impl protocol::Medium for Forgetful {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.reads.set(self.reads.get() + 1);
        assert!(self.reads.get() < 100_000, "open() waits without end");
        self.mem.host().read(offset, buf)
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<(), Error> {
        Ok(())
    }

    fn write_back(&self, _offset: u64, _len: usize) {}

    fn invalidate(&self, _offset: u64, _len: usize) {}

    fn now_ms(&self) -> u64 {
        self.mem.host().now_ms()
    }

    fn sleep_ms(&self, ms: u32) {
        self.mem.advance(u64::from(ms.max(1)));
    }
}

#[test]
fn a_portal_that_does_not_keep_writes_is_refused_at_once() {
    let m = Forgetful {
        mem: SharedMem::new(GEO.block_size as usize),
        reads: std::cell::Cell::new(0),
    };
    assert_eq!(
        protocol::boot::open(&m, &GEO, uuid(9), 4, TIMING, true),
        Err(Error::NotKept)
    );
    assert!(m.reads.get() < 10, "{} reads", m.reads.get());
}
