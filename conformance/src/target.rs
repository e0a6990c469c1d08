//! Targets: what is being judged. A YAML file, or a shorthand on the command line:
//!
//! - `plugin:<path>`: a CNI plugin binary, with a built-in config template chosen by its file
//!   name (`bridge`, `ptp`, `host-local`, `fake-cni`, …) — or `plugin:<path>` plus a YAML file
//!   giving the template;
//! - `thick`: multus-rs's shim, daemon and `kube-mock` from the cargo target dir;
//! - `thick:<file>` / `<file>`: a target file (see README.md, and `targets/*.yaml`).

use crate::daemons::HostDaemon;
use crate::model::Applies;
pub use crate::template::{merge_patch, render_str, render_value};
use crate::thick_spec::ThickSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// One plugin binary, executed directly for every CNI step.
    #[default]
    Plugin,
    /// A configuration list run by the harness acting as a libcni-like runtime (crate `cni`):
    /// plugins in order with `prevResult` threading and capability filtering, DEL in reverse,
    /// a result cache.
    Conflist,
    /// A thick plugin: a shim talking to a daemon, with an API server.
    Thick,
}

/// Why a target could not be described.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "unknown target {0:?}: use plugin:<path>[,<file.yaml>], thick, thick:<file.yaml>, runtime, conflist:<file.yaml> or a target file"
    )]
    UnknownSpec(String),
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0}")]
    Yaml(String),
    #[error("{path}: {inner}")]
    InFile { path: String, inner: Box<TargetError> },
    #[error("plugin target without `plugin`")]
    NoPlugin,
    #[error("no built-in config template for plugin {0:?}: give a target file with `config:` and `tags:`")]
    NoTemplate(String),
}

/// A target description (a YAML file, or built from a shorthand).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin binary (plugin targets) — the shim for thick targets lives in `thick.shim`.
    #[serde(default)]
    pub plugin: Option<PathBuf>,
    /// Directories for `CNI_PATH` (delegates such as host-local). Default: the plugin's dir
    /// (conflist targets: `/usr/lib/cni` and the directory of `fake-cni`).
    #[serde(default)]
    pub cni_path: Vec<PathBuf>,
    /// Run the plugin inside a per-case scratch "host" network namespace (default: when root).
    #[serde(default)]
    pub host_netns: Option<bool>,
    /// Which case families apply (any, interface, ipam, chained, meta, thick, network, runtime).
    #[serde(default)]
    pub tags: Vec<Applies>,
    /// Config template (`{{version}}`, `{{net}}`, `{{type}}`, `{{tmp}}`, `{{short}}` …); a
    /// configuration list for conflist targets.
    #[serde(default)]
    pub config: Option<Value>,
    /// Extra environment for every invocation (templated).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `CNI_ARGS` for attachment commands (templated). Default `IgnoreUnknown=1`, or the pod
    /// arguments for thick targets.
    #[serde(default)]
    pub cni_args: Option<String>,
    /// Where the IPAM plugin keeps its reservations (host-local `dataDir`), templated.
    #[serde(default)]
    pub ipam_dir: Option<String>,
    /// Config version for cases that do not choose one (default: highest supported ≤ 1.1.0).
    #[serde(default)]
    pub default_version: Option<String>,
    /// `CNI_IFNAME` of every attachment (default `eth0`; `lo` for loopback).
    #[serde(default)]
    pub ifname: Option<String>,
    /// `ip` commands (argument lists, templated) run in the scratch host netns when a case
    /// starts, e.g. a master link for macvlan.
    #[serde(default)]
    pub host_setup: Vec<Vec<String>>,
    /// `ip` commands run in the scratch host netns for every attachment of a case
    /// (`{{slot}}` is the attachment's number), e.g. the device host-device moves.
    #[serde(default)]
    pub attachment_setup: Vec<Vec<String>>,
    /// Daemons started in the scratch host netns after `host_setup` and stopped (by PID) when
    /// the case ends, e.g. the dhcp plugin's daemon and a DHCP server.
    #[serde(default)]
    pub host_daemons: Vec<HostDaemon>,
    /// Chained plugins: plugin objects that run before the target in the same list (libcni
    /// order and `prevResult` threading), so that an ADD without an explicit `prevResult`
    /// gets theirs; their DEL follows the target's. They run in the scratch host netns too.
    #[serde(default)]
    pub prev_plugins: Vec<Value>,
    /// Kernel link types the plugin needs (`ipvlan`, `vlan`, `vrf`, `dummy`, `macvlan`, …):
    /// probed once; when one is missing every case is skipped with that reason.
    #[serde(default)]
    pub link_kinds: Vec<String>,
    /// Explanations of expected failures, by case id, printed in reports (never suppressing).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    /// Thick targets: the shim, the daemon and the API server.
    #[serde(default)]
    pub thick: Option<ThickSpec>,
    /// Where this target came from.
    #[serde(skip)]
    pub spec: String,
}

