// SPDX-License-Identifier: GPL-2.0

//! The memremapped header block as the handoff protocol's [`Medium`].

use kernel::{
    memremap::Memremap,
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::handoff::protocol::{Error, Medium};

/// The header block as the protocol's medium.
///
/// Coherency: every record write is followed by a write-back and a barrier, every record read
/// preceded by an invalidation ([`Memremap::write_back`], [`Memremap::invalidate`]).
pub(crate) struct HeaderMedium<'a> {
    header: &'a Memremap,
    origin: &'a Instant<Monotonic>,
}

impl<'a> HeaderMedium<'a> {
    /// The medium of `header`, with a clock that counts from `origin`.
    pub(crate) fn new(header: &'a Memremap, origin: &'a Instant<Monotonic>) -> Self {
        Self { header, origin }
    }
}

fn offset(off: u64) -> Result<usize, Error> {
    usize::try_from(off).map_err(|_| Error::Medium)
}

impl Medium for HeaderMedium<'_> {
    fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.header
            .read(offset(off)?, buf)
            .map_err(|_| Error::Medium)
    }

    fn write(&self, off: u64, data: &[u8]) -> Result<(), Error> {
        self.header
            .write(offset(off)?, data)
            .map_err(|_| Error::Medium)
    }

    fn write_back(&self, off: u64, len: usize) {
        // Out of bounds is caught by the write before it.
        if let Ok(off) = offset(off) {
            let _ = self.header.write_back(off, len);
        }
    }

    fn invalidate(&self, off: u64, len: usize) {
        // Out of bounds is caught by the read after it.
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
