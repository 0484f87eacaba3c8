//! Userspace tests of the driver's shared `core`-only code (the same files
//! the kernel builds; KUnit runs its own cases of them in the guest).

use proptest::prelude::*;

use crate::handoff::crc32c::{crc32c, update};
use crate::layout::{LayoutError, PortalLayout, HEADER_BLOCKS};

/// Bit-at-a-time CRC32C, written independently of the table-driven one.
fn crc32c_bitwise(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = (c >> 1) ^ (0x82f6_3b78 & (c & 1).wrapping_neg());
        }
    }
    !c
}

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

proptest! {
    #[test]
    fn crc32c_matches_bitwise(data in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert_eq!(crc32c(&data), crc32c_bitwise(&data));
    }

    #[test]
    fn crc32c_detects_every_single_bit_flip(
        data in prop::collection::vec(any::<u8>(), 1..256),
        bit in any::<usize>(),
    ) {
        let mut flipped = data.clone();
        let bit = bit % (data.len() * 8);
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert_ne!(crc32c(&data), crc32c(&flipped));
    }

    #[test]
    fn crc32c_incremental(data in prop::collection::vec(any::<u8>(), 0..256), cut in any::<usize>()) {
        let cut = cut % (data.len() + 1);
        prop_assert_eq!(!update(update(!0, &data[..cut]), &data[cut..]), crc32c(&data));
    }

    #[test]
    fn layout_tiles_the_region(
        shift in 12u32..31,
        start_blocks in 0u64..1 << 20,
        blocks in 0u64..4096,
    ) {
        let bs = 1u64 << shift;
        let start = start_blocks << shift;
        let size = blocks << shift;
        match PortalLayout::new(start, size, bs) {
            Ok(l) => {
                prop_assert!(blocks > HEADER_BLOCKS);
                prop_assert_eq!(l.header.start, start);
                prop_assert_eq!(l.header.end - l.header.start, HEADER_BLOCKS * bs);
                prop_assert_eq!(l.online.end, start + size);
                prop_assert_eq!(l.blocks(), blocks - HEADER_BLOCKS);
                let last = l.block(l.blocks() - 1).unwrap();
                prop_assert_eq!(last.end, l.online.end);
                prop_assert_eq!(l.block_of(last.start), Some(l.blocks() - 1));
            }
            Err(e) => {
                prop_assert_eq!(e, LayoutError::TooSmall);
                prop_assert!(blocks <= HEADER_BLOCKS);
            }
        }
    }

    #[test]
    fn layout_refuses_misalignment(shift in 12u32..31, off in 1u64..4096) {
        let bs = 1u64 << shift;
        prop_assert_eq!(PortalLayout::new(bs * 8 + off, bs * 4, bs), Err(LayoutError::MisalignedStart));
        prop_assert_eq!(PortalLayout::new(bs * 8, bs * 4 + off, bs), Err(LayoutError::MisalignedSize));
    }
}

#[test]
fn layout_errors_explain_themselves() {
    let all = [
        LayoutError::BadBlockSize,
        LayoutError::Overflow,
        LayoutError::MisalignedStart,
        LayoutError::MisalignedSize,
        LayoutError::TooSmall,
    ];
    let msgs: std::collections::HashSet<&str> = all.iter().map(|e| e.as_str()).collect();
    assert_eq!(msgs.len(), all.len(), "distinct messages");
    assert!(msgs.iter().all(|m| !m.is_empty()));
}

// ---- the portal header (handoff/abi/) ----

use crate::abi::{
    boot_state, BootState, Geometry, HeaderError, Superblock, Timing, EMPTY_BYTES, SB_READY,
    SUPERBLOCK_SIZE,
};

fn geometry() -> impl Strategy<Value = Geometry> {
    (12u32..=30, 2u64..=1 << 20, 1u32..=64).prop_map(|(shift, blocks, slots)| Geometry {
        block_size: 1 << shift,
        block_count: blocks,
        header_blocks: 1,
        host_slots: slots,
    })
}

fn start_with(rec: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; EMPTY_BYTES];
    p[..rec.len()].copy_from_slice(rec);
    p
}

/// Whether the tables of `g` fit in its header block.
fn fits(g: &Geometry) -> bool {
    ready([0; 16], *g)
        .header_end()
        .is_some_and(|e| e <= g.block_size)
}

/// The CRC field rewritten after an edit, as a buggy or hostile writer would.
/// A formatted (ready) superblock, as hosts find it after a format.
fn ready(uuid: [u8; 16], g: Geometry) -> Superblock {
    let timing = Timing {
        lease_ms: 5000,
        settle_ms: 100,
    };
    let mut sb = Superblock::new(uuid, g, 16, timing);
    sb.state = SB_READY;
    sb
}

