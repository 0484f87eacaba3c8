//! The protocol under the interleaving harness ([`crate::interleave`]): random schedules of
//! three hosts with pauses and crashes, every schedule of a small configuration within bounds,
//! and one named configuration per finding of the protocol v2 issue.
//!
//! `INTERLEAVE_SCHEDULES` sets how many random schedules the big test runs (default 100,000);
//! `INTERLEAVE_SEED` replays one.

use crate::interleave::{run, Exhaustive, Program, RandomChooser, Stats};

/// Runs `n` random schedules from `first`, in two threads; panics with the first failing seed.
fn random(hosts: usize, program: Program, first: u64, n: u64) -> Stats {
    let half = n / 2;
    let part = move |from: u64, count: u64| {
        let mut total = Stats::default();
        for seed in from..from + count {
            let o = run(hosts, program, seed, &mut RandomChooser::new(seed));
            if !o.violations.is_empty() {
                return Err((seed, o.violations));
            }
            total.add(&o.stats);
        }
        Ok(total)
    };
    let other = std::thread::spawn(move || part(first + half, n - half));
    let mine = part(first, half);
    let mut total = Stats::default();
    for r in [mine, other.join().expect("the second half ran")] {
        match r {
            Ok(s) => total.add(&s),
            Err((seed, v)) => panic!(
                "schedule {seed} (replay: INTERLEAVE_SEED={seed}) broke the protocol:\n{}",
                v.join("\n")
            ),
        }
    }
    total
}

fn replay() -> Option<u64> {
    std::env::var("INTERLEAVE_SEED").ok()?.parse().ok()
}

#[test]
fn random_schedules_of_three_hosts_with_pauses_and_crashes_keep_every_property() {
    if let Some(seed) = replay() {
        let o = run(3, Program::MIXED, seed, &mut RandomChooser::new(seed));
        eprintln!("{:?}", o.stats);
        assert!(o.violations.is_empty(), "{}", o.violations.join("\n"));
        return;
    }
    let n = std::env::var("INTERLEAVE_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000u64);
    let s = random(3, Program::MIXED, 0, n);
    eprintln!("interleave: {n} schedules: {s:?}");
    // The schedules did what they are for.
    assert_eq!(s.schedules, n);
    assert!(s.claimed > n, "too few claims: {s:?}");
    assert!(s.locked > n / 2, "too few locked sections: {s:?}");
    assert!(s.pauses > n, "too few pauses: {s:?}");
    assert!(s.crashes > n / 20, "too few crashes: {s:?}");
    assert!(s.torn > 0, "no crash tore a write: {s:?}");
    assert!(s.fenced > n / 20, "too few hosts fenced: {s:?}");
    assert!(s.self_fenced > n / 100, "too few hosts self-fenced: {s:?}");
}

/// Every schedule of two hosts that join, claim or take the lock, fence a suspect, and leave,
/// with one deviation at any step: a switch to the other host, a pause of two leases, or a
/// crash before a write.
#[test]
fn every_schedule_of_two_hosts_within_bounds_keeps_every_property() {
    let program = Program {
        ops: 2,
        mix: [34, 0, 33, 0, 33],
    };
    let mut total = Stats::default();
    // Each seed its own programs (which operations the two hosts do).
    for seed in 0..8 {
        let mut x = Exhaustive::new(1);
        loop {
            let o = run(2, program, seed, &mut x);
            assert!(
                o.violations.is_empty(),
                "programs {seed}, schedule {} broke the protocol:\n{}",
                total.schedules,
                o.violations.join("\n")
            );
            total.add(&o.stats);
            if !x.next() {
                break;
            }
        }
    }
    eprintln!("interleave: exhaustive: {total:?}");
    assert!(total.schedules > 1_000, "too few schedules: {total:?}");
    assert!(
        total.crashes > 0 && total.pauses > 0 && total.torn > 0 && total.locked > 0,
        "{total:?}"
    );
}
