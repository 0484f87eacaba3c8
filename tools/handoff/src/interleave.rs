//! A deterministic interleaving harness for the portal protocol.
//!
//! Several simulated hosts run the driver's own protocol code, each on a coroutine of its own,
//! over one shared memory. Every access a host makes to that memory is a step, and a record read
//! or write is two steps (its two halves): another host's steps can fall between the halves of a
//! read (a read that races a write, as two reads of a record's copies can) and a crash between
//! the halves of a write tears the record. A scheduler decides before every step which host
//! takes it. It can also *pause* a host — the host takes no step while the clock runs on, for as
//! long as the scheduler likes, and then goes on where it was — and *crash* one at a write.
//! Nothing runs in parallel and the clock is virtual (it moves only while every host that could
//! take a step waits), so a schedule is a sequence of choices and replays exactly: a failure
//! names its seed, or its choices.
//!
//! The scheduler is the hosts' fence agent too, as the lab harness is in QEMU: asked to fence a
//! host, it kills it and says so; a host it did not kill it never calls off.
//!
//! An oracle watches what the hosts do, not what the header says:
//! * two hosts that are not dead are never both inside the portal lock (a paused holder is
//!   still inside);
//! * a block a host uses (it claimed it and has not begun to give it back) is never used by
//!   another host that is not dead, and is never taken from it;
//! * a live host is never told that it was fenced or evicted, and no operation fails in a way
//!   the protocol does not allow (a record without a valid copy, an overflow, a panic);
//! * at the end, once every dead host is confirmed off and reaped: every block is free, every
//!   slot free or holding a reaped incarnation, no member live: nothing was lost.
//!
//! Host `i` is host index `i`, in every incarnation (it leaves and joins again in the same
//! slot). The portal is formatted before a schedule starts: one host formats, and a format that
//! races nothing has nothing to interleave.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::abi::handoff::Extent;
use crate::abi::{Geometry, HandoffState, MemberState, Owner, SlotState, Superblock, Timing};
use crate::medium::SharedMem;
use crate::protocol::{self, Error, Host, Medium};

/// The simulated portal: eight data blocks, eight host slots.
pub(crate) const GEO: Geometry = Geometry {
    block_size: 64 << 10,
    block_count: 9,
    header_blocks: 1,
    host_slots: 8,
};
/// A short lease, so that pauses of a few leases are cheap to simulate.
pub(crate) const TIMING: Timing = Timing {
    lease_ms: 20,
    settle_ms: 2,
};
const HANDOFFS: u32 = 2;
/// The most steps one schedule may take: far more than any schedule needs, so that a host that
/// never gets anywhere shows as a failure, not as a hang.
const MAX_STEPS: u64 = 2_000_000;
/// The janitor's host index: no worker's.
const JANITOR_SLOT: u32 = 6;

/// What a host is about to do when it hands the scheduler the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    /// Sleep until the clock reads this.
    Sleep(u64),
    /// It just read copy 0 of this slot: hold it until the slot's host wrote the slot once or
    /// twice more and is half way through the next write (the straddling adversary, see
    /// [`run_with`]).
    Hold(u32),
}

/// xorshift64*: reproducible, no dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
}

/// What the oracle knows of the hosts.
#[derive(Default)]
struct Oracle {
    /// Per host, the blocks it uses.
    using: Vec<BTreeSet<u64>>,
    /// Per host, whether it is inside the portal lock (its locked section, see [`Program`]).
    locked: Vec<bool>,
    /// Per host, whether it wrote a table record since it last wrote its own slot without a
    /// ticket: it holds the portal lock, as only a holder writes the tables.
    writing: Vec<bool>,
    /// Per host, whether it is dead (crashed, or killed by the fence agent).
    dead: Vec<bool>,
    /// Per host, every UUID it joined with.
    uuids: Vec<Vec<[u8; 16]>>,
    /// Hosts the fence agent killed that the scheduler has not dropped yet.
    kill: Vec<usize>,
    violations: Vec<String>,
    stats: Stats,
    /// What each host did, when `INTERLEAVE_TRACE` is set (for replaying a failure).
    trace: Option<Vec<String>>,
}

/// What one or more schedules did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) schedules: u64,
    pub(crate) steps: u64,
    pub(crate) ops: u64,
    pub(crate) claimed: u64,
    pub(crate) locked: u64,
    pub(crate) pauses: u64,
    pub(crate) crashes: u64,
    /// Fence requests the agent answered with "off" (it killed the host, or it was dead).
    pub(crate) fenced: u64,
    pub(crate) self_fenced: u64,
    pub(crate) torn: u64,
    /// Reads the straddling adversary made fall on a torn write after one or two others.
    pub(crate) straddled: u64,
    /// Hosts that could not leave within their tries at the end (the janitor fences them).
    pub(crate) stuck: u64,
    /// Hosts that booted again after they died.
    pub(crate) reboots: u64,
}

impl Stats {
    pub(crate) fn add(&mut self, o: &Stats) {
        self.schedules += o.schedules;
        self.steps += o.steps;
        self.ops += o.ops;
        self.claimed += o.claimed;
        self.locked += o.locked;
        self.pauses += o.pauses;
        self.crashes += o.crashes;
        self.fenced += o.fenced;
        self.self_fenced += o.self_fenced;
        self.torn += o.torn;
        self.straddled += o.straddled;
        self.stuck += o.stuck;
        self.reboots += o.reboots;
    }
}

