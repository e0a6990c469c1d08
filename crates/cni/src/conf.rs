//! Network configurations: single-plugin configs and conflists (cni.md §2).
//!
//! Delegate configs are opaque to a meta-plugin, so both types keep the whole JSON object and
//! expose typed accessors: every key survives a parse/serialise round trip.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Why a network configuration was refused; the message is libcni's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// The bytes are not JSON.
    #[error("error parsing configuration: {0}")]
    Json(String),
    /// Valid JSON, but not an object.
    #[error("error parsing configuration: expected a JSON object")]
    NotAnObject,
    /// A plugin object without a non-empty `type`.
    #[error("error parsing configuration: missing 'type'")]
    MissingType,
    /// A list without `name`.
    #[error("error parsing configuration list: missing network name")]
    MissingName,
    /// A list without a `plugins` key.
    #[error("error parsing configuration list: no 'plugins' key")]
    MissingPlugins,
    /// A list whose `plugins` array is empty (and that does not load plugins from elsewhere).
    #[error("error parsing configuration list: no plugins in list")]
    NoPlugins,
    /// An entry of `plugins` that is not a valid plugin object.
    #[error("error parsing configuration list: invalid plugin at index {index}: {reason}")]
    InvalidPlugin {
        /// Position in `plugins`, from 0.
        index: usize,
        /// What is wrong with the entry.
        reason: String,
    },
    /// A known key with a value of the wrong JSON type.
    #[error("error parsing configuration: invalid value for {key:?}: {reason}")]
    InvalidField {
        /// The key.
        key: String,
        /// The JSON type expected.
        reason: String,
    },
}

impl From<ConfError> for crate::CniError {
    fn from(e: ConfError) -> Self {
        let code = match e {
            ConfError::Json(_) | ConfError::NotAnObject => crate::error::code::DECODING_FAILURE,
            _ => crate::error::code::INVALID_NETWORK_CONFIG,
        };
        crate::CniError::new(code, e.to_string())
    }
}

fn object_from_bytes(bytes: &[u8]) -> Result<Map<String, Value>, ConfError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ConfError::NotAnObject),
        Err(e) => Err(ConfError::Json(e.to_string())),
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ConfError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ConfError::InvalidField { key: key.into(), reason: "expected a string".into() }),
    }
}

/// libcni accepts JSON booleans or the strings "true"/"false" in any case.
fn bool_field(m: &Map<String, Value>, key: &str) -> Result<bool, ConfError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(ConfError::InvalidField { key: key.into(), reason: "expected a boolean".into() }),
    }
}

/// One plugin object: a single-plugin config file or an entry of a conflist's `plugins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConf {
    raw: Map<String, Value>,
}

impl PluginConf {
    /// Parse a plugin object; `type` must be a non-empty string.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfError> {
        Self::from_map(object_from_bytes(bytes)?)
    }

    /// [`Self::from_bytes`] of an already decoded value.
    pub fn from_value(value: Value) -> Result<Self, ConfError> {
        match value {
            Value::Object(m) => Self::from_map(m),
            _ => Err(ConfError::NotAnObject),
        }
    }

    /// [`Self::from_bytes`] of an already decoded object.
    pub fn from_map(raw: Map<String, Value>) -> Result<Self, ConfError> {
        match str_field(&raw, "type")? {
            Some(t) if !t.is_empty() => Ok(Self { raw }),
            _ => Err(ConfError::MissingType),
        }
    }

    /// `type`: the plugin binary's name.
    pub fn plugin_type(&self) -> &str {
        self.raw.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// `name`, if the object has one (plugins inside a list usually do not).
    pub fn name(&self) -> Option<&str> {
        self.raw.get("name").and_then(Value::as_str)
    }

    /// `cniVersion`, if set.
    pub fn cni_version(&self) -> Option<&str> {
        self.raw.get("cniVersion").and_then(Value::as_str)
    }

    /// Capabilities this plugin declares as enabled. Non-boolean values are ignored rather
    /// than fatal (the Go reference panics on them).
    pub fn capabilities(&self) -> BTreeMap<String, bool> {
        enabled_capabilities(self.raw.get("capabilities"))
    }

    /// The object as written, every key included.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// The object for editing in place (a meta-plugin injecting `cniVersion`, `name`, …).
    pub fn raw_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.raw
    }

    /// The object as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.raw.clone())
    }

    /// The object serialised compactly (key order as loaded).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.raw).unwrap_or_default()
    }
}

/// The `true` entries of a `capabilities` object.
pub fn enabled_capabilities(caps: Option<&Value>) -> BTreeMap<String, bool> {
    caps.and_then(Value::as_object)
        .map(|m| m.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| (k.clone(), true)).collect())
        .unwrap_or_default()
}

