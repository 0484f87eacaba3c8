// SPDX-License-Identifier: GPL-2.0

//! Random bytes from the kernel's random number generator.
//!
//! C header: [`include/linux/random.h`](srctree/include/linux/random.h)

use crate::bindings;

/// Fills `buf` with random bytes, as `get_random_bytes()` does: from the kernel's
/// cryptographically secure generator, without waiting for it to be seeded (early in boot the
/// bytes may be less random; see `get_random_bytes_wait()`).
pub fn fill_bytes(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) };
}

#[macros::kunit_tests(rust_kernel_random)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_byte_and_differs() {
        // Sixty-four random bytes are all zero, or equal twice, with a chance of 2^-512.
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        fill_bytes(&mut a);
        fill_bytes(&mut b);
        assert!(a.iter().any(|&x| x != 0));
        assert_ne!(a, b);
        fill_bytes(&mut []);
    }
}
