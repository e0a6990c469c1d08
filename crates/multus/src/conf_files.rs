//! CNI config files (§5.6, §5.10 step 3): libcni's directory and conflist loading, and the
//! config of a NAD whose spec names none.

use crate::config::fields::json_kind;
use cni::conf::{NetConfList, PluginConf};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why a config file could not be used; the texts are libcni's and the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfFileError {
    /// The subdirectory of a conflist's plugins cannot be listed.
    #[error("failed to read plugin config files in {}: {reason}", .dir.display())]
    PluginDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A plugin file of that subdirectory cannot be read.
    #[error("failed to read plugin config file {}: {reason}", .file.display())]
    PluginRead {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A plugin file of that subdirectory is not a plugin config.
    #[error("failed to parse plugin config file {}: {reason}", .file.display())]
    PluginParse {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A conflist file cannot be read.
    #[error("{0}")]
    Read(String),
    /// A conflist file is not a conflist.
    #[error("{0}")]
    ConfList(String),
    /// A conflist file (with its subdirectory) has no plugin.
    #[error("no plugin configs found")]
    NoPlugins,
    /// A conflist's name cannot name its plugins' subdirectory.
    #[error("invalid network name {0:?}")]
    InvalidNetworkName(String),
    /// A directory holds no config file.
    #[error("No networks found in {}", .0.display())]
    NoNetworks(PathBuf),
    /// A config file of a directory cannot be read or parsed.
    #[error("Error loading CNI config file {}: {reason}", .file.display())]
    ConfigFile {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A conflist file of a directory cannot be parsed.
    #[error("Error loading CNI conflist file {}: {reason}", .file.display())]
    ConflistFile {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// No config file of a directory has the wanted network name.
    #[error("no network available in the name {name} in cni dir {}", .dir.display())]
    NotInDir {
        /// The network name looked for.
        name: String,
        /// The directory.
        dir: PathBuf,
    },
    /// A NAD's `spec.config` is not a JSON object.
    #[error("failed to unmarshal Spec.Config: {0}")]
    SpecConfig(String),
}

/// libcni `ConfFiles`: regular files of `dir` with one of `extensions`, sorted by name. A missing
/// directory yields an empty list.
pub fn conf_files(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
        if extensions.contains(&ext.as_str()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// `NetworkPluginConfsFromFiles`: every `*.conf` in `<dir>/<network_name>/` (sorted) as a plugin.
pub fn subdirectory_plugins(dir: &Path, network_name: &str) -> Result<Vec<PluginConf>, ConfFileError> {
    let plugin_dir = dir.join(network_name);
    let files = conf_files(&plugin_dir, &[".conf"])
        .map_err(|e| ConfFileError::PluginDir { dir: plugin_dir.clone(), reason: e.to_string() })?;
    files
        .iter()
        .map(|f| {
            let bytes =
                std::fs::read(f).map_err(|e| ConfFileError::PluginRead { file: f.clone(), reason: e.to_string() })?;
            PluginConf::from_bytes(&bytes)
                .map_err(|e| ConfFileError::PluginParse { file: f.clone(), reason: e.to_string() })
        })
        .collect()
}

/// libcni `NetworkConfFromFile` / `ConfListFromFile`: a conflist file with subdirectory loading.
/// Unless `loadOnlyInlinedPlugins` is set, the list name must be a valid network name and every
/// `*.conf` of `<dir of file>/<name>/` is appended; an empty result is an error.
pub fn load_conflist_file(path: &Path) -> Result<NetConfList, ConfFileError> {
    let bytes = std::fs::read(path).map_err(|e| ConfFileError::Read(e.to_string()))?;
    let mut list = NetConfList::from_bytes(&bytes).map_err(|e| ConfFileError::ConfList(e.to_string()))?;
    append_subdirectory_plugins(&mut list, path.parent().unwrap_or(Path::new(".")))?;
    if list.plugins.is_empty() {
        return Err(ConfFileError::NoPlugins);
    }
    Ok(list)
}

/// Append the plugins of `<dir>/<list name>/*.conf` unless the list sets `loadOnlyInlinedPlugins`.
pub fn append_subdirectory_plugins(list: &mut NetConfList, dir: &Path) -> Result<(), ConfFileError> {
    if list.load_only_inlined_plugins {
        return Ok(());
    }
    if !cni::validate::matches_name_pattern(&list.name) {
        return Err(ConfFileError::InvalidNetworkName(list.name.clone()));
    }
    let extra = subdirectory_plugins(dir, &list.name)?;
    list.plugins.extend(extra);
    Ok(())
}

/// `GetCNIConfigFromFile`: the first file of `dir` (sorted; `.conf`, `.json`, `.conflist`) whose
/// network name equals `name` (any file when `name` is empty). Returns the file's bytes.
pub fn config_from_dir(name: &str, dir: &Path) -> Result<Vec<u8>, ConfFileError> {
    let files = conf_files(dir, &[".conf", ".json", ".conflist"]).unwrap_or_default();
    if files.is_empty() {
        return Err(ConfFileError::NoNetworks(dir.to_path_buf()));
    }
    for file in files {
        let config_file = |reason: String| ConfFileError::ConfigFile { file: file.clone(), reason };
        let bytes = std::fs::read(&file).map_err(|e| config_file(e.to_string()))?;
        if file.extension().and_then(|e| e.to_str()) == Some("conflist") {
            let list = NetConfList::from_bytes(&bytes)
                .map_err(|e| ConfFileError::ConflistFile { file: file.clone(), reason: e.to_string() })?;
            if list.name == name || name.is_empty() {
                return Ok(bytes);
            }
        } else {
            let map = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(config_file("error parsing configuration: expected a JSON object".into())),
                Err(e) => return Err(config_file(format!("error parsing configuration: {e}"))),
            };
            let conf_name = map.get("name").and_then(Value::as_str).unwrap_or("");
            if conf_name == name || name.is_empty() {
                if map.get("type").and_then(Value::as_str).unwrap_or("").is_empty() {
                    return Err(config_file("no 'type'; perhaps this is a .conflist?".into()));
                }
                return Ok(bytes);
            }
        }
    }
    Err(ConfFileError::NotInDir { name: name.to_string(), dir: dir.to_path_buf() })
}

/// `GetCNIConfig` of the NAD client: the NAD's `spec.config` with `name` injected when missing or
/// empty, or — for an empty spec — the config named like the NAD from `conf_dir`.
pub fn config_from_nad(nad_name: &str, spec_config: &str, conf_dir: &Path) -> Result<Vec<u8>, ConfFileError> {
    if spec_config.is_empty() {
        return config_from_dir(nad_name, conf_dir);
    }
    let mut map = match serde_json::from_str::<Value>(spec_config) {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            return Err(ConfFileError::SpecConfig(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(&other)
            )));
        }
        Err(e) => return Err(ConfFileError::SpecConfig(e.to_string())),
    };
    let has_name = match map.get("name") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    if has_name {
        return Ok(spec_config.as_bytes().to_vec());
    }
    map.insert("name".into(), Value::String(nad_name.to_string()));
    Ok(serde_json::to_vec(&map).unwrap_or_default())
}