impl Oracle {
    fn note(&mut self, now: u64, host: usize, what: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("{now:>8} host {host}: {}", what()));
        }
    }

    fn violation(&mut self, host: usize, what: String) {
        self.violations.push(format!("host {host}: {what}"));
    }

    /// Host `i` now uses exactly `owned`.
    fn uses(&mut self, i: usize, owned: BTreeSet<u64>) {
        for &b in self.using[i].difference(&owned) {
            let what = format!("block {b} was taken from it while it used it");
            self.violations.push(format!("host {i}: {what}"));
        }
        for &b in owned.difference(&self.using[i]) {
            for j in 0..self.using.len() {
                if j != i && !self.dead[j] && self.using[j].contains(&b) {
                    let what = format!("block {b} is used by host {j} too");
                    self.violations.push(format!("host {i}: {what}"));
                }
            }
        }
        self.using[i] = owned;
    }

    fn enter(&mut self, i: usize) {
        for j in 0..self.locked.len() {
            if j != i && !self.dead[j] && self.locked[j] {
                self.violation(i, format!("inside the portal lock with host {j}"));
            }
        }
        self.locked[i] = true;
    }

    fn die(&mut self, i: usize) {
        self.dead[i] = true;
        self.using[i].clear();
        self.locked[i] = false;
        self.writing[i] = false;
    }

    /// Host `i` wrote a whole record: a table record needs the lock, its own slot without a
    /// ticket lets it go.
    fn wrote(&mut self, i: usize, sb: &Superblock, offset: u64, data: &[u8]) {
        let slots = sb.slot_offset(0)..sb.slot_offset(sb.geometry.host_slots);
        let Ok(rec) = <&[u8; crate::abi::RECORD_SIZE]>::try_from(data) else {
            return;
        };
        if !slots.contains(&offset) {
            if offset >= slots.end {
                for j in 0..self.writing.len() {
                    if j != i && !self.dead[j] && self.writing[j] {
                        self.violation(i, format!("writes a table while host {j} holds the lock"));
                    }
                }
                self.writing[i] = true;
            }
            return;
        }
        if let Ok(r) = crate::abi::SlotRecord::decode(rec) {
            if r.ticket == 0 && self.uuids[i].contains(&r.host) {
                self.writing[i] = false;
            }
        }
    }

    /// The fence agent: kills the host that joined as `uuid` and says it is off; `false` for a
    /// UUID it does not know.
    fn fence(&mut self, uuid: [u8; 16]) -> bool {
        let Some(i) = self.uuids.iter().position(|u| u.contains(&uuid)) else {
            return false;
        };
        if !self.dead[i] {
            self.note(0, i, || "killed by the fence agent".into());
            self.die(i);
            self.kill.push(i);
        }
        self.stats.fenced += 1;
        true
    }
}

/// The shared memory, the clock and the oracle.
struct World {
    mem: RefCell<Vec<u8>>,
    now: Cell<u64>,
    oracle: RefCell<Oracle>,
    /// The straddling adversary, if it plays: which reads of a slot's copy 0 it holds.
    straddle: Option<RefCell<Rng>>,
    /// Per slot, its complete writes, and whether a write of it is half done.
    slot_writes: RefCell<Vec<(u64, bool)>>,
}

impl World {
    /// The slot whose copy `copy` starts at `offset`, if one does.
    fn slot_at(sb: &Superblock, offset: u64, copy: u64) -> Option<u32> {
        let rel = offset.checked_sub(sb.slot_offset(0))?;
        let size = sb.slot_offset(1) - sb.slot_offset(0);
        let j = u32::try_from(rel / size).ok()?;
        (j < sb.geometry.host_slots && rel % size == copy * crate::abi::RECORD_BYTES).then_some(j)
    }

    fn slot_write(&self, sb: &Superblock, offset: u64, len: usize, done: bool) {
        if self.straddle.is_none() || len != crate::abi::RECORD_SIZE {
            return;
        }
        let Some(j) = Self::slot_at(sb, offset, 0).or_else(|| Self::slot_at(sb, offset, 1)) else {
            return;
        };
        if let Some(w) = self.slot_writes.borrow_mut().get_mut(j as usize) {
            w.1 = !done;
            if done {
                w.0 += 1;
            }
        }
    }
}

impl World {
    fn span(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, Error> {
        let start = usize::try_from(offset).map_err(|_| Error::Medium)?;
        let end = start.checked_add(len).ok_or(Error::Medium)?;
        if end > self.mem.borrow().len() {
            return Err(Error::Medium);
        }
        Ok(start..end)
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let r = self.span(offset, buf.len())?;
        buf.copy_from_slice(&self.mem.borrow()[r]);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let r = self.span(offset, data.len())?;
        self.mem.borrow_mut()[r].copy_from_slice(data);
        Ok(())
    }
}

/// A host's access to the world from its coroutine: every access hands the scheduler a step.
struct Stepped<'y> {
    w: Rc<World>,
    y: &'y Yielder<(), Access>,
    i: usize,
    sb: Superblock,
}

