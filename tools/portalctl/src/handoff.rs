//! `portalctl handoff list|export|cancel|accept|pull|release`: handoffs of a
//! paused process's memory through `/dev/cxl_switched` (see
//! [`portalctl::uapi`]): the source exports and, once the target pulled,
//! releases; the target accepts (a process of its maps the pages, such as
//! `cxlsw-workload --import`) and pulls.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use portalctl::uapi::{
    self, AcceptReply, Device, ExportReply, ExportRequest, HandoffEntry, PullReply, Range,
};

#[derive(Args, Debug)]
pub(crate) struct HandoffArgs {
    #[command(subcommand)]
    pub(crate) command: HandoffCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum HandoffCommand {
    /// List the handoffs in flight that this host is a party to, on every
    /// portal: offers it made or received, handoffs accepted and pulled.
    ///
    /// STATE: offered, accepted, pulled; for a source whose handoff was
    /// rolled back, until `cancel` acknowledges it: returned (the process
    /// may resume, its pages are unchanged) or lost (the target had mapped
    /// them, which may have changed them: end the process).
    ///
    /// PID and PINNED: for a source, the process whose pages it pinned and
    /// the pages it still holds; for a target, the process the pages are
    /// mapped into ("-" before one is) and the pages still on the portal.
    List(ListArgs),
    /// Offer a paused process's memory on a portal's node to another host
    /// of that portal: its pages are pinned until the handoff ends, their
    /// list (the manifest) is written into the blocks offered, and the
    /// blocks are offered to the target.
    Export(ExportArgs),
    /// Cancel an offer this host made or received; a source's pages are
    /// unpinned. Of a handoff `list` shows returned or lost (rolled back:
    /// its target cancelled it or died), acknowledge that end: resume the
    /// process if returned, end it if lost, then cancel it.
    Cancel(RefArgs),
    /// As the target, accept an offer to this host (or read again a handoff
    /// it accepted: that changes nothing) and print its manifest: the
    /// ranges its pages are to be mapped at, its pages and its blob's bytes.
    ///
    /// A process of this host then maps the ranges (private anonymous,
    /// untouched) and asks the kernel to map the pages there, as
    /// `cxlsw-workload --import` does.
    Accept(RefArgs),
    /// As the target, pull a mapped handoff's pages from the portal into
    /// this host's memory on node --to-node while the process runs, --batch
    /// pages a request, until none is left: the handoff is then pulled, and
    /// its source may release it.
    ///
    /// Prints a line per request, "pulled <done>/<total> pages, <secs> s
    /// left" (the time left estimated from the rate so far), then "pulled
    /// <total> pages in <ms> ms"; with --json only one JSON object at the
    /// end.
    Pull(PullArgs),
    /// As the source, release a pulled handoff: its pages are unpinned, the
    /// blocks they lie in are offlined (what else is in them migrates) and
    /// the handoff ends. End the old process first.
    Release(RefArgs),
}

#[derive(Args, Debug)]
pub(crate) struct DeviceArg {
    /// The handoff device.
    #[arg(long, value_name = "PATH", default_value = uapi::DEVICE)]
    pub(crate) device: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) device: DeviceArg,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// The process. Stop it first (a paused VM, SIGSTOP): what it writes
    /// after the export is not what the target gets.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) pid: i32,

    /// The portal's NUMA node (`portalctl list --portals`). Every page
    /// exported must be present and on it (migratepages moves them there).
    #[arg(long, value_name = "NID", allow_negative_numbers = true)]
    pub(crate) node: i32,

    /// The target host's slot in the portal (the driver's debugfs
    /// `members`).
    #[arg(long, value_name = "SLOT")]
    pub(crate) to: u32,

    /// A range START:LEN of the process's addresses, in hex (0x...) or
    /// decimal; LEN may end in K, M or G. Repeat it for more (at most 64,
    /// ascending, not overlapping). Default: every private anonymous
    /// writable mapping of /proc/PID/maps ("rw-p" without a path, and
    /// [heap]; not [stack]).
    #[arg(long = "range", value_name = "START:LEN", value_parser = parse_range)]
    pub(crate) ranges: Vec<Range>,

