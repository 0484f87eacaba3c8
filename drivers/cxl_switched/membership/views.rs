// SPDX-License-Identifier: GPL-2.0

//! What a portal's membership shows: sysfs values and the debugfs tables.

use core::fmt::Write;

use kernel::prelude::*;

use super::Membership;
use crate::{
    handoff::{
        abi::{MemberState, Owner, Superblock, NO_SLOT, QUARANTINED},
        protocol::{records, Host, Op},
    },
    medium::HeaderMedium,
    text::Uuid,
};

impl Membership {
    /// Bytes of portal memory this host has online.
    pub(crate) fn online_bytes(&self) -> u64 {
        let st = self.state.lock();
        let n = st.blocks.iter().filter(|b| b.is_some()).count();
        u64::try_from(n)
            .unwrap_or(u64::MAX)
            .saturating_mul(self.layout.block_size())
    }

    /// Calls `f` with this host's superblock, slot and epoch, or returns why it is no member.
    pub(crate) fn with_host<T>(
        &self,
        f: impl FnOnce(&Superblock, u32, u32) -> T,
    ) -> core::result::Result<T, &'static str> {
        let st = self.state.lock();
        match st.host.as_deref() {
            Some(h) => Ok(f(h.superblock(), h.slot(), h.epoch())),
            None => Err(st.stopped.unwrap_or("not a member")),
        }
    }

    /// Runs `f`, which writes a view of the header, with this host's protocol state and medium;
    /// writes "none (WHY)" if this host is no member.
    fn view<W: Write>(
        &self,
        out: &mut W,
        f: impl FnOnce(&Host, &HeaderMedium<'_>, &mut W) -> Result<core::fmt::Result>,
    ) -> Result {
        let st = self.state.lock();
        let m = self.medium();
        let r = match st.host.as_deref() {
            Some(host) => f(host, &m, out)?,
            None => writeln!(out, "none ({})", st.stopped.unwrap_or("not a member")),
        };
        r.map_err(|_| EINVAL)
    }

    /// Writes the suspects: one line per host that stopped renewing its lease,
    /// "SLOT UUID epoch E silent MS unconfirmed" ("confirmed" once it was confirmed off and awaits
    /// reaping; UUID "-" for a slot that reads invalid); nothing if there is none.
    ///
    /// # Errors
    ///
    /// The errno of a failed header read; [`EINVAL`] if `out` is full.
    pub(crate) fn write_suspects<W: Write>(&self, out: &mut W) -> Result {
        let mut st = self.state.lock();
        let m = self.medium();
        let Some(host) = st.host.as_deref_mut() else {
            return writeln!(out, "none ({})", st.stopped.unwrap_or("not a member"))
                .map_err(|_| EINVAL);
        };
        let mut r = Ok(());
        host.suspects(&m, |s| {
            if r.is_err() {
                return;
            }
            r = match &s.host {
                Some(u) => write!(out, "{} {}", s.slot, Uuid(u)),
                None => write!(out, "{} -", s.slot),
            }
            .and_then(|()| {
                writeln!(
                    out,
                    " epoch {} silent {} {}",
                    s.epoch,
                    s.silent_ms,
                    if s.confirmed {
                        "confirmed"
                    } else {
                        "unconfirmed"
                    }
                )
            });
        })?;
        r.map_err(|_| EINVAL)
    }

    /// Writes the blocks this host owns, "0,2,5", a block in a handoff marked "(handoff)".
    ///
    /// # Errors
    ///
    /// The errno of a failed header read; [`EINVAL`] if `out` is full.
    pub(crate) fn write_owned<W: Write>(&self, out: &mut W) -> Result {
        self.view(out, |host, m, out| {
            let mut r = Ok(());
            let mut sep = "";
            host.owned(m, |b, lent| {
                if r.is_ok() {
                    r = write!(out, "{sep}{b}{}", if lent { "(handoff)" } else { "" });
                    sep = ",";
                }
            })?;
            Ok(r.and_then(|()| writeln!(out)))
        })
    }

    /// Writes the member table: one line per slot in use, "slot state epoch N heartbeat N",
    /// this host's marked "self", a transaction in progress as "intent OP".
    ///
    /// # Errors
    ///
    /// The errno of a failed header read; [`EINVAL`] if `out` is full.
    pub(crate) fn write_members<W: Write>(&self, out: &mut W) -> Result {
        self.view(out, |host, m, out| {
            let mut r = Ok(());
            records::for_each_member(m, host.superblock(), |v| {
                let state = match v.member.state {
                    MemberState::Free if v.record.is_none() => return,
                    MemberState::Free => "free",
                    MemberState::Live => "live",
                    MemberState::Fenced => "fenced",
                };
                let beat = v.record.map_or(0, |r| r.generation);
                let me = if v.slot == host.slot() { " self" } else { "" };
                // A transaction in progress: what its host was doing.
                let intent = v
                    .record
                    .filter(|r| r.intent != 0)
                    .map(|r| Op::from_raw(r.op).map_or("unknown", Op::as_str));
                if r.is_ok() {
                    r = write!(
                        out,
                        "{} {} epoch {} heartbeat {}{}",
                        v.slot, state, v.member.epoch, beat, me
                    )
                    .and_then(|()| match intent {
                        Some(op) => writeln!(out, " intent {op}"),
                        None => writeln!(out),
                    });
                }
            })?;
            Ok(r)
        })
    }

    /// Writes what the coherency passes over data blocks cost: how many blocks were written
    /// back and invalidated, and the last one's time.
    ///
    /// # Errors
    ///
    /// [`EINVAL`] if `out` is full.
    pub(crate) fn write_passes(&self, out: &mut impl Write) -> Result {
        let p = *self.passes.lock();
        writeln!(
            out,
            "write back: {} block(s), last {} us\ninvalidate: {} block(s), last {} us",
            p.write_backs, p.write_back_us, p.invalidates, p.invalidate_us
        )
        .map_err(|_| EINVAL)
    }

    /// Writes the owner table: one line per run of blocks with one owner, "first-last free",
    /// "first-last quarantined" or "first-last slot N epoch N".
    ///
    /// # Errors
    ///
    /// The errno of a failed header read; [`EINVAL`] if `out` is full.
    pub(crate) fn write_owners<W: Write>(&self, out: &mut W) -> Result {
        self.view(out, |host, m, out| {
            let mut run: Option<(u64, u64, Owner)> = None;
            let mut r = Ok(());
            let mut flush = |(first, last, o): (u64, u64, Owner), r: &mut core::fmt::Result| {
                if r.is_ok() {
                    *r = match o.slot {
                        NO_SLOT => writeln!(out, "{first}-{last} free"),
                        QUARANTINED => writeln!(out, "{first}-{last} quarantined"),
                        s => writeln!(out, "{first}-{last} slot {s} epoch {}", o.epoch),
                    };
                }
            };
            records::for_each_owner(m, host.superblock(), |b, o| match run {
                Some((first, last, prev)) if prev == o && last.checked_add(1) == Some(b) => {
                    run = Some((first, b, prev))
                }
                _ => {
                    if let Some(prev) = run.take() {
                        flush(prev, &mut r);
                    }
                    run = Some((b, b, o));
                }
            })?;
            if let Some(prev) = run {
                flush(prev, &mut r);
            }
            Ok(r)
        })
    }
}
