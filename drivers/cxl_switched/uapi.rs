// SPDX-License-Identifier: GPL-2.0

//! The requests of `/dev/cxl_switched`, as `include/uapi/linux/cxl_switched.h` lays them out,
//! and their validation. Documentation/userspace-api/cxl_switched.rst describes them.
//!
//! Every field comes from userspace and is checked here before anything uses it: sizes,
//! flags and reserved fields, counts against their limits, ranges for alignment, order and
//! overflow. A bad request is an errno and one log line, never anything else.

use kernel::{
    ioctl::{_IOW, _IOWR},
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

/// The version of the interface (`CXLSW_API_VERSION`).
pub(crate) const API_VERSION: u32 = 1;

/// `struct cxlsw_version`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Version {
    pub(crate) size: u32,
    pub(crate) version: u32,
    pub(crate) portals: u32,
    pub(crate) reserved: u32,
}

/// `struct cxlsw_handoff`: one handoff in flight.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct HandoffEntry {
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) state: u32,
    pub(crate) role: u32,
    pub(crate) peer: u32,
    pub(crate) nid: i32,
    pub(crate) blocks: u32,
    pub(crate) pages: u64,
    pub(crate) blob_bytes: u32,
    pub(crate) pid: i32,
    pub(crate) pinned: u64,
}

/// `struct cxlsw_list`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct List {
    pub(crate) size: u32,
    pub(crate) count: u32,
    pub(crate) handoffs: u64,
}

/// `struct cxlsw_range`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct VRange {
    pub(crate) start: u64,
    pub(crate) len: u64,
}

/// `struct cxlsw_export`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Export {
    pub(crate) size: u32,
    pub(crate) flags: u32,
    pub(crate) pid: i32,
    pub(crate) nid: i32,
    pub(crate) target: u32,
    pub(crate) nr_ranges: u32,
    pub(crate) blob_len: u32,
    pub(crate) reserved: u32,
    pub(crate) ranges: u64,
    pub(crate) blob: u64,
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) reserved2: u32,
    pub(crate) pages: u64,
}

/// `struct cxlsw_ref`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Ref {
    pub(crate) size: u32,
    pub(crate) nid: i32,
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) reserved: u32,
}

/// `struct cxlsw_accept`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Accept {
    pub(crate) size: u32,
    pub(crate) nid: i32,
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) nr_ranges: u32,
    pub(crate) blob_len: u32,
    pub(crate) reserved: u32,
    pub(crate) ranges: u64,
    pub(crate) blob: u64,
    pub(crate) pages: u64,
}

/// `struct cxlsw_map`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Map {
    pub(crate) size: u32,
    pub(crate) nid: i32,
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) pid: i32,
    pub(crate) flags: u32,
    pub(crate) reserved: u32,
    pub(crate) pages: u64,
}

/// `struct cxlsw_pull`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Pull {
    pub(crate) size: u32,
    pub(crate) nid: i32,
    pub(crate) id: u64,
    pub(crate) index: u32,
    pub(crate) node: i32,
    pub(crate) max_pages: u32,
    pub(crate) reserved: u32,
    pub(crate) pulled: u64,
    pub(crate) left: u64,
}

// SAFETY: Each is `repr(C)` of integers only, with no padding (checked below): every bit
// pattern is a valid value, and every byte of a value is initialised.
unsafe impl FromBytes for Version {}
// SAFETY: As above.
unsafe impl AsBytes for Version {}
// SAFETY: As above.
unsafe impl FromBytes for HandoffEntry {}
// SAFETY: As above.
unsafe impl AsBytes for HandoffEntry {}
// SAFETY: As above.
unsafe impl FromBytes for List {}
// SAFETY: As above.
unsafe impl AsBytes for List {}
// SAFETY: As above.
unsafe impl FromBytes for VRange {}
// SAFETY: As above.
unsafe impl FromBytes for Export {}
// SAFETY: As above.
unsafe impl AsBytes for Export {}
// SAFETY: As above.
unsafe impl FromBytes for Ref {}
// SAFETY: As above.
unsafe impl AsBytes for VRange {}
// SAFETY: As above.
unsafe impl FromBytes for Accept {}
// SAFETY: As above.
unsafe impl AsBytes for Accept {}
// SAFETY: As above.
unsafe impl FromBytes for Map {}
// SAFETY: As above.
unsafe impl AsBytes for Map {}
// SAFETY: As above.
unsafe impl FromBytes for Pull {}
// SAFETY: As above.
unsafe impl AsBytes for Pull {}

