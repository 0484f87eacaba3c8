//! `portalctl portal suspects|fence-confirm`: the hosts of a bound portal
//! that stopped renewing their lease, and the confirmation that one is off,
//! through the driver's sysfs files.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

#[derive(Args, Debug)]
pub(crate) struct SuspectsArgs {
    /// The portal's dax device, as bound to cxl_switched (e.g. dax0.0).
    pub(crate) dax: String,

    /// Root under which /sys is read (default /).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_root())]
    pub(crate) root: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct FenceConfirmArgs {
    /// The portal's dax device, as bound to cxl_switched (e.g. dax0.0).
    pub(crate) dax: String,

    /// The suspect's host slot, as `suspects` lists it.
    #[arg(long)]
    pub(crate) slot: u32,

    /// The suspect's UUID (default: the one `suspects` lists for the slot);
    /// give it to be sure to confirm the host you fenced, not a later one.
    #[arg(long)]
    pub(crate) uuid: Option<String>,

    /// Root under which /sys is read and written (default /).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_root())]
    pub(crate) root: PathBuf,
}

/// One line of `suspects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Suspect {
    pub(crate) slot: u32,
    /// `None` for a slot that reads invalid.
    pub(crate) uuid: Option<String>,
    pub(crate) epoch: u32,
    pub(crate) silent_ms: u64,
    pub(crate) confirmed: bool,
}

fn dir(root: &Path, dax: &str) -> PathBuf {
    root.join("sys/bus/dax/devices")
        .join(dax)
        .join("cxl_switched")
}

/// Parses `suspects`: "SLOT UUID epoch E silent MS confirmed|unconfirmed".
pub(crate) fn parse(path: &Path, text: &str) -> Result<Vec<Suspect>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(why) = line.strip_prefix("none (") {
            bail!(
                "{}: this host is no member of the portal ({}",
                path.display(),
                why
            );
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("{}:{}: unexpected line '{line}'", path.display(), n + 1);
        let [slot, uuid, "epoch", epoch, "silent", ms, state] = w[..] else {
            bail!(bad());
        };
        out.push(Suspect {
            slot: slot.parse().with_context(bad)?,
            uuid: (uuid != "-").then(|| uuid.to_owned()),
            epoch: epoch.parse().with_context(bad)?,
            silent_ms: ms.parse().with_context(bad)?,
            confirmed: match state {
                "confirmed" => true,
                "unconfirmed" => false,
                _ => bail!(bad()),
            },
        });
    }
    Ok(out)
}

fn read_suspects(root: &Path, dax: &str) -> Result<(PathBuf, Vec<Suspect>)> {
    let path = dir(root, dax).join("suspects");
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is {dax} a portal bound to cxl_switched?)",
            path.display()
        )
    })?;
    let s = parse(&path, &text)?;
    Ok((path, s))
}

pub(crate) fn run_suspects(a: &SuspectsArgs, json: bool) -> Result<()> {
    let (_, suspects) = read_suspects(&a.root, &a.dax)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&suspects)?);
        return Ok(());
    }
    if suspects.is_empty() {
        println!("{}: no suspects: every member renews its lease", a.dax);
        return Ok(());
    }
    println!("SLOT  UUID                                  EPOCH  SILENT      STATE");
    for s in &suspects {
        println!(
            "{:<5} {:<37} {:<6} {:<11} {}",
            s.slot,
            s.uuid.as_deref().unwrap_or("-"),
            s.epoch,
            format!("{} ms", s.silent_ms),
            if s.confirmed {
                "confirmed off, to be reaped"
            } else {
                "suspect: fence it, then confirm"
            }
        );
    }
    Ok(())
}

pub(crate) fn run_fence_confirm(a: &FenceConfirmArgs, json: bool) -> Result<()> {
    let (path, suspects) = read_suspects(&a.root, &a.dax)?;
    let Some(s) = suspects.iter().find(|s| s.slot == a.slot) else {
        bail!(
            "{}: slot {} is no suspect (it renews its lease, or is free): nothing to confirm",
            path.display(),
            a.slot
        );
    };
    let Some(listed) = s.uuid.as_deref() else {
        bail!(
            "{}: slot {} reads invalid: its host cannot be named",
            path.display(),
            a.slot
        );
    };
    if let Some(u) = &a.uuid {
        if !u.eq_ignore_ascii_case(listed) {
            bail!(
                "{}: slot {} holds host {listed}, not {u}: not confirmed",
                path.display(),
                a.slot
            );
        }
    }
    let target = dir(&a.root, &a.dax).join("fence_confirm");
    fs::write(&target, format!("{} {listed}\n", a.slot))
        .with_context(|| format!("writing {}", target.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"dax": a.dax, "slot": a.slot, "uuid": listed, "confirmed": true})
        );
    } else {
        println!(
            "{}: host in slot {} ({listed}) confirmed off; the next heartbeat reaps it",
            a.dax, a.slot
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_drivers_lines() {
        let p = Path::new("suspects");
        let s = parse(
            p,
            "3 5b0c0d4e-8f4a-4c1b-9d2e-3f6a7b8c9d0e epoch 1 silent 12040 unconfirmed\n\
             5 - epoch 0 silent 9000 confirmed\n",
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            Suspect {
                slot: 3,
                uuid: Some("5b0c0d4e-8f4a-4c1b-9d2e-3f6a7b8c9d0e".into()),
                epoch: 1,
                silent_ms: 12040,
                confirmed: false
            }
        );
        assert_eq!((s[1].uuid.as_deref(), s[1].confirmed), (None, true));
        assert!(parse(p, "").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let p = Path::new("x/suspects");
        let e = parse(p, "3 u epoch 1 silent soon unconfirmed\n").unwrap_err();
        assert!(format!("{e:#}").contains("x/suspects:1: unexpected line"));
        let e = parse(p, "none (not a member)\n").unwrap_err();
        assert!(format!("{e:#}").contains("no member"));
    }
}
