//! Generating `00-multus.conf` in auto mode (spec §3).
//!
//! Pieces, all pure except [`find_primary_config`] (one directory listing) and
//! [`load_primary_file`] (one read):
//!
//! - [`GeneratorConfig`]: the **G** keys of `daemon-config.json`.
//! - [`find_primary_config`]: choose the primary ("master") CNI config — one attempt; the
//!   daemon retries every 1 s, 120 times, and then reports [`GenerateError::NoPrimary`].
//! - [`load_primary`]: version check and capability union of the primary.
//! - [`render_multus_conf`]: the exact bytes of `00-multus.conf` (key order and omission rules
//!   of the reference's generator struct, Go's HTML-safe string escaping, no trailing newline).
//! - [`force_cni_version`]: the `forceCNIVersion` rewrite of the primary.
//!
//! # Deliberate differences from the Go reference (v4.2.4)
//!
//! - **Never an empty config.** When re-loading the primary fails during regeneration the
//!   reference writes an empty `00-multus.conf` (§3.3, §13 item 2). Here loading and rendering
//!   return errors; the daemon keeps the previous file and logs the error.
//! - **Atomic writes.** The daemon writes `00-multus.conf` via a temporary file and rename
//!   (§13 item 4); [`MULTUS_CONF_FILE_NAME`] starts with `00-multus`, so the temporary file must
//!   too (or live elsewhere) to stay out of discovery — [`is_primary_candidate`] excludes it.
//! - **The primary is re-chosen when files change.** The daemon calls
//!   [`find_primary_config`] again on create/remove/rename events of candidate files
//!   ([`is_primary_candidate`]) and re-renders when the choice or its content changed; a
//!   removed primary is not silently kept (§13 item 3). Capabilities are recomputed from the
//!   daemon config and the current primary on every render, so removed ones disappear.
//! - **Directories are skipped** during discovery (the reference would pick a directory named
//!   `*.conf`); only regular files (or symlinks to them) are candidates.
//! - **No panics on odd primaries**: a non-object primary, a non-array `plugins`, non-boolean
//!   capability values or a non-string `name` (with `overrideNetworkName`) are errors or ignored
//!   instead of panics (§13 item 31).
//! - `capabilities` of the daemon config keep their `false` entries in the output, exactly as
//!   the reference serialises them; only `true` entries of the primary are added.
//! - Left to the daemon (no logic here): whether shutdown deletes `00-multus.conf` (§13 item 5)
//!   and staying alive in non-auto mode after copying the user's file
//!   ([`GeneratorConfig::user_config_target`], §13 item 1).

