//! libcni semantics: what a container runtime — and Multus's daemon — does with a network
//! (cni.md §1.4, §1.5, §2.4, §2.7, §4.1, §4.4).
//!
//! [`CniRuntime`] runs whole configuration lists: ADD/CHECK/GC/STATUS in list order, DEL in
//! reverse; builds each plugin's request config as libcni's `buildOneConfig` does
//! ([`build_plugin_config`], [`build_gc_config`], [`build_status_config`]); exports the six
//! `CNI_*` variables ([`plugin_env`]); keeps libcni's result cache, byte-compatible with the Go
//! implementation ([`CacheEntry`]).
//!
//! Deliberate differences from libcni, all stricter or more informative:
//! - ADD validates the names and resolves **every** plugin binary before running any, so a
//!   missing second plugin does not leave the first one's attachment behind.
//! - Every plugin failure is wrapped as `plugin type="x" failed (<verb>): …` (libcni wraps only
//!   ADD and DEL of lists); [`RuntimeError::to_cni_error`] still returns a plugin's own error
//!   object unchanged.
//! - Single-plugin configs ([`CniRuntime::add_network`] …) run as one-plugin lists, so their DEL
//!   also drops an unreadable cache entry instead of failing.
//! - Request configs are written with sorted keys and Go's escaping, so stdin is byte-identical
//!   to libcni's except for the nested `prevResult`, whose keys are in our result order.

mod cache;
mod gojson;

pub use cache::{
    AtomicWrite, CACHE_KIND_V1, CacheEntry, CacheFile, TEMP_MARKER, remove_stale_temp_files, write_atomic,
    write_atomic_with,
};

use crate::conf::{NetConfList, PluginConf};
use crate::env::Command;
use crate::error::{CniError, code};
use crate::exec::{self, Exec, ExecError, PluginRequest, RawExec};
use crate::result::CniResult;
use crate::validate;
use crate::version::{self, Version, VersionInfo};
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// The arguments of one attachment, apart from the network configuration (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    /// Path of the container's network namespace.
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order (duplicates kept).
    pub args: Vec<(String, String)>,
    /// Capability arguments; each plugin gets those it declares in `capabilities` as
    /// `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    pub fn new(container_id: impl Into<String>, netns: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self { container_id: container_id.into(), netns: netns.into(), ifname: ifname.into(), ..Self::default() }
    }

    pub fn with_arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.args.push((key.into(), value.into()));
        self
    }

    pub fn with_capability(mut self, name: impl Into<String>, value: Value) -> Self {
        self.capability_args.insert(name.into(), value);
        self
    }

    /// `CNI_ARGS`: `K=V` pairs joined with `;`.
    pub fn cni_args(&self) -> String {
        self.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }
}

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl ValidAttachment {
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self { container_id: container_id.into(), ifname: ifname.into() }
    }
}

/// The word libcni uses for a command in its error messages.
fn verb(command: Command) -> &'static str {
    match command {
        Command::Add => "add",
        Command::Del => "delete",
        Command::Check => "check",
        Command::Status => "status",
        Command::Gc => "gc",
        Command::Version => "version",
    }
}

/// Errors of [`CniRuntime`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A plugin could not be found or run, or failed.
    #[error("plugin {} failed ({}): {error}", describe(plugin_type, plugin_name.as_deref()), verb(*command))]
    Plugin {
        plugin_type: String,
        /// The plugin object's own `name`, if it has one.
        plugin_name: Option<String>,
        command: Command,
        error: ExecError,
    },
    /// Container ID, network name or interface name refused before anything ran.
    #[error("{0}")]
    Validation(CniError),
    /// The configuration cannot be run (bad `cniVersion`, no plugins).
    #[error("{0}")]
    Config(String),
    #[error("configuration version {version:?} does not support the CHECK command")]
    CheckNotSupported { version: String },
    /// CHECK needs the cached result and it could not be read.
    #[error("failed to get network {network:?} cached result: {reason}")]
    CachedResult { network: String, reason: String },
    /// Reading or writing the result cache failed.
    #[error("failed to {action} network {network:?} cached result: {source}")]
    Cache { network: String, action: &'static str, source: std::io::Error },
    /// GC's synthesised DEL of a stale attachment failed.
    #[error("failed to delete stale attachment {container_id} {ifname}: {error}")]
    StaleAttachment { container_id: String, ifname: String, error: Box<RuntimeError> },
    /// A plugin's VERSION answer could not be decoded.
    #[error("plugin type={plugin_type:?}: {error}")]
    VersionInfo { plugin_type: String, error: CniError },
    /// Several failures (GC keeps going); joined with newlines like Go's `errors.Join`.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Multiple(Vec<RuntimeError>),
}

