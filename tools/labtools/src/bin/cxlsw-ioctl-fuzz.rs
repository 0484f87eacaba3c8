// SPDX-License-Identifier: GPL-2.0
//! cxlsw-ioctl-fuzz: fixed and random requests to /dev/cxl_switched, for the
//! lab's guest, as root.
//!
//! Every request number of the interface, each with a wrong size or
//! direction encoded, unknown numbers of its magic and a wrong magic get:
//! all-zero structs, random bytes, wrong `size` fields, all-ones flags and
//! reserved fields, NULL and unmapped argument pointers. The real requests
//! get boundary values of each field besides (counts, pids, nodes, range
//! arrays that are bad in each way). Then `--iterations` random rounds, and
//! every number again on /dev/null. Each answer is tallied (errno or
//! success); an EXPORT that succeeds is cancelled at once. The target's
//! requests (ACCEPT, MAP, PULL) and the source's RELEASE name handoffs that
//! do not exist (EINVAL, or ENODEV for a node without a portal), whatever
//! their other fields. The kernel's console is what the test judges (errnos
//! only, never a splat): this tool never fails on an answer.
//!
//! Whatever the kernel does with a request, it cannot corrupt this process:
//! every buffer it may write (the argument, LIST's array, ACCEPT's ranges and
//! blob) lies right before a PROT_NONE guard page, with room for all the
//! kernel may write, and every random word that could be a user address is
//! made non-canonical first.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use labtools::{touched_pages, PAGE};
use portalctl::pagetypeinfo::PageTypeInfo;
use portalctl::uapi::{
    self, ioc_dir, ioc_nr, ioc_size, ioc_type, raw_ioctl, Accept, Device, Export, HandoffEntry,
    List, Map, Pull, Range, Ref, Version,
};

const HELP: &str = "\
cxlsw-ioctl-fuzz: fixed and random requests to /dev/cxl_switched (as root)

usage: cxlsw-ioctl-fuzz [--device PATH] [--seed N] [--iterations N]

  --device PATH     the device (default /dev/cxl_switched)
  --seed N          the generator's seed, decimal or 0x hex (default 1);
                    a run is the same for the same seed
  --iterations N    random rounds after the fixed cases (default 2000)
  -h, --help        this text

Sends every request number of the interface (and each with a wrong size or
direction, unknown numbers beside them, a wrong magic): all-zero structs,
random bytes, wrong size fields, boundary values of every field, NULL and
unmapped pointers; then the random rounds; then the same numbers on
/dev/null. An EXPORT that succeeds is cancelled at once; ACCEPT, MAP, PULL
and RELEASE name handoffs that do not exist (EINVAL, ENODEV). Prints one line per
request, `ioctl NAME: N calls, errnos {EINVAL: a, ...}, successes K`, and
`fuzz: done, N calls`.

Exit status: 0 every case ran (the kernel log tells a pass: errnos only, no
WARN, Oops or KASAN report); 1 the device cannot be opened or memory cannot
be mapped; 2 usage error.";

/// The default seed.
const SEED: u64 = 1;
/// The default random rounds.
const ITERATIONS: u64 = 2000;

/// Addresses no user mapping has: the kernel's half, and non-canonical.
const KERNEL_ADDR: u64 = 0xffff_8880_0000_0000;
const NONCANONICAL: u64 = 0x8000_0000_0000_0000;
/// Below `mmap_min_addr`: nothing is mapped there.
const LOW_ADDR: u64 = 0x10;

struct Options {
    device: PathBuf,
    seed: u64,
    iterations: u64,
}

fn parse_u64(what: &str, v: &str) -> Result<u64, String> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    }
    .map_err(|e| format!("{what} '{v}': {e}"))
}

/// The options, or `None` for --help.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut o = Options {
        device: PathBuf::from(uapi::DEVICE),
        seed: SEED,
        iterations: ITERATIONS,
    };
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("{what} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--device" => o.device = PathBuf::from(value("--device")?),
            "--seed" => o.seed = parse_u64("--seed", &value("--seed")?)?,
            "--iterations" => o.iterations = parse_u64("--iterations", &value("--iterations")?)?,
            _ => return Err(format!("unknown argument '{a}'")),
        }
    }
    Ok(Some(o))
}

/// xorshift64*, seeded through splitmix64 (so that every seed, 0 too, gives
/// a good, distinct state).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn next_u32(&mut self) -> u32 {
        u32::try_from(self.next() >> 32).unwrap_or(u32::MAX)
    }

    /// A number below `n` (0 for 0).
    fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        usize::try_from(self.next() % n64).unwrap_or(0)
    }

    fn pick<T: Copy, const N: usize>(&mut self, v: &[T; N]) -> T {
        const { assert!(N > 0) };
        v[self.below(N).min(N - 1)]
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.next() % one_in.max(1) == 0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
}

/// Pages followed by a PROT_NONE guard page, never unmapped: the kernel
/// faults (EFAULT) past their end instead of writing into anything else.
struct Guarded {
    mem: &'static mut [u8],
}

