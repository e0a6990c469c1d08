//! Built-in explanations of known behaviour of implementations, shown next to a failure in
//! reports and the matrix. They explain; they never turn a failure into a pass.

use std::collections::BTreeMap;

const DEBIAN: &str = "containernetworking-plugins 1.1.1 (Debian 12)";

/// The per-version DEL cases (`scenarios/versions/versions-del.yaml`, `versions-verbs.yaml`)
/// that fail for a plugin whose DEL fails when the interface or netns is not there.
const DEL_FAMILIES: &[&str] = &[
    "versions-add-del",
    "versions-del-never-added",
    "versions-del-netns-empty",
    "versions-del-netns-deleted",
    "versions-del-after-failed-add",
];

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn per_version(families: &[&str]) -> impl Iterator<Item = String> {
    families.iter().flat_map(|f| cni::version::ALL.iter().map(move |v| format!("{f}-{v}")))
}

/// Notes for a reference plugin, by its file name.
pub fn builtin(plugin: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut add = |ids: &[String], why: &str| {
        for id in ids {
            m.insert(id.to_string(), why.to_string());
        }
    };
    match plugin {
        "bridge" | "ptp" => add(
            &strings(&["del-netns-empty-host-veth"]),
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
                add(&[format!("versions-add-{v}"), format!("versions-add-del-{v}")], &shape);
            }
            add(&strings(&["versions-check-0.4.0"]), &shape);
            add(
                &strings(&["add-parallel", "add-two-attachments"]),
                "loopback configures 127.0.0.1 in every netns, by design.",
            );
        }
        "static" => add(
            &strings(&["add-parallel", "add-two-attachments"]),
            "static hands the configured address to every attachment, by design.",
        ),
        "host-device" => {
            let ids = [
                "del-never-added",
                "del-twice",
                "del-netns-empty",
                "del-netns-empty-then-netns-deleted",
                "del-netns-deleted",
                "del-after-failed-add",
            ];
            add(
                &strings(&ids).into_iter().chain(per_version(DEL_FAMILIES)).collect::<Vec<_>>(),
                &format!(
                    "{DEBIAN}: host-device's DEL looks the device up in the netns first and fails when it is not \
                     there (never added, already moved back, netns empty or gone); IPAM is released only after \
                     that lookup."
                ),
            )
        }
        "sbr" => add(
            &strings(&[
                "del-never-added",
                "del-twice",
                "del-netns-empty",
                "del-netns-deleted",
                "del-netns-empty-twice",
                "chained-add-check-del",
            ])
            .into_iter()
            .chain(per_version(DEL_FAMILIES))
            .collect::<Vec<_>>(),
            &format!(
                "{DEBIAN}: sbr's DEL fails when the interface is gone (\"Failed to get link\") or the netns is \
                 empty or deleted, instead of succeeding; it also leaves an empty file at a netns path that does \
                 not exist (the harness removes it), so the DEL that follows an ADD into such a path, with the \
                 same CNI_NETNS as runtimes send it, fails with \"unknown FS magic\"."
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
        "check-after-del".to_string(),
        "multus-rs answers CHECK with success when it holds no delegate cache for the container \
         (crates/multus-daemon/src/commands/check.rs: CacheRead::Missing → Ok), so a CHECK after DEL passes; \
         the Go daemon's CHECK is a no-op with clusterNetwork (multus-thick.md §6.2) and passes too. \
         Proposed: fail CHECK (code 999, \"no attachment\") when the cache is missing for an ADDed-then-DELeted \
         container."
            .to_string(),
    );
    m.insert(
        "gc-null-list".to_string(),
        "A daemon defect (found 2026-11-28 on the redesigned commands): \
         crates/multus-daemon/src/commands/status_gc.rs runtime_valid_attachments deserialises \
         cni.dev/valid-attachments as a list and answers 400 for JSON null, which libcni sends for a nil Go \
         slice (no live pods, cni.md §1.4). Proposed: treat null as an empty list."
            .to_string(),
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
