//! What the Multus daemon and `multusctl` both read of a node, without the daemon's server:
//!
//! - [`client`]: the kube client the daemon builds (kubeconfig or in-cluster), with
//!   [`limits`] bounding every response it reads;
//! - [`objects`]: a Pod reduced to what Multus reads ([`multus::model::PodInfo`]) and the
//!   NetworkAttachmentDefinition resource;
//! - [`attachments`]: the node's delegate caches as attachments, and the verdict on each;
//! - [`netns`]: whether a network namespace a runtime gave still exists, checked without
//!   blocking and without trusting the path.

pub mod attachments;
pub mod client;
pub mod limits;
pub mod netns;
pub mod objects;

/// `n` bytes for a person: `512 B`, `1.5 KiB`, `32.0 MiB`.
pub fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}
