//! Userspace tests of the shared protocol: several simulated hosts on one
//! memory, with a clock the test drives, and crashes injected at every
//! write of every operation.

use crate::abi::handoff::Extent;
use crate::abi::{Geometry, HandoffState, MemberState, Outcome, SlotState, Timing, MAX_EXTENTS};
use crate::medium::{SharedMem, SimHost};
use crate::protocol::{self, boot::Opened, Error, Host, Medium};

const GEO: Geometry = Geometry {
    block_size: 64 << 10,
    block_count: 41,
    header_blocks: 1,
    host_slots: 4,
};
const TIMING: Timing = Timing {
    lease_ms: 1000,
    settle_ms: 10,
};
const HANDOFFS: u32 = 4;

fn mem() -> SharedMem {
    SharedMem::new(GEO.block_size as usize)
}

fn uuid(n: u8) -> [u8; 16] {
    let mut u = [n; 16];
    u[0] = n.wrapping_mul(37);
    u
}

fn open(m: &SimHost<'_>, n: u8) -> Result<Opened, Error> {
    protocol::boot::open(m, &GEO, uuid(100 + n), HANDOFFS, TIMING, true)
}

fn join(m: &SimHost<'_>, n: u8) -> Host {
    let sb = *open(m, n).expect("open").superblock();
    Host::join(m, sb, uuid(n), u32::from(n)).expect("join")
}

fn owned(h: &Host, m: &SimHost<'_>) -> Vec<u64> {
    let mut v = Vec::new();
    h.owned(m, |b, _| v.push(b)).unwrap();
    v
}

/// The fence agent's confirmation, given to `to`: `dead` is off.
fn fence(to: &mut Host, m: &SimHost<'_>, dead: &Host) {
    to.confirm_fenced(m, dead.slot(), dead.uuid())
        .expect("confirm fenced");
}

/// The fence agent's confirmation that every incarnation of a dead process
/// (the hosts it joined as, `uuids`) is off, given to `to`.
fn fence_all(to: &mut Host, m: &SimHost<'_>, uuids: &[[u8; 16]]) {
    for slot in 0..GEO.host_slots {
        for u in uuids {
            let _ = to.confirm_fenced(m, slot, *u);
        }
    }
}

