//! portalctl: discover switched CXL portals and analyse the fabric they form.
//!
//! Exit codes: 0 success, 1 the operation failed (a file or device could not
//! be read or was malformed), 2 bad command line (clap's own code).

mod list;
mod pagetypeinfo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Switched CXL portals: what this host sees, and the fabric of hosts they join.
#[derive(Parser, Debug)]
#[command(name = "portalctl", version, about, long_about = None)]
struct Cli {
    /// Print JSON instead of a table (as `cxl list` and `daxctl` do).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the NUMA nodes of this host from /proc/pagetypeinfo and sysfs,
    /// with the portals (nodes typed "Switched") marked.
    List(list::ListArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List(args) => list::run(&args, cli.json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
