//! Synthetic fabrics for tests and benchmarks.
//!
//! `Random`: hosts fill racks, racks fill pods. Inside a rack, portals are
//! each shared by `sharing` hosts of the rack (built so that the rack is
//! connected and every host has a portal, the rest at random), enough for every host
//! to average `portals_per_host` attachments. One portal joins each rack to
//! the next rack of its pod, and one joins each pod to the next, so the
//! fabric is connected and its inter-rack and inter-pod links are the
//! critical connections an operator would worry about.
//!
//! `Chain`: host i and host i+1 share portal i: every link is critical.

use anyhow::{bail, Result};

use crate::fabric::{Builder, Fabric};

const GIB: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    Random,
    Chain,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub hosts: usize,
    pub hosts_per_rack: usize,
    pub racks_per_pod: usize,
    pub portals_per_host: usize,
    pub sharing: usize,
    pub seed: u64,
    pub shape: Shape,
}

/// xorshift64*: small, deterministic, good enough for topology.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn capacity(rng: &mut Rng) -> (u64, u64) {
    let cap = 512 * GIB;
    let free = (rng.below(512) as u64 + 1) * GIB;
    (cap, free)
}

pub fn generate(p: &Params) -> Result<Fabric> {
    if p.hosts == 0 {
        bail!("--hosts must be at least 1");
    }
    if p.hosts_per_rack == 0 || p.racks_per_pod == 0 || p.sharing < 2 {
        bail!("--hosts-per-rack and --racks-per-pod must be at least 1, --sharing at least 2");
    }
    let mut rng = Rng::new(p.seed);
    let mut b = Builder::new();
    let racks = p.hosts.div_ceil(p.hosts_per_rack);
    for h in 0..p.hosts {
        let rack = h / p.hosts_per_rack;
        let pod = rack / p.racks_per_pod;
        b.host(
            &format!("h{h}"),
            Some(&format!("r{rack}")),
            Some(&format!("p{pod}")),
        );
    }
    let mut next_portal = 0usize;
    let mut portal = |b: &mut Builder, rng: &mut Rng| {
        let (cap, free) = capacity(rng);
        let ix = b.portal(&format!("portal{next_portal}"), cap, free);
        next_portal += 1;
        ix
    };
    match p.shape {
        Shape::Chain => {
            for h in 0..p.hosts.saturating_sub(1) {
                let pi = portal(&mut b, &mut rng);
                b.attach(h as u32, pi);
                b.attach(h as u32 + 1, pi);
            }
        }
        Shape::Random => {
            for r in 0..racks {
                let lo = r * p.hosts_per_rack;
                let hi = (lo + p.hosts_per_rack).min(p.hosts);
                let m = hi - lo;
                if m >= 2 {
                    let k = p.sharing.min(m);
                    let count = (m * p.portals_per_host).div_ceil(k);
                    // Each portal takes one host already covered and new
                    // ones until the rack is covered (so the rack is
                    // connected), then random hosts of the rack.
                    let mut covered = 0;
                    let mut j = 0;
                    while j < count || covered < m {
                        let pi = portal(&mut b, &mut rng);
                        let mut members = 0;
                        if covered > 0 {
                            b.attach((lo + rng.below(covered)) as u32, pi);
                            members += 1;
                        }
                        while members < k && covered < m {
                            b.attach((lo + covered) as u32, pi);
                            covered += 1;
                            members += 1;
                        }
                        while members < k {
                            b.attach((lo + rng.below(m)) as u32, pi);
                            members += 1;
                        }
                        j += 1;
                    }
                }
                if r > 0 {
                    // Link to the previous rack: same pod, or across pods
                    // when this rack starts a pod.
                    let prev_lo = (r - 1) * p.hosts_per_rack;
                    let a = prev_lo + rng.below(p.hosts_per_rack);
                    let c = lo + rng.below(m);
                    let pi = portal(&mut b, &mut rng);
                    b.attach(a as u32, pi);
                    b.attach(c as u32, pi);
                }
            }
        }
    }
    b.build()
}
