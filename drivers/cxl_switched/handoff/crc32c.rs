// SPDX-License-Identifier: GPL-2.0

//! CRC32C (Castagnoli), as every record of the portal handoff header carries.
//!
//! Table-driven (slicing-by-8), with the tables computed at compile time, so that the driver and
//! the userspace tools compute the same checksum with the same code. Parameters: reflected
//! polynomial `0x82f63b78`, initial value and final XOR `!0`.

/// The reflected CRC32C polynomial.
const POLY: u32 = 0x82f6_3b78;

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        // CAST: `i < 256`; `From` is not usable in a `const fn`.
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

/// Slicing-by-8 tables: `TABLES[k][b]` is the CRC of byte `b` followed by
/// `k` zero bytes, so that eight bytes are folded in per step.
const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    t[0] = make_table();
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            // CAST: masked to a byte; `From` is not usable in a `const fn`.
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// Continues a CRC32C over `data` from the raw (not finalised) state
/// `state`; start with `!0` and finish with `!state`.
pub(crate) fn update(mut state: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let lo = (state ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes();
        // Every index is a byte: always in bounds of a 256-entry table.
        state = t[7][usize::from(lo[0])]
            ^ t[6][usize::from(lo[1])]
            ^ t[5][usize::from(lo[2])]
            ^ t[4][usize::from(lo[3])]
            ^ t[3][usize::from(c[4])]
            ^ t[2][usize::from(c[5])]
            ^ t[1][usize::from(c[6])]
            ^ t[0][usize::from(c[7])];
    }
    for &b in chunks.remainder() {
        let [low, ..] = state.to_le_bytes();
        state = t[0][usize::from(low ^ b)] ^ (state >> 8);
    }
    state
}

/// CRC32C of `data`.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    !update(!0, data)
}
