// SPDX-License-Identifier: GPL-2.0

//! The portal lock: Lamport's bakery over the host slots, and the expiry tracking it needs.

use super::super::num::u32_as_usize;
use super::abi::{RecordError, SlotRecord, SlotState};
use super::host::{Seen, UNSEEN};
use super::records::{is_off, read_slot_settled, slot_mark};
use super::{Error, Host, Medium};

impl Host {
    /// Updates what this host saw of every other slot; returns whether one looks expired.
    pub(super) fn observe<M: Medium>(&mut self, m: &M) -> Result<bool, Error> {
        let now = m.now_ms();
        let mut any = false;
        for j in 0..self.sb.geometry.host_slots {
            if j == self.slot {
                continue;
            }
            self.observe_one(m, j, now)?;
            any |= self.expired(m, j);
        }
        Ok(any)
    }

    pub(super) fn expired(&self, m: &impl Medium, j: u32) -> bool {
        let Some(s) = self.seen.get(u32_as_usize(j)) else {
            return false;
        };
        s.since_ms != u64::MAX
            && m.now_ms().saturating_sub(s.since_ms) > u64::from(self.sb.timing.lease_ms)
    }

    /// Takes the portal lock: Lamport's bakery over the host slots. Each slot's `choosing` and
    /// `ticket` are written only by its host, which also rewrites its slot (heartbeats, intents)
    /// while it holds the lock, with the same ticket. A slot is therefore read *settled*
    /// ([`read_slot_settled`]): a read that two or more of its host's writes overlapped could
    /// return a record from before the last of them, such as the holder's doorway. A slot that
    /// is not settled, or has no valid copy, is waited for, never skipped. Nor is a host whose
    /// lease expired: it may only be paused, and resume inside the lock. Only a host confirmed
    /// off ([`Host::confirm_fenced`]: some slot records it, or the member table has it reaped)
    /// is not waited for.
    ///
    /// # Errors
    ///
    /// [`Error::Suspect`] after a lease of waiting for a host that does not change its slot,
    /// [`Error::TimedOut`] after four leases, [`Error::Overflow`] for a peer's ticket at its
    /// largest value, the errors of [`Host::renew`], a read or a write.
    pub(super) fn lock<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        let slots = self.sb.geometry.host_slots;
        // A host that was fenced writes nothing more, not even its doorway.
        self.check_slot(m)?;
        self.write_slot(
            m,
            SlotRecord {
                choosing: true,
                ..self.rec
            },
        )?;
        let start = m.now_ms();
        // Watch every slot from now, so that the leases of several dead hosts run out together.
        self.observe(m)?;
        let mut max = 0;
        for j in 0..slots {
            if j == self.slot {
                continue;
            }
            if let Some(r) = self.settled(m, j, start)? {
                if r.state != SlotState::Free {
                    max = max.max(r.ticket);
                }
            }
        }
        // Peer data: a ticket at its largest value leaves no larger one to take.
        let Some(ticket) = max.checked_add(1) else {
            self.abandon(m);
            return Err(Error::Overflow(
                "a peer's lock ticket is at its largest value",
            ));
        };
        if let Err(e) = self.guard(m) {
            self.abandon(m);
            return Err(e);
        }
        self.write_slot(
            m,
            SlotRecord {
                choosing: false,
                ticket,
                ..self.rec
            },
        )?;
        for j in 0..slots {
            if j == self.slot {
                continue;
            }
            // Only a free slot, or an incarnation known to be off (confirmed, or reaped), does
            // not count. Not a member entry that is free or older: it may hold what an
            // unfinished transaction wrote (a holder's own leave, paused half way) or what was
            // true before the slot's host joined.
            // Whether incarnation `.0` of slot j is known to be off: looked up once, and again
            // when it looks expired (a confirmation only ever adds a fact).
            let mut off: Option<(u32, bool)> = None;
            loop {
                let wait = match self.settled(m, j, start)? {
                    Some(r) if r.state != SlotState::Free => {
                        let waits = r.choosing
                            || (r.ticket != 0 && (r.ticket, j) < (self.rec.ticket, self.slot));
                        if waits && off.is_none_or(|(e, _)| e != r.epoch) {
                            off = Some((r.epoch, is_off(m, &self.sb, j, r.epoch)?));
                        }
                        waits && !off.is_some_and(|(_, o)| o)
                    }
                    _ => false,
                };
                if !wait {
                    break;
                }
                if self.expired(m, j) {
                    if let Some((e, false)) = off {
                        if is_off(m, &self.sb, j, e)? {
                            off = Some((e, true));
                            continue;
                        }
                    }
                    // Paused or dead: either way, nobody passes it until it is fenced.
                    self.abandon(m);
                    return Err(Error::Suspect);
                }
                self.keep_waiting(m, start)?;
                m.sleep_ms(0);
            }
        }
        // Holding the lock: our own lease must still be good for what we write under it.
        if let Err(e) = self.renew(m) {
            if !e.is_gone() {
                self.unlock(m)?;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Slot `j`'s record once it reads settled and valid, waiting while it does not (its host
    /// is writing it); `None` for a slot nobody ever wrote.
    ///
    /// # Errors
    ///
    /// [`Error::Suspect`] if the slot stays unsettled for a lease; those of [`Host::lock`].
    fn settled<M: Medium>(
        &mut self,
        m: &M,
        j: u32,
        start: u64,
    ) -> Result<Option<SlotRecord>, Error> {
        loop {
            self.observe_one(m, j, m.now_ms())?;
            match read_slot_settled(m, &self.sb, j)? {
                Some(Ok(r)) => return Ok(Some(r)),
                Some(Err(RecordError::Zero)) => return Ok(None),
                _ if self.expired(m, j) => {
                    self.abandon(m);
                    return Err(Error::Suspect);
                }
                _ => {}
            }
            self.keep_waiting(m, start)?;
            m.sleep_ms(0);
        }
    }

    /// The bounds of a wait for the lock that began at `start`: gives up after four leases,
    /// and renews this host's lease as it goes.
    fn keep_waiting<M: Medium>(&mut self, m: &M, start: u64) -> Result<(), Error> {
        let lease = u64::from(self.sb.timing.lease_ms);
        let now = m.now_ms();
        if now.saturating_sub(start) > 4 * lease {
            self.abandon(m);
            return Err(Error::TimedOut);
        }
        if now.saturating_sub(self.renewed_ms) > lease / 4 {
            if let Err(e) = self.renew(m) {
                if !e.is_gone() {
                    self.abandon(m);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Leaves the bakery without the lock: not choosing, no ticket. Best effort: a host that
    /// cannot write its slot is expired by the others after a lease.
    fn abandon<M: Medium>(&mut self, m: &M) {
        let _ = self.write_slot(
            m,
            SlotRecord {
                choosing: false,
                ticket: 0,
                ..self.rec
            },
        );
    }

    /// Notes whether slot `j` changed since this host last looked. A free slot is not watched;
    /// a slot with no valid copy is watched through the checksum bytes of its first copy.
    pub(super) fn observe_one<M: Medium>(&mut self, m: &M, j: u32, now: u64) -> Result<(), Error> {
        let mark = slot_mark(m, &self.sb, j)?;
        let s = self
            .seen
            .get_mut(u32_as_usize(j))
            .ok_or(Error::Invalid("no such host slot"))?;
        let Some(mark) = mark else {
            *s = UNSEEN;
            return Ok(());
        };
        if s.since_ms == u64::MAX || s.mark != mark {
            *s = Seen {
                mark,
                since_ms: now,
            };
        }
        Ok(())
    }

    pub(super) fn unlock<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        self.write_slot(
            m,
            SlotRecord {
                ticket: 0,
                ..self.rec
            },
        )
    }

    /// Runs `f` holding the lock, and unlocks whatever it returns. A transaction that `f` left
    /// unfinished is rolled back first, unless this host was fenced or evicted (then it writes
    /// nothing more: its reaper rolled it back).
    pub(super) fn locked_op<M: Medium, T>(
        &mut self,
        m: &M,
        f: impl FnOnce(&mut Self, &M) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.lock(m)?;
        let r = f(self, m);
        let gone = matches!(r, Err(Error::Fenced | Error::Evicted));
        let u = if gone {
            Ok(())
        } else {
            let undone = if r.is_err() {
                self.rollback_own(m)
            } else {
                Ok(())
            };
            undone.and(self.unlock(m))
        };
        let v = r?;
        u?;
        Ok(v)
    }
}
