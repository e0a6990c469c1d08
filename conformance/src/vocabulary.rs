//! The names a case file may use for checks and actions: the model validates against them,
//! the checks and actions implement them.

/// Checks a case may name.
pub const KNOWN_CHECKS: &[&str] = &[
    // the attachment's interface exists in its netns with the result's MAC and addresses (§5.23)
    "interface-matches-result",
    // the attachment's interface is gone from its netns (or the netns is gone)
    "no-interface",
    // the scratch host netns holds no veth (no host-side leftover)
    "no-host-veth",
    // the IPAM directory holds no reservation
    "ipam-released",
    // the IPAM directory holds the reservations of `result`
    "ipam-holds",
    // saved results `p0..p<count-1>` have pairwise distinct addresses
    "distinct-addresses",
    // fake-cni recorded calls (of the attachment's container) matching `command`, `network`,
    // `match` {JSON pointer: value}; then `count`, `ifname`, `args_contains`, `runtime_config`,
    // `expect` {pointer: value | "$present" | "$absent"} on every one, `order` of `order_key`
    "delegate-calls",
    // the runtime's result cache `<cache_dir>/results/<net>-<cid>-<net_ifname>` exists
    // (`exists: true`, kind cniCacheV1) or not
    "result-cache",
    // the pod's annotation `key` exists / contains / is JSON with entries (`names`,
    // `interfaces`, `ips`, `default_first`, `device_info` {interface: value | "$present" | "$absent"})
    "annotation",
    // Multus' delegate cache file `<cniDir>/<cid>` exists (`exists: true`) or not
    "cache-file",
    // the daemon wrote `00-multus.conf` with the given keys
    "multus-conf",
    // thick: the per-attachment device-info file named in the recorded ADD's
    // runtimeConfig.CNIDeviceInfoFile (`network` filter) exists (`exists`, default true),
    // holding `pci_address`
    "device-info-file",
    // thick: events about the attachment's pod with `reason` (and `type`, `message_contains`)
    // exist (`exists`, default true)
    "events",
];

/// Actions a case may name.
pub const KNOWN_ACTIONS: &[&str] = &[
    // `ip` with templated `args` (e.g. `[-n, "{{netns_name}}", link, del, eth0]`)
    "ip",
    // delete the attachment's netns (its path stops existing)
    "delete-netns",
    // create a veth pair inside the attachment's netns named `ifname`
    "make-link",
    // `count` concurrent ADDs (or `command: DEL`) on attachments p0..p<count-1>
    "parallel",
    // thick: stop / start the daemon
    "stop-daemon",
    "start-daemon",
    // thick: delete the attachment's pod from the API server
    "delete-pod",
    // thick: delete the delegate record (calls.jsonl)
    "clear-records",
    // thick: merge `annotations` / `labels` (templated; null removes) into the attachment's
    // pod through the API server, as `kubectl annotate` / `kubectl label` would
    "update-pod",
    "sleep",
];
