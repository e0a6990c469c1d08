//! Per-delegate invocation planning (spec §5.13): interface name, `CNI_ARGS` and capability args.
//!
//! Decisions (spec §13):
//!
//! * **quirk 18** — besides the seven keys Multus knows (`portMappings`, `bandwidth`, `ips`,
//!   `mac`, `infinibandGUID`, `deviceID`, `CNIDeviceInfoFile`), every other key of the runtime's
//!   `runtimeConfig` (e.g. `io.kubernetes.cri.pod-annotations`, `dns`, `cgroupPath`) is passed
//!   through to a delegate that declares it in its `capabilities` (any plugin of a conflist). The
//!   reference drops them although `00-multus.conf` advertises the primary's capabilities to the
//!   runtime. libcni still gives each plugin only the keys it declares.
//! * **quirk 17 / process `CNI_ARGS`** — the daemon's own `CNI_ARGS` (a parameter here, never read
//!   from the environment) is merged like the reference does (values may contain `=`, items
//!   without `=` skipped, an empty value of an existing key is filled), except that a key already
//!   present with a non-empty value is not appended a second time (the reference appends a
//!   duplicate, and libcni's last-wins rule then lets the process environment override the pod
//!   identity).
//! * `MAC`/`IP` are appended only for ADD, after the merged keys, as in the reference; a malformed
//!   request is a [`PlanError`] that the daemon must treat as that delegate's ADD failure
//!   (rollback included).

use crate::delegate::Delegate;
use crate::k8s_args::K8sArgs;
use crate::model::{Bandwidth, PortMapping};
use cni::result::CniResult;
use serde_json::{Map, Value, json};

/// Directory of CNI-written device-info files (`nadutils.GetCNIDeviceInfoPath`).
pub const CNI_DEVICE_INFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";
/// Directory of device-plugin-written device-info files.
pub const DP_DEVICE_INFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

/// The runtime capability keys Multus itself interprets.
pub const KNOWN_CAPABILITY_KEYS: [&str; 7] =
    ["portMappings", "bandwidth", "ips", "mac", "infinibandGUID", "deviceID", "CNIDeviceInfoFile"];

/// Why a selection's requests cannot be passed to a delegate; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `mac` is not a MAC address.
    #[error("DelegateAdd: failed to parse mac address {0:?}")]
    InvalidMac(String),
    /// An entry of `ips` is not an IP address (CIDR notation accepted).
    #[error("DelegateAdd: failed to parse IP address {0:?}")]
    InvalidIp(String),
}

/// The runtime's `runtimeConfig` (from the Multus request config), leniently parsed: a value of
/// the wrong type is ignored rather than fatal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    /// `portMappings`.
    pub port_mappings: Vec<PortMapping>,
    /// `bandwidth`.
    pub bandwidth: Option<Bandwidth>,
    /// `ips`.
    pub ips: Vec<String>,
    /// `mac`.
    pub mac: String,
    /// `infinibandGUID`.
    pub infiniband_guid: String,
    /// `deviceID`.
    pub device_id: String,
    /// `CNIDeviceInfoFile`: where the delegate may write its device information.
    pub cni_device_info_file: String,
    /// Every other key, kept as given (quirk 18).
    pub other: Map<String, Value>,
}

impl RuntimeConfig {
    /// From the `runtimeConfig` object (anything else → empty).
    pub fn from_value(v: &Value) -> Self {
        let Some(m) = v.as_object() else { return Self::default() };
        let string = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Self {
            port_mappings: m
                .get("portMappings")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            bandwidth: m.get("bandwidth").and_then(|v| serde_json::from_value(v.clone()).ok()),
            ips: m.get("ips").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default(),
            mac: string("mac"),
            infiniband_guid: string("infinibandGUID"),
            device_id: string("deviceID"),
            cni_device_info_file: string("CNIDeviceInfoFile"),
            other: m
                .iter()
                .filter(|(k, _)| !KNOWN_CAPABILITY_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Which CNI operation the invocation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// CNI ADD.
    Add,
    /// CNI CHECK.
    Check,
    /// CNI DEL.
    Del,
}

/// Request-wide inputs of planning.
#[derive(Debug, Clone)]
pub struct PlanContext<'a> {
    /// `CNI_CONTAINERID` of the request.
    pub container_id: &'a str,
    /// `CNI_IFNAME` of the request (the master's interface).
    pub ifname: &'a str,
    /// The pod as the delegates see it (§5.2, with the UID the command decided) and the
    /// sandbox ID: the `K8S_POD_*` keys of every delegate's `CNI_ARGS`.
    pub args: &'a K8sArgs,
    /// The request's `runtimeConfig`, parsed.
    pub runtime_config: Option<&'a RuntimeConfig>,
    /// The daemon process's own `CNI_ARGS`, if any.
    pub process_cni_args: Option<&'a str>,
}

impl Default for PlanContext<'_> {
    fn default() -> Self {
        Self { container_id: "", ifname: "", args: &NO_ARGS, runtime_config: None, process_cni_args: None }
    }
}

/// The pod of a context that names none.
static NO_ARGS: K8sArgs = K8sArgs::EMPTY;

/// Everything needed to run one delegate.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegateInvocation {
    /// `CNI_IFNAME` for the delegate.
    pub ifname: String,
    /// `CNI_ARGS` pairs in order.
    pub cni_args: Vec<(String, String)>,
    /// libcni capability args (`runtimeConfig` of the delegate); libcni filters them per plugin.
    pub capability_args: Map<String, Value>,
    /// The CNI network name (libcni result-cache name, per-delegate error prefix).
    pub network_name: String,
    /// `CNIDeviceInfoFile` given to the delegate, if any (read for `device-info`, removed on DEL).
    pub device_info_file: Option<String>,
}

