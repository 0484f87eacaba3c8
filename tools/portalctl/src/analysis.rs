//! Reach, critical connections and critical hosts, in O(V + E) without
//! recursion.
//!
//! One iterative depth-first search (Hopcroft–Tarjan lowpoints) over the
//! bipartite fabric computes, per vertex, its discovery time, lowpoint and
//! the number of hosts in its DFS subtree. From those:
//!
//! * an attachment (tree edge parent–child) is a bridge when
//!   `low[child] > disc[parent]`; it is *critical* when both sides of it
//!   keep at least one host (a portal used by one host only is no
//!   connection);
//! * removing a vertex splits its component into the subtrees of the
//!   children `c` with `low[c] >= disc[v]`, plus the rest; the vertex is
//!   *critical* when at least two of those parts hold a host. For a portal
//!   that is "an articulation point"; for a host it also needs two parts
//!   with hosts (a host whose other portals reach nobody is not critical).

use crate::fabric::{Fabric, Vid};

const UNSEEN: u32 = u32::MAX;

/// What the analysis found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Component index of every vertex.
    pub component: Vec<u32>,
    /// Hosts per component.
    pub component_hosts: Vec<u32>,
    /// Critical attachments as (host, portal) vertex pairs.
    pub critical_attachments: Vec<(Vid, Vid)>,
    /// Critical portals (vertices).
    pub critical_portals: Vec<Vid>,
    /// Critical hosts (vertices).
    pub critical_hosts: Vec<Vid>,
}

impl Analysis {
    /// Number of components that hold at least one host.
    pub fn reach_groups(&self) -> usize {
        self.component_hosts.iter().filter(|&&n| n > 0).count()
    }

    /// Whether two vertices are in one component.
    pub fn connected(&self, a: Vid, b: Vid) -> bool {
        self.component[a as usize] == self.component[b as usize]
    }
}

/// Runs the analysis.
pub fn analyse(f: &Fabric) -> Analysis {
    let n = f.vertex_count();
    let mut disc = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut hosts_below = vec![0u32; n];
    let mut parent = vec![UNSEEN; n];
    let mut component = vec![0u32; n];
    let mut component_hosts = Vec::new();
    // Per vertex: hosts in the children subtrees that removal of the
    // vertex cuts off, and how many of those parts hold hosts.
    let mut cut_hosts = vec![0u32; n];
    let mut cut_parts_with_hosts = vec![0u32; n];
    let mut critical_attachments = Vec::new();

    // Explicit DFS stack: (vertex, index of the next neighbour to visit).
    let mut stack: Vec<(Vid, u32)> = Vec::new();
    let mut time = 0u32;

    for root in 0..n as Vid {
        if disc[root as usize] != UNSEEN {
            continue;
        }
        let comp = component_hosts.len() as u32;
        component_hosts.push(0);
        disc[root as usize] = time;
        low[root as usize] = time;
        time += 1;
        stack.push((root, 0));
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            let nb = f.neighbours(v);
            if (*next as usize) < nb.len() {
                let w = nb[*next as usize];
                *next += 1;
                if disc[w as usize] == UNSEEN {
                    parent[w as usize] = v;
                    disc[w as usize] = time;
                    low[w as usize] = time;
                    time += 1;
                    stack.push((w, 0));
                } else if w != parent[v as usize] {
                    // Back edge. The graph is simple (no repeated
                    // attachment), so skipping the parent vertex skips
                    // exactly the tree edge.
                    low[v as usize] = low[v as usize].min(disc[w as usize]);
                }
                continue;
            }
            // v is finished.
            stack.pop();
            component[v as usize] = comp;
            if f.is_host(v) {
                hosts_below[v as usize] += 1;
            }
            let p = parent[v as usize];
            if p != UNSEEN {
                let (pu, vu) = (p as usize, v as usize);
                hosts_below[pu] += hosts_below[vu];
                low[pu] = low[pu].min(low[vu]);
                if low[vu] >= disc[pu] {
                    // Removing p cuts v's subtree off.
                    cut_hosts[pu] += hosts_below[vu];
                    if hosts_below[vu] > 0 {
                        cut_parts_with_hosts[pu] += 1;
                    }
                }
                if low[vu] > disc[pu] {
                    // Bridge p–v; critical if both sides keep a host. The
                    // far side's host count is known once the component is
                    // done, so record the candidate now.
                    critical_attachments.push((p, v));
                }
            }
        }
        // Hosts of this component.
        let total: u32 = hosts_below[root as usize];
        component_hosts[comp as usize] = total;
    }

    let mut critical_portals = Vec::new();
    let mut critical_hosts = Vec::new();
    for v in 0..n as Vid {
        let vu = v as usize;
        let total = component_hosts[component[vu] as usize];
        let own = u32::from(f.is_host(v));
        let mut parts = cut_parts_with_hosts[vu];
        if parent[vu] != UNSEEN {
            // The rest of the component (the parent's side) is a part too.
            let rest = total - own - cut_hosts[vu];
            if rest > 0 {
                parts += 1;
            }
        }
        if parts >= 2 {
            if f.is_host(v) {
                critical_hosts.push(v);
            } else {
                critical_portals.push(v);
            }
        }
    }

    critical_attachments.retain(|&(_, c)| {
        let below = hosts_below[c as usize];
        let total = component_hosts[component[c as usize] as usize];
        below > 0 && total - below > 0
    });
    let critical_attachments = critical_attachments
        .into_iter()
        .map(|(a, b)| if f.is_host(a) { (a, b) } else { (b, a) })
        .collect();

    Analysis {
        component,
        component_hosts,
        critical_attachments,
        critical_portals,
        critical_hosts,
    }
}
