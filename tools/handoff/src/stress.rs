//! The protocol stress test: worker processes share one file-backed portal
//! and do random joins, claims, returns, handoffs and leaves while the
//! parent kills them with SIGKILL at random points and starts new ones, and
//! pauses them with SIGSTOP for one to four leases before SIGCONT.
//!
//! The parent formats the portal and is a host too (host index 0), and the
//! fence agent: a worker it killed is confirmed off ([`Host::confirm_fenced`],
//! recorded in the parent's own slot, once the kill is done); a paused one
//! never is, so its blocks must stay its own however long it is stopped.
//! Worker `i` is host index `i + 1`, in every process that runs it: a worker
//! started after a kill is the same host booting again.
//!
//! Each worker checks what it can see of the invariants as it goes: a block
//! it owns carries its stamp (a block owned twice gets another host's), and
//! the portal lock is exclusive (a witness word written inside it is never
//! overwritten before it leaves). At the end the parent kills every worker,
//! confirms each, waits until every one has been reaped, and leaves the file
//! for an independent checker (`tools/stress/check_portal.py`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::abi::handoff::Extent;
use crate::abi::{Geometry, HandoffState, Timing};
use crate::medium::FileMedium;
use crate::protocol::{self, Error, Host, Medium};

/// The stress portal's geometry: small blocks, so that many fit.
pub const GEOMETRY_BLOCK_SIZE: u64 = 64 << 10;
const GEO: Geometry = Geometry {
    block_size: GEOMETRY_BLOCK_SIZE,
    block_count: 65,
    header_blocks: 1,
    host_slots: 16,
};
const TIMING: Timing = Timing {
    lease_ms: 300,
    settle_ms: 15,
};
const HANDOFFS: u32 = 8;

/// The portal's bytes, then the counters.
const PORTAL_BYTES: usize = (GEO.block_size * GEO.block_count) as usize;
const FILE_BYTES: usize = PORTAL_BYTES + 4096;
/// Counters: the lock witness, violations, then per worker its operations.
const WITNESS: usize = PORTAL_BYTES;
const VIOLATIONS: usize = PORTAL_BYTES + 8;
const OPS: usize = PORTAL_BYTES + 64;
/// Per worker, the UUID it joins (or last joined) with, as two words.
const UUIDS: usize = PORTAL_BYTES + 1024;
/// Most workers (one counter each).
pub const MAX_WORKERS: usize = 64;

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn uuid(rng: &mut Rng) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    u[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    u
}

/// What a worker believes it owns, with the stamp it wrote in each block.
struct Worker {
    m: FileMedium,
    index: usize,
    rng: Rng,
    host: Option<Host>,
    mine: Vec<u64>,
    /// A membership whose lease lapsed, still giving up what it has.
    lapsed: Option<Host>,
}

fn load_uuid(m: &FileMedium, at: usize) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&m.load(at).to_le_bytes());
    u[8..].copy_from_slice(&m.load(at + 8).to_le_bytes());
    u
}

fn store_uuid(m: &FileMedium, at: usize, u: [u8; 16]) {
    m.store(at, u64::from_le_bytes(u[..8].try_into().unwrap()));
    m.store(at + 8, u64::from_le_bytes(u[8..].try_into().unwrap()));
}

impl Worker {
    fn block_offset(b: u64) -> usize {
        ((b + u64::from(GEO.header_blocks)) * GEO.block_size) as usize
    }

    fn count(&self) {
        let at = OPS + 8 * self.index;
        self.m.store(at, self.m.load(at) + 1);
    }

    fn violation(&self, what: &str) {
        eprintln!("portal-stress: worker {}: VIOLATION: {what}", self.index);
        self.m.store(VIOLATIONS, self.m.load(VIOLATIONS) + 1);
    }