impl DelegateInvocation {
    /// `CNI_ARGS` as the environment string.
    pub fn cni_args_string(&self) -> String {
        self.cni_args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }
}

/// Interface name of delegate `index` (§5.13): requested name; else `CNI_IFNAME` for the master;
/// else `net<index>` (position in the whole delegate list).
pub fn interface_name(delegate: &Delegate, index: usize, cni_ifname: &str) -> String {
    if !delegate.ifname_request.is_empty() {
        delegate.ifname_request.clone()
    } else if delegate.is_master {
        cni_ifname.to_string()
    } else {
        format!("net{index}")
    }
}

/// `CNIDeviceInfoFile` path: `<dir>/<"<delegate name>-<containerID>_<ifname>" with "/"→"-">`.
pub fn device_info_path(delegate_name: &str, container_id: &str, ifname: &str) -> String {
    format!("{CNI_DEVICE_INFO_DIR}/{}", format!("{delegate_name}-{container_id}_{ifname}").replace('/', "-"))
}

/// Device-plugin device-info file: `<dp dir>/<resourceName "/"→"-">-<deviceID "/"→"-">-device.json`.
pub fn dp_device_info_path(resource_name: &str, device_id: &str) -> String {
    format!("{DP_DEVICE_INFO_DIR}/{}-{}-device.json", resource_name.replace('/', "-"), device_id.replace('/', "-"))
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx:…`, `xx-xx-…` or `xxxx.xxxx.…`.
pub fn is_valid_hardware_address(s: &str) -> bool {
    let hex = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit());
    let valid_len = |n: usize| matches!(n, 6 | 8 | 20);
    if s.len() < 14 {
        return false;
    }
    let b = s.as_bytes();
    if b[2] == b':' || b[2] == b'-' {
        let sep = b[2] as char;
        let parts: Vec<&str> = s.split(sep).collect();
        valid_len(parts.len()) && parts.iter().all(|p| p.len() == 2 && hex(p))
    } else if b[4] == b'.' {
        let parts: Vec<&str> = s.split('.').collect();
        valid_len(parts.len() * 2) && parts.iter().all(|p| p.len() == 4 && hex(p))
    } else {
        false
    }
}

/// An IP (`net.ParseIP`) or, when it contains `/`, a CIDR (`net.ParseCIDR`).
pub fn is_valid_ip_request(s: &str) -> bool {
    if s.contains('/') { s.parse::<ipnet::IpNet>().is_ok() } else { s.parse::<std::net::IpAddr>().is_ok() }
}

fn base_cni_args(ctx: &PlanContext<'_>) -> Vec<(String, String)> {
    let mut args: Vec<(String, String)> = [
        ("IgnoreUnknown", "true"),
        ("K8S_POD_NAMESPACE", ctx.args.pod.namespace.as_str()),
        ("K8S_POD_NAME", ctx.args.pod.name.as_str()),
        ("K8S_POD_INFRA_CONTAINER_ID", ctx.args.infra_container_id.as_str()),
        ("K8S_POD_UID", ctx.args.uid_or_empty()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(extra) = ctx.process_cni_args.filter(|s| !s.is_empty()) {
        for item in extra.split(';') {
            let Some((key, value)) = item.split_once('=') else { continue };
            match args.iter_mut().find(|(k, _)| k == key) {
                Some(existing) => {
                    if existing.1.is_empty() && !value.is_empty() {
                        existing.1 = value.to_string();
                    }
                }
                None => args.push((key.to_string(), value.to_string())),
            }
        }
    }
    args
}

/// Plan delegate `index` of the list for `op`.
pub fn plan_invocation(
    delegate: &Delegate,
    index: usize,
    ctx: &PlanContext<'_>,
    op: Operation,
) -> Result<DelegateInvocation, PlanError> {
    let ifname = interface_name(delegate, index, ctx.ifname);
    let mut cni_args = base_cni_args(ctx);
    if op == Operation::Add {
        if !delegate.mac_request.is_empty() {
            if !is_valid_hardware_address(&delegate.mac_request) {
                return Err(PlanError::InvalidMac(delegate.mac_request.clone()));
            }
            cni_args.push(("MAC".into(), delegate.mac_request.clone()));
        }
        if !delegate.ip_request.is_empty() {
            if let Some(bad) = delegate.ip_request.iter().find(|ip| !is_valid_ip_request(ip)) {
                return Err(PlanError::InvalidIp(bad.clone()));
            }
            cni_args.push(("IP".into(), delegate.ip_request.join(",")));
        }
    }

    // mergeCNIRuntimeConfig: the runtime's values, overridden by the delegate's for non-masters.
    let default_rc = RuntimeConfig::default();
    let rc = ctx.runtime_config.unwrap_or(&default_rc);
    let mut port_mappings = &rc.port_mappings;
    let mut bandwidth = rc.bandwidth.as_ref();
    let mut ips = &rc.ips;
    let mut mac = rc.mac.as_str();
    let mut guid = rc.infiniband_guid.as_str();
    let mut device_id = rc.device_id.as_str();
    if !delegate.is_master {
        if !delegate.port_mappings_request.is_empty() {
            port_mappings = &delegate.port_mappings_request;
        }
        if delegate.bandwidth_request.is_some() {
            bandwidth = delegate.bandwidth_request.as_ref();
        }
        if !delegate.ip_request.is_empty() {
            ips = &delegate.ip_request;
        }
        if !delegate.mac_request.is_empty() {
            mac = &delegate.mac_request;
        }
        if !delegate.infiniband_guid_request.is_empty() {
            guid = &delegate.infiniband_guid_request;
        }
        if !delegate.device_id.is_empty() {
            device_id = &delegate.device_id;
        }
    }
    let device_info_file = if !device_id.is_empty() {
        device_info_path(&delegate.name, ctx.container_id, &ifname)
    } else {
        rc.cni_device_info_file.clone()
    };

    let mut caps = Map::new();
    if !port_mappings.is_empty() {
        caps.insert("portMappings".into(), serde_json::to_value(port_mappings).unwrap_or(Value::Null));
    }
    if let Some(bw) = bandwidth {
        caps.insert("bandwidth".into(), serde_json::to_value(bw).unwrap_or(Value::Null));
    }
    if !ips.is_empty() {
        caps.insert("ips".into(), json!(ips));
    }
    if !mac.is_empty() {
        caps.insert("mac".into(), json!(mac));
    }
    if !guid.is_empty() {
        caps.insert("infinibandGUID".into(), json!(guid));
    }
    if !device_id.is_empty() {
        caps.insert("deviceID".into(), json!(device_id));
    }
    if !device_info_file.is_empty() {
        caps.insert("CNIDeviceInfoFile".into(), json!(device_info_file));
    }
    if !rc.other.is_empty() {
        let declared = delegate.config().capabilities();
        for (k, v) in &rc.other {
            if declared.contains_key(k) {
                caps.insert(k.clone(), v.clone());
            }
        }
    }

    Ok(DelegateInvocation {
        ifname,
        cni_args,
        capability_args: caps,
        network_name: delegate.network_name().to_string(),
        device_info_file: (!device_info_file.is_empty()).then_some(device_info_file),
    })
}

/// Plan every delegate of the list (stops at the first error, returning its index).
pub fn plan_all(
    delegates: &[Delegate],
    ctx: &PlanContext<'_>,
    op: Operation,
) -> Result<Vec<DelegateInvocation>, (usize, PlanError)> {
    delegates.iter().enumerate().map(|(i, d)| plan_invocation(d, i, ctx, op).map_err(|e| (i, e))).collect()
}

/// The `AddedInterface` event message, or `None` when the result has neither interfaces nor IPs
/// (no event then). `Add <ifname> [<addr/prefix> …] from <delegate name>`.
pub fn added_interface_message(ifname: &str, result: &CniResult, delegate_name: &str) -> Option<String> {
    if result.interfaces.is_empty() && result.ips.is_empty() {
        return None;
    }
    let ips: Vec<String> = result.ips.iter().map(|ip| ip.address.to_string()).collect();
    let mut msg = format!("Add {ifname} [{}]", ips.join(" "));
    if !delegate_name.is_empty() {
        msg.push_str(" from ");
        msg.push_str(delegate_name);
    }
    Some(msg)
}

/// The success result returned when the pod does not exist (§5.3, quirk 19 kept for
/// compatibility: runtimes retry a failed ADD forever for a pod that is gone).
pub fn pod_not_found_result(cni_version: &str, ifname: &str, netns: &str) -> Value {
    json!({
        "cniVersion": cni_version,
        "interfaces": [{"name": ifname, "sandbox": netns}],
        "ips": [{"address": "0.0.0.0/0", "gateway": "0.0.0.0"}],
        "dns": {}
    })
}

/// The result to return (§5.16): the master's; if the master produced none, the first later
/// non-`None` result.
pub fn select_result<'r>(delegates: &[Delegate], results: &'r [Option<CniResult>]) -> Option<&'r CniResult> {
    let mut selected: Option<&CniResult> = None;
    for (d, r) in delegates.iter().zip(results) {
        if let Some(r) = r
            && (d.is_master || selected.is_none())
        {
            selected = Some(r);
        }
    }
    selected
}

#[cfg(test)]
mod tests;
