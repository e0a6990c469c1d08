//! Built-in explanations of known behaviour of implementations, shown next to a failure in
//! reports and the matrix. They explain; they never turn a failure into a pass.

use std::collections::BTreeMap;

const DEBIAN: &str = "containernetworking-plugins 1.1.1 (Debian 12)";

/// Notes for a reference plugin, by its file name.
pub fn builtin(plugin: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut add = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    if matches!(plugin, "bridge" | "ptp") {
        add(
            "del-netns-empty-host-veth",
            format!(
                "{DEBIAN}: with an empty CNI_NETNS, DEL only releases IPAM (cmdDel returns after ipam.ExecDel): the host \
                 veth is found through the container end, which cannot be reached without the netns. It goes when the \
                 runtime deletes the netns (del-netns-empty-then-netns-deleted passes)."
            ),
        );
    }
    if plugin == "loopback" {
        for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"] {
            add(
                &format!("versions-add-{v}"),
                format!(
                    "{DEBIAN}: loopback answers every version in the 1.0.0 shape (interfaces/ips without version)."
                ),
            );
        }
        add("add-parallel", "loopback configures 127.0.0.1 in every netns, by design.".to_string());
    }
    if plugin == "host-device" {
        let why = format!(
            "{DEBIAN}: host-device's DEL looks for the device in the netns and fails when it is not there (never              added, already moved back, netns gone or empty); IPAM is released only after that lookup."
        );
        for id in [
            "del-never-added",
            "del-twice",
            "del-netns-empty",
            "del-netns-empty-then-netns-deleted",
            "del-netns-deleted",
        ] {
            add(id, why.clone());
        }
    }
    if plugin == "sbr" {
        let why = format!(
            "{DEBIAN}: sbr's DEL fails when the interface is gone (\"Failed to get link\") or the netns is empty or              deleted, instead of succeeding (it also leaves an empty file at a deleted netns path, which the harness              removes)."
        );
        for id in ["del-never-added", "del-twice", "del-netns-empty", "del-netns-deleted", "chained-add-check-del"] {
            add(id, why.clone());
        }
    }
    if plugin == "static" {
        add("add-parallel", "static hands the configured address to every attachment, by design.".to_string());
    }
    m
}

/// Notes for multus-rs's thick pair (shim + daemon + Debian's bridge as cluster network).
pub fn multus_rs() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        "del-netns-empty-host-veth".to_string(),
        format!(
            "Inherent, not a daemon defect: multus-rs passes the runtime's empty CNI_NETNS to the cluster-network \
             delegate unchanged, as libcni and the Go daemon do (multus-thick.md §6.1). The bridge plugin ({DEBIAN}) \
             then releases IPAM only and keeps the host veth, exactly as when the runtime calls it directly \
             (same failure in the bridge column); the veth goes when the runtime deletes the netns \
             (del-netns-empty-then-netns-deleted passes). Recorded through a wrapper, the bridge gets the same DEL in \
             both runs: CNI_NETNS empty, the ADD result as prevResult; only CNI_ARGS and CNI_PATH differ."
        ),
    );
    m.insert(
        "check-without-prevresult".to_string(),
        "A thick plugin keeps its delegates' results: multus-rs CHECKs every delegate with the prevResult from its \
         own result cache, so a runtime's missing prevResult does not fail it (the Go daemon's CHECK is a no-op \
         with clusterNetwork, multus-thick.md §6.2, quirk 28)."
            .to_string(),
    );
    m
}
