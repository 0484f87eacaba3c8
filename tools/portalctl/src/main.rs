//! portalctl: discover switched CXL portals, analyse the fabric they form,
//! plan flight paths.
//!
//! Exit codes: 0 success; 1 the operation failed (a file or device could not
//! be read or was malformed; the message names it); 2 bad command line;
//! 3 no route exists between the requested hosts.

mod dot;
mod fence;
mod gen;
mod handoff;
mod list;
mod local;
mod migrate;
mod portal;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) use portalctl::{analysis, fabric, inventory, pagetypeinfo, route, synth};

/// Switched CXL portals: what this host sees, and the fabric of hosts they join.
///
/// A portal is a CXL memory device reached through a CXL switch and shared by
/// several hosts; the cxl_switched driver onlines it as a NUMA node typed
/// "Switched". portalctl reads /proc/pagetypeinfo and sysfs on one host,
/// writes that host's inventory, and merges the inventories of many hosts
/// into the fabric graph: which hosts can reach which (reach groups), which
/// portals and attachments are critical connections, which hosts are
/// critical, and the flight path a VM takes from one host to another.
#[derive(Parser, Debug)]
#[command(
    name = "portalctl",
    version,
    about,
    long_about,
    after_help = "\
Exit status: 0 success, 1 failure (the message names the file or device, \
and for a /dev/cxl_switched request the request and its errno), \
2 usage error, 3 no route between the requested hosts."
)]
struct Cli {
    /// Print JSON instead of a human table (as `cxl list` and `daxctl` do).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List this host's NUMA nodes from /proc/pagetypeinfo and sysfs, with
    /// portal nodes (type "Switched") marked.
    List(list::ListArgs),
    /// This host's view (portals with id, node, capacity, free, members) as
    /// a versioned inventory; `--json` gives the document to merge.
    Inventory(local::InventoryArgs),
    /// Merge inventories into the fabric: reach groups, critical
    /// connections and hosts, flight paths, pictures.
    Fabric(report::FabricArgs),
    /// Write a synthetic fabric document, always JSON (for tests and
    /// benchmarks).
    Generate(gen::GenerateArgs),
    /// Time the analysis and one route on a synthetic fabric.
    Bench(gen::BenchArgs),
    /// Decode and validate a portal's header from a device or a file
    /// (`show`, `check`; exit status 1 when a host would refuse it); list a
    /// bound portal's suspects and confirm one fenced (`suspects`,
    /// `fence-confirm`).
    Portal(portal::PortalArgs),
    /// Hand a paused process's memory on a portal to another host through
    /// /dev/cxl_switched (`export`, `cancel`, `release` on the source;
    /// `accept`, `pull` on the target) and list the handoffs in flight
    /// (`list`).
    ///
    /// Root only (the device is mode 0600). `export`
    /// pins the process's pages on the portal's node until the handoff ends,
    /// writes their list (the manifest) into the blocks it offers and offers
    /// them to the target host; `cancel` withdraws an offer and unpins them.
    /// The target `accept`s the offer and reads the manifest, a process of
    /// its maps the pages (`cxlsw-workload --import`), and `pull` moves them
    /// into the target's memory while it runs; then the source `release`s
    /// the handoff. A request the kernel refuses is exit status 1, with the
    /// device, the request and its errno; the kernel log says why.
    Handoff(handoff::HandoffArgs),
    /// Move a process to another host through a portal in one command on
    /// each side: `send` on the source, `receive` on the target.
    ///
    /// Root only (/dev/cxl_switched is mode 0600, and `send` moves, stops
    /// and ends another process). `send` moves the process's pages onto the
    /// portal's node with migrate_pages(2) while it runs, stops it
    /// (SIGSTOP), exports it to the target's slot, waits for the target to
    /// accept and pull, ends it (SIGKILL) and releases the handoff.
    /// `receive` waits for an offer to this host, accepts it, starts the
    /// command that maps it (CXLSW_HANDOFF=NODE:INDEX:ID in its environment,
    /// and in place of an argument `{}`, e.g. `cxlsw-workload --import {}`),
    /// pulls its pages into this host's memory and waits for the source's
    /// release, leaving the command running. Each step prints what it did
    /// and how long it took; with --json one JSON object at the end: every
    /// step with its start and duration in ms, the outcome, the error.
    /// Exit status 1 when a step fails, naming the device, the request and
    /// its errno, and where the workload is left (the source resumes its
    /// process only while the target has not accepted).
    Migrate(migrate::MigrateArgs),
}

/// How a successful command ended.
pub(crate) enum Outcome {
    Done,
    NoRoute,
    /// A portal header a host would refuse (already reported).
    Refused,
}

fn main() -> ExitCode {
    // Behave like other command-line tools when the reader goes away
    // (`portalctl fabric ... | head`): end quietly instead of panicking.
    // SAFETY: called first in main, before any other thread exists;
    // resetting SIGPIPE to its default action has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::List(a) => list::run(a, cli.json).map(|()| Outcome::Done),
        Command::Inventory(a) => local::run(a, cli.json).map(|()| Outcome::Done),
        Command::Fabric(a) => report::run(a, cli.json),
        Command::Generate(a) => gen::run_generate(a).map(|()| Outcome::Done),
        Command::Bench(a) => gen::run_bench(a, cli.json).map(|()| Outcome::Done),
        Command::Portal(a) => portal::run(a, cli.json),
        Command::Handoff(a) => handoff::run(a, cli.json).map(|()| Outcome::Done),
        Command::Migrate(a) => migrate::run(a, cli.json).map(|()| Outcome::Done),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::NoRoute) => ExitCode::from(3),
        Ok(Outcome::Refused) => ExitCode::from(1),
        Err(e) => {
            eprintln!("portalctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Default root of the files portalctl reads; tests point it elsewhere.
pub(crate) fn default_root() -> PathBuf {
    PathBuf::from("/")
}