/// Where `{{bin}}` points: the directory holding multus-rs's binaries (`kube-mock`,
/// `fake-cni`, `multus-shim`, `multus-daemon`). In order: `$CNI_CONFORMANCE_BIN`; the
/// directory of the running executable when `fake-cni` is next to it (an installed or
/// built `cni-conformance`); the cargo target dir of this workspace (`$CARGO_TARGET_DIR` or
/// `<workspace>/target`, profile `$CONFORMANCE_PROFILE`, default `debug`); the directory of
/// `fake-cni` on `PATH`.
pub fn cargo_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CNI_CONFORMANCE_BIN") {
        return PathBuf::from(dir);
    }
    let profile = std::env::var("CONFORMANCE_PROFILE").unwrap_or_else(|_| "debug".into());
    let workspace = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join(&profile);
    if std::env::var_os("CONFORMANCE_PROFILE").is_some() {
        return workspace;
    }
    let exe_dir = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf));
    // Test binaries live in target/<profile>/deps: their binaries are one level up.
    for dir in exe_dir.iter().flat_map(|d| [d.clone(), d.join("..")]) {
        if dir.join("fake-cni").is_file() {
            return dir;
        }
    }
    if workspace.is_dir() {
        return workspace;
    }
    let on_path =
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).find(|d| d.join("fake-cni").is_file()));
    on_path.unwrap_or(workspace)
}

fn host_local(subnet: &str) -> Value {
    json!({"type": "host-local", "subnet": subnet, "dataDir": "{{tmp}}/ipam"})
}

fn ip_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The plugin every chained built-in target runs after: ptp with host-local, which creates
/// the container interface and its address.
fn ptp_prelude() -> Value {
    json!({"type": "ptp", "ipMasq": false, "ipam": host_local("10.98.0.0/24")})
}

/// The dhcp IPAM plugin judged on its own: every attachment gets the interface it configures
/// (a veth whose peer is on a bridge in the scratch host netns), a DHCP server (dnsmasq) answers
/// on that bridge, and `dhcp daemon` serves the plugin on a per-case socket.
fn dhcp(config: Value) -> Target {
    let dnsmasq = [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        "--bind-interfaces",
        "--interface=db{{short}}",
        "--dhcp-range=10.97.0.10,10.97.0.250,255.255.255.0,1h",
        "--dhcp-authoritative",
        "--no-ping",
        "--leasefile-ro",
        "--pid-file=",
        "--log-facility=-",
    ];
    Target {
        config: Some(config),
        tags: vec![Applies::Any],
        host_setup: vec![
            ip_args(&["link", "add", "db{{short}}", "type", "bridge"]),
            ip_args(&["addr", "add", "10.97.0.1/24", "dev", "db{{short}}"]),
            ip_args(&["link", "set", "db{{short}}", "up"]),
        ],
        attachment_setup: vec![
            ip_args(&[
                "link",
                "add",
                "dv{{short}}{{slot}}",
                "type",
                "veth",
                "peer",
                "name",
                "{{ifname}}",
                "netns",
                "{{netns}}",
            ]),
            ip_args(&["link", "set", "dv{{short}}{{slot}}", "master", "db{{short}}"]),
            ip_args(&["link", "set", "dv{{short}}{{slot}}", "up"]),
            // Up before the first ADD (`ip -n A -n B` ends in B): the daemon's first DISCOVER
            // on a link it has just set up is dropped while the kernel activates the link.
            ip_args(&["-n", "{{netns_name}}", "link", "set", "{{ifname}}", "up"]),
        ],
        host_daemons: vec![
            HostDaemon { argv: ip_args(&dnsmasq), ready_path: None, package: Some("dnsmasq-base".into()) },
            HostDaemon {
                argv: ip_args(&["{{plugin}}", "daemon", "-socketpath", "{{tmp}}/dhcp.sock", "-timeout", "5s"]),
                ready_path: Some("{{tmp}}/dhcp.sock".into()),
                package: None,
            },
        ],
        link_kinds: vec!["veth".into(), "bridge".into()],
        ..Target::default()
    }
}