impl Medium for Stepped<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let half = buf.len() / 2;
        let (a, b) = buf.split_at_mut(half);
        self.y.suspend(Access::Read);
        self.w.read(offset, a)?;
        self.y.suspend(Access::Read);
        self.w.read(offset + half as u64, b)?;
        if let (Some(rng), true) = (&self.w.straddle, buf.len() == crate::abi::RECORD_SIZE) {
            if let Some(j) = World::slot_at(&self.sb, offset, 0) {
                if rng.borrow_mut().below(4) == 0 {
                    self.y.suspend(Access::Hold(j));
                }
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let half = data.len() / 2;
        self.y.suspend(Access::Write);
        self.w.write(offset, &data[..half])?;
        self.w.slot_write(&self.sb, offset, data.len(), false);
        self.y.suspend(Access::Write);
        let r = self.w.write(offset + half as u64, &data[half..]);
        self.w.slot_write(&self.sb, offset, data.len(), true);
        self.w
            .oracle
            .borrow_mut()
            .wrote(self.i, &self.sb, offset, data);
        if self.w.oracle.borrow().trace.is_some() && data.len() == crate::abi::RECORD_SIZE {
            let what = if let Ok(s) = crate::abi::SlotRecord::decode(data.try_into().unwrap()) {
                format!(
                    "slot rec {:?} host {:?} ep {} ch {} t {} intent {:x} op {}",
                    s.state, s.host[0], s.epoch, s.choosing, s.ticket, s.intent, s.op
                )
            } else if let Ok(t) = crate::abi::TableRecord::decode(
                data.try_into().unwrap(),
                crate::abi::Kind::Members,
                0,
            ) {
                format!(
                    "members gen {} tx {:x} by {}/{}: {:?} {:?} {:?}",
                    t.generation,
                    t.txid,
                    t.writer_slot,
                    t.writer_epoch,
                    t.entry(0),
                    t.entry(2),
                    t.entry(4)
                )
            } else {
                "table/zero".into()
            };
            let now = self.w.now.get();
            self.w
                .oracle
                .borrow_mut()
                .note(now, self.i, || format!("write {offset:#x}: {what}"));
        }
        r
    }

    fn write_back(&self, _offset: u64, _len: usize) {}

    fn invalidate(&self, _offset: u64, _len: usize) {}

    fn now_ms(&self) -> u64 {
        self.w.now.get()
    }

    fn sleep_ms(&self, ms: u32) {
        let until = self.w.now.get() + u64::from(ms.max(1));
        self.y.suspend(Access::Sleep(until));
    }
}

/// The janitor's access: no steps, nobody else runs.
struct Direct<'a>(&'a World);

impl Medium for Direct<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.0.read(offset, buf)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.0.write(offset, data)
    }

    fn write_back(&self, _offset: u64, _len: usize) {}

    fn invalidate(&self, _offset: u64, _len: usize) {}

    fn now_ms(&self) -> u64 {
        self.0.now.get()
    }

    fn sleep_ms(&self, ms: u32) {
        self.0.now.set(self.0.now.get() + u64::from(ms.max(1)));
    }
}

/// What a simulated host does: a program of operations, like the stress test's workers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Program {
    /// Operations before it leaves.
    pub(crate) ops: u32,
    /// Out of 100: claim, give back, locked section, heartbeat, fence suspects, offer a block
    /// to another member, act on the handoffs (accept, release, cancel); the rest leave and
    /// join again.
    pub(crate) mix: [u8; 7],
}

impl Program {
    pub(crate) const MIXED: Program = Program {
        ops: 5,
        mix: [20, 10, 15, 10, 15, 10, 15],
    };
}

