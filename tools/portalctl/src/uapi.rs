//! `/dev/cxl_switched`: mirrors of `include/uapi/linux/cxl_switched.h` and a
//! safe handle on the device. Documentation/userspace-api/cxl_switched.rst
//! describes the requests.
//!
//! The structs are `#[repr(C)]` copies of the header's, field for field; the
//! request numbers are built from their sizes with Linux's `_IOC` encoding.
//! The tests check both against numbers derived by hand from the C layout
//! rules and against the header itself.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// The interface version this code speaks (`CXLSW_API_VERSION`).
pub const API_VERSION: u32 = 1;
/// The device's usual path.
pub const DEVICE: &str = "/dev/cxl_switched";

/// The most handoffs one LIST fills (`struct cxlsw_list`'s `count`).
pub const MAX_LIST: u32 = 4096;
/// The most ranges of one EXPORT (`struct cxlsw_export`'s `nr_ranges`).
pub const MAX_RANGES: u32 = 64;
/// The most blob bytes of one EXPORT (`struct cxlsw_export`'s `blob_len`).
pub const MAX_BLOB: u32 = 65536;
/// The most room for ranges of one ACCEPT (`struct cxlsw_accept`'s
/// `nr_ranges`).
pub const MAX_ACCEPT_RANGES: u32 = 65536;
/// The most room for the blob of one ACCEPT (`struct cxlsw_accept`'s
/// `blob_len`).
pub const MAX_ACCEPT_BLOB: u32 = 65536;
/// The most pages of one PULL (`struct cxlsw_pull`'s `max_pages`).
pub const MAX_PULL: u32 = 1 << 20;

/// `struct cxlsw_handoff`'s `state`: `CXLSW_OFFERED`.
pub const OFFERED: u32 = 1;
/// `struct cxlsw_handoff`'s `state`: `CXLSW_ACCEPTED`.
pub const ACCEPTED: u32 = 2;
/// `struct cxlsw_handoff`'s `state`: `CXLSW_PULLED` (accepted, and the
/// target has pulled the pages: the source may release).
pub const PULLED: u32 = 3;
/// `struct cxlsw_handoff`'s `state`: `CXLSW_RETURNED` (a source's handoff
/// rolled back with its pages unchanged: the process may resume; CANCEL
/// acknowledges it).
pub const RETURNED: u32 = 4;
/// `struct cxlsw_handoff`'s `state`: `CXLSW_LOST` (a source's handoff rolled
/// back after the target mapped the pages: the process must not resume;
/// CANCEL acknowledges it).
pub const LOST: u32 = 5;
/// `struct cxlsw_handoff`'s `role`: `CXLSW_SOURCE`.
pub const SOURCE: u32 = 1;
/// `struct cxlsw_handoff`'s `role`: `CXLSW_TARGET`.
pub const TARGET: u32 = 2;

/// `struct cxlsw_version`: what the kernel offers (CXLSW_IOC_VERSION).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version {
    /// `sizeof(struct cxlsw_version)`, set by the caller.
    pub size: u32,
    /// Out: the kernel's `CXLSW_API_VERSION`.
    pub version: u32,
    /// Out: portals this host is a member of.
    pub portals: u32,
    /// Zero.
    pub reserved: u32,
}

/// `struct cxlsw_handoff`: one handoff in flight, as CXLSW_IOC_LIST reports
/// it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoffEntry {
    /// The handoff's id: with `index`, what every later request names.
    pub id: u64,
    /// The handoff record's index in the portal's header.
    pub index: u32,
    /// [`OFFERED`], [`ACCEPTED`], [`PULLED`], [`RETURNED`] or [`LOST`].
    pub state: u32,
    /// [`SOURCE`] or [`TARGET`]: this host's part in it.
    pub role: u32,
    /// The host slot of the other party.
    pub peer: u32,
    /// The NUMA node of the portal it is on.
    pub nid: i32,
    /// Memory blocks it moves.
    pub blocks: u32,
    /// 4 KiB pages its manifest lists (0: a handoff of whole blocks).
    pub pages: u64,
    /// Bytes of the workload's state that travel beside its pages.
    pub blob_bytes: u32,
    /// For a source, the process whose pages it pinned; for a target, the
    /// process it mapped them into (0: none yet).
    pub pid: i32,
    /// For a source, pages this host still holds for it; for a target,
    /// pages still on the portal (mapped, not pulled yet).
    pub pinned: u64,
}

/// `struct cxlsw_list`: CXLSW_IOC_LIST.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct List {
    /// `sizeof(struct cxlsw_list)`.
    pub size: u32,
    /// In: room in `handoffs` (at most [`MAX_LIST`]); out: handoffs in
    /// flight, which may be more than the room.
    pub count: u32,
    /// User pointer to an array of [`HandoffEntry`].
    pub handoffs: u64,
}

/// `struct cxlsw_range`: a range of a process's virtual addresses.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    /// First address, page-aligned.
    pub start: u64,
    /// Bytes, a multiple of the page size, not zero.
    pub len: u64,
}

/// `struct cxlsw_export`: CXLSW_IOC_EXPORT.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Export {
    /// `sizeof(struct cxlsw_export)`.
    pub size: u32,
    /// Zero.
    pub flags: u32,
    /// The process.
    pub pid: i32,
    /// The portal's NUMA node.
    pub nid: i32,
    /// The target host's slot in that portal.
    pub target: u32,
    /// Entries of `ranges` (1..=[`MAX_RANGES`]).
    pub nr_ranges: u32,
    /// Bytes at `blob` (at most [`MAX_BLOB`]), 0 for none.
    pub blob_len: u32,
    /// Zero.
    pub reserved: u32,
    /// User pointer to an array of [`Range`], ascending, not overlapping.
    pub ranges: u64,
    /// User pointer to the workload's state that travels beside it.
    pub blob: u64,
    /// Out: the handoff's id.
    pub id: u64,
    /// Out: its record's index.
    pub index: u32,
    /// Zero.
    pub reserved2: u32,
    /// Out: pages exported (and pinned until the handoff ends).
    pub pages: u64,
}

/// `struct cxlsw_ref`: names a handoff (CXLSW_IOC_CANCEL, and
/// CXLSW_IOC_RELEASE as [`ReleaseRef`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ref {
    /// `sizeof(struct cxlsw_ref)`.
    pub size: u32,
    /// The portal's NUMA node.
    pub nid: i32,
    /// The handoff's id.
    pub id: u64,
    /// Its record's index.
    pub index: u32,
    /// Zero.
    pub reserved: u32,
}

/// `struct cxlsw_accept`: CXLSW_IOC_ACCEPT.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accept {
    /// `sizeof(struct cxlsw_accept)`.
    pub size: u32,
    /// The portal's NUMA node.
    pub nid: i32,
    /// The handoff's id.
    pub id: u64,
    /// Its record's index.
    pub index: u32,
    /// In: room in `ranges` (at most [`MAX_ACCEPT_RANGES`]); out: the
    /// workload's ranges, which may be more than the room.
    pub nr_ranges: u32,
    /// In: room at `blob` (at most [`MAX_ACCEPT_BLOB`]); out: the blob's
    /// length (only the room is filled).
    pub blob_len: u32,
    /// Zero.
    pub reserved: u32,
    /// User pointer to an array of [`Range`]: where the workload's pages are
    /// to be mapped, ascending.
    pub ranges: u64,
    /// User pointer to room for the workload's state.
    pub blob: u64,
    /// Out: pages the manifest lists.
    pub pages: u64,
}

