//! The Container Network Interface protocol, without Kubernetes.
//!
//! - [`conf`]: network configurations (single plugin and conflist), unknown keys preserved
//! - [`result`]: results of every spec version and libcni's conversions between them
//! - [`error`]: the CNI error object and well-known codes
//! - [`version`]: spec versions and the VERSION answer
//! - [`args`], [`env`](mod@env), [`validate`]: `CNI_ARGS`, the `CNI_*` environment, name rules
//! - `exec`: finding and running a plugin binary (timeouts, kill, error parsing)
//! - `runtime`: libcni semantics for running networks (chaining, capabilities, result cache)
//! - [`skel`]: writing a CNI plugin as a trait implementation
//!
//! `exec` and `runtime` use tokio and need the `exec` feature (on by default; a plugin that only
//! answers the protocol, like multus-shim, turns it off and compiles no async runtime).

#![warn(missing_docs)]

pub mod args;
pub mod conf;
pub mod env;
pub mod error;
#[cfg(feature = "exec")]
pub mod exec;
pub mod json;
pub mod result;
#[cfg(feature = "exec")]
pub mod runtime;
pub mod skel;
pub mod validate;
pub mod version;

pub use args::CniArgs;
pub use conf::{NetConfList, NetworkConfig, PluginConf};
pub use env::{Command, PluginEnv};
pub use error::CniError;
pub use result::CniResult;
pub use version::{Version, VersionInfo};