/// Asks the fence agent to fence every suspect `h` sees, and records each one it confirms off.
fn fence_suspects(h: &mut Host, m: &Stepped<'_>) -> Result<(), Error> {
    let mut suspects = Vec::new();
    h.suspects(m, |s| suspects.push(s))?;
    for s in suspects {
        if let (false, Some(u)) = (s.confirmed, s.host) {
            if m.w.oracle.borrow_mut().fence(u) {
                match h.confirm_fenced(m, s.slot, u) {
                    // Another host confirmed and reaped it meanwhile.
                    Ok(()) | Err(Error::Invalid(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// One simulated host's program, run on its coroutine.
struct Worker<'y> {
    i: usize,
    m: Stepped<'y>,
    rng: Rng,
    host: Option<Host>,
    /// Its lease lapsed: it gives up what it has before it joins again.
    lapsed: Option<Host>,
    joins: u8,
    sb: Superblock,
    /// It boots: runs the boot check (host 0 formats an empty portal) before its first join.
    boots: bool,
}

impl Worker<'_> {
    fn oracle(&self) -> std::cell::RefMut<'_, Oracle> {
        self.m.w.oracle.borrow_mut()
    }

    fn uuid(&mut self) -> [u8; 16] {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        // Who, and which incarnation.
        u[1] = u8::try_from(self.i).unwrap_or(0);
        u[2] = self.joins;
        self.joins = self.joins.wrapping_add(1);
        u
    }

    fn join(&mut self) -> Result<(), Error> {
        if self.boots {
            let opened =
                protocol::boot::open(&self.m, &GEO, [0xf0; 16], HANDOFFS, TIMING, self.i == 0)?;
            self.sb = *opened.superblock();
            self.boots = false;
            // Its format's table writes are done: it holds no lock.
            let i = self.i;
            self.oracle().writing[i] = false;
        }
        let id = self.uuid();
        // Known to the fence agent before it is written anywhere.
        let i = self.i;
        self.oracle().uuids[i].push(id);
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        self.host = Some(Host::join(&self.m, self.sb, id, index)?);
        Ok(())
    }

    /// Tells the oracle which blocks it now uses: those the table says it owns.
    fn reconcile(&mut self) -> Result<(), Error> {
        let Some(h) = self.host.as_mut() else {
            return Ok(());
        };
        let mut owned = BTreeSet::new();
        h.owned(&self.m, |b, lent| {
            if !lent {
                owned.insert(b);
            }
        })?;
        let i = self.i;
        self.oracle().uses(i, owned);
        Ok(())
    }

    fn step(&mut self, p: &Program) -> Result<(), Error> {
        if let Some(mut h) = self.lapsed.take() {
            return match h.leave(&self.m) {
                Err(e) if !e.is_gone() => {
                    self.lapsed = Some(h);
                    Err(e)
                }
                r => r,
            };
        }
        let Some(mut h) = self.host.take() else {
            return self.join();
        };
        let r = self.op(&mut h, p);
        if let Ok(false) = r {
            // It left; it joins again at its next step.
            return Ok(());
        }
        self.host = Some(h);
        r?;
        self.oracle().stats.ops += 1;
        self.reconcile()
    }

    /// One operation; `false` if it left the portal.
    fn op(&mut self, h: &mut Host, p: &Program) -> Result<bool, Error> {
        let m = &self.m;
        let mut x = self.rng.below(100);
        for (n, &share) in p.mix.iter().enumerate() {
            let share = u64::from(share);
            if x >= share {
                x -= share;
                continue;
            }
            return match n {
                0 => {
                    let got = h.claim(m, 1 + self.rng.below(3))?;
                    m.w.oracle
                        .borrow_mut()
                        .note(m.w.now.get(), self.i, || format!("claimed {got}"));
                    m.w.oracle.borrow_mut().stats.claimed += got;
                    Ok(true)
                }
                1 => {
                    // It stops using them first, then gives them back.
                    let r = self.rng.next_u64();
                    let pick = move |b: u64| (b ^ r) % 3 == 0;
                    m.w.oracle.borrow_mut().using[self.i].retain(|&b| !pick(b));
                    h.give_back(m, pick).map(|_| true)
                }
                2 => {
                    let i = self.i;
                    let w = Rc::clone(&m.w);
                    h.locked(m, |m| {
                        w.oracle.borrow_mut().enter(i);
                        m.sleep_ms(1);
                        let mut o = w.oracle.borrow_mut();
                        o.locked[i] = false;
                        o.stats.locked += 1;
                    })
                    .map(|()| true)
                }
                3 => h.heartbeat(m).map(|_| true),
                4 => {
                    fence_suspects(h, m)?;
                    h.heartbeat(m).map(|_| true)
                }
                5 => {
                    // One owned block to a random other member; it stops using it first.
                    let sb = *h.superblock();
                    let target = u32::try_from(self.rng.below(u64::from(sb.geometry.host_slots)))
                        .unwrap_or(0);
                    let mine: Vec<u64> =
                        m.w.oracle.borrow().using[self.i].iter().copied().collect();
                    if mine.is_empty()
                        || target == h.slot()
                        || protocol::records::read_member(m, &sb, target)?.state
                            != MemberState::Live
                    {
                        return h.heartbeat(m).map(|_| true);
                    }
                    let b = mine[usize::try_from(self.rng.below(mine.len() as u64)).unwrap_or(0)];
                    m.w.oracle.borrow_mut().using[self.i].remove(&b);
                    let ext = [Extent {
                        start: u32::try_from(b).unwrap_or(u32::MAX),
                        count: 1,
                    }];
                    match h.offer(m, target, &ext) {
                        Ok(_) | Err(Error::Invalid(_) | Error::Full(_)) => Ok(true),
                        Err(e) => Err(e),
                    }
                }
                _ => {
                    // Accept what is offered to it (or cancel it), release what it offered and
                    // was accepted.
                    let sb = *h.superblock();
                    for index in 0..sb.handoffs {
                        let x = protocol::records::read_handoff(m, &sb, index)?;
                        let slot = u16::try_from(h.slot()).unwrap_or(u16::MAX);
                        let to_me = x.target == slot && x.target_epoch == h.epoch();
                        let from_me = x.source == slot && x.source_epoch == h.epoch();
                        let r = match x.state {
                            HandoffState::Offered if to_me && self.rng.below(4) != 0 => {
                                h.accept(m, index, x.id)
                            }
                            HandoffState::Offered if to_me || from_me => h.cancel(m, index, x.id),
                            HandoffState::Accepted if from_me => h.release(m, index, x.id),
                            _ => continue,
                        };
                        match r {
                            Ok(()) | Err(Error::Invalid(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(true)
                }
            };
        }
        // Leave, and join again at the next step.
        m.w.oracle
            .borrow_mut()
            .note(m.w.now.get(), self.i, || "leaves".into());
        m.w.oracle.borrow_mut().using[self.i].clear();
        h.leave(m).map(|()| false)
    }

    /// Runs the program, then leaves.
    fn run(&mut self, p: &Program) {
        for _ in 0..p.ops {
            let r = self.step(p);
            self.settle_result(r);
        }
        // Leave (or give up what it has, if its lease lapsed), with a few tries.
        let i = self.i;
        for _ in 0..8 {
            self.oracle().using[i].clear();
            let h = self.lapsed.take().or_else(|| self.host.take());
            let Some(mut h) = h else {
                return;
            };
            match h.leave(&self.m) {
                Ok(()) => return,
                Err(e) if e.is_gone() => {
                    self.oracle()
                        .violation(i, format!("a live host was told: {e}"));
                    return;
                }
                Err(e) => {
                    if e == Error::Suspect {
                        // Its fencing needs no lease of its own: the agent kills, then says.
                        let _ = fence_suspects(&mut h, &self.m);
                    }
                    self.lapsed = Some(h);
                    if !matches!(e, Error::Suspect | Error::TimedOut | Error::Expired) {
                        self.oracle().violation(i, format!("leaving failed: {e:?}"));
                    }
                    self.m.sleep_ms(TIMING.lease_ms / 2);
                }
            }
        }
        self.oracle().stats.stuck += 1;
    }

    fn settle_result(&mut self, r: Result<(), Error>) {
        let i = self.i;
        let now = self.m.w.now.get();
        let (slot, epoch) = self
            .host
            .as_ref()
            .or(self.lapsed.as_ref())
            .map_or((u32::MAX, 0), |h| (h.slot(), h.epoch()));
        self.oracle()
            .note(now, i, || format!("slot {slot} epoch {epoch}: {r:?}"));
        match r {
            Ok(()) => {}
            Err(Error::Expired) => {
                // Its lease lapsed (it was paused): it self-fences, stops using its blocks and
                // gives them back at its next step.
                self.oracle().using[i].clear();
                self.oracle().stats.self_fenced += 1;
                if let Some(h) = self.host.take() {
                    self.lapsed = Some(h);
                }
            }
            // A silent host holds the lock or a ticket: as the driver's fence agent does, it
            // asks for the suspects to be fenced, then tries again later.
            Err(Error::Suspect) => {
                if let Some(mut h) = self.host.take() {
                    let r = fence_suspects(&mut h, &self.m);
                    self.host = Some(h);
                    if let Err(e) = r {
                        self.settle_result(Err(e));
                    }
                }
                self.m.sleep_ms(1);
            }
            // Waits that ended (for the lock, or for host 0 to format): it tries again later.
            Err(Error::TimedOut | Error::Full(_) | Error::Unformatted) => self.m.sleep_ms(1),
            // A superblock torn by a formatter paused in the middle of writing it: the boot
            // check refuses it, and boots again later.
            Err(Error::Header(_)) if self.boots => self.m.sleep_ms(1),
            Err(e) => {
                self.oracle()
                    .violation(i, format!("unexpected error: {e:?}"));
                self.oracle().using[i].clear();
                self.host = None;
                self.lapsed = None;
            }
        }
    }
}

/// A host as the scheduler sees it.
struct Proc {
    co: Option<Coroutine<(), Access, ()>>,
    /// What it does at its next step.
    next: Access,
    /// It takes no step before the clock reads this (sleeping or paused).
    wake: u64,
    /// Its next write would be the second half of a record.
    mid_write: bool,
    /// Held by the straddling adversary: until slot `.0` has `.1` writes, since step `.2`.
    held: Option<(u32, u64, u64)>,
}

/// A scheduler's choice before a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// This host takes the step.
    Run(usize),
    /// This host pauses for so many ms.
    Pause(usize, u64),
    /// This host dies before its write.
    Crash(usize),
}

/// Who chooses.
pub(crate) trait Chooser {
    /// Picks one of `options`, which are never empty; `current` is the host that took the last
    /// step, if it could take the next one too.
    fn choose(&mut self, options: &[Choice], current: Option<usize>) -> Choice;
}

/// Random schedules: a host keeps running with some stickiness, pauses and crashes are rare.
pub(crate) struct RandomChooser {
    rng: Rng,
    /// Per million steps.
    switch: u64,
    pause: u64,
    crash: u64,
}

impl RandomChooser {
    /// Schedules of a fixed character: per million steps, switches, pauses and crashes.
    pub(crate) fn with(seed: u64, switch: u64, pause: u64, crash: u64) -> Self {
        RandomChooser {
            rng: Rng::new(seed),
            switch,
            pause,
            crash,
        }
    }

    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        // Each schedule its own character: fine or coarse interleaving, few or many pauses.
        let switch = [20_000, 200_000, 800_000][rng.below(3) as usize];
        let pause = [100, 600][rng.below(2) as usize];
        let crash = [0, 400, 2_000][rng.below(3) as usize];
        RandomChooser {
            rng,
            switch,
            pause,
            crash,
        }
    }
}

impl Chooser for RandomChooser {
    fn choose(&mut self, options: &[Choice], current: Option<usize>) -> Choice {
        let runs: Vec<Choice> = options
            .iter()
            .copied()
            .filter(|c| matches!(c, Choice::Run(_)))
            .collect();
        let run = match current {
            Some(c) if !self.rng.chance(self.switch) => Choice::Run(c),
            _ => runs[self.rng.below(runs.len() as u64) as usize],
        };
        let Choice::Run(h) = run else { unreachable!() };
        if self.rng.chance(self.crash) && options.contains(&Choice::Crash(h)) {
            return Choice::Crash(h);
        }
        if self.rng.chance(self.pause) {
            if let Some(&p) = options
                .iter()
                .find(|c| matches!(c, Choice::Pause(x, _) if *x == h))
            {
                let Choice::Pause(_, _) = p else {
                    unreachable!()
                };
                let leases = 1 + self.rng.below(4);
                return Choice::Pause(h, leases * u64::from(TIMING.lease_ms) + self.rng.below(10));
            }
        }
        run
    }
}

/// Every schedule within a bound, depth first: at most `budget` deviations from running each
/// host on until it waits, a deviation being a switch away from a host that could go on, a
/// pause of that host for two leases, or its crash before a write. A switch forced by a wait
/// (sleeping, paused) is no deviation.
pub(crate) struct Exhaustive {
    /// The choices of the schedule being run, as (index, count of options).
    path: Vec<(usize, usize)>,
    depth: usize,
    budget: u32,
    used: u32,
}

impl Exhaustive {
    pub(crate) fn new(budget: u32) -> Self {
        Exhaustive {
            path: Vec::new(),
            depth: 0,
            budget,
            used: 0,
        }
    }

    /// Moves to the next schedule; `false` once every one was run.
    pub(crate) fn next(&mut self) -> bool {
        self.path.truncate(self.depth);
        while let Some((i, n)) = self.path.pop() {
            if i + 1 < n {
                self.path.push((i + 1, n));
                self.depth = 0;
                self.used = 0;
                return true;
            }
        }
        false
    }
}

impl Chooser for Exhaustive {
    fn choose(&mut self, options: &[Choice], current: Option<usize>) -> Choice {
        let plain = match current {
            Some(c) => Choice::Run(c),
            None => options[0],
        };
        let mut allowed = vec![plain];
        if self.used < self.budget {
            allowed.extend(options.iter().copied().filter(|c| match *c {
                Choice::Run(h) => current.is_some() && current != Some(h),
                Choice::Pause(h, _) | Choice::Crash(h) => current == Some(h),
            }));
        }
        let pick = if allowed.len() == 1 {
            0
        } else if self.depth < self.path.len() {
            let (i, _) = self.path[self.depth];
            self.depth += 1;
            i
        } else {
            self.path.push((0, allowed.len()));
            self.depth += 1;
            0
        };
        if pick > 0 {
            self.used += 1;
        }
        match allowed[pick] {
            Choice::Pause(h, _) => Choice::Pause(h, 2 * u64::from(TIMING.lease_ms)),
            c => c,
        }
    }
}

/// A formatted, empty portal: every schedule starts from a copy.
fn formatted() -> (Vec<u8>, Superblock) {
    let mem = SharedMem::new(usize::try_from(GEO.block_size).unwrap());
    let h = mem.host();
    let sb = *protocol::boot::open(&h, &GEO, [0xf0; 16], HANDOFFS, TIMING, true)
        .expect("formatting the simulated portal")
        .superblock();
    (mem.into_bytes(), sb)
}

/// What a schedule found.
pub(crate) struct Outcome {
    pub(crate) violations: Vec<String>,
    pub(crate) stats: Stats,
}

/// Runs `hosts` hosts with `program` under `chooser`; `seed` picks what the hosts do.
pub(crate) fn run(hosts: usize, program: Program, seed: u64, chooser: &mut dyn Chooser) -> Outcome {
    run_with(hosts, program, seed, chooser, Config::default())
}

/// What a schedule adds to the hosts' programs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Config {
    /// The straddling adversary plays (see [`run_with`]).
    pub(crate) straddle: bool,
    /// The portal starts empty (every byte zero): every host boots (the boot check, and host 0
    /// formats) before it joins, all at once.
    pub(crate) empty: bool,
    /// A host that dies (crashed, or killed by the fence agent) boots again once, as the same
    /// host index with a new UUID, after up to three leases: while the others may still be
    /// suspecting, fencing or reaping the incarnation that died.
    pub(crate) reboot: bool,
}

/// [`run`], with what `cfg` adds. With `cfg.straddle` an adversary plays beside the chooser:
/// after a quarter of the reads of a slot's copy 0, it holds the reader until the slot's host
/// wrote the slot once or twice more and is half way through the next write, then runs the
/// reader at once: the read of copy 1 that follows falls on the torn write, and the copy 0 it
/// read may be from two writes ago.
pub(crate) fn run_with(
    hosts: usize,
    program: Program,
    seed: u64,
    chooser: &mut dyn Chooser,
    cfg: Config,
) -> Outcome {
    thread_local! {
        static TEMPLATE: (Vec<u8>, Superblock) = formatted();
    }
    let (mut bytes, sb) = TEMPLATE.with(|t| t.clone());
    if cfg.empty {
        bytes.fill(0);
    }
    let w = Rc::new(World {
        mem: RefCell::new(bytes),
        now: Cell::new(1_000),
        straddle: cfg.straddle.then(|| RefCell::new(Rng::new(seed ^ 0x5eed))),
        slot_writes: RefCell::new(vec![(0, false); GEO.host_slots as usize]),
        oracle: RefCell::new(Oracle {
            using: vec![BTreeSet::new(); hosts],
            locked: vec![false; hosts],
            writing: vec![false; hosts],
            dead: vec![false; hosts],
            uuids: vec![Vec::new(); hosts],
            trace: std::env::var_os("INTERLEAVE_TRACE").map(|_| Vec::new()),
            ..Oracle::default()
        }),
    });
    // Host `i`'s incarnation `boot` (0 first): a coroutine running its program.
    let spawn = |i: usize, boot: u8| {
        let w = Rc::clone(&w);
        let seed = seed ^ (i as u64).wrapping_mul(0x1000_0000_01b3) ^ u64::from(boot) << 40;
        Coroutine::new(move |y: &Yielder<(), Access>, ()| {
            let mut worker = Worker {
                i,
                m: Stepped { w, y, i, sb },
                rng: Rng::new(seed),
                host: None,
                lapsed: None,
                joins: boot.wrapping_mul(100),
                sb,
                boots: cfg.empty || boot > 0,
            };
            worker.run(&program);
        })
    };
    let mut procs: Vec<Proc> = (0..hosts)
        .map(|i| Proc {
            co: Some(spawn(i, 0)),
            next: Access::Read,
            wake: 0,
            mid_write: false,
            held: None,
        })
        .collect();
    let mut rebooted = vec![false; hosts];
    let mut reboot_rng = Rng::new(seed ^ 0xb007);
    // A host that died boots again, once, if the configuration says so.
    let mut reboot = |procs: &mut Vec<Proc>, i: usize, now: u64| {
        if !cfg.reboot || rebooted[i] {
            return;
        }
        rebooted[i] = true;
        let p = &mut procs[i];
        p.co = Some(spawn(i, 1));
        p.next = Access::Read;
        p.mid_write = false;
        p.held = None;
        p.wake = now + 1 + reboot_rng.below(3 * u64::from(TIMING.lease_ms));
        let mut o = w.oracle.borrow_mut();
        o.dead[i] = false;
        o.stats.reboots += 1;
        o.note(now, i, || "boots again".into());
    };
    let mut current = None;
    let mut steps = 0u64;
    loop {
        // The fence agent's kills take effect before anyone's next step.
        let kills: Vec<usize> = std::mem::take(&mut w.oracle.borrow_mut().kill);
        let now = w.now.get();
        for k in kills {
            procs[k].co = None;
            reboot(&mut procs, k, now);
        }
        let alive: Vec<usize> = (0..hosts).filter(|&i| procs[i].co.is_some()).collect();
        if alive.is_empty() {
            break;
        }
        let awake: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|&i| procs[i].wake <= now)
            .collect();
        // The straddling adversary: a held reader whose moment came runs now; one held too long,
        // or with nobody else to wait for, is let go.
        let writes = w.slot_writes.borrow().clone();
        let due = awake.iter().copied().find(|&i| {
            procs[i]
                .held
                .is_some_and(|(j, n, _)| writes[j as usize].0 >= n && writes[j as usize].1)
        });
        let others = awake.iter().filter(|&&i| procs[i].held.is_none()).count();
        for &i in &awake {
            if let Some((_, _, since)) = procs[i].held {
                if others == 0 || steps - since > 2_000 {
                    procs[i].held = None;
                }
            }
        }
        let ready: Vec<usize> = match due {
            Some(i) => {
                procs[i].held = None;
                w.oracle.borrow_mut().stats.straddled += 1;
                vec![i]
            }
            None => awake
                .into_iter()
                .filter(|&i| procs[i].held.is_none())
                .collect(),
        };
        if ready.is_empty() {
            // Everyone waits: the clock moves to the first wake-up.
            let next = alive.iter().map(|&i| procs[i].wake).min().unwrap_or(now);
            w.now.set(next.max(now + 1));
            continue;
        }
        steps += 1;
        if steps > MAX_STEPS {
            w.oracle
                .borrow_mut()
                .violations
                .push(format!("no end after {MAX_STEPS} steps"));
            break;
        }
        let cur = current.filter(|c| ready.contains(c));
        let mut options: Vec<Choice> = ready.iter().map(|&i| Choice::Run(i)).collect();
        // The last host alive does not crash: a schedule needs a survivor to check.
        for &i in &ready {
            options.push(Choice::Pause(i, 0));
            if procs[i].next == Access::Write && alive.len() > 1 {
                options.push(Choice::Crash(i));
            }
        }
        match chooser.choose(&options, cur) {
            Choice::Pause(i, ms) => {
                procs[i].wake = now + ms.max(1);
                w.oracle
                    .borrow_mut()
                    .note(now, i, || format!("paused for {ms} ms"));
                w.oracle.borrow_mut().stats.pauses += 1;
                continue;
            }
            Choice::Crash(i) => {
                procs[i].co = None;
                let mut o = w.oracle.borrow_mut();
                o.note(now, i, || {
                    format!("crashed (mid-write: {})", procs[i].mid_write)
                });
                o.die(i);
                o.stats.crashes += 1;
                if procs[i].mid_write {
                    o.stats.torn += 1;
                }
                drop(o);
                reboot(&mut procs, i, now);
                continue;
            }
            Choice::Run(i) => {
                current = Some(i);
                let p = &mut procs[i];
                let co = p.co.as_mut().expect("a live host");
                let was_write = p.next == Access::Write;
                match catch_unwind(AssertUnwindSafe(|| co.resume(()))) {
                    Ok(CoroutineResult::Yield(a)) => {
                        p.mid_write = was_write && a == Access::Write && !p.mid_write;
                        p.next = a;
                        match a {
                            Access::Sleep(until) => p.wake = until,
                            Access::Hold(j) => {
                                // One write then a torn one straddles a read whose copy 0 was
                                // the older copy; two, one whose copy 0 was the current one.
                                let n = 1 + (steps & 1);
                                p.held = Some((j, writes[j as usize].0 + n, steps));
                            }
                            _ => {}
                        }
                    }
                    Ok(CoroutineResult::Return(())) => p.co = None,
                    Err(e) => {
                        let what = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        p.co = None;
                        w.oracle
                            .borrow_mut()
                            .violation(i, format!("panicked: {what}"));
                    }
                }
            }
        }
    }
    drop(procs);
    audit(&w, &sb);
    let mut o = w.oracle.borrow_mut();
    o.stats.steps = steps;
    o.stats.schedules = 1;
    if let Some(t) = o.trace.take() {
        eprintln!("{}", t.join("\n"));
    }
    Outcome {
        violations: std::mem::take(&mut o.violations),
        stats: o.stats,
    }
}

/// After the schedule: a janitor host claims its slot, confirms every host that is gone as off
/// (they all are: dead, or finished), joins, which reaps them, leaves, and then nothing may be
/// left.
fn audit(w: &World, sb: &Superblock) {
    let m = Direct(w);
    let gone: Vec<[u8; 16]> = w.oracle.borrow().uuids.iter().flatten().copied().collect();
    let fail = |what: String| w.oracle.borrow_mut().violations.push(what);
    let ready =
        protocol::records::read_superblock(&m).is_ok_and(|s| s.state == crate::abi::SB_READY);
    if !ready {
        // Host 0 died before it formatted the portal: nobody can have joined.
        if !gone.is_empty() {
            fail("audit: hosts joined a portal that is not formatted".into());
        }
        return;
    }
    let mut janitor = match Host::claim_slot(&m, *sb, [0x7a; 16], JANITOR_SLOT) {
        Ok(h) => h,
        Err(e) => {
            return fail(format!(
                "audit: the janitor could not claim its slot: {e:?}"
            ))
        }
    };
    for slot in 0..sb.geometry.host_slots {
        match protocol::records::read_slot(&m, sb, slot).map(|r| r.0) {
            Ok(Ok(r))
                if slot != JANITOR_SLOT && r.state != SlotState::Free && gone.contains(&r.host) =>
            {
                if let Err(e) = janitor.confirm_fenced(&m, slot, r.host) {
                    fail(format!("audit: confirming slot {slot} off: {e:?}"));
                }
            }
            Ok(_) => {}
            Err(e) => fail(format!("audit: slot {slot}: {e:?}")),
        }
    }
    if let Err(e) = janitor.complete_join(&m) {
        return fail(format!("audit: the janitor could not join: {e:?}"));
    }
    if let Err(e) = janitor.heartbeat(&m).and_then(|_| janitor.leave(&m)) {
        return fail(format!("audit: the janitor's reap or leave failed: {e:?}"));
    }
    let r = protocol::records::for_each_owner(&m, sb, |b, o| {
        if o != Owner::FREE {
            fail(format!(
                "audit: block {b} is still owned by slot {} epoch {} after every host left \
                 or was reaped",
                o.slot, o.epoch
            ))
        }
    });
    if let Err(e) = r {
        fail(format!("audit: owner table: {e:?}"));
    }
    let r = protocol::records::for_each_member(&m, sb, |v| {
        if v.member.state == MemberState::Live {
            fail(format!("audit: slot {} is still a live member", v.slot));
        }
        // A reaped host's last record stays in its slot.
        let reaped = |r: &crate::abi::SlotRecord| {
            v.member.state == MemberState::Fenced && v.member.epoch == r.epoch
        };
        if v.record
            .is_some_and(|r| r.state != SlotState::Free && !reaped(&r))
        {
            fail(format!("audit: slot {} is neither free nor reaped", v.slot));
        }
    });
    if let Err(e) = r {
        fail(format!("audit: member table: {e:?}"));
    }
}
