//! Fuzz the portal header decoder and validator: whatever the bytes at the
//! start of a portal, a booting host decides without panicking, and the
//! tables of a header it would join decode without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cxlsw_handoff::header::fuzz_one(data);
});
