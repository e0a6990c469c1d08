//! The Multus meta-plugin as pure logic: configuration, network selection, delegate planning,
//! caches and annotations. Side effects (Kubernetes, plugin execution, network namespaces)
//! belong to the daemon.
//!
//! - [`config`]: `daemon-config.json` (daemon, generator and per-request views) and the merge of
//!   the daemon config over the shim's config
//! - [`conf_files`]: CNI config files and directories (libcni's loading)
//! - [`generate`]: choosing the primary CNI config and rendering `00-multus.conf`
//! - [`pod`]: the pod a request is for, read once
//! - [`k8s_args`]: the two readings of `CNI_ARGS`
//! - [`selection`]: the network selection and default-network annotations, namespace isolation
//! - [`model`]: pods, NADs and selection elements
//! - [`delegate`], [`resolve`]: NADs/files → delegates (cluster network, default networks,
//!   annotation networks, auxiliary chain)
//! - [`plan`]: interface names, CNI_ARGS and capability args of each delegate invocation
//! - [`cache`]: the per-container delegate cache used by DEL
//! - [`status`]: the `network-status` annotation
//! - [`default_route`]: `default-route` gateway checks and result-cache edits
//! - [`error`]: the crate's error type with the reference's message formats
//! - [`hotplug`]: networks that follow the pod (`dynamicNetworks`): attachments to add and remove

#![warn(missing_docs)]

pub mod cache;
pub mod conf_files;
pub mod config;
pub mod default_route;
pub mod delegate;
pub mod error;
pub mod generate;
pub mod hotplug;
pub mod k8s_args;
pub mod model;
pub mod plan;
pub mod pod;
pub mod resolve;
pub mod selection;
pub mod status;