impl Guarded {
    fn new(pages: usize) -> Result<Self, String> {
        let len = pages
            .checked_mul(PAGE)
            .ok_or_else(|| format!("{pages} pages do not fit"))?;
        let total = len
            .checked_add(PAGE)
            .ok_or_else(|| format!("{pages} pages do not fit"))?;
        // SAFETY: a fresh private anonymous mapping, inaccessible; the result is checked.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the first `len` bytes of the mapping just made; the last page stays
        // PROT_NONE.
        if unsafe { libc::mprotect(addr, len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            return Err(format!("mprotect: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `len` bytes readable and writable, this process's alone and never
        // unmapped; the slice does not cover the guard page.
        let mem = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), len) };
        Ok(Guarded { mem })
    }

    fn addr(&self) -> u64 {
        user_addr(self.mem.as_ptr())
    }

    /// The first byte of the guard page: mapped, but not accessible.
    fn guard(&self) -> u64 {
        self.end_minus(0)
    }

    /// The address `n` bytes before the guard page (its start if `n` is larger).
    fn end_minus(&self, n: usize) -> u64 {
        let at = self.mem.len().saturating_sub(n);
        self.addr().saturating_add(u64::try_from(at).unwrap_or(0))
    }

    /// The offset of the last `n` bytes (0 if `n` is larger).
    fn tail(&self, n: usize) -> usize {
        self.mem.len().saturating_sub(n)
    }
}

/// An address as a `__u64` user pointer.
fn user_addr<T>(p: *const T) -> u64 {
    u64::try_from(p.addr()).unwrap_or(NONCANONICAL)
}

/// Makes every aligned word of `buf` that could be an address in this
/// process (a canonical user address above `mmap_min_addr`) non-canonical,
/// so that random bytes never point the kernel at memory of ours.
fn defuse(buf: &mut [u8]) {
    for w in buf.chunks_exact_mut(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let v = u64::from_ne_bytes(b);
        if (0x1_0000..1 << 47).contains(&v) {
            w.copy_from_slice(&(v | NONCANONICAL).to_ne_bytes());
        }
    }
}

/// The name of an errno.
fn errno_name(e: i32) -> String {
    const NAMES: &[(i32, &str)] = &[
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::ESRCH, "ESRCH"),
        (libc::EINTR, "EINTR"),
        (libc::EIO, "EIO"),
        (libc::ENXIO, "ENXIO"),
        (libc::E2BIG, "E2BIG"),
        (libc::EBADF, "EBADF"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ENOMEM, "ENOMEM"),
        (libc::EACCES, "EACCES"),
        (libc::EFAULT, "EFAULT"),
        (libc::EBUSY, "EBUSY"),
        (libc::EEXIST, "EEXIST"),
        (libc::ENODEV, "ENODEV"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENOTTY, "ENOTTY"),
        (libc::EFBIG, "EFBIG"),
        (libc::ENOSPC, "ENOSPC"),
        (libc::ERANGE, "ERANGE"),
        (libc::EDEADLK, "EDEADLK"),
        (libc::ENOSYS, "ENOSYS"),
        (libc::ENODATA, "ENODATA"),
        (libc::ETIME, "ETIME"),
        (libc::EOVERFLOW, "EOVERFLOW"),
        (libc::EBADMSG, "EBADMSG"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::ETIMEDOUT, "ETIMEDOUT"),
        (libc::ESTALE, "ESTALE"),
        (libc::ECANCELED, "ECANCELED"),
        (libc::EPROTO, "EPROTO"),
        // The kernel's own, which must never reach userspace.
        (512, "ERESTARTSYS"),
        (513, "ERESTARTNOINTR"),
        (514, "ERESTARTNOHAND"),
        (515, "ENOIOCTLCMD"),
        (516, "ERESTART_RESTARTBLOCK"),
        (524, "ENOTSUPP"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == e)
        .map_or_else(|| format!("errno {e}"), |(_, s)| (*s).to_owned())
}

/// The answers to one kind of request.
#[derive(Default)]
struct Stats {
    calls: u64,
    successes: u64,
    errnos: BTreeMap<i32, u64>,
}

/// The tally, in the order the kinds were first sent.
#[derive(Default)]
struct Tally(Vec<(String, Stats)>);

impl Tally {
    fn add(&mut self, name: &str, r: Result<i32, i32>) {
        let i = match self.0.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.0.push((name.to_owned(), Stats::default()));
                self.0.len() - 1
            }
        };
        if let Some((_, s)) = self.0.get_mut(i) {
            s.calls += 1;
            match r {
                Ok(_) => s.successes += 1,
                Err(e) => *s.errnos.entry(e).or_default() += 1,
            }
        }
    }

    fn calls(&self) -> u64 {
        self.0.iter().map(|(_, s)| s.calls).sum()
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(name, s)| {
                let e: Vec<String> = s
                    .errnos
                    .iter()
                    .map(|(e, n)| format!("{}: {n}", errno_name(*e)))
                    .collect();
                format!(
                    "ioctl {name}: {} calls, errnos {{{}}}, successes {}",
                    s.calls,
                    e.join(", "),
                    s.successes
                )
            })
            .collect()
    }
}

/// A request number and the kind it is tallied under.
#[derive(Clone)]
struct Cmd {
    name: String,
    cmd: u32,
}

/// The interface's requests: name, number, struct size.
const REAL: [(&str, u32, u32); 8] = [
    ("VERSION", uapi::IOC_VERSION, Version::SIZE),
    ("LIST", uapi::IOC_LIST, List::SIZE),
    ("EXPORT", uapi::IOC_EXPORT, Export::SIZE),
    ("CANCEL", uapi::IOC_CANCEL, Ref::SIZE),
    ("ACCEPT", uapi::IOC_ACCEPT, Accept::SIZE),
    ("MAP", uapi::IOC_MAP, Map::SIZE),
    ("PULL", uapi::IOC_PULL, Pull::SIZE),
    ("RELEASE", uapi::IOC_RELEASE, Ref::SIZE),
];

/// `cmd` with another `_IOC_SIZE`.
fn with_size(cmd: u32, size: u32) -> u32 {
    (cmd & !(0x3fff << 16)) | ((size & 0x3fff) << 16)
}

/// `cmd` with another `_IOC_DIR`.
fn with_dir(cmd: u32, dir: u32) -> u32 {
    (cmd & 0x3fff_ffff) | ((dir & 3) << 30)
}

/// `cmd` with another `_IOC_TYPE`.
fn with_type(cmd: u32, ty: u32) -> u32 {
    (cmd & !0xff00) | ((ty & 0xff) << 8)
}

