//! Thick targets: a shim binary, a daemon started by a command, a daemon-config template, and
//! the API server they talk to (`kube-mock`, started here, or an existing one).
//!
//! The same description runs multus-rs (the default, from the cargo target dir) and the Go
//! multus thick plugin (binaries given by the user; the Go daemon only supports in-cluster
//! config, so `in_cluster: true` starts `kube-mock --tls --token … --in-cluster-dir …` and
//! passes `KUBERNETES_SERVICE_HOST`/`PORT`; see README.md for the bind-mount wrapper).
//!
//! `node` starts and stops what the shim talks to (through the shared test-node crate, whose
//! `probe` is the readiness wait as the shim does it); `driver` runs cases against it with
//! `objects` (API objects), `devices` (the fake kubelet's script) and `checks`.

pub mod checks;
pub mod devices;
pub mod driver;
pub mod node;
pub mod objects;
