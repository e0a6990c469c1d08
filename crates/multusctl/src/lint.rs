//! `multusctl lint`: check NetworkAttachmentDefinitions (and the selections of pods) before a
//! pod finds the problem.
//!
//! A NAD's config is loaded with the daemon's loader ([`multus::delegate::config_from_nad`],
//! [`multus::delegate::load_delegate`]), so what fails here fails in the daemon with the same
//! text. Beyond that: the `cniVersion` is one CNI knows (and, with `--bin-dir`, one each plugin
//! says it supports in its `VERSION` answer), every plugin and IPAM plugin is present, the
//! capabilities are well-formed, and a NAD does not delegate back to Multus. A pod's selection
//! is checked by planning it ([`crate::explain`]): missing NADs, namespace isolation, interface
//! name clashes, requests no plugin takes, deprecated fields.

use crate::explain::{ExplainRequest, Severity, explain};
use crate::node::NodeConfig;
use crate::objects::NadSet;
use cni::conf::PluginConf;
use cni::exec::{PluginRequest, RawExec};
use cni::version::{Version, VersionInfo};
use multus::model::{NETWORKS_ANNOTATION, Nad, PodInfo};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Capability names of the CNI conventions (and the ones Multus passes): anything else is
/// unusual enough to mention.
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "portMappings",
    "ipRanges",
    "bandwidth",
    "dns",
    "ips",
    "mac",
    "infinibandGUID",
    "deviceID",
    "CNIDeviceInfoFile",
    "aliases",
    "cgroupPath",
    "io.kubernetes.cri.pod-annotations",
];

/// How long a plugin may take to answer `VERSION`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// `Kind namespace/name` (or a file for objects that could not be read).
    pub object: String,
    /// A stable name of the check.
    pub code: &'static str,
    pub message: String,
}

/// All findings of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LintReport {
    /// The objects looked at.
    pub checked: Vec<String>,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl LintReport {
    /// Findings that fail a CI run (errors and warnings).
    pub fn fails(&self) -> bool {
        self.findings.iter().any(|f| f.severity != Severity::Info)
    }
}

/// What a lint run may use.
pub struct LintOptions<'a> {
    /// The node's config: `confDir` for NADs without a config, the planning settings for pods.
    pub node: Option<&'a NodeConfig>,
    /// Where plugins are; `None`: presence and `VERSION` are not checked.
    pub plugin_dirs: Option<&'a [PathBuf]>,
    /// Ask each plugin found for its supported versions (`CNI_COMMAND=VERSION`).
    pub exec_version: bool,
}

struct Linter<'a> {
    opts: &'a LintOptions<'a>,
    conf_dir: PathBuf,
    findings: Vec<Finding>,
}

/// Lint `nads` and the selections of `pods`; the pods' networks are looked up in `pod_nads`
/// (`nads` and whatever else the pods' namespaces and `multusNamespace` hold).
pub fn lint(nads: &NadSet, pods: &[PodInfo], pod_nads: &NadSet, opts: &LintOptions<'_>) -> LintReport {
    let conf_dir = opts
        .node
        .and_then(|n| n.effective.as_ref().ok())
        .map(|c| PathBuf::from(&c.conf_dir))
        .unwrap_or_else(|| PathBuf::from(multus::config::DEFAULT_CONF_DIR));
    let mut linter = Linter { opts, conf_dir, findings: Vec::new() };
    let mut checked = Vec::new();
    let mut notes = Vec::new();
    for nad in nads.values() {
        checked.push(nad_object(nad));
        linter.nad(nad);
    }
    if !pods.is_empty() {
        let stand_in;
        let node = match opts.node.filter(|n| n.effective.is_ok()) {
            Some(n) => n,
            None => {
                notes.push(
                    "pods are planned with a stand-in cluster network and no default networks (give --daemon-config for the node's)"
                        .into(),
                );
                stand_in = stand_in_node();
                &stand_in
            }
        };
        for pod in pods {
            checked.push(format!("Pod {}/{}", pod.namespace, pod.name));
            linter.pod(pod, pod_nads, node);
        }
    }
    let mut findings = linter.findings;
    findings.sort_by(|a, b| (a.severity, &a.object).cmp(&(b.severity, &b.object)));
    LintReport { checked, findings, notes }
}

