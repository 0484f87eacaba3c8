//! The fabric: hosts and portals joined by attachments.
//!
//! A bipartite graph: a portal shared by k hosts has k attachments, and two
//! hosts may share several portals. Vertices are numbered hosts first
//! (`0..hosts`), then portals (`hosts..hosts + portals`); adjacency is kept
//! in compressed sparse rows so that a million-host fabric stays compact.

use std::collections::HashMap;

use anyhow::{bail, Result};

/// Vertex index: a host (`< hosts`) or a portal (`>= hosts`).
pub type Vid = u32;

/// A host's description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub rack: Option<String>,
    pub pod: Option<String>,
}

/// A portal's description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Portal {
    pub id: String,
    /// Capacity in bytes (the largest any member reported).
    pub capacity: u64,
    /// Free bytes (the smallest any member reported: a conservative view).
    pub free: u64,
}

/// The fabric graph.
///
/// # Invariants
///
/// `offsets.len() == hosts.len() + portals.len() + 1`; every attachment
/// appears twice in `adj` (host -> portal and portal -> host), at most once
/// per (host, portal) pair, and always joins a host to a portal.
#[derive(Debug, Clone, Default)]
pub struct Fabric {
    pub hosts: Vec<Host>,
    pub portals: Vec<Portal>,
    offsets: Vec<u32>,
    adj: Vec<Vid>,
}

/// Collects hosts, portals and attachments, then freezes them into a
/// [`Fabric`].
#[derive(Debug, Default)]
pub struct Builder {
    hosts: Vec<Host>,
    portals: Vec<Portal>,
    host_ix: HashMap<String, u32>,
    portal_ix: HashMap<String, u32>,
    attachments: Vec<(u32, u32)>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a host, or returns the existing one of that name (labels are
    /// filled in if they were unknown).
    pub fn host(&mut self, name: &str, rack: Option<&str>, pod: Option<&str>) -> u32 {
        if let Some(&i) = self.host_ix.get(name) {
            let h = &mut self.hosts[i as usize];
            if h.rack.is_none() {
                h.rack = rack.map(str::to_owned);
            }
            if h.pod.is_none() {
                h.pod = pod.map(str::to_owned);
            }
            return i;
        }
        let i = self.hosts.len() as u32;
        self.hosts.push(Host {
            name: name.to_owned(),
            rack: rack.map(str::to_owned),
            pod: pod.map(str::to_owned),
        });
        self.host_ix.insert(name.to_owned(), i);
        i
    }

    /// Adds a portal, or merges capacity/free into the existing one.
    pub fn portal(&mut self, id: &str, capacity: u64, free: u64) -> u32 {
        if let Some(&i) = self.portal_ix.get(id) {
            let p = &mut self.portals[i as usize];
            p.capacity = p.capacity.max(capacity);
            p.free = p.free.min(free);
            return i;
        }
        let i = self.portals.len() as u32;
        self.portals.push(Portal {
            id: id.to_owned(),
            capacity,
            free,
        });
        self.portal_ix.insert(id.to_owned(), i);
        i
    }

    /// Attaches host `h` to portal `p` (indices from [`host`](Self::host)
    /// and [`portal`](Self::portal)). Repeats are merged.
    pub fn attach(&mut self, h: u32, p: u32) {
        self.attachments.push((h, p));
    }

    pub fn build(mut self) -> Result<Fabric> {
        let nh = self.hosts.len();
        let n = nh + self.portals.len();
        if n >= u32::MAX as usize {
            bail!("fabric too large: {n} vertices");
        }
        self.attachments.sort_unstable();
        self.attachments.dedup();
        let mut deg = vec![0u32; n];
        for &(h, p) in &self.attachments {
            deg[h as usize] += 1;
            deg[nh + p as usize] += 1;
        }
        let mut offsets = Vec::with_capacity(n + 1);
        let mut acc = 0u32;
        offsets.push(0);
        for d in &deg {
            acc += d;
            offsets.push(acc);
        }
        let mut fill: Vec<u32> = offsets[..n].to_vec();
        let mut adj = vec![0 as Vid; acc as usize];
        for &(h, p) in &self.attachments {
            let pv = (nh as u32) + p;
            adj[fill[h as usize] as usize] = pv;
            fill[h as usize] += 1;
            adj[fill[pv as usize] as usize] = h;
            fill[pv as usize] += 1;
        }
        Ok(Fabric {
            hosts: self.hosts,
            portals: self.portals,
            offsets,
            adj,
        })
    }
}

impl Fabric {
    pub fn vertex_count(&self) -> usize {
        self.hosts.len() + self.portals.len()
    }

    pub fn attachment_count(&self) -> usize {
        self.adj.len() / 2
    }

    pub fn is_host(&self, v: Vid) -> bool {
        (v as usize) < self.hosts.len()
    }

    /// Vertex of portal index `p`.
    pub fn portal_vid(&self, p: usize) -> Vid {
        (self.hosts.len() + p) as Vid
    }

    /// Portal of a portal vertex.
    pub fn portal(&self, v: Vid) -> &Portal {
        &self.portals[v as usize - self.hosts.len()]
    }

    pub fn neighbours(&self, v: Vid) -> &[Vid] {
        &self.adj[self.offsets[v as usize] as usize..self.offsets[v as usize + 1] as usize]
    }

    pub fn degree(&self, v: Vid) -> usize {
        self.neighbours(v).len()
    }

    /// Human name of a vertex: the host name or the portal id.
    pub fn name(&self, v: Vid) -> &str {
        if self.is_host(v) {
            &self.hosts[v as usize].name
        } else {
            &self.portal(v).id
        }
    }

    /// Looks a vertex up by host name or portal id.
    pub fn find(&self, name: &str) -> Option<Vid> {
        if let Some(i) = self.hosts.iter().position(|h| h.name == name) {
            return Some(i as Vid);
        }
        self.portals
            .iter()
            .position(|p| p.id == name)
            .map(|i| self.portal_vid(i))
    }
}
