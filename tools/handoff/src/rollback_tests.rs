//! A dead lock holder's unfinished transaction is rolled back before anyone writes the tables
//! it wrote: otherwise the next writer overwrites the copies that rollback needs, and the dead
//! transaction's half stands (for a handoff: blocks tagged for a record that was never written,
//! which no claim, give-back or reap takes again).

use crate::abi::handoff::Extent;
use crate::abi::QUARANTINED;
use crate::fuzzing::{GEO, TIMING};
use crate::medium::{SharedMem, SimHost};
use crate::protocol::{self, Error, Host};

fn join(m: &SimHost<'_>, n: u8) -> Host {
    let sb = *protocol::boot::open(m, &GEO, [9; 16], 4, TIMING, true)
        .unwrap()
        .superblock();
    Host::join(m, sb, [n; 16], u32::from(n)).unwrap()
}

/// x dies at its `n`-th write of an offer to y and is fenced; y then, renewing its lease but
/// before any heartbeat reaps x, does `first` (a write under the lock); then y's heartbeats. Every
/// block must end y's, free or quarantined (by y), in no handoff. Returns whether the offer completed (n too big).
fn after_a_dead_offer(n: u64, first: fn(&mut Host, &SimHost<'_>) -> Result<(), Error>) -> bool {
    let mem = SharedMem::new(GEO.block_size as usize);
    let (mx, my) = (mem.host(), mem.host());
    let (mut x, mut y) = (join(&mx, 1), join(&my, 2));
    x.claim(&mx, 5).unwrap();
    y.claim(&my, 5).unwrap();
    let before = mx.writes();
    mx.die_after(n);
    let done = x
        .offer(&mx, y.slot(), &[Extent { start: 0, count: 3 }])
        .is_ok();
    if done && mx.writes() - before < n {
        return true;
    }
    // x's lease runs out while y only renews its own; the fence agent confirms x off.
    for _ in 0..8 {
        mem.advance(u64::from(TIMING.lease_ms / 4));
        y.renew(&my).unwrap();
    }
    y.confirm_fenced(&my, x.slot(), x.uuid()).unwrap();
    first(&mut y, &my).unwrap();
    for _ in 0..15 {
        mem.advance(u64::from(TIMING.lease_ms / 5));
        y.heartbeat(&my).unwrap();
    }
    let sb = *y.superblock();
    protocol::records::for_each_owner(&my, &sb, |b, o| {
        assert!(
            o.is_free() || o.slot == QUARANTINED || u32::from(o.slot) == y.slot(),
            "death at write {n}: block {b} is {o:?}, neither free, quarantined nor y's"
        );
        assert_eq!(
            o.handoff, 0,
            "death at write {n}: block {b} stays in a handoff"
        );
    })
    .unwrap();
    false
}

fn every_death(first: fn(&mut Host, &SimHost<'_>) -> Result<(), Error>) {
    for n in 1..200 {
        if after_a_dead_offer(n, first) {
            return;
        }
    }
    panic!("the offer never completes");
}

#[test]
fn a_give_back_rolls_back_a_dead_holders_transaction_first() {
    // y gives back one of its blocks: the owner record x's offer was writing.
    every_death(|y, m| y.give_back(m, |b| b == 9).map(|_| ()));
}

#[test]
fn a_quarantine_rolls_back_a_dead_holders_transaction_first() {
    every_death(|y, m| y.quarantine(m, |b| b == 9).map(|_| ()));
}