/// Built-in targets by plugin file name: config template, tags and the scaffolding the
/// plugin needs (master links, devices, a plugin to chain after). `None` for unknown names.
pub fn builtin(type_name: &str) -> Option<Target> {
    let base = |extra: Value| {
        let mut v = json!({"cniVersion": "{{version}}", "name": "{{net}}", "type": "{{type}}"});
        if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        v
    };
    use Applies::{Any, Chained, Interface, Ipam};
    let interface_ipam = vec![Any, Interface, Ipam];
    let ipam_dir = Some("{{tmp}}/ipam".to_string());
    // A veth pair in the scratch host netns: `cm0` is the master of macvlan/ipvlan/vlan links.
    let master = vec![
        ip_args(&["link", "add", "cm0", "type", "veth", "peer", "name", "cm1"]),
        ip_args(&["link", "set", "cm0", "up"]),
        ip_args(&["link", "set", "cm1", "up"]),
    ];
    let chained = |extra: Value| Target {
        config: Some(base(extra)),
        tags: vec![Any, Chained],
        prev_plugins: vec![ptp_prelude()],
        ..Target::default()
    };
    let t = match type_name {
        "bridge" => Target {
            config: Some(base(
                json!({"bridge": "cb{{short}}", "isGateway": true, "ipMasq": false, "ipam": host_local("10.99.0.0/24")}),
            )),
            tags: interface_ipam,
            ipam_dir,
            link_kinds: vec!["bridge".into(), "veth".into()],
            ..Target::default()
        },
        "ptp" => Target {
            config: Some(base(json!({"ipMasq": false, "ipam": host_local("10.99.0.0/24")}))),
            tags: interface_ipam,
            ipam_dir,
            link_kinds: vec!["veth".into()],
            ..Target::default()
        },
        "macvlan" | "ipvlan" | "vlan" => {
            let extra = match type_name {
                "macvlan" => json!({"master": "cm0", "mode": "bridge", "ipam": host_local("10.99.0.0/24")}),
                "ipvlan" => json!({"master": "cm0", "mode": "l2", "ipam": host_local("10.99.0.0/24")}),
                _ => json!({"master": "cm0", "vlanId": 100, "ipam": host_local("10.99.0.0/24")}),
            };
            Target {
                config: Some(base(extra)),
                tags: interface_ipam,
                ipam_dir,
                host_setup: master,
                link_kinds: vec!["veth".into(), type_name.into()],
                ..Target::default()
            }
        }
        "host-device" => Target {
            config: Some(base(json!({"device": "hd{{short}}{{slot}}", "ipam": host_local("10.99.0.0/24")}))),
            tags: interface_ipam,
            ipam_dir,
            attachment_setup: vec![ip_args(&[
                "link",
                "add",
                "hd{{short}}{{slot}}",
                "type",
                "veth",
                "peer",
                "name",
                "hp{{short}}{{slot}}",
            ])],
            link_kinds: vec!["veth".into()],
            ..Target::default()
        },
        "host-local" => Target {
            config: Some(base(json!({"ipam": host_local("10.99.0.0/24")}))),
            tags: vec![Any, Ipam],
            ipam_dir,
            ..Target::default()
        },
        "static" => Target {
            config: Some(base(
                json!({"ipam": {"type": "static", "addresses": [{"address": "10.99.0.5/24", "gateway": "10.99.0.1"}], "routes": [{"dst": "0.0.0.0/0"}]}}),
            )),
            tags: vec![Any],
            ..Target::default()
        },
        "dhcp" => dhcp(base(json!({"ipam": {"type": "dhcp", "daemonSocketPath": "{{tmp}}/dhcp.sock"}}))),
        "loopback" => {
            Target { config: Some(base(json!({}))), tags: vec![Any], ifname: Some("lo".into()), ..Target::default() }
        }
        "tuning" => chained(json!({"sysctl": {}})),
        "portmap" => chained(json!({"capabilities": {"portMappings": true}, "snat": true})),
        // Ingress only: egress adds an ifb interface to the result, so passthrough would not apply.
        "bandwidth" => chained(json!({"ingressRate": 1_000_000, "ingressBurst": 100_000})),
        "firewall" => chained(json!({"backend": "iptables"})),
        "sbr" => chained(json!({})),
        "vrf" => Target { link_kinds: vec!["vrf".into()], ..chained(json!({"vrfname": "ccvrf0"})) },
        "tap" => Target {
            config: Some(base(json!({"ipam": host_local("10.99.0.0/24")}))),
            tags: interface_ipam,
            ipam_dir,
            link_kinds: vec!["tuntap".into()],
            ..Target::default()
        },
        "dummy" => Target {
            config: Some(base(json!({"ipam": host_local("10.99.0.0/24")}))),
            tags: interface_ipam,
            ipam_dir,
            link_kinds: vec!["dummy".into()],
            ..Target::default()
        },
        "fake-cni" => Target {
            config: Some(base(json!({"fake": {"recordDir": "{{tmp}}/calls"}}))),
            tags: vec![Any],
            ..Target::default()
        },
        _ => return None,
    };
    Some(t)
}