fn describe(plugin_type: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("type={plugin_type:?} name={n:?}"),
        _ => format!("type={plugin_type:?}"),
    }
}

impl RuntimeError {
    fn plugin(plugin: &PluginConf, command: Command, error: ExecError) -> Self {
        Self::Plugin {
            plugin_type: plugin.plugin_type().to_string(),
            plugin_name: plugin.name().map(str::to_string),
            command,
            error,
        }
    }

    /// The underlying exec error of a plugin failure.
    pub fn exec_error(&self) -> Option<&ExecError> {
        match self {
            Self::Plugin { error, .. } => Some(error),
            Self::StaleAttachment { error, .. } => error.exec_error(),
            _ => None,
        }
    }

    /// The CNI error object to report.
    ///
    /// - A plugin's own error object comes back **unchanged** (code, msg, details) — e.g. STATUS's
    ///   50/51.
    /// - Other plugin failures: the code of [`ExecError::to_cni_error`] (0 for a failed
    ///   process, 999 for lookup/parse failures) with this error's full message.
    /// - Name validation: the validation error (codes 3, 4, 7 as `skel` would report them).
    /// - CHECK on < 0.4.0: code 1 (as `skel` reports it); bad configuration: code 7; a lone
    ///   wrapped failure keeps its code; everything else (cache I/O, several failures): 999.
    pub fn to_cni_error(&self) -> CniError {
        match self {
            Self::Plugin { error: ExecError::Plugin(e), .. } => e.clone(),
            Self::Plugin { error, .. } => CniError::new(error.to_cni_error().code, self.to_string()),
            Self::Validation(e) => e.clone(),
            Self::Config(_) => CniError::new(code::INVALID_NETWORK_CONFIG, self.to_string()),
            Self::CheckNotSupported { .. } => CniError::new(code::INCOMPATIBLE_CNI_VERSION, self.to_string()),
            Self::StaleAttachment { error, .. } => CniError::new(error.to_cni_error().code, self.to_string()),
            Self::Multiple(errors) if errors.len() == 1 => errors[0].to_cni_error(),
            Self::VersionInfo { error, .. } => CniError::new(error.code, self.to_string()),
            Self::CachedResult { .. } | Self::Cache { .. } | Self::Multiple(_) => {
                CniError::new(code::INTERNAL, self.to_string())
            }
        }
    }
}

impl From<&RuntimeError> for CniError {
    fn from(e: &RuntimeError) -> Self {
        e.to_cni_error()
    }
}

impl From<RuntimeError> for CniError {
    fn from(e: RuntimeError) -> Self {
        e.to_cni_error()
    }
}

/// The six `CNI_*` variables, always all set (empty when unused), in libcni's order.
pub fn plugin_env(command: Command, rt: &RuntimeConf, plugin_dirs: &[PathBuf]) -> Vec<(String, String)> {
    let path = plugin_dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":");
    vec![
        ("CNI_COMMAND".into(), command.as_str().into()),
        ("CNI_CONTAINERID".into(), rt.container_id.clone()),
        ("CNI_NETNS".into(), rt.netns.clone()),
        ("CNI_ARGS".into(), rt.cni_args()),
        ("CNI_IFNAME".into(), rt.ifname.clone()),
        ("CNI_PATH".into(), path),
    ]
}

