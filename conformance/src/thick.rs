//! The thick target's items under their earlier paths (see `driver::thick`).

pub use crate::driver::thick::devices::DP_DEVINFO_DIR;
pub use crate::driver::thick::node::ThickNode as ThickRt;
pub use crate::driver::thick::readiness::{HEALTHZ, NotReady, READYZ, http_status, wait_ready};
pub use crate::thick_spec::ThickSpec;