/// `struct cxlsw_map`: CXLSW_IOC_MAP.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Map {
    /// `sizeof(struct cxlsw_map)`.
    pub size: u32,
    /// The portal's NUMA node.
    pub nid: i32,
    /// The handoff's id.
    pub id: u64,
    /// Its record's index.
    pub index: u32,
    /// The process to map into: the caller, or one it may attach to.
    pub pid: i32,
    /// Zero.
    pub flags: u32,
    /// Zero.
    pub reserved: u32,
    /// Out: pages mapped.
    pub pages: u64,
}

/// `struct cxlsw_pull`: CXLSW_IOC_PULL.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pull {
    /// `sizeof(struct cxlsw_pull)`.
    pub size: u32,
    /// The portal's NUMA node.
    pub nid: i32,
    /// The handoff's id.
    pub id: u64,
    /// Its record's index.
    pub index: u32,
    /// The NUMA node the pages go to (a node with memory, not a portal).
    pub node: i32,
    /// At most this many pages in this call (1..=[`MAX_PULL`]).
    pub max_pages: u32,
    /// Zero.
    pub reserved: u32,
    /// Out: pages moved by this call.
    pub pulled: u64,
    /// Out: pages still on the portal.
    pub left: u64,
}

/// A [`Ref`] as the argument of CXLSW_IOC_RELEASE (a [`Ref`] alone is
/// CANCEL's): the same bytes.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReleaseRef(pub Ref);

// No padding anywhere: each size is the sum of its fields' (the byte views
// below rely on it; the tests check every offset).
const _: () = assert!(size_of::<Version>() == 4 * 4);
const _: () = assert!(size_of::<HandoffEntry>() == 3 * 8 + 8 * 4);
const _: () = assert!(size_of::<List>() == 2 * 4 + 8);
const _: () = assert!(size_of::<Range>() == 2 * 8);
const _: () = assert!(size_of::<Export>() == 10 * 4 + 4 * 8);
const _: () = assert!(size_of::<Ref>() == 4 * 4 + 8);
const _: () = assert!(size_of::<Accept>() == 6 * 4 + 4 * 8);
const _: () = assert!(size_of::<Map>() == 6 * 4 + 2 * 8);
const _: () = assert!(size_of::<Pull>() == 6 * 4 + 3 * 8);
const _: () = assert!(size_of::<ReleaseRef>() == size_of::<Ref>());

/// `size_of::<T>()` as the `u32` of a `size` field and of `_IOC_SIZE`.
const fn size_u32<T>() -> u32 {
    let s = size_of::<T>();
    assert!(s < 1 << IOC_SIZEBITS);
    // Lossless: checked just above (no `From` is usable in a const fn).
    s as u32
}

/// The bytes of a struct of this module, and a struct from bytes: they are
/// `repr(C)` integers without padding, so every byte is initialised and
/// every bit pattern is a value.
macro_rules! plain {
    ($($t:ident),*) => {$(
        impl $t {
            /// Its `sizeof`, as its `size` field wants it.
            pub const SIZE: u32 = size_u32::<$t>();

            /// Its bytes, as the kernel reads them.
            pub fn as_bytes(&self) -> &[u8] {
                // SAFETY: `self` is `size_of::<Self>()` initialised bytes: a
                // `repr(C)` struct of integers with no padding (asserted above).
                unsafe {
                    std::slice::from_raw_parts(std::ptr::from_ref(self).cast::<u8>(), size_of::<Self>())
                }
            }

            /// The struct in the first bytes of `bytes`; `None` if too short.
            pub fn read_from(bytes: &[u8]) -> Option<Self> {
                let src = bytes.get(..size_of::<Self>())?;
                let mut out = Self::default();
                // SAFETY: `src` and `out` are both `size_of::<Self>()` bytes and do not
                // overlap; any bytes are a valid `Self` (integers only, no padding).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        src.as_ptr(),
                        std::ptr::from_mut(&mut out).cast::<u8>(),
                        size_of::<Self>(),
                    )
                };
                Some(out)
            }
        }
    )*};
}

plain!(
    Version,
    HandoffEntry,
    List,
    Range,
    Export,
    Ref,
    Accept,
    Map,
    Pull
);

/// `_IOC_NONE`: no data.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`: userspace writes, the kernel reads.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`: the kernel writes, userspace reads.
pub const IOC_READ: u32 = 2;
/// Bits of `_IOC_SIZE`.
pub const IOC_SIZEBITS: u32 = 14;

/// The ioctl magic (`CXLSW_IOC_MAGIC`).
pub const MAGIC: u32 = 0xCE;

/// Linux's `_IOC(dir, type, nr, size)` (x86, arm64, riscv: 2 bits of
/// direction, 14 of size, 8 of type, 8 of number).
pub const fn ioc(dir: u32, ty: u32, nr: u32, size: u32) -> u32 {
    assert!(dir < 4 && ty < 256 && nr < 256 && size < 1 << IOC_SIZEBITS);
    (dir << 30) | (size << 16) | (ty << 8) | nr
}

/// `_IOC_DIR(cmd)`.
pub const fn ioc_dir(cmd: u32) -> u32 {
    cmd >> 30
}

/// `_IOC_TYPE(cmd)`.
pub const fn ioc_type(cmd: u32) -> u32 {
    (cmd >> 8) & 0xff
}

/// `_IOC_NR(cmd)`.
pub const fn ioc_nr(cmd: u32) -> u32 {
    cmd & 0xff
}

/// `_IOC_SIZE(cmd)`.
pub const fn ioc_size(cmd: u32) -> u32 {
    (cmd >> 16) & ((1 << IOC_SIZEBITS) - 1)
}

/// `CXLSW_IOC_VERSION`: `_IOWR(0xCE, 0x40, struct cxlsw_version)`.
pub const IOC_VERSION: u32 = ioc(IOC_READ | IOC_WRITE, MAGIC, 0x40, Version::SIZE);
/// `CXLSW_IOC_LIST`: `_IOWR(0xCE, 0x41, struct cxlsw_list)`.
pub const IOC_LIST: u32 = ioc(IOC_READ | IOC_WRITE, MAGIC, 0x41, List::SIZE);
/// `CXLSW_IOC_EXPORT`: `_IOWR(0xCE, 0x42, struct cxlsw_export)`.
pub const IOC_EXPORT: u32 = ioc(IOC_READ | IOC_WRITE, MAGIC, 0x42, Export::SIZE);
/// `CXLSW_IOC_CANCEL`: `_IOW(0xCE, 0x43, struct cxlsw_ref)`.
pub const IOC_CANCEL: u32 = ioc(IOC_WRITE, MAGIC, 0x43, Ref::SIZE);
/// `CXLSW_IOC_ACCEPT`: `_IOWR(0xCE, 0x44, struct cxlsw_accept)`.
pub const IOC_ACCEPT: u32 = ioc(IOC_READ | IOC_WRITE, MAGIC, 0x44, Accept::SIZE);
/// `CXLSW_IOC_MAP`: `_IOWR(0xCE, 0x45, struct cxlsw_map)`.
pub const IOC_MAP: u32 = ioc(IOC_READ | IOC_WRITE, MAGIC, 0x45, Map::SIZE);
/// `CXLSW_IOC_PULL`: `_IOWR(0xCE, 0x46, struct cxlsw_pull)`.
pub const IOC_PULL: u32 = ioc(IOC_READ | IOC_WRITE, MAGIC, 0x46, Pull::SIZE);
/// `CXLSW_IOC_RELEASE`: `_IOW(0xCE, 0x47, struct cxlsw_ref)`.
pub const IOC_RELEASE: u32 = ioc(IOC_WRITE, MAGIC, 0x47, Ref::SIZE);

