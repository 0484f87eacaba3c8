//! portal-bench: the portal header's costs, with baselines from the same run.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

/// Measure what the portal protocol costs, each figure with a baseline
/// measured in the same run:
///
/// - the boot check of a portal with 64 host slots and 1 TiB of 128 MiB
///   blocks (8192 blocks), against copying the same header bytes;
/// - the portal lock's acquisition latency with N processes contending on
///   one file-backed portal, against one process alone.
///
/// Figures are printed, not judged: this is a benchmark, not a test.
#[derive(Parser, Debug)]
#[command(name = "portal-bench", version)]
struct Args {
    /// Scratch file for the lock benchmark's portal.
    #[arg(long, default_value = "/tmp/portal-bench.img")]
    file: PathBuf,

    /// Contending processes.
    #[arg(long, default_value_t = 8)]
    procs: usize,

    /// Lock acquisitions per process.
    #[arg(long, default_value_t = 2000)]
    rounds: usize,

    /// One small round of each figure (4 processes, 100 acquisitions, 20 checks): for the test
    /// command, so that the bench cannot break unnoticed. The figures are not meaningful.
    #[arg(long)]
    smoke: bool,
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    let checks = if args.smoke {
        args.procs = args.procs.min(4);
        args.rounds = args.rounds.min(100);
        20
    } else {
        200
    };
    let (bytes, check, base) = cxlsw_handoff::stress::header_check_ns(128 << 20, 8192, 64, checks)?;
    println!(
        "header check, 64 slots, 8192 blocks of 128 MiB (1 TiB), {} KiB of header: {:.1} us per check \
         (target < 1000 us); copying the same bytes {:.1} us: ratio {:.1}x",
        bytes / 1024,
        check / 1000.0,
        base / 1000.0,
        check / base
    );
    let mut one = cxlsw_handoff::stress::lock_latency(&args.file, 1, args.rounds)?;
    let mut many = cxlsw_handoff::stress::lock_latency(&args.file, args.procs, args.rounds)?;
    let _ = std::fs::remove_file(&args.file);
    let (m1, m8) = (pct(&mut one, 0.5), pct(&mut many, 0.5));
    println!(
        "lock acquisition, 1 process: median {} us, p99 {} us",
        m1,
        pct(&mut one, 0.99)
    );
    println!(
        "lock acquisition, {} processes contending: median {} us, p99 {} us: median ratio {:.1}x",
        args.procs,
        m8,
        pct(&mut many, 0.99),
        m8 as f64 / m1.max(1) as f64
    );
    Ok(())
}
