//! Targets: what is being judged. A YAML file, or a shorthand on the command line:
//!
//! - `plugin:<path>`: a CNI plugin binary, with a built-in config template chosen by its file
//!   name (`bridge`, `ptp`, `host-local`, `fake-cni`, …) — or `plugin:<path>` plus a YAML file
//!   giving the template;
//! - `thick`: multus-rs's shim, daemon and `kube-mock` from the cargo target dir;
//! - `thick:<file>` / `<file>`: a target file (see README.md, and `targets/*.yaml`).

use crate::model::Applies;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    #[default]
    Plugin,
    Thick,
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
    /// Directories for `CNI_PATH` (delegates such as host-local). Default: the plugin's dir.
    #[serde(default)]
    pub cni_path: Vec<PathBuf>,
    /// Run the plugin inside a per-case scratch "host" network namespace (default: when root).
    #[serde(default)]
    pub host_netns: Option<bool>,
    /// Which case families apply (any, interface, ipam, chained, meta, thick).
    #[serde(default)]
    pub tags: Vec<Applies>,
    /// Config template (`{{version}}`, `{{net}}`, `{{type}}`, `{{tmp}}`, `{{short}}` …).
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
    /// Explanations of expected failures, by case id, printed in reports (never suppressing).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
    /// Thick targets: the shim, the daemon and the API server.
    #[serde(default)]
    pub thick: Option<crate::thick::ThickSpec>,
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

fn host_local(tmp_key: &str) -> Value {
    json!({"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": format!("{{{{{tmp_key}}}}}/ipam")})
}

/// Built-in config templates by plugin file name.
pub fn builtin_template(type_name: &str) -> Option<(Value, Vec<Applies>, Option<String>)> {
    let ipam_dir = Some("{{tmp}}/ipam".to_string());
    let base = |extra: Value| {
        let mut v = json!({"cniVersion": "{{version}}", "name": "{{net}}", "type": "{{type}}"});
        if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
            m.extend(e);
        }
        v
    };
    Some(match type_name {
        "bridge" => (
            base(json!({"bridge": "cb{{short}}", "isGateway": true, "ipMasq": false, "ipam": host_local("tmp")})),
            vec![Applies::Any, Applies::Interface, Applies::Ipam],
            ipam_dir,
        ),
        "ptp" => (
            base(json!({"ipMasq": false, "ipam": host_local("tmp")})),
            vec![Applies::Any, Applies::Interface, Applies::Ipam],
            ipam_dir,
        ),
        "host-local" => (
            base(json!({"ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": "{{tmp}}/ipam"}})),
            vec![Applies::Any, Applies::Ipam],
            ipam_dir,
        ),
        "tuning" => (base(json!({"sysctl": {}})), vec![Applies::Any, Applies::Chained], None),
        "fake-cni" => (base(json!({"fake": {"recordDir": "{{tmp}}/calls"}})), vec![Applies::Any], None),
        _ => return None,
    })
}

impl Target {
    /// Parse a `--target` argument.
    pub fn from_spec(spec: &str) -> anyhow::Result<Target> {
        let mut t = if spec == "thick" {
            Target { kind: Kind::Thick, thick: Some(crate::thick::ThickSpec::multus_rs()), ..Target::default() }
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
                t.thick = Some(crate::thick::ThickSpec::multus_rs());
            }
            t
        } else if Path::new(spec).is_file() {
            Self::from_file(Path::new(spec))?
        } else {
            anyhow::bail!(
                "unknown target {spec:?}: use plugin:<path>[,<file.yaml>], thick, thick:<file.yaml> or a target file"
            );
        };
        t.spec = spec.to_string();
        t.complete()?;
        Ok(t)
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Target> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let t: Target = serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(t)
    }

    /// Fill defaults: template by plugin name, tags, CNI_PATH.
    pub fn complete(&mut self) -> anyhow::Result<()> {
        if self.kind == Kind::Thick {
            let th = self.thick.get_or_insert_with(crate::thick::ThickSpec::multus_rs);
            if self.name.is_none() {
                self.name = Some(th.name.clone());
            }
            if self.tags.is_empty() {
                self.tags = vec![Applies::Any, Applies::Meta, Applies::Thick];
            }
            return Ok(());
        }
        let plugin = self.plugin.clone().ok_or_else(|| anyhow::anyhow!("plugin target without `plugin`"))?;
        let type_name = plugin.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if self.name.is_none() {
            self.name = Some(type_name.clone());
        }
        if self.config.is_none() || self.tags.is_empty() {
            let Some((tmpl, tags, ipam)) = builtin_template(&type_name) else {
                anyhow::bail!(
                    "no built-in config template for plugin {type_name:?}: give a target file with `config:` and `tags:`"
                );
            };
            if self.config.is_none() {
                self.config = Some(tmpl);
                if self.ipam_dir.is_none() {
                    self.ipam_dir = ipam;
                }
            }
            if self.tags.is_empty() {
                self.tags = tags;
            }
        }
        if self.cni_path.is_empty()
            && let Some(dir) = plugin.parent()
        {
            self.cni_path.push(dir.to_path_buf());
        }
        if self.notes.is_empty() {
            self.notes = crate::notes::builtin(&type_name);
        }
        Ok(())
    }

    pub fn has(&self, a: Applies) -> bool {
        a == Applies::Any || self.tags.contains(&a)
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

/// Render `{{var}}` placeholders in every string of a JSON value. A string that is exactly one
/// placeholder whose variable holds non-string JSON becomes that JSON.
pub fn render_value(v: &Value, vars: &dyn Fn(&str) -> Option<Value>) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if t.starts_with("{{")
                && t.ends_with("}}")
                && t[2..t.len() - 2].chars().all(|c| c != '{' && c != '}')
                && let Some(val) = vars(t[2..t.len() - 2].trim())
                && !val.is_string()
            {
                return val;
            }
            Value::String(render_str(s, vars))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render_value(x, vars)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (render_str(k, vars), render_value(x, vars))).collect())
        }
        other => other.clone(),
    }
}

/// Render `{{var}}` placeholders in a string; unknown variables are left as they are.
pub fn render_str(s: &str, vars: &dyn Fn(&str) -> Option<Value>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match vars(name) {
            Some(Value::String(x)) => out.push_str(&x),
            Some(other) => out.push_str(&other.to_string()),
            None => {
                out.push_str("{{");
                out.push_str(&after[..end]);
                out.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Some(t) = target.as_object_mut() else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering() {
        let vars = |k: &str| match k {
            "version" => Some(json!("1.0.0")),
            "prev" => Some(json!({"a": 1})),
            _ => None,
        };
        let v = json!({"cniVersion": "{{version}}", "p": "{{ prev }}", "x": "a-{{version}}-{{nope}}"});
        assert_eq!(render_value(&v, &vars), json!({"cniVersion": "1.0.0", "p": {"a": 1}, "x": "a-1.0.0-{{nope}}"}));
    }

    #[test]
    fn patching() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }

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
