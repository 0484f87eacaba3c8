//! Inventories: one host's view of its portals, as a versioned JSON document
//! that can be merged with other hosts' into the fabric.
//!
//! ```json
//! { "schema": "cxl_switched.inventory/1", "host": "hv-0042",
//!   "rack": "r7", "pod": "p1",
//!   "portals": [ { "id": "serial-0x1", "node": 2, "capacity": 536870912,
//!                  "free": 402653184, "members": ["hv-0042", "hv-0107"] } ] }
//! ```
//!
//! A file may hold one inventory, an array of them, or a fabric document
//! `{ "schema": "cxl_switched.fabric/1", "inventories": [...] }`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fabric::{Builder, Fabric};

pub const INVENTORY_SCHEMA: &str = "cxl_switched.inventory/1";
pub const FABRIC_SCHEMA: &str = "cxl_switched.fabric/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inventory {
    pub schema: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default)]
    pub portals: Vec<InvPortal>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InvPortal {
    /// Fabric-wide identity: the portal UUID from the handoff header when
    /// the driver exposes it, else the CXL memdev serial number.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    pub capacity: u64,
    pub free: u64,
    /// Hosts known (from the portal header) to use this portal.
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FabricDoc {
    pub schema: String,
    pub inventories: Vec<Inventory>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyDoc {
    Fabric(FabricDoc),
    Many(Vec<Inventory>),
    One(Inventory),
}

fn check_schema(inv: &Inventory, path: &Path) -> Result<()> {
    let major = inv.schema.strip_prefix("cxl_switched.inventory/");
    match major {
        Some("1") => Ok(()),
        _ => bail!(
            "{}: host '{}': unsupported inventory schema '{}' (this portalctl reads {})",
            path.display(),
            inv.host,
            inv.schema,
            INVENTORY_SCHEMA
        ),
    }
}

/// Reads the inventories of one file.
pub fn read_file(path: &Path) -> Result<Vec<Inventory>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: AnyDoc = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not an inventory, an array of inventories or a fabric document",
            path.display()
        )
    })?;
    let invs = match doc {
        AnyDoc::Fabric(f) => {
            if f.schema != FABRIC_SCHEMA {
                bail!(
                    "{}: unsupported fabric schema '{}' (this portalctl reads {})",
                    path.display(),
                    f.schema,
                    FABRIC_SCHEMA
                );
            }
            f.inventories
        }
        AnyDoc::Many(v) => v,
        AnyDoc::One(i) => vec![i],
    };
    for inv in &invs {
        check_schema(inv, path)?;
    }
    Ok(invs)
}

/// Reads files and directories (every `*.json` inside, sorted).
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<Inventory>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(input)
                .with_context(|| format!("reading directory {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for f in files {
                out.extend(read_file(&f)?);
            }
        } else {
            out.extend(read_file(input)?);
        }
    }
    Ok(out)
}

/// Merges inventories into the fabric graph.
pub fn to_fabric(invs: &[Inventory]) -> Result<Fabric> {
    let mut b = Builder::new();
    for inv in invs {
        let h = b.host(&inv.host, inv.rack.as_deref(), inv.pod.as_deref());
        for p in &inv.portals {
            let pi = b.portal(&p.id, p.capacity, p.free);
            b.attach(h, pi);
            for m in &p.members {
                let mh = b.host(m, None, None);
                b.attach(mh, pi);
            }
        }
    }
    b.build()
}
