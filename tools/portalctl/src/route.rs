//! Flight paths: how a VM moves from one host to another through portals.
//!
//! A path alternates host, portal, host, ...; its cost is the number of
//! portal hops, and among equally short paths the widest wins: the one whose
//! narrowest portal (least free capacity) has the most free bytes. The best
//! path is a breadth-first search followed by a widest-path pass over the
//! shortest-path DAG, O(V + E). Alternatives are Yen's k shortest simple
//! paths under the same order.

use std::collections::HashSet;

use crate::fabric::{Fabric, Vid};

/// A route between two hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// host, portal, host, ..., host
    pub vertices: Vec<Vid>,
    /// Free bytes of the narrowest portal on the route.
    pub width: u64,
}

impl Route {
    pub fn hops(&self) -> usize {
        self.vertices.len() / 2
    }

    /// Ordering key: fewer hops first, then wider.
    fn key(&self) -> (usize, std::cmp::Reverse<u64>) {
        (self.hops(), std::cmp::Reverse(self.width))
    }

    fn width_of(f: &Fabric, vertices: &[Vid]) -> u64 {
        vertices
            .iter()
            .filter(|&&v| !f.is_host(v))
            .map(|&v| f.portal(v).free)
            .min()
            .unwrap_or(u64::MAX)
    }
}

/// What a search may not use.
#[derive(Debug, Default, Clone)]
pub struct Ban {
    pub vertices: HashSet<Vid>,
    /// Undirected attachments, stored as (min, max).
    pub edges: HashSet<(Vid, Vid)>,
}

impl Ban {
    fn edge(&self, a: Vid, b: Vid) -> bool {
        !self.edges.is_empty() && self.edges.contains(&(a.min(b), a.max(b)))
    }
}

const UNSEEN: u32 = u32::MAX;

/// The best route from `src` to `dst` avoiding `ban`, if any.
pub fn best(f: &Fabric, src: Vid, dst: Vid, ban: &Ban) -> Option<Route> {
    if ban.vertices.contains(&src) || ban.vertices.contains(&dst) {
        return None;
    }
    if src == dst {
        return Some(Route {
            vertices: vec![src],
            width: u64::MAX,
        });
    }
    let n = f.vertex_count();
    let mut dist = vec![UNSEEN; n];
    let mut order = Vec::new();
    dist[src as usize] = 0;
    order.push(src);
    let mut head = 0;
    while head < order.len() {
        let v = order[head];
        head += 1;
        if dist[dst as usize] != UNSEEN && dist[v as usize] >= dist[dst as usize] {
            break;
        }
        for &w in f.neighbours(v) {
            if dist[w as usize] == UNSEEN && !ban.vertices.contains(&w) && !ban.edge(v, w) {
                dist[w as usize] = dist[v as usize] + 1;
                order.push(w);
            }
        }
    }
    if dist[dst as usize] == UNSEEN {
        return None;
    }
    // Widest path over the DAG of shortest-path edges, in BFS order.
    let mut width: Vec<Option<u64>> = vec![None; n];
    let mut pred = vec![UNSEEN; n];
    width[src as usize] = Some(u64::MAX);
    for &v in &order {
        let Some(wv) = width[v as usize] else {
            continue;
        };
        if v == dst {
            continue;
        }
        for &w in f.neighbours(v) {
            if dist[w as usize] != dist[v as usize].wrapping_add(1) || ban.edge(v, w) {
                continue;
            }
            let cap = if f.is_host(w) {
                u64::MAX
            } else {
                f.portal(w).free
            };
            let cand = wv.min(cap);
            if width[w as usize].is_none_or(|cur| cand > cur) {
                width[w as usize] = Some(cand);
                pred[w as usize] = v;
            }
        }
    }
    let mut vertices = vec![dst];
    let mut v = dst;
    while v != src {
        v = pred[v as usize];
        vertices.push(v);
    }
    vertices.reverse();
    Some(Route {
        width: width[dst as usize].unwrap_or(0),
        vertices,
    })
}

/// Up to `k` routes from `src` to `dst` in order (best first), avoiding
/// `ban`: Yen's algorithm.
pub fn k_best(f: &Fabric, src: Vid, dst: Vid, k: usize, ban: &Ban) -> Vec<Route> {
    let mut found: Vec<Route> = Vec::new();
    let Some(first) = best(f, src, dst, ban) else {
        return found;
    };
    found.push(first);
    let mut candidates: Vec<Route> = Vec::new();
    while found.len() < k {
        let last = found.last().expect("found is not empty").vertices.clone();
        for i in 0..last.len().saturating_sub(1) {
            let spur = last[i];
            let root = &last[..=i];
            let mut b = ban.clone();
            for r in &found {
                if r.vertices.len() > i + 1 && &r.vertices[..=i] == root {
                    let (a, c) = (r.vertices[i], r.vertices[i + 1]);
                    b.edges.insert((a.min(c), a.max(c)));
                }
            }
            b.vertices.extend(root[..i].iter().copied());
            if let Some(spur_route) = best(f, spur, dst, &b) {
                let mut vertices = root[..i].to_vec();
                vertices.extend_from_slice(&spur_route.vertices);
                let r = Route {
                    width: Route::width_of(f, &vertices),
                    vertices,
                };
                if !found.contains(&r) && !candidates.contains(&r) {
                    candidates.push(r);
                }
            }
        }
        let Some(ix) = (0..candidates.len()).min_by_key(|&i| candidates[i].key()) else {
            break;
        };
        found.push(candidates.swap_remove(ix));
    }
    found
}
