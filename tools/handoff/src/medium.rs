//! The userspace media the shared protocol runs over: memory (tests, with a
//! clock the test drives and a write budget that simulates a crash), a
//! buffer read from a file or device (`portal show`), and a shared mapping
//! of a file (the stress test: several processes, one portal).

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::protocol::{Error, Medium};

fn span(offset: u64, len: usize, size: usize) -> Result<std::ops::Range<usize>, Error> {
    let start = usize::try_from(offset).map_err(|_| Error::Medium)?;
    let end = start.checked_add(len).ok_or(Error::Medium)?;
    if end > size {
        return Err(Error::Medium);
    }
    Ok(start..end)
}

/// Memory several simulated hosts share in one thread, with a clock that
/// moves only when a host sleeps or the test advances it.
pub(crate) struct SharedMem {
    bytes: RefCell<Vec<u8>>,
    clock: Cell<u64>,
}

impl SharedMem {
    pub(crate) fn new(size: usize) -> Self {
        SharedMem {
            bytes: RefCell::new(vec![0; size]),
            clock: Cell::new(1_000),
        }
    }

    pub(crate) fn advance(&self, ms: u64) {
        self.clock.set(self.clock.get() + ms);
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes.into_inner()
    }

    pub(crate) fn bytes_mut(&self) -> std::cell::RefMut<'_, Vec<u8>> {
        self.bytes.borrow_mut()
    }

    /// A host's view of the memory.
    pub(crate) fn host(&self) -> SimHost<'_> {
        SimHost {
            mem: self,
            budget: Cell::new(None),
            writes: Cell::new(0),
        }
    }
}

/// One simulated host's access to [`SharedMem`]. With a write budget, the
/// host dies at its next write once the budget is spent: that write lands
/// half done (torn) and every later access fails.
pub(crate) struct SimHost<'a> {
    mem: &'a SharedMem,
    budget: Cell<Option<u64>>,
    writes: Cell<u64>,
}

impl SimHost<'_> {
    #[cfg(test)]
    /// Dies after `n` more writes.
    pub(crate) fn die_after(&self, n: u64) {
        self.budget.set(Some(n));
    }

    #[cfg(test)]
    /// Writes done so far.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.get()
    }

    fn dead(&self) -> bool {
        self.budget.get() == Some(0)
    }
}

impl Medium for SimHost<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        if self.dead() {
            return Err(Error::Medium);
        }
        let b = self.mem.bytes.borrow();
        buf.copy_from_slice(&b[span(offset, buf.len(), b.len())?]);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        if self.dead() {
            return Err(Error::Medium);
        }
        let mut b = self.mem.bytes.borrow_mut();
        let r = span(offset, data.len(), b.len())?;
        if let Some(n) = self.budget.get() {
            self.budget.set(Some(n - 1));
            if n == 1 {
                // The crash: half the record reaches memory.
                let half = data.len() / 2;
                b[r.start..r.start + half].copy_from_slice(&data[..half]);
                return Err(Error::Medium);
            }
        }
        b[r].copy_from_slice(data);
        self.writes.set(self.writes.get() + 1);
        Ok(())
    }

    fn write_back(&self, _offset: u64, _len: usize) {}

    fn invalidate(&self, _offset: u64, _len: usize) {}

    fn now_ms(&self) -> u64 {
        self.mem.clock.get()
    }

    fn sleep_ms(&self, ms: u32) {
        self.mem.advance(u64::from(ms.max(1)));
    }
}

/// Bytes read from a file or a device: decoding only.
pub(crate) struct Snapshot<'a>(pub(crate) &'a [u8]);

impl Medium for Snapshot<'_> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        buf.copy_from_slice(&self.0[span(offset, buf.len(), self.0.len())?]);
        Ok(())
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<(), Error> {
        Err(Error::Medium)
    }

    fn write_back(&self, _offset: u64, _len: usize) {}

    fn invalidate(&self, _offset: u64, _len: usize) {}

    fn now_ms(&self) -> u64 {
        0
    }

    fn sleep_ms(&self, _ms: u32) {}
}

/// A file mapped shared: every process that maps it is a host of one
/// portal. Reads and writes are plain copies, so a process killed in the
/// middle of one leaves a torn record, as a crashed host would.
pub struct FileMedium {
    addr: *mut u8,
    len: usize,
    origin: Instant,
}

impl FileMedium {
    /// Maps the first `len` bytes of `path` (created and sized if need be).
    pub fn open(path: &Path, len: usize) -> Result<Self> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if f.metadata()?.len() < len as u64 {
            f.set_len(len as u64)
                .with_context(|| format!("sizing {}", path.display()))?;
        }
        // SAFETY: a fresh shared mapping of a file we opened; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            bail!(
                "mapping {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(FileMedium {
            addr: addr.cast(),
            len,
            origin: Instant::now(),
        })
    }

    /// Reads a little-endian u64 at `offset` (outside the header: data blocks).
    pub fn load(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        let _ = Medium::read(self, offset as u64, &mut b);
        u64::from_le_bytes(b)
    }

    /// Writes a little-endian u64 at `offset`.
    pub fn store(&self, offset: usize, v: u64) {
        let _ = Medium::write(self, offset as u64, &v.to_le_bytes());
        fence(Ordering::SeqCst);
    }
}

impl Drop for FileMedium {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in open().
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

impl Medium for FileMedium {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let r = span(offset, buf.len(), self.len)?;
        // SAFETY: `r` is inside the mapping; other processes may write it at the same time,
        // which the protocol expects (a torn read fails its checksum).
        unsafe {
            std::ptr::copy_nonoverlapping(self.addr.add(r.start), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let r = span(offset, data.len(), self.len)?;
        // SAFETY: as in read().
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.addr.add(r.start), data.len()) };
        Ok(())
    }

    fn write_back(&self, _offset: u64, _len: usize) {
        // One machine's processes share caches: a fence orders the stores.
        fence(Ordering::SeqCst);
    }

    fn invalidate(&self, _offset: u64, _len: usize) {
        fence(Ordering::SeqCst);
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn sleep_ms(&self, ms: u32) {
        if ms == 0 {
            std::thread::sleep(std::time::Duration::from_micros(50));
        } else {
            std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
        }
    }
}
