//! The thick target's items under their earlier paths (see `driver::thick`).

pub use crate::driver::thick::devices::DP_DEVINFO_DIR;
pub use crate::driver::thick::node::ThickNode as ThickRt;
pub use crate::thick_spec::ThickSpec;
pub use test_node::probe::{HEALTHZ, ProbeNotReady as NotReady, READYZ, http_status, wait_ready_as_shim as wait_ready};
