// SPDX-License-Identifier: GPL-2.0

//! The shared medium the protocol runs over, and the coherency rule for records.

use super::abi::RECORD_SIZE;
use super::Error;

/// Shared memory as the protocol sees it: the first bytes of a portal.
pub(crate) trait Medium {
    /// Reads `buf.len()` bytes at device offset `offset`.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Writes `data` at device offset `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error>;
    /// Makes the bytes at `offset..offset + len` visible to other hosts: writes back the cache
    /// lines and fences, so that they are in the device before anything written later.
    fn write_back(&self, offset: u64, len: usize);
    /// Drops this host's cached copies of `offset..offset + len`, so that the next read sees
    /// what other hosts wrote back.
    fn invalidate(&self, offset: u64, len: usize);
    /// A monotonic clock, in milliseconds.
    fn now_ms(&self) -> u64;
    /// Waits about `ms` milliseconds (0: yields).
    fn sleep_ms(&self, ms: u32);
}

/// Reads one record, invalidating this host's copy first.
///
/// # Errors
///
/// [`Error::Medium`] if the record is outside the medium.
pub(crate) fn read_record<M: Medium>(m: &M, offset: u64) -> Result<[u8; RECORD_SIZE], Error> {
    let mut b = [0u8; RECORD_SIZE];
    // Coherency: another host wrote this record; drop our cached lines before reading.
    m.invalidate(offset, RECORD_SIZE);
    m.read(offset, &mut b)?;
    Ok(b)
}

/// Writes one record, then writes it back and fences.
///
/// # Errors
///
/// [`Error::Medium`] if the record is outside the medium.
pub(crate) fn write_record<M: Medium>(
    m: &M,
    offset: u64,
    b: &[u8; RECORD_SIZE],
) -> Result<(), Error> {
    m.write(offset, b)?;
    // Coherency: the record must reach the device before anything this host writes next.
    m.write_back(offset, RECORD_SIZE);
    Ok(())
}
