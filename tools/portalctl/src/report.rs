//! `portalctl fabric`: merge inventories, analyse, route, draw.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use crate::analysis::{analyse, Analysis};
use crate::fabric::{Fabric, Vid};
use crate::list::human;
use crate::route::{k_best, Ban, Route};
use crate::{dot, inventory, Outcome};

#[derive(Args, Debug)]
pub(crate) struct FabricArgs {
    /// Inventory files or directories of them (`*.json`), as written by
    /// `portalctl inventory --json` or `portalctl generate`.
    #[arg(required = true, value_name = "INPUT")]
    pub(crate) inputs: Vec<PathBuf>,

    /// Plan a flight path from host FROM to host TO.
    #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
    pub(crate) route: Option<Vec<String>>,

    /// A portal id or host name the route must avoid (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) avoid: Vec<String>,

    /// How many routes to list, best first (Yen's k shortest paths).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub(crate) alternatives: usize,

    /// Print the fabric as Graphviz DOT (critical parts red, route blue).
    #[arg(long, conflicts_with = "svg")]
    pub(crate) dot: bool,

    /// Write the picture as SVG to FILE (needs Graphviz `dot`).
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
}

#[derive(Serialize)]
struct Critical {
    /// "portal" or "attachment"
    kind: &'static str,
    portal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    cross_rack: bool,
    cross_pod: bool,
}

#[derive(Serialize)]
struct RouteOut {
    hops: usize,
    width: u64,
    path: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    hosts: usize,
    portals: usize,
    attachments: usize,
    reach: Vec<Vec<String>>,
    critical_connections: Vec<Critical>,
    critical_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    routes: Option<Vec<RouteOut>>,
}

/// Whether the hosts attached to portal `p` (other than `except`) span more
/// than one rack / pod together with `except`.
fn spans(f: &Fabric, p: Vid, with: Option<Vid>) -> (bool, bool) {
    let mut racks = BTreeSet::new();
    let mut pods = BTreeSet::new();
    for &h in f.neighbours(p).iter().chain(with.as_ref()) {
        let host = &f.hosts[h as usize];
        racks.insert(host.rack.as_deref());
        pods.insert(host.pod.as_deref());
    }
    (racks.len() > 1, pods.len() > 1)
}

fn criticals(f: &Fabric, a: &Analysis) -> Vec<Critical> {
    let mut out = Vec::new();
    for &p in &a.critical_portals {
        let (cross_rack, cross_pod) = spans(f, p, None);
        out.push(Critical {
            kind: "portal",
            portal: f.name(p).to_owned(),
            host: None,
            cross_rack,
            cross_pod,
        });
    }
    for &(h, p) in &a.critical_attachments {
        let (cross_rack, cross_pod) = spans(f, p, Some(h));
        out.push(Critical {
            kind: "attachment",
            portal: f.name(p).to_owned(),
            host: Some(f.name(h).to_owned()),
            cross_rack,
            cross_pod,
        });
    }
    out
}

fn lookup_host(f: &Fabric, name: &str) -> Result<Vid> {
    match f.find(name) {
        Some(v) if f.is_host(v) => Ok(v),
        Some(_) => bail!("'{name}' is a portal, not a host"),
        None => bail!("no host '{name}' in the fabric"),
    }
}

pub(crate) fn routes(
    f: &Fabric,
    from: &str,
    to: &str,
    avoid: &[String],
    k: usize,
) -> Result<Vec<Route>> {
    let src = lookup_host(f, from)?;
    let dst = lookup_host(f, to)?;
    let mut ban = Ban::default();
    for name in avoid {
        let v = f
            .find(name)
            .with_context(|| format!("--avoid {name}: no such host or portal in the fabric"))?;
        if v == src || v == dst {
            bail!("--avoid {name}: cannot avoid an end of the route");
        }
        ban.vertices.insert(v);
    }
    Ok(k_best(f, src, dst, k.max(1), &ban))
}

