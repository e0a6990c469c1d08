//! Built-in explanations of known behaviour of implementations, shown next to a failure in
//! reports and the matrix. They explain; they never turn a failure into a pass.

use std::collections::BTreeMap;

const DEBIAN: &str = "containernetworking-plugins 1.1.1 (Debian 12)";

/// Notes for a reference plugin, by its file name.
pub fn builtin(plugin: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut add = |ids: &[&str], why: &str| {
        for id in ids {
            m.insert(id.to_string(), why.to_string());
        }
    };
    match plugin {
        "bridge" | "ptp" => add(
            &["del-netns-empty-host-veth"],
            &format!(
                "{DEBIAN}: with an empty CNI_NETNS, DEL only releases IPAM: the host veth is found through the \
                 container end, which cannot be reached without the netns. It goes when the runtime deletes the \
                 netns (del-netns-empty-then-netns-deleted passes)."
            ),
        ),
        "loopback" => {
            let shape =
                format!("{DEBIAN}: loopback answers every version in the 1.0.0 shape (no ip4/ip6, no ips[].version).");
            for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"] {
                add(&[&format!("versions-add-{v}"), &format!("versions-add-del-{v}")], &shape);
            }
            add(&["versions-check-0.4.0"], &shape);
            add(&["add-parallel", "add-two-attachments"], "loopback configures 127.0.0.1 in every netns, by design.");
        }
        "static" => add(
            &["add-parallel", "add-two-attachments"],
            "static hands the configured address to every attachment, by design.",
        ),
        "host-device" => add(
            &[
                "del-never-added",
                "del-twice",
                "del-netns-empty",
                "del-netns-empty-then-netns-deleted",
                "del-netns-deleted",
            ],
            &format!(
                "{DEBIAN}: host-device's DEL looks the device up in the netns first and fails when it is not there \
                 (never added, already moved back, netns empty or gone); IPAM is released only after that lookup."
            ),
        ),
        "sbr" => add(
            &["del-never-added", "del-twice", "del-netns-empty", "del-netns-deleted", "chained-add-check-del"],
            &format!(
                "{DEBIAN}: sbr's DEL fails when the interface is gone (\"Failed to get link\") or the netns is \
                 empty or deleted, instead of succeeding; it also leaves an empty file at a deleted netns path \
                 (the harness removes it)."
            ),
        ),
        _ => {}
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
             then releases IPAM only and keeps the host veth, exactly as when the runtime calls it directly (same \
             failure in the bridge column); the veth goes when the runtime deletes the netns \
             (del-netns-empty-then-netns-deleted passes). Recorded through a wrapper, the bridge gets the same DEL \
             in both runs: CNI_NETNS empty, the ADD result as prevResult; only CNI_ARGS and CNI_PATH differ."
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
