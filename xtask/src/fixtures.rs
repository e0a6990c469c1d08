//! Fixture templates (`fixtures/`): `{{NAME}}` placeholders filled per run.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::workspace_root;

/// Placeholder values for one run.
pub type Vars = BTreeMap<String, String>;

pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("fixtures")
}

/// Replace every `{{KEY}}`; an unknown placeholder is an error (a typo must not reach a daemon).
pub fn render(text: &str, vars: &Vars) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").context("unterminated {{ placeholder")?;
        let key = &after[..end];
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None => bail!("unknown placeholder {{{{{key}}}}}"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Render one template file.
pub fn render_file(path: &Path, vars: &Vars) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    render(&text, vars).with_context(|| format!("rendering {}", path.display()))
}

/// Render every file of `src` (not recursive) into `dst`, keeping names.
pub fn render_dir(src: &Path, dst: &Path, vars: &Vars) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dst)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(src)
        .with_context(|| format!("reading {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let target = dst.join(f.file_name().context("file name")?);
        std::fs::write(&target, render_file(&f, vars)?)?;
        out.push(target);
    }
    Ok(out)
}

/// Every YAML document of a (rendered) text, as JSON values.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [
            ("RUN_DIR", "/tmp/run"),
            ("BIN_DIR", "/usr/lib/cni"),
            ("IPAM_DIR", "/tmp/run/ipam"),
            ("CLUSTER_BRIDGE", "mcb1"),
            ("NAD_BRIDGE", "mnb1"),
            ("MACVLAN_MASTER", "mvm1"),
            ("NAMESPACE", "ns"),
            ("POD_IMAGE", "img:1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn render_replaces_and_rejects_unknown() {
        assert_eq!(render("a {{NAMESPACE}} b", &vars()).unwrap(), "a ns b");
        assert!(render("{{NOPE}}", &vars()).is_err());
        assert!(render("{{NAMESPACE", &vars()).is_err());
    }

    /// Every fixture renders, parses, and every NAD's spec.config is JSON with the right name.
    #[test]
    fn all_fixtures_render_and_parse() {
        let root = fixtures_dir();
        for dir in ["demo/seed", "e2e/objects"] {
            let mut kinds = Vec::new();
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let text = render_file(&entry.unwrap().path(), &vars()).unwrap();
                for doc in yaml_documents(&text).unwrap() {
                    let kind = doc["kind"].as_str().unwrap().to_string();
                    assert!(doc["metadata"]["name"].is_string(), "{doc}");
                    if kind == "NetworkAttachmentDefinition" {
                        let conf: Value = serde_json::from_str(doc["spec"]["config"].as_str().unwrap()).unwrap();
                        assert_eq!(conf["name"], doc["metadata"]["name"]);
                    }
                    if kind == "Pod"
                        && let Some(sel) = doc["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str()
                        && sel.trim_start().starts_with('[')
                    {
                        serde_json::from_str::<Value>(sel).unwrap();
                    }
                    kinds.push(kind);
                }
            }
            for k in ["Namespace", "NetworkAttachmentDefinition", "Pod"] {
                assert!(kinds.iter().any(|x| x == k), "{dir} lacks a {k}");
            }
        }
        for f in [
            "demo/cluster-net.conflist",
            "demo/daemon-config.json",
            "e2e/cluster-net.conflist",
            "e2e/daemon-config.json",
        ] {
            let v: Value = serde_json::from_str(&render_file(&root.join(f), &vars()).unwrap()).unwrap();
            assert!(v["cniVersion"].is_string(), "{f}");
        }
    }
}
