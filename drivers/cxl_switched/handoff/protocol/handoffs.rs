// SPDX-License-Identifier: GPL-2.0

//! The handoff steps: offer, accept, release, cancel.

use super::abi::handoff::{Extent, ManifestRef};
use super::abi::{Handoff, HandoffState, MemberState, Owner, MAX_EXTENTS};
use super::manifest::check_ref;
use super::records::{for_each_owner, read_handoff, read_member};
use super::tx::{handoff_tag, in_extents};
use super::{Error, Host, Medium, Op};

/// What a handoff step does to the record it checked.
pub(super) enum Step {
    /// The target takes the blocks.
    Accept,
    /// The target no longer reads the source's pages.
    Pulled,
    /// The target maps the pages into a process.
    Mapped,
    /// The handoff ends: released to the target (`true`) or rolled back to the source.
    End(bool),
}

impl Host {
    #[cfg(feature = "tools")]
    /// Offers `extents` of owned blocks to the host in slot `target`. Returns the handoff
    /// record's index and the handoff's id. The blocks stay this host's until accepted.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for extents that are empty, overlap, pass the last block or are not
    /// this host's, or a target that is not a live member; [`Error::Full`] if every handoff
    /// record is in use; the error of the lock, a read or a write.
    pub(crate) fn offer<M: Medium>(
        &mut self,
        m: &M,
        target: u32,
        extents: &[Extent],
    ) -> Result<(u32, u64), Error> {
        self.offer_manifest(m, target, extents, ManifestRef::NONE)
    }

    /// Offers `extents` as [`Host::offer`] does, with the manifest `manifest` of the pages they
    /// move (written before, see [`super::manifest::write_manifest`]; [`ManifestRef::NONE`]
    /// for none). The offer checks that its first chunk lies in the extents and its counts are
    /// in range; the target checks the rest as it reads it.
    ///
    /// # Errors
    ///
    /// As [`Host::offer`]; [`Error::Invalid`] for a manifest reference that is not in the
    /// extents or whose counts are out of range.
    pub(crate) fn offer_manifest<M: Medium>(
        &mut self,
        m: &M,
        target: u32,
        extents: &[Extent],
        manifest: ManifestRef,
    ) -> Result<(u32, u64), Error> {
        if extents.is_empty() || extents.len() > MAX_EXTENTS || target == self.slot {
            return Err(Error::Invalid(
                "an offer needs 1..=8 extents and another host",
            ));
        }
        if target >= self.sb.geometry.host_slots {
            return Err(Error::Invalid("no such host slot"));
        }
        let blocks = self.sb.geometry.data_blocks();
        let mut h = Handoff::FREE;
        h.nr_extents =
            u32::try_from(extents.len()).map_err(|_| Error::Invalid("too many extents"))?;
        for (i, e) in extents.iter().enumerate() {
            let end = u64::from(e.start) + u64::from(e.count);
            if e.count == 0 || end > blocks {
                return Err(Error::Invalid("an extent is empty or past the last block"));
            }
            if extents[..i]
                .iter()
                .any(|o| e.start < o.start + o.count && o.start < e.start + e.count)
            {
                return Err(Error::Invalid("extents overlap"));
            }
            h.extents[i] = *e;
        }
        h.manifest = manifest;
        check_ref(&self.sb, &h)?;
        self.locked_op(m, |me, m| {
            me.reap_fenced(m)?;
            let tm = read_member(m, &me.sb, target)?;
            if tm.state != MemberState::Live {
                return Err(Error::Invalid("the target is not a live member"));
            }
            let (slot, epoch) = (me.slot_id, me.rec.epoch);
            let mut mine = 0u64;
            for_each_owner(m, &me.sb, |b, o| {
                if in_extents(&h, b) && o.slot == slot && o.epoch == epoch && o.handoff == 0 {
                    mine += 1;
                }
            })?;
            let want: u64 = h.extents().iter().map(|e| u64::from(e.count)).sum();
            if mine != want {
                return Err(Error::Invalid(
                    "a block offered is not this host's, or in a handoff",
                ));
            }
            let mut index = None;
            for i in 0..me.sb.handoffs {
                if read_handoff(m, &me.sb, i)?.state == HandoffState::Free {
                    index = Some(i);
                    break;
                }
            }
            let index = index.ok_or(Error::Full("every handoff record is in use"))?;
            let tx = me.begin(m, Op::Handoff)?;
            h.id = tx.id | (u64::from(slot) << 56);
            h.state = HandoffState::Offered;
            h.source = slot;
            h.source_epoch = epoch;
            h.target = u16::try_from(target).map_err(|_| Error::Invalid("no such host slot"))?;
            h.target_epoch = tm.epoch;
            let tag = handoff_tag(index)?;
            me.update_owners(m, &tx, |b, o| {
                in_extents(&h, b).then_some(Owner { handoff: tag, ..o })
            })?;
            me.put_handoff(m, &tx, index, &h)?;
            me.commit(m, tx)?;
            Ok((index, h.id))
        })
    }