/// A request to the device, as errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Opening the device node.
    Open,
    /// `CXLSW_IOC_VERSION`.
    Version,
    /// `CXLSW_IOC_LIST`.
    List,
    /// `CXLSW_IOC_EXPORT`.
    Export,
    /// `CXLSW_IOC_CANCEL`.
    Cancel,
    /// `CXLSW_IOC_ACCEPT`.
    Accept,
    /// `CXLSW_IOC_MAP`.
    Map,
    /// `CXLSW_IOC_PULL`.
    Pull,
    /// `CXLSW_IOC_RELEASE`.
    Release,
}

impl Request {
    /// Its name: `OPEN`, `VERSION`, `LIST`, `EXPORT`, `CANCEL`, `ACCEPT`,
    /// `MAP`, `PULL`, `RELEASE`.
    pub fn name(self) -> &'static str {
        match self {
            Request::Open => "OPEN",
            Request::Version => "VERSION",
            Request::List => "LIST",
            Request::Export => "EXPORT",
            Request::Cancel => "CANCEL",
            Request::Accept => "ACCEPT",
            Request::Map => "MAP",
            Request::Pull => "PULL",
            Request::Release => "RELEASE",
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A request to the device that failed: the device's path, the request and
/// the errno.
#[derive(Debug)]
pub struct DeviceError {
    /// The device's path.
    pub path: PathBuf,
    /// What failed.
    pub request: Request,
    /// What the kernel (or open) said.
    pub error: io::Error,
}

impl DeviceError {
    fn new(path: &Path, request: Request, error: io::Error) -> Self {
        DeviceError {
            path: path.to_path_buf(),
            request,
            error,
        }
    }

    /// The errno, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        self.error.raw_os_error()
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, request, error) = (self.path.display(), self.request, &self.error);
        match (self.request, self.errno()) {
            (Request::Open, Some(libc::ENOENT)) => write!(
                f,
                "{path}: {request}: {error}: the cxl_switched module is not loaded or the \
                 device node is missing"
            ),
            (Request::Open, Some(libc::ENXIO | libc::ENODEV)) => write!(
                f,
                "{path}: {request}: {error}: the cxl_switched module is not loaded"
            ),
            (Request::Open, Some(libc::EACCES | libc::EPERM)) => write!(
                f,
                "{path}: {request}: {error}: the device is root's (mode 0600)"
            ),
            (_, Some(libc::ENOTTY)) => write!(
                f,
                "{path}: {request}: {error}: not the cxl_switched device, or a kernel \
                 without this request"
            ),
            _ => write!(f, "{path}: {request}: {error}"),
        }
    }
}

// No `source()`: the message already ends with the errno, and `{:#}` would
// print it twice.
impl std::error::Error for DeviceError {}

/// What an export asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportRequest {
    /// The (paused) process.
    pub pid: i32,
    /// The portal's NUMA node.
    pub nid: i32,
    /// The target host's slot in the portal.
    pub target: u32,
    /// The process's ranges to export: ascending, not overlapping,
    /// page-aligned.
    pub ranges: Vec<Range>,
    /// The workload's state that travels beside the pages (may be empty).
    pub blob: Vec<u8>,
}

/// What an export did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportReply {
    /// The handoff's id.
    pub id: u64,
    /// Its record's index.
    pub index: u32,
    /// Pages exported and pinned until the handoff ends.
    pub pages: u64,
}

/// What an accept read: the handoff's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptReply {
    /// Where the workload's pages are to be mapped: ascending, page-aligned.
    pub ranges: Vec<Range>,
    /// The workload's state that travels beside the pages (may be empty).
    pub blob: Vec<u8>,
    /// Pages the manifest lists.
    pub pages: u64,
}

/// What one pull did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullReply {
    /// Pages moved by this call.
    pub pulled: u64,
    /// Pages still on the portal.
    pub left: u64,
}

/// How many times [`Device::accept`] asks: with the room it was given, then
/// with room for all the kernel reported.
const ACCEPT_ATTEMPTS: usize = 2;

/// After an ACCEPT with room for `room.0` ranges and `room.1` blob bytes
/// that reported `got.0` ranges and `got.1` blob bytes: `None` if the room
/// held them, else the room to ask again with (room for all), or `E2BIG` if
/// that is more than the interface's limits.
fn more_room(room: (u32, u32), got: (u32, u32)) -> Result<Option<(u32, u32)>, i32> {
    if got.0 <= room.0 && got.1 <= room.1 {
        Ok(None)
    } else if got.0 > MAX_ACCEPT_RANGES || got.1 > MAX_ACCEPT_BLOB {
        Err(libc::E2BIG)
    } else {
        Ok(Some((got.0.max(room.0), got.1.max(room.1))))
    }
}

/// How many times [`Device::list`] asks again when the handoffs outgrew the
/// room it gave.
const LIST_ATTEMPTS: usize = 8;

/// The address of `p` as a `__u64` user pointer.
fn user_ptr<T>(p: *const T) -> u64 {
    const _: () = assert!(size_of::<usize>() <= size_of::<u64>());
    // Lossless: a usize fits in a u64 (asserted above); std has no `From`.
    p.addr() as u64
}

/// `cmd` as the request argument of this libc's `ioctl` (`unsigned long` on
/// glibc, `int` on musl: the same 32 bits either way).
#[cfg(target_env = "musl")]
fn request_arg(cmd: u32) -> libc::Ioctl {
    libc::Ioctl::from_ne_bytes(cmd.to_ne_bytes())
}

/// `cmd` as the request argument of this libc's `ioctl` (`unsigned long` on
/// glibc, `int` on musl: the same 32 bits either way).
#[cfg(not(target_env = "musl"))]
fn request_arg(cmd: u32) -> libc::Ioctl {
    libc::Ioctl::from(cmd)
}

/// Sends ioctl `cmd` with argument `arg` to `fd`: the ioctl's return value,
/// or its errno.
///
/// # Safety
///
/// The kernel may write through `arg` (and through any user pointer in what
/// `arg` points to) as much as the request it implements says: `arg` is
/// null, or not mapped, or valid for those writes.
pub unsafe fn raw_ioctl(fd: BorrowedFd<'_>, cmd: u32, arg: *mut libc::c_void) -> Result<i32, i32> {
    // SAFETY: `fd` is an open descriptor (borrowed); what the kernel does with
    // `arg` is the caller's contract.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request_arg(cmd), arg) };
    if r < 0 {
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    } else {
        Ok(r)
    }
}