/// Lets time pass while the `live` hosts keep their leases, until every
/// other member has been reaped (or `ms` passed).
fn pass(mem: &SharedMem, live: &mut [(&mut Host, &SimHost<'_>)], ms: u64) {
    let step = u64::from(TIMING.lease_ms / 5);
    let mut t = 0;
    while t < ms {
        mem.advance(step);
        t += step;
        for (h, m) in live.iter_mut() {
            if let Err(e) = h.heartbeat(*m) {
                let mut s = Vec::new();
                h.suspects(*m, |x| s.push(x)).unwrap();
                panic!("heartbeat: {e:?}; suspects {s:?}");
            }
        }
    }
}

/// The invariants, read from the tables: every block is free or owned by a
/// live member; a block in a handoff is in a record in use that lists it;
/// every record in use is between live members; the tables check.
fn check(m: &SimHost<'_>) -> Vec<(u64, u16)> {
    let sb = protocol::records::read_superblock(m).unwrap();
    protocol::boot::check_tables(m, &sb).unwrap();
    let mut live = Vec::new();
    protocol::records::for_each_member(m, &sb, |v| {
        if v.member.state == MemberState::Live {
            live.push((v.slot as u16, v.member.epoch));
        }
    })
    .unwrap();
    let mut out = Vec::new();
    protocol::records::for_each_owner(m, &sb, |b, o| {
        if !o.is_free() && o.slot != crate::abi::QUARANTINED {
            assert!(
                live.contains(&(o.slot, o.epoch)),
                "block {b} owned by gone host {o:?}"
            );
            out.push((b, o.slot));
        }
        if o.handoff != 0 {
            let h = protocol::records::read_handoff(m, &sb, u32::from(o.handoff - 1)).unwrap();
            assert_ne!(
                h.state,
                HandoffState::Free,
                "block {b} in a free handoff record"
            );
            assert!(h
                .extents()
                .iter()
                .any(|e| b >= u64::from(e.start) && b < u64::from(e.start + e.count)));
        }
    })
    .unwrap();
    for i in 0..sb.handoffs {
        let h = protocol::records::read_handoff(m, &sb, i).unwrap();
        if h.state != HandoffState::Free {
            assert!(
                live.contains(&(h.source, h.source_epoch)),
                "handoff {i} from a gone host"
            );
            assert!(
                live.contains(&(h.target, h.target_epoch)),
                "handoff {i} to a gone host"
            );
        }
    }
    out
}

#[test]
fn format_once_then_join() {
    let mem = mem();
    let (a, b) = (mem.host(), mem.host());
    let first = open(&a, 1).unwrap();
    assert!(matches!(first, Opened::Formatted(_)));
    let second = open(&b, 2).unwrap();
    assert_eq!(second, Opened::Joinable(*first.superblock()));
    assert_eq!(first.superblock().uuid, uuid(101));
    check(&a);
}

#[test]
fn hosts_claim_disjoint_blocks_and_return_them() {
    let mem = mem();
    let (ma, mb, mc) = (mem.host(), mem.host(), mem.host());
    let (mut a, mut b, mut c) = (join(&ma, 1), join(&mb, 2), join(&mc, 3));
    assert_ne!(a.slot(), b.slot());
    assert_ne!(b.slot(), c.slot());
    assert_eq!(a.claim(&ma, 15).unwrap(), 15);
    assert_eq!(b.claim(&mb, 15).unwrap(), 15);
    // Only ten are left.
    assert_eq!(c.claim(&mc, 15).unwrap(), 10);
    let (oa, ob, oc) = (owned(&a, &ma), owned(&b, &mb), owned(&c, &mc));
    assert_eq!(oa.len() + ob.len() + oc.len(), 40);
    assert!(oa.iter().all(|x| !ob.contains(x) && !oc.contains(x)));
    assert!(ob.iter().all(|x| !oc.contains(x)));
    assert_eq!(check(&ma).len(), 40);
    assert_eq!(a.give_back(&ma, |blk| blk % 2 == 0).unwrap(), 8);
    assert_eq!(check(&ma).len(), 32);
    a.leave(&ma).unwrap();
    assert_eq!(check(&mb).len(), 25);
    // The slot is free again: a new host gets it with the next epoch.
    let d = join(&mem.host(), 1);
    assert_eq!(d.epoch(), 2);
}

/// Regression (v1 reaped on expiry alone): a host that pauses for ten
/// leases is a suspect, and keeps every block and its membership; when it
/// resumes it self-fences: it takes nothing more and gives back what it has.
#[test]
fn a_paused_host_keeps_its_blocks_until_fenced_and_self_fences() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    a.claim(&ma, 5).unwrap();
    b.claim(&mb, 5).unwrap();
    pass(&mem, &mut [(&mut b, &mb)], u64::from(TIMING.lease_ms) * 10);
    assert_eq!(owned(&b, &mb).len(), 5, "b took a paused host's blocks");
    assert_eq!(owned(&a, &ma).len(), 5);
    let mut suspects: Vec<protocol::Suspect> = Vec::new();
    b.suspects(&mb, |s| suspects.push(s)).unwrap();
    assert_eq!(suspects.len(), 1);
    assert_eq!(
        (suspects[0].slot, suspects[0].host, suspects[0].confirmed),
        (a.slot(), Some(a.uuid()), false)
    );
    assert!(suspects[0].silent_ms >= u64::from(TIMING.lease_ms) * 9);
    // a resumes: its lease lapsed, so it takes nothing more...
    assert_eq!(a.renew(&ma), Err(Error::Expired));
    assert_eq!(a.claim(&ma, 1).unwrap_err(), Error::Expired);
    // ... and gives back what it has, then joins again with a new epoch.
    a.leave(&ma).unwrap();
    assert_eq!(b.claim(&mb, 40).unwrap(), 35);
    let a2 = join(&ma, 1);
    assert!(owned(&a2, &ma).is_empty());
    check(&mb);
}

/// A host confirmed off by the fence agent is reaped by the next heartbeat;
/// if it was only paused after all, it finds itself fenced and stops.
#[test]
fn a_host_confirmed_off_is_reaped_and_stops() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    a.claim(&ma, 5).unwrap();
    b.claim(&mb, 5).unwrap();
    // The confirmation must name the slot's host.
    assert!(matches!(
        b.confirm_fenced(&mb, a.slot(), [0xee; 16]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        b.confirm_fenced(&mb, b.slot(), b.uuid()),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        b.confirm_fenced(&mb, 99, a.uuid()),
        Err(Error::Invalid(_))
    ));
    fence(&mut b, &mb, &a);
    pass(&mem, &mut [(&mut b, &mb)], u64::from(TIMING.lease_ms));
    assert_eq!(owned(&b, &mb).len(), 10, "b reaps a once a is fenced");
    let sb = protocol::records::read_superblock(&mb).unwrap();
    assert_eq!(
        protocol::records::read_member(&mb, &sb, a.slot())
            .unwrap()
            .state,
        MemberState::Fenced
    );
    // It was fenced (and reaped): it takes nothing and cannot even give up.
    assert_eq!(a.claim(&ma, 1).unwrap_err(), Error::Fenced);
    assert_eq!(a.leave(&ma).unwrap_err(), Error::Fenced);
    // It rejoins with a new epoch (maybe in its old slot) and owns nothing.
    let a2 = join(&ma, 1);
    assert!(a2.epoch() > a.epoch() || a2.slot() != a.slot());
    assert!(owned(&a2, &ma).is_empty());
    check(&mb);
}

/// A confirmation of an incarnation that ended without a reap (here a joining host, only
/// paused after all, whose join fails on its lapsed lease: it writes its slot free) is dropped,
/// not kept for good: sixteen of them would leave the confirmer unable to confirm anything.
#[test]
fn a_confirmation_of_an_incarnation_that_ended_unreaped_is_dropped() {
    let mem = mem();
    let (mx, mj) = (mem.host(), mem.host());
    let mut x = join(&mx, 1);
    let sb = *x.superblock();
    let mut j = Host::claim_slot(&mj, sb, uuid(2), 2).unwrap();
    x.confirm_fenced(&mx, j.slot(), j.uuid()).unwrap();
    let confirms = |m: &SimHost<'_>| {
        protocol::records::read_slot(m, &sb, 1)
            .unwrap()
            .0
            .unwrap()
            .confirms
            .iter()
            .flatten()
            .count()
    };
    assert_eq!(confirms(&mx), 1);
    // j pauses past half a lease while x renews, then its join fails.
    let half = u64::from(TIMING.lease_ms / 2);
    mem.advance(half / 2);
    x.renew(&mx).unwrap();
    mem.advance(half / 2 + 1);
    assert_eq!(j.complete_join(&mj), Err(Error::Expired));
    let r = protocol::records::read_slot(&mx, &sb, j.slot())
        .unwrap()
        .0
        .unwrap();
    assert_eq!(r.state, SlotState::Free, "the failed join gave its slot up");
    x.keep_alive(&mx).unwrap();
    assert_eq!(
        confirms(&mx),
        0,
        "x still holds a confirmation nobody needs"
    );
}

