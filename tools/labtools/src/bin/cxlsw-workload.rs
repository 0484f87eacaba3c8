// SPDX-License-Identifier: GPL-2.0
//! cxlsw-workload --mib N --steps S [--seed X] [--pause-after K] [--progress]
//! [--expect]: the lab's migration workload, a process whose whole state is N
//! MiB of private anonymous memory (see `labtools::workload`). It prints the
//! result of S steps; with --pause-after it stops after K steps for a
//! migration tool to take its memory, and with --expect it computes the
//! result a faithful run must print, in a plain vector.
//!
//! cxlsw-workload --import NODE:INDEX:ID --steps S [--progress]: the target's
//! side of a handoff of such a process's memory through /dev/cxl_switched. It
//! ACCEPTs handoff INDEX (id ID) on the portal of node NODE, maps the range
//! its manifest lists (private anonymous, untouched, MAP_FIXED_NOREPLACE),
//! has the kernel MAP the handoff's pages there, prints `imported <pages>
//! pages at 0x<hex addr> len <bytes> pid <pid>`, and goes on with the
//! workload in it, as a new runner, up to S steps; then it prints the result
//! and `done, waiting`, and waits for a line on stdin, so that a harness can
//! read /proc/PID/numa_maps (where `portalctl handoff pull` moved the pages)
//! before it exits. `--help` says more.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use labtools::workload::{self, mix64, Error, State};
use labtools::{anonymous_at, anonymous_pages, PAGE};
use portalctl::uapi::{self, Device, DeviceError, Range};

const HELP: &str = "\
cxlsw-workload: the lab's migration workload. It keeps all of its state in N
MiB of private anonymous memory, page 0 a state page and the rest data pages,
and computes on it in S steps: each reads three data pages into a running hash
and rewrites one of them from the hash, and the last step reads every page,
so a page lost, stale or duplicated on the way changes the result.

usage: cxlsw-workload --mib N --steps S [--seed X] [--pause-after K]
                      [--progress] [--expect]
       cxlsw-workload --import NODE:INDEX:ID --steps S [--progress]
       cxlsw-workload --help

  --mib N          size of the memory in MiB, 1..=65536
  --steps S        steps to run, at least 1; with --import, the steps total
                   the imported state page must say
  --import NODE:INDEX:ID
                   go on with the workload that handoff INDEX, id ID, on the
                   portal of NUMA node NODE brings to this host (below); not
                   with --mib, --seed, --pause-after or --expect
  --seed X         the seed the data pages are filled from, default 0
  --pause-after K  after K steps (0..=S), print the line
                     paused at K addr 0x<hex> len <bytes> pid <pid>
                   and wait for a line, or end of file, on stdin before going
                   on: a migration tool takes the memory meanwhile
  --progress       print \"progress <done>/<S>\" after each tenth of the steps
  --expect         compute in a plain heap vector instead of the mapping, and
                   print what a faithful run prints (not with --pause-after)
  -h, --help       print this help and exit

Numbers are decimal, or hexadecimal after 0x (NODE, INDEX and ID too). An
option's value is the next argument. The last two lines of output are
\"result <16 hex digits>\", the hash after the last step, and \"steps <S>\"
(with --import, \"done, waiting\" follows them).

At the start the process writes a runner token into the state page: the clock
mixed, in the high 32 bits, and its pid, in the low 32 bits. Before every step
it checks that the state page validates and still holds its token.

With --import (as root: it opens /dev/cxl_switched) the process takes over a
workload that another host's process ran: one paused with --pause-after whose
memory that host exported (portalctl handoff export --range ADDR:LEN of its
\"paused at\" line) to this one. It ACCEPTs the handoff, maps the range its
manifest lists (the ranges must make one contiguous range, the workload's
memory) at its address, private anonymous and untouched
(MAP_FIXED_NOREPLACE), has the kernel MAP the handoff's pages into it, and
prints the line
  imported <pages> pages at 0x<hex addr> len <bytes> pid <pid>
Then it validates the state page, checks that its steps total is S, claims it
with its own runner token, runs the steps left up to S (--progress prints the
tenths still ahead), prints the result lines and \"done, waiting\", and waits
for a line, or end of file, on stdin before it exits: meanwhile portalctl
handoff pull moves the pages off the portal, and a harness reads
/proc/<pid>/numa_maps.

Exit status:
  0  all steps done, result printed
  1  the memory could not be mapped or allocated, or stdout not written;
     with --import also: /dev/cxl_switched could not be opened or refused a
     request (stderr names the device, the request and the errno)
  2  usage error: stderr names the bad option
  3  the state page does not validate: stderr says which check failed
     (length, magic, checksum, size, or steps done > steps total); with
     --import also: its steps total is not S, or the handoff's ranges are not
     one contiguous range
  4  another runner took this workload: the state page holds another token
";

/// Most MiB --mib takes: 64 GiB.
const MAX_MIB: u64 = 65536;
/// Room for the ranges the first ACCEPT of --import asks with (it asks again
/// if there are more).
const ACCEPT_RANGES: u32 = 64;

#[derive(Debug, PartialEq, Eq)]
struct Options {
    steps: u64,
    progress: bool,
    mode: Mode,
}

/// Where the workload comes from.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// A fresh one of `mib` MiB from `seed` (--mib).
    Fresh {
        mib: u64,
        seed: u64,
        pause_after: Option<u64>,
        expect: bool,
    },
    /// The one a handoff to this host brings (--import).
    Import(Handoff),
}

/// A handoff, as --import names it: NODE:INDEX:ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handoff {
    /// The portal's NUMA node.
    node: i32,
    /// The handoff record's index.
    index: u32,
    /// The handoff's id.
    id: u64,
}

