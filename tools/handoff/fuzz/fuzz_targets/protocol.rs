//! Fuzz the protocol's operations on hostile headers: a peer's resealed mutations of a formatted
//! portal, then open, join, claim, heartbeat, give back, quarantine and leave by two hosts. None
//! may panic (overflow checks are on) or wait without end.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cxlsw_handoff::fuzzing::protocol_ops(data);
});
