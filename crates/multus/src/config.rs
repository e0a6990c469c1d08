//! `daemon-config.json` and the per-request Multus configuration (spec §2).
//!
//! The daemon config file is consumed three ways (§2.2):
//!
//! - [`DaemonConfig`] — daemon/server settings (**D** keys), read once at startup; it also keeps
//!   the whole raw object for the request merge.
//! - [`crate::generate::GeneratorConfig`] — the config-generator settings (**G** keys).
//! - [`merge_request_config`] + [`NetConf`] — on every request the raw daemon object is
//!   shallow-merged over the shim's stdin config (§2.4) and the result is parsed as the Multus
//!   network configuration (**R** keys).
//!
//! [`ShimConfig`] is the small subset of the stdin config the shim itself reads (§4.8 step 2).
//!
//! Differences from the Go reference, all deliberate:
//!
//! - Odd JSON never panics: non-boolean `capabilities` values are ignored, a delegate with an
//!   empty `plugins` list is an error instead of an index panic, a `null` client config is an
//!   error instead of a nil-map panic.
//! - Wrong value types are errors naming the key (Go: `json: cannot unmarshal …`); `null` means
//!   "absent" as in Go.
//! - The merged request config keeps the client's key order (replaced keys stay in place, new
//!   daemon keys are appended) and numbers are kept exactly; Go re-serialises a
//!   `map[string]interface{}` (alphabetical keys, numbers through `float64`).

mod daemon;
mod defaults;
mod error;
pub(crate) mod fields;
mod keys;
mod log_options;
mod merge;
mod netconf;
mod shim;

pub use daemon::{DaemonConfig, PerNodeCertificate};
pub use defaults::*;
pub use error::ConfigError;
pub use fields::FieldError;
pub(crate) use fields::Fields;
pub use keys::*;
pub use log_options::{EffectiveLogOptions, LogOptions};
pub use merge::{merge_request_config, merge_request_config_bytes};
pub use netconf::NetConf;
pub use shim::ShimConfig;

/// Test-only: which keys a parser asked [`Fields`] for, so the `*_KEYS` lists below are checked
/// against the parsers themselves.
#[cfg(test)]
pub(crate) mod key_audit;

#[cfg(test)]
pub(crate) mod tests;