/// A decimal number, or a hexadecimal one after 0x.
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The value of `opt`, a number.
fn number(opt: &str, value: Option<&OsString>) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{opt} needs a value"))?;
    parse_number(value.to_str().unwrap_or(""))
        .ok_or_else(|| format!("{opt}: {value:?} is not a number"))
}

/// The value of --import: NODE:INDEX:ID, each a number (NODE and INDEX of
/// 31 and 32 bits).
fn handoff(value: Option<&OsString>) -> Result<Handoff, String> {
    let value = value.ok_or("--import needs a value")?;
    let bad = || format!("--import: {value:?} is not NODE:INDEX:ID");
    let text = value.to_str().ok_or_else(bad)?;
    let mut parts = text.split(':').map(parse_number);
    let (Some(Some(node)), Some(Some(index)), Some(Some(id)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(Handoff {
        node: i32::try_from(node)
            .map_err(|_| format!("--import: node {node} is not a NUMA node"))?,
        index: u32::try_from(index)
            .map_err(|_| format!("--import: index {index} is more than 32 bits"))?,
        id,
    })
}

/// The options in `args` (without the program's name), or None for --help.
fn parse(args: &[OsString]) -> Result<Option<Options>, String> {
    let (mut mib, mut steps, mut seed, mut pause_after) = (None, None, None, None);
    let (mut progress, mut expect, mut import) = (false, false, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let opt = arg.to_str().unwrap_or("");
        let slot = match opt {
            "-h" | "--help" => return Ok(None),
            "--import" => {
                if import.replace(handoff(it.next())?).is_some() {
                    return Err("--import given twice".into());
                }
                continue;
            }
            "--progress" | "--expect" => {
                let flag = if opt == "--progress" {
                    &mut progress
                } else {
                    &mut expect
                };
                if std::mem::replace(flag, true) {
                    return Err(format!("{opt} given twice"));
                }
                continue;
            }
            "--mib" => &mut mib,
            "--steps" => &mut steps,
            "--seed" => &mut seed,
            "--pause-after" => &mut pause_after,
            _ => return Err(format!("unknown option {arg:?}")),
        };
        if slot.replace(number(opt, it.next())?).is_some() {
            return Err(format!("{opt} given twice"));
        }
    }
    if let Some(h) = import {
        for (given, opt) in [
            (mib.is_some(), "--mib"),
            (seed.is_some(), "--seed"),
            (pause_after.is_some(), "--pause-after"),
            (expect, "--expect"),
        ] {
            if given {
                return Err(format!("{opt}: not with --import"));
            }
        }
        return Ok(Some(Options {
            steps: steps_of(steps)?,
            progress,
            mode: Mode::Import(h),
        }));
    }
    let mib = mib.ok_or("--mib is missing")?;
    if !(1..=MAX_MIB).contains(&mib) {
        return Err(format!("--mib: {mib} is not in 1..={MAX_MIB}"));
    }
    let steps = steps_of(steps)?;
    match pause_after {
        Some(k) if k > steps => {
            return Err(format!("--pause-after: {k} is more than --steps {steps}"))
        }
        Some(_) if expect => return Err("--pause-after: not with --expect".into()),
        _ => {}
    }
    Ok(Some(Options {
        steps,
        progress,
        mode: Mode::Fresh {
            mib,
            seed: seed.unwrap_or(0),
            pause_after,
            expect,
        },
    }))
}

/// --steps, which is required and at least 1.
fn steps_of(steps: Option<u64>) -> Result<u64, String> {
    match steps {
        None => Err("--steps is missing".into()),
        Some(0) => Err("--steps: 0 is not at least 1".into()),
        Some(s) => Ok(s),
    }
}

/// Why the run ended early: the memory, the device or stdout failed (exit
/// 1), the workload did (exit 3 or 4), or an import is not of the workload
/// asked for (exit 3).
enum Failure {
    Io(String),
    Workload(Error),
    NotTheWorkload(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(format!("stdout: {e}"))
    }
}

impl From<DeviceError> for Failure {
    fn from(e: DeviceError) -> Self {
        Failure::Io(e.to_string())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Workload(e)
    }
}

/// This process's runner token: the clock and a stack address mixed, in the
/// high 32 bits, and the pid in the low 32 bits.
fn runner_token() -> u64 {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() << 30) ^ u64::from(d.subsec_nanos()));
    let here = 0u8;
    let stack = u64::try_from((&raw const here).addr()).unwrap_or(0);
    (mix64(clock ^ stack) << 32) | u64::from(std::process::id())
}

