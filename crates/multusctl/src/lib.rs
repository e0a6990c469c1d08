//! `multusctl`: answers an operator's questions about Multus on a cluster or a node.
//!
//! - [`explain`]: the plan the daemon makes for a pod (its own planning functions), and why an
//!   ADD fails;
//! - [`lint`]: NetworkAttachmentDefinitions and pod selections checked before a pod needs them;
//! - [`attachments`]: a node's delegate cache — pods, networks, age, orphans;
//! - [`node`]: the node's effective request config; [`objects`]: pods and NADs from files;
//!   [`cluster`]: the same from the API server; [`render`]: the table output.

pub mod attachments;
pub mod cli;
pub mod cluster;
pub mod explain;
pub mod lint;
pub mod node;
pub mod objects;
pub mod render;