/// A struct that is the argument of exactly one request.
trait Arg: Copy {
    const REQUEST: Request;
    const CMD: u32;
}

impl Arg for Version {
    const REQUEST: Request = Request::Version;
    const CMD: u32 = IOC_VERSION;
}

impl Arg for List {
    const REQUEST: Request = Request::List;
    const CMD: u32 = IOC_LIST;
}

impl Arg for Export {
    const REQUEST: Request = Request::Export;
    const CMD: u32 = IOC_EXPORT;
}

impl Arg for Ref {
    const REQUEST: Request = Request::Cancel;
    const CMD: u32 = IOC_CANCEL;
}

impl Arg for Accept {
    const REQUEST: Request = Request::Accept;
    const CMD: u32 = IOC_ACCEPT;
}

impl Arg for Map {
    const REQUEST: Request = Request::Map;
    const CMD: u32 = IOC_MAP;
}

impl Arg for Pull {
    const REQUEST: Request = Request::Pull;
    const CMD: u32 = IOC_PULL;
}

impl Arg for ReleaseRef {
    const REQUEST: Request = Request::Release;
    const CMD: u32 = IOC_RELEASE;
}

/// An open `/dev/cxl_switched`.
#[derive(Debug)]
pub struct Device {
    file: File,
    path: PathBuf,
}

impl Device {
    /// Opens the device at `path` (read-write; it is root's).
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Open`]; a missing node says that the
    /// module is not loaded or the node is missing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DeviceError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| DeviceError::new(path, Request::Open, e))?;
        Ok(Device {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `arg`'s request with `arg`.
    fn call<T: Arg>(&self, arg: &mut T) -> Result<(), DeviceError> {
        // SAFETY: `arg` is a live, writable `T`, the very struct whose size
        // `T::CMD` encodes (see `Arg`): the kernel writes no more than that
        // there. User pointers inside `arg` are set by this module's callers
        // to buffers valid for what the request writes through them.
        unsafe { raw_ioctl(self.file.as_fd(), T::CMD, std::ptr::from_mut(arg).cast()) }
            .map(drop)
            .map_err(|errno| {
                DeviceError::new(&self.path, T::REQUEST, io::Error::from_raw_os_error(errno))
            })
    }

    fn local_error(&self, request: Request, errno: i32) -> DeviceError {
        DeviceError::new(&self.path, request, io::Error::from_raw_os_error(errno))
    }

    /// The kernel's interface version and how many portals this host is a
    /// member of.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Version`].
    pub fn version(&self) -> Result<Version, DeviceError> {
        let mut v = Version {
            size: Version::SIZE,
            ..Version::default()
        };
        self.call(&mut v)?;
        Ok(v)
    }

    /// The handoffs in flight that this host is a party to, on every portal.
    ///
    /// Asks for the count first, then with room for it, and again if the
    /// handoffs outgrew the room meanwhile. At most [`MAX_LIST`] are
    /// returned: the interface reports no more.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::List`] (`EAGAIN` if the handoffs kept
    /// outgrowing the room).
    pub fn list(&self) -> Result<Vec<HandoffEntry>, DeviceError> {
        let mut l = List {
            size: List::SIZE,
            count: 0,
            handoffs: 0,
        };
        self.call(&mut l)?;
        for _ in 0..LIST_ATTEMPTS {
            let room = l.count.min(MAX_LIST);
            if room == 0 {
                return Ok(Vec::new());
            }
            let len =
                usize::try_from(room).map_err(|_| self.local_error(Request::List, libc::E2BIG))?;
            let mut out = vec![HandoffEntry::default(); len];
            l = List {
                size: List::SIZE,
                count: room,
                handoffs: user_ptr(out.as_mut_ptr()),
            };
            // `out` has room for `room` entries: the kernel fills at most that.
            self.call(&mut l)?;
            if l.count <= room || room == MAX_LIST {
                let filled = usize::try_from(l.count).map_or(len, |n| n.min(len));
                out.truncate(filled);
                return Ok(out);
            }
        }
        Err(self.local_error(Request::List, libc::EAGAIN))
    }

    /// Exports a paused process's pages: they are pinned until the handoff
    /// ends, and offered to `req.target`.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Export`] (`E2BIG` without asking the
    /// kernel if the ranges or the blob do not fit the struct's counts).
    pub fn export(&self, req: &ExportRequest) -> Result<ExportReply, DeviceError> {
        let too_big = || self.local_error(Request::Export, libc::E2BIG);
        let mut e = Export {
            size: Export::SIZE,
            pid: req.pid,
            nid: req.nid,
            target: req.target,
            nr_ranges: u32::try_from(req.ranges.len()).map_err(|_| too_big())?,
            blob_len: u32::try_from(req.blob.len()).map_err(|_| too_big())?,
            ranges: if req.ranges.is_empty() {
                0
            } else {
                user_ptr(req.ranges.as_ptr())
            },
            blob: if req.blob.is_empty() {
                0
            } else {
                user_ptr(req.blob.as_ptr())
            },
            ..Export::default()
        };
        // The kernel only reads `ranges` and `blob`.
        self.call(&mut e)?;
        Ok(ExportReply {
            id: e.id,
            index: e.index,
            pages: e.pages,
        })
    }

    /// Cancels offer `index` (id `id`) on the portal of node `nid`, of this
    /// host or to it; a source's pages are unpinned.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Cancel`].
    pub fn cancel(&self, nid: i32, index: u32, id: u64) -> Result<(), DeviceError> {
        self.call(&mut Ref::new(nid, index, id))
    }

    /// Accepts offer `index` (id `id`) to this host on the portal of node
    /// `nid`, or reads again a handoff this host accepted, and returns its
    /// manifest: the ranges to map its pages at, its blob and its pages.
    ///
    /// Asks with room for `room_ranges` ranges and `room_blob` blob bytes
    /// (each at most the interface's limit), and once more with room for all
    /// if the kernel says there are more: ACCEPT answers a handoff this host
    /// accepted again without changing anything.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Accept`]: `E2BIG` without asking
    /// again if the kernel reports more than [`MAX_ACCEPT_RANGES`] ranges or
    /// [`MAX_ACCEPT_BLOB`] blob bytes, `EAGAIN` if the second answer still
    /// reports more than the room it gave.
    pub fn accept(
        &self,
        nid: i32,
        index: u32,
        id: u64,
        room_ranges: u32,
        room_blob: u32,
    ) -> Result<AcceptReply, DeviceError> {
        let mut room = (
            room_ranges.min(MAX_ACCEPT_RANGES),
            room_blob.min(MAX_ACCEPT_BLOB),
        );
        for _ in 0..ACCEPT_ATTEMPTS {
            let (a, mut reply) = self.accept_with_room(nid, index, id, room)?;
            match more_room(room, (a.nr_ranges, a.blob_len))
                .map_err(|errno| self.local_error(Request::Accept, errno))?
            {
                Some(more) => room = more,
                None => {
                    reply
                        .ranges
                        .truncate(self.len_of(Request::Accept, a.nr_ranges)?);
                    reply
                        .blob
                        .truncate(self.len_of(Request::Accept, a.blob_len)?);
                    return Ok(reply);
                }
            }
        }
        Err(self.local_error(Request::Accept, libc::EAGAIN))
    }

    /// One ACCEPT with room for `room.0` ranges and `room.1` blob bytes: the
    /// struct the kernel wrote back, and the room as it filled it.
    fn accept_with_room(
        &self,
        nid: i32,
        index: u32,
        id: u64,
        room: (u32, u32),
    ) -> Result<(Accept, AcceptReply), DeviceError> {
        let mut ranges = vec![Range::default(); self.len_of(Request::Accept, room.0)?];
        let mut blob = vec![0u8; self.len_of(Request::Accept, room.1)?];
        let mut a = Accept {
            size: Accept::SIZE,
            nid,
            id,
            index,
            nr_ranges: room.0,
            blob_len: room.1,
            ranges: if ranges.is_empty() {
                0
            } else {
                user_ptr(ranges.as_mut_ptr())
            },
            blob: if blob.is_empty() {
                0
            } else {
                user_ptr(blob.as_mut_ptr())
            },
            ..Accept::default()
        };
        // `ranges` has room for `room.0` entries and `blob` for `room.1`
        // bytes: the kernel fills at most that.
        self.call(&mut a)?;
        let pages = a.pages;
        Ok((
            a,
            AcceptReply {
                ranges,
                blob,
                pages,
            },
        ))
    }

    /// `n` as a length, for an error of `request` if it does not fit.
    fn len_of(&self, request: Request, n: u32) -> Result<usize, DeviceError> {
        usize::try_from(n).map_err(|_| self.local_error(request, libc::E2BIG))
    }

    /// Maps the pages of accepted handoff `index` (id `id`) on the portal of
    /// node `nid` into process `pid` (this one, or one it may attach to), at
    /// the ranges [`Device::accept`] returned, which must lie in private
    /// anonymous mappings of that process that no page backs yet (mapped,
    /// never touched). Returns the pages mapped.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Map`].
    pub fn map(&self, nid: i32, index: u32, id: u64, pid: i32) -> Result<u64, DeviceError> {
        let mut m = Map {
            size: Map::SIZE,
            nid,
            id,
            index,
            pid,
            ..Map::default()
        };
        self.call(&mut m)?;
        Ok(m.pages)
    }

    /// Moves at most `max_pages` (1..=[`MAX_PULL`]) pages of mapped handoff
    /// `index` (id `id`) on the portal of node `nid` from the portal to node
    /// `node` of this host, while the process runs: the pages moved, and
    /// those still on the portal. Once none is left the handoff is pulled
    /// and the source may release it.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Pull`].
    pub fn pull(
        &self,
        nid: i32,
        index: u32,
        id: u64,
        node: i32,
        max_pages: u32,
    ) -> Result<PullReply, DeviceError> {
        let mut p = Pull {
            size: Pull::SIZE,
            nid,
            id,
            index,
            node,
            max_pages,
            ..Pull::default()
        };
        self.call(&mut p)?;
        Ok(PullReply {
            pulled: p.pulled,
            left: p.left,
        })
    }

    /// Releases pulled handoff `index` (id `id`) on the portal of node
    /// `nid`, as its source: unpins its pages, offlines the blocks they lie
    /// in (migrating what else is there) and ends the handoff. End the old
    /// process first.
    ///
    /// # Errors
    ///
    /// A [`DeviceError`] of [`Request::Release`].
    pub fn release(&self, nid: i32, index: u32, id: u64) -> Result<(), DeviceError> {
        self.call(&mut ReleaseRef(Ref::new(nid, index, id)))
    }
}