fn reseal(rec: &mut [u8; SUPERBLOCK_SIZE]) {
    let crc = crc32c(&rec[..SUPERBLOCK_SIZE - 4]);
    rec[SUPERBLOCK_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn superblock_layout_is_the_documented_one() {
    let g = Geometry {
        block_size: 128 << 20,
        block_count: 8192,
        header_blocks: 1,
        host_slots: 64,
    };
    let b = ready([0xab; 16], g).encode();
    assert_eq!(&b[0..8], b"CXLSWPTL");
    assert_eq!(b[0x08..0x0c], [2, 0, 3, 0]);
    assert_eq!(b[0x0c..0x10], [0, 1, 0, 0]);
    assert_eq!(b[0x10..0x18], 1u64.to_le_bytes());
    assert_eq!(b[0x28..0x30], (128u64 << 20).to_le_bytes());
    assert_eq!(b[0x30..0x38], 8192u64.to_le_bytes());
    assert_eq!(b[0x3c..0x40], 64u32.to_le_bytes());
    assert_eq!(b[0x40..0x48], 4096u64.to_le_bytes());
    // Tables at 4 KiB boundaries: 64 slots of 512 bytes end at 36 KiB; the
    // member table (3 records of two copies) at 36 KiB; the owner table
    // (8191 blocks: 316 records) at 40 KiB; 16 handoff records after it.
    assert_eq!(b[0x48..0x4c], 512u32.to_le_bytes());
    assert_eq!(b[0x50..0x58], (36u64 << 10).to_le_bytes());
    assert_eq!(b[0x58..0x60], (40u64 << 10).to_le_bytes());
    assert_eq!(
        b[0x60..0x68],
        ((40u64 << 10) + 316 * 512)
            .next_multiple_of(4096)
            .to_le_bytes()
    );
    assert_eq!(b[0x68..0x6c], 16u32.to_le_bytes());
    assert_eq!(b[0x6c..0x70], 5000u32.to_le_bytes());
    assert_eq!(b[0x70..0x74], 100u32.to_le_bytes());
    assert_eq!(b[0x74..0x78], 2u32.to_le_bytes());
    assert!(b[0x78..0xfc].iter().all(|&x| x == 0));
    assert_eq!(b[0xfc..], crc32c_bitwise(&b[..0xfc]).to_le_bytes());
}

proptest! {
    #[test]
    fn superblock_round_trips(g in geometry(), uuid in any::<[u8; 16]>()) {
        prop_assume!(fits(&g));
        let sb = ready(uuid, g);
        prop_assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
        prop_assert_eq!(boot_state(&start_with(&sb.encode()), &g), BootState::Formatted(sb));
    }

    #[test]
    fn every_flipped_bit_of_a_superblock_is_refused(g in geometry(), bit in 0usize..SUPERBLOCK_SIZE * 8) {
        prop_assume!(fits(&g));
        let mut b = ready([3; 16], g).encode();
        b[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(matches!(boot_state(&start_with(&b), &g), BootState::Refused(_)));
    }

    #[test]
    fn any_nonzero_start_that_is_not_a_header_is_refused(
        at in 0usize..EMPTY_BYTES, byte in 1u8..=255, g in geometry(),
    ) {
        let mut p = vec![0u8; EMPTY_BYTES];
        p[at] = byte;
        prop_assert!(matches!(boot_state(&p, &g), BootState::Refused(_)));
    }

    #[test]
    fn other_majors_are_refused_other_minors_are_not(major in 3u16.., minor in any::<u16>(), g in geometry()) {
        prop_assume!(fits(&g));
        let mut b = ready([5; 16], g).encode();
        b[0x08..0x0a].copy_from_slice(&major.to_le_bytes());
        b[0x0a..0x0c].copy_from_slice(&minor.to_le_bytes());
        reseal(&mut b);
        prop_assert_eq!(boot_state(&start_with(&b), &g), BootState::Refused(HeaderError::Newer { major, minor }));
        // Version 1 hosts reclaim without fencing: no v2 host shares a portal with them.
        b[0x08..0x0a].copy_from_slice(&1u16.to_le_bytes());
        reseal(&mut b);
        prop_assert_eq!(boot_state(&start_with(&b), &g), BootState::Refused(HeaderError::Older { major: 1, minor }));
        b[0x08..0x0a].copy_from_slice(&2u16.to_le_bytes());
        reseal(&mut b);
        prop_assert!(matches!(boot_state(&start_with(&b), &g), BootState::Formatted(_)));
    }

    #[test]
    fn decoding_never_panics(rec in prop::collection::vec(any::<u8>(), SUPERBLOCK_SIZE)) {
        let mut b = [0u8; SUPERBLOCK_SIZE];
        b.copy_from_slice(&rec);
        let _ = Superblock::decode(&b);
        reseal(&mut b);
        b[..8].copy_from_slice(b"CXLSWPTL");
        reseal(&mut b);
        let _ = Superblock::decode(&b);
    }
}

#[test]
fn a_header_for_another_device_is_refused() {
    let g = Geometry {
        block_size: 128 << 20,
        block_count: 4,
        header_blocks: 1,
        host_slots: 8,
    };
    let b = ready([9; 16], g).encode();
    for other in [
        Geometry {
            block_count: 8,
            ..g
        },
        Geometry {
            block_size: 256 << 20,
            ..g
        },
        Geometry {
            header_blocks: 2,
            ..g
        },
    ] {
        assert!(matches!(
            boot_state(&start_with(&b), &other),
            BootState::Refused(HeaderError::Geometry(_))
        ));
    }
    assert!(
        matches!(
            boot_state(&b, &g),
            BootState::Refused(HeaderError::Geometry(_))
        ),
        "short read"
    );
}
