//! `portalctl portal show|check`: decode and validate a portal's header from
//! a device or a file, as the driver does at probe; `suspects` and
//! `fence-confirm` (see [`crate::fence`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use cxlsw_handoff::header::{self, Device, Inspection, SuperblockView, TablesView};

use crate::Outcome;

#[derive(Args, Debug)]
pub(crate) struct PortalArgs {
    #[command(subcommand)]
    pub(crate) command: PortalCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PortalCommand {
    /// Decode the header at the start of PATH and say what a booting host
    /// would do: format (empty), join (formatted) or refuse. The header is
    /// checked against the geometry it states.
    Show(ShowArgs),
    /// As show, and check the header against the device: its size (of
    /// PATH, or --size) in memory blocks of --block-size.
    Check(CheckArgs),
    /// List the hosts of a bound portal that stopped renewing their lease
    /// (suspects: they keep their blocks until fenced), from sysfs.
    Suspects(crate::fence::SuspectsArgs),
    /// Confirm that a suspect is off (powered off, or its fabric port cut),
    /// so that the portal's members reap it and take its blocks. Confirm
    /// only a host that cannot run again.
    FenceConfirm(crate::fence::FenceConfirmArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    /// The portal: a file holding its first bytes (a backing file, a dump)
    /// or a device node.
    pub(crate) path: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The portal: a file holding its first bytes or a device node.
    pub(crate) path: PathBuf,

    /// The hosts' memory block size in bytes (default: this host's, from
    /// /sys/devices/system/memory/block_size_bytes, else 128 MiB).
    #[arg(long, value_name = "BYTES")]
    pub(crate) block_size: Option<u64>,

    /// The device size in bytes (default: the size of PATH, or of the dax
    /// device PATH names, from sysfs).
    #[arg(long, value_name = "BYTES")]
    pub(crate) size: Option<u64>,
}

/// Reads the first page of PATH and, when it holds a superblock, as much
/// more as its tables span.
fn read_start(path: &Path) -> Result<Vec<u8>> {
    let first = read_bytes(path, header::START_BYTES)?;
    let want = header::header_bytes(&first);
    if want > first.len() {
        return read_bytes(path, want);
    }
    Ok(first)
}

fn read_bytes(path: &Path, len: usize) -> Result<Vec<u8>> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < buf.len() {
        let n = f
            .read(&mut buf[got..])
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// The size of a regular file, or of a dax device from sysfs.
fn device_size(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("reading the size of {}", path.display()))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sysfs = PathBuf::from(format!("/sys/bus/dax/devices/{name}/size"));
    match std::fs::read_to_string(&sysfs) {
        Ok(s) => s
            .trim()
            .parse()
            .with_context(|| format!("{}: bad size '{}'", sysfs.display(), s.trim())),
        Err(_) => anyhow::bail!(
            "{}: size unknown (not a file or a dax device): pass --size",
            path.display()
        ),
    }
}

fn host_block_size() -> u64 {
    std::fs::read_to_string("/sys/devices/system/memory/block_size_bytes")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        .unwrap_or(128 << 20)
}

fn print_superblock(s: &SuperblockView) {
    println!("  uuid           {}", s.uuid);
    println!("  generation     {}", s.generation);
    println!(
        "  block size     {} ({} MiB)",
        s.block_size,
        s.block_size >> 20
    );
    println!(
        "  blocks         {} ({} header)",
        s.block_count, s.header_blocks
    );
    println!(
        "  host slots     {} of {} bytes at offset {:#x}",
        s.host_slots, s.slot_size, s.slot_table_offset
    );
    println!(
        "  lease          {} ms (settle {} ms); {} handoff records; tables end at {:#x}",
        s.lease_ms, s.settle_ms, s.handoff_records, s.header_bytes
    );
}

fn print_tables(t: &TablesView) {
    println!("  members:");
    println!("    SLOT  STATE   EPOCH  SLOT-STATE  HEARTBEAT  BLOCKS  INTENT  HOST");
    for m in &t.members {
        println!(
            "    {:<4}  {:<6}  {:<5}  {:<10}  {:<9}  {:<6}  {:<6}  {}",
            m.slot,
            m.state,
            m.epoch,
            m.slot_state,
            m.heartbeat.map_or("-".into(), |h| h.to_string()),
            m.blocks,
            m.intent.map_or("-".into(), |i| format!("{i:#x}")),
            m.host.as_deref().unwrap_or("-"),
        );
    }
    println!("  owners:");
    for r in &t.owners {
        let who = match r.slot {
            None => "free".to_string(),
            Some(0xfffe) => "quarantined".to_string(),
            Some(s) => format!("slot {s} epoch {}", r.epoch),
        };
        let h = r
            .handoff
            .map_or(String::new(), |h| format!(" (in handoff {h})"));
        println!("    blocks {}-{}: {who}{h}", r.first, r.first + r.count - 1);
    }
    if !t.handoffs.is_empty() {
        println!("  handoffs:");
    }
    for h in &t.handoffs {
        let ext: Vec<String> = h.extents.iter().map(|(s, c)| format!("{s}+{c}")).collect();
        println!(
            "    {} id {:#x}: {} ({}) from slot {} epoch {} to slot {} epoch {}: {}",
            h.index,
            h.id,
            h.state,
            h.outcome,
            h.source,
            h.source_epoch,
            h.target,
            h.target_epoch,
            ext.join(" ")
        );
    }
}

fn print(path: &Path, i: &Inspection, json: bool) -> Result<Outcome> {
    if json {
        println!("{}", serde_json::to_string_pretty(i)?);
    } else {
        match i {
            Inspection::Empty => {
                println!(
                    "{}: empty (all zero): a booting host formats it",
                    path.display()
                )
            }
            Inspection::Formatting { superblock: s } => {
                println!(
                    "{}: portal header {} being formatted: a booting host waits, and formats it again if it stays so for a lease",
                    path.display(),
                    s.version
                );
                print_superblock(s);
            }
            Inspection::Formatted {
                superblock: s,
                tables,
            } => {
                println!(
                    "{}: portal header {}: a booting host joins it",
                    path.display(),
                    s.version
                );
                print_superblock(s);
                match tables {
                    Some(t) => print_tables(t),
                    None => println!("  (tables not read: pass the whole header)"),
                }
            }
            Inspection::Refused { reason } => {
                println!(
                    "{}: refused: {reason}: a booting host onlines nothing",
                    path.display()
                )
            }
        }
    }
    Ok(match i {
        Inspection::Refused { .. } => Outcome::Refused,
        _ => Outcome::Done,
    })
}

pub(crate) fn run(args: &PortalArgs, json: bool) -> Result<Outcome> {
    match &args.command {
        PortalCommand::Show(a) => {
            let start = read_start(&a.path)?;
            print(&a.path, &header::inspect(&start, None), json)
        }
        PortalCommand::Check(a) => {
            let start = read_start(&a.path)?;
            let size = match a.size {
                Some(s) => s,
                None => device_size(&a.path)?,
            };
            let device = Device {
                block_size: a.block_size.unwrap_or_else(host_block_size),
                size,
            };
            print(&a.path, &header::inspect(&start, Some(device)), json)
        }
        PortalCommand::Suspects(a) => crate::fence::run_suspects(a, json).map(|()| Outcome::Done),
        PortalCommand::FenceConfirm(a) => {
            crate::fence::run_fence_confirm(a, json).map(|()| Outcome::Done)
        }
    }
}
