//! Graphviz DOT picture of the fabric.
//!
//! Hosts are boxes, portals ellipses labelled with their free capacity.
//! Critical hosts and portals are red and bold, critical attachments red;
//! a requested route is drawn blue and thick. Hosts are grouped by rack.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use crate::analysis::Analysis;
use crate::fabric::{Fabric, Vid};
use crate::list::human;

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn id(f: &Fabric, v: Vid) -> String {
    if f.is_host(v) {
        format!("h{v}")
    } else {
        format!("p{}", v as usize - f.hosts.len())
    }
}

/// Renders the fabric; `route` vertices (if any) are highlighted.
pub fn render(f: &Fabric, a: &Analysis, route: &[Vid]) -> String {
    let crit: HashSet<Vid> = a
        .critical_hosts
        .iter()
        .chain(&a.critical_portals)
        .copied()
        .collect();
    let crit_edges: HashSet<(Vid, Vid)> = a.critical_attachments.iter().copied().collect();
    let on_route: HashSet<Vid> = route.iter().copied().collect();
    let route_edges: HashSet<(Vid, Vid)> = route
        .windows(2)
        .map(|w| (w[0].min(w[1]), w[0].max(w[1])))
        .collect();

    let mut s = String::new();
    let _ = writeln!(s, "graph fabric {{");
    let _ = writeln!(s, "  graph [overlap=false, splines=true];");
    let _ = writeln!(s, "  node [fontname=\"Helvetica\", fontsize=10];");

    let mut racks: BTreeMap<Option<&str>, Vec<Vid>> = BTreeMap::new();
    for (i, h) in f.hosts.iter().enumerate() {
        racks.entry(h.rack.as_deref()).or_default().push(i as Vid);
    }
    for (ri, (rack, hosts)) in racks.iter().enumerate() {
        if let Some(r) = rack {
            let _ = writeln!(
                s,
                "  subgraph cluster_{ri} {{ label={}; style=dashed;",
                quote(&format!("rack {r}"))
            );
        }
        for &v in hosts {
            let mut attrs = vec![
                "shape=box".to_owned(),
                format!("label={}", quote(f.name(v))),
            ];
            if crit.contains(&v) {
                attrs.push("color=red, fontcolor=red, style=bold".into());
            }
            if on_route.contains(&v) {
                attrs.push("penwidth=3, fillcolor=lightblue, style=\"filled,bold\"".into());
            }
            let _ = writeln!(s, "    {} [{}];", id(f, v), attrs.join(", "));
        }
        if rack.is_some() {
            let _ = writeln!(s, "  }}");
        }
    }
    for p in 0..f.portals.len() {
        let v = f.portal_vid(p);
        let portal = &f.portals[p];
        let label = format!("{}\\n{} free", portal.id, human(portal.free));
        let mut attrs = vec![
            "shape=ellipse".to_owned(),
            format!("label=\"{}\"", label.replace('"', "\\\"")),
        ];
        if crit.contains(&v) {
            attrs.push("color=red, fontcolor=red, style=bold".into());
        }
        if on_route.contains(&v) {
            attrs.push("penwidth=3, fillcolor=lightblue, style=\"filled,bold\"".into());
        }
        let _ = writeln!(s, "  {} [{}];", id(f, v), attrs.join(", "));
    }
    for h in 0..f.hosts.len() as Vid {
        for &p in f.neighbours(h) {
            let mut attrs = Vec::new();
            if crit_edges.contains(&(h, p)) {
                attrs.push("color=red, penwidth=2");
            }
            if route_edges.contains(&(h.min(p), h.max(p))) {
                attrs.push("color=blue, penwidth=4");
            }
            let _ = writeln!(
                s,
                "  {} -- {}{};",
                id(f, h),
                id(f, p),
                if attrs.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", attrs.join(", "))
                }
            );
        }
    }
    let _ = writeln!(s, "}}");
    s
}