/// Regression (v1 passed a lock holder once its lease expired): a host that
/// pauses inside the lock for five leases is never overtaken; the others'
/// operations fail with `Suspect` and write nothing.
#[test]
fn a_paused_lock_holder_is_never_overtaken() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    let before = owned(&b, &mb).len();
    let r = a
        .locked(&ma, |_| {
            // b keeps its lease all along.
            for _ in 0..25 {
                mem.advance(u64::from(TIMING.lease_ms / 5));
                b.renew(&mb).unwrap();
            }
            let r = b.claim(&mb, 3);
            b.renew(&mb).unwrap();
            r
        })
        .unwrap();
    assert_eq!(r, Err(Error::Suspect));
    assert_eq!(owned(&b, &mb).len(), before);
    // a resumed: it unlocked; b gets the lock now.
    b.renew(&mb).unwrap();
    assert_eq!(b.claim(&mb, 3).unwrap(), 3);
    check(&mb);
}

#[test]
fn a_host_that_renews_in_time_is_never_reaped() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    a.claim(&ma, 3).unwrap();
    pass(
        &mem,
        &mut [(&mut a, &ma), (&mut b, &mb)],
        u64::from(TIMING.lease_ms) * 5,
    );
    assert_eq!(owned(&a, &ma).len(), 3);
    assert!(owned(&b, &mb).is_empty());
}

