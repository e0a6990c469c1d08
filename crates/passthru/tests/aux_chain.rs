//! An auxiliary CNI chain as Multus builds it (multus spec §5.11): the conflist
//! `[passthru, tuning]`, run by the cni crate's libcni runtime on a real interface in a network
//! namespace the test creates, with Debian's `tuning` (`/usr/lib/cni/tuning`) setting a sysctl.
//!
//! Needs root, `ip` (iproute2) and containernetworking-plugins; run with `--include-ignored`.
//! A missing prerequisite fails with the reason.

use cni::NetConfList;
use cni::exec::RawExec;
use cni::runtime::{CniRuntime, RuntimeConf};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TUNING: &str = "/usr/lib/cni/tuning";

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if !out.status.success() {
        return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace this test created (`ip netns add`); deleted on drop with all its links.
struct Netns(String);

impl Netns {
    fn create() -> Self {
        let name = format!("passthru-{}", std::process::id());
        ip(&["netns", "add", &name]).unwrap();
        Self(name)
    }
    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
    /// A sysctl as seen from inside the namespace.
    fn sysctl(&self, key: &str) -> String {
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        let out = Command::new("ip").args(["netns", "exec", &self.0, "cat", &file]).output().unwrap();
        assert!(out.status.success(), "reading {file} in {}: {}", self.0, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

#[test]
#[ignore = "needs root, iproute2 and /usr/lib/cni/tuning (containernetworking-plugins)"]
fn passthru_heads_an_auxiliary_chain_whose_tuning_sets_a_sysctl() {
    assert!(is_root(), "this test needs root (network namespaces)");
    assert!(Path::new(TUNING).is_file(), "{TUNING} is missing: install containernetworking-plugins");

    let ns = Netns::create();
    // The pod's interface, made by the cluster network before the auxiliary chain runs.
    let ifname = "net1";
    // (A veth pair with both ends inside: every kernel that runs pods has veth, not all dummy.)
    ip(&["-n", &ns.0, "link", "add", ifname, "type", "veth", "peer", "name", "net1-peer"]).unwrap();
    let key = format!("net.ipv4.conf.{ifname}.rp_filter");
    assert_ne!(ns.sysctl(&key), "2", "the test needs a value other than the one it sets");

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_passthru"), bin.join("passthru")).unwrap();
    std::os::unix::fs::symlink(TUNING, bin.join("tuning")).unwrap();

    let list = NetConfList::from_value(json!({
        "cniVersion": "1.0.0",
        "name": "aux-chain",
        "plugins": [
            {"type": "passthru", "name": "passthru-cni"},
            {"type": "tuning", "sysctl": {key.as_str(): "2"}, "dataDir": dir.path().join("tuning").to_str().unwrap()}
        ]
    }))
    .unwrap();
    let runtime: CniRuntime<RawExec> = CniRuntime::new(
        vec![PathBuf::from(&bin)],
        dir.path().join("cache"),
        RawExec::with_timeout(Duration::from_secs(60)),
    );
    let conf = RuntimeConf {
        container_id: format!("passthru-{}", std::process::id()),
        netns: ns.path(),
        ifname: ifname.to_string(),
        ..RuntimeConf::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let result = rt.block_on(runtime.add_network_list(&list, &conf)).unwrap();
    assert_eq!(result.cni_version.to_string(), "1.0.0");
    assert_eq!(ns.sysctl(&key), "2", "tuning, chained after passthru, set the sysctl in the pod's namespace");

    rt.block_on(runtime.check_network_list(&list, &conf)).unwrap();
    rt.block_on(runtime.del_network_list(&list, &conf)).unwrap();
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}
