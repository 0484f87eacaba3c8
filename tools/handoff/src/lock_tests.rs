//! The portal lock when a read races the lock holder's writes: a reader's two reads of a slot's
//! copies may straddle several writes of the slot's host, which rewrites its slot (heartbeats,
//! intents) while it holds the lock.

use std::cell::{Cell, RefCell};

use crate::abi::{SlotRecord, RECORD_BYTES, RECORD_SIZE};
use crate::fuzzing::{GEO, TIMING};
use crate::medium::{SharedMem, SimHost};
use crate::protocol::{self, Error, Host, Medium};

/// What a racing host writes, just before a read.
type Hook<'a> = Box<dyn FnOnce(&SharedMem) + 'a>;

/// A host's view of the memory that, once armed, runs `hook` just before it reads the record
/// at `at`, as if another host wrote meanwhile.
struct Racing<'a> {
    inner: SimHost<'a>,
    mem: &'a SharedMem,
    at: Cell<u64>,
    /// Reads of `at` to let pass before the hook runs.
    skip: Cell<u32>,
    hook: RefCell<Option<Hook<'a>>>,
}

impl<'a> Racing<'a> {
    fn new(mem: &'a SharedMem) -> Self {
        Racing {
            inner: mem.host(),
            mem,
            at: Cell::new(u64::MAX),
            skip: Cell::new(0),
            hook: RefCell::new(None),
        }
    }

    /// Runs `hook` before the read of `at` that follows `skip` reads of it.
    fn arm_nth(&self, at: u64, skip: u32, hook: impl FnOnce(&SharedMem) + 'a) {
        self.at.set(at);
        self.skip.set(skip);
        *self.hook.borrow_mut() = Some(Box::new(hook));
    }
}

impl Medium for Racing<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        if offset == self.at.get() && self.skip.get() > 0 {
            self.skip.set(self.skip.get() - 1);
        } else if offset == self.at.get() {
            if let Some(hook) = self.hook.borrow_mut().take() {
                hook(self.mem);
            }
        }
        self.inner.read(offset, buf)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.inner.write(offset, data)
    }

    fn write_back(&self, offset: u64, len: usize) {
        self.inner.write_back(offset, len)
    }

    fn invalidate(&self, offset: u64, len: usize) {
        self.inner.invalidate(offset, len)
    }

    fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    fn sleep_ms(&self, ms: u32) {
        self.inner.sleep_ms(ms)
    }
}

fn put(mem: &SharedMem, offset: u64, rec: &[u8; RECORD_SIZE]) {
    let at = offset as usize;
    mem.bytes_mut()[at..at + RECORD_SIZE].copy_from_slice(rec);
}

/// Two members, x and y; x's last slot write is in copy 0 (so that its next goes to copy 1).
fn two_members(mem: &SharedMem) -> (Host, SimHost<'_>, Host) {
    let mx = mem.host();
    let sb = *protocol::boot::open(&mx, &GEO, [9; 16], 4, TIMING, true)
        .unwrap()
        .superblock();
    let mut x = Host::join(&mx, sb, [1; 16], 1).unwrap();
    let y = Host::join(&mem.host(), sb, [2; 16], 2).unwrap();
    if protocol::records::read_slot(&mx, &sb, x.slot()).unwrap().1 != 1 {
        x.renew(&mx).unwrap();
    }
    assert_eq!(
        protocol::records::read_slot(&mx, &sb, x.slot()).unwrap().1,
        1
    );
    (x, mx, y)
}

#[test]
fn a_reader_never_takes_the_holders_doorway_copy_for_its_record() {
    let mem = SharedMem::new(GEO.block_size as usize);
    let (mut x, mx, mut y) = two_members(&mem);
    let my = Racing::new(&mem);
    let sb = *x.superblock();
    let xs = x.slot();
    let base = sb.slot_offset(xs);
    let waited = x
        .locked(&mx, |_| {
            // x holds the lock: its current record r (a ticket, not choosing) is in copy 0.
            let r = protocol::records::read_slot(&mx, &sb, xs)
                .unwrap()
                .0
                .unwrap();
            assert!(r.ticket != 0 && !r.choosing);
            // Earlier tickets were larger: x's is 5 above y's last.
            let r = SlotRecord {
                ticket: r.ticket + 4,
                ..r
            };
            // Two writes ago, copy 0 held x's doorway (choosing, no ticket yet), and copy 1
            // its ticket; y reads copy 0 there...
            let doorway = SlotRecord {
                choosing: true,
                ticket: 0,
                generation: r.generation - 2,
                ..r
            };
            let ticket = SlotRecord {
                generation: r.generation - 1,
                ..r
            };
            put(&mem, base, &doorway.encode());
            put(&mem, base + RECORD_BYTES, &ticket.encode());
            // ... then, before y reads copy 1 for its ticket (after its doorway's watch of
            // every slot and its watch of x's just before the read, each a read of copy 1), x
            // renews into copy 0 and is writing copy 1.
            my.arm_nth(base + RECORD_BYTES, 2, move |mem| {
                put(mem, base, &r.encode());
                let mut torn = SlotRecord {
                    generation: r.generation + 1,
                    ..r
                }
                .encode();
                torn[RECORD_SIZE / 2..].fill(0);
                put(mem, base + RECORD_BYTES, &torn);
            });
            let start = my.now_ms();
            y.locked(&my, |m| m.now_ms() - start).unwrap_or(u64::MAX)
        })
        .unwrap();
    assert!(
        waited > u64::from(TIMING.lease_ms),
        "y took the lock {waited} ms after asking, while x held it (its lease: {} ms)",
        TIMING.lease_ms
    );
}

#[test]
fn an_unreadable_slot_is_waited_for_not_skipped() {
    let mem = SharedMem::new(GEO.block_size as usize);
    let (mut x, mx, mut y) = two_members(&mem);
    let my = mem.host();
    let sb = *x.superblock();
    let base = sb.slot_offset(x.slot());
    let waited = x
        .locked(&mx, |_| {
            // x holds the lock and is rewriting its slot; both copies read torn.
            for copy in 0..2 {
                let at = (base + copy * RECORD_BYTES) as usize;
                mem.bytes_mut()[at + 40] ^= 0xff;
            }
            let start = my.now_ms();
            y.locked(&my, |m| m.now_ms() - start).unwrap_or(u64::MAX)
        })
        .unwrap();
    assert!(
        waited > u64::from(TIMING.lease_ms),
        "y took the lock {waited} ms after asking, while x held it"
    );
}