/// Every number the fuzzer sends: the real ones, each with wrong sizes and
/// directions, unknown numbers of the magic, and a wrong magic.
fn commands() -> Vec<Cmd> {
    let mut out = Vec::new();
    for (name, cmd, _) in REAL {
        out.push(Cmd {
            name: name.into(),
            cmd,
        });
    }
    for (name, cmd, size) in REAL {
        for s in [0, size - 1, size - 8, size + 8, 0x3fff] {
            out.push(Cmd {
                name: format!("{name}:badsize"),
                cmd: with_size(cmd, s),
            });
        }
    }
    for (name, cmd, _) in REAL {
        for d in (0..4).filter(|d| *d != ioc_dir(cmd)) {
            out.push(Cmd {
                name: format!("{name}:baddir"),
                cmd: with_dir(cmd, d),
            });
        }
    }
    for nr in [0x00, 0x01, 0x3f, 0x48, 0x49, 0x4a, 0x4b, 0x4f, 0x80, 0xff] {
        out.push(Cmd {
            name: "unknown".into(),
            cmd: uapi::ioc(uapi::IOC_READ | uapi::IOC_WRITE, uapi::MAGIC, nr, Ref::SIZE),
        });
    }
    out.push(Cmd {
        name: "unknown".into(),
        cmd: uapi::ioc(uapi::IOC_NONE, uapi::MAGIC, 0x48, 0),
    });
    for (name, cmd, _) in REAL {
        for ty in [0xCD, 0xCF] {
            out.push(Cmd {
                name: format!("{name}:badmagic"),
                cmd: with_type(cmd, ty),
            });
        }
    }
    out
}

/// The struct size a number's `size` field is right at: the real request's
/// for its number, else `_IOC_SIZE`.
fn size_for(cmd: u32) -> u32 {
    REAL.iter()
        .find(|(_, c, _)| ioc_nr(*c) == ioc_nr(cmd))
        .map_or(ioc_size(cmd).max(4), |(_, _, s)| *s)
}

/// The largest struct, and the bytes a case fills: a struct with 8 bytes
/// past it, and more for random requests of unknown numbers.
const CASE_BYTES: usize = 256;

/// A request's bytes.
struct Case {
    bytes: [u8; CASE_BYTES],
}

impl Case {
    fn zero() -> Self {
        Case {
            bytes: [0; CASE_BYTES],
        }
    }

    fn of(s: &[u8]) -> Self {
        let mut c = Case::zero();
        let n = s.len().min(CASE_BYTES);
        c.bytes[..n].copy_from_slice(&s[..n]);
        c
    }

    fn with_size(mut self, size: u32) -> Self {
        self.bytes[..4].copy_from_slice(&size.to_ne_bytes());
        self
    }
}

struct Fuzz<'a> {
    dev: &'a Device,
    rng: Rng,
    tally: Tally,
    /// The argument page.
    arg: Guarded,
    /// LIST's array: room for `MAX_LIST + 1` entries.
    list: Guarded,
    /// EXPORT's range arrays.
    ranges: Guarded,
    /// EXPORT's blob, and ACCEPT's: `MAX_BLOB + 1` bytes and more.
    blob: Guarded,
    /// ACCEPT's range arrays: room for `MAX_ACCEPT_RANGES + 1` ranges.
    accepted: Guarded,
    /// Pages of this process, present (anonymous memory, not on a portal).
    heap: u64,
    /// A page-aligned address in this process's malloc heap, 4 pages present.
    malloc: u64,
    /// This process.
    me: i32,
    /// The portal nodes /proc/pagetypeinfo shows (maybe none).
    nids: Vec<i32>,
    /// Exports that succeeded.
    exported: u64,
    /// Exports that succeeded and could not be cancelled.
    stuck: u64,
}

