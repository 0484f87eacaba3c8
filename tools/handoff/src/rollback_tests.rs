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

/// Runs `case` with a death at every write n, until it says the operation it interrupts
/// completed before write n.
fn at_every_write(operation: &str, case: impl Fn(u64) -> bool) {
    if !(1..200).any(case) {
        panic!("{operation} never completes");
    }
}

fn every_death(first: fn(&mut Host, &SimHost<'_>) -> Result<(), Error>) {
    at_every_write("the offer", |n| after_a_dead_offer(n, first));
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

/// v goes silent; the fence agent says it is off, to r (or, with `to_x`, to x, which only keeps
/// its lease meanwhile, as a fence agent's host does); r dies at its `n`-th write of the
/// heartbeat that reaps v; r's host boots again in its slot; x and the new r run heartbeats. v
/// must end reaped, its blocks no longer its own, whatever the write r died at: a confirmation
/// is a fact once written, and must outlive the reap it was given for when that reap is rolled
/// back. Returns whether the heartbeat completed (n too big).
fn after_a_dead_reaper(n: u64, to_x: bool) -> bool {
    let mem = SharedMem::new(GEO.block_size as usize);
    let (mx, mr, mv) = (mem.host(), mem.host(), mem.host());
    let mut x = join(&mx, 0);
    let mut r = join(&mr, 1);
    let mut v = join(&mv, 2);
    v.claim(&mv, 4).unwrap();
    if to_x {
        x.confirm_fenced(&mx, v.slot(), v.uuid()).unwrap();
    } else {
        r.confirm_fenced(&mr, v.slot(), v.uuid()).unwrap();
    }
    let before = mr.writes();
    mr.die_after(n);
    let done = r.heartbeat(&mr).is_ok();
    if done && mr.writes() - before < n {
        return true;
    }
    if to_x {
        // What r wrote of its reap is in the member table, not committed.
        x.keep_alive(&mx).unwrap();
    }
    // The power switch that killed r says so, to x; r's host boots again (a new medium: its old
    // one died with it).
    x.confirm_fenced(&mx, r.slot(), r.uuid()).unwrap();
    let mr2 = mem.host();
    let sb = *x.superblock();
    let mut r2 = Host::join(&mr2, sb, [0x21; 16], r.slot())
        .unwrap_or_else(|e| panic!("death at write {n}: r cannot join again: {e:?}"));
    for _ in 0..15 {
        mem.advance(u64::from(TIMING.lease_ms / 5));
        x.heartbeat(&mx)
            .unwrap_or_else(|e| panic!("death at write {n}: x's heartbeat: {e:?}"));
        r2.heartbeat(&mr2)
            .unwrap_or_else(|e| panic!("death at write {n}: r's heartbeat: {e:?}"));
    }
    let member = protocol::records::read_member(&mx, &sb, v.slot()).unwrap();
    assert_eq!(
        member.state,
        crate::abi::MemberState::Fenced,
        "death at write {n}: v is not reaped: {member:?}"
    );
    protocol::records::for_each_owner(&mx, &sb, |b, o| {
        assert!(
            o.is_free() || u32::from(o.slot) != v.slot(),
            "death at write {n}: block {b} is still v's: {o:?}"
        );
    })
    .unwrap();
    false
}

#[test]
fn a_confirmation_outlives_its_reaper_and_the_reap_it_left_unfinished() {
    at_every_write("the reaping heartbeat", |n| after_a_dead_reaper(n, false));
}

#[test]
fn a_confirmation_is_kept_while_the_reap_it_was_given_for_is_uncommitted() {
    at_every_write("the reaping heartbeat", |n| after_a_dead_reaper(n, true));
}
