// SPDX-License-Identifier: GPL-2.0

//! A portal's membership: the shared protocol ([`crate::protocol`]) over the memremapped header
//! block, the heartbeat that keeps this host's lease, and the memory blocks that ownership
//! drives online.
//!
//! Probe opens the header (format, join or refuse), claims this host's share of free blocks and
//! onlines only the blocks it owns. The heartbeat, delayed work five times a lease, renews the
//! lease, reaps hosts whose lease expired and onlines the blocks it took from them. A host that
//! finds itself fenced or expired stops using the portal: it stops heartbeating and offlines
//! what it can. Remove stops the heartbeat, offlines the blocks, returns them and leaves.

use core::fmt::Write;

use kernel::{
    memory_hotplug::{DriverManagedMemory, MemoryGroup, OnlineType},
    memremap::Memremap,
    new_mutex,
    prelude::*,
    sync::{Arc, Completion, Mutex},
    time::{delay::fsleep, msecs_to_jiffies, Delta, Instant, Monotonic},
    workqueue::{self, impl_has_delayed_work, new_delayed_work, DelayedWork, WorkItem},
};

use crate::{
    layout::PortalLayout,
    portal::Text,
    protocol::{self, Error as ProtoError, Host, Medium},
};

/// The header block as the protocol's medium.
///
/// Coherency: every record write is followed by a write-back and a barrier, every record read
/// preceded by an invalidation ([`Memremap::write_back`], [`Memremap::invalidate`]).
pub(crate) struct HeaderMedium<'a> {
    header: &'a Memremap,
    origin: &'a Instant<Monotonic>,
}

impl<'a> HeaderMedium<'a> {
    pub(crate) fn new(header: &'a Memremap, origin: &'a Instant<Monotonic>) -> Self {
        Self { header, origin }
    }
}

fn offset(off: u64) -> Result<usize, ProtoError> {
    usize::try_from(off).map_err(|_| ProtoError::Medium)
}

impl Medium for HeaderMedium<'_> {
    fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), ProtoError> {
        self.header
            .read(offset(off)?, buf)
            .map_err(|_| ProtoError::Medium)
    }

    fn write(&self, off: u64, data: &[u8]) -> Result<(), ProtoError> {
        self.header
            .write(offset(off)?, data)
            .map_err(|_| ProtoError::Medium)
    }

    fn write_back(&self, off: u64, len: usize) {
        // Out of bounds is caught by the write before it.
        if let Ok(off) = offset(off) {
            let _ = self.header.write_back(off, len);
        }
    }

    fn invalidate(&self, off: u64, len: usize) {
        if let Ok(off) = offset(off) {
            let _ = self.header.invalidate(off, len);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(0)
    }

    fn sleep_ms(&self, ms: u32) {
        let d = if ms == 0 {
            Delta::from_micros(100)
        } else {
            Delta::from_millis(i64::from(ms))
        };
        fsleep(d);
    }
}

/// What changes under the lock: this host's membership and the blocks it has online.
///
/// Fields drop in order: the blocks are removed before their group goes.
pub(crate) struct State {
    /// `None` once this host left, or stopped using the portal.
    pub(crate) host: Option<KBox<Host>>,
    /// Per data block, its memory while onlined.
    pub(crate) blocks: KVec<Option<DriverManagedMemory>>,
    pub(crate) group: MemoryGroup,
    stopping: bool,
    /// Why this host stopped using the portal, if it did.
    pub(crate) stopped: Option<&'static str>,
}

/// A portal's membership, shared by the portal and its heartbeat.
#[pin_data]
pub(crate) struct Membership {
    #[pin]
    pub(crate) state: Mutex<State>,
    #[pin]
    work: DelayedWork<Membership>,
    #[pin]
    idle: Completion,
    pub(crate) header: Memremap,
    pub(crate) origin: Instant<Monotonic>,
    pub(crate) layout: PortalLayout,
    region: Text,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Membership { self.work }
}

impl Membership {
    /// A membership of `host` over `header`, with no block online yet.
    pub(crate) fn new(
        host: KBox<Host>,
        header: Memremap,
        origin: Instant<Monotonic>,
        layout: PortalLayout,
        group: MemoryGroup,
        region: &str,
    ) -> Result<Arc<Self>> {
        let mut blocks = KVec::with_capacity(usize::try_from(layout.blocks())?, GFP_KERNEL)?;
        for _ in 0..layout.blocks() {
            blocks.push(None, GFP_KERNEL)?;
        }
        let mut name = Text::new();
        let _ = name.write_str(region);
        Arc::pin_init(
            try_pin_init!(Membership {
                state <- new_mutex!(State {
                    host: Some(host),
                    blocks,
                    group,
                    stopping: false,
                    stopped: None,
                }),
                work <- new_delayed_work!("cxl_switched::heartbeat"),
                idle <- Completion::new(),
                header,
                origin,
                layout,
                region: name,
            }),
            GFP_KERNEL,
        )
    }