// The layouts of include/uapi/linux/cxl_switched.h, without padding.
const _: () = assert!(size_of::<Version>() == 16);
const _: () = assert!(size_of::<HandoffEntry>() == 56);
const _: () = assert!(size_of::<List>() == 16);
const _: () = assert!(size_of::<VRange>() == 16);
const _: () = assert!(size_of::<Export>() == 72);
const _: () = assert!(size_of::<Ref>() == 24);
const _: () = assert!(size_of::<Accept>() == 56);
const _: () = assert!(size_of::<Map>() == 40);
const _: () = assert!(size_of::<Pull>() == 48);

const MAGIC: u32 = 0xCE;
/// `CXLSW_IOC_VERSION`.
pub(crate) const IOC_VERSION: u32 = _IOWR::<Version>(MAGIC, 0x40);
/// `CXLSW_IOC_LIST`.
pub(crate) const IOC_LIST: u32 = _IOWR::<List>(MAGIC, 0x41);
/// `CXLSW_IOC_EXPORT`.
pub(crate) const IOC_EXPORT: u32 = _IOWR::<Export>(MAGIC, 0x42);
/// `CXLSW_IOC_CANCEL`.
pub(crate) const IOC_CANCEL: u32 = _IOW::<Ref>(MAGIC, 0x43);
/// `CXLSW_IOC_ACCEPT`.
pub(crate) const IOC_ACCEPT: u32 = _IOWR::<Accept>(MAGIC, 0x44);
/// `CXLSW_IOC_MAP`.
pub(crate) const IOC_MAP: u32 = _IOWR::<Map>(MAGIC, 0x45);
/// `CXLSW_IOC_PULL`.
pub(crate) const IOC_PULL: u32 = _IOWR::<Pull>(MAGIC, 0x46);
/// `CXLSW_IOC_RELEASE`.
pub(crate) const IOC_RELEASE: u32 = _IOW::<Ref>(MAGIC, 0x47);

/// `CXLSW_OFFERED`, `CXLSW_ACCEPTED`, `CXLSW_PULLED`, `CXLSW_RETURNED`, `CXLSW_LOST`.
pub(crate) const OFFERED: u32 = 1;
pub(crate) const ACCEPTED: u32 = 2;
pub(crate) const PULLED: u32 = 3;
pub(crate) const RETURNED: u32 = 4;
pub(crate) const LOST: u32 = 5;
/// `CXLSW_SOURCE`, `CXLSW_TARGET`.
pub(crate) const SOURCE: u32 = 1;
pub(crate) const TARGET: u32 = 2;

/// The most handoffs one LIST fills.
pub(crate) const MAX_LIST: u32 = 4096;
/// The most ranges of one EXPORT.
pub(crate) const MAX_RANGES: u32 = 64;
/// The most blob bytes of one EXPORT.
pub(crate) const MAX_BLOB: u32 = 64 << 10;
/// The most pages of one EXPORT: 4 GiB.
pub(crate) const MAX_EXPORT_PAGES: u64 = 1 << 20;
/// The most ranges one ACCEPT fills.
pub(crate) const MAX_ACCEPT_RANGES: u32 = 1 << 16;
/// The most pages one PULL moves.
pub(crate) const MAX_PULL_PAGES: u32 = 1 << 20;

/// A request whose `size` field must be its own size.
pub(crate) trait Sized32: FromBytes {
    /// The request's `size` field.
    fn size(&self) -> u32;
}

/// Implements [`Sized32`] for requests whose first field is `size`.
macro_rules! sized32 {
    ($($t:ty),*) => {
        $(impl Sized32 for $t {
            fn size(&self) -> u32 {
                self.size
            }
        })*
    };
}

sized32!(Version, List, Export, Ref, Accept, Map, Pull);

