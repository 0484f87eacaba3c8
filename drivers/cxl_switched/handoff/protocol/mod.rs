// SPDX-License-Identifier: GPL-2.0

//! The portal protocol: format, join, heartbeat and leases, the portal lock, fencing, block
//! ownership and handoffs, over any [`Medium`].
//!
//! The driver runs it over the memremapped header block; the userspace crate's tests, stress
//! test, fuzzer and bench run the very same code over memory and files.
//! `Documentation/admin-guide/mm/cxl-switched-abi.rst` specifies the protocol; this is the
//! reference implementation.
//!
//! No cross-host atomic instruction is used: CXL 2.0 switched memory gives none. Each record has
//! one writer at a time. A host slot is written only by its occupant; the member, owner and
//! handoff tables only by the holder of the portal lock, a bakery lock over the host slots. Each
//! writer writes its record whole, writes it back and fences ([`Medium::write_back`]); each
//! reader invalidates first ([`Medium::invalidate`]). Every record has two copies and a writer
//! overwrites the older, so a write torn by a crash leaves the previous record readable.
//!
//! Timing assumptions, which the lease and settle times of the superblock bound: a host
//! completes a step (a read, a check of its own lease and the write that follows) well within
//! one settle time, and hosts' clocks advance at the same rate to within a small fraction of a
//! lease. A host stops writing to the portal half a lease after its last heartbeat; the others
//! expire it only after they have seen its slot unchanged for a whole lease.

pub(crate) mod boot;
// The handoff steps have no caller in the kernel until its migration interface: only the tools
// build them.
#[cfg(feature = "tools")]
mod handoffs;
mod host;
mod lock;
pub(crate) mod medium;
mod membership;
mod ownership;
pub(crate) mod records;
mod tx;

pub(crate) use host::Host;
pub(crate) use medium::Medium;

use super::abi::{self, HeaderError, Kind};

/// Operations of transactions, as intents record them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Op {
    /// Join: a member entry.
    Join = 1,
    /// Claim free blocks.
    Claim = 2,
    /// Return owned blocks.
    Return = 3,
    /// Fence an expired host and reclaim what it owned.
    Reap = 4,
    /// Offer, accept, release or cancel a handoff.
    Handoff = 5,
    /// Leave the portal.
    Leave = 6,
}

impl Op {
    /// The operation an intent records, if it is one.
    pub(crate) fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            1 => Op::Join,
            2 => Op::Claim,
            3 => Op::Return,
            4 => Op::Reap,
            5 => Op::Handoff,
            6 => Op::Leave,
            _ => return None,
        })
    }

    /// The operation's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Join => "join",
            Op::Claim => "claim",
            Op::Return => "return",
            Op::Reap => "reap",
            Op::Handoff => "handoff",
            Op::Leave => "leave",
        }
    }
}

/// Why a protocol step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// The medium failed (an offset outside it).
    Medium,
    /// The superblock is not one to use.
    Header(HeaderError),
    /// A table record with no valid copy.
    Corrupt(Kind, u32),
    /// This host's lease ran out: it must stop using the portal and join again.
    Expired,
    /// Another host fenced this one: it must stop using the portal and join again.
    Fenced,
    /// This host's slot holds another host's claim: it must stop using the portal.
    Evicted,
    /// Every host slot, or every handoff record, is taken.
    Full(&'static str),
    /// Another host is formatting the portal.
    Busy,
    /// The request does not match the tables (not owned, wrong state, unknown host).
    Invalid(&'static str),
    /// The lock was not acquired within the bound.
    TimedOut,
    /// A counter in the header (a generation, a ticket) is at its largest value: no record can
    /// be newer than it, so the header cannot be used. Only a buggy or malicious peer gets there.
    Overflow(&'static str),
    /// The portal does not keep what this host writes: it reads back what was there before.
    NotKept,
}

impl Error {
    /// What to tell the administrator.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Error::Medium => "portal header access out of bounds",
            Error::Header(e) => e.as_str(),
            Error::Corrupt(..) => "a portal table record has no valid copy",
            Error::Expired => "this host's lease expired",
            Error::Fenced => "this host was fenced by another",
            Error::Evicted => "this host's slot was taken by another host",
            Error::Full(what) => what,
            Error::Busy => "another host is formatting the portal",
            Error::Invalid(why) => why,
            Error::TimedOut => "timed out waiting for the portal lock",
            Error::Overflow(what) => what,
            Error::NotKept => {
                "the portal does not keep what this host writes (a broken path or a failing device)"
            }
        }
    }

    /// Whether the host must stop using the portal.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, Error::Expired | Error::Fenced | Error::Evicted)
    }
}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Error::Header(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