    fn join(&mut self) -> Result<(), Error> {
        let sb =
            *protocol::boot::open(&self.m, &GEO, uuid(&mut self.rng), HANDOFFS, TIMING, false)?
                .superblock();
        let id = uuid(&mut self.rng);
        // Known to the fence agent before it is written anywhere.
        store_uuid(&self.m, UUIDS + 16 * self.index, id);
        let h = Host::join(&self.m, sb, id, worker_slot(self.index))?;
        self.mine.clear();
        self.host = Some(h);
        self.count();
        Ok(())
    }

    /// Compares the blocks the table says this host owns with the stamps:
    /// stamps new ones, checks old ones, forgets the ones gone.
    fn reconcile(&mut self) -> Result<(), Error> {
        let Some(h) = self.host.as_mut() else {
            return Ok(());
        };
        let mut owned = Vec::new();
        h.owned(&self.m, |b, lent| {
            if !lent {
                owned.push(b)
            }
        })?;
        let stamp = (u64::from(h.slot()) << 48) | (u64::from(h.epoch()) << 16) | self.index as u64;
        let mut bad = Vec::new();
        for &b in &owned {
            let at = Self::block_offset(b);
            if self.mine.contains(&b) {
                let seen = self.m.load(at);
                if seen != stamp {
                    bad.push((b, seen));
                }
            } else if h.holds_lease(&self.m) {
                // Using a block's memory needs a valid lease, as writing
                // the header does.
                self.m.store(at, stamp);
            } else {
                return Err(Error::Expired);
            }
        }
        // A stamp read is only evidence if this host still held its lease
        // after reading it.
        h.renew(&self.m)?;
        for (b, seen) in bad {
            self.violation(&format!(
                "block {b} owned by this host carries stamp {seen:#x}, not {stamp:#x}"
            ));
        }
        self.mine = owned;
        Ok(())
    }

