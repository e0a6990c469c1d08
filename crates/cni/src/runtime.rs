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
mod error;
mod gojson;
mod request;

pub use cache::{
    AtomicWrite, CACHE_KIND_V1, CacheEntry, CacheFile, CachePathError, TEMP_MARKER, remove_stale_temp_files,
    write_atomic, write_atomic_with,
};

pub use error::RuntimeError;
pub use request::{
    RuntimeConf, ValidAttachment, build_gc_config, build_plugin_config, build_status_config, config_bytes, plugin_env,
    runtime_config_for,
};

use crate::conf::{NetConfList, PluginConf};
use crate::env::Command;
use crate::exec::{self, Exec, ExecError, PluginRequest, RawExec};
use crate::result::CniResult;
use crate::validate;
use crate::version::{self, Version, VersionInfo};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// Runs networks as libcni does. `exec` is [`RawExec`] in production and a fake in tests.
#[derive(Debug, Clone)]
pub struct CniRuntime<E: Exec = RawExec> {
    /// Where plugins are looked up; also exported as `CNI_PATH`.
    pub plugin_dirs: Vec<PathBuf>,
    /// The cache root (results live in `<cache_dir>/results`).
    pub cache_dir: PathBuf,
    /// Runs the plugin processes.
    pub exec: E,
}

fn parse_list_version(list: &NetConfList) -> Result<Version, RuntimeError> {
    Version::parse_or_default(Some(&list.cni_version)).map_err(|e| RuntimeError::Config(e.to_string()))
}

impl<E: Exec> CniRuntime<E> {
    /// A runtime looking up plugins in `plugin_dirs` and caching results under `cache_dir`.
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

    /// After a DEL of `list` failed while the container's network namespace is gone, release
    /// what lives outside the namespace: DEL to each plugin's IPAM plugin (`ipam.type`, with the
    /// plugin's config as its stdin and the same environment, as plugins call IPAM themselves),
    /// then the cache entry. Not libcni: it covers plugins whose DEL gives up before their IPAM
    /// DEL when the namespace or the interface is gone (containernetworking-plugins 1.1's
    /// host-device), which would leak the lease forever since nothing retries that DEL.
    /// Returns how many IPAM plugins were called; the first IPAM failure is returned and the
    /// cache entry then stays.
    pub async fn release_ipam_of_list(&self, list: &NetConfList, rt: &RuntimeConf) -> Result<usize, RuntimeError> {
        let mut released = 0;
        for plugin in list.plugins.iter().rev() {
            let Some(ipam_type) = plugin.raw().get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str) else {
                continue;
            };
            let Ok(ipam) = PluginConf::from_value(serde_json::json!({"type": ipam_type})) else { continue };
            let path = self.find(&ipam, Command::Del)?;
            let conf = build_plugin_config(&list.name, &list.cni_version, plugin, None, rt);
            self.run(&path, Command::Del, rt, &conf).await.map_err(|e| RuntimeError::plugin(&ipam, Command::Del, e))?;
            released += 1;
        }
        self.remove_cache_entry(&list.name, rt);
        Ok(released)
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
        let cached = self.read_cached_result(&list.name, version, rt)?;
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
    pub fn cache_file_path(&self, net_name: &str, rt: &RuntimeConf) -> Result<PathBuf, CachePathError> {
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
    pub fn read_cache_file(&self, net_name: &str, rt: &RuntimeConf) -> Result<Option<CacheFile>, CachePathError> {
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
        let Some(file) = self.read_cache_file(net_name, rt).map_err(|e| cached_err(e.to_string()))? else {
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
    ) -> Result<Option<CniResult>, RuntimeError> {
        match self.get_cached_result(net_name, rt)? {
            None => Ok(None),
            Some(r) => r.convert_to(version).map(Some).map_err(|e| RuntimeError::CachedResult {
                network: net_name.to_string(),
                reason: format!("failed to convert cached result to config version \"{version}\": {e}"),
            }),
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
        match self.read_cache_file(net_name, rt).map_err(|e| cached_err(e.to_string()))? {
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
        let path = self.cache_file_path(net_name, rt).map_err(|e| cached_err(e.to_string()))?;
        let bytes = match self.read_cache_file(net_name, rt).map_err(|e| cached_err(e.to_string()))? {
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

#[cfg(test)]
mod tests;