/// The harness's own runtime (`--target runtime`): a conflist target for the cases that define
/// their network (`network`, `runtime` tags), with `fake-cni` plugins.
pub fn runtime_target() -> Target {
    Target {
        kind: Kind::Conflist,
        name: Some("cni-conformance runtime (libcni semantics)".into()),
        host_netns: Some(false),
        tags: vec![Applies::Network, Applies::Runtime],
        ..Target::default()
    }
}

impl Target {
    /// Parse a `--target` argument.
    pub fn from_spec(spec: &str) -> Result<Target, TargetError> {
        let mut t = if spec == "thick" {
            Target { kind: Kind::Thick, thick: Some(ThickSpec::multus_rs()), ..Target::default() }
        } else if spec == "runtime" {
            runtime_target()
        } else if let Some(path) = spec.strip_prefix("plugin:") {
            let (path, file) = match path.split_once(',') {
                Some((p, f)) => (p, Some(f)),
                None => (path, None),
            };
            let mut t = match file {
                Some(f) => Self::from_file(Path::new(f))?,
                None => Target::default(),
            };
            t.kind = Kind::Plugin;
            t.plugin = Some(PathBuf::from(path));
            t
        } else if let Some(file) = spec.strip_prefix("thick:") {
            let mut t = Self::from_file(Path::new(file))?;
            t.kind = Kind::Thick;
            if t.thick.is_none() {
                t.thick = Some(ThickSpec::multus_rs());
            }
            t
        } else if let Some(file) = spec.strip_prefix("conflist:") {
            let mut t = Self::from_file(Path::new(file))?;
            t.kind = Kind::Conflist;
            t
        } else if Path::new(spec).is_file() || crate::embedded::target_file(spec).is_some() {
            Self::from_file(Path::new(spec))?
        } else {
            return Err(TargetError::UnknownSpec(spec.to_string()));
        };
        t.spec = spec.to_string();
        t.complete()?;
        Ok(t)
    }