    /// A file whose bytes (at most 64 KiB) travel beside the pages, such as
    /// a VMM's device state.
    #[arg(long, value_name = "FILE")]
    pub(crate) blob: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) device: DeviceArg,
}

/// Which handoff: what `handoff list` shows of it.
#[derive(Args, Debug)]
pub(crate) struct HandoffId {
    /// The portal's NUMA node.
    #[arg(long, value_name = "NID", allow_negative_numbers = true)]
    pub(crate) node: i32,

    /// The handoff's record index (`handoff list`).
    #[arg(long)]
    pub(crate) index: u32,

    /// The handoff's id (`handoff list`), in hex (0x...) or decimal.
    #[arg(long, value_parser = parse_u64)]
    pub(crate) id: u64,
}

#[derive(Args, Debug)]
pub(crate) struct RefArgs {
    #[command(flatten)]
    pub(crate) handoff: HandoffId,

    #[command(flatten)]
    pub(crate) device: DeviceArg,
}

/// Pages a PULL moves by default.
pub(crate) const BATCH: u32 = 4096;

#[derive(Args, Debug)]
pub(crate) struct PullArgs {
    #[command(flatten)]
    pub(crate) handoff: HandoffId,

    /// The NUMA node of this host the pages go to: one with memory, not a
    /// portal.
    #[arg(long, value_name = "NID", allow_negative_numbers = true)]
    pub(crate) to_node: i32,

    /// Pages a request moves at most (1..=1048576).
    #[arg(long, value_name = "PAGES", default_value_t = BATCH,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(uapi::MAX_PULL)))]
    pub(crate) batch: u32,

    #[command(flatten)]
    pub(crate) device: DeviceArg,
}

/// A number in hex (with 0x) or decimal.
fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("'{s}': {e}"))
}

/// A length: a number, optionally followed by K, M or G (KiB, MiB, GiB).
fn parse_len(s: &str) -> Result<u64, String> {
    let (num, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n = parse_u64(num)?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' does not fit in 64 bits"))
}

/// START:LEN.
pub(crate) fn parse_range(s: &str) -> Result<Range, String> {
    let (start, len) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}': expected START:LEN"))?;
    Ok(Range {
        start: parse_u64(start)?,
        len: parse_len(len)?,
    })
}

/// The ranges an export takes by default from the text of /proc/PID/maps:
/// private writable mappings without a path ("rw-p", anonymous), and
/// [heap]; not [stack], [vvar], [vdso] or any other named mapping. Adjacent
/// ones are merged.
fn anonymous_ranges(maps: &str) -> Result<Vec<Range>, String> {
    let mut out: Vec<Range> = Vec::new();
    for (n, line) in maps.lines().enumerate() {
        // "start-end perms offset dev inode [path]"; a path may hold spaces.
        let mut w = line.split_whitespace();
        let (Some(span), Some(perms)) = (w.next(), w.next()) else {
            continue;
        };
        let name = w.nth(3).unwrap_or("");
        if perms != "rw-p" || !(name.is_empty() || name == "[heap]") {
            continue;
        }
        let bad = || format!("line {}: unexpected '{line}'", n + 1);
        let (a, b) = span.split_once('-').ok_or_else(bad)?;
        let a = u64::from_str_radix(a, 16).map_err(|_| bad())?;
        let b = u64::from_str_radix(b, 16).map_err(|_| bad())?;
        if b <= a {
            return Err(bad());
        }
        match out.last_mut() {
            Some(last) if last.start.checked_add(last.len) == Some(a) => last.len += b - a,
            _ => out.push(Range {
                start: a,
                len: b - a,
            }),
        }
    }
    Ok(out)
}