fn nad_object(nad: &Nad) -> String {
    format!("NetworkAttachmentDefinition {}/{}", nad.namespace, nad.name)
}

/// A node config with one static delegate as the cluster network.
fn stand_in_node() -> NodeConfig {
    let conf = br#"{"cniVersion":"1.1.0","name":"multus-cni-network","type":"multus-shim",
        "delegates":[{"cniVersion":"1.1.0","name":"cluster-network","type":"cluster-network"}]}"#;
    NodeConfig {
        daemon_config_source: "none".into(),
        request_config_source: "a stand-in".into(),
        daemon: multus::config::DaemonConfig::from_bytes(b"{}").expect("an empty daemon config parses"),
        effective: multus::config::NetConf::from_bytes(conf).map_err(|e| e.to_string()),
        notes: Vec::new(),
    }
}

impl Linter<'_> {
    fn add(&mut self, severity: Severity, object: &str, code: &'static str, message: impl Into<String>) {
        self.findings.push(Finding { severity, object: object.to_string(), code, message: message.into() });
    }

    fn nad(&mut self, nad: &Nad) {
        let object = nad_object(nad);
        if nad.config.trim().is_empty() {
            if !self.conf_dir.is_dir() {
                self.add(
                    Severity::Info,
                    &object,
                    "config-on-node",
                    format!(
                        "spec.config is empty: each node uses the file in {} whose network name is {:?} (not checked here)",
                        self.conf_dir.display(),
                        nad.name
                    ),
                );
                return;
            }
            self.add(
                Severity::Info,
                &object,
                "config-on-node",
                format!("spec.config is empty: the config comes from {} on each node", self.conf_dir.display()),
            );
        }
        let bytes = match multus::delegate::config_from_nad(&nad.name, &nad.config, &self.conf_dir) {
            Ok(b) => b,
            Err(e) => return self.add(Severity::Error, &object, "invalid-config", e.to_string()),
        };
        let delegate = match multus::delegate::load_delegate(&bytes, None, "", "") {
            Ok(d) => d,
            Err(e) => return self.add(Severity::Error, &object, "invalid-config", e.to_string()),
        };
        let config = delegate.config();
        let version = config.cni_version().to_string();
        match Version::parse(&version) {
            _ if version.is_empty() => self.add(
                Severity::Warning,
                &object,
                "missing-cni-version",
                "no cniVersion: plugins read the config as version 0.1.0 (the oldest result format)",
            ),
            Ok(v) if v.is_known() => {
                if v < Version::V0_3_0 {
                    self.add(
                        Severity::Warning,
                        &object,
                        "deprecated-cni-version",
                        format!("cniVersion {version} predates the 0.3 result format (interfaces, routes); use 0.4.0 or later"),
                    );
                }
            }
            _ => self.add(
                Severity::Error,
                &object,
                "unsupported-cni-version",
                format!("cniVersion {version:?} is not a CNI version (known: {})", cni::version::ALL.join(", ")),
            ),
        }
        if let Err(e) = cni::validate::validate_network_name(delegate.network_name()) {
            self.add(Severity::Error, &object, "invalid-network-name", format!("network name: {e}"));
        }
        let list = config.to_list();
        for plugin in &list.plugins {
            self.plugin(&object, plugin, &version);
        }
    }

    fn plugin(&mut self, object: &str, plugin: &PluginConf, version: &str) {
        let t = plugin.plugin_type();
        if matches!(t, "multus" | "multus-shim") {
            self.add(
                Severity::Error,
                object,
                "delegates-to-multus",
                format!("plugin type {t:?} is Multus itself: a NAD must name the plugin that creates the interface"),
            );
        }
        match plugin.raw().get("capabilities") {
            None | Some(Value::Null) => {}
            Some(Value::Object(caps)) => {
                for (name, value) in caps {
                    if !value.is_boolean() {
                        self.add(
                            Severity::Warning,
                            object,
                            "capability-not-boolean",
                            format!("{t}: capability {name:?} is {value}, not true/false: it is ignored"),
                        );
                    } else if !KNOWN_CAPABILITIES.contains(&name.as_str()) {
                        self.add(
                            Severity::Info,
                            object,
                            "unknown-capability",
                            format!("{t}: capability {name:?} is not one of the CNI conventions; only a runtime that supplies it fills it"),
                        );
                    }
                }
            }
            Some(other) => self.add(
                Severity::Warning,
                object,
                "capability-not-boolean",
                format!("{t}: capabilities must be an object of booleans, got {other}: ignored"),
            ),
        }
        let ipam = plugin.raw().get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str).unwrap_or("");
        for (code, kind, name) in [("plugin-not-found", "plugin", t), ("ipam-plugin-not-found", "IPAM plugin", ipam)] {
            if name.is_empty() {
                continue;
            }
            let Some(dirs) = self.opts.plugin_dirs else { continue };
            match cni::exec::find_in_path(name, dirs) {
                Ok(path) => {
                    if self.opts.exec_version && !version.is_empty() {
                        self.version(object, name, &path, version);
                    }
                }
                Err(_) => self.add(
                    Severity::Error,
                    object,
                    code,
                    format!(
                        "{kind} {name:?} is not in {}",
                        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
                    ),
                ),
            }
        }
    }

    /// Ask the plugin which versions it supports (libcni's `GetVersionInfo`).
    fn version(&mut self, object: &str, name: &str, path: &Path, version: &str) {
        let stdin = serde_json::json!({"cniVersion": version}).to_string();
        let env = vec![
            ("CNI_COMMAND".to_string(), "VERSION".to_string()),
            ("CNI_PATH".to_string(), path.parent().map(|p| p.display().to_string()).unwrap_or_default()),
        ];
        let exec = RawExec::with_timeout(VERSION_TIMEOUT);
        let answer = exec
            .run_blocking(PluginRequest::new(path, env, stdin.as_bytes()))
            .map_err(|e| e.to_string())
            .and_then(|out| VersionInfo::decode(&out).map_err(|e| e.to_string()));
        match answer {
            Ok(info) if info.supports(version) => {}
            Ok(info) => self.add(
                Severity::Error,
                object,
                "cni-version-not-supported",
                format!(
                    "plugin {name} supports CNI {}, not the config's {version}",
                    info.supported_versions.join(", ")
                ),
            ),
            Err(e) => self.add(
                Severity::Warning,
                object,
                "plugin-version-failed",
                format!("plugin {name} did not answer VERSION: {e}"),
            ),
        }
    }

    fn pod(&mut self, pod: &PodInfo, nads: &NadSet, node: &NodeConfig) {
        let object = format!("Pod {}/{}", pod.namespace, pod.name);
        self.deprecated_fields(&object, pod);
        let ex = explain(&ExplainRequest {
            pod,
            nads,
            node,
            devices: None,
            plugin_dirs: None,
            ifname: "eth0",
            container_id: "lint",
        });
        let mut reported = false;
        for p in &ex.problems {
            if p.severity == Severity::Info {
                continue;
            }
            reported |= p.severity == Severity::Error;
            let message = match &p.network {
                Some(n) if !p.message.contains(n.as_str()) => format!("{n}: {}", p.message),
                _ => p.message.clone(),
            };
            self.add(p.severity, &object, p.code, message);
        }
        if ex.fails()
            && !reported
            && let Some(e) = &ex.outcome.error
        {
            self.add(Severity::Error, &object, "add-fails", e.clone());
        }
    }

    /// Selection fields that are deprecated or that Multus does not read.
    fn deprecated_fields(&mut self, object: &str, pod: &PodInfo) {
        let Some(text) = pod.annotation(NETWORKS_ANNOTATION) else { return };
        let Ok(Value::Array(elements)) = serde_json::from_str::<Value>(text) else { return };
        for el in elements.iter().filter_map(Value::as_object) {
            let name = el.get("name").and_then(Value::as_str).unwrap_or("");
            if el.contains_key("interfaceRequest") {
                self.add(
                    Severity::Warning,
                    object,
                    "deprecated-interface-request",
                    format!("network {name:?}: \"interfaceRequest\" is deprecated; write \"interface\""),
                );
            }
            if el.contains_key("ipam-claim-reference") {
                self.add(
                    Severity::Warning,
                    object,
                    "unsupported-field",
                    format!(
                        "network {name:?}: \"ipam-claim-reference\" is not read by Multus (v4.2): it has no effect"
                    ),
                );
            }
        }
    }
}