    /// A target file; a name that is not a file but one of the shipped `targets/*.yaml`
    /// (`fake-cni.yaml`, `targets/go-multus-thick.yaml`) reads the embedded copy.
    pub fn from_file(path: &Path) -> Result<Target, TargetError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => match crate::embedded::target_file(&path.to_string_lossy()) {
                Some(t) if !path.exists() => t.to_string(),
                _ => return Err(TargetError::Read { path: path.display().to_string(), reason: e.to_string() }),
            },
        };
        Self::from_yaml(&text).map_err(|e| TargetError::InFile { path: path.display().to_string(), inner: Box::new(e) })
    }

    pub fn from_yaml(text: &str) -> Result<Target, TargetError> {
        serde_saphyr::from_str(text).map_err(|e| TargetError::Yaml(e.to_string()))
    }

    /// Fill defaults: template by plugin name, tags, CNI_PATH.
    pub fn complete(&mut self) -> Result<(), TargetError> {
        match self.kind {
            Kind::Thick => self.complete_thick(),
            Kind::Conflist => self.complete_conflist(),
            Kind::Plugin => return self.complete_plugin(),
        }
        Ok(())
    }

    fn complete_thick(&mut self) {
        let th = self.thick.get_or_insert_with(ThickSpec::multus_rs);
        if self.name.is_none() {
            self.name = Some(th.name.clone());
        }
        if self.tags.is_empty() {
            self.tags = vec![Applies::Any, Applies::Meta, Applies::Thick, Applies::Network];
        }
        if th.name == "multus-rs" {
            for (k, v) in crate::notes::multus_rs() {
                self.notes.entry(k).or_insert(v);
            }
        }
    }

    fn complete_conflist(&mut self) {
        if self.name.is_none() {
            let net = self.config.as_ref().and_then(|c| c.get("name")).and_then(Value::as_str);
            self.name = Some(net.map_or_else(|| "conflist".to_string(), |n| format!("conflist {n}")));
        }
        if self.tags.is_empty() {
            self.tags = vec![Applies::Network, Applies::Runtime];
            if self.config.is_some() {
                self.tags.insert(0, Applies::Any);
            }
        }
        if self.cni_path.is_empty() {
            self.cni_path = vec![PathBuf::from("/usr/lib/cni"), cargo_bin_dir()];
        }
    }

    fn complete_plugin(&mut self) -> Result<(), TargetError> {
        let plugin = self.plugin.clone().ok_or(TargetError::NoPlugin)?;
        let type_name = plugin.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if self.name.is_none() {
            self.name = Some(type_name.clone());
        }
        if self.config.is_none() || self.tags.is_empty() {
            let Some(b) = builtin(&type_name) else {
                return Err(TargetError::NoTemplate(type_name));
            };
            self.take_builtin(b);
        }
        if self.cni_path.is_empty()
            && let Some(dir) = plugin.parent()
        {
            self.cni_path.push(dir.to_path_buf());
        }
        for (k, v) in crate::notes::builtin(&type_name) {
            self.notes.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// The built-in target's template and scaffolding where this one gives none.
    fn take_builtin(&mut self, b: Target) {
        if self.config.is_none() {
            self.config = b.config;
            if self.ipam_dir.is_none() {
                self.ipam_dir = b.ipam_dir;
            }
            if self.host_setup.is_empty() {
                self.host_setup = b.host_setup;
            }
            if self.attachment_setup.is_empty() {
                self.attachment_setup = b.attachment_setup;
            }
            if self.host_daemons.is_empty() {
                self.host_daemons = b.host_daemons;
            }
            if self.prev_plugins.is_empty() {
                self.prev_plugins = b.prev_plugins;
            }
            if self.ifname.is_none() {
                self.ifname = b.ifname;
            }
            if self.link_kinds.is_empty() {
                self.link_kinds = b.link_kinds;
            }
        }
        if self.tags.is_empty() {
            self.tags = b.tags;
        }
    }

    /// Whether cases of this family apply. Every plugin and thick target takes `any` cases; a
    /// conflist target only when its tags say so (the harness's runtime is not a plugin).
    pub fn has(&self, a: Applies) -> bool {
        (a == Applies::Any && self.kind != Kind::Conflist) || self.tags.contains(&a)
    }

    /// The plugin `type` (file name of the binary).
    pub fn type_name(&self) -> String {
        self.plugin
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "multus-shim".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands() {
        let t = Target::from_spec("plugin:/usr/lib/cni/bridge").unwrap();
        assert_eq!(t.type_name(), "bridge");
        assert!(t.has(Applies::Interface));
        assert_eq!(t.cni_path, vec![PathBuf::from("/usr/lib/cni")]);
        assert!(Target::from_spec("plugin:/x/unknown-plugin").is_err());
        let th = Target::from_spec("thick").unwrap();
        assert_eq!(th.kind, Kind::Thick);
        assert!(th.has(Applies::Meta));
    }
}
