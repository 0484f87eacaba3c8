// SPDX-License-Identifier: GPL-2.0
//! cxlsw-workload --mib N --steps S [--seed X] [--pause-after K] [--progress]
//! [--expect]: the lab's migration workload, a process whose whole state is N
//! MiB of private anonymous memory (see `labtools::workload`). It prints the
//! result of S steps; with --pause-after it stops after K steps for a
//! migration tool to take its memory, and with --expect it computes the
//! result a faithful run must print, in a plain vector. `--help` says more.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use labtools::workload::{self, mix64, Error, State};
use labtools::{anonymous_pages, PAGE};

const HELP: &str = "\
cxlsw-workload: the lab's migration workload. It keeps all of its state in N
MiB of private anonymous memory, page 0 a state page and the rest data pages,
and computes on it in S steps: each reads three data pages into a running hash
and rewrites one of them from the hash, and the last step reads every page,
so a page lost, stale or duplicated on the way changes the result.

usage: cxlsw-workload --mib N --steps S [--seed X] [--pause-after K]
                      [--progress] [--expect]
       cxlsw-workload --help

  --mib N          size of the memory in MiB, 1..=65536
  --steps S        steps to run, at least 1
  --seed X         the seed the data pages are filled from, default 0
  --pause-after K  after K steps (0..=S), print the line
                     paused at K addr 0x<hex> len <bytes> pid <pid>
                   and wait for a line, or end of file, on stdin before going
                   on: a migration tool takes the memory meanwhile
  --progress       print \"progress <done>/<S>\" after each tenth of the steps
  --expect         compute in a plain heap vector instead of the mapping, and
                   print what a faithful run prints (not with --pause-after)
  -h, --help       print this help and exit

Numbers are decimal, or hexadecimal after 0x. An option's value is the next
argument. The last two lines of output are \"result <16 hex digits>\", the
hash after the last step, and \"steps <S>\".

At the start the process writes a runner token into the state page: the clock
mixed, in the high 32 bits, and its pid, in the low 32 bits. Before every step
it checks that the state page validates and still holds its token.

Exit status:
  0  all steps done, result printed
  1  the memory could not be mapped or allocated, or stdout not written
  2  usage error: stderr names the bad option
  3  the state page does not validate: stderr says which check failed
     (length, magic, checksum, size, or steps done > steps total)
  4  another runner took this workload: the state page holds another token
";

/// Most MiB --mib takes: 64 GiB.
const MAX_MIB: u64 = 65536;

#[derive(Debug, PartialEq, Eq)]
struct Options {
    mib: u64,
    steps: u64,
    seed: u64,
    pause_after: Option<u64>,
    progress: bool,
    expect: bool,
}

/// A decimal number, or a hexadecimal one after 0x.
fn number(opt: &str, value: Option<&OsString>) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{opt} needs a value"))?;
    let text = value.to_str().unwrap_or("");
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{opt}: {value:?} is not a number"))
}

/// The options in `args` (without the program's name), or None for --help.
fn parse(args: &[OsString]) -> Result<Option<Options>, String> {
    let (mut mib, mut steps, mut seed, mut pause_after) = (None, None, None, None);
    let (mut progress, mut expect) = (false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let opt = arg.to_str().unwrap_or("");
        let slot = match opt {
            "-h" | "--help" => return Ok(None),
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
    let mib = mib.ok_or("--mib is missing")?;
    if !(1..=MAX_MIB).contains(&mib) {
        return Err(format!("--mib: {mib} is not in 1..={MAX_MIB}"));
    }
    let steps = steps.ok_or("--steps is missing")?;
    if steps == 0 {
        return Err("--steps: 0 is not at least 1".into());
    }
    match pause_after {
        Some(k) if k > steps => {
            return Err(format!("--pause-after: {k} is more than --steps {steps}"))
        }
        Some(_) if expect => return Err("--pause-after: not with --expect".into()),
        _ => {}
    }
    Ok(Some(Options {
        mib,
        steps,
        seed: seed.unwrap_or(0),
        pause_after,
        progress,
        expect,
    }))
}

/// Why the run ended early: the memory or stdout failed (exit 1), or the
/// workload did (exit 3 or 4).
enum Failure {
    Io(String),
    Workload(Error),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(format!("stdout: {e}"))
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

/// Runs the workload in `mem`, fresh, as the options say; returns its final state.
fn drive(mem: &mut [u8], opts: &Options) -> Result<State, Failure> {
    let token = runner_token();
    workload::init(mem, opts.seed, opts.steps)?;
    workload::claim(mem, token)?;
    let tenths = if opts.progress {
        tenths(opts.steps)
    } else {
        Vec::new()
    };
    let mut marks = tenths.clone();
    marks.extend(opts.pause_after);
    marks.push(opts.steps);
    marks.sort_unstable();
    marks.dedup();
    let mut out = std::io::stdout();
    for mark in marks {
        let st = workload::run(mem, mark, token)?;
        if tenths.contains(&mark) {
            writeln!(out, "progress {}/{}", st.done, st.total)?;
        }
        if opts.pause_after == Some(mark) {
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

fn main_result(opts: &Options) -> Result<(), Failure> {
    // At most MAX_MIB << 20 bytes: the conversions fail only where usize is
    // too small for the memory anyway.
    let too_big = || Failure::Io(format!("{} MiB do not fit in the address space", opts.mib));
    let pages = usize::try_from(opts.mib << 20).map_err(|_| too_big())? / PAGE;
    let st = if opts.expect {
        let len = pages.checked_mul(PAGE).ok_or_else(too_big)?;
        let mut mem = Vec::new();
        mem.try_reserve_exact(len)
            .map_err(|e| Failure::Io(format!("{} MiB of heap: {e}", opts.mib)))?;
        mem.resize(len, 0);
        drive(&mut mem, opts)?
    } else {
        drive(anonymous_pages(pages).map_err(Failure::Io)?, opts)?
    };
    let mut out = std::io::stdout();
    writeln!(out, "result {:016x}\nsteps {}", st.hash, st.done)?;
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
    }
}
