//! Userspace tests of the driver's shared `core`-only code (the same files
//! the kernel builds; KUnit runs its own cases of them in the guest).

use proptest::prelude::*;

use crate::crc32c::{crc32c, update};
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