use crate::config::{AUTO_CONFIG, Fields, LogOptions};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Name of the generated file in `cniConfigDir`.
pub const MULTUS_CONF_FILE_NAME: &str = "00-multus.conf";
/// Files whose name starts with this are never chosen as the primary.
pub const MULTUS_FILE_PREFIX: &str = "00-multus";
/// The generated network name unless `overrideNetworkName`.
pub const DEFAULT_NETWORK_NAME: &str = "multus-cni-network";
/// The generated plugin type default.
pub const DEFAULT_PLUGIN_TYPE: &str = "multus-shim";
/// `cniConfigDir` default.
pub const DEFAULT_CNI_CONFIG_DIR: &str = "/etc/cni/net.d";
/// How often and how long the daemon looks for a primary config at startup.
pub const PRIMARY_DISCOVERY_ATTEMPTS: u32 = 120;
/// Pause between two looks for a primary config at startup.
pub const PRIMARY_DISCOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Why `00-multus.conf` could not be generated; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// A G key of `daemon-config.json` has the wrong type.
    #[error("failed to parse the config generator settings: {0}")]
    Config(String),
    /// No candidate after all discovery attempts (the daemon reports this after its retries).
    #[error("failed to find the cluster master CNI plugin: could not find a plugin configuration in {0}")]
    NoPrimary(String),
    #[error(
        "failed to find the cluster master CNI plugin: error when listing the CNI plugin \
         configurations: {0}"
    )]
    /// `multusAutoconfigDir` could not be listed.
    ListDir(String),
    /// The primary config could not be read.
    #[error("failed to read the cluster primary CNI config {path}: {reason}")]
    ReadPrimary {
        /// The primary's path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The primary config is not JSON.
    #[error("failed to unmarshall primary CNI config: {0}")]
    PrimaryJson(String),
    /// Multus' own `cniVersion` is not a valid semantic version.
    #[error("couldn't get top level cni version")]
    TopLevelVersion,
    /// The primary config is not a JSON object.
    #[error("couldn't get cni config from delegate")]
    PrimaryNotObject,
    /// The primary config has no string `cniVersion`, which Multus ≥ 0.4.0 requires.
    #[error("couldn't get cni version from delegate")]
    DelegateVersionMissing,
    /// The primary's `cniVersion` is not a valid semantic version.
    #[error("couldn't get delegate cni version")]
    DelegateVersionInvalid,
    /// Multus' `cniVersion` is ≥ 0.4.0 and the primary's is older.
    #[error("delegate cni version is {delegate} while top level cni version is {multus}")]
    VersionMismatch {
        /// The primary's `cniVersion`.
        delegate: String,
        /// Multus' `cniVersion`.
        multus: String,
    },
    /// `overrideNetworkName` is set and the primary has no `name`.
    #[error("failed to access delegate CNI plugin name")]
    PrimaryNameMissing,
    /// `overrideNetworkName` is set and the primary's `name` is not a non-empty string.
    #[error("the primary CNI Configuration does not feature the network name")]
    PrimaryNameEmpty,
    /// The primary's path cannot be written into JSON.
    #[error("the primary CNI configuration path {0:?} is not valid UTF-8")]
    PathNotUtf8(PathBuf),
    /// `forceCNIVersion` could not rewrite the primary config.
    #[error("failed to unmarshall cni config {path}: {reason}")]
    ForceVersion {
        /// The primary's path.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl GenerateError {
    /// The reference's startup wording for a failed primary load (§3.1 step 5, §12.2 item 19):
    /// `failed to load the primary CNI configuration as a multus delegate with error '<err>'`.
    pub fn startup_message(&self) -> String {
        format!("failed to load the primary CNI configuration as a multus delegate with error '{self}'")
    }
}

// ---------------------------------------------------------------------------------------------
// G keys

/// Keys [`GeneratorConfig::from_map`] reads (the **G** view; checked against the parser by a
/// unit test in `config`).
pub const GENERATOR_KEYS: &[&str] = &[
    "auxiliaryCNIChainName",
    "binDir",
    "capabilities",
    "clusterNetwork",
    "cniConfigDir",
    "cniDir",
    "cniVersion",
    "daemonSocketDir",
    "forceCNIVersion",
    "globalNamespaces",
    "logFile",
    "logLevel",
    "logOptions",
    "logToStderr",
    "multusAutoconfigDir",
    "multusConfigFile",
    "multusMasterCNI",
    "name",
    "namespaceIsolation",
    "overrideNetworkName",
    "readinessindicatorfile",
    "type",
];

/// The config-generator settings of `daemon-config.json` (§2.2 G keys).
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// `cniVersion`: written into `00-multus.conf`; required in auto mode.
    pub cni_version: String,
    /// `auto` (default) or a path to copy.
    pub multus_config_file: String,
    /// `multusAutoconfigDir`: directory scanned (and watched) for the primary CNI config.
    pub multus_autoconfig_dir: String,
    /// File name (relative to `multus_autoconfig_dir`) of the primary; skips discovery.
    pub multus_master_cni: String,
    /// Where `00-multus.conf` goes; default `/etc/cni/net.d`.
    pub cni_config_dir: String,
    /// `forceCNIVersion`: rewrite the primary config on disk with Multus' `cniVersion`.
    pub force_cni_version: bool,
    /// `overrideNetworkName`: name `00-multus.conf` after the primary instead of `multus-cni-network`.
    pub override_network_name: bool,
    /// `readinessindicatorfile`: waited for at startup and watched in auto mode; not written into
    /// `00-multus.conf`.
    pub readiness_indicator_file: String,
    /// `type`; default `multus-shim`.
    pub plugin_type: String,
    /// `binDir`: copied into `00-multus.conf` when set.
    pub bin_dir: String,
    /// `cniDir`: copied into `00-multus.conf` when set.
    pub cni_dir: String,
    /// `logFile`: copied into `00-multus.conf`, so the shim logs to the same file.
    pub log_file: String,
    /// `logLevel`: copied into `00-multus.conf`.
    pub log_level: String,
    /// `logToStderr`: copied into `00-multus.conf`.
    pub log_to_stderr: bool,
    /// `logOptions`: copied into `00-multus.conf`.
    pub log_options: Option<LogOptions>,
    /// As written (non-boolean values dropped); `false` entries are kept.
    pub capabilities: BTreeMap<String, bool>,
    /// `namespaceIsolation`: copied into `00-multus.conf`.
    pub namespace_isolation: bool,
    /// `globalNamespaces`, raw comma list.
    pub global_namespaces: String,
    /// `auxiliaryCNIChainName`: copied into `00-multus.conf`.
    pub auxiliary_cni_chain_name: String,
    /// `daemonSocketDir`: copied into `00-multus.conf`, where the shim finds the socket.
    pub daemon_socket_dir: String,
    /// Replaced by the primary's path in the output.
    pub cluster_network: String,
    /// Ignored in the output (always `multus-cni-network` or the primary's name).
    pub name: String,
}

