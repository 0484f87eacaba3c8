// SPDX-License-Identifier: GPL-2.0

//! A portal's membership: the one owner of this host's protocol [`Host`], the heartbeat that
//! keeps its lease, and the memory blocks that ownership drives online.
//!
//! Everything this host does through the header goes through [`Membership`]: the boot check
//! (format, join or refuse), the claim of this host's share of free blocks, the heartbeat
//! (renewal, reaping of expired hosts and onlining of what it took from them), the quarantine
//! of blocks that cannot be offlined, and leaving. A host that finds itself fenced or expired
//! stops using the portal: it stops heartbeating and offlines what it can.

mod exports;
mod imports;
mod views;

use kernel::{
    device::Device,
    memory_hotplug::{DriverManagedMemory, MemoryGroup, OnlineType},
    memremap::Memremap,
    new_mutex,
    prelude::*,
    random,
    sync::{Arc, Completion, Mutex},
    time::{msecs_to_jiffies, Instant, Monotonic},
    workqueue::{self, impl_has_delayed_work, new_delayed_work, DelayedWork, WorkItem},
};

use crate::{
    coherency::{Pass, Passes},
    handoff::{
        abi::{Geometry, Superblock, Timing, MAX_HOST_SLOTS},
        layout::PortalLayout,
        num::u32_as_usize,
        protocol::{
            boot::{self, Opened},
            Error as ProtocolError, Host, Suspect,
        },
    },
    medium::HeaderMedium,
    text::{Text, Uuid},
};

/// Handoff records a portal formatted by this driver has.
const HANDOFF_RECORDS: u32 = 16;

/// The longest wait between two runs of the heartbeat, so that [`Membership::stop`] returns
/// within about this long whatever the lease.
const MAX_PERIOD_MS: u32 = 1000;

/// What a host that boots on a portal needs to know and may be asked to do.
pub(crate) struct JoinParams {
    /// The portal as this host sees it: block size, blocks, header blocks, and the host slots
    /// to format it with.
    pub(crate) geometry: Geometry,
    /// The lease to format it with, in ms.
    pub(crate) lease_ms: u32,
    /// The CXL serial number of the device.
    pub(crate) serial: u64,
    /// The serial number of a portal whose refused header may be formatted over (0: none).
    pub(crate) reformat: u64,
    /// Per cent of the portal's data blocks this host claims.
    pub(crate) claim_pct: u32,
    /// This host's host index: the slot it writes.
    pub(crate) host_index: u32,
}

/// What changes under the lock: this host's membership and the blocks it has online.
struct State {
    /// `None` once this host left, or stopped using the portal.
    host: Option<KBox<Host>>,
    /// Per data block, its memory while onlined.
    blocks: KVec<Option<DriverManagedMemory>>,
    stopping: bool,
    /// The host is leaving: its heartbeat only renews its lease while its blocks go offline.
    leaving: bool,
    /// Why this host stopped using the portal, if it did.
    stopped: Option<&'static str>,
    /// Per host slot, the host this one last logged as a suspect (all zero: a slot that reads
    /// invalid).
    suspected: [Option<[u8; 16]>; u32_as_usize(MAX_HOST_SLOTS)],
    /// The pages this host holds for the handoffs it offered.
    exports: KVec<exports::Exported>,
    /// The handoffs this host offered that were rolled back, until acknowledged (CANCEL): what
    /// became of their process.
    ended: KVec<exports::Ended>,
    /// The handoffs this host accepted, until they end and their pages are pulled.
    imports: KVec<Arc<imports::Imported>>,
}

/// What [`Membership::leave`] could not undo: blocks whose memory stays online.
pub(crate) struct Stuck {
    /// How many blocks.
    pub(crate) blocks: u64,
    /// The first error that offlining returned.
    pub(crate) error: Error,
}

/// A portal's membership, shared by the portal, its heartbeat and its debugfs tables.
#[pin_data]
pub(crate) struct Membership {
    #[pin]
    state: Mutex<State>,
    #[pin]
    work: DelayedWork<Membership>,
    #[pin]
    idle: Completion,
    #[pin]
    passes: Mutex<Passes>,
    header: Memremap,
    origin: Instant<Monotonic>,
    layout: PortalLayout,
    group: Arc<MemoryGroup>,
    region: Text,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Membership { self.work }
}