    /// The protocol's medium.
    pub(crate) fn medium(&self) -> HeaderMedium<'_> {
        HeaderMedium::new(&self.header, &self.origin)
    }

    /// Heartbeats come five times a lease: a host renews well before half its lease is gone.
    fn period_ms(host: &Host) -> u32 {
        (host.superblock().timing.lease_ms / 5).max(1)
    }

    /// Starts the heartbeat, renewing the lease first.
    pub(crate) fn start(this: &Arc<Self>) {
        let ms = {
            let mut st = this.state.lock();
            let m = this.medium();
            match st.host.as_deref_mut() {
                Some(h) => {
                    let _ = h.renew(&m);
                    Self::period_ms(h)
                }
                None => 1000,
            }
        };
        let _ = workqueue::system().enqueue_delayed(this.clone(), msecs_to_jiffies(ms));
    }

    /// Stops the heartbeat and waits until it no longer runs.
    pub(crate) fn stop(&self) {
        self.state.lock().stopping = true;
        self.idle.wait_for_completion();
    }

    /// Onlines every block this host owns and has not onlined; a block that cannot be added is
    /// given back. Returns the number onlined.
    pub(crate) fn online_owned(&self, st: &mut State) -> Result<u64> {
        let m = self.medium();
        let Some(host) = st.host.as_deref_mut() else {
            return Ok(0);
        };
        let mut want = KVec::new();
        let mut err = None;
        let r = host.owned(&m, |b, lent| {
            let missing = usize::try_from(b)
                .ok()
                .and_then(|i| st.blocks.get(i))
                .is_some_and(|x| x.is_none());
            if !lent && missing {
                if let Err(e) = want.push(b, GFP_KERNEL) {
                    err = Some(e);
                }
            }
        });
        if let Err(e) = r {
            pr_err!(
                "{}: reading the owner table: {}\n",
                self.region.as_str(),
                e.as_str()
            );
            return Err(EIO);
        }
        if let Some(e) = err {
            return Err(e.into());
        }
        let mut onlined = 0;
        for &b in want.iter() {
            let Some(range) = self.layout.block(b) else {
                continue;
            };
            // Onlining a block takes a while: renew the lease before using each.
            if let Err(e) = host.renew(&m) {
                pr_err!("{}: {} while onlining\n", self.region.as_str(), e.as_str());
                return Err(EIO);
            }
            match DriverManagedMemory::add(
                &st.group,
                range.start,
                range.end - range.start,
                c"cxl_switched",
                OnlineType::Movable,
            ) {
                Ok(mem) => {
                    st.blocks[b as usize] = Some(mem);
                    onlined += 1;
                }
                Err(e) => {
                    pr_err!(
                        "{}: block {} ({:#x}) not onlined ({:?}); given back\n",
                        self.region.as_str(),
                        b,
                        range.start,
                        e
                    );
                    let _ = host.give_back(&m, |x| x == b);
                }
            }
        }
        Ok(onlined)
    }

    /// Offlines and removes every onlined block. Returns the blocks that could not be removed
    /// (their memory stays online, leaked) as a bitmap over block indexes, how many, and the
    /// first error.
    pub(crate) fn offline_all(&self, st: &mut State) -> (KVec<bool>, u64, Option<Error>) {
        let mut stuck = KVec::new();
        let mut n = 0;
        let mut first = None;
        for slot in st.blocks.iter_mut() {
            let bad = match slot.take() {
                None => false,
                Some(mem) => match mem.remove() {
                    Ok(()) => false,
                    Err((mem, e)) => {
                        first.get_or_insert(e);
                        pr_err!(
                            "{}: block at {:#x} not offlined ({:?}); it stays online\n",
                            self.region.as_str(),
                            mem.start(),
                            e
                        );
                        mem.leak();
                        true
                    }
                },
            };
            n += u64::from(bad);
            // Allocation failure only loses the record of which block is stuck: then every
            // block is treated as stuck, below.
            let _ = stuck.push(bad, GFP_KERNEL);
        }
        (stuck, n, first)
    }

    /// One heartbeat. Returns the delay to the next, or `None` to stop.
    fn beat(&self, st: &mut State) -> Option<u32> {
        let m = self.medium();
        let host = st.host.as_deref_mut()?;
        let period = Self::period_ms(host);
        match host.heartbeat(&m) {
            Ok(0) => Some(period),
            Ok(n) => {
                pr_info!(
                    "{}: fenced and reaped {} host(s) whose lease expired\n",
                    self.region.as_str(),
                    n
                );
                match self.online_owned(st) {
                    Ok(k) => pr_info!(
                        "{}: onlined {} reclaimed block(s)\n",
                        self.region.as_str(),
                        k
                    ),
                    Err(e) => pr_err!(
                        "{}: reclaimed blocks not onlined ({:?})\n",
                        self.region.as_str(),
                        e
                    ),
                }
                Some(period)
            }
            Err(e) if e.is_fatal() => {
                pr_err!(
                    "{}: {}: stops using the portal and offlines its blocks\n",
                    self.region.as_str(),
                    e.as_str()
                );
                st.host = None;
                st.stopped = Some(e.as_str());
                let (_, stuck, _) = self.offline_all(st);
                if stuck != 0 {
                    pr_err!(
                        "{}: {} block(s) stay online after the fence; another host may own them\n",
                        self.region.as_str(),
                        stuck
                    );
                }
                None
            }
            Err(e) => {
                pr_warn!(
                    "{}: heartbeat: {}; retrying\n",
                    self.region.as_str(),
                    e.as_str()
                );
                Some(period)
            }
        }
    }
}

