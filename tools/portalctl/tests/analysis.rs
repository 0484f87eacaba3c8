//! The fabric analysis against brute force, and the proposal's shapes.

use std::collections::{HashSet, VecDeque};

use portalctl::analysis::analyse;
use portalctl::fabric::{Builder, Fabric, Vid};
use portalctl::route::{best, k_best, Ban};
use portalctl::synth::{generate, Params, Rng, Shape};
use proptest::prelude::*;

/// Host components after removing vertex `gone` and attachment `cut`,
/// by breadth-first search: `comp[h]` for every host (None if removed).
fn host_components(f: &Fabric, gone: Option<Vid>, cut: Option<(Vid, Vid)>) -> Vec<Option<usize>> {
    let n = f.vertex_count();
    let mut comp = vec![usize::MAX; n];
    let mut next = 0;
    for s in 0..n as Vid {
        if comp[s as usize] != usize::MAX || Some(s) == gone {
            continue;
        }
        comp[s as usize] = next;
        let mut q = VecDeque::from([s]);
        while let Some(v) = q.pop_front() {
            for &w in f.neighbours(v) {
                if Some(w) == gone || cut.is_some_and(|(a, b)| (a, b) == (v, w) || (b, a) == (v, w))
                {
                    continue;
                }
                if comp[w as usize] == usize::MAX {
                    comp[w as usize] = next;
                    q.push_back(w);
                }
            }
        }
        next += 1;
    }
    (0..f.hosts.len())
        .map(|h| {
            if Some(h as Vid) == gone {
                None
            } else {
                Some(comp[h])
            }
        })
        .collect()
}

/// Whether some pair of hosts, both still present, was connected before
/// and is not after.
fn disconnects(before: &[Option<usize>], after: &[Option<usize>]) -> bool {
    for a in 0..before.len() {
        for b in a + 1..before.len() {
            if let (Some(x), Some(y), Some(bx), Some(by)) =
                (after[a], after[b], before[a], before[b])
            {
                if bx == by && x != y {
                    return true;
                }
            }
        }
    }
    false
}

fn brute(f: &Fabric) -> (HashSet<(Vid, Vid)>, HashSet<Vid>, HashSet<Vid>) {
    let before = host_components(f, None, None);
    let mut att = HashSet::new();
    let mut portals = HashSet::new();
    let mut hosts = HashSet::new();
    for h in 0..f.hosts.len() as Vid {
        for &p in f.neighbours(h) {
            if disconnects(&before, &host_components(f, None, Some((h, p)))) {
                att.insert((h, p));
            }
        }
        if disconnects(&before, &host_components(f, Some(h), None)) {
            hosts.insert(h);
        }
    }
    for p in 0..f.portals.len() {
        let v = f.portal_vid(p);
        if disconnects(&before, &host_components(f, Some(v), None)) {
            portals.insert(v);
        }
    }
    (att, portals, hosts)
}

/// Random small fabrics of `min_hosts..9` hosts, 1..8 portals and up to 20
/// attachments (repeats merge), for comparison with brute force.
fn small_fabrics(min_hosts: usize) -> impl Strategy<Value = Fabric> {
    (
        min_hosts..9usize,
        1usize..8,
        prop::collection::vec((0usize..9, 0usize..8), 0..20),
    )
        .prop_map(|(hosts, portals, attach)| random_fabric(hosts, portals, &attach))
}

fn random_fabric(hosts: usize, portals: usize, attach: &[(usize, usize)]) -> Fabric {
    let mut b = Builder::new();
    for h in 0..hosts {
        b.host(&format!("h{h}"), None, None);
    }
    for p in 0..portals {
        b.portal(&format!("p{p}"), 100, (p as u64 * 37) % 11 + 1);
    }
    for &(h, p) in attach {
        b.attach((h % hosts) as u32, (p % portals) as u32);
    }
    b.build().unwrap()
}