impl Membership {
    /// Boots on the portal whose header block `header` maps: runs the boot check, joins, claims
    /// this host's share of free blocks and onlines every block it owns into `group`. The
    /// heartbeat is not running yet: see [`Membership::start`].
    ///
    /// # Errors
    ///
    /// The errno of the protocol error that refused the header or the join, with one log line
    /// saying why (see [`crate::errno`]); an allocation failure. Nothing is onlined then.
    pub(crate) fn join(
        dev: &Device,
        region: Text,
        header: Memremap,
        layout: PortalLayout,
        group: Arc<MemoryGroup>,
        params: &JoinParams,
    ) -> Result<Arc<Self>> {
        let name = region.as_str();
        let origin = Instant::<Monotonic>::now();
        let host = {
            let m = HeaderMedium::new(&header, &origin);
            let sb = open(dev, name, &m, params)?;
            let mut uuid = [0u8; 16];
            random::fill_bytes(&mut uuid);
            let host = Host::join(&m, sb, uuid, params.host_index).map_err(|e| {
                dev_err!(
                    dev,
                    "{}: refused: joining the portal as host_index={}: {}; nothing onlined\n",
                    name,
                    params.host_index,
                    e
                );
                Error::from(e)
            })?;
            KBox::new(host, GFP_KERNEL)?
        };
        let data_blocks = layout.blocks();
        let mut blocks = KVec::with_capacity(usize::try_from(data_blocks)?, GFP_KERNEL)?;
        for _ in 0..data_blocks {
            blocks.push(None, GFP_KERNEL)?;
        }
        let this = Arc::pin_init(
            try_pin_init!(Membership {
                state <- new_mutex!(State {
                    host: Some(host),
                    blocks,
                    stopping: false,
                    leaving: false,
                    stopped: None,
                    suspected: [None; u32_as_usize(MAX_HOST_SLOTS)],
                    exports: KVec::new(),
                    ended: KVec::new(),
                    imports: KVec::new(),
                }),
                work <- new_delayed_work!("cxl_switched::heartbeat"),
                idle <- Completion::new(),
                passes <- new_mutex!(Passes::default()),
                header,
                origin,
                layout,
                group,
                region,
            }),
            GFP_KERNEL,
        )?;
        {
            let mut st = this.state.lock();
            let m = this.medium();
            let want = data_blocks
                .saturating_mul(u64::from(params.claim_pct))
                .div_ceil(100);
            if let Some(host) = st.host.as_deref_mut() {
                let mut have = 0u64;
                let _ = host.owned(&m, |_, _| have += 1);
                if let Err(e) = host.claim(&m, want.saturating_sub(have)) {
                    dev_warn!(dev, "{}: claiming blocks: {}\n", name, e);
                }
            }
            this.online_owned(&mut st)?;
        }
        Ok(this)
    }