/// The step counts after which --progress prints: each tenth of `total`.
fn tenths(total: u64) -> Vec<u64> {
    (1..=10u128)
        .map(|i| u64::try_from(u128::from(total) * i / 10).unwrap_or(total))
        .filter(|&t| t > 0)
        .collect()
}

/// Runs the workload in `mem`, fresh, from `seed`, as the options say;
/// returns its final state.
fn drive(
    mem: &mut [u8],
    opts: &Options,
    seed: u64,
    pause_after: Option<u64>,
) -> Result<State, Failure> {
    let token = runner_token();
    workload::init(mem, seed, opts.steps)?;
    workload::claim(mem, token)?;
    go_on(mem, token, opts, pause_after, &mut std::io::stdout())
}

/// Runs the workload in `mem`, claimed by `token`, up to `opts.steps` steps:
/// prints progress at each tenth still ahead if asked, and pauses after
/// `pause_after` steps, writing to `out`; returns its final state.
fn go_on(
    mem: &mut [u8],
    token: u64,
    opts: &Options,
    pause_after: Option<u64>,
    out: &mut dyn Write,
) -> Result<State, Failure> {
    let start = workload::state(mem)?.done;
    let tenths: Vec<u64> = if opts.progress {
        tenths(opts.steps)
            .into_iter()
            .filter(|&t| t > start)
            .collect()
    } else {
        Vec::new()
    };
    let mut marks = tenths.clone();
    marks.extend(pause_after);
    marks.push(opts.steps);
    marks.sort_unstable();
    marks.dedup();
    for mark in marks {
        let st = workload::run(mem, mark, token)?;
        if tenths.contains(&mark) {
            writeln!(out, "progress {}/{}", st.done, st.total)?;
        }
        if pause_after == Some(mark) {
            writeln!(
                out,
                "paused at {mark} addr {:#x} len {} pid {}",
                mem.as_ptr().addr(),
                mem.len(),
                std::process::id()
            )?;
            out.flush()?;
            // Any line, end of file, or even a read error: go on.
            let _ = std::io::stdin().lock().read_line(&mut String::new());
        }
    }
    Ok(workload::run(mem, opts.steps, token)?)
}

/// A fresh run of `mib` MiB: in an anonymous mapping, or with `expect` in a
/// heap vector.
fn fresh(
    opts: &Options,
    mib: u64,
    seed: u64,
    pause_after: Option<u64>,
    expect: bool,
) -> Result<State, Failure> {
    // At most MAX_MIB << 20 bytes: the conversions fail only where usize is
    // too small for the memory anyway.
    let too_big = || Failure::Io(format!("{mib} MiB do not fit in the address space"));
    let pages = usize::try_from(mib << 20).map_err(|_| too_big())? / PAGE;
    if expect {
        let len = pages.checked_mul(PAGE).ok_or_else(too_big)?;
        let mut mem = Vec::new();
        mem.try_reserve_exact(len)
            .map_err(|e| Failure::Io(format!("{mib} MiB of heap: {e}")))?;
        mem.resize(len, 0);
        drive(&mut mem, opts, seed, pause_after)
    } else {
        drive(
            anonymous_pages(pages).map_err(Failure::Io)?,
            opts,
            seed,
            pause_after,
        )
    }
}