/// The default ranges of `pid`, read from /proc/PID/maps.
pub(crate) fn ranges_of(pid: i32) -> Result<Vec<Range>> {
    let path = format!("/proc/{pid}/maps");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (is {pid} a running process?)"))?;
    let ranges = anonymous_ranges(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    if ranges.is_empty() {
        bail!("{path}: no private anonymous writable mapping to export");
    }
    let max = usize::try_from(uapi::MAX_RANGES)?;
    if ranges.len() > max {
        bail!(
            "{path}: {} private anonymous writable mappings, more than the {max} an export \
             takes: name the ones to export with --range",
            ranges.len()
        );
    }
    Ok(ranges)
}

/// One handoff, as `list` prints it.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct Row {
    nid: i32,
    index: u32,
    /// Hex, as the kernel's log and `portal show` print it.
    id: String,
    state: String,
    role: String,
    /// The other party's host slot.
    peer: u32,
    blocks: u32,
    pages: u64,
    blob_bytes: u32,
    pid: i32,
    pinned: u64,
}

fn state_name(state: u32) -> String {
    match state {
        uapi::OFFERED => "offered".into(),
        uapi::ACCEPTED => "accepted".into(),
        uapi::PULLED => "pulled".into(),
        uapi::RETURNED => "returned".into(),
        uapi::LOST => "lost".into(),
        s => format!("state-{s}"),
    }
}

fn role_name(role: u32) -> String {
    match role {
        uapi::SOURCE => "source".into(),
        uapi::TARGET => "target".into(),
        r => format!("role-{r}"),
    }
}

fn row(h: &HandoffEntry) -> Row {
    Row {
        nid: h.nid,
        index: h.index,
        id: format!("{:#x}", h.id),
        state: state_name(h.state),
        role: role_name(h.role),
        peer: h.peer,
        blocks: h.blocks,
        pages: h.pages,
        blob_bytes: h.blob_bytes,
        pid: h.pid,
        pinned: h.pinned,
    }
}

/// The human table of `list`.
fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:>4} {:>5} {:>18}  {:<8} {:<6} {:>4} {:>6} {:>8} {:>10} {:>7} {:>8}\n",
        "NID",
        "INDEX",
        "ID",
        "STATE",
        "ROLE",
        "PEER",
        "BLOCKS",
        "PAGES",
        "BLOB-BYTES",
        "PID",
        "PINNED"
    );
    for r in rows {
        // A target has no process before one maps the pages.
        let pid = if r.pid == 0 {
            "-".into()
        } else {
            r.pid.to_string()
        };
        s += &format!(
            "{:>4} {:>5} {:>18}  {:<8} {:<6} {:>4} {:>6} {:>8} {:>10} {:>7} {:>8}\n",
            r.nid,
            r.index,
            r.id,
            r.state,
            r.role,
            r.peer,
            r.blocks,
            r.pages,
            r.blob_bytes,
            pid,
            r.pinned
        );
    }
    s
}

/// What `export` prints.
#[derive(Debug, Serialize)]
struct Exported {
    nid: i32,
    index: u32,
    id: String,
    pid: i32,
    target: u32,
    ranges: usize,
    pages: u64,
    blob_bytes: usize,
    /// How long the EXPORT ioctl took.
    ioctl_us: u64,
}

fn exported(a: &ExportArgs, req: &ExportRequest, r: &ExportReply, took: Duration) -> Exported {
    Exported {
        nid: a.node,
        index: r.index,
        id: format!("{:#x}", r.id),
        pid: a.pid,
        target: a.to,
        ranges: req.ranges.len(),
        pages: r.pages,
        blob_bytes: req.blob.len(),
        ioctl_us: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
    }
}

impl Exported {
    fn human(&self) -> String {
        format!(
            "exported pid {}: {} pages in {} ranges, {} blob bytes, on node {} offered to slot {} \
             as handoff {} id {} (pinned until it ends); EXPORT took {}.{:03} ms",
            self.pid,
            self.pages,
            self.ranges,
            self.blob_bytes,
            self.nid,
            self.target,
            self.index,
            self.id,
            self.ioctl_us / 1000,
            self.ioctl_us % 1000
        )
    }
}