#[test]
fn handoff_offer_accept_release() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    a.claim(&ma, 6).unwrap();
    let ext = [Extent { start: 1, count: 2 }, Extent { start: 4, count: 1 }];
    let (i, id) = a.offer(&ma, b.slot(), &ext).unwrap();
    // Offered: still a's, marked in the handoff.
    let mut lent = Vec::new();
    a.owned(&ma, |blk, h| {
        if h {
            lent.push(blk)
        }
    })
    .unwrap();
    assert_eq!(lent, vec![1, 2, 4]);
    // Only the target accepts; only the source releases; an accepted offer
    // cannot be cancelled.
    assert!(matches!(a.accept(&ma, i, id), Err(Error::Invalid(_))));
    assert!(matches!(b.release(&mb, i, id), Err(Error::Invalid(_))));
    b.accept(&mb, i, id).unwrap();
    assert_eq!(owned(&b, &mb), vec![1, 2, 4]);
    assert!(matches!(a.cancel(&ma, i, id), Err(Error::Invalid(_))));
    a.release(&ma, i, id).unwrap();
    let sb = *a.superblock();
    let h = protocol::records::read_handoff(&ma, &sb, i).unwrap();
    assert_eq!(
        (h.state, h.outcome),
        (HandoffState::Free, Outcome::Released)
    );
    let mut lent = 0;
    b.owned(&mb, |_, h| lent += usize::from(h)).unwrap();
    assert_eq!(lent, 0);
    assert_eq!(owned(&a, &ma), vec![0, 3, 5]);
    check(&ma);
}

#[test]
fn handoff_cancel_and_bad_requests() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    a.claim(&ma, 4).unwrap();
    b.claim(&mb, 4).unwrap();
    let theirs = Extent { start: 5, count: 1 };
    assert!(matches!(
        a.offer(&ma, b.slot(), &[theirs]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.offer(&ma, a.slot(), &[Extent { start: 0, count: 1 }]),
        Err(Error::Invalid(_))
    ));
    let overlap = [Extent { start: 0, count: 2 }, Extent { start: 1, count: 1 }];
    assert!(matches!(
        a.offer(&ma, b.slot(), &overlap),
        Err(Error::Invalid(_))
    ));
    let too_many = [Extent { start: 0, count: 1 }; MAX_EXTENTS + 1];
    assert!(matches!(
        a.offer(&ma, b.slot(), &too_many),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.offer(
            &ma,
            b.slot(),
            &[Extent {
                start: 40,
                count: 1
            }]
        ),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.offer(&ma, 3, &[Extent { start: 0, count: 1 }]),
        Err(Error::Invalid(_))
    ));
    let (i, id) = a
        .offer(&ma, b.slot(), &[Extent { start: 0, count: 2 }])
        .unwrap();
    // Blocks in a handoff are not offered twice, nor returned.
    assert!(matches!(
        a.offer(&ma, b.slot(), &[Extent { start: 1, count: 1 }]),
        Err(Error::Invalid(_))
    ));
    assert_eq!(a.give_back(&ma, |_| true).unwrap(), 2);
    assert!(matches!(b.accept(&mb, i, id + 1), Err(Error::Invalid(_))));
    b.cancel(&mb, i, id).unwrap();
    assert_eq!(owned(&a, &ma), vec![0, 1]);
    check(&ma);
}

