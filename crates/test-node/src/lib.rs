//! A Multus node on this machine, for the daemon's tests, the bench example, xtask and the
//! conformance harness's thick target (which uses its pieces without the in-process API).
//!
//! - [`Node`]: the API server (kube-mock in this process), a directory tree, delegates (Debian's
//!   real plugins or fake-cni), an optional fake kubelet, and multus-daemon as a real process.
//! - [`PodSandbox`]: a unique network namespace for a pod; [`Node::sandbox`] makes one.
//! - [`KubeMockProcess`], [`DaemonProcess`]: kube-mock's binary and multus-daemon as processes,
//!   with typed errors, for a node outside the test process (xtask's, which stops them on Ctrl-C).
//! - [`ShimCall`]: the one way multus-shim is started — as a container runtime starts it.
//! - [`require`]: the one way a test says it cannot run here (counted as skipped).
//! - [`DaemonProcess`], [`FakeKubelet`], [`spawn_announcing`] (kube-mock's binary), [`Cleanup`]:
//!   the node's processes, started and stopped by PID; [`wait_ready`] (multus-rs) and
//!   [`wait_ready_as_shim`] (any Multus daemon, `/healthz` for one without `/readyz`).
//!
//! Everything a node creates (processes, namespaces, links, directories) goes when it drops.

pub mod announce;
pub mod api_binary;
pub mod bins;
#[cfg(feature = "in-process-api")]
pub mod builder;
pub mod cleanup;
pub mod daemon;
pub mod kubelet;
pub mod netns;
#[cfg(feature = "in-process-api")]
pub mod node;
pub mod objects;
pub mod probe;
pub mod rootfs;
pub mod shim;
pub mod skip;

pub use announce::spawn_announcing;
pub use api_binary::{ApiStartError, KubeMockProcess};
pub use bins::{bin, missing_bins};
#[cfg(feature = "in-process-api")]
pub use builder::NodeBuilder;
pub use cleanup::{Cleanup, stop_child};
pub use daemon::{DaemonProcess, NotReady, ready, wait_ready};
pub use kubelet::FakeKubelet;
pub use netns::{NetnsError, PodSandbox, ip, is_root, pod_addresses, root_skip_reason, unique};
#[cfg(feature = "in-process-api")]
pub use node::{Caller, Node};
pub use objects::{nad, pod};
pub use probe::{HEALTHZ, ProbeNotReady, READYZ, http_status, wait_ready_as_shim};
pub use shim::{ShimCall, ShimRun, cni_args};
pub use skip::require;
