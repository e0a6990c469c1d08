//! The kubelet's side of the Container Runtime Interface (runtime.v1), for tests that drive a real
//! runtime (containerd's CRI plugin, CRI-O) the way the kubelet does: the runtime then loads
//! `00-multus.conf` and runs `multus-shim` itself.
//!
//! [`sandbox`] builds what the kubelet sends and reads what the runtime answers (pure, tested);
//! [`CriClient`] is the gRPC client on the runtime's unix socket.

mod client;
pub mod sandbox;

pub use client::{CriClient, CriError};
pub use sandbox::{NetworkCondition, PortMap, SandboxSpec, SandboxView};

/// The generated runtime.v1 messages and client.
#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod pb {
    tonic::include_proto!("runtime.v1");
}