fn run_list(a: &ListArgs, json: bool) -> Result<()> {
    let rows: Vec<Row> = Device::open(&a.device.device)?
        .list()?
        .iter()
        .map(row)
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no handoffs in flight that this host is a party to");
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

fn run_export(a: &ExportArgs, json: bool) -> Result<()> {
    let dev = Device::open(&a.device.device)?;
    let ranges = if a.ranges.is_empty() {
        ranges_of(a.pid)?
    } else {
        a.ranges.clone()
    };
    let blob = match &a.blob {
        Some(p) => fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => Vec::new(),
    };
    let req = ExportRequest {
        pid: a.pid,
        nid: a.node,
        target: a.to,
        ranges,
        blob,
    };
    let t0 = Instant::now();
    let reply = dev.export(&req)?;
    let out = exported(a, &req, &reply, t0.elapsed());
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", out.human());
    }
    Ok(())
}

fn run_cancel(a: &RefArgs, json: bool) -> Result<()> {
    let h = &a.handoff;
    Device::open(&a.device.device)?.cancel(h.node, h.index, h.id)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"nid": h.node, "index": h.index, "id": format!("{:#x}", h.id), "cancelled": true})
        );
    } else {
        println!(
            "cancelled handoff {} id {:#x} on node {}",
            h.index, h.id, h.node
        );
    }
    Ok(())
}

/// Room for the ranges the first ACCEPT asks with (it asks again if there
/// are more).
pub(crate) const ACCEPT_RANGES: u32 = 64;

/// A range as `accept` prints it.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct RangeRow {
    start: u64,
    len: u64,
}

/// What `accept` prints.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct Accepted {
    nid: i32,
    index: u32,
    id: String,
    pages: u64,
    blob_bytes: usize,
    ranges: Vec<RangeRow>,
}

fn accepted(h: &HandoffId, r: &AcceptReply) -> Accepted {
    Accepted {
        nid: h.node,
        index: h.index,
        id: format!("{:#x}", h.id),
        pages: r.pages,
        blob_bytes: r.blob.len(),
        ranges: r
            .ranges
            .iter()
            .map(|r| RangeRow {
                start: r.start,
                len: r.len,
            })
            .collect(),
    }
}

impl Accepted {
    /// A line, then one a range: "  0x<start> len <bytes>".
    fn human(&self) -> String {
        let mut s = format!(
            "accepted handoff {} id {} on node {}: {} pages in {} ranges, {} blob bytes\n",
            self.index,
            self.id,
            self.nid,
            self.pages,
            self.ranges.len(),
            self.blob_bytes
        );
        for r in &self.ranges {
            s += &format!("  {:#x} len {}\n", r.start, r.len);
        }
        s
    }
}

fn run_accept(a: &RefArgs, json: bool) -> Result<()> {
    let h = &a.handoff;
    let reply = Device::open(&a.device.device)?.accept(
        h.node,
        h.index,
        h.id,
        ACCEPT_RANGES,
        uapi::MAX_ACCEPT_BLOB,
    )?;
    let out = accepted(h, &reply);
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", out.human());
    }
    Ok(())
}

/// How many PULLs in a row may move nothing, while pages are left, before
/// `pull` gives up, and how long it waits after each.
const STALLS: u32 = 100;
const STALL_WAIT: Duration = Duration::from_millis(10);

/// How far a pull is: pages moved by this run, pages left, time so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PullProgress {
    done: u64,
    left: u64,
    elapsed: Duration,
}

impl PullProgress {
    pub(crate) fn total(&self) -> u64 {
        self.done.saturating_add(self.left)
    }

    /// The time left at the rate so far; `None` before a page moved.
    fn time_left(&self) -> Option<Duration> {
        if self.left == 0 {
            return Some(Duration::ZERO);
        }
        if self.done == 0 {
            return None;
        }
        let nanos = self
            .elapsed
            .as_nanos()
            .saturating_mul(u128::from(self.left))
            / u128::from(self.done);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// "pulled <done>/<total> pages, <secs> s left" (seconds to a tenth, "?"
    /// before a page moved).
    pub(crate) fn line(&self) -> String {
        let left = self
            .time_left()
            .map_or_else(|| "?".to_owned(), |t| format!("{:.1}", t.as_secs_f64()));
        format!("pulled {}/{} pages, {left} s left", self.done, self.total())
    }
}

/// What `pull` prints at the end.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct Pulled {
    nid: i32,
    index: u32,
    id: String,
    to_node: i32,
    batch: u32,
    /// PULL requests made.
    calls: u64,
    pages: u64,
    elapsed_us: u64,
}

