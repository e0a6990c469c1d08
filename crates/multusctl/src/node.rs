//! The node's Multus configuration as one request sees it (spec §2.4): the config the runtime
//! hands the shim (`00-multus.conf`, or the file it was copied from), with the daemon config
//! merged over it exactly as the daemon merges it ([`multus::config::DaemonConfig::merge_request_config`]),
//! parsed with the daemon's parser.

use multus::config::{DEFAULT_DAEMON_CONFIG_PATH, DaemonConfig, NetConf};
use multus::generate::{GeneratorConfig, load_primary_file, render_multus_conf};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Where the node's configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// `--daemon-config`; `None`: the daemon's default path, if it exists.
    pub daemon_config: Option<PathBuf>,
    /// `--multus-conf`: the config the runtime passes to the shim; `None`: found like the
    /// runtime finds it (see [`NodeConfig::load`]).
    pub multus_conf: Option<PathBuf>,
    /// `--runtime-config`: the runtime's capability arguments (`portMappings`, …).
    pub runtime_config: Option<Map<String, Value>>,
}

/// Why the node configuration could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The effective configuration of a request on this node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the daemon config came from.
    pub daemon_config_source: String,
    /// Where the shim's config came from.
    pub request_config_source: String,
    pub daemon: DaemonConfig,
    /// The merged request config, parsed as the daemon parses it (or the daemon's error).
    pub effective: Result<NetConf, String>,
    /// Things the reader should know about how this was put together.
    pub notes: Vec<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|source| NodeError::Read { path: path.to_path_buf(), source })
}

impl NodeConfig {
    /// Read the daemon config and the shim's config, merge and parse them.
    ///
    /// The shim's config is `--multus-conf` when given; otherwise in auto mode
    /// `<cniConfigDir>/00-multus.conf` when it exists, else what the daemon would generate from
    /// the primary config in `multusAutoconfigDir`; outside auto mode the `multusConfigFile`.
    /// When none of these can be read the daemon config is used alone (a note says why).
    pub fn load(opts: &NodeOptions) -> Result<Self, NodeError> {
        let mut notes = Vec::new();
        let (daemon, daemon_config_source) = match &opts.daemon_config {
            Some(path) => (parse_daemon(path, &read(path)?)?, path.display().to_string()),
            None => {
                let path = Path::new(DEFAULT_DAEMON_CONFIG_PATH);
                match std::fs::read(path) {
                    Ok(bytes) => (parse_daemon(path, &bytes)?, path.display().to_string()),
                    Err(_) => {
                        notes.push(format!(
                            "no daemon config at {DEFAULT_DAEMON_CONFIG_PATH} (give --daemon-config): using the defaults"
                        ));
                        (parse_daemon(path, b"{}")?, "none".to_string())
                    }
                }
            }
        };
        let (mut client, request_config_source) = match &opts.multus_conf {
            Some(path) => (object_of(path, &read(path)?)?, path.display().to_string()),
            None => find_request_config(&daemon, &mut notes),
        };
        if let Some(rc) = &opts.runtime_config {
            apply_runtime_config(&mut client, rc, &mut notes);
        }
        let client_bytes = serde_json::to_vec(&client).unwrap_or_default();
        let effective = daemon
            .merge_request_config(&client_bytes)
            .map_err(|e| e.to_string())
            .and_then(|merged| NetConf::from_bytes(&merged).map_err(|e| e.to_string()));
        Ok(Self { daemon_config_source, request_config_source, daemon, effective, notes })
    }

    /// Where to look for plugin binaries: `explicit` when given; otherwise the effective
    /// `binDir` (inside `chrootDir` when set) if it exists on this machine; `None`: not checked.
    pub fn plugin_dirs(&self, explicit: &[PathBuf]) -> Option<Vec<PathBuf>> {
        if !explicit.is_empty() {
            return Some(explicit.to_vec());
        }
        let conf = self.effective.as_ref().ok()?;
        let bin_dir = Path::new(&conf.bin_dir);
        let local = if self.daemon.chroot_dir.is_empty() {
            bin_dir.to_path_buf()
        } else {
            Path::new(&self.daemon.chroot_dir).join(bin_dir.strip_prefix("/").unwrap_or(bin_dir))
        };
        local.is_dir().then(|| vec![local])
    }
}

fn parse_daemon(path: &Path, bytes: &[u8]) -> Result<DaemonConfig, NodeError> {
    DaemonConfig::from_bytes(bytes).map_err(|e| NodeError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}

fn object_of(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>, NodeError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(NodeError::Invalid { path: path.to_path_buf(), message: "not a JSON object".into() }),
        Err(e) => Err(NodeError::Invalid { path: path.to_path_buf(), message: e.to_string() }),
    }
}

/// The shim's config as the runtime would pass it, or `{}` with a note.
fn find_request_config(daemon: &DaemonConfig, notes: &mut Vec<String>) -> (Map<String, Value>, String) {
    let generator = match GeneratorConfig::from_map(&daemon.raw) {
        Ok(g) => g,
        Err(e) => {
            notes.push(format!("the daemon config has invalid generator settings ({e}): using it alone"));
            return (Map::new(), "the daemon config alone".into());
        }
    };
    let mut tried = Vec::new();
    let mut candidates = Vec::new();
    if generator.is_auto_mode() {
        candidates.push(generator.multus_conf_path());
    } else {
        candidates.push(PathBuf::from(&generator.multus_config_file));
        candidates.extend(generator.user_config_target());
    }
    for path in candidates {
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| object_of(&path, &b).map_err(|e| e.to_string()))
        {
            Ok(m) => return (m, path.display().to_string()),
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    if generator.is_auto_mode() {
        let generated = generator
            .find_primary()
            .map_err(|e| e.to_string())
            .and_then(|p| p.ok_or_else(|| format!("no primary CNI config in {:?}", generator.multus_autoconfig_dir)))
            .and_then(|primary| {
                let loaded = load_primary_file(&primary, &generator.cni_version).map_err(|e| e.to_string())?;
                let text = render_multus_conf(&generator, &loaded).map_err(|e| e.to_string())?;
                Ok((primary, text))
            });
        match generated {
            Ok((primary, text)) => {
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) {
                    return (m, format!("generated from {} as the daemon would", primary.display()));
                }
            }
            Err(e) => tried.push(format!("generating 00-multus.conf: {e}")),
        }
    }
    notes.push(format!("no config of the shim found ({}): the daemon config is used alone", tried.join("; ")));
    (Map::new(), "the daemon config alone".into())
}

