//! `multus-daemon` as a library, so its parts are testable without a process.
//!
//! A request's path (see `docs/architecture.md`):
//! [`server`] (HTTP on the unix socket) → [`handler`] (decode once into a
//! [`request::CniRequest`], recover the pod UID, run under the sandbox lock) →
//! `commands` (crate-private: `add`, `del`, `check`, `status_gc`, `delegate`) → the [`daemon::Seams`]:
//! delegate execution (`cni::exec::Exec`), the [`seams::Cluster`] and [`seams::Netns`].
//!
//! - [`flags`]: Go-style command line (`-config`, `-version`)
//! - [`logging`]: `logLevel`/`logFile`/`logToStderr`/`logOptions` mapped onto tracing
//! - [`kube`]: the production cluster: client, node-scoped pod watch cache; [`nad_cache`] and
//!   [`kube_nads`]: the NADs this node uses; [`multus_node::limits`]: bounded API responses;
//!   [`memory`]: giving memory back after bursts
//! - [`netns`]: the production netns seam (dedicated threads); `routes`: rtnetlink edits
//! - [`confgen`]: writing and maintaining `00-multus.conf`; [`uninstall`]: restart or uninstall
//! - [`reconcile`]: reclaiming attachments whose sandbox is gone
//! - [`metrics`]: Prometheus metrics and the metrics listener
//! - [`devices`]: the production device sources (kubelet, checkpoint, DRA)
//! - `testing`: recording fakes of the seams (feature `testing`, and this crate's tests)

#![warn(missing_docs)]

// perNodeCertificate: the client-certificate manager (see kube::build_client_for).
pub mod admission;
pub mod certs;
pub(crate) mod commands;
pub mod confgen;
pub mod daemon;
pub mod devices;
pub mod dynamic;
pub(crate) mod error;
pub mod flags;
pub mod handler;
pub mod kube;
pub mod kube_nads;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod nad_cache;
pub mod netns;
pub mod profiling;
pub mod reconcile;
pub mod request;
mod routes;
pub mod seams;
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod uninstall;
