//! The Multus meta-plugin as pure logic: configuration, network selection, delegate planning,
//! caches and annotations. Side effects (Kubernetes, plugin execution, network namespaces)
//! belong to the daemon.

pub mod model;