impl GeneratorConfig {
    /// Parses the bytes of `daemon-config.json`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GenerateError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => Self::from_map(&m),
            Ok(_) => Err(GenerateError::Config("expected a JSON object".into())),
            Err(e) => Err(GenerateError::Config(e.to_string())),
        }
    }

    /// Reads the G keys from the config object; wrong types are errors naming the key.
    pub fn from_map(raw: &Map<String, Value>) -> Result<Self, GenerateError> {
        let f = Fields(raw);
        let e = |e: crate::config::FieldError| GenerateError::Config(e.to_string());
        Ok(Self {
            cni_version: f.str_or_empty("cniVersion").map_err(e)?,
            multus_config_file: f.str_or("multusConfigFile", AUTO_CONFIG).map_err(e)?,
            multus_autoconfig_dir: f.str_or_empty("multusAutoconfigDir").map_err(e)?,
            multus_master_cni: f.str_or_empty("multusMasterCNI").map_err(e)?,
            cni_config_dir: f.str_or("cniConfigDir", DEFAULT_CNI_CONFIG_DIR).map_err(e)?,
            force_cni_version: f.bool("forceCNIVersion").map_err(e)?.unwrap_or(false),
            override_network_name: f.bool("overrideNetworkName").map_err(e)?.unwrap_or(false),
            readiness_indicator_file: f.str_or_empty("readinessindicatorfile").map_err(e)?,
            plugin_type: f.str_or("type", DEFAULT_PLUGIN_TYPE).map_err(e)?,
            bin_dir: f.str_or_empty("binDir").map_err(e)?,
            cni_dir: f.str_or_empty("cniDir").map_err(e)?,
            log_file: f.str_or_empty("logFile").map_err(e)?,
            log_level: f.str_or_empty("logLevel").map_err(e)?,
            log_to_stderr: f.bool("logToStderr").map_err(e)?.unwrap_or(false),
            log_options: LogOptions::read(&f, "logOptions").map_err(e)?,
            capabilities: f.capabilities("capabilities").map_err(e)?,
            namespace_isolation: f.bool("namespaceIsolation").map_err(e)?.unwrap_or(false),
            global_namespaces: f.str_or_empty("globalNamespaces").map_err(e)?,
            auxiliary_cni_chain_name: f.str_or_empty("auxiliaryCNIChainName").map_err(e)?,
            daemon_socket_dir: f.str_or_empty("daemonSocketDir").map_err(e)?,
            cluster_network: f.str_or_empty("clusterNetwork").map_err(e)?,
            name: f.str_or_empty("name").map_err(e)?,
        })
    }

    /// Whether `multusConfigFile` asks for generation (`auto`) rather than a copy.
    pub fn is_auto_mode(&self) -> bool {
        self.multus_config_file == AUTO_CONFIG
    }

    /// `<cniConfigDir>/00-multus.conf`.
    pub fn multus_conf_path(&self) -> PathBuf {
        Path::new(&self.cni_config_dir).join(MULTUS_CONF_FILE_NAME)
    }

    /// Non-auto mode: where the user-provided file is copied (`<cniConfigDir>/<basename>`).
    pub fn user_config_target(&self) -> Option<PathBuf> {
        if self.is_auto_mode() {
            return None;
        }
        let name = Path::new(&self.multus_config_file).file_name()?;
        Some(Path::new(&self.cni_config_dir).join(name))
    }

    /// [`find_primary_config`] with this config's `multusAutoconfigDir` and `multusMasterCNI`.
    pub fn find_primary(&self) -> Result<Option<PathBuf>, GenerateError> {
        let master = Some(self.multus_master_cni.as_str()).filter(|m| !m.is_empty());
        find_primary_config(Path::new(&self.multus_autoconfig_dir), master)
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing the primary

/// Whether a file *name* in the autoconfig directory may be the primary: not starting with
/// `00-multus`, extension exactly `.conf` or `.conflist`.
pub fn is_primary_candidate(file_name: &str) -> bool {
    if file_name.starts_with(MULTUS_FILE_PREFIX) {
        return false;
    }
    matches!(file_name.rfind('.').map(|i| &file_name[i..]), Some(".conf" | ".conflist"))
}

/// One discovery attempt (§3.1 steps 1–2). With `master` (`multusMasterCNI`) the result is
/// `<dir>/<master>` without looking at the directory. Otherwise the byte-wise smallest
/// candidate name among the regular files of `dir`, or `None` when there is none yet.
pub fn find_primary_config(dir: &Path, master: Option<&str>) -> Result<Option<PathBuf>, GenerateError> {
    if let Some(master) = master.filter(|m| !m.is_empty()) {
        return Ok(Some(dir.join(master)));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| GenerateError::ListDir(e.to_string()))?;
    let mut best: Option<std::ffi::OsString> = None;
    for entry in entries {
        let entry = entry.map_err(|e| GenerateError::ListDir(e.to_string()))?;
        let name = entry.file_name();
        let Some(name_str) = name.to_str() else { continue };
        if !is_primary_candidate(name_str) {
            continue;
        }
        // Follow symlinks; skip directories, sockets, dangling links.
        if !std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if best.as_ref().is_none_or(|b| name.as_encoded_bytes() < b.as_encoded_bytes()) {
            best = Some(name);
        }
    }
    Ok(best.map(|name| dir.join(name)))
}

// ---------------------------------------------------------------------------------------------
// Loading the primary

/// The primary CNI config as far as generation needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimaryConfig {
    /// Full path; becomes `clusterNetwork`.
    pub path: PathBuf,
    /// The parsed object.
    pub raw: Map<String, Value>,
    /// Enabled capabilities: of every plugin when `plugins` is a non-empty array, else the
    /// top-level ones.
    pub capabilities: BTreeMap<String, bool>,
}