impl Fuzz<'_> {
    /// Sends `cmd` to the device with the argument `p`.
    ///
    /// # Safety
    ///
    /// `p` is NULL, not mapped, PROT_NONE, or in `self.arg`.
    unsafe fn send_ptr(&mut self, name: &str, cmd: u32, p: *mut libc::c_void) -> Result<i32, i32> {
        // SAFETY: by the caller's contract `p` is nothing the kernel can write, or in
        // `self.arg`, which the guard page ends: it can write nothing of this process's
        // but that page. Every pointer inside the argument is unmapped, non-canonical,
        // the kernel's, or into a guarded buffer of this process's with room for all
        // the request may write there (see `defuse` and the cases).
        let r = unsafe { raw_ioctl(self.dev.as_fd(), cmd, p) };
        self.tally.add(name, r);
        r
    }

    /// Sends `cmd` with an argument pointer that is nothing of this
    /// process's: NULL, below `mmap_min_addr`, the kernel's, non-canonical, or
    /// a guard page of [`Guarded`].
    fn send_addr(&mut self, name: &str, cmd: u32, addr: u64) {
        let guards = [
            self.arg.guard(),
            self.list.guard(),
            self.ranges.guard(),
            self.blob.guard(),
            self.accepted.guard(),
        ];
        if (0x1_0000..1 << 47).contains(&addr) && !guards.contains(&addr) {
            eprintln!("cxlsw-ioctl-fuzz: not sending {addr:#x}: it may be mapped");
            return;
        }
        let p =
            usize::try_from(addr).map_or(std::ptr::null_mut(), std::ptr::without_provenance_mut);
        // SAFETY: `p` is not mapped, or PROT_NONE (checked just above).
        let _ = unsafe { self.send_ptr(name, cmd, p) };
    }

    /// Sends `cmd` with `case` placed `back` bytes before the argument
    /// page's guard (so that whatever the kernel reads or writes past
    /// `back` faults); cancels an export that succeeded.
    fn send_back(&mut self, name: &str, cmd: u32, case: &Case, back: usize) {
        self.arg.mem.fill(0);
        let at = self.arg.tail(back);
        let n = (self.arg.mem.len() - at).min(CASE_BYTES);
        self.arg.mem[at..at + n].copy_from_slice(&case.bytes[..n]);
        let p = self.arg.mem[at..].as_mut_ptr().cast();
        // SAFETY: `p` is in `self.arg`.
        let r = unsafe { self.send_ptr(name, cmd, p) };
        if r.is_ok() && ioc_type(cmd) == uapi::MAGIC && ioc_nr(cmd) == ioc_nr(uapi::IOC_EXPORT) {
            self.undo_export(case, at);
        }
    }

    /// Sends `cmd` with `case` at the start of the argument page.
    fn send(&mut self, name: &str, cmd: u32, case: &Case) {
        self.send_back(name, cmd, case, self.arg.mem.len());
    }

    /// Cancels the handoff of an EXPORT that succeeded, by the index and id
    /// written back at `at` of the argument page.
    fn undo_export(&mut self, case: &Case, at: usize) {
        self.exported += 1;
        let sent = Export::read_from(&case.bytes);
        let got = self.arg.mem.get(at..).and_then(Export::read_from);
        let (Some(sent), Some(got)) = (sent, got) else {
            self.stuck += 1;
            return;
        };
        let r = self.dev.cancel(sent.nid, got.index, got.id);
        self.tally.add(
            "CANCEL",
            r.as_ref().map(|()| 0).map_err(|e| e.errno().unwrap_or(-1)),
        );
        if let Err(e) = r {
            self.stuck += 1;
            eprintln!(
                "cxlsw-ioctl-fuzz: an EXPORT succeeded (node {} handoff {} id {:#x}, {} pages) \
                 and could not be cancelled: {e}",
                sent.nid, got.index, got.id, got.pages
            );
        }
    }

    /// A case of random bytes, its `size` field right one time in two.
    fn random_case(&mut self, size: u32) -> Case {
        let mut c = Case::zero();
        self.rng.fill(&mut c.bytes);
        defuse(&mut c.bytes);
        if self.rng.chance(2) {
            c = c.with_size(size);
        }
        c
    }

    /// What every number gets.
    fn generic(&mut self, c: &Cmd) {
        let size = size_for(c.cmd);
        let s = usize::try_from(size)
            .unwrap_or(CASE_BYTES)
            .min(CASE_BYTES - 8);
        self.send(&c.name, c.cmd, &Case::zero());
        self.send(&c.name, c.cmd, &Case::zero().with_size(size));
        for wrong in [1, size - 1, size + 8, u32::MAX] {
            self.send(&c.name, c.cmd, &Case::zero().with_size(wrong));
        }
        // A larger size with what follows the struct zero, then not.
        let mut tail = Case::zero().with_size(size + 8);
        self.send(&c.name, c.cmd, &tail);
        tail.bytes[s..s + 8].fill(0xa5);
        self.send(&c.name, c.cmd, &tail);
        // Everything after `size` all ones: flags, reserved, counts, pointers.
        let mut ones = Case::zero().with_size(size);
        ones.bytes[4..s].fill(0xff);
        self.send(&c.name, c.cmd, &ones);
        for _ in 0..4 {
            let r = self.random_case(size);
            self.send(&c.name, c.cmd, &r);
        }
        // The struct running into the guard page: its first 8 bytes readable.
        self.send_back(&c.name, c.cmd, &Case::zero().with_size(size), 8);
        for addr in [
            0,
            LOW_ADDR,
            self.arg.guard(),
            KERNEL_ADDR,
            NONCANONICAL,
            u64::MAX,
        ] {
            self.send_addr(&c.name, c.cmd, addr);
        }
    }

    fn version_cases(&mut self) {
        for (version, portals, reserved) in
            [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, u32::MAX)]
        {
            let v = Version {
                size: Version::SIZE,
                version,
                portals,
                reserved,
            };
            self.send("VERSION", uapi::IOC_VERSION, &Case::of(v.as_bytes()));
        }
    }

    /// LIST's array for `count` entries, ending at the guard page.
    fn list_array(&self, count: u32) -> u64 {
        let entry = std::mem::size_of::<HandoffEntry>();
        self.list
            .end_minus(usize::try_from(count).map_or(usize::MAX, |c| c.saturating_mul(entry)))
    }

    fn list_cases(&mut self) {
        for count in [0, 1, 2, 4096, 4097, u32::MAX] {
            for handoffs in [
                0,
                LOW_ADDR,
                self.list.guard(),
                KERNEL_ADDR,
                self.list_array(count),
            ] {
                let l = List {
                    size: List::SIZE,
                    count,
                    handoffs,
                };
                self.send("LIST", uapi::IOC_LIST, &Case::of(l.as_bytes()));
            }
        }
    }

    /// Writes `ranges` so that they end at the ranges page's guard; returns
    /// their address.
    fn put_ranges(&mut self, ranges: &[Range]) -> u64 {
        let bytes: Vec<u8> = ranges.iter().flat_map(|r| r.as_bytes().to_vec()).collect();
        let at = self.ranges.tail(bytes.len());
        let n = bytes.len().min(self.ranges.mem.len() - at);
        self.ranges.mem[at..at + n].copy_from_slice(&bytes[..n]);
        self.ranges.end_minus(n)
    }

    /// Bad range arrays of every kind, and good ones over this process's
    /// memory (which is not on a portal node).
    fn range_arrays(&self) -> Vec<(&'static str, Vec<Range>)> {
        let (h, p) = (self.heap, u64::try_from(PAGE).unwrap_or(4096));
        let r = |start: u64, len: u64| Range { start, len };
        vec![
            ("own heap", vec![r(h, p)]),
            ("malloc heap", vec![r(self.malloc, 4 * p)]),
            ("own heap, 16 pages", vec![r(h, 16 * p)]),
            (
                "own heap, 16 ranges",
                (0..16).map(|i| r(h + i * p, p)).collect(),
            ),
            ("unaligned start", vec![r(h + 1, p)]),
            ("unaligned length", vec![r(h, p - 1)]),
            ("zero length", vec![r(h, 0)]),
            ("overlapping", vec![r(h, 2 * p), r(h + p, 2 * p)]),
            ("the same twice", vec![r(h, p), r(h, p)]),
            ("descending", vec![r(h + 2 * p, p), r(h, p)]),
            ("wrapping", vec![r(u64::MAX - p + 1, 2 * p)]),
            ("ending at 2^64", vec![r(u64::MAX - p + 1, p)]),
            ("huge", vec![r(h, 1 << 40)]),
            ("kernel addresses", vec![r(KERNEL_ADDR, p)]),
            ("a PROT_NONE page", vec![r(self.arg.guard(), p)]),
            ("unmapped", vec![r(0x1_0000, p)]),
            ("64 pages", (0..64).map(|i| r(h + i * p, p)).collect()),
            ("65 pages", (0..65).map(|i| r(h + i * p, p)).collect()),
        ]
    }

    fn export_base(&self) -> Export {
        Export {
            size: Export::SIZE,
            pid: self.me,
            nid: self.nids.first().copied().unwrap_or(0),
            target: 1,
            nr_ranges: 1,
            ..Export::default()
        }
    }

    fn export(&mut self, e: &Export) {
        self.send("EXPORT", uapi::IOC_EXPORT, &Case::of(e.as_bytes()));
    }

    fn export_cases(&mut self) {
        let one = self.put_ranges(&[Range {
            start: self.heap,
            len: u64::try_from(PAGE).unwrap_or(4096),
        }]);
        let base = Export {
            ranges: one,
            ..self.export_base()
        };
        let me = self.me;
        let nids: Vec<i32> = [-1, 0, 1, 1023, 1024, i32::MAX, i32::MIN]
            .into_iter()
            .chain(self.nids.iter().copied())
            .collect();
        for pid in [0, -1, 1, me, i32::MAX, i32::MIN] {
            for &nid in &nids {
                self.export(&Export { pid, nid, ..base });
            }
        }
        for flags in [1, 0x8000_0000, u32::MAX] {
            self.export(&Export { flags, ..base });
        }
        for reserved in [1, u32::MAX] {
            self.export(&Export { reserved, ..base });
            self.export(&Export {
                reserved2: reserved,
                ..base
            });
        }
        self.export(&Export { id: 1, ..base });
        self.export(&Export { index: 1, ..base });
        self.export(&Export { pages: 1, ..base });
        for target in [0, 1, 15, 16, 63, 64, 255, u32::MAX] {
            self.export(&Export { target, ..base });
        }
        // Counts, with a valid array of 65 ranges where they point.
        let r = self.range_arrays();
        let many = r
            .iter()
            .find(|(n, _)| *n == "65 pages")
            .map(|(_, v)| v.clone());
        let many = self.put_ranges(&many.unwrap_or_default());
        for nr_ranges in [0, 1, 2, 64, 65, 4096, u32::MAX] {
            self.export(&Export {
                nr_ranges,
                ranges: many,
                ..base
            });
        }
        // Blobs: pointing so that they end at the guard page, NULL, unmapped.
        for blob_len in [0, 1, 4096, uapi::MAX_BLOB, uapi::MAX_BLOB + 1, u32::MAX] {
            let end = self
                .blob
                .end_minus(usize::try_from(blob_len).unwrap_or(usize::MAX));
            for blob in [end, 0, self.blob.guard(), KERNEL_ADDR] {
                self.export(&Export {
                    blob_len,
                    blob,
                    ranges: one,
                    ..base
                });
            }
        }
        // The ranges pointer: NULL, unmapped, the kernel's, running into the guard.
        let straddle = self.ranges.end_minus(8);
        for (ranges, nr_ranges) in [
            (0, 1),
            (0, 0),
            (self.ranges.guard(), 1),
            (KERNEL_ADDR, 1),
            (straddle, 1),
            (LOW_ADDR, 64),
        ] {
            self.export(&Export {
                ranges,
                nr_ranges,
                ..base
            });
        }
        // Each range array, of this process and of init, on each node.
        for (_, array) in &r {
            let ranges = self.put_ranges(array);
            let nr_ranges = u32::try_from(array.len()).unwrap_or(u32::MAX);
            for pid in [me, 1] {
                for nid in [0].into_iter().chain(self.nids.clone()) {
                    self.export(&Export {
                        pid,
                        nid,
                        ranges,
                        nr_ranges,
                        ..base
                    });
                }
            }
        }
    }

    /// The nodes a handoff is named on: bad ones, and the portals'.
    fn ref_nids(&self) -> Vec<i32> {
        [-1, 0, 1, 1023, i32::MAX]
            .into_iter()
            .chain(self.nids.iter().copied())
            .collect()
    }

    /// Handoffs that do not exist, by node, index and id.
    fn no_handoffs(&mut self) -> Vec<(i32, u32, u64)> {
        let mut out = Vec::new();
        for nid in self.ref_nids() {
            for index in [0, 1, 63, 64, u32::MAX] {
                for id in [0, 1, u64::MAX, self.rng.next()] {
                    out.push((nid, index, id));
                }
            }
        }
        out
    }

    /// A request that takes a [`Ref`] (CANCEL, RELEASE): every handoff of
    /// [`Fuzz::no_handoffs`], and reserved fields set.
    fn ref_cases(&mut self, name: &str, cmd: u32) {
        for (nid, index, id) in self.no_handoffs() {
            self.send(name, cmd, &Case::of(Ref::new(nid, index, id).as_bytes()));
        }
        for nid in self.ref_nids() {
            for reserved in [1, u32::MAX] {
                let r = Ref {
                    reserved,
                    ..Ref::new(nid, 0, 1)
                };
                self.send(name, cmd, &Case::of(r.as_bytes()));
            }
        }
    }

    fn accept(&mut self, a: &Accept) {
        self.send("ACCEPT", uapi::IOC_ACCEPT, &Case::of(a.as_bytes()));
    }

    /// ACCEPT's range array for room `nr`, ending at the guard page.
    fn accept_array(&self, nr: u32) -> u64 {
        let range = std::mem::size_of::<Range>();
        self.accepted
            .end_minus(usize::try_from(nr).map_or(usize::MAX, |n| n.saturating_mul(range)))
    }

    /// ACCEPT's blob for room `len`, ending at the guard page.
    fn accept_blob(&self, len: u32) -> u64 {
        self.blob
            .end_minus(usize::try_from(len).unwrap_or(usize::MAX))
    }

    fn accept_cases(&mut self) {
        let base = Accept {
            size: Accept::SIZE,
            nr_ranges: 1,
            ranges: self.accept_array(1),
            blob_len: 1,
            blob: self.accept_blob(1),
            ..Accept::default()
        };
        for (nid, index, id) in self.no_handoffs() {
            self.accept(&Accept {
                nid,
                index,
                id,
                ..base
            });
        }
        let nid = self.nids.first().copied().unwrap_or(0);
        let base = Accept { nid, ..base };
        for reserved in [1, u32::MAX] {
            self.accept(&Accept { reserved, ..base });
        }
        for pages in [1, u64::MAX] {
            self.accept(&Accept { pages, ..base });
        }
        // Room for ranges: where it fits, NULL, unmapped, the kernel's, into the guard.
        let max = uapi::MAX_ACCEPT_RANGES;
        for nr_ranges in [0, 1, 64, 65, max, max + 1, u32::MAX] {
            for ranges in [
                self.accept_array(nr_ranges),
                0,
                LOW_ADDR,
                self.accepted.guard(),
                KERNEL_ADDR,
                NONCANONICAL,
            ] {
                self.accept(&Accept {
                    nr_ranges,
                    ranges,
                    ..base
                });
            }
        }
        // Room for the blob, the same way.
        let max = uapi::MAX_ACCEPT_BLOB;
        for blob_len in [0, 1, 4096, max, max + 1, u32::MAX] {
            for blob in [
                self.accept_blob(blob_len),
                0,
                self.blob.guard(),
                KERNEL_ADDR,
            ] {
                self.accept(&Accept {
                    blob_len,
                    blob,
                    ..base
                });
            }
        }
    }

    fn map(&mut self, m: &Map) {
        self.send("MAP", uapi::IOC_MAP, &Case::of(m.as_bytes()));
    }

    fn map_cases(&mut self) {
        // The fuzzer's own pid: a process a MAP may name; the handoffs do not exist.
        let me = i32::try_from(std::process::id()).unwrap_or(1);
        let base = Map {
            size: Map::SIZE,
            pid: me,
            ..Map::default()
        };
        for pid in [0, -1, i32::MAX, i32::MIN] {
            self.map(&Map { pid, ..base });
        }
        for (nid, index, id) in self.no_handoffs() {
            self.map(&Map {
                nid,
                index,
                id,
                ..base
            });
        }
        let nid = self.nids.first().copied().unwrap_or(0);
        for flags in [1, 0x8000_0000, u32::MAX] {
            self.map(&Map { nid, flags, ..base });
        }
        for pages in [1, u64::MAX] {
            self.map(&Map { nid, pages, ..base });
        }
        self.map(&Map {
            nid,
            reserved: 1,
            ..base
        });
    }

    fn pull(&mut self, p: &Pull) {
        self.send("PULL", uapi::IOC_PULL, &Case::of(p.as_bytes()));
    }

    fn pull_cases(&mut self) {
        let base = Pull {
            size: Pull::SIZE,
            max_pages: 1,
            ..Pull::default()
        };
        for (nid, index, id) in self.no_handoffs() {
            self.pull(&Pull {
                nid,
                index,
                id,
                ..base
            });
        }
        let nid = self.nids.first().copied().unwrap_or(0);
        let base = Pull { nid, ..base };
        // The node the pages go to: bad ones, this host's first, a portal.
        let nodes: Vec<i32> = [-1, 0, 1, 1023, 1024, i32::MAX, i32::MIN]
            .into_iter()
            .chain(self.nids.iter().copied())
            .collect();
        let max = uapi::MAX_PULL;
        for node in nodes {
            for max_pages in [0, 1, 4096, max, max + 1, u32::MAX] {
                self.pull(&Pull {
                    node,
                    max_pages,
                    ..base
                });
            }
        }
        for reserved in [1, u32::MAX] {
            self.pull(&Pull { reserved, ..base });
        }
        for out in [1, u64::MAX] {
            self.pull(&Pull {
                pulled: out,
                ..base
            });
            self.pull(&Pull { left: out, ..base });
        }
    }

    /// A node for a random request: mostly a portal's, if there is one.
    fn random_nid(&mut self) -> i32 {
        self.rng
            .pick(&[0, 1, -1, self.nids.first().copied().unwrap_or(0)])
    }

    /// One random round: a random number (mostly a real one), random bytes,
    /// and some fields set to a boundary or a valid value.
    fn random_round(&mut self, all: &[Cmd]) {
        let c = if self.rng.chance(4) {
            all.get(self.rng.below(all.len())).cloned()
        } else {
            let (name, cmd, _) = self.rng.pick(&REAL);
            Some(Cmd {
                name: name.into(),
                cmd,
            })
        };
        let Some(c) = c else {
            return;
        };
        let size = size_for(c.cmd);
        let mut case = self.random_case(size);
        match ioc_nr(c.cmd) {
            0x41 if self.rng.chance(2) => {
                let any = self.rng.next_u32() % 4098;
                let count = self.rng.pick(&[0, 1, 4, 4096, 4097, any]);
                let l = List {
                    size,
                    count,
                    handoffs: self.list_array(count),
                };
                case = Case::of(l.as_bytes());
            }
            0x42 if self.rng.chance(2) => {
                let arrays = self.range_arrays();
                let array = arrays
                    .get(self.rng.below(arrays.len()))
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default();
                let ranges = self.put_ranges(&array);
                let mut e = Export::read_from(&case.bytes).unwrap_or_default();
                e.size = size;
                e.ranges = ranges;
                if self.rng.chance(2) {
                    e.nr_ranges = u32::try_from(array.len()).unwrap_or(u32::MAX);
                    e.flags = 0;
                    e.reserved = 0;
                    e.reserved2 = 0;
                    e.id = 0;
                    e.index = 0;
                }
                if self.rng.chance(2) {
                    e.pid = self.rng.pick(&[self.me, 1, 0, -1]);
                    e.nid = self.nids.first().copied().unwrap_or(0);
                }
                e.blob_len = self
                    .rng
                    .pick(&[0, 1, uapi::MAX_BLOB, uapi::MAX_BLOB + 1, e.blob_len]);
                e.blob = self
                    .blob
                    .end_minus(usize::try_from(e.blob_len).unwrap_or(usize::MAX));
                case = Case::of(e.as_bytes());
            }
            0x43 | 0x47 if self.rng.chance(2) => {
                let mut r = Ref::read_from(&case.bytes).unwrap_or_default();
                r.size = size;
                r.reserved = 0;
                r.nid = self.random_nid();
                r.index %= 128;
                case = Case::of(r.as_bytes());
            }
            0x44 if self.rng.chance(2) => {
                let mut a = Accept::read_from(&case.bytes).unwrap_or_default();
                a.size = size;
                if self.rng.chance(2) {
                    a.reserved = 0;
                    a.pages = 0;
                    a.nid = self.random_nid();
                    a.index %= 128;
                }
                let any = self.rng.next_u32() % (uapi::MAX_ACCEPT_RANGES + 2);
                a.nr_ranges = self.rng.pick(&[0, 1, 64, uapi::MAX_ACCEPT_RANGES, any]);
                a.ranges = self.accept_array(a.nr_ranges);
                let any = self.rng.next_u32() % (uapi::MAX_ACCEPT_BLOB + 2);
                a.blob_len = self.rng.pick(&[0, 1, uapi::MAX_ACCEPT_BLOB, any]);
                a.blob = self.accept_blob(a.blob_len);
                case = Case::of(a.as_bytes());
            }
            0x45 if self.rng.chance(2) => {
                let mut m = Map::read_from(&case.bytes).unwrap_or_default();
                m.size = size;
                m.flags = 0;
                m.pages = 0;
                m.nid = self.random_nid();
                m.index %= 128;
                case = Case::of(m.as_bytes());
            }
            0x46 if self.rng.chance(2) => {
                let mut p = Pull::read_from(&case.bytes).unwrap_or_default();
                p.size = size;
                p.reserved = 0;
                p.pulled = 0;
                p.left = 0;
                p.nid = self.random_nid();
                p.index %= 128;
                p.node = self.rng.pick(&[0, 1, -1, p.node]);
                let any = self.rng.next_u32() % (uapi::MAX_PULL + 2);
                p.max_pages = self.rng.pick(&[0, 1, 4096, uapi::MAX_PULL, any]);
                case = Case::of(p.as_bytes());
            }
            _ => {}
        }
        self.send(&c.name, c.cmd, &case);
    }
}