impl WorkItem for Membership {
    type Pointer = Arc<Membership>;

    fn run(this: Arc<Membership>) {
        let next = {
            let mut st = this.state.lock();
            if st.stopping {
                None
            } else {
                this.beat(&mut st)
            }
        };
        match next {
            Some(ms) => {
                let _ = workqueue::system().enqueue_delayed(this, msecs_to_jiffies(ms));
            }
            None => this.idle.complete_all(),
        }
    }
}

/// Writes the protocol's member table for sysfs: one line per slot in use.
pub(crate) fn write_members(
    m: &impl Medium,
    host: &Host,
    out: &mut impl Write,
) -> core::result::Result<(), ProtoError> {
    let sb = *host.superblock();
    let mut r = Ok(());
    protocol::for_each_member(m, &sb, |v| {
        let state = match v.member.state {
            crate::abi::MemberState::Free if v.record.is_none() => return,
            crate::abi::MemberState::Free => "free",
            crate::abi::MemberState::Live => "live",
            crate::abi::MemberState::Fenced => "fenced",
        };
        let beat = v.record.map_or(0, |r| r.generation);
        let me = if v.slot == host.slot() { " self" } else { "" };
        if r.is_ok() {
            r = writeln!(
                out,
                "{} {} epoch {} heartbeat {}{}",
                v.slot, state, v.member.epoch, beat, me
            );
        }
    })?;
    r.map_err(|_| ProtoError::Medium)
}

/// Writes the owner table for sysfs: one line per run of blocks with one owner.
pub(crate) fn write_owners(
    m: &impl Medium,
    host: &Host,
    out: &mut impl Write,
) -> core::result::Result<(), ProtoError> {
    let sb = *host.superblock();
    let mut run: Option<(u64, u64, crate::abi::Owner)> = None;
    let mut r = Ok(());
    let mut flush = |run: &(u64, u64, crate::abi::Owner), r: &mut core::fmt::Result| {
        let (first, last, o) = run;
        if r.is_err() {
            return;
        }
        *r = match o.slot {
            crate::abi::NO_SLOT => writeln!(out, "{first}-{last} free"),
            crate::abi::QUARANTINED => writeln!(out, "{first}-{last} quarantined"),
            s => writeln!(out, "{first}-{last} slot {s} epoch {}", o.epoch),
        };
    };
    protocol::for_each_owner(m, &sb, |b, o| match run {
        Some((first, last, prev)) if prev == o && last + 1 == b => run = Some((first, b, prev)),
        _ => {
            if let Some(prev) = run.take() {
                flush(&prev, &mut r);
            }
            run = Some((b, b, o));
        }
    })?;
    if let Some(prev) = run {
        flush(&prev, &mut r);
    }
    r.map_err(|_| ProtoError::Medium)
}