impl PrimaryConfig {
    /// The primary's `name` when it is a non-empty string.
    pub fn name(&self) -> Result<&str, GenerateError> {
        match self.raw.get("name") {
            None => Err(GenerateError::PrimaryNameMissing),
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(GenerateError::PrimaryNameEmpty),
        }
    }

    /// The primary's top-level `cniVersion`, when it is a string.
    pub fn cni_version(&self) -> Option<&str> {
        self.raw.get("cniVersion").and_then(Value::as_str)
    }
}

/// A semantic version as blang/semver reads it: `X.Y.Z[-pre][+build]`, no leading zeros.
/// Returns the numeric triple and whether it is a pre-release.
fn semver(s: &str) -> Option<((u64, u64, u64), bool)> {
    let (core, _build) = s.split_once('+').unwrap_or((s, ""));
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) if !p.is_empty() => (c, true),
        Some(_) => return None,
        None => (core, false),
    };
    let mut parts = core.split('.').map(|p| {
        let ok = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
        ok.then(|| p.parse::<u64>().ok()).flatten()
    });
    let v = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    Some((v, pre))
}

/// `a >= 0.4.0` with semver pre-release ordering.
fn at_least_040(v: ((u64, u64, u64), bool)) -> bool {
    let (triple, pre) = v;
    triple > (0, 4, 0) || (triple == (0, 4, 0) && !pre)
}