fn bfs_hops(f: &Fabric, src: Vid, dst: Vid) -> Option<usize> {
    let mut dist = vec![usize::MAX; f.vertex_count()];
    dist[src as usize] = 0;
    let mut q = VecDeque::from([src]);
    while let Some(v) = q.pop_front() {
        for &w in f.neighbours(v) {
            if dist[w as usize] == usize::MAX {
                dist[w as usize] = dist[v as usize] + 1;
                q.push_back(w);
            }
        }
    }
    (dist[dst as usize] != usize::MAX).then(|| dist[dst as usize] / 2)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn critical_parts_match_brute_force(f in small_fabrics(1)) {
        let hosts = f.hosts.len();
        let a = analyse(&f);
        let (att, ps, hs) = brute(&f);
        let got_att: HashSet<(Vid, Vid)> = a.critical_attachments.iter().copied().collect();
        let got_p: HashSet<Vid> = a.critical_portals.iter().copied().collect();
        let got_h: HashSet<Vid> = a.critical_hosts.iter().copied().collect();
        prop_assert_eq!(got_att, att);
        prop_assert_eq!(got_p, ps);
        prop_assert_eq!(got_h, hs);
        // Reach: components agree with BFS.
        let comps = host_components(&f, None, None);
        for x in 0..hosts {
            for y in 0..hosts {
                prop_assert_eq!(a.connected(x as Vid, y as Vid), comps[x] == comps[y]);
            }
        }
    }

    #[test]
    fn routes_are_shortest_and_widest(f in small_fabrics(2)) {
        let hosts = f.hosts.len();
        let (src, dst) = (0 as Vid, (hosts - 1) as Vid);
        let r = best(&f, src, dst, &Ban::default());
        prop_assert_eq!(r.as_ref().map(|r| r.hops()), bfs_hops(&f, src, dst));
        if let Some(r) = r {
            // A valid alternating path.
            prop_assert_eq!(r.vertices[0], src);
            prop_assert_eq!(*r.vertices.last().unwrap(), dst);
            for w in r.vertices.windows(2) {
                prop_assert!(f.neighbours(w[0]).contains(&w[1]));
            }
            // No shortest path is wider (Yen lists them all, best first).
            let all = k_best(&f, src, dst, 50, &Ban::default());
            prop_assert_eq!(&all[0], &r);
            for alt in &all {
                prop_assert!(alt.hops() > r.hops() || alt.width <= r.width);
                let set: HashSet<Vid> = alt.vertices.iter().copied().collect();
                prop_assert_eq!(set.len(), alt.vertices.len(), "simple path");
            }
            for w in all.windows(2) {
                prop_assert!((w[0].hops(), std::cmp::Reverse(w[0].width)) <= (w[1].hops(), std::cmp::Reverse(w[1].width)));
            }
        }
    }
}

/// The proposal's example: a chain of hosts, consecutive pairs sharing one
/// portal, makes every link critical; a second portal between one pair
/// makes that link stop being critical.
/// A builder holding a chain of `n` hosts, host i and i+1 sharing portal pi.
fn chain(n: usize) -> Builder {
    let mut b = Builder::new();
    for h in 0..n {
        b.host(&format!("h{h}"), None, None);
    }
    for i in 0..n - 1 {
        let p = b.portal(&format!("p{i}"), 10, 10);
        b.attach(i as u32, p);
        b.attach(i as u32 + 1, p);
    }
    b
}

#[test]
fn chain_every_link_critical_until_doubled() {
    let n = 6;
    let f = chain(n).build().unwrap();
    let a = analyse(&f);
    assert_eq!(a.critical_portals.len(), n - 1);
    assert_eq!(a.critical_attachments.len(), 2 * (n - 1));
    // Inner hosts are critical, the ends are not.
    assert_eq!(a.critical_hosts, (1..n as Vid - 1).collect::<Vec<_>>());

    let mut b = chain(n);
    let extra = b.portal("p2-bis", 10, 10);
    b.attach(2, extra);
    b.attach(3, extra);
    let f = b.build().unwrap();
    let a = analyse(&f);
    let names: Vec<&str> = a.critical_portals.iter().map(|&v| f.name(v)).collect();
    assert!(
        !names.contains(&"p2") && !names.contains(&"p2-bis"),
        "{names:?}"
    );
    assert_eq!(a.critical_portals.len(), n - 2);
    assert_eq!(a.critical_attachments.len(), 2 * (n - 2));
}

