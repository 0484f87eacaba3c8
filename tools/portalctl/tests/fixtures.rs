//! pagetypeinfo samples captured in the lab guests.

use portalctl::pagetypeinfo::PageTypeInfo;

/// Linux 7.3 without the driver: DRAM on node 0 (DMA32 only, 1 GiB guest)
/// and the direct CXL device onlined by kmem as node 2 (256 MiB Movable).
#[test]
fn lab_upstream_sample() {
    let text = include_str!("fixtures/lab-7.3-upstream.pagetypeinfo");
    let p = PageTypeInfo::parse(text).expect("the lab's own pagetypeinfo parses");
    assert_eq!(p.nodes(), vec![0, 2]);
    assert!(p.switched_nodes().is_empty());
    // 64 free order-10 blocks of 4 KiB pages = 256 MiB, all of node 2.
    assert_eq!(p.free_pages(2), 64 * 1024);
    assert!(p
        .free
        .iter()
        .filter(|r| r.node == 2)
        .all(|r| r.zone == "Movable"));
    assert_eq!(p.free.iter().filter(|r| r.node == 2).count(), 5);
    assert_eq!(
        p.blocks[&(2, "Movable".to_string())][1],
        ("Movable".to_string(), 128)
    );
}