    /// The protocol's medium.
    fn medium(&self) -> HeaderMedium<'_> {
        HeaderMedium::new(&self.header, &self.origin)
    }

    /// How long until the next heartbeat: five a lease, at most [`MAX_PERIOD_MS`] apart.
    fn period_ms(host: &Host) -> u32 {
        (host.superblock().timing.lease_ms / 5).clamp(1, MAX_PERIOD_MS)
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
                None => MAX_PERIOD_MS,
            }
        };
        Self::schedule(this.clone(), ms);
    }

    /// Queues the next heartbeat; if it cannot be queued the heartbeat ends here, so that
    /// [`Membership::stop`] does not wait for a run that never comes.
    fn schedule(this: Arc<Self>, ms: u32) {
        if let Err(this) = workqueue::system().enqueue_delayed(this, msecs_to_jiffies(ms)) {
            pr_err!(
                "{}: heartbeat already queued; not queued again\n",
                this.region.as_str()
            );
            this.idle.complete_all();
        }
    }

    /// Stops the heartbeat and waits until it no longer runs: at most about
    /// [`MAX_PERIOD_MS`] plus one heartbeat.
    pub(crate) fn stop(&self) {
        self.state.lock().stopping = true;
        self.idle.wait_for_completion();
    }

    /// Onlines every block this host owns and has not onlined; a block that cannot be added is
    /// given back. Returns the number onlined.
    fn online_owned(&self, st: &mut State) -> Result<u64> {
        let m = self.medium();
        let region = self.region.as_str();
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
            // A block whose pages an import still maps is not this host's to online yet.
            let imported = st.imports.iter().any(|x| x.holds(b));
            if !lent && missing && !imported {
                if let Err(e) = want.push(b, GFP_KERNEL) {
                    err = Some(e);
                }
            }
        });
        if let Err(e) = r {
            pr_err!("{}: reading the owner table: {}\n", region, e);
            return Err(e.into());
        }
        if let Some(e) = err {
            return Err(e.into());
        }
        let mut onlined = 0;
        for &b in want.iter() {
            let (Some(range), Some(slot)) = (
                self.layout.block(b),
                usize::try_from(b).ok().and_then(|i| st.blocks.get_mut(i)),
            ) else {
                continue;
            };
            // Onlining a block takes a while: renew the lease before using each.
            if let Err(e) = host.renew(&m) {
                pr_err!("{}: {} while onlining\n", region, e);
                return Err(e.into());
            }
            // Coherency: the block comes to this host; lines it cached earlier go first.
            if let Err(e) = self.passes.lock().run(&range, Pass::Invalidate) {
                pr_err!(
                    "{}: block {} ({:#x}) not invalidated ({:?}); given back\n",
                    region,
                    b,
                    range.start,
                    e
                );
                let _ = host.give_back(&m, |x| x == b);
                continue;
            }
            match DriverManagedMemory::add(
                &self.group,
                range.start,
                range.end - range.start,
                c"cxl_switched",
                OnlineType::Movable,
            ) {
                Ok(mem) => {
                    *slot = Some(mem);
                    onlined += 1;
                }
                Err(e) => {
                    pr_err!(
                        "{}: block {} ({:#x}) not onlined ({:?}); given back\n",
                        region,
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

    /// Offlines and removes one block, then writes its lines back. On error: the block's
    /// memory if it stays online, and the error; each with one log line.
    fn offline_one(
        &self,
        mem: DriverManagedMemory,
    ) -> core::result::Result<(), (Option<DriverManagedMemory>, Error)> {
        let block = mem.start()..mem.start().saturating_add(mem.size());
        match mem.remove() {
            // Coherency: the block leaves this host; its lines go back first. A block whose
            // lines could not be written back is kept (quarantined).
            Ok(()) => self
                .passes
                .lock()
                .run(&block, Pass::WriteBack)
                .map_err(|e| {
                    pr_err!(
                        "{}: block at {:#x} not written back ({:?}); kept\n",
                        self.region.as_str(),
                        block.start,
                        e
                    );
                    (None, e)
                }),
            Err((mem, e)) => {
                pr_err!(
                    "{}: block at {:#x} not offlined ({:?}); it stays online\n",
                    self.region.as_str(),
                    mem.start(),
                    e
                );
                Err((Some(mem), e))
            }
        }
    }

    /// Offlines and removes every onlined block of `blocks`. Returns the blocks that could not
    /// be removed (their memory stays online, leaked) as a bitmap over block indexes, how many,
    /// and the first error.
    fn offline(
        &self,
        blocks: &mut KVec<Option<DriverManagedMemory>>,
    ) -> (KVec<bool>, u64, Option<Error>) {
        let mut stuck = KVec::new();
        let mut n = 0;
        let mut first = None;
        for slot in blocks.iter_mut() {
            let bad = match slot.take().map(|mem| self.offline_one(mem)) {
                None | Some(Ok(())) => false,
                Some(Err((mem, e))) => {
                    first.get_or_insert(e);
                    if let Some(mem) = mem {
                        mem.leak();
                    }
                    true
                }
            };
            n += u64::from(bad);
            // Allocation failure only loses the record of which block is stuck: then every
            // block is treated as stuck, below.
            let _ = stuck.push(bad, GFP_KERNEL);
        }
        (stuck, n, first)
    }

    /// Lets go of the portal: offlines and removes every block, then stops the heartbeat,
    /// returns the blocks and leaves. Blocks that cannot be offlined stay online, as they are,
    /// and are quarantined in the header so that no other host claims them.
    ///
    /// Offlining waits for pages to be migrated, for as long as that takes; a fatal signal to
    /// the task that unbinds (or unloads) ends the wait. The heartbeat keeps this host's lease
    /// all that time: until its memory is off its blocks, no other host may take them.
    ///
    /// # Errors
    ///
    /// [`Stuck`] if some blocks stay online: then the caller must keep what their memory
    /// depends on (the node's type and tier, the header claim) for good.
    pub(crate) fn leave(&self, dev: &Device) -> core::result::Result<(), Stuck> {
        let region = self.region.as_str();
        // The blocks leave the state, so that the lock is not held while they go offline.
        let mut blocks = {
            // Pages mapped from the portal into processes come into this host's memory first.
            self.pull_all();
            let mut st = self.state.lock();
            st.leaving = true;
            // Pinned pages would keep their blocks online; leaving ends their handoffs anyway.
            st.exports.clear();
            st.ended.clear();
            core::mem::take(&mut st.blocks)
        };
        let (stuck, n, err) = self.offline(&mut blocks);
        self.stop();
        let mut st = self.state.lock();
        let m = self.medium();
        if let Some(host) = st.host.as_deref_mut() {
            if n != 0 {
                let is_stuck = |b: u64| {
                    usize::try_from(b)
                        .ok()
                        .and_then(|i| stuck.get(i))
                        .copied()
                        .unwrap_or(true)
                };
                if let Err(e) = host.quarantine(&m, is_stuck) {
                    dev_err!(dev, "{}: quarantining blocks: {}\n", region, e);
                }
            }
            match host.leave(&m) {
                Ok(()) => {
                    let p = *self.passes.lock();
                    dev_info!(
                        dev,
                        "{}: left the portal (slot {}); {} blocks written back, last {} us\n",
                        region,
                        host.slot(),
                        p.write_backs,
                        p.write_back_us
                    )
                }
                Err(e) => dev_err!(
                    dev,
                    "{}: leaving the portal: {}; other hosts reclaim its blocks once it is fenced\n",
                    region,
                    e
                ),
            }
        }
        st.host = None;
        if n == 0 {
            return Ok(());
        }
        Err(Stuck {
            blocks: n,
            error: err.unwrap_or(EBUSY),
        })
    }

    /// One heartbeat. Returns the delay to the next, or `None` to stop.
    fn beat(&self, st: &mut State) -> Option<u32> {
        let m = self.medium();
        let region = self.region.as_str();
        let host = st.host.as_deref_mut()?;
        let period = Self::period_ms(host);
        // While leaving, the lease is all that matters: nothing more is reaped or onlined.
        let beat = if st.leaving {
            host.renew(&m).map(|()| 0)
        } else {
            host.heartbeat(&m)
        };
        match beat {
            Ok(n) => {
                Self::log_suspects(region, host, &m, &mut st.suspected);
                if n != 0 {
                    pr_info!("{}: reaped {} host(s) confirmed off (fenced)\n", region, n);
                    match self.online_owned(st) {
                        Ok(k) => pr_info!("{}: onlined {} reclaimed block(s)\n", region, k),
                        Err(e) => pr_err!("{}: reclaimed blocks not onlined ({:?})\n", region, e),
                    }
                }
                if !st.exports.is_empty() || !st.imports.is_empty() {
                    let imports = st.imports.len();
                    Self::drop_ended(st, &m, region);
                    // An import that ended leaves its blocks to this host (released to it).
                    if st.imports.len() < imports {
                        match self.online_owned(st) {
                            Ok(k) => pr_info!("{}: onlined {} block(s) handed over\n", region, k),
                            Err(e) => {
                                pr_err!("{}: blocks handed over not onlined ({:?})\n", region, e)
                            }
                        }
                    }
                }
                Some(period)
            }
            Err(e) if e.is_fatal() => {
                pr_err!(
                    "{}: {}: stops using the portal and offlines its blocks\n",
                    region,
                    e
                );
                // Its handoffs end with it: their pinned pages would keep blocks online.
                st.exports.clear();
                st.ended.clear();
                let (_, stuck, _) = self.offline(&mut st.blocks);
                if stuck != 0 {
                    pr_err!(
                        "{}: {} block(s) stay online after the fence; another host may own them\n",
                        region,
                        stuck
                    );
                } else if e == ProtocolError::Expired {
                    // Self-fence: its lease lapsed (a pause), but nobody reclaims what it has
                    // unless it is fenced. It gives it all back, now that it is offline.
                    match host.leave(&m) {
                        Ok(()) => pr_info!(
                            "{}: self-fenced: gave its blocks back and left the portal; \
                             rebind to join again\n",
                            region
                        ),
                        Err(e) => pr_err!(
                            "{}: self-fenced, but not left ({}); other hosts reclaim its blocks \
                             once it is fenced\n",
                            region,
                            e
                        ),
                    }
                }
                st.host = None;
                st.stopped = Some(e.as_str());
                None
            }
            Err(e) => {
                pr_warn!("{}: heartbeat: {}; retrying\n", region, e);
                Some(period)
            }
        }
    }

    /// Logs each host that became a suspect (once), and each suspect that renews again.
    fn log_suspects(
        region: &str,
        host: &mut Host,
        m: &HeaderMedium<'_>,
        logged: &mut [Option<[u8; 16]>; u32_as_usize(MAX_HOST_SLOTS)],
    ) {
        let mut now = [None; u32_as_usize(MAX_HOST_SLOTS)];
        let mut silent = [0u64; u32_as_usize(MAX_HOST_SLOTS)];
        let r = host.suspects(m, |s: Suspect| {
            let i = u32_as_usize(s.slot);
            if let (Some(n), Some(t)) = (now.get_mut(i), silent.get_mut(i)) {
                *n = Some(s.host.unwrap_or([0; 16]));
                *t = s.silent_ms;
            }
        });
        if let Err(e) = r {
            pr_warn!("{}: looking for suspects: {}\n", region, e);
            return;
        }
        for (slot, ((was, is), ms)) in logged.iter_mut().zip(now).zip(silent).enumerate() {
            if *was == is {
                continue;
            }
            match &is {
                Some(u) => pr_warn!(
                    "{}: host in slot {} ({}) silent for {} ms: a suspect; its blocks stay its \
                     own until it is fenced (fence_confirm)\n",
                    region,
                    slot,
                    Uuid(u),
                    ms
                ),
                None => pr_info!("{}: host in slot {} is no suspect any more\n", region, slot),
            }
            *was = is;
        }
    }

    /// Takes a fence agent's or an administrator's word that the host `uuid` in `slot` is off:
    /// records it in the header, logs it; the next heartbeat reaps it and onlines its blocks.
    ///
    /// # Errors
    ///
    /// [`ESTALE`] if this host is no member; the errno of the protocol error (the slot does not
    /// hold that host: [`EINVAL`]); each with one log line.
    pub(crate) fn confirm_fenced(&self, slot: u32, uuid: &[u8; 16]) -> Result {
        let region = self.region.as_str();
        let mut st = self.state.lock();
        let m = self.medium();
        let Some(host) = st.host.as_deref_mut() else {
            pr_warn!(
                "{}: fence_confirm: this host is no member of the portal\n",
                region
            );
            return Err(ESTALE);
        };
        match host.confirm_fenced(&m, slot, *uuid) {
            Ok(()) => {
                pr_info!(
                    "{}: host in slot {} ({}) confirmed off by the administrator; \
                     it is reaped at the next heartbeat\n",
                    region,
                    slot,
                    Uuid(uuid)
                );
                Ok(())
            }
            Err(e) => {
                pr_warn!(
                    "{}: fence_confirm: slot {} ({}): {}\n",
                    region,
                    slot,
                    Uuid(uuid),
                    e
                );
                Err(e.into())
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
            Some(ms) => Self::schedule(this, ms),
            None => this.idle.complete_all(),
        }
    }
}

/// The boot check: opens the portal's header, formatting it if it is empty or if the
/// administrator named this portal (`reformat=<serial>`) and its header is refused. Returns the
/// superblock to join; a refusal is logged here, in one line.
fn open(
    dev: &Device,
    region: &str,
    m: &HeaderMedium<'_>,
    params: &JoinParams,
) -> Result<Superblock> {
    let timing = Timing {
        lease_ms: params.lease_ms,
        settle_ms: (params.lease_ms / 20).clamp(1, 100),
    };
    let geometry = &params.geometry;
    let serial = params.serial;
    let mut uuid = [0u8; 16];
    random::fill_bytes(&mut uuid);
    match boot::open(
        m,
        geometry,
        uuid,
        HANDOFF_RECORDS,
        timing,
        params.host_index == 0,
    ) {
        Ok(Opened::Formatted(sb)) => {
            dev_info!(
                dev,
                "{}: empty portal formatted as {}\n",
                region,
                Uuid(&sb.uuid)
            );
            Ok(sb)
        }
        Ok(Opened::Joinable(sb)) => Ok(sb),
        Err(ProtocolError::Header(e)) if params.reformat != 0 && params.reformat == serial => {
            dev_warn!(
                dev,
                "{}: header refused ({}); formatted over as reformat={:#x} asks\n",
                region,
                e.as_str(),
                serial
            );
            boot::format(m, uuid, *geometry, HANDOFF_RECORDS, timing).map_err(|e| {
                dev_err!(
                    dev,
                    "{}: formatting failed: {}; nothing onlined\n",
                    region,
                    e
                );
                Error::from(e)
            })
        }
        Err(e @ ProtocolError::Header(_)) => {
            dev_err!(
                dev,
                "{}: refused: portal header: {}; nothing onlined (reformat={:#x} formats it)\n",
                region,
                e,
                serial
            );
            Err(e.into())
        }
        Err(e) => {
            dev_err!(
                dev,
                "{}: refused: portal header: {}; nothing onlined\n",
                region,
                e
            );
            Err(e.into())
        }
    }
}