/// A network configuration list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfList {
    /// Every top-level key of the list as loaded (including `plugins` as originally written).
    raw: Map<String, Value>,
    /// `name`: the network's name, also used for the result cache.
    pub name: String,
    /// The effective list version: the highest of `cniVersion` and the known `cniVersions`.
    pub cni_version: String,
    /// `disableCheck`: CHECK succeeds without running a plugin.
    pub disable_check: bool,
    /// `disableGC`: GC deletes no stale attachment and sends no GC.
    pub disable_gc: bool,
    /// `loadOnlyInlinedPlugins`: only the `plugins` written here count (libcni 1.2).
    pub load_only_inlined_plugins: bool,
    /// The plugin objects, in execution order.
    pub plugins: Vec<PluginConf>,
}

impl NetConfList {
    /// Parse with libcni's rules (`NetworkConfFromBytes`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfError> {
        Self::from_map(object_from_bytes(bytes)?)
    }

    /// [`Self::from_bytes`] of an already decoded value.
    pub fn from_value(value: Value) -> Result<Self, ConfError> {
        match value {
            Value::Object(m) => Self::from_map(m),
            _ => Err(ConfError::NotAnObject),
        }
    }

    /// [`Self::from_bytes`] of an already decoded object.
    pub fn from_map(mut raw: Map<String, Value>) -> Result<Self, ConfError> {
        let name = str_field(&raw, "name")?.ok_or(ConfError::MissingName)?.to_string();
        let mut cni_version = str_field(&raw, "cniVersion")?.unwrap_or("").to_string();
        if let Some(Value::Array(versions)) = raw.get("cniVersions") {
            let current = crate::version::Version::parse(crate::version::CURRENT).ok();
            let mut best = crate::version::Version::parse(&cni_version).ok();
            for v in versions.iter().filter_map(Value::as_str) {
                if let Ok(parsed) = crate::version::Version::parse(v)
                    && Some(parsed) <= current
                    && best.is_none_or(|b| parsed > b)
                {
                    best = Some(parsed);
                }
            }
            if let Some(best) = best {
                cni_version = best.to_string();
            }
        }
        let disable_check = bool_field(&raw, "disableCheck")?;
        let disable_gc = bool_field(&raw, "disableGC")?;
        let load_only_inlined_plugins = bool_field(&raw, "loadOnlyInlinedPlugins")?;
        let plugins = match raw.get_mut("plugins") {
            None | Some(Value::Null) => {
                if load_only_inlined_plugins {
                    return Err(ConfError::MissingPlugins);
                }
                Vec::new()
            }
            Some(value) if value.is_array() => {
                let items = match std::mem::take(value) {
                    Value::Array(items) => items,
                    _ => Vec::new(),
                };
                if items.is_empty() {
                    return Err(ConfError::NoPlugins);
                }
                // The plugin objects move into `plugins`; `raw` keeps a null in their place (so
                // `to_value` writes them where they were), not a second copy.
                items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        PluginConf::from_value(item)
                            .map_err(|e| ConfError::InvalidPlugin { index, reason: e.to_string() })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => {
                return Err(ConfError::InvalidField { key: "plugins".into(), reason: "expected a list".into() });
            }
        };
        Ok(Self { raw, name, cni_version, disable_check, disable_gc, load_only_inlined_plugins, plugins })
    }

    /// libcni's `ConfListFromConf`: a one-plugin list named and versioned like the plugin.
    pub fn from_single(conf: PluginConf) -> Self {
        let name = conf.name().unwrap_or("").to_string();
        let cni_version = conf.cni_version().unwrap_or("").to_string();
        let mut raw = Map::new();
        raw.insert("cniVersion".into(), Value::String(cni_version.clone()));
        raw.insert("name".into(), Value::String(name.clone()));
        // A placeholder: `to_value` writes the plugins here (no second copy of them).
        raw.insert("plugins".into(), Value::Null);
        Self {
            raw,
            name,
            cni_version,
            disable_check: false,
            disable_gc: false,
            load_only_inlined_plugins: false,
            plugins: vec![conf],
        }
    }

    /// Top-level keys as loaded (unknown keys included); the inline plugin objects are in
    /// [`NetConfList::plugins`] (`plugins` holds a null placeholder here).
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// The list as JSON: original top-level keys, the effective name/version/flags, and the
    /// current plugin objects (so plugins appended after loading are included).
    pub fn to_value(&self) -> Value {
        let mut m = self.raw.clone();
        m.insert("name".into(), Value::String(self.name.clone()));
        if !self.cni_version.is_empty() || m.contains_key("cniVersion") {
            m.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        }
        for (key, flag) in [
            ("disableCheck", self.disable_check),
            ("disableGC", self.disable_gc),
            ("loadOnlyInlinedPlugins", self.load_only_inlined_plugins),
        ] {
            if flag || m.contains_key(key) {
                m.insert(key.into(), Value::Bool(flag));
            }
        }
        // A list loaded without inline plugins (libcni's plugins-from-a-directory form) keeps its
        // `plugins` key as it was: an empty array would not parse again.
        if !self.plugins.is_empty() {
            m.insert("plugins".into(), Value::Array(self.plugins.iter().map(PluginConf::to_value).collect()));
        }
        Value::Object(m)
    }

    /// The list serialised compactly; what the result cache stores as the attachment's config.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    /// Union of the enabled capabilities of every plugin.
    pub fn capabilities(&self) -> BTreeMap<String, bool> {
        self.plugins.iter().flat_map(|p| p.capabilities()).collect()
    }
}

