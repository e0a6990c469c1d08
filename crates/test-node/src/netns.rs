//! Pod sandboxes: unique network namespaces, and what is inside them.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A short name unique to this process and call (interface names must stay ≤ 15 bytes).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}{n}", std::process::id() % 100_000)
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

pub fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("running ip")
}

/// Why a test with network namespaces and Debian's plugins cannot run here, if it cannot.
pub fn root_skip_reason() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for p in ["/usr/lib/cni/bridge", "/usr/lib/cni/macvlan", "/usr/lib/cni/host-local"] {
        if !Path::new(p).exists() {
            return Some(format!("needs {p} (apt-get install containernetworking-plugins)"));
        }
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2".into());
    }
    crate::bins::missing_bins()
}

/// A pod as the runtime sees it.
#[derive(Debug, Clone)]
pub struct PodSandbox {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container_id: String,
    pub netns: String,
}

/// Why a sandbox's namespace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("running ip: {0}")]
    Run(#[source] std::io::Error),
    #[error("`ip {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
}

fn try_ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip").args(args).output().map_err(NetnsError::Run)?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetnsError::Failed { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
}

impl PodSandbox {
    /// A new namespace `netns` with loopback up, for a caller that reports errors rather
    /// than panics (xtask); gone again when loopback cannot be brought up. The caller removes it.
    pub fn try_create(
        namespace: &str,
        name: &str,
        uid: &str,
        container_id: String,
        netns: String,
    ) -> Result<Self, NetnsError> {
        try_ip(&["netns", "add", &netns])?;
        if let Err(e) = try_ip(&["-n", &netns, "link", "set", "lo", "up"]) {
            let _ = ip(&["netns", "del", &netns]);
            return Err(e);
        }
        Ok(Self { namespace: namespace.into(), name: name.into(), uid: uid.into(), container_id, netns })
    }

    /// A new namespace `netns` with loopback up; the caller removes it (a node's cleanup does).
    pub fn create(namespace: &str, name: &str, uid: &str, netns: String) -> Self {
        let out = ip(&["netns", "add", &netns]);
        assert!(out.status.success(), "ip netns add: {}", String::from_utf8_lossy(&out.stderr));
        let _ = ip(&["-n", &netns, "link", "set", "lo", "up"]);
        Self { namespace: namespace.into(), name: name.into(), uid: uid.into(), container_id: unique("cid-"), netns }
    }

    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }

    pub fn cni_args(&self) -> String {
        crate::shim::cni_args(&self.namespace, &self.name, &self.container_id, &self.uid)
    }
}

/// Interfaces in a namespace (name → IPv4 CIDRs), loopback excluded.
pub fn pod_addresses(netns: &str) -> Vec<(String, Vec<String>)> {
    let out = ip(&["-n", netns, "-j", "addr"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(vec![]));
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo")
        .map(|l| {
            let name = l["ifname"].as_str().unwrap_or("").to_string();
            let addrs = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["family"] == "inet")
                .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
                .collect();
            (name, addrs)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs root"]
    fn a_sandbox_namespace_is_made_once_and_a_second_is_an_error() {
        let netns = unique("tnsb");
        let sb = PodSandbox::try_create("ns", "p", "uid", "cid".into(), netns.clone()).unwrap();
        assert_eq!(sb.netns_path(), format!("/var/run/netns/{netns}"));
        let again = PodSandbox::try_create("ns", "p", "uid", "cid".into(), netns.clone());
        let _ = ip(&["netns", "del", &netns]);
        assert!(matches!(again, Err(NetnsError::Failed { .. })), "{again:?}");
    }
}
