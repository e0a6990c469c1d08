//! A cluster of Multus nodes on one machine, for `cargo xtask e2e --local --nodes N`.
//!
//! Every node is a Docker container (started with testcontainers) with its own network
//! namespace, `/etc/cni/net.d`, `/opt/cni/bin`, `/var/lib/cni`, `/run` (a tmpfs, so a restarted
//! container is a rebooted node with the same disk) and pod network namespaces; one kube-mock
//! container serves them all over a Docker network. The node image is built on this machine
//! from the workspace's debug binaries, Debian's delegate plugins and the libraries they load:
//! nothing is pulled.
//!
//! - [`plan`]: names, configs and pods, as data;
//! - [`gocache`]: the cache files the Go thick plugin leaves, for nodes seeded as if Go ran them;
//! - [`agent`]: the node side (`cluster-node`), the DaemonSet's steps and the runtime's calls;
//! - [`report`]: the figures, computed from the recorded calls and the nodes' state, and judged;
//! - [`driver`]: the host side (`cluster-e2e`): image, containers, load, the three scenarios.

pub mod agent;
pub mod driver;
pub mod gocache;
pub mod plan;
pub mod report;
