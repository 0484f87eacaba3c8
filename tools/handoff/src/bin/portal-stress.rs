//! portal-stress: many processes, one file-backed portal, random deaths.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

/// Stress the portal protocol: worker processes share one file-backed
/// portal and do random joins, claims, returns, handoffs and leaves while
/// this parent kills them with SIGKILL at random points and starts new
/// ones, and pauses them (SIGSTOP, then SIGCONT) if asked. It is also the
/// fence agent: a killed worker is confirmed off, a paused one never. Workers check block stamps and the lock's exclusion as they go; at
/// the end this process joins, reaps every dead worker and prints a
/// summary. Check the file with checkers/portal_spec.py afterwards.
///
/// Exit status: 0 without violations, 1 with (or with a host left a suspect
/// after every worker was fenced and reaped), 2 on errors.
#[derive(Parser, Debug)]
#[command(name = "portal-stress", version)]
struct Args {
    /// The file that backs the portal (recreated, all zero).
    file: PathBuf,

    /// Worker processes.
    #[arg(long, default_value_t = 8)]
    procs: usize,

    /// Stop after this many protocol operations in total.
    #[arg(long, default_value_t = 100_000)]
    ops: u64,

    /// Kill a random worker (SIGKILL, at whatever point it is) every this
    /// many operations on average.
    #[arg(long, default_value_t = 1000)]
    kill_every: u64,

    /// Pause a random worker (SIGSTOP, for one to four leases, then SIGCONT)
    /// every this many operations on average; 0: never. A paused worker is
    /// never confirmed off, so nobody may take what it owns.
    #[arg(long, default_value_t = 0)]
    pause_every: u64,

    /// Every two seconds, stop all workers, copy the portal to
    /// DIR/snap-N.img (a moment of the run, for the checker) and go on.
    #[arg(long, value_name = "DIR")]
    snapshots: Option<PathBuf>,

    /// Seed of the random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,

    /// Run as worker N (internal).
    #[arg(long, hide = true)]
    worker: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r: Result<bool> = (|| {
        if let Some(i) = args.worker {
            cxlsw_handoff::stress::worker(&args.file, i, args.seed)?;
            return Ok(true);
        }
        let exe = std::env::current_exe()?;
        let s = cxlsw_handoff::stress::run(
            &exe,
            &args.file,
            args.procs,
            args.ops,
            args.kill_every,
            args.pause_every,
            args.seed,
            args.snapshots.as_deref(),
        )?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&s)?);
        } else {
            println!(
                "portal-stress: {} workers, {} operations, {} SIGKILLs, {} pauses in {:.1} s: \
                 {} violation(s); after reaping, {} blocks owned by the last host, {} free, \
                 {} suspect(s) left",
                s.workers,
                s.operations,
                s.kills,
                s.pauses,
                s.seconds,
                s.violations,
                s.final_owned,
                s.final_free,
                s.suspects_left
            );
        }
        Ok(s.violations == 0 && s.suspects_left == 0)
    })();
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("portal-stress: {e:#}");
            ExitCode::from(2)
        }
    }
}