/// The one contiguous range that the ranges of a manifest, ascending, make.
fn one_range(ranges: &[Range]) -> Result<Range, String> {
    let list = || {
        let r: Vec<String> = ranges
            .iter()
            .map(|r| format!("{:#x} len {}", r.start, r.len))
            .collect();
        r.join(", ")
    };
    let (first, rest) = ranges
        .split_first()
        .ok_or("the handoff's manifest lists no range")?;
    let mut all = *first;
    for r in rest {
        if all.start.checked_add(all.len) != Some(r.start) {
            return Err(format!(
                "the handoff's ranges are not one contiguous range: {}",
                list()
            ));
        }
        all.len = all
            .len
            .checked_add(r.len)
            .ok_or_else(|| format!("the handoff's ranges wrap around: {}", list()))?;
    }
    Ok(all)
}

/// Accepts handoff `h`, maps its range here untouched, has the kernel map
/// its pages into it, and prints the "imported" line: the workload's memory.
fn import_memory(dev: &Device, h: Handoff) -> Result<&'static mut [u8], Failure> {
    let manifest = dev.accept(h.node, h.index, h.id, ACCEPT_RANGES, uapi::MAX_ACCEPT_BLOB)?;
    let range = one_range(&manifest.ranges).map_err(Failure::NotTheWorkload)?;
    let too_big = || {
        Failure::Io(format!(
            "{:#x} len {}: not in the address space",
            range.start, range.len
        ))
    };
    let addr = usize::try_from(range.start).map_err(|_| too_big())?;
    let len = usize::try_from(range.len).map_err(|_| too_big())?;
    // One mapping covers every range of the manifest: they make one range.
    let start = anonymous_at(addr, len).map_err(Failure::Io)?;
    let me = i32::try_from(std::process::id()).map_err(|_| Failure::Io("a pid past i32".into()))?;
    let pages = dev.map(h.node, h.index, h.id, me)?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "imported {pages} pages at {addr:#x} len {len} pid {}",
        std::process::id()
    )?;
    out.flush()?;
    // SAFETY: `len` bytes at `start`, a private mapping of this process's,
    // readable and writable and never unmapped, which nothing else uses: the
    // kernel mapped the handoff's pages into it, and none of this process's
    // but this slice refers to it.
    Ok(unsafe { std::slice::from_raw_parts_mut(start, len) })
}

/// The run of --import: the workload of handoff `h`, to `opts.steps`.
fn import(opts: &Options, h: Handoff) -> Result<State, Failure> {
    let dev = Device::open(uapi::DEVICE)?;
    let mem = import_memory(&dev, h)?;
    let st = workload::state(mem)?;
    if st.total != opts.steps {
        return Err(Failure::NotTheWorkload(format!(
            "the imported workload's state page says {} steps total, not --steps {}",
            st.total, opts.steps
        )));
    }
    let token = runner_token();
    workload::claim(mem, token)?;
    go_on(mem, token, opts, None, &mut std::io::stdout())
}