pub(crate) fn run(args: &FabricArgs, json: bool) -> Result<Outcome> {
    let invs = inventory::read_inputs(&args.inputs)?;
    if invs.is_empty() {
        bail!("no inventories found in {:?}", args.inputs);
    }
    let f = inventory::to_fabric(&invs)?;
    let a = analyse(&f);

    let found = match &args.route {
        Some(r) => Some(routes(&f, &r[0], &r[1], &args.avoid, args.alternatives)?),
        None => None,
    };
    let best_route: Vec<Vid> = found
        .as_ref()
        .and_then(|r| r.first())
        .map(|r| r.vertices.clone())
        .unwrap_or_default();

    if args.dot || args.svg.is_some() {
        let text = dot::render(&f, &a, &best_route);
        if let Some(path) = &args.svg {
            write_svg(&text, path)?;
            eprintln!("portalctl: wrote {}", path.display());
        } else {
            print!("{text}");
            return Ok(Outcome::Done);
        }
    }

    let mut reach: Vec<Vec<String>> = vec![Vec::new(); a.component_hosts.len()];
    for (h, host) in f.hosts.iter().enumerate() {
        reach[a.component[h] as usize].push(host.name.clone());
    }
    reach.retain(|g| !g.is_empty());
    let report = Report {
        hosts: f.hosts.len(),
        portals: f.portals.len(),
        attachments: f.attachment_count(),
        reach,
        critical_connections: criticals(&f, &a),
        critical_hosts: a
            .critical_hosts
            .iter()
            .map(|&v| f.name(v).to_owned())
            .collect(),
        routes: found.as_ref().map(|rs| {
            rs.iter()
                .map(|r| RouteOut {
                    hops: r.hops(),
                    width: r.width,
                    path: r.vertices.iter().map(|&v| f.name(v).to_owned()).collect(),
                })
                .collect()
        }),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.svg.is_none() {
        print_human(&report);
    }
    match found {
        Some(rs) if rs.is_empty() => Ok(Outcome::NoRoute),
        _ => Ok(Outcome::Done),
    }
}

fn print_human(r: &Report) {
    println!(
        "fabric: {} hosts, {} portals, {} attachments, {} reach group(s)",
        r.hosts,
        r.portals,
        r.attachments,
        r.reach.len()
    );
    for (i, g) in r.reach.iter().enumerate().take(20) {
        let shown: Vec<&str> = g.iter().take(8).map(String::as_str).collect();
        let more = if g.len() > 8 {
            format!(" ... (+{})", g.len() - 8)
        } else {
            String::new()
        };
        println!(
            "  group {i}: {} host(s): {}{more}",
            g.len(),
            shown.join(" ")
        );
    }
    println!("critical connections: {}", r.critical_connections.len());
    for c in r.critical_connections.iter().take(50) {
        let mut tags = Vec::new();
        if c.cross_pod {
            tags.push("cross-pod");
        } else if c.cross_rack {
            tags.push("cross-rack");
        }
        let what = match &c.host {
            Some(h) => format!("attachment {h} -- {}", c.portal),
            None => format!("portal {}", c.portal),
        };
        println!(
            "  {what}{}",
            if tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", tags.join(","))
            }
        );
    }
    println!("critical hosts: {}", r.critical_hosts.len());
    for h in r.critical_hosts.iter().take(50) {
        println!("  {h}");
    }
    if let Some(routes) = &r.routes {
        if routes.is_empty() {
            println!("route: none");
        }
        for (i, rt) in routes.iter().enumerate() {
            println!(
                "route {}: {} portal hop(s), narrowest portal {} free: {}",
                i + 1,
                rt.hops,
                human(rt.width),
                rt.path.join(" -> ")
            );
        }
    }
}

fn write_svg(dot_text: &str, path: &PathBuf) -> Result<()> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .context("running Graphviz 'dot' (install the graphviz package, or use --dot)")?;
    child
        .stdin
        .take()
        .context("dot's stdin")?
        .write_all(dot_text.as_bytes())
        .context("writing to dot")?;
    let status = child.wait().context("waiting for dot")?;
    if !status.success() {
        bail!("dot failed ({status}) writing {}", path.display());
    }
    Ok(())
}
