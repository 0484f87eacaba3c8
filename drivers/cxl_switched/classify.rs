// SPDX-License-Identifier: GPL-2.0

//! Which CXL RAM regions are portals, and where their nodes sit among the memory tiers.
//!
//! A region is *switched* when a CXL switch lies between the host bridge and each of its memory
//! devices: their endpoint ports sit deeper than [`DIRECT_DEPTH`]. Such memory may be reached by
//! other hosts through the switch, so this driver takes it; direct-attached regions stay with
//! dax/kmem or device_dax. The `switched` module parameter overrides the topology for platforms
//! whose sharing is invisible to it (a multi-headed device, for one).

use kernel::memory_tiers::{ADISTANCE_DRAM, CHUNK_SIZE as TIER_CHUNK};

/// The endpoint depth of a memory device attached to a host bridge root port.
pub(crate) const DIRECT_DEPTH: u32 = kernel::cxl::DIRECT_ENDPOINT_DEPTH;

/// What the `switched` module parameter asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Decide from the CXL port topology (`switched=-1`, the default).
    Topology,
    /// Treat every CXL RAM region as switched (`switched=1`).
    All,
    /// Treat no region as switched: the driver binds nothing (`switched=0`).
    None,
}

impl Policy {
    /// Reads the module parameter.
    pub(crate) fn from_param(value: i32) -> Option<Self> {
        match value {
            -1 => Some(Policy::Topology),
            1 => Some(Policy::All),
            0 => Some(Policy::None),
            _ => None,
        }
    }
}

/// The decision for one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A portal: this driver takes it.
    Switched,
    /// Left to dax/kmem or device_dax.
    Direct,
    /// Some targets are behind a switch and some are not: refused.
    Mixed,
}

impl Decision {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decision::Switched => "switched",
            Decision::Direct => "direct-attached",
            Decision::Mixed => "mixed (interleaves switched and direct devices)",
        }
    }
}

/// Decides from the endpoint depths of a region's targets.
pub(crate) fn classify(depths: &[u32], policy: Policy) -> Decision {
    match policy {
        Policy::All => return Decision::Switched,
        Policy::None => return Decision::Direct,
        Policy::Topology => {}
    }
    let switched = depths.iter().filter(|&&d| d > DIRECT_DEPTH).count();
    if switched == 0 {
        Decision::Direct
    } else if switched == depths.len() {
        Decision::Switched
    } else {
        Decision::Mixed
    }
}

/// The distance dax/kmem gives memory the platform says nothing about.
pub(crate) const KMEM_DEFAULT_ADISTANCE: i32 = ADISTANCE_DRAM * 5;

/// The abstract distance of a portal's node.
///
/// The platform's (HMAT/CDAT) distance for the node, or dax/kmem's default when it has none,
/// plus one tier: a portal never shares a tier with direct-attached memory of the same measured
/// performance, and always sits below DRAM.
pub(crate) fn portal_adistance(platform: Option<i32>) -> i32 {
    let base = platform
        .unwrap_or(KMEM_DEFAULT_ADISTANCE)
        .max(ADISTANCE_DRAM);
    base.saturating_add(TIER_CHUNK)
}

#[cfg(CONFIG_CXL_SWITCHED_KUNIT_TEST)]
#[kernel::macros::kunit_tests(cxl_switched_classify)]
mod tests {
    use super::*;

    #[test]
    fn topology_decides_by_depth() {
        assert_eq!(classify(&[2], Policy::Topology), Decision::Direct);
        assert_eq!(classify(&[3], Policy::Topology), Decision::Switched);
        assert_eq!(classify(&[4, 3], Policy::Topology), Decision::Switched);
        assert_eq!(classify(&[3, 2], Policy::Topology), Decision::Mixed);
        assert_eq!(classify(&[], Policy::Topology), Decision::Direct);
    }

    #[test]
    fn policy_overrides_topology() {
        assert_eq!(classify(&[2], Policy::All), Decision::Switched);
        assert_eq!(classify(&[3, 2], Policy::All), Decision::Switched);
        assert_eq!(classify(&[3], Policy::None), Decision::Direct);
    }

    #[test]
    fn parameter_values() {
        assert_eq!(Policy::from_param(-1), Some(Policy::Topology));
        assert_eq!(Policy::from_param(1), Some(Policy::All));
        assert_eq!(Policy::from_param(0), Some(Policy::None));
        assert_eq!(Policy::from_param(2), None);
        assert_eq!(Policy::from_param(i32::MIN), None);
    }

    #[test]
    fn portal_sits_a_tier_below_what_the_platform_says() {
        let tier = |a: i32| a / TIER_CHUNK;
        assert_eq!(
            tier(portal_adistance(None)),
            tier(KMEM_DEFAULT_ADISTANCE) + 1
        );
        assert_eq!(tier(portal_adistance(Some(1000))), tier(1000) + 1);
        // Never in or above DRAM's tier, even if the platform claims DRAM speed.
        assert!(tier(portal_adistance(Some(1))) > tier(ADISTANCE_DRAM));
        assert_eq!(portal_adistance(Some(i32::MAX)), i32::MAX);
    }
}