impl Ref {
    /// The [`Ref`] of handoff `index` (id `id`) on the portal of node `nid`.
    pub fn new(nid: i32, index: u32, id: u64) -> Self {
        Ref {
            size: Ref::SIZE,
            nid,
            id,
            index,
            reserved: 0,
        }
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Sizes and offsets by hand from the C header: `__u32`/`__s32` are 4
    /// bytes, 4-aligned; `__u64` 8 bytes, 8-aligned; a struct is padded to its
    /// largest alignment (none of these needs padding).
    #[test]
    fn layouts_are_the_c_headers() {
        assert_eq!(size_of::<Version>(), 16);
        assert_eq!(offset_of!(Version, size), 0);
        assert_eq!(offset_of!(Version, version), 4);
        assert_eq!(offset_of!(Version, portals), 8);
        assert_eq!(offset_of!(Version, reserved), 12);

        assert_eq!(size_of::<HandoffEntry>(), 56);
        assert_eq!(offset_of!(HandoffEntry, id), 0);
        assert_eq!(offset_of!(HandoffEntry, index), 8);
        assert_eq!(offset_of!(HandoffEntry, state), 12);
        assert_eq!(offset_of!(HandoffEntry, role), 16);
        assert_eq!(offset_of!(HandoffEntry, peer), 20);
        assert_eq!(offset_of!(HandoffEntry, nid), 24);
        assert_eq!(offset_of!(HandoffEntry, blocks), 28);
        assert_eq!(offset_of!(HandoffEntry, pages), 32);
        assert_eq!(offset_of!(HandoffEntry, blob_bytes), 40);
        assert_eq!(offset_of!(HandoffEntry, pid), 44);
        assert_eq!(offset_of!(HandoffEntry, pinned), 48);

        assert_eq!(size_of::<List>(), 16);
        assert_eq!(offset_of!(List, size), 0);
        assert_eq!(offset_of!(List, count), 4);
        assert_eq!(offset_of!(List, handoffs), 8);

        assert_eq!(size_of::<Range>(), 16);
        assert_eq!(offset_of!(Range, start), 0);
        assert_eq!(offset_of!(Range, len), 8);

        assert_eq!(size_of::<Export>(), 72);
        assert_eq!(offset_of!(Export, size), 0);
        assert_eq!(offset_of!(Export, flags), 4);
        assert_eq!(offset_of!(Export, pid), 8);
        assert_eq!(offset_of!(Export, nid), 12);
        assert_eq!(offset_of!(Export, target), 16);
        assert_eq!(offset_of!(Export, nr_ranges), 20);
        assert_eq!(offset_of!(Export, blob_len), 24);
        assert_eq!(offset_of!(Export, reserved), 28);
        assert_eq!(offset_of!(Export, ranges), 32);
        assert_eq!(offset_of!(Export, blob), 40);
        assert_eq!(offset_of!(Export, id), 48);
        assert_eq!(offset_of!(Export, index), 56);
        assert_eq!(offset_of!(Export, reserved2), 60);
        assert_eq!(offset_of!(Export, pages), 64);

        assert_eq!(size_of::<Ref>(), 24);
        assert_eq!(offset_of!(Ref, size), 0);
        assert_eq!(offset_of!(Ref, nid), 4);
        assert_eq!(offset_of!(Ref, id), 8);
        assert_eq!(offset_of!(Ref, index), 16);
        assert_eq!(offset_of!(Ref, reserved), 20);

        assert_eq!(size_of::<Accept>(), 56);
        assert_eq!(offset_of!(Accept, size), 0);
        assert_eq!(offset_of!(Accept, nid), 4);
        assert_eq!(offset_of!(Accept, id), 8);
        assert_eq!(offset_of!(Accept, index), 16);
        assert_eq!(offset_of!(Accept, nr_ranges), 20);
        assert_eq!(offset_of!(Accept, blob_len), 24);
        assert_eq!(offset_of!(Accept, reserved), 28);
        assert_eq!(offset_of!(Accept, ranges), 32);
        assert_eq!(offset_of!(Accept, blob), 40);
        assert_eq!(offset_of!(Accept, pages), 48);

        assert_eq!(size_of::<Map>(), 40);
        assert_eq!(offset_of!(Map, size), 0);
        assert_eq!(offset_of!(Map, nid), 4);
        assert_eq!(offset_of!(Map, id), 8);
        assert_eq!(offset_of!(Map, index), 16);
        assert_eq!(offset_of!(Map, pid), 20);
        assert_eq!(offset_of!(Map, flags), 24);
        assert_eq!(offset_of!(Map, reserved), 28);
        assert_eq!(offset_of!(Map, pages), 32);

        assert_eq!(size_of::<Pull>(), 48);
        assert_eq!(offset_of!(Pull, size), 0);
        assert_eq!(offset_of!(Pull, nid), 4);
        assert_eq!(offset_of!(Pull, id), 8);
        assert_eq!(offset_of!(Pull, index), 16);
        assert_eq!(offset_of!(Pull, node), 20);
        assert_eq!(offset_of!(Pull, max_pages), 24);
        assert_eq!(offset_of!(Pull, reserved), 28);
        assert_eq!(offset_of!(Pull, pulled), 32);
        assert_eq!(offset_of!(Pull, left), 40);

        // RELEASE's argument is CANCEL's, byte for byte.
        assert_eq!(size_of::<ReleaseRef>(), 24);
        assert_eq!(std::mem::align_of::<ReleaseRef>(), 8);

        // Every struct is as aligned as a __u64 struct is in C (or a __u32 one).
        assert_eq!(std::mem::align_of::<Version>(), 4);
        assert_eq!(std::mem::align_of::<HandoffEntry>(), 8);
        assert_eq!(std::mem::align_of::<List>(), 8);
        assert_eq!(std::mem::align_of::<Range>(), 8);
        assert_eq!(std::mem::align_of::<Export>(), 8);
        assert_eq!(std::mem::align_of::<Ref>(), 8);
        assert_eq!(std::mem::align_of::<Accept>(), 8);
        assert_eq!(std::mem::align_of::<Map>(), 8);
        assert_eq!(std::mem::align_of::<Pull>(), 8);
    }

    /// `dir << 30 | size << 16 | 0xCE << 8 | nr`, by hand.
    #[test]
    fn request_numbers_are_the_c_headers() {
        // _IOWR: dir 3, size 16 (0x10), nr 0x40.
        assert_eq!(IOC_VERSION, 0xC010_CE40);
        // _IOWR: dir 3, size 16, nr 0x41.
        assert_eq!(IOC_LIST, 0xC010_CE41);
        // _IOWR: dir 3, size 72 (0x48), nr 0x42.
        assert_eq!(IOC_EXPORT, 0xC048_CE42);
        // _IOW: dir 1, size 24 (0x18), nr 0x43.
        assert_eq!(IOC_CANCEL, 0x4018_CE43);
        // _IOWR: dir 3, size 56 (0x38), nr 0x44.
        assert_eq!(IOC_ACCEPT, 0xC038_CE44);
        // _IOWR: dir 3, size 32 (0x20), nr 0x45.
        assert_eq!(IOC_MAP, 0xC028_CE45);
        // _IOWR: dir 3, size 48 (0x30), nr 0x46.
        assert_eq!(IOC_PULL, 0xC030_CE46);
        // _IOW: dir 1, size 24 (0x18), nr 0x47.
        assert_eq!(IOC_RELEASE, 0x4018_CE47);
        assert_eq!(
            [
                Version::SIZE,
                List::SIZE,
                Export::SIZE,
                Ref::SIZE,
                Accept::SIZE,
                Map::SIZE,
                Pull::SIZE
            ],
            [16, 16, 72, 24, 56, 40, 48]
        );
        for (cmd, dir, nr, size) in [
            (IOC_VERSION, 3, 0x40, 16),
            (IOC_LIST, 3, 0x41, 16),
            (IOC_EXPORT, 3, 0x42, 72),
            (IOC_CANCEL, 1, 0x43, 24),
            (IOC_ACCEPT, 3, 0x44, 56),
            (IOC_MAP, 3, 0x45, 40),
            (IOC_PULL, 3, 0x46, 48),
            (IOC_RELEASE, 1, 0x47, 24),
        ] {
            assert_eq!(
                (ioc_dir(cmd), ioc_type(cmd), ioc_nr(cmd), ioc_size(cmd)),
                (dir, 0xCE, nr, size)
            );
        }
        // Linux's own _IOC of a well-known request: FIONREAD is _IO('T', 0x1B)
        // on x86 as 0x541B; TUNSETIFF _IOW('T', 202, int) is 0x400454CA.
        assert_eq!(ioc(IOC_NONE, 0x54, 0x1B, 0), 0x541B);
        assert_eq!(ioc(IOC_WRITE, 0x54, 202, 4), 0x4004_54CA);
    }

    /// The C types of the header and their size (= alignment).
    fn c_size(ty: &str) -> usize {
        match ty {
            "__u8" | "__s8" => 1,
            "__u16" | "__s16" => 2,
            "__u32" | "__s32" => 4,
            "__u64" | "__s64" => 8,
            _ => panic!("a C type this test does not know: {ty}"),
        }
    }

    /// A struct's layout: its name, size, and its fields with their offsets.
    #[derive(Debug, PartialEq, Eq)]
    struct Layout {
        name: String,
        size: usize,
        fields: Vec<(String, usize)>,
    }

    fn layout(name: &str, size: usize, fields: &[(&str, usize)]) -> Layout {
        Layout {
            name: name.to_owned(),
            size,
            fields: fields.iter().map(|(f, o)| ((*f).to_owned(), *o)).collect(),
        }
    }

    /// The header's structs, laid out by the C rules.
    fn c_layouts(text: &str) -> Vec<Layout> {
        let mut out = Vec::new();
        // The struct being read, the end of its last field, its alignment.
        let mut cur: Option<(Layout, usize)> = None;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line
                .strip_prefix("struct ")
                .and_then(|l| l.strip_suffix(" {"))
            {
                cur = Some((layout(name, 0, &[]), 1));
            } else if line == "};" {
                let (mut l, align) = cur.take().expect("a struct ends that began");
                l.size = l.size.div_ceil(align) * align;
                out.push(l);
            } else if let Some((l, align)) = cur.as_mut() {
                let decl = line.strip_suffix(';').expect("one field a line");
                let (ty, field) = decl.split_once(' ').expect("TYPE NAME;");
                let size = c_size(ty);
                let at = l.size.div_ceil(size) * size;
                l.fields.push((field.trim().to_owned(), at));
                l.size = at + size;
                *align = (*align).max(size);
            }
        }
        out
    }