impl Pulled {
    /// "pulled <total> pages in <ms> ms".
    fn human(&self) -> String {
        format!(
            "pulled {} pages in {} ms",
            self.pages,
            self.elapsed_us / 1000
        )
    }
}

/// PULLs by `pull_once` until none is left, calling `each` after every one
/// with the progress then; the progress at the end and the calls made.
pub(crate) fn pull_loop(
    mut pull_once: impl FnMut() -> Result<PullReply>,
    mut each: impl FnMut(&PullProgress),
) -> Result<(PullProgress, u64)> {
    let t0 = Instant::now();
    let (mut done, mut calls, mut stalls) = (0u64, 0u64, 0u32);
    loop {
        let r = pull_once()?;
        calls += 1;
        done = done.saturating_add(r.pulled);
        let p = PullProgress {
            done,
            left: r.left,
            elapsed: t0.elapsed(),
        };
        each(&p);
        if r.left == 0 {
            return Ok((p, calls));
        }
        if r.pulled == 0 {
            stalls += 1;
            if stalls >= STALLS {
                bail!(
                    "{STALLS} PULL requests in a row moved no page, {} pages are left",
                    r.left
                );
            }
            std::thread::sleep(STALL_WAIT);
        } else {
            stalls = 0;
        }
    }
}

fn run_pull(a: &PullArgs, json: bool) -> Result<()> {
    let h = &a.handoff;
    let dev = Device::open(&a.device.device)?;
    let once = || Ok(dev.pull(h.node, h.index, h.id, a.to_node, a.batch)?);
    let (end, calls) = pull_loop(once, |p| {
        if !json {
            println!("{}", p.line());
        }
    })?;
    let out = Pulled {
        nid: h.node,
        index: h.index,
        id: format!("{:#x}", h.id),
        to_node: a.to_node,
        batch: a.batch,
        calls,
        pages: end.total(),
        elapsed_us: u64::try_from(end.elapsed.as_micros()).unwrap_or(u64::MAX),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", out.human());
    }
    Ok(())
}

fn run_release(a: &RefArgs, json: bool) -> Result<()> {
    let h = &a.handoff;
    Device::open(&a.device.device)?.release(h.node, h.index, h.id)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"nid": h.node, "index": h.index, "id": format!("{:#x}", h.id), "released": true})
        );
    } else {
        println!("released handoff {} id {:#x}", h.index, h.id);
    }
    Ok(())
}