fn main_result(opts: &Options) -> Result<(), Failure> {
    let st = match opts.mode {
        Mode::Fresh {
            mib,
            seed,
            pause_after,
            expect,
        } => fresh(opts, mib, seed, pause_after, expect)?,
        Mode::Import(h) => import(opts, h)?,
    };
    let mut out = std::io::stdout();
    writeln!(out, "result {:016x}\nsteps {}", st.hash, st.done)?;
    if let Mode::Import(_) = opts.mode {
        writeln!(out, "done, waiting")?;
        out.flush()?;
        // Any line, end of file, or even a read error: exit.
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let opts = match parse(&args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            let _ = std::io::stdout().write_all(HELP.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cxlsw-workload: {e} (see cxlsw-workload --help)");
            return ExitCode::from(2);
        }
    };
    match main_result(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Io(e)) => {
            eprintln!("cxlsw-workload: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Workload(e @ Error::AnotherRunner { .. })) => {
            eprintln!("cxlsw-workload: {e}");
            ExitCode::from(4)
        }
        Err(Failure::Workload(e)) => {
            eprintln!("cxlsw-workload: the state page does not validate: {e}");
            ExitCode::from(3)
        }
        Err(Failure::NotTheWorkload(e)) => {
            eprintln!("cxlsw-workload: {e}");
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Option<Options>, String> {
        let v: Vec<OsString> = v.iter().map(OsString::from).collect();
        parse(&v)
    }

    #[test]
    fn import_takes_node_index_and_id_in_decimal_or_hex() {
        assert_eq!(
            args(&["--import", "2:3:0x5e1f00d2c4a3b001", "--steps", "700"]),
            Ok(Some(Options {
                steps: 700,
                progress: false,
                mode: Mode::Import(Handoff {
                    node: 2,
                    index: 3,
                    id: 0x5e1f_00d2_c4a3_b001
                }),
            }))
        );
        assert_eq!(
            args(&["--progress", "--steps", "0x10", "--import", "0x2:0:42"]),
            Ok(Some(Options {
                steps: 16,
                progress: true,
                mode: Mode::Import(Handoff {
                    node: 2,
                    index: 0,
                    id: 42
                }),
            }))
        );
        assert_eq!(
            args(&["--mib", "1", "--steps", "5"]).map(|o| o.map(|o| o.mode)),
            Ok(Some(Mode::Fresh {
                mib: 1,
                seed: 0,
                pause_after: None,
                expect: false
            }))
        );
    }

    #[test]
    fn import_refuses_what_does_not_go_with_it() {
        for (v, want) in [
            (
                &["--import", "2:3", "--steps", "5"][..],
                "is not NODE:INDEX:ID",
            ),
            (
                &["--import", "2:3:4:5", "--steps", "5"],
                "is not NODE:INDEX:ID",
            ),
            (
                &["--import", "2:3:", "--steps", "5"],
                "is not NODE:INDEX:ID",
            ),
            (
                &["--import", "-1:3:4", "--steps", "5"],
                "is not NODE:INDEX:ID",
            ),
            (
                &["--import", "2:x:4", "--steps", "5"],
                "is not NODE:INDEX:ID",
            ),
            (
                &["--import", "2147483648:0:1", "--steps", "5"],
                "not a NUMA node",
            ),
            (
                &["--import", "2:4294967296:1", "--steps", "5"],
                "more than 32 bits",
            ),
            (&["--import"], "--import needs a value"),
            (&["--import", "2:3:4"], "--steps is missing"),
            (&["--import", "2:3:4", "--steps", "0"], "--steps: 0"),
            (
                &["--import", "2:3:4", "--import", "2:3:4", "--steps", "5"],
                "--import given twice",
            ),
            (
                &["--import", "2:3:4", "--steps", "5", "--mib", "1"],
                "--mib: not with --import",
            ),
            (
                &["--seed", "1", "--import", "2:3:4", "--steps", "5"],
                "--seed: not with --import",
            ),
            (
                &["--import", "2:3:4", "--steps", "5", "--pause-after", "1"],
                "--pause-after: not with --import",
            ),
            (
                &["--import", "2:3:4", "--steps", "5", "--expect"],
                "--expect: not with --import",
            ),
        ] {
            let e = args(v).expect_err("a usage error");
            assert!(e.contains(want), "{v:?}: {e}");
        }
    }

    fn r(start: u64, len: u64) -> Range {
        Range { start, len }
    }

    #[test]
    fn the_ranges_of_a_workload_make_one_range() {
        assert_eq!(one_range(&[r(0x10000, 0x200000)]), Ok(r(0x10000, 0x200000)));
        assert_eq!(
            one_range(&[r(0x10000, 0x1000), r(0x11000, 0x3000), r(0x14000, 0x1000)]),
            Ok(r(0x10000, 0x5000))
        );
        assert_eq!(
            one_range(&[]),
            Err("the handoff's manifest lists no range".into())
        );
        assert_eq!(
            one_range(&[r(0x10000, 0x1000), r(0x12000, 0x1000)]),
            Err(
                "the handoff's ranges are not one contiguous range: 0x10000 len 4096, \
                 0x12000 len 4096"
                    .into()
            )
        );
        assert!(one_range(&[r(0x11000, 0x1000), r(0x10000, 0x1000)]).is_err());
        assert!(one_range(&[r(u64::MAX - 0xfff, 0x1000), r(0, 0x1000)]).is_err());
    }

    #[test]
    fn progress_after_an_import_prints_only_the_tenths_ahead() {
        let mut mem = vec![0; 4 * PAGE];
        workload::init(&mut mem, 7, 100).unwrap();
        workload::run(&mut mem, 45, 0).unwrap();
        workload::claim(&mut mem, 9).unwrap();
        let opts = Options {
            steps: 100,
            progress: true,
            mode: Mode::Import(Handoff {
                node: 0,
                index: 0,
                id: 0,
            }),
        };
        let mut out = Vec::new();
        let st = go_on(&mut mem, 9, &opts, None, &mut out).unwrap_or_else(|_| panic!("runs"));
        let want: Vec<String> = (5..=10)
            .map(|i| format!("progress {}/100", i * 10))
            .collect();
        assert_eq!(
            String::from_utf8(out).unwrap().lines().collect::<Vec<_>>(),
            want
        );
        assert_eq!(
            (st.done, st.hash),
            (100, workload::expect(4, 7, 100).unwrap())
        );
    }
}