/// What one test case runs on host `x` (the one that dies).
type Step = fn(&mut Host, &SimHost<'_>, &mut Host, &SimHost<'_>) -> Result<(), Error>;

/// Runs `setup`, then `step` on host x with a death at its n-th write, for
/// every n until the step completes; after each death the survivor reaps x
/// once its lease expired, and the invariants must hold.
fn crash_everywhere(step: Step, reaped: bool) {
    for n in 1.. {
        let mem = mem();
        let (mx, my) = (mem.host(), mem.host());
        let (mut x, mut y) = (join(&mx, 1), join(&my, 2));
        x.claim(&mx, 5).unwrap();
        y.claim(&my, 5).unwrap();
        // A pending offer each way, for the handoff steps.
        let to_x = y
            .offer(&my, x.slot(), &[Extent { start: 5, count: 2 }])
            .unwrap();
        let to_y = x
            .offer(&mx, y.slot(), &[Extent { start: 0, count: 2 }])
            .unwrap();
        let _ = (to_x, to_y);
        let before = mx.writes();
        mx.die_after(n);
        let r = step(&mut x, &mx, &mut y, &my);
        if r.is_ok() && mx.writes() - before < n {
            // Completed with fewer writes than the budget: every point was covered.
            assert!(n > 1);
            return;
        }
        // x is dead and fenced: y (which kept its lease) reaps it.
        fence_all(&mut y, &my, &[uuid(1), uuid(8), uuid(9)]);
        pass(&mem, &mut [(&mut y, &my)], u64::from(TIMING.lease_ms) * 3);
        let owners = check(&my);
        // Nothing lost: every block is y's or free, and y got x's.
        let sb = *y.superblock();
        protocol::records::for_each_owner(&my, &sb, |b, o| {
            assert!(
                o.is_free() || o.slot == y.slot() as u16,
                "n={n}: block {b} {o:?}"
            );
            assert_eq!(o.handoff, 0, "n={n}: block {b} still in a handoff");
        })
        .unwrap();
        // x's blocks went to y (unless x was leaving: then they are free).
        if reaped {
            assert!(owners.len() >= 8, "n={n}: y owns {} blocks", owners.len());
        }
        // y can go on: lock, claim, offer.
        y.claim(&my, 1).unwrap();
        assert!(n < 200, "the step never completes");
    }
}

#[test]
fn crash_during_claim() {
    crash_everywhere(|x, m, _, _| x.claim(m, 3).map(|_| ()), false);
}

#[test]
fn crash_during_return() {
    crash_everywhere(
        |x, m, _, _| x.give_back(m, |b| b == 2 || b == 3).map(|_| ()),
        false,
    );
}

#[test]
fn crash_during_offer() {
    crash_everywhere(
        |x, m, y, _| {
            x.offer(m, y.slot(), &[Extent { start: 2, count: 2 }])
                .map(|_| ())
        },
        true,
    );
}

#[test]
fn crash_during_accept() {
    crash_everywhere(
        |x, m, _, _| {
            let sb = *x.superblock();
            let i = (0..sb.handoffs)
                .find(|&i| {
                    let h = protocol::records::read_handoff(m, &sb, i).unwrap();
                    h.state == HandoffState::Offered && u32::from(h.target) == x.slot()
                })
                .unwrap();
            let id = protocol::records::read_handoff(m, &sb, i)?.id;
            x.accept(m, i, id)
        },
        true,
    );
}