/// `runtimeConfig` for a plugin: the capabilities it marks `true` that the runtime supplied.
pub fn runtime_config_for(plugin: &PluginConf, rt: &RuntimeConf) -> Map<String, Value> {
    plugin
        .capabilities()
        .keys()
        .filter_map(|cap| rt.capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
        .collect()
}

/// ADD/DEL/CHECK request config (libcni `buildOneConfig`): the plugin object as written (unknown
/// keys and `capabilities` kept), `name` and `cniVersion` from the list, `prevResult` when
/// given, and `runtimeConfig` ([`runtime_config_for`]) when not empty. Keys sorted, as Go writes
/// a re-marshalled map.
pub fn build_plugin_config(
    net_name: &str,
    cni_version: &str,
    plugin: &PluginConf,
    prev_result: Option<&Value>,
    rt: &RuntimeConf,
) -> Value {
    let mut conf = plugin.raw().clone();
    conf.insert("name".into(), net_name.into());
    conf.insert("cniVersion".into(), cni_version.into());
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let rc = runtime_config_for(plugin, rt);
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    gojson::sorted(&Value::Object(conf))
}

/// GC request config: the plugin object with `name`, `cniVersion` and — only when the caller
/// passed a set — both `cni.dev/valid-attachments` and the legacy `cni.dev/attachments`.
pub fn build_gc_config(
    net_name: &str,
    cni_version: &str,
    plugin: &PluginConf,
    valid: Option<&[ValidAttachment]>,
) -> Value {
    let mut conf = plugin.raw().clone();
    conf.insert("name".into(), net_name.into());
    conf.insert("cniVersion".into(), cni_version.into());
    if let Some(valid) = valid {
        let list = serde_json::to_value(valid).unwrap_or(Value::Array(vec![]));
        conf.insert("cni.dev/valid-attachments".into(), list.clone());
        conf.insert("cni.dev/attachments".into(), list);
    }
    gojson::sorted(&Value::Object(conf))
}

/// STATUS request config: the plugin object with `name` and `cniVersion`.
pub fn build_status_config(net_name: &str, cni_version: &str, plugin: &PluginConf) -> Value {
    let mut conf = plugin.raw().clone();
    conf.insert("name".into(), net_name.into());
    conf.insert("cniVersion".into(), cni_version.into());
    gojson::sorted(&Value::Object(conf))
}

/// The bytes a plugin receives on stdin for a request config.
pub fn config_bytes(conf: &Value) -> Vec<u8> {
    gojson::to_vec(conf)
}

/// Runs networks as libcni does. `exec` is [`RawExec`] in production and a fake in tests.
#[derive(Debug, Clone)]
pub struct CniRuntime<E: Exec = RawExec> {
    /// Where plugins are looked up; also exported as `CNI_PATH`.
    pub plugin_dirs: Vec<PathBuf>,
    /// The cache root (results live in `<cache_dir>/results`).
    pub cache_dir: PathBuf,
    pub exec: E,
}

fn parse_list_version(list: &NetConfList) -> Result<Version, RuntimeError> {
    Version::parse_or_default(Some(&list.cni_version)).map_err(|e| RuntimeError::Config(e.to_string()))
}

impl<E: Exec> CniRuntime<E> {
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: impl Into<PathBuf>, exec: E) -> Self {
        Self { plugin_dirs, cache_dir: cache_dir.into(), exec }
    }

    async fn run(&self, path: &Path, command: Command, rt: &RuntimeConf, conf: &Value) -> Result<Vec<u8>, ExecError> {
        let stdin = config_bytes(conf);
        let req = PluginRequest::new(path, plugin_env(command, rt, &self.plugin_dirs), &stdin);
        self.exec.exec(req).await
    }

    fn find(&self, plugin: &PluginConf, command: Command) -> Result<PathBuf, RuntimeError> {
        self.exec
            .find_plugin(plugin.plugin_type(), &self.plugin_dirs)
            .map_err(|e| RuntimeError::plugin(plugin, command, e))
    }

    // ---- ADD -------------------------------------------------------------------------------

    /// ADD every plugin in order, chaining each result into the next plugin's `prevResult`;
    /// cache and return the last result. The cache's `config` is `list.to_bytes()`; use
    /// [`Self::add_network_list_with_bytes`] to cache the bytes the list was loaded from.
    pub async fn add_network_list(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<CniResult, RuntimeError> {
        self.add_network_list_with_bytes(list, &list.to_bytes(), rt).await
    }

    /// [`Self::add_network_list`], caching `config_bytes` verbatim as the attachment's config.
    pub async fn add_network_list_with_bytes(
        &self,
        list: &NetConfList,
        config_bytes: &[u8],
        rt: &RuntimeConf,
    ) -> Result<CniResult, RuntimeError> {
        if list.plugins.is_empty() {
            return Err(RuntimeError::Config(format!("network {:?} has no plugins", list.name)));
        }
        let version = parse_list_version(list)?;
        validate::validate_container_id(&rt.container_id).map_err(RuntimeError::Validation)?;
        validate::validate_network_name(&list.name).map_err(RuntimeError::Validation)?;
        validate::validate_interface_name(&rt.ifname).map_err(RuntimeError::Validation)?;
        let paths = list.plugins.iter().map(|p| self.find(p, Command::Add)).collect::<Result<Vec<_>, _>>()?;

        let mut prev: Option<CniResult> = None;
        for (plugin, path) in list.plugins.iter().zip(&paths) {
            let prev_value = prev.as_ref().map(CniResult::to_value);
            let conf = build_plugin_config(&list.name, &list.cni_version, plugin, prev_value.as_ref(), rt);
            let fail = |e| RuntimeError::plugin(plugin, Command::Add, e);
            let out = self.run(path, Command::Add, rt, &conf).await.map_err(fail)?;
            prev = Some(exec::parse_result(path, Some(version), &out).map_err(fail)?);
        }
        let result = prev.ok_or_else(|| RuntimeError::Config("no plugins".into()))?;

        let entry = CacheEntry {
            container_id: rt.container_id.clone(),
            config: config_bytes.to_vec(),
            ifname: rt.ifname.clone(),
            network_name: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.to_value()),
        };
        self.write_cache_entry(&entry).map_err(|source| RuntimeError::Cache {
            network: list.name.clone(),
            action: "set",
            source,
        })?;
        Ok(result)
    }

    /// ADD a single-plugin config (run as a one-plugin list, libcni `AddNetwork`).
    pub async fn add_network(&self, conf: &PluginConf, rt: &RuntimeConf) -> Result<CniResult, RuntimeError> {
        self.add_network_with_bytes(conf, &conf.to_bytes(), rt).await
    }

    /// [`Self::add_network`], caching `config_bytes` verbatim.
    pub async fn add_network_with_bytes(
        &self,
        conf: &PluginConf,
        config_bytes: &[u8],
        rt: &RuntimeConf,
    ) -> Result<CniResult, RuntimeError> {
        let list = NetConfList::from_single(conf.clone());
        self.add_network_list_with_bytes(&list, config_bytes, rt).await
    }

    // ---- DEL -------------------------------------------------------------------------------

    /// DEL every plugin in reverse order with the cached result (converted to the list's
    /// version) as `prevResult` (none below 0.4.0, or when the cache is missing/unreadable — an
    /// unreadable entry is deleted). Stops at the first failure, as libcni; the cache entry is
    /// removed after a fully successful DEL.
    pub async fn del_network_list(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<(), RuntimeError> {
        let version = parse_list_version(list)?;
        let cached = if version.supports_prev_result_on_del() {
            match self.read_cached_result(&list.name, version, rt) {
                Ok(r) => r,
                Err(_) => {
                    self.remove_cache_entry(&list.name, rt);
                    None
                }
            }
        } else {
            None
        };
        let prev_value = cached.as_ref().map(CniResult::to_value);
        for plugin in list.plugins.iter().rev() {
            let path = self.find(plugin, Command::Del)?;
            let conf = build_plugin_config(&list.name, &list.cni_version, plugin, prev_value.as_ref(), rt);
            self.run(&path, Command::Del, rt, &conf)
                .await
                .map_err(|e| RuntimeError::plugin(plugin, Command::Del, e))?;
        }
        self.remove_cache_entry(&list.name, rt);
        Ok(())
    }

    /// DEL a single-plugin config.
    pub async fn del_network(&self, conf: &PluginConf, rt: &RuntimeConf) -> Result<(), RuntimeError> {
        self.del_network_list(&NetConfList::from_single(conf.clone()), rt).await
    }

    // ---- CHECK -----------------------------------------------------------------------------

    /// CHECK every plugin in order with the cached result as `prevResult`. Refused below 0.4.0
    /// (even with `disableCheck`); a no-op with `disableCheck`; a missing cache means no
    /// `prevResult`, an unreadable one is an error. Stops at the first failure.
    pub async fn check_network_list(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<(), RuntimeError> {
        let version = parse_list_version(list)?;
        if !version.supports_check() {
            return Err(RuntimeError::CheckNotSupported { version: list.cni_version.clone() });
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self
            .read_cached_result(&list.name, version, rt)
            .map_err(|reason| RuntimeError::CachedResult { network: list.name.clone(), reason })?;
        let prev_value = cached.as_ref().map(CniResult::to_value);
        for plugin in &list.plugins {
            let path = self.find(plugin, Command::Check)?;
            let conf = build_plugin_config(&list.name, &list.cni_version, plugin, prev_value.as_ref(), rt);
            self.run(&path, Command::Check, rt, &conf)
                .await
                .map_err(|e| RuntimeError::plugin(plugin, Command::Check, e))?;
        }
        Ok(())
    }

    /// CHECK a single-plugin config.
    pub async fn check_network(&self, conf: &PluginConf, rt: &RuntimeConf) -> Result<(), RuntimeError> {
        self.check_network_list(&NetConfList::from_single(conf.clone()), rt).await
    }

    // ---- GC --------------------------------------------------------------------------------

    /// libcni `GCNetworkList`: nothing with `disableGC`; otherwise a full DEL (with the cached
    /// `CNI_ARGS`, netns and capability arguments) for every cached attachment of this network
    /// not in `valid` (`None`: every cached attachment is stale), then — for ≥ 1.1.0 — GC to
    /// every plugin in order. Keeps going past failures and returns them all.
    pub async fn gc_network_list(
        &self,
        list: &NetConfList,
        valid: Option<&[ValidAttachment]>,
    ) -> Result<(), RuntimeError> {
        if list.disable_gc {
            return Ok(());
        }
        // libcni gives up silently when the cache cannot be listed.
        let Ok(cached) = self.cached_attachments(Some(&list.name)) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        for entry in cached {
            let still_valid = valid
                .is_some_and(|v| v.iter().any(|a| a.container_id == entry.container_id && a.ifname == entry.ifname));
            if still_valid {
                continue;
            }
            if let Err(e) = self.del_network_list(list, &entry.runtime_conf()).await {
                errors.push(RuntimeError::StaleAttachment {
                    container_id: entry.container_id.clone(),
                    ifname: entry.ifname.clone(),
                    error: Box::new(e),
                });
            }
        }
        let gc_supported = Version::parse_or_default(Some(&list.cni_version)).is_ok_and(|v| v.supports_gc_and_status());
        if gc_supported {
            let rt = RuntimeConf::default();
            for plugin in &list.plugins {
                let path = match self.find(plugin, Command::Gc) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let conf = build_gc_config(&list.name, &list.cni_version, plugin, valid);
                if let Err(e) = self.run(&path, Command::Gc, &rt, &conf).await {
                    errors.push(RuntimeError::plugin(plugin, Command::Gc, e));
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(RuntimeError::Multiple(errors)) }
    }

    // ---- STATUS ----------------------------------------------------------------------------

    /// libcni `GetStatusNetworkList`: a no-op below 1.1.0; otherwise STATUS to every plugin in
    /// order, stopping at the first failure (whose error object [`RuntimeError::to_cni_error`]
    /// returns unchanged).
    pub async fn status_network_list(&self, list: &NetConfList) -> Result<(), RuntimeError> {
        let version = parse_list_version(list)?;
        if !version.supports_gc_and_status() {
            return Ok(());
        }
        let rt = RuntimeConf::default();
        for plugin in &list.plugins {
            let path = self.find(plugin, Command::Status)?;
            let conf = build_status_config(&list.name, &list.cni_version, plugin);
            self.run(&path, Command::Status, &rt, &conf)
                .await
                .map_err(|e| RuntimeError::plugin(plugin, Command::Status, e))?;
        }
        Ok(())
    }

    // ---- VERSION ---------------------------------------------------------------------------

    /// libcni `GetVersionInfo`: VERSION with `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` set to
    /// `dummy`; a plugin answering exactly `unknown CNI_COMMAND: VERSION` supports 0.1.0 only.
    pub async fn version_info(&self, plugin_type: &str) -> Result<VersionInfo, RuntimeError> {
        let conf = PluginConf::from_value(serde_json::json!({ "type": plugin_type }))
            .map_err(|e| RuntimeError::Config(e.to_string()))?;
        let path = self.find(&conf, Command::Version)?;
        let env = vec![
            ("CNI_COMMAND".to_string(), "VERSION".to_string()),
            ("CNI_CONTAINERID".to_string(), String::new()),
            ("CNI_NETNS".to_string(), "dummy".to_string()),
            ("CNI_ARGS".to_string(), String::new()),
            ("CNI_IFNAME".to_string(), "dummy".to_string()),
            ("CNI_PATH".to_string(), "dummy".to_string()),
        ];
        let stdin = format!("{{\"cniVersion\":{:?}}}", version::CURRENT);
        match self.exec.exec(PluginRequest::new(&path, env, stdin.as_bytes())).await {
            Ok(out) => VersionInfo::decode(&out)
                .map_err(|error| RuntimeError::VersionInfo { plugin_type: plugin_type.to_string(), error }),
            Err(e) if e.to_string() == "unknown CNI_COMMAND: VERSION" => {
                Ok(VersionInfo { cni_version: "0.1.0".into(), supported_versions: vec!["0.1.0".into()] })
            }
            Err(e) => Err(RuntimeError::plugin(&conf, Command::Version, e)),
        }
    }

    // ---- result cache ----------------------------------------------------------------------

    /// Path of an attachment's cache file.
    pub fn cache_file_path(&self, net_name: &str, rt: &RuntimeConf) -> Result<PathBuf, String> {
        cache::cache_file_path(&self.cache_dir, net_name, &rt.container_id, &rt.ifname)
    }

    fn write_cache_entry(&self, entry: &CacheEntry) -> std::io::Result<()> {
        let path = cache::cache_file_path(&self.cache_dir, &entry.network_name, &entry.container_id, &entry.ifname)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        cache::write_atomic(&path, &entry.to_bytes())
    }

    fn remove_cache_entry(&self, net_name: &str, rt: &RuntimeConf) {
        if let Ok(path) = self.cache_file_path(net_name, rt) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Read the cache file: `Ok(None)` when there is none (read errors count as none, as in
    /// libcni).
    pub fn read_cache_file(&self, net_name: &str, rt: &RuntimeConf) -> Result<Option<CacheFile>, String> {
        let path = self.cache_file_path(net_name, rt)?;
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(CacheEntry::parse(&bytes))),
            Err(_) => Ok(None),
        }
    }

    /// The cached final ADD result in the version it was stored in (legacy caches, holding just
    /// the result, included). `Ok(None)` when nothing is cached.
    pub fn get_cached_result(&self, net_name: &str, rt: &RuntimeConf) -> Result<Option<CniResult>, RuntimeError> {
        let cached_err = |reason: String| RuntimeError::CachedResult { network: net_name.to_string(), reason };
        let Some(file) = self.read_cache_file(net_name, rt).map_err(cached_err)? else {
            return Ok(None);
        };
        let parsed = match file {
            CacheFile::V1(entry) => CniResult::from_value(&entry.result.unwrap_or(Value::Null)),
            CacheFile::Legacy(bytes) => CniResult::from_json(&bytes),
        };
        parsed.map(Some).map_err(|e| cached_err(e.to_string()))
    }

    /// The cached result converted to `version` (what DEL and CHECK send as `prevResult`).
    fn read_cached_result(
        &self,
        net_name: &str,
        version: Version,
        rt: &RuntimeConf,
    ) -> Result<Option<CniResult>, String> {
        let result = self.get_cached_result(net_name, rt).map_err(|e| match e {
            RuntimeError::CachedResult { reason, .. } => reason,
            other => other.to_string(),
        })?;
        match result {
            None => Ok(None),
            Some(r) => r
                .convert_to(version)
                .map(Some)
                .map_err(|e| format!("failed to convert cached result to config version \"{version}\": {e}")),
        }
    }

    /// libcni `GetNetworkListCachedConfig`: the cached config bytes and `rt` with the cached
    /// `CNI_ARGS` and capability arguments. `Ok(None)` when nothing is cached.
    pub fn get_network_list_cached_config(
        &self,
        net_name: &str,
        rt: &RuntimeConf,
    ) -> Result<Option<(Vec<u8>, RuntimeConf)>, RuntimeError> {
        let cached_err = |reason: String| RuntimeError::CachedResult { network: net_name.to_string(), reason };
        match self.read_cache_file(net_name, rt).map_err(cached_err)? {
            None => Ok(None),
            Some(CacheFile::Legacy(_)) => {
                Err(cached_err(format!("read cached network {net_name:?} config has wrong kind")))
            }
            Some(CacheFile::V1(entry)) => {
                let mut new_rt = rt.clone();
                if !entry.cni_args.is_empty() {
                    new_rt.args = entry.cni_args;
                }
                new_rt.capability_args = entry.capability_args;
                Ok(Some((entry.config, new_rt)))
            }
        }
    }

    /// libcni `GetCachedAttachments`, by network name instead of container ID: every valid
    /// `cniCacheV1` entry (sorted by file name), optionally only those of `net_name`.
    pub fn cached_attachments(&self, net_name: Option<&str>) -> Result<Vec<CacheEntry>, RuntimeError> {
        let dir = self.cache_dir.join("results");
        let read_dir = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RuntimeError::Cache {
                    network: net_name.unwrap_or("").to_string(),
                    action: "list",
                    source,
                });
            }
        };
        let mut names: Vec<String> = read_dir
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| cache::is_entry_name(n))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let Ok(bytes) = std::fs::read(dir.join(&name)) else {
                continue;
            };
            let CacheFile::V1(entry) = CacheEntry::parse(&bytes) else {
                continue;
            };
            if entry.ifname.is_empty() || entry.network_name.is_empty() {
                continue;
            }
            if net_name.is_some_and(|n| n != entry.network_name) {
                continue;
            }
            out.push(*entry);
        }
        Ok(out)
    }

    /// Edit the cached result in place (Multus rewrites it, e.g. to drop default routes). `edit`
    /// gets the `result` object of a `cniCacheV1` entry, or the whole content of a legacy cache.
    /// The file is rewritten atomically; `Ok(false)` when nothing is cached.
    pub fn update_cached_result(
        &self,
        net_name: &str,
        rt: &RuntimeConf,
        edit: impl FnOnce(&mut Value),
    ) -> Result<bool, RuntimeError> {
        let cached_err = |reason: String| RuntimeError::CachedResult { network: net_name.to_string(), reason };
        let path = self.cache_file_path(net_name, rt).map_err(cached_err)?;
        let bytes = match self.read_cache_file(net_name, rt).map_err(cached_err)? {
            None => return Ok(false),
            Some(CacheFile::V1(mut entry)) => {
                let mut result = entry.result.take().unwrap_or(Value::Null);
                edit(&mut result);
                entry.result = Some(result);
                entry.to_bytes()
            }
            Some(CacheFile::Legacy(raw)) => {
                let mut value: Value =
                    serde_json::from_slice(&raw).map_err(|e| cached_err(format!("unreadable cache file: {e}")))?;
                edit(&mut value);
                gojson::to_vec(&value)
            }
        };
        cache::write_atomic(&path, &bytes).map_err(|source| RuntimeError::Cache {
            network: net_name.to_string(),
            action: "update",
            source,
        })?;
        Ok(true)
    }
}

impl fmt::Display for ValidAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.container_id, self.ifname)
    }
}

#[cfg(test)]
mod tests;