    pub(super) fn handoff_step<M: Medium>(
        &mut self,
        m: &M,
        index: u32,
        id: u64,
        step: impl FnOnce(&Handoff, u16, u32) -> Result<Step, Error>,
    ) -> Result<(), Error> {
        if index >= self.sb.handoffs {
            return Err(Error::Invalid("no such handoff record"));
        }
        self.locked_op(m, |me, m| {
            me.reap_fenced(m)?;
            let h = read_handoff(m, &me.sb, index)?;
            if h.id != id || h.state == HandoffState::Free {
                return Err(Error::Invalid("no such handoff in progress"));
            }
            let tx = me.begin(m, Op::Handoff)?;
            match step(&h, me.slot_id, me.rec.epoch)? {
                // The target owns the blocks; the source keeps its pages until release.
                Step::Accept => {
                    let tag = handoff_tag(index)?;
                    let owner = Owner {
                        slot: h.target,
                        handoff: tag,
                        epoch: h.target_epoch,
                    };
                    me.update_owners(m, &tx, |b, o| {
                        (o.handoff == tag && in_extents(&h, b)).then_some(owner)
                    })?;
                    me.put_handoff(
                        m,
                        &tx,
                        index,
                        &Handoff {
                            state: HandoffState::Accepted,
                            ..h
                        },
                    )?;
                }
                Step::Pulled => me.put_handoff(m, &tx, index, &Handoff { pulled: true, ..h })?,
                Step::Mapped => me.put_handoff(m, &tx, index, &Handoff { mapped: true, ..h })?,
                Step::End(released) => me.end_handoff(m, &tx, index, &h, released)?,
            }
            me.commit(m, tx)
        })
    }

    /// Accepts handoff `index` (id `id`) offered to this host: its blocks become this host's.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the handoff is not offered to this host; as [`Host::offer`].
    pub(crate) fn accept<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            if h.state != HandoffState::Offered || h.target != me || h.target_epoch != epoch {
                return Err(Error::Invalid("the handoff is not offered to this host"));
            }
            Ok(Step::Accept)
        })
    }

    /// Tells the source of accepted handoff `index` that this host, its target, no longer
    /// reads the source's pages: it pulled them into its own memory (or their workload ended).
    /// Doing it twice is no error.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the handoff is not accepted by this host; as [`Host::offer`].
    pub(crate) fn pulled<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            if h.state != HandoffState::Accepted || h.target != me || h.target_epoch != epoch {
                return Err(Error::Invalid("the handoff is not accepted by this host"));
            }
            Ok(Step::Pulled)
        })
    }

    /// Tells the source of accepted handoff `index` that this host, its target, is about to map
    /// the pages into a process: from then on they may change, and the source's process must
    /// not resume even if the handoff is rolled back. Doing it twice is no error.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the handoff is not accepted by this host; as [`Host::offer`].
    pub(crate) fn mapped<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            if h.state != HandoffState::Accepted || h.target != me || h.target_epoch != epoch {
                return Err(Error::Invalid("the handoff is not accepted by this host"));
            }
            Ok(Step::Mapped)
        })
    }

    /// Releases accepted handoff `index`: the source let go of its pages; the handoff ends. A
    /// handoff with a manifest is released only once its target pulled the pages.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the handoff is not accepted from this host, or its target still
    /// reads its pages; as [`Host::offer`].
    pub(crate) fn release<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            if h.state != HandoffState::Accepted || h.source != me || h.source_epoch != epoch {
                return Err(Error::Invalid("the handoff is not accepted from this host"));
            }
            if h.manifest.is_some() && !h.pulled {
                return Err(Error::Invalid("the target has not pulled the pages yet"));
            }
            Ok(Step::End(true))
        })
    }

    /// Cancels handoff `index` before it is accepted (source or target): the blocks stay the
    /// source's.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if the handoff is not an offer of this host's; as [`Host::offer`].
    pub(crate) fn cancel<M: Medium>(&mut self, m: &M, index: u32, id: u64) -> Result<(), Error> {
        self.handoff_step(m, index, id, |h, me, epoch| {
            let party = (h.source == me && h.source_epoch == epoch)
                || (h.target == me && h.target_epoch == epoch);
            if h.state != HandoffState::Offered || !party {
                return Err(Error::Invalid("the handoff is not an offer of this host's"));
            }
            Ok(Step::End(false))
        })
    }

    #[cfg(feature = "tools")]
    /// Runs `f` holding the portal lock, and nothing else: for tests that check mutual
    /// exclusion and for lock latency benchmarks.
    pub(crate) fn locked<M: Medium, T>(
        &mut self,
        m: &M,
        f: impl FnOnce(&M) -> T,
    ) -> Result<T, Error> {
        self.locked_op(m, |_, m| Ok(f(m)))
    }
}
