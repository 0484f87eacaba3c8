//! Protocol operations on hostile headers, for the `protocol` fuzz target and its property-test
//! twin: whatever a peer wrote into a portal, with checksums that match, every step a host takes
//! (open, join, lock, claim, heartbeat, give back, leave) ends in a result, never a panic or an
//! endless wait.

use std::cell::Cell;

use crate::abi::{Geometry, Kind, Superblock, Timing, RECORD_BYTES, RECORD_SIZE};
use crate::handoff::crc32c::crc32c;
use crate::medium::SharedMem;
use crate::protocol::{self, Error, Host, Medium};

/// The portal every input starts from: 20 data blocks of 64 KiB, 4 host slots (also the
/// hostile tests' portal).
pub(crate) const GEO: Geometry = Geometry {
    block_size: 64 << 10,
    block_count: 21,
    header_blocks: 1,
    host_slots: 4,
};
/// Its timing.
pub(crate) const TIMING: Timing = Timing {
    lease_ms: 1000,
    settle_ms: 10,
};

/// The most accesses one input may make: far more than any bounded run needs.
const MAX_ACCESSES: u64 = 2_000_000;

/// A host's view of the shared memory for fuzzing: every wait moves the clock by a good step,
/// so that bounded waits end quickly; every access is counted, and an input that makes a host
/// access the portal more than [`MAX_ACCESSES`] times is an endless wait: a finding.
struct FuzzHost<'a> {
    mem: &'a SharedMem,
    accesses: &'a Cell<u64>,
}

impl FuzzHost<'_> {
    fn count(&self) {
        let n = self.accesses.get() + 1;
        self.accesses.set(n);
        assert!(n < MAX_ACCESSES, "a protocol step waits without end");
    }
}

impl Medium for FuzzHost<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.count();
        self.mem.host().read(offset, buf)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.count();
        self.mem.host().write(offset, data)
    }

    fn write_back(&self, _offset: u64, _len: usize) {}

    fn invalidate(&self, _offset: u64, _len: usize) {}

    fn now_ms(&self) -> u64 {
        self.mem.host().now_ms()
    }

    fn sleep_ms(&self, ms: u32) {
        self.mem.advance(u64::from(ms.max(20)));
    }
}

/// The device offset of the record `selector` names: the superblock, a copy of a host slot, or a
/// copy of a table record.
fn record(sb: &Superblock, selector: u16) -> u64 {
    let copy = u32::from(selector & 1);
    let n = u32::from(selector >> 1);
    let (what, which) = (n % 3, n / 3);
    match what {
        0 if which % 8 == 0 => 0,
        0 => sb.slot_offset(which % sb.geometry.host_slots) + u64::from(copy) * RECORD_BYTES,
        _ => {
            let kind = match which % 3 {
                0 => Kind::Members,
                1 => Kind::Owners,
                _ => Kind::Handoff,
            };
            sb.record_offset(kind, which / 3 % sb.records(kind), copy)
        }
    }
}

/// Applies `data` to a formatted portal: each 12-byte group `(selector u16, offset u8, how u8,
/// value u64)` writes `value` (or 0, 1, the largest value, ...) into a field of a record and
/// reseals the record unless `how` says to leave it torn.
fn mutate(mem: &SharedMem, sb: &Superblock, data: &[u8]) {
    for g in data.chunks_exact(12) {
        let selector = u16::from_le_bytes([g[0], g[1]]);
        let at = usize::from(g[2]) % (RECORD_SIZE - 4);
        let how = g[3];
        let mut v = [0u8; 8];
        v.copy_from_slice(&g[4..12]);
        let value = match how % 8 {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::MAX - 1,
            4 => u64::from(u32::MAX),
            _ => u64::from_le_bytes(v),
        };
        let width = [1usize, 2, 4, 8][usize::from(how >> 3) % 4];
        let start = record(sb, selector) as usize;
        let mut b = mem.bytes_mut();
        let Some(rec) = b.get_mut(start..start + RECORD_SIZE) else {
            continue;
        };
        let end = (at + width).min(RECORD_SIZE - 4);
        rec[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
        if how & 0x80 == 0 {
            let crc = crc32c(&rec[..RECORD_SIZE - 4]);
            rec[RECORD_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

/// What one input made the hosts do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ran {
    /// Reads and writes of the portal.
    pub accesses: u64,
    /// Whether the second host joined the mutated portal.
    pub joined: bool,
    /// Blocks the second host claimed there.
    pub claimed: u64,
}

/// One input: a portal formatted and joined by one host that claimed some blocks, then mutated
/// by `data` as a peer could, then used by that host and by a second one.
pub fn protocol_ops(data: &[u8]) -> Ran {
    let mut ran = Ran::default();
    let mem = SharedMem::new(GEO.block_size as usize);
    let accesses = Cell::new(0);
    let (ma, mb) = (
        FuzzHost {
            mem: &mem,
            accesses: &accesses,
        },
        FuzzHost {
            mem: &mem,
            accesses: &accesses,
        },
    );
    let Ok(opened) = protocol::boot::open(&ma, &GEO, [1; 16], 4, TIMING, true) else {
        return ran;
    };
    let sb = *opened.superblock();
    let mut a = Host::join(&ma, sb, [2; 16], 0).ok();
    if let Some(a) = a.as_mut() {
        let _ = a.claim(&ma, 7);
    }
    mutate(&mem, &sb, data);
    // The other host boots on what the peer left.
    if let Ok(opened) = protocol::boot::open(&mb, &GEO, [3; 16], 4, TIMING, false) {
        if let Ok(mut b) = Host::join(&mb, *opened.superblock(), [4; 16], 1) {
            ran.joined = true;
            ran.claimed = b.claim(&mb, 5).unwrap_or(0);
            for _ in 0..3 {
                mem.advance(u64::from(TIMING.lease_ms / 2));
                let _ = b.heartbeat(&mb);
            }
            let _ = b.give_back(&mb, |blk| blk % 2 == 0);
            let _ = b.quarantine(&mb, |blk| blk == 1);
            let _ = b.leave(&mb);
        }
    }
    // The first host carries on with what it finds.
    if let Some(mut a) = a {
        let _ = a.heartbeat(&ma);
        let _ = a.claim(&ma, 2);
        let _ = a.leave(&ma);
    }
    ran.accesses = accesses.get();
    ran
}