#[test]
fn crash_during_release() {
    // y accepts x's offer first; x dies releasing it: y keeps the blocks.
    for n in 1..100 {
        let mem = mem();
        let (mx, my) = (mem.host(), mem.host());
        let (mut x, mut y) = (join(&mx, 1), join(&my, 2));
        x.claim(&mx, 5).unwrap();
        let (i, id) = x
            .offer(&mx, y.slot(), &[Extent { start: 0, count: 2 }])
            .unwrap();
        y.accept(&my, i, id).unwrap();
        let before = mx.writes();
        mx.die_after(n);
        let r = x.release(&mx, i, id);
        let done = r.is_ok() && mx.writes() - before < n;
        fence_all(&mut y, &my, &[uuid(1)]);
        pass(&mem, &mut [(&mut y, &my)], u64::from(TIMING.lease_ms) * 3);
        check(&my);
        // Released or reaped, x's blocks are all y's in the end.
        assert_eq!(owned(&y, &my).len(), 5, "n={n}");
        let h = protocol::records::read_handoff(
            &my,
            &protocol::records::read_superblock(&my).unwrap(),
            i,
        )
        .unwrap();
        assert_eq!(
            (h.state, h.outcome),
            (HandoffState::Free, Outcome::Released),
            "n={n}"
        );
        if done {
            return;
        }
    }
    panic!("release never completes");
}

#[test]
fn crash_during_join_and_leave() {
    crash_everywhere(
        |x, m, _, _| {
            let sb = *x.superblock();
            // A second membership of the same process, in another slot.
            let mut z = Host::join(m, sb, uuid(9), 3)?;
            z.leave(m)
        },
        false,
    );
    crash_everywhere(
        |x, m, _, _| {
            let sb = *x.superblock();
            let mut h = std::mem::replace(x, Host::join(m, sb, uuid(8), 0)?);
            h.leave(m)
        },
        false,
    );
}

#[test]
fn target_dies_after_accepting_source_gets_blocks_back() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    a.claim(&ma, 4).unwrap();
    let (i, id) = a
        .offer(&ma, b.slot(), &[Extent { start: 0, count: 2 }])
        .unwrap();
    b.accept(&mb, i, id).unwrap();
    // b dies and is fenced: a, which still holds the pages, gets the blocks back.
    fence(&mut a, &ma, &b);
    pass(&mem, &mut [(&mut a, &ma)], u64::from(TIMING.lease_ms) * 3);
    let h = protocol::records::read_handoff(&ma, a.superblock(), i).unwrap();
    assert_eq!(
        (h.state, h.outcome),
        (HandoffState::Free, Outcome::RolledBack)
    );
    assert_eq!(owned(&a, &ma), vec![0, 1, 2, 3]);
    check(&ma);
}

#[test]
fn a_torn_slot_or_table_copy_falls_back_to_the_other() {
    let mem = mem();
    let ma = mem.host();
    let mut a = join(&ma, 1);
    a.claim(&ma, 2).unwrap();
    let sb = *a.superblock();
    // Tear the current copy of the first owner record: the older copy (all
    // free) is read, until a's next write.
    let (_, next) = protocol::records::read_table(&ma, &sb, crate::abi::Kind::Owners, 0).unwrap();
    let cur = sb.record_offset(crate::abi::Kind::Owners, 0, 1 - next) as usize;
    mem.bytes_mut()[cur + 40] ^= 1;
    assert!(owned(&a, &ma).is_empty());
    // Tear both: the table is corrupt and every locked step says so.
    let other = sb.record_offset(crate::abi::Kind::Owners, 0, next) as usize;
    mem.bytes_mut()[other + 40] ^= 1;
    assert_eq!(
        a.claim(&ma, 1),
        Err(Error::Corrupt(crate::abi::Kind::Owners, 0))
    );
    assert!(protocol::boot::check_tables(&ma, &sb).is_err());
    // A torn slot copy: the other copy stands.
    let slot = sb.slot_offset(a.slot()) as usize;
    let before = protocol::records::read_slot(&ma, &sb, a.slot())
        .unwrap()
        .0
        .unwrap();
    mem.bytes_mut()[slot + 8] ^= 0xff;
    mem.bytes_mut()[slot + 256 + 8] ^= 0;
    let after = protocol::records::read_slot(&ma, &sb, a.slot())
        .unwrap()
        .0
        .unwrap();
    assert_eq!(after.state, SlotState::Member);
    assert!(after.generation + 1 >= before.generation);
}