/// A portal only one host uses is no connection; a host whose only portal
/// is private is not critical.
#[test]
fn private_portals_are_not_critical() {
    let mut b = Builder::new();
    let h0 = b.host("h0", None, None);
    let h1 = b.host("h1", None, None);
    let shared = b.portal("shared", 1, 1);
    let private = b.portal("private", 1, 1);
    b.attach(h0, shared);
    b.attach(h1, shared);
    b.attach(h1, private);
    let f = b.build().unwrap();
    let a = analyse(&f);
    assert_eq!(
        a.critical_portals
            .iter()
            .map(|&v| f.name(v))
            .collect::<Vec<_>>(),
        ["shared"]
    );
    assert!(a.critical_hosts.is_empty());
    assert_eq!(a.critical_attachments.len(), 2);
}

#[test]
fn million_host_chain_does_not_overflow_the_stack() {
    let f = generate(&Params {
        hosts: 1_000_000,
        hosts_per_rack: 16,
        racks_per_pod: 4,
        portals_per_host: 1,
        sharing: 2,
        seed: 7,
        shape: Shape::Chain,
    })
    .unwrap();
    let a = analyse(&f);
    assert_eq!(a.reach_groups(), 1);
    assert_eq!(a.critical_portals.len(), 999_999);
    assert_eq!(a.critical_hosts.len(), 999_998);
    let r = best(&f, 0, 999_999, &Ban::default()).unwrap();
    assert_eq!(r.hops(), 999_999);
}

#[test]
fn avoid_forces_the_other_way_round() {
    // A ring of 4 hosts: h0-p0-h1-p1-h2-p2-h3-p3-h0.
    let mut b = Builder::new();
    for h in 0..4 {
        b.host(&format!("h{h}"), None, None);
    }
    for i in 0..4u32 {
        let p = b.portal(&format!("p{i}"), 10, 10 + u64::from(i));
        b.attach(i, p);
        b.attach((i + 1) % 4, p);
    }
    let f = b.build().unwrap();
    assert!(analyse(&f).critical_portals.is_empty());
    let r = best(&f, 0, 1, &Ban::default()).unwrap();
    assert_eq!(r.hops(), 1);
    let mut ban = Ban::default();
    ban.vertices.insert(f.find("p0").unwrap());
    let r = best(&f, 0, 1, &ban).unwrap();
    assert_eq!(r.hops(), 3);
    assert_eq!(r.width, 11);
    let rs = k_best(&f, 0, 2, 3, &Ban::default());
    assert_eq!(rs.len(), 2);
    // Both ways are 2 hops; the wider (p2, p3: narrowest 12) comes first.
    assert_eq!(rs[0].width, 12);
    assert_eq!(rs[1].width, 10);
}

#[test]
fn generator_is_deterministic_and_connected() {
    let p = Params {
        hosts: 500,
        hosts_per_rack: 16,
        racks_per_pod: 4,
        portals_per_host: 2,
        sharing: 4,
        seed: 3,
        shape: Shape::Random,
    };
    let a = generate(&p).unwrap();
    let b = generate(&p).unwrap();
    assert_eq!(a.attachment_count(), b.attachment_count());
    let an = analyse(&a);
    assert_eq!(an, analyse(&b));
    assert_eq!(an.reach_groups(), 1, "racks and pods are linked");
    // Every host has at least one portal.
    assert!((0..a.hosts.len() as Vid).all(|h| a.degree(h) > 0));
    // 32 racks in a line: each rack link is a critical connection.
    assert!(an.critical_portals.len() >= 31);
    let mut rng = Rng::new(1);
    assert!((0..1000).all(|_| rng.below(3) < 3));
}
