//! `portalctl inventory`: this host's view as an inventory document.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::inventory::{InvPortal, Inventory, INVENTORY_SCHEMA};
use crate::list::{human, nodes};
use crate::pagetypeinfo::PageTypeInfo;

#[derive(Args, Debug)]
pub(crate) struct InventoryArgs {
    /// Host name (default: the kernel's hostname).
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Rack label, used to mark cross-rack critical connections.
    #[arg(long)]
    pub(crate) rack: Option<String>,
    /// Pod label, used to mark cross-pod critical connections.
    #[arg(long)]
    pub(crate) pod: Option<String>,
    /// Root under which /proc and /sys are read (default /).
    #[arg(long, value_name = "DIR", default_value_os_t = crate::default_root())]
    pub(crate) root: PathBuf,
}

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// The fabric-wide identity of the portal on `node`: the serial number of
/// the CXL memdev behind the region whose dax device targets the node.
/// Every host that reaches the device through the switch sees the same
/// serial. Falls back to a host-local name when sysfs does not say.
fn portal_id(root: &Path, node: u32, host: &str) -> String {
    let regions = root.join("sys/bus/cxl/devices");
    let Ok(entries) = fs::read_dir(&regions) else {
        return format!("node{node}@{host}");
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("region") {
            continue;
        }
        let region = e.path();
        let Ok(inner) = fs::read_dir(&region) else {
            continue;
        };
        let on_node = inner.flatten().any(|d| {
            let dn = d.file_name().to_string_lossy().into_owned();
            dn.starts_with("dax_region")
                && fs::read_dir(d.path())
                    .map(|it| {
                        it.flatten().any(|x| {
                            x.file_name().to_string_lossy().starts_with("dax")
                                && read_trim(&x.path().join("target_node")).as_deref()
                                    == Some(&node.to_string())
                        })
                    })
                    .unwrap_or(false)
        });
        if !on_node {
            continue;
        }
        // region/target0 names the endpoint decoder "decoderE.0"; its
        // endpoint's uport is the memdev.
        let Some(target) = read_trim(&region.join("target0")) else {
            continue;
        };
        let decoder = regions.join(&target);
        let Ok(real) = fs::canonicalize(&decoder) else {
            continue;
        };
        let Some(endpoint) = real.parent() else {
            continue;
        };
        let Ok(memdev) = fs::canonicalize(endpoint.join("uport")) else {
            continue;
        };
        if let Some(serial) = read_trim(&memdev.join("serial")) {
            return format!("serial-{serial}");
        }
    }
    format!("node{node}@{host}")
}

pub(crate) fn collect(args: &InventoryArgs) -> Result<Inventory> {
    let host = match &args.host {
        Some(h) => h.clone(),
        None => read_trim(&args.root.join("proc/sys/kernel/hostname"))
            .or_else(|| read_trim(&args.root.join("etc/hostname")))
            .unwrap_or_else(|| "localhost".into()),
    };
    let path = args.root.join("proc/pagetypeinfo");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let pti = PageTypeInfo::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    let portals = nodes(&pti, &args.root)?
        .into_iter()
        .filter(|n| n.portal)
        .map(|n| InvPortal {
            id: portal_id(&args.root, n.node, &host),
            node: Some(n.node),
            capacity: n.size.unwrap_or(0),
            free: n.free,
            members: vec![host.clone()],
        })
        .collect();
    Ok(Inventory {
        schema: INVENTORY_SCHEMA.into(),
        host,
        rack: args.rack.clone(),
        pod: args.pod.clone(),
        portals,
    })
}

pub(crate) fn run(args: &InventoryArgs, json: bool) -> Result<()> {
    let inv = collect(args)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inv)?);
        return Ok(());
    }
    println!(
        "host {} (rack {}, pod {}): {} portal(s)",
        inv.host,
        inv.rack.as_deref().unwrap_or("-"),
        inv.pod.as_deref().unwrap_or("-"),
        inv.portals.len()
    );
    for p in &inv.portals {
        println!(
            "  {}  node {}  capacity {}  free {}  members {}",
            p.id,
            p.node.map(|n| n.to_string()).unwrap_or("-".into()),
            human(p.capacity),
            human(p.free),
            p.members.join(",")
        );
    }
    Ok(())
}