/// Check and digest the primary config (§3.1 step 5). `multus_cni_version` is the daemon
/// config's `cniVersion`; it must be a valid semantic version, and from 0.4.0 on the primary's
/// top-level `cniVersion` must be ≥ 0.4.0 too.
pub fn load_primary(path: &Path, bytes: &[u8], multus_cni_version: &str) -> Result<PrimaryConfig, GenerateError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| GenerateError::PrimaryJson(e.to_string()))?;
    let multus = semver(multus_cni_version).ok_or(GenerateError::TopLevelVersion)?;
    let Value::Object(raw) = value else {
        return Err(GenerateError::PrimaryNotObject);
    };
    if at_least_040(multus) {
        let delegate = match raw.get("cniVersion") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(GenerateError::DelegateVersionMissing),
        };
        let parsed = semver(delegate).ok_or(GenerateError::DelegateVersionInvalid)?;
        if !at_least_040(parsed) {
            return Err(GenerateError::VersionMismatch {
                delegate: delegate.to_string(),
                multus: multus_cni_version.to_string(),
            });
        }
    }
    let capabilities = match raw.get("plugins") {
        Some(Value::Array(plugins)) if !plugins.is_empty() => {
            plugins.iter().flat_map(|p| cni::conf::enabled_capabilities(p.get("capabilities"))).collect()
        }
        _ => cni::conf::enabled_capabilities(raw.get("capabilities")),
    };
    Ok(PrimaryConfig { path: path.to_path_buf(), raw, capabilities })
}

