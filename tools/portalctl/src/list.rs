//! `portalctl list`: the nodes of this host, portals marked.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::pagetypeinfo::{PageTypeInfo, SWITCHED};

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Read this file instead of /proc/pagetypeinfo (e.g. one captured on
    /// another host).
    #[arg(long, value_name = "FILE")]
    pub(crate) pagetypeinfo: Option<PathBuf>,

    /// Root under which /sys is read (default /).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_root())]
    pub(crate) root: PathBuf,

    /// Show only portal nodes.
    #[arg(long)]
    pub(crate) portals: bool,
}

/// One NUMA node as `list` reports it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct NodeInfo {
    pub(crate) node: u32,
    /// "Switched" for a portal node, else "DRAM/other".
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) portal: bool,
    /// Bytes the node has in the page allocator (sysfs), if known.
    pub(crate) size: Option<u64>,
    /// Free bytes per pagetypeinfo.
    pub(crate) free: u64,
    /// Zones the node has pages in.
    pub(crate) zones: Vec<String>,
}

/// MemTotal of a node from `<root>/sys/devices/system/node/nodeN/meminfo`.
fn node_mem_total(root: &Path, node: u32) -> Result<Option<u64>> {
    let path = root.join(format!("sys/devices/system/node/node{node}/meminfo"));
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for line in text.lines() {
        // "Node 1 MemTotal:         524288 kB"
        let mut w = line.split_whitespace();
        if let (Some("Node"), Some(_), Some("MemTotal:"), Some(kb)) =
            (w.next(), w.next(), w.next(), w.next())
        {
            let kb: u64 = kb
                .parse()
                .with_context(|| format!("{}: bad MemTotal '{kb}'", path.display()))?;
            return Ok(Some(kb * 1024));
        }
    }
    anyhow::bail!("{}: no MemTotal line", path.display())
}

/// Builds the node list from a parsed pagetypeinfo and sysfs under `root`.
pub(crate) fn nodes(pti: &PageTypeInfo, root: &Path) -> Result<Vec<NodeInfo>> {
    let page_size = 4096u64;
    let switched = pti.switched_nodes();
    let mut out = Vec::new();
    for node in pti.nodes() {
        let portal = switched.contains(&node);
        let mut zones: Vec<String> = pti
            .free
            .iter()
            .filter(|r| r.node == node)
            .map(|r| r.zone.clone())
            .collect();
        zones.dedup();
        out.push(NodeInfo {
            node,
            kind: if portal {
                SWITCHED.to_owned()
            } else {
                "-".to_owned()
            },
            portal,
            size: node_mem_total(root, node)?,
            free: pti.free_pages(node) * page_size,
            zones,
        });
    }
    Ok(out)
}

pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(crate) fn run(args: &ListArgs, json: bool) -> Result<()> {
    let path = args
        .pagetypeinfo
        .clone()
        .unwrap_or_else(|| args.root.join("proc/pagetypeinfo"));
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let pti = PageTypeInfo::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut list = nodes(&pti, &args.root)?;
    if args.portals {
        list.retain(|n| n.portal);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:>4}  {:<9} {:>11} {:>11}  zones",
        "node", "type", "size", "free"
    );
    for n in &list {
        println!(
            "{:>4}  {:<9} {:>11} {:>11}  {}",
            n.node,
            n.kind,
            n.size.map(human).unwrap_or_else(|| "-".into()),
            human(n.free),
            n.zones.join(",")
        );
    }
    Ok(())
}
