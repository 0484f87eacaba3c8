// SPDX-License-Identifier: GPL-2.0

//! The portal lock: Lamport's bakery over the host slots, and the expiry tracking it needs.

use super::super::num::u32_as_usize;
use super::abi::{MemberState, SlotRecord, SlotState};
use super::host::{Seen, UNSEEN};
use super::records::{read_member, read_slot, slot_mark};
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
    /// `ticket` are written only by its host; a slot read while it is being written yields its
    /// previous copy, which the bakery tolerates. A host whose lease expired is not waited for
    /// (it stopped writing half a lease ago and is reaped once the lock is held).
    pub(super) fn lock<M: Medium>(&mut self, m: &M) -> Result<(), Error> {
        let slots = self.sb.geometry.host_slots;
        self.write_slot(
            m,
            SlotRecord {
                choosing: true,
                ..self.rec
            },
        )?;
        let mut max = 0;
        for j in 0..slots {
            if let Ok(r) = read_slot(m, &self.sb, j)?.0 {
                if r.state != SlotState::Free && j != self.slot {
                    max = max.max(r.ticket);
                }
            }
        }
        // Peer data: a ticket at its largest value leaves no larger one to take.
        let Some(ticket) = max.checked_add(1) else {
            let _ = self.write_slot(
                m,
                SlotRecord {
                    choosing: false,
                    ..self.rec
                },
            );
            return Err(Error::Overflow(
                "a peer's lock ticket is at its largest value",
            ));
        };
        self.guard(m)?;
        self.write_slot(
            m,
            SlotRecord {
                choosing: false,
                ticket,
                ..self.rec
            },
        )?;
        let lease = u64::from(self.sb.timing.lease_ms);
        let start = m.now_ms();
        // Watch every slot from now, so that the leases of several dead hosts run out together.
        self.observe(m)?;
        for j in 0..slots {
            if j == self.slot {
                continue;
            }
            // A fenced or departed member's last ticket does not count; a joining host's does.
            let live = read_member(m, &self.sb, j)?;
            let counts = |r: &SlotRecord| match r.state {
                SlotState::Free => false,
                SlotState::Claiming => true,
                SlotState::Member => live.state == MemberState::Live && live.epoch == r.epoch,
            };
            loop {
                self.observe_one(m, j, m.now_ms())?;
                let wait = match read_slot(m, &self.sb, j)?.0 {
                    Ok(r) if counts(&r) && !self.expired(m, j) => {
                        r.choosing
                            || (r.ticket != 0 && (r.ticket, j) < (self.rec.ticket, self.slot))
                    }
                    _ => false,
                };
                if !wait {
                    break;
                }
                let now = m.now_ms();
                if now.saturating_sub(start) > 4 * lease {
                    let _ = self.write_slot(
                        m,
                        SlotRecord {
                            ticket: 0,
                            ..self.rec
                        },
                    );
                    return Err(Error::TimedOut);
                }
                if now.saturating_sub(self.renewed_ms) > lease / 4 {
                    if let Err(e) = self.renew(m) {
                        if !e.is_fatal() {
                            let _ = self.write_slot(
                                m,
                                SlotRecord {
                                    ticket: 0,
                                    ..self.rec
                                },
                            );
                        }
                        return Err(e);
                    }
                }
                m.sleep_ms(0);
            }
        }
        // Holding the lock: our own lease must still be good for what we write under it.
        self.renew(m)?;
        Ok(())
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

    /// Runs `f` holding the lock, and unlocks whatever it returns.
    pub(super) fn locked_op<M: Medium, T>(
        &mut self,
        m: &M,
        f: impl FnOnce(&mut Self, &M) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.lock(m)?;
        let r = f(self, m);
        let u = if matches!(r, Err(e) if e.is_fatal()) {
            Ok(())
        } else {
            self.unlock(m)
        };
        let v = r?;
        u?;
        Ok(v)
    }
}