/// Read and [`load_primary`] the file at `path`.
pub fn load_primary_file(path: &Path, multus_cni_version: &str) -> Result<PrimaryConfig, GenerateError> {
    let bytes = std::fs::read(path)
        .map_err(|e| GenerateError::ReadPrimary { path: path.display().to_string(), reason: e.to_string() })?;
    load_primary(path, &bytes, multus_cni_version)
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// The content of `00-multus.conf` (§3.2): compact JSON, keys in the order `binDir`,
/// `capabilities`, `cniVersion`, `logFile`, `logLevel`, `logToStderr`, `logOptions`, `name`,
/// `clusterNetwork`, `namespaceIsolation`, `globalNamespaces`, `type`, `cniDir`,
/// `auxiliaryCNIChainName`, `daemonSocketDir`, `overrideNetworkName`; empty/false values are
/// omitted except `cniVersion`, `name` and `type`. No trailing newline.
pub fn render_multus_conf(config: &GeneratorConfig, primary: &PrimaryConfig) -> Result<String, GenerateError> {
    let name =
        if config.override_network_name { primary.name()?.to_string() } else { DEFAULT_NETWORK_NAME.to_string() };
    let cluster_network =
        primary.path.to_str().ok_or_else(|| GenerateError::PathNotUtf8(primary.path.clone()))?.to_string();
    let mut capabilities = config.capabilities.clone();
    capabilities.extend(primary.capabilities.iter().map(|(k, v)| (k.clone(), *v)));

    let mut m = Map::new();
    fn put_str(m: &mut Map<String, Value>, key: &str, v: &str, always: bool) {
        if always || !v.is_empty() {
            m.insert(key.to_string(), Value::String(v.to_string()));
        }
    }
    put_str(&mut m, "binDir", &config.bin_dir, false);
    if !capabilities.is_empty() {
        let caps = capabilities.into_iter().map(|(k, v)| (k, Value::Bool(v))).collect();
        m.insert("capabilities".into(), Value::Object(caps));
    }
    put_str(&mut m, "cniVersion", &config.cni_version, true);
    put_str(&mut m, "logFile", &config.log_file, false);
    put_str(&mut m, "logLevel", &config.log_level, false);
    if config.log_to_stderr {
        m.insert("logToStderr".into(), Value::Bool(true));
    }
    if let Some(options) = &config.log_options {
        let v = serde_json::to_value(options).map_err(|e| GenerateError::Config(e.to_string()))?;
        m.insert("logOptions".into(), v);
    }
    put_str(&mut m, "name", &name, true);
    put_str(&mut m, "clusterNetwork", &cluster_network, false);
    if config.namespace_isolation {
        m.insert("namespaceIsolation".into(), Value::Bool(true));
    }
    put_str(&mut m, "globalNamespaces", &config.global_namespaces, false);
    put_str(&mut m, "type", &config.plugin_type, true);
    put_str(&mut m, "cniDir", &config.cni_dir, false);
    put_str(&mut m, "auxiliaryCNIChainName", &config.auxiliary_cni_chain_name, false);
    put_str(&mut m, "daemonSocketDir", &config.daemon_socket_dir, false);
    if config.override_network_name {
        m.insert("overrideNetworkName".into(), Value::Bool(true));
    }
    let json = serde_json::to_string(&m).map_err(|e| GenerateError::Config(e.to_string()))?;
    Ok(cni::json::go_escape(json))
}

/// Whether `00-multus.conf` must be rewritten: the rendered content differs from what is on
/// disk (`None` = no file).
pub fn needs_rewrite(current: Option<&[u8]>, rendered: &str) -> bool {
    current != Some(rendered.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// forceCNIVersion

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sort_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// §3.1 step 3: the primary config with its top-level `cniVersion` set to `version`,
/// re-serialised as the reference does (compact, keys sorted at every level, Go escaping).
/// Numbers are kept exactly (the reference passes them through `float64`).
pub fn force_cni_version(bytes: &[u8], version: &str) -> Result<Vec<u8>, GenerateError> {
    let err = |reason: String| GenerateError::ForceVersion { path: String::new(), reason };
    let mut raw = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(err("expected a JSON object".into())),
        Err(e) => return Err(err(e.to_string())),
    };
    raw.insert("cniVersion".into(), Value::String(version.to_string()));
    let json = serde_json::to_string(&sort_keys(Value::Object(raw))).map_err(|e| err(e.to_string()))?;
    Ok(cni::json::go_escape(json).into_bytes())
}

/// [`force_cni_version`] on a file, rewritten in place (truncate and write, keeping the file's
/// mode; the reference uses 0644). The daemon may prefer an atomic write of
/// [`force_cni_version`]'s bytes instead.
pub fn force_cni_version_file(path: &Path, version: &str) -> Result<(), GenerateError> {
    let with_path = |reason: String| GenerateError::ForceVersion { path: path.display().to_string(), reason };
    let bytes = std::fs::read(path).map_err(|e| with_path(e.to_string()))?;
    let out = force_cni_version(&bytes, version).map_err(|e| match e {
        GenerateError::ForceVersion { reason, .. } => with_path(reason),
        other => other,
    })?;
    std::fs::write(path, out).map_err(|e| with_path(e.to_string()))
}

#[cfg(test)]
mod tests;
