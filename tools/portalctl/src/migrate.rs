//! `portalctl migrate send|receive`: a workload moved between hosts through a
//! portal in one command on each side, over the requests of `portalctl
//! handoff` (see [`portalctl::uapi`]).
//!
//! `send`, on the source: the process's pages onto the portal's node, stop,
//! EXPORT, wait for the target to accept and pull, end the process, RELEASE.
//! `receive`, on the target: wait for an offer, ACCEPT, start the command
//! that maps it, wait for the map, PULL, wait for the source's release.
//!
//! What decides and waits ([`send`], [`receive`]) talks to the device, the
//! processes and the clock only through [`Sys`], so that the tests drive it
//! with scripted LIST answers and a clock that moves only when it sleeps.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;

use portalctl::pagetypeinfo::PageTypeInfo;
use portalctl::uapi::{
    self, AcceptReply, Device, DeviceError, ExportReply, ExportRequest, HandoffEntry, PullReply,
    Range,
};

use crate::handoff::{self, DeviceArg};

/// The environment variable `receive` gives COMMAND: NODE:INDEX:ID.
const ENV: &str = "CXLSW_HANDOFF";
/// How often LIST is asked while waiting for the other host.
const POLL: Duration = Duration::from_millis(100);
/// How often /proc/PID/stat is read while waiting for a stop or an exit.
const PROC_POLL: Duration = Duration::from_millis(10);
/// How long a process may take to stop after SIGSTOP.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// How long a process may take to end after SIGKILL.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// RELEASEs tried while the kernel says EBUSY, and the wait between them.
const RELEASE_TRIES: u32 = 5;
const RELEASE_WAIT: Duration = Duration::from_secs(1);
/// --timeout's default and most, in seconds.
const TIMEOUT: u64 = 900;
const MAX_TIMEOUT: u64 = 365 * 24 * 3600;
/// Where the portal's node and the online nodes are read.
const PAGETYPEINFO: &str = "/proc/pagetypeinfo";
const ONLINE: &str = "/sys/devices/system/node/online";

const SEND_AFTER: &str = "\
Exit status: 0 the workload moved (released: the target has it); 1 a step \
failed: the message names the step (the device, the request and its errno \
for a /dev/cxl_switched request) and where the workload is, as the --json \
outcome does: runs-here, stopped, in-flight, lost or release-pending; 2 usage \
error.";

const RECEIVE_AFTER: &str = "\
Exit status: 0 the workload runs here (mapped, pulled, released by the \
source; COMMAND runs on); 1 a step failed: the message names the step (the \
device, the request and its errno for a /dev/cxl_switched request) and how \
far it got, as the --json outcome does: not-accepted, accepted, mapped or \
pulled; nothing is killed; 2 usage error.";

#[derive(Args, Debug)]
pub(crate) struct MigrateArgs {
    #[command(subcommand)]
    pub(crate) command: MigrateCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum MigrateCommand {
    /// On the source: move process --pid to the host in slot --to of a
    /// portal, and end it here once the target has it.
    ///
    /// In order: (1) the portal's node: --node, else the one node of type
    /// Switched in /proc/pagetypeinfo; (2) migrate_pages(2) moves the
    /// process's pages from every other online node onto it while it runs
    /// (pages it could not move are counted, not an error); (3) SIGSTOP,
    /// and a wait of up to 5 s until /proc/PID/stat says stopped (T): the
    /// workload is down from here; (4) migrate_pages(2) again, then EXPORT
    /// as `handoff export` does; (5) LIST every 100 ms until the target
    /// accepted ("accepted by slot N after X s") and pulled ("pulled after
    /// X s"); (6) SIGKILL, a wait of up to 5 s until the process ended (gone
    /// or a zombie), and RELEASE (tried again a second later, up to 5
    /// times, while the kernel says EBUSY): "released: N pages unpinned".
    ///
    /// Each step prints what it did and how long it took; with --json one
    /// JSON object at the end instead: every step with its start and
    /// duration in ms, the outcome, and the error if one.
    ///
    /// On a failure before the target accepted -- a step up to EXPORT fails,
    /// the target gives the offer back unmapped (LIST: returned; `send`
    /// acknowledges it with CANCEL), the offer leaves LIST, or no target
    /// accepts within --timeout (`send` CANCELs the offer) -- the process is
    /// resumed (SIGCONT) and runs on here: outcome "runs-here" ("stopped" if
    /// it was stopped before `send` began: it stays stopped). Once the
    /// target accepted, the process is never resumed: if the handoff is
    /// rolled back after the target mapped the pages (LIST: lost), or leaves
    /// LIST before the pull, the workload is lost with the target: "lost",
    /// the process stays stopped (end it; acknowledge with `handoff
    /// cancel`); if --timeout passes, the handoff stays in flight:
    /// "in-flight" (see `portalctl handoff list`). After the pull, a process
    /// that does not end or a RELEASE that fails is "release-pending":
    /// release with `portalctl handoff release`.
    #[command(after_help = SEND_AFTER)]
    Send(SendArgs),
    /// On the target: take a workload offered to this host and run it here
    /// with COMMAND, which maps the handoff into itself.
    ///
    /// In order: (1) LIST every 100 ms, up to --timeout, for an offer to
    /// this host (from slot --from, on node --node, if given; several
    /// matching at once is an error: name one), "offer INDEX/ID from slot S:
    /// P pages, B blob bytes"; (2) ACCEPT it; (3) start COMMAND with
    /// CXLSW_HANDOFF=NODE:INDEX:ID in its environment (node and index in
    /// decimal, the id in hex, 0x...) and every argument that is exactly
    /// `{}` replaced by the same, stdin, stdout and stderr inherited (e.g.
    /// `-- cxlsw-workload --import {} --steps 700`): it ACCEPTs again
    /// (harmless), MAPs and resumes the workload; (4) wait, up to --timeout,
    /// until LIST says a process mapped it, "mapped into pid P after X s":
    /// the workload's downtime ends here; (5) PULL its pages to --to-node,
    /// with the progress lines of `handoff pull`; (6) wait, up to --timeout,
    /// until the source released it (it leaves LIST). Then exit 0, leaving
    /// COMMAND running: its pid is printed, it is not waited for.
    ///
    /// Each step prints what it did and how long it took; with --json one
    /// JSON object at the end instead (COMMAND's own output goes to the same
    /// stdout). COMMAND must be an executable file, or one found in PATH,
    /// before anything is done. On a failure nothing is killed; the
    /// message and the JSON outcome say how far it got: "not-accepted" (no
    /// offer, or ACCEPT refused: nothing changed), "accepted" (COMMAND did
    /// not start, exited or did not map it: start a program that maps it),
    /// "mapped" (PULL failed: `portalctl handoff pull` again), "pulled" (the
    /// source did not release in time: the workload runs here anyway).
    #[command(after_help = RECEIVE_AFTER)]
    Receive(ReceiveArgs),
}

#[derive(Args, Debug)]
pub(crate) struct SendArgs {
    /// The process to move, running or stopped: this host's pid of it.
    /// migrate_pages(2), SIGSTOP and SIGKILL need the right to, and EXPORT
    /// the right to attach to it (root).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) pid: i32,

    /// The target host's slot in the portal (the driver's debugfs
    /// `members`).
    #[arg(long, value_name = "SLOT")]
    pub(crate) to: u32,

    /// The portal's NUMA node, which must be online. Default: the one node
    /// of type Switched in /proc/pagetypeinfo (`portalctl list --portals`);
    /// with none or several, exit status 1 asking for --node.
    #[arg(long, value_name = "NID", value_parser = clap::value_parser!(i32).range(0..))]
    pub(crate) node: Option<i32>,

    /// A range START:LEN of the process's addresses to export, in hex
    /// (0x...) or decimal; LEN may end in K, M or G. Repeat it for more (at
    /// most 64, ascending, not overlapping). Default, as `handoff export`:
    /// every private anonymous writable mapping of /proc/PID/maps ("rw-p"
    /// without a path, and [heap]; not [stack]), read once it stopped.
    #[arg(long = "range", value_name = "START:LEN", value_parser = handoff::parse_range)]
    pub(crate) ranges: Vec<Range>,

    /// A file whose bytes (at most 64 KiB) travel beside the pages, such as
    /// a VMM's device state. It is read before anything else is done.
    #[arg(long, value_name = "FILE")]
    pub(crate) blob: Option<PathBuf>,

    /// Seconds from the offer within which the target must accept and
    /// pull (1..=31536000). Passed before the accept: the offer is
    /// cancelled and the process resumed; after it: the handoff stays in
    /// flight and the process stopped.
    #[arg(long, value_name = "SECS", default_value_t = TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT))]
    pub(crate) timeout: u64,

    #[command(flatten)]
    pub(crate) device: DeviceArg,
}

#[derive(Args, Debug)]
pub(crate) struct ReceiveArgs {
    /// Take only an offer from the host in this slot of the portal.
    /// Default: from any.
    #[arg(long, value_name = "SLOT")]
    pub(crate) from: Option<u32>,

    /// Take only an offer on the portal of this NUMA node. Default: on any.
    #[arg(long, value_name = "NID", value_parser = clap::value_parser!(i32).range(0..))]
    pub(crate) node: Option<i32>,

    /// The NUMA node of this host the pages are pulled to: one with memory,
    /// not a portal.
    #[arg(long, value_name = "NID", default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..))]
    pub(crate) to_node: i32,

    /// Pages a PULL request moves at most (1..=1048576).
    #[arg(long, value_name = "PAGES", default_value_t = handoff::BATCH,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(uapi::MAX_PULL)))]
    pub(crate) batch: u32,

    /// Seconds each wait may take (1..=31536000): for the offer, for a
    /// process to map it after COMMAND started, for the source's release
    /// after the pull. On a timeout nothing is undone or killed.
    #[arg(long, value_name = "SECS", default_value_t = TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT))]
    pub(crate) timeout: u64,

    #[command(flatten)]
    pub(crate) device: DeviceArg,

    /// The program that maps the handoff and resumes the workload, and its
    /// arguments, after `--`. It gets CXLSW_HANDOFF=NODE:INDEX:ID; an
    /// argument that is exactly `{}` becomes NODE:INDEX:ID too.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub(crate) command: Vec<OsString>,
}

/// A handoff: what every request after EXPORT names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    nid: i32,
    index: u32,
    id: u64,
}

