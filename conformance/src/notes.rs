//! Built-in explanations of known behaviour of reference plugins, shown next to a failure in
//! reports. They explain; they never turn a failure into a pass.

use std::collections::BTreeMap;

pub fn builtin(plugin: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut add = |k: &str, v: &str| {
        m.insert(k.to_string(), v.to_string());
    };
    if plugin == "bridge" || plugin == "ptp" {
        add(
            "versions-add-1.1.0",
            "containernetworking-plugins 1.1.1 (Debian 12) is built on libcni 1.1 and supports CNI up to 1.0.0 only (cni.md §0).",
        );
    }
    m
}
