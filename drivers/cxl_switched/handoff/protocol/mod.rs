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
//! one writer at a time. A host slot is written only by its host; the member, owner and
//! handoff tables only by the holder of the portal lock, a bakery lock over the host slots. Each
//! writer writes its record whole, writes it back and fences ([`Medium::write_back`]); each
//! reader invalidates first ([`Medium::invalidate`]). Every record has two copies and a writer
//! overwrites the older, so a write torn by a crash leaves the previous record readable.
//!
//! Safety rests on no timing: any host may pause at any point, for any length, and resume where
//! it was. Leases only decide when a host is *suspected*: a host whose slot did not change for a
//! lease is a suspect, and stays one, with all it owns and any ticket it holds, until something
//! outside it confirms that it is off ([`Host::confirm_fenced`]: a fence agent, or an
//! administrator). Only then is it reaped. The bakery never skips a suspect, so a paused lock
//! holder that resumes is still the only holder. A host that finds its own lease lapsed
//! self-fences: it takes nothing more, gives up what it has ([`Host::leave`]) and joins again.
//!
//! No record is written by two hosts at once, whatever their pauses: the portal is formatted by
//! one host (host index 0), slot `k` is written only by the host configured with host index `k`
//! (which chooses its own epochs, each larger than the last), the tables only under the lock,
//! and a fence confirmation goes into the confirmer's own slot, never into the fenced host's.
//!
//! Liveness does use time: every wait is bounded (the lock's four leases, or one lease on a
//! suspect; the wait for the formatter).

pub(crate) mod boot;
// The handoff steps have no caller in the kernel until its migration interface: only the tools
// build them.
mod handoffs;
mod host;
mod lock;
pub(crate) mod manifest;
pub(crate) mod medium;
mod membership;
mod ownership;
pub(crate) mod records;
mod tx;

pub(crate) use host::Host;
pub(crate) use medium::Medium;
pub(crate) use membership::Suspect;

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
    /// A handoff's manifest cannot be used: absent, torn, foreign or inconsistent (peer data).
    Manifest(&'static str),
    /// The lock was not acquired within the bound.
    TimedOut,
    /// A host that stopped renewing its lease holds the portal lock, or is choosing a ticket:
    /// it may only be paused, so nothing is written until it resumes or is fenced.
    Suspect,
    /// A counter in the header (a generation, a ticket) is at its largest value: no record can
    /// be newer than it, so the header cannot be used. Only a buggy or malicious peer gets there.
    Overflow(&'static str),
    /// The portal does not keep what this host writes: it reads back what was there before.
    NotKept,
    /// The portal is empty, and its formatter (host index 0) did not format it in time.
    Unformatted,
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
            Error::Manifest(why) => why,
            Error::TimedOut => "timed out waiting for the portal lock",
            Error::Suspect => {
                "a host that stopped renewing its lease holds the portal lock: fence it first"
            }
            Error::Overflow(what) => what,
            Error::NotKept => {
                "the portal does not keep what this host writes (a broken path or a failing device)"
            }
            Error::Unformatted => {
                "the portal is not formatted: host 0 formats it, and did not within four leases"
            }
        }
    }

    /// Whether the host must stop using the portal.
    pub(crate) fn is_fatal(&self) -> bool {
        matches!(self, Error::Expired | Error::Fenced | Error::Evicted)
    }

    /// Whether the host's slot is no longer its own to write: it was fenced, or another host
    /// holds the slot. (A host whose lease merely lapsed still writes to give up what it has.)
    pub(crate) fn is_gone(&self) -> bool {
        matches!(self, Error::Fenced | Error::Evicted)
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
