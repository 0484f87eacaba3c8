//! portalctl's library: the fabric model and its analysis, usable from the
//! binary, the integration tests and the benches.

pub mod analysis;
pub mod fabric;
pub mod inventory;
pub mod pagetypeinfo;
pub mod route;
pub mod synth;
pub mod uapi;