    fn step(&mut self) -> Result<(), Error> {
        if let Some(mut h) = self.lapsed.take() {
            // Self-fencing: it joins again only once it has given up what it had.
            return match h.leave(&self.m) {
                Err(e) if !e.is_gone() => {
                    self.lapsed = Some(h);
                    Err(e)
                }
                _ => Ok(()),
            };
        }
        if self.host.is_none() {
            return self.join();
        }
        let h = self.host.as_mut().unwrap();
        let m = &self.m;
        let sb = *h.superblock();
        match self.rng.below(100) {
            0..=24 => {
                h.claim(m, 1 + self.rng.below(4))?;
            }
            25..=39 => {
                let r = self.rng.next_u64();
                h.give_back(m, |b| (b ^ r) % 3 == 0)?;
            }
            40..=54 => {
                // Offer up to two runs of owned blocks to a random member.
                let target = self.rng.below(u64::from(GEO.host_slots)) as u32;
                let mut free = Vec::new();
                h.owned(m, |b, lent| {
                    if !lent {
                        free.push(b)
                    }
                })?;
                if free.is_empty()
                    || protocol::records::read_member(m, &sb, target)?.state
                        != crate::abi::MemberState::Live
                {
                    h.heartbeat(m)?;
                } else {
                    let b = free[self.rng.below(free.len() as u64) as usize];
                    let ext = [Extent {
                        start: b as u32,
                        count: 1,
                    }];
                    match h.offer(m, target, &ext) {
                        Ok(_) | Err(Error::Invalid(_)) | Err(Error::Full(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            55..=84 => {
                // Accept what is offered to this host; release what it
                // offered and was accepted; sometimes cancel an offer.
                for i in 0..sb.handoffs {
                    let x = protocol::records::read_handoff(m, &sb, i)?;
                    let me = (
                        x.target as u32 == h.slot() && x.target_epoch == h.epoch(),
                        x.source as u32 == h.slot() && x.source_epoch == h.epoch(),
                    );
                    let r = match (x.state, me) {
                        (HandoffState::Offered, (true, _)) if self.rng.below(4) != 0 => {
                            h.accept(m, i, x.id)
                        }
                        (HandoffState::Offered, (true, _)) | (HandoffState::Offered, (_, true))
                            if self.rng.below(3) == 0 =>
                        {
                            h.cancel(m, i, x.id)
                        }
                        (HandoffState::Accepted, (_, true)) => h.release(m, i, x.id),
                        _ => continue,
                    };
                    match r {
                        Ok(()) | Err(Error::Invalid(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            85..=94 => {
                h.heartbeat(m)?;
            }
            95..=96 => {
                // The portal lock is exclusive: a witness written under it
                // survives until it is cleared.
                let me = 1 + self.index as u64 + (u64::from(std::process::id()) << 8);
                let mut broken = None;
                h.locked(m, |m| {
                    let w = WITNESS as u64;
                    let mut b = [0u8; 8];
                    let _ = m.read(w, &mut b);
                    let _ = m.write(w, &me.to_le_bytes());
                    m.sleep_ms(1);
                    let _ = m.read(w, &mut b);
                    if u64::from_le_bytes(b) != me {
                        broken = Some(u64::from_le_bytes(b));
                    }
                    let _ = m.write(w, &0u64.to_le_bytes());
                })?;
                if let Some(other) = broken {
                    self.violation(&format!(
                        "lock witness overwritten by {other:#x} while held"
                    ));
                }
            }
            _ => {
                let mut h = self.host.take().unwrap();
                self.mine.clear();
                if let Err(e) = h.leave(m) {
                    // Not gone: it still has its slot, and tries again (see the top).
                    if !e.is_gone() {
                        self.lapsed = Some(h);
                    }
                    return Err(e);
                }
                self.count();
                return Ok(());
            }
        }
        self.count();
        self.reconcile()
    }
}

/// A worker process: runs until killed.
pub fn worker(path: &Path, index: usize, seed: u64) -> Result<()> {
    let m = FileMedium::open(path, FILE_BYTES)?;
    let mut w = Worker {
        m,
        index,
        rng: Rng(seed | 1),
        host: None,
        mine: Vec::new(),
        lapsed: None,
    };
    loop {
        match w.step() {
            Ok(()) => {}
            Err(Error::Expired) => {
                // Its lease lapsed (it was paused): it self-fences. It stops using its blocks,
                // gives them back (see step) and joins again.
                w.mine.clear();
                w.lapsed = w.host.take();
            }
            Err(e) if e.is_fatal() => {
                // Fenced or evicted: stop using the portal, join again.
                w.host = None;
                w.mine.clear();
            }
            Err(Error::Corrupt(kind, index)) => {
                w.violation(&format!("{kind:?} record {index} has no valid copy"));
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// What a stress run did.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    pub snapshots: u64,
    pub workers: usize,
    pub operations: u64,
    pub kills: u64,
    pub pauses: u64,
    pub suspects_left: u64,
    pub violations: u64,
    pub seconds: f64,
    pub final_owned: u64,
    pub final_free: u64,
}

/// Stops `running` (and waits until each is stopped), copies the portal's
/// bytes of `path` to `dir/snap-N.img`, and continues them.
fn snapshot(path: &Path, dir: &Path, n: u64, running: &[&Child]) -> Result<()> {
    for c in running {
        signal(c, libc::SIGSTOP)?;
    }
    for c in running {
        let stat = format!("/proc/{}/stat", c.id());
        let t0 = Instant::now();
        // The third field of stat is the state: T once the stop took effect.
        while std::fs::read_to_string(&stat)
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('T')
            })
            .unwrap_or(false)
            && t0.elapsed() < Duration::from_secs(1)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let out = dir.join(format!("snap-{n}.img"));
    std::fs::write(&out, &bytes[..PORTAL_BYTES.min(bytes.len())])
        .with_context(|| format!("writing {}", out.display()))?;
    for c in running {
        signal(c, libc::SIGCONT)?;
    }
    Ok(())
}

/// The host index of worker `i`: the parent is host 0.
fn worker_slot(i: usize) -> u32 {
    u32::try_from(i + 1).unwrap_or(u32::MAX)
}

/// The fence agent's confirmation that worker `i`, host `u` (a worker it
/// killed), is off, recorded in the agent's own slot. A worker killed before
/// its claim landed is not in its slot: nothing to confirm.
fn fence(agent: &mut Host, m: &FileMedium, i: usize, u: [u8; 16]) -> Result<()> {
    match agent.confirm_fenced(m, worker_slot(i), u) {
        Ok(()) | Err(Error::Invalid(_)) => Ok(()),
        Err(e) => bail!("fencing worker {i}: {}", e.as_str()),
    }
}

/// The agent's heartbeat: renews its lease and drops the confirmations of
/// hosts reaped. It takes no lock (the workers reap): a ticket of its own
/// would queue every worker behind a worker paused in the lock.
fn agent_heartbeat(agent: &mut Host, m: &FileMedium) -> Result<()> {
    agent
        .keep_alive(m)
        .map_err(|e| anyhow::anyhow!("the fence agent's heartbeat: {}", e.as_str()))
}

/// Sends SIGSTOP or SIGCONT to a worker.
fn signal(c: &Child, sig: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(c.id()).context("worker pid")?;
    // SAFETY: kill(2) takes any pid and signal number; it touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } != 0 {
        bail!(
            "signal {sig} to worker {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn spawn(exe: &Path, path: &Path, index: usize, seed: u64) -> Result<Child> {
    Command::new(exe)
        .arg("--worker")
        .arg(index.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg(path)
        .spawn()
        .with_context(|| format!("starting worker {index}"))
}

/// The parent: `workers` processes until `ops` operations in total, a
/// SIGKILL every `kill_every` operations on average and a SIGSTOP of one to
/// four leases every `pause_every` (0: none); then a last host reaps the
/// dead. With `snapshots`, every two seconds it stops every worker, copies
/// the portal into that directory (`snap-N.img`) and continues them: a
/// moment of the run for the independent checker.
#[allow(clippy::too_many_arguments)]
pub fn run(
    exe: &Path,
    path: &PathBuf,
    workers: usize,
    ops: u64,
    kill_every: u64,
    pause_every: u64,
    seed: u64,
    snapshots: Option<&Path>,
) -> Result<Summary> {
    let most = (GEO.host_slots - 1) as usize;
    if workers == 0 || workers > most {
        bail!("--procs must be 1..={most} (host index 0 is the parent's)");
    }
    // A fresh, all-zero portal: the parent formats it, as host index 0.
    let _ = std::fs::remove_file(path);
    let m = FileMedium::open(path, FILE_BYTES)?;
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let sb = *protocol::boot::open(&m, &GEO, uuid(&mut rng), HANDOFFS, TIMING, true)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.as_str()))?
        .superblock();
    let mut agent = Host::join(&m, sb, uuid(&mut rng), 0).map_err(|e| {
        anyhow::anyhow!("{}: the fence agent's join: {}", path.display(), e.as_str())
    })?;
    let mut children = Vec::new();
    for i in 0..workers {
        children.push(spawn(exe, path, i, rng.next_u64())?);
    }
    let total = |m: &FileMedium| (0..workers).map(|i| m.load(OPS + 8 * i)).sum::<u64>();
    let mut kills = 0;
    // Kills come with progress (every `kill_every` operations on average, at
    // whatever point a random worker is), not with time: a stalled portal
    // must not be killed into a slower one.
    let mut next_kill = kill_every / 2 + rng.below(kill_every.max(1));
    let mut next_pause = pause_every / 2 + rng.below(pause_every.max(1));
    let (mut pauses, mut paused) = (0, Vec::<(usize, Instant)>::new());
    let lease = Duration::from_millis(u64::from(TIMING.lease_ms));
    let (mut next_snapshot, mut n_snapshots) = (Instant::now() + Duration::from_secs(2), 0);
    if let Some(dir) = snapshots {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut beat = Instant::now();
    while total(&m) < ops {
        std::thread::sleep(Duration::from_millis(2 + rng.below(8)));
        if beat.elapsed() >= lease / 5 {
            agent_heartbeat(&mut agent, &m)?;
            beat = Instant::now();
        }
        // Progress goes on while workers are paused: count it from the others.
        if total(&m) >= next_kill {
            next_kill = total(&m) + kill_every / 2 + rng.below(kill_every.max(1));
            let i = rng.below(workers as u64) as usize;
            let _ = children[i].kill();
            let _ = children[i].wait();
            paused.retain(|&(p, _)| p != i);
            // Off for sure: the fence agent confirms it.
            fence(&mut agent, &m, i, load_uuid(&m, UUIDS + 16 * i))?;
            kills += 1;
            children[i] = spawn(exe, path, i, rng.next_u64())?;
        }
        if pause_every != 0 && total(&m) >= next_pause && paused.len() + 2 < workers {
            next_pause = total(&m) + pause_every / 2 + rng.below(pause_every.max(1));
            // One of the workers that runs.
            let running: Vec<usize> = (0..workers)
                .filter(|i| !paused.iter().any(|&(p, _)| p == *i))
                .collect();
            let i = running[rng.below(running.len() as u64) as usize];
            {
                signal(&children[i], libc::SIGSTOP)?;
                let stop = lease + lease.mul_f64(rng.below(3000) as f64 / 1000.0);
                paused.push((i, Instant::now() + stop));
                pauses += 1;
            }
        }
        let now = Instant::now();
        for &(i, _) in paused.iter().filter(|&&(_, until)| until <= now) {
            signal(&children[i], libc::SIGCONT)?;
        }
        paused.retain(|&(_, until)| until > now);
        if let Some(dir) = snapshots {
            if now >= next_snapshot {
                next_snapshot = now + Duration::from_secs(2);
                let running: Vec<&Child> = (0..workers)
                    .filter(|i| !paused.iter().any(|&(p, _)| p == *i))
                    .map(|i| &children[i])
                    .collect();
                snapshot(path, dir, n_snapshots, &running)?;
                n_snapshots += 1;
            }
        }
        if start.elapsed() > Duration::from_secs(900) {
            bail!("only {} operations after 15 minutes", total(&m));
        }
    }
    let operations = total(&m);
    // Every worker dies at once, and the agent reaps every one of them.
    let h = &mut agent;
    for (i, c) in children.iter_mut().enumerate() {
        let _ = c.kill();
        let _ = c.wait();
        fence(h, &m, i, load_uuid(&m, UUIDS + 16 * i))?;
    }
    let until = Instant::now() + Duration::from_millis(u64::from(TIMING.lease_ms) * 3);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(u64::from(TIMING.lease_ms / 5)));
        h.heartbeat(&m)
            .map_err(|e| anyhow::anyhow!("final heartbeat: {}", e.as_str()))?;
    }
    // Every worker was killed and confirmed off, and reaped: none is left a
    // suspect (a membership its worker dropped without leaving would be).
    let mut left: Vec<protocol::Suspect> = Vec::new();
    h.suspects(&m, |s| left.push(s))
        .map_err(|e| anyhow::anyhow!("final suspects: {}", e.as_str()))?;
    let (mut final_owned, mut final_free) = (0, 0);
    protocol::records::for_each_owner(&m, &sb, |_, o| {
        if o.is_free() {
            final_free += 1
        } else {
            final_owned += 1
        }
    })
    .map_err(|e| anyhow::anyhow!("owner table: {}", e.as_str()))?;
    Ok(Summary {
        snapshots: n_snapshots,
        workers,
        operations,
        kills,
        pauses,
        violations: m.load(VIOLATIONS),
        suspects_left: left.len() as u64,
        seconds: start.elapsed().as_secs_f64(),
        final_owned,
        final_free,
    })
}

/// Lock-acquisition latency with `procs` contending processes: each takes
/// and releases the lock `rounds` times; returns every latency in µs.
pub fn lock_latency(path: &Path, procs: usize, rounds: usize) -> Result<Vec<u64>> {
    let _ = std::fs::remove_file(path);
    {
        let m = FileMedium::open(path, FILE_BYTES)?;
        protocol::boot::open(&m, &GEO, [1; 16], HANDOFFS, TIMING, true)
            .map_err(|e| anyhow::anyhow!(e.as_str()))?;
    }
    let mut pids = Vec::new();
    for i in 0..procs {
        // SAFETY: fork in a single-threaded process; the child only runs
        // this loop and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = (|| -> Result<()> {
                let m = FileMedium::open(path, FILE_BYTES)?;
                let sb = protocol::records::read_superblock(&m)
                    .map_err(|e| anyhow::anyhow!(e.as_str()))?;
                let mut u = [0u8; 16];
                u[0] = i as u8 * 7 + 1;
                u[1] = i as u8;
                let mut h = Host::join(&m, sb, u, worker_slot(i))
                    .map_err(|e| anyhow::anyhow!(e.as_str()))?;
                let mut out = Vec::new();
                for _ in 0..rounds {
                    let t = Instant::now();
                    h.locked(&m, |_| ())
                        .map_err(|e| anyhow::anyhow!(e.as_str()))?;
                    out.push(t.elapsed().as_micros() as u64);
                    h.renew(&m).map_err(|e| anyhow::anyhow!(e.as_str()))?;
                }
                let text: Vec<String> = out.iter().map(|x| x.to_string()).collect();
                std::fs::write(path.with_extension(format!("lat{i}")), text.join("\n"))?;
                Ok(())
            })();
            std::process::exit(if code.is_ok() { 0 } else { 1 });
        }
        pids.push(pid);
    }
    let mut all = Vec::new();
    for (i, pid) in pids.into_iter().enumerate() {
        let mut status = 0;
        // SAFETY: waiting for a child we forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if status != 0 {
            bail!("lock latency worker {i} failed");
        }
        let f = path.with_extension(format!("lat{i}"));
        let text = std::fs::read_to_string(&f)?;
        let _ = std::fs::remove_file(&f);
        all.extend(text.lines().filter_map(|l| l.parse::<u64>().ok()));
    }
    Ok(all)
}

/// The header check of a formatted portal with `slots` host slots and
/// `blocks` blocks of `block_size`: what a booting host does before it
/// joins (boot state, then every table record's copies and checksums).
/// Returns the header's bytes and the mean time of a check and of a plain
/// copy of the same bytes (the baseline), in nanoseconds.
pub fn header_check_ns(
    block_size: u64,
    blocks: u64,
    slots: u32,
    rounds: u32,
) -> Result<(usize, f64, f64)> {
    let img = crate::header::format_record([7; 16], block_size, block_size * blocks, slots);
    if img.is_empty() {
        bail!("no portal of {blocks} blocks of {block_size} bytes and {slots} slots");
    }
    let m = crate::medium::Snapshot(&img);
    let device = Geometry {
        block_size,
        block_count: blocks,
        header_blocks: 1,
        host_slots: slots,
    };
    let t = Instant::now();
    for _ in 0..rounds {
        let sb = match crate::abi::boot_state(&img, &device) {
            crate::abi::BootState::Formatted(sb) => sb,
            other => bail!("the formatted image reads as {other:?}"),
        };
        protocol::boot::check_tables(&m, &sb).map_err(|e| anyhow::anyhow!(e.as_str()))?;
    }
    let check = t.elapsed().as_nanos() as f64 / f64::from(rounds);
    let mut copy = vec![0u8; img.len()];
    let t = Instant::now();
    for _ in 0..rounds {
        copy.copy_from_slice(std::hint::black_box(&img));
        std::hint::black_box(&copy);
    }
    let base = t.elapsed().as_nanos() as f64 / f64::from(rounds);
    Ok((img.len(), check, base))
}