impl Key {
    fn of(e: &HandoffEntry) -> Key {
        Key {
            nid: e.nid,
            index: e.index,
            id: e.id,
        }
    }

    /// Whether `e` is this handoff with this host in `role`.
    fn is(&self, e: &HandoffEntry, role: u32) -> bool {
        e.nid == self.nid && e.index == self.index && e.id == self.id && e.role == role
    }

    /// The options of `portalctl handoff` that name it.
    fn args(&self) -> String {
        format!(
            "--node {} --index {} --id {:#x}",
            self.nid, self.index, self.id
        )
    }

    /// NODE:INDEX:ID, as `cxlsw-workload --import` takes it.
    fn value(&self) -> String {
        format!("{}:{}:{:#x}", self.nid, self.index, self.id)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} id {:#x} on node {}", self.index, self.id, self.nid)
    }
}

/// The signals `send` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Stop,
    Cont,
    Kill,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Stop => "SIGSTOP",
            Sig::Cont => "SIGCONT",
            Sig::Kill => "SIGKILL",
        }
    }

    fn number(self) -> libc::c_int {
        match self {
            Sig::Stop => libc::SIGSTOP,
            Sig::Cont => libc::SIGCONT,
            Sig::Kill => libc::SIGKILL,
        }
    }
}

/// What `send` and `receive` ask of the host: the device, the processes, the
/// clock.
trait Sys {
    /// Time since a fixed point.
    fn now(&self) -> Duration;
    fn sleep(&mut self, d: Duration);
    fn list(&mut self) -> Result<Vec<HandoffEntry>>;
    fn export(&mut self, req: &ExportRequest) -> Result<ExportReply>;
    fn cancel(&mut self, k: Key) -> Result<()>;
    fn accept(&mut self, k: Key) -> Result<AcceptReply>;
    fn pull(&mut self, k: Key, to_node: i32, batch: u32) -> Result<PullReply>;
    fn release(&mut self, k: Key) -> Result<()>;
    /// The nodes of type Switched.
    fn portal_nodes(&mut self) -> Result<Vec<u32>>;
    fn online_nodes(&mut self) -> Result<Vec<u32>>;
    /// migrate_pages(2) of `pid` from `from` to `to`: the pages not moved.
    fn migrate_pages(&mut self, pid: i32, from: &[u32], to: u32) -> Result<u64>;
    /// The ranges `handoff export` takes by default.
    fn default_ranges(&mut self, pid: i32) -> Result<Vec<Range>>;
    fn signal(&mut self, pid: i32, sig: Sig) -> io::Result<()>;
    /// The state letter of /proc/PID/stat; `None` if there is no such
    /// process.
    fn proc_state(&mut self, pid: i32) -> Result<Option<char>>;
    /// An error unless `program` is an executable file or found in PATH.
    fn find_program(&mut self, program: &OsStr) -> Result<()>;
    /// Starts `argv` with `env` added: its pid.
    fn spawn(&mut self, argv: &[OsString], env: (&str, &str)) -> Result<u32>;
    /// How the started command ended, if it did.
    fn child_exit(&mut self) -> Result<Option<String>>;
}

/// `send`'s outcomes: where the workload is.
const RELEASED: &str = "released";
const RUNS_HERE: &str = "runs-here";
const STOPPED: &str = "stopped";
const IN_FLIGHT: &str = "in-flight";
const LOST: &str = "lost";
const RELEASE_PENDING: &str = "release-pending";
/// `receive`'s outcomes: how far it got.
const NOT_ACCEPTED: &str = "not-accepted";
const ACCEPTED: &str = "accepted";
const MAPPED: &str = "mapped";
const PULLED: &str = "pulled";
const RUNNING: &str = "running";

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

fn later(t: Duration, by: Duration) -> Duration {
    t.checked_add(by).unwrap_or(Duration::MAX)
}

