//! The `protocol` fuzz target's property-test twin, so that `cargo test` runs it on every
//! build: random peer mutations of a formatted portal, each resealed so that it passes the
//! checksum, never make a protocol step panic or wait without end.

use proptest::prelude::*;

use crate::fuzzing::{protocol_ops, Ran};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn peer_mutations_never_panic(groups in prop::collection::vec(
        (any::<u16>(), any::<u8>(), any::<u8>(), any::<u64>()), 1..12)
    ) {
        let mut data = Vec::new();
        for (selector, at, how, value) in groups {
            data.extend_from_slice(&selector.to_le_bytes());
            data.push(at);
            data.push(how);
            data.extend_from_slice(&value.to_le_bytes());
        }
        prop_assert!(protocol_ops(&data).accesses > 0);
    }
}

#[test]
fn without_mutations_the_second_host_joins_and_claims() {
    let ran = protocol_ops(&[]);
    assert!(ran.joined && ran.claimed == 5, "{ran:?}");
    assert!(ran.accesses > 100);
}

#[test]
fn a_resealed_peer_ticket_at_its_largest_value_stops_the_join() {
    // Every record selector: at least one names a host slot, whose ticket then refuses the join.
    let mut refused = 0;
    for selector in 0..64u16 {
        let mut g = selector.to_le_bytes().to_vec();
        // Offset 0x28: the bakery ticket; how 2 | 8 * 3: the largest value, 8 bytes, resealed.
        g.extend_from_slice(&[0x28, 2 | (3 << 3)]);
        g.extend_from_slice(&[0; 8]);
        let ran: Ran = protocol_ops(&g);
        refused += u32::from(!ran.joined);
    }
    assert!(refused > 0, "no mutation of a ticket refused the join");
}