    const HEADER: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../include/uapi/linux/cxl_switched.h"
    );

    /// The mirrors against the header itself: the same structs, fields in the
    /// same order at the same offsets, the same request numbers and values.
    #[test]
    fn mirrors_match_the_header_file() {
        let text = std::fs::read_to_string(HEADER).expect("the uapi header is in the tree");
        let rust = vec![
            layout(
                "cxlsw_version",
                size_of::<Version>(),
                &[
                    ("size", offset_of!(Version, size)),
                    ("version", offset_of!(Version, version)),
                    ("portals", offset_of!(Version, portals)),
                    ("reserved", offset_of!(Version, reserved)),
                ],
            ),
            layout(
                "cxlsw_handoff",
                size_of::<HandoffEntry>(),
                &[
                    ("id", offset_of!(HandoffEntry, id)),
                    ("index", offset_of!(HandoffEntry, index)),
                    ("state", offset_of!(HandoffEntry, state)),
                    ("role", offset_of!(HandoffEntry, role)),
                    ("peer", offset_of!(HandoffEntry, peer)),
                    ("nid", offset_of!(HandoffEntry, nid)),
                    ("blocks", offset_of!(HandoffEntry, blocks)),
                    ("pages", offset_of!(HandoffEntry, pages)),
                    ("blob_bytes", offset_of!(HandoffEntry, blob_bytes)),
                    ("pid", offset_of!(HandoffEntry, pid)),
                    ("pinned", offset_of!(HandoffEntry, pinned)),
                ],
            ),
            layout(
                "cxlsw_list",
                size_of::<List>(),
                &[
                    ("size", offset_of!(List, size)),
                    ("count", offset_of!(List, count)),
                    ("handoffs", offset_of!(List, handoffs)),
                ],
            ),
            layout(
                "cxlsw_range",
                size_of::<Range>(),
                &[
                    ("start", offset_of!(Range, start)),
                    ("len", offset_of!(Range, len)),
                ],
            ),
            layout(
                "cxlsw_export",
                size_of::<Export>(),
                &[
                    ("size", offset_of!(Export, size)),
                    ("flags", offset_of!(Export, flags)),
                    ("pid", offset_of!(Export, pid)),
                    ("nid", offset_of!(Export, nid)),
                    ("target", offset_of!(Export, target)),
                    ("nr_ranges", offset_of!(Export, nr_ranges)),
                    ("blob_len", offset_of!(Export, blob_len)),
                    ("reserved", offset_of!(Export, reserved)),
                    ("ranges", offset_of!(Export, ranges)),
                    ("blob", offset_of!(Export, blob)),
                    ("id", offset_of!(Export, id)),
                    ("index", offset_of!(Export, index)),
                    ("reserved2", offset_of!(Export, reserved2)),
                    ("pages", offset_of!(Export, pages)),
                ],
            ),
            layout(
                "cxlsw_ref",
                size_of::<Ref>(),
                &[
                    ("size", offset_of!(Ref, size)),
                    ("nid", offset_of!(Ref, nid)),
                    ("id", offset_of!(Ref, id)),
                    ("index", offset_of!(Ref, index)),
                    ("reserved", offset_of!(Ref, reserved)),
                ],
            ),
            layout(
                "cxlsw_accept",
                size_of::<Accept>(),
                &[
                    ("size", offset_of!(Accept, size)),
                    ("nid", offset_of!(Accept, nid)),
                    ("id", offset_of!(Accept, id)),
                    ("index", offset_of!(Accept, index)),
                    ("nr_ranges", offset_of!(Accept, nr_ranges)),
                    ("blob_len", offset_of!(Accept, blob_len)),
                    ("reserved", offset_of!(Accept, reserved)),
                    ("ranges", offset_of!(Accept, ranges)),
                    ("blob", offset_of!(Accept, blob)),
                    ("pages", offset_of!(Accept, pages)),
                ],
            ),
            layout(
                "cxlsw_map",
                size_of::<Map>(),
                &[
                    ("size", offset_of!(Map, size)),
                    ("nid", offset_of!(Map, nid)),
                    ("id", offset_of!(Map, id)),
                    ("index", offset_of!(Map, index)),
                    ("pid", offset_of!(Map, pid)),
                    ("flags", offset_of!(Map, flags)),
                    ("reserved", offset_of!(Map, reserved)),
                    ("pages", offset_of!(Map, pages)),
                ],
            ),
            layout(
                "cxlsw_pull",
                size_of::<Pull>(),
                &[
                    ("size", offset_of!(Pull, size)),
                    ("nid", offset_of!(Pull, nid)),
                    ("id", offset_of!(Pull, id)),
                    ("index", offset_of!(Pull, index)),
                    ("node", offset_of!(Pull, node)),
                    ("max_pages", offset_of!(Pull, max_pages)),
                    ("reserved", offset_of!(Pull, reserved)),
                    ("pulled", offset_of!(Pull, pulled)),
                    ("left", offset_of!(Pull, left)),
                ],
            ),
        ];
        let c = c_layouts(&text);
        assert_eq!(c, rust, "the structs of {HEADER}");
        let size_of_c = |name: &str| -> u32 {
            let s = c
                .iter()
                .find(|l| l.name == name)
                .expect("a struct of the header");
            u32::try_from(s.size).expect("small")
        };
        let mut defines = std::collections::BTreeMap::new();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            if let (Some("#define"), Some(name), Some(value)) = (w.next(), w.next(), w.next()) {
                let rest: Vec<&str> = std::iter::once(value).chain(w).collect();
                defines.insert(name.to_owned(), rest.join(" "));
            }
        }
        let number = |name: &str| -> u32 {
            let v = &defines[name];
            match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(h) => u32::from_str_radix(h, 16).expect("hex"),
                None => v.parse().expect("decimal"),
            }
        };
        assert_eq!(number("CXLSW_API_VERSION"), API_VERSION);
        assert_eq!(number("CXLSW_OFFERED"), OFFERED);
        assert_eq!(number("CXLSW_ACCEPTED"), ACCEPTED);
        assert_eq!(number("CXLSW_PULLED"), PULLED);
        assert_eq!(number("CXLSW_RETURNED"), RETURNED);
        assert_eq!(number("CXLSW_LOST"), LOST);
        assert_eq!(number("CXLSW_SOURCE"), SOURCE);
        assert_eq!(number("CXLSW_TARGET"), TARGET);
        assert_eq!(number("CXLSW_IOC_MAGIC"), MAGIC);
        let request = |name: &str| -> u32 {
            let v = &defines[name];
            let (dir, args) = v.split_once('(').expect("_IOxx(...)");
            let args: Vec<&str> = args
                .trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect();
            let [ty, nr, st] = args[..] else {
                panic!("{name}: {v}")
            };
            assert_eq!(ty, "CXLSW_IOC_MAGIC", "{name}");
            let dir = match dir {
                "_IOWR" => IOC_READ | IOC_WRITE,
                "_IOW" => IOC_WRITE,
                "_IOR" => IOC_READ,
                _ => panic!("{name}: {v}"),
            };
            let nr = u32::from_str_radix(nr.trim_start_matches("0x"), 16).expect("hex nr");
            let st = st.strip_prefix("struct ").expect("a struct type");
            ioc(dir, MAGIC, nr, size_of_c(st))
        };
        assert_eq!(request("CXLSW_IOC_VERSION"), IOC_VERSION);
        assert_eq!(request("CXLSW_IOC_LIST"), IOC_LIST);
        assert_eq!(request("CXLSW_IOC_EXPORT"), IOC_EXPORT);
        assert_eq!(request("CXLSW_IOC_CANCEL"), IOC_CANCEL);
        assert_eq!(request("CXLSW_IOC_ACCEPT"), IOC_ACCEPT);
        assert_eq!(request("CXLSW_IOC_MAP"), IOC_MAP);
        assert_eq!(request("CXLSW_IOC_PULL"), IOC_PULL);
        assert_eq!(request("CXLSW_IOC_RELEASE"), IOC_RELEASE);
        let requests = defines
            .keys()
            .filter(|k| k.starts_with("CXLSW_IOC_") && *k != "CXLSW_IOC_MAGIC")
            .count();
        assert_eq!(requests, 8, "a request of the header this module lacks");
    }

    #[test]
    fn structs_round_trip_through_bytes() {
        let e = Export {
            size: Export::SIZE,
            pid: -1,
            nid: 2,
            ranges: 0x1122_3344_5566_7788,
            pages: 9,
            ..Export::default()
        };
        let b = e.as_bytes();
        assert_eq!(b.len(), 72);
        assert_eq!(&b[..4], &72u32.to_ne_bytes());
        assert_eq!(&b[8..12], &(-1i32).to_ne_bytes());
        assert_eq!(&b[32..40], &0x1122_3344_5566_7788u64.to_ne_bytes());
        assert_eq!(Export::read_from(b), Some(e));
        assert_eq!(Export::read_from(&b[..71]), None);
        assert_eq!(Ref::read_from(&[0xff; 24]).map(|r| r.nid), Some(-1));

        let p = Pull {
            size: Pull::SIZE,
            node: -1,
            max_pages: MAX_PULL,
            left: 7,
            ..Pull::default()
        };
        let b = p.as_bytes();
        assert_eq!(b.len(), 48);
        assert_eq!(&b[20..24], &(-1i32).to_ne_bytes());
        assert_eq!(&b[24..28], &(1u32 << 20).to_ne_bytes());
        assert_eq!(&b[40..48], &7u64.to_ne_bytes());
        assert_eq!(Pull::read_from(b), Some(p));
        let a = Accept::read_from(&[0xff; 56]).expect("56 bytes are an Accept");
        assert_eq!((a.nid, a.nr_ranges, a.pages), (-1, u32::MAX, u64::MAX));
        assert_eq!(Map::read_from(&[0; 39]), None);
        assert_eq!(
            Ref::new(2, 3, 0x2a).as_bytes(),
            ReleaseRef(Ref::new(2, 3, 0x2a)).0.as_bytes()
        );
    }

    #[test]
    fn accept_asks_again_with_room_for_all_the_kernel_reported() {
        assert_eq!(more_room((64, 4096), (3, 100)), Ok(None));
        assert_eq!(more_room((64, 4096), (64, 4096)), Ok(None));
        assert_eq!(more_room((0, 0), (0, 0)), Ok(None));
        assert_eq!(more_room((64, 4096), (65, 0)), Ok(Some((65, 4096))));
        assert_eq!(more_room((64, 4096), (1, 4097)), Ok(Some((64, 4097))));
        assert_eq!(
            more_room((0, 0), (MAX_ACCEPT_RANGES, MAX_ACCEPT_BLOB)),
            Ok(Some((MAX_ACCEPT_RANGES, MAX_ACCEPT_BLOB)))
        );
        assert_eq!(
            more_room((64, 4096), (MAX_ACCEPT_RANGES + 1, 0)),
            Err(libc::E2BIG)
        );
        assert_eq!(
            more_room((64, 4096), (1, MAX_ACCEPT_BLOB + 1)),
            Err(libc::E2BIG)
        );
    }

    #[test]
    fn errors_name_the_device_the_request_and_the_errno() {
        let e = DeviceError::new(
            Path::new(DEVICE),
            Request::Export,
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(
            e.to_string(),
            "/dev/cxl_switched: EXPORT: Invalid argument (os error 22)"
        );
        assert_eq!(e.errno(), Some(libc::EINVAL));
        let e = DeviceError::new(
            Path::new("/dev/null"),
            Request::List,
            io::Error::from_raw_os_error(libc::ENOTTY),
        );
        assert!(
            e.to_string()
                .starts_with("/dev/null: LIST: Inappropriate ioctl for device (os error 25)"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_device_says_the_module_is_not_loaded() {
        let e = Device::open("/nonexistent/cxl_switched").expect_err("no such node");
        assert_eq!(e.request, Request::Open);
        assert_eq!(e.errno(), Some(libc::ENOENT));
        let msg = e.to_string();
        assert!(
            msg.starts_with("/nonexistent/cxl_switched: OPEN: "),
            "{msg}"
        );
        assert!(
            msg.contains("the cxl_switched module is not loaded or the device node is missing"),
            "{msg}"
        );
    }

    /// /dev/null has no ioctls: every request reaches the kernel and comes
    /// back ENOTTY, named.
    #[test]
    fn requests_reach_the_kernel() {
        let d = Device::open("/dev/null").expect("/dev/null opens");
        let e = d.version().expect_err("/dev/null has no VERSION");
        assert_eq!(
            (e.request, e.errno()),
            (Request::Version, Some(libc::ENOTTY))
        );
        let e = d.list().expect_err("nor LIST");
        assert_eq!((e.request, e.errno()), (Request::List, Some(libc::ENOTTY)));
        let req = ExportRequest {
            pid: 1,
            ranges: vec![Range {
                start: 0x1000,
                len: 0x1000,
            }],
            ..ExportRequest::default()
        };
        let e = d.export(&req).expect_err("nor EXPORT");
        assert_eq!(
            (e.request, e.errno()),
            (Request::Export, Some(libc::ENOTTY))
        );
        let e = d.cancel(0, 1, 2).expect_err("nor CANCEL");
        assert_eq!(
            (e.request, e.errno()),
            (Request::Cancel, Some(libc::ENOTTY))
        );
        assert!(e.to_string().starts_with("/dev/null: CANCEL: "), "{e}");
        let e = d.accept(0, 1, 2, 4, 4096).expect_err("nor ACCEPT");
        assert_eq!(
            (e.request, e.errno()),
            (Request::Accept, Some(libc::ENOTTY))
        );
        let e = d
            .accept(0, 1, 2, 0, 0)
            .expect_err("nor ACCEPT without room");
        assert_eq!(e.request, Request::Accept);
        let e = d.map(0, 1, 2, 3).expect_err("nor MAP");
        assert_eq!((e.request, e.errno()), (Request::Map, Some(libc::ENOTTY)));
        let e = d.pull(0, 1, 2, 0, 4096).expect_err("nor PULL");
        assert_eq!((e.request, e.errno()), (Request::Pull, Some(libc::ENOTTY)));
        let e = d.release(0, 1, 2).expect_err("nor RELEASE");
        assert_eq!(
            (e.request, e.errno()),
            (Request::Release, Some(libc::ENOTTY))
        );
        assert!(e.to_string().starts_with("/dev/null: RELEASE: "), "{e}");
    }
}