/// The portal nodes of this host, from /proc/pagetypeinfo (none if it
/// cannot be read).
fn portal_nodes() -> Vec<i32> {
    std::fs::read_to_string("/proc/pagetypeinfo")
        .ok()
        .and_then(|t| PageTypeInfo::parse(&t).ok())
        .map(|p| {
            p.switched_nodes()
                .into_iter()
                .filter_map(|n| i32::try_from(n).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The same numbers on a file that is not the device.
fn wrong_fd(tally: &mut Tally, cmds: &[Cmd], arg: &mut Guarded) {
    let null = match File::options().read(true).write(true).open("/dev/null") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cxlsw-ioctl-fuzz: /dev/null: {e}: no wrong-fd cases");
            return;
        }
    };
    let fd: BorrowedFd<'_> = null.as_fd();
    for c in cmds {
        arg.mem.fill(0);
        arg.mem[..4].copy_from_slice(&size_for(c.cmd).to_ne_bytes());
        for p in [
            arg.mem.as_mut_ptr().cast::<libc::c_void>(),
            std::ptr::null_mut(),
        ] {
            // SAFETY: `p` is NULL or the argument page, which the guard page ends;
            // /dev/null implements no ioctl.
            let r = unsafe { raw_ioctl(fd, c.cmd, p) };
            tally.add("/dev/null", r);
        }
    }
}

fn run(o: &Options) -> Result<(), String> {
    let dev = Device::open(&o.device).map_err(|e| e.to_string())?;
    let heap = touched_pages(65)?;
    let malloced = vec![0x3cu8; 8 * PAGE];
    let mut f = Fuzz {
        dev: &dev,
        rng: Rng::new(o.seed),
        tally: Tally::default(),
        arg: Guarded::new(1)?,
        list: Guarded::new(
            (usize::try_from(uapi::MAX_LIST + 1).unwrap_or(4097)
                * std::mem::size_of::<HandoffEntry>())
            .div_ceil(PAGE),
        )?,
        ranges: Guarded::new(1)?,
        blob: Guarded::new(
            usize::try_from(uapi::MAX_BLOB.max(uapi::MAX_ACCEPT_BLOB)).unwrap_or(65536) / PAGE + 1,
        )?,
        accepted: Guarded::new(
            (usize::try_from(uapi::MAX_ACCEPT_RANGES + 1).unwrap_or(65537)
                * std::mem::size_of::<Range>())
            .div_ceil(PAGE),
        )?,
        heap: user_addr(heap.as_ptr()),
        malloc: user_addr(malloced.as_ptr()).next_multiple_of(u64::try_from(PAGE).unwrap_or(4096)),
        me: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        nids: portal_nodes(),
        exported: 0,
        stuck: 0,
    };
    f.blob.mem.fill(0x5a);
    let cmds = commands();
    for c in &cmds {
        f.generic(c);
    }
    f.version_cases();
    f.list_cases();
    f.export_cases();
    f.ref_cases("CANCEL", uapi::IOC_CANCEL);
    f.accept_cases();
    f.map_cases();
    f.pull_cases();
    f.ref_cases("RELEASE", uapi::IOC_RELEASE);
    for _ in 0..o.iterations {
        f.random_round(&cmds);
    }
    wrong_fd(&mut f.tally, &cmds, &mut f.arg);
    for line in f.tally.lines() {
        println!("{line}");
    }
    if f.exported != 0 {
        println!(
            "fuzz: {} exports succeeded, {} of them cancelled",
            f.exported,
            f.exported - f.stuck
        );
    }
    println!("fuzz: done, {} calls", f.tally.calls());
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse_args(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cxlsw-ioctl-fuzz: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cxlsw-ioctl-fuzz: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_seeds_differ() {
        let a: Vec<u64> = (0..4).scan(Rng::new(1), |r, _| Some(r.next())).collect();
        let b: Vec<u64> = (0..4).scan(Rng::new(1), |r, _| Some(r.next())).collect();
        let c: Vec<u64> = (0..4).scan(Rng::new(0), |r, _| Some(r.next())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(c.iter().all(|v| *v != 0));
    }

    #[test]
    fn numbers_keep_their_fields_but_the_one_changed() {
        let c = with_size(uapi::IOC_EXPORT, 0x3fff);
        assert_eq!(
            (ioc_dir(c), ioc_type(c), ioc_nr(c), ioc_size(c)),
            (3, 0xCE, 0x42, 0x3fff)
        );
        let c = with_dir(uapi::IOC_CANCEL, 2);
        assert_eq!(
            (ioc_dir(c), ioc_type(c), ioc_nr(c), ioc_size(c)),
            (2, 0xCE, 0x43, 24)
        );
        let c = with_type(uapi::IOC_LIST, 0xCF);
        assert_eq!(
            (ioc_dir(c), ioc_type(c), ioc_nr(c), ioc_size(c)),
            (3, 0xCF, 0x41, 16)
        );
        let all = commands();
        let real = [
            uapi::IOC_VERSION,
            uapi::IOC_LIST,
            uapi::IOC_EXPORT,
            uapi::IOC_CANCEL,
            uapi::IOC_ACCEPT,
            uapi::IOC_MAP,
            uapi::IOC_PULL,
            uapi::IOC_RELEASE,
        ];
        for c in &all {
            let is_real = real.contains(&c.cmd);
            assert_eq!(
                is_real,
                REAL.iter().any(|(n, _, _)| *n == c.name),
                "{}",
                c.name
            );
        }
        assert_eq!(size_for(with_size(uapi::IOC_EXPORT, 0)), 72);
        assert_eq!(size_for(with_dir(uapi::IOC_ACCEPT, 1)), 56);
        assert_eq!(size_for(uapi::IOC_MAP), 40);
        assert_eq!(size_for(with_size(uapi::IOC_PULL, 0x3fff)), 48);
        assert_eq!(size_for(uapi::IOC_RELEASE), 24);
        // Every real request is sent, with each wrong size and direction.
        for (name, cmd, _) in REAL {
            assert!(all.iter().any(|c| c.cmd == cmd && c.name == name), "{name}");
            let bad = |suffix: &str| {
                all.iter()
                    .filter(|c| c.name == format!("{name}:{suffix}"))
                    .count()
            };
            assert_eq!(
                (bad("badsize"), bad("baddir"), bad("badmagic")),
                (5, 3, 2),
                "{name}"
            );
        }
        // No "unknown" number is one of the interface's.
        for c in all.iter().filter(|c| c.name == "unknown") {
            assert!(!(0x40..=0x47).contains(&ioc_nr(c.cmd)), "{:#x}", c.cmd);
        }
    }

    #[test]
    fn random_words_never_point_into_this_process() {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&0x7f00_1234_5000u64.to_ne_bytes());
        b[8..16].copy_from_slice(&0x10u64.to_ne_bytes());
        b[16..24].copy_from_slice(&KERNEL_ADDR.to_ne_bytes());
        b[24..].copy_from_slice(&0x0000_0048_0000_0001u64.to_ne_bytes());
        defuse(&mut b);
        let w = |i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or_default());
        assert_eq!(w(0), 0x8000_7f00_1234_5000);
        assert_eq!(w(8), 0x10);
        assert_eq!(w(16), KERNEL_ADDR);
        assert_eq!(w(24), 0x8000_0048_0000_0001);
    }

    #[test]
    fn the_summary_names_errnos() {
        let mut t = Tally::default();
        t.add("EXPORT", Err(libc::EINVAL));
        t.add("EXPORT", Err(libc::EINVAL));
        t.add("EXPORT", Err(libc::EFAULT));
        t.add("EXPORT", Ok(0));
        t.add("LIST", Err(515));
        assert_eq!(
            t.lines(),
            [
                "ioctl EXPORT: 4 calls, errnos {EFAULT: 1, EINVAL: 2}, successes 1",
                "ioctl LIST: 1 calls, errnos {ENOIOCTLCMD: 1}, successes 0",
            ]
        );
        assert_eq!(t.calls(), 5);
        assert_eq!(errno_name(9999), "errno 9999");
    }

    #[test]
    fn arguments_parse() {
        let args = |v: &[&str]| parse_args(v.iter().map(|s| (*s).to_owned()));
        let o = args(&["--seed", "0x10", "--iterations", "5", "--device", "/tmp/x"])
            .ok()
            .flatten();
        assert_eq!(
            o.map(|o| (o.seed, o.iterations, o.device)),
            Some((16, 5, PathBuf::from("/tmp/x")))
        );
        assert!(matches!(args(&["--help"]), Ok(None)));
        assert!(args(&["--seed"]).is_err());
        assert!(args(&["--seed", "x"]).is_err());
        assert!(args(&["--frob"]).is_err());
    }
}