/// Either form of network configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkConfig {
    /// A single-plugin config file.
    Single(PluginConf),
    /// A conflist.
    List(NetConfList),
}

impl NetworkConfig {
    /// A config with a `plugins` key is a list; anything else must be a single plugin.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfError> {
        let raw = object_from_bytes(bytes)?;
        if raw.contains_key("plugins") {
            NetConfList::from_map(raw).map(Self::List)
        } else {
            PluginConf::from_map(raw).map(Self::Single)
        }
    }

    /// The network's name (`""` for a single plugin without one).
    pub fn name(&self) -> &str {
        match self {
            Self::Single(c) => c.name().unwrap_or(""),
            Self::List(l) => &l.name,
        }
    }

    /// The config's `cniVersion` (for a list: the effective version).
    pub fn cni_version(&self) -> &str {
        match self {
            Self::Single(c) => c.cni_version().unwrap_or(""),
            Self::List(l) => &l.cni_version,
        }
    }

    /// Union of the enabled capabilities of the plugin(s).
    pub fn capabilities(&self) -> BTreeMap<String, bool> {
        match self {
            Self::Single(c) => c.capabilities(),
            Self::List(l) => l.capabilities(),
        }
    }

    /// As a list, borrowing (single configs are wrapped as libcni does).
    pub fn to_list(&self) -> NetConfList {
        self.clone().into_list()
    }

    /// As a list (single configs are wrapped as libcni does).
    pub fn into_list(self) -> NetConfList {
        match self {
            Self::Single(c) => NetConfList::from_single(c),
            Self::List(l) => l,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_survive() {
        let raw = br#"{"cniVersion":"1.0.0","name":"n","x-top":1,"plugins":[{"type":"bridge","kubernetes":{"kubeconfig":"/k"},"ipam":{"type":"host-local"}}]}"#;
        let list = NetConfList::from_bytes(raw).unwrap();
        let back: Value = serde_json::from_slice(&list.to_bytes()).unwrap();
        let orig: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn libcni_parse_rules() {
        assert_eq!(NetConfList::from_bytes(br#"{"plugins":[]}"#), Err(ConfError::MissingName));
        assert_eq!(NetConfList::from_bytes(br#"{"name":"n","plugins":[]}"#), Err(ConfError::NoPlugins));
        // Found by the fuzzer: a list without inline plugins is written back so that it parses.
        let bare = NetConfList::from_bytes(br#"{"name":"n","cniVersion":"1.0.0"}"#).unwrap();
        assert!(bare.plugins.is_empty());
        assert_eq!(NetConfList::from_bytes(&bare.to_bytes()).unwrap(), bare);
        assert!(matches!(
            NetConfList::from_bytes(br#"{"name":"n","plugins":[{"x":1}]}"#),
            Err(ConfError::InvalidPlugin { index: 0, .. })
        ));
        let l = NetConfList::from_bytes(br#"{"name":"n","disableCheck":"TRUE","plugins":[{"type":"a"}]}"#).unwrap();
        assert!(l.disable_check);
        assert!(NetConfList::from_bytes(br#"{"name":"n","disableGC":3,"plugins":[{"type":"a"}]}"#).is_err());
    }

    #[test]
    fn cni_versions_pick_the_highest_known() {
        let l = NetConfList::from_bytes(
            br#"{"name":"n","cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","9.9.9"],"plugins":[{"type":"a"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, "1.1.0");
    }

    #[test]
    fn capabilities_ignore_non_bools() {
        let c = PluginConf::from_bytes(br#"{"type":"a","capabilities":{"ips":true,"mac":false,"x":"yes"}}"#).unwrap();
        assert_eq!(c.capabilities().keys().collect::<Vec<_>>(), vec!["ips"]);
    }
}
