//! `multus-daemon` as a library, so its parts are testable without a process.
//!
//! - [`flags`]: Go-style command line (`-config`, `-version`)
//! - [`logging`]: `logLevel`/`logFile`/`logToStderr`/`logOptions` mapped onto tracing
//! - [`kube`]: the Kubernetes client and the node-scoped pod and NAD watch caches
//! - [`netns`]: network-namespace work on dedicated threads
//! - [`routes`]: default-route edits over rtnetlink
//! - [`server`]: the HTTP API on the unix socket
//! - [`cni_handler`]: one CNI request: decode, extract, merge config, dispatch
//! - [`ops`]: ADD, DEL, CHECK, STATUS and GC
//! - [`confgen`]: writing and maintaining `00-multus.conf`

pub mod cni_handler;
pub mod confgen;
pub mod flags;
pub mod kube;
pub mod logging;
pub mod netns;
pub mod ops;
pub mod routes;
pub mod server;