pub(crate) fn run(args: &HandoffArgs, json: bool) -> Result<()> {
    match &args.command {
        HandoffCommand::List(a) => run_list(a, json),
        HandoffCommand::Export(a) => run_export(a, json),
        HandoffCommand::Cancel(a) => run_cancel(a, json),
        HandoffCommand::Accept(a) => run_accept(a, json),
        HandoffCommand::Pull(a) => run_pull(a, json),
        HandoffCommand::Release(a) => run_release(a, json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_in_hex_decimal_and_with_units() {
        assert_eq!(
            parse_range("0x7f0000000000:16M"),
            Ok(Range {
                start: 0x7f00_0000_0000,
                len: 16 << 20
            })
        );
        assert_eq!(
            parse_range("4096:4096"),
            Ok(Range {
                start: 4096,
                len: 4096
            })
        );
        assert_eq!(parse_range("0x1000:0x2000").map(|r| r.len), Ok(0x2000));
        assert_eq!(parse_range("0X1000:2k").map(|r| r.len), Ok(2048));
        assert_eq!(parse_range("0:1G").map(|r| r.len), Ok(1 << 30));
        assert_eq!(parse_range("0:0x10K").map(|r| r.len), Ok(16 << 10));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        assert_eq!(
            parse_range("0x1000"),
            Err("'0x1000': expected START:LEN".into())
        );
        assert!(parse_range("zz:1").is_err_and(|e| e.starts_with("'zz': ")));
        assert!(parse_range("1:").is_err());
        assert!(parse_range("1:K").is_err());
        assert!(parse_range("1:-4096").is_err());
        assert!(parse_range("1:99999999999999999999").is_err());
        assert_eq!(
            parse_len("17179869184G"),
            Err("'17179869184G' does not fit in 64 bits".into())
        );
        assert_eq!(parse_len("17179869183G"), Ok(17179869183 << 30));
    }

    #[test]
    fn default_ranges_are_the_private_anonymous_writable_mappings() {
        let maps = "\
55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 1234    /usr/bin/qemu
55d0c0c21000-55d0c0c23000 rw-p 00021000 fd:01 1234    /usr/bin/qemu
55d0c0c23000-55d0c0c25000 rw-p 00000000 00:00 0
55d0c1000000-55d0c1200000 rw-p 00000000 00:00 0       [heap]
7f0000000000-7f0040000000 rw-p 00000000 00:00 0
7f0040000000-7f0040001000 ---p 00000000 00:00 0
7f0040001000-7f0040801000 rw-p 00000000 00:00 0
7f0040801000-7f0040802000 rw-s 00000000 00:05 77      /dev/shm/x y
7f0040900000-7f0040a00000 rwxp 00000000 00:00 0
7ffd10000000-7ffd10021000 rw-p 00000000 00:00 0       [stack]
7ffd10100000-7ffd10104000 r--p 00000000 00:00 0       [vvar]
7ffd10104000-7ffd10106000 r-xp 00000000 00:00 0       [vdso]
";
        assert_eq!(
            anonymous_ranges(maps),
            Ok(vec![
                Range {
                    start: 0x55d0_c0c2_3000,
                    len: 0x2000
                },
                Range {
                    start: 0x55d0_c100_0000,
                    len: 0x20_0000
                },
                // Two mappings side by side: one range.
                Range {
                    start: 0x7f00_0000_0000,
                    len: 0x4000_0000
                },
                Range {
                    start: 0x7f00_4000_1000,
                    len: 0x80_0000
                },
            ])
        );
        assert_eq!(anonymous_ranges(""), Ok(vec![]));
        assert!(anonymous_ranges("zz-1000 rw-p 0 0:0 0\n")
            .is_err_and(|e| e.starts_with("line 1: unexpected")));
    }

    #[test]
    fn rows_name_states_and_roles() {
        let h = HandoffEntry {
            id: 0x2a,
            index: 3,
            state: uapi::OFFERED,
            role: uapi::TARGET,
            peer: 1,
            nid: 2,
            ..HandoffEntry::default()
        };
        let r = row(&h);
        assert_eq!(
            (r.state.as_str(), r.role.as_str(), r.id.as_str()),
            ("offered", "target", "0x2a")
        );
        let r = row(&HandoffEntry {
            state: 7,
            role: 0,
            ..HandoffEntry::default()
        });
        assert_eq!((r.state.as_str(), r.role.as_str()), ("state-7", "role-0"));
        let r = row(&HandoffEntry {
            state: uapi::ACCEPTED,
            role: uapi::SOURCE,
            ..HandoffEntry::default()
        });
        assert_eq!((r.state.as_str(), r.role.as_str()), ("accepted", "source"));
    }

    #[test]
    fn a_pulled_handoff_is_named_pulled() {
        let r = row(&HandoffEntry {
            state: uapi::PULLED,
            role: uapi::TARGET,
            ..HandoffEntry::default()
        });
        assert_eq!((r.state.as_str(), r.role.as_str()), ("pulled", "target"));
    }

    #[test]
    fn a_rolled_back_export_says_whether_its_process_may_resume() {
        let name = |state| {
            row(&HandoffEntry {
                state,
                role: uapi::SOURCE,
                ..HandoffEntry::default()
            })
            .state
        };
        assert_eq!(
            (name(uapi::RETURNED), name(uapi::LOST)),
            ("returned".into(), "lost".into())
        );
    }

    #[test]
    fn the_table_has_every_column_and_blanks_a_target_pid_before_a_map() {
        let rows = [
            row(&HandoffEntry {
                id: 0xdead_beef,
                index: 3,
                state: uapi::OFFERED,
                role: uapi::SOURCE,
                peer: 1,
                nid: 2,
                blocks: 2,
                pages: 4096,
                blob_bytes: 512,
                pid: 1234,
                pinned: 4096,
            }),
            row(&HandoffEntry {
                id: 0x7,
                index: 0,
                state: uapi::ACCEPTED,
                role: uapi::TARGET,
                peer: 0,
                nid: 2,
                blocks: 1,
                pages: 8,
                ..HandoffEntry::default()
            }),
            // A target's process, once mapped, and its pages still on the portal.
            row(&HandoffEntry {
                id: 0x8,
                index: 1,
                state: uapi::PULLED,
                role: uapi::TARGET,
                peer: 0,
                nid: 2,
                blocks: 1,
                pages: 8,
                pid: 4321,
                pinned: 3,
                ..HandoffEntry::default()
            }),
        ];
        let t = table(&rows);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines,
            [
                vec![
                    "NID",
                    "INDEX",
                    "ID",
                    "STATE",
                    "ROLE",
                    "PEER",
                    "BLOCKS",
                    "PAGES",
                    "BLOB-BYTES",
                    "PID",
                    "PINNED"
                ],
                vec![
                    "2",
                    "3",
                    "0xdeadbeef",
                    "offered",
                    "source",
                    "1",
                    "2",
                    "4096",
                    "512",
                    "1234",
                    "4096"
                ],
                vec!["2", "0", "0x7", "accepted", "target", "0", "1", "8", "0", "-", "0"],
                vec!["2", "1", "0x8", "pulled", "target", "0", "1", "8", "0", "4321", "3"],
            ]
        );
        let v = serde_json::to_value(&rows[0]).expect("a row is JSON");
        assert_eq!(
            v,
            serde_json::json!({
                "nid": 2, "index": 3, "id": "0xdeadbeef", "state": "offered", "role": "source",
                "peer": 1, "blocks": 2, "pages": 4096, "blob_bytes": 512, "pid": 1234,
                "pinned": 4096
            })
        );
    }

    #[test]
    fn an_export_says_what_it_exported_and_how_long_it_took() {
        let a = ExportArgs {
            pid: 1234,
            node: 2,
            to: 1,
            ranges: vec![],
            blob: None,
            device: DeviceArg {
                device: uapi::DEVICE.into(),
            },
        };
        let req = ExportRequest {
            pid: 1234,
            nid: 2,
            target: 1,
            ranges: vec![Range::default(); 3],
            blob: vec![0; 100],
        };
        let reply = ExportReply {
            id: 0xabc,
            index: 5,
            pages: 4096,
        };
        let e = exported(&a, &req, &reply, Duration::from_micros(12_345));
        assert_eq!(
            e.human(),
            "exported pid 1234: 4096 pages in 3 ranges, 100 blob bytes, on node 2 offered to \
             slot 1 as handoff 5 id 0xabc (pinned until it ends); EXPORT took 12.345 ms"
        );
        assert_eq!(
            serde_json::to_value(&e).expect("JSON"),
            serde_json::json!({
                "nid": 2, "index": 5, "id": "0xabc", "pid": 1234, "target": 1, "ranges": 3,
                "pages": 4096, "blob_bytes": 100, "ioctl_us": 12345
            })
        );
    }

    fn an_id() -> HandoffId {
        HandoffId {
            node: 2,
            index: 5,
            id: 0xabc,
        }
    }

    #[test]
    fn an_accept_prints_the_ranges_pages_and_blob_bytes() {
        let reply = AcceptReply {
            ranges: vec![
                Range {
                    start: 0x7f00_0000_0000,
                    len: 1 << 20,
                },
                Range {
                    start: 0x7f00_0020_0000,
                    len: 4096,
                },
            ],
            blob: vec![0; 100],
            pages: 257,
        };
        let a = accepted(&an_id(), &reply);
        assert_eq!(
            a.human(),
            "accepted handoff 5 id 0xabc on node 2: 257 pages in 2 ranges, 100 blob bytes\n  \
             0x7f0000000000 len 1048576\n  0x7f0000200000 len 4096\n"
        );
        assert_eq!(
            serde_json::to_value(&a).expect("JSON"),
            serde_json::json!({
                "nid": 2, "index": 5, "id": "0xabc", "pages": 257, "blob_bytes": 100,
                "ranges": [
                    {"start": 0x7f00_0000_0000_u64, "len": 1_048_576},
                    {"start": 0x7f00_0020_0000_u64, "len": 4096}
                ]
            })
        );
    }

    #[test]
    fn pull_progress_estimates_the_time_left_from_the_rate_so_far() {
        let p = PullProgress {
            done: 1000,
            left: 3000,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(p.total(), 4000);
        assert_eq!(p.time_left(), Some(Duration::from_millis(1500)));
        assert_eq!(p.line(), "pulled 1000/4000 pages, 1.5 s left");
        let p = PullProgress {
            done: 0,
            left: 10,
            elapsed: Duration::from_millis(1),
        };
        assert_eq!(p.line(), "pulled 0/10 pages, ? s left");
        let p = PullProgress {
            done: 10,
            left: 0,
            elapsed: Duration::from_secs(3),
        };
        assert_eq!(p.line(), "pulled 10/10 pages, 0.0 s left");
    }

    #[test]
    fn a_pull_loops_until_no_page_is_left() {
        let mut left = 10_000u64;
        let mut lines = Vec::new();
        let (end, calls) = pull_loop(
            || {
                let pulled = left.min(4096);
                left -= pulled;
                Ok(PullReply { pulled, left })
            },
            |p| lines.push((p.done, p.total())),
        )
        .expect("pulls");
        assert_eq!(calls, 3);
        assert_eq!((end.done, end.left, end.total()), (10_000, 0, 10_000));
        assert_eq!(lines, [(4096, 10_000), (8192, 10_000), (10_000, 10_000)]);
        let out = Pulled {
            nid: 2,
            index: 5,
            id: "0xabc".into(),
            to_node: 0,
            batch: 4096,
            calls,
            pages: end.total(),
            elapsed_us: 12_345,
        };
        assert_eq!(out.human(), "pulled 10000 pages in 12 ms");
        assert_eq!(
            serde_json::to_value(&out).expect("JSON"),
            serde_json::json!({
                "nid": 2, "index": 5, "id": "0xabc", "to_node": 0, "batch": 4096, "calls": 3,
                "pages": 10000, "elapsed_us": 12345
            })
        );
    }

    #[test]
    fn a_pull_stops_at_the_first_error_and_when_nothing_moves() {
        let mut calls = 0;
        let e = pull_loop(
            || {
                calls += 1;
                if calls == 2 {
                    bail!("/dev/cxl_switched: PULL: Invalid argument (os error 22)");
                }
                Ok(PullReply { pulled: 1, left: 5 })
            },
            |_| {},
        )
        .expect_err("the second call fails");
        assert_eq!(calls, 2);
        assert!(e.to_string().contains("PULL: Invalid argument"), "{e}");
        let mut calls = 0u32;
        let e = pull_loop(
            || {
                calls += 1;
                Ok(PullReply { pulled: 0, left: 5 })
            },
            |_| {},
        )
        .expect_err("nothing moves");
        assert_eq!(calls, STALLS);
        assert_eq!(
            e.to_string(),
            "100 PULL requests in a row moved no page, 5 pages are left"
        );
        // A handoff pulled already: one call, nothing to do.
        let (end, calls) = pull_loop(|| Ok(PullReply::default()), |_| {}).expect("done");
        assert_eq!((end.total(), calls), (0, 1));
    }
}
