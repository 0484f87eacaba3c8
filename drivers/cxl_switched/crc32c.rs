// SPDX-License-Identifier: GPL-2.0

//! CRC32C (Castagnoli), as every record of the portal handoff header carries.
//!
//! `core`-only, table-driven, with the table computed at compile time, so
//! that the driver and the userspace tools (which include this file through
//! `#[path]`) compute the same checksum with the same code. Parameters:
//! reflected polynomial `0x82f63b78`, initial value and final XOR `!0`.

/// The reflected CRC32C polynomial.
const POLY: u32 = 0x82f6_3b78;

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static TABLE: [u32; 256] = make_table();

/// Continues a CRC32C over `data` from the raw (not finalised) state
/// `state`; start with `!0` and finish with `!state`.
pub(crate) fn update(mut state: u32, data: &[u8]) -> u32 {
    for &b in data {
        // The index is masked to 0..=255, so it is always in bounds.
        state = TABLE[((state ^ u32::from(b)) & 0xff) as usize] ^ (state >> 8);
    }
    state
}

/// CRC32C of `data`.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    !update(!0, data)
}

#[cfg(CONFIG_CXL_SWITCHED_KUNIT_TEST)]
#[kernel::macros::kunit_tests(cxl_switched_crc32c)]
mod tests {
    use super::*;

    // Check values from RFC 3720, appendix B.4, and the CRC catalogue.
    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let mut inc = [0u8; 32];
        for (i, b) in inc.iter_mut().enumerate() {
            *b = i as u8;
        }
        assert_eq!(crc32c(&inc), 0x46dd_794e);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data = b"switched CXL memory as typed NUMA nodes";
        let (a, b) = data.split_at(11);
        assert_eq!(!update(update(!0, a), b), crc32c(data));
    }
}