#[test]
fn a_stale_format_is_redone_and_a_corrupt_superblock_refused() {
    let mem = mem();
    let ma = mem.host();
    // A formatter died after its claim: the superblock says formatting.
    ma.die_after(2);
    assert!(open(&ma, 1).is_err());
    let mb = mem.host();
    match open(&mb, 2).unwrap() {
        Opened::Formatted(sb) => assert_eq!(sb.uuid, uuid(102)),
        o => panic!("{o:?}"),
    }
    mem.bytes_mut()[0x30] ^= 1;
    assert!(matches!(
        open(&mem.host(), 3),
        Err(Error::Header(crate::abi::HeaderError::Corrupt { .. }))
    ));
}

/// A host dead inside the lock holds everyone up, for a lease at a time
/// (`Suspect`, nothing written), until it is fenced; then the next lock
/// reaps it and goes on.
#[test]
fn a_host_dead_holding_a_ticket_blocks_the_lock_until_fenced() {
    let mem = mem();
    let (ma, mb, mc) = (mem.host(), mem.host(), mem.host());
    let (mut a, mut c) = (join(&ma, 1), join(&mc, 3));
    a.claim(&ma, 2).unwrap();
    // a dies inside the lock: after its ticket, before its transaction.
    ma.die_after(3);
    assert!(a.claim(&ma, 1).is_err());
    let t0 = mc.now_ms();
    assert_eq!(c.claim(&mc, 1), Err(Error::Suspect));
    let waited = mc.now_ms() - t0;
    assert!(waited >= u64::from(TIMING.lease_ms), "waited {waited} ms");
    assert!(
        waited < 2 * u64::from(TIMING.lease_ms),
        "waited {waited} ms"
    );
    c.renew(&mc).unwrap();
    fence(&mut c, &mc, &a);
    assert_eq!(c.claim(&mc, 40).unwrap(), 38);
    let mut b = join(&mb, 2);
    assert_eq!(b.claim(&mb, 40).unwrap(), 0);
    check(&mb);
}

#[test]
fn quarantined_blocks_outlive_their_host_and_are_never_claimed() {
    let mem = mem();
    let (ma, mb) = (mem.host(), mem.host());
    let (mut a, mut b) = (join(&ma, 1), join(&mb, 2));
    assert_eq!(a.claim(&ma, 3).unwrap(), 3);
    assert_eq!(a.quarantine(&ma, |blk| blk == 1).unwrap(), 1);
    assert_eq!(owned(&a, &ma), vec![0, 2]);
    a.leave(&ma).unwrap();
    // Everything else is b's to claim; the quarantined block is nobody's.
    assert_eq!(b.claim(&mb, 40).unwrap(), 39);
    assert!(!owned(&b, &mb).contains(&1));
    let sb = *b.superblock();
    let mut one = None;
    protocol::records::for_each_owner(&mb, &sb, |blk, o| {
        if blk == 1 {
            one = Some(o.slot)
        }
    })
    .unwrap();
    assert_eq!(one, Some(crate::abi::QUARANTINED));
    check(&mb);
}