fn nodes_text(nodes: &[u32]) -> String {
    if nodes.is_empty() {
        return "none".into();
    }
    nodes
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One step, as the JSON summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Step {
    step: &'static str,
    /// When it began, in ms from the start of the command.
    at_ms: u64,
    ms: u64,
    /// The line it printed.
    message: String,
}

/// What a run printed and where it got.
#[derive(Debug)]
struct Log {
    /// Print each line as it comes (not with --json).
    echo: bool,
    lines: Vec<String>,
    steps: Vec<Step>,
    outcome: &'static str,
    handoff: Option<Key>,
    /// `send`: the process moved.
    pid: Option<i32>,
    /// `receive`: COMMAND, and the process that mapped the handoff.
    command_pid: Option<u32>,
    mapped_pid: Option<i32>,
    /// `send`: when the process was stopped, and resumed or ended.
    stopped_at: Option<Duration>,
    stopped_until: Option<Duration>,
}

/// The JSON object `--json` prints at the end.
#[derive(Debug, Serialize)]
struct Summary {
    command: &'static str,
    ok: bool,
    outcome: &'static str,
    error: Option<String>,
    handoff: Option<KeyJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mapped_pid: Option<i32>,
    /// `send`: how long the process was stopped here, in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_ms: Option<u64>,
    total_ms: u64,
    steps: Vec<Step>,
}

#[derive(Debug, Serialize)]
struct KeyJson {
    nid: i32,
    index: u32,
    id: String,
}

impl Log {
    fn new(echo: bool, outcome: &'static str) -> Self {
        Log {
            echo,
            lines: Vec::new(),
            steps: Vec::new(),
            outcome,
            handoff: None,
            pid: None,
            command_pid: None,
            mapped_pid: None,
            stopped_at: None,
            stopped_until: None,
        }
    }

    fn line(&mut self, s: String) {
        if self.echo {
            println!("{s}");
        }
        self.lines.push(s);
    }

    /// Step `step`, from `from` to `to`, which printed `message`.
    fn step(&mut self, step: &'static str, from: Duration, to: Duration, message: String) {
        self.line(message.clone());
        self.steps.push(Step {
            step,
            at_ms: ms(from),
            ms: ms(to.saturating_sub(from)),
            message,
        });
    }

    fn summary(&self, command: &'static str, result: &Result<()>, now: Duration) -> Summary {
        Summary {
            command,
            ok: result.is_ok(),
            outcome: self.outcome,
            error: result.as_ref().err().map(|e| format!("{e:#}")),
            handoff: self.handoff.map(|k| KeyJson {
                nid: k.nid,
                index: k.index,
                id: format!("{:#x}", k.id),
            }),
            pid: self.pid,
            command_pid: self.command_pid,
            mapped_pid: self.mapped_pid,
            stopped_ms: self
                .stopped_at
                .map(|t| ms(self.stopped_until.unwrap_or(now).saturating_sub(t))),
            total_ms: ms(now),
            steps: self.steps.clone(),
        }
    }
}

/// The node list of /sys/devices/system/node/online: "0-1,3".
fn parse_node_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    let text = text.trim();
    if text.is_empty() {
        return Ok(out);
    }
    for part in text.split(',') {
        let bad = || format!("'{part}' is not a node or a range of nodes");
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.trim().parse().map_err(|_| bad())?;
        let b: u32 = b.trim().parse().map_err(|_| bad())?;
        if b < a {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The state letter of a /proc/PID/stat text: the field after the command
/// name in parentheses (which may hold spaces and parentheses).
fn stat_state(text: &str) -> Option<char> {
    let (_, rest) = text.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

/// The portal's node when --node is not given: the one of type Switched.
fn the_portal_node(switched: &[u32]) -> Result<i32> {
    match switched {
        [one] => i32::try_from(*one).map_err(|_| anyhow!("node {one} is not a NUMA node")),
        [] => bail!(
            "{PAGETYPEINFO} has no node of type Switched (is a portal bound to cxl_switched?): \
             name the portal's node with --node"
        ),
        many => bail!(
            "{PAGETYPEINFO} has {} nodes of type Switched ({}): name the portal's node with --node",
            many.len(),
            nodes_text(many)
        ),
    }
}

/// The offers to this host in `entries`, from slot `from` and on node
/// `node` if given.
fn offers_for(entries: &[HandoffEntry], from: Option<u32>, node: Option<i32>) -> Vec<HandoffEntry> {
    entries
        .iter()
        .filter(|e| {
            e.role == uapi::TARGET
                && e.state == uapi::OFFERED
                && from.is_none_or(|s| e.peer == s)
                && node.is_none_or(|n| e.nid == n)
        })
        .copied()
        .collect()
}

/// COMMAND with every argument that is exactly `{}` replaced by `value`.
fn command_line(argv: &[OsString], value: &str) -> Vec<OsString> {
    argv.iter()
        .map(|a| {
            if a == "{}" {
                OsString::from(value)
            } else {
                a.clone()
            }
        })
        .collect()
}

/// `program` as it would run: a path with a slash as it is, else the first
/// executable file of that name in `path` (PATH).
fn find_program(program: &OsStr, path: Option<&OsStr>) -> Result<PathBuf> {
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let name = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        if executable(name) {
            return Ok(name.to_path_buf());
        }
        bail!("COMMAND {}: no such executable file", name.display());
    }
    for dir in std::env::split_paths(path.unwrap_or_default()) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    bail!("COMMAND {}: not found in PATH", name.display())
}

/// COMMAND as a line of text.
fn shown(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The errno of a failed device request.
fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.downcast_ref::<DeviceError>().and_then(DeviceError::errno)
}

/// The node masks of migrate_pages(2) from `from` to `to`, and its
/// `maxnode`: one more than the masks' bits (the kernel reads
/// `maxnode - 1` bits).
fn node_masks(
    from: &[u32],
    to: u32,
) -> Result<(Vec<libc::c_ulong>, Vec<libc::c_ulong>, libc::c_ulong)> {
    let bits = usize::try_from(libc::c_ulong::BITS)?;
    let top = from.iter().copied().fold(to, u32::max);
    let words = usize::try_from(top)? / bits + 1;
    let mask = |nodes: &[u32]| -> Result<Vec<libc::c_ulong>> {
        let mut m: Vec<libc::c_ulong> = vec![0; words];
        for &n in nodes {
            let n = usize::try_from(n)?;
            let word = m
                .get_mut(n / bits)
                .ok_or_else(|| anyhow!("node {n} outside the mask"))?;
            *word |= libc::c_ulong::from(1u8) << (n % bits);
        }
        Ok(m)
    };
    let maxnode = words
        .checked_mul(bits)
        .and_then(|b| b.checked_add(1))
        .ok_or_else(|| anyhow!("node {top}: a mask too large"))?;
    Ok((mask(from)?, mask(&[to])?, libc::c_ulong::try_from(maxnode)?))
}

/// Where a process stopped by `send` goes back to on a failure before the
/// target accepted.
#[derive(Debug, Clone, Copy)]
struct Resume {
    pid: i32,
    /// It was stopped before `send` stopped it: it stays so.
    was_stopped: bool,
}

/// Resumes the process after `why` and says so in the error it returns.
fn resume<S: Sys>(sys: &mut S, log: &mut Log, r: Resume, why: anyhow::Error) -> anyhow::Error {
    let pid = r.pid;
    if r.was_stopped {
        log.outcome = STOPPED;
        return anyhow!(
            "{why:#}; pid {pid} was stopped before `migrate send` began: left it stopped here \
             (kill -CONT {pid} resumes it)"
        );
    }
    let t = sys.now();
    match sys.signal(pid, Sig::Cont) {
        Ok(()) => {
            let d = sys.now();
            log.stopped_until = Some(d);
            log.outcome = RUNS_HERE;
            log.step(
                "resume",
                t,
                d,
                format!("resumed pid {pid} (SIGCONT): the workload runs on here"),
            );
            anyhow!("{why:#}; resumed pid {pid}: the workload runs on here")
        }
        Err(e) => {
            log.outcome = STOPPED;
            anyhow!(
                "{why:#}; resuming pid {pid} failed: kill({}): {e}: it stays stopped \
                 (kill -CONT {pid})",
                Sig::Cont.name()
            )
        }
    }
}

/// What `send` does, from its arguments.
#[derive(Debug, Clone)]
struct SendPlan {
    pid: i32,
    to: u32,
    node: Option<i32>,
    /// Empty: the default ranges.
    ranges: Vec<Range>,
    blob: Vec<u8>,
    timeout: Duration,
}

/// `migrate send`.
fn send<S: Sys>(sys: &mut S, p: &SendPlan, log: &mut Log) -> Result<()> {
    let pid = p.pid;
    let start = sys.now();
    log.pid = Some(pid);
    log.outcome = RUNS_HERE;

    // 1. The portal's node.
    let (node, why) = match p.node {
        Some(n) => (n, "--node"),
        None => (
            the_portal_node(&sys.portal_nodes()?)?,
            "the one node of type Switched",
        ),
    };
    let to = u32::try_from(node).map_err(|_| anyhow!("--node {node}: not a NUMA node"))?;
    let online = sys.online_nodes()?;
    if !online.contains(&to) {
        bail!(
            "node {node} is not online ({ONLINE}: {})",
            nodes_text(&online)
        );
    }
    let from: Vec<u32> = online.iter().copied().filter(|&n| n != to).collect();
    let t = sys.now();
    log.step(
        "node",
        start,
        t,
        format!(
            "portal node {node} ({why}); pages move there from node(s) {}",
            nodes_text(&from)
        ),
    );

    // 2. Its pages onto the node while it runs.
    let left = sys
        .migrate_pages(pid, &from, to)
        .map_err(|e| anyhow!("{e:#}; pid {pid} was not stopped: it runs on here"))?;
    let d = sys.now();
    log.step(
        "migrate-running",
        t,
        d,
        format!(
            "migrate_pages: pid {pid} onto node {node} while it runs: {left} pages not moved, \
             {} ms",
            ms(d.saturating_sub(t))
        ),
    );

    // 3. Stop it: the workload is down from here.
    let t = sys.now();
    let before = sys
        .proc_state(pid)?
        .ok_or_else(|| anyhow!("pid {pid}: no such process (/proc/{pid} is gone)"))?;
    let r = Resume {
        pid,
        was_stopped: before == 'T',
    };
    sys.signal(pid, Sig::Stop).map_err(|e| {
        anyhow!(
            "kill(pid {pid}, {}): {e}; it runs on here",
            Sig::Stop.name()
        )
    })?;
    log.stopped_at = Some(t);
    log.outcome = STOPPED;
    let deadline = later(t, STOP_WAIT);
    loop {
        match sys.proc_state(pid) {
            Ok(Some('T')) => break,
            Ok(None) => bail!("pid {pid} ended before it stopped: nothing was exported"),
            Ok(Some(s)) => {
                if sys.now() >= deadline {
                    let why = anyhow!(
                        "pid {pid} did not stop within {} s of SIGSTOP (state {s})",
                        STOP_WAIT.as_secs()
                    );
                    return Err(resume(sys, log, r, why));
                }
            }
            Err(e) => return Err(resume(sys, log, r, e)),
        }
        sys.sleep(PROC_POLL);
    }
    let d = sys.now();
    let what = if r.was_stopped {
        format!("pid {pid} was stopped already")
    } else {
        format!(
            "stopped pid {pid} (SIGSTOP) in {} ms",
            ms(d.saturating_sub(t))
        )
    };
    log.step(
        "stop",
        t,
        d,
        format!("{what}: the workload is down from here"),
    );

    // 4. What it touched before it stopped, then the export.
    let t = sys.now();
    let left = match sys.migrate_pages(pid, &from, to) {
        Ok(n) => n,
        Err(e) => return Err(resume(sys, log, r, e)),
    };
    let d = sys.now();
    log.step(
        "migrate-stopped",
        t,
        d,
        format!(
            "migrate_pages: pid {pid} onto node {node} while stopped: {left} pages not moved, \
             {} ms",
            ms(d.saturating_sub(t))
        ),
    );
    let t = sys.now();
    let ranges = if p.ranges.is_empty() {
        match sys.default_ranges(pid) {
            Ok(r) => r,
            Err(e) => return Err(resume(sys, log, r, e)),
        }
    } else {
        p.ranges.clone()
    };
    let req = ExportRequest {
        pid,
        nid: node,
        target: p.to,
        ranges,
        blob: p.blob.clone(),
    };
    let reply = match sys.export(&req) {
        Ok(x) => x,
        Err(e) => return Err(resume(sys, log, r, e)),
    };
    let key = Key {
        nid: node,
        index: reply.index,
        id: reply.id,
    };
    log.handoff = Some(key);
    log.outcome = IN_FLIGHT;
    let offered = sys.now();
    log.step(
        "export",
        t,
        offered,
        format!(
            "exported pid {pid}: {} pages in {} ranges, {} blob bytes, on node {node} offered to \
             slot {} as handoff {} id {:#x}; EXPORT took {} ms",
            reply.pages,
            req.ranges.len(),
            req.blob.len(),
            p.to,
            key.index,
            key.id,
            ms(offered.saturating_sub(t))
        ),
    );

    // 5. The target accepts and pulls.
    let pinned = wait_pulled(sys, log, p, key, r, offered)?;

    // 6. End the old process, release.
    let t = sys.now();
    log.outcome = RELEASE_PENDING;
    match sys.signal(pid, Sig::Kill) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
        Err(e) => bail!(
            "kill(pid {pid}, {}): {e}; the handoff is pulled: end pid {pid}, then \
             `portalctl handoff release {}`",
            Sig::Kill.name(),
            key.args()
        ),
    }
    let deadline = later(t, EXIT_WAIT);
    loop {
        match sys.proc_state(pid)? {
            // A zombie holds no memory any more; its parent reaps it.
            None | Some('Z' | 'X' | 'x') => break,
            Some(s) => {
                if sys.now() >= deadline {
                    bail!(
                        "pid {pid} did not end within {} s of SIGKILL (state {s}); the handoff \
                         is pulled: once pid {pid} is gone, `portalctl handoff release {}`",
                        EXIT_WAIT.as_secs(),
                        key.args()
                    );
                }
            }
        }
        sys.sleep(PROC_POLL);
    }
    let d = sys.now();
    log.stopped_until = Some(d);
    log.step(
        "kill",
        t,
        d,
        format!(
            "killed pid {pid} (SIGKILL): it ended after {} ms",
            ms(d.saturating_sub(t))
        ),
    );
    let t = sys.now();
    let mut tries = 0;
    loop {
        tries += 1;
        match sys.release(key) {
            Ok(()) => break,
            Err(e) if tries < RELEASE_TRIES && errno_of(&e) == Some(libc::EBUSY) => {
                log.line(format!(
                    "{e:#}: a block could not be offlined yet; RELEASE again in {} s",
                    RELEASE_WAIT.as_secs()
                ));
                sys.sleep(RELEASE_WAIT);
            }
            Err(e) => bail!(
                "{e:#}; the old process ended and the handoff is pulled: release it again with \
                 `portalctl handoff release {}` (the kernel log says why)",
                key.args()
            ),
        }
    }
    log.outcome = RELEASED;
    let d = sys.now();
    log.step(
        "release",
        t,
        d,
        format!(
            "released: {pinned} pages unpinned, RELEASE took {} ms; total {} s",
            ms(d.saturating_sub(t)),
            secs(d.saturating_sub(start))
        ),
    );
    Ok(())
}

/// Waits, LIST every [`POLL`], until the target pulled handoff `key`
/// offered at `offered`: the pages this host pins for it then. Resumes the process on
/// what ends the handoff before an accept, and on a timeout before one.
fn wait_pulled<S: Sys>(
    sys: &mut S,
    log: &mut Log,
    p: &SendPlan,
    key: Key,
    r: Resume,
    offered: Duration,
) -> Result<u64> {
    let pid = r.pid;
    let stopped =
        |log: &Log, now: Duration| secs(now.saturating_sub(log.stopped_at.unwrap_or(offered)));
    let deadline = later(offered, p.timeout);
    let mut accepted: Option<(Duration, u32)> = None;
    loop {
        sys.sleep(POLL);
        let list = sys.list().map_err(|e| {
            anyhow!(
                "{e:#}; handoff {key} is in flight and pid {pid} stopped: see `portalctl handoff \
                 list`"
            )
        })?;
        let now = sys.now();
        let Some(e) = list.iter().find(|e| key.is(e, uapi::SOURCE)) else {
            if let Some((_, peer)) = accepted {
                log.outcome = LOST;
                bail!(
                    "handoff {key} left LIST after slot {peer} accepted it, before it pulled: \
                     nothing tells whether the target changed the pages, so pid {pid} stays \
                     stopped: do not resume it, end it (kill -KILL {pid})"
                );
            }
            let why = anyhow!("handoff {key} left LIST before the target accepted it");
            return Err(resume(sys, log, r, why));
        };
        match e.state {
            uapi::OFFERED => {}
            uapi::ACCEPTED | uapi::PULLED => {
                let (at, _) = *accepted.get_or_insert_with(|| {
                    log.step(
                        "accepted",
                        offered,
                        now,
                        format!(
                            "accepted by slot {} after {} s (pid {pid} stopped for {} s)",
                            e.peer,
                            secs(now.saturating_sub(offered)),
                            stopped(log, now)
                        ),
                    );
                    (now, e.peer)
                });
                if e.state == uapi::PULLED {
                    log.step(
                        "pulled",
                        at,
                        now,
                        format!(
                            "pulled after {} s (pid {pid} stopped for {} s)",
                            secs(now.saturating_sub(at)),
                            stopped(log, now)
                        ),
                    );
                    return Ok(e.pinned);
                }
            }
            uapi::RETURNED => {
                let why = anyhow!(
                    "slot {} gave handoff {key} back before it mapped the pages (it cancelled \
                     the offer, or died and was fenced; LIST says returned): the pages are as \
                     they were exported",
                    e.peer
                );
                let err = resume(sys, log, r, why);
                let t = sys.now();
                return Err(match sys.cancel(key) {
                    Ok(()) => {
                        let d = sys.now();
                        log.step(
                            "acknowledge",
                            t,
                            d,
                            format!("acknowledged the returned handoff {key} (CANCEL)"),
                        );
                        err
                    }
                    Err(c) => anyhow!(
                        "{err:#}; acknowledging the end with CANCEL failed: {c:#} (`portalctl \
                         handoff cancel {}`)",
                        key.args()
                    ),
                });
            }
            uapi::LOST => {
                log.outcome = LOST;
                bail!(
                    "slot {} had mapped handoff {key} when it was rolled back (the target died \
                     and was fenced; LIST says lost): the workload ran there and is lost with \
                     it, and pid {pid}'s memory is what the target made of it. pid {pid} stays \
                     stopped: do not resume it; end it (kill -KILL {pid}) and acknowledge with \
                     `portalctl handoff cancel {}`",
                    e.peer,
                    key.args()
                );
            }
            s => bail!(
                "handoff {key}: LIST says state {s}, which this portalctl does not know; pid \
                 {pid} stays stopped: see `portalctl handoff list`"
            ),
        }
        if now < deadline {
            continue;
        }
        let t_s = p.timeout.as_secs();
        if let Some((_, peer)) = accepted {
            bail!(
                "slot {peer} accepted handoff {key} but did not pull it within {t_s} s of the \
                 offer: the handoff stays in flight and pid {pid} stopped (not cancelled, not \
                 resumed: the target may run the workload). Watch `portalctl handoff list`: \
                 pulled: end pid {pid} (kill -KILL {pid}) and `portalctl handoff release {a}`; \
                 returned: resume it (kill -CONT {pid}) and `portalctl handoff cancel {a}`; \
                 lost: end it and `portalctl handoff cancel {a}`",
                a = key.args()
            );
        }
        let t = sys.now();
        return match sys.cancel(key) {
            Ok(()) => {
                let d = sys.now();
                log.step(
                    "cancel",
                    t,
                    d,
                    format!(
                        "cancelled handoff {key}: slot {} did not accept it within {t_s} s",
                        p.to
                    ),
                );
                let why = anyhow!(
                    "slot {} did not accept handoff {key} within {t_s} s: cancelled the offer",
                    p.to
                );
                Err(resume(sys, log, r, why))
            }
            Err(c) => bail!(
                "slot {} did not accept handoff {key} within {t_s} s, and CANCEL failed: {c:#}: \
                 the target may have accepted it just now, so pid {pid} stays stopped: see \
                 `portalctl handoff list`",
                p.to
            ),
        };
    }
}

/// What `receive` does, from its arguments.
#[derive(Debug, Clone)]
struct ReceivePlan {
    from: Option<u32>,
    node: Option<i32>,
    to_node: i32,
    batch: u32,
    timeout: Duration,
    command: Vec<OsString>,
}

/// What the operator does with a handoff accepted here and not mapped.
fn unmapped(key: Key) -> String {
    format!(
        "handoff {key} stays accepted by this host and unmapped: start a program that maps it \
         ({ENV}={v}, or `cxlsw-workload --import {v}`), then `portalctl handoff pull {a} \
         --to-node NID`",
        v = key.value(),
        a = key.args()
    )
}

/// `migrate receive`.
fn receive<S: Sys>(sys: &mut S, p: &ReceivePlan, log: &mut Log) -> Result<()> {
    let start = sys.now();
    log.outcome = NOT_ACCEPTED;
    let program = p
        .command
        .first()
        .ok_or_else(|| anyhow!("no COMMAND to start"))?;
    sys.find_program(program)?;

    // 1. An offer to this host.
    let deadline = later(start, p.timeout);
    let offer = loop {
        let found = offers_for(&sys.list()?, p.from, p.node);
        match found.as_slice() {
            [] => {}
            [one] => break *one,
            many => bail!(
                "{} offers to this host match: {}; name one with --from or --node",
                many.len(),
                many.iter()
                    .map(|e| format!("{} from slot {}", Key::of(e), e.peer))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        if sys.now() >= deadline {
            let from = p
                .from
                .map(|s| format!(" from slot {s}"))
                .unwrap_or_default();
            let node = p.node.map(|n| format!(" on node {n}")).unwrap_or_default();
            bail!(
                "no offer to this host{from}{node} within {} s",
                p.timeout.as_secs()
            );
        }
        sys.sleep(POLL);
    };
    let key = Key::of(&offer);
    log.handoff = Some(key);
    let t = sys.now();
    log.step(
        "offer",
        start,
        t,
        format!(
            "offer {}/{:#x} from slot {}: {} pages, {} blob bytes, on node {} (waited {} s)",
            key.index,
            key.id,
            offer.peer,
            offer.pages,
            offer.blob_bytes,
            key.nid,
            secs(t.saturating_sub(start))
        ),
    );

    // 2. Accept it.
    let manifest = sys.accept(key).map_err(|e| {
        anyhow!(
            "{e:#}; the offer stays: its source's `migrate send` cancels it at its timeout, or \
             `portalctl handoff cancel {}`",
            key.args()
        )
    })?;
    log.outcome = ACCEPTED;
    let d = sys.now();
    log.step(
        "accept",
        t,
        d,
        format!(
            "accepted handoff {key}: {} ranges, {} pages, {} blob bytes; ACCEPT took {} ms",
            manifest.ranges.len(),
            manifest.pages,
            manifest.blob.len(),
            ms(d.saturating_sub(t))
        ),
    );

    // 3. The command that maps it.
    let value = key.value();
    let argv = command_line(&p.command, &value);
    let t = sys.now();
    let child = sys
        .spawn(&argv, (ENV, &value))
        .map_err(|e| anyhow!("{e:#}; {}", unmapped(key)))?;
    log.command_pid = Some(child);
    let started = sys.now();
    log.step(
        "start",
        t,
        started,
        format!("started pid {child}: {} with {ENV}={value}", shown(&argv)),
    );

    // 4. Mapped: the workload runs here again.
    let t_s = p.timeout.as_secs();
    let deadline = later(started, p.timeout);
    let mapped = loop {
        let list = sys
            .list()
            .map_err(|e| anyhow!("{e:#}; the command (pid {child}) runs on"))?;
        match list.iter().find(|e| key.is(e, uapi::TARGET)) {
            Some(e) if e.pid != 0 => break e.pid,
            Some(_) => {}
            None => bail!(
                "handoff {key} left LIST before a process mapped it (the kernel log says why); \
                 the command (pid {child}) runs on"
            ),
        }
        if let Some(status) = sys.child_exit()? {
            bail!(
                "the command (pid {child}) exited ({status}) before it mapped handoff {key}; {}",
                unmapped(key)
            );
        }
        if sys.now() >= deadline {
            bail!(
                "no process mapped handoff {key} within {t_s} s; the command (pid {child}) runs \
                 on, not killed; {}",
                unmapped(key)
            );
        }
        sys.sleep(POLL);
    };
    log.mapped_pid = Some(mapped);
    log.outcome = MAPPED;
    let d = sys.now();
    log.step(
        "mapped",
        started,
        d,
        format!(
            "mapped into pid {mapped} after {} s",
            secs(d.saturating_sub(started))
        ),
    );

    // 5. Its pages into this host's memory.
    let t = sys.now();
    let (to_node, batch) = (p.to_node, p.batch);
    let pulled = {
        let lines = &mut *log;
        handoff::pull_loop(
            || sys.pull(key, to_node, batch),
            |progress| lines.line(progress.line()),
        )
    };
    let (end, calls) = pulled.map_err(|e| {
        anyhow!(
            "{e:#}; the workload runs on in pid {mapped}, its pages partly on the portal: pull \
             again with `portalctl handoff pull {} --to-node {to_node}`",
            key.args()
        )
    })?;
    log.outcome = PULLED;
    let d = sys.now();
    log.step(
        "pull",
        t,
        d,
        format!(
            "pulled {} pages in {} ms ({calls} PULL requests) to node {to_node}",
            end.total(),
            ms(d.saturating_sub(t))
        ),
    );

    // 6. The source releases it.
    let t = sys.now();
    let deadline = later(t, p.timeout);
    loop {
        let list = sys
            .list()
            .map_err(|e| anyhow!("{e:#}; the workload runs on in pid {mapped}, pulled"))?;
        if !list.iter().any(|e| key.is(e, uapi::TARGET)) {
            break;
        }
        if sys.now() >= deadline {
            bail!(
                "the source did not release handoff {key} within {t_s} s of the pull; the \
                 workload runs on in pid {mapped}, its pages pulled. On the source, once its \
                 old process ended: `portalctl handoff release {}`",
                key.args()
            );
        }
        sys.sleep(POLL);
    }
    log.outcome = RUNNING;
    let d = sys.now();
    log.step(
        "released",
        t,
        d,
        format!(
            "released by the source after {} s",
            secs(d.saturating_sub(t))
        ),
    );
    log.line(format!(
        "the command runs on in pid {child} (not waited for); total {} s",
        secs(d.saturating_sub(start))
    ));
    Ok(())
}

/// migrate_pages(2) of `pid` from nodes `from` to node `to`: the pages it
/// could not move.
fn migrate_pages(pid: i32, from: &[u32], to: u32) -> Result<u64> {
    let (old, new, maxnode) = node_masks(from, to)?;
    // SAFETY: `old` and `new` are live arrays of `(maxnode - 1) / bits`
    // words each, all that the kernel reads of them for `maxnode`; it
    // writes nothing through them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_migrate_pages,
            libc::c_long::from(pid),
            maxnode,
            old.as_ptr(),
            new.as_ptr(),
        )
    };
    if r < 0 {
        bail!(
            "migrate_pages(2) of pid {pid} from node(s) {} to node {to}: {}",
            nodes_text(from),
            io::Error::last_os_error()
        );
    }
    Ok(u64::try_from(r)?)
}

/// kill(2) of process `pid` (not a group: a `pid` below 1 is EINVAL).
fn signal(pid: i32, sig: Sig) -> io::Result<()> {
    // kill(2) with 0 or a negative pid signals process groups: never.
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill(2) takes no pointer; `pid` names one process.
    if unsafe { libc::kill(pid, sig.number()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The state letter of /proc/PID/stat; `None` if there is no such process.
fn proc_state(pid: i32) -> Result<Option<char>> {
    let path = format!("/proc/{pid}/stat");
    match fs::read_to_string(&path) {
        Ok(text) => stat_state(&text)
            .map(Some)
            .ok_or_else(|| anyhow!("{path}: no state field")),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

/// The host itself: /dev/cxl_switched, procfs and sysfs, signals, the clock.
struct Real {
    dev: Device,
    t0: Instant,
    child: Option<Child>,
}

impl Sys for Real {
    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn list(&mut self) -> Result<Vec<HandoffEntry>> {
        Ok(self.dev.list()?)
    }

    fn export(&mut self, req: &ExportRequest) -> Result<ExportReply> {
        Ok(self.dev.export(req)?)
    }

    fn cancel(&mut self, k: Key) -> Result<()> {
        Ok(self.dev.cancel(k.nid, k.index, k.id)?)
    }

    fn accept(&mut self, k: Key) -> Result<AcceptReply> {
        Ok(self.dev.accept(
            k.nid,
            k.index,
            k.id,
            handoff::ACCEPT_RANGES,
            uapi::MAX_ACCEPT_BLOB,
        )?)
    }

    fn pull(&mut self, k: Key, to_node: i32, batch: u32) -> Result<PullReply> {
        Ok(self.dev.pull(k.nid, k.index, k.id, to_node, batch)?)
    }

    fn release(&mut self, k: Key) -> Result<()> {
        Ok(self.dev.release(k.nid, k.index, k.id)?)
    }

    fn portal_nodes(&mut self) -> Result<Vec<u32>> {
        let text =
            fs::read_to_string(PAGETYPEINFO).with_context(|| format!("reading {PAGETYPEINFO}"))?;
        let pti = PageTypeInfo::parse(&text).with_context(|| format!("parsing {PAGETYPEINFO}"))?;
        Ok(pti.switched_nodes())
    }

    fn online_nodes(&mut self) -> Result<Vec<u32>> {
        let text = fs::read_to_string(ONLINE).with_context(|| format!("reading {ONLINE}"))?;
        parse_node_list(&text).map_err(|e| anyhow!("{ONLINE}: {e}"))
    }

    fn migrate_pages(&mut self, pid: i32, from: &[u32], to: u32) -> Result<u64> {
        migrate_pages(pid, from, to)
    }

    fn default_ranges(&mut self, pid: i32) -> Result<Vec<Range>> {
        handoff::ranges_of(pid)
    }

    fn signal(&mut self, pid: i32, sig: Sig) -> io::Result<()> {
        signal(pid, sig)
    }

    fn proc_state(&mut self, pid: i32) -> Result<Option<char>> {
        proc_state(pid)
    }

    fn find_program(&mut self, program: &OsStr) -> Result<()> {
        find_program(program, std::env::var_os("PATH").as_deref()).map(drop)
    }

    fn spawn(&mut self, argv: &[OsString], env: (&str, &str)) -> Result<u32> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| anyhow!("no COMMAND to start"))?;
        let child = Command::new(program)
            .args(args)
            .env(env.0, env.1)
            .spawn()
            .with_context(|| format!("starting {}", program.to_string_lossy()))?;
        let pid = child.id();
        self.child = Some(child);
        Ok(pid)
    }

    fn child_exit(&mut self) -> Result<Option<String>> {
        match &mut self.child {
            None => Ok(None),
            Some(c) => Ok(c
                .try_wait()
                .context("waiting for the command")?
                .map(|s| s.to_string())),
        }
    }
}

/// Prints the JSON summary with --json.
fn finish(
    log: &Log,
    command: &'static str,
    result: &Result<()>,
    now: Duration,
    json: bool,
) -> Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&log.summary(command, result, now))?
        );
    }
    Ok(())
}

fn try_send(a: &SendArgs, t0: Instant, log: &mut Log) -> Result<()> {
    let blob = match &a.blob {
        Some(p) => fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => Vec::new(),
    };
    let max_blob = usize::try_from(uapi::MAX_BLOB)?;
    if blob.len() > max_blob {
        bail!(
            "--blob: {} bytes, more than the {max_blob} an export takes",
            blob.len()
        );
    }
    let max_ranges = usize::try_from(uapi::MAX_RANGES)?;
    if a.ranges.len() > max_ranges {
        bail!(
            "{} --range, more than the {max_ranges} an export takes",
            a.ranges.len()
        );
    }
    let mut sys = Real {
        dev: Device::open(&a.device.device)?,
        t0,
        child: None,
    };
    let plan = SendPlan {
        pid: a.pid,
        to: a.to,
        node: a.node,
        ranges: a.ranges.clone(),
        blob,
        timeout: Duration::from_secs(a.timeout),
    };
    send(&mut sys, &plan, log)
}

fn try_receive(a: &ReceiveArgs, t0: Instant, log: &mut Log) -> Result<()> {
    let mut sys = Real {
        dev: Device::open(&a.device.device)?,
        t0,
        child: None,
    };
    let plan = ReceivePlan {
        from: a.from,
        node: a.node,
        to_node: a.to_node,
        batch: a.batch,
        timeout: Duration::from_secs(a.timeout),
        command: a.command.clone(),
    };
    // The command, once started, is not waited for: dropping its `Child`
    // leaves it running.
    receive(&mut sys, &plan, log)
}

pub(crate) fn run(args: &MigrateArgs, json: bool) -> Result<()> {
    let t0 = Instant::now();
    let (command, mut log) = match &args.command {
        MigrateCommand::Send(_) => ("send", Log::new(!json, RUNS_HERE)),
        MigrateCommand::Receive(_) => ("receive", Log::new(!json, NOT_ACCEPTED)),
    };
    let result = match &args.command {
        MigrateCommand::Send(a) => {
            log.pid = Some(a.pid);
            try_send(a, t0, &mut log)
        }
        MigrateCommand::Receive(a) => try_receive(a, t0, &mut log),
    };
    finish(&log, command, &result, t0.elapsed(), json)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::Parser;

    const PID: i32 = 1234;
    const KEY: Key = Key {
        nid: 2,
        index: 5,
        id: 0xabc,
    };

    /// A host whose LIST answers follow a script in time, whose clock moves
    /// only when it sleeps, and whose process and command are pretend.
    struct Fake {
        t: Duration,
        /// From each time on (ascending), LIST answers this.
        script: Vec<(Duration, Vec<HandoffEntry>)>,
        /// What was asked, and when.
        calls: Vec<(Duration, String)>,
        /// The process's state letter; `None`: gone.
        state: Option<char>,
        /// SIGSTOP stops it.
        stops: bool,
        /// What SIGKILL leaves.
        kill_leaves: Option<char>,
        export_fails: bool,
        cancel_fails: bool,
        /// RELEASEs that fail with EBUSY first.
        release_busy: u32,
        portal: Vec<u32>,
        online: Vec<u32>,
        /// Pages PULL has still to move.
        left: u64,
        /// The command exits then.
        child_exits_at: Option<Duration>,
    }

    fn fake(script: Vec<(u64, Vec<HandoffEntry>)>) -> Fake {
        Fake {
            t: Duration::ZERO,
            script: script
                .into_iter()
                .map(|(at, v)| (Duration::from_millis(at), v))
                .collect(),
            calls: Vec::new(),
            state: Some('S'),
            stops: true,
            kill_leaves: None,
            export_fails: false,
            cancel_fails: false,
            release_busy: 0,
            portal: vec![2],
            online: vec![0, 1, 2],
            left: 10_000,
            child_exits_at: None,
        }
    }

    impl Fake {
        fn call(&mut self, what: String) {
            self.calls.push((self.t, what));
        }

        fn names(&self) -> Vec<&str> {
            self.calls.iter().map(|(_, c)| c.as_str()).collect()
        }

        fn when(&self, what: &str) -> Option<Duration> {
            self.calls.iter().find(|(_, c)| c == what).map(|(t, _)| *t)
        }

        fn refused(request: uapi::Request, errno: i32) -> anyhow::Error {
            DeviceError {
                path: uapi::DEVICE.into(),
                request,
                error: io::Error::from_raw_os_error(errno),
            }
            .into()
        }
    }

    impl Sys for Fake {
        fn now(&self) -> Duration {
            self.t
        }

        fn sleep(&mut self, d: Duration) {
            self.t += d;
        }

        fn list(&mut self) -> Result<Vec<HandoffEntry>> {
            Ok(self
                .script
                .iter()
                .rev()
                .find(|(at, _)| *at <= self.t)
                .map(|(_, v)| v.clone())
                .unwrap_or_default())
        }

        fn export(&mut self, req: &ExportRequest) -> Result<ExportReply> {
            self.call(format!(
                "export pid {} node {} to {} ranges {} blob {}",
                req.pid,
                req.nid,
                req.target,
                req.ranges.len(),
                req.blob.len()
            ));
            if self.export_fails {
                return Err(Fake::refused(uapi::Request::Export, libc::EINVAL));
            }
            Ok(ExportReply {
                id: KEY.id,
                index: KEY.index,
                pages: 100,
            })
        }

        fn cancel(&mut self, k: Key) -> Result<()> {
            self.call(format!("cancel {}", k.value()));
            if self.cancel_fails {
                return Err(Fake::refused(uapi::Request::Cancel, libc::EINVAL));
            }
            Ok(())
        }

        fn accept(&mut self, k: Key) -> Result<AcceptReply> {
            self.call(format!("accept {}", k.value()));
            Ok(AcceptReply {
                ranges: vec![Range {
                    start: 0x7f00_0000_0000,
                    len: 1 << 20,
                }],
                blob: vec![0; 16],
                pages: 256,
            })
        }

        fn pull(&mut self, k: Key, to_node: i32, batch: u32) -> Result<PullReply> {
            self.call(format!("pull {} to {to_node}", k.value()));
            let pulled = self.left.min(u64::from(batch));
            self.left -= pulled;
            Ok(PullReply {
                pulled,
                left: self.left,
            })
        }

        fn release(&mut self, k: Key) -> Result<()> {
            self.call(format!("release {}", k.value()));
            if self.release_busy > 0 {
                self.release_busy -= 1;
                return Err(Fake::refused(uapi::Request::Release, libc::EBUSY));
            }
            Ok(())
        }

        fn portal_nodes(&mut self) -> Result<Vec<u32>> {
            Ok(self.portal.clone())
        }

        fn online_nodes(&mut self) -> Result<Vec<u32>> {
            Ok(self.online.clone())
        }

        fn migrate_pages(&mut self, pid: i32, from: &[u32], to: u32) -> Result<u64> {
            self.call(format!("migrate {pid} {} -> {to}", nodes_text(from)));
            Ok(3)
        }

        fn default_ranges(&mut self, _pid: i32) -> Result<Vec<Range>> {
            Ok(vec![Range::default(); 2])
        }

        fn signal(&mut self, pid: i32, sig: Sig) -> io::Result<()> {
            self.call(format!("{} {pid}", sig.name()));
            if self.state.is_none() {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            match sig {
                Sig::Stop if self.stops => self.state = Some('T'),
                Sig::Stop => {}
                Sig::Cont => self.state = Some('S'),
                Sig::Kill => self.state = self.kill_leaves,
            }
            Ok(())
        }

        fn proc_state(&mut self, _pid: i32) -> Result<Option<char>> {
            Ok(self.state)
        }

        fn find_program(&mut self, program: &OsStr) -> Result<()> {
            if program == "missing" {
                bail!("COMMAND missing: not found in PATH");
            }
            Ok(())
        }

        fn spawn(&mut self, argv: &[OsString], env: (&str, &str)) -> Result<u32> {
            self.call(format!("spawn {} [{}={}]", shown(argv), env.0, env.1));
            Ok(777)
        }

        fn child_exit(&mut self) -> Result<Option<String>> {
            Ok(self
                .child_exits_at
                .filter(|at| *at <= self.t)
                .map(|_| "exit status: 3".into()))
        }
    }

    fn source(state: u32) -> HandoffEntry {
        HandoffEntry {
            id: KEY.id,
            index: KEY.index,
            state,
            role: uapi::SOURCE,
            peer: 1,
            nid: KEY.nid,
            blocks: 1,
            pages: 100,
            pid: PID,
            pinned: if state >= uapi::RETURNED { 0 } else { 100 },
            ..HandoffEntry::default()
        }
    }

    fn plan() -> SendPlan {
        SendPlan {
            pid: PID,
            to: 1,
            node: None,
            ranges: vec![],
            blob: vec![1, 2, 3],
            timeout: Duration::from_secs(900),
        }
    }

    fn run_send(f: &mut Fake, p: &SendPlan) -> (Log, Result<()>) {
        let mut log = Log::new(false, RUNS_HERE);
        let r = send(f, p, &mut log);
        (log, r)
    }

    fn step_names(log: &Log) -> Vec<&'static str> {
        log.steps.iter().map(|s| s.step).collect()
    }

    const OK_SEND: &[&str] = &[
        "node",
        "migrate-running",
        "stop",
        "migrate-stopped",
        "export",
        "accepted",
        "pulled",
        "kill",
        "release",
    ];

    #[test]
    fn send_moves_stops_exports_and_releases_after_the_pull_and_the_exit() {
        let mut f = fake(vec![
            (0, vec![source(uapi::OFFERED)]),
            (2000, vec![source(uapi::ACCEPTED)]),
            (5000, vec![source(uapi::PULLED)]),
        ]);
        let (log, r) = run_send(&mut f, &plan());
        r.expect("moved");
        assert_eq!(
            f.names(),
            [
                "migrate 1234 0,1 -> 2",
                "SIGSTOP 1234",
                "migrate 1234 0,1 -> 2",
                "export pid 1234 node 2 to 1 ranges 2 blob 3",
                "SIGKILL 1234",
                "release 2:5:0xabc",
            ]
        );
        assert!(f.when("release 2:5:0xabc") >= Some(Duration::from_secs(5)));
        assert_eq!(step_names(&log), OK_SEND);
        assert_eq!(log.outcome, RELEASED);
        let has = |s: &str| log.lines.iter().any(|l| l.contains(s));
        assert!(has("accepted by slot 1 after 2.0 s"), "{:?}", log.lines);
        assert!(has("pulled after 3.0 s"), "{:?}", log.lines);
        assert!(has("released: 100 pages unpinned"), "{:?}", log.lines);
        assert!(has("3 pages not moved"), "{:?}", log.lines);
    }

    #[test]
    fn send_releases_only_once_the_old_process_is_gone() {
        let script = || {
            vec![
                (0, vec![source(uapi::OFFERED)]),
                (1000, vec![source(uapi::PULLED)]),
            ]
        };
        // Stuck in the kernel: no RELEASE.
        let mut f = fake(script());
        f.kill_leaves = Some('D');
        let (log, r) = run_send(&mut f, &plan());
        let e = r.expect_err("it never ends");
        assert!(e.to_string().contains("did not end within 5 s"), "{e}");
        assert!(!f.names().iter().any(|c| c.starts_with("release")));
        assert_eq!(log.outcome, RELEASE_PENDING);
        // A zombie has ended.
        let mut f = fake(script());
        f.kill_leaves = Some('Z');
        let (_, r) = run_send(&mut f, &plan());
        r.expect("released");
        let kill = f.when("SIGKILL 1234").expect("killed");
        assert!(f.when("release 2:5:0xabc") >= Some(kill));
        assert!(f.when("SIGKILL 1234") >= Some(Duration::from_secs(1)));
    }

    #[test]
    fn send_resumes_and_fails_when_the_offer_leaves_the_list() {
        let mut f = fake(vec![(0, vec![source(uapi::OFFERED)]), (1000, vec![])]);
        let (log, r) = run_send(&mut f, &plan());
        let e = r.expect_err("gone");
        assert!(
            e.to_string()
                .contains("left LIST before the target accepted"),
            "{e}"
        );
        assert!(e.to_string().contains("runs on here"), "{e}");
        assert_eq!(f.names().last(), Some(&"SIGCONT 1234"));
        assert!(!f.names().iter().any(|c| c.starts_with("cancel")));
        assert_eq!(log.outcome, RUNS_HERE);
    }

    #[test]
    fn send_does_not_resume_when_an_accepted_handoff_leaves_the_list() {
        let mut f = fake(vec![
            (0, vec![source(uapi::OFFERED)]),
            (1000, vec![source(uapi::ACCEPTED)]),
            (2000, vec![]),
        ]);
        let (log, r) = run_send(&mut f, &plan());
        let e = r.expect_err("gone");
        assert!(e.to_string().contains("stays stopped"), "{e}");
        assert!(!f.names().contains(&"SIGCONT 1234"));
        assert_eq!(log.outcome, LOST);
    }

    #[test]
    fn send_resumes_a_returned_handoff_and_acknowledges_it() {
        let mut f = fake(vec![
            (0, vec![source(uapi::OFFERED)]),
            (1000, vec![source(uapi::RETURNED)]),
        ]);
        let (log, r) = run_send(&mut f, &plan());
        let e = r.expect_err("returned");
        assert!(e.to_string().contains("returned"), "{e}");
        let n = f.names();
        assert_eq!(&n[n.len() - 2..], ["SIGCONT 1234", "cancel 2:5:0xabc"]);
        assert_eq!(log.outcome, RUNS_HERE);
        assert_eq!(step_names(&log).last(), Some(&"acknowledge"));
    }

    #[test]
    fn send_leaves_a_lost_workload_stopped_and_unacknowledged() {
        let mut f = fake(vec![
            (0, vec![source(uapi::OFFERED)]),
            (1000, vec![source(uapi::ACCEPTED)]),
            (3000, vec![source(uapi::LOST)]),
        ]);
        let (log, r) = run_send(&mut f, &plan());
        let e = r.expect_err("lost");
        assert!(e.to_string().contains("do not resume it"), "{e}");
        let n = f.names();
        assert!(!n
            .iter()
            .any(|c| c.starts_with("SIGCONT") || c.starts_with("SIGKILL")));
        assert!(!n.iter().any(|c| c.starts_with("cancel")));
        assert_eq!(log.outcome, LOST);
    }

    #[test]
    fn send_cancels_and_resumes_on_a_timeout_before_the_accept() {
        let mut f = fake(vec![(0, vec![source(uapi::OFFERED)])]);
        let p = SendPlan {
            timeout: Duration::from_secs(10),
            ..plan()
        };
        let (log, r) = run_send(&mut f, &p);
        let e = r.expect_err("timeout");
        assert!(e.to_string().contains("did not accept"), "{e}");
        let n = f.names();
        assert_eq!(&n[n.len() - 2..], ["cancel 2:5:0xabc", "SIGCONT 1234"]);
        let at = f.when("cancel 2:5:0xabc").expect("cancelled");
        assert!(
            at >= Duration::from_secs(10) && at < Duration::from_secs(11),
            "{at:?}"
        );
        assert_eq!(log.outcome, RUNS_HERE);
        // A CANCEL that fails may mean an accept just now: no resume.
        let mut f = fake(vec![(0, vec![source(uapi::OFFERED)])]);
        f.cancel_fails = true;
        let (log, r) = run_send(&mut f, &p);
        assert!(r.is_err());
        assert!(!f.names().contains(&"SIGCONT 1234"));
        assert_eq!(log.outcome, IN_FLIGHT);
    }

    #[test]
    fn send_neither_cancels_nor_resumes_on_a_timeout_after_the_accept() {
        let mut f = fake(vec![
            (0, vec![source(uapi::OFFERED)]),
            (1000, vec![source(uapi::ACCEPTED)]),
        ]);
        let p = SendPlan {
            timeout: Duration::from_secs(10),
            ..plan()
        };
        let (log, r) = run_send(&mut f, &p);
        let e = r.expect_err("timeout");
        assert!(e.to_string().contains("stays in flight"), "{e}");
        assert!(e.to_string().contains("portalctl handoff list"), "{e}");
        let n = f.names();
        assert!(!n
            .iter()
            .any(|c| c.starts_with("cancel") || c.starts_with("SIGCONT")));
        assert!(!n
            .iter()
            .any(|c| c.starts_with("SIGKILL") || c.starts_with("release")));
        assert_eq!(log.outcome, IN_FLIGHT);
    }

    #[test]
    fn send_resumes_the_process_when_the_export_fails() {
        let mut f = fake(vec![]);
        f.export_fails = true;
        let (log, r) = run_send(&mut f, &plan());
        let e = r.expect_err("refused");
        assert!(e.to_string().contains("EXPORT: Invalid argument"), "{e}");
        assert!(e.to_string().contains("resumed pid 1234"), "{e}");
        assert_eq!(f.names().last(), Some(&"SIGCONT 1234"));
        assert_eq!(log.outcome, RUNS_HERE);
        assert_eq!(log.handoff, None);
    }

    #[test]
    fn send_resumes_a_process_that_does_not_stop_and_leaves_one_stopped_before() {
        let mut f = fake(vec![]);
        f.stops = false;
        let (_, r) = run_send(&mut f, &plan());
        let e = r.expect_err("not stopped");
        assert!(e.to_string().contains("did not stop within 5 s"), "{e}");
        assert!(!f.names().iter().any(|c| c.starts_with("export")));
        assert_eq!(f.names().last(), Some(&"SIGCONT 1234"));
        // Stopped by someone else first: a failure leaves it stopped.
        let mut f = fake(vec![]);
        f.state = Some('T');
        f.export_fails = true;
        let (log, r) = run_send(&mut f, &plan());
        assert!(r.is_err());
        assert!(!f.names().contains(&"SIGCONT 1234"));
        assert_eq!(log.outcome, STOPPED);
    }

    #[test]
    fn send_takes_the_one_switched_node_or_asks_for_node() {
        for (portal, want) in [
            (vec![], "no node of type Switched"),
            (vec![2, 3], "2 nodes of type Switched (2,3)"),
        ] {
            let mut f = fake(vec![]);
            f.portal = portal;
            let (_, r) = run_send(&mut f, &plan());
            let e = r.expect_err("no node").to_string();
            assert!(e.contains(want) && e.contains("--node"), "{e}");
            assert!(f.calls.is_empty(), "{:?}", f.calls);
        }
        let mut f = fake(vec![]);
        f.portal = vec![2, 3];
        f.online = vec![0, 1, 2, 3];
        f.export_fails = true;
        let (_, _) = run_send(
            &mut f,
            &SendPlan {
                node: Some(3),
                ..plan()
            },
        );
        assert_eq!(f.names()[0], "migrate 1234 0,1,2 -> 3");
        let mut f = fake(vec![]);
        let (_, r) = run_send(
            &mut f,
            &SendPlan {
                node: Some(7),
                ..plan()
            },
        );
        assert!(r.is_err_and(|e| e.to_string().contains("node 7 is not online")));
        assert!(f.calls.is_empty());
    }

    #[test]
    fn send_releases_again_while_the_kernel_says_busy() {
        let script = || vec![(0, vec![source(uapi::PULLED)])];
        let mut f = fake(script());
        f.release_busy = 2;
        let (log, r) = run_send(&mut f, &plan());
        r.expect("released on the third");
        assert_eq!(
            f.names()
                .iter()
                .filter(|c| c.starts_with("release"))
                .count(),
            3
        );
        assert_eq!(log.outcome, RELEASED);
        let mut f = fake(script());
        f.release_busy = RELEASE_TRIES;
        let (log, r) = run_send(&mut f, &plan());
        assert!(r.is_err_and(|e| e.to_string().contains("release it again")));
        assert_eq!(log.outcome, RELEASE_PENDING);
    }

    fn target(state: u32, peer: u32, nid: i32, index: u32, pid: i32) -> HandoffEntry {
        HandoffEntry {
            id: 0x100 + u64::from(index),
            index,
            state,
            role: uapi::TARGET,
            peer,
            nid,
            blocks: 1,
            pages: 256,
            blob_bytes: 16,
            pid,
            ..HandoffEntry::default()
        }
    }

    #[test]
    fn receive_picks_only_an_offer_addressed_to_it() {
        let entries = [
            // This host's own offer, and one it accepted already.
            HandoffEntry {
                role: uapi::SOURCE,
                ..target(uapi::OFFERED, 1, 2, 0, 0)
            },
            target(uapi::ACCEPTED, 1, 2, 1, 0),
            // From another slot, on another node.
            target(uapi::OFFERED, 3, 2, 2, 0),
            target(uapi::OFFERED, 1, 4, 3, 0),
            target(uapi::OFFERED, 1, 2, 4, 0),
        ];
        let idx = |from, node| -> Vec<u32> {
            offers_for(&entries, from, node)
                .iter()
                .map(|e| e.index)
                .collect()
        };
        assert_eq!(idx(Some(1), Some(2)), [4]);
        assert_eq!(idx(Some(3), None), [2]);
        assert_eq!(idx(None, Some(4)), [3]);
        assert_eq!(idx(None, None), [2, 3, 4]);
        assert_eq!(idx(Some(9), None), Vec::<u32>::new());
    }

    fn rplan(command: &[&str]) -> ReceivePlan {
        ReceivePlan {
            from: Some(1),
            node: Some(2),
            to_node: 0,
            batch: 4096,
            timeout: Duration::from_secs(900),
            command: command.iter().map(OsString::from).collect(),
        }
    }

    fn run_receive(f: &mut Fake, p: &ReceivePlan) -> (Log, Result<()>) {
        let mut log = Log::new(false, NOT_ACCEPTED);
        let r = receive(f, p, &mut log);
        (log, r)
    }

    /// Others' offers throughout; ours from 1 s, accepted from 1.5 s, mapped
    /// from 3 s, released at 10 s.
    fn receive_script() -> Vec<(u64, Vec<HandoffEntry>)> {
        let others = vec![
            target(uapi::OFFERED, 3, 2, 2, 0),
            target(uapi::OFFERED, 1, 4, 3, 0),
        ];
        let with = |e: Option<HandoffEntry>| {
            let mut v = others.clone();
            v.extend(e);
            v
        };
        vec![
            (0, with(None)),
            (1000, with(Some(target(uapi::OFFERED, 1, 2, 4, 0)))),
            (1500, with(Some(target(uapi::ACCEPTED, 1, 2, 4, 0)))),
            (3000, with(Some(target(uapi::ACCEPTED, 1, 2, 4, 4321)))),
            (10_000, with(None)),
        ]
    }

    const OK_RECEIVE: &[&str] = &["offer", "accept", "start", "mapped", "pull", "released"];

    #[test]
    fn receive_starts_the_command_with_the_handoff_pulls_and_waits_for_the_release() {
        let mut f = fake(receive_script());
        let (log, r) = run_receive(&mut f, &rplan(&["cxlsw-workload", "--import", "{}", "x{}"]));
        r.expect("runs here");
        assert_eq!(
            f.names()[..2],
            [
                "accept 2:4:0x104",
                "spawn cxlsw-workload --import 2:4:0x104 x{} [CXLSW_HANDOFF=2:4:0x104]",
            ]
        );
        assert_eq!(f.names()[2..].len(), 3, "{:?}", f.calls);
        assert!(f.names()[2..].iter().all(|c| *c == "pull 2:4:0x104 to 0"));
        assert!(f.when("pull 2:4:0x104 to 0") >= Some(Duration::from_secs(3)));
        assert_eq!(step_names(&log), OK_RECEIVE);
        assert_eq!(log.outcome, RUNNING);
        assert_eq!((log.command_pid, log.mapped_pid), (Some(777), Some(4321)));
        let has = |s: &str| log.lines.iter().any(|l| l.contains(s));
        assert!(
            has("offer 4/0x104 from slot 1: 256 pages, 16 blob bytes"),
            "{:?}",
            log.lines
        );
        assert!(has("pulled 4096/10000 pages"), "{:?}", log.lines);
        assert!(has("mapped into pid 4321 after"), "{:?}", log.lines);
        assert!(has("released by the source after"), "{:?}", log.lines);
        assert!(has("runs on in pid 777"), "{:?}", log.lines);
        // Nothing waits for the command: it is never asked how it ended
        // after the map, and the run ends at the release.
        assert!(f.t >= Duration::from_secs(10) && f.t < Duration::from_secs(11));
    }

    #[test]
    fn the_handoff_value_goes_into_the_environment_and_every_exact_braces() {
        let argv: Vec<OsString> = ["qemu", "{}", "-incoming", "{}", "{}x", "{ }"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(KEY.value(), "2:5:0xabc");
        assert_eq!(
            command_line(&argv, &KEY.value()),
            ["qemu", "2:5:0xabc", "-incoming", "2:5:0xabc", "{}x", "{ }"].map(OsString::from)
        );
        assert_eq!(
            Key {
                nid: 10,
                index: 300,
                id: 0x5e1f_00d2_c4a3_b001
            }
            .value(),
            "10:300:0x5e1f00d2c4a3b001"
        );
    }

    #[test]
    fn receive_refuses_two_matching_offers_and_times_out_without_one() {
        let mut f = fake(vec![(
            0,
            vec![
                target(uapi::OFFERED, 1, 2, 4, 0),
                target(uapi::OFFERED, 1, 2, 6, 0),
            ],
        )]);
        let (log, r) = run_receive(&mut f, &rplan(&["prog"]));
        let e = r.expect_err("two").to_string();
        assert!(e.starts_with("2 offers to this host match"), "{e}");
        assert!(f.calls.is_empty());
        assert_eq!(log.outcome, NOT_ACCEPTED);
        let mut f = fake(vec![(0, vec![target(uapi::OFFERED, 3, 2, 4, 0)])]);
        let p = ReceivePlan {
            timeout: Duration::from_secs(30),
            ..rplan(&["prog"])
        };
        let (_, r) = run_receive(&mut f, &p);
        let e = r.expect_err("none").to_string();
        assert_eq!(e, "no offer to this host from slot 1 on node 2 within 30 s");
        assert!(f.calls.is_empty() && f.t >= Duration::from_secs(30));
        // A command that cannot start: nothing is accepted.
        let mut f = fake(receive_script());
        let (_, r) = run_receive(&mut f, &rplan(&["missing"]));
        assert!(r.is_err_and(|e| e.to_string().contains("not found in PATH")));
        assert!(f.calls.is_empty());
    }

    #[test]
    fn receive_fails_when_the_command_exits_before_it_maps() {
        let mut script = receive_script();
        // Never mapped.
        script.retain(|(at, _)| *at < 3000);
        let mut f = fake(script);
        f.child_exits_at = Some(Duration::from_secs(2));
        let (log, r) = run_receive(&mut f, &rplan(&["prog"]));
        let e = r.expect_err("exited").to_string();
        assert!(
            e.contains("exited (exit status: 3) before it mapped"),
            "{e}"
        );
        assert!(e.contains("CXLSW_HANDOFF=2:4:0x104"), "{e}");
        assert!(!f.names().iter().any(|c| c.starts_with("pull")));
        assert_eq!(log.outcome, ACCEPTED);
    }

    #[test]
    fn receive_leaves_the_workload_running_when_the_source_does_not_release() {
        let mut script = receive_script();
        script.retain(|(at, _)| *at < 10_000);
        let mut f = fake(script);
        let p = ReceivePlan {
            timeout: Duration::from_secs(20),
            ..rplan(&["prog"])
        };
        let (log, r) = run_receive(&mut f, &p);
        let e = r.expect_err("not released").to_string();
        assert!(
            e.contains("did not release") && e.contains("runs on in pid 4321"),
            "{e}"
        );
        assert_eq!(log.outcome, PULLED);
    }

    #[test]
    fn the_json_summary_has_every_step_with_its_time_and_the_outcome() {
        let mut f = fake(vec![
            (0, vec![source(uapi::OFFERED)]),
            (2000, vec![source(uapi::ACCEPTED)]),
            (5000, vec![source(uapi::PULLED)]),
        ]);
        let (log, r) = run_send(&mut f, &plan());
        let v = serde_json::to_value(log.summary("send", &r, f.now())).expect("JSON");
        assert_eq!(v["command"], "send");
        assert_eq!(v["ok"], true);
        assert_eq!(v["outcome"], "released");
        assert_eq!(v["error"], serde_json::Value::Null);
        assert_eq!(v["pid"], 1234);
        assert_eq!(
            v["handoff"],
            serde_json::json!({"nid": 2, "index": 5, "id": "0xabc"})
        );
        let steps = v["steps"].as_array().expect("steps");
        let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
        assert_eq!(names, OK_SEND);
        for s in steps {
            assert!(s["ms"].is_u64() && s["at_ms"].is_u64() && s["message"].is_string());
        }
        let accepted = &steps[5];
        assert_eq!(
            (accepted["ms"].as_u64(), accepted["at_ms"].as_u64()),
            (Some(2000), Some(0))
        );
        // Stopped from 0 until killed at 5 s.
        assert_eq!(v["stopped_ms"], 5000);
        assert!(v["total_ms"].as_u64() >= Some(5000));

        let mut f = fake(vec![]);
        f.export_fails = true;
        let (log, r) = run_send(&mut f, &plan());
        let v = serde_json::to_value(log.summary("send", &r, f.now())).expect("JSON");
        assert_eq!(
            (v["ok"].as_bool(), v["outcome"].as_str()),
            (Some(false), Some("runs-here"))
        );
        assert!(v["error"].as_str().is_some_and(|e| e.contains("EXPORT")));
        assert_eq!(v["handoff"], serde_json::Value::Null);
        let names: Vec<&str> = v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|s| s["step"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "node",
                "migrate-running",
                "stop",
                "migrate-stopped",
                "resume"
            ]
        );

        let mut f = fake(receive_script());
        let (log, r) = run_receive(&mut f, &rplan(&["prog", "{}"]));
        let v = serde_json::to_value(log.summary("receive", &r, f.now())).expect("JSON");
        assert_eq!(
            (v["ok"].as_bool(), v["outcome"].as_str()),
            (Some(true), Some("running"))
        );
        assert_eq!(
            (v["command_pid"].as_u64(), v["mapped_pid"].as_u64()),
            (Some(777), Some(4321))
        );
        assert!(v.get("pid").is_none() && v.get("stopped_ms").is_none());
        let names: Vec<&str> = v["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|s| s["step"].as_str())
            .collect();
        assert_eq!(names, OK_RECEIVE);
    }

    #[test]
    fn node_lists_states_and_masks_parse() {
        assert_eq!(parse_node_list("0-1,3\n"), Ok(vec![0, 1, 3]));
        assert_eq!(parse_node_list("0\n"), Ok(vec![0]));
        assert_eq!(parse_node_list("\n"), Ok(vec![]));
        assert!(parse_node_list("3-1").is_err());
        assert!(parse_node_list("x").is_err_and(|e| e.contains("'x'")));
        assert_eq!(stat_state("1234 (a) b) c) T 1 2"), Some('T'));
        assert_eq!(stat_state("1 (sh) S 0"), Some('S'));
        assert_eq!(stat_state("garbage"), None);
        let (old, new, maxnode) = node_masks(&[0, 1], 2).expect("masks");
        assert_eq!((old, new, maxnode), (vec![0b11], vec![0b100], 65));
        let (old, new, maxnode) = node_masks(&[0, 70], 2).expect("masks");
        assert_eq!((old, new, maxnode), (vec![1, 1 << 6], vec![0b100, 0], 129));
        let (old, _, _) = node_masks(&[], 0).expect("masks");
        assert_eq!(old, vec![0]);
    }

    #[test]
    fn a_command_is_found_by_path_or_in_path() {
        let path = OsString::from("/nonexistent:/bin:/usr/bin");
        assert!(find_program(OsStr::new("sh"), Some(&path)).is_ok());
        assert!(find_program(OsStr::new("/bin/sh"), None).is_ok());
        assert!(
            find_program(OsStr::new("no-such-program-here"), Some(&path))
                .is_err_and(|e| e.to_string().contains("not found in PATH"))
        );
        assert!(find_program(OsStr::new("/nonexistent/x"), None)
            .is_err_and(|e| e.to_string().contains("no such executable file")));
        // A directory is no program.
        assert!(find_program(OsStr::new("/bin"), None).is_err());
    }

    #[test]
    fn the_real_calls_work_on_this_process_and_a_child() {
        let me = i32::try_from(std::process::id()).expect("a pid");
        // Nothing to move from no node: the call is well formed, moves nothing.
        assert_eq!(migrate_pages(me, &[], 0).expect("migrate_pages"), 0);
        // From node 0 to itself: nothing to move either.
        assert_eq!(migrate_pages(me, &[0], 0).expect("migrate_pages"), 0);
        // The leader thread may run or wait for the test threads.
        assert!(proc_state(me).expect("stat").is_some());
        assert!(signal(0, Sig::Cont).is_err_and(|e| e.raw_os_error() == Some(libc::EINVAL)));
        assert!(signal(-1, Sig::Kill).is_err());
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = i32::try_from(child.id()).expect("a pid");
        signal(pid, Sig::Stop).expect("SIGSTOP");
        let mut state = None;
        for _ in 0..500 {
            state = proc_state(pid).expect("stat");
            if state == Some('T') {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(state, Some('T'));
        signal(pid, Sig::Kill).expect("SIGKILL");
        child.wait().expect("reaped");
        assert_eq!(proc_state(pid).expect("stat"), None);
        assert!(signal(pid, Sig::Cont).is_err_and(|e| e.raw_os_error() == Some(libc::ESRCH)));
    }

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: MigrateCommand,
    }

    #[test]
    fn the_command_lines_parse_with_their_defaults() {
        let c = Cli::try_parse_from(["t", "send", "--pid", "42", "--to", "1"]).expect("send");
        let MigrateCommand::Send(a) = c.command else {
            panic!("not send");
        };
        assert_eq!((a.pid, a.to, a.node, a.timeout), (42, 1, None, 900));
        assert_eq!(a.device.device, PathBuf::from(uapi::DEVICE));
        let c = Cli::try_parse_from([
            "t",
            "receive",
            "--from",
            "0",
            "--",
            "cxlsw-workload",
            "--import",
            "{}",
        ])
        .expect("receive");
        let MigrateCommand::Receive(a) = c.command else {
            panic!("not receive");
        };
        assert_eq!(
            (a.from, a.node, a.to_node, a.batch, a.timeout),
            (Some(0), None, 0, 4096, 900)
        );
        assert_eq!(
            a.command,
            ["cxlsw-workload", "--import", "{}"].map(OsString::from)
        );
        for bad in [
            &["t", "receive"][..],
            &["t", "send", "--pid", "0", "--to", "1"],
            &["t", "send", "--pid", "-1", "--to", "1"],
            &["t", "send", "--pid", "1", "--to", "1", "--timeout", "0"],
            &["t", "send", "--pid", "1", "--to", "1", "--node", "-2"],
            &["t", "receive", "--batch", "0", "--", "x"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
