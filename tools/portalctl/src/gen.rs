//! `portalctl generate` and `portalctl bench`: synthetic fabrics.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use crate::analysis::analyse;
use crate::fabric::Fabric;
use crate::inventory::{FabricDoc, InvPortal, Inventory, FABRIC_SCHEMA, INVENTORY_SCHEMA};
use crate::route::{best, Ban};
use crate::synth::{generate, Params, Shape};

#[derive(Args, Debug, Clone)]
pub(crate) struct SynthArgs {
    /// Number of hosts.
    #[arg(long, default_value_t = 64)]
    pub(crate) hosts: usize,
    /// Hosts per rack.
    #[arg(long, default_value_t = 16)]
    pub(crate) hosts_per_rack: usize,
    /// Racks per pod.
    #[arg(long, default_value_t = 4)]
    pub(crate) racks_per_pod: usize,
    /// Average portal attachments per host (inside its rack).
    #[arg(long, default_value_t = 2)]
    pub(crate) portals_per_host: usize,
    /// Hosts sharing each rack portal.
    #[arg(long, default_value_t = 4)]
    pub(crate) sharing: usize,
    /// Random seed (the same seed gives the same fabric).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Topology: random racks and pods, or a chain of hosts.
    #[arg(long, value_enum, default_value_t = Shape::Random)]
    pub(crate) shape: Shape,
}

impl SynthArgs {
    fn params(&self) -> Params {
        Params {
            hosts: self.hosts,
            hosts_per_rack: self.hosts_per_rack,
            racks_per_pod: self.racks_per_pod,
            portals_per_host: self.portals_per_host,
            sharing: self.sharing,
            seed: self.seed,
            shape: self.shape,
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    pub(crate) synth: SynthArgs,
    /// Write the fabric document here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// The fabric as one inventory per host.
pub(crate) fn to_doc(f: &Fabric) -> FabricDoc {
    let inventories = (0..f.hosts.len())
        .map(|h| {
            let host = &f.hosts[h];
            Inventory {
                schema: INVENTORY_SCHEMA.into(),
                host: host.name.clone(),
                rack: host.rack.clone(),
                pod: host.pod.clone(),
                portals: f
                    .neighbours(h as u32)
                    .iter()
                    .map(|&p| {
                        let portal = f.portal(p);
                        InvPortal {
                            id: portal.id.clone(),
                            node: None,
                            capacity: portal.capacity,
                            free: portal.free,
                            members: f
                                .neighbours(p)
                                .iter()
                                .map(|&m| f.name(m).to_owned())
                                .collect(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    FabricDoc {
        schema: FABRIC_SCHEMA.into(),
        inventories,
    }
}

pub(crate) fn run_generate(args: &GenerateArgs) -> Result<()> {
    let f = generate(&args.synth.params())?;
    let doc = to_doc(&f);
    match &args.output {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut w = BufWriter::new(file);
            serde_json::to_writer(&mut w, &doc)?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => println!("{}", serde_json::to_string_pretty(&doc)?),
    }
    Ok(())
}

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) synth: SynthArgs,
    /// Also write the fabric's attachments as an edge list (one "u v" per
    /// line, hosts 0..H, portals H..) for comparison tools.
    #[arg(long, value_name = "FILE")]
    pub(crate) edges: Option<PathBuf>,
    /// Repeat the timed analysis this many times and report the best.
    #[arg(long, default_value_t = 3)]
    pub(crate) repeat: usize,
}

#[derive(Serialize)]
struct BenchOut {
    hosts: usize,
    portals: usize,
    attachments: usize,
    generate_s: f64,
    /// Best of `repeat`: components, critical connections and hosts.
    analyse_s: f64,
    /// Best of `repeat`: one route between the first and the last host.
    route_s: f64,
    critical_connections: usize,
    critical_hosts: usize,
    route_hops: Option<usize>,
}

pub(crate) fn run_bench(args: &BenchArgs, json: bool) -> Result<()> {
    let t = Instant::now();
    let f = generate(&args.synth.params())?;
    let generate_s = t.elapsed().as_secs_f64();
    if let Some(path) = &args.edges {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        for h in 0..f.hosts.len() as u32 {
            for &p in f.neighbours(h) {
                writeln!(w, "{h} {p}")?;
            }
        }
        w.flush()
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut analyse_s = f64::MAX;
    let mut route_s = f64::MAX;
    let mut a = None;
    let mut hops = None;
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        a = Some(analyse(&f));
        analyse_s = analyse_s.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        hops = best(&f, 0, f.hosts.len() as u32 - 1, &Ban::default()).map(|r| r.hops());
        route_s = route_s.min(t.elapsed().as_secs_f64());
    }
    let a = a.expect("at least one repetition");
    let out = BenchOut {
        hosts: f.hosts.len(),
        portals: f.portals.len(),
        attachments: f.attachment_count(),
        generate_s,
        analyse_s,
        route_s,
        critical_connections: a.critical_attachments.len() + a.critical_portals.len(),
        critical_hosts: a.critical_hosts.len(),
        route_hops: hops,
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{} hosts, {} portals, {} attachments: analyse {:.3} s, route {:.3} s (generate {:.3} s); \
             {} critical connections, {} critical hosts",
            out.hosts, out.portals, out.attachments, out.analyse_s, out.route_s, out.generate_s,
            out.critical_connections, out.critical_hosts
        );
    }
    Ok(())
}