/// Reads request `T` from user address `arg` and checks its size field.
///
/// # Errors
///
/// [`EFAULT`] for an address that cannot be read; [`EINVAL`] for a size that is not `T`'s.
pub(crate) fn read_request<T: Sized32>(what: &str, arg: usize) -> Result<T> {
    let t: T = UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .reader()
        .read()?;
    if usize::try_from(t.size()).ok() != Some(size_of::<T>()) {
        pr_warn!(
            "/dev/cxl_switched: {}: size {} is not this kernel's {}\n",
            what,
            t.size(),
            size_of::<T>()
        );
        return Err(EINVAL);
    }
    Ok(t)
}

/// Writes `t` back to user address `arg`.
///
/// # Errors
///
/// [`EFAULT`] for an address that cannot be written.
pub(crate) fn write_reply<T: AsBytes>(arg: usize, t: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .writer()
        .write(t)
}

/// An EXPORT request, checked: its ranges ascend without overlap, are page-aligned and their
/// pages are at most [`MAX_EXPORT_PAGES`].
pub(crate) struct ExportRequest {
    pub(crate) pid: i32,
    pub(crate) nid: i32,
    pub(crate) target: u32,
    pub(crate) ranges: KVec<VRange>,
    pub(crate) blob: KVec<u8>,
    pub(crate) pages: u64,
}

/// Checks an EXPORT request and copies in its ranges and blob.
///
/// # Errors
///
/// [`EINVAL`] for set flags or reserved fields, no ranges, ranges that are unaligned, empty,
/// wrap, descend or overlap, or a pid that is not positive; [`E2BIG`] for more ranges, blob
/// bytes or pages than the limits; [`EFAULT`] for ranges or a blob that cannot be read;
/// each with one log line.
pub(crate) fn check_export(e: &Export) -> Result<ExportRequest> {
    let bad = |why: &str, err: Error| -> Error {
        pr_warn!("/dev/cxl_switched: EXPORT: {}\n", why);
        err
    };
    if e.flags != 0
        || e.reserved != 0
        || e.reserved2 != 0
        || e.id != 0
        || e.index != 0
        || e.pages != 0
    {
        return Err(bad("flags, reserved or output fields are not zero", EINVAL));
    }
    if e.pid <= 0 {
        return Err(bad("pid is not a process id", EINVAL));
    }
    if e.nr_ranges == 0 {
        return Err(bad("no ranges", EINVAL));
    }
    if e.nr_ranges > MAX_RANGES || e.blob_len > MAX_BLOB {
        return Err(bad("more than 64 ranges or a blob over 64 KiB", E2BIG));
    }
    let n = usize::try_from(e.nr_ranges)?;
    let bytes = n.checked_mul(size_of::<VRange>()).ok_or(EINVAL)?;
    let mut reader = UserSlice::new(UserPtr::from_addr(usize::try_from(e.ranges)?), bytes).reader();
    let mut ranges = KVec::with_capacity(n, GFP_KERNEL)?;
    let page = u64::try_from(kernel::page::PAGE_SIZE)?;
    let (mut prev_end, mut pages) = (0u64, 0u64);
    for _ in 0..n {
        let r: VRange = reader
            .read()
            .map_err(|err| bad("the ranges cannot be read", err))?;
        let end = r.start.checked_add(r.len);
        if r.len == 0 || r.start % page != 0 || r.len % page != 0 || end.is_none() {
            return Err(bad("a range is empty, unaligned or wraps", EINVAL));
        }
        if r.start < prev_end {
            return Err(bad("ranges overlap or do not ascend", EINVAL));
        }
        prev_end = end.unwrap_or(u64::MAX);
        pages = pages.saturating_add(r.len / page);
        if pages > MAX_EXPORT_PAGES {
            return Err(bad("more than 2^20 pages (4 GiB)", E2BIG));
        }
        ranges.push(r, GFP_KERNEL)?;
    }
    let mut blob = KVec::new();
    if e.blob_len != 0 {
        UserSlice::new(
            UserPtr::from_addr(usize::try_from(e.blob)?),
            usize::try_from(e.blob_len)?,
        )
        .read_all(&mut blob, GFP_KERNEL)
        .map_err(|err| bad("the blob cannot be read", err))?;
    }
    Ok(ExportRequest {
        pid: e.pid,
        nid: e.nid,
        target: e.target,
        ranges,
        blob,
        pages,
    })
}