/// Give the shim's config the runtime's `runtimeConfig`, as a runtime does: only the
/// capabilities the config declares (libcni).
fn apply_runtime_config(client: &mut Map<String, Value>, runtime: &Map<String, Value>, notes: &mut Vec<String>) {
    let declared = cni::conf::enabled_capabilities(client.get("capabilities"));
    let (passed, dropped): (Vec<_>, Vec<_>) = runtime.iter().partition(|(k, _)| declared.contains_key(*k));
    if !dropped.is_empty() {
        let names: Vec<&str> = dropped.iter().map(|(k, _)| k.as_str()).collect();
        notes.push(format!(
            "runtimeConfig {} not declared in the shim config's capabilities: a runtime does not pass {}",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" }
        ));
    }
    if !passed.is_empty() {
        let rc: Map<String, Value> = passed.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        client.insert("runtimeConfig".into(), Value::Object(rc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auto_mode_generates_the_shim_config_and_merges_the_daemon_config() {
        let dir = tempfile::tempdir().unwrap();
        let netd = dir.path().join("net.d");
        std::fs::create_dir(&netd).unwrap();
        std::fs::write(
            netd.join("10-primary.conflist"),
            r#"{"cniVersion":"1.0.0","name":"primary","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        let daemon = dir.path().join("daemon-config.json");
        let daemon_json =
            json!({"cniVersion":"1.0.0","multusAutoconfigDir": netd, "cniConfigDir": netd, "binDir": "/b"});
        std::fs::write(&daemon, daemon_json.to_string()).unwrap();
        let rc = json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1}});
        let opts = NodeOptions {
            daemon_config: Some(daemon.clone()),
            multus_conf: None,
            runtime_config: rc.as_object().cloned(),
        };
        let node = NodeConfig::load(&opts).unwrap();
        let conf = node.effective.as_ref().unwrap();
        assert_eq!(conf.cluster_network, netd.join("10-primary.conflist").display().to_string());
        assert_eq!(conf.bin_dir, "/b");
        assert_eq!(conf.runtime_config.as_ref().unwrap(), &json!({"portMappings": rc["portMappings"]}));
        assert!(node.request_config_source.starts_with("generated from "), "{}", node.request_config_source);
        assert!(node.notes.iter().any(|n| n.starts_with("runtimeConfig bandwidth not declared")), "{:?}", node.notes);

        // The file the runtime reads wins once it exists.
        std::fs::write(netd.join("00-multus.conf"), r#"{"cniVersion":"1.0.0","name":"m","clusterNetwork":"x"}"#)
            .unwrap();
        let node = NodeConfig::load(&NodeOptions { daemon_config: Some(daemon), ..Default::default() }).unwrap();
        assert_eq!(node.effective.unwrap().cluster_network, "x");
        assert_eq!(node.request_config_source, netd.join("00-multus.conf").display().to_string());
    }

    #[test]
    fn without_any_shim_config_the_daemon_config_is_used_alone() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = dir.path().join("d.json");
        std::fs::write(&daemon, r#"{"multusAutoconfigDir":"/nonexistent","cniConfigDir":"/nonexistent"}"#).unwrap();
        let node =
            NodeConfig::load(&NodeOptions { daemon_config: Some(daemon.clone()), ..Default::default() }).unwrap();
        assert_eq!(node.effective.unwrap_err(), "LoadNetConf: at least one delegate/clusterNetwork must be specified");
        assert_eq!(node.request_config_source, "the daemon config alone");
        assert_eq!(node.notes.len(), 1);
        assert!(
            NodeConfig::load(&NodeOptions { daemon_config: Some(dir.path().join("missing")), ..Default::default() })
                .is_err()
        );
        std::fs::write(&daemon, "[]").unwrap();
        assert!(NodeConfig::load(&NodeOptions { daemon_config: Some(daemon), ..Default::default() }).is_err());
    }

    #[test]
    fn plugin_dirs_follow_chroot_and_existence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("opt/cni/bin")).unwrap();
        let daemon = dir.path().join("d.json");
        std::fs::write(&daemon, json!({"chrootDir": dir.path(), "clusterNetwork": "c"}).to_string()).unwrap();
        let node =
            NodeConfig::load(&NodeOptions { daemon_config: Some(daemon.clone()), ..Default::default() }).unwrap();
        assert_eq!(node.plugin_dirs(&[]), Some(vec![dir.path().join("opt/cni/bin")]));
        assert_eq!(node.plugin_dirs(&["/x".into()]), Some(vec![PathBuf::from("/x")]));
        std::fs::write(&daemon, r#"{"clusterNetwork":"c","binDir":"/nonexistent/bin"}"#).unwrap();
        let node = NodeConfig::load(&NodeOptions { daemon_config: Some(daemon), ..Default::default() }).unwrap();
        assert_eq!(node.plugin_dirs(&[]), None);
    }
}
